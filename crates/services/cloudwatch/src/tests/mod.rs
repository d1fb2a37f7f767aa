//! Tests of the service through `CloudWatch::call`, on a real store in a
//! temporary directory.

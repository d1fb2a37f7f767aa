//! Service-level tests: the S3 object over a temporary store, driven with decoded inputs.

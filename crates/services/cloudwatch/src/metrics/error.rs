//! The errors the metrics library gives its callers: the AWS error codes
//! CloudWatch answers PutMetricData, GetMetricStatistics and GetMetricData
//! with, each with its message in CloudWatch's wording, plus the store's
//! failures. The handler layer turns them into wire errors
//! ([`MetricsError::to_aws_error`] does it the common way).

use nimbus_core::AwsError;
use nimbus_store::StoreError;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum MetricsError {
    /// `InvalidParameterValue` (400): a value out of range or malformed.
    InvalidParameterValue(String),
    /// `InvalidParameterCombination` (400): parameters that exclude each other.
    InvalidParameterCombination(String),
    /// `MissingParameter` (400): a required parameter is absent.
    MissingParameter(String),
    /// `InternalServiceError` (500): the store failed or holds a record this
    /// release cannot read.
    Internal(String),
}

impl MetricsError {
    /// The AWS error code, as the model's error shapes name it on the wire.
    pub fn code(&self) -> &'static str {
        match self {
            MetricsError::InvalidParameterValue(_) => "InvalidParameterValue",
            MetricsError::InvalidParameterCombination(_) => "InvalidParameterCombination",
            MetricsError::MissingParameter(_) => "MissingParameter",
            MetricsError::Internal(_) => "InternalServiceError",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            MetricsError::InvalidParameterValue(m)
            | MetricsError::InvalidParameterCombination(m)
            | MetricsError::MissingParameter(m)
            | MetricsError::Internal(m) => m,
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            MetricsError::Internal(_) => 500,
            _ => 400,
        }
    }

    pub fn to_aws_error(&self) -> AwsError {
        AwsError::new(self.code(), self.message()).with_status(self.status())
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        MetricsError::InvalidParameterValue(message.into())
    }

    pub(crate) fn combination(message: impl Into<String>) -> Self {
        MetricsError::InvalidParameterCombination(message.into())
    }

    pub(crate) fn missing(parameter: &str) -> Self {
        MetricsError::MissingParameter(format!("The parameter {parameter} is required."))
    }

    /// A stored record that does not decode: a bug or damage, never the caller's fault.
    pub(crate) fn corrupt(what: &str, detail: impl fmt::Display) -> Self {
        MetricsError::Internal(format!("stored metric {what} does not decode: {detail}"))
    }
}

impl fmt::Display for MetricsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
    }
}

impl std::error::Error for MetricsError {}

impl From<StoreError> for MetricsError {
    fn from(e: StoreError) -> Self {
        MetricsError::Internal(e.to_string())
    }
}

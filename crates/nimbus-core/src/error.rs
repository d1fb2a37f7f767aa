//! The one error type a client ever sees. Services name the error by the
//! shape name of their model (`QueueDoesNotExist`) or by the plain AWS code
//! (`InvalidParameterValue`); the wire layer turns it into each protocol's
//! exact form, taking the query-compatible code and HTTP status from the
//! model's error trait where the model has one.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub struct AwsError {
    /// Model error shape name, or the AWS error code for errors outside the model.
    pub code: String,
    pub message: String,
    /// HTTP status; the model's `httpStatusCode` wins when the code is a modelled shape.
    pub status: u16,
    /// True when the caller is at fault (`Sender`), false for server faults (`Receiver`).
    pub sender_fault: bool,
    /// Extra members of the error shape (e.g. S3's `Key`, `BucketName`), emitted as
    /// additional fields/elements in protocols that carry them.
    pub fields: Vec<(String, String)>,
    /// Response headers the error carries in REST protocols (S3's `x-amz-delete-marker`).
    pub headers: Vec<(String, String)>,
}

impl AwsError {
    /// A client error with HTTP 400.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        AwsError {
            code: code.into(),
            message: message.into(),
            status: 400,
            sender_fault: true,
            fields: Vec::new(),
            headers: Vec::new(),
        }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self.sender_fault = status < 500;
        self
    }

    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets a field, replacing an earlier value of the same name.
    pub fn with_field_replaced(mut self, name: &str, value: impl Into<String>) -> Self {
        self.fields.retain(|(n, _)| n != name);
        self.fields.push((name.to_string(), value.into()));
        self
    }

    pub fn with_field(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.fields.push((name.into(), value.into()));
        self
    }

    pub fn internal(message: impl Into<String>) -> Self {
        AwsError::new("InternalFailure", message).with_status(500)
    }

    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        AwsError::new("InvalidParameterValue", message)
    }

    pub fn missing_parameter(name: &str) -> Self {
        AwsError::new(
            "MissingParameter",
            format!("The request must contain the parameter {name}."),
        )
    }

    pub fn invalid_action(action: &str, service: &str) -> Self {
        AwsError::new(
            "InvalidAction",
            format!("The action {action} is not valid for this endpoint of {service}."),
        )
    }

    /// An operation of a served service that nimbus does not implement: AWS's
    /// `NotImplemented` (501), naming the service as the CLI and SDKs do
    /// (`ec2`, `EC2`) so that a user knows at once what is missing.
    pub fn operation_not_implemented(service: &str, service_id: &str, operation: &str) -> Self {
        AwsError::new(
            "NotImplemented",
            format!(
                "nimbus does not implement the operation '{operation}' of the service '{service}' ({service_id}) yet."
            ),
        )
        .with_status(501)
    }

    /// A service nimbus does not serve at all (yet), named as the CLI and SDKs name it.
    pub fn service_not_implemented(service: &str, service_id: &str) -> Self {
        AwsError::new(
            "NotImplemented",
            format!("nimbus does not implement the service '{service}' ({service_id}) yet."),
        )
        .with_status(501)
    }

    pub fn access_denied(message: impl Into<String>) -> Self {
        AwsError::new("AccessDenied", message).with_status(403)
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

impl std::error::Error for AwsError {}

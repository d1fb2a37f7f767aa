//! S3's errors, with the codes, statuses, messages and extra elements that
//! S3 itself sends, so that SDKs map them to the same exceptions.

use nimbus_core::AwsError;

pub fn no_such_bucket(bucket: &str) -> AwsError {
    AwsError::new("NoSuchBucket", "The specified bucket does not exist")
        .with_status(404)
        .with_field("BucketName", bucket)
}

pub fn no_such_key(key: &str) -> AwsError {
    AwsError::new("NoSuchKey", "The specified key does not exist.")
        .with_status(404)
        .with_field("Key", key)
}

pub fn no_such_version(key: &str, version: &str) -> AwsError {
    AwsError::new("NoSuchVersion", "The specified version does not exist.")
        .with_status(404)
        .with_field("Key", key)
        .with_field("VersionId", version)
}

pub fn no_such_upload(upload_id: &str) -> AwsError {
    AwsError::new(
        "NoSuchUpload",
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
    )
    .with_status(404)
    .with_field("UploadId", upload_id)
}

pub fn access_denied() -> AwsError {
    AwsError::new("AccessDenied", "Access Denied").with_status(403)
}

pub fn malformed_xml() -> AwsError {
    AwsError::new(
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema",
    )
}

pub fn invalid_argument(message: impl Into<String>, name: &str, value: &str) -> AwsError {
    AwsError::new("InvalidArgument", message)
        .with_field("ArgumentName", name)
        .with_field("ArgumentValue", value)
}

pub fn invalid_request(message: impl Into<String>) -> AwsError {
    AwsError::new("InvalidRequest", message)
}

pub fn precondition_failed(condition: &str) -> AwsError {
    AwsError::new(
        "PreconditionFailed",
        "At least one of the pre-conditions you specified did not hold",
    )
    .with_status(412)
    .with_field("Condition", condition)
}

pub fn not_modified() -> AwsError {
    AwsError::new("NotModified", "Not Modified").with_status(304)
}

pub fn invalid_range(size: u64, range: &str) -> AwsError {
    AwsError::new("InvalidRange", "The requested range is not satisfiable")
        .with_status(416)
        .with_field("ActualObjectSize", size.to_string())
        .with_field("RangeRequested", range)
}

pub fn bad_digest() -> AwsError {
    AwsError::new(
        "BadDigest",
        "The Content-MD5 you specified did not match what we received.",
    )
}

pub fn invalid_digest() -> AwsError {
    AwsError::new(
        "InvalidDigest",
        "The Content-MD5 you specified was invalid.",
    )
}

pub fn checksum_mismatch(algorithm: &str) -> AwsError {
    AwsError::new(
        "BadDigest",
        format!("The {algorithm} you specified did not match the calculated checksum."),
    )
}

pub fn not_found(code: &str, message: &str, bucket: &str) -> AwsError {
    AwsError::new(code, message)
        .with_status(404)
        .with_field("BucketName", bucket)
}

pub fn invalid_object_state(storage_class: &str) -> AwsError {
    AwsError::new(
        "InvalidObjectState",
        "The operation is not valid for the object's storage class",
    )
    .with_status(403)
    .with_field("StorageClass", storage_class)
}

pub fn internal(message: impl Into<String>) -> AwsError {
    AwsError::new("InternalError", message).with_status(500)
}

pub fn store_failed(e: impl std::fmt::Display) -> AwsError {
    tracing::error!("S3 store commit failed: {e}");
    internal("We encountered an internal error. Please try again.")
}

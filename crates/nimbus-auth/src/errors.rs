//! Every error this crate can answer, spelled as AWS spells it. S3 has its own
//! codes and messages for signature problems; the other services share the
//! common query-API errors, which [`for_json_protocol`] renames for services
//! whose clients expect the JSON-protocol names.

use nimbus_core::AwsError;

use crate::clock;

pub(crate) const MISMATCH_S3: &str = "The request signature we calculated does not match the signature you provided. Check your key and signing method.";
pub(crate) const MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

pub(crate) fn is_s3(service: &str) -> bool {
    service.eq_ignore_ascii_case("s3")
}

/// Error for an access key nobody issued: "InvalidClientTokenId" 403 "The security token
/// included in the request is invalid." for most services; for S3 "InvalidAccessKeyId" 403
/// "The AWS Access Key Id you provided does not exist in our records.".
pub fn unknown_key_error(service: &str) -> AwsError {
    if is_s3(service) {
        AwsError::new(
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
        )
        .with_status(403)
    } else {
        AwsError::new(
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        )
        .with_status(403)
    }
}

/// Error for an anonymous request where a signature is required: S3 answers
/// `AccessDenied` "Access Denied"; the other services `MissingAuthenticationToken` 403.
pub fn missing_authentication_error(service: &str) -> AwsError {
    if is_s3(service) {
        AwsError::access_denied("Access Denied")
    } else {
        AwsError::new(
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        )
        .with_status(403)
    }
}

/// Renames the query-API signature errors to the names that services speaking the
/// JSON protocols (awsJson1.0/1.1, restJson1: DynamoDB, Lambda, KMS, ...) answer with:
/// `SignatureDoesNotMatch` -> `InvalidSignatureException` 400, `InvalidClientTokenId` ->
/// `UnrecognizedClientException` 400, `IncompleteSignature` ->
/// `IncompleteSignatureException` 400, `MissingAuthenticationToken` ->
/// `MissingAuthenticationTokenException` 403. Other errors pass through unchanged.
/// (Query-compatible services such as SQS keep the query names.)
pub fn for_json_protocol(err: AwsError) -> AwsError {
    let (code, status) = match err.code.as_str() {
        "SignatureDoesNotMatch" => ("InvalidSignatureException", 400),
        "InvalidClientTokenId" => ("UnrecognizedClientException", 400),
        "IncompleteSignature" => ("IncompleteSignatureException", 400),
        "MissingAuthenticationToken" => ("MissingAuthenticationTokenException", 403),
        _ => return err,
    };
    AwsError {
        code: code.to_string(),
        ..err
    }
    .with_status(status)
}

pub(crate) fn signature_mismatch(service: &str) -> AwsError {
    if is_s3(service) {
        AwsError::new("SignatureDoesNotMatch", MISMATCH_S3).with_status(403)
    } else {
        AwsError::new("SignatureDoesNotMatch", MISMATCH).with_status(403)
    }
}

/// S3's mismatch error carries what it computed, which is how users debug
/// their signers; nimbus does the same.
pub(crate) fn signature_mismatch_s3_details(
    access_key_id: &str,
    string_to_sign: &str,
    signature_provided: &str,
    canonical_request: Option<&[u8]>,
) -> AwsError {
    let mut err = signature_mismatch("s3")
        .with_field("AWSAccessKeyId", access_key_id)
        .with_field("StringToSign", string_to_sign)
        .with_field("SignatureProvided", signature_provided);
    if let Some(creq) = canonical_request {
        err = err.with_field("CanonicalRequest", String::from_utf8_lossy(creq));
    }
    err
}

/// A SigV4 request whose `x-amz-*` headers (or `host`) are not all covered by its
/// signature: what it changes would not be what was signed. S3 answers `AccessDenied`
/// 403 naming the headers; the other services `IncompleteSignature` 400 (for a missing
/// `host`, AWS's own wording).
pub(crate) fn headers_not_signed(service: &str, headers: &[&str]) -> AwsError {
    if is_s3(service) {
        AwsError::access_denied("There were headers present in the request which were not signed")
            .with_field("HeadersNotSigned", headers.join(", "))
    } else if headers == ["host"] {
        incomplete_signature(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        )
    } else {
        incomplete_signature(format!(
            "The request signature does not cover the headers {}: every x-amz-* header must be signed.",
            headers.join(", ")
        ))
    }
}

/// A session token sent with a long-term key, which has none.
pub fn token_without_session(service: &str) -> AwsError {
    if is_s3(service) {
        AwsError::new(
            "InvalidToken",
            "The provided token is malformed or otherwise invalid.",
        )
        .with_field("Token-0", "")
    } else {
        unknown_key_error(service)
    }
}

pub(crate) fn incomplete_signature(message: impl Into<String>) -> AwsError {
    AwsError::new("IncompleteSignature", message)
}

pub(crate) fn header_malformed_s3(detail: &str) -> AwsError {
    AwsError::new(
        "AuthorizationHeaderMalformed",
        format!("The authorization header is malformed; {detail}"),
    )
}

pub(crate) fn query_parameters_error_s3(message: impl Into<String>) -> AwsError {
    AwsError::new("AuthorizationQueryParametersError", message)
}

pub(crate) fn invalid_argument_s3(message: &str, name: &str, value: &str) -> AwsError {
    AwsError::new("InvalidArgument", message)
        .with_field("ArgumentName", name)
        .with_field("ArgumentValue", value)
}

pub(crate) fn s3_missing_date() -> AwsError {
    AwsError::access_denied("AWS authentication requires a valid Date or x-amz-date header")
}

pub(crate) fn request_time_too_skewed(request_time: &str, now: i64) -> AwsError {
    AwsError::new(
        "RequestTimeTooSkewed",
        "The difference between the request time and the current time is too large.",
    )
    .with_status(403)
    .with_field("RequestTime", request_time)
    .with_field("ServerTime", clock::format_iso8601(now))
    .with_field("MaxAllowedSkewMilliseconds", "900000")
}

/// The query-API answer to clock skew, word for word what AWS sends (botocore
/// and the SDKs recognise it and correct their clocks).
pub(crate) fn signature_time_skew(amz_date: &str, request_time: i64, now: i64) -> AwsError {
    let now_s = clock::format_amz_date(now);
    let message = if request_time < now {
        format!(
            "Signature expired: {amz_date} is now earlier than {} ({now_s} - 15 min.)",
            clock::format_amz_date(now.saturating_sub(clock::MAX_SKEW_SECS))
        )
    } else {
        format!(
            "Signature not yet current: {amz_date} is still later than {} ({now_s} + 15 min.)",
            clock::format_amz_date(now.saturating_add(clock::MAX_SKEW_SECS))
        )
    };
    AwsError::new("SignatureDoesNotMatch", message).with_status(403)
}

pub(crate) fn request_expired(message: impl Into<String>) -> AwsError {
    AwsError::new("RequestExpired", message)
}

pub(crate) fn s3_request_expired(
    expires_at: i64,
    now: i64,
    x_amz_expires: Option<u64>,
) -> AwsError {
    let mut err = AwsError::access_denied("Request has expired");
    if let Some(secs) = x_amz_expires {
        err = err.with_field("X-Amz-Expires", secs.to_string());
    }
    err.with_field("Expires", clock::format_iso8601(expires_at))
        .with_field("ServerTime", clock::format_iso8601(now))
}

pub(crate) fn incomplete_body(detail: &str) -> AwsError {
    AwsError::new(
        "IncompleteBody",
        format!("The request body terminated unexpectedly: {detail}"),
    )
}

pub(crate) fn malformed_trailer() -> AwsError {
    AwsError::new(
        "MalformedTrailerError",
        "The request contained trailing data that was not well-formed or did not conform to our published schema.",
    )
}

pub(crate) fn bad_digest(label: &str) -> AwsError {
    AwsError::new(
        "BadDigest",
        format!("The {label} you specified did not match the calculated checksum."),
    )
}

pub(crate) fn invalid_checksum_value(header: &str) -> AwsError {
    AwsError::new(
        "InvalidRequest",
        format!("Value for {header} trailing header is invalid."),
    )
}

pub(crate) fn content_sha256_mismatch(client: &str, computed: &str) -> AwsError {
    AwsError::new(
        "XAmzContentSHA256Mismatch",
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
    )
    .with_field("ClientComputedContentSHA256", client)
    .with_field("S3ComputedContentSHA256", computed)
}

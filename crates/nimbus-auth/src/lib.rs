//! Request signatures for nimbus: finding who claims to have signed a request
//! ([`parse_claim`]), checking that claim against a secret ([`verify`],
//! [`check_expiry`]), unwrapping `aws-chunked` bodies with their chunk and
//! trailer signatures ([`decode_aws_chunked`], [`ChunkedDecoder`]), and the
//! signing side of the same math for nimbus's own clients ([`sign_v4`],
//! [`presign_v4`], [`sign_v2_s3`]).
//!
//! One verifier serves every service. SigV4 (header and presigned query),
//! SigV2 for S3 (header and query) and SigV2 for the query APIs are covered;
//! the crate never looks up keys itself: the caller maps the claimed access
//! key to a secret (see `nimbus_core::CredentialRegistry`) and answers
//! [`unknown_key_error`] when nobody issued it.
//!
//! Errors are the exact AWS errors a client expects: S3 speaks its own
//! dialect (`AuthorizationHeaderMalformed`, `RequestTimeTooSkewed`, ...), the
//! other services the common query-API errors; [`for_json_protocol`] renames
//! them for services whose clients expect the JSON-protocol names.

mod canonical;
mod chunked;
mod claim;
mod clock;
mod crypto;
mod errors;
pub mod post_policy;
mod v2;
mod v4;

#[cfg(test)]
mod tests;

use nimbus_core::AwsError;

pub use chunked::{decode_aws_chunked, encode_aws_chunked, ChunkSigning, ChunkedDecoder, Decoded};
pub use claim::parse_claim;
pub use errors::{
    for_json_protocol, missing_authentication_error, token_without_session, unknown_key_error,
};
pub use nimbus_core::checksum::compute_checksum;
pub use post_policy::{
    check_content_length, read_post_form, sign_post_policy_v2, sign_post_policy_v4,
    substitute_filename, verify_post_policy, CheckedPost, PostForm, PostSignature,
};
pub use v2::sign_v2_s3;
pub use v4::{presign_v4, sign_v4, SigningParams};

/// The parts of an HTTP request that signatures cover. `path` is the raw path as received
/// (still percent-encoded, no query); `query` the raw query string without '?'; header
/// names are case-insensitive (http::HeaderMap).
///
/// For HTTP/2 requests the edge must insert a `host` header built from `:authority`,
/// because every SigV4 client signs `host`.
pub struct HttpParts<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a http::HeaderMap,
}

/// What a request claims about its signer, found without any secret.
#[derive(Debug, Clone)]
pub enum Claim {
    Anonymous,
    V4 {
        access_key_id: String,
        /// yyyymmdd, from the credential scope.
        date: String,
        region: String,
        service: String,
        signed_headers: Vec<String>,
        signature: String,
        presigned: bool,
        /// Request time in the ISO 8601 basic form (`20130524T000000Z`), from
        /// `x-amz-date`, `X-Amz-Date` or the `Date` header.
        amz_date: String,
        expires_secs: Option<u64>,
        session_token: Option<String>,
        streaming: Streaming,
    },
    V2 {
        access_key_id: String,
        signature: String,
        /// True when the signature travels in the URL (S3 query form, or a
        /// query-API request whose parameters are in the query string).
        presigned: bool,
        expires_epoch: Option<u64>,
        session_token: Option<String>,
        form: V2Form,
    },
}

impl Claim {
    /// The access key the request claims, if any.
    pub fn access_key_id(&self) -> Option<&str> {
        match self {
            Claim::Anonymous => None,
            Claim::V4 { access_key_id, .. } | Claim::V2 { access_key_id, .. } => {
                Some(access_key_id)
            }
        }
    }

    /// The session token the request carries (`x-amz-security-token`,
    /// `X-Amz-Security-Token` or the V2 `SecurityToken` parameter).
    pub fn session_token(&self) -> Option<&str> {
        match self {
            Claim::Anonymous => None,
            Claim::V4 { session_token, .. } | Claim::V2 { session_token, .. } => {
                session_token.as_deref()
            }
        }
    }

    /// The region of the credential scope (SigV4 only).
    pub fn region(&self) -> Option<&str> {
        match self {
            Claim::V4 { region, .. } => Some(region),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streaming {
    None,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`
    SignedChunks,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`
    SignedChunksTrailer,
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`
    UnsignedTrailer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V2Form {
    /// `Authorization: AWS AKID:sig`
    S3Header,
    /// `AWSAccessKeyId`, `Expires`, `Signature` in the query.
    S3Query,
    /// `SignatureVersion=2` in query/form params: `AWSAccessKeyId`,
    /// `SignatureMethod` HmacSHA256|HmacSHA1, `Timestamp` or `Expires`, `Signature`.
    QueryApi,
}

/// Presigned expiry check, enforced in every auth mode: for V4 presigned, amz_date +
/// X-Amz-Expires < now (or a request date more than 15 minutes in the future); for V2
/// query forms, Expires < now.
///
/// S3 answers `AccessDenied` 403 "Request has expired" (with `X-Amz-Expires`, `Expires`
/// and `ServerTime` fields) or "Request is not valid yet"; the other services answer the
/// documented common error `RequestExpired` 400.
pub fn check_expiry(claim: &Claim, now_epoch_secs: i64, service: &str) -> Result<(), AwsError> {
    match claim {
        Claim::Anonymous => Ok(()),
        Claim::V4 {
            presigned: true,
            amz_date,
            expires_secs,
            ..
        } => v4::check_presigned_window(amz_date, *expires_secs, now_epoch_secs, service),
        Claim::V4 { .. } => Ok(()),
        Claim::V2 {
            expires_epoch: Some(expires),
            form,
            ..
        } => v2::check_expires(*expires, *form, now_epoch_secs, service),
        Claim::V2 { .. } => Ok(()),
    }
}

/// For an S3 body hashed after the fact (streamed while verifying): compares the signed
/// `x-amz-content-sha256` value with the hex SHA-256 of the body as received. Literals
/// (`UNSIGNED-PAYLOAD`, `STREAMING-*`) always pass; a different hash gives S3's
/// `XAmzContentSHA256Mismatch` 400.
pub fn check_content_sha256(header_value: &str, computed_sha256_hex: &str) -> Result<(), AwsError> {
    let claimed = header_value.trim();
    if claim::is_sha256_hex(claimed) && !claimed.eq_ignore_ascii_case(computed_sha256_hex) {
        return Err(errors::content_sha256_mismatch(
            claimed,
            computed_sha256_hex,
        ));
    }
    Ok(())
}

/// Verifies the claim's signature with the secret.
///
/// `payload_sha256_hex` is the hex SHA-256 of the body as received. When the request has
/// an `x-amz-content-sha256` header (S3 clients always send one) its value is what gets
/// signed, literals such as `UNSIGNED-PAYLOAD` and `STREAMING-*` included, so callers
/// streaming an S3 body may pass `""` here and check the hash later with the header's
/// value; when they do pass a hash and the header holds a different hex hash, S3's
/// `XAmzContentSHA256Mismatch` is returned. Without the header, an empty
/// `payload_sha256_hex` stands for the hash of an empty body.
///
/// Also checks the request time skew of header-signed requests (15 minutes) and the
/// expiry of presigned ones. `Claim::Anonymous` verifies trivially.
pub fn verify(
    claim: &Claim,
    parts: &HttpParts,
    form_params: &[(String, String)],
    payload_sha256_hex: &str,
    secret_access_key: &str,
    now_epoch_secs: i64,
) -> Result<(), AwsError> {
    match claim {
        Claim::Anonymous => Ok(()),
        Claim::V4 {
            access_key_id,
            date,
            region,
            service,
            signed_headers,
            signature,
            presigned,
            amz_date,
            expires_secs,
            ..
        } => v4::verify(
            &v4::V4View {
                access_key_id,
                date,
                region,
                service,
                signed_headers,
                signature,
                presigned: *presigned,
                amz_date,
                expires_secs: *expires_secs,
            },
            parts,
            payload_sha256_hex,
            secret_access_key,
            now_epoch_secs,
        ),
        Claim::V2 {
            access_key_id,
            signature,
            expires_epoch,
            form,
            ..
        } => v2::verify(
            &v2::V2View {
                access_key_id,
                signature,
                expires_epoch: *expires_epoch,
                form: *form,
            },
            parts,
            form_params,
            secret_access_key,
            now_epoch_secs,
        ),
    }
}

//! Signature Version 4: the canonical request, the string to sign, verifying
//! header-signed and presigned requests, and signing for nimbus's own
//! clients. Signing and verifying share every function here, so a request
//! nimbus signs is verified by exactly the same math.

use nimbus_core::AwsError;

use crate::canonical;
use crate::claim::{header, is_sha256_hex, V4_ALGORITHM};
use crate::clock;
use crate::crypto::{ct_eq, hmac_sha256, sha256_hex, signing_key};
use crate::errors::{self, is_s3};
use crate::HttpParts;

pub(crate) const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
pub(crate) const EMPTY_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

pub(crate) fn scope(date: &str, region: &str, service: &str) -> String {
    format!("{date}/{region}/{service}/aws4_request")
}

pub(crate) fn canonical_request(
    method: &str,
    uri: &str,
    query: &str,
    headers_block: &[u8],
    signed_headers: &str,
    payload_hash: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        method.len() + uri.len() + query.len() + headers_block.len() + signed_headers.len() + 80,
    );
    out.extend_from_slice(method.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(uri.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(query.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(headers_block);
    out.push(b'\n');
    out.extend_from_slice(signed_headers.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload_hash.as_bytes());
    out
}

pub(crate) fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &[u8]) -> String {
    format!(
        "{V4_ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request)
    )
}

pub(crate) fn sign(key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(hmac_sha256(key, string_to_sign.as_bytes()))
}

/// The fields of a `Claim::V4` that verification reads.
pub(crate) struct V4View<'a> {
    pub access_key_id: &'a str,
    pub date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub signed_headers: &'a [String],
    pub signature: &'a str,
    pub presigned: bool,
    pub amz_date: &'a str,
    pub expires_secs: Option<u64>,
}

fn bad_request_time(service: &str, amz_date: &str) -> AwsError {
    if is_s3(service) {
        errors::s3_missing_date()
    } else {
        errors::incomplete_signature(format!(
            "Date must be in ISO-8601 'basic format'. Got '{amz_date}'. See http://en.wikipedia.org/wiki/ISO_8601"
        ))
    }
}

/// The validity window of a presigned SigV4 request: not before its date (with
/// the usual 15 minutes of grace for clocks), not after date + expires.
pub(crate) fn check_presigned_window(
    amz_date: &str,
    expires_secs: Option<u64>,
    now: i64,
    service: &str,
) -> Result<(), AwsError> {
    let start =
        clock::parse_amz_date(amz_date).ok_or_else(|| bad_request_time(service, amz_date))?;
    if start.saturating_sub(now) > clock::MAX_SKEW_SECS {
        return Err(if is_s3(service) {
            AwsError::access_denied("Request is not valid yet")
        } else {
            errors::request_expired("Request is not valid yet.")
        });
    }
    let expires = i64::try_from(expires_secs.unwrap_or(0)).unwrap_or(i64::MAX);
    let end = start.saturating_add(expires);
    if end < now {
        return Err(if is_s3(service) {
            errors::s3_request_expired(end, now, expires_secs)
        } else {
            errors::request_expired("Request has expired.")
        });
    }
    Ok(())
}

pub(crate) fn verify(
    claim: &V4View,
    parts: &HttpParts,
    payload_sha256_hex: &str,
    secret: &str,
    now: i64,
) -> Result<(), AwsError> {
    let s3 = is_s3(claim.service);
    let request_time = clock::parse_amz_date(claim.amz_date)
        .ok_or_else(|| bad_request_time(claim.service, claim.amz_date))?;
    if claim.presigned {
        check_presigned_window(claim.amz_date, claim.expires_secs, now, claim.service)?;
    } else if now.saturating_sub(request_time).saturating_abs() > clock::MAX_SKEW_SECS {
        return Err(if s3 {
            errors::request_time_too_skewed(claim.amz_date, now)
        } else {
            errors::signature_time_skew(claim.amz_date, request_time, now)
        });
    }

    check_headers_signed(claim, parts)?;
    let given = if payload_sha256_hex.is_empty() {
        EMPTY_SHA256
    } else {
        payload_sha256_hex
    };
    let content_sha = header(parts.headers, "x-amz-content-sha256").map(str::trim);
    let payloads: Vec<&str> = if s3 {
        // S3 signs the header's value, literals included, and checks the body against it
        // afterwards. Presigned URLs are signed before anyone knows the body.
        match content_sha {
            Some(h) => vec![h],
            None if claim.presigned => vec![UNSIGNED_PAYLOAD],
            None => vec![given],
        }
    } else {
        // Outside S3 the signature covers the body itself, whatever a header claims:
        // a header only names signed chunks (verified chunk by chunk), and a presigned
        // URL (botocore signs UNSIGNED-PAYLOAD for it) may carry no body.
        match content_sha {
            Some(h) if is_signed_chunks(h) => vec![h],
            Some(h) if h.starts_with("STREAMING-") => {
                return Err(errors::signature_mismatch(claim.service))
            }
            _ if claim.presigned && given == EMPTY_SHA256 => vec![UNSIGNED_PAYLOAD, given],
            _ => vec![given],
        }
    };
    let uris = canonical::canonical_uris(parts.path, s3);
    let mut queries = vec![canonical::canonical_query(
        parts.query,
        false,
        claim.presigned,
    )];
    if parts.query.contains('+') {
        // A `+` sent by a form encoder meant a space.
        queries.push(canonical::canonical_query(
            parts.query,
            true,
            claim.presigned,
        ));
    }
    let signed_list = claim.signed_headers.join(";");
    let headers_block = canonical::canonical_headers(parts.headers, claim.signed_headers);
    let key = signing_key(secret, claim.date, claim.region, claim.service);
    let scope = scope(claim.date, claim.region, claim.service);

    let mut first: Option<(Vec<u8>, String)> = None;
    for uri in &uris {
        for query in &queries {
            for payload in &payloads {
                let creq = canonical_request(
                    parts.method,
                    uri,
                    query,
                    &headers_block,
                    &signed_list,
                    payload,
                );
                let sts = string_to_sign(claim.amz_date, &scope, &creq);
                if ct_eq(sign(&key, &sts).as_bytes(), claim.signature.as_bytes()) {
                    return check_content_sha(s3, content_sha, payload_sha256_hex);
                }
                if first.is_none() {
                    first = Some((creq, sts));
                }
            }
        }
    }
    Err(match (s3, first) {
        (true, Some((creq, sts))) => errors::signature_mismatch_s3_details(
            claim.access_key_id,
            &sts,
            claim.signature,
            Some(&creq),
        ),
        _ => errors::signature_mismatch(claim.service),
    })
}

fn is_signed_chunks(content_sha: &str) -> bool {
    matches!(
        content_sha,
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" | "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
    )
}

/// Everything a request can change must be covered by its signature: `host` and every
/// `x-amz-*` header it carries (an unsigned `x-amz-copy-source` would turn a signed
/// empty PUT into a copy). Presigned URLs carry their own `X-Amz-*` in the query.
fn check_headers_signed(claim: &V4View, parts: &HttpParts) -> Result<(), AwsError> {
    let signed = |name: &str| claim.signed_headers.iter().any(|h| h == name);
    if !signed("host") {
        return Err(errors::headers_not_signed(claim.service, &["host"]));
    }
    let mut unsigned: Vec<&str> = parts
        .headers
        .keys()
        .map(|name| name.as_str())
        .filter(|name| name.starts_with("x-amz-") && !signed(name))
        .collect();
    if unsigned.is_empty() {
        return Ok(());
    }
    unsigned.sort_unstable();
    unsigned.dedup();
    Err(errors::headers_not_signed(claim.service, &unsigned))
}

// S3 rejects a body whose hash differs from the signed x-amz-content-sha256;
// only checkable when the caller hashed the body.
fn check_content_sha(s3: bool, header: Option<&str>, computed: &str) -> Result<(), AwsError> {
    match header {
        Some(h)
            if s3
                && is_sha256_hex(h)
                && is_sha256_hex(computed)
                && !h.eq_ignore_ascii_case(computed) =>
        {
            Err(errors::content_sha256_mismatch(h, computed))
        }
        _ => Ok(()),
    }
}

/// Signing, for nimbus's own benchmark client and tests (same math as verifying).
pub struct SigningParams<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub session_token: Option<&'a str>,
    pub region: &'a str,
    pub service: &'a str,
    pub time_epoch_secs: i64,
}

/// Returns the headers to add to the request: x-amz-date, x-amz-security-token (if any),
/// x-amz-content-sha256 (only when service == "s3"), authorization. `headers` are the
/// request's headers and must include `host`; all given headers are signed.
///
/// `path` is the path as it will be sent (percent-encoded), `query` the raw query.
/// A caller-supplied `x-amz-content-sha256` (e.g. `UNSIGNED-PAYLOAD` or a `STREAMING-*`
/// literal) is signed as is instead of hashing `body`; the seed signature of a chunked
/// upload is the `Signature=` of the returned authorization.
pub fn sign_v4(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
    params: &SigningParams,
) -> Vec<(String, String)> {
    let amz_date = clock::format_amz_date(params.time_epoch_secs);
    let date = amz_date.get(..8).unwrap_or("");
    let s3 = is_s3(params.service);

    let provided_sha = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-content-sha256"))
        .map(|(_, v)| v.trim().to_string());
    let payload_hash = provided_sha.clone().unwrap_or_else(|| sha256_hex(body));

    let mut added: Vec<(String, String)> = vec![("x-amz-date".to_string(), amz_date.clone())];
    if let Some(token) = params.session_token {
        added.push(("x-amz-security-token".to_string(), token.to_string()));
    }
    if s3 && provided_sha.is_none() {
        added.push(("x-amz-content-sha256".to_string(), payload_hash.clone()));
    }

    // Group values by lowercase name; headers this function sets win over the caller's.
    let mut grouped: std::collections::BTreeMap<String, Vec<u8>> =
        std::collections::BTreeMap::new();
    let ours = |name: &str| added.iter().any(|(k, _)| k == name) || name == "authorization";
    for (name, value) in headers
        .iter()
        .filter(|(k, _)| !ours(&k.to_ascii_lowercase()))
        .chain(added.iter())
    {
        let entry = grouped.entry(name.trim().to_ascii_lowercase()).or_default();
        if !entry.is_empty() {
            entry.push(b',');
        }
        canonical::push_header_value(value.as_bytes(), entry);
    }
    let mut headers_block = Vec::new();
    for (name, value) in &grouped {
        headers_block.extend_from_slice(name.as_bytes());
        headers_block.push(b':');
        headers_block.extend_from_slice(value);
        headers_block.push(b'\n');
    }
    let signed_list = grouped.keys().cloned().collect::<Vec<_>>().join(";");

    let uri = canonical::canonical_uris(path, s3)
        .into_iter()
        .next()
        .unwrap_or_else(|| "/".to_string());
    let canonical_query = canonical::canonical_query(query, false, false);
    let creq = canonical_request(
        method,
        &uri,
        &canonical_query,
        &headers_block,
        &signed_list,
        &payload_hash,
    );
    let scope = scope(date, params.region, params.service);
    let sts = string_to_sign(&amz_date, &scope, &creq);
    let key = signing_key(
        params.secret_access_key,
        date,
        params.region,
        params.service,
    );
    let signature = sign(&key, &sts);

    added.push((
        "authorization".to_string(),
        format!(
            "{V4_ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_list}, Signature={signature}",
            params.access_key_id
        ),
    ));
    added
}

/// Returns the full query string (existing query params plus X-Amz-*) of a presigned URL,
/// signing only `host`. The payload is signed as `UNSIGNED-PAYLOAD`, as botocore does for
/// every service. Existing parameters come back in canonical (sorted, re-encoded) form.
pub fn presign_v4(
    method: &str,
    host: &str,
    path: &str,
    query: &str,
    expires_secs: u64,
    params: &SigningParams,
) -> String {
    let amz_date = clock::format_amz_date(params.time_epoch_secs);
    let date = amz_date.get(..8).unwrap_or("");
    let scope = scope(date, params.region, params.service);
    let mut pairs: Vec<(String, String)> = canonical::query_pairs(query)
        .into_iter()
        .filter(|(k, _)| !k.starts_with("X-Amz-"))
        .collect();
    pairs.push(("X-Amz-Algorithm".to_string(), V4_ALGORITHM.to_string()));
    pairs.push((
        "X-Amz-Credential".to_string(),
        format!("{}/{scope}", params.access_key_id),
    ));
    pairs.push(("X-Amz-Date".to_string(), amz_date.clone()));
    pairs.push(("X-Amz-Expires".to_string(), expires_secs.to_string()));
    pairs.push(("X-Amz-SignedHeaders".to_string(), "host".to_string()));
    if let Some(token) = params.session_token {
        pairs.push(("X-Amz-Security-Token".to_string(), token.to_string()));
    }
    let canonical_query = canonical::canonical_query_of(&pairs);
    let mut headers_block = b"host:".to_vec();
    canonical::push_header_value(host.as_bytes(), &mut headers_block);
    headers_block.push(b'\n');
    let uri = canonical::canonical_uris(path, is_s3(params.service))
        .into_iter()
        .next()
        .unwrap_or_else(|| "/".to_string());
    let creq = canonical_request(
        method,
        &uri,
        &canonical_query,
        &headers_block,
        "host",
        UNSIGNED_PAYLOAD,
    );
    let sts = string_to_sign(&amz_date, &scope, &creq);
    let key = signing_key(
        params.secret_access_key,
        date,
        params.region,
        params.service,
    );
    format!("{canonical_query}&X-Amz-Signature={}", sign(&key, &sts))
}

//! Signature Version 2, in its two dialects: S3's (HMAC-SHA1 over method,
//! Content-MD5, Content-Type, date or expiry, the `x-amz-*` headers and the
//! canonical resource with its sub-resources; `awscli` v1's `aws s3 presign`
//! still makes these URLs) and the query API's (HMAC-SHA256 or -SHA1 over
//! method, host, path and the sorted parameters).

use std::collections::BTreeMap;

use base64::Engine as _;
use nimbus_core::AwsError;

use crate::canonical;
use crate::claim::header;
use crate::clock;
use crate::crypto::{ct_eq, hmac_sha1, hmac_sha256};
use crate::errors::{self, is_s3};
use crate::{HttpParts, V2Form};

/// Old S3 query signature: base64(HMAC-SHA1(secret, "GET\n\n\n{expires}\n/{bucket}/{key}")) etc.
/// Returns the Signature value (still to be percent-encoded when put in a URL).
pub fn sign_v2_s3(secret_access_key: &str, string_to_sign: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(hmac_sha1(
        secret_access_key.as_bytes(),
        string_to_sign.as_bytes(),
    ))
}

/// Sub-resources that botocore (and the S3 documentation) put into the canonical resource.
const SUBRESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "defaultObjectAcl",
    "delete",
    "inventory",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "partNumber",
    "policy",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "select",
    "select-type",
    "storageClass",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// Newer sub-resources that some SigV2 signers include and others do not; both
/// readings are tried when one of them is present.
const NEWER_SUBRESOURCES: &[&str] = &[
    "attributes",
    "encryption",
    "intelligent-tiering",
    "legal-hold",
    "ownershipControls",
    "policyStatus",
    "publicAccessBlock",
    "retention",
];

/// The fields of a `Claim::V2` that verification reads.
pub(crate) struct V2View<'a> {
    pub access_key_id: &'a str,
    pub signature: &'a str,
    pub expires_epoch: Option<u64>,
    pub form: V2Form,
}

pub(crate) fn check_expires(
    expires: u64,
    form: V2Form,
    now: i64,
    service: &str,
) -> Result<(), AwsError> {
    let expires = i64::try_from(expires).unwrap_or(i64::MAX);
    if expires >= now {
        return Ok(());
    }
    if form != V2Form::QueryApi || is_s3(service) {
        Err(errors::s3_request_expired(expires, now, None))
    } else {
        Err(errors::request_expired("Request has expired."))
    }
}

pub(crate) fn verify(
    claim: &V2View,
    parts: &HttpParts,
    form_params: &[(String, String)],
    secret: &str,
    now: i64,
) -> Result<(), AwsError> {
    match claim.form {
        V2Form::S3Header | V2Form::S3Query => verify_s3(claim, parts, secret, now),
        V2Form::QueryApi => verify_query_api(claim, parts, form_params, secret, now),
    }
}

fn verify_s3(claim: &V2View, parts: &HttpParts, secret: &str, now: i64) -> Result<(), AwsError> {
    let query_form = claim.form == V2Form::S3Query;
    let query = canonical::query_pairs(parts.query);
    let from_query = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };

    let date_lines: Vec<String> = if query_form {
        let expires = claim
            .expires_epoch
            .ok_or_else(|| AwsError::access_denied("Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters"))?;
        check_expires(expires, claim.form, now, "s3")?;
        vec![expires.to_string()]
    } else {
        let date = header(parts.headers, "date").map(str::trim);
        let amz_date = header(parts.headers, "x-amz-date").map(str::trim);
        let time = amz_date
            .or(date)
            .and_then(|d| clock::parse_http_date(d).or_else(|| clock::parse_amz_date(d)))
            .ok_or_else(errors::s3_missing_date)?;
        if now.saturating_sub(time).saturating_abs() > clock::MAX_SKEW_SECS {
            return Err(errors::request_time_too_skewed(
                amz_date.or(date).unwrap_or(""),
                now,
            ));
        }
        // With x-amz-date present the documented rule is an empty date line;
        // some signers put the Date header there anyway.
        match (amz_date, date) {
            (Some(_), Some(d)) => vec![String::new(), d.to_string()],
            (Some(_), None) => vec![String::new()],
            (None, d) => vec![d.unwrap_or("").to_string()],
        }
    };

    // botocore moves Content-MD5, Content-Type and x-amz-* headers into the
    // query of a presigned URL, so the query form looks there too.
    let content_md5 = header(parts.headers, "content-md5")
        .or_else(|| query_form.then(|| from_query("content-md5")).flatten())
        .unwrap_or("")
        .trim();
    let content_type = header(parts.headers, "content-type")
        .or_else(|| query_form.then(|| from_query("content-type")).flatten())
        .unwrap_or("")
        .trim();
    let amz_headers = canonical_amz_headers(parts.headers, if query_form { &query } else { &[] });
    let resources = canonical_resources(parts);

    let mut first: Option<String> = None;
    for date_line in &date_lines {
        for resource in &resources {
            let sts = format!(
                "{}\n{content_md5}\n{content_type}\n{date_line}\n{amz_headers}{resource}",
                parts.method
            );
            if ct_eq(
                sign_v2_s3(secret, &sts).as_bytes(),
                claim.signature.as_bytes(),
            ) {
                return Ok(());
            }
            if first.is_none() {
                first = Some(sts);
            }
        }
    }
    let sts = first.unwrap_or_default();
    Err(errors::signature_mismatch_s3_details(
        claim.access_key_id,
        &sts,
        claim.signature,
        None,
    ))
}

/// `x-amz-*` headers (and, for presigned URLs, `x-amz-*` query parameters):
/// lowercase names, sorted, repeated values joined by `,`, one per line.
fn canonical_amz_headers(headers: &http::HeaderMap, query: &[(String, String)]) -> String {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        if name.as_str().starts_with("x-amz-") {
            map.entry(name.as_str().to_string())
                .or_default()
                .push(String::from_utf8_lossy(value.as_bytes()).trim().to_string());
        }
    }
    for (name, value) in query {
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("x-amz-") {
            map.entry(lower).or_default().push(value.trim().to_string());
        }
    }
    let mut out = String::new();
    for (name, values) in map {
        out.push_str(&name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out
}

fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// The canonical resources to try. The resource names the bucket even for a
/// virtual-hosted request, and only the caller's routing knows which part of
/// the host is the bucket; every dot-separated prefix of the host (and the
/// whole host, for CNAME-style buckets) is tried after the plain path.
fn canonical_resources(parts: &HttpParts) -> Vec<String> {
    let path = if parts.path.is_empty() {
        "/"
    } else {
        parts.path
    };
    let mut prefixes = vec![String::new()];
    if let Some(host) = header(parts.headers, "host") {
        let host = host_without_port(host.trim()).to_ascii_lowercase();
        let is_ip = host.starts_with('[') || host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        if !is_ip && !host.is_empty() {
            for (i, b) in host.bytes().enumerate() {
                if b == b'.' {
                    if let Some(bucket) = host.get(..i) {
                        prefixes.push(format!("/{bucket}"));
                    }
                }
            }
            prefixes.push(format!("/{host}"));
        }
    }

    // Signers differ on `?uploads=` (an empty value, as Go's url.Values sends it):
    // botocore signs what it sent, rclone's signer drops the `=`, as S3 reads it.
    let mut subresource_sets: Vec<String> = Vec::new();
    for with_newer in [false, true] {
        for empty_as_bare in [false, true] {
            let set = subresources(parts.query, with_newer, empty_as_bare);
            if !subresource_sets.contains(&set) {
                subresource_sets.push(set);
            }
        }
    }

    let mut out = Vec::new();
    for sub in &subresource_sets {
        for prefix in &prefixes {
            // A virtual-hosted request for the bucket itself has path "/", and
            // the resource is "/bucket/".
            out.push(format!("{prefix}{path}{sub}"));
        }
    }
    out
}

/// `?acl&versionId=v1`: the interesting parameters sorted by name, values
/// decoded, a bare name kept apart from `name=` unless `empty_as_bare`.
fn subresources(raw_query: &str, with_newer: bool, empty_as_bare: bool) -> String {
    let mut picked: Vec<(&str, Option<String>)> = canonical::split_query(raw_query)
        .filter(|(k, _)| SUBRESOURCES.contains(k) || (with_newer && NEWER_SUBRESOURCES.contains(k)))
        .map(|(k, v)| {
            (
                k,
                v.map(|v| String::from_utf8_lossy(&canonical::percent_decode(v)).into_owned()),
            )
        })
        .collect();
    if picked.is_empty() {
        return String::new();
    }
    picked.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = String::from("?");
    for (i, (k, v)) in picked.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        match v {
            Some(v) if !(empty_as_bare && v.is_empty()) => {
                out.push('=');
                out.push_str(v);
            }
            _ => {}
        }
    }
    out
}

fn verify_query_api(
    claim: &V2View,
    parts: &HttpParts,
    form_params: &[(String, String)],
    secret: &str,
    now: i64,
) -> Result<(), AwsError> {
    let mut params = canonical::form_query_pairs(parts.query);
    params.extend(form_params.iter().cloned());
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };

    if let Some(ts) = get("Timestamp") {
        let t = clock::parse_iso8601(ts).ok_or_else(|| {
            AwsError::invalid_parameter(format!(
                "Value ({ts}) for parameter Timestamp is invalid. Must be in ISO8601 format."
            ))
        })?;
        if now.saturating_sub(t).saturating_abs() > clock::MAX_SKEW_SECS {
            return Err(errors::request_expired(format!(
                "Request has expired. Timestamp date is {ts}"
            )));
        }
    }
    if let Some(expires) = claim.expires_epoch {
        check_expires(expires, claim.form, now, "")?;
    }
    let sha1 = match get("SignatureMethod") {
        Some("HmacSHA256") => false,
        Some("HmacSHA1") => true,
        _ => return Err(errors::signature_mismatch("")),
    };

    // Sorted by name with natural byte order (of the decoded names, as the
    // query API documents), then encoded with the unreserved set.
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .filter(|(k, _)| k != "Signature")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    sorted.sort();
    let mut canonical_query = String::new();
    for (i, (k, v)) in sorted.iter().enumerate() {
        if i > 0 {
            canonical_query.push('&');
        }
        canonical::uri_encode_into(k.as_bytes(), false, &mut canonical_query);
        canonical_query.push('=');
        canonical::uri_encode_into(v.as_bytes(), false, &mut canonical_query);
    }

    let host = header(parts.headers, "host")
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let mut hosts = vec![host.clone()];
    let bare = host_without_port(&host).to_string();
    if bare != host {
        hosts.push(bare);
    }
    let path = if parts.path.is_empty() {
        "/"
    } else {
        parts.path
    };
    for host in &hosts {
        let sts = format!("{}\n{host}\n{path}\n{canonical_query}", parts.method);
        let mac: Vec<u8> = if sha1 {
            hmac_sha1(secret.as_bytes(), sts.as_bytes()).to_vec()
        } else {
            hmac_sha256(secret.as_bytes(), sts.as_bytes()).to_vec()
        };
        let expected = base64::engine::general_purpose::STANDARD.encode(mac);
        if ct_eq(expected.as_bytes(), claim.signature.as_bytes()) {
            return Ok(());
        }
    }
    Err(errors::signature_mismatch(""))
}

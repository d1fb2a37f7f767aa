//! Finding who a request claims to be signed by, without any secret: the
//! `Authorization` header (SigV4 or S3's SigV2), SigV4 presigned query
//! parameters, S3's SigV2 query parameters, or the query API's SigV2
//! parameters (in the query or the url-encoded POST form). Malformed claims
//! become the AWS error the client would get from AWS; deciding whether the
//! signature is right is left to `verify`.

use http::HeaderMap;
use nimbus_core::AwsError;

use crate::canonical;
use crate::clock;
use crate::errors::{self, is_s3};
use crate::{Claim, HttpParts, Streaming, V2Form};

pub(crate) const V4_ALGORITHM: &str = "AWS4-HMAC-SHA256";

const CREDENTIAL_FORMAT: &str =
    "the Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".";

/// The first value of a header as text, if present and visible ASCII.
pub(crate) fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The parts of a SigV4 credential (`AKID/20130524/us-east-1/s3/aws4_request`).
struct Credential<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    terminator: &'a str,
}

fn parse_credential(s: &str) -> Option<Credential<'_>> {
    // Split from the right: the scope has a fixed shape, the key id is the rest.
    let mut it = s.trim().rsplitn(5, '/');
    let terminator = it.next()?;
    let service = it.next()?;
    let region = it.next()?;
    let date = it.next()?;
    let access_key_id = it.next()?;
    if [access_key_id, date, region, service, terminator]
        .iter()
        .any(|p| p.is_empty())
        || date.len() != 8
        || !date.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some(Credential {
        access_key_id,
        date,
        region,
        service,
        terminator,
    })
}

/// Guesses the scope's service from a credential string that may be malformed,
/// to pick S3's or the common error dialect when the caller gave no hint.
fn scope_service(credential: Option<&str>) -> Option<&str> {
    let mut it = credential?.trim().rsplit('/');
    it.next()?;
    it.next()
}

fn wants_s3(service_hint: Option<&str>, credential: Option<&str>) -> bool {
    match service_hint {
        Some(hint) => is_s3(hint),
        None => scope_service(credential).is_some_and(is_s3),
    }
}

fn split_signed_headers(s: &str) -> Vec<String> {
    s.split(';')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect()
}

const S3_PAYLOAD_LITERALS: [&str; 6] = [
    "UNSIGNED-PAYLOAD",
    "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
    "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD",
    "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER",
];

pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The streaming mode announced by `x-amz-content-sha256`; for S3 the value
/// must be one of the documented literals or a SHA-256.
fn streaming_mode(headers: &HeaderMap, s3: bool) -> Result<Streaming, AwsError> {
    let Some(raw) = headers.get("x-amz-content-sha256") else {
        return Ok(Streaming::None);
    };
    let value = raw.to_str().map(str::trim).unwrap_or("");
    if s3 && !is_sha256_hex(value) && !S3_PAYLOAD_LITERALS.contains(&value) {
        return Err(errors::invalid_argument_s3(
            "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD, STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER or a valid sha256 value.",
            "x-amz-content-sha256",
            value,
        ));
    }
    Ok(match value {
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" => Streaming::SignedChunks,
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" => Streaming::SignedChunksTrailer,
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER" => Streaming::UnsignedTrailer,
        _ => Streaming::None,
    })
}

fn lookup<'p>(pairs: &'p [(String, String)], name: &str) -> Option<&'p str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn lookup_ignore_case<'p>(pairs: &'p [(String, String)], name: &str) -> Option<&'p str> {
    pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Finds the signature claim in headers (Authorization: AWS4-HMAC-SHA256 ..., Authorization: AWS AKID:sig),
/// presigned query (X-Amz-Algorithm/X-Amz-Credential/... or AWSAccessKeyId/Expires/Signature), or a query-API SigV2
/// (SignatureVersion=2 among `form_params`, which the caller passes: the parsed url-encoded body of a POST form, else empty).
///
/// `service_hint` (the signing name, e.g. `"s3"`) picks the error dialect before the claim names
/// its service; without it the credential scope decides. S3 rejects a request carrying more
/// than one mechanism; other services take the header first, then SigV4 query, then SigV2.
pub fn parse_claim(
    parts: &HttpParts,
    form_params: &[(String, String)],
    service_hint: Option<&str>,
) -> Result<Claim, AwsError> {
    let hint_s3 = service_hint.is_some_and(is_s3);
    let query = canonical::query_pairs(parts.query);
    let auth = parts.headers.get(http::header::AUTHORIZATION);

    let v4_query = ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature"]
        .iter()
        .any(|n| lookup(&query, n).is_some());
    let signature_version =
        lookup(&query, "SignatureVersion").or_else(|| lookup(form_params, "SignatureVersion"));
    let has_v2_key =
        |name: &str| lookup(&query, name).is_some() || lookup(form_params, name).is_some();
    let query_api = !hint_s3
        && signature_version.is_some()
        && (has_v2_key("AWSAccessKeyId") || has_v2_key("Signature"));
    let s3_query = !query_api
        && (lookup(&query, "AWSAccessKeyId").is_some()
            || (hint_s3 && lookup(&query, "Signature").is_some()));

    let mechanisms = [auth.is_some(), v4_query, s3_query, query_api]
        .iter()
        .filter(|m| **m)
        .count();
    if mechanisms > 1 && hint_s3 {
        let value = auth.and_then(|v| v.to_str().ok()).unwrap_or("");
        return Err(errors::invalid_argument_s3(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified",
            "Authorization",
            value,
        ));
    }

    if let Some(value) = auth {
        let text = value.to_str().unwrap_or("");
        return parse_authorization(text, parts, service_hint);
    }
    if v4_query {
        return parse_v4_query(&query, parts, service_hint);
    }
    if s3_query {
        return parse_s3_v2_query(&query, parts);
    }
    if query_api {
        return parse_query_api_v2(&query, form_params, parts.query);
    }
    Ok(Claim::Anonymous)
}

fn parse_authorization(
    value: &str,
    parts: &HttpParts,
    service_hint: Option<&str>,
) -> Result<Claim, AwsError> {
    let value = value.trim();
    let (scheme, rest) = value
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((value, ""));
    match scheme {
        V4_ALGORITHM => parse_v4_header(rest, value, parts, service_hint),
        "AWS" => parse_s3_v2_header(rest, value, parts),
        _ => {
            let credential = value
                .split_once("Credential=")
                .map(|(_, c)| c.split([',', ' ']).next().unwrap_or(""));
            if wants_s3(service_hint, credential) {
                Err(errors::invalid_argument_s3(
                    "Unsupported Authorization Type",
                    "Authorization",
                    value,
                ))
            } else {
                Err(errors::incomplete_signature(format!(
                    "Unsupported AWS 'algorithm': '{scheme}'. Authorization={value}"
                )))
            }
        }
    }
}

/// The request time of a header-signed SigV4 request, in the basic form.
fn request_amz_date(
    headers: &HeaderMap,
    s3: bool,
    authorization: &str,
) -> Result<String, AwsError> {
    if let Some(raw) = headers.get("x-amz-date") {
        let v = raw.to_str().map(str::trim).unwrap_or("");
        if clock::parse_amz_date(v).is_some() {
            return Ok(v.to_string());
        }
        return Err(if s3 {
            errors::s3_missing_date()
        } else {
            errors::incomplete_signature(format!(
                "Date must be in ISO-8601 'basic format'. Got '{v}'. See http://en.wikipedia.org/wiki/ISO_8601"
            ))
        });
    }
    if let Some(raw) = headers.get(http::header::DATE) {
        let v = raw.to_str().unwrap_or("");
        if let Some(t) = clock::parse_http_date(v) {
            return Ok(clock::format_amz_date(t));
        }
        return Err(if s3 {
            errors::s3_missing_date()
        } else {
            errors::incomplete_signature(format!(
                "Date must be in ISO-8601 'basic format'. Got '{v}'. See http://en.wikipedia.org/wiki/ISO_8601"
            ))
        });
    }
    Err(if s3 {
        errors::s3_missing_date()
    } else {
        errors::incomplete_signature(format!(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization={authorization}"
        ))
    })
}

fn parse_v4_header(
    rest: &str,
    full: &str,
    parts: &HttpParts,
    service_hint: Option<&str>,
) -> Result<Claim, AwsError> {
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for component in rest
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|c| !c.is_empty())
    {
        match component.split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed_headers = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => {}
        }
    }
    let s3 = wants_s3(service_hint, credential);

    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        if s3 {
            return Err(errors::header_malformed_s3(
                "the authorization header requires three components: Credential, SignedHeaders, and Signature.",
            ));
        }
        let mut message = String::new();
        for (name, present) in [
            ("Credential", credential.is_some()),
            ("Signature", signature.is_some()),
            ("SignedHeaders", signed_headers.is_some()),
        ] {
            if !present {
                message.push_str(&format!(
                    "Authorization header requires '{name}' parameter. "
                ));
            }
        }
        message.push_str(&format!("Authorization={full}"));
        return Err(errors::incomplete_signature(message));
    };

    let Some(cred) = parse_credential(credential) else {
        return Err(if s3 {
            errors::header_malformed_s3(CREDENTIAL_FORMAT)
        } else {
            errors::incomplete_signature(format!(
                "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{credential}'"
            ))
        });
    };
    if cred.terminator != "aws4_request" {
        return Err(if s3 {
            errors::header_malformed_s3(CREDENTIAL_FORMAT)
        } else {
            AwsError::new(
                "SignatureDoesNotMatch",
                format!(
                    "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'.",
                    cred.terminator
                ),
            )
            .with_status(403)
        });
    }
    let signed = split_signed_headers(signed_headers);
    if signed.is_empty() {
        return Err(if s3 {
            errors::header_malformed_s3(
                "the authorization header requires three components: Credential, SignedHeaders, and Signature.",
            )
        } else {
            errors::incomplete_signature(format!(
                "Authorization header requires 'SignedHeaders' parameter. Authorization={full}"
            ))
        });
    }

    let amz_date = request_amz_date(parts.headers, s3, full)?;
    let amz_day = amz_date.get(..8).unwrap_or("");
    if cred.date != amz_day {
        return Err(if s3 {
            errors::header_malformed_s3(
                "Invalid credential date. Date is not the same as X-Amz-Date.",
            )
        } else {
            AwsError::new(
                "SignatureDoesNotMatch",
                format!(
                    "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{amz_day}', from '{amz_date}'.",
                    cred.date
                ),
            )
            .with_status(403)
        });
    }

    Ok(Claim::V4 {
        access_key_id: cred.access_key_id.to_string(),
        date: cred.date.to_string(),
        region: cred.region.to_string(),
        service: cred.service.to_string(),
        signed_headers: signed,
        signature: signature.trim().to_string(),
        presigned: false,
        amz_date,
        expires_secs: None,
        session_token: header(parts.headers, "x-amz-security-token").map(|t| t.trim().to_string()),
        streaming: streaming_mode(parts.headers, s3)?,
    })
}

fn parse_v4_query(
    query: &[(String, String)],
    parts: &HttpParts,
    service_hint: Option<&str>,
) -> Result<Claim, AwsError> {
    let algorithm = lookup(query, "X-Amz-Algorithm");
    let credential = lookup(query, "X-Amz-Credential");
    let date = lookup(query, "X-Amz-Date");
    let expires = lookup(query, "X-Amz-Expires");
    let signed_headers = lookup(query, "X-Amz-SignedHeaders");
    let signature = lookup(query, "X-Amz-Signature");
    let s3 = wants_s3(service_hint, credential);
    let fail = |message: String| -> AwsError {
        if s3 {
            errors::query_parameters_error_s3(message)
        } else {
            errors::incomplete_signature(message)
        }
    };

    let (
        Some(algorithm),
        Some(credential),
        Some(date),
        Some(expires),
        Some(signed_headers),
        Some(signature),
    ) = (
        algorithm,
        credential,
        date,
        expires,
        signed_headers,
        signature,
    )
    else {
        if s3 {
            return Err(errors::query_parameters_error_s3(
                "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.",
            ));
        }
        let mut message = String::new();
        for (name, value) in [
            ("X-Amz-Algorithm", algorithm),
            ("X-Amz-Credential", credential),
            ("X-Amz-Signature", signature),
            ("X-Amz-Date", date),
            ("X-Amz-SignedHeaders", signed_headers),
            ("X-Amz-Expires", expires),
        ] {
            if value.is_none() {
                message.push_str(&format!(
                    "AWS query-string parameters must include '{name}'. "
                ));
            }
        }
        message.push_str("Re-examine the query-string parameters.");
        return Err(errors::incomplete_signature(message));
    };

    if algorithm != V4_ALGORITHM {
        return Err(if s3 {
            errors::query_parameters_error_s3("X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"")
        } else {
            errors::incomplete_signature(format!("Unsupported AWS 'algorithm': '{algorithm}'"))
        });
    }
    let Some(cred) = parse_credential(credential) else {
        return Err(if s3 {
            errors::query_parameters_error_s3(format!(
                "Error parsing the X-Amz-Credential parameter; {CREDENTIAL_FORMAT}"
            ))
        } else {
            errors::incomplete_signature(format!(
                "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{credential}'"
            ))
        });
    };
    if cred.terminator != "aws4_request" {
        return Err(fail(format!(
            "Error parsing the X-Amz-Credential parameter; {CREDENTIAL_FORMAT}"
        )));
    }
    let date = date.trim();
    if clock::parse_amz_date(date).is_none() {
        return Err(fail(
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"".to_string(),
        ));
    }
    let amz_day = date.get(..8).unwrap_or("");
    if cred.date != amz_day {
        return Err(fail(format!(
            "Invalid credential date \"{}\". This date is not the same as X-Amz-Date: \"{amz_day}\".",
            cred.date
        )));
    }
    let expires = expires.trim();
    let expires_secs = match expires.parse::<u64>() {
        Ok(n) => n,
        Err(_)
            if expires.starts_with('-')
                && expires.get(1..).is_some_and(|d| d.parse::<u64>().is_ok()) =>
        {
            return Err(fail("X-Amz-Expires must be non-negative".to_string()));
        }
        Err(_) => return Err(fail("X-Amz-Expires should be a number".to_string())),
    };
    if expires_secs > clock::MAX_PRESIGN_EXPIRES_SECS {
        return Err(fail(format!(
            "X-Amz-Expires must be less than a week (in seconds) that is; {}",
            clock::MAX_PRESIGN_EXPIRES_SECS
        )));
    }
    let signed = split_signed_headers(signed_headers);
    if signed.is_empty() {
        return Err(fail(
            "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.".to_string(),
        ));
    }
    let session_token = lookup(query, "X-Amz-Security-Token")
        .or_else(|| header(parts.headers, "x-amz-security-token"))
        .map(|t| t.trim().to_string());

    Ok(Claim::V4 {
        access_key_id: cred.access_key_id.to_string(),
        date: cred.date.to_string(),
        region: cred.region.to_string(),
        service: cred.service.to_string(),
        signed_headers: signed,
        signature: signature.trim().to_string(),
        presigned: true,
        amz_date: date.to_string(),
        expires_secs: Some(expires_secs),
        session_token,
        streaming: streaming_mode(parts.headers, s3)?,
    })
}

fn parse_s3_v2_header(rest: &str, full: &str, parts: &HttpParts) -> Result<Claim, AwsError> {
    let invalid = || {
        errors::invalid_argument_s3(
            "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature",
            "Authorization",
            full,
        )
    };
    let (key, signature) = rest.trim().split_once(':').ok_or_else(invalid)?;
    let (key, signature) = (key.trim(), signature.trim());
    if key.is_empty() || signature.is_empty() {
        return Err(invalid());
    }
    Ok(Claim::V2 {
        access_key_id: key.to_string(),
        signature: signature.to_string(),
        presigned: false,
        expires_epoch: None,
        session_token: header(parts.headers, "x-amz-security-token").map(|t| t.trim().to_string()),
        form: V2Form::S3Header,
    })
}

fn parse_s3_v2_query(query: &[(String, String)], parts: &HttpParts) -> Result<Claim, AwsError> {
    let missing = || {
        AwsError::access_denied(
            "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters",
        )
    };
    let key = lookup(query, "AWSAccessKeyId")
        .filter(|k| !k.is_empty())
        .ok_or_else(missing)?;
    let signature = lookup(query, "Signature")
        .filter(|s| !s.is_empty())
        .ok_or_else(missing)?;
    let expires = lookup(query, "Expires")
        .and_then(|e| e.trim().parse::<u64>().ok())
        .ok_or_else(missing)?;
    let session_token = lookup_ignore_case(query, "x-amz-security-token")
        .or_else(|| header(parts.headers, "x-amz-security-token"))
        .map(|t| t.trim().to_string());
    Ok(Claim::V2 {
        access_key_id: key.to_string(),
        signature: signature.to_string(),
        presigned: true,
        expires_epoch: Some(expires),
        session_token,
        form: V2Form::S3Query,
    })
}

fn parse_query_api_v2(
    query: &[(String, String)],
    form_params: &[(String, String)],
    raw_query: &str,
) -> Result<Claim, AwsError> {
    // The query API decodes its parameters by form rules (`+` is a space).
    let form_query = canonical::form_query_pairs(raw_query);
    let get = |name: &str| lookup(&form_query, name).or_else(|| lookup(form_params, name));

    let version = get("SignatureVersion").unwrap_or("");
    if version.trim() != "2" {
        return Err(AwsError::invalid_parameter(format!(
            "Value ({version}) for parameter SignatureVersion is invalid. Valid values are: 2."
        )));
    }
    let method =
        get("SignatureMethod").ok_or_else(|| AwsError::missing_parameter("SignatureMethod"))?;
    if method != "HmacSHA256" && method != "HmacSHA1" {
        return Err(AwsError::invalid_parameter(format!(
            "Value ({method}) for parameter SignatureMethod is invalid. Valid values are: HmacSHA256, HmacSHA1."
        )));
    }
    let key = get("AWSAccessKeyId")
        .filter(|k| !k.is_empty())
        .ok_or_else(|| AwsError::missing_parameter("AWSAccessKeyId"))?;
    // Base64 never holds a space: a space here was a `+` sent unescaped.
    let signature = get("Signature")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| AwsError::missing_parameter("Signature"))?
        .replace(' ', "+");
    let timestamp = get("Timestamp");
    let expires = get("Expires");
    if timestamp.is_none() && expires.is_none() {
        return Err(AwsError::missing_parameter("Timestamp"));
    }
    if let Some(ts) = timestamp {
        if clock::parse_iso8601(ts).is_none() {
            return Err(AwsError::invalid_parameter(format!(
                "Value ({ts}) for parameter Timestamp is invalid. Must be in ISO8601 format."
            )));
        }
    }
    let expires_epoch = match expires {
        Some(e) => Some(
            clock::parse_iso8601(e)
                .map(|t| t.max(0).unsigned_abs())
                .ok_or_else(|| {
                    AwsError::invalid_parameter(format!(
                        "Value ({e}) for parameter Expires is invalid. Must be in ISO8601 format."
                    ))
                })?,
        ),
        None => None,
    };
    Ok(Claim::V2 {
        access_key_id: key.to_string(),
        signature,
        presigned: lookup(query, "Signature").is_some(),
        expires_epoch,
        session_token: get("SecurityToken").map(str::to_string),
        form: V2Form::QueryApi,
    })
}

//! Browser-form uploads (S3 `POST Object`): the edge parses the
//! `multipart/form-data` body and hands over the fields that came before the
//! file part; [`read_post_form`] finds who claims to have signed the form and
//! which object key it names, [`verify_post_policy`] checks the signature over
//! the base64 policy (SigV2 HMAC-SHA1 or SigV4 HMAC-SHA256) and every policy
//! rule (expiration, conditions, no field left uncovered), and
//! [`check_content_length`] enforces the policy's `content-length-range` once
//! the caller has streamed the file and knows its size.

use base64::Engine as _;
use nimbus_core::timestamp::parse_iso8601_parts;
use nimbus_core::AwsError;
use serde_json::Value;

use crate::claim::V4_ALGORITHM;
use crate::crypto::{ct_eq, hmac_sha256, signing_key};
use crate::errors;
use crate::v2::sign_v2_s3;

/// The fields of a browser form, as the edge parsed them.
pub struct PostForm<'a> {
    /// Form fields in order as received (names as sent; field-name matching is
    /// case-insensitive, values exact), excluding the file part.
    pub fields: &'a [(String, String)],
    /// The bucket the form was posted to (from the host or the path).
    pub bucket: &'a str,
    /// Filename of the file part, for `${filename}`.
    pub file_name: Option<&'a str>,
}

impl<'a> PostForm<'a> {
    /// The first value of the field `name` (case-insensitive), if any.
    pub fn field(&self, name: &str) -> Option<&'a str> {
        self.values(name).next()
    }

    fn values<'n>(&self, name: &'n str) -> impl Iterator<Item = &'a str> + 'n
    where
        'a: 'n,
    {
        let fields: &'a [(String, String)] = self.fields;
        fields
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Who claims to have signed a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostSignature {
    /// No policy at all: only allowed when the bucket permits anonymous writes.
    Anonymous,
    V2 {
        access_key_id: String,
    },
    V4 {
        access_key_id: String,
        /// yyyymmdd, from the credential scope.
        date: String,
        region: String,
        /// The `x-amz-date` field (`20151229T000000Z`).
        amz_date: String,
    },
}

impl PostSignature {
    /// The access key the form claims, if any.
    pub fn access_key_id(&self) -> Option<&str> {
        match self {
            PostSignature::Anonymous => None,
            PostSignature::V2 { access_key_id } | PostSignature::V4 { access_key_id, .. } => {
                Some(access_key_id)
            }
        }
    }
}

/// What [`read_post_form`] found, before any secret is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedPost {
    /// The object key, with `${filename}` substituted.
    pub key: String,
    pub signature: PostSignature,
    /// `(min, max)` bytes from the policy's `content-length-range`, for the
    /// caller to enforce while streaming (see [`check_content_length`]).
    /// Read leniently here; only trust it after [`verify_post_policy`] passed.
    pub content_length_range: Option<(u64, u64)>,
    /// The `x-amz-security-token` field.
    pub session_token: Option<String>,
}

/// Fields that never need a policy condition: the signature itself, the
/// policy, the file, and whatever the page author marked `x-ignore-`.
const EXEMPT_FIELDS: &[&str] = &[
    "x-amz-signature",
    "signature",
    "awsaccesskeyid",
    "policy",
    "file",
];
const IGNORED_PREFIX: &str = "x-ignore-";

const FILENAME_VARIABLE: &str = "${filename}";

fn missing_field(name: &str) -> AwsError {
    errors::invalid_argument_s3(
        &format!(
            "Bucket POST must contain a field named '{name}'.  If it is specified, please check the order of the fields."
        ),
        name,
        "",
    )
}

fn invalid_policy(detail: &str) -> AwsError {
    AwsError::new("InvalidPolicyDocument", format!("Invalid Policy: {detail}"))
}

fn policy_denied(detail: &str) -> AwsError {
    AwsError::access_denied(format!("Invalid according to Policy: {detail}"))
}

/// Replaces `${filename}` in a field value with the base name of the uploaded
/// file. Browsers may send a full or partial path (old Internet Explorer sent
/// `C:\dir\file.txt`), and S3 keeps only what follows the last `/` or `\`. A
/// file part without a filename substitutes the empty string.
pub fn substitute_filename(value: &str, file_name: Option<&str>) -> String {
    if !value.contains(FILENAME_VARIABLE) {
        return value.to_string();
    }
    let name = file_name.unwrap_or("");
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    value.replace(FILENAME_VARIABLE, base)
}

fn present(form: &PostForm, name: &str) -> bool {
    form.field(name).is_some()
}

fn required<'f>(form: &'f PostForm, name: &str, shown: &str) -> Result<&'f str, AwsError> {
    match form.field(name) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(missing_field(shown)),
    }
}

/// The SigV4 credential of a form: `AKID/yyyymmdd/region/s3/aws4_request`.
fn parse_credential(value: &str) -> Result<(String, String, String), AwsError> {
    let malformed = || {
        errors::invalid_argument_s3(
            "Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".",
            "x-amz-credential",
            value,
        )
    };
    // Split from the right: the scope has a fixed shape, the key id is the rest.
    let mut it = value.trim().rsplitn(5, '/');
    let (Some(terminator), Some(service), Some(region), Some(date), Some(akid)) =
        (it.next(), it.next(), it.next(), it.next(), it.next())
    else {
        return Err(malformed());
    };
    if [akid, date, region, service].iter().any(|p| p.is_empty())
        || date.len() != 8
        || !date.bytes().all(|b| b.is_ascii_digit())
        || terminator != "aws4_request"
    {
        return Err(malformed());
    }
    if service != "s3" {
        return Err(errors::invalid_argument_s3(
            &format!(
                "Error parsing the X-Amz-Credential parameter; incorrect service \"{service}\". This endpoint belongs to \"s3\"."
            ),
            "x-amz-credential",
            value,
        ));
    }
    Ok((akid.to_string(), date.to_string(), region.to_string()))
}

/// Step 1, before the secret is known: which key signed the form and the
/// resolved object key. Errors are S3's `InvalidArgument` 400 for a missing
/// `key`, a policy without signature fields (or signature fields without a
/// policy), an incomplete or malformed SigV4 field set.
pub fn read_post_form(form: &PostForm) -> Result<CheckedPost, AwsError> {
    let raw_key = required(form, "key", "key")?;
    let key = substitute_filename(raw_key, form.file_name);
    if key.is_empty() {
        return Err(missing_field("key"));
    }
    let session_token = form.field("x-amz-security-token").map(str::to_string);

    let v4 = ["x-amz-algorithm", "x-amz-credential", "x-amz-signature"]
        .iter()
        .any(|f| present(form, f));
    let v2 = present(form, "awsaccesskeyid") || present(form, "signature");
    let policy = form.field("policy").filter(|p| !p.is_empty());

    let signature = match (policy, v4, v2) {
        (None, false, false) => PostSignature::Anonymous,
        (None, _, _) => return Err(missing_field("policy")),
        (Some(_), true, _) => {
            let algorithm = required(form, "x-amz-algorithm", "X-Amz-Algorithm")?;
            if algorithm != V4_ALGORITHM {
                return Err(errors::invalid_argument_s3(
                    "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"",
                    "x-amz-algorithm",
                    algorithm,
                ));
            }
            let credential = required(form, "x-amz-credential", "X-Amz-Credential")?;
            let (access_key_id, date, region) = parse_credential(credential)?;
            let amz_date = required(form, "x-amz-date", "X-Amz-Date")?;
            required(form, "x-amz-signature", "X-Amz-Signature")?;
            PostSignature::V4 {
                access_key_id,
                date,
                region,
                amz_date: amz_date.to_string(),
            }
        }
        (Some(_), false, _) => {
            let access_key_id = required(form, "awsaccesskeyid", "AWSAccessKeyId")?;
            required(form, "signature", "Signature")?;
            PostSignature::V2 {
                access_key_id: access_key_id.to_string(),
            }
        }
    };

    // Lenient here on purpose: a malformed policy is reported by step 2, after
    // the signature (which covers the policy text) has been checked.
    let content_length_range = policy
        .and_then(|p| parse_policy(p).ok())
        .and_then(|p| p.length_range());

    Ok(CheckedPost {
        key,
        signature,
        content_length_range,
        session_token,
    })
}

/// Step 2: verifies the signature with the secret and the policy itself.
///
/// SigV2 signs with base64(HMAC-SHA1(secret, policy)), SigV4 with
/// hex(HMAC-SHA256(signing key of the credential's date and region for
/// `s3`, policy)), both over the `policy` field exactly as sent. A wrong
/// signature is `SignatureDoesNotMatch` 403. `secret_access_key: None` is open
/// mode: the signature math is skipped, but the policy is still enforced.
///
/// The policy is base64 JSON with `expiration` (ISO 8601; past it,
/// `AccessDenied` "Invalid according to Policy: Policy expired.") and
/// `conditions`. Every condition must hold (else `AccessDenied` "... Policy
/// Condition failed: [...]"), and every form field except the signature, the
/// policy, the file and `x-ignore-*` must be named by one (else `AccessDenied`
/// "... Extra input fields: NAME"). A policy that cannot be read is
/// `InvalidPolicyDocument` 400. An anonymous form has nothing to verify.
pub fn verify_post_policy(
    form: &PostForm,
    checked: &CheckedPost,
    secret_access_key: Option<&str>,
    now_epoch_secs: i64,
) -> Result<(), AwsError> {
    if checked.signature == PostSignature::Anonymous {
        return Ok(());
    }
    let policy_b64 = form
        .field("policy")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| missing_field("policy"))?;

    if let Some(secret) = secret_access_key {
        check_signature(form, &checked.signature, policy_b64, secret)?;
    }

    let policy = parse_policy(policy_b64)?;
    if now_epoch_secs >= policy.expiration {
        return Err(policy_denied("Policy expired."));
    }
    for condition in &policy.conditions {
        if !condition.holds(form) {
            return Err(policy_denied(&format!(
                "Policy Condition failed: {}",
                condition.shown()
            )));
        }
    }
    for (name, _) in form.fields {
        let lower = name.to_ascii_lowercase();
        if EXEMPT_FIELDS.contains(&lower.as_str()) || lower.starts_with(IGNORED_PREFIX) {
            continue;
        }
        if !policy.conditions.iter().any(|c| c.names(&lower)) {
            return Err(policy_denied(&format!("Extra input fields: {name}")));
        }
    }
    Ok(())
}

fn check_signature(
    form: &PostForm,
    signature: &PostSignature,
    policy_b64: &str,
    secret: &str,
) -> Result<(), AwsError> {
    let (access_key_id, provided, expected) = match signature {
        PostSignature::Anonymous => return Ok(()),
        PostSignature::V2 { access_key_id } => {
            let provided = form.field("signature").unwrap_or("");
            (access_key_id, provided, sign_v2_s3(secret, policy_b64))
        }
        PostSignature::V4 {
            access_key_id,
            date,
            region,
            ..
        } => {
            let provided = form.field("x-amz-signature").unwrap_or("");
            (
                access_key_id,
                provided,
                sign_v4(policy_b64, secret, date, region),
            )
        }
    };
    // Hex is case-insensitive; base64 is not, so only SigV4 is lowercased.
    let provided_cmp = match signature {
        PostSignature::V4 { .. } => provided.trim().to_ascii_lowercase(),
        _ => provided.trim().to_string(),
    };
    if ct_eq(expected.as_bytes(), provided_cmp.as_bytes()) {
        Ok(())
    } else {
        Err(errors::signature_mismatch_s3_details(
            access_key_id,
            policy_b64,
            provided,
            None,
        ))
    }
}

fn sign_v4(policy_b64: &str, secret: &str, date: &str, region: &str) -> String {
    let key = signing_key(secret, date, region, "s3");
    hex::encode(hmac_sha256(&key, policy_b64.as_bytes()))
}

/// For the caller after the upload is streamed: S3's `EntityTooSmall` /
/// `EntityTooLarge` 400 when `size` is outside the policy's
/// `content-length-range` (inclusive bounds).
pub fn check_content_length(range: Option<(u64, u64)>, size: u64) -> Result<(), AwsError> {
    let Some((min, max)) = range else {
        return Ok(());
    };
    if size < min {
        return Err(AwsError::new(
            "EntityTooSmall",
            "Your proposed upload is smaller than the minimum allowed size",
        )
        .with_field("ProposedSize", size.to_string())
        .with_field("MinSizeAllowed", min.to_string()));
    }
    if size > max {
        return Err(AwsError::new(
            "EntityTooLarge",
            "Your proposed upload exceeds the maximum allowed size",
        )
        .with_field("ProposedSize", size.to_string())
        .with_field("MaxSizeAllowed", max.to_string()));
    }
    Ok(())
}

/// Builds the `policy` and `Signature` fields of a SigV2 form.
pub fn sign_post_policy_v2(policy_json: &str, secret: &str) -> (String, String) {
    let policy_b64 = base64::engine::general_purpose::STANDARD.encode(policy_json);
    let signature = sign_v2_s3(secret, &policy_b64);
    (policy_b64, signature)
}

/// Builds the `policy` and `X-Amz-Signature` fields of a SigV4 form; `date` is
/// the credential's yyyymmdd.
pub fn sign_post_policy_v4(
    policy_json: &str,
    secret: &str,
    date: &str,
    region: &str,
) -> (String, String) {
    let policy_b64 = base64::engine::general_purpose::STANDARD.encode(policy_json);
    let signature = sign_v4(&policy_b64, secret, date, region);
    (policy_b64, signature)
}

struct Policy {
    expiration: i64,
    conditions: Vec<Condition>,
}

impl Policy {
    /// The tightest range when a policy repeats `content-length-range`, since
    /// every condition must hold.
    fn length_range(&self) -> Option<(u64, u64)> {
        self.conditions.iter().fold(None, |acc, c| match (acc, c) {
            (None, Condition::LengthRange { min, max }) => Some((*min, *max)),
            (Some((a, b)), Condition::LengthRange { min, max }) => Some((a.max(*min), b.min(*max))),
            (acc, _) => acc,
        })
    }
}

#[derive(Debug)]
enum Condition {
    Eq {
        /// Lowercase, without `$`.
        field: String,
        /// As written in the policy, for the error message.
        shown_field: String,
        value: String,
    },
    StartsWith {
        field: String,
        shown_field: String,
        prefix: String,
    },
    LengthRange {
        min: u64,
        max: u64,
    },
    /// A condition S3 cannot interpret (unknown operation, wrong arity or
    /// types, a field without `$`). S3 reports it as a failed condition rather
    /// than a bad document, so it is kept to fail in its turn.
    Unreadable {
        /// Lowercase field name when one could be read, so that the field does
        /// not also count as extra.
        field: Option<String>,
        shown: String,
    },
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

impl Condition {
    /// S3's rendering in error messages: `["eq", "$key", "x"]`.
    fn shown(&self) -> String {
        match self {
            Condition::Eq {
                shown_field, value, ..
            } => format!(
                "[\"eq\", {}, {}]",
                json_str(&format!("${shown_field}")),
                json_str(value)
            ),
            Condition::StartsWith {
                shown_field,
                prefix,
                ..
            } => format!(
                "[\"starts-with\", {}, {}]",
                json_str(&format!("${shown_field}")),
                json_str(prefix)
            ),
            Condition::LengthRange { min, max } => {
                format!("[\"content-length-range\", {min}, {max}]")
            }
            Condition::Unreadable { shown, .. } => shown.clone(),
        }
    }

    fn names(&self, lower_field: &str) -> bool {
        match self {
            Condition::Eq { field, .. } | Condition::StartsWith { field, .. } => {
                field == lower_field
            }
            Condition::Unreadable {
                field: Some(field), ..
            } => field == lower_field,
            _ => false,
        }
    }

    fn holds(&self, form: &PostForm) -> bool {
        match self {
            Condition::Eq { field, value, .. } => each_value(form, field, |v| v == value.as_str()),
            Condition::StartsWith { field, prefix, .. } => {
                if prefix.is_empty() {
                    return true;
                }
                // S3 reads a Content-Type with commas as a list, each member
                // of which must start with the prefix.
                let content_type = field == "content-type";
                each_value(form, field, |v| {
                    if content_type {
                        v.split(',')
                            .all(|part| part.trim().starts_with(prefix.as_str()))
                    } else {
                        v.starts_with(prefix.as_str())
                    }
                })
            }
            // Enforced by the caller once the size is known.
            Condition::LengthRange { .. } => true,
            Condition::Unreadable { .. } => false,
        }
    }
}

/// Applies `test` to every value the form sends for `field`: all must pass.
/// `$bucket` is the bucket posted to, and an absent field reads as empty. A
/// value with `${filename}` passes if either the value as sent or the value
/// after substitution does: a policy written before the file is chosen can
/// only name the variable, and the substituted value is what gets stored.
fn each_value(form: &PostForm, field: &str, test: impl Fn(&str) -> bool) -> bool {
    if field == "bucket" {
        return test(form.bucket);
    }
    let mut any = false;
    for v in form.values(field) {
        any = true;
        let ok = test(v)
            || (v.contains(FILENAME_VARIABLE) && test(&substitute_filename(v, form.file_name)));
        if !ok {
            return false;
        }
    }
    any || test("")
}

/// S3 documents `\$` as the escape for a literal dollar sign, which JSON does
/// not know; it is turned into a plain `$` before parsing. Other escapes are
/// left for the JSON parser, skipping the escaped character so that `\\$` stays
/// an escaped backslash followed by a dollar sign.
fn unescape_dollar(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('$') => out.push('$'),
            Some(next) => {
                out.push('\\');
                out.push(next);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn parse_policy(policy_b64: &str) -> Result<Policy, AwsError> {
    // Some signers wrap base64 at 60 or 76 columns; the signature covers the
    // field as sent, but the document is the same without the line breaks.
    let compact: String = policy_b64
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| invalid_policy("Invalid Base64 Encoding."))?;
    let text = String::from_utf8(bytes).map_err(|_| invalid_policy("Invalid JSON."))?;
    let doc: Value = serde_json::from_str(&unescape_dollar(&text))
        .map_err(|_| invalid_policy("Invalid JSON."))?;
    let Value::Object(doc) = doc else {
        return Err(invalid_policy("Invalid JSON."));
    };

    let expiration = match doc.get("expiration") {
        None => return Err(invalid_policy("Policy missing expiration.")),
        Some(Value::String(s)) => parse_iso8601_parts(s.trim())
            .and_then(|p| p.strict_epoch_secs())
            .ok_or_else(|| invalid_policy(&format!("Invalid 'expiration' value: '{s}'")))?,
        Some(other) => {
            return Err(invalid_policy(&format!(
                "Invalid 'expiration' value: '{other}'"
            )))
        }
    };
    let conditions = match doc.get("conditions") {
        None => return Err(invalid_policy("Policy missing conditions.")),
        Some(Value::Array(items)) => items
            .iter()
            .map(parse_condition)
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => {
            return Err(invalid_policy(
                "Invalid 'conditions' value: must be a List.",
            ))
        }
    };
    Ok(Policy {
        expiration,
        conditions,
    })
}

fn parse_condition(item: &Value) -> Result<Condition, AwsError> {
    match item {
        Value::Object(map) => {
            let mut it = map.iter();
            let (Some((name, value)), None) = (it.next(), it.next()) else {
                return Err(invalid_policy(
                    "Invalid Simple-Condition: Simple-Conditions must have exactly one property specified.",
                ));
            };
            let field = name.to_ascii_lowercase();
            Ok(match value {
                Value::String(value) => Condition::Eq {
                    field,
                    shown_field: name.clone(),
                    value: value.clone(),
                },
                other => Condition::Unreadable {
                    shown: format!("[\"eq\", {}, {}]", json_str(&format!("${name}")), other),
                    field: Some(field),
                },
            })
        }
        Value::Array(parts) => Ok(parse_array_condition(parts)),
        other => Ok(Condition::Unreadable {
            field: None,
            shown: other.to_string(),
        }),
    }
}

fn parse_array_condition(parts: &[Value]) -> Condition {
    let shown = || {
        let items: Vec<String> = parts.iter().map(Value::to_string).collect();
        format!("[{}]", items.join(", "))
    };
    let field_of = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .and_then(|s| s.strip_prefix('$'))
            .map(|s| s.to_string())
    };
    let op = parts
        .first()
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase);
    match (op.as_deref(), parts.len()) {
        (Some(op @ ("eq" | "starts-with")), 3) => {
            let field = field_of(parts.get(1));
            match (field, parts.get(2).and_then(Value::as_str)) {
                (Some(name), Some(value)) if !name.is_empty() => {
                    let field = name.to_ascii_lowercase();
                    if op == "eq" {
                        Condition::Eq {
                            field,
                            shown_field: name,
                            value: value.to_string(),
                        }
                    } else {
                        Condition::StartsWith {
                            field,
                            shown_field: name,
                            prefix: value.to_string(),
                        }
                    }
                }
                (name, _) => Condition::Unreadable {
                    field: name.map(|n| n.to_ascii_lowercase()),
                    shown: shown(),
                },
            }
        }
        (Some("content-length-range"), 3) => {
            match (
                parts.get(1).and_then(Value::as_u64),
                parts.get(2).and_then(Value::as_u64),
            ) {
                (Some(min), Some(max)) => Condition::LengthRange { min, max },
                _ => Condition::Unreadable {
                    field: None,
                    shown: shown(),
                },
            }
        }
        _ => Condition::Unreadable {
            field: field_of(parts.get(1)).map(|n| n.to_ascii_lowercase()),
            shown: shown(),
        },
    }
}

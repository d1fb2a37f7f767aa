//! Listings: ListObjects (v1), ListObjectsV2 and ListObjectVersions, read in
//! key order from the store (`catalog`), with prefixes, delimiters (common prefixes are
//! skipped over in one seek, not walked), markers, continuation tokens,
//! start-after and URL encoding of keys.

use crate::access::{self, Ask};
use crate::catalog::KeyStep;
use crate::input::{bool_of, int_of, required, secs, str_of};
use crate::{errors, Inner};
use base64::Engine as _;
use nimbus_core::{AwsError, RequestContext};
use serde_json::{json, Map, Value};
use std::mem::take;

/// Characters S3 escapes with `encoding-type=url`: everything but unreserved characters and `/`.
const URL_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

fn encoder(input: &Value) -> Result<impl Fn(&str) -> String, AwsError> {
    let url = match str_of(input, "EncodingType") {
        None => false,
        Some("url") => true,
        Some(other) => {
            return Err(errors::invalid_argument(
                "Invalid Encoding Method specified in Request",
                "encoding-type",
                other,
            ))
        }
    };
    Ok(move |s: &str| {
        if url {
            percent_encoding::utf8_percent_encode(s, URL_ENCODE).to_string()
        } else {
            s.to_string()
        }
    })
}

fn max_keys(input: &Value) -> Result<usize, AwsError> {
    match int_of(input, "MaxKeys") {
        None => Ok(1000),
        Some(n) if n < 0 => Err(errors::invalid_argument(
            "Argument maxKeys must be an integer between 0 and 2147483647",
            "maxKeys",
            &n.to_string(),
        )),
        Some(n) => Ok((n as usize).min(1000)),
    }
}

/// The first key after every key that starts with `prefix`.
fn after_prefix(prefix: &str) -> Option<String> {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0xff {
            bytes.push(last + 1);
            return String::from_utf8(bytes).ok();
        }
    }
    None
}

pub fn list_objects(
    inner: &Inner,
    ctx: &RequestContext,
    input: &Value,
    v2: bool,
) -> Result<Value, AwsError> {
    let bucket = inner.bucket(required(input, "Bucket")?)?;
    let record = bucket.record();
    let prefix = str_of(input, "Prefix").unwrap_or("");
    access::check(
        ctx,
        &record,
        &Ask {
            action: "s3:ListBucket",
            key: None,
            object_grants: None,
            extra: &[("s3:prefix", prefix)],
        },
    )?;
    let delimiter = str_of(input, "Delimiter").filter(|d| !d.is_empty());
    let max = max_keys(input)?;
    let encode = encoder(input)?;
    let token = str_of(input, "ContinuationToken");
    let start_after = if v2 {
        match token {
            Some(t) => Some(decode_token(t)?),
            None => str_of(input, "StartAfter").map(str::to_string),
        }
    } else {
        str_of(input, "Marker").map(str::to_string)
    };
    let fetch_owner = !v2 || bool_of(input, "FetchOwner").unwrap_or(false);

    let mut contents = Vec::new();
    let mut common = Vec::new();
    let mut last_key: Option<String> = None;
    let mut truncated = false;
    let mut owner_cache: Option<(String, Value)> = None;
    // Listing starts after the marker when it is within the prefix's range.
    let after = start_after.as_deref().filter(|s| *s >= prefix);
    bucket.scan_keys(after.unwrap_or(prefix), |key, versions| {
        if after == Some(key) {
            return KeyStep::Next;
        }
        if !key.starts_with(prefix) {
            return KeyStep::Stop;
        }
        let Some(current) = versions.last_mut().filter(|m| !m.delete_marker) else {
            return KeyStep::Next;
        };
        if contents.len() + common.len() == max {
            truncated = true;
            return KeyStep::Stop;
        }
        if let Some(d) = delimiter {
            if let Some(pos) = key[prefix.len()..].find(d) {
                let common_prefix = &key[..prefix.len() + pos + d.len()];
                // A prefix at or before the marker was listed on an earlier page.
                if start_after.as_deref().is_none_or(|s| common_prefix > s) {
                    common.push(common_prefix.to_string());
                    last_key = Some(common_prefix.to_string());
                }
                // Jump over every key under this common prefix.
                return match after_prefix(common_prefix) {
                    Some(next) => KeyStep::SkipTo(next),
                    None => KeyStep::Stop,
                };
            }
        }
        // Built member by member: json! goes through serde for every value.
        let mut entry = Map::with_capacity(8);
        entry.insert("Key".into(), Value::String(encode(key)));
        entry.insert("LastModified".into(), secs(current.last_modified_ms));
        // The summaries are dropped after this call: their strings move.
        entry.insert("ETag".into(), Value::String(take(&mut current.etag)));
        entry.insert("Size".into(), Value::from(current.size));
        let archived = current.is_archived();
        entry.insert(
            "StorageClass".into(),
            Value::String(take(&mut current.storage_class)),
        );
        if let Some((alg, _, kind)) = current.checksum.take() {
            entry.insert("ChecksumAlgorithm".into(), json!([alg]));
            entry.insert("ChecksumType".into(), Value::String(kind));
        }
        if fetch_owner {
            // Objects nearly always share one owner; its canonical id is a hash, so keep it.
            if owner_cache
                .as_ref()
                .is_none_or(|(o, _)| *o != current.owner)
            {
                let value = access::owner_value(&current.owner);
                owner_cache = Some((take(&mut current.owner), value));
            }
            if let Some((_, owner)) = &owner_cache {
                entry.insert("Owner".into(), owner.clone());
            }
        }
        if archived {
            if let Some(until) = current.restored_until_ms {
                entry.insert(
                    "RestoreStatus".into(),
                    json!({
                        "IsRestoreInProgress": until == 0,
                        "RestoreExpiryDate": until / 1000,
                    }),
                );
            }
        }
        contents.push(Value::Object(entry));
        last_key = Some(key.to_string());
        KeyStep::Next
    })?;
    let key_count = contents.len() + common.len();
    let common: Vec<Value> = common
        .iter()
        .map(|p| json!({"Prefix": encode(p)}))
        .collect();
    let mut out = json!({
        "Name": record.name,
        "Prefix": encode(prefix),
        "MaxKeys": int_of(input, "MaxKeys").unwrap_or(1000),
        "IsTruncated": truncated,
    });
    // Moved in rather than through json!, which would copy every entry once more.
    out["Contents"] = Value::Array(contents);
    out["CommonPrefixes"] = Value::Array(common);
    if let Some(d) = delimiter {
        out["Delimiter"] = json!(encode(d));
    }
    if str_of(input, "EncodingType").is_some() {
        out["EncodingType"] = json!("url");
    }
    if v2 {
        out["KeyCount"] = json!(key_count);
        if let Some(t) = token {
            out["ContinuationToken"] = json!(t);
        }
        if let Some(s) = str_of(input, "StartAfter") {
            out["StartAfter"] = json!(encode(s));
        }
        if truncated {
            if let Some(last) = &last_key {
                out["NextContinuationToken"] = json!(encode_token(last));
            }
        }
    } else {
        out["Marker"] = json!(encode(str_of(input, "Marker").unwrap_or("")));
        if truncated && delimiter.is_some() {
            if let Some(last) = &last_key {
                out["NextMarker"] = json!(encode(last));
            }
        }
    }
    Ok(out)
}

/// Continuation tokens are opaque to clients; nimbus's carry the last key listed.
fn encode_token(key: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(key.as_bytes())
}

fn decode_token(token: &str) -> Result<String, AwsError> {
    base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            errors::invalid_argument(
                "The continuation token provided is incorrect",
                "continuation-token",
                token,
            )
        })
}

pub fn list_object_versions(
    inner: &Inner,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, AwsError> {
    let bucket = inner.bucket(required(input, "Bucket")?)?;
    let record = bucket.record();
    let prefix = str_of(input, "Prefix").unwrap_or("");
    access::check(
        ctx,
        &record,
        &Ask {
            action: "s3:ListBucketVersions",
            key: None,
            object_grants: None,
            extra: &[("s3:prefix", prefix)],
        },
    )?;
    let delimiter = str_of(input, "Delimiter").filter(|d| !d.is_empty());
    let max = max_keys(input)?;
    let encode = encoder(input)?;
    let key_marker = str_of(input, "KeyMarker").filter(|k| !k.is_empty());
    let version_marker = str_of(input, "VersionIdMarker").filter(|v| !v.is_empty());

    let mut versions_out = Vec::new();
    let mut markers_out = Vec::new();
    let mut common = Vec::new();
    let mut count = 0usize;
    let mut truncated = false;
    let mut next: Option<(String, String)> = None;
    let mut owner_cache: Option<(String, Value)> = None;
    // Keys before the prefix are never listed, so the scan starts at the later of the two.
    let from = key_marker.filter(|k| *k > prefix).unwrap_or(prefix);
    // Without a version marker the key marker's own versions were listed already.
    let skip = key_marker.filter(|_| version_marker.is_none());
    bucket.scan_keys(from, |key, versions| {
        if skip == Some(key) {
            return KeyStep::Next;
        }
        if !key.starts_with(prefix) {
            return KeyStep::Stop;
        }
        if let Some(d) = delimiter {
            if let Some(pos) = key[prefix.len()..].find(d) {
                let cp = &key[..prefix.len() + pos + d.len()];
                if count == max {
                    truncated = true;
                    return KeyStep::Stop;
                }
                common.push(json!({"Prefix": encode(cp)}));
                count += 1;
                return match after_prefix(cp) {
                    Some(next) => KeyStep::SkipTo(next),
                    None => KeyStep::Stop,
                };
            }
        }
        // Newest first; after a version marker, only versions older than it.
        let mut skipping = key_marker == Some(key) && version_marker.is_some();
        let count_of_versions = versions.len();
        for (i, meta) in versions.iter_mut().enumerate().rev() {
            if skipping {
                if Some(meta.version_id.as_str()) == version_marker {
                    skipping = false;
                }
                continue;
            }
            if count == max {
                truncated = true;
                return KeyStep::Stop;
            }
            let latest = i + 1 == count_of_versions;
            next = Some((key.to_string(), meta.version_id.clone()));
            // Built member by member, strings moved (the summaries are dropped
            // after this call): json! goes through serde for every value.
            let mut entry = Map::with_capacity(8);
            entry.insert("Key".into(), Value::String(encode(key)));
            entry.insert(
                "VersionId".into(),
                Value::String(take(&mut meta.version_id)),
            );
            entry.insert("IsLatest".into(), Value::Bool(latest));
            entry.insert("LastModified".into(), secs(meta.last_modified_ms));
            // Versions nearly always share one owner; its canonical id is a hash, so keep it.
            if owner_cache.as_ref().is_none_or(|(o, _)| *o != meta.owner) {
                let value = access::owner_value(&meta.owner);
                owner_cache = Some((take(&mut meta.owner), value));
            }
            if let Some((_, owner)) = &owner_cache {
                entry.insert("Owner".into(), owner.clone());
            }
            if meta.delete_marker {
                markers_out.push(Value::Object(entry));
            } else {
                entry.insert("ETag".into(), Value::String(take(&mut meta.etag)));
                entry.insert("Size".into(), Value::from(meta.size));
                entry.insert(
                    "StorageClass".into(),
                    Value::String(take(&mut meta.storage_class)),
                );
                versions_out.push(Value::Object(entry));
            }
            count += 1;
        }
        KeyStep::Next
    })?;
    let mut out = json!({
        "Name": record.name,
        "Prefix": encode(prefix),
        "KeyMarker": encode(key_marker.unwrap_or("")),
        "VersionIdMarker": version_marker.unwrap_or(""),
        "MaxKeys": int_of(input, "MaxKeys").unwrap_or(1000),
        "IsTruncated": truncated,
    });
    out["Versions"] = Value::Array(versions_out);
    out["DeleteMarkers"] = Value::Array(markers_out);
    out["CommonPrefixes"] = Value::Array(common);
    if let Some(d) = delimiter {
        out["Delimiter"] = json!(encode(d));
    }
    if str_of(input, "EncodingType").is_some() {
        out["EncodingType"] = json!("url");
    }
    if truncated {
        if let Some((k, v)) = next {
            out["NextKeyMarker"] = json!(encode(&k));
            out["NextVersionIdMarker"] = json!(v);
        }
    }
    Ok(out)
}

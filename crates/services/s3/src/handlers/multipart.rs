//! Multipart uploads: create, upload part (streamed to a file of its own),
//! upload part copy, list parts, list uploads, complete, abort. Completing
//! does not copy data: the object's body becomes the list of its part
//! files, and the upload's records turn into the object's record in one
//! store batch, so a crash leaves either the upload or the object.

use crate::access::{self, Ask};
use crate::handlers::objects::{
    algorithm_named, body_slices, copy_source, digest_files, for_each_piece, notify, store_body,
    template_from_input, write_version_with,
};
use crate::input::{int_of, required, secs, str_of};
use crate::state::{self, BodyRef, BucketRecord, Part, Upload};
use crate::{errors, Bucket, Inner, UploadState};
use base64::Engine as _;
use md5::{Digest, Md5};
use nimbus_core::checksum::Hasher;
use nimbus_core::{AwsError, RequestBody, RequestContext};
use nimbus_store::Batch;
use serde_json::{json, Value};
use std::sync::Arc;

/// Smallest part other than the last.
const MIN_PART: u64 = 5 * 1024 * 1024;
const MAX_PART: u64 = 5 * 1024 * 1024 * 1024;

fn check(
    ctx: &RequestContext,
    record: &BucketRecord,
    action: &str,
    key: Option<&str>,
) -> Result<(), AwsError> {
    access::check(
        ctx,
        record,
        &Ask {
            action,
            key,
            object_grants: None,
            extra: &[],
        },
    )
}

pub async fn create(inner: &Inner, ctx: &RequestContext, input: &Value) -> Result<Value, AwsError> {
    let bucket = inner.bucket(required(input, "Bucket")?)?;
    let key = required(input, "Key")?;
    let record = bucket.record();
    check(ctx, &record, "s3:PutObject", Some(key))?;
    let template = template_from_input(ctx, &record, key, input)?;
    let checksum = match str_of(input, "ChecksumAlgorithm") {
        Some(name) => {
            let (alg, _) = algorithm_named(name).ok_or_else(|| {
                errors::invalid_argument(
                    "Checksum algorithm provided is unsupported.",
                    "x-amz-checksum-algorithm",
                    name,
                )
            })?;
            let kind = str_of(input, "ChecksumType").unwrap_or(if alg == "CRC64NVME" {
                "FULL_OBJECT"
            } else {
                "COMPOSITE"
            });
            Some((alg.to_string(), kind.to_string()))
        }
        None => None,
    };
    let upload_id = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(uuid::Uuid::new_v4().as_bytes().repeat(2));
    let upload = Upload {
        bucket: record.name.clone(),
        key: key.to_string(),
        upload_id: upload_id.clone(),
        initiated_ms: ctx.now_ms,
        owner: ctx.account_id.clone(),
        template,
        checksum: checksum.clone(),
    };
    let encoded = serde_json::to_vec(&upload).map_err(|e| errors::internal(e.to_string()))?;
    let commit = {
        let mut uploads = bucket.uploads.lock().unwrap_or_else(|p| p.into_inner());
        uploads.insert(
            upload_id.clone(),
            UploadState {
                upload,
                parts: Default::default(),
            },
        );
        let mut batch = Batch::new();
        batch.put(
            state::UPLOADS,
            state::upload_key(&record.name, &upload_id),
            encoded,
        );
        inner.store.submit(batch)
    };
    commit.await.map_err(errors::store_failed)?;
    let mut out = json!({"Bucket": record.name, "Key": key, "UploadId": upload_id});
    if let Some((alg, kind)) = checksum {
        out["ChecksumAlgorithm"] = json!(alg);
        out["ChecksumType"] = json!(kind);
    }
    if let Some(sse) = str_of(input, "ServerSideEncryption") {
        out["ServerSideEncryption"] = json!(sse);
    } else {
        out["ServerSideEncryption"] = json!("AES256");
    }
    Ok(out)
}

fn part_number(input: &Value) -> Result<u32, AwsError> {
    let n = int_of(input, "PartNumber").unwrap_or(0);
    if !(1..=10_000).contains(&n) {
        return Err(errors::invalid_argument(
            "Part number must be an integer between 1 and 10000, inclusive",
            "partNumber",
            &n.to_string(),
        ));
    }
    Ok(n as u32)
}

fn upload_of(bucket: &Bucket, upload_id: &str, key: &str) -> Result<Upload, AwsError> {
    let uploads = bucket.uploads.lock().unwrap_or_else(|p| p.into_inner());
    uploads
        .get(upload_id)
        .filter(|u| u.upload.key == key)
        .map(|u| u.upload.clone())
        .ok_or_else(|| errors::no_such_upload(upload_id))
}

/// Records a part (replacing an earlier part of that number) durably.
async fn save_part(
    inner: &Inner,
    bucket: &Bucket,
    upload_id: &str,
    part: Part,
) -> Result<(), AwsError> {
    let (commit, dropped) = {
        let mut uploads = bucket.uploads.lock().unwrap_or_else(|p| p.into_inner());
        let Some(state) = uploads.get_mut(upload_id) else {
            return Err(errors::no_such_upload(upload_id));
        };
        let mut batch = Batch::new();
        let encoded = serde_json::to_vec(&part).map_err(|e| errors::internal(e.to_string()))?;
        batch.put(
            state::PARTS,
            state::part_key(upload_id, part.number),
            encoded,
        );
        let dropped = state.parts.insert(part.number, part).map(|old| old.file);
        (inner.store.submit(batch), dropped)
    };
    commit.await.map_err(errors::store_failed)?;
    if let Some(old) = dropped {
        inner.blobs.remove(&[old]);
    }
    Ok(())
}

pub async fn upload_part(
    inner: &Inner,
    ctx: &RequestContext,
    input: &Value,
    body: RequestBody,
) -> Result<Value, AwsError> {
    let bucket = inner.bucket(required(input, "Bucket")?)?;
    let key = required(input, "Key")?;
    let upload_id = required(input, "UploadId")?;
    let record = bucket.record();
    check(ctx, &record, "s3:PutObject", Some(key))?;
    let number = part_number(input)?;
    let upload = upload_of(&bucket, upload_id, key)?;
    let stored = store_body(inner, input, body, MAX_PART).await?;
    // Parts always live in files: the completed object is the list of them.
    let file = match &stored.body {
        BodyRef::Files(files) => files.first().map(|(id, _)| id.clone()).unwrap_or_default(),
        BodyRef::Inline => {
            let mut writer = inner.blobs.writer()?;
            writer.write(&stored.inline).await?;
            writer.finish().await?
        }
    };
    if let (Some((want, _)), Some((got, _))) = (&upload.checksum, &stored.checksum) {
        if want != got {
            inner.blobs.remove(&[file]);
            return Err(errors::invalid_request(format!(
                "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
                want.to_ascii_lowercase(),
                got.to_ascii_lowercase()
            )));
        }
    }
    let checksum = match (&upload.checksum, stored.checksum) {
        (_, Some(c)) => Some(c),
        (Some((alg, _)), None) => {
            // The upload asked for a checksum but this part came without: compute it.
            match algorithm_named(alg) {
                Some((name, a)) => digest_files(inner, &[file.as_str()], Some(a))
                    .await?
                    .1
                    .map(|value| (name.to_string(), value)),
                None => None,
            }
        }
        (None, None) => None,
    };
    let part = Part {
        number,
        size: stored.size,
        etag: format!("\"{}\"", hex::encode(stored.md5)),
        last_modified_ms: ctx.now_ms,
        file: file.clone(),
        checksum: checksum.clone(),
    };
    let etag = part.etag.clone();
    if let Err(e) = save_part(inner, &bucket, upload_id, part).await {
        inner.blobs.remove(&[file]);
        return Err(e);
    }
    let mut out = json!({"ETag": etag, "ServerSideEncryption": "AES256"});
    if let Some((alg, value)) = checksum {
        out[format!("Checksum{alg}")] = json!(value);
    }
    Ok(out)
}

pub async fn upload_part_copy(
    inner: &Inner,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, AwsError> {
    let bucket = inner.bucket(required(input, "Bucket")?)?;
    let key = required(input, "Key")?;
    let upload_id = required(input, "UploadId")?;
    let record = bucket.record();
    check(ctx, &record, "s3:PutObject", Some(key))?;
    let number = part_number(input)?;
    upload_of(&bucket, upload_id, key)?;
    let (source, _) = copy_source(inner, ctx, input)?;
    let (start, end) = match str_of(input, "CopySourceRange") {
        Some(text) => {
            let range = text
                .strip_prefix("bytes=")
                .and_then(|r| r.split_once('-'))
                .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
                .filter(|(a, b)| a <= b)
                .ok_or_else(|| {
                    errors::invalid_argument(
                        "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy",
                        "x-amz-copy-source-range",
                        text,
                    )
                })?;
            if range.1 >= source.size {
                return Err(errors::invalid_argument(
                    format!(
                        "Range specified is not valid for source object of size: {}",
                        source.size
                    ),
                    "x-amz-copy-source-range",
                    text,
                ));
            }
            (range.0, range.1 + 1)
        }
        None => (0, source.size),
    };
    // Copied piece by piece: a part may be gigabytes.
    let (pieces, mut received) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let reader = for_each_piece(body_slices(inner, &source, start, end)?, move |piece| {
        let _ = pieces.blocking_send(piece.to_vec());
    });
    let mut writer = inner.blobs.writer()?;
    // Owns the receiver: if writing fails, the reader's sends fail too and it stops.
    let copy = async move {
        let mut md5 = Md5::new();
        let mut size = 0u64;
        while let Some(piece) = received.recv().await {
            md5.update(&piece);
            size += piece.len() as u64;
            writer.write(&piece).await?;
        }
        Ok::<_, AwsError>((writer, md5, size))
    };
    let (read, written) = tokio::join!(reader, copy);
    let (writer, md5, size) = written?;
    read?;
    let md5: [u8; 16] = md5.finalize().into();
    let file = writer.finish().await?;
    let part = Part {
        number,
        size,
        etag: format!("\"{}\"", hex::encode(md5)),
        last_modified_ms: ctx.now_ms,
        file: file.clone(),
        checksum: None,
    };
    let etag = part.etag.clone();
    if let Err(e) = save_part(inner, &bucket, upload_id, part).await {
        inner.blobs.remove(&[file]);
        return Err(e);
    }
    let mut out = json!({"CopyPartResult": {"ETag": etag, "LastModified": secs(ctx.now_ms)}});
    if source.version_id != "null" {
        out["CopySourceVersionId"] = json!(source.version_id);
    }
    Ok(out)
}

pub fn list_parts(inner: &Inner, ctx: &RequestContext, input: &Value) -> Result<Value, AwsError> {
    let bucket = inner.bucket(required(input, "Bucket")?)?;
    let key = required(input, "Key")?;
    let upload_id = required(input, "UploadId")?;
    let record = bucket.record();
    check(ctx, &record, "s3:ListMultipartUploadParts", Some(key))?;
    let marker = int_of(input, "PartNumberMarker").unwrap_or(0).max(0) as u32;
    let max = int_of(input, "MaxParts").unwrap_or(1000).clamp(0, 1000) as usize;
    let uploads = bucket.uploads.lock().unwrap_or_else(|p| p.into_inner());
    let state = uploads
        .get(upload_id)
        .filter(|u| u.upload.key == key)
        .ok_or_else(|| errors::no_such_upload(upload_id))?;
    let mut parts = Vec::new();
    let mut truncated = false;
    let mut last = marker;
    for part in state.parts.range(marker + 1..).map(|(_, p)| p) {
        if parts.len() == max {
            truncated = true;
            break;
        }
        let mut entry = json!({
            "PartNumber": part.number,
            "LastModified": secs(part.last_modified_ms),
            "ETag": part.etag,
            "Size": part.size,
        });
        if let Some((alg, value)) = &part.checksum {
            entry[format!("Checksum{alg}")] = json!(value);
        }
        parts.push(entry);
        last = part.number;
    }
    let owner = access::owner_value(&state.upload.owner);
    let mut out = json!({
        "Bucket": record.name,
        "Key": key,
        "UploadId": upload_id,
        "PartNumberMarker": marker,
        "MaxParts": max,
        "IsTruncated": truncated,
        "Parts": parts,
        "Owner": owner,
        "Initiator": owner,
        "StorageClass": state.upload.template.storage_class,
    });
    if truncated {
        out["NextPartNumberMarker"] = json!(last);
    }
    if let Some((alg, kind)) = &state.upload.checksum {
        out["ChecksumAlgorithm"] = json!(alg);
        out["ChecksumType"] = json!(kind);
    }
    Ok(out)
}

pub fn list_uploads(inner: &Inner, ctx: &RequestContext, input: &Value) -> Result<Value, AwsError> {
    let bucket = inner.bucket(required(input, "Bucket")?)?;
    let record = bucket.record();
    check(ctx, &record, "s3:ListBucketMultipartUploads", None)?;
    let prefix = str_of(input, "Prefix").unwrap_or("");
    let delimiter = str_of(input, "Delimiter").filter(|d| !d.is_empty());
    let key_marker = str_of(input, "KeyMarker").unwrap_or("");
    let id_marker = str_of(input, "UploadIdMarker").unwrap_or("");
    let max = int_of(input, "MaxUploads").unwrap_or(1000).clamp(0, 1000) as usize;
    let uploads = bucket.uploads.lock().unwrap_or_else(|p| p.into_inner());
    let mut all: Vec<&Upload> = uploads
        .values()
        .map(|u| &u.upload)
        .filter(|u| u.key.starts_with(prefix))
        .filter(|u| {
            key_marker.is_empty()
                || u.key.as_str() > key_marker
                || (u.key == key_marker
                    && !id_marker.is_empty()
                    && u.upload_id.as_str() > id_marker)
        })
        .collect();
    all.sort_by(|a, b| (a.key.as_str(), a.initiated_ms).cmp(&(b.key.as_str(), b.initiated_ms)));
    let mut listed = Vec::new();
    let mut common: Vec<String> = Vec::new();
    let mut truncated = false;
    let mut next = None;
    for u in all {
        if let Some(d) = delimiter {
            if let Some(pos) = u.key[prefix.len()..].find(d) {
                let cp = u.key[..prefix.len() + pos + d.len()].to_string();
                if !common.contains(&cp) {
                    if listed.len() + common.len() == max {
                        truncated = true;
                        break;
                    }
                    common.push(cp);
                }
                continue;
            }
        }
        if listed.len() + common.len() == max {
            truncated = true;
            break;
        }
        let owner = access::owner_value(&u.owner);
        let mut entry = json!({
            "UploadId": u.upload_id,
            "Key": u.key,
            "Initiated": secs(u.initiated_ms),
            "StorageClass": u.template.storage_class,
            "Owner": owner,
            "Initiator": owner,
        });
        if let Some((alg, kind)) = &u.checksum {
            entry["ChecksumAlgorithm"] = json!(alg);
            entry["ChecksumType"] = json!(kind);
        }
        listed.push(entry);
        next = Some((u.key.clone(), u.upload_id.clone()));
    }
    let mut out = json!({
        "Bucket": record.name,
        "KeyMarker": key_marker,
        "UploadIdMarker": id_marker,
        "MaxUploads": max,
        "IsTruncated": truncated,
        "Uploads": listed,
        "CommonPrefixes": common.iter().map(|p| json!({"Prefix": p})).collect::<Vec<_>>(),
        "Prefix": prefix,
    });
    if let Some(d) = delimiter {
        out["Delimiter"] = json!(d);
    }
    if truncated {
        if let Some((k, id)) = next {
            out["NextKeyMarker"] = json!(k);
            out["NextUploadIdMarker"] = json!(id);
        }
    }
    Ok(out)
}

pub async fn complete(
    inner: &Inner,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, AwsError> {
    let bucket = inner.bucket(required(input, "Bucket")?)?;
    let key = required(input, "Key")?;
    let upload_id = required(input, "UploadId")?;
    let record = bucket.record();
    check(ctx, &record, "s3:PutObject", Some(key))?;
    let requested: Vec<(i64, String)> = input
        .pointer("/MultipartUpload/Parts")
        .and_then(Value::as_array)
        .map(|parts| {
            parts
                .iter()
                .map(|p| {
                    (
                        p.get("PartNumber").and_then(Value::as_i64).unwrap_or(0),
                        p.get("ETag")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if requested.is_empty() {
        return Err(errors::malformed_xml());
    }
    if requested.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(AwsError::new(
            "InvalidPartOrder",
            "The list of parts was not in ascending order. The parts list must be specified in order by part number.",
        )
        .with_field("UploadId", upload_id));
    }
    let (upload, chosen, unused) = {
        let uploads = bucket.uploads.lock().unwrap_or_else(|p| p.into_inner());
        let state = uploads
            .get(upload_id)
            .filter(|u| u.upload.key == key)
            .ok_or_else(|| errors::no_such_upload(upload_id))?;
        let mut chosen = Vec::new();
        for (number, etag) in &requested {
            let part = u32::try_from(*number)
                .ok()
                .and_then(|n| state.parts.get(&n))
                .filter(|p| p.etag.trim_matches('"') == etag.trim_matches('"'))
                .ok_or_else(|| {
                    AwsError::new(
                        "InvalidPart",
                        "One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.",
                    )
                    .with_field("UploadId", upload_id)
                    .with_field("PartNumber", number.to_string())
                    .with_field("ETag", etag.clone())
                })?;
            chosen.push(part.clone());
        }
        let count = chosen.len();
        for (i, part) in chosen.iter().enumerate() {
            if i + 1 < count && part.size < MIN_PART {
                return Err(AwsError::new(
                    "EntityTooSmall",
                    "Your proposed upload is smaller than the minimum allowed size",
                )
                .with_field("ProposedSize", part.size.to_string())
                .with_field("MinSizeAllowed", MIN_PART.to_string())
                .with_field("PartNumber", part.number.to_string())
                .with_field("ETag", part.etag.trim_matches('"')));
            }
        }
        let used: std::collections::HashSet<u32> = chosen.iter().map(|p| p.number).collect();
        let unused: Vec<String> = state
            .parts
            .values()
            .filter(|p| !used.contains(&p.number))
            .map(|p| p.file.clone())
            .collect();
        (state.upload.clone(), chosen, unused)
    };
    let mut md5s = Vec::with_capacity(chosen.len() * 16);
    for part in &chosen {
        md5s.extend(hex::decode(part.etag.trim_matches('"')).unwrap_or_default());
    }
    let mut meta = upload.template.clone();
    meta.last_modified_ms = ctx.now_ms;
    meta.size = chosen.iter().map(|p| p.size).sum();
    meta.etag = format!("\"{}-{}\"", hex::encode(Md5::digest(&md5s)), chosen.len());
    meta.parts = Some(chosen.iter().map(|p| p.size).collect());
    meta.body = BodyRef::Files(chosen.iter().map(|p| (p.file.clone(), p.size)).collect());
    meta.checksum = match &upload.checksum {
        Some((alg, kind)) if kind == "FULL_OBJECT" => {
            let Some((name, a)) = algorithm_named(alg) else {
                return Err(errors::internal("unknown checksum algorithm"));
            };
            let files: Vec<&str> = chosen.iter().map(|p| p.file.as_str()).collect();
            let (_, value) = digest_files(inner, &files, Some(a)).await?;
            value.map(|v| (name.to_string(), v, "FULL_OBJECT".to_string()))
        }
        Some((alg, _)) => {
            let Some((name, a)) = algorithm_named(alg) else {
                return Err(errors::internal("unknown checksum algorithm"));
            };
            let mut h = Hasher::new(a);
            for part in &chosen {
                let raw = part
                    .checksum
                    .as_ref()
                    .and_then(|(_, v)| base64::engine::general_purpose::STANDARD.decode(v).ok())
                    .unwrap_or_default();
                h.update(&raw);
            }
            Some((
                name.to_string(),
                format!("{}-{}", h.finish_base64(), chosen.len()),
                "COMPOSITE".to_string(),
            ))
        }
        None => None,
    };
    // The object record replaces the upload's records in the same commit.
    let name = record.name.clone();
    let parts_to_drop: Vec<u32> = {
        let uploads = bucket.uploads.lock().unwrap_or_else(|p| p.into_inner());
        uploads
            .get(upload_id)
            .map(|s| s.parts.keys().copied().collect())
            .unwrap_or_default()
    };
    let mut batch = Batch::new();
    batch.delete(state::UPLOADS, state::upload_key(&name, upload_id));
    for n in &parts_to_drop {
        batch.delete(state::PARTS, state::part_key(upload_id, *n));
    }
    let if_none_match = str_of(input, "IfNoneMatch") == Some("*");
    let written = write_version_with(
        inner,
        &bucket,
        meta,
        |current| {
            if if_none_match && current.is_some_and(|c| !c.delete_marker) {
                return Err(errors::precondition_failed("If-None-Match"));
            }
            Ok(())
        },
        batch,
    )
    .await?;
    bucket
        .uploads
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(upload_id);
    inner.blobs.remove(&unused);
    notify(
        inner,
        ctx,
        &record,
        "ObjectCreated:CompleteMultipartUpload",
        &written.meta,
    );
    let m = &written.meta;
    let mut out = json!({
        "Location": format!("http://{}/{}/{}", ctx.host, record.name, key),
        "Bucket": record.name,
        "Key": key,
        "ETag": m.etag,
        "ServerSideEncryption": "AES256",
    });
    if written.versioned {
        out["VersionId"] = json!(m.version_id);
    }
    if let Some((alg, value, kind)) = &m.checksum {
        out[format!("Checksum{alg}")] = json!(value);
        out["ChecksumType"] = json!(kind);
    }
    Ok(out)
}

pub async fn abort(inner: &Inner, ctx: &RequestContext, input: &Value) -> Result<Value, AwsError> {
    let bucket = inner.bucket(required(input, "Bucket")?)?;
    let key = required(input, "Key")?;
    let upload_id = required(input, "UploadId")?;
    let record = bucket.record();
    check(ctx, &record, "s3:AbortMultipartUpload", Some(key))?;
    let (commit, files) = {
        let mut uploads = bucket.uploads.lock().unwrap_or_else(|p| p.into_inner());
        if uploads.get(upload_id).is_none_or(|u| u.upload.key != key) {
            return Err(errors::no_such_upload(upload_id));
        }
        let Some(state) = uploads.remove(upload_id) else {
            return Err(errors::no_such_upload(upload_id));
        };
        let mut batch = Batch::new();
        batch.delete(state::UPLOADS, state::upload_key(&record.name, upload_id));
        let mut files = Vec::new();
        for (n, part) in state.parts {
            batch.delete(state::PARTS, state::part_key(upload_id, n));
            files.push(part.file);
        }
        (inner.store.submit(batch), files)
    };
    commit.await.map_err(errors::store_failed)?;
    inner.blobs.remove(&files);
    Ok(json!({}))
}

/// Used by the lifecycle runner: aborts an upload without a request.
pub async fn abort_upload(inner: &Inner, bucket: &Arc<Bucket>, upload_id: &str) {
    let name = bucket.record().name;
    let removed = bucket
        .uploads
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(upload_id);
    if let Some(state) = removed {
        let mut batch = Batch::new();
        batch.delete(state::UPLOADS, state::upload_key(&name, upload_id));
        let mut files = Vec::new();
        for (n, part) in state.parts {
            batch.delete(state::PARTS, state::part_key(upload_id, n));
            files.push(part.file);
        }
        if inner.commit(batch).await.is_ok() {
            inner.blobs.remove(&files);
        }
    }
}

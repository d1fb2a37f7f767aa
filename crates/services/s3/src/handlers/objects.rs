//! Objects: PutObject (streamed to disk with its MD5 and flexible checksum
//! computed on the way), GetObject/HeadObject (versions, ranges, conditions,
//! archived objects), DeleteObject(s) with versioning and delete markers,
//! CopyObject, tagging, ACLs, GetObjectAttributes, RestoreObject, and the
//! object half of browser uploads (POST Object).

use crate::access::{self, Ask};
use crate::handlers::config::{acl_from_input, validate_tags};
use crate::input::{bool_of, int_of, parse_tagging_header, required, secs, str_of, time_ms_of};
use crate::state::{BodyRef, BucketRecord, ObjectMeta, SmallMap, INLINE_MAX};
use crate::{errors, events, lifecycle, Bucket, Inner, Versions};
use base64::Engine as _;
use bytes::Bytes;
use md5::{Digest, Md5};
use nimbus_core::checksum::{Algorithm, Hasher};
use nimbus_core::{AwsError, FileSlice, Reply, RequestBody, RequestContext, ResponseBody};
use nimbus_store::Batch;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Largest single PUT S3 accepts.
const MAX_PUT: u64 = 5 * 1024 * 1024 * 1024;

/// The standard headers an object keeps, by model member name.
pub const STANDARD_HEADERS: [&str; 6] = [
    "ContentType",
    "ContentEncoding",
    "ContentDisposition",
    "CacheControl",
    "ContentLanguage",
    "Expires",
];

/// Flexible checksum members of the model, with their algorithm.
pub const CHECKSUMS: [(&str, Algorithm); 5] = [
    ("CRC32", Algorithm::Crc32),
    ("CRC32C", Algorithm::Crc32c),
    ("CRC64NVME", Algorithm::Crc64Nvme),
    ("SHA1", Algorithm::Sha1),
    ("SHA256", Algorithm::Sha256),
];

pub fn algorithm_named(name: &str) -> Option<(&'static str, Algorithm)> {
    CHECKSUMS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .copied()
}

/// A body written to its final place (file or memory), with what was computed over it.
pub struct StoredBody {
    pub body: BodyRef,
    pub inline: Bytes,
    pub size: u64,
    pub md5: [u8; 16],
    /// (algorithm member suffix, base64 value)
    pub checksum: Option<(String, String)>,
}

impl StoredBody {
    pub fn files(&self) -> Vec<String> {
        match &self.body {
            BodyRef::Files(f) => f.iter().map(|(id, _)| id.clone()).collect(),
            BodyRef::Inline => Vec::new(),
        }
    }
}

/// Which checksum the client asked for, from the input members or announced trailers.
pub fn requested_checksum(input: &Value, body: &RequestBody) -> Option<(&'static str, Algorithm)> {
    for (name, alg) in CHECKSUMS {
        if input.get(format!("Checksum{name}")).is_some() {
            return Some((name, alg));
        }
    }
    for trailer in &body.announced_trailers {
        if let Some(found) = trailer
            .strip_prefix("x-amz-checksum-")
            .and_then(algorithm_named)
        {
            return Some(found);
        }
    }
    str_of(input, "ChecksumAlgorithm").and_then(algorithm_named)
}

/// Streams `body` to a file (or memory when small), checking Content-MD5 and the
/// flexible checksum (header or trailer) against what arrived.
pub async fn store_body(
    inner: &Inner,
    input: &Value,
    mut body: RequestBody,
    max: u64,
) -> Result<StoredBody, AwsError> {
    let content_md5 = str_of(input, "ContentMD5")
        .map(|v| {
            base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .ok()
                .filter(|d| d.len() == 16)
                .ok_or_else(errors::invalid_digest)
        })
        .transpose()?;
    let wanted = requested_checksum(input, &body);
    let mut hasher = wanted.map(|(_, alg)| Hasher::new(alg));
    let mut md5 = Md5::new();
    let mut size: u64 = 0;
    let mut small: Vec<u8> = Vec::new();
    let mut writer = None;
    while let Some(chunk) = body.next_chunk().await? {
        size += chunk.len() as u64;
        if size > max {
            return Err(AwsError::new(
                "EntityTooLarge",
                "Your proposed upload exceeds the maximum allowed size",
            )
            .with_field("ProposedSize", size.to_string())
            .with_field("MaxSizeAllowed", max.to_string()));
        }
        md5.update(&chunk);
        if let Some(h) = hasher.as_mut() {
            h.update(&chunk);
        }
        match writer.as_mut() {
            Some(w) => crate::blobs::BlobWriter::write(w, &chunk).await?,
            None if small.len() + chunk.len() <= INLINE_MAX => small.extend_from_slice(&chunk),
            None => {
                let mut w = inner.blobs.writer()?;
                w.write(&small).await?;
                w.write(&chunk).await?;
                small = Vec::new();
                writer = Some(w);
            }
        }
    }
    if body.declared_length.is_some_and(|n| n != size) {
        return Err(AwsError::new(
            "IncompleteBody",
            "You did not provide the number of bytes specified by the Content-Length HTTP header",
        ));
    }
    let md5: [u8; 16] = md5.finalize().into();
    if content_md5.is_some_and(|expected| expected != md5) {
        return Err(errors::bad_digest());
    }
    let checksum = match (wanted, hasher) {
        (Some((name, _)), Some(h)) => {
            let computed = h.finish_base64();
            let trailers = body.trailers();
            let sent = str_of(input, &format!("Checksum{name}"))
                .map(str::to_string)
                .or_else(|| {
                    let header = format!("x-amz-checksum-{}", name.to_ascii_lowercase());
                    trailers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(&header))
                        .map(|(_, v)| v.trim().to_string())
                });
            if sent.as_deref().is_some_and(|s| s != computed) {
                return Err(errors::checksum_mismatch(name));
            }
            Some((name.to_string(), computed))
        }
        _ => None,
    };
    let (body_ref, inline) = match writer {
        Some(w) => {
            let id = w.finish().await?;
            (BodyRef::Files(vec![(id, size)]), Bytes::new())
        }
        None => (BodyRef::Inline, Bytes::from(small)),
    };
    Ok(StoredBody {
        body: body_ref,
        inline,
        size,
        md5,
        checksum,
    })
}

/// The settings of a new object from a PutObject/CopyObject/CreateMultipartUpload input.
pub fn template_from_input(
    ctx: &RequestContext,
    bucket: &BucketRecord,
    key: &str,
    input: &Value,
) -> Result<ObjectMeta, AwsError> {
    if key.len() > 1024 {
        return Err(AwsError::new("KeyTooLongError", "Your key is too long")
            .with_field("MaxSizeAllowed", "1024")
            .with_field("Size", key.len().to_string()));
    }
    let mut headers = SmallMap::new();
    for name in STANDARD_HEADERS {
        if let Some(v) = input.get(name) {
            headers.insert(name.to_string(), v.clone());
        }
    }
    let metadata = input
        .get("Metadata")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default();
    let storage_class = str_of(input, "StorageClass")
        .unwrap_or("STANDARD")
        .to_string();
    if !matches!(
        storage_class.as_str(),
        "STANDARD"
            | "REDUCED_REDUNDANCY"
            | "STANDARD_IA"
            | "ONEZONE_IA"
            | "INTELLIGENT_TIERING"
            | "GLACIER"
            | "DEEP_ARCHIVE"
            | "GLACIER_IR"
            | "OUTPOSTS"
            | "SNOW"
            | "EXPRESS_ONEZONE"
    ) {
        return Err(AwsError::new(
            "InvalidStorageClass",
            "The storage class you specified is not valid",
        )
        .with_field("StorageClassRequested", storage_class));
    }
    let tags = str_of(input, "Tagging")
        .map(parse_tagging_header)
        .unwrap_or_default();
    if tags.len() > 10 {
        return Err(AwsError::new(
            "BadRequest",
            "Object tags cannot be greater than 10",
        ));
    }
    let acl = object_acl_from_input(bucket, input)?;
    let mut sse = SmallMap::new();
    let algorithm = str_of(input, "ServerSideEncryption").unwrap_or("AES256");
    if !matches!(algorithm, "AES256" | "aws:kms" | "aws:kms:dsse") {
        return Err(errors::invalid_argument(
            "The encryption method specified is not supported",
            "x-amz-server-side-encryption",
            algorithm,
        ));
    }
    sse.insert("ServerSideEncryption".to_string(), json!(algorithm));
    for name in ["SSEKMSKeyId", "BucketKeyEnabled"] {
        if let Some(v) = input.get(name) {
            sse.insert(name.to_string(), v.clone());
        }
    }
    if algorithm.starts_with("aws:kms") && !sse.contains_key("SSEKMSKeyId") {
        sse.insert(
            "SSEKMSKeyId".to_string(),
            json!(format!(
                "arn:aws:kms:{}:{}:alias/aws/s3",
                bucket.region, bucket.owner
            )),
        );
    }
    Ok(ObjectMeta {
        key: key.to_string(),
        version_id: "null".to_string(),
        seq: 0,
        delete_marker: false,
        size: 0,
        etag: String::new(),
        last_modified_ms: ctx.now_ms,
        owner: bucket.owner.clone(),
        headers,
        metadata,
        storage_class,
        tags,
        acl,
        sse,
        website_redirect: str_of(input, "WebsiteRedirectLocation").map(str::to_string),
        checksum: None,
        parts: None,
        body: BodyRef::Inline,
        restored_until_ms: None,
        inline: Bytes::new(),
    })
}

fn object_acl_from_input(bucket: &BucketRecord, input: &Value) -> Result<Option<Value>, AwsError> {
    let asked = str_of(input, "ACL").is_some()
        || [
            "GrantRead",
            "GrantReadACP",
            "GrantWriteACP",
            "GrantFullControl",
        ]
        .iter()
        .any(|m| input.get(*m).is_some());
    if !asked {
        return Ok(None);
    }
    let grants = acl_from_input(input)?;
    let empty = grants.as_array().is_none_or(|g| g.is_empty());
    if !access::acls_enabled(bucket) {
        // With ACLs disabled, only ACLs that grant nothing beyond the owner are accepted.
        if empty {
            return Ok(None);
        }
        return Err(AwsError::new(
            "AccessControlListNotSupported",
            "The bucket does not allow ACLs",
        ));
    }
    if access::blocks(bucket, "BlockPublicAcls") && access::grants_are_public(Some(&grants)) {
        return Err(errors::access_denied());
    }
    Ok(Some(grants).filter(|_| !empty))
}

fn etag_of(md5: &[u8; 16]) -> String {
    format!("\"{}\"", hex::encode(md5))
}

/// Checks If-Match / If-None-Match of a write against the current version.
fn check_write_conditions(
    input: &Value,
    current: Option<&ObjectMeta>,
    key: &str,
) -> Result<(), AwsError> {
    let live = current.filter(|m| !m.delete_marker);
    if let Some(expected) = str_of(input, "IfNoneMatch") {
        if expected.trim() == "*" && live.is_some() {
            return Err(errors::precondition_failed("If-None-Match"));
        }
    }
    if let Some(expected) = str_of(input, "IfMatch") {
        match live {
            None => return Err(errors::no_such_key(key)),
            Some(m) if !etag_matches(expected, &m.etag) => {
                return Err(errors::precondition_failed("If-Match"))
            }
            _ => {}
        }
    }
    Ok(())
}

fn etag_matches(list: &str, etag: &str) -> bool {
    let bare = etag.trim_matches('"');
    list.split(',')
        .map(|e| e.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|e| e == "*" || e == bare)
}

/// What a write did to the key, for the answer and the notification.
pub struct Written {
    pub meta: Arc<ObjectMeta>,
    pub versioned: bool,
}

/// Puts a new version (or replaces the "null" one) of `meta.key`, durably.
/// `pre_check` runs under the bucket lock (conditional writes).
pub async fn write_version(
    inner: &Inner,
    bucket: &Bucket,
    meta: ObjectMeta,
    pre_check: impl FnOnce(Option<&ObjectMeta>) -> Result<(), AwsError>,
) -> Result<Written, AwsError> {
    write_version_with(inner, bucket, meta, pre_check, Batch::new()).await
}

/// [`write_version`] with more changes committed atomically with the object's record
/// (CompleteMultipartUpload drops the upload's records in the same batch).
pub async fn write_version_with(
    inner: &Inner,
    bucket: &Bucket,
    mut meta: ObjectMeta,
    pre_check: impl FnOnce(Option<&ObjectMeta>) -> Result<(), AwsError>,
    mut batch: Batch,
) -> Result<Written, AwsError> {
    let record = bucket.record();
    let versioned = record.config.versioning.as_deref() == Some("Enabled");
    let (commit, dropped) = {
        let mut objects = bucket.edit();
        let versions = objects.versions(&meta.key)?;
        pre_check(versions.last().map(|v| v.as_ref()))?;
        meta.seq = inner.next_seq();
        meta.version_id = if versioned {
            new_version_id()
        } else {
            "null".to_string()
        };
        let mut dropped = Vec::new();
        if !versioned {
            if let Some(pos) = versions.iter().position(|v| v.version_id == "null") {
                let old = versions.remove(pos);
                bucket.delete_record(&mut batch, &old.key, old.seq);
                dropped.extend(old.files().iter().map(|(id, _)| id.clone()));
            }
        }
        bucket.put_record(&mut batch, &meta)?;
        let meta = Arc::new(meta);
        versions.push(meta.clone());
        (committed(inner.store.submit(batch), meta), dropped)
    };
    let meta = commit.await?;
    inner.blobs.remove(&dropped);
    Ok(Written { meta, versioned })
}

/// Waits for a queued commit and hands back the record it wrote.
async fn committed(
    commit: impl std::future::Future<Output = Result<(), nimbus_store::StoreError>>,
    meta: Arc<ObjectMeta>,
) -> Result<Arc<ObjectMeta>, AwsError> {
    commit.await.map_err(errors::store_failed)?;
    Ok(meta)
}

/// Records a new object whose body is already stored, then announces `event`; when the
/// record cannot be written the body's `files` are removed again.
#[allow(clippy::too_many_arguments)]
async fn store_new_object(
    inner: &Inner,
    ctx: &RequestContext,
    bucket: &Bucket,
    record: &BucketRecord,
    meta: ObjectMeta,
    files: &[String],
    event: &str,
    pre_check: impl FnOnce(Option<&ObjectMeta>) -> Result<(), AwsError>,
) -> Result<Written, AwsError> {
    match write_version(inner, bucket, meta, pre_check).await {
        Ok(written) => {
            notify(inner, ctx, record, event, &written.meta);
            Ok(written)
        }
        Err(e) => {
            inner.blobs.remove(files);
            Err(e)
        }
    }
}

pub fn new_version_id() -> String {
    nimbus_core::random_string(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._",
        32,
    )
}

fn check(
    ctx: &RequestContext,
    record: &BucketRecord,
    action: &str,
    key: &str,
    object: Option<&ObjectMeta>,
    extra: &[(&str, &str)],
) -> Result<(), AwsError> {
    access::check(
        ctx,
        record,
        &Ask {
            action,
            key: Some(key),
            object_grants: object.and_then(|o| o.acl.as_ref()),
            extra,
        },
    )
}

pub async fn put_object(
    inner: &Inner,
    ctx: &RequestContext,
    input: &Value,
    body: RequestBody,
) -> Result<Value, AwsError> {
    let bucket = inner.bucket(required(input, "Bucket")?)?;
    let key = required(input, "Key")?;
    let record = bucket.record();
    let acl = str_of(input, "ACL").unwrap_or("");
    check(
        ctx,
        &record,
        "s3:PutObject",
        key,
        None,
        &[("s3:x-amz-acl", acl)],
    )?;
    let mut meta = template_from_input(ctx, &record, key, input)?;
    if body.declared_length.is_some_and(|n| n > MAX_PUT) {
        return Err(AwsError::new(
            "EntityTooLarge",
            "Your proposed upload exceeds the maximum allowed size",
        ));
    }
    // Refuse a conditional write early when it is bound to fail; it is checked again at commit.
    if input.get("IfMatch").is_some() || input.get("IfNoneMatch").is_some() {
        let versions = bucket.versions(key)?;
        check_write_conditions(input, versions.last().map(|m| m.as_ref()), key)?;
    }
    let stored = store_body(inner, input, body, MAX_PUT).await?;
    let files = stored.files();
    meta.size = stored.size;
    meta.etag = etag_of(&stored.md5);
    meta.checksum = stored
        .checksum
        .map(|(alg, value)| (alg, value, "FULL_OBJECT".to_string()));
    meta.body = stored.body;
    meta.inline = stored.inline;
    let written = store_new_object(
        inner,
        ctx,
        &bucket,
        &record,
        meta,
        &files,
        "ObjectCreated:Put",
        |current| check_write_conditions(input, current, key),
    )
    .await?;
    Ok(write_answer(&record, &written, ctx.now_ms))
}

fn write_answer(record: &BucketRecord, written: &Written, now_ms: u64) -> Value {
    let meta = &written.meta;
    let mut out = Map::new();
    out.insert("ETag".into(), json!(meta.etag));
    if written.versioned || meta.version_id != "null" {
        out.insert("VersionId".into(), json!(meta.version_id));
    }
    for (k, v) in &meta.sse {
        out.insert(k.clone(), v.clone());
    }
    if let Some((alg, value, kind)) = &meta.checksum {
        out.insert(format!("Checksum{alg}"), json!(value));
        out.insert("ChecksumType".into(), json!(kind));
    }
    out.insert("Size".into(), json!(meta.size));
    if let Some(exp) = expiration_header(record, meta, now_ms) {
        out.insert("Expiration".into(), json!(exp));
    }
    Value::Object(out)
}

fn expiration_header(record: &BucketRecord, meta: &ObjectMeta, now_ms: u64) -> Option<String> {
    let config = record.config.lifecycle.as_ref()?;
    let _ = now_ms;
    lifecycle::expiration_header(config, &facts(meta, true))
}

pub fn facts<'a>(meta: &'a ObjectMeta, is_current: bool) -> lifecycle::ObjectFacts<'a> {
    lifecycle::ObjectFacts {
        key: &meta.key,
        size: meta.size,
        tags: &meta.tags,
        last_modified_secs: (meta.last_modified_ms / 1000) as i64,
        is_current,
        is_delete_marker: meta.delete_marker,
        noncurrent_since_secs: None,
        storage_class: &meta.storage_class,
        newer_noncurrent_versions: 0,
        only_version_is_delete_marker: false,
    }
}

/// Sends the bucket's notifications for one event.
pub fn notify(
    inner: &Inner,
    ctx: &RequestContext,
    record: &BucketRecord,
    event: &str,
    meta: &ObjectMeta,
) {
    let Some(config) = record.config.notification.as_ref() else {
        return;
    };
    let targets = events::targets(config, event, &meta.key);
    if targets.is_empty() {
        return;
    }
    let Some(sink) = inner.event_sink() else {
        return;
    };
    let source_ip = ctx
        .source_ip
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "127.0.0.1".to_string());
    let principal = if ctx.access_key_id.is_some() {
        format!("AWS:{}", ctx.caller_user_id)
    } else {
        "Anonymous".to_string()
    };
    let version = (meta.version_id != "null").then_some(meta.version_id.as_str());
    let facts = events::EventFacts {
        event_name: event,
        event_time_ms: ctx.now_ms,
        region: &record.region,
        bucket: &record.name,
        account_id: &record.owner,
        principal_id: &principal,
        source_ip: &source_ip,
        request_id: &ctx.request_id,
        key: &meta.key,
        size: (!event.starts_with("ObjectRemoved")).then_some(meta.size),
        etag: (!event.starts_with("ObjectRemoved")).then(|| meta.etag.trim_matches('"')),
        version_id: version,
        sequencer: format!("{:016X}", meta.seq),
    };
    for target in targets {
        sink.send(
            &target.queue_arn,
            events::event_message(&facts, &target.configuration_id),
        );
    }
}

/// Finds the version a read names: `VersionId` or the current one.
fn find_version(
    versions: Option<&Versions>,
    key: &str,
    version_id: Option<&str>,
) -> Result<Arc<ObjectMeta>, AwsError> {
    match version_id {
        Some(id) => versions
            .and_then(|v| v.iter().find(|m| m.version_id == id))
            .cloned()
            .ok_or_else(|| {
                if id == "null" || id.len() == 32 {
                    errors::no_such_version(key, id)
                } else {
                    errors::invalid_argument("Invalid version id specified", "versionId", id)
                }
            }),
        None => versions
            .and_then(|v| v.last())
            .cloned()
            .ok_or_else(|| errors::no_such_key(key)),
    }
}

/// Looks up the version a read names, with S3's answers for delete markers.
pub fn read_version(
    bucket: &Bucket,
    key: &str,
    version_id: Option<&str>,
    method: &str,
) -> Result<Arc<ObjectMeta>, AwsError> {
    let meta = find_version(Some(&bucket.versions(key)?), key, version_id)?;
    if meta.delete_marker {
        let error = if version_id.is_some() {
            AwsError::new(
                "MethodNotAllowed",
                "The specified method is not allowed against this resource.",
            )
            .with_status(405)
            .with_field("Method", method)
            .with_field("ResourceType", "DeleteMarker")
        } else {
            errors::no_such_key(key)
        };
        return Err(error
            .with_header("x-amz-delete-marker", "true")
            .with_header("x-amz-version-id", meta.version_id.clone()));
    }
    bucket.with_body(meta)
}

pub fn get_object(
    inner: &Inner,
    ctx: &RequestContext,
    input: &Value,
    head: bool,
) -> Result<Reply, AwsError> {
    let bucket = inner.bucket(required(input, "Bucket")?)?;
    let key = required(input, "Key")?;
    let record = bucket.record();
    let version_id = str_of(input, "VersionId");
    let action = if version_id.is_some() {
        "s3:GetObjectVersion"
    } else {
        "s3:GetObject"
    };
    // Callers that may not list the bucket get 403, not 404, for a missing key.
    let meta = match read_version(&bucket, key, version_id, if head { "HEAD" } else { "GET" }) {
        Ok(meta) => meta,
        Err(e) if e.code == "NoSuchKey" => {
            let may_list = access::allowed(
                ctx,
                &record,
                &Ask {
                    action: "s3:ListBucket",
                    key: None,
                    object_grants: None,
                    extra: &[],
                },
            );
            check(ctx, &record, action, key, None, &[])?;
            return Err(if may_list { e } else { errors::access_denied() });
        }
        Err(e) => {
            check(ctx, &record, action, key, None, &[])?;
            return Err(e);
        }
    };
    check(ctx, &record, action, key, Some(&meta), &[])?;
    if !meta.is_readable(ctx.now_ms) && !head {
        return Err(errors::invalid_object_state(&meta.storage_class));
    }
    check_read_conditions(input, &meta)?;

    let size = meta.size;
    let mut out = object_headers(&record, &meta, ctx.now_ms);
    let mut status = None;
    let mut range = (0, size);
    if let Some(part) = int_of(input, "PartNumber") {
        let parts = meta.parts.clone().unwrap_or_else(|| vec![size]);
        let index = usize::try_from(part - 1)
            .ok()
            .filter(|i| *i < parts.len())
            .ok_or_else(|| {
                AwsError::new(
                    "InvalidPartNumber",
                    "The requested partnumber is not satisfiable",
                )
                .with_status(416)
                .with_field("PartNumberRequested", part.to_string())
                .with_field("ActualPartCount", parts.len().to_string())
            })?;
        let start: u64 = parts.iter().take(index).sum();
        range = (start, start + parts.get(index).copied().unwrap_or(0));
        out.insert("PartsCount".into(), json!(parts.len()));
        if meta.parts.is_some() {
            status = Some(206);
            out.insert(
                "ContentRange".into(),
                json!(format!(
                    "bytes {}-{}/{size}",
                    range.0,
                    range.1.saturating_sub(1)
                )),
            );
        }
    } else if let Some(text) = str_of(input, "Range") {
        if let Some((start, end)) = parse_range(text, size)? {
            range = (start, end);
            status = Some(206);
            out.insert(
                "ContentRange".into(),
                json!(format!("bytes {start}-{}/{size}", end - 1)),
            );
        }
    }
    out.insert("ContentLength".into(), json!(range.1 - range.0));
    let whole = range == (0, size);
    if str_of(input, "ChecksumMode") == Some("ENABLED") && whole {
        if let Some((alg, value, kind)) = &meta.checksum {
            out.insert(format!("Checksum{alg}"), json!(value));
            out.insert("ChecksumType".into(), json!(kind));
        }
    }
    // response-* query overrides of the stored headers.
    for (param, member) in [
        ("ResponseContentType", "ContentType"),
        ("ResponseContentLanguage", "ContentLanguage"),
        ("ResponseExpires", "Expires"),
        ("ResponseCacheControl", "CacheControl"),
        ("ResponseContentDisposition", "ContentDisposition"),
        ("ResponseContentEncoding", "ContentEncoding"),
    ] {
        if let Some(v) = input.get(param) {
            out.insert(member.into(), v.clone());
        }
    }
    let body = if head {
        ResponseBody::Bytes(Bytes::new())
    } else {
        body_slices(inner, &meta, range.0, range.1)?
    };
    Ok(Reply {
        output: Value::Object(out),
        body,
        status,
    })
}

/// The headers every read of an object carries.
pub fn object_headers(record: &BucketRecord, meta: &ObjectMeta, now_ms: u64) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("AcceptRanges".into(), json!("bytes"));
    out.insert("LastModified".into(), secs(meta.last_modified_ms));
    out.insert("ETag".into(), json!(meta.etag));
    out.insert(
        "ContentType".into(),
        meta.headers
            .get("ContentType")
            .cloned()
            .unwrap_or_else(|| json!("binary/octet-stream")),
    );
    for (k, v) in &meta.headers {
        if k != "ContentType" {
            out.insert(k.clone(), v.clone());
        }
    }
    if !meta.metadata.is_empty() {
        out.insert("Metadata".into(), json!(meta.metadata));
    }
    if meta.storage_class != "STANDARD" {
        out.insert("StorageClass".into(), json!(meta.storage_class));
    }
    if meta.version_id != "null" || record.config.versioning.is_some() {
        out.insert("VersionId".into(), json!(meta.version_id));
    }
    for (k, v) in &meta.sse {
        out.insert(k.clone(), v.clone());
    }
    if !meta.tags.is_empty() {
        out.insert("TagCount".into(), json!(meta.tags.len()));
    }
    if let Some(location) = &meta.website_redirect {
        out.insert("WebsiteRedirectLocation".into(), json!(location));
    }
    if let Some(exp) = expiration_header(record, meta, now_ms) {
        out.insert("Expiration".into(), json!(exp));
    }
    if meta.is_archived() {
        if let Some(until) = meta.restored_until_ms {
            let restore = if until == 0 {
                "ongoing-request=\"true\"".to_string()
            } else {
                format!(
                    "ongoing-request=\"false\", expiry-date=\"{}\"",
                    nimbus_core::timestamp::format((until / 1000) as f64, "rfc822")
                )
            };
            out.insert("Restore".into(), json!(restore));
        }
    }
    if let Some(parts) = &meta.parts {
        let _ = parts;
    }
    out
}

/// The byte range `[start, end)` a Range header asks for; `None` serves the whole object.
pub fn parse_range(text: &str, size: u64) -> Result<Option<(u64, u64)>, AwsError> {
    let Some(spec) = text.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    // Several ranges: S3 serves the whole object.
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (first, last) = (first.trim(), last.trim());
    let parsed = match (first.is_empty(), last.is_empty()) {
        (true, false) => {
            let Ok(n) = last.parse::<u64>() else {
                return Ok(None);
            };
            if n == 0 {
                return Err(errors::invalid_range(size, text));
            }
            (size.saturating_sub(n), size)
        }
        (false, true) => {
            let Ok(start) = first.parse::<u64>() else {
                return Ok(None);
            };
            (start, size)
        }
        (false, false) => {
            let (Ok(start), Ok(end)) = (first.parse::<u64>(), last.parse::<u64>()) else {
                return Ok(None);
            };
            if end < start {
                return Ok(None);
            }
            (start, end.saturating_add(1).min(size))
        }
        (true, true) => return Ok(None),
    };
    if parsed.0 >= size {
        return Err(errors::invalid_range(size, text));
    }
    Ok(Some(parsed))
}

fn check_read_conditions(input: &Value, meta: &ObjectMeta) -> Result<(), AwsError> {
    let modified_secs = meta.last_modified_ms / 1000;
    let if_match = str_of(input, "IfMatch");
    if let Some(list) = if_match {
        if !etag_matches(list, &meta.etag) {
            return Err(errors::precondition_failed("If-Match"));
        }
    } else if let Some(since) = time_ms_of(input, "IfUnmodifiedSince") {
        if modified_secs > since / 1000 {
            return Err(errors::precondition_failed("If-Unmodified-Since"));
        }
    }
    if let Some(list) = str_of(input, "IfNoneMatch") {
        if etag_matches(list, &meta.etag) {
            return Err(errors::not_modified());
        }
    } else if let Some(since) = time_ms_of(input, "IfModifiedSince") {
        if modified_secs <= since / 1000 {
            return Err(errors::not_modified());
        }
    }
    Ok(())
}

/// The response body for bytes `[start, end)` of an object.
pub fn body_slices(
    inner: &Inner,
    meta: &ObjectMeta,
    start: u64,
    end: u64,
) -> Result<ResponseBody, AwsError> {
    match &meta.body {
        BodyRef::Inline => {
            let (s, e) = (start as usize, (end as usize).min(meta.inline.len()));
            Ok(ResponseBody::Bytes(meta.inline.slice(s.min(e)..e)))
        }
        BodyRef::Files(files) => {
            let mut slices = Vec::new();
            let mut offset = 0u64;
            for (id, len) in files {
                let (file_start, file_end) = (offset, offset + len);
                offset = file_end;
                if file_end <= start || file_start >= end {
                    continue;
                }
                let from = start.max(file_start) - file_start;
                let to = end.min(file_end) - file_start;
                slices.push(FileSlice {
                    file: inner.blobs.open_file(id)?,
                    offset: from,
                    len: to - from,
                });
            }
            Ok(ResponseBody::Files(slices))
        }
    }
}

/// Pieces in which stored bodies are read for copying and hashing: memory stays
/// bounded whatever the object's size.
const READ_PIECE: usize = 1 << 20;

/// Reads a stored body piece by piece, handing each piece to `sink` on the blocking
/// pool (copy sources, checksums of stored parts).
pub async fn for_each_piece(
    body: ResponseBody,
    mut sink: impl FnMut(&[u8]) + Send + 'static,
) -> Result<(), AwsError> {
    match body {
        // On the blocking pool too, so that sinks may block (channel sends) in every case.
        ResponseBody::Bytes(b) => tokio::task::spawn_blocking(move || sink(&b))
            .await
            .map_err(|e| errors::internal(e.to_string())),
        ResponseBody::Files(slices) => tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let mut buf = vec![0u8; READ_PIECE];
            for slice in slices {
                let mut done = 0u64;
                while done < slice.len {
                    let want = ((slice.len - done) as usize).min(READ_PIECE);
                    let n = slice
                        .file
                        .read_at(&mut buf[..want], slice.offset + done)
                        .map_err(|e| errors::internal(e.to_string()))?;
                    if n == 0 {
                        return Err(errors::internal("object file shorter than its record"));
                    }
                    sink(&buf[..n]);
                    done += n as u64;
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| errors::internal(e.to_string()))?,
        ResponseBody::FromOutput => Ok(()),
    }
}

/// The MD5 and, when asked, one flexible checksum of bytes `[start, end)` of an object.
pub async fn digest_range(
    inner: &Inner,
    meta: &ObjectMeta,
    start: u64,
    end: u64,
    algorithm: Option<Algorithm>,
) -> Result<([u8; 16], Option<String>), AwsError> {
    digest(body_slices(inner, meta, start, end)?, algorithm).await
}

/// The MD5 and, when asked, one flexible checksum of whole stored files, in order.
pub async fn digest_files(
    inner: &Inner,
    files: &[&str],
    algorithm: Option<Algorithm>,
) -> Result<([u8; 16], Option<String>), AwsError> {
    let mut slices = Vec::with_capacity(files.len());
    for id in files {
        let file = inner.blobs.open_file(id)?;
        let len = file
            .metadata()
            .map_err(|e| errors::internal(e.to_string()))?
            .len();
        slices.push(FileSlice {
            file,
            offset: 0,
            len,
        });
    }
    digest(ResponseBody::Files(slices), algorithm).await
}

async fn digest(
    body: ResponseBody,
    algorithm: Option<Algorithm>,
) -> Result<([u8; 16], Option<String>), AwsError> {
    let state = Arc::new(std::sync::Mutex::new((
        Md5::new(),
        algorithm.map(Hasher::new),
    )));
    let sink_state = state.clone();
    for_each_piece(body, move |piece| {
        let mut guard = sink_state.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.update(piece);
        if let Some(h) = guard.1.as_mut() {
            h.update(piece);
        }
    })
    .await?;
    let mut guard = state.lock().unwrap_or_else(|p| p.into_inner());
    let md5 = std::mem::take(&mut guard.0);
    let checksum = guard.1.take().map(Hasher::finish_base64);
    Ok((md5.finalize().into(), checksum))
}

pub async fn delete_object(
    inner: &Inner,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, AwsError> {
    let bucket = inner.bucket(required(input, "Bucket")?)?;
    let key = required(input, "Key")?;
    let record = bucket.record();
    let version_id = str_of(input, "VersionId");
    let action = if version_id.is_some() {
        "s3:DeleteObjectVersion"
    } else {
        "s3:DeleteObject"
    };
    check(ctx, &record, action, key, None, &[])?;
    let outcome = delete_one(inner, ctx, &bucket, &record, key, version_id).await?;
    Ok(outcome.answer())
}

pub struct DeleteOutcome {
    pub key: String,
    pub version_id: Option<String>,
    pub delete_marker: bool,
}

impl DeleteOutcome {
    fn answer(&self) -> Value {
        let mut out = Map::new();
        if let Some(v) = &self.version_id {
            out.insert("VersionId".into(), json!(v));
        }
        if self.delete_marker {
            out.insert("DeleteMarker".into(), json!(true));
        }
        Value::Object(out)
    }
}

/// Deletes a version, or the current object (a delete marker when versioned).
pub async fn delete_one(
    inner: &Inner,
    ctx: &RequestContext,
    bucket: &Bucket,
    record: &BucketRecord,
    key: &str,
    version_id: Option<&str>,
) -> Result<DeleteOutcome, AwsError> {
    let versioning = record.config.versioning.clone();
    let mut batch = Batch::new();
    let mut dropped = Vec::new();
    let mut removed_meta: Option<Arc<ObjectMeta>> = None;
    let outcome;
    let commit = {
        let mut objects = bucket.edit();
        match version_id {
            Some(id) => {
                let versions = objects.get_mut(key)?;
                let found = versions
                    .as_ref()
                    .and_then(|v| v.iter().position(|m| m.version_id == id));
                match (versions, found) {
                    (Some(versions), Some(pos)) => {
                        let old = versions.remove(pos);
                        bucket.delete_record(&mut batch, key, old.seq);
                        dropped.extend(old.files().iter().map(|(f, _)| f.clone()));
                        outcome = DeleteOutcome {
                            key: key.to_string(),
                            version_id: Some(id.to_string()),
                            delete_marker: old.delete_marker,
                        };
                        removed_meta = Some(old);
                    }
                    _ => {
                        if id != "null" && id.len() != 32 {
                            return Err(errors::invalid_argument(
                                "Invalid version id specified",
                                "versionId",
                                id,
                            ));
                        }
                        // Deleting a version that does not exist succeeds.
                        return Ok(DeleteOutcome {
                            key: key.to_string(),
                            version_id: Some(id.to_string()),
                            delete_marker: false,
                        });
                    }
                }
            }
            None if versioning.is_none() => {
                if let Some(versions) = objects.remove(key)? {
                    for old in versions {
                        bucket.delete_record(&mut batch, key, old.seq);
                        dropped.extend(old.files().iter().map(|(f, _)| f.clone()));
                        removed_meta = Some(old);
                    }
                }
                outcome = DeleteOutcome {
                    key: key.to_string(),
                    version_id: None,
                    delete_marker: false,
                };
            }
            None => {
                let enabled = versioning.as_deref() == Some("Enabled");
                let versions = objects.versions(key)?;
                if !enabled {
                    if let Some(pos) = versions.iter().position(|v| v.version_id == "null") {
                        let old = versions.remove(pos);
                        bucket.delete_record(&mut batch, key, old.seq);
                        dropped.extend(old.files().iter().map(|(f, _)| f.clone()));
                    }
                }
                let marker = ObjectMeta {
                    key: key.to_string(),
                    version_id: if enabled {
                        new_version_id()
                    } else {
                        "null".to_string()
                    },
                    seq: inner.next_seq(),
                    delete_marker: true,
                    size: 0,
                    etag: String::new(),
                    last_modified_ms: ctx.now_ms,
                    owner: ctx.account_id.clone(),
                    headers: SmallMap::new(),
                    metadata: BTreeMap::new(),
                    storage_class: "STANDARD".to_string(),
                    tags: Vec::new(),
                    acl: None,
                    sse: SmallMap::new(),
                    website_redirect: None,
                    checksum: None,
                    parts: None,
                    body: BodyRef::Inline,
                    restored_until_ms: None,
                    inline: Bytes::new(),
                };
                bucket.put_record(&mut batch, &marker)?;
                outcome = DeleteOutcome {
                    key: key.to_string(),
                    version_id: Some(marker.version_id.clone()),
                    delete_marker: true,
                };
                let marker = Arc::new(marker);
                removed_meta = Some(marker.clone());
                versions.push(marker);
            }
        }
        inner.store.submit(batch)
    };
    commit.await.map_err(errors::store_failed)?;
    inner.blobs.remove(&dropped);
    if let Some(meta) = removed_meta {
        let event = if outcome.delete_marker && version_id.is_none() {
            "ObjectRemoved:DeleteMarkerCreated"
        } else {
            "ObjectRemoved:Delete"
        };
        notify(inner, ctx, record, event, &meta);
    }
    Ok(outcome)
}

pub async fn delete_objects(
    inner: &Inner,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, AwsError> {
    let bucket = inner.bucket(required(input, "Bucket")?)?;
    let record = bucket.record();
    let delete = input.get("Delete").ok_or_else(errors::malformed_xml)?;
    let objects = delete
        .get("Objects")
        .and_then(Value::as_array)
        .ok_or_else(errors::malformed_xml)?;
    if objects.len() > 1000 {
        return Err(errors::malformed_xml());
    }
    let quiet = bool_of(delete, "Quiet").unwrap_or(false);
    let mut deleted = Vec::new();
    let mut failed = Vec::new();
    for object in objects {
        let Some(key) = object.get("Key").and_then(Value::as_str) else {
            return Err(errors::malformed_xml());
        };
        let version_id = object.get("VersionId").and_then(Value::as_str);
        let action = if version_id.is_some() {
            "s3:DeleteObjectVersion"
        } else {
            "s3:DeleteObject"
        };
        let result = match check(ctx, &record, action, key, None, &[]) {
            Ok(()) => delete_one(inner, ctx, &bucket, &record, key, version_id).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(outcome) => {
                if !quiet {
                    let mut entry = json!({"Key": outcome.key});
                    if let Some(v) = &version_id {
                        entry["VersionId"] = json!(v);
                    }
                    if outcome.delete_marker {
                        entry["DeleteMarker"] = json!(true);
                        entry["DeleteMarkerVersionId"] = json!(outcome.version_id);
                    }
                    deleted.push(entry);
                }
            }
            Err(e) => {
                let mut entry = json!({"Key": key, "Code": e.code, "Message": e.message});
                if let Some(v) = version_id {
                    entry["VersionId"] = json!(v);
                }
                failed.push(entry);
            }
        }
    }
    let mut out = Map::new();
    if !deleted.is_empty() {
        out.insert("Deleted".into(), Value::Array(deleted));
    }
    if !failed.is_empty() {
        out.insert("Errors".into(), Value::Array(failed));
    }
    Ok(Value::Object(out))
}

/// `bucket/key[?versionId=v]` of `x-amz-copy-source`, percent-decoded.
pub fn parse_copy_source(text: &str) -> Result<(String, String, Option<String>), AwsError> {
    let (path, version) = match text.split_once("?versionId=") {
        Some((p, v)) => (p, Some(v.to_string())),
        None => (text, None),
    };
    let decoded = percent_encoding::percent_decode_str(path.trim_start_matches('/'))
        .decode_utf8_lossy()
        .into_owned();
    let (bucket, key) = decoded.split_once('/').ok_or_else(|| {
        errors::invalid_argument("Invalid copy source object key", "x-amz-copy-source", text)
    })?;
    if bucket.is_empty() || key.is_empty() {
        return Err(errors::invalid_argument(
            "Invalid copy source object key",
            "x-amz-copy-source",
            text,
        ));
    }
    Ok((bucket.to_string(), key.to_string(), version))
}

/// Reads a copy source with its access check and x-amz-copy-source-if-* conditions.
pub fn copy_source(
    inner: &Inner,
    ctx: &RequestContext,
    input: &Value,
) -> Result<(Arc<ObjectMeta>, BucketRecord), AwsError> {
    let (src_bucket, src_key, src_version) = parse_copy_source(required(input, "CopySource")?)?;
    let bucket = inner.bucket(&src_bucket)?;
    let record = bucket.record();
    let meta = match read_version(&bucket, &src_key, src_version.as_deref(), "GET") {
        Ok(m) => m,
        Err(e) if e.code == "MethodNotAllowed" => {
            return Err(errors::invalid_request(
                "The source of a copy request may not specifically refer to a delete marker by version id.",
            ))
        }
        Err(e) => {
            check(ctx, &record, "s3:GetObject", &src_key, None, &[])?;
            return Err(e);
        }
    };
    check(ctx, &record, "s3:GetObject", &src_key, Some(&meta), &[])?;
    if !meta.is_readable(ctx.now_ms) {
        return Err(errors::invalid_object_state(&meta.storage_class));
    }
    let modified = meta.last_modified_ms / 1000;
    if let Some(list) = str_of(input, "CopySourceIfMatch") {
        if !etag_matches(list, &meta.etag) {
            return Err(errors::precondition_failed("x-amz-copy-source-If-Match"));
        }
    } else if time_ms_of(input, "CopySourceIfUnmodifiedSince").is_some_and(|t| modified > t / 1000)
    {
        return Err(errors::precondition_failed(
            "x-amz-copy-source-If-Unmodified-Since",
        ));
    }
    if let Some(list) = str_of(input, "CopySourceIfNoneMatch") {
        if etag_matches(list, &meta.etag) {
            return Err(errors::precondition_failed(
                "x-amz-copy-source-If-None-Match",
            ));
        }
    } else if time_ms_of(input, "CopySourceIfModifiedSince").is_some_and(|t| modified <= t / 1000) {
        return Err(errors::precondition_failed(
            "x-amz-copy-source-If-Modified-Since",
        ));
    }
    Ok((meta, record))
}

pub async fn copy_object(
    inner: &Inner,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, AwsError> {
    let bucket = inner.bucket(required(input, "Bucket")?)?;
    let key = required(input, "Key")?;
    let record = bucket.record();
    check(ctx, &record, "s3:PutObject", key, None, &[])?;
    let (source, source_record) = copy_source(inner, ctx, input)?;
    let replace_meta = str_of(input, "MetadataDirective") == Some("REPLACE");
    let replace_tags = str_of(input, "TaggingDirective") == Some("REPLACE");
    let mut meta = template_from_input(ctx, &record, key, input)?;
    if !replace_meta {
        meta.headers = source.headers.clone();
        meta.metadata = source.metadata.clone();
        if input.get("WebsiteRedirectLocation").is_none() {
            meta.website_redirect = source.website_redirect.clone();
        }
    }
    if !replace_tags {
        meta.tags = source.tags.clone();
    }
    let same_object = source_record.name == record.name && source.key == key;
    let changes_something = replace_meta
        || input.get("StorageClass").is_some()
        || input.get("WebsiteRedirectLocation").is_some()
        || input.get("ServerSideEncryption").is_some()
        || source.version_id != "null" && record.config.versioning.as_deref() == Some("Enabled");
    if same_object && !changes_something {
        return Err(errors::invalid_request(
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
        ));
    }
    meta.size = source.size;
    meta.etag = source.etag.clone();
    meta.parts = None;
    let mut new_files = Vec::new();
    match &source.body {
        BodyRef::Inline => {
            meta.body = BodyRef::Inline;
            meta.inline = source.inline.clone();
        }
        BodyRef::Files(files) => {
            let mut linked = Vec::new();
            for (id, len) in files {
                let new_id = inner.blobs.link(id)?;
                new_files.push(new_id.clone());
                linked.push((new_id, *len));
            }
            meta.body = BodyRef::Files(linked);
        }
    }
    let algorithm = str_of(input, "ChecksumAlgorithm")
        .and_then(algorithm_named)
        .or_else(|| {
            source
                .checksum
                .as_ref()
                .filter(|(_, _, kind)| kind == "FULL_OBJECT")
                .and_then(|(alg, _, _)| algorithm_named(alg))
        });
    // A copy is one object: a multipart source's ETag becomes the MD5 of the whole body.
    meta.checksum = None;
    if source.parts.is_some() || algorithm.is_some() {
        let (md5, checksum) =
            digest_range(inner, &source, 0, source.size, algorithm.map(|(_, a)| a)).await?;
        if source.parts.is_some() {
            meta.etag = etag_of(&md5);
        }
        meta.checksum = algorithm
            .zip(checksum)
            .map(|((name, _), value)| (name.to_string(), value, "FULL_OBJECT".to_string()));
    }
    let written = store_new_object(
        inner,
        ctx,
        &bucket,
        &record,
        meta,
        &new_files,
        "ObjectCreated:Copy",
        |current| check_write_conditions(input, current, key),
    )
    .await?;
    let m = &written.meta;
    let mut result = json!({"ETag": m.etag, "LastModified": secs(m.last_modified_ms)});
    if let Some((alg, value, kind)) = &m.checksum {
        result[format!("Checksum{alg}")] = json!(value);
        result["ChecksumType"] = json!(kind);
    }
    let mut out = json!({"CopyObjectResult": result});
    if written.versioned {
        out["VersionId"] = json!(m.version_id);
    }
    if source.version_id != "null" {
        out["CopySourceVersionId"] = json!(source.version_id);
    }
    for (k, v) in &m.sse {
        out[k] = v.clone();
    }
    Ok(out)
}

/// Replaces one version's record with `change` applied (tags, ACL, restore state).
async fn update_version(
    inner: &Inner,
    bucket: &Bucket,
    key: &str,
    version_id: Option<&str>,
    change: impl FnOnce(&mut ObjectMeta) -> Result<(), AwsError>,
) -> Result<Arc<ObjectMeta>, AwsError> {
    let commit = {
        let mut objects = bucket.edit();
        let versions = objects
            .get_mut(key)?
            .ok_or_else(|| errors::no_such_key(key))?;
        let pos = match version_id {
            Some(id) => versions
                .iter()
                .position(|m| m.version_id == id)
                .ok_or_else(|| errors::no_such_version(key, id))?,
            None => versions.len().saturating_sub(1),
        };
        let current = versions.get(pos).ok_or_else(|| errors::no_such_key(key))?;
        if current.delete_marker {
            return Err(if version_id.is_some() {
                AwsError::new(
                    "MethodNotAllowed",
                    "The specified method is not allowed against this resource.",
                )
                .with_status(405)
            } else {
                errors::no_such_key(key)
            });
        }
        let mut updated = (**current).clone();
        change(&mut updated)?;
        let mut batch = Batch::new();
        bucket.put_record(&mut batch, &updated)?;
        let updated = Arc::new(updated);
        if let Some(slot) = versions.get_mut(pos) {
            *slot = updated.clone();
        }
        committed(inner.store.submit(batch), updated)
    };
    commit.await
}

fn version_answer(meta: &ObjectMeta, mut out: Value) -> Value {
    if meta.version_id != "null" {
        out["VersionId"] = json!(meta.version_id);
    }
    out
}

pub async fn put_object_tagging(
    inner: &Inner,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, AwsError> {
    let bucket = inner.bucket(required(input, "Bucket")?)?;
    let key = required(input, "Key")?;
    check(ctx, &bucket.record(), "s3:PutObjectTagging", key, None, &[])?;
    let tags = input
        .pointer("/Tagging/TagSet")
        .cloned()
        .ok_or_else(errors::malformed_xml)?;
    validate_tags(&tags, 10)?;
    let pairs: Vec<(String, String)> = tags
        .as_array()
        .map(|l| {
            l.iter()
                .map(|t| {
                    (
                        t.get("Key")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        t.get("Value")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let meta = update_version(inner, &bucket, key, str_of(input, "VersionId"), |m| {
        m.tags = pairs;
        Ok(())
    })
    .await?;
    Ok(version_answer(&meta, json!({})))
}

pub fn get_object_tagging(
    inner: &Inner,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, AwsError> {
    let bucket = inner.bucket(required(input, "Bucket")?)?;
    let key = required(input, "Key")?;
    let record = bucket.record();
    check(ctx, &record, "s3:GetObjectTagging", key, None, &[])?;
    let meta = read_version(&bucket, key, str_of(input, "VersionId"), "GET")?;
    let tags: Vec<Value> = meta
        .tags
        .iter()
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect();
    Ok(version_answer(&meta, json!({"TagSet": tags})))
}

pub async fn delete_object_tagging(
    inner: &Inner,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, AwsError> {
    let bucket = inner.bucket(required(input, "Bucket")?)?;
    let key = required(input, "Key")?;
    check(
        ctx,
        &bucket.record(),
        "s3:DeleteObjectTagging",
        key,
        None,
        &[],
    )?;
    let meta = update_version(inner, &bucket, key, str_of(input, "VersionId"), |m| {
        m.tags.clear();
        Ok(())
    })
    .await?;
    Ok(version_answer(&meta, json!({})))
}

pub async fn put_object_acl(
    inner: &Inner,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, AwsError> {
    let bucket = inner.bucket(required(input, "Bucket")?)?;
    let key = required(input, "Key")?;
    let record = bucket.record();
    check(ctx, &record, "s3:PutObjectAcl", key, None, &[])?;
    let grants = acl_from_input(input)?;
    let empty = grants.as_array().is_none_or(|g| g.is_empty());
    if !access::acls_enabled(&record) && !empty {
        return Err(AwsError::new(
            "AccessControlListNotSupported",
            "The bucket does not allow ACLs",
        ));
    }
    if access::blocks(&record, "BlockPublicAcls") && access::grants_are_public(Some(&grants)) {
        return Err(errors::access_denied());
    }
    update_version(inner, &bucket, key, str_of(input, "VersionId"), |m| {
        m.acl = Some(grants).filter(|_| !empty);
        Ok(())
    })
    .await?;
    Ok(json!({}))
}

pub fn get_object_acl(
    inner: &Inner,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, AwsError> {
    let bucket = inner.bucket(required(input, "Bucket")?)?;
    let key = required(input, "Key")?;
    let record = bucket.record();
    let meta = read_version(&bucket, key, str_of(input, "VersionId"), "GET")?;
    check(ctx, &record, "s3:GetObjectAcl", key, Some(&meta), &[])?;
    Ok(json!({
        "Owner": access::owner_value(&meta.owner),
        "Grants": access::full_grants(&meta.owner, meta.acl.as_ref()),
    }))
}

pub fn get_object_attributes(
    inner: &Inner,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, AwsError> {
    let bucket = inner.bucket(required(input, "Bucket")?)?;
    let key = required(input, "Key")?;
    let record = bucket.record();
    check(ctx, &record, "s3:GetObjectAttributes", key, None, &[])?;
    let meta = read_version(&bucket, key, str_of(input, "VersionId"), "GET")?;
    let wanted: Vec<String> = input
        .get("ObjectAttributes")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut out = Map::new();
    out.insert("LastModified".into(), secs(meta.last_modified_ms));
    if meta.version_id != "null" {
        out.insert("VersionId".into(), json!(meta.version_id));
    }
    for attribute in wanted {
        match attribute.as_str() {
            "ETag" => {
                out.insert("ETag".into(), json!(meta.etag.trim_matches('"')));
            }
            "ObjectSize" => {
                out.insert("ObjectSize".into(), json!(meta.size));
            }
            "StorageClass" => {
                out.insert("StorageClass".into(), json!(meta.storage_class));
            }
            "Checksum" => {
                if let Some((alg, value, kind)) = &meta.checksum {
                    out.insert(
                        "Checksum".into(),
                        json!({format!("Checksum{alg}"): value, "ChecksumType": kind}),
                    );
                }
            }
            "ObjectParts" => {
                if let Some(parts) = &meta.parts {
                    out.insert(
                        "ObjectParts".into(),
                        json!({"TotalPartsCount": parts.len()}),
                    );
                }
            }
            other => {
                return Err(errors::invalid_argument(
                    "Invalid attribute name specified.",
                    "x-amz-object-attributes",
                    other,
                ))
            }
        }
    }
    Ok(Value::Object(out))
}

pub async fn restore_object(
    inner: &Inner,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Reply, AwsError> {
    let bucket = inner.bucket(required(input, "Bucket")?)?;
    let key = required(input, "Key")?;
    check(ctx, &bucket.record(), "s3:RestoreObject", key, None, &[])?;
    let days = input
        .pointer("/RestoreRequest/Days")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .max(1);
    // A restored copy expires at the midnight (UTC) after the requested number of days.
    let day_ms = 86_400_000;
    let until = (ctx.now_ms + days * day_ms).div_ceil(day_ms) * day_ms;
    let mut already = false;
    update_version(inner, &bucket, key, str_of(input, "VersionId"), |m| {
        if !m.is_archived() {
            return Err(AwsError::new(
                "InvalidObjectState",
                "Restore is not allowed for the object's current storage class",
            )
            .with_status(403)
            .with_field("StorageClass", m.storage_class.clone()));
        }
        already = m.restored_until_ms.is_some_and(|t| t > 0);
        // The restored copy is readable at once: nimbus has no archive retrieval delay.
        m.restored_until_ms = Some(until);
        Ok(())
    })
    .await?;
    // 202 for a new restore, 200 when a restored copy existed already.
    let mut reply = Reply::new(json!({}));
    reply.status = Some(if already { 200 } else { 202 });
    Ok(reply)
}

/// POST Object: the form's fields are the object's settings.
pub async fn post_object(
    inner: &Inner,
    ctx: &RequestContext,
    bucket_name: &str,
    fields: Vec<(String, String)>,
    key: String,
    body: RequestBody,
) -> Result<Value, AwsError> {
    let bucket = inner.bucket(bucket_name)?;
    let record = bucket.record();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let acl = field("acl");
    check(
        ctx,
        &record,
        "s3:PutObject",
        &key,
        None,
        &[("s3:x-amz-acl", acl.as_deref().unwrap_or(""))],
    )?;
    let mut input = Map::new();
    for (form, member) in [
        ("Content-Type", "ContentType"),
        ("Cache-Control", "CacheControl"),
        ("Content-Disposition", "ContentDisposition"),
        ("Content-Encoding", "ContentEncoding"),
        ("Expires", "Expires"),
        ("acl", "ACL"),
        ("x-amz-storage-class", "StorageClass"),
        ("x-amz-server-side-encryption", "ServerSideEncryption"),
        ("x-amz-website-redirect-location", "WebsiteRedirectLocation"),
        ("Content-MD5", "ContentMD5"),
    ] {
        if let Some(v) = field(form) {
            let value = if member == "Expires" {
                nimbus_core::timestamp::parse(&v)
                    .map(Value::from)
                    .unwrap_or(json!(v))
            } else {
                json!(v)
            };
            input.insert(member.into(), value);
        }
    }
    let metadata: Map<String, Value> = fields
        .iter()
        .filter_map(|(k, v)| {
            let lower = k.to_ascii_lowercase();
            lower
                .strip_prefix("x-amz-meta-")
                .map(|name| (name.to_string(), json!(v)))
        })
        .collect();
    if !metadata.is_empty() {
        input.insert("Metadata".into(), Value::Object(metadata));
    }
    let input = Value::Object(input);
    let mut meta = template_from_input(ctx, &record, &key, &input)?;
    if let Some(tagging) = field("tagging") {
        meta.tags = parse_tagging_xml(&tagging);
    }
    let stored = store_body(inner, &input, body, MAX_PUT).await?;
    let files = stored.files();
    meta.size = stored.size;
    meta.etag = etag_of(&stored.md5);
    meta.body = stored.body;
    meta.inline = stored.inline;
    let written = store_new_object(
        inner,
        ctx,
        &bucket,
        &record,
        meta,
        &files,
        "ObjectCreated:Post",
        |_| Ok(()),
    )
    .await?;
    let mut out = json!({
        "Bucket": record.name,
        "Key": key,
        "ETag": written.meta.etag,
        "Size": written.meta.size,
    });
    if written.versioned {
        out["VersionId"] = json!(written.meta.version_id);
    }
    Ok(out)
}

/// The `<Tagging><TagSet><Tag><Key>..</Key><Value>..</Value></Tag>..` of a POST form, read leniently.
fn parse_tagging_xml(text: &str) -> Vec<(String, String)> {
    let mut tags = Vec::new();
    for tag in text.split("<Tag>").skip(1) {
        let inner_text = |name: &str| {
            let open = format!("<{name}>");
            let close = format!("</{name}>");
            tag.split_once(&open)
                .and_then(|(_, rest)| rest.split_once(&close))
                .map(|(v, _)| v.to_string())
        };
        if let Some(key) = inner_text("Key") {
            tags.push((key, inner_text("Value").unwrap_or_default()));
        }
    }
    tags
}

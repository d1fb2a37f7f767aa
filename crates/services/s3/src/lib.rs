//! Amazon S3 for nimbus: buckets and their configurations, objects with
//! versions, listings, multipart uploads, access control (bucket policies,
//! ACLs, Block Public Access), static websites, CORS, lifecycle rules and
//! event notifications, with bodies streamed to disk and every acknowledged
//! write durable.
//!
//! This file owns the service object: [`S3::open`] loads every bucket, object
//! record and upload from the store, and the [`Service`] implementation
//! dispatches the model's operations to the handlers. Layout of the crate:
//!
//! - `handlers/` — one function per operation (buckets, bucket settings,
//!   objects, listings, multipart uploads)
//! - `state` — record formats and store tables; `blobs` — body files
//! - `access` — who may do what (policies, ACLs, Block Public Access)
//! - `website`, `cors`, `lifecycle`, `events` — the documented rules of those features
//! - `errors` — S3's error vocabulary
//!
//! Live state is in memory (a map of buckets, each with a sorted map of keys
//! to versions); locks are held only for short, await-free sections, and each
//! change is queued to the store under the bucket's lock, so writes to one key
//! reach the log in the order they were applied.

pub mod access;
mod blobs;
pub mod cors;
mod errors;
pub mod events;
mod handlers;
mod input;
pub mod lifecycle;
mod state;
pub mod website;

#[cfg(test)]
mod tests;

use blobs::Blobs;
use nimbus_core::{AwsError, BoxFuture, Reply, RequestBody, RequestContext, Service};
use nimbus_store::{Batch, Store};
use serde_json::Value;
use state::{BucketRecord, ObjectMeta, Part, Upload};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

pub use handlers::website_host::{WebsiteAnswer, WebsiteBody};

/// Where event notifications go: SQS queues, reached through the SQS service.
pub trait EventSink: Send + Sync {
    /// True when the queue named by this ARN exists (PutBucketNotificationConfiguration checks it).
    fn queue_exists(&self, queue_arn: &str) -> bool;
    /// Delivers one event message to the queue.
    fn send(&self, queue_arn: &str, body: String);
}

/// The S3 service.
pub struct S3 {
    inner: Arc<Inner>,
}

/// The versions of one key, oldest first; the last is current (it may be a delete marker).
pub(crate) type Versions = Vec<Arc<ObjectMeta>>;

pub(crate) struct UploadState {
    pub upload: Upload,
    pub parts: BTreeMap<u32, Part>,
}

pub(crate) struct Bucket {
    pub record: RwLock<BucketRecord>,
    pub objects: RwLock<BTreeMap<String, Versions>>,
    pub uploads: Mutex<BTreeMap<String, UploadState>>,
}

pub(crate) struct Inner {
    pub store: Store,
    pub blobs: Blobs,
    pub buckets: RwLock<BTreeMap<String, Arc<Bucket>>>,
    /// Source of [`ObjectMeta::seq`]: one order for every write in the cloud.
    pub seq: AtomicU64,
    pub events: RwLock<Option<Arc<dyn EventSink>>>,
}

impl Inner {
    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    pub fn bucket(&self, name: &str) -> Result<Arc<Bucket>, AwsError> {
        self.buckets
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| errors::no_such_bucket(name))
    }

    pub fn event_sink(&self) -> Option<Arc<dyn EventSink>> {
        self.events
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Queues a batch in order and waits until it is durable.
    pub async fn commit(&self, batch: Batch) -> Result<(), AwsError> {
        self.store.submit(batch).await.map_err(errors::store_failed)
    }
}

impl Bucket {
    pub fn record(&self) -> BucketRecord {
        self.record
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl S3 {
    /// Loads every bucket, object and upload; object bodies live in `root` (`<data dir>/s3`).
    pub fn open(store: Store, root: &Path, durable: bool) -> Result<S3, String> {
        let err = |e: nimbus_store::StoreError| format!("cannot load S3 state: {e}");
        let mut buckets = BTreeMap::new();
        for record in store.scan_prefix(state::BUCKETS, b"").map_err(err)? {
            let Ok(bucket) = serde_json::from_slice::<BucketRecord>(&record.1) else {
                tracing::warn!("skipping an unreadable bucket record");
                continue;
            };
            buckets.insert(
                bucket.name.clone(),
                Arc::new(Bucket {
                    record: RwLock::new(bucket),
                    objects: RwLock::new(BTreeMap::new()),
                    uploads: Mutex::new(BTreeMap::new()),
                }),
            );
        }
        let mut referenced = HashSet::new();
        let mut max_seq = 0;
        let mut loaded: HashMap<String, BTreeMap<String, Versions>> = HashMap::new();
        for record in store.scan_prefix(state::OBJECTS, b"").map_err(err)? {
            let Some(meta) = ObjectMeta::decode(&record.1) else {
                tracing::warn!("skipping an unreadable object record");
                continue;
            };
            let bucket = record
                .0
                .split(|b| *b == 0)
                .next()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            max_seq = max_seq.max(meta.seq);
            for (file, _) in meta.files() {
                referenced.insert(file.clone());
            }
            loaded
                .entry(bucket)
                .or_default()
                .entry(meta.key.clone())
                .or_default()
                .push(Arc::new(meta));
        }
        for (name, mut objects) in loaded {
            for versions in objects.values_mut() {
                versions.sort_by_key(|v| v.seq);
            }
            if let Some(bucket) = buckets.get(&name) {
                *bucket.objects.write().unwrap_or_else(|p| p.into_inner()) = objects;
            }
        }
        let mut uploads: HashMap<String, UploadState> = HashMap::new();
        for record in store.scan_prefix(state::UPLOADS, b"").map_err(err)? {
            if let Ok(upload) = serde_json::from_slice::<Upload>(&record.1) {
                uploads.insert(
                    upload.upload_id.clone(),
                    UploadState {
                        upload,
                        parts: BTreeMap::new(),
                    },
                );
            }
        }
        for record in store.scan_prefix(state::PARTS, b"").map_err(err)? {
            if let Ok(part) = serde_json::from_slice::<Part>(&record.1) {
                let upload_id = record
                    .0
                    .split(|b| *b == 0)
                    .next()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                if let Some(upload) = uploads.get_mut(&upload_id) {
                    referenced.insert(part.file.clone());
                    upload.parts.insert(part.number, part);
                }
            }
        }
        for (id, upload) in uploads {
            if let Some(bucket) = buckets.get(&upload.upload.bucket) {
                bucket
                    .uploads
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id, upload);
            }
        }
        let blobs = Blobs::open(root, durable, &referenced)?;
        let start_seq = (max_seq + 1).max(nimbus_core::now_millis() * 1000);
        Ok(S3 {
            inner: Arc::new(Inner {
                store,
                blobs,
                buckets: RwLock::new(buckets),
                seq: AtomicU64::new(start_seq),
                events: RwLock::new(None),
            }),
        })
    }

    /// Connects event notifications to their destination (the SQS service).
    pub fn set_event_sink(&self, sink: Arc<dyn EventSink>) {
        *self.inner.events.write().unwrap_or_else(|p| p.into_inner()) = Some(sink);
    }

    /// Runs lifecycle rules once (expirations, transitions, aborted uploads); serve calls it periodically.
    pub async fn run_lifecycle(&self, now_ms: u64) {
        handlers::lifecycle_run::run(&self.inner, now_ms).await;
    }

    /// Answers a request to a bucket's website endpoint.
    pub fn website<'a>(
        &'a self,
        ctx: &'a RequestContext,
        bucket: &'a str,
        method: &'a str,
        path: &'a str,
    ) -> BoxFuture<'a, WebsiteAnswer> {
        Box::pin(handlers::website_host::serve(
            &self.inner,
            ctx,
            bucket,
            method,
            path,
        ))
    }

    /// Stores an object uploaded by a browser form (POST Object); the edge has verified the policy.
    pub fn post_object<'a>(
        &'a self,
        ctx: &'a RequestContext,
        bucket: &'a str,
        fields: Vec<(String, String)>,
        key: String,
        body: RequestBody,
    ) -> BoxFuture<'a, Result<Value, AwsError>> {
        Box::pin(handlers::objects::post_object(
            &self.inner,
            ctx,
            bucket,
            fields,
            key,
            body,
        ))
    }

    /// CORS answer for a preflight request (OPTIONS) to a bucket.
    pub fn preflight(
        &self,
        bucket: &str,
        origin: Option<&str>,
        method: Option<&str>,
        headers: &[String],
        object: bool,
    ) -> Result<Vec<(String, String)>, AwsError> {
        let bucket = self.inner.bucket(bucket)?;
        let cors = bucket.record().config.cors;
        let resource = if object { "OBJECT" } else { "BUCKET" };
        cors::preflight(cors.as_ref(), origin, method, headers, resource)
    }

    /// CORS headers for an ordinary request from `origin`.
    pub fn cors_headers(
        &self,
        bucket: &str,
        origin: Option<&str>,
        method: &str,
    ) -> Vec<(String, String)> {
        match self.inner.bucket(bucket) {
            Ok(b) => {
                let cors = b.record().config.cors;
                cors::actual_headers(cors.as_ref(), origin, method)
            }
            Err(_) => Vec::new(),
        }
    }
}

/// S3 still accepts the legacy region names that old clients sign with (s3cmd's
/// default `bucket_location = US` puts `US` in the SigV4 scope): `US` is us-east-1
/// and `EU` eu-west-1, as for CreateBucket's LocationConstraint.
fn legacy_region(ctx: &RequestContext) -> std::borrow::Cow<'_, RequestContext> {
    let region = match ctx.region.as_str() {
        "US" => "us-east-1",
        "EU" => "eu-west-1",
        _ => return std::borrow::Cow::Borrowed(ctx),
    };
    let mut ctx = ctx.clone();
    ctx.region = region.to_string();
    std::borrow::Cow::Owned(ctx)
}

/// Every bucket goes with its objects, versions, uploads and body files. Records
/// are deleted in one batch queued under the bucket map's lock (so a bucket made
/// right after the reset is written after it); the keys the store holds are read
/// first, so records memory never loaded go too. Bodies are unlinked once the
/// records naming them are gone (a reader holding one keeps reading it).
async fn reset(inner: &Arc<Inner>) -> Result<(), AwsError> {
    let tables = [state::BUCKETS, state::OBJECTS, state::UPLOADS, state::PARTS];
    let stored = inner
        .store
        .keys_of_tables(&tables)
        .await
        .map_err(errors::store_failed)?;
    let (commit, taken) = {
        let mut buckets = inner.buckets.write().unwrap_or_else(|p| p.into_inner());
        let taken = std::mem::take(&mut *buckets);
        let mut batch = Batch::new();
        for (table, keys) in stored {
            for k in keys {
                batch.delete(table, k);
            }
        }
        for name in taken.keys() {
            batch.delete(state::BUCKETS, name.as_bytes().to_vec());
        }
        (inner.store.submit(batch), taken)
    };
    commit.await.map_err(errors::store_failed)?;
    // Records written to the old buckets between the key scan and the swap (a
    // request that was running) go in a second batch; their files with them.
    let mut batch = Batch::new();
    let mut files = Vec::new();
    for (name, bucket) in &taken {
        let objects = bucket.objects.read().unwrap_or_else(|p| p.into_inner());
        for versions in objects.values() {
            for v in versions {
                batch.delete(state::OBJECTS, state::object_key(name, &v.key, v.seq));
                files.extend(v.files().iter().map(|(f, _)| f.clone()));
            }
        }
        drop(objects);
        let uploads = bucket.uploads.lock().unwrap_or_else(|p| p.into_inner());
        for (id, upload) in uploads.iter() {
            batch.delete(state::UPLOADS, state::upload_key(name, id));
            for (number, part) in &upload.parts {
                batch.delete(state::PARTS, state::part_key(id, *number));
                files.push(part.file.clone());
            }
        }
    }
    inner.commit(batch).await?;
    let inner = inner.clone();
    let removed = files.len();
    tokio::task::spawn_blocking(move || inner.blobs.remove(&files))
        .await
        .map_err(|e| AwsError::internal(e.to_string()))?;
    tracing::debug!("s3 reset: {} buckets, {removed} body files", taken.len());
    Ok(())
}

impl Service for S3 {
    fn name(&self) -> &'static str {
        "s3"
    }

    fn call<'a>(
        &'a self,
        ctx: &'a RequestContext,
        operation: &'a str,
        input: Value,
    ) -> BoxFuture<'a, Result<Value, AwsError>> {
        Box::pin(async move {
            let ctx = &legacy_region(ctx);
            let reply =
                handlers::dispatch(&self.inner, ctx, operation, input, RequestBody::empty())
                    .await?;
            Ok(reply.output)
        })
    }

    fn call_streaming<'a>(
        &'a self,
        ctx: &'a RequestContext,
        operation: &'a str,
        input: Value,
        body: RequestBody,
    ) -> BoxFuture<'a, Result<Reply, AwsError>> {
        Box::pin(async move {
            let ctx = &legacy_region(ctx);
            handlers::dispatch(&self.inner, ctx, operation, input, body).await
        })
    }

    fn streams_request(&self, operation: &str) -> bool {
        matches!(operation, "PutObject" | "UploadPart")
    }

    fn admits_anonymous(&self) -> bool {
        true
    }

    fn reset(&self) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(reset(&self.inner))
    }

    fn hold_files(&self) -> BoxFuture<'_, Result<nimbus_core::FileHold, AwsError>> {
        Box::pin(async { Ok(self.inner.blobs.hold()) })
    }
}

//! Amazon S3 for nimbus: buckets and their configurations, objects with
//! versions, listings, multipart uploads, access control (bucket policies,
//! ACLs, Block Public Access), static websites, CORS, lifecycle rules and
//! event notifications, with bodies streamed to disk and every acknowledged
//! write durable.
//!
//! This file owns the service object: [`S3::open`] loads the buckets and the
//! uploads in progress from the store (object records stay there, see
//! `catalog`), and the [`Service`] implementation dispatches the model's
//! operations to the handlers. Layout of the crate:
//!
//! - `handlers/` — one function per operation (buckets, bucket settings,
//!   objects, listings, multipart uploads)
//! - `state` — record formats and store tables; `catalog` — a bucket's
//!   objects read from the store; `blobs` — body files
//! - `access` — who may do what (policies, ACLs, Block Public Access)
//! - `website`, `cors`, `lifecycle`, `events` — the documented rules of those features
//! - `errors` — S3's error vocabulary
//!
//! Buckets and uploads are in memory; objects are in the store. Locks are
//! held only for short, await-free sections, and each change is queued to the
//! store under the bucket's write lock, so writes to one key reach the log in
//! the order they were decided.

pub mod access;
mod blobs;
mod catalog;
pub mod cors;
mod errors;
pub mod events;
mod handlers;
mod input;
pub mod lifecycle;
mod metrics;
mod state;
pub mod website;

#[cfg(test)]
mod tests;

use blobs::Blobs;
use nimbus_core::{AwsError, BoxFuture, Reply, RequestBody, RequestContext, Service};
use nimbus_store::{Batch, Store};
use serde_json::Value;
use state::{BucketRecord, ObjectMeta, Part, Upload};
use std::collections::{BTreeMap, HashMap};
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
    pub name: String,
    pub record: RwLock<BucketRecord>,
    /// Orders changes of the bucket's objects (see `catalog`).
    writes: Mutex<()>,
    pub uploads: Mutex<BTreeMap<String, UploadState>>,
    store: Store,
}

pub(crate) struct Inner {
    pub store: Store,
    pub blobs: Blobs,
    /// The previous run stopped cleanly: no body file can be unnamed.
    stopped_cleanly: bool,
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

    /// Every bucket, as of now (for work that visits them all).
    pub fn all_buckets(&self) -> Vec<Arc<Bucket>> {
        self.buckets
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
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
    pub fn new(record: BucketRecord, store: Store) -> Bucket {
        Bucket {
            name: record.name.clone(),
            record: RwLock::new(record),
            writes: Mutex::new(()),
            uploads: Mutex::new(BTreeMap::new()),
            store,
        }
    }

    pub fn record(&self) -> BucketRecord {
        self.record
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl S3 {
    /// Loads the buckets and the uploads in progress; object bodies live in
    /// `root` (`<data dir>/s3`).
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
                Arc::new(Bucket::new(bucket, store.clone())),
            );
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
        let stopped_cleanly = Blobs::stopped_cleanly(root);
        let blobs = Blobs::open(root, durable)?;
        let start_seq = state::start_seq(&store).map_err(err)?;
        Ok(S3 {
            inner: Arc::new(Inner {
                store,
                blobs,
                buckets: RwLock::new(buckets),
                stopped_cleanly,
                seq: AtomicU64::new(start_seq),
                events: RwLock::new(None),
            }),
        })
    }

    /// Removes the body files that no record names: leftovers of a crash
    /// between a body's rename and its record, or between a record's deletion
    /// and the unlink. Runs once after the start, in the background: it reads
    /// every object record, which the start itself must not wait for.
    ///
    /// Only files older than `started` are candidates, so bodies written or
    /// linked since are never taken. A candidate still named is found either
    /// among the uploads' parts or among the object records: parts are read
    /// first because a completed upload's object record is queued before its
    /// parts leave memory.
    pub async fn sweep_orphan_bodies(&self, started: std::time::SystemTime) {
        // Only a crash (or a kill) leaves unnamed files behind.
        if self.inner.stopped_cleanly {
            return;
        }
        let inner = self.inner.clone();
        let swept = tokio::task::spawn_blocking(move || -> Result<usize, AwsError> {
            let mut candidates = inner.blobs.older_than(started);
            if candidates.is_empty() {
                return Ok(0);
            }
            for bucket in &inner.all_buckets() {
                let uploads = bucket.uploads.lock().unwrap_or_else(|p| p.into_inner());
                for part in uploads.values().flat_map(|u| u.parts.values()) {
                    candidates.remove(&part.file);
                }
            }
            inner
                .store
                .scan(state::OBJECTS, b"", |_, v| {
                    if let Some(meta) = ObjectMeta::decode(v, false) {
                        for (file, _) in meta.files() {
                            candidates.remove(file);
                        }
                    }
                    if candidates.is_empty() {
                        nimbus_store::Step::Stop
                    } else {
                        nimbus_store::Step::Next
                    }
                })
                .map_err(errors::store_failed)?;
            let orphans: Vec<String> = candidates.into_iter().collect();
            inner.blobs.remove(&orphans);
            Ok(orphans.len())
        })
        .await;
        match swept {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!("s3: removed {n} body files no record names"),
            Ok(Err(e)) => tracing::warn!("s3: sweep of unnamed body files failed: {}", e.message),
            Err(e) => tracing::warn!("s3: sweep of unnamed body files stopped: {e}"),
        }
    }

    /// Records that this run stops cleanly (serve calls it last), so that the
    /// next start skips the sweep of unnamed bodies.
    pub fn mark_clean_stop(&self) {
        self.inner.blobs.mark_clean_stop();
    }

    /// Connects event notifications to their destination (the SQS service).
    /// The daily AWS/S3 storage metrics of every bucket, for CloudWatch to collect.
    pub fn metric_source(&self) -> Arc<dyn nimbus_core::telemetry::MetricSource> {
        Arc::new(metrics::S3Metrics {
            inner: self.inner.clone(),
        })
    }

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

/// Every bucket goes with its objects, versions, uploads and body files. The
/// bucket map is emptied and the bucket records' deletion queued under its
/// lock (so a bucket made right after the reset is written after it); then
/// every object, upload and part record the store holds is deleted, in
/// batches of bounded size, and the bodies they name are unlinked once their
/// records are gone (a reader holding one keeps reading it).
async fn reset(inner: &Arc<Inner>) -> Result<(), AwsError> {
    let (commit, taken) = {
        let mut buckets = inner.buckets.write().unwrap_or_else(|p| p.into_inner());
        let taken = std::mem::take(&mut *buckets);
        let mut batch = Batch::new();
        for name in taken.keys() {
            batch.delete(state::BUCKETS, name.as_bytes().to_vec());
        }
        (inner.store.submit(batch), taken)
    };
    commit.await.map_err(errors::store_failed)?;
    let (mut records, mut removed) = (0usize, 0usize);
    for table in [
        state::BUCKETS,
        state::OBJECTS,
        state::BODIES,
        state::UPLOADS,
        state::PARTS,
    ] {
        let mut from = Vec::new();
        loop {
            let store = inner.store.clone();
            let start = from.clone();
            let (page, files) =
                tokio::task::spawn_blocking(move || reset_page(&store, table, &start))
                    .await
                    .map_err(|e| AwsError::internal(e.to_string()))??;
            let Some(last) = page.last().cloned() else {
                break;
            };
            records += page.len();
            let mut batch = Batch::new();
            for key in page {
                batch.delete(table, key);
            }
            inner.commit(batch).await?;
            removed += files.len();
            let blobs = inner.clone();
            tokio::task::spawn_blocking(move || blobs.blobs.remove(&files))
                .await
                .map_err(|e| AwsError::internal(e.to_string()))?;
            from = last;
            from.push(0);
        }
    }
    tracing::debug!(
        "s3 reset: {} buckets, {records} records, {removed} body files",
        taken.len()
    );
    Ok(())
}

/// Up to a batch's worth of `table`'s keys from `from` on, and the body files
/// their records name.
fn reset_page(
    store: &Store,
    table: &str,
    from: &[u8],
) -> Result<(Vec<Vec<u8>>, Vec<String>), AwsError> {
    const PAGE: usize = 10_000;
    let (mut keys, mut files) = (Vec::new(), Vec::new());
    store
        .scan(table, from, |k, v| {
            keys.push(k.to_vec());
            if table == state::OBJECTS {
                if let Some(meta) = ObjectMeta::decode(v, false) {
                    files.extend(meta.files().iter().map(|(f, _)| f.clone()));
                }
            } else if table == state::PARTS {
                if let Ok(part) = serde_json::from_slice::<Part>(v) {
                    files.push(part.file);
                }
            }
            if keys.len() >= PAGE {
                nimbus_store::Step::Stop
            } else {
                nimbus_store::Step::Next
            }
        })
        .map_err(errors::store_failed)?;
    Ok((keys, files))
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

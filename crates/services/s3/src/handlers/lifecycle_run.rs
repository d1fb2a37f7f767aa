//! Applies lifecycle rules: walks the buckets that have a lifecycle
//! configuration and carries out what `lifecycle::due_action` says is due
//! for each version (expire, remove delete markers and noncurrent versions,
//! transition to another storage class), and aborts incomplete multipart
//! uploads past their rule. `serve` runs it periodically; tests run it "as
//! of" a later time through `/_nimbus/s3/lifecycle`.

use crate::catalog::KeyStep;
use crate::handlers::config::min_transition_size;
use crate::handlers::multipart::abort_upload;
use crate::handlers::objects::delete_one;
use crate::lifecycle::{self, LifecycleAction, ObjectFacts};
use crate::{Bucket, Inner};
use nimbus_core::RequestContext;
use nimbus_store::Batch;
use std::sync::Arc;

enum Due {
    ExpireCurrent(String),
    RemoveVersion(String, String),
    Transition(String, u64, String),
}

pub async fn run(inner: &Inner, now_ms: u64) {
    let buckets = inner.all_buckets();
    let now_secs = (now_ms / 1000) as i64;
    for bucket in buckets {
        let record = bucket.record();
        let Some(config) = record.config.lifecycle.clone() else {
            continue;
        };
        let ctx = RequestContext::for_account(&record.owner, &record.region);
        let ctx = RequestContext {
            caller_arn: "arn:aws:iam::aws:root".into(),
            caller_user_id: "AmazonS3".into(),
            now_ms,
            ..ctx
        };
        let (mut expired, mut transitioned) = (0usize, 0usize);
        // A page of keys at a time, so that memory does not follow the bucket's size.
        let mut from: Option<String> = None;
        loop {
            let (due, last) = match due_page(&bucket, &config, from.as_deref(), now_secs) {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!("lifecycle of bucket {}: {}", record.name, e.message);
                    break;
                }
            };
            for item in due {
                match &item {
                    Due::Transition(..) => transitioned += 1,
                    _ => expired += 1,
                }
                let result = match &item {
                    Due::ExpireCurrent(key) => delete_one(inner, &ctx, &bucket, &record, key, None)
                        .await
                        .map(|_| ()),
                    Due::RemoveVersion(key, version) => {
                        delete_one(inner, &ctx, &bucket, &record, key, Some(version))
                            .await
                            .map(|_| ())
                    }
                    Due::Transition(key, seq, class) => {
                        transition(inner, &bucket, key, *seq, class).await
                    }
                };
                if let Err(e) = result {
                    tracing::warn!("lifecycle action on {}: {}", record.name, e.message);
                }
            }
            match last {
                Some(last) => from = Some(last),
                None => break,
            }
        }
        let uploads: Vec<(String, String, u64)> = bucket
            .uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|u| {
                (
                    u.upload.upload_id.clone(),
                    u.upload.key.clone(),
                    u.upload.initiated_ms,
                )
            })
            .collect();
        let mut aborted = 0usize;
        for (id, key, initiated) in uploads {
            if lifecycle::abort_multipart_due(&config, &key, (initiated / 1000) as i64, now_secs) {
                abort_upload(inner, &bucket, &id).await;
                aborted += 1;
            }
        }
        if expired + transitioned + aborted > 0 {
            tracing::info!(
                target: "s3",
                "lifecycle of bucket {}: {expired} expired, {transitioned} transitioned, {aborted} uploads aborted",
                record.name
            );
        }
    }
}

/// Keys a page scanned at most before their due actions run.
const PAGE: usize = 1000;

/// The due actions of up to [`PAGE`] keys after `after` (from the start when
/// `None`), and the page's last key when the bucket may hold more.
fn due_page(
    bucket: &Bucket,
    config: &serde_json::Value,
    after: Option<&str>,
    now_secs: i64,
) -> Result<(Vec<Due>, Option<String>), nimbus_core::AwsError> {
    let mut due = Vec::new();
    let mut seen = 0usize;
    let mut last = None;
    bucket.scan_keys(after.unwrap_or(""), |key, versions| {
        if after == Some(key) {
            return KeyStep::Next;
        }
        if seen == PAGE {
            return KeyStep::Stop;
        }
        seen += 1;
        last = Some(key.to_string());
        let count = versions.len();
        let only_marker = count == 1 && versions.last().is_some_and(|m| m.delete_marker);
        for (i, meta) in versions.iter().enumerate() {
            let is_current = i + 1 == count;
            let facts = ObjectFacts {
                key,
                size: meta.size,
                tags: &meta.tags,
                last_modified_secs: (meta.last_modified_ms / 1000) as i64,
                is_current,
                is_delete_marker: meta.delete_marker,
                noncurrent_since_secs: versions
                    .get(i + 1)
                    .map(|newer| (newer.last_modified_ms / 1000) as i64),
                storage_class: &meta.storage_class,
                newer_noncurrent_versions: count.saturating_sub(i + 2),
                only_version_is_delete_marker: only_marker,
            };
            match lifecycle::due_action(config, &facts, now_secs) {
                LifecycleAction::Expire if is_current && !meta.delete_marker => {
                    due.push(Due::ExpireCurrent(key.to_string()))
                }
                LifecycleAction::ExpireDeleteMarker | LifecycleAction::DeleteNoncurrent => {
                    due.push(Due::RemoveVersion(key.to_string(), meta.version_id.clone()))
                }
                LifecycleAction::Transition { storage_class } => {
                    let small = meta.size < 128 * 1024
                        && min_transition_size(config) == "all_storage_classes_128K";
                    if !small {
                        due.push(Due::Transition(key.to_string(), meta.seq, storage_class))
                    }
                }
                _ => {}
            }
        }
        KeyStep::Next
    })?;
    Ok((due, if seen == PAGE { last } else { None }))
}

async fn transition(
    inner: &Inner,
    bucket: &Bucket,
    key: &str,
    seq: u64,
    class: &str,
) -> Result<(), nimbus_core::AwsError> {
    let commit = {
        let mut objects = bucket.edit();
        let Some(versions) = objects.get_mut(key)? else {
            return Ok(());
        };
        let Some(slot) = versions.iter_mut().find(|m| m.seq == seq) else {
            return Ok(());
        };
        let mut updated = (**slot).clone();
        updated.storage_class = class.to_string();
        updated.restored_until_ms = None;
        let mut batch = Batch::new();
        bucket.put_record(&mut batch, &updated)?;
        *slot = Arc::new(updated);
        inner.store.submit(batch)
    };
    commit.await.map_err(crate::errors::store_failed)
}

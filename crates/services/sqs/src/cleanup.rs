//! Deleting what queues no longer hold, in bounded batches: the records of a
//! deleted queue (and of every queue at a reset), and the records a purge of
//! a standard queue left behind its floor. A deep queue holds millions of
//! records; deleting them in one batch would hold all their keys in memory
//! and in one log frame, so they go [`CHUNK`] at a time. Work left over at a
//! crash is found again at the next start: deleted queues by their
//! `sqs_dropped` marker, purges by the `dead` count in their count record.

use crate::queue::Queue;
use crate::state;
use crate::Inner;
use nimbus_core::AwsError;
use nimbus_store::{Batch, Step};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Records deleted per batch.
const CHUNK: usize = 10_000;

/// Deletes every record of the queues with these ids, then their markers.
pub async fn drop_queues(inner: &Inner, ids: &[String]) -> Result<(), AwsError> {
    let mut batch = Batch::new();
    for id in ids {
        let prefix = format!("{id}/").into_bytes();
        for table in [
            state::MESSAGES,
            state::MESSAGE_STATE,
            state::FIFO_ORDER,
            state::DEDUP,
        ] {
            let mut from = prefix.clone();
            loop {
                let mut last = None;
                inner
                    .store
                    .scan(table, &from, |key, _| {
                        if !key.starts_with(&prefix) {
                            return Step::Stop;
                        }
                        batch.delete(table, key.to_vec());
                        last = Some(key.to_vec());
                        if batch.len() >= CHUNK {
                            Step::Stop
                        } else {
                            Step::Next
                        }
                    })
                    .map_err(crate::errors::store_failed)?;
                let Some(mut key) = last else {
                    break;
                };
                if batch.len() < CHUNK {
                    break;
                }
                if inner.halted.load(Ordering::SeqCst) {
                    return Ok(());
                }
                inner.commit(std::mem::take(&mut batch)).await?;
                key.push(0);
                from = key;
            }
        }
        batch.delete(state::COUNTS, id.clone().into_bytes());
        batch.delete(state::SEQUENCE, id.clone().into_bytes());
        batch.delete(state::DROPPED, id.clone().into_bytes());
    }
    inner.commit(batch).await
}

/// Deletes in the background what [`drop_queues`] must delete for `id`.
pub fn spawn_drop(inner: Arc<Inner>, id: String) {
    tokio::spawn(async move {
        if let Err(e) = drop_queues(&inner, std::slice::from_ref(&id)).await {
            tracing::error!(
                "sqs: deleting the records of deleted queue {id}: {}",
                e.message
            );
        }
    });
}

/// Deletes a purged queue's records behind its floor in the
/// background (one task per queue at a time).
pub fn spawn_purge_drain(inner: Arc<Inner>, q: Arc<Queue>) {
    if q.draining.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(async move {
        loop {
            let (done, more) = {
                let mut st = q.lock();
                if q.is_deleted() || inner.halted.load(Ordering::SeqCst) {
                    break;
                }
                let seqs = st.purged_chunk(CHUNK);
                let mut batch = Batch::new();
                for &seq in &seqs {
                    let k = q.message_key(seq);
                    batch.delete(state::MESSAGES, k.clone());
                    batch.delete(state::MESSAGE_STATE, k);
                }
                (inner.submit_for(&q, &mut st, batch), !seqs.is_empty())
            };
            if let Err(e) = done.await {
                tracing::error!("sqs: deleting purged messages of {}: {}", q.arn, e.message);
                break;
            }
            if !more {
                break;
            }
            tokio::task::yield_now().await;
        }
        q.draining.store(false, Ordering::Release);
    });
}

//! SQS's CloudWatch metrics (namespace `AWS/SQS`, dimension `QueueName`):
//! this module owns the per-queue counters the hot path bumps (relaxed
//! atomics, no lock, no store write: [`QueueCounters`]) and the
//! [`MetricSource`] that, once per cloud minute, turns them and each queue's
//! gauges into the datapoints AWS documents ("Available CloudWatch metrics
//! for Amazon SQS"):
//!
//! - gauges, read from what the queue already keeps in memory:
//!   ApproximateNumberOfMessagesVisible / NotVisible / Delayed (Count) and
//!   ApproximateAgeOfOldestMessage (Seconds; one read of the queue's first
//!   stored message, only when the queue holds any);
//! - counters of the minute: NumberOfMessagesSent (messages a send stored;
//!   FIFO duplicates and dead-letter moves excluded, as AWS does),
//!   NumberOfMessagesReceived, NumberOfMessagesDeleted (every successful
//!   delete of a valid receipt handle, repeats included, as AWS counts),
//!   NumberOfEmptyReceives (ReceiveMessage calls that returned nothing);
//! - SentMessageSize (Bytes): count, sum, minimum and maximum of the sizes
//!   sent in the minute (body plus attributes, as SQS measures them); no
//!   datapoint in a minute with no send.
//!
//! Which queues publish: AWS publishes for queues that are active, i.e. that
//! hold messages or had an API call in the last six hours. Here a queue is
//! active in a window when it holds messages or was named by a request since
//! the last window; it then publishes (zeros included) for six cloud hours
//! after. A queue read from the store and not used since nimbus started is
//! looked at through its stored count record only (it is not loaded).
//!
//! Counters go with the window in which they are collected (a send a few
//! milliseconds before a minute boundary may land in the next minute), and
//! are lost with the process on a crash, like any in-flight minute.
//!
//! Memory: [`QueueCounters`] is 72 bytes per queue (eight `AtomicU64` and a
//! flag); nothing else is kept between windows.

use crate::queue::Queue;
use crate::state;
use crate::Inner;
use nimbus_core::telemetry::{
    CollectionWindow, MetricSource, Publication, PublishedDatum, PublishedValue,
};
use nimbus_core::BoxFuture;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// How long (cloud time) a queue publishes after it was last active.
pub const ACTIVE_FOR_MS: u64 = 6 * 3_600_000;
const NAMESPACE: &str = "AWS/SQS";
/// Queues looked at between yields to the runtime.
const YIELD_EVERY: usize = 64;

/// What the hot path counts for one queue between two collections.
#[derive(Debug)]
pub struct QueueCounters {
    sent: AtomicU64,
    received: AtomicU64,
    deleted: AtomicU64,
    empty_receives: AtomicU64,
    sent_bytes: AtomicU64,
    /// `u64::MAX` while nothing was sent.
    sent_min: AtomicU64,
    sent_max: AtomicU64,
    /// Cloud time of the end of the last window the queue was active in
    /// (0: never); written by the collector only.
    active_until: AtomicU64,
    /// A request named the queue since the last collection.
    touched: AtomicBool,
}

impl QueueCounters {
    /// Counters of a queue; `touched` for one just created.
    pub fn new(touched: bool) -> QueueCounters {
        QueueCounters {
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            deleted: AtomicU64::new(0),
            empty_receives: AtomicU64::new(0),
            sent_bytes: AtomicU64::new(0),
            sent_min: AtomicU64::new(u64::MAX),
            sent_max: AtomicU64::new(0),
            active_until: AtomicU64::new(0),
            touched: AtomicBool::new(touched),
        }
    }

    /// A request names the queue (any action keeps it active).
    pub fn touch(&self) {
        // A load first: the common case (already set) writes nothing, so
        // concurrent requests do not bounce the cache line.
        if !self.touched.load(Relaxed) {
            self.touched.store(true, Relaxed);
        }
    }

    pub fn untouch(&self) {
        self.touched.store(false, Relaxed);
    }

    /// A message of `size` bytes was stored by a send.
    pub fn sent(&self, size: usize) {
        let size = size as u64;
        self.sent.fetch_add(1, Relaxed);
        self.sent_bytes.fetch_add(size, Relaxed);
        self.sent_min.fetch_min(size, Relaxed);
        self.sent_max.fetch_max(size, Relaxed);
    }

    pub fn received(&self, n: usize) {
        if n == 0 {
            self.empty_receives.fetch_add(1, Relaxed);
        } else {
            self.received.fetch_add(n as u64, Relaxed);
        }
    }

    pub fn deleted(&self, n: usize) {
        if n > 0 {
            self.deleted.fetch_add(n as u64, Relaxed);
        }
    }

    /// Takes the counts of the window that ended.
    fn take(&self) -> Counts {
        Counts {
            sent: self.sent.swap(0, Relaxed),
            received: self.received.swap(0, Relaxed),
            deleted: self.deleted.swap(0, Relaxed),
            empty_receives: self.empty_receives.swap(0, Relaxed),
            sent_bytes: self.sent_bytes.swap(0, Relaxed),
            sent_min: self.sent_min.swap(u64::MAX, Relaxed),
            sent_max: self.sent_max.swap(0, Relaxed),
        }
    }
}

/// One window's counts of a queue.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Counts {
    sent: u64,
    received: u64,
    deleted: u64,
    empty_receives: u64,
    sent_bytes: u64,
    sent_min: u64,
    sent_max: u64,
}

/// One window's gauges of a queue.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Gauges {
    visible: u64,
    not_visible: u64,
    delayed: u64,
    oldest_age_s: u64,
}

/// The datapoints of one queue for one window.
fn queue_data(name: &str, timestamp_ms: u64, g: Gauges, c: Counts) -> Vec<PublishedDatum> {
    let datum = |metric: &str, unit: &'static str, value: PublishedValue| PublishedDatum {
        metric_name: metric.to_string(),
        dimensions: vec![("QueueName".to_string(), name.to_string())],
        unit,
        timestamp_ms,
        value,
    };
    let count = |metric: &str, v: u64| datum(metric, "Count", PublishedValue::Value(v as f64));
    let mut out = vec![
        count("ApproximateNumberOfMessagesVisible", g.visible),
        count("ApproximateNumberOfMessagesNotVisible", g.not_visible),
        count("ApproximateNumberOfMessagesDelayed", g.delayed),
        datum(
            "ApproximateAgeOfOldestMessage",
            "Seconds",
            PublishedValue::Value(g.oldest_age_s as f64),
        ),
        count("NumberOfMessagesSent", c.sent),
        count("NumberOfMessagesReceived", c.received),
        count("NumberOfMessagesDeleted", c.deleted),
        count("NumberOfEmptyReceives", c.empty_receives),
    ];
    if c.sent > 0 {
        out.push(datum(
            "SentMessageSize",
            "Bytes",
            PublishedValue::Statistics {
                sample_count: c.sent as f64,
                sum: c.sent_bytes as f64,
                minimum: c.sent_min.min(c.sent_max) as f64,
                maximum: c.sent_max as f64,
            },
        ));
    }
    out
}

/// The AWS/SQS source of one SQS service.
pub struct SqsMetrics {
    pub(crate) inner: Arc<Inner>,
}

impl SqsMetrics {
    /// Every queue's datapoints of `window`, grouped by account and region.
    async fn collect_all(&self, window: CollectionWindow) -> Vec<Publication> {
        let queues: Vec<Arc<Queue>> = {
            let map = self.inner.queues.read().unwrap_or_else(|e| e.into_inner());
            map.values().flat_map(|m| m.values().cloned()).collect()
        };
        let mut by_partition: BTreeMap<(String, String), Vec<PublishedDatum>> = BTreeMap::new();
        for (i, q) in queues.iter().enumerate() {
            if i > 0 && i % YIELD_EVERY == 0 {
                tokio::task::yield_now().await;
            }
            if q.is_deleted() {
                continue;
            }
            let Some(gauges) = self.gauges(q) else {
                continue;
            };
            let c = &q.counters;
            let touched = c.touched.swap(false, Relaxed);
            let holds = gauges.visible + gauges.not_visible + gauges.delayed > 0;
            if touched || holds {
                c.active_until.store(window.end_ms, Relaxed);
            }
            let last = c.active_until.load(Relaxed);
            let counts = c.take();
            if last == 0 || window.end_ms.saturating_sub(last) > ACTIVE_FOR_MS {
                continue;
            }
            by_partition
                .entry((q.key.account.clone(), q.key.region.clone()))
                .or_default()
                .extend(queue_data(&q.key.name, window.start_ms, gauges, counts));
        }
        by_partition
            .into_iter()
            .map(|((account, region), data)| Publication {
                account,
                region,
                namespace: NAMESPACE.to_string(),
                data,
            })
            .collect()
    }

    /// A queue's gauges now; None for a queue not loaded since nimbus started
    /// whose stored count says it is empty and that no request named (it is
    /// inactive, and stays unloaded).
    fn gauges(&self, q: &Queue) -> Option<Gauges> {
        if !q.is_loaded() && !q.counters.touched.load(Relaxed) && !self.stored_nonempty(q) {
            return None;
        }
        let now = self.inner.now();
        let mut st = q.lock();
        st.advance(now);
        if st.has_expired() {
            // As GetQueueAttributes does: expired records leave with a write of their own.
            let done = self
                .inner
                .submit_for(q, &mut st, nimbus_store::Batch::new());
            tokio::spawn(async move {
                if let Err(e) = done.await {
                    tracing::error!("sqs: deleting expired messages: {}", e.message);
                }
            });
        }
        let (visible, not_visible, delayed) = st.counts();
        let oldest = if visible + not_visible + delayed > 0 {
            st.oldest_enqueued_ms()
        } else {
            None
        };
        Some(Gauges {
            visible: visible as u64,
            not_visible: not_visible as u64,
            delayed: delayed as u64,
            oldest_age_s: oldest.map_or(0, |enq| now.saturating_sub(enq) / 1000),
        })
    }

    fn stored_nonempty(&self, q: &Queue) -> bool {
        match self.inner.store.get(state::COUNTS, q.id_hex.as_bytes()) {
            Ok(Some(v)) => {
                serde_json::from_slice::<state::CountRecord>(&v).map_or(true, |c| c.n > c.dead)
            }
            Ok(None) => false,
            // Unknown: look (loading it) rather than miss a backlog.
            Err(_) => true,
        }
    }
}

impl MetricSource for SqsMetrics {
    fn name(&self) -> &'static str {
        "sqs"
    }

    fn collect(&self, window: CollectionWindow) -> BoxFuture<'_, Vec<Publication>> {
        Box::pin(self.collect_all(window))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_taken_once() {
        let c = QueueCounters::new(false);
        c.sent(10);
        c.sent(30);
        c.received(0);
        c.received(2);
        c.deleted(1);
        let taken = c.take();
        assert_eq!(
            taken,
            Counts {
                sent: 2,
                received: 2,
                deleted: 1,
                empty_receives: 1,
                sent_bytes: 40,
                sent_min: 10,
                sent_max: 30,
            }
        );
        assert_eq!(c.take().sent, 0);
        assert_eq!(c.take().sent_min, u64::MAX);
    }

    #[test]
    fn a_queue_publishes_the_documented_metrics() {
        let g = Gauges {
            visible: 3,
            not_visible: 2,
            delayed: 1,
            oldest_age_s: 42,
        };
        let quiet = queue_data("jobs", 60_000, g, Counts::default());
        let names: Vec<(&str, &str)> = quiet
            .iter()
            .map(|d| (d.metric_name.as_str(), d.unit))
            .collect();
        assert_eq!(
            names,
            vec![
                ("ApproximateNumberOfMessagesVisible", "Count"),
                ("ApproximateNumberOfMessagesNotVisible", "Count"),
                ("ApproximateNumberOfMessagesDelayed", "Count"),
                ("ApproximateAgeOfOldestMessage", "Seconds"),
                ("NumberOfMessagesSent", "Count"),
                ("NumberOfMessagesReceived", "Count"),
                ("NumberOfMessagesDeleted", "Count"),
                ("NumberOfEmptyReceives", "Count"),
            ]
        );
        assert!(quiet.iter().all(|d| d.dimensions
            == vec![("QueueName".to_string(), "jobs".to_string())]
            && d.timestamp_ms == 60_000));
        let busy = queue_data(
            "jobs",
            60_000,
            g,
            Counts {
                sent: 2,
                sent_bytes: 40,
                sent_min: 10,
                sent_max: 30,
                ..Counts::default()
            },
        );
        let size = busy.last().unwrap();
        assert_eq!(size.metric_name, "SentMessageSize");
        assert_eq!(size.unit, "Bytes");
        assert_eq!(
            size.value,
            PublishedValue::Statistics {
                sample_count: 2.0,
                sum: 40.0,
                minimum: 10.0,
                maximum: 30.0
            }
        );
    }

    #[test]
    fn the_counters_are_small() {
        assert!(std::mem::size_of::<QueueCounters>() <= 72);
    }
}

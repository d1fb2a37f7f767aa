//! The metrics nobody has to push: this module owns the registry of the
//! services' [`MetricSource`]s (AWS/SQS, AWS/EC2, AWS/S3, ...), the loop that
//! asks each of them, at every minute boundary of the cloud's clock, for the
//! window that just ended, and the path by which their publications (and
//! those pushed through [`MetricPublisher`]) reach the metric data: the same
//! validation and atomic, durable write as PutMetricData, as the service
//! publisher (so `AWS/` namespaces are accepted).
//!
//! Each source runs in its own task, one window after another, so a slow
//! source (S3's daily scan) never delays another's minute; a source that
//! fails or panics loses its window, is logged, and is asked for the next.
//! Per source, the end of the last window whose data was stored is kept in
//! `cw_collect` and written with that data (never on its own): the cloud
//! clock resumes past anything a stopped run reached, and this mark makes
//! sure of it for the collectors whatever the clock does (a window is never
//! published twice); windows missed while nimbus was stopped are not asked
//! for.

use crate::metrics::ingest::{self, MetricDatum, Publisher, StatisticSetInput};
use crate::metrics::{DimensionInput, Durable, MetricsError};
use crate::CloudWatch;
use nimbus_core::telemetry::{
    CollectionWindow, MetricPublisher, MetricSource, Publication, PublishedDatum, PublishedValue,
};
use nimbus_core::{AwsError, BoxFuture};
use nimbus_store::Batch;
use std::sync::{Arc, Mutex};

/// A collection window: one minute of cloud time.
pub const WINDOW_MS: u64 = 60_000;
/// Where each source's last stored window end is kept (not cleared by a
/// reset: the cloud's time goes on).
const TABLE: &str = "cw_collect";
/// The format of a stored mark (see [`encode_mark`]).
const MARK_VERSION: u8 = 1;
/// A source further behind than this many windows (a suspended host, a
/// clock scale its sources cannot follow) skips to the current one.
const MAX_CATCH_UP: u64 = 10;
/// A stored mark this far ahead of the clock means the clock was set back
/// on purpose (a scaled run restarted at scale 1): collect from now.
const MARK_AHEAD_LIMIT_MS: u64 = 10 * WINDOW_MS;

/// The registered sources and which of them have their task running.
#[derive(Default)]
pub(crate) struct Collectors {
    sources: Mutex<Vec<Arc<dyn MetricSource>>>,
    started: Mutex<usize>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl CloudWatch {
    /// Registers a service's metrics; once [`CloudWatch::run_collectors`]
    /// runs, it is asked for every cloud minute from then on.
    pub fn add_source(&self, source: Arc<dyn MetricSource>) {
        lock(&self.collectors.sources).push(source);
    }

    /// Runs the collection for ever: one task per registered source (a
    /// source added later starts within a cloud minute). Spawn it once.
    pub async fn run_collectors(self: Arc<Self>) {
        loop {
            let fresh: Vec<Arc<dyn MetricSource>> = {
                let sources = lock(&self.collectors.sources);
                let mut started = lock(&self.collectors.started);
                let fresh = sources[*started..].to_vec();
                *started = sources.len();
                fresh
            };
            for source in fresh {
                tokio::spawn(Arc::clone(&self).run_source(source));
            }
            self.clock
                .sleep(std::time::Duration::from_millis(WINDOW_MS))
                .await;
        }
    }

    /// One source's windows, in order, each once.
    async fn run_source(self: Arc<Self>, source: Arc<dyn MetricSource>) {
        let name = source.name();
        let now = self.clock.now_ms();
        let mut start = first_window_start(now, self.collect_mark(name));
        tracing::debug!("cloudwatch: collecting {name} from {start}");
        loop {
            let end = start + WINDOW_MS;
            self.clock.sleep_until(end).await;
            let now = self.clock.now_ms();
            let behind = now.saturating_sub(end) / WINDOW_MS;
            if behind > MAX_CATCH_UP {
                let skipped_to = (now / WINDOW_MS * WINDOW_MS).saturating_sub(WINDOW_MS);
                tracing::warn!(
                    "cloudwatch: the {name} metrics are {behind} minutes behind the cloud clock; skipping to the current minute"
                );
                start = skipped_to;
                continue;
            }
            let window = CollectionWindow {
                start_ms: start,
                end_ms: end,
            };
            let s = Arc::clone(&source);
            // Its own task, so that a panicking source loses one window, not the loop.
            let collected = tokio::spawn(async move { s.collect(window).await }).await;
            match collected {
                Ok(publications) => {
                    if let Err(e) = self
                        .store_publications(publications, Some((name, end)))
                        .await
                    {
                        tracing::warn!(
                            "cloudwatch: storing the {name} metrics of {end} failed: {e}"
                        );
                    }
                }
                Err(e) => tracing::error!("cloudwatch: the {name} metrics of {end} failed: {e}"),
            }
            start = end;
        }
    }

    /// The end of the last window of `source` whose data was stored (0 for none).
    fn collect_mark(&self, source: &str) -> u64 {
        match self.store.get(TABLE, source.as_bytes()) {
            Ok(Some(v)) => decode_mark(&v).unwrap_or_else(|| {
                tracing::warn!("cloudwatch: the {source} collection mark is unreadable; ignored");
                0
            }),
            Ok(None) => 0,
            Err(e) => {
                tracing::warn!("cloudwatch: reading the {source} collection mark failed: {e}");
                0
            }
        }
    }

    /// Validates and stores publications as one put per account and region
    /// (a datum the library refuses is logged and left out, the others
    /// stored), with `mark` (source, window end) written after them; returns
    /// once everything is durable.
    pub(crate) async fn store_publications(
        &self,
        publications: Vec<Publication>,
        mark: Option<(&str, u64)>,
    ) -> Result<(), MetricsError> {
        if publications.iter().all(|p| p.data.is_empty()) {
            return Ok(());
        }
        let guard = self.metrics.read().await;
        let now = self.now(nimbus_core::now_millis());
        let mut durable: Vec<Durable> = Vec::new();
        for p in publications {
            let mut samples = Vec::with_capacity(p.data.len());
            for d in &p.data {
                let datum = to_datum(d);
                match ingest::validate_put(
                    Some(&p.namespace),
                    std::slice::from_ref(&datum),
                    now as i64,
                    Publisher::Service,
                ) {
                    Ok(mut s) => samples.append(&mut s),
                    Err(e) => tracing::warn!(
                        "cloudwatch: {} {} from a collector refused: {e}",
                        p.namespace,
                        d.metric_name
                    ),
                }
            }
            if samples.is_empty() {
                continue;
            }
            durable.push(guard.put_samples(&p.account, &p.region, samples, now)?);
        }
        if durable.is_empty() {
            return Ok(());
        }
        // Queued after the data, so the store has it no earlier than the data.
        let marked = mark.map(|(source, end)| {
            let mut batch = Batch::new();
            batch.put(TABLE, source.as_bytes().to_vec(), encode_mark(end));
            self.store.submit(batch)
        });
        for d in durable {
            d.await?;
        }
        if let Some(m) = marked {
            m.await?;
        }
        drop(guard);
        Ok(())
    }
}

/// A mark as stored: format version 1, then the window end (u64 BE).
fn encode_mark(end_ms: u64) -> Vec<u8> {
    let mut v = vec![MARK_VERSION];
    v.extend_from_slice(&end_ms.to_be_bytes());
    v
}

fn decode_mark(v: &[u8]) -> Option<u64> {
    match v.split_first() {
        Some((&MARK_VERSION, rest)) => <[u8; 8]>::try_from(rest).ok().map(u64::from_be_bytes),
        _ => None,
    }
}

/// Where a source's first window starts: the current minute, or the stored
/// mark when the clock resumed a little behind it.
fn first_window_start(now_ms: u64, mark_ms: u64) -> u64 {
    let current = now_ms / WINDOW_MS * WINDOW_MS;
    if mark_ms > current && mark_ms - current <= MARK_AHEAD_LIMIT_MS {
        mark_ms / WINDOW_MS * WINDOW_MS
    } else {
        current
    }
}

/// A published datum as PutMetricData would carry it (standard resolution).
fn to_datum(d: &PublishedDatum) -> MetricDatum {
    let (value, statistic_values) = match d.value {
        PublishedValue::Value(v) => (Some(v), None),
        PublishedValue::Statistics {
            sample_count,
            sum,
            minimum,
            maximum,
        } => (
            None,
            Some(StatisticSetInput {
                sample_count: Some(sample_count),
                sum: Some(sum),
                minimum: Some(minimum),
                maximum: Some(maximum),
            }),
        ),
    };
    MetricDatum {
        metric_name: Some(d.metric_name.clone()),
        dimensions: d
            .dimensions
            .iter()
            .map(|(n, v)| DimensionInput::new(n, v))
            .collect(),
        timestamp_ms: i64::try_from(d.timestamp_ms).ok(),
        value,
        statistic_values,
        values: None,
        counts: None,
        unit: Some(d.unit.to_string()),
        storage_resolution: Some(60),
    }
}

impl MetricPublisher for CloudWatch {
    fn publish(&self, publications: Vec<Publication>) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move {
            self.store_publications(publications, None)
                .await
                .map_err(|e| e.to_aws_error())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::metrics::MetricsOptions;
    use nimbus_core::clock::CloudClock;
    use nimbus_core::{RequestContext, Service};
    use nimbus_store::{Store, StoreOptions};
    use serde_json::json;

    /// Publishes one datum a window and remembers the windows it was asked for.
    struct Counting {
        windows: Mutex<Vec<CollectionWindow>>,
    }

    impl MetricSource for Counting {
        fn name(&self) -> &'static str {
            "counting"
        }

        fn collect(&self, window: CollectionWindow) -> BoxFuture<'_, Vec<Publication>> {
            lock(&self.windows).push(window);
            Box::pin(async move {
                vec![Publication {
                    account: "111122223333".into(),
                    region: "us-east-1".into(),
                    namespace: "AWS/Test".into(),
                    data: vec![PublishedDatum {
                        metric_name: "Ticks".into(),
                        dimensions: vec![("Source".into(), "counting".into())],
                        unit: "Count",
                        timestamp_ms: window.start_ms,
                        value: PublishedValue::Value(1.0),
                    }],
                }]
            })
        }
    }

    /// Fails every time it is asked.
    struct Panicking;

    impl MetricSource for Panicking {
        fn name(&self) -> &'static str {
            "panicking"
        }

        fn collect(&self, _window: CollectionWindow) -> BoxFuture<'_, Vec<Publication>> {
            Box::pin(async move { panic!("a broken source") })
        }
    }

    fn open(dir: &std::path::Path, clock: CloudClock) -> Arc<CloudWatch> {
        let store = Store::open_with(
            &dir.join("state.redb"),
            StoreOptions {
                durable: false,
                ..StoreOptions::default()
            },
        )
        .unwrap();
        Arc::new(CloudWatch::open(store, "us-east-1", clock, MetricsOptions::default()).unwrap())
    }

    #[tokio::test]
    async fn sources_are_collected_every_cloud_minute_once_and_survive_a_broken_one() {
        let dir = tempfile::tempdir().unwrap();
        // 1000 times faster: a cloud minute is 60 ms.
        let cw = open(dir.path(), CloudClock::scaled(1000, 0));
        let counting = Arc::new(Counting {
            windows: Mutex::new(Vec::new()),
        });
        cw.add_source(Arc::new(Panicking));
        cw.add_source(counting.clone());
        let runner = tokio::spawn(Arc::clone(&cw).run_collectors());
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        runner.abort();
        let windows = lock(&counting.windows).clone();
        assert!(windows.len() >= 5, "{windows:?}");
        for pair in windows.windows(2) {
            assert_eq!(pair[0].end_ms, pair[1].start_ms, "consecutive, none twice");
        }
        for w in &windows {
            assert_eq!(w.end_ms - w.start_ms, WINDOW_MS);
            assert_eq!(w.start_ms % WINDOW_MS, 0);
        }
        // Stored as a put of the service would be, under AWS/ and durable.
        let first = windows[0].start_ms / 1000;
        let last = windows[windows.len() - 1].end_ms / 1000;
        let ctx = RequestContext::for_account("111122223333", "us-east-1");
        let out = cw
            .call(
                &ctx,
                "GetMetricStatistics",
                json!({
                    "Namespace": "AWS/Test", "MetricName": "Ticks",
                    "Dimensions": [{"Name": "Source", "Value": "counting"}],
                    "StartTime": first, "EndTime": last, "Period": 3600,
                    "Statistics": ["Sum"],
                }),
            )
            .await
            .unwrap();
        let stored: f64 = out["Datapoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["Sum"].as_f64().unwrap())
            .sum();
        // The last window asked may still be on its way to the store.
        assert!(stored >= (windows.len() - 1) as f64, "{out}");
        assert!(stored <= windows.len() as f64, "{out}");
        assert!(cw.collect_mark("counting") >= windows[0].end_ms);
        assert_eq!(cw.collect_mark("panicking"), 0);
    }

    #[tokio::test]
    async fn the_publisher_accepts_aws_namespaces_that_users_may_not_put() {
        let dir = tempfile::tempdir().unwrap();
        let cw = open(dir.path(), CloudClock::real());
        let now = nimbus_core::now_millis();
        let publication = |namespace: &str| Publication {
            account: "111122223333".into(),
            region: "us-east-1".into(),
            namespace: namespace.into(),
            data: vec![
                PublishedDatum {
                    metric_name: "HealthyHostCount".into(),
                    dimensions: vec![("LoadBalancer".into(), "app/x/1".into())],
                    unit: "Count",
                    timestamp_ms: now,
                    value: PublishedValue::Value(2.0),
                },
                // Refused on its own (a unit CloudWatch does not know), the rest stored.
                PublishedDatum {
                    metric_name: "Broken".into(),
                    dimensions: vec![],
                    unit: "Furlongs",
                    timestamp_ms: now,
                    value: PublishedValue::Value(1.0),
                },
            ],
        };
        MetricPublisher::publish(&*cw, vec![publication("AWS/ELB")])
            .await
            .unwrap();
        let ctx = RequestContext::for_account("111122223333", "us-east-1");
        let listed = cw
            .call(&ctx, "ListMetrics", json!({"Namespace": "AWS/ELB"}))
            .await
            .unwrap();
        let names: Vec<&str> = listed["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["MetricName"].as_str())
            .collect();
        assert_eq!(names, vec!["HealthyHostCount"]);
        let refused = cw
            .call(
                &ctx,
                "PutMetricData",
                json!({"Namespace": "AWS/ELB", "MetricData": [{"MetricName": "M", "Value": 1.0}]}),
            )
            .await
            .unwrap_err();
        assert_eq!(refused.code, "InvalidParameterValue");
    }

    /// What storing a collection costs: `cargo test --release -p
    /// nimbus-cloudwatch storing_cost -- --ignored --nocapture`.
    #[tokio::test]
    #[ignore]
    async fn storing_cost() {
        let dir = tempfile::tempdir().unwrap();
        let cw = open(dir.path(), CloudClock::real());
        let queues = 2000;
        for minute in 0..3u64 {
            let ts = (nimbus_core::now_millis() / WINDOW_MS - 3 + minute) * WINDOW_MS;
            let data: Vec<PublishedDatum> = (0..queues)
                .flat_map(|q| {
                    (0..8).map(move |m| PublishedDatum {
                        metric_name: format!("Metric{m}"),
                        dimensions: vec![("QueueName".into(), format!("queue-{q}"))],
                        unit: "Count",
                        timestamp_ms: ts,
                        value: PublishedValue::Value(q as f64),
                    })
                })
                .collect();
            let n = data.len();
            let publication = Publication {
                account: "111122223333".into(),
                region: "us-east-1".into(),
                namespace: "AWS/SQS".into(),
                data,
            };
            let t = std::time::Instant::now();
            cw.store_publications(vec![publication], Some(("cost", ts + WINDOW_MS)))
                .await
                .unwrap();
            let took = t.elapsed();
            println!(
                "{n} datapoints: {took:?}, {:.2} us each",
                took.as_secs_f64() * 1e6 / n as f64
            );
        }
    }

    #[test]
    fn the_first_window_is_the_current_minute_or_a_mark_just_ahead() {
        let now = 10 * WINDOW_MS + 1234;
        assert_eq!(first_window_start(now, 0), 10 * WINDOW_MS);
        assert_eq!(first_window_start(now, 9 * WINDOW_MS), 10 * WINDOW_MS);
        // A scaled clock resumed behind the last window stored: go on from it.
        assert_eq!(first_window_start(now, 13 * WINDOW_MS), 13 * WINDOW_MS);
        // A clock set back on purpose: collect from now.
        assert_eq!(first_window_start(now, 100 * WINDOW_MS), 10 * WINDOW_MS);
    }

    #[test]
    fn marks_carry_their_format() {
        assert_eq!(decode_mark(&encode_mark(123_456)), Some(123_456));
        assert_eq!(decode_mark(&[2, 0, 0, 0, 0, 0, 0, 0, 1]), None);
        assert_eq!(decode_mark(&[1, 0]), None);
    }

    #[test]
    fn statistics_become_a_statistic_set() {
        let d = PublishedDatum {
            metric_name: "CPUUtilization".into(),
            dimensions: vec![("InstanceId".into(), "i-1".into())],
            unit: "Percent",
            timestamp_ms: 120_000,
            value: PublishedValue::Statistics {
                sample_count: 5.0,
                sum: 50.0,
                minimum: 1.0,
                maximum: 20.0,
            },
        };
        let m = to_datum(&d);
        assert_eq!(m.value, None);
        assert_eq!(m.statistic_values.and_then(|s| s.sample_count), Some(5.0));
        assert_eq!(m.unit.as_deref(), Some("Percent"));
        assert_eq!(m.timestamp_ms, Some(120_000));
    }
}

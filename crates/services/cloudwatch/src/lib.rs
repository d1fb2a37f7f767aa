//! Amazon CloudWatch for nimbus (issue 12). This file owns the service
//! object: [`CloudWatch::open`] opens the metric data in the store, the
//! [`Service`] implementation dispatches the model's operations to the
//! handlers, [`CloudWatch::upkeep`] is the periodic work a server runs
//! (flushing ingested data into blocks, expiring old blocks in bounded
//! steps), and the service clock every answer uses. Layout of the crate:
//!
//! - `handlers/` — one function per operation (`metrics`, `metric_data`:
//!   GetMetricData and its query lists in `metric_queries`, which metric-math
//!   alarms share; `alarms`) and the input helpers they share.
//! - `metrics` — datapoints stored compactly by metric and time, rolled up
//!   and expired as AWS does, and the statistics (including percentiles)
//!   computed over them; a library with no clock and no thread.
//! - `alarm` — how an alarm's state follows from its datapoints and how
//!   composite rules combine alarms (pure logic).
//! - `collect` — the metrics services publish by themselves (AWS/SQS,
//!   AWS/EC2, AWS/S3) through `MetricSource`s, once per cloud minute.
//! - `export` — the metrics as Prometheus text (`GET /_nimbus/metrics`).
//! - `alarms` — the alarms themselves: records, history, transitions and
//!   actions; [`CloudWatch::run_alarms`] evaluates them on the cloud's clock.

pub mod alarm;
pub mod alarms;
mod collect;
pub mod export;
mod handlers;
pub mod metrics;

#[cfg(test)]
mod tests;

use metrics::{Metrics, MetricsError, MetricsOptions};
use nimbus_core::clock::CloudClock;
use nimbus_core::{AwsError, BoxFuture, RequestContext, Service};
use nimbus_store::{Batch, Store};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::RwLock;

/// How often a server should call [`CloudWatch::upkeep`]: often enough that
/// a flush follows soon after the metrics library's flush interval.
pub const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// How often a full expiry pass starts (retention is counted in hours and
/// days, so a minute late costs nothing).
const EXPIRY_EVERY_MS: u64 = 60_000;
/// State changes one store batch carries (records and history items of
/// about 2 KiB each).
const TRANSITIONS_PER_BATCH: usize = 500;
/// The longest the alarm evaluator sleeps without looking at its schedule.
const ALARM_POLL: std::time::Duration = std::time::Duration::from_secs(1);
/// Segments (and series) one expiry step may delete: one store batch.
const EXPIRY_BUDGET: usize = 1000;
/// Expiry steps one upkeep round may take; a pass with more to do goes on
/// at the next round, so a large backlog never holds the store for long.
const EXPIRY_STEPS_PER_ROUND: usize = 16;

/// The CloudWatch service.
pub struct CloudWatch {
    store: Store,
    options: MetricsOptions,
    /// Region of requests that carry none (internal calls).
    default_region: String,
    /// The cloud's clock: every time CloudWatch hands out or compares with is
    /// its time (see `--clock-scale`).
    clock: CloudClock,
    /// Requests hold it shared for their whole run (a put until its data is
    /// durable); a reset holds it alone while it clears the tables and puts
    /// fresh metrics in place, so no write of the old data lands after it.
    metrics: RwLock<Arc<Metrics>>,
    /// The latest time handed out: the metrics library wants time that never
    /// goes backwards, and requests may reach it out of arrival order.
    last_now_ms: AtomicU64,
    alarms: Arc<alarms::Alarms>,
    /// Shifts the service clock; only tests move it.
    clock_offset_ms: AtomicU64,
    expiry: Mutex<ExpiryState>,
    /// The services' metric sources (see `collect`).
    collectors: collect::Collectors,
}

#[derive(Debug, Default)]
struct ExpiryState {
    /// When the next expiry pass is due (epoch ms).
    next_pass_ms: u64,
    /// A pass is under way and has more to delete.
    in_pass: bool,
}

/// What one [`CloudWatch::upkeep`] round did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpkeepReport {
    pub flushed: bool,
    pub segments_expired: usize,
    pub series_expired: usize,
}

impl CloudWatch {
    /// Opens the service on `store`, replaying any data ingested but not yet
    /// flushed when nimbus last stopped.
    pub fn open(
        store: Store,
        default_region: &str,
        clock: CloudClock,
        options: MetricsOptions,
    ) -> Result<CloudWatch, String> {
        let metrics = Metrics::open(store.clone(), options.clone())
            .map_err(|e| format!("cloudwatch: opening the metric data failed: {e}"))?;
        Ok(CloudWatch {
            alarms: Arc::new(alarms::Alarms::new(store.clone())),
            store,
            options,
            default_region: default_region.to_string(),
            clock,
            metrics: RwLock::new(Arc::new(metrics)),
            last_now_ms: AtomicU64::new(0),
            clock_offset_ms: AtomicU64::new(0),
            expiry: Mutex::new(ExpiryState::default()),
            collectors: collect::Collectors::default(),
        })
    }

    /// The service time (cloud time) for an event at wall time `at_ms`:
    /// never earlier than a time already handed out.
    fn now(&self, at_ms: u64) -> u64 {
        let t = self
            .clock
            .cloud_at(at_ms)
            .saturating_add(self.clock_offset_ms.load(Ordering::Relaxed));
        self.last_now_ms.fetch_max(t, Ordering::AcqRel).max(t)
    }

    /// The region a request acts in.
    fn region<'a>(&'a self, ctx: &'a RequestContext) -> &'a str {
        if ctx.region.is_empty() {
            &self.default_region
        } else {
            &ctx.region
        }
    }

    /// Moves the service clock forward (tests of RecentlyActive and expiry).
    #[cfg(test)]
    pub(crate) fn advance_clock(&self, ms: u64) {
        self.clock_offset_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// One round of the periodic work: flushes pending data once the
    /// library says a flush is due (waiting until it is durable), and takes
    /// a few bounded expiry steps when a pass is due or under way. The
    /// store work runs on a blocking thread. Call it every [`UPKEEP_EVERY`].
    pub async fn upkeep(&self) -> Result<UpkeepReport, MetricsError> {
        let guard = self.metrics.read().await;
        let metrics = Arc::clone(&guard);
        let now = self.now(nimbus_core::now_millis());
        let mut report = UpkeepReport::default();
        if metrics.needs_flush(now) {
            let m = Arc::clone(&metrics);
            let durable = blocking(move || m.flush(now)).await?;
            durable.await?;
            report.flushed = true;
        }
        let due = {
            let mut e = lock(&self.expiry);
            if e.in_pass || now >= e.next_pass_ms {
                if !e.in_pass {
                    e.next_pass_ms = now.saturating_add(EXPIRY_EVERY_MS);
                }
                true
            } else {
                false
            }
        };
        if due {
            let m = Arc::clone(&metrics);
            let (segments, series, more) = blocking(move || {
                let (mut segments, mut series) = (0, 0);
                for _ in 0..EXPIRY_STEPS_PER_ROUND {
                    let step = m.expire(now, EXPIRY_BUDGET)?;
                    segments += step.segments_deleted;
                    series += step.series_deleted;
                    if !step.more {
                        return Ok((segments, series, false));
                    }
                }
                Ok((segments, series, true))
            })
            .await?;
            let alarms = Arc::clone(&self.alarms);
            let history_more = blocking(move || alarms.expire_history(now)).await?;
            lock(&self.expiry).in_pass = more || history_more;
            report.segments_expired = segments;
            report.series_expired = series;
        }
        drop(guard);
        Ok(report)
    }

    /// Flushes whatever is pending and waits until it is durable (a server
    /// stopping cleanly calls it, so that the next start replays nothing).
    pub async fn flush_all(&self) -> Result<(), MetricsError> {
        let guard = self.metrics.read().await;
        let use_now = guard.memory_use();
        if use_now.pending_entries == 0 && use_now.unflushed_log_records == 0 {
            return Ok(());
        }
        let m = Arc::clone(&guard);
        let now = self.now(nimbus_core::now_millis());
        let durable = blocking(move || m.flush(now)).await?;
        durable.await?;
        drop(guard);
        Ok(())
    }

    /// Where alarm actions go (the binary wires EC2 and, later, Auto Scaling).
    pub fn set_action_sink(&self, sink: Arc<dyn alarms::actions::ActionSink>) {
        self.alarms.set_action_sink(sink);
    }

    /// Evaluates the alarms on the cloud's clock for as long as the server
    /// runs: loads them (off the start path), carries out actions left due
    /// by a stop, then evaluates each alarm when it is due.
    pub async fn run_alarms(self: Arc<Self>) {
        let now = self.now(nimbus_core::now_millis());
        let alarms = Arc::clone(&self.alarms);
        if let Err(e) = blocking(move || alarms.ensure_loaded(now)).await {
            tracing::warn!("cloudwatch: loading the alarms failed (retried on first use): {e}");
        }
        for entry in self.alarms.actions_pending() {
            if let Err(e) = self.alarms.run_actions(&entry, now).await {
                tracing::warn!("cloudwatch: alarm actions left from the last run failed: {e}");
            }
        }
        loop {
            let next = self.alarms.next_due();
            let wait = async {
                match next {
                    Some(at) => self.clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = wait => {}
                _ = self.alarms.changed.notified() => continue,
                // A shifted test clock or a stalled timer never holds
                // evaluation back for long.
                _ = tokio::time::sleep(ALARM_POLL) => {}
            }
            if let Err(e) = self.evaluate_alarms().await {
                tracing::warn!("cloudwatch: alarm evaluation failed (retried next period): {e}");
            }
        }
    }

    /// Evaluates every alarm due now and applies the transitions; returns
    /// how many alarms were evaluated.
    pub async fn evaluate_alarms(&self) -> Result<usize, MetricsError> {
        let now = self.now(nimbus_core::now_millis());
        let due = self.alarms.take_due(now);
        if due.is_empty() {
            return Ok(0);
        }
        let evaluated = due.len();
        let metrics = Arc::clone(&*self.metrics.read().await);
        let outcomes = blocking(move || {
            // A metric-math alarm reads the one query that returns data.
            let math = |entry: &alarms::Entry, start: i64, end: i64| {
                let alarms::Eval::Metric {
                    source: alarms::Source::Math(queries),
                    ..
                } = &entry.eval
                else {
                    return Ok(Vec::new());
                };
                let results = handlers::metric_queries::run_queries(
                    &metrics,
                    &entry.account,
                    &entry.region,
                    queries,
                    start,
                    end,
                    now,
                )
                .map_err(|e| MetricsError::InvalidParameterValue(e.message))?;
                Ok(results
                    .first()
                    .map(|r| {
                        r.points
                            .iter()
                            .map(|&(timestamp_ms, value)| alarm::Datapoint {
                                timestamp_ms,
                                value,
                                sample_count: None,
                            })
                            .collect()
                    })
                    .unwrap_or_default())
            };
            Ok(due
                .into_iter()
                .map(|entry| {
                    let outcome = alarms::Alarms::assess(&metrics, &entry, now, &math);
                    (entry, outcome)
                })
                .collect::<Vec<_>>())
        })
        .await?;
        let mut updates = Vec::new();
        for (entry, outcome) in outcomes {
            match outcome {
                Ok(alarm::Outcome::Transition(update)) => updates.push((entry, update)),
                Ok(alarm::Outcome::NoChange) => {}
                Err(e) => tracing::warn!(
                    "cloudwatch: alarm {} was not evaluated: {e}",
                    entry.record.name
                ),
            }
        }
        // The round's transitions go to the store in a few large batches
        // rather than one commit each.
        while !updates.is_empty() {
            let rest = updates.split_off(updates.len().min(TRANSITIONS_PER_BATCH));
            let changed = self.alarms.apply_transitions(updates, now).await?;
            for next in changed {
                self.alarms.after_transition(&next, now, 0).await?;
            }
            updates = rest;
        }
        Ok(evaluated)
    }

    async fn reset_all(&self) -> Result<(), AwsError> {
        let mut guard = self.metrics.write().await;
        let failed = |e: nimbus_store::StoreError| MetricsError::from(e).to_aws_error();
        let tables: Vec<&str> = metrics::TABLES
            .iter()
            .chain(alarms::record::TABLES.iter())
            .copied()
            .collect();
        let stored = self.store.keys_of_tables(&tables).await.map_err(failed)?;
        let mut batch = Batch::new();
        for (table, keys) in stored {
            for k in keys {
                batch.delete(table, k);
            }
        }
        if !batch.is_empty() {
            self.store.commit(batch).await.map_err(failed)?;
        }
        let fresh = Metrics::open(self.store.clone(), self.options.clone())
            .map_err(|e| e.to_aws_error())?;
        *guard = Arc::new(fresh);
        self.alarms.clear();
        *lock(&self.expiry) = ExpiryState::default();
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs store work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, MetricsError> + Send + 'static,
) -> Result<T, MetricsError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| MetricsError::Internal(format!("metrics upkeep stopped: {e}")))?
}

impl nimbus_core::telemetry::MetricsExport for CloudWatch {
    fn prometheus_text(&self) -> BoxFuture<'_, Result<String, AwsError>> {
        Box::pin(async move {
            let metrics = Arc::clone(&*self.metrics.read().await);
            let now = self.now(nimbus_core::now_millis());
            blocking(move || export::prometheus_text(&metrics, now))
                .await
                .map_err(|e| e.to_aws_error())
        })
    }
}

impl Service for CloudWatch {
    fn name(&self) -> &'static str {
        "cloudwatch"
    }

    fn call<'a>(
        &'a self,
        ctx: &'a RequestContext,
        operation: &'a str,
        input: Value,
    ) -> BoxFuture<'a, Result<Value, AwsError>> {
        Box::pin(async move {
            let guard = self.metrics.read().await;
            let call = handlers::Call {
                metrics: &guard,
                alarms: &self.alarms,
                account: &ctx.account_id,
                region: self.region(ctx),
                now_ms: self.now(ctx.now_ms),
            };
            use handlers::alarms as a;
            use handlers::metrics as m;
            match operation {
                "PutMetricData" => m::put_metric_data(&call, &input).await,
                "GetMetricStatistics" => m::get_metric_statistics(&call, &input),
                "ListMetrics" => m::list_metrics(&call, &input),
                "PutMetricAlarm" => a::put_metric_alarm(&call, &input).await,
                "PutCompositeAlarm" => a::put_composite_alarm(&call, &input).await,
                "DescribeAlarms" => a::describe_alarms(&call, &input),
                "DescribeAlarmsForMetric" => a::describe_alarms_for_metric(&call, &input),
                "DescribeAlarmHistory" => a::describe_alarm_history(&call, &input),
                "SetAlarmState" => a::set_alarm_state(&call, &input).await,
                "EnableAlarmActions" => a::set_actions_enabled(&call, &input, true).await,
                "DisableAlarmActions" => a::set_actions_enabled(&call, &input, false).await,
                "DeleteAlarms" => a::delete_alarms(&call, &input).await,
                "TagResource" => a::tag_resource(&call, &input).await,
                "UntagResource" => a::untag_resource(&call, &input).await,
                "ListTagsForResource" => a::list_tags_for_resource(&call, &input),
                "GetMetricData" => handlers::metric_data::get_metric_data(&call, &input),
                other => Err(AwsError::invalid_action(other, "CloudWatch")),
            }
        })
    }

    fn reset(&self) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(self.reset_all())
    }
}

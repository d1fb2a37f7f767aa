//! The alarms of one nimbus: their records in the store, the book of them
//! in memory that the evaluator schedules from, state transitions with their
//! history, and actions carried out once per transition.
//!
//! Every alarm is evaluated on the cloud's clock: one with a period of a
//! minute or more once a minute, a high-resolution one once per period, a
//! few seconds after the boundary so that the period just ended has its
//! data. Composite alarms are evaluated when created or updated and when an
//! alarm their rule names changes state. A transition is one store batch
//! (record and history item); the actions of the new state are attempted
//! after it and their outcome recorded in a second batch, which also clears
//! the record's `actions_due` mark: after kill -9 the actions of a state
//! already acted on are never carried out again, and those of a state not yet
//! acted on are carried out at the next start.
//!
//! Memory: the book holds every alarm (each is evaluated every minute, so
//! they are the working set): about 1 KiB of record and parsed settings per
//! metric alarm, 8.5 KiB of RSS per alarm as `nimbus bench --workload
//! alarm-eval` measures it (10,000 alarms, allocator growth included). It is read from
//! the store on first use, not at start.

pub mod actions;
pub mod record;

use crate::alarm::{
    percentile_fraction, AlarmRule, AlarmState, ChildAlarm, ComparisonOperator, CompositeTrigger,
    Datapoint, EvaluationRange, LowSampleCountPercentile, MetricAlarmConfig, Outcome, StateUpdate,
    TreatMissingData,
};
use crate::metrics::{
    Dimension, MetricIdentity, Metrics, MetricsError, Statistic, StatisticsRequest, Unit,
};
use actions::{Action, ActionRequest, ActionSink};
use nimbus_store::{Batch, Step, Store};
use record::{AlarmRecord, HistoryItem};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// How long history is kept (CloudWatch keeps 30 days).
pub const HISTORY_RETENTION_MS: u64 = 30 * 86_400_000;
/// How far past a boundary an alarm is evaluated: time for the data of the
/// period just ended to arrive (collectors publish on the minute).
const EVALUATION_DELAY_MS: u64 = 10_000;
const HIGH_RESOLUTION_DELAY_MS: u64 = 2_000;
/// How deep a chain of composite alarms re-evaluates after one change (a
/// rule may name another composite; a cycle stops here).
const MAX_COMPOSITE_DEPTH: usize = 16;
/// History items one expiry step may delete.
const HISTORY_EXPIRY_BUDGET: usize = 1000;

/// Runs a metric-math alarm's queries over `[start, end)` (epoch ms) and
/// gives the datapoints of the one that returns data.
pub type MathRunner<'a> = dyn Fn(&Entry, i64, i64) -> Result<Vec<Datapoint>, MetricsError> + 'a;

/// A metric's series: its units and their ids.
pub type SeriesIds = Vec<(Unit, u64)>;
/// How long resolved series serve before they are looked up again (a unit
/// published for the first time, a series expired and made anew).
const SERIES_FRESH_MS: u64 = 5 * 60_000;

/// What evaluation reads for a metric alarm.
#[derive(Debug, Clone)]
pub enum Source {
    Metric {
        identity: MetricIdentity,
        unit: Option<Unit>,
        statistic: Statistic,
        /// The metric's series as last resolved (cloud ms, ids): resolving
        /// is a store scan, and a metric gains a unit rarely.
        series: Arc<Mutex<Option<(u64, SeriesIds)>>>,
    },
    /// Metric math (`Metrics`): evaluated through GetMetricData's engine.
    Math(Vec<crate::handlers::metric_queries::MetricDataQuery>),
}

/// How an alarm is evaluated, parsed from its record.
#[derive(Debug, Clone)]
pub enum Eval {
    Metric {
        config: MetricAlarmConfig,
        source: Source,
    },
    Composite(AlarmRule),
}

/// An alarm in the book.
#[derive(Debug, Clone)]
pub struct Entry {
    pub account: String,
    pub region: String,
    pub record: AlarmRecord,
    pub eval: Eval,
    /// Changes whenever the configuration is replaced: an evaluation of an
    /// older configuration does not apply.
    pub generation: u64,
}

impl Entry {
    /// Parses a stored (or just validated) record.
    pub fn from_record(
        account: &str,
        region: &str,
        record: AlarmRecord,
        generation: u64,
    ) -> Result<Entry, String> {
        let eval = if record.composite {
            let rule = record.alarm_rule.as_deref().unwrap_or("FALSE");
            Eval::Composite(AlarmRule::parse(rule).map_err(|e| e.message().to_string())?)
        } else {
            let comparison = record
                .comparison
                .as_deref()
                .and_then(ComparisonOperator::parse)
                .ok_or("no comparison operator")?;
            let period = record.period.unwrap_or(60);
            let (source, statistic_name) = match (&record.metric, &record.queries) {
                (Some(m), _) => {
                    let name = m
                        .statistic
                        .clone()
                        .or_else(|| m.extended_statistic.clone())
                        .ok_or("no statistic")?;
                    let statistic = Statistic::parse(&name).ok_or("unknown statistic")?;
                    let unit = m.unit.as_deref().and_then(Unit::from_name);
                    let dimensions = m
                        .dimensions
                        .iter()
                        .map(|(n, v)| Dimension::new(n.clone(), v.clone()))
                        .collect();
                    let identity =
                        MetricIdentity::new(m.namespace.clone(), m.metric_name.clone(), dimensions);
                    (
                        Source::Metric {
                            identity,
                            unit,
                            statistic,
                            series: Arc::default(),
                        },
                        Some(name),
                    )
                }
                (None, Some(q)) => (
                    Source::Math(
                        crate::handlers::metric_queries::parse_queries(q, "Metrics")
                            .map_err(|e| e.message)?,
                    ),
                    None,
                ),
                (None, None) => return Err("no metric".into()),
            };
            let mut config = MetricAlarmConfig::new(
                comparison,
                record.threshold.unwrap_or(0.0),
                record.evaluation_periods.unwrap_or(1),
                period,
                statistic_name.as_deref(),
            );
            config.datapoints_to_alarm = record.datapoints_to_alarm;
            config.treat_missing_data = record
                .treat_missing_data
                .as_deref()
                .and_then(TreatMissingData::parse)
                .unwrap_or_default();
            config.low_sample_count = record
                .evaluate_low_sample_count_percentile
                .as_deref()
                .and_then(LowSampleCountPercentile::parse)
                .unwrap_or_default();
            config.percentile = record
                .metric
                .as_ref()
                .and_then(|m| m.extended_statistic.as_deref())
                .and_then(percentile_fraction);
            config.unit = record.metric.as_ref().and_then(|m| m.unit.clone());
            Eval::Metric { config, source }
        };
        Ok(Entry {
            account: account.to_string(),
            region: region.to_string(),
            record,
            eval,
            generation,
        })
    }

    fn key(&self) -> Vec<u8> {
        record::alarm_key(&self.account, &self.region, &self.record.name)
    }

    fn state(&self) -> AlarmState {
        AlarmState::parse(&self.record.state).unwrap_or(AlarmState::InsufficientData)
    }

    fn child(&self) -> ChildAlarm {
        ChildAlarm {
            arn: self.record.arn.clone(),
            state: self.state(),
            state_timestamp_ms: self.record.state_updated_ms as i64,
        }
    }

    /// The next evaluation after `now_ms` (cloud time); composites have none.
    fn next_due(&self, now_ms: u64) -> Option<u64> {
        let Eval::Metric { config, .. } = &self.eval else {
            return None;
        };
        let (step, delay) = if config.period_secs >= 60 {
            (60_000, EVALUATION_DELAY_MS)
        } else {
            (
                u64::from(config.period_secs.max(1)) * 1000,
                HIGH_RESOLUTION_DELAY_MS,
            )
        };
        let base = now_ms.saturating_sub(delay) / step * step + delay;
        Some(if base > now_ms { base } else { base + step })
    }

    /// The `InstanceId` dimension of the alarm's metric (EC2 actions act on it).
    fn instance_id(&self) -> Option<String> {
        self.record.metric.as_ref().and_then(|m| {
            m.dimensions
                .iter()
                .find(|(n, _)| n == "InstanceId")
                .map(|(_, v)| v.clone())
        })
    }
}

#[derive(Default)]
struct Book {
    loaded: bool,
    alarms: BTreeMap<Vec<u8>, Arc<Entry>>,
    /// Keys of the composite alarms: a child's change looks only at them.
    composites: BTreeSet<Vec<u8>>,
    schedule: BTreeSet<(u64, Vec<u8>)>,
    due_of: BTreeMap<Vec<u8>, u64>,
}

impl Book {
    fn insert(&mut self, entry: Arc<Entry>, now_ms: u64) {
        let key = entry.key();
        self.unschedule(&key);
        if let Some(due) = entry.next_due(now_ms) {
            self.schedule.insert((due, key.clone()));
            self.due_of.insert(key.clone(), due);
        }
        if matches!(entry.eval, Eval::Composite(_)) {
            self.composites.insert(key.clone());
        } else {
            self.composites.remove(&key);
        }
        self.alarms.insert(key, entry);
    }

    /// Replaces an entry's record without touching its schedule.
    fn update(&mut self, entry: Arc<Entry>) {
        self.alarms.insert(entry.key(), entry);
    }

    fn remove(&mut self, key: &[u8]) -> Option<Arc<Entry>> {
        self.unschedule(key);
        self.composites.remove(key);
        self.alarms.remove(key)
    }

    fn unschedule(&mut self, key: &[u8]) {
        if let Some(due) = self.due_of.remove(key) {
            self.schedule.remove(&(due, key.to_vec()));
        }
    }

    /// The alarms due at `now_ms`, each rescheduled for its next evaluation.
    fn take_due(&mut self, now_ms: u64) -> Vec<Arc<Entry>> {
        let mut due = Vec::new();
        while let Some((at, key)) = self.schedule.first().cloned() {
            if at > now_ms {
                break;
            }
            self.schedule.pop_first();
            self.due_of.remove(&key);
            if let Some(entry) = self.alarms.get(&key).cloned() {
                if let Some(next) = entry.next_due(now_ms) {
                    self.schedule.insert((next, key.clone()));
                    self.due_of.insert(key, next);
                }
                due.push(entry);
            }
        }
        due
    }

    fn next_due(&self) -> Option<u64> {
        self.schedule.first().map(|(at, _)| *at)
    }

    /// The alarm a rule names (by name or by ARN) in a scope.
    fn named(&self, account: &str, region: &str, alarm: &str) -> Option<&Arc<Entry>> {
        let name = alarm
            .strip_prefix(&format!("arn:aws:cloudwatch:{region}:{account}:alarm:"))
            .unwrap_or(alarm);
        self.alarms.get(&record::alarm_key(account, region, name))
    }

    /// The composite alarms of a scope whose rule names `child`.
    fn parents_of(&self, child: &Entry) -> Vec<Arc<Entry>> {
        let scope = record::scope(&child.account, &child.region);
        self.composites
            .range(scope.clone()..)
            .take_while(|k| k.starts_with(&scope))
            .filter_map(|k| self.alarms.get(k))
            .filter(|e| match &e.eval {
                Eval::Composite(rule) => rule
                    .alarms()
                    .iter()
                    .any(|a| *a == child.record.name || *a == child.record.arn),
                Eval::Metric { .. } => false,
            })
            .cloned()
            .collect()
    }
}

/// The alarm side of the CloudWatch service.
pub struct Alarms {
    store: Store,
    book: Mutex<Book>,
    /// Serialises changes to alarm records, so that a record's store order
    /// is its memory order.
    writer: tokio::sync::Mutex<()>,
    /// Tells items of one millisecond apart (seeded from the wall clock, so
    /// a restart does not reuse a key).
    seq: AtomicU64,
    generation: AtomicU64,
    sink: RwLock<Option<Arc<dyn ActionSink>>>,
    /// Wakes the evaluator when an alarm is added or changed.
    pub(crate) changed: tokio::sync::Notify,
    history_cursor: Mutex<Vec<u8>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn internal(e: impl std::fmt::Display) -> MetricsError {
    MetricsError::Internal(e.to_string())
}

/// What a put changes, for history.
pub enum Put {
    Created,
    Updated(Box<AlarmRecord>),
}

impl Alarms {
    pub fn new(store: Store) -> Alarms {
        Alarms {
            store,
            book: Mutex::new(Book::default()),
            writer: tokio::sync::Mutex::new(()),
            seq: AtomicU64::new(nimbus_core::now_millis().saturating_mul(1000)),
            generation: AtomicU64::new(1),
            sink: RwLock::new(None),
            changed: tokio::sync::Notify::new(),
            history_cursor: Mutex::new(Vec::new()),
        }
    }

    pub fn set_action_sink(&self, sink: Arc<dyn ActionSink>) {
        *self.sink.write().unwrap_or_else(|e| e.into_inner()) = Some(sink);
    }

    fn sink(&self) -> Option<Arc<dyn ActionSink>> {
        self.sink.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn next_generation(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::Relaxed)
    }

    /// Reads every alarm into the book, once. A record this release cannot
    /// read is skipped with a warning (it stays in the store untouched).
    pub fn ensure_loaded(&self, now_ms: u64) -> Result<(), MetricsError> {
        let mut book = lock(&self.book);
        if book.loaded {
            return Ok(());
        }
        let mut entries = Vec::new();
        self.store
            .scan(record::ALARMS, b"", |key, value| {
                entries.push((key.to_vec(), value.to_vec()));
                Step::Next
            })
            .map_err(internal)?;
        for (key, value) in entries {
            let mut parts = key.splitn(3, |b| *b == 0);
            let (Some(account), Some(region)) = (parts.next(), parts.next()) else {
                continue;
            };
            let (account, region) = (
                String::from_utf8_lossy(account).into_owned(),
                String::from_utf8_lossy(region).into_owned(),
            );
            match AlarmRecord::decode(&value)
                .and_then(|r| Entry::from_record(&account, &region, r, self.next_generation()))
            {
                Ok(entry) => book.insert(Arc::new(entry), now_ms),
                Err(e) => tracing::warn!(
                    "cloudwatch: an alarm record of {account}/{region} does not load ({e}); it is left as it is"
                ),
            }
        }
        book.loaded = true;
        drop(book);
        self.changed.notify_one();
        Ok(())
    }

    pub fn get(&self, account: &str, region: &str, name: &str) -> Option<Arc<Entry>> {
        lock(&self.book)
            .alarms
            .get(&record::alarm_key(account, region, name))
            .cloned()
    }

    /// Whether a rule's alarm reference (name or ARN) names an alarm.
    pub fn exists(&self, account: &str, region: &str, alarm: &str) -> bool {
        lock(&self.book).named(account, region, alarm).is_some()
    }

    /// The alarms of a scope in name order, starting after `after`.
    pub fn list(&self, account: &str, region: &str, after: Option<&str>) -> Vec<Arc<Entry>> {
        self.list_where(account, region, after, usize::MAX, |_| true)
    }

    /// [`Alarms::list`], keeping only alarms `admit` admits and stopping at
    /// `limit` of them: a page of a listing costs its page, not the scope.
    pub fn list_where(
        &self,
        account: &str,
        region: &str,
        after: Option<&str>,
        limit: usize,
        admit: impl Fn(&Entry) -> bool,
    ) -> Vec<Arc<Entry>> {
        let book = lock(&self.book);
        let scope = record::scope(account, region);
        let start = match after {
            Some(name) => {
                let mut k = record::alarm_key(account, region, name);
                k.push(0);
                k
            }
            None => scope.clone(),
        };
        book.alarms
            .range(start..)
            .take_while(|(k, _)| k.starts_with(&scope))
            .filter(|(_, e)| admit(e))
            .take(limit)
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// The composites whose rule names `child`.
    pub fn parents_of(&self, child: &Entry) -> Vec<Arc<Entry>> {
        lock(&self.book).parents_of(child)
    }

    /// The alarms a composite's rule names, as they are now.
    pub fn children_of(&self, composite: &Entry) -> Vec<Arc<Entry>> {
        let Eval::Composite(rule) = &composite.eval else {
            return Vec::new();
        };
        let book = lock(&self.book);
        let mut out: Vec<Arc<Entry>> = Vec::new();
        for alarm in rule.alarms() {
            if let Some(e) = book.named(&composite.account, &composite.region, alarm) {
                if !out.iter().any(|o| o.record.name == e.record.name) {
                    out.push(e.clone());
                }
            }
        }
        out
    }

    fn history_item(
        &self,
        batch: &mut Batch,
        entry: &Entry,
        item_type: &str,
        summary: String,
        data: String,
        at_ms: u64,
    ) {
        let item = HistoryItem {
            v: 1,
            alarm_name: entry.record.name.clone(),
            alarm_type: entry.record.alarm_type().to_string(),
            timestamp_ms: at_ms,
            item_type: item_type.to_string(),
            summary,
            data,
        };
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let (by_time, by_name) = item.keys(&entry.account, &entry.region, seq);
        let bytes = item.encode();
        batch.put(record::HISTORY, by_time, bytes.clone());
        batch.put(record::HISTORY_BY_NAME, by_name, bytes);
    }

    /// Stores a new or replaced alarm (PutMetricAlarm, PutCompositeAlarm)
    /// with its ConfigurationUpdate history item. A replaced alarm keeps its
    /// state; a new one starts in INSUFFICIENT_DATA. A composite is then
    /// evaluated at once.
    pub async fn put(
        &self,
        account: &str,
        region: &str,
        mut record: AlarmRecord,
        now_ms: u64,
    ) -> Result<(), MetricsError> {
        self.ensure_loaded(now_ms)?;
        let guard = self.writer.lock().await;
        let previous = self.get(account, region, &record.name);
        match &previous {
            Some(old) => {
                record.state = old.record.state.clone();
                record.state_reason = old.record.state_reason.clone();
                record.state_reason_data = old.record.state_reason_data.clone();
                record.state_updated_ms = old.record.state_updated_ms;
                record.state_transitioned_ms = old.record.state_transitioned_ms;
                record.actions_due = false;
                // Tags are given on creation only; an update keeps them.
                if record.tags.is_empty() {
                    record.tags = old.record.tags.clone();
                }
            }
            None => {
                record.state = "INSUFFICIENT_DATA".into();
                record.state_reason = "Unchecked: Initial alarm creation".into();
                record.state_reason_data = None;
                record.state_updated_ms = now_ms;
                record.state_transitioned_ms = now_ms;
            }
        }
        let entry = Entry::from_record(account, region, record, self.next_generation())
            .map_err(MetricsError::InvalidParameterValue)?;
        let mut batch = Batch::new();
        batch.put(record::ALARMS, entry.key(), entry.record.encode());
        let config = entry.record.history_config();
        let (summary, data) = match &previous {
            None => (
                format!("Alarm \"{}\" created", entry.record.name),
                json!({"type": "Create", "version": "1.0", "createdAlarm": config}),
            ),
            Some(old) => (
                format!("Alarm \"{}\" updated", entry.record.name),
                json!({"type": "Update", "version": "1.0",
                       "originalAlarm": old.record.history_config(), "updatedAlarm": config}),
            ),
        };
        self.history_item(
            &mut batch,
            &entry,
            "ConfigurationUpdate",
            summary,
            data.to_string(),
            now_ms,
        );
        self.store.commit(batch).await.map_err(internal)?;
        let entry = Arc::new(entry);
        lock(&self.book).insert(entry.clone(), now_ms);
        drop(guard);
        self.changed.notify_one();
        if let Eval::Composite(rule) = &entry.eval {
            let trigger = if previous.is_some() {
                CompositeTrigger::Updated
            } else {
                CompositeTrigger::Created
            };
            let update = {
                let book = lock(&self.book);
                rule.assess_composite(&entry.record.arn, trigger, &|alarm: &str| {
                    book.named(account, region, alarm).map(|e| e.child())
                })
            };
            let outcome = Outcome::from_update(entry.state(), Some(update));
            if let Outcome::Transition(update) = outcome {
                self.transition(&entry, update, now_ms, 0).await?;
            }
        }
        Ok(())
    }

    /// Deletes the named alarms of a scope (names that name nothing are
    /// passed over, as CloudWatch does). History stays.
    pub async fn delete(
        &self,
        account: &str,
        region: &str,
        names: &[String],
        now_ms: u64,
    ) -> Result<(), MetricsError> {
        self.ensure_loaded(now_ms)?;
        let _guard = self.writer.lock().await;
        let mut batch = Batch::new();
        let mut gone = Vec::new();
        for name in names {
            if let Some(entry) = self.get(account, region, name) {
                batch.delete(record::ALARMS, entry.key());
                self.history_item(
                    &mut batch,
                    &entry,
                    "ConfigurationUpdate",
                    format!("Alarm \"{}\" deleted", entry.record.name),
                    json!({"type": "Delete", "version": "1.0",
                           "deletedAlarm": entry.record.history_config()})
                    .to_string(),
                    now_ms,
                );
                gone.push(entry.key());
            }
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.store.commit(batch).await.map_err(internal)?;
        let mut book = lock(&self.book);
        for key in gone {
            book.remove(&key);
        }
        Ok(())
    }

    /// Changes the record of existing alarms (actions on and off, tags)
    /// without history; `change` returns false to leave an alarm as it is.
    pub async fn modify(
        &self,
        account: &str,
        region: &str,
        names: &[String],
        now_ms: u64,
        change: impl Fn(&mut AlarmRecord) -> bool,
    ) -> Result<usize, MetricsError> {
        self.ensure_loaded(now_ms)?;
        let _guard = self.writer.lock().await;
        let mut batch = Batch::new();
        let mut changed = Vec::new();
        for name in names {
            let Some(entry) = self.get(account, region, name) else {
                continue;
            };
            let mut updated = (*entry).clone();
            if change(&mut updated.record) {
                batch.put(record::ALARMS, updated.key(), updated.record.encode());
                changed.push(Arc::new(updated));
            }
        }
        let count = changed.len();
        if !batch.is_empty() {
            self.store.commit(batch).await.map_err(internal)?;
            let mut book = lock(&self.book);
            for entry in changed {
                book.update(entry);
            }
        }
        Ok(count)
    }

    /// Moves an alarm to another state (an evaluation or SetAlarmState):
    /// one batch with the record and its StateUpdate history item; then the
    /// composites that name it are re-evaluated and the new state's actions
    /// carried out.
    pub async fn transition(
        &self,
        entry: &Arc<Entry>,
        update: StateUpdate,
        now_ms: u64,
        depth: usize,
    ) -> Result<(), MetricsError> {
        let changed = self
            .apply_transitions(vec![(Arc::clone(entry), update)], now_ms)
            .await?;
        for next in changed {
            self.after_transition(&next, now_ms, depth).await?;
        }
        Ok(())
    }

    /// Applies many state updates in one store batch (an evaluation round
    /// that moves thousands of alarms commits once); returns the alarms whose
    /// state changed, for [`Alarms::after_transition`]. An update of an alarm
    /// replaced or deleted since it was evaluated is dropped.
    pub async fn apply_transitions(
        &self,
        updates: Vec<(Arc<Entry>, StateUpdate)>,
        now_ms: u64,
    ) -> Result<Vec<Arc<Entry>>, MetricsError> {
        let guard = self.writer.lock().await;
        let mut batch = Batch::new();
        let mut applied = Vec::with_capacity(updates.len());
        for (entry, update) in updates {
            let Some(current) = self.get(&entry.account, &entry.region, &entry.record.name) else {
                continue;
            };
            if current.generation != entry.generation {
                continue;
            }
            let old_state = current.record.state.clone();
            let old_reason = current.record.state_reason.clone();
            let mut next = (*current).clone();
            let state = update.state.as_str();
            next.record.state = state.to_string();
            next.record.state_reason = update.reason.clone();
            next.record.state_reason_data =
                (!update.reason_data.is_empty()).then(|| update.reason_data.clone());
            next.record.state_updated_ms = now_ms;
            let changes = old_state != state;
            if changes {
                next.record.state_transitioned_ms = now_ms;
                next.record.actions_due =
                    next.record.actions_enabled && !next.record.actions_of(state).is_empty();
                let mut new_state = json!({"stateValue": state, "stateReason": update.reason});
                if let Ok(data) = serde_json::from_str::<serde_json::Value>(&update.reason_data) {
                    new_state["stateReasonData"] = data;
                }
                let data = json!({
                    "version": "1.0",
                    "oldState": {"stateValue": old_state, "stateReason": old_reason},
                    "newState": new_state,
                });
                self.history_item(
                    &mut batch,
                    &next,
                    "StateUpdate",
                    format!("Alarm updated from {old_state} to {state}"),
                    data.to_string(),
                    now_ms,
                );
            }
            batch.put(record::ALARMS, next.key(), next.record.encode());
            applied.push((Arc::new(next), changes));
        }
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.store.commit(batch).await.map_err(internal)?;
        let mut book = lock(&self.book);
        let mut changed = Vec::new();
        for (next, changes) in applied {
            book.update(next.clone());
            if changes {
                changed.push(next);
            }
        }
        drop(book);
        drop(guard);
        Ok(changed)
    }

    /// What follows a change of state: the composites that name the alarm
    /// are re-evaluated (up to [`MAX_COMPOSITE_DEPTH`] levels), then the new
    /// state's actions are carried out.
    pub async fn after_transition(
        &self,
        next: &Arc<Entry>,
        now_ms: u64,
        depth: usize,
    ) -> Result<(), MetricsError> {
        if depth < MAX_COMPOSITE_DEPTH {
            for parent in self.parents_of(next) {
                let Eval::Composite(rule) = &parent.eval else {
                    continue;
                };
                let child = next.child();
                let update = {
                    let book = lock(&self.book);
                    rule.assess_composite(
                        &parent.record.arn,
                        CompositeTrigger::ChildChanged(&child),
                        &|alarm: &str| {
                            book.named(&parent.account, &parent.region, alarm)
                                .map(|e| e.child())
                        },
                    )
                };
                if let Outcome::Transition(update) =
                    Outcome::from_update(parent.state(), Some(update))
                {
                    Box::pin(self.transition(&parent, update, now_ms, depth + 1)).await?;
                }
            }
        }
        self.run_actions(next, now_ms).await
    }

    /// Carries out the actions of `entry`'s state if they are due, and
    /// records each attempt; then clears the mark, unless the alarm has
    /// moved on meanwhile (its new state has its own mark).
    pub async fn run_actions(&self, entry: &Arc<Entry>, now_ms: u64) -> Result<(), MetricsError> {
        if !entry.record.actions_due {
            return Ok(());
        }
        let sink = self.sink();
        let mut attempts = Vec::new();
        for arn in entry.record.actions_of(&entry.record.state) {
            let request = ActionRequest {
                account: entry.account.clone(),
                region: entry.region.clone(),
                alarm_name: entry.record.name.clone(),
                alarm_arn: entry.record.arn.clone(),
                arn: arn.clone(),
                action: Action::parse(arn).unwrap_or(Action::Other),
                instance_id: entry.instance_id(),
                new_state: entry.record.state.clone(),
            };
            let result = actions::perform(sink.as_deref(), &request).await;
            attempts.push((arn.clone(), result));
        }
        let _guard = self.writer.lock().await;
        let mut batch = Batch::new();
        for (arn, result) in attempts {
            let (summary, data) = match result {
                Ok(()) => (
                    format!("Successfully executed action {arn}"),
                    json!({"actionState": "Succeeded", "stateUpdateTimestamp": entry.record.state_updated_ms,
                           "notificationResource": arn}),
                ),
                Err(error) => (
                    format!("Failed to execute action {arn}"),
                    json!({"actionState": "Failed", "stateUpdateTimestamp": entry.record.state_updated_ms,
                           "notificationResource": arn, "error": error}),
                ),
            };
            self.history_item(
                &mut batch,
                entry,
                "Action",
                summary,
                data.to_string(),
                now_ms,
            );
        }
        let current = self.get(&entry.account, &entry.region, &entry.record.name);
        let cleared = current.filter(|c| {
            c.generation == entry.generation
                && c.record.state_transitioned_ms == entry.record.state_transitioned_ms
                && c.record.actions_due
        });
        let cleared = cleared.map(|c| {
            let mut next = (*c).clone();
            next.record.actions_due = false;
            batch.put(record::ALARMS, next.key(), next.record.encode());
            Arc::new(next)
        });
        self.store.commit(batch).await.map_err(internal)?;
        if let Some(next) = cleared {
            lock(&self.book).update(next);
        }
        Ok(())
    }

    /// Alarms whose actions were due when nimbus last stopped.
    pub fn actions_pending(&self) -> Vec<Arc<Entry>> {
        lock(&self.book)
            .alarms
            .values()
            .filter(|e| e.record.actions_due)
            .cloned()
            .collect()
    }

    pub fn next_due(&self) -> Option<u64> {
        lock(&self.book).next_due()
    }

    /// The metric alarms due at `now_ms`, rescheduled.
    pub fn take_due(&self, now_ms: u64) -> Vec<Arc<Entry>> {
        lock(&self.book).take_due(now_ms)
    }

    /// Evaluates one metric alarm at `now_ms` (cloud time) against the
    /// stored datapoints. `math` runs metric-math queries.
    pub fn assess(
        metrics: &Metrics,
        entry: &Entry,
        now_ms: u64,
        math: &MathRunner<'_>,
    ) -> Result<Outcome, MetricsError> {
        let Eval::Metric { config, source } = &entry.eval else {
            return Ok(Outcome::NoChange);
        };
        let range = EvaluationRange::ending_before(
            now_ms as i64,
            config.period_secs,
            config.evaluation_periods,
        );
        let period_ms = i64::from(config.period_secs.max(1)) * 1000;
        let start = range.newest_period_start_ms - (i64::from(range.periods) - 1) * period_ms;
        let end = range.newest_period_start_ms + period_ms;
        let datapoints = match source {
            Source::Metric {
                identity,
                unit,
                statistic,
                series,
            } => {
                let statistics = [*statistic, Statistic::SampleCount];
                let request = StatisticsRequest {
                    account: &entry.account,
                    region: &entry.region,
                    metric: identity,
                    unit: *unit,
                    start_ms: start,
                    end_ms: end,
                    period_s: i64::from(config.period_secs),
                    statistics: &statistics,
                };
                let known = lock(series)
                    .as_ref()
                    .filter(|(at, ids)| {
                        !ids.is_empty() && now_ms.saturating_sub(*at) < SERIES_FRESH_MS
                    })
                    .map(|(_, ids)| ids.clone());
                let ids = match known {
                    Some(ids) => ids,
                    None => {
                        let ids = metrics.series_of(&entry.account, &entry.region, identity)?;
                        *lock(series) = Some((now_ms, ids.clone()));
                        ids
                    }
                };
                let points = metrics.statistics_of_series(
                    &request,
                    &ids,
                    now_ms,
                    u64::from(range.periods),
                )?;
                let mut out: Vec<Datapoint> = Vec::with_capacity(points.len());
                for p in points {
                    // Without a Unit, a metric published in several units
                    // has a datapoint per unit: the first one counts.
                    if out.iter().any(|d| d.timestamp_ms == p.timestamp_ms) {
                        continue;
                    }
                    let Some(Some(value)) = p.values.first() else {
                        continue;
                    };
                    out.push(Datapoint {
                        timestamp_ms: p.timestamp_ms,
                        value: *value,
                        sample_count: p.values.get(1).copied().flatten(),
                    });
                }
                out
            }
            Source::Math(_) => math(entry, start, end)?,
        };
        Ok(config.evaluate(entry.state(), range, &datapoints, now_ms as i64))
    }

    /// Deletes history older than the retention in one bounded step; true
    /// when a pass has more to do.
    pub fn expire_history(&self, now_ms: u64) -> Result<bool, MetricsError> {
        let cutoff = now_ms.saturating_sub(HISTORY_RETENTION_MS);
        let from = lock(&self.history_cursor).clone();
        let mut doomed = Vec::new();
        let mut seen = 0usize;
        let mut last = None;
        self.store
            .scan(record::HISTORY, &from, |key, value| {
                seen += 1;
                last = Some(key.to_vec());
                if record::history_key_time(key).is_some_and(|t| t < cutoff) {
                    if let Ok(item) = HistoryItem::decode(value) {
                        doomed.push((key.to_vec(), item));
                    }
                }
                if seen >= HISTORY_EXPIRY_BUDGET {
                    Step::Stop
                } else {
                    Step::Next
                }
            })
            .map_err(internal)?;
        let more = seen >= HISTORY_EXPIRY_BUDGET;
        *lock(&self.history_cursor) = match (more, last) {
            (true, Some(mut k)) => {
                k.push(0);
                k
            }
            _ => Vec::new(),
        };
        if doomed.is_empty() {
            return Ok(more);
        }
        let mut batch = Batch::new();
        for (key, item) in doomed {
            // The by-name key: same scope, then the name, then the suffix.
            let suffix_at = key.len().saturating_sub(16);
            let mut by_name = key[..suffix_at].to_vec();
            by_name.extend_from_slice(item.alarm_name.as_bytes());
            by_name.push(0);
            by_name.extend_from_slice(&key[suffix_at..]);
            batch.delete(record::HISTORY, key);
            batch.delete(record::HISTORY_BY_NAME, by_name);
        }
        self.store.commit_blocking(batch).map_err(internal)?;
        Ok(more)
    }

    /// History items of a scope (or of one alarm), newest first, starting at
    /// `from` (a key from a previous page), each with its key, while `visit`
    /// says to go on.
    pub fn scan_history(
        &self,
        account: &str,
        region: &str,
        alarm: Option<&str>,
        from: Option<&[u8]>,
        mut visit: impl FnMut(&[u8], HistoryItem) -> bool,
    ) -> Result<(), MetricsError> {
        let (table, prefix) = match alarm {
            Some(name) => {
                let mut p = record::alarm_key(account, region, name);
                p.push(0);
                (record::HISTORY_BY_NAME, p)
            }
            None => (record::HISTORY, record::scope(account, region)),
        };
        let start = from.map_or_else(|| prefix.clone(), <[u8]>::to_vec);
        let mut failed = None;
        self.store
            .scan(table, &start, |key, value| {
                if !key.starts_with(&prefix) {
                    return Step::Stop;
                }
                match HistoryItem::decode(value) {
                    Ok(item) => {
                        if visit(key, item) {
                            Step::Next
                        } else {
                            Step::Stop
                        }
                    }
                    Err(e) => {
                        failed = Some(e);
                        Step::Stop
                    }
                }
            })
            .map_err(internal)?;
        match failed {
            Some(e) => Err(MetricsError::corrupt("alarm history", e)),
            None => Ok(()),
        }
    }

    /// Forgets everything in memory (a reset has emptied the tables).
    pub fn clear(&self) {
        *lock(&self.book) = Book {
            loaded: true,
            ..Book::default()
        };
        lock(&self.history_cursor).clear();
    }
}

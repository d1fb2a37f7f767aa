//! CloudWatch's metric data: this module owns every datapoint published
//! with PutMetricData (or by nimbus's own collectors) from validation to
//! disk, its roll-up into 1-minute, 5-minute and hourly aggregates, its
//! expiry after CloudWatch's retention periods, and the statistics
//! GetMetricStatistics, GetMetricData and alarms ask of it — as a library:
//! no HTTP, no clock (every call takes the time as epoch milliseconds), no
//! thread of its own (the caller runs [`Metrics::flush`] and
//! [`Metrics::expire`] from time to time).
//!
//! # Storage
//!
//! A series is one metric (namespace, name, dimensions) in one unit of one
//! account and region, numbered by a `u64` id. Data of a series is kept in
//! four tiers, each cut into fixed time blocks; one block of one series is
//! one record (a short run of segment records, see below), its values in
//! columns:
//!
//! | tier | resolution | block | kept (default) |
//! | --- | --- | --- | --- |
//! | raw | as published: the second (StorageResolution 1) or the minute | 1 hour | 3 hours (`raw_s`, `--metrics-retention`) |
//! | minute | 60 s slots | 1 day | 15 days |
//! | five-minute | 300 s slots | 7 days | 63 days |
//! | hour | 3600 s slots | 30 days | 455 days |
//!
//! Raw blocks keep every value with its count, so percentiles over them
//! are exact. A roll-up slot keeps count, sum, minimum, maximum and a
//! sketch of the values (exact while a bucket holds one whole number,
//! else within 0.5%). Every datum enters all tiers that still keep its
//! time when it is published, so a late datum (CloudWatch takes them two
//! weeks back) lands in its roll-ups like any other and no roll-up pass
//! has to wait for a block to close; expiry is then a matter of deleting a
//! tier's blocks past its retention. A period of a query is answered by the
//! finest tier that holds it (see `query`).
//!
//! Tables (every record starts with its format version, `1`):
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | `cw_series` | series key (see `identity`): account, region, namespace, name, sorted dimensions, unit | id `u64`, created and last-published ms |
//! | `cw_blocks` | tier `u8`, block start s `u64` BE, series id `u64` BE, flush number `u32` BE | a segment: raw values or roll-up slots in columns (see `blocks`) |
//! | `cw_ingest` | sequence `u64` BE | one PutMetricData call's validated data, kept until flushed |
//! | `cw_meta` | `next_series_id` | the next series id `u64` |
//!
//! Writes: a PutMetricData call is one atomic batch (its ingest log record
//! and any new series), durable when the returned future resolves; its data
//! also enters the blocks pending in memory. A flush writes each pending
//! block as a new segment and deletes the log records it covers, in one
//! batch. Segments of a block merge like a binary counter: flush number n
//! of a block merges the segments numbered above `n - 2^t` (t = trailing
//! zero bits of n) into one, so a block has at most log2(flushes) segments
//! and each datapoint is rewritten at most that many times. Reads merge a
//! block's segments and its pending data. After a crash the log is
//! replayed into memory: nothing acknowledged is lost, nothing counted
//! twice (a flush deletes exactly the log records whose data it wrote).
//!
//! Memory follows the working set, never what is stored: the data pending
//! since the last flush (bounded by `max_pending_entries`; a put that
//! exceeds it flushes), a bounded cache of series ids, and the flush
//! numbers of current blocks. Opening reads one counter and replays the
//! log, nothing else; nothing is read whole.
//!
//! Size per datapoint, measured by the `bytes_per_datapoint_*` tests
//! (bytes of keys and values stored, all tiers holding the data):
//! - one value a second (StorageResolution 1), 1,000,000 datapoints over
//!   100 series: 2.6 B for a slowly moving integer gauge (2.1 in the raw
//!   tier, 0.5 in roll-ups), 13.0 B for random doubles (9.0 + 4.0). The
//!   redb file is then 8.9 and 35.7 B per datapoint: it also holds pages
//!   freed by the transient ingest log and by merged segments, which later
//!   writes reuse.
//! - one value a minute, 200 series x 1,000 minutes: 16 B (about 4 raw,
//!   5 in the minute slot, the rest in the 5-minute and hourly slots).
//!
//! In memory a stored datapoint costs nothing (redb's page cache aside).
//! Until the next flush a pending one costs 24 B in its raw block, plus
//! ~90 B for each roll-up slot it opens and 24 B per distinct sketch
//! bucket; a pending block ~80 B. Beyond that: ~100 B and the key per
//! cached series, ~40 B per flush number of a current block.
//!
//! Time is the caller's: `now_ms` must not go backwards between calls (a
//! datum enters the tiers that keep its time as of its call).

mod blocks;
mod codec;
pub mod error;
pub mod identity;
pub mod ingest;
pub mod math;
pub mod query;
mod records;
mod sketch;
pub mod stats;
#[cfg(test)]
mod tests;

pub use blocks::Tier;
pub use error::MetricsError;
pub use identity::{Dimension, MetricIdentity, SeriesName, Unit};
pub use ingest::{
    DimensionInput, MetricDatum, Payload, Publisher, Sample, SetStats, StatisticSetInput,
};
pub use query::{Retention, MAX_DATAPOINTS_PER_CALL};
pub use stats::{Bounds, PeriodAggregate, Statistic};

/// Every table the metric data lives in (what a reset of the service clears).
pub const TABLES: [&str; 4] = [
    records::SERIES,
    records::BLOCKS,
    records::INGEST,
    records::META,
];

use blocks::Block;
use nimbus_store::{Batch, Step, Store, StoreError};
use query::{PeriodAccumulator, Plan};
use records::{LogEntry, LogRecord, SeriesRecord};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};

/// Resolves once a write is durable.
pub type Durable = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

#[derive(Debug, Clone)]
pub struct MetricsOptions {
    pub retention: Retention,
    /// [`Metrics::needs_flush`] says yes once the oldest pending data is
    /// this old: it bounds the ingest log a restart replays.
    pub flush_interval_ms: u64,
    /// A put that leaves more pending entries than this flushes at once.
    pub max_pending_entries: usize,
    /// Series ids kept in memory (others are read from the store on use).
    pub series_cache: usize,
}

impl Default for MetricsOptions {
    fn default() -> Self {
        MetricsOptions {
            retention: Retention::default(),
            flush_interval_ms: 30_000,
            max_pending_entries: 200_000,
            series_cache: 100_000,
        }
    }
}

/// How far a flush lets the stored last-published time of a series lag.
const LAST_PUT_GRANULARITY_MS: u64 = 60_000;
/// Data may carry timestamps this far past the call that published it.
const FUTURE_SLACK_S: u64 = 2 * 3600;
/// How many ingest log records the replay at open reads at a time.
const REPLAY_CHUNK: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct BlockKey {
    tier: Tier,
    start_s: u64,
    series: u64,
}

impl BlockKey {
    fn prefix(&self) -> [u8; records::BLOCK_PREFIX_LEN] {
        records::block_prefix(self.tier, self.start_s, self.series)
    }
}

#[derive(Debug, Clone)]
struct CachedSeries {
    id: u64,
    created_ms: u64,
    last_put_ms: u64,
    stored_last_put_ms: u64,
    last_used_ms: u64,
}

impl CachedSeries {
    fn from_record(r: &SeriesRecord, now_ms: u64) -> Self {
        CachedSeries {
            id: r.id,
            created_ms: r.created_ms,
            last_put_ms: r.last_put_ms,
            stored_last_put_ms: r.last_put_ms,
            last_used_ms: now_ms,
        }
    }
}

struct Inner {
    next_series_id: u64,
    series: HashMap<Vec<u8>, CachedSeries>,
    pending: HashMap<BlockKey, Block>,
    pending_entries: usize,
    /// The ingest log records `log_floor..next_log_seq` hold the pending data.
    log_floor: u64,
    next_log_seq: u64,
    /// When the oldest pending data arrived.
    pending_since_ms: Option<u64>,
    /// The last flush number of recently flushed blocks; others are found
    /// from their keys when next flushed.
    flush_numbers: HashMap<BlockKey, u32>,
    /// Where the next expiry step looks for forgotten series.
    catalog_cursor: Vec<u8>,
}

/// The metric store of one nimbus: see the module doc.
pub struct Metrics {
    store: Store,
    options: MetricsOptions,
    inner: Mutex<Inner>,
}

/// A datapoint of one period: its start, the unit of the series, and the
/// requested statistics in order (None where unavailable).
#[derive(Debug, Clone, PartialEq)]
pub struct Datapoint {
    pub timestamp_ms: i64,
    pub unit: Unit,
    pub values: Vec<Option<f64>>,
}

/// A statistics query over one metric.
#[derive(Debug, Clone)]
pub struct StatisticsRequest<'a> {
    pub account: &'a str,
    pub region: &'a str,
    pub metric: &'a MetricIdentity,
    /// Only data published in this unit; each unit apart when None.
    pub unit: Option<Unit>,
    pub start_ms: i64,
    pub end_ms: i64,
    pub period_s: i64,
    pub statistics: &'a [Statistic],
}

/// What one expiry step did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExpireReport {
    pub segments_deleted: usize,
    pub series_deleted: usize,
    /// Whether there is more to delete (call again).
    pub more: bool,
}

/// What memory holds, for tests and `nimbus status`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemoryUse {
    pub pending_entries: usize,
    pub pending_blocks: usize,
    pub cached_series: usize,
    pub flush_numbers: usize,
    pub unflushed_log_records: u64,
}

/// A stored series as listings show it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesInfo {
    pub name: SeriesName,
    pub last_put_ms: u64,
}

fn corrupt(what: &str) -> impl Fn(String) -> MetricsError + '_ {
    move |detail| MetricsError::corrupt(what, detail)
}

impl Metrics {
    /// Opens the metric data in `store`, replaying the ingest log of any
    /// calls not yet flushed.
    pub fn open(store: Store, options: MetricsOptions) -> Result<Metrics, MetricsError> {
        let next_series_id = match store.get(records::META, records::NEXT_SERIES_ID)? {
            Some(v) => records::decode_counter(&v).map_err(corrupt("counter"))?,
            None => 1,
        };
        let metrics = Metrics {
            store,
            options,
            inner: Mutex::new(Inner {
                next_series_id,
                series: HashMap::new(),
                pending: HashMap::new(),
                pending_entries: 0,
                log_floor: 0,
                next_log_seq: 0,
                pending_since_ms: None,
                flush_numbers: HashMap::new(),
                catalog_cursor: Vec::new(),
            }),
        };
        metrics.replay()?;
        Ok(metrics)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn replay(&self) -> Result<(), MetricsError> {
        let mut inner = self.lock();
        let mut from = records::log_key(0).to_vec();
        let mut first = true;
        loop {
            let mut chunk: Vec<(u64, Vec<u8>)> = Vec::new();
            let mut bad_key = false;
            self.store.scan(records::INGEST, &from, |k, v| {
                match records::decode_log_key(k) {
                    Some(seq) => chunk.push((seq, v.to_vec())),
                    None => bad_key = true,
                }
                if chunk.len() >= REPLAY_CHUNK || bad_key {
                    Step::Stop
                } else {
                    Step::Next
                }
            })?;
            if bad_key {
                return Err(MetricsError::corrupt(
                    "ingest log",
                    "a key is not a sequence",
                ));
            }
            let Some(&(last_seq, _)) = chunk.last() else {
                break;
            };
            let mut latest_ms = 0;
            for (seq, bytes) in &chunk {
                if first {
                    inner.log_floor = *seq;
                    first = false;
                }
                let record = LogRecord::decode(bytes).map_err(corrupt("ingest log record"))?;
                latest_ms = latest_ms.max(record.put_ms);
                inner.pending_since_ms.get_or_insert(record.put_ms);
                for entry in &record.entries {
                    self.apply(&mut inner, entry, record.put_ms);
                }
                inner.next_log_seq = seq + 1;
            }
            if inner.pending_entries > self.options.max_pending_entries {
                // The log records applied so far are all pending, so a
                // flush may delete them.
                drop(self.flush_locked(&mut inner, latest_ms)?);
            }
            from = records::log_key(last_seq + 1).to_vec();
        }
        if first {
            inner.log_floor = 0;
            inner.next_log_seq = 0;
        }
        Ok(())
    }

    /// Adds an entry to the pending blocks of every tier that keeps its time.
    fn apply(&self, inner: &mut Inner, entry: &LogEntry, put_ms: u64) {
        let put_s = put_ms / 1000;
        let empty = matches!(&entry.payload, Payload::Values(v) if v.is_empty());
        if empty {
            return;
        }
        for tier in Tier::ALL {
            if !self.options.retention.keeps(tier, entry.time_s, put_s) {
                continue;
            }
            let start_s = tier.block_start(entry.time_s);
            let key = BlockKey {
                tier,
                start_s,
                series: entry.series,
            };
            let block = inner.pending.entry(key).or_insert_with(|| Block::new(tier));
            inner.pending_entries +=
                block.add(tier, (entry.time_s - start_s) as u32, &entry.payload);
        }
    }

    /// Validates a PutMetricData request and stores its data; the future
    /// resolves once it is durable (reads see it at once).
    pub fn put_metric_data(
        &self,
        account: &str,
        region: &str,
        namespace: Option<&str>,
        data: &[MetricDatum],
        publisher: Publisher,
        now_ms: u64,
    ) -> Result<Durable, MetricsError> {
        let samples = ingest::validate_put(namespace, data, now_ms as i64, publisher)?;
        self.put_samples(account, region, samples, now_ms)
    }

    /// Stores validated samples (see [`ingest::validate_put`]).
    pub fn put_samples(
        &self,
        account: &str,
        region: &str,
        samples: Vec<Sample>,
        now_ms: u64,
    ) -> Result<Durable, MetricsError> {
        let mut inner = self.lock();
        let mut batch = Batch::new();
        let mut next_id = inner.next_series_id;
        let mut created: HashMap<Vec<u8>, CachedSeries> = HashMap::new();
        let mut touched: Vec<Vec<u8>> = Vec::new();
        let mut entries = Vec::with_capacity(samples.len());
        for sample in samples {
            let key = sample.identity.series_key(account, region, sample.unit);
            let id = if let Some(s) = inner.series.get(&key) {
                s.id
            } else if let Some(s) = created.get(&key) {
                s.id
            } else if let Some(v) = self.store.get(records::SERIES, &key)? {
                let record = SeriesRecord::decode(&v).map_err(corrupt("series record"))?;
                inner
                    .series
                    .insert(key.clone(), CachedSeries::from_record(&record, now_ms));
                record.id
            } else {
                let id = next_id;
                next_id += 1;
                let record = SeriesRecord {
                    id,
                    created_ms: now_ms,
                    last_put_ms: now_ms,
                };
                batch.put(records::SERIES, key.clone(), record.encode());
                created.insert(key.clone(), CachedSeries::from_record(&record, now_ms));
                id
            };
            touched.push(key);
            entries.push(LogEntry {
                series: id,
                time_s: sample.time_s,
                high_resolution: sample.high_resolution,
                payload: sample.payload,
            });
        }
        if next_id != inner.next_series_id {
            batch.put(
                records::META,
                records::NEXT_SERIES_ID,
                records::encode_counter(next_id),
            );
        }
        let record = LogRecord {
            put_ms: now_ms,
            entries,
        };
        let seq = inner.next_log_seq;
        batch.put(records::INGEST, records::log_key(seq), record.encode());
        let durable = self.store.submit(batch);

        inner.next_log_seq = seq + 1;
        inner.next_series_id = next_id;
        inner.series.extend(created);
        for key in touched {
            if let Some(s) = inner.series.get_mut(&key) {
                s.last_put_ms = s.last_put_ms.max(now_ms);
                s.last_used_ms = now_ms;
            }
        }
        inner.pending_since_ms.get_or_insert(now_ms);
        for entry in &record.entries {
            self.apply(&mut inner, entry, now_ms);
        }
        if inner.pending_entries > self.options.max_pending_entries {
            // The put is stored through its log record whatever the flush
            // does, so a failed flush is not the put's error (the data stays
            // pending and the next flush tries again); nor is the flush's
            // durability the caller's to wait for.
            match self.flush_locked(&mut inner, now_ms) {
                Ok(flushed) => drop(flushed),
                Err(e) => tracing::warn!("metrics: flush after a full pending budget failed: {e}"),
            }
        }
        Ok(Box::pin(durable))
    }

    /// Whether a flush is due: pending data older than the flush interval.
    pub fn needs_flush(&self, now_ms: u64) -> bool {
        let inner = self.lock();
        inner
            .pending_since_ms
            .is_some_and(|since| now_ms.saturating_sub(since) >= self.options.flush_interval_ms)
            || inner.pending_entries > self.options.max_pending_entries
    }

    /// Writes every pending block and drops the ingest log records it
    /// covers, in one batch; the future resolves once that is durable.
    pub fn flush(&self, now_ms: u64) -> Result<Durable, MetricsError> {
        let mut inner = self.lock();
        self.flush_locked(&mut inner, now_ms)
    }

    fn flush_locked(&self, inner: &mut Inner, now_ms: u64) -> Result<Durable, MetricsError> {
        let mut batch = Batch::new();
        let mut keys: Vec<BlockKey> = inner.pending.keys().copied().collect();
        keys.sort_unstable();
        let mut numbers = Vec::with_capacity(keys.len());
        for key in &keys {
            let Some(block) = inner.pending.get(key) else {
                continue;
            };
            let last = match inner.flush_numbers.get(key) {
                Some(&n) => n,
                None => self.last_flush_number(key)?,
            };
            let n = last.checked_add(1).ok_or_else(|| {
                MetricsError::Internal(format!("block {key:?} has used up its flush numbers"))
            })?;
            // The binary-counter merge (see `absorbed_segments`).
            let mut merged = Block::new(key.tier);
            for number in absorbed_segments(n) {
                let segment_key = records::block_key(key.tier, key.start_s, key.series, number);
                if let Some(bytes) = self.store.get(records::BLOCKS, &segment_key)? {
                    match Block::decode(key.tier, &bytes) {
                        Ok(segment) => merged.merge(segment),
                        Err(e) => tracing::error!(
                            "metrics: dropping a segment of {key:?} that does not decode: {e}"
                        ),
                    }
                    batch.delete(records::BLOCKS, segment_key);
                }
            }
            merged.merge(block.clone());
            batch.put(
                records::BLOCKS,
                records::block_key(key.tier, key.start_s, key.series, n),
                merged.encode(),
            );
            numbers.push((*key, n));
        }
        for seq in inner.log_floor..inner.next_log_seq {
            batch.delete(records::INGEST, records::log_key(seq));
        }
        let mut refreshed = Vec::new();
        for (key, s) in &inner.series {
            if s.last_put_ms >= s.stored_last_put_ms + LAST_PUT_GRANULARITY_MS {
                let record = SeriesRecord {
                    id: s.id,
                    created_ms: s.created_ms,
                    last_put_ms: s.last_put_ms,
                };
                batch.put(records::SERIES, key.clone(), record.encode());
                refreshed.push(key.clone());
            }
        }
        let durable = self.store.submit(batch);

        inner.pending.clear();
        inner.pending_entries = 0;
        inner.pending_since_ms = None;
        inner.log_floor = inner.next_log_seq;
        inner.flush_numbers.extend(numbers);
        for key in refreshed {
            if let Some(s) = inner.series.get_mut(&key) {
                s.stored_last_put_ms = s.last_put_ms;
            }
        }
        self.trim(inner, now_ms);
        Ok(Box::pin(durable))
    }

    /// Forgets what memory need not hold: flush numbers of blocks past
    /// (a late datum for one finds its number again in the store), and the
    /// least recently used series beyond the cache's size.
    fn trim(&self, inner: &mut Inner, now_ms: u64) {
        let now_s = now_ms / 1000;
        inner
            .flush_numbers
            .retain(|k, _| k.start_s + 2 * k.tier.block_s() > now_s);
        // Every flushed block had a pending entry, so the pending budget
        // bounds the current blocks too; past it, forget them all.
        if inner.flush_numbers.len() > self.options.max_pending_entries {
            inner.flush_numbers.clear();
        }
        let cap = self.options.series_cache;
        if inner.series.len() > cap {
            // Right after a flush every entry's stored time is within the
            // granularity of its own, so any may go.
            let mut by_use: Vec<(u64, Vec<u8>)> = inner
                .series
                .iter()
                .filter(|(_, s)| s.last_put_ms < s.stored_last_put_ms + LAST_PUT_GRANULARITY_MS)
                .map(|(k, s)| (s.last_used_ms, k.clone()))
                .collect();
            by_use.sort_unstable();
            let excess = inner.series.len() - cap * 9 / 10;
            for (_, key) in by_use.into_iter().take(excess) {
                inner.series.remove(&key);
            }
        }
    }

    /// The highest flush number stored for a block (0 if none).
    fn last_flush_number(&self, key: &BlockKey) -> Result<u32, MetricsError> {
        let prefix = key.prefix();
        let mut last = 0;
        self.store.scan(records::BLOCKS, &prefix, |k, _| {
            if !k.starts_with(&prefix) {
                return Step::Stop;
            }
            if let Some((_, _, _, n)) = records::decode_block_key(k) {
                last = last.max(n);
            }
            Step::Next
        })?;
        Ok(last)
    }

    /// The stored segments of a block from key `from` on, decoded (None for
    /// one that does not decode: it is reported and then replaced, rather
    /// than stopping every later flush of its block).
    #[allow(clippy::type_complexity)]
    fn segments(
        &self,
        key: &BlockKey,
        from: &[u8],
    ) -> Result<Vec<(Vec<u8>, Option<Block>)>, MetricsError> {
        let prefix = key.prefix();
        let mut out = Vec::new();
        self.store.scan(records::BLOCKS, from, |k, v| {
            if !k.starts_with(&prefix) {
                return Step::Stop;
            }
            let block = match Block::decode(key.tier, v) {
                Ok(b) => Some(b),
                Err(e) => {
                    tracing::error!(
                        "metrics: dropping a segment of {key:?} that does not decode: {e}"
                    );
                    None
                }
            };
            out.push((k.to_vec(), block));
            Step::Next
        })?;
        Ok(out)
    }

    /// GetMetricStatistics: checks the request as CloudWatch does (range,
    /// period, at most 1,440 datapoints) and answers one datapoint per
    /// period with data, per unit.
    pub fn get_metric_statistics(
        &self,
        request: &StatisticsRequest,
        now_ms: u64,
    ) -> Result<Vec<Datapoint>, MetricsError> {
        query::validate_range(request.start_ms, request.end_ms)?;
        let period_s = query::validate_period(request.period_s)?;
        let wanted = Plan::count(request.start_ms, request.end_ms, period_s, now_ms as i64);
        if wanted > MAX_DATAPOINTS_PER_CALL {
            return Err(MetricsError::combination(format!(
                "You have requested up to {wanted} datapoints, which exceeds the limit of {MAX_DATAPOINTS_PER_CALL}. You may reduce the datapoints requested by increasing Period, or decreasing the time range."
            )));
        }
        self.statistics(request, now_ms, MAX_DATAPOINTS_PER_CALL)
    }

    /// The datapoints of a request without GetMetricStatistics' limit
    /// (GetMetricData and alarms bound `max_periods` themselves).
    pub fn statistics(
        &self,
        request: &StatisticsRequest,
        now_ms: u64,
        max_periods: u64,
    ) -> Result<Vec<Datapoint>, MetricsError> {
        query::validate_range(request.start_ms, request.end_ms)?;
        query::validate_period(request.period_s)?;
        let series = self.series_of(request.account, request.region, request.metric)?;
        self.statistics_of_series(request, &series, now_ms, max_periods)
    }

    /// [`Metrics::statistics`] over series already resolved with
    /// [`Metrics::series_of`] (alarms keep them between evaluations, which
    /// saves a store scan per evaluation).
    pub fn statistics_of_series(
        &self,
        request: &StatisticsRequest,
        series: &[(Unit, u64)],
        now_ms: u64,
        max_periods: u64,
    ) -> Result<Vec<Datapoint>, MetricsError> {
        query::validate_range(request.start_ms, request.end_ms)?;
        let period_s = query::validate_period(request.period_s)?;
        let plan = Plan::new(
            request.start_ms,
            request.end_ms,
            period_s,
            now_ms as i64,
            &self.options.retention,
            max_periods,
        );
        let mut out = Vec::new();
        for &(unit, series) in series {
            if request.unit.is_some_and(|u| u != unit) {
                continue;
            }
            for (k, aggregate) in self.aggregates(series, &plan, now_ms / 1000)? {
                out.push(Datapoint {
                    timestamp_ms: plan.period_start_ms(k),
                    unit,
                    values: request
                        .statistics
                        .iter()
                        .map(|s| aggregate.value(s))
                        .collect(),
                });
            }
        }
        Ok(out)
    }

    /// The units a metric has data in, with their series ids.
    pub fn series_of(
        &self,
        account: &str,
        region: &str,
        metric: &MetricIdentity,
    ) -> Result<Vec<(Unit, u64)>, MetricsError> {
        let prefix = metric.key_prefix(account, region);
        let mut out = Vec::new();
        for (key, value) in self.store.scan_prefix(records::SERIES, &prefix)? {
            let name = identity::decode_series_key(&key)?;
            // The key encoding is self-delimiting, so the prefix holds only
            // this metric's units; the check guards against a damaged key.
            if name.identity != *metric {
                continue;
            }
            let record = SeriesRecord::decode(&value).map_err(corrupt("series record"))?;
            out.push((name.unit, record.id));
        }
        Ok(out)
    }

    /// Series of an account and region (optionally one namespace) in key
    /// order, starting after `after` (a key from a previous page), at most
    /// `limit`; with the key to continue from.
    pub fn list_series(
        &self,
        account: &str,
        region: &str,
        namespace: Option<&str>,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<SeriesInfo>, Option<Vec<u8>>), MetricsError> {
        let prefix = identity::scope_prefix(account, region, namespace);
        self.list_series_in(&prefix, after, limit)
    }

    /// Series whose keys start with `prefix` (one made by
    /// [`identity::scope_prefix`] or [`identity::name_prefix`]), as
    /// [`Metrics::list_series`] pages them.
    pub fn list_series_in(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<SeriesInfo>, Option<Vec<u8>>), MetricsError> {
        let from = match after {
            Some(k) => {
                let mut next = k.to_vec();
                next.push(0);
                next
            }
            None => prefix.to_vec(),
        };
        let mut found: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut more = false;
        self.store.scan(records::SERIES, &from, |k, v| {
            if !k.starts_with(prefix) {
                return Step::Stop;
            }
            if found.len() == limit {
                more = true;
                return Step::Stop;
            }
            found.push((k.to_vec(), v.to_vec()));
            Step::Next
        })?;
        let mut out = Vec::with_capacity(found.len());
        for (k, v) in &found {
            let name = identity::decode_series_key(k)?;
            let record = SeriesRecord::decode(v).map_err(corrupt("series record"))?;
            let cached = self.lock().series.get(k).map(|s| s.last_put_ms);
            out.push(SeriesInfo {
                name,
                last_put_ms: cached.unwrap_or(record.last_put_ms).max(record.last_put_ms),
            });
        }
        let next = if more {
            found.last().map(|f| f.0.clone())
        } else {
            None
        };
        Ok((out, next))
    }

    /// The aggregates of a series' periods that have data, by period index.
    fn aggregates(
        &self,
        series: u64,
        plan: &Plan,
        now_s: u64,
    ) -> Result<BTreeMap<usize, PeriodAggregate>, MetricsError> {
        let mut periods: BTreeMap<usize, PeriodAccumulator> = BTreeMap::new();
        let inner = self.lock();
        for (tier, from_s, to_s) in plan.runs() {
            // No datum lies further ahead than a timestamp may run (a huge
            // Period must not make this walk empty blocks for ever).
            let to_s = to_s.min(now_s.saturating_add(FUTURE_SLACK_S + 1));
            let mut block_start = tier.block_start(from_s);
            while block_start < to_s {
                let key = BlockKey {
                    tier,
                    start_s: block_start,
                    series,
                };
                let mut visit = |block: &Block| {
                    gather(block, tier, block_start, from_s, to_s, plan, &mut periods);
                };
                for (_, segment) in self.segments(&key, &key.prefix())? {
                    if let Some(segment) = segment {
                        visit(&segment);
                    }
                }
                if let Some(block) = inner.pending.get(&key) {
                    visit(block);
                }
                block_start += tier.block_s();
            }
        }
        drop(inner);
        Ok(periods
            .into_iter()
            .filter(|(_, acc)| !acc.is_empty())
            .map(|(k, acc)| (k, acc.finish()))
            .collect())
    }

    /// One bounded step of expiry: deletes up to `budget` segments of
    /// blocks past their tier's retention, and forgets series whose data
    /// has all expired.
    pub fn expire(&self, now_ms: u64, budget: usize) -> Result<ExpireReport, MetricsError> {
        let now_s = now_ms / 1000;
        let retention = self.options.retention;
        let mut inner = self.lock();
        let mut batch = Batch::new();
        let mut report = ExpireReport::default();
        for tier in Tier::ALL {
            // Blocks are in time order within a tier: stop at the first
            // one still (partly) kept.
            let keep_from = now_s.saturating_sub(retention.of(tier));
            let mut expired: Vec<Vec<u8>> = Vec::new();
            let left = budget.saturating_sub(report.segments_deleted);
            self.store.scan(
                records::BLOCKS,
                &[tier.code()],
                |k, _| match records::decode_block_key(k) {
                    Some((t, start, _, _)) if t == tier => {
                        if start + tier.block_s() > keep_from {
                            return Step::Stop;
                        }
                        if expired.len() == left {
                            report.more = true;
                            return Step::Stop;
                        }
                        expired.push(k.to_vec());
                        Step::Next
                    }
                    _ => Step::Stop,
                },
            )?;
            report.segments_deleted += expired.len();
            for k in expired {
                batch.delete(records::BLOCKS, k);
            }
            let before = inner.pending.len();
            inner
                .pending
                .retain(|k, _| k.tier != tier || k.start_s + tier.block_s() > keep_from);
            if inner.pending.len() != before {
                inner.pending_entries = inner.pending.values().map(Block::entries).sum();
            }
        }
        // Forgotten series: nothing published for longer than any data is
        // kept (plus the two hours a timestamp may run ahead).
        let forget_before_ms = now_s
            .saturating_sub(retention.longest() + FUTURE_SLACK_S)
            .saturating_mul(1000);
        let left = budget.saturating_sub(report.segments_deleted);
        if left == 0 {
            report.more = true;
            if !batch.is_empty() {
                drop(self.store.submit(batch));
            }
            return Ok(report);
        }
        let mut scanned = 0usize;
        let mut forgotten: Vec<Vec<u8>> = Vec::new();
        let mut last_key: Option<Vec<u8>> = None;
        let mut undecodable: Option<String> = None;
        self.store
            .scan(records::SERIES, &inner.catalog_cursor, |k, v| {
                if scanned >= left * 4 || forgotten.len() >= left {
                    return Step::Stop;
                }
                scanned += 1;
                last_key = Some(k.to_vec());
                match SeriesRecord::decode(v) {
                    Ok(r) if r.last_put_ms < forget_before_ms => forgotten.push(k.to_vec()),
                    Ok(_) => {}
                    Err(e) => undecodable = Some(e),
                }
                Step::Next
            })?;
        if let Some(e) = undecodable {
            tracing::error!("metrics: a series record does not decode: {e}");
        }
        for k in forgotten {
            let recent = inner
                .series
                .get(&k)
                .is_some_and(|s| s.last_put_ms >= forget_before_ms);
            if !recent {
                inner.series.remove(&k);
                batch.delete(records::SERIES, k);
                report.series_deleted += 1;
            }
        }
        match last_key {
            Some(mut k) if scanned > 0 => {
                k.push(0);
                inner.catalog_cursor = k;
                report.more = true;
            }
            _ => inner.catalog_cursor.clear(),
        }
        if !batch.is_empty() {
            drop(self.store.submit(batch));
        }
        Ok(report)
    }

    /// What memory holds now.
    pub fn memory_use(&self) -> MemoryUse {
        let inner = self.lock();
        MemoryUse {
            pending_entries: inner.pending_entries,
            pending_blocks: inner.pending.len(),
            cached_series: inner.series.len(),
            flush_numbers: inner.flush_numbers.len(),
            unflushed_log_records: inner.next_log_seq - inner.log_floor,
        }
    }

    pub fn options(&self) -> &MetricsOptions {
        &self.options
    }
}

/// The segments flush `n` of a block absorbs. After flush `n - 1` the
/// block's segments are numbered by the binary prefixes of `n - 1` (after
/// flush 6 = 0b110: segment 4 holding flushes 1–4 and segment 6 holding
/// 5–6); flush n merges those above `n - 2^t`, t the trailing zero bits of
/// n (flush 8 takes 7, 6 and 4; flush 7 none), like a binary counter's carry.
fn absorbed_segments(n: u32) -> Vec<u32> {
    let floor = n - (1u32 << n.trailing_zeros());
    let mut out = Vec::new();
    let mut m = n - 1;
    while m > floor {
        out.push(m);
        m &= m - 1;
    }
    out
}

/// Adds what `block` holds in `[from_s, to_s)` to the periods of `plan`.
fn gather(
    block: &Block,
    tier: Tier,
    block_start: u64,
    from_s: u64,
    to_s: u64,
    plan: &Plan,
    periods: &mut BTreeMap<usize, PeriodAccumulator>,
) {
    let at = |time_s: u64| -> Option<usize> {
        if time_s < from_s || time_s >= to_s {
            return None;
        }
        plan.period_index(time_s)
    };
    match block {
        Block::Raw(raw) => {
            for v in &raw.values {
                if let Some(k) = at(block_start + u64::from(v.offset)) {
                    periods.entry(k).or_default().add_value(v.value, v.count);
                }
            }
            for s in &raw.sets {
                if let Some(k) = at(block_start + u64::from(s.offset)) {
                    periods.entry(k).or_default().add_set(&s.stats);
                }
            }
        }
        Block::Rollup(rollup) => {
            for (&index, slot) in &rollup.slots {
                if let Some(k) = at(block_start + u64::from(index) * tier.slot_s()) {
                    periods.entry(k).or_default().add_slot(slot);
                }
            }
        }
    }
}

//! Metric alarm evaluation: from an alarm's settings and the datapoints of its
//! evaluation range to the state the alarm should be in, with `StateReason`
//! and `StateReasonData` in CloudWatch's own words.
//!
//! The rules follow the CloudWatch User Guide ("Evaluating an alarm",
//! "Configuring how CloudWatch alarms treat missing data", "Avoiding premature
//! transitions to alarm state", "Percentile-based alarms and low data
//! samples"):
//!
//! - The alarm looks at an *evaluation range* longer than its N evaluation
//!   periods. With at least N real datapoints in the range, the N most recent
//!   real ones are evaluated and missing ones are skipped; with fewer, every
//!   real datapoint is evaluated and the most recent missing periods fill the
//!   gap to N, treated as `TreatMissingData` says.
//! - M breaching datapoints among those N (M = `DatapointsToAlarm`, default N)
//!   put the alarm in ALARM; fewer put it in OK.
//! - With `missing`, a range with no datapoint at all gives INSUFFICIENT_DATA;
//!   with `ignore` it keeps the current state.
//! - With `missing` or `ignore`, when every real datapoint breaches but there
//!   are fewer than M: the alarm goes to ALARM (`missing`) or keeps its state
//!   (`ignore`) if the oldest breaching one is at least M periods old, and
//!   otherwise waits (keeps its state), since the next datapoint may not breach.
//! - A percentile alarm set to `EvaluateLowSampleCountPercentile: ignore` keeps
//!   its state while an evaluated datapoint has too few samples.
//!
//! The caller (the alarm controller) fetches the datapoints; this module reads
//! no clock and no store.

use super::state::{AlarmState, Outcome, StateUpdate};
use super::text::{counted, data_time, java_double, json_string, reason_time, was_were};
use std::collections::BTreeMap;
use std::fmt::Write;

/// `ComparisonOperator` for static-threshold alarms. The anomaly-detection
/// operators (`LessThanLowerOrGreaterThanUpperThreshold`, ...) compare against
/// a band, not a threshold, and are not evaluated here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComparisonOperator {
    GreaterThanOrEqualToThreshold,
    GreaterThanThreshold,
    LessThanThreshold,
    LessThanOrEqualToThreshold,
}

impl ComparisonOperator {
    /// The operator with this wire name; `None` for the anomaly-band operators
    /// and anything else.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "GreaterThanOrEqualToThreshold" => Some(Self::GreaterThanOrEqualToThreshold),
            "GreaterThanThreshold" => Some(Self::GreaterThanThreshold),
            "LessThanThreshold" => Some(Self::LessThanThreshold),
            "LessThanOrEqualToThreshold" => Some(Self::LessThanOrEqualToThreshold),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::GreaterThanOrEqualToThreshold => "GreaterThanOrEqualToThreshold",
            Self::GreaterThanThreshold => "GreaterThanThreshold",
            Self::LessThanThreshold => "LessThanThreshold",
            Self::LessThanOrEqualToThreshold => "LessThanOrEqualToThreshold",
        }
    }

    /// Whether `value` breaches `threshold`. The statistic is the left operand,
    /// as the API reference says; a NaN value breaches nothing.
    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::GreaterThanOrEqualToThreshold => value >= threshold,
            Self::GreaterThanThreshold => value > threshold,
            Self::LessThanThreshold => value < threshold,
            Self::LessThanOrEqualToThreshold => value <= threshold,
        }
    }

    /// The comparison in the reason text: "... were greater than or equal to
    /// the threshold (75.0)".
    fn phrase(self) -> &'static str {
        match self {
            Self::GreaterThanOrEqualToThreshold => "greater than or equal to",
            Self::GreaterThanThreshold => "greater than",
            Self::LessThanThreshold => "less than",
            Self::LessThanOrEqualToThreshold => "less than or equal to",
        }
    }
}

/// `TreatMissingData`: what a period without a datapoint counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TreatMissingData {
    /// Not counted at all; a range with no data at all is INSUFFICIENT_DATA.
    #[default]
    Missing,
    /// Not counted; where missing data would decide, the state is kept.
    Ignore,
    /// Counted as breaching the threshold.
    Breaching,
    /// Counted as within the threshold.
    NotBreaching,
}

impl TreatMissingData {
    /// The setting with this wire name (`missing`, `ignore`, `breaching`,
    /// `notBreaching`); `None` for anything else.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "missing" => Some(Self::Missing),
            "ignore" => Some(Self::Ignore),
            "breaching" => Some(Self::Breaching),
            "notBreaching" => Some(Self::NotBreaching),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Ignore => "ignore",
            Self::Breaching => "breaching",
            Self::NotBreaching => "notBreaching",
        }
    }

    /// How the reason text names a treatment that fills periods in.
    fn reason_label(self) -> Option<&'static str> {
        match self {
            Self::Breaching => Some("Breaching"),
            Self::NotBreaching => Some("NonBreaching"),
            Self::Missing | Self::Ignore => None,
        }
    }
}

/// `EvaluateLowSampleCountPercentile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LowSampleCountPercentile {
    /// Evaluate whatever the sample count (the default).
    #[default]
    Evaluate,
    /// Keep the state while a datapoint has too few samples to be significant.
    Ignore,
}

impl LowSampleCountPercentile {
    /// The setting with this wire name (`evaluate`, `ignore`); `None` otherwise.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "evaluate" => Some(Self::Evaluate),
            "ignore" => Some(Self::Ignore),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Evaluate => "evaluate",
            Self::Ignore => "ignore",
        }
    }
}

/// The percentile an `ExtendedStatistic` asks for, as a fraction: `p99` is
/// 0.99, `p99.9` is 0.999. `None` for the other extended statistics (trimmed
/// means and the like), to which the low-sample rule does not apply.
pub fn percentile_fraction(extended_statistic: &str) -> Option<f64> {
    let digits = extended_statistic
        .strip_prefix('p')
        .or_else(|| extended_statistic.strip_prefix('P'))?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let percent: f64 = digits.parse().ok()?;
    (0.0..=100.0).contains(&percent).then_some(percent / 100.0)
}

/// The sample count below which a percentile is not statistically significant:
/// 10/(1-p) for p in [0.5, 1), 10/p for p in (0, 0.5). `None` for 0 and 1,
/// where the guide states no rule.
pub fn low_sample_count_limit(percentile: f64) -> Option<f64> {
    if (0.5..1.0).contains(&percentile) {
        Some(10.0 / (1.0 - percentile))
    } else if percentile > 0.0 && percentile < 0.5 {
        Some(10.0 / percentile)
    } else {
        None
    }
}

/// The most evaluation periods an alarm can have: the API allows one day of
/// evaluation for periods under an hour, so 8640 periods of 10 seconds. A
/// larger N (which the API refuses) is read as this, so that a bad config
/// cannot make an evaluation allocate without bound.
pub const MAX_EVALUATION_PERIODS: usize = 8640;

/// The settings of a metric alarm that evaluation needs.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricAlarmConfig {
    pub comparison: ComparisonOperator,
    pub threshold: f64,
    /// N, `EvaluationPeriods` (at least 1).
    pub evaluation_periods: u32,
    /// M, `DatapointsToAlarm`, as set. Unset means N, but the reason is then
    /// worded differently ("3 datapoints [...] were" instead of "3 out of the
    /// last 3 datapoints [...] were ... (minimum 3 datapoints ...)").
    pub datapoints_to_alarm: Option<u32>,
    pub treat_missing_data: TreatMissingData,
    pub low_sample_count: LowSampleCountPercentile,
    /// The percentile as a fraction when the statistic is one
    /// (see [`percentile_fraction`]); `None` otherwise.
    pub percentile: Option<f64>,
    pub period_secs: u32,
    /// The `statistic` member of `StateReasonData` (`Average`, `Sum`, ...).
    /// AWS leaves it out for metric-math alarms: pass `None` for those.
    pub statistic: Option<String>,
    /// The alarm's `Unit`, shown as `unit` in `StateReasonData` when set.
    pub unit: Option<String>,
}

impl MetricAlarmConfig {
    /// A config with the API's defaults: M = N, missing data `missing`,
    /// low-sample percentiles evaluated, no percentile, no unit.
    pub fn new(
        comparison: ComparisonOperator,
        threshold: f64,
        evaluation_periods: u32,
        period_secs: u32,
        statistic: Option<&str>,
    ) -> Self {
        MetricAlarmConfig {
            comparison,
            threshold,
            evaluation_periods,
            datapoints_to_alarm: None,
            treat_missing_data: TreatMissingData::Missing,
            low_sample_count: LowSampleCountPercentile::Evaluate,
            percentile: None,
            period_secs,
            statistic: statistic.map(str::to_string),
            unit: None,
        }
    }

    /// N, within 1..=[`MAX_EVALUATION_PERIODS`]: a config the API would refuse
    /// still evaluates, in bounded time.
    fn n(&self) -> usize {
        (self.evaluation_periods as usize).clamp(1, MAX_EVALUATION_PERIODS)
    }

    /// M, within 1..=N (the API rejects anything else before it gets here).
    fn m(&self) -> usize {
        let n = self.n();
        self.datapoints_to_alarm
            .map_or(n, |m| (m as usize).clamp(1, n))
    }

    fn period_ms(&self) -> i64 {
        i64::from(self.period_secs.max(1)) * 1000
    }

    fn is_low_sample(&self, point: &Datapoint) -> bool {
        let (Some(percentile), Some(samples)) = (self.percentile, point.sample_count) else {
            return false;
        };
        // The limits are exact in decimal (1000 for p99) but not always in
        // binary (10/(1-0.99) is 1000.0000000000009): allow for that.
        low_sample_count_limit(percentile).is_some_and(|limit| samples < limit - 1e-6)
    }

    /// The state the datapoints call for and why, or `None` when they leave the
    /// alarm in whatever state it is (see [`Outcome::NoChange`]).
    /// `query_time_ms` is when the evaluation runs (`queryDate`).
    pub fn assess(
        &self,
        range: EvaluationRange,
        datapoints: &[Datapoint],
        query_time_ms: i64,
    ) -> Option<StateUpdate> {
        self.assess_from(None, range, datapoints, query_time_ms)
    }

    /// [`assess`](Self::assess); with `current` given, `None` as soon as the
    /// data calls for that state, before any reason text is written (most
    /// evaluations change nothing, and the text is most of their cost).
    fn assess_from(
        &self,
        current: Option<AlarmState>,
        range: EvaluationRange,
        datapoints: &[Datapoint],
        query_time_ms: i64,
    ) -> Option<StateUpdate> {
        let window = Window::place(self, range, datapoints);
        let n = self.n();
        let m = self.m();
        let evaluated = window.evaluated(n);

        if self.low_sample_count == LowSampleCountPercentile::Ignore
            && evaluated
                .real
                .iter()
                .any(|slot| self.is_low_sample(slot.point))
        {
            return None;
        }

        let treat = self.treat_missing_data;
        if evaluated.real.is_empty() && treat == TreatMissingData::Missing {
            if current == Some(AlarmState::InsufficientData) {
                return None;
            }
            return Some(self.insufficient_data(&window, query_time_ms));
        }
        if evaluated.real.is_empty() && treat == TreatMissingData::Ignore {
            return None;
        }

        let breaching_real = evaluated.real.iter().filter(|s| s.breaching).count();
        let within_real = evaluated.real.len() - breaching_real;
        let filled = evaluated.filled.len();
        let breaching = breaching_real
            + if treat == TreatMissingData::Breaching {
                filled
            } else {
                0
            };

        let state = if breaching >= m {
            AlarmState::Alarm
        } else if matches!(treat, TreatMissingData::Missing | TreatMissingData::Ignore)
            && within_real == 0
        {
            // Only breaching datapoints, and fewer than M. The guide's
            // "premature transition" rule: ALARM once the oldest of them is at
            // least M periods old. Otherwise nothing here argues for OK and the
            // next datapoint may well breach too, so the alarm waits.
            let oldest_age = evaluated.real.iter().map(|s| s.age + 1).max().unwrap_or(0);
            if oldest_age >= m && treat == TreatMissingData::Missing {
                AlarmState::Alarm
            } else {
                return None;
            }
        } else {
            AlarmState::Ok
        };
        if current == Some(state) {
            return None;
        }
        Some(self.threshold_crossed(state, &evaluated, query_time_ms))
    }

    /// [`assess`](Self::assess), compared with the alarm's current state.
    pub fn evaluate(
        &self,
        current: AlarmState,
        range: EvaluationRange,
        datapoints: &[Datapoint],
        query_time_ms: i64,
    ) -> Outcome {
        Outcome::from_update(
            current,
            self.assess_from(Some(current), range, datapoints, query_time_ms),
        )
    }

    /// "Insufficient Data: 3 datapoints were unknown." The data lists the N most
    /// recent periods of the range, all missing.
    fn insufficient_data(&self, window: &Window<'_>, query_time_ms: i64) -> StateUpdate {
        let n = self.n();
        let reason = format!(
            "Insufficient Data: {} {} unknown.",
            counted(n, "datapoint", "datapoints"),
            was_were(n)
        );
        let unknown: Vec<Evidence<'_>> = (0..n)
            .map(|age| Evidence::Missing(window.start_of(age)))
            .collect();
        StateUpdate {
            state: AlarmState::InsufficientData,
            reason,
            reason_data: self.reason_data(query_time_ms, &[], &unknown),
        }
    }

    /// A "Threshold Crossed: ..." update to `state` (ALARM or OK).
    fn threshold_crossed(
        &self,
        state: AlarmState,
        evaluated: &Evaluated<'_>,
        query_time_ms: i64,
    ) -> StateUpdate {
        let n = self.n();
        let m = self.m();
        let to_alarm = state == AlarmState::Alarm;
        let treat = self.treat_missing_data;
        let filled_support = match treat {
            TreatMissingData::Breaching => to_alarm,
            TreatMissingData::NotBreaching => !to_alarm,
            TreatMissingData::Missing | TreatMissingData::Ignore => false,
        };
        // The real datapoints on the side of the new state, newest first.
        let supporting: Vec<&Slot<'_>> = evaluated
            .real
            .iter()
            .filter(|s| s.breaching == to_alarm)
            .collect();
        let filled_clause = treat
            .reason_label()
            .filter(|_| !evaluated.filled.is_empty())
            .map(|label| {
                let count = evaluated.filled.len();
                format!(
                    " and {} {} treated as [{label}]",
                    counted(count, "missing datapoint", "missing datapoints"),
                    was_were(count)
                )
            });

        // `write!` into a String cannot fail: its results are ignored below.
        let mut reason = String::from("Threshold Crossed: ");
        if supporting.is_empty() {
            // Only the filled-in periods speak for the new state. The real
            // datapoints (on the other side) are counted, not listed.
            let received = evaluated.real.len();
            let head = match received {
                0 => "no datapoints were".to_string(),
                1 => "1 datapoint was".to_string(),
                r => format!("{r} datapoints were"),
            };
            let _ = write!(
                reason,
                "{head} received for {}{}.",
                counted(n, "period", "periods"),
                filled_clause.as_deref().unwrap_or("")
            );
        } else {
            let listed: Vec<String> = supporting
                .iter()
                .map(|s| {
                    format!(
                        "{} ({})",
                        java_double(s.point.value),
                        reason_time(s.point.timestamp_ms)
                    )
                })
                .collect();
            let count = supporting.len();
            if self.datapoints_to_alarm.is_some() {
                let _ = write!(reason, "{count} out of the last {n} datapoints");
            } else {
                reason.push_str(&counted(count, "datapoint", "datapoints"));
            }
            let _ = write!(
                reason,
                " [{}] {} {}{} the threshold ({}){}",
                listed.join(", "),
                was_were(count),
                if to_alarm { "" } else { "not " },
                self.comparison.phrase(),
                java_double(self.threshold),
                filled_clause.as_deref().unwrap_or("")
            );
            if self.datapoints_to_alarm.is_some() {
                let minimum = if to_alarm { m } else { n - m + 1 };
                let _ = write!(
                    reason,
                    " (minimum {} for {} transition)",
                    counted(minimum, "datapoint", "datapoints"),
                    if to_alarm {
                        "OK -> ALARM"
                    } else {
                        "ALARM -> OK"
                    }
                );
            }
            reason.push('.');
        }

        // `evaluatedDatapoints`: the most recent datapoints that carry the
        // transition, as many as it needs at least (M for ALARM, N-M+1 for OK).
        let needed = if to_alarm { m } else { n - m + 1 };
        let mut evidence: Vec<Evidence<'_>> =
            supporting.iter().map(|s| Evidence::Real(s.point)).collect();
        if filled_support {
            evidence.extend(
                evaluated
                    .filled
                    .iter()
                    .map(|&start| Evidence::Missing(start)),
            );
        }
        evidence.sort_by_key(|e| std::cmp::Reverse(e.timestamp_ms()));
        evidence.truncate(needed);

        StateUpdate {
            state,
            reason,
            reason_data: self.reason_data(query_time_ms, &evaluated.real, &evidence),
        }
    }

    /// `StateReasonData`, members in AWS's order: version, queryDate, startDate
    /// (the oldest real datapoint evaluated, when there is one), unit,
    /// statistic, period, recentDatapoints (the real values evaluated, oldest
    /// first), threshold, evaluatedDatapoints (newest first).
    fn reason_data(
        &self,
        query_time_ms: i64,
        real: &[Slot<'_>],
        evidence: &[Evidence<'_>],
    ) -> String {
        let mut out = String::from("{\"version\":\"1.0\"");
        let _ = write!(out, ",\"queryDate\":\"{}\"", data_time(query_time_ms));
        if let Some(oldest) = real.iter().map(|s| s.point.timestamp_ms).min() {
            let _ = write!(out, ",\"startDate\":\"{}\"", data_time(oldest));
        }
        if let Some(unit) = &self.unit {
            let _ = write!(out, ",\"unit\":{}", json_string(unit));
        }
        if let Some(statistic) = &self.statistic {
            let _ = write!(out, ",\"statistic\":{}", json_string(statistic));
        }
        let _ = write!(out, ",\"period\":{}", self.period_secs);
        let mut chronological: Vec<&Slot<'_>> = real.iter().collect();
        chronological.sort_by_key(|s| s.point.timestamp_ms);
        let recent: Vec<String> = chronological
            .iter()
            .map(|s| java_double(s.point.value))
            .collect();
        let _ = write!(out, ",\"recentDatapoints\":[{}]", recent.join(","));
        let _ = write!(out, ",\"threshold\":{}", java_double(self.threshold));
        out.push_str(",\"evaluatedDatapoints\":[");
        for (i, item) in evidence.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{{\"timestamp\":\"{}\"",
                data_time(item.timestamp_ms())
            );
            if let Evidence::Real(point) = item {
                if let Some(samples) = point.sample_count {
                    let _ = write!(out, ",\"sampleCount\":{}", java_double(samples));
                }
                let _ = write!(out, ",\"value\":{}", java_double(point.value));
            }
            out.push('}');
        }
        out.push_str("]}");
        out
    }
}

/// One period's statistic as the caller computed it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Datapoint {
    /// Start of the period, epoch milliseconds.
    pub timestamp_ms: i64,
    pub value: f64,
    /// Samples behind the value; `None` where there is no such count (metric
    /// math), which also leaves `sampleCount` out of `StateReasonData`.
    pub sample_count: Option<f64>,
}

/// The periods an evaluation looks at: `periods` consecutive periods of the
/// alarm's length, the newest starting at `newest_period_start_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvaluationRange {
    pub newest_period_start_ms: i64,
    pub periods: u32,
}

impl EvaluationRange {
    /// The range an evaluation at `query_time_ms` looks at. Its newest period
    /// ends at the start of the current minute (of the current period for the
    /// 10, 20 and 30 second periods of high-resolution alarms): real reasons
    /// show an evaluation at 19:56:14 with a 60 s period reading the datapoint
    /// of 19:55:00, and one at 08:08:12 with a 6 h period reading 02:08:00.
    pub fn ending_before(query_time_ms: i64, period_secs: u32, evaluation_periods: u32) -> Self {
        let period_ms = i64::from(period_secs.max(1)) * 1000;
        let step = if period_secs >= 60 { 60_000 } else { period_ms };
        let end = query_time_ms.div_euclid(step) * step;
        EvaluationRange {
            newest_period_start_ms: end - period_ms,
            periods: evaluation_range_periods(evaluation_periods, period_secs),
        }
    }
}

/// How many periods an alarm with N evaluation periods of `period_secs`
/// retrieves: its evaluation range. The guide says only that it is "a higher
/// number of data points than specified by Evaluation Periods", depending on
/// the period and the metric's resolution, with one example: N = 3 at 5
/// minutes retrieves 5. AWS publishes no formula. Real reasons show more for
/// short periods: a 60 s alarm with N = 2 evaluated at 14:07:25 read the
/// datapoints of 14:01 and 14:02, six periods back. nimbus therefore looks
/// back N periods plus at least 5 minutes, and at least 2 periods:
/// N + max(2, ceil(300 s / period)).
pub fn evaluation_range_periods(evaluation_periods: u32, period_secs: u32) -> u32 {
    let period = period_secs.max(1);
    let extra = 300u32.div_ceil(period).max(2);
    evaluation_periods.max(1).saturating_add(extra)
}

/// A real datapoint placed in the range.
#[derive(Debug, Clone, Copy)]
struct Slot<'a> {
    /// Periods back from the newest period of the range (0 = newest).
    age: usize,
    point: &'a Datapoint,
    breaching: bool,
}

/// What the reason data lists: a real datapoint, or a period that had none.
enum Evidence<'a> {
    Real(&'a Datapoint),
    Missing(i64),
}

impl Evidence<'_> {
    fn timestamp_ms(&self) -> i64 {
        match self {
            Evidence::Real(point) => point.timestamp_ms,
            Evidence::Missing(start) => *start,
        }
    }
}

/// The range with each datapoint in its period.
struct Window<'a> {
    newest_start_ms: i64,
    period_ms: i64,
    /// Periods in the range, at least N.
    len: usize,
    /// The periods that have a datapoint, by age. Sparse, so that the size of
    /// the range costs nothing.
    real: BTreeMap<usize, Slot<'a>>,
}

/// What is evaluated: the real datapoints (newest first) and the start times
/// of the missing periods filled in to make N (newest first).
struct Evaluated<'a> {
    real: Vec<Slot<'a>>,
    filled: Vec<i64>,
}

impl<'a> Window<'a> {
    /// Places each datapoint in the period that contains its timestamp. Points
    /// outside the range are dropped; a second point for a period is ignored.
    fn place(
        config: &MetricAlarmConfig,
        range: EvaluationRange,
        datapoints: &'a [Datapoint],
    ) -> Self {
        let period_ms = config.period_ms();
        // The range must cover N periods for the rules to make sense.
        let len = (range.periods as usize).max(config.n());
        let mut real = BTreeMap::new();
        for point in datapoints {
            let behind = range
                .newest_period_start_ms
                .saturating_sub(point.timestamp_ms);
            // The period [start, start + period) holding the point, counted back
            // from the newest.
            let age = behind.saturating_add(period_ms - 1).div_euclid(period_ms);
            let Ok(age) = usize::try_from(age) else {
                continue;
            };
            if age < len {
                real.entry(age).or_insert(Slot {
                    age,
                    point,
                    breaching: config.comparison.breaches(point.value, config.threshold),
                });
            }
        }
        Window {
            newest_start_ms: range.newest_period_start_ms,
            period_ms,
            len,
            real,
        }
    }

    fn start_of(&self, age: usize) -> i64 {
        let age = i64::try_from(age).unwrap_or(i64::MAX);
        self.newest_start_ms
            .saturating_sub(age.saturating_mul(self.period_ms))
    }

    fn evaluated(&self, n: usize) -> Evaluated<'a> {
        let real: Vec<Slot<'a>> = self.real.values().take(n).copied().collect();
        let missing_needed = n - real.len();
        let filled = (0..self.len)
            .filter(|age| !self.real.contains_key(age))
            .take(missing_needed)
            .map(|age| self.start_of(age))
            .collect();
        Evaluated { real, filled }
    }
}

#[cfg(test)]
mod tests;

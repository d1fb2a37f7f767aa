//! How a statistics request maps onto stored data: the checks on Period
//! and the time range, the rounding of the start time, the 1,440-datapoint
//! limit of GetMetricStatistics, and which tier answers each period.
//!
//! CloudWatch's rules, and how they follow here:
//! - A period is 1, 5, 10, 20, 30 or a multiple of 60 seconds.
//! - The start is rounded down: to the period for sub-minute periods, else
//!   to the minute when under 15 days old, to 5 minutes up to 63 days, to
//!   the hour beyond. Periods then follow each other from there.
//! - Each period is answered by the finest tier that still holds its
//!   time and whose resolution divides the period: raw data within the raw
//!   retention (3 hours unless configured longer), 1-minute roll-ups for
//!   15 days, 5-minute for 63, hourly for 455. A period no tier can answer
//!   has no datapoint — with the default retentions exactly CloudWatch's
//!   "use a multiple of 60 / 300 / 3600 for data older than 3 hours /
//!   15 days / 63 days, or no datapoints are returned".

use super::blocks::{Slot, Tier};
use super::error::MetricsError;
use super::ingest::SetStats;
use super::sketch::Sketch;
use super::stats::PeriodAggregate;

/// The most datapoints one GetMetricStatistics call may ask for.
pub const MAX_DATAPOINTS_PER_CALL: u64 = 1440;
/// The periods shorter than a minute that CloudWatch accepts.
pub const SUB_MINUTE_PERIODS: [u64; 5] = [1, 5, 10, 20, 30];

const DAY_S: u64 = 86_400;

/// How long each tier keeps its data, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Raw values (1-second data in CloudWatch's terms): exact percentiles
    /// and any period. `--metrics-retention` lengthens it.
    pub raw_s: u64,
    pub minute_s: u64,
    pub five_minute_s: u64,
    pub hour_s: u64,
}

impl Default for Retention {
    /// CloudWatch's: 3 hours, 15 days, 63 days, 455 days.
    fn default() -> Self {
        Retention {
            raw_s: 3 * 3600,
            minute_s: 15 * DAY_S,
            five_minute_s: 63 * DAY_S,
            hour_s: 455 * DAY_S,
        }
    }
}

impl Retention {
    pub fn of(&self, tier: Tier) -> u64 {
        match tier {
            Tier::Raw => self.raw_s,
            Tier::Minute => self.minute_s,
            Tier::FiveMinute => self.five_minute_s,
            Tier::Hour => self.hour_s,
        }
    }

    /// The longest any data is kept.
    pub fn longest(&self) -> u64 {
        Tier::ALL.iter().map(|&t| self.of(t)).max().unwrap_or(0)
    }

    /// Whether data of `time_s` still belongs in `tier` at `now_s`.
    pub fn keeps(&self, tier: Tier, time_s: u64, now_s: u64) -> bool {
        time_s.saturating_add(self.of(tier)) >= now_s
    }
}

/// Checks a request's Period.
pub fn validate_period(period_s: i64) -> Result<u64, MetricsError> {
    if period_s < 1 {
        return Err(MetricsError::invalid(
            "The parameter Period must be greater than 0.",
        ));
    }
    let p = period_s as u64;
    if !p.is_multiple_of(60) && !SUB_MINUTE_PERIODS.contains(&p) {
        return Err(MetricsError::invalid(
            "The parameter Period must be 1, 5, 10, 20, 30, or a multiple of 60.",
        ));
    }
    Ok(p)
}

/// Checks that the range is not empty or reversed.
pub fn validate_range(start_ms: i64, end_ms: i64) -> Result<(), MetricsError> {
    if start_ms >= end_ms {
        return Err(MetricsError::invalid(
            "The parameter StartTime must be less than the parameter EndTime.",
        ));
    }
    Ok(())
}

/// The start as CloudWatch rounds it (see the module doc).
pub fn rounded_start_s(start_ms: i64, period_s: u64, now_ms: i64) -> u64 {
    let start_s = (start_ms.max(0) / 1000) as u64;
    let granule = if period_s < 60 {
        period_s
    } else {
        let age_s = (now_ms.saturating_sub(start_ms).max(0) / 1000) as u64;
        if age_s > 63 * DAY_S {
            3600
        } else if age_s > 15 * DAY_S {
            300
        } else {
            60
        }
    };
    start_s / granule * granule
}

/// The periods of a request and the tier that answers each.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub start_s: u64,
    pub end_ms: i64,
    pub period_s: u64,
    /// One per period, in time order: its start and its source.
    pub periods: Vec<(u64, Option<Tier>)>,
}

impl Plan {
    /// How many periods `[start, end)` spans at `period_s` after rounding.
    pub fn count(start_ms: i64, end_ms: i64, period_s: u64, now_ms: i64) -> u64 {
        let start_ms_rounded =
            (rounded_start_s(start_ms, period_s, now_ms) as i64).saturating_mul(1000);
        let span = end_ms.saturating_sub(start_ms_rounded).max(0) as u64;
        span.div_ceil(period_s.saturating_mul(1000).max(1))
    }

    /// The plan of a validated request. `max_periods` bounds the work (the
    /// caller's datapoint limit).
    pub fn new(
        start_ms: i64,
        end_ms: i64,
        period_s: u64,
        now_ms: i64,
        retention: &Retention,
        max_periods: u64,
    ) -> Plan {
        let start_s = rounded_start_s(start_ms, period_s, now_ms);
        let n = Plan::count(start_ms, end_ms, period_s, now_ms).min(max_periods);
        let now_s = (now_ms.max(0) / 1000) as u64;
        let periods = (0..n)
            .map(|k| {
                let at = start_s.saturating_add(k.saturating_mul(period_s));
                (at, source_tier(at, period_s, now_s, retention))
            })
            .collect();
        Plan {
            start_s,
            end_ms,
            period_s,
            periods,
        }
    }

    /// Runs of consecutive periods answered by one tier: (tier, from, to) in seconds.
    pub fn runs(&self) -> Vec<(Tier, u64, u64)> {
        let mut runs: Vec<(Tier, u64, u64)> = Vec::new();
        for &(at, tier) in &self.periods {
            let Some(tier) = tier else { continue };
            let to = at.saturating_add(self.period_s);
            match runs.last_mut() {
                Some(last) if last.0 == tier && last.2 == at => last.2 = to,
                _ => runs.push((tier, at, to)),
            }
        }
        runs
    }

    /// The start of period `k` in epoch milliseconds.
    pub fn period_start_ms(&self, k: usize) -> i64 {
        let s = self
            .start_s
            .saturating_add((k as u64).saturating_mul(self.period_s));
        (s.min(i64::MAX as u64 / 1000) as i64) * 1000
    }

    /// The period holding `time_s`, if the request covers it.
    pub fn period_index(&self, time_s: u64) -> Option<usize> {
        if time_s < self.start_s || (time_s as i128) * 1000 >= self.end_ms as i128 {
            return None;
        }
        let k = ((time_s - self.start_s) / self.period_s) as usize;
        (k < self.periods.len()).then_some(k)
    }
}

/// The finest tier that keeps `period_start_s` and divides the period.
fn source_tier(
    period_start_s: u64,
    period_s: u64,
    now_s: u64,
    retention: &Retention,
) -> Option<Tier> {
    Tier::ALL.into_iter().find(|&tier| {
        period_s.is_multiple_of(tier.slot_s()) && retention.keeps(tier, period_start_s, now_s)
    })
}

/// What one period gathers while blocks are read.
#[derive(Debug, Clone)]
pub(crate) struct PeriodAccumulator {
    count: f64,
    sum: f64,
    min: f64,
    max: f64,
    /// The percentile family is still available.
    percentiles: bool,
    exact: Vec<(f64, f64)>,
    sketch: Sketch,
    from_rollup: bool,
}

impl Default for PeriodAccumulator {
    fn default() -> Self {
        PeriodAccumulator {
            count: 0.0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            percentiles: true,
            exact: Vec::new(),
            sketch: Sketch::default(),
            from_rollup: false,
        }
    }
}

impl PeriodAccumulator {
    pub fn is_empty(&self) -> bool {
        self.count <= 0.0
    }

    pub fn add_value(&mut self, value: f64, count: f64) {
        self.count += count;
        self.sum += value * count;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        if value < 0.0 {
            self.percentiles = false;
        }
        if self.percentiles {
            self.exact.push((value, count));
        }
    }

    pub fn add_set(&mut self, set: &SetStats) {
        self.count += set.count;
        self.sum += set.sum;
        self.min = self.min.min(set.min);
        self.max = self.max.max(set.max);
        self.percentiles = false;
    }

    pub fn add_slot(&mut self, slot: &Slot) {
        self.count += slot.count;
        self.sum += slot.sum;
        self.min = self.min.min(slot.min);
        self.max = self.max.max(slot.max);
        self.from_rollup = true;
        match &slot.sketch {
            Some(s) if self.percentiles => self.sketch.merge(s),
            _ => self.percentiles = false,
        }
    }

    pub fn finish(mut self) -> PeriodAggregate {
        let distribution = if !self.percentiles {
            None
        } else if self.from_rollup {
            Some(self.sketch.entries().collect())
        } else {
            self.exact.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut merged: Vec<(f64, f64)> = Vec::with_capacity(self.exact.len());
            for (v, c) in self.exact {
                match merged.last_mut() {
                    Some(last) if last.0 == v => last.1 += c,
                    _ => merged.push((v, c)),
                }
            }
            Some(merged)
        };
        PeriodAggregate {
            count: self.count,
            sum: self.sum,
            min: self.min,
            max: self.max,
            distribution,
            estimated: self.from_rollup,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: i64 = 1_700_000_000_000;
    const HOUR_MS: i64 = 3_600_000;
    const DAY_MS: i64 = 24 * HOUR_MS;

    #[test]
    fn periods() {
        for ok in [1, 5, 10, 20, 30, 60, 120, 300, 3600, 86_400] {
            assert_eq!(validate_period(ok).unwrap(), ok as u64);
        }
        for bad in [0, -60, 2, 45, 61, 90] {
            assert_eq!(
                validate_period(bad).unwrap_err().code(),
                "InvalidParameterValue"
            );
        }
        let e = validate_range(5, 5).unwrap_err();
        assert_eq!(
            e.message(),
            "The parameter StartTime must be less than the parameter EndTime."
        );
    }

    #[test]
    fn start_rounding_follows_age() {
        let at = |age_ms: i64| NOW_MS - age_ms;
        // 12:32:34 style offsets inside an hour.
        let base = (NOW_MS / HOUR_MS) * HOUR_MS - 10 * DAY_MS;
        let t = base + 32 * 60_000 + 34_000;
        assert_eq!(
            rounded_start_s(t, 60, NOW_MS) as i64 * 1000,
            base + 32 * 60_000
        );
        assert_eq!(
            rounded_start_s(t, 10, NOW_MS) as i64 * 1000,
            base + 32 * 60_000 + 30_000
        );
        assert_eq!(rounded_start_s(t, 1, NOW_MS) as i64 * 1000, t);
        let t20 = t - 10 * DAY_MS;
        assert_eq!(
            rounded_start_s(t20, 300, NOW_MS) as i64 * 1000,
            base - 10 * DAY_MS + 30 * 60_000
        );
        let t70 = t - 60 * DAY_MS;
        assert_eq!(
            rounded_start_s(t70, 3600, NOW_MS) as i64 * 1000,
            base - 60 * DAY_MS
        );
        assert_eq!(rounded_start_s(at(0), 60, NOW_MS) % 60, 0);
    }

    #[test]
    fn datapoint_count_matches_cloudwatch() {
        let start = (NOW_MS / DAY_MS) * DAY_MS - DAY_MS;
        assert_eq!(Plan::count(start, start + DAY_MS, 1, NOW_MS), 86_400);
        assert_eq!(Plan::count(start, start + DAY_MS, 60, NOW_MS), 1440);
        assert_eq!(Plan::count(start, start + DAY_MS + 1, 60, NOW_MS), 1441);
    }

    #[test]
    fn each_period_takes_the_finest_tier_that_has_it() {
        let r = Retention::default();
        let src = |age_ms: i64, period: u64| {
            let start = NOW_MS - age_ms;
            let plan = Plan::new(start, start + period as i64 * 1000, period, NOW_MS, &r, 10);
            plan.periods[0].1
        };
        assert_eq!(src(HOUR_MS, 1), Some(Tier::Raw));
        assert_eq!(src(HOUR_MS, 60), Some(Tier::Raw));
        assert_eq!(src(4 * HOUR_MS, 10), None);
        assert_eq!(src(4 * HOUR_MS, 60), Some(Tier::Minute));
        assert_eq!(src(20 * DAY_MS, 60), None);
        assert_eq!(src(20 * DAY_MS, 600), Some(Tier::FiveMinute));
        assert_eq!(src(70 * DAY_MS, 300), None);
        assert_eq!(src(70 * DAY_MS, 7200), Some(Tier::Hour));
        assert_eq!(src(500 * DAY_MS, 3600), None);
        // A longer raw retention keeps fine periods answerable.
        let long = Retention {
            raw_s: 30 * 86_400,
            ..r
        };
        let start = NOW_MS - 20 * DAY_MS;
        let plan = Plan::new(start, start + 5000, 5, NOW_MS, &long, 10);
        assert_eq!(plan.periods[0].1, Some(Tier::Raw));
    }

    #[test]
    fn runs_group_periods_by_tier() {
        let r = Retention::default();
        let start = NOW_MS - 5 * HOUR_MS;
        let plan = Plan::new(start, NOW_MS, 3600, NOW_MS, &r, 1440);
        let runs = plan.runs();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].0, Tier::Minute);
        assert_eq!(runs[1].0, Tier::Raw);
        assert_eq!(runs[0].2, runs[1].1);
    }
}

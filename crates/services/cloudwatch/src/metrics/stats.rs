//! The statistics CloudWatch computes over a period's data, parsed from
//! their request syntax and computed from a period's aggregate.
//!
//! SampleCount, Sum, Average, Minimum and Maximum come from the running
//! aggregates every stored form keeps. The percentile family (`pNN.NN`;
//! `tmNN`/`TM(a:b)` trimmed mean; `wmNN`/`WM(a:b)` winsorized mean;
//! `tcNN`/`TC(a:b)` trimmed count; `tsNN`/`TS(a:b)` trimmed sum;
//! `PR(a:b)` percentile rank; `IQM`, the interquartile mean) needs the
//! values themselves, as a sorted list of (value, weight): exact from raw
//! data, estimated from a sketch once only roll-ups are left. It is
//! unavailable (None) for a period holding a statistic set that does not
//! stand for raw values, or any negative value, as in CloudWatch.
//!
//! Definitions, with the values sorted and W their total weight:
//! - `pP` is the nearest-rank percentile: the smallest value with at least
//!   P% of the weight at or below it (p0 is the minimum, p100 the maximum).
//!   So p99 is the largest value left once the highest 1% are dropped, as
//!   CloudWatch's guide puts it.
//! - A percentage range `(a%:b%)` keeps the positions in
//!   `(floor(aW/100), ceil(bW/100)]`: it drops the lowest a% and the highest
//!   (100-b)% of the data points, so `tm99` averages what `p99` tops.
//!   A one-number form (`tm90`) is `(:90%)`.
//! - A value range `(a:b)` keeps the values v with `a < v <= b` (lower bound
//!   exclusive, upper inclusive; either may be left out).
//! - WM replaces what a percentage range drops by the nearest value it
//!   keeps (by the bound itself for a value range), then averages all.
//! - TC counts and TS sums what the range keeps; TM is TS/TC.
//! - PR is the percentage of the weight with `a < v <= b`; its bounds are
//!   values, never percentages.

use super::error::MetricsError;

/// A range of a trimmed statistic or a percentile rank.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// Percentages of the data points, or else values.
    pub percent: bool,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Statistic {
    SampleCount,
    Sum,
    Average,
    Minimum,
    Maximum,
    Percentile(f64),
    TrimmedMean(Bounds),
    WinsorizedMean(Bounds),
    TrimmedCount(Bounds),
    TrimmedSum(Bounds),
    PercentileRank(Bounds),
    InterquartileMean,
}

/// The most decimal places a percentage or bound may carry.
const MAX_DECIMALS: usize = 10;

impl Statistic {
    /// One of the five statistics of GetMetricStatistics' `Statistics`.
    pub fn parse_basic(name: &str) -> Option<Statistic> {
        Some(match name {
            "SampleCount" => Statistic::SampleCount,
            "Sum" => Statistic::Sum,
            "Average" => Statistic::Average,
            "Minimum" => Statistic::Minimum,
            "Maximum" => Statistic::Maximum,
            _ => return None,
        })
    }

    /// An extended statistic (percentile family), in CloudWatch's syntax.
    pub fn parse_extended(name: &str) -> Option<Statistic> {
        if name == "IQM" {
            return Some(Statistic::InterquartileMean);
        }
        if let Some(open) = name.find('(') {
            let body = name[open + 1..].strip_suffix(')')?;
            let make: fn(Bounds) -> Statistic = match &name[..open] {
                "TM" => Statistic::TrimmedMean,
                "WM" => Statistic::WinsorizedMean,
                "TC" => Statistic::TrimmedCount,
                "TS" => Statistic::TrimmedSum,
                "PR" => Statistic::PercentileRank,
                _ => return None,
            };
            let bounds = parse_bounds(body)?;
            if bounds.percent && name.starts_with("PR") {
                return None;
            }
            return Some(make(bounds));
        }
        // The short forms take one percentage, lower case only.
        let split = name.find(|c: char| !c.is_ascii_lowercase())?;
        let percent = parse_number(&name[split..], false)?;
        if !(0.0..=100.0).contains(&percent) {
            return None;
        }
        let upto = Bounds {
            percent: true,
            lower: None,
            upper: Some(percent),
        };
        Some(match &name[..split] {
            "p" => Statistic::Percentile(percent),
            "tm" => Statistic::TrimmedMean(upto),
            "wm" => Statistic::WinsorizedMean(upto),
            "tc" => Statistic::TrimmedCount(upto),
            "ts" => Statistic::TrimmedSum(upto),
            _ => return None,
        })
    }

    /// Any statistic GetMetricData's `Stat` or an alarm's may name.
    pub fn parse(name: &str) -> Option<Statistic> {
        Statistic::parse_basic(name).or_else(|| Statistic::parse_extended(name))
    }

    /// Whether the statistic needs the values (is unavailable over
    /// aggregate-only or negative data).
    pub fn needs_values(&self) -> bool {
        !matches!(
            self,
            Statistic::SampleCount
                | Statistic::Sum
                | Statistic::Average
                | Statistic::Minimum
                | Statistic::Maximum
        )
    }
}

/// Parses GetMetricStatistics' `Statistics` and `ExtendedStatistics`,
/// answering invalid names as CloudWatch does.
pub fn parse_requested(
    statistics: &[String],
    extended: &[String],
) -> Result<Vec<Statistic>, MetricsError> {
    if statistics.is_empty() && extended.is_empty() {
        return Err(MetricsError::missing("Statistics or ExtendedStatistics"));
    }
    if statistics.len() > 5 {
        return Err(MetricsError::invalid(
            "The collection Statistics must not have a size greater than 5.",
        ));
    }
    if extended.len() > 10 {
        return Err(MetricsError::invalid(
            "The collection ExtendedStatistics must not have a size greater than 10.",
        ));
    }
    let mut out = Vec::with_capacity(statistics.len() + extended.len());
    for (i, s) in statistics.iter().enumerate() {
        out.push(Statistic::parse_basic(s).ok_or_else(|| {
            MetricsError::invalid(format!(
                "The parameter Statistics.member.{} must be a value in the set [ SampleCount, Average, Sum, Minimum, Maximum ].",
                i + 1
            ))
        })?);
    }
    for s in extended {
        out.push(Statistic::parse_extended(s).ok_or_else(|| {
            MetricsError::invalid(format!(
                "The value {s} for parameter ExtendedStatistics is not supported."
            ))
        })?);
    }
    Ok(out)
}

fn parse_bounds(body: &str) -> Option<Bounds> {
    let (lo, hi) = body.split_once(':')?;
    let side = |text: &str| -> Option<(Option<f64>, Option<bool>)> {
        if text.is_empty() {
            return Some((None, None));
        }
        match text.strip_suffix('%') {
            Some(p) => {
                let v = parse_number(p, false)?;
                (0.0..=100.0).contains(&v).then_some((Some(v), Some(true)))
            }
            None => Some((Some(parse_number(text, true)?), Some(false))),
        }
    };
    let (lower, lower_percent) = side(lo)?;
    let (upper, upper_percent) = side(hi)?;
    let percent = match (lower_percent, upper_percent) {
        (None, None) => return None,
        (Some(a), Some(b)) if a != b => return None,
        (Some(p), _) | (_, Some(p)) => p,
    };
    if let (Some(l), Some(u)) = (lower, upper) {
        if l >= u {
            return None;
        }
    }
    Some(Bounds {
        percent,
        lower,
        upper,
    })
}

/// A plain decimal: digits, an optional fraction of at most ten digits,
/// and a leading minus only where allowed. No exponents, no spaces.
fn parse_number(text: &str, signed: bool) -> Option<f64> {
    let unsigned = match text.strip_prefix('-') {
        Some(rest) if signed => rest,
        Some(_) => return None,
        None => text,
    };
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (unsigned, None),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if let Some(f) = fraction {
        if f.is_empty() || f.len() > MAX_DECIMALS || !f.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    text.parse().ok()
}

/// What one period holds, as every stored form can give it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeriodAggregate {
    pub count: f64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    /// The values and their weights sorted by value, equal values merged;
    /// None when the percentile family is unavailable for the period.
    pub distribution: Option<Vec<(f64, f64)>>,
    /// Whether the distribution is estimated from a sketch.
    pub estimated: bool,
}

impl PeriodAggregate {
    pub fn value(&self, stat: &Statistic) -> Option<f64> {
        if self.count <= 0.0 {
            return None;
        }
        match stat {
            Statistic::SampleCount => Some(self.count),
            Statistic::Sum => Some(self.sum),
            Statistic::Average => Some(self.sum / self.count),
            Statistic::Minimum => Some(self.min),
            Statistic::Maximum => Some(self.max),
            _ => {
                let d = Distribution::new(self.distribution.as_deref()?)?;
                let v = d.statistic(stat)?;
                // Estimates never leave the period's exact range.
                Some(match stat {
                    Statistic::Percentile(_)
                    | Statistic::TrimmedMean(_)
                    | Statistic::WinsorizedMean(_)
                    | Statistic::InterquartileMean => v.clamp(self.min, self.max),
                    _ => v,
                })
            }
        }
    }
}

/// Sorted (value, weight) pairs with their total weight.
struct Distribution<'a> {
    entries: &'a [(f64, f64)],
    total: f64,
}

/// Rounds a position that float arithmetic left a hair off a whole number
/// (0.07 × 100 is 7.000000000000001), so it does not skip a data point.
fn snap(x: f64) -> f64 {
    let r = x.round();
    if (x - r).abs() <= 1e-9 * x.abs().max(1.0) {
        r
    } else {
        x
    }
}

impl<'a> Distribution<'a> {
    fn new(entries: &'a [(f64, f64)]) -> Option<Self> {
        let total: f64 = entries.iter().map(|e| e.1).sum();
        (total > 0.0).then_some(Distribution { entries, total })
    }

    fn statistic(&self, stat: &Statistic) -> Option<f64> {
        match *stat {
            Statistic::Percentile(p) => self.percentile(p),
            Statistic::TrimmedMean(b) => {
                let (weight, sum) = self.kept(&b);
                (weight > 0.0).then(|| sum / weight)
            }
            Statistic::InterquartileMean => {
                let (weight, sum) = self.kept(&Bounds {
                    percent: true,
                    lower: Some(25.0),
                    upper: Some(75.0),
                });
                (weight > 0.0).then(|| sum / weight)
            }
            Statistic::TrimmedCount(b) => Some(self.kept(&b).0),
            Statistic::TrimmedSum(b) => Some(self.kept(&b).1),
            Statistic::WinsorizedMean(b) => Some(self.winsorized(&b)),
            Statistic::PercentileRank(b) => {
                let inside: f64 = self
                    .entries
                    .iter()
                    .filter(|(v, _)| in_value_range(*v, &b))
                    .map(|(_, w)| w)
                    .sum();
                Some(100.0 * inside / self.total)
            }
            _ => None,
        }
    }

    /// The value holding position `rank` (the first whose cumulative weight
    /// reaches it); the smallest value for rank 0.
    fn value_at(&self, rank: f64) -> Option<f64> {
        let mut cumulative = 0.0;
        for &(v, w) in self.entries {
            cumulative += w;
            if cumulative >= rank {
                return Some(v);
            }
        }
        self.entries.last().map(|e| e.0)
    }

    /// The value just after position `rank` (the first whose cumulative
    /// weight passes it).
    fn value_after(&self, rank: f64) -> Option<f64> {
        let mut cumulative = 0.0;
        for &(v, w) in self.entries {
            cumulative += w;
            if cumulative > rank {
                return Some(v);
            }
        }
        self.entries.last().map(|e| e.0)
    }

    fn percentile(&self, p: f64) -> Option<f64> {
        self.value_at(snap(p * self.total / 100.0))
    }

    /// The positions a percentage range keeps: `(floor(aW/100), ceil(bW/100)]`.
    fn positions(&self, b: &Bounds) -> (f64, f64) {
        let lower = b
            .lower
            .map_or(0.0, |a| snap(a * self.total / 100.0).floor());
        let upper = b
            .upper
            .map_or(self.total, |u| snap(u * self.total / 100.0).ceil());
        (lower.max(0.0), upper.min(self.total))
    }

    /// Weight and weighted sum of what a range keeps.
    fn kept(&self, b: &Bounds) -> (f64, f64) {
        if !b.percent {
            return self
                .entries
                .iter()
                .filter(|(v, _)| in_value_range(*v, b))
                .fold((0.0, 0.0), |(w, s), &(v, x)| (w + x, s + v * x));
        }
        let (lower, upper) = self.positions(b);
        let mut weight = 0.0;
        let mut sum = 0.0;
        let mut start = 0.0;
        for &(v, w) in self.entries {
            let end = start + w;
            // The part of this value's positions (start, end] inside (lower, upper].
            let overlap = end.min(upper) - start.max(lower);
            if overlap > 0.0 {
                weight += overlap;
                sum += overlap * v;
            }
            start = end;
        }
        (weight, sum)
    }

    fn winsorized(&self, b: &Bounds) -> f64 {
        if !b.percent {
            let lo = b.lower.unwrap_or(f64::NEG_INFINITY);
            let hi = b.upper.unwrap_or(f64::INFINITY);
            let sum: f64 = self.entries.iter().map(|&(v, w)| v.clamp(lo, hi) * w).sum();
            return sum / self.total;
        }
        let (lower, upper) = self.positions(b);
        let (_, kept_sum) = self.kept(b);
        let low_edge = self.value_after(lower).unwrap_or(0.0);
        let high_edge = if upper > 0.0 {
            self.value_at(upper).unwrap_or(0.0)
        } else {
            low_edge
        };
        (lower * low_edge + kept_sum + (self.total - upper) * high_edge) / self.total
    }
}

fn in_value_range(v: f64, b: &Bounds) -> bool {
    b.lower.is_none_or(|lo| v > lo) && b.upper.is_none_or(|hi| v <= hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(percent: bool, lower: Option<f64>, upper: Option<f64>) -> Bounds {
        Bounds {
            percent,
            lower,
            upper,
        }
    }

    #[test]
    fn parses_cloudwatch_syntax() {
        use Statistic::*;
        assert_eq!(Statistic::parse("Average"), Some(Average));
        assert_eq!(Statistic::parse("p99"), Some(Percentile(99.0)));
        assert_eq!(Statistic::parse("p99.99"), Some(Percentile(99.99)));
        assert_eq!(Statistic::parse("p0.0"), Some(Percentile(0.0)));
        assert_eq!(Statistic::parse("p100"), Some(Percentile(100.0)));
        assert_eq!(
            Statistic::parse("tm90"),
            Some(TrimmedMean(bounds(true, None, Some(90.0))))
        );
        assert_eq!(
            Statistic::parse("TM(2%:98%)"),
            Some(TrimmedMean(bounds(true, Some(2.0), Some(98.0))))
        );
        assert_eq!(
            Statistic::parse("TM(150:1000)"),
            Some(TrimmedMean(bounds(false, Some(150.0), Some(1000.0))))
        );
        assert_eq!(
            Statistic::parse("TS(80%:)"),
            Some(TrimmedSum(bounds(true, Some(80.0), None)))
        );
        assert_eq!(
            Statistic::parse("TC(:0.5)"),
            Some(TrimmedCount(bounds(false, None, Some(0.5))))
        );
        assert_eq!(
            Statistic::parse("TC(0.005:0.030)"),
            Some(TrimmedCount(bounds(false, Some(0.005), Some(0.03))))
        );
        assert_eq!(
            Statistic::parse("WM(10%:90%)"),
            Some(WinsorizedMean(bounds(true, Some(10.0), Some(90.0))))
        );
        assert_eq!(
            Statistic::parse("wm98"),
            Some(WinsorizedMean(bounds(true, None, Some(98.0))))
        );
        assert_eq!(
            Statistic::parse("PR(:300)"),
            Some(PercentileRank(bounds(false, None, Some(300.0))))
        );
        assert_eq!(
            Statistic::parse("PR(-5:2000)"),
            Some(PercentileRank(bounds(false, Some(-5.0), Some(2000.0))))
        );
        assert_eq!(Statistic::parse("IQM"), Some(InterquartileMean));
        assert_eq!(
            Statistic::parse("tc99.5"),
            Some(TrimmedCount(bounds(true, None, Some(99.5))))
        );
        assert_eq!(
            Statistic::parse("ts90"),
            Some(TrimmedSum(bounds(true, None, Some(90.0))))
        );
        for bad in [
            "p101",
            "p-1",
            "P99",
            "p",
            "p99.",
            "p1e2",
            "TM90",
            "tm(10%:90%)",
            "TM(10%:90)",
            "TM(:)",
            "TM(90%:10%)",
            "TM(5:5)",
            "PR(10%:20%)",
            "pr50",
            "TM(10%:90%",
            "IQR",
            "p99.12345678901",
            "average",
            "TM(101%:)",
            "XX(1:2)",
            "tm-5",
        ] {
            assert_eq!(Statistic::parse(bad), None, "{bad}");
        }
        assert!(Statistic::parse("p99.1234567890").is_some());
    }

    #[test]
    fn requested_statistics_are_checked() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_requested(&s(&["Sum", "Maximum"]), &s(&["p99"])).unwrap(),
            vec![
                Statistic::Sum,
                Statistic::Maximum,
                Statistic::Percentile(99.0)
            ]
        );
        let e = parse_requested(&s(&["Sum", "Median"]), &[]).unwrap_err();
        assert_eq!(e.code(), "InvalidParameterValue");
        assert!(e
            .message()
            .starts_with("The parameter Statistics.member.2 must be"));
        let e = parse_requested(&[], &s(&["p101"])).unwrap_err();
        assert_eq!(
            e.message(),
            "The value p101 for parameter ExtendedStatistics is not supported."
        );
        assert_eq!(
            parse_requested(&[], &[]).unwrap_err().code(),
            "MissingParameter"
        );
    }

    /// The data expanded into one entry per data point, sorted.
    fn expand(entries: &[(f64, f64)]) -> Vec<f64> {
        let mut out = Vec::new();
        for &(v, w) in entries {
            for _ in 0..(w as usize) {
                out.push(v);
            }
        }
        out.sort_by(f64::total_cmp);
        out
    }

    fn aggregate(points: &[f64]) -> PeriodAggregate {
        let mut sorted = points.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mut distribution: Vec<(f64, f64)> = Vec::new();
        for v in sorted {
            match distribution.last_mut() {
                Some(last) if last.0 == v => last.1 += 1.0,
                _ => distribution.push((v, 1.0)),
            }
        }
        PeriodAggregate {
            count: points.len() as f64,
            sum: points.iter().sum(),
            min: points.iter().cloned().fold(f64::INFINITY, f64::min),
            max: points.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
            distribution: Some(distribution),
            estimated: false,
        }
    }

    // The definitions written out over a plain sorted list, as a reader of
    // CloudWatch's guide would compute them by hand.
    fn by_hand_percentile(sorted: &[f64], p: f64) -> f64 {
        let n = sorted.len();
        let rank = ((p / 100.0) * n as f64 - 1e-9).ceil().max(1.0) as usize;
        sorted[rank.min(n) - 1]
    }

    fn by_hand_kept_percent(sorted: &[f64], a: f64, b: f64) -> Vec<f64> {
        let n = sorted.len() as f64;
        let drop_low = (a / 100.0 * n + 1e-9).floor() as usize;
        let keep_to = ((b / 100.0 * n) - 1e-9).ceil() as usize;
        sorted[drop_low..keep_to.max(drop_low)].to_vec()
    }

    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len() as f64
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn every_statistic_matches_a_hand_computation() {
        // A skewed sample with ties, 1..=200 plus repeats and outliers.
        let mut points: Vec<f64> = (1..=200).map(|i| (i * 7 % 193) as f64 + 0.5).collect();
        points.extend([3.5, 3.5, 3.5, 900.0, 1000.0, 0.0]);
        let agg = aggregate(&points);
        let sorted = expand(agg.distribution.as_ref().unwrap());
        let n = sorted.len() as f64;
        let v = |s: &str| agg.value(&Statistic::parse(s).unwrap()).unwrap();

        assert_eq!(v("SampleCount"), n);
        assert!(close(v("Sum"), sorted.iter().sum()));
        assert!(close(v("Average"), mean(&sorted)));
        assert_eq!(v("Minimum"), sorted[0]);
        assert_eq!(v("Maximum"), *sorted.last().unwrap());

        for p in [
            0.0, 0.5, 1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.5, 99.0, 99.9, 100.0,
        ] {
            let want = if p == 0.0 {
                sorted[0]
            } else {
                by_hand_percentile(&sorted, p)
            };
            assert_eq!(v(&format!("p{p}")), want, "p{p}");
        }

        for (a, b) in [
            (0.0, 90.0),
            (10.0, 90.0),
            (2.0, 98.0),
            (25.0, 75.0),
            (33.3, 100.0),
        ] {
            let kept = by_hand_kept_percent(&sorted, a, b);
            let name = format!("TM({a}%:{b}%)");
            assert!(close(v(&name), mean(&kept)), "{name}");
            assert_eq!(v(&format!("TC({a}%:{b}%)")), kept.len() as f64);
            assert!(close(v(&format!("TS({a}%:{b}%)")), kept.iter().sum()));
            // Winsorized: the dropped points take the nearest kept value.
            let low = (a / 100.0 * n + 1e-9).floor() as usize;
            let high = sorted.len() - kept.len() - low;
            let mut w = vec![kept[0]; low];
            w.extend(&kept);
            w.extend(vec![*kept.last().unwrap(); high]);
            assert!(close(v(&format!("WM({a}%:{b}%)")), mean(&w)), "WM {a} {b}");
        }
        let kept = by_hand_kept_percent(&sorted, 0.0, 90.0);
        assert!(close(v("tm90"), mean(&kept)));
        assert_eq!(v("tc90"), kept.len() as f64);
        assert!(close(v("ts90"), kept.iter().sum()));
        assert!(close(
            v("IQM"),
            mean(&by_hand_kept_percent(&sorted, 25.0, 75.0))
        ));
        // tm99 averages exactly the points p99 is the top of.
        let kept99 = by_hand_kept_percent(&sorted, 0.0, 99.0);
        assert_eq!(*kept99.last().unwrap(), v("p99"));

        // Value ranges: lower exclusive, upper inclusive.
        let inside: Vec<f64> = sorted
            .iter()
            .cloned()
            .filter(|&x| x > 3.5 && x <= 100.5)
            .collect();
        assert!(close(v("TM(3.5:100.5)"), mean(&inside)));
        assert_eq!(v("TC(3.5:100.5)"), inside.len() as f64);
        assert!(close(v("TS(3.5:100.5)"), inside.iter().sum()));
        assert!(close(v("PR(3.5:100.5)"), 100.0 * inside.len() as f64 / n));
        let below: Vec<f64> = sorted.iter().cloned().filter(|&x| x <= 300.0).collect();
        assert!(close(v("PR(:300)"), 100.0 * below.len() as f64 / n));
        let clamped: Vec<f64> = sorted.iter().map(|x| x.clamp(10.0, 150.0)).collect();
        assert!(close(v("WM(10:150)"), mean(&clamped)));
    }

    #[test]
    fn small_samples() {
        let agg = aggregate(&[1.0, 2.0, 3.0, 4.0]);
        let v = |s: &str| agg.value(&Statistic::parse(s).unwrap());
        assert_eq!(v("p50"), Some(2.0));
        assert_eq!(v("p51"), Some(3.0));
        assert_eq!(v("p25"), Some(1.0));
        assert_eq!(v("p0"), Some(1.0));
        assert_eq!(v("p100"), Some(4.0));
        assert_eq!(v("tm75"), Some(2.0));
        assert_eq!(v("TM(25%:75%)"), Some(2.5));
        assert_eq!(v("IQM"), Some(2.5));
        // Nothing between the bounds: no mean, zero count and sum.
        assert_eq!(v("TM(10:20)"), None);
        assert_eq!(v("TC(10:20)"), Some(0.0));
        assert_eq!(v("TS(10:20)"), Some(0.0));
        assert_eq!(v("PR(10:20)"), Some(0.0));
        let one = aggregate(&[7.0]);
        for s in ["p1", "p50", "p99", "tm99", "wm50", "IQM", "TM(1%:99%)"] {
            assert_eq!(one.value(&Statistic::parse(s).unwrap()), Some(7.0), "{s}");
        }
    }

    #[test]
    fn weights_act_as_repeated_points() {
        let weighted = PeriodAggregate {
            count: 6.0,
            sum: 42.0,
            min: 1.0,
            max: 10.0,
            distribution: Some(vec![(1.0, 2.0), (10.0, 4.0)]),
            estimated: false,
        };
        let expanded = aggregate(&[1.0, 1.0, 10.0, 10.0, 10.0, 10.0]);
        for s in [
            "p10",
            "p33.3",
            "p34",
            "p50",
            "tm50",
            "TM(20%:80%)",
            "WM(20%:80%)",
            "PR(1:10)",
            "tc40",
        ] {
            let stat = Statistic::parse(s).unwrap();
            assert_eq!(weighted.value(&stat), expanded.value(&stat), "{s}");
        }
    }

    #[test]
    fn unavailable_without_values() {
        let agg = PeriodAggregate {
            count: 10.0,
            sum: 55.0,
            min: 1.0,
            max: 10.0,
            distribution: None,
            estimated: false,
        };
        assert_eq!(agg.value(&Statistic::Average), Some(5.5));
        assert_eq!(agg.value(&Statistic::Percentile(50.0)), None);
        assert_eq!(agg.value(&Statistic::InterquartileMean), None);
        assert_eq!(PeriodAggregate::default().value(&Statistic::Sum), None);
    }
}

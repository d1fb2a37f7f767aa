//! PutMetricData's input as the handler decodes it, and its validation into
//! samples ready to store: every rule CloudWatch applies to a datum (one of
//! Value, Values+Counts or StatisticValues; values within ±2^360 and not
//! NaN or infinite; up to 150 values, 30 dimensions, 1000 datums; a
//! timestamp at most two weeks old and two hours ahead; StorageResolution 1
//! or 60), answered with CloudWatch's codes and messages. A request either
//! passes whole or stores nothing. Where one rule fails for several datums,
//! the messages of that error are joined line by line, as CloudWatch does.

use super::error::MetricsError;
use super::identity::{
    Dimension, MetricIdentity, Unit, MAX_DIMENSIONS, MAX_DIMENSION_VALUE_LEN, MAX_NAME_LEN,
};

/// The most datums one PutMetricData call may carry (MetricData and
/// EntityMetricData together).
pub const MAX_DATUMS_PER_CALL: usize = 1000;
/// The most values (and counts) one datum may carry.
pub const MAX_VALUES_PER_DATUM: usize = 150;
/// How far back a datum's timestamp may lie.
pub const MAX_PAST_MS: i64 = 14 * 24 * 3600 * 1000;
/// How far ahead a datum's timestamp may lie.
pub const MAX_FUTURE_MS: i64 = 2 * 3600 * 1000;

/// 2^360: CloudWatch rejects values of larger magnitude, and non-zero
/// values of smaller magnitude than its inverse.
const VALUE_LIMIT: f64 = 2.348_542_582_773_833_2e108;

/// Who publishes: a client may not use the `AWS/` namespaces, which belong
/// to the services (nimbus's own collectors publish there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publisher {
    Client,
    Service,
}

/// One `Dimension` of a request; absent members are reported as missing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DimensionInput {
    pub name: Option<String>,
    pub value: Option<String>,
}

impl DimensionInput {
    pub fn new(name: &str, value: &str) -> Self {
        DimensionInput {
            name: Some(name.to_string()),
            value: Some(value.to_string()),
        }
    }
}

/// A `StatisticSet`; all four members are required.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatisticSetInput {
    pub sample_count: Option<f64>,
    pub sum: Option<f64>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
}

/// One `MetricDatum` of a PutMetricData request, as decoded from the wire.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricDatum {
    pub metric_name: Option<String>,
    pub dimensions: Vec<DimensionInput>,
    /// Milliseconds since the epoch; the time of the call when absent.
    pub timestamp_ms: Option<i64>,
    pub value: Option<f64>,
    pub statistic_values: Option<StatisticSetInput>,
    pub values: Option<Vec<f64>>,
    pub counts: Option<Vec<f64>>,
    /// The unit's wire name; `None` when absent.
    pub unit: Option<String>,
    pub storage_resolution: Option<i64>,
}

impl MetricDatum {
    /// A single value now, the commonest datum.
    pub fn value(metric_name: &str, value: f64) -> Self {
        MetricDatum {
            metric_name: Some(metric_name.to_string()),
            value: Some(value),
            ..Default::default()
        }
    }
}

/// A statistic set that does not stand for raw values: it adds to the
/// count, sum, minimum and maximum but makes percentiles unavailable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SetStats {
    pub count: f64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

/// What a datum adds to its series.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// Raw values, each with the number of times it occurred (> 0).
    Values(Vec<(f64, f64)>),
    Set(SetStats),
}

/// A validated datum: which series, when (whole seconds, whole minutes
/// for standard resolution), and what.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub identity: MetricIdentity,
    pub unit: Unit,
    pub time_s: u64,
    pub high_resolution: bool,
    pub payload: Payload,
}

/// Errors found so far; CloudWatch answers with the first error's code and
/// every message of that code.
#[derive(Default)]
struct Findings {
    errors: Vec<MetricsError>,
}

impl Findings {
    fn add(&mut self, e: MetricsError) {
        self.errors.push(e);
    }

    fn into_result(self) -> Result<(), MetricsError> {
        let Some(first) = self.errors.first() else {
            return Ok(());
        };
        let code = first.code();
        let message = self
            .errors
            .iter()
            .filter(|e| e.code() == code)
            .map(|e| e.message())
            .collect::<Vec<_>>()
            .join("\n");
        Err(match first {
            MetricsError::InvalidParameterValue(_) => MetricsError::InvalidParameterValue(message),
            MetricsError::InvalidParameterCombination(_) => {
                MetricsError::InvalidParameterCombination(message)
            }
            MetricsError::MissingParameter(_) => MetricsError::MissingParameter(message),
            MetricsError::Internal(_) => MetricsError::Internal(message),
        })
    }
}

/// Validates a PutMetricData request received at `now_ms` into samples.
pub fn validate_put(
    namespace: Option<&str>,
    data: &[MetricDatum],
    now_ms: i64,
    publisher: Publisher,
) -> Result<Vec<Sample>, MetricsError> {
    let namespace = validate_namespace(namespace, publisher)?;
    if data.is_empty() {
        return Err(MetricsError::missing("MetricData"));
    }
    if data.len() > MAX_DATUMS_PER_CALL {
        return Err(MetricsError::invalid(format!(
            "The collection MetricData must not have a size greater than {MAX_DATUMS_PER_CALL}."
        )));
    }
    let mut findings = Findings::default();
    let mut samples = Vec::with_capacity(data.len());
    for (i, datum) in data.iter().enumerate() {
        let path = Member(i + 1);
        if let Some(sample) = validate_datum(namespace, datum, path, now_ms, &mut findings) {
            samples.push(sample);
        }
    }
    findings.into_result()?;
    Ok(samples)
}

fn validate_namespace(namespace: Option<&str>, publisher: Publisher) -> Result<&str, MetricsError> {
    let Some(ns) = namespace else {
        return Err(MetricsError::missing("Namespace"));
    };
    check_length(ns, "Namespace", MAX_NAME_LEN)?;
    // The model's pattern `[^:].*`, and ASCII without control characters.
    if ns.starts_with(':') || !ns.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(invalid_value(ns, "Namespace"));
    }
    if publisher == Publisher::Client && ns.starts_with("AWS/") {
        return Err(invalid_value(ns, "Namespace"));
    }
    Ok(ns)
}

/// `MetricData.member.N`, written out only when a message needs it.
#[derive(Clone, Copy)]
struct Member(usize);

impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MetricData.member.{}", self.0)
    }
}

fn check_length(text: &str, path: impl std::fmt::Display, max: usize) -> Result<(), MetricsError> {
    let len = text.chars().count();
    if len == 0 || len > max {
        return Err(MetricsError::invalid(format!(
            "The parameter {path} must be between 1 and {max} characters long."
        )));
    }
    Ok(())
}

fn invalid_value(shown: impl std::fmt::Display, path: impl std::fmt::Display) -> MetricsError {
    MetricsError::invalid(format!(
        "The value {shown} for parameter {path} is invalid."
    ))
}

fn validate_datum(
    namespace: &str,
    datum: &MetricDatum,
    path: Member,
    now_ms: i64,
    findings: &mut Findings,
) -> Option<Sample> {
    let errors_before = findings.errors.len();
    let name = match &datum.metric_name {
        None => {
            findings.add(MetricsError::missing(&format!("{path}.MetricName")));
            None
        }
        Some(n) => match check_length(n, format_args!("{path}.MetricName"), MAX_NAME_LEN) {
            Ok(()) => Some(n.clone()),
            Err(e) => {
                findings.add(e);
                None
            }
        },
    };
    let dimensions = validate_dimensions(&datum.dimensions, path, findings);
    let time_ms = datum.timestamp_ms.unwrap_or(now_ms);
    if time_ms < now_ms.saturating_sub(MAX_PAST_MS) {
        findings.add(MetricsError::invalid(format!(
            "The parameter {path}.Timestamp must specify a time within the past two weeks."
        )));
    } else if time_ms > now_ms.saturating_add(MAX_FUTURE_MS) {
        findings.add(MetricsError::invalid(format!(
            "The parameter {path}.Timestamp must specify a time no more than two hours in the future."
        )));
    } else if time_ms < 0 {
        findings.add(invalid_value(time_ms, format_args!("{path}.Timestamp")));
    }
    let unit = match &datum.unit {
        None => Some(Unit::None),
        Some(u) => match Unit::parse(u, format_args!("{path}.Unit")) {
            Ok(unit) => Some(unit),
            Err(e) => {
                findings.add(e);
                None
            }
        },
    };
    let high_resolution = match datum.storage_resolution {
        None | Some(60) => false,
        Some(1) => true,
        Some(_) => {
            findings.add(MetricsError::invalid(format!(
                "The parameter {path}.StorageResolution must be a value in the set [ 1, 60 ]."
            )));
            false
        }
    };
    let payload = validate_payload(datum, path, findings);
    if findings.errors.len() > errors_before {
        return None;
    }
    let (Some(name), Some(dimensions), Some(unit), Some(payload)) =
        (name, dimensions, unit, payload)
    else {
        return None;
    };
    // Standard-resolution data is kept per minute, high-resolution per second.
    let granule = if high_resolution { 1 } else { 60 };
    let time_s = (time_ms / 1000) as u64 / granule * granule;
    Some(Sample {
        identity: MetricIdentity::new(namespace, name, dimensions),
        unit,
        time_s,
        high_resolution,
        payload,
    })
}

fn validate_dimensions(
    inputs: &[DimensionInput],
    path: Member,
    findings: &mut Findings,
) -> Option<Vec<Dimension>> {
    if inputs.len() > MAX_DIMENSIONS {
        findings.add(MetricsError::invalid(format!(
            "The collection {path}.Dimensions must not have a size greater than {MAX_DIMENSIONS}."
        )));
        return None;
    }
    let before = findings.errors.len();
    let mut out = Vec::with_capacity(inputs.len());
    for (j, d) in inputs.iter().enumerate() {
        let member = j + 1;
        let name = checked_dimension_text(
            &d.name,
            format_args!("{path}.Dimensions.member.{member}.Name"),
            MAX_NAME_LEN,
            true,
        );
        let value = checked_dimension_text(
            &d.value,
            format_args!("{path}.Dimensions.member.{member}.Value"),
            MAX_DIMENSION_VALUE_LEN,
            false,
        );
        match (name, value) {
            (Ok(name), Ok(value)) => out.push(Dimension { name, value }),
            (name, value) => {
                if let Err(e) = name {
                    findings.add(e);
                }
                if let Err(e) = value {
                    findings.add(e);
                }
            }
        }
    }
    if findings.errors.len() > before {
        return None;
    }
    let mut names: Vec<&str> = out.iter().map(|d| d.name.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        findings.add(MetricsError::invalid(
            "No metric may specify the same dimension name twice.",
        ));
        return None;
    }
    Some(out)
}

/// A dimension name or value: ASCII without control characters, not only
/// whitespace, and for a name not starting with a colon.
fn checked_dimension_text(
    text: &Option<String>,
    path: std::fmt::Arguments,
    max: usize,
    is_name: bool,
) -> Result<String, MetricsError> {
    let Some(text) = text else {
        return Err(MetricsError::missing(&path.to_string()));
    };
    check_length(text, path, max)?;
    let ascii_printable = text.bytes().all(|b| (0x20..0x7f).contains(&b));
    let blank = text.bytes().all(|b| b == b' ');
    if !ascii_printable || blank || (is_name && text.starts_with(':')) {
        return Err(invalid_value(text, path));
    }
    Ok(text.clone())
}

/// CloudWatch's range for every value it stores.
fn value_in_range(v: f64) -> bool {
    v.is_finite() && (v == 0.0 || (v.abs() <= VALUE_LIMIT && v.abs() >= 1.0 / VALUE_LIMIT))
}

fn shown(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
    } else {
        v.to_string()
    }
}

fn validate_payload(datum: &MetricDatum, path: Member, findings: &mut Findings) -> Option<Payload> {
    // An empty array is as good as none (the query protocol cannot tell them apart).
    let values = datum.values.as_ref().filter(|v| !v.is_empty());
    let counts = datum.counts.as_ref().filter(|c| !c.is_empty());
    let set = datum.statistic_values.as_ref();
    if datum.value.is_some() && values.is_some() {
        findings.add(MetricsError::combination(format!(
            "The parameters {path}.Value and {path}.Values are mutually exclusive and you have specified both."
        )));
        return None;
    }
    if datum.value.is_some() && set.is_some() {
        findings.add(MetricsError::combination(format!(
            "The parameters {path}.Value and {path}.StatisticValues are mutually exclusive and you have specified both."
        )));
        return None;
    }
    if let Some(v) = datum.value {
        if !value_in_range(v) {
            findings.add(invalid_value(shown(v), format_args!("{path}.Value")));
            return None;
        }
        return Some(Payload::Values(vec![(v, 1.0)]));
    }
    // CloudWatch accepts Values together with StatisticValues; the values,
    // which carry the distribution, are what is kept.
    if let Some(values) = values {
        return validate_values(values, counts, path, findings);
    }
    if let Some(set) = set {
        return validate_set(set, path, findings);
    }
    if counts.is_some() {
        findings.add(MetricsError::invalid(format!(
            "The parameters {path}.Values and {path}.Counts must be of the same size."
        )));
        return None;
    }
    findings.add(MetricsError::combination(format!(
        "At least one of the parameters {path}.Value and {path}.StatisticValues must be specified."
    )));
    None
}

fn validate_values(
    values: &[f64],
    counts: Option<&Vec<f64>>,
    path: Member,
    findings: &mut Findings,
) -> Option<Payload> {
    if values.len() > MAX_VALUES_PER_DATUM {
        findings.add(MetricsError::invalid(format!(
            "The collection {path}.Values must not have a size greater than {MAX_VALUES_PER_DATUM}."
        )));
        return None;
    }
    if let Some(counts) = counts {
        if counts.len() != values.len() {
            findings.add(MetricsError::invalid(format!(
                "The parameters {path}.Values and {path}.Counts must be of the same size."
            )));
            return None;
        }
    }
    let before = findings.errors.len();
    let mut pairs = Vec::with_capacity(values.len());
    for (k, &v) in values.iter().enumerate() {
        if !value_in_range(v) {
            findings.add(invalid_value(
                shown(v),
                format_args!("{path}.Values.member.{}", k + 1),
            ));
            continue;
        }
        let count = counts.map_or(1.0, |c| c[k]);
        if !(0.0..=VALUE_LIMIT).contains(&count) {
            findings.add(invalid_value(
                shown(count),
                format_args!("{path}.Counts.member.{}", k + 1),
            ));
            continue;
        }
        // A value that occurred zero times adds nothing.
        if count > 0.0 {
            pairs.push((v, count));
        }
    }
    (findings.errors.len() == before).then_some(Payload::Values(pairs))
}

fn validate_set(set: &StatisticSetInput, path: Member, findings: &mut Findings) -> Option<Payload> {
    let spath = format_args!("{path}.StatisticValues").to_string();
    let mut missing = Vec::new();
    let fields = [
        ("Maximum", set.maximum),
        ("Minimum", set.minimum),
        ("SampleCount", set.sample_count),
        ("Sum", set.sum),
    ];
    for (name, v) in fields {
        if v.is_none() {
            missing.push(MetricsError::missing(&format!("{spath}.{name}")));
        }
    }
    if !missing.is_empty() {
        for e in missing {
            findings.add(e);
        }
        return None;
    }
    let (Some(count), Some(sum), Some(min), Some(max)) =
        (set.sample_count, set.sum, set.minimum, set.maximum)
    else {
        return None;
    };
    let before = findings.errors.len();
    for (name, v) in fields {
        if let Some(v) = v {
            if !value_in_range(v) {
                findings.add(invalid_value(shown(v), format_args!("{spath}.{name}")));
            }
        }
    }
    if findings.errors.len() > before {
        return None;
    }
    if count <= 0.0 {
        findings.add(MetricsError::invalid(format!(
            "The parameter {spath}.SampleCount must be greater than 0."
        )));
        return None;
    }
    if max < min {
        findings.add(MetricsError::invalid(format!(
            "The parameter {spath}.Maximum must be greater than {spath}.Minimum."
        )));
        return None;
    }
    // CloudWatch computes percentiles over a statistic set only when it
    // stands for raw values: one sample, or all samples equal (Min = Max and
    // Sum = Min x SampleCount; the first case is one instance of it).
    if min == max && close(sum, min * count) {
        return Some(Payload::Values(vec![(min, count)]));
    }
    Some(Payload::Set(SetStats {
        count,
        sum,
        min,
        max,
    }))
}

/// Equal up to the rounding a client's own summation may bring.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn put(data: Vec<MetricDatum>) -> Result<Vec<Sample>, MetricsError> {
        validate_put(Some("App"), &data, NOW, Publisher::Client)
    }

    fn err_of(data: Vec<MetricDatum>) -> (String, String) {
        let e = put(data).unwrap_err();
        (e.code().to_string(), e.message().to_string())
    }

    #[test]
    fn a_single_value_becomes_one_sample_at_the_minute() {
        let mut d = MetricDatum::value("Latency", 12.5);
        d.timestamp_ms = Some(NOW - 61_500);
        d.unit = Some("Milliseconds".into());
        let samples = put(vec![d]).unwrap();
        assert_eq!(samples.len(), 1);
        let s = &samples[0];
        assert_eq!(s.unit, Unit::Milliseconds);
        assert!(!s.high_resolution);
        assert_eq!(s.time_s % 60, 0);
        assert_eq!(s.time_s, ((NOW - 61_500) / 1000 / 60 * 60) as u64);
        assert_eq!(s.payload, Payload::Values(vec![(12.5, 1.0)]));
    }

    #[test]
    fn high_resolution_keeps_the_second() {
        let mut d = MetricDatum::value("Latency", 1.0);
        d.timestamp_ms = Some(NOW - 1_500);
        d.storage_resolution = Some(1);
        let s = &put(vec![d]).unwrap()[0];
        assert!(s.high_resolution);
        assert_eq!(s.time_s, ((NOW - 1_500) / 1000) as u64);
    }

    #[test]
    fn namespace_rules() {
        let d = vec![MetricDatum::value("M", 1.0)];
        let e = validate_put(None, &d, NOW, Publisher::Client).unwrap_err();
        assert_eq!(e.code(), "MissingParameter");
        assert_eq!(e.message(), "The parameter Namespace is required.");
        for bad in [":x", "", "tab\there", "é"] {
            let e = validate_put(Some(bad), &d, NOW, Publisher::Client).unwrap_err();
            assert_eq!(e.code(), "InvalidParameterValue", "{bad}");
        }
        let long = "n".repeat(256);
        assert!(validate_put(Some(&long), &d, NOW, Publisher::Client).is_err());
        let e = validate_put(Some("AWS/EC2"), &d, NOW, Publisher::Client).unwrap_err();
        assert_eq!(
            e.message(),
            "The value AWS/EC2 for parameter Namespace is invalid."
        );
        assert!(validate_put(Some("AWS/EC2"), &d, NOW, Publisher::Service).is_ok());
    }

    #[test]
    fn datum_count_limits() {
        let e = validate_put(Some("App"), &[], NOW, Publisher::Client).unwrap_err();
        assert_eq!(e.message(), "The parameter MetricData is required.");
        let many = vec![MetricDatum::value("M", 1.0); 1001];
        let (code, msg) = err_of(many);
        assert_eq!(code, "InvalidParameterValue");
        assert_eq!(
            msg,
            "The collection MetricData must not have a size greater than 1000."
        );
        assert_eq!(
            put(vec![MetricDatum::value("M", 1.0); 1000]).unwrap().len(),
            1000
        );
    }

    #[test]
    fn value_range() {
        for bad in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e109,
            -1e109,
            1e-109,
        ] {
            let (code, msg) = err_of(vec![MetricDatum::value("M", bad)]);
            assert_eq!(code, "InvalidParameterValue", "{bad}");
            assert!(msg.ends_with("for parameter MetricData.member.1.Value is invalid."));
        }
        let (_, msg) = err_of(vec![MetricDatum::value("M", f64::NAN)]);
        assert_eq!(
            msg,
            "The value NaN for parameter MetricData.member.1.Value is invalid."
        );
        for good in [
            0.0,
            -0.0,
            1e108,
            -1e108,
            1e-108,
            2f64.powi(360),
            -(2f64.powi(-360)),
        ] {
            assert!(put(vec![MetricDatum::value("M", good)]).is_ok(), "{good}");
        }
    }

    #[test]
    fn timestamps_two_weeks_back_two_hours_ahead() {
        let at = |ms: i64| {
            let mut d = MetricDatum::value("M", 1.0);
            d.timestamp_ms = Some(ms);
            d
        };
        assert!(put(vec![at(NOW - MAX_PAST_MS)]).is_ok());
        assert!(put(vec![at(NOW + MAX_FUTURE_MS)]).is_ok());
        let (code, msg) = err_of(vec![at(NOW - MAX_PAST_MS - 1), at(NOW - MAX_PAST_MS - 1)]);
        assert_eq!(code, "InvalidParameterValue");
        assert_eq!(
            msg,
            "The parameter MetricData.member.1.Timestamp must specify a time within the past two weeks.\n\
             The parameter MetricData.member.2.Timestamp must specify a time within the past two weeks."
        );
        let (_, msg) = err_of(vec![at(NOW + MAX_FUTURE_MS + 1)]);
        assert!(msg.contains("no more than two hours in the future"));
    }

    #[test]
    fn value_forms_exclude_each_other() {
        let mut d = MetricDatum::value("M", 1.0);
        d.values = Some(vec![1.0, 10.0]);
        assert_eq!(
            err_of(vec![d]),
            (
                "InvalidParameterCombination".into(),
                "The parameters MetricData.member.1.Value and MetricData.member.1.Values are mutually exclusive and you have specified both.".into()
            )
        );
        let mut d = MetricDatum::value("M", 1.5);
        d.statistic_values = Some(set(10.0, 55.0, 1.0, 10.0));
        assert_eq!(
            err_of(vec![d]),
            (
                "InvalidParameterCombination".into(),
                "The parameters MetricData.member.1.Value and MetricData.member.1.StatisticValues are mutually exclusive and you have specified both.".into()
            )
        );
        let d = MetricDatum {
            metric_name: Some("M".into()),
            ..Default::default()
        };
        assert_eq!(
            err_of(vec![d]),
            (
                "InvalidParameterCombination".into(),
                "At least one of the parameters MetricData.member.1.Value and MetricData.member.1.StatisticValues must be specified.".into()
            )
        );
        // Values with StatisticValues is accepted; the values are kept.
        let d = MetricDatum {
            metric_name: Some("M".into()),
            values: Some(vec![1.0, 10.0]),
            statistic_values: Some(set(10.0, 55.0, 1.0, 10.0)),
            ..Default::default()
        };
        assert_eq!(
            put(vec![d]).unwrap()[0].payload,
            Payload::Values(vec![(1.0, 1.0), (10.0, 1.0)])
        );
    }

    #[test]
    fn values_and_counts() {
        let d = MetricDatum {
            metric_name: Some("M".into()),
            values: Some(vec![1.0, 10.0]),
            counts: Some(vec![2.0, 4.0, 5.0]),
            ..Default::default()
        };
        assert_eq!(
            err_of(vec![d]),
            (
                "InvalidParameterValue".into(),
                "The parameters MetricData.member.1.Values and MetricData.member.1.Counts must be of the same size.".into()
            )
        );
        let d = MetricDatum {
            metric_name: Some("M".into()),
            values: Some(vec![1.0; 151]),
            ..Default::default()
        };
        assert_eq!(
            err_of(vec![d]).1,
            "The collection MetricData.member.1.Values must not have a size greater than 150."
        );
        let d = MetricDatum {
            metric_name: Some("M".into()),
            values: Some(vec![1.0, 10.0, 3.0]),
            counts: Some(vec![2.0, 4.0, 0.0]),
            ..Default::default()
        };
        assert_eq!(
            put(vec![d]).unwrap()[0].payload,
            Payload::Values(vec![(1.0, 2.0), (10.0, 4.0)])
        );
        let d = MetricDatum {
            metric_name: Some("M".into()),
            values: Some(vec![1.0, f64::NAN]),
            counts: Some(vec![-1.0, 1.0]),
            ..Default::default()
        };
        let (code, msg) = err_of(vec![d]);
        assert_eq!(code, "InvalidParameterValue");
        assert_eq!(
            msg,
            "The value -1 for parameter MetricData.member.1.Counts.member.1 is invalid.\n\
             The value NaN for parameter MetricData.member.1.Values.member.2 is invalid."
        );
    }

    fn set(count: f64, sum: f64, min: f64, max: f64) -> StatisticSetInput {
        StatisticSetInput {
            sample_count: Some(count),
            sum: Some(sum),
            minimum: Some(min),
            maximum: Some(max),
        }
    }

    #[test]
    fn statistic_sets() {
        let with = |s: StatisticSetInput| MetricDatum {
            metric_name: Some("M".into()),
            statistic_values: Some(s),
            ..Default::default()
        };
        assert_eq!(
            put(vec![with(set(10.0, 55.0, 1.0, 10.0))]).unwrap()[0].payload,
            Payload::Set(SetStats {
                count: 10.0,
                sum: 55.0,
                min: 1.0,
                max: 10.0
            })
        );
        // Sets that stand for raw values become values (percentiles stay available).
        assert_eq!(
            put(vec![with(set(1.0, 7.0, 7.0, 7.0))]).unwrap()[0].payload,
            Payload::Values(vec![(7.0, 1.0)])
        );
        assert_eq!(
            put(vec![with(set(4.0, 12.0, 3.0, 3.0))]).unwrap()[0].payload,
            Payload::Values(vec![(3.0, 4.0)])
        );
        let (code, msg) = err_of(vec![with(StatisticSetInput {
            sample_count: Some(1.0),
            sum: None,
            minimum: Some(1.0),
            maximum: None,
        })]);
        assert_eq!(code, "MissingParameter");
        assert_eq!(
            msg,
            "The parameter MetricData.member.1.StatisticValues.Maximum is required.\n\
             The parameter MetricData.member.1.StatisticValues.Sum is required."
        );
        let (_, msg) = err_of(vec![with(set(0.0, 0.0, 0.0, 0.0))]);
        assert_eq!(
            msg,
            "The parameter MetricData.member.1.StatisticValues.SampleCount must be greater than 0."
        );
        let (_, msg) = err_of(vec![with(set(2.0, 3.0, 2.0, 1.0))]);
        assert!(msg.contains("Maximum must be greater than"));
        let (_, msg) = err_of(vec![with(set(2.0, f64::INFINITY, 1.0, 2.0))]);
        assert_eq!(
            msg,
            "The value Infinity for parameter MetricData.member.1.StatisticValues.Sum is invalid."
        );
    }

    #[test]
    fn dimensions() {
        let with = |dims: Vec<DimensionInput>| MetricDatum {
            dimensions: dims,
            ..MetricDatum::value("M", 1.0)
        };
        let thirty: Vec<_> = (0..30)
            .map(|i| DimensionInput::new(&format!("d{i}"), "v"))
            .collect();
        assert_eq!(
            put(vec![with(thirty.clone())]).unwrap()[0]
                .identity
                .dimensions()
                .len(),
            30
        );
        let mut many = thirty;
        many.push(DimensionInput::new("d30", "v"));
        assert_eq!(
            err_of(vec![with(many)]).1,
            "The collection MetricData.member.1.Dimensions must not have a size greater than 30."
        );
        assert_eq!(
            err_of(vec![with(vec![
                DimensionInput::new("a", "1"),
                DimensionInput::new("a", "2")
            ])])
            .1,
            "No metric may specify the same dimension name twice."
        );
        let (code, msg) = err_of(vec![with(vec![DimensionInput {
            name: Some("a".into()),
            value: None,
        }])]);
        assert_eq!(code, "MissingParameter");
        assert_eq!(
            msg,
            "The parameter MetricData.member.1.Dimensions.member.1.Value is required."
        );
        for (name, value) in [
            (":a", "v"),
            ("a", "   "),
            ("a", "é"),
            ("a\u{1}", "v"),
            ("", "v"),
        ] {
            let (code, _) = err_of(vec![with(vec![DimensionInput::new(name, value)])]);
            assert_eq!(code, "InvalidParameterValue", "{name:?}={value:?}");
        }
        let long_value = "v".repeat(1024);
        assert!(put(vec![with(vec![DimensionInput::new("a", &long_value)])]).is_ok());
        let too_long = "v".repeat(1025);
        assert!(put(vec![with(vec![DimensionInput::new("a", &too_long)])]).is_err());
    }

    #[test]
    fn units_and_resolution() {
        let mut d = MetricDatum::value("M", 1.0);
        d.unit = Some("Furlongs".into());
        assert!(err_of(vec![d]).1.starts_with(
            "The parameter MetricData.member.1.Unit must be a value in the set [ Seconds,"
        ));
        let mut d = MetricDatum::value("M", 1.0);
        d.storage_resolution = Some(5);
        assert_eq!(
            err_of(vec![d]).1,
            "The parameter MetricData.member.1.StorageResolution must be a value in the set [ 1, 60 ]."
        );
        let mut d = MetricDatum::value("M", 1.0);
        d.metric_name = None;
        assert_eq!(
            err_of(vec![d]),
            (
                "MissingParameter".into(),
                "The parameter MetricData.member.1.MetricName is required.".into()
            )
        );
    }
}

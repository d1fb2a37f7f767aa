//! What a metric is: its namespace, name and dimensions (an unordered set,
//! as CloudWatch treats them), and the units its datapoints carry. A stored
//! series is one metric in one unit for one account and region: CloudWatch
//! keeps data published under different units apart (GetMetricStatistics
//! without a Unit answers one datapoint per unit), so the unit belongs to
//! the series' identity while ListMetrics shows the metric once.
//!
//! The series key is the identity's byte encoding, used as the key of the
//! series table: every text field as a big-endian `u16` length and its bytes,
//! in the order account, region, namespace, metric name, dimension count
//! (`u8`), then each dimension's name and value sorted by name, then the
//! unit. The encoding is self-delimiting, so the key of a metric without
//! its unit is a prefix of the keys of all its units, and the key of an
//! account and region (or of a namespace in it) is a prefix of all their
//! metrics' keys.

use super::error::MetricsError;

/// The most dimensions a metric may have.
pub const MAX_DIMENSIONS: usize = 30;
/// Longest namespace, metric name and dimension name (the model's limits).
pub const MAX_NAME_LEN: usize = 255;
/// Longest dimension value.
pub const MAX_DIMENSION_VALUE_LEN: usize = 1024;

/// The units CloudWatch accepts (the model's `StandardUnit`), in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unit {
    Seconds,
    Microseconds,
    Milliseconds,
    Bytes,
    Kilobytes,
    Megabytes,
    Gigabytes,
    Terabytes,
    Bits,
    Kilobits,
    Megabits,
    Gigabits,
    Terabits,
    Percent,
    Count,
    BytesPerSecond,
    KilobytesPerSecond,
    MegabytesPerSecond,
    GigabytesPerSecond,
    TerabytesPerSecond,
    BitsPerSecond,
    KilobitsPerSecond,
    MegabitsPerSecond,
    GigabitsPerSecond,
    TerabitsPerSecond,
    CountPerSecond,
    None,
}

impl Unit {
    pub const ALL: [Unit; 27] = [
        Unit::Seconds,
        Unit::Microseconds,
        Unit::Milliseconds,
        Unit::Bytes,
        Unit::Kilobytes,
        Unit::Megabytes,
        Unit::Gigabytes,
        Unit::Terabytes,
        Unit::Bits,
        Unit::Kilobits,
        Unit::Megabits,
        Unit::Gigabits,
        Unit::Terabits,
        Unit::Percent,
        Unit::Count,
        Unit::BytesPerSecond,
        Unit::KilobytesPerSecond,
        Unit::MegabytesPerSecond,
        Unit::GigabytesPerSecond,
        Unit::TerabytesPerSecond,
        Unit::BitsPerSecond,
        Unit::KilobitsPerSecond,
        Unit::MegabitsPerSecond,
        Unit::GigabitsPerSecond,
        Unit::TerabitsPerSecond,
        Unit::CountPerSecond,
        Unit::None,
    ];

    /// The unit's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Seconds => "Seconds",
            Unit::Microseconds => "Microseconds",
            Unit::Milliseconds => "Milliseconds",
            Unit::Bytes => "Bytes",
            Unit::Kilobytes => "Kilobytes",
            Unit::Megabytes => "Megabytes",
            Unit::Gigabytes => "Gigabytes",
            Unit::Terabytes => "Terabytes",
            Unit::Bits => "Bits",
            Unit::Kilobits => "Kilobits",
            Unit::Megabits => "Megabits",
            Unit::Gigabits => "Gigabits",
            Unit::Terabits => "Terabits",
            Unit::Percent => "Percent",
            Unit::Count => "Count",
            Unit::BytesPerSecond => "Bytes/Second",
            Unit::KilobytesPerSecond => "Kilobytes/Second",
            Unit::MegabytesPerSecond => "Megabytes/Second",
            Unit::GigabytesPerSecond => "Gigabytes/Second",
            Unit::TerabytesPerSecond => "Terabytes/Second",
            Unit::BitsPerSecond => "Bits/Second",
            Unit::KilobitsPerSecond => "Kilobits/Second",
            Unit::MegabitsPerSecond => "Megabits/Second",
            Unit::GigabitsPerSecond => "Gigabits/Second",
            Unit::TerabitsPerSecond => "Terabits/Second",
            Unit::CountPerSecond => "Count/Second",
            Unit::None => "None",
        }
    }

    pub fn from_name(name: &str) -> Option<Unit> {
        Unit::ALL.into_iter().find(|u| u.as_str() == name)
    }

    /// Parses the `Unit` of a request, answering a name outside the set in
    /// CloudWatch's words for the parameter at `path` (such as
    /// `MetricData.member.1.Unit`).
    pub fn parse(name: &str, path: impl std::fmt::Display) -> Result<Unit, MetricsError> {
        Unit::from_name(name).ok_or_else(|| {
            let set: Vec<&str> = Unit::ALL.iter().map(|u| u.as_str()).collect();
            MetricsError::invalid(format!(
                "The parameter {path} must be a value in the set [ {} ].",
                set.join(", ")
            ))
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dimension {
    pub name: String,
    pub value: String,
}

impl Dimension {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Dimension {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A metric as CloudWatch identifies it within an account and region.
/// Dimensions are kept sorted by name, so two requests naming the same
/// dimensions in another order name the same metric.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MetricIdentity {
    pub namespace: String,
    pub metric_name: String,
    dimensions: Vec<Dimension>,
}

impl MetricIdentity {
    /// The identity of a metric with `dimensions` in any order. Names must be
    /// unique (ingestion validates that; a query naming one twice matches no
    /// stored metric).
    pub fn new(
        namespace: impl Into<String>,
        metric_name: impl Into<String>,
        mut dimensions: Vec<Dimension>,
    ) -> Self {
        dimensions.sort();
        MetricIdentity {
            namespace: namespace.into(),
            metric_name: metric_name.into(),
            dimensions,
        }
    }

    /// The dimensions, sorted by name.
    pub fn dimensions(&self) -> &[Dimension] {
        &self.dimensions
    }

    /// The key prefix shared by every unit of this metric (see the module doc).
    pub fn key_prefix(&self, account: &str, region: &str) -> Vec<u8> {
        let mut key = Vec::with_capacity(64);
        put_text(&mut key, account);
        put_text(&mut key, region);
        put_text(&mut key, &self.namespace);
        put_text(&mut key, &self.metric_name);
        // At most MAX_DIMENSIONS after validation; a longer list in a query
        // still encodes unambiguously (it just matches nothing stored).
        key.push(self.dimensions.len().min(u8::MAX as usize) as u8);
        for d in &self.dimensions {
            put_text(&mut key, &d.name);
            put_text(&mut key, &d.value);
        }
        key
    }

    /// The key of this metric's series in `unit`.
    pub fn series_key(&self, account: &str, region: &str, unit: Unit) -> Vec<u8> {
        let mut key = self.key_prefix(account, region);
        put_text(&mut key, unit.as_str());
        key
    }
}

/// The key prefix of every metric of `account` in `region`, optionally only
/// those in `namespace`.
pub fn scope_prefix(account: &str, region: &str, namespace: Option<&str>) -> Vec<u8> {
    let mut key = Vec::new();
    put_text(&mut key, account);
    put_text(&mut key, region);
    if let Some(ns) = namespace {
        put_text(&mut key, ns);
    }
    key
}

/// The key prefix of every metric named `metric_name` in `namespace` (all
/// their dimension sets and units): ListMetrics with both filters reads only
/// these.
pub fn name_prefix(account: &str, region: &str, namespace: &str, metric_name: &str) -> Vec<u8> {
    let mut key = scope_prefix(account, region, Some(namespace));
    put_text(&mut key, metric_name);
    key
}

/// A series key decoded back into its parts.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesName {
    pub account: String,
    pub region: String,
    pub identity: MetricIdentity,
    pub unit: Unit,
}

pub fn decode_series_key(key: &[u8]) -> Result<SeriesName, MetricsError> {
    let mut rest = key;
    let account = take_text(&mut rest)?;
    let region = take_text(&mut rest)?;
    let namespace = take_text(&mut rest)?;
    let metric_name = take_text(&mut rest)?;
    let (&count, tail) = rest
        .split_first()
        .ok_or_else(|| MetricsError::corrupt("series key", "no dimension count"))?;
    rest = tail;
    let mut dimensions = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let name = take_text(&mut rest)?;
        let value = take_text(&mut rest)?;
        dimensions.push(Dimension { name, value });
    }
    let unit_name = take_text(&mut rest)?;
    let unit = Unit::from_name(&unit_name)
        .ok_or_else(|| MetricsError::corrupt("series key", format!("unit {unit_name}")))?;
    if !rest.is_empty() {
        return Err(MetricsError::corrupt("series key", "trailing bytes"));
    }
    Ok(SeriesName {
        account,
        region,
        identity: MetricIdentity {
            namespace,
            metric_name,
            dimensions,
        },
        unit,
    })
}

fn put_text(key: &mut Vec<u8>, text: &str) {
    // Fields are validated to at most 1024 bytes; clamp rather than wrap for
    // anything longer a query might name (it then matches nothing).
    let bytes = text.as_bytes();
    let len = bytes.len().min(u16::MAX as usize);
    key.extend_from_slice(&(len as u16).to_be_bytes());
    key.extend_from_slice(&bytes[..len]);
}

fn take_text(rest: &mut &[u8]) -> Result<String, MetricsError> {
    if rest.len() < 2 {
        return Err(MetricsError::corrupt("series key", "truncated length"));
    }
    let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
    let body = &rest[2..];
    if body.len() < len {
        return Err(MetricsError::corrupt("series key", "truncated text"));
    }
    let text = std::str::from_utf8(&body[..len])
        .map_err(|_| MetricsError::corrupt("series key", "text is not UTF-8"))?
        .to_string();
    *rest = &body[len..];
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimension_order_does_not_change_identity() {
        let a = MetricIdentity::new(
            "App",
            "Latency",
            vec![Dimension::new("b", "2"), Dimension::new("a", "1")],
        );
        let b = MetricIdentity::new(
            "App",
            "Latency",
            vec![Dimension::new("a", "1"), Dimension::new("b", "2")],
        );
        assert_eq!(a, b);
        assert_eq!(
            a.series_key("1", "r", Unit::Count),
            b.series_key("1", "r", Unit::Count)
        );
    }

    #[test]
    fn series_keys_round_trip_and_nest() {
        let id = MetricIdentity::new("App", "Latency", vec![Dimension::new("Host", "h-1")]);
        let key = id.series_key("123456789012", "us-east-1", Unit::Milliseconds);
        assert!(key.starts_with(&id.key_prefix("123456789012", "us-east-1")));
        assert!(key.starts_with(&scope_prefix("123456789012", "us-east-1", Some("App"))));
        // A metric with fewer dimensions is not a prefix of one with more.
        let bare = MetricIdentity::new("App", "Latency", vec![]);
        assert!(!key.starts_with(&bare.key_prefix("123456789012", "us-east-1")));
        let name = decode_series_key(&key).unwrap();
        assert_eq!(name.identity, id);
        assert_eq!(name.unit, Unit::Milliseconds);
        assert_eq!(name.account, "123456789012");
    }

    #[test]
    fn units_parse_by_wire_name() {
        assert_eq!(
            Unit::parse("Bytes/Second", "Unit").unwrap(),
            Unit::BytesPerSecond
        );
        let err = Unit::parse("bytes", "MetricData.member.1.Unit").unwrap_err();
        assert_eq!(err.code(), "InvalidParameterValue");
        assert!(err
            .message()
            .starts_with("The parameter MetricData.member.1.Unit must be a value in the set [ Seconds, Microseconds,"));
        assert!(err.message().ends_with("Count/Second, None ]."));
    }
}

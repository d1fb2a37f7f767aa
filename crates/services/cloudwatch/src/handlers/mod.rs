//! One function per CloudWatch operation (`metrics`: PutMetricData,
//! GetMetricStatistics, ListMetrics; `alarms`: the alarm operations;
//! `metric_data`: GetMetricData, over the query lists of `metric_queries`,
//! which metric-math alarms share). This file holds what they share: the
//! call's context and the readers of the decoded input. The codec hands over
//! JSON keyed by the model's member names, already checked against the
//! model's types (doubles as numbers, or "NaN" / "Infinity" / "-Infinity"
//! as strings; timestamps as epoch seconds); the readers still accept a
//! numeric string and answer any other mismatch as CloudWatch answers a bad
//! value, so that a hand-made call never panics or passes silently.

pub mod alarms;
pub mod metric_data;
pub mod metric_queries;
pub mod metrics;

use crate::metrics::{Metrics, MetricsError};
use nimbus_core::AwsError;
use serde_json::Value;

/// What a handler needs to know about its call.
pub struct Call<'a> {
    pub metrics: &'a Metrics,
    pub alarms: &'a crate::alarms::Alarms,
    pub account: &'a str,
    pub region: &'a str,
    /// The service time of the call (epoch ms).
    pub now_ms: u64,
}

/// `InvalidParameterValue` for a member of the wrong kind.
fn bad_value(shown: impl std::fmt::Display, path: &str) -> AwsError {
    MetricsError::InvalidParameterValue(format!(
        "The value {shown} for parameter {path} is invalid."
    ))
    .to_aws_error()
}

/// A member of `v`, None when absent or null.
pub fn member<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.get(name).filter(|m| !m.is_null())
}

pub fn string(v: &Value, name: &str, path: &str) -> Result<Option<String>, AwsError> {
    match member(v, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(bad_value(other, path)),
    }
}

/// A double: a number, a special value by name, or a numeric string.
pub fn double(v: &Value, path: &str) -> Result<f64, AwsError> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| bad_value(n, path)),
        Value::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            text => text.trim().parse().map_err(|_| bad_value(text, path)),
        },
        other => Err(bad_value(other, path)),
    }
}

pub fn opt_double(v: &Value, name: &str, path: &str) -> Result<Option<f64>, AwsError> {
    member(v, name).map(|m| double(m, path)).transpose()
}

/// An integer: a number (a whole float too) or a numeric string.
pub fn opt_integer(v: &Value, name: &str, path: &str) -> Result<Option<i64>, AwsError> {
    let Some(m) = member(v, name) else {
        return Ok(None);
    };
    let parsed = match m {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    parsed.map(Some).ok_or_else(|| bad_value(m, path))
}

pub fn opt_bool(v: &Value, name: &str, path: &str) -> Result<Option<bool>, AwsError> {
    match member(v, name) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(other) => Err(bad_value(other, path)),
    }
}

/// A timestamp in epoch milliseconds (the codec gives epoch seconds; a
/// date string is read too).
pub fn opt_timestamp_ms(v: &Value, name: &str, path: &str) -> Result<Option<i64>, AwsError> {
    let Some(m) = member(v, name) else {
        return Ok(None);
    };
    match nimbus_core::timestamp::from_value(m) {
        // `as` saturates: an absurd date becomes a time out of every range.
        Some(secs) if secs.is_finite() => Ok(Some((secs * 1000.0).round() as i64)),
        _ => Err(bad_value(m, path)),
    }
}

/// A list member (an empty list when absent).
pub fn list<'a>(v: &'a Value, name: &str, path: &str) -> Result<&'a [Value], AwsError> {
    match member(v, name) {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(bad_value(other, path)),
    }
}

/// A list of strings.
pub fn strings(v: &Value, name: &str) -> Result<Vec<String>, AwsError> {
    list(v, name, name)?
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) => Ok(s.clone()),
            other => Err(bad_value(other, &format!("{name}.member.{}", i + 1))),
        })
        .collect()
}

/// A list of doubles, None when absent.
pub fn doubles(v: &Value, name: &str, path: &str) -> Result<Option<Vec<f64>>, AwsError> {
    if member(v, name).is_none() {
        return Ok(None);
    }
    list(v, name, path)?
        .iter()
        .enumerate()
        .map(|(i, item)| double(item, &format!("{path}.member.{}", i + 1)))
        .collect::<Result<Vec<f64>, AwsError>>()
        .map(Some)
}

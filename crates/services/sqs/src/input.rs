//! Turning an operation's input value into typed request structs. The wire
//! layer hands over JSON keyed by the model's member names; integers normally
//! arrive as numbers, but the query protocol and hand-written clients may send
//! numeric strings, which are accepted too.

use nimbus_core::AwsError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

pub fn parse<T: DeserializeOwned>(v: Value) -> Result<T, AwsError> {
    let v = if v.is_null() {
        Value::Object(Default::default())
    } else {
        v
    };
    serde_json::from_value(v).map_err(|e| {
        AwsError::invalid_parameter(format!("The request has an invalid parameter: {e}"))
    })
}

/// An optional integer given as a number or a numeric string.
pub fn opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom("expected an integer")),
        Some(Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("expected an integer, got {s:?}"))),
        Some(other) => Err(serde::de::Error::custom(format!(
            "expected an integer, got {other}"
        ))),
    }
}

/// A required string member: absent or empty means MissingParameter.
pub fn required<'a>(v: &'a Option<String>, name: &str) -> Result<&'a str, AwsError> {
    match v.as_deref() {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(AwsError::missing_parameter(name)),
    }
}

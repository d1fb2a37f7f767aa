//! Reading decoded input values: the model's member names as keys.

use nimbus_core::AwsError;
use serde_json::Value;

pub fn str_of<'a>(input: &'a Value, member: &str) -> Option<&'a str> {
    input.get(member).and_then(Value::as_str)
}

pub fn required<'a>(input: &'a Value, member: &str) -> Result<&'a str, AwsError> {
    str_of(input, member).ok_or_else(|| {
        AwsError::new(
            "InvalidRequest",
            format!("Missing required parameter {member}."),
        )
    })
}

pub fn int_of(input: &Value, member: &str) -> Option<i64> {
    input.get(member).and_then(Value::as_i64)
}

pub fn bool_of(input: &Value, member: &str) -> Option<bool> {
    input.get(member).and_then(Value::as_bool)
}

/// Epoch seconds (the value convention for timestamps) as milliseconds.
pub fn time_ms_of(input: &Value, member: &str) -> Option<u64> {
    input
        .get(member)
        .and_then(Value::as_f64)
        .map(|secs| (secs * 1000.0).max(0.0) as u64)
}

/// S3's timestamp precision in responses: whole seconds, as epoch seconds in the value.
pub fn secs(ms: u64) -> Value {
    Value::from(ms / 1000)
}

/// `k1=v1&k2=v2` (x-amz-tagging, POST form `tagging` is XML instead) into pairs.
pub fn parse_tagging_header(text: &str) -> Vec<(String, String)> {
    form_pairs(text)
}

fn form_pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

//! How alarms and their history are stored: one JSON record per alarm in
//! `cw_alarms` (its configuration, its state, and whether the actions of
//! that state are still to be carried out), and each history item twice, in
//! `cw_alarm_history` (newest first within an account and region) and in
//! `cw_alarm_history_by_name` (newest first within an alarm), so that both
//! kinds of DescribeAlarmHistory read only what they answer.
//!
//! Keys: `account \0 region \0 name` for alarms; history keys put the
//! inverted timestamp and a sequence number after the scope (and name), so
//! a forward scan reads the newest first. Every record carries a format
//! version (`v`).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub const ALARMS: &str = "cw_alarms";
pub const HISTORY: &str = "cw_alarm_history";
pub const HISTORY_BY_NAME: &str = "cw_alarm_history_by_name";
/// Every table alarms use (a reset empties them).
pub const TABLES: [&str; 3] = [ALARMS, HISTORY, HISTORY_BY_NAME];

/// The record format written now.
const VERSION: u8 = 1;

/// A metric alarm's metric, when it names one (rather than metric math).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSpec {
    pub namespace: String,
    pub metric_name: String,
    /// (name, value), in the order the alarm was given them.
    pub dimensions: Vec<(String, String)>,
    pub statistic: Option<String>,
    pub extended_statistic: Option<String>,
    pub unit: Option<String>,
}

/// One alarm, metric or composite, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmRecord {
    pub v: u8,
    pub name: String,
    pub arn: String,
    pub composite: bool,
    pub description: Option<String>,
    pub actions_enabled: bool,
    pub ok_actions: Vec<String>,
    pub alarm_actions: Vec<String>,
    pub insufficient_data_actions: Vec<String>,
    pub config_updated_ms: u64,
    pub state: String,
    pub state_reason: String,
    pub state_reason_data: Option<String>,
    pub state_updated_ms: u64,
    pub state_transitioned_ms: u64,
    // Metric alarms.
    pub metric: Option<MetricSpec>,
    /// `Metrics` (metric math) as the API gave them.
    pub queries: Option<Value>,
    pub period: Option<u32>,
    pub evaluation_periods: Option<u32>,
    pub datapoints_to_alarm: Option<u32>,
    pub threshold: Option<f64>,
    pub comparison: Option<String>,
    pub treat_missing_data: Option<String>,
    pub evaluate_low_sample_count_percentile: Option<String>,
    // Composite alarms.
    pub alarm_rule: Option<String>,
    pub actions_suppressor: Option<String>,
    pub actions_suppressor_wait_period: Option<i64>,
    pub actions_suppressor_extension_period: Option<i64>,
    pub tags: Vec<(String, String)>,
    /// The actions of the current state are still to be carried out: set in
    /// the batch that records a transition, cleared in the one that records
    /// the attempts, so a restart in between carries them out once more and
    /// a restart after never again.
    pub actions_due: bool,
}

impl AlarmRecord {
    pub fn encode(&self) -> Vec<u8> {
        // ok: a struct of strings, numbers and JSON values always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<AlarmRecord, String> {
        let record: AlarmRecord = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if record.v > VERSION {
            return Err(format!(
                "alarm record version {} is newer than this release",
                record.v
            ));
        }
        Ok(record)
    }

    pub fn version() -> u8 {
        VERSION
    }

    pub fn alarm_type(&self) -> &'static str {
        if self.composite {
            "CompositeAlarm"
        } else {
            "MetricAlarm"
        }
    }

    /// The actions of `state` (`OK`, `ALARM`, `INSUFFICIENT_DATA`).
    pub fn actions_of(&self, state: &str) -> &[String] {
        match state {
            "OK" => &self.ok_actions,
            "ALARM" => &self.alarm_actions,
            _ => &self.insufficient_data_actions,
        }
    }

    /// The alarm as DescribeAlarms shows it (`MetricAlarm` or
    /// `CompositeAlarm` members).
    pub fn to_api(&self) -> Value {
        let mut out = serde_json::Map::new();
        let mut put = |k: &str, v: Value| {
            out.insert(k.to_string(), v);
        };
        put("AlarmName", json!(self.name));
        put("AlarmArn", json!(self.arn));
        if let Some(d) = &self.description {
            put("AlarmDescription", json!(d));
        }
        put(
            "AlarmConfigurationUpdatedTimestamp",
            time_value(self.config_updated_ms),
        );
        put("ActionsEnabled", json!(self.actions_enabled));
        put("OKActions", json!(self.ok_actions));
        put("AlarmActions", json!(self.alarm_actions));
        put(
            "InsufficientDataActions",
            json!(self.insufficient_data_actions),
        );
        put("StateValue", json!(self.state));
        put("StateReason", json!(self.state_reason));
        if let Some(d) = &self.state_reason_data {
            put("StateReasonData", json!(d));
        }
        put("StateUpdatedTimestamp", time_value(self.state_updated_ms));
        put(
            "StateTransitionedTimestamp",
            time_value(self.state_transitioned_ms),
        );
        if self.composite {
            if let Some(rule) = &self.alarm_rule {
                put("AlarmRule", json!(rule));
            }
            if let Some(s) = &self.actions_suppressor {
                put("ActionsSuppressor", json!(s));
                if let Some(w) = self.actions_suppressor_wait_period {
                    put("ActionsSuppressorWaitPeriod", json!(w));
                }
                if let Some(e) = self.actions_suppressor_extension_period {
                    put("ActionsSuppressorExtensionPeriod", json!(e));
                }
            }
            return Value::Object(out);
        }
        if let Some(m) = &self.metric {
            put("MetricName", json!(m.metric_name));
            put("Namespace", json!(m.namespace));
            if let Some(s) = &m.statistic {
                put("Statistic", json!(s));
            }
            if let Some(s) = &m.extended_statistic {
                put("ExtendedStatistic", json!(s));
            }
            put("Dimensions", dimensions_value(&m.dimensions));
            if let Some(u) = &m.unit {
                put("Unit", json!(u));
            }
        } else {
            put("Dimensions", json!([]));
        }
        if let Some(p) = self.period {
            put("Period", json!(p));
        }
        if let Some(n) = self.evaluation_periods {
            put("EvaluationPeriods", json!(n));
        }
        if let Some(m) = self.datapoints_to_alarm {
            put("DatapointsToAlarm", json!(m));
        }
        if let Some(t) = self.threshold {
            put("Threshold", json!(t));
        }
        if let Some(c) = &self.comparison {
            put("ComparisonOperator", json!(c));
        }
        if let Some(t) = &self.treat_missing_data {
            put("TreatMissingData", json!(t));
        }
        if let Some(e) = &self.evaluate_low_sample_count_percentile {
            put("EvaluateLowSampleCountPercentile", json!(e));
        }
        if let Some(q) = &self.queries {
            put("Metrics", q.clone());
        }
        Value::Object(out)
    }

    /// The configuration as alarm history's `ConfigurationUpdate` items show
    /// it: the API's members in camel case, without the state.
    pub fn history_config(&self) -> Value {
        let api = self.to_api();
        let mut out = serde_json::Map::new();
        if let Value::Object(members) = api {
            for (k, v) in members {
                if k.starts_with("State") {
                    continue;
                }
                let v = if k.ends_with("Timestamp") {
                    json!(history_time(self.config_updated_ms))
                } else {
                    v
                };
                out.insert(camel(&k), v);
            }
        }
        Value::Object(out)
    }
}

/// `okactions`-style camel case of an API member name, as history data
/// spells the configuration (`AlarmName` -> `alarmName`, `OKActions` ->
/// `okactions`).
fn camel(member: &str) -> String {
    if member == "OKActions" {
        return "okactions".into();
    }
    let mut chars = member.chars();
    match chars.next() {
        Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

pub fn dimensions_value(dimensions: &[(String, String)]) -> Value {
    Value::Array(
        dimensions
            .iter()
            .map(|(n, v)| json!({"Name": n, "Value": v}))
            .collect(),
    )
}

/// A timestamp member: epoch seconds with milliseconds, as the codec wants.
pub fn time_value(ms: u64) -> Value {
    nimbus_core::timestamp::to_value(ms as f64 / 1000.0)
}

/// `2026-12-07T10:03:00.123+0000`: how history data writes times.
pub fn history_time(ms: u64) -> String {
    crate::alarm::text::data_time(ms as i64)
}

/// `account \0 region \0`: the scope of an account and region.
pub fn scope(account: &str, region: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(account.len() + region.len() + 2);
    k.extend_from_slice(account.as_bytes());
    k.push(0);
    k.extend_from_slice(region.as_bytes());
    k.push(0);
    k
}

pub fn alarm_key(account: &str, region: &str, name: &str) -> Vec<u8> {
    let mut k = scope(account, region);
    k.extend_from_slice(name.as_bytes());
    k
}

/// One history item, as stored and as DescribeAlarmHistory shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryItem {
    pub v: u8,
    pub alarm_name: String,
    pub alarm_type: String,
    pub timestamp_ms: u64,
    pub item_type: String,
    pub summary: String,
    pub data: String,
}

impl HistoryItem {
    pub fn encode(&self) -> Vec<u8> {
        // ok: strings and numbers always serialise.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<HistoryItem, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }

    pub fn to_api(&self) -> Value {
        json!({
            "AlarmName": self.alarm_name,
            "AlarmType": self.alarm_type,
            "Timestamp": time_value(self.timestamp_ms),
            "HistoryItemType": self.item_type,
            "HistorySummary": self.summary,
            "HistoryData": self.data,
        })
    }

    /// Its keys in the two history tables (`seq` tells apart items of one
    /// millisecond).
    pub fn keys(&self, account: &str, region: &str, seq: u64) -> (Vec<u8>, Vec<u8>) {
        let suffix = history_suffix(self.timestamp_ms, seq);
        let mut by_time = scope(account, region);
        by_time.extend_from_slice(&suffix);
        let mut by_name = alarm_key(account, region, &self.alarm_name);
        by_name.push(0);
        by_name.extend_from_slice(&suffix);
        (by_time, by_name)
    }
}

/// Inverted time then sequence: newer items sort first.
pub fn history_suffix(timestamp_ms: u64, seq: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&(u64::MAX - timestamp_ms).to_be_bytes());
    out[8..].copy_from_slice(&(u64::MAX - seq).to_be_bytes());
    out
}

/// The time a history key's last 16 bytes hold.
pub fn history_key_time(key: &[u8]) -> Option<u64> {
    let start = key.len().checked_sub(16)?;
    let bytes: [u8; 8] = key[start..start + 8].try_into().ok()?;
    Some(u64::MAX - u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keys_sort_newest_first() {
        let item = |t| HistoryItem {
            v: 1,
            alarm_name: "a".into(),
            alarm_type: "MetricAlarm".into(),
            timestamp_ms: t,
            item_type: "StateUpdate".into(),
            summary: String::new(),
            data: String::new(),
        };
        let (old, old_n) = item(1_000).keys("1", "r", 5);
        let (new, new_n) = item(2_000).keys("1", "r", 1);
        assert!(new < old && new_n < old_n);
        let (same_later, _) = item(1_000).keys("1", "r", 6);
        assert!(
            same_later < old,
            "a later item of the same millisecond first"
        );
        assert_eq!(history_key_time(&old), Some(1_000));
        assert_eq!(history_key_time(&new_n), Some(2_000));
    }

    #[test]
    fn history_config_is_camel_case_without_state() {
        assert_eq!(camel("AlarmName"), "alarmName");
        assert_eq!(camel("OKActions"), "okactions");
        assert_eq!(camel("EvaluationPeriods"), "evaluationPeriods");
    }
}

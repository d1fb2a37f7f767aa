//! The alarm operations: PutMetricAlarm, PutCompositeAlarm, DescribeAlarms,
//! DescribeAlarmsForMetric, DescribeAlarmHistory, SetAlarmState,
//! Enable/DisableAlarmActions, DeleteAlarms, and the tag operations on alarm
//! ARNs. Each checks its input as CloudWatch does (codes and wording of the
//! API reference; where AWS's exact text is not known the message is
//! nimbus's, with AWS's code), then hands the change to [`crate::alarms`].

use super::{
    list, member, opt_bool, opt_double, opt_integer, opt_timestamp_ms, string, strings, Call,
};
use crate::alarm::{percentile_fraction, AlarmRule, AlarmState, ComparisonOperator, StateUpdate};
use crate::alarms::record::{self, AlarmRecord, MetricSpec};
use crate::alarms::Entry;
use crate::metrics::{MetricsError, Statistic, Unit};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use nimbus_core::AwsError;
use serde_json::{json, Value};
use std::sync::Arc;

/// Actions per state (the model's limit).
const MAX_ACTIONS: usize = 5;
/// Names per DescribeAlarms / DeleteAlarms / Enable / Disable call.
const MAX_NAMES: usize = 100;
const MAX_TAGS: usize = 50;
/// The longest evaluation: a day for periods under an hour, else a week.
const MAX_EVALUATION_SHORT_S: i64 = 86_400;
const MAX_EVALUATION_LONG_S: i64 = 7 * 86_400;

fn validation(message: impl Into<String>) -> AwsError {
    AwsError::new("ValidationError", message).with_status(400)
}

fn aws(e: MetricsError) -> AwsError {
    e.to_aws_error()
}

fn invalid(message: impl Into<String>) -> AwsError {
    MetricsError::InvalidParameterValue(message.into()).to_aws_error()
}

fn combination(message: impl Into<String>) -> AwsError {
    MetricsError::InvalidParameterCombination(message.into()).to_aws_error()
}

/// A required member, refused as the service's validation layer refuses it.
fn required<T>(value: Option<T>, member: &str) -> Result<T, AwsError> {
    value.ok_or_else(|| null_member(member))
}

fn null_member(member: &str) -> AwsError {
    validation(format!(
        "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
        lower_first(member)
    ))
}

fn lower_first(member: &str) -> String {
    let mut chars = member.chars();
    match chars.next() {
        Some(c) => c.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

fn length(value: &str, member: &str, min: usize, max: usize) -> Result<(), AwsError> {
    let n = value.chars().count();
    if n < min {
        return Err(validation(format!(
            "1 validation error detected: Value '{value}' at '{}' failed to satisfy constraint: Member must have length greater than or equal to {min}",
            lower_first(member)
        )));
    }
    if n > max {
        return Err(validation(format!(
            "1 validation error detected: Value '{value}' at '{}' failed to satisfy constraint: Member must have length less than or equal to {max}",
            lower_first(member)
        )));
    }
    Ok(())
}

fn alarm_name(input: &Value) -> Result<String, AwsError> {
    let name = required(string(input, "AlarmName", "AlarmName")?, "AlarmName")?;
    length(&name, "AlarmName", 1, 255)?;
    if name.contains('\0') {
        return Err(invalid("The alarm name must not contain a NUL character."));
    }
    Ok(name)
}

fn alarm_arn(call: &Call<'_>, name: &str) -> String {
    format!(
        "arn:aws:cloudwatch:{}:{}:alarm:{name}",
        call.region, call.account
    )
}

/// The three action lists, each an ARN list of at most five.
fn action_list(input: &Value, member_name: &str) -> Result<Vec<String>, AwsError> {
    let arns = strings(input, member_name)?;
    if arns.len() > MAX_ACTIONS {
        return Err(validation(format!(
            "1 validation error detected: Value '[{}]' at '{}' failed to satisfy constraint: Member must have length less than or equal to {MAX_ACTIONS}",
            arns.join(", "),
            lower_first(member_name)
        )));
    }
    for arn in &arns {
        if crate::alarms::actions::Action::parse(arn).is_none() {
            return Err(validation(format!("Invalid arn syntax: {arn}")));
        }
    }
    Ok(arns)
}

fn tags(input: &Value) -> Result<Vec<(String, String)>, AwsError> {
    let items = list(input, "Tags", "Tags")?;
    if items.len() > MAX_TAGS {
        return Err(validation(format!(
            "1 validation error detected: Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to {MAX_TAGS}"
        )));
    }
    let mut out: Vec<(String, String)> = Vec::with_capacity(items.len());
    for (i, t) in items.iter().enumerate() {
        let at = format!("Tags.member.{}", i + 1);
        let key = required(string(t, "Key", &format!("{at}.Key"))?, "Key")?;
        let value = required(string(t, "Value", &format!("{at}.Value"))?, "Value")?;
        length(&key, "Key", 1, 128)?;
        length(&value, "Value", 0, 256)?;
        set_tag(&mut out, key, value);
    }
    Ok(out)
}

/// Sets a tag, replacing the value of one with the same key.
fn set_tag(tags: &mut Vec<(String, String)>, key: String, value: String) {
    match tags.iter_mut().find(|(k, _)| *k == key) {
        Some(existing) => existing.1 = value,
        None => tags.push((key, value)),
    }
}

/// Changes the record of the one alarm `entry` names.
async fn modify_alarm(
    call: &Call<'_>,
    entry: &Entry,
    change: impl Fn(&mut AlarmRecord) -> bool,
) -> Result<(), AwsError> {
    call.alarms
        .modify(
            call.account,
            call.region,
            std::slice::from_ref(&entry.record.name),
            call.now_ms,
            change,
        )
        .await
        .map_err(aws)?;
    Ok(())
}

/// `Dimensions` as (name, value) pairs, read as GetMetricStatistics reads them.
fn dimensions(input: &Value) -> Result<Vec<(String, String)>, AwsError> {
    Ok(super::metrics::query_dimensions(input)?
        .into_iter()
        .map(|d| (d.name, d.value))
        .collect())
}

fn valid_period(period: i64) -> bool {
    matches!(period, 10 | 20 | 30) || (period >= 60 && period % 60 == 0)
}

/// The members metric and composite alarms share, from the input; the
/// state is set when the alarm is stored.
fn base_record(
    call: &Call<'_>,
    input: &Value,
    name: String,
    composite: bool,
) -> Result<AlarmRecord, AwsError> {
    let description = string(input, "AlarmDescription", "AlarmDescription")?;
    if let Some(d) = &description {
        length(d, "AlarmDescription", 0, 1024)?;
    }
    Ok(AlarmRecord {
        v: AlarmRecord::version(),
        arn: alarm_arn(call, &name),
        name,
        composite,
        description,
        actions_enabled: opt_bool(input, "ActionsEnabled", "ActionsEnabled")?.unwrap_or(true),
        ok_actions: action_list(input, "OKActions")?,
        alarm_actions: action_list(input, "AlarmActions")?,
        insufficient_data_actions: action_list(input, "InsufficientDataActions")?,
        config_updated_ms: call.now_ms,
        state: String::new(),
        state_reason: String::new(),
        state_reason_data: None,
        state_updated_ms: 0,
        state_transitioned_ms: 0,
        metric: None,
        queries: None,
        period: None,
        evaluation_periods: None,
        datapoints_to_alarm: None,
        threshold: None,
        comparison: None,
        treat_missing_data: None,
        evaluate_low_sample_count_percentile: None,
        alarm_rule: None,
        actions_suppressor: None,
        actions_suppressor_wait_period: None,
        actions_suppressor_extension_period: None,
        tags: tags(input)?,
        actions_due: false,
    })
}

/// PutMetricAlarm: a static-threshold alarm on one metric or on metric math.
pub async fn put_metric_alarm(call: &Call<'_>, input: &Value) -> Result<Value, AwsError> {
    let name = alarm_name(input)?;
    let evaluation_periods = required(
        opt_integer(input, "EvaluationPeriods", "EvaluationPeriods")?,
        "EvaluationPeriods",
    )?;
    let comparison_name = required(
        string(input, "ComparisonOperator", "ComparisonOperator")?,
        "ComparisonOperator",
    )?;
    let comparison = match ComparisonOperator::parse(&comparison_name) {
        Some(c) => c,
        None if comparison_name.contains("Band")
            || comparison_name.starts_with("LessThanLowerOrGreaterThanUpper")
            || comparison_name == "GreaterThanUpperThreshold"
            || comparison_name == "LessThanLowerThreshold" =>
        {
            return Err(validation(
                "Anomaly detection alarms (ThresholdMetricId with an anomaly detection band) are not supported by nimbus.",
            ))
        }
        None => {
            return Err(validation(format!(
                "1 validation error detected: Value '{comparison_name}' at 'comparisonOperator' failed to satisfy constraint: Member must satisfy enum value set: [LessThanLowerThreshold, LessThanThreshold, LessThanLowerOrGreaterThanUpperThreshold, GreaterThanUpperThreshold, GreaterThanOrEqualToThreshold, LessThanOrEqualToThreshold, GreaterThanThreshold]"
            )))
        }
    };
    if member(input, "ThresholdMetricId").is_some() {
        return Err(validation(
            "ThresholdMetricId is used with anomaly detection bands, which nimbus does not support.",
        ));
    }
    if evaluation_periods < 1 {
        return Err(validation(format!(
            "1 validation error detected: Value '{evaluation_periods}' at 'evaluationPeriods' failed to satisfy constraint: Member must have value greater than or equal to 1"
        )));
    }
    let datapoints_to_alarm = opt_integer(input, "DatapointsToAlarm", "DatapointsToAlarm")?;
    if let Some(m) = datapoints_to_alarm {
        if m < 1 {
            return Err(validation(format!(
                "1 validation error detected: Value '{m}' at 'datapointsToAlarm' failed to satisfy constraint: Member must have value greater than or equal to 1"
            )));
        }
        if m > evaluation_periods {
            return Err(validation(
                "DatapointsToAlarm must be less than or equal to EvaluationPeriods",
            ));
        }
    }
    let threshold = required(opt_double(input, "Threshold", "Threshold")?, "Threshold")?;
    if !threshold.is_finite() {
        return Err(invalid(format!(
            "The value {threshold} for parameter Threshold is invalid."
        )));
    }
    let treat_missing_data = string(input, "TreatMissingData", "TreatMissingData")?;
    if let Some(t) = &treat_missing_data {
        length(t, "TreatMissingData", 1, 255)?;
        if crate::alarm::TreatMissingData::parse(t).is_none() {
            return Err(validation(format!(
                "Option {t} is not supported. Supported options for parameter TreatMissingData are missing, ignore, breaching and notBreaching."
            )));
        }
    }
    let low_sample = string(
        input,
        "EvaluateLowSampleCountPercentile",
        "EvaluateLowSampleCountPercentile",
    )?;
    if let Some(l) = &low_sample {
        if crate::alarm::LowSampleCountPercentile::parse(l).is_none() {
            return Err(validation(format!(
                "Option {l} is not supported. Supported options for parameter EvaluateLowSampleCountPercentile are evaluate and ignore."
            )));
        }
    }
    let metric_name = string(input, "MetricName", "MetricName")?;
    let given_queries = member(input, "Metrics").cloned();
    let (metric, period, queries) = match (&metric_name, &given_queries) {
        (Some(_), Some(_)) => return Err(validation(
            "Exactly one of MetricName and Metrics must be specified: they are mutually exclusive.",
        )),
        (None, None) => {
            return Err(validation(
                "Exactly one of MetricName and Metrics must be specified.",
            ))
        }
        (Some(metric_name), None) => {
            let spec = metric_spec(input, metric_name)?;
            if low_sample.is_some()
                && spec
                    .extended_statistic
                    .as_deref()
                    .and_then(percentile_fraction)
                    .is_none()
            {
                return Err(validation(
                    "EvaluateLowSampleCountPercentile can only be used with a percentile ExtendedStatistic.",
                ));
            }
            let period = required(opt_integer(input, "Period", "Period")?, "Period")?;
            (Some(spec), period, None)
        }
        (None, Some(q)) => {
            for m in [
                "Namespace",
                "Statistic",
                "ExtendedStatistic",
                "Unit",
                "Period",
            ] {
                if member(input, m).is_some() {
                    return Err(validation(format!(
                        "{m} must not be specified with Metrics: the metric math queries say what is measured."
                    )));
                }
            }
            if !list(input, "Dimensions", "Dimensions")?.is_empty() {
                return Err(validation("Dimensions must not be specified with Metrics."));
            }
            let period = math_period(q)?;
            // GetMetricData's checks, and the queries as DescribeAlarms shows them.
            let parsed = super::metric_queries::parse_queries(q, "Metrics")?;
            let normal = Value::Array(parsed.iter().map(|q| q.to_json()).collect());
            (None, period, Some(normal))
        }
    };
    if !valid_period(period) {
        return Err(validation("Period must be 10, 20, 30 or a multiple of 60"));
    }
    let limit = if period < 3600 {
        MAX_EVALUATION_SHORT_S
    } else {
        MAX_EVALUATION_LONG_S
    };
    if period.saturating_mul(evaluation_periods) > limit {
        return Err(validation(format!(
            "The evaluation period of an alarm (Period x EvaluationPeriods) must not exceed {} for periods {} one hour.",
            if limit == MAX_EVALUATION_SHORT_S { "one day (86400 seconds)" } else { "seven days (604800 seconds)" },
            if limit == MAX_EVALUATION_SHORT_S { "under" } else { "of at least" }
        )));
    }
    let mut record = base_record(call, input, name, false)?;
    record.metric = metric;
    record.queries = queries;
    record.period = u32::try_from(period).ok();
    record.evaluation_periods = u32::try_from(evaluation_periods).ok();
    record.datapoints_to_alarm = datapoints_to_alarm.and_then(|m| u32::try_from(m).ok());
    record.threshold = Some(threshold);
    record.comparison = Some(comparison.as_str().to_string());
    record.treat_missing_data = treat_missing_data;
    record.evaluate_low_sample_count_percentile = low_sample;
    call.alarms
        .put(call.account, call.region, record, call.now_ms)
        .await
        .map_err(aws)?;
    Ok(json!({}))
}

fn metric_spec(input: &Value, metric_name: &str) -> Result<MetricSpec, AwsError> {
    length(metric_name, "MetricName", 1, 255)?;
    let namespace = required(string(input, "Namespace", "Namespace")?, "Namespace")?;
    length(&namespace, "Namespace", 1, 255)?;
    let statistic = string(input, "Statistic", "Statistic")?;
    let extended = string(input, "ExtendedStatistic", "ExtendedStatistic")?;
    match (&statistic, &extended) {
        (Some(_), Some(_)) => {
            return Err(combination(
                "The parameters Statistic and ExtendedStatistic are mutually exclusive and you have specified both.",
            ))
        }
        (None, None) => {
            return Err(combination(
                "One of the parameters Statistic and ExtendedStatistic must be specified.",
            ))
        }
        (Some(s), None) if Statistic::parse_basic(s).is_none() => {
            return Err(validation(format!(
                "1 validation error detected: Value '{s}' at 'statistic' failed to satisfy constraint: Member must satisfy enum value set: [Maximum, SampleCount, Sum, Minimum, Average]"
            )))
        }
        (None, Some(e)) if Statistic::parse_extended(e).is_none() => {
            return Err(invalid(format!(
                "The value {e} for parameter ExtendedStatistic is not supported."
            )))
        }
        _ => {}
    }
    let unit = string(input, "Unit", "Unit")?;
    if let Some(u) = &unit {
        Unit::parse(u, "Unit").map_err(aws)?;
    }
    Ok(MetricSpec {
        namespace,
        metric_name: metric_name.to_string(),
        dimensions: dimensions(input)?,
        statistic,
        extended_statistic: extended,
        unit,
    })
}

/// The period of a metric-math alarm: that of its returned query (a
/// `MetricStat`'s period, or the query's own `Period`), checked as
/// PutMetricAlarm checks `Metrics`: a list of at most 10 queries with ids,
/// exactly one of which returns data.
fn math_period(queries: &Value) -> Result<i64, AwsError> {
    let Value::Array(items) = queries else {
        return Err(invalid("The value for parameter Metrics is invalid."));
    };
    if items.is_empty() || items.len() > 10 {
        return Err(validation(
            "Metrics must have between 1 and 10 members for an alarm.",
        ));
    }
    let returning: Vec<&Value> = items
        .iter()
        .filter(|q| {
            member(q, "ReturnData")
                .and_then(Value::as_bool)
                .unwrap_or(true)
        })
        .collect();
    if returning.len() != 1 {
        return Err(validation(
            "Metrics list must contain exactly one metric matching the ReturnData parameter",
        ));
    }
    for (i, q) in items.iter().enumerate() {
        let at = format!("Metrics.member.{}", i + 1);
        if string(q, "Id", &format!("{at}.Id"))?.is_none() {
            return Err(null_member("Id"));
        }
        if member(q, "MetricStat").is_some() == member(q, "Expression").is_some() {
            return Err(validation(format!(
                "Exactly one of MetricStat and Expression must be specified in {at}."
            )));
        }
    }
    let chosen = returning[0];
    let period = opt_integer(chosen, "Period", "Period")?.or(member(chosen, "MetricStat")
        .map(|s| opt_integer(s, "Period", "MetricStat.Period"))
        .transpose()?
        .flatten());
    // An expression's period is that of the queries it reads.
    let period = period.or_else(|| {
        items.iter().find_map(|q| {
            member(q, "MetricStat")
                .and_then(|s| member(s, "Period"))
                .and_then(Value::as_i64)
        })
    });
    required(period, "Period")
}

/// PutCompositeAlarm.
pub async fn put_composite_alarm(call: &Call<'_>, input: &Value) -> Result<Value, AwsError> {
    let name = alarm_name(input)?;
    let rule_text = required(string(input, "AlarmRule", "AlarmRule")?, "AlarmRule")?;
    let rule = AlarmRule::parse(&rule_text).map_err(|e| validation(e.message()))?;
    let arn = alarm_arn(call, &name);
    if rule.alarms().iter().any(|a| *a == name || *a == arn) {
        return Err(validation(format!(
            "The alarm rule of {name} must not name the alarm itself."
        )));
    }
    rule.check_alarms_exist(&|a: &str| call.alarms.exists(call.account, call.region, a))
        .map_err(|e| validation(e.message()))?;
    let suppressor = string(input, "ActionsSuppressor", "ActionsSuppressor")?;
    let mut record = base_record(call, input, name, true)?;
    record.alarm_rule = Some(rule_text);
    if suppressor.is_some() {
        record.actions_suppressor_wait_period = opt_integer(
            input,
            "ActionsSuppressorWaitPeriod",
            "ActionsSuppressorWaitPeriod",
        )?;
        record.actions_suppressor_extension_period = opt_integer(
            input,
            "ActionsSuppressorExtensionPeriod",
            "ActionsSuppressorExtensionPeriod",
        )?;
    }
    record.actions_suppressor = suppressor;
    call.alarms
        .put(call.account, call.region, record, call.now_ms)
        .await
        .map_err(aws)?;
    Ok(json!({}))
}

fn max_records(input: &Value, default: i64) -> Result<usize, AwsError> {
    let n = opt_integer(input, "MaxRecords", "MaxRecords")?.unwrap_or(default);
    if !(1..=100).contains(&n) {
        return Err(validation(format!(
            "1 validation error detected: Value '{n}' at 'maxRecords' failed to satisfy constraint: Member must have value {} 100",
            if n < 1 { "greater than or equal to 1, less than or equal to" } else { "less than or equal to" }
        )));
    }
    Ok(n as usize)
}

fn bad_token() -> AwsError {
    AwsError::new(
        "InvalidNextToken",
        "The service returned an invalid next token.",
    )
    .with_status(400)
}

fn alarm_types(input: &Value, default_both: bool) -> Result<(bool, bool), AwsError> {
    let types = strings(input, "AlarmTypes")?;
    if types.is_empty() {
        return Ok((true, default_both));
    }
    let mut out = (false, false);
    for t in &types {
        match t.as_str() {
            "MetricAlarm" => out.0 = true,
            "CompositeAlarm" => out.1 = true,
            other => {
                return Err(validation(format!(
                    "1 validation error detected: Value '[{other}]' at 'alarmTypes' failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value set: [CompositeAlarm, MetricAlarm]]"
                )))
            }
        }
    }
    Ok(out)
}

fn state_filter(input: &Value) -> Result<Option<String>, AwsError> {
    let state = string(input, "StateValue", "StateValue")?;
    if let Some(s) = &state {
        if AlarmState::parse(s).is_none() {
            return Err(validation(format!(
                "1 validation error detected: Value '{s}' at 'stateValue' failed to satisfy constraint: Member must satisfy enum value set: [INSUFFICIENT_DATA, ALARM, OK]"
            )));
        }
    }
    Ok(state)
}

/// DescribeAlarms.
pub fn describe_alarms(call: &Call<'_>, input: &Value) -> Result<Value, AwsError> {
    call.alarms.ensure_loaded(call.now_ms).map_err(aws)?;
    let names = strings(input, "AlarmNames")?;
    if names.len() > MAX_NAMES {
        return Err(validation(format!(
            "1 validation error detected: Value at 'alarmNames' failed to satisfy constraint: Member must have length less than or equal to {MAX_NAMES}"
        )));
    }
    let prefix = string(input, "AlarmNamePrefix", "AlarmNamePrefix")?;
    let action_prefix = string(input, "ActionPrefix", "ActionPrefix")?;
    let children_of = string(input, "ChildrenOfAlarmName", "ChildrenOfAlarmName")?;
    let parents_of = string(input, "ParentsOfAlarmName", "ParentsOfAlarmName")?;
    let state = state_filter(input)?;
    let limit = max_records(input, 50)?;
    if !names.is_empty() && prefix.is_some() {
        return Err(combination(
            "AlarmNames and AlarmNamePrefix are mutually exclusive: specify one of them.",
        ));
    }
    let relational = children_of.is_some() || parents_of.is_some();
    if relational
        && (children_of.is_some() && parents_of.is_some()
            || !names.is_empty()
            || prefix.is_some()
            || action_prefix.is_some()
            || state.is_some()
            || member(input, "AlarmTypes").is_some())
    {
        return Err(combination(
            "With ChildrenOfAlarmName or ParentsOfAlarmName, only MaxRecords and NextToken may be specified.",
        ));
    }
    let (metric_alarms, composite_alarms) = alarm_types(input, relational)?;
    let after = match string(input, "NextToken", "NextToken")? {
        Some(token) => Some(decode_name_token(&token)?),
        None => None,
    };
    let admits = |e: &Entry| {
        let r = &e.record;
        (if r.composite {
            composite_alarms
        } else {
            metric_alarms
        }) && (names.is_empty() || names.contains(&r.name))
            && prefix
                .as_ref()
                .is_none_or(|p| r.name.starts_with(p.as_str()))
            && state.as_ref().is_none_or(|s| r.state == *s)
            && action_prefix.as_ref().is_none_or(|p| {
                r.ok_actions
                    .iter()
                    .chain(&r.alarm_actions)
                    .chain(&r.insufficient_data_actions)
                    .any(|a| a.starts_with(p.as_str()))
            })
    };
    let candidates: Vec<Arc<Entry>> = if let Some(child_of) = &children_of {
        match call.alarms.get(call.account, call.region, child_of) {
            Some(composite) => {
                let mut c = call.alarms.children_of(&composite);
                c.sort_by(|a, b| a.record.name.cmp(&b.record.name));
                c.retain(|e| after.as_ref().is_none_or(|a| e.record.name > *a));
                c
            }
            None => Vec::new(),
        }
    } else if let Some(parent_of) = &parents_of {
        match call.alarms.get(call.account, call.region, parent_of) {
            Some(child) => {
                let mut p = call.alarms.parents_of(&child);
                p.retain(|e| after.as_ref().is_none_or(|a| e.record.name > *a));
                p
            }
            None => Vec::new(),
        }
    } else {
        // One more than a page: whether there is a next page.
        call.alarms.list_where(
            call.account,
            call.region,
            after.as_deref(),
            limit + 1,
            admits,
        )
    };
    let (mut metrics_out, mut composites_out) = (Vec::new(), Vec::new());
    let mut last = None;
    let mut more = false;
    for entry in candidates {
        let r = &entry.record;
        let admitted = admits(&entry);
        if !admitted {
            continue;
        }
        if metrics_out.len() + composites_out.len() == limit {
            more = true;
            break;
        }
        last = Some(r.name.clone());
        if r.composite {
            composites_out.push(r.to_api());
        } else {
            metrics_out.push(r.to_api());
        }
    }
    let mut out = json!({"MetricAlarms": metrics_out, "CompositeAlarms": composites_out});
    if let (true, Some(last)) = (more, last) {
        out["NextToken"] = json!(B64.encode(last.as_bytes()));
    }
    Ok(out)
}

fn decode_name_token(token: &str) -> Result<String, AwsError> {
    B64.decode(token.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(bad_token)
}

/// DescribeAlarmsForMetric: the metric alarms on one metric, narrowed by
/// whatever else the call names.
pub fn describe_alarms_for_metric(call: &Call<'_>, input: &Value) -> Result<Value, AwsError> {
    call.alarms.ensure_loaded(call.now_ms).map_err(aws)?;
    let metric_name = required(string(input, "MetricName", "MetricName")?, "MetricName")?;
    let namespace = required(string(input, "Namespace", "Namespace")?, "Namespace")?;
    let statistic = string(input, "Statistic", "Statistic")?;
    let extended = string(input, "ExtendedStatistic", "ExtendedStatistic")?;
    let period = opt_integer(input, "Period", "Period")?;
    let unit = string(input, "Unit", "Unit")?;
    let mut wanted = dimensions(input)?;
    wanted.sort();
    let given_dimensions = member(input, "Dimensions").is_some();
    let alarms: Vec<Value> = call
        .alarms
        .list(call.account, call.region, None)
        .into_iter()
        .filter(|e| {
            let Some(m) = &e.record.metric else {
                return false;
            };
            let mut dims = m.dimensions.clone();
            dims.sort();
            m.metric_name == metric_name
                && m.namespace == namespace
                && (!given_dimensions || dims == wanted)
                && statistic
                    .as_ref()
                    .is_none_or(|s| m.statistic.as_ref() == Some(s))
                && extended
                    .as_ref()
                    .is_none_or(|s| m.extended_statistic.as_ref() == Some(s))
                && period.is_none_or(|p| e.record.period.map(i64::from) == Some(p))
                && unit.as_ref().is_none_or(|u| m.unit.as_ref() == Some(u))
        })
        .map(|e| e.record.to_api())
        .collect();
    Ok(json!({ "MetricAlarms": alarms }))
}

/// DescribeAlarmHistory: newest first unless ScanBy says otherwise.
pub fn describe_alarm_history(call: &Call<'_>, input: &Value) -> Result<Value, AwsError> {
    let name = string(input, "AlarmName", "AlarmName")?;
    let item_type = string(input, "HistoryItemType", "HistoryItemType")?;
    if let Some(t) = &item_type {
        if !matches!(
            t.as_str(),
            "ConfigurationUpdate"
                | "StateUpdate"
                | "Action"
                | "AlarmContributorStateUpdate"
                | "AlarmContributorAction"
        ) {
            return Err(validation(format!(
                "1 validation error detected: Value '{t}' at 'historyItemType' failed to satisfy constraint: Member must satisfy enum value set: [AlarmContributorStateUpdate, AlarmContributorAction, ConfigurationUpdate, StateUpdate, Action]"
            )));
        }
    }
    let (metric_alarms, composite_alarms) = alarm_types(input, name.is_some())?;
    let start = opt_timestamp_ms(input, "StartDate", "StartDate")?;
    let end = opt_timestamp_ms(input, "EndDate", "EndDate")?;
    let limit = max_records(input, 100)?;
    let ascending = match string(input, "ScanBy", "ScanBy")?.as_deref() {
        None | Some("TimestampDescending") => false,
        Some("TimestampAscending") => true,
        Some(other) => {
            return Err(validation(format!(
                "1 validation error detected: Value '{other}' at 'scanBy' failed to satisfy constraint: Member must satisfy enum value set: [TimestampDescending, TimestampAscending]"
            )))
        }
    };
    let token = match string(input, "NextToken", "NextToken")? {
        Some(t) => Some(B64.decode(t.as_bytes()).map_err(|_| bad_token())?),
        None => None,
    };
    let admits = |item: &record::HistoryItem| {
        let t = item.timestamp_ms as i64;
        (if item.alarm_type == "CompositeAlarm" {
            composite_alarms
        } else {
            metric_alarms
        }) && item_type.as_ref().is_none_or(|w| item.item_type == *w)
            && start.is_none_or(|s| t >= s)
            && end.is_none_or(|e| t <= e)
    };
    let mut items: Vec<(Vec<u8>, record::HistoryItem)> = Vec::new();
    let mut more = false;
    if !ascending {
        // Newest first is the store's order: read from the token on.
        let from = token.as_ref().map(|k| {
            let mut k = k.clone();
            k.push(0);
            k
        });
        call.alarms
            .scan_history(
                call.account,
                call.region,
                name.as_deref(),
                from.as_deref(),
                |key, item| {
                    if start.is_some_and(|s| (item.timestamp_ms as i64) < s) {
                        return false;
                    }
                    if !admits(&item) {
                        return true;
                    }
                    if items.len() == limit {
                        more = true;
                        return false;
                    }
                    items.push((key.to_vec(), item));
                    true
                },
            )
            .map_err(aws)?;
    } else {
        // Oldest first: the newest `limit` older than the token's item,
        // read newest first and kept as a window.
        let mut window: std::collections::VecDeque<(Vec<u8>, record::HistoryItem)> =
            std::collections::VecDeque::new();
        call.alarms
            .scan_history(
                call.account,
                call.region,
                name.as_deref(),
                None,
                |key, item| {
                    if token.as_ref().is_some_and(|t| key >= t.as_slice()) {
                        return true;
                    }
                    if start.is_some_and(|s| (item.timestamp_ms as i64) < s) {
                        return false;
                    }
                    if admits(&item) {
                        window.push_back((key.to_vec(), item));
                        if window.len() > limit {
                            window.pop_front();
                            more = true;
                        }
                    }
                    true
                },
            )
            .map_err(aws)?;
        items = window.into_iter().rev().collect();
    }
    let mut out = json!({
        "AlarmHistoryItems": items.iter().map(|(_, i)| i.to_api()).collect::<Vec<_>>(),
    });
    if more {
        if let Some((key, _)) = items.last() {
            out["NextToken"] = json!(B64.encode(key));
        }
    }
    Ok(out)
}

/// SetAlarmState: the state until the next evaluation says otherwise.
pub async fn set_alarm_state(call: &Call<'_>, input: &Value) -> Result<Value, AwsError> {
    let name = alarm_name(input)?;
    let state_name = required(string(input, "StateValue", "StateValue")?, "StateValue")?;
    let reason = required(string(input, "StateReason", "StateReason")?, "StateReason")?;
    length(&reason, "StateReason", 0, 1023)?;
    let Some(state) = AlarmState::parse(&state_name) else {
        return Err(validation(format!(
            "1 validation error detected: Value '{state_name}' at 'stateValue' failed to satisfy constraint: Member must satisfy enum value set: [INSUFFICIENT_DATA, ALARM, OK]"
        )));
    };
    let reason_data = string(input, "StateReasonData", "StateReasonData")?;
    if let Some(d) = &reason_data {
        length(d, "StateReasonData", 0, 4000)?;
        if serde_json::from_str::<Value>(d).is_err() {
            return Err(
                AwsError::new("InvalidFormat", "StateReasonData is not valid JSON.")
                    .with_status(400),
            );
        }
    }
    call.alarms.ensure_loaded(call.now_ms).map_err(aws)?;
    let Some(entry) = call.alarms.get(call.account, call.region, &name) else {
        return Err(not_found(&name));
    };
    let update = StateUpdate {
        state,
        reason,
        reason_data: reason_data.unwrap_or_default(),
    };
    call.alarms
        .transition(&entry, update, call.now_ms, 0)
        .await
        .map_err(aws)?;
    Ok(json!({}))
}

fn not_found(name: &str) -> AwsError {
    AwsError::new("ResourceNotFound", format!("Alarm {name} not found")).with_status(404)
}

fn names(input: &Value) -> Result<Vec<String>, AwsError> {
    let names = required(
        member(input, "AlarmNames")
            .map(|_| strings(input, "AlarmNames"))
            .transpose()?,
        "AlarmNames",
    )?;
    if names.len() > MAX_NAMES {
        return Err(validation(format!(
            "1 validation error detected: Value at 'alarmNames' failed to satisfy constraint: Member must have length less than or equal to {MAX_NAMES}"
        )));
    }
    Ok(names)
}

/// EnableAlarmActions / DisableAlarmActions.
pub async fn set_actions_enabled(
    call: &Call<'_>,
    input: &Value,
    enabled: bool,
) -> Result<Value, AwsError> {
    let names = names(input)?;
    call.alarms
        .modify(call.account, call.region, &names, call.now_ms, |r| {
            let changes = r.actions_enabled != enabled;
            r.actions_enabled = enabled;
            changes
        })
        .await
        .map_err(aws)?;
    Ok(json!({}))
}

/// DeleteAlarms. A composite alarm that another composite's rule names
/// cannot go while that rule names it, as in CloudWatch.
pub async fn delete_alarms(call: &Call<'_>, input: &Value) -> Result<Value, AwsError> {
    let names = names(input)?;
    call.alarms.ensure_loaded(call.now_ms).map_err(aws)?;
    for name in &names {
        let Some(entry) = call.alarms.get(call.account, call.region, name) else {
            continue;
        };
        let parents: Vec<String> = call
            .alarms
            .parents_of(&entry)
            .into_iter()
            .filter(|p| !names.contains(&p.record.name))
            .map(|p| p.record.name.clone())
            .collect();
        if entry.record.composite && !parents.is_empty() {
            return Err(validation(format!(
                "Composite alarm {name} cannot be deleted because it is used in the alarm rule of {}",
                parents.join(", ")
            )));
        }
    }
    call.alarms
        .delete(call.account, call.region, &names, call.now_ms)
        .await
        .map_err(aws)?;
    Ok(json!({}))
}

/// The alarm an ARN names in the caller's account and region.
fn tagged_alarm(call: &Call<'_>, input: &Value) -> Result<Arc<Entry>, AwsError> {
    let arn = required(string(input, "ResourceARN", "ResourceARN")?, "ResourceARN")?;
    let prefix = format!("arn:aws:cloudwatch:{}:{}:alarm:", call.region, call.account);
    call.alarms.ensure_loaded(call.now_ms).map_err(aws)?;
    arn.strip_prefix(&prefix)
        .and_then(|name| call.alarms.get(call.account, call.region, name))
        .ok_or_else(|| {
            AwsError::new(
                "ResourceNotFoundException",
                format!("The resource {arn} does not exist."),
            )
            .with_status(404)
        })
}

pub fn list_tags_for_resource(call: &Call<'_>, input: &Value) -> Result<Value, AwsError> {
    let entry = tagged_alarm(call, input)?;
    let tags: Vec<Value> = entry
        .record
        .tags
        .iter()
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect();
    Ok(json!({ "Tags": tags }))
}

pub async fn tag_resource(call: &Call<'_>, input: &Value) -> Result<Value, AwsError> {
    let entry = tagged_alarm(call, input)?;
    required(member(input, "Tags"), "Tags")?;
    let new = tags(input)?;
    let mut merged = entry.record.tags.clone();
    for (k, v) in new {
        set_tag(&mut merged, k, v);
    }
    if merged.len() > MAX_TAGS {
        return Err(AwsError::new(
            "LimitExceededException",
            format!("An alarm can have at most {MAX_TAGS} tags."),
        )
        .with_status(400));
    }
    modify_alarm(call, &entry, |r| {
        r.tags = merged.clone();
        true
    })
    .await?;
    Ok(json!({}))
}

pub async fn untag_resource(call: &Call<'_>, input: &Value) -> Result<Value, AwsError> {
    let entry = tagged_alarm(call, input)?;
    let keys = required(
        member(input, "TagKeys")
            .map(|_| strings(input, "TagKeys"))
            .transpose()?,
        "TagKeys",
    )?;
    modify_alarm(call, &entry, |r| {
        let before = r.tags.len();
        r.tags.retain(|(k, _)| !keys.contains(k));
        r.tags.len() != before
    })
    .await?;
    Ok(json!({}))
}

//! The metric operations: PutMetricData, GetMetricStatistics and
//! ListMetrics. Each reads its input into the metrics library's types,
//! leaves CloudWatch's rules on data and statistics to the library (which
//! answers in CloudWatch's codes and words), and writes the output shape of
//! the model: timestamps as epoch seconds, units by their wire names.

use super::{
    doubles, list, member, opt_bool, opt_double, opt_integer, opt_timestamp_ms, string, strings,
    Call,
};
use crate::metrics::identity::{self, MAX_DIMENSIONS};
use crate::metrics::{
    stats, Dimension, DimensionInput, MetricDatum, MetricIdentity, MetricsError, Publisher,
    StatisticSetInput, StatisticsRequest, Unit,
};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use nimbus_core::{timestamp, AwsError};
use serde_json::{json, Map, Value};

/// Metrics per ListMetrics page, as CloudWatch pages them.
const LIST_PAGE: usize = 500;
/// The most dimension filters ListMetrics takes (the model's limit).
const MAX_DIMENSION_FILTERS: usize = 10;
/// Series read from the store at a time while a listing filters.
const LIST_CHUNK: usize = 512;
/// Series one ListMetrics call may examine before it answers with what it
/// found and a token to go on: a filter that matches little in a large
/// account costs each call a bounded amount of work.
const LIST_SCAN_BUDGET: usize = 50_000;
/// RecentlyActive=PT3H: published within the last three hours.
const RECENTLY_ACTIVE_MS: u64 = 3 * 3_600_000;
/// ListMetrics leaves out metrics with no data published for two weeks.
const LISTED_FOR_MS: u64 = 14 * 24 * 3_600_000;
/// Follows a metric's key prefix in a token: greater than any unit that may
/// come after the prefix (a unit's length is below 256), so the next page
/// starts past every unit of that metric.
const PAST_UNITS: [u8; 2] = [0xff, 0xff];

fn aws(e: MetricsError) -> AwsError {
    e.to_aws_error()
}

fn missing(parameter: &str) -> AwsError {
    MetricsError::MissingParameter(format!("The parameter {parameter} is required.")).to_aws_error()
}

fn invalid(message: String) -> AwsError {
    MetricsError::InvalidParameterValue(message).to_aws_error()
}

/// PutMetricData: the data of `MetricData` and of each `EntityMetricData`
/// (its entity is not kept yet), stored as one atomic write and answered
/// once durable.
pub async fn put_metric_data(call: &Call<'_>, input: &Value) -> Result<Value, AwsError> {
    let namespace = string(input, "Namespace", "Namespace")?;
    let mut data = Vec::new();
    for (i, item) in list(input, "MetricData", "MetricData")?.iter().enumerate() {
        data.push(datum(item, &format!("MetricData.member.{}", i + 1))?);
    }
    for (e, entity) in list(input, "EntityMetricData", "EntityMetricData")?
        .iter()
        .enumerate()
    {
        let path = format!("EntityMetricData.member.{}.MetricData", e + 1);
        for (i, item) in list(entity, "MetricData", &path)?.iter().enumerate() {
            data.push(datum(item, &format!("{path}.member.{}", i + 1))?);
        }
    }
    let durable = call
        .metrics
        .put_metric_data(
            call.account,
            call.region,
            namespace.as_deref(),
            &data,
            Publisher::Client,
            call.now_ms,
        )
        .map_err(aws)?;
    durable.await.map_err(|e| aws(e.into()))?;
    Ok(json!({}))
}

/// One `MetricDatum` of the input, read as the library takes it.
fn datum(v: &Value, path: &str) -> Result<MetricDatum, AwsError> {
    let mut dimensions = Vec::new();
    let dpath = format!("{path}.Dimensions");
    for (j, d) in list(v, "Dimensions", &dpath)?.iter().enumerate() {
        let at = format!("{dpath}.member.{}", j + 1);
        dimensions.push(DimensionInput {
            name: string(d, "Name", &format!("{at}.Name"))?,
            value: string(d, "Value", &format!("{at}.Value"))?,
        });
    }
    let statistic_values = match member(v, "StatisticValues") {
        None => None,
        Some(set) => {
            let at = format!("{path}.StatisticValues");
            Some(StatisticSetInput {
                sample_count: opt_double(set, "SampleCount", &format!("{at}.SampleCount"))?,
                sum: opt_double(set, "Sum", &format!("{at}.Sum"))?,
                minimum: opt_double(set, "Minimum", &format!("{at}.Minimum"))?,
                maximum: opt_double(set, "Maximum", &format!("{at}.Maximum"))?,
            })
        }
    };
    Ok(MetricDatum {
        metric_name: string(v, "MetricName", &format!("{path}.MetricName"))?,
        dimensions,
        timestamp_ms: opt_timestamp_ms(v, "Timestamp", &format!("{path}.Timestamp"))?,
        value: opt_double(v, "Value", &format!("{path}.Value"))?,
        statistic_values,
        values: doubles(v, "Values", &format!("{path}.Values"))?,
        counts: doubles(v, "Counts", &format!("{path}.Counts"))?,
        unit: string(v, "Unit", &format!("{path}.Unit"))?,
        storage_resolution: opt_integer(
            v,
            "StorageResolution",
            &format!("{path}.StorageResolution"),
        )?,
    })
}

/// The `Dimensions` of a query: every member needs a name and a value.
pub(super) fn query_dimensions(input: &Value) -> Result<Vec<Dimension>, AwsError> {
    let items = list(input, "Dimensions", "Dimensions")?;
    if items.len() > MAX_DIMENSIONS {
        return Err(invalid(format!(
            "The collection Dimensions must not have a size greater than {MAX_DIMENSIONS}."
        )));
    }
    let mut out = Vec::with_capacity(items.len());
    for (j, d) in items.iter().enumerate() {
        let at = format!("Dimensions.member.{}", j + 1);
        let name = string(d, "Name", &format!("{at}.Name"))?;
        let value = string(d, "Value", &format!("{at}.Value"))?;
        match (name, value) {
            (Some(name), Some(value)) => out.push(Dimension::new(name, value)),
            (None, _) => return Err(missing(&format!("{at}.Name"))),
            (_, None) => return Err(missing(&format!("{at}.Value"))),
        }
    }
    Ok(out)
}

/// GetMetricStatistics: one datapoint per period with data (per unit when
/// no Unit is asked), the basic statistics as members and the extended
/// ones in `ExtendedStatistics` under the names they were asked by.
pub fn get_metric_statistics(call: &Call<'_>, input: &Value) -> Result<Value, AwsError> {
    let namespace = string(input, "Namespace", "Namespace")?.ok_or_else(|| missing("Namespace"))?;
    let metric_name =
        string(input, "MetricName", "MetricName")?.ok_or_else(|| missing("MetricName"))?;
    let start_ms =
        opt_timestamp_ms(input, "StartTime", "StartTime")?.ok_or_else(|| missing("StartTime"))?;
    let end_ms =
        opt_timestamp_ms(input, "EndTime", "EndTime")?.ok_or_else(|| missing("EndTime"))?;
    let period_s = opt_integer(input, "Period", "Period")?.ok_or_else(|| missing("Period"))?;
    let dimensions = query_dimensions(input)?;
    let basic = strings(input, "Statistics")?;
    let extended = strings(input, "ExtendedStatistics")?;
    let statistics = stats::parse_requested(&basic, &extended).map_err(aws)?;
    let unit = string(input, "Unit", "Unit")?
        .map(|u| Unit::parse(&u, "Unit"))
        .transpose()
        .map_err(aws)?;
    let metric = MetricIdentity::new(namespace, metric_name.clone(), dimensions);
    let request = StatisticsRequest {
        account: call.account,
        region: call.region,
        metric: &metric,
        unit,
        start_ms,
        end_ms,
        period_s,
        statistics: &statistics,
    };
    let points = call
        .metrics
        .get_metric_statistics(&request, call.now_ms)
        .map_err(aws)?;
    // The names the values go under, in the order of `statistics` (the
    // basic ones first, as parse_requested returns them).
    let names: Vec<(&str, bool)> = basic
        .iter()
        .map(|s| (s.as_str(), false))
        .chain(extended.iter().map(|s| (s.as_str(), true)))
        .collect();
    let datapoints: Vec<Value> = points
        .iter()
        .map(|p| {
            let mut dp = Map::new();
            dp.insert(
                "Timestamp".into(),
                timestamp::to_value(p.timestamp_ms as f64 / 1000.0),
            );
            let mut ext = Map::new();
            for (&(name, is_extended), value) in names.iter().zip(&p.values) {
                // A statistic the period's data cannot give (a percentile
                // over a statistic set or negative values) is left out.
                let Some(value) = value else { continue };
                if is_extended {
                    ext.insert(name.to_string(), json!(value));
                } else {
                    dp.insert(name.to_string(), json!(value));
                }
            }
            if !ext.is_empty() {
                dp.insert("ExtendedStatistics".into(), Value::Object(ext));
            }
            dp.insert("Unit".into(), json!(p.unit.as_str()));
            Value::Object(dp)
        })
        .collect();
    Ok(json!({ "Label": metric_name, "Datapoints": datapoints }))
}

/// A ListMetrics dimension filter: a name, and a value unless any will do.
struct DimensionFilter {
    name: String,
    value: Option<String>,
}

impl DimensionFilter {
    fn admits(&self, dimensions: &[Dimension]) -> bool {
        dimensions
            .iter()
            .any(|d| d.name == self.name && self.value.as_ref().is_none_or(|v| *v == d.value))
    }
}

fn dimension_filters(input: &Value) -> Result<Vec<DimensionFilter>, AwsError> {
    let items = list(input, "Dimensions", "Dimensions")?;
    if items.len() > MAX_DIMENSION_FILTERS {
        return Err(invalid(format!(
            "The collection Dimensions must not have a size greater than {MAX_DIMENSION_FILTERS}."
        )));
    }
    let mut out = Vec::with_capacity(items.len());
    for (j, d) in items.iter().enumerate() {
        let at = format!("Dimensions.member.{}", j + 1);
        let name = string(d, "Name", &format!("{at}.Name"))?
            .ok_or_else(|| missing(&format!("{at}.Name")))?;
        let value = string(d, "Value", &format!("{at}.Value"))?;
        out.push(DimensionFilter { name, value });
    }
    Ok(out)
}

/// What a ListMetrics call looks for: the series under `prefix` (the
/// account and region, or a namespace in it, or a name in that) that pass
/// the filters the prefix does not already apply.
struct Scan<'a> {
    prefix: Vec<u8>,
    metric_name: Option<&'a str>,
    filters: &'a [DimensionFilter],
    /// Published at or after this (epoch ms).
    active_since_ms: u64,
}

impl Scan<'_> {
    /// One page: up to [`LIST_PAGE`] metrics from `after` on, and the token
    /// of the next page when there may be more.
    fn page(
        &self,
        call: &Call<'_>,
        mut after: Option<Vec<u8>>,
    ) -> Result<(Vec<MetricIdentity>, Option<String>), AwsError> {
        let mut listed: Vec<MetricIdentity> = Vec::new();
        // The metric whose series (one per unit, adjacent in key order) are
        // being read, and whether it is listed already.
        let mut current: Option<(Vec<u8>, bool)> = None;
        let mut last_listed: Option<Vec<u8>> = None;
        let mut scanned = 0usize;
        loop {
            let (chunk, more) = call
                .metrics
                .list_series_in(&self.prefix, after.as_deref(), LIST_CHUNK)
                .map_err(aws)?;
            for info in chunk {
                let metric = &info.name.identity;
                let key = metric.key_prefix(call.account, call.region);
                if current.as_ref().is_none_or(|(k, _)| *k != key) {
                    // Between two metrics: the place to stop when this call
                    // has read enough (the next page starts past the one done).
                    if scanned >= LIST_SCAN_BUDGET {
                        if let Some((done, _)) = &current {
                            return Ok((listed, Some(token_past(done))));
                        }
                    }
                    current = Some((key.clone(), false));
                }
                scanned += 1;
                let already = current.as_ref().is_some_and(|(_, l)| *l);
                let admitted = !already
                    && self.metric_name.is_none_or(|n| n == metric.metric_name)
                    && self.filters.iter().all(|f| f.admits(metric.dimensions()))
                    && info.last_put_ms >= self.active_since_ms;
                if !admitted {
                    continue;
                }
                if listed.len() == LIST_PAGE {
                    // A metric for the next page, which starts past the last listed.
                    let token = last_listed.as_deref().map(token_past);
                    return Ok((listed, token));
                }
                listed.push(metric.clone());
                last_listed = Some(key.clone());
                current = Some((key, true));
            }
            match more {
                Some(k) => after = Some(k),
                None => return Ok((listed, None)),
            }
        }
    }
}

/// The token of a page that starts past every unit of the metric whose
/// key prefix is `metric_key`.
fn token_past(metric_key: &[u8]) -> String {
    encode_token(&[metric_key, &PAST_UNITS].concat())
}

fn encode_token(after: &[u8]) -> String {
    B64.encode(after)
}

/// A NextToken back into the key the listing goes on after. It must lie in
/// the caller's account and region: a token is never a way into another's.
fn decode_token(token: &str, scope: &[u8]) -> Result<Vec<u8>, AwsError> {
    B64.decode(token)
        .ok()
        .filter(|k| k.starts_with(scope))
        .ok_or_else(|| {
            invalid(format!(
                "The value {token} for parameter NextToken is invalid."
            ))
        })
}

/// ListMetrics: the metrics of the caller's account and region that pass
/// every filter (namespace and name exactly; each dimension filter by a
/// dimension of that name, and value when given; RecentlyActive by data
/// published in the last three hours), each metric once whatever units its
/// data came in, 500 to a page.
pub fn list_metrics(call: &Call<'_>, input: &Value) -> Result<Value, AwsError> {
    let namespace = string(input, "Namespace", "Namespace")?;
    let metric_name = string(input, "MetricName", "MetricName")?;
    let filters = dimension_filters(input)?;
    let recent_only = match string(input, "RecentlyActive", "RecentlyActive")?.as_deref() {
        None => false,
        Some("PT3H") => true,
        Some(_) => {
            return Err(invalid(
                "The parameter RecentlyActive must be a value in the set [ PT3H ].".into(),
            ))
        }
    };
    let linked =
        opt_bool(input, "IncludeLinkedAccounts", "IncludeLinkedAccounts")?.unwrap_or(false);
    let owning = string(input, "OwningAccount", "OwningAccount")?;
    let token = string(input, "NextToken", "NextToken")?.filter(|t| !t.is_empty());

    let account_scope = identity::scope_prefix(call.account, call.region, None);
    let after = token
        .as_deref()
        .map(|t| decode_token(t, &account_scope))
        .transpose()?;
    let prefix = match (&namespace, &metric_name) {
        (Some(ns), Some(name)) => identity::name_prefix(call.account, call.region, ns, name),
        (Some(ns), None) => identity::scope_prefix(call.account, call.region, Some(ns)),
        _ => account_scope,
    };
    let scan = Scan {
        prefix,
        metric_name: metric_name.as_deref(),
        filters: &filters,
        active_since_ms: call.now_ms.saturating_sub(if recent_only {
            RECENTLY_ACTIVE_MS
        } else {
            LISTED_FOR_MS
        }),
    };
    // Only the caller's own account exists here: no source accounts are linked.
    let foreign = linked && owning.as_deref().is_some_and(|a| a != call.account);
    let (listed, next_token) = if foreign {
        (Vec::new(), None)
    } else {
        scan.page(call, after)?
    };

    let metrics: Vec<Value> = listed
        .iter()
        .map(|m| {
            let dims: Vec<Value> = m
                .dimensions()
                .iter()
                .map(|d| json!({ "Name": d.name, "Value": d.value }))
                .collect();
            json!({ "Namespace": m.namespace, "MetricName": m.metric_name, "Dimensions": dims })
        })
        .collect();
    let mut out = Map::new();
    if linked {
        out.insert(
            "OwningAccounts".into(),
            json!(vec![call.account; metrics.len()]),
        );
    }
    out.insert("Metrics".into(), Value::Array(metrics));
    if let Some(t) = next_token {
        out.insert("NextToken".into(), json!(t));
    }
    Ok(Value::Object(out))
}

//! GetMetricData: the handler reads the call (queries through
//! `metric_queries::parse_queries`, the time range, ScanBy, MaxDatapoints,
//! NextToken, LabelOptions), runs the queries, and answers one page of
//! results in the model's shape.
//!
//! Paging. The results are computed whole at each call (so an expression
//! always sees all of its inputs), then laid out in query order, each
//! result's points in ScanBy order (newest first by default), and cut
//! after MaxDatapoints points (100,800 by default) summed over the
//! results. The result that is cut says `PartialData` and the page carries
//! a NextToken; results not reached yet appear on later pages, so a
//! result may come in parts on several pages under the same Id (botocore's
//! paginator joins the pages' MetricDataResults lists). A token names the
//! place to go on from and a fingerprint of the request it belongs to; a
//! token used with another request is refused with `InvalidNextToken`.
//! CloudWatch says it gives no NextToken for math expressions; nimbus pages
//! them like metrics, since a cut without a token would lose their data.

use super::metric_queries::{self, QueryResult, StatusCode};
use super::{member, opt_integer, opt_timestamp_ms, string, Call};
use crate::metrics::math::label::parse_timezone;
use crate::metrics::MetricsError;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use nimbus_core::{timestamp, AwsError};
use serde_json::{json, Value};

/// MaxDatapoints when the call sets none.
pub const DEFAULT_MAX_DATAPOINTS: i64 = 100_800;

fn invalid(message: String) -> AwsError {
    MetricsError::InvalidParameterValue(message).to_aws_error()
}

/// A fingerprint of everything that decides a call's results (not its
/// page size or token): FNV-1a over the canonical JSON (serde_json keeps
/// object members sorted, so equal calls print alike).
fn fingerprint(input: &Value) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for name in [
        "MetricDataQueries",
        "StartTime",
        "EndTime",
        "ScanBy",
        "LabelOptions",
    ] {
        let text = member(input, name)
            .map(Value::to_string)
            .unwrap_or_default();
        for b in name.bytes().chain([0]).chain(text.bytes()).chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

fn encode_token(fp: u64, result: usize, offset: usize) -> String {
    B64.encode(format!("gmd1:{fp:016x}:{result}:{offset}"))
}

/// The (result, offset) a token goes on from; None unless it was made for
/// this very request.
fn decode_token(token: &str, fp: u64, results: usize) -> Option<(usize, usize)> {
    let bytes = B64.decode(token).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut parts = text.split(':');
    if parts.next()? != "gmd1" || u64::from_str_radix(parts.next()?, 16).ok()? != fp {
        return None;
    }
    let result: usize = parts.next()?.parse().ok()?;
    let offset: usize = parts.next()?.parse().ok()?;
    (parts.next().is_none() && result <= results).then_some((result, offset))
}

/// GetMetricData (see the module doc).
pub fn get_metric_data(call: &Call<'_>, input: &Value) -> Result<Value, AwsError> {
    let queries = metric_queries::parse_queries(
        member(input, "MetricDataQueries").unwrap_or(&Value::Null),
        "MetricDataQueries",
    )?;
    let start_ms = opt_timestamp_ms(input, "StartTime", "StartTime")?
        .ok_or_else(|| MetricsError::missing("StartTime").to_aws_error())?;
    let end_ms = opt_timestamp_ms(input, "EndTime", "EndTime")?
        .ok_or_else(|| MetricsError::missing("EndTime").to_aws_error())?;
    let ascending = match string(input, "ScanBy", "ScanBy")?.as_deref() {
        None | Some("TimestampDescending") => false,
        Some("TimestampAscending") => true,
        Some(_) => {
            return Err(invalid(
                "The parameter ScanBy must be a value in the set [ TimestampDescending, TimestampAscending ]."
                    .into(),
            ))
        }
    };
    let max_datapoints =
        opt_integer(input, "MaxDatapoints", "MaxDatapoints")?.unwrap_or(DEFAULT_MAX_DATAPOINTS);
    if max_datapoints < 1 {
        return Err(invalid(
            "The parameter MaxDatapoints must be greater than 0.".into(),
        ));
    }
    let offset_min = match member(input, "LabelOptions")
        .map(|o| string(o, "Timezone", "LabelOptions.Timezone"))
        .transpose()?
        .flatten()
    {
        None => 0,
        Some(tz) => parse_timezone(&tz).ok_or_else(|| {
            invalid(format!(
                "The value {tz} for parameter LabelOptions.Timezone is invalid."
            ))
        })?,
    };
    let results = metric_queries::run_queries_at(
        call.metrics,
        call.account,
        call.region,
        &queries,
        start_ms,
        end_ms,
        call.now_ms,
        offset_min,
    )?;
    let fp = fingerprint(input);
    let from = match string(input, "NextToken", "NextToken")?.filter(|t| !t.is_empty()) {
        None => (0, 0),
        Some(t) => decode_token(&t, fp, results.len()).ok_or_else(|| {
            AwsError::new(
                "InvalidNextToken",
                format!("The value {t} for parameter NextToken is invalid."),
            )
            .with_status(400)
        })?,
    };
    let budget = usize::try_from(max_datapoints).unwrap_or(usize::MAX);
    let (page, next) = paginate(&results, from, budget, ascending);
    let mut out = json!({ "MetricDataResults": page, "Messages": [] });
    if let (Some((r, o)), Some(obj)) = (next, out.as_object_mut()) {
        obj.insert("NextToken".into(), json!(encode_token(fp, r, o)));
    }
    Ok(out)
}

/// One page from `(result, offset)` on: at most `budget` points in all.
/// Returns the page's results and where the next page starts.
fn paginate(
    results: &[QueryResult],
    from: (usize, usize),
    mut budget: usize,
    ascending: bool,
) -> (Vec<Value>, Option<(usize, usize)>) {
    let (mut ri, mut offset) = from;
    let mut page = Vec::new();
    while let Some(r) = results.get(ri) {
        let n = r.points.len();
        let remaining = n.saturating_sub(offset);
        if remaining > 0 && budget == 0 {
            return (page, Some((ri, offset)));
        }
        let take = remaining.min(budget);
        let ordered: Box<dyn Iterator<Item = &(i64, f64)>> = if ascending {
            Box::new(r.points.iter())
        } else {
            Box::new(r.points.iter().rev())
        };
        let (mut timestamps, mut values) = (Vec::with_capacity(take), Vec::with_capacity(take));
        for &(t, v) in ordered.skip(offset).take(take) {
            timestamps.push(timestamp::to_value(t as f64 / 1000.0));
            values.push(json!(v));
        }
        budget -= take;
        let cut = take < remaining;
        let status = if cut {
            StatusCode::PartialData
        } else {
            r.status
        };
        let messages: Vec<Value> = r
            .messages
            .iter()
            .map(|m| json!({ "Code": m.code, "Value": m.value }))
            .collect();
        page.push(json!({
            "Id": r.id,
            "Label": r.label,
            "Timestamps": timestamps,
            "Values": values,
            "StatusCode": status.as_str(),
            "Messages": messages,
        }));
        if cut {
            return (page, Some((ri, offset + take)));
        }
        ri += 1;
        offset = 0;
    }
    (page, None)
}

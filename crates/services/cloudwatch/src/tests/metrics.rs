//! PutMetricData, GetMetricStatistics and ListMetrics through the service.

use super::{assert_err, Harness, ACCOUNT};
use crate::metrics::{MetricsOptions, Retention};
use nimbus_core::Service;
use serde_json::{json, Value};

const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 3_600_000;

/// A whole minute ten minutes before the service's now, in epoch seconds.
fn base_s(h: &Harness) -> u64 {
    (h.now_ms() / MINUTE_MS) * MINUTE_MS / 1000 - 600
}

/// The nearest-rank percentile as CloudWatch's guide defines it: the
/// smallest value with at least `p`% of the values at or below it.
fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank - 1]
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn datapoints(v: &Value) -> Vec<Value> {
    let mut points = v["Datapoints"].as_array().cloned().unwrap_or_default();
    points.sort_by(|a, b| {
        let t = |p: &Value| p["Timestamp"].as_f64().unwrap();
        t(a).total_cmp(&t(b)).then_with(|| {
            a["Unit"]
                .as_str()
                .unwrap_or("")
                .cmp(b["Unit"].as_str().unwrap_or(""))
        })
    });
    points
}

async fn put(h: &Harness, namespace: &str, data: Value) {
    h.ok(
        "PutMetricData",
        json!({ "Namespace": namespace, "MetricData": data }),
    )
    .await;
}

async fn stats(h: &Harness, extra: Value) -> Value {
    h.ok("GetMetricStatistics", extra).await
}

/// Metric names of a ListMetrics answer, with their dimensions as `a=1,b=2`.
fn listed(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let dims: Vec<String> = m["Dimensions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    format!(
                        "{}={}",
                        d["Name"].as_str().unwrap(),
                        d["Value"].as_str().unwrap()
                    )
                })
                .collect();
            format!(
                "{}/{}[{}]",
                m["Namespace"].as_str().unwrap(),
                m["MetricName"].as_str().unwrap(),
                dims.join(",")
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn statistics_match_values_computed_independently() {
    let h = Harness::new();
    let t0 = base_s(&h);
    // Minute 0: a Values/Counts datum and two single values; minute 1: ten values.
    put(
        &h,
        "App",
        json!([
            {"MetricName": "Latency", "Timestamp": t0 + 5, "Unit": "Milliseconds",
             "Values": [3.0, 1.0, 4.0, 1.5, 5.0], "Counts": [1.0, 2.0, 1.0, 1.0, 3.0]},
            {"MetricName": "Latency", "Timestamp": t0 + 30, "Unit": "Milliseconds", "Value": 9.0},
            {"MetricName": "Latency", "Timestamp": t0 as f64 + 59.5, "Unit": "Milliseconds", "Value": 2.5},
            {"MetricName": "Latency", "Timestamp": t0 + 60, "Unit": "Milliseconds",
             "Values": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0]},
        ]),
    )
    .await;
    let minute0 = [3.0, 1.0, 1.0, 4.0, 1.5, 5.0, 5.0, 5.0, 9.0, 2.5];
    let minute1 = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0];
    let v = stats(
        &h,
        json!({
            "Namespace": "App", "MetricName": "Latency",
            "StartTime": t0, "EndTime": t0 + 120, "Period": 60,
            "Statistics": ["Average", "Sum", "SampleCount", "Minimum", "Maximum"],
            "ExtendedStatistics": ["p90", "p50", "p99.5"],
        }),
    )
    .await;
    assert_eq!(v["Label"], "Latency");
    let points = datapoints(&v);
    assert_eq!(points.len(), 2, "{v}");
    for (point, (values, at)) in points
        .iter()
        .zip([(&minute0[..], t0), (&minute1[..], t0 + 60)])
    {
        let sum: f64 = values.iter().sum();
        let n = values.len() as f64;
        let min = values.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(point["Timestamp"].as_u64(), Some(at), "{point}");
        assert_eq!(point["Unit"], "Milliseconds");
        assert!(close(point["Sum"].as_f64().unwrap(), sum), "{point}");
        assert!(close(point["SampleCount"].as_f64().unwrap(), n), "{point}");
        assert!(
            close(point["Average"].as_f64().unwrap(), sum / n),
            "{point}"
        );
        assert!(close(point["Minimum"].as_f64().unwrap(), min), "{point}");
        assert!(close(point["Maximum"].as_f64().unwrap(), max), "{point}");
        let ext = &point["ExtendedStatistics"];
        for (name, p) in [("p90", 90.0), ("p50", 50.0), ("p99.5", 99.5)] {
            assert!(
                close(ext[name].as_f64().unwrap(), percentile(values, p)),
                "{name} of {values:?}: {point}"
            );
        }
    }

    // Only what was asked for comes back.
    let v = stats(
        &h,
        json!({"Namespace": "App", "MetricName": "Latency", "StartTime": t0,
               "EndTime": t0 + 60, "Period": 60, "Statistics": ["Maximum"]}),
    )
    .await;
    let points = datapoints(&v);
    assert_eq!(points.len(), 1);
    let keys: Vec<&String> = points[0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["Timestamp", "Maximum", "Unit"]);
    // One period over both minutes.
    let v = stats(
        &h,
        json!({"Namespace": "App", "MetricName": "Latency", "StartTime": t0,
               "EndTime": t0 + 120, "Period": 120, "Statistics": ["SampleCount"],
               "ExtendedStatistics": ["p90"]}),
    )
    .await;
    let all: Vec<f64> = minute0.iter().chain(&minute1).cloned().collect();
    let points = datapoints(&v);
    assert_eq!(points.len(), 1);
    assert_eq!(points[0]["SampleCount"].as_f64(), Some(20.0));
    assert!(close(
        points[0]["ExtendedStatistics"]["p90"].as_f64().unwrap(),
        percentile(&all, 90.0)
    ));
    // Nothing outside the range, nothing for another metric.
    for input in [
        json!({"Namespace": "App", "MetricName": "Latency", "StartTime": t0 - 600,
               "EndTime": t0, "Period": 60, "Statistics": ["Sum"]}),
        json!({"Namespace": "App", "MetricName": "Other", "StartTime": t0,
               "EndTime": t0 + 120, "Period": 60, "Statistics": ["Sum"]}),
    ] {
        let v = stats(&h, input).await;
        assert_eq!(v["Datapoints"], json!([]), "{v}");
    }
}

#[tokio::test]
async fn high_resolution_data_answers_second_periods() {
    let h = Harness::new();
    let t0 = base_s(&h);
    let data: Vec<Value> = (0..30)
        .map(|i| {
            json!({"MetricName": "Hits", "Timestamp": t0 + i, "Value": i as f64,
                        "StorageResolution": 1, "Unit": "Count"})
        })
        .collect();
    put(&h, "App", Value::Array(data)).await;
    let v = stats(
        &h,
        json!({"Namespace": "App", "MetricName": "Hits", "StartTime": t0,
               "EndTime": t0 + 30, "Period": 10, "Statistics": ["Sum", "SampleCount"]}),
    )
    .await;
    let points = datapoints(&v);
    assert_eq!(points.len(), 3);
    for (k, p) in points.iter().enumerate() {
        let from = k as u64 * 10;
        let sum: u64 = (from..from + 10).sum();
        assert_eq!(p["Timestamp"].as_u64(), Some(t0 + from));
        assert_eq!(p["Sum"].as_f64(), Some(sum as f64));
        assert_eq!(p["SampleCount"].as_f64(), Some(10.0));
        assert_eq!(p["Unit"], "Count");
    }
    // Standard resolution keeps one slot per minute: a 10-second period
    // finds the minute's data at its start.
    put(
        &h,
        "App",
        json!([{"MetricName": "Std", "Timestamp": t0 + 25, "Value": 1.0}]),
    )
    .await;
    let v = stats(
        &h,
        json!({"Namespace": "App", "MetricName": "Std", "StartTime": t0,
               "EndTime": t0 + 60, "Period": 10, "Statistics": ["Sum"]}),
    )
    .await;
    let points = datapoints(&v);
    assert_eq!(points.len(), 1);
    assert_eq!(points[0]["Timestamp"].as_u64(), Some(t0));
}

#[tokio::test]
async fn statistic_sets_give_no_percentiles() {
    let h = Harness::new();
    let t0 = base_s(&h);
    put(
        &h,
        "App",
        json!([{"MetricName": "Size", "Timestamp": t0,
                "StatisticValues": {"SampleCount": 4.0, "Sum": 10.0, "Minimum": 1.0, "Maximum": 4.0}}]),
    )
    .await;
    let v = stats(
        &h,
        json!({"Namespace": "App", "MetricName": "Size", "StartTime": t0, "EndTime": t0 + 60,
               "Period": 60, "Statistics": ["Average", "Minimum", "Maximum"],
               "ExtendedStatistics": ["p90"]}),
    )
    .await;
    let points = datapoints(&v);
    assert_eq!(points.len(), 1);
    assert_eq!(points[0]["Average"].as_f64(), Some(2.5));
    assert_eq!(points[0]["Minimum"].as_f64(), Some(1.0));
    assert_eq!(points[0]["Maximum"].as_f64(), Some(4.0));
    assert_eq!(points[0]["Unit"], "None");
    assert!(points[0].get("ExtendedStatistics").is_none(), "{v}");
}

#[tokio::test]
async fn dimension_order_does_not_make_another_metric() {
    let h = Harness::new();
    let t0 = base_s(&h);
    put(
        &h,
        "App",
        json!([{"MetricName": "Req", "Timestamp": t0, "Value": 7.0,
                "Dimensions": [{"Name": "B", "Value": "2"}, {"Name": "A", "Value": "1"}]}]),
    )
    .await;
    put(
        &h,
        "App",
        json!([{"MetricName": "Req", "Timestamp": t0 + 1, "Value": 3.0,
                "Dimensions": [{"Name": "A", "Value": "1"}, {"Name": "B", "Value": "2"}]}]),
    )
    .await;
    for dims in [
        json!([{"Name": "A", "Value": "1"}, {"Name": "B", "Value": "2"}]),
        json!([{"Name": "B", "Value": "2"}, {"Name": "A", "Value": "1"}]),
    ] {
        let v = stats(
            &h,
            json!({"Namespace": "App", "MetricName": "Req", "Dimensions": dims,
                   "StartTime": t0, "EndTime": t0 + 60, "Period": 60, "Statistics": ["Sum"]}),
        )
        .await;
        assert_eq!(datapoints(&v)[0]["Sum"].as_f64(), Some(10.0), "{v}");
    }
    // A subset of the dimensions, or none, is another metric.
    for dims in [json!([{"Name": "A", "Value": "1"}]), json!([])] {
        let v = stats(
            &h,
            json!({"Namespace": "App", "MetricName": "Req", "Dimensions": dims,
                   "StartTime": t0, "EndTime": t0 + 60, "Period": 60, "Statistics": ["Sum"]}),
        )
        .await;
        assert_eq!(v["Datapoints"], json!([]));
    }
    let v = h.ok("ListMetrics", json!({"Namespace": "App"})).await;
    assert_eq!(listed(&v), ["App/Req[A=1,B=2]"]);
}

#[tokio::test]
async fn units_are_kept_apart_and_listed_once() {
    let h = Harness::new();
    let t0 = base_s(&h);
    put(
        &h,
        "App",
        json!([
            {"MetricName": "Work", "Timestamp": t0, "Value": 2.0, "Unit": "Count"},
            {"MetricName": "Work", "Timestamp": t0, "Value": 5.0, "Unit": "Seconds"},
        ]),
    )
    .await;
    let query = |unit: Option<&str>| {
        let mut q = json!({"Namespace": "App", "MetricName": "Work", "StartTime": t0,
                           "EndTime": t0 + 60, "Period": 60, "Statistics": ["Sum"]});
        if let Some(u) = unit {
            q["Unit"] = json!(u);
        }
        q
    };
    let points = datapoints(&stats(&h, query(None)).await);
    let got: Vec<(String, f64)> = points
        .iter()
        .map(|p| {
            (
                p["Unit"].as_str().unwrap().to_string(),
                p["Sum"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [("Count".to_string(), 2.0), ("Seconds".to_string(), 5.0)]
    );
    let points = datapoints(&stats(&h, query(Some("Seconds"))).await);
    assert_eq!(points.len(), 1);
    assert_eq!(points[0]["Sum"].as_f64(), Some(5.0));
    let v = stats(&h, query(Some("Bytes"))).await;
    assert_eq!(v["Datapoints"], json!([]));
    let v = h.ok("ListMetrics", json!({})).await;
    assert_eq!(listed(&v), ["App/Work[]"]);
}

#[tokio::test]
async fn list_metrics_filters() {
    let h = Harness::new();
    let d = |pairs: &[(&str, &str)]| -> Value {
        pairs
            .iter()
            .map(|(n, v)| json!({"Name": n, "Value": v}))
            .collect()
    };
    put(
        &h,
        "App",
        json!([
            {"MetricName": "Latency", "Value": 1.0, "Dimensions": d(&[("Host", "a"), ("Stage", "prod")])},
            {"MetricName": "Latency", "Value": 1.0, "Dimensions": d(&[("Host", "b")])},
            {"MetricName": "Errors", "Value": 1.0, "Dimensions": d(&[("Host", "a")])},
            {"MetricName": "Errors", "Value": 1.0},
        ]),
    )
    .await;
    put(
        &h,
        "Other",
        json!([{"MetricName": "Latency", "Value": 1.0, "Dimensions": d(&[("Host", "a")])}]),
    )
    .await;
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({}),
            vec![
                "App/Errors[Host=a]",
                "App/Errors[]",
                "App/Latency[Host=a,Stage=prod]",
                "App/Latency[Host=b]",
                "Other/Latency[Host=a]",
            ],
        ),
        (
            json!({"Namespace": "App"}),
            vec![
                "App/Errors[Host=a]",
                "App/Errors[]",
                "App/Latency[Host=a,Stage=prod]",
                "App/Latency[Host=b]",
            ],
        ),
        (
            json!({"Namespace": "App", "MetricName": "Latency"}),
            vec!["App/Latency[Host=a,Stage=prod]", "App/Latency[Host=b]"],
        ),
        (
            json!({"MetricName": "Latency"}),
            vec![
                "App/Latency[Host=a,Stage=prod]",
                "App/Latency[Host=b]",
                "Other/Latency[Host=a]",
            ],
        ),
        (
            json!({"Dimensions": [{"Name": "Host"}]}),
            vec![
                "App/Errors[Host=a]",
                "App/Latency[Host=a,Stage=prod]",
                "App/Latency[Host=b]",
                "Other/Latency[Host=a]",
            ],
        ),
        (
            json!({"Dimensions": [{"Name": "Host", "Value": "a"}]}),
            vec![
                "App/Errors[Host=a]",
                "App/Latency[Host=a,Stage=prod]",
                "Other/Latency[Host=a]",
            ],
        ),
        (
            json!({"Namespace": "App", "Dimensions": [{"Name": "Stage"}, {"Name": "Host", "Value": "a"}]}),
            vec!["App/Latency[Host=a,Stage=prod]"],
        ),
        (
            json!({"Dimensions": [{"Name": "Host", "Value": "c"}]}),
            vec![],
        ),
        (json!({"Dimensions": [{"Name": "Nope"}]}), vec![]),
        (json!({"Namespace": "Ap"}), vec![]),
        (json!({"Namespace": "App", "MetricName": "Latenc"}), vec![]),
    ];
    for (input, want) in cases {
        let v = h.ok("ListMetrics", input.clone()).await;
        assert_eq!(listed(&v), want, "{input}");
        assert!(v.get("NextToken").is_none(), "{input}: {v}");
        assert!(v.get("OwningAccounts").is_none());
    }
    // The output shape, a metric without dimensions included.
    let v = h
        .ok(
            "ListMetrics",
            json!({"Namespace": "App", "MetricName": "Errors"}),
        )
        .await;
    assert!(v["Metrics"]
        .as_array()
        .unwrap()
        .contains(&json!({"Namespace": "App", "MetricName": "Errors", "Dimensions": []})));
    // Linked accounts: only the caller's own exists.
    let v = h
        .ok(
            "ListMetrics",
            json!({"Namespace": "App", "IncludeLinkedAccounts": true}),
        )
        .await;
    assert_eq!(v["OwningAccounts"], json!(vec![ACCOUNT; 4]));
    let v = h
        .ok(
            "ListMetrics",
            json!({"IncludeLinkedAccounts": true, "OwningAccount": "999999999999"}),
        )
        .await;
    assert_eq!(v["Metrics"], json!([]));
    // Another account sees nothing of these.
    let v = h
        .call_as("999999999999", "ListMetrics", json!({}))
        .await
        .unwrap();
    assert_eq!(v["Metrics"], json!([]));
}

#[tokio::test]
async fn recently_active_and_two_weeks_of_silence() {
    let h = Harness::new();
    put(&h, "App", json!([{"MetricName": "Old", "Value": 1.0}])).await;
    h.advance(4 * HOUR_MS);
    put(&h, "App", json!([{"MetricName": "New", "Value": 1.0}])).await;
    let v = h.ok("ListMetrics", json!({"RecentlyActive": "PT3H"})).await;
    assert_eq!(listed(&v), ["App/New[]"]);
    let v = h.ok("ListMetrics", json!({})).await;
    assert_eq!(listed(&v), ["App/New[]", "App/Old[]"]);
    // Metrics silent for two weeks are no longer listed.
    h.advance(14 * 24 * HOUR_MS - 2 * HOUR_MS);
    let v = h.ok("ListMetrics", json!({})).await;
    assert_eq!(listed(&v), ["App/New[]"]);
    h.advance(3 * HOUR_MS);
    let v = h.ok("ListMetrics", json!({})).await;
    assert_eq!(listed(&v), Vec::<String>::new());
}

#[tokio::test]
async fn list_metrics_pages_by_500() {
    let h = Harness::new();
    let name = |i: usize| format!("m{i:04}");
    let mut data: Vec<Value> = (0..1203)
        .map(|i| json!({"MetricName": name(i), "Value": i as f64}))
        .collect();
    // Metrics with a second unit sit on both sides of the first page's end.
    for i in [499, 500, 1202] {
        data.push(json!({"MetricName": name(i), "Value": 1.0, "Unit": "Seconds"}));
    }
    for chunk in data.chunks(1000) {
        put(&h, "Page", Value::Array(chunk.to_vec())).await;
    }
    put(&h, "Else", json!([{"MetricName": "x", "Value": 1.0}])).await;
    for filter in [json!({"Namespace": "Page"}), json!({})] {
        let mut seen: Vec<String> = Vec::new();
        let mut sizes = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut input = filter.clone();
            if let Some(t) = &token {
                input["NextToken"] = json!(t);
            }
            let v = h.ok("ListMetrics", input).await;
            let page = v["Metrics"].as_array().unwrap();
            sizes.push(page.len());
            seen.extend(page.iter().map(|m| {
                format!(
                    "{}/{}",
                    m["Namespace"].as_str().unwrap(),
                    m["MetricName"].as_str().unwrap()
                )
            }));
            match v.get("NextToken").and_then(Value::as_str) {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
        }
        let mut want: Vec<String> = (0..1203).map(|i| format!("Page/{}", name(i))).collect();
        if filter.get("Namespace").is_none() {
            want.insert(0, "Else/x".to_string());
            assert_eq!(sizes, [500, 500, 204], "{filter}");
        } else {
            assert_eq!(sizes, [500, 500, 203], "{filter}");
        }
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), seen.len(), "no metric twice");
        assert_eq!(sorted, want);
    }
    // A token is good only in its own account and region.
    let v = h.ok("ListMetrics", json!({"Namespace": "Page"})).await;
    let token = v["NextToken"].as_str().unwrap().to_string();
    let e = h
        .call_as(
            "999999999999",
            "ListMetrics",
            json!({"Namespace": "Page", "NextToken": token}),
        )
        .await
        .unwrap_err();
    assert_err(
        &e,
        "InvalidParameterValue",
        &format!("The value {token} for parameter NextToken is invalid."),
    );
    let e = h
        .err("ListMetrics", json!({"NextToken": "not a token!"}))
        .await;
    assert_err(
        &e,
        "InvalidParameterValue",
        "The value not a token! for parameter NextToken is invalid.",
    );
}

#[tokio::test]
async fn put_metric_data_errors() {
    let h = Harness::new();
    let now_s = h.now_ms() / 1000;
    let cases: Vec<(Value, &str, String)> = vec![
        (
            json!({"MetricData": [{"MetricName": "m", "Value": 1.0}]}),
            "MissingParameter",
            "The parameter Namespace is required.".into(),
        ),
        (
            json!({"Namespace": "App"}),
            "MissingParameter",
            "The parameter MetricData is required.".into(),
        ),
        (
            json!({"Namespace": "AWS/EC2", "MetricData": [{"MetricName": "m", "Value": 1.0}]}),
            "InvalidParameterValue",
            "The value AWS/EC2 for parameter Namespace is invalid.".into(),
        ),
        (
            json!({"Namespace": "App", "MetricData": [{"Value": 1.0}]}),
            "MissingParameter",
            "The parameter MetricData.member.1.MetricName is required.".into(),
        ),
        (
            json!({"Namespace": "App", "MetricData": [{"MetricName": "m", "Value": "NaN"}]}),
            "InvalidParameterValue",
            "The value NaN for parameter MetricData.member.1.Value is invalid.".into(),
        ),
        (
            json!({"Namespace": "App", "MetricData": [
                {"MetricName": "m", "Value": 1.0},
                {"MetricName": "m", "Value": 1.0,
                 "StatisticValues": {"SampleCount": 1.0, "Sum": 1.0, "Minimum": 1.0, "Maximum": 1.0}}]}),
            "InvalidParameterCombination",
            "The parameters MetricData.member.2.Value and MetricData.member.2.StatisticValues are mutually exclusive and you have specified both.".into(),
        ),
        (
            json!({"Namespace": "App", "MetricData": [{"MetricName": "m"}]}),
            "InvalidParameterCombination",
            "At least one of the parameters MetricData.member.1.Value and MetricData.member.1.StatisticValues must be specified.".into(),
        ),
        (
            json!({"Namespace": "App", "MetricData": [{"MetricName": "m", "Value": 1.0, "StorageResolution": 5}]}),
            "InvalidParameterValue",
            "The parameter MetricData.member.1.StorageResolution must be a value in the set [ 1, 60 ].".into(),
        ),
        (
            json!({"Namespace": "App", "MetricData": [{"MetricName": "m", "Value": 1.0, "Timestamp": now_s - 15 * 86_400}]}),
            "InvalidParameterValue",
            "The parameter MetricData.member.1.Timestamp must specify a time within the past two weeks.".into(),
        ),
        (
            json!({"Namespace": "App", "MetricData": [{"MetricName": "m", "Value": 1.0, "Timestamp": now_s + 3 * 3600}]}),
            "InvalidParameterValue",
            "The parameter MetricData.member.1.Timestamp must specify a time no more than two hours in the future.".into(),
        ),
        (
            json!({"Namespace": "App", "MetricData": [{"MetricName": "m", "Value": 1.0,
                   "Dimensions": [{"Name": "a", "Value": "1"}, {"Name": "a", "Value": "2"}]}]}),
            "InvalidParameterValue",
            "No metric may specify the same dimension name twice.".into(),
        ),
        (
            json!({"Namespace": "App", "MetricData": [{"MetricName": "m", "Value": 1.0,
                   "Dimensions": [{"Name": "a"}]}]}),
            "MissingParameter",
            "The parameter MetricData.member.1.Dimensions.member.1.Value is required.".into(),
        ),
        (
            json!({"Namespace": "App", "MetricData": [{"MetricName": "m", "Values": [1.0, 2.0], "Counts": [1.0]}]}),
            "InvalidParameterValue",
            "The parameters MetricData.member.1.Values and MetricData.member.1.Counts must be of the same size.".into(),
        ),
        (
            json!({"Namespace": "App", "MetricData": [{"MetricName": "m", "Value": "many"}]}),
            "InvalidParameterValue",
            "The value many for parameter MetricData.member.1.Value is invalid.".into(),
        ),
    ];
    for (input, code, message) in cases {
        let e = h.err("PutMetricData", input.clone()).await;
        assert_err(&e, code, &message);
    }
    let e = h
        .err(
            "PutMetricData",
            json!({"Namespace": "App", "MetricData": [{"MetricName": "m", "Value": 1.0, "Unit": "bytes"}]}),
        )
        .await;
    assert_eq!(e.code, "InvalidParameterValue");
    assert!(e.message.starts_with(
        "The parameter MetricData.member.1.Unit must be a value in the set [ Seconds, Microseconds,"
    ));
    let too_many: Vec<Value> = (0..1001)
        .map(|_| json!({"MetricName": "m", "Value": 1.0}))
        .collect();
    let e = h
        .err(
            "PutMetricData",
            json!({"Namespace": "App", "MetricData": too_many}),
        )
        .await;
    assert_err(
        &e,
        "InvalidParameterValue",
        "The collection MetricData must not have a size greater than 1000.",
    );
    // A refused request stores nothing, not even its valid datums.
    let v = h.ok("ListMetrics", json!({})).await;
    assert_eq!(v["Metrics"], json!([]));
}

#[tokio::test]
async fn get_metric_statistics_errors() {
    let h = Harness::new();
    let t0 = base_s(&h);
    let q = |extra: Value| {
        let mut q = json!({"Namespace": "App", "MetricName": "m", "StartTime": t0,
                           "EndTime": t0 + 600, "Period": 60, "Statistics": ["Sum"]});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                q.as_object_mut().unwrap().remove(k);
            } else {
                q[k] = v.clone();
            }
        }
        q
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            q(json!({"Namespace": null})),
            "MissingParameter",
            "The parameter Namespace is required.",
        ),
        (
            q(json!({"MetricName": null})),
            "MissingParameter",
            "The parameter MetricName is required.",
        ),
        (
            q(json!({"StartTime": null})),
            "MissingParameter",
            "The parameter StartTime is required.",
        ),
        (
            q(json!({"EndTime": null})),
            "MissingParameter",
            "The parameter EndTime is required.",
        ),
        (
            q(json!({"Period": null})),
            "MissingParameter",
            "The parameter Period is required.",
        ),
        (
            q(json!({"Statistics": null})),
            "MissingParameter",
            "The parameter Statistics or ExtendedStatistics is required.",
        ),
        (
            q(json!({"Period": 45})),
            "InvalidParameterValue",
            "The parameter Period must be 1, 5, 10, 20, 30, or a multiple of 60.",
        ),
        (
            q(json!({"Period": 0})),
            "InvalidParameterValue",
            "The parameter Period must be greater than 0.",
        ),
        (
            q(json!({"EndTime": t0})),
            "InvalidParameterValue",
            "The parameter StartTime must be less than the parameter EndTime.",
        ),
        (
            q(json!({"Statistics": ["Median"]})),
            "InvalidParameterValue",
            "The parameter Statistics.member.1 must be a value in the set [ SampleCount, Average, Sum, Minimum, Maximum ].",
        ),
        (
            q(json!({"ExtendedStatistics": ["p101"]})),
            "InvalidParameterValue",
            "The value p101 for parameter ExtendedStatistics is not supported.",
        ),
        (
            q(json!({"Dimensions": [{"Name": "a"}]})),
            "MissingParameter",
            "The parameter Dimensions.member.1.Value is required.",
        ),
        (
            q(json!({"StartTime": t0 - 2 * 86_400, "EndTime": t0})),
            "InvalidParameterCombination",
            "You have requested up to 2880 datapoints, which exceeds the limit of 1440. You may reduce the datapoints requested by increasing Period, or decreasing the time range.",
        ),
    ];
    for (input, code, message) in cases {
        let e = h.err("GetMetricStatistics", input.clone()).await;
        assert_err(&e, code, message);
    }
    let e = h
        .err("GetMetricStatistics", q(json!({"Unit": "Furlongs"})))
        .await;
    assert_eq!(e.code, "InvalidParameterValue");
    assert!(e
        .message
        .starts_with("The parameter Unit must be a value in the set [ Seconds,"));
}

#[tokio::test]
async fn list_metrics_errors_and_unserved_operations() {
    let h = Harness::new();
    let e = h
        .err("ListMetrics", json!({"RecentlyActive": "PT1H"}))
        .await;
    assert_err(
        &e,
        "InvalidParameterValue",
        "The parameter RecentlyActive must be a value in the set [ PT3H ].",
    );
    let filters: Vec<Value> = (0..11).map(|i| json!({"Name": format!("d{i}")})).collect();
    let e = h.err("ListMetrics", json!({"Dimensions": filters})).await;
    assert_err(
        &e,
        "InvalidParameterValue",
        "The collection Dimensions must not have a size greater than 10.",
    );
    let e = h
        .err("ListMetrics", json!({"Dimensions": [{"Value": "x"}]}))
        .await;
    assert_err(
        &e,
        "MissingParameter",
        "The parameter Dimensions.member.1.Name is required.",
    );
    let e = h.err("Frobnicate", json!({})).await;
    assert_eq!(e.code, "InvalidAction");
}

async fn sums(h: &Harness, t0: u64) -> Vec<(u64, f64, String)> {
    let v = stats(
        h,
        json!({"Namespace": "App", "MetricName": "Kept", "StartTime": t0, "EndTime": t0 + 180,
               "Period": 60, "Statistics": ["Sum"]}),
    )
    .await;
    datapoints(&v)
        .iter()
        .map(|p| {
            (
                p["Timestamp"].as_u64().unwrap(),
                p["Sum"].as_f64().unwrap(),
                p["Unit"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn data_survives_reopening_with_and_without_a_flush() {
    let h = Harness::new();
    let t0 = base_s(&h);
    put(
        &h,
        "App",
        json!([
            {"MetricName": "Kept", "Timestamp": t0, "Value": 1.5, "Unit": "Count"},
            {"MetricName": "Kept", "Timestamp": t0 + 60, "Values": [2.0, 3.0], "Unit": "Count",
             "Dimensions": []},
        ]),
    )
    .await;
    let want = vec![
        (t0, 1.5, "Count".to_string()),
        (t0 + 60, 5.0, "Count".to_string()),
    ];
    assert_eq!(sums(&h, t0).await, want);
    // Not flushed: the ingest log is replayed.
    let h = h.reopen();
    assert_eq!(sums(&h, t0).await, want);
    // More data, then a flush as a stopping server makes.
    put(
        &h,
        "App",
        json!([{"MetricName": "Kept", "Timestamp": t0 + 120, "Value": 4.0, "Unit": "Count"}]),
    )
    .await;
    h.cw.flush_all().await.unwrap();
    assert_eq!(h.cw.metrics.read().await.memory_use().pending_entries, 0);
    let h = h.reopen();
    let mut want = want;
    want.push((t0 + 120, 4.0, "Count".to_string()));
    assert_eq!(sums(&h, t0).await, want);
    let v = h.ok("ListMetrics", json!({"RecentlyActive": "PT3H"})).await;
    assert_eq!(listed(&v), ["App/Kept[]"]);
}

#[tokio::test]
async fn upkeep_flushes_when_due_and_expires_raw_data() {
    let h = Harness::new();
    let t0 = base_s(&h);
    let data: Vec<Value> = (0..60)
        .map(|i| {
            json!({"MetricName": "Kept", "Timestamp": t0 + i, "Value": 1.0,
                        "StorageResolution": 1})
        })
        .collect();
    put(&h, "App", Value::Array(data)).await;
    let first = h.cw.upkeep().await.unwrap();
    assert!(!first.flushed, "nothing is due yet");
    h.advance(31_000);
    let second = h.cw.upkeep().await.unwrap();
    assert!(second.flushed);
    assert_eq!(h.cw.metrics.read().await.memory_use().pending_entries, 0);
    let hires = json!({"Namespace": "App", "MetricName": "Kept", "StartTime": t0,
                       "EndTime": t0 + 60, "Period": 10, "Statistics": ["Sum"]});
    let v = stats(&h, hires.clone()).await;
    assert_eq!(datapoints(&v).len(), 6);
    // Five hours on, the raw blocks are past their retention; the next
    // expiry pass deletes them, and only whole minutes are left.
    h.advance(5 * HOUR_MS);
    let mut expired = 0;
    for _ in 0..3 {
        expired += h.cw.upkeep().await.unwrap().segments_expired;
    }
    assert!(expired > 0);
    let v = stats(&h, hires).await;
    assert_eq!(v["Datapoints"], json!([]));
    let v = stats(
        &h,
        json!({"Namespace": "App", "MetricName": "Kept", "StartTime": t0,
               "EndTime": t0 + 60, "Period": 60, "Statistics": ["Sum", "SampleCount"]}),
    )
    .await;
    let points = datapoints(&v);
    assert_eq!(points.len(), 1);
    assert_eq!(points[0]["Sum"].as_f64(), Some(60.0));
}

#[tokio::test]
async fn a_longer_raw_retention_keeps_second_periods() {
    let h = Harness::with_options(MetricsOptions {
        retention: Retention {
            raw_s: 30 * 86_400,
            ..Retention::default()
        },
        ..MetricsOptions::default()
    });
    let t0 = base_s(&h);
    let data: Vec<Value> = (0..20)
        .map(|i| {
            json!({"MetricName": "Kept", "Timestamp": t0 + i, "Value": i as f64,
                        "StorageResolution": 1})
        })
        .collect();
    put(&h, "App", Value::Array(data)).await;
    h.advance(5 * HOUR_MS);
    for _ in 0..3 {
        h.cw.upkeep().await.unwrap();
    }
    let v = stats(
        &h,
        json!({"Namespace": "App", "MetricName": "Kept", "StartTime": t0,
               "EndTime": t0 + 20, "Period": 10, "Statistics": ["Sum"],
               "ExtendedStatistics": ["p90"]}),
    )
    .await;
    let points = datapoints(&v);
    assert_eq!(points.len(), 2);
    assert_eq!(points[0]["Sum"].as_f64(), Some(45.0));
    let first: Vec<f64> = (0..10).map(f64::from).collect();
    assert_eq!(
        points[0]["ExtendedStatistics"]["p90"].as_f64(),
        Some(percentile(&first, 90.0))
    );
}

#[tokio::test]
async fn reset_forgets_every_metric() {
    let h = Harness::new();
    let t0 = base_s(&h);
    put(
        &h,
        "App",
        json!([{"MetricName": "Kept", "Timestamp": t0, "Value": 1.0}]),
    )
    .await;
    h.cw.flush_all().await.unwrap();
    put(
        &h,
        "App",
        json!([{"MetricName": "Kept", "Timestamp": t0 + 60, "Value": 1.0}]),
    )
    .await;
    h.cw.reset().await.unwrap();
    assert_eq!(sums(&h, t0).await, vec![]);
    let v = h.ok("ListMetrics", json!({})).await;
    assert_eq!(v["Metrics"], json!([]));
    put(
        &h,
        "App",
        json!([{"MetricName": "Kept", "Timestamp": t0, "Value": 2.0}]),
    )
    .await;
    assert_eq!(sums(&h, t0).await, vec![(t0, 2.0, "None".to_string())]);
    let h = h.reopen();
    assert_eq!(sums(&h, t0).await, vec![(t0, 2.0, "None".to_string())]);
}

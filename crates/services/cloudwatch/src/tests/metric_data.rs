//! GetMetricData through the service: metric results and expressions
//! checked against values computed here, labels, ScanBy, pages of
//! MaxDatapoints with NextToken, errors by code and message, and the
//! query-list interface metric-math alarms use.

use super::{assert_err, Harness, ACCOUNT, REGION};
use crate::handlers::metric_queries::{parse_queries, run_queries, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;

const MINUTE_S: u64 = 60;

/// A whole minute twenty minutes before the service's now, epoch seconds.
fn base_s(h: &Harness) -> u64 {
    (h.now_ms() / 60_000) * 60 - 20 * MINUTE_S
}

/// Puts `values[k]` at minute k of `base` for metric `name` (Count).
async fn put_series(h: &Harness, ns: &str, name: &str, base: u64, values: &[(u64, f64)]) {
    let data: Vec<Value> = values
        .iter()
        .map(|&(k, v)| {
            json!({ "MetricName": name, "Timestamp": base + k * MINUTE_S, "Value": v, "Unit": "Count" })
        })
        .collect();
    h.ok(
        "PutMetricData",
        json!({ "Namespace": ns, "MetricData": data }),
    )
    .await;
}

fn stat_query(id: &str, ns: &str, name: &str, stat: &str) -> Value {
    json!({ "Id": id, "MetricStat": {
        "Metric": { "Namespace": ns, "MetricName": name }, "Period": 60, "Stat": stat } })
}

fn expr_query(id: &str, expression: &str) -> Value {
    json!({ "Id": id, "Expression": expression })
}

fn request(base: u64, queries: Vec<Value>) -> Value {
    json!({ "MetricDataQueries": queries, "StartTime": base, "EndTime": base + 10 * MINUTE_S })
}

/// A result's points as (minute after base, value), in the order given.
fn points(r: &Value, base: u64) -> Vec<(u64, f64)> {
    let ts = r["Timestamps"].as_array().unwrap();
    let vs = r["Values"].as_array().unwrap();
    assert_eq!(ts.len(), vs.len());
    ts.iter()
        .zip(vs)
        .map(|(t, v)| ((t.as_u64().unwrap() - base) / MINUTE_S, v.as_f64().unwrap()))
        .collect()
}

fn results(v: &Value) -> &Vec<Value> {
    v["MetricDataResults"].as_array().unwrap()
}

fn by_id<'a>(v: &'a Value, id: &str) -> &'a Value {
    results(v).iter().find(|r| r["Id"] == id).unwrap()
}

const A: [(u64, f64); 5] = [(0, 1.0), (1, 2.0), (2, 3.0), (3, 4.0), (4, 5.0)];
const B: [(u64, f64); 3] = [(1, 10.0), (3, 30.0), (5, 50.0)];

async fn two_series(h: &Harness, ns: &str, base: u64) {
    put_series(h, ns, "A", base, &A).await;
    put_series(h, ns, "B", base, &B).await;
}

#[tokio::test]
async fn metric_results_newest_first_with_default_labels() {
    let h = Harness::new();
    let base = base_s(&h);
    two_series(&h, "App", base).await;
    let out = h
        .ok(
            "GetMetricData",
            request(
                base,
                vec![
                    stat_query("a", "App", "A", "Sum"),
                    stat_query("b", "App", "B", "Maximum"),
                ],
            ),
        )
        .await;
    assert_eq!(results(&out).len(), 2);
    let a = by_id(&out, "a");
    assert_eq!(a["Label"], "A");
    assert_eq!(a["StatusCode"], "Complete");
    let mut want: Vec<(u64, f64)> = A.to_vec();
    want.reverse();
    assert_eq!(points(a, base), want);
    assert_eq!(by_id(&out, "b")["Label"], "B");
    assert!(out.get("NextToken").is_none());
    // Oldest first when asked.
    let mut req = request(base, vec![stat_query("a", "App", "A", "Sum")]);
    req["ScanBy"] = json!("TimestampAscending");
    let out = h.ok("GetMetricData", req).await;
    assert_eq!(points(&results(&out)[0], base), A.to_vec());
}

#[tokio::test]
async fn expressions_align_and_reduce() {
    let h = Harness::new();
    let base = base_s(&h);
    two_series(&h, "App", base).await;
    let mut a = stat_query("a", "App", "A", "Sum");
    a["ReturnData"] = json!(false);
    let mut b = stat_query("b", "App", "B", "Sum");
    b["ReturnData"] = json!(false);
    let mut req = request(
        base,
        vec![
            a,
            b,
            expr_query("sum_ab", "a + b"),
            expr_query("total", "SUM(METRICS())"),
            expr_query("ratio", "IF(a != 0, b / a, 0)"),
            expr_query("filled", "FILL(b, REPEAT)"),
            expr_query("centred", "a - AVG(a)"),
        ],
    );
    req["ScanBy"] = json!("TimestampAscending");
    let out = h.ok("GetMetricData", req).await;
    // Inputs with ReturnData false are not returned.
    assert_eq!(results(&out).len(), 5);
    let sum = by_id(&out, "sum_ab");
    assert_eq!(sum["Label"], "sum_ab");
    assert_eq!(points(sum, base), vec![(1, 12.0), (3, 34.0)]);
    // Series-wise over every metric: where either has a value.
    let a_map: BTreeMap<u64, f64> = A.into_iter().collect();
    let b_map: BTreeMap<u64, f64> = B.into_iter().collect();
    let mut total: BTreeMap<u64, f64> = a_map.clone();
    for (k, v) in &b_map {
        *total.entry(*k).or_default() += v;
    }
    assert_eq!(
        points(by_id(&out, "total"), base),
        total.into_iter().collect::<Vec<_>>()
    );
    let ratio: Vec<(u64, f64)> = a_map
        .iter()
        .filter_map(|(k, av)| b_map.get(k).map(|bv| (*k, bv / av)))
        .collect();
    assert_eq!(points(by_id(&out, "ratio"), base), ratio);
    assert_eq!(
        points(by_id(&out, "filled"), base),
        vec![
            (1, 10.0),
            (2, 10.0),
            (3, 30.0),
            (4, 30.0),
            (5, 50.0),
            (6, 50.0),
            (7, 50.0),
            (8, 50.0),
            (9, 50.0)
        ]
    );
    let mean = A.iter().map(|p| p.1).sum::<f64>() / A.len() as f64;
    assert_eq!(
        points(by_id(&out, "centred"), base),
        A.iter().map(|&(k, v)| (k, v - mean)).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn scalars_arrays_and_labels() {
    let h = Harness::new();
    let base = base_s(&h);
    two_series(&h, "App", base).await;
    let mut a = stat_query("a", "App", "A", "Sum");
    a["Label"] = json!("${LABEL} avg=${AVG} max=${MAX} last=${LAST} n=${DATAPOINT_COUNT}");
    let mut top = expr_query("top", "SORT(METRICS(), MAX, DESC)");
    top["Label"] = json!("[${LABEL}] ${SUM}");
    let mut times = expr_query("doubled", "a * 2");
    times["Label"] = json!("${MIN_TIME}");
    let mut req = request(
        base,
        vec![
            a,
            stat_query("b", "App", "B", "Sum"),
            top,
            expr_query("flat", "MAX(b)"),
            times,
        ],
    );
    req["LabelOptions"] = json!({ "Timezone": "-0130" });
    let out = h.ok("GetMetricData", req).await;
    assert_eq!(by_id(&out, "a")["Label"], "A avg=3 max=5 last=5 n=5");
    // An array result: one result per series under one id, B first (max 50).
    let tops: Vec<&Value> = results(&out).iter().filter(|r| r["Id"] == "top").collect();
    assert_eq!(tops.len(), 2);
    assert_eq!(tops[0]["Label"], "[B] 90");
    assert!(tops[1]["Label"].as_str().unwrap().starts_with("[A avg=3"));
    // A scalar result is laid out over every period of the range.
    let flat = points(by_id(&out, "flat"), base);
    assert_eq!(flat.len(), 10);
    assert!(flat.iter().all(|p| p.1 == 50.0));
    // The time of the smallest value (minute 0), shown at -01:30.
    let first = base as i64 - 90 * 60;
    let want = nimbus_core::timestamp::format_iso8601_secs(first);
    assert_eq!(
        by_id(&out, "doubled")["Label"],
        format!("{}-0130", want.trim_end_matches('Z'))
    );
}

#[tokio::test]
async fn pages_of_max_datapoints() {
    let h = Harness::new();
    let base = base_s(&h);
    two_series(&h, "App", base).await;
    let queries = vec![
        stat_query("a", "App", "A", "Sum"),
        stat_query("b", "App", "B", "Sum"),
        expr_query("e", "a * 10"),
    ];
    let mut req = request(base, queries);
    req["MaxDatapoints"] = json!(3);
    let mut gathered: BTreeMap<String, Vec<(u64, f64)>> = BTreeMap::new();
    let mut pages = 0;
    let mut statuses = Vec::new();
    loop {
        let out = h.ok("GetMetricData", req.clone()).await;
        pages += 1;
        let n: usize = results(&out)
            .iter()
            .map(|r| r["Values"].as_array().unwrap().len())
            .sum();
        assert!(n <= 3);
        for r in results(&out) {
            statuses.push(r["StatusCode"].as_str().unwrap().to_string());
            gathered
                .entry(r["Id"].as_str().unwrap().into())
                .or_default()
                .extend(points(r, base));
        }
        match out.get("NextToken") {
            Some(t) => req["NextToken"] = t.clone(),
            None => break,
        }
    }
    // 5 + 3 + 5 points, 3 a page.
    assert_eq!(pages, 5);
    assert!(statuses.contains(&"PartialData".to_string()));
    let mut want_a = A.to_vec();
    want_a.reverse();
    assert_eq!(gathered["a"], want_a);
    assert_eq!(gathered["b"].len(), 3);
    assert_eq!(
        gathered["e"],
        want_a
            .iter()
            .map(|&(k, v)| (k, v * 10.0))
            .collect::<Vec<_>>()
    );
    // A token belongs to its request.
    let mut other = request(base, vec![stat_query("a", "App", "B", "Sum")]);
    other["NextToken"] = req["NextToken"].clone();
    let first = h
        .ok("GetMetricData", {
            let mut r = request(base, vec![stat_query("a", "App", "A", "Sum")]);
            r["MaxDatapoints"] = json!(1);
            r
        })
        .await;
    other["NextToken"] = first["NextToken"].clone();
    let e = h.err("GetMetricData", other).await;
    assert_eq!((e.code.as_str(), e.status), ("InvalidNextToken", 400));
    let mut junk = request(base, vec![stat_query("a", "App", "A", "Sum")]);
    junk["NextToken"] = json!("not-a-token");
    assert_eq!(h.err("GetMetricData", junk).await.code, "InvalidNextToken");
}

#[tokio::test]
async fn units_and_statistics() {
    let h = Harness::new();
    let base = base_s(&h);
    h.ok(
        "PutMetricData",
        json!({ "Namespace": "App", "MetricData": [
            { "MetricName": "L", "Timestamp": base, "Values": [1.0, 2.0, 3.0, 4.0], "Unit": "Milliseconds" },
            { "MetricName": "L", "Timestamp": base, "Value": 100.0, "Unit": "Seconds" },
        ]}),
    )
    .await;
    let mut ms = stat_query("ms", "App", "L", "Average");
    ms["MetricStat"]["Unit"] = json!("Milliseconds");
    let out = h
        .ok(
            "GetMetricData",
            request(
                base,
                vec![
                    ms,
                    stat_query("all", "App", "L", "Sum"),
                    stat_query("p", "App", "L", "p50"),
                ],
            ),
        )
        .await;
    assert_eq!(points(by_id(&out, "ms"), base), vec![(0, 2.5)]);
    // No Unit: every unit's data, combined as the statistic combines.
    assert_eq!(points(by_id(&out, "all"), base), vec![(0, 110.0)]);
    // A percentile takes the unit with the most samples.
    assert_eq!(points(by_id(&out, "p"), base), vec![(0, 2.0)]);
}

#[tokio::test]
async fn non_finite_values_are_dropped_with_a_message() {
    let h = Harness::new();
    let base = base_s(&h);
    put_series(&h, "App", "Z", base, &[(0, 0.0), (1, 2.0)]).await;
    let out = h
        .ok(
            "GetMetricData",
            request(
                base,
                vec![
                    stat_query("z", "App", "Z", "Sum"),
                    expr_query("inv", "1 / z"),
                ],
            ),
        )
        .await;
    let inv = by_id(&out, "inv");
    assert_eq!(points(inv, base), vec![(1, 0.5)]);
    assert_eq!(inv["StatusCode"], "Complete");
    assert_eq!(inv["Messages"][0]["Code"], "ArithmeticError");
}

#[tokio::test]
async fn request_errors() {
    let h = Harness::new();
    let base = base_s(&h);
    let good = || stat_query("m1", "App", "A", "Sum");
    let with = |queries: Vec<Value>| request(base, queries);
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            with(vec![stat_query("M1", "App", "A", "Sum")]),
            "ValidationError",
            "The value M1 for parameter MetricDataQueries.member.1.Id is not matching the expected pattern ^[a-z][a-zA-Z0-9_]*$.",
        ),
        (
            with(vec![good(), stat_query("m1", "App", "B", "Sum")]),
            "ValidationError",
            "The values for parameter id in MetricDataQueries are not unique.",
        ),
        (
            with(vec![stat_query("m1", "App", "A", "Median")]),
            "ValidationError",
            "The value Median for parameter MetricDataQueries.member.1.MetricStat.Stat is not a valid statistic.",
        ),
        (
            with(vec![json!({ "Id": "x" })]),
            "ValidationError",
            "Exactly one of the parameters MetricDataQueries.member.1.MetricStat and MetricDataQueries.member.1.Expression must be specified.",
        ),
        (
            with(vec![good(), expr_query("e1", "m1 + m9")]),
            "ValidationError",
            "Error in expression e1: Unrecognized metric or expression id m9",
        ),
        (
            with(vec![expr_query("e1", "e2 * 2"), expr_query("e2", "e1 + 1")]),
            "ValidationError",
            "Error in expression e1: The expression depends on itself (a circular reference)",
        ),
        (
            with(vec![good(), expr_query("e1", "m1 +")]),
            "ValidationError",
            "Error in expression e1: Unexpected end of expression",
        ),
        (
            with(vec![good(), expr_query("e1", "METRICS() * METRICS()")]),
            "ValidationError",
            "Error in expression e1: The operator * cannot combine two arrays of time series",
        ),
        (
            with(vec![json!({ "Id": "m1", "ReturnData": false, "MetricStat": {
                "Metric": { "Namespace": "App", "MetricName": "A" }, "Period": 60, "Stat": "Sum" } })]),
            "ValidationError",
            "At least one of the queries in MetricDataQueries must have ReturnData set to true.",
        ),
        (
            with(vec![json!({ "Id": "m1", "MetricStat": {
                "Metric": { "Namespace": "App", "MetricName": "A" }, "Period": 45, "Stat": "Sum" } })]),
            "ValidationError",
            "The parameter MetricDataQueries.member.1.MetricStat.Period must be 1, 5, 10, 20, 30, or a multiple of 60.",
        ),
        (
            with(vec![json!({ "Id": "m1", "MetricStat": {
                "Metric": { "Namespace": "App", "MetricName": "A" }, "Stat": "Sum" } })]),
            "MissingParameter",
            "The parameter MetricDataQueries.member.1.MetricStat.Period is required.",
        ),
        (
            json!({ "MetricDataQueries": [good()], "StartTime": base }),
            "MissingParameter",
            "The parameter EndTime is required.",
        ),
        (
            json!({ "StartTime": base, "EndTime": base + 60 }),
            "MissingParameter",
            "The parameter MetricDataQueries is required.",
        ),
        (
            json!({ "MetricDataQueries": [good()], "StartTime": base, "EndTime": base }),
            "InvalidParameterValue",
            "The parameter StartTime must be less than the parameter EndTime.",
        ),
        (
            json!({ "MetricDataQueries": [good()], "StartTime": base, "EndTime": base + 60, "MaxDatapoints": 0 }),
            "InvalidParameterValue",
            "The parameter MaxDatapoints must be greater than 0.",
        ),
        (
            json!({ "MetricDataQueries": [good()], "StartTime": base, "EndTime": base + 60,
                    "LabelOptions": { "Timezone": "+2500" } }),
            "InvalidParameterValue",
            "The value +2500 for parameter LabelOptions.Timezone is invalid.",
        ),
        (
            json!({ "MetricDataQueries": [good()], "StartTime": base, "EndTime": base + 60, "ScanBy": "Sideways" }),
            "InvalidParameterValue",
            "The parameter ScanBy must be a value in the set [ TimestampDescending, TimestampAscending ].",
        ),
    ];
    for (input, code, message) in cases {
        let e = h.err("GetMetricData", input.clone()).await;
        assert_err(&e, code, message);
    }
    // Several problems at once: one sentence each, a line apart.
    let e = h
        .err(
            "GetMetricData",
            with(vec![
                stat_query("A", "App", "A", "Sum"),
                stat_query("b", "App", "A", "Nope"),
            ]),
        )
        .await;
    assert_eq!(e.message.lines().count(), 2, "{}", e.message);
    // Too many queries.
    let many: Vec<Value> = (0..501)
        .map(|i| stat_query(&format!("m{i}"), "App", "A", "Sum"))
        .collect();
    assert_eq!(
        h.err("GetMetricData", with(many)).await.code,
        "InvalidParameterValue"
    );
    // A function nimbus does not evaluate says so.
    let e = h
        .err(
            "GetMetricData",
            with(vec![expr_query(
                "s",
                "SEARCH('{AWS/EC2} CPUUtilization', 'Average', 300)",
            )]),
        )
        .await;
    assert_eq!(
        e.message,
        "Error in expression s: The function SEARCH is not supported by nimbus"
    );
}

#[tokio::test]
async fn another_account_sees_none_of_the_data() {
    let h = Harness::new();
    let base = base_s(&h);
    two_series(&h, "App", base).await;
    let out = h
        .call_as(
            "999988887777",
            "GetMetricData",
            request(base, vec![stat_query("a", "App", "A", "Sum")]),
        )
        .await
        .unwrap();
    assert_eq!(results(&out)[0]["Values"], json!([]));
    assert_eq!(results(&out)[0]["StatusCode"], "Complete");
}

#[tokio::test]
async fn query_lists_for_alarms() {
    let h = Harness::new();
    let base = base_s(&h);
    two_series(&h, "App", base).await;
    let list = json!([
        { "Id": "a", "ReturnData": false, "MetricStat": {
            "Metric": { "Namespace": "App", "MetricName": "A",
                        "Dimensions": [{ "Name": "Z", "Value": "1" }, { "Name": "Y", "Value": "2" }] },
            "Period": 60, "Stat": "p90", "Unit": "Count" } },
        { "Id": "b", "ReturnData": false, "MetricStat": {
            "Metric": { "Namespace": "App", "MetricName": "B" }, "Period": 60, "Stat": "Sum" } },
        { "Id": "e", "Expression": "FILL(b, 0) * 2", "Label": "Doubled", "Period": 60 },
    ]);
    let queries = parse_queries(&list, "Metrics").unwrap();
    // Echoed in the API's shape, exactly as given.
    let echoed: Vec<Value> = queries.iter().map(|q| q.to_json()).collect();
    assert_eq!(Value::Array(echoed.clone()), list);
    assert_eq!(
        parse_queries(&Value::Array(echoed), "Metrics").unwrap(),
        queries
    );
    let metrics = h.cw.metrics.read().await;
    let start = (base * 1000) as i64;
    let results = run_queries(
        &metrics,
        ACCOUNT,
        REGION,
        &queries,
        start,
        start + 6 * 60_000,
        h.now_ms(),
    )
    .unwrap();
    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert_eq!(
        (r.id.as_str(), r.label.as_str(), r.status),
        ("e", "Doubled", StatusCode::Complete)
    );
    let want: Vec<(i64, f64)> = (0..6)
        .map(|k| {
            let v = B.iter().find(|p| p.0 == k).map_or(0.0, |p| p.1 * 2.0);
            (start + k as i64 * 60_000, v)
        })
        .collect();
    assert_eq!(r.points, want);
    // The alarm's list name is the one its errors speak of.
    let e = parse_queries(&json!([{ "Id": "Bad", "Expression": "1" }]), "Metrics").unwrap_err();
    assert_eq!(
        e.message,
        "The value Bad for parameter Metrics.member.1.Id is not matching the expected pattern ^[a-z][a-zA-Z0-9_]*$."
    );
}

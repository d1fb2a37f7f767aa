//! The expression reader and evaluator on hand-made series: precedence,
//! alignment of series with different timestamps, each function, and the
//! dynamic labels.

use super::label::{parse_timezone, render};
use super::*;
use std::collections::HashMap;

const M: i64 = 60_000;

struct TestEnv {
    values: HashMap<String, Value>,
    metrics: Vec<Series>,
}

impl Env for TestEnv {
    fn value_of(&mut self, id: &str) -> Result<Value, String> {
        self.values
            .get(id)
            .cloned()
            .ok_or_else(|| format!("Unknown id {id}"))
    }
    fn metrics(&mut self) -> Result<Vec<Series>, String> {
        Ok(self.metrics.clone())
    }
}

fn series(id: &str, points: &[(i64, f64)]) -> Series {
    Series {
        label: format!("label-{id}"),
        id: id.into(),
        period_s: 60,
        points: points.iter().map(|&(k, v)| (k * M, v)).collect(),
    }
}

fn env() -> TestEnv {
    // m1: minutes 0..5 = 1,2,3,4,5; m2: minutes 1,3,5 = 10,30,50 (gaps);
    // m3: minutes 0..5 = 6,0,2,0,9.
    let m1 = series("m1", &[(0, 1.0), (1, 2.0), (2, 3.0), (3, 4.0), (4, 5.0)]);
    let m2 = series("m2", &[(1, 10.0), (3, 30.0), (5, 50.0)]);
    let m3 = series("m3", &[(0, 6.0), (1, 0.0), (2, 2.0), (3, 0.0), (4, 9.0)]);
    let mut values = HashMap::new();
    for s in [&m1, &m2, &m3] {
        values.insert(s.id.clone(), Value::Series(s.clone()));
    }
    TestEnv {
        values,
        metrics: vec![m1, m2, m3],
    }
}

const WINDOW: Window = Window {
    start_ms: 0,
    end_ms: 6 * M,
    now_ms: 10 * M,
    max_points: 100_800,
};

fn eval(text: &str) -> Result<Value, String> {
    let e = parse(text)?;
    evaluate(&e, &mut env(), &WINDOW, 60)
}

fn scalar(text: &str) -> f64 {
    match eval(text) {
        Ok(Value::Scalar(x)) => x,
        other => panic!("{text}: expected a scalar, got {other:?}"),
    }
}

/// A series result as (minute, value).
fn points(text: &str) -> Vec<(i64, f64)> {
    match eval(text) {
        Ok(Value::Series(s)) => s.points.iter().map(|&(t, v)| (t / M, v)).collect(),
        other => panic!("{text}: expected a series, got {other:?}"),
    }
}

fn array(text: &str) -> Vec<Series> {
    match eval(text) {
        Ok(Value::Array(a)) => a,
        other => panic!("{text}: expected an array, got {other:?}"),
    }
}

#[test]
fn precedence_and_associativity() {
    assert_eq!(scalar("1 + 2 * 3"), 7.0);
    assert_eq!(scalar("(1 + 2) * 3"), 9.0);
    assert_eq!(scalar("2 ^ 3 ^ 2"), 512.0);
    assert_eq!(scalar("-2 ^ 2"), -4.0);
    assert_eq!(scalar("2 ^ -1"), 0.5);
    assert_eq!(scalar("10 - 4 - 3"), 3.0);
    assert_eq!(scalar("12 / 3 / 2"), 2.0);
    assert_eq!(scalar("1 + 2 > 2 AND 3 < 1 || 1"), 1.0);
    assert_eq!(scalar("NOT 1 == 0"), 1.0);
    assert_eq!(scalar("!(2 >= 3) && 2 <= 2 && 1 != 2"), 1.0);
    assert_eq!(scalar("1.5e1 + .5"), 15.5);
    assert_eq!(scalar("1 OR 0 AND 0"), 1.0);
}

#[test]
fn series_align_on_common_timestamps() {
    // m2 only has minutes 1, 3, 5; m1 has 0..4: the sum exists at 1 and 3.
    assert_eq!(points("m1 + m2"), vec![(1, 12.0), (3, 34.0)]);
    assert_eq!(points("m2 / m1 * 2"), vec![(1, 10.0), (3, 15.0)]);
    assert_eq!(
        points("m1 * 2 - 1"),
        vec![(0, 1.0), (1, 3.0), (2, 5.0), (3, 7.0), (4, 9.0)]
    );
    assert_eq!(points("-m2"), vec![(1, -10.0), (3, -30.0), (5, -50.0)]);
    assert_eq!(
        points("100 / m2"),
        vec![(1, 10.0), (3, 100.0 / 30.0), (5, 2.0)]
    );
    // Division by zero stays in the value (the caller drops it at the end).
    assert!(points("m1 / m3")[1].1.is_infinite());
    assert_eq!(
        points("m1 > 2"),
        vec![(0, 0.0), (1, 0.0), (2, 1.0), (3, 1.0), (4, 1.0)]
    );
}

#[test]
fn reductions_of_a_series_are_scalars() {
    assert_eq!(scalar("AVG(m1)"), 3.0);
    assert_eq!(scalar("SUM(m1)"), 15.0);
    assert_eq!(scalar("MAX(m2)"), 50.0);
    assert_eq!(scalar("MIN(m3)"), 0.0);
    assert_eq!(scalar("DATAPOINT_COUNT(m2)"), 3.0);
    assert!((scalar("STDDEV(m1)") - 2f64.sqrt()).abs() < 1e-12);
    assert_eq!(
        points("m1 - AVG(m1)"),
        vec![(0, -2.0), (1, -1.0), (2, 0.0), (3, 1.0), (4, 2.0)]
    );
    assert_eq!(scalar("PERIOD(m1)"), 60.0);
}

#[test]
fn reductions_of_an_array_go_timestamp_by_timestamp() {
    assert_eq!(
        points("SUM(METRICS())"),
        vec![
            (0, 7.0),
            (1, 12.0),
            (2, 5.0),
            (3, 34.0),
            (4, 14.0),
            (5, 50.0)
        ]
    );
    assert_eq!(
        points("MAX([m1, m3])"),
        vec![(0, 6.0), (1, 2.0), (2, 3.0), (3, 4.0), (4, 9.0)]
    );
    assert_eq!(
        points("MIN([m1, m3])"),
        vec![(0, 1.0), (1, 0.0), (2, 2.0), (3, 0.0), (4, 5.0)]
    );
    assert_eq!(points("AVG([m1, m2])")[1], (1, 6.0));
    assert_eq!(points("STDDEV([m1, m3])")[0], (0, 2.5));
    assert_eq!(points("DATAPOINT_COUNT(METRICS())")[1], (1, 3.0));
    assert_eq!(scalar("METRIC_COUNT(METRICS())"), 3.0);
}

#[test]
fn metrics_filter_by_id() {
    let mut e = env();
    e.metrics[0].id = "errors_a".into();
    e.metrics[1].id = "errors_b".into();
    let expr = parse("METRICS(\"errors\")").unwrap();
    let Value::Array(a) = evaluate(&expr, &mut e, &WINDOW, 60).unwrap() else {
        panic!("array expected")
    };
    assert_eq!(a.len(), 2);
    // Arithmetic on an array keeps each series' label.
    let labels: Vec<String> = array("METRICS() * 2")
        .into_iter()
        .map(|s| s.label)
        .collect();
    assert_eq!(labels, ["label-m1", "label-m2", "label-m3"]);
}

#[test]
fn elementwise_functions() {
    assert_eq!(scalar("ABS(-3)"), 3.0);
    assert_eq!(points("CEIL(m2 / 7)"), vec![(1, 2.0), (3, 5.0), (5, 8.0)]);
    assert_eq!(points("FLOOR(m2 / 7)"), vec![(1, 1.0), (3, 4.0), (5, 7.0)]);
    assert_eq!(scalar("LOG10(1000)"), 3.0);
    assert_eq!(scalar("SQRT(16)"), 4.0);
    assert_eq!(points("ABS(m3 - 3)")[0], (0, 3.0));
    assert_eq!(points("EPOCH(m2)")[0], (1, 60.0));
}

#[test]
fn differences_and_running_sum() {
    assert_eq!(points("DIFF(m2)"), vec![(3, 20.0), (5, 20.0)]);
    assert_eq!(points("DIFF_TIME(m2)"), vec![(3, 120.0), (5, 120.0)]);
    // 20 over 120 seconds.
    assert_eq!(
        points("RATE(m2)"),
        vec![(3, 20.0 / 120.0), (5, 20.0 / 120.0)]
    );
    assert_eq!(
        points("RUNNING_SUM(m2)"),
        vec![(1, 10.0), (3, 40.0), (5, 90.0)]
    );
}

#[test]
fn fill_repeat_linear_and_series() {
    // The window's grid is minutes 0..5.
    assert_eq!(
        points("FILL(m2, 0)"),
        vec![
            (0, 0.0),
            (1, 10.0),
            (2, 0.0),
            (3, 30.0),
            (4, 0.0),
            (5, 50.0)
        ]
    );
    assert_eq!(
        points("FILL(m2, REPEAT)"),
        vec![(1, 10.0), (2, 10.0), (3, 30.0), (4, 30.0), (5, 50.0)]
    );
    assert_eq!(
        points("FILL(m2, LINEAR)"),
        vec![(1, 10.0), (2, 20.0), (3, 30.0), (4, 40.0), (5, 50.0)]
    );
    assert_eq!(
        points("FILL(m2, m1)"),
        vec![
            (0, 1.0),
            (1, 10.0),
            (2, 3.0),
            (3, 30.0),
            (4, 5.0),
            (5, 50.0)
        ]
    );
    // Filled first, the sum exists at every minute m1 has.
    assert_eq!(points("m1 + FILL(m2, 0)").len(), 5);
    assert_eq!(
        points("TIME_SERIES(7)"),
        (0..6).map(|k| (k, 7.0)).collect::<Vec<_>>()
    );
}

#[test]
fn if_picks_per_timestamp() {
    assert_eq!(
        points("IF(m3 != 0, m1 / m3, 0)"),
        vec![(0, 1.0 / 6.0), (1, 0.0), (2, 1.5), (3, 0.0), (4, 5.0 / 9.0)]
    );
    // Without a false value, false points are dropped.
    assert_eq!(points("IF(m1 > 3, m1)"), vec![(3, 4.0), (4, 5.0)]);
    // A true value missing at a timestamp gives no point there.
    assert_eq!(
        points("IF(m1 >= 2, m2, -1)"),
        vec![(0, -1.0), (1, 10.0), (3, 30.0)]
    );
    assert_eq!(
        points("IF(m1 > 1 AND m1 < 5, 1, 0)"),
        vec![(0, 0.0), (1, 1.0), (2, 1.0), (3, 1.0), (4, 0.0)]
    );
    assert_eq!(scalar("IF(1, 2, 3)"), 2.0);
}

#[test]
fn arrays_sort_slice_first_last_remove_empty() {
    let sorted: Vec<String> = array("SORT(METRICS(), AVG, DESC)")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(sorted, ["m2", "m3", "m1"]);
    let sorted: Vec<String> = array("SORT(METRICS(), MAX, ASC, 2)")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(sorted, ["m1", "m3"]);
    let e = parse("FIRST(SORT(METRICS(), SUM, DESC))").unwrap();
    let Value::Series(top) = evaluate(&e, &mut env(), &WINDOW, 60).unwrap() else {
        panic!()
    };
    assert_eq!(top.id, "m2");
    assert_eq!(points("LAST(METRICS())")[0], (0, 6.0));
    let sliced: Vec<String> = array("SLICE(METRICS(), 1, 3)")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(sliced, ["m2", "m3"]);
    let mut e = env();
    e.metrics[1].points.clear();
    let expr = parse("REMOVE_EMPTY(METRICS())").unwrap();
    let Value::Array(a) = evaluate(&expr, &mut e, &WINDOW, 60).unwrap() else {
        panic!()
    };
    assert_eq!(a.len(), 2);
}

#[test]
fn parse_errors_are_sentences() {
    for (text, want) in [
        ("m1 +", "Unexpected end of expression"),
        ("(m1 + 2", "Missing closing parenthesis"),
        ("m1 $ 2", "Unrecognized character '$'"),
        ("FOO(m1)", "Unknown function FOO"),
        (
            "SEARCH('{AWS/EC2} CPU', 'Average', 300)",
            "The function SEARCH is not supported by nimbus",
        ),
        ("ABS(m1, m2)", "The function ABS takes 1 arguments, 2 given"),
        ("m1 m2", "Unexpected token 'm2'"),
        ("", "The expression is empty"),
    ] {
        assert_eq!(parse(text).unwrap_err(), want, "{text}");
    }
    let deep = format!("{}1{}", "(".repeat(200), ")".repeat(200));
    assert_eq!(
        parse(&deep).unwrap_err(),
        "The expression is nested too deeply"
    );
    assert_eq!(parse("m1 + m2 * m1").unwrap().refs(), ["m1", "m2"]);
}

#[test]
fn type_errors_name_the_problem() {
    assert_eq!(
        eval("METRICS() + METRICS()").unwrap_err(),
        "The operator + cannot combine two arrays of time series"
    );
    assert_eq!(
        eval("RATE(3)").unwrap_err(),
        "The function RATE expects a time series"
    );
    assert_eq!(
        eval("m1 + REPEAT").unwrap_err(),
        "Unexpected keyword REPEAT"
    );
}

#[test]
fn dynamic_labels() {
    let pts = [(0, 2.0), (60_000, 8.0), (120_000, 5.0)];
    assert_eq!(
        render(
            "${LABEL} avg ${AVG} max ${MAX} min ${MIN} sum ${SUM}",
            "Lat",
            &pts,
            0
        ),
        "Lat avg 5 max 8 min 2 sum 15"
    );
    assert_eq!(
        render("${FIRST}/${LAST} n=${DATAPOINT_COUNT}", "x", &pts, 0),
        "2/5 n=3"
    );
    assert_eq!(
        render("${MAX_TIME} ${LAST_TIME}", "x", &pts, 90),
        "1970-01-01T01:31:00+0130 1970-01-01T01:32:00+0130"
    );
    assert_eq!(
        render("${FIRST_TIME}", "x", &pts, -60),
        "1969-12-31T23:00:00-0100"
    );
    assert_eq!(
        render("${AVG} ${UNKNOWN} ${", "x", &[], 0),
        " ${UNKNOWN} ${"
    );
    assert_eq!(parse_timezone("+0130"), Some(90));
    assert_eq!(parse_timezone("-0800"), Some(-480));
    for bad in ["0130", "+130", "+2400", "+0060", "UTC"] {
        assert_eq!(parse_timezone(bad), None, "{bad}");
    }
}

//! The alarm operations through the service: evaluation on the service
//! clock, history, composites, actions (once, and across a restart), tags
//! and the errors of each operation.

use super::{Harness, ACCOUNT, REGION};
use crate::alarms::actions::{ActionRequest, ActionResult, ActionSink};
use nimbus_core::BoxFuture;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

const MINUTE_MS: u64 = 60_000;

/// Records the EC2 actions asked of it.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<(String, String)>>,
}

impl ActionSink for Recorder {
    fn ec2(&self, request: &ActionRequest, instance_id: &str) -> BoxFuture<'_, ActionResult> {
        self.calls
            .lock()
            .unwrap()
            .push((request.arn.clone(), instance_id.to_string()));
        Box::pin(async { Ok(()) })
    }

    fn autoscaling(&self, _request: &ActionRequest) -> BoxFuture<'_, ActionResult> {
        Box::pin(async { Err("no Auto Scaling here".to_string()) })
    }
}

fn alarm(name: &str, extra: Value) -> Value {
    let mut v = json!({
        "AlarmName": name,
        "MetricName": "Load",
        "Namespace": "App",
        "Statistic": "Average",
        "Period": 60,
        "EvaluationPeriods": 3,
        "Threshold": 50.0,
        "ComparisonOperator": "GreaterThanThreshold",
    });
    if let (Value::Object(base), Value::Object(more)) = (&mut v, extra) {
        for (k, val) in more {
            if val.is_null() {
                base.remove(&k);
            } else {
                base.insert(k, val);
            }
        }
    }
    v
}

async fn describe(h: &Harness, name: &str) -> Value {
    let v = h
        .ok(
            "DescribeAlarms",
            json!({"AlarmNames": [name], "AlarmTypes": ["MetricAlarm", "CompositeAlarm"]}),
        )
        .await;
    v["MetricAlarms"]
        .as_array()
        .unwrap()
        .iter()
        .chain(v["CompositeAlarms"].as_array().unwrap())
        .next()
        .cloned()
        .unwrap_or(Value::Null)
}

async fn state(h: &Harness, name: &str) -> String {
    describe(h, name).await["StateValue"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Puts `values` one a minute, the last in the minute before `end_ms`.
async fn put_minutes(h: &Harness, end_ms: u64, values: &[f64]) {
    let n = values.len() as u64;
    let data: Vec<Value> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let t = end_ms - (n - i as u64) * MINUTE_MS;
            json!({"MetricName": "Load", "Value": v, "Timestamp": t as f64 / 1000.0})
        })
        .collect();
    h.ok(
        "PutMetricData",
        json!({"Namespace": "App", "MetricData": data}),
    )
    .await;
}

/// Moves the clock past the next minute's evaluation and evaluates; returns
/// the start of the minute the evaluation ran in.
async fn next_evaluation(h: &Harness) -> u64 {
    h.advance(MINUTE_MS);
    h.cw.evaluate_alarms().await.unwrap();
    h.now_ms() / MINUTE_MS * MINUTE_MS
}

fn history(v: &Value) -> Vec<(String, String)> {
    v["AlarmHistoryItems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["HistoryItemType"].as_str().unwrap().to_string(),
                i["HistorySummary"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_metric_alarm_follows_its_data_with_history() {
    let h = Harness::new();
    h.ok("PutMetricAlarm", alarm("hot", json!({}))).await;
    let created = describe(&h, "hot").await;
    assert_eq!(created["StateValue"], "INSUFFICIENT_DATA");
    assert_eq!(created["StateReason"], "Unchecked: Initial alarm creation");
    assert_eq!(
        created["AlarmArn"],
        format!("arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:hot")
    );

    // Three breaching minutes just before the minute of the next evaluation.
    let minute = (h.now_ms() + MINUTE_MS) / MINUTE_MS * MINUTE_MS;
    put_minutes(&h, minute, &[81.2, 90.0, 77.5]).await;
    assert_eq!(next_evaluation(&h).await, minute);
    let alarmed = describe(&h, "hot").await;
    assert_eq!(alarmed["StateValue"], "ALARM");
    let reason = alarmed["StateReason"].as_str().unwrap();
    assert!(
        reason.starts_with("Threshold Crossed: 3 datapoints [77.5 (")
            && reason.ends_with("were greater than the threshold (50.0)."),
        "{reason}"
    );
    let data: Value = serde_json::from_str(alarmed["StateReasonData"].as_str().unwrap()).unwrap();
    assert_eq!(data["recentDatapoints"], json!([81.2, 90.0, 77.5]));
    assert_eq!(data["threshold"], json!(50.0));

    // Three calm minutes bring it back.
    let minute = minute + 3 * MINUTE_MS;
    put_minutes(&h, minute, &[10.0, 12.0, 11.0]).await;
    h.advance(2 * MINUTE_MS);
    h.cw.evaluate_alarms().await.unwrap();
    assert_eq!(next_evaluation(&h).await, minute);
    assert_eq!(state(&h, "hot").await, "OK");

    let v = h
        .ok("DescribeAlarmHistory", json!({"AlarmName": "hot"}))
        .await;
    assert_eq!(
        history(&v),
        vec![
            (
                "StateUpdate".into(),
                "Alarm updated from ALARM to OK".into()
            ),
            (
                "StateUpdate".into(),
                "Alarm updated from INSUFFICIENT_DATA to ALARM".into()
            ),
            ("ConfigurationUpdate".into(), "Alarm \"hot\" created".into()),
        ]
    );
    let first = &v["AlarmHistoryItems"][1];
    let data: Value = serde_json::from_str(first["HistoryData"].as_str().unwrap()).unwrap();
    assert_eq!(data["oldState"]["stateValue"], "INSUFFICIENT_DATA");
    assert_eq!(data["newState"]["stateValue"], "ALARM");
    assert_eq!(data["newState"]["stateReasonData"]["period"], 60);
    let created: Value =
        serde_json::from_str(v["AlarmHistoryItems"][2]["HistoryData"].as_str().unwrap()).unwrap();
    assert_eq!(created["type"], "Create");
    assert_eq!(created["createdAlarm"]["alarmName"], "hot");

    // Oldest first, one at a time.
    let mut token = None;
    let mut seen = Vec::new();
    loop {
        let mut input =
            json!({"AlarmName": "hot", "ScanBy": "TimestampAscending", "MaxRecords": 1});
        if let Some(t) = &token {
            input["NextToken"] = json!(t);
        }
        let page = h.ok("DescribeAlarmHistory", input).await;
        seen.extend(history(&page).into_iter().map(|(_, s)| s));
        match page.get("NextToken").and_then(Value::as_str) {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(
        seen,
        vec![
            "Alarm \"hot\" created",
            "Alarm updated from INSUFFICIENT_DATA to ALARM",
            "Alarm updated from ALARM to OK"
        ]
    );
}

#[tokio::test]
async fn an_update_keeps_the_state_and_a_restart_keeps_everything() {
    let h = Harness::new();
    h.ok(
        "PutMetricAlarm",
        alarm("a", json!({"Tags": [{"Key": "team", "Value": "x"}]})),
    )
    .await;
    h.ok(
        "SetAlarmState",
        json!({"AlarmName": "a", "StateValue": "ALARM", "StateReason": "testing"}),
    )
    .await;
    h.ok("PutMetricAlarm", alarm("a", json!({"Threshold": 70.0})))
        .await;
    let a = describe(&h, "a").await;
    assert_eq!(a["StateValue"], "ALARM");
    assert_eq!(a["StateReason"], "testing");
    assert_eq!(a["Threshold"], json!(70.0));
    let h = h.reopen();
    let a = describe(&h, "a").await;
    assert_eq!(a["StateValue"], "ALARM");
    assert_eq!(a["Threshold"], json!(70.0));
    let arn = a["AlarmArn"].as_str().unwrap().to_string();
    let tags = h
        .ok("ListTagsForResource", json!({"ResourceARN": arn}))
        .await;
    assert_eq!(tags["Tags"], json!([{"Key": "team", "Value": "x"}]));
    let v = h
        .ok("DescribeAlarmHistory", json!({"AlarmName": "a"}))
        .await;
    assert_eq!(
        history(&v)
            .iter()
            .map(|(_, s)| s.as_str())
            .collect::<Vec<_>>(),
        vec![
            "Alarm \"a\" updated",
            "Alarm updated from INSUFFICIENT_DATA to ALARM",
            "Alarm \"a\" created"
        ]
    );
}

#[tokio::test]
async fn actions_run_once_even_across_a_restart() {
    let h = Harness::new();
    let recorder = Arc::new(Recorder::default());
    h.cw.set_action_sink(recorder.clone());
    let stop = format!("arn:aws:automate:{REGION}:ec2:stop");
    h.ok(
        "PutMetricAlarm",
        alarm(
            "cpu",
            json!({"Dimensions": [{"Name": "InstanceId", "Value": "i-0123"}],
                   "AlarmActions": [stop.clone(), "arn:aws:sns:us-east-1:111122223333:t"]}),
        ),
    )
    .await;
    h.ok(
        "SetAlarmState",
        json!({"AlarmName": "cpu", "StateValue": "ALARM", "StateReason": "go"}),
    )
    .await;
    assert_eq!(
        *recorder.calls.lock().unwrap(),
        vec![(stop.clone(), "i-0123".to_string())]
    );
    let v = h
        .ok(
            "DescribeAlarmHistory",
            json!({"AlarmName": "cpu", "HistoryItemType": "Action"}),
        )
        .await;
    let items = history(&v);
    assert_eq!(items.len(), 2);
    assert!(items
        .iter()
        .any(|(_, s)| *s == format!("Successfully executed action {stop}")));
    let failed = v["AlarmHistoryItems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["HistorySummary"].as_str().unwrap().starts_with("Failed"))
        .unwrap();
    let data: Value = serde_json::from_str(failed["HistoryData"].as_str().unwrap()).unwrap();
    assert_eq!(data["actionState"], "Failed");
    assert!(data["error"].as_str().unwrap().contains("SNS"));

    // Same state again: no transition, no action.
    h.ok(
        "SetAlarmState",
        json!({"AlarmName": "cpu", "StateValue": "ALARM", "StateReason": "still"}),
    )
    .await;
    assert_eq!(recorder.calls.lock().unwrap().len(), 1);

    // A restart after the actions ran does not run them again.
    let h = h.reopen();
    assert!(h.cw.alarms.actions_pending().is_empty());

    // A restart between the transition and its actions runs them then.
    h.ok(
        "SetAlarmState",
        json!({"AlarmName": "cpu", "StateValue": "OK", "StateReason": "calm"}),
    )
    .await;
    let names = vec!["cpu".to_string()];
    h.cw.alarms
        .modify(ACCOUNT, REGION, &names, h.now_ms(), |r| {
            r.state = "ALARM".into();
            r.actions_due = true;
            true
        })
        .await
        .unwrap();
    let h = h.reopen();
    let recorder = Arc::new(Recorder::default());
    h.cw.set_action_sink(recorder.clone());
    h.cw.alarms.ensure_loaded(h.now_ms()).unwrap();
    let pending = h.cw.alarms.actions_pending();
    assert_eq!(pending.len(), 1);
    h.cw.alarms
        .run_actions(&pending[0], h.now_ms())
        .await
        .unwrap();
    assert_eq!(recorder.calls.lock().unwrap().len(), 1);
    assert!(h.cw.alarms.actions_pending().is_empty());

    // With actions disabled a transition acts on nothing.
    h.ok("DisableAlarmActions", json!({"AlarmNames": ["cpu"]}))
        .await;
    assert_eq!(describe(&h, "cpu").await["ActionsEnabled"], false);
    h.ok(
        "SetAlarmState",
        json!({"AlarmName": "cpu", "StateValue": "OK", "StateReason": "x"}),
    )
    .await;
    h.ok(
        "SetAlarmState",
        json!({"AlarmName": "cpu", "StateValue": "ALARM", "StateReason": "y"}),
    )
    .await;
    assert_eq!(recorder.calls.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn composites_follow_their_children() {
    let h = Harness::new();
    h.ok("PutMetricAlarm", alarm("a", json!({}))).await;
    h.ok("PutMetricAlarm", alarm("b", json!({}))).await;
    h.ok(
        "PutCompositeAlarm",
        json!({"AlarmName": "any", "AlarmRule": "ALARM(a) OR ALARM(\"b\")"}),
    )
    .await;
    let any = describe(&h, "any").await;
    assert_eq!(any["StateValue"], "OK");
    assert!(any["StateReason"]
        .as_str()
        .unwrap()
        .ends_with(":alarm:any was created and its alarm rule evaluates to OK"));
    h.ok(
        "SetAlarmState",
        json!({"AlarmName": "b", "StateValue": "ALARM", "StateReason": "t"}),
    )
    .await;
    let any = describe(&h, "any").await;
    assert_eq!(any["StateValue"], "ALARM");
    assert!(
        any["StateReason"]
            .as_str()
            .unwrap()
            .contains(":alarm:b transitioned to ALARM at "),
        "{}",
        any["StateReason"]
    );

    // Default listings show metric alarms only.
    let v = h.ok("DescribeAlarms", json!({})).await;
    assert_eq!(v["MetricAlarms"].as_array().unwrap().len(), 2);
    assert_eq!(v["CompositeAlarms"].as_array().unwrap().len(), 0);
    let children = h
        .ok("DescribeAlarms", json!({"ChildrenOfAlarmName": "any"}))
        .await;
    let names: Vec<&str> = children["MetricAlarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["AlarmName"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["a", "b"]);
    let parents = h
        .ok("DescribeAlarms", json!({"ParentsOfAlarmName": "a"}))
        .await;
    assert_eq!(parents["CompositeAlarms"][0]["AlarmName"], "any");

    // A rule naming an alarm that does not exist is refused.
    let e = h
        .err(
            "PutCompositeAlarm",
            json!({"AlarmName": "c", "AlarmRule": "ALARM(nope)"}),
        )
        .await;
    assert_eq!(e.code, "ValidationError");
    assert_eq!(
        e.message,
        "Could not save the composite alarm as alarms [nope] in the alarm rule do not exist"
    );
    // A composite named by another cannot go first.
    h.ok(
        "PutCompositeAlarm",
        json!({"AlarmName": "top", "AlarmRule": "ALARM(any)"}),
    )
    .await;
    let e = h.err("DeleteAlarms", json!({"AlarmNames": ["any"]})).await;
    assert_eq!(e.code, "ValidationError");
    h.ok(
        "DeleteAlarms",
        json!({"AlarmNames": ["top", "any", "gone"]}),
    )
    .await;
    assert_eq!(describe(&h, "any").await, Value::Null);
}

#[tokio::test]
async fn describe_filters_and_pages() {
    let h = Harness::new();
    for name in ["web-1", "web-2", "web-3", "db-1"] {
        let actions = if name == "db-1" {
            json!(["arn:aws:sns:us-east-1:111122223333:db"])
        } else {
            json!([])
        };
        h.ok("PutMetricAlarm", alarm(name, json!({"OKActions": actions})))
            .await;
    }
    h.ok(
        "SetAlarmState",
        json!({"AlarmName": "web-2", "StateValue": "ALARM", "StateReason": "t"}),
    )
    .await;
    let names = |v: &Value| -> Vec<String> {
        v["MetricAlarms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["AlarmName"].as_str().unwrap().to_string())
            .collect()
    };
    let v = h
        .ok("DescribeAlarms", json!({"AlarmNamePrefix": "web"}))
        .await;
    assert_eq!(names(&v), vec!["web-1", "web-2", "web-3"]);
    let v = h.ok("DescribeAlarms", json!({"StateValue": "ALARM"})).await;
    assert_eq!(names(&v), vec!["web-2"]);
    let v = h
        .ok("DescribeAlarms", json!({"ActionPrefix": "arn:aws:sns"}))
        .await;
    assert_eq!(names(&v), vec!["db-1"]);
    let v = h
        .ok(
            "DescribeAlarms",
            json!({"AlarmNames": ["db-1", "web-3", "none"]}),
        )
        .await;
    assert_eq!(names(&v), vec!["db-1", "web-3"]);

    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut input = json!({"MaxRecords": 3});
        if let Some(t) = &token {
            input["NextToken"] = json!(t);
        }
        let page = h.ok("DescribeAlarms", input).await;
        all.extend(names(&page));
        match page.get("NextToken").and_then(Value::as_str) {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(all, vec!["db-1", "web-1", "web-2", "web-3"]);

    let v = h
        .ok(
            "DescribeAlarmsForMetric",
            json!({"MetricName": "Load", "Namespace": "App", "Statistic": "Average"}),
        )
        .await;
    assert_eq!(v["MetricAlarms"].as_array().unwrap().len(), 4);
    let v = h
        .ok(
            "DescribeAlarmsForMetric",
            json!({"MetricName": "Load", "Namespace": "App", "Statistic": "Sum"}),
        )
        .await;
    assert_eq!(v["MetricAlarms"].as_array().unwrap().len(), 0);

    let e = h.err("DescribeAlarms", json!({"NextToken": "!!"})).await;
    assert_eq!(e.code, "InvalidNextToken");
    let e = h.err("DescribeAlarms", json!({"MaxRecords": 101})).await;
    assert_eq!(e.code, "ValidationError");
    let e = h
        .err(
            "DescribeAlarms",
            json!({"AlarmNames": ["a"], "AlarmNamePrefix": "a"}),
        )
        .await;
    assert_eq!(e.code, "InvalidParameterCombination");
}

#[tokio::test]
async fn put_metric_alarm_errors() {
    let h = Harness::new();
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            alarm("x", json!({"DatapointsToAlarm": 4})),
            "ValidationError",
            "DatapointsToAlarm must be less than or equal to EvaluationPeriods",
        ),
        (
            alarm("x", json!({"Period": 45})),
            "ValidationError",
            "Period must be 10, 20, 30 or a multiple of 60",
        ),
        (
            alarm("x", json!({"ExtendedStatistic": "p99"})),
            "InvalidParameterCombination",
            "The parameters Statistic and ExtendedStatistic are mutually exclusive and you have specified both.",
        ),
        (
            alarm("x", json!({"Statistic": null, "ExtendedStatistic": "q9"})),
            "InvalidParameterValue",
            "The value q9 for parameter ExtendedStatistic is not supported.",
        ),
        (
            alarm("x", json!({"Threshold": null})),
            "ValidationError",
            "1 validation error detected: Value null at 'threshold' failed to satisfy constraint: Member must not be null",
        ),
        (
            alarm("x", json!({"TreatMissingData": "sometimes"})),
            "ValidationError",
            "Option sometimes is not supported. Supported options for parameter TreatMissingData are missing, ignore, breaching and notBreaching.",
        ),
        (
            alarm("x", json!({"AlarmActions": ["stop-it"]})),
            "ValidationError",
            "Invalid arn syntax: stop-it",
        ),
        (
            alarm("x", json!({"EvaluationPeriods": 1441})),
            "ValidationError",
            "The evaluation period of an alarm (Period x EvaluationPeriods) must not exceed one day (86400 seconds) for periods under one hour.",
        ),
    ];
    for (input, code, message) in cases {
        let e = h.err("PutMetricAlarm", input.clone()).await;
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            (code, message),
            "{input}"
        );
        assert_eq!(e.status, 400);
    }
    let e = h
        .err(
            "PutMetricAlarm",
            alarm(
                "x",
                json!({"Metrics": [{"Id": "m1", "MetricStat": {"Metric": {"MetricName": "Load", "Namespace": "App"}, "Period": 60, "Stat": "Average"}}]}),
            ),
        )
        .await;
    assert_eq!(e.code, "ValidationError");
    // Nothing refused was stored.
    let v = h.ok("DescribeAlarms", json!({})).await;
    assert_eq!(v["MetricAlarms"], json!([]));
}

#[tokio::test]
async fn set_alarm_state_and_tag_errors() {
    let h = Harness::new();
    let e = h
        .err(
            "SetAlarmState",
            json!({"AlarmName": "none", "StateValue": "OK", "StateReason": "r"}),
        )
        .await;
    assert_eq!((e.code.as_str(), e.status), ("ResourceNotFound", 404));
    h.ok("PutMetricAlarm", alarm("a", json!({}))).await;
    let e = h
        .err(
            "SetAlarmState",
            json!({"AlarmName": "a", "StateValue": "OK", "StateReason": "r", "StateReasonData": "{no"}),
        )
        .await;
    assert_eq!(e.code, "InvalidFormat");
    let e = h
        .err(
            "SetAlarmState",
            json!({"AlarmName": "a", "StateValue": "BROKEN", "StateReason": "r"}),
        )
        .await;
    assert_eq!(e.code, "ValidationError");
    assert_eq!(state(&h, "a").await, "INSUFFICIENT_DATA");

    let arn = format!("arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:a");
    h.ok(
        "TagResource",
        json!({"ResourceARN": arn, "Tags": [{"Key": "k", "Value": "1"}, {"Key": "j", "Value": "2"}]}),
    )
    .await;
    h.ok(
        "UntagResource",
        json!({"ResourceARN": arn, "TagKeys": ["j"]}),
    )
    .await;
    let v = h
        .ok("ListTagsForResource", json!({"ResourceARN": arn}))
        .await;
    assert_eq!(v["Tags"], json!([{"Key": "k", "Value": "1"}]));
    let e = h
        .err(
            "ListTagsForResource",
            json!({"ResourceARN": format!("{arn}-gone")}),
        )
        .await;
    assert_eq!(
        (e.code.as_str(), e.status),
        ("ResourceNotFoundException", 404)
    );
}

#[tokio::test]
async fn a_reset_forgets_alarms_and_history() {
    let h = Harness::new();
    h.ok("PutMetricAlarm", alarm("a", json!({}))).await;
    nimbus_core::Service::reset(&h.cw).await.unwrap();
    assert_eq!(describe(&h, "a").await, Value::Null);
    let v = h.ok("DescribeAlarmHistory", json!({})).await;
    assert_eq!(v["AlarmHistoryItems"], json!([]));
    let h = h.reopen();
    assert_eq!(describe(&h, "a").await, Value::Null);
}

#[tokio::test]
async fn a_metric_math_alarm_reads_its_expression() {
    let h = Harness::new();
    let metrics = json!([
        {"Id": "m1", "ReturnData": false,
         "MetricStat": {"Metric": {"Namespace": "App", "MetricName": "Load"}, "Period": 60, "Stat": "Sum"}},
        {"Id": "e1", "Expression": "m1 * 2", "Label": "double"},
    ]);
    h.ok(
        "PutMetricAlarm",
        alarm(
            "math",
            json!({"MetricName": null, "Namespace": null, "Statistic": null, "Period": null,
                   "Metrics": metrics, "Threshold": 100.0}),
        ),
    )
    .await;
    let shown = describe(&h, "math").await;
    assert_eq!(shown["Metrics"][1]["Expression"], "m1 * 2");
    assert_eq!(shown["Period"], json!(60));
    assert!(shown.get("MetricName").is_none());

    let minute = (h.now_ms() + MINUTE_MS) / MINUTE_MS * MINUTE_MS;
    put_minutes(&h, minute, &[60.0, 70.0, 80.0]).await;
    next_evaluation(&h).await;
    let alarmed = describe(&h, "math").await;
    assert_eq!(alarmed["StateValue"], "ALARM", "{alarmed}");
    let data: Value = serde_json::from_str(alarmed["StateReasonData"].as_str().unwrap()).unwrap();
    assert_eq!(data["recentDatapoints"], json!([120.0, 140.0, 160.0]));
    assert!(data.get("statistic").is_none());

    // Two queries returning data, or a bad expression, are refused.
    let e = h
        .err(
            "PutMetricAlarm",
            alarm(
                "bad",
                json!({"MetricName": null, "Namespace": null, "Statistic": null, "Period": null,
                       "Metrics": [{"Id": "e1", "Expression": "1 +", "Period": 60}]}),
            ),
        )
        .await;
    assert_eq!(e.code, "ValidationError");
    assert!(e.message.contains("e1"), "{}", e.message);
}

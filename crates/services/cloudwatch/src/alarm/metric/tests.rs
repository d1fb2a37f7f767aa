use super::*;
use nimbus_core::timestamp::epoch_from_civil;

/// Epoch milliseconds of a UTC time.
fn utc(year: i64, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> i64 {
    epoch_from_civil(year, month, day, hour, minute, second).expect("a real date") * 1000
}

fn point(timestamp_ms: i64, value: f64, samples: f64) -> Datapoint {
    Datapoint {
        timestamp_ms,
        value,
        sample_count: Some(samples),
    }
}

fn update(state: AlarmState, reason: &str, reason_data: &str) -> StateUpdate {
    StateUpdate {
        state,
        reason: reason.to_string(),
        reason_data: reason_data.to_string(),
    }
}

// ---------------------------------------------------------------------------
// The user guide's tables. Periods of 5 minutes, an evaluation range of 5,
// threshold 10 with GreaterThanThreshold: "0" is 2.0 (not breaching), "X" is
// 50.0 (breaching), "-" is missing, the most recent datapoint on the right.

const TABLE_PERIOD: u32 = 300;

fn table_newest() -> i64 {
    utc(2026, 7, 12, 10, 0, 0)
}

fn table_range() -> EvaluationRange {
    EvaluationRange {
        newest_period_start_ms: table_newest(),
        periods: 5,
    }
}

fn table_points(pattern: &str) -> Vec<Datapoint> {
    let marks: Vec<&str> = pattern.split_whitespace().collect();
    let count = marks.len() as i64;
    marks
        .iter()
        .enumerate()
        .filter_map(|(i, mark)| {
            let age = count - 1 - i as i64;
            let at = table_newest() - age * i64::from(TABLE_PERIOD) * 1000;
            match *mark {
                "0" => Some(point(at, 2.0, 10.0)),
                "X" => Some(point(at, 50.0, 10.0)),
                "-" => None,
                other => panic!("bad mark {other}"),
            }
        })
        .collect()
}

fn table_config(m: u32, treat: TreatMissingData) -> MetricAlarmConfig {
    let mut config = MetricAlarmConfig::new(
        ComparisonOperator::GreaterThanThreshold,
        10.0,
        3,
        TABLE_PERIOD,
        Some("Average"),
    );
    config.datapoints_to_alarm = Some(m);
    config.treat_missing_data = treat;
    config
}

/// What a table cell says.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cell {
    Goes(AlarmState),
    RetainsCurrentState,
}

use Cell::{Goes, RetainsCurrentState};
const OK: Cell = Goes(AlarmState::Ok);
const ALARM: Cell = Goes(AlarmState::Alarm);
const INSUFFICIENT: Cell = Goes(AlarmState::InsufficientData);
const ALL_STATES: [AlarmState; 3] = [
    AlarmState::Ok,
    AlarmState::Alarm,
    AlarmState::InsufficientData,
];

/// Checks one row: for each TreatMissingData column, from each current state,
/// the outcome is the cell's.
fn check_row(m: u32, pattern: &str, cells: [Cell; 4]) {
    let treatments = [
        TreatMissingData::Missing,
        TreatMissingData::Ignore,
        TreatMissingData::Breaching,
        TreatMissingData::NotBreaching,
    ];
    let points = table_points(pattern);
    for (treat, cell) in treatments.into_iter().zip(cells) {
        let config = table_config(m, treat);
        for current in ALL_STATES {
            let outcome =
                config.evaluate(current, table_range(), &points, table_newest() + 330_000);
            let got = match &outcome {
                Outcome::NoChange => None,
                Outcome::Transition(update) => Some(update.state),
            };
            let want = match cell {
                Goes(state) if state != current => Some(state),
                _ => None,
            };
            assert_eq!(
                got,
                want,
                "{m} of 3, \"{pattern}\", {}, from {current}: {outcome:?}",
                treat.as_str()
            );
        }
    }
}

#[test]
fn user_guide_table_three_of_three() {
    // "Datapoints to Alarm and Evaluation Periods are both 3."
    // Columns: MISSING, IGNORE, BREACHING, NOT BREACHING.
    check_row(3, "0 - X - X", [OK, OK, OK, OK]);
    check_row(3, "- - - - 0", [OK, OK, OK, OK]);
    check_row(
        3,
        "- - - - -",
        [INSUFFICIENT, RetainsCurrentState, ALARM, OK],
    );
    check_row(3, "0 X X - X", [ALARM, ALARM, ALARM, ALARM]);
    check_row(3, "- - X - -", [ALARM, RetainsCurrentState, ALARM, OK]);
}

#[test]
fn user_guide_table_two_of_three() {
    // "Datapoints to Alarm is only 2 while Evaluation Periods is 3."
    check_row(2, "0 - X - X", [ALARM, ALARM, ALARM, ALARM]);
    check_row(2, "0 0 X 0 X", [ALARM, ALARM, ALARM, ALARM]);
    check_row(2, "0 - X - -", [OK, OK, ALARM, OK]);
    check_row(2, "- - - - 0", [OK, OK, ALARM, OK]);
    check_row(2, "- - - X -", [ALARM, RetainsCurrentState, ALARM, OK]);
}

#[test]
fn user_guide_earlier_rows_and_premature_alarm_state() {
    // Rows of the guide's earlier edition: the first row read "0 - - - -" (the
    // same verdicts as "- - - - 0").
    check_row(3, "0 - - - -", [OK, OK, OK, OK]);
    // "X - - - -": the oldest breaching datapoint is at least 3 periods old and
    // nothing newer contradicts it, so even `missing` goes to ALARM.
    check_row(3, "X - - - -", [ALARM, RetainsCurrentState, ALARM, OK]);
    // "- - - - X" and "- - - X -" with Datapoints to Alarm 3: "the alarm does
    // not go immediately into ALARM state", the next datapoint may not breach.
    // (The earlier edition showed INSUFFICIENT_DATA for `missing` here, the
    // current one says INSUFFICIENT_DATA comes only from an all-missing range:
    // the alarm keeps whatever state it has.)
    check_row(
        3,
        "- - - - X",
        [RetainsCurrentState, RetainsCurrentState, ALARM, OK],
    );
    check_row(
        3,
        "- - - X -",
        [RetainsCurrentState, RetainsCurrentState, ALARM, OK],
    );
    check_row(
        3,
        "- - - X X",
        [RetainsCurrentState, RetainsCurrentState, ALARM, OK],
    );
    // Two breaching datapoints, the older one 3 periods old: ALARM.
    check_row(3, "- - X X -", [ALARM, RetainsCurrentState, ALARM, OK]);
    check_row(3, "- X - X -", [ALARM, RetainsCurrentState, ALARM, OK]);
    // With M = 2, one breaching datapoint two periods old is enough.
    check_row(
        2,
        "- - - - X",
        [RetainsCurrentState, RetainsCurrentState, ALARM, OK],
    );
    check_row(2, "X - - - -", [ALARM, RetainsCurrentState, ALARM, OK]);
    // A non-breaching datapoint anywhere in what is evaluated rules it out.
    check_row(2, "0 - X - -", [OK, OK, ALARM, OK]);
    check_row(3, "X - - - 0", [OK, OK, OK, OK]);
}

#[test]
fn datapoints_beyond_the_n_most_recent_real_ones_are_not_evaluated() {
    // Four real datapoints, N = 3: the three most recent (X X X) decide, the
    // old "0" is skipped, and missing data needs no treatment.
    check_row(3, "0 X X - X", [ALARM, ALARM, ALARM, ALARM]);
    check_row(3, "X 0 0 - 0", [OK, OK, OK, OK]);
    // Datapoints older than the range do not count at all.
    let config = table_config(3, TreatMissingData::Missing);
    let mut points = table_points("- - - - -");
    points.push(point(table_newest() - 5 * 300_000, 50.0, 1.0));
    points.push(point(table_newest() + 300_000, 50.0, 1.0));
    assert_eq!(
        config
            .assess(table_range(), &points, table_newest())
            .map(|u| u.state),
        Some(AlarmState::InsufficientData)
    );
}

// ---------------------------------------------------------------------------
// Exact texts, reproducing StateReason / StateReasonData that AWS wrote.

#[test]
fn brief_example_three_of_three_alarm() {
    let mut config = MetricAlarmConfig::new(
        ComparisonOperator::GreaterThanThreshold,
        75.0,
        3,
        60,
        Some("Average"),
    );
    config.datapoints_to_alarm = Some(3);
    let points = [
        point(utc(2026, 7, 12, 10, 1, 0), 79.5, 60.0),
        point(utc(2026, 7, 12, 10, 2, 0), 80.0, 60.0),
        point(utc(2026, 7, 12, 10, 3, 0), 81.2, 60.0),
    ];
    let query = utc(2026, 7, 12, 10, 4, 5) + 678;
    let range = EvaluationRange::ending_before(query, 60, 3);
    assert_eq!(
        config.evaluate(AlarmState::Ok, range, &points, query),
        Outcome::Transition(update(
            AlarmState::Alarm,
            "Threshold Crossed: 3 out of the last 3 datapoints [81.2 (12/07/26 10:03:00), 80.0 (12/07/26 10:02:00), 79.5 (12/07/26 10:01:00)] were greater than the threshold (75.0) (minimum 3 datapoints for OK -> ALARM transition).",
            "{\"version\":\"1.0\",\"queryDate\":\"2026-07-12T10:04:05.678+0000\",\"startDate\":\"2026-07-12T10:01:00.000+0000\",\"statistic\":\"Average\",\"period\":60,\"recentDatapoints\":[79.5,80.0,81.2],\"threshold\":75.0,\"evaluatedDatapoints\":[{\"timestamp\":\"2026-07-12T10:03:00.000+0000\",\"sampleCount\":60.0,\"value\":81.2},{\"timestamp\":\"2026-07-12T10:02:00.000+0000\",\"sampleCount\":60.0,\"value\":80.0},{\"timestamp\":\"2026-07-12T10:01:00.000+0000\",\"sampleCount\":60.0,\"value\":79.5}]}",
        ))
    );
    // Already in ALARM: no change.
    assert_eq!(
        config.evaluate(AlarmState::Alarm, range, &points, query),
        Outcome::NoChange
    );
}

#[test]
fn aws_route53_health_check_ok_lists_only_the_non_breaching_datapoint() {
    // EvaluationPeriods 3, no DatapointsToAlarm, LessThanThreshold 1, Minimum.
    let config = MetricAlarmConfig::new(
        ComparisonOperator::LessThanThreshold,
        1.0,
        3,
        60,
        Some("Minimum"),
    );
    let points = [
        point(utc(2018, 12, 8, 19, 53, 0), 0.0, 1.0),
        point(utc(2018, 12, 8, 19, 54, 0), 0.0, 1.0),
        point(utc(2018, 12, 8, 19, 55, 0), 1.0, 1.0),
    ];
    let query = utc(2018, 12, 8, 19, 56, 14) + 594;
    let range = EvaluationRange::ending_before(query, 60, 3);
    assert_eq!(
        config.assess(range, &points, query),
        Some(update(
            AlarmState::Ok,
            "Threshold Crossed: 1 datapoint [1.0 (08/12/18 19:55:00)] was not less than the threshold (1.0).",
            "{\"version\":\"1.0\",\"queryDate\":\"2018-12-08T19:56:14.594+0000\",\"startDate\":\"2018-12-08T19:53:00.000+0000\",\"statistic\":\"Minimum\",\"period\":60,\"recentDatapoints\":[0.0,0.0,1.0],\"threshold\":1.0,\"evaluatedDatapoints\":[{\"timestamp\":\"2018-12-08T19:55:00.000+0000\",\"sampleCount\":1.0,\"value\":1.0}]}",
        ))
    );
}

#[test]
fn aws_dynamodb_ok_with_late_datapoints() {
    // Two datapoints five and six minutes old still fall in the range.
    let config = MetricAlarmConfig::new(
        ComparisonOperator::GreaterThanThreshold,
        42.0,
        2,
        60,
        Some("Sum"),
    );
    let points = [
        point(utc(2023, 1, 9, 14, 1, 0), 1.0, 1.0),
        point(utc(2023, 1, 9, 14, 2, 0), 0.0, 1.0),
    ];
    let query = utc(2023, 1, 9, 14, 7, 25) + 504;
    let range = EvaluationRange::ending_before(query, 60, 2);
    assert_eq!(
        config.assess(range, &points, query),
        Some(update(
            AlarmState::Ok,
            "Threshold Crossed: 2 datapoints [0.0 (09/01/23 14:02:00), 1.0 (09/01/23 14:01:00)] were not greater than the threshold (42.0).",
            "{\"version\":\"1.0\",\"queryDate\":\"2023-01-09T14:07:25.504+0000\",\"startDate\":\"2023-01-09T14:01:00.000+0000\",\"statistic\":\"Sum\",\"period\":60,\"recentDatapoints\":[1.0,0.0],\"threshold\":42.0,\"evaluatedDatapoints\":[{\"timestamp\":\"2023-01-09T14:02:00.000+0000\",\"sampleCount\":1.0,\"value\":0.0}]}",
        ))
    );
}

#[test]
fn aws_billing_one_of_one_ok_with_explicit_datapoints_to_alarm() {
    let mut config = MetricAlarmConfig::new(
        ComparisonOperator::GreaterThanThreshold,
        0.02,
        1,
        21600,
        Some("Maximum"),
    );
    config.datapoints_to_alarm = Some(1);
    config.treat_missing_data = TreatMissingData::NotBreaching;
    let points = [point(utc(2021, 12, 18, 2, 8, 0), 0.0, 1.0)];
    let query = utc(2021, 12, 18, 8, 8, 12) + 500;
    let range = EvaluationRange::ending_before(query, 21600, 1);
    assert_eq!(
        config.evaluate(AlarmState::Alarm, range, &points, query),
        Outcome::Transition(update(
            AlarmState::Ok,
            "Threshold Crossed: 1 out of the last 1 datapoints [0.0 (18/12/21 02:08:00)] was not greater than the threshold (0.02) (minimum 1 datapoint for ALARM -> OK transition).",
            "{\"version\":\"1.0\",\"queryDate\":\"2021-12-18T08:08:12.500+0000\",\"startDate\":\"2021-12-18T02:08:00.000+0000\",\"statistic\":\"Maximum\",\"period\":21600,\"recentDatapoints\":[0.0],\"threshold\":0.02,\"evaluatedDatapoints\":[{\"timestamp\":\"2021-12-18T02:08:00.000+0000\",\"sampleCount\":1.0,\"value\":0.0}]}",
        ))
    );
}

#[test]
fn aws_unit_appears_between_start_date_and_statistic() {
    let mut config = MetricAlarmConfig::new(
        ComparisonOperator::GreaterThanOrEqualToThreshold,
        15000.0,
        1,
        86400,
        Some("Average"),
    );
    config.unit = Some("Milliseconds".to_string());
    let points = [point(utc(2022, 10, 8, 9, 39, 0), 1200.0, 1.0)];
    let query = utc(2022, 10, 9, 9, 39, 13) + 827;
    let range = EvaluationRange::ending_before(query, 86400, 1);
    assert_eq!(
        config.assess(range, &points, query),
        Some(update(
            AlarmState::Ok,
            "Threshold Crossed: 1 datapoint [1200.0 (08/10/22 09:39:00)] was not greater than or equal to the threshold (15000.0).",
            "{\"version\":\"1.0\",\"queryDate\":\"2022-10-09T09:39:13.827+0000\",\"startDate\":\"2022-10-08T09:39:00.000+0000\",\"unit\":\"Milliseconds\",\"statistic\":\"Average\",\"period\":86400,\"recentDatapoints\":[1200.0],\"threshold\":15000.0,\"evaluatedDatapoints\":[{\"timestamp\":\"2022-10-08T09:39:00.000+0000\",\"sampleCount\":1.0,\"value\":1200.0}]}",
        ))
    );
}

#[test]
fn aws_two_of_two_ok_lists_the_minimum_for_alarm_to_ok() {
    let mut config = MetricAlarmConfig::new(
        ComparisonOperator::GreaterThanThreshold,
        40.0,
        2,
        60,
        Some("Average"),
    );
    config.datapoints_to_alarm = Some(2);
    let points = [
        point(utc(2021, 4, 13, 16, 3, 0), 0.01575357001274824, 1.0),
        point(utc(2021, 4, 13, 16, 4, 0), 0.01758096118768056, 1.0),
    ];
    let query = utc(2021, 4, 13, 16, 6, 38) + 66;
    let range = EvaluationRange::ending_before(query, 60, 2);
    assert_eq!(
        config.evaluate(AlarmState::Alarm, range, &points, query),
        Outcome::Transition(update(
            AlarmState::Ok,
            "Threshold Crossed: 2 out of the last 2 datapoints [0.01758096118768056 (13/04/21 16:04:00), 0.01575357001274824 (13/04/21 16:03:00)] were not greater than the threshold (40.0) (minimum 1 datapoint for ALARM -> OK transition).",
            "{\"version\":\"1.0\",\"queryDate\":\"2021-04-13T16:06:38.066+0000\",\"startDate\":\"2021-04-13T16:03:00.000+0000\",\"statistic\":\"Average\",\"period\":60,\"recentDatapoints\":[0.01575357001274824,0.01758096118768056],\"threshold\":40.0,\"evaluatedDatapoints\":[{\"timestamp\":\"2021-04-13T16:04:00.000+0000\",\"sampleCount\":1.0,\"value\":0.01758096118768056}]}",
        ))
    );
}

#[test]
fn aws_insufficient_data_lists_the_n_unknown_periods() {
    let config = MetricAlarmConfig::new(
        ComparisonOperator::GreaterThanThreshold,
        5.0,
        5,
        60,
        Some("Average"),
    );
    let query = utc(2023, 8, 4, 12, 31, 29) + 591;
    let range = EvaluationRange::ending_before(query, 60, 5);
    assert_eq!(
        config.evaluate(AlarmState::Ok, range, &[], query),
        Outcome::Transition(update(
            AlarmState::InsufficientData,
            "Insufficient Data: 5 datapoints were unknown.",
            "{\"version\":\"1.0\",\"queryDate\":\"2023-08-04T12:31:29.591+0000\",\"statistic\":\"Average\",\"period\":60,\"recentDatapoints\":[],\"threshold\":5.0,\"evaluatedDatapoints\":[{\"timestamp\":\"2023-08-04T12:30:00.000+0000\"},{\"timestamp\":\"2023-08-04T12:29:00.000+0000\"},{\"timestamp\":\"2023-08-04T12:28:00.000+0000\"},{\"timestamp\":\"2023-08-04T12:27:00.000+0000\"},{\"timestamp\":\"2023-08-04T12:26:00.000+0000\"}]}",
        ))
    );
    // A new alarm starts in INSUFFICIENT_DATA: no change.
    assert_eq!(
        config.evaluate(AlarmState::InsufficientData, range, &[], query),
        Outcome::NoChange
    );
}

#[test]
fn aws_insufficient_data_singular() {
    let config = MetricAlarmConfig::new(
        ComparisonOperator::GreaterThanOrEqualToThreshold,
        1.0,
        1,
        60,
        Some("Sum"),
    );
    let query = utc(2024, 10, 26, 18, 38, 52) + 499;
    let range = EvaluationRange::ending_before(query, 60, 1);
    assert_eq!(
        config.assess(range, &[], query),
        Some(update(
            AlarmState::InsufficientData,
            "Insufficient Data: 1 datapoint was unknown.",
            "{\"version\":\"1.0\",\"queryDate\":\"2024-10-26T18:38:52.499+0000\",\"statistic\":\"Sum\",\"period\":60,\"recentDatapoints\":[],\"threshold\":1.0,\"evaluatedDatapoints\":[{\"timestamp\":\"2024-10-26T18:37:00.000+0000\"}]}",
        ))
    );
}

#[test]
fn aws_no_datapoints_treated_as_non_breaching() {
    let mut config = MetricAlarmConfig::new(
        ComparisonOperator::GreaterThanOrEqualToThreshold,
        10.0,
        1,
        300,
        Some("Sum"),
    );
    config.treat_missing_data = TreatMissingData::NotBreaching;
    let range = EvaluationRange {
        newest_period_start_ms: utc(2026, 1, 13, 1, 50, 0),
        periods: 3,
    };
    let query = utc(2026, 1, 13, 1, 57, 48) + 92;
    assert_eq!(
        config.evaluate(AlarmState::InsufficientData, range, &[], query),
        Outcome::Transition(update(
            AlarmState::Ok,
            "Threshold Crossed: no datapoints were received for 1 period and 1 missing datapoint was treated as [NonBreaching].",
            "{\"version\":\"1.0\",\"queryDate\":\"2026-01-13T01:57:48.092+0000\",\"statistic\":\"Sum\",\"period\":300,\"recentDatapoints\":[],\"threshold\":10.0,\"evaluatedDatapoints\":[{\"timestamp\":\"2026-01-13T01:50:00.000+0000\"}]}",
        ))
    );
}

#[test]
fn no_datapoints_treated_as_breaching() {
    let mut config = MetricAlarmConfig::new(
        ComparisonOperator::LessThanThreshold,
        1.0,
        2,
        3600,
        Some("Sum"),
    );
    config.treat_missing_data = TreatMissingData::Breaching;
    let range = EvaluationRange {
        newest_period_start_ms: utc(2026, 8, 9, 20, 0, 0),
        periods: 4,
    };
    let query = utc(2026, 8, 9, 21, 0, 30);
    assert_eq!(
        config.assess(range, &[], query),
        Some(update(
            AlarmState::Alarm,
            "Threshold Crossed: no datapoints were received for 2 periods and 2 missing datapoints were treated as [Breaching].",
            "{\"version\":\"1.0\",\"queryDate\":\"2026-08-09T21:00:30.000+0000\",\"statistic\":\"Sum\",\"period\":3600,\"recentDatapoints\":[],\"threshold\":1.0,\"evaluatedDatapoints\":[{\"timestamp\":\"2026-08-09T20:00:00.000+0000\"},{\"timestamp\":\"2026-08-09T19:00:00.000+0000\"}]}",
        ))
    );
}

#[test]
fn aws_one_real_breaching_datapoint_and_missing_ones_treated_as_non_breaching() {
    // A WAF rule alarm: 1 out of 20, missing data notBreaching.
    let mut config = MetricAlarmConfig::new(
        ComparisonOperator::GreaterThanOrEqualToThreshold,
        1.0,
        20,
        60,
        Some("Sum"),
    );
    config.datapoints_to_alarm = Some(1);
    config.treat_missing_data = TreatMissingData::NotBreaching;
    let points = [point(utc(2024, 3, 16, 12, 15, 0), 613.0, 613.0)];
    let query = utc(2024, 3, 16, 12, 16, 45) + 770;
    let range = EvaluationRange::ending_before(query, 60, 20);
    let got = config.evaluate(AlarmState::Ok, range, &points, query);
    let Outcome::Transition(got) = got else {
        panic!("expected a transition, got {got:?}");
    };
    assert_eq!(got.state, AlarmState::Alarm);
    assert_eq!(
        got.reason,
        "Threshold Crossed: 1 out of the last 20 datapoints [613.0 (16/03/24 12:15:00)] was greater than or equal to the threshold (1.0) and 19 missing datapoints were treated as [NonBreaching] (minimum 1 datapoint for OK -> ALARM transition)."
    );
    // The missing periods speak for OK, so only the real one is evidence.
    assert_eq!(
        got.reason_data,
        "{\"version\":\"1.0\",\"queryDate\":\"2024-03-16T12:16:45.770+0000\",\"startDate\":\"2024-03-16T12:15:00.000+0000\",\"statistic\":\"Sum\",\"period\":60,\"recentDatapoints\":[613.0],\"threshold\":1.0,\"evaluatedDatapoints\":[{\"timestamp\":\"2024-03-16T12:15:00.000+0000\",\"sampleCount\":613.0,\"value\":613.0}]}"
    );
}

#[test]
fn aws_one_real_non_breaching_datapoint_and_missing_ones_treated_as_breaching() {
    // 8 periods of 15 minutes, no DatapointsToAlarm, missing data breaching:
    // seven filled-in breaching periods are one short of ALARM.
    let mut config = MetricAlarmConfig::new(
        ComparisonOperator::LessThanOrEqualToThreshold,
        0.0,
        8,
        900,
        Some("Sum"),
    );
    config.treat_missing_data = TreatMissingData::Breaching;
    let points = [point(utc(2026, 8, 19, 9, 36, 0), 2.0, 2.0)];
    let query = utc(2026, 8, 19, 9, 51, 49) + 318;
    let range = EvaluationRange::ending_before(query, 900, 8);
    let got = config.assess(range, &points, query).expect("a verdict");
    assert_eq!(got.state, AlarmState::Ok);
    assert_eq!(
        got.reason,
        "Threshold Crossed: 1 datapoint [2.0 (19/08/26 09:36:00)] was not less than or equal to the threshold (0.0) and 7 missing datapoints were treated as [Breaching]."
    );
}

#[test]
fn filled_in_datapoints_alone_carry_the_transition() {
    // 2 out of 3, missing breaching, the one real datapoint not breaching.
    let mut config = MetricAlarmConfig::new(
        ComparisonOperator::GreaterThanThreshold,
        0.0,
        3,
        300,
        Some("Sum"),
    );
    config.datapoints_to_alarm = Some(2);
    config.treat_missing_data = TreatMissingData::Breaching;
    let newest = utc(2026, 9, 5, 8, 0, 0);
    let range = EvaluationRange {
        newest_period_start_ms: newest,
        periods: 5,
    };
    let points = [point(newest - 300_000, 0.0, 3.0)];
    let got = config
        .assess(range, &points, newest + 360_000)
        .expect("a verdict");
    assert_eq!(
        got,
        update(
            AlarmState::Alarm,
            "Threshold Crossed: 1 datapoint was received for 3 periods and 2 missing datapoints were treated as [Breaching].",
            "{\"version\":\"1.0\",\"queryDate\":\"2026-09-05T08:06:00.000+0000\",\"startDate\":\"2026-09-05T07:55:00.000+0000\",\"statistic\":\"Sum\",\"period\":300,\"recentDatapoints\":[0.0],\"threshold\":0.0,\"evaluatedDatapoints\":[{\"timestamp\":\"2026-09-05T08:00:00.000+0000\"},{\"timestamp\":\"2026-09-05T07:50:00.000+0000\"}]}",
        )
    );
    // Two real non-breaching datapoints: "2 datapoints were received".
    let points = [
        point(newest - 300_000, 0.0, 3.0),
        point(newest - 900_000, 0.0, 3.0),
    ];
    config.datapoints_to_alarm = Some(1);
    let got = config
        .assess(range, &points, newest + 360_000)
        .expect("a verdict");
    assert_eq!(got.state, AlarmState::Alarm);
    assert_eq!(
        got.reason,
        "Threshold Crossed: 2 datapoints were received for 3 periods and 1 missing datapoint was treated as [Breaching]."
    );
}

#[test]
fn premature_alarm_reason_counts_what_is_there() {
    let mut config = table_config(3, TreatMissingData::Missing);
    let points = table_points("- - X - -");
    let got = config
        .assess(table_range(), &points, table_newest() + 330_000)
        .expect("a verdict");
    assert_eq!(
        got,
        update(
            AlarmState::Alarm,
            "Threshold Crossed: 1 out of the last 3 datapoints [50.0 (12/07/26 09:50:00)] was greater than the threshold (10.0) (minimum 3 datapoints for OK -> ALARM transition).",
            "{\"version\":\"1.0\",\"queryDate\":\"2026-07-12T10:05:30.000+0000\",\"startDate\":\"2026-07-12T09:50:00.000+0000\",\"statistic\":\"Average\",\"period\":300,\"recentDatapoints\":[50.0],\"threshold\":10.0,\"evaluatedDatapoints\":[{\"timestamp\":\"2026-07-12T09:50:00.000+0000\",\"sampleCount\":10.0,\"value\":50.0}]}",
        )
    );
    // Without DatapointsToAlarm the short form.
    config.datapoints_to_alarm = None;
    let got = config
        .assess(table_range(), &points, table_newest() + 330_000)
        .expect("a verdict");
    assert_eq!(
        got.reason,
        "Threshold Crossed: 1 datapoint [50.0 (12/07/26 09:50:00)] was greater than the threshold (10.0)."
    );
}

#[test]
fn missing_datapoints_treated_as_missing_are_not_mentioned() {
    // N = 2, one real datapoint within the threshold, the rest missing: OK,
    // and the text says nothing of the missing period (a Lambda Errors alarm).
    let config = MetricAlarmConfig::new(
        ComparisonOperator::GreaterThanThreshold,
        5.0,
        2,
        300,
        Some("Average"),
    );
    let points = [point(utc(2025, 11, 20, 2, 31, 0), 0.0, 1.0)];
    let query = utc(2025, 11, 20, 2, 36, 9) + 521;
    let range = EvaluationRange::ending_before(query, 300, 2);
    assert_eq!(
        config.assess(range, &points, query),
        Some(update(
            AlarmState::Ok,
            "Threshold Crossed: 1 datapoint [0.0 (20/11/25 02:31:00)] was not greater than the threshold (5.0).",
            "{\"version\":\"1.0\",\"queryDate\":\"2025-11-20T02:36:09.521+0000\",\"startDate\":\"2025-11-20T02:31:00.000+0000\",\"statistic\":\"Average\",\"period\":300,\"recentDatapoints\":[0.0],\"threshold\":5.0,\"evaluatedDatapoints\":[{\"timestamp\":\"2025-11-20T02:31:00.000+0000\",\"sampleCount\":1.0,\"value\":0.0}]}",
        ))
    );
}

#[test]
fn metric_math_alarms_have_no_statistic_and_no_sample_count() {
    let mut config = MetricAlarmConfig::new(
        ComparisonOperator::GreaterThanThreshold,
        10000.0,
        1,
        300,
        None,
    );
    config.datapoints_to_alarm = Some(1);
    let points = [Datapoint {
        timestamp_ms: utc(2019, 10, 2, 17, 10, 0),
        value: 45628.0,
        sample_count: None,
    }];
    let query = utc(2019, 10, 2, 17, 20, 48) + 551;
    let range = EvaluationRange {
        newest_period_start_ms: utc(2019, 10, 2, 17, 10, 0),
        periods: 3,
    };
    assert_eq!(
        config.assess(range, &points, query),
        Some(update(
            AlarmState::Alarm,
            "Threshold Crossed: 1 out of the last 1 datapoints [45628.0 (02/10/19 17:10:00)] was greater than the threshold (10000.0) (minimum 1 datapoint for OK -> ALARM transition).",
            "{\"version\":\"1.0\",\"queryDate\":\"2019-10-02T17:20:48.551+0000\",\"startDate\":\"2019-10-02T17:10:00.000+0000\",\"period\":300,\"recentDatapoints\":[45628.0],\"threshold\":10000.0,\"evaluatedDatapoints\":[{\"timestamp\":\"2019-10-02T17:10:00.000+0000\",\"value\":45628.0}]}",
        ))
    );
}

// ---------------------------------------------------------------------------
// M out of N.

fn minute_points(newest: i64, values_oldest_first: &[Option<f64>]) -> Vec<Datapoint> {
    let count = values_oldest_first.len() as i64;
    values_oldest_first
        .iter()
        .enumerate()
        .filter_map(|(i, value)| {
            value.map(|v| point(newest - (count - 1 - i as i64) * 60_000, v, 1.0))
        })
        .collect()
}

fn m_of_n(m: u32, n: u32) -> MetricAlarmConfig {
    let mut config = MetricAlarmConfig::new(
        ComparisonOperator::GreaterThanOrEqualToThreshold,
        10.0,
        n,
        60,
        Some("Maximum"),
    );
    config.datapoints_to_alarm = Some(m);
    config
}

#[test]
fn m_out_of_n_counts_breaching_datapoints_anywhere_in_the_last_n() {
    let newest = utc(2026, 3, 1, 0, 10, 0);
    let range = EvaluationRange {
        newest_period_start_ms: newest,
        periods: 7,
    };
    let query = newest + 65_000;
    let state = |m: u32, n: u32, values: &[Option<f64>]| {
        m_of_n(m, n)
            .assess(range, &minute_points(newest, values), query)
            .map(|u| u.state)
    };
    let (b, g) = (Some(12.0), Some(3.0));
    // 3 out of 5: breaching ones need not be consecutive.
    assert_eq!(state(3, 5, &[b, g, b, g, b]), Some(AlarmState::Alarm));
    assert_eq!(state(3, 5, &[b, g, b, g, g]), Some(AlarmState::Ok));
    // Only the last N count: an old breaching datapoint has slid out.
    assert_eq!(state(3, 5, &[b, g, g, b, g, b, b]), Some(AlarmState::Alarm));
    assert_eq!(state(3, 5, &[b, b, g, g, b, g, b]), Some(AlarmState::Ok));
    // 1 out of N: any breaching datapoint.
    assert_eq!(state(1, 4, &[g, g, b, g]), Some(AlarmState::Alarm));
    assert_eq!(state(1, 4, &[g, g, g, g]), Some(AlarmState::Ok));
    // N out of N: all of them.
    assert_eq!(state(4, 4, &[b, b, b, b]), Some(AlarmState::Alarm));
    assert_eq!(state(4, 4, &[b, b, g, b]), Some(AlarmState::Ok));
    // A gap is skipped when enough real datapoints remain in the range.
    assert_eq!(state(3, 3, &[b, b, None, b]), Some(AlarmState::Alarm));
    assert_eq!(state(3, 3, &[g, b, None, b, b]), Some(AlarmState::Alarm));
}

#[test]
fn m_out_of_n_reason_lists_the_breaching_datapoints_newest_first() {
    let newest = utc(2026, 3, 1, 0, 10, 0);
    let range = EvaluationRange {
        newest_period_start_ms: newest,
        periods: 7,
    };
    let points = minute_points(
        newest,
        &[Some(11.0), Some(3.0), Some(12.5), Some(2.0), Some(10.0)],
    );
    let got = m_of_n(3, 5)
        .assess(range, &points, newest + 65_000)
        .expect("a verdict");
    assert_eq!(got.state, AlarmState::Alarm);
    assert_eq!(
        got.reason,
        "Threshold Crossed: 3 out of the last 5 datapoints [10.0 (01/03/26 00:10:00), 12.5 (01/03/26 00:08:00), 11.0 (01/03/26 00:06:00)] were greater than or equal to the threshold (10.0) (minimum 3 datapoints for OK -> ALARM transition)."
    );
    assert_eq!(
        got.reason_data,
        "{\"version\":\"1.0\",\"queryDate\":\"2026-03-01T00:11:05.000+0000\",\"startDate\":\"2026-03-01T00:06:00.000+0000\",\"statistic\":\"Maximum\",\"period\":60,\"recentDatapoints\":[11.0,3.0,12.5,2.0,10.0],\"threshold\":10.0,\"evaluatedDatapoints\":[{\"timestamp\":\"2026-03-01T00:10:00.000+0000\",\"sampleCount\":1.0,\"value\":10.0},{\"timestamp\":\"2026-03-01T00:08:00.000+0000\",\"sampleCount\":1.0,\"value\":12.5},{\"timestamp\":\"2026-03-01T00:06:00.000+0000\",\"sampleCount\":1.0,\"value\":11.0}]}"
    );
    // OK needs N - M + 1 = 3 within the threshold; 4 are listed, 3 are evidence.
    let points = minute_points(
        newest,
        &[Some(1.0), Some(2.0), Some(12.0), Some(3.0), Some(4.0)],
    );
    let got = m_of_n(2, 5)
        .assess(range, &points, newest + 65_000)
        .expect("a verdict");
    assert_eq!(got.state, AlarmState::Ok);
    assert_eq!(
        got.reason,
        "Threshold Crossed: 4 out of the last 5 datapoints [4.0 (01/03/26 00:10:00), 3.0 (01/03/26 00:09:00), 2.0 (01/03/26 00:07:00), 1.0 (01/03/26 00:06:00)] were not greater than or equal to the threshold (10.0) (minimum 4 datapoints for ALARM -> OK transition)."
    );
    assert!(got.reason_data.ends_with("\"evaluatedDatapoints\":[{\"timestamp\":\"2026-03-01T00:10:00.000+0000\",\"sampleCount\":1.0,\"value\":4.0},{\"timestamp\":\"2026-03-01T00:09:00.000+0000\",\"sampleCount\":1.0,\"value\":3.0},{\"timestamp\":\"2026-03-01T00:07:00.000+0000\",\"sampleCount\":1.0,\"value\":2.0},{\"timestamp\":\"2026-03-01T00:06:00.000+0000\",\"sampleCount\":1.0,\"value\":1.0}]}"), "{}", got.reason_data);
}

#[test]
fn datapoints_to_alarm_out_of_bounds_is_clamped() {
    let newest = utc(2026, 3, 1, 0, 10, 0);
    let range = EvaluationRange {
        newest_period_start_ms: newest,
        periods: 4,
    };
    let points = minute_points(newest, &[Some(12.0), Some(12.0)]);
    // M = 0 reads as 1; M > N reads as N.
    assert_eq!(
        m_of_n(0, 2)
            .assess(
                range,
                &minute_points(newest, &[Some(1.0), Some(12.0)]),
                newest
            )
            .map(|u| u.state),
        Some(AlarmState::Alarm)
    );
    assert_eq!(
        m_of_n(9, 2).assess(range, &points, newest).map(|u| u.state),
        Some(AlarmState::Alarm)
    );
    // N = 0 reads as 1.
    assert_eq!(
        m_of_n(1, 0).assess(range, &points, newest).map(|u| u.state),
        Some(AlarmState::Alarm)
    );
}

// ---------------------------------------------------------------------------
// Comparison operators at and around the threshold.

#[test]
fn each_operator_at_and_around_the_threshold() {
    use ComparisonOperator::*;
    let t = 75.0;
    let below = 74.999_999;
    let above = 75.000_001;
    let cases = [
        (GreaterThanOrEqualToThreshold, [false, true, true]),
        (GreaterThanThreshold, [false, false, true]),
        (LessThanThreshold, [true, false, false]),
        (LessThanOrEqualToThreshold, [true, true, false]),
    ];
    for (op, expected) in cases {
        for (value, breach) in [below, t, above].into_iter().zip(expected) {
            assert_eq!(op.breaches(value, t), breach, "{} {value}", op.as_str());
        }
        assert!(!op.breaches(f64::NAN, t), "NaN never breaches");
        assert_eq!(ComparisonOperator::parse(op.as_str()), Some(op));
    }
    // Negative thresholds and -0.0.
    assert!(GreaterThanOrEqualToThreshold.breaches(-0.0, 0.0));
    assert!(LessThanThreshold.breaches(-5.0, -4.0));
}

#[test]
fn each_operator_wording_in_both_directions() {
    use ComparisonOperator::*;
    let newest = utc(2026, 7, 12, 10, 0, 0);
    let range = EvaluationRange {
        newest_period_start_ms: newest,
        periods: 3,
    };
    let cases = [
        (
            GreaterThanOrEqualToThreshold,
            75.0,
            74.0,
            "greater than or equal to",
        ),
        (GreaterThanThreshold, 76.0, 75.0, "greater than"),
        (LessThanThreshold, 74.0, 75.0, "less than"),
        (
            LessThanOrEqualToThreshold,
            75.0,
            76.0,
            "less than or equal to",
        ),
    ];
    for (op, breaching, within, phrase) in cases {
        let config = MetricAlarmConfig::new(op, 75.0, 1, 60, Some("Average"));
        let alarm = config
            .assess(range, &[point(newest, breaching, 1.0)], newest + 70_000)
            .expect("a verdict");
        assert_eq!(alarm.state, AlarmState::Alarm);
        assert_eq!(
            alarm.reason,
            format!(
                "Threshold Crossed: 1 datapoint [{} (12/07/26 10:00:00)] was {phrase} the threshold (75.0).",
                java_double(breaching)
            )
        );
        let ok = config
            .assess(range, &[point(newest, within, 1.0)], newest + 70_000)
            .expect("a verdict");
        assert_eq!(ok.state, AlarmState::Ok);
        assert_eq!(
            ok.reason,
            format!(
                "Threshold Crossed: 1 datapoint [{} (12/07/26 10:00:00)] was not {phrase} the threshold (75.0).",
                java_double(within)
            )
        );
    }
}

#[test]
fn operator_and_setting_names() {
    for name in [
        "LessThanLowerOrGreaterThanUpperThreshold",
        "LessThanLowerThreshold",
        "GreaterThanUpperThreshold",
        "greaterThanThreshold",
        "",
    ] {
        assert_eq!(ComparisonOperator::parse(name), None, "{name}");
    }
    for treat in [
        TreatMissingData::Missing,
        TreatMissingData::Ignore,
        TreatMissingData::Breaching,
        TreatMissingData::NotBreaching,
    ] {
        assert_eq!(TreatMissingData::parse(treat.as_str()), Some(treat));
    }
    assert_eq!(TreatMissingData::parse("notbreaching"), None);
    assert_eq!(TreatMissingData::default(), TreatMissingData::Missing);
    for policy in [
        LowSampleCountPercentile::Evaluate,
        LowSampleCountPercentile::Ignore,
    ] {
        assert_eq!(
            LowSampleCountPercentile::parse(policy.as_str()),
            Some(policy)
        );
    }
    assert_eq!(LowSampleCountPercentile::parse("Ignore"), None);
}

// ---------------------------------------------------------------------------
// Percentiles and low sample counts.

#[test]
fn percentile_names_and_sample_limits() {
    let fraction = |name: &str| percentile_fraction(name).map(|f| (f * 1e6).round() / 1e6);
    assert_eq!(fraction("p99"), Some(0.99));
    assert_eq!(fraction("p99.9"), Some(0.999));
    assert_eq!(fraction("P50"), Some(0.5));
    assert_eq!(fraction("p0"), Some(0.0));
    assert_eq!(fraction("p100"), Some(1.0));
    for not_a_percentile in [
        "p100.1",
        "p",
        "pxx",
        "p-1",
        "tm90",
        "TM(10%:90%)",
        "IQM",
        "Average",
        "p1e2",
    ] {
        assert_eq!(
            percentile_fraction(not_a_percentile),
            None,
            "{not_a_percentile}"
        );
    }
    let limit = |p: f64| low_sample_count_limit(p).map(|l| (l * 1000.0).round() / 1000.0);
    // "fewer than 1000 samples for an alarm on a p99 percentile"
    assert_eq!(limit(0.99), Some(1000.0));
    assert_eq!(limit(0.5), Some(20.0));
    assert_eq!(limit(0.9), Some(100.0));
    assert_eq!(limit(0.1), Some(100.0));
    assert_eq!(limit(0.25), Some(40.0));
    assert_eq!(limit(0.0), None);
    assert_eq!(limit(1.0), None);
}

fn p99_alarm(policy: LowSampleCountPercentile) -> MetricAlarmConfig {
    let mut config = MetricAlarmConfig::new(
        ComparisonOperator::GreaterThanThreshold,
        250.0,
        2,
        60,
        Some("p99"),
    );
    config.percentile = percentile_fraction("p99");
    config.low_sample_count = policy;
    config
}

#[test]
fn low_sample_percentiles_are_ignored_when_asked() {
    let newest = utc(2026, 7, 12, 10, 0, 0);
    let range = EvaluationRange {
        newest_period_start_ms: newest,
        periods: 4,
    };
    let query = newest + 70_000;
    let breaching = |samples: f64| {
        [
            point(newest - 60_000, 300.0, samples),
            point(newest, 300.0, samples),
        ]
    };
    // 999 samples < 1000: too few for p99.
    let ignore = p99_alarm(LowSampleCountPercentile::Ignore);
    for current in ALL_STATES {
        assert_eq!(
            ignore.evaluate(current, range, &breaching(999.0), query),
            Outcome::NoChange
        );
    }
    // 1000 samples are enough.
    assert_eq!(
        ignore
            .assess(range, &breaching(1000.0), query)
            .map(|u| u.state),
        Some(AlarmState::Alarm)
    );
    // One low-sample datapoint among those evaluated is enough to wait.
    let mixed = [
        point(newest - 60_000, 300.0, 5000.0),
        point(newest, 300.0, 12.0),
    ];
    assert_eq!(ignore.assess(range, &mixed, query), None);
    // ... but not one outside the N evaluated.
    let old_low = [
        point(newest - 120_000, 300.0, 1.0),
        point(newest - 60_000, 300.0, 5000.0),
        point(newest, 300.0, 5000.0),
    ];
    assert_eq!(
        ignore.assess(range, &old_low, query).map(|u| u.state),
        Some(AlarmState::Alarm)
    );
    // `evaluate` (the default) evaluates whatever the sample count.
    let evaluate = p99_alarm(LowSampleCountPercentile::Evaluate);
    let got = evaluate
        .assess(range, &breaching(3.0), query)
        .expect("a verdict");
    assert_eq!(got.state, AlarmState::Alarm);
    assert_eq!(
        got.reason,
        "Threshold Crossed: 2 datapoints [300.0 (12/07/26 10:00:00), 300.0 (12/07/26 09:59:00)] were greater than the threshold (250.0)."
    );
    assert!(got.reason_data.contains("\"statistic\":\"p99\""));
    // A statistic that is not a percentile never counts as low-sample.
    let mut average = p99_alarm(LowSampleCountPercentile::Ignore);
    average.percentile = None;
    assert_eq!(
        average
            .assess(range, &breaching(1.0), query)
            .map(|u| u.state),
        Some(AlarmState::Alarm)
    );
    // Low-sample p10 (needs 100) within the threshold: ignored too.
    let mut p10 = p99_alarm(LowSampleCountPercentile::Ignore);
    p10.percentile = percentile_fraction("p10");
    let quiet = [point(newest - 60_000, 1.0, 99.0), point(newest, 1.0, 99.0)];
    assert_eq!(p10.assess(range, &quiet, query), None);
    let enough = [
        point(newest - 60_000, 1.0, 100.0),
        point(newest, 1.0, 100.0),
    ];
    assert_eq!(
        p10.assess(range, &enough, query).map(|u| u.state),
        Some(AlarmState::Ok)
    );
}

// ---------------------------------------------------------------------------
// The range.

#[test]
fn the_range_ends_before_the_current_minute() {
    let query = utc(2026, 7, 12, 10, 4, 5) + 678;
    assert_eq!(
        EvaluationRange::ending_before(query, 60, 3),
        EvaluationRange {
            newest_period_start_ms: utc(2026, 7, 12, 10, 3, 0),
            periods: 8,
        }
    );
    assert_eq!(
        EvaluationRange::ending_before(query, 300, 3),
        EvaluationRange {
            newest_period_start_ms: utc(2026, 7, 12, 9, 59, 0),
            periods: 5,
        }
    );
    // High-resolution periods end on their own boundary.
    assert_eq!(
        EvaluationRange::ending_before(query, 10, 3),
        EvaluationRange {
            newest_period_start_ms: utc(2026, 7, 12, 10, 3, 50),
            periods: 33,
        }
    );
    assert_eq!(evaluation_range_periods(3, 300), 5);
    assert_eq!(evaluation_range_periods(1, 3600), 3);
    assert_eq!(evaluation_range_periods(2, 60), 7);
    assert_eq!(evaluation_range_periods(0, 0), 301);
}

#[test]
fn a_range_shorter_than_n_is_widened_to_n() {
    let config = m_of_n(3, 3);
    let newest = utc(2026, 3, 1, 0, 10, 0);
    let short = EvaluationRange {
        newest_period_start_ms: newest,
        periods: 1,
    };
    let points = minute_points(newest, &[Some(20.0), Some(20.0), Some(20.0)]);
    assert_eq!(
        config.assess(short, &points, newest).map(|u| u.state),
        Some(AlarmState::Alarm)
    );
}

#[test]
fn datapoints_are_placed_in_the_period_that_holds_them() {
    // A timestamp inside a period (not at its start) belongs to that period;
    // a second datapoint for the same period is ignored.
    let config = m_of_n(2, 2);
    let newest = utc(2026, 3, 1, 0, 10, 0);
    let range = EvaluationRange {
        newest_period_start_ms: newest,
        periods: 4,
    };
    let points = [
        point(newest + 59_999, 20.0, 1.0),
        point(newest + 1, 1.0, 1.0),
        point(newest - 1, 20.0, 1.0),
    ];
    let got = config.assess(range, &points, newest).expect("a verdict");
    assert_eq!(got.state, AlarmState::Alarm);
    assert!(got.reason.starts_with("Threshold Crossed: 2 out of the last 2 datapoints [20.0 (01/03/26 00:10:59), 20.0 (01/03/26 00:09:59)]"), "{}", got.reason);
}

#[test]
fn absurd_sizes_cost_little_and_do_not_panic() {
    let mut config = MetricAlarmConfig::new(
        ComparisonOperator::GreaterThanThreshold,
        1.0,
        u32::MAX,
        u32::MAX,
        Some("Sum"),
    );
    let range = EvaluationRange {
        newest_period_start_ms: i64::MAX,
        periods: u32::MAX,
    };
    let got = config.assess(range, &[], i64::MAX).expect("a verdict");
    assert_eq!(got.state, AlarmState::InsufficientData);
    assert_eq!(
        got.reason,
        format!("Insufficient Data: {MAX_EVALUATION_PERIODS} datapoints were unknown.")
    );
    config.treat_missing_data = TreatMissingData::Breaching;
    config.datapoints_to_alarm = Some(u32::MAX);
    let points = [point(i64::MIN, 5.0, 1.0), point(0, 5.0, 1.0)];
    let got = config.assess(range, &points, i64::MIN).expect("a verdict");
    assert_eq!(got.state, AlarmState::Alarm);
}

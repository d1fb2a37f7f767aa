//! The metrics library against a real store in a temporary directory:
//! round trips through flushes and reopenings, the ingest log's replay,
//! roll-ups answering older periods, expiry, bounded memory, and the
//! bytes a datapoint costs on disk.

use super::*;
use nimbus_store::StoreOptions;
use std::path::Path;

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;
/// A Tuesday, 00:00 UTC: blocks of every tier start at whole hours and days.
const T0: u64 = 1_700_006_400_000 - (1_700_006_400_000 % DAY_MS);

fn open_with(dir: &Path, options: MetricsOptions) -> Metrics {
    let store = Store::open_with(
        &dir.join("state.redb"),
        StoreOptions {
            durable: false,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    Metrics::open(store, options).unwrap()
}

fn open(dir: &Path) -> Metrics {
    open_with(dir, MetricsOptions::default())
}

/// Closes the metrics and their store the way a stopping nimbus does.
fn close(m: Metrics) {
    let store = m.store.clone();
    drop(m);
    store.close();
}

fn metric(name: &str) -> MetricIdentity {
    MetricIdentity::new("App", name, vec![Dimension::new("Host", "a")])
}

fn datum(name: &str, at_ms: u64, value: f64) -> MetricDatum {
    MetricDatum {
        metric_name: Some(name.into()),
        dimensions: vec![DimensionInput::new("Host", "a")],
        timestamp_ms: Some(at_ms as i64),
        value: Some(value),
        ..Default::default()
    }
}

fn hires(name: &str, at_ms: u64, value: f64) -> MetricDatum {
    MetricDatum {
        storage_resolution: Some(1),
        ..datum(name, at_ms, value)
    }
}

fn put(m: &Metrics, now_ms: u64, data: Vec<MetricDatum>) {
    drop(
        m.put_metric_data(
            "111122223333",
            "us-east-1",
            Some("App"),
            &data,
            Publisher::Client,
            now_ms,
        )
        .unwrap(),
    );
}

fn query(
    m: &Metrics,
    name: &str,
    start_ms: u64,
    end_ms: u64,
    period_s: i64,
    stats: &[&str],
    now_ms: u64,
) -> Vec<Datapoint> {
    let statistics: Vec<Statistic> = stats.iter().map(|s| Statistic::parse(s).unwrap()).collect();
    let id = metric(name);
    m.get_metric_statistics(
        &StatisticsRequest {
            account: "111122223333",
            region: "us-east-1",
            metric: &id,
            unit: None,
            start_ms: start_ms as i64,
            end_ms: end_ms as i64,
            period_s,
            statistics: &statistics,
        },
        now_ms,
    )
    .unwrap()
}

fn values(points: &[Datapoint]) -> Vec<(i64, Vec<Option<f64>>)> {
    points
        .iter()
        .map(|p| (p.timestamp_ms, p.values.clone()))
        .collect()
}

fn segment_count(m: &Metrics) -> usize {
    m.store.keys(records::BLOCKS).unwrap().len()
}

#[test]
fn data_survives_flushes_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let now = T0 + 10 * 60_000;
    let m = open(dir.path());
    put(
        &m,
        now,
        (0..10)
            .map(|i| datum("Latency", now - 60_000 + i, i as f64))
            .collect(),
    );
    put(&m, now, vec![datum("Latency", now - 30_000, 100.0)]);
    let stats = [
        "SampleCount",
        "Sum",
        "Minimum",
        "Maximum",
        "Average",
        "p50",
        "p90",
    ];
    let expect = vec![(
        (now - 60_000) as i64,
        vec![
            Some(11.0),
            Some(145.0),
            Some(0.0),
            Some(100.0),
            Some(145.0 / 11.0),
            Some(5.0),
            Some(9.0),
        ],
    )];
    let before = query(&m, "Latency", now - 60_000, now, 60, &stats, now);
    assert_eq!(values(&before), expect, "pending data is read");

    // Reopening without a flush replays the ingest log.
    close(m);
    let m = open(dir.path());
    assert_eq!(m.memory_use().unflushed_log_records, 2);
    assert_eq!(
        values(&query(&m, "Latency", now - 60_000, now, 60, &stats, now)),
        expect
    );

    // After a flush the log is gone and the data is read from segments, once.
    drop(m.flush(now).unwrap());
    assert_eq!(m.memory_use().unflushed_log_records, 0);
    assert_eq!(m.memory_use().pending_entries, 0);
    assert!(m.store.keys(records::INGEST).unwrap().is_empty());
    assert_eq!(
        values(&query(&m, "Latency", now - 60_000, now, 60, &stats, now)),
        expect
    );
    close(m);
    let m = open(dir.path());
    assert_eq!(m.memory_use().pending_entries, 0);
    assert_eq!(
        values(&query(&m, "Latency", now - 60_000, now, 60, &stats, now)),
        expect
    );

    // New data after the reopening joins the stored block (same series id).
    put(&m, now + 1000, vec![datum("Latency", now - 59_000, 1000.0)]);
    drop(m.flush(now + 1000).unwrap());
    let after = query(
        &m,
        "Latency",
        now - 60_000,
        now,
        60,
        &["SampleCount", "Maximum"],
        now + 1000,
    );
    assert_eq!(
        values(&after),
        vec![((now - 60_000) as i64, vec![Some(12.0), Some(1000.0)])]
    );
    assert_eq!(m.store.keys(records::SERIES).unwrap().len(), 1);
}

#[test]
fn the_log_and_the_flush_never_count_twice() {
    let dir = tempfile::tempdir().unwrap();
    let now = T0 + HOUR_MS;
    let m = open(dir.path());
    for i in 0..50u64 {
        put(&m, now, vec![hires("Req", now - 120_000 + i * 1000, 1.0)]);
        if i % 7 == 0 {
            drop(m.flush(now).unwrap());
        }
    }
    // Half flushed, half in the log: a crash now (no checkpoint of memory).
    close(m);
    let m = open(dir.path());
    let points = query(&m, "Req", now - 120_000, now, 120, &["SampleCount"], now);
    assert_eq!(values(&points)[0].1, vec![Some(50.0)]);
    drop(m.flush(now).unwrap());
    close(m);
    let m = open(dir.path());
    let points = query(&m, "Req", now - 120_000, now, 120, &["SampleCount"], now);
    assert_eq!(values(&points)[0].1, vec![Some(50.0)]);
}

#[test]
fn a_full_pending_budget_flushes_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let m = open_with(
        dir.path(),
        MetricsOptions {
            max_pending_entries: 100,
            ..MetricsOptions::default()
        },
    );
    let now = T0 + HOUR_MS;
    for i in 0..1000u64 {
        put(
            &m,
            now,
            vec![hires("Req", now - 1_020_000 + i * 1000, i as f64)],
        );
        // Each datum adds a raw entry and at most three roll-up slots.
        assert!(m.memory_use().pending_entries <= 104);
    }
    let points = query(
        &m,
        "Req",
        now - 1_020_000,
        now,
        1020,
        &["SampleCount", "Sum", "p100"],
        now,
    );
    assert_eq!(
        values(&points)[0].1,
        vec![Some(1000.0), Some(499_500.0), Some(999.0)]
    );
}

#[test]
fn flushes_absorb_segments_like_a_binary_carry() {
    assert_eq!(absorbed_segments(1), Vec::<u32>::new());
    assert_eq!(absorbed_segments(2), vec![1]);
    assert_eq!(absorbed_segments(3), Vec::<u32>::new());
    assert_eq!(absorbed_segments(6), vec![5]);
    assert_eq!(absorbed_segments(8), vec![7, 6, 4]);
    assert_eq!(absorbed_segments(12), vec![11, 10]);
    assert_eq!(absorbed_segments(1 << 31).len(), 31);
}

#[test]
fn segments_of_a_block_merge_like_a_binary_counter() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let now = T0 + HOUR_MS / 2;
    let mut expected_sum = 0.0;
    for flush in 1..=37u32 {
        put(
            &m,
            now,
            vec![hires("Req", T0 + u64::from(flush) * 1000, f64::from(flush))],
        );
        expected_sum += f64::from(flush);
        drop(m.flush(now).unwrap());
        // Four tiers, each holding popcount(flushes) segments.
        assert_eq!(
            segment_count(&m),
            4 * flush.count_ones() as usize,
            "flush {flush}"
        );
    }
    let points = query(&m, "Req", T0, T0 + 60_000, 60, &["Sum", "SampleCount"], now);
    assert_eq!(values(&points)[0].1, vec![Some(expected_sum), Some(37.0)]);
    // The flush numbers are found again after a restart.
    close(m);
    let m = open(dir.path());
    put(&m, now, vec![hires("Req", T0 + 38_000, 38.0)]);
    drop(m.flush(now).unwrap());
    assert_eq!(segment_count(&m), 4 * 38u32.count_ones() as usize);
    let points = query(&m, "Req", T0, T0 + 60_000, 60, &["SampleCount"], now);
    assert_eq!(values(&points)[0].1, vec![Some(38.0)]);
}

#[test]
fn rollups_answer_once_raw_data_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let now = T0 + HOUR_MS;
    // One value a second for an hour, high resolution: 0.5, 1.5, ... in a
    // sawtooth, so every minute holds 60 distinct values.
    let data: Vec<MetricDatum> = (0..3600u64)
        .map(|s| hires("Lat", T0 + s * 1000, (s % 600) as f64 + 0.5))
        .collect();
    for chunk in data.chunks(1000) {
        put(&m, now, chunk.to_vec());
    }
    drop(m.flush(now).unwrap());
    let stats = [
        "SampleCount",
        "Sum",
        "Minimum",
        "Maximum",
        "p50",
        "p99",
        "TM(10%:90%)",
    ];
    let exact = query(&m, "Lat", T0, T0 + HOUR_MS, 600, &stats, now);
    assert_eq!(exact.len(), 6);
    assert_eq!(
        exact[0].values[4],
        Some(299.5),
        "exact median from raw values"
    );
    assert_eq!(exact[0].values[5], Some(593.5));

    // Four hours later only the roll-ups hold it: whole minutes still work,
    // percentiles are estimates within 0.5%, seconds no longer answer.
    let later = now + 4 * HOUR_MS;
    let rolled = query(&m, "Lat", T0, T0 + HOUR_MS, 600, &stats, later);
    assert_eq!(rolled.len(), 6);
    for (a, b) in exact.iter().zip(&rolled) {
        assert_eq!(a.timestamp_ms, b.timestamp_ms);
        assert_eq!(a.values[..4], b.values[..4], "aggregates are exact");
        for (i, stat) in stats.iter().enumerate().skip(4) {
            let (x, y) = (a.values[i].unwrap(), b.values[i].unwrap());
            assert!((x - y).abs() <= 0.006 * x.abs(), "{stat}: {x} vs {y}");
        }
    }
    assert!(query(&m, "Lat", T0, T0 + 60_000, 10, &["Sum"], later).is_empty());

    // Twenty days on: five-minute periods (and multiples) only.
    let later = now + 20 * DAY_MS;
    assert!(query(&m, "Lat", T0, T0 + HOUR_MS, 60, &["Sum"], later).is_empty());
    let five = query(
        &m,
        "Lat",
        T0,
        T0 + HOUR_MS,
        900,
        &["SampleCount", "Sum"],
        later,
    );
    assert_eq!(five.len(), 4);
    assert_eq!(five[0].values, exact_sum_count(T0, 900));
    // Seventy days on: hours.
    let later = now + 70 * DAY_MS;
    assert!(query(&m, "Lat", T0, T0 + HOUR_MS, 300, &["Sum"], later).is_empty());
    let hour = query(
        &m,
        "Lat",
        T0,
        T0 + HOUR_MS,
        3600,
        &["SampleCount", "Sum"],
        later,
    );
    assert_eq!(hour.len(), 1);
    assert_eq!(hour[0].values, exact_sum_count(T0, 3600));
    // Past 455 days nothing is left to answer.
    let later = now + 460 * DAY_MS;
    assert!(query(&m, "Lat", T0, T0 + HOUR_MS, 3600, &["Sum"], later).is_empty());
}

/// SampleCount and Sum of the sawtooth above over `[from, from + span)`.
fn exact_sum_count(from_ms: u64, span_s: u64) -> Vec<Option<f64>> {
    let first = (from_ms - T0) / 1000;
    let sum: f64 = (first..first + span_s)
        .map(|s| (s % 600) as f64 + 0.5)
        .sum();
    vec![Some(span_s as f64), Some(sum)]
}

#[test]
fn a_longer_raw_retention_keeps_fine_periods_and_exact_percentiles() {
    let dir = tempfile::tempdir().unwrap();
    let m = open_with(
        dir.path(),
        MetricsOptions {
            retention: Retention {
                raw_s: 30 * 86_400,
                ..Retention::default()
            },
            ..MetricsOptions::default()
        },
    );
    let now = T0 + HOUR_MS;
    put(
        &m,
        now,
        (0..30u64)
            .map(|s| hires("Lat", T0 + s * 1000, (s * 37 % 30) as f64))
            .collect(),
    );
    drop(m.flush(now).unwrap());
    let later = now + 10 * DAY_MS;
    let points = query(
        &m,
        "Lat",
        T0,
        T0 + 30_000,
        5,
        &["SampleCount", "p50", "p100"],
        later,
    );
    assert_eq!(points.len(), 6);
    let all = query(
        &m,
        "Lat",
        T0,
        T0 + 60_000,
        60,
        &["p50", "p10", "IQM"],
        later,
    );
    // The values are 0..29 each once: nearest-rank p50 is 14, p10 is 2.
    assert_eq!(all[0].values, vec![Some(14.0), Some(2.0), Some(14.5)]);
}

#[test]
fn late_data_lands_in_every_tier() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let now = T0 + 10 * DAY_MS;
    let at = T0 + 60_000;
    put(
        &m,
        now,
        vec![datum("Late", at, 5.0), datum("Late", at, 7.0)],
    );
    drop(m.flush(now).unwrap());
    // Ten days old: not in the raw tier (3 hours), in every roll-up.
    let tiers: Vec<u8> = m
        .store
        .keys(records::BLOCKS)
        .unwrap()
        .iter()
        .map(|k| k[0])
        .collect();
    assert_eq!(tiers, vec![1, 2, 3]);
    let p = query(&m, "Late", at, at + 60_000, 60, &["Sum", "p50"], now);
    assert_eq!(values(&p), vec![(at as i64, vec![Some(12.0), Some(5.0)])]);
}

#[test]
fn sets_and_negative_values_make_percentiles_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let now = T0 + HOUR_MS;
    let minute = |k: u64| T0 + k * 60_000;
    let mut set = datum("Mix", minute(1), 0.0);
    set.value = None;
    set.statistic_values = Some(StatisticSetInput {
        sample_count: Some(10.0),
        sum: Some(55.0),
        minimum: Some(1.0),
        maximum: Some(10.0),
    });
    let mut constant = set.clone();
    constant.timestamp_ms = Some(minute(3) as i64);
    constant.statistic_values = Some(StatisticSetInput {
        sample_count: Some(4.0),
        sum: Some(8.0),
        minimum: Some(2.0),
        maximum: Some(2.0),
    });
    put(
        &m,
        now,
        vec![
            datum("Mix", minute(1), 11.0),
            set,
            datum("Mix", minute(2), -1.0),
            datum("Mix", minute(2), 3.0),
            constant,
            datum("Mix", minute(3), 4.0),
        ],
    );
    let stats = ["SampleCount", "Sum", "Minimum", "Maximum", "Average", "p50"];
    for when in [now, now + 4 * HOUR_MS] {
        if when > now {
            drop(m.flush(now).unwrap());
        }
        let p = values(&query(&m, "Mix", minute(1), minute(4), 60, &stats, when));
        // CloudWatch: Value 11 and the set (10, 55, 1, 10) in one minute
        // make SampleCount 11, Sum 66, Minimum 1, Maximum 11, Average 6.
        assert_eq!(
            p[0].1,
            vec![
                Some(11.0),
                Some(66.0),
                Some(1.0),
                Some(11.0),
                Some(6.0),
                None
            ]
        );
        assert_eq!(p[1].1[5], None, "a negative value");
        // A set with Min = Max and Sum = Min x SampleCount counts as values.
        assert_eq!(
            p[2].1,
            vec![
                Some(5.0),
                Some(12.0),
                Some(2.0),
                Some(4.0),
                Some(2.4),
                Some(2.0)
            ]
        );
    }
}

#[test]
fn units_are_kept_apart() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let now = T0 + HOUR_MS;
    let with_unit = |v: f64, unit: Option<&str>| MetricDatum {
        unit: unit.map(String::from),
        ..datum("U", now - 1000, v)
    };
    put(
        &m,
        now,
        vec![
            with_unit(1.0, Some("Seconds")),
            with_unit(5.0, Some("Count")),
            with_unit(10.0, None),
        ],
    );
    let all = query(&m, "U", now - 60_000, now + 60_000, 60, &["Average"], now);
    let mut by_unit: Vec<(Unit, Option<f64>)> = all.iter().map(|p| (p.unit, p.values[0])).collect();
    by_unit.sort_by_key(|p| p.0);
    assert_eq!(
        by_unit,
        vec![
            (Unit::Seconds, Some(1.0)),
            (Unit::Count, Some(5.0)),
            (Unit::None, Some(10.0))
        ]
    );
    let id = metric("U");
    let statistics = [Statistic::Sum];
    let request = StatisticsRequest {
        account: "111122223333",
        region: "us-east-1",
        metric: &id,
        unit: Some(Unit::Count),
        start_ms: (now - 60_000) as i64,
        end_ms: (now + 60_000) as i64,
        period_s: 60,
        statistics: &statistics,
    };
    let counted = m.get_metric_statistics(&request, now).unwrap();
    assert_eq!(counted.len(), 1);
    assert_eq!(counted[0].values, vec![Some(5.0)]);
    let bytes = StatisticsRequest {
        unit: Some(Unit::Bytes),
        ..request.clone()
    };
    assert!(m.get_metric_statistics(&bytes, now).unwrap().is_empty());
    // Another account or region sees nothing.
    let other = StatisticsRequest {
        account: "999999999999",
        ..request.clone()
    };
    assert!(m.get_metric_statistics(&other, now).unwrap().is_empty());
    assert_eq!(
        m.series_of("111122223333", "us-east-1", &id).unwrap().len(),
        3
    );
    let (listed, next) = m
        .list_series("111122223333", "us-east-1", Some("App"), None, 2)
        .unwrap();
    assert_eq!(listed.len(), 2);
    let (rest, done) = m
        .list_series("111122223333", "us-east-1", Some("App"), next.as_deref(), 2)
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(done, None);
}

#[test]
fn a_huge_period_reads_only_where_data_can_be() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let now = T0 + HOUR_MS;
    put(&m, now, vec![datum("X", now - 60_000, 4.0)]);
    let period = 60 * 1_000_000_000_000i64;
    let p = query(&m, "X", now - 120_000, now, period, &["Sum"], now);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].values, vec![Some(4.0)]);
}

#[test]
fn get_metric_statistics_checks_like_cloudwatch() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let now = T0 + 2 * DAY_MS;
    let id = metric("X");
    let statistics = [Statistic::Sum];
    let request = |start: u64, end: u64, period: i64| StatisticsRequest {
        account: "1",
        region: "r",
        metric: &id,
        unit: None,
        start_ms: start as i64,
        end_ms: end as i64,
        period_s: period,
        statistics: &statistics,
    };
    let e = m
        .get_metric_statistics(&request(T0, T0 + DAY_MS, 1), now)
        .unwrap_err();
    assert_eq!(e.code(), "InvalidParameterCombination");
    assert_eq!(
        e.message(),
        "You have requested up to 86400 datapoints, which exceeds the limit of 1440. You may reduce the datapoints requested by increasing Period, or decreasing the time range."
    );
    assert!(m
        .get_metric_statistics(&request(T0, T0 + DAY_MS, 60), now)
        .is_ok());
    let e = m
        .get_metric_statistics(&request(T0, T0, 60), now)
        .unwrap_err();
    assert_eq!(
        e.message(),
        "The parameter StartTime must be less than the parameter EndTime."
    );
    let e = m
        .get_metric_statistics(&request(T0, T0 + 1000, 7), now)
        .unwrap_err();
    assert_eq!(e.code(), "InvalidParameterValue");
}

#[test]
fn expiry_goes_in_bounded_steps() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let now = T0 + HOUR_MS;
    for series in 0..10 {
        let name = format!("S{series}");
        put(
            &m,
            now,
            (0..60u64)
                .map(|s| hires(&name, T0 + s * 60_000, 1.0))
                .collect(),
        );
    }
    drop(m.flush(now).unwrap());
    // 10 series x (1 raw block + 1 per roll-up tier).
    assert_eq!(segment_count(&m), 40);
    assert_eq!(m.expire(now, 100).unwrap().segments_deleted, 0);

    // After 3 hours the raw blocks go, three at a time.
    let later = now + 3 * HOUR_MS;
    let mut steps = 0;
    loop {
        let r = m.expire(later, 3).unwrap();
        assert!(r.segments_deleted <= 3);
        steps += 1;
        if !r.more {
            break;
        }
    }
    assert!(steps >= 4, "{steps}");
    assert_eq!(segment_count(&m), 30);

    assert!(query(&m, "S0", T0, T0 + HOUR_MS, 3600, &["Sum"], later)[0].values == vec![Some(60.0)]);

    // Then the minute and five-minute blocks (a block goes once all of it
    // is past the retention: up to a block's length later).
    for (age, left) in [(16 * DAY_MS, 20), (71 * DAY_MS, 10)] {
        while m.expire(now + age, 7).unwrap().more {}
        assert_eq!(segment_count(&m), left, "{age}");
    }
    // The series are forgotten once nothing they published is kept:
    // 455 days and the two hours a timestamp may run ahead.
    let m = {
        close(m);
        open(dir.path())
    };
    while m.expire(now + 455 * DAY_MS + HOUR_MS, 4).unwrap().more {}
    assert_eq!(m.store.keys(records::SERIES).unwrap().len(), 10);
    while m.expire(now + 455 * DAY_MS + 3 * HOUR_MS, 4).unwrap().more {}
    assert!(m.store.keys(records::SERIES).unwrap().is_empty());
    while m.expire(now + 486 * DAY_MS, 4).unwrap().more {}
    assert_eq!(segment_count(&m), 0);
    // A series published again afterwards starts afresh.
    let again = now + 457 * DAY_MS;
    put(&m, again, vec![datum("S0", again, 2.0)]);
    let p = query(
        &m,
        "S0",
        again - 60_000,
        again + 60_000,
        60,
        &["Sum"],
        again,
    );
    assert_eq!(p[0].values, vec![Some(2.0)]);
}

#[test]
fn memory_follows_the_working_set() {
    let dir = tempfile::tempdir().unwrap();
    let m = open_with(
        dir.path(),
        MetricsOptions {
            series_cache: 16,
            max_pending_entries: 5_000,
            ..MetricsOptions::default()
        },
    );
    let series = 40u64;
    let start = T0;
    let mut now = start;
    let mut most = MemoryUse::default();
    // Six hours of one value a second for 40 series, flushed every minute
    // of simulated time: 864,000 datapoints.
    for minute in 0..360u64 {
        for s in 0..series {
            let name = format!("S{s}");
            let data: Vec<MetricDatum> = (0..60u64)
                .map(|k| hires(&name, start + (minute * 60 + k) * 1000, (k % 7) as f64))
                .collect();
            now = start + (minute + 1) * 60_000;
            put(&m, now, data);
            let use_now = m.memory_use();
            most.pending_entries = most.pending_entries.max(use_now.pending_entries);
        }
        drop(m.flush(now).unwrap());
        let use_now = m.memory_use();
        assert_eq!(use_now.pending_entries, 0);
        assert!(use_now.cached_series <= 16, "{use_now:?}");
        most.flush_numbers = most.flush_numbers.max(use_now.flush_numbers);
        most.cached_series = most.cached_series.max(use_now.cached_series);
    }
    // Pending never passes the budget by more than one call's data, and
    // the flush numbers cover only current blocks (4 tiers, 2 blocks each).
    assert!(most.pending_entries <= 5_000 + 4 * 60, "{most:?}");
    assert!(most.flush_numbers > 0);
    assert!(most.flush_numbers <= (series * 4 * 2) as usize, "{most:?}");
    println!("memory after 864,000 datapoints: {most:?}");
    let p = query(
        &m,
        "S3",
        start,
        start + 6 * HOUR_MS,
        3600,
        &["SampleCount"],
        now,
    );
    assert_eq!(p.len(), 6);
    assert!(p.iter().all(|d| d.values == vec![Some(3600.0)]));
}

/// What the data tables hold: records and their key and value bytes.
fn stored_bytes(m: &Metrics) -> (usize, usize) {
    let mut records = 0;
    let mut bytes = 0;
    for table in [
        records::BLOCKS,
        records::SERIES,
        records::INGEST,
        records::META,
    ] {
        m.store
            .scan(table, b"", |k, v| {
                records += 1;
                bytes += k.len() + v.len();
                Step::Next
            })
            .unwrap();
    }
    (records, bytes)
}

fn measure(label: &str, value_of: impl Fn(u64, u64) -> f64) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let series = 100u64;
    let seconds = 10_000u64;
    let start = T0;
    let mut now = start;
    // One value a second per series, published a minute at a time.
    for minute in 0..seconds.div_ceil(60) {
        now = start + (minute + 1) * 60_000;
        for s in 0..series {
            let name = format!("S{s}");
            let data: Vec<MetricDatum> = (minute * 60..((minute + 1) * 60).min(seconds))
                .map(|k| hires(&name, start + k * 1000, value_of(s, k)))
                .collect();
            put(&m, now, data);
        }
        if minute % 5 == 4 {
            drop(m.flush(now).unwrap());
        }
    }
    drop(m.flush(now).unwrap());
    let points = (series * seconds) as f64;
    let (records, bytes) = stored_bytes(&m);
    let mut raw_bytes = 0;
    m.store
        .scan(records::BLOCKS, &[Tier::Raw.code()], |k, v| {
            if k[0] != Tier::Raw.code() {
                return Step::Stop;
            }
            raw_bytes += k.len() + v.len();
            Step::Next
        })
        .unwrap();
    let store = m.store.clone();
    drop(m);
    store.checkpoint().unwrap();
    store.close();
    let file = std::fs::metadata(dir.path().join("state.redb"))
        .unwrap()
        .len();
    let per_point = bytes as f64 / points;
    println!(
        "{label}: {points} datapoints in {records} records: {per_point:.2} B/datapoint stored \
         ({:.2} raw tier, {:.2} roll-ups), redb file {:.2} B/datapoint",
        raw_bytes as f64 / points,
        (bytes - raw_bytes) as f64 / points,
        file as f64 / points
    );
    per_point
}

/// Standard resolution, one value a minute for each of 200 series (what
/// collectors publish), for 1,000 minutes: 200,000 datapoints.
fn measure_per_minute() -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let series = 200u64;
    let minutes = 1000u64;
    let mut now = T0;
    for minute in 0..minutes {
        now = T0 + (minute + 1) * 60_000;
        let data: Vec<MetricDatum> = (0..series)
            .map(|s| {
                datum(
                    &format!("S{s}"),
                    T0 + minute * 60_000,
                    ((s + minute) % 50) as f64,
                )
            })
            .collect();

        put(&m, now, data);
        // Half an hour of 200 series stays well within the pending budget.
        if minute % 30 == 29 {
            drop(m.flush(now).unwrap());
        }
    }
    drop(m.flush(now).unwrap());
    let (records, bytes) = stored_bytes(&m);
    let per_point = bytes as f64 / (series * minutes) as f64;
    println!(
        "per-minute gauge: {} datapoints in {records} records: {per_point:.2} B/datapoint stored",
        series * minutes
    );
    per_point
}

#[test]
fn bytes_per_datapoint_integer_gauge() {
    // A slowly moving integer gauge (queue depth, connections), 1,000,000
    // datapoints at one a second.
    let bytes = measure("integer gauge", |s, k| (100 + s + (k / 30) % 20) as f64);
    assert!(bytes < 4.0, "{bytes}");
}

#[test]
fn bytes_per_datapoint_random_doubles() {
    // Random doubles (latencies in ms with full precision), 1,000,000
    // datapoints at one a second: the worst case for the value columns.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let randoms: Vec<f64> = (0..1000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64 * 250.0
        })
        .collect();
    let bytes = measure("random doubles", |s, k| {
        randoms[((s * 7919 + k) % 1000) as usize]
    });
    assert!(bytes < 16.0, "{bytes}");
}

#[test]
fn bytes_per_datapoint_once_a_minute() {
    let bytes = measure_per_minute();
    assert!(bytes < 24.0, "{bytes}");
}

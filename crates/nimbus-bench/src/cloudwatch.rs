//! The CloudWatch workloads, spoken in the query protocol (form-encoded
//! `Action=...` POSTs answered in XML), which nimbus, LocalStack and moto all
//! serve. This module owns `cw-put` (PutMetricData of 20 datapoints per call),
//! `cw-get-stats` (GetMetricStatistics over 24 hours of 1-minute data) and
//! `cw-get-data` (GetMetricData over 3 hours of 1-second data), which run
//! against every endpoint, and the two that start a nimbus of their own:
//! `alarm-eval` (the server's CPU per evaluation period with 10,000 metric
//! alarms at `--clock-scale 60`, against the same server before the alarms and
//! an empty one) and `cw-scale` (RSS and disk bytes per stored datapoint).
//! The gets check every answer's datapoint count, so that a server answering
//! fast with too little is counted as failing, not as fast.

use super::client::{self, Endpoint, HttpClient, Reply, Signer};
use super::measure;
use super::own_server::Server;
use super::sqs::{self, RunConfig, RunResult, Tally, Target, Workload};
use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use http::Method;
use serde_json::{json, Value};
use std::cell::Cell;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Datapoints per PutMetricData call of `cw-put`.
pub const PUT_BATCH: usize = 20;
/// Metrics pre-filled for `cw-get-stats`, each with a day of 1-minute data.
const STATS_METRICS: usize = 4;
/// One day of 1-minute datapoints: exactly CloudWatch's 1,440-datapoint limit at Period 60.
const STATS_POINTS: u64 = 1440;
/// Metrics pre-filled for `cw-get-data`, each with 3 hours of 1-second data.
const DATA_METRICS: usize = 2;
/// Three hours of 1-second datapoints.
const DATA_POINTS: u64 = 10_800;
/// How far before now the 1-second data starts: within the 3 hours in which
/// CloudWatch answers Period 1, for any run shorter than half an hour (its
/// last half hour lies ahead of now, which PutMetricData allows up to 2 hours).
const DATA_START_AGO_SECS: i64 = 9000;
/// Members per PutMetricData call while pre-filling (every peer takes 20).
const FILL_BATCH: usize = 20;
/// Members per call when filling a nimbus of our own (CloudWatch's limit is 1000).
const OWN_FILL_BATCH: usize = 500;

/// Settings of the workloads that start a nimbus of their own.
#[derive(Debug, Clone)]
pub struct CwConfig {
    /// alarm-eval: metric alarms created.
    pub alarms: u64,
    /// alarm-eval: cloud minutes (evaluation periods) measured per phase.
    pub alarm_minutes: u64,
    /// alarm-eval: the servers' `--clock-scale`.
    pub clock_scale: u32,
    /// cw-scale: datapoints stored.
    pub scale_datapoints: u64,
    /// Where the servers' data directories go.
    pub dir: PathBuf,
}

/// Builds a signed query-protocol request of `params` (Action and Version included).
fn query_request(
    ep: &Endpoint,
    signer: &Signer,
    body: Bytes,
) -> Result<http::Request<http_body_util::Full<Bytes>>, String> {
    let headers = vec![
        ("host".to_string(), ep.authority.clone()),
        (
            "content-type".to_string(),
            "application/x-www-form-urlencoded; charset=utf-8".to_string(),
        ),
    ];
    client::signed_request(
        ep,
        signer,
        "monitoring",
        Method::POST,
        "/",
        "",
        headers,
        body,
    )
}

/// Form-encodes an `action` call with `params`.
fn form(action: &str, params: &[(String, String)]) -> Bytes {
    let mut s = form_urlencoded::Serializer::new(String::new());
    s.append_pair("Action", action);
    s.append_pair("Version", "2010-08-01");
    for (k, v) in params {
        s.append_pair(k, v);
    }
    Bytes::from(s.finish())
}

async fn call(
    ep: &Endpoint,
    signer: &Signer,
    http: &HttpClient,
    body: Bytes,
    timeout: Duration,
) -> Result<Reply, String> {
    client::send(http, query_request(ep, signer, body)?, timeout).await
}

/// A call that must answer 2xx; returns the answer's text.
async fn call_ok(
    ep: &Endpoint,
    signer: &Signer,
    http: &HttpClient,
    action: &str,
    body: Bytes,
    timeout: Duration,
) -> Result<String, String> {
    let r = call(ep, signer, http, body, timeout).await?;
    if !r.ok() {
        return Err(format!("{action}: HTTP {}: {}", r.status, r.body_excerpt()));
    }
    Ok(String::from_utf8_lossy(&r.body).into_owned())
}

/// ISO 8601 of epoch seconds, as the query protocol carries timestamps.
fn iso(secs: i64) -> String {
    nimbus_core::timestamp::format_iso8601_secs(secs)
}

/// One datapoint of a PutMetricData call.
#[derive(Debug, Clone)]
struct Point {
    metric: String,
    /// Epoch seconds; None lets the server stamp it.
    timestamp: Option<i64>,
    value: f64,
    high_resolution: bool,
}

/// The PutMetricData form of `points` (one MetricData member each) in `namespace`.
fn put_form(namespace: &str, points: &[Point], dimension: Option<(&str, &str)>) -> Bytes {
    let mut params = vec![("Namespace".to_string(), namespace.to_string())];
    for (i, p) in points.iter().enumerate() {
        let m = format!("MetricData.member.{}", i + 1);
        params.push((format!("{m}.MetricName"), p.metric.clone()));
        params.push((format!("{m}.Value"), p.value.to_string()));
        if let Some(t) = p.timestamp {
            params.push((format!("{m}.Timestamp"), iso(t)));
        }
        if p.high_resolution {
            params.push((format!("{m}.StorageResolution"), "1".to_string()));
        }
        if let Some((name, value)) = dimension {
            params.push((format!("{m}.Dimensions.member.1.Name"), name.to_string()));
            params.push((format!("{m}.Dimensions.member.1.Value"), value.to_string()));
        }
    }
    form("PutMetricData", &params)
}

/// A metric value that varies like a real gauge (one decimal, 0..100), so
/// that no store can shortcut a run of equal values.
fn gauge(metric: usize, i: u64) -> f64 {
    ((i.wrapping_mul(7919) + metric as u64 * 31) % 1000) as f64 / 10.0
}

/// How many times `needle` occurs in `hay`.
fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

/// The values in a GetMetricData answer: `<member>`s between `<Values>` and `</Values>`.
fn data_values(xml: &str) -> usize {
    let mut n = 0;
    let mut rest = xml;
    while let Some(start) = rest.find("<Values>") {
        let after = &rest[start + "<Values>".len()..];
        let end = after.find("</Values>").unwrap_or(after.len());
        n += count(&after[..end], "<member>");
        rest = &after[end..];
    }
    n
}

/// The text of the first `<tag>` element, if any.
fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(&xml[start..end])
}

/// A bench namespace no other run shares.
fn namespace(what: &str) -> String {
    format!(
        "NimbusBench/{what}-{}-{}",
        std::process::id(),
        nimbus_core::now_millis() % 1_000_000_000
    )
}

fn now_secs() -> i64 {
    (nimbus_core::now_millis() / 1000) as i64
}

/// What the get workloads pre-filled on one endpoint (kept across its runs).
#[derive(Default)]
pub struct EndpointState {
    stats: Option<Result<StatsData, String>>,
    data: Option<Result<SecondData, String>>,
}

/// A day of 1-minute data in `STATS_METRICS` metrics from `start`.
#[derive(Clone)]
struct StatsData {
    namespace: String,
    start: i64,
}

/// Three hours of 1-second data in `DATA_METRICS` metrics from `start`.
#[derive(Clone)]
struct SecondData {
    namespace: String,
    start: i64,
}

/// Sends `forms` (PutMetricData bodies) with `concurrency` workers; the first error ends it.
async fn put_all(
    ep: &Endpoint,
    signer: &Signer,
    http: &HttpClient,
    forms: Vec<Bytes>,
    concurrency: usize,
    timeout: Duration,
) -> Result<(), String> {
    let next = Cell::new(0usize);
    let forms = &forms;
    let worker = || async {
        loop {
            let i = next.get();
            let Some(body) = forms.get(i) else {
                return Ok::<(), String>(());
            };
            next.set(i + 1);
            call_ok(ep, signer, http, "PutMetricData", body.clone(), timeout).await?;
        }
    };
    let mut set: FuturesUnordered<_> = (0..concurrency.max(1)).map(|_| worker()).collect();
    while let Some(done) = set.next().await {
        done?;
    }
    Ok(())
}

/// The forms that store `points_per_metric` points of each of `metrics`
/// metrics (`m{first}`, `m{first + 1}`, ...), `batch` per call, point `i` at
/// `start + i * step` seconds.
#[allow(clippy::too_many_arguments)]
fn fill_forms(
    namespace: &str,
    first: usize,
    metrics: usize,
    points_per_metric: u64,
    start: i64,
    step: i64,
    high_resolution: bool,
    batch: usize,
) -> Vec<Bytes> {
    let mut forms = Vec::new();
    for m in first..first + metrics {
        let points: Vec<Point> = (0..points_per_metric)
            .map(|i| Point {
                metric: format!("m{m}"),
                timestamp: Some(start + i as i64 * step),
                value: gauge(m, i),
                high_resolution,
            })
            .collect();
        forms.extend(points.chunks(batch).map(|c| put_form(namespace, c, None)));
    }
    forms
}

async fn prefill_stats(target: &Target<'_>, cfg: &RunConfig) -> Result<StatsData, String> {
    let namespace = namespace("stats");
    // A whole day ending two hours ago, on a minute boundary: all of it past
    // the 3 hours of raw data, so it is read as 1-minute data.
    let start = (now_secs() / 60) * 60 - 26 * 3600;
    let forms = fill_forms(
        &namespace,
        0,
        STATS_METRICS,
        STATS_POINTS,
        start,
        60,
        false,
        FILL_BATCH,
    );
    put_all(
        target.endpoint,
        target.signer,
        target.client,
        forms,
        cfg.concurrency,
        cfg.request_timeout,
    )
    .await?;
    Ok(StatsData { namespace, start })
}

async fn prefill_seconds(target: &Target<'_>, cfg: &RunConfig) -> Result<SecondData, String> {
    let namespace = namespace("seconds");
    let start = now_secs() - DATA_START_AGO_SECS;
    let forms = fill_forms(
        &namespace,
        0,
        DATA_METRICS,
        DATA_POINTS,
        start,
        1,
        true,
        FILL_BATCH,
    );
    put_all(
        target.endpoint,
        target.signer,
        target.client,
        forms,
        cfg.concurrency,
        cfg.request_timeout,
    )
    .await?;
    Ok(SecondData { namespace, start })
}

/// Runs `cw-put`, `cw-get-stats` or `cw-get-data` once against `target`.
pub async fn run(
    target: &Target<'_>,
    workload: Workload,
    cfg: &RunConfig,
    state: &mut EndpointState,
) -> RunResult {
    let ep = target.endpoint.name.as_str();
    // Idle RSS is taken before anything of this run touches the server.
    let rss_before = match target.server_pid.map(measure::sample_server).transpose() {
        Ok(s) => s.map(|s| s.rss_kib),
        Err(e) => return RunResult::failed(ep, workload, e),
    };
    // The untimed pre-fills, once per endpoint.
    let work = match workload {
        Workload::CwPut => Work::Put(namespace("put")),
        Workload::CwGetStats => {
            if state.stats.is_none() {
                eprint!(
                    "(pre-filling {} datapoints) ",
                    STATS_METRICS as u64 * STATS_POINTS
                );
                state.stats = Some(prefill_stats(target, cfg).await);
            }
            match state.stats.clone() {
                Some(Ok(s)) => Work::Stats(s),
                Some(Err(e)) => return RunResult::failed(ep, workload, format!("pre-fill: {e}")),
                None => return RunResult::failed(ep, workload, "no pre-fill".into()),
            }
        }
        Workload::CwGetData => {
            if state.data.is_none() {
                eprint!(
                    "(pre-filling {} datapoints) ",
                    DATA_METRICS as u64 * DATA_POINTS
                );
                state.data = Some(prefill_seconds(target, cfg).await);
            }
            match state.data.clone() {
                Some(Ok(s)) => Work::Seconds(s),
                Some(Err(e)) => return RunResult::failed(ep, workload, format!("pre-fill: {e}")),
                None => return RunResult::failed(ep, workload, "no pre-fill".into()),
            }
        }
        other => return RunResult::failed(ep, other, "not a CloudWatch endpoint workload".into()),
    };
    let tally = Tally::default();
    let (work, tally_ref) = (&work, &tally);
    let phase = sqs::timed_phase(
        target.server_pid,
        rss_before,
        &tally,
        cfg,
        |deadline| async move {
            let mut set = FuturesUnordered::new();
            for w in 0..cfg.concurrency.max(1) {
                set.push(worker(target, cfg, work, w, tally_ref, deadline));
            }
            while set.next().await.is_some() {}
        },
    )
    .await;
    match phase {
        Ok(p) => RunResult::from_phase(ep, workload, &tally, p),
        Err(e) => RunResult::failed(ep, workload, e),
    }
}

/// What a run's workers do.
enum Work {
    /// PutMetricData into this namespace.
    Put(String),
    Stats(StatsData),
    Seconds(SecondData),
}

async fn worker(
    target: &Target<'_>,
    cfg: &RunConfig,
    work: &Work,
    index: usize,
    tally: &Tally,
    deadline: Instant,
) {
    // Every request of a worker is built up front: the client's CPU stays
    // off the measurement (the CPU column shows what is left).
    let (action, bodies, expected): (&str, Vec<Bytes>, usize) = match work {
        // 20 metrics per call, one value each, stamped by the server; each
        // worker has its own dimension value, so 20 x concurrency series.
        Work::Put(ns) => {
            let points: Vec<Point> = (0..PUT_BATCH)
                .map(|m| Point {
                    metric: format!("m{m}"),
                    timestamp: None,
                    value: gauge(m, index as u64),
                    high_resolution: false,
                })
                .collect();
            let worker = format!("w{index}");
            (
                "PutMetricData",
                vec![put_form(ns, &points, Some(("Worker", &worker)))],
                PUT_BATCH,
            )
        }
        Work::Stats(s) => {
            let bodies = (0..STATS_METRICS)
                .map(|m| {
                    let params = [
                        ("Namespace", s.namespace.clone()),
                        ("MetricName", format!("m{m}")),
                        ("StartTime", iso(s.start)),
                        ("EndTime", iso(s.start + STATS_POINTS as i64 * 60)),
                        ("Period", "60".into()),
                        ("Statistics.member.1", "Average".into()),
                        ("Statistics.member.2", "Maximum".into()),
                    ];
                    form("GetMetricStatistics", &owned(&params))
                })
                .collect();
            ("GetMetricStatistics", bodies, STATS_POINTS as usize)
        }
        Work::Seconds(s) => {
            let bodies = (0..DATA_METRICS)
                .map(|m| {
                    let q = "MetricDataQueries.member.1";
                    let params = [
                        (format!("{q}.Id"), "m".to_string()),
                        (
                            format!("{q}.MetricStat.Metric.Namespace"),
                            s.namespace.clone(),
                        ),
                        (format!("{q}.MetricStat.Metric.MetricName"), format!("m{m}")),
                        (format!("{q}.MetricStat.Period"), "1".into()),
                        (format!("{q}.MetricStat.Stat"), "Average".into()),
                        ("StartTime".into(), iso(s.start)),
                        ("EndTime".into(), iso(s.start + DATA_POINTS as i64)),
                        ("MaxDatapoints".into(), DATA_POINTS.to_string()),
                    ];
                    form("GetMetricData", &params)
                })
                .collect();
            ("GetMetricData", bodies, DATA_POINTS as usize)
        }
    };
    while let Some(i) = tally.claim(cfg.ops, deadline) {
        // Workers start on different metrics and go round them.
        let body = bodies[(i as usize + index) % bodies.len()].clone();
        let started = Instant::now();
        let reply = call(
            target.endpoint,
            target.signer,
            target.client,
            body,
            cfg.request_timeout,
        )
        .await;
        match reply {
            Ok(r) if r.ok() => {
                let latency = started.elapsed();
                let got = match work {
                    Work::Put(_) => PUT_BATCH,
                    Work::Stats(_) => count(&String::from_utf8_lossy(&r.body), "<Timestamp>"),
                    Work::Seconds(_) => data_values(&String::from_utf8_lossy(&r.body)),
                };
                if got == expected {
                    tally.ok(latency, got as u64);
                } else {
                    tally.error(1, || {
                        format!(
                            "{action}: {got} datapoints answered, {expected} expected: {}",
                            client::excerpt(&String::from_utf8_lossy(&r.body), 200)
                        )
                    });
                }
            }
            Ok(r) => tally.error(1, || {
                format!("{action}: HTTP {}: {}", r.status, r.body_excerpt())
            }),
            Err(e) => tally.error(1, || format!("{action}: {e}")),
        }
    }
}

fn owned(params: &[(&str, String)]) -> Vec<(String, String)> {
    params
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

// ---------------------------------------------------------------- alarm-eval

/// CPU of one server over a span of cloud minutes.
#[derive(Debug, Clone, Default)]
pub struct CpuSpan {
    pub label: String,
    pub real_secs: f64,
    pub cloud_minutes: f64,
    pub cpu_ms: f64,
    pub ticks: u64,
    pub rss_kib: Option<u64>,
}

impl CpuSpan {
    pub fn ms_per_minute(&self) -> Option<f64> {
        (self.cloud_minutes > 0.0).then(|| self.cpu_ms / self.cloud_minutes)
    }
}

#[derive(Debug, Default)]
pub struct AlarmEvalResult {
    pub alarms: u64,
    pub clock_scale: u32,
    pub datapoints: u64,
    pub fill_secs: f64,
    pub create_secs: f64,
    /// Server CPU per PutMetricAlarm while creating them.
    pub create_cpu_us_per_alarm: Option<f64>,
    /// Empty server; the same server with the metric data, no alarms; with alarms.
    pub spans: Vec<CpuSpan>,
    /// From the alarms' creation until none is left in INSUFFICIENT_DATA
    /// (their first evaluations, each a transition): real seconds and server CPU.
    pub settle_secs: f64,
    pub settle_cpu_ms: f64,
    /// Alarm states (ALARM, OK, INSUFFICIENT_DATA) before and after the measured span.
    pub states_before: Option<(u64, u64, u64)>,
    pub states: Option<(u64, u64, u64)>,
    pub failures: Vec<String>,
}

impl AlarmEvalResult {
    fn span(&self, label: &str) -> Option<&CpuSpan> {
        self.spans.iter().find(|s| s.label == label)
    }

    /// CPU per period the alarms add: with alarms minus the same server without.
    pub fn net_ms_per_period(&self) -> Option<f64> {
        Some(
            self.span("alarms")?.ms_per_minute()?
                - self.span("data, no alarms")?.ms_per_minute()?,
        )
    }
}

/// The cloud's time on a nimbus, from its health answer (`clock.now_ms`).
async fn cloud_now_ms(ep: &Endpoint) -> Result<u64, String> {
    let http = client::http_client(0);
    let r = client::send(
        &http,
        client::get_request(&ep.authority, "/_nimbus/health")?,
        Duration::from_secs(10),
    )
    .await?;
    let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("health: {e}"))?;
    v["clock"]["now_ms"]
        .as_u64()
        .ok_or_else(|| format!("health answered no clock.now_ms: {v}"))
}

/// Measures `pid`'s CPU over `minutes` cloud minutes at `scale`.
async fn cpu_span(pid: u32, label: &str, minutes: u64, scale: u32) -> Result<CpuSpan, String> {
    let real = Duration::from_secs_f64(minutes as f64 * 60.0 / scale.max(1) as f64);
    let before = measure::sample_server(pid)?;
    let started = Instant::now();
    tokio::time::sleep(real).await;
    let after = measure::sample_server(pid)?;
    let real_secs = started.elapsed().as_secs_f64();
    let ticks = after.cpu_ticks.saturating_sub(before.cpu_ticks);
    Ok(CpuSpan {
        label: label.to_string(),
        real_secs,
        cloud_minutes: real_secs * scale as f64 / 60.0,
        cpu_ms: ticks as f64 * 1000.0 / measure::clock_ticks_per_sec() as f64,
        ticks,
        rss_kib: Some(after.rss_kib),
    })
}

/// Real time until the next cloud minute plus `into` cloud seconds.
fn until_minute(cloud_ms: u64, into_secs: f64, scale: u32) -> Duration {
    let into_ms = (into_secs * 1000.0) as u64;
    let next = (cloud_ms / 60_000 + 1) * 60_000 + into_ms;
    Duration::from_millis((next - cloud_ms) / scale.max(1) as u64)
}

pub async fn alarm_eval(
    binary: Option<PathBuf>,
    run: &RunConfig,
    cw: &CwConfig,
    signer: &Signer,
) -> AlarmEvalResult {
    let mut result = AlarmEvalResult {
        alarms: cw.alarms,
        clock_scale: cw.clock_scale,
        ..AlarmEvalResult::default()
    };
    let args = vec!["--clock-scale".to_string(), cw.clock_scale.to_string()];
    // The baseline: an empty nimbus at the same scale, measured alone.
    match Server::start_fresh_with(binary.clone(), &cw.dir, "nimbus-bench-idle-", "idle", &args)
        .await
    {
        Ok((_dir, mut server)) => {
            tokio::time::sleep(Duration::from_secs(1)).await;
            eprint!("\n  empty nimbus: ");
            match cpu_span(server.pid(), "empty", cw.alarm_minutes, cw.clock_scale).await {
                Ok(s) => {
                    eprint!("{:.1} ms CPU", s.cpu_ms);
                    result.spans.push(s);
                }
                Err(e) => result.failures.push(e),
            }
            server.stop().await;
        }
        Err(e) => result.failures.push(e),
    }
    let (_dir, mut server) =
        match Server::start_fresh_with(binary, &cw.dir, "nimbus-bench-alarms-", "alarms", &args)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                result.failures.push(e);
                return result;
            }
        };
    if let Err(e) = alarm_phases(&server, run, cw, signer, &mut result).await {
        result.failures.push(format!("{e}{}", server.log_tail()));
    }
    server.stop().await;
    result
}

async fn alarm_phases(
    server: &Server,
    run: &RunConfig,
    cw: &CwConfig,
    signer: &Signer,
    result: &mut AlarmEvalResult,
) -> Result<(), String> {
    let ep = &server.endpoint;
    let http = client::http_client(run.concurrency);
    let scale = cw.clock_scale;
    let ns = "NimbusBench/alarms";
    // One datapoint per cloud minute for each alarm's metric, from a few
    // minutes back to nearly two hours ahead (PutMetricData's limit), so that
    // every evaluation finds data in its periods however long the fill takes.
    let span_needed = 2 * cw.alarm_minutes + 10;
    let ahead = 115u64;
    if span_needed + 30 > ahead {
        return Err(format!(
            "--alarm-minutes {} is too long: two spans must fit in the {ahead} cloud minutes of data ahead",
            cw.alarm_minutes
        ));
    }
    let first = (cloud_now_ms(ep).await? / 60_000) as i64 * 60 - 5 * 60;
    let per_metric = ahead + 5;
    eprint!(
        "\n  filling {} metrics x {per_metric} datapoints (1 per cloud minute)",
        cw.alarms
    );
    let started = Instant::now();
    let mut forms = Vec::new();
    for a in 0..cw.alarms as usize {
        let points: Vec<Point> = (0..per_metric)
            .map(|i| Point {
                metric: format!("a{a}"),
                timestamp: Some(first + i as i64 * 60),
                // Half the alarms breach their threshold (50), half do not.
                value: if a % 2 == 0 { 80.0 } else { 20.0 },
                high_resolution: false,
            })
            .collect();
        forms.extend(points.chunks(OWN_FILL_BATCH).map(|c| put_form(ns, c, None)));
    }
    put_all(
        ep,
        signer,
        &http,
        forms,
        run.concurrency,
        run.request_timeout,
    )
    .await?;
    result.fill_secs = started.elapsed().as_secs_f64();
    result.datapoints = cw.alarms * per_metric;

    // Let the fill's flush settle, then the same server with data and no alarms.
    tokio::time::sleep(Duration::from_secs(2)).await;
    eprint!("\n  data, no alarms: ");
    let s = cpu_span(server.pid(), "data, no alarms", cw.alarm_minutes, scale).await?;
    eprint!("{:.1} ms CPU", s.cpu_ms);
    result.spans.push(s);

    eprint!("\n  creating {} alarms", cw.alarms);
    let before = measure::sample_server(server.pid())?;
    let started = Instant::now();
    let forms: Vec<Bytes> = (0..cw.alarms)
        .map(|a| {
            let params = [
                ("AlarmName", format!("bench-alarm-{a}")),
                ("Namespace", ns.to_string()),
                ("MetricName", format!("a{a}")),
                ("Statistic", "Average".into()),
                ("Period", "60".into()),
                ("EvaluationPeriods", "3".into()),
                ("Threshold", "50".into()),
                ("ComparisonOperator", "GreaterThanThreshold".into()),
            ];
            form("PutMetricAlarm", &owned(&params))
        })
        .collect();
    let created = Cell::new(0usize);
    let (forms, created_ref, http_ref) = (&forms, &created, &http);
    let worker = || async move {
        loop {
            let i = created_ref.get();
            let Some(body) = forms.get(i) else {
                return Ok::<(), String>(());
            };
            created_ref.set(i + 1);
            call_ok(
                ep,
                signer,
                http_ref,
                "PutMetricAlarm",
                body.clone(),
                run.request_timeout,
            )
            .await?;
        }
    };
    let mut set: FuturesUnordered<_> = (0..run.concurrency.max(1)).map(|_| worker()).collect();
    while let Some(done) = set.next().await {
        done?;
    }
    drop(set);
    result.create_secs = started.elapsed().as_secs_f64();
    let after = measure::sample_server(server.pid())?;
    result.create_cpu_us_per_alarm = Some(
        after.cpu_ticks.saturating_sub(before.cpu_ticks) as f64 * 1e6
            / measure::clock_ticks_per_sec() as f64
            / cw.alarms.max(1) as f64,
    );

    // The first evaluation moves every alarm out of INSUFFICIENT_DATA (a
    // transition, with history, for each): measured on its own, until no
    // alarm is left there; the steady periods are measured after it, from
    // just after a minute boundary.
    let before = measure::sample_server(server.pid())?;
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs_f64(60.0 / scale.max(1) as f64)).await;
        let states = alarm_states(ep, signer, &http, run.request_timeout).await?;
        result.states_before = Some(states);
        if states.2 == 0 {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            return Err(format!(
                "alarms still in INSUFFICIENT_DATA after 120 s: {states:?}"
            ));
        }
    }
    let after = measure::sample_server(server.pid())?;
    result.settle_secs = started.elapsed().as_secs_f64();
    result.settle_cpu_ms = after.cpu_ticks.saturating_sub(before.cpu_ticks) as f64 * 1000.0
        / measure::clock_ticks_per_sec() as f64;
    let now = cloud_now_ms(ep).await?;
    tokio::time::sleep(until_minute(now, 30.0, scale)).await;
    eprint!("\n  alarms: ");
    let s = cpu_span(server.pid(), "alarms", cw.alarm_minutes, scale).await?;
    eprint!("{:.1} ms CPU", s.cpu_ms);
    result.spans.push(s);

    result.states = Some(alarm_states(ep, signer, &http, run.request_timeout).await?);
    Ok(())
}

/// How many alarms are in ALARM, OK and INSUFFICIENT_DATA.
async fn alarm_states(
    ep: &Endpoint,
    signer: &Signer,
    http: &HttpClient,
    timeout: Duration,
) -> Result<(u64, u64, u64), String> {
    let mut states = [0u64; 3];
    for (i, state) in ["ALARM", "OK", "INSUFFICIENT_DATA"].iter().enumerate() {
        states[i] = count_alarms(ep, signer, http, state, timeout).await?;
    }
    Ok((states[0], states[1], states[2]))
}

/// How many alarms are in `state` (DescribeAlarms, pages of 100).
async fn count_alarms(
    ep: &Endpoint,
    signer: &Signer,
    http: &HttpClient,
    state: &str,
    timeout: Duration,
) -> Result<u64, String> {
    let mut total = 0u64;
    let mut token: Option<String> = None;
    loop {
        let mut params = vec![
            ("StateValue".to_string(), state.to_string()),
            ("MaxRecords".to_string(), "100".to_string()),
        ];
        if let Some(t) = &token {
            params.push(("NextToken".to_string(), t.clone()));
        }
        let xml = call_ok(
            ep,
            signer,
            http,
            "DescribeAlarms",
            form("DescribeAlarms", &params),
            timeout,
        )
        .await?;
        total += count(&xml, "<AlarmName>") as u64;
        match xml_text(&xml, "NextToken") {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(total),
        }
    }
}

pub fn alarm_eval_text(r: &AlarmEvalResult) -> String {
    let mut out = format!(
        "\nalarm-eval: {} metric alarms (Period 60, 3 evaluation periods, Average > 50), own nimbus at --clock-scale {} (one cloud minute = {:.2} s); {} datapoints filled in {:.1} s; alarms created in {:.1} s ({} server CPU µs per PutMetricAlarm)\n\n",
        r.alarms,
        r.clock_scale,
        60.0 / r.clock_scale.max(1) as f64,
        r.datapoints,
        r.fill_secs,
        r.create_secs,
        r.create_cpu_us_per_alarm.map_or("-".into(), super::report::num),
    );
    out +=
        "| server | cloud minutes | real s | CPU ms | CPU ticks | CPU ms per period | RSS MiB |\n";
    out += "| --- | --: | --: | --: | --: | --: | --: |\n";
    for s in &r.spans {
        out += &format!(
            "| {} | {:.1} | {:.1} | {:.0} | {} | {} | {} |\n",
            s.label,
            s.cloud_minutes,
            s.real_secs,
            s.cpu_ms,
            s.ticks,
            s.ms_per_minute().map_or("-".into(), super::report::num),
            s.rss_kib.map_or("-".into(), super::report::mib),
        );
    }
    if let Some(net) = r.net_ms_per_period() {
        out += &format!(
            "- the alarms add {net:.1} ms of CPU per evaluation period for {} alarms ({:.2} µs per alarm evaluation; with alarms minus data, no alarms; a tick is 10 ms); target: under 50 ms\n",
            r.alarms,
            net * 1000.0 / r.alarms.max(1) as f64,
        );
    }
    out += &format!(
        "- first evaluations (every alarm leaves INSUFFICIENT_DATA): {:.1} s real, {:.0} ms server CPU ({:.1} ms per alarm), polled with DescribeAlarms\n",
        r.settle_secs,
        r.settle_cpu_ms,
        r.settle_cpu_ms / r.alarms.max(1) as f64,
    );
    for (when, states) in [("before", r.states_before), ("after", r.states)] {
        if let Some((alarm, ok, insufficient)) = states {
            out += &format!(
                "- states {when} the span: {alarm} ALARM, {ok} OK, {insufficient} INSUFFICIENT_DATA (expected: half ALARM, half OK)\n"
            );
        }
    }
    for f in &r.failures {
        out += &format!("  FAILED: {f}\n");
    }
    out
}

pub fn alarm_eval_json(r: &AlarmEvalResult) -> Value {
    json!({
        "alarms": r.alarms,
        "clock_scale": r.clock_scale,
        "datapoints": r.datapoints,
        "fill_secs": r.fill_secs,
        "create_secs": r.create_secs,
        "create_cpu_us_per_alarm": r.create_cpu_us_per_alarm,
        "settle_secs": r.settle_secs,
        "settle_cpu_ms": r.settle_cpu_ms,
        "spans": r.spans.iter().map(|s| json!({
            "label": s.label,
            "real_secs": s.real_secs,
            "cloud_minutes": s.cloud_minutes,
            "cpu_ms": s.cpu_ms,
            "cpu_ticks": s.ticks,
            "cpu_ms_per_period": s.ms_per_minute(),
            "rss_kib": s.rss_kib,
        })).collect::<Vec<_>>(),
        "net_cpu_ms_per_period": r.net_ms_per_period(),
        "states_before": r.states_before.map(|(a, o, i)| json!({"ALARM": a, "OK": o, "INSUFFICIENT_DATA": i})),
        "states": r.states.map(|(a, o, i)| json!({"ALARM": a, "OK": o, "INSUFFICIENT_DATA": i})),
        "failures": r.failures,
    })
}

// ---------------------------------------------------------------- cw-scale

/// 1-minute datapoints per metric in cw-scale: about a week of them.
const SCALE_POINTS_PER_METRIC: u64 = 10_000;

#[derive(Debug, Default)]
pub struct CwScaleResult {
    pub datapoints: u64,
    pub metrics: u64,
    pub fill_secs: f64,
    pub server_cpu_us_per_point: Option<f64>,
    pub rss_empty_kib: Option<u64>,
    pub rss_filled_kib: Option<u64>,
    pub rss_restarted_kib: Option<u64>,
    pub disk_filled_bytes: u64,
    pub disk_restarted_bytes: u64,
    pub restart_ms: Option<f64>,
    /// A day of one metric read back after the restart: datapoints answered.
    pub check_points: Option<usize>,
    pub failures: Vec<String>,
}

pub async fn cw_scale(
    binary: Option<PathBuf>,
    run: &RunConfig,
    cw: &CwConfig,
    signer: &Signer,
) -> CwScaleResult {
    let mut result = CwScaleResult::default();
    let (_dir, mut server) =
        match Server::start_fresh(binary, &cw.dir, "nimbus-bench-cwscale-", "cw-scale").await {
            Ok(s) => s,
            Err(e) => {
                result.failures.push(e);
                return result;
            }
        };
    if let Err(e) = scale_phases(&mut server, run, cw, signer, &mut result).await {
        result.failures.push(format!("{e}{}", server.log_tail()));
    }
    server.stop().await;
    result
}

async fn scale_phases(
    server: &mut Server,
    run: &RunConfig,
    cw: &CwConfig,
    signer: &Signer,
    result: &mut CwScaleResult,
) -> Result<(), String> {
    let http = client::http_client(run.concurrency);
    let ns = "NimbusBench/scale";
    let pid = server.pid();
    tokio::time::sleep(Duration::from_millis(500)).await;
    result.rss_empty_kib = measure::sample_server(pid).ok().map(|s| s.rss_kib);
    let metrics = cw.scale_datapoints.div_ceil(SCALE_POINTS_PER_METRIC);
    result.metrics = metrics;
    // A week of 1-minute data ending an hour ago, on a minute boundary.
    let end = (now_secs() / 60) * 60 - 3600;
    let start = end - SCALE_POINTS_PER_METRIC as i64 * 60;
    eprint!(
        "\n  storing {} datapoints ({metrics} metrics x {SCALE_POINTS_PER_METRIC} minutes)",
        cw.scale_datapoints
    );
    let before = measure::sample_server(pid)?;
    let started = Instant::now();
    // Built metric by metric, so the client never holds every form at once.
    let mut left = cw.scale_datapoints;
    for m in 0..metrics as usize {
        let n = left.min(SCALE_POINTS_PER_METRIC);
        left -= n;
        let forms = fill_forms(ns, m, 1, n, start, 60, false, OWN_FILL_BATCH);
        put_all(
            &server.endpoint,
            signer,
            &http,
            forms,
            run.concurrency,
            run.request_timeout,
        )
        .await?;
        result.datapoints += n;
    }
    result.fill_secs = started.elapsed().as_secs_f64();
    let after = measure::sample_server(pid)?;
    result.server_cpu_us_per_point = Some(
        after.cpu_ticks.saturating_sub(before.cpu_ticks) as f64 * 1e6
            / measure::clock_ticks_per_sec() as f64
            / result.datapoints.max(1) as f64,
    );
    // Past the server's flush of ingested data into blocks (every 5 s).
    tokio::time::sleep(Duration::from_secs(12)).await;
    result.rss_filled_kib = measure::sample_server(pid).ok().map(|s| s.rss_kib);
    result.disk_filled_bytes = super::state_save::disk_usage(&server.data);
    let restart = server.restart().await?;
    result.restart_ms = Some(restart.as_secs_f64() * 1000.0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    result.rss_restarted_kib = measure::sample_server(server.pid()).ok().map(|s| s.rss_kib);
    result.disk_restarted_bytes = super::state_save::disk_usage(&server.data);
    let params = [
        ("Namespace", ns.to_string()),
        ("MetricName", "m0".to_string()),
        ("StartTime", iso(end - 86_400)),
        ("EndTime", iso(end)),
        ("Period", "60".into()),
        ("Statistics.member.1", "Average".into()),
    ];
    let fresh = client::http_client(1);
    let xml = call_ok(
        &server.endpoint,
        signer,
        &fresh,
        "GetMetricStatistics",
        form("GetMetricStatistics", &owned(&params)),
        run.request_timeout,
    )
    .await?;
    result.check_points = Some(count(&xml, "<Timestamp>"));
    Ok(())
}

pub fn cw_scale_text(r: &CwScaleResult) -> String {
    let per = |bytes: Option<f64>| match bytes {
        Some(b) if r.datapoints > 0 => format!("{:.1} bytes/datapoint", b / r.datapoints as f64),
        _ => "-".into(),
    };
    let mib = |k: Option<u64>| k.map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    let growth = |k: Option<u64>| match (k, r.rss_empty_kib) {
        (Some(k), Some(e)) => Some(k.saturating_sub(e) as f64 * 1024.0),
        _ => None,
    };
    let mut out = format!(
        "\ncw-scale: {} 1-minute datapoints ({} metrics, {} each, PutMetricData of {} members) stored in {:.1} s ({} server CPU µs per datapoint)\n",
        r.datapoints,
        r.metrics,
        SCALE_POINTS_PER_METRIC,
        OWN_FILL_BATCH,
        r.fill_secs,
        r.server_cpu_us_per_point.map_or("-".into(), super::report::num),
    );
    out += &format!(
        "  RSS empty {}, filled {} ({}), after restart {} ({})\n",
        mib(r.rss_empty_kib),
        mib(r.rss_filled_kib),
        per(growth(r.rss_filled_kib)),
        mib(r.rss_restarted_kib),
        per(growth(r.rss_restarted_kib)),
    );
    out += &format!(
        "  data directory filled {:.1} MB ({}), after restart {:.1} MB ({}); restart to ready {}\n",
        r.disk_filled_bytes as f64 / 1e6,
        per(Some(r.disk_filled_bytes as f64)),
        r.disk_restarted_bytes as f64 / 1e6,
        per(Some(r.disk_restarted_bytes as f64)),
        r.restart_ms.map_or("-".into(), |ms| format!("{ms:.0} ms")),
    );
    if let Some(n) = r.check_points {
        out += &format!(
            "  a day of one metric read back after the restart: {n} datapoints (1440 expected)\n"
        );
    }
    for f in &r.failures {
        out += &format!("  FAILED: {f}\n");
    }
    out
}

pub fn cw_scale_json(r: &CwScaleResult) -> Value {
    json!({
        "datapoints": r.datapoints,
        "metrics": r.metrics,
        "fill_secs": r.fill_secs,
        "server_cpu_us_per_datapoint": r.server_cpu_us_per_point,
        "rss_empty_kib": r.rss_empty_kib,
        "rss_filled_kib": r.rss_filled_kib,
        "rss_restarted_kib": r.rss_restarted_kib,
        "disk_filled_bytes": r.disk_filled_bytes,
        "disk_restarted_bytes": r.disk_restarted_bytes,
        "restart_ms": r.restart_ms,
        "check_points": r.check_points,
        "failures": r.failures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_answers() {
        let f = put_form(
            "ns",
            &[Point {
                metric: "m0".into(),
                timestamp: Some(0),
                value: 1.5,
                high_resolution: true,
            }],
            Some(("Worker", "w1")),
        );
        let s = String::from_utf8_lossy(&f);
        assert!(
            s.starts_with("Action=PutMetricData&Version=2010-08-01&Namespace=ns"),
            "{s}"
        );
        assert!(
            s.contains("MetricData.member.1.Timestamp=1970-01-01T00%3A00%3A00Z"),
            "{s}"
        );
        assert!(s.contains("MetricData.member.1.StorageResolution=1"), "{s}");
        assert!(
            s.contains("MetricData.member.1.Dimensions.member.1.Value=w1"),
            "{s}"
        );
        let forms = fill_forms("ns", 0, 2, 45, 0, 60, false, 20);
        assert_eq!(forms.len(), 6);
        let xml = "<GetMetricDataResult><MetricDataResults><member><Timestamps><member>a</member><member>b</member></Timestamps><Values><member>1</member><member>2</member></Values></member></MetricDataResults><NextToken>tok</NextToken></GetMetricDataResult>";
        assert_eq!(data_values(xml), 2);
        assert_eq!(xml_text(xml, "NextToken"), Some("tok"));
        assert_eq!(xml_text(xml, "Nope"), None);
        assert_eq!(
            count("<Timestamp>x</Timestamp><Timestamp>", "<Timestamp>"),
            2
        );
        assert!((0.0..100.0).contains(&gauge(3, 12345)));
    }

    #[test]
    fn minute_boundaries() {
        // At scale 60 a cloud minute is a real second.
        assert_eq!(until_minute(59_000, 0.0, 60), Duration::from_millis(16));
        assert_eq!(until_minute(60_000, 30.0, 60), Duration::from_millis(1500));
    }
}

//! Turning results into what people paste into an issue note (Markdown
//! tables that also read well in a terminal) and into JSON for scripts.

use super::client::Endpoint;
use super::s3::DiskResult;
use super::sqs::{RunConfig, RunResult, Workload};
use super::startup::StartupResult;
use serde_json::{json, Value};

/// An endpoint with what we know of its server process.
pub struct EndpointInfo {
    pub endpoint: Endpoint,
    pub server_pid: Option<u32>,
    pub idle_rss_kib: Option<u64>,
}

/// Below this many clock ticks (0.5 s at 100 Hz) a CPU-per-op figure is
/// marked as coarse: one tick more or less moves it by over 2%.
const COARSE_TICKS: u64 = 50;

/// Left- or right-aligned column.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}

/// A Markdown table padded so that it is also aligned as plain text.
fn table(headers: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    // Three is the narrowest column whose separator (`--:`) still says how it is aligned.
    let mut widths: Vec<usize> = headers
        .iter()
        .map(|(h, _)| h.chars().count().max(3))
        .collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
    let pad = |s: &str, w: usize, a: Align| {
        let fill = " ".repeat(w.saturating_sub(s.chars().count()));
        if a == Align::Right {
            format!("{fill}{s}")
        } else {
            format!("{s}{fill}")
        }
    };
    let mut out = line(
        headers
            .iter()
            .zip(&widths)
            .map(|((h, a), w)| pad(h, *w, *a))
            .collect(),
    );
    out += &line(
        headers
            .iter()
            .zip(&widths)
            .map(|((_, a), w)| {
                if *a == Align::Right {
                    format!("{}:", "-".repeat(w - 1))
                } else {
                    "-".repeat(*w)
                }
            })
            .collect(),
    );
    for row in rows {
        out += &line(
            row.iter()
                .zip(headers.iter().zip(&widths))
                .map(|(c, ((_, a), w))| pad(c, *w, *a))
                .collect(),
        );
    }
    out
}

/// A rate or count with sensible precision.
pub fn num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Microseconds shown as milliseconds.
pub fn ms(us: u32) -> String {
    let m = us as f64 / 1000.0;
    if m >= 100.0 {
        format!("{m:.0}")
    } else if m >= 10.0 {
        format!("{m:.1}")
    } else if m >= 1.0 {
        format!("{m:.2}")
    } else {
        format!("{m:.3}")
    }
}

pub fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// `a / b` as a factor with two significant digits at least, e.g. `3.21x`,
/// `0.0034x` (a fixed two decimals would print tiny ratios as `0.00x`).
pub fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() && a > 0.0 => {
            let r = a / b;
            let decimals = if r >= 100.0 {
                0
            } else if r >= 10.0 {
                1
            } else if r >= 1.0 {
                2
            } else {
                // 0.25 -> 2 decimals, 0.034 -> 3, 0.0012 -> 4.
                ((-r.log10()).floor() as usize + 2).min(9)
            };
            format!("{r:.decimals$}x")
        }
        (Some(a), Some(b)) if b > 0.0 && a == 0.0 => "0x".to_string(),
        _ => "-".to_string(),
    }
}

fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> String) -> String {
    v.map_or_else(|| "-".to_string(), f)
}

/// The whole human report.
pub fn text(
    cfg: &RunConfig,
    endpoints: &[EndpointInfo],
    results: &[RunResult],
    startup: Option<&StartupResult>,
    startup_runs: u32,
    disk: Option<&DiskResult>,
) -> String {
    let mut out = String::new();
    // Startup alone has no endpoint results, and the endpoint settings would only mislead.
    if !results.is_empty() {
        out += &endpoint_sections(cfg, endpoints, results);
    }
    if let Some(d) = disk {
        out += &disk_section(d, results);
    }
    if let Some(s) = startup {
        out += &startup_section(s, startup_runs);
    }
    out += &problems(results, startup, disk);
    out
}

/// Whether any run moved object bytes (then MB/s columns are shown).
fn any_bytes(results: &[RunResult]) -> bool {
    results.iter().any(|r| r.bytes > 0)
}

/// `dd`'s rate, and each large PUT as a fraction of it.
fn disk_section(d: &DiskResult, results: &[RunResult]) -> String {
    let mut out = format!(
        "
dd: {} MiB written to a new file in {} in 1 MiB writes, then fsync (timed together)

",
        num(d.size as f64 / 1_048_576.0),
        d.dir
    );
    let headers = [
        ("runs ok", Align::Right),
        ("MB/s median", Align::Right),
        ("MB/s min", Align::Right),
        ("MB/s max", Align::Right),
    ];
    let row = vec![
        format!(
            "{}/{}",
            d.mb_per_sec.len(),
            d.mb_per_sec.len() + d.failures.len()
        ),
        opt(d.median(), num),
        opt(d.min(), num),
        opt(d.max(), num),
    ];
    out += &table(&headers, &[row]);
    for r in results
        .iter()
        .filter(|r| r.workload == Workload::S3PutLarge && r.failure.is_none())
    {
        if let (Some(put), Some(disk)) = (r.mb_per_sec(), d.median()) {
            out += &format!(
                "- {} s3-put-large: {} MB/s = {} of the disk's {} MB/s\n",
                r.endpoint,
                num(put),
                ratio(Some(put), Some(disk)),
                num(disk)
            );
        }
    }
    out
}

/// The settings, the endpoints, one row per run, and the ratio tables.
fn endpoint_sections(cfg: &RunConfig, endpoints: &[EndpointInfo], results: &[RunResult]) -> String {
    let mut out = String::new();
    out += &format!(
        "nimbus bench: {} ops per workload, concurrency {}, {}-byte messages (client: 1 thread, HTTP/1.1 keep-alive, SigV4)\n",
        cfg.ops, cfg.concurrency, cfg.message_size
    );
    if results.iter().any(|r| r.workload.is_s3()) {
        out += &format!(
            "S3 (path-style, UNSIGNED-PAYLOAD): {}-byte objects; s3-list: {} keys, {} pages of up to 1000; large: {} MiB objects, {} per run at concurrency {}\n",
            cfg.object_size,
            cfg.list_keys,
            cfg.list_pages,
            num(cfg.large_size as f64 / 1_048_576.0),
            cfg.large_ops,
            cfg.large_concurrency
        );
    }
    if let (Some(groups), true) = (cfg.fifo_groups, results.iter().any(|r| r.fifo)) {
        out += &format!(
            "SQS on FIFO queues (\"(fifo)\"): messages spread over {groups} message groups, each with its own deduplication id\n"
        );
    }
    for e in endpoints {
        let server = match (e.server_pid, e.idle_rss_kib) {
            (Some(pid), Some(kib)) => format!(" (server pid {pid}, idle RSS {} MiB)", mib(kib)),
            (Some(pid), None) => format!(" (server pid {pid})"),
            _ => String::new(),
        };
        out += &format!("- {}: {}{server}\n", e.endpoint.name, e.endpoint.url);
    }

    out += "\n";
    let multi = endpoints.len() > 1;
    let bytes = any_bytes(results);
    let mut headers = vec![];
    if multi {
        headers.push(("endpoint", Align::Left));
    }
    headers.extend([
        ("workload", Align::Left),
        ("ok ops", Align::Right),
        ("ops/s", Align::Right),
        ("msgs/s", Align::Right),
    ]);
    if bytes {
        headers.push(("MB/s", Align::Right));
    }
    headers.extend([
        ("p50 ms", Align::Right),
        ("p99 ms", Align::Right),
        ("errors", Align::Right),
        ("srv CPU µs/op", Align::Right),
        ("srv RSS MiB idle→peak", Align::Right),
        ("client CPU µs/op", Align::Right),
    ]);
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            let mut row = vec![];
            if multi {
                row.push(r.endpoint.clone());
            }
            if r.failure.is_some() {
                row.push(r.label());
                // The reason is listed under the table, where it has room.
                row.push("FAILED".to_string());
                row.extend(std::iter::repeat_n(
                    String::new(),
                    headers.len() - row.len(),
                ));
                return row;
            }
            let name = if r.stopped_early {
                format!("{} (time limit)", r.label())
            } else {
                r.label()
            };
            row.extend([
                name,
                r.ok_ops.to_string(),
                opt(r.ops_per_sec(), num),
                opt(r.msgs_per_sec(), num),
            ]);
            if bytes {
                row.push(opt(r.mb_per_sec(), num));
            }
            row.extend([
                opt(r.p(50.0), ms),
                opt(r.p(99.0), ms),
                r.errors.to_string(),
                opt(r.server_cpu_us_per_op(), |v| {
                    let coarse = r.server.is_some_and(|s| s.cpu_ticks < COARSE_TICKS);
                    format!("{}{}", if coarse { "~" } else { "" }, num(v))
                }),
                opt(r.server, |s| {
                    format!("{}→{}", mib(s.rss_before_kib), mib(s.rss_peak_kib))
                }),
                opt(r.client_cpu_us_per_op(), num),
            ]);
            row
        })
        .collect();
    out += &table(&headers, &rows);
    out += "\nops/s and latency count 2xx requests only; sqs-cycle ops are ReceiveMessage + DeleteMessageBatch, msgs/s are messages deleted.\n";
    if results.iter().any(|r| r.workload.is_cloudwatch()) {
        out += "CloudWatch (query protocol): msgs/s are datapoints, sent by cw-put (20 per call) or answered by cw-get-stats (1,440 per call) and cw-get-data (10,800 per call); an answer with another count is an error.\n";
    }
    if results.iter().any(|r| r.workload.is_s3()) {
        out += "s3-list ops are ListObjectsV2 pages (ops/s = pages/s), msgs/s are keys listed; MB/s counts object bytes sent or received (10^6 bytes/s).\n";
    }
    if results
        .iter()
        .any(|r| r.server.is_some_and(|s| s.cpu_ticks < COARSE_TICKS))
    {
        out += &format!(
                "~: the server used fewer than {COARSE_TICKS} CPU clock ticks in that run, so its CPU figure is coarse (raise --ops).\n"
            );
    }

    if endpoints.len() > 1 {
        let base = &endpoints[0].endpoint.name;
        for other in &endpoints[1..] {
            let other = &other.endpoint.name;
            let mut headers = vec![
                ("workload", Align::Left),
                ("ops/s", Align::Right),
                ("msgs/s", Align::Right),
            ];
            if bytes {
                headers.push(("MB/s", Align::Right));
            }
            headers.extend([
                ("p50", Align::Right),
                ("p99", Align::Right),
                ("srv CPU/op", Align::Right),
                ("srv RSS peak", Align::Right),
            ]);
            let mut rows = vec![];
            for a in results
                .iter()
                .filter(|r| &r.endpoint == base && r.failure.is_none())
            {
                let Some(b) = results.iter().find(|r| {
                    &r.endpoint == other
                        && r.workload == a.workload
                        && r.fifo == a.fifo
                        && r.failure.is_none()
                }) else {
                    continue;
                };
                let p = |r: &RunResult, pct| r.p(pct).map(f64::from);
                let mut row = vec![
                    a.label(),
                    ratio(a.ops_per_sec(), b.ops_per_sec()),
                    ratio(a.msgs_per_sec(), b.msgs_per_sec()),
                ];
                if bytes {
                    row.push(ratio(a.mb_per_sec(), b.mb_per_sec()));
                }
                row.extend([
                    ratio(p(a, 50.0), p(b, 50.0)),
                    ratio(p(a, 99.0), p(b, 99.0)),
                    ratio(a.server_cpu_us_per_op(), b.server_cpu_us_per_op()),
                    ratio(
                        a.server.map(|s| s.rss_peak_kib as f64),
                        b.server.map(|s| s.rss_peak_kib as f64),
                    ),
                ]);
                rows.push(row);
            }
            if rows.is_empty() {
                out += &format!("\nratios {base}/{other}: no workload ran on both\n");
                continue;
            }
            out += &format!(
                "\nratios {base}/{other} (throughput: above 1x means {base} is faster; latency and CPU: below 1x means {base} is better)\n\n"
            );
            out += &table(&headers, &rows);
        }
    }

    out
}

/// Spawn-to-healthy times and idle memory of `nimbus serve`.
fn startup_section(s: &StartupResult, startup_runs: u32) -> String {
    let mut out = String::new();
    out += &format!(
        "\nstartup: `{} serve --ephemeral`, spawn to first 2xx GET /_nimbus/health\n\n",
        s.binary
    );
    let headers = [
        ("runs ok", Align::Right),
        ("p50 ms", Align::Right),
        ("p99 ms", Align::Right),
        ("min ms", Align::Right),
        ("max ms", Align::Right),
        ("idle RSS MiB (median)", Align::Right),
    ];
    let row = vec![
        format!("{}/{}", s.times_us.len(), startup_runs.max(1)),
        opt(s.p(50.0), ms),
        opt(s.p(99.0), ms),
        opt(s.times_us.first().copied(), ms),
        opt(s.times_us.last().copied(), ms),
        opt(s.median_rss_kib(), mib),
    ];
    out += &table(&headers, &[row]);
    out
}

/// The first errors of each run, and why runs failed.
fn problems(
    results: &[RunResult],
    startup: Option<&StartupResult>,
    disk: Option<&DiskResult>,
) -> String {
    let mut problems = String::new();
    for r in results {
        if let Some(why) = &r.failure {
            problems += &format!("- {} {}: {why}\n", r.endpoint, r.label());
        }
        for e in &r.first_errors {
            problems += &format!("- {} {}: {e}\n", r.endpoint, r.label());
        }
    }
    if let Some(s) = startup {
        for f in &s.failures {
            problems += &format!("- startup: {f}\n");
        }
    }
    if let Some(d) = disk {
        for f in &d.failures {
            problems += &format!("- dd: {f}\n");
        }
    }
    if problems.is_empty() {
        problems
    } else {
        format!("\nerrors (first few per run):\n{problems}")
    }
}

/// The same figures for scripts.
pub fn json(
    cfg: &RunConfig,
    endpoints: &[EndpointInfo],
    results: &[RunResult],
    startup: Option<&StartupResult>,
    disk: Option<&DiskResult>,
) -> Value {
    let disk_mb = disk.and_then(DiskResult::median);
    let results_json: Vec<Value> = results
        .iter()
        .map(|r| {
            json!({
                "endpoint": r.endpoint,
                "workload": r.workload.name(),
                "fifo": r.fifo,
                "failure": r.failure,
                "ok_ops": r.ok_ops,
                "messages": r.messages,
                "bytes": r.bytes,
                "errors": r.errors,
                "seconds": r.secs(),
                "ops_per_sec": r.ops_per_sec(),
                "msgs_per_sec": r.msgs_per_sec(),
                "mb_per_sec": r.mb_per_sec(),
                "fraction_of_disk": match (r.workload, r.mb_per_sec(), disk_mb) {
                    (Workload::S3PutLarge, Some(put), Some(d)) if d > 0.0 => Some(put / d),
                    _ => None,
                },
                "p50_us": r.p(50.0),
                "p99_us": r.p(99.0),
                "max_us": r.latencies_us.last(),
                "server_cpu_us_per_op": r.server_cpu_us_per_op(),
                "server_cpu_us_per_msg": r.server_cpu_us_per_msg(),
                "server_cpu_ticks": r.server.map(|s| s.cpu_ticks),
                "server_rss_kib_idle": r.server.map(|s| s.rss_before_kib),
                "server_rss_kib_peak": r.server.map(|s| s.rss_peak_kib),
                "server_rss_kib_after": r.server.map(|s| s.rss_after_kib),
                "client_cpu_us_per_op": r.client_cpu_us_per_op(),
                "stopped_early": r.stopped_early,
                "empty_receives": r.empty_receives,
                "first_errors": r.first_errors,
            })
        })
        .collect();
    let mut ratios = vec![];
    if let Some((base, others)) = endpoints.split_first() {
        for other in others {
            for a in results
                .iter()
                .filter(|r| r.endpoint == base.endpoint.name && r.failure.is_none())
            {
                let Some(b) = results.iter().find(|r| {
                    r.endpoint == other.endpoint.name
                        && r.workload == a.workload
                        && r.fifo == a.fifo
                        && r.failure.is_none()
                }) else {
                    continue;
                };
                let div = |x: Option<f64>, y: Option<f64>| match (x, y) {
                    (Some(x), Some(y)) if y > 0.0 => Some(x / y),
                    _ => None,
                };
                let p = |r: &RunResult, pct| r.p(pct).map(f64::from);
                ratios.push(json!({
                    "endpoint": base.endpoint.name,
                    "baseline": other.endpoint.name,
                    "workload": a.workload.name(),
                    "fifo": a.fifo,
                    "ops_per_sec": div(a.ops_per_sec(), b.ops_per_sec()),
                    "msgs_per_sec": div(a.msgs_per_sec(), b.msgs_per_sec()),
                    "mb_per_sec": div(a.mb_per_sec(), b.mb_per_sec()),
                    "p50": div(p(a, 50.0), p(b, 50.0)),
                    "p99": div(p(a, 99.0), p(b, 99.0)),
                    "server_cpu_per_op": div(a.server_cpu_us_per_op(), b.server_cpu_us_per_op()),
                }));
            }
        }
    }
    json!({
        "config": {
            "ops": cfg.ops,
            "concurrency": cfg.concurrency,
            "message_size": cfg.message_size,
            "object_size": cfg.object_size,
            "list_keys": cfg.list_keys,
            "list_pages": cfg.list_pages,
            "list_bucket": cfg.list_bucket,
            "large_size": cfg.large_size,
            "large_ops": cfg.large_ops,
            "large_concurrency": cfg.large_concurrency,
            "sqs_fifo_groups": cfg.fifo_groups,
        },
        "endpoints": endpoints.iter().map(|e| json!({
            "name": e.endpoint.name,
            "url": e.endpoint.url,
            "server_pid": e.server_pid,
            "idle_rss_kib": e.idle_rss_kib,
        })).collect::<Vec<_>>(),
        "results": results_json,
        "ratios": ratios,
        "startup": startup.map(|s| json!({
            "binary": s.binary,
            "runs_ok": s.times_us.len(),
            "p50_us": s.p(50.0),
            "p99_us": s.p(99.0),
            "times_us": s.times_us,
            "idle_rss_kib_median": s.median_rss_kib(),
            "failures": s.failures,
        })),
        "disk": disk.map(|d| json!({
            "dir": d.dir,
            "size": d.size,
            "mb_per_sec_runs": d.mb_per_sec,
            "mb_per_sec_median": d.median(),
            "failures": d.failures,
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqs::ServerFigures;
    use std::time::Duration;

    fn result(endpoint: &str, ops_per_sec: u64, p50: u32, cpu: f64) -> RunResult {
        RunResult {
            endpoint: endpoint.into(),
            workload: Workload::SqsSend,
            ok_ops: ops_per_sec,
            messages: ops_per_sec,
            bytes: 0,
            errors: 0,
            elapsed: Duration::from_secs(1),
            latencies_us: vec![p50; 10],
            server: Some(ServerFigures {
                cpu_micros: cpu * ops_per_sec as f64,
                cpu_ticks: 100,
                rss_before_kib: 10240,
                rss_peak_kib: 20480,
                rss_after_kib: 20480,
            }),
            client_cpu_micros: 1000,
            first_errors: vec![],
            failure: None,
            stopped_early: false,
            empty_receives: 0,
            fifo: false,
        }
    }

    #[test]
    fn formatting() {
        assert_eq!(num(12345.6), "12346");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(1.234), "1.23");
        assert_eq!(ms(250), "0.250");
        assert_eq!(ms(12_345), "12.3");
        assert_eq!(mib(1536), "1.5");
        assert_eq!(ratio(Some(10.0), Some(4.0)), "2.50x");
        assert_eq!(ratio(Some(10.0), Some(0.0)), "-");
        assert_eq!(ratio(Some(1.0), Some(4.0)), "0.25x");
        assert_eq!(ratio(Some(0.34), Some(10.0)), "0.034x");
        assert_eq!(ratio(Some(1.2), Some(1000.0)), "0.0012x");
        assert_eq!(ratio(Some(2276.0), Some(1.0)), "2276x");
        assert_eq!(ratio(Some(0.0), Some(1.0)), "0x");
        assert_eq!(ratio(None, Some(1.0)), "-");
    }

    #[test]
    fn table_is_aligned_markdown() {
        let t = table(
            &[("a", Align::Left), ("bb", Align::Right)],
            &[vec!["xyz".into(), "1".into()]],
        );
        assert_eq!(t, "| a   |  bb |\n| --- | --: |\n| xyz |   1 |\n");
    }

    #[test]
    fn comparison_report() {
        let cfg = RunConfig {
            ops: 100,
            concurrency: 4,
            message_size: 256,
            request_timeout: Duration::from_secs(1),
            max_duration: Duration::from_secs(1),
            object_size: 1024,
            list_keys: 1000,
            list_pages: 10,
            list_bucket: None,
            large_size: 1 << 20,
            large_ops: 2,
            large_concurrency: 1,
            disk_dir: std::env::temp_dir(),
            fifo_groups: None,
        };
        let ep = |n: &str, u: &str| EndpointInfo {
            endpoint: Endpoint::parse(&format!("{n}={u}")).unwrap(),
            server_pid: Some(1),
            idle_rss_kib: Some(2048),
        };
        let eps = [
            ep("nimbus", "http://127.0.0.1:4566"),
            ep("moto", "http://127.0.0.1:4599"),
        ];
        let results = [
            result("nimbus", 8000, 1000, 100.0),
            result("moto", 2000, 4000, 400.0),
        ];
        let t = text(&cfg, &eps, &results, None, 0, None);
        assert!(t.contains("ratios nimbus/moto"), "{t}");
        assert!(
            t.contains("| sqs-send | 4.00x |  4.00x | 0.25x | 0.25x |      0.25x |        1.00x |"),
            "{t}"
        );
        let j = json(&cfg, &eps, &results, None, None);
        assert_eq!(j["ratios"][0]["ops_per_sec"], 4.0);
        assert_eq!(j["results"][1]["p50_us"], 4000);
        assert_eq!(j["results"][1]["fifo"], false);
        assert!(!t.contains("fifo"), "{t}");

        // FIFO runs: labelled in the rows and the ratios, said in the header and the JSON.
        let fifo_cfg = RunConfig {
            fifo_groups: Some(100),
            ..cfg.clone()
        };
        let mut fifo = results.clone();
        for r in &mut fifo {
            r.fifo = true;
        }
        let t = text(&fifo_cfg, &eps, &fifo, None, 0, None);
        assert!(t.contains("SQS on FIFO queues"), "{t}");
        assert!(t.contains("100 message groups"), "{t}");
        assert!(t.contains("| nimbus   | sqs-send (fifo) |"), "{t}");
        assert!(t.contains("| sqs-send (fifo) | 4.00x |"), "{t}");
        let j = json(&fifo_cfg, &eps, &fifo, None, None);
        assert_eq!(j["results"][0]["fifo"], true);
        assert_eq!(j["results"][0]["workload"], "sqs-send");
        assert_eq!(j["ratios"][0]["fifo"], true);
        assert_eq!(j["config"]["sqs_fifo_groups"], 100);

        // Large PUTs: MB/s columns appear, and the disk section relates them to dd.
        let mut large = results.clone();
        for r in &mut large {
            r.workload = Workload::S3PutLarge;
            r.bytes = r.ok_ops * 1_000_000;
        }
        let disk = DiskResult {
            dir: "/data".into(),
            size: 64 << 20,
            mb_per_sec: vec![900.0, 1000.0, 1100.0],
            failures: vec![],
        };
        let t = text(&cfg, &eps, &large, None, 0, Some(&disk));
        assert!(t.contains("| MB/s |"), "{t}");
        assert!(
            t.contains("- nimbus s3-put-large: 8000 MB/s = 8.00x of the disk's 1000 MB/s"),
            "{t}"
        );
        let j = json(&cfg, &eps, &large, None, Some(&disk));
        assert_eq!(j["results"][1]["fraction_of_disk"], 2.0);
        assert_eq!(j["ratios"][0]["mb_per_sec"], 4.0);
        assert_eq!(j["disk"]["mb_per_sec_median"], 1000.0);
    }
}

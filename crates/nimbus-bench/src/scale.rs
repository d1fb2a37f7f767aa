//! The `s3-scale` and `sqs-backlog` workloads: what a large amount of stored
//! state costs a nimbus. The bench starts a nimbus of its own, times the small
//! operations on it while it is empty (s3-get, s3-list pages of 1000 and
//! sqs-cycle), fills it (`--scale-objects` small objects and/or
//! `--backlog-messages` queued messages), reads its RSS and data directory,
//! restarts it (restart to ready, RSS after), times the first use of the
//! deep queue (which reads its messages), times the same operations again and
//! reads the RSS once more (the working set's cost). The filled run is compared with the empty one in the usual ratio
//! table (endpoints `filled` and `empty`, one server). With `--sqs-fifo` the
//! backlog is a FIFO queue (filled with SendMessageBatch, the messages spread
//! over the message groups) and both sqs-cycle runs use FIFO queues.

use super::client::{self, Endpoint, HttpClient, S3Client, Signer};
use super::measure;
use super::own_server::Server;
use super::report::EndpointInfo;
use super::sqs::{self, RunConfig, RunResult, Target, Workload};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const BUCKET: &str = "bench-scale";
const QUEUE: &str = "bench-backlog";
/// Keys in the empty case's listed bucket: one page.
const EMPTY_LIST_KEYS: u64 = 1000;

#[derive(Debug, Clone)]
pub struct ScaleConfig {
    /// Objects to fill (0: s3-scale not selected).
    pub objects: u64,
    /// Messages to queue (0: sqs-backlog not selected).
    pub messages: u64,
    pub dir: PathBuf,
}

#[derive(Default)]
pub struct ScaleResult {
    pub endpoints: Vec<EndpointInfo>,
    pub results: Vec<RunResult>,
    pub objects: u64,
    pub messages: u64,
    /// The backlog's message groups when it is a FIFO queue (`--sqs-fifo`).
    pub fifo_groups: Option<u64>,
    pub fill_secs: f64,
    pub rss_empty_kib: Option<u64>,
    pub rss_filled_kib: Option<u64>,
    pub rss_restarted_kib: Option<u64>,
    /// After the filled run: the store's cache warm, the deep queue in use.
    pub rss_used_kib: Option<u64>,
    /// The first request to the deep queue after the restart.
    pub queue_first_use_ms: Option<f64>,
    pub data_dir_bytes: u64,
    pub restart_ms: Option<f64>,
    pub failures: Vec<String>,
}

pub async fn run(
    binary: Option<PathBuf>,
    cfg: &RunConfig,
    scale: &ScaleConfig,
    signer: &Signer,
) -> ScaleResult {
    let mut result = ScaleResult {
        objects: scale.objects,
        messages: scale.messages,
        fifo_groups: cfg.fifo_groups.filter(|_| scale.messages > 0),
        ..ScaleResult::default()
    };
    let (_dir, mut server) =
        match Server::start_fresh(binary, &scale.dir, "nimbus-bench-scale-", "empty").await {
            Ok(started) => started,
            Err(e) => {
                result.failures.push(e);
                return result;
            }
        };
    if let Err(e) = measure_all(&mut server, cfg, scale, signer, &mut result).await {
        result.failures.push(format!("{e}{}", server.log_tail()));
    }
    server.stop().await;
    result
}

fn rss_kib(pid: u32) -> Option<u64> {
    measure::sample_server(pid).ok().map(|s| s.rss_kib)
}

/// The timed workloads of one phase.
async fn timed_phase(
    endpoint: &Endpoint,
    signer: &Signer,
    cfg: &RunConfig,
    scale: &ScaleConfig,
    pid: u32,
    filled: bool,
) -> Vec<RunResult> {
    let http: HttpClient = client::http_client(cfg.concurrency);
    let s3_http: S3Client = client::http_client(cfg.concurrency);
    let target = Target {
        endpoint,
        signer,
        client: &http,
        s3_client: &s3_http,
        server_pid: Some(pid),
    };
    let mut out = Vec::new();
    let mut s3_state = super::s3::EndpointState::default();
    if scale.objects > 0 {
        let mut list_cfg = cfg.clone();
        if filled {
            // The filled bucket itself, all of it present already.
            list_cfg.list_bucket = Some(BUCKET.to_string());
            list_cfg.list_keys = scale.objects;
        } else {
            list_cfg.list_bucket = None;
            list_cfg.list_keys = EMPTY_LIST_KEYS;
        }
        for w in [Workload::S3Get, Workload::S3List] {
            eprint!("\n  {} {}: ", endpoint.name, w.name());
            let r = super::s3::run(&target, w, &list_cfg, &mut s3_state).await;
            eprint!("{}", super::progress_line(&r));
            out.push(r);
        }
    }
    if scale.messages > 0 {
        eprint!(
            "\n  {} {}: ",
            endpoint.name,
            sqs::label(Workload::SqsCycle, cfg.fifo_groups.is_some())
        );
        let r = sqs::run(&target, Workload::SqsCycle, cfg).await;
        eprint!("{}", super::progress_line(&r));
        out.push(r);
    }
    out
}

async fn measure_all(
    server: &mut Server,
    cfg: &RunConfig,
    scale: &ScaleConfig,
    signer: &Signer,
    result: &mut ScaleResult,
) -> Result<(), String> {
    let pid = server.pid();
    result.rss_empty_kib = rss_kib(pid);
    let empty = server.endpoint.clone();
    let filled = Endpoint::parse(&format!("filled={}", empty.url))?;
    result.endpoints = vec![
        EndpointInfo {
            endpoint: filled.clone(),
            server_pid: None,
            idle_rss_kib: None,
        },
        EndpointInfo {
            endpoint: empty.clone(),
            server_pid: None,
            idle_rss_kib: result.rss_empty_kib,
        },
    ];
    let mut empty_results = timed_phase(&empty, signer, cfg, scale, pid, false).await;

    let started = Instant::now();
    let queue_url = fill(&empty, signer, cfg, scale).await?;
    result.fill_secs = started.elapsed().as_secs_f64();
    // Let the store's checkpoints of the fill settle before the readings.
    tokio::time::sleep(Duration::from_secs(1)).await;
    result.rss_filled_kib = rss_kib(pid);
    result.data_dir_bytes = super::state_save::disk_usage(&server.data);

    let restart = server.restart().await?;
    result.restart_ms = Some(restart.as_secs_f64() * 1000.0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = server.pid();
    result.rss_restarted_kib = rss_kib(pid);
    result.endpoints[0].idle_rss_kib = result.rss_restarted_kib;
    if let Some(url) = queue_url {
        result.queue_first_use_ms = Some(first_use(&filled, signer, cfg, &url).await?);
    }

    let mut filled_results = timed_phase(&filled, signer, cfg, scale, pid, true).await;
    result.rss_used_kib = rss_kib(pid);
    result.results.append(&mut filled_results);
    result.results.append(&mut empty_results);
    Ok(())
}

fn clients(connections: usize) -> (HttpClient, S3Client) {
    (
        client::http_client(connections),
        client::http_client(connections),
    )
}

fn target<'a>(
    endpoint: &'a Endpoint,
    signer: &'a Signer,
    http: &'a HttpClient,
    s3_http: &'a S3Client,
) -> Target<'a> {
    Target {
        endpoint,
        signer,
        client: http,
        s3_client: s3_http,
        server_pid: None,
    }
}

/// Times a GetQueueAttributes of the deep queue: its first use after a start.
async fn first_use(
    endpoint: &Endpoint,
    signer: &Signer,
    cfg: &RunConfig,
    url: &str,
) -> Result<f64, String> {
    let (http, s3_http) = clients(1);
    let target = target(endpoint, signer, &http, &s3_http);
    let started = Instant::now();
    target
        .call_json(
            "GetQueueAttributes",
            &json!({"QueueUrl": url, "AttributeNames": ["ApproximateNumberOfMessages"]}),
            cfg.request_timeout,
        )
        .await?;
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// Stores the objects and queues the messages; returns the queue's URL.
async fn fill(
    endpoint: &Endpoint,
    signer: &Signer,
    cfg: &RunConfig,
    scale: &ScaleConfig,
) -> Result<Option<String>, String> {
    let (http, s3_http) = clients(cfg.concurrency);
    let target = target(endpoint, signer, &http, &s3_http);
    if scale.objects > 0 {
        eprint!("\n  filling {} objects", scale.objects);
        super::s3::fill_bucket(
            &target,
            BUCKET,
            scale.objects,
            cfg.object_size,
            cfg.concurrency,
            cfg.request_timeout,
        )
        .await?;
    }
    if scale.messages > 0 {
        eprint!("\n  queueing {} messages", scale.messages);
        return sqs::send_messages(
            &target,
            &sqs::queue_name(QUEUE, cfg.fifo_groups.is_some()),
            scale.messages,
            cfg.message_size,
            cfg.concurrency,
            cfg.request_timeout,
            cfg.fifo_groups,
        )
        .await
        .map(Some);
    }
    Ok(None)
}

pub fn text(r: &ScaleResult) -> String {
    let mib = |k: Option<u64>| k.map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    let stored = (r.objects + r.messages).max(1);
    let per_item = match (r.rss_empty_kib, r.rss_restarted_kib) {
        (Some(e), Some(f)) => format!(
            "{:.0} bytes",
            (f.saturating_sub(e) as f64 * 1024.0) / stored as f64
        ),
        _ => "-".into(),
    };
    let queue = match r.fifo_groups {
        Some(g) => format!(" (FIFO queue, {g} message groups)"),
        None => String::new(),
    };
    let mut out = format!(
        "\nscale: {} objects, {} queued messages{queue}, filled in {:.1} s; data directory {:.1} MB\n",
        r.objects,
        r.messages,
        r.fill_secs,
        r.data_dir_bytes as f64 / 1e6
    );
    out += &format!(
        "  RSS empty {}, filled {}, after restart {} ({} per stored item after restart)\n",
        mib(r.rss_empty_kib),
        mib(r.rss_filled_kib),
        mib(r.rss_restarted_kib),
        per_item
    );
    let used = match (r.rss_empty_kib, r.rss_used_kib) {
        (Some(e), Some(u)) => format!(
            "{} ({:.0} bytes per stored item)",
            mib(Some(u)),
            (u.saturating_sub(e) as f64 * 1024.0) / stored as f64
        ),
        _ => "-".into(),
    };
    out += &format!("  RSS after the filled run {used}\n");
    out += &format!(
        "  restart to ready {}",
        r.restart_ms.map_or("-".into(), |ms| format!("{ms:.0} ms"))
    );
    if let Some(ms) = r.queue_first_use_ms {
        out += &format!("; first use of the deep queue {ms:.0} ms");
    }
    out += "\n";
    for f in &r.failures {
        out += &format!("  FAILED: {f}\n");
    }
    out
}

pub fn json(r: &ScaleResult) -> Value {
    json!({
        "objects": r.objects,
        "messages": r.messages,
        "fifo_groups": r.fifo_groups,
        "fill_secs": r.fill_secs,
        "rss_empty_kib": r.rss_empty_kib,
        "rss_filled_kib": r.rss_filled_kib,
        "rss_restarted_kib": r.rss_restarted_kib,
        "rss_used_kib": r.rss_used_kib,
        "queue_first_use_ms": r.queue_first_use_ms,
        "data_dir_bytes": r.data_dir_bytes,
        "restart_ms": r.restart_ms,
        "failures": r.failures,
    })
}

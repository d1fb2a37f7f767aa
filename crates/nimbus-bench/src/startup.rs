//! The `startup` workload: how fast `nimbus serve --ephemeral` answers its
//! first health check, and how much memory it holds once idle.
//!
//! It spawns a nimbus binary (this one by default) on a free loopback port,
//! polls `GET /_nimbus/health` every millisecond from the moment of spawn, and
//! stops the server with SIGTERM (so that `--ephemeral` can remove its
//! temporary directory) before the next round.

use super::client::{self, HttpClient};
use super::measure;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long one start may take before it counts as failed.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Pause between the first healthy answer and the idle RSS reading, so that
/// the reading is of a settled server rather than one mid-initialisation.
const SETTLE: Duration = Duration::from_millis(300);

#[derive(Debug, Clone)]
pub struct StartupResult {
    pub binary: String,
    /// Spawn-to-healthy times, µs, ascending.
    pub times_us: Vec<u32>,
    /// Idle RSS of each started server, KiB, ascending.
    pub idle_rss_kib: Vec<u64>,
    pub failures: Vec<String>,
}

impl StartupResult {
    pub fn p(&self, pct: f64) -> Option<u32> {
        measure::percentile(&self.times_us, pct)
    }

    pub fn median_rss_kib(&self) -> Option<u64> {
        self.idle_rss_kib
            .get(self.idle_rss_kib.len().checked_sub(1)? / 2)
            .copied()
    }
}

pub async fn run(binary: Option<PathBuf>, runs: u32) -> StartupResult {
    let binary = match binary.map_or_else(std::env::current_exe, Ok) {
        Ok(b) => b,
        Err(e) => {
            return StartupResult {
                binary: String::new(),
                times_us: vec![],
                idle_rss_kib: vec![],
                failures: vec![format!("cannot find this binary: {e}")],
            }
        }
    };
    let mut result = StartupResult {
        binary: binary.display().to_string(),
        times_us: Vec::new(),
        idle_rss_kib: Vec::new(),
        failures: Vec::new(),
    };
    // No keep-alive: each poll must test the new server, never a pooled socket.
    let http = client::http_client(0);
    for _ in 0..runs.max(1) {
        match one_start(&binary, &http).await {
            Ok((t, rss)) => {
                result
                    .times_us
                    .push(t.as_micros().min(u32::MAX as u128) as u32);
                result.idle_rss_kib.extend(rss);
            }
            Err(e) => {
                result.failures.push(e);
                // A binary that cannot start will not start on the next try either.
                if result.failures.len() >= 3 && result.times_us.is_empty() {
                    break;
                }
            }
        }
    }
    result.times_us.sort_unstable();
    result.idle_rss_kib.sort_unstable();
    result
}

/// A loopback port that is free right now (the OS picks it).
pub(crate) fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("finding a free port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

async fn one_start(binary: &PathBuf, http: &HttpClient) -> Result<(Duration, Option<u64>), String> {
    let port = free_port()?;
    let authority = format!("127.0.0.1:{port}");
    // The server's output goes to a file, not a pipe: a full pipe would block
    // a chatty server, and the file lets us show why a start failed.
    let mut log = tempfile::tempfile().map_err(|e| format!("temporary log file: {e}"))?;
    let log_for_child = log
        .try_clone()
        .map_err(|e| format!("temporary log file: {e}"))?;
    let log_for_child2 = log
        .try_clone()
        .map_err(|e| format!("temporary log file: {e}"))?;
    let started = Instant::now();
    let mut child = Command::new(binary)
        .args(["serve", "--ephemeral", "--port", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_for_child))
        .stderr(Stdio::from(log_for_child2))
        .spawn()
        .map_err(|e| format!("spawning {}: {e}", binary.display()))?;

    let outcome = wait_healthy(&mut child, http, &authority, started, START_TIMEOUT).await;
    let outcome = match outcome {
        Ok(elapsed) => {
            tokio::time::sleep(SETTLE).await;
            let rss = measure::sample_server(child.id()).ok().map(|s| s.rss_kib);
            Ok((elapsed, rss))
        }
        Err(e) => Err(e),
    };
    stop(&mut child).await;
    outcome.map_err(|e| format!("{e}{}", log_tail(&mut log)))
}

pub(crate) async fn wait_healthy(
    child: &mut Child,
    http: &HttpClient,
    authority: &str,
    started: Instant,
    timeout: Duration,
) -> Result<Duration, String> {
    let mut last = String::from("no answer yet");
    loop {
        if started.elapsed() > timeout {
            return Err(format!(
                "not healthy within {} s (last: {last})",
                timeout.as_secs()
            ));
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("server exited before answering: {status}"));
        }
        let req = client::get_request(authority, "/_nimbus/health")?;
        match client::send(http, req, Duration::from_secs(2)).await {
            Ok(r) if r.ok() => return Ok(started.elapsed()),
            Ok(r) => last = format!("HTTP {}: {}", r.status, r.body_excerpt()),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// SIGTERM, then SIGKILL if the server has not exited within 5 s.
pub(crate) async fn stop(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) with a pid we spawned and have not reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The last lines the server printed, to explain a failed start.
pub(crate) fn log_tail(log: &mut std::fs::File) -> String {
    let mut text = String::new();
    if log.seek(SeekFrom::Start(0)).is_err() || log.read_to_string(&mut text).is_err() {
        return String::new();
    }
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = lines[lines.len().saturating_sub(5)..].join("\n    ");
    format!("\n    server output:\n    {tail}")
}

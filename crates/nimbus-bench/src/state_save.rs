//! The `state-save` workload: how long `nimbus state save` and `nimbus state
//! load` take on a filled cloud, against `tar` writing and unpacking the same
//! data directory (the physical limit: one sequential pass over the same bytes).
//!
//! It starts a nimbus of its own on a temporary data directory (process
//! instance driver, so that it runs anywhere), fills it untimed (small objects,
//! queued messages, stopped instances), and then alternates the timed rounds:
//! `tar -cf` of the data directory and `nimbus state save`, then `tar -xf` into
//! a fresh directory and `nimbus state load` (which includes nimbus's restart
//! in place on the loaded state). After the loads it checks that the objects
//! and messages are all there, so that a fast but lossy load cannot pass.

use super::client::{self, Endpoint, HttpClient, S3Client, Signer};
use super::own_server::Server;
use super::sqs::{self, Target};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BUCKET: &str = "bench-state-save";
const QUEUE: &str = "bench-state-save";
/// How long instances may take to reach a state or finish their user data.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// What to fill the cloud with.
#[derive(Debug, Clone)]
pub struct StateSaveConfig {
    pub objects: u64,
    pub object_size: usize,
    pub messages: u64,
    pub message_size: usize,
    pub instances: usize,
    pub rounds: u32,
    pub concurrency: usize,
    pub request_timeout: Duration,
    /// Where the temporary data directory and archives go.
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Default)]
pub struct StateSaveResult {
    pub objects: u64,
    pub messages: u64,
    pub instances: usize,
    pub fill_secs: f64,
    /// Bytes the data directory holds on disk (allocated blocks).
    pub data_dir_bytes: u64,
    /// Per round, seconds.
    pub save_secs: Vec<f64>,
    pub tar_create_secs: Vec<f64>,
    pub load_secs: Vec<f64>,
    pub tar_extract_secs: Vec<f64>,
    /// Of each load, the part before the restart, as the server logs it
    /// (receiving, checking and staging the archive).
    pub load_check_secs: Vec<f64>,
    pub archive_bytes: u64,
    pub tar_bytes: u64,
    pub failures: Vec<String>,
}

fn median(v: &[f64]) -> Option<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len().checked_sub(1)? / 2).copied()
}

impl StateSaveResult {
    pub fn save_ratio(&self) -> Option<f64> {
        Some(median(&self.save_secs)? / median(&self.tar_create_secs)?)
    }

    pub fn load_ratio(&self) -> Option<f64> {
        Some(median(&self.load_secs)? / median(&self.tar_extract_secs)?)
    }
}

pub async fn run(
    binary: Option<PathBuf>,
    cfg: &StateSaveConfig,
    signer: &Signer,
) -> StateSaveResult {
    let mut result = StateSaveResult {
        objects: cfg.objects,
        messages: cfg.messages,
        instances: cfg.instances,
        ..StateSaveResult::default()
    };
    let (dir, mut server) =
        match Server::start_fresh(binary, &cfg.dir, "nimbus-bench-state-", "nimbus").await {
            Ok(started) => started,
            Err(e) => {
                result.failures.push(e);
                return result;
            }
        };
    let binary = server.binary.clone();
    if let Err(e) = measure_all(&binary, &server, dir.path(), cfg, signer, &mut result).await {
        result.failures.push(format!("{e}{}", server.log_tail()));
    }
    server.stop().await;
    result
}

async fn measure_all(
    binary: &Path,
    server: &Server,
    dir: &Path,
    cfg: &StateSaveConfig,
    signer: &Signer,
    result: &mut StateSaveResult,
) -> Result<(), String> {
    let http: HttpClient = client::http_client(cfg.concurrency);
    let s3_http: S3Client = client::http_client(cfg.concurrency);
    let target = Target {
        endpoint: &server.endpoint,
        signer,
        client: &http,
        s3_client: &s3_http,
        server_pid: None,
    };
    let filled = Instant::now();
    eprint!("\n  filling: {} objects", cfg.objects);
    super::s3::fill_bucket(
        &target,
        BUCKET,
        cfg.objects,
        cfg.object_size,
        cfg.concurrency,
        cfg.request_timeout,
    )
    .await?;
    eprint!(", {} messages", cfg.messages);
    let queue_url = sqs::send_messages(
        &target,
        QUEUE,
        cfg.messages,
        cfg.message_size,
        cfg.concurrency,
        cfg.request_timeout,
        // state-save measures the store; a standard queue is its common case.
        None,
    )
    .await?;
    eprint!(", {} stopped instances", cfg.instances);
    fill_instances(&server.endpoint, signer, &http, cfg.instances).await?;
    result.fill_secs = filled.elapsed().as_secs_f64();
    // Let the store's checkpoint of the fill finish, so that both sides read a settled directory.
    tokio::time::sleep(Duration::from_secs(1)).await;
    result.data_dir_bytes = disk_usage(&server.data);
    eprint!(" in {:.1} s", result.fill_secs);

    let archive = dir.join("state.tar");
    let tarball = dir.join("tar.tar");
    let url = server.endpoint.url.clone();
    for round in 0..cfg.rounds.max(1) {
        eprint!("\n  round {}: save", round + 1);
        result.tar_create_secs.push(timed_tar(
            Command::new("tar")
                .arg("--warning=no-file-changed")
                .arg("-cf")
                .arg(&tarball)
                .arg("-C")
                .arg(&server.data)
                .arg("."),
        )?);
        result.save_secs.push(timed(
            Command::new(binary)
                .args(["state", "save"])
                .arg(&archive)
                .args(["--endpoint", &url]),
        )?);
        eprint!(", load");
        let unpacked = dir.join("unpacked");
        std::fs::create_dir(&unpacked).map_err(|e| format!("{}: {e}", unpacked.display()))?;
        result.tar_extract_secs.push(timed(
            Command::new("tar")
                .arg("-xf")
                .arg(&tarball)
                .arg("-C")
                .arg(&unpacked),
        )?);
        let _ = std::fs::remove_dir_all(&unpacked);
        result.load_secs.push(timed(
            Command::new(binary)
                .args(["state", "load"])
                .arg(&archive)
                .args(["--endpoint", &url]),
        )?);
    }
    result.load_check_secs = logged_load_checks(&server.log);
    result.archive_bytes = std::fs::metadata(&archive).map_or(0, |m| m.len());
    result.tar_bytes = std::fs::metadata(&tarball).map_or(0, |m| m.len());
    // New pools: the loads restarted the server under every pooled connection.
    let (http, s3_http): (HttpClient, S3Client) = (client::http_client(0), client::http_client(0));
    let target = Target {
        client: &http,
        s3_client: &s3_http,
        ..target
    };
    verify(&target, cfg, &queue_url).await
}

/// The seconds of each `state load checked: ... in N ms` line of the server's log.
fn logged_load_checks(log: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("state load checked:"))
        .filter_map(|l| {
            let ms = l.split(" in ").last()?.split(" ms").next()?;
            ms.trim().parse::<f64>().ok().map(|ms| ms / 1000.0)
        })
        .collect()
}

/// Runs a command to its end; its wall time in seconds, or why it failed.
fn timed(cmd: &mut Command) -> Result<f64, String> {
    timed_allowing(cmd, &[0])
}

/// `tar` of a live data directory: GNU tar exits 1 when a file changed while
/// it read it (the store's background checkpoint), which still times the pass.
fn timed_tar(cmd: &mut Command) -> Result<f64, String> {
    timed_allowing(cmd, &[0, 1])
}

fn timed_allowing(cmd: &mut Command, ok_codes: &[i32]) -> Result<f64, String> {
    let started = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let secs = started.elapsed().as_secs_f64();
    if !out.status.code().is_some_and(|c| ok_codes.contains(&c)) {
        return Err(format!(
            "{cmd:?}: {}: {}",
            out.status,
            client::excerpt(String::from_utf8_lossy(&out.stderr).trim(), 400)
        ));
    }
    Ok(secs)
}

/// Bytes the files under `dir` take on disk (allocated blocks; sparse files count what they hold).
pub(crate) fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            total += meta.blocks() * 512;
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    total
}

/// Launches `count` instances that leave a file on their disks, and stops them.
async fn fill_instances(
    ep: &Endpoint,
    signer: &Signer,
    http: &HttpClient,
    count: usize,
) -> Result<(), String> {
    if count == 0 {
        return Ok(());
    }
    use super::ec2::{call, values_of};
    use base64::Engine as _;
    let described = call(ep, signer, http, &[("Action", "DescribeImages".into())]).await?;
    let image = values_of(&described, "imageId")
        .into_iter()
        .next()
        .ok_or("DescribeImages lists no image")?;
    let script = "#!/bin/sh\nhead -c 1048576 /dev/urandom > /root/bench-state-file && echo bench-state-written\n";
    let launched = call(
        ep,
        signer,
        http,
        &[
            ("Action", "RunInstances".into()),
            ("ImageId", image),
            ("MinCount", count.to_string()),
            ("MaxCount", count.to_string()),
            (
                "UserData",
                base64::engine::general_purpose::STANDARD.encode(script),
            ),
        ],
    )
    .await?;
    let ids = values_of(&launched, "instanceId");
    let with_ids = |action: &str| {
        let mut params = vec![("Action".to_string(), action.to_string())];
        for (i, id) in ids.iter().enumerate() {
            params.push((format!("InstanceId.{}", i + 1), id.clone()));
        }
        params
    };
    wait_states(ep, signer, http, &with_ids("DescribeInstances"), "running").await?;
    for id in &ids {
        wait_console(ep, signer, http, id, "bench-state-written").await?;
    }
    let stop = with_ids("StopInstances");
    let stop: Vec<(&str, String)> = stop.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    call(ep, signer, http, &stop).await?;
    wait_states(ep, signer, http, &with_ids("DescribeInstances"), "stopped").await
}

async fn wait_states(
    ep: &Endpoint,
    signer: &Signer,
    http: &HttpClient,
    describe: &[(String, String)],
    want: &str,
) -> Result<(), String> {
    let params: Vec<(&str, String)> = describe
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let wanted = describe.len() - 1;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let answer = super::ec2::call(ep, signer, http, &params).await?;
        let states = super::ec2::values_of(&answer, "name");
        if states.iter().filter(|s| *s == want).count() >= wanted {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("instances are {states:?}, not all {want}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until an instance's console output holds `marker` (its user data is done).
async fn wait_console(
    ep: &Endpoint,
    signer: &Signer,
    http: &HttpClient,
    id: &str,
    marker: &str,
) -> Result<(), String> {
    use base64::Engine as _;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let params = [
            ("Action", "GetConsoleOutput".to_string()),
            ("InstanceId", id.to_string()),
        ];
        let answer = super::ec2::call(ep, signer, http, &params).await?;
        let output = super::ec2::values_of(&answer, "output")
            .first()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .unwrap_or_default();
        if String::from_utf8_lossy(&output).contains(marker) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{id}'s user data did not finish"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// After the loads: every object and every message is there.
async fn verify(target: &Target<'_>, cfg: &StateSaveConfig, queue_url: &str) -> Result<(), String> {
    let attrs = target
        .call_json(
            "GetQueueAttributes",
            &json!({"QueueUrl": queue_url, "AttributeNames": ["ApproximateNumberOfMessages"]}),
            cfg.request_timeout,
        )
        .await?;
    let queued = attrs["Attributes"]["ApproximateNumberOfMessages"]
        .as_str()
        .and_then(|n| n.parse::<u64>().ok());
    if queued != Some(cfg.messages) {
        return Err(format!(
            "after the load the queue holds {queued:?} messages, not {}",
            cfg.messages
        ));
    }
    let mut present = vec![false; cfg.objects as usize];
    let keys = super::s3::scan_keys(target, cfg.request_timeout, BUCKET, &mut present).await?;
    if keys != cfg.objects {
        return Err(format!(
            "after the load the bucket lists {keys} objects, not {}",
            cfg.objects
        ));
    }
    Ok(())
}

pub fn text(r: &StateSaveResult) -> String {
    let mb = |b: u64| b as f64 / 1e6;
    let secs = |v: &[f64]| median(v).map_or("-".into(), |s| format!("{s:.2} s"));
    let ratio = |r: Option<f64>| r.map_or("-".into(), |x| format!("{x:.2}x"));
    let mut out = format!(
        "\nstate-save: {} objects, {} messages, {} stopped instances; data directory {:.1} MB on disk (filled in {:.1} s)\n",
        r.objects, r.messages, r.instances, mb(r.data_dir_bytes), r.fill_secs
    );
    out += &format!(
        "  save  nimbus state save {:>9}   tar -cf {:>9}   ratio {}   (median of {})\n",
        secs(&r.save_secs),
        secs(&r.tar_create_secs),
        ratio(r.save_ratio()),
        r.save_secs.len()
    );
    out += &format!(
        "  load  nimbus state load {:>9}   tar -xf {:>9}   ratio {}   (of the load, {} before nimbus's restart)\n",
        secs(&r.load_secs),
        secs(&r.tar_extract_secs),
        ratio(r.load_ratio()),
        secs(&r.load_check_secs)
    );
    out += &format!(
        "  archive {:.1} MB, tar {:.1} MB\n",
        mb(r.archive_bytes),
        mb(r.tar_bytes)
    );
    for f in &r.failures {
        out += &format!("  FAILED: {f}\n");
    }
    out
}

pub fn json(r: &StateSaveResult) -> Value {
    json!({
        "objects": r.objects,
        "messages": r.messages,
        "instances": r.instances,
        "fill_secs": r.fill_secs,
        "data_dir_bytes": r.data_dir_bytes,
        "save_secs": r.save_secs,
        "tar_create_secs": r.tar_create_secs,
        "load_secs": r.load_secs,
        "tar_extract_secs": r.tar_extract_secs,
        "load_check_secs": r.load_check_secs,
        "save_ratio": r.save_ratio(),
        "load_ratio": r.load_ratio(),
        "archive_bytes": r.archive_bytes,
        "tar_bytes": r.tar_bytes,
        "failures": r.failures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_use_medians() {
        let r = StateSaveResult {
            save_secs: vec![3.0, 1.0, 2.0],
            tar_create_secs: vec![1.0, 1.0, 4.0],
            load_secs: vec![],
            tar_extract_secs: vec![1.0],
            ..StateSaveResult::default()
        };
        assert_eq!(r.save_ratio(), Some(2.0));
        assert_eq!(r.load_ratio(), None);
        assert!(text(&r).contains("ratio 2.00x"));
    }

    #[test]
    fn load_checks_are_read_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        std::fs::write(
            &log,
            "x INFO nimbus::state: state load checked: 3 records, 1 files (written by nimbus 0.1.0) in 1034 ms; restarting on it\nother\n",
        )
        .unwrap();
        assert_eq!(logged_load_checks(&log), vec![1.034]);
    }

    #[test]
    fn disk_usage_counts_files_below() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/f"), vec![1u8; 10_000]).unwrap();
        assert!(disk_usage(dir.path()) >= 10_000);
    }
}

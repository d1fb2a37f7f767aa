//! The `ec2-launch` workload: how long from a RunInstances call to the end of
//! the instances' user data, for batches of N instances, and what a running
//! instance costs in memory.
//!
//! Each instance's user data writes a file and then reports its id over TCP
//! to a listener of this process (bash's /dev/tcp: no polling, no API calls
//! in the measured path), so the time measured is call-to-user-data-done. The
//! baseline, measured in the same run, is the bare cost of what the user data
//! itself does: bash started on the host that writes the same file and
//! reports the same way. Peers that do not run user data (moto, LocalStack's
//! community edition) cannot take part; the workload runs against the first
//! endpoint only.

use super::client::{self, Endpoint, HttpClient, Signer};
use super::measure;
use bytes::Bytes;
use hyper::Method;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

const DONE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Batch {
    pub count: usize,
    /// Call-to-user-data-done per instance, µs, ascending.
    pub times_us: Vec<u32>,
    /// The bare baseline (bash doing the same on the host), µs, ascending.
    pub baseline_us: Vec<u32>,
    /// Proportional memory of the instance machinery (nimbus's init processes)
    /// per running instance, KiB, measured with the whole batch running.
    pub pss_per_instance_kib: Option<u64>,
    /// Growth of the nimbus server's own RSS per running instance, KiB.
    pub server_rss_per_instance_kib: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct LaunchResult {
    pub driver: String,
    pub batches: Vec<Batch>,
    pub failures: Vec<String>,
}

fn p(sorted: &[u32], pct: f64) -> Option<u32> {
    measure::percentile(sorted, pct)
}

pub async fn run(
    ep: &Endpoint,
    signer: &Signer,
    http: &HttpClient,
    counts: &[usize],
    rounds: u32,
    server_pid: Option<u32>,
) -> LaunchResult {
    let mut result = LaunchResult::default();
    match launch_all(ep, signer, http, counts, rounds, server_pid, &mut result).await {
        Ok(()) => {}
        Err(e) => result.failures.push(e),
    }
    result
}

pub(crate) async fn call(
    ep: &Endpoint,
    signer: &Signer,
    http: &HttpClient,
    params: &[(&str, String)],
) -> Result<String, String> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("Version", "2016-11-15");
    for (k, v) in params {
        form.append_pair(k, v);
    }
    let body = Bytes::from(form.finish());
    let headers = vec![
        ("host".to_string(), ep.authority.clone()),
        (
            "content-type".to_string(),
            "application/x-www-form-urlencoded; charset=utf-8".to_string(),
        ),
    ];
    let req = client::signed_request(ep, signer, "ec2", Method::POST, "/", "", headers, body)?;
    let reply = client::send(http, req, Duration::from_secs(60)).await?;
    if !reply.ok() {
        return Err(format!(
            "{}: HTTP {}: {}",
            params.first().map(|p| p.1.as_str()).unwrap_or("?"),
            reply.status,
            reply.body_excerpt()
        ));
    }
    Ok(String::from_utf8_lossy(&reply.body).into_owned())
}

/// Every text between `<tag>` and `</tag>`, in order (the answers are small and flat
/// enough that this is all the XML reading the bench needs).
pub(crate) fn values_of(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(after[..end].to_string());
        rest = &after[end + close.len()..];
    }
    out
}

async fn instance_driver(ep: &Endpoint, http: &HttpClient) -> Result<String, String> {
    let req = client::get_request(&ep.authority, "/_nimbus/health")?;
    let reply = client::send(http, req, Duration::from_secs(10)).await?;
    let doc: Value = serde_json::from_slice(&reply.body)
        .map_err(|_| format!("{} is not a nimbus (no health document)", ep.name))?;
    doc.get("instance_driver")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("{} does not run instances", ep.name))
}

/// Waits for `count` reports on the listener; returns arrival time per instance id.
async fn collect(
    listener: &tokio::net::TcpListener,
    count: usize,
) -> Result<HashMap<String, Instant>, String> {
    let mut arrived = HashMap::new();
    let deadline = tokio::time::Instant::now() + DONE_TIMEOUT;
    while arrived.len() < count {
        let accepted = tokio::time::timeout_at(deadline, listener.accept())
            .await
            .map_err(|_| {
                format!(
                    "only {} of {count} user data runs reported within {} s",
                    arrived.len(),
                    DONE_TIMEOUT.as_secs()
                )
            })?;
        let (mut stream, _) = accepted.map_err(|e| format!("accept: {e}"))?;
        let at = Instant::now();
        let mut line = String::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut line)).await;
        arrived.insert(line.trim().to_string(), at);
    }
    Ok(arrived)
}

fn user_data(host: &str, port: u16) -> String {
    format!(
        "#!/bin/bash\necho nimbus-bench > /root/bench-done\nID=${{NIMBUS_INSTANCE_ID:-$(basename \"$(readlink /var/lib/cloud/instance)\")}}\nexec 3<>/dev/tcp/{host}/{port}\necho \"$ID\" >&3\n"
    )
}

async fn launch_all(
    ep: &Endpoint,
    signer: &Signer,
    http: &HttpClient,
    counts: &[usize],
    rounds: u32,
    server_pid: Option<u32>,
    result: &mut LaunchResult,
) -> Result<(), String> {
    let driver = instance_driver(ep, http).await?;
    result.driver = driver.clone();
    // Instances reach the host at the VPC gateway (namespace driver) or on loopback.
    let host = if driver == "namespace" {
        "172.31.0.1"
    } else {
        "127.0.0.1"
    };
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", 0))
        .await
        .map_err(|e| format!("cannot listen for user data reports: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let described = call(ep, signer, http, &[("Action", "DescribeImages".into())]).await?;
    let image = values_of(&described, "imageId")
        .into_iter()
        .next()
        .ok_or("DescribeImages lists no image")?;
    use base64::Engine as _;
    let script = user_data(host, port);
    let encoded = base64::engine::general_purpose::STANDARD.encode(&script);
    let baseline_script = script
        .replace(
            "${NIMBUS_INSTANCE_ID:-$(basename \"$(readlink /var/lib/cloud/instance)\")}",
            "baseline",
        )
        .replace("/root/bench-done", "/dev/null")
        .replace(host, "127.0.0.1");
    for &count in counts {
        let mut batch = Batch {
            count,
            times_us: Vec::new(),
            baseline_us: Vec::new(),
            pss_per_instance_kib: None,
            server_rss_per_instance_kib: None,
        };
        let idle_rss = server_pid.and_then(own_rss_kib);
        for round in 0..rounds.max(1) {
            let count_text = count.to_string();
            let started = Instant::now();
            let answer = call(
                ep,
                signer,
                http,
                &[
                    ("Action", "RunInstances".into()),
                    ("ImageId", image.clone()),
                    ("InstanceType", "t3.micro".into()),
                    ("MinCount", count_text.clone()),
                    ("MaxCount", count_text),
                    ("UserData", encoded.clone()),
                    ("TagSpecification.1.ResourceType", "instance".into()),
                    ("TagSpecification.1.Tag.1.Key", "nimbus-bench".into()),
                    ("TagSpecification.1.Tag.1.Value", "ec2-launch".into()),
                ],
            )
            .await?;
            let ids = values_of(&answer, "instanceId");
            let arrived = collect(&listener, ids.len()).await;
            // Memory is read with the whole batch running (last round only).
            if round + 1 == rounds.max(1) {
                batch.pss_per_instance_kib = init_pss_kib().map(|k| k / ids.len().max(1) as u64);
                if let (Some(pid), Some(idle)) = (server_pid, idle_rss) {
                    batch.server_rss_per_instance_kib = own_rss_kib(pid)
                        .map(|now| (now as i64 - idle as i64) / ids.len().max(1) as i64);
                }
            }
            let mut params = vec![("Action", "TerminateInstances".to_string())];
            let names: Vec<String> = (1..=ids.len()).map(|i| format!("InstanceId.{i}")).collect();
            for (name, id) in names.iter().zip(&ids) {
                params.push((name.as_str(), id.clone()));
            }
            call(ep, signer, http, &params).await?;
            let arrived = arrived?;
            for id in &ids {
                match arrived.get(id) {
                    Some(at) => batch
                        .times_us
                        .push(at.duration_since(started).as_micros().min(u32::MAX as u128) as u32),
                    None => result
                        .failures
                        .push(format!("{id}: no report from its user data")),
                }
            }
            wait_terminated(ep, signer, http, &ids).await?;
            // The baseline: the same script, run by bash on the host, `count` at once.
            let started = Instant::now();
            let mut children = Vec::new();
            for _ in 0..count {
                children.push(
                    tokio::process::Command::new("/bin/bash")
                        .arg("-c")
                        .arg(&baseline_script)
                        .spawn()
                        .map_err(|e| format!("cannot run bash: {e}"))?,
                );
            }
            for _ in 0..count {
                match tokio::time::timeout(DONE_TIMEOUT, listener.accept()).await {
                    Ok(Ok(_)) => batch
                        .baseline_us
                        .push(started.elapsed().as_micros().min(u32::MAX as u128) as u32),
                    _ => {
                        result.failures.push("a baseline run did not report".into());
                        break;
                    }
                }
            }
            for mut c in children {
                let _ = c.wait().await;
            }
        }
        batch.times_us.sort_unstable();
        batch.baseline_us.sort_unstable();
        result.batches.push(batch);
    }
    Ok(())
}

async fn wait_terminated(
    ep: &Endpoint,
    signer: &Signer,
    http: &HttpClient,
    ids: &[String],
) -> Result<(), String> {
    let deadline = Instant::now() + DONE_TIMEOUT;
    let names: Vec<String> = (1..=ids.len()).map(|i| format!("InstanceId.{i}")).collect();
    loop {
        let mut params = vec![("Action", "DescribeInstances".to_string())];
        for (name, id) in names.iter().zip(ids) {
            params.push((name.as_str(), id.clone()));
        }
        let answer = call(ep, signer, http, &params).await?;
        let states = values_of(&answer, "name");
        if states.iter().filter(|s| *s == "terminated").count() >= ids.len() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("instances did not terminate within a minute".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn own_rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .as_deref()
        .and_then(measure::parse_vmrss_kib)
}

/// PSS of every instance init process on this host (the outer process and the
/// instance's PID 1), summed.
fn init_pss_kib() -> Option<u64> {
    let mut total = 0;
    let mut seen = false;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if !cmdline.windows(15).any(|w| w == b"__instance-init") {
            continue;
        }
        let rollup =
            std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        if let Some(kib) = rollup
            .lines()
            .find_map(|l| l.strip_prefix("Pss:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            total += kib;
            seen = true;
        }
    }
    seen.then_some(total)
}

pub fn text(r: &LaunchResult) -> String {
    let mut out = format!(
        "\nec2-launch ({} driver): RunInstances to user data done; baseline: the same script run by bash on the host\n\n",
        if r.driver.is_empty() { "?" } else { &r.driver }
    );
    out += &format!(
        "{:>4} {:>8} {:>10} {:>10} {:>14} {:>10} {:>16} {:>16}\n",
        "N",
        "samples",
        "p50 ms",
        "p99 ms",
        "baseline p50",
        "ratio",
        "init PSS/inst",
        "server RSS/inst"
    );
    for b in &r.batches {
        let p50 = p(&b.times_us, 50.0);
        let base = p(&b.baseline_us, 50.0);
        out += &format!(
            "{:>4} {:>8} {:>10} {:>10} {:>14} {:>10} {:>16} {:>16}\n",
            b.count,
            b.times_us.len(),
            p50.map_or("-".into(), super::report::ms),
            p(&b.times_us, 99.0).map_or("-".into(), super::report::ms),
            base.map_or("-".into(), super::report::ms),
            match (p50, base) {
                (Some(a), Some(b)) if b > 0 => format!("{:.1}x", a as f64 / b as f64),
                _ => "-".into(),
            },
            b.pss_per_instance_kib
                .map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
            b.server_rss_per_instance_kib
                .map_or("-".into(), |k| format!("{:.2} MiB", k as f64 / 1024.0)),
        );
    }
    for f in &r.failures {
        out += &format!("- ec2-launch: {f}\n");
    }
    out
}

pub fn json(r: &LaunchResult) -> Value {
    json!({
        "driver": r.driver,
        "batches": r.batches.iter().map(|b| json!({
            "count": b.count,
            "samples": b.times_us.len(),
            "p50_us": p(&b.times_us, 50.0),
            "p99_us": p(&b.times_us, 99.0),
            "baseline_p50_us": p(&b.baseline_us, 50.0),
            "init_pss_per_instance_kib": b.pss_per_instance_kib,
            "server_rss_per_instance_kib": b.server_rss_per_instance_kib,
        })).collect::<Vec<_>>(),
        "failures": r.failures,
    })
}

//! The SQS workloads, spoken in AWS JSON 1.0 as current SDKs do.
//!
//! Each run creates its own queue (unique name), drives it with
//! `concurrency` workers that share one operation budget, and deletes the
//! queue afterwards. Only the timed phase is measured: queue creation and the
//! pre-fill of `sqs-cycle` are not. All workers run as futures of one task on
//! a current-thread runtime, so their shared tallies are plain `Cell`s. With
//! `--sqs-fifo` the queues are FIFO ones: each message then carries a message
//! group id (spread over `--sqs-fifo-groups` groups) and a unique
//! deduplication id, and the results are labelled `(fifo)`.

use super::client::{self, Endpoint, HttpClient, Reply, S3Client, Signer};
use super::measure;
use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A measurable workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// SendMessage, one message per request.
    SqsSend,
    /// SendMessageBatch of 10 messages per request.
    SqsSendBatch,
    /// Pre-fill N messages, then ReceiveMessage (up to 10) + DeleteMessageBatch until all are consumed.
    SqsCycle,
    /// PutObject of small objects, distinct keys, into a fresh bucket.
    S3Put,
    /// GetObject of small objects written (untimed) beforehand.
    S3Get,
    /// ListObjectsV2 pages of 1000 keys through a large bucket.
    S3List,
    /// PutObject of large objects streamed from one buffer.
    S3PutLarge,
    /// GetObject of large objects, the body consumed as a stream.
    S3GetLarge,
    /// nimbus only: spawn `serve --ephemeral` and time the first healthy answer.
    Startup,
    /// No endpoint: sequential writes plus fsync on the disk, the ceiling for large PUTs.
    Dd,
    /// The first endpoint only: RunInstances to user data done, N at a time.
    Ec2Launch,
    /// Its own nimbus: `nimbus state save` and `load` of a filled cloud against tar.
    StateSave,
    /// Its own nimbus: s3-get and s3-list empty, then with many stored objects (after a restart).
    S3Scale,
    /// Its own nimbus: sqs-cycle empty, then with a deep backlog queued (after a restart).
    SqsBacklog,
    /// PutMetricData of 20 datapoints (20 metrics, one value each) per call.
    CwPut,
    /// GetMetricStatistics over a day of 1-minute data (1,440 datapoints).
    CwGetStats,
    /// GetMetricData over 3 hours of 1-second data (10,800 datapoints).
    CwGetData,
    /// Its own nimbus at a scaled clock: CPU per evaluation period of many alarms.
    AlarmEval,
    /// Its own nimbus: RSS and disk bytes per stored datapoint.
    CwScale,
}

impl Workload {
    pub const SQS: [Workload; 3] = [
        Workload::SqsSend,
        Workload::SqsSendBatch,
        Workload::SqsCycle,
    ];

    pub const S3: [Workload; 5] = [
        Workload::S3Put,
        Workload::S3Get,
        Workload::S3List,
        Workload::S3PutLarge,
        Workload::S3GetLarge,
    ];

    /// The CloudWatch workloads that drive every endpoint (`cw`; `cw-get` is the two gets).
    pub const CW: [Workload; 3] = [Workload::CwPut, Workload::CwGetStats, Workload::CwGetData];

    pub fn name(self) -> &'static str {
        match self {
            Workload::SqsSend => "sqs-send",
            Workload::SqsSendBatch => "sqs-send-batch",
            Workload::SqsCycle => "sqs-cycle",
            Workload::S3Put => "s3-put",
            Workload::S3Get => "s3-get",
            Workload::S3List => "s3-list",
            Workload::S3PutLarge => "s3-put-large",
            Workload::S3GetLarge => "s3-get-large",
            Workload::Startup => "startup",
            Workload::Dd => "dd",
            Workload::Ec2Launch => "ec2-launch",
            Workload::StateSave => "state-save",
            Workload::S3Scale => "s3-scale",
            Workload::SqsBacklog => "sqs-backlog",
            Workload::CwPut => "cw-put",
            Workload::CwGetStats => "cw-get-stats",
            Workload::CwGetData => "cw-get-data",
            Workload::AlarmEval => "alarm-eval",
            Workload::CwScale => "cw-scale",
        }
    }

    pub fn is_s3(self) -> bool {
        Workload::S3.contains(&self)
    }

    pub fn is_cloudwatch(self) -> bool {
        Workload::CW.contains(&self)
    }

    /// Whether the workload drives an endpoint (`startup` and `dd` measure this machine).
    pub fn uses_endpoint(self) -> bool {
        !matches!(
            self,
            Workload::Startup
                | Workload::Dd
                | Workload::Ec2Launch
                | Workload::StateSave
                | Workload::S3Scale
                | Workload::SqsBacklog
                | Workload::AlarmEval
                | Workload::CwScale
        )
    }

    /// Parses `--workload` values (each may be a comma list); `all` means the
    /// endpoint workloads, since `startup` measures this binary, not an endpoint.
    pub fn parse_list(values: &[String]) -> Result<Vec<Workload>, String> {
        let mut out = Vec::new();
        let push = |w: Workload, out: &mut Vec<Workload>| {
            if !out.contains(&w) {
                out.push(w);
            }
        };
        for part in values
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            match part {
                "all" => Workload::SQS.iter().for_each(|w| push(*w, &mut out)),
                "s3" => Workload::S3.iter().for_each(|w| push(*w, &mut out)),
                "startup" => push(Workload::Startup, &mut out),
                "dd" => push(Workload::Dd, &mut out),
                "ec2-launch" => push(Workload::Ec2Launch, &mut out),
                "state-save" => push(Workload::StateSave, &mut out),
                "s3-scale" => push(Workload::S3Scale, &mut out),
                "sqs-backlog" => push(Workload::SqsBacklog, &mut out),
                "cw" => Workload::CW.iter().for_each(|w| push(*w, &mut out)),
                "cw-get" => {
                    push(Workload::CwGetStats, &mut out);
                    push(Workload::CwGetData, &mut out);
                }
                "alarm-eval" => push(Workload::AlarmEval, &mut out),
                "cw-scale" => push(Workload::CwScale, &mut out),
                name => match Workload::SQS
                    .iter()
                    .chain(&Workload::S3)
                    .chain(&Workload::CW)
                    .find(|w| w.name() == name)
                {
                    Some(w) => push(*w, &mut out),
                    None => {
                        return Err(format!(
                        "unknown workload {name:?} (known: sqs-send, sqs-send-batch, sqs-cycle, \
                         s3-put, s3-get, s3-list, s3-put-large, s3-get-large, startup, dd, ec2-launch, state-save, s3-scale, sqs-backlog, \
                         cw-put, cw-get-stats, cw-get-data, cw-get (both gets), alarm-eval, cw-scale, \
                         all = the SQS ones, s3 = the S3 ones, cw = cw-put and the gets)"
                    ))
                    }
                },
            }
        }
        if out.is_empty() {
            out.extend(Workload::SQS);
        }
        Ok(out)
    }
}

/// Settings shared by every run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub ops: u64,
    pub concurrency: usize,
    pub message_size: usize,
    pub request_timeout: Duration,
    /// Upper bound on a timed phase: the run stops itself and says so.
    pub max_duration: Duration,
    /// S3: size of the objects of s3-put and s3-get.
    pub object_size: usize,
    /// S3: keys in the bucket s3-list pages through.
    pub list_keys: u64,
    /// S3: ListObjectsV2 pages s3-list times.
    pub list_pages: u64,
    /// S3: an existing bucket for s3-list, filled only as far as it lacks keys.
    pub list_bucket: Option<String>,
    /// S3: size, count and concurrency of s3-put-large and s3-get-large.
    pub large_size: u64,
    pub large_ops: u64,
    pub large_concurrency: usize,
    /// dd: where the sequential-write file goes (the server's data disk).
    pub disk_dir: PathBuf,
    /// SQS: `Some(groups)` runs the SQS workloads on FIFO queues, the messages
    /// spread over that many message groups; `None`: standard queues.
    pub fifo_groups: Option<u64>,
}

/// The FIFO ids of one queue's messages: message `i` goes to group
/// `g{i % groups}` and is deduplicated by `{prefix}-{i}`. The queue has no
/// content-based deduplication and every body is the same, so each message
/// needs an id of its own or SQS would drop it as a duplicate; the random
/// prefix keeps ids apart should two fills ever share a queue.
#[derive(Debug, Clone)]
pub struct FifoIds {
    groups: u64,
    prefix: String,
}

impl FifoIds {
    /// Ids for a queue whose messages are spread over `groups` (at least 1) groups.
    pub fn new(groups: u64) -> FifoIds {
        FifoIds {
            groups: groups.max(1),
            prefix: nimbus_core::random_string(b"abcdefghijklmnopqrstuvwxyz0123456789", 8),
        }
    }

    /// `(MessageGroupId, MessageDeduplicationId)` of message `i`.
    pub fn ids(&self, i: u64) -> (String, String) {
        (
            format!("g{}", i % self.groups),
            format!("{}-{i}", self.prefix),
        )
    }

    /// Ids for the queue of a run, when the run is on FIFO queues.
    fn of(cfg: &RunConfig) -> Option<FifoIds> {
        cfg.fifo_groups.map(FifoIds::new)
    }
}

/// The name to create for a queue called `base`: SQS requires FIFO queue
/// names to end in `.fifo`.
pub fn queue_name(base: &str, fifo: bool) -> String {
    if fifo {
        format!("{base}.fifo")
    } else {
        base.to_string()
    }
}

/// The CreateQueue body of `name`, a FIFO queue when `fifo`.
pub fn create_queue_body(name: &str, fifo: bool) -> Value {
    if fifo {
        json!({"QueueName": name, "Attributes": {"FifoQueue": "true"}})
    } else {
        json!({"QueueName": name})
    }
}

/// How a workload is named in reports: an SQS workload run on FIFO queues is
/// `sqs-cycle (fifo)`, so that its figures are never read as a standard queue's.
pub fn label(workload: Workload, fifo: bool) -> String {
    if fifo && (Workload::SQS.contains(&workload) || workload == Workload::SqsBacklog) {
        format!("{} (fifo)", workload.name())
    } else {
        workload.name().to_string()
    }
}

/// What the server process did during the timed phase.
#[derive(Debug, Clone, Copy)]
pub struct ServerFigures {
    pub cpu_micros: f64,
    /// The clock ticks behind `cpu_micros`: few ticks mean a coarse figure.
    pub cpu_ticks: u64,
    pub rss_before_kib: u64,
    pub rss_peak_kib: u64,
    pub rss_after_kib: u64,
}

/// The outcome of one workload against one endpoint.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub endpoint: String,
    pub workload: Workload,
    /// Requests answered with 2xx.
    pub ok_ops: u64,
    /// Messages carried by successful requests (sent, or received and deleted;
    /// s3-list: keys listed; other S3 workloads: none).
    pub messages: u64,
    /// S3: object bytes carried by successful requests (sent or received).
    pub bytes: u64,
    /// Failed requests plus failed entries of batch requests.
    pub errors: u64,
    pub elapsed: Duration,
    /// Latencies of the successful requests, µs, ascending.
    pub latencies_us: Vec<u32>,
    pub server: Option<ServerFigures>,
    pub client_cpu_micros: u64,
    pub first_errors: Vec<String>,
    /// Set when the workload could not run at all (e.g. CreateQueue failed).
    pub failure: Option<String>,
    /// Set when the run hit `max_duration` before its budget was spent.
    pub stopped_early: bool,
    /// `sqs-cycle`: receives that returned no message.
    pub empty_receives: u64,
    /// The SQS run used a FIFO queue (`--sqs-fifo`).
    pub fifo: bool,
}

impl RunResult {
    pub fn failed(endpoint: &str, workload: Workload, why: String) -> RunResult {
        RunResult {
            endpoint: endpoint.to_string(),
            workload,
            ok_ops: 0,
            messages: 0,
            bytes: 0,
            errors: 0,
            elapsed: Duration::ZERO,
            latencies_us: Vec::new(),
            server: None,
            client_cpu_micros: 0,
            first_errors: Vec::new(),
            failure: Some(why),
            stopped_early: false,
            empty_receives: 0,
            fifo: false,
        }
    }

    /// The workload's name as reported (see [`label`]).
    pub fn label(&self) -> String {
        label(self.workload, self.fifo)
    }

    pub fn secs(&self) -> f64 {
        self.elapsed.as_secs_f64()
    }

    pub fn ops_per_sec(&self) -> Option<f64> {
        rate(self.ok_ops, self.secs())
    }

    pub fn msgs_per_sec(&self) -> Option<f64> {
        rate(self.messages, self.secs())
    }

    /// Object throughput in MB/s (10^6 bytes, as `dd` counts).
    pub fn mb_per_sec(&self) -> Option<f64> {
        rate(self.bytes, self.secs()).map(|b| b / 1e6)
    }

    pub fn p(&self, pct: f64) -> Option<u32> {
        measure::percentile(&self.latencies_us, pct)
    }

    pub fn server_cpu_us_per_op(&self) -> Option<f64> {
        let s = self.server?;
        (self.ok_ops > 0).then(|| s.cpu_micros / self.ok_ops as f64)
    }

    pub fn server_cpu_us_per_msg(&self) -> Option<f64> {
        let s = self.server?;
        (self.messages > 0).then(|| s.cpu_micros / self.messages as f64)
    }

    pub fn client_cpu_us_per_op(&self) -> Option<f64> {
        (self.ok_ops > 0).then(|| self.client_cpu_micros as f64 / self.ok_ops as f64)
    }
}

fn rate(n: u64, secs: f64) -> Option<f64> {
    (secs > 0.0 && n > 0).then(|| n as f64 / secs)
}

/// How many error texts a run keeps for the report.
pub const KEPT_ERRORS: usize = 5;

/// Shared counters of one timed phase.
#[derive(Default)]
pub struct Tally {
    next_op: Cell<u64>,
    ok_ops: Cell<u64>,
    messages: Cell<u64>,
    pub bytes: Cell<u64>,
    errors: Cell<u64>,
    latencies: RefCell<Vec<u32>>,
    /// Distinct error texts with how often each was seen.
    first_errors: RefCell<Vec<(String, u64)>>,
    stopped_early: Cell<bool>,
    // sqs-cycle only.
    consumed: Cell<u64>,
    in_flight: Cell<u64>,
    empty_receives: Cell<u64>,
}

impl Tally {
    /// Claims the next operation of the budget; `None` once spent or past the deadline.
    pub fn claim(&self, budget: u64, deadline: Instant) -> Option<u64> {
        let i = self.next_op.get();
        if i >= budget {
            return None;
        }
        if Instant::now() >= deadline {
            self.stopped_early.set(true);
            return None;
        }
        self.next_op.set(i + 1);
        Some(i)
    }

    pub fn ok(&self, latency: Duration, messages: u64) {
        self.ok_ops.set(self.ok_ops.get() + 1);
        self.messages.set(self.messages.get() + messages);
        self.latencies
            .borrow_mut()
            .push(latency.as_micros().min(u32::MAX as u128) as u32);
    }

    pub fn error(&self, count: u64, what: impl FnOnce() -> String) {
        self.errors.set(self.errors.get() + count);
        // Errors are off the fast path: formatting each one to fold repeats is fine.
        let text = what();
        let mut kept = self.first_errors.borrow_mut();
        if let Some(seen) = kept.iter_mut().find(|(t, _)| *t == text) {
            seen.1 += 1;
        } else if kept.len() < KEPT_ERRORS {
            kept.push((text, 1));
        }
    }

    /// The kept error texts, repeats folded into a count.
    fn error_texts(&self) -> Vec<String> {
        self.first_errors
            .take()
            .into_iter()
            .map(|(t, n)| if n > 1 { format!("{t} (x{n})") } else { t })
            .collect()
    }
}

/// One endpoint's request context.
pub struct Target<'a> {
    pub endpoint: &'a Endpoint,
    pub signer: &'a Signer,
    pub client: &'a HttpClient,
    /// The pool for S3 requests, whose bodies may be streamed.
    pub s3_client: &'a S3Client,
    pub server_pid: Option<u32>,
}

impl Target<'_> {
    async fn call(&self, op: &str, body: Bytes, timeout: Duration) -> Result<Reply, String> {
        let req = client::json10_request(
            self.endpoint,
            self.signer,
            "sqs",
            &format!("AmazonSQS.{op}"),
            body,
        )?;
        client::send(self.client, req, timeout).await
    }

    /// A call whose answer must be 2xx JSON.
    pub(crate) async fn call_json(
        &self,
        op: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, String> {
        let reply = self
            .call(op, Bytes::from(body.to_string()), timeout)
            .await?;
        if !reply.ok() {
            return Err(format!(
                "{op}: HTTP {}: {}",
                reply.status,
                reply.body_excerpt()
            ));
        }
        if reply.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&reply.body)
            .map_err(|e| format!("{op}: answer is not JSON ({e}): {}", reply.body_excerpt()))
    }
}

/// A message body of `size` bytes; varied characters so that no layer can
/// shortcut a run of one byte.
pub fn message_body(size: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..size)
        .map(|i| ALPHABET[(i * 7 + i / 61) % ALPHABET.len()] as char)
        .collect()
}

/// The SendMessageBatch body for `n` (<= 10) copies of `body`; on a FIFO
/// queue (`fifo` given) the entries are messages `first..first + n` of `ids`.
pub fn send_batch_body(
    queue_url: &str,
    body: &str,
    n: usize,
    fifo: Option<(&FifoIds, u64)>,
) -> Value {
    let entries: Vec<Value> = (0..n)
        .map(|i| {
            let mut entry = json!({"Id": format!("m{i}"), "MessageBody": body});
            if let Some((ids, first)) = fifo {
                let (group, dedup) = ids.ids(first + i as u64);
                entry["MessageGroupId"] = group.into();
                entry["MessageDeduplicationId"] = dedup.into();
            }
            entry
        })
        .collect();
    json!({"QueueUrl": queue_url, "Entries": entries})
}

/// The SendMessage body of `body`; on a FIFO queue (`fifo` given) it is message `i` of `ids`.
fn send_body(queue_url: &str, body: &str, fifo: Option<(&FifoIds, u64)>) -> Value {
    let mut v = json!({"QueueUrl": queue_url, "MessageBody": body});
    if let Some((ids, i)) = fifo {
        let (group, dedup) = ids.ids(i);
        v["MessageGroupId"] = group.into();
        v["MessageDeduplicationId"] = dedup.into();
    }
    v
}

/// `(successful, failed entries)` of a SendMessageBatch or DeleteMessageBatch answer.
pub fn batch_outcome(answer: &Value) -> (u64, Vec<String>) {
    let ok = answer
        .get("Successful")
        .and_then(Value::as_array)
        .map_or(0, |a| a.len() as u64);
    let failed = answer
        .get("Failed")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|f| client::excerpt(&f.to_string(), 200))
                .collect()
        })
        .unwrap_or_default();
    (ok, failed)
}

/// `(Id, ReceiptHandle)` pairs of a ReceiveMessage answer.
pub fn receipt_handles(answer: &Value) -> Vec<(String, String)> {
    answer
        .get("Messages")
        .and_then(Value::as_array)
        .map(|msgs| {
            msgs.iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    Some((
                        format!("d{i}"),
                        m.get("ReceiptHandle")?.as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `workload` once against `target`: queue setup, timed phase, clean-up.
pub async fn run(target: &Target<'_>, workload: Workload, cfg: &RunConfig) -> RunResult {
    let mut result = run_on_queue(target, workload, cfg).await;
    // Failures too: a failed FIFO run must not read as a failed standard one.
    result.fifo = cfg.fifo_groups.is_some();
    result
}

async fn run_on_queue(target: &Target<'_>, workload: Workload, cfg: &RunConfig) -> RunResult {
    let ep = target.endpoint.name.as_str();
    // Idle RSS is taken before anything of this run touches the server.
    let rss_before = match target.server_pid.map(measure::sample_server).transpose() {
        Ok(s) => s.map(|s| s.rss_kib),
        Err(e) => return RunResult::failed(ep, workload, e),
    };
    let millis = nimbus_core::now_millis() % 1_000_000_000;
    let fifo = cfg.fifo_groups.is_some();
    let queue_name = queue_name(
        &format!(
            "nimbus-bench-{}-{}-{millis}",
            workload.name(),
            std::process::id()
        ),
        fifo,
    );
    let created = target
        .call_json(
            "CreateQueue",
            &create_queue_body(&queue_name, fifo),
            cfg.request_timeout,
        )
        .await;
    let queue_url = match created {
        Ok(v) => match v.get("QueueUrl").and_then(Value::as_str) {
            Some(u) => u.to_string(),
            None => {
                return RunResult::failed(
                    ep,
                    workload,
                    format!("CreateQueue answered without QueueUrl: {v}"),
                )
            }
        },
        Err(e) => return RunResult::failed(ep, workload, format!("cannot create the queue: {e}")),
    };

    let mut result = timed_run(target, workload, cfg, &queue_url, rss_before).await;

    // Clean-up is best effort; a failure is reported but does not void the figures.
    if let Err(e) = target
        .call_json(
            "DeleteQueue",
            &json!({"QueueUrl": queue_url}),
            cfg.request_timeout,
        )
        .await
    {
        if result.first_errors.len() < KEPT_ERRORS {
            result.first_errors.push(format!("clean-up: {e}"));
        }
    }
    result
}

async fn timed_run(
    target: &Target<'_>,
    workload: Workload,
    cfg: &RunConfig,
    queue_url: &str,
    rss_before: Option<u64>,
) -> RunResult {
    let ep = target.endpoint.name.as_str();
    let body = message_body(cfg.message_size);
    let tally = Tally::default();
    let fifo = FifoIds::of(cfg);
    let mut target_msgs = cfg.ops;
    if workload == Workload::SqsCycle {
        match prefill(target, cfg, queue_url, &body, fifo.as_ref()).await {
            Ok((sent, errs)) => {
                if !errs.is_empty() {
                    tally.error(errs.len() as u64, || {
                        format!("pre-fill: {} failures, first: {}", errs.len(), errs[0])
                    });
                }
                if sent == 0 {
                    return RunResult::failed(
                        ep,
                        workload,
                        format!("pre-fill sent no message: {}", errs.join("; ")),
                    );
                }
                target_msgs = sent;
            }
            Err(e) => return RunResult::failed(ep, workload, format!("pre-fill: {e}")),
        }
    }

    // The phase's future holds references only, so the tally stays readable here.
    let (body, tally_ref, fifo) = (body.as_str(), &tally, fifo.as_ref());
    let phase = timed_phase(
        target.server_pid,
        rss_before,
        &tally,
        cfg,
        |deadline| async move {
            let mut set = FuturesUnordered::new();
            for _ in 0..cfg.concurrency.max(1) {
                set.push(worker(
                    target,
                    workload,
                    cfg,
                    Queue {
                        url: queue_url,
                        fifo,
                    },
                    body,
                    tally_ref,
                    deadline,
                    target_msgs,
                ));
            }
            while set.next().await.is_some() {}
        },
    )
    .await;
    let mut result = match phase {
        Ok(p) => RunResult::from_phase(ep, workload, &tally, p),
        Err(e) => return RunResult::failed(ep, workload, e),
    };
    if workload == Workload::SqsCycle {
        result.messages = tally.consumed.get();
    }
    result
}

/// What the harness measured around a timed phase.
pub struct Phase {
    pub elapsed: Duration,
    pub server: Option<ServerFigures>,
    pub client_cpu_micros: u64,
}

impl RunResult {
    /// The result of a timed phase from its tally.
    pub fn from_phase(ep: &str, workload: Workload, tally: &Tally, phase: Phase) -> RunResult {
        let mut latencies = tally.latencies.take();
        latencies.sort_unstable();
        RunResult {
            endpoint: ep.to_string(),
            workload,
            ok_ops: tally.ok_ops.get(),
            messages: tally.messages.get(),
            bytes: tally.bytes.get(),
            errors: tally.errors.get(),
            elapsed: phase.elapsed,
            latencies_us: latencies,
            server: phase.server,
            client_cpu_micros: phase.client_cpu_micros,
            first_errors: tally.error_texts(),
            failure: None,
            stopped_early: tally.stopped_early.get(),
            empty_receives: tally.empty_receives.get(),
            fifo: false,
        }
    }
}

/// Runs the timed phase built by `work` (given its deadline) and measures it:
/// wall time, the server's CPU and peak RSS, the client's CPU. Shared by the
/// SQS and S3 workloads so that all are measured the same way. An error
/// means the server could not be sampled before the phase.
pub async fn timed_phase<F, Fut>(
    server_pid: Option<u32>,
    rss_before: Option<u64>,
    tally: &Tally,
    cfg: &RunConfig,
    work: F,
) -> Result<Phase, String>
where
    F: FnOnce(Instant) -> Fut,
    Fut: Future<Output = ()>,
{
    let server_before = server_pid.map(measure::sample_server).transpose()?;
    let peak = Cell::new(server_before.map_or(0, |s| s.rss_kib));
    // Listed once, before the clock starts: the scan of /proc is not the workload's cost.
    let tree = server_pid.map(measure::process_tree);
    let client_cpu_before = measure::self_cpu_micros();
    let start = Instant::now();
    let deadline = start + cfg.max_duration;
    let workers = async {
        work(deadline).await;
        start.elapsed()
    };
    // Peak RSS: sampled every 100 ms while the workers run.
    let sampler = async {
        let Some(tree) = &tree else {
            return std::future::pending::<()>().await;
        };
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Some(kib) = measure::rss_kib_of(tree) {
                peak.set(peak.get().max(kib));
            }
        }
    };
    let elapsed = tokio::select! {
        e = workers => e,
        _ = sampler => start.elapsed(),
    };
    let client_cpu = measure::self_cpu_micros().saturating_sub(client_cpu_before);

    let server = match (server_pid, server_before) {
        (Some(pid), Some(before)) => match measure::sample_server(pid) {
            Ok(after) => {
                let ticks = after.cpu_ticks.saturating_sub(before.cpu_ticks);
                Some(ServerFigures {
                    cpu_micros: ticks as f64 * 1e6 / measure::clock_ticks_per_sec() as f64,
                    cpu_ticks: ticks,
                    rss_before_kib: rss_before.unwrap_or(before.rss_kib),
                    // The idle reading counts too: a server that frees memory
                    // during the run (a GC) must not show a peak below idle.
                    rss_peak_kib: peak.get().max(after.rss_kib).max(rss_before.unwrap_or(0)),
                    rss_after_kib: after.rss_kib,
                })
            }
            Err(e) => {
                tally.error(0, || format!("server went away during the run: {e}"));
                None
            }
        },
        _ => None,
    };
    Ok(Phase {
        elapsed,
        server,
        client_cpu_micros: client_cpu,
    })
}

/// Sends `cfg.ops` messages in batches of 10 with `cfg.concurrency` workers.
/// Returns how many were accepted and the failures seen.
async fn prefill(
    target: &Target<'_>,
    cfg: &RunConfig,
    queue_url: &str,
    body: &str,
    fifo: Option<&FifoIds>,
) -> Result<(u64, Vec<String>), String> {
    let batches = cfg.ops.div_ceil(10);
    let next = Cell::new(0u64);
    let sent = Cell::new(0u64);
    let errors = RefCell::new(Vec::new());
    // The pre-fill is bounded like a timed phase, so a stuck server cannot hang the run.
    let deadline = Instant::now() + cfg.max_duration;
    let one_worker = || async {
        loop {
            let i = next.get();
            if i >= batches || Instant::now() >= deadline {
                break;
            }
            next.set(i + 1);
            let n = (cfg.ops - i * 10).min(10) as usize;
            match target
                .call_json(
                    "SendMessageBatch",
                    &send_batch_body(queue_url, body, n, fifo.map(|f| (f, i * 10))),
                    cfg.request_timeout,
                )
                .await
            {
                Ok(v) => {
                    let (ok, failed) = batch_outcome(&v);
                    sent.set(sent.get() + ok);
                    errors.borrow_mut().extend(failed);
                }
                Err(e) => errors.borrow_mut().push(e),
            }
        }
    };
    let mut set = FuturesUnordered::new();
    for _ in 0..cfg.concurrency.max(1) {
        set.push(one_worker());
    }
    while set.next().await.is_some() {}
    Ok((sent.get(), errors.take()))
}

/// The queue a run drives.
#[derive(Clone, Copy)]
struct Queue<'a> {
    url: &'a str,
    /// The ids of its messages, on a FIFO queue.
    fifo: Option<&'a FifoIds>,
}

#[allow(clippy::too_many_arguments)]
async fn worker(
    target: &Target<'_>,
    workload: Workload,
    cfg: &RunConfig,
    queue: Queue<'_>,
    body: &str,
    tally: &Tally,
    deadline: Instant,
    target_msgs: u64,
) {
    match workload {
        Workload::SqsSend => {
            // On a standard queue every SendMessage carries the same bytes:
            // build them once. A FIFO message has ids of its own, so its
            // request is built per message (a copy of the body: small next to
            // the signing, and shown in the client CPU column).
            let same_body = Bytes::from(send_body(queue.url, body, None).to_string());
            while let Some(i) = tally.claim(cfg.ops, deadline) {
                let req_body = match queue.fifo {
                    Some(ids) => {
                        Bytes::from(send_body(queue.url, body, Some((ids, i))).to_string())
                    }
                    None => same_body.clone(),
                };
                let started = Instant::now();
                match target
                    .call("SendMessage", req_body, cfg.request_timeout)
                    .await
                {
                    Ok(r) if r.ok() => tally.ok(started.elapsed(), 1),
                    Ok(r) => tally.error(1, || {
                        format!("SendMessage: HTTP {}: {}", r.status, r.body_excerpt())
                    }),
                    Err(e) => tally.error(1, || format!("SendMessage: {e}")),
                }
            }
        }
        Workload::SqsSendBatch => {
            // As for SendMessage: one body for a standard queue, one per batch on a FIFO one.
            let same_body = Bytes::from(send_batch_body(queue.url, body, 10, None).to_string());
            while let Some(i) = tally.claim(cfg.ops, deadline) {
                let req_body = match queue.fifo {
                    Some(ids) => Bytes::from(
                        send_batch_body(queue.url, body, 10, Some((ids, i * 10))).to_string(),
                    ),
                    None => same_body.clone(),
                };
                let started = Instant::now();
                match target
                    .call("SendMessageBatch", req_body, cfg.request_timeout)
                    .await
                {
                    Ok(r) if r.ok() => {
                        let latency = started.elapsed();
                        match serde_json::from_slice::<Value>(&r.body) {
                            Ok(v) => {
                                let (ok, failed) = batch_outcome(&v);
                                tally.ok(latency, ok);
                                if !failed.is_empty() {
                                    tally.error(failed.len() as u64, || {
                                        format!("SendMessageBatch entry failed: {}", failed[0])
                                    });
                                }
                            }
                            Err(e) => tally.error(1, || {
                                format!(
                                    "SendMessageBatch: answer is not JSON ({e}): {}",
                                    r.body_excerpt()
                                )
                            }),
                        }
                    }
                    Ok(r) => tally.error(1, || {
                        format!("SendMessageBatch: HTTP {}: {}", r.status, r.body_excerpt())
                    }),
                    Err(e) => tally.error(1, || format!("SendMessageBatch: {e}")),
                }
            }
        }
        // A FIFO queue is consumed the same way: a receive returns messages of
        // one group, which stays locked until they are deleted, and the worker
        // deletes them at once.
        Workload::SqsCycle => {
            cycle_worker(target, cfg, queue.url, tally, deadline, target_msgs).await
        }
        // Not SQS workloads: run elsewhere.
        _ => {}
    }
}

async fn cycle_worker(
    target: &Target<'_>,
    cfg: &RunConfig,
    queue_url: &str,
    tally: &Tally,
    deadline: Instant,
    target_msgs: u64,
) {
    let receive_body =
        Bytes::from(json!({"QueueUrl": queue_url, "MaxNumberOfMessages": 10}).to_string());
    loop {
        let (consumed, in_flight) = (tally.consumed.get(), tally.in_flight.get());
        // Stop once the rest is already in other workers' hands; should their
        // deletes fail, they keep receiving until it is all consumed.
        if consumed + in_flight >= target_msgs {
            break;
        }
        if Instant::now() >= deadline {
            tally.stopped_early.set(true);
            break;
        }
        let started = Instant::now();
        let handles = match target
            .call("ReceiveMessage", receive_body.clone(), cfg.request_timeout)
            .await
        {
            Ok(r) if r.ok() => {
                let latency = started.elapsed();
                match serde_json::from_slice::<Value>(&r.body) {
                    Ok(v) => {
                        let h = receipt_handles(&v);
                        tally.ok(latency, 0);
                        h
                    }
                    Err(e) => {
                        tally.error(1, || {
                            format!(
                                "ReceiveMessage: answer is not JSON ({e}): {}",
                                r.body_excerpt()
                            )
                        });
                        continue;
                    }
                }
            }
            Ok(r) => {
                tally.error(1, || {
                    format!("ReceiveMessage: HTTP {}: {}", r.status, r.body_excerpt())
                });
                continue;
            }
            Err(e) => {
                tally.error(1, || format!("ReceiveMessage: {e}"));
                continue;
            }
        };
        if handles.is_empty() {
            tally.empty_receives.set(tally.empty_receives.get() + 1);
            // Nothing visible: messages are in flight elsewhere or waiting out a
            // visibility timeout. Back off a little instead of spinning.
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        }
        let n = handles.len() as u64;
        tally.in_flight.set(tally.in_flight.get() + n);
        let entries: Vec<Value> = handles
            .iter()
            .map(|(id, h)| json!({"Id": id, "ReceiptHandle": h}))
            .collect();
        let delete_body =
            Bytes::from(json!({"QueueUrl": queue_url, "Entries": entries}).to_string());
        let started = Instant::now();
        let outcome = target
            .call("DeleteMessageBatch", delete_body, cfg.request_timeout)
            .await;
        tally.in_flight.set(tally.in_flight.get() - n);
        match outcome {
            Ok(r) if r.ok() => {
                let latency = started.elapsed();
                match serde_json::from_slice::<Value>(&r.body) {
                    Ok(v) => {
                        let (ok, failed) = batch_outcome(&v);
                        tally.ok(latency, ok);
                        tally.consumed.set(tally.consumed.get() + ok);
                        if !failed.is_empty() {
                            tally.error(failed.len() as u64, || {
                                format!("DeleteMessageBatch entry failed: {}", failed[0])
                            });
                        }
                    }
                    Err(e) => tally.error(1, || {
                        format!(
                            "DeleteMessageBatch: answer is not JSON ({e}): {}",
                            r.body_excerpt()
                        )
                    }),
                }
            }
            Ok(r) => tally.error(1, || {
                format!(
                    "DeleteMessageBatch: HTTP {}: {}",
                    r.status,
                    r.body_excerpt()
                )
            }),
            Err(e) => tally.error(1, || format!("DeleteMessageBatch: {e}")),
        }
    }
}

/// Creates `queue` (or finds it) and sends it `count` messages of `size` bytes
/// with SendMessageBatch, `concurrency` at a time; returns its URL. With
/// `fifo_groups` the queue is a FIFO one (`queue` must then end in `.fifo`)
/// and the messages are spread over that many groups.
pub(crate) async fn send_messages(
    target: &Target<'_>,
    queue: &str,
    count: u64,
    size: usize,
    concurrency: usize,
    timeout: Duration,
    fifo_groups: Option<u64>,
) -> Result<String, String> {
    let created = target
        .call_json(
            "CreateQueue",
            &create_queue_body(queue, fifo_groups.is_some()),
            timeout,
        )
        .await?;
    let fifo = fifo_groups.map(FifoIds::new);
    let url = created["QueueUrl"]
        .as_str()
        .ok_or("CreateQueue answered no QueueUrl")?
        .to_string();
    let body = message_body(size);
    let batches = count.div_ceil(10);
    let next = Cell::new(0u64);
    let worker = || async {
        loop {
            let b = next.get();
            if b >= batches {
                return Ok(());
            }
            next.set(b + 1);
            let n = (count - b * 10).min(10) as usize;
            let answer = target
                .call_json(
                    "SendMessageBatch",
                    &send_batch_body(&url, &body, n, fifo.as_ref().map(|f| (f, b * 10))),
                    timeout,
                )
                .await?;
            let (ok, failed) = batch_outcome(&answer);
            if ok != n as u64 {
                return Err(format!("SendMessageBatch: {failed:?}"));
            }
        }
    };
    let mut set: FuturesUnordered<_> = (0..concurrency.max(1)).map(|_| worker()).collect();
    while let Some(done) = set.next().await {
        done?;
    }
    drop(set);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_lists() {
        let all = Workload::parse_list(&[]).unwrap();
        assert_eq!(all, Workload::SQS.to_vec());
        let l = Workload::parse_list(&[
            "sqs-cycle,sqs-send".into(),
            "sqs-send".into(),
            "startup".into(),
        ])
        .unwrap();
        assert_eq!(
            l,
            vec![Workload::SqsCycle, Workload::SqsSend, Workload::Startup]
        );
        assert!(Workload::parse_list(&["sqs-nope".into()]).is_err());
        assert_eq!(Workload::parse_list(&["all".into()]).unwrap().len(), 3);
        let s3 = Workload::parse_list(&["s3,s3-put".into()]).unwrap();
        assert_eq!(s3, Workload::S3.to_vec());
        assert!(s3.iter().all(|w| w.is_s3() && w.uses_endpoint()));
        assert_eq!(
            Workload::parse_list(&["dd".into()]).unwrap(),
            vec![Workload::Dd]
        );
        assert!(!Workload::Dd.uses_endpoint() && !Workload::Startup.uses_endpoint());
    }

    #[test]
    fn bodies_and_answers() {
        let b = message_body(256);
        assert_eq!(b.len(), 256);
        assert!(b.bytes().all(|c| c.is_ascii_alphanumeric()));
        let batch = send_batch_body("http://q", "x", 10, None);
        assert_eq!(batch["Entries"].as_array().map(Vec::len), Some(10));
        assert_eq!(batch["Entries"][9]["Id"], "m9");
        assert!(batch["Entries"][9].get("MessageGroupId").is_none());

        let answer: Value = serde_json::from_str(
            r#"{"Successful":[{"Id":"m0"},{"Id":"m1"}],"Failed":[{"Id":"m2","Code":"X","SenderFault":true}]}"#,
        )
        .unwrap();
        let (ok, failed) = batch_outcome(&answer);
        assert_eq!(ok, 2);
        assert_eq!(failed.len(), 1);
        assert!(failed[0].contains("m2"));
        assert_eq!(batch_outcome(&json!({})), (0, vec![]));

        let recv: Value =
            serde_json::from_str(r#"{"Messages":[{"MessageId":"a","ReceiptHandle":"h1"},{"ReceiptHandle":"h2"},{"x":1}]}"#)
                .unwrap();
        assert_eq!(
            receipt_handles(&recv),
            vec![("d0".into(), "h1".into()), ("d1".into(), "h2".into())]
        );
        assert!(receipt_handles(&json!({})).is_empty());
    }

    #[test]
    fn fifo_ids_and_bodies() {
        let ids = FifoIds::new(3);
        let (g, d) = ids.ids(7);
        assert_eq!(g, "g1");
        assert!(d.ends_with("-7") && d.len() == 10, "{d}");
        // Unique per message and per queue: another queue's ids have another prefix.
        assert_ne!(ids.ids(8).1, d);
        assert_ne!(FifoIds::new(3).ids(7).1, d);
        assert_eq!(FifoIds::new(0).ids(5).0, "g0");

        let batch = send_batch_body("http://q", "x", 4, Some((&ids, 20)));
        let groups: Vec<_> = (0..4)
            .map(|i| batch["Entries"][i]["MessageGroupId"].as_str().unwrap())
            .collect();
        assert_eq!(groups, ["g2", "g0", "g1", "g2"]);
        assert_eq!(
            batch["Entries"][3]["MessageDeduplicationId"].as_str(),
            Some(ids.ids(23).1.as_str())
        );
        let one = send_body("http://q", "x", Some((&ids, 4)));
        assert_eq!(one["MessageGroupId"], "g1");
        assert_eq!(one["MessageBody"], "x");
        assert!(send_body("http://q", "x", None)
            .get("MessageDeduplicationId")
            .is_none());

        assert_eq!(queue_name("q", true), "q.fifo");
        assert_eq!(queue_name("q", false), "q");
        assert_eq!(
            create_queue_body("q.fifo", true),
            json!({"QueueName": "q.fifo", "Attributes": {"FifoQueue": "true"}})
        );
        assert_eq!(create_queue_body("q", false), json!({"QueueName": "q"}));

        assert_eq!(label(Workload::SqsCycle, true), "sqs-cycle (fifo)");
        assert_eq!(label(Workload::SqsBacklog, true), "sqs-backlog (fifo)");
        assert_eq!(label(Workload::SqsCycle, false), "sqs-cycle");
        assert_eq!(label(Workload::S3Get, true), "s3-get");
        let mut r = RunResult::failed("e", Workload::SqsSend, "x".into());
        assert_eq!(r.label(), "sqs-send");
        r.fifo = true;
        assert_eq!(r.label(), "sqs-send (fifo)");
    }

    #[test]
    fn result_rates() {
        let mut r = RunResult::failed("e", Workload::SqsSend, "x".into());
        assert_eq!(r.ops_per_sec(), None);
        r.ok_ops = 1000;
        r.messages = 10_000;
        r.elapsed = Duration::from_secs(2);
        r.server = Some(ServerFigures {
            cpu_micros: 500_000.0,
            cpu_ticks: 50,
            rss_before_kib: 1,
            rss_peak_kib: 2,
            rss_after_kib: 2,
        });
        assert_eq!(r.ops_per_sec(), Some(500.0));
        assert_eq!(r.msgs_per_sec(), Some(5000.0));
        assert_eq!(r.server_cpu_us_per_op(), Some(500.0));
        assert_eq!(r.server_cpu_us_per_msg(), Some(50.0));
    }
}

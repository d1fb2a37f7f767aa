//! `nimbus bench`: drives any AWS endpoint (nimbus, or a peer emulator such as
//! moto or LocalStack) with real SigV4-signed requests and reports, per
//! workload, throughput, p50/p99 latency and errors, plus the server's CPU
//! time per operation and its memory when its PID is given.
//!
//! Performance is reported as ratios against a baseline measured in the same
//! run on the same machine with the same client: give two endpoints
//! (`--endpoint nimbus=URL --endpoint localstack=URL`, or `--compare URL`) and
//! the first is compared with each other one. Endpoints are measured one after
//! the other, never at once, so that they do not compete for the CPU.
//!
//! The client is kept lean so that it measures the server: one thread, one
//! hyper keep-alive pool, nimbus's own SigV4 signing, bodies built once per
//! run. Its own CPU per operation is printed too, as evidence.
//!
//! `--workload startup` instead measures this binary itself: spawn-to-healthy
//! time of `nimbus serve --ephemeral` and the idle RSS of the started server.
//!
//! `--workload s3` runs the S3 workloads (small and large PutObject and
//! GetObject, ListObjectsV2 through a big bucket); `dd`, run along with
//! `s3-put-large`, measures the disk's sequential write-plus-fsync rate, so
//! that large PUTs can be read as a fraction of what the disk allows.
//!
//! `--workload ec2-launch` times RunInstances to user data done for batches of
//! instances on the first endpoint (a nimbus), against bash doing the same
//! work on the host, and reads the memory per running instance.
//!
//! `--workload s3-scale,sqs-backlog` starts a nimbus of its own and compares
//! small operations on it empty and filled with many objects and messages
//! (memory, restart to ready, throughput).
//!
//! `--sqs-fifo` runs the SQS workloads (and sqs-backlog's queue) on FIFO
//! queues, their messages spread over `--sqs-fifo-groups` message groups.
//!
//! `--workload state-save` starts a nimbus of its own, fills it, and times
//! `nimbus state save` and `nimbus state load` against `tar` of the same data
//! directory.
//!
//! CloudWatch (module `cloudwatch`, all in the query protocol, which nimbus,
//! LocalStack and moto serve): `--workload cw-put` sends PutMetricData calls
//! of 20 MetricData members (20 metrics, one value each, stamped by the
//! server); `cw-get-stats` pre-fills 4 metrics with a day of 1-minute data and
//! times GetMetricStatistics (Period 60 over those 24 hours: 1,440 datapoints,
//! checked); `cw-get-data` pre-fills 2 metrics with 3 hours of 1-second data
//! (StorageResolution 1) and times GetMetricData (Period 1 over those 3 hours,
//! MaxDatapoints 10,800: 10,800 datapoints, checked); `cw-get` is both gets,
//! `cw` all three. msgs/s counts datapoints sent or answered.
//! `--workload alarm-eval` starts nimbuses of its own at `--alarm-clock-scale`
//! (60): an empty one, then one filled with a datapoint per cloud minute for
//! `--alarms` (10,000) metrics, measured for `--alarm-minutes` (20) cloud
//! minutes before and after `--alarms` PutMetricAlarm calls (one per metric);
//! it reports server CPU ms per evaluation period. `--workload cw-scale` starts
//! one that stores `--cw-scale-datapoints` (10,000,000) 1-minute datapoints
//! and reports RSS and disk bytes per datapoint, filled and after a restart.

mod client;
mod cloudwatch;
mod ec2;
mod measure;
mod own_server;
mod report;
mod s3;
mod scale;
mod sqs;
mod startup;
mod state_save;

use client::{Endpoint, S3Client, Signer};
use report::EndpointInfo;
use sqs::{RunConfig, RunResult, Target, Workload};
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
#[command(
    after_help = "Example, nimbus against LocalStack in one run, with both servers' CPU and memory:\n  \
    nimbus bench --endpoint nimbus=http://127.0.0.1:4566 --endpoint localstack=http://127.0.0.1:4598 \\\n    \
    --server-pid nimbus=PID1 --server-pid localstack=PID2 --workload all,startup"
)]
pub struct BenchArgs {
    /// Endpoint to drive, as URL or NAME=URL (default http://127.0.0.1:4566).
    /// Repeat it to compare: the first endpoint is measured against each other one.
    #[arg(long = "endpoint", value_name = "[NAME=]URL")]
    endpoints: Vec<String>,
    /// A baseline to compare with; the same as one more --endpoint.
    #[arg(long, value_name = "[NAME=]URL")]
    compare: Vec<String>,
    /// Workloads to run: sqs-send, sqs-send-batch, sqs-cycle, s3-put, s3-get,
    /// s3-list, s3-put-large, s3-get-large, startup, dd, ec2-launch, state-save,
    /// s3-scale, sqs-backlog, cw-put, cw-get-stats, cw-get-data, alarm-eval, cw-scale;
    /// all (the three SQS ones, the default), s3 (the five S3 ones), cw-get (both
    /// CloudWatch gets) or cw (cw-put and the gets). Repeatable or a comma list.
    /// s3-put-large brings dd along, as its baseline.
    #[arg(long = "workload", value_name = "LIST")]
    workloads: Vec<String>,
    /// Requests per workload (sqs-cycle: messages pre-filled and then consumed).
    #[arg(long, default_value_t = 10_000)]
    ops: u64,
    /// Requests in flight at once (one keep-alive connection each).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Message body size in bytes.
    #[arg(long, default_value_t = 256)]
    message_size: usize,
    /// Region to sign for.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Access key id to sign with.
    #[arg(long, default_value = "test")]
    access_key: String,
    /// Secret access key to sign with.
    #[arg(long, default_value = "test")]
    secret_key: String,
    /// PID of the server behind an endpoint, as PID or NAME=PID (unnamed ones
    /// go to the endpoints in order): adds its CPU time per operation and RSS.
    #[arg(long = "server-pid", value_name = "[NAME=]PID")]
    server_pids: Vec<String>,
    /// Print JSON on stdout (the human report then goes to stderr).
    #[arg(long)]
    json: bool,
    /// Starts measured by the startup workload.
    #[arg(long, default_value_t = 10)]
    startup_runs: u32,
    /// Binary the startup workload starts (default: this one).
    #[arg(long, value_name = "PATH")]
    startup_bin: Option<PathBuf>,
    /// Time limit of one workload's timed phase, in seconds; a run that hits
    /// it stops and is marked "(time limit)".
    #[arg(long, default_value_t = 300)]
    max_seconds: u64,
    /// Time limit of one request, in seconds (a request over it is an error).
    #[arg(long, default_value_t = 30)]
    request_timeout: u64,
    /// s3-put and s3-get: object size (bytes, or with KiB/MiB/GiB or KB/MB/GB).
    #[arg(long, default_value = "1KiB", value_parser = parse_size)]
    object_size: u64,
    /// s3-list: keys in the listed bucket (its untimed fill can be slow on peers;
    /// see --s3-list-bucket).
    #[arg(long, default_value_t = 100_000)]
    list_keys: u64,
    /// s3-list: ListObjectsV2 pages (of up to 1000 keys) timed.
    #[arg(long, default_value_t = 300)]
    list_pages: u64,
    /// s3-list: use this bucket, creating it if needed and writing only the keys
    /// it lacks, so that a filled bucket serves later runs.
    #[arg(long, value_name = "NAME")]
    s3_list_bucket: Option<String>,
    /// s3-put-large, s3-get-large and dd: object size.
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    large_size: u64,
    /// s3-put-large and s3-get-large: objects per run.
    #[arg(long, default_value_t = 16)]
    large_ops: u64,
    /// s3-put-large and s3-get-large: requests in flight at once.
    #[arg(long, default_value_t = 4)]
    large_concurrency: usize,
    /// dd: directory to write in; give the server's data disk (default: the temp dir).
    #[arg(long, value_name = "DIR")]
    disk_dir: Option<PathBuf>,
    /// ec2-launch: instances per RunInstances call, as a comma list.
    #[arg(long, default_value = "1,20", value_delimiter = ',')]
    launch_counts: Vec<usize>,
    /// ec2-launch: calls per batch size.
    #[arg(long, default_value_t = 5)]
    launch_rounds: u32,
    /// state-save: small objects (of --object-size) in the saved cloud.
    #[arg(long, default_value_t = 100_000)]
    state_objects: u64,
    /// state-save: queued messages (of --message-size) in the saved cloud.
    #[arg(long, default_value_t = 100_000)]
    state_messages: u64,
    /// state-save: stopped instances in the saved cloud.
    #[arg(long, default_value_t = 5)]
    state_instances: usize,
    /// state-save: timed rounds of save and load (the median is reported).
    #[arg(long, default_value_t = 3)]
    state_rounds: u32,
    /// s3-scale: small objects (of --object-size) stored before the filled run.
    #[arg(long, default_value_t = 1_000_000)]
    scale_objects: u64,
    /// sqs-backlog: messages (of --message-size) queued before the filled run.
    #[arg(long, default_value_t = 2_000_000)]
    backlog_messages: u64,
    /// Run the SQS workloads (sqs-send, sqs-send-batch, sqs-cycle, and sqs-backlog's
    /// fill and cycles) on FIFO queues (named *.fifo, FifoQueue=true) instead of
    /// standard ones: each message gets a MessageGroupId (see --sqs-fifo-groups) and
    /// a unique MessageDeduplicationId; the report labels these runs "(fifo)".
    #[arg(long)]
    sqs_fifo: bool,
    /// With --sqs-fifo: message groups the messages are spread over (message i
    /// goes to group g{i % N}).
    #[arg(long, default_value_t = 100, value_name = "N", requires = "sqs_fifo")]
    sqs_fifo_groups: u64,
    /// alarm-eval: metric alarms created, each on a metric of its own.
    #[arg(long, default_value_t = 10_000)]
    alarms: u64,
    /// alarm-eval: cloud minutes (evaluation periods) measured per server (at most 37).
    #[arg(long, default_value_t = 20)]
    alarm_minutes: u64,
    /// alarm-eval: the --clock-scale of its servers (one cloud minute lasts 60/N seconds).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=1000))]
    alarm_clock_scale: u32,
    /// cw-scale: 1-minute datapoints stored (10,000 per metric).
    #[arg(long, default_value_t = 10_000_000)]
    cw_scale_datapoints: u64,
}

use nimbus_core::parse_byte_size as parse_size;

const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4566";
/// SQS's own limit on a message body (raised from 256 KiB to 1 MiB in 2025);
/// peers with the old limit answer larger bodies with an error, which is shown.
const MAX_MESSAGE_SIZE: usize = 1024 * 1024;
/// S3's limit on one PutObject; larger objects need multipart uploads.
const MAX_OBJECT_SIZE: u64 = 5 << 30;
/// The small-object body is kept whole in memory; beyond this, use the large workloads.
const MAX_SMALL_OBJECT: u64 = 64 << 20;

pub fn run(args: BenchArgs) -> i32 {
    let plan = match Plan::from_args(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("nimbus bench: {e}");
            return 2;
        }
    };
    // One thread: the client should cost the machine as little as possible,
    // leaving the other core(s) to the server under test.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nimbus bench: cannot start the runtime: {e}");
            return 1;
        }
    };
    rt.block_on(plan.execute())
}

/// Validated command line.
struct Plan {
    endpoints: Vec<EndpointInfo>,
    workloads: Vec<Workload>,
    cfg: RunConfig,
    signer: Signer,
    json: bool,
    startup_runs: u32,
    startup_bin: Option<PathBuf>,
    launch_counts: Vec<usize>,
    launch_rounds: u32,
    state: state_save::StateSaveConfig,
    scale: scale::ScaleConfig,
    cw: cloudwatch::CwConfig,
}

impl Plan {
    fn from_args(a: BenchArgs) -> Result<Plan, String> {
        let mut workloads = Workload::parse_list(&a.workloads)?;
        // A large PUT's rate only means something next to the disk's own.
        if workloads.contains(&Workload::S3PutLarge) && !workloads.contains(&Workload::Dd) {
            workloads.push(Workload::Dd);
        }
        let mut specs: Vec<String> = a.endpoints.clone();
        if specs.is_empty() {
            specs.push(DEFAULT_ENDPOINT.to_string());
        }
        specs.extend(a.compare.iter().cloned());
        let mut endpoints: Vec<EndpointInfo> = Vec::new();
        for s in &specs {
            let e = Endpoint::parse(s)?;
            if endpoints.iter().any(|x| x.endpoint.name == e.name) {
                return Err(format!(
                    "two endpoints are named {:?}: name them (NAME=URL)",
                    e.name
                ));
            }
            endpoints.push(EndpointInfo {
                endpoint: e,
                server_pid: None,
                idle_rss_kib: None,
            });
        }
        assign_pids(&mut endpoints, &a.server_pids)?;
        if a.ops == 0 || a.concurrency == 0 {
            return Err("--ops and --concurrency must be at least 1".into());
        }
        if a.message_size == 0 || a.message_size > MAX_MESSAGE_SIZE {
            return Err(format!(
                "--message-size must be 1..={MAX_MESSAGE_SIZE} bytes (SQS's limit)"
            ));
        }
        if a.object_size == 0 || a.object_size > MAX_SMALL_OBJECT {
            return Err(format!(
                "--object-size must be 1..={MAX_SMALL_OBJECT} bytes (use --large-size beyond)"
            ));
        }
        if a.large_size == 0 || a.large_size > MAX_OBJECT_SIZE {
            return Err(format!(
                "--large-size must be 1..={MAX_OBJECT_SIZE} bytes (S3's single-PUT limit)"
            ));
        }
        if a.large_ops == 0 || a.large_concurrency == 0 || a.list_keys == 0 || a.list_pages == 0 {
            return Err(
                "--large-ops, --large-concurrency, --list-keys and --list-pages must be at least 1"
                    .into(),
            );
        }
        if usize::try_from(a.list_keys).is_err() || a.list_keys > 100_000_000 {
            return Err("--list-keys must be at most 100,000,000".into());
        }
        if a.alarms == 0 || a.alarm_minutes == 0 || a.cw_scale_datapoints == 0 {
            return Err(
                "--alarms, --alarm-minutes and --cw-scale-datapoints must be at least 1".into(),
            );
        }
        if a.sqs_fifo_groups == 0 {
            return Err("--sqs-fifo-groups must be at least 1".into());
        }
        if let Some(b) = &a.s3_list_bucket {
            if !s3::valid_bucket_name(b) {
                return Err(format!("--s3-list-bucket {b:?}: not a valid bucket name"));
            }
        }
        let disk_dir = a.disk_dir.unwrap_or_else(std::env::temp_dir);
        let scale_objects = if workloads.contains(&Workload::S3Scale) {
            a.scale_objects
        } else {
            0
        };
        let backlog_messages = if workloads.contains(&Workload::SqsBacklog) {
            a.backlog_messages
        } else {
            0
        };
        Ok(Plan {
            endpoints,
            workloads,
            cfg: RunConfig {
                ops: a.ops,
                concurrency: a.concurrency,
                message_size: a.message_size,
                request_timeout: Duration::from_secs(a.request_timeout.max(1)),
                max_duration: Duration::from_secs(a.max_seconds.max(1)),
                object_size: a.object_size as usize,
                list_keys: a.list_keys,
                list_pages: a.list_pages,
                list_bucket: a.s3_list_bucket,
                large_size: a.large_size,
                large_ops: a.large_ops,
                large_concurrency: a.large_concurrency,
                disk_dir: disk_dir.clone(),
                fifo_groups: a.sqs_fifo.then_some(a.sqs_fifo_groups),
            },
            signer: Signer {
                access_key: a.access_key,
                secret_key: a.secret_key,
                region: a.region,
            },
            json: a.json,
            startup_runs: a.startup_runs,
            startup_bin: a.startup_bin,
            launch_counts: a.launch_counts,
            launch_rounds: a.launch_rounds,
            state: state_save::StateSaveConfig {
                objects: a.state_objects,
                object_size: a.object_size as usize,
                messages: a.state_messages,
                message_size: a.message_size,
                instances: a.state_instances,
                rounds: a.state_rounds.max(1),
                concurrency: a.concurrency,
                request_timeout: Duration::from_secs(a.request_timeout.max(1)),
                dir: disk_dir.clone(),
            },
            scale: scale::ScaleConfig {
                objects: scale_objects,
                messages: backlog_messages,
                dir: disk_dir.clone(),
            },
            cw: cloudwatch::CwConfig {
                alarms: a.alarms,
                alarm_minutes: a.alarm_minutes,
                clock_scale: a.alarm_clock_scale,
                scale_datapoints: a.cw_scale_datapoints,
                dir: disk_dir,
            },
        })
    }

    async fn execute(mut self) -> i32 {
        let http: client::HttpClient = client::http_client(self.cfg.concurrency);
        let s3_http: S3Client =
            client::http_client(self.cfg.concurrency.max(self.cfg.large_concurrency));
        let mut results: Vec<RunResult> = Vec::new();
        let endpoint_workloads: Vec<Workload> = self
            .workloads
            .iter()
            .copied()
            .filter(|w| w.uses_endpoint())
            .collect();
        if !endpoint_workloads.is_empty() {
            for info in &mut self.endpoints {
                if let Some(pid) = info.server_pid {
                    match measure::sample_server(pid) {
                        Ok(s) => info.idle_rss_kib = Some(s.rss_kib),
                        Err(e) => {
                            eprintln!("nimbus bench: {e}");
                            return 2;
                        }
                    }
                }
            }
        }
        for info in &self.endpoints {
            if endpoint_workloads.is_empty() {
                break;
            }
            let target = Target {
                endpoint: &info.endpoint,
                signer: &self.signer,
                client: &http,
                s3_client: &s3_http,
                server_pid: info.server_pid,
            };
            let mut s3_state = s3::EndpointState::default();
            let mut cw_state = cloudwatch::EndpointState::default();
            for w in &endpoint_workloads {
                let fifo = self.cfg.fifo_groups.is_some();
                eprint!("{} {}: ", info.endpoint.name, sqs::label(*w, fifo));
                let r = if w.is_s3() {
                    s3::run(&target, *w, &self.cfg, &mut s3_state).await
                } else if w.is_cloudwatch() {
                    cloudwatch::run(&target, *w, &self.cfg, &mut cw_state).await
                } else {
                    sqs::run(&target, *w, &self.cfg).await
                };
                eprintln!("{}", progress_line(&r));
                results.push(r);
            }
        }
        // After the endpoint runs, so that its writes do not disturb them.
        let disk = if self.workloads.contains(&Workload::Dd) {
            eprint!("dd: ");
            let d = s3::disk_write(&self.cfg.disk_dir, self.cfg.large_size, s3::DD_RUNS);
            eprintln!(
                "{} MB/s median over {} runs in {}",
                d.median().map_or("-".into(), report::num),
                d.mb_per_sec.len(),
                d.dir
            );
            Some(d)
        } else {
            None
        };
        let startup = if self.workloads.contains(&Workload::Startup) {
            eprint!("startup: ");
            let s = startup::run(self.startup_bin.clone(), self.startup_runs).await;
            eprintln!("{}/{} started", s.times_us.len(), self.startup_runs.max(1));
            Some(s)
        } else {
            None
        };

        let launch = if self.workloads.contains(&Workload::Ec2Launch) {
            eprint!("ec2-launch: ");
            let info = &self.endpoints[0];
            let r = ec2::run(
                &info.endpoint,
                &self.signer,
                &http,
                &self.launch_counts,
                self.launch_rounds,
                info.server_pid,
            )
            .await;
            eprintln!("{} batch sizes measured", r.batches.len());
            Some(r)
        } else {
            None
        };

        let state = if self.workloads.contains(&Workload::StateSave) {
            eprint!("state-save: ");
            let r = state_save::run(self.startup_bin.clone(), &self.state, &self.signer).await;
            eprintln!();
            Some(r)
        } else {
            None
        };

        let scaled = if self.scale.objects > 0 || self.scale.messages > 0 {
            eprint!("scale: ");
            let r = scale::run(
                self.startup_bin.clone(),
                &self.cfg,
                &self.scale,
                &self.signer,
            )
            .await;
            eprintln!();
            Some(r)
        } else {
            None
        };

        let alarm_eval = if self.workloads.contains(&Workload::AlarmEval) {
            eprint!("alarm-eval: ");
            let r =
                cloudwatch::alarm_eval(self.startup_bin.clone(), &self.cfg, &self.cw, &self.signer)
                    .await;
            eprintln!();
            Some(r)
        } else {
            None
        };

        let cw_scale = if self.workloads.contains(&Workload::CwScale) {
            eprint!("cw-scale: ");
            let r =
                cloudwatch::cw_scale(self.startup_bin.clone(), &self.cfg, &self.cw, &self.signer)
                    .await;
            eprintln!();
            Some(r)
        } else {
            None
        };

        let mut text = report::text(
            &self.cfg,
            &self.endpoints,
            &results,
            startup.as_ref(),
            self.startup_runs,
            disk.as_ref(),
        );
        if let Some(l) = &launch {
            text += &ec2::text(l);
        }
        if let Some(r) = &state {
            text += &state_save::text(r);
        }
        if let Some(r) = &scaled {
            text += &report::text(&self.cfg, &r.endpoints, &r.results, None, 0, None);
            text += &scale::text(r);
        }
        if let Some(r) = &alarm_eval {
            text += &cloudwatch::alarm_eval_text(r);
        }
        if let Some(r) = &cw_scale {
            text += &cloudwatch::cw_scale_text(r);
        }
        if self.json {
            eprintln!("\n{text}");
            let mut doc = report::json(
                &self.cfg,
                &self.endpoints,
                &results,
                startup.as_ref(),
                disk.as_ref(),
            );
            if let Some(map) = doc.as_object_mut() {
                if let Some(l) = &launch {
                    map.insert("ec2_launch".into(), ec2::json(l));
                }
                if let Some(r) = &state {
                    map.insert("state_save".into(), state_save::json(r));
                }
                if let Some(r) = &scaled {
                    let mut doc = scale::json(r);
                    doc["runs"] = report::json(&self.cfg, &r.endpoints, &r.results, None, None);
                    map.insert("scale".into(), doc);
                }
                if let Some(r) = &alarm_eval {
                    map.insert("alarm_eval".into(), cloudwatch::alarm_eval_json(r));
                }
                if let Some(r) = &cw_scale {
                    map.insert("cw_scale".into(), cloudwatch::cw_scale_json(r));
                }
            }
            match serde_json::to_string_pretty(&doc) {
                Ok(s) => println!("{s}"),
                Err(e) => {
                    eprintln!("nimbus bench: cannot write JSON: {e}");
                    return 1;
                }
            }
        } else {
            println!("\n{text}");
        }

        let failed = results.iter().any(|r| r.failure.is_some() || r.errors > 0)
            || startup.as_ref().is_some_and(|s| !s.failures.is_empty())
            || disk.as_ref().is_some_and(|d| !d.failures.is_empty())
            || launch.as_ref().is_some_and(|l| !l.failures.is_empty())
            || state.as_ref().is_some_and(|r| !r.failures.is_empty())
            || alarm_eval.as_ref().is_some_and(|r| !r.failures.is_empty())
            || cw_scale.as_ref().is_some_and(|r| !r.failures.is_empty())
            || scaled.as_ref().is_some_and(|r| {
                !r.failures.is_empty()
                    || r.results
                        .iter()
                        .any(|x| x.failure.is_some() || x.errors > 0)
            });
        i32::from(failed)
    }
}

/// A one-line summary printed as each run ends, so long runs show progress.
fn progress_line(r: &RunResult) -> String {
    if let Some(why) = &r.failure {
        return format!("FAILED: {why}");
    }
    let mb = r
        .mb_per_sec()
        .map_or(String::new(), |v| format!(", {} MB/s", report::num(v)));
    format!(
        "{} ok ops in {:.2} s, {} ops/s{mb}, p50 {} ms, p99 {} ms, {} errors",
        r.ok_ops,
        r.secs(),
        r.ops_per_sec().map_or("-".into(), report::num),
        r.p(50.0).map_or("-".into(), report::ms),
        r.p(99.0).map_or("-".into(), report::ms),
        r.errors
    )
}

/// Maps `--server-pid` values (`PID` or `NAME=PID`) onto endpoints; unnamed
/// PIDs go to the endpoints that have none yet, in order.
fn assign_pids(endpoints: &mut [EndpointInfo], specs: &[String]) -> Result<(), String> {
    let parse_pid = |s: &str| {
        s.trim()
            .parse::<u32>()
            .map_err(|_| format!("--server-pid {s:?}: not a PID"))
    };
    let mut unnamed = Vec::new();
    for spec in specs {
        match spec.rsplit_once('=') {
            Some((name, pid)) => {
                let pid = parse_pid(pid)?;
                let e = endpoints
                    .iter_mut()
                    .find(|e| e.endpoint.name == name)
                    .ok_or_else(|| {
                        format!("--server-pid {spec:?}: no endpoint is named {name:?}")
                    })?;
                e.server_pid = Some(pid);
            }
            None => unnamed.push(parse_pid(spec)?),
        }
    }
    let mut free = endpoints.iter_mut().filter(|e| e.server_pid.is_none());
    for pid in unnamed {
        let e = free
            .next()
            .ok_or_else(|| "more --server-pid values than endpoints".to_string())?;
        e.server_pid = Some(pid);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn plan(argv: &[&str]) -> Result<Plan, String> {
        let cli = Cli::try_parse_from(std::iter::once("bench").chain(argv.iter().copied()))
            .map_err(|e| e.to_string())?;
        Plan::from_args(cli.args)
    }

    #[test]
    fn s3_workloads_and_sizes() {
        let p = plan(&["--workload", "s3"]).unwrap();
        let mut want = Workload::S3.to_vec();
        want.push(Workload::Dd);
        assert_eq!(p.workloads, want);
        assert_eq!(
            (p.cfg.object_size, p.cfg.list_keys, p.cfg.large_size),
            (1024, 100_000, 64 << 20)
        );
        assert_eq!((p.cfg.large_ops, p.cfg.large_concurrency), (16, 4));
        let p = plan(&["--workload", "s3-get,dd", "--large-size", "8MiB"]).unwrap();
        assert_eq!(p.workloads, vec![Workload::S3Get, Workload::Dd]);
        assert_eq!(p.cfg.large_size, 8 << 20);
        assert_eq!(
            plan(&["--workload", "all"]).unwrap().workloads,
            Workload::SQS.to_vec()
        );
    }
    #[test]
    fn defaults() {
        let p = plan(&[]).unwrap();
        assert_eq!(p.endpoints.len(), 1);
        assert_eq!(p.endpoints[0].endpoint.url, DEFAULT_ENDPOINT);
        assert_eq!(p.workloads, Workload::SQS.to_vec());
        assert_eq!(
            (p.cfg.ops, p.cfg.concurrency, p.cfg.message_size),
            (10_000, 16, 256)
        );
        assert_eq!(p.signer.region, "us-east-1");
        assert!(!p.json);
    }

    #[test]
    fn comparison_and_pids() {
        let p = plan(&[
            "--endpoint",
            "nimbus=http://127.0.0.1:4566",
            "--compare",
            "localstack=http://127.0.0.1:4598",
            "--server-pid",
            "localstack=42",
            "--server-pid",
            "7",
            "--workload",
            "sqs-send,sqs-cycle",
        ])
        .unwrap();
        let names: Vec<_> = p
            .endpoints
            .iter()
            .map(|e| (e.endpoint.name.as_str(), e.server_pid))
            .collect();
        assert_eq!(names, vec![("nimbus", Some(7)), ("localstack", Some(42))]);
        assert_eq!(p.workloads, vec![Workload::SqsSend, Workload::SqsCycle]);
    }

    #[test]
    fn scale_workloads_fill_only_what_is_selected() {
        let p = plan(&["--workload", "s3-scale", "--scale-objects", "500"]).unwrap();
        assert_eq!(p.workloads, vec![Workload::S3Scale]);
        assert_eq!((p.scale.objects, p.scale.messages), (500, 0));
        let p = plan(&["--workload", "sqs-backlog,s3-scale"]).unwrap();
        assert_eq!((p.scale.objects, p.scale.messages), (1_000_000, 2_000_000));
        assert_eq!(plan(&[]).unwrap().scale.objects, 0);
    }

    #[test]
    fn cloudwatch_workloads_and_flags() {
        let p = plan(&["--workload", "cw-get,alarm-eval"]).unwrap();
        assert_eq!(
            p.workloads,
            vec![
                Workload::CwGetStats,
                Workload::CwGetData,
                Workload::AlarmEval
            ]
        );
        assert!(p.workloads[..2].iter().all(|w| w.uses_endpoint()));
        assert!(!Workload::AlarmEval.uses_endpoint() && !Workload::CwScale.uses_endpoint());
        assert_eq!(
            (p.cw.alarms, p.cw.alarm_minutes, p.cw.clock_scale),
            (10_000, 20, 60)
        );
        assert_eq!(p.cw.scale_datapoints, 10_000_000);
        let p = plan(&["--workload", "cw,cw-scale", "--cw-scale-datapoints", "5000"]).unwrap();
        let mut want = Workload::CW.to_vec();
        want.push(Workload::CwScale);
        assert_eq!(p.workloads, want);
        assert_eq!(p.cw.scale_datapoints, 5000);
        assert!(plan(&["--alarms", "0"]).is_err());
        assert!(plan(&["--alarm-clock-scale", "0"]).is_err());
        assert!(plan(&["--workload", "cw-nope"]).is_err());
    }

    #[test]
    fn fifo_flags() {
        assert_eq!(plan(&[]).unwrap().cfg.fifo_groups, None);
        let p = plan(&["--sqs-fifo"]).unwrap();
        assert_eq!(p.cfg.fifo_groups, Some(100));
        assert_eq!(p.workloads, Workload::SQS.to_vec());
        let p = plan(&[
            "--workload",
            "sqs-backlog",
            "--sqs-fifo",
            "--sqs-fifo-groups",
            "7",
            "--backlog-messages",
            "1000",
        ])
        .unwrap();
        assert_eq!(p.cfg.fifo_groups, Some(7));
        assert_eq!(p.scale.messages, 1000);
        let p = plan(&[
            "--sqs-fifo-groups=1",
            "--sqs-fifo",
            "--workload",
            "sqs-cycle",
        ])
        .unwrap();
        assert_eq!(p.cfg.fifo_groups, Some(1));
        // Groups without FIFO queues would be silently ignored: refused instead.
        assert!(plan(&["--sqs-fifo-groups", "5"]).is_err());
        assert!(plan(&["--sqs-fifo", "--sqs-fifo-groups", "0"]).is_err());
        assert!(plan(&["--sqs-fifo", "--sqs-fifo-groups", "-1"]).is_err());
        assert!(plan(&["--sqs-fifo", "--sqs-fifo-groups", "many"]).is_err());
        assert!(plan(&["--sqs-fifo=yes"]).is_err());
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(plan(&["--endpoint", "http://a:1", "--endpoint", "http://a:1"]).is_err());
        assert!(plan(&["--server-pid", "1", "--server-pid", "2"]).is_err());
        assert!(plan(&["--server-pid", "nope=1"]).is_err());
        assert!(plan(&["--ops", "0"]).is_err());
        assert!(plan(&["--message-size", "2000000"]).is_err());
        assert!(plan(&["--workload", "s3-nope"]).is_err());
        assert!(plan(&["--large-size", "0"]).is_err());
        assert!(plan(&["--large-size", "6GiB"]).is_err());
        assert!(plan(&["--object-size", "1TB"]).is_err());
        assert!(plan(&["--s3-list-bucket", "Not_Valid"]).is_err());
        assert!(plan(&["--large-concurrency", "0"]).is_err());
    }
}

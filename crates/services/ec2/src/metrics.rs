//! EC2's CloudWatch metrics (namespace `AWS/EC2`): this module owns the
//! [`MetricSource`] that samples every running instance once per cloud
//! minute (the runtime's counters, see `nimbus_runtime::Usage`) and turns
//! the samples into what AWS publishes ("List the available CloudWatch
//! metrics for your instances"):
//!
//! - CPUUtilization (Percent): CPU time over the minute against the instance
//!   type's vCPUs. CPU time is real time, so the minute is measured on the
//!   wall clock between two samples (a cloud minute lasts 1/N of a real one
//!   under `--clock-scale N`).
//! - NetworkIn/Out (Bytes), NetworkPacketsIn/Out (Count): where the driver
//!   has an interface (namespace driver).
//! - DiskReadBytes/WriteBytes (Bytes), DiskReadOps/WriteOps (Count): where
//!   the host accounts the instance's block I/O.
//! - StatusCheckFailed, StatusCheckFailed_Instance, StatusCheckFailed_System
//!   (Count, 0 or 1): 0 for a running instance; every minute whatever the
//!   monitoring, as AWS publishes status checks.
//!
//! Basic monitoring publishes at each five-minute boundary the statistics
//! of the five one-minute samples (timestamp: the period's start); detailed
//! monitoring (MonitorInstances, RunInstances' Monitoring.Enabled) publishes
//! each minute. Each datapoint goes out with the dimension InstanceId, and
//! again aggregated over instances: by AutoScalingGroupName for instances
//! tagged `aws:autoscaling:groupName`, and by ImageId and by InstanceType for
//! instances with detailed monitoring, as AWS does.
//!
//! The first sample of an instance (and after a restart of the machine,
//! when its counters start again) only sets the baseline. Memory: about
//! 520 bytes per running instance (the last sample and five-minute
//! accumulators), dropped when it stops.

use crate::instances::RUNNING;
use crate::{instance_types, Ec2};
use nimbus_core::telemetry::{
    CollectionWindow, MetricSource, Publication, PublishedDatum, PublishedValue,
};
use nimbus_core::BoxFuture;
use nimbus_runtime::Usage;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, Weak};
use std::time::Instant;

const NAMESPACE: &str = "AWS/EC2";
/// Basic monitoring's period.
const BASIC_PERIOD_MS: u64 = 300_000;
/// The tag that puts an instance in an Auto Scaling group's metrics.
const ASG_TAG: &str = "aws:autoscaling:groupName";

/// The metrics sampled each minute, in publishing order, with their units.
const SAMPLED: [(&str, &str); 9] = [
    ("CPUUtilization", "Percent"),
    ("NetworkIn", "Bytes"),
    ("NetworkOut", "Bytes"),
    ("NetworkPacketsIn", "Count"),
    ("NetworkPacketsOut", "Count"),
    ("DiskReadBytes", "Bytes"),
    ("DiskWriteBytes", "Bytes"),
    ("DiskReadOps", "Count"),
    ("DiskWriteOps", "Count"),
];
const STATUS_CHECKS: [&str; 3] = [
    "StatusCheckFailed",
    "StatusCheckFailed_Instance",
    "StatusCheckFailed_System",
];

/// What the collector needs of a running instance's record.
#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    pub account: String,
    pub region: String,
    pub id: String,
    pub image_id: String,
    pub instance_type: String,
    pub vcpus: u32,
    pub group: Option<String>,
    pub detailed: bool,
}

/// Count, sum, minimum and maximum of samples.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stats {
    count: f64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Stats {
    fn of(v: f64) -> Stats {
        Stats {
            count: 1.0,
            sum: v,
            min: v,
            max: v,
        }
    }

    fn merge(&mut self, o: &Stats) {
        self.count += o.count;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }

    fn value(&self) -> PublishedValue {
        PublishedValue::Statistics {
            sample_count: self.count,
            sum: self.sum,
            minimum: self.min,
            maximum: self.max,
        }
    }
}

/// One instance between collections.
#[derive(Debug, Default)]
struct Tracked {
    last: Option<(Instant, Usage)>,
    /// Basic monitoring: the samples of the current five minutes, per metric
    /// of [`SAMPLED`].
    period: [Option<Stats>; 9],
}

/// The sampling state of every running instance (pure: tests feed it).
#[derive(Debug, Default)]
pub struct Sampler {
    tracked: HashMap<String, Tracked>,
}

/// The change of a counter since the last sample; a counter that went back
/// started again (the machine restarted), so all of it is new.
fn delta(new: u64, old: u64) -> u64 {
    if new >= old {
        new - old
    } else {
        new
    }
}

/// One minute's values of [`SAMPLED`] (None: not measured).
fn minute_values(
    r: &Running,
    prev: &(Instant, Usage),
    now: Instant,
    u: &Usage,
) -> [Option<f64>; 9] {
    let (then, old) = prev;
    let elapsed_ns = now.saturating_duration_since(*then).as_nanos() as f64;
    let cpu = match (u.cpu_ns, old.cpu_ns) {
        (Some(n), Some(o)) if elapsed_ns > 0.0 && n >= o => {
            let capacity = elapsed_ns * f64::from(r.vcpus.max(1));
            Some(((n - o) as f64 / capacity * 100.0).clamp(0.0, 100.0))
        }
        _ => None,
    };
    let net = match (u.network, old.network) {
        (Some(n), Some(o)) => [
            Some(delta(n.bytes_in, o.bytes_in) as f64),
            Some(delta(n.bytes_out, o.bytes_out) as f64),
            Some(delta(n.packets_in, o.packets_in) as f64),
            Some(delta(n.packets_out, o.packets_out) as f64),
        ],
        _ => [None; 4],
    };
    let disk = match (u.disk, old.disk) {
        (Some(n), Some(o)) => [
            Some(delta(n.read_bytes, o.read_bytes) as f64),
            Some(delta(n.write_bytes, o.write_bytes) as f64),
            Some(delta(n.read_ops, o.read_ops) as f64),
            Some(delta(n.write_ops, o.write_ops) as f64),
        ],
        _ => [None; 4],
    };
    [
        cpu, net[0], net[1], net[2], net[3], disk[0], disk[1], disk[2], disk[3],
    ]
}

/// Aggregates by (account, region, metric, unit, dimension, value, timestamp).
type AggregateKey = (
    String,
    String,
    &'static str,
    &'static str,
    &'static str,
    String,
    u64,
);

impl Sampler {
    /// Takes one sample of each running instance at the end of `window`
    /// (`now`: when the counters were read) and returns what is due.
    pub fn observe(
        &mut self,
        window: CollectionWindow,
        now: Instant,
        instances: Vec<(Running, Usage)>,
    ) -> Vec<Publication> {
        let ends_basic = window.ends_period(BASIC_PERIOD_MS);
        let basic_start = window.end_ms.saturating_sub(BASIC_PERIOD_MS);
        let mut own: BTreeMap<(String, String), Vec<PublishedDatum>> = BTreeMap::new();
        let mut aggregates: BTreeMap<AggregateKey, Stats> = BTreeMap::new();
        let mut seen = Vec::with_capacity(instances.len());
        for (r, usage) in instances {
            seen.push(r.id.clone());
            let t = self.tracked.entry(r.id.clone()).or_default();
            let values = match &t.last {
                Some(prev) => minute_values(&r, prev, now, &usage),
                None => [None; 9],
            };
            t.last = Some((now, usage));
            // (metric, unit, timestamp, stats) this instance publishes now.
            let mut due: Vec<(&'static str, &'static str, u64, Stats)> = Vec::new();
            for check in STATUS_CHECKS {
                due.push((check, "Count", window.start_ms, Stats::of(0.0)));
            }
            for (k, &(metric, unit)) in SAMPLED.iter().enumerate() {
                if r.detailed {
                    t.period[k] = None;
                    if let Some(v) = values[k] {
                        due.push((metric, unit, window.start_ms, Stats::of(v)));
                    }
                    continue;
                }
                if let Some(v) = values[k] {
                    match &mut t.period[k] {
                        Some(s) => s.merge(&Stats::of(v)),
                        slot => *slot = Some(Stats::of(v)),
                    }
                }
                if ends_basic {
                    if let Some(s) = t.period[k].take() {
                        due.push((metric, unit, basic_start, s));
                    }
                }
            }
            let mut groups: Vec<(&'static str, &str)> = Vec::new();
            if let Some(g) = &r.group {
                groups.push(("AutoScalingGroupName", g));
            }
            if r.detailed {
                groups.push(("ImageId", &r.image_id));
                groups.push(("InstanceType", &r.instance_type));
            }
            let data = own
                .entry((r.account.clone(), r.region.clone()))
                .or_default();
            for (metric, unit, timestamp_ms, stats) in due {
                for (dim, value) in &groups {
                    aggregates
                        .entry((
                            r.account.clone(),
                            r.region.clone(),
                            metric,
                            unit,
                            dim,
                            value.to_string(),
                            timestamp_ms,
                        ))
                        .and_modify(|s| s.merge(&stats))
                        .or_insert(stats);
                }
                data.push(PublishedDatum {
                    metric_name: metric.to_string(),
                    dimensions: vec![("InstanceId".to_string(), r.id.clone())],
                    unit,
                    timestamp_ms,
                    value: if stats.count == 1.0 {
                        PublishedValue::Value(stats.sum)
                    } else {
                        stats.value()
                    },
                });
            }
        }
        // Instances no longer running are forgotten (a start begins afresh).
        self.tracked.retain(|id, _| seen.contains(id));
        for ((account, region, metric, unit, dim, value, timestamp_ms), stats) in aggregates {
            own.entry((account, region))
                .or_default()
                .push(PublishedDatum {
                    metric_name: metric.to_string(),
                    dimensions: vec![(dim.to_string(), value)],
                    unit,
                    timestamp_ms,
                    value: stats.value(),
                });
        }
        own.into_iter()
            .map(|((account, region), data)| Publication {
                account,
                region,
                namespace: NAMESPACE.to_string(),
                data,
            })
            .collect()
    }
}

/// The AWS/EC2 source of one EC2 service.
pub struct Ec2Metrics {
    pub(crate) ec2: Weak<Ec2>,
    pub(crate) sampler: Mutex<Sampler>,
}

impl Ec2Metrics {
    async fn collect_all(&self, window: CollectionWindow) -> Vec<Publication> {
        let Some(ec2) = self.ec2.upgrade() else {
            return Vec::new();
        };
        let running = ec2.running_for_metrics();
        if running.is_empty() {
            self.sampler
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .tracked
                .clear();
            return Vec::new();
        }
        let runtime = ec2.runtime();
        // /proc and /sys reads: off the async workers.
        let measured =
            tokio::task::spawn_blocking(move || (runtime.usage_all(), Instant::now())).await;
        let (mut usage, now) = match measured {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("ec2: measuring instances failed: {e}");
                return Vec::new();
            }
        };
        let sampled: Vec<(Running, Usage)> = running
            .into_iter()
            .filter_map(|r| usage.remove(&r.id).map(|u| (r, u)))
            .collect();
        self.sampler
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(window, now, sampled)
    }
}

impl MetricSource for Ec2Metrics {
    fn name(&self) -> &'static str {
        "ec2"
    }

    fn collect(&self, window: CollectionWindow) -> BoxFuture<'_, Vec<Publication>> {
        Box::pin(self.collect_all(window))
    }
}

impl Ec2 {
    /// Every running instance as the metrics need it.
    fn running_for_metrics(&self) -> Vec<Running> {
        let partitions = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
        partitions
            .values()
            .flat_map(|p| p.instances.values())
            .filter(|i| i.state == RUNNING)
            .map(|i| Running {
                account: i.owner.clone(),
                region: i.region.clone(),
                id: i.id.clone(),
                image_id: i.image_id.clone(),
                instance_type: i.instance_type.clone(),
                vcpus: instance_types::limits(&i.instance_type).map_or(1, |(c, _)| c),
                group: i
                    .tags
                    .iter()
                    .find(|(k, _)| k == ASG_TAG)
                    .map(|(_, v)| v.clone()),
                detailed: i.monitoring,
            })
            .collect()
    }

    /// The AWS/EC2 metrics of every running instance, for CloudWatch to collect.
    pub fn metric_source(self: &std::sync::Arc<Self>) -> std::sync::Arc<dyn MetricSource> {
        std::sync::Arc::new(Ec2Metrics {
            ec2: std::sync::Arc::downgrade(self),
            sampler: Mutex::new(Sampler::default()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nimbus_runtime::{Io, Network};
    use std::time::Duration;

    fn running(id: &str, detailed: bool, group: Option<&str>) -> Running {
        Running {
            account: "000000000000".into(),
            region: "us-east-1".into(),
            id: id.into(),
            image_id: "ami-1".into(),
            instance_type: "t3.micro".into(),
            vcpus: 2,
            group: group.map(str::to_string),
            detailed,
        }
    }

    fn usage(cpu_s: f64, bytes_in: u64) -> Usage {
        Usage {
            cpu_ns: Some((cpu_s * 1e9) as u64),
            network: Some(Network {
                bytes_in,
                bytes_out: bytes_in / 2,
                packets_in: bytes_in / 100,
                packets_out: 1,
            }),
            disk: Some(Io::default()),
        }
    }

    fn minute(m: u64) -> CollectionWindow {
        CollectionWindow {
            start_ms: m * 60_000,
            end_ms: (m + 1) * 60_000,
        }
    }

    fn find<'a>(
        pubs: &'a [Publication],
        metric: &str,
        dim: (&str, &str),
    ) -> Vec<&'a PublishedDatum> {
        pubs.iter()
            .flat_map(|p| &p.data)
            .filter(|d| {
                d.metric_name == metric
                    && d.dimensions == vec![(dim.0.to_string(), dim.1.to_string())]
            })
            .collect()
    }

    #[test]
    fn an_instance_costs_a_few_hundred_bytes() {
        // The tracked state, plus its key (an instance id) in the map.
        let size = std::mem::size_of::<Tracked>() + std::mem::size_of::<String>() + 19;
        assert!(size <= 600, "{size}");
    }

    #[test]
    fn detailed_monitoring_publishes_each_minute() {
        let mut s = Sampler::default();
        let t0 = Instant::now();
        // Baseline: only the status checks.
        let first = s.observe(
            minute(0),
            t0,
            vec![(running("i-1", true, None), usage(0.0, 0))],
        );
        assert!(find(&first, "CPUUtilization", ("InstanceId", "i-1")).is_empty());
        assert_eq!(
            find(&first, "StatusCheckFailed", ("InstanceId", "i-1")).len(),
            1
        );
        // One of two vCPUs busy for the (real) second the minute lasted.
        let t1 = t0 + Duration::from_secs(1);
        let pubs = s.observe(
            minute(1),
            t1,
            vec![(running("i-1", true, None), usage(1.0, 5000))],
        );
        let cpu = find(&pubs, "CPUUtilization", ("InstanceId", "i-1"));
        assert_eq!(cpu.len(), 1);
        assert_eq!(cpu[0].timestamp_ms, 60_000);
        assert_eq!(cpu[0].unit, "Percent");
        match cpu[0].value {
            PublishedValue::Value(v) => assert!((v - 50.0).abs() < 1e-6, "{v}"),
            other => panic!("{other:?}"),
        }
        let net = find(&pubs, "NetworkIn", ("InstanceId", "i-1"));
        assert_eq!(net[0].value, PublishedValue::Value(5000.0));
        assert_eq!(net[0].unit, "Bytes");
        assert_eq!(find(&pubs, "DiskReadOps", ("InstanceId", "i-1")).len(), 1);
        // Detailed: aggregated by image and type too.
        assert_eq!(find(&pubs, "CPUUtilization", ("ImageId", "ami-1")).len(), 1);
        assert_eq!(
            find(&pubs, "CPUUtilization", ("InstanceType", "t3.micro")).len(),
            1
        );
    }

    #[test]
    fn basic_monitoring_publishes_five_minutes_at_their_end() {
        let mut s = Sampler::default();
        let t0 = Instant::now();
        let r = || running("i-2", false, Some("web"));
        s.observe(minute(9), t0, vec![(r(), usage(0.0, 0))]);
        let mut last = Vec::new();
        for (k, m) in (10..15).enumerate() {
            let t = t0 + Duration::from_secs(k as u64 + 1);
            // The first minute busy on both vCPUs (2 s of CPU in 1 s), the others idle.
            let cpu = 2.0;
            last = s.observe(minute(m), t, vec![(r(), usage(cpu, 1000 * (k as u64 + 1)))]);
            if m < 14 {
                assert!(find(&last, "CPUUtilization", ("InstanceId", "i-2")).is_empty());
                // Status checks every minute whatever the monitoring.
                assert_eq!(
                    find(&last, "StatusCheckFailed_System", ("InstanceId", "i-2")).len(),
                    1
                );
            }
        }
        let cpu = find(&last, "CPUUtilization", ("InstanceId", "i-2"));
        assert_eq!(cpu.len(), 1);
        assert_eq!(cpu[0].timestamp_ms, 10 * 60_000);
        match cpu[0].value {
            PublishedValue::Statistics {
                sample_count,
                sum,
                minimum,
                maximum,
            } => {
                assert_eq!(sample_count, 5.0);
                assert!((maximum - 100.0).abs() < 1e-6);
                assert_eq!(minimum, 0.0);
                assert!((sum - 100.0).abs() < 1e-6);
            }
            other => panic!("{other:?}"),
        }
        let net = find(&last, "NetworkIn", ("InstanceId", "i-2"));
        assert!(matches!(net[0].value, PublishedValue::Statistics { sum, .. } if sum == 5000.0));
        // Aggregated by its group, not by image or type (basic monitoring).
        assert_eq!(
            find(&last, "CPUUtilization", ("AutoScalingGroupName", "web")).len(),
            1
        );
        assert!(find(&last, "CPUUtilization", ("ImageId", "ami-1")).is_empty());
    }

    #[test]
    fn aggregates_combine_instances_and_restarts_start_afresh() {
        let mut s = Sampler::default();
        let t0 = Instant::now();
        let pair = |a: f64, b: f64| {
            vec![
                (running("i-a", true, Some("g")), usage(a, 0)),
                (running("i-b", true, Some("g")), usage(b, 0)),
            ]
        };
        s.observe(minute(0), t0, pair(0.0, 0.0));
        let pubs = s.observe(minute(1), t0 + Duration::from_secs(1), pair(2.0, 0.0));
        let g = find(&pubs, "CPUUtilization", ("AutoScalingGroupName", "g"));
        assert_eq!(
            g[0].value,
            PublishedValue::Statistics {
                sample_count: 2.0,
                sum: 100.0,
                minimum: 0.0,
                maximum: 100.0
            }
        );
        // i-b stopped: forgotten; when it runs again its first sample is a baseline.
        s.observe(
            minute(2),
            t0 + Duration::from_secs(2),
            vec![(running("i-a", true, None), usage(2.0, 0))],
        );
        let back = s.observe(
            minute(3),
            t0 + Duration::from_secs(3),
            vec![(running("i-b", true, None), usage(0.5, 0))],
        );
        assert!(find(&back, "CPUUtilization", ("InstanceId", "i-b")).is_empty());
        assert_eq!(delta(5, 10), 5, "a counter that started again");
    }
}

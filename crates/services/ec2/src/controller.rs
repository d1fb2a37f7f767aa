//! Makes the machines match the records. Every instance state change the API
//! records (pending, stopping, shutting-down, a reboot) is carried out here
//! in the background by one reconcile step per instance, serialized per
//! instance: start the machine and mark it running, stop it and mark it
//! stopped, or end it, remove its disk and DeleteOnTermination volumes, free
//! its address and mark it terminated. At start every instance whose desired
//! state is running is brought back (as after a host reboot); when a machine
//! goes down by itself, its instance follows its shutdown behaviour. Also the
//! views the metadata service needs.

use crate::instances::{
    self, parse_cidr, private_dns, PENDING, RUNNING, SHUTTING_DOWN, STOPPED, STOPPING, TERMINATED,
};
use crate::state::{Instance, Partition};
use crate::{instance_types, Ec2};
use base64::Engine as _;
use nimbus_core::{AwsError, BoxFuture, RequestContext};
use nimbus_runtime::{BootConfig, LaunchSpec, Runtime};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a stopping machine gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// A reset ends every machine at once; test suites wait for it between tests.
const RESET_GRACE: Duration = Duration::from_secs(2);

/// Resolves an instance profile (name or ARN) of an account to its (ARN, id).
pub type ProfileResolver =
    Arc<dyn Fn(String, String) -> BoxFuture<'static, Option<(String, String)>> + Send + Sync>;

pub struct Machines {
    runtime: Arc<Runtime>,
    /// Private addresses of every instance not terminated, in any partition (one bridge).
    ips: Mutex<HashSet<Ipv4Addr>>,
    /// One lock per instance: its reconcile steps never overlap.
    ops: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    profiles: OnceLock<ProfileResolver>,
    /// nimbus's API as instances reach it, and (process driver) the metadata base URL.
    endpoints: OnceLock<(String, Option<String>)>,
    /// Keys the process driver's metadata URLs (see [`Ec2::metadata_secret`]).
    metadata_key: [u8; 32],
    /// Elastic IPs: where they are drawn from, and what answers on them.
    pool: OnceLock<(Ipv4Addr, u8)>,
    allocated: Mutex<HashSet<Ipv4Addr>>,
    forwarder: Arc<nimbus_net::forward::Forwarder>,
    /// Partitions with a firewall refresh scheduled, and the ruleset each running
    /// instance has loaded (so unchanged ones are not reloaded).
    refresh_pending: Mutex<HashSet<(String, String)>>,
    loaded_rules: Mutex<HashMap<String, String>>,
}

/// Elastic IPs come from here unless `--elastic-ip-cidr` says otherwise: loopback,
/// so that an address never leads off this machine.
const DEFAULT_POOL: (Ipv4Addr, u8) = (Ipv4Addr::new(127, 100, 0, 0), 16);

impl Machines {
    pub fn address_pool(&self) -> (Ipv4Addr, u8) {
        self.pool.get().copied().unwrap_or(DEFAULT_POOL)
    }

    pub fn forwarder(&self) -> &nimbus_net::forward::Forwarder {
        &self.forwarder
    }

    /// Elastic IPs allocated in any partition (one pool for the host).
    pub fn allocated(&self) -> std::sync::MutexGuard<'_, HashSet<Ipv4Addr>> {
        lock(&self.allocated)
    }

    pub fn set_address_pool(&self, pool: (Ipv4Addr, u8)) {
        let _ = self.pool.set(pool);
    }
}

/// What the metadata service tells an instance about itself.
#[derive(Debug, Clone)]
pub struct InstanceMeta {
    pub account: String,
    pub region: String,
    pub instance_id: String,
    pub image_id: String,
    pub instance_type: String,
    pub private_ip: String,
    pub public_ip: Option<String>,
    /// EC2's public DNS name of the public address, when there is one.
    pub public_hostname: Option<String>,
    pub zone: String,
    pub hostname: String,
    pub mac: String,
    pub subnet_id: String,
    pub subnet_cidr: String,
    pub vpc_id: String,
    pub vpc_cidr: String,
    pub group_names: Vec<String>,
    pub group_ids: Vec<String>,
    pub key: Option<(String, String)>,
    pub user_data: Option<Vec<u8>>,
    pub tags: Vec<(String, String)>,
    pub tags_enabled: bool,
    pub profile: Option<(String, String)>,
    pub launch_ms: u64,
    pub reservation_id: String,
    pub http_tokens: String,
    pub http_endpoint: String,
    pub eni_id: String,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A metadata secret in hex: 256 bits.
const SECRET_HEX_LEN: usize = 64;

/// Equal without an early exit, so response times say nothing of how much of a
/// guessed secret was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// HMAC-SHA256 of the instance id under the key, in hex.
fn secret_for(key: &[u8; 32], id: &str) -> String {
    use hmac::{KeyInit, Mac};
    // HMAC zero-pads a short key to the hash's block: the same MAC, built
    // without the fallible slice constructor.
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let mut mac = hmac::Hmac::<sha2::Sha256>::new(&block.into());
    mac.update(b"nimbus-imds\0");
    mac.update(id.as_bytes());
    let digest: [u8; 32] = mac.finalize().into_bytes().into();
    hex::encode(digest)
}

/// The data directory's key for metadata secrets (`ec2/metadata.key`, 32 random
/// bytes, owner-only), made on first use and kept so that secrets survive a restart;
/// `durable` syncs a new key (a directory thrown away at exit does not need it).
pub fn metadata_key(path: &Path, durable: bool) -> Result<[u8; 32], String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    match std::fs::read(path) {
        Ok(bytes) => {
            return bytes
                .try_into()
                .map_err(|_| format!("{} is not a 32-byte key", path.display()))
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!("cannot read {}: {e}", path.display()))
        }
        Err(_) => {}
    }
    let mut key = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut key);
    // Written to a temporary name and renamed, so a crash never leaves a short key.
    let tmp = path.with_extension("key.tmp");
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(&key)?;
            if durable {
                f.sync_all()?;
            }
            Ok(())
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    written.map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(key)
}

impl Machines {
    pub fn open(
        root: &Path,
        driver: &str,
        partitions: &HashMap<(String, String), Partition>,
        metadata_key: [u8; 32],
    ) -> Result<(Machines, mpsc::UnboundedReceiver<String>), String> {
        // Every default subnet's gateway (172.31.0.0/16 carved into /20s).
        let gateways = (0..16u8)
            .map(|i| (Ipv4Addr::new(172, 31, i * 16, 1), 20))
            .collect();
        let (runtime, exits) = Runtime::open(root, driver, gateways)?;
        let ips = partitions
            .values()
            .flat_map(|p| p.instances.values())
            .filter(|i| i.state != TERMINATED)
            .filter_map(|i| i.private_ip.parse().ok())
            .collect();
        let allocated = partitions
            .values()
            .flat_map(|p| p.addresses.values())
            .filter_map(|a| a.public_ip.parse().ok())
            .collect();
        Ok((
            Machines {
                runtime,
                ips: Mutex::new(ips),
                ops: Mutex::new(HashMap::new()),
                profiles: OnceLock::new(),
                endpoints: OnceLock::new(),
                metadata_key,
                pool: OnceLock::new(),
                allocated: Mutex::new(allocated),
                forwarder: nimbus_net::forward::Forwarder::new(),
                refresh_pending: Mutex::new(HashSet::new()),
                loaded_rules: Mutex::new(HashMap::new()),
            },
            exits,
        ))
    }
}

impl Ec2 {
    /// "namespace" or "process".
    pub fn instance_driver(&self) -> &'static str {
        self.machines.runtime.kind().as_str()
    }

    /// The host's address on the VPC bridge (namespace driver): where instances reach nimbus.
    pub fn instance_gateway(&self) -> Option<Ipv4Addr> {
        self.machines.runtime.host_address()
    }

    pub fn set_profile_resolver(&self, resolver: ProfileResolver) {
        let _ = self.machines.profiles.set(resolver);
    }

    /// `api`: nimbus's endpoint as instances reach it; `metadata`: for the process
    /// driver, the base URL of the metadata service (the instance's secret is appended).
    pub fn set_endpoints(&self, api: String, metadata: Option<String>) {
        let _ = self.machines.endpoints.set((api, metadata));
    }

    /// `--elastic-ip-cidr`: where AllocateAddress draws addresses from.
    pub fn set_elastic_ip_pool(&self, cidr: &str) -> Result<(), String> {
        let pool = parse_cidr(cidr)
            .filter(|(_, len)| *len <= 30)
            .ok_or_else(|| format!("{cidr:?} is not an IPv4 CIDR block of at least 4 addresses"))?;
        self.machines.set_address_pool(pool);
        Ok(())
    }

    /// Points elastic IPs at their new instances (or nowhere), and opens their
    /// ports at once so the next connection already lands on the new target.
    pub(crate) fn repoint(&self, repoints: Vec<crate::addresses::Repoint>) {
        for (public, target) in repoints {
            self.machines.forwarder.point(public, target);
            if let Some(private) = target {
                let ports = self.ports_of(&private.to_string());
                self.machines.forwarder.sync_ports(public, &ports);
            }
        }
    }

    /// TCP ports the instance at `private_ip` listens on (its network namespace's table).
    fn ports_of(&self, private_ip: &str) -> Vec<u16> {
        let id = {
            let partitions = lock(&self.partitions);
            partitions.values().find_map(|p| {
                p.instances
                    .values()
                    .find(|i| i.private_ip == private_ip && i.state != TERMINATED)
                    .map(|i| i.id.clone())
            })
        };
        let (Some(id), Ok(own)) = (id, private_ip.parse::<Ipv4Addr>()) else {
            return Vec::new();
        };
        let Some(pid) = self.machines.runtime.pid(&id) else {
            return Vec::new();
        };
        let mut ports = Vec::new();
        for table in ["tcp", "tcp6"] {
            if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) {
                ports.extend(nimbus_net::forward::listening_ports(&text, own));
            }
        }
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    /// Follows the ports associated instances listen on, once a second (a web
    /// server started after the association is reachable through the address).
    fn watch_ports(self: Arc<Self>) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let associated: Vec<(Ipv4Addr, String)> = {
                    let partitions = lock(&self.partitions);
                    partitions
                        .values()
                        .flat_map(|p| {
                            p.addresses.values().filter_map(|a| {
                                let (_, instance) = a.association.as_ref()?;
                                let i = p.instances.get(instance)?;
                                Some((a.public_ip.parse().ok()?, i.private_ip.clone()))
                            })
                        })
                        .collect()
                };
                for (public, private) in associated {
                    let ports = self.ports_of(&private);
                    self.machines.forwarder.sync_ports(public, &ports);
                }
            }
        });
    }

    /// Brings every instance to its recorded state (run once at start).
    pub fn resume(&self) {
        let associated: Vec<crate::addresses::Repoint> = {
            let partitions = lock(&self.partitions);
            partitions
                .values()
                .flat_map(|p| {
                    p.addresses.values().filter_map(|a| {
                        let (_, instance) = a.association.as_ref()?;
                        let i = p.instances.get(instance)?;
                        Some((a.public_ip.parse().ok()?, i.private_ip.parse().ok()))
                    })
                })
                .collect()
        };
        for (public, target) in associated {
            self.machines.forwarder.point(public, target);
        }
        if let Some(me) = self.me.upgrade() {
            me.watch_ports();
        }
        let work: Vec<((String, String), String)> = {
            let partitions = lock(&self.partitions);
            partitions
                .iter()
                .flat_map(|(key, p)| {
                    p.instances
                        .values()
                        .filter(|i| i.state != STOPPED && i.state != TERMINATED)
                        .map(move |i| (key.clone(), i.id.clone()))
                })
                .collect()
        };
        for (key, id) in work {
            self.reconcile(key, id);
        }
        // An image whose freezing a crash interrupted will never be available.
        let keys: Vec<(String, String)> = lock(&self.partitions).keys().cloned().collect();
        if let Some(me) = self.me.upgrade() {
            tokio::spawn(async move {
                for key in keys {
                    me.update_partition(&key, |p| {
                        let mut changed = false;
                        for img in p.images.values_mut().filter(|i| i.state == "pending") {
                            img.state = "failed".into();
                            changed = true;
                        }
                        changed
                    })
                    .await;
                }
                me.sweep_layers().await;
            });
        }
    }

    /// Stops every machine, leaving the records as they are (nimbus is exiting;
    /// running instances come back at the next start), and takes down the host
    /// side of their network and cgroups (see `Runtime::shutdown`).
    pub async fn shutdown(&self) {
        self.machines.runtime.shutdown(Duration::from_secs(3)).await;
    }

    /// Reset: every record goes (one batch queued under the partition map's lock,
    /// so a partition made right after is written after it), then every instance's
    /// machine stops for good and its directory goes, elastic IPs stop answering,
    /// volume and snapshot files and image layers are removed. The default VPC
    /// comes back on the next call, as on first use.
    pub(crate) async fn remove_everything(&self) -> Result<(), AwsError> {
        let failed = |e: String| {
            tracing::error!("EC2 reset failed: {e}");
            AwsError::new("InternalError", "An internal error has occurred").with_status(500)
        };
        let stored: Vec<Vec<u8>> = self
            .store
            .keys_of_tables(&[crate::state::PARTITIONS])
            .await
            .map_err(|e| failed(e.to_string()))?
            .into_iter()
            .flat_map(|(_, keys)| keys)
            .collect();
        let (commit, taken) = {
            let mut partitions = lock(&self.partitions);
            let taken = std::mem::take(&mut *partitions);
            let mut batch = nimbus_store::Batch::new();
            for k in stored {
                batch.delete(crate::state::PARTITIONS, k);
            }
            for (account, region) in taken.keys() {
                batch.delete(
                    crate::state::PARTITIONS,
                    crate::state::partition_key(account, region),
                );
            }
            (self.store.submit(batch), taken)
        };
        commit.await.map_err(|e| failed(e.to_string()))?;

        let instances: Vec<&Instance> = taken.values().flat_map(|p| p.instances.values()).collect();
        {
            let mut ips = lock(&self.machines.ips);
            for i in &instances {
                if let Ok(ip) = i.private_ip.parse::<Ipv4Addr>() {
                    ips.remove(&ip);
                }
            }
        }
        for a in taken.values().flat_map(|p| p.addresses.values()) {
            if let Ok(ip) = a.public_ip.parse::<Ipv4Addr>() {
                self.machines.allocated().remove(&ip);
                self.machines.forwarder.remove(ip);
            }
        }
        // Each stop waits for the instance's reconcile step in progress (a start
        // finishing), so nothing is left running behind the reset.
        let mut stops = tokio::task::JoinSet::new();
        if let Some(me) = self.me.upgrade() {
            for i in &instances {
                let (me, id) = (me.clone(), i.id.clone());
                stops.spawn(async move {
                    let op = me.op_lock(&id);
                    let _serial = op.lock().await;
                    me.machines.runtime.stop(&id, RESET_GRACE).await;
                    let runtime = me.machines.runtime.clone();
                    let dir_id = id.clone();
                    let removals = me.disks.removals.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        removals.run_or_defer(move || runtime.remove(&dir_id))
                    })
                    .await;
                    lock(&me.machines.loaded_rules).remove(&id);
                    lock(&me.machines.ops).remove(&id);
                });
            }
        }
        while stops.join_next().await.is_some() {}
        let volumes: Vec<String> = taken
            .values()
            .flat_map(|p| p.volumes.keys().cloned())
            .collect();
        let snapshots: Vec<String> = taken
            .values()
            .flat_map(|p| p.snapshots.keys().cloned())
            .collect();
        let disks = self.disks.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for v in &volumes {
                disks.remove_volume(v);
            }
            for s in &snapshots {
                disks.remove_snapshot(s);
            }
        })
        .await;
        self.sweep_layers().await;
        tracing::debug!(
            "ec2 reset: {} partitions, {} instances",
            taken.len(),
            instances.len()
        );
        Ok(())
    }

    /// CPU time used by an instance's processes (namespace driver).
    /// For a save of the whole cloud: pauses every running instance (so its disk
    /// and attached volumes hold still), flushes what they wrote, and defers every
    /// EC2 file removal until the save ends. Instance disks and volumes are
    /// archived while paused; snapshots, image layers and the metadata key after.
    pub(crate) fn hold_files(&self) -> nimbus_core::FileHold {
        let runtime = self.machines.runtime.clone();
        let release = self.disks.removals.hold();
        let frozen: Vec<String> = runtime
            .running()
            .into_iter()
            .filter(|id| runtime.freeze(id, true))
            .collect();
        if !frozen.is_empty() {
            // What paused processes wrote may still sit in the page cache of a mounted
            // volume's file system: push it down to the volume files before they are read.
            // SAFETY: sync(2) takes no arguments and cannot fail.
            unsafe { libc::sync() };
        }
        let (volumes, snapshots) = self.disks.dirs();
        let mut live = vec![volumes];
        if let Ok(entries) = std::fs::read_dir(runtime.instances_dir()) {
            for entry in entries.flatten() {
                live.extend(runtime.saved_paths(&entry.file_name().to_string_lossy()));
            }
        }
        let thawing = runtime.clone();
        nimbus_core::FileHold {
            live,
            settled: vec![snapshots, self.images_dir.clone(), self.metadata_key_path()],
            thaw: Some(Box::new(nimbus_core::save::OnDrop::new(move || {
                for id in &frozen {
                    thawing.freeze(id, false);
                }
            }))),
            release: Some(Box::new(release)),
        }
    }

    /// The machines' runtime (the metrics read their counters through it).
    pub(crate) fn runtime(&self) -> Arc<Runtime> {
        self.machines.runtime.clone()
    }

    pub fn cpu_usage_ns(&self, id: &str) -> Option<u64> {
        self.machines.runtime.usage(id).and_then(|u| u.cpu_ns)
    }

    pub fn metadata_by_ip(&self, ip: &str) -> Option<InstanceMeta> {
        self.metadata_where(|i| i.private_ip == ip)
    }

    /// The process driver's caller: the instance whose secret is the first path
    /// segment of its metadata URL. Anything else (an instance id, a guess) is no one.
    pub fn metadata_by_secret(&self, secret: &str) -> Option<InstanceMeta> {
        if secret.len() != SECRET_HEX_LEN {
            return None;
        }
        self.metadata_where(|i| {
            constant_time_eq(self.metadata_secret(&i.id).as_bytes(), secret.as_bytes())
        })
    }

    /// The process driver's per-instance metadata secret: HMAC-SHA256 of the
    /// instance id under the data directory's key, so it is unguessable from the
    /// id (which `ps` shows) yet the same after a restart of nimbus.
    pub fn metadata_secret(&self, id: &str) -> String {
        secret_for(&self.machines.metadata_key, id)
    }

    fn metadata_where(&self, pick: impl Fn(&Instance) -> bool) -> Option<InstanceMeta> {
        let partitions = lock(&self.partitions);
        for p in partitions.values() {
            let Some(i) = p
                .instances
                .values()
                .find(|i| (i.state == RUNNING || i.state == PENDING) && pick(i))
            else {
                continue;
            };
            let subnet = p.subnets.get(&i.subnet_id);
            let vpc = p.vpcs.get(&i.vpc_id);
            return Some(InstanceMeta {
                account: i.owner.clone(),
                region: i.region.clone(),
                instance_id: i.id.clone(),
                image_id: i.image_id.clone(),
                instance_type: i.instance_type.clone(),
                private_ip: i.private_ip.clone(),
                public_ip: i.public_ip.clone(),
                public_hostname: i
                    .public_ip
                    .as_ref()
                    .map(|ip| instances::public_dns(ip, &i.region)),
                zone: i.zone.clone(),
                hostname: private_dns(&i.private_ip, &i.region),
                mac: i.mac.clone(),
                subnet_id: i.subnet_id.clone(),
                subnet_cidr: subnet.map(|s| s.cidr.clone()).unwrap_or_default(),
                vpc_id: i.vpc_id.clone(),
                vpc_cidr: vpc.map(|v| v.cidr.clone()).unwrap_or_default(),
                group_names: i
                    .group_ids
                    .iter()
                    .filter_map(|g| p.groups.get(g).map(|g| g.name.clone()))
                    .collect(),
                group_ids: i.group_ids.clone(),
                key: i.key_name.as_ref().and_then(|k| {
                    p.key_pairs
                        .get(k)
                        .map(|kp| (kp.name.clone(), kp.public_key.clone()))
                }),
                user_data: i
                    .user_data
                    .as_ref()
                    .and_then(|u| base64::engine::general_purpose::STANDARD.decode(u).ok()),
                tags: i.tags.clone(),
                tags_enabled: i.metadata.instance_metadata_tags == "enabled",
                profile: i.iam_profile.clone(),
                launch_ms: i.launch_ms,
                reservation_id: i.reservation_id.clone(),
                http_tokens: i.metadata.http_tokens.clone(),
                http_endpoint: i.metadata.http_endpoint.clone(),
                eni_id: i.eni_id.clone(),
            });
        }
        None
    }

    pub(crate) async fn run_instances(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, AwsError> {
        let replayed = self
            .with_partition(ctx, crate::read(|p, c| Ok(instances::replay(p, c, input))))
            .await?;
        if let Some(answer) = replayed {
            return Ok(answer);
        }
        let profile = match input.get("IamInstanceProfile") {
            Some(spec) => {
                let (given, member) = match (
                    spec.get("Arn").and_then(Value::as_str),
                    spec.get("Name").and_then(Value::as_str),
                ) {
                    (Some(arn), _) => (arn.to_string(), "arn"),
                    (None, Some(name)) => (name.to_string(), "name"),
                    (None, None) => {
                        return Err(AwsError::new(
                            "InvalidParameterValue",
                            "Value () for parameter iamInstanceProfile is invalid.",
                        ))
                    }
                };
                let resolved = match self.machines.profiles.get() {
                    Some(resolve) => resolve(ctx.account_id.clone(), given.clone()).await,
                    None => None,
                };
                let found = resolved.ok_or_else(|| {
                    AwsError::new(
                        "InvalidParameterValue",
                        format!("Value ({given}) for parameter iamInstanceProfile.{member} is invalid. Invalid IAM Instance Profile {member}"),
                    )
                })?;
                Some(found)
            }
            None => None,
        };
        let (answer, ids, files) = self
            .with_partition(
                ctx,
                crate::write(|p, c| {
                    let mut ips = lock(&self.machines.ips);
                    let launch = instances::plan_run(p, c, input, &ips, profile)?;
                    let ids: Vec<String> = launch.instances.iter().map(|i| i.id.clone()).collect();
                    // Volume files for the mappings beyond the root (made before the start).
                    let files: Vec<(String, u64, Option<String>)> = launch
                        .volumes
                        .iter()
                        .filter(|v| !v.root)
                        .map(|v| (v.id.clone(), v.size_gib, v.snapshot_id.clone()))
                        .collect();
                    for i in &launch.instances {
                        if let Ok(ip) = i.private_ip.parse() {
                            ips.insert(ip);
                        }
                    }
                    Ok((instances::record_launch(p, c, launch), ids, files))
                }),
            )
            .await?;
        for (id, size, snapshot) in files {
            let made = self
                .on_disk(move |d| d.create_volume(&id, size, snapshot.as_deref()))
                .await;
            if let Err(e) = made {
                tracing::error!(
                    "RunInstances: a mapped volume could not be made: {}",
                    e.message
                );
            }
        }
        let key = (ctx.account_id.clone(), ctx.region.clone());
        for id in ids {
            self.reconcile(key.clone(), id);
        }
        Ok(answer)
    }

    /// After a state-change call: reconcile every instance its answer names.
    pub(crate) fn reconcile_answer(&self, ctx: &RequestContext, answer: &Value, member: &str) {
        let key = (ctx.account_id.clone(), ctx.region.clone());
        if let Some(list) = answer.get(member).and_then(Value::as_array) {
            for entry in list {
                if let Some(id) = entry.get("InstanceId").and_then(Value::as_str) {
                    self.reconcile(key.clone(), id.to_string());
                }
            }
        }
    }

    fn op_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.machines.ops)
            .entry(id.to_string())
            .or_default()
            .clone()
    }

    /// The instance's record, cloned, with what a start needs.
    fn snapshot(&self, key: &(String, String), id: &str) -> Option<(Instance, Option<LaunchSpec>)> {
        let partitions = lock(&self.partitions);
        let p = partitions.get(key)?;
        let i = p.instances.get(id)?.clone();
        let spec = self.launch_spec(p, &i);
        Some((i, spec))
    }

    fn launch_spec(&self, p: &Partition, i: &Instance) -> Option<LaunchSpec> {
        let subnet = p.subnets.get(&i.subnet_id)?;
        let (subnet_base, prefix_len) = parse_cidr(&subnet.cidr)?;
        let vpc_cidr = p
            .vpcs
            .get(&i.vpc_id)
            .and_then(|v| parse_cidr(&v.cidr))
            .unwrap_or((subnet_base, prefix_len));
        let (vcpus, memory_mib) = instance_types::limits(&i.instance_type).unwrap_or((1, 1024));
        let (api, metadata) = self.machines.endpoints.get().cloned().unwrap_or_default();
        let mut env = Vec::new();
        if let Some(base) = metadata {
            // Only in the environment (never argv): /proc/PID/environ is private to
            // the instance's user, while any local user can read the command line.
            env.push((
                "AWS_EC2_METADATA_SERVICE_ENDPOINT".to_string(),
                format!("{base}{}/", self.metadata_secret(&i.id)),
            ));
            env.push(("AWS_ENDPOINT_URL".to_string(), api.clone()));
            env.push(("AWS_REGION".to_string(), i.region.clone()));
            env.push(("NIMBUS_INSTANCE_ID".to_string(), i.id.clone()));
        }
        let image_layer = i.image_layers.first().map(Into::into);
        Some(LaunchSpec {
            boot: BootConfig {
                instance_id: i.id.clone(),
                hostname: instances::host_name(&i.private_ip),
                fqdn: private_dns(&i.private_ip, &i.region),
                private_ip: i.private_ip.parse().ok()?,
                mac: i.mac.clone(),
                region: i.region.clone(),
                endpoint_url: (!api.is_empty()).then_some(api),
                public_keys: i
                    .key_name
                    .as_ref()
                    .and_then(|k| p.key_pairs.get(k))
                    .map(|k| vec![k.public_key.clone()])
                    .unwrap_or_default(),
                image_layer,
                isolated: true,
                env,
            },
            user_data: i
                .user_data
                .as_ref()
                .and_then(|u| base64::engine::general_purpose::STANDARD.decode(u).ok())
                .unwrap_or_default(),
            prefix_len,
            gateway: Ipv4Addr::from(u32::from(subnet_base) + 1),
            vpc_cidr,
            vcpus,
            memory_mib,
            firewall: Some(firewall_for(p, i)),
            volumes: p
                .volumes
                .values()
                .filter(|v| !v.root)
                .filter_map(|v| {
                    let a = v.attachment.as_ref().filter(|a| a.instance_id == i.id)?;
                    Some((a.device.clone(), self.disks.volume_path(&v.id)))
                })
                .collect(),
        })
    }

    /// Records the end of a transition, if the instance is still in it (a later
    /// call may have moved it on meanwhile).
    async fn advance(&self, key: &(String, String), id: &str, from: &str, to: &str) {
        self.update(key, id, |p| match p.instances.get_mut(id) {
            Some(i) if i.state == from => {
                i.state = to.into();
                tracing::info!(target: "ec2", "instance {id} {from} -> {to}");
                true
            }
            _ => false,
        })
        .await;
    }

    /// Changes one instance's record and stores its partition.
    async fn update(
        &self,
        key: &(String, String),
        id: &str,
        change: impl FnOnce(&mut Partition) -> bool,
    ) {
        self.update_partition(key, |p| p.instances.contains_key(id) && change(p))
            .await
    }

    /// Changes a partition in the background and stores it when `change` says so.
    async fn update_partition(
        &self,
        key: &(String, String),
        change: impl FnOnce(&mut Partition) -> bool,
    ) {
        let commit = {
            let mut partitions = lock(&self.partitions);
            let Some(p) = partitions.get_mut(key) else {
                return;
            };
            if !change(p) {
                return;
            }
            match serde_json::to_vec(&*p) {
                Ok(encoded) => {
                    let mut batch = nimbus_store::Batch::new();
                    batch.put(
                        crate::state::PARTITIONS,
                        crate::state::partition_key(&key.0, &key.1),
                        encoded,
                    );
                    self.store.submit(batch)
                }
                Err(e) => {
                    tracing::error!("cannot encode the EC2 partition: {e}");
                    return;
                }
            }
        };
        if let Err(e) = commit.await {
            tracing::error!("EC2 store commit failed: {e}");
        }
    }

    /// Carries out the recorded state of one instance, in the background.
    pub(crate) fn reconcile(&self, key: (String, String), id: String) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        tokio::spawn(async move {
            let op = me.op_lock(&id);
            let _serial = op.lock().await;
            me.reconcile_now(&key, &id).await;
        });
    }

    async fn reconcile_now(&self, key: &(String, String), id: &str) {
        let Some((instance, spec)) = self.snapshot(key, id) else {
            return;
        };
        let runtime = &self.machines.runtime;
        match instance.state.as_str() {
            PENDING | RUNNING => {
                if runtime.is_running(id) {
                    return;
                }
                let started = match spec {
                    Some(spec) => {
                        let rules = spec.firewall.clone();
                        let started = runtime.start(spec).await;
                        if let (Ok(()), Some(rules)) = (&started, rules) {
                            lock(&self.machines.loaded_rules).insert(id.to_string(), rules);
                        }
                        started
                    }
                    None => Err("the instance's subnet is gone".to_string()),
                };
                match started {
                    Ok(()) => {
                        self.announce_boot(id);
                        self.advance(key, id, PENDING, RUNNING).await;
                        // Groups that name this instance's group now admit its address.
                        self.refresh_firewalls(key.clone());
                    }
                    Err(e) => {
                        tracing::warn!("instance {id} could not start: {e}");
                        self.end(key, id, ("Server.InternalError", e)).await;
                    }
                }
            }
            STOPPING => {
                runtime.stop(id, STOP_GRACE).await;
                self.advance(key, id, STOPPING, STOPPED).await;
            }
            SHUTTING_DOWN => {
                runtime.stop(id, STOP_GRACE).await;
                self.end(key, id, ("", String::new())).await;
            }
            _ => {
                if runtime.is_running(id) {
                    runtime.stop(id, STOP_GRACE).await;
                }
            }
        }
    }

    /// Logs when the boot of a just-started instance (its user data and per-boot
    /// scripts) has finished: init marks it with `boot-finished`, rewritten at every boot.
    fn announce_boot(&self, id: &str) {
        // The namespace driver's writable layer, or the process driver's root beside it.
        let upper = self.machines.runtime.upper_dir(id);
        let markers = [upper.clone(), upper.with_file_name("root")]
            .map(|root| root.join("var/lib/cloud/instance/boot-finished"));
        let runtime = self.machines.runtime.clone();
        let id = id.to_string();
        let started = std::time::SystemTime::now();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            // A boot that outlasts an hour is someone's long-running user data, not a boot.
            for _ in 0..7200 {
                tick.tick().await;
                if !runtime.is_running(&id) {
                    return;
                }
                let fresh = markers.iter().find(|marker| {
                    std::fs::metadata(marker)
                        .and_then(|m| m.modified())
                        .is_ok_and(|t| t >= started)
                });
                if let Some(marker) = fresh {
                    let took = std::fs::read_to_string(marker).unwrap_or_default();
                    tracing::info!(target: "ec2", "instance {id} finished booting (user data done) in {}s", took.trim());
                    return;
                }
            }
        });
    }

    /// Terminates for good: disk removed, DeleteOnTermination volumes deleted, the
    /// others detached, the address freed. `reason` replaces the state reason when
    /// it has a code (a launch failure).
    async fn end(&self, key: &(String, String), id: &str, reason: (&str, String)) {
        let runtime = self.machines.runtime.clone();
        let dir_id = id.to_string();
        let removals = self.disks.removals.clone();
        let _ = tokio::task::spawn_blocking(move || {
            removals.run_or_defer(move || runtime.remove(&dir_id))
        })
        .await;
        let mut files = Vec::new();
        let mut repoints = Vec::new();
        self.update(key, id, |p| {
            let now = nimbus_core::now_millis();
            let mut doomed = Vec::new();
            for v in p.volumes.values_mut() {
                if let Some(a) = v.attachment.as_ref().filter(|a| a.instance_id == id) {
                    if a.delete_on_termination {
                        doomed.push((v.id.clone(), v.root));
                    } else {
                        v.attachment = None;
                    }
                }
            }
            for (vid, root) in doomed {
                p.volumes.remove(&vid);
                if !root {
                    files.push(vid);
                }
            }
            repoints = crate::addresses::drop_instance(p, id);
            let Some(i) = p.instances.get_mut(id) else {
                return false;
            };
            if let Ok(ip) = i.private_ip.parse::<Ipv4Addr>() {
                lock(&self.machines.ips).remove(&ip);
            }
            i.state = TERMINATED.into();
            i.ended_ms = Some(now);
            match reason.0 {
                "" => tracing::info!(target: "ec2", "instance {id} terminated"),
                code => {
                    tracing::warn!(target: "ec2", "instance {id} terminated: {code}: {}", reason.1)
                }
            }
            if !reason.0.is_empty() {
                i.state_reason = Some((
                    reason.0.to_string(),
                    format!("{}: Internal error on launch", reason.0),
                ));
                i.transition_reason = format!("Server.InternalError: {}", reason.1);
            }
            true
        })
        .await;
        for vid in files {
            self.disks.remove_volume(&vid);
        }
        lock(&self.machines.loaded_rules).remove(id);
        self.repoint(repoints);
        self.refresh_firewalls(key.clone());
        self.sweep_layers().await;
    }

    /// CreateImage: records the image (pending) and freezes the instance's layer
    /// in the background, taking a running instance down meanwhile unless NoReboot
    /// (as EC2 reboots it for a consistent image).
    pub(crate) async fn create_image(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, AwsError> {
        let plan = self
            .with_partition(
                ctx,
                crate::write(|p, c| {
                    let plan = crate::images::plan_create(p, c, input, &self.images_dir)?;
                    p.images.insert(plan.image.id.clone(), plan.image.clone());
                    Ok(plan)
                }),
            )
            .await?;
        let image_id = plan.image.id.clone();
        if let Some(me) = self.me.upgrade() {
            let key = (ctx.account_id.clone(), ctx.region.clone());
            tokio::spawn(async move {
                let op = me.op_lock(&plan.instance_id);
                let _serial = op.lock().await;
                let runtime = me.machines.runtime.clone();
                if plan.reboot {
                    runtime.stop(&plan.instance_id, STOP_GRACE).await;
                }
                let upper = runtime.upper_dir(&plan.instance_id);
                let target = me.images_dir.join(&plan.image.id).join("layer");
                let frozen = tokio::task::spawn_blocking(move || {
                    nimbus_runtime::layers::freeze(&upper, &target)
                })
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()));
                if plan.reboot {
                    me.reconcile_now(&key, &plan.instance_id).await;
                }
                if let Err(e) = &frozen {
                    tracing::error!(
                        "CreateImage {}: cannot freeze the layer: {e}",
                        plan.image.id
                    );
                }
                let id = plan.image.id.clone();
                me.update_partition(&key, |p| match p.images.get_mut(&id) {
                    Some(img) => {
                        img.state = if frozen.is_ok() {
                            "available"
                        } else {
                            "failed"
                        }
                        .into();
                        true
                    }
                    None => false,
                })
                .await;
            });
        }
        Ok(json!({ "ImageId": image_id }))
    }

    /// AttachVolume: the device appears in a running instance at once (a stopped
    /// one gets it at its next start).
    pub(crate) async fn attach_volume(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, AwsError> {
        let plan = self
            .with_partition(
                ctx,
                crate::read(|p, _| crate::volumes::plan_attach(p, input)),
            )
            .await?;
        let op = self.op_lock(&plan.instance_id);
        let _serial = op.lock().await;
        if plan.live {
            let file = self.disks.volume_path(&plan.volume_id);
            self.machines
                .runtime
                .attach_volume(&plan.instance_id, &plan.device, &file)
                .map_err(|e| {
                    tracing::error!("AttachVolume {}: {e}", plan.volume_id);
                    AwsError::new("InternalError", format!("cannot attach the volume: {e}"))
                        .with_status(500)
                })?;
        }
        let recorded = self
            .with_partition(
                ctx,
                crate::write(|p, c| crate::volumes::record_attach(p, &plan, c.now_ms)),
            )
            .await;
        if recorded.is_err() && plan.live {
            self.machines
                .runtime
                .detach_volume(&plan.instance_id, &plan.device);
        }
        recorded
    }

    pub(crate) async fn detach_volume(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> Result<Value, AwsError> {
        let (answer, instance, device) = self
            .with_partition(ctx, crate::write(|p, _| crate::volumes::detach(p, input)))
            .await?;
        let op = self.op_lock(&instance);
        let _serial = op.lock().await;
        self.machines.runtime.detach_volume(&instance, &device);
        Ok(answer)
    }

    /// Reloads the firewall of every running instance of a partition (after a
    /// rule, a membership or an instance's address changed).
    pub(crate) fn refresh_firewalls(&self, key: (String, String)) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        // Coalesced: a launch of 20 instances asks 20 times; one pass after a short
        // pause serves them all, and only changed rulesets are loaded.
        if !lock(&self.machines.refresh_pending).insert(key.clone()) {
            return;
        }
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            lock(&me.machines.refresh_pending).remove(&key);
            let rulesets: Vec<(String, String)> = {
                let partitions = lock(&me.partitions);
                let Some(p) = partitions.get(&key) else {
                    return;
                };
                p.instances
                    .values()
                    .filter(|i| i.state == RUNNING || i.state == PENDING)
                    .map(|i| (i.id.clone(), firewall_for(p, i)))
                    .collect()
            };
            for (id, rules) in rulesets {
                let unchanged = lock(&me.machines.loaded_rules).get(&id) == Some(&rules);
                if unchanged {
                    continue;
                }
                match me.machines.runtime.apply_firewall(&id, &rules).await {
                    Ok(()) => {
                        lock(&me.machines.loaded_rules).insert(id, rules);
                    }
                    Err(e) => tracing::warn!("instance {id}: {e}"),
                }
            }
        });
    }

    /// Removes frozen layers that no image names and no instance stacks.
    pub(crate) async fn sweep_layers(&self) {
        let keep: HashSet<String> = {
            let partitions = lock(&self.partitions);
            partitions
                .values()
                .flat_map(|p| {
                    p.images
                        .values()
                        .flat_map(|i| i.layers.iter().cloned())
                        .chain(
                            p.instances
                                .values()
                                .filter(|i| i.state != TERMINATED)
                                .flat_map(|i| i.image_layers.iter().cloned()),
                        )
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let dir = self.images_dir.clone();
        let removals = self.disks.removals.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                return;
            };
            for entry in entries.flatten() {
                let layer = entry.path().join("layer").display().to_string();
                if !keep.contains(&layer) {
                    let path = entry.path();
                    removals.run_or_defer(move || {
                        if let Err(e) = std::fs::remove_dir_all(&path) {
                            tracing::warn!("cannot remove image layer {layer}: {e}");
                        }
                    });
                }
            }
        })
        .await;
    }

    /// RebootInstances: the machine goes down and comes back (user data does not rerun).
    pub(crate) fn reboot(&self, ctx: &RequestContext, id: String) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        let key = (ctx.account_id.clone(), ctx.region.clone());
        tokio::spawn(async move {
            let op = me.op_lock(&id);
            let _serial = op.lock().await;
            me.machines.runtime.stop(&id, STOP_GRACE).await;
            me.reconcile_now(&key, &id).await;
        });
    }

    pub(crate) fn console_output(&self, id: &str) -> Value {
        let output = self.machines.runtime.console(id);
        let mut out = json!({
            "InstanceId": id,
            "Timestamp": nimbus_core::now_millis() as f64 / 1000.0,
        });
        if !output.is_empty() {
            out["Output"] = json!(base64::engine::general_purpose::STANDARD.encode(output));
        }
        out
    }

    /// Machines that went down by themselves: their instances stop (or terminate,
    /// per InstanceInitiatedShutdownBehavior), as on EC2 after a shutdown inside.
    pub(crate) fn watch_exits(self: Arc<Self>, mut exits: mpsc::UnboundedReceiver<String>) {
        tokio::spawn(async move {
            while let Some(id) = exits.recv().await {
                let key = {
                    let partitions = lock(&self.partitions);
                    partitions
                        .iter()
                        .find(|(_, p)| p.instances.contains_key(&id))
                        .map(|(k, _)| k.clone())
                };
                let Some(key) = key else {
                    continue;
                };
                let mut terminate = false;
                self.update(&key, &id, |p| match p.instances.get_mut(&id) {
                    Some(i) if i.state == RUNNING || i.state == PENDING => {
                        terminate = i.shutdown_behavior == "terminate";
                        i.state = if terminate { SHUTTING_DOWN } else { STOPPED }.into();
                        tracing::info!(target: "ec2", "instance {id} shut itself down -> {}", i.state);
                        i.state_reason = Some((
                            "Client.InstanceInitiatedShutdown".into(),
                            "Client.InstanceInitiatedShutdown: Instance initiated shutdown".into(),
                        ));
                        true
                    }
                    _ => false,
                })
                .await;
                if terminate {
                    self.reconcile(key, id);
                }
            }
        });
    }
}

/// An instance's inbound rules as a firewall: the union of its groups' ingress
/// rules, with referenced groups expanded to their members' private addresses.
fn firewall_for(p: &Partition, i: &Instance) -> String {
    use crate::state::Target;
    use nimbus_net::firewall::{Allow, Source};
    let mut allows = Vec::new();
    for group in i.group_ids.iter().filter_map(|g| p.groups.get(g)) {
        for rule in group.rules.iter().filter(|r| !r.egress) {
            let sources = match &rule.target {
                Target::Cidr(c) => vec![Source::V4(c.clone())],
                Target::Cidr6(c) => vec![Source::V6(c.clone())],
                Target::Group { id, .. } => p
                    .instances
                    .values()
                    .filter(|m| m.state != TERMINATED && m.group_ids.contains(id))
                    .map(|m| Source::V4(m.private_ip.clone()))
                    .collect(),
                // Prefix lists name AWS service ranges, none of which exist here.
                Target::PrefixList(_) => Vec::new(),
            };
            if sources.is_empty() {
                continue;
            }
            allows.push(Allow {
                protocol: rule.protocol.clone(),
                from_port: rule.from_port,
                to_port: rule.to_port,
                sources,
            });
        }
    }
    nimbus_net::firewall::ruleset(&allows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn metadata_key_is_private_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("metadata.key");
        let key = metadata_key(&path, true).expect("new key");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(metadata_key(&path, true).expect("same key"), key);
        assert_ne!(key, [0u8; 32]);
        std::fs::write(&path, b"short").expect("write");
        assert!(metadata_key(&path, true).is_err());
    }

    #[test]
    fn secrets_are_per_instance_and_per_key() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let s = secret_for(&a, "i-0123456789abcdef0");
        assert_eq!(s.len(), SECRET_HEX_LEN);
        assert_eq!(s, secret_for(&a, "i-0123456789abcdef0"));
        assert_ne!(s, secret_for(&a, "i-0123456789abcdef1"));
        assert_ne!(s, secret_for(&b, "i-0123456789abcdef0"));
        assert!(!s.contains("0123456789abcdef0"));
        // Standard HMAC-SHA256 (Python's hmac gives the same), so the padded key is right.
        assert_eq!(
            s,
            "72a20ed10a85bcbd402dda31380687ebe7b44ae42602813d06a92d6187a4fdde"
        );
        assert!(constant_time_eq(s.as_bytes(), s.as_bytes()));
        assert!(!constant_time_eq(
            s.as_bytes(),
            secret_for(&b, "x").as_bytes()
        ));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}

//! The machines behind EC2 instances. This crate owns how an instance runs on
//! this host: its directory (`<root>/<instance id>/`: writable layer, console
//! log, boot configuration), the driver that starts and stops its process tree,
//! the VPC bridge that gives it a private address, and its cgroup limits. It
//! knows nothing of the EC2 API: the service hands it a [`LaunchSpec`] and asks
//! for starts, stops and console output.
//!
//! Two drivers, chosen once at start (see [`Runtime::open`]):
//! - **namespace** (Linux as root): mount, PID, UTS, IPC and network namespaces,
//!   an overlay root whose lower layers are the image (the base image is the
//!   host's own root, read-only), a veth on the `nimbus0` bridge, cgroup CPU and
//!   memory limits from the instance type.
//! - **process** (anywhere): a supervised process group in its own directory;
//!   the metadata service and endpoint are given through the environment.
//!
//! Both run [`init`] (`nimbus __instance-init DIR`) as the instance's first
//! process; it plays the part of the OS boot and of cloud-init.

pub mod blockdev;
mod cgroup;
mod firewall;
pub mod init;
pub mod layers;
mod measure;
mod namespace;
mod netlink;
mod process;

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// What the boot inside an instance needs; written to `DIR/boot.json` by the host
/// and read by [`init`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BootConfig {
    pub instance_id: String,
    /// Short host name (`ip-172-31-5-10`).
    pub hostname: String,
    /// Fully qualified private DNS name (`ip-172-31-5-10.ec2.internal`).
    pub fqdn: String,
    pub private_ip: Ipv4Addr,
    /// eth0's hardware address, as the API reports it (`02:..:..:..:..:..`).
    #[serde(default)]
    pub mac: String,
    pub region: String,
    /// The nimbus endpoint as seen from inside, written into the instance's AWS config.
    pub endpoint_url: Option<String>,
    /// OpenSSH public keys for root's authorized_keys.
    pub public_keys: Vec<String>,
    /// The image's frozen layer (none for the base image): a new instance's writable
    /// layer starts as a copy of it, over the host's root. Overlayfs refuses lower
    /// layers nested in one another, and every layer here lives under `/`, so images
    /// are seeded, not stacked.
    pub image_layer: Option<PathBuf>,
    /// Namespace driver: whether to build the isolated root; false for the process driver.
    pub isolated: bool,
    /// Environment for the boot scripts (the process driver's metadata endpoint).
    #[serde(default)]
    pub env: Vec<(String, String)>,
}

/// Everything needed to start an instance.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub boot: BootConfig,
    /// The raw user data (already base64-decoded).
    pub user_data: Vec<u8>,
    /// Subnet prefix length and gateway (the subnet's `.1`, owned by the host bridge).
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    /// The whole VPC, reachable on-link so instances in other subnets talk directly.
    pub vpc_cidr: (Ipv4Addr, u8),
    pub vcpus: u32,
    pub memory_mib: u64,
    /// Attached volumes: (device name as requested, e.g. `/dev/sdf`; volume file).
    pub volumes: Vec<(String, PathBuf)>,
    /// The instance's inbound firewall (an nftables ruleset; namespace driver).
    pub firewall: Option<String>,
}

/// A block device the boot must create, sent with "go" (the instance's /dev is
/// its own tmpfs, made after the host side is ready).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceNode {
    pub device: String,
    pub minor: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    Namespace,
    Process,
}

impl DriverKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DriverKind::Namespace => "namespace",
            DriverKind::Process => "process",
        }
    }
}

/// One running instance as the host sees it.
struct Live {
    /// The host pid of the instance's outer init (the process nimbus spawned).
    pid: i32,
    cgroup: Option<cgroup::Group>,
    /// Fires when the instance's process tree has ended.
    exited: tokio::sync::watch::Receiver<bool>,
    /// Volumes bound to loop devices, by device name.
    volumes: HashMap<String, blockdev::Attached>,
}

pub struct Runtime {
    kind: DriverKind,
    root: PathBuf,
    live: Mutex<HashMap<String, Live>>,
    /// The VPC bridge (namespace driver), set up on first launch.
    bridge: tokio::sync::OnceCell<Arc<netlink::Bridge>>,
    bridge_gateways: Vec<(Ipv4Addr, u8)>,
    /// Whether an instance of this run got a cgroup (namespace driver): the shared
    /// `nimbus` parents are then ours to remove at shutdown once empty.
    used_cgroups: std::sync::atomic::AtomicBool,
    exits: mpsc::UnboundedSender<String>,
}

pub use cgroup::Io;
pub use measure::{Network, Usage};

/// The host end of a namespace-driver instance's veth: interface names are at
/// most 15 bytes, and the id's last 10 hex digits tell instances apart (the
/// name `namespace::start` gives the pair).
pub(crate) fn veth_name(id: &str) -> String {
    let tag = id.get(id.len().saturating_sub(10)..).unwrap_or(id);
    format!("nbh{tag}")
}

impl Runtime {
    /// `root` holds one directory per instance; `driver` is "namespace", "process"
    /// or "auto" (namespace when running as root on Linux with overlayfs, else
    /// process). `gateways` are the subnet gateways the bridge answers on.
    /// Returns the runtime and the stream of instance ids whose process tree ended
    /// on its own (not through `stop`).
    pub fn open(
        root: &Path,
        driver: &str,
        gateways: Vec<(Ipv4Addr, u8)>,
    ) -> Result<(Arc<Runtime>, mpsc::UnboundedReceiver<String>), String> {
        std::fs::create_dir_all(root)
            .map_err(|e| format!("cannot create {}: {e}", root.display()))?;
        let kind = match driver {
            "namespace" => {
                namespace::available()?;
                DriverKind::Namespace
            }
            "process" => DriverKind::Process,
            _ => match namespace::available() {
                Ok(()) => DriverKind::Namespace,
                Err(why) => {
                    tracing::info!("instances use the process driver: {why}");
                    DriverKind::Process
                }
            },
        };
        let (tx, rx) = mpsc::unbounded_channel();
        Ok((
            Arc::new(Runtime {
                kind,
                root: root.to_path_buf(),
                live: Mutex::new(HashMap::new()),
                bridge: tokio::sync::OnceCell::new(),
                bridge_gateways: gateways,
                used_cgroups: std::sync::atomic::AtomicBool::new(false),
                exits: tx,
            }),
            rx,
        ))
    }

    pub fn kind(&self) -> DriverKind {
        self.kind
    }

    /// The address on the bridge that instances reach the host (and nimbus) at.
    pub fn host_address(&self) -> Option<Ipv4Addr> {
        match self.kind {
            DriverKind::Namespace => self.bridge_gateways.first().map(|g| g.0),
            DriverKind::Process => None,
        }
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    pub fn is_running(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts (or restarts after a stop) an instance. Returns once its process
    /// tree exists and its network is up; the boot (user data) goes on inside.
    pub async fn start(self: &Arc<Self>, spec: LaunchSpec) -> Result<(), String> {
        let id = spec.boot.instance_id.clone();
        if self.is_running(&id) {
            return Ok(());
        }
        let dir = self.dir(&id);
        let t0 = std::time::Instant::now();
        let mut boot = spec.boot.clone();
        boot.isolated = self.kind == DriverKind::Namespace;
        let (prepare_dir, prepare_boot, user_data) =
            (dir.clone(), boot.clone(), spec.user_data.clone());
        tokio::task::spawn_blocking(move || {
            init::prepare_dir(&prepare_dir, &prepare_boot, &user_data)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot prepare {}: {e}", dir.display()))?;
        let (pid, cgroup, child, volumes) = match self.kind {
            DriverKind::Namespace => {
                let bridge = self
                    .bridge
                    .get_or_try_init(|| async {
                        netlink::Bridge::ensure(&self.bridge_gateways)
                            .await
                            .map(Arc::new)
                    })
                    .await?
                    .clone();
                namespace::start(&dir, &spec, &bridge).await?
            }
            DriverKind::Process => {
                let (pid, group, child) = process::start(&dir).await?;
                (pid, group, child, HashMap::new())
            }
        };
        tracing::debug!("instance {id} started in {:?}", t0.elapsed());
        if cgroup.is_some() {
            self.used_cgroups
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let (tx, rx) = tokio::sync::watch::channel(false);
        self.lock().insert(
            id.clone(),
            Live {
                pid,
                cgroup,
                exited: rx,
                volumes,
            },
        );
        let me = self.clone();
        tokio::spawn(async move {
            let mut child = child;
            let _ = child.wait().await;
            let removed = {
                let mut live = me.lock();
                // Only this run's entry: a later start of the same id has its own pid.
                if live.get(&id).is_some_and(|l| l.pid == pid) {
                    live.remove(&id)
                } else {
                    None
                }
            };
            let _ = tx.send(true);
            if let Some(l) = removed {
                if let Some(g) = l.cgroup {
                    tokio::task::spawn_blocking(move || g.remove());
                }
                // Not stopped by us: the machine went down by itself.
                let _ = me.exits.send(id);
            }
        });
        Ok(())
    }

    /// Stops an instance: SIGTERM to its init (which passes it on to every
    /// process, as a shutdown does), SIGKILL after `grace`. Returns when it has ended.
    pub async fn stop(&self, id: &str, grace: Duration) {
        let Some(live) = self.lock().remove(id) else {
            return;
        };
        let mut exited = live.exited.clone();
        let pid = nix::unistd::Pid::from_raw(live.pid);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let ended = tokio::time::timeout(grace, exited.wait_for(|e| *e))
            .await
            .is_ok();
        if !ended {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = exited.wait_for(|e| *e).await;
        }
        if let Some(g) = live.cgroup {
            let _ = tokio::task::spawn_blocking(move || g.remove()).await;
        }
    }

    /// Stops every instance (nimbus is exiting).
    pub async fn stop_all(&self, grace: Duration) {
        let ids: Vec<String> = self.lock().keys().cloned().collect();
        let stops = ids.iter().map(|id| self.stop(id, grace));
        futures_util::future::join_all(stops).await;
    }

    /// nimbus is stopping (or restarting in place): stops every instance, then
    /// takes away what this run set up on the host for them (namespace driver):
    /// the `nimbus0` bridge and its lock file, and the shared `nimbus` parent
    /// cgroups if no instance of any nimbus is left in them. A clean stop leaves
    /// no process, network device or cgroup behind; the next start (a restarted
    /// process included) makes them again at its first instance.
    pub async fn shutdown(&self, grace: Duration) {
        self.stop_all(grace).await;
        if let Some(bridge) = self.bridge.get() {
            bridge.remove().await;
        }
        if self.used_cgroups.load(std::sync::atomic::Ordering::Relaxed) {
            let removed = tokio::task::spawn_blocking(cgroup::remove_parents)
                .await
                .unwrap_or_default();
            for dir in removed {
                tracing::debug!("removed cgroup {}", dir.display());
            }
        }
    }

    /// Removes a terminated instance's disk (its writable layer and logs).
    pub fn remove(&self, id: &str) {
        let dir = self.dir(id);
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("cannot remove {}: {e}", dir.display());
            }
        }
    }

    /// The console output, as GetConsoleOutput returns it: the last 64 KiB.
    pub fn console(&self, id: &str) -> Vec<u8> {
        init::read_tail(&self.dir(id).join(init::CONSOLE), 64 * 1024)
    }

    /// Pauses every process of a running instance (namespace driver with a cgroup
    /// freezer), so that its disk holds still while a save copies it. False when
    /// it cannot be paused (it then keeps running while copied).
    pub fn freeze(&self, id: &str, frozen: bool) -> bool {
        let live = self.lock();
        match live.get(id).and_then(|l| l.cgroup.as_ref()) {
            Some(group) => group.freeze(frozen),
            None => false,
        }
    }

    /// The directory holding one directory per instance.
    pub fn instances_dir(&self) -> &Path {
        &self.root
    }

    /// The ids of the instances whose processes run now.
    pub fn running(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// What a save keeps of an instance: its disk and its console log (the rest
    /// of its directory is made again at each start). The disk is the overlay's
    /// writable layer under the namespace driver (`root` is then the mounted
    /// overlay, never to be read as files), and the `root` directory itself
    /// under the process driver.
    pub fn saved_paths(&self, id: &str) -> Vec<PathBuf> {
        let disk = match self.kind {
            DriverKind::Namespace => init::UPPER,
            DriverKind::Process => init::ROOT,
        };
        [disk, init::CONSOLE]
            .iter()
            .map(|name| self.dir(id).join(name))
            .filter(|p| p.exists())
            .collect()
    }

    /// The writable layer of an instance (what CreateImage freezes).
    pub fn upper_dir(&self, id: &str) -> PathBuf {
        self.dir(id).join(init::UPPER)
    }

    /// Attaches a volume to a running instance (namespace driver): a loop device
    /// and its node at `device` in the instance's /dev. Stopped instances get
    /// their volumes at the next start (through the launch spec).
    pub fn attach_volume(&self, id: &str, device: &str, file: &Path) -> Result<(), String> {
        if self.kind != DriverKind::Namespace {
            return Ok(());
        }
        let Some(pid) = self.pid(id) else {
            return Ok(());
        };
        let attached = blockdev::attach(file).map_err(|e| format!("loop device: {e}"))?;
        let dev = instance_pid1(pid)
            .map(|p| PathBuf::from(format!("/proc/{p}/root/dev")))
            .ok_or("the instance has no init")?;
        blockdev::make_nodes(&dev, device, attached.minor)
            .map_err(|e| format!("device node {device}: {e}"))?;
        if let Some(live) = self.lock().get_mut(id) {
            live.volumes.insert(device.to_string(), attached);
        }
        Ok(())
    }

    /// Replaces a running instance's inbound firewall (namespace driver).
    pub async fn apply_firewall(&self, id: &str, ruleset: &str) -> Result<(), String> {
        if self.kind != DriverKind::Namespace {
            return Ok(());
        }
        match self.pid(id) {
            Some(pid) => firewall::load(pid, ruleset).await,
            None => Ok(()),
        }
    }

    /// Takes a volume away from a running instance.
    pub fn detach_volume(&self, id: &str, device: &str) {
        let Some(pid) = self.pid(id) else {
            return;
        };
        if let Some(p) = instance_pid1(pid) {
            blockdev::remove_nodes(Path::new(&format!("/proc/{p}/root/dev")), device);
        }
        if let Some(live) = self.lock().get_mut(id) {
            live.volumes.remove(device);
        }
    }

    /// Host pid of the instance's outer init, for tests and diagnostics.
    pub fn pid(&self, id: &str) -> Option<i32> {
        self.lock().get(id).map(|l| l.pid)
    }
}

/// The instance's PID 1: the outer init's only child.
fn instance_pid1(outer: i32) -> Option<i32> {
    std::fs::read_to_string(format!("/proc/{outer}/task/{outer}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

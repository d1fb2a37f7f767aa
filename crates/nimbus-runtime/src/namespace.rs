//! The namespace driver's host side: checks that this host can run it, then
//! per start spawns the init in new mount, UTS, IPC, network and PID
//! namespaces, puts it in the instance's cgroup, plugs it into the VPC bridge
//! and lets it boot.

use crate::blockdev;
use crate::cgroup::Group;
use crate::netlink::Bridge;
use crate::process::{go, spawn_init};
use crate::{DeviceNode, LaunchSpec};
use std::collections::HashMap;

/// A started instance: outer init pid, cgroup, process handle, attached volumes.
type Started = (
    i32,
    Option<Group>,
    tokio::process::Child,
    HashMap<String, blockdev::Attached>,
);
use nix::sched::CloneFlags;
use std::path::Path;

/// Why the namespace driver cannot run here, if it cannot.
pub fn available() -> Result<(), String> {
    if !cfg!(target_os = "linux") {
        return Err("namespaces need Linux".into());
    }
    if !nix::unistd::geteuid().is_root() {
        return Err("nimbus is not running as root".into());
    }
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !filesystems
        .lines()
        .any(|l| l.trim_end().ends_with("overlay"))
    {
        return Err("the kernel has no overlayfs".into());
    }
    for ns in ["mnt", "pid", "uts", "net", "ipc"] {
        if !Path::new("/proc/self/ns").join(ns).exists() {
            return Err(format!("the kernel has no {ns} namespaces"));
        }
    }
    Ok(())
}

pub async fn start(dir: &Path, spec: &LaunchSpec, bridge: &Bridge) -> Result<Started, String> {
    let flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWPID;
    let t0 = std::time::Instant::now();
    let mut child = spawn_init(dir, Some(flags))?;
    let t_spawn = t0.elapsed();
    let pid = child.id().ok_or("the instance ended at once")? as i32;
    let id = &spec.boot.instance_id;
    let ready = async {
        // Joined before the boot starts, so every process of the instance is inside.
        let group = Group::create(id, spec.vcpus, spec.memory_mib);
        if let Some(g) = &group {
            g.add(pid)
                .map_err(|e| format!("cannot put the instance in its cgroup: {e}"))?;
        }
        let t_cgroup = t0.elapsed();
        // Interface names are at most 15 bytes: the id's last 10 hex digits
        // tell them apart (`crate::veth_name` finds the host end again).
        let tag = id.get(id.len().saturating_sub(10)..).unwrap_or(id);
        let nic = crate::netlink::Nic {
            ip: spec.boot.private_ip,
            mac: &spec.boot.mac,
            prefix: spec.prefix_len,
            gateway: spec.gateway,
            vpc: spec.vpc_cidr,
        };
        bridge.attach(pid, tag, &nic).await?;
        let t_net = t0.elapsed();
        let mut volumes = HashMap::new();
        let mut nodes = Vec::new();
        for (device, file) in &spec.volumes {
            let attached =
                blockdev::attach(file).map_err(|e| format!("cannot attach {device}: {e}"))?;
            nodes.push(DeviceNode {
                device: device.clone(),
                minor: attached.minor,
            });
            volumes.insert(device.clone(), attached);
        }
        if let Some(rules) = &spec.firewall {
            crate::firewall::load(pid, rules).await?;
        }
        go(&mut child, &nodes).await?;
        tracing::debug!("{id}: spawn {t_spawn:?} cgroup {t_cgroup:?} net {t_net:?}");
        Ok::<_, String>((group, volumes))
    };
    match ready.await {
        Ok((group, volumes)) => Ok((pid, group, child, volumes)),
        Err(e) => {
            let _ = child.kill().await;
            Err(e)
        }
    }
}

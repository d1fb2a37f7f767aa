//! The VPC network on this host, over rtnetlink: the `nimbus0` bridge that
//! owns every subnet's gateway (`.1`) and the metadata address
//! 169.254.169.254, and per instance a veth pair whose outer end joins the
//! bridge and whose inner end becomes the instance's `eth0` with its private
//! address, a default route via its subnet's gateway and the whole VPC on-link
//! (so instances of different subnets reach each other without the host
//! forwarding packets). One nimbus per network namespace owns the bridge (a
//! lock file), as two would hand out the same addresses; at a clean stop it
//! removes both ([`Bridge::remove`]), so nothing of it stays on the host.

use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::packet_route::neighbour::NeighbourState;
use rtnetlink::packet_route::route::RouteScope;
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;

pub const BRIDGE: &str = "nimbus0";
pub const METADATA_ADDRESS: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
const LOCK_PREFIX: &str = "/run/nimbus-bridge-";
const EEXIST: i32 = 17;

/// An instance's network interface: address, hardware address, subnet prefix,
/// gateway and the VPC's block.
#[derive(Clone, Copy)]
pub struct Nic<'a> {
    pub ip: Ipv4Addr,
    pub mac: &'a str,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub vpc: (Ipv4Addr, u8),
}

pub struct Bridge {
    index: u32,
    handle: Handle,
    /// Held for the life of the process: the bridge is ours while it is.
    _lock: std::fs::File,
    lock_path: String,
}

fn exists(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code().abs() == EEXIST)
}

fn connect() -> Result<Handle, String> {
    let (connection, handle, _) =
        rtnetlink::new_connection().map_err(|e| format!("cannot open netlink: {e}"))?;
    tokio::spawn(connection);
    Ok(handle)
}

/// A netlink connection inside the network namespace of `pid`: the socket is
/// made by a short-lived thread that joined that namespace, and stays bound to it.
async fn connect_in(pid: i32) -> Result<Handle, String> {
    let runtime = tokio::runtime::Handle::current();
    let made = std::thread::spawn(move || {
        let _entered = runtime.enter();
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))
            .map_err(|e| format!("instance network namespace: {e}"))?;
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("joining the instance network namespace: {e}"))?;
        rtnetlink::new_connection().map_err(|e| format!("cannot open netlink: {e}"))
    })
    .join()
    .map_err(|_| "netlink thread panicked".to_string())??;
    let (connection, handle, _) = made;
    tokio::spawn(connection);
    Ok(handle)
}

async fn index_of(handle: &Handle, name: &str) -> Result<Option<u32>, String> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(link)) => Ok(Some(link.header.index)),
        Ok(None) => Ok(None),
        // ENODEV: no such link.
        Err(rtnetlink::Error::NetlinkError(m)) if m.raw_code().abs() == 19 => Ok(None),
        Err(e) => Err(format!("looking up {name}: {e}")),
    }
}

/// Opens and locks the bridge's lock file, without waiting: an error names the
/// nimbus that holds it. The lock counts only while `path` still names the locked
/// file: a stopping nimbus unlinks it, and whoever opened it before that must open
/// the new one (or two nimbus would each hold a lock, on different files).
fn take_lock(path: &str) -> Result<std::fs::File, String> {
    use std::os::unix::fs::MetadataExt as _;
    for _ in 0..10 {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| format!("cannot open {path}: {e}"))?;
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(format!(
                "another nimbus on this host is running instances on the {BRIDGE} bridge"
            ));
        }
        let held = lock.metadata().map(|m| (m.dev(), m.ino()));
        let named = std::fs::metadata(path).map(|m| (m.dev(), m.ino()));
        if let (Ok(held), Ok(named)) = (held, named) {
            if held == named {
                return Ok(lock);
            }
        }
    }
    Err(format!("cannot lock {path}: it keeps being replaced"))
}

impl Bridge {
    /// Takes the host lock, then creates the bridge (or adopts the one a previous
    /// run left) and gives it the gateways and the metadata address.
    pub async fn ensure(gateways: &[(Ipv4Addr, u8)]) -> Result<Bridge, String> {
        // One bridge per network namespace: the lock is named after ours.
        let netns = std::fs::metadata("/proc/self/ns/net")
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap_or(0);
        let path = format!("{LOCK_PREFIX}{netns}.lock");
        let lock = take_lock(&path)?;
        let handle = connect()?;
        let index = match index_of(&handle, BRIDGE).await? {
            Some(i) => i,
            None => {
                let made = handle
                    .link()
                    .add(LinkBridge::new(BRIDGE).build())
                    .execute()
                    .await;
                if let Err(e) = made {
                    if !exists(&e) {
                        return Err(format!("cannot create bridge {BRIDGE}: {e}"));
                    }
                }
                index_of(&handle, BRIDGE)
                    .await?
                    .ok_or_else(|| format!("bridge {BRIDGE} vanished"))?
            }
        };
        let mut addresses: Vec<(Ipv4Addr, u8)> = gateways.to_vec();
        addresses.push((METADATA_ADDRESS, 32));
        for (ip, prefix) in addresses {
            if let Err(e) = handle
                .address()
                .add(index, IpAddr::V4(ip), prefix)
                .execute()
                .await
            {
                if !exists(&e) {
                    return Err(format!("cannot add {ip}/{prefix} to {BRIDGE}: {e}"));
                }
            }
        }
        handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(|e| format!("cannot bring {BRIDGE} up: {e}"))?;
        Ok(Bridge {
            index,
            handle,
            _lock: lock,
            lock_path: path,
        })
    }

    /// nimbus is stopping (its instances have): deletes the bridge, which takes
    /// its addresses, neighbour entries and any veth left on it along, then the
    /// lock file. The lock is held until the process ends (or execs, on a restart
    /// in place, whose new process makes both again), so no other nimbus can take
    /// the bridge in between; one that opened the old file meanwhile sees it
    /// unlinked and tries again (see [`take_lock`]).
    pub async fn remove(&self) {
        match index_of(&self.handle, BRIDGE).await {
            Ok(Some(index)) if index == self.index => {
                if let Err(e) = self.handle.link().del(index).execute().await {
                    tracing::warn!("cannot remove bridge {BRIDGE}: {e}");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("{e}"),
        }
        if let Err(e) = std::fs::remove_file(&self.lock_path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("cannot remove {}: {e}", self.lock_path);
            }
        }
    }

    /// Plugs the instance whose outer init is `pid` into the bridge and configures
    /// its side: `eth0` with `ip/prefix`, default route via `gateway`, `vpc` on-link.
    pub async fn attach(&self, pid: i32, tag: &str, nic: &Nic<'_>) -> Result<(), String> {
        let Nic {
            ip,
            mac,
            prefix,
            gateway,
            vpc,
        } = *nic;
        let outer = format!("nbh{tag}");
        // A previous run's pair can only survive if its namespace did; clear the name.
        if let Some(stale) = index_of(&self.handle, &outer).await? {
            let _ = self.handle.link().del(stale).execute().await;
        }
        // The peer is born inside the instance as eth0: moving an existing link
        // between namespaces waits for an RCU grace period (~15 ms, serialized
        // under the kernel's RTNL lock), creating it there does not.
        let hardware = parse_mac(mac);
        let mut peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name("eth0")
            .setns_by_pid(pid as u32);
        // The instance keeps its interface's address across reboots and stops, as an ENI does.
        if let Some(hw) = &hardware {
            peer = peer.address(hw.to_vec());
        }
        let peer = peer.build();
        self.handle
            .link()
            .add(
                LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
                    .name(outer.clone())
                    .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
                    .build(),
            )
            .execute()
            .await
            .map_err(|e| format!("cannot create veth {outer}: {e}"))?;
        let outer_index = index_of(&self.handle, &outer)
            .await?
            .ok_or("veth vanished")?;
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(outer_index)
                    .controller(self.index)
                    .up()
                    .build(),
            )
            .execute()
            .await
            .map_err(|e| format!("cannot plug {outer} into {BRIDGE}: {e}"))?;

        // The host may still remember another machine at this address (a freed
        // address reused, or a previous boot): tell it the current one now rather
        // than after its neighbour entry times out (tens of seconds of silence).
        if let Some(hw) = &hardware {
            let _ = self
                .handle
                .neighbours()
                .add(self.index, IpAddr::V4(ip))
                .link_layer_address(hw)
                .state(NeighbourState::Reachable)
                .replace()
                .execute()
                .await;
        }

        let inside = connect_in(pid).await?;
        if let Some(lo) = index_of(&inside, "lo").await? {
            inside
                .link()
                .set(LinkUnspec::new_with_index(lo).up().build())
                .execute()
                .await
                .map_err(|e| format!("cannot bring lo up: {e}"))?;
        }
        let eth = index_of(&inside, "eth0")
            .await?
            .ok_or("eth0 is not in the instance")?;
        inside
            .address()
            .add(eth, IpAddr::V4(ip), prefix)
            .execute()
            .await
            .map_err(|e| format!("cannot give eth0 {ip}/{prefix}: {e}"))?;
        inside
            .link()
            .set(LinkUnspec::new_with_index(eth).up().build())
            .execute()
            .await
            .map_err(|e| format!("cannot bring eth0 up: {e}"))?;
        if vpc.1 < prefix {
            inside
                .route()
                .add(
                    RouteMessageBuilder::<Ipv4Addr>::new()
                        .destination_prefix(vpc.0, vpc.1)
                        .output_interface(eth)
                        .scope(RouteScope::Link)
                        .build(),
                )
                .execute()
                .await
                .map_err(|e| format!("cannot route the VPC on-link: {e}"))?;
        }
        inside
            .route()
            .add(
                RouteMessageBuilder::<Ipv4Addr>::new()
                    .gateway(gateway)
                    .output_interface(eth)
                    .build(),
            )
            .execute()
            .await
            .map_err(|e| format!("cannot add the default route via {gateway}: {e}"))?;
        Ok(())
    }
}

/// `02:ab:cd:ef:01:23` as six bytes.
fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = text.split(':');
    for byte in out.iter_mut() {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_macs() {
        assert_eq!(
            super::parse_mac("02:4a:a0:ab:b8:c1"),
            Some([2, 0x4a, 0xa0, 0xab, 0xb8, 0xc1])
        );
        assert_eq!(super::parse_mac("02:4a"), None);
        assert_eq!(super::parse_mac("02:4a:a0:ab:b8:c1:00"), None);
    }

    #[test]
    fn the_bridge_lock_is_exclusive_and_removable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nimbus-bridge-1.lock");
        let path = path.to_str().unwrap();
        let first = super::take_lock(path).unwrap();
        // Held: a second nimbus is refused, without waiting.
        assert!(super::take_lock(path)
            .unwrap_err()
            .contains("another nimbus"));
        // A clean stop unlinks it while still holding it; the next nimbus makes a new one.
        std::fs::remove_file(path).unwrap();
        let second = super::take_lock(path).unwrap();
        drop(first);
        assert!(super::take_lock(path).is_err());
        drop(second);
        let third = super::take_lock(path).unwrap();
        drop(third);
    }
}

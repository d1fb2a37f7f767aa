//! Elastic IP forwarding in user space. Each elastic IP has a target (the
//! associated instance's private address, or none) and one listener per TCP
//! port the target listens on; a connection accepted on `public:port` is
//! spliced to `target:port`. Re-pointing an address takes effect for the next
//! connection at once, and connections still open to the previous target are
//! closed, so the old instance receives nothing more through the address.
//! Kernel NAT (nftables DNAT with route_localnet) would need a netfilter
//! dependency and changes host-wide sysctls; a splice per connection needs
//! neither and costs nothing measurable at the rates a laptop sees.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio::task::JoinHandle;

struct Entry {
    target: watch::Sender<Option<Ipv4Addr>>,
    listeners: HashMap<u16, JoinHandle<()>>,
}

#[derive(Default)]
pub struct Forwarder {
    entries: Mutex<HashMap<Ipv4Addr, Entry>>,
}

impl Forwarder {
    pub fn new() -> Arc<Forwarder> {
        Arc::new(Forwarder::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Ipv4Addr, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Points `public` at `target` (None: the address answers nothing).
    pub fn point(&self, public: Ipv4Addr, target: Option<Ipv4Addr>) {
        let mut entries = self.lock();
        match entries.get(&public) {
            Some(e) => {
                e.target.send_replace(target);
            }
            None => {
                let (tx, _) = watch::channel(target);
                entries.insert(
                    public,
                    Entry {
                        target: tx,
                        listeners: HashMap::new(),
                    },
                );
            }
        }
        if target.is_none() {
            if let Some(e) = entries.get_mut(&public) {
                for (_, l) in e.listeners.drain() {
                    l.abort();
                }
            }
        }
    }

    /// Stops answering on `public` altogether (the address was released).
    pub fn remove(&self, public: Ipv4Addr) {
        if let Some(e) = self.lock().remove(&public) {
            e.target.send_replace(None);
            for (_, l) in e.listeners {
                l.abort();
            }
        }
    }

    /// The target's listening ports as of now: listeners open for new ports and
    /// close for ports no longer served. Must run inside the tokio runtime.
    pub fn sync_ports(&self, public: Ipv4Addr, ports: &[u16]) {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(&public) else {
            return;
        };
        entry.listeners.retain(|port, task| {
            let keep = ports.contains(port);
            if !keep {
                task.abort();
            }
            keep
        });
        for &port in ports {
            if entry.listeners.contains_key(&port) {
                continue;
            }
            let addr = SocketAddr::from((public, port));
            let listener = match std::net::TcpListener::bind(addr).and_then(|l| {
                l.set_nonblocking(true)?;
                tokio::net::TcpListener::from_std(l)
            }) {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!("elastic IP {addr} cannot listen: {e}");
                    continue;
                }
            };
            let targets = entry.target.subscribe();
            entry
                .listeners
                .insert(port, tokio::spawn(accept_loop(listener, port, targets)));
        }
    }

    /// Where `public` points now.
    pub fn target(&self, public: Ipv4Addr) -> Option<Ipv4Addr> {
        self.lock().get(&public).and_then(|e| *e.target.borrow())
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    port: u16,
    targets: watch::Receiver<Option<Ipv4Addr>>,
) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            continue;
        };
        let mut targets = targets.clone();
        let Some(target) = *targets.borrow_and_update() else {
            continue;
        };
        tokio::spawn(async move {
            let Ok(mut outbound) = tokio::net::TcpStream::connect((target, port)).await else {
                return;
            };
            let _ = outbound.set_nodelay(true);
            let _ = inbound.set_nodelay(true);
            let mut inbound = inbound;
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                // Re-pointed elsewhere: this connection belonged to the old target.
                _ = targets.changed() => {}
            }
        });
    }
}

/// TCP ports in LISTEN state on any address or on `own` in a `/proc/net/tcp`
/// style table (IPv4 or IPv6 form).
pub fn listening_ports(table: &str, own: Ipv4Addr) -> Vec<u16> {
    let own_hex = format!("{:08X}", u32::from_le_bytes(own.octets()));
    let mut ports: Vec<u16> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state) = (fields.get(1)?, fields.get(3)?);
            if *state != "0A" {
                return None;
            }
            let (addr, port) = local.split_once(':')?;
            let any = addr.bytes().all(|b| b == b'0');
            if !any && addr != own_hex && !addr.ends_with(&own_hex) {
                return None;
            }
            u16::from_str_radix(port, 16).ok()
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_listening_ports() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0\n   2: 04001FAC:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 100 0 0 10 0\n   3: 04001FAC:0050 05001FAC:C350 01 00000000:00000000 00:00000000 00000000     0        0 4 1 0000000000000000 100 0 0 10 0\n";
        // 0.0.0.0:80 and 172.31.0.4:22 listen; 127.0.0.1:8080 is private; the last is a connection.
        assert_eq!(
            listening_ports(table, Ipv4Addr::new(172, 31, 0, 4)),
            vec![22, 80]
        );
    }

    #[tokio::test]
    async fn forwards_and_repoints() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        async fn server(addr: Ipv4Addr, reply: &'static [u8]) -> u16 {
            let l = tokio::net::TcpListener::bind((addr, 0))
                .await
                .expect("bind");
            let port = l.local_addr().expect("addr").port();
            tokio::spawn(async move {
                while let Ok((mut s, _)) = l.accept().await {
                    let _ = s.write_all(reply).await;
                }
            });
            port
        }
        let a = Ipv4Addr::new(127, 0, 0, 2);
        let b = Ipv4Addr::new(127, 0, 0, 3);
        let port = server(a, b"from-a").await;
        // The same port on b.
        let lb = tokio::net::TcpListener::bind((b, port))
            .await
            .expect("bind b");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = lb.accept().await {
                let _ = s.write_all(b"from-b").await;
            }
        });
        let public = Ipv4Addr::new(127, 100, 0, 9);
        let f = Forwarder::new();
        f.point(public, Some(a));
        f.sync_ports(public, &[port]);
        let read = || async {
            let mut s = tokio::net::TcpStream::connect((public, port))
                .await
                .expect("connect");
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out).await;
            out
        };
        assert_eq!(read().await, b"from-a");
        f.point(public, Some(b));
        assert_eq!(read().await, b"from-b");
        f.remove(public);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(tokio::net::TcpStream::connect((public, port))
            .await
            .is_err());
    }
}

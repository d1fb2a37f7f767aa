//! What an instance has used so far, for its CloudWatch metrics: counters
//! that only grow while it runs (the caller takes differences). This module
//! owns how each driver measures them:
//!
//! - **CPU time**: the instance's cgroup (namespace driver: `cpu.stat` or
//!   `cpuacct.usage`, every process it ever ran); without one (process
//!   driver, or a host where the cgroup could not be made), the process tree
//!   under the instance's init from `/proc/<pid>/stat`: utime + stime of each
//!   live process plus cutime + cstime, the time of the children it reaped
//!   (the init is a subreaper, so every ended process is reaped inside the
//!   tree). Clock ticks, so 10 ms resolution.
//! - **Network**: the namespace driver's veth, read on the host side
//!   (`/sys/class/net/nbh<tag>/statistics`) and inverted: what the host end
//!   transmits the instance received. The process driver shares the host's
//!   loopback and has nothing to measure.
//! - **Disk**: the cgroup's block I/O (`io.stat` on v2, `blkio` on v1), where
//!   the host accounts it. v1 sees reads and direct writes; buffered writes
//!   are written back by the kernel outside the group.
//!
//! One [`Runtime::usage_all`] reads `/proc` once for every instance; it does
//! file I/O and belongs off the async workers.

use crate::cgroup::{Io, Probe};
use crate::{DriverKind, Runtime};
use std::collections::HashMap;
use std::path::Path;

/// An instance's counters so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// CPU time of its processes, nanoseconds (None: not measurable here).
    pub cpu_ns: Option<u64>,
    pub network: Option<Network>,
    pub disk: Option<Io>,
}

/// Traffic of the instance's interface, as the instance sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Network {
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub packets_out: u64,
}

/// Where one running instance is measured, copied out under the runtime's lock.
pub(crate) struct Target {
    pub id: String,
    pub pid: i32,
    pub probe: Option<Probe>,
}

/// One process as `/proc/<pid>/stat` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Proc {
    ppid: i32,
    /// utime + stime + cutime + cstime, clock ticks.
    ticks: u64,
}

impl Runtime {
    /// Every running instance's counters, `/proc` read once. Blocking.
    pub fn usage_all(&self) -> HashMap<String, Usage> {
        let targets: Vec<Target> = self
            .lock()
            .iter()
            .map(|(id, l)| Target {
                id: id.clone(),
                pid: l.pid,
                probe: l.cgroup.as_ref().map(|g| g.probe()),
            })
            .collect();
        self.measure(targets)
    }

    /// One instance's counters (None when it does not run). Blocking.
    pub fn usage(&self, id: &str) -> Option<Usage> {
        let target = {
            let live = self.lock();
            let l = live.get(id)?;
            Target {
                id: id.to_string(),
                pid: l.pid,
                probe: l.cgroup.as_ref().map(|g| g.probe()),
            }
        };
        self.measure(vec![target]).remove(id)
    }

    fn measure(&self, targets: Vec<Target>) -> HashMap<String, Usage> {
        let mut out = HashMap::with_capacity(targets.len());
        if targets.is_empty() {
            return out;
        }
        // The process table only when some instance has no cgroup to ask.
        let table = targets
            .iter()
            .any(|t| t.probe.as_ref().and_then(Probe::cpu_ns).is_none())
            .then(|| process_table(Path::new("/proc")));
        for t in targets {
            let cgroup_cpu = t.probe.as_ref().and_then(Probe::cpu_ns);
            let cpu_ns = cgroup_cpu.or_else(|| {
                table
                    .as_ref()
                    .map(|table| tree_ticks(table, t.pid).saturating_mul(ns_per_tick()))
            });
            let network = match self.kind {
                DriverKind::Namespace => {
                    veth_counters(Path::new("/sys/class/net"), &crate::veth_name(&t.id))
                }
                DriverKind::Process => None,
            };
            let disk = t.probe.as_ref().and_then(Probe::io);
            out.insert(
                t.id,
                Usage {
                    cpu_ns,
                    network,
                    disk,
                },
            );
        }
        out
    }
}

/// Nanoseconds per clock tick of `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
fn ns_per_tick() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        1_000_000_000 / hz as u64
    } else {
        10_000_000
    }
}

/// Every process under `proc`: its parent and CPU ticks.
fn process_table(proc: &Path) -> HashMap<i32, Proc> {
    let mut table = HashMap::new();
    let Ok(entries) = std::fs::read_dir(proc) else {
        return table;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        // A process may end between the listing and the read: skip it.
        if let Some(p) = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|s| parse_stat(&s))
        {
            table.insert(pid, p);
        }
    }
    table
}

/// `/proc/<pid>/stat`: the command name is in parentheses and may hold
/// spaces, so fields are counted from the last `)`: state, ppid (field 4),
/// then utime, stime, cutime, cstime (fields 14 to 17).
fn parse_stat(text: &str) -> Option<Proc> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let ppid = fields.get(1)?.parse::<i32>().ok()?;
    let ticks = num(11)? + num(12)? + num(13)? + num(14)?;
    Some(Proc { ppid, ticks })
}

/// The ticks of `root` and every live process under it.
fn tree_ticks(table: &HashMap<i32, Proc>, root: i32) -> u64 {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for (&pid, p) in table {
        children.entry(p.ppid).or_default().push(pid);
    }
    let mut total = 0;
    let mut stack = vec![root];
    let mut seen = std::collections::HashSet::new();
    while let Some(pid) = stack.pop() {
        if !seen.insert(pid) {
            continue;
        }
        if let Some(p) = table.get(&pid) {
            total += p.ticks;
        }
        if let Some(kids) = children.get(&pid) {
            stack.extend(kids);
        }
    }
    total
}

/// The instance side of a host veth's counters (host tx is instance rx).
fn veth_counters(class_net: &Path, name: &str) -> Option<Network> {
    let dir = class_net.join(name).join("statistics");
    let read = |file: &str| -> Option<u64> {
        std::fs::read_to_string(dir.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    Some(Network {
        bytes_in: read("tx_bytes")?,
        bytes_out: read("rx_bytes")?,
        packets_in: read("tx_packets")?,
        packets_out: read("rx_packets")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stat_lines_with_awkward_names() {
        let line = "4242 (my (odd) name) S 4200 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 50 7 3 20 0 1 0 12345 1000 100 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Proc {
                ppid: 4200,
                ticks: 310
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn sums_a_process_tree_and_nothing_else() {
        let table: HashMap<i32, Proc> = [
            (10, Proc { ppid: 1, ticks: 5 }),
            (
                11,
                Proc {
                    ppid: 10,
                    ticks: 100,
                },
            ),
            (12, Proc { ppid: 11, ticks: 7 }),
            (
                20,
                Proc {
                    ppid: 1,
                    ticks: 1000,
                },
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(tree_ticks(&table, 10), 112);
        assert_eq!(tree_ticks(&table, 99), 0);
    }

    #[test]
    fn measures_this_process_tree() {
        let table = process_table(Path::new("/proc"));
        let me = std::process::id() as i32;
        assert!(table.contains_key(&me));
        // Burn a little CPU: this process's ticks grow.
        let before = tree_ticks(&table, me);
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(200) {
            x = x.wrapping_mul(31).wrapping_add(1);
        }
        assert!(x != 1);
        let after = tree_ticks(&process_table(Path::new("/proc")), me);
        assert!(after > before, "{before} -> {after}");
    }

    /// What reading the process table costs here: `cargo test --release -p
    /// nimbus-runtime proc_cost -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn proc_cost() {
        for _ in 0..3 {
            let t = std::time::Instant::now();
            let table = process_table(Path::new("/proc"));
            let ticks = tree_ticks(&table, 1);
            println!(
                "{} processes: {:?} ({ticks} ticks)",
                table.len(),
                t.elapsed()
            );
        }
    }

    #[test]
    fn reads_veth_counters_inverted() {
        let dir = tempfile::tempdir().unwrap();
        let stats = dir.path().join("nbhabc").join("statistics");
        std::fs::create_dir_all(&stats).unwrap();
        for (f, v) in [
            ("tx_bytes", 1000),
            ("rx_bytes", 200),
            ("tx_packets", 10),
            ("rx_packets", 2),
        ] {
            std::fs::write(stats.join(f), format!("{v}\n")).unwrap();
        }
        assert_eq!(
            veth_counters(dir.path(), "nbhabc"),
            Some(Network {
                bytes_in: 1000,
                bytes_out: 200,
                packets_in: 10,
                packets_out: 2
            })
        );
        assert_eq!(veth_counters(dir.path(), "missing"), None);
    }
}

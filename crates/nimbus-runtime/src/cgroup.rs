//! An instance's cgroup: its instance type as real limits (CPU quota of
//! vCPUs x 100 ms per 100 ms, memory limit of its memory) and its CPU time
//! and block I/O for the metrics (`io.stat` on v2, the `blkio` hierarchy on
//! v1; joined where the host has it, never a reason to refuse a start). Works on the unified hierarchy (v2) and on the split one
//! (v1: cpu, cpuacct and memory controllers, possibly co-mounted). Groups live
//! under `nimbus/<instance id>` in each hierarchy; the `nimbus` parents go at a
//! clean stop once empty ([`remove_parents`]): every nimbus on the host (one per
//! network namespace) shares them, and the kernel refuses to remove a cgroup that
//! still has children, so the last one out removes them.

use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";
const PERIOD_US: u64 = 100_000;

pub struct Group {
    /// One directory per hierarchy the instance's processes joined.
    dirs: Vec<PathBuf>,
    /// Where CPU time is read (`cpu.stat` on v2, `cpuacct.usage` on v1).
    usage: Option<PathBuf>,
    /// The group that pauses the instance for a consistent save (the v1 freezer
    /// hierarchy's, or the unified one's).
    freezer: Option<PathBuf>,
    /// Where block I/O is read: the unified group (its `io.stat`) or the v1
    /// blkio group, when the host accounts it.
    io: Option<PathBuf>,
    unified: bool,
}

/// Where an instance's counters are read, copied out of its [`Group`] so the
/// reading happens without the runtime's lock.
#[derive(Debug, Clone)]
pub struct Probe {
    usage: Option<PathBuf>,
    io: Option<PathBuf>,
    unified: bool,
}

/// Block I/O of a group so far, every device summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Io {
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub read_ops: u64,
    pub write_ops: u64,
}

fn write(path: &Path, value: &str) -> std::io::Result<()> {
    std::fs::write(path, value)
}

impl Group {
    /// Makes the group with the limits; None when cgroups cannot be used here
    /// (the instance then runs without limits, which is logged).
    pub fn create(id: &str, vcpus: u32, memory_mib: u64) -> Option<Group> {
        let mut made = Err(std::io::Error::other("not tried"));
        // Another nimbus that stops may remove the empty parent between our mkdir
        // and our writes (files then go missing): make it again.
        for _ in 0..3 {
            made = if Path::new(ROOT).join("cgroup.controllers").exists() {
                Self::create_unified(id, vcpus, memory_mib)
            } else {
                Self::create_split(id, vcpus, memory_mib)
            };
            if !matches!(&made, Err(e) if e.kind() == std::io::ErrorKind::NotFound) {
                break;
            }
        }
        match made {
            Ok(g) => Some(g),
            Err(e) => {
                tracing::warn!("instance {id} runs without cgroup limits: {e}");
                None
            }
        }
    }

    fn create_unified(id: &str, vcpus: u32, memory_mib: u64) -> std::io::Result<Group> {
        let parent = Path::new(ROOT).join("nimbus");
        make_dir(&parent)?;
        // Controllers must be enabled on the way down for the leaf to have them.
        let _ = write(
            &Path::new(ROOT).join("cgroup.subtree_control"),
            "+cpu +memory",
        );
        write(&parent.join("cgroup.subtree_control"), "+cpu +memory")?;
        // Block I/O accounting only where the host offers the controller.
        let _ = write(&Path::new(ROOT).join("cgroup.subtree_control"), "+io");
        let _ = write(&parent.join("cgroup.subtree_control"), "+io");
        let dir = parent.join(id);
        make_dir(&dir)?;
        write(
            &dir.join("cpu.max"),
            &format!("{} {PERIOD_US}", u64::from(vcpus) * PERIOD_US),
        )?;
        write(
            &dir.join("memory.max"),
            &(memory_mib * 1024 * 1024).to_string(),
        )?;
        let io = dir.join("io.stat").exists().then(|| dir.clone());
        Ok(Group {
            usage: Some(dir.join("cpu.stat")),
            freezer: Some(dir.clone()),
            io,
            dirs: vec![dir],
            unified: true,
        })
    }

    fn create_split(id: &str, vcpus: u32, memory_mib: u64) -> std::io::Result<Group> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        let mut usage = None;
        let mut freezer = None;
        for controller in ["cpu", "cpuacct", "memory", "freezer"] {
            let mount = Path::new(ROOT).join(controller);
            // Co-mounted controllers (cpu,cpuacct) are one hierarchy seen twice.
            let Ok(real) = mount.canonicalize() else {
                continue;
            };
            let dir = real.join("nimbus").join(id);
            if !dirs.contains(&dir) {
                make_dir(&dir)?;
                dirs.push(dir.clone());
            }
            match controller {
                "cpu" => {
                    write(&dir.join("cpu.cfs_period_us"), &PERIOD_US.to_string())?;
                    write(
                        &dir.join("cpu.cfs_quota_us"),
                        &(u64::from(vcpus) * PERIOD_US).to_string(),
                    )?;
                }
                "cpuacct" => usage = Some(dir.join("cpuacct.usage")),
                "freezer" => freezer = Some(dir.clone()),
                _ => write(
                    &dir.join("memory.limit_in_bytes"),
                    &(memory_mib * 1024 * 1024).to_string(),
                )?,
            }
        }
        if dirs.is_empty() {
            return Err(std::io::Error::other("no cgroup v1 controllers mounted"));
        }
        // blkio is optional: joined best-effort (see `add`), for the metrics only.
        let io = Path::new(ROOT)
            .join("blkio")
            .canonicalize()
            .ok()
            .map(|real| real.join("nimbus").join(id))
            .filter(|dir| dirs.contains(dir) || make_dir(dir).is_ok());
        Ok(Group {
            dirs,
            usage,
            freezer,
            io,
            unified: false,
        })
    }

    /// Moves a process (and so its future children) into the group.
    pub fn add(&self, pid: i32) -> std::io::Result<()> {
        for dir in &self.dirs {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        if let Some(io) = self.io.as_ref().filter(|d| !self.dirs.contains(d)) {
            if let Err(e) = write(&io.join("cgroup.procs"), &pid.to_string()) {
                tracing::debug!("no block I/O accounting for {}: {e}", io.display());
            }
        }
        Ok(())
    }

    /// Where this group's counters are read.
    pub fn probe(&self) -> Probe {
        Probe {
            usage: self.usage.clone(),
            io: self.io.clone(),
            unified: self.unified,
        }
    }

    /// Pauses (`true`) or resumes every process of the group, and waits until
    /// the kernel reports it done (at most two seconds). False without a freezer.
    pub fn freeze(&self, frozen: bool) -> bool {
        let Some(dir) = &self.freezer else {
            return false;
        };
        let (file, value, done): (&str, &str, fn(&str) -> bool) = match (self.unified, frozen) {
            (true, true) => ("cgroup.freeze", "1", |s| s.lines().any(|l| l == "frozen 1")),
            (true, false) => ("cgroup.freeze", "0", |s| s.lines().any(|l| l == "frozen 0")),
            (false, true) => ("freezer.state", "FROZEN", |s| s.trim() == "FROZEN"),
            (false, false) => ("freezer.state", "THAWED", |s| s.trim() == "THAWED"),
        };
        if write(&dir.join(file), value).is_err() {
            return false;
        }
        let report = dir.join(if self.unified {
            "cgroup.events"
        } else {
            "freezer.state"
        });
        for _ in 0..200 {
            if std::fs::read_to_string(&report).is_ok_and(|s| done(&s)) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        false
    }

    /// Removes the group once its processes are gone (rmdir fails while any remain).
    pub fn remove(&self) {
        let io = self.io.iter().filter(|d| !self.dirs.contains(d));
        for dir in self.dirs.iter().chain(io) {
            for _ in 0..50 {
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
                }
            }
        }
    }
}

/// Removes the `nimbus` parent group of each hierarchy under `root` if it is
/// empty (no instance of any nimbus in it); one in use stays. Returns the ones
/// removed.
pub fn remove_parents_in(root: &Path) -> Vec<PathBuf> {
    let mut parents: Vec<PathBuf> = Vec::new();
    if root.join("cgroup.controllers").exists() {
        parents.push(root.join("nimbus"));
    } else {
        for controller in ["cpu", "cpuacct", "memory", "freezer", "blkio"] {
            if let Ok(real) = root.join(controller).canonicalize() {
                let parent = real.join("nimbus");
                if !parents.contains(&parent) {
                    parents.push(parent);
                }
            }
        }
    }
    parents
        .into_iter()
        // rmdir only: it fails on a group that has child groups.
        .filter(|p| std::fs::remove_dir(p).is_ok())
        .collect()
}

impl Probe {
    /// CPU time of the group's processes so far (v2 `cpu.stat` usage_usec,
    /// v1 `cpuacct.usage`).
    pub fn cpu_ns(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.usage.as_ref()?).ok()?;
        if self.unified {
            text.lines()
                .find_map(|l| l.strip_prefix("usage_usec "))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|us| us * 1000)
        } else {
            text.trim().parse().ok()
        }
    }

    /// Block I/O so far, when the group is accounted.
    pub fn io(&self) -> Option<Io> {
        let dir = self.io.as_ref()?;
        if self.unified {
            Some(parse_io_stat(
                &std::fs::read_to_string(dir.join("io.stat")).ok()?,
            ))
        } else {
            let bytes =
                std::fs::read_to_string(dir.join("blkio.throttle.io_service_bytes")).ok()?;
            let ops = std::fs::read_to_string(dir.join("blkio.throttle.io_serviced")).ok()?;
            let (read_bytes, write_bytes) = parse_blkio(&bytes);
            let (read_ops, write_ops) = parse_blkio(&ops);
            Some(Io {
                read_bytes,
                write_bytes,
                read_ops,
                write_ops,
            })
        }
    }
}

/// v2 `io.stat`: one line per device, `MAJ:MIN rbytes=N wbytes=N rios=N wios=N ...`.
fn parse_io_stat(text: &str) -> Io {
    let mut io = Io::default();
    for field in text.split_whitespace() {
        let Some((name, value)) = field.split_once('=') else {
            continue;
        };
        let v = value.parse::<u64>().unwrap_or(0);
        match name {
            "rbytes" => io.read_bytes += v,
            "wbytes" => io.write_bytes += v,
            "rios" => io.read_ops += v,
            "wios" => io.write_ops += v,
            _ => {}
        }
    }
    io
}

/// v1 `blkio.throttle.io_service*`: `MAJ:MIN Read N` / `Write N` lines per
/// device (and a `Total` line); the reads and writes summed.
fn parse_blkio(text: &str) -> (u64, u64) {
    let (mut read, mut written) = (0, 0);
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(_device), Some(kind), Some(v)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let v = v.parse::<u64>().unwrap_or(0);
        match kind {
            "Read" => read += v,
            "Write" => written += v,
            _ => {}
        }
    }
    (read, written)
}

/// [`remove_parents_in`] the host's cgroup hierarchies.
pub fn remove_parents() -> Vec<PathBuf> {
    remove_parents_in(Path::new(ROOT))
}

/// A cgroup directory, 0755 as cgroups usually are: nimbus's umask (077) would
/// hide the instance's limits from its unprivileged users.
fn make_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir)?;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{parse_blkio, parse_io_stat, remove_parents_in, Io};
    use std::fs;

    #[test]
    fn reads_block_io_of_both_hierarchies() {
        let v2 = "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n\
                  7:3 rbytes=100 wbytes=0 rios=3 wios=0 dbytes=0 dios=0\n";
        assert_eq!(
            parse_io_stat(v2),
            Io {
                read_bytes: 4196,
                write_bytes: 8192,
                read_ops: 4,
                write_ops: 2
            }
        );
        let v1 = "8:0 Read 4096\n8:0 Write 512\n8:0 Sync 0\n8:0 Async 4608\n8:0 Total 4608\n\
                  7:3 Read 10\nTotal 4618\n";
        assert_eq!(parse_blkio(v1), (4106, 512));
    }

    #[test]
    fn removes_only_empty_parents_unified() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("cgroup.controllers"), "cpu memory").unwrap();
        // Another nimbus's instance still in the tree: the parent stays.
        fs::create_dir_all(root.path().join("nimbus/i-0123456789abcdef0")).unwrap();
        assert!(remove_parents_in(root.path()).is_empty());
        assert!(root.path().join("nimbus/i-0123456789abcdef0").is_dir());
        // The last one gone: the parent goes too.
        fs::remove_dir(root.path().join("nimbus/i-0123456789abcdef0")).unwrap();
        assert_eq!(
            remove_parents_in(root.path()),
            vec![root.path().join("nimbus")]
        );
        assert!(!root.path().join("nimbus").exists());
        // Nothing to remove: nothing happens.
        assert!(remove_parents_in(root.path()).is_empty());
    }

    #[test]
    fn removes_only_empty_parents_split() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        // cpu and cpuacct co-mounted (one hierarchy seen twice), memory on its own.
        fs::create_dir_all(r.join("cpu,cpuacct/nimbus")).unwrap();
        std::os::unix::fs::symlink("cpu,cpuacct", r.join("cpu")).unwrap();
        std::os::unix::fs::symlink("cpu,cpuacct", r.join("cpuacct")).unwrap();
        fs::create_dir_all(r.join("memory/nimbus/i-1")).unwrap();
        let real = r.canonicalize().unwrap();
        assert_eq!(remove_parents_in(r), vec![real.join("cpu,cpuacct/nimbus")]);
        assert!(r.join("memory/nimbus/i-1").is_dir());
    }
}

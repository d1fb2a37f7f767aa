//! The first process of an instance (`nimbus __instance-init DIR`): what the
//! kernel's boot and cloud-init do on an EC2 machine. It waits for the host to
//! finish the network ("go" on stdin), then, in the namespace driver, forks the
//! instance's PID 1, which builds the root file system (overlay of the image
//! layers and the instance's writable layer, fresh /proc, /sys, /dev, /run,
//! /tmp), pivots into it and sets the host name. PID 1 writes the instance's
//! identity files, runs per-boot scripts and, on the first boot of this
//! instance id only, its user data, with all output on the console (the file
//! GetConsoleOutput reads). It then reaps orphans until told to shut down,
//! when it signals every process, waits briefly and kills what is left.

use crate::BootConfig;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const CONSOLE: &str = "console.log";
pub const UPPER: &str = "upper";
const WORK: &str = "work";
pub(crate) const ROOT: &str = "root";
const BOOT: &str = "boot.json";
const USER_DATA: &str = "user-data";
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How long shutdown waits between SIGTERM and SIGKILL, as systemd's default is longer
/// than anyone waiting for a stop wants.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// What the console says the boot ran as; tools that parse console output look for this.
const CLOUD_INIT: &str = "Cloud-init v. 24.1.3";

/// Lays out an instance directory before a start: the writable layer (kept across
/// stops), the boot configuration and user data (rewritten each start: both can
/// change while the instance is stopped), and the console log (appended to).
pub fn prepare_dir(dir: &Path, boot: &BootConfig, user_data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    // Owner-only: the instance's files (and its boot.json, which holds the process
    // driver's metadata secret) are no other local user's business.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let upper = dir.join(UPPER);
    if !upper.exists() {
        // First start: the writable layer begins as the image's layer.
        match &boot.image_layer {
            Some(layer) => crate::layers::freeze(layer, &upper)?,
            None => {
                std::fs::create_dir(&upper)?;
                // The overlay's "/" takes this mode: 0755 as on any machine (nimbus's
                // own umask is 077), so the instance's unprivileged users can walk it.
                std::fs::set_permissions(&upper, std::fs::Permissions::from_mode(0o755))?;
            }
        }
    }
    for sub in [WORK, ROOT] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let encoded = serde_json::to_vec(boot).map_err(std::io::Error::other)?;
    let boot_path = dir.join(BOOT);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&boot_path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(&encoded)?;
    drop(file);
    std::fs::write(dir.join(USER_DATA), user_data)?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(CONSOLE))?;
    Ok(())
}

/// The last `max` bytes of a file (empty when it does not exist).
pub fn read_tail(path: &Path, max: u64) -> Vec<u8> {
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len > max {
        let _ = file.seek(SeekFrom::Start(len - max));
    }
    let mut out = Vec::new();
    let _ = file.read_to_end(&mut out);
    out
}

/// Entry point of `nimbus __instance-init DIR`. Returns the exit code.
pub fn main(args: &[String]) -> i32 {
    let Some(dir) = args.first().map(PathBuf::from) else {
        eprintln!("usage: nimbus __instance-init DIR");
        return 2;
    };
    let boot: BootConfig = match std::fs::read(dir.join(BOOT))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(b) => b,
        Err(e) => {
            eprintln!("nimbus init: cannot read {}: {e}", dir.join(BOOT).display());
            return 1;
        }
    };
    // The host says "go" once the network is in place; EOF means it gave up on us.
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() || !line.starts_with("go") {
        return 1;
    }
    let devices: Vec<crate::DeviceNode> =
        serde_json::from_str(line[2..].trim()).unwrap_or_default();
    // Read now: once PID 1 has pivoted, the instance directory is out of sight.
    let user_data = std::fs::read(dir.join(USER_DATA)).unwrap_or_default();
    if boot.isolated {
        // The host has put us in the instance's cgroup by now: a cgroup namespace
        // rooted there lets the instance see its own limits under /sys/fs/cgroup.
        if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP) {
            eprintln!("nimbus init: no cgroup namespace: {e}");
        }
    }
    if !boot.isolated {
        let base = dir.join(ROOT);
        return supervise(&boot, &user_data, &base, false);
    }
    // The process nimbus spawned sits outside the new PID namespace; its first child
    // is the namespace's PID 1.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
            match build_root(&dir, &boot, &devices) {
                Ok(()) => supervise(&boot, &user_data, Path::new("/"), true),
                Err(e) => {
                    eprintln!("nimbus init: cannot build the root file system: {e}");
                    1
                }
            }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => outer_wait(child),
        Err(e) => {
            eprintln!("nimbus init: fork failed: {e}");
            1
        }
    }
}

/// The outer process: passes SIGTERM on to PID 1 and ends when it does.
fn outer_wait(child: Pid) -> i32 {
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGCHLD);
    let _ = signals.thread_block();
    loop {
        match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(..)) => return 0,
            Err(_) => return 0,
            _ => {}
        }
        match signals.wait() {
            Ok(Signal::SIGTERM) | Ok(Signal::SIGINT) => {
                let _ = kill(child, Signal::SIGTERM);
            }
            _ => {}
        }
    }
}

fn errno(what: &str, e: nix::errno::Errno) -> String {
    format!("{what}: {e}")
}

/// Builds the instance's root and pivots into it (PID 1, namespace driver).
fn build_root(dir: &Path, boot: &BootConfig, devices: &[crate::DeviceNode]) -> Result<(), String> {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    let none: Option<&str> = None;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(|e| errno("making / private", e))?;
    let root = dir.join(ROOT);
    let options = format!(
        "lowerdir=/,upperdir={},workdir={}",
        dir.join(UPPER).display(),
        dir.join(WORK).display()
    );
    mount(
        Some("overlay"),
        &root,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(|e| errno("mounting the overlay root", e))?;
    let at = |p: &str| root.join(p);
    let quiet = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    for d in ["proc", "sys", "dev", "run", "tmp"] {
        std::fs::create_dir_all(at(d)).map_err(|e| format!("mkdir /{d}: {e}"))?;
    }
    mount(Some("proc"), &at("proc"), Some("proc"), quiet, none)
        .map_err(|e| errno("mounting /proc", e))?;
    mount(
        Some("sysfs"),
        &at("sys"),
        Some("sysfs"),
        quiet | MsFlags::MS_RDONLY,
        none,
    )
    .map_err(|e| errno("mounting /sys", e))?;
    mount(
        Some("tmpfs"),
        &at("dev"),
        Some("tmpfs"),
        MsFlags::MS_NOSUID,
        Some("mode=755,size=65536k"),
    )
    .map_err(|e| errno("mounting /dev", e))?;
    make_devices(&at("dev"))?;
    for d in devices {
        crate::blockdev::make_nodes(&at("dev"), &d.device, d.minor)
            .map_err(|e| format!("device node {}: {e}", d.device))?;
    }
    mount(
        Some("devpts"),
        &at("dev/pts"),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=620"),
    )
    .map_err(|e| errno("mounting /dev/pts", e))?;
    mount(
        Some("tmpfs"),
        &at("dev/shm"),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )
    .map_err(|e| errno("mounting /dev/shm", e))?;
    mount(
        Some("tmpfs"),
        &at("run"),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=755"),
    )
    .map_err(|e| errno("mounting /run", e))?;
    // A fresh /tmp: the host's own /tmp (data directories among it) stays out of sight.
    mount(
        Some("tmpfs"),
        &at("tmp"),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )
    .map_err(|e| errno("mounting /tmp", e))?;
    mount_cgroups(&at("sys/fs/cgroup"));
    std::env::set_current_dir(&root).map_err(|e| format!("chdir to the new root: {e}"))?;
    // pivot_root(".", ".") stacks the old root under the new one; detaching it leaves
    // only the instance's tree (no directory for the old root needed).
    nix::unistd::pivot_root(".", ".").map_err(|e| errno("pivot_root", e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| errno("detaching the host root", e))?;
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))?;
    nix::unistd::sethostname(&boot.hostname).map_err(|e| errno("sethostname", e))?;
    Ok(())
}

/// The instance's own CPU and memory cgroups, read-only, where tools look for
/// them (`memory.max` / `memory.limit_in_bytes`, `cpu.max` / `cpu.cfs_quota_us`).
/// Best effort: an instance without them still runs.
fn mount_cgroups(target: &Path) {
    use nix::mount::{mount, MsFlags};
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY;
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let none: Option<&str> = None;
    if mounts
        .lines()
        .any(|l| l.split(' ').nth(1) == Some("/sys/fs/cgroup") && l.starts_with("cgroup2 "))
    {
        let _ = mount(Some("cgroup2"), target, Some("cgroup2"), flags, none);
        return;
    }
    if mount(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=755"),
    )
    .is_err()
    {
        return;
    }
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.len() < 4 || fields[2] != "cgroup" {
            continue;
        }
        let controllers: Vec<&str> = fields[3]
            .split(',')
            .filter(|o| matches!(*o, "cpu" | "cpuacct" | "memory" | "pids"))
            .collect();
        if controllers.is_empty() {
            continue;
        }
        let Some(name) = Path::new(fields[1]).file_name() else {
            continue;
        };
        let at = target.join(name);
        if std::fs::create_dir_all(&at).is_ok() {
            let _ = mount(
                Some("cgroup"),
                &at,
                Some("cgroup"),
                flags,
                Some(controllers.join(",").as_str()),
            );
        }
    }
    let _ = nix::mount::mount(
        none,
        target,
        none,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_BIND,
        none,
    );
}

fn make_devices(dev: &Path) -> Result<(), String> {
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    let rw = Mode::from_bits_truncate(0o666);
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        mknod(&dev.join(name), SFlag::S_IFCHR, rw, makedev(major, minor))
            .map_err(|e| errno(&format!("mknod /dev/{name}"), e))?;
        // mknod's mode is masked by the umask; devices must really be 0666.
        let _ = std::fs::set_permissions(dev.join(name), std::fs::Permissions::from_mode(0o666));
    }
    for d in ["pts", "shm"] {
        std::fs::create_dir_all(dev.join(d)).map_err(|e| format!("mkdir /dev/{d}: {e}"))?;
    }
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(target, dev.join(link))
            .map_err(|e| format!("symlink /dev/{link}: {e}"))?;
    }
    Ok(())
}

/// One step of the boot: a script run to completion before the next.
struct Step {
    path: PathBuf,
    what: String,
}

/// Runs the boot as PID 1 (or as the process driver's supervisor) and then reaps
/// children until shutdown. `base` is the instance's "/" as seen from here.
fn supervise(boot: &BootConfig, user_data: &[u8], base: &Path, isolated: bool) -> i32 {
    let started = Instant::now();
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGCHLD);
    let _ = signals.thread_block();
    if !isolated {
        // Orphaned daemons of the user data come back to us, so shutdown can end them.
        let _ = nix::sys::prctl::set_child_subreaper(true);
    }
    let now = nimbus_core::timestamp::format(nimbus_core::now_millis() as f64 / 1000.0, "rfc822")
        .replace(" GMT", " +0000");
    console(&format!(
        "{CLOUD_INIT} running 'init' at {now}. Up {:.2} seconds.",
        started.elapsed().as_secs_f64()
    ));
    console(&format!(
        "ci-info: eth0: {} {}",
        boot.private_ip, boot.hostname
    ));
    if let Err(e) = write_identity(boot, base, isolated) {
        console(&format!(
            "nimbus init: cannot write the instance files: {e}"
        ));
    }
    let steps = boot_steps(boot, user_data, base);
    let mut steps = steps.into_iter();
    let mut current = start_next(&mut steps, boot, base);
    let mut announced = false;
    loop {
        if current.is_none() && !announced {
            announced = true;
            let done = base.join("var/lib/cloud/instance/boot-finished");
            let _ = std::fs::write(&done, format!("{:.2}\n", started.elapsed().as_secs_f64()));
            let now =
                nimbus_core::timestamp::format(nimbus_core::now_millis() as f64 / 1000.0, "rfc822")
                    .replace(" GMT", " +0000");
            console(&format!(
                "{CLOUD_INIT} finished at {now}. Datasource DataSourceEc2Local.  Up {:.2} seconds",
                started.elapsed().as_secs_f64()
            ));
        }
        // Reap everything that has ended; the running step's end starts the next.
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => {
                    if current.as_ref().is_some_and(|(p, _)| *p == pid) {
                        if let Some((_, what)) = current.take() {
                            if code != 0 {
                                console(&format!("{what} exited with status {code}"));
                            }
                        }
                        current = start_next(&mut steps, boot, base);
                    }
                }
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    if current.as_ref().is_some_and(|(p, _)| *p == pid) {
                        if let Some((_, what)) = current.take() {
                            console(&format!("{what} killed by {sig}"));
                        }
                        current = start_next(&mut steps, boot, base);
                    }
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
        if current.is_none() && !announced {
            continue;
        }
        match signals.wait() {
            Ok(Signal::SIGTERM) | Ok(Signal::SIGINT) => {
                shutdown(isolated);
                return 0;
            }
            _ => {}
        }
    }
}

fn start_next(
    steps: &mut impl Iterator<Item = Step>,
    boot: &BootConfig,
    base: &Path,
) -> Option<(Pid, String)> {
    for step in steps.by_ref() {
        match run_step(&step, boot, base) {
            Ok(pid) => return Some((pid, step.what)),
            Err(e) => console(&format!("{}: cannot run: {e}", step.what)),
        }
    }
    None
}

fn run_step(step: &Step, boot: &BootConfig, base: &Path) -> std::io::Result<Pid> {
    let mut cmd = Command::new(&step.path);
    cmd.env_clear()
        .env("PATH", PATH)
        .env("HOME", base.join("root"))
        .env("USER", "root")
        .env("LOGNAME", "root")
        .env("LANG", "C.UTF-8")
        // The process driver's metadata endpoint and API address (no 169.254.169.254 there).
        .envs(boot.env.iter().cloned())
        .current_dir(base)
        .stdin(Stdio::null());
    // The boot blocks these to wait for them; the scripts must get them as usual.
    unsafe {
        cmd.pre_exec(|| {
            let _ = SigSet::all().thread_unblock();
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    Ok(Pid::from_raw(child.id() as i32))
}

/// Per-boot scripts (every boot), then the user data (first boot of this instance
/// id), in cloud-init's order.
fn boot_steps(boot: &BootConfig, user_data: &[u8], base: &Path) -> Vec<Step> {
    let mut steps = Vec::new();
    let per_boot = base.join("var/lib/cloud/scripts/per-boot");
    if let Ok(entries) = std::fs::read_dir(&per_boot) {
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let executable = path
                .metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false);
            if executable {
                steps.push(Step {
                    what: format!("per-boot script {}", path.display()),
                    path,
                });
            }
        }
    }
    let instance = base.join("var/lib/cloud/instances").join(&boot.instance_id);
    let done = instance.join("sem/config_scripts_user");
    if done.exists() {
        return steps;
    }
    let _ = std::fs::create_dir_all(instance.join("sem"));
    let _ = std::fs::create_dir_all(instance.join("scripts"));
    let _ = std::fs::write(instance.join("user-data.txt"), user_data);
    let _ = std::fs::write(&done, b"");
    if user_data.is_empty() {
        return steps;
    }
    if user_data.starts_with(b"#!") {
        let script = instance.join("scripts/part-001");
        let written = std::fs::write(&script, user_data).and_then(|_| {
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700))
        });
        match written {
            Ok(()) => steps.push(Step {
                path: script,
                what: "user data".into(),
            }),
            Err(e) => console(&format!("user data: cannot write the script: {e}")),
        }
    } else {
        let first = String::from_utf8_lossy(&user_data[..user_data.len().min(40)])
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        console(&format!(
            "user data starting with {first:?} was not run: only shell scripts (#!) are supported"
        ));
    }
    steps
}

/// Host name, hosts file, root's authorized keys and the AWS CLI configuration
/// that points at nimbus (credentials come from the metadata service).
fn write_identity(boot: &BootConfig, base: &Path, isolated: bool) -> std::io::Result<()> {
    let cloud = base.join("var/lib/cloud");
    std::fs::create_dir_all(cloud.join("instances").join(&boot.instance_id))?;
    let link = cloud.join("instance");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(cloud.join("instances").join(&boot.instance_id), &link)?;
    let root_home = base.join("root");
    let aws = root_home.join(".aws");
    std::fs::create_dir_all(&aws)?;
    let mut config = format!("[default]\nregion = {}\n", boot.region);
    if let Some(url) = &boot.endpoint_url {
        config.push_str(&format!("endpoint_url = {url}\n"));
    }
    std::fs::write(aws.join("config"), config)?;
    // The host's own keys must not shadow the instance profile's credentials.
    let _ = std::fs::remove_file(aws.join("credentials"));
    if !boot.public_keys.is_empty() {
        let ssh = root_home.join(".ssh");
        std::fs::create_dir_all(&ssh)?;
        std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o700))?;
        let keys = boot.public_keys.join("\n") + "\n";
        std::fs::write(ssh.join("authorized_keys"), keys)?;
        std::fs::set_permissions(
            ssh.join("authorized_keys"),
            std::fs::Permissions::from_mode(0o600),
        )?;
    }
    if isolated {
        std::fs::write("/etc/hostname", format!("{}\n", boot.hostname))?;
        std::fs::write(
            "/etc/hosts",
            format!(
                "127.0.0.1 localhost\n{} {} {}\n::1 localhost ip6-localhost ip6-loopback\n",
                boot.private_ip, boot.fqdn, boot.hostname
            ),
        )?;
    }
    Ok(())
}

/// Ends every process of the instance: SIGTERM, a short wait, SIGKILL.
fn shutdown(isolated: bool) {
    console("reboot: System halted");
    // PID 1's kill(-1) reaches every process in its namespace but itself; the process
    // driver's supervisor signals its own group.
    let everyone = if isolated {
        Pid::from_raw(-1)
    } else {
        Pid::from_raw(-nix::unistd::getpgrp().as_raw())
    };
    let _ = kill(everyone, Signal::SIGTERM);
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while Instant::now() < deadline {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Err(_) => return, // no children left
            Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(20)),
            Ok(_) => {}
        }
    }
    if !isolated {
        // Daemons that left the group came back to us as orphans (subreaper).
        for pid in children_of(nix::unistd::getpid()) {
            let _ = kill(pid, Signal::SIGKILL);
        }
    }
    // In the process driver this ends the supervisor too, which is the point.
    let _ = kill(everyone, Signal::SIGKILL);
}

/// Direct children of `parent`, from /proc.
fn children_of(parent: Pid) -> Vec<Pid> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    // The command name may hold spaces; the fields after its ')' do not.
                    let rest = &stat[stat.rfind(')')? + 2..];
                    rest.split(' ').nth(1)?.parse::<i32>().ok()
                })
                == Some(parent.as_raw())
        })
        .map(Pid::from_raw)
        .collect()
}

/// A line on the console (stdout is the console log).
fn console(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

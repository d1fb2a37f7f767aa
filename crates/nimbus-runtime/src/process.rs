//! Spawning an instance's init, and the process driver: where namespaces are
//! not available, an instance is its init supervising the boot scripts in
//! their own session, in the instance directory, with the metadata endpoint
//! and nimbus's address given through the environment.

use nix::sched::CloneFlags;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

/// Starts `nimbus __instance-init DIR` with its console as stdout and stderr,
/// in a new session, in the namespaces of `unshare` (if any). The init waits for
/// "go" on stdin; the caller sends it with [`go`] once the host side is ready.
///
/// The child is killed with its parent thread (PR_SET_PDEATHSIG), so this must
/// run on one of the runtime's long-lived worker threads, never in spawn_blocking.
pub fn spawn_init(
    dir: &Path,
    unshare: Option<CloneFlags>,
) -> Result<tokio::process::Child, String> {
    let console = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(crate::init::CONSOLE))
        .map_err(|e| format!("cannot open the console log: {e}"))?;
    let console_err = console
        .try_clone()
        .map_err(|e| format!("cannot open the console log: {e}"))?;
    // /proc/self/exe still runs this binary after it was replaced on disk (a rebuild
    // or an upgrade while nimbus runs); current_exe() would name the new file or none.
    let exe = if std::path::Path::new("/proc/self/exe").exists() {
        std::path::PathBuf::from("/proc/self/exe")
    } else {
        std::env::current_exe().map_err(|e| format!("cannot find the nimbus binary: {e}"))?
    };
    let mut cmd = std::process::Command::new(exe);
    cmd.arg0("nimbus")
        .arg("__instance-init")
        .arg(dir)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::from(console))
        .stderr(Stdio::from(console_err));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setsid()?;
            // nimbus keeps its own files private (umask 077); an instance gets the
            // usual 022, as a booted machine's processes do.
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
            // An instance never outlives its nimbus (kill -9 included): no orphans.
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            if let Some(flags) = unshare {
                nix::sched::unshare(flags)?;
            }
            Ok(())
        });
    }
    tokio::process::Command::from(cmd)
        .spawn()
        .map_err(|e| format!("cannot start the instance: {e}"))
}

/// Tells a spawned init to boot, with the block devices it must create.
pub async fn go(
    child: &mut tokio::process::Child,
    devices: &[crate::DeviceNode],
) -> Result<(), String> {
    let mut stdin = child.stdin.take().ok_or("the instance's stdin is gone")?;
    let mut line = b"go ".to_vec();
    line.extend(serde_json::to_vec(devices).map_err(|e| e.to_string())?);
    line.push(b'\n');
    stdin
        .write_all(&line)
        .await
        .map_err(|e| format!("the instance ended before booting: {e}"))
}

pub async fn start(
    dir: &Path,
) -> Result<(i32, Option<crate::cgroup::Group>, tokio::process::Child), String> {
    let mut child = spawn_init(dir, None)?;
    let pid = child.id().ok_or("the instance ended at once")? as i32;
    go(&mut child, &[]).await?;
    Ok((pid, None, child))
}

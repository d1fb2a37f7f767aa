//! Loads an instance's firewall: `nft -f -` run inside the instance's network
//! namespace (joined between fork and exec). nftables is the host's real
//! firewall tool; where it is missing, security groups are not enforced and
//! that is logged once.

use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::AsyncWriteExt;

static MISSING_WARNED: AtomicBool = AtomicBool::new(false);

pub async fn load(pid: i32, ruleset: &str) -> Result<(), String> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))
        .map_err(|e| format!("instance network namespace: {e}"))?;
    let mut cmd = std::process::Command::new("nft");
    cmd.arg("-f")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: setns is async-signal-safe; the namespace file stays open in the parent.
    unsafe {
        cmd.pre_exec(move || {
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)?;
            Ok(())
        });
    }
    let mut child = match tokio::process::Command::from(cmd).spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !MISSING_WARNED.swap(true, Ordering::Relaxed) {
                tracing::warn!("nft (nftables) is not installed: security groups are not enforced");
            }
            return Ok(());
        }
        Err(e) => return Err(format!("cannot run nft: {e}")),
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(ruleset.as_bytes())
            .await
            .map_err(|e| format!("nft: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| format!("nft: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "nft refused the security group rules: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

//! What the benchmark measures besides wall time: latency percentiles, the
//! server's CPU time and resident memory read from `/proc`, and the client's
//! own CPU time (to show that the client is not the bottleneck).
//!
//! CPU and RSS are summed over the server process and its descendants, so that
//! a server that hands work to child processes is not flattered; for a
//! single-process server this is exactly `/proc/PID/stat` and `VmRSS`.

use std::collections::HashMap;
use std::fs;

/// Nearest-rank percentile (`p` in 0..=100) of an ascending slice; `None` when
/// empty. Nearest rank keeps the answer an observed latency, never an
/// interpolated one, which is what people expect to read in a p99.
pub fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted.len()) - 1;
    Some(sorted[idx])
}

/// Fields of `/proc/PID/stat` that the benchmark needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub ppid: u32,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
}

/// Parses one `/proc/PID/stat` line. The command name (field 2) may contain
/// spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    // After ')' come field 3 (state), 4 (ppid), ... 14 (utime), 15 (stime).
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(ProcStat {
        ppid,
        cpu_ticks: utime + stime,
    })
}

/// `VmRSS` from a `/proc/PID/status` text, in KiB. Kernel threads and zombies
/// have no such line: `None`.
pub fn parse_vmrss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line["VmRSS:".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Clock ticks per second for `/proc` CPU times.
pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions; it only reads a constant.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    // Linux has used 100 since forever; fall back to it if sysconf fails.
    if v > 0 {
        v as u64
    } else {
        100
    }
}

/// `pid` and all its descendants that exist right now.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(st) = fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .as_deref()
                .and_then(parse_stat)
            {
                children.entry(st.ppid).or_default().push(p);
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        if let Some(kids) = children.get(&out[i]) {
            out.extend(kids.iter().copied().filter(|k| *k != pid));
        }
        i += 1;
    }
    out
}

/// A server process being watched: its CPU ticks and RSS summed over its tree.
#[derive(Debug, Clone, Copy)]
pub struct ServerSample {
    pub cpu_ticks: u64,
    pub rss_kib: u64,
}

/// Samples the server `pid` (and descendants); an error when the server itself
/// is gone, since every later figure would be meaningless.
pub fn sample_server(pid: u32) -> Result<ServerSample, String> {
    let own = fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("server pid {pid}: cannot read /proc/{pid}/stat: {e}"))?;
    parse_stat(&own).ok_or_else(|| format!("server pid {pid}: unreadable /proc/{pid}/stat"))?;
    let mut sample = ServerSample {
        cpu_ticks: 0,
        rss_kib: 0,
    };
    for p in process_tree(pid) {
        // A child may exit between listing and reading: skip it rather than fail.
        if let Some(st) = fs::read_to_string(format!("/proc/{p}/stat"))
            .ok()
            .as_deref()
            .and_then(parse_stat)
        {
            sample.cpu_ticks += st.cpu_ticks;
        }
        if let Some(kib) = fs::read_to_string(format!("/proc/{p}/status"))
            .ok()
            .as_deref()
            .and_then(parse_vmrss_kib)
        {
            sample.rss_kib += kib;
        }
    }
    Ok(sample)
}

/// RSS summed over `pids` (a tree listed once by [`process_tree`]): the peak
/// sampler runs every 100 ms and must not scan all of `/proc` each time, as
/// that would cost the client more CPU than its requests do.
pub fn rss_kib_of(pids: &[u32]) -> Option<u64> {
    let mut total = None;
    for p in pids {
        if let Some(kib) = fs::read_to_string(format!("/proc/{p}/status"))
            .ok()
            .as_deref()
            .and_then(parse_vmrss_kib)
        {
            *total.get_or_insert(0) += kib;
        }
    }
    total
}

/// CPU time (user + system) this process has used so far, in microseconds.
pub fn self_cpu_micros() -> u64 {
    // SAFETY: getrusage only writes into the struct we hand it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return 0;
    }
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(ru.ru_utime) + us(ru.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
        // Ten samples: p99 is the largest, p50 the fifth.
        let w: Vec<u32> = (10..20).collect();
        assert_eq!(percentile(&w, 99.0), Some(19));
        assert_eq!(percentile(&w, 50.0), Some(14));
    }

    #[test]
    fn stat_with_awkward_command_name() {
        let line = "4242 (my (odd) srv) S 17 4242 4242 0 -1 4194560 1234 0 0 0 350 75 0 0 20 0 3 0 1000 123456 789 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                ppid: 17,
                cpu_ticks: 425
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 0"), None);
    }

    #[test]
    fn vmrss_line() {
        let status = "Name:\tpython3\nVmPeak:\t  300000 kB\nVmRSS:\t   51234 kB\nThreads:\t4\n";
        assert_eq!(parse_vmrss_kib(status), Some(51234));
        assert_eq!(parse_vmrss_kib("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn own_process_is_readable() {
        let me = std::process::id();
        let s = sample_server(me).unwrap();
        assert!(s.rss_kib > 0);
        assert!(process_tree(me).contains(&me));
        assert!(clock_ticks_per_sec() > 0);
        assert!(sample_server(u32::MAX).is_err());
    }
}

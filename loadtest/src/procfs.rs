//! Reading a process's resident memory and CPU time from `/proc` (Linux), so reports can
//! say how much memory the server holds and where the CPU time of a run went.

use anyhow::{Context, Result};

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// `VmRSS` of a `/proc/<pid>/status` text, in KiB.
pub fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// User + system CPU seconds of a `/proc/<pid>/stat` text.
pub fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces and parentheses: skip to the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) … utime(14) stime(15), so offsets 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SEC)
}

/// Resident memory of `pid`, in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    parse_vm_rss_kib(&text)
        .map(|k| k * 1024)
        .with_context(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// CPU seconds used so far by `pid` (all threads), or `None` when it is gone.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|t| parse_cpu_seconds(&t))
}

/// CPU seconds of several processes, sampled together.
#[derive(Debug, Clone)]
pub struct CpuSample {
    /// `(label, pid, seconds)`.
    pub procs: Vec<(String, u32, Option<f64>)>,
    /// When the sample was taken.
    pub at: std::time::Instant,
}

impl CpuSample {
    /// Samples the given processes now.
    pub fn take(procs: &[(String, u32)]) -> CpuSample {
        CpuSample {
            procs: procs
                .iter()
                .map(|(l, p)| (l.clone(), *p, cpu_seconds(*p)))
                .collect(),
            at: std::time::Instant::now(),
        }
    }

    /// Cores used by each process between `self` and the later sample `end`.
    pub fn cores_until(&self, end: &CpuSample) -> Vec<(String, f64)> {
        let wall = end.at.saturating_duration_since(self.at).as_secs_f64();
        self.procs
            .iter()
            .filter_map(|(label, pid, a)| {
                let b = end.procs.iter().find(|(_, p, _)| p == pid)?.2?;
                let a = (*a)?;
                (wall > 0.0).then(|| (label.clone(), (b - a).max(0.0) / wall))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_stat() {
        let status = "Name:\tproof-market\nVmPeak:\t  999 kB\nVmRSS:\t   123456 kB\nThreads: 9\n";
        assert_eq!(parse_vm_rss_kib(status), Some(123_456));
        assert_eq!(parse_vm_rss_kib("Name: x\n"), None);
        let stat = "4242 (odd (name) x) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 9 0";
        assert_eq!(parse_cpu_seconds(stat), Some(3.0));
        assert_eq!(parse_cpu_seconds("garbage"), None);
    }

    #[test]
    fn own_process_is_readable() {
        let me = std::process::id();
        assert!(rss_bytes(me).unwrap() > 0);
        assert!(cpu_seconds(me).is_some());
    }
}

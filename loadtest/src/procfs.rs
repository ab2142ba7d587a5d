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

/// Busy CPU seconds of the whole machine (all cores) from a `/proc/stat` text:
/// everything but idle and iowait.
pub fn parse_machine_busy_seconds(stat: &str) -> Option<f64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest times are inside user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some(total.saturating_sub(idle) as f64 / TICKS_PER_SEC)
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

/// Parent PID and `(utime + stime, cutime + cstime)` CPU seconds of a `/proc/<pid>/stat`
/// text (the second: children already waited for).
fn parse_stat_family(stat: &str) -> Option<(u32, f64, f64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok());
    let ppid = u32::try_from(n(1)?).ok()?;
    Some((
        ppid,
        (n(11)? + n(12)?) as f64 / TICKS_PER_SEC,
        (n(13)? + n(14)?) as f64 / TICKS_PER_SEC,
    ))
}

/// CPU seconds of `pid`, its children already gone, and its living children (one
/// level: PostgreSQL's postmaster and its backends), or `None` when it is gone.
pub fn family_cpu_seconds(pid: u32) -> Option<f64> {
    let (_, own, reaped) =
        parse_stat_family(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
    let children: f64 = std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|t| parse_stat_family(&t))
        .filter(|(ppid, _, _)| *ppid == pid)
        .map(|(_, own, _)| own)
        .sum();
    Some(own + reaped + children)
}

/// CPU seconds of several processes, sampled together.
#[derive(Debug, Clone)]
pub struct CpuSample {
    /// `(label, pid, seconds)`.
    pub procs: Vec<(String, u32, Option<f64>)>,
    /// Busy seconds of the whole machine.
    pub machine: Option<f64>,
    /// When the sample was taken.
    pub at: std::time::Instant,
}

impl CpuSample {
    /// Samples the given processes now; a process labelled `postgres` counts with its
    /// children (the backends do PostgreSQL's work).
    pub fn take(procs: &[(String, u32)]) -> CpuSample {
        CpuSample {
            procs: procs
                .iter()
                .map(|(l, p)| {
                    let cpu = if l == "postgres" {
                        family_cpu_seconds(*p)
                    } else {
                        cpu_seconds(*p)
                    };
                    (l.clone(), *p, cpu)
                })
                .collect(),
            machine: std::fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|t| parse_machine_busy_seconds(&t)),
            at: std::time::Instant::now(),
        }
    }

    /// Cores used by each process between `self` and the later sample `end`, plus
    /// `machine (all processes)`: what every process on the machine used together, so
    /// that load from outside the run shows.
    pub fn cores_until(&self, end: &CpuSample) -> Vec<(String, f64)> {
        let wall = end.at.saturating_duration_since(self.at).as_secs_f64();
        let machine = match (self.machine, end.machine) {
            (Some(a), Some(b)) if wall > 0.0 => Some((
                "machine (all processes)".to_owned(),
                (b - a).max(0.0) / wall,
            )),
            _ => None,
        };
        self.procs
            .iter()
            .filter_map(|(label, pid, a)| {
                let b = end.procs.iter().find(|(_, p, _)| p == pid)?.2?;
                let a = (*a)?;
                (wall > 0.0).then(|| (label.clone(), (b - a).max(0.0) / wall))
            })
            .chain(machine)
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
        assert_eq!(parse_stat_family(stat), Some((1, 3.0, 0.0)));
        let machine = "cpu  100 0 50 1000 10 0 50 0 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(parse_machine_busy_seconds(machine), Some(2.0));
    }

    #[test]
    fn own_process_is_readable() {
        let me = std::process::id();
        assert!(rss_bytes(me).unwrap() > 0);
        // Own time first: the family's, read after, can only have grown past it.
        let own = cpu_seconds(me).unwrap();
        assert!(family_cpu_seconds(me).is_some_and(|f| f >= own));
    }
}

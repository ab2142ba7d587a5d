//! When calls are sent: the fixed-rate arrival schedule of open-loop runs and the shared
//! count/time budget of closed-loop runs.
//!
//! Open loop: call `i` is *scheduled* at `start + i / rate`, whatever happened to the
//! calls before it, and its latency is measured from that scheduled instant. A server
//! (or a load generator) that falls behind therefore shows up as latency instead of
//! silently lowering the offered rate: no coordinated omission.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

/// Fixed-rate arrivals: `count` calls, one every `1/rate` seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    interval_ns: f64,
    count: u64,
}

impl Schedule {
    /// Arrivals at `rate` per second during `span`, at most `max` of them.
    pub fn new(rate: f64, span: Duration, max: u64) -> Result<Schedule> {
        if !(rate.is_finite() && rate > 0.0) {
            bail!("the open-loop rate must be a positive number, got {rate}");
        }
        if rate > 1_000_000.0 {
            bail!("an open-loop rate above 1,000,000/s is beyond what this harness can send");
        }
        let by_time = (span.as_secs_f64() * rate).floor() as u64;
        Ok(Schedule {
            interval_ns: 1e9 / rate,
            count: by_time.min(max),
        })
    }

    /// Number of arrivals.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Offset of arrival `i` from the start.
    pub fn offset(&self, i: u64) -> Duration {
        Duration::from_nanos((i as f64 * self.interval_ns) as u64)
    }

    /// The end (exclusive) of the arrivals due at `elapsed`, starting from `next`:
    /// every `i` in `next..due(next, elapsed)` has `offset(i) <= elapsed`.
    pub fn due(&self, next: u64, elapsed: Duration) -> u64 {
        let n = (elapsed.as_nanos() as f64 / self.interval_ns).floor() as u64 + 1;
        n.clamp(next, self.count)
    }
}

/// Count and time bounds shared by all closed-loop workers.
#[derive(Debug)]
pub struct Budget {
    taken: AtomicU64,
    max: u64,
    deadline: Instant,
}

impl Budget {
    /// At most `max` calls, none started after `start + span`.
    pub fn new(start: Instant, span: Duration, max: u64) -> Budget {
        Budget {
            taken: AtomicU64::new(0),
            max,
            deadline: start + span,
        }
    }

    /// Claims one call; false once the count or the time is used up.
    pub fn take(&self) -> bool {
        if Instant::now() >= self.deadline {
            return false;
        }
        self.taken.fetch_add(1, Ordering::Relaxed) < self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_are_evenly_spaced_and_bounded() {
        let s = Schedule::new(1000.0, Duration::from_secs(2), u64::MAX).unwrap();
        assert_eq!(s.count(), 2000);
        assert_eq!(s.offset(0), Duration::ZERO);
        assert_eq!(s.offset(1), Duration::from_millis(1));
        assert_eq!(s.offset(1500), Duration::from_millis(1500));
        let capped = Schedule::new(1000.0, Duration::from_secs(2), 10).unwrap();
        assert_eq!(capped.count(), 10);
        assert!(Schedule::new(0.0, Duration::from_secs(1), 1).is_err());
        assert!(Schedule::new(f64::NAN, Duration::from_secs(1), 1).is_err());
    }

    #[test]
    fn due_counts_every_arrival_whose_time_has_come() {
        let s = Schedule::new(1000.0, Duration::from_secs(1), u64::MAX).unwrap();
        // At t=0 only arrival 0 is due.
        assert_eq!(s.due(0, Duration::ZERO), 1);
        // At 2.5 ms arrivals 0, 1, 2 are due.
        assert_eq!(s.due(0, Duration::from_micros(2500)), 3);
        // Already dispatched ones are not dispatched again.
        assert_eq!(s.due(3, Duration::from_micros(2500)), 3);
        // A late dispatcher catches up in one step, never past the end.
        assert_eq!(s.due(3, Duration::from_secs(10)), 1000);
        for i in 0..s.due(0, Duration::from_micros(7300)) {
            assert!(s.offset(i) <= Duration::from_micros(7300));
        }
    }

    #[test]
    fn budget_stops_on_count_and_time() {
        let b = Budget::new(Instant::now(), Duration::from_secs(60), 3);
        assert!(b.take() && b.take() && b.take());
        assert!(!b.take());
        let past = Budget::new(
            Instant::now() - Duration::from_secs(2),
            Duration::from_secs(1),
            100,
        );
        assert!(!past.take());
    }
}

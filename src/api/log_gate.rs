//! At most one log line a second for events a peer or a client can repeat at will (a
//! dead owner fails every forward; anyone can send forged node calls), with a count of
//! the lines left out, so a flood costs the log one line a second.

use std::sync::atomic::{AtomicU64, Ordering};

/// One second's worth of log lines for one kind of event; a `static` per kind.
pub struct LogGate {
    last_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl LogGate {
    /// A gate that lets the first event through.
    pub const fn new() -> LogGate {
        LogGate {
            last_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(events left out since the last line)` when an event at `now_ms` may be
    /// logged, `None` (and counted) when one was logged less than a second ago.
    pub fn pass(&self, now_ms: u64) -> Option<u64> {
        let last = self.last_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) >= 1000
            && self
                .last_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }

    /// [`LogGate::pass`] at the current time.
    pub fn pass_now(&self) -> Option<u64> {
        self.pass(crate::domain::Millis::now().0)
    }
}

impl Default for LogGate {
    fn default() -> Self {
        LogGate::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_second_with_the_count_left_out() {
        let g = LogGate::new();
        assert_eq!(g.pass(5_000), Some(0));
        assert_eq!(g.pass(5_001), None);
        assert_eq!(g.pass(5_999), None);
        assert_eq!(g.pass(6_000), Some(2));
        assert_eq!(g.pass(6_000), None);
    }
}

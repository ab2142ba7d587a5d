//! Recording what happened: per-call latency histograms (HdrHistogram, microseconds),
//! outcome counters, match latencies, and a one-second timeline for the plot.
//!
//! Latencies are taken from the instant a call was *scheduled* (open loop) or started
//! (closed loop) to the instant its whole answer was read. Calls scheduled during the
//! warm-up are not recorded.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::mix::Op;

/// Highest latency a histogram holds (larger values are clamped): 10 minutes.
const MAX_US: u64 = 600_000_000;
/// Longest timeline kept (one bucket per second).
const MAX_BUCKETS: usize = 4 * 3600;

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 200 with the expected body.
    Ok,
    /// 409: an expected race (withdrawing or proving an order that moved on).
    Conflict,
    /// 503 or 429: the server shed load.
    Overloaded,
    /// Any other HTTP status, or a 200 whose body did not parse.
    HttpError,
    /// Connection refused/reset, timeout: no HTTP answer.
    Transport,
}

fn histogram(sigfig: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, sigfig).expect("valid histogram bounds")
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, MAX_US)
}

/// Counters and latencies of one operation.
#[derive(Debug, Clone)]
pub struct OpStats {
    /// Latencies of successful calls (µs).
    pub hist: Histogram<u64>,
    /// Latencies of 409 answers (µs).
    pub conflict_hist: Histogram<u64>,
    /// Outcome counters, indexed like [`Outcome`].
    pub ok: u64,
    /// 409 answers.
    pub conflict: u64,
    /// 503/429 answers.
    pub overloaded: u64,
    /// Other failures with an HTTP status.
    pub http_error: u64,
    /// Failures without an HTTP answer.
    pub transport: u64,
}

impl OpStats {
    fn new() -> OpStats {
        OpStats {
            hist: histogram(3),
            conflict_hist: histogram(2),
            ok: 0,
            conflict: 0,
            overloaded: 0,
            http_error: 0,
            transport: 0,
        }
    }

    /// All calls, whatever their outcome.
    pub fn total(&self) -> u64 {
        self.ok + self.conflict + self.overloaded + self.http_error + self.transport
    }
}

/// One second of the timeline.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// Calls answered 200 or 409 in this second.
    pub calls: u64,
    /// Orders acknowledged in this second.
    pub orders: u64,
    /// Matches acknowledged in this second.
    pub matches: u64,
    /// Failed calls (any non-200/409) in this second.
    pub failures: u64,
    /// Latencies of the orders acknowledged in this second (µs).
    pub order_hist: Histogram<u64>,
}

impl Bucket {
    fn new() -> Bucket {
        Bucket {
            calls: 0,
            orders: 0,
            matches: 0,
            failures: 0,
            order_hist: histogram(2),
        }
    }
}

/// Everything one run records.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    /// Per operation, indexed by [`Op::index`].
    pub ops: Vec<OpStats>,
    /// Latencies of every acknowledged order, whatever its side (µs).
    pub orders: Histogram<u64>,
    /// Match latency: crossing order sent (scheduled) → its ack saying `processing`.
    pub matched: Histogram<u64>,
    /// Crossing order sent (scheduled) → the counterpart read back as `processing`.
    pub match_visible: Histogram<u64>,
    /// Sampled counterpart reads that did not see the match (within their bound).
    pub match_not_visible: u64,
    /// Open loop: actual send − scheduled send (µs), the generator's own lag.
    pub lag: Histogram<u64>,
    /// One bucket per second since `start`.
    pub timeline: Vec<Bucket>,
    /// Orders by route (several nodes: local to the statement's owner or forwarded).
    pub routes: RouteStats,
    /// Last instant something was recorded.
    pub last: Instant,
}

/// Most nodes whose orders are counted apart.
pub const MAX_NODES: usize = 64;

/// Orders placed with several nodes, split by route: *local* when the node the user
/// calls owns the order's statement, *forwarded* when it has to pass the call on to the
/// owner (one more HTTP hop). Latencies are of 200 answers.
#[derive(Debug, Clone)]
pub struct RouteStats {
    /// Latencies of local orders (µs).
    pub local: Histogram<u64>,
    /// Latencies of forwarded orders (µs).
    pub forwarded: Histogram<u64>,
    /// Local orders that failed (any outcome but 200).
    pub local_failed: u64,
    /// Forwarded orders that failed.
    pub forwarded_failed: u64,
    /// Orders acknowledged, by the node the user called.
    pub by_entry: Vec<u64>,
    /// Orders acknowledged, by the node owning the statement.
    pub by_owner: Vec<u64>,
}

impl RouteStats {
    fn new() -> RouteStats {
        RouteStats {
            local: histogram(3),
            forwarded: histogram(3),
            local_failed: 0,
            forwarded_failed: 0,
            by_entry: Vec::new(),
            by_owner: Vec::new(),
        }
    }

    /// True when the order went through more than its entry node.
    pub fn is_forwarded(entry: usize, owner: usize) -> bool {
        entry != owner
    }

    /// Records one order sent to node `entry` for a statement owned by node `owner`.
    pub fn record(&mut self, entry: usize, owner: usize, outcome: Outcome, us: u64) {
        let fwd = RouteStats::is_forwarded(entry, owner);
        if outcome != Outcome::Ok {
            if fwd {
                self.forwarded_failed += 1;
            } else {
                self.local_failed += 1;
            }
            return;
        }
        if fwd {
            self.forwarded.saturating_record(us);
        } else {
            self.local.saturating_record(us);
        }
        for (v, i) in [(&mut self.by_entry, entry), (&mut self.by_owner, owner)] {
            if i < MAX_NODES {
                if v.len() <= i {
                    v.resize(i + 1, 0);
                }
                v[i] += 1;
            }
        }
    }

    /// Orders classified (acknowledged or not).
    pub fn total(&self) -> u64 {
        self.local.len() + self.forwarded.len() + self.local_failed + self.forwarded_failed
    }

    /// Share of the acknowledged orders that were forwarded (0 when none).
    pub fn forwarded_share(&self) -> f64 {
        let ok = self.local.len() + self.forwarded.len();
        if ok == 0 {
            0.0
        } else {
            self.forwarded.len() as f64 / ok as f64
        }
    }
}

impl Recorder {
    /// A recorder whose measurement window starts at `start`.
    pub fn new(start: Instant) -> Recorder {
        Recorder {
            start,
            ops: Op::ALL.iter().map(|_| OpStats::new()).collect(),
            orders: histogram(3),
            matched: histogram(3),
            match_visible: histogram(3),
            match_not_visible: 0,
            lag: histogram(3),
            timeline: Vec::new(),
            routes: RouteStats::new(),
            last: start,
        }
    }

    /// Start of the measured window.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// True when a call scheduled at `at` is measured (not warm-up).
    pub fn measures(&self, at: Instant) -> bool {
        at >= self.start
    }

    fn bucket(&mut self, done: Instant) -> Option<&mut Bucket> {
        let i = done.saturating_duration_since(self.start).as_secs() as usize;
        if i >= MAX_BUCKETS {
            return None;
        }
        while self.timeline.len() <= i {
            self.timeline.push(Bucket::new());
        }
        Some(&mut self.timeline[i])
    }

    /// Records one call scheduled at `scheduled` and fully answered at `done`.
    pub fn record(&mut self, op: Op, outcome: Outcome, scheduled: Instant, done: Instant) {
        if !self.measures(scheduled) {
            return;
        }
        let us = micros(done.saturating_duration_since(scheduled));
        let s = &mut self.ops[op.index()];
        match outcome {
            Outcome::Ok => {
                s.ok += 1;
                s.hist.saturating_record(us);
                if op.is_order() {
                    self.orders.saturating_record(us);
                }
            }
            Outcome::Conflict => {
                s.conflict += 1;
                s.conflict_hist.saturating_record(us);
            }
            Outcome::Overloaded => s.overloaded += 1,
            Outcome::HttpError => s.http_error += 1,
            Outcome::Transport => s.transport += 1,
        }
        self.last = self.last.max(done);
        if let Some(b) = self.bucket(done) {
            match outcome {
                Outcome::Ok | Outcome::Conflict => b.calls += 1,
                _ => b.failures += 1,
            }
            if outcome == Outcome::Ok && op.is_order() {
                b.orders += 1;
                b.order_hist.saturating_record(us);
            }
        }
    }

    /// Records the route of one order call (already recorded with [`Recorder::record`]):
    /// sent to node `entry`, its statement owned by node `owner`.
    pub fn record_route(
        &mut self,
        entry: usize,
        owner: usize,
        outcome: Outcome,
        scheduled: Instant,
        done: Instant,
    ) {
        if self.measures(scheduled) {
            let us = micros(done.saturating_duration_since(scheduled));
            self.routes.record(entry, owner, outcome, us);
        }
    }

    /// Records a match seen in the ack of the crossing order.
    pub fn record_match(&mut self, scheduled: Instant, done: Instant) {
        if !self.measures(scheduled) {
            return;
        }
        self.matched
            .saturating_record(micros(done.saturating_duration_since(scheduled)));
        if let Some(b) = self.bucket(done) {
            b.matches += 1;
        }
    }

    /// Records the sampled read of a match's counterpart.
    pub fn record_match_visible(&mut self, scheduled: Instant, seen: Option<Instant>) {
        if !self.measures(scheduled) {
            return;
        }
        match seen {
            Some(t) => self
                .match_visible
                .saturating_record(micros(t.saturating_duration_since(scheduled))),
            None => self.match_not_visible += 1,
        }
    }

    /// Records how late the open-loop dispatcher sent a call.
    pub fn record_lag(&mut self, scheduled: Instant, sent: Instant) {
        if self.measures(scheduled) {
            self.lag
                .saturating_record(micros(sent.saturating_duration_since(scheduled)));
        }
    }

    /// Length of the measured window: from its start to the last answer.
    pub fn window(&self) -> Duration {
        self.last.saturating_duration_since(self.start)
    }
}

/// Percentiles of one histogram, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Number of samples.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
}

impl Percentiles {
    /// Summarises `h`; all zero when it is empty.
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// `µs` as milliseconds with three decimals, for humans.
pub fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Schedule;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = histogram(3);
        for v in 1..=1000u64 {
            h.record(v).unwrap();
        }
        let p = Percentiles::of(&h);
        assert_eq!(p.count, 1000);
        assert_eq!(p.p50_us, 500);
        assert_eq!(p.p90_us, 900);
        assert_eq!(p.p99_us, 990);
        assert_eq!(p.p999_us, 999);
        assert_eq!(p.max_us, 1000);
        assert!((p.mean_us - 500.5).abs() < 0.01);
        assert_eq!(Percentiles::of(&histogram(3)), Percentiles::default());
    }

    #[test]
    fn tail_percentiles_see_rare_slow_calls() {
        let mut h = histogram(3);
        for _ in 0..9_990 {
            h.record(100).unwrap();
        }
        for _ in 0..10 {
            h.record(50_000).unwrap();
        }
        let p = Percentiles::of(&h);
        assert_eq!(p.p99_us, 100);
        // 99.9 % lands exactly on the boundary: the slow tail shows from p99.9 up.
        assert!(p.p999_us == 100 || p.p999_us >= 49_000, "{p:?}");
        assert!(p.max_us >= 49_000);
    }

    /// Open loop measured from the scheduled instant: a server stall of one second at
    /// 1000 calls/s shows as ~1000 slow calls spread from 0 to 1 s, not as one slow call
    /// (which is what a closed-loop client measuring from its own send would record).
    #[test]
    fn stall_is_not_coordinated_away() {
        let t0 = Instant::now();
        let mut r = Recorder::new(t0);
        let s = Schedule::new(1000.0, Duration::from_secs(2), u64::MAX).unwrap();
        let stall_end = t0 + Duration::from_secs(1);
        for i in 0..s.count() {
            let scheduled = t0 + s.offset(i);
            // Everything scheduled during the stall is answered when it ends (+100 µs).
            let done = scheduled.max(stall_end) + Duration::from_micros(100);
            r.record(Op::PushRequest, Outcome::Ok, scheduled, done);
        }
        let p = Percentiles::of(&r.ops[Op::PushRequest.index()].hist);
        assert_eq!(p.count, 2000);
        assert!(p.p50_us >= 100 && p.p50_us < 200, "{p:?}");
        assert!(p.p90_us > 500_000, "{p:?}");
        assert!(p.p99_us > 950_000, "{p:?}");
    }

    #[test]
    fn routes_split_local_and_forwarded() {
        let t0 = Instant::now();
        let mut r = Recorder::new(t0 + Duration::from_secs(1));
        // Warm-up: not counted.
        r.record_route(0, 1, Outcome::Ok, t0, t0 + Duration::from_millis(1));
        assert_eq!(r.routes.total(), 0);
        let s = t0 + Duration::from_secs(2);
        let ms = |n| s + Duration::from_millis(n);
        // Entry node vs owner node: 1 local and 3 forwarded acks, 1 failure of each.
        r.record_route(0, 0, Outcome::Ok, s, ms(1));
        r.record_route(0, 1, Outcome::Ok, s, ms(3));
        r.record_route(2, 1, Outcome::Ok, s, ms(3));
        r.record_route(1, 2, Outcome::Ok, s, ms(5));
        r.record_route(1, 1, Outcome::Overloaded, s, ms(1));
        r.record_route(1, 0, Outcome::Transport, s, ms(1));
        let rt = &r.routes;
        assert_eq!(rt.total(), 6);
        assert_eq!((rt.local.len(), rt.forwarded.len()), (1, 3));
        assert_eq!((rt.local_failed, rt.forwarded_failed), (1, 1));
        assert!((rt.forwarded_share() - 0.75).abs() < 1e-9);
        assert_eq!(rt.by_entry, vec![2, 1, 1]);
        assert_eq!(rt.by_owner, vec![1, 2, 1]);
        assert_eq!(Percentiles::of(&rt.local).p50_us, 1000);
        // 3 significant digits: values above 2048 µs are within 0.1 %.
        assert!(rt
            .forwarded
            .equivalent(Percentiles::of(&rt.forwarded).p50_us, 3000));
        assert!(rt
            .forwarded
            .equivalent(Percentiles::of(&rt.forwarded).max_us, 5000));
        assert_eq!(RouteStats::new().forwarded_share(), 0.0);
        assert!(RouteStats::is_forwarded(0, 1) && !RouteStats::is_forwarded(2, 2));
    }

    #[test]
    fn warmup_is_not_recorded_and_timeline_buckets_by_second() {
        let t0 = Instant::now();
        let mut r = Recorder::new(t0 + Duration::from_secs(1));
        r.record(Op::Get, Outcome::Ok, t0, t0 + Duration::from_millis(5));
        assert_eq!(r.ops[Op::Get.index()].total(), 0);
        let s = t0 + Duration::from_millis(1500);
        r.record(
            Op::PushProposal,
            Outcome::Ok,
            s,
            s + Duration::from_millis(2),
        );
        r.record(
            Op::PushProposal,
            Outcome::Overloaded,
            s,
            s + Duration::from_millis(1),
        );
        r.record(
            Op::Withdraw,
            Outcome::Conflict,
            s,
            s + Duration::from_secs(1),
        );
        r.record_match(s, s + Duration::from_millis(2));
        assert_eq!(r.timeline.len(), 2);
        assert_eq!(r.timeline[0].orders, 1);
        assert_eq!(r.timeline[0].calls, 1);
        assert_eq!(r.timeline[0].failures, 1);
        assert_eq!(r.timeline[0].matches, 1);
        assert_eq!(r.timeline[1].calls, 1);
        assert_eq!(r.ops[Op::Withdraw.index()].conflict, 1);
        assert_eq!(Percentiles::of(&r.matched).p50_us, 2000);
        assert_eq!(r.orders.len(), 1, "only the acknowledged order");
    }
}

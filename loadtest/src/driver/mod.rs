//! The load driver: simulated requesters and producers calling the market over HTTP,
//! closed loop (N workers, each sending its next call when the previous one answered)
//! or open loop (calls dispatched on a fixed-rate schedule by a dedicated thread,
//! latency measured from the scheduled instant), bounded in count and time. The calls
//! themselves are in [`calls`]; this file holds a run's terms and its two loops.

mod calls;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use market_invariants::{AckedOrder, Observation};
use tokio::sync::Semaphore;

use crate::market::{Kind, Population, Target};
use crate::mix::Mix;
use crate::procfs::CpuSample;
use crate::rng::Rng;
use crate::schedule::{Budget, Schedule};
use crate::stats::Recorder;

use calls::{lock, Shared};

static STOP: AtomicBool = AtomicBool::new(false);

/// Asks every running loop to stop early (Ctrl-C).
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

/// True once a stop was requested.
pub fn stopped() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// How order prices are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pricing {
    /// Overlapping price ranges (requests 2.00–10.00, proposals 1.00–9.00) and a few
    /// `eval_time` limits, so that many orders match and the time rule is exercised.
    Crossing,
    /// Requests cost 1, proposals 2, no `eval_time`: nothing ever matches.
    NoCross,
}

impl Pricing {
    /// `(cost in micro-units, eval_time)` of a new order.
    pub fn terms(self, kind: Kind, rng: &mut Rng) -> (u64, Option<u32>) {
        match (self, kind) {
            (Pricing::NoCross, Kind::Request) => (1_000_000, None),
            (Pricing::NoCross, Kind::Proposal) => (2_000_000, None),
            (Pricing::Crossing, Kind::Request) => {
                let eval = rng
                    .percent(25)
                    .then(|| [30, 60, 120][rng.below(3) as usize]);
                (rng.range(200, 1000) * 10_000, eval)
            }
            (Pricing::Crossing, Kind::Proposal) => {
                let eval = rng
                    .percent(75)
                    .then(|| [10, 30, 60, 90][rng.below(4) as usize]);
                (rng.range(100, 900) * 10_000, eval)
            }
        }
    }
}

/// Closed or open loop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// `connections` workers, each with one call in flight.
    Closed {
        /// Concurrent workers.
        connections: usize,
    },
    /// Calls at `rate` per second, at most `max_inflight` in flight (a call that has
    /// to wait for a slot still has its latency counted from its scheduled instant).
    Open {
        /// Calls per second.
        rate: f64,
        /// Bound on concurrent calls.
        max_inflight: usize,
    },
}

/// One run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Name in reports and file names.
    pub name: String,
    /// Closed or open loop.
    pub load: Load,
    /// Operation mix (ignored for the baseline).
    pub mix: Mix,
    /// Prices.
    pub pricing: Pricing,
    /// Measured duration (after the warm-up).
    pub span: Duration,
    /// Warm-up, not recorded.
    pub warmup: Duration,
    /// Most calls, warm-up included.
    pub max_ops: u64,
    /// Read the counterpart of one match in this many (0: never).
    pub verify_every: u64,
    /// Keep every acknowledged order and every status read (for the invariant check).
    pub record_acks: bool,
    /// Drive the baseline server instead of the market.
    pub baseline: bool,
    /// Random seed.
    pub seed: u64,
    /// Send every order under an Idempotency-Key of its own.
    pub idempotency_keys: bool,
    /// Counts acknowledged orders as they come (warm-up included), for whoever samples
    /// the market during the run (the soak's `samples.csv`).
    pub acked_orders: Option<Arc<AtomicU64>>,
    /// Orders that all close (the soak's `--flow closing`): every request carries an
    /// input already proved, every proposal a `wait_period`.
    pub closing: Option<Closing>,
}

/// The terms of orders that all close: a request for an input already proved completes
/// on arrival; a proposal nothing takes is withdrawn by the market after its
/// `wait_period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closing {
    /// The input every request carries (proved before the run).
    pub input: (u64, u64),
    /// The `wait_period` (minutes) every proposal carries.
    pub wait_period: u32,
}

/// What the harness was told, for the invariant check.
#[derive(Debug, Default)]
pub struct AckLog {
    /// Orders acknowledged with 200.
    pub orders: Vec<AckedOrder>,
    /// Statuses read back.
    pub observed: Vec<Observation>,
}

/// Everything a run produced.
#[derive(Debug)]
pub struct RunOutput {
    /// The run.
    pub spec: RunSpec,
    /// Users and statements driven.
    pub users: (usize, usize, usize),
    /// Measurements.
    pub rec: Recorder,
    /// Acknowledged orders and reads (when `record_acks`).
    pub acks: AckLog,
    /// A sample of error messages.
    pub errors: Vec<String>,
    /// Cores used per process during the measured window.
    pub cpu: Vec<(String, f64)>,
    /// Open loop: arrivals never sent (the dispatcher hit its time bound).
    pub unsent: u64,
    /// Calls retried after a 503/429 (each retry counted).
    pub retried: u64,
}

/// Shortest sleep of the open-loop dispatcher.
const DISPATCH_QUANTUM: Duration = Duration::from_micros(200);

/// Runs `spec` against `target` with `pop`; `pids` are sampled for CPU use.
pub async fn run(
    target: Arc<Target>,
    pop: Arc<Population>,
    spec: RunSpec,
    pids: Vec<(String, u32)>,
) -> Result<RunOutput> {
    let start = Instant::now() + Duration::from_millis(20);
    let measure_start = start + spec.warmup;
    let shared = Arc::new(Shared::new(
        target,
        pop.clone(),
        spec.clone(),
        measure_start,
    ));
    let mut pids = pids;
    pids.push(("loadtest".into(), std::process::id()));
    let cpu_start = {
        let pids = pids.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(measure_start.into()).await;
            CpuSample::take(&pids)
        })
    };
    let unsent = match spec.load {
        Load::Closed { connections } => {
            closed_loop(&shared, start, connections).await;
            0
        }
        Load::Open { rate, max_inflight } => open_loop(&shared, start, rate, max_inflight).await?,
    };
    let cpu_end = CpuSample::take(&pids);
    let cpu = match cpu_start.await {
        Ok(s) if s.at < cpu_end.at => s.cores_until(&cpu_end),
        _ => Vec::new(),
    };
    // Calls that outlived their bounds may still hold `shared`: take the data out.
    let measured_start = lock(&shared.rec).start();
    let rec = std::mem::replace(&mut *lock(&shared.rec), Recorder::new(measured_start));
    let acks = std::mem::take(&mut *lock(&shared.acks));
    let errors = std::mem::take(&mut *lock(&shared.errors));
    Ok(RunOutput {
        users: (
            pop.requesters.len(),
            pop.producers.len(),
            pop.statements.len(),
        ),
        spec,
        rec,
        acks,
        errors,
        cpu,
        unsent,
        retried: shared.retried.load(Ordering::Relaxed),
    })
}

async fn closed_loop(shared: &Arc<Shared>, start: Instant, connections: usize) {
    tokio::time::sleep_until(start.into()).await;
    let budget = Arc::new(Budget::new(
        start,
        shared.spec.warmup + shared.spec.span,
        shared.spec.max_ops,
    ));
    let workers: Vec<_> = (0..connections.max(1))
        .map(|i| {
            let shared = shared.clone();
            let budget = budget.clone();
            tokio::spawn(async move {
                let mut rng = Rng::new(shared.spec.seed.wrapping_add(i as u64 * 7919));
                while !stopped() && budget.take() {
                    shared.one(&mut rng, Instant::now()).await;
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
}

async fn open_loop(
    shared: &Arc<Shared>,
    start: Instant,
    rate: f64,
    max_inflight: usize,
) -> Result<u64> {
    let schedule = Schedule::new(
        rate,
        shared.spec.warmup + shared.spec.span,
        shared.spec.max_ops,
    )?;
    let slots = max_inflight.max(1);
    let sem = Arc::new(Semaphore::new(slots));
    let handle = tokio::runtime::Handle::current();
    let hard_stop = start + shared.spec.warmup + shared.spec.span + Duration::from_secs(5);
    let s2 = shared.clone();
    let sem2 = sem.clone();
    // The dispatcher is an OS thread: its sleeps are far finer than tokio's 1 ms timer.
    let sent = tokio::task::spawn_blocking(move || {
        let mut next = 0u64;
        while next < schedule.count() && !stopped() {
            let now = Instant::now();
            if now >= hard_stop {
                break;
            }
            let end = schedule.due(next, now.saturating_duration_since(start));
            for i in next..end {
                let permit = match sem2.clone().try_acquire_owned() {
                    Ok(p) => p,
                    Err(_) => match handle.block_on(sem2.clone().acquire_owned()) {
                        Ok(p) => p,
                        Err(_) => return i,
                    },
                };
                let scheduled = start + schedule.offset(i);
                let shared = s2.clone();
                handle.spawn(async move {
                    let mut rng =
                        Rng::new(shared.spec.seed ^ i.wrapping_mul(0x2545_F491_4F6C_DD1D));
                    lock(&shared.rec).record_lag(scheduled, Instant::now());
                    shared.one(&mut rng, scheduled).await;
                    drop(shared);
                    drop(permit);
                });
            }
            next = end;
            if next < schedule.count() {
                // Wake for the next arrival, but at most every DISPATCH_QUANTUM: at high
                // rates a few arrivals go out per wake-up instead of one, which saves
                // the generator CPU (the lag this adds is measured, see `dispatch lag`).
                let now = Instant::now();
                let wake = (start + schedule.offset(next)).max(now + DISPATCH_QUANTUM);
                if wake > now {
                    std::thread::sleep(wake - now);
                }
            }
        }
        next
    })
    .await?;
    // Wait for the calls in flight (each is bounded by the client's 30 s timeout).
    let _ = tokio::time::timeout(
        Duration::from_secs(45),
        sem.acquire_many(u32::try_from(slots).unwrap_or(u32::MAX)),
    )
    .await;
    Ok(schedule.count() - sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_cross_prices_never_cross_and_crossing_ones_do() {
        let mut rng = Rng::new(3);
        for _ in 0..100 {
            let (r, re) = Pricing::NoCross.terms(Kind::Request, &mut rng);
            let (p, pe) = Pricing::NoCross.terms(Kind::Proposal, &mut rng);
            assert!(p > r && re.is_none() && pe.is_none());
        }
        let mut crossing = 0;
        for _ in 0..1000 {
            let (r, _) = Pricing::Crossing.terms(Kind::Request, &mut rng);
            let (p, _) = Pricing::Crossing.terms(Kind::Proposal, &mut rng);
            assert!((2_000_000..=10_000_000).contains(&r));
            assert!((1_000_000..=9_000_000).contains(&p));
            crossing += u32::from(p <= r);
        }
        assert!(crossing > 500, "{crossing}"); // ~62 % of random pairs cross
    }
}

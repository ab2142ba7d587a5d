//! The load driver: simulated requesters and producers calling the market over HTTP,
//! closed loop (N workers, each sending its next call when the previous one answered)
//! or open loop (calls dispatched on a fixed-rate schedule by a dedicated thread,
//! latency measured from the scheduled instant), bounded in count and time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use market_invariants::{AckedOrder, Observation};
use tokio::sync::Semaphore;

use crate::market::{self, Kind, OrderAnswer, Placed, Population, SimUser, Target, ROOT};
use crate::mix::{Mix, Op};
use crate::procfs::CpuSample;
use crate::rng::Rng;
use crate::schedule::{Budget, Schedule};
use crate::stats::{Outcome, Recorder};

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

struct Shared {
    target: Arc<Target>,
    pop: Arc<Population>,
    spec: RunSpec,
    rec: Mutex<Recorder>,
    acks: Mutex<AckLog>,
    errors: Mutex<Vec<String>>,
    /// Proposal key → producer index, so a producer whose resting proposal matched can
    /// push its proof (kept only when the mix pushes proofs).
    owners: Mutex<HashMap<u64, usize>>,
    matches: AtomicU64,
    /// Orders sent (for Idempotency-Keys).
    placed: AtomicU64,
    inputs: AtomicU64,
    nonce: u64,
    /// Calls retried after a 503/429.
    retried: AtomicU64,
}

/// Shortest sleep of the open-loop dispatcher.
const DISPATCH_QUANTUM: Duration = Duration::from_micros(200);
/// Bound on one call, connection included.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Most proposals whose owner is remembered.
const MAX_OWNERS: usize = 1 << 20;
/// Error messages kept.
const MAX_ERRORS: usize = 20;
/// Retries of a call answered 503/429, and the wait before each (the market's
/// `Retry-After: 1`).
const MAX_RETRIES: u32 = 3;
const RETRY_WAIT: Duration = Duration::from_secs(1);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn note_error(&self, msg: String) {
        let mut e = lock(&self.errors);
        if e.len() < MAX_ERRORS
            && !e
                .iter()
                .any(|x| x[..x.len().min(60)] == msg[..msg.len().min(60)])
        {
            e.push(msg);
        }
    }

    /// Sends one call; returns its outcome, the body of a 200, and when it ended.
    async fn send(
        &self,
        user: &SimUser,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> (Outcome, Option<Vec<u8>>, Instant) {
        self.send_with(user, method, path, body, None).await
    }

    /// [`Self::send`] with `headers` (whole lines) instead of the user's Authorization.
    async fn send_with(
        &self,
        user: &SimUser,
        method: &str,
        path: &str,
        body: Option<String>,
        headers: Option<&str>,
    ) -> (Outcome, Option<Vec<u8>>, Instant) {
        let headers = headers.unwrap_or(&user.auth_text);
        // A user pinned to one node of several calls only that node.
        let addr = user
            .home
            .as_ref()
            .map_or_else(|| self.target.addr(), |h| h.target.addr());
        let body = body.as_deref().map(str::as_bytes);
        let started = Instant::now();
        let mut r = user
            .pool
            .request(addr, method, path, headers, body, CALL_TIMEOUT)
            .await;
        // A 503/429 (a statement changing hands, a node shedding load) is retried the way
        // a client should: after the market's Retry-After (1 s), a few times, within the
        // call's bound. The call's latency then includes the waits.
        let mut retries = 0;
        while matches!(&r, Ok(x) if x.status == 503 || x.status == 429)
            && retries < MAX_RETRIES
            && started.elapsed() + RETRY_WAIT < CALL_TIMEOUT
        {
            retries += 1;
            self.retried.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(RETRY_WAIT).await;
            r = user
                .pool
                .request(addr, method, path, headers, body, CALL_TIMEOUT)
                .await;
        }
        let done = Instant::now();
        match r {
            Err(e) => {
                self.note_error(format!("{method} {path}: {e}"));
                (Outcome::Transport, None, done)
            }
            Ok(r) => match r.status {
                200 => (Outcome::Ok, Some(r.body), done),
                409 => (Outcome::Conflict, None, done),
                503 | 429 => (Outcome::Overloaded, None, done),
                s => {
                    let text = String::from_utf8_lossy(&r.body[..r.body.len().min(300)]);
                    self.note_error(format!("{method} {path}: {s}: {text}"));
                    (Outcome::HttpError, None, done)
                }
            },
        }
    }

    fn next_input(&self) -> (u64, u64) {
        let n = self.inputs.fetch_add(1, Ordering::Relaxed);
        (self.nonce, n)
    }

    fn record(&self, op: Op, outcome: Outcome, scheduled: Instant, done: Instant) {
        lock(&self.rec).record(op, outcome, scheduled, done);
    }

    /// One call of the mix, scheduled at `scheduled`.
    async fn one(&self, rng: &mut Rng, scheduled: Instant) {
        if self.spec.baseline {
            return self.baseline(rng, scheduled).await;
        }
        match self.spec.mix.pick(rng) {
            Op::PushRequest => self.push(rng, scheduled, Kind::Request, None).await,
            Op::PushProposal => self.push(rng, scheduled, Kind::Proposal, None).await,
            Op::Get => self.get(rng, scheduled).await,
            Op::Withdraw => self.withdraw(rng, scheduled).await,
            Op::ProofPush => self.proof(rng, scheduled).await,
            Op::VerifyMatch | Op::Baseline => {}
        }
    }

    fn any_user(&self, rng: &mut Rng) -> (Kind, usize, &Arc<SimUser>) {
        let n = self.pop.len() as u64;
        let i = rng.below(n) as usize;
        let r = self.pop.requesters.len();
        if i < r {
            (Kind::Request, i, &self.pop.requesters[i])
        } else {
            (Kind::Proposal, i - r, &self.pop.producers[i - r])
        }
    }

    async fn push(&self, rng: &mut Rng, scheduled: Instant, kind: Kind, who: Option<usize>) {
        let (users, op) = match kind {
            Kind::Request => (&self.pop.requesters, Op::PushRequest),
            Kind::Proposal => (&self.pop.producers, Op::PushProposal),
        };
        let ui = who.unwrap_or_else(|| rng.below(users.len() as u64) as usize);
        let user = &users[ui];
        let stmt = self.pop.statements[rng.below(self.pop.statements.len() as u64) as usize];
        let (cost, eval) = self.spec.pricing.terms(kind, rng);
        let body = match kind {
            Kind::Request => market::request_body(stmt, self.next_input(), cost, eval),
            Kind::Proposal => market::proposal_body(stmt, cost, eval),
        };
        let path = format!("{ROOT}/{}/", kind.as_str());
        let key = self.spec.idempotency_keys.then(|| {
            let n = self.placed.fetch_add(1, Ordering::Relaxed);
            format!(
                "{}Idempotency-Key: lt-{}-{n}\r\n",
                user.auth_text, self.spec.seed
            )
        });
        let (mut outcome, body, done) = self
            .send_with(user, "POST", &path, Some(body), key.as_deref())
            .await;
        let answer = body.as_deref().and_then(OrderAnswer::parse);
        let key = answer.as_ref().and_then(OrderAnswer::key_u64);
        if outcome == Outcome::Ok && key.is_none() {
            self.note_error(format!("POST {path}: unexpected answer"));
            outcome = Outcome::HttpError;
        }
        self.record(op, outcome, scheduled, done);
        if let Some((entry, owner)) = self.pop.route(user, stmt) {
            lock(&self.rec).record_route(entry, owner, outcome, scheduled, done);
        }
        let (Some(a), Some(key)) = (answer, key) else {
            return;
        };
        let counterpart = a.counterpart().filter(|_| a.status == "processing");
        {
            let mut st = lock(&user.state);
            st.placed(Placed { key, kind });
            if kind == Kind::Proposal && counterpart.is_some() {
                st.matched(key);
            }
        }
        let proofs = self
            .spec
            .mix
            .weights
            .iter()
            .any(|(o, _)| *o == Op::ProofPush);
        if proofs {
            match (kind, counterpart) {
                (Kind::Proposal, None) => {
                    let mut o = lock(&self.owners);
                    if o.len() < MAX_OWNERS {
                        o.insert(key, ui);
                    }
                }
                (Kind::Request, Some(p)) => {
                    let owner = lock(&self.owners).remove(&p);
                    if let Some(j) = owner {
                        lock(&self.pop.producers[j].state).matched(p);
                    }
                }
                _ => {}
            }
        }
        if self.spec.record_acks {
            lock(&self.acks).orders.push(AckedOrder {
                key,
                kind,
                statement: stmt,
                cost,
                status: a.status.clone(),
                counterpart,
                price: a.price_micros(),
            });
        }
        if let Some(c) = counterpart {
            lock(&self.rec).record_match(scheduled, done);
            let n = self.matches.fetch_add(1, Ordering::Relaxed);
            if self.spec.verify_every > 0 && n.is_multiple_of(self.spec.verify_every) {
                self.verify(user, kind.other(), c, scheduled).await;
            }
        }
    }

    /// Reads a match's counterpart until it shows the match (bounded), recording when.
    async fn verify(&self, user: &SimUser, kind: Kind, key: u64, scheduled: Instant) {
        let path = format!("{ROOT}/{}/{key}", kind.as_str());
        for _ in 0..20 {
            let sent = Instant::now();
            let (outcome, body, done) = self.send(user, "GET", &path, None).await;
            self.record(Op::VerifyMatch, outcome, sent, done);
            let status = body
                .as_deref()
                .and_then(OrderAnswer::parse)
                .map(|a| a.status);
            if matches!(status.as_deref(), Some("processing" | "completed")) {
                lock(&self.rec).record_match_visible(scheduled, Some(done));
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        lock(&self.rec).record_match_visible(scheduled, None);
    }

    async fn get(&self, rng: &mut Rng, scheduled: Instant) {
        let (side, ui, user) = self.any_user(rng);
        let pick = {
            let st = lock(&user.state);
            (!st.recent.is_empty()).then(|| st.recent[rng.below(st.recent.len() as u64) as usize])
        };
        let Some(p) = pick else {
            return self.push(rng, scheduled, side, Some(ui)).await;
        };
        let path = format!("{ROOT}/{}/{}", p.kind.as_str(), p.key);
        let (outcome, body, done) = self.send(user, "GET", &path, None).await;
        self.record(Op::Get, outcome, scheduled, done);
        if let Some(a) = body.as_deref().and_then(OrderAnswer::parse) {
            if self.spec.record_acks {
                lock(&self.acks).observed.push(Observation {
                    key: p.key,
                    status: a.status.clone(),
                });
            }
        }
    }

    async fn withdraw(&self, rng: &mut Rng, scheduled: Instant) {
        let (side, ui, user) = self.any_user(rng);
        let pick = {
            let mut st = lock(&user.state);
            let n = st.recent.len() as u64;
            (n > 0)
                .then(|| rng.below(n) as usize)
                .and_then(|i| st.recent.remove(i))
        };
        let Some(p) = pick else {
            return self.push(rng, scheduled, side, Some(ui)).await;
        };
        let path = format!("{ROOT}/{}/{}", p.kind.as_str(), p.key);
        let (outcome, body, done) = self.send(user, "DELETE", &path, None).await;
        self.record(Op::Withdraw, outcome, scheduled, done);
        if let Some(a) = body.as_deref().and_then(OrderAnswer::parse) {
            if self.spec.record_acks {
                lock(&self.acks).observed.push(Observation {
                    key: p.key,
                    status: a.status,
                });
            }
        }
    }

    async fn proof(&self, rng: &mut Rng, scheduled: Instant) {
        let ui = rng.below(self.pop.producers.len() as u64) as usize;
        let user = &self.pop.producers[ui];
        let popped = lock(&user.state).matched.pop_front();
        let Some(proposal) = popped else {
            return self.push(rng, scheduled, Kind::Proposal, Some(ui)).await;
        };
        let body = market::proof_body(proposal, rng.next_u64(), 256);
        let path = format!("{ROOT}/proof");
        let (outcome, _, done) = self.send(user, "POST", &path, Some(body)).await;
        self.record(Op::ProofPush, outcome, scheduled, done);
        if outcome == Outcome::Ok && self.spec.record_acks {
            lock(&self.acks).observed.push(Observation {
                key: proposal,
                status: "completed".into(),
            });
        }
    }

    async fn baseline(&self, rng: &mut Rng, scheduled: Instant) {
        let (kind, _, user) = self.any_user(rng);
        let (cost, eval) = self.spec.pricing.terms(kind, rng);
        let body = match kind {
            Kind::Request => market::request_body(1, self.next_input(), cost, eval),
            Kind::Proposal => market::proposal_body(1, cost, eval),
        };
        let path = format!("{ROOT}/{}/", kind.as_str());
        let (outcome, _, done) = self.send(user, "POST", &path, Some(body)).await;
        self.record(Op::Baseline, outcome, scheduled, done);
    }
}

/// Runs `spec` against `target` with `pop`; `pids` are sampled for CPU use.
pub async fn run(
    target: Arc<Target>,
    pop: Arc<Population>,
    spec: RunSpec,
    pids: Vec<(String, u32)>,
) -> Result<RunOutput> {
    let start = Instant::now() + Duration::from_millis(20);
    let measure_start = start + spec.warmup;
    let shared = Arc::new(Shared {
        target,
        pop: pop.clone(),
        spec: spec.clone(),
        rec: Mutex::new(Recorder::new(measure_start)),
        acks: Mutex::new(AckLog::default()),
        errors: Mutex::new(Vec::new()),
        owners: Mutex::new(HashMap::new()),
        matches: AtomicU64::new(0),
        placed: AtomicU64::new(0),
        inputs: AtomicU64::new(0),
        nonce: spec.seed,
        retried: AtomicU64::new(0),
    });
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

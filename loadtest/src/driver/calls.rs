//! One run's calls: [`Shared`] holds what every call of a run shares, and runs each
//! operation of the mix (place, read, withdraw, push a proof) as one HTTP call (retried
//! after a brief 503/429), recording its latency and, for the invariant check, what the
//! market acknowledged.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use market_invariants::{AckedOrder, Observation};

use super::{AckLog, RunSpec};
use crate::market::{self, Kind, OrderAnswer, Placed, Population, SimUser, Target, ROOT};
use crate::mix::Op;
use crate::rng::Rng;
use crate::stats::{Outcome, Recorder};

/// What every call of a run shares: the target, the users, the recorder, what the
/// harness was told.
pub(super) struct Shared {
    target: Arc<Target>,
    pop: Arc<Population>,
    pub(super) spec: RunSpec,
    pub(super) rec: Mutex<Recorder>,
    pub(super) acks: Mutex<AckLog>,
    pub(super) errors: Mutex<Vec<String>>,
    /// Proposal key → producer index, so a producer whose resting proposal matched can
    /// push its proof (kept only when the mix pushes proofs).
    owners: Mutex<HashMap<u64, usize>>,
    matches: AtomicU64,
    /// Orders sent (for Idempotency-Keys).
    placed: AtomicU64,
    inputs: AtomicU64,
    nonce: u64,
    /// Calls retried after a 503/429.
    pub(super) retried: AtomicU64,
}

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

/// The data behind `m`, also after a panic elsewhere poisoned it.
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// The state of a run measured from `measure_start`.
    pub(super) fn new(
        target: Arc<Target>,
        pop: Arc<Population>,
        spec: RunSpec,
        measure_start: Instant,
    ) -> Shared {
        Shared {
            target,
            pop,
            nonce: spec.seed,
            spec,
            rec: Mutex::new(Recorder::new(measure_start)),
            acks: Mutex::new(AckLog::default()),
            errors: Mutex::new(Vec::new()),
            owners: Mutex::new(HashMap::new()),
            matches: AtomicU64::new(0),
            placed: AtomicU64::new(0),
            inputs: AtomicU64::new(0),
            retried: AtomicU64::new(0),
        }
    }

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
        self.send_with(user, method, path, body, None, None).await
    }

    /// [`Self::send`] with `headers` (whole lines) instead of the user's Authorization,
    /// and to the node `to` instead of the user's.
    async fn send_with(
        &self,
        user: &SimUser,
        method: &str,
        path: &str,
        body: Option<String>,
        headers: Option<&str>,
        to: Option<SocketAddr>,
    ) -> (Outcome, Option<Vec<u8>>, Instant) {
        let headers = headers.unwrap_or(&user.auth_text);
        // A user pinned to one node of several calls only that node.
        let addr = to.unwrap_or_else(|| {
            user.home
                .as_ref()
                .map_or_else(|| self.target.addr(), |h| h.target.addr())
        });
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
    pub(super) async fn one(&self, rng: &mut Rng, scheduled: Instant) {
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
        let body = match (kind, self.spec.closing) {
            (Kind::Request, Some(c)) => market::request_body(stmt, c.input, cost, eval),
            (Kind::Request, None) => market::request_body(stmt, self.next_input(), cost, eval),
            (Kind::Proposal, c) => {
                market::proposal_body(stmt, cost, eval, c.map(|c| c.wait_period))
            }
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
            .send_with(
                user,
                "POST",
                &path,
                Some(body),
                key.as_deref(),
                self.pop.direct_to(stmt),
            )
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
        if let Some(n) = &self.spec.acked_orders {
            n.fetch_add(1, Ordering::Relaxed);
        }
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
            Kind::Proposal => market::proposal_body(1, cost, eval, None),
        };
        let path = format!("{ROOT}/{}/", kind.as_str());
        let (outcome, _, done) = self.send(user, "POST", &path, Some(body)).await;
        self.record(Op::Baseline, outcome, scheduled, done);
    }
}

//! The matcher: one actix actor per statement, writing its [`StatementState`]'s
//! decisions to the store.
//!
//! Every change to a statement's orders goes through its matcher, one message at a
//! time, so matching needs no locks. The pure state decides (book, proved inputs,
//! idempotency window, deadlines) and returns ops; the actor queues them, and whenever
//! no write is in flight sends everything queued to the store as one atomic batch
//! (group commit), answering each caller only after the batch holding its ops is
//! acknowledged. So a burst of N orders costs about one Redis round trip, not N, and an
//! acknowledged order is always in Redis.
//!
//! If a batch fails, the state may be ahead of the store: every waiting caller gets an
//! error, and the state is rebuilt from Redis before the matcher takes more orders. If
//! the store refuses a batch for a stale fencing token (another node took the
//! statement), nothing of it was written: every waiter is told [`LocalError::Moved`],
//! the fenced-write counter handed in at start is bumped, and the actor stops; its
//! owner sees a stopped matcher and routes elsewhere. The matcher knows nothing of its
//! owner.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::book::Level;
use super::state::{Placed, Rules, Snapshot, StatementState};
use crate::domain::{Key, Millis, ScopedKey, Side};
use crate::error::MarketError;
use crate::store::{Op, OrderRecord, ProofRecord, Refusal, Store, StoreError};

/// Why a call to a local matcher was not answered by it.
#[derive(Debug)]
pub enum LocalError {
    /// The statement left this node before the call was applied (the matcher retired,
    /// was fenced or stopped): nothing was applied; route the call again.
    Moved,
    /// The call failed here, for a reason the client is told.
    Market(MarketError),
}

impl From<MarketError> for LocalError {
    fn from(e: MarketError) -> Self {
        LocalError::Market(e)
    }
}

impl From<StoreError> for LocalError {
    fn from(e: StoreError) -> Self {
        LocalError::Market(e.into())
    }
}

impl From<Refusal> for LocalError {
    fn from(e: Refusal) -> Self {
        LocalError::Market(e.into())
    }
}

/// The outcome of a call served by a local matcher.
pub type LocalResult<T> = Result<T, LocalError>;

/// Places a new order (status `created`, seq unset), unless `idempotency` already
/// placed one.
#[derive(Message)]
#[rtype(result = "LocalResult<Placed>")]
pub struct Place {
    /// The order as it will be stored.
    pub order: OrderRecord,
    /// The client's idempotency key, scoped to side and sender.
    pub idempotency: Option<ScopedKey>,
    /// Money the sender's wallet sent with the order into its account here (0: none;
    /// else the order's `funded_at` says when).
    pub topup: u128,
}

/// Withdraws an open order of `sender`; answers when it was withdrawn.
#[derive(Message)]
#[rtype(result = "LocalResult<Millis>")]
pub struct Withdraw {
    /// Which book side the key is on.
    pub side: Side,
    /// The order to withdraw.
    pub key: Key,
    /// Who asks (the store checks it again).
    pub sender: String,
}

/// Stores a verified proof and completes its two orders.
#[derive(Message)]
#[rtype(result = "LocalResult<()>")]
pub struct Complete {
    /// The verified proof, ready to store.
    pub record: ProofRecord,
    /// The request's canonical input, remembered as proved.
    pub canon: String,
}

/// Stops taking calls, finishes the writes in flight, then stops: the statement is
/// moving to another node. Calls arriving meanwhile are answered [`LocalError::Moved`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct Retire;

/// Reads the aggregated book, at most this many levels a side.
#[derive(Message)]
#[rtype(result = "LocalResult<(Vec<Level>, Vec<Level>)>")]
pub struct Depth(pub usize);

/// A running matcher, as routes hand it to the service.
#[derive(Clone)]
pub struct MatcherHandle {
    addr: Addr<Matcher>,
}

impl MatcherHandle {
    /// True until the matcher stopped (retired or fenced).
    pub fn is_running(&self) -> bool {
        self.addr.connected()
    }

    /// Sends a call. A full mailbox makes `send` wait, so a deadline turns a matcher
    /// that cannot keep up into a 503 instead of an unbounded queue. A matcher that
    /// stopped answers [`LocalError::Moved`].
    pub async fn ask<M, T>(&self, msg: M) -> LocalResult<T>
    where
        M: Message<Result = LocalResult<T>> + Send + 'static,
        T: Send + 'static,
        Matcher: Handler<M>,
    {
        match tokio::time::timeout(Duration::from_secs(10), self.addr.send(msg)).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(LocalError::Moved),
            Err(_) => Err(MarketError::unavailable(
                "the statement's matcher is overloaded, retry shortly",
            )
            .into()),
        }
    }

    /// Asks the matcher to retire and waits up to `within` for its last write.
    pub async fn retire(&self, within: Duration) {
        let _ = tokio::time::timeout(within, self.addr.send(Retire)).await;
    }

    /// Asks the matcher to retire without waiting.
    pub fn retire_now(&self) {
        self.addr.do_send(Retire);
    }
}

type Reply = oneshot::Sender<LocalResult<()>>;

/// Most transitions written in one script.
const MAX_BATCH_OPS: usize = 2000;

/// A queued caller: its ops are `pending[range]`.
struct Waiter {
    ops: std::ops::Range<usize>,
    reply: Reply,
    /// When the caller's ops were queued (for the match latency metric).
    arrived: std::time::Instant,
    /// True when the ops were decided by the state (a refusal means it is stale).
    from_state: bool,
    /// True for an order placed without an Idempotency-Key: if its write may have
    /// happened, the client must not be invited to resend it.
    resend_unsafe: bool,
}

/// How a matcher writes: where, under which fencing token, and what it counts.
pub struct Writer {
    /// The statement's connection (one per matcher thread).
    pub store: Store,
    /// Fencing token of this node's lease; every batch is checked against it.
    pub token: u64,
    /// Writes the store refused because another node had taken over.
    pub fenced: Arc<AtomicU64>,
}

/// The actor owning one statement's state.
pub struct Matcher {
    statement: Key,
    state: StatementState,
    writer: Writer,
    rules: Rules,
    pending: Vec<Op>,
    waiters: Vec<Waiter>,
    flushing: bool,
    /// Set when the state may disagree with the store; cleared by a rebuild.
    stale: bool,
    /// Set once the statement is moving away; fired when the last write is done.
    retiring: Option<Vec<oneshot::Sender<()>>>,
    /// Payouts written and maybe not delivered to their wallets yet: bumped by each
    /// batch that wrote some (and at start), compared when a delivery ends.
    payouts_written: u64,
    payouts_delivered: u64,
    delivering: bool,
    /// Funded orders written and not yet reported to their wallets (user, order).
    arrivals: Vec<(String, Key)>,
    /// This statement's order and match counters.
    counters: crate::metrics::StatementCounters,
}

/// Loads a statement's snapshot from the store.
pub async fn load_snapshot(store: &Store, statement: Key) -> Result<Snapshot, StoreError> {
    let (accounts, records) = store.accounts(statement).await?;
    Ok(Snapshot {
        open: store.open_orders(statement).await?,
        proven: store.proven_inputs(statement).await?,
        resale: store.resale_prices(statement).await?,
        idempotency: store.idempotency_keys(statement).await?,
        accounts,
        records,
    })
}

impl Matcher {
    /// Starts the matcher of `statement` on `arbiter`, from `snapshot`.
    pub fn spawn(
        arbiter: &ArbiterHandle,
        statement: Key,
        snapshot: Snapshot,
        writer: Writer,
        rules: Rules,
    ) -> MatcherHandle {
        let addr = Matcher::start_in_arbiter(arbiter, move |_| {
            let state = StatementState::rebuild(statement, snapshot, rules);
            tracing::info!(statement = %statement, resting = state.resting(), matched = state.matched(), "book loaded");
            Matcher {
                statement,
                state,
                writer,
                rules,
                pending: Vec::new(),
                waiters: Vec::new(),
                flushing: false,
                stale: false,
                retiring: None,
                // Deliver whatever an earlier owner left undelivered.
                payouts_written: 1,
                payouts_delivered: 0,
                delivering: false,
                arrivals: Vec::new(),
                counters: crate::metrics::metrics().statement_counters(statement),
            }
        });
        MatcherHandle { addr }
    }

    fn check_usable(&self) -> LocalResult<()> {
        if self.retiring.is_some() {
            Err(LocalError::Moved)
        } else if self.stale {
            Err(
                MarketError::unavailable("the statement's book is being rebuilt, retry shortly")
                    .into(),
            )
        } else {
            Ok(())
        }
    }

    /// Queues ops for the next batch and returns a future of their outcome.
    fn enqueue(
        &mut self,
        ctx: &mut Context<Self>,
        ops: Vec<Op>,
        from_state: bool,
        resend_unsafe: bool,
    ) -> oneshot::Receiver<LocalResult<()>> {
        let (tx, rx) = oneshot::channel();
        let start = self.pending.len();
        self.pending.extend(ops);
        self.waiters.push(Waiter {
            ops: start..self.pending.len(),
            reply: tx,
            arrived: std::time::Instant::now(),
            from_state,
            resend_unsafe,
        });
        if !self.flushing {
            self.flush(ctx);
        }
        rx
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.pending.is_empty() {
            self.finish_retiring(ctx);
            return;
        }
        self.flushing = true;
        // Bound one script's size: a huge batch would stall Redis for everyone. Whole
        // callers only, so a caller's ops stay in one atomic batch.
        let mut take = 0;
        while take < self.waiters.len()
            && self.waiters[take].ops.end <= MAX_BATCH_OPS.max(self.waiters[0].ops.end)
        {
            take += 1;
        }
        let cut = self.waiters[take - 1].ops.end;
        let rest_ops = self.pending.split_off(cut);
        let rest_waiters = self.waiters.split_off(take);
        let ops = std::mem::replace(&mut self.pending, rest_ops);
        let waiters = std::mem::replace(&mut self.waiters, rest_waiters);
        for w in &mut self.waiters {
            w.ops = w.ops.start - cut..w.ops.end - cut;
        }
        let store = self.writer.store.clone();
        let stmt = self.statement;
        let started = std::time::Instant::now();
        let token = self.writer.token;
        let fut = async move {
            let res = store.apply(stmt, Some(token), &ops).await;
            (res, ops)
        };
        ctx.spawn(fut.into_actor(self).map(move |(res, written), act, ctx| {
            let n = written.len();
            act.flushing = false;
            tracing::debug!(statement = %stmt, ops = n, micros = started.elapsed().as_micros() as u64, "batch written");
            match res {
                Ok(outcomes) => {
                    let paid = ops_pay(&written);
                    if paid {
                        act.payouts_written += 1;
                    }
                    // Orders holding money from a wallet: tell the wallets (with the
                    // payouts), so their transfers are done.
                    for (op, r) in written.iter().zip(&outcomes) {
                        match (op, r) {
                            (Op::New(o), Ok(())) => {
                                act.counters.orders(o.side).inc();
                                if o.funded_at.is_some() {
                                    act.arrivals.push((o.sender.clone(), o.key));
                                }
                            }
                            (Op::Match { .. }, Ok(())) => act.counters.matches.inc(),
                            _ => {}
                        }
                    }
                    let latency = &crate::metrics::metrics().match_latency;
                    for w in waiters {
                        let answer = match outcomes[w.ops.clone()].iter().find_map(|r| r.as_ref().err()) {
                            None => {
                                if written[w.ops.clone()].iter().any(|op| matches!(op, Op::Match { .. })) {
                                    latency.observe(w.arrived.elapsed().as_secs_f64());
                                }
                                Ok(())
                            }
                            Some(refused) => {
                                if w.from_state {
                                    // The state decided these ops, so it disagrees
                                    // with the store: rebuild it.
                                    tracing::error!(statement = %stmt, %refused, "store refused a transition; rebuilding");
                                    act.stale = true;
                                }
                                Err(LocalError::from(refused.clone()))
                            }
                        };
                        let _ = w.reply.send(answer);
                    }
                }
                Err(StoreError::Fenced) => {
                    // Another node took the statement: nothing of this batch was
                    // written. Every waiter routes again, to the new owner.
                    act.writer.fenced.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(statement = %stmt, token, "write refused: another node owns the statement now");
                    for w in waiters.into_iter().chain(std::mem::take(&mut act.waiters)) {
                        let _ = w.reply.send(Err(LocalError::Moved));
                    }
                    act.pending.clear();
                    act.retiring.get_or_insert_with(Vec::new);
                    act.finish_retiring(ctx);
                    return;
                }
                Err(e) => {
                    tracing::error!(statement = %stmt, error = %e, "batch failed; rebuilding the book");
                    let unknown = e.outcome_unknown();
                    let err = MarketError::from(e);
                    for w in waiters {
                        let answer = if unknown && w.resend_unsafe {
                            MarketError::placement_unknown("the store did not confirm the write")
                        } else {
                            err.duplicate()
                        };
                        let _ = w.reply.send(Err(answer.into()));
                    }
                    act.stale = true;
                }
            }
            act.deliver(ctx);
            if act.stale {
                // Ops queued meanwhile were decided by a state that may be wrong.
                for w in std::mem::take(&mut act.waiters) {
                    let _ = w.reply.send(Err(MarketError::unavailable("the statement's book is being rebuilt, retry shortly").into()));
                }
                act.pending.clear();
                act.rebuild(ctx);
            } else {
                act.flush(ctx);
            }
        }));
    }

    /// Stops the actor once retiring and no write is in flight or queued.
    fn finish_retiring(&mut self, ctx: &mut Context<Self>) {
        if self.flushing || !self.pending.is_empty() {
            return;
        }
        if let Some(done) = self.retiring.as_mut() {
            for tx in done.drain(..) {
                let _ = tx.send(());
            }
            ctx.stop();
        }
    }

    fn rebuild(&mut self, ctx: &mut Context<Self>) {
        let store = self.writer.store.clone();
        let stmt = self.statement;
        ctx.wait(
            async move {
                loop {
                    match load_snapshot(&store, stmt).await {
                        Ok(s) => break s,
                        Err(e) => {
                            tracing::warn!(statement = %stmt, error = %e, "rebuild failed; retrying");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                }
            }
            .into_actor(self)
            .map(|snap, act, _| {
                act.state = StatementState::rebuild(act.statement, snap, act.rules);
                tracing::info!(statement = %act.statement, resting = act.state.resting(), "book rebuilt");
                act.stale = false;
            }),
        );
    }

    /// Delivers the statement's payouts to their wallets, unless a delivery is running
    /// or nothing was written since the last one finished.
    fn deliver(&mut self, ctx: &mut Context<Self>) {
        if self.delivering
            || (self.payouts_delivered >= self.payouts_written && self.arrivals.is_empty())
        {
            return;
        }
        self.delivering = true;
        let upto = self.payouts_written;
        let store = self.writer.store.clone();
        let stmt = self.statement;
        // Arrivals not reported (a failed delivery) are settled by the resolver later.
        let mut arrivals = std::mem::take(&mut self.arrivals);
        ctx.spawn(
            async move {
                loop {
                    match store.deliver_payouts(stmt, &arrivals).await {
                        Ok(n) if n < 1000 => return Ok(()),
                        Ok(_) => arrivals.clear(),
                        Err(e) => return Err(e),
                    }
                }
            }
            .into_actor(self)
            .map(move |r, act, ctx| {
                act.delivering = false;
                match r {
                    Ok(()) => act.payouts_delivered = act.payouts_delivered.max(upto),
                    Err(e) => {
                        tracing::warn!(statement = %stmt, error = %e, "delivering payouts failed; retrying");
                        return;
                    }
                }
                act.deliver(ctx);
            }),
        );
    }

    fn expire(&mut self, ctx: &mut Context<Self>) {
        self.deliver(ctx);
        if self.stale || self.retiring.is_some() {
            return;
        }
        let ops = self.state.expire(Millis::now());
        self.write_in_background(ctx, ops);
        // Wallets that asked for their free money here back (they were short).
        let store = self.writer.store.clone();
        let stmt = self.statement;
        ctx.spawn(
            async move { store.take_sweep_requests(stmt, 1000).await }
                .into_actor(self)
                .map(move |r, act, ctx| match r {
                    Ok(users) if !users.is_empty() => {
                        if act.stale || act.retiring.is_some() {
                            return;
                        }
                        let ops = act.state.sweep_users(&users);
                        act.write_in_background(ctx, ops);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(statement = %stmt, error = %e, "reading sweep requests")
                    }
                }),
        );
    }

    /// Writes ops the state decided on its own (nobody waits for the answer).
    fn write_in_background(&mut self, ctx: &mut Context<Self>, ops: Vec<Op>) {
        if !ops.is_empty() {
            let rx = self.enqueue(ctx, ops, true, false);
            ctx.spawn(
                async move {
                    let _ = rx.await;
                }
                .into_actor(self),
            );
        }
    }
}

/// True when some op of a written batch queued payouts to wallets: sweeps, and the
/// track-record entries of deliveries and fines (see `transitions.lua`).
fn ops_pay(ops: &[Op]) -> bool {
    ops.iter().any(|op| {
        matches!(op, Op::Money(m) if m.payouts.iter().any(|p| matches!(p.kind, "sweep" | "earn" | "fined")))
    })
}

async fn outcome(rx: oneshot::Receiver<LocalResult<()>>) -> LocalResult<()> {
    rx.await.unwrap_or_else(|_| {
        Err(MarketError::unavailable("the matcher stopped, retry shortly").into())
    })
}

impl Actor for Matcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(100_000);
        ctx.run_interval(Duration::from_secs(1), |act, ctx| act.expire(ctx));
    }
}

impl Handler<Place> for Matcher {
    type Result = ResponseFuture<LocalResult<Placed>>;

    fn handle(&mut self, msg: Place, ctx: &mut Context<Self>) -> Self::Result {
        let resend_unsafe = msg.idempotency.is_none();
        let decision = self
            .check_usable()
            .and_then(|()| Ok(self.state.place(msg.order, msg.idempotency, msg.topup)?));
        match decision {
            Err(e) => Box::pin(async move { Err(e) }),
            // An idempotent resend: nothing to write.
            Ok(d) if d.ops.is_empty() => Box::pin(async move { Ok(d.answer) }),
            Ok(d) => {
                let rx = self.enqueue(ctx, d.ops, true, resend_unsafe);
                let answer = d.answer;
                Box::pin(async move { outcome(rx).await.map(|()| answer) })
            }
        }
    }
}

impl Handler<Withdraw> for Matcher {
    type Result = ResponseFuture<LocalResult<Millis>>;

    fn handle(&mut self, msg: Withdraw, ctx: &mut Context<Self>) -> Self::Result {
        let at = Millis::now();
        let ops = self
            .check_usable()
            .and_then(|()| Ok(self.state.withdraw(msg.side, msg.key, msg.sender, at)?));
        match ops {
            Err(e) => Box::pin(async move { Err(e) }),
            Ok(ops) => {
                let rx = self.enqueue(ctx, ops, true, false);
                Box::pin(async move { outcome(rx).await.map(|()| at) })
            }
        }
    }
}

impl Handler<Complete> for Matcher {
    type Result = ResponseActFuture<Self, LocalResult<()>>;

    fn handle(&mut self, msg: Complete, ctx: &mut Context<Self>) -> Self::Result {
        if let Err(e) = self.check_usable() {
            return Box::pin(fut::ready(Err(e)));
        }
        let canon = msg.canon.clone();
        let proof_key = msg.record.key;
        let ops = self.state.complete(msg.record, msg.canon);
        // The state already settled the match: if the store refuses (a second proof for
        // the same orders, bytes accepted before), it is stale and is rebuilt.
        let rx = self.enqueue(ctx, ops, true, false);
        // Remember the proved input once the store has it.
        Box::pin(outcome(rx).into_actor(self).map(move |r, act, _| {
            if r.is_ok() {
                act.state.proved(canon, proof_key);
            }
            r
        }))
    }
}

impl Handler<Retire> for Matcher {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Retire, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.retiring.get_or_insert_with(Vec::new).push(tx);
        self.finish_retiring(ctx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<Depth> for Matcher {
    type Result = LocalResult<(Vec<Level>, Vec<Level>)>;

    fn handle(&mut self, msg: Depth, _: &mut Context<Self>) -> Self::Result {
        Ok(self.state.depth(msg.0))
    }
}

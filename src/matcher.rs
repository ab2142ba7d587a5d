//! The matcher: one actix actor per statement, owning that statement's book.
//!
//! Every change to a statement's orders goes through its matcher, one message at a
//! time, so matching needs no locks. The matcher applies each order to its in-memory
//! [`Book`] at once and queues the resulting transitions; whenever no write is in
//! flight it sends everything queued to the store as one atomic batch (group commit),
//! and answers each client only after the batch holding its order is acknowledged. So
//! a burst of N orders costs about one Redis round trip, not N, and an acknowledged
//! order is always in Redis.
//!
//! If a batch fails, the in-memory book may be ahead of the store: every waiting client
//! gets an error, and the book is rebuilt from Redis before the matcher takes more
//! orders.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::Duration;

use actix::prelude::*;
use rustc_hash::FxHashMap;
use tokio::sync::oneshot;

use crate::book::{Book, BookOrder, Level, Placement};
use crate::domain::{Key, Millis, ScopedKey, Side, Status};
use crate::error::MarketError;
use crate::store::{Op, OrderRecord, ProofRecord, Store, StoreError};

/// Places a new order (status `created`, seq unset), unless `idempotency` (a scoped
/// [`crate::domain::IdempotencyKey`]) already placed one.
#[derive(Message)]
#[rtype(result = "Result<Placed, MarketError>")]
pub struct Place {
    /// The order.
    pub order: OrderRecord,
    /// The client's idempotency key, scoped to side and sender.
    pub idempotency: Option<ScopedKey>,
}

/// What [`Place`] did.
#[derive(Debug)]
pub enum Placed {
    /// Placed this order (as stored).
    New(OrderRecord),
    /// The idempotency key had already placed this order: nothing was placed now.
    Existing(Key),
}

/// How long an idempotency key is remembered after the order it placed, by default.
pub const IDEMPOTENCY_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// Most idempotency keys forgotten in one op.
const FORGET_BATCH: usize = 1000;

/// Withdraws an open order of `sender` (`None`: by the market, e.g. expiry).
#[derive(Message)]
#[rtype(result = "Result<Millis, MarketError>")]
pub struct Withdraw {
    /// Request or proposal.
    pub side: Side,
    /// The order.
    pub key: Key,
    /// Who asks.
    pub sender: String,
}

/// Stores a verified proof and completes its two orders.
#[derive(Message)]
#[rtype(result = "Result<(), MarketError>")]
pub struct Complete {
    /// The proof.
    pub record: ProofRecord,
    /// The request's canonical input.
    pub canon: String,
}

/// Stops taking orders, finishes the writes in flight, then stops: the statement is
/// moving to another node. Calls arriving meanwhile are answered
/// [`MarketError::Moved`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct Retire;

/// Reads the aggregated book.
#[derive(Message)]
#[rtype(result = "Result<(Vec<Level>, Vec<Level>), MarketError>")]
pub struct Depth(pub usize);

type Reply = oneshot::Sender<Result<(), MarketError>>;

/// Most transitions written in one script.
const MAX_BATCH_OPS: usize = 2000;

/// A queued client message: its ops are `pending[range]`.
struct Waiter {
    ops: std::ops::Range<usize>,
    reply: Reply,
    /// True when the ops came from the book (a refusal means the book is stale).
    from_book: bool,
    /// True for an order placed without an Idempotency-Key: if its write may have
    /// happened, the client must not be invited to resend it.
    resend_unsafe: bool,
}

/// The actor owning one statement's book.
pub struct Matcher {
    statement: Key,
    store: Store,
    book: Book,
    /// Canonical inputs already proved → proof key.
    proven: HashMap<String, Key>,
    /// Scoped idempotency keys → (order placed, when).
    idempotency: FxHashMap<ScopedKey, (Key, Millis)>,
    /// The same keys, oldest first, for forgetting them after the retention.
    idempotency_order: VecDeque<(Millis, ScopedKey)>,
    /// How long a key is remembered.
    idempotency_retention: Duration,
    next_seq: u64,
    /// Orders with a wait_period: (deadline, key, side).
    deadlines: BinaryHeap<Reverse<(Millis, Key, SideOrd)>>,
    pending: Vec<Op>,
    waiters: Vec<Waiter>,
    flushing: bool,
    /// Set when the book may disagree with the store; cleared by a rebuild.
    stale: bool,
    /// Fencing token every batch is written under.
    token: u64,
    /// The node's table of running matchers and its fencing counter.
    owned: std::sync::Arc<crate::markets::Owned>,
    /// Set once the statement is moving away; fired when the last write is done.
    retiring: Option<Vec<oneshot::Sender<()>>>,
}

/// `Side` with an order, for the deadline heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct SideOrd(u8);

impl From<Side> for SideOrd {
    fn from(s: Side) -> Self {
        SideOrd(matches!(s, Side::Proposal) as u8)
    }
}

impl SideOrd {
    fn side(self) -> Side {
        if self.0 == 0 {
            Side::Request
        } else {
            Side::Proposal
        }
    }
}

/// What a matcher starts from: the statement's open orders and proved inputs.
pub struct Snapshot {
    open: Vec<OrderRecord>,
    proven: HashMap<String, Key>,
    idempotency: HashMap<ScopedKey, (Key, Millis)>,
}

impl Snapshot {
    /// Loads a statement's state from the store.
    pub async fn load(store: &Store, statement: Key) -> Result<Snapshot, StoreError> {
        Ok(Snapshot {
            open: store.open_orders(statement).await?,
            proven: store.proven_inputs(statement).await?,
            idempotency: store.idempotency_keys(statement).await?,
        })
    }
}

impl Matcher {
    /// A matcher for `statement` starting from `snapshot`, writing under the fencing
    /// `token` of its lease.
    pub fn new(
        statement: Key,
        store: Store,
        snapshot: Snapshot,
        token: u64,
        owned: std::sync::Arc<crate::markets::Owned>,
    ) -> Matcher {
        let mut m = Matcher {
            statement,
            store,
            book: Book::new(),
            proven: HashMap::new(),
            idempotency: FxHashMap::default(),
            idempotency_order: VecDeque::new(),
            idempotency_retention: IDEMPOTENCY_RETENTION,
            next_seq: 1,
            deadlines: BinaryHeap::new(),
            pending: Vec::new(),
            waiters: Vec::new(),
            flushing: false,
            stale: false,
            token,
            owned,
            retiring: None,
        };
        m.reset(snapshot);
        m
    }

    /// Remembers idempotency keys for `retention` instead of [`IDEMPOTENCY_RETENTION`].
    pub fn remembering_keys_for(mut self, retention: Duration) -> Matcher {
        self.idempotency_retention = retention;
        self
    }

    fn reset(&mut self, snap: Snapshot) {
        self.book = Book::new();
        self.deadlines.clear();
        self.proven = snap.proven;
        let mut by_age: Vec<(Millis, ScopedKey)> = snap
            .idempotency
            .iter()
            .map(|(k, (_, at))| (*at, *k))
            .collect();
        by_age.sort();
        self.idempotency_order = by_age.into();
        self.idempotency = snap.idempotency.into_iter().collect();
        let mut open = snap.open;
        open.sort_by_key(|o| (o.seq, o.key));
        for o in &open {
            if o.status != Status::Created || o.statement != self.statement {
                continue;
            }
            if let Err(e) = self.book.rest(book_order(o)) {
                tracing::error!(statement = %self.statement, error = %e, "rebuilding book");
            }
            self.track_deadline(o);
            self.next_seq = self.next_seq.max(o.seq + 1);
        }
        tracing::info!(statement = %self.statement, resting = self.book.len(), "book loaded");
    }

    fn track_deadline(&mut self, o: &OrderRecord) {
        if let Some(w) = o.wait_period {
            let deadline = Millis(o.created.0.saturating_add(u64::from(w.0) * 60_000));
            self.deadlines
                .push(Reverse((deadline, o.key, o.side.into())));
        }
    }

    fn check_usable(&self) -> Result<(), MarketError> {
        if self.retiring.is_some() {
            Err(MarketError::Moved(None))
        } else if self.stale {
            Err(MarketError::unavailable(
                "the statement's book is being rebuilt, retry shortly",
            ))
        } else {
            Ok(())
        }
    }

    /// Queues ops for the next batch and returns a future of their outcome.
    fn enqueue(
        &mut self,
        ctx: &mut Context<Self>,
        ops: Vec<Op>,
        from_book: bool,
        resend_unsafe: bool,
    ) -> oneshot::Receiver<Result<(), MarketError>> {
        let (tx, rx) = oneshot::channel();
        let start = self.pending.len();
        self.pending.extend(ops);
        self.waiters.push(Waiter {
            ops: start..self.pending.len(),
            reply: tx,
            from_book,
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
        // client messages only, so a message's ops stay in one atomic batch.
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
        let store = self.store.clone();
        let stmt = self.statement;
        let started = std::time::Instant::now();
        let token = self.token;
        let fut = async move {
            let res = store.apply(stmt, Some(token), &ops).await;
            (res, ops.len())
        };
        ctx.spawn(fut.into_actor(self).map(move |(res, n), act, ctx| {
            act.flushing = false;
            tracing::debug!(statement = %stmt, ops = n, micros = started.elapsed().as_micros() as u64, "batch written");
            match res {
                Ok(outcomes) => {
                    for w in waiters {
                        let first_err = outcomes[w.ops.clone()].iter().find_map(|r| r.as_ref().err());
                        let answer = match first_err {
                            None => Ok(()),
                            Some(refused) => {
                                if w.from_book {
                                    tracing::error!(statement = %stmt, %refused, "store refused a book transition; rebuilding");
                                    act.stale = true;
                                }
                                Err(MarketError::from(refused.clone()))
                            }
                        };
                        let _ = w.reply.send(answer);
                    }
                }
                Err(StoreError::Fenced) => {
                    // Another node took the statement: nothing of this batch was
                    // written. Every waiter routes again, to the new owner.
                    act.owned.fenced(stmt, act.token);
                    for w in waiters.into_iter().chain(std::mem::take(&mut act.waiters)) {
                        let _ = w.reply.send(Err(MarketError::Moved(None)));
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
                            clone_err(&err)
                        };
                        let _ = w.reply.send(Err(answer));
                    }
                    act.stale = true;
                }
            }
            if act.stale {
                // Orders queued meanwhile were applied to a book that may be wrong.
                for w in std::mem::take(&mut act.waiters) {
                    let _ = w.reply.send(Err(MarketError::unavailable("the statement's book is being rebuilt, retry shortly")));
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
        let store = self.store.clone();
        let stmt = self.statement;
        ctx.wait(
            async move {
                loop {
                    match Snapshot::load(&store, stmt).await {
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
                act.reset(snap);
                act.stale = false;
            }),
        );
    }

    fn expire(&mut self, ctx: &mut Context<Self>) {
        let now = Millis::now();
        let mut ops = Vec::new();
        while let Some(Reverse((deadline, key, side))) = self.deadlines.peek().copied() {
            if deadline > now {
                break;
            }
            self.deadlines.pop();
            if self.book.cancel(key).is_some() {
                ops.push(Op::Withdraw {
                    side: side.side(),
                    key,
                    sender: String::new(),
                    at: now,
                });
            }
        }
        if !ops.is_empty() {
            tracing::info!(statement = %self.statement, expired = ops.len(), "orders past their wait_period withdrawn");
        }
        let retention = self.idempotency_retention.as_millis() as u64;
        let mut forget = Vec::new();
        while let Some((at, _)) = self.idempotency_order.front() {
            if at.0.saturating_add(retention) > now.0 || forget.len() >= FORGET_BATCH {
                break;
            }
            if let Some((at, scoped)) = self.idempotency_order.pop_front() {
                // A key forgotten and used again has a newer entry: keep that one.
                if self.idempotency.get(&scoped).is_some_and(|(_, t)| *t == at) {
                    self.idempotency.remove(&scoped);
                    forget.push(scoped);
                }
            }
        }
        if !forget.is_empty() {
            ops.push(Op::Forget(forget));
        }
        if !ops.is_empty() && !self.stale {
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

fn clone_err(e: &MarketError) -> MarketError {
    match e {
        MarketError::Unavailable {
            message,
            retry_after_secs,
        } => MarketError::Unavailable {
            message: message.clone(),
            retry_after_secs: *retry_after_secs,
        },
        other => MarketError::Internal(other.to_string()),
    }
}

fn book_order(o: &OrderRecord) -> BookOrder {
    BookOrder {
        key: o.key,
        side: o.side,
        cost: o.cost,
        eval_time: o.eval_time,
        seq: o.seq,
    }
}

async fn outcome(rx: oneshot::Receiver<Result<(), MarketError>>) -> Result<(), MarketError> {
    rx.await.unwrap_or_else(|_| {
        Err(MarketError::unavailable(
            "the matcher stopped, retry shortly",
        ))
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
    type Result = ResponseFuture<Result<Placed, MarketError>>;

    fn handle(&mut self, msg: Place, ctx: &mut Context<Self>) -> Self::Result {
        if let Err(e) = self.check_usable() {
            return Box::pin(async move { Err(e) });
        }
        let Place {
            mut order,
            idempotency,
        } = msg;
        if let Some((existing, _)) = idempotency.as_ref().and_then(|k| self.idempotency.get(k)) {
            let existing = *existing;
            return Box::pin(async move { Ok(Placed::Existing(existing)) });
        }
        order.seq = self.next_seq;
        self.next_seq += 1;
        let now = order.created;
        let mut ops = Vec::with_capacity(2);
        // A request for an input that is already proved completes at once.
        if let Some(proof) = order.canon.as_ref().and_then(|c| self.proven.get(c)) {
            order.status = Status::Completed;
            order.proof_key = Some(*proof);
            ops.push(Op::New(Box::new(order.clone())));
        } else {
            match self.book.place(book_order(&order)) {
                Err(e) => {
                    return Box::pin(async move { Err(MarketError::Conflict(e.to_string())) })
                }
                Ok(Placement::Rested) => {
                    self.track_deadline(&order);
                    ops.push(Op::New(Box::new(order.clone())));
                }
                Ok(Placement::Matched(m)) => {
                    ops.push(Op::New(Box::new(order.clone())));
                    ops.push(Op::Match {
                        request: m.request,
                        proposal: m.proposal,
                        price: m.price.micros(),
                        at: now,
                    });
                    order.status = Status::Processing;
                    order.counterpart = Some(m.resting(order.side));
                    order.matched_time = Some(now);
                    order.price = Some(m.price);
                }
            }
        }
        let resend_unsafe = idempotency.is_none();
        if let Some(scoped) = idempotency {
            ops.push(Op::Remember {
                scoped,
                order: order.key,
                at: now,
            });
            self.idempotency.insert(scoped, (order.key, now));
            self.idempotency_order.push_back((now, scoped));
        }
        let rx = self.enqueue(ctx, ops, true, resend_unsafe);
        Box::pin(async move { outcome(rx).await.map(|()| Placed::New(order)) })
    }
}

impl Handler<Withdraw> for Matcher {
    type Result = ResponseFuture<Result<Millis, MarketError>>;

    fn handle(&mut self, msg: Withdraw, ctx: &mut Context<Self>) -> Self::Result {
        if let Err(e) = self.check_usable() {
            return Box::pin(async move { Err(e) });
        }
        // The caller checked ownership and status against the store; the book is the
        // authority on whether the order is still open right now.
        if self.book.cancel(msg.key).is_none() {
            let m = format!(
                "{} {} is no longer open; only created orders can be withdrawn",
                msg.side.as_str(),
                msg.key
            );
            return Box::pin(async move { Err(MarketError::Conflict(m)) });
        }
        let at = Millis::now();
        let op = Op::Withdraw {
            side: msg.side,
            key: msg.key,
            sender: msg.sender,
            at,
        };
        let rx = self.enqueue(ctx, vec![op], true, false);
        Box::pin(async move { outcome(rx).await.map(|()| at) })
    }
}

impl Handler<Complete> for Matcher {
    type Result = ResponseActFuture<Self, Result<(), MarketError>>;

    fn handle(&mut self, msg: Complete, ctx: &mut Context<Self>) -> Self::Result {
        if let Err(e) = self.check_usable() {
            return Box::pin(fut::ready(Err(e)));
        }
        let canon = msg.canon.clone();
        let proof_key = msg.record.key;
        let rx = self.enqueue(
            ctx,
            vec![Op::Proof {
                record: Box::new(msg.record),
                canon: msg.canon,
            }],
            false,
            false,
        );
        // Remember the proved input once the store has it, so later requests for the
        // same input complete at once.
        Box::pin(outcome(rx).into_actor(self).map(move |r, act, _| {
            if r.is_ok() {
                act.proven.entry(canon).or_insert(proof_key);
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
    type Result = Result<(Vec<Level>, Vec<Level>), MarketError>;

    fn handle(&mut self, msg: Depth, _: &mut Context<Self>) -> Self::Result {
        Ok(self.book.depth(msg.0))
    }
}

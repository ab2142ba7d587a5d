//! One statement's market state, pure: what its matcher decides, without I/O.
//!
//! [`StatementState`] holds the statement's [`Book`], the inputs already proved, the
//! window of remembered `Idempotency-Key`s, the `wait_period` deadlines and each user's
//! count of open orders and remembered keys (capped by [`Quotas`]). Each call
//! takes the time as data and returns the store transitions ([`Op`]s) that make the
//! decision durable, plus the answer for the client. The matcher actor
//! ([`super::matcher`]) only batches those ops and writes them; everything it decides
//! is decided here, so it is unit-tested like the book, with no Redis and no clock.
//!
//! The state may run ahead of the store by the ops not yet written: if a write fails,
//! the actor throws the state away and rebuilds it from a fresh [`Snapshot`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::Duration;

use rustc_hash::FxHashMap;

use super::book::{Book, BookOrder, Level, Match, Placement};
use super::money::{self, Economics};
use crate::domain::{Cost, Key, Millis, Minutes, ScopedKey, Side, Status};
use crate::error::MarketError;
use crate::store::{Money, Op, OrderRecord, ProofRecord, Remembered};

/// How long an idempotency key is remembered after the order it placed, by default.
pub const IDEMPOTENCY_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// Most idempotency keys forgotten in one op.
const FORGET_BATCH: usize = 1000;

/// What a statement's state is rebuilt from: its open orders, proved inputs and
/// remembered idempotency keys, as the store holds them.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Orders that may be open: `created` ones rest in the book, `processing` ones
    /// count against their senders' quotas, others are skipped.
    pub open: Vec<OrderRecord>,
    /// Canonical input → the proof of it.
    pub proven: HashMap<String, Key>,
    /// Proof → (its producer, the price it was paid): what a resale pays.
    pub resale: HashMap<Key, (String, u64)>,
    /// Scoped idempotency key → the order it placed, when, by whom.
    pub idempotency: HashMap<ScopedKey, Remembered>,
    /// Lowercased user → (free balance, free deposit) of its account here.
    pub accounts: HashMap<String, (u128, u128)>,
    /// Lowercased producer → (proofs delivered, deadlines missed) here.
    pub records: HashMap<String, (u64, u64)>,
}

/// What one user may hold on one statement; 0 lifts a cap. Past a cap, a placement is
/// refused with 429 and changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Orders open at once (`created` or `processing`).
    pub max_open_orders: u32,
    /// `Idempotency-Key`s remembered at once (each is kept for the retention).
    pub max_idempotency_keys: u32,
}

impl Quotas {
    /// Default of `--max-open-orders`.
    pub const OPEN_ORDERS: u32 = 1000;
    /// Default of `--max-idempotency-keys`.
    pub const IDEMPOTENCY_KEYS: u32 = 10_000;
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            max_open_orders: Self::OPEN_ORDERS,
            max_idempotency_keys: Self::IDEMPOTENCY_KEYS,
        }
    }
}

/// The rules a statement's state keeps: how long idempotency keys are remembered and
/// each user's quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// How long an order's idempotency key is remembered.
    pub retention: Duration,
    /// What one user may hold.
    pub quotas: Quotas,
    /// Collateral, commission, deadlines.
    pub economics: Economics,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            retention: IDEMPOTENCY_RETENTION,
            quotas: Quotas::default(),
            economics: Economics::default(),
        }
    }
}

/// An open order (resting or matched) as the state tracks it.
#[derive(Debug, Clone)]
struct Open {
    side: Side,
    sender: String,
    /// Escrow (request) or collateral (proposal) it holds.
    held: u128,
    cost: u64,
    eval_time: Option<Minutes>,
    seq: u64,
    created: Millis,
    wait_period: Option<Minutes>,
    /// A request's canonical input.
    canon: Option<String>,
}

impl Open {
    fn of(o: &OrderRecord) -> Open {
        Open {
            side: o.side,
            sender: o.sender.clone(),
            held: o.held,
            cost: o.cost.micros(),
            eval_time: o.eval_time,
            seq: o.seq,
            created: o.created,
            wait_period: o.wait_period,
            canon: o.canon.clone(),
        }
    }
}

/// A match waiting for its proof, by proposal.
#[derive(Debug, Clone, Copy)]
struct Pending {
    request: Key,
    price: u64,
    deadline: Millis,
}

/// Per-user counts of one statement: open orders (and whose each is) and remembered
/// idempotency keys.
#[derive(Debug, Default)]
struct PerUser {
    open: FxHashMap<String, u32>,
    sender_of: FxHashMap<Key, String>,
    keys: FxHashMap<String, u32>,
}

impl PerUser {
    fn open_of(&self, user: &str) -> u32 {
        self.open.get(user).copied().unwrap_or(0)
    }

    fn keys_of(&self, user: &str) -> u32 {
        self.keys.get(user).copied().unwrap_or(0)
    }

    fn opened(&mut self, key: Key, user: &str) {
        if self.sender_of.insert(key, user.to_owned()).is_none() {
            *self.open.entry(user.to_owned()).or_default() += 1;
        }
    }

    fn closed(&mut self, key: Key) {
        if let Some(user) = self.sender_of.remove(&key) {
            decrement(&mut self.open, &user);
        }
    }

    fn remembered(&mut self, user: &str) {
        *self.keys.entry(user.to_owned()).or_default() += 1;
    }

    fn forgotten(&mut self, user: &str) {
        decrement(&mut self.keys, user);
    }
}

fn decrement(counts: &mut FxHashMap<String, u32>, user: &str) {
    if let Some(n) = counts.get_mut(user) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            counts.remove(user);
        }
    }
}

/// What placing an order did.
#[derive(Debug)]
pub enum Placed {
    /// Placed this order (as it will be stored).
    New(Box<OrderRecord>),
    /// The idempotency key had already placed this order: nothing was placed now.
    Existing(Key),
    /// The sender's account here holds too little for the order: nothing was placed.
    /// Top it up from the wallet with at least `least` − `have` and place again.
    Short {
        /// The money is the deposit's (a proposal's collateral), else the balance's.
        deposit: bool,
        /// What the order needs at least.
        least: u128,
        /// The most it would hold (a proposal's collateral for the best bid).
        most: u128,
        /// What the account has free, counting the money sent with the order.
        have: u128,
    },
}

/// A user's free money parked in its account on this statement (what its orders hold
/// is on the orders), and when it last moved.
#[derive(Debug, Clone, Copy, Default)]
struct Account {
    balance: u128,
    deposit: u128,
    used: Millis,
}

/// The ops that make a decision durable, with the answer to give once they are.
#[derive(Debug)]
pub struct Decision<T> {
    /// Transitions to write, in order, as one atomic step.
    pub ops: Vec<Op>,
    /// The answer, valid once `ops` are written.
    pub answer: T,
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

/// One statement's book, proved inputs, idempotency window and deadlines.
pub struct StatementState {
    statement: Key,
    book: Book,
    /// Canonical inputs already proved → proof key.
    proven: HashMap<String, Key>,
    /// Proof → (producer, price paid): what a request completed by it pays.
    resale: HashMap<Key, (String, u64)>,
    /// Scoped idempotency keys → (order placed, when).
    idempotency: FxHashMap<ScopedKey, (Key, Millis)>,
    /// The same keys, oldest first, with who placed each, for forgetting them after the
    /// retention.
    idempotency_order: VecDeque<(Millis, ScopedKey, Option<String>)>,
    rules: Rules,
    per_user: PerUser,
    /// Arrival number of the next order: above every open order's.
    next_seq: u64,
    /// Orders with a wait_period: (deadline, key, side). Entries of orders that left
    /// the book are skipped when they come due.
    deadlines: BinaryHeap<Reverse<(Millis, Key, SideOrd)>>,
    /// Every open order (resting or matched).
    open: FxHashMap<Key, Open>,
    /// Matches waiting for their proofs, by proposal.
    pending: FxHashMap<Key, Pending>,
    /// (deadline, proposal) of the pending matches; entries of matches that ended are
    /// skipped when they come due.
    due: BinaryHeap<Reverse<(Millis, Key)>>,
    /// Open requests by canonical input.
    by_canon: FxHashMap<String, Vec<Key>>,
    /// Inputs proved since the last tick (or found proved at rebuild) whose open requests
    /// are to be completed by resale.
    to_resell: Vec<String>,
    /// Users' accounts here, by lowercased name.
    accounts: FxHashMap<String, Account>,
    /// Producers' records here (delivered, missed), by lowercased name: their rating
    /// ranks their proposals among equal ones.
    records: FxHashMap<String, (u64, u64)>,
}

impl StatementState {
    /// The state of `statement` as `snapshot` describes it, under `rules`.
    pub fn rebuild(statement: Key, snapshot: Snapshot, rules: Rules) -> StatementState {
        let mut per_user = PerUser::default();
        let mut by_age: Vec<(Millis, ScopedKey, Option<String>)> = Vec::new();
        let mut idempotency = FxHashMap::default();
        for (k, r) in snapshot.idempotency {
            if let Some(u) = &r.sender {
                per_user.remembered(u);
            }
            idempotency.insert(k, (r.order, r.at));
            by_age.push((r.at, k, r.sender));
        }
        by_age.sort();
        let mut s = StatementState {
            statement,
            book: Book::new(),
            proven: snapshot.proven,
            resale: snapshot.resale,
            idempotency,
            idempotency_order: by_age.into(),
            rules,
            per_user,
            next_seq: 1,
            deadlines: BinaryHeap::new(),
            open: FxHashMap::default(),
            pending: FxHashMap::default(),
            due: BinaryHeap::new(),
            by_canon: FxHashMap::default(),
            to_resell: Vec::new(),
            // Loaded accounts count as idle: swept at the first tick.
            accounts: snapshot
                .accounts
                .into_iter()
                .map(|(u, (balance, deposit))| {
                    let used = Millis(0);
                    (
                        u,
                        Account {
                            balance,
                            deposit,
                            used,
                        },
                    )
                })
                .collect(),
            records: snapshot.records.into_iter().collect(),
        };
        let mut open = snapshot.open;
        open.sort_by_key(|o| (o.seq, o.key));
        for o in &open {
            if o.statement != statement {
                continue;
            }
            match o.status {
                Status::Created => {}
                Status::Processing => {
                    s.per_user.opened(o.key, &o.sender);
                    s.open_insert(o.key, Open::of(o));
                    s.next_seq = s.next_seq.max(o.seq + 1);
                    if let (Side::Proposal, Some(request), Some(price), Some(at)) =
                        (o.side, o.counterpart, o.price, o.matched_time)
                    {
                        let deadline = rules.economics.deadline(at, o.eval_time);
                        s.pending.insert(
                            o.key,
                            Pending {
                                request,
                                price: price.micros(),
                                deadline,
                            },
                        );
                        s.due.push(Reverse((deadline, o.key)));
                    }
                    continue;
                }
                _ => continue,
            }
            let rank = s.rank_of(o.side, &o.sender);
            if let Err(e) = s.book.rest(BookOrder {
                rank,
                ..book_order(o)
            }) {
                tracing::error!(statement = %statement, error = %e, "rebuilding book");
                continue;
            }
            s.per_user.opened(o.key, &o.sender);
            s.open_insert(o.key, Open::of(o));
            s.track_deadline(o.key, o.side, o.created, o.wait_period);
            s.next_seq = s.next_seq.max(o.seq + 1);
        }
        // Open requests of inputs proved meanwhile (say, before a crash let the owner
        // complete them) are completed at the first tick.
        let proved: Vec<String> = s
            .by_canon
            .keys()
            .filter(|c| s.proven.contains_key(*c))
            .cloned()
            .collect();
        s.to_resell = proved;
        s
    }

    fn open_insert(&mut self, key: Key, o: Open) {
        if let Some(c) = &o.canon {
            self.by_canon.entry(c.clone()).or_default().push(key);
        }
        self.open.insert(key, o);
    }

    fn open_remove(&mut self, key: Key) -> Option<Open> {
        let o = self.open.remove(&key)?;
        if let Some(c) = &o.canon {
            if let Some(keys) = self.by_canon.get_mut(c) {
                keys.retain(|k| *k != key);
                if keys.is_empty() {
                    self.by_canon.remove(c);
                }
            }
        }
        Some(o)
    }

    /// Completes the open requests whose input is proved now (resting or matched to a
    /// producer who has not delivered yet), each paying the proof's producer by resale;
    /// a matched one's producer is released without a fine, its collateral unlocked.
    fn resell_proved(&mut self, now: Millis) -> Vec<Op> {
        let mut ops = Vec::new();
        for canon in std::mem::take(&mut self.to_resell) {
            let Some(&proof) = self.proven.get(&canon) else {
                continue;
            };
            let keys = self.by_canon.get(&canon).cloned().unwrap_or_default();
            for key in keys {
                let Some(r) = self.open.get(&key) else {
                    continue;
                };
                if r.side != Side::Request {
                    continue;
                }
                let mut money = Money::default();
                let mut released = None;
                if self.book.cancel(key).is_none() {
                    // Matched: find its proposal and release it.
                    let Some((&p, _)) = self.pending.iter().find(|(_, m)| m.request == key) else {
                        tracing::debug!(statement = %self.statement, %key, pending = self.pending.len(), "an open request of a proved input is neither resting nor matched");
                        continue;
                    };
                    self.pending.remove(&p);
                    if let Some(q) = self.open_remove(p) {
                        money.held.push((p, 0));
                        money.payouts.extend(money::unlock(&q.sender, p, q.held));
                    }
                    self.per_user.closed(p);
                    released = Some(p);
                }
                let Some(r) = self.open_remove(key) else {
                    continue;
                };
                self.per_user.closed(key);
                let (pay, producer) = match self.resale.get(&proof) {
                    Some((who, price)) if *who != r.sender => (
                        u64::try_from(u128::from(*price).min(r.held)).unwrap_or(0),
                        who.clone(),
                    ),
                    _ => (0, String::new()),
                };
                money.held.push((key, 0));
                money.payouts.extend(money::resale(
                    &self.rules.economics,
                    &r.sender,
                    key,
                    &producer,
                    r.held,
                    pay,
                ));
                ops.push(Op::Resold {
                    request: key,
                    proof,
                    price: pay,
                    proposal: released,
                    at: now,
                });
                ops.push(Op::Money(Box::new(money)));
            }
        }
        if !ops.is_empty() {
            tracing::info!(statement = %self.statement, completed = ops.len() / 2, "open requests completed by a proof of their input");
        }
        ops
    }

    /// Orders `user` has open on this statement.
    pub fn open_orders_of(&self, user: &str) -> u32 {
        self.per_user.open_of(user)
    }

    /// Refuses a placement past the sender's quotas (429; nothing changes).
    fn check_quotas(&self, sender: &str, keyed: bool) -> Result<(), MarketError> {
        let q = self.rules.quotas;
        let over = |n: u32, max: u32| max > 0 && n >= max;
        let open = self.per_user.open_of(sender);
        if over(open, q.max_open_orders) {
            return Err(MarketError::TooManyRequests {
                message: format!(
                    "{sender} has {open} open orders on statement {}, the most one user may \
                     have; withdraw some or wait until they complete",
                    self.statement
                ),
                retry_after_secs: 60,
            });
        }
        let keys = self.per_user.keys_of(sender);
        if keyed && over(keys, q.max_idempotency_keys) {
            return Err(MarketError::TooManyRequests {
                message: format!(
                    "{sender} has {keys} Idempotency-Keys remembered on statement {}, the most \
                     one user may have; place without a key or wait until older ones are \
                     forgotten",
                    self.statement
                ),
                retry_after_secs: 3600,
            });
        }
        Ok(())
    }

    /// Matches waiting for their proofs.
    pub fn matched(&self) -> usize {
        self.pending.len()
    }

    /// Orders resting in the book.
    pub fn resting(&self) -> usize {
        self.book.len()
    }

    /// The aggregated book, best levels first.
    pub fn depth(&self, levels: usize) -> (Vec<Level>, Vec<Level>) {
        self.book.depth(levels)
    }

    fn track_deadline(
        &mut self,
        key: Key,
        side: Side,
        created: Millis,
        wait_period: Option<Minutes>,
    ) {
        if let Some(w) = wait_period {
            let deadline = self.rules.economics.after(created, w);
            self.deadlines.push(Reverse((deadline, key, side.into())));
        }
    }

    /// Puts an open order in the book: it takes the best resting order it may trade
    /// with (never its own sender's, and only with money enough behind both), or rests.
    /// Returns the match's ops (the order itself is already stored or being stored).
    fn enter(&mut self, key: Key, now: Millis) -> Result<Option<(Match, Vec<Op>)>, MarketError> {
        let Some(o) = self.open.get(&key) else {
            return Ok(None);
        };
        let order = BookOrder {
            key,
            side: o.side,
            cost: Cost::from_micros(o.cost).map_err(|e| MarketError::Conflict(e.to_string()))?,
            eval_time: o.eval_time,
            seq: o.seq,
            rank: self.rank_of(o.side, &o.sender),
        };
        let (sender, held, side) = (o.sender.clone(), o.held, o.side);
        let e = self.rules.economics;
        let open = &self.open;
        let eligible = |k: Key, price: u64| {
            let Some(r) = open.get(&k) else { return false };
            if r.sender == sender {
                return false;
            }
            match side {
                // The resting proposal's collateral must cover the price.
                Side::Request => r.held >= e.collateral(price) && held >= u128::from(price),
                // This proposal's collateral must cover the price; the request's escrow too.
                Side::Proposal => held >= e.collateral(price) && r.held >= u128::from(price),
            }
        };
        let placed = self
            .book
            .place_where(order, eligible)
            .map_err(|e| MarketError::Conflict(e.to_string()))?;
        let m = match placed {
            Placement::Rested => return Ok(None),
            Placement::Matched(m) => m,
        };
        let price = m.price.micros();
        let mut money = Money::default();
        let collateral = e.collateral(price);
        let (mut requester, mut producer, mut deadline) = (String::new(), String::new(), now);
        // What the two orders hold from now on, written by the match itself.
        let mut held = (0u128, 0u128);
        if let Some(r) = self.open.get_mut(&m.request) {
            money.payouts.extend(money::release(
                &r.sender,
                m.request,
                r.held - u128::from(price).min(r.held),
            ));
            r.held = u128::from(price).min(r.held);
            held.0 = r.held;
            requester = r.sender.clone();
        }
        if let Some(p) = self.open.get_mut(&m.proposal) {
            money.payouts.extend(money::unlock(
                &p.sender,
                m.proposal,
                p.held - collateral.min(p.held),
            ));
            p.held = collateral.min(p.held);
            held.1 = p.held;
            producer = p.sender.clone();
            deadline = e.deadline(now, p.eval_time);
        }
        tracing::debug!(statement = %self.statement, %requester, %producer, price, "matched");
        self.pending.insert(
            m.proposal,
            Pending {
                request: m.request,
                price,
                deadline,
            },
        );
        self.due.push(Reverse((deadline, m.proposal)));
        let ops = vec![
            Op::Match {
                request: m.request,
                proposal: m.proposal,
                price,
                at: now,
                held,
            },
            Op::Money(Box::new(money)),
        ];
        Ok(Some((m, ops)))
    }

    /// The money an order leaving the book while open releases, and forgets it.
    fn close_open(&mut self, key: Key) -> Money {
        let mut money = Money::default();
        if let Some(o) = self.open_remove(key) {
            money.held.push((key, 0));
            let back = match o.side {
                Side::Request => money::release(&o.sender, key, o.held),
                Side::Proposal => money::unlock(&o.sender, key, o.held),
            };
            money.payouts.extend(back);
        }
        self.per_user.closed(key);
        money
    }

    /// Applies the account movements of `ops` (decided at `now`) to the accounts here,
    /// and deliveries and fines to the producers' records.
    fn move_accounts(&mut self, ops: &[Op], now: Millis) {
        for op in ops {
            let Op::Money(m) = op else { continue };
            for p in &m.payouts {
                let user = p.user.to_lowercase();
                match p.kind {
                    "earn" => self.records.entry(user.clone()).or_default().0 += 1,
                    "fined" => self.records.entry(user.clone()).or_default().1 += 1,
                    _ => {}
                }
                let a = self.accounts.entry(user).or_default();
                a.balance = a.balance.saturating_add_signed(p.balance);
                a.deposit = a.deposit.saturating_add_signed(p.deposit);
                a.used = a.used.max(now);
            }
        }
    }

    /// A proposal's rank in the book: its producer's rating on this statement in
    /// ten-thousandths, (delivered + 1) / (delivered + missed + 2) (a newcomer 5000);
    /// 0 for requests.
    fn rank_of(&self, side: Side, user: &str) -> u16 {
        if side == Side::Request {
            return 0;
        }
        let (d, f) = self
            .records
            .get(&user.to_lowercase())
            .copied()
            .unwrap_or((0, 0));
        let r = (u128::from(d) + 1) * 10_000 / (u128::from(d) + u128::from(f) + 2);
        u16::try_from(r).unwrap_or(10_000)
    }

    /// Sends the free money of accounts idle since `sweep_after` back to their wallets,
    /// and forgets the emptied accounts.
    fn sweep_idle(&mut self, now: Millis) -> Vec<Op> {
        let after = self.rules.economics.sweep_after.as_millis() as u64;
        self.sweep_where(|_, a| a.used.0.saturating_add(after) <= now.0)
    }

    /// Sends the free money of `users`' accounts back to their wallets now (their
    /// wallets asked for it).
    pub fn sweep_users(&mut self, users: &[String]) -> Vec<Op> {
        self.sweep_where(|u, _| users.iter().any(|x| x.eq_ignore_ascii_case(u)))
    }

    fn sweep_where(&mut self, mut sweep: impl FnMut(&str, &Account) -> bool) -> Vec<Op> {
        let mut payouts = Vec::new();
        self.accounts.retain(|user, a| {
            if !sweep(user, a) {
                return true;
            }
            payouts.extend(money::sweep(user, a.balance, a.deposit));
            false
        });
        if payouts.is_empty() {
            return Vec::new();
        }
        tracing::debug!(statement = %self.statement, accounts = payouts.len(), "idle accounts swept to their wallets");
        vec![Op::Money(Box::new(Money {
            held: Vec::new(),
            payouts,
            always: true,
        }))]
    }

    /// Free money of `user`'s account here: (balance, deposit).
    pub fn account(&self, user: &str) -> (u128, u128) {
        self.accounts
            .get(&user.to_lowercase())
            .map_or((0, 0), |a| (a.balance, a.deposit))
    }

    /// The best bid's price, if any: the most an incoming proposal could trade at now.
    pub fn best_bid(&self) -> Option<u64> {
        self.book.depth(1).0.first().map(|l| l.cost.micros())
    }

    /// Places a new order (status `created`; its `created` time is now), unless the
    /// scoped idempotency key already placed one. A request for an input already proved
    /// completes at once; otherwise the order matches or rests.
    ///
    /// The order's money comes from its sender's account here: a request's cost as
    /// escrow from the free balance, a proposal's collateral from the free deposit
    /// (`collateral_factor` × the best price it could trade at now, at least × its own
    /// cost). `topup` is money the sender's wallet sent with this order into the account
    /// (the order's placement is its receipt). When the account is short, nothing is
    /// placed and the answer says how much is missing ([`Placed::Short`]).
    pub fn place(
        &mut self,
        mut order: OrderRecord,
        idempotency: Option<ScopedKey>,
        topup: u128,
    ) -> Result<Decision<Placed>, MarketError> {
        if let Some((existing, _)) = idempotency.as_ref().and_then(|k| self.idempotency.get(k)) {
            return Ok(Decision {
                ops: Vec::new(),
                answer: Placed::Existing(*existing),
            });
        }
        self.check_quotas(&order.sender, idempotency.is_some())?;
        let now = order.created;
        let e = self.rules.economics;
        let deposit = order.side == Side::Proposal;
        let cost = order.cost.micros();
        let (least, most) = if deposit {
            let best = self.best_bid().unwrap_or(0).max(cost);
            (e.collateral(cost), e.collateral(best))
        } else {
            (u128::from(cost), u128::from(cost))
        };
        let user = order.sender.to_lowercase();
        let acct = self.accounts.get(&user).copied().unwrap_or_default();
        let have = if deposit { acct.deposit } else { acct.balance } + topup;
        if have < least {
            return Ok(Decision {
                ops: Vec::new(),
                answer: Placed::Short {
                    deposit,
                    least,
                    most,
                    have,
                },
            });
        }
        let take = have.min(most);
        order.held = take;
        let mut funding = Money::default();
        funding
            .payouts
            .extend(money::topup(&order.sender, order.key, topup, deposit));
        funding.payouts.extend(if deposit {
            money::collateral(&order.sender, order.key, take)
        } else {
            money::escrow(&order.sender, order.key, take)
        });
        order.seq = self.next_seq;
        let mut ops = Vec::with_capacity(5);
        if let Some(proof) = order
            .canon
            .as_ref()
            .and_then(|c| self.proven.get(c))
            .copied()
        {
            // Proved already: completed at once, paying the proof's producer the price it
            // was paid (at most this request's escrow; nothing to itself), the rest of
            // its escrow released.
            order.status = Status::Completed;
            order.proof_key = Some(proof);
            let funded = std::mem::take(&mut order.held);
            let payouts = match self.resale.get(&proof) {
                Some((producer, price)) if *producer != order.sender && funded > 0 => {
                    let pay = u64::try_from(u128::from(*price).min(funded)).unwrap_or(0);
                    if let Ok(p) = Cost::from_micros(pay) {
                        order.price = (pay > 0).then_some(p);
                    }
                    money::resale(
                        &self.rules.economics,
                        &order.sender,
                        order.key,
                        producer,
                        funded,
                        pay,
                    )
                }
                _ => money::release(&order.sender, order.key, funded)
                    .into_iter()
                    .collect(),
            };
            ops.push(Op::New(Box::new(order.clone())));
            funding.payouts.extend(payouts);
            if !funding.is_empty() {
                ops.push(Op::Money(Box::new(funding)));
            }
        } else {
            if self.book.contains(order.key) || self.open.contains_key(&order.key) {
                return Err(MarketError::Conflict(format!(
                    "order {} is already in the book",
                    order.key
                )));
            }
            self.open_insert(order.key, Open::of(&order));
            self.per_user.opened(order.key, &order.sender);
            ops.push(Op::New(Box::new(order.clone())));
            if !funding.is_empty() {
                ops.push(Op::Money(Box::new(funding)));
            }
            match self.enter(order.key, now) {
                Err(e) => {
                    self.open_remove(order.key);
                    self.per_user.closed(order.key);
                    return Err(e);
                }
                Ok(None) => {
                    self.track_deadline(order.key, order.side, order.created, order.wait_period);
                }
                Ok(Some((m, more))) => {
                    ops.extend(more);
                    order.status = Status::Processing;
                    order.counterpart = Some(m.resting(order.side));
                    order.matched_time = Some(now);
                    order.price = Some(m.price);
                    if let Some(o) = self.open.get(&order.key) {
                        order.held = o.held;
                    }
                }
            }
        }
        self.next_seq += 1;
        self.move_accounts(&ops, now);
        if let Some(scoped) = idempotency {
            ops.push(Op::Remember {
                scoped,
                order: order.key,
                at: now,
                sender: order.sender.clone(),
            });
            self.idempotency.insert(scoped, (order.key, now));
            self.per_user.remembered(&order.sender);
            self.idempotency_order
                .push_back((now, scoped, Some(order.sender.clone())));
        }
        Ok(Decision {
            ops,
            answer: Placed::New(Box::new(order)),
        })
    }

    /// Withdraws an open order at `now` for `sender` (the caller checked that the order
    /// is theirs; the store checks it again). The book is the authority on whether the
    /// order is still open right now.
    pub fn withdraw(
        &mut self,
        side: Side,
        key: Key,
        sender: String,
        now: Millis,
    ) -> Result<Vec<Op>, MarketError> {
        if self.book.cancel(key).is_none() {
            return Err(MarketError::Conflict(format!(
                "{} {key} is no longer open; only created orders can be withdrawn",
                side.as_str()
            )));
        }
        let money = self.close_open(key);
        let ops = vec![
            Op::Withdraw {
                side,
                key,
                sender,
                at: now,
            },
            Op::Money(Box::new(money)),
        ];
        self.move_accounts(&ops, now);
        Ok(ops)
    }

    /// The op storing a verified proof and completing its two orders. Call
    /// [`StatementState::proved`] once it is written.
    pub fn complete(&mut self, record: ProofRecord, canon: String) -> Vec<Op> {
        let (request, proposal) = (record.request, record.proposal);
        let mut money = Money::default();
        match self.pending.get(&proposal) {
            Some(p) if p.request == request => {
                let price = p.price;
                self.pending.remove(&proposal);
                let r = self.open_remove(request);
                let q = self.open_remove(proposal);
                if let (Some(r), Some(q)) = (r, q) {
                    // What a later request for the same input pays this producer.
                    self.resale.insert(record.key, (q.sender.clone(), price));
                    money.held = vec![(request, 0), (proposal, 0)];
                    money.payouts = money::settle(
                        &self.rules.economics,
                        &r.sender,
                        request,
                        &q.sender,
                        proposal,
                        price,
                        q.held,
                        record.generation_ms,
                    );
                    // What the escrow holds beyond the price (none, unless the request
                    // was placed before escrow existed) goes back too.
                    money.payouts.extend(money::release(
                        &r.sender,
                        request,
                        r.held.saturating_sub(u128::from(price)),
                    ));
                }
            }
            _ => {
                tracing::warn!(statement = %self.statement, %request, %proposal, "proof for a match the state does not hold");
            }
        }
        self.per_user.closed(request);
        self.per_user.closed(proposal);
        let at = record.created;
        let mut ops = vec![Op::Proof {
            record: Box::new(record),
            canon,
        }];
        if !money.is_empty() {
            ops.push(Op::Money(Box::new(money)));
        }
        self.move_accounts(&ops, at);
        ops
    }

    /// Rolls back the matches past their deadlines as of `now`: each producer is fined,
    /// its proposal withdrawn, its request back in the book with its arrival number
    /// (and matched again at once if it can be).
    pub fn roll_back_late(&mut self, now: Millis) -> Vec<Op> {
        let mut ops = Vec::new();
        while let Some(Reverse((deadline, proposal))) = self.due.peek().copied() {
            if deadline > now {
                break;
            }
            self.due.pop();
            tracing::debug!(statement = %self.statement, %proposal, deadline = deadline.0, "match deadline due");
            let Some(p) = self.pending.get(&proposal).copied() else {
                continue;
            };
            if p.deadline != deadline {
                continue;
            }
            self.pending.remove(&proposal);
            let Some(q) = self.open_remove(proposal) else {
                continue;
            };
            self.per_user.closed(proposal);
            let Some(r) = self.open.get_mut(&p.request) else {
                continue;
            };
            let back = money::fine(
                &r.sender, p.request, r.cost, r.held, &q.sender, proposal, q.held,
            );
            r.held = back.held;
            r.cost = back.cost;
            let (created, wait_period) = (r.created, r.wait_period);
            tracing::warn!(statement = %self.statement, request = %p.request, %proposal, producer = %q.sender, "deadline missed: match rolled back, producer fined");
            ops.push(Op::Rollback {
                request: p.request,
                proposal,
                at: now,
                cost: back.cost,
            });
            ops.push(Op::Money(Box::new(Money {
                held: vec![(p.request, back.held), (proposal, 0)],
                payouts: back.payouts,
                always: false,
            })));
            match self.enter(p.request, now) {
                Ok(Some((_, more))) => ops.extend(more),
                Ok(None) => self.track_deadline(p.request, Side::Request, created, wait_period),
                Err(e) => {
                    tracing::error!(statement = %self.statement, error = %e, "re-entering a rolled back request");
                }
            }
        }
        ops
    }

    /// Remembers that `canon` is proved by `proof`, so later requests for the same
    /// input complete at once.
    pub fn proved(&mut self, canon: String, proof: Key) {
        tracing::debug!(statement = %self.statement, %proof, open_with_input = self.by_canon.get(&canon).map_or(0, Vec::len), "input proved");
        if self.by_canon.contains_key(&canon) {
            self.to_resell.push(canon.clone());
        }
        self.proven.entry(canon).or_insert(proof);
    }

    /// Rolls back matches past their deadlines, withdraws the orders past their
    /// `wait_period` and forgets idempotency keys past the retention, as of `now`.
    pub fn expire(&mut self, now: Millis) -> Vec<Op> {
        let mut ops = self.roll_back_late(now);
        ops.extend(self.resell_proved(now));
        while let Some(Reverse((deadline, key, side))) = self.deadlines.peek().copied() {
            if deadline > now {
                break;
            }
            self.deadlines.pop();
            if self.book.cancel(key).is_some() {
                let money = self.close_open(key);
                ops.push(Op::Withdraw {
                    side: side.side(),
                    key,
                    sender: String::new(),
                    at: now,
                });
                ops.push(Op::Money(Box::new(money)));
            }
        }
        let expired = ops
            .iter()
            .filter(|o| matches!(o, Op::Withdraw { .. }))
            .count();
        if expired > 0 {
            tracing::info!(statement = %self.statement, expired, "orders past their wait_period withdrawn");
        }
        let retention = self.rules.retention.as_millis() as u64;
        let mut forget = Vec::new();
        while let Some((at, _, _)) = self.idempotency_order.front() {
            if at.0.saturating_add(retention) > now.0 || forget.len() >= FORGET_BATCH {
                break;
            }
            if let Some((at, scoped, sender)) = self.idempotency_order.pop_front() {
                // A key forgotten and used again has a newer entry: keep that one.
                if self.idempotency.get(&scoped).is_some_and(|(_, t)| *t == at) {
                    self.idempotency.remove(&scoped);
                    forget.push(scoped);
                    if let Some(u) = sender {
                        self.per_user.forgotten(&u);
                    }
                }
            }
        }
        if !forget.is_empty() {
            ops.push(Op::Forget(forget));
        }
        self.move_accounts(&ops, now);
        ops.extend(self.sweep_idle(now));
        ops
    }
}

fn book_order(o: &OrderRecord) -> BookOrder {
    BookOrder {
        key: o.key,
        side: o.side,
        cost: o.cost,
        eval_time: o.eval_time,
        seq: o.seq,
        rank: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Cost, IdempotencyKey, Minutes};

    const STMT: Key = Key(1);
    const HOUR: Duration = Duration::from_secs(3600);

    fn order(key: u64, side: Side, cost: u64, at: u64) -> OrderRecord {
        OrderRecord {
            key: Key(key),
            side,
            statement: STMT,
            cost: Cost::from_micros(cost * 1_000_000).unwrap(),
            eval_time: None,
            wait_period: None,
            sender: match side {
                Side::Request => "alice".into(),
                Side::Proposal => "bob".into(),
            },
            created: Millis(at),
            updated: Millis(at),
            status: Status::Created,
            seq: 0,
            input: None,
            canon: None,
            counterpart: None,
            matched_time: None,
            price: None,
            proof_key: None,
            // A request holds its cost; proposals need no collateral under `rules()`.
            held: match side {
                Side::Request => u128::from(cost) * 1_000_000,
                Side::Proposal => 0,
            },
            funded_at: None,
            failed: None,
        }
    }

    fn rules() -> Rules {
        Rules {
            retention: HOUR,
            quotas: Quotas::default(),
            economics: Economics {
                collateral_factor: 0,
                sweep_after: HOUR,
                ..Economics::default()
            },
        }
    }

    fn fresh() -> StatementState {
        StatementState::rebuild(STMT, Snapshot::default(), rules())
    }

    /// Places `o` with a top-up of what it needs (or the `held` it was built with).
    fn put(
        s: &mut StatementState,
        o: OrderRecord,
        k: Option<ScopedKey>,
    ) -> Result<Decision<Placed>, MarketError> {
        let need = match o.side {
            Side::Request => u128::from(o.cost.micros()),
            Side::Proposal => s.rules.economics.collateral(o.cost.micros()),
        };
        let topup = if o.held > 0 { o.held } else { need };
        s.place(o, k, topup)
    }

    fn placed(d: Decision<Placed>) -> (Vec<Op>, OrderRecord) {
        match d.answer {
            Placed::New(o) => (d.ops, *o),
            Placed::Existing(k) => panic!("expected a new order, got existing {k}"),
            Placed::Short { least, have, .. } => panic!("short: {have} of {least}"),
        }
    }

    fn names(ops: &[Op]) -> Vec<&'static str> {
        ops.iter()
            .map(|o| match o {
                Op::New(_) => "new",
                Op::Match { .. } => "match",
                Op::Withdraw { .. } => "withdraw",
                Op::Proof { .. } => "proof",
                Op::Remember { .. } => "remember",
                Op::Forget(_) => "forget",
                Op::Rollback { .. } => "rollback",
                Op::Resold { .. } => "resold",
                Op::Money(_) => "money",
            })
            .filter(|n| *n != "money")
            .collect()
    }

    #[test]
    fn an_order_with_no_counterpart_rests() {
        let mut s = fresh();
        let (ops, o) = placed(put(&mut s, order(10, Side::Request, 5, 100), None).unwrap());
        assert_eq!(names(&ops), ["new"]);
        assert_eq!(o.status, Status::Created);
        assert_eq!(o.seq, 1);
        assert_eq!(s.resting(), 1);
    }

    #[test]
    fn a_crossing_order_matches_at_the_resting_price() {
        let mut s = fresh();
        placed(put(&mut s, order(10, Side::Request, 5, 100), None).unwrap());
        let (ops, o) = placed(put(&mut s, order(11, Side::Proposal, 3, 200), None).unwrap());
        assert_eq!(names(&ops), ["new", "match"]);
        match &ops[1] {
            Op::Match {
                request,
                proposal,
                price,
                at,
                ..
            } => {
                assert_eq!((*request, *proposal), (Key(10), Key(11)));
                assert_eq!(*price, 5_000_000, "the resting request's cost");
                assert_eq!(*at, Millis(200));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(o.status, Status::Processing);
        assert_eq!(o.counterpart, Some(Key(10)));
        assert_eq!(o.price.map(|p| p.micros()), Some(5_000_000));
        assert_eq!(s.resting(), 0);
    }

    #[test]
    fn a_proved_input_completes_at_once() {
        let mut snap = Snapshot::default();
        snap.proven.insert("1\n11".into(), Key(99));
        let mut s = StatementState::rebuild(STMT, snap, rules());
        let mut r = order(10, Side::Request, 5, 100);
        r.canon = Some("1\n11".into());
        let (ops, o) = placed(put(&mut s, r, None).unwrap());
        assert_eq!(names(&ops), ["new"]);
        assert_eq!((o.status, o.proof_key), (Status::Completed, Some(Key(99))));
        assert_eq!(s.resting(), 0);
        // Proved later: the next request for that input completes too.
        s.proved("2\n3".into(), Key(100));
        let mut r = order(11, Side::Request, 5, 100);
        r.canon = Some("2\n3".into());
        let (_, o) = placed(put(&mut s, r, None).unwrap());
        assert_eq!(o.proof_key, Some(Key(100)));
    }

    #[test]
    fn an_idempotent_resend_places_nothing() {
        let mut s = fresh();
        let k = IdempotencyKey::parse("abc")
            .unwrap()
            .scoped(Side::Request, "alice");
        let (ops, _) = placed(put(&mut s, order(10, Side::Request, 5, 100), Some(k)).unwrap());
        assert_eq!(names(&ops), ["new", "remember"]);
        let again = put(&mut s, order(11, Side::Request, 5, 150), Some(k)).unwrap();
        assert!(again.ops.is_empty());
        assert!(matches!(again.answer, Placed::Existing(Key(10))));
        assert_eq!(s.resting(), 1);
        // Forgotten after the retention: the key places a new order.
        let ops = s.expire(Millis(100 + HOUR.as_millis() as u64));
        assert_eq!(names(&ops), ["forget"]);
        let (ops, o) = placed(put(&mut s, order(12, Side::Request, 5, 200), Some(k)).unwrap());
        assert_eq!(names(&ops), ["new", "remember"]);
        assert_eq!(o.key, Key(12));
    }

    #[test]
    fn orders_past_their_wait_period_are_withdrawn_once() {
        let mut s = fresh();
        let mut o = order(10, Side::Proposal, 5, 1_000);
        o.wait_period = Some(Minutes(1));
        placed(put(&mut s, o, None).unwrap());
        assert!(unswept(s.expire(Millis(60_999))).is_empty());
        let ops = s.expire(Millis(61_000));
        assert_eq!(names(&ops), ["withdraw"]);
        assert_eq!(s.resting(), 0);
        assert!(unswept(s.expire(Millis(120_000))).is_empty());
    }

    #[test]
    fn withdrawing_needs_an_open_order() {
        let mut s = fresh();
        placed(put(&mut s, order(10, Side::Request, 5, 100), None).unwrap());
        let ops = s
            .withdraw(Side::Request, Key(10), "alice".into(), Millis(200))
            .unwrap();
        assert_eq!(names(&ops), ["withdraw"]);
        assert!(matches!(
            s.withdraw(Side::Request, Key(10), "alice".into(), Millis(300)),
            Err(MarketError::Conflict(_))
        ));
        // A withdrawn order's deadline does not withdraw it again.
        assert!(unswept(s.expire(Millis(u64::MAX / 2))).is_empty());
    }

    #[test]
    fn a_rebuild_keeps_time_priority_and_numbers_after_the_open_orders() {
        let mut early = order(20, Side::Proposal, 3, 100);
        early.seq = 7;
        let mut late = order(21, Side::Proposal, 3, 50);
        late.seq = 9;
        let mut done = order(22, Side::Proposal, 1, 10);
        done.status = Status::Completed;
        let k = IdempotencyKey::parse("k")
            .unwrap()
            .scoped(Side::Proposal, "bob");
        let snap = Snapshot {
            open: vec![late, early, done],
            proven: HashMap::new(),
            accounts: HashMap::new(),
            records: HashMap::new(),
            idempotency: [(
                k,
                Remembered {
                    order: Key(20),
                    at: Millis(100),
                    sender: None,
                },
            )]
            .into_iter()
            .collect(),
            resale: HashMap::new(),
        };
        let mut s = StatementState::rebuild(STMT, snap, rules());
        assert_eq!(s.resting(), 2, "the completed order is not in the book");
        let (_, r) = placed(put(&mut s, order(30, Side::Request, 5, 500), None).unwrap());
        assert_eq!(r.seq, 10, "numbered after every open order");
        assert_eq!(r.counterpart, Some(Key(20)), "the lower seq rested first");
        let again = put(&mut s, order(31, Side::Proposal, 3, 600), Some(k)).unwrap();
        assert!(matches!(again.answer, Placed::Existing(Key(20))));
    }

    fn by(key: u64, side: Side, cost: u64, user: &str) -> OrderRecord {
        OrderRecord {
            sender: user.into(),
            ..order(key, side, cost, 100)
        }
    }

    #[test]
    fn open_orders_per_user_are_capped_and_freed_when_orders_close() {
        let quotas = Quotas {
            max_open_orders: 2,
            max_idempotency_keys: 0,
        };
        let mut s = StatementState::rebuild(STMT, Snapshot::default(), Rules { quotas, ..rules() });
        placed(put(&mut s, by(1, Side::Request, 5, "eve"), None).unwrap());
        placed(put(&mut s, by(2, Side::Request, 5, "eve"), None).unwrap());
        match put(&mut s, by(3, Side::Request, 5, "eve"), None) {
            Err(MarketError::TooManyRequests { message, .. }) => {
                assert!(message.contains("2 open orders"), "{message}")
            }
            other => panic!("{:?}", other.map(|d| d.ops)),
        }
        assert_eq!(s.resting(), 2, "a refused order changes nothing");
        // Another user is not affected; a match keeps both orders open (processing).
        let (_, p) = placed(put(&mut s, by(4, Side::Proposal, 3, "pat"), None).unwrap());
        assert_eq!(p.status, Status::Processing);
        assert_eq!((s.open_orders_of("eve"), s.open_orders_of("pat")), (2, 1));
        // A withdrawal frees a place, and so does a completion.
        s.withdraw(Side::Request, Key(2), "eve".into(), Millis(200))
            .unwrap();
        placed(put(&mut s, by(5, Side::Request, 5, "eve"), None).unwrap());
        assert!(put(&mut s, by(6, Side::Request, 5, "eve"), None).is_err());
        let proof = ProofRecord {
            key: Key(50),
            statement: STMT,
            request: Key(1),
            proposal: Key(4),
            sender: "pat".into(),
            input: String::new(),
            generation_ms: 0,
            created: Millis(300),
            output: None,
            proof_system: String::new(),
            proof_hex: String::new(),
        };
        s.complete(proof, "c".into());
        assert_eq!((s.open_orders_of("eve"), s.open_orders_of("pat")), (1, 0));
        placed(put(&mut s, by(7, Side::Request, 5, "eve"), None).unwrap());
        // After a rebuild, created and processing orders count again.
        let mut processing = by(8, Side::Request, 5, "eve");
        processing.status = Status::Processing;
        let snap = Snapshot {
            open: vec![by(5, Side::Request, 5, "eve"), processing],
            ..Snapshot::default()
        };
        let s = StatementState::rebuild(STMT, snap, Rules { quotas, ..rules() });
        assert_eq!(s.open_orders_of("eve"), 2);
        assert_eq!(s.resting(), 1);
    }

    #[test]
    fn remembered_idempotency_keys_per_user_are_capped_until_forgotten() {
        let quotas = Quotas {
            max_open_orders: 0,
            max_idempotency_keys: 2,
        };
        let mut s = StatementState::rebuild(STMT, Snapshot::default(), Rules { quotas, ..rules() });
        let key = |k: &str| {
            IdempotencyKey::parse(k)
                .unwrap()
                .scoped(Side::Request, "eve")
        };
        placed(put(&mut s, by(1, Side::Request, 5, "eve"), Some(key("a"))).unwrap());
        placed(put(&mut s, by(2, Side::Request, 5, "eve"), Some(key("b"))).unwrap());
        match put(&mut s, by(3, Side::Request, 5, "eve"), Some(key("c"))) {
            Err(MarketError::TooManyRequests { message, .. }) => {
                assert!(message.contains("Idempotency-Keys"), "{message}")
            }
            other => panic!("{:?}", other.map(|d| d.ops)),
        }
        // A resend of a remembered key is still answered; a placement without a key is
        // still taken.
        let again = put(&mut s, by(4, Side::Request, 5, "eve"), Some(key("a"))).unwrap();
        assert!(matches!(again.answer, Placed::Existing(Key(1))));
        placed(put(&mut s, by(5, Side::Request, 5, "eve"), None).unwrap());
        // Forgotten after the retention: room again.
        s.expire(Millis(100 + HOUR.as_millis() as u64));
        placed(put(&mut s, by(6, Side::Request, 5, "eve"), Some(key("c"))).unwrap());
    }

    /// What a match in `ops` left its request and proposal holding.
    fn held_of(ops: &[Op]) -> (u128, u128) {
        ops.iter()
            .find_map(|o| match o {
                Op::Match { held, .. } => Some(*held),
                _ => None,
            })
            .expect("a match")
    }

    /// `ops` but for sweeps of idle accounts.
    fn unswept(ops: Vec<Op>) -> Vec<Op> {
        ops.into_iter()
            .filter(|o| !matches!(o, Op::Money(m) if m.always))
            .collect()
    }

    /// The money ops of `ops` but for a placement's own funding (top-up, escrow,
    /// collateral).
    fn money_of(ops: &[Op]) -> Vec<&Money> {
        ops.iter()
            .filter_map(|o| match o {
                Op::Money(m) => Some(m.as_ref()),
                _ => None,
            })
            .filter(|m| {
                !(m.held.is_empty()
                    && m.payouts
                        .iter()
                        .all(|p| matches!(p.kind, "topup" | "escrow" | "collateral")))
            })
            .collect()
    }

    /// Proof 9 of the match (`request`, `proposal`), pushed by `producer`.
    fn proof_of(request: Key, proposal: Key, producer: &str) -> ProofRecord {
        ProofRecord {
            key: Key(9),
            statement: STMT,
            request,
            proposal,
            sender: producer.into(),
            input: "[]".into(),
            generation_ms: 5,
            created: Millis(300),
            output: None,
            proof_system: "test".into(),
            proof_hex: "00".into(),
        }
    }

    /// Rules with collateral (factor 10) and 0.5 % commission; a minute of 1 s.
    fn paid() -> Rules {
        Rules {
            economics: Economics {
                minute: Duration::from_secs(1),
                sweep_after: HOUR,
                ..Economics::default()
            },
            ..rules()
        }
    }

    fn funded(key: u64, side: Side, cost: u64, user: &str, held: u128) -> OrderRecord {
        OrderRecord {
            held,
            ..by(key, side, cost, user)
        }
    }

    #[test]
    fn a_user_never_trades_with_itself() {
        let mut s = fresh();
        placed(put(&mut s, by(1, Side::Proposal, 2, "eve"), None).unwrap());
        placed(put(&mut s, by(2, Side::Proposal, 3, "pat"), None).unwrap());
        // eve's request passes over her own cheaper proposal and takes pat's.
        let (_, r) = placed(put(&mut s, by(3, Side::Request, 5, "eve"), None).unwrap());
        assert_eq!(r.counterpart, Some(Key(2)));
        // Only her own left: her next request rests.
        let (_, r) = placed(put(&mut s, by(4, Side::Request, 5, "eve"), None).unwrap());
        assert_eq!(r.status, Status::Created);
        assert_eq!(s.resting(), 2);
    }

    #[test]
    fn a_match_reprices_escrow_and_collateral_and_releases_the_rest() {
        let mut s = StatementState::rebuild(STMT, Snapshot::default(), paid());
        let m = 1_000_000u128;
        placed(put(&mut s, funded(1, Side::Proposal, 2, "pat", 20 * m), None).unwrap());
        let (ops, r) =
            placed(put(&mut s, funded(2, Side::Request, 5, "eve", 5 * m), None).unwrap());
        assert_eq!(r.price.map(|p| p.micros()), Some(2_000_000));
        let money = money_of(&ops);
        assert_eq!(money.len(), 1);
        assert_eq!(held_of(&ops), (2 * m, 20 * m));
        // eve gets 3 back; pat's collateral is exactly 10 × 2, nothing to return.
        assert_eq!(money[0].payouts.len(), 1);
        let back = &money[0].payouts[0];
        assert_eq!(
            (back.user.as_str(), back.balance, back.blocked),
            ("eve", 3 * m as i128, -3 * (m as i128))
        );
    }

    #[test]
    fn proposals_pass_over_what_their_collateral_does_not_cover() {
        let mut s = StatementState::rebuild(STMT, Snapshot::default(), paid());
        let m = 1_000_000u128;
        placed(put(&mut s, funded(1, Side::Request, 9, "eve", 9 * m), None).unwrap());
        placed(put(&mut s, funded(2, Side::Request, 4, "ann", 4 * m), None).unwrap());
        // Collateral 50 covers a price of 5 at most: the 9 is passed over, the 4 taken.
        let (ops, p) =
            placed(put(&mut s, funded(3, Side::Proposal, 1, "pat", 50 * m), None).unwrap());
        assert_eq!(p.counterpart, Some(Key(2)));
        let money = money_of(&ops);
        assert_eq!(held_of(&ops), (4 * m, 40 * m));
        assert_eq!(
            money[0].payouts[0].deposit,
            10 * m as i128,
            "the excess collateral back"
        );
        // A proposal never rests with less than the collateral of its own cost.
        let short = put(&mut s, funded(4, Side::Proposal, 2, "bob", 10 * m), None).unwrap();
        assert!(short.ops.is_empty());
        assert!(matches!(
            short.answer,
            Placed::Short { deposit: true, least, have, .. } if least == 20 * m && have == 10 * m
        ));
    }

    #[test]
    fn a_missed_deadline_fines_the_producer_and_rematches_with_the_original_priority() {
        let mut s = StatementState::rebuild(STMT, Snapshot::default(), paid());
        let m = 1_000_000u128;
        let mut r1 = funded(1, Side::Request, 5, "eve", 5 * m);
        r1.created = Millis(100);
        placed(put(&mut s, r1, None).unwrap());
        let mut p = funded(2, Side::Proposal, 5, "pat", 50 * m);
        p.eval_time = Some(Minutes(2));
        p.created = Millis(200);
        let (_, p) = placed(put(&mut s, p, None).unwrap());
        assert_eq!(p.status, Status::Processing);
        // ann bids the same later; then bob offers.
        let mut r2 = funded(3, Side::Request, 5, "ann", 5 * m);
        r2.created = Millis(300);
        placed(put(&mut s, r2, None).unwrap());
        // Not yet due (2 minutes of 1 s from 200).
        assert!(unswept(s.expire(Millis(2199))).is_empty());
        let ops = s.expire(Millis(2200));
        assert_eq!(names(&ops), ["rollback"]);
        let fine = &money_of(&ops)[0];
        assert_eq!(fine.held, vec![(Key(1), 5 * m), (Key(2), 0)]);
        let to_eve = fine.payouts.iter().find(|p| p.user == "eve").unwrap();
        assert_eq!(to_eve.balance, 50 * m as i128);
        // Once only.
        assert!(unswept(s.expire(Millis(10_000))).is_empty());
        // bob's proposal takes eve's request, which arrived before ann's.
        let (_, b) =
            placed(put(&mut s, funded(4, Side::Proposal, 4, "bob", 50 * m), None).unwrap());
        assert_eq!(b.counterpart, Some(Key(1)));
    }

    #[test]
    fn a_completion_pays_the_producer_less_commission_and_unlocks_collateral() {
        let mut s = StatementState::rebuild(STMT, Snapshot::default(), paid());
        let m = 1_000_000u128;
        placed(put(&mut s, funded(1, Side::Request, 4, "eve", 4 * m), None).unwrap());
        placed(put(&mut s, funded(2, Side::Proposal, 4, "pat", 40 * m), None).unwrap());
        let proof = proof_of(Key(1), Key(2), "pat");
        let ops = s.complete(proof, "c".into());
        let money = money_of(&ops);
        let paid: i128 = money[0].payouts.iter().map(|p| p.balance).sum();
        assert_eq!(
            paid,
            4 * m as i128,
            "the price, split between producer and market"
        );
        assert!(money[0]
            .payouts
            .iter()
            .any(|p| p.user == crate::store::MARKET_ACCOUNT && p.balance == 20_000));
        assert_eq!(
            money[0].payouts.iter().map(|p| p.deposit).sum::<i128>(),
            40 * m as i128
        );
        // Nothing is due any more.
        assert!(unswept(s.expire(Millis(10_000_000))).is_empty());
    }

    #[test]
    fn orders_take_their_money_from_the_account_and_idle_accounts_are_swept() {
        let rules = Rules {
            economics: Economics {
                sweep_after: Duration::from_secs(10),
                ..paid().economics
            },
            ..paid()
        };
        let mut s = StatementState::rebuild(STMT, Snapshot::default(), rules);
        let m = 1_000_000u128;
        // Nothing here yet: short, nothing placed.
        let d = s.place(by(1, Side::Request, 5, "eve"), None, 0).unwrap();
        assert!(d.ops.is_empty());
        assert!(matches!(
            d.answer,
            Placed::Short { deposit: false, least, have: 0, .. } if least == 5 * m
        ));
        // A top-up of 20 comes with the order: 5 held, 15 stays free here.
        let (ops, o) = placed(
            s.place(by(1, Side::Request, 5, "eve"), None, 20 * m)
                .unwrap(),
        );
        assert_eq!(o.held, 5 * m);
        assert_eq!(s.account("eve"), (15 * m, 0));
        let kinds: Vec<&str> = ops
            .iter()
            .filter_map(|o| match o {
                Op::Money(m) => Some(m.payouts.iter().map(|p| p.kind)),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(kinds, ["topup", "escrow"]);
        // The next order needs no top-up (names are case-insensitive).
        let (_, o) = placed(s.place(by(2, Side::Request, 5, "Eve"), None, 0).unwrap());
        assert_eq!(o.held, 5 * m);
        assert_eq!(s.account("eve"), (10 * m, 0));
        // Withdrawn: its escrow back to the account, not yet to the wallet.
        s.withdraw(Side::Request, Key(2), "Eve".into(), Millis(200))
            .unwrap();
        assert_eq!(s.account("eve"), (15 * m, 0));
        // Idle for 10 s: the free 15 goes back to the wallet, once.
        assert!(s.expire(Millis(10_199)).is_empty());
        let ops = s.expire(Millis(10_200));
        let swept = money_of(&ops);
        assert!(matches!(ops.as_slice(), [Op::Money(m)] if m.always));
        assert_eq!(swept[0].payouts[0].kind, "sweep");
        assert_eq!(swept[0].payouts[0].balance, -15 * m as i128);
        assert_eq!(s.account("eve"), (0, 0));
        assert!(s.expire(Millis(100_000)).is_empty());
        // A wallet may ask for it back sooner.
        placed(
            s.place(by(3, Side::Request, 5, "eve"), None, 7 * m)
                .unwrap(),
        );
        let ops = s.sweep_users(&["EVE".into()]);
        assert_eq!(money_of(&ops)[0].payouts[0].balance, -2 * m as i128);
    }

    #[test]
    fn equal_proposals_go_to_the_better_rated_producer_first() {
        let mut s = StatementState::rebuild(STMT, Snapshot::default(), paid());
        let m = 1_000_000u128;
        // pat delivered once here; bob is new (rating 0.5 < 2/3).
        let (_, _) = placed(put(&mut s, funded(1, Side::Request, 4, "eve", 4 * m), None).unwrap());
        placed(put(&mut s, funded(2, Side::Proposal, 4, "pat", 40 * m), None).unwrap());
        s.complete(proof_of(Key(1), Key(2), "pat"), "c".into());
        placed(put(&mut s, funded(3, Side::Proposal, 4, "bob", 40 * m), None).unwrap());
        placed(put(&mut s, funded(4, Side::Proposal, 4, "pat", 40 * m), None).unwrap());
        let (_, r) = placed(put(&mut s, funded(5, Side::Request, 4, "eve", 4 * m), None).unwrap());
        assert_eq!(r.counterpart, Some(Key(4)), "pat's later proposal first");
        let (_, r) = placed(put(&mut s, funded(6, Side::Request, 4, "eve", 4 * m), None).unwrap());
        assert_eq!(r.counterpart, Some(Key(3)));
    }

    #[test]
    fn open_requests_of_a_proved_input_are_completed_by_resale() {
        let mut s = StatementState::rebuild(STMT, Snapshot::default(), paid());
        let m = 1_000_000u128;
        let with_input = |key, user: &str| OrderRecord {
            canon: Some("1\n11".into()),
            ..funded(key, Side::Request, 5, user, 5 * m)
        };
        placed(put(&mut s, with_input(1, "eve"), None).unwrap());
        placed(put(&mut s, funded(2, Side::Proposal, 5, "pat", 50 * m), None).unwrap());
        placed(put(&mut s, with_input(3, "ann"), None).unwrap());
        placed(put(&mut s, funded(4, Side::Proposal, 5, "bob", 50 * m), None).unwrap());
        placed(put(&mut s, with_input(5, "cy"), None).unwrap());
        let proof = proof_of(Key(1), Key(2), "pat");
        s.complete(proof, "1\n11".into());
        s.proved("1\n11".into(), Key(9));
        let ops = s.expire(Millis(400));
        // ann's matched request (bob released) and cy's resting one.
        assert_eq!(names(&ops), ["resold", "resold"]);
        let released: Vec<Option<Key>> = ops
            .iter()
            .filter_map(|o| match o {
                Op::Resold {
                    proposal, price, ..
                } => {
                    assert_eq!(*price, 5_000_000);
                    Some(*proposal)
                }
                _ => None,
            })
            .collect();
        assert!(released.contains(&Some(Key(4))) && released.contains(&None));
        assert_eq!(s.resting(), 0);
        assert!(unswept(s.expire(Millis(500))).is_empty());
    }
}

//! One statement's market state, pure: what its matcher decides, without I/O.
//!
//! [`StatementState`] holds the statement's [`Book`], the inputs already proved, the
//! window of remembered `Idempotency-Key`s and the `wait_period` deadlines. Each call
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

use super::book::{Book, BookOrder, Level, Placement};
use crate::domain::{Key, Millis, ScopedKey, Side, Status};
use crate::error::MarketError;
use crate::store::{Op, OrderRecord, ProofRecord};

/// How long an idempotency key is remembered after the order it placed, by default.
pub const IDEMPOTENCY_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// Most idempotency keys forgotten in one op.
const FORGET_BATCH: usize = 1000;

/// What a statement's state is rebuilt from: its open orders, proved inputs and
/// remembered idempotency keys, as the store holds them.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Orders that may be open (others are skipped).
    pub open: Vec<OrderRecord>,
    /// Canonical input → the proof of it.
    pub proven: HashMap<String, Key>,
    /// Scoped idempotency key → (order it placed, when).
    pub idempotency: HashMap<ScopedKey, (Key, Millis)>,
}

/// What placing an order did.
#[derive(Debug)]
pub enum Placed {
    /// Placed this order (as it will be stored).
    New(OrderRecord),
    /// The idempotency key had already placed this order: nothing was placed now.
    Existing(Key),
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
    /// Scoped idempotency keys → (order placed, when).
    idempotency: FxHashMap<ScopedKey, (Key, Millis)>,
    /// The same keys, oldest first, for forgetting them after the retention.
    idempotency_order: VecDeque<(Millis, ScopedKey)>,
    retention: Duration,
    /// Arrival number of the next order: above every open order's.
    next_seq: u64,
    /// Orders with a wait_period: (deadline, key, side). Entries of orders that left
    /// the book are skipped when they come due.
    deadlines: BinaryHeap<Reverse<(Millis, Key, SideOrd)>>,
}

impl StatementState {
    /// The state of `statement` as `snapshot` describes it, remembering idempotency
    /// keys for `retention`.
    pub fn rebuild(statement: Key, snapshot: Snapshot, retention: Duration) -> StatementState {
        let mut by_age: Vec<(Millis, ScopedKey)> = snapshot
            .idempotency
            .iter()
            .map(|(k, (_, at))| (*at, *k))
            .collect();
        by_age.sort();
        let mut s = StatementState {
            statement,
            book: Book::new(),
            proven: snapshot.proven,
            idempotency: snapshot.idempotency.into_iter().collect(),
            idempotency_order: by_age.into(),
            retention,
            next_seq: 1,
            deadlines: BinaryHeap::new(),
        };
        let mut open = snapshot.open;
        open.sort_by_key(|o| (o.seq, o.key));
        for o in &open {
            if o.status != Status::Created || o.statement != statement {
                continue;
            }
            if let Err(e) = s.book.rest(book_order(o)) {
                tracing::error!(statement = %statement, error = %e, "rebuilding book");
                continue;
            }
            s.track_deadline(o);
            s.next_seq = s.next_seq.max(o.seq + 1);
        }
        s
    }

    /// Orders resting in the book.
    pub fn resting(&self) -> usize {
        self.book.len()
    }

    /// The aggregated book, best levels first.
    pub fn depth(&self, levels: usize) -> (Vec<Level>, Vec<Level>) {
        self.book.depth(levels)
    }

    fn track_deadline(&mut self, o: &OrderRecord) {
        if let Some(w) = o.wait_period {
            let deadline = Millis(o.created.0.saturating_add(u64::from(w.0) * 60_000));
            self.deadlines
                .push(Reverse((deadline, o.key, o.side.into())));
        }
    }

    /// Places a new order (status `created`; its `created` time is now), unless the
    /// scoped idempotency key already placed one. A request for an input already proved
    /// completes at once; otherwise the order matches or rests.
    pub fn place(
        &mut self,
        mut order: OrderRecord,
        idempotency: Option<ScopedKey>,
    ) -> Result<Decision<Placed>, MarketError> {
        if let Some((existing, _)) = idempotency.as_ref().and_then(|k| self.idempotency.get(k)) {
            return Ok(Decision {
                ops: Vec::new(),
                answer: Placed::Existing(*existing),
            });
        }
        let now = order.created;
        order.seq = self.next_seq;
        let mut ops = Vec::with_capacity(3);
        if let Some(proof) = order.canon.as_ref().and_then(|c| self.proven.get(c)) {
            order.status = Status::Completed;
            order.proof_key = Some(*proof);
            ops.push(Op::New(Box::new(order.clone())));
        } else {
            match self
                .book
                .place(book_order(&order))
                .map_err(|e| MarketError::Conflict(e.to_string()))?
            {
                Placement::Rested => {
                    self.track_deadline(&order);
                    ops.push(Op::New(Box::new(order.clone())));
                }
                Placement::Matched(m) => {
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
        self.next_seq += 1;
        if let Some(scoped) = idempotency {
            ops.push(Op::Remember {
                scoped,
                order: order.key,
                at: now,
            });
            self.idempotency.insert(scoped, (order.key, now));
            self.idempotency_order.push_back((now, scoped));
        }
        Ok(Decision {
            ops,
            answer: Placed::New(order),
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
        Ok(vec![Op::Withdraw {
            side,
            key,
            sender,
            at: now,
        }])
    }

    /// The op storing a verified proof and completing its two orders. Call
    /// [`StatementState::proved`] once it is written.
    pub fn complete(&self, record: ProofRecord, canon: String) -> Vec<Op> {
        vec![Op::Proof {
            record: Box::new(record),
            canon,
        }]
    }

    /// Remembers that `canon` is proved by `proof`, so later requests for the same
    /// input complete at once.
    pub fn proved(&mut self, canon: String, proof: Key) {
        self.proven.entry(canon).or_insert(proof);
    }

    /// Withdraws the orders past their `wait_period` and forgets idempotency keys
    /// past the retention, as of `now`.
    pub fn expire(&mut self, now: Millis) -> Vec<Op> {
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
        let retention = self.retention.as_millis() as u64;
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
            sender: "alice".into(),
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
        }
    }

    fn fresh() -> StatementState {
        StatementState::rebuild(STMT, Snapshot::default(), HOUR)
    }

    fn placed(d: Decision<Placed>) -> (Vec<Op>, OrderRecord) {
        match d.answer {
            Placed::New(o) => (d.ops, o),
            Placed::Existing(k) => panic!("expected a new order, got existing {k}"),
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
            })
            .collect()
    }

    #[test]
    fn an_order_with_no_counterpart_rests() {
        let mut s = fresh();
        let (ops, o) = placed(s.place(order(10, Side::Request, 5, 100), None).unwrap());
        assert_eq!(names(&ops), ["new"]);
        assert_eq!(o.status, Status::Created);
        assert_eq!(o.seq, 1);
        assert_eq!(s.resting(), 1);
    }

    #[test]
    fn a_crossing_order_matches_at_the_resting_price() {
        let mut s = fresh();
        placed(s.place(order(10, Side::Request, 5, 100), None).unwrap());
        let (ops, o) = placed(s.place(order(11, Side::Proposal, 3, 200), None).unwrap());
        assert_eq!(names(&ops), ["new", "match"]);
        match &ops[1] {
            Op::Match {
                request,
                proposal,
                price,
                at,
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
        let mut s = StatementState::rebuild(STMT, snap, HOUR);
        let mut r = order(10, Side::Request, 5, 100);
        r.canon = Some("1\n11".into());
        let (ops, o) = placed(s.place(r, None).unwrap());
        assert_eq!(names(&ops), ["new"]);
        assert_eq!((o.status, o.proof_key), (Status::Completed, Some(Key(99))));
        assert_eq!(s.resting(), 0);
        // Proved later: the next request for that input completes too.
        s.proved("2\n3".into(), Key(100));
        let mut r = order(11, Side::Request, 5, 100);
        r.canon = Some("2\n3".into());
        let (_, o) = placed(s.place(r, None).unwrap());
        assert_eq!(o.proof_key, Some(Key(100)));
    }

    #[test]
    fn an_idempotent_resend_places_nothing() {
        let mut s = fresh();
        let k = IdempotencyKey::parse("abc")
            .unwrap()
            .scoped(Side::Request, "alice");
        let (ops, _) = placed(s.place(order(10, Side::Request, 5, 100), Some(k)).unwrap());
        assert_eq!(names(&ops), ["new", "remember"]);
        let again = s.place(order(11, Side::Request, 5, 150), Some(k)).unwrap();
        assert!(again.ops.is_empty());
        assert!(matches!(again.answer, Placed::Existing(Key(10))));
        assert_eq!(s.resting(), 1);
        // Forgotten after the retention: the key places a new order.
        let ops = s.expire(Millis(100 + HOUR.as_millis() as u64));
        assert_eq!(names(&ops), ["forget"]);
        let (ops, o) = placed(s.place(order(12, Side::Request, 5, 200), Some(k)).unwrap());
        assert_eq!(names(&ops), ["new", "remember"]);
        assert_eq!(o.key, Key(12));
    }

    #[test]
    fn orders_past_their_wait_period_are_withdrawn_once() {
        let mut s = fresh();
        let mut o = order(10, Side::Proposal, 5, 1_000);
        o.wait_period = Some(Minutes(1));
        placed(s.place(o, None).unwrap());
        assert!(s.expire(Millis(60_999)).is_empty());
        let ops = s.expire(Millis(61_000));
        assert_eq!(names(&ops), ["withdraw"]);
        assert_eq!(s.resting(), 0);
        assert!(s.expire(Millis(120_000)).is_empty());
    }

    #[test]
    fn withdrawing_needs_an_open_order() {
        let mut s = fresh();
        placed(s.place(order(10, Side::Request, 5, 100), None).unwrap());
        let ops = s
            .withdraw(Side::Request, Key(10), "alice".into(), Millis(200))
            .unwrap();
        assert_eq!(names(&ops), ["withdraw"]);
        assert!(matches!(
            s.withdraw(Side::Request, Key(10), "alice".into(), Millis(300)),
            Err(MarketError::Conflict(_))
        ));
        // A withdrawn order's deadline does not withdraw it again.
        assert!(s.expire(Millis(u64::MAX / 2)).is_empty());
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
            idempotency: [(k, (Key(20), Millis(100)))].into_iter().collect(),
        };
        let mut s = StatementState::rebuild(STMT, snap, HOUR);
        assert_eq!(s.resting(), 2, "the completed order is not in the book");
        let (_, r) = placed(s.place(order(30, Side::Request, 5, 500), None).unwrap());
        assert_eq!(r.seq, 10, "numbered after every open order");
        assert_eq!(r.counterpart, Some(Key(20)), "the lower seq rested first");
        let again = s.place(order(31, Side::Proposal, 3, 600), Some(k)).unwrap();
        assert!(matches!(again.answer, Placed::Existing(Key(20))));
    }
}

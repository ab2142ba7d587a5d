//! The order book of one statement: pure price/time priority matching.
//!
//! No I/O, no clock, no async: orders come in with their arrival sequence number as
//! data, and matching returns what happened as values. The matcher actor owns one
//! `Book` and writes the outcomes to the store; tests and benchmarks drive it alone.
//!
//! Rules (README, "Matching rules"): a proposal P can serve a request R when
//! `P.cost <= R.cost` and, when R gives an `eval_time`, P gives one no longer than it.
//! An incoming request takes the best eligible proposal (lowest cost, then lowest
//! `eval_time`, then the highest `rank`: its producer's rating, then earliest); an
//! incoming proposal takes the best eligible request (highest cost, then earliest). The
//! trade price is the resting order's cost.
//!
//! Shape: each side is an ordered map of *levels* keyed by `(cost, eval_time)` (bids by
//! cost descending; asks also by rank, highest first), each level a FIFO of its orders
//! by arrival. The orders themselves
//! live in one slab (a `Vec` with a free list) linked into their level's FIFO by
//! indices, and an index maps an order key to its slot. So resting an order is one
//! lookup in the small level map plus a push at a FIFO's tail, and cancelling is an
//! unlink in O(1): the large per-order structures are a vector and a hash map, never an
//! ordered map with one entry per order. The first level of a price on the ask side has
//! that price's lowest time, so a request with an `eval_time` limit skips a whole price
//! in one range step; an incoming proposal is eligible for the bid levels of a price
//! whose limit is at least its own time, and takes the earliest head among them. A
//! missing `eval_time` is stored as `u32::MAX`: "no limit" on a bid, "slowest" on an
//! ask, which is exactly how the rules order and filter them.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use crate::domain::{Cost, Key, Minutes, Side};

/// `eval_time` as stored in the book: `None` becomes `u32::MAX` (see module docs).
type EvalKey = u32;
const NO_TIME: EvalKey = u32::MAX;

fn eval_key(t: Option<Minutes>) -> EvalKey {
    t.map_or(NO_TIME, |m| m.0.min(NO_TIME - 1))
}

fn eval_from_key(k: EvalKey) -> Option<Minutes> {
    (k != NO_TIME).then_some(Minutes(k))
}

/// An order as the book sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookOrder {
    /// The order's key.
    pub key: Key,
    /// Request (bid) or proposal (ask).
    pub side: Side,
    /// Limit price.
    pub cost: Cost,
    /// Longest accepted (request) or needed (proposal) generation time.
    pub eval_time: Option<Minutes>,
    /// Arrival sequence number: lower arrived earlier.
    pub seq: u64,
    /// Among proposals of equal cost and `eval_time`, higher ranks are taken first
    /// (the statement state gives its producer's rating; 0 for requests).
    pub rank: u16,
}

/// A trade between a request and a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    /// The request's key.
    pub request: Key,
    /// The proposal's key.
    pub proposal: Key,
    /// The trade price: the resting order's cost.
    pub price: Cost,
}

impl Match {
    /// The key of the order that was resting in the book.
    pub fn resting(&self, incoming: Side) -> Key {
        match incoming {
            Side::Request => self.proposal,
            Side::Proposal => self.request,
        }
    }
}

/// What placing an order did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// No eligible counter-order: the order now rests in the book.
    Rested,
    /// The order crossed a resting one; neither is in the book any more.
    Matched(Match),
}

/// A refused book operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookError {
    /// The key is already in the book.
    #[error("order {0} is already in the book")]
    DuplicateKey(Key),
}

/// Where a resting order sits, so cancel needs no search.
#[derive(Debug, Clone, Copy)]
struct Loc {
    side: Side,
    cost: u64,
    eval: EvalKey,
    rank: Reverse<u16>,
    slot: u32,
}

/// An ask level's key: cost, then time, then rank (highest first).
type AskKey = (u64, EvalKey, Reverse<u16>);

/// No slot (end of a FIFO, empty free list).
const NIL: u32 = u32::MAX;

/// One order in the slab, linked into its level's FIFO.
#[derive(Debug, Clone, Copy)]
struct Node {
    key: Key,
    seq: u64,
    prev: u32,
    next: u32,
}

/// A level's FIFO: slots of its orders, earliest at `head`.
#[derive(Debug, Clone, Copy)]
struct Fifo {
    head: u32,
    tail: u32,
    len: u32,
}

/// One aggregated price level of [`Book::depth`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    /// Price.
    pub cost: Cost,
    /// Generation time of the orders at this level.
    pub eval_time: Option<Minutes>,
    /// Number of orders.
    pub orders: usize,
}

/// The book of one statement.
#[derive(Debug, Default)]
pub struct Book {
    /// Bid levels: (cost descending, eval limit) → FIFO.
    bids: BTreeMap<(Reverse<u64>, EvalKey), Fifo>,
    /// Ask levels: (cost, eval, rank) → FIFO.
    asks: BTreeMap<AskKey, Fifo>,
    /// Every resting order; freed slots are chained through `next` from `free`.
    slab: Vec<Node>,
    free: u32,
    index: FxHashMap<Key, Loc>,
}

impl Book {
    /// An empty book.
    pub fn new() -> Book {
        Book {
            free: NIL,
            ..Book::default()
        }
    }

    /// Number of resting orders on both sides.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when no order rests.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// True when `key` rests in the book.
    pub fn contains(&self, key: Key) -> bool {
        self.index.contains_key(&key)
    }

    /// Matches `order` against the other side, or rests it.
    pub fn place(&mut self, order: BookOrder) -> Result<Placement, BookError> {
        self.place_where(order, |_, _| true)
    }

    /// [`Book::place`], where a resting order may be taken only if `eligible(key,
    /// price)` says so (the caller's rules beyond price and time: no trading with
    /// oneself, enough money behind both sides). Ineligible orders are passed over and
    /// keep resting; among the eligible ones the rules of the module decide.
    pub fn place_where(
        &mut self,
        order: BookOrder,
        mut eligible: impl FnMut(Key, u64) -> bool,
    ) -> Result<Placement, BookError> {
        if self.index.contains_key(&order.key) {
            return Err(BookError::DuplicateKey(order.key));
        }
        let found = match order.side {
            Side::Request => self.best_ask_for(order.cost.micros(), order.eval_time, &mut eligible),
            Side::Proposal => {
                self.best_bid_for(order.cost.micros(), order.eval_time, &mut eligible)
            }
        };
        match found {
            Some(resting) => {
                let loc = self
                    .remove(resting)
                    .ok_or(BookError::DuplicateKey(resting))?;
                let price =
                    Cost::from_micros(loc.cost).map_err(|_| BookError::DuplicateKey(resting))?;
                let (request, proposal) = match order.side {
                    Side::Request => (order.key, resting),
                    Side::Proposal => (resting, order.key),
                };
                Ok(Placement::Matched(Match {
                    request,
                    proposal,
                    price,
                }))
            }
            None => {
                self.insert(order);
                Ok(Placement::Rested)
            }
        }
    }

    /// Puts an order in the book without matching it (used when rebuilding from the
    /// store, where resting orders are known not to cross).
    pub fn rest(&mut self, order: BookOrder) -> Result<(), BookError> {
        if self.index.contains_key(&order.key) {
            return Err(BookError::DuplicateKey(order.key));
        }
        self.insert(order);
        Ok(())
    }

    /// Removes a resting order; returns its side, or `None` when it is not resting.
    pub fn cancel(&mut self, key: Key) -> Option<Side> {
        self.remove(key).map(|loc| loc.side)
    }

    /// Open orders aggregated by price and generation time, best first:
    /// `(requests, proposals)`.
    pub fn depth(&self, max_levels: usize) -> (Vec<Level>, Vec<Level>) {
        let bids = aggregate(
            self.bids
                .iter()
                .map(|(&(Reverse(c), e), f)| (c, e, f.len as usize)),
            max_levels,
        );
        let asks = aggregate(
            self.asks
                .iter()
                .map(|(&(c, e, _), f)| (c, e, f.len as usize)),
            max_levels,
        );
        (bids, asks)
    }

    fn alloc(&mut self, node: Node) -> u32 {
        if self.free != NIL {
            let slot = self.free;
            self.free = self.slab[slot as usize].next;
            self.slab[slot as usize] = node;
            slot
        } else {
            self.slab.push(node);
            (self.slab.len() - 1) as u32
        }
    }

    fn insert(&mut self, o: BookOrder) {
        let cost = o.cost.micros();
        let eval = eval_key(o.eval_time);
        let rank = Reverse(if o.side == Side::Proposal { o.rank } else { 0 });
        let slot = self.alloc(Node {
            key: o.key,
            seq: o.seq,
            prev: NIL,
            next: NIL,
        });
        let fifo = match o.side {
            Side::Request => self.bids.entry((Reverse(cost), eval)).or_insert(Fifo {
                head: NIL,
                tail: NIL,
                len: 0,
            }),
            Side::Proposal => self.asks.entry((cost, eval, rank)).or_insert(Fifo {
                head: NIL,
                tail: NIL,
                len: 0,
            }),
        };
        link(&mut self.slab, fifo, slot);
        self.index.insert(
            o.key,
            Loc {
                side: o.side,
                cost,
                eval,
                rank,
                slot,
            },
        );
    }

    fn remove(&mut self, key: Key) -> Option<Loc> {
        let loc = self.index.remove(&key)?;
        match loc.side {
            Side::Request => {
                let k = (Reverse(loc.cost), loc.eval);
                let f = self.bids.get_mut(&k)?;
                unlink(&mut self.slab, f, loc.slot);
                if f.len == 0 {
                    self.bids.remove(&k);
                }
            }
            Side::Proposal => {
                let k = (loc.cost, loc.eval, loc.rank);
                let f = self.asks.get_mut(&k)?;
                unlink(&mut self.slab, f, loc.slot);
                if f.len == 0 {
                    self.asks.remove(&k);
                }
            }
        }
        self.slab[loc.slot as usize].next = self.free;
        self.free = loc.slot;
        Some(loc)
    }

    /// The earliest order of `f` that `eligible` takes at `price`: its head unless the
    /// caller passes over some.
    fn first_eligible(
        &self,
        f: &Fifo,
        price: u64,
        eligible: &mut impl FnMut(Key, u64) -> bool,
    ) -> Option<(u64, Key)> {
        let mut at = f.head;
        while at != NIL {
            let n = &self.slab[at as usize];
            if eligible(n.key, price) {
                return Some((n.seq, n.key));
            }
            at = n.next;
        }
        None
    }

    /// The best proposal an incoming request of `cost`/`limit` may take: asks in
    /// (cost, time, rank) order, each level's earliest eligible order.
    fn best_ask_for(
        &self,
        cost: u64,
        limit: Option<Minutes>,
        eligible: &mut impl FnMut(Key, u64) -> bool,
    ) -> Option<Key> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let limit = eval_key(limit);
        let mut from: (std::ops::Bound<AskKey>, std::ops::Bound<AskKey>) =
            (Included((0, 0, Reverse(u16::MAX))), Unbounded);
        loop {
            let (&(c, e, r), f) = self.asks.range(from).next()?;
            if c > cost {
                return None;
            }
            if e > limit {
                // The first level of a price has its lowest time: skip the price.
                from = (
                    Included((c.checked_add(1)?, 0, Reverse(u16::MAX))),
                    Unbounded,
                );
                continue;
            }
            if let Some((_, key)) = self.first_eligible(f, c, eligible) {
                return Some(key);
            }
            from = (Excluded((c, e, r)), Unbounded);
        }
    }

    /// The best request an incoming proposal of `cost`/`time` may serve.
    fn best_bid_for(
        &self,
        cost: u64,
        time: Option<Minutes>,
        eligible: &mut impl FnMut(Key, u64) -> bool,
    ) -> Option<Key> {
        let need = eval_key(time);
        let mut level_from = (Reverse(u64::MAX), 0);
        loop {
            let (&(Reverse(level), _), _) = self.bids.range(level_from..).next()?;
            if level < cost {
                return None;
            }
            // The earliest eligible order of each eligible level of this price is that
            // level's candidate; the earliest candidate wins.
            let best = self
                .bids
                .range((Reverse(level), need)..=(Reverse(level), NO_TIME))
                .filter_map(|(_, f)| self.first_eligible(f, level, eligible))
                .min_by_key(|&(seq, _)| seq);
            if let Some((_, key)) = best {
                return Some(key);
            }
            level_from = (Reverse(level.checked_sub(1)?), 0);
        }
    }
}

/// Appends `slot` to `f` in arrival order: at the tail unless an earlier-arrived order
/// comes in late (rebuilds rest orders sorted, so the walk back is for odd callers only).
fn link(slab: &mut [Node], f: &mut Fifo, slot: u32) {
    let seq = slab[slot as usize].seq;
    let mut after = f.tail;
    while after != NIL && slab[after as usize].seq > seq {
        after = slab[after as usize].prev;
    }
    let before = if after == NIL {
        f.head
    } else {
        slab[after as usize].next
    };
    slab[slot as usize].prev = after;
    slab[slot as usize].next = before;
    if after == NIL {
        f.head = slot;
    } else {
        slab[after as usize].next = slot;
    }
    if before == NIL {
        f.tail = slot;
    } else {
        slab[before as usize].prev = slot;
    }
    f.len += 1;
}

fn unlink(slab: &mut [Node], f: &mut Fifo, slot: u32) {
    let Node { prev, next, .. } = slab[slot as usize];
    if prev == NIL {
        f.head = next;
    } else {
        slab[prev as usize].next = next;
    }
    if next == NIL {
        f.tail = prev;
    } else {
        slab[next as usize].prev = prev;
    }
    f.len -= 1;
}

/// Turns `(cost, eval, orders)` levels into [`Level`]s, best first (ask levels that
/// differ only by rank are one level).
fn aggregate(levels: impl Iterator<Item = (u64, EvalKey, usize)>, max_levels: usize) -> Vec<Level> {
    let mut out: Vec<Level> = Vec::new();
    for (cost, eval, orders) in levels {
        let Ok(cost) = Cost::from_micros(cost) else {
            continue;
        };
        let eval_time = eval_from_key(eval);
        if let Some(l) = out
            .last_mut()
            .filter(|l| l.cost == cost && l.eval_time == eval_time)
        {
            l.orders += orders;
        } else if out.len() == max_levels {
            break;
        } else {
            out.push(Level {
                cost,
                eval_time,
                orders,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(units: u64) -> Cost {
        Cost::from_micros(units * 1_000_000).unwrap()
    }

    fn req(key: u64, c: u64, t: Option<u32>, seq: u64) -> BookOrder {
        BookOrder {
            key: Key(key),
            side: Side::Request,
            cost: cost(c),
            eval_time: t.map(Minutes),
            seq,
            rank: 0,
        }
    }

    fn prop(key: u64, c: u64, t: Option<u32>, seq: u64) -> BookOrder {
        BookOrder {
            side: Side::Proposal,
            ..req(key, c, t, seq)
        }
    }

    #[test]
    fn among_equal_asks_the_higher_rank_is_taken_first_then_the_earlier() {
        let mut b = Book::new();
        let ranked = |key, rank, seq| BookOrder {
            rank,
            ..prop(key, 5, Some(10), seq)
        };
        b.place(ranked(1, 5000, 1)).unwrap();
        b.place(ranked(2, 9000, 2)).unwrap();
        b.place(ranked(3, 9000, 3)).unwrap();
        // Cheaper or faster still wins over rank.
        b.place(ranked(4, 100, 4)).unwrap();
        b.place(prop(5, 5, Some(3), 5)).unwrap();
        let taken: Vec<Key> = (0..5)
            .map(|i| matched(b.place(req(10 + i, 9, None, 10 + i)).unwrap()).proposal)
            .collect();
        assert_eq!(taken, [Key(5), Key(2), Key(3), Key(1), Key(4)]);
        // Depth shows one level per (cost, time), whatever the ranks.
        b.place(ranked(6, 1, 6)).unwrap();
        b.place(ranked(7, 2, 7)).unwrap();
        let (_, asks) = b.depth(10);
        assert_eq!(asks.len(), 1);
        assert_eq!(asks[0].orders, 2);
        // A request with a tighter time limit skips them all.
        assert_eq!(b.place(req(20, 9, Some(5), 20)).unwrap(), Placement::Rested);
    }

    fn matched(p: Placement) -> Match {
        match p {
            Placement::Matched(m) => m,
            Placement::Rested => panic!("expected a match"),
        }
    }

    #[test]
    fn passed_over_orders_keep_resting_and_the_next_best_is_taken() {
        let mut b = Book::new();
        // Asks: 1@2 (seq 1, passed over), 2@2 (seq 2), 3@3.
        for o in [
            prop(1, 2, None, 1),
            prop(2, 2, None, 2),
            prop(3, 3, Some(5), 3),
        ] {
            b.rest(o).unwrap();
        }
        let m = matched(
            b.place_where(req(10, 5, None, 4), |k, _| k != Key(1))
                .unwrap(),
        );
        assert_eq!((m.proposal, m.price), (Key(2), cost(2)));
        assert!(b.contains(Key(1)));
        // Every order at a price passed over: the next price, with its own price.
        let m = matched(
            b.place_where(req(11, 5, None, 5), |k, _| k != Key(1))
                .unwrap(),
        );
        assert_eq!((m.proposal, m.price), (Key(3), cost(3)));
        // Nothing eligible: the request rests, the ask too.
        assert_eq!(
            b.place_where(req(12, 5, None, 6), |_, _| false),
            Ok(Placement::Rested)
        );
        assert!(b.contains(Key(1)) && b.contains(Key(12)));
    }

    #[test]
    fn an_incoming_proposal_passes_over_requests_by_key_and_price() {
        let mut b = Book::new();
        // Bids: 1@9 (seq 1), 2@7 (seq 2, limit 10 min), 3@7 (seq 3).
        for o in [
            req(1, 9, None, 1),
            req(2, 7, Some(10), 2),
            req(3, 7, None, 3),
        ] {
            b.rest(o).unwrap();
        }
        // Prices above 8 units are not covered: the 7s, earliest eligible first.
        let covered = |_: Key, price: u64| price <= cost(8).micros();
        let m = matched(b.place_where(prop(10, 1, Some(5), 4), covered).unwrap());
        assert_eq!((m.request, m.price), (Key(2), cost(7)));
        let m = matched(
            b.place_where(prop(11, 1, None, 5), |k, p| k != Key(1) && covered(k, p))
                .unwrap(),
        );
        assert_eq!(m.request, Key(3));
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn untimed_asks_passed_over_fall_through_to_higher_prices() {
        let mut b = Book::new();
        b.rest(prop(1, 2, None, 1)).unwrap();
        b.rest(prop(2, 3, None, 2)).unwrap();
        let m = matched(
            b.place_where(req(3, 5, None, 3), |k, _| k != Key(1))
                .unwrap(),
        );
        assert_eq!(m.proposal, Key(2));
    }

    #[test]
    fn equal_costs_cross_at_resting_price() {
        let mut b = Book::new();
        assert_eq!(b.place(req(1, 2, None, 1)), Ok(Placement::Rested));
        let m = matched(b.place(prop(2, 2, None, 2)).unwrap());
        assert_eq!((m.request, m.proposal, m.price), (Key(1), Key(2), cost(2)));
        assert!(b.is_empty());
    }

    #[test]
    fn price_rule_is_respected() {
        let mut b = Book::new();
        b.place(req(1, 2, None, 1)).unwrap();
        assert_eq!(b.place(prop(2, 3, None, 2)), Ok(Placement::Rested));
        // A request above the ask takes it at the ask's price.
        let m = matched(b.place(req(3, 5, None, 3)).unwrap());
        assert_eq!((m.request, m.proposal, m.price), (Key(3), Key(2), cost(3)));
        assert!(b.contains(Key(1)));
    }

    #[test]
    fn incoming_request_takes_cheapest_then_fastest_then_earliest() {
        let mut b = Book::new();
        b.place(prop(1, 3, Some(5), 1)).unwrap();
        b.place(prop(2, 2, Some(9), 2)).unwrap();
        b.place(prop(3, 2, Some(4), 3)).unwrap();
        b.place(prop(4, 2, Some(4), 4)).unwrap();
        b.place(prop(5, 2, None, 5)).unwrap();
        let order: Vec<u64> = (0..5)
            .map(|i| {
                matched(b.place(req(10 + i, 10, None, 10 + i)).unwrap())
                    .proposal
                    .0
            })
            .collect();
        assert_eq!(order, vec![3, 4, 2, 5, 1]);
    }

    #[test]
    fn incoming_proposal_takes_highest_then_earliest() {
        let mut b = Book::new();
        b.place(req(1, 3, None, 1)).unwrap();
        b.place(req(2, 5, None, 2)).unwrap();
        b.place(req(3, 5, None, 3)).unwrap();
        let order: Vec<u64> = (0..3)
            .map(|i| {
                matched(b.place(prop(10 + i, 1, None, 10 + i)).unwrap())
                    .request
                    .0
            })
            .collect();
        assert_eq!(order, vec![2, 3, 1]);
    }

    #[test]
    fn eval_time_limits_are_respected() {
        let mut b = Book::new();
        // A request limited to 10 minutes ignores untimed and slow proposals.
        b.place(prop(1, 1, None, 1)).unwrap();
        b.place(prop(2, 1, Some(20), 2)).unwrap();
        assert_eq!(b.place(req(3, 5, Some(10), 3)), Ok(Placement::Rested));
        // A fast but pricier proposal serves it.
        let m = matched(b.place(prop(4, 4, Some(10), 4)).unwrap());
        assert_eq!((m.request, m.proposal, m.price), (Key(3), Key(4), cost(5)));
        // An untimed request takes the cheapest, timed before untimed at one price.
        let m = matched(b.place(req(5, 5, None, 5)).unwrap());
        assert_eq!(m.proposal, Key(2));
    }

    #[test]
    fn proposal_skips_requests_whose_limit_it_misses() {
        let mut b = Book::new();
        b.place(req(1, 9, Some(5), 1)).unwrap(); // best price but strict
        b.place(req(2, 9, None, 2)).unwrap();
        b.place(req(3, 8, Some(60), 3)).unwrap();
        // A slow proposal (30 min) can serve 2 (no limit) but not 1.
        assert_eq!(
            matched(b.place(prop(4, 1, Some(30), 4)).unwrap()).request,
            Key(2)
        );
        // An untimed proposal can serve only requests without a limit: none left.
        assert_eq!(b.place(prop(5, 1, None, 5)), Ok(Placement::Rested));
        // The next slow one takes 3 (60 ≥ 30), not 1.
        assert_eq!(
            matched(b.place(prop(6, 1, Some(30), 6)).unwrap()).request,
            Key(3)
        );
        // A fast one takes 1 at last.
        assert_eq!(
            matched(b.place(prop(7, 1, Some(5), 7)).unwrap()).request,
            Key(1)
        );
    }

    #[test]
    fn earliest_across_time_buckets_at_one_price() {
        let mut b = Book::new();
        b.place(req(1, 5, Some(30), 1)).unwrap();
        b.place(req(2, 5, None, 2)).unwrap();
        b.place(req(3, 5, Some(10), 3)).unwrap();
        let m = matched(b.place(prop(4, 5, Some(10), 4)).unwrap());
        assert_eq!(m.request, Key(1));
    }

    #[test]
    fn orders_rested_out_of_arrival_order_still_leave_earliest_first() {
        let mut b = Book::new();
        for (key, seq) in [(1, 50), (2, 10), (3, 30), (4, 60), (5, 20)] {
            b.rest(prop(key, 5, None, seq)).unwrap();
        }
        b.cancel(Key(3));
        let mut order = Vec::new();
        for k in 0..4 {
            let m = matched(b.place(req(100 + k, 5, None, 100 + k)).unwrap());
            order.push(m.proposal.0);
        }
        assert_eq!(order, vec![2, 5, 1, 4]);
        assert!(b.is_empty());
        // Freed slots are reused.
        b.rest(prop(9, 5, None, 1)).unwrap();
        assert_eq!(b.slab.len(), 5);
    }

    #[test]
    fn cancel_and_duplicates() {
        let mut b = Book::new();
        b.place(req(1, 5, None, 1)).unwrap();
        assert_eq!(
            b.place(req(1, 5, None, 2)),
            Err(BookError::DuplicateKey(Key(1)))
        );
        assert_eq!(b.cancel(Key(1)), Some(Side::Request));
        assert_eq!(b.cancel(Key(1)), None);
        assert_eq!(b.place(prop(2, 1, None, 3)), Ok(Placement::Rested));
        assert_eq!(b.cancel(Key(2)), Some(Side::Proposal));
        assert!(b.is_empty());
        assert!(b.bids.is_empty() && b.asks.is_empty());
    }

    #[test]
    fn depth_aggregates_best_first() {
        let mut b = Book::new();
        b.place(req(1, 2, None, 1)).unwrap();
        b.place(req(2, 3, None, 2)).unwrap();
        b.place(req(3, 3, None, 3)).unwrap();
        b.place(prop(4, 7, Some(5), 4)).unwrap();
        b.place(prop(5, 7, Some(5), 5)).unwrap();
        b.place(prop(6, 6, None, 6)).unwrap();
        let (bids, asks) = b.depth(10);
        assert_eq!(
            bids.iter().map(|l| (l.cost, l.orders)).collect::<Vec<_>>(),
            vec![(cost(3), 2), (cost(2), 1)]
        );
        assert_eq!(
            asks.iter()
                .map(|l| (l.cost, l.eval_time, l.orders))
                .collect::<Vec<_>>(),
            vec![(cost(6), None, 1), (cost(7), Some(Minutes(5)), 2)]
        );
    }

    /// A brute-force model of the rules, checked against the book on random flows.
    #[test]
    fn agrees_with_a_brute_force_model() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _round in 0..50 {
            let mut b = Book::new();
            let mut model: Vec<BookOrder> = Vec::new();
            for i in 0..300u64 {
                if next(10) == 0 && !model.is_empty() {
                    let victim = model.remove(next(model.len() as u64) as usize);
                    assert_eq!(b.cancel(victim.key), Some(victim.side));
                    continue;
                }
                let side = if next(2) == 0 {
                    Side::Request
                } else {
                    Side::Proposal
                };
                let t = match next(3) {
                    0 => None,
                    _ => Some(Minutes(1 + next(4) as u32 * 5)),
                };
                let o = BookOrder {
                    key: Key(i),
                    side,
                    cost: cost(1 + next(6)),
                    eval_time: t,
                    seq: i,
                    rank: 0,
                };
                let eligible = |r: &BookOrder, p: &BookOrder| {
                    p.cost <= r.cost
                        && match r.eval_time {
                            None => true,
                            Some(l) => p.eval_time.is_some_and(|e| e <= l),
                        }
                };
                let best = model
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| m.side != side)
                    .filter(|(_, m)| match side {
                        Side::Request => eligible(&o, m),
                        Side::Proposal => eligible(m, &o),
                    })
                    .min_by_key(|(_, m)| match side {
                        Side::Request => (m.cost.micros(), eval_key(m.eval_time), m.seq),
                        Side::Proposal => (u64::MAX - m.cost.micros(), 0, m.seq),
                    })
                    .map(|(idx, m)| (idx, *m));
                match (b.place(o).unwrap(), best) {
                    (Placement::Rested, None) => model.push(o),
                    (Placement::Matched(m), Some((idx, r))) => {
                        assert_eq!(m.resting(side), r.key);
                        assert_eq!(m.price, r.cost);
                        model.remove(idx);
                    }
                    (got, want) => panic!("book {got:?} vs model {want:?}"),
                }
                assert_eq!(b.len(), model.len());
            }
        }
    }
}

//! The order book of one statement: pure price/time priority matching.
//!
//! No I/O, no clock, no async: orders come in with their arrival sequence number as
//! data, and matching returns what happened as values. The matcher actor owns one
//! `Book` and writes the outcomes to the store; tests and benchmarks drive it alone.
//!
//! Rules (../shared/architecture.md): a proposal P can serve a request R when
//! `P.cost <= R.cost` and, when R gives an `eval_time`, P gives one no longer than it.
//! An incoming request takes the best eligible proposal (lowest cost, then lowest
//! `eval_time`, then earliest); an incoming proposal takes the best eligible request
//! (highest cost, then earliest). The trade price is the resting order's cost.
//!
//! Shape: asks are one ordered map keyed by `(cost, eval_time, seq)`, so the first
//! entry of a price level is that level's best and a request with an `eval_time` limit
//! can skip a whole level in one range step. Bids are grouped per price level into
//! buckets by their `eval_time` limit; an incoming proposal is eligible for the buckets
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
    seq: u64,
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
    /// Bids: (cost descending, eval limit, seq) → key.
    bids: BTreeMap<(Reverse<u64>, EvalKey, u64), Key>,
    /// Asks: (cost, eval, seq) → key.
    asks: BTreeMap<(u64, EvalKey, u64), Key>,
    index: FxHashMap<Key, Loc>,
}

impl Book {
    /// An empty book.
    pub fn new() -> Book {
        Book::default()
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
        if self.index.contains_key(&order.key) {
            return Err(BookError::DuplicateKey(order.key));
        }
        let found = match order.side {
            Side::Request => self.best_ask_for(order.cost.micros(), order.eval_time),
            Side::Proposal => self.best_bid_for(order.cost.micros(), order.eval_time),
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
            self.bids.iter().map(|(&(Reverse(c), e, _), _)| (c, e)),
            max_levels,
        );
        let asks = aggregate(self.asks.iter().map(|(&(c, e, _), _)| (c, e)), max_levels);
        (bids, asks)
    }

    fn insert(&mut self, o: BookOrder) {
        let cost = o.cost.micros();
        let eval = eval_key(o.eval_time);
        match o.side {
            Side::Request => {
                self.bids.insert((Reverse(cost), eval, o.seq), o.key);
            }
            Side::Proposal => {
                self.asks.insert((cost, eval, o.seq), o.key);
            }
        }
        self.index.insert(
            o.key,
            Loc {
                side: o.side,
                cost,
                eval,
                seq: o.seq,
            },
        );
    }

    fn remove(&mut self, key: Key) -> Option<Loc> {
        let loc = self.index.remove(&key)?;
        match loc.side {
            Side::Request => {
                self.bids.remove(&(Reverse(loc.cost), loc.eval, loc.seq));
            }
            Side::Proposal => {
                self.asks.remove(&(loc.cost, loc.eval, loc.seq));
            }
        }
        Some(loc)
    }

    /// The best proposal an incoming request of `cost`/`limit` may take.
    fn best_ask_for(&self, cost: u64, limit: Option<Minutes>) -> Option<Key> {
        let limit = match limit {
            // No limit: the very best ask, if cheap enough.
            None => {
                let (&(c, _, _), &key) = self.asks.iter().next()?;
                return (c <= cost).then_some(key);
            }
            Some(m) => eval_key(Some(m)),
        };
        let mut from = (0u64, 0u32, 0u64);
        loop {
            let (&(c, e, _), &key) = self.asks.range(from..).next()?;
            if c > cost {
                return None;
            }
            if e <= limit {
                return Some(key);
            }
            // The first ask of a level has its lowest time: skip the level.
            from = (c.checked_add(1)?, 0, 0);
        }
    }

    /// The best request an incoming proposal of `cost`/`time` may serve.
    fn best_bid_for(&self, cost: u64, time: Option<Minutes>) -> Option<Key> {
        let need = eval_key(time);
        let mut level_from = (Reverse(u64::MAX), 0, 0);
        loop {
            let (&(Reverse(level), _, _), _) = self.bids.range(level_from..).next()?;
            if level < cost {
                return None;
            }
            // Within the level, the head of each eval bucket at or above `need` is that
            // bucket's earliest; the earliest of those heads wins.
            let mut best: Option<(u64, Key)> = None;
            let mut from = (Reverse(level), need, 0u64);
            while let Some((&(Reverse(c), e, seq), &key)) = self.bids.range(from..).next() {
                if c != level {
                    break;
                }
                if best.is_none_or(|(s, _)| seq < s) {
                    best = Some((seq, key));
                }
                match e.checked_add(1) {
                    Some(next) => from = (Reverse(level), next, 0),
                    None => break,
                }
            }
            if let Some((_, key)) = best {
                return Some(key);
            }
            level_from = (Reverse(level.checked_sub(1)?), 0, 0);
        }
    }
}

/// Counts consecutive orders of equal (cost, eval) into levels, best first.
fn aggregate(orders: impl Iterator<Item = (u64, EvalKey)>, max_levels: usize) -> Vec<Level> {
    let mut out: Vec<Level> = Vec::new();
    for (cost, eval) in orders {
        match out.last_mut() {
            Some(l) if l.cost.micros() == cost && l.eval_time == eval_from_key(eval) => {
                l.orders += 1
            }
            _ => {
                if out.len() >= max_levels {
                    break;
                }
                if let Ok(cost) = Cost::from_micros(cost) {
                    out.push(Level {
                        cost,
                        eval_time: eval_from_key(eval),
                        orders: 1,
                    });
                }
            }
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
        }
    }

    fn prop(key: u64, c: u64, t: Option<u32>, seq: u64) -> BookOrder {
        BookOrder {
            side: Side::Proposal,
            ..req(key, c, t, seq)
        }
    }

    fn matched(p: Placement) -> Match {
        match p {
            Placement::Matched(m) => m,
            Placement::Rested => panic!("expected a match"),
        }
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

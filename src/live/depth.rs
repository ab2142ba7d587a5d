//! What a node's live streams know of one statement's orders, kept from its event log:
//! the sender, side and price of each order still open (to tell whom a match concerns
//! and what a withdrawal takes off the book) and the book's depth by price level.
//! Pure, unit-tested here.
//!
//! It starts from the orders Redis holds open and then applies the log from a point
//! at or before that read. Each event sets an order's state outright (resting, matched,
//! gone), so applying events the read already reflected changes nothing in the end.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{json, Value};

use super::frames::Known;
use crate::domain::{amount_json, Key, Minutes, Side, Status};
use crate::store::{Event, EventKind, OrderRecord};

/// Most orders one statement's tracker holds; past it, it forgets the closed-to-rest
/// ones first and then stops learning new ones (their senders are then read from
/// Redis when an event needs them).
pub const MAX_ORDERS: usize = 1_000_000;

/// Price levels of each side a `book` frame shows.
pub const BOOK_LEVELS: usize = 50;

/// A statement's open orders and book depth.
#[derive(Debug, Default)]
pub struct Orders {
    known: HashMap<Key, Known>,
    /// Orders resting in the book (created, not matched).
    resting: HashMap<Key, ()>,
    /// (cost descending, generation time) → orders.
    bids: BTreeMap<(Reverse<u64>, u32), usize>,
    /// (cost ascending, generation time) → orders.
    asks: BTreeMap<(u64, u32), usize>,
    /// Set when a level count changes.
    changed: bool,
}

fn eval_key(e: Option<Minutes>) -> u32 {
    e.map_or(u32::MAX, |m| m.0)
}

impl Orders {
    /// Starts from the open orders Redis holds (`created` ones rest in the book).
    pub fn from_open(open: &[OrderRecord]) -> Orders {
        let mut o = Orders::default();
        for r in open {
            match r.status {
                Status::Created => {
                    o.learn(r.key, Known::of(r));
                    o.rest(r.key);
                }
                Status::Processing => o.learn(r.key, Known::of(r)),
                Status::Completed | Status::Withdrawn => {}
            }
        }
        o
    }

    /// What is known of `key`.
    pub fn get(&self, key: Key) -> Option<&Known> {
        self.known.get(&key)
    }

    /// Learns `key` from Redis (an order the log named before this tracker saw it).
    pub fn learn(&mut self, key: Key, k: Known) {
        if self.known.len() < MAX_ORDERS || self.known.contains_key(&key) {
            self.known.insert(key, k);
        }
    }

    /// The keys `events` name without this tracker knowing them (and without placing
    /// them first): what to read from Redis before applying them.
    pub fn unknown(&self, events: &[Event]) -> Vec<Key> {
        let mut placed: HashSet<Key> = HashSet::new();
        let mut asked: HashSet<Key> = HashSet::new();
        let mut out = Vec::new();
        for e in events {
            if let EventKind::Placed(o) = &e.what {
                placed.insert(o.key);
            }
            for k in e.named_orders() {
                if !self.known.contains_key(&k) && !placed.contains(&k) && asked.insert(k) {
                    out.push(k);
                }
            }
        }
        out
    }

    fn level(&mut self, key: Key, add: bool) {
        let Some(k) = self.known.get(&key) else {
            return;
        };
        let e = eval_key(k.eval_time);
        let count = match k.side {
            Side::Request => self.bids.entry((Reverse(k.cost), e)).or_default(),
            Side::Proposal => self.asks.entry((k.cost, e)).or_default(),
        };
        self.changed = true;
        if add {
            *count += 1;
        } else {
            *count = count.saturating_sub(1);
        }
        if *count == 0 {
            match k.side {
                Side::Request => self.bids.remove(&(Reverse(k.cost), e)),
                Side::Proposal => self.asks.remove(&(k.cost, e)),
            };
        }
    }

    fn rest(&mut self, key: Key) {
        if self.known.contains_key(&key) && self.resting.insert(key, ()).is_none() {
            self.level(key, true);
        }
    }

    fn unrest(&mut self, key: Key) {
        if self.resting.remove(&key).is_some() {
            self.level(key, false);
        }
    }

    fn forget(&mut self, key: Key) {
        self.unrest(key);
        self.known.remove(&key);
    }

    /// Applies one event; true when the book's depth changed.
    pub fn apply(&mut self, e: &Event) -> bool {
        self.changed = false;
        match &e.what {
            EventKind::Placed(o) => {
                if o.status == Status::Created {
                    self.learn(o.key, Known::of(o));
                    self.rest(o.key);
                }
            }
            EventKind::Matched {
                request, proposal, ..
            } => {
                self.unrest(*request);
                self.unrest(*proposal);
            }
            EventKind::Withdrawn { key, .. } => self.forget(*key),
            EventKind::RolledBack {
                request,
                proposal,
                cost,
            } => {
                self.forget(*proposal);
                self.unrest(*request);
                if let Some(k) = self.known.get_mut(request) {
                    k.cost = *cost;
                }
                self.rest(*request);
            }
            EventKind::Proved {
                request, proposal, ..
            } => {
                self.forget(*request);
                self.forget(*proposal);
            }
            EventKind::Resold { request, .. } => self.forget(*request),
            EventKind::Moved(_) => {}
        }
        self.changed
    }

    /// The book as `GET /book/{key}` answers it, best `BOOK_LEVELS` levels per side.
    pub fn book(&self) -> Value {
        let level = |cost: u64, e: u32, n: usize| {
            json!({"cost": amount_json(u128::from(cost)),
                   "eval_time": (e != u32::MAX).then_some(e), "ordersAmount": n})
        };
        let requests: Vec<Value> = self
            .bids
            .iter()
            .take(BOOK_LEVELS)
            .map(|(&(Reverse(c), e), &n)| level(c, e, n))
            .collect();
        let proposals: Vec<Value> = self
            .asks
            .iter()
            .take(BOOK_LEVELS)
            .map(|(&(c, e), &n)| level(c, e, n))
            .collect();
        json!({"requests": requests, "proposals": proposals})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Cost, Millis};

    fn order(key: u64, side: Side, micros: u64, status: Status) -> OrderRecord {
        OrderRecord {
            key: Key(key),
            side,
            statement: Key(1),
            cost: Cost::from_micros(micros).unwrap(),
            eval_time: None,
            wait_period: None,
            sender: format!("U{key}"),
            created: Millis(1),
            updated: Millis(1),
            status,
            seq: key,
            input: None,
            canon: None,
            counterpart: None,
            matched_time: None,
            price: None,
            proof_key: None,
            held: 0,
            funded_at: None,
            failed: None,
        }
    }

    fn ev(n: u64, what: EventKind) -> Event {
        Event {
            id: format!("{n}-0"),
            n,
            at: Millis(n),
            what,
        }
    }

    type Levels = Vec<(u64, usize)>;

    fn levels(o: &Orders) -> (Levels, Levels) {
        (
            o.bids.iter().map(|(&(Reverse(c), _), &n)| (c, n)).collect(),
            o.asks.iter().map(|(&(c, _), &n)| (c, n)).collect(),
        )
    }

    #[test]
    fn depth_follows_the_log_and_replaying_it_twice_changes_nothing() {
        let log = vec![
            ev(
                1,
                EventKind::Placed(Box::new(order(1, Side::Request, 5, Status::Created))),
            ),
            ev(
                2,
                EventKind::Placed(Box::new(order(2, Side::Request, 5, Status::Created))),
            ),
            ev(
                3,
                EventKind::Placed(Box::new(order(3, Side::Proposal, 7, Status::Created))),
            ),
            ev(
                4,
                EventKind::Placed(Box::new(order(4, Side::Proposal, 4, Status::Created))),
            ),
            ev(
                5,
                EventKind::Matched {
                    request: Key(1),
                    proposal: Key(4),
                    price: 4,
                },
            ),
            ev(
                6,
                EventKind::Withdrawn {
                    side: Side::Request,
                    key: Key(2),
                },
            ),
            ev(
                7,
                EventKind::RolledBack {
                    request: Key(1),
                    proposal: Key(4),
                    cost: 3,
                },
            ),
        ];
        let mut o = Orders::default();
        for e in &log {
            o.apply(e);
        }
        assert_eq!(levels(&o), (vec![(3, 1)], vec![(7, 1)]));
        assert_eq!(o.get(Key(1)).unwrap().sender, "u1");
        assert!(o.get(Key(4)).is_none() && o.get(Key(2)).is_none());
        // A tracker started from a later read replays the log from an earlier point.
        let mut again = Orders::from_open(&[order(3, Side::Proposal, 7, Status::Created), {
            let mut r = order(1, Side::Request, 3, Status::Created);
            r.seq = 1;
            r
        }]);
        for e in &log[2..] {
            again.apply(e);
        }
        assert_eq!(levels(&again), levels(&o));
        let book = o.book();
        assert_eq!(book["requests"][0]["cost"], amount_json(3));
        assert_eq!(book["proposals"][0]["ordersAmount"], json!(1));
        assert_eq!(book["requests"][0]["eval_time"], Value::Null);
    }

    #[test]
    fn keys_named_before_being_seen_are_asked_for_once() {
        let o = Orders::from_open(&[order(1, Side::Request, 5, Status::Processing)]);
        let events = vec![
            ev(
                9,
                EventKind::Placed(Box::new(order(8, Side::Proposal, 5, Status::Created))),
            ),
            ev(
                10,
                EventKind::Proved {
                    proof: Key(99),
                    request: Key(1),
                    proposal: Key(2),
                },
            ),
            ev(
                11,
                EventKind::Withdrawn {
                    side: Side::Proposal,
                    key: Key(2),
                },
            ),
            ev(
                12,
                EventKind::Withdrawn {
                    side: Side::Proposal,
                    key: Key(8),
                },
            ),
        ];
        assert_eq!(o.unknown(&events), vec![Key(2)]);
    }
}

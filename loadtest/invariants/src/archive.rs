//! The archive (issue 11): a node copies each statement's history from Redis to
//! PostgreSQL and, once PostgreSQL has it, removes a *closed* order (completed,
//! withdrawn) from Redis after the retention. So "every acknowledged order is in the
//! store" means: in Redis, or else in PostgreSQL's `orders`. This module is the pure
//! part of that check (rows in, violations out); [`crate::pg_rows`] (feature `pg`)
//! reads PostgreSQL.
//!
//! Rules added to [`check`](crate::check()) (rule `archive` unless said):
//! - an order only in PostgreSQL joins the checked rows (marked
//!   [`OrderRow::archived`]: no index entry or locator is asked of it) and must be
//!   closed: open orders never leave Redis (settled markets only: under load an order
//!   placed and archived between the two reads may still be open in the copy);
//! - an order in both must agree on what never changes (side, statement, cost,
//!   `eval_time`, `seq`); two closed statuses must be the same one, with the same
//!   counterpart, price and proof; and (settled) PostgreSQL's status must be one that
//!   can lead to Redis' (the copy lags, never leads);
//! - `archive-cursor`: a statement's `archive_cursor.event_seq` (events applied to
//!   PostgreSQL) is at most its Redis `evseq` (events written). Read the cursors
//!   *before* the counters, as [`crate::pg_rows::read_all`] does, so that a live market
//!   cannot make this fail.
//!
//! The reads go Redis first, then PostgreSQL's orders: a closed order leaves Redis only
//! once PostgreSQL has it, so one removed between the two reads is still seen. A node
//! may remove an order *while* Redis is read (the archiver runs on); an order caught
//! half-removed (its index entry or locator gone, the hash still read) that PostgreSQL
//! holds closed with the same status is checked as archived, and
//! [`crate::pg_rows::read_all`] drops a `missing-hash` row whose index entry is gone by
//! the time it looks again.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::check::{check, may_follow, Checked, Violation};
use crate::order::{AckedOrder, Observation, OrderRow};

/// How far PostgreSQL has applied one statement's event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cursor {
    /// Statement.
    pub statement: u64,
    /// `archive_cursor.event_seq`: the last event applied.
    pub event_seq: u64,
}

/// What the archive holds, and Redis' event counters to compare its cursors with.
#[derive(Debug, Clone, Default)]
pub struct Archive {
    /// Every row of PostgreSQL's `orders` (marked `archived`).
    pub orders: Vec<OrderRow>,
    /// Every row of `archive_cursor`.
    pub cursors: Vec<Cursor>,
    /// Redis `<prefix>:{stmt:S}:evseq` of the cursors' statements (`None`: no key).
    pub evseq: HashMap<u64, Option<u64>>,
}

fn closed(status: &str) -> bool {
    matches!(status, "completed" | "withdrawn")
}

/// Merges the archived rows into Redis' rows: returns every row (Redis' as they are,
/// then the archived orders Redis no longer holds, sorted by key), the number of orders
/// found in both, and what disagrees.
pub fn merge(
    redis: Vec<OrderRow>,
    archived: Vec<OrderRow>,
    settled: bool,
) -> (Vec<OrderRow>, usize, Vec<Violation>) {
    let mut v = Vec::new();
    let mut both = 0;
    let mut rows = redis;
    let closed_in_pg: HashMap<u64, &str> = archived
        .iter()
        .filter(|a| closed(&a.status))
        .map(|a| (a.key, a.status.as_str()))
        .collect();
    for r in rows.iter_mut() {
        let removing = r.indexed_as.is_empty() || r.located_in.is_none();
        if removing && closed_in_pg.get(&r.key) == Some(&r.status.as_str()) {
            r.archived = true;
        }
    }
    // Redis rows by key ("missing-hash" rows are not orders Redis holds).
    let held: HashMap<u64, usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.kind != "missing-hash")
        .map(|(i, r)| (r.key, i))
        .collect();
    let mut seen = HashSet::new();
    let mut extra = Vec::new();
    for mut a in archived {
        a.archived = true;
        if !seen.insert(a.key) {
            v.push(Violation {
                rule: "archive",
                keys: vec![a.key],
                detail: format!("order {} is in PostgreSQL more than once", a.key),
            });
            continue;
        }
        match held.get(&a.key) {
            Some(&i) => {
                both += 1;
                compare(&rows[i], &a, settled, &mut v);
            }
            None => {
                if settled && !closed(&a.status) {
                    v.push(Violation {
                        rule: "archive",
                        keys: vec![a.key],
                        detail: format!(
                            "{} {} is {} in PostgreSQL but not in Redis: open orders never leave Redis",
                            a.kind, a.key, a.status
                        ),
                    });
                }
                extra.push(a);
            }
        }
    }
    // A "missing-hash" row for a key the archive holds: the order was removed from
    // Redis but an index entry was left behind. Still an `index` violation (kept).
    rows.extend(extra);
    rows.sort_by_key(|r| r.key);
    (rows, both, v)
}

/// One order in both Redis (`r`) and PostgreSQL (`a`).
fn compare(r: &OrderRow, a: &OrderRow, settled: bool, v: &mut Vec<Violation>) {
    let mut bad = |detail: String| {
        v.push(Violation {
            rule: "archive",
            keys: vec![r.key],
            detail,
        })
    };
    if r.kind != a.kind
        || r.statement != a.statement
        || r.cost != a.cost
        || r.eval_time != a.eval_time
        || r.seq != a.seq
    {
        bad(format!(
            "Redis has {} of statement {} cost {:?} eval_time {:?} seq {:?}, PostgreSQL {} of statement {} cost {:?} eval_time {:?} seq {:?}",
            r.kind, r.statement, r.cost, r.eval_time, r.seq, a.kind, a.statement, a.cost, a.eval_time, a.seq
        ));
    }
    if closed(&r.status) && closed(&a.status) {
        if r.status != a.status {
            bad(format!(
                "closed as {} in Redis but {} in PostgreSQL",
                r.status, a.status
            ));
        } else if (r.counterpart, r.price, r.proof_key) != (a.counterpart, a.price, a.proof_key) {
            bad(format!(
                "{} in both, but Redis has counterpart {:?} price {:?} proof {:?}, PostgreSQL {:?} {:?} {:?}",
                r.status, r.counterpart, r.price, r.proof_key, a.counterpart, a.price, a.proof_key
            ));
        }
    } else if settled && !may_follow(&a.status, &r.status) {
        bad(format!(
            "{} in PostgreSQL cannot lead to {} in Redis",
            a.status, r.status
        ));
    }
}

/// `archive-cursor`: each statement's applied event number is at most the number of
/// events Redis has written for it.
pub fn check_cursors(cursors: &[Cursor], evseq: &HashMap<u64, Option<u64>>) -> Vec<Violation> {
    let mut v = Vec::new();
    for c in cursors {
        let written = evseq.get(&c.statement).copied().flatten();
        if c.event_seq > written.unwrap_or(0) {
            v.push(Violation {
                rule: "archive-cursor",
                keys: vec![c.statement],
                detail: format!(
                    "statement {}: PostgreSQL applied event {}, Redis evseq is {}",
                    c.statement,
                    c.event_seq,
                    written.map_or("absent".into(), |n| n.to_string())
                ),
            });
        }
    }
    v
}

/// [`check`](crate::check()) over Redis' rows and the archive together: every rule of
/// the checker over the merged rows, plus this module's.
pub fn check_with_archive(
    redis: Vec<OrderRow>,
    archive: Archive,
    acked: &[AckedOrder],
    observed: &[Observation],
    settled: bool,
) -> Checked {
    let (rows, both, mut v) = merge(redis, archive.orders, settled);
    v.extend(check_cursors(&archive.cursors, &archive.evseq));
    let mut c = check(&rows, acked, observed, settled);
    c.in_both = both;
    c.cursors = archive.cursors.len();
    c.violations.extend(v);
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::Kind;

    fn row(key: u64, kind: &str, status: &str) -> OrderRow {
        OrderRow {
            key,
            statement: 1,
            kind: kind.into(),
            status: status.into(),
            cost: Some(5),
            seq: Some(key),
            indexed_as: vec![format!("{kind}:{status}")],
            located_in: Some(1),
            ..OrderRow::default()
        }
    }

    fn pg(key: u64, kind: &str, status: &str) -> OrderRow {
        OrderRow {
            indexed_as: Vec::new(),
            located_in: None,
            ..row(key, kind, status)
        }
    }

    fn ack(key: u64) -> AckedOrder {
        AckedOrder {
            key,
            kind: Kind::Request,
            statement: 1,
            cost: 5,
            status: "created".into(),
            counterpart: None,
            price: None,
        }
    }

    fn rules(c: &Checked) -> Vec<&'static str> {
        c.violations.iter().map(|v| v.rule).collect()
    }

    #[test]
    fn an_order_removed_from_redis_is_found_in_the_archive() {
        let redis = vec![row(1, "request", "created")];
        let archive = Archive {
            orders: vec![pg(1, "request", "created"), pg(2, "request", "withdrawn")],
            cursors: vec![Cursor {
                statement: 1,
                event_seq: 7,
            }],
            evseq: [(1, Some(9))].into(),
        };
        let c = check_with_archive(redis, archive, &[ack(1), ack(2)], &[], true);
        assert!(c.violations.is_empty(), "{:?}", c.violations);
        assert_eq!((c.orders, c.archived, c.in_both, c.cursors), (2, 1, 1, 1));
        // In neither: still lost.
        let c = check_with_archive(Vec::new(), Archive::default(), &[ack(3)], &[], true);
        assert_eq!(rules(&c), vec!["lost"]);
    }

    #[test]
    fn conflicts_between_redis_and_the_archive_are_found() {
        let redis = vec![
            row(1, "request", "withdrawn"),
            row(2, "request", "created"),
            row(3, "request", "created"),
            row(4, "proposal", "created"),
        ];
        let mut moved = pg(4, "proposal", "created");
        moved.statement = 2;
        let archive = Archive {
            orders: vec![
                pg(1, "request", "completed"), // two closed statuses
                pg(2, "request", "withdrawn"), // closed in the copy, open in Redis
                pg(3, "request", "created"),   // fine: the copy lags
                moved,                         // another statement
                pg(5, "request", "created"),   // open, only in the copy
            ],
            ..Archive::default()
        };
        let c = check_with_archive(redis.clone(), archive.clone(), &[], &[], true);
        let keys: Vec<u64> = c
            .violations
            .iter()
            .filter(|v| v.rule == "archive")
            .map(|v| v.keys[0])
            .collect();
        assert_eq!(keys, vec![1, 2, 4, 5], "{:?}", c.violations);
        // Under load only what cannot be a race is reported.
        let c = check_with_archive(redis, archive, &[], &[], false);
        let keys: Vec<u64> = c.violations.iter().map(|v| v.keys[0]).collect();
        assert_eq!(keys, vec![1, 4], "{:?}", c.violations);
    }

    #[test]
    fn an_order_caught_while_leaving_redis_is_checked_as_archived() {
        let mut leaving = row(1, "request", "withdrawn");
        leaving.located_in = None; // the locator went first
        let mut unindexed = row(2, "request", "withdrawn");
        unindexed.indexed_as.clear();
        let mut lost_loc = row(3, "request", "withdrawn");
        lost_loc.located_in = None; // not archived: still a violation
        let archive = Archive {
            orders: vec![pg(1, "request", "withdrawn"), pg(2, "request", "withdrawn")],
            ..Archive::default()
        };
        let c = check_with_archive(
            vec![leaving, unindexed, lost_loc],
            archive,
            &[ack(1), ack(2), ack(3)],
            &[],
            true,
        );
        assert_eq!(rules(&c), vec!["lost"], "{:?}", c.violations);
        assert_eq!(c.violations[0].keys, vec![3]);
        assert_eq!(c.in_both, 2);
    }

    #[test]
    fn the_cursor_may_not_pass_the_event_counter() {
        let cursors = [
            Cursor {
                statement: 1,
                event_seq: 5,
            },
            Cursor {
                statement: 2,
                event_seq: 6,
            },
            Cursor {
                statement: 3,
                event_seq: 1,
            },
            Cursor {
                statement: 4,
                event_seq: 0,
            },
        ];
        let evseq = [(1, Some(5)), (2, Some(5)), (3, None), (4, None)].into();
        let v = check_cursors(&cursors, &evseq);
        let keys: Vec<u64> = v.iter().map(|v| v.keys[0]).collect();
        assert_eq!(keys, vec![2, 3]);
    }
}

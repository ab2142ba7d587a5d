//! The checker: pure, rows in, [`Checked`] out. The rows come from
//! [`crate::redis_rows`] or from tests; what the client was told comes as
//! [`AckedOrder`]s and [`Observation`]s.
//!
//! Rules checked (each violation names the keys involved):
//! - `lost`: an acknowledged order is missing, or lost its locator (an order read from
//!   the archive, [`OrderRow::archived`], may have no locator and no index entry).
//! - `changed`: an acknowledged order's side, statement or cost differs in the store.
//! - `bad-status`: a status outside created/processing/completed/withdrawn.
//! - `index`: the order is not in exactly the index set of its kind and status.
//! - `backwards`: a status the harness saw cannot lead to the stored one.
//! - `ack-match`: a match the harness was told about is not the stored one.
//! - `link`: a counterpart that is missing, of the same side, of another statement, or
//!   that does not link back; `unlinked`: a status that needs (or forbids) a link.
//! - `double-match`: an order named as counterpart by two orders.
//! - `pair-status`: the two orders of a match disagree on status or proof.
//! - `price-rule` / `time-rule`: proposal cost above request cost; `eval_time` rule.
//! - `price`: the two records of a match disagree on the price, or the price is not the
//!   resting order's cost. The resting order is the one with the lower `seq` (its
//!   arrival number in the statement's matcher); a pair without two distinct `seq`s is a
//!   violation too, since the rule cannot be checked.
//! - `crossed-book`: (only when the market is settled) an open request and an open
//!   proposal of one statement that could still match: of different senders (a user's
//!   request never takes its own proposal) and, when the rows hold money, with the
//!   request's escrow covering the price and the proposal's collateral covering
//!   `PROOF_MARKET_COLLATERAL_FACTOR` (10 unless set) times it.
//!
//! The archive's own rules (Redis against PostgreSQL) are in [`crate::archive`].

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::order::{AckedOrder, Kind, Observation, OrderRow};

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    /// Which rule.
    pub rule: &'static str,
    /// Keys involved.
    pub keys: Vec<u64>,
    /// What was found.
    pub detail: String,
}

/// Result of a check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Checked {
    /// Orders in the store (Redis, plus the archived ones Redis no longer holds).
    pub orders: usize,
    /// Of those, orders only in the archive (PostgreSQL), removed from Redis.
    pub archived: usize,
    /// Orders in both Redis and the archive, compared.
    pub in_both: usize,
    /// Statements whose archive cursor was compared with Redis' event counter.
    pub cursors: usize,
    /// Acknowledged orders checked.
    pub acked: usize,
    /// Observations checked.
    pub observed: usize,
    /// Matches (request side) found.
    pub matches: usize,
    /// Orders per status.
    pub by_status: BTreeMap<String, usize>,
    /// Everything broken.
    pub violations: Vec<Violation>,
}

const STATUSES: [&str; 4] = ["created", "processing", "completed", "withdrawn"];

/// Can an order seen in `seen` be in `now` later? (created → processing → completed;
/// created → withdrawn.)
pub fn may_follow(seen: &str, now: &str) -> bool {
    match seen {
        "created" => STATUSES.contains(&now),
        "processing" => now == "processing" || now == "completed",
        "completed" => now == "completed",
        "withdrawn" => now == "withdrawn",
        _ => false,
    }
}

/// Checks everything. `settled`: no call was in flight when the rows were read, so the
/// open orders must not cross.
pub fn check(
    rows: &[OrderRow],
    acked: &[AckedOrder],
    observed: &[Observation],
    settled: bool,
) -> Checked {
    let by_key: HashMap<u64, &OrderRow> = rows.iter().map(|r| (r.key, r)).collect();
    let mut out = Checked {
        orders: rows.len(),
        archived: rows.iter().filter(|r| r.archived).count(),
        acked: acked.len(),
        observed: observed.len(),
        ..Checked::default()
    };
    let mut v = Vec::new();
    let mut bad = |rule: &'static str, keys: Vec<u64>, detail: String| {
        v.push(Violation { rule, keys, detail })
    };

    // What the harness was told.
    for a in acked {
        let Some(r) = by_key.get(&a.key) else {
            bad(
                "lost",
                vec![a.key],
                format!(
                    "acknowledged {} {} ({}) is not in the store",
                    a.kind.as_str(),
                    a.key,
                    a.status
                ),
            );
            continue;
        };
        // An archived order left Redis with its index entries; its locator may be gone
        // too, but must not point elsewhere.
        let located = r.located_in == Some(a.statement) || (r.archived && r.located_in.is_none());
        if !located {
            bad(
                "lost",
                vec![a.key],
                format!(
                    "locator of {} points to {:?}, not statement {}",
                    a.key, r.located_in, a.statement
                ),
            );
        }
        if r.side() != Some(a.kind) || r.statement != a.statement || r.cost != Some(a.cost) {
            bad("changed", vec![a.key], format!(
                "acknowledged as {} of statement {} at cost {}, stored as {:?} of statement {} at cost {:?}",
                a.kind.as_str(), a.statement, a.cost, r.kind, r.statement, r.cost));
        }
        if !may_follow(&a.status, &r.status) {
            bad(
                "backwards",
                vec![a.key],
                format!("acknowledged {}, stored {}", a.status, r.status),
            );
        }
        if let Some(c) = a.counterpart {
            if r.counterpart != Some(c) {
                bad(
                    "ack-match",
                    vec![a.key, c],
                    format!(
                        "answer said matched with {c}, store says {:?}",
                        r.counterpart
                    ),
                );
            }
            if a.price.is_some() && r.price != a.price {
                bad(
                    "ack-match",
                    vec![a.key, c],
                    format!("answer said price {:?}, store says {:?}", a.price, r.price),
                );
            }
            // Which order rested is not inferred from the answer (an answer replayed for
            // an Idempotency-Key shows a match the order may have made while resting):
            // the pair's `seq`s decide it below.
        }
    }
    for o in observed {
        if let Some(r) = by_key.get(&o.key) {
            if !may_follow(&o.status, &r.status) {
                bad(
                    "backwards",
                    vec![o.key],
                    format!("read as {}, stored {}", o.status, r.status),
                );
            }
        }
    }

    // What the store holds.
    let mut named_by: HashMap<u64, u64> = HashMap::new();
    for r in rows {
        *out.by_status.entry(r.status.clone()).or_default() += 1;
        if !STATUSES.contains(&r.status.as_str()) {
            bad("bad-status", vec![r.key], format!("status {:?}", r.status));
        }
        let Some(side) = r.side() else {
            bad("bad-status", vec![r.key], format!("kind {:?}", r.kind));
            continue;
        };
        let want = format!("{}:{}", r.kind, r.status);
        if !r.archived && (r.indexed_as.len() != 1 || r.indexed_as[0] != want) {
            bad(
                "index",
                vec![r.key],
                format!("is {want} but indexed as {:?}", r.indexed_as),
            );
        }
        match (r.status.as_str(), r.counterpart) {
            ("processing", None) => bad(
                "unlinked",
                vec![r.key],
                "processing without a counterpart".into(),
            ),
            ("completed", None) if r.proof_key.is_none() => bad(
                "unlinked",
                vec![r.key],
                "completed without counterpart or proof".into(),
            ),
            ("created" | "withdrawn", Some(c)) => bad(
                "unlinked",
                vec![r.key, c],
                format!("{} but linked to {c}", r.status),
            ),
            _ => {}
        }
        let Some(c) = r.counterpart else { continue };
        if let Some(prev) = named_by.insert(c, r.key) {
            bad(
                "double-match",
                vec![c, prev, r.key],
                format!("{c} is the counterpart of both {prev} and {}", r.key),
            );
        }
        let Some(o) = by_key.get(&c) else {
            bad(
                "link",
                vec![r.key, c],
                format!("counterpart {c} does not exist"),
            );
            continue;
        };
        if o.side() != Some(side.other()) || o.statement != r.statement {
            bad(
                "link",
                vec![r.key, c],
                format!("counterpart is a {} of statement {}", o.kind, o.statement),
            );
            continue;
        }
        if o.counterpart != Some(r.key) {
            bad(
                "link",
                vec![r.key, c],
                format!("{c} links to {:?}, not back to {}", o.counterpart, r.key),
            );
            continue;
        }
        if side != Kind::Request {
            continue; // each pair once, from its request
        }
        out.matches += 1;
        if o.status != r.status || o.proof_key != r.proof_key {
            bad(
                "pair-status",
                vec![r.key, c],
                format!(
                    "request {} ({:?}) / proposal {} ({:?})",
                    r.status, r.proof_key, o.status, o.proof_key
                ),
            );
        }
        let (rc, pc) = (r.cost.unwrap_or(0), o.cost.unwrap_or(u64::MAX));
        if pc > rc {
            bad(
                "price-rule",
                vec![r.key, c],
                format!("proposal cost {pc} > request cost {rc}"),
            );
        }
        if let Some(limit) = r.eval_time {
            match o.eval_time {
                Some(t) if t <= limit => {}
                t => bad(
                    "time-rule",
                    vec![r.key, c],
                    format!("request eval_time {limit}, proposal {t:?}"),
                ),
            }
        }
        if r.price != o.price {
            bad(
                "price",
                vec![r.key, c],
                format!("request price {:?}, proposal price {:?}", r.price, o.price),
            );
        } else if let Some(p) = r.price {
            match resting(r, o) {
                Ok(rest) if rest.cost == Some(p) => {}
                Ok(rest) => bad(
                    "price",
                    vec![r.key, c],
                    format!(
                        "price {p} is not the resting {} {}'s cost {:?} (seq {:?}, the incoming {} has {:?})",
                        rest.kind,
                        rest.key,
                        rest.cost,
                        rest.seq,
                        if rest.key == r.key { c } else { r.key },
                        if rest.key == r.key { o.seq } else { r.seq },
                    ),
                ),
                Err(why) => bad("price", vec![r.key, c], why),
            }
        } else {
            bad("price", vec![r.key, c], "matched without a price".into());
        }
    }
    if settled {
        crossed_book(rows, &mut bad);
    }
    out.violations = v;
    out
}

/// The order of a matched pair that was resting when the other arrived: the one with
/// the lower `seq`. An error says why it cannot be told.
fn resting<'a>(a: &'a OrderRow, b: &'a OrderRow) -> Result<&'a OrderRow, String> {
    match (a.seq, b.seq) {
        (Some(x), Some(y)) if x < y => Ok(a),
        (Some(x), Some(y)) if y < x => Ok(b),
        (x, y) => Err(format!(
            "cannot tell which of {} and {} rested: seq {x:?} and {y:?}",
            a.key, b.key
        )),
    }
}

/// Finds open requests that some open proposal of the same statement could serve.
fn crossed_book(rows: &[OrderRow], bad: &mut impl FnMut(&'static str, Vec<u64>, String)) {
    let factor: u128 = std::env::var("PROOF_MARKET_COLLATERAL_FACTOR")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let mut by_stmt: BTreeMap<u64, (Vec<&OrderRow>, Vec<&OrderRow>)> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.status == "created") {
        let e = by_stmt.entry(r.statement).or_default();
        match r.side() {
            Some(Kind::Request) => e.0.push(r),
            Some(Kind::Proposal) => e.1.push(r),
            None => {}
        }
    }
    let mut reported = 0;
    for (stmt, (reqs, mut props)) in by_stmt {
        props.sort_by_key(|p| (p.cost.unwrap_or(u64::MAX), p.eval_time.unwrap_or(u32::MAX)));
        for r in reqs {
            let rc = r.cost.unwrap_or(0);
            // The cheapest eligible proposal this request could trade with.
            let found = props
                .iter()
                .take_while(|p| p.cost.unwrap_or(u64::MAX) <= rc)
                .find(|p| {
                    let time_ok = match r.eval_time {
                        None => true,
                        Some(l) => p.eval_time.is_some_and(|t| t <= l),
                    };
                    let other = match (&r.sender, &p.sender) {
                        (Some(a), Some(b)) => a != b,
                        _ => true,
                    };
                    // The resting order (the earlier one) sets the price.
                    let price = if p.seq < r.seq { p.cost } else { r.cost }.unwrap_or(0) as u128;
                    let funded = match (r.held, p.held) {
                        (Some(rh), Some(ph)) => rh >= price && ph >= factor * price,
                        _ => true,
                    };
                    time_ok && other && funded
                });
            if let Some(p) = found {
                if reported < 1000 {
                    reported += 1;
                    bad("crossed-book", vec![r.key, p.key], format!(
                        "statement {stmt}: open request {} (cost {rc}, eval {:?}) and open proposal {} (cost {:?}) could match",
                        r.key, r.eval_time, p.key, p.cost));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

//! The market's invariants checked on what a test's Redis holds, by the same checker
//! the load test uses (`market-invariants`, in `loadtest/invariants/`): the order rows
//! are read straight from the backend (one Redis or a cluster) under the test's key
//! prefix, so the check sees each order's arrival number (`seq`) and can hold every
//! match to "the trade price is the resting order's cost", which the HTTP view cannot
//! tell.

use market_invariants::redis_rows::{self, ClusterSource};
use market_invariants::{check, AckedOrder, Checked, Kind, OrderRow};
use serde_json::Value;

use super::backend::Backend;

/// Every order under the backend's prefix, plus the acknowledged ones wherever they are.
pub fn read_rows(b: &Backend, acked: &[AckedOrder]) -> Vec<OrderRow> {
    let rows = if b.url.contains(',') {
        let seeds: Vec<&str> = b.url.split(',').collect();
        let mut con = ClusterSource::connect(&seeds).expect("connecting to the cluster");
        redis_rows::read_orders(&mut con, &b.prefix, acked)
    } else {
        let mut con = redis::Client::open(b.url.as_str())
            .and_then(|c| c.get_connection())
            .expect("connecting to Redis");
        redis_rows::read_orders(&mut con, &b.prefix, acked)
    };
    rows.expect("reading the orders from Redis")
}

/// Checks every invariant over what `b` holds and what the market acknowledged, with no
/// call in flight (so no two open orders may cross either), and fails the test listing
/// every violation. Returns the check (orders, matches) for the test's own assertions.
pub fn assert_invariants(b: &Backend, acked: &[AckedOrder]) -> Checked {
    let rows = read_rows(b, acked);
    let c = check(&rows, acked, &[], true);
    let listed: Vec<String> = c
        .violations
        .iter()
        .map(|v| format!("  {}: keys {:?}: {}", v.rule, v.keys, v.detail))
        .collect();
    assert!(
        c.violations.is_empty(),
        "{} invariant violation(s) over {} orders:\n{}",
        c.violations.len(),
        c.orders,
        listed.join("\n")
    );
    c
}

/// A cost or price of the JSON API (units, a number) in micro-units, as Redis stores it.
fn micros(v: &Value) -> Option<u64> {
    v.as_f64().map(|x| (x * 1e6).round() as u64)
}

fn key(v: &Value) -> Option<u64> {
    v.as_str()?.parse().ok()
}

/// The order a 200 answer to a placement describes, as the checker takes it.
pub fn acked(answer: &Value) -> AckedOrder {
    let kind = answer["_id"]
        .as_str()
        .and_then(|id| id.split('/').next())
        .and_then(Kind::parse)
        .unwrap_or_else(|| panic!("an order answer without a kind: {answer}"));
    let counterpart = match kind {
        Kind::Request => &answer["proposal_key"],
        Kind::Proposal => &answer["request_key"],
    };
    AckedOrder {
        key: key(&answer["_key"]).unwrap_or_else(|| panic!("no _key: {answer}")),
        kind,
        statement: key(&answer["statement_key"])
            .unwrap_or_else(|| panic!("no statement_key: {answer}")),
        cost: micros(&answer["cost"]).unwrap_or_else(|| panic!("no cost: {answer}")),
        status: answer["status"].as_str().unwrap_or_default().to_owned(),
        counterpart: key(counterpart),
        price: micros(&answer["price"]),
    }
}

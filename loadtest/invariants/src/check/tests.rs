//! Unit tests of the checker on hand-made rows.

use super::*;

fn row(key: u64, kind: &str, status: &str, cost: u64) -> OrderRow {
    OrderRow {
        key,
        statement: 1,
        kind: kind.into(),
        status: status.into(),
        cost: Some(cost),
        seq: Some(key),
        indexed_as: vec![format!("{kind}:{status}")],
        located_in: Some(1),
        ..OrderRow::default()
    }
}

/// A matched pair in which the proposal rested (seq 10) and the request came in
/// (seq 20), so the fair price is the proposal's cost `pc`.
fn matched(r: u64, p: u64, rc: u64, pc: u64, price: u64) -> Vec<OrderRow> {
    let mut a = row(r, "request", "processing", rc);
    let mut b = row(p, "proposal", "processing", pc);
    a.seq = Some(20);
    b.seq = Some(10);
    a.counterpart = Some(p);
    b.counterpart = Some(r);
    a.price = Some(price);
    b.price = Some(price);
    vec![a, b]
}

fn rules(c: &Checked) -> Vec<&'static str> {
    c.violations.iter().map(|v| v.rule).collect()
}

#[test]
fn a_clean_market_passes() {
    let mut rows = matched(1, 2, 5, 3, 3);
    rows.push(row(3, "request", "created", 1));
    rows.push(row(4, "proposal", "created", 2));
    rows.push(row(5, "request", "withdrawn", 9));
    let acked = vec![AckedOrder {
        key: 1,
        kind: Kind::Request,
        statement: 1,
        cost: 5,
        status: "processing".into(),
        counterpart: Some(2),
        price: Some(3),
    }];
    let obs = vec![Observation {
        key: 5,
        status: "created".into(),
    }];
    let c = check(&rows, &acked, &obs, true);
    assert!(c.violations.is_empty(), "{:?}", c.violations);
    assert_eq!(c.matches, 1);
    assert_eq!(c.by_status["created"], 2);
}

#[test]
fn lost_and_changed_acks_are_found() {
    let rows = vec![row(1, "request", "created", 5)];
    let ack = |key, cost| AckedOrder {
        key,
        kind: Kind::Request,
        statement: 1,
        cost,
        status: "created".into(),
        counterpart: None,
        price: None,
    };
    let c = check(&rows, &[ack(1, 6), ack(9, 1)], &[], false);
    assert_eq!(rules(&c), vec!["changed", "lost"]);
    assert_eq!(c.violations[1].keys, vec![9]);
}

#[test]
fn double_match_and_asymmetric_links_are_found() {
    let mut rows = matched(1, 2, 5, 3, 3);
    let mut other = row(3, "request", "processing", 5);
    other.counterpart = Some(2);
    other.price = Some(3);
    rows.push(other);
    let c = check(&rows, &[], &[], false);
    let r = rules(&c);
    assert!(r.contains(&"double-match"), "{r:?}");
    assert!(r.contains(&"link"), "{r:?}");
    let dm = c
        .violations
        .iter()
        .find(|v| v.rule == "double-match")
        .unwrap();
    assert_eq!(dm.keys, vec![2, 1, 3]);
}

#[test]
fn price_and_time_rules_are_checked() {
    let c = check(&matched(1, 2, 3, 5, 5), &[], &[], false);
    assert_eq!(rules(&c), vec!["price-rule"]);
    let c = check(&matched(1, 2, 5, 3, 4), &[], &[], false);
    assert_eq!(rules(&c), vec!["price"]);
    let mut rows = matched(1, 2, 5, 3, 3);
    rows[0].eval_time = Some(30);
    rows[1].eval_time = Some(60);
    assert_eq!(rules(&check(&rows, &[], &[], false)), vec!["time-rule"]);
    rows[1].eval_time = None;
    assert_eq!(rules(&check(&rows, &[], &[], false)), vec!["time-rule"]);
    rows[1].eval_time = Some(30);
    assert!(check(&rows, &[], &[], false).violations.is_empty());
    // The answer disagrees with the store, and the stored price (5) is the incoming
    // request's cost, not the resting proposal's (3).
    let ack = AckedOrder {
        key: 1,
        kind: Kind::Request,
        statement: 1,
        cost: 5,
        status: "processing".into(),
        counterpart: Some(2),
        price: Some(3),
    };
    let c = check(&matched(1, 2, 5, 3, 5), &[ack], &[], false);
    assert_eq!(rules(&c), vec!["ack-match", "price"]);
}

#[test]
fn the_price_is_the_resting_orders_cost_not_the_incoming_ones() {
    // The proposal rested: its cost (3) is the price; the request's (5) is not,
    // though it is one of the two costs.
    assert!(check(&matched(1, 2, 5, 3, 3), &[], &[], false)
        .violations
        .is_empty());
    let c = check(&matched(1, 2, 5, 3, 5), &[], &[], false);
    assert_eq!(rules(&c), vec!["price"]);
    assert_eq!(c.violations[0].keys, vec![1, 2]);
    assert!(
        c.violations[0].detail.contains("resting proposal 2"),
        "{c:?}"
    );
    // The request rested: now 5 is right and 3 is wrong.
    let flip = |mut rows: Vec<OrderRow>| {
        rows[0].seq = Some(10);
        rows[1].seq = Some(20);
        rows
    };
    assert!(check(&flip(matched(1, 2, 5, 3, 5)), &[], &[], false)
        .violations
        .is_empty());
    let c = check(&flip(matched(1, 2, 5, 3, 3)), &[], &[], false);
    assert_eq!(rules(&c), vec!["price"]);
    assert!(
        c.violations[0].detail.contains("resting request 1"),
        "{c:?}"
    );
    // Seq is what decides, not the keys: a resting order may have the higher key.
    let mut rows = matched(7, 2, 5, 3, 3);
    rows[0].seq = Some(1);
    rows[1].seq = Some(2);
    assert_eq!(rules(&check(&rows, &[], &[], false)), vec!["price"]);
}

#[test]
fn a_pair_without_two_distinct_seqs_cannot_pass_the_price_rule() {
    let mut rows = matched(1, 2, 5, 3, 3);
    rows[0].seq = None;
    let c = check(&rows, &[], &[], false);
    assert_eq!(rules(&c), vec!["price"]);
    assert!(c.violations[0].detail.contains("cannot tell"), "{c:?}");
    rows[0].seq = rows[1].seq;
    assert_eq!(rules(&check(&rows, &[], &[], false)), vec!["price"]);
}

#[test]
fn statuses_links_and_indexes_are_checked() {
    let mut rows = vec![
        row(1, "request", "processing", 5),
        row(2, "proposal", "bogus", 1),
    ];
    rows.push(row(3, "proposal", "created", 1));
    rows[2].indexed_as = vec![];
    let c = check(
        &rows,
        &[],
        &[Observation {
            key: 1,
            status: "completed".into(),
        }],
        false,
    );
    let r = rules(&c);
    for want in ["backwards", "bad-status", "index", "unlinked"] {
        assert!(r.contains(&want), "{want} missing from {r:?}");
    }
    assert!(may_follow("created", "withdrawn"));
    assert!(!may_follow("withdrawn", "created"));
    assert!(!may_follow("processing", "withdrawn"));
}

#[test]
fn crossed_book_respects_eval_time() {
    let mut r = row(1, "request", "created", 5);
    r.eval_time = Some(30);
    let mut slow = row(2, "proposal", "created", 4);
    slow.eval_time = Some(60);
    let untimed = row(3, "proposal", "created", 1);
    let rows = vec![r.clone(), slow.clone(), untimed.clone()];
    assert!(check(&rows, &[], &[], true).violations.is_empty());
    let mut fast = row(4, "proposal", "created", 5);
    fast.eval_time = Some(30);
    let rows = vec![r, slow, untimed, fast];
    let c = check(&rows, &[], &[], true);
    assert_eq!(rules(&c), vec!["crossed-book"]);
    assert_eq!(c.violations[0].keys, vec![1, 4]);
    // Unsettled markets are not checked for crossing.
    assert!(check(&rows, &[], &[], false).violations.is_empty());
}

//! `Idempotency-Key` on order placement: the same key from the same user for the same
//! statement and side places one order however often it is sent (through any node, and
//! across a restart of the node); bad keys are refused and change nothing.

mod common;

use common::*;
use serde_json::{json, Value};

fn request(stmt: &str, cost: u64) -> Value {
    json!({"statement_key": stmt, "cost": cost, "input": [{"field": 3}, {"field": 4}]})
}

fn proposal(stmt: &str, cost: u64) -> Value {
    json!({"statement_key": stmt, "cost": cost})
}

async fn keyed(api: &Api, kind: &str, body: &Value, key: &str) -> Value {
    let (s, v) = api
        .post_keyed(&format!("{ROOT}/{kind}/"), body, key.as_bytes())
        .await;
    assert_eq!(s, 200, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn a_keyed_order_is_placed_once_however_often_it_is_sent() {
    let backend = Backend::new();
    let mut server = Server::start(&backend).await;
    let alice = server.api().user("idem-alice").await;
    let bob = server.api().user("idem-bob").await;
    let stmt = push_statement(&alice).await;

    let first = keyed(&alice, "request", &request(&stmt, 5), "order-1").await;
    let key = first["_key"].clone();
    // Resent, even with another body: the key names that order.
    for body in [request(&stmt, 5), request(&stmt, 9)] {
        let again = keyed(&alice, "request", &body, "order-1").await;
        assert_eq!(again["_key"], key, "{again}");
        assert_eq!(again["cost"], first["cost"], "{again}");
    }
    // The same key names another order for another user, or on the other side.
    let bobs = keyed(&bob, "request", &request(&stmt, 5), "order-1").await;
    assert_ne!(bobs["_key"], key);
    let ask = keyed(&alice, "proposal", &proposal(&stmt, 100), "order-1").await;
    assert_ne!(ask["_key"], key);
    // Unkeyed calls are placed each time.
    for _ in 0..2 {
        let (s, v) = alice
            .post(&format!("{ROOT}/request/"), &request(&stmt, 1))
            .await;
        assert_eq!(s, 200, "{v}");
    }
    assert_eq!(all_orders(&alice, "request", &stmt).await.len(), 4);

    // Bad keys: 400, nothing placed.
    let long = "k".repeat(129);
    for bad in [&b""[..], b"two words", b"caf\xc3\xa9", long.as_bytes()] {
        let (s, v) = alice
            .post_keyed(&format!("{ROOT}/request/"), &request(&stmt, 5), bad)
            .await;
        assert_eq!(s, 400, "{bad:?}: {v}");
        assert!(
            v["errorMessage"]
                .as_str()
                .unwrap()
                .contains("Idempotency-Key"),
            "{v}"
        );
    }
    assert_eq!(all_orders(&alice, "request", &stmt).await.len(), 4);

    // Matched meanwhile: a resend answers the order as it is now, and places nothing.
    let bid = keyed(&alice, "request", &request(&stmt, 20), "order-2").await;
    let carol = server.api().user("idem-carol").await;
    let (s, p) = carol
        .post(&format!("{ROOT}/proposal/"), &proposal(&stmt, 15))
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["request_key"], bid["_key"], "{p}");
    let again = keyed(&alice, "request", &request(&stmt, 20), "order-2").await;
    assert_eq!(again["_key"], bid["_key"]);
    assert_eq!(again["status"], "processing", "{again}");

    // Keys are kept in Redis: a node started again after kill -9 still knows them.
    server.restart().await;
    let alice = alice.at(&server.url);
    let again = keyed(&alice, "request", &request(&stmt, 5), "order-1").await;
    assert_eq!(again["_key"], key);
    assert_eq!(all_orders(&alice, "request", &stmt).await.len(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_keyed_order_sent_through_other_nodes_is_placed_once() {
    let backend = Backend::new();
    let a = Server::start(&backend).await;
    let b = Server::start(&backend).await;
    let user = a.api().user("idem-far").await;
    // Both nodes see each other before statements are made...
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while a.health().await["live_nodes"] != 2 || b.health().await["live_nodes"] != 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the nodes never saw each other"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // ...then a statement that node b owns, so calls through a are forwarded.
    let mut stmt = None;
    for _ in 0..40 {
        let s = push_statement(&user).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let (oa, ob) = (a.owned().await, b.owned().await);
            if oa.contains(&s) || ob.contains(&s) {
                if ob.contains(&s) {
                    stmt = Some(s.clone());
                }
                break;
            }
            assert!(std::time::Instant::now() < deadline, "nobody took {s}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        if stmt.is_some() {
            break;
        }
    }
    let stmt = stmt.expect("node b owns none of 40 statements");
    let first = keyed(&user, "proposal", &proposal(&stmt, 3), "far-1").await;
    let via_b = user.at(&b.url);
    for api in [&user, &via_b, &user] {
        let again = keyed(api, "proposal", &proposal(&stmt, 3), "far-1").await;
        assert_eq!(again["_key"], first["_key"], "{again}");
    }
    assert_eq!(all_orders(&user, "proposal", &stmt).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_forgotten_after_their_retention() {
    let backend = Backend::new();
    let server = Server::start_with(&backend, &["--idempotency-retention", "1"]).await;
    let user = server.api().user("idem-brief").await;
    let stmt = push_statement(&user).await;
    let first = keyed(&user, "proposal", &proposal(&stmt, 3), "brief").await;
    let again = keyed(&user, "proposal", &proposal(&stmt, 3), "brief").await;
    assert_eq!(again["_key"], first["_key"]);

    let stmt_key = proof_market::domain::Key::parse(&stmt).expect("a statement key");
    let idem = proof_market::store::keys::Keys::new(&backend.prefix)
        .statement(stmt_key)
        .idempotency();
    let remembered = || -> usize { redis_query(&backend.url, redis::cmd("HLEN").arg(&idem)) };
    assert_eq!(remembered(), 1);
    // Forgotten within a second or two of the retention (the matcher sweeps each second).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while remembered() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the key was never forgotten"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let later = keyed(&user, "proposal", &proposal(&stmt, 3), "brief").await;
    assert_ne!(
        later["_key"], first["_key"],
        "a forgotten key places a new order"
    );
    assert_eq!(all_orders(&user, "proposal", &stmt).await.len(), 2);
}

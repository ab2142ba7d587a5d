//! Concurrent bursts from many clients over several statements: every match respects
//! the price and time rules and trades at the resting order's cost, no order appears in
//! two matches, no acknowledged order is lost, and no two open orders are left that
//! could still cross (checked on what Redis holds, by the load test's checker).

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_bursts_keep_every_invariant() {
    let backend = Backend::new();
    let server = Server::start(&backend).await;
    let root = server.api();
    let mut users = Vec::new();
    for i in 0..6 {
        users.push(root.user(&format!("trader{i}")).await);
    }
    let mut statements = Vec::new();
    for _ in 0..3 {
        statements.push(push_statement(&users[0]).await);
    }

    let mut tasks = Vec::new();
    for (u, api) in users.iter().enumerate() {
        for (s, stmt) in statements.iter().enumerate() {
            let api = api.clone();
            let stmt = stmt.clone();
            tasks.push(tokio::spawn(async move {
                let mut seed = (u * 31 + s * 7 + 1) as u64;
                let mut acked = Vec::new();
                for i in 0..60u64 {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let cost = 1 + (seed >> 33) % 9;
                    let t = match (seed >> 20) % 4 {
                        0 => json!(null),
                        k => json!(k * 10),
                    };
                    let (kind, body) = if (seed >> 40).is_multiple_of(2) {
                        ("request", json!({"statement_key": stmt, "cost": cost, "eval_time": t, "input": [{"field": i}, {"field": 1_000_000 + u * 1000 + s}]}))
                    } else {
                        ("proposal", json!({"statement_key": stmt, "cost": cost as f64 - 0.5, "eval_time": t}))
                    };
                    let (st, v) = api.post(&format!("{ROOT}/{kind}/"), &body).await;
                    assert_eq!(st, 200, "{v}");
                    acked.push(common::acked(&v));
                    // Now and then withdraw what is still open.
                    if (seed >> 50).is_multiple_of(10) && v["status"] == "created" {
                        let (st, w) = api.delete(&format!("{ROOT}/{kind}/{}", v["_key"].as_str().unwrap())).await;
                        assert!(st == 200 || st == 409, "{st} {w}");
                    }
                }
                acked
            }));
        }
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert_eq!(acked.len(), 6 * 3 * 60);

    for stmt in &statements {
        let requests = all_orders(&users[0], "request", stmt).await;
        let proposals = all_orders(&users[0], "proposal", stmt).await;
        assert_eq!(requests.len() + proposals.len(), 6 * 60);
    }
    let checked = assert_invariants(&backend, &acked);
    assert_eq!(checked.orders, 6 * 3 * 60);
    let matches = checked.matches;
    assert!(
        matches > 50,
        "only {matches} matches: the test did not exercise matching"
    );
}

//! SIGKILL the server in the middle of a burst of orders and start it again: every
//! acknowledged order is still there, books are rebuilt from Redis, nothing is matched
//! twice and nothing is lost. Also: Redis itself killed and restarted from its AOF.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// Fires orders from `clients` concurrent clients until told to stop; returns the
/// acknowledged orders (key → body) per kind.
async fn burst(api: Api, stmt: String, client: usize, n: usize) -> Vec<(String, Value)> {
    let mut acked = Vec::new();
    for i in 0..n {
        let cost = 1 + ((i * 7 + client * 3) % 10);
        let (kind, body) = if (i + client).is_multiple_of(2) {
            (
                "request",
                json!({"statement_key": stmt, "cost": cost, "input": [{"field": client * 100_000 + i}, {"field": 1_000_000_007u64}]}),
            )
        } else {
            ("proposal", json!({"statement_key": stmt, "cost": cost}))
        };
        let r = api.clone();
        let path = format!("{ROOT}/{kind}/");
        let res = tokio::time::timeout(Duration::from_secs(10), async move {
            r.try_post(&path, &body).await
        })
        .await;
        match res {
            Ok(Some((200, v))) => acked.push((kind.to_owned(), v)),
            Ok(Some((s, _))) if s >= 500 => {}
            Ok(Some((s, v))) => panic!("unexpected {s}: {v}"),
            _ => break, // connection refused: the server is gone
        }
    }
    acked
}

trait TryPost {
    async fn try_post(&self, path: &str, body: &Value) -> Option<(u16, Value)>;
}

impl TryPost for Api {
    async fn try_post(&self, path: &str, body: &Value) -> Option<(u16, Value)> {
        let c = reqwest::Client::new();
        let r = c
            .post(format!("{}{path}", self.base))
            .bearer_auth(self.token.as_deref().unwrap_or(""))
            .json(body)
            .send()
            .await
            .ok()?;
        let s = r.status().as_u16();
        let v = r.json().await.ok()?;
        Some((s, v))
    }
}

/// Every acknowledged order is listed by the node as it was acknowledged, and every
/// invariant holds on what Redis holds.
async fn check_after_restart(backend: &Backend, api: &Api, stmt: &str, acked: &[(String, Value)]) {
    let requests = all_orders(api, "request", stmt).await;
    let proposals = all_orders(api, "proposal", stmt).await;
    let stored: HashMap<String, &Value> = requests
        .iter()
        .chain(proposals.iter())
        .map(|o| (o["_id"].as_str().unwrap().to_owned(), o))
        .collect();
    for (kind, v) in acked {
        let id = format!("{kind}/{}", v["_key"].as_str().unwrap());
        let s = stored
            .get(&id)
            .unwrap_or_else(|| panic!("acknowledged {id} lost"));
        assert_eq!(s["cost"], v["cost"]);
        assert_eq!(s["sender"], v["sender"]);
    }
    let acked: Vec<_> = acked.iter().map(|(_, v)| common::acked(v)).collect();
    assert_invariants(backend, &acked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_burst_loses_nothing_and_matches_nothing_twice() {
    let backend = Backend::new();
    let mut server = Server::start(&backend).await;
    let api = server.api().user("dave").await;
    let stmt = push_statement(&api).await;

    let mut tasks = Vec::new();
    for c in 0..8 {
        tasks.push(tokio::spawn(burst(api.clone(), stmt.clone(), c, 400)));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill9();
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert!(
        !acked.is_empty(),
        "no order was acknowledged before the kill"
    );
    assert!(
        acked.len() < 8 * 400,
        "the burst ended before the kill; nothing was tested mid-burst"
    );
    eprintln!("{} orders acknowledged before SIGKILL", acked.len());

    server.restart().await;
    let api = server.api().with_token(api.token.as_deref().unwrap());
    check_after_restart(&backend, &api, &stmt, &acked).await;

    // The rebuilt book keeps matching correctly: drain it from both sides.
    let (s, book) = api.get(&format!("{ROOT}/book/{stmt}")).await;
    assert_eq!(s, 200, "{book}");
    let resting_requests: u64 = book["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ordersAmount"].as_u64().unwrap())
        .sum();
    let mut more = Vec::new();
    // Drained by another user: a user's request never takes its own proposal.
    let drainer = server.api().user("dave-drainer").await;
    for i in 0..resting_requests {
        let (s, v) = drainer
            .post(
                &format!("{ROOT}/proposal/"),
                &json!({"statement_key": stmt, "cost": 1}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(
            v["status"], "processing",
            "resting request {i} not matched after restart: {v}"
        );
        more.push(("proposal".to_owned(), v));
    }
    acked.extend(more);
    check_after_restart(&backend, &api, &stmt, &acked).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_restart_from_aof_keeps_acknowledged_orders() {
    let mut redis = OwnRedis::start();
    let backend = Backend::on(redis.url());
    let server = Server::start(&backend).await;
    let api = server.api().user("erin").await;
    let stmt = push_statement(&api).await;
    let mut acked = Vec::new();
    for i in 0..40 {
        let (kind, body) = if i % 3 == 0 {
            ("proposal", json!({"statement_key": stmt, "cost": 5}))
        } else {
            (
                "request",
                json!({"statement_key": stmt, "cost": 1 + i % 7, "input": [{"field": i}, {"field": 1_000_000_007u64}]}),
            )
        };
        let (s, v) = api.post(&format!("{ROOT}/{kind}/"), &body).await;
        assert_eq!(s, 200, "{v}");
        acked.push((kind.to_owned(), v));
    }
    redis.crash_and_restart();
    // The node reconnects by itself; reads may fail for a moment.
    let mut ok = false;
    for _ in 0..100 {
        if api.get("/health").await.0 == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "node did not see Redis come back");
    check_after_restart(&backend, &api, &stmt, &acked).await;
    // And it keeps taking orders.
    let mut placed = false;
    for _ in 0..50 {
        let (s, _) = api
            .post(
                &format!("{ROOT}/proposal/"),
                &json!({"statement_key": stmt, "cost": 100}),
            )
            .await;
        if s == 200 {
            placed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(placed);
}

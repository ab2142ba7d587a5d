//! Rate limits and quotas against real nodes over one real Redis: a flood from one
//! address, a flood from one user spread over two nodes, and a user pushing statements
//! past the daily quota. Each test checks the 429 with `Retry-After` and the JSON error,
//! that other clients are served meanwhile, and that the node's memory stays bounded.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

/// (calls answered other than 429, calls answered 429, largest Retry-After seen).
async fn flood(api: &Api, path: &str, body: &serde_json::Value, n: usize) -> (usize, usize, u64) {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (api, path, body) = (api.clone(), path.to_owned(), body.clone());
        tasks.push(tokio::spawn(async move {
            api.post_retry_after(&path, &body).await
        }));
    }
    let (mut served, mut limited, mut retry) = (0, 0, 0);
    for t in tasks {
        let (s, v, r) = t.await.unwrap();
        if s == 429 {
            assert_eq!(v["error"], true, "{v}");
            assert_eq!(v["code"], 429, "{v}");
            // The call-rate limit, or (for logins, when a slow machine let more than
            // the failed-login allowance through the bucket) the failed-login limit.
            let why = v["errorMessage"].as_str().unwrap();
            assert!(
                why.contains("too many calls") || why.contains("too many failed logins"),
                "{v}"
            );
            let after = r.expect("Retry-After on a 429");
            if why.contains("too many calls") {
                retry = retry.max(after);
            }
            limited += 1;
        } else {
            served += 1;
        }
    }
    (served, limited, retry)
}

#[tokio::test(flavor = "multi_thread")]
async fn one_address_flooding_gets_429_and_health_is_still_answered() {
    let backend = Backend::new();
    let server = Server::start_with(
        &backend,
        &["--rate-limit-ip", "5", "--rate-limit-burst", "2"],
    )
    .await;
    let api = server.api();
    let before = rss_kib(server.pid());
    // 200 logins with a wrong password at once: at most the bucket (10) and what refills
    // meanwhile reach the login code; the rest are refused before their body is read.
    let (served, limited, retry) = flood(
        &api,
        "/_open/auth",
        &json!({"username": "nobody", "password": "guess"}),
        200,
    )
    .await;
    eprintln!("200 logins from one address: {served} reached the node, {limited} got 429");
    assert!(limited >= 150, "{served} served, {limited} limited");
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    // Monitoring is not counted.
    assert_eq!(server.health().await["status"], "ok");
    // After the wait, the address is served again.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    let (s, v) = api
        .post(
            &format!("{ROOT}/user/signup"),
            &json!({"user": "ok", "passwd": "pw-"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let after = rss_kib(server.pid());
    eprintln!("address flood: RSS before {before} KiB, after {after} KiB");
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} to {after} KiB"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_is_limited_across_nodes_and_others_are_served() {
    let backend = Backend::new();
    let args = ["--rate-limit-user", "5", "--rate-limit-burst", "2"];
    let a = Server::start_with(&backend, &args).await;
    let b = Server::start_with(&backend, &args).await;
    let greedy = a.api().user("greedy").await;
    let polite = a.api().user("polite").await;
    let stmt = push_statement(&polite).await;
    // The same user's calls spread over both nodes share one bucket in Redis.
    let body = json!({"statement_key": stmt, "cost": 1, "input": {"input": "1\n11"}});
    let path = format!("{ROOT}/request/");
    let on_b = greedy.at(&b.url);
    let (f1, f2) = tokio::join!(
        flood(&greedy, &path, &body, 60),
        flood(&on_b, &path, &body, 60)
    );
    let (served, limited) = (f1.0 + f2.0, f1.1 + f2.1);
    eprintln!("120 requests by one user over two nodes: {served} placed, {limited} got 429");
    assert!(
        served <= 30,
        "{served} served: the limit did not hold across nodes"
    );
    assert!(limited >= 90);
    // Another user is served meanwhile, on either node.
    for node in [&a.url, &b.url] {
        let (s, v) = polite
            .at(node)
            .get(&format!("{ROOT}/statement/{stmt}"))
            .await;
        assert_eq!(s, 200, "{v}");
    }
    // The orders placed are exactly the ones answered 200.
    let placed = all_orders(&polite, "request", &stmt).await;
    assert_eq!(placed.len(), served);
}

#[tokio::test(flavor = "multi_thread")]
async fn statements_per_user_per_day_are_capped() {
    let backend = Backend::new();
    let server = Server::start_with(&backend, &["--max-statements-per-day", "2"]).await;
    let ann = server.api().user("ann").await;
    let bob = server.api().user("bob").await;
    push_statement(&ann).await;
    push_statement(&ann).await;
    let (s, v, retry) = ann
        .post_retry_after(&format!("{ROOT}/statement/"), &example_statement())
        .await;
    assert_eq!(s, 429, "{v}");
    assert!(
        v["errorMessage"]
            .as_str()
            .unwrap()
            .contains("2 statements today"),
        "{v}"
    );
    assert!(retry.unwrap() > 80_000);
    // Counted per user, whatever the case of the name.
    let (s, v) = server
        .api()
        .post(
            "/_open/auth",
            &json!({"username": "ANN", "password": "pw-"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = ann
        .with_token(v["jwt"].as_str().unwrap())
        .post(&format!("{ROOT}/statement/"), &example_statement())
        .await;
    assert_eq!(s, 429);
    push_statement(&bob).await;
    let (s, list) = bob.get(&format!("{ROOT}/statement")).await;
    assert_eq!(s, 200);
    assert_eq!(list.as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn open_orders_and_remembered_keys_per_user_are_capped() {
    let backend = Backend::new();
    let server = Server::start_with(
        &backend,
        &["--max-open-orders", "3", "--max-idempotency-keys", "2"],
    )
    .await;
    let eve = server.api().user("eve").await;
    let sam = server.api().user("sam").await;
    let stmt = push_statement(&sam).await;
    let path = format!("{ROOT}/request/");
    let body =
        |a: u64| json!({"statement_key": stmt, "cost": 1, "input": {"input": format!("{a}\n99")}});
    let mut keys = Vec::new();
    for a in 1..=3 {
        let (s, v) = eve.post(&path, &body(a)).await;
        assert_eq!(s, 200, "{v}");
        keys.push(v["_key"].as_str().unwrap().to_owned());
    }
    let (s, v, retry) = eve.post_retry_after(&path, &body(4)).await;
    assert_eq!(s, 429, "{v}");
    assert!(
        v["errorMessage"]
            .as_str()
            .unwrap()
            .contains("3 open orders"),
        "{v}"
    );
    assert!(retry.is_some());
    // Another user is not affected.
    let (s, v) = sam.post(&path, &body(5)).await;
    assert_eq!(s, 200, "{v}");
    // A withdrawal frees a place.
    let (s, v) = eve.delete(&format!("{ROOT}/request/{}", keys[0])).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = eve.post(&path, &body(6)).await;
    assert_eq!(s, 200, "{v}");
    let mine = all_orders(&sam, "request", &stmt)
        .await
        .into_iter()
        .filter(|o| o["sender"] == "eve" && o["status"] == "created")
        .count();
    assert_eq!(mine, 3);

    // Remembered Idempotency-Keys: two per user; resends are still answered.
    let kim = server.api().user("kim").await;
    let (s, v) = kim.post_keyed(&path, &body(7), b"k-1").await;
    assert_eq!(s, 200, "{v}");
    let first = v["_key"].clone();
    let (s, v) = kim.post_keyed(&path, &body(8), b"k-2").await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = kim.post_keyed(&path, &body(9), b"k-3").await;
    assert_eq!(s, 429, "{v}");
    assert!(
        v["errorMessage"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Keys"),
        "{v}"
    );
    let (s, v) = kim.post_keyed(&path, &body(7), b"k-1").await;
    assert_eq!((s, &v["_key"]), (200, &first), "{v}");
    assert_eq!(server.health().await["status"], "ok");
}

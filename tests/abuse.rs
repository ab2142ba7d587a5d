//! Attacks by anonymous clients and ordinary users against one real node (real Redis):
//! oversized bodies, slow bodies and heads, padded inputs, deep pages, unpaginated
//! listings and oversized profiles. Each test reproduces the attack, checks the refusal,
//! that the node stays healthy with bounded memory (its RSS from /proc, printed for the
//! record), and that an ordinary client is served meanwhile. Forged internal headers (a
//! hop count, a node signature) are refused before any route runs: tests/node_auth.rs.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn host(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

/// Sends `head` and `body` on a fresh connection, then waits up to `wait` for the
/// answer; returns its status (0 when none came) and the text read.
async fn raw_call(url: &str, head: &str, body: &[u8], wait: Duration) -> (u16, String) {
    let mut s = TcpStream::connect(host(url)).await.unwrap();
    if s.write_all(head.as_bytes()).await.is_err() {
        return (0, String::new());
    }
    // The node may answer (and stop reading) before the body is all sent.
    let _ = tokio::time::timeout(Duration::from_secs(20), s.write_all(body)).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, async {
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
            if out.windows(4).any(|w| w == b"\r\n\r\n") && out.ends_with(b"}") {
                break;
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn post_head(path: &str, token: Option<&str>, length: Option<usize>) -> String {
    let mut h = format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n");
    if let Some(t) = token {
        h.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    match length {
        Some(n) => h.push_str(&format!("Content-Length: {n}\r\n")),
        None => h.push_str("Transfer-Encoding: chunked\r\n"),
    }
    h.push_str("\r\n");
    h
}

fn assert_json_error(text: &str, code: u16) {
    let body = &text[text.find("\r\n\r\n").map_or(0, |i| i + 4)..];
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {text}"));
    assert_eq!(v["error"], true, "{v}");
    assert_eq!(v["code"], code, "{v}");
}

/// An ordinary user's call: places a proposal and must get 200 within `within`.
async fn ordinary_call(api: &Api, stmt: &str, within: Duration) {
    let t = Instant::now();
    let (s, v) = api
        .post(
            &format!("{ROOT}/proposal/"),
            &json!({"statement_key": stmt, "cost": 1000}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(
        t.elapsed() < within,
        "an ordinary call took {:?}",
        t.elapsed()
    );
}

async fn healthy(server: &Server) {
    assert_eq!(server.health().await["status"], "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_are_refused_per_route_before_they_are_read() {
    let backend = Backend::new();
    let server = Server::start(&backend).await;
    let api = server.api().user("olga").await;
    let token = api.token.clone().unwrap();
    let stmt = push_statement(&api).await;
    let before = rss_kib(server.pid());

    // Declared too large: 413 with the JSON error at once, with no body byte sent.
    for (path, token, limit) in [
        ("/_open/auth".to_owned(), None, 4096),
        (format!("{ROOT}/user/signup"), None, 4096),
        (format!("{ROOT}/request"), Some(&token), 65_536),
        (format!("{ROOT}/producer/register"), Some(&token), 16_384),
        (
            format!("{ROOT}/proof"),
            Some(&token),
            (4 << 20) + (64 << 10),
        ),
        (format!("{ROOT}/statement"), Some(&token), (9 << 20)),
    ] {
        let t = Instant::now();
        let head = post_head(&path, token.map(String::as_str), Some(limit + 1));
        let (s, text) = raw_call(&server.url, &head, b"", Duration::from_secs(5)).await;
        assert_eq!(s, 413, "{path}: {text}");
        assert_json_error(&text, 413);
        assert!(t.elapsed() < Duration::from_secs(2), "{path}");
        // At the limit the body is read (and refused as JSON, not as too large).
        let head = post_head(&path, token.map(String::as_str), Some(limit));
        let body = vec![b' '; limit];
        let (s, text) = raw_call(&server.url, &head, &body, Duration::from_secs(10)).await;
        assert_eq!(s, 400, "{path}: {text}");
    }
    // Chunked (no length): refused once the limit is passed.
    let head = post_head("/_open/auth", None, None);
    let chunk = format!("{:x}\r\n{}\r\n", 6000, " ".repeat(6000));
    let (s, text) = raw_call(&server.url, &head, chunk.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(s, 413, "{text}");

    // The attack: 60 anonymous clients each sending 9 MiB to /_open/auth and signup.
    let big = vec![b'x'; 9 << 20];
    let mut tasks = Vec::new();
    for i in 0..60 {
        let url = server.url.clone();
        let big = big.clone();
        let path = if i % 2 == 0 {
            "/_open/auth".to_owned()
        } else {
            format!("{ROOT}/user/signup")
        };
        tasks.push(tokio::spawn(async move {
            let head = post_head(&path, None, Some(big.len()));
            raw_call(&url, &head, &big, Duration::from_secs(10)).await.0
        }));
    }
    ordinary_call(&api, &stmt, Duration::from_secs(2)).await;
    let mut peak = rss_kib(server.pid());
    for t in tasks {
        let s = t.await.unwrap();
        assert!(s == 413 || s == 0, "status {s}");
        peak = peak.max(rss_kib(server.pid()));
    }
    healthy(&server).await;
    ordinary_call(&api, &stmt, Duration::from_secs(2)).await;
    let after = rss_kib(server.pid());
    eprintln!("oversized bodies: RSS before {before} KiB, peak {peak} KiB, after {after} KiB");
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} to {after} KiB"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_are_cut_off_and_hold_bounded_memory() {
    let backend = Backend::new();
    let server = Server::start_with(
        &backend,
        &[
            "--body-read-timeout-ms",
            "3000",
            "--client-request-timeout-ms",
            "1000",
            "--body-budget-mib",
            "64",
        ],
    )
    .await;
    let api = server.api().user("sam").await;
    let token = api.token.clone().unwrap();
    let stmt = push_statement(&api).await;
    let before = rss_kib(server.pid());

    // 60 users' connections each send a statement's head and 8 MiB of an 8 MiB + 10
    // body, then stall; and 20 connections send half a request head and stall.
    let size = 8 << 20;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..60 {
        let url = server.url.clone();
        let head = post_head(&format!("{ROOT}/statement"), Some(&token), Some(size + 10));
        tasks.push(tokio::spawn(async move {
            let body = vec![b' '; size];
            raw_call(&url, &head, &body, Duration::from_secs(15)).await
        }));
    }
    // An anonymous login that stalls after 100 of its 4000 bytes: our 408 with the
    // JSON error when the body read timeout (3 s here) runs out.
    let small = {
        let url = server.url.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            let head = post_head("/_open/auth", None, Some(4000));
            let (s, text) = raw_call(&url, &head, &[b' '; 100], Duration::from_secs(10)).await;
            (s, text, t.elapsed())
        })
    };
    let mut heads = Vec::new();
    for _ in 0..20 {
        let url = server.url.clone();
        heads.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(host(&url)).await.unwrap();
            s.write_all(b"POST /_open/auth HTTP/1.1\r\nHost: x\r\nContent-")
                .await
                .unwrap();
            let t = Instant::now();
            let mut buf = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
            t.elapsed()
        }));
    }
    // Meanwhile ordinary calls are served, and memory stays bounded.
    let mut peak = rss_kib(server.pid());
    while started.elapsed() < Duration::from_secs(2) {
        ordinary_call(&api, &stmt, Duration::from_secs(2)).await;
        peak = peak.max(rss_kib(server.pid()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut statuses = std::collections::BTreeMap::new();
    for t in tasks {
        let (s, text) = t.await.unwrap();
        // actix-web's own 408 (a head not read within the head timeout while the node
        // was busy with the others) has no body; ours carry the JSON error.
        if s != 0 && !text.contains("content-length: 0") {
            assert_json_error(&text, s);
        }
        *statuses.entry(s).or_insert(0) += 1;
        peak = peak.max(rss_kib(server.pid()));
    }
    for h in heads {
        let waited = h.await.unwrap();
        assert!(
            waited < Duration::from_secs(4),
            "a stalled head was held {waited:?}"
        );
    }
    let (s, text, waited) = small.await.unwrap();
    assert_eq!(s, 408, "{text}");
    assert_json_error(&text, 408);
    assert!(waited < Duration::from_secs(6), "{waited:?}");
    healthy(&server).await;
    ordinary_call(&api, &stmt, Duration::from_secs(2)).await;
    let after = rss_kib(server.pid());
    eprintln!(
        "slow clients: statuses {statuses:?} in {:?}; RSS before {before} KiB, peak {peak} KiB, after {after} KiB",
        started.elapsed()
    );
    // Every stalled body got 408 (cut off by the read timeout) or 503 (budget spent).
    assert_eq!(
        statuses.get(&408).unwrap_or(&0) + statuses.get(&503).unwrap_or(&0),
        60,
        "{statuses:?}"
    );
    assert!(statuses.get(&503).is_some_and(|n| *n > 0), "{statuses:?}");
    // The budget (64 MiB) bounds what the stalled bodies hold: not 60 × 8 MiB.
    assert!(
        peak < before + 200 * 1024,
        "RSS rose from {before} to {peak} KiB"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stored_inputs_and_profiles_are_bounded() {
    let backend = Backend::new();
    let server = Server::start(&backend).await;
    let api = server.api().user("pam").await;
    let stmt = push_statement(&api).await;
    let before = rss_kib(server.pid());

    // Whitespace around two numbers: the biggest body an order may have is taken, but
    // what is stored and shown is the input alone, in the client's shape.
    let pad = " ".repeat(15_000);
    let mut keys = Vec::new();
    for i in 0..21u64 {
        let body = json!({"statement_key": stmt, "cost": 1,
            "input": {"input": format!("{pad}{}{pad}\n{pad}{}{pad}", i + 1, i + 20)}});
        let (s, v) = api.post(&format!("{ROOT}/request/"), &body).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(
            v["input"],
            json!({"input": format!("{}\n{}", i + 1, i + 20)})
        );
        keys.push(v["_key"].as_str().unwrap().to_owned());
    }
    let (s, v) = api
        .post(
            &format!("{ROOT}/request/"),
            &json!({"statement_key": stmt, "cost": 1,
                "input": [{"field": format!("  0x{:02x} ", 3)}, {"field": 30}]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["input"], json!([{"field": "0x03"}, {"field": 30}]));
    // 8 MiB of padding is a 413 now.
    let huge = json!({"statement_key": stmt, "cost": 1,
        "input": {"input": format!("1{}\n2", " ".repeat(8 << 20))}});
    let (s, v) = api.post(&format!("{ROOT}/request/"), &huge).await;
    assert_eq!(s, 413, "{v}");
    let (s, v) = api.get(&format!("{ROOT}/request/{}", keys[0])).await;
    assert_eq!(s, 200);
    assert_eq!(v["input"], json!({"input": "1\n20"}));
    let t = Instant::now();
    let r = reqwest::Client::new()
        .get(format!("{}{ROOT}/request?limit=100", server.url))
        .bearer_auth(api.token.as_ref().unwrap())
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&text)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        22
    );
    assert!(text.len() < 16 << 10, "the list is {} bytes", text.len());
    eprintln!(
        "list of 22 padded requests: {} bytes in {:?}",
        text.len(),
        t.elapsed()
    );

    // Deep pages: capped, and a page within the cap does not read the skipped orders.
    let t = Instant::now();
    let (s, v) = api.get(&format!("{ROOT}/request?skipped=1000000")).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["errorMessage"].as_str().unwrap().contains("skipped"));
    let (s, v) = api.get(&format!("{ROOT}/request?skipped=100000")).await;
    assert_eq!((s, v), (200, json!([])));
    let (s, v) = api.get(&format!("{ROOT}/request?skipped=20&limit=5")).await;
    assert_eq!(s, 200);
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert!(t.elapsed() < Duration::from_secs(2));

    // Producer profile: an 8 MiB description is refused before it is read, 5 KiB by
    // its cap; a normal one is taken.
    let (s, v) = api
        .post(
            &format!("{ROOT}/producer/register"),
            &json!({"description": "d".repeat(8 << 20)}),
        )
        .await;
    assert_eq!(s, 413, "{v}");
    let (s, v) = api
        .post(
            &format!("{ROOT}/producer/register"),
            &json!({"description": "d".repeat(5 << 10)}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["errorMessage"].as_str().unwrap().contains("description"));
    let (s, v) = api
        .post(
            &format!("{ROOT}/producer/register"),
            &json!({"description": "fast proofs", "url": "https://example.org"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    // Statement texts have caps too.
    let mut st = example_statement();
    st["url"] = json!("u".repeat(3 << 10));
    let (s, v) = api.post(&format!("{ROOT}/statement"), &st).await;
    assert_eq!(s, 400, "{v}");

    healthy(&server).await;
    ordinary_call(&api, &stmt, Duration::from_secs(2)).await;
    let after = rss_kib(server.pid());
    eprintln!("stored data: RSS before {before} KiB, after {after} KiB");
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} to {after} KiB"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn statement_lists_leave_definitions_out_and_paginate() {
    let backend = Backend::new();
    let server = Server::start(&backend).await;
    let api = server.api().user("quinn").await;
    let mut keys = Vec::new();
    for _ in 0..3 {
        keys.push(push_statement(&api).await);
    }
    let (s, v) = api.get(&format!("{ROOT}/statement")).await;
    assert_eq!(s, 200);
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 3);
    for (item, key) in list.iter().zip(&keys) {
        assert_eq!(item["_key"], json!(key));
        assert!(item.get("definition").is_none(), "{item}");
        assert!(item["name"].is_string());
    }
    let (s, v) = api
        .get(&format!("{ROOT}/statement?limit=1&skipped=1&full=true"))
        .await;
    assert_eq!(s, 200);
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["_key"], json!(keys[1]));
    assert!(v[0]["definition"]["proving_key"].is_string());
    let (s, v) = api
        .get(&format!("{ROOT}/statement?full=true&limit=11"))
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = api.get(&format!("{ROOT}/statement?skipped=1000001")).await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = api.get(&format!("{ROOT}/statement/{}", keys[2])).await;
    assert_eq!(s, 200);
    assert!(v["definition"]["proving_key"].is_string());

    // A list reads only each statement's head, never its circuit. A statement stored
    // before heads existed is listed all the same, and gets its head.
    let head = format!("{}:{{stmt:{}}}:head", backend.prefix, keys[0]);
    let text: String = redis_query(&backend.url, redis::cmd("GET").arg(&head));
    assert!(!text.contains("define"), "{text}");
    let _: i64 = redis_query(&backend.url, redis::cmd("DEL").arg(&head));
    let (s, v) = api.get(&format!("{ROOT}/statement")).await;
    assert_eq!(s, 200);
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert!(v[0].get("definition").is_none(), "{}", v[0]);
    let again: Option<String> = redis_query(&backend.url, redis::cmd("GET").arg(&head));
    assert_eq!(again.as_deref(), Some(text.as_str()));
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_of_many_small_values_do_not_grow_into_trees() {
    let backend = Backend::new();
    let server = Server::start(&backend).await;
    let api = server.api().user("tree").await;
    let stmt = push_statement(&api).await;
    let before = rss_kib(server.pid());
    // `[1,1,...]` to the two routes with the largest bodies (8 MiB to `statement`, 4 MiB
    // to `proof`), 6 at a time: as JSON trees they would take ~250 and ~125 MB each; the
    // non-string budget refuses them unparsed.
    let ones = format!("[{}]", vec!["1"; 4 << 20].join(","));
    let fewer = format!("[{}]", vec!["1"; 2_000_000].join(","));
    let mut calls = Vec::new();
    for i in 0..6 {
        let api = api.clone();
        let body = if i % 2 == 0 {
            format!(r#"{{"name": "n", "x": {ones}}}"#)
        } else {
            format!(r#"{{"proof": "00", "proposal_key": "1", "x": {fewer}}}"#)
        };
        let path = if i % 2 == 0 { "statement" } else { "proof" };
        calls.push(tokio::spawn(async move {
            api.post_raw(&format!("{ROOT}/{path}"), body.into_bytes())
                .await
        }));
    }
    for c in calls {
        let (s, v) = c.await.unwrap();
        assert_eq!(s, 400, "{v}");
        assert!(
            v["errorMessage"]
                .as_str()
                .unwrap()
                .contains("other than strings"),
            "{v}"
        );
    }
    healthy(&server).await;
    ordinary_call(&api, &stmt, Duration::from_secs(2)).await;
    let after = rss_kib(server.pid());
    eprintln!("6 bodies of 4-8 MiB of small values: RSS before {before} KiB, after {after} KiB");
    assert!(
        after < before + 128 * 1024,
        "RSS grew from {before} to {after} KiB"
    );
}

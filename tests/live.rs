//! Live updates (`GET /events`, Server-Sent Events) against real nodes over a real
//! Redis: a client on one node sees what another node's matcher did, a reconnect with
//! `Last-Event-ID` misses nothing, and idle streams cost bounded memory under caps.

mod common;

use std::time::Duration;

use common::*;
use proof_market::client::events::{EventSource, SseEvent};
use proof_market::client::MarketClient;
use serde_json::{json, Value};

/// A stream of `api`'s user on `node`, for `statement` too when given.
async fn open(
    node: &Server,
    api: &Api,
    statement: Option<&str>,
    last: Option<&str>,
) -> EventSource {
    MarketClient::new(&node.url, api.token.clone())
        .events(statement, last)
        .await
        .unwrap_or_else(|e| panic!("cannot open the stream: {e}"))
}

/// Events of `s` until one of kind `until` whose data satisfies `pred`, within 20 s.
async fn until(
    s: &mut EventSource,
    kind: &str,
    pred: impl Fn(&Value) -> bool,
) -> (SseEvent, Vec<SseEvent>) {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let e = tokio::time::timeout_at(deadline, s.next())
            .await
            .unwrap_or_else(|_| panic!("no {kind} event within 20 s; saw {seen:#?}"))
            .unwrap()
            .unwrap_or_else(|| panic!("stream ended before a {kind} event; saw {seen:#?}"));
        if e.event == kind && pred(&e.json().unwrap()) {
            return (e, seen);
        }
        seen.push(e);
    }
}

/// The node holding `stmt`'s lease, per `GET /cluster`.
fn owner_of(nodes: &[Server], cluster: &Value, stmt: &str) -> Option<usize> {
    let holder = cluster["statements"]
        .as_array()?
        .iter()
        .find(|s| s["statement"] == stmt)?
        .get("lease_holder")?
        .as_str()?
        .to_owned();
    nodes.iter().position(|n| n.node_id == holder)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_on_one_node_sees_the_match_and_proof_made_on_another() {
    let backend = Backend::new();
    let nodes = vec![Server::start(&backend).await, Server::start(&backend).await];
    let api = nodes[0].api();
    let req = api.user("live-req").await;
    let prod = api.user("live-prod").await;
    let stmt = push_statement(&req).await;
    // Wait until the statement has an owner, then use the other node for the streams.
    let owner = loop {
        let (_, c) = req.get(&format!("{ROOT}/cluster")).await;
        if let Some(i) = owner_of(&nodes, &c, &stmt) {
            break i;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let other = &nodes[1 - owner];
    let mut mine = open(other, &req, None, None).await;
    let mut public = open(other, &prod, Some(&stmt), None).await;
    let (hello, _) = until(&mut mine, "hello", |_| true).await;
    assert_eq!(hello.json().unwrap()["node"], other.node_id.as_str());
    until(&mut mine, "wallet", |w| w["user"] == "live-req").await;
    until(&mut public, "book", |b| b["statement_key"] == stmt.as_str()).await;

    // Orders go to the owner: the streams are on the other node.
    let owner_req = req.at(&nodes[owner].url);
    let owner_prod = prod.at(&nodes[owner].url);
    let (r, p) = matched_pair(&owner_req, &owner_prod, &stmt, [3, 4]).await;
    let rk = r["_key"].as_str().unwrap();
    let pk = p["_key"].as_str().unwrap();

    let (placed, _) = until(&mut mine, "placed", |o| o["_key"] == rk).await;
    assert!(placed.id.is_some(), "an event has an id to resume from");
    assert_eq!(
        placed.json().unwrap()["input"],
        json!([{"field": 3}, {"field": 4}])
    );
    let (m, _) = until(&mut mine, "matched", |m| m["request_key"] == rk).await;
    assert_eq!(m.json().unwrap()["proposal_key"], pk);
    until(&mut mine, "movement", |m| {
        m["statement_key"] == stmt.as_str()
    })
    .await;

    let (o, _) = until(&mut public, "order", |o| o["key"] == rk).await;
    let o = o.json().unwrap();
    assert!(o.get("sender").is_none() && o.get("input").is_none(), "{o}");
    let (t, _) = until(&mut public, "trade", |t| t["request_key"] == rk).await;
    assert_eq!(t.json().unwrap()["price"], p["price"]);
    until(&mut public, "book", |_| true).await;

    let (s, v) = owner_prod
        .post(
            &format!("{ROOT}/proof"),
            &json!({"proof": example_proof(&[3, 4]), "proposal_key": pk}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (proved, _) = until(&mut mine, "proved", |p| p["request_key"] == rk).await;
    assert_eq!(proved.json().unwrap()["proof_key"], v["_key"]);
    until(&mut public, "proved", |p| p["proposal_key"] == pk).await;

    // Another user's stream never carries this requester's orders.
    let mut theirs = open(other, &prod, None, None).await;
    let (_, seen) = until(&mut theirs, "wallet", |_| true).await;
    assert!(seen.iter().all(|e| e.event == "hello"), "{seen:?}");
}

/// Places a request of `api` on `stmt` at `cost`.
async fn request(api: &Api, stmt: &str, cost: u64, input: u64) -> String {
    let (s, r) = api
        .post(
            &format!("{ROOT}/request/"),
            &json!({"statement_key": stmt, "cost": cost, "input": [{"field": input}, {"field": input + 1}]}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    r["_key"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reconnect_with_last_event_id_misses_nothing_and_repeats_nothing() {
    let backend = Backend::new();
    let node = Server::start(&backend).await;
    let api = node.api();
    let req = api.user("resume-req").await;
    let stmt = push_statement(&req).await;
    let mut s = open(&node, &req, Some(&stmt), None).await;
    until(&mut s, "book", |_| true).await;
    let first = request(&req, &stmt, 3, 1).await;
    // Its public and its private frame, in either order (two channels).
    let (e, seen) = until(&mut s, "placed", |o| o["_key"] == first.as_str()).await;
    if !seen.iter().any(|e| e.event == "order") {
        until(&mut s, "order", |o| o["key"] == first.as_str()).await;
    }
    assert!(e.id.is_some());
    let last = s.last_id().unwrap().to_owned();
    drop(s);

    // While nobody listens: five more requests and a withdrawal.
    let mut missed = Vec::new();
    for i in 0..5 {
        missed.push(request(&req, &stmt, 4 + i, 10 + i).await);
    }
    let (st, v) = req.delete(&format!("{ROOT}/request/{}", missed[0])).await;
    assert_eq!(st, 200, "{v}");

    let mut s = open(&node, &req, Some(&stmt), Some(&last)).await;
    let (hello, _) = until(&mut s, "hello", |_| true).await;
    assert_eq!(hello.json().unwrap()["resumed"], true);
    let (_, got) = until(&mut s, "withdrawn", |w| w["key"] == missed[0].as_str()).await;
    let orders: Vec<String> = got
        .iter()
        .filter(|e| e.event == "order")
        .map(|e| e.json().unwrap()["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        orders, missed,
        "every missed order once, in order: {got:#?}"
    );
    let placed = got.iter().filter(|e| e.event == "placed").count();
    assert_eq!(placed, 5, "{got:#?}");
    assert!(got.iter().all(|e| e.event != "reset"), "{got:#?}");
    // Event numbers of the statement follow each other without a gap from the resume point.
    let n = |e: &SseEvent| -> u64 {
        e.id.as_deref()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let resumed_from: u64 = last.rsplit('/').next().unwrap().parse().unwrap();
    let mut numbers: Vec<u64> = got.iter().filter(|e| e.id.is_some()).map(n).collect();
    numbers.dedup();
    assert!(
        numbers.first().is_some_and(|f| *f == resumed_from + 1),
        "{numbers:?} after {resumed_from}"
    );
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1 || w[1] == w[0]),
        "{numbers:?}"
    );

    // Live again after the replay.
    let next = request(&req, &stmt, 9, 99).await;
    until(&mut s, "order", |o| o["key"] == next.as_str()).await;

    // A made-up id is refused; one from too long ago gets a reset.
    let (st, v) = req
        .get_with_header(&format!("{ROOT}/events"), "Last-Event-ID", "nonsense")
        .await;
    assert_eq!(st, 400, "{v}");
    let mut old = open(&node, &req, Some(&stmt), Some(&format!("1000-0/{stmt}/1"))).await;
    until(&mut old, "reset", |r| {
        r["reason"].as_str().unwrap().contains("older")
    })
    .await;
}

/// The node's resident memory, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_idle_streams_cost_bounded_memory_and_the_caps_hold() {
    let backend = Backend::new();
    let node = Server::start_with(
        &backend,
        &[
            "--max-event-streams",
            "1000",
            "--max-event-streams-per-user",
            "500",
            "--event-keepalive-secs",
            "1",
        ],
    )
    .await;
    let api = node.api();
    let users = [api.user("idle-a").await, api.user("idle-b").await];
    let stmt = push_statement(&users[0]).await;
    // Warm up: one stream of each kind, so what follows measures streams, not code.
    let warm = open(&node, &users[0], Some(&stmt), None).await;
    drop(warm);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(node.pid());
    let mut streams = Vec::new();
    for i in 0..1000 {
        let u = &users[i % 2];
        let st = if i % 4 == 0 {
            Some(stmt.as_str())
        } else {
            None
        };
        let mut s = open(&node, u, st, None).await;
        until(&mut s, "wallet", |_| true).await;
        streams.push(s);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(node.pid());
    let per_stream = (after.saturating_sub(before) * 1024) / 1000;
    println!("1000 idle streams: node RSS {before} KiB -> {after} KiB, {per_stream} B per stream");
    assert!(per_stream < 64 * 1024, "{per_stream} B per idle stream");

    // Past the node's cap: 503 with Retry-After; past a user's: 429.
    let third = api.user("idle-c").await;
    let err = MarketClient::new(&node.url, third.token.clone())
        .events(None, None)
        .await
        .err()
        .expect("the 1001st stream is refused");
    assert_eq!(err.status(), Some(503), "{err}");
    // Streams whose clients went away are noticed at their next keep-alive and freed.
    streams.truncate(400);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while scrape_metric(&node, "proof_market_event_streams").await.1 > 400.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "closed streams not freed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut kept = Vec::new();
    for _ in 0..500 {
        kept.push(open(&node, &third, None, None).await);
    }
    let err = MarketClient::new(&node.url, third.token.clone())
        .events(None, None)
        .await
        .err()
        .expect("a user's 501st stream is refused");
    assert_eq!(err.status(), Some(429), "{err}");

    // The streams still work: an order reaches a stream opened first.
    let key = request(&users[0], &stmt, 2, 5).await;
    until(&mut streams[0], "placed", |o| o["_key"] == key.as_str()).await;
    let (_, m) = scrape_metric(&node, "proof_market_event_streams").await;
    assert_eq!(m, 900.0);
}

async fn scrape_metric(node: &Server, name: &str) -> (String, f64) {
    let text = reqwest::get(format!("{}/metrics", node.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let v = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in the scrape"));
    (text, v)
}

fn stmt_key(b: &Backend, stmt: &str, suffix: &str) -> String {
    format!("{}:{{stmt:{stmt}}}{suffix}", b.prefix)
}

#[tokio::test(flavor = "multi_thread")]
async fn with_archiving_on_archived_events_stay_for_the_resume_window_then_go() {
    let b = Backend::new();
    let db = TestDb::new().await;
    let node = Server::start_with(
        &b,
        &[
            "--database-url",
            &db.url,
            "--archive-interval-ms",
            "100",
            "--event-resume-secs",
            "4",
        ],
    )
    .await;
    let req = node.api().user("window-req").await;
    let stmt = push_statement(&req).await;
    let mut s = open(&node, &req, Some(&stmt), None).await;
    until(&mut s, "book", |_| true).await;
    let first = request(&req, &stmt, 3, 1).await;
    until(&mut s, "placed", |o| o["_key"] == first.as_str()).await;
    let last = s.last_id().unwrap().to_owned();
    drop(s);
    let mut missed = Vec::new();
    for i in 0..3 {
        missed.push(request(&req, &stmt, 4 + i, 20 + i).await);
    }
    // PostgreSQL has them all before the stream comes back.
    let (evseq, archived) = (
        stmt_key(&b, &stmt, ":evseq"),
        stmt_key(&b, &stmt, ":archived"),
    );
    let get = |k: &str| redis_query::<Option<u64>>(&b.url, redis::cmd("GET").arg(k)).unwrap_or(0);
    let t = std::time::Instant::now();
    while get(&archived) < get(&evseq) {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "archive not caught up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut s = open(&node, &req, Some(&stmt), Some(&last)).await;
    let (_, got) = until(&mut s, "placed", |o| o["_key"] == missed[2].as_str()).await;
    let orders: Vec<String> = got
        .iter()
        .filter(|e| e.event == "order")
        .map(|e| e.json().unwrap()["key"].as_str().unwrap().to_owned())
        .collect();
    // The last one's public frame may come after its private one.
    assert!(
        orders.len() >= 2 && orders[..] == missed[..orders.len()],
        "archived events replayed in order: {got:#?}"
    );
    drop(s);
    // Past the window the log is trimmed, and a resume point that old gets a reset.
    let events = stmt_key(&b, &stmt, ":events");
    let t = std::time::Instant::now();
    while redis_query::<u64>(&b.url, redis::cmd("XLEN").arg(&events)) > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "archived events never trimmed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut s = open(&node, &req, Some(&stmt), Some(&last)).await;
    until(&mut s, "reset", |_| true).await;
}

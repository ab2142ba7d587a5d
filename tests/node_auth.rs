//! Calls between nodes end to end: two real nodes over a real Redis. A client that
//! sends internal headers (a hop count, a forged or stale signature, a body other than
//! the signed one) is refused with 401 and nothing changes; nodes sharing a cluster
//! secret forward calls about each other's statements; nodes with different secrets,
//! or a node with none, answer a clear 503 at once instead of forwarding.

mod common;

use std::time::{Duration, Instant};

use common::*;
use proof_market::cluster::signing::{body_digest, ClusterSecret, NodeCall};
use proof_market::protocol::{
    BODY_DIGEST_HEADER, HOPS_HEADER, NODE_HEADER, SIGNATURE_HEADER, TIME_HEADER,
};
use reqwest::Method;
use serde_json::{json, Value};

/// Short leases keep the takeovers of the start quick.
const LEASE: [&str; 2] = ["--lease-ms", "1500"];

/// Any refusal must come at once, not after retries or timeouts.
const PROMPT: Duration = Duration::from_millis(1500);

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Two nodes over one Redis, a user, and a statement owned by each node.
struct Pair {
    a: Server,
    b: Server,
    user: Api,
    /// A statement A owns.
    stmt_a: String,
    /// A statement B owns.
    stmt_b: String,
    /// Dropped last: a private Redis stops with it.
    _backend: Backend,
}

/// Two nodes over one Redis (`env_a`, `env_b` on top of the harness's environment), a
/// user, and statements until each node owns at least one.
async fn two_nodes(env_a: &[(&str, Option<&str>)], env_b: &[(&str, Option<&str>)]) -> Pair {
    let backend = Backend::new();
    let a = Server::start_with_env(&backend, &LEASE, env_a).await;
    let b = Server::start_with_env(&backend, &LEASE, env_b).await;
    let user = a.api().user("nora").await;
    let mut stmts = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if stmts.len() < 40 {
            stmts.push(push_statement(&user).await);
        }
        let (oa, ob) = (a.owned().await, b.owned().await);
        let settled = stmts.iter().all(|s| oa.contains(s) != ob.contains(s));
        if settled && stmts.len() >= 2 {
            let of_a = stmts.iter().find(|s| oa.contains(s));
            let of_b = stmts.iter().find(|s| ob.contains(s));
            if let (Some(sa), Some(sb)) = (of_a, of_b) {
                return Pair {
                    stmt_a: sa.clone(),
                    stmt_b: sb.clone(),
                    a,
                    b,
                    user,
                    _backend: backend,
                };
            }
        }
        assert!(
            Instant::now() < deadline,
            "ownership did not settle over both nodes: A {oa:?}, B {ob:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `user` places a proposal on `stmt` at `cost` through `node`: (status, body).
async fn propose(user: &Api, node: &Server, stmt: &str, cost: u64) -> (u16, Value) {
    user.at(&node.url)
        .post(
            &format!("{ROOT}/proposal"),
            &json!({"statement_key": stmt, "cost": cost}),
        )
        .await
}

/// Every proposal and request of `stmt`.
async fn orders_of(api: &Api, stmt: &str) -> usize {
    all_orders(api, "proposal", stmt).await.len() + all_orders(api, "request", stmt).await.len()
}

/// Internal headers, as sent.
type Headers = Vec<(&'static str, String)>;

/// The internal headers of a call signed with `secret`.
fn signed(
    secret: &[u8],
    method: &str,
    target: &str,
    hops: u8,
    time_ms: u64,
    body: &[u8],
) -> Headers {
    let call = NodeCall {
        method,
        path_and_query: target,
        hops,
        time_ms,
        node: "test-node",
        body_sha256: body_digest(body),
    };
    let sig = ClusterSecret::new(secret).unwrap().sign(&call);
    vec![
        (HOPS_HEADER, hops.to_string()),
        (NODE_HEADER, "test-node".to_owned()),
        (TIME_HEADER, time_ms.to_string()),
        (BODY_DIGEST_HEADER, hex::encode(call.body_sha256)),
        (SIGNATURE_HEADER, hex::encode(sig)),
    ]
}

/// What a call answered: status, `WWW-Authenticate`, `Retry-After`, JSON body, time.
struct Answer {
    status: u16,
    challenge: Option<String>,
    retry_after: Option<String>,
    body: Value,
    took: Duration,
}

/// `method` `path` on `base` as `user`, with `headers` and `body` (raw bytes).
async fn call(
    base: &str,
    user: &Api,
    method: Method,
    path: &str,
    headers: &[(&str, String)],
    body: Option<&[u8]>,
) -> Answer {
    let mut rb = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(user.token.as_ref().unwrap())
        .timeout(Duration::from_secs(30));
    for (n, v) in headers {
        rb = rb.header(*n, v);
    }
    if let Some(b) = body {
        rb = rb
            .header("content-type", "application/json")
            .body(b.to_vec());
    }
    let t = Instant::now();
    let r = rb.send().await.unwrap();
    let header = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
    let (status, challenge, retry_after) = (
        r.status().as_u16(),
        header("www-authenticate"),
        header("retry-after"),
    );
    let body = r.json().await.unwrap();
    Answer {
        status,
        challenge,
        retry_after,
        body,
        took: t.elapsed(),
    }
}

fn assert_refused(a: &Answer, what: &str) {
    assert_eq!(a.status, 401, "{what}: {}", a.body);
    assert_eq!(a.body["error"], true, "{what}: {}", a.body);
    assert_eq!(a.body["code"], 401, "{what}: {}", a.body);
    let msg = a.body["errorMessage"].as_str().unwrap_or_default();
    assert!(msg.contains("node call refused"), "{what}: {msg}");
    assert_eq!(a.challenge.as_deref(), Some("ProofMarket-Node"), "{what}");
    assert!(a.took < PROMPT, "{what} took {:?}", a.took);
}

#[tokio::test(flavor = "multi_thread")]
async fn internal_headers_from_a_client_are_refused_and_change_nothing() {
    let secret = CLUSTER_SECRET.as_bytes();
    let Pair {
        a,
        b,
        user,
        stmt_a: stmt,
        stmt_b: _,
        _backend,
    } = two_nodes(&[], &[]).await;
    let order = format!("{ROOT}/proposal");
    let book = format!("{ROOT}/book/{stmt}");
    let body = serde_json::to_vec(&json!({"statement_key": stmt, "cost": 5})).unwrap();
    let other_body = serde_json::to_vec(&json!({"statement_key": stmt, "cost": 1})).unwrap();
    let now = now_ms();
    let hop = |v: &str| vec![(HOPS_HEADER, v.to_owned())];
    // Each forgery, sent to the owner (A) and to the other node (B).
    let mut forgeries: Vec<(String, Headers)> = Vec::new();
    for v in ["0", "1", "2", "3", "4", "255", "999999", "-1", "abc", ""] {
        forgeries.push((format!("hop header {v:?} alone"), hop(v)));
    }
    forgeries.push((
        "hop header twice".into(),
        vec![(HOPS_HEADER, "1".into()), (HOPS_HEADER, "1".into())],
    ));
    forgeries.push((
        "an unknown internal header".into(),
        vec![("x-proof-market-debug", "1".into())],
    ));
    let mut forged_sig = signed(secret, "POST", &order, 1, now, &body);
    forged_sig[4].1 = "ab".repeat(32);
    forgeries.push(("a made-up signature".into(), forged_sig));
    forgeries.push((
        "a signature with another secret".into(),
        signed(
            b"not the cluster secret, but long enough",
            "POST",
            &order,
            1,
            now,
            &body,
        ),
    ));
    forgeries.push((
        "a signature 60 s old".into(),
        signed(secret, "POST", &order, 1, now - 60_000, &body),
    ));
    forgeries.push((
        "a signature 60 s ahead".into(),
        signed(secret, "POST", &order, 1, now + 60_000, &body),
    ));
    forgeries.push((
        "a signature over another body".into(),
        signed(secret, "POST", &order, 1, now, &other_body),
    ));
    forgeries.push((
        "a signature for another path".into(),
        signed(secret, "POST", &format!("{ROOT}/request"), 1, now, &body),
    ));
    forgeries.push(("a signature with another hop count".into(), {
        let mut h = signed(secret, "POST", &order, 1, now, &body);
        h[0].1 = "2".into();
        h
    }));
    for node in [&a, &b] {
        for (what, headers) in &forgeries {
            let r = call(&node.url, &user, Method::POST, &order, headers, Some(&body)).await;
            assert_refused(&r, &format!("{what} on POST {order}"));
        }
        // Calls without a body, and routes that never forward, are refused alike.
        for (what, method, path) in [
            ("book", Method::GET, book.as_str()),
            ("health", Method::GET, "/health"),
            ("statement list", Method::GET, &format!("{ROOT}/statement")),
        ] {
            let r = call(&node.url, &user, method.clone(), path, &hop("1"), None).await;
            assert_refused(&r, &format!("hop header on {what}"));
            let h = signed(secret, method.as_str(), path, 1, now - 60_000, b"");
            let r = call(&node.url, &user, method, path, &h, None).await;
            assert_refused(&r, &format!("stale signature on {what}"));
        }
    }
    assert_eq!(
        orders_of(&user, &stmt).await,
        0,
        "a refused call placed an order"
    );
    assert_eq!(a.health().await["status"], "ok");
    assert_eq!(b.health().await["status"], "ok");

    // The control: the same calls signed right are taken, by the owner and through the
    // other node, with any hop count a node may send.
    let mut placed = 0;
    for node in [&a, &b] {
        for hops in 1..=3 {
            let h = signed(secret, "POST", &order, hops, now_ms(), &body);
            let r = call(&node.url, &user, Method::POST, &order, &h, Some(&body)).await;
            assert_eq!(r.status, 200, "signed, {hops} hops: {}", r.body);
            placed += 1;
        }
    }
    assert_eq!(orders_of(&user, &stmt).await, placed);
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_sharing_a_secret_forward_calls_to_the_owner() {
    let Pair {
        a,
        b,
        user,
        stmt_a,
        stmt_b,
        _backend,
    } = two_nodes(&[], &[]).await;
    // Requests come from another user: a user's request never takes its own proposal.
    let asker = a.api().user("otto").await;
    // Each node is called about the other's statement: place, read the book, withdraw,
    // and match, all served by the owner through the node that was called.
    for (node, stmt, owner) in [(&b, &stmt_a, &a), (&a, &stmt_b, &b)] {
        assert!(!node.owned().await.contains(stmt));
        assert!(owner.owned().await.contains(stmt));
        let api = user.at(&node.url);
        let (s, p) = propose(&user, node, stmt, 3).await;
        assert_eq!(s, 200, "{p}");
        let (s, book) = api.get(&format!("{ROOT}/book/{stmt}")).await;
        assert_eq!(s, 200, "{book}");
        assert_eq!(book["proposals"][0]["ordersAmount"], 1, "{book}");
        let key = p["_key"].as_str().unwrap();
        let (s, w) = api.delete(&format!("{ROOT}/proposal/{key}")).await;
        assert_eq!((s, w["status"].as_str()), (200, Some("withdrawn")), "{w}");
        let (s, p) = propose(&user, node, stmt, 2).await;
        assert_eq!(s, 200, "{p}");
        let (s, r) = asker
            .at(&node.url)
            .post(
                &format!("{ROOT}/request"),
                &json!({"statement_key": stmt, "cost": 4, "input": [{"field": 1}, {"field": 11}]}),
            )
            .await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["status"], "processing", "{r}");
        assert_eq!(r["proposal_key"], p["_key"], "{r}");
    }
    // The target is signed as it goes on the wire: a client's query with escapes, or
    // with a character the forwarding node's URL parser escapes (`'`, sent raw), still
    // verifies at the owner.
    let target = format!("{ROOT}/book/{stmt_a}?note=%22quoted%22%20{{x}}");
    let r = call(&b.url, &user, Method::GET, &target, &[], None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let raw = raw_get(&b.url, &format!("{ROOT}/book/{stmt_a}?note='raw'"), &user).await;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
}

/// A GET sent byte for byte (reqwest would escape the target first).
async fn raw_get(base: &str, target: &str, user: &Api) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    let req = format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        user.token.as_ref().unwrap()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

/// The answer of a node about a statement another node owns, when it cannot or may not
/// forward: a 503 at once, saying why, and nothing placed.
async fn assert_not_forwarded(node: &Server, user: &Api, stmt: &str, reason: &str) {
    let body = serde_json::to_vec(&json!({"statement_key": stmt, "cost": 5})).unwrap();
    let order = format!("{ROOT}/proposal");
    let r = call(&node.url, user, Method::POST, &order, &[], Some(&body)).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.retry_after.is_some(), "a 503 without Retry-After");
    let msg = r.body["errorMessage"].as_str().unwrap_or_default();
    assert!(msg.contains(reason), "{msg}");
    assert!(msg.contains("cluster secret"), "{msg}");
    assert!(r.took < PROMPT, "took {:?}", r.took);
    assert_eq!(orders_of(user, stmt).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_with_different_secrets_answer_a_clear_error_instead_of_forwarding() {
    let Pair {
        a,
        b,
        user,
        stmt_a,
        stmt_b,
        _backend,
    } = two_nodes(
        &[],
        &[(
            "PROOF_MARKET_CLUSTER_SECRET",
            Some("a different secret for node B, 32+ bytes"),
        )],
    )
    .await;
    // Either way, the owner refuses the signature and the caller's node says why.
    assert_not_forwarded(&b, &user, &stmt_a, "secrets differ").await;
    assert_not_forwarded(&a, &user, &stmt_b, "secrets differ").await;
    // Each still serves its own statements.
    for (node, stmt) in [(&a, &stmt_a), (&b, &stmt_b)] {
        let (s, v) = propose(&user, node, stmt, 5).await;
        assert_eq!(s, 200, "{v}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_without_a_secret_neither_forwards_nor_takes_forwarded_calls() {
    let Pair {
        a,
        b,
        user,
        stmt_a,
        stmt_b,
        _backend,
    } = two_nodes(&[], &[("PROOF_MARKET_CLUSTER_SECRET", None)]).await;
    // B has no secret: it does not forward to A...
    assert_not_forwarded(&b, &user, &stmt_a, "has no cluster secret").await;
    // ...and refuses what A forwards to it, which A reports.
    assert_not_forwarded(&a, &user, &stmt_b, "has no cluster secret").await;
    // Its own statements it serves as a single node would.
    let (s, v) = propose(&user, &b, &stmt_b, 5).await;
    assert_eq!(s, 200, "{v}");
}

/// The secret from a file, as deployments provision it (a systemd credential or a
/// Kubernetes Secret volume); a file others may read stops the node with one line.
#[tokio::test(flavor = "multi_thread")]
async fn the_secret_can_come_from_a_private_file_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster-secret");
    std::fs::write(&path, format!("{CLUSTER_SECRET}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let file = path.to_str().unwrap();
    // A node with the file and one with the same secret in its environment agree: on
    // each new statement one of the two calls goes to a node that does not own it.
    let backend = Backend::new();
    let a = Server::start_with_env(
        &backend,
        &["--lease-ms", "1500", "--cluster-secret-file", file],
        &[("PROOF_MARKET_CLUSTER_SECRET", None)],
    )
    .await;
    let b = Server::start_with(&backend, &LEASE).await;
    let user = a.api().user("fay").await;
    for _ in 0..3 {
        let stmt = push_statement(&user).await;
        for node in [&a, &b] {
            let (s, v) = propose(&user, node, &stmt, 5).await;
            assert_eq!(s, 200, "{v}");
        }
    }
    // Readable by others: refused at start, one error line.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = std::process::Command::new(bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--redis-url",
            "redis://127.0.0.1:1",
        ])
        .args(["--cluster-secret-file", file])
        .env_remove("PROOF_MARKET_CLUSTER_SECRET")
        .env("PROOF_MARKET_JWT_SECRET", SECRET)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("cluster secret") && errors[0].contains("0644"),
        "{stderr}"
    );
}

//! A fake market for tests of [`MarketClient`] and of the command line's commands: a tiny
//! in-process HTTP server.
//!
//! The server answers each connection with the next canned response (`Connection: close`)
//! and records what it was sent, so a test can count attempts (the retry policy) and check
//! paths, headers and bodies. It is hand-written HTTP/1.1 on a tokio listener bound to port 0,
//! enough for reqwest and no more. The client's own tests follow it; the commands' tests are
//! in [`crate::cli::commands`].

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::client::transport::MAX_RETRIES;
use crate::client::{ClientError, ListFilter, MarketClient};
use crate::domain::{Cost, Side};

pub(crate) type TestResult = Result<(), Box<dyn std::error::Error>>;

/// One canned answer.
pub(crate) struct Canned {
    status: u16,
    headers: Vec<(&'static str, &'static str)>,
    body: String,
}

/// A JSON answer with `status`.
pub(crate) fn answer(status: u16, body: Value) -> Canned {
    Canned {
        status,
        headers: Vec::new(),
        body: body.to_string(),
    }
}

/// An error answer (`busy`), with `Retry-After` when given.
fn busy(status: u16, retry_after: Option<&'static str>) -> Canned {
    let headers = retry_after.map(|s| vec![("Retry-After", s)]);
    Canned {
        status,
        headers: headers.unwrap_or_default(),
        body: json!({"error": true, "code": status, "errorMessage": "busy"}).to_string(),
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) target: String,
    head: String,
    body: String,
}

impl Seen {
    /// The value of header `name`, if sent.
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// The fake market; its base URL is `url`.
pub(crate) struct TestServer {
    pub(crate) url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl TestServer {
    /// Serves `answers` in order, one per connection, then stops listening.
    pub(crate) async fn start(answers: Vec<Canned>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        tokio::spawn(async move {
            for canned in answers {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                if let Ok(request) = serve_one(stream, &canned).await {
                    if let Ok(mut log) = log.lock() {
                        log.push(request);
                    }
                }
            }
        });
        Ok(TestServer { url, seen })
    }

    /// The requests received so far, in order.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

async fn serve_one(mut stream: TcpStream, canned: &Canned) -> std::io::Result<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + 4 + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end + 4..]).into_owned();
    let mut words = head.split_whitespace();
    let method = words.next().unwrap_or_default().to_string();
    let target = words.next().unwrap_or_default().to_string();

    let mut response = format!(
        "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        canned.status,
        canned.body.len()
    );
    for (k, v) in &canned.headers {
        response.push_str(&format!("{k}: {v}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(&canned.body);
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(Seen {
        method,
        target,
        head,
        body,
    })
}

/// A logged-in client of `server` that sends every call there (no `/cluster` read).
fn client(server: &TestServer) -> MarketClient {
    MarketClient::new(&server.url, Some("tok".into())).with_direct_orders(false)
}

/// A `/cluster` answer naming `owner_url` (node "b") the owner of statement 32326, and
/// the base (node "a") of nothing.
fn cluster_view(owner_url: &str) -> Canned {
    answer(
        200,
        json!({
            "node": "a",
            "nodes": [
                {"id": "a", "url": "http://127.0.0.1:1", "statements": []},
                {"id": "b", "url": owner_url, "statements": ["32326"]},
            ],
            "statements": [{"statement": "32326", "owner": "b"}],
        }),
    )
}

#[tokio::test]
async fn orders_go_to_their_statements_owner_and_reads_to_the_base() -> TestResult {
    let owner = TestServer::start(vec![
        answer(200, json!({"_key": "7"})),
        answer(200, json!({"_key": "8"})),
    ])
    .await?;
    let base = TestServer::start(vec![
        cluster_view(&owner.url),
        answer(200, json!({"_key": "7"})),
    ])
    .await?;
    let c = MarketClient::new(&base.url, Some("tok".into()));
    c.push_proposal("32326", cost(2), None, None).await?;
    c.push_request("32326", json!([{"field": 1}]), cost(3), None, None)
        .await?;
    c.get_order(Side::Proposal, "7").await?;
    let at_base: Vec<String> = base.seen().iter().map(|s| s.target.clone()).collect();
    assert_eq!(
        at_base,
        ["/_db/market/v0_0/cluster", "/_db/market/v0_0/proposal/7"],
        "the view read once, reads at the base"
    );
    let at_owner: Vec<String> = owner.seen().iter().map(|s| s.target.clone()).collect();
    assert_eq!(
        at_owner,
        ["/_db/market/v0_0/proposal/", "/_db/market/v0_0/request/"]
    );
    assert_eq!(
        owner.seen()[0].header("authorization").as_deref(),
        Some("Bearer tok")
    );
    assert!(owner.seen()[0].header("idempotency-key").is_some());
    Ok(())
}

#[tokio::test]
async fn an_unreachable_owner_is_skipped_for_the_base() -> TestResult {
    // A port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        format!("http://{}", l.local_addr()?)
    };
    let base = TestServer::start(vec![
        cluster_view(&closed),
        answer(200, json!({"_key": "7"})),
        answer(200, json!({"_key": "8"})),
    ])
    .await?;
    let c = MarketClient::new(&base.url, Some("tok".into()));
    c.push_proposal("32326", cost(2), None, None).await?;
    c.push_proposal("32326", cost(2), None, None).await?;
    let seen = base.seen();
    let targets: Vec<&str> = seen.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(
        targets,
        [
            "/_db/market/v0_0/cluster",
            "/_db/market/v0_0/proposal/",
            "/_db/market/v0_0/proposal/"
        ],
        "the second order did not try the unreachable owner again"
    );
    Ok(())
}

fn cost(units: u64) -> Cost {
    match Cost::from_micros(units * 1_000_000) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn unavailable_with_retry_after_is_retried() -> TestResult {
    let server = TestServer::start(vec![
        busy(503, Some("0")),
        busy(429, Some("0")),
        answer(200, json!({"_key": "1", "status": "created"})),
    ])
    .await?;
    let got = client(&server).get_order(Side::Request, "1").await?;
    assert_eq!(got["status"], "created");
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert_eq!(
            (s.method.as_str(), s.target.as_str()),
            ("GET", "/_db/market/v0_0/request/1")
        );
        assert_eq!(s.header("authorization").as_deref(), Some("Bearer tok"));
    }
    Ok(())
}

#[tokio::test]
async fn conflict_is_not_retried() -> TestResult {
    let body = json!({"error": true, "code": 409,
        "errorMessage": "request 123 is processing, only created orders can be withdrawn"});
    let server = TestServer::start(vec![answer(409, body), answer(200, json!({}))]).await?;
    let err = client(&server)
        .withdraw_order(Side::Request, "123")
        .await
        .err();
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "DELETE");
    // The line ends with the id the call was sent under.
    let id = seen[0].header("x-request-id").unwrap_or_default();
    assert_eq!(id.len(), 16, "{id}");
    assert_eq!(
        err.map(|e| e.to_string()),
        Some(format!(
            "409 Conflict: request 123 is processing, only created orders can be withdrawn \
             (request id {id})"
        ))
    );
    Ok(())
}

#[tokio::test]
async fn unavailable_without_retry_after_is_not_retried() -> TestResult {
    let server = TestServer::start(vec![busy(503, None), answer(200, json!({}))]).await?;
    let err = client(&server).book("32326").await.err();
    assert_eq!(err.and_then(|e| e.status()), Some(503));
    assert_eq!(server.seen().len(), 1);
    Ok(())
}

#[tokio::test]
async fn gives_up_after_five_retries() -> TestResult {
    let answers = (0..=MAX_RETRIES + 1)
        .map(|_| busy(503, Some("0")))
        .collect();
    let server = TestServer::start(answers).await?;
    let err = client(&server)
        .push_proposal("32326", cost(2), None, None)
        .await
        .err();
    // Every resend went under the call's one id, which the line names.
    let ids: std::collections::BTreeSet<String> = server
        .seen()
        .iter()
        .map(|s| s.header("x-request-id").unwrap_or_default())
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let id = ids.into_iter().next().unwrap_or_default();
    assert_eq!(
        err.map(|e| e.to_string()),
        Some(format!("503 Service Unavailable: busy (request id {id})"))
    );
    assert_eq!(server.seen().len() as u32, MAX_RETRIES + 1);
    Ok(())
}

#[tokio::test]
async fn a_placement_keeps_its_idempotency_key_across_resends() -> TestResult {
    let server = TestServer::start(vec![
        busy(503, Some("0")),
        answer(200, json!({"_key": "7", "status": "created"})),
        answer(200, json!({"_key": "8", "status": "created"})),
        answer(200, json!({"_key": "9", "status": "created"})),
    ])
    .await?;
    let c = client(&server);
    c.push_proposal("32326", cost(2), None, None).await?;
    c.push_request("32326", json!([{"field": 1}]), cost(3), None, None)
        .await?;
    c.get_order(Side::Request, "9").await?;
    let keys: Vec<Option<String>> = server
        .seen()
        .iter()
        .map(|s| s.header("idempotency-key"))
        .collect();
    assert_eq!(keys.len(), 4);
    let first = keys[0].clone().ok_or("no Idempotency-Key on a placement")?;
    assert!(first.len() >= 32, "{first}");
    assert_eq!(
        keys[1].as_deref(),
        Some(first.as_str()),
        "a resend kept its key"
    );
    let second = keys[2].clone().ok_or("no Idempotency-Key on a placement")?;
    assert_ne!(first, second, "each placement has a key of its own");
    assert_eq!(keys[3], None, "reads carry no key");
    Ok(())
}

#[tokio::test]
async fn unreachable_market_is_one_clear_line() -> TestResult {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    drop(listener);
    let err = MarketClient::new(&url, None).health().await.err();
    assert_eq!(
        err.map(|e| e.to_string()),
        Some(format!(
            "cannot reach the market at {url}: connection refused"
        ))
    );
    Ok(())
}

#[tokio::test]
async fn calls_use_the_documented_paths_and_bodies() -> TestResult {
    let server = TestServer::start(vec![
        answer(200, json!({"jwt": "fresh"})),
        answer(200, json!({"_key": "5"})),
        answer(200, json!([])),
        answer(200, json!({"_key": "7"})),
    ])
    .await?;
    let anonymous = MarketClient::new(&format!("{}/", server.url), None);
    assert_eq!(anonymous.login("alice", "pw").await?, "fresh");
    let c = client(&server);
    c.push_request("32326", json!({"input": "1\n11"}), cost(2), Some(3), None)
        .await?;
    let filter = ListFilter {
        status: Some("created".into()),
        ..ListFilter::default()
    };
    c.list_orders(Side::Request, &filter).await?;
    c.push_proof("0XABcd", Some("16153923"), None).await?;

    let seen = server.seen();
    assert_eq!(seen[0].target, "/_open/auth");
    assert_eq!(seen[0].header("authorization"), None);
    assert_eq!(
        seen[0].json(),
        json!({"username": "alice", "password": "pw"})
    );
    assert_eq!(
        (seen[1].method.as_str(), seen[1].target.as_str()),
        ("POST", "/_db/market/v0_0/request/")
    );
    assert_eq!(
        seen[1].json(),
        json!({"statement_key": "32326", "input": {"input": "1\n11"}, "cost": 2, "eval_time": 3})
    );
    let q = "q=%5B%7B%22key%22%3A%22status%22%2C%22value%22%3A%22created%22%7D%5D";
    assert_eq!(seen[2].target, format!("/_db/market/v0_0/request/?{q}"));
    assert_eq!(seen[3].target, "/_db/market/v0_0/proof");
    assert_eq!(
        seen[3].json(),
        json!({"proof": "0xabcd", "proposal_key": "16153923"})
    );
    Ok(())
}

#[tokio::test]
async fn proof_by_request_follows_the_proof_key() -> TestResult {
    let server = TestServer::start(vec![
        answer(
            200,
            json!({"_key": "5", "status": "completed", "proof_key": "9"}),
        ),
        answer(200, json!({"_key": "9", "proof": "0x01"})),
        answer(200, json!({"_key": "6", "status": "processing"})),
    ])
    .await?;
    let c = client(&server);
    assert_eq!(c.get_proof_by_request("5", true).await?["_key"], "9");
    let seen = server.seen();
    assert_eq!(seen[1].target, "/_db/market/v0_0/proof/9?full=true");
    match c.get_proof_by_request("6", true).await {
        Err(e @ ClientError::NoProofYet { .. }) => {
            assert_eq!(
                e.to_string(),
                "request 6 has no proof yet (status: processing)"
            )
        }
        other => panic!("{other:?}"),
    }
    Ok(())
}

/// The client's futures are `Send`, so daemons may spawn them.
#[test]
fn futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let client = MarketClient::new("http://127.0.0.1:1", None);
    assert_send(&client.get_proof_by_request("1", true));
    assert_send(&client.push_proof("0x00", Some("1"), None));
    assert_send(&client.list_orders(Side::Proposal, &ListFilter::default()));
}

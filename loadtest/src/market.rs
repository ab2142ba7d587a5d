//! Speaking the market's HTTP API: the changeable target URL, simulated users (one
//! connection pool each), setting up users and statements, order bodies, and parsing the
//! few answer fields the harness needs.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use reqwest::header::HeaderValue;
use serde::Deserialize;

use crate::http1::Pool;

/// The market root path.
pub const ROOT: &str = "/_db/market/v0_0";

/// The example statement every run publishes (one copy per simulated statement).
const STATEMENT_JSON: &str = include_str!("../../example/statements/arithmetic.json");

/// Base URL of the node under test. It changes when the harness restarts the node (a
/// restarted node listens on a new port), so calls read it each time.
#[derive(Debug)]
pub struct Target {
    base: RwLock<(Arc<str>, SocketAddr)>,
}

/// The socket address of an `http://` base URL.
pub fn socket_addr(base: &str) -> Result<SocketAddr> {
    let url = reqwest::Url::parse(base)?;
    url.socket_addrs(|| Some(80))?
        .into_iter()
        .next()
        .with_context(|| format!("no address for {base}"))
}

impl Target {
    /// A target at `base` (already checked to be loopback).
    pub fn new(base: &str) -> Result<Target> {
        Ok(Target {
            base: RwLock::new((Arc::from(base), socket_addr(base)?)),
        })
    }

    /// The current base URL.
    pub fn base(&self) -> Arc<str> {
        self.base
            .read()
            .map(|b| b.0.clone())
            .unwrap_or_else(|e| e.into_inner().0.clone())
    }

    /// The current socket address.
    pub fn addr(&self) -> SocketAddr {
        self.base
            .read()
            .map(|b| b.1)
            .unwrap_or_else(|e| e.into_inner().1)
    }

    /// Points at a new base URL (after a restart).
    pub fn set(&self, base: &str) -> Result<()> {
        let addr = socket_addr(base)?;
        let mut b = self.base.write().unwrap_or_else(|e| e.into_inner());
        *b = (Arc::from(base), addr);
        Ok(())
    }
}

/// Order side, as the URL and the store spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A bid for a proof.
    Request,
    /// An offer to produce proofs.
    Proposal,
}

impl Kind {
    /// `request` or `proposal`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Request => "request",
            Kind::Proposal => "proposal",
        }
    }

    /// The other side.
    pub fn other(self) -> Kind {
        match self {
            Kind::Request => Kind::Proposal,
            Kind::Proposal => Kind::Request,
        }
    }
}

/// An order a simulated user placed.
#[derive(Debug, Clone, Copy)]
pub struct Placed {
    /// Its key.
    pub key: u64,
    /// Its side.
    pub kind: Kind,
}

/// What a simulated user remembers between calls (bounded).
#[derive(Debug, Default)]
pub struct UserState {
    /// Recently placed orders, newest last.
    pub recent: VecDeque<Placed>,
    /// Own proposals known to be matched and not yet proved.
    pub matched: VecDeque<u64>,
}

/// How many recent orders and matched proposals a user remembers.
const MEMORY: usize = 64;

impl UserState {
    /// Remembers a placed order.
    pub fn placed(&mut self, p: Placed) {
        if self.recent.len() >= MEMORY {
            self.recent.pop_front();
        }
        self.recent.push_back(p);
    }

    /// Remembers an own matched proposal.
    pub fn matched(&mut self, proposal: u64) {
        if self.matched.len() >= MEMORY {
            self.matched.pop_front();
        }
        self.matched.push_back(proposal);
    }
}

/// The node a simulated user is pinned to (several nodes): its calls all go there.
#[derive(Debug, Clone)]
pub struct Home {
    /// Index of the node among the market's nodes.
    pub index: usize,
    /// The node.
    pub target: Arc<Target>,
}

/// One simulated requester or producer: its own HTTP connection pool and token.
#[derive(Debug)]
pub struct SimUser {
    /// The node this user calls, when pinned to one (else the run's target).
    pub home: Option<Home>,
    /// The connection pool of the measured calls; only this user uses it.
    pub pool: Pool,
    /// The `Authorization: Bearer <jwt>` header line (CRLF-terminated), for `pool`.
    pub auth_text: String,
    /// A reqwest client for setup and out-of-band reads (not measured).
    pub http: reqwest::Client,
    /// `Bearer <jwt>`.
    pub auth: HeaderValue,
    /// What it remembers.
    pub state: Mutex<UserState>,
}

/// The HTTP client of one simulated user.
pub fn http_client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Users and statements a run drives.
#[derive(Debug)]
pub struct Population {
    /// Users that place requests.
    pub requesters: Vec<Arc<SimUser>>,
    /// Users that place proposals and push proofs.
    pub producers: Vec<Arc<SimUser>>,
    /// Statement keys.
    pub statements: Vec<u64>,
    /// Several nodes: statement → index of the node owning it (empty otherwise), to
    /// tell local orders from forwarded ones.
    pub owners: HashMap<u64, usize>,
}

impl Population {
    /// A population of users that need no login (the baseline server ignores tokens).
    pub fn anonymous(users: usize) -> Result<Population> {
        let mk = |_: usize| -> Result<Arc<SimUser>> {
            Ok(Arc::new(SimUser {
                home: None,
                pool: Pool::new(),
                auth_text: "Authorization: Bearer baseline\r\n".into(),
                http: http_client()?,
                auth: HeaderValue::from_static("Bearer baseline"),
                state: Mutex::new(UserState::default()),
            }))
        };
        let half = users.max(2) / 2;
        Ok(Population {
            requesters: (0..half).map(mk).collect::<Result<_>>()?,
            producers: (half..users.max(2)).map(mk).collect::<Result<_>>()?,
            statements: vec![1],
            owners: HashMap::new(),
        })
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.requesters.len() + self.producers.len()
    }

    /// `(entry node, owner node)` of an order `user` places on `statement`, when the
    /// user is pinned to a node and the statement's owner is known.
    pub fn route(&self, user: &SimUser, statement: u64) -> Option<(usize, usize)> {
        let entry = user.home.as_ref()?.index;
        Some((entry, *self.owners.get(&statement)?))
    }
}

/// Error body of the API.
#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(rename = "errorMessage")]
    message: Option<String>,
}

/// How long setup calls keep retrying answers of 503/429 (a node starting, or a
/// statement changing hands), honouring `Retry-After` (at most 5 s per wait).
const SETUP_RETRY_FOR: Duration = Duration::from_secs(60);

/// The wait a 503/429 asks for: `Retry-After` seconds (at most 5), else 200 ms.
pub fn retry_wait(retry_after: Option<&str>) -> Duration {
    retry_after
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_millis(200), |s| {
            Duration::from_secs(s.min(5)).max(Duration::from_millis(50))
        })
}

/// A failed setup call.
#[derive(Debug)]
struct CallError {
    status: Option<reqwest::StatusCode>,
    /// Earlier attempts were answered 503/429 (so a 409 may be our own earlier call).
    retried: bool,
    error: anyhow::Error,
}

/// A setup call (`POST` with a JSON body, or `GET` without), retrying 503/429 answers
/// as [`SETUP_RETRY_FOR`] says; the JSON of the 2xx answer.
async fn call_json(
    http: &reqwest::Client,
    url: &str,
    auth: Option<&HeaderValue>,
    body: Option<&str>,
) -> std::result::Result<serde_json::Value, CallError> {
    let deadline = Instant::now() + SETUP_RETRY_FOR;
    let mut retried = false;
    let method = if body.is_some() { "POST" } else { "GET" };
    loop {
        let mut rb = match body {
            Some(b) => http
                .post(url)
                .header("content-type", "application/json")
                .body(b.to_owned()),
            None => http.get(url),
        };
        if let Some(a) = auth {
            rb = rb.header("authorization", a.clone());
        }
        let fail = |status, error| CallError {
            status,
            retried,
            error,
        };
        let r = match rb.send().await {
            Ok(r) => r,
            Err(e) => {
                return Err(fail(
                    None,
                    anyhow::Error::new(e).context(format!("{method} {url}")),
                ))
            }
        };
        let status = r.status();
        let wait = retry_wait(
            r.headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
        );
        let text = r.text().await.map_err(|e| fail(Some(status), e.into()))?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| fail(Some(status), e.into()));
        }
        let busy = status == reqwest::StatusCode::SERVICE_UNAVAILABLE
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
        if busy && Instant::now() + wait < deadline && !crate::driver::stopped() {
            retried = true;
            tokio::time::sleep(wait).await;
            continue;
        }
        let msg = serde_json::from_str::<ApiError>(&text)
            .ok()
            .and_then(|e| e.message)
            .unwrap_or(text);
        return Err(fail(
            Some(status),
            anyhow::anyhow!("{method} {url}: {status}: {msg}"),
        ));
    }
}

async fn post_json_status(
    http: &reqwest::Client,
    url: &str,
    auth: Option<&HeaderValue>,
    body: String,
) -> std::result::Result<serde_json::Value, CallError> {
    call_json(http, url, auth, Some(&body)).await
}

async fn post_json(
    http: &reqwest::Client,
    url: &str,
    auth: Option<&HeaderValue>,
    body: String,
) -> Result<serde_json::Value> {
    post_json_status(http, url, auth, body)
        .await
        .map_err(|e| e.error)
}

/// `GET url` as `user` (out of band, not measured), retrying brief 503/429 answers.
pub async fn get_json(user: &SimUser, url: &str) -> Result<serde_json::Value> {
    call_json(&user.http, url, Some(&user.auth), None)
        .await
        .map_err(|e| e.error)
}

/// Signs a user up and logs in; returns the simulated user.
pub async fn sign_up(base: &str, name: &str) -> Result<SimUser> {
    let http = http_client()?;
    let pw = format!("pw-{name}");
    let body = serde_json::json!({"user": name, "passwd": pw, "email": format!("{name}@loadtest.invalid")});
    let signed = post_json_status(
        &http,
        &format!("{base}{ROOT}/user/signup"),
        None,
        body.to_string(),
    )
    .await;
    match signed {
        Ok(_) => {}
        // A 503 answer may have come after the sign-up was stored: the retry then finds
        // the user there, and logging in tells whether it is ours.
        Err(e) if e.retried && e.status == Some(reqwest::StatusCode::CONFLICT) => {}
        Err(e) => return Err(e.error),
    }
    let body = serde_json::json!({"username": name, "password": pw});
    let v = post_json(&http, &format!("{base}/_open/auth"), None, body.to_string()).await?;
    let jwt = v["jwt"].as_str().context("login answer without jwt")?;
    let auth_text = format!("Authorization: Bearer {jwt}\r\n");
    Ok(SimUser {
        home: None,
        pool: Pool::new(),
        http,
        auth: HeaderValue::from_str(&format!("Bearer {jwt}"))?,
        auth_text,
        state: Mutex::new(UserState::default()),
    })
}

/// Publishes the example statement; returns its key.
pub async fn push_statement(base: &str, user: &SimUser) -> Result<u64> {
    let v = post_json(
        &user.http,
        &format!("{base}{ROOT}/statement/"),
        Some(&user.auth),
        STATEMENT_JSON.to_owned(),
    )
    .await?;
    v["_key"]
        .as_str()
        .and_then(|k| k.parse().ok())
        .context("statement answer without a decimal _key")
}

/// Signs up `requesters` + `producers` users named after `run` and publishes
/// `statements` statements.
pub async fn populate(
    target: &Target,
    run: &str,
    requesters: usize,
    producers: usize,
    statements: usize,
) -> Result<Population> {
    let bases = [target.base()];
    let (requesters, producers, statements) =
        create(&bases, run, requesters, producers, statements).await?;
    Ok(Population {
        requesters: requesters.into_iter().map(|(_, u)| Arc::new(u)).collect(),
        producers: producers.into_iter().map(|(_, u)| Arc::new(u)).collect(),
        statements,
        owners: HashMap::new(),
    })
}

/// Node index of the `i`-th user of one side over `nodes` nodes: round robin.
pub fn home_of(i: usize, nodes: usize) -> usize {
    i % nodes.max(1)
}

/// Like [`populate`] over several nodes: the users of each side are spread round robin
/// over `nodes`, each signed up on and pinned to its node (its connection pool only ever
/// calls that node), and the statements are created round robin over the nodes. The
/// statements' owners are left for the caller to fill in (`Population::owners`).
pub async fn populate_spread(
    nodes: &[Arc<Target>],
    run: &str,
    requesters: usize,
    producers: usize,
    statements: usize,
) -> Result<Population> {
    if nodes.is_empty() {
        bail!("no node to populate");
    }
    let bases: Vec<Arc<str>> = nodes.iter().map(|t| t.base()).collect();
    let (requesters, producers, statements) =
        create(&bases, run, requesters, producers, statements).await?;
    let pin = |(i, mut u): (usize, SimUser)| {
        u.home = Some(Home {
            index: i,
            target: nodes[i].clone(),
        });
        Arc::new(u)
    };
    Ok(Population {
        requesters: requesters.into_iter().map(pin).collect(),
        producers: producers.into_iter().map(pin).collect(),
        statements,
        owners: HashMap::new(),
    })
}

/// Signs up the users (the `i`-th of each side on node `home_of(i)`) and creates the
/// statements (the `i`-th on node `i % nodes`); returns users with their node index.
async fn create(
    bases: &[Arc<str>],
    run: &str,
    requesters: usize,
    producers: usize,
    statements: usize,
) -> Result<(Vec<(usize, SimUser)>, Vec<(usize, SimUser)>, Vec<u64>)> {
    if requesters == 0 || producers == 0 || statements == 0 {
        bail!("need at least one requester, one producer and one statement");
    }
    let n = bases.len();
    let mut wanted: Vec<(String, usize)> = (0..requesters)
        .map(|i| (format!("{run}-req{i}"), home_of(i, n)))
        .collect();
    wanted.extend((0..producers).map(|i| (format!("{run}-prod{i}"), home_of(i, n))));
    // Sign-ups hash a password (argon2): a few at a time.
    let mut users = Vec::with_capacity(wanted.len());
    for chunk in wanted.chunks(4) {
        let futs = chunk.iter().map(|(name, home)| {
            let (base, name, home) = (bases[*home].clone(), name.clone(), *home);
            async move { sign_up(&base, &name).await.map(|u| (home, u)) }
        });
        for u in futures_join(futs).await {
            users.push(u?);
        }
    }
    let producers_v = users.split_off(requesters);
    let mut keys = Vec::with_capacity(statements);
    for i in 0..statements {
        let who = &users[i % users.len()].1;
        keys.push(push_statement(&bases[i % n], who).await?);
    }
    Ok((users, producers_v, keys))
}

/// Awaits a handful of futures concurrently (a tiny `join_all`).
async fn futures_join<F, T>(futs: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        match h.await {
            Ok(v) => out.push(v),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    out
}

/// A cost in micro-units as the JSON number text the API takes (`2.5`, `7`).
pub fn cost_text(micros: u64) -> String {
    let units = micros / 1_000_000;
    let frac = micros % 1_000_000;
    if frac == 0 {
        units.to_string()
    } else {
        let f = format!("{frac:06}");
        format!("{units}.{}", f.trim_end_matches('0'))
    }
}

/// The body of `POST …/request/`.
pub fn request_body(statement: u64, input: (u64, u64), cost: u64, eval: Option<u32>) -> String {
    let eval = eval
        .map(|e| format!(",\"eval_time\":{e}"))
        .unwrap_or_default();
    format!(
        "{{\"statement_key\":\"{statement}\",\"input\":[{{\"field\":{}}},{{\"field\":{}}}],\"cost\":{}{eval}}}",
        input.0,
        input.1,
        cost_text(cost)
    )
}

/// The body of `POST …/proposal/`.
pub fn proposal_body(statement: u64, cost: u64, eval: Option<u32>) -> String {
    let eval = eval
        .map(|e| format!(",\"eval_time\":{e}"))
        .unwrap_or_default();
    format!(
        "{{\"statement_key\":\"{statement}\",\"cost\":{}{eval}}}",
        cost_text(cost)
    )
}

/// The body of `POST …/proof` for `proposal` with a made-up proof of `len` bytes.
pub fn proof_body(proposal: u64, seed: u64, len: usize) -> String {
    let mut hex = String::with_capacity(2 + 2 * len);
    hex.push_str("0x");
    let mut x = seed | 1;
    for _ in 0..len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        hex.push_str(&format!("{:02x}", x as u8));
    }
    format!("{{\"proof\":\"{hex}\",\"proposal_key\":\"{proposal}\"}}")
}

/// The fields of an order answer the harness reads.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct OrderAnswer {
    /// Key.
    #[serde(rename = "_key")]
    pub key: String,
    /// Status.
    pub status: String,
    /// Set on a matched request.
    #[serde(default)]
    pub proposal_key: Option<String>,
    /// Set on a matched proposal.
    #[serde(default)]
    pub request_key: Option<String>,
    /// Trade price (units), when matched.
    #[serde(default)]
    pub price: Option<f64>,
}

impl OrderAnswer {
    /// Parses an answer body.
    pub fn parse(body: &[u8]) -> Option<OrderAnswer> {
        serde_json::from_slice(body).ok()
    }

    /// The key as a number.
    pub fn key_u64(&self) -> Option<u64> {
        self.key.parse().ok()
    }

    /// The matched counterpart, if the answer says the order matched.
    pub fn counterpart(&self) -> Option<u64> {
        self.proposal_key
            .as_deref()
            .or(self.request_key.as_deref())
            .and_then(|k| k.parse().ok())
    }

    /// The price in micro-units.
    pub fn price_micros(&self) -> Option<u64> {
        self.price.map(|p| (p * 1e6).round() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_valid_json_with_exact_costs() {
        assert_eq!(cost_text(2_000_000), "2");
        assert_eq!(cost_text(2_500_000), "2.5");
        assert_eq!(cost_text(10_000), "0.01");
        assert_eq!(cost_text(1_000_001), "1.000001");
        let r: serde_json::Value =
            serde_json::from_str(&request_body(7, (1, 2), 3_250_000, Some(30))).unwrap();
        assert_eq!(r["statement_key"], "7");
        assert_eq!(r["input"][1]["field"], 2);
        assert_eq!(r["cost"].as_f64(), Some(3.25));
        assert_eq!(r["eval_time"], 30);
        let p: serde_json::Value =
            serde_json::from_str(&proposal_body(7, 1_000_000, None)).unwrap();
        assert!(p.get("eval_time").is_none());
        let f: serde_json::Value = serde_json::from_str(&proof_body(9, 1, 16)).unwrap();
        assert_eq!(f["proof"].as_str().unwrap().len(), 34);
        assert_eq!(f["proposal_key"], "9");
    }

    #[test]
    fn parses_order_answers() {
        let a = OrderAnswer::parse(
            br#"{"_key":"3","status":"processing","proposal_key":"2","price":2.5,"cost":3}"#,
        )
        .unwrap();
        assert_eq!(a.key_u64(), Some(3));
        assert_eq!(a.counterpart(), Some(2));
        assert_eq!(a.price_micros(), Some(2_500_000));
        let b = OrderAnswer::parse(br#"{"_key":"4","status":"created","eval_time":null}"#).unwrap();
        assert_eq!(b.counterpart(), None);
        assert!(OrderAnswer::parse(b"{}").is_none());
    }

    #[test]
    fn retry_waits_follow_retry_after() {
        assert_eq!(retry_wait(Some("1")), Duration::from_secs(1));
        assert_eq!(retry_wait(Some(" 2 ")), Duration::from_secs(2));
        assert_eq!(retry_wait(Some("600")), Duration::from_secs(5));
        assert_eq!(retry_wait(Some("0")), Duration::from_millis(50));
        assert_eq!(retry_wait(None), Duration::from_millis(200));
        // An HTTP date is not parsed: the short default applies.
        assert_eq!(
            retry_wait(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            Duration::from_millis(200)
        );
    }

    /// A server answering 503 + Retry-After twice, then 200: setup calls get through;
    /// another answering 400 fails at once.
    #[tokio::test]
    async fn setup_calls_retry_brief_503s() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let answers = [
                "503 Service Unavailable\r\nRetry-After: 0",
                "503 Service Unavailable\r\nRetry-After: 0",
                "200 OK",
                "400 Bad Request",
            ];
            for a in answers {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                // Head and the 2-byte body `{}`.
                while !got.windows(4).any(|w| w == b"\r\n\r\n") || !got.ends_with(b"{}") {
                    let n = s.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                let body = r#"{"errorMessage":"busy","n":1}"#;
                let resp = format!(
                    "HTTP/1.1 {a}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(resp.as_bytes()).await.unwrap();
            }
        });
        let http = http_client().unwrap();
        let url = format!("http://{addr}/x");
        let t = Instant::now();
        let v = post_json(&http, &url, None, "{}".into()).await.unwrap();
        assert_eq!(v["n"], 1);
        assert!(t.elapsed() >= Duration::from_millis(100), "two 50 ms waits");
        let e = post_json_status(&http, &url, None, "{}".into())
            .await
            .unwrap_err();
        assert_eq!(e.status, Some(reqwest::StatusCode::BAD_REQUEST));
        assert!(!e.retried);
        assert!(e.error.to_string().contains("busy"), "{}", e.error);
        server.await.unwrap();
    }

    #[test]
    fn users_spread_round_robin_and_routes_classify() {
        let homes: Vec<usize> = (0..7).map(|i| home_of(i, 3)).collect();
        assert_eq!(homes, vec![0, 1, 2, 0, 1, 2, 0]);
        assert_eq!(home_of(5, 1), 0);
        assert_eq!(home_of(5, 0), 0);
        let nodes: Vec<Arc<Target>> = (1..=3)
            .map(|p| Arc::new(Target::new(&format!("http://127.0.0.1:{p}")).unwrap()))
            .collect();
        let user = |home: Option<usize>| SimUser {
            home: home.map(|i| Home {
                index: i,
                target: nodes[i].clone(),
            }),
            pool: Pool::new(),
            auth_text: String::new(),
            http: http_client().unwrap(),
            auth: HeaderValue::from_static("Bearer x"),
            state: Mutex::new(UserState::default()),
        };
        let pop = Population {
            requesters: Vec::new(),
            producers: Vec::new(),
            statements: vec![10, 11],
            owners: HashMap::from([(10, 0), (11, 2)]),
        };
        assert_eq!(pop.route(&user(Some(0)), 10), Some((0, 0)));
        assert_eq!(pop.route(&user(Some(1)), 11), Some((1, 2)));
        assert_eq!(pop.route(&user(Some(1)), 99), None);
        assert_eq!(pop.route(&user(None), 10), None);
    }

    #[test]
    fn target_can_move() {
        let t = Target::new("http://127.0.0.1:1").unwrap();
        t.set("http://127.0.0.1:2").unwrap();
        assert_eq!(&*t.base(), "http://127.0.0.1:2");
        assert_eq!(t.addr(), "127.0.0.1:2".parse().unwrap());
    }
}

//! Speaking the market's HTTP API: the changeable target URL, simulated users (one
//! connection pool each), setting up users and statements, order bodies, and parsing the
//! few answer fields the harness needs.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

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

/// One simulated requester or producer: its own HTTP connection pool and token.
#[derive(Debug)]
pub struct SimUser {
    /// The connection pool of the measured calls; only this user uses it.
    pub pool: Pool,
    /// `Bearer <jwt>` as text, for `pool`.
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
}

impl Population {
    /// A population of users that need no login (the baseline server ignores tokens).
    pub fn anonymous(users: usize) -> Result<Population> {
        let mk = |_: usize| -> Result<Arc<SimUser>> {
            Ok(Arc::new(SimUser {
                pool: Pool::new(),
                auth_text: "Bearer baseline".into(),
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
        })
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.requesters.len() + self.producers.len()
    }
}

/// Error body of the API.
#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(rename = "errorMessage")]
    message: Option<String>,
}

async fn post_json(
    http: &reqwest::Client,
    url: &str,
    auth: Option<&HeaderValue>,
    body: String,
) -> Result<serde_json::Value> {
    let mut rb = http
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(a) = auth {
        rb = rb.header("authorization", a.clone());
    }
    let r = rb.send().await.with_context(|| format!("POST {url}"))?;
    let status = r.status();
    let text = r.text().await?;
    if !status.is_success() {
        let msg = serde_json::from_str::<ApiError>(&text)
            .ok()
            .and_then(|e| e.message)
            .unwrap_or(text);
        bail!("POST {url}: {status}: {msg}");
    }
    Ok(serde_json::from_str(&text)?)
}

/// Signs a user up and logs in; returns the simulated user.
pub async fn sign_up(base: &str, name: &str) -> Result<SimUser> {
    let http = http_client()?;
    let pw = format!("pw-{name}");
    let body = serde_json::json!({"user": name, "passwd": pw, "email": format!("{name}@loadtest.invalid")});
    post_json(
        &http,
        &format!("{base}{ROOT}/user/signup"),
        None,
        body.to_string(),
    )
    .await?;
    let body = serde_json::json!({"username": name, "password": pw});
    let v = post_json(&http, &format!("{base}/_open/auth"), None, body.to_string()).await?;
    let jwt = v["jwt"].as_str().context("login answer without jwt")?;
    let auth_text = format!("Bearer {jwt}");
    Ok(SimUser {
        pool: Pool::new(),
        http,
        auth: HeaderValue::from_str(&auth_text)?,
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
    if requesters == 0 || producers == 0 || statements == 0 {
        bail!("need at least one requester, one producer and one statement");
    }
    let base = target.base();
    let mut names: Vec<String> = (0..requesters).map(|i| format!("{run}-req{i}")).collect();
    names.extend((0..producers).map(|i| format!("{run}-prod{i}")));
    // Sign-ups hash a password (argon2): a few at a time.
    let mut users = Vec::with_capacity(names.len());
    for chunk in names.chunks(4) {
        let futs = chunk.iter().map(|n| {
            let (base, n) = (base.clone(), n.clone());
            async move { sign_up(&base, &n).await }
        });
        for u in futures_join(futs).await {
            users.push(Arc::new(u?));
        }
    }
    let producers_v = users.split_off(requesters);
    let mut keys = Vec::with_capacity(statements);
    for i in 0..statements {
        let who = &users[i % users.len()];
        keys.push(push_statement(&base, who).await?);
    }
    Ok(Population {
        requesters: users,
        producers: producers_v,
        statements: keys,
    })
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
    fn target_can_move() {
        let t = Target::new("http://127.0.0.1:1").unwrap();
        t.set("http://127.0.0.1:2").unwrap();
        assert_eq!(&*t.base(), "http://127.0.0.1:2");
        assert_eq!(t.addr(), "127.0.0.1:2".parse().unwrap());
    }
}

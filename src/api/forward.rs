//! Dispatch of calls about a statement: served here, or forwarded to its owner.
//!
//! A handler parses its body once, then [`dispatch`] asks the router for the
//! statement's [`Route`] and acts on it: a local call gets the matcher's handle; a
//! forwarded one sends the client's own bytes, token and `Idempotency-Key` to the owner,
//! signed with the cluster secret ([`NodeAuth::sign`]), and relays its answer; a
//! statement changing hands here is routed again after a pause. The owner re-checks
//! everything (token, body, ownership) as if the client had called it, so a forwarded
//! call is exactly as safe as a direct one. The hop count travels in [`HOPS_HEADER`] and
//! is believed only on a signed call ([`hops`]); a node forwards a call at most
//! [`crate::market::router::MAX_HOPS`] times, so views that disagree for a moment
//! cannot loop.
//!
//! A node without a cluster secret forwards nothing: a call about a statement another
//! node owns is answered 503 at once, saying why. An owner that refuses the signature
//! (the nodes' secrets or clocks differ) is reported to the client as a 503 naming the
//! cause, never relayed as a 401, which would look like a bad token.

use std::future::Future;
use std::time::{Duration, Instant};

use actix_web::http::{header, StatusCode};
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::cluster::signing::MAX_CLOCK_SKEW;
use crate::domain::Key;
use crate::error::MarketError;
use crate::market::{LocalError, LocalResult, MatcherHandle, Route, Router};
use crate::protocol::{IDEMPOTENCY_HEADER, NODE_AUTH_SCHEME};

use super::error::ApiError;
use super::log_gate::LogGate;
use super::node_auth::{hops, NodeAuth};

pub use crate::protocol::HOPS_HEADER;

/// Routing attempts for a call whose statement is changing hands.
const ATTEMPTS: u32 = 40;

/// An HTTP client for node-to-node calls; one per HTTP worker thread, so each keeps
/// its own pool of keep-alive connections on the thread that uses them.
pub struct Forwarder {
    client: reqwest::Client,
}

impl Default for Forwarder {
    fn default() -> Self {
        Forwarder::new()
    }
}

impl Forwarder {
    /// A client with short connect and generous response timeouts (an owner verifies
    /// a pushed proof before answering).
    pub fn new() -> Forwarder {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(120))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Forwarder { client }
    }
}

/// Whether a call may be sent to an owner again when the first try may have reached it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// Applying it twice is refused or harmless (withdraw, proof, reads, keyed orders).
    Safe,
    /// It could be applied twice (an order without an Idempotency-Key).
    Unsafe,
}

/// What a dispatched call produced.
pub enum Answer<T> {
    /// Served here: the market's answer, to render.
    Local(T),
    /// Served by the owner: its response, relayed as is.
    Forwarded(HttpResponse),
}

impl<T> Answer<T> {
    /// The HTTP response, rendering a local answer with `render`.
    pub fn respond(self, render: impl FnOnce(T) -> HttpResponse) -> HttpResponse {
        match self {
            Answer::Local(v) => render(v),
            Answer::Forwarded(r) => r,
        }
    }
}

/// Runs a call about `stmt` where it belongs: `local` with this node's matcher, or
/// the client's `body` forwarded to the owner.
pub async fn dispatch<T, F, Fut>(
    router: &Router,
    req: &HttpRequest,
    stmt: Key,
    body: Option<&Bytes>,
    resend: Resend,
    local: F,
) -> Result<Answer<T>, ApiError>
where
    F: Fn(MatcherHandle) -> Fut,
    Fut: Future<Output = LocalResult<T>>,
{
    let mut hops = hops(req);
    let mut unreachable = 0;
    for attempt in 0..ATTEMPTS {
        let pause = match router.route(stmt, hops).await? {
            Route::Local(m) => match local(m).await {
                Ok(v) => return Ok(Answer::Local(v)),
                Err(LocalError::Market(e)) => return Err(e.into()),
                // The matcher left before applying the call: route again.
                Err(LocalError::Moved) => Duration::from_millis(10),
            },
            Route::Forward(url) => {
                router.count_forwarded();
                let e = match forward(req, body, &url, hops).await {
                    Ok(r) => return Ok(Answer::Forwarded(r)),
                    // Not sent, or refused by the owner before it did anything: say why.
                    Err(Forward::Refused(e)) => return Err(e),
                    // Nothing was sent: the owner may have just left.
                    Err(Forward::Unreachable(e)) => e,
                    // The owner may have applied it: send it again only if that is safe.
                    Err(Forward::Failed(e)) if resend == Resend::Safe => e,
                    Err(Forward::Failed(_)) => return Err(outcome_unknown()),
                };
                if unreachable >= 2 {
                    return Err(e);
                }
                // Read the live nodes again and route once more.
                unreachable += 1;
                router
                    .refresh_view(Instant::now())
                    .await
                    .map_err(MarketError::from)?;
                continue;
            }
            // Out of hops on a node whose view was just read again (a forwarded call
            // makes the router refresh it): the nodes' views disagree. This one is as
            // fresh as it gets: route the call once more as a client's (one forward to
            // the owner) instead of waiting for the views to change.
            Route::Retry(_) if hops > 0 => {
                hops = 0;
                continue;
            }
            Route::Retry(after) => after,
        };
        // Back off a little more each time while the statement changes hands.
        tokio::time::sleep(pause * (attempt.min(10) + 1)).await;
    }
    Err(MarketError::unavailable("the statement is changing hands, retry shortly").into())
}

/// A forwarded order that may or may not have been placed: not a 503, which tells
/// clients to resend (and would place it twice).
fn outcome_unknown() -> ApiError {
    MarketError::placement_unknown("the node owning this statement did not answer").into()
}

/// Logs a failed forward at most once a second per process, with how many were not
/// logged: a dead owner makes every call for its statements fail until its lease lapses.
fn warn_rate_limited(url: &str, e: &reqwest::Error) {
    static GATE: LogGate = LogGate::new();
    if let Some(suppressed) = GATE.pass_now() {
        tracing::warn!(%url, error = %e, suppressed, "forwarding to the owner failed");
    }
}

/// The 503 for a call this node did not forward to the owner at `url`, or whose
/// forward the owner refused, because `why`; logged at most once a second.
fn not_forwarded(url: &str, why: &str) -> Forward {
    static GATE: LogGate = LogGate::new();
    if let Some(suppressed) = GATE.pass_now() {
        tracing::warn!(%url, reason = %why, suppressed, "a call was not forwarded to its statement's owner");
    }
    Forward::Refused(
        MarketError::unavailable(format!(
            "the statement is served by another node ({url}), and {why}; every node of the \
             market needs the same cluster secret (PROOF_MARKET_CLUSTER_SECRET or \
             --cluster-secret-file) and a clock within {} s of the others'",
            MAX_CLOCK_SKEW.as_secs()
        ))
        .into(),
    )
}

/// Why a forward failed.
enum Forward {
    /// Not sent (no cluster secret here), or refused by the owner's node
    /// authentication before it did anything: final, and nothing changed.
    Refused(ApiError),
    /// No connection to the owner: the call was not sent.
    Unreachable(ApiError),
    /// Anything else (the call may have reached the owner).
    Failed(ApiError),
}

impl From<MarketError> for Forward {
    fn from(e: MarketError) -> Self {
        Forward::Failed(e.into())
    }
}

async fn forward(
    req: &HttpRequest,
    body: Option<&Bytes>,
    base: &str,
    hops: u8,
) -> Result<HttpResponse, Forward> {
    let fwd = req
        .app_data::<web::Data<Forwarder>>()
        .ok_or_else(|| MarketError::Internal("forwarder missing".into()))?;
    let auth = req
        .app_data::<web::Data<NodeAuth>>()
        .ok_or_else(|| MarketError::Internal("node authentication missing".into()))?;
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let url = reqwest::Url::parse(&format!("{}{}", base.trim_end_matches('/'), path))
        .map_err(|e| MarketError::Internal(format!("owner URL {base}: {e}")))?;
    // Signed as it goes on the wire: parsing the URL may have escaped characters.
    let target = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let method = req.method().as_str();
    let Some(signed) = auth.sign(method, &target, hops + 1, body.map_or(&[], |b| &b[..])) else {
        return Err(not_forwarded(
            base,
            "this node has no cluster secret, so it forwards no calls",
        ));
    };
    let shown = url.to_string();
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|e| MarketError::Internal(e.to_string()))?;
    let mut out = fwd.client.request(method, url);
    for (name, value) in signed {
        out = out.header(name, value);
    }
    if let Some(auth) = req.headers().get(header::AUTHORIZATION) {
        out = out.header(reqwest::header::AUTHORIZATION, auth.as_bytes());
    }
    if let Some(k) = req.headers().get(IDEMPOTENCY_HEADER) {
        out = out.header(IDEMPOTENCY_HEADER, k.as_bytes());
    }
    if let Some(id) = super::request_id::of(req) {
        out = out.header(super::request_id::REQUEST_ID_HEADER, id.0.as_bytes());
    }
    if let Some(b) = body {
        out = out
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(b.clone());
    }
    let resp = out.send().await.map_err(|e| {
        warn_rate_limited(&shown, &e);
        // A dead owner's heartbeat lapses within a lease; then another node owns the
        // statement, and this 503 tells the client to come back by then.
        let err = ApiError::from(MarketError::unavailable(
            "the node owning this statement is unreachable, retry shortly",
        ));
        let reason = if e.is_connect() {
            "unreachable"
        } else {
            "failed"
        };
        crate::metrics::metrics()
            .forward_failures
            .with_label_values(&[reason])
            .inc();
        if e.is_connect() {
            Forward::Unreachable(err)
        } else {
            Forward::Failed(err)
        }
    })?;
    let status = StatusCode::from_u16(resp.status().as_u16())
        .map_err(|e| MarketError::Internal(e.to_string()))?;
    // A 401 with the node scheme refuses this node, not the user's token.
    let refused_us = status == StatusCode::UNAUTHORIZED
        && resp
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .is_some_and(|v| v.as_bytes() == NODE_AUTH_SCHEME.as_bytes());
    let mut b = HttpResponse::build(status);
    for name in [reqwest::header::CONTENT_TYPE, reqwest::header::RETRY_AFTER] {
        if let Some(v) = resp.headers().get(&name) {
            b.insert_header((name.as_str(), v.as_bytes()));
        }
    }
    let bytes = resp.bytes().await.map_err(|e| {
        tracing::warn!(url = %shown, error = %e, "reading the owner's answer failed");
        MarketError::unavailable("the node owning this statement did not answer, retry shortly")
    })?;
    if refused_us {
        let reason = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("errorMessage")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| "no reason given".into());
        return Err(not_forwarded(
            base,
            &format!("that node refused this node's signed call: {reason}"),
        ));
    }
    Ok(b.body(bytes))
}

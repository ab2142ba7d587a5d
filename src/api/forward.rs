//! Dispatch of calls about a statement: served here, or forwarded to its owner.
//!
//! A handler parses its body once, then [`dispatch`] asks the router for the
//! statement's [`Route`] and acts on it: a local call gets the matcher's handle; a
//! forwarded one sends the client's own bytes, token and `Idempotency-Key` to the owner
//! and relays its answer; a statement changing hands here is routed again after a
//! pause. The owner re-checks everything (token, body, ownership) as if the client had
//! called it, so a forwarded call is exactly as safe as a direct one. The hop count
//! travels in [`HOPS_HEADER`]; a node forwards a call at most
//! [`crate::market::router::MAX_HOPS`] times, so views that disagree for a moment
//! cannot loop.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::http::{header, StatusCode};
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::domain::Key;
use crate::error::MarketError;
use crate::market::router::MAX_HOPS;
use crate::market::{LocalError, LocalResult, MatcherHandle, Route, Router};

use super::error::ApiError;

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

/// How many hops the call has made (0: straight from a client).
///
/// Node-to-node calls are not authenticated yet, so anyone can send [`HOPS_HEADER`].
/// Only a plausible forward counts: exactly one value, a decimal from 1 to
/// [`MAX_HOPS`] + 1 (a node never sends more; a leaving node may take one hop more).
/// Anything else (several headers, a larger number, text, a sign) is ignored and the
/// call is routed as a client's. A client that sends a value in range gets what a
/// stale forward gets: on the owner it is served as usual; on another node, a refresh
/// of the live view and, when out of hops, one forward to the owner (see [`dispatch`]).
/// Checking that a forward comes from a node needs authenticated node-to-node calls.
pub fn hops(req: &HttpRequest) -> u8 {
    let mut values = req.headers().get_all(HOPS_HEADER);
    let (Some(v), None) = (values.next(), values.next()) else {
        return 0;
    };
    match v.to_str().ok().and_then(|h| h.parse::<u8>().ok()) {
        Some(n) if (1..=MAX_HOPS + 1).contains(&n) && v.len() == 1 => n,
        _ => 0,
    }
}

/// Whether a call was forwarded by another node (it was counted against the client's
/// rate limits where the client called).
pub fn from_node(req: &HttpRequest) -> bool {
    hops(req) > 0
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
    pub fn respond(self, render: impl FnOnce(T) -> serde_json::Value) -> HttpResponse {
        match self {
            Answer::Local(v) => HttpResponse::Ok().json(render(v)),
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
                let e = match forward(req, body, &url, hops).await {
                    Ok(r) => return Ok(Answer::Forwarded(r)),
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
            // Out of hops on a node whose view was just read again (a call that says it
            // was forwarded makes the router refresh it): a real forward meets this only
            // while views disagree, a client's forged header every time. Either way the
            // view is as fresh as it gets: route it once more as a client's call (one
            // forward to the owner) instead of waiting for the views to change.
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
    static LAST_MS: AtomicU64 = AtomicU64::new(0);
    static SUPPRESSED: AtomicU64 = AtomicU64::new(0);
    let now = crate::domain::Millis::now().0;
    let last = LAST_MS.load(Ordering::Relaxed);
    if now.saturating_sub(last) >= 1000
        && LAST_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        let suppressed = SUPPRESSED.swap(0, Ordering::Relaxed);
        tracing::warn!(%url, error = %e, suppressed, "forwarding to the owner failed");
    } else {
        SUPPRESSED.fetch_add(1, Ordering::Relaxed);
    }
}

/// Why a forward failed.
enum Forward {
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
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{}", base.trim_end_matches('/'), path);
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
        .map_err(|e| MarketError::Internal(e.to_string()))?;
    let mut out = fwd
        .client
        .request(method, &url)
        .header(HOPS_HEADER, (hops + 1).to_string());
    if let Some(auth) = req.headers().get(header::AUTHORIZATION) {
        out = out.header(reqwest::header::AUTHORIZATION, auth.as_bytes());
    }
    if let Some(k) = req.headers().get(crate::protocol::IDEMPOTENCY_HEADER) {
        out = out.header(crate::protocol::IDEMPOTENCY_HEADER, k.as_bytes());
    }
    if let Some(b) = body {
        out = out
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(b.clone());
    }
    let resp = out.send().await.map_err(|e| {
        warn_rate_limited(&url, &e);
        // A dead owner's heartbeat lapses within a lease; then another node owns the
        // statement, and this 503 tells the client to come back by then.
        let err = ApiError::from(MarketError::unavailable(
            "the node owning this statement is unreachable, retry shortly",
        ));
        if e.is_connect() {
            Forward::Unreachable(err)
        } else {
            Forward::Failed(err)
        }
    })?;
    let status = StatusCode::from_u16(resp.status().as_u16())
        .map_err(|e| MarketError::Internal(e.to_string()))?;
    let mut b = HttpResponse::build(status);
    for name in [reqwest::header::CONTENT_TYPE, reqwest::header::RETRY_AFTER] {
        if let Some(v) = resp.headers().get(&name) {
            b.insert_header((name.as_str(), v.as_bytes()));
        }
    }
    let bytes = resp.bytes().await.map_err(|e| {
        tracing::warn!(%url, error = %e, "reading the owner's answer failed");
        MarketError::unavailable("the node owning this statement did not answer, retry shortly")
    })?;
    Ok(b.body(bytes))
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn only_plausible_hop_counts_count() {
        let with = |values: &[&str]| {
            let mut r = TestRequest::default();
            for v in values {
                r = r.append_header((HOPS_HEADER, *v));
            }
            hops(&r.to_http_request())
        };
        assert_eq!(with(&[]), 0);
        assert_eq!(with(&["1"]), 1);
        assert_eq!(with(&["2"]), 2);
        assert_eq!(with(&["3"]), 3);
        for forged in [
            "4", "255", "256", "999999", "-1", "+1", "01", "abc", "", " 2",
        ] {
            assert_eq!(with(&[forged]), 0, "{forged:?}");
        }
        assert_eq!(with(&["1", "1"]), 0);
    }
}

//! Prometheus metrics of one node, served at `GET /metrics` in the text format.
//!
//! One registry per process ([`metrics`]): counters and histograms are updated where the
//! work happens (the HTTP middleware [`track_calls`], the matchers, the Redis connection,
//! the archive, the work pools, the rate limits); gauges that mirror state the node
//! already keeps (pools, archive lag, ownership, health) are read when scraped
//! ([`render`]).
//!
//! Every label has a bounded set of values, so a hostile client cannot grow the
//! registry: routes are the route table's patterns (anything else is `unmatched`),
//! methods the standard ones (else `other`), statuses three digits, Redis commands the
//! ones the node sends (names of at most 24 ASCII letters, else `other`), and
//! statements the first [`MAX_STATEMENT_LABELS`] this node served (the rest share
//! `other`).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::domain::{Key, Side};

/// Most statements with a label of their own; later ones are counted as `other`.
pub const MAX_STATEMENT_LABELS: usize = 200;

/// Buckets for calls that take from a fraction of a millisecond to seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0,
];

/// Buckets for proof verification and pool jobs (milliseconds to a minute).
const WORK_BUCKETS: &[f64] = &[
    0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The node's metrics.
pub struct Metrics {
    registry: Registry,
    /// 1, labelled with the node's id and version ([`Metrics::set_node`]).
    node_info: IntGaugeVec,
    /// Calls by route pattern, method and status.
    pub http_requests: IntCounterVec,
    /// Call duration by route pattern.
    pub http_seconds: HistogramVec,
    /// Orders written by this node's matchers, by statement and side.
    pub orders: IntCounterVec,
    /// Matches written by this node's matchers, by statement.
    pub matches: IntCounterVec,
    /// An order's arrival at its matcher → the store's ack of the batch that matched it.
    pub match_latency: Histogram,
    /// Proof verification time, by result (`valid`, `invalid`).
    pub proof_verify: HistogramVec,
    /// Redis calls by command.
    pub redis_seconds: HistogramVec,
    /// Redis calls that failed (no answer, connection lost, an error reply), by command.
    pub redis_errors: IntCounterVec,
    /// PostgreSQL calls of the archive that failed, by query.
    pub postgres_errors: IntCounterVec,
    /// Calls this node could not forward to their statement's owner, by reason
    /// (`unreachable`, `failed`).
    pub forward_failures: IntCounterVec,
    /// PostgreSQL calls by query.
    pub postgres_seconds: HistogramVec,
    /// Work pool jobs: time queued and time running, by pool.
    pub pool_job_seconds: HistogramVec,
    /// Statements this node took (start, takeover after another node).
    pub leases_acquired: IntCounter,
    /// Calls refused by a rate limit or quota, by limit.
    pub rate_limited: IntCounterVec,
    // Mirrored from state at scrape time.
    fenced_writes: IntCounter,
    forwarded_calls: IntCounter,
    archived_events: IntCounter,
    archive_errors: IntCounter,
    pool_queue_depth: IntGaugeVec,
    pool_queue_capacity: IntGaugeVec,
    pool_busy: IntGaugeVec,
    pool_threads: IntGaugeVec,
    archive_lag: prometheus::Gauge,
    archive_pending: IntGauge,
    owned_statements: IntGauge,
    live_nodes: IntGauge,
    live_streams: IntGauge,
    ready: IntGauge,
    redis_up: IntGauge,
    postgres_up: IntGauge,
    statements: Mutex<HashMap<Key, String>>,
    /// One scrape at a time (mirrored counters are advanced by difference).
    scrape: tokio::sync::Mutex<()>,
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("registered once");
    c
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    r.register(Box::new(c.clone())).expect("registered once");
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

fn histogram_vec(
    r: &Registry,
    name: &str,
    help: &str,
    buckets: &[f64],
    labels: &[&str],
) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )
    .expect("valid metric");
    r.register(Box::new(h.clone())).expect("registered once");
    h
}

impl Metrics {
    // The names, helps and buckets are constants of this file: registering them cannot
    // fail at run time (a test renders the registry).
    fn new() -> Metrics {
        let r = Registry::new();
        let match_latency = Histogram::with_opts(
            HistogramOpts::new(
                "proof_market_match_latency_seconds",
                "From an order's arrival at its statement's matcher to the store's ack of \
                 the batch that matched it",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        r.register(Box::new(match_latency.clone()))
            .expect("registered once");
        let archive_lag = prometheus::Gauge::new(
            "proof_market_archive_lag_seconds",
            "Age of the oldest event of this node's statements not yet in PostgreSQL",
        )
        .expect("valid metric");
        r.register(Box::new(archive_lag.clone()))
            .expect("registered once");
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("registered once");
        let rate_limited = counter_vec(
            &r,
            "proof_market_rate_limited_total",
            "Calls refused by a rate limit or quota, by limit",
            &["limit"],
        );
        let proof_verify = histogram_vec(
            &r,
            "proof_market_proof_verify_seconds",
            "Proof verification time on the verification pool, by result",
            WORK_BUCKETS,
            &["result"],
        );
        // Every known label value exists from the start (at 0), so a first refusal or
        // verification is an increase a rate() sees, and dashboards find the series.
        for limit in ["ip", "user", "statements_per_day"] {
            rate_limited.with_label_values(&[limit]);
        }
        for result in ["valid", "invalid"] {
            proof_verify.with_label_values(&[result]);
        }
        let m = Metrics {
            node_info: gauge_vec(
                &r,
                "proof_market_node_info",
                "1, labelled with this node's id and version",
                &["node", "version"],
            ),
            http_requests: counter_vec(
                &r,
                "proof_market_http_requests_total",
                "HTTP calls by route pattern, method and status",
                &["route", "method", "status"],
            ),
            http_seconds: histogram_vec(
                &r,
                "proof_market_http_request_duration_seconds",
                "HTTP call duration by route pattern",
                LATENCY_BUCKETS,
                &["route"],
            ),
            orders: counter_vec(
                &r,
                "proof_market_orders_total",
                "Orders written by this node's matchers",
                &["statement", "side"],
            ),
            matches: counter_vec(
                &r,
                "proof_market_matches_total",
                "Matches written by this node's matchers",
                &["statement"],
            ),
            match_latency,
            proof_verify,
            redis_seconds: histogram_vec(
                &r,
                "proof_market_redis_call_duration_seconds",
                "Redis calls (a pipeline counts as one) by command",
                LATENCY_BUCKETS,
                &["command"],
            ),
            redis_errors: counter_vec(
                &r,
                "proof_market_redis_errors_total",
                "Redis calls that failed (no answer, connection lost, an error reply)",
                &["command"],
            ),
            postgres_errors: counter_vec(
                &r,
                "proof_market_postgres_errors_total",
                "PostgreSQL calls of the archive that failed",
                &["query"],
            ),
            forward_failures: counter_vec(
                &r,
                "proof_market_forward_failures_total",
                "Calls this node could not forward to their statement's owner",
                &["reason"],
            ),
            postgres_seconds: histogram_vec(
                &r,
                "proof_market_postgres_call_duration_seconds",
                "PostgreSQL calls of the archive by query",
                LATENCY_BUCKETS,
                &["query"],
            ),
            pool_job_seconds: histogram_vec(
                &r,
                "proof_market_pool_job_seconds",
                "Work pool jobs: time queued and time running",
                WORK_BUCKETS,
                &["pool", "phase"],
            ),
            leases_acquired: counter(
                &r,
                "proof_market_leases_acquired_total",
                "Statements this node took (at start or from a node that left or died)",
            ),
            rate_limited,
            fenced_writes: counter(
                &r,
                "proof_market_fenced_writes_total",
                "Writes of this node refused because another node had taken the statement",
            ),
            forwarded_calls: counter(
                &r,
                "proof_market_forwarded_calls_total",
                "Calls this node forwarded to their statement's owner",
            ),
            archived_events: counter(
                &r,
                "proof_market_archived_events_total",
                "Events this node committed to PostgreSQL",
            ),
            archive_errors: counter(
                &r,
                "proof_market_archive_errors_total",
                "Failed archive rounds of this node",
            ),
            pool_queue_depth: gauge_vec(
                &r,
                "proof_market_pool_queue_depth",
                "Jobs queued or running on a work pool",
                &["pool"],
            ),
            pool_queue_capacity: gauge_vec(
                &r,
                "proof_market_pool_queue_capacity",
                "Most jobs a work pool holds (more are refused with 503)",
                &["pool"],
            ),
            pool_busy: gauge_vec(
                &r,
                "proof_market_pool_busy_workers",
                "Work pool threads running a job",
                &["pool"],
            ),
            pool_threads: gauge_vec(
                &r,
                "proof_market_pool_threads",
                "Threads of a work pool",
                &["pool"],
            ),
            archive_lag,
            archive_pending: gauge(
                &r,
                "proof_market_archive_pending_events",
                "Events of this node's statements not yet archived to PostgreSQL (and so \
                 still in Redis)",
            ),
            owned_statements: gauge(
                &r,
                "proof_market_owned_statements",
                "Statements whose matcher runs on this node",
            ),
            live_nodes: gauge(&r, "proof_market_live_nodes", "Live nodes this node sees"),
            live_streams: gauge(
                &r,
                "proof_market_event_streams",
                "Live event streams (GET /events) open on this node",
            ),
            ready: gauge(
                &r,
                "proof_market_ready",
                "1 when the node has joined and serves its statements",
            ),
            redis_up: gauge(
                &r,
                "proof_market_redis_up",
                "1 when Redis answered the scrape's ping",
            ),
            postgres_up: gauge(
                &r,
                "proof_market_postgres_up",
                "1 when the archive's PostgreSQL answered (absent without an archive)",
            ),
            statements: Mutex::new(HashMap::new()),
            scrape: tokio::sync::Mutex::new(()),
            registry: r,
        };
        for reason in ["unreachable", "failed"] {
            m.forward_failures.with_label_values(&[reason]);
        }
        m
    }

    /// The label of `stmt`: its key for the first [`MAX_STATEMENT_LABELS`] statements
    /// this node serves, `other` after that.
    pub fn statement_label(&self, stmt: Key) -> String {
        let mut m = self.statements.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = m.get(&stmt) {
            return l.clone();
        }
        if m.len() >= MAX_STATEMENT_LABELS {
            return "other".into();
        }
        let l = stmt.to_string();
        m.insert(stmt, l.clone());
        l
    }

    /// The counters of one statement, resolved once per matcher.
    pub fn statement_counters(&self, stmt: Key) -> StatementCounters {
        let label = self.statement_label(stmt);
        StatementCounters {
            requests: self
                .orders
                .with_label_values(&[&label, Side::Request.as_str()]),
            proposals: self
                .orders
                .with_label_values(&[&label, Side::Proposal.as_str()]),
            matches: self.matches.with_label_values(&[&label]),
        }
    }

    /// Names this node (its id and the build's version) in `proof_market_node_info`.
    pub fn set_node(&self, node: &str) {
        self.node_info
            .with_label_values(&[node, env!("CARGO_PKG_VERSION")])
            .set(1);
    }

    /// Sets the number of live event streams open on this node.
    pub fn live_streams(&self, n: usize) {
        self.live_streams.set(n as i64);
    }

    /// Makes a pool's job series exist from the start (at 0).
    pub fn add_pool(&self, pool: &str) {
        for phase in ["queued", "run"] {
            self.pool_job_seconds.with_label_values(&[pool, phase]);
        }
    }

    /// Times a Redis call of `command`, and counts it when it `failed`.
    pub fn redis_call(&self, command: &str, took: Duration, failed: bool) {
        self.redis_seconds
            .with_label_values(&[command])
            .observe(took.as_secs_f64());
        if failed {
            self.redis_errors.with_label_values(&[command]).inc();
        }
    }

    /// Times a PostgreSQL call of `query`, and counts it when it `failed`.
    pub fn postgres_call(&self, query: &str, took: Duration, failed: bool) {
        self.postgres_seconds
            .with_label_values(&[query])
            .observe(took.as_secs_f64());
        if failed {
            self.postgres_errors.with_label_values(&[query]).inc();
        }
    }
}

/// The counters a matcher bumps.
#[derive(Clone)]
pub struct StatementCounters {
    /// Requests written.
    pub requests: IntCounter,
    /// Proposals written.
    pub proposals: IntCounter,
    /// Matches written.
    pub matches: IntCounter,
}

impl StatementCounters {
    /// The counter of `side`'s orders.
    pub fn orders(&self, side: Side) -> &IntCounter {
        match side {
            Side::Request => &self.requests,
            Side::Proposal => &self.proposals,
        }
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// This process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// The name a Redis command is counted under: its first argument if it is a short
/// ASCII word (the node only sends such), `other` otherwise.
pub fn command_label(first_arg: Option<&[u8]>) -> &'static str {
    const KNOWN: &[&str] = &[
        "FCALL",
        "EVALSHA",
        "EVAL",
        "HGETALL",
        "HGET",
        "HMGET",
        "HSET",
        "GET",
        "SET",
        "DEL",
        "ZADD",
        "ZRANGE",
        "ZRANGEBYSCORE",
        "ZREM",
        "ZSCORE",
        "ZCARD",
        "XRANGE",
        "XREVRANGE",
        "XREAD",
        "XADD",
        "XTRIM",
        "XLEN",
        "INCR",
        "INCRBY",
        "EXISTS",
        "PING",
        "SCAN",
        "MGET",
        "LRANGE",
        "SMEMBERS",
        "SADD",
        "SREM",
        "EXPIRE",
        "PEXPIRE",
        "TTL",
        "PTTL",
        "INFO",
        "FUNCTION",
        "SCRIPT",
        "CLUSTER",
        "CLIENT",
        "HELLO",
        "SELECT",
        "HDEL",
        "HINCRBY",
        "ZINCRBY",
        "ZCOUNT",
        "ZRANGEBYLEX",
        "TIME",
        "DBSIZE",
        "TYPE",
    ];
    let Some(arg) = first_arg else {
        return "other";
    };
    KNOWN
        .iter()
        .find(|k| k.as_bytes().eq_ignore_ascii_case(arg))
        .copied()
        .unwrap_or("other")
}

/// The route label of a request: its route's pattern, `unmatched` when none.
fn route_label(req: &actix_web::HttpRequest) -> String {
    req.match_pattern().unwrap_or_else(|| "unmatched".into())
}

fn method_label(m: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware: counts and times every call by route pattern, method and status.
pub async fn track_calls(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = method_label(req.method());
    let res = next.call(req).await?;
    let route = route_label(res.request());
    let m = metrics();
    m.http_requests
        .with_label_values(&[&route, method, res.status().as_str()])
        .inc();
    m.http_seconds
        .with_label_values(&[&route])
        .observe(started.elapsed().as_secs_f64());
    Ok(res)
}

/// What the scrape mirrors from the node's state.
#[derive(Debug, Clone, Default)]
pub struct NodeState {
    /// Per pool: (name, threads, capacity, queued or running, busy).
    pub pools: Vec<(&'static str, usize, usize, usize, usize)>,
    /// Writes refused by fencing, so far.
    pub fenced_writes: u64,
    /// Calls forwarded, so far.
    pub forwarded_calls: u64,
    /// Statements owned.
    pub owned: usize,
    /// Live nodes seen.
    pub live_nodes: usize,
    /// Ready to serve.
    pub ready: bool,
    /// Redis answered.
    pub redis_up: bool,
    /// The archive, when on: (PostgreSQL answered, lag, pending, archived, errors).
    pub archive: Option<ArchiveState>,
}

/// The archive's part of [`NodeState`].
#[derive(Debug, Clone, Default)]
pub struct ArchiveState {
    /// PostgreSQL answered.
    pub up: bool,
    /// Age of the oldest event not archived.
    pub lag: Duration,
    /// Events not trimmed yet.
    pub pending: u64,
    /// Events archived so far.
    pub archived: u64,
    /// Failed rounds so far.
    pub errors: u64,
}

fn advance(c: &IntCounter, to: u64) {
    let now = c.get();
    if to > now {
        c.inc_by(to - now);
    }
}

fn flag(b: bool) -> i64 {
    i64::from(b)
}

/// The text exposition of every metric, with the gauges set from `state`.
pub async fn render(state: NodeState) -> String {
    let m = metrics();
    let _one = m.scrape.lock().await;
    for (pool, threads, capacity, depth, busy) in &state.pools {
        m.pool_threads
            .with_label_values(&[pool])
            .set(*threads as i64);
        m.pool_queue_capacity
            .with_label_values(&[pool])
            .set(*capacity as i64);
        m.pool_queue_depth
            .with_label_values(&[pool])
            .set(*depth as i64);
        m.pool_busy.with_label_values(&[pool]).set(*busy as i64);
    }
    advance(&m.fenced_writes, state.fenced_writes);
    advance(&m.forwarded_calls, state.forwarded_calls);
    m.owned_statements.set(state.owned as i64);
    m.live_nodes.set(state.live_nodes as i64);
    m.ready.set(flag(state.ready));
    m.redis_up.set(flag(state.redis_up));
    if let Some(a) = &state.archive {
        m.postgres_up.set(flag(a.up));
        m.archive_lag.set(a.lag.as_secs_f64());
        m.archive_pending.set(a.pending as i64);
        advance(&m.archived_events, a.archived);
        advance(&m.archive_errors, a.errors);
    }
    let mut families = m.registry.gather();
    if state.archive.is_none() {
        families.retain(|f| f.name() != "proof_market_postgres_up");
    }
    let mut out = String::new();
    if let Err(e) = TextEncoder::new().encode_utf8(&families, &mut out) {
        tracing::error!(error = %e, "metrics not encoded");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_labels_are_bounded() {
        let m = Metrics::new();
        for k in 1..=(MAX_STATEMENT_LABELS as u64 + 50) {
            let l = m.statement_label(Key(k));
            if k as usize <= MAX_STATEMENT_LABELS {
                assert_eq!(l, k.to_string());
            } else {
                assert_eq!(l, "other");
            }
        }
        assert_eq!(m.statement_label(Key(3)), "3");
        assert_eq!(m.statements.lock().unwrap().len(), MAX_STATEMENT_LABELS);
    }

    #[test]
    fn command_labels_are_known_words_only() {
        assert_eq!(command_label(Some(b"fcall")), "FCALL");
        assert_eq!(command_label(Some(b"HGETALL")), "HGETALL");
        assert_eq!(command_label(Some(b"x\xff\x00")), "other");
        assert_eq!(command_label(Some(&[b'A'; 5000])), "other");
        assert_eq!(command_label(None), "other");
    }

    #[tokio::test]
    async fn renders_the_text_format_with_mirrored_state() {
        let state = NodeState {
            pools: vec![("verify", 2, 64, 3, 2)],
            fenced_writes: 4,
            forwarded_calls: 0,
            owned: 7,
            live_nodes: 3,
            ready: true,
            redis_up: true,
            archive: None,
        };
        metrics().leases_acquired.inc();
        let text = render(state.clone()).await;
        assert!(
            text.contains("proof_market_pool_busy_workers{pool=\"verify\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("proof_market_fenced_writes_total 4"),
            "{text}"
        );
        assert!(text.contains("proof_market_owned_statements 7"), "{text}");
        assert!(!text.contains("proof_market_postgres_up"), "{text}");
        // Mirrored counters advance by difference: a second scrape does not double them.
        let again = render(state).await;
        assert!(
            again.contains("proof_market_fenced_writes_total 4"),
            "{again}"
        );
    }
}

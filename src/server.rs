//! Running a market node: connect to Redis, join the cluster, serve HTTP.
//!
//! [`run`] takes an already-bound listener (so tests and `--listen 127.0.0.1:0` get a
//! real free port) and serves until SIGINT/SIGTERM. The node answers `/health` with 503
//! until it has joined the live set and taken the statements it owns, then 200. On
//! SIGINT/SIGTERM it hands its statements over (see [`Router::leave`]) before it stops.
//! Every call first passes [`check_node_calls`], which refuses unsigned calls between
//! nodes; a node without a cluster secret takes and forwards none.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{middleware, web, App, HttpServer};

use crate::api::bodies::BodyLimits;
use crate::api::forward::Forwarder;
use crate::api::node_auth::{check_node_calls, NodeAuth};
use crate::archive::{Archive, ArchiveConfig};
use crate::auth::{self, Tokens};
use crate::cluster::signing::ClusterSecret;
use crate::cluster::NodeConfig;
use crate::market::{Archiver, Limits, Market, Router};
use crate::prover::pool::{PoolSizes, Pools};
use crate::prover::statements::CircuitPolicy;
use crate::prover::statements::StatementCircuits;
use crate::store::{RedisTarget, Store};

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where Redis is: one server or a cluster's seeds.
    pub redis: RedisTarget,
    /// This node's identity in the cluster and its lease length.
    pub node: NodeConfig,
    /// Namespace of every Redis key of this market.
    pub key_prefix: String,
    /// Where the node keeps local files (the generated JWT secret).
    pub data_dir: PathBuf,
    /// JWT signing secret; generated under `data_dir` when absent.
    pub jwt_secret: Option<String>,
    /// The key calls between nodes are signed with, the same on every node; without
    /// one the node neither forwards calls nor takes forwarded ones.
    pub cluster_secret: Option<ClusterSecret>,
    /// Token lifetime.
    pub token_ttl_secs: u64,
    /// Token maximum age, revocation cache and login throttles.
    pub auth: auth::AuthPolicy,
    /// HTTP worker threads (0: one per core).
    pub http_workers: usize,
    /// Matcher threads (0: one per core).
    pub matcher_threads: usize,
    /// Threads and queues of the work pools (argon2, circuits, verification).
    pub pools: PoolSizes,
    /// Largest circuit accepted and the circuit cache's memory.
    pub circuits: CircuitPolicy,
    /// What clients may store and how many refused proofs a proposal may push.
    pub limits: Limits,
    /// What one client connection may hold: see [`HttpLimits`].
    pub http: HttpLimits,
    /// The history database (`None`: archiving off, Redis keeps everything).
    pub archive: Option<ArchiveConfig>,
    /// Most entries each statement's event log keeps (0: no cap).
    pub event_log_max: u64,
    /// How long archived events stay in their log for live streams to resume from.
    pub event_resume: Duration,
    /// Caps of live streams.
    pub live: crate::live::LiveConfig,
    /// Where the market page's files come from.
    pub web: crate::api::page::WebAssets,
    /// How wallets open and how long money may travel.
    pub wallets: crate::store::WalletConfig,
    /// The operator's token for `/admin` calls (`None`: those calls are refused).
    pub admin_token: Option<String>,
}

/// Bounds on what slow or greedy clients can hold of a node.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Time a new connection (and each request on it) has to send its request head;
    /// after it the connection is closed with 408 (actix-web's `client_request_timeout`).
    pub client_request_timeout: Duration,
    /// Open connections per HTTP worker; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Body size limits per route kind, the body read timeout and the large-body budget.
    pub body: BodyLimits,
}

impl HttpLimits {
    /// Default of `--client-request-timeout-ms`.
    pub const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default of `--max-connections` (per worker).
    pub const MAX_CONNECTIONS: usize = 2048;
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            client_request_timeout: Self::CLIENT_REQUEST_TIMEOUT,
            max_connections: Self::MAX_CONNECTIONS,
            body: BodyLimits::default(),
        }
    }
}

pub use crate::store::redact_url;

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Serves the market on `listener` until the process is asked to stop.
pub async fn run(listener: TcpListener, cfg: ServeConfig) -> anyhow::Result<()> {
    let secret = auth::load_secret(cfg.jwt_secret.as_deref(), &cfg.data_dir)
        .map_err(|e| anyhow::anyhow!("JWT secret: {e}"))?;
    let redis = cfg.redis.redacted();
    let store = Store::open(&cfg.redis, &cfg.key_prefix)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to Redis at {redis}: {e}"))?
        .with_event_log_max(cfg.event_log_max)
        .with_wallets(cfg.wallets)
        .with_ledger_archive(cfg.archive.is_some())
        .with_resume_window(cfg.event_resume.as_millis() as u64);
    let archive = match &cfg.archive {
        Some(a) => {
            let db = crate::store::redact_url(&a.url);
            let archive = Archive::open(a.clone())
                .await
                .map_err(|e| anyhow::anyhow!("history database at {db}: {e}"))?;
            tracing::info!(database = %db, retention_secs = a.retention.as_secs(), "archiving history to PostgreSQL");
            Some(Arc::new(archive))
        }
        None => {
            tracing::warn!(
                "no --database-url (DATABASE_URL): archiving is off and Redis keeps every \
                 order and proof; give a PostgreSQL URL to bound Redis"
            );
            None
        }
    };
    store
        .ping()
        .await
        .map_err(|e| anyhow::anyhow!("Redis at {redis} does not answer: {e}"))?;
    match store.claim_legacy_user_names().await {
        Ok(Some(n)) if n > 0 => {
            tracing::info!(claimed = n, "old accounts claimed their lowercased names")
        }
        Ok(Some(_)) => {}
        Ok(None) => tracing::warn!(
            "Redis Cluster: old accounts claim their lowercased names at their next login"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "cannot claim old accounts' lowercased names; retried at next start")
        }
    }
    let threads = if cfg.matcher_threads == 0 {
        cores()
    } else {
        cfg.matcher_threads
    };
    crate::metrics::metrics().set_node(&cfg.node.id);
    let router = Arc::new(Router::start(store.clone(), threads, cfg.node.clone()).await?);
    let store_for_archiver = store.clone();
    let pools = Pools::start(cfg.pools);
    let circuits = Arc::new(StatementCircuits::new(store.clone(), pools, cfg.circuits));
    let market = web::Data::new(
        Market::new(
            store,
            router.clone(),
            circuits,
            Tokens::new(&secret, cfg.token_ttl_secs).with_policy(cfg.auth.clone()),
            cfg.limits.clone(),
        )
        .with_archive(archive.clone())
        .with_money(cfg.node.economics, cfg.admin_token.clone()),
    );
    market.clone().into_inner().spawn_resolver();
    let hub = crate::live::Hub::start(store_for_archiver.clone(), cfg.live);
    let hub_data = web::Data::from(hub.clone());
    let router_data = web::Data::from(router.clone());
    let node_auth = web::Data::new(NodeAuth::new(
        cfg.node.id.clone(),
        cfg.cluster_secret.clone(),
    ));
    if !node_auth.enabled() {
        warn_if_not_alone(router.clone());
    }
    let body_limits = web::Data::new(cfg.http.body.clone());
    let web_assets = web::Data::new(cfg.web.clone());
    let addr = listener.local_addr()?;
    let workers = if cfg.http_workers == 0 {
        cores()
    } else {
        cfg.http_workers
    };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(market.clone())
            .app_data(router_data.clone())
            .app_data(hub_data.clone())
            .app_data(web_assets.clone())
            .app_data(body_limits.clone())
            .app_data(web::Data::new(Forwarder::new()))
            .app_data(node_auth.clone())
            .wrap(middleware::from_fn(crate::api::ratelimit::limit_ip))
            .wrap(middleware::NormalizePath::trim())
            // Sees the request target exactly as it was signed.
            .wrap(middleware::from_fn(check_node_calls))
            // Counts every call, refusals included.
            .wrap(middleware::from_fn(crate::metrics::track_calls))
            // Outermost: every call has its id and log span before anything else runs.
            .wrap(middleware::from_fn(crate::api::request_id::assign))
            .configure(crate::api::config)
    })
    .workers(workers)
    .client_request_timeout(cfg.http.client_request_timeout)
    .max_connections(cfg.http.max_connections)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    // Printed on stdout so scripts and tests can find a port chosen by the OS.
    println!("proof-market listening on http://{addr}");
    tracing::info!(%addr, %redis, prefix = %cfg.key_prefix, node = %cfg.node.id, url = %cfg.node.url, signed_node_calls = cfg.cluster_secret.is_some(), "serving");
    // Heartbeats and leases run on a thread and a Redis connection of their own, so a
    // busy node still renews its leases in time.
    router.spawn_upkeep();
    if let Some(a) = archive {
        Archiver::spawn(&store_for_archiver, a, router.clone()).await?;
    }
    actix::spawn(async move {
        wait_for_signal().await;
        // Leave first, so calls arriving while statements move are forwarded to their
        // new owners; then stop HTTP, letting calls in flight finish.
        tracing::info!("stopping: handing statements over");
        router.leave().await;
        // Live streams end now (their clients reconnect to another node): a graceful
        // stop waits for open calls, and a stream never finishes by itself.
        hub.close();
        // Keep forwarding for a round of the other nodes' upkeep, until they all see
        // this node gone and stop sending it calls.
        tokio::time::sleep(router.node().lease / 3 + std::time::Duration::from_millis(300)).await;
        handle.stop(true).await;
    });
    server.await?;
    tracing::info!("stopped");
    Ok(())
}

/// Once the node has joined, warns if other nodes are live: without a cluster secret
/// this node answers 503 for their statements and refuses the calls they forward here.
fn warn_if_not_alone(router: Arc<Router>) {
    actix::spawn(async move {
        while !router.is_ready() {
            if router.is_leaving() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let me = &router.node().id;
        let others: Vec<String> = router
            .live_nodes()
            .into_iter()
            .filter(|n| n.id != *me)
            .map(|n| n.id)
            .collect();
        if others.is_empty() {
            tracing::info!("no cluster secret: this node serves alone and takes no node calls");
        } else {
            tracing::warn!(
                ?others,
                "other nodes are live but this node has no cluster secret: it will not \
                 forward calls to them (503) nor take theirs (401); give every node the \
                 same PROOF_MARKET_CLUSTER_SECRET or --cluster-secret-file"
            );
        }
    });
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(
            super::redact_url("redis://:s3cret@db:6379/0"),
            "redis://***@db:6379/0"
        );
        assert_eq!(super::redact_url("redis://user:pw@db"), "redis://***@db");
        assert_eq!(
            super::redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }
}

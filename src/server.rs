//! Running a market node: connect to Redis, load the books, serve HTTP.
//!
//! [`run`] takes an already-bound listener (so tests and `--listen 127.0.0.1:0` get a
//! real free port) and serves until SIGINT/SIGTERM. The node answers `/health` with 503
//! until every book is loaded, then 200.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::{middleware, web, App, HttpServer};

use crate::auth::{self, Tokens};
use crate::circuits::Circuits;
use crate::markets::Markets;
use crate::prover::pool::ProverPool;
use crate::service::{Limits, Market};
use crate::store::Store;

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Redis URL.
    pub redis_url: String,
    /// Namespace of every Redis key of this market.
    pub key_prefix: String,
    /// Where the node keeps local files (the generated JWT secret).
    pub data_dir: PathBuf,
    /// JWT signing secret; generated under `data_dir` when absent.
    pub jwt_secret: Option<String>,
    /// Token lifetime.
    pub token_ttl_secs: u64,
    /// HTTP worker threads (0: one per core).
    pub http_workers: usize,
    /// Matcher threads (0: one per core).
    pub matcher_threads: usize,
    /// Prover pool threads (0: one per core).
    pub prover_threads: usize,
    /// Prover jobs queued or running before new ones get 503.
    pub prover_queue: usize,
}

/// A Redis URL fit for logs: any password or user name is masked.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Serves the market on `listener` until the process is asked to stop.
pub async fn run(listener: TcpListener, cfg: ServeConfig) -> anyhow::Result<()> {
    let secret = auth::load_secret(cfg.jwt_secret.as_deref(), &cfg.data_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot read or create the JWT secret in {}: {e}",
            cfg.data_dir.display()
        )
    })?;
    let store = Store::connect(&cfg.redis_url, &cfg.key_prefix)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot connect to Redis at {}: {e}",
                redact_url(&cfg.redis_url)
            )
        })?;
    store.ping().await.map_err(|e| {
        anyhow::anyhow!(
            "Redis at {} does not answer: {e}",
            redact_url(&cfg.redis_url)
        )
    })?;
    let threads = if cfg.matcher_threads == 0 {
        cores()
    } else {
        cfg.matcher_threads
    };
    let markets = Arc::new(Markets::start(store.clone(), threads).await?);
    let limits = Limits::default();
    let pool = ProverPool::start(cfg.prover_threads, cfg.prover_queue);
    let circuits = Arc::new(Circuits::new(store.clone(), pool));
    let market = web::Data::new(Market::new(
        store,
        markets.clone(),
        circuits,
        Tokens::new(&secret, cfg.token_ttl_secs),
        limits.clone(),
    ));
    let addr = listener.local_addr()?;
    let workers = if cfg.http_workers == 0 {
        cores()
    } else {
        cfg.http_workers
    };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(market.clone())
            .wrap(middleware::NormalizePath::trim())
            .configure(|c| crate::api::config(c, limits.clone()))
    })
    .workers(workers)
    .listen(listener)?
    .run();
    // Printed on stdout so scripts and tests can find a port chosen by the OS.
    println!("proof-market listening on http://{addr}");
    tracing::info!(%addr, redis = %redact_url(&cfg.redis_url), prefix = %cfg.key_prefix, "serving");
    actix::spawn(async move {
        let started = std::time::Instant::now();
        loop {
            match markets.load_all().await {
                Ok(n) => {
                    tracing::info!(
                        statements = n,
                        millis = started.elapsed().as_millis() as u64,
                        "books loaded; ready"
                    );
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "loading books failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    });
    server.await?;
    Ok(())
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

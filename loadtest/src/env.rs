//! The market under test: either one the harness starts (own Redis + own node, both
//! stopped at the end) or an external one given by `--url` (loopback only).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Result};

use crate::cli::MarketOpts;
use crate::loopback;
use crate::market::Target;
use crate::procs::{workspace_root, OwnRedis, OwnServer, ServerSpec};

/// A market to drive.
pub struct MarketEnv {
    /// Where calls go.
    pub target: Arc<Target>,
    /// The node, when the harness started it.
    pub server: Option<OwnServer>,
    /// Redis URL, when known.
    pub redis_url: Option<String>,
    /// Key prefix.
    pub prefix: String,
    // Dropped last: the node must stop before its Redis.
    redis: Option<OwnRedis>,
}

/// The default server binary.
pub fn default_server_bin() -> PathBuf {
    workspace_root().join("target/release/proof-market")
}

/// The default output directory.
pub fn default_out() -> PathBuf {
    workspace_root().join("target/loadtest")
}

impl MarketEnv {
    /// Starts (or attaches to) a market; the node's stderr goes to `log`.
    pub async fn open(m: &MarketOpts, log: &Path) -> Result<MarketEnv> {
        if let Some(url) = &m.url {
            let url = loopback::check_http_url(url)?;
            let redis_url = m.redis_url.as_deref().map(loopback::check_redis_url).transpose()?;
            crate::procs::wait_http_ready(&url, "/health", std::time::Duration::from_secs(10)).await?;
            return Ok(MarketEnv {
                target: Arc::new(Target::new(&url)),
                server: None,
                redis_url,
                prefix: m.key_prefix.clone(),
                redis: None,
            });
        }
        if m.redis_url.is_some() {
            bail!("--redis-url goes with --url; without --url the harness starts its own Redis");
        }
        let redis = OwnRedis::start()?;
        let mut extra = Vec::new();
        if let Some(n) = m.http_workers {
            extra.extend(["--http-workers".to_owned(), n.to_string()]);
        }
        if let Some(n) = m.matcher_threads {
            extra.extend(["--matcher-threads".to_owned(), n.to_string()]);
        }
        if let Some(d) = log.parent() {
            std::fs::create_dir_all(d)?;
        }
        let spec = ServerSpec {
            bin: m.server_bin.clone().unwrap_or_else(default_server_bin),
            redis_url: redis.url(),
            prefix: m.key_prefix.clone(),
            secret: format!("loadtest-secret-{:016x}-{:08x}", crate::seed_from_clock(), std::process::id()),
            extra,
            log: log.to_path_buf(),
        };
        let server = OwnServer::start(spec).await?;
        Ok(MarketEnv {
            target: Arc::new(Target::new(server.url())),
            redis_url: Some(redis.url()),
            prefix: m.key_prefix.clone(),
            server: Some(server),
            redis: Some(redis),
        })
    }

    /// Processes whose CPU use is reported.
    pub fn pids(&self) -> Vec<(String, u32)> {
        let mut v = Vec::new();
        if let Some(p) = self.server.as_ref().and_then(OwnServer::pid) {
            v.push(("proof-market".to_owned(), p));
        }
        if let Some(r) = &self.redis {
            v.push(("redis-server".to_owned(), r.pid()));
        }
        v
    }

    /// The node's PID, when the harness started it.
    pub fn server_pid(&self) -> Option<u32> {
        self.server.as_ref().and_then(OwnServer::pid)
    }

    /// A connection to the market's Redis, when known.
    pub fn redis(&self) -> Result<Option<redis::Connection>> {
        self.redis_url
            .as_deref()
            .map(crate::redis_view::connect)
            .transpose()
    }

    /// Kills the node with SIGKILL, starts it again and points the target at it.
    pub async fn kill9_and_restart(&mut self) -> Result<()> {
        let Some(s) = self.server.as_mut() else {
            bail!("the node was not started by the harness; it cannot be restarted");
        };
        s.kill9_and_restart().await?;
        self.target.set(s.url());
        Ok(())
    }
}

impl Drop for MarketEnv {
    fn drop(&mut self) {
        // The node first, then Redis (field order would drop `server` first anyway).
        self.server.take();
        self.redis.take();
    }
}

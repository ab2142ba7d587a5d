//! The market under test: either one the harness starts (own Redis + own node, both
//! stopped at the end) or an external one given by `--url` (loopback only).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::cli::MarketOpts;
use crate::loopback;
use crate::market::Target;
use crate::procs::{workspace_root, OwnPostgres, OwnRedis, OwnServer, Secrets, ServerSpec};
use crate::redis_view::parse_info_u64;
use crate::report::Span;

/// A running watch of Redis background rewrites.
pub struct RewriteWatch {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<(Instant, Instant)>>,
}

impl RewriteWatch {
    /// Stops watching; returns the rewrites relative to `zero`.
    pub async fn finish(self, zero: Instant) -> Vec<Span> {
        self.stop.store(true, Ordering::Relaxed);
        let secs = |t: Instant| {
            if t >= zero {
                t.duration_since(zero).as_secs_f64()
            } else {
                -zero.duration_since(t).as_secs_f64()
            }
        };
        self.task
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|(a, b)| Span {
                from_s: secs(a),
                to_s: secs(b),
                label: "Redis AOF rewrite".into(),
            })
            .collect()
    }
}

/// A market to drive.
pub struct MarketEnv {
    /// Where calls go.
    pub target: Arc<Target>,
    /// The node, when the harness started it (node 0 of several).
    pub server: Option<OwnServer>,
    /// More nodes over the same Redis and prefix (`open_nodes`), node 1 onwards.
    pub others: Vec<OwnServer>,
    /// Every node, node 0 first (just `target` for one node).
    pub nodes: Vec<Arc<Target>>,
    /// Node ids given with `--node-id` (`open_nodes`), by node index.
    pub node_ids: Vec<String>,
    /// Redis URL, when known.
    pub redis_url: Option<String>,
    /// Key prefix.
    pub prefix: String,
    /// PostgreSQL of the archive, when the node archives (or `--database-url` says
    /// where an external market's is).
    pub database_url: Option<String>,
    // Dropped after the nodes: PostgreSQL, then Redis.
    pg: Option<OwnPostgres>,
    // Dropped last: the node must stop before its Redis.
    redis: Option<OwnRedis>,
}

/// The archive of a node the harness starts: a private PostgreSQL (`--database-url`)
/// and the node's archive settings.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveConf {
    /// `PROOF_MARKET_ARCHIVE_RETENTION_SECS`.
    pub retention_secs: u64,
}

/// Starts the harness's own Redis as the options say.
fn start_redis(m: &MarketOpts) -> Result<OwnRedis> {
    let mut redis_args = vec![
        "--auto-aof-rewrite-min-size".to_owned(),
        m.aof_rewrite_min_size.clone(),
    ];
    if let Some(p) = m.aof_rewrite_percentage {
        redis_args.extend(["--auto-aof-rewrite-percentage".to_owned(), p.to_string()]);
    }
    OwnRedis::start(&redis_args)
}

/// Fresh secrets, shared by every node of one market.
fn new_secrets() -> Secrets {
    let secret = |kind: &str| {
        format!(
            "loadtest-{kind}-secret-{:016x}-{:08x}",
            crate::seed_from_clock(),
            std::process::id()
        )
    };
    Secrets {
        jwt: secret("jwt"),
        cluster: secret("cluster"),
    }
}

/// How to start a node over `redis`: the options' workers and threads, then `args`.
fn server_spec(
    m: &MarketOpts,
    redis: &OwnRedis,
    secrets: Secrets,
    args: Vec<String>,
    log: &Path,
) -> ServerSpec {
    let mut extra = Vec::new();
    if let Some(n) = m.http_workers {
        extra.extend(["--http-workers".to_owned(), n.to_string()]);
    }
    if let Some(n) = m.matcher_threads {
        extra.extend(["--matcher-threads".to_owned(), n.to_string()]);
    }
    extra.extend(args);
    ServerSpec {
        bin: m.server_bin.clone().unwrap_or_else(default_server_bin),
        redis_url: redis.url(),
        prefix: m.key_prefix.clone(),
        secrets,
        extra,
        database_url: None,
        env: Vec::new(),
        log: log.to_path_buf(),
    }
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
    /// Starts (or attaches to) a market; the node's stderr goes to `log`. A node the
    /// harness starts archives nothing.
    pub async fn open(m: &MarketOpts, log: &Path) -> Result<MarketEnv> {
        Self::open_archived(m, log, None).await
    }

    /// [`Self::open`]; with `archive`, a node the harness starts archives to a private
    /// PostgreSQL started for it.
    pub async fn open_archived(
        m: &MarketOpts,
        log: &Path,
        archive: Option<ArchiveConf>,
    ) -> Result<MarketEnv> {
        if let Some(url) = &m.url {
            let database_url = m
                .database_url
                .as_deref()
                .map(loopback::check_postgres_url)
                .transpose()?;
            let url = loopback::check_http_url(url)?;
            let redis_url = m
                .redis_url
                .as_deref()
                .map(loopback::check_redis_url)
                .transpose()?;
            crate::procs::wait_http_ready(&url, "/health", std::time::Duration::from_secs(10))
                .await?;
            let target = Arc::new(Target::new(&url)?);
            return Ok(MarketEnv {
                nodes: vec![target.clone()],
                target,
                server: None,
                others: Vec::new(),
                node_ids: Vec::new(),
                redis_url,
                prefix: m.key_prefix.clone(),
                database_url,
                pg: None,
                redis: None,
            });
        }
        if m.redis_url.is_some() || m.database_url.is_some() {
            bail!("--redis-url and --database-url go with --url; without --url the harness starts its own Redis (and PostgreSQL)");
        }
        let redis = start_redis(m)?;
        if let Some(d) = log.parent() {
            std::fs::create_dir_all(d)?;
        }
        let mut spec = server_spec(m, &redis, new_secrets(), Vec::new(), log);
        let pg = match archive {
            None => None,
            Some(a) => {
                // The sync PostgreSQL client runs a runtime of its own: off the workers.
                let pg = tokio::task::spawn_blocking(|| OwnPostgres::start(&[]))
                    .await?
                    .context("starting the archive's PostgreSQL")?;
                spec.database_url = Some(pg.url());
                spec.env.push((
                    "PROOF_MARKET_ARCHIVE_RETENTION_SECS".into(),
                    a.retention_secs.to_string(),
                ));
                Some(pg)
            }
        };
        let database_url = spec.database_url.clone();
        // On error `pg` and `redis` drop here and stop.
        let server = OwnServer::start(spec).await?;
        let target = Arc::new(Target::new(server.url())?);
        Ok(MarketEnv {
            nodes: vec![target.clone()],
            target,
            redis_url: Some(redis.url()),
            prefix: m.key_prefix.clone(),
            server: Some(server),
            others: Vec::new(),
            node_ids: Vec::new(),
            database_url,
            pg,
            redis: Some(redis),
        })
    }

    /// Starts its own Redis and `n` nodes over it (same key prefix, one shared JWT
    /// secret and cluster secret, ids `<id_prefix>0`…, each on its own free loopback port with its own temp
    /// data dir, stderr to `<log_dir>/<id>.log`), each waited for until `/health` is 200.
    /// `extra` are more `serve` arguments for every node (e.g. `--lease-ms 2000`).
    pub async fn open_nodes(
        m: &MarketOpts,
        n: usize,
        id_prefix: &str,
        extra: &[String],
        log_dir: &Path,
    ) -> Result<MarketEnv> {
        if m.url.is_some() || m.redis_url.is_some() || m.database_url.is_some() {
            bail!("several nodes are started by the harness: --url, --redis-url and --database-url do not apply");
        }
        if n == 0 {
            bail!("need at least one node");
        }
        std::fs::create_dir_all(log_dir)?;
        let redis = start_redis(m)?;
        let secrets = new_secrets();
        let mut env = MarketEnv {
            target: Arc::new(Target::new("http://127.0.0.1:1")?),
            server: None,
            others: Vec::new(),
            nodes: Vec::new(),
            node_ids: Vec::new(),
            redis_url: Some(redis.url()),
            prefix: m.key_prefix.clone(),
            database_url: None,
            pg: None,
            redis: Some(redis),
        };
        for i in 0..n {
            let id = format!("{id_prefix}{i}");
            let mut args = vec!["--node-id".to_owned(), id.clone()];
            args.extend(extra.iter().cloned());
            let log = log_dir.join(format!("{id}.log"));
            let _ = std::fs::remove_file(&log);
            let redis = env.redis.as_ref().context("redis")?;
            let spec = server_spec(m, redis, secrets.clone(), args, &log);
            // On error `env` drops here and stops the nodes already started, then Redis.
            let node = OwnServer::start(spec)
                .await
                .with_context(|| format!("starting node {id} (log {})", log.display()))?;
            let t = Arc::new(Target::new(node.url())?);
            if i == 0 {
                env.target = t.clone();
                env.server = Some(node);
            } else {
                env.others.push(node);
            }
            env.nodes.push(t);
            env.node_ids.push(id);
        }
        Ok(env)
    }

    /// Processes whose CPU use is reported.
    pub fn pids(&self) -> Vec<(String, u32)> {
        let mut v = Vec::new();
        if self.node_ids.is_empty() {
            if let Some(p) = self.server.as_ref().and_then(OwnServer::pid) {
                v.push(("proof-market".to_owned(), p));
            }
        } else {
            let nodes = self.server.iter().chain(&self.others);
            for (id, s) in self.node_ids.iter().zip(nodes) {
                if let Some(p) = s.pid() {
                    v.push((id.clone(), p));
                }
            }
        }
        if let Some(r) = &self.redis {
            v.push(("redis-server".to_owned(), r.pid()));
        }
        // With its backends (see `CpuSample::take`).
        if let Some(p) = self.pg.as_ref().and_then(OwnPostgres::pid) {
            v.push(("postgres".to_owned(), p));
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

    /// Redis `total_forks` (each AOF rewrite forks), when Redis is known.
    pub fn redis_forks(&self) -> Option<u64> {
        let mut con = self.redis().ok()??;
        let info: String = redis::cmd("INFO").arg("stats").query(&mut con).ok()?;
        parse_info_u64(&info, "total_forks")
    }

    /// Watches Redis for AOF rewrites / background saves until the returned handle's
    /// flag is set; the task yields the `(start, end)` of each.
    pub fn watch_rewrites(&self) -> Option<RewriteWatch> {
        let url = self.redis_url.clone()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut spans = Vec::new();
            let Ok(client) = redis::Client::open(url) else {
                return spans;
            };
            let Ok(mut con) = client.get_multiplexed_async_connection().await else {
                return spans;
            };
            let mut open: Option<Instant> = None;
            // One poll every 200 ms, for at most ~11 hours.
            for _ in 0..200_000 {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let info: Option<String> = redis::cmd("INFO")
                    .arg("persistence")
                    .query_async(&mut con)
                    .await
                    .ok();
                let busy = info.as_deref().is_some_and(|i| {
                    parse_info_u64(i, "aof_rewrite_in_progress") == Some(1)
                        || parse_info_u64(i, "rdb_bgsave_in_progress") == Some(1)
                });
                match (busy, open) {
                    (true, None) => open = Some(Instant::now()),
                    (false, Some(t)) => {
                        spans.push((t, Instant::now()));
                        open = None;
                    }
                    _ => {}
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            if let Some(t) = open {
                spans.push((t, Instant::now()));
            }
            spans
        });
        Some(RewriteWatch { stop, task })
    }

    /// Runs `spec` on this market and summarises it (with Redis forks and AOF rewrites).
    pub async fn run(
        &self,
        pop: &Arc<crate::market::Population>,
        spec: crate::driver::RunSpec,
    ) -> Result<(crate::driver::RunOutput, crate::report::RunReport)> {
        let forks = self.redis_forks();
        let watch = self.watch_rewrites();
        let out = crate::driver::run(self.target.clone(), pop.clone(), spec, self.pids()).await?;
        let mut r = crate::report::RunReport::from_output(&out);
        r.redis_forks = match (forks, self.redis_forks()) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        if let Some(w) = watch {
            r.spans = w.finish(out.rec.start()).await;
        }
        Ok((out, r))
    }

    /// Stops the node the harness started (SIGKILL, as the soak's kill), so that it no
    /// longer changes Redis; `false` when the harness did not start it.
    pub fn stop_node(&mut self) -> bool {
        match self.server.as_mut() {
            Some(s) => {
                s.kill9();
                true
            }
            None => false,
        }
    }

    /// Kills the node with SIGKILL, starts it again and points the target at it.
    pub async fn kill9_and_restart(&mut self) -> Result<()> {
        let Some(s) = self.server.as_mut() else {
            bail!("the node was not started by the harness; it cannot be restarted");
        };
        s.kill9_and_restart().await?;
        self.target.set(s.url())?;
        Ok(())
    }
}

impl Drop for MarketEnv {
    fn drop(&mut self) {
        // The nodes first, then PostgreSQL and Redis.
        self.others.clear();
        self.server.take();
        self.pg.take();
        self.redis.take();
    }
}

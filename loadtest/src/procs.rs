//! Child processes the harness starts and stops itself: a private `redis-server` (AOF,
//! `appendfsync everysec`, in a temporary directory, on a free loopback port), the
//! market server binary, and the baseline HTTP server. Each is stopped by its PID (the
//! `Child` handle) when dropped, so a failing run leaves nothing behind.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The cargo workspace root (the loadtest crate's parent), where relative defaults live.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A free TCP port on 127.0.0.1 (free when asked; the child binds it right after).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A private Redis server.
pub struct OwnRedis {
    child: Child,
    port: u16,
    /// Kept so the directory lives as long as the server.
    _dir: tempfile::TempDir,
}

impl OwnRedis {
    /// Starts `redis-server` with AOF (`appendfsync everysec`) in a fresh temp dir;
    /// `extra` are more `redis-server` arguments.
    pub fn start(extra: &[String]) -> Result<OwnRedis> {
        let dir = tempfile::Builder::new()
            .prefix("loadtest-redis")
            .tempdir()?;
        let port = free_port()?;
        let log = File::create(dir.path().join("redis.log"))?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
            ])
            .args(["--protected-mode", "yes", "--loglevel", "warning"])
            .arg("--dir")
            .arg(dir.path())
            .args(extra)
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting redis-server (is it installed? apt-get install redis-server)")?;
        let r = OwnRedis {
            child,
            port,
            _dir: dir,
        };
        r.wait_ready()?;
        Ok(r)
    }

    fn wait_ready(&self) -> Result<()> {
        let client = redis::Client::open(self.url())?;
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(mut c) = client.get_connection() {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "redis-server on port {} did not answer PING within 15 s",
            self.port
        )
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `cmd`, reads the first stdout line, which must be `<banner> http://ADDR`, and
/// keeps draining stdout in the background. Returns the child and the URL.
fn spawn_announcing(mut cmd: Command, banner: &str) -> Result<(Child, String)> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    // A child that dies closes the pipe, so this read ends either way.
    let n = reader.read_line(&mut line)?;
    let url = line
        .trim()
        .strip_prefix(banner)
        .map(str::trim)
        .map(str::to_owned);
    let Some(url) = url.filter(|_| n > 0) else {
        let _ = child.kill();
        let _ = child.wait();
        bail!(
            "{:?} did not announce itself (first line {line:?})",
            cmd.get_program()
        );
    };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    crate::loopback::check_http_url(&url).map(|u| (child, u))
}

/// Polls `GET <url>/health` (or `/` for the baseline) until 200, at most `limit`.
pub async fn wait_http_ready(url: &str, path: &str, limit: Duration) -> Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(r) = http.get(format!("{url}{path}")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            bail!("{url}{path} not ready within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The secrets every node of one market shares.
#[derive(Debug, Clone)]
pub struct Secrets {
    /// Signs users' tokens.
    pub jwt: String,
    /// Signs calls between nodes.
    pub cluster: String,
}

/// How to start the market server.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// The `proof-market` binary.
    pub bin: PathBuf,
    /// Redis it uses.
    pub redis_url: String,
    /// Key prefix.
    pub prefix: String,
    /// Secrets (the same across restarts, so tokens stay valid).
    pub secrets: Secrets,
    /// Extra `serve` arguments (e.g. `--http-workers 2`).
    pub extra: Vec<String>,
    /// Where its stderr goes.
    pub log: PathBuf,
}

/// A market server started by the harness.
pub struct OwnServer {
    child: Option<Child>,
    spec: ServerSpec,
    data: tempfile::TempDir,
    url: String,
    /// How many times it was started.
    pub starts: u32,
}

impl OwnServer {
    /// Starts the server and waits until `/health` answers 200.
    pub async fn start(spec: ServerSpec) -> Result<OwnServer> {
        if !spec.bin.is_file() {
            bail!(
                "server binary {} not found: build it (cargo build --release) or pass --server-bin",
                spec.bin.display()
            );
        }
        let data = tempfile::Builder::new().prefix("loadtest-node").tempdir()?;
        let mut s = OwnServer {
            child: None,
            spec,
            data,
            url: String::new(),
            starts: 0,
        };
        s.launch().await?;
        Ok(s)
    }

    async fn launch(&mut self) -> Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.spec.log)
            .with_context(|| format!("opening {}", self.spec.log.display()))?;
        let mut cmd = Command::new(&self.spec.bin);
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .args(["--redis-url", &self.spec.redis_url])
            .args(["--key-prefix", &self.spec.prefix])
            .arg("--data-dir")
            .arg(self.data.path());
        // A node keeps its id across restarts, as a deployed one does, so that after a
        // kill -9 it takes its statements back at once instead of waiting for the dead
        // incarnation's heartbeat and leases to lapse.
        if !self.spec.extra.iter().any(|a| a == "--node-id") {
            cmd.args(["--node-id", &format!("loadtest-{}", std::process::id())]);
        }
        cmd.args(&self.spec.extra)
            .env("PROOF_MARKET_JWT_SECRET", &self.spec.secrets.jwt)
            .env("PROOF_MARKET_CLUSTER_SECRET", &self.spec.secrets.cluster)
            // Rate limits and quotas off unless a caller asks for them with a flag (flags
            // win over the environment): one client on loopback is all a test has.
            .env("PROOF_MARKET_RATE_LIMIT_IP", "0")
            .env("PROOF_MARKET_RATE_LIMIT_USER", "0")
            .env("PROOF_MARKET_MAX_STATEMENTS_PER_DAY", "0")
            .env("PROOF_MARKET_MAX_OPEN_ORDERS", "0")
            .env("PROOF_MARKET_MAX_IDEMPOTENCY_KEYS", "0")
            .env("RUST_LOG", "warn")
            .stderr(Stdio::from(log));
        let (child, url) =
            tokio::task::block_in_place(|| spawn_announcing(cmd, "proof-market listening on"))?;
        self.child = Some(child);
        self.url = url;
        self.starts += 1;
        wait_http_ready(&self.url, "/health", Duration::from_secs(60)).await
    }

    /// Base URL of the running node (changes on restart: it listens on port 0).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its PID, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, no graceful shutdown.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills it with SIGKILL and starts it again (same Redis, prefix, data dir, secret).
    pub async fn kill9_and_restart(&mut self) -> Result<()> {
        self.kill9();
        self.launch().await
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The baseline HTTP server (this binary's `baseline-server` mode) as a child.
pub struct BaselineChild {
    child: Child,
    url: String,
}

impl BaselineChild {
    /// Starts it with `workers` actix workers and waits until it answers.
    pub async fn start(workers: usize, log: &Path) -> Result<BaselineChild> {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.args(["baseline-server", "--listen", "127.0.0.1:0"])
            .args(["--workers", &workers.to_string()])
            .stderr(Stdio::from(
                File::options().create(true).append(true).open(log)?,
            ));
        let (child, url) =
            tokio::task::block_in_place(|| spawn_announcing(cmd, crate::baseline::BANNER))?;
        let b = BaselineChild { child, url };
        wait_http_ready(&b.url, "/health", Duration::from_secs(15)).await?;
        Ok(b)
    }

    /// Its base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for BaselineChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private Redis Cluster of three masters (no replicas, AOF everysec), for the
/// `leases` mode.
pub struct OwnCluster {
    children: Vec<Child>,
    ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl OwnCluster {
    /// Starts three cluster-enabled redis-servers, joins them with `redis-cli --cluster
    /// create`, and waits for `cluster_state:ok`.
    pub fn start() -> Result<OwnCluster> {
        let dir = tempfile::Builder::new()
            .prefix("loadtest-cluster")
            .tempdir()?;
        let mut ports = Vec::new();
        while ports.len() < 3 {
            // The cluster bus listens on port + 10000: both must be free.
            let p = free_port()?;
            if p < 55_000
                && !ports.contains(&p)
                && std::net::TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok()
            {
                ports.push(p);
            }
        }
        let mut c = OwnCluster {
            children: Vec::new(),
            ports: ports.clone(),
            _dir: dir,
        };
        for p in &ports {
            let d = c._dir.path().join(p.to_string());
            std::fs::create_dir_all(&d)?;
            let log = File::create(d.join("redis.log"))?;
            c.children.push(
                Command::new("redis-server")
                    .args(["--port", &p.to_string(), "--bind", "127.0.0.1"])
                    .args([
                        "--save",
                        "",
                        "--appendonly",
                        "yes",
                        "--appendfsync",
                        "everysec",
                    ])
                    .args([
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                    ])
                    .args(["--protected-mode", "yes", "--loglevel", "warning"])
                    .arg("--dir")
                    .arg(&d)
                    .stdout(Stdio::from(log.try_clone()?))
                    .stderr(Stdio::from(log))
                    .spawn()
                    .context("starting redis-server (is it installed?)")?,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        for p in &ports {
            while cli(*p, &["PING"]).trim() != "PONG" {
                if Instant::now() > deadline {
                    bail!("redis-server on port {p} did not start");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .context("running redis-cli --cluster create")?;
        if !out.status.success() {
            bail!(
                "redis-cli --cluster create failed: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ports
            .iter()
            .all(|p| cli(*p, &["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        {
            if Instant::now() > deadline {
                bail!("the Redis Cluster was not ok within 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(c)
    }

    /// The seed URLs, comma-separated (as `--redis-url` takes them).
    pub fn url(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The masters' PIDs.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What `redis-cli` prints for `cmd` against 127.0.0.1:`port`; empty when it fails.
fn cli(port: u16, cmd: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(cmd)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

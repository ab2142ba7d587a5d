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

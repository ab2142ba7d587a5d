//! Child processes the harness starts and stops itself: a private `redis-server` (AOF,
//! `appendfsync everysec`, in a temporary directory, on a free loopback port), a private
//! PostgreSQL (for the archive of issue 11), the market server binary, and the baseline
//! HTTP server. Each is stopped by its PID (the `Child` handle) when dropped, so a
//! failing run leaves nothing behind.

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

/// The database the harness creates in its own PostgreSQL for the market.
pub const PG_DATABASE: &str = "proof_market";

/// A private PostgreSQL: `initdb` in a temp dir (trust authentication, user `postgres`),
/// `postgres` on a free loopback port with its socket in that dir, and the database
/// [`PG_DATABASE`]. Stopped on drop by PID: SIGINT (fast shutdown), then a bounded wait.
///
/// Binaries: `initdb` on PATH (symlinks followed to its real directory), else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's layout). initdb and postgres refuse to
/// run as root: as root they run as the `postgres` user (the uid and gid are set on the
/// child itself, so the child *is* the postmaster and its PID is the one stopped; a
/// `runuser` in between would fork and turn the SIGINT into a SIGTERM, PostgreSQL's
/// slow "smart" shutdown), with the temp dir chowned to it.
pub struct OwnPostgres {
    child: Option<Child>,
    port: u16,
    /// Kept so the directory lives as long as the server (removed on drop, after it).
    _dir: tempfile::TempDir,
}

/// Where `initdb` and `postgres` are.
pub fn pg_bin_dir() -> Result<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("initdb"))
            .find(|f| f.is_file())
    });
    if let Some(dir) = on_path
        .and_then(|f| std::fs::canonicalize(f).ok())
        .and_then(|f| f.parent().map(Path::to_path_buf))
        .filter(|d| d.join("postgres").is_file())
    {
        return Ok(dir);
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: Option<Vec<u32>> = e
                .file_name()
                .to_str()?
                .split('.')
                .map(|n| n.parse().ok())
                .collect();
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("postgres").is_file()).then_some((v?, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, d)| d).context(
        "no PostgreSQL binaries (initdb, postgres) on PATH or in /usr/lib/postgresql/*/bin: apt-get install -y postgresql",
    )
}

/// True when this process runs as root (effective uid 0, from `/proc/self/status`).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|r| r.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// `(uid, gid)` of `user`, from `/etc/passwd`.
fn user_ids(user: &str) -> Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&user))
        .and_then(|f| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))
        .with_context(|| {
            format!("no user {user:?} to run PostgreSQL as (the postgresql package creates it)")
        })
}

/// The last `n` lines of a log, for an error message.
fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl OwnPostgres {
    /// Initialises and starts it, and creates [`PG_DATABASE`]; `extra` are more
    /// `postgres` arguments (e.g. `-c`, `fsync=off`). Blocking, and it uses the sync
    /// `postgres` client, which runs a runtime of its own: call it off the async workers
    /// (`spawn_blocking`).
    pub fn start(extra: &[String]) -> Result<OwnPostgres> {
        use std::os::unix::process::CommandExt;

        let bin = pg_bin_dir()?;
        let dir = tempfile::Builder::new().prefix("loadtest-pg").tempdir()?;
        let ids = if running_as_root() {
            let (uid, gid) = user_ids("postgres")?;
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .with_context(|| format!("chown {} to postgres", dir.path().display()))?;
            Some((uid, gid))
        } else {
            None
        };
        let as_pg = |cmd: &mut Command| {
            if let Some((uid, gid)) = ids {
                cmd.uid(uid).gid(gid);
            }
            // The postgres user may not be able to enter the harness's working directory.
            cmd.current_dir(dir.path());
        };
        let data = dir.path().join("data");
        let initdb_log = dir.path().join("initdb.log");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"])
            .arg("--no-sync")
            .stdout(Stdio::from(File::create(&initdb_log)?))
            .stderr(Stdio::from(File::create(dir.path().join("initdb.err"))?));
        as_pg(&mut initdb);
        let status = initdb
            .status()
            .with_context(|| format!("running {}", bin.join("initdb").display()))?;
        if !status.success() {
            bail!(
                "initdb failed ({status}): {}",
                log_tail(&dir.path().join("initdb.err"), 10)
            );
        }
        let port = free_port()?;
        let log_path = dir.path().join("postgres.log");
        let log = File::create(&log_path)?;
        let mut cmd = Command::new(bin.join("postgres"));
        cmd.arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.path().display()))
            .args(extra)
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        as_pg(&mut cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.join("postgres").display()))?;
        let mut pg = OwnPostgres {
            child: Some(child),
            port,
            _dir: dir,
        };
        pg.wait_ready()
            .with_context(|| format!("PostgreSQL log: {}", log_tail(&log_path, 10)))?;
        Ok(pg)
    }

    /// Waits until it accepts connections, then creates the database.
    fn wait_ready(&mut self) -> Result<()> {
        let admin = format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout=2",
            self.port
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Some(status) = c.try_wait()? {
                    self.child = None;
                    bail!("postgres exited at start ({status})");
                }
            }
            match postgres::Client::connect(&admin, postgres::NoTls) {
                Ok(mut c) => {
                    c.batch_execute(&format!("CREATE DATABASE {PG_DATABASE}"))
                        .context("creating the database")?;
                    return Ok(());
                }
                Err(e) if Instant::now() >= deadline => {
                    bail!("postgres on port {} not ready within 30 s: {e}", self.port)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// `postgres://postgres@127.0.0.1:<port>/proof_market`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{PG_DATABASE}", self.port)
    }

    /// The postmaster's PID, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its data and log directory.
    #[cfg(test)]
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        if let Ok(pid) = libc::pid_t::try_from(c.id()) {
            // SAFETY: kill(2) with our own child's PID (not yet reaped, so not reused)
            // and a valid signal number touches no memory of this process.
            unsafe {
                libc::kill(pid, libc::SIGINT);
            }
        }
        // Fast shutdown: active backends are ended, the cluster checkpoints and exits.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            match c.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(_) => break,
            }
        }
        let _ = c.kill();
        let _ = c.wait();
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
    /// PostgreSQL for the archive (`--database-url`); `None`: archiving off.
    pub database_url: Option<String>,
    /// More environment for the node (e.g. `PROOF_MARKET_ARCHIVE_RETENTION_SECS`), set
    /// after the harness's defaults so it can override them.
    pub env: Vec<(String, String)>,
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
        if let Some(db) = &self.spec.database_url {
            cmd.args(["--database-url", db]);
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
            // A demo market's money: every simulated user's wallet opens funded (the
            // load is orders, not credits); an older server ignores these.
            .env("PROOF_MARKET_SIGNUP_CREDIT", "1000000000000")
            .env("PROOF_MARKET_SIGNUP_DEPOSIT", "1000000000000")
            .env("RUST_LOG", "warn")
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .stderr(Stdio::from(log));
        let archive = self.spec.database_url.is_some();
        let (child, url) =
            tokio::task::block_in_place(|| spawn_announcing(cmd, "proof-market listening on"))
                .with_context(|| {
                    if archive {
                        format!(
                            "starting the node with --database-url (a node without the archive of issue 11 refuses it: --archive off); see {}",
                            self.spec.log.display()
                        )
                    } else {
                        format!("starting the node; see {}", self.spec.log.display())
                    }
                })?;
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

/// `/health`'s `archive` object (issue 11): `None` when the node archives nothing
/// (`"archive": null`, or an older node without the field).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ArchiveHealth {
    /// Age (ms) of the oldest event not yet in PostgreSQL.
    pub lag_ms: Option<u64>,
    /// Events not yet in PostgreSQL.
    pub pending_events: Option<u64>,
    /// Events written to PostgreSQL by this node process since it started.
    pub archived_events: Option<u64>,
}

impl ArchiveHealth {
    /// From a `/health` body; `None` unless it has an `archive` object.
    pub fn parse(body: &serde_json::Value) -> Option<ArchiveHealth> {
        let a = body.get("archive")?.as_object()?;
        Some(ArchiveHealth {
            lag_ms: a.get("lag_ms").and_then(serde_json::Value::as_u64),
            pending_events: a.get("pending_events").and_then(serde_json::Value::as_u64),
            archived_events: a.get("archived_events").and_then(serde_json::Value::as_u64),
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_archive_of_health() {
        let on: serde_json::Value = serde_json::json!({"status": "ok", "archive": {
            "lag_ms": 1200, "pending_events": 35, "archived_events": 9, "removed_records": 1,
            "errors": 0, "postgres": "reachable"}});
        assert_eq!(
            ArchiveHealth::parse(&on),
            Some(ArchiveHealth {
                lag_ms: Some(1200),
                pending_events: Some(35),
                archived_events: Some(9),
            })
        );
        assert_eq!(
            ArchiveHealth::parse(&serde_json::json!({"archive": null})),
            None
        );
        assert_eq!(
            ArchiveHealth::parse(&serde_json::json!({"status": "ok"})),
            None
        );
        assert_eq!(
            ArchiveHealth::parse(&serde_json::json!({"archive": {"lag_ms": null}})),
            Some(ArchiveHealth::default())
        );
    }

    /// A private PostgreSQL starts, takes the history schema, and the invariant checker's
    /// reader sees what is written there; dropping it stops the server and removes its
    /// directory.
    #[test]
    fn own_postgres_holds_the_archive_schema() {
        use market_invariants::pg_rows;

        let pg = OwnPostgres::start(&[]).expect("starting a private PostgreSQL");
        let (dir, pid) = (pg.dir().to_path_buf(), pg.pid().expect("running"));
        let mut c = pg_rows::connect(&pg.url()).expect("connecting");
        let schema = std::fs::read_to_string(
            workspace_root().join("src/archive/migrations/V1__history.sql"),
        )
        .expect("the schema");
        c.batch_execute(&schema).expect("applying the schema");
        c.batch_execute(
            "INSERT INTO orders (key, side, statement_key, status, cost, eval_time, sender,
                 created_on, updated_on, seq, counterpart, matched_time, price)
             VALUES (7, 'request', 3, 'withdrawn', 5000000, 30, 'alice', 1, 2, 4, NULL, NULL, NULL),
                    (9, 'proposal', 3, 'completed', 2000000, NULL, 'bob', 1, 2, 6, 8, 2, 2000000);
             INSERT INTO archive_cursor VALUES (3, 12, 1);",
        )
        .expect("inserting");
        let rows = pg_rows::read_orders(&mut c).expect("reading orders");
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].key, rows[0].kind.as_str(), rows[0].status.as_str()),
            (7, "request", "withdrawn")
        );
        assert_eq!(
            (
                rows[0].statement,
                rows[0].cost,
                rows[0].eval_time,
                rows[0].seq
            ),
            (3, Some(5_000_000), Some(30), Some(4))
        );
        assert!(rows.iter().all(|r| r.archived));
        assert_eq!(
            (rows[1].counterpart, rows[1].price, rows[1].eval_time),
            (Some(8), Some(2_000_000), None)
        );
        let cursors = pg_rows::read_cursors(&mut c).expect("reading cursors");
        assert_eq!(
            cursors,
            vec![market_invariants::Cursor {
                statement: 3,
                event_seq: 12
            }]
        );
        drop(c);
        drop(pg);
        assert!(!dir.exists(), "{} left behind", dir.display());
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "postgres {pid} still running"
        );
    }
}

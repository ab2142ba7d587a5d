//! The real `proof-market` binary as a test's node ([`Server`]): started on a free port
//! against a [`Backend`], killed, paused, stopped or restarted by PID, with its `/health`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::api::Api;
use super::backend::Backend;
use super::free_port;

/// An environment entry for [`Server::start_with_env`] that sends the node's log
/// (stderr) to the file it names instead of the test's output.
pub const STDERR_FILE: &str = "PM_TEST_STDERR_FILE";

/// The JWT secret every test node signs with.
pub const SECRET: &str = "end-to-end-test-secret-0123456789abcdef";

/// The cluster secret every test node signs its calls to other nodes with (unless a
/// test starts a node with other environment, see [`Server::start_with_env`]).
pub const CLUSTER_SECRET: &str = "end-to-end-test-cluster-secret-0123456789";

/// The `proof-market` binary Cargo built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_proof-market"))
}

/// The operator token every test server accepts for `/admin` calls.
#[allow(dead_code)]
pub const ADMIN_TOKEN: &str = "test-operator-token-0123456789";

static NODE_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A running market node, killed when dropped.
pub struct Server {
    child: Option<Child>,
    pub url: String,
    redis_url: String,
    prefix: String,
    data_dir: tempfile::TempDir,
    extra: Vec<String>,
    /// Environment set (`Some`) or removed (`None`) after the harness's own.
    env: Vec<(String, Option<String>)>,
    listen: String,
    /// Kept across restarts, like a real node's (a restarted node reclaims its leases).
    pub node_id: String,
}

impl Server {
    /// Starts a node on a free port and waits until `/health` says ready.
    pub async fn start(b: &Backend) -> Server {
        Self::start_with(b, &[]).await
    }

    pub async fn start_with(b: &Backend, extra: &[&str]) -> Server {
        Self::launched(b, extra, &[], "127.0.0.1:0".into()).await
    }

    /// A node with `extra` arguments and environment `env` on top of the harness's
    /// (`None` removes a variable: `("PROOF_MARKET_CLUSTER_SECRET", None)` starts a
    /// node without a cluster secret).
    pub async fn start_with_env(
        b: &Backend,
        extra: &[&str],
        env: &[(&str, Option<&str>)],
    ) -> Server {
        Self::launched(b, extra, env, "127.0.0.1:0".into()).await
    }

    /// A node that keeps one port across restarts (for clients that cannot follow).
    pub async fn start_fixed_port(b: &Backend) -> Server {
        Self::start_fixed_port_with(b, &[]).await
    }

    /// [`Server::start_fixed_port`] with `extra` arguments.
    pub async fn start_fixed_port_with(b: &Backend, extra: &[&str]) -> Server {
        Self::launched(b, extra, &[], format!("127.0.0.1:{}", free_port())).await
    }

    async fn launched(
        b: &Backend,
        extra: &[&str],
        env: &[(&str, Option<&str>)],
        listen: String,
    ) -> Server {
        let mut s = Server {
            child: None,
            url: String::new(),
            redis_url: b.url.clone(),
            prefix: b.prefix.clone(),
            data_dir: tempfile::tempdir().unwrap(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_owned)))
                .collect(),
            listen,
            node_id: format!(
                "test-{}-{}",
                std::process::id(),
                NODE_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ),
        };
        s.launch().await;
        s
    }

    async fn launch(&mut self) {
        let mut cmd = Command::new(bin());
        cmd.args([
            "serve",
            "--listen",
            &self.listen,
            "--redis-url",
            &self.redis_url,
            "--key-prefix",
            &self.prefix,
        ])
        .arg("--data-dir")
        .arg(self.data_dir.path())
        .args(["--node-id", &self.node_id])
        .args(&self.extra)
        .env("PROOF_MARKET_JWT_SECRET", SECRET)
        .env("PROOF_MARKET_CLUSTER_SECRET", CLUSTER_SECRET)
        // Rate limits and quotas off unless a caller asks for them with a flag (flags
        // win over the environment): one client on loopback is all a test has.
        .env("PROOF_MARKET_RATE_LIMIT_IP", "0")
        .env("PROOF_MARKET_RATE_LIMIT_USER", "0")
        .env("PROOF_MARKET_MAX_STATEMENTS_PER_DAY", "0")
        .env("PROOF_MARKET_MAX_OPEN_ORDERS", "0")
        .env("PROOF_MARKET_MAX_IDEMPOTENCY_KEYS", "0")
        // A demo market's money: every wallet opens funded, so tests written before
        // money existed trade as before; money tests set their own.
        .env("PROOF_MARKET_SIGNUP_CREDIT", "1000000000000")
        .env("PROOF_MARKET_SIGNUP_DEPOSIT", "1000000000000")
        .env("PROOF_MARKET_ADMIN_TOKEN", ADMIN_TOKEN)
        .env(
            "RUST_LOG",
            std::env::var("PM_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        // The history database only when a test gives one (`--database-url`).
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        for (k, v) in &self.env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
            // The node's log to a file (appended across restarts), for tests that read it.
            if let (STDERR_FILE, Some(path)) = (k.as_str(), v) {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .unwrap();
                cmd.stderr(Stdio::from(f));
            }
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let url = line
            .trim()
            .strip_prefix("proof-market listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from the server: {line:?}"))
            .to_owned();
        self.child = Some(child);
        self.url = url;
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(format!("{}/health", self.url)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "server not ready in 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no graceful shutdown at all.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The node's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {} failed", self.pid());
    }

    /// SIGSTOP: the process freezes (sockets stay open, nothing runs).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`Server::pause`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// SIGTERM, then waits for the exit; returns the exit code.
    pub fn terminate(&mut self, within: Duration) -> Option<i32> {
        self.signal("-TERM");
        let mut child = self.child.take()?;
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the node did not stop within {within:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The node's `/health` body.
    pub async fn health(&self) -> Value {
        let r = reqwest::get(format!("{}/health", self.url)).await.unwrap();
        r.json().await.unwrap()
    }

    /// Statements this node owns, per its `/health`.
    pub async fn owned(&self) -> Vec<String> {
        self.health().await["statements_owned"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Starts the node again on a new port, same Redis and prefix.
    pub async fn restart(&mut self) {
        self.kill9();
        self.launch().await;
    }

    pub fn api(&self) -> Api {
        Api::new(&self.url)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A process's resident memory (VmRSS), in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

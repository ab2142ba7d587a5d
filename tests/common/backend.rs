//! The Redis a test runs on: a private server ([`OwnRedis`], AOF on, restartable), a
//! private Redis Cluster of three masters ([`OwnCluster`], plain or TLS), where a test's
//! data lives ([`Backend`]: a URL and a key prefix of its own) and one-off commands on
//! either.
//!
//! Tests use the Redis named by `PROOF_MARKET_TEST_REDIS_URL` (started by
//! `deploy/test.sh`) under a key prefix of their own, so they run in parallel; without
//! it, or when a test must restart Redis, each starts a private `redis-server`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::free_port;
use super::tls;

/// A Redis server started for one test, stopped (by PID) when dropped.
pub struct OwnRedis {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl OwnRedis {
    /// Starts redis-server on a free port with AOF (fsync always) in a temp dir.
    pub fn start() -> OwnRedis {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Self::spawn(dir.path(), port);
        let r = OwnRedis { child, port, dir };
        r.wait_ready();
        r
    }

    fn spawn(dir: &Path, port: u16) -> Child {
        Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (deploy/test.sh installs it)")
    }

    fn wait_ready(&self) {
        wait_for_redis(&self.url());
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills Redis with SIGKILL (and leaves it down).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills Redis with SIGKILL and starts it again from its AOF.
    pub fn crash_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(self.dir.path(), self.port);
        self.wait_ready();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Redis Cluster of three masters on loopback, started for one test and stopped (by
/// PID) when dropped.
pub struct OwnCluster {
    children: Vec<Child>,
    pub ports: Vec<u16>,
    tls: bool,
    cli: Vec<String>,
    _dir: tempfile::TempDir,
}

impl OwnCluster {
    /// Starts three cluster-enabled redis-servers, joins them, waits for `cluster_state:ok`.
    pub fn start() -> OwnCluster {
        Self::start_with(None)
    }

    /// The same, TLS only (clients and the cluster bus), with `pki`'s certificates.
    pub fn start_tls(pki: &tls::Pki) -> OwnCluster {
        Self::start_with(Some(pki))
    }

    fn start_with(pki: Option<&tls::Pki>) -> OwnCluster {
        let dir = tempfile::tempdir().unwrap();
        let mut ports = Vec::new();
        while ports.len() < 3 {
            // The cluster bus listens on port + 10000: both must be free.
            let p = free_port();
            if p < 55_000
                && !ports.contains(&p)
                && std::net::TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok()
            {
                ports.push(p);
            }
        }
        let mut children = Vec::new();
        for p in &ports {
            let d = dir.path().join(p.to_string());
            std::fs::create_dir_all(&d).unwrap();
            let listen: Vec<String> = match pki {
                Some(pki) => {
                    let mut a = pki.server_args(*p);
                    a.extend(["--tls-cluster".into(), "yes".into()]);
                    a
                }
                None => vec!["--port".into(), p.to_string()],
            };
            children.push(
                Command::new("redis-server")
                    .args(listen)
                    .args(["--bind", "127.0.0.1", "--save", ""])
                    .args([
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                    ])
                    .args(["--appendonly", "yes", "--appendfsync", "everysec"])
                    .arg("--dir")
                    .arg(&d)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("redis-server must be installed (deploy/test.sh installs it)"),
            );
        }
        let c = OwnCluster {
            children,
            ports,
            tls: pki.is_some(),
            cli: pki.map(tls::Pki::cli_args).unwrap_or_default(),
            _dir: dir,
        };
        for p in &c.ports {
            wait_for_cli(*p, &c.cli);
        }
        let out = Command::new("redis-cli")
            .args(&c.cli)
            .arg("--cluster")
            .arg("create")
            .args(c.ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli must be installed");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        'wait: loop {
            for p in &c.ports {
                if !redis_cli(*p, &c.cli, &["CLUSTER", "INFO"]).contains("cluster_state:ok") {
                    assert!(Instant::now() < deadline, "Redis Cluster not ok in 30 s");
                    std::thread::sleep(Duration::from_millis(100));
                    continue 'wait;
                }
            }
            return c;
        }
    }

    /// The seed list as `--redis-url` takes it.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        self.ports
            .iter()
            .map(|p| format!("{scheme}://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// What `redis-cli` (with `cli` connection arguments) prints for `cmd` on `port`;
/// empty when it fails.
pub fn redis_cli(port: u16, cli: &[String], cmd: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(cli)
        .args(cmd)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Waits until the server on `port` answers PING through redis-cli.
pub fn wait_for_cli(port: u16, cli: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if redis_cli(port, cli, &["PING"]).trim() == "PONG" {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("redis-server on port {port} did not start");
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_for_redis(url: &str) {
    let client = redis::Client::open(url).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(mut c) = client.get_connection() {
            if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("redis-server at {url} did not start");
}

/// Where a test's data lives: a Redis URL and a key prefix of its own.
pub struct Backend {
    pub url: String,
    pub prefix: String,
    _own: Option<OwnRedis>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Backend {
    /// The shared test Redis under a fresh prefix, or a private Redis.
    pub fn new() -> Backend {
        let prefix = format!(
            "t{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
                % 1_000_000
        );
        match std::env::var("PROOF_MARKET_TEST_REDIS_URL") {
            Ok(url) if !url.is_empty() => Backend {
                url,
                prefix,
                _own: None,
            },
            _ => {
                let own = OwnRedis::start();
                Backend {
                    url: own.url(),
                    prefix,
                    _own: Some(own),
                }
            }
        }
    }

    /// A private Redis Cluster of three masters.
    pub fn cluster() -> (Backend, OwnCluster) {
        let c = OwnCluster::start();
        (Backend::on(c.url()), c)
    }

    /// A backend on a given (private) Redis.
    pub fn on(url: String) -> Backend {
        Backend {
            url,
            prefix: "pm".into(),
            _own: None,
        }
    }
}

/// Runs one Redis command against a test backend's URL: one Redis, or the comma-separated
/// seeds of a cluster (the command is routed to the key's master).
pub fn redis_query<T: redis::FromRedisValue>(url: &str, cmd: &redis::Cmd) -> T {
    if url.contains(',') {
        let seeds: Vec<&str> = url.split(',').collect();
        let mut c = redis::cluster::ClusterClient::new(seeds)
            .unwrap()
            .get_connection()
            .unwrap();
        cmd.query(&mut c).unwrap()
    } else {
        let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
        cmd.query(&mut c).unwrap()
    }
}

//! Shared end-to-end harness: a real Redis, the real `proof-market` binary on a free
//! port, and an HTTP client.
//!
//! Tests use the Redis named by `PROOF_MARKET_TEST_REDIS_URL` (started by
//! `deploy/test.sh`) under a key prefix of their own, so they run in parallel; without
//! it, or when a test must restart Redis, each starts a private `redis-server`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub mod tls;

pub const SECRET: &str = "end-to-end-test-secret-0123456789abcdef";
pub const ROOT: &str = "/_db/market/v0_0";

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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_proof-market"))
}

static NODE_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A running market node, killed when dropped.
pub struct Server {
    child: Option<Child>,
    pub url: String,
    redis_url: String,
    prefix: String,
    data_dir: tempfile::TempDir,
    extra: Vec<String>,
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
        Self::launched(b, extra, "127.0.0.1:0".into()).await
    }

    /// A node that keeps one port across restarts (for clients that cannot follow).
    pub async fn start_fixed_port(b: &Backend) -> Server {
        Self::launched(b, &[], format!("127.0.0.1:{}", free_port())).await
    }

    async fn launched(b: &Backend, extra: &[&str], listen: String) -> Server {
        let mut s = Server {
            child: None,
            url: String::new(),
            redis_url: b.url.clone(),
            prefix: b.prefix.clone(),
            data_dir: tempfile::tempdir().unwrap(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
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
        let mut child = Command::new(bin())
            .args([
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
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
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

/// A thin HTTP client returning (status, JSON body).
#[derive(Clone)]
pub struct Api {
    pub base: String,
    http: reqwest::Client,
    pub token: Option<String>,
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            token: None,
        }
    }

    pub fn with_token(&self, token: &str) -> Api {
        Api {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> (u16, Value) {
        let rb = match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        };
        let r = rb.send().await.expect("HTTP call failed");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("non-JSON body ({status}): {text}"));
        (status, v)
    }

    /// Like `post`/`delete`, but a connection failure is an `Err` instead of a panic
    /// (for calls to nodes that may be dead).
    pub async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        self.try_call_keyed(method, path, body, None).await
    }

    /// `try_call` with an optional `Idempotency-Key`.
    pub async fn try_call_keyed(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<(u16, Value), String> {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(Duration::from_secs(20));
        if let Some(k) = idempotency_key {
            rb = rb.header("idempotency-key", k);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        let r = rb.send().await.map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        let text = r.text().await.map_err(|e| e.to_string())?;
        let v =
            serde_json::from_str(&text).map_err(|_| format!("non-JSON body ({status}): {text}"))?;
        Ok((status, v))
    }

    /// The same user's client against another node.
    pub fn at(&self, base: &str) -> Api {
        Api {
            base: base.to_owned(),
            ..self.clone()
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    /// `post` with an `Idempotency-Key` header (raw bytes, to send bad ones too).
    pub async fn post_keyed(&self, path: &str, body: &Value, key: &[u8]) -> (u16, Value) {
        let value = reqwest::header::HeaderValue::from_bytes(key).unwrap();
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .header("idempotency-key", value)
                .json(body),
        )
        .await
    }

    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }

    /// Signs up and logs in `user`; returns an authenticated client.
    pub async fn user(&self, user: &str) -> Api {
        let (s, v) = self
            .post(
                &format!("{ROOT}/user/signup"),
                &json!({"user": user, "passwd": "pw-" , "email": "u@example.org"}),
            )
            .await;
        assert_eq!(s, 200, "signup {user}: {v}");
        let (s, v) = self
            .post("/_open/auth", &json!({"username": user, "password": "pw-"}))
            .await;
        assert_eq!(s, 200, "login {user}: {v}");
        self.with_token(v["jwt"].as_str().unwrap())
    }
}

/// The example statement of the walkthrough.
pub fn example_statement() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/example/statements/arithmetic.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Pushes the example statement; returns its key.
pub async fn push_statement(api: &Api) -> String {
    let (s, v) = api
        .post(&format!("{ROOT}/statement/"), &example_statement())
        .await;
    assert_eq!(s, 200, "{v}");
    v["_key"].as_str().unwrap().to_owned()
}

/// Every order of one kind, all pages.
pub async fn all_orders(api: &Api, kind: &str, statement: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let q = format!(r#"[{{"key":"statement_key","value":"{statement}"}}]"#);
        let path = format!(
            "{ROOT}/{kind}/?q={}&limit=1000&skipped={}",
            urlencode(&q),
            out.len()
        );
        let (s, v) = api.get(&path).await;
        assert_eq!(s, 200, "{v}");
        let page = v.as_array().unwrap().clone();
        let n = page.len();
        out.extend(page);
        if n < 1000 {
            return out;
        }
    }
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn micros(v: &Value) -> u64 {
    (v.as_f64().unwrap() * 1e6).round() as u64
}

/// Checks the invariants of ../shared/architecture.md over one statement's orders:
/// links are symmetric, each order is in at most one match, every match respects the
/// price and time rules and trades at the resting order's cost, and no two open orders
/// could still cross. Returns the number of matches.
pub fn check_invariants(requests: &[Value], proposals: &[Value]) -> usize {
    use std::collections::HashMap;
    let reqs: HashMap<&str, &Value> = requests
        .iter()
        .map(|r| (r["_key"].as_str().unwrap(), r))
        .collect();
    let props: HashMap<&str, &Value> = proposals
        .iter()
        .map(|p| (p["_key"].as_str().unwrap(), p))
        .collect();
    let mut matches = 0;
    let mut seen_props = std::collections::HashSet::new();
    for r in requests {
        let status = r["status"].as_str().unwrap();
        let Some(pk) = r.get("proposal_key").and_then(Value::as_str) else {
            assert!(
                status == "created" || status == "withdrawn" || r.get("proof_key").is_some(),
                "unlinked {r}"
            );
            continue;
        };
        assert!(
            seen_props.insert(pk.to_owned()),
            "proposal {pk} in two matches"
        );
        let p = props
            .get(pk)
            .unwrap_or_else(|| panic!("request {} links missing proposal {pk}", r["_key"]));
        assert_eq!(
            p["request_key"].as_str(),
            r["_key"].as_str(),
            "asymmetric link {r} / {p}"
        );
        assert!(
            micros(&p["cost"]) <= micros(&r["cost"]),
            "price rule broken: {r} / {p}"
        );
        if let Some(limit) = r["eval_time"].as_u64() {
            let t = p["eval_time"]
                .as_u64()
                .unwrap_or_else(|| panic!("untimed proposal served a timed request: {r} / {p}"));
            assert!(t <= limit, "time rule broken: {r} / {p}");
        }
        let price = micros(&r["price"]);
        assert_eq!(price, micros(&p["price"]));
        let resting_is_request = r["createdOn"].as_u64() < p["createdOn"].as_u64()
            || (r["createdOn"] == p["createdOn"]
                && r["_key"].as_str().unwrap().parse::<u64>().unwrap()
                    < pk.parse::<u64>().unwrap());
        let _ = resting_is_request;
        assert!(
            price == micros(&r["cost"]) || price == micros(&p["cost"]),
            "price is neither order's cost"
        );
        assert!(["processing", "completed"].contains(&status));
        assert_eq!(p["status"], r["status"]);
        matches += 1;
    }
    for p in proposals {
        if let Some(rk) = p.get("request_key").and_then(Value::as_str) {
            assert!(
                reqs.contains_key(rk),
                "proposal {} links missing request {rk}",
                p["_key"]
            );
            assert_eq!(reqs[rk]["proposal_key"].as_str(), p["_key"].as_str());
        }
    }
    // No open request could take an open proposal.
    for r in requests.iter().filter(|r| r["status"] == "created") {
        for p in proposals.iter().filter(|p| p["status"] == "created") {
            let time_ok = match r["eval_time"].as_u64() {
                None => true,
                Some(l) => p["eval_time"].as_u64().is_some_and(|t| t <= l),
            };
            assert!(
                !(micros(&p["cost"]) <= micros(&r["cost"]) && time_ok),
                "open orders cross: {r} / {p}"
            );
        }
    }
    matches
}

/// A real proof of the example circuit on `inputs`, as `0x…` hex.
pub fn example_proof(inputs: &[u64]) -> String {
    use proof_market::prover::statements::StatementCircuit;
    let st = example_statement();
    let c = StatementCircuit::compile(st["definition"]["proving_key"].as_str().unwrap()).unwrap();
    let values: Vec<_> = inputs.iter().map(|&v| v.into()).collect();
    let (_, proof) = c.prove(&values).unwrap();
    format!("0x{}", hex::encode(proof))
}

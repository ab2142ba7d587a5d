//! TLS to Redis (`rediss://`), as managed Redis and Redis Cluster offerings require:
//! a node trades and takes real proofs over mutual TLS to one Redis and to a TLS-only
//! 3-master cluster, and refuses, with one clear line, a Redis it cannot trust or TLS
//! flags that cannot work.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::tls::Pki;
use common::*;
use serde_json::json;

/// A TLS-only redis-server (no plaintext port, client certificates required), stopped
/// by PID when dropped.
struct TlsRedis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl TlsRedis {
    fn start(pki: &Pki) -> TlsRedis {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new("redis-server")
            .args(pki.server_args(port))
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (deploy/test.sh installs it)");
        wait_for_cli(port, &pki.cli_args());
        TlsRedis {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Requester and producer trade on the example statement through `req_api` and
/// `prod_api`; the producer proves; the requester fetches the proof.
async fn trade_and_prove(req_api: &Api, prod_api: &Api, stmt: &str, a: u64, b: u64) {
    let (s, r) = req_api
        .post(
            &format!("{ROOT}/request/"),
            &json!({"statement_key": stmt, "cost": 7, "input": [{"field": a}, {"field": b}]}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let (s, p) = prod_api
        .post(
            &format!("{ROOT}/proposal/"),
            &json!({"statement_key": stmt, "cost": 5}),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["status"], "processing", "{p}");
    assert_eq!(p["request_key"], r["_key"], "{p}");
    let (s, v) = prod_api
        .post(
            &format!("{ROOT}/proof"),
            &json!({"proof": example_proof(&[a, b]), "proposal_key": p["_key"]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let rk = r["_key"].as_str().unwrap();
    let (s, v) = req_api.get(&format!("{ROOT}/request/{rk}")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "completed", "{v}");
    let pk = v["proof_key"].as_str().unwrap();
    let (s, v) = req_api.get(&format!("{ROOT}/proof/{pk}")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["request_key"], rk, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_trades_and_takes_proofs_over_mutual_tls_to_redis() {
    let pki = Pki::new();
    let redis = TlsRedis::start(&pki);
    let backend = Backend::on(redis.url());
    let node_args = pki.node_args();
    let args: Vec<&str> = node_args.iter().map(String::as_str).collect();
    let server = Server::start_with(&backend, &args).await;
    let health = server.health().await;
    assert_eq!(health["redis"], "reachable", "{health}");

    let api = server.api();
    let req = api.user("tls-req").await;
    let prod = api.user("tls-prod").await;
    let stmt = push_statement(&req).await;
    trade_and_prove(&req, &prod, &stmt, 3, 4).await;

    // The market's state is in the TLS Redis (read back through redis-cli over TLS).
    let keys = redis_cli(redis.port, &pki.cli_args(), &["KEYS", "pm:*"]);
    assert!(keys.contains(&format!("{{stmt:{stmt}}}")), "{keys}");
}

/// Runs `proof-market serve` with `args` until it exits (it must, within 60 s) and
/// returns (exit code, stderr).
fn serve_until_exit(redis_url: &str, args: &[String]) -> (Option<i32>, String) {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--redis-url", redis_url])
        .arg("--data-dir")
        .arg(data.path())
        .args(args)
        .env("PROOF_MARKET_JWT_SECRET", SECRET)
        .env("RUST_LOG", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the node kept running with {args:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_node_refuses_a_redis_it_cannot_trust_and_tls_flags_that_cannot_work() {
    let pki = Pki::new();
    let redis = TlsRedis::start(&pki);
    let client = vec![
        "--redis-client-cert".to_string(),
        pki.arg("client.pem"),
        "--redis-client-key".into(),
        pki.arg("client.key"),
    ];
    let with_ca = |ca: &str| {
        let mut a = vec!["--redis-ca-file".to_string(), pki.arg(ca)];
        a.extend(client.clone());
        a
    };
    let cases: Vec<(String, Vec<String>, &str)> = vec![
        // The server's certificate is signed by a CA the node was not told to trust.
        (
            redis.url(),
            with_ca("other-ca.pem"),
            "cannot connect to Redis",
        ),
        // System roots do not include the private CA either.
        (redis.url(), client.clone(), "cannot connect to Redis"),
        // Trusted, but the server requires a client certificate.
        (
            redis.url(),
            vec!["--redis-ca-file".into(), pki.arg("ca.pem")],
            "cannot connect to Redis",
        ),
        // TLS files with a plain URL would be silently ignored: refused.
        (
            format!("redis://127.0.0.1:{}", redis.port),
            with_ca("ca.pem"),
            "use rediss://",
        ),
        // A key where a certificate belongs, named.
        (redis.url(), with_ca("client.key"), "no PEM certificate"),
        (redis.url(), with_ca("missing.pem"), "missing.pem"),
        (
            format!("{},redis://127.0.0.1:1", redis.url()),
            vec![],
            "mix redis:// and rediss://",
        ),
        (
            format!("{}/#insecure", redis.url()),
            vec![],
            "certificate checks cannot be turned off",
        ),
    ];
    for (url, args, needle) in cases {
        let (code, stderr) = serve_until_exit(&url, &args);
        assert!(
            code.is_some_and(|c| c != 0),
            "{url} {args:?}: exit {code:?}"
        );
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(
            lines.len(),
            1,
            "{url} {args:?}: one line expected: {stderr}"
        );
        assert!(
            lines[0].starts_with("error: ") && lines[0].contains(needle),
            "{url} {args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // And a client certificate without its key is a usage error from the parser.
    let (code, stderr) = serve_until_exit(
        &redis.url(),
        &["--redis-client-cert".into(), pki.arg("client.pem")],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--redis-client-key"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_trade_over_a_tls_only_redis_cluster() {
    let pki = Pki::new();
    let cluster = OwnCluster::start_tls(&pki);
    let backend = Backend::on(cluster.url());
    let node_args = pki.node_args();
    let args: Vec<&str> = node_args.iter().map(String::as_str).collect();
    let a = Server::start_with(&backend, &args).await;
    let b = Server::start_with(&backend, &args).await;

    let req = a.api().user("tls-cluster-req").await;
    let prod = req.at(&b.url).user("tls-cluster-prod").await;
    // Statements until each node owns one (rendezvous gives one node all of n statements
    // with probability 2^(1-n)), so that calls cross between the nodes both ways.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut statements = Vec::new();
    loop {
        statements.push(push_statement(&req).await);
        let owned = (a.owned().await, b.owned().await);
        if statements.len() >= 4 && !owned.0.is_empty() && !owned.1.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline && statements.len() < 40,
            "one node owns all {} statements: {owned:?}",
            statements.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (i, stmt) in statements.iter().enumerate() {
        trade_and_prove(&req, &prod, stmt, 10 + i as u64, 3).await;
    }
    // Every statement is owned by exactly one of the two (once any handover is done).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (oa, ob) = (a.owned().await, b.owned().await);
        let all = statements.iter().all(|s| oa.contains(s) != ob.contains(s));
        if all {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ownership never settled: {oa:?} {ob:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

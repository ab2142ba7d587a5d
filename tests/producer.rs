//! The producer daemon end to end: it keeps proposals open, proves what matches with
//! real halo2 proofs, pushes them, and picks up matched-but-unproved orders after its
//! own restart and the market's.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

struct Daemon(Child);

impl Daemon {
    fn start(url: &str, stmt: &str) -> Daemon {
        Self::start_with(url, stmt, &["--poll-ms", "100"])
    }

    fn start_with(url: &str, stmt: &str, extra: &[&str]) -> Daemon {
        let child = Command::new(bin())
            .args([
                "--url",
                url,
                "producer",
                "--statement",
                stmt,
                "--cost",
                "2",
                "--max-open",
                "2",
            ])
            .args(["--user", "paul", "--passwd", "pw-"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        Daemon(child)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_for(api: &Api, path: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (s, v) = api.get(path).await;
        if s == 200 && pred(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: last {s} {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn open_proposals(api: &Api, stmt: &str) -> usize {
    let (_, book) = api.get(&format!("{ROOT}/book/{stmt}")).await;
    book["proposals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ordersAmount"].as_u64().unwrap() as usize)
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn producer_daemon_earns_and_survives_restarts() {
    let backend = Backend::new();
    let mut server = Server::start_fixed_port(&backend).await;
    let rita = server.api().user("rita").await;
    server.api().user("paul").await;
    let stmt = push_statement(&rita).await;

    let daemon = Daemon::start(&server.url, &stmt);
    // It keeps two proposals open.
    let deadline = Instant::now() + Duration::from_secs(30);
    while open_proposals(&rita, &stmt).await < 2 {
        assert!(Instant::now() < deadline, "producer placed no proposals");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Three requests get proved and completed.
    let mut keys = Vec::new();
    for i in 0..3u64 {
        let (s, v) = rita.post(&format!("{ROOT}/request/"), &json!({"statement_key": stmt, "cost": 3, "input": [{"field": 10 + i}, {"field": 100}]})).await;
        assert_eq!(s, 200, "{v}");
        keys.push(v["_key"].as_str().unwrap().to_owned());
    }
    for k in &keys {
        let r = wait_for(&rita, &format!("{ROOT}/request/{k}"), "completion", |v| {
            v["status"] == "completed"
        })
        .await;
        let (s, p) = rita
            .get(&format!(
                "{ROOT}/proof/{}",
                r["proof_key"].as_str().unwrap()
            ))
            .await;
        assert_eq!(s, 200);
        assert_eq!(p["sender"], "paul");
        assert_eq!(p["proof_system"], "halo2-ipa-pasta-v3");
    }

    // The daemon stops; a request matches one of its resting proposals meanwhile.
    drop(daemon);
    let (_, v) = rita
        .post(
            &format!("{ROOT}/request/"),
            &json!({"statement_key": stmt, "cost": 3, "input": [{"field": 7}, {"field": 8}]}),
        )
        .await;
    assert_eq!(v["status"], "processing", "{v}");
    let pending = v["_key"].as_str().unwrap().to_owned();
    // The market restarts too (same port), then the daemon: it proves the leftover.
    server.restart().await;
    let _daemon = Daemon::start(&server.url, &stmt);
    wait_for(
        &rita,
        &format!("{ROOT}/request/{pending}"),
        "leftover proved",
        |v| v["status"] == "completed",
    )
    .await;
}

/// With polls an hour apart, only the live stream can tell the daemon of a match: it
/// proves at once. With the stream turned off, the same match waits for the poll.
#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_learns_of_its_matches_from_the_live_stream() {
    let backend = Backend::new();
    let server = Server::start(&backend).await;
    let rita = server.api().user("rita").await;
    server.api().user("paul").await;
    let stmt = push_statement(&rita).await;
    let hourly = ["--poll-ms", "3600000"];
    let daemon = Daemon::start_with(&server.url, &stmt, &hourly);
    let deadline = Instant::now() + Duration::from_secs(30);
    while open_proposals(&rita, &stmt).await < 2 {
        assert!(Instant::now() < deadline, "producer placed no proposals");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let request = |a: u64| {
        let rita = rita.clone();
        let stmt = stmt.clone();
        async move {
            let (s, v) = rita
                .post(
                    &format!("{ROOT}/request/"),
                    &json!({"statement_key": stmt, "cost": 3, "input": [{"field": a}, {"field": a + 1}]}),
                )
                .await;
            assert_eq!(s, 200, "{v}");
            assert_eq!(v["status"], "processing", "{v}");
            v["_key"].as_str().unwrap().to_owned()
        }
    };
    let k = request(40).await;
    wait_for(
        &rita,
        &format!("{ROOT}/request/{k}"),
        "a proof from the stream",
        |v| v["status"] == "completed",
    )
    .await;
    drop(daemon);

    let polling = Daemon::start_with(&server.url, &stmt, &["--poll-ms", "3600000", "--no-stream"]);
    // Its first round proves what is matched; wait for its proposals to be topped up.
    let deadline = Instant::now() + Duration::from_secs(30);
    while open_proposals(&rita, &stmt).await < 2 {
        assert!(Instant::now() < deadline, "producer placed no proposals");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ... and for that first round to be over (its proposals may be the first one's).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let k = request(50).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, v) = rita.get(&format!("{ROOT}/request/{k}")).await;
    assert_eq!(
        v["status"], "processing",
        "without the stream the match waits for the poll: {v}"
    );
    drop(polling);
}

//! The deployment files: the Kubernetes manifests validate offline against the pinned
//! Kubernetes schemas, the scripts parse, and `deploy/cluster.sh` really starts 3 Redis
//! masters, one PostgreSQL and 3 market nodes on loopback and stops every one of them by
//! PID.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("could not run the command");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn kubernetes_manifests_validate_offline() {
    let (ok, out) = run(Command::new("bash")
        .arg("deploy/check-manifests.sh")
        .current_dir(root()));
    assert!(ok, "deploy/check-manifests.sh failed:\n{out}");
    assert!(out.contains("0 failed"), "{out}");
    for f in ["statefulset.yaml", "service.yaml", "configmap.yaml"] {
        assert!(
            out.contains(&format!("ok deploy/k8s/{f}")),
            "{f} not checked:\n{out}"
        );
    }
}

#[test]
fn deploy_scripts_parse() {
    for s in [
        "cluster.sh",
        "test.sh",
        "run-market.sh",
        "check-manifests.sh",
        "check-monitoring.sh",
        "postgres.sh",
    ] {
        let (ok, out) = run(Command::new("bash")
            .arg("-n")
            .arg(root().join("deploy").join(s)));
        assert!(ok, "deploy/{s}: {out}");
    }
}

fn pids(dir: &Path) -> Vec<u32> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            if p.extension()? != "pid" {
                return None;
            }
            std::fs::read_to_string(p).ok()?.trim().parse().ok()
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    // A stopped child of the script lingers as a zombie only if nobody reaps it; count
    // those as stopped.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

#[test]
fn cluster_script_starts_three_masters_and_three_nodes_and_stops_them_by_pid() {
    let dir = tempfile::tempdir().unwrap();
    let script = |cmd: &str| {
        run(Command::new("bash")
            .arg(root().join("deploy/cluster.sh"))
            .arg(cmd)
            .env("PM_CLUSTER_DIR", dir.path())
            .env("PM_BIN", common::bin())
            // The script's own PostgreSQL, not one the caller's environment names.
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "warn")
            .current_dir(root()))
    };
    let (ok, out) = script("start");
    if !ok {
        let _ = script("stop");
        panic!("cluster.sh start failed:\n{out}");
    }
    let started = pids(dir.path());
    let (ok, status) = script("status");
    let (stopped, stop_out) = script("stop");
    assert!(ok, "cluster.sh status:\n{status}");
    assert!(stopped, "cluster.sh stop:\n{stop_out}");
    assert_eq!(
        started.len(),
        7,
        "expected 3 Redis + 1 PostgreSQL + 3 node PIDs: {started:?}\n{out}"
    );
    assert_eq!(status.matches("cluster_state:ok").count(), 3, "{status}");
    assert!(status.contains("accepting connections"), "{status}");
    assert!(status.contains("\"live_nodes\":3"), "{status}");
    for p in started {
        assert!(!alive(p), "pid {p} still running after stop");
    }
}

/// The operator's guide has one table of every setting and its default: exactly what
/// `proof-market serve --print-settings` prints.
#[test]
fn the_settings_table_in_the_guide_is_the_binarys() {
    let out = Command::new(env!("CARGO_BIN_EXE_proof-market"))
        .args(["serve", "--print-settings"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    let guide = std::fs::read_to_string(root().join("deploy/README.md")).unwrap();
    let begin = "<!-- settings:begin -->\n";
    let start = guide.find(begin).unwrap() + begin.len();
    let end = guide.find("<!-- settings:end -->").unwrap();
    assert_eq!(
        &guide[start..end],
        table,
        "deploy/README.md's settings table is stale: paste `proof-market serve --print-settings`"
    );
    for line in [
        "--lease-ms",
        "--config",
        "PROOF_MARKET_JWT_SECRET",
        "--json-logs",
    ] {
        assert!(table.contains(line), "{line} missing:\n{table}");
    }
}

/// Runs `proof-market serve` with `args` and environment `env` until it prints its
/// listening line (then kills it) or exits; returns (listening, exit code, stderr).
fn serve_briefly(args: &[&str], env: &[(&str, &str)]) -> (Option<String>, Option<i32>, String) {
    use std::io::{BufRead, BufReader, Read};
    let data = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_proof-market"));
    cmd.arg("serve")
        .args(args)
        .arg("--data-dir")
        .arg(data.path())
        .env_remove("PROOF_MARKET_LISTEN")
        .env_remove("PROOF_MARKET_LEASE_MS")
        .env("RUST_LOG", "off")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let listening = line
        .trim()
        .strip_prefix("proof-market listening on ")
        .map(str::to_owned);
    if listening.is_some() {
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (listening, status.code(), err)
}

/// `serve --config FILE`: the file's settings apply under the flags and the
/// environment; a bad file stops the node with one line naming the key.
#[test]
fn a_config_file_sets_what_flags_and_environment_leave_alone() {
    let redis = std::env::var("PROOF_MARKET_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.toml");
    let port = |p: u16| format!("127.0.0.1:{p}");
    let (p1, p2, p3) = (common_port(), common_port(), common_port());
    std::fs::write(
        &file,
        format!(
            "listen = \"{}\"\nredis_url = \"{redis}\"\nkey_prefix = \"cfg-test-{}\"\njson-logs = false\n",
            port(p1),
            std::process::id()
        ),
    )
    .unwrap();
    let f = file.to_str().unwrap();
    // The file alone.
    let (url, _, err) = serve_briefly(&["--config", f], &[]);
    assert_eq!(
        url.as_deref(),
        Some(format!("http://{}", port(p1)).as_str()),
        "{err}"
    );
    // The environment wins over the file, and a flag over both.
    let (url, _, err) = serve_briefly(
        &[],
        &[
            ("PROOF_MARKET_CONFIG", f),
            ("PROOF_MARKET_LISTEN", &port(p2)),
        ],
    );
    assert_eq!(
        url.as_deref(),
        Some(format!("http://{}", port(p2)).as_str()),
        "{err}"
    );
    let (url, _, err) = serve_briefly(
        &["--config", f, "--listen", &port(p3)],
        &[("PROOF_MARKET_LISTEN", &port(p2))],
    );
    assert_eq!(
        url.as_deref(),
        Some(format!("http://{}", port(p3)).as_str()),
        "{err}"
    );

    // Bad files: one line naming the problem, exit 2, nothing listening.
    for (text, says) in [
        ("lisen = \"127.0.0.1:1\"\n", "`lisen` is not a setting"),
        ("lease_ms = \"soon\"\n", "lease-ms"),
        ("lease_ms = 10\n", "lease-ms"),
        ("listen = [1, 2]\n", "must be a string"),
        ("listen = \n", "not TOML (line 1)"),
        ("url = \"http://elsewhere\"\n", "`url` is not a setting"),
    ] {
        std::fs::write(&file, text).unwrap();
        let (url, code, err) = serve_briefly(&["--config", f], &[]);
        assert!(url.is_none(), "{text}: started");
        assert_eq!(code, Some(2), "{text}: {err}");
        assert!(err.contains(says), "{text}: {err}");
    }
    let (_, code, err) = serve_briefly(&["--config", "/no/such/file.toml"], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("/no/such/file.toml"), "{err}");
}

fn common_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

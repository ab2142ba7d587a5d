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

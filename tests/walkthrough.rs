//! The requester/producer walkthrough of the original market's guide, driven through
//! the project's own CLI binary against a real server and Redis.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

struct Cli {
    url: String,
    auth: std::path::PathBuf,
}

impl Cli {
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(bin())
            .args(["--url", &self.url, "--auth"])
            .arg(&self.auth)
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn json(&self, args: &[&str]) -> Value {
        let (ok, out, err) = self.run(args);
        assert!(ok, "{args:?} failed: {err}");
        let start = out
            .find(['{', '['])
            .unwrap_or_else(|| panic!("no JSON in {out}"));
        serde_json::from_str(&out[start..]).unwrap_or_else(|e| panic!("{e}: {out}"))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn requester_producer_flow_with_the_cli() {
    let backend = Backend::new();
    let server = Server::start(&backend).await;
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli {
        url: server.url.clone(),
        auth: dir.path().join("auth.json"),
    };

    let (ok, _, err) = cli.run(&[
        "user",
        "signup",
        "--user",
        "carol",
        "--passwd",
        "secret",
        "--email",
        "c@example.org",
    ]);
    assert!(ok, "{err}");
    let (ok, out, err) = cli.run(&["user", "login", "--user", "carol", "--passwd", "secret"]);
    assert!(ok && out.contains("carol"), "{out} {err}");

    let st = cli.json(&[
        "statement",
        "push",
        "--file",
        "example/statements/arithmetic.json",
    ]);
    let key = st["_key"].as_str().unwrap().to_owned();
    assert_eq!(st["type"], "placeholder-zkllvm");
    assert_eq!(st["sender"], "carol");
    // What the market made of the circuit: the example's two public inputs.
    assert_eq!(st["circuit"]["public_inputs"], 2, "{}", st["circuit"]);
    assert!(st["circuit"]["instructions"].as_u64().unwrap() > 0);
    assert!(st["circuit"]["rows"].as_u64().unwrap().is_power_of_two());
    let listed = cli.json(&["statement", "get"]);
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["_key"] == key.as_str()));
    let one = cli.json(&["statement", "get", "--key", &key]);
    assert_eq!(one["name"], "arithmetic-example");

    let req = cli.json(&[
        "request",
        "push",
        "--cost",
        "2",
        "--file",
        "example/input/arithmetic/input.json",
        "--key",
        &key,
    ]);
    let rk = req["_key"].as_str().unwrap().to_owned();
    assert_eq!(req["status"], "created");
    assert_eq!(req["statement_key"], key.as_str());
    assert_eq!(req["cost"], 2);
    assert_eq!(req["input"]["input"], "1\n11");
    assert_eq!(
        cli.json(&["request", "get", "--key", &rk])["status"],
        "created"
    );

    // The producer is another user: a user's request never matches its own proposal.
    let prod = Cli {
        url: server.url.clone(),
        auth: dir.path().join("producer-auth.json"),
    };
    for args in [
        ["user", "signup", "--user", "dave", "--passwd", "secret2"].as_slice(),
        ["user", "login", "--user", "dave", "--passwd", "secret2"].as_slice(),
    ] {
        let (ok, out, err) = prod.run(args);
        assert!(ok, "{out} {err}");
    }
    // `--wait` returns at the next status change, from the live stream; with nothing
    // happening it fails with one line after its timeout.
    let (ok, _, err) = cli.run(&["request", "get", "--key", &rk, "--wait", "--timeout", "1"]);
    assert!(!ok && err.trim().lines().count() == 1, "{err}");
    assert!(
        err.contains("did not change within 1 s (still created)"),
        "{err}"
    );
    let waiter = Command::new(bin())
        .args(["--url", &cli.url, "--auth"])
        .arg(&cli.auth)
        .args(["request", "get", "--key", &rk, "--wait", "--timeout", "60"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Let it subscribe (a change before that is caught by its second read anyway).
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let prop = prod.json(&["proposal", "push", "--cost", "2", "--key", &key]);
    let pk = prop["_key"].as_str().unwrap().to_owned();
    let out = waiter.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let waited: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(waited["status"], "processing", "{waited}");
    assert_eq!(waited["proposal_key"], pk.as_str(), "{waited}");
    let req = cli.json(&["request", "get", "--key", &rk]);
    let prop = cli.json(&["proposal", "get", "--key", &pk]);
    assert_eq!(req["status"], "processing");
    assert_eq!(prop["status"], "processing");
    assert_eq!(req["proposal_key"], pk.as_str());
    assert_eq!(prop["request_key"], rk.as_str());
    assert!(prop["matched_time"].as_u64().is_some());

    // The producer makes the proof with proof-generator, the original's tool and flags.
    let proof_file = dir.path().join("proof.bin");
    let printed = run_proof_generator(
        "example/statements/arithmetic.json",
        "example/input/arithmetic/input.json",
        &proof_file,
    );
    assert!(printed.contains("Inner verification passed"));
    let proof_text = std::fs::read_to_string(&proof_file).unwrap();
    let (ok, out, err) = prod.run(&[
        "proof",
        "push",
        "--proposal_key",
        &pk,
        "--file",
        proof_file.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("Proof is pushed"));

    let req = cli.json(&["request", "get", "--key", &rk]);
    assert_eq!(req["status"], "completed");
    let proof_key = req["proof_key"].as_str().unwrap().to_owned();
    assert_eq!(
        cli.json(&["proposal", "get", "--key", &pk])["status"],
        "completed"
    );

    let by_key = cli.json(&["proof", "get", "--proof_key", &proof_key]);
    assert_eq!(by_key["request_key"], rk.as_str());
    let out_file = dir.path().join("out.bin");
    let by_req = cli.json(&[
        "proof",
        "get",
        "--request_key",
        &rk,
        "--file",
        out_file.to_str().unwrap(),
    ]);
    assert_eq!(by_req["_key"], proof_key.as_str());
    assert_eq!(
        std::fs::read_to_string(&out_file).unwrap().trim(),
        proof_text.trim()
    );
    assert_eq!(
        by_key["output"],
        "0x0cccccccccccccccccccccccccccccccd3a7b8326842aa6d0eb4cd0e7fc4e9be"
    );
    assert_eq!(by_key["proof_system"], "halo2-ipa-pasta-v3");
    // Anyone can re-verify it locally from what the market serves.
    let verified = cli.json(&["proof", "verify", "--proof_key", &proof_key]);
    assert_eq!(verified["verified"], true);
    assert_eq!(verified["output"], by_key["output"]);

    // The same input again (in the other format) completes at once with that proof.
    let again = cli.json(&[
        "request",
        "push",
        "--cost",
        "1",
        "--file",
        "example/input/arithmetic/input-fields.json",
        "--key",
        &key,
    ]);
    assert_eq!(again["status"], "completed");
    assert_eq!(again["proof_key"], proof_key.as_str());

    // A second proof for the same order is refused with one clear line and exit 1.
    let (ok, _, err) = prod.run(&[
        "proof",
        "push",
        "--proposal_key",
        &pk,
        "--file",
        proof_file.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("409"), "{err}");
    // The line names the call's request id (16 hex digits), as the market's logs do.
    let id = err
        .trim()
        .strip_suffix(')')
        .and_then(|l| l.rsplit_once("(request id "))
        .map(|(_, id)| id)
        .unwrap_or_else(|| panic!("no request id in {err}"));
    assert!(
        id.len() == 16 && id.bytes().all(|c| c.is_ascii_hexdigit()),
        "{err}"
    );

    // Errors are one line and non-zero for the CLI's own checks too.
    let (ok, _, err) = cli.run(&["request", "get", "--key", "999999999"]);
    assert!(!ok && err.contains("404"), "{err}");

    // Money through the CLI (this market opens wallets with 10^12 units of balance and
    // of deposit): dave earned 2 less the 0.5 % commission, then 1 less 0.5 % from
    // carol's second request (completed at once by his proof, paying at most its cost);
    // his collateral came back.
    let bal = prod.json(&["balance"]);
    assert_eq!(bal["user"], "dave");
    assert_eq!(bal["balance"].to_string(), "1000000000002.985");
    assert_eq!(bal["locked"], 0);
    let after = prod.json(&["deposit", "--amount", "1.5"]);
    assert_eq!(after["deposit"].to_string(), "1000000000001.5");
    let after = prod.json(&["withdraw-deposit", "--amount", "0.5"]);
    assert_eq!(after["deposit"].to_string(), "1000000000001");
    // carol's escrow: nothing blocked once her request completed.
    assert_eq!(cli.json(&["balance"])["blocked"], 0);
    // The statement's market data: one match at 2 (the second request was a resale),
    // completed.
    let stats = cli.json(&["stats", "--key", &key, "--trades", "5"]);
    assert_eq!(stats["info"]["_key"], key.as_str(), "{stats}");
    assert_eq!(stats["info"]["trades"], 1, "{stats}");
    assert_eq!(stats["info"]["current"], 2, "{stats}");
    assert_eq!(stats["statistics"]["completed"], 1, "{stats}");
    assert_eq!(stats["trades"].as_array().map(Vec::len), Some(1), "{stats}");
    let (ok, _, err) = cli.run(&["stats", "--key", "nope"]);
    assert!(!ok && err.trim().lines().count() == 1, "{err}");
    // Crediting is the operator's: without its token, one clear line and exit 1.
    let (ok, _, err) = cli.run(&["credit", "--user", "dave", "--amount", "5"]);
    assert!(!ok && err.contains("PROOF_MARKET_ADMIN_TOKEN"), "{err}");
    let out = Command::new(bin())
        .args([
            "--url",
            &server.url,
            "credit",
            "--user",
            "dave",
            "--amount",
            "5",
        ])
        .env("PROOF_MARKET_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let credited: Value =
        serde_json::from_slice(&out.stdout[out.stdout.iter().position(|&b| b == b'{').unwrap()..])
            .unwrap();
    assert_eq!(credited["balance"].to_string(), "1000000000006.985");
}

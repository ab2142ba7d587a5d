//! Circuit admission and proof abuse against one real node (real Redis): circuits over
//! the size limit, a loop that would unroll to a million instructions, proofs of the
//! wrong length, a producer pushing garbage proofs again and again, and logins while the
//! verification and circuit pools are flooded. Each test checks the refusal, that the
//! node stays healthy with bounded memory (RSS from /proc, printed), and that ordinary
//! clients are served meanwhile.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// A circuit of one input adding it to itself `n` times: about `n` table rows. The IR
/// is under 600 bytes whatever `n` is.
fn loop_ir(n: u64) -> String {
    format!(
        "define __zkllvm_field_pallas_base @f(__zkllvm_field_pallas_base %x) circuit {{\n\
         entry:\n  br label %l\nl:\n\
         \x20 %i = phi i64 [ 0, %entry ], [ %j, %l ]\n\
         \x20 %acc = phi __zkllvm_field_pallas_base [ %x, %entry ], [ %n, %l ]\n\
         \x20 %n = add __zkllvm_field_pallas_base %acc, %x\n\
         \x20 %j = add i64 %i, 1\n\
         \x20 %c = icmp slt i64 %j, {n}\n\
         \x20 br i1 %c, label %l, label %e\n\
         e:\n  ret __zkllvm_field_pallas_base %n\n}}\n"
    )
}

fn loop_statement(n: u64) -> Value {
    let mut st = example_statement();
    st["name"] = json!(format!("loop of {n}"));
    st["input_description"] = json!("x");
    st["definition"]["proving_key"] = json!(loop_ir(n));
    st
}

async fn push(api: &Api, st: &Value) -> (u16, Value) {
    api.post(&format!("{ROOT}/statement/"), st).await
}

/// A request by `req` and a proposal by `prod` on `stmt`, matched; returns the
/// proposal's key.
async fn matched(req: &Api, prod: &Api, stmt: &str, input: Value) -> String {
    let (s, r) = req
        .post(
            &format!("{ROOT}/request/"),
            &json!({"statement_key": stmt, "cost": 10, "input": input}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let (s, p) = prod
        .post(
            &format!("{ROOT}/proposal/"),
            &json!({"statement_key": stmt, "cost": 5}),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["status"], "processing", "{p}");
    p["_key"].as_str().unwrap().to_owned()
}

fn message(v: &Value) -> &str {
    v["errorMessage"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn circuits_over_the_size_limit_are_refused_at_push_with_the_limit_named() {
    let backend = Backend::new();
    let server = Server::start_with(&backend, &["--max-circuit-k", "10"]).await;
    let api = server.api().user("ada").await;
    let before = rss_kib(server.pid());

    // At the limit (1018 usable rows at k = 10): accepted.
    let (s, v) = push(&api, &loop_statement(1000)).await;
    assert_eq!(s, 200, "{v}");
    let fits = v["_key"].as_str().unwrap().to_owned();
    // Just over it: refused, naming what it needs and the limit.
    let (s, v) = push(&api, &loop_statement(1100)).await;
    assert_eq!(s, 400, "{v}");
    assert!(
        message(&v).contains("1100 rows") && message(&v).contains("--max-circuit-k"),
        "{v}"
    );
    // The attack: a few hundred bytes that unroll to a million instructions.
    // Refused as soon as the unrolling passes four times the limit, ten times over.
    let t = Instant::now();
    for _ in 0..10 {
        let (s, v) = push(&api, &loop_statement(1_000_000)).await;
        assert_eq!(s, 400, "{v}");
        assert!(message(&v).contains("more than 4072 instructions"), "{v}");
    }
    eprintln!(
        "10 pushes of a million-instruction loop refused in {:?}",
        t.elapsed()
    );
    // A loop that never ends: the step cap.
    let st = loop_statement(1 << 62);
    let (s, v) = push(&api, &st).await;
    assert_eq!(s, 400, "{v}");

    // Nothing was stored of the refused ones.
    let (s, list) = api.get(&format!("{ROOT}/statement")).await;
    assert_eq!(s, 200);
    let keys: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["_key"].as_str())
        .collect();
    assert_eq!(keys, vec![fits.as_str()]);

    // The accepted one works: orders are taken on it.
    let (s, v) = api
        .post(
            &format!("{ROOT}/request/"),
            &json!({"statement_key": fits, "cost": 1, "input": [{"field": 3}]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(server.health().await["status"], "ok");
    let after = rss_kib(server.pid());
    eprintln!("oversized circuits: RSS before {before} KiB, after {after} KiB");
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} to {after} KiB"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_proofs_are_checked_for_length_first_and_then_cut_off() {
    let backend = Backend::new();
    let server = Server::start_with(&backend, &["--max-refused-proofs", "3"]).await;
    let requester = server.api().user("rita").await;
    let producer = server.api().user("paul").await;
    let stmt = push_statement(&requester).await;
    let pk = matched(&requester, &producer, &stmt, json!({"input": "3\n4"})).await;
    let good = example_proof(&[3, 4]);
    let proof_len = (good.len() - 2) / 2;
    let before = rss_kib(server.pid());

    // The issue's `"00"`: refused on its length, naming the length every proof has.
    let t = Instant::now();
    let (s, v) = producer
        .post(
            &format!("{ROOT}/proof"),
            &json!({"proof": "0x00", "proposal_key": pk}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(message(&v).contains(&format!("exactly {proof_len}")), "{v}");
    eprintln!("a proof of the wrong length refused in {:?}", t.elapsed());
    // Garbage of the right length: verified, refused.
    let garbage = format!("0x{}", "01".repeat(proof_len));
    for _ in 0..2 {
        let t = Instant::now();
        let (s, v) = producer
            .post(
                &format!("{ROOT}/proof"),
                &json!({"proof": garbage, "proposal_key": pk}),
            )
            .await;
        assert_eq!(s, 400, "{v}");
        assert!(message(&v).contains("proof rejected"), "{v}");
        eprintln!("a right-length garbage proof refused in {:?}", t.elapsed());
    }
    // Three refused: the next pushes for this proposal are not checked at all, even a
    // good proof, until the window ends.
    for proof in [&garbage, &good] {
        let (s, v, retry) = producer
            .post_retry_after(
                &format!("{ROOT}/proof"),
                &json!({"proof": proof, "proposal_key": pk}),
            )
            .await;
        assert_eq!(s, 429, "{v}");
        assert!(message(&v).contains("3 proofs refused"), "{v}");
        let retry = retry.expect("Retry-After");
        assert!((1..=3600).contains(&retry), "{retry}");
    }
    // The match is still processing; another proposal's proofs are checked as usual.
    let (s, v) = producer.get(&format!("{ROOT}/proposal/{pk}")).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("processing")));
    let pk2 = matched(&requester, &producer, &stmt, json!({"input": "1\n11"})).await;
    let (s, v) = producer
        .post(
            &format!("{ROOT}/proof"),
            &json!({"proof": example_proof(&[1, 11]), "proposal_key": pk2}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(server.health().await["status"], "ok");
    let after = rss_kib(server.pid());
    eprintln!("garbage proofs: RSS before {before} KiB, after {after} KiB");
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} to {after} KiB"
    );
}

/// Login latencies (ms) of `n` logins one after another.
async fn login_latencies(api: &Api, user: &str, n: usize) -> Vec<f64> {
    let mut out = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let (s, v) = api
            .post("/_open/auth", &json!({"username": user, "password": "pw-"}))
            .await;
        assert_eq!(s, 200, "{v}");
        out.push(t.elapsed().as_secs_f64() * 1e3);
    }
    out.sort_by(f64::total_cmp);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn logins_are_served_while_verification_and_evaluation_are_flooded() {
    let backend = Backend::new();
    let server = Server::start_with(
        &backend,
        &["--max-refused-proofs", "100000", "--max-circuit-k", "12"],
    )
    .await;
    let api = server.api();
    let attacker = api.user("mallory").await;
    let lin = api.user("lin").await;
    // The largest circuit accepted (k = 12): the costliest verification and input
    // evaluation a user can ask for.
    let (s, v) = push(&attacker, &loop_statement(4000)).await;
    assert_eq!(s, 200, "{v}");
    let stmt = v["_key"].as_str().unwrap().to_owned();
    // lin asks, mallory produces (a user's request never takes its own proposal).
    let pk = matched(&lin, &attacker, &stmt, json!([{"field": 3}])).await;
    // A well-formed proof of another input: refused only at the end of a full
    // verification, the costliest refusal there is.
    let circuit =
        proof_market::prover::statements::StatementCircuit::compile(&loop_ir(4000)).unwrap();
    assert_eq!(circuit.k(), 12);
    let (_, other) = circuit.prove(&[5u64.into()]).unwrap();
    let garbage = format!("0x{}", hex::encode(other));
    // The first refused proof also waits for the keys, if the background keygen has not
    // finished yet.
    let (s, v) = attacker
        .post(
            &format!("{ROOT}/proof"),
            &json!({"proof": garbage, "proposal_key": pk}),
        )
        .await;
    assert_eq!(s, 400, "{v}");

    let idle = login_latencies(&api, "lin", 10).await;
    let before = rss_kib(server.pid());
    let flood_end = Instant::now() + Duration::from_secs(6);
    let mut flood = Vec::new();
    for i in 0..24 {
        let a = attacker.clone();
        let (stmt, pk, garbage) = (stmt.clone(), pk.clone(), garbage.clone());
        flood.push(tokio::spawn(async move {
            let (mut answered, mut busy) = (0u32, 0u32);
            while Instant::now() < flood_end {
                let (s, _) = if i % 2 == 0 {
                    a.post(
                        &format!("{ROOT}/proof"),
                        &json!({"proof": garbage, "proposal_key": pk}),
                    )
                    .await
                } else {
                    a.post(
                        &format!("{ROOT}/request/"),
                        &json!({"statement_key": stmt, "cost": 1, "input": [{"field": i}]}),
                    )
                    .await
                };
                match s {
                    400 | 200 => answered += 1,
                    503 => busy += 1,
                    other => panic!("flood call answered {other}"),
                }
            }
            (i % 2, answered, busy)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let flooded = login_latencies(&api, "lin", 10).await;
    let (mut answered, mut busy) = ([0; 2], 0);
    for f in flood {
        let (kind, a, b) = f.await.unwrap();
        answered[kind] += a;
        busy += b;
    }
    let after = rss_kib(server.pid());
    eprintln!(
        "login latency idle: median {:.1} ms, max {:.1} ms; under a flood of garbage proofs \
         and requests on a k = 12 circuit ({} proofs and {} requests answered, {busy} calls \
         refused 503): median {:.1} ms, max {:.1} ms; RSS {before} -> {after} KiB",
        idle[5], idle[9], answered[0], answered[1], flooded[5], flooded[9]
    );
    assert!(answered[0] > 0 && answered[1] > 0);
    assert_eq!(server.health().await["status"], "ok");
    assert!(
        after < before + 256 * 1024,
        "RSS grew from {before} to {after} KiB"
    );
}

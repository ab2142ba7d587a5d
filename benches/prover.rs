//! Prover benchmarks: compile, keygen, prove and verify for the example arithmetic
//! circuit, a Poseidon permutation, one SHA-256 builtin call (keygen, prove and verify
//! only: the program is built directly) and synthetic circuits of 2^10 and 2^14
//! multiplications; and the market's
//! verify-on-push path (HTTP call, Redis write and all) against the bare verifier in
//! the same run.
//!
//! `cargo bench --bench prover` runs everything; `PROVER_BENCH_SKIP_2_14=1` leaves out
//! the 2^14 circuit (its key generation alone takes ~45 s on 2 cores).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use proof_market::circuit::program::{Fe, Instr, Program, Wire};
use proof_market::input::parse_canonical;
use proof_market::prover::halo2::{self, CircuitKeys};
use proof_market::prover::statements::StatementCircuit;

const EXAMPLE: &str = include_str!("../example/statements/arithmetic.ll");
/// The equality example: four `eq` bits choosing the sides of a Poseidon Merkle path.
const MERKLE_PATH: &str = include_str!("../example/statements/merkle-path.ll");

/// IR of a circuit computing x^n with n multiplications, as a loop.
fn power_ir(n: u32) -> String {
    format!(
        r#"define __zkllvm_field_pallas_base @power(__zkllvm_field_pallas_base %x) #0 {{
entry:
  br label %loop
loop:
  %i = phi i32 [ 0, %entry ], [ %i.next, %body ]
  %acc = phi __zkllvm_field_pallas_base [ %x, %entry ], [ %acc.next, %body ]
  %more = icmp slt i32 %i, {n}
  br i1 %more, label %body, label %done
body:
  %acc.next = mul __zkllvm_field_pallas_base %acc, %x
  %i.next = add i32 %i, 1
  br label %loop
done:
  ret __zkllvm_field_pallas_base %acc
}}
attributes #0 = {{ circuit }}
"#
    )
}

fn bench_circuit(c: &mut Criterion, name: &str, ir: &str, inputs: &str, samples: usize) {
    let inputs = parse_canonical(inputs).unwrap();
    let mut g = c.benchmark_group(name);
    g.sample_size(samples);
    g.bench_function("compile", |b| {
        b.iter(|| StatementCircuit::compile(ir).unwrap())
    });
    // Keygen on a fresh circuit each time (the commitment parameters per k are cached
    // process-wide, as in the market: they depend on the size only).
    g.bench_function("keygen", |b| {
        b.iter_batched(
            || StatementCircuit::compile(ir).unwrap(),
            |circ| circ.keys().unwrap(),
            BatchSize::PerIteration,
        )
    });
    let circ = StatementCircuit::compile(ir).unwrap();
    circ.keys().unwrap();
    g.bench_function("prove", |b| b.iter(|| circ.prove(&inputs).unwrap()));
    let (_, proof) = circ.prove(&inputs).unwrap();
    eprintln!("{name}: proof {} bytes", proof.len());
    g.bench_function("verify", |b| {
        b.iter(|| circ.verify(&inputs, &proof).unwrap())
    });
    g.finish();
}

/// One Poseidon permutation as zkLLVM's `hash<poseidon>(a, b)` emits it: the builtin on
/// `(0, a, b)`, lane 2 returned.
const POSEIDON_IR: &str = r#"
define dso_local __zkllvm_field_pallas_base @hash(__zkllvm_field_pallas_base %a, __zkllvm_field_pallas_base %b) #0 {
  %1 = insertelement <3 x __zkllvm_field_pallas_base> <__zkllvm_field_pallas_base f0x0, __zkllvm_field_pallas_base undef, __zkllvm_field_pallas_base undef>, __zkllvm_field_pallas_base %a, i32 1
  %2 = insertelement <3 x __zkllvm_field_pallas_base> %1, __zkllvm_field_pallas_base %b, i32 2
  %3 = tail call <3 x __zkllvm_field_pallas_base> @llvm.assigner.poseidon.v3field(<3 x __zkllvm_field_pallas_base> %2)
  %4 = extractelement <3 x __zkllvm_field_pallas_base> %3, i32 2
  ret __zkllvm_field_pallas_base %4
}

declare <3 x __zkllvm_field_pallas_base> @llvm.assigner.poseidon.v3field(<3 x __zkllvm_field_pallas_base>)

attributes #0 = { circuit }
"#;

/// Keygen, prove and verify for a program built directly (no IR text to compile).
fn bench_program(c: &mut Criterion, name: &str, program: &Program, inputs: &[Fe], samples: usize) {
    let mut g = c.benchmark_group(name);
    g.sample_size(samples);
    g.bench_function("keygen", |b| {
        b.iter(|| CircuitKeys::setup(program).unwrap())
    });
    let keys = CircuitKeys::setup(program).unwrap();
    g.bench_function("prove", |b| {
        b.iter(|| halo2::prove(&keys, program, inputs).unwrap())
    });
    let proved = halo2::prove(&keys, program, inputs).unwrap();
    eprintln!(
        "{name}: k = {}, proof {} bytes",
        keys.k(),
        proved.proof.len()
    );
    g.bench_function("verify", |b| {
        b.iter(|| halo2::verify(&keys, inputs, &proved.outputs, &proved.proof).unwrap())
    });
    g.finish();
}

/// One call of zkLLVM's `sha2_256` builtin (`hash<sha2<256>>(block_a, block_b)`): four
/// 128-bit lanes in, the digest's two halves out.
fn sha256_block() -> (Program, Vec<Fe>) {
    let program = Program::with_outputs(
        4,
        vec![Instr::Sha256([Wire(0), Wire(1), Wire(2), Wire(3)])],
        vec![Wire(4), Wire(5)],
    )
    .unwrap();
    let inputs = [
        0xf5a5fd42d16a20302798ef6ed309979bu128,
        0x43003d2320d9f0e8ea9831a92759fb4b,
        0xdb56114e00fdd4c1f85c892bf35ac9a8,
        0x9289aaecb1ebd0a96cde606a748b5d71,
    ]
    .map(Fe::from)
    .to_vec();
    (program, inputs)
}

fn prover(c: &mut Criterion) {
    bench_circuit(c, "arithmetic", EXAMPLE, "1,11", 20);
    bench_circuit(c, "poseidon_permutation", POSEIDON_IR, "3,4", 20);
    bench_circuit(
        c,
        "merkle_path_eq",
        MERKLE_PATH,
        "7,11,12,13,14,0,1,1,0,5",
        20,
    );
    let (program, inputs) = sha256_block();
    bench_program(c, "sha256_block", &program, &inputs, 20);
    bench_circuit(c, "mul_2^10", &power_ir(1 << 10), "3", 10);
    if std::env::var_os("PROVER_BENCH_SKIP_2_14").is_none() {
        bench_circuit(c, "mul_2^14", &power_ir(1 << 14), "3", 10);
    }
}

/// A private Redis and market node for the verify-on-push measurement.
struct Market {
    redis: Child,
    server: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Market {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = self.redis.kill();
        let _ = self.redis.wait();
    }
}

fn start_market() -> Option<Market> {
    let dir = tempfile::tempdir().ok()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let redis = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
        ])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .ok()?;
    std::thread::sleep(Duration::from_millis(300));
    let mut server = Command::new(env!("CARGO_BIN_EXE_proof-market"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--redis-url",
            &format!("redis://127.0.0.1:{port}"),
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env("PROOF_MARKET_RATE_LIMIT_IP", "0")
        .env("PROOF_MARKET_RATE_LIMIT_USER", "0")
        .env(
            "PROOF_MARKET_JWT_SECRET",
            "bench-secret-bench-secret-bench-secret",
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let mut line = String::new();
    BufReader::new(server.stdout.take()?)
        .read_line(&mut line)
        .ok()?;
    let url = line
        .trim()
        .strip_prefix("proof-market listening on ")?
        .to_owned();
    Some(Market {
        redis,
        server,
        url,
        _dir: dir,
    })
}

fn verify_on_push(c: &mut Criterion) {
    let Some(market) = start_market() else {
        eprintln!("verify_on_push: cannot start redis-server and the market; skipped");
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::Client::new();
    let root = format!("{}/_db/market/v0_0", market.url);
    let statement: serde_json::Value =
        serde_json::from_str(include_str!("../example/statements/arithmetic.json")).unwrap();
    let (token, stmt) = rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        while http
            .get(format!("{}/health", market.url))
            .send()
            .await
            .map(|r| r.status() != 200)
            .unwrap_or(true)
        {
            assert!(Instant::now() < deadline, "market not ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let body =
            serde_json::json!({"user": "bench", "passwd": "bench", "email": "b@example.org"});
        http.post(format!("{root}/user/signup"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let auth: serde_json::Value = http
            .post(format!("{}/_open/auth", market.url))
            .json(&serde_json::json!({"username": "bench", "password": "bench"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = auth["jwt"].as_str().unwrap().to_owned();
        let st: serde_json::Value = http
            .post(format!("{root}/statement/"))
            .bearer_auth(&token)
            .json(&statement)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (token, st["_key"].as_str().unwrap().to_owned())
    });
    let circ = StatementCircuit::compile(EXAMPLE).unwrap();
    circ.keys().unwrap();
    let inputs = parse_canonical("1,11").unwrap();
    let (_, proof) = circ.prove(&inputs).unwrap();

    let mut g = c.benchmark_group("verify_path");
    g.sample_size(20);
    g.bench_function("bare_verifier", |b| {
        b.iter(|| circ.verify(&inputs, &proof).unwrap())
    });
    let mut next_input = 1_000u64;
    g.bench_function("http_push_verify_store", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                next_input += 1;
                let values = parse_canonical(&format!("{next_input},7")).unwrap();
                let (_, proof) = circ.prove(&values).unwrap();
                total += rt.block_on(async {
                    let req = serde_json::json!({"statement_key": stmt, "cost": 2, "input": [{"field": next_input}, {"field": 7}]});
                    http.post(format!("{root}/request/")).bearer_auth(&token).json(&req).send().await.unwrap();
                    let prop: serde_json::Value = http
                        .post(format!("{root}/proposal/"))
                        .bearer_auth(&token)
                        .json(&serde_json::json!({"statement_key": stmt, "cost": 2}))
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    let body = serde_json::json!({"proof": format!("0x{}", hex::encode(&proof)), "proposal_key": prop["_key"]});
                    let started = Instant::now();
                    let r = http.post(format!("{root}/proof")).bearer_auth(&token).json(&body).send().await.unwrap();
                    assert_eq!(r.status(), 200, "{:?}", r.text().await);
                    started.elapsed()
                });
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, verify_on_push, prover);
criterion_main!(benches);

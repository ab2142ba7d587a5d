//! The example statement (`example/statements/arithmetic.json`, the walkthrough's), how
//! to push it, and real proofs of its circuit.

use serde_json::{json, Value};

use super::api::{Api, ROOT};

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

/// A real proof of the example circuit on `inputs`, as `0x…` hex.
pub fn example_proof(inputs: &[u64]) -> String {
    use proof_market::prover::statements::StatementCircuit;
    let st = example_statement();
    let c = StatementCircuit::compile(st["definition"]["proving_key"].as_str().unwrap()).unwrap();
    let values: Vec<_> = inputs.iter().map(|&v| v.into()).collect();
    let (_, proof) = c.prove(&values).unwrap();
    format!("0x{}", hex::encode(proof))
}

/// `req` requests a proof of the example statement `stmt` on `inputs` at cost 7 and
/// `prod` proposes at cost 5, so the two match; returns (request, proposal) as answered.
pub async fn matched_pair(req: &Api, prod: &Api, stmt: &str, inputs: [u64; 2]) -> (Value, Value) {
    let input = json!([{"field": inputs[0]}, {"field": inputs[1]}]);
    let (s, r) = req
        .post(
            &format!("{ROOT}/request/"),
            &json!({"statement_key": stmt, "cost": 7, "input": input}),
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
    assert_eq!(p["request_key"], r["_key"], "{p}");
    (r, p)
}

/// Runs `proof-generator` (the original toolchain's flags) on `statement_file` and
/// `input_file` (paths under the repository), writing the proof to `out`; answers what
/// it printed. Fails the test if it fails.
pub fn run_proof_generator(
    statement_file: &str,
    input_file: &str,
    out: &std::path::Path,
) -> String {
    let gen = std::process::Command::new(env!("CARGO_BIN_EXE_proof-generator"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "--circuit_input",
            statement_file,
            "--public_input",
            input_file,
            "--proof_out",
        ])
        .arg(out)
        .output()
        .unwrap();
    assert!(
        gen.status.success(),
        "{}",
        String::from_utf8_lossy(&gen.stderr)
    );
    String::from_utf8_lossy(&gen.stdout).into_owned()
}

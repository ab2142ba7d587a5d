//! The example statement (`example/statements/arithmetic.json`, the walkthrough's), how
//! to push it, and real proofs of its circuit.

use serde_json::Value;

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

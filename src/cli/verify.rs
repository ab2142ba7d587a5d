//! `proof verify`: re-check a proof on this machine, trusting nothing the market says.
//!
//! For a stored proof the client fetches the proof, its statement and the request's
//! input, compiles the circuit from the statement's IR, computes the output itself,
//! derives the keys and runs the verifier; a proof file is checked the same way against
//! local statement and input files. The work is CPU-bound, so it runs on a blocking
//! thread.

use serde_json::{json, Value};

use crate::cli::args::ProofVerifyArgs;
use crate::cli::files::{read_input_file, read_proof_file, read_statement_file};
use crate::client::{ClientError, MarketClient};
use crate::input::outputs_to_text;
use crate::input::PublicInput;
use crate::prover::halo2::PROOF_SYSTEM;
use crate::prover::statements::StatementCircuit;

fn invalid(e: impl std::fmt::Display) -> ClientError {
    ClientError::Invalid(e.to_string())
}

/// Verifies locally; returns a summary, or an error when the proof does not verify.
pub async fn verify(
    client: Option<&MarketClient>,
    a: ProofVerifyArgs,
) -> Result<Value, ClientError> {
    let (ir, input, proof_hex, claimed_output, key) = match (&a.proof_key, &a.file, client) {
        (Some(key), _, Some(client)) => {
            let record = client.get_proof_by_key(key, true).await?;
            let system = record["proof_system"].as_str().unwrap_or_default();
            if system != PROOF_SYSTEM {
                return Err(invalid(format!(
                    "proof {key} was made with `{system}`; this client verifies `{PROOF_SYSTEM}`"
                )));
            }
            let stmt = record["statement_key"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let statement = client.get_statement(Some(&stmt)).await?;
            let ir = statement["definition"]["proving_key"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let proof = record["proof"]
                .as_str()
                .ok_or_else(|| invalid("the market's answer holds no proof"))?
                .to_owned();
            let output = record["output"].as_str().map(str::to_owned);
            (
                ir,
                record["input"].clone(),
                proof,
                output,
                Some(key.clone()),
            )
        }
        (_, Some(file), _) => {
            let (Some(st), Some(inp)) = (&a.circuit_input, &a.public_input) else {
                return Err(invalid("--file needs --circuit_input and --public_input"));
            };
            let text = std::fs::read_to_string(st)
                .map_err(|e| invalid(format!("cannot read {}: {e}", st.display())))?;
            let ir = if text.trim_start().starts_with('{') {
                read_statement_file(st)?["definition"]["proving_key"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            } else {
                text
            };
            (
                ir,
                read_input_file(inp)?,
                read_proof_file(file)?,
                None,
                None,
            )
        }
        _ => {
            return Err(invalid(
                "give --proof_key, or --file with --circuit_input and --public_input",
            ))
        }
    };
    let inputs = PublicInput::from_json(&input).map_err(invalid)?;
    let proof_bytes = hex::decode(proof_hex.trim().trim_start_matches("0x"))
        .map_err(|e| invalid(format!("proof is not hex: {e}")))?;
    let (output, function) = tokio::task::spawn_blocking(move || {
        let circuit = StatementCircuit::compile(&ir).map_err(invalid)?;
        let output = circuit
            .verify(&inputs.values, &proof_bytes)
            .map_err(|e| invalid(format!("NOT verified: {e}")))?;
        Ok::<_, ClientError>((output, circuit.function_name().to_owned()))
    })
    .await
    .map_err(invalid)??;
    let output = outputs_to_text(&output);
    if let Some(claimed) = claimed_output.filter(|c| *c != output) {
        return Err(invalid(format!(
            "NOT verified: the market records output {claimed}, the circuit gives {output}"
        )));
    }
    Ok(json!({
        "verified": true,
        "proof_key": key,
        "circuit": function,
        "output": output,
        "proof_system": PROOF_SYSTEM,
    }))
}

//! The proof decoder and verifier: arbitrary bytes pushed as a proof of the example
//! statement (example/statements/arithmetic.json) on the input [5, 7] must be refused
//! with an error, never panic. The circuit is compiled and its keys made once.
//!
//! With `FUZZ_WRITE_PROOF_SEED=<dir>` set, the first run also proves the statement on
//! that input and writes the valid proof into <dir> (run.sh seeds the corpus so), so
//! the fuzzer mutates a real proof rather than only random bytes.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use proof_market::circuit::program::Fe;
use proof_market::prover::statements::StatementCircuit;

const STATEMENT: &str = include_str!("../../../example/statements/arithmetic.json");

fn circuit() -> &'static (StatementCircuit, Vec<Fe>) {
    static C: OnceLock<(StatementCircuit, Vec<Fe>)> = OnceLock::new();
    C.get_or_init(|| {
        let v: serde_json::Value = serde_json::from_str(STATEMENT).expect("example statement");
        let ir = v["definition"]["proving_key"]
            .as_str()
            .expect("proving_key");
        let c = StatementCircuit::compile(ir).expect("example compiles");
        c.keys().expect("example keys");
        let inputs = vec![Fe::from(5u64), Fe::from(7u64)];
        if let Some(dir) = std::env::var_os("FUZZ_WRITE_PROOF_SEED") {
            let (_, proof) = c.prove(&inputs).expect("example proves");
            c.verify(&inputs, &proof).expect("the seed proof verifies");
            std::fs::create_dir_all(&dir).expect("seed dir");
            std::fs::write(std::path::Path::new(&dir).join("valid-proof-5-7"), &proof)
                .expect("write seed proof");
        }
        (c, inputs)
    })
}

fuzz_target!(|data: &[u8]| {
    let (c, inputs) = circuit();
    // Ok is possible only for a valid proof (the seed); anything else must be an Err.
    let _ = c.verify(inputs, data);
});

//! The zkLLVM IR compiler on arbitrary text: `StatementCircuit::compile` (which calls
//! `circuit::compile::compile` and sizes the circuit) must return an error or a
//! program, never panic, loop or blow up memory. A program it accepts is run once on
//! small inputs, as the market does when it checks a request's input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use proof_market::circuit::program::Fe;
use proof_market::prover::statements::StatementCircuit;

fuzz_target!(|data: &[u8]| {
    let Ok(ir) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = StatementCircuit::compile(ir) {
        let n = c.program().num_inputs();
        let inputs: Vec<Fe> = (0..n).map(|i| Fe::from(i as u64 + 2)).collect();
        let _ = c.evaluate(&inputs);
    }
});

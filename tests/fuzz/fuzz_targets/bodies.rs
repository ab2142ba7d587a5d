//! The request bodies on arbitrary JSON objects, as the server reads them (bytes, then
//! `serde_json`, then `bodies::object`): `new_order` (both sides), `new_statement`,
//! `proof_push`, `new_user`, `producer_profile` and `credentials` must answer Ok or a
//! 4xx, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use proof_market::api::bodies;
use proof_market::domain::Side;

/// The server's default bounds are larger; smaller ones let the fuzzer reach the
/// size checks with small inputs.
const MAX_DEFINITION: usize = 4096;
const MAX_PROOF: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(m) = bodies::object(v) else {
        return;
    };
    let _ = bodies::new_order(Side::Request, &m, None);
    let _ = bodies::new_order(Side::Proposal, &m, None);
    let _ = bodies::new_statement(&m, MAX_DEFINITION);
    let _ = bodies::proof_push(&m, MAX_PROOF);
    let _ = bodies::new_user(&m);
    let _ = bodies::producer_profile(&m);
    let _ = bodies::credentials(&m);
});

//! The public input parser: `PublicInput::from_json` on arbitrary JSON and
//! `parse_canonical` on arbitrary text. Neither may panic, and an accepted input's
//! canonical text must parse back to the same elements (that text is what the store
//! keeps and the prover reads).
#![no_main]
use libfuzzer_sys::fuzz_target;
use proof_market::input::{parse_canonical, PublicInput};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_canonical(text);
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(input) = PublicInput::from_json(&v) {
        let canon = input.canonical();
        let back = parse_canonical(&canon).expect("a canonical input parses back");
        assert_eq!(back, input.values, "canonical text {canon:?} round trip");
    }
});

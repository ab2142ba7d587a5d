//! The cost parsers on arbitrary text: `Cost::parse_json_number` (a body's `cost`) and
//! `Cost::parse_decimal` (the command line's `--cost`). Neither may panic, and an
//! accepted cost must come back unchanged through its JSON form.
#![no_main]
use libfuzzer_sys::fuzz_target;
use proof_market::domain::Cost;

fn round_trip(c: Cost) {
    let json = c.to_json().to_string();
    let back = Cost::parse_json_number(&json).expect("a cost's JSON form parses back");
    assert_eq!(back, c, "cost {c} through JSON {json}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = Cost::parse_json_number(text) {
        round_trip(c);
    }
    if let Ok(c) = Cost::parse_decimal(text) {
        round_trip(c);
    }
});

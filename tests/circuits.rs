//! zkLLVM circuits as people write them, end to end: each example of `example/` pushed
//! as a statement, a trade on it, the proof made by `proof-generator` (the original
//! toolchain's tool and flags), a tampered proof and a proof of another input refused
//! on push, the real one verified, and the output the market stores equal to an
//! independent reference.

mod common;

use common::*;
use serde_json::{json, Value};

/// Makes a proof of `statement_file` on `input_file` with `proof-generator`; its hex.
fn generate(statement_file: &str, input_file: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("proof.hex");
    run_proof_generator(statement_file, input_file, &out);
    std::fs::read_to_string(&out).unwrap().trim().to_owned()
}

/// The example's circuit computed directly over the Pallas base field (ark-pallas):
/// `c = (a+b)*a + b*(a+b)*(a+b)`, `c^3 / (b-a) + a^2 + 0x12345678901234567890`.
fn arithmetic_reference(a: u64, b: u64) -> String {
    use ark_ff::{BigInteger, Field, PrimeField};
    use ark_pallas::Fq as Fp;
    let (a, b) = (Fp::from(a), Fp::from(b));
    let c = (a + b) * a + b * (a + b) * (a + b);
    let k = Fp::from(0x1234_5678_9012_3456_7890u128);
    let r = c * c * c * (b - a).inverse().unwrap() + a * a + k;
    let bytes = r.into_bigint().to_bytes_be();
    format!("0x{}", hex::encode(bytes))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_field_pallasb_spelling_trades_end_to_end() {
    let backend = Backend::new();
    let node = Server::start(&backend).await;
    let api = node.api();
    let req = api.user("fid-req").await;
    let prod = api.user("fid-prod").await;
    let file = "example/statements/arithmetic-pallasb.json";
    let text = std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let statement: Value = serde_json::from_str(&text).unwrap();
    assert!(statement["definition"]["proving_key"]
        .as_str()
        .unwrap()
        .contains("define dso_local field_pallasb"));
    let (s, st) = req.post(&format!("{ROOT}/statement"), &statement).await;
    assert_eq!(s, 200, "{st}");
    assert_eq!(st["circuit"]["public_inputs"], 2, "{st}");
    let stmt = st["_key"].as_str().unwrap().to_owned();

    let (s, r) = req
        .post(
            &format!("{ROOT}/request"),
            &json!({"statement_key": stmt, "cost": 7, "input": {"input": "1\n11"}}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let (s, p) = prod
        .post(
            &format!("{ROOT}/proposal"),
            &json!({"statement_key": stmt, "cost": 5}),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["status"], "processing", "{p}");
    let pk = p["_key"].as_str().unwrap().to_owned();

    let proof = generate(file, "example/input/arithmetic/input.json");
    // A tampered proof, and a real proof of another input, are refused and change nothing.
    let mut tampered = proof.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(tampered).unwrap();
    let other = generate(file, "example/input/arithmetic/input-5-7.json");
    for bad in [&tampered, &other] {
        let (s, v) = prod
            .post(
                &format!("{ROOT}/proof"),
                &json!({"proof": bad, "proposal_key": pk}),
            )
            .await;
        assert_eq!(s, 400, "{v}");
    }
    let (_, still) = req
        .get(&format!("{ROOT}/request/{}", r["_key"].as_str().unwrap()))
        .await;
    assert_eq!(still["status"], "processing", "{still}");

    let (s, v) = prod
        .post(
            &format!("{ROOT}/proof"),
            &json!({"proof": proof, "proposal_key": pk}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["output"], arithmetic_reference(1, 11).as_str(), "{v}");
    assert_eq!(
        v["output"],
        "0x0cccccccccccccccccccccccccccccccd3a7b8326842aa6d0eb4cd0e7fc4e9be"
    );
    let (_, done) = req
        .get(&format!("{ROOT}/request/{}", r["_key"].as_str().unwrap()))
        .await;
    assert_eq!(done["status"], "completed", "{done}");
}

/// Hex of a Pallas base field element, as the market shows outputs.
fn hex_of(x: ark_pallas::Fq) -> String {
    use ark_ff::{BigInteger, PrimeField};
    format!("0x{}", hex::encode(x.into_bigint().to_bytes_be()))
}

/// The Kimchi Poseidon permutation written out here, apart from the market's code
/// (only the published constants are shared): 55 rounds of S-box x^7, MDS, round
/// constants.
fn poseidon_reference(mut s: [ark_pallas::Fq; 3]) -> [ark_pallas::Fq; 3] {
    use ark_ff::Field;
    use proof_market::circuit::poseidon::{mds, round_constants};
    for rc in round_constants() {
        let p = s.map(|x| x.pow([7u64]));
        let m = mds();
        s = [0, 1, 2].map(|j| m[j][0] * p[0] + m[j][1] * p[1] + m[j][2] * p[2] + rc[j]);
    }
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn vectors_and_poseidon_trade_end_to_end() {
    use ark_pallas::Fq as Fp;
    let backend = Backend::new();
    let node = Server::start(&backend).await;
    let api = node.api();
    let req = api.user("vec-req").await;
    let prod = api.user("vec-prod").await;
    let file = "example/statements/poseidon-vectors.json";
    let text = std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let statement: Value = serde_json::from_str(&text).unwrap();
    let (s, st) = req.post(&format!("{ROOT}/statement"), &statement).await;
    assert_eq!(s, 200, "{st}");
    assert_eq!(st["circuit"]["public_inputs"], 3, "{st}");
    assert_eq!(st["circuit"]["public_outputs"], 3, "{st}");
    let stmt = st["_key"].as_str().unwrap().to_owned();

    // An input whose structure does not match the parameters is refused by name.
    let (s, v) = req
        .post(
            &format!("{ROOT}/request"),
            &json!({"statement_key": stmt, "cost": 7,
                    "input": [{"field": 10}, {"vector": [{"field": 3}, {"field": 4}]}]}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("vector of 2"), "{v}");

    let input = json!([{"vector": [{"field": 3}, {"field": 4}]}, {"field": 10}]);
    let (s, r) = req
        .post(
            &format!("{ROOT}/request"),
            &json!({"statement_key": stmt, "cost": 7, "input": input}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let (s, p) = prod
        .post(
            &format!("{ROOT}/proposal"),
            &json!({"statement_key": stmt, "cost": 5}),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["status"], "processing", "{p}");
    let pk = p["_key"].as_str().unwrap().to_owned();

    let proof = generate(file, "example/input/poseidon-vectors/input.json");
    let mut tampered = proof.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(tampered).unwrap();
    // A real proof of another input: other outputs (another hash) than this request's.
    let other = generate(file, "example/input/poseidon-vectors/input-other.json");
    for bad in [&tampered, &other] {
        let (s, v) = prod
            .post(
                &format!("{ROOT}/proof"),
                &json!({"proof": bad, "proposal_key": pk}),
            )
            .await;
        assert_eq!(s, 400, "{v}");
    }
    let (s, v) = prod
        .post(
            &format!("{ROOT}/proof"),
            &json!({"proof": proof, "proposal_key": pk}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (x, y, k) = (Fp::from(3u64), Fp::from(4u64), Fp::from(10u64));
    let h = poseidon_reference([Fp::from(0u64), x, y])[2];
    let want = [y * k + Fp::from(7u64), Fp::from(5u64), h].map(hex_of);
    assert_eq!(v["output"], want.join(","), "{v}");
    assert_eq!(v["outputs"], json!(want), "{v}");
    let (_, done) = req
        .get(&format!("{ROOT}/request/{}", r["_key"].as_str().unwrap()))
        .await;
    assert_eq!(done["status"], "completed", "{done}");
}

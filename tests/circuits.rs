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

/// An example statement of `example/`, pushed and traded end to end.
struct Example<'a> {
    /// Users' name prefix (each test its own).
    tag: &'a str,
    /// The statement file.
    file: &'a str,
    /// The request's input (the same as `input_file`'s, in the market's API).
    input: Value,
    /// The input file `proof-generator` proves.
    input_file: &'a str,
    /// Another input, whose real proof must be refused for this request.
    other_file: &'a str,
    /// The circuit's public inputs and outputs, as the statement shows them.
    public_inputs: usize,
    public_outputs: usize,
}

impl Example<'_> {
    /// Pushes the statement, matches a request with a proposal, checks that a tampered
    /// proof and a real proof of another input are refused on push (changing nothing),
    /// pushes the real proof and returns the market's answer, after checking that the
    /// request completed. `before_trade` runs with the requester and statement key
    /// before the request is placed (for input checks).
    async fn trade<F, Fut>(&self, before_trade: F) -> Value
    where
        F: FnOnce(Api, String) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let backend = Backend::new();
        let node = Server::start(&backend).await;
        let api = node.api();
        let req = api.user(&format!("{}-req", self.tag)).await;
        let prod = api.user(&format!("{}-prod", self.tag)).await;
        let path = format!("{}/{}", env!("CARGO_MANIFEST_DIR"), self.file);
        let statement: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let (s, st) = req.post(&format!("{ROOT}/statement"), &statement).await;
        assert_eq!(s, 200, "{st}");
        assert_eq!(st["circuit"]["public_inputs"], self.public_inputs, "{st}");
        assert_eq!(st["circuit"]["public_outputs"], self.public_outputs, "{st}");
        let stmt = st["_key"].as_str().unwrap().to_owned();
        before_trade(req.clone(), stmt.clone()).await;

        let (s, r) = req
            .post(
                &format!("{ROOT}/request"),
                &json!({"statement_key": stmt, "cost": 7, "input": self.input}),
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

        let proof = generate(self.file, self.input_file);
        let mut tampered = proof.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'0' { b'1' } else { b'0' };
        let tampered = String::from_utf8(tampered).unwrap();
        // A real proof of another input: other outputs than this request's.
        let other = generate(self.file, self.other_file);
        for bad in [&tampered, &other] {
            let (s, v) = prod
                .post(
                    &format!("{ROOT}/proof"),
                    &json!({"proof": bad, "proposal_key": pk}),
                )
                .await;
            assert_eq!(s, 400, "{v}");
        }
        let rk = r["_key"].as_str().unwrap().to_owned();
        let (_, still) = req.get(&format!("{ROOT}/request/{rk}")).await;
        assert_eq!(still["status"], "processing", "{still}");

        let (s, v) = prod
            .post(
                &format!("{ROOT}/proof"),
                &json!({"proof": proof, "proposal_key": pk}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        let (_, done) = req.get(&format!("{ROOT}/request/{rk}")).await;
        assert_eq!(done["status"], "completed", "{done}");
        v
    }
}

async fn no_checks(_: Api, _: String) {}

#[tokio::test(flavor = "multi_thread")]
async fn the_field_pallasb_spelling_trades_end_to_end() {
    let file = "example/statements/arithmetic-pallasb.json";
    let text = std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    assert!(text.contains("define dso_local field_pallasb"));
    let v = Example {
        tag: "fid",
        file,
        input: json!({"input": "1\n11"}),
        input_file: "example/input/arithmetic/input.json",
        other_file: "example/input/arithmetic/input-5-7.json",
        public_inputs: 2,
        public_outputs: 1,
    }
    .trade(no_checks)
    .await;
    assert_eq!(v["output"], arithmetic_reference(1, 11).as_str(), "{v}");
    assert_eq!(
        v["output"],
        "0x0cccccccccccccccccccccccccccccccd3a7b8326842aa6d0eb4cd0e7fc4e9be"
    );
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
    let v = Example {
        tag: "vec",
        file: "example/statements/poseidon-vectors.json",
        input: json!([{"vector": [{"field": 3}, {"field": 4}]}, {"field": 10}]),
        input_file: "example/input/poseidon-vectors/input.json",
        other_file: "example/input/poseidon-vectors/input-other.json",
        public_inputs: 3,
        public_outputs: 3,
    }
    .trade(|req, stmt| async move {
        // An input whose structure does not match the parameters is refused by name.
        let (s, v) = req
            .post(
                &format!("{ROOT}/request"),
                &json!({"statement_key": stmt, "cost": 7,
                        "input": [{"field": 10}, {"vector": [{"field": 3}, {"field": 4}]}]}),
            )
            .await;
        assert_eq!(s, 400, "{v}");
        assert!(v.to_string().contains("(field, 2 elements)"), "{v}");
    })
    .await;
    let (x, y, k) = (Fp::from(3u64), Fp::from(4u64), Fp::from(10u64));
    let h = poseidon_reference([Fp::from(0u64), x, y])[2];
    let want = [y * k + Fp::from(7u64), Fp::from(5u64), h].map(hex_of);
    assert_eq!(v["output"], want.join(","), "{v}");
    assert_eq!(v["outputs"], json!(want), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn std_array_memory_trades_end_to_end() {
    use ark_pallas::Fq as Fp;
    let leaves: Vec<u64> = (0..8).map(|i| i * i + 3).collect();
    let v = Example {
        tag: "mem",
        file: "example/statements/merkle-memory.json",
        input: json!([{"array": leaves.iter().map(|l| json!({"field": l})).collect::<Vec<_>>()}]),
        input_file: "example/input/merkle-memory/input.json",
        other_file: "example/input/merkle-memory/input-other.json",
        public_inputs: 8,
        public_outputs: 2,
    }
    .trade(|req, stmt| async move {
        // Seven elements for an array of eight: refused, naming both shapes.
        let seven: Vec<Value> = (0..7).map(|i| json!({"field": i})).collect();
        let (s, v) = req
            .post(
                &format!("{ROOT}/request"),
                &json!({"statement_key": stmt, "cost": 7, "input": [{"array": seven}]}),
            )
            .await;
        assert_eq!(s, 400, "{v}");
        assert!(
            v.to_string().contains("the circuit takes (8 elements)"),
            "{v}"
        );
    })
    .await;
    // The reference: a Poseidon Merkle tree written out here, and the leaves' sum.
    let leaves: Vec<Fp> = leaves.into_iter().map(Fp::from).collect();
    let mut layer = leaves.clone();
    while layer.len() > 1 {
        layer = layer
            .chunks(2)
            .map(|p| poseidon_reference([Fp::from(0u64), p[0], p[1]])[2])
            .collect();
    }
    let sum: Fp = leaves.iter().sum();
    let want = [layer[0], sum].map(hex_of);
    assert_eq!(v["outputs"], json!(want), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sha256_trades_end_to_end() {
    use sha2::Digest;
    let lanes: [u128; 4] = [
        0x0001_0203_0405_0607_0809_0a0b_0c0d_0e0f,
        0x1011_1213_1415_1617_1819_1a1b_1c1d_1e1f,
        0x2021_2223_2425_2627_2829_2a2b_2c2d_2e2f,
        0x3031_3233_3435_3637_3839_3a3b_3c3d_3e3f,
    ];
    let hex = |x: u128| format!("0x{x:032x}");
    let v = Example {
        tag: "sha",
        file: "example/statements/sha256-twice.json",
        input: json!([
            {"vector": [{"field": hex(lanes[0])}, {"field": hex(lanes[1])}]},
            {"vector": [{"field": hex(lanes[2])}, {"field": hex(lanes[3])}]}
        ]),
        input_file: "example/input/sha256-twice/input.json",
        other_file: "example/input/sha256-twice/input-other.json",
        public_inputs: 4,
        public_outputs: 2,
    }
    .trade(|req, stmt| async move {
        // A lane of 2^128 is a field element but not a 16-byte SHA-256 word: refused.
        let (s, v) = req
            .post(
                &format!("{ROOT}/request"),
                &json!({"statement_key": stmt, "cost": 7, "input": [
                    {"vector": [{"field": "0x100000000000000000000000000000000"}, {"field": 1}]},
                    {"vector": [{"field": 1}, {"field": 1}]}]}),
            )
            .await;
        assert_eq!(s, 400, "{v}");
        assert!(v.to_string().contains("2^128"), "{v}");
    })
    .await;
    // The reference: the `sha2` crate over the 64 bytes zkLLVM's component hashes
    // (each lane as 16 big-endian bytes), the digest split into two big-endian halves.
    let sha = |x: [u128; 4]| -> [u128; 2] {
        let mut h = sha2::Sha256::new();
        x.iter().for_each(|l| h.update(l.to_be_bytes()));
        let d = h.finalize();
        [
            u128::from_be_bytes(d[..16].try_into().unwrap()),
            u128::from_be_bytes(d[16..].try_into().unwrap()),
        ]
    };
    let h = sha(lanes);
    let r = sha([h[0], h[1], lanes[2], lanes[3]]);
    let want = r.map(|x| hex_of(ark_pallas::Fq::from(x)));
    assert_eq!(v["outputs"], json!(want), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn field_equality_and_select_trade_end_to_end() {
    use ark_pallas::Fq as Fp;
    let path = |root: &str| {
        json!([{"field": 7},
               {"vector": [{"field": 11}, {"field": 12}, {"field": 13}, {"field": 14}]},
               {"vector": [{"field": 0}, {"field": 1}, {"field": 1}, {"field": 0}]},
               {"field": root}])
    };
    // The reference: the path walked here, choosing each side as the flags say.
    let (leaf, siblings, right) = (7u64, [11u64, 12, 13, 14], [0u64, 1, 1, 0]);
    let mut h = Fp::from(leaf);
    for (s, r) in siblings.into_iter().zip(right) {
        let s = Fp::from(s);
        let (l, rr) = if r == 1 { (s, h) } else { (h, s) };
        h = poseidon_reference([Fp::from(0u64), l, rr])[2];
    }
    let root = hex_of(h);
    let v = Example {
        tag: "eq",
        file: "example/statements/merkle-path.json",
        input: path(&root),
        input_file: "example/input/merkle-path/input.json",
        other_file: "example/input/merkle-path/input-other.json",
        public_inputs: 10,
        public_outputs: 2,
    }
    .trade(no_checks)
    .await;
    assert_eq!(v["outputs"], json!([root, hex_of(Fp::from(1u64))]), "{v}");
}

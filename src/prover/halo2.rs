//! Zero-knowledge proofs that a [`Program`] maps given public inputs to a given output,
//! with halo2_proofs 0.4 (PLONKish arithmetisation, inner-product-argument commitments
//! over the Pasta cycle: no trusted setup).
//!
//! The statement proved is "this program, on these public inputs, gives this output";
//! the circuit is described in `prover::halo2_circuit`. The flow:
//!
//! 1. [`CircuitKeys::setup`] derives the keys from the program alone. It is
//!    deterministic (`Params::new(k)` hashes to its generators, keygen is a pure
//!    function of the circuit shape), so every party that has the program gets the
//!    same verifying key; [`CircuitKeys::vk_fingerprint`] names it.
//! 2. [`prove`] evaluates the program (the witness), refusing wrong arity and division
//!    by zero before any proving work, and returns the output with a proof.
//! 3. [`verify`] / [`verify_batch`] check proofs from untrusted producers: any byte
//!    string is answered with `Ok` or an error. No `catch_unwind` is needed: halo2's
//!    verifier reports malformed points and scalars as transcript errors, and its
//!    remaining `unwrap`s invert a Fiat–Shamir challenge minus a root of unity, which
//!    is zero with negligible probability (below 2^-230, so out of reach of grinding);
//!    fuzz tests below feed it mutated, truncated, swapped and random proofs.
//!
//! Proofs are the raw Blake2b transcript bytes (`Challenge255`) of one circuit
//! instance; their length is fixed by the keys ([`CircuitKeys::proof_len`]), which
//! verification enforces so that no trailing bytes can ride along with a valid proof.
//! [`PROOF_SYSTEM`] labels the format.

use std::fmt;
use std::sync::OnceLock;

use halo2_proofs::{
    pasta::{group::ff::PrimeField as _, vesta, Fp},
    plonk::{
        create_proof, keygen_pk, keygen_vk, verify_proof, BatchVerifier, ProvingKey,
        SingleVerifier, VerifyingKey,
    },
    poly::commitment::Params,
    transcript::{Blake2bRead, Blake2bWrite, Challenge255, EncodedChallenge as _, Transcript as _},
};
use halo2_rand::{rngs::StdRng, rngs::SysRng, SeedableRng as _};

pub use super::field::{fe_to_fp, fp_to_fe};
pub use super::halo2_circuit::MAX_K;
use super::halo2_circuit::{min_k, uses_sha256, ProgramCircuit, Sha256Layout};
use crate::circuit::program::{Fe, Instr, Program, ProgramError, Wire};
use halo2_proofs::plonk::Circuit;

/// Names the proof format, to be stored with each proof: halo2_proofs 0.4 PLONK with
/// IPA commitments on Vesta (circuit over the Pallas base field), Blake2b transcript
/// with 255-bit challenges, one circuit instance per proof, the circuit layout of
/// `prover::halo2_circuit` version 3 (version 2 added the Poseidon gadget's columns
/// and a 2^4-row floor; version 3 the `eq` gate, which changes every program's keys).
/// Changing any of these must change this name.
///
/// Programs that contain a `Sha256` instruction are proved in the wider
/// `Sha256Layout` (the same layout plus the SHA-256 gadget's columns), under the same
/// name: the layout follows from the program, so keys never mix the two.
pub const PROOF_SYSTEM: &str = "halo2-ipa-pasta-v3";

/// The commitment curve: the circuit's field (Pallas' base field) is Vesta's scalar field.
pub(super) type Curve = vesta::Affine;

/// Why keys could not be built, a proof could not be made, or a proof was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProverError {
    /// The proof does not prove the statement (malformed, tampered, made for other
    /// inputs, another output or another program).
    #[error("invalid proof: it does not prove this output for these inputs")]
    InvalidProof,
    /// Some proofs of a batch were rejected; `invalid` lists their positions.
    #[error("{} proof(s) of the batch were rejected, at positions {invalid:?}", invalid.len())]
    BatchRejected {
        /// Positions (in the batch given) of the rejected items, ascending.
        invalid: Vec<usize>,
    },
    /// The program cannot run on these inputs: their number differs from its arity, or
    /// it divides by zero on them (so it has no output to prove).
    #[error(transparent)]
    Program(#[from] ProgramError),
    /// The program needs more table rows than keys are built for (`2^MAX_K` minus
    /// halo2's blinding rows).
    #[error(
        "the program needs {rows} usable circuit rows, more than a 2^{MAX_K}-row table offers"
    )]
    TooLarge {
        /// Usable rows the program needs.
        rows: usize,
    },
    /// `prove` was given a program other than the one the keys were built for.
    #[error("the program differs from the one these keys were built for")]
    ProgramMismatch,
    /// halo2 failed to generate keys or a proof (a bug, not a property of the inputs).
    #[error("halo2 synthesis failed: {0}")]
    Synthesis(String),
    /// The operating system's random number generator failed.
    #[error("no randomness from the operating system: {0}")]
    Randomness(String),
}

fn synthesis(e: halo2_proofs::plonk::Error) -> ProverError {
    ProverError::Synthesis(e.to_string())
}

/// Everything needed to prove and verify one program: the commitment parameters, the
/// proving key (which contains the verifying key) and the program itself.
pub struct CircuitKeys {
    params: &'static Params<Curve>,
    pk: ProvingKey<Curve>,
    k: u32,
    program: Program,
    /// Whether the keys are for the `Sha256Layout` (the program has a `Sha256`).
    sha256: bool,
    proof_len: usize,
    vk_fingerprint: [u8; 32],
}

impl fmt::Debug for CircuitKeys {
    // The parameters and keys are large tables of points; show what identifies them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitKeys")
            .field("k", &self.k)
            .field("num_inputs", &self.program.num_inputs())
            .field("num_instrs", &self.program.instrs().len())
            .field("proof_len", &self.proof_len)
            .field("vk_fingerprint", &Hex(&self.vk_fingerprint))
            .finish()
    }
}

struct Hex<'a>(&'a [u8]);

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

#[cfg(test)]
impl CircuitKeys {
    /// The commitment parameters and proving key, for the forged-proof tests
    /// (`prover::forged`), which prove against the market's own keys.
    pub(super) fn proving_parts(&self) -> (&'static Params<Curve>, &ProvingKey<Curve>) {
        (self.params, &self.pk)
    }
}

impl CircuitKeys {
    /// Builds the keys for `program`, with the smallest table (`2^k` rows) that fits it.
    ///
    /// Deterministic: the same program always gives the same verifying key. Costs about
    /// as much as one proof (keygen commits to the fixed and permutation columns), plus,
    /// the first time a process meets a given `k`, building the commitment parameters
    /// for it (shared by every later setup, see `params`); callers should keep the keys
    /// rather than rebuild them.
    pub fn setup(program: &Program) -> Result<CircuitKeys, ProverError> {
        let k = min_k(program).map_err(|rows| ProverError::TooLarge { rows })?;
        let params = params(k)?;
        let circuit = ProgramCircuit::without_witness(program);
        let sha256 = uses_sha256(program);
        let pk = if sha256 {
            keygen(params, &Sha256Layout(circuit))?
        } else {
            keygen(params, &circuit)?
        };
        let proof_len = proof_len_for(k, sha256)?;
        let vk_fingerprint = fingerprint(pk.get_vk())?;
        Ok(CircuitKeys {
            params,
            pk,
            k,
            sha256,
            program: program.clone(),
            proof_len,
            vk_fingerprint,
        })
    }

    /// The table has `2^k` rows.
    pub fn k(&self) -> u32 {
        self.k
    }

    /// The number of public inputs the program (and every proof) takes.
    pub fn num_inputs(&self) -> usize {
        self.program.num_inputs()
    }

    /// The program these keys are for.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// The exact length in bytes of every proof for these keys.
    pub fn proof_len(&self) -> usize {
        self.proof_len
    }

    /// A 32-byte digest of the verifying key (the value halo2 hashes into every proof
    /// transcript, squeezed through a fresh Blake2b transcript). Equal fingerprints mean
    /// equal verifying keys, so it identifies the circuit a proof was made for.
    pub fn vk_fingerprint(&self) -> [u8; 32] {
        self.vk_fingerprint
    }

    fn vk(&self) -> &VerifyingKey<Curve> {
        self.pk.get_vk()
    }

    /// The public instance column for `inputs` and `outputs`, after checking both
    /// counts.
    fn instance(&self, inputs: &[Fe], outputs: &[Fe]) -> Result<Vec<Fp>, ProverError> {
        self.program.check_arity(inputs)?;
        self.program.check_outputs(outputs)?;
        let inst = inputs
            .iter()
            .chain(outputs)
            .copied()
            .map(fe_to_fp)
            .collect();
        Ok(inst)
    }
}

/// Builds the verifying and proving keys of `circuit`'s shape.
fn keygen<C: Circuit<Fp>>(
    params: &Params<Curve>,
    circuit: &C,
) -> Result<ProvingKey<Curve>, ProverError> {
    let vk = keygen_vk(params, circuit).map_err(synthesis)?;
    keygen_pk(params, vk, circuit).map_err(synthesis)
}

fn fingerprint(vk: &VerifyingKey<Curve>) -> Result<[u8; 32], ProverError> {
    let mut t = Blake2bWrite::<Vec<u8>, Curve, Challenge255<Curve>>::init(Vec::new());
    vk.hash_into(&mut t)
        .map_err(|e| ProverError::Synthesis(e.to_string()))?;
    Ok(t.squeeze_challenge().get_scalar().to_repr())
}

/// The commitment parameters for tables of `2^k` rows, built once per process.
///
/// They depend on `k` alone (generators hashed from a fixed domain string), not on the
/// program, yet dominate setup: `Params::new` runs a size-`2^k` FFT over curve points,
/// about 2 s at `k = 11` and 40 s at `k = 15` on a 2-core machine, against ~0.1 s for
/// the program-specific keygen at `k = 11`. So every program of the same size shares
/// one copy, kept for the life of the process (`2 * 2^k` points, 128 MiB at `MAX_K`).
fn params(k: u32) -> Result<&'static Params<Curve>, ProverError> {
    static PARAMS: [OnceLock<Params<Curve>>; MAX_K as usize + 1] =
        [const { OnceLock::new() }; MAX_K as usize + 1];
    let slot = PARAMS
        .get(k as usize)
        .ok_or_else(|| ProverError::Synthesis(format!("k = {k} is above MAX_K")))?;
    Ok(slot.get_or_init(|| Params::new(k)))
}

/// Runs halo2's prover on one circuit instance.
fn create<C: Circuit<Fp>>(
    params: &Params<Curve>,
    pk: &ProvingKey<Curve>,
    circuit: C,
    instance: &[Fp],
) -> Result<Vec<u8>, ProverError> {
    let rng =
        StdRng::try_from_rng(&mut SysRng).map_err(|e| ProverError::Randomness(e.to_string()))?;
    let mut transcript = Blake2bWrite::<_, Curve, Challenge255<_>>::init(Vec::new());
    create_proof(params, pk, &[circuit], &[&[instance]], rng, &mut transcript)
        .map_err(synthesis)?;
    Ok(transcript.finalize())
}

/// The length in bytes of every proof at table size `2^k` of a program without a
/// `Sha256` instruction ([`program_proof_len`] covers every program).
pub fn proof_len(k: u32) -> Result<usize, ProverError> {
    proof_len_for(k, false)
}

/// The length in bytes of every proof of `program` at table size `2^k` (it depends on
/// the program's layout, see `halo2_circuit::Sha256Layout`, and on `k`).
pub fn program_proof_len(program: &Program, k: u32) -> Result<usize, ProverError> {
    proof_len_for(k, uses_sha256(program))
}

/// The length in bytes of every proof at table size `2^k` in the plain layout or
/// (`sha256`) the `Sha256Layout`.
///
/// The transcript's shape depends only on the constraint system, which is the same for
/// every program, and on `k`: the inner-product argument adds two 32-byte points per
/// round, one round per bit of `k`. So the length is `base + 64 k`, and `base` is
/// measured once per process from a real proof of the smallest program (a few ms).
/// halo2's own estimate (`dev::CircuitCost::proof_size`) is not used: in 0.4.1 it
/// counts a lookup opening set even for circuits without lookups and comes out 32
/// bytes long. [`prove`] re-checks every proof's length against this.
fn proof_len_for(k: u32, sha256: bool) -> Result<usize, ProverError> {
    static BASE: [OnceLock<Result<usize, ProverError>>; 2] = [OnceLock::new(), OnceLock::new()];
    let base = BASE[usize::from(sha256)].get_or_init(|| {
        let tiny = Program::new(1, vec![Instr::Mul(Wire(0), Wire(0))], Wire(1))
            .map_err(ProverError::from)?;
        let k = min_k(&tiny).map_err(|rows| ProverError::TooLarge { rows })?;
        let params = params(k)?;
        let shape = ProgramCircuit::without_witness(&tiny);
        let circuit = ProgramCircuit::with_inputs(&tiny, &[Fe::from(3u64)])?;
        let instance = circuit.instance().unwrap_or_default();
        // The layout's columns, not the program, fix the transcript's shape: the tiny
        // program in the Sha256Layout measures that layout.
        let proof = if sha256 {
            let pk = keygen(params, &Sha256Layout(shape))?;
            create(params, &pk, Sha256Layout(circuit), &instance)?
        } else {
            let pk = keygen(params, &shape)?;
            create(params, &pk, circuit, &instance)?
        };
        proof
            .len()
            .checked_sub(IPA_BYTES_PER_K * k as usize)
            .ok_or_else(|| ProverError::Synthesis("calibration proof too short".into()))
    });
    Ok(base.clone()? + IPA_BYTES_PER_K * k as usize)
}

/// Two compressed Vesta points per inner-product-argument round.
const IPA_BYTES_PER_K: usize = 64;

/// A program's outputs on some inputs, with a proof of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvedOutput {
    /// The program's outputs, in order.
    pub outputs: Vec<Fe>,
    /// The proof (exactly [`CircuitKeys::proof_len`] bytes).
    pub proof: Vec<u8>,
}

/// Runs `program` on `inputs` and proves the result.
///
/// `program` must be the one `keys` were built for ([`ProverError::ProgramMismatch`]
/// otherwise). Wrong arity and division by zero are reported before any proving work.
/// Blinding randomness comes from a ChaCha generator seeded by the operating system.
pub fn prove(
    keys: &CircuitKeys,
    program: &Program,
    inputs: &[Fe],
) -> Result<ProvedOutput, ProverError> {
    if *program != keys.program {
        return Err(ProverError::ProgramMismatch);
    }
    let circuit = ProgramCircuit::with_inputs(program, inputs)?;
    let (instance, outputs) = match (circuit.instance(), circuit.outputs()) {
        (Some(i), Some(o)) => (i, o),
        _ => {
            return Err(ProverError::Synthesis(
                "witness missing after evaluation".into(),
            ))
        }
    };
    let proof = if keys.sha256 {
        create(keys.params, &keys.pk, Sha256Layout(circuit), &instance)?
    } else {
        create(keys.params, &keys.pk, circuit, &instance)?
    };
    if proof.len() != keys.proof_len {
        // Verification would reject it; better to say why here.
        return Err(ProverError::Synthesis(format!(
            "proof has {} bytes, expected {}",
            proof.len(),
            keys.proof_len
        )));
    }
    Ok(ProvedOutput {
        outputs: outputs.into_iter().map(fp_to_fe).collect(),
        proof,
    })
}

/// Checks that `proof` proves that the keys' program maps `inputs` to `outputs`.
///
/// Errors: [`ProverError::Program`] if `inputs` or `outputs` has the wrong length,
/// [`ProverError::InvalidProof`] for anything else wrong (including proofs of the wrong
/// length, which are refused before any cryptographic work).
pub fn verify(
    keys: &CircuitKeys,
    inputs: &[Fe],
    outputs: &[Fe],
    proof: &[u8],
) -> Result<(), ProverError> {
    let instance = keys.instance(inputs, outputs)?;
    verify_instance(keys, &instance, proof)
}

fn verify_instance(keys: &CircuitKeys, instance: &[Fp], proof: &[u8]) -> Result<(), ProverError> {
    if proof.len() != keys.proof_len {
        return Err(ProverError::InvalidProof);
    }
    let mut rest = proof;
    {
        let mut transcript = Blake2bRead::<_, Curve, Challenge255<_>>::init(&mut rest);
        let strategy = SingleVerifier::new(keys.params);
        verify_proof(
            keys.params,
            keys.vk(),
            strategy,
            &[&[instance]],
            &mut transcript,
        )
        .map_err(|_| ProverError::InvalidProof)?;
    }
    // With the length fixed this cannot trip, but it is what makes the length check
    // sufficient: the verifier read every byte it was given.
    if rest.is_empty() {
        Ok(())
    } else {
        Err(ProverError::InvalidProof)
    }
}

/// Checks many proofs for the same keys at once with halo2's `BatchVerifier` (one
/// combined multi-scalar multiplication, markedly cheaper per proof than [`verify`]).
/// Items are `(inputs, outputs, proof)`; an empty batch is valid.
///
/// If the batch fails (or an item has the wrong arity or proof length), every
/// remaining item is verified on its own to find the culprits, and the error is
/// [`ProverError::BatchRejected`] with their positions: a failing batch thus costs a
/// batch check plus one full verification per item. Should the batch fail while every
/// item passes alone (which sound batching makes impossible up to negligible
/// probability), the individual verdicts win and the result is `Ok`.
///
/// halo2's batch check draws its random combination scalars from the OS generator and
/// panics if that fails; that concerns the machine, not the proofs.
pub fn verify_batch(
    keys: &CircuitKeys,
    items: &[(Vec<Fe>, Vec<Fe>, Vec<u8>)],
) -> Result<(), ProverError> {
    let mut invalid = Vec::new();
    let mut checked: Vec<(usize, Vec<Fp>)> = Vec::with_capacity(items.len());
    for (i, (inputs, outputs, proof)) in items.iter().enumerate() {
        match keys.instance(inputs, outputs) {
            Ok(inst) if proof.len() == keys.proof_len => checked.push((i, inst)),
            _ => invalid.push(i),
        }
    }
    if invalid.is_empty() {
        let mut batch = BatchVerifier::<Curve>::new();
        for (i, inst) in &checked {
            // Proofs are copied: BatchVerifier owns its items.
            batch.add_proof(vec![vec![inst.clone()]], items[*i].2.clone());
        }
        if batch.finalize(keys.params, keys.vk()) {
            return Ok(());
        }
    }
    for (i, inst) in &checked {
        if verify_instance(keys, inst, &items[*i].2).is_err() {
            invalid.push(*i);
        }
    }
    if invalid.is_empty() {
        Ok(())
    } else {
        invalid.sort_unstable();
        Err(ProverError::BatchRejected { invalid })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prover::test_programs::*;
    use ark_ff::{One as _, Zero as _};
    use proptest::prelude::*;
    use std::time::Instant;

    fn example_keys() -> &'static CircuitKeys {
        static KEYS: OnceLock<CircuitKeys> = OnceLock::new();
        KEYS.get_or_init(|| CircuitKeys::setup(&arithmetic_example()).unwrap())
    }

    /// `outputs` with the last one changed.
    fn bump(outputs: &[Fe]) -> Vec<Fe> {
        let mut v = outputs.to_vec();
        if let Some(last) = v.last_mut() {
            *last += Fe::one();
        }
        v
    }

    fn ab(a: u64, b: u64) -> Vec<Fe> {
        vec![Fe::from(a), Fe::from(b)]
    }

    /// A proof for (1, 11), made once.
    fn example_proof() -> &'static ProvedOutput {
        static PROOF: OnceLock<ProvedOutput> = OnceLock::new();
        PROOF.get_or_init(|| prove(example_keys(), &arithmetic_example(), &ab(1, 11)).unwrap())
    }

    #[test]
    fn round_trip() {
        let keys = example_keys();
        assert_eq!(keys.k(), 5);
        let p = example_proof();
        assert_eq!(p.outputs, vec![arithmetic_example_expected()]);
        assert_eq!(p.proof.len(), keys.proof_len());
        verify(keys, &ab(1, 11), &p.outputs, &p.proof).unwrap();
        // A second, independent proof (fresh randomness) differs but also verifies.
        let q = prove(keys, &arithmetic_example(), &ab(1, 11)).unwrap();
        assert_ne!(q.proof, p.proof);
        verify(keys, &ab(1, 11), &q.outputs, &q.proof).unwrap();
    }

    #[test]
    fn sha256_round_trip() {
        use crate::circuit::sha256::sha256_blocks;
        use rand::Rng as _;
        // The builtin on (x0, x1, x0 * x1, x2): one call fits well under the default
        // cap of 2^13 rows.
        let p = Program::with_outputs(
            3,
            vec![
                Instr::Mul(Wire(0), Wire(1)),
                Instr::Sha256([Wire(0), Wire(1), Wire(3), Wire(2)]),
            ],
            vec![Wire(4), Wire(5)],
        )
        .unwrap();
        let keys = CircuitKeys::setup(&p).unwrap();
        assert_eq!(keys.k(), 8);
        assert_eq!(keys.proof_len(), program_proof_len(&p, keys.k()).unwrap());
        assert_ne!(keys.proof_len(), proof_len(keys.k()).unwrap());
        let mut rng = rand::thread_rng();
        for _ in 0..2 {
            let x: [u64; 2] = rng.gen();
            let inputs = vec![Fe::from(x[0]), Fe::from(x[1]), Fe::from(rng.gen::<u128>())];
            let proved = prove(&keys, &p, &inputs).unwrap();
            let expected =
                sha256_blocks([inputs[0], inputs[1], inputs[0] * inputs[1], inputs[2]]).unwrap();
            assert_eq!(proved.outputs, expected.to_vec());
            assert_eq!(proved.proof.len(), keys.proof_len());
            verify(&keys, &inputs, &proved.outputs, &proved.proof).unwrap();
            assert_eq!(
                verify(&keys, &inputs, &bump(&proved.outputs), &proved.proof),
                Err(ProverError::InvalidProof)
            );
            let mut first_wrong = proved.outputs.clone();
            first_wrong[0] += Fe::one();
            assert_eq!(
                verify(&keys, &inputs, &first_wrong, &proved.proof),
                Err(ProverError::InvalidProof)
            );
        }
        // A lane of 2^128 has no output to prove.
        let big = vec![
            Fe::from(1u64),
            Fe::from(1u64),
            Fe::from(u128::MAX) + Fe::one(),
        ];
        assert!(matches!(
            prove(&keys, &p, &big),
            Err(ProverError::Program(ProgramError::Sha256LaneTooLarge {
                instr: 1,
                lane: 3
            }))
        ));
    }

    #[test]
    fn wrong_statements_are_rejected() {
        let keys = example_keys();
        let p = example_proof();
        let bad = Err(ProverError::InvalidProof);
        assert_eq!(verify(keys, &ab(11, 1), &p.outputs, &p.proof), bad);
        assert_eq!(verify(keys, &ab(1, 12), &p.outputs, &p.proof), bad);
        assert_eq!(verify(keys, &ab(1, 11), &bump(&p.outputs), &p.proof), bad);
        assert_eq!(verify(keys, &ab(1, 11), &[Fe::zero()], &p.proof), bad);
        assert_eq!(
            verify(keys, &[Fe::one()], &p.outputs, &p.proof),
            Err(ProverError::Program(ProgramError::Arity {
                expected: 2,
                got: 1
            }))
        );
    }

    #[test]
    fn tampered_proofs_are_rejected() {
        let keys = example_keys();
        let p = example_proof();
        // Flip one bit in every third byte (and all of the first 64).
        for pos in (0..p.proof.len()).filter(|i| i % 3 == 0 || *i < 64) {
            let mut t = p.proof.clone();
            t[pos] ^= 1 << (pos % 8);
            assert_eq!(
                verify(keys, &ab(1, 11), &p.outputs, &t),
                Err(ProverError::InvalidProof),
                "flip at {pos}"
            );
        }
        let bad = Err(ProverError::InvalidProof);
        assert_eq!(verify(keys, &ab(1, 11), &p.outputs, &[]), bad);
        assert_eq!(
            verify(keys, &ab(1, 11), &p.outputs, &p.proof[..p.proof.len() - 1]),
            bad
        );
        let mut longer = p.proof.clone();
        longer.push(0);
        assert_eq!(verify(keys, &ab(1, 11), &p.outputs, &longer), bad);
        assert_eq!(
            verify(keys, &ab(1, 11), &p.outputs, &vec![0u8; keys.proof_len()]),
            bad
        );
        assert_eq!(
            verify(
                keys,
                &ab(1, 11),
                &p.outputs,
                &vec![0xffu8; keys.proof_len()]
            ),
            bad
        );
        assert_eq!(
            verify(keys, &ab(1, 11), &p.outputs, &vec![7u8; 1 << 20]),
            bad
        );
    }

    #[test]
    fn proofs_do_not_cross_programs() {
        let keys = example_keys();
        let p = example_proof();
        // Same shape and arity, another constant: another verifying key.
        let mut instrs = arithmetic_example().instrs().to_vec();
        instrs[11] = Instr::Const(Fe::from(1u64));
        let other = Program::new(2, instrs, Wire(14)).unwrap();
        let other_keys = CircuitKeys::setup(&other).unwrap();
        assert_eq!(other_keys.k(), keys.k());
        assert_eq!(other_keys.proof_len(), keys.proof_len());
        assert_ne!(other_keys.vk_fingerprint(), keys.vk_fingerprint());
        assert_eq!(
            verify(&other_keys, &ab(1, 11), &p.outputs, &p.proof),
            Err(ProverError::InvalidProof)
        );
        let q = prove(&other_keys, &other, &ab(1, 11)).unwrap();
        verify(&other_keys, &ab(1, 11), &q.outputs, &q.proof).unwrap();
        assert_eq!(
            verify(keys, &ab(1, 11), &q.outputs, &q.proof),
            Err(ProverError::InvalidProof)
        );
        // Keys are tied to their program.
        assert_eq!(
            prove(keys, &other, &ab(1, 11)),
            Err(ProverError::ProgramMismatch)
        );
    }

    #[test]
    fn bad_inputs_fail_before_proving() {
        let keys = example_keys();
        let prog = arithmetic_example();
        // b - a = 0: instruction 8 divides by zero.
        assert_eq!(
            prove(keys, &prog, &ab(4, 4)),
            Err(ProverError::Program(ProgramError::DivisionByZero {
                instr: 8
            }))
        );
        assert_eq!(
            prove(keys, &prog, &ab(4, 4)[..1]),
            Err(ProverError::Program(ProgramError::Arity {
                expected: 2,
                got: 1
            }))
        );
        assert_eq!(
            prove(keys, &prog, &[Fe::one(); 3]),
            Err(ProverError::Program(ProgramError::Arity {
                expected: 2,
                got: 3
            }))
        );
    }

    #[test]
    fn batch_verification() {
        let keys = example_keys();
        let prog = arithmetic_example();
        let mut items: Vec<(Vec<Fe>, Vec<Fe>, Vec<u8>)> = [(1, 11), (2, 3), (5, 100), (0, 9)]
            .into_iter()
            .map(|(a, b)| {
                let p = prove(keys, &prog, &ab(a, b)).unwrap();
                (ab(a, b), p.outputs, p.proof)
            })
            .collect();
        verify_batch(keys, &items).unwrap();
        verify_batch(keys, &[]).unwrap();

        // One wrong output: the batch fails and names it.
        let mut one_bad = items.clone();
        one_bad[1].1[0] += Fe::one();
        assert_eq!(
            verify_batch(keys, &one_bad),
            Err(ProverError::BatchRejected { invalid: vec![1] })
        );
        // Malformed items (garbage, arity) are named too, with the rest still checked.
        items[0].2[100] ^= 0x10;
        items[2].2 = vec![1, 2, 3];
        items[3].0.pop();
        assert_eq!(
            verify_batch(keys, &items),
            Err(ProverError::BatchRejected {
                invalid: vec![0, 2, 3]
            })
        );
    }

    #[test]
    fn keys_are_deterministic() {
        let a = example_keys();
        let b = CircuitKeys::setup(&arithmetic_example()).unwrap();
        assert_eq!(a.vk_fingerprint(), b.vk_fingerprint());
        assert_eq!(
            format!("{:?}", a.vk().pinned()),
            format!("{:?}", b.vk().pinned())
        );
        let p = example_proof();
        verify(&b, &ab(1, 11), &p.outputs, &p.proof).unwrap();
        // The cached parameters are the ones any other process would build.
        let (mut cached, mut fresh) = (Vec::new(), Vec::new());
        a.params.write(&mut cached).unwrap();
        Params::<Curve>::new(a.k()).write(&mut fresh).unwrap();
        assert_eq!(cached, fresh);
        let q = prove(&b, &arithmetic_example(), &ab(1, 11)).unwrap();
        verify(a, &ab(1, 11), &q.outputs, &q.proof).unwrap();
    }

    #[test]
    fn edge_programs_prove() {
        // Output is an input; no inputs at all; a lone division.
        let cases: Vec<(Program, Vec<Fe>)> = vec![
            (Program::new(2, vec![], Wire(1)).unwrap(), ab(3, 4)),
            (
                Program::new(
                    0,
                    vec![
                        Instr::Const(Fe::from(6u64)),
                        Instr::Const(Fe::from(3u64)),
                        Instr::Div(Wire(0), Wire(1)),
                    ],
                    Wire(2),
                )
                .unwrap(),
                vec![],
            ),
            (
                Program::new(2, vec![Instr::Div(Wire(0), Wire(1))], Wire(2)).unwrap(),
                ab(1, 3),
            ),
        ];
        for (prog, inputs) in cases {
            let keys = CircuitKeys::setup(&prog).unwrap();
            let p = prove(&keys, &prog, &inputs).unwrap();
            assert_eq!(p.outputs, prog.eval(&inputs).unwrap());
            verify(&keys, &inputs, &p.outputs, &p.proof).unwrap();
            assert_eq!(
                verify(&keys, &inputs, &bump(&p.outputs), &p.proof),
                Err(ProverError::InvalidProof)
            );
        }
    }

    #[test]
    fn too_large_program_is_refused() {
        let rows = (1usize << MAX_K) + 1;
        let prog = Program::new(rows, vec![], Wire(0)).unwrap();
        assert!(matches!(
            CircuitKeys::setup(&prog),
            Err(ProverError::TooLarge { .. })
        ));
    }

    fn time<T>(f: impl FnOnce() -> T) -> (T, f64) {
        let t = Instant::now();
        let out = f();
        (out, t.elapsed().as_secs_f64() * 1e3)
    }

    /// Prints setup / prove / verify timings for a program (run with --nocapture).
    fn measure(name: &str, prog: &Program, inputs: &[Fe], reps: usize) {
        let (keys, t_setup) = time(|| CircuitKeys::setup(prog).unwrap());
        let mut t_prove = 0.0;
        let mut t_verify = 0.0;
        let mut items = Vec::new();
        for _ in 0..reps {
            let (p, t) = time(|| prove(&keys, prog, inputs).unwrap());
            t_prove += t;
            let (r, t) = time(|| verify(&keys, inputs, &p.outputs, &p.proof));
            r.unwrap();
            t_verify += t;
            items.push((inputs.to_vec(), p.outputs, p.proof));
        }
        let (r, t_batch) = time(|| verify_batch(&keys, &items));
        r.unwrap();
        let n = reps as f64;
        println!(
            "{name}: k = {}, proof {} bytes, setup {t_setup:.1} ms, prove {:.2} ms, verify {:.2} ms, \
             batch of {reps} {:.2} ms/proof",
            keys.k(),
            keys.proof_len(),
            t_prove / n,
            t_verify / n,
            t_batch / n
        );
    }

    #[test]
    fn timings_arithmetic_example() {
        measure("arithmetic example", &arithmetic_example(), &ab(1, 11), 10);
    }

    #[test]
    fn mul_chain_2_pow_10() {
        let prog = mul_chain(1 << 10);
        let x = Fe::from(3u64);
        let keys = CircuitKeys::setup(&prog).unwrap();
        assert_eq!(keys.k(), 11);
        let p = prove(&keys, &prog, &[x]).unwrap();
        verify(&keys, &[x], &p.outputs, &p.proof).unwrap();
        assert_eq!(
            verify(&keys, &[x + Fe::one()], &p.outputs, &p.proof),
            Err(ProverError::InvalidProof)
        );
        measure("2^10 multiplications", &prog, &[x], 2);
    }

    #[test]
    #[ignore = "slow: about 45 s of setup and 9 s of proving at k = 15 on 2 cores"]
    fn mul_chain_2_pow_14() {
        measure(
            "2^14 multiplications",
            &mul_chain(1 << 14),
            &[Fe::from(3u64)],
            1,
        );
    }

    /// Prints what the largest program of each table size costs: parameters, keygen,
    /// one proof, one verification, and the proving key's heap size estimate. The
    /// numbers behind the default `--max-circuit-k` (run with --ignored --nocapture).
    #[test]
    #[ignore = "slow: measures k = 10..=14"]
    fn cost_by_k() {
        for k in 10..=14 {
            let rows = super::super::halo2_circuit::usable_rows(k).unwrap();
            let prog = mul_chain(rows - 1);
            let x = [Fe::from(3u64)];
            let (_, t_params) = time(|| params(k).unwrap());
            let rss = || {
                std::fs::read_to_string("/proc/self/statm")
                    .ok()
                    .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .map_or(0, |pages| pages * 4096)
            };
            let before = rss();
            let (keys, t_keygen) = time(|| CircuitKeys::setup(&prog).unwrap());
            let key_mib = rss().saturating_sub(before) as f64 / (1 << 20) as f64;
            assert_eq!(keys.k(), k);
            let (p, t_prove) = time(|| prove(&keys, &prog, &x).unwrap());
            let (r, t_verify) = time(|| verify(&keys, &x, &p.outputs, &p.proof));
            r.unwrap();
            println!(
                "k = {k}: {rows} rows, params {t_params:.0} ms, keygen {t_keygen:.0} ms, \
                 prove {t_prove:.0} ms, verify {t_verify:.1} ms, keys ~{key_mib:.1} MiB"
            );
            drop(keys);
        }
    }

    /// Builds a valid program from raw choices: each step picks an operation and two
    /// operands among the wires defined so far (a constant when there are none).
    fn program_from(num_inputs: usize, raw: &[(u8, u32, u32, u64)], out: &[u32]) -> Program {
        let mut instrs = Vec::new();
        for (i, &(op, x, y, c)) in raw.iter().enumerate() {
            let defined = (num_inputs + i) as u32;
            let (x, y) = if defined == 0 {
                (Wire(0), Wire(0))
            } else {
                (Wire(x % defined), Wire(y % defined))
            };
            instrs.push(match if defined == 0 { 0 } else { op % 6 } {
                0 => Instr::Const(Fe::from(c)),
                1 => Instr::Add(x, y),
                2 => Instr::Sub(x, y),
                3 => Instr::Mul(x, y),
                4 => Instr::Eq(x, y),
                _ => Instr::Div(x, y),
            });
        }
        let total = (num_inputs + raw.len()) as u32;
        let outs = out.iter().map(|o| Wire(o % total)).collect();
        Program::with_outputs(num_inputs, instrs, outs).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

        #[test]
        fn random_programs_prove_and_verify(
            num_inputs in 0usize..4,
            raw in prop::collection::vec(any::<(u8, u32, u32, u64)>(), 1..14),
            out in prop::collection::vec(any::<u32>(), 1..4),
            seeds in prop::collection::vec(any::<u64>(), 4),
        ) {
            let prog = program_from(num_inputs, &raw, &out);
            let inputs: Vec<Fe> = seeds[..num_inputs].iter().map(|&s| Fe::from(s % 5)).collect();
            let keys = CircuitKeys::setup(&prog).unwrap();
            match prog.eval(&inputs) {
                Ok(expected) => {
                    let p = prove(&keys, &prog, &inputs).unwrap();
                    prop_assert_eq!(&p.outputs, &expected);
                    prop_assert_eq!(p.proof.len(), keys.proof_len());
                    prop_assert_eq!(verify(&keys, &inputs, &p.outputs, &p.proof), Ok(()));
                    prop_assert_eq!(
                        verify(&keys, &inputs, &bump(&p.outputs), &p.proof),
                        Err(ProverError::InvalidProof)
                    );
                }
                Err(ProgramError::DivisionByZero { instr }) => {
                    prop_assert_eq!(prove(&keys, &prog, &inputs), Err(ProverError::Program(ProgramError::DivisionByZero { instr })));
                }
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// Untrusted bytes never panic and never pass: random mutations of a valid
        /// proof, truncations, and arbitrary strings.
        #[test]
        fn mutated_proofs_never_verify(
            edits in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
            cut in any::<prop::sample::Index>(),
            garbage in prop::collection::vec(any::<u8>(), 0..2000),
        ) {
            let keys = example_keys();
            let p = example_proof();
            let inputs = ab(1, 11);
            let mut t = p.proof.clone();
            for (at, x) in &edits {
                let n = t.len();
                t[at.index(n)] ^= x;
            }
            prop_assert_eq!(verify(keys, &inputs, &p.outputs, &t), Err(ProverError::InvalidProof));
            let cut = cut.index(p.proof.len());
            prop_assert_eq!(verify(keys, &inputs, &p.outputs, &p.proof[..cut]), Err(ProverError::InvalidProof));
            prop_assert_eq!(verify(keys, &inputs, &p.outputs, &garbage), Err(ProverError::InvalidProof));
            // Garbage of exactly the right length reaches the cryptographic checks.
            let mut sized = garbage.clone();
            sized.resize(keys.proof_len(), 0x5a);
            prop_assert_eq!(verify(keys, &inputs, &p.outputs, &sized), Err(ProverError::InvalidProof));
            // Swapping two 32-byte items keeps every point and scalar well-formed, so
            // this reaches the final equations rather than a decoding error.
            let items = p.proof.len() / 32;
            let (i, j) = (edits[0].0.index(items), cut % items);
            if p.proof[i * 32..i * 32 + 32] != p.proof[j * 32..j * 32 + 32] {
                let mut s = p.proof.clone();
                for b in 0..32 {
                    s.swap(i * 32 + b, j * 32 + b);
                }
                prop_assert_eq!(verify(keys, &inputs, &p.outputs, &s), Err(ProverError::InvalidProof));
            }
        }
    }
}

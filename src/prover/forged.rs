//! A dishonest producer (tests only): halo2's prover takes selectors, fixed cells and
//! copy constraints from the proving key and ignores what a circuit says of them, so a
//! producer controls exactly the advice table. [`Forged`] fills that table with any
//! values, and [`forge`] proves it against the market's own proving key; the market's
//! verifier ([`halo2::verify`]) must refuse every table that is not the honest run.
//!
//! The honest table, proved this way, verifies: the harness is able to make proofs, so
//! each refusal below is the circuit's doing, not the harness's.

use halo2_proofs::{
    arithmetic::Field as _,
    circuit::{Layouter, SimpleFloorPlanner, Value},
    pasta::Fp,
    plonk::{create_proof, Circuit, ConstraintSystem, Error},
    transcript::{Blake2bWrite, Challenge255},
};
use halo2_rand::{rngs::StdRng, SeedableRng as _};

use super::field::{fe_to_fp, fp_to_fe};
use super::halo2::{self, CircuitKeys, Curve};
use super::halo2_circuit::ProgramConfig;
use super::poseidon_chip;
use super::sha256_chip;
use super::test_programs::arithmetic_example;
use crate::circuit::program::{Fe, Instr, Program, Wire};

/// One row of the advice table: `a`, `b`, `c`, `inv`, `d`, `e`.
type Row = [Fp; 6];

/// A circuit of the market's shape whose advice cells hold `rows`, whatever they say.
struct Forged {
    rows: Vec<Row>,
}

impl Circuit<Fp> for Forged {
    type Config = ProgramConfig;
    type FloorPlanner = SimpleFloorPlanner;

    fn without_witnesses(&self) -> Self {
        Forged { rows: Vec::new() }
    }

    fn configure(meta: &mut ConstraintSystem<Fp>) -> ProgramConfig {
        ProgramConfig::configure(meta)
    }

    fn synthesize(
        &self,
        config: ProgramConfig,
        mut layouter: impl Layouter<Fp>,
    ) -> Result<(), Error> {
        layouter.assign_region(
            || "forged",
            |mut region| {
                for (row, cells) in self.rows.iter().enumerate() {
                    let columns = [config.a, config.b, config.c, config.inv, config.d, config.e];
                    for (column, v) in columns.into_iter().zip(cells) {
                        region.assign_advice(|| "forged", column, row, || Value::known(*v))?;
                    }
                }
                Ok(())
            },
        )
    }
}

/// The honest advice table of `program` on `inputs` (what `ProgramCircuit` assigns).
fn honest(program: &Program, inputs: &[Fe]) -> Vec<Row> {
    let wires: Vec<Fp> = program
        .eval_wires(inputs)
        .unwrap()
        .into_iter()
        .map(fe_to_fp)
        .collect();
    let w = |x: Wire| wires[x.index()];
    let z = Fp::ZERO;
    let mut next = program.num_inputs();
    let mut rows = Vec::new();
    for ins in program.instrs() {
        let c = wires[next];
        next += ins.defines();
        match *ins {
            Instr::Const(_) => rows.push([z, z, c, z, z, z]),
            Instr::Add(x, y) | Instr::Sub(x, y) | Instr::Mul(x, y) => {
                rows.push([w(x), w(y), c, z, z, z])
            }
            Instr::Div(x, y) => rows.push([w(x), w(y), c, w(y).invert().unwrap_or(z), z, z]),
            Instr::Eq(x, y) => {
                rows.push([w(x), w(y), c, (w(x) - w(y)).invert().unwrap_or(z), z, z])
            }
            Instr::Poseidon(s) => rows.extend(poseidon_chip::trace(s.map(w))),
            Instr::Sha256(_) => panic!("no SHA-256 gadget yet"),
        }
    }
    rows
}

/// What a row computes from its operands (the gate's own rule).
fn apply(ins: &Instr, a: Fp, b: Fp, k: Fp) -> (Fp, Fp) {
    match *ins {
        Instr::Const(_) => (k, Fp::ZERO),
        Instr::Add(..) => (a + b, Fp::ZERO),
        Instr::Sub(..) => (a - b, Fp::ZERO),
        Instr::Mul(..) => (a * b, Fp::ZERO),
        Instr::Div(..) => {
            let inv = b.invert().unwrap_or(Fp::ZERO);
            (a * inv, inv)
        }
        Instr::Eq(..) => {
            let inv = (a - b).invert().unwrap_or(Fp::ZERO);
            (Fp::from(u64::from(a == b)), inv)
        }
        Instr::Poseidon(_) | Instr::Sha256(_) => {
            panic!("one row per instruction: arithmetic programs only")
        }
    }
}

/// `rows` with row `from` set to `forced` and every later row recomputed from the
/// (forged) values it reads, each gate satisfied after it: a wrong value carried
/// consistently to the end. Returns the table and the outputs it arrives at.
fn carried(program: &Program, inputs: &[Fe], from: usize, forced: Row) -> (Vec<Row>, Vec<Fp>) {
    let n = program.num_inputs();
    let mut wires: Vec<Fp> = inputs.iter().copied().map(fe_to_fp).collect();
    let mut rows = honest(program, inputs);
    for (row, ins) in program.instrs().iter().enumerate() {
        let get = |wires: &Vec<Fp>, x: Wire| wires[x.index()];
        let (a, b) = match *ins {
            Instr::Const(_) => (Fp::ZERO, Fp::ZERO),
            Instr::Add(x, y)
            | Instr::Sub(x, y)
            | Instr::Mul(x, y)
            | Instr::Div(x, y)
            | Instr::Eq(x, y) => (get(&wires, x), get(&wires, y)),
            Instr::Poseidon(_) | Instr::Sha256(_) => {
                panic!("one row per instruction: arithmetic programs only")
            }
        };
        let k = match *ins {
            Instr::Const(k) => fe_to_fp(k),
            _ => Fp::ZERO,
        };
        let (c, inv) = apply(ins, a, b, k);
        rows[row] = if row == from {
            forced
        } else {
            [a, b, c, inv, Fp::ZERO, Fp::ZERO]
        };
        wires.push(rows[row][2]);
        debug_assert_eq!(wires.len(), n + row + 1);
    }
    let outs = program.outputs().iter().map(|o| wires[o.index()]).collect();
    (rows, outs)
}

/// Proves `rows` against `keys` for the public `inputs` and claimed `outputs`.
fn forge(keys: &CircuitKeys, inputs: &[Fe], outputs: &[Fp], rows: Vec<Row>) -> Vec<u8> {
    let (params, pk) = keys.proving_parts();
    let mut instance: Vec<Fp> = inputs.iter().copied().map(fe_to_fp).collect();
    instance.extend_from_slice(outputs);
    let mut transcript = Blake2bWrite::<_, Curve, Challenge255<_>>::init(Vec::new());
    create_proof(
        params,
        pk,
        &[Forged { rows }],
        &[&[&instance]],
        StdRng::seed_from_u64(7),
        &mut transcript,
    )
    .unwrap();
    transcript.finalize()
}

/// The market's verdict on a forged table claiming `outputs`.
fn verdict(keys: &CircuitKeys, inputs: &[Fe], outputs: &[Fp], rows: Vec<Row>) -> bool {
    let proof = forge(keys, inputs, outputs, rows);
    let outputs: Vec<Fe> = outputs.iter().copied().map(fp_to_fe).collect();
    halo2::verify(keys, inputs, &outputs, &proof).is_ok()
}

/// The program's outputs on `inputs`, as the circuit's field type.
fn outputs(program: &Program, inputs: &[Fe]) -> Vec<Fp> {
    program
        .eval(inputs)
        .unwrap()
        .into_iter()
        .map(fe_to_fp)
        .collect()
}

/// `outs` with the last output made one more.
fn plus_one(outs: &[Fp]) -> Vec<Fp> {
    let mut v = outs.to_vec();
    if let Some(last) = v.last_mut() {
        *last += Fp::ONE;
    }
    v
}

fn fe(v: u64) -> Fe {
    Fe::from(v)
}

#[test]
fn the_honest_table_forged_by_hand_verifies() {
    let p = arithmetic_example();
    let keys = CircuitKeys::setup(&p).unwrap();
    let inputs = [fe(1), fe(11)];
    let out = outputs(&p, &inputs);
    assert!(verdict(&keys, &inputs, &out, honest(&p, &inputs)));
    // The same table under a wrong claim, or for other inputs, does not.
    assert!(!verdict(
        &keys,
        &inputs,
        &plus_one(&out),
        honest(&p, &inputs)
    ));
    assert!(!verdict(&keys, &[fe(2), fe(11)], &out, honest(&p, &inputs)));
}

#[test]
fn forged_tables_are_refused() {
    let p = arithmetic_example();
    let keys = CircuitKeys::setup(&p).unwrap();
    let inputs = [fe(1), fe(11)];
    let good = honest(&p, &inputs);
    let out = outputs(&p, &inputs);
    let last = good.len() - 1;

    // A wrong output: the last row's result changed to what the claim says.
    let mut t = good.clone();
    t[last][2] += Fp::ONE;
    assert!(!verdict(&keys, &inputs, &plus_one(&out), t), "wrong output");

    // A gate broken in the middle (row 0, a + b, made one more) with every row after it
    // computed consistently from the wrong value: a different, "consistent" output.
    let mut forced = good[0];
    forced[2] += Fp::ONE;
    let (t, forged_out) = carried(&p, &inputs, 0, forced);
    assert_ne!(forged_out, out);
    assert!(
        !verdict(&keys, &inputs, &forged_out, t),
        "broken add gate carried through"
    );

    // Decoupled operands: row 1 reads `a + b + 1` instead of the copy of row 0's result
    // and computes from it correctly; everything after follows.
    let mut forced = good[1];
    forced[0] += Fp::ONE;
    forced[2] = forced[0] * forced[1];
    let (t, forged_out) = carried(&p, &inputs, 1, forced);
    assert!(
        !verdict(&keys, &inputs, &forged_out, t),
        "operand not a copy"
    );

    // An input read as another value (the operand not tied to the instance).
    let mut forced = good[0];
    forced[0] = fe_to_fp(fe(5));
    forced[2] = forced[0] + forced[1];
    let (t, forged_out) = carried(&p, &inputs, 0, forced);
    assert!(
        !verdict(&keys, &inputs, &forged_out, t),
        "operand not the input"
    );

    // A constant replaced (row 11 holds 0x1234...; the fixed column says so).
    let mut forced = good[11];
    forced[2] = Fp::ONE;
    let (t, forged_out) = carried(&p, &inputs, 11, forced);
    assert!(
        !verdict(&keys, &inputs, &forged_out, t),
        "constant replaced"
    );

    // A division with a wrong quotient whose check `c * b = a` is dodged by a wrong
    // inverse.
    let mut forced = good[8];
    forced[2] += Fp::ONE;
    forced[3] = Fp::ZERO;
    let (t, forged_out) = carried(&p, &inputs, 8, forced);
    assert!(!verdict(&keys, &inputs, &forged_out, t), "division forged");
}

#[test]
fn a_division_by_zero_cannot_be_proved() {
    // x0 / x1 on (0, 0): `c * b = a` holds for any c, only `b * inv = 1` stops it.
    let p = Program::new(2, vec![Instr::Div(Wire(0), Wire(1))], Wire(2)).unwrap();
    let keys = CircuitKeys::setup(&p).unwrap();
    let inputs = [fe(0), fe(0)];
    for (c, inv) in [
        (Fp::ZERO, Fp::ZERO),
        (Fp::from(42), Fp::ONE),
        (Fp::from(7), Fp::from(3)),
    ] {
        let rows = vec![[Fp::ZERO, Fp::ZERO, c, inv, Fp::ZERO, Fp::ZERO]];
        assert!(!verdict(&keys, &inputs, &[c], rows), "0 / 0 = {c:?}");
    }
    // The harness proves a real division of the same program.
    let inputs = [fe(6), fe(3)];
    let rows = honest(&p, &inputs);
    assert!(verdict(&keys, &inputs, &[Fp::from(2)], rows));
}

/// `x0 == x1 ? x2 : x3` as the compiler lowers it: the `eq` bit (row 0), then
/// `x3 + bit * (x2 - x3)`; the outputs are the bit and the choice.
fn select_program() -> Program {
    Program::with_outputs(
        4,
        vec![
            Instr::Eq(Wire(0), Wire(1)),
            Instr::Sub(Wire(2), Wire(3)),
            Instr::Mul(Wire(4), Wire(5)),
            Instr::Add(Wire(3), Wire(6)),
        ],
        vec![Wire(4), Wire(7)],
    )
    .unwrap()
}

#[test]
fn equality_forgeries_are_refused() {
    let p = select_program();
    let keys = CircuitKeys::setup(&p).unwrap();
    let (x2, x3) = (fe(10), fe(3));
    for (x0, x1) in [(fe(5), fe(5)), (fe(5), fe(6)), (fe(0), Fe::from(-1i64))] {
        let inputs = [x0, x1, x2, x3];
        let good = honest(&p, &inputs);
        let out = outputs(&p, &inputs);
        assert_eq!(out[0], Fp::from(u64::from(x0 == x1)));
        assert!(verdict(&keys, &inputs, &out, good.clone()), "honest table");
        assert!(!verdict(&keys, &inputs, &plus_one(&out), good.clone()));
        // The bit flipped (or made 2, or -1) with every `inv` a prover could pick, and
        // the selection carried through consistently: the other alternative chosen.
        let diff = good[0][0] - good[0][1];
        let invs = [
            Fp::ZERO,
            Fp::ONE,
            diff.invert().unwrap_or(Fp::ZERO),
            -diff.invert().unwrap_or(Fp::ONE),
        ];
        for bit in [Fp::ONE - good[0][2], Fp::from(2), -Fp::ONE] {
            for inv in invs {
                let mut forced = good[0];
                forced[2] = bit;
                forced[3] = inv;
                let (t, forged_out) = carried(&p, &inputs, 0, forced);
                assert_ne!(forged_out, out);
                assert!(
                    !verdict(&keys, &inputs, &forged_out, t),
                    "x0 = {x0}, x1 = {x1}: bit {bit:?} with inv {inv:?}"
                );
            }
        }
        // The bit computed from an operand that is not the input.
        let mut forced = good[0];
        // Equal inputs read as different, different ones as equal; the gate then holds.
        forced[1] = forced[0] + Fp::from(u64::from(x0 == x1));
        forced[2] = Fp::from(u64::from(forced[0] == forced[1]));
        forced[3] = (forced[0] - forced[1]).invert().unwrap_or(Fp::ZERO);
        let (t, forged_out) = carried(&p, &inputs, 0, forced);
        assert!(
            !verdict(&keys, &inputs, &forged_out, t),
            "operand not the input"
        );
    }
}

/// `x0 * x1`, then the permutation of `(x0, x0 * x1, x2)`, its three lanes the outputs:
/// a Poseidon gadget fed by both an input and an arithmetic row.
fn poseidon_program() -> Program {
    Program::with_outputs(
        3,
        vec![
            Instr::Mul(Wire(0), Wire(1)),
            Instr::Poseidon([Wire(0), Wire(3), Wire(2)]),
        ],
        vec![Wire(4), Wire(5), Wire(6)],
    )
    .unwrap()
}

/// The honest table with round `r`'s next state changed by one in lane 0 and every
/// later round recomputed from it: a consistent trace from a broken round.
fn poseidon_carried(good: &[Row], r: usize) -> (Vec<Row>, Vec<Fp>) {
    // Rows: the Mul row, then the permutation's 111 rows; round r's next state is on
    // the permutation's row 2r + 2.
    let base = 1;
    let mut state = [0, 1, 2].map(|i| good[base + 2 * r + 2][i]);
    state[0] += Fp::ONE;
    let mut rows = good.to_vec();
    // Re-run the remaining rounds from the forged state, reusing the gadget's trace
    // for a permutation whose first rounds are skipped.
    let mut s = state;
    let m = crate::circuit::poseidon::mds();
    for round in r + 1..crate::circuit::poseidon::ROUNDS {
        let at = base + 2 * round;
        let sq = s.map(|x| x * x);
        let cu = [0, 1, 2].map(|i| sq[i] * s[i]);
        let six = cu.map(|x| x * x);
        rows[at] = [s[0], s[1], s[2], sq[0], sq[1], sq[2]];
        rows[at + 1] = [cu[0], cu[1], cu[2], six[0], six[1], six[2]];
        let rc = poseidon_chip::round_constants_fp(round);
        s = [0, 1, 2].map(|j| (0..3).fold(rc[j], |acc, i| acc + fe_to_fp(m[j][i]) * six[i] * s[i]));
    }
    let last = base + poseidon_chip::ROWS - 1;
    rows[base + 2 * r + 2][..3].copy_from_slice(&state);
    if r + 1 == crate::circuit::poseidon::ROUNDS {
        s = state;
    }
    rows[last] = [s[0], s[1], s[2], Fp::ZERO, Fp::ZERO, Fp::ZERO];
    (rows, s.to_vec())
}

#[test]
fn poseidon_forgeries_are_refused() {
    let p = poseidon_program();
    let keys = CircuitKeys::setup(&p).unwrap();
    let inputs = [fe(3), fe(5), fe(7)];
    let good = honest(&p, &inputs);
    let out = outputs(&p, &inputs);
    assert_eq!(
        out,
        crate::circuit::poseidon::permute([fe(3), fe(15), fe(7)])
            .map(fe_to_fp)
            .to_vec()
    );
    let real = halo2::prove(&keys, &p, &inputs).unwrap();
    assert_eq!(
        real.outputs,
        out.iter().copied().map(fp_to_fe).collect::<Vec<_>>()
    );
    halo2::verify(&keys, &inputs, &real.outputs, &real.proof).unwrap();
    // The harness proves the honest table.
    assert!(verdict(&keys, &inputs, &out, good.clone()), "honest table");

    // A wrong output: the last row changed to what the claim says.
    let mut t = good.clone();
    let last = t.len() - 1;
    t[last][2] += Fp::ONE;
    assert!(!verdict(&keys, &inputs, &plus_one(&out), t), "wrong output");

    // One round's result changed, everything after it consistent: round 0, a middle
    // round and the last round.
    for r in [0, 27, 54] {
        let (t, forged_out) = poseidon_carried(&good, r);
        assert_ne!(forged_out, out);
        assert!(!verdict(&keys, &inputs, &forged_out, t), "round {r} forged");
    }

    // A decoupled state: the permutation run on (x0, x0 * x1 + 1, x2) instead of its
    // operands, honestly from there on.
    let mut t = good.clone();
    let forged_state = [fe_to_fp(fe(3)), fe_to_fp(fe(16)), fe_to_fp(fe(7))];
    let trace = poseidon_chip::trace(forged_state);
    t.splice(1.., trace.iter().copied());
    let forged_out = trace[trace.len() - 1][..3].to_vec();
    assert!(
        !verdict(&keys, &inputs, &forged_out, t),
        "state not its operands"
    );

    // An S-box shortcut: one lane's s^6 replaced (the next state made consistent with
    // it is the same forgery as a changed round, so change only the square here).
    let mut t = good.clone();
    t[1 + 2 * 10][3] += Fp::ONE;
    assert!(!verdict(&keys, &inputs, &out, t), "square changed");
}

/// A circuit of the market's `Sha256Layout` whose SHA-256 gadget cells hold `rows`
/// (one row of [`sha256_chip::WIDTH`] cells per table row, from row 0), whatever they
/// say; the program circuit's own advice cells stay zero.
struct ForgedSha {
    rows: Vec<sha256_chip::Row>,
}

impl Circuit<Fp> for ForgedSha {
    type Config = ProgramConfig;
    type FloorPlanner = SimpleFloorPlanner;

    fn without_witnesses(&self) -> Self {
        ForgedSha { rows: Vec::new() }
    }

    fn configure(meta: &mut ConstraintSystem<Fp>) -> ProgramConfig {
        ProgramConfig::configure_sha256(meta)
    }

    fn synthesize(
        &self,
        config: ProgramConfig,
        mut layouter: impl Layouter<Fp>,
    ) -> Result<(), Error> {
        let sha = config.sha.ok_or(Error::Synthesis)?;
        layouter.assign_region(
            || "forged",
            |mut region| {
                for (row, cells) in self.rows.iter().enumerate() {
                    for (column, v) in sha.cols.iter().zip(cells) {
                        region.assign_advice(|| "forged", *column, row, || Value::known(*v))?;
                    }
                }
                Ok(())
            },
        )
    }
}

/// The market's verdict on a forged SHA-256 table claiming `outputs`.
fn verdict_sha(
    keys: &CircuitKeys,
    inputs: &[Fe],
    outputs: &[Fp],
    rows: Vec<sha256_chip::Row>,
) -> bool {
    let (params, pk) = keys.proving_parts();
    let mut instance: Vec<Fp> = inputs.iter().copied().map(fe_to_fp).collect();
    instance.extend_from_slice(outputs);
    let mut transcript = Blake2bWrite::<_, Curve, Challenge255<_>>::init(Vec::new());
    create_proof(
        params,
        pk,
        &[ForgedSha { rows }],
        &[&[&instance]],
        StdRng::seed_from_u64(7),
        &mut transcript,
    )
    .unwrap();
    let proof = transcript.finalize();
    let outputs: Vec<Fe> = outputs.iter().copied().map(fp_to_fe).collect();
    halo2::verify(keys, inputs, &outputs, &proof).is_ok()
}

/// `rows[r]`'s three carry bits from `from` set to the bits of `v`.
fn set_carry_bits(row: &mut sha256_chip::Row, from: usize, v: u64) {
    for i in 0..3 {
        row[from + i] = Fp::from((v >> i) & 1);
    }
}

/// The value of a row's three carry bits from `from`.
fn carry_value(row: &sha256_chip::Row, from: usize) -> u64 {
    (0..3)
        .map(|i| u64::from(row[from + i] == Fp::ONE) << i)
        .sum()
}

#[test]
fn sha256_forgeries_are_refused() {
    use sha256_chip::{Tamper, APK, A_BITS, C1, CA, IN, IN_RANGE, OUT, P2, P3, P6, SCHED};
    // The builtin on the four inputs, its two halves the outputs.
    let p = Program::with_outputs(
        4,
        vec![Instr::Sha256([Wire(0), Wire(1), Wire(2), Wire(3)])],
        vec![Wire(4), Wire(5)],
    )
    .unwrap();
    let keys = CircuitKeys::setup(&p).unwrap();
    let lanes: [u128; 4] = [
        0x0123_4567_89ab_cdef_0011_2233_4455_6677,
        7,
        u128::MAX,
        1 << 100,
    ];
    let inputs = lanes.map(Fe::from);
    let (good, out) = sha256_chip::trace(lanes);
    let out = out.to_vec();
    assert_eq!(
        out,
        crate::circuit::sha256::sha256_blocks(inputs)
            .unwrap()
            .map(fe_to_fp)
            .to_vec()
    );
    let real = halo2::prove(&keys, &p, &inputs).unwrap();
    halo2::verify(&keys, &inputs, &real.outputs, &real.proof).unwrap();
    assert_eq!(
        real.outputs,
        out.iter().copied().map(fp_to_fe).collect::<Vec<_>>()
    );
    // The harness proves the honest table.
    assert!(
        verdict_sha(&keys, &inputs, &out, good.clone()),
        "honest table"
    );

    // A wrong output: the output row's value changed to what the claim says.
    let mut t = good.clone();
    t[OUT + 1][P6] += Fp::ONE;
    assert!(
        !verdict_sha(&keys, &inputs, &plus_one(&out), t),
        "wrong output"
    );
    // The honest table under a wrong claim.
    assert!(
        !verdict_sha(&keys, &inputs, &plus_one(&out), good.clone()),
        "wrong claim"
    );

    // One round's new word changed (lowest bit flipped), every later round, the
    // feed-forward and the outputs recomputed honestly from it: first compression
    // rounds 0, 30 and 63, second compression round 17.
    for (block, round) in [(0, 0), (0, 30), (0, 63), (1, 17)] {
        let tamper = Tamper {
            block,
            round,
            fix_carry: false,
        };
        let (t, forged_out) = sha256_chip::trace_with(lanes, Some(tamper));
        assert_ne!(forged_out.to_vec(), out);
        assert!(
            !verdict_sha(&keys, &inputs, &forged_out, t),
            "block {block} round {round} carried through"
        );
    }

    // A message word changed: W_40 in its schedule row, with every later word and
    // round computed from it (the schedule gate of W_40 broken); and W_20 changed in the
    // round that adds it only (the round's copy no longer equal to the schedule's cell).
    for (t, decoupled) in [(40, false), (63, false), (20, true)] {
        let word = sha256_chip::WordTamper { t, decoupled };
        let (t_rows, forged_out) = sha256_chip::trace_faulty(lanes, None, Some(word));
        assert_ne!(forged_out.to_vec(), out);
        assert!(
            !verdict_sha(&keys, &inputs, &forged_out, t_rows),
            "word {t} forged (decoupled: {decoupled})"
        );
    }

    // The same with the round's sum balanced by a carry cell out of range (not 0 or
    // 1): only the carry's booleanity stands in the way.
    let tamper = Tamper {
        block: 0,
        round: 20,
        fix_carry: true,
    };
    let (t, forged_out) = sha256_chip::trace_with(lanes, Some(tamper));
    assert_ne!(forged_out.to_vec(), out);
    assert!(
        !verdict_sha(&keys, &inputs, &forged_out, t),
        "carry out of range"
    );

    // A "bit" cell holding 2 with the packed word kept (bit i = 0, bit i + 1 = 1 of a
    // round's new A word become 2 and 0). Refused by the bit's booleanity and also by
    // the XOR and Maj helpers of the rounds reading the word (left as they were); the
    // lane forgery below is the one only booleanity stops.
    let mut t = good.clone();
    let row = C1 + 4 + 5;
    let i = (0..31)
        .find(|&i| t[row][A_BITS + i] == Fp::ZERO && t[row][A_BITS + i + 1] == Fp::ONE)
        .unwrap();
    t[row][A_BITS + i] = Fp::from(2);
    t[row][A_BITS + i + 1] = Fp::ZERO;
    assert!(!verdict_sha(&keys, &inputs, &out, t), "bit cell holding 2");

    // A lane of 2^128 or more: x0 + 2^128 claimed to hash like x0. Its top word is
    // w0 + 2^32 everywhere it is copied; the range row hides the extra 2^32 in a top
    // "bit" of 3 (2^31 * 3 = 2^31 + 2^32), and the round and the schedule row that add
    // W_0 take one more carry. Only the bit's booleanity stands in the way.
    let two32 = Fp::from(1u64 << 32);
    let two128 = two32 * two32 * two32 * two32;
    let mut big_inputs = inputs;
    big_inputs[0] += fp_to_fe(two128);
    let mut t = good.clone();
    t[IN][P6] += two128;
    t[IN][P2] += two32;
    t[IN_RANGE][APK] += two32;
    assert_eq!(t[IN_RANGE][A_BITS + 31], Fp::ZERO, "x0's top bit is 0");
    t[IN_RANGE][A_BITS + 31] += Fp::from(2);
    t[C1 + 4][P2] += two32;
    let c = carry_value(&t[C1 + 4], CA);
    set_carry_bits(&mut t[C1 + 4], CA, c + 1);
    let ce = carry_value(&t[C1 + 4], sha256_chip::CE);
    set_carry_bits(&mut t[C1 + 4], sha256_chip::CE, ce + 1);
    t[SCHED][P3] += two32;
    let c = carry_value(&t[SCHED], CA);
    set_carry_bits(&mut t[SCHED], CA, c + 1);
    assert!(
        !verdict_sha(&keys, &big_inputs, &out, t),
        "lane of 2^128 or more"
    );
    // The market does not even evaluate it.
    assert!(halo2::prove(&keys, &p, &big_inputs).is_err());
}

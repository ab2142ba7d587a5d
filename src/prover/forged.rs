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
use super::test_programs::arithmetic_example;
use crate::circuit::program::{Fe, Instr, Program, Wire};

/// One row of the advice table: `a`, `b`, `c`, `inv`.
type Row = [Fp; 4];

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
                    let columns = [config.a, config.b, config.c, config.inv];
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
    let n = program.num_inputs();
    program
        .instrs()
        .iter()
        .enumerate()
        .map(|(row, ins)| {
            let c = wires[n + row];
            match *ins {
                Instr::Const(_) => [Fp::ZERO, Fp::ZERO, c, Fp::ZERO],
                Instr::Add(x, y) | Instr::Sub(x, y) | Instr::Mul(x, y) => [w(x), w(y), c, Fp::ZERO],
                Instr::Div(x, y) => [w(x), w(y), c, w(y).invert().unwrap_or(Fp::ZERO)],
            }
        })
        .collect()
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
    }
}

/// `rows` with row `from` set to `forced` and every later row recomputed from the
/// (forged) values it reads, each gate satisfied after it: a wrong value carried
/// consistently to the end. Returns the table and the output it arrives at.
fn carried(program: &Program, inputs: &[Fe], from: usize, forced: Row) -> (Vec<Row>, Fp) {
    let n = program.num_inputs();
    let mut wires: Vec<Fp> = inputs.iter().copied().map(fe_to_fp).collect();
    let mut rows = honest(program, inputs);
    for (row, ins) in program.instrs().iter().enumerate() {
        let get = |wires: &Vec<Fp>, x: Wire| wires[x.index()];
        let (a, b) = match *ins {
            Instr::Const(_) => (Fp::ZERO, Fp::ZERO),
            Instr::Add(x, y) | Instr::Sub(x, y) | Instr::Mul(x, y) | Instr::Div(x, y) => {
                (get(&wires, x), get(&wires, y))
            }
        };
        let k = match *ins {
            Instr::Const(k) => fe_to_fp(k),
            _ => Fp::ZERO,
        };
        let (c, inv) = apply(ins, a, b, k);
        rows[row] = if row == from { forced } else { [a, b, c, inv] };
        wires.push(rows[row][2]);
        debug_assert_eq!(wires.len(), n + row + 1);
    }
    let out = wires[program.output().index()];
    (rows, out)
}

/// Proves `rows` against `keys` for the public `inputs` and claimed `output`.
fn forge(keys: &CircuitKeys, inputs: &[Fe], output: Fp, rows: Vec<Row>) -> Vec<u8> {
    let (params, pk) = keys.proving_parts();
    let mut instance: Vec<Fp> = inputs.iter().copied().map(fe_to_fp).collect();
    instance.push(output);
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

/// The market's verdict on a forged table claiming `output`.
fn verdict(keys: &CircuitKeys, inputs: &[Fe], output: Fp, rows: Vec<Row>) -> bool {
    let proof = forge(keys, inputs, output, rows);
    halo2::verify(keys, inputs, fp_to_fe(output), &proof).is_ok()
}

fn fe(v: u64) -> Fe {
    Fe::from(v)
}

#[test]
fn the_honest_table_forged_by_hand_verifies() {
    let p = arithmetic_example();
    let keys = CircuitKeys::setup(&p).unwrap();
    let inputs = [fe(1), fe(11)];
    let out = fe_to_fp(p.eval(&inputs).unwrap());
    assert!(verdict(&keys, &inputs, out, honest(&p, &inputs)));
    // The same table under a wrong claim, or for other inputs, does not.
    assert!(!verdict(&keys, &inputs, out + Fp::ONE, honest(&p, &inputs)));
    assert!(!verdict(&keys, &[fe(2), fe(11)], out, honest(&p, &inputs)));
}

#[test]
fn forged_tables_are_refused() {
    let p = arithmetic_example();
    let keys = CircuitKeys::setup(&p).unwrap();
    let inputs = [fe(1), fe(11)];
    let good = honest(&p, &inputs);
    let out = fe_to_fp(p.eval(&inputs).unwrap());
    let last = good.len() - 1;

    // A wrong output: the last row's result changed to what the claim says.
    let mut t = good.clone();
    t[last][2] += Fp::ONE;
    assert!(!verdict(&keys, &inputs, out + Fp::ONE, t), "wrong output");

    // A gate broken in the middle (row 0, a + b, made one more) with every row after it
    // computed consistently from the wrong value: a different, "consistent" output.
    let mut forced = good[0];
    forced[2] += Fp::ONE;
    let (t, forged_out) = carried(&p, &inputs, 0, forced);
    assert_ne!(forged_out, out);
    assert!(
        !verdict(&keys, &inputs, forged_out, t),
        "broken add gate carried through"
    );

    // Decoupled operands: row 1 reads `a + b + 1` instead of the copy of row 0's result
    // and computes from it correctly; everything after follows.
    let mut forced = good[1];
    forced[0] += Fp::ONE;
    forced[2] = forced[0] * forced[1];
    let (t, forged_out) = carried(&p, &inputs, 1, forced);
    assert!(
        !verdict(&keys, &inputs, forged_out, t),
        "operand not a copy"
    );

    // An input read as another value (the operand not tied to the instance).
    let mut forced = good[0];
    forced[0] = fe_to_fp(fe(5));
    forced[2] = forced[0] + forced[1];
    let (t, forged_out) = carried(&p, &inputs, 0, forced);
    assert!(
        !verdict(&keys, &inputs, forged_out, t),
        "operand not the input"
    );

    // A constant replaced (row 11 holds 0x1234...; the fixed column says so).
    let mut forced = good[11];
    forced[2] = Fp::ONE;
    let (t, forged_out) = carried(&p, &inputs, 11, forced);
    assert!(!verdict(&keys, &inputs, forged_out, t), "constant replaced");

    // A division with a wrong quotient whose check `c * b = a` is dodged by a wrong
    // inverse.
    let mut forced = good[8];
    forced[2] += Fp::ONE;
    forced[3] = Fp::ZERO;
    let (t, forged_out) = carried(&p, &inputs, 8, forced);
    assert!(!verdict(&keys, &inputs, forged_out, t), "division forged");
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
        let rows = vec![[Fp::ZERO, Fp::ZERO, c, inv]];
        assert!(!verdict(&keys, &inputs, c, rows), "0 / 0 = {c:?}");
    }
    // The harness proves a real division of the same program.
    let inputs = [fe(6), fe(3)];
    let rows = honest(&p, &inputs);
    assert!(verdict(&keys, &inputs, Fp::from(2), rows));
}

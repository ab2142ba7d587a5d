//! The halo2 circuit that proves one run of a straight-line [`Program`].
//!
//! The statement is "`program`, on the public inputs in instance rows `0..num_inputs`,
//! outputs the values in the instance rows after them, in order". Its shape depends only on the
//! program, never on the inputs, so one set of keys (see `prover::halo2`) serves every
//! input.
//!
//! # Layout
//!
//! One row per instruction, instruction `i` on row `i`:
//!
//! | column  | kind     | holds                                               |
//! |---------|----------|-----------------------------------------------------|
//! | `a`     | advice   | left operand (copy of the wire it reads)            |
//! | `b`     | advice   | right operand (copy of the wire it reads)           |
//! | `c`     | advice   | result: the wire the instruction defines            |
//! | `inv`   | advice   | `b^-1` on division rows, `(a - b)^-1` or 0 on `eq`  |
//! | `k`     | fixed    | the constant, on `Const` rows only                  |
//! | `pub`   | instance | inputs, then the outputs                            |
//!
//! Columns `d`, `e` (advice) and `rc1`, `rc2` (fixed) serve the Poseidon gadget only
//! (see `prover::poseidon_chip`): a `Poseidon` instruction takes 111 rows instead of
//! one, and its rows also use `a`, `b`, `c`, `inv` and `k`.
//!
//! A program containing a `Sha256` instruction is laid out in a wider circuit
//! ([`Sha256Layout`]): the same columns, gates and row rules, plus the SHA-256 gadget's
//! 173 advice columns, 2 fixed columns and gates (see `prover::sha256_chip`); a `Sha256`
//! instruction takes 226 rows of those columns (so one call fits a 2^8-row table). Programs without one keep the layout above exactly,
//! so their keys and proofs do not pay for the gadget.
//!
//! Gates, each behind its own selector: `add: a + b = c`, `sub: a - b = c`,
//! `mul: a * b = c`, `div: c * b = a` and `b * inv = 1` (the second makes a zero
//! divisor unprovable, and with `b != 0` the first fixes `c = a / b`), `const: c = k`,
//! `eq: (a - b) * inv = 1 - c` and `(a - b) * c = 0` (if `a != b` the second forces
//! `c = 0`; if `a = b` the first forces `c = 1`: `c` is the bit `a == b` whatever the
//! prover puts in `inv`).
//!
//! Copy constraints (the permutation argument over `a`, `b`, `c` and `pub`) tie every
//! operand cell to the cell that defines its wire: the `c` cell of the defining
//! instruction, or the instance cell of an input. Output `j`'s cell is tied to
//! instance row `num_inputs + j`. Inputs thus need no rows of their own; only an output
//! that *is* an input gets one extra row, a `c` cell copied from that input.
//!
//! All queries are at the current row, so halo2 needs 5 blinding rows plus one
//! (`l_last`) at the bottom of the table: a program fits in `2^k` rows when
//! `max(rows, num_inputs + num_outputs) <= 2^k - 6` ([`min_k`] computes it from the constraint
//! system rather than assuming the 6).

use halo2_proofs::{
    arithmetic::Field as _,
    circuit::{Cell, Layouter, Region, SimpleFloorPlanner, Value},
    pasta::Fp,
    plonk::{Advice, Circuit, Column, ConstraintSystem, Error, Fixed, Instance, Selector},
    poly::Rotation,
};

use super::field::{fe_to_fp, fp_to_fe};
use super::poseidon_chip::{self, ROWS as POSEIDON_ROWS};
use super::sha256_chip::{self, Sha256Config, ROWS as SHA256_ROWS};
use crate::circuit::program::{Fe, Instr, Program, ProgramError, Wire};
use crate::circuit::sha256::lane_u128;

/// The largest `k` (table of `2^k` rows) this module will build keys for. Parameters
/// and keys at `k = 20` already take tens of seconds and hundreds of MiB; a program
/// needing more is refused rather than left to exhaust the machine.
pub const MAX_K: u32 = 20;

/// The columns and selectors of the program circuit.
#[derive(Clone, Debug)]
pub struct ProgramConfig {
    pub(super) a: Column<Advice>,
    pub(super) b: Column<Advice>,
    pub(super) c: Column<Advice>,
    pub(super) inv: Column<Advice>,
    pub(super) d: Column<Advice>,
    pub(super) e: Column<Advice>,
    constant: Column<Fixed>,
    rc1: Column<Fixed>,
    rc2: Column<Fixed>,
    s_poseidon: Selector,
    instance: Column<Instance>,
    s_add: Selector,
    s_sub: Selector,
    s_mul: Selector,
    s_div: Selector,
    s_const: Selector,
    s_eq: Selector,
    /// The SHA-256 gadget's columns and gates, in the [`Sha256Layout`] only.
    pub(super) sha: Option<Sha256Config>,
}

impl ProgramConfig {
    /// Declares the columns, gates and equality-enabled columns (see the module docs).
    pub fn configure(meta: &mut ConstraintSystem<Fp>) -> Self {
        Self::configure_layout(meta, false)
    }

    /// [`ProgramConfig::configure`], then the SHA-256 gadget's columns and gates: the
    /// layout of programs that contain a `Sha256` instruction.
    pub fn configure_sha256(meta: &mut ConstraintSystem<Fp>) -> Self {
        Self::configure_layout(meta, true)
    }

    fn configure_layout(meta: &mut ConstraintSystem<Fp>, with_sha256: bool) -> Self {
        let a = meta.advice_column();
        let b = meta.advice_column();
        let c = meta.advice_column();
        // `inv` takes part in no copy constraint, so it stays out of the permutation.
        let inv = meta.advice_column();
        let d = meta.advice_column();
        let e = meta.advice_column();
        let constant = meta.fixed_column();
        let rc1 = meta.fixed_column();
        let rc2 = meta.fixed_column();
        let instance = meta.instance_column();
        meta.enable_equality(a);
        meta.enable_equality(b);
        meta.enable_equality(c);
        meta.enable_equality(instance);

        let s_add = meta.selector();
        let s_sub = meta.selector();
        let s_mul = meta.selector();
        let s_div = meta.selector();
        let s_const = meta.selector();
        let s_eq = meta.selector();
        let s_poseidon = meta.selector();
        poseidon_chip::configure(
            meta,
            [a, b, c],
            [inv, d, e],
            [constant, rc1, rc2],
            s_poseidon,
        );

        // One gate per operation, so a row only requires the cells its own operation
        // reads to be assigned (MockProver checks that).
        meta.create_gate("add", |m| {
            let s = m.query_selector(s_add);
            let (a, b, c) = (
                m.query_advice(a, Rotation::cur()),
                m.query_advice(b, Rotation::cur()),
                m.query_advice(c, Rotation::cur()),
            );
            vec![s * (a + b - c)]
        });
        meta.create_gate("sub", |m| {
            let s = m.query_selector(s_sub);
            let (a, b, c) = (
                m.query_advice(a, Rotation::cur()),
                m.query_advice(b, Rotation::cur()),
                m.query_advice(c, Rotation::cur()),
            );
            vec![s * (a - b - c)]
        });
        meta.create_gate("mul", |m| {
            let s = m.query_selector(s_mul);
            let (a, b, c) = (
                m.query_advice(a, Rotation::cur()),
                m.query_advice(b, Rotation::cur()),
                m.query_advice(c, Rotation::cur()),
            );
            vec![s * (a * b - c)]
        });
        meta.create_gate("div", |m| {
            let s = m.query_selector(s_div);
            let (a, b, c, inv) = (
                m.query_advice(a, Rotation::cur()),
                m.query_advice(b, Rotation::cur()),
                m.query_advice(c, Rotation::cur()),
                m.query_advice(inv, Rotation::cur()),
            );
            let one = halo2_proofs::plonk::Expression::Constant(Fp::ONE);
            vec![s.clone() * (c * b.clone() - a), s * (b * inv - one)]
        });
        meta.create_gate("eq", |m| {
            let s = m.query_selector(s_eq);
            let (a, b, c, inv) = (
                m.query_advice(a, Rotation::cur()),
                m.query_advice(b, Rotation::cur()),
                m.query_advice(c, Rotation::cur()),
                m.query_advice(inv, Rotation::cur()),
            );
            let one = halo2_proofs::plonk::Expression::Constant(Fp::ONE);
            let diff = a - b;
            vec![
                s.clone() * (diff.clone() * inv - one + c.clone()),
                s * (diff * c),
            ]
        });
        meta.create_gate("const", |m| {
            let s = m.query_selector(s_const);
            let c = m.query_advice(c, Rotation::cur());
            let k = m.query_fixed(constant);
            vec![s * (c - k)]
        });

        // Declared last, so the plain layout's columns keep their indices.
        let sha = with_sha256.then(|| Sha256Config::configure(meta, constant, rc1));

        ProgramConfig {
            sha,
            a,
            b,
            c,
            inv,
            d,
            e,
            constant,
            rc1,
            rc2,
            s_poseidon,
            instance,
            s_add,
            s_sub,
            s_mul,
            s_div,
            s_const,
            s_eq,
        }
    }
}

/// A [`Program`] as a halo2 circuit, with or without a witness (the value of every wire).
///
/// Without a witness it describes only the circuit's shape, which is what key
/// generation needs; with one it can be proved.
#[derive(Clone, Debug)]
pub struct ProgramCircuit<'p> {
    program: &'p Program,
    /// Every wire's value, in wire order (`program.num_wires()` entries), if known.
    wires: Option<Vec<Fp>>,
}

impl<'p> ProgramCircuit<'p> {
    /// The circuit's shape only, for key generation.
    pub fn without_witness(program: &'p Program) -> Self {
        ProgramCircuit {
            program,
            wires: None,
        }
    }

    /// Evaluates `program` on `inputs` and keeps every wire's value as the witness.
    /// Fails, before any proving work, on a wrong number of inputs or a division by zero.
    pub fn with_inputs(program: &'p Program, inputs: &[Fe]) -> Result<Self, ProgramError> {
        let wires = program.eval_wires(inputs)?;
        Ok(ProgramCircuit {
            program,
            wires: Some(wires.into_iter().map(fe_to_fp).collect()),
        })
    }

    /// The public instance column for this witness: the inputs, then the outputs.
    /// `None` without a witness.
    pub fn instance(&self) -> Option<Vec<Fp>> {
        let wires = self.wires.as_ref()?;
        let n = self.program.num_inputs();
        let mut inst = wires.get(..n)?.to_vec();
        inst.extend(self.outputs()?);
        Some(inst)
    }

    /// The program's output values, in order, if the witness is known.
    pub fn outputs(&self) -> Option<Vec<Fp>> {
        let wires = self.wires.as_ref()?;
        self.program
            .outputs()
            .iter()
            .map(|o| wires.get(o.index()).copied())
            .collect()
    }

    fn value(&self, w: Wire) -> Value<Fp> {
        match self.wires.as_ref().and_then(|ws| ws.get(w.index())) {
            Some(v) => Value::known(*v),
            None => Value::unknown(),
        }
    }
}

/// What assigning the program gives: the operand cells that read an input (with the
/// input's index), and the output wires' cells in order.
type Assigned = (Vec<(Cell, usize)>, Vec<Cell>);

/// Where an operand cell must be tied to: an input's instance row, or a defining cell.
enum Source {
    Input(usize),
    Cell(Cell),
}

/// Table rows the program's own assignments occupy (see the module docs).
pub fn rows_needed(program: &Program) -> usize {
    program
        .instrs()
        .iter()
        .map(instr_rows)
        .fold(0usize, usize::saturating_add)
        .saturating_add(output_inputs(program))
}

/// Table rows one instruction occupies.
pub fn instr_rows(ins: &Instr) -> usize {
    match ins {
        Instr::Poseidon(_) => POSEIDON_ROWS,
        Instr::Sha256(_) => SHA256_ROWS,
        _ => 1,
    }
}

/// Outputs that are inputs: each takes a row of its own.
fn output_inputs(program: &Program) -> usize {
    let n = program.num_inputs();
    program.outputs().iter().filter(|o| o.index() < n).count()
}

/// Rows that must be usable (above the blinding rows): the program's rows, and the
/// instance column's `num_inputs + num_outputs` entries, whichever is larger.
pub fn usable_rows_needed(program: &Program) -> usize {
    rows_needed(program).max(program.num_inputs().saturating_add(program.outputs().len()))
}

/// Whether `program` needs the [`Sha256Layout`] (it contains a `Sha256` instruction).
pub fn uses_sha256(program: &Program) -> bool {
    program
        .instrs()
        .iter()
        .any(|i| matches!(i, Instr::Sha256(_)))
}

/// The constraint system of the circuit (independent of the program). The
/// [`Sha256Layout`] has the same number of blinding rows (a test checks it), so
/// [`usable_rows`] holds for both layouts.
fn constraint_system() -> ConstraintSystem<Fp> {
    let mut cs = ConstraintSystem::default();
    ProgramConfig::configure(&mut cs);
    cs
}

/// The number of usable rows of a `2^k`-row table: halo2 reserves the last
/// `blinding_factors + 1` rows. `None` if the table is below halo2's minimum size.
pub fn usable_rows(k: u32) -> Option<usize> {
    let cs = constraint_system();
    let n = 1usize.checked_shl(k)?;
    if n < cs.minimum_rows() {
        return None;
    }
    n.checked_sub(cs.blinding_factors() + 1)
}

/// The smallest table any program gets: `2^MIN_K` rows. At `k = 3` the Poseidon gate's
/// rotation `+2` and the permutation argument's last-row rotation `-6` name the same
/// point, which shortens the proof by one evaluation; from `k = 4` on every program's
/// proof has the same shape, so its length is `base + 64 k` (see `halo2::proof_len`).
pub const MIN_K: u32 = 4;

/// The smallest `k` whose table fits the program, or `Err(rows)` (the usable rows it
/// needs) if even `2^MAX_K` rows are too few.
pub fn min_k(program: &Program) -> Result<u32, usize> {
    let need = usable_rows_needed(program);
    (MIN_K..=MAX_K)
        .find(|&k| usable_rows(k).is_some_and(|usable| usable >= need))
        .ok_or(need)
}

impl ProgramCircuit<'_> {
    /// Assigns an operand cell with `w`'s value and reports what it must equal.
    fn operand(
        &self,
        region: &mut Region<'_, Fp>,
        column: Column<Advice>,
        row: usize,
        w: Wire,
        defined: &[Option<Cell>],
    ) -> Result<(Cell, Source), Error> {
        let cell = region.assign_advice(|| "operand", column, row, || self.value(w))?;
        let source = if w.index() < self.program.num_inputs() {
            Source::Input(w.index())
        } else {
            // Program::new guarantees the wire is defined before it is read.
            Source::Cell(
                defined
                    .get(w.index())
                    .copied()
                    .flatten()
                    .ok_or(Error::Synthesis)?,
            )
        };
        Ok((cell.cell(), source))
    }

    /// Assigns one permutation from `row` on (see `prover::poseidon_chip`): its first
    /// state row copies `state`'s wires, its last row defines wires `out..out + 3`.
    #[allow(clippy::too_many_arguments)]
    fn assign_poseidon(
        &self,
        config: &ProgramConfig,
        region: &mut Region<'_, Fp>,
        row: usize,
        state: [Wire; 3],
        out: Wire,
        defined: &mut [Option<Cell>],
        input_uses: &mut Vec<(Cell, usize)>,
    ) -> Result<(), Error> {
        let values = Value::from_iter(state.map(|w| self.value(w)))
            .map(|v: Vec<Fp>| poseidon_chip::trace([v[0], v[1], v[2]]));
        let columns = [config.a, config.b, config.c, config.inv, config.d, config.e];
        for r in 0..POSEIDON_ROWS {
            let at = row + r;
            if r % 2 == 0 && r + 1 < POSEIDON_ROWS {
                config.s_poseidon.enable(region, at)?;
                let rc = poseidon_chip::round_constants_fp(r / 2);
                for (col, v) in [config.constant, config.rc1, config.rc2]
                    .into_iter()
                    .zip(rc)
                {
                    region.assign_fixed(|| "round constant", col, at, || Value::known(v))?;
                }
            }
            let last = r + 1 == POSEIDON_ROWS;
            let used = if last { 3 } else { 6 };
            for (i, col) in columns.into_iter().enumerate().take(used) {
                let v = values.as_ref().map(|t| t[r][i]);
                let cell = region.assign_advice(|| "poseidon", col, at, || v)?.cell();
                if r == 0 && i < 3 {
                    let w = state[i];
                    if w.index() < self.program.num_inputs() {
                        input_uses.push((cell, w.index()));
                    } else {
                        let def = defined
                            .get(w.index())
                            .copied()
                            .flatten()
                            .ok_or(Error::Synthesis)?;
                        region.constrain_equal(cell, def)?;
                    }
                }
                if last {
                    if let Some(slot) = defined.get_mut(out.index() + i) {
                        *slot = Some(cell);
                    }
                }
            }
        }
        Ok(())
    }

    /// Assigns one SHA-256 call from `row` on (see `prover::sha256_chip`): its lane rows'
    /// `p6` cells copy `lanes`' wires, its output rows' `p6` cells define wires
    /// `out` and `out + 1`.
    #[allow(clippy::too_many_arguments)]
    fn assign_sha256(
        &self,
        config: &Sha256Config,
        region: &mut Region<'_, Fp>,
        row: usize,
        lanes: [Wire; 4],
        out: Wire,
        defined: &mut [Option<Cell>],
        input_uses: &mut Vec<(Cell, usize)>,
    ) -> Result<(), Error> {
        // The program's evaluation has already refused a lane of 2^128 or more.
        let values = Value::from_iter(lanes.map(|w| self.value(w))).map(|v: Vec<Fp>| {
            let lanes: Option<Vec<u128>> = v.into_iter().map(|x| lane_u128(fp_to_fe(x))).collect();
            lanes.map(|l| sha256_chip::trace([l[0], l[1], l[2], l[3]]).0)
        });
        let mut bad_lane = false;
        let values = values.map(|t| {
            bad_lane = t.is_none();
            t.unwrap_or_default()
        });
        if bad_lane {
            return Err(Error::Synthesis);
        }
        let plan = sha256_chip::plan();
        let mut copied: Vec<[Option<Cell>; sha256_chip::COPIED.len()]> =
            vec![[None; sha256_chip::COPIED.len()]; SHA256_ROWS];
        for (r, p) in plan.iter().enumerate() {
            let at = row + r;
            for (on, s) in [
                (p.pack, config.s_pack),
                (p.round, config.s_round),
                (p.sched, config.s_sched),
                (p.iv, config.s_iv),
                (p.ff, config.s_ff),
                (p.combine, config.s_combine),
            ] {
                if on {
                    s.enable(region, at)?;
                }
            }
            for (on, v, col) in [
                (p.iv, p.iv_a, config.iv_a),
                (p.iv, p.iv_e, config.iv_e),
                (p.round, p.kc, config.kc),
                (p.round, p.qc, config.qc),
            ] {
                if on {
                    region.assign_fixed(
                        || "sha256 constant",
                        col,
                        at,
                        || Value::known(Fp::from(u64::from(v))),
                    )?;
                }
            }
            for (i, &col) in config.cols.iter().enumerate() {
                let v = values
                    .as_ref()
                    .map(|t| t.get(r).map_or(Fp::ZERO, |cells| cells[i]));
                let cell = region.assign_advice(|| "sha256", col, at, || v)?.cell();
                if let Some(slot) = sha256_chip::COPIED.iter().position(|&c| c == i) {
                    copied[r][slot] = Some(cell);
                }
            }
        }
        let cell = |r: usize, col: usize| -> Result<Cell, Error> {
            let slot = sha256_chip::COPIED
                .iter()
                .position(|&c| c == col)
                .ok_or(Error::Synthesis)?;
            copied
                .get(r)
                .and_then(|cells| cells[slot])
                .ok_or(Error::Synthesis)
        };
        for ((r1, c1), (r2, c2)) in sha256_chip::copies() {
            region.constrain_equal(cell(r1, c1)?, cell(r2, c2)?)?;
        }
        for (j, w) in lanes.into_iter().enumerate() {
            let lane = cell(sha256_chip::IN + j, sha256_chip::P6)?;
            if w.index() < self.program.num_inputs() {
                input_uses.push((lane, w.index()));
            } else {
                let def = defined
                    .get(w.index())
                    .copied()
                    .flatten()
                    .ok_or(Error::Synthesis)?;
                region.constrain_equal(lane, def)?;
            }
        }
        for i in 0..2 {
            let c = cell(sha256_chip::OUT + i, sha256_chip::P6)?;
            if let Some(slot) = defined.get_mut(out.index() + i) {
                *slot = Some(c);
            }
        }
        Ok(())
    }

    /// Assigns the whole program as one region. Returns the operand cells that read an
    /// input (to be tied to the instance column) and the output wires' cells, in order.
    fn assign_program(
        &self,
        config: &ProgramConfig,
        region: &mut Region<'_, Fp>,
    ) -> Result<Assigned, Error> {
        let prog = self.program;
        let n_in = prog.num_inputs();
        // defined[w]: the cell holding wire w (None for inputs, which live in `pub`).
        let mut defined: Vec<Option<Cell>> = vec![None; prog.num_wires()];
        let mut input_uses = Vec::new();

        let mut row = 0usize;
        let mut out = Wire(n_in as u32);
        for ins in prog.instrs() {
            let (selector, operands) = match *ins {
                Instr::Poseidon(state) => {
                    self.assign_poseidon(
                        config,
                        region,
                        row,
                        state,
                        out,
                        &mut defined,
                        &mut input_uses,
                    )?;
                    row += POSEIDON_ROWS;
                    out = Wire(out.0 + 3);
                    continue;
                }
                Instr::Sha256(lanes) => {
                    // Only the Sha256Layout has the gadget.
                    let sha = config.sha.as_ref().ok_or(Error::Synthesis)?;
                    self.assign_sha256(
                        sha,
                        region,
                        row,
                        lanes,
                        out,
                        &mut defined,
                        &mut input_uses,
                    )?;
                    row += SHA256_ROWS;
                    out = Wire(out.0 + 2);
                    continue;
                }
                Instr::Const(k) => {
                    region.assign_fixed(
                        || "k",
                        config.constant,
                        row,
                        || Value::known(fe_to_fp(k)),
                    )?;
                    (config.s_const, None)
                }
                Instr::Add(x, y) => (config.s_add, Some((x, y))),
                Instr::Sub(x, y) => (config.s_sub, Some((x, y))),
                Instr::Mul(x, y) => (config.s_mul, Some((x, y))),
                Instr::Div(x, y) => {
                    // Zero for a zero divisor: then `b * inv = 1` fails, as it must.
                    let inv = self
                        .value(y)
                        .map(|v| Option::<Fp>::from(v.invert()).unwrap_or(Fp::ZERO));
                    region.assign_advice(|| "inv", config.inv, row, || inv)?;
                    (config.s_div, Some((x, y)))
                }
                Instr::Eq(x, y) => {
                    // `(a - b)^-1`, or 0 when they are equal (any value would do then).
                    let inv = self
                        .value(x)
                        .zip(self.value(y))
                        .map(|(a, b)| Option::<Fp>::from((a - b).invert()).unwrap_or(Fp::ZERO));
                    region.assign_advice(|| "inv", config.inv, row, || inv)?;
                    (config.s_eq, Some((x, y)))
                }
            };
            selector.enable(region, row)?;
            if let Some((x, y)) = operands {
                for (w, column) in [(x, config.a), (y, config.b)] {
                    let (cell, source) = self.operand(region, column, row, w, &defined)?;
                    match source {
                        Source::Input(i) => input_uses.push((cell, i)),
                        Source::Cell(def) => region.constrain_equal(cell, def)?,
                    }
                }
            }
            let c = region.assign_advice(|| "result", config.c, row, || self.value(out))?;
            if let Some(slot) = defined.get_mut(out.index()) {
                *slot = Some(c.cell());
            }
            row += 1;
            out = Wire(out.0 + 1);
        }

        let mut extra_row = row;
        let mut output_cells = Vec::with_capacity(prog.outputs().len());
        for output in prog.outputs() {
            let cell = if output.index() < n_in {
                // The output is an input: give it a cell, copied from its instance row.
                let cell = region.assign_advice_from_instance(
                    || "output (an input)",
                    config.instance,
                    output.index(),
                    config.c,
                    extra_row,
                )?;
                extra_row += 1;
                cell.cell()
            } else {
                defined
                    .get(output.index())
                    .copied()
                    .flatten()
                    .ok_or(Error::Synthesis)?
            };
            output_cells.push(cell);
        }
        Ok((input_uses, output_cells))
    }
}

impl Circuit<Fp> for ProgramCircuit<'_> {
    type Config = ProgramConfig;
    type FloorPlanner = SimpleFloorPlanner;

    fn without_witnesses(&self) -> Self {
        ProgramCircuit::without_witness(self.program)
    }

    fn configure(meta: &mut ConstraintSystem<Fp>) -> Self::Config {
        ProgramConfig::configure(meta)
    }

    fn synthesize(&self, config: ProgramConfig, layouter: impl Layouter<Fp>) -> Result<(), Error> {
        self.synthesize_program(config, layouter)
    }
}

/// A [`ProgramCircuit`] in the wider layout with the SHA-256 gadget
/// ([`ProgramConfig::configure_sha256`]): the circuit of every program that contains a
/// `Sha256` instruction ([`uses_sha256`]), and of no other.
#[derive(Clone, Debug)]
pub struct Sha256Layout<'p>(pub ProgramCircuit<'p>);

impl Circuit<Fp> for Sha256Layout<'_> {
    type Config = ProgramConfig;
    type FloorPlanner = SimpleFloorPlanner;

    fn without_witnesses(&self) -> Self {
        Sha256Layout(ProgramCircuit::without_witness(self.0.program))
    }

    fn configure(meta: &mut ConstraintSystem<Fp>) -> Self::Config {
        ProgramConfig::configure_sha256(meta)
    }

    fn synthesize(&self, config: ProgramConfig, layouter: impl Layouter<Fp>) -> Result<(), Error> {
        self.0.synthesize_program(config, layouter)
    }
}

impl ProgramCircuit<'_> {
    fn synthesize_program(
        &self,
        config: ProgramConfig,
        mut layouter: impl Layouter<Fp>,
    ) -> Result<(), Error> {
        if let Some(w) = &self.wires {
            if w.len() != self.program.num_wires() {
                return Err(Error::Synthesis);
            }
        }
        // A single region: the program is one straight line of rows, and cross-row
        // wiring is all done with copy constraints, so there is nothing to floor-plan.
        let (input_uses, output_cells) = layouter.assign_region(
            || "program",
            |mut region| self.assign_program(&config, &mut region),
        )?;
        for (cell, i) in input_uses {
            layouter.constrain_instance(cell, config.instance, i)?;
        }
        let n = self.program.num_inputs();
        for (j, cell) in output_cells.into_iter().enumerate() {
            layouter.constrain_instance(cell, config.instance, n + j)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prover::test_programs::*;
    use halo2_proofs::dev::MockProver;

    fn mock(program: &Program, inputs: &[Fe]) -> (MockProver<Fp>, Vec<Fp>) {
        let circuit = ProgramCircuit::with_inputs(program, inputs).unwrap();
        let instance = circuit.instance().unwrap();
        let k = min_k(program).unwrap();
        let prover = MockProver::run(k, &circuit, vec![instance.clone()]).unwrap();
        (prover, instance)
    }

    fn assert_mock_ok(program: &Program, inputs: &[Fe]) {
        let (prover, instance) = mock(program, inputs);
        prover.assert_satisfied();
        // The same witness against a wrong output must fail.
        let mut wrong = instance;
        let last = wrong.len() - 1;
        wrong[last] += Fp::ONE;
        let circuit = ProgramCircuit::with_inputs(program, inputs).unwrap();
        let k = min_k(program).unwrap();
        let bad = MockProver::run(k, &circuit, vec![wrong]).unwrap();
        assert!(
            bad.verify().is_err(),
            "a wrong output must not satisfy the circuit"
        );
    }

    #[test]
    fn blinding_rows_are_six() {
        // The layout docs promise 2^k - 6 usable rows; keep them honest.
        assert_eq!(usable_rows(5), Some(26));
        assert_eq!(usable_rows(3), Some(2));
        assert_eq!(usable_rows(2), None);
    }

    #[test]
    fn arithmetic_example_is_satisfied() {
        let p = arithmetic_example();
        let inputs = [Fe::from(1u64), Fe::from(11u64)];
        assert_eq!(
            p.eval(&inputs).unwrap(),
            vec![arithmetic_example_expected()]
        );
        assert_eq!(min_k(&p), Ok(5));
        assert_mock_ok(&p, &inputs);
        assert_mock_ok(&p, &[Fe::from(7u64), -Fe::from(3u64)]);
    }

    #[test]
    fn const_sub_div_programs_are_satisfied() {
        // (x0 - 5) / (x1 - x0), and a program with only constants.
        let p = Program::new(
            2,
            vec![
                Instr::Const(Fe::from(5u64)),
                Instr::Sub(Wire(0), Wire(2)),
                Instr::Sub(Wire(1), Wire(0)),
                Instr::Div(Wire(3), Wire(4)),
            ],
            Wire(5),
        )
        .unwrap();
        assert_mock_ok(&p, &[Fe::from(9u64), Fe::from(2u64)]);
        let consts = Program::new(
            0,
            vec![
                Instr::Const(Fe::from(3u64)),
                Instr::Const(-Fe::from(1u64)),
                Instr::Div(Wire(0), Wire(1)),
            ],
            Wire(2),
        )
        .unwrap();
        assert_mock_ok(&consts, &[]);
        // The same wire twice as both operands, and the output an input.
        let sq = Program::new(1, vec![Instr::Mul(Wire(0), Wire(0))], Wire(1)).unwrap();
        assert_mock_ok(&sq, &[Fe::from(12u64)]);
        let identity = Program::new(2, vec![], Wire(1)).unwrap();
        assert_mock_ok(&identity, &[Fe::from(4u64), Fe::from(8u64)]);
        let early = Program::new(1, vec![Instr::Add(Wire(0), Wire(0))], Wire(0)).unwrap();
        assert_mock_ok(&early, &[Fe::from(4u64)]);
    }

    #[test]
    fn poseidon_programs_are_satisfied() {
        // The permutation of (x0, x0 * x1, x2), all three lanes out, plus a lane reused.
        let p = Program::with_outputs(
            3,
            vec![
                Instr::Mul(Wire(0), Wire(1)),
                Instr::Poseidon([Wire(0), Wire(3), Wire(2)]),
                Instr::Add(Wire(5), Wire(0)),
            ],
            vec![Wire(4), Wire(5), Wire(6), Wire(7)],
        )
        .unwrap();
        assert_eq!(rows_needed(&p), 1 + POSEIDON_ROWS + 1);
        assert_mock_ok(&p, &[Fe::from(3u64), Fe::from(5u64), Fe::from(7u64)]);
        // A permutation of inputs only, with an input also an output.
        let q = Program::with_outputs(
            3,
            vec![Instr::Poseidon([Wire(2), Wire(1), Wire(0)])],
            vec![Wire(0), Wire(3)],
        )
        .unwrap();
        assert_mock_ok(&q, &[Fe::from(1u64), Fe::from(2u64), Fe::from(3u64)]);
    }

    fn mock_sha(program: &Program, inputs: &[Fe]) -> (MockProver<Fp>, Vec<Fp>) {
        let circuit = Sha256Layout(ProgramCircuit::with_inputs(program, inputs).unwrap());
        let instance = circuit.0.instance().unwrap();
        let k = min_k(program).unwrap();
        let prover = MockProver::run(k, &circuit, vec![instance.clone()]).unwrap();
        (prover, instance)
    }

    #[test]
    fn sha256_programs_are_satisfied() {
        use crate::circuit::sha256::sha256_blocks;
        use rand::Rng as _;
        // sha256(x0, x1, x0 * x1, x2), fed by inputs and an arithmetic row, both halves
        // out and the second reused.
        let p = Program::with_outputs(
            3,
            vec![
                Instr::Mul(Wire(0), Wire(1)),
                Instr::Sha256([Wire(0), Wire(1), Wire(3), Wire(2)]),
                Instr::Add(Wire(5), Wire(0)),
            ],
            vec![Wire(4), Wire(5), Wire(6)],
        )
        .unwrap();
        assert!(uses_sha256(&p));
        assert_eq!(rows_needed(&p), 1 + SHA256_ROWS + 1);
        assert_eq!(min_k(&p), Ok(8));
        let mut rng = rand::thread_rng();
        for i in 0..3 {
            let x: [u64; 2] = rng.gen();
            let x2: u128 = if i == 0 { u128::MAX } else { rng.gen() };
            let inputs = [Fe::from(x[0]), Fe::from(x[1]), Fe::from(x2)];
            let (prover, instance) = mock_sha(&p, &inputs);
            prover.assert_satisfied();
            let h =
                sha256_blocks([inputs[0], inputs[1], inputs[0] * inputs[1], inputs[2]]).unwrap();
            assert_eq!(&instance[3..5], &h.map(fe_to_fp));
            // A wrong half of the digest is not satisfied.
            for j in [3, 4] {
                let mut wrong = instance.clone();
                wrong[j] += Fp::ONE;
                let circuit = Sha256Layout(ProgramCircuit::with_inputs(&p, &inputs).unwrap());
                let bad = MockProver::run(min_k(&p).unwrap(), &circuit, vec![wrong]).unwrap();
                assert!(bad.verify().is_err(), "wrong output {j}");
            }
        }
        // Two calls, one on the other's output: the gadget's rows follow each other.
        let q = Program::with_outputs(
            2,
            vec![
                Instr::Sha256([Wire(0), Wire(1), Wire(0), Wire(1)]),
                Instr::Sha256([Wire(2), Wire(3), Wire(1), Wire(0)]),
            ],
            vec![Wire(4), Wire(5)],
        )
        .unwrap();
        let (prover, _) = mock_sha(&q, &[Fe::from(1u64), Fe::from(2u64)]);
        prover.assert_satisfied();
        // The plain layout has no gadget: such a program cannot be laid out in it.
        let circuit = ProgramCircuit::with_inputs(&q, &[Fe::from(1u64), Fe::from(2u64)]).unwrap();
        let inst = circuit.instance().unwrap();
        assert!(MockProver::run(min_k(&q).unwrap(), &circuit, vec![inst]).is_err());
    }

    #[test]
    fn the_sha256_layout_keeps_degree_and_blinding() {
        let plain = constraint_system();
        let mut wide = ConstraintSystem::<Fp>::default();
        ProgramConfig::configure_sha256(&mut wide);
        assert_eq!(plain.degree(), 3);
        assert_eq!(wide.degree(), 3, "the gadget must not raise the degree");
        assert_eq!(wide.blinding_factors(), plain.blinding_factors());
        assert_eq!(wide.minimum_rows(), plain.minimum_rows());
    }

    #[test]
    fn wrong_input_is_not_satisfied() {
        let p = arithmetic_example();
        let (_, mut instance) = mock(&p, &[Fe::from(1u64), Fe::from(11u64)]);
        instance[0] += Fp::ONE;
        let circuit = ProgramCircuit::with_inputs(&p, &[Fe::from(1u64), Fe::from(11u64)]).unwrap();
        let prover = MockProver::run(5, &circuit, vec![instance]).unwrap();
        assert!(prover.verify().is_err());
    }

    #[test]
    fn forged_witnesses_are_not_satisfied() {
        // A cheating witness: claim x / 0 = anything by assigning inv freely is
        // impossible since b * inv = 1 has no solution for b = 0. Build the witness by
        // hand (bypassing eval) with a zero divisor and an arbitrary quotient.
        let p = Program::new(
            1,
            vec![Instr::Sub(Wire(0), Wire(0)), Instr::Div(Wire(0), Wire(1))],
            Wire(2),
        )
        .unwrap();
        let x = Fp::from(5u64);
        for q in [Fp::ZERO, Fp::ONE, Fp::from(77u64)] {
            let circuit = ProgramCircuit {
                program: &p,
                wires: Some(vec![x, Fp::ZERO, q]),
            };
            let prover = MockProver::run(min_k(&p).unwrap(), &circuit, vec![vec![x, q]]).unwrap();
            assert!(prover.verify().is_err());
        }
        // A wrong intermediate value breaks its gate even if the output is "right".
        let p = arithmetic_example();
        let inputs = [Fe::from(1u64), Fe::from(11u64)];
        let honest = ProgramCircuit::with_inputs(&p, &inputs).unwrap();
        let mut wires = honest.wires.clone().unwrap();
        wires[4] += Fp::ONE;
        let forged = ProgramCircuit {
            program: &p,
            wires: Some(wires),
        };
        let prover = MockProver::run(5, &forged, vec![honest.instance().unwrap()]).unwrap();
        assert!(prover.verify().is_err());
    }

    #[test]
    fn k_boundary() {
        // Usable rows at k: 2^k - 6. A chain of r multiplications needs r rows.
        for (r, k) in [(1, 4), (2, 4), (3, 4), (10, 4), (11, 5), (26, 5), (27, 6)] {
            let p = mul_chain(r);
            assert_eq!(min_k(&p), Ok(k), "{r} rows");
            let (prover, _) = mock(&p, &[Fe::from(3u64)]);
            prover.assert_satisfied();
            // One k smaller does not fit (below MIN_K it might: MIN_K is a floor).
            if k > MIN_K {
                let circuit = ProgramCircuit::with_inputs(&p, &[Fe::from(3u64)]).unwrap();
                let inst = circuit.instance().unwrap();
                assert!(
                    MockProver::run(k - 1, &circuit, vec![inst]).is_err(),
                    "{r} rows at k-1"
                );
            }
        }
        // The instance column also has to fit: many inputs, one instruction.
        let p = Program::new(10, vec![Instr::Add(Wire(0), Wire(9))], Wire(10)).unwrap();
        assert_eq!(min_k(&p), Ok(5)); // 11 instance rows > 10 usable at k = 4
        let inputs: Vec<Fe> = (0..10u64).map(Fe::from).collect();
        let (prover, _) = mock(&p, &inputs);
        prover.assert_satisfied();
    }

    #[test]
    fn too_large_is_reported() {
        // The check is pure arithmetic; no need to build the program's rows.
        let need = usable_rows(MAX_K).unwrap() + 1;
        let p = Program::new(need - 1, vec![], Wire(0)).unwrap();
        assert_eq!(min_k(&p), Err(need));
        let p = Program::new(need - 2, vec![], Wire(0)).unwrap();
        assert_eq!(min_k(&p), Ok(MAX_K));
    }
}

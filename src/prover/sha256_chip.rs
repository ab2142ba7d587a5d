//! The SHA-256 gadget: zkLLVM's `sha2_256` builtin ([`crate::circuit::sha256`]) as
//! custom gates, in a wider circuit layout used only by programs that contain
//! [`Instr::Sha256`](crate::circuit::program::Instr::Sha256).
//!
//! Every 32-bit word lives in one row as its 32 bit cells (each constrained boolean) and
//! a packed cell equal to `Σ 2^i bit_i`, so a packed word is always below `2^32`.
//! Bitwise functions are constraints on bits: a three-way XOR `x ⊕ y ⊕ z` has a boolean
//! helper `hi` with `x + y + z - 2 hi ∈ {0, 1}` (that difference is the XOR, `hi` the
//! majority, which is also how `Maj` is computed), and `Ch(e, f, g) = e f + g - e g`
//! per bit. An addition mod `2^32` is `sum = word + 2^32 carry` with the carry in three
//! boolean cells and the word range-checked by its bits: the sums are below `2^35`,
//! far from the field's modulus, so that equation holds over the integers and fixes
//! the word. No constraint has degree above 3 (selector included) and there is no
//! lookup, so the quotient polynomial stays as small as in the plain layout; every
//! advice column is queried at no more than three rotations, so halo2 keeps the same
//! number of blinding rows.
//!
//! # Columns
//!
//! [`WIDTH`] = 173 advice columns of the gadget's own, on top of the program circuit's
//! six: `a` bits (32), `e` bits (32), `s0` (32 helpers for `Σ0`, or `σ0` in the
//! message schedule), `s1` (32 helpers for `Σ1` or `σ1`), `maj` (32), `apk`, `epk`
//! (the packed words of the bit groups), `p2..p6` (words copied in and out), `ca`,
//! `ce` (3 carry bits each). `apk`, `epk` and `p2..p6` take part in copy constraints.
//! Two fixed columns of its own, `kc` and `qc`, hold the round constants, and the program
//! circuit's fixed columns `k` and `rc1` the initial state (halo2 0.4 queries fixed
//! columns at the current row only, so a round's constants sit on its gate's row).
//!
//! # Rows
//!
//! One call takes [`ROWS`] = 226 rows, relative to its first row:
//!
//! | rows      | what                                                              |
//! |-----------|-------------------------------------------------------------------|
//! | 0..4      | lane `j`: `p6 = 2^96 p2 + 2^64 p3 + 2^32 p4 + p5` (`combine`)     |
//! | 4..12     | the 16 message words range-checked, two per row (`pack`)         |
//! | 12..60    | schedule `W_16..W_63`: `p4 = σ1(apk) + p2 + σ0(epk) + p3 mod 2^32`|
//! | 60..84    | `W_16..W_63` range-checked, two per row                          |
//! | 84..152   | first compression: 4 initial-state rows (`iv`), 64 round rows    |
//! | 152..220  | second compression: 4 feed-forward rows (`ff`), 64 round rows    |
//! | 220..224  | feed-forward of the second compression (`ff`)                    |
//! | 224..226  | the two outputs: `p6 = 2^96 p2 + 2^64 p3 + 2^32 p4 + p5`          |
//!
//! A compression's row `j` (`j < 4`) holds `A_{j-4}` in `apk` and `E_{j-4}` in `epk`
//! (the initial state: `A_{-1-i} = H_i`, `E_{-1-i} = H_{4+i}`), row `4 + t` holds round
//! `t`'s new words `A_t` and `E_t` with that round's helpers (`s0`, `s1`, `maj`,
//! carries, `W_t` in `p2`). The round gate sits on the row of
//! `A_{t-1}`: `a, b, c` and `e, f, g` are the bits at rotations `0, -1, -2`, `d` and `h`
//! the packed words at `-3`, the new words and the helpers at `+1`, the fixed `kc`, `qc`
//! at `0`:
//!
//! `A_t + 2^32 ca = h + Σ1(e) + Ch(e, f, g) + kc + qc W_t + Σ0(a) + Maj(a, b, c)`,
//! `E_t + 2^32 ce = d + h + Σ1(e) + Ch(e, f, g) + kc + qc W_t`,
//!
//! with `kc = K_t` and `qc = 1` in the first compression, and
//! `kc = K_t + W'_t mod 2^32`, `qc = 0` in the second (the padding block's schedule `W'` is
//! constant). The feed-forward rows add the final `A_{60+j}`, `E_{60+j}` (copied into `p2`,
//! `p4`) to the initial `A_{j-4}`, `E_{j-4}` (copied into `p3`, `p5`); those of the first
//! compression are the second's initial state. The words the rounds read (`W_t` in `p2`,
//! the schedule's operands) are copies of the cells that define them: a lane row's
//! `p2..p5` or a schedule row's `p4`. The lanes' `p6` cells are copies of the
//! instruction's operand wires; the output rows' `p6` cells define its two result wires.

use halo2_proofs::{
    arithmetic::Field as _,
    pasta::Fp,
    plonk::{Advice, Column, ConstraintSystem, Expression, Fixed, Selector, VirtualCells},
    poly::Rotation,
};

use crate::circuit::sha256::{schedule, IV, K, PADDING_BLOCK};

/// Advice columns of the gadget.
pub const WIDTH: usize = 173;
/// Rows one SHA-256 call occupies.
pub const ROWS: usize = 226;

/// First column of the `a` bits.
pub const A_BITS: usize = 0;
/// First column of the `e` bits.
pub const E_BITS: usize = 32;
/// First column of the `Σ0` / `σ0` helpers.
pub const S0: usize = 64;
/// First column of the `Σ1` / `σ1` helpers.
pub const S1: usize = 96;
/// First column of the `Maj` bits.
pub const MAJ: usize = 128;
/// The packed `a` word.
pub const APK: usize = 160;
/// The packed `e` word.
pub const EPK: usize = 161;
/// Copied words: `p2..p6`.
pub const P2: usize = 162;
/// Copied word 3.
pub const P3: usize = 163;
/// Copied word 4.
pub const P4: usize = 164;
/// Copied word 5.
pub const P5: usize = 165;
/// Lanes and outputs.
pub const P6: usize = 166;
/// First of the three carry bits of the `a` sum.
pub const CA: usize = 167;
/// First of the three carry bits of the `e` sum.
pub const CE: usize = 170;

/// The four lane rows.
pub const IN: usize = 0;
/// The input words' range rows.
pub const IN_RANGE: usize = 4;
/// Schedule rows: `W_t` for `t = 16..63` on row `SCHED + t - 16`.
pub const SCHED: usize = 12;
/// The schedule words' range rows.
pub const SCHED_RANGE: usize = 60;
/// The first compression.
pub const C1: usize = 84;
/// The second compression (its first four rows are the first's feed-forward).
pub const C2: usize = 152;
/// The second compression's feed-forward.
pub const FF2: usize = 220;
/// The two output rows.
pub const OUT: usize = 224;

/// The gadget's equality-enabled columns (copy constraints).
pub const COPIED: [usize; 7] = [APK, EPK, P2, P3, P4, P5, P6];

/// One row of the gadget's advice cells.
pub type Row = [Fp; WIDTH];

/// One bit of a rotated or shifted word: bit `i` of `ROTR(x, n)` or `SHR(x, n)`.
#[derive(Clone, Copy)]
enum Term {
    Rot(usize),
    Shr(usize),
}

impl Term {
    /// The bit of `x` that lands at position `i`, if any.
    fn source(self, i: usize) -> Option<usize> {
        match self {
            Term::Rot(n) => Some((i + n) % 32),
            Term::Shr(n) => (i + n < 32).then_some(i + n),
        }
    }
}

const BIG_SIGMA0: [Term; 3] = [Term::Rot(2), Term::Rot(13), Term::Rot(22)];
const BIG_SIGMA1: [Term; 3] = [Term::Rot(6), Term::Rot(11), Term::Rot(25)];
const SMALL_SIGMA0: [Term; 3] = [Term::Rot(7), Term::Rot(18), Term::Shr(3)];
const SMALL_SIGMA1: [Term; 3] = [Term::Rot(17), Term::Rot(19), Term::Shr(10)];

/// The gadget's columns and selectors.
#[derive(Clone, Debug)]
pub struct Sha256Config {
    /// The [`WIDTH`] advice columns, in the order of the column constants.
    pub cols: Vec<Column<Advice>>,
    /// The initial state's `A` words (the program circuit's `k`).
    pub iv_a: Column<Fixed>,
    /// The initial state's `E` words (the program circuit's `rc1`).
    pub iv_e: Column<Fixed>,
    /// A round's constant, on its gate's row.
    pub kc: Column<Fixed>,
    /// 1 on the first compression's round gates (which add the advice `W_t`), else 0.
    pub qc: Column<Fixed>,
    pub(super) s_pack: Selector,
    pub(super) s_round: Selector,
    pub(super) s_sched: Selector,
    pub(super) s_iv: Selector,
    pub(super) s_ff: Selector,
    pub(super) s_combine: Selector,
}

fn pow2(i: usize) -> Fp {
    Fp::from(2u64).pow([i as u64])
}

fn c(v: Fp) -> Expression<Fp> {
    Expression::Constant(v)
}

/// `Σ 2^i x_i`.
fn pack(bits: &[Expression<Fp>]) -> Expression<Fp> {
    bits.iter()
        .enumerate()
        .fold(c(Fp::ZERO), |acc, (i, b)| acc + c(pow2(i)) * b.clone())
}

/// `x (x - 1)`: zero iff `x` is 0 or 1.
fn boolean(x: Expression<Fp>) -> Expression<Fp> {
    x.clone() * (x - c(Fp::ONE))
}

/// Constraints of a three-way XOR per bit (`sum - 2 hi` and `hi` boolean) and the
/// packed XOR word, for `terms` of `bits` with helpers `hi`.
fn xor_word(
    bits: &[Expression<Fp>],
    terms: [Term; 3],
    hi: &[Expression<Fp>],
    out: &mut Vec<Expression<Fp>>,
) -> Expression<Fp> {
    let mut xs = Vec::with_capacity(32);
    for (i, h) in hi.iter().enumerate().take(32) {
        let sum = terms
            .iter()
            .filter_map(|t| t.source(i))
            .fold(c(Fp::ZERO), |acc, j| acc + bits[j].clone());
        let x = sum - c(Fp::from(2)) * h.clone();
        out.push(boolean(h.clone()));
        out.push(boolean(x.clone()));
        xs.push(x);
    }
    pack(&xs)
}

/// The value of `ca0 + 2 ca1 + 4 ca2` from three carry bit expressions.
fn carry(bits: &[Expression<Fp>], out: &mut Vec<Expression<Fp>>) -> Expression<Fp> {
    for b in bits {
        out.push(boolean(b.clone()));
    }
    pack(bits)
}

impl Sha256Config {
    /// Declares the gadget's columns and gates; `iv_a` and `iv_e` are fixed columns of
    /// the program circuit (its `k` and `rc1`), which the gadget uses on its own rows only.
    pub fn configure(
        meta: &mut ConstraintSystem<Fp>,
        iv_a: Column<Fixed>,
        iv_e: Column<Fixed>,
    ) -> Self {
        let cols: Vec<Column<Advice>> = (0..WIDTH).map(|_| meta.advice_column()).collect();
        let kc = meta.fixed_column();
        let qc = meta.fixed_column();
        for &i in &COPIED {
            meta.enable_equality(cols[i]);
        }
        let config = Sha256Config {
            cols,
            iv_a,
            iv_e,
            kc,
            qc,
            s_pack: meta.selector(),
            s_round: meta.selector(),
            s_sched: meta.selector(),
            s_iv: meta.selector(),
            s_ff: meta.selector(),
            s_combine: meta.selector(),
        };
        let cols = config.cols.clone();
        let range = |m: &mut VirtualCells<'_, Fp>, from: usize, n: usize, rot: i32| {
            (from..from + n)
                .map(|i| m.query_advice(cols[i], Rotation(rot)))
                .collect::<Vec<_>>()
        };
        let two32 = c(pow2(32));

        meta.create_gate("sha256 pack", |m| {
            let s = m.query_selector(config.s_pack);
            let a = range(m, A_BITS, 32, 0);
            let e = range(m, E_BITS, 32, 0);
            let apk = m.query_advice(cols[APK], Rotation::cur());
            let epk = m.query_advice(cols[EPK], Rotation::cur());
            let mut out: Vec<Expression<Fp>> = a.iter().chain(&e).cloned().map(boolean).collect();
            out.push(apk - pack(&a));
            out.push(epk - pack(&e));
            out.into_iter().map(|x| s.clone() * x).collect::<Vec<_>>()
        });

        meta.create_gate("sha256 round", |m| {
            let s = m.query_selector(config.s_round);
            let a0 = range(m, A_BITS, 32, 0);
            let a1 = range(m, A_BITS, 32, -1);
            let a2 = range(m, A_BITS, 32, -2);
            let e0 = range(m, E_BITS, 32, 0);
            let e1 = range(m, E_BITS, 32, -1);
            let e2 = range(m, E_BITS, 32, -2);
            let d = m.query_advice(cols[APK], Rotation(-3));
            let h = m.query_advice(cols[EPK], Rotation(-3));
            let a_new = m.query_advice(cols[APK], Rotation::next());
            let e_new = m.query_advice(cols[EPK], Rotation::next());
            let s0 = range(m, S0, 32, 1);
            let s1 = range(m, S1, 32, 1);
            let mj = range(m, MAJ, 32, 1);
            let ca_bits = range(m, CA, 3, 1);
            let ce_bits = range(m, CE, 3, 1);
            let w = m.query_advice(cols[P2], Rotation::next());
            let k = m.query_fixed(config.kc);
            let q = m.query_fixed(config.qc);

            let mut out = Vec::new();
            let sigma0 = xor_word(&a0, BIG_SIGMA0, &s0, &mut out);
            let sigma1 = xor_word(&e0, BIG_SIGMA1, &s1, &mut out);
            let mut majs = Vec::with_capacity(32);
            let mut chs = Vec::with_capacity(32);
            for i in 0..32 {
                let y =
                    a0[i].clone() + a1[i].clone() + a2[i].clone() - c(Fp::from(2)) * mj[i].clone();
                out.push(boolean(mj[i].clone()));
                out.push(boolean(y));
                majs.push(mj[i].clone());
                chs.push(
                    e0[i].clone() * e1[i].clone() + e2[i].clone() - e0[i].clone() * e2[i].clone(),
                );
            }
            let maj = pack(&majs);
            let ch = pack(&chs);
            let ca = carry(&ca_bits, &mut out);
            let ce = carry(&ce_bits, &mut out);
            let t1 = h + sigma1 + ch + k + q * w;
            out.push(a_new + two32.clone() * ca - t1.clone() - sigma0 - maj);
            out.push(e_new + two32.clone() * ce - d - t1);
            out.into_iter().map(|x| s.clone() * x).collect::<Vec<_>>()
        });

        meta.create_gate("sha256 schedule", |m| {
            let s = m.query_selector(config.s_sched);
            let a = range(m, A_BITS, 32, 0);
            let e = range(m, E_BITS, 32, 0);
            let s0 = range(m, S0, 32, 0);
            let s1 = range(m, S1, 32, 0);
            let ca_bits = range(m, CA, 3, 0);
            let [w7, w16, w] = [P2, P3, P4].map(|i| m.query_advice(cols[i], Rotation::cur()));
            let mut out = Vec::new();
            let sigma1 = xor_word(&a, SMALL_SIGMA1, &s1, &mut out);
            let sigma0 = xor_word(&e, SMALL_SIGMA0, &s0, &mut out);
            let ca = carry(&ca_bits, &mut out);
            out.push(w + two32.clone() * ca - sigma1 - w7 - sigma0 - w16);
            out.into_iter().map(|x| s.clone() * x).collect::<Vec<_>>()
        });

        meta.create_gate("sha256 iv", |m| {
            let s = m.query_selector(config.s_iv);
            let apk = m.query_advice(cols[APK], Rotation::cur());
            let epk = m.query_advice(cols[EPK], Rotation::cur());
            let ha = m.query_fixed(config.iv_a);
            let he = m.query_fixed(config.iv_e);
            vec![s.clone() * (apk - ha), s * (epk - he)]
        });

        meta.create_gate("sha256 feed-forward", |m| {
            let s = m.query_selector(config.s_ff);
            let [apk, epk, p2, p3, p4, p5] =
                [APK, EPK, P2, P3, P4, P5].map(|i| m.query_advice(cols[i], Rotation::cur()));
            let ca_bits = range(m, CA, 3, 0);
            let ce_bits = range(m, CE, 3, 0);
            let mut out = Vec::new();
            let ca = carry(&ca_bits, &mut out);
            let ce = carry(&ce_bits, &mut out);
            out.push(apk + two32.clone() * ca - p2 - p3);
            out.push(epk + two32.clone() * ce - p4 - p5);
            out.into_iter().map(|x| s.clone() * x).collect::<Vec<_>>()
        });

        meta.create_gate("sha256 combine", |m| {
            let s = m.query_selector(config.s_combine);
            let [p2, p3, p4, p5, p6] =
                [P2, P3, P4, P5, P6].map(|i| m.query_advice(cols[i], Rotation::cur()));
            vec![s * (p6 - c(pow2(96)) * p2 - c(pow2(64)) * p3 - c(pow2(32)) * p4 - p5)]
        });
        config
    }
}

/// What a row of the gadget needs besides its advice cells: its selectors and fixed
/// values (the same for every call and every input).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowPlan {
    /// `pack` (bits and packed words of `a` and `e`).
    pub pack: bool,
    /// A round gate anchored here.
    pub round: bool,
    /// A schedule row.
    pub sched: bool,
    /// An initial-state row of the first compression.
    pub iv: bool,
    /// A feed-forward row.
    pub ff: bool,
    /// A lane or output row.
    pub combine: bool,
    /// The fixed `iv_a` value: an initial-state `A` word.
    pub iv_a: u32,
    /// The fixed `iv_e` value: an initial-state `E` word.
    pub iv_e: u32,
    /// The fixed `kc` value: the round constant of the round gate here.
    pub kc: u32,
    /// The fixed `qc` value: 1 where the round gate adds the advice `W_t`.
    pub qc: u32,
}

/// `(K_t + W'_t) mod 2^32` for the padding block's schedule `W'`.
fn padding_kw() -> [u32; 64] {
    let w = schedule(&PADDING_BLOCK);
    std::array::from_fn(|t| K[t].wrapping_add(w[t]))
}

/// The selectors and fixed values of the gadget's rows, [`ROWS`] of them.
pub fn plan() -> Vec<RowPlan> {
    let mut rows = vec![RowPlan::default(); ROWS];
    for r in rows.iter_mut().skip(IN).take(4) {
        r.combine = true;
    }
    for r in rows.iter_mut().skip(OUT).take(2) {
        r.combine = true;
    }
    for r in rows.iter_mut().skip(IN_RANGE).take(8) {
        r.pack = true;
    }
    for r in rows.iter_mut().skip(SCHED).take(48) {
        r.pack = true;
        r.sched = true;
    }
    for r in rows.iter_mut().skip(SCHED_RANGE).take(24) {
        r.pack = true;
    }
    let kw2 = padding_kw();
    for (base, block) in [(C1, 0), (C2, 1)] {
        for j in 0..4 {
            let r = &mut rows[base + j];
            r.pack = true;
            if block == 0 {
                r.iv = true;
                r.iv_a = IV[3 - j];
                r.iv_e = IV[7 - j];
            } else {
                r.ff = true;
            }
        }
        for t in 0..64 {
            let r = &mut rows[base + 3 + t];
            r.round = true;
            if block == 0 {
                r.kc = K[t];
                r.qc = 1;
            } else {
                r.kc = kw2[t];
            }
            rows[base + 4 + t].pack = true;
        }
    }
    for r in rows.iter_mut().skip(FF2).take(4) {
        r.pack = true;
        r.ff = true;
    }
    rows
}

/// The cell (row, column) holding message-schedule word `W_t` of the first block.
fn word_cell(t: usize) -> (usize, usize) {
    if t < 16 {
        (IN + t / 4, P2 + t % 4)
    } else {
        (SCHED + t - 16, P4)
    }
}

/// The gadget's internal copy constraints, as pairs of (row, column) cells.
pub fn copies() -> Vec<((usize, usize), (usize, usize))> {
    let mut v = Vec::new();
    let packed = |m: usize| if m.is_multiple_of(2) { APK } else { EPK };
    for m in 0..16 {
        v.push(((IN_RANGE + m / 2, packed(m)), word_cell(m)));
    }
    for t in 16..64 {
        let r = SCHED + t - 16;
        v.push(((r, APK), word_cell(t - 2)));
        v.push(((r, EPK), word_cell(t - 15)));
        v.push(((r, P2), word_cell(t - 7)));
        v.push(((r, P3), word_cell(t - 16)));
        let m = t - 16;
        v.push(((SCHED_RANGE + m / 2, packed(m)), word_cell(t)));
    }
    for t in 0..64 {
        v.push(((C1 + 4 + t, P2), word_cell(t)));
    }
    for (ff, comp) in [(C2, C1), (FF2, C2)] {
        for j in 0..4 {
            v.push(((ff + j, P2), (comp + 64 + j, APK)));
            v.push(((ff + j, P3), (comp + j, APK)));
            v.push(((ff + j, P4), (comp + 64 + j, EPK)));
            v.push(((ff + j, P5), (comp + j, EPK)));
        }
    }
    for (i, col) in [APK, EPK].into_iter().enumerate() {
        for (p, j) in [P2, P3, P4, P5].into_iter().zip([3, 2, 1, 0]) {
            v.push(((OUT + i, p), (FF2 + j, col)));
        }
    }
    v
}

/// A deliberate fault in a witness (forged-proof tests): in compression `block` (0 or
/// 1), round `round`'s new `A` word has its lowest bit flipped, everything after it
/// computed honestly from the changed word. With `fix_carry`, the round's lowest carry
/// cell is set to the (non-boolean) value that makes the round's sum hold.
#[derive(Clone, Copy, Debug)]
pub struct Tamper {
    /// Which compression (0 or 1).
    pub block: usize,
    /// Which round (0 to 63).
    pub round: usize,
    /// Whether to balance the round's sum with a non-boolean carry.
    pub fix_carry: bool,
}

fn set_bits(row: &mut Row, from: usize, v: u32) {
    for i in 0..32 {
        row[from + i] = Fp::from(u64::from((v >> i) & 1));
    }
}

fn set_word(row: &mut Row, bits: usize, packed: usize, v: u32) {
    set_bits(row, bits, v);
    row[packed] = Fp::from(u64::from(v));
}

fn set_carry(row: &mut Row, from: usize, v: u64) {
    for i in 0..3 {
        row[from + i] = Fp::from((v >> i) & 1);
    }
}

/// The XOR helpers (`hi` bits) of `terms` of `x`; returns the XOR word.
fn set_xor(row: &mut Row, from: usize, x: u32, terms: [Term; 3]) -> u32 {
    let mut word = 0u32;
    for i in 0..32 {
        let sum: u32 = terms
            .iter()
            .filter_map(|t| t.source(i))
            .map(|j| (x >> j) & 1)
            .sum();
        row[from + i] = Fp::from(u64::from(sum >> 1));
        word |= (sum & 1) << i;
    }
    word
}

/// Fills a compression's 64 round rows (`base + 4 ..`) from the initial state
/// `h` and the per-round constant `kw` (plus `W_t` in `p2` when `w` is given); returns
/// the 68 `A` and `E` words (`A_{-4}..A_63`).
fn compress_rows(
    rows: &mut [Row],
    base: usize,
    h: [u32; 8],
    kw: &[u32; 64],
    w: Option<&[u32; 64]>,
    tamper: Option<(usize, bool)>,
) -> ([u32; 68], [u32; 68]) {
    let mut a = [0u32; 68];
    let mut e = [0u32; 68];
    for j in 0..4 {
        a[j] = h[3 - j];
        e[j] = h[7 - j];
    }
    for t in 0..64 {
        let row = &mut rows[base + 4 + t];
        let (a0, a1, a2, d) = (a[t + 3], a[t + 2], a[t + 1], a[t]);
        let (e0, e1, e2, hh) = (e[t + 3], e[t + 2], e[t + 1], e[t]);
        let sigma0 = set_xor(row, S0, a0, BIG_SIGMA0);
        let sigma1 = set_xor(row, S1, e0, BIG_SIGMA1);
        let mut maj = 0u32;
        for i in 0..32 {
            let s = ((a0 >> i) & 1) + ((a1 >> i) & 1) + ((a2 >> i) & 1);
            row[MAJ + i] = Fp::from(u64::from(s >> 1));
            maj |= (s >> 1) << i;
        }
        let ch = (e0 & e1) ^ (!e0 & e2);
        let wt = w.map_or(0, |w| w[t]);
        row[P2] = Fp::from(u64::from(wt));
        let t1 =
            u64::from(hh) + u64::from(sigma1) + u64::from(ch) + u64::from(kw[t]) + u64::from(wt);
        let a_full = t1 + u64::from(sigma0) + u64::from(maj);
        let e_full = u64::from(d) + t1;
        let mut a_new = a_full as u32;
        let e_new = e_full as u32;
        set_carry(row, CA, a_full >> 32);
        set_carry(row, CE, e_full >> 32);
        if let Some((round, fix_carry)) = tamper {
            if round == t {
                a_new ^= 1;
                if fix_carry {
                    // a_new + 2^32 (ca0 + 2 ca1 + 4 ca2) = a_full, solved for ca0.
                    let rest = Fp::from(u64::from(a_new))
                        + pow2(32) * (Fp::from(2) * row[CA + 1] + Fp::from(4) * row[CA + 2]);
                    let inv = pow2(32).invert().unwrap_or(Fp::ZERO);
                    row[CA] = (Fp::from(a_full) - rest) * inv;
                }
            }
        }
        set_word(row, A_BITS, APK, a_new);
        set_word(row, E_BITS, EPK, e_new);
        a[t + 4] = a_new;
        e[t + 4] = e_new;
    }
    (a, e)
}

/// Fills feed-forward rows `base..base + 4`: the compression's final words plus its
/// initial ones. Returns the new state `H_0..H_7`.
fn feed_forward(rows: &mut [Row], base: usize, a: &[u32; 68], e: &[u32; 68]) -> [u32; 8] {
    let mut h = [0u32; 8];
    for j in 0..4 {
        let row = &mut rows[base + j];
        let (fa, ia, fe, ie) = (a[64 + j], a[j], e[64 + j], e[j]);
        let sa = u64::from(fa) + u64::from(ia);
        let se = u64::from(fe) + u64::from(ie);
        set_word(row, A_BITS, APK, sa as u32);
        set_word(row, E_BITS, EPK, se as u32);
        row[P2] = Fp::from(u64::from(fa));
        row[P3] = Fp::from(u64::from(ia));
        row[P4] = Fp::from(u64::from(fe));
        row[P5] = Fp::from(u64::from(ie));
        set_carry(row, CA, sa >> 32);
        set_carry(row, CE, se >> 32);
        h[3 - j] = sa as u32;
        h[7 - j] = se as u32;
    }
    h
}

/// Fills a lane or output row: `p2..p5` the four words, `p6` their 128-bit value.
fn combine_row(row: &mut Row, words: [u32; 4]) -> Fp {
    let v = words
        .iter()
        .fold(0u128, |acc, &w| (acc << 32) | u128::from(w));
    for (i, w) in words.into_iter().enumerate() {
        row[P2 + i] = Fp::from(u64::from(w));
    }
    row[P6] = Fp::from((v >> 64) as u64) * pow2(64) + Fp::from(v as u64);
    row[P6]
}

/// Every advice row of one call on lanes `x` (each below `2^128`), [`ROWS`] rows, and
/// the two outputs (equal to [`crate::circuit::sha256::sha256_blocks`]).
pub fn trace(x: [u128; 4]) -> (Vec<Row>, [Fp; 2]) {
    trace_with(x, None)
}

/// [`trace`], with an optional deliberate fault (see [`Tamper`]); the outputs are what
/// the (faulty) table arrives at.
pub fn trace_with(x: [u128; 4], tamper: Option<Tamper>) -> (Vec<Row>, [Fp; 2]) {
    trace_faulty(x, tamper, None)
}

/// A deliberate fault in the first block's message schedule (forged-proof tests): word
/// `W_t` (`16 <= t < 64`) has its lowest bit flipped. With `decoupled`, only the round
/// that adds `W_t` reads the changed word (the schedule keeps the honest one); without,
/// the schedule row of `W_t` holds the changed word and every later word and round is
/// computed honestly from it.
#[derive(Clone, Copy, Debug)]
pub struct WordTamper {
    /// Which word (16 to 63).
    pub t: usize,
    /// Whether only the round's copy of the word changes.
    pub decoupled: bool,
}

/// [`trace_with`], with an optional fault in the message schedule too.
pub fn trace_faulty(
    x: [u128; 4],
    tamper: Option<Tamper>,
    word: Option<WordTamper>,
) -> (Vec<Row>, [Fp; 2]) {
    let mut rows = vec![[Fp::ZERO; WIDTH]; ROWS];
    let mut block = [0u32; 16];
    for (j, lane) in x.iter().enumerate() {
        let words: [u32; 4] = std::array::from_fn(|k| (lane >> (32 * (3 - k))) as u32);
        block[4 * j..4 * j + 4].copy_from_slice(&words);
        combine_row(&mut rows[IN + j], words);
    }
    let honest = schedule(&block);
    let (w, w_round) = match word {
        Some(WordTamper { t, decoupled }) if (16..64).contains(&t) => {
            let mut f = honest;
            f[t] ^= 1;
            if decoupled {
                (honest, f)
            } else {
                for u in t + 1..64 {
                    f[u] = crate::circuit::sha256::small_sigma1(f[u - 2])
                        .wrapping_add(f[u - 7])
                        .wrapping_add(crate::circuit::sha256::small_sigma0(f[u - 15]))
                        .wrapping_add(f[u - 16]);
                }
                (f, f)
            }
        }
        _ => (honest, honest),
    };
    for (m, &word) in w.iter().enumerate() {
        let (row, bits) = if m < 16 {
            (IN_RANGE + m / 2, m % 2)
        } else {
            (SCHED_RANGE + (m - 16) / 2, m % 2)
        };
        let row = &mut rows[row];
        if bits == 0 {
            set_word(row, A_BITS, APK, word);
        } else {
            set_word(row, E_BITS, EPK, word);
        }
    }
    for t in 16..64 {
        let row = &mut rows[SCHED + t - 16];
        set_word(row, A_BITS, APK, w[t - 2]);
        set_word(row, E_BITS, EPK, w[t - 15]);
        let s1 = set_xor(row, S1, w[t - 2], SMALL_SIGMA1);
        let s0 = set_xor(row, S0, w[t - 15], SMALL_SIGMA0);
        row[P2] = Fp::from(u64::from(w[t - 7]));
        row[P3] = Fp::from(u64::from(w[t - 16]));
        row[P4] = Fp::from(u64::from(w[t]));
        let sum = u64::from(s1) + u64::from(w[t - 7]) + u64::from(s0) + u64::from(w[t - 16]);
        set_carry(row, CA, sum >> 32);
    }
    for j in 0..4 {
        let row = &mut rows[C1 + j];
        set_word(row, A_BITS, APK, IV[3 - j]);
        set_word(row, E_BITS, EPK, IV[7 - j]);
    }
    let fault = |b: usize| {
        tamper
            .filter(|t| t.block == b)
            .map(|t| (t.round, t.fix_carry))
    };
    let (a1, e1) = compress_rows(&mut rows, C1, IV, &K, Some(&w_round), fault(0));
    let h1 = feed_forward(&mut rows, C2, &a1, &e1);
    let (a2, e2) = compress_rows(&mut rows, C2, h1, &padding_kw(), None, fault(1));
    let h2 = feed_forward(&mut rows, FF2, &a2, &e2);
    let out0 = combine_row(&mut rows[OUT], [h2[0], h2[1], h2[2], h2[3]]);
    let out1 = combine_row(&mut rows[OUT + 1], [h2[4], h2[5], h2[6], h2[7]]);
    (rows, [out0, out1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circuit::program::Fe;
    use crate::circuit::sha256::sha256_blocks;
    use crate::prover::field::fp_to_fe;
    use rand::Rng as _;

    #[test]
    fn the_trace_ends_in_the_digest() {
        let mut rng = rand::thread_rng();
        for i in 0..20 {
            let x: [u128; 4] = if i == 0 { [u128::MAX; 4] } else { rng.gen() };
            let (rows, out) = trace(x);
            assert_eq!(rows.len(), ROWS);
            let expected = sha256_blocks(x.map(Fe::from)).unwrap();
            assert_eq!(out.map(fp_to_fe), expected);
        }
    }

    #[test]
    fn the_plan_and_copies_fit_the_rows() {
        let p = plan();
        assert_eq!(p.len(), ROWS);
        // Round gates read rows -3..+1 of their anchor, all inside a compression.
        for (r, row) in p.iter().enumerate() {
            if row.round {
                assert!(
                    (C1 + 3..C1 + 67).contains(&r) || (C2 + 3..C2 + 67).contains(&r),
                    "{r}"
                );
            }
        }
        for ((r1, c1), (r2, c2)) in copies() {
            assert!(r1 < ROWS && r2 < ROWS && COPIED.contains(&c1) && COPIED.contains(&c2));
        }
    }
}

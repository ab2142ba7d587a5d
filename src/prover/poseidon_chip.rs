//! The Poseidon gadget: zkLLVM's `poseidon` builtin (the Kimchi permutation of
//! [`crate::circuit::poseidon`]) as custom gates of the program circuit.
//!
//! # Layout
//!
//! A permutation takes `2 * 55 + 1 = 111` rows. Round `r` uses rows `A = 2r` and
//! `B = 2r + 1` (relative to the permutation's first row) and writes the next state on
//! row `2r + 2`, which is also the state row of round `r + 1`:
//!
//! | row   | `a`, `b`, `c`           | `inv`, `d`, `e`       | fixed `k`, `rc1`, `rc2` |
//! |-------|-------------------------|-----------------------|-------------------------|
//! | A     | state `s0, s1, s2`      | `s_i^2`               | round constants of `r`  |
//! | B     | `s_i^3`                 | `s_i^6`               |                         |
//! | A + 2 | next state              | (next round)          |                         |
//!
//! One gate behind the selector `s_poseidon` (on every row A) checks, per lane `i`,
//! `sq_i = s_i * s_i`, `cu_i = sq_i * s_i`, `six_i = cu_i * cu_i` and, per lane `j`,
//! `next_j = Σ_i MDS[j][i] * six_i * s_i + RC[r][j]`: each constraint has degree 2 in
//! the cells (3 with the selector), like the arithmetic gates, so the gadget does not
//! enlarge the quotient polynomial. The last row (`110`) holds the permuted state; its
//! `a`, `b`, `c` cells define the instruction's three wires, and row 0's `a`, `b`, `c`
//! are copies of the state's wires.

use halo2_proofs::{
    arithmetic::Field as _,
    pasta::Fp,
    plonk::{Advice, Column, ConstraintSystem, Expression, Fixed, Selector},
    poly::Rotation,
};

use super::field::fe_to_fp;
use crate::circuit::poseidon::{mds, round_constants, ROUNDS};

/// Rows one permutation occupies.
pub const ROWS: usize = 2 * ROUNDS + 1;

/// One row of the gadget's advice cells: `a, b, c, inv, d, e`.
pub type TraceRow = [Fp; 6];

/// The gadget's gate, over the program circuit's columns (see the module docs).
pub fn configure(
    meta: &mut ConstraintSystem<Fp>,
    state: [Column<Advice>; 3],
    aux: [Column<Advice>; 3],
    rc: [Column<Fixed>; 3],
    selector: Selector,
) {
    let m: Vec<Vec<Fp>> = mds()
        .iter()
        .map(|row| row.iter().map(|&x| fe_to_fp(x)).collect())
        .collect();
    meta.create_gate("poseidon round", |q| {
        let sel = q.query_selector(selector);
        let s = state.map(|col| q.query_advice(col, Rotation::cur()));
        let sq = aux.map(|col| q.query_advice(col, Rotation::cur()));
        let cu = state.map(|col| q.query_advice(col, Rotation::next()));
        let six = aux.map(|col| q.query_advice(col, Rotation::next()));
        let next = state.map(|col| q.query_advice(col, Rotation(2)));
        let rc = rc.map(|col| q.query_fixed(col));
        let mut out = Vec::with_capacity(12);
        for i in 0..3 {
            out.push(sel.clone() * (sq[i].clone() - s[i].clone() * s[i].clone()));
            out.push(sel.clone() * (cu[i].clone() - sq[i].clone() * s[i].clone()));
            out.push(sel.clone() * (six[i].clone() - cu[i].clone() * cu[i].clone()));
        }
        for j in 0..3 {
            let mut sum = rc[j].clone();
            for i in 0..3 {
                sum = sum + Expression::Constant(m[j][i]) * six[i].clone() * s[i].clone();
            }
            out.push(sel.clone() * (next[j].clone() - sum));
        }
        out
    });
}

/// The round constants of round `r` as the circuit's field type.
pub fn round_constants_fp(r: usize) -> [Fp; 3] {
    round_constants()
        .get(r)
        .map_or([Fp::ZERO; 3], |rc| rc.map(fe_to_fp))
}

/// Every advice row of one permutation of `state`, [`ROWS`] rows; the last row's
/// first three cells are the permuted state.
pub fn trace(state: [Fp; 3]) -> Vec<TraceRow> {
    let m: Vec<Vec<Fp>> = mds()
        .iter()
        .map(|row| row.iter().map(|&x| fe_to_fp(x)).collect())
        .collect();
    let mut rows = Vec::with_capacity(ROWS);
    let mut s = state;
    for r in 0..ROUNDS {
        let sq = s.map(|x| x * x);
        let cu = [0, 1, 2].map(|i| sq[i] * s[i]);
        let six = cu.map(|x| x * x);
        rows.push([s[0], s[1], s[2], sq[0], sq[1], sq[2]]);
        rows.push([cu[0], cu[1], cu[2], six[0], six[1], six[2]]);
        let rc = round_constants_fp(r);
        s = [0, 1, 2].map(|j| (0..3).fold(rc[j], |acc, i| acc + m[j][i] * six[i] * s[i]));
    }
    rows.push([s[0], s[1], s[2], Fp::ZERO, Fp::ZERO, Fp::ZERO]);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circuit::poseidon::permute;
    use crate::circuit::program::Fe;
    use crate::prover::field::fp_to_fe;

    #[test]
    fn the_trace_ends_in_the_permutation() {
        for state in [[0u64, 0, 0], [1, 2, 3], [u64::MAX, 7, 0]] {
            let fe = state.map(Fe::from);
            let t = trace(fe.map(fe_to_fp));
            assert_eq!(t.len(), ROWS);
            let last = t[ROWS - 1];
            assert_eq!([0, 1, 2].map(|i| fp_to_fe(last[i])), permute(fe));
        }
    }
}

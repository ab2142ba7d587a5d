//! Programs shared by the prover's tests (compiled in test builds only).

use crate::circuit::program::{Fe, Instr, Program, Wire};
use crate::input::parse_field;

/// For public inputs `a, b`: `c = (a+b)*a + b*(a+b)*(a+b)`, result
/// `c*c*c / (b-a) + a^2 + 0x12345678901234567890`.
pub fn arithmetic_example() -> Program {
    let w = Wire;
    Program::new(
        2,
        vec![
            Instr::Add(w(0), w(1)),                             // w2  = a + b
            Instr::Mul(w(2), w(0)),                             // w3  = (a+b) * a
            Instr::Mul(w(1), w(2)),                             // w4  = b * (a+b)
            Instr::Mul(w(4), w(2)),                             // w5  = b * (a+b) * (a+b)
            Instr::Add(w(3), w(5)),                             // w6  = c
            Instr::Mul(w(6), w(6)),                             // w7  = c^2
            Instr::Mul(w(7), w(6)),                             // w8  = c^3
            Instr::Sub(w(1), w(0)),                             // w9  = b - a
            Instr::Div(w(8), w(9)),                             // w10 = c^3 / (b - a)
            Instr::Mul(w(0), w(0)),                             // w11 = a^2
            Instr::Add(w(10), w(11)),                           // w12
            Instr::Const(Fe::from(0x12345678901234567890u128)), // w13
            Instr::Add(w(12), w(13)),                           // w14 = result
        ],
        w(14),
    )
    .unwrap()
}

/// The arithmetic example's result for `a = 1, b = 11`.
pub fn arithmetic_example_expected() -> Fe {
    parse_field("0x0cccccccccccccccccccccccccccccccd3a7b8326842aa6d0eb4cd0e7fc4e9be")
        .expect("a field element")
}

/// One input `x`; `r` multiplications `w <- w * x` (so `r` rows): computes `x^(r+1)`.
pub fn mul_chain(r: usize) -> Program {
    let instrs = (0..r)
        .map(|i| Instr::Mul(Wire(i as u32), Wire(0)))
        .collect();
    Program::new(1, instrs, Wire(r as u32)).unwrap()
}

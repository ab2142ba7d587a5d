//! Builds the straight-line [`Program`] while the interpreter runs.
//!
//! Field values are either compile-time constants or wires. Keeping constants out of
//! the program until an instruction needs them lets operations on constants fold away
//! (loop counters turned into field values, `f0x1` accumulators), and identities such
//! as `x * 1` or `x + 0` cost nothing. Identical instructions are emitted once (hash
//! consing), and a final pass drops instructions the output does not depend on, except
//! divisions: a division by zero must keep failing evaluation, as the IR would trap.

use std::collections::HashMap;

use ark_ff::{Field, Zero};

use crate::circuit::error::{CompileError, ErrorKind};
use crate::circuit::ir::FieldOp;
use crate::circuit::program::{Fe, Instr, Program, Wire};

/// The hash-consing tag of [`Instr::Eq`] (0 to 3 are the [`FieldOp`]s).
const EQ_TAG: u8 = 4;

/// A field value during symbolic execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FVal {
    /// Known at compile time.
    Const(Fe),
    /// Computed by the program.
    Wire(Wire),
}

/// Accumulates program instructions, up to a size cap.
pub struct Builder {
    num_inputs: usize,
    instrs: Vec<Instr>,
    /// Wires defined so far (inputs included).
    num_wires: usize,
    consts: HashMap<Fe, Wire>,
    ops: HashMap<(u8, Wire, Wire), Wire>,
    permutations: HashMap<[Wire; 3], Wire>,
    digests: HashMap<[Wire; 4], Wire>,
    max_instrs: usize,
}

impl Builder {
    /// A builder for a program of `num_inputs` inputs and at most `max_instrs`
    /// instructions (counted before dead-code removal, which bounds memory).
    pub fn new(num_inputs: usize, max_instrs: usize) -> Self {
        Builder {
            num_inputs,
            instrs: Vec::new(),
            num_wires: num_inputs,
            consts: HashMap::new(),
            ops: HashMap::new(),
            permutations: HashMap::new(),
            digests: HashMap::new(),
            max_instrs,
        }
    }

    /// The value of input `i`.
    pub fn input(&self, i: usize) -> FVal {
        FVal::Wire(Wire(i as u32))
    }

    fn push(&mut self, ins: Instr, line: usize) -> Result<Wire, CompileError> {
        if self.instrs.len() >= self.max_instrs {
            return Err(CompileError::at(
                line,
                ErrorKind::ProgramTooLarge(self.max_instrs),
            ));
        }
        let w = Wire(self.num_wires as u32);
        self.num_wires += ins.defines();
        self.instrs.push(ins);
        Ok(w)
    }

    fn wire(&mut self, v: FVal, line: usize) -> Result<Wire, CompileError> {
        match v {
            FVal::Wire(w) => Ok(w),
            FVal::Const(c) => {
                if let Some(&w) = self.consts.get(&c) {
                    return Ok(w);
                }
                let w = self.push(Instr::Const(c), line)?;
                self.consts.insert(c, w);
                Ok(w)
            }
        }
    }

    /// `a op b`, folded or simplified when that is exact, else emitted.
    pub fn op(&mut self, op: FieldOp, a: FVal, b: FVal, line: usize) -> Result<FVal, CompileError> {
        let one = Fe::ONE;
        match (op, a, b) {
            (FieldOp::Add, FVal::Const(x), FVal::Const(y)) => return Ok(FVal::Const(x + y)),
            (FieldOp::Sub, FVal::Const(x), FVal::Const(y)) => return Ok(FVal::Const(x - y)),
            (FieldOp::Mul, FVal::Const(x), FVal::Const(y)) => return Ok(FVal::Const(x * y)),
            (FieldOp::Div, FVal::Const(x), FVal::Const(y)) if !y.is_zero() => {
                if let Some(inv) = y.inverse() {
                    return Ok(FVal::Const(x * inv));
                }
            }
            (FieldOp::Add, FVal::Const(z), v)
            | (FieldOp::Add | FieldOp::Sub, v, FVal::Const(z))
                if z.is_zero() =>
            {
                return Ok(v)
            }
            (FieldOp::Mul, FVal::Const(u), v)
            | (FieldOp::Mul | FieldOp::Div, v, FVal::Const(u))
                if u == one =>
            {
                return Ok(v)
            }
            (FieldOp::Mul, FVal::Const(z), _) | (FieldOp::Mul, _, FVal::Const(z))
                if z.is_zero() =>
            {
                return Ok(FVal::Const(Fe::zero()))
            }
            (FieldOp::Sub, FVal::Wire(x), FVal::Wire(y)) if x == y => {
                return Ok(FVal::Const(Fe::zero()))
            }
            _ => {}
        }
        let (mut x, mut y) = (self.wire(a, line)?, self.wire(b, line)?);
        if matches!(op, FieldOp::Add | FieldOp::Mul) && y < x {
            std::mem::swap(&mut x, &mut y);
        }
        let tag = match op {
            FieldOp::Add => 0u8,
            FieldOp::Sub => 1,
            FieldOp::Mul => 2,
            FieldOp::Div => 3,
        };
        if let Some(&w) = self.ops.get(&(tag, x, y)) {
            return Ok(FVal::Wire(w));
        }
        let ins = match op {
            FieldOp::Add => Instr::Add(x, y),
            FieldOp::Sub => Instr::Sub(x, y),
            FieldOp::Mul => Instr::Mul(x, y),
            FieldOp::Div => Instr::Div(x, y),
        };
        let w = self.push(ins, line)?;
        self.ops.insert((tag, x, y), w);
        Ok(FVal::Wire(w))
    }

    /// The bit `a == b` (1 or 0): computed now if both are known or they are the same
    /// wire, else emitted (once per pair, in either order).
    pub fn eq(&mut self, a: FVal, b: FVal, line: usize) -> Result<FVal, CompileError> {
        let bit = |t: bool| FVal::Const(Fe::from(u64::from(t)));
        match (a, b) {
            (FVal::Const(x), FVal::Const(y)) => return Ok(bit(x == y)),
            (FVal::Wire(x), FVal::Wire(y)) if x == y => return Ok(bit(true)),
            _ => {}
        }
        let (mut x, mut y) = (self.wire(a, line)?, self.wire(b, line)?);
        if y < x {
            std::mem::swap(&mut x, &mut y);
        }
        if let Some(&w) = self.ops.get(&(EQ_TAG, x, y)) {
            return Ok(FVal::Wire(w));
        }
        let w = self.push(Instr::Eq(x, y), line)?;
        self.ops.insert((EQ_TAG, x, y), w);
        Ok(FVal::Wire(w))
    }

    /// `bit ? x : y` for a `bit` of 0 or 1 (a constant, or a wire the program has
    /// constrained to be a bit): `y + bit * (x - y)`, or the pick itself when it is known.
    pub fn select(
        &mut self,
        bit: FVal,
        x: FVal,
        y: FVal,
        line: usize,
    ) -> Result<FVal, CompileError> {
        match bit {
            FVal::Const(c) if c.is_zero() => return Ok(y),
            FVal::Const(_) => return Ok(x),
            FVal::Wire(_) if x == y => return Ok(x),
            FVal::Wire(_) => {}
        }
        let diff = self.op(FieldOp::Sub, x, y, line)?;
        let scaled = self.op(FieldOp::Mul, bit, diff, line)?;
        self.op(FieldOp::Add, y, scaled, line)
    }

    /// The Poseidon permutation of `state`: computed now if every element is known,
    /// else emitted (once per distinct state).
    pub fn poseidon(&mut self, state: [FVal; 3], line: usize) -> Result<[FVal; 3], CompileError> {
        if let [FVal::Const(a), FVal::Const(b), FVal::Const(c)] = state {
            return Ok(crate::circuit::poseidon::permute([a, b, c]).map(FVal::Const));
        }
        let mut wires = [Wire(0); 3];
        for (w, v) in wires.iter_mut().zip(state) {
            *w = self.wire(v, line)?;
        }
        let first = match self.permutations.get(&wires) {
            Some(&w) => w,
            None => {
                let w = self.push(Instr::Poseidon(wires), line)?;
                self.permutations.insert(wires, w);
                w
            }
        };
        Ok([0, 1, 2].map(|i| FVal::Wire(Wire(first.0 + i))))
    }

    /// zkLLVM's `sha2_256` builtin on the four lanes `x`: computed now if every lane is
    /// known, else emitted (once per distinct operand list). A constant lane of `2^128`
    /// or more is an error, as the call could never be evaluated.
    pub fn sha256(&mut self, x: [FVal; 4], line: usize) -> Result<[FVal; 2], CompileError> {
        for (lane, v) in x.iter().enumerate() {
            if let FVal::Const(c) = v {
                if crate::circuit::sha256::lane_u128(*c).is_none() {
                    return Err(CompileError::at(line, ErrorKind::Sha256LaneTooLarge(lane)));
                }
            }
        }
        if let [FVal::Const(a), FVal::Const(b), FVal::Const(c), FVal::Const(d)] = x {
            let out = crate::circuit::sha256::sha256_blocks([a, b, c, d]).map_err(
                |crate::circuit::sha256::Sha256Error::LaneTooLarge(lane)| {
                    CompileError::at(line, ErrorKind::Sha256LaneTooLarge(lane))
                },
            )?;
            return Ok(out.map(FVal::Const));
        }
        let mut wires = [Wire(0); 4];
        for (w, v) in wires.iter_mut().zip(x) {
            *w = self.wire(v, line)?;
        }
        let first = match self.digests.get(&wires) {
            Some(&w) => w,
            None => {
                let w = self.push(Instr::Sha256(wires), line)?;
                self.digests.insert(wires, w);
                w
            }
        };
        Ok([0, 1].map(|i| FVal::Wire(Wire(first.0 + i))))
    }

    /// Finishes the program with `outs` as its outputs (in order), dropping dead
    /// instructions.
    pub fn finish(mut self, outs: &[FVal], line: usize) -> Result<Program, CompileError> {
        let outs = outs
            .iter()
            .map(|&o| self.wire(o, line))
            .collect::<Result<Vec<Wire>, _>>()?;
        let n = self.num_inputs;
        // The first wire each instruction defines.
        let mut first = Vec::with_capacity(self.instrs.len());
        let mut next = n;
        for ins in &self.instrs {
            first.push(next);
            next += ins.defines();
        }
        let mut live = vec![false; next];
        let mark = |live: &mut Vec<bool>, w: Wire| {
            if let Some(l) = live.get_mut(w.index()) {
                *l = true;
            }
        };
        for &out in &outs {
            mark(&mut live, out);
        }
        let is_live = |live: &Vec<bool>, i: usize, ins: &Instr| {
            let from = first[i];
            live.get(from..from + ins.defines())
                .is_some_and(|ws| ws.iter().any(|&l| l))
        };
        let mut keep = vec![false; self.instrs.len()];
        for (i, ins) in self.instrs.iter().enumerate().rev() {
            if matches!(ins, Instr::Div(..)) || is_live(&live, i, ins) {
                keep[i] = true;
                for w in ins.operands() {
                    mark(&mut live, w);
                }
            }
        }
        // New numbering: inputs keep theirs, live instructions are packed in order.
        let mut renumber: Vec<u32> = (0..n as u32).collect();
        let mut instrs = Vec::new();
        let mut defined = n;
        let map = |renumber: &Vec<u32>, w: Wire| {
            Wire(renumber.get(w.index()).copied().unwrap_or(u32::MAX))
        };
        for (i, ins) in self.instrs.iter().enumerate() {
            if !keep[i] {
                renumber.extend(std::iter::repeat_n(u32::MAX, ins.defines()));
                continue;
            }
            renumber.extend((defined..defined + ins.defines()).map(|w| w as u32));
            defined += ins.defines();
            instrs.push(match *ins {
                Instr::Const(c) => Instr::Const(c),
                Instr::Add(a, b) => Instr::Add(map(&renumber, a), map(&renumber, b)),
                Instr::Sub(a, b) => Instr::Sub(map(&renumber, a), map(&renumber, b)),
                Instr::Mul(a, b) => Instr::Mul(map(&renumber, a), map(&renumber, b)),
                Instr::Div(a, b) => Instr::Div(map(&renumber, a), map(&renumber, b)),
                Instr::Eq(a, b) => Instr::Eq(map(&renumber, a), map(&renumber, b)),
                Instr::Poseidon(s) => Instr::Poseidon(s.map(|w| map(&renumber, w))),
                Instr::Sha256(x) => Instr::Sha256(x.map(|w| map(&renumber, w))),
            });
        }
        let outs = outs.into_iter().map(|o| map(&renumber, o)).collect();
        Program::with_outputs(n, instrs, outs)
            .map_err(|e| CompileError::global(ErrorKind::Program(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(v: u64) -> FVal {
        FVal::Const(Fe::from(v))
    }

    #[test]
    fn folds_simplifies_and_shares() {
        let mut b = Builder::new(2, 100);
        let (x, y) = (b.input(0), b.input(1));
        assert_eq!(b.op(FieldOp::Mul, c(3), c(4), 1).unwrap(), c(12));
        assert_eq!(b.op(FieldOp::Mul, c(1), x, 1).unwrap(), x);
        assert_eq!(b.op(FieldOp::Add, x, c(0), 1).unwrap(), x);
        assert_eq!(b.op(FieldOp::Mul, y, c(0), 1).unwrap(), c(0));
        let s1 = b.op(FieldOp::Add, x, y, 1).unwrap();
        let s2 = b.op(FieldOp::Add, y, x, 1).unwrap();
        assert_eq!(s1, s2);
        let d = b.op(FieldOp::Div, c(5), c(0), 1).unwrap();
        assert!(matches!(d, FVal::Wire(_)));
        let _dead = b.op(FieldOp::Mul, x, x, 1).unwrap();
        let out = b.op(FieldOp::Mul, s1, c(7), 1).unwrap();
        let p = b.finish(&[out], 1).unwrap();
        // x+y, 7, (x+y)*7, and the kept division 5/0 with its two constants.
        assert_eq!(p.instrs().len(), 6);
        assert!(p.eval(&[Fe::from(1u64), Fe::from(2u64)]).is_err());
    }

    #[test]
    fn equality_bits_fold_share_and_select() {
        let mut b = Builder::new(2, 100);
        let (x, y) = (b.input(0), b.input(1));
        assert_eq!(b.eq(c(3), c(3), 1).unwrap(), c(1));
        assert_eq!(b.eq(c(3), c(4), 1).unwrap(), c(0));
        assert_eq!(b.eq(x, x, 1).unwrap(), c(1));
        let e1 = b.eq(x, y, 1).unwrap();
        assert_eq!(b.eq(y, x, 1).unwrap(), e1);
        // A known bit picks; equal alternatives need no bit.
        assert_eq!(b.select(c(1), x, y, 1).unwrap(), x);
        assert_eq!(b.select(c(0), x, y, 1).unwrap(), y);
        assert_eq!(b.select(e1, x, x, 1).unwrap(), x);
        let picked = b.select(e1, c(10), y, 1).unwrap();
        let p = b.finish(&[picked, e1], 1).unwrap();
        let f = |v: u64| Fe::from(v);
        assert_eq!(p.eval(&[f(5), f(5)]).unwrap(), vec![f(10), f(1)]);
        assert_eq!(p.eval(&[f(5), f(6)]).unwrap(), vec![f(6), f(0)]);
    }

    #[test]
    fn enforces_the_cap() {
        let mut b = Builder::new(1, 2);
        let x = b.input(0);
        let x2 = b.op(FieldOp::Mul, x, x, 1).unwrap();
        let x3 = b.op(FieldOp::Mul, x2, x, 1).unwrap();
        let err = b.op(FieldOp::Mul, x3, x, 9).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 9: program too large (over 2 instructions)"
        );
    }

    #[test]
    fn sha256_folds_shares_and_checks_constant_lanes() {
        use crate::circuit::sha256::sha256_blocks;
        let mut b = Builder::new(2, 100);
        let (x, y) = (b.input(0), b.input(1));
        // All four lanes known: computed now, no instruction.
        let folded = b.sha256([c(1), c(1), c(1), c(1)], 3).unwrap();
        let ones = sha256_blocks([Fe::from(1u64); 4]).unwrap();
        assert_eq!(folded, ones.map(FVal::Const));
        // The same call twice is emitted once; another operand order is another call.
        let h1 = b.sha256([x, y, c(3), x], 4).unwrap();
        let h2 = b.sha256([x, y, c(3), x], 5).unwrap();
        assert_eq!(h1, h2);
        let h3 = b.sha256([y, x, c(3), x], 6).unwrap();
        assert_ne!(h1, h3);
        // A constant lane of 2^128 (known or not the others are) is a compile error.
        let big = FVal::Const(Fe::from(u128::MAX) + Fe::ONE);
        for lanes in [[c(1), c(1), big, c(1)], [x, y, big, x]] {
            let err = b.sha256(lanes, 9).unwrap_err();
            assert_eq!(err.kind(), &ErrorKind::Sha256LaneTooLarge(2));
            assert_eq!(
                err.to_string(),
                "line 9: SHA-256 input lane 2 is a constant of 2^128 or more; the SHA-256 input lanes must be below 2^128"
            );
        }
        // h1's second half and h3's first are the outputs: both calls kept, the dead
        // one dropped, operands renumbered.
        let _dead = b.sha256([y, y, y, y], 7).unwrap();
        let p = b.finish(&[h1[1], h3[0]], 10).unwrap();
        assert_eq!(
            p.instrs()
                .iter()
                .filter(|i| matches!(i, Instr::Sha256(_)))
                .count(),
            2
        );
        let (vx, vy) = (Fe::from(5u64), Fe::from(6u64));
        let e1 = sha256_blocks([vx, vy, Fe::from(3u64), vx]).unwrap();
        let e3 = sha256_blocks([vy, vx, Fe::from(3u64), vx]).unwrap();
        assert_eq!(p.eval(&[vx, vy]).unwrap(), vec![e1[1], e3[0]]);
    }

    #[test]
    fn constant_output_is_materialised() {
        let b = Builder::new(0, 10);
        let p = b.finish(&[c(42)], 1).unwrap();
        assert_eq!(p.eval(&[]).unwrap(), vec![Fe::from(42u64)]);
        // Several outputs, the same constant twice: one instruction, two outputs.
        let b = Builder::new(1, 10);
        let x = b.input(0);
        let p = b.finish(&[c(7), x, c(7)], 1).unwrap();
        assert_eq!(p.instrs().len(), 1);
        assert_eq!(
            p.eval(&[Fe::from(3u64)]).unwrap(),
            vec![Fe::from(7u64), Fe::from(3u64), Fe::from(7u64)]
        );
    }
}

//! A straight-line arithmetic program over the Pallas base field.
//!
//! This is the meeting point of the two halves of the proving stack: the zkLLVM IR
//! compiler (`circuit::compile`) lowers a circuit function into a [`Program`], and the
//! prover (`prover::halo2`) turns a [`Program`] into a halo2 circuit. A program's
//! shape never depends on input values: every loop has been unrolled and every branch
//! resolved at compile time, so the same program (and so the same proving keys) serves
//! every input.
//!
//! Wires are numbered densely: wires `0..num_inputs` are the public inputs, then each
//! instruction defines the next wire ([`Instr::Poseidon`] the next three,
//! [`Instr::Sha256`] the next two). An
//! instruction only reads wires defined before it, which [`Program::new`] checks. A program has one or more outputs
//! (a circuit returning a vector has one per element), in order.

use ark_ff::Field;
use ark_pallas::Fq;

/// An element of the Pallas base field (`F_q` of the Pallas curve, equal to the scalar
/// field of Vesta).
pub type Fe = Fq;

/// The index of a value in a [`Program`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Wire(pub u32);

impl Wire {
    /// The wire's position as an index into a value vector.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One step of a program; it defines one new wire ([`Instr::Poseidon`]: three,
/// [`Instr::Sha256`]: two).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instr {
    /// A field constant.
    Const(Fe),
    /// `a + b`
    Add(Wire, Wire),
    /// `a - b`
    Sub(Wire, Wire),
    /// `a * b`
    Mul(Wire, Wire),
    /// `a / b`, i.e. `a * b^-1`; evaluating it with `b = 0` is an error.
    Div(Wire, Wire),
    /// `1` if `a == b`, else `0`: zkLLVM's `icmp eq` on field values, a bit the
    /// program then computes with (`select` becomes `y + bit * (x - y)`).
    Eq(Wire, Wire),
    /// zkLLVM's `poseidon` builtin: the Kimchi Poseidon permutation
    /// ([`crate::circuit::poseidon::permute`]) of a 3-element state; defines the three
    /// wires of the permuted state, in order.
    Poseidon([Wire; 3]),
    /// zkLLVM's `sha2_256` builtin ([`crate::circuit::sha256::sha256_blocks`]): the
    /// SHA-256 digest of the four lanes (each below `2^128`) as 16 big-endian bytes
    /// each; defines the two wires of the digest's halves, in order. Evaluating it with
    /// a lane of `2^128` or more is an error.
    Sha256([Wire; 4]),
}

impl Instr {
    /// The wires this instruction reads.
    pub fn operands(&self) -> Vec<Wire> {
        match *self {
            Instr::Const(_) => Vec::new(),
            Instr::Add(a, b)
            | Instr::Sub(a, b)
            | Instr::Mul(a, b)
            | Instr::Div(a, b)
            | Instr::Eq(a, b) => vec![a, b],
            Instr::Poseidon(s) => s.to_vec(),
            Instr::Sha256(x) => x.to_vec(),
        }
    }

    /// How many wires this instruction defines.
    pub fn defines(&self) -> usize {
        match self {
            Instr::Poseidon(_) => 3,
            Instr::Sha256(_) => 2,
            _ => 1,
        }
    }
}

/// Why a program could not be built or evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgramError {
    /// An instruction or the output reads a wire that is not defined before it.
    #[error("instruction {instr} reads wire {wire} before it is defined")]
    UndefinedWire {
        /// Index of the offending instruction (`usize::MAX` for the output).
        instr: usize,
        /// The wire it reads.
        wire: u32,
    },
    /// The number of input values differs from the program's arity.
    #[error("the circuit takes {expected} public inputs, got {got}")]
    Arity {
        /// The program's number of inputs.
        expected: usize,
        /// The number of values given.
        got: usize,
    },
    /// The number of claimed outputs differs from the program's.
    #[error("the circuit has {expected} outputs, got {got}")]
    OutputArity {
        /// The program's number of outputs.
        expected: usize,
        /// The number of values given.
        got: usize,
    },
    /// A program must have at least one output.
    #[error("a program needs at least one output")]
    NoOutput,
    /// A division whose divisor evaluated to zero.
    #[error("division by zero in the field (instruction {instr})")]
    DivisionByZero {
        /// Index of the division instruction.
        instr: usize,
    },
    /// A SHA-256 instruction one of whose lanes evaluated to `2^128` or more.
    #[error("SHA-256 (instruction {instr}): input lane {lane} is not below 2^128; the SHA-256 input lanes must be below 2^128")]
    Sha256LaneTooLarge {
        /// Index of the SHA-256 instruction.
        instr: usize,
        /// The offending lane (0 to 3).
        lane: usize,
    },
}

/// A checked straight-line program with one or more outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    num_inputs: usize,
    instrs: Vec<Instr>,
    outputs: Vec<Wire>,
    num_wires: usize,
}

impl Program {
    /// Builds a program with one output, checking that every wire is defined before it
    /// is read.
    pub fn new(num_inputs: usize, instrs: Vec<Instr>, output: Wire) -> Result<Self, ProgramError> {
        Program::with_outputs(num_inputs, instrs, vec![output])
    }

    /// Builds a program with the given outputs (at least one), in order.
    pub fn with_outputs(
        num_inputs: usize,
        instrs: Vec<Instr>,
        outputs: Vec<Wire>,
    ) -> Result<Self, ProgramError> {
        if outputs.is_empty() {
            return Err(ProgramError::NoOutput);
        }
        let mut defined = num_inputs;
        for (i, ins) in instrs.iter().enumerate() {
            for w in ins.operands() {
                if w.index() >= defined {
                    return Err(ProgramError::UndefinedWire {
                        instr: i,
                        wire: w.0,
                    });
                }
            }
            defined += ins.defines();
        }
        if let Some(w) = outputs.iter().find(|w| w.index() >= defined) {
            return Err(ProgramError::UndefinedWire {
                instr: usize::MAX,
                wire: w.0,
            });
        }
        Ok(Program {
            num_inputs,
            instrs,
            outputs,
            num_wires: defined,
        })
    }

    /// Number of public inputs.
    pub fn num_inputs(&self) -> usize {
        self.num_inputs
    }

    /// The instructions, in order.
    pub fn instrs(&self) -> &[Instr] {
        &self.instrs
    }

    /// The wires holding the results, in order (at least one).
    pub fn outputs(&self) -> &[Wire] {
        &self.outputs
    }

    /// Total number of wires (inputs plus those the instructions define).
    pub fn num_wires(&self) -> usize {
        self.num_wires
    }

    /// Checks that `inputs` holds one value per public input of the program.
    pub fn check_arity<T>(&self, inputs: &[T]) -> Result<(), ProgramError> {
        if inputs.len() == self.num_inputs {
            Ok(())
        } else {
            Err(ProgramError::Arity {
                expected: self.num_inputs,
                got: inputs.len(),
            })
        }
    }

    /// Checks that `outputs` holds one value per output of the program.
    pub fn check_outputs<T>(&self, outputs: &[T]) -> Result<(), ProgramError> {
        if outputs.len() == self.outputs.len() {
            Ok(())
        } else {
            Err(ProgramError::OutputArity {
                expected: self.outputs.len(),
                got: outputs.len(),
            })
        }
    }

    /// Evaluates every wire on `inputs` (the witness), in wire order.
    pub fn eval_wires(&self, inputs: &[Fe]) -> Result<Vec<Fe>, ProgramError> {
        self.check_arity(inputs)?;
        let mut w: Vec<Fe> = Vec::with_capacity(self.num_wires());
        w.extend_from_slice(inputs);
        for (i, ins) in self.instrs.iter().enumerate() {
            let v = match *ins {
                Instr::Poseidon(s) => {
                    let out = crate::circuit::poseidon::permute(s.map(|x| w[x.index()]));
                    w.extend_from_slice(&out);
                    continue;
                }
                Instr::Sha256(x) => {
                    let out = crate::circuit::sha256::sha256_blocks(x.map(|v| w[v.index()]))
                        .map_err(|crate::circuit::sha256::Sha256Error::LaneTooLarge(lane)| {
                            ProgramError::Sha256LaneTooLarge { instr: i, lane }
                        })?;
                    w.extend_from_slice(&out);
                    continue;
                }
                Instr::Const(c) => c,
                Instr::Add(a, b) => w[a.index()] + w[b.index()],
                Instr::Sub(a, b) => w[a.index()] - w[b.index()],
                Instr::Mul(a, b) => w[a.index()] * w[b.index()],
                Instr::Div(a, b) => {
                    let inv = w[b.index()]
                        .inverse()
                        .ok_or(ProgramError::DivisionByZero { instr: i })?;
                    w[a.index()] * inv
                }
                Instr::Eq(a, b) => Fe::from(u64::from(w[a.index()] == w[b.index()])),
            };
            w.push(v);
        }
        Ok(w)
    }

    /// Evaluates the program on `inputs` and returns its outputs, in order.
    pub fn eval(&self, inputs: &[Fe]) -> Result<Vec<Fe>, ProgramError> {
        let w = self.eval_wires(inputs)?;
        Ok(self.outputs.iter().map(|o| w[o.index()]).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluates_and_checks_wires() {
        // (x0 + x1) * x0 / x1
        let p = Program::new(
            2,
            vec![
                Instr::Add(Wire(0), Wire(1)),
                Instr::Mul(Wire(2), Wire(0)),
                Instr::Div(Wire(3), Wire(1)),
            ],
            Wire(4),
        )
        .unwrap();
        let out = p.eval(&[Fe::from(3u64), Fe::from(4u64)]).unwrap();
        assert_eq!(out, vec![Fe::from(21u64) / Fe::from(4u64)]);
        // Several outputs, in the order given; an input may be one of them.
        let two = Program::with_outputs(2, p.instrs().to_vec(), vec![Wire(3), Wire(0)]).unwrap();
        assert_eq!(
            two.eval(&[Fe::from(3u64), Fe::from(4u64)]).unwrap(),
            vec![Fe::from(21u64), Fe::from(3u64)]
        );
        assert_eq!(
            Program::with_outputs(2, vec![], vec![]),
            Err(ProgramError::NoOutput)
        );
        assert_eq!(
            p.eval(&[Fe::from(3u64), Fe::from(0u64)]),
            Err(ProgramError::DivisionByZero { instr: 2 })
        );
        assert!(matches!(
            p.eval(&[Fe::from(1u64)]),
            Err(ProgramError::Arity { .. })
        ));
        assert!(Program::new(1, vec![Instr::Add(Wire(0), Wire(1))], Wire(1)).is_err());
        assert!(Program::new(1, vec![], Wire(1)).is_err());
    }

    #[test]
    fn sha256_defines_two_wires_and_checks_its_lanes() {
        // sha256(x0, x1, x0 + x1, 1), then its second half times x0.
        let p = Program::with_outputs(
            2,
            vec![
                Instr::Add(Wire(0), Wire(1)),
                Instr::Const(Fe::from(1u64)),
                Instr::Sha256([Wire(0), Wire(1), Wire(2), Wire(3)]),
                Instr::Mul(Wire(5), Wire(0)),
            ],
            vec![Wire(4), Wire(5), Wire(6)],
        )
        .unwrap();
        assert_eq!(p.num_wires(), 7);
        assert_eq!(p.instrs()[2].defines(), 2);
        assert_eq!(
            p.instrs()[2].operands(),
            vec![Wire(0), Wire(1), Wire(2), Wire(3)]
        );
        let (x0, x1) = (Fe::from(7u64), Fe::from(9u64));
        let h = crate::circuit::sha256::sha256_blocks([x0, x1, x0 + x1, Fe::from(1u64)]).unwrap();
        assert_eq!(p.eval(&[x0, x1]).unwrap(), vec![h[0], h[1], h[1] * x0]);
        // A lane of 2^128: the instruction (index 2) and the lane (2, x0 + x1) named.
        let big = Fe::from(u128::MAX);
        let err = p.eval(&[big, Fe::from(1u64)]).unwrap_err();
        assert_eq!(err, ProgramError::Sha256LaneTooLarge { instr: 2, lane: 2 });
        assert!(err.to_string().contains("must be below 2^128"), "{err}");
        // A result wire read before the instruction defines it is refused.
        assert!(Program::new(
            1,
            vec![Instr::Sha256([Wire(0), Wire(0), Wire(0), Wire(2)])],
            Wire(1)
        )
        .is_err());
    }
}

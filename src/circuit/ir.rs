//! The parsed form of the supported subset of zkLLVM IR.
//!
//! Only functions reachable from the circuit function are ever turned into this form,
//! and only instructions of the subset can be represented, so anything here is known to
//! be executable by the symbolic interpreter. Names are resolved to dense slot and block
//! indices at parse time so that interpretation (which may run millions of steps while
//! unrolling loops) does no string lookups.

use crate::circuit::program::Fe;

/// Index of a value (parameter or instruction result) in a function's frame.
pub type Slot = u32;
/// Index of a basic block in [`Function::blocks`].
pub type BlockId = u32;

/// The name zkLLVM gives the Pallas base field type (in C++ sources, and in the IR of
/// the zkLLVM versions the original market's statements came from).
pub const FIELD_TYPE: &str = "__zkllvm_field_pallas_base";

/// Every spelling of the Pallas base field type zkLLVM's IR printers use: the C++ name,
/// and the short name of newer versions' LLVM (`field_pallasb`, whose functions'
/// mangled names then carry `u13field_pallasb`).
pub const FIELD_TYPE_SPELLINGS: &[&str] = &[FIELD_TYPE, "field_pallasb"];

/// zkLLVM's other field types, in both spellings: refused with a word on why.
pub const OTHER_FIELD_TYPES: &[&str] = &[
    "__zkllvm_field_pallas_scalar",
    "field_pallass",
    "__zkllvm_field_vesta_base",
    "field_vestab",
    "__zkllvm_field_vesta_scalar",
    "field_vestas",
    "__zkllvm_field_bls12381_base",
    "field_bls12381b",
    "__zkllvm_field_bls12381_scalar",
    "field_bls12381s",
    "__zkllvm_field_curve25519_base",
    "field_curve25519b",
    "__zkllvm_field_curve25519_scalar",
    "field_curve25519s",
];

/// The most lanes a vector of field elements may have (`<N x field>`). zkLLVM's own
/// vectors are tiny (a Poseidon state has 3, a SHA-256 block 4); the cap bounds what
/// one value can hold.
pub const MAX_VECTOR_LANES: u32 = 1024;

/// A first-class value type of the subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// `__zkllvm_field_pallas_base`: a wire of the program.
    Field,
    /// `<N x __zkllvm_field_pallas_base>`, 1 <= N <= [`MAX_VECTOR_LANES`]: N wires.
    FieldVec(u32),
    /// `iN`, 1 <= N <= 64: a compile-time integer.
    Int(u32),
}

impl Ty {
    /// How many field elements a value of this type holds as a circuit parameter or
    /// result (`None` for integers).
    pub fn field_lanes(self) -> Option<usize> {
        match self {
            Ty::Field => Some(1),
            Ty::FieldVec(n) => Some(n as usize),
            Ty::Int(_) => None,
        }
    }
}

impl std::fmt::Display for Ty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ty::Field => f.write_str(FIELD_TYPE),
            Ty::FieldVec(n) => write!(f, "<{n} x {FIELD_TYPE}>"),
            Ty::Int(n) => write!(f, "i{n}"),
        }
    }
}

/// An instruction operand: a value in the frame or a constant of the operand's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    /// A parameter or an instruction result.
    Slot(Slot),
    /// An integer constant, already truncated to its type's width.
    Int(u64),
    /// A field constant.
    Field(Fe),
    /// A vector constant: `zeroinitializer`, `<ty v, ...>`; a lane that is `undef` or
    /// `poison` is `None` (and a whole `undef`/`poison` vector is all `None`).
    FieldVec(Vec<Option<Fe>>),
}

/// A field operation; each becomes one program instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOp {
    /// `add`
    Add,
    /// `sub`
    Sub,
    /// `mul`
    Mul,
    /// `sdiv` / `udiv`: multiplication by the inverse.
    Div,
}

/// An integer operation, evaluated at compile time with wrap-around at the type width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntOp {
    /// `add`
    Add,
    /// `sub`
    Sub,
    /// `mul`
    Mul,
    /// `udiv`
    UDiv,
    /// `sdiv`
    SDiv,
    /// `urem`
    URem,
    /// `srem`
    SRem,
    /// `and`
    And,
    /// `or`
    Or,
    /// `xor`
    Xor,
    /// `shl`
    Shl,
    /// `lshr`
    LShr,
    /// `ashr`
    AShr,
}

/// An `icmp` predicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pred {
    /// `eq`
    Eq,
    /// `ne`
    Ne,
    /// `slt` (signed)
    Slt,
    /// `sle` (signed)
    Sle,
    /// `sgt` (signed)
    Sgt,
    /// `sge` (signed)
    Sge,
    /// `ult`
    Ult,
    /// `ule`
    Ule,
    /// `ugt`
    Ugt,
    /// `uge`
    Uge,
}

/// An integer width conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CastOp {
    /// Zero extension.
    Zext,
    /// Sign extension.
    Sext,
    /// Truncation.
    Trunc,
}

/// What a non-terminator, non-phi instruction computes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstKind {
    /// A field operation.
    Field { op: FieldOp, a: Operand, b: Operand },
    /// A field operation on `<lanes x field>` vectors, lane by lane.
    FieldVec {
        op: FieldOp,
        lanes: u32,
        a: Operand,
        b: Operand,
    },
    /// `extractelement <lanes x field> v, iN idx`.
    Extract {
        lanes: u32,
        v: Operand,
        idx_bits: u32,
        idx: Operand,
    },
    /// `insertelement <lanes x field> v, field elt, iN idx`.
    Insert {
        lanes: u32,
        v: Operand,
        elt: Operand,
        idx_bits: u32,
        idx: Operand,
    },
    /// `shufflevector <lanes x field> a, <lanes x field> b, <M x i32> mask`: lane `i`
    /// of the result is lane `mask[i]` of `a ++ b`; a `None` (undef/poison) mask lane
    /// gives an unspecified lane, which is zero here.
    Shuffle {
        lanes: u32,
        a: Operand,
        b: Operand,
        mask: Vec<Option<u32>>,
    },
    /// An integer operation on `iN` operands.
    Int {
        op: IntOp,
        bits: u32,
        a: Operand,
        b: Operand,
    },
    /// An integer comparison producing an `i1`.
    Icmp {
        pred: Pred,
        bits: u32,
        a: Operand,
        b: Operand,
    },
    /// `select i1 cond, ty a, ty b`.
    Select {
        ty: Ty,
        cond: Operand,
        a: Operand,
        b: Operand,
    },
    /// `zext` / `sext` / `trunc` between integer widths.
    Cast {
        op: CastOp,
        from: u32,
        to: u32,
        v: Operand,
    },
    /// `freeze`: compile-time values are never poison, so it is the identity.
    Copy { ty: Ty, v: Operand },
    /// zkLLVM's `poseidon` builtin (`call <3 x field> @llvm.assigner.poseidon.*(<3 x
    /// field> state)`): the permuted state.
    Poseidon { state: Operand },
    /// A call to a function defined in the module, inlined when executed.
    Call {
        callee: String,
        ret: Option<Ty>,
        args: Vec<(Ty, Operand)>,
    },
}

/// An instruction with its result slot (if named) and its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inst {
    /// Where the result goes; `None` for an unnamed result or a void call.
    pub dest: Option<Slot>,
    /// The computation.
    pub kind: InstKind,
    /// 1-based line in the IR text.
    pub line: usize,
}

/// A `phi` at the start of a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phi {
    /// The result slot.
    pub dest: Slot,
    /// The value type.
    pub ty: Ty,
    /// `(value, predecessor)` pairs.
    pub incoming: Vec<(Operand, BlockId)>,
    /// 1-based line in the IR text.
    pub line: usize,
}

/// How a block ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// `br label %b`
    Br(BlockId),
    /// `br i1 %c, label %t, label %f`
    CondBr {
        cond: Operand,
        then: BlockId,
        other: BlockId,
    },
    /// `switch iN %v, label %default [ iN c, label %b ... ]`
    Switch {
        bits: u32,
        v: Operand,
        default: BlockId,
        cases: Vec<(u64, BlockId)>,
    },
    /// `ret void` (`None`) or `ret ty v`.
    Ret(Option<(Ty, Operand)>),
    /// `unreachable`: reaching it at compile time is an error.
    Unreachable,
}

/// A basic block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The label as written (or the implicit number), for messages.
    pub label: String,
    /// The leading phis, evaluated simultaneously on entry.
    pub phis: Vec<Phi>,
    /// The body.
    pub insts: Vec<Inst>,
    /// The terminator.
    pub term: Term,
    /// 1-based line of the terminator.
    pub term_line: usize,
}

/// A parsed function of the subset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// The name without `@`.
    pub name: String,
    /// 1-based line of the `define`.
    pub line: usize,
    /// Parameter types and slots, in order.
    pub params: Vec<(Ty, Slot)>,
    /// Return type; `None` for `void`.
    pub ret: Option<Ty>,
    /// Blocks indexed by [`BlockId`].
    pub blocks: Vec<Block>,
    /// The block execution starts in.
    pub entry: BlockId,
    /// Names of the slots, for messages.
    pub slot_names: Vec<String>,
    /// Every callee with the line of (one of) its calls, to resolve before running.
    pub calls: Vec<(String, usize)>,
}

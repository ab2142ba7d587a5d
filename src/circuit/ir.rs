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
    /// `ptr` or a typed pointer `T*`: an address known at compile time (an object
    /// and a cell offset in it); never a field value.
    Ptr,
}

impl Ty {
    /// How many field elements a value of this type holds as a circuit parameter or
    /// result (`None` for integers).
    pub fn field_lanes(self) -> Option<usize> {
        match self {
            Ty::Field => Some(1),
            Ty::FieldVec(n) => Some(n as usize),
            Ty::Int(_) | Ty::Ptr => None,
        }
    }
}

impl std::fmt::Display for Ty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ty::Field => f.write_str(FIELD_TYPE),
            Ty::FieldVec(n) => write!(f, "<{n} x {FIELD_TYPE}>"),
            Ty::Int(n) => write!(f, "i{n}"),
            Ty::Ptr => f.write_str("ptr"),
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
    /// The `null` pointer.
    Null,
}

/// The most cells (field elements, integers, pointers) one memory type may span.
pub const MAX_TYPE_CELLS: u64 = 1 << 20;

/// A type as laid out in memory. Memory is modelled as cells, one per scalar (field
/// element, integer or pointer; a `<N x field>` vector takes N cells), not bytes:
/// addresses are (object, cell) pairs, so no byte layout is ever guessed. Aggregates
/// carry their cell count (and a struct its field offsets), and share their element
/// types, so named types used many times stay small.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemTy {
    /// A field element.
    Field,
    /// `iN`.
    Int(u32),
    /// A pointer.
    Ptr,
    /// `<N x field>`: N field cells.
    FieldVec(u32),
    /// `[N x T]`.
    Array {
        /// Elements.
        len: u64,
        /// The element type.
        elem: std::rc::Rc<MemTy>,
        /// `len * elem.cells()`.
        cells: u64,
    },
    /// `{ T, ... }` or `<{ T, ... }>`.
    Struct {
        /// Field types.
        fields: std::rc::Rc<[MemTy]>,
        /// Cell offset of each field.
        offsets: std::rc::Rc<[u64]>,
        /// Total cells.
        cells: u64,
    },
}

/// What a memory cell may hold, as its type says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellKind {
    /// A field element.
    Field,
    /// An `iN` integer.
    Int(u32),
    /// A pointer.
    Ptr,
}

impl MemTy {
    /// Cells a value of this type spans.
    pub fn cells(&self) -> u64 {
        match self {
            MemTy::Field | MemTy::Int(_) | MemTy::Ptr => 1,
            MemTy::FieldVec(n) => u64::from(*n),
            MemTy::Array { cells, .. } | MemTy::Struct { cells, .. } => *cells,
        }
    }

    /// An array type, or `None` when it would span more than [`MAX_TYPE_CELLS`].
    pub fn array(len: u64, elem: MemTy) -> Option<MemTy> {
        let cells = len.checked_mul(elem.cells())?;
        (cells <= MAX_TYPE_CELLS).then(|| MemTy::Array {
            len,
            elem: std::rc::Rc::new(elem),
            cells,
        })
    }

    /// A struct type, or `None` when it would span more than [`MAX_TYPE_CELLS`].
    pub fn structure(fields: Vec<MemTy>) -> Option<MemTy> {
        let mut offsets = Vec::with_capacity(fields.len());
        let mut cells = 0u64;
        for f in &fields {
            offsets.push(cells);
            cells = cells.checked_add(f.cells())?;
        }
        (cells <= MAX_TYPE_CELLS).then(|| MemTy::Struct {
            fields: fields.into(),
            offsets: offsets.into(),
            cells,
        })
    }

    /// The memory form of a value type.
    pub fn of(ty: Ty) -> MemTy {
        match ty {
            Ty::Field => MemTy::Field,
            Ty::FieldVec(n) => MemTy::FieldVec(n),
            Ty::Int(b) => MemTy::Int(b),
            Ty::Ptr => MemTy::Ptr,
        }
    }

    /// The kind of each cell, in order (`out` receives [`MemTy::cells`] entries).
    pub fn cell_kinds(&self, out: &mut Vec<CellKind>) {
        match self {
            MemTy::Field => out.push(CellKind::Field),
            MemTy::Int(b) => out.push(CellKind::Int(*b)),
            MemTy::Ptr => out.push(CellKind::Ptr),
            MemTy::FieldVec(n) => out.extend((0..*n).map(|_| CellKind::Field)),
            MemTy::Array { len, elem, .. } => {
                let start = out.len();
                elem.cell_kinds(out);
                let one = out.len() - start;
                for _ in 1..*len {
                    out.extend_from_within(start..start + one);
                }
            }
            MemTy::Struct { fields, .. } => fields.iter().for_each(|f| f.cell_kinds(out)),
        }
    }

    /// Whether every cell is a field element (so the type can be a circuit input or
    /// output).
    pub fn all_field(&self) -> bool {
        match self {
            MemTy::Field | MemTy::FieldVec(_) => true,
            MemTy::Int(_) | MemTy::Ptr => false,
            MemTy::Array { elem, .. } => elem.all_field(),
            MemTy::Struct { fields, .. } => fields.iter().all(MemTy::all_field),
        }
    }
}

impl std::fmt::Display for MemTy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemTy::Field => f.write_str(FIELD_TYPE),
            MemTy::Int(n) => write!(f, "i{n}"),
            MemTy::Ptr => f.write_str("ptr"),
            MemTy::FieldVec(n) => write!(f, "<{n} x {FIELD_TYPE}>"),
            MemTy::Array { len, elem, .. } => write!(f, "[{len} x {elem}]"),
            MemTy::Struct { fields, .. } => {
                f.write_str("{ ")?;
                for (i, t) in fields.iter().enumerate().take(8) {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{t}")?;
                }
                if fields.len() > 8 {
                    f.write_str(", ...")?;
                }
                f.write_str(" }")
            }
        }
    }
}

/// How a pointer parameter is passed, from its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamAttr {
    /// A plain value (or a pointer shared with the caller).
    Plain,
    /// `byval(T)`: the callee gets its own copy of the pointed-to `T`. For the
    /// circuit function, a pointer to a field array without `byval` is read the same
    /// way: the pointed-to elements are the inputs.
    ByVal(MemTy),
    /// `sret(T)`: where the function writes its result; for the circuit, the outputs.
    Sret(MemTy),
    /// A typed pointer `T*` without `byval`: shared with the caller; for the circuit
    /// function, `T`'s elements are inputs.
    Pointee(MemTy),
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

impl Pred {
    /// Every predicate.
    pub const ALL: [Pred; 10] = [
        Pred::Eq,
        Pred::Ne,
        Pred::Slt,
        Pred::Sle,
        Pred::Sgt,
        Pred::Sge,
        Pred::Ult,
        Pred::Ule,
        Pred::Ugt,
        Pred::Uge,
    ];

    /// The predicate as the IR spells it.
    pub fn name(self) -> &'static str {
        match self {
            Pred::Eq => "eq",
            Pred::Ne => "ne",
            Pred::Slt => "slt",
            Pred::Sle => "sle",
            Pred::Sgt => "sgt",
            Pred::Sge => "sge",
            Pred::Ult => "ult",
            Pred::Ule => "ule",
            Pred::Ugt => "ugt",
            Pred::Uge => "uge",
        }
    }
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
    /// `alloca T [, iN count]`: a fresh object of `count` times `T`.
    Alloca { ty: MemTy, count: u64 },
    /// `load ty, ptr p`.
    Load { ty: Ty, ptr: Operand },
    /// `store ty v, ptr p` (no result).
    Store { ty: Ty, v: Operand, ptr: Operand },
    /// `getelementptr T, ptr p, iN idx, ...`: the address `idx` cells-of-`T` on from
    /// `p`, then into `T` by the other indices.
    Gep {
        ty: MemTy,
        ptr: Operand,
        indices: Vec<(u32, Operand)>,
    },
    /// `llvm.memcpy` / `llvm.memmove` (`set` = `None`) or `llvm.memset` (`set` = the
    /// byte): `len` bytes (an `iN` operand) at `dst`.
    MemOp {
        dst: Operand,
        src: Option<Operand>,
        set: Option<Operand>,
        len_bits: u32,
        len: Operand,
    },
    /// `llvm.lifetime.start(i64 size, ptr p)`: says how many bytes the object at `p`
    /// takes, which tells the size of a field element in memory.
    Lifetime { size: u64, ptr: Operand },
    /// An `icmp` between two pointers.
    IcmpPtr { pred: Pred, a: Operand, b: Operand },
    /// `icmp eq` (`equal`) or `icmp ne` between two field values: a bit known only when
    /// proving, which can choose between values in a `select`.
    IcmpField { equal: bool, a: Operand, b: Operand },
    /// zkLLVM's `poseidon` builtin (`call <3 x field> @llvm.assigner.poseidon.*(<3 x
    /// field> state)`): the permuted state.
    Poseidon { state: Operand },
    /// zkLLVM's `sha2_256` builtin (`call <2 x field> @llvm.assigner.sha2_256.*(<2 x
    /// field> a, <2 x field> b)`): SHA-256 of the 64 bytes `a0 ‖ a1 ‖ b0 ‖ b1` (each
    /// lane 16 big-endian bytes), as two 128-bit halves.
    Sha256 { a: Operand, b: Operand },
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
    /// How each parameter is passed (pointer parameters may be `byval` or `sret`).
    pub param_attrs: Vec<ParamAttr>,
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

impl Function {
    /// For the circuit function: how many field elements each input parameter takes,
    /// in order (1 for a field element, N for `<N x field>`, the elements of the
    /// pointed-to type for a `byval` or typed pointer); `sret` parameters are outputs,
    /// not inputs, and are left out.
    pub fn input_lanes(&self) -> Vec<usize> {
        self.params
            .iter()
            .zip(&self.param_attrs)
            .filter_map(|((ty, _), attr)| match (ty, attr) {
                (Ty::Ptr, ParamAttr::ByVal(t) | ParamAttr::Pointee(t)) => Some(t.cells() as usize),
                (Ty::Ptr, _) => None,
                (ty, _) => ty.field_lanes(),
            })
            .collect()
    }
}

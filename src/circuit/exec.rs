//! Symbolic execution: runs the circuit function with concrete integers and symbolic
//! field values, unrolling loops and inlining calls into a straight-line program.
//!
//! Integers never depend on the circuit inputs (there is no instruction in the subset
//! that turns a field value into an integer; an equality of field values is a
//! [`Val::Bit`], which only `select`, `and`, `or` and `xor` accept), so every branch is
//! decided at compile time and the program's shape is input-independent. Execution is bounded three ways:
//! executed IR instructions, call depth, and values held by live frames; together with
//! the builder's instruction cap this bounds time and memory for any input text.

use std::collections::HashMap;
use std::rc::Rc;

use ark_ff::Zero as _;

use crate::circuit::builder::{Builder, FVal};
use crate::circuit::error::{excerpt, CompileError, ErrorKind};
use crate::circuit::ir::{
    BlockId, CastOp, CellKind, FieldOp, Function, InstKind, IntOp, MemTy, Operand, ParamAttr, Pred,
    Term, Ty,
};
use crate::circuit::memory::{Memory, Ptr, Scalar};
use crate::circuit::program::{Fe, Program};
use crate::circuit::syntax::mask;

/// Memory objects (`alloca`s executed, `byval` copies, pointer inputs) one compilation
/// may create: each costs a little bookkeeping even after its function returns.
pub const MAX_OBJECTS: usize = 1 << 16;

/// Resource caps for one compilation.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Program instructions, counted before dead-code removal.
    pub max_instrs: usize,
    /// Executed IR instructions (including phis and terminators).
    pub max_steps: u64,
    /// Nested inlined calls.
    pub max_depth: usize,
    /// Values held by all live frames together (a vector counts one per lane, on top
    /// of its slot).
    pub max_frame_values: usize,
}

impl Default for Limits {
    /// Caps sized for real zkLLVM circuits while keeping a hostile input to about a
    /// second of work and well under a gigabyte.
    fn default() -> Self {
        Limits {
            max_instrs: 1 << 20,
            max_steps: 1 << 24,
            max_depth: 64,
            max_frame_values: 1 << 20,
        }
    }
}

/// A runtime value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Val {
    Int {
        bits: u32,
        v: u64,
    },
    Field(FVal),
    /// A vector of field values (lanes shared between copies of the value).
    Vec(Rc<[FVal]>),
    /// An address in [`Memory`].
    Ptr(Ptr),
    /// An `i1` known only when proving: the result of `icmp eq`/`ne` on field values,
    /// held as a field value the program constrains to 0 or 1. It can choose between
    /// values (`select`) and combine with other bits (`and`, `or`, `xor`), never decide
    /// control flow or become an integer.
    Bit(FVal),
}

impl Val {
    /// Lanes held beyond the value's own slot (charged to the frame-values cap).
    fn lanes(&self) -> usize {
        match self {
            Val::Vec(v) => v.len(),
            _ => 0,
        }
    }
}

struct Frame<'f> {
    func: &'f Function,
    values: Vec<Option<Val>>,
    /// Memory objects this call allocated, freed when it returns.
    objects: Vec<u32>,
}

struct Exec<'f> {
    funcs: &'f HashMap<String, Function>,
    builder: Builder,
    mem: Memory,
    limits: Limits,
    steps: u64,
    depth: usize,
    frame_values: usize,
}

/// Unrolls `circuit` (whose callees must all be in `funcs`) into a program whose
/// inputs are the circuit's parameters, which the caller has checked are field typed.
pub fn run(
    funcs: &HashMap<String, Function>,
    circuit: &Function,
    limits: Limits,
) -> Result<Program, CompileError> {
    // Each input parameter takes as many consecutive inputs as it has lanes.
    let builder = Builder::new(circuit.input_lanes().iter().sum(), limits.max_instrs);
    let mut ex = Exec {
        funcs,
        builder,
        mem: Memory::new(MAX_OBJECTS.min(limits.max_frame_values)),
        limits,
        steps: 0,
        depth: 0,
        frame_values: 0,
    };
    let mut next = 0usize;
    let mut args: Vec<Val> = Vec::with_capacity(circuit.params.len());
    let mut sret = None;
    for ((ty, _), attr) in circuit.params.iter().zip(&circuit.param_attrs) {
        let mut inputs = |n: usize| -> Vec<FVal> {
            let v = (next..next + n).map(|i| ex.builder.input(i)).collect();
            next += n;
            v
        };
        args.push(match (*ty, attr) {
            (Ty::FieldVec(n), _) => Val::Vec(inputs(n as usize).into()),
            (Ty::Ptr, ParamAttr::ByVal(t) | ParamAttr::Pointee(t)) => {
                let vals = inputs(t.cells() as usize);
                let init = vals.into_iter().map(Scalar::Field).collect();
                Val::Ptr(ex.alloc_object(None, t, Some(init), circuit.line)?)
            }
            (Ty::Ptr, ParamAttr::Sret(t)) => {
                let p = ex.alloc_object(None, t, None, circuit.line)?;
                sret = Some((p, t.cells()));
                Val::Ptr(p)
            }
            _ => Val::Field(inputs(1)[0]),
        });
    }
    let out = ex.call(circuit, args, circuit.line)?;
    let outs: Vec<FVal> = match (out, sret) {
        (Some(Val::Field(out)), None) => vec![out],
        (Some(Val::Vec(lanes)), None) => lanes.to_vec(),
        (None, Some((p, n))) => {
            let kinds = vec![CellKind::Field; n as usize];
            let cells = ex.mem.load(p, &kinds).map_err(|k| match k {
                ErrorKind::UndefinedBehaviour(m) => {
                    ErrorKind::CircuitReturn(format!("an `sret` result not fully written ({m})"))
                }
                other => other,
            });
            let cells = cells.map_err(|k| CompileError::at(circuit.line, k))?;
            cells
                .into_iter()
                .map(|c| match c {
                    Scalar::Field(f) => f,
                    _ => FVal::Const(Fe::zero()),
                })
                .collect()
        }
        (other, _) => {
            let kind = ErrorKind::CircuitReturn(describe(other.as_ref()));
            return Err(CompileError::at(circuit.line, kind));
        }
    };
    ex.builder.finish(&outs, circuit.line)
}

fn describe(v: Option<&Val>) -> String {
    match v {
        None => "void".into(),
        Some(Val::Int { bits, .. }) => format!("i{bits}"),
        Some(Val::Field(_)) => Ty::Field.to_string(),
        Some(Val::Vec(v)) => Ty::FieldVec(v.len() as u32).to_string(),
        Some(Val::Ptr(_)) => Ty::Ptr.to_string(),
        Some(Val::Bit(_)) => "i1 (a comparison of field values)".into(),
    }
}

/// What a [`Val::Bit`] cannot do: decide control flow, become an integer, be stored.
fn witness_bit_misuse() -> ErrorKind {
    ErrorKind::NonConstantControl(
        "a comparison of field values (`icmp eq`/`ne`) is unknown until proving: it can \
         choose between values with `select` and combine with `and`/`or`/`xor`, but not \
         decide a branch, become an integer or be stored"
            .into(),
    )
}

/// A value as memory cells.
fn to_scalars(v: &Val) -> Vec<Scalar> {
    match v {
        Val::Field(f) => vec![Scalar::Field(*f)],
        Val::Int { bits, v } => vec![Scalar::Int { bits: *bits, v: *v }],
        Val::Ptr(p) => vec![Scalar::Ptr(*p)],
        Val::Vec(lanes) => lanes.iter().map(|&f| Scalar::Field(f)).collect(),
        // Refused by the store before it gets here.
        Val::Bit(_) => Vec::new(),
    }
}

/// Memory cells read as a value of type `ty` (their kinds were checked by the load).
fn from_scalars(ty: Ty, cells: Vec<Scalar>) -> Val {
    let field = |c: &Scalar| match c {
        Scalar::Field(f) => *f,
        _ => FVal::Const(Fe::zero()),
    };
    match (ty, cells.first()) {
        (Ty::FieldVec(_), _) => Val::Vec(cells.iter().map(field).collect()),
        (_, Some(Scalar::Int { bits, v })) => Val::Int { bits: *bits, v: *v },
        (_, Some(Scalar::Ptr(p))) => Val::Ptr(*p),
        (_, Some(c)) => Val::Field(field(c)),
        (_, None) => Val::Field(FVal::Const(Fe::zero())),
    }
}

fn kinds_of(ty: Ty) -> Vec<CellKind> {
    let mut k = Vec::new();
    MemTy::of(ty).cell_kinds(&mut k);
    k
}

/// A lane of a vector constant: an undefined (`undef`/`poison`) lane may be any value;
/// it is zero here.
fn lane(c: Option<Fe>) -> FVal {
    FVal::Const(c.unwrap_or_else(Fe::zero))
}

fn sext(v: u64, bits: u32) -> i64 {
    let shift = 64u32.saturating_sub(bits).min(63);
    ((v << shift) as i64) >> shift
}

impl<'f> Exec<'f> {
    fn step(&mut self, line: usize) -> Result<(), CompileError> {
        self.charge(line, 0)
    }

    /// Counts one step plus `extra` for work proportional to an instruction's size
    /// (phi incoming lists, switch cases, frames), so a huge instruction in a loop
    /// cannot multiply the time the step cap allows.
    fn charge(&mut self, line: usize, extra: usize) -> Result<(), CompileError> {
        self.steps = self.steps.saturating_add(1 + (extra / 16) as u64);
        if self.steps > self.limits.max_steps {
            return Err(CompileError::at(
                line,
                ErrorKind::StepLimit(self.limits.max_steps),
            ));
        }
        Ok(())
    }

    fn call(
        &mut self,
        f: &'f Function,
        args: Vec<Val>,
        line: usize,
    ) -> Result<Option<Val>, CompileError> {
        if self.depth >= self.limits.max_depth {
            return Err(CompileError::at(
                line,
                ErrorKind::CallDepth(self.limits.max_depth),
            ));
        }
        let n = f.slot_names.len();
        if self.frame_values.saturating_add(n) > self.limits.max_frame_values {
            let kind = ErrorKind::FrameTooLarge(self.limits.max_frame_values);
            return Err(CompileError::at(line, kind));
        }
        self.charge(line, n.saturating_add(args.len()))?;
        self.depth += 1;
        self.frame_values += n;
        let mut frame = Frame {
            func: f,
            values: vec![None; n],
            objects: Vec::new(),
        };
        let mut result = Ok(None);
        for ((&(_, slot), v), attr) in f.params.iter().zip(args).zip(&f.param_attrs) {
            let v = match (attr, v) {
                // The callee's own copy of a `byval` argument.
                (ParamAttr::ByVal(t), Val::Ptr(p)) => {
                    match self.copy_object(&mut frame, p, t.cells(), line) {
                        Ok(q) => Val::Ptr(q),
                        Err(e) => {
                            result = Err(e);
                            break;
                        }
                    }
                }
                (_, v) => v,
            };
            if let Err(e) = self.set(&mut frame, Some(slot), v, line) {
                result = Err(e);
                break;
            }
        }
        if result.is_ok() {
            result = self.run_body(&mut frame);
        }
        let lanes: usize = frame.values.iter().flatten().map(Val::lanes).sum();
        let cells: usize = frame.objects.iter().map(|&o| self.mem.free(o)).sum();
        self.depth -= 1;
        self.frame_values -= n + lanes + cells;
        result
    }

    /// Charges `cells` new memory cells against the frame-values cap.
    fn charge_cells(&mut self, cells: usize, line: usize) -> Result<(), CompileError> {
        self.charge(line, cells)?;
        let total = self.frame_values.saturating_add(cells);
        if total > self.limits.max_frame_values {
            let kind = ErrorKind::FrameTooLarge(self.limits.max_frame_values);
            return Err(CompileError::at(line, kind));
        }
        self.frame_values = total;
        Ok(())
    }

    /// A new object of type `t` (`init` gives its cells), owned by `frame` if given
    /// (else it lives for the whole compilation).
    fn alloc_object(
        &mut self,
        frame: Option<&mut Frame<'_>>,
        t: &MemTy,
        init: Option<Vec<Scalar>>,
        line: usize,
    ) -> Result<Ptr, CompileError> {
        let n = t.cells() as usize;
        self.charge_cells(n, line)?;
        let mut kinds = Vec::with_capacity(n);
        t.cell_kinds(&mut kinds);
        let p = self.mem.alloc(kinds, init);
        let p = match p {
            Ok(p) => p,
            Err(k) => {
                self.frame_values -= n;
                return Err(CompileError::at(line, k));
            }
        };
        // Not owned by a frame: never freed, so never uncharged either.
        if let Some(fr) = frame {
            fr.objects.push(p.obj);
        }
        Ok(p)
    }

    /// A copy of the `n` cells at `p`, owned by `frame`.
    fn copy_object(
        &mut self,
        frame: &mut Frame<'_>,
        p: Ptr,
        n: u64,
        line: usize,
    ) -> Result<Ptr, CompileError> {
        self.charge_cells(n as usize, line)?;
        match self.mem.duplicate(p, n) {
            Ok(q) => {
                frame.objects.push(q.obj);
                Ok(q)
            }
            Err(k) => {
                self.frame_values -= n as usize;
                Err(CompileError::at(line, k))
            }
        }
    }

    fn pointer(&self, fr: &Frame<'_>, op: &Operand, line: usize) -> Result<Ptr, CompileError> {
        match self.val(fr, op, Ty::Ptr, line)? {
            Val::Ptr(p) => Ok(p),
            _ => Err(CompileError::at(
                line,
                ErrorKind::TypeMismatch("operand is not a pointer".into()),
            )),
        }
    }

    /// `getelementptr`: the base moved by the indices over `ty`'s layout.
    fn gep(
        &mut self,
        fr: &Frame<'_>,
        ty: &MemTy,
        base: &Operand,
        indices: &[(u32, Operand)],
        line: usize,
    ) -> Result<Ptr, CompileError> {
        let at = |k| CompileError::at(line, k);
        self.charge(line, indices.len())?;
        let p = self.pointer(fr, base, line)?;
        let mut idx = Vec::with_capacity(indices.len());
        for (bits, op) in indices {
            idx.push(sext(self.int(fr, op, *bits, line)?, *bits));
        }
        let Some((&first, rest)) = idx.split_first() else {
            return Ok(p);
        };
        // A byte offset (`getelementptr i8, ptr p, i64 n`, as optimisers write
        // constant offsets) over memory that is not bytes.
        if *ty == MemTy::Int(8) && rest.is_empty() {
            let (q, walked) = self.mem.byte_offset(p, first).map_err(at)?;
            self.charge(line, walked)?;
            return Ok(q);
        }
        let far = || {
            at(ErrorKind::UndefinedBehaviour(
                "address arithmetic overflow".into(),
            ))
        };
        let mut off = first.checked_mul(ty.cells() as i64).ok_or_else(far)?;
        let mut cur = ty.clone();
        for &i in rest {
            let (step, next) = match &cur {
                MemTy::Array { elem, .. } => (
                    i.checked_mul(elem.cells() as i64).ok_or_else(far)?,
                    (**elem).clone(),
                ),
                MemTy::FieldVec(_) => (i, MemTy::Field),
                MemTy::Struct {
                    fields, offsets, ..
                } => {
                    let field = usize::try_from(i)
                        .ok()
                        .and_then(|i| Some((*offsets.get(i)? as i64, fields.get(i)?.clone())));
                    field.ok_or_else(|| {
                        let msg =
                            format!("`getelementptr` field {i} of a struct of {}", fields.len());
                        at(ErrorKind::UndefinedBehaviour(msg))
                    })?
                }
                scalar => {
                    let msg = format!("`getelementptr` index into a `{scalar}`");
                    return Err(at(ErrorKind::TypeMismatch(msg)));
                }
            };
            off = off.checked_add(step).ok_or_else(far)?;
            cur = next;
        }
        Memory::offset(p, off).map_err(at)
    }

    fn run_body(&mut self, fr: &mut Frame<'f>) -> Result<Option<Val>, CompileError> {
        let f = fr.func;
        let mut cur = f.entry;
        let mut prev: Option<BlockId> = None;
        loop {
            let block = f.blocks.get(cur as usize).ok_or_else(|| {
                CompileError::at(f.line, ErrorKind::UndefinedBlock(cur.to_string()))
            })?;
            if !block.phis.is_empty() {
                let mut vals = Vec::with_capacity(block.phis.len());
                for phi in &block.phis {
                    self.charge(phi.line, phi.incoming.len())?;
                    let from = prev.and_then(|p| phi.incoming.iter().find(|(_, b)| *b == p));
                    let Some((op, _)) = from else {
                        let msg = match prev.and_then(|p| f.blocks.get(p as usize)) {
                            Some(p) => format!(
                                "`phi` has no value for predecessor `%{}`",
                                excerpt(&p.label)
                            ),
                            None => "`phi` in the entry block".to_string(),
                        };
                        return Err(CompileError::at(phi.line, ErrorKind::Syntax(msg)));
                    };
                    vals.push((phi.dest, self.val(fr, op, phi.ty, phi.line)?, phi.line));
                }
                for (dest, v, line) in vals {
                    self.set(fr, Some(dest), v, line)?;
                }
            }
            for inst in &block.insts {
                self.step(inst.line)?;
                let v = match &inst.kind {
                    InstKind::Alloca { ty, count } => {
                        let t = MemTy::array(*count, ty.clone()).ok_or_else(|| {
                            CompileError::at(
                                inst.line,
                                ErrorKind::Unsupported("`alloca` too large".into()),
                            )
                        })?;
                        Some(Val::Ptr(self.alloc_object(
                            Some(fr),
                            &t,
                            None,
                            inst.line,
                        )?))
                    }
                    kind => self.inst(fr, kind, inst.line)?,
                };
                if let Some(v) = v {
                    self.set(fr, inst.dest, v, inst.line)?;
                }
            }
            let line = block.term_line;
            let size = match &block.term {
                Term::Switch { cases, .. } => cases.len(),
                _ => 0,
            };
            self.charge(line, size)?;
            let next = match &block.term {
                Term::Br(b) => *b,
                Term::CondBr { cond, then, other } => {
                    if self.int(fr, cond, 1, line)? == 1 {
                        *then
                    } else {
                        *other
                    }
                }
                Term::Switch {
                    bits,
                    v,
                    default,
                    cases,
                } => {
                    let v = self.int(fr, v, *bits, line)?;
                    cases
                        .iter()
                        .find(|(c, _)| *c == v)
                        .map_or(*default, |(_, b)| *b)
                }
                Term::Ret(None) => return self.check_ret(f, None, line),
                Term::Ret(Some((ty, op))) => {
                    let v = self.val(fr, op, *ty, line)?;
                    return self.check_ret(f, Some(v), line);
                }
                Term::Unreachable => {
                    let kind = ErrorKind::UndefinedBehaviour("reached `unreachable`".into());
                    return Err(CompileError::at(line, kind));
                }
            };
            prev = Some(cur);
            cur = next;
        }
    }

    fn check_ret(
        &self,
        f: &Function,
        v: Option<Val>,
        line: usize,
    ) -> Result<Option<Val>, CompileError> {
        let ok = match (f.ret, &v) {
            (None, None) => true,
            (Some(Ty::Field), Some(Val::Field(_))) => true,
            (Some(Ty::FieldVec(n)), Some(Val::Vec(v))) => v.len() == n as usize,
            (Some(Ty::Int(a)), Some(Val::Int { bits, .. })) => a == *bits,
            (Some(Ty::Int(1)), Some(Val::Bit(_))) => true,
            (Some(Ty::Ptr), Some(Val::Ptr(_))) => true,
            _ => false,
        };
        if ok {
            return Ok(v);
        }
        let want = f.ret.map_or("void".to_string(), |t| t.to_string());
        let msg = format!(
            "`@{}` returns `{want}` but `ret` gives `{}`",
            excerpt(&f.name),
            describe(v.as_ref())
        );
        Err(CompileError::at(line, ErrorKind::TypeMismatch(msg)))
    }

    fn read(&self, fr: &Frame<'_>, op: &Operand, ty: Ty, line: usize) -> Result<Val, CompileError> {
        match (op, ty) {
            (Operand::Slot(s), _) => match fr.values.get(*s as usize).cloned().flatten() {
                Some(v) => Ok(v),
                None => {
                    let name = fr
                        .func
                        .slot_names
                        .get(*s as usize)
                        .map(|n| excerpt(n))
                        .unwrap_or_default();
                    Err(CompileError::at(line, ErrorKind::UseBeforeDefinition(name)))
                }
            },
            (Operand::Int(v), Ty::Int(bits)) => Ok(Val::Int { bits, v: *v }),
            (Operand::Null, Ty::Ptr) => Ok(Val::Ptr(Ptr::NULL)),
            (Operand::Field(c), Ty::Field) => Ok(Val::Field(FVal::Const(*c))),
            (Operand::FieldVec(lanes), Ty::FieldVec(n)) if lanes.len() == n as usize => {
                Ok(Val::Vec(lanes.iter().map(|&c| lane(c)).collect()))
            }
            _ => Err(CompileError::at(
                line,
                ErrorKind::TypeMismatch("constant of the wrong type".into()),
            )),
        }
    }

    /// Reads an operand, checking it has type `ty`.
    fn val(&self, fr: &Frame<'_>, op: &Operand, ty: Ty, line: usize) -> Result<Val, CompileError> {
        let v = self.read(fr, op, ty, line)?;
        let ok = match (&v, ty) {
            (Val::Int { bits, .. }, Ty::Int(want)) => *bits == want,
            (Val::Field(_), Ty::Field) => true,
            (Val::Vec(v), Ty::FieldVec(n)) => v.len() == n as usize,
            (Val::Ptr(_), Ty::Ptr) => true,
            (Val::Bit(_), Ty::Int(1)) => true,
            _ => false,
        };
        if ok {
            return Ok(v);
        }
        let msg = format!("operand is `{}`, expected `{ty}`", describe(Some(&v)));
        let kind = match (v, ty) {
            (Val::Field(_), Ty::Int(1)) => ErrorKind::NonConstantControl(
                "a condition is a field value, unknown until proving".into(),
            ),
            _ => ErrorKind::TypeMismatch(msg),
        };
        Err(CompileError::at(line, kind))
    }

    fn int(
        &self,
        fr: &Frame<'_>,
        op: &Operand,
        bits: u32,
        line: usize,
    ) -> Result<u64, CompileError> {
        match self.val(fr, op, Ty::Int(bits), line)? {
            Val::Int { v, .. } => Ok(v),
            Val::Bit(_) => Err(CompileError::at(line, witness_bit_misuse())),
            Val::Field(_) | Val::Vec(_) | Val::Ptr(_) => Err(CompileError::at(
                line,
                ErrorKind::TypeMismatch("field operand".into()),
            )),
        }
    }

    fn field(&self, fr: &Frame<'_>, op: &Operand, line: usize) -> Result<FVal, CompileError> {
        match self.val(fr, op, Ty::Field, line)? {
            Val::Field(v) => Ok(v),
            Val::Int { .. } | Val::Vec(_) | Val::Ptr(_) | Val::Bit(_) => Err(CompileError::at(
                line,
                ErrorKind::TypeMismatch("integer operand".into()),
            )),
        }
    }

    /// Reads a `<lanes x field>` operand, charging a step per 16 lanes.
    fn vector(
        &mut self,
        fr: &Frame<'_>,
        op: &Operand,
        lanes: u32,
        line: usize,
    ) -> Result<Rc<[FVal]>, CompileError> {
        self.charge(line, lanes as usize)?;
        match self.val(fr, op, Ty::FieldVec(lanes), line)? {
            Val::Vec(v) => Ok(v),
            _ => Err(CompileError::at(
                line,
                ErrorKind::TypeMismatch("scalar operand for a vector".into()),
            )),
        }
    }

    /// A lane index known at compile time, checked against the vector's lanes.
    fn lane_index(
        &self,
        fr: &Frame<'_>,
        idx: &Operand,
        bits: u32,
        lanes: u32,
        what: &str,
        line: usize,
    ) -> Result<usize, CompileError> {
        let i = self.int(fr, idx, bits, line)?;
        if i >= u64::from(lanes) {
            let msg = format!("`{what}` at lane {i} of a vector of {lanes} (poison)");
            return Err(CompileError::at(line, ErrorKind::UndefinedBehaviour(msg)));
        }
        Ok(i as usize)
    }

    /// Stores `v` in slot `dest` (if named), keeping the lanes of live vectors within
    /// the frame-values cap.
    fn set(
        &mut self,
        fr: &mut Frame<'_>,
        dest: Option<u32>,
        v: Val,
        line: usize,
    ) -> Result<(), CompileError> {
        let Some(slot) = dest.and_then(|d| fr.values.get_mut(d as usize)) else {
            return Ok(());
        };
        let old = slot.as_ref().map_or(0, Val::lanes);
        let total = (self.frame_values - old).saturating_add(v.lanes());
        if total > self.limits.max_frame_values {
            let kind = ErrorKind::FrameTooLarge(self.limits.max_frame_values);
            return Err(CompileError::at(line, kind));
        }
        self.frame_values = total;
        *slot = Some(v);
        Ok(())
    }

    fn inst(
        &mut self,
        fr: &Frame<'f>,
        kind: &InstKind,
        line: usize,
    ) -> Result<Option<Val>, CompileError> {
        let v = match kind {
            InstKind::Field { op, a, b } => {
                let (a, b) = (self.field(fr, a, line)?, self.field(fr, b, line)?);
                Val::Field(self.builder.op(*op, a, b, line)?)
            }
            InstKind::FieldVec { op, lanes, a, b } => {
                let a = self.vector(fr, a, *lanes, line)?;
                let b = self.vector(fr, b, *lanes, line)?;
                let mut out = Vec::with_capacity(a.len());
                for (&x, &y) in a.iter().zip(b.iter()) {
                    out.push(self.builder.op(*op, x, y, line)?);
                }
                Val::Vec(out.into())
            }
            InstKind::Extract {
                lanes,
                v,
                idx_bits,
                idx,
            } => {
                let v = self.vector(fr, v, *lanes, line)?;
                let i = self.lane_index(fr, idx, *idx_bits, *lanes, "extractelement", line)?;
                Val::Field(v[i])
            }
            InstKind::Insert {
                lanes,
                v,
                elt,
                idx_bits,
                idx,
            } => {
                let v = self.vector(fr, v, *lanes, line)?;
                let x = self.field(fr, elt, line)?;
                let i = self.lane_index(fr, idx, *idx_bits, *lanes, "insertelement", line)?;
                let mut out = v.to_vec();
                out[i] = x;
                Val::Vec(out.into())
            }
            InstKind::Poseidon { state } => {
                // 55 rounds of work when folded at compile time: charged as such.
                self.charge(line, 16 * 1024)?;
                let s = self.vector(fr, state, 3, line)?;
                let [a, b, c] = [s[0], s[1], s[2]];
                Val::Vec(self.builder.poseidon([a, b, c], line)?.to_vec().into())
            }
            InstKind::Sha256 { a, b } => {
                // Two compressions of 64 rounds when folded at compile time.
                self.charge(line, 16 * 1024)?;
                let a = self.vector(fr, a, 2, line)?;
                let b = self.vector(fr, b, 2, line)?;
                let out = self.builder.sha256([a[0], a[1], b[0], b[1]], line)?;
                Val::Vec(out.to_vec().into())
            }
            InstKind::Shuffle { lanes, a, b, mask } => {
                let a = self.vector(fr, a, *lanes, line)?;
                let b = self.vector(fr, b, *lanes, line)?;
                self.charge(line, mask.len())?;
                let out: Vec<FVal> = mask
                    .iter()
                    .map(|m| match m {
                        Some(k) => {
                            let k = *k as usize;
                            a.get(k)
                                .or_else(|| b.get(k - a.len().min(k)))
                                .copied()
                                .unwrap_or_else(|| lane(None))
                        }
                        None => lane(None),
                    })
                    .collect();
                Val::Vec(out.into())
            }
            InstKind::Int { op, bits: 1, a, b } if self.is_bit(fr, a) || self.is_bit(fr, b) => {
                let (x, y) = (self.bit(fr, a, line)?, self.bit(fr, b, line)?);
                Val::Bit(self.bit_op(*op, x, y, line)?)
            }
            InstKind::Int { op, bits, a, b } => {
                let (a, b) = (self.int(fr, a, *bits, line)?, self.int(fr, b, *bits, line)?);
                let v = int_op(*op, *bits, a, b)
                    .map_err(|m| CompileError::at(line, ErrorKind::UndefinedBehaviour(m)))?;
                Val::Int { bits: *bits, v }
            }
            InstKind::Icmp { pred, bits, a, b } => {
                let (a, b) = (self.int(fr, a, *bits, line)?, self.int(fr, b, *bits, line)?);
                let (sa, sb) = (sext(a, *bits), sext(b, *bits));
                let r = match pred {
                    Pred::Eq => a == b,
                    Pred::Ne => a != b,
                    Pred::Ult => a < b,
                    Pred::Ule => a <= b,
                    Pred::Ugt => a > b,
                    Pred::Uge => a >= b,
                    Pred::Slt => sa < sb,
                    Pred::Sle => sa <= sb,
                    Pred::Sgt => sa > sb,
                    Pred::Sge => sa >= sb,
                };
                Val::Int {
                    bits: 1,
                    v: u64::from(r),
                }
            }
            InstKind::Select { ty, cond, a, b } if self.is_bit(fr, cond) => {
                let bit = self.bit(fr, cond, line)?;
                self.select_on_bit(fr, bit, *ty, a, b, line)?
            }
            InstKind::Select { ty, cond, a, b } => {
                let pick = if self.int(fr, cond, 1, line)? == 1 {
                    a
                } else {
                    b
                };
                self.val(fr, pick, *ty, line)?
            }
            InstKind::Cast { op, from, to, v } => {
                let x = self.int(fr, v, *from, line)?;
                let v = match op {
                    CastOp::Zext => x,
                    CastOp::Sext => mask(sext(x, *from) as u64, *to),
                    CastOp::Trunc => mask(x, *to),
                };
                Val::Int { bits: *to, v }
            }
            InstKind::Copy { ty, v } => self.val(fr, v, *ty, line)?,
            InstKind::Call { callee, ret, args } => {
                return self.call_inst(fr, callee, *ret, args, line)
            }
            InstKind::Alloca { .. } => {
                // Handled by `run_body`, which owns the frame.
                let kind = ErrorKind::Syntax("`alloca` outside a function body".into());
                return Err(CompileError::at(line, kind));
            }
            InstKind::Load { ty, ptr } => {
                let p = self.pointer(fr, ptr, line)?;
                let kinds = kinds_of(*ty);
                self.charge(line, kinds.len())?;
                let cells = self
                    .mem
                    .load(p, &kinds)
                    .map_err(|k| CompileError::at(line, k))?;
                from_scalars(*ty, cells)
            }
            InstKind::Store { ty, v, ptr } => {
                let v = self.val(fr, v, *ty, line)?;
                if let Val::Bit(_) = v {
                    return Err(CompileError::at(line, witness_bit_misuse()));
                }
                let p = self.pointer(fr, ptr, line)?;
                let cells = to_scalars(&v);
                self.charge(line, cells.len())?;
                self.mem
                    .store(p, &cells)
                    .map_err(|k| CompileError::at(line, k))?;
                return Ok(None);
            }
            InstKind::Gep { ty, ptr, indices } => Val::Ptr(self.gep(fr, ty, ptr, indices, line)?),
            InstKind::MemOp {
                dst,
                src,
                set,
                len_bits,
                len,
            } => {
                let d = self.pointer(fr, dst, line)?;
                let n = self.int(fr, len, *len_bits, line)?;
                let done = match (src, set) {
                    (Some(s), _) => {
                        let s = self.pointer(fr, s, line)?;
                        self.mem.copy(d, s, n)
                    }
                    (None, Some(b)) => {
                        let b = self.int(fr, b, 8, line)?;
                        self.mem.fill(d, b, n)
                    }
                    (None, None) => Ok(0),
                };
                let cells = done.map_err(|k| CompileError::at(line, k))?;
                self.charge(line, cells)?;
                return Ok(None);
            }
            InstKind::Lifetime { size, ptr } => {
                let p = self.pointer(fr, ptr, line)?;
                self.mem
                    .lifetime(p, *size)
                    .map_err(|k| CompileError::at(line, k))?;
                return Ok(None);
            }
            InstKind::IcmpField { equal, a, b } => {
                let (a, b) = (self.field(fr, a, line)?, self.field(fr, b, line)?);
                let eq = self.builder.eq(a, b, line)?;
                Val::Bit(if *equal { eq } else { self.not(eq, line)? })
            }
            InstKind::IcmpPtr { pred, a, b } => {
                let (a, b) = (self.pointer(fr, a, line)?, self.pointer(fr, b, line)?);
                let r = match pred {
                    Pred::Eq => a == b,
                    Pred::Ne => a != b,
                    _ if a.obj != b.obj => {
                        let msg = "ordering of pointers into different objects".to_string();
                        return Err(CompileError::at(line, ErrorKind::UndefinedBehaviour(msg)));
                    }
                    Pred::Ult | Pred::Slt => a.off < b.off,
                    Pred::Ule | Pred::Sle => a.off <= b.off,
                    Pred::Ugt | Pred::Sgt => a.off > b.off,
                    Pred::Uge | Pred::Sge => a.off >= b.off,
                };
                Val::Int {
                    bits: 1,
                    v: u64::from(r),
                }
            }
        };
        Ok(Some(v))
    }

    /// Whether `op` is a bit known only when proving ([`Val::Bit`]).
    fn is_bit(&self, fr: &Frame<'_>, op: &Operand) -> bool {
        match op {
            Operand::Slot(slot) => matches!(fr.values.get(*slot as usize), Some(Some(Val::Bit(_)))),
            _ => false,
        }
    }

    /// An `i1` operand as a field value of 0 or 1 (a constant or a [`Val::Bit`]).
    fn bit(&self, fr: &Frame<'_>, op: &Operand, line: usize) -> Result<FVal, CompileError> {
        match self.val(fr, op, Ty::Int(1), line)? {
            Val::Bit(b) => Ok(b),
            Val::Int { v, .. } => Ok(FVal::Const(Fe::from(v & 1))),
            other => {
                let msg = format!("operand is `{}`, expected `i1`", describe(Some(&other)));
                Err(CompileError::at(line, ErrorKind::TypeMismatch(msg)))
            }
        }
    }

    /// `1 - bit`.
    fn not(&mut self, bit: FVal, line: usize) -> Result<FVal, CompileError> {
        let one = FVal::Const(Fe::from(1u64));
        self.builder.op(FieldOp::Sub, one, bit, line)
    }

    /// `and`, `or` or `xor` of two bits, as field arithmetic on 0 and 1.
    fn bit_op(&mut self, op: IntOp, x: FVal, y: FVal, line: usize) -> Result<FVal, CompileError> {
        let b = &mut self.builder;
        match op {
            IntOp::And => b.op(FieldOp::Mul, x, y, line),
            IntOp::Or | IntOp::Xor => {
                // x + y - xy for `or`, x + y - 2xy for `xor`.
                let sum = b.op(FieldOp::Add, x, y, line)?;
                let mut prod = b.op(FieldOp::Mul, x, y, line)?;
                if op == IntOp::Xor {
                    prod = b.op(FieldOp::Add, prod, prod, line)?;
                }
                b.op(FieldOp::Sub, sum, prod, line)
            }
            _ => Err(CompileError::at(line, witness_bit_misuse())),
        }
    }

    /// `select` whose condition is known only when proving: field values, vectors
    /// lane by lane, and bits are chosen arithmetically; anything else would be a
    /// witness-dependent integer or address.
    fn select_on_bit(
        &mut self,
        fr: &Frame<'_>,
        bit: FVal,
        ty: Ty,
        a: &Operand,
        b: &Operand,
        line: usize,
    ) -> Result<Val, CompileError> {
        match ty {
            Ty::Field => {
                let (x, y) = (self.field(fr, a, line)?, self.field(fr, b, line)?);
                Ok(Val::Field(self.builder.select(bit, x, y, line)?))
            }
            Ty::FieldVec(lanes) => {
                let x = self.vector(fr, a, lanes, line)?;
                let y = self.vector(fr, b, lanes, line)?;
                let mut out = Vec::with_capacity(x.len());
                for (&p, &q) in x.iter().zip(y.iter()) {
                    out.push(self.builder.select(bit, p, q, line)?);
                }
                Ok(Val::Vec(out.into()))
            }
            Ty::Int(1) => {
                let (x, y) = (self.bit(fr, a, line)?, self.bit(fr, b, line)?);
                Ok(Val::Bit(self.builder.select(bit, x, y, line)?))
            }
            Ty::Int(_) | Ty::Ptr => {
                let what = format!(
                    "a `select` of `{ty}` values on a comparison of field values: only field \
                     values and bits can be chosen by a value known only when proving"
                );
                Err(CompileError::at(line, ErrorKind::Unsupported(what)))
            }
        }
    }

    fn call_inst(
        &mut self,
        fr: &Frame<'f>,
        callee: &str,
        ret: Option<Ty>,
        args: &[(Ty, Operand)],
        line: usize,
    ) -> Result<Option<Val>, CompileError> {
        let funcs = self.funcs;
        let f = funcs
            .get(callee)
            .ok_or_else(|| CompileError::at(line, ErrorKind::UndefinedFunction(excerpt(callee))))?;
        let param_tys: Vec<Ty> = f.params.iter().map(|(t, _)| *t).collect();
        let arg_tys: Vec<Ty> = args.iter().map(|(t, _)| *t).collect();
        if param_tys != arg_tys || f.ret != ret {
            let msg = format!(
                "call does not match the signature of `@{}`",
                excerpt(callee)
            );
            return Err(CompileError::at(line, ErrorKind::TypeMismatch(msg)));
        }
        let mut vals = Vec::with_capacity(args.len());
        for (ty, op) in args {
            vals.push(self.val(fr, op, *ty, line)?);
        }
        self.call(f, vals, line)
    }
}

/// Integer arithmetic at width `bits`; the error names undefined behaviour.
fn int_op(op: IntOp, bits: u32, a: u64, b: u64) -> Result<u64, String> {
    let (sa, sb) = (sext(a, bits), sext(b, bits));
    let min = sext(1u64 << bits.saturating_sub(1).min(63), bits);
    let signed_overflow = sa == min && sb == -1;
    let r = match op {
        IntOp::Add => a.wrapping_add(b),
        IntOp::Sub => a.wrapping_sub(b),
        IntOp::Mul => a.wrapping_mul(b),
        IntOp::And => a & b,
        IntOp::Or => a | b,
        IntOp::Xor => a ^ b,
        IntOp::UDiv | IntOp::URem | IntOp::SDiv | IntOp::SRem if b == 0 => {
            return Err("integer division by zero".into())
        }
        IntOp::SDiv | IntOp::SRem if signed_overflow => {
            return Err("signed division overflow".into())
        }
        IntOp::UDiv => a / b,
        IntOp::URem => a % b,
        IntOp::SDiv => (sa / sb) as u64,
        IntOp::SRem => (sa % sb) as u64,
        IntOp::Shl | IntOp::LShr | IntOp::AShr if b >= u64::from(bits) => {
            return Err(format!("shift by {b} on `i{bits}`"))
        }
        IntOp::Shl => a << b,
        IntOp::LShr => a >> b,
        IntOp::AShr => (sa >> b) as u64,
    };
    Ok(mask(r, bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_ops_wrap_and_trap() {
        assert_eq!(int_op(IntOp::Add, 8, 255, 1), Ok(0));
        assert_eq!(int_op(IntOp::Sub, 32, 0, 1), Ok(0xffff_ffff));
        assert_eq!(int_op(IntOp::SDiv, 8, 0xf9, 2), Ok(0xfd)); // -7 / 2 = -3
        assert_eq!(int_op(IntOp::SRem, 8, 0xf9, 2), Ok(0xff)); // -7 % 2 = -1
        assert_eq!(int_op(IntOp::AShr, 8, 0x80, 7), Ok(0xff));
        assert_eq!(int_op(IntOp::Mul, 64, u64::MAX, 2), Ok(u64::MAX - 1));
        assert!(int_op(IntOp::SDiv, 8, 0x80, 0xff).is_err());
        assert!(int_op(IntOp::UDiv, 8, 1, 0).is_err());
        assert!(int_op(IntOp::Shl, 8, 1, 8).is_err());
        assert_eq!(
            int_op(IntOp::SDiv, 1, 1, 1),
            Err("signed division overflow".into())
        );
        assert_eq!(sext(0x80, 8), -128);
        assert_eq!(sext(1, 1), -1);
        assert_eq!(sext(u64::MAX, 64), -1);
    }
}

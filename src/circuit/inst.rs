//! Parses one statement (one instruction) of a function body.
//!
//! Each opcode of the subset has a small hand-written parser; any other opcode is an
//! error naming it. Flags and attributes that do not change the compiled meaning
//! (`nsw`, `nuw`, `exact`, `tail`, `noundef`, calling conventions, `!dbg` ...) are
//! skipped; anything the parser does not recognise is an error rather than being
//! ignored, so an unexpected construct can never be compiled into a wrong circuit.

use crate::circuit::error::{excerpt, CompileError, ErrorKind};
use crate::circuit::ir::{
    CastOp, FieldOp, Inst, InstKind, IntOp, Operand, Phi, Pred, Term, Ty, MAX_TYPE_CELLS,
    MAX_VECTOR_LANES,
};
use crate::circuit::lex::{Tok, Token};
use crate::circuit::module::TypeTable;
use crate::circuit::parse::Scope;
use crate::circuit::program::Fe;
use crate::circuit::syntax::{field_literal, int_literal, ret_type, Cursor};

/// What a statement turned out to be.
#[derive(Debug)]
pub enum Parsed {
    /// A phi (must lead its block).
    Phi(Phi),
    /// An ordinary instruction.
    Inst(Inst),
    /// A block terminator.
    Term(Term),
    /// Something without effect, such as a debug-info intrinsic call.
    Nothing,
}

/// Parses `toks`, one statement. Callees of calls are appended to `calls`; named
/// types are looked up in `types`.
pub fn parse_statement(
    src: &str,
    toks: &[Token<'_>],
    scope: &mut Scope,
    calls: &mut Vec<(String, usize)>,
    types: &TypeTable<'_>,
) -> Result<Parsed, CompileError> {
    let mut c = Cursor::new(src, toks, toks.first().map_or(0, |t| t.line));
    let line = c.line();
    let dest = match (c.peek().map(|t| t.tok), c.peek_at(1)) {
        (Some(Tok::Local(name)), Some(eq)) if eq.is_punct(b'=') => {
            c.seek(2);
            Some(name)
        }
        _ => None,
    };
    let mut op = c.word("an instruction")?;
    if matches!(op, "tail" | "musttail" | "notail") {
        op = c.word("`call`")?;
        if op != "call" {
            return Err(CompileError::at(
                line,
                ErrorKind::UnsupportedInstruction(excerpt(op)),
            ));
        }
    }
    let kind = match op {
        "add" | "sub" | "mul" | "sdiv" | "udiv" | "srem" | "urem" | "and" | "or" | "xor"
        | "shl" | "lshr" | "ashr" => binary(op, &mut c, scope)?,
        "icmp" => icmp(&mut c, scope)?,
        "select" => select(&mut c, scope)?,
        "zext" | "sext" | "trunc" => cast(op, &mut c, scope)?,
        "bitcast" => bitcast(&mut c, scope)?,
        "alloca" => alloca(&mut c, types)?,
        "load" => load(&mut c, scope)?,
        "store" => store(&mut c, scope)?,
        "getelementptr" => gep(&mut c, scope, types)?,
        "ptrtoint" | "inttoptr" | "addrspacecast" => {
            let what = format!(
                "`{op}`: addresses are not values in a circuit (memory is addressed by \
                 `getelementptr` with indices known at compile time)"
            );
            return Err(CompileError::at(line, ErrorKind::Unsupported(what)));
        }
        "extractelement" => extract(&mut c, scope)?,
        "insertelement" => insert(&mut c, scope)?,
        "shufflevector" => shuffle(&mut c, scope)?,
        "freeze" => {
            let ty = c.ty()?;
            let v = operand(&mut c, ty, scope)?;
            InstKind::Copy { ty, v }
        }
        "phi" => {
            let phi = phi(&mut c, scope)?;
            c.finish()?;
            let name =
                dest.ok_or_else(|| c.err(ErrorKind::Syntax("`phi` without a result name".into())))?;
            let dest = scope.def_value(name, line)?;
            return Ok(Parsed::Phi(Phi { dest, ..phi }));
        }
        "call" => match call(&mut c, scope, calls)? {
            Some(kind) => kind,
            None => return Ok(Parsed::Nothing),
        },
        "br" | "switch" | "ret" | "unreachable" => {
            let term = terminator(op, &mut c, scope)?;
            c.finish()?;
            if dest.is_some() {
                let msg = format!("`{op}` has no result to name");
                return Err(CompileError::at(line, ErrorKind::Syntax(msg)));
            }
            return Ok(Parsed::Term(term));
        }
        _ => {
            return Err(CompileError::at(
                line,
                ErrorKind::UnsupportedInstruction(excerpt(op)),
            ))
        }
    };
    c.finish()?;
    let void = matches!(
        kind,
        InstKind::Call { ret: None, .. }
            | InstKind::Store { .. }
            | InstKind::MemOp { .. }
            | InstKind::Lifetime { .. }
    );
    let dest = match (dest, void) {
        (Some(_), true) => {
            let msg = "a `void` call has no result to name".to_string();
            return Err(CompileError::at(line, ErrorKind::Syntax(msg)));
        }
        (Some(name), false) => Some(scope.def_value(name, line)?),
        (None, false) => {
            scope.def_unnamed();
            None
        }
        (None, true) => None,
    };
    Ok(Parsed::Inst(Inst { dest, kind, line }))
}

/// Parses one value of type `ty`: a `%name` or a constant.
fn operand(c: &mut Cursor<'_, '_>, ty: Ty, scope: &mut Scope) -> Result<Operand, CompileError> {
    let t = c.peek().ok_or_else(|| c.unexpected("a value"))?;
    if let (Ty::FieldVec(lanes), true) = (ty, t.is_punct(b'<')) {
        return vector_literal(c, lanes);
    }
    if !matches!(t.tok, Tok::Local(_) | Tok::Global(_) | Tok::Word(_)) {
        return Err(c.unexpected("a value"));
    }
    let v = operand_token(t, ty, scope)?;
    c.next_tok();
    Ok(v)
}

fn operand_token(t: Token<'_>, ty: Ty, scope: &mut Scope) -> Result<Operand, CompileError> {
    let at = |kind| CompileError::at(t.line, kind);
    match (t.tok, ty) {
        (Tok::Local(name), _) => Ok(Operand::Slot(scope.use_value(name, t.line))),
        (Tok::Word("null"), Ty::Ptr) => Ok(Operand::Null),
        (Tok::Word(w), Ty::Ptr) => Err(at(ErrorKind::Unsupported(format!(
            "pointer constant `{}` (pointers come from `alloca`, parameters and `getelementptr`)",
            excerpt(w)
        )))),
        (Tok::Word("zeroinitializer"), Ty::FieldVec(n)) => {
            Ok(Operand::FieldVec(vec![Some(Fe::from(0u64)); n as usize]))
        }
        (Tok::Word("undef" | "poison"), Ty::FieldVec(n)) => {
            Ok(Operand::FieldVec(vec![None; n as usize]))
        }
        (Tok::Word(w @ ("undef" | "poison" | "null" | "zeroinitializer" | "none")), _) => {
            Err(at(ErrorKind::Unsupported(format!("constant `{w}`"))))
        }
        (Tok::Word(w), Ty::Int(bits)) => int_literal(w, bits).map(Operand::Int).map_err(at),
        (Tok::Word(w), Ty::Field) => field_literal(w).map(Operand::Field).map_err(at),
        (Tok::Word(_), Ty::FieldVec(_)) => Err(at(ErrorKind::Syntax(
            "expected a vector value: `%name`, `<ty v, ...>`, `zeroinitializer`, `undef` or `poison`"
                .into(),
        ))),
        (Tok::Global(g), _) => Err(at(ErrorKind::Unsupported(format!(
            "use of global `@{}` as a value",
            excerpt(g)
        )))),
        _ => Err(at(ErrorKind::Syntax("expected a value".into()))),
    }
}

fn binary(op: &str, c: &mut Cursor<'_, '_>, scope: &mut Scope) -> Result<InstKind, CompileError> {
    c.skip_flags(&["nuw", "nsw", "exact", "disjoint"]);
    let line = c.line();
    let ty = c.ty()?;
    let a = operand(c, ty, scope)?;
    c.expect(b',')?;
    let b = operand(c, ty, scope)?;
    let field_op = || match op {
        "add" => Ok(FieldOp::Add),
        "sub" => Ok(FieldOp::Sub),
        "mul" => Ok(FieldOp::Mul),
        "sdiv" | "udiv" => Ok(FieldOp::Div),
        _ => {
            let what = format!("`{op}` on `{ty}` values");
            Err(CompileError::at(line, ErrorKind::Unsupported(what)))
        }
    };
    match ty {
        Ty::Field => Ok(InstKind::Field {
            op: field_op()?,
            a,
            b,
        }),
        Ty::FieldVec(lanes) => Ok(InstKind::FieldVec {
            op: field_op()?,
            lanes,
            a,
            b,
        }),
        Ty::Int(bits) => {
            let op = match op {
                "add" => IntOp::Add,
                "sub" => IntOp::Sub,
                "mul" => IntOp::Mul,
                "udiv" => IntOp::UDiv,
                "sdiv" => IntOp::SDiv,
                "urem" => IntOp::URem,
                "srem" => IntOp::SRem,
                "and" => IntOp::And,
                "or" => IntOp::Or,
                "xor" => IntOp::Xor,
                "shl" => IntOp::Shl,
                "lshr" => IntOp::LShr,
                _ => IntOp::AShr,
            };
            Ok(InstKind::Int { op, bits, a, b })
        }
        Ty::Ptr => {
            let what = format!("`{op}` on pointers (use `getelementptr`)");
            Err(CompileError::at(line, ErrorKind::Unsupported(what)))
        }
    }
}

fn icmp(c: &mut Cursor<'_, '_>, scope: &mut Scope) -> Result<InstKind, CompileError> {
    c.skip_flags(&["samesign"]);
    let word = c.word("a comparison predicate")?;
    let Some(pred) = Pred::ALL.into_iter().find(|p| p.name() == word) else {
        let msg = format!("unknown `icmp` predicate `{}`", excerpt(word));
        return Err(c.err(ErrorKind::Syntax(msg)));
    };
    let line = c.line();
    let bits = match c.ty()? {
        Ty::Int(bits) => bits,
        Ty::Ptr => {
            let a = operand(c, Ty::Ptr, scope)?;
            c.expect(b',')?;
            let b = operand(c, Ty::Ptr, scope)?;
            return Ok(InstKind::IcmpPtr { pred, a, b });
        }
        Ty::Field => {
            // Equality is proved with an is-equal gate (issue 15, item 5); an ordering
            // of field elements would need a range gadget the circuit does not have.
            let equal = match pred {
                Pred::Eq => true,
                Pred::Ne => false,
                _ => {
                    let what = format!(
                        "`icmp {}` on `{}` values: ordering comparisons of circuit values are \
                         not provable here (only `eq` and `ne` are); compare outside the \
                         circuit, or make the choice a public input",
                        pred.name(),
                        Ty::Field
                    );
                    return Err(CompileError::at(line, ErrorKind::Unsupported(what)));
                }
            };
            let a = operand(c, Ty::Field, scope)?;
            c.expect(b',')?;
            let b = operand(c, Ty::Field, scope)?;
            return Ok(InstKind::IcmpField { equal, a, b });
        }
        Ty::FieldVec(n) => {
            let what = format!(
                "`icmp` on `{}` values: a vector of comparison bits is not provable here; \
                 compare the lanes one by one (`extractelement`, then `icmp eq`)",
                Ty::FieldVec(n)
            );
            return Err(CompileError::at(line, ErrorKind::Unsupported(what)));
        }
    };
    let a = operand(c, Ty::Int(bits), scope)?;
    c.expect(b',')?;
    let b = operand(c, Ty::Int(bits), scope)?;
    Ok(InstKind::Icmp { pred, bits, a, b })
}

fn expect_i1(c: &mut Cursor<'_, '_>, what: &str) -> Result<(), CompileError> {
    let line = c.line();
    match c.ty()? {
        Ty::Int(1) => Ok(()),
        Ty::Field => Err(CompileError::at(
            line,
            ErrorKind::NonConstantControl(format!(
                "{what} is a field value, unknown until proving"
            )),
        )),
        other => Err(CompileError::at(
            line,
            ErrorKind::TypeMismatch(format!("{what} must be `i1`, not `{other}`")),
        )),
    }
}

fn select(c: &mut Cursor<'_, '_>, scope: &mut Scope) -> Result<InstKind, CompileError> {
    expect_i1(c, "the `select` condition")?;
    let cond = operand(c, Ty::Int(1), scope)?;
    c.expect(b',')?;
    let ty = c.ty()?;
    let a = operand(c, ty, scope)?;
    c.expect(b',')?;
    let line = c.line();
    let ty_b = c.ty()?;
    if ty_b != ty {
        let msg = format!("`select` between `{ty}` and `{ty_b}`");
        return Err(CompileError::at(line, ErrorKind::TypeMismatch(msg)));
    }
    let b = operand(c, ty, scope)?;
    Ok(InstKind::Select { ty, cond, a, b })
}

fn cast(op: &str, c: &mut Cursor<'_, '_>, scope: &mut Scope) -> Result<InstKind, CompileError> {
    c.skip_flags(&["nneg", "nuw", "nsw"]);
    let line = c.line();
    let from_ty = c.ty()?;
    let v = operand(c, from_ty, scope)?;
    if !c.eat_word("to") {
        return Err(c.unexpected("`to`"));
    }
    let to_ty = c.ty()?;
    let (Ty::Int(from), Ty::Int(to)) = (from_ty, to_ty) else {
        let what = format!("`{op}` from `{from_ty}` to `{to_ty}`");
        return Err(CompileError::at(line, ErrorKind::Unsupported(what)));
    };
    let (op, ok) = match op {
        "zext" => (CastOp::Zext, to > from),
        "sext" => (CastOp::Sext, to > from),
        _ => (CastOp::Trunc, to < from),
    };
    if !ok {
        let msg = format!("invalid cast from `{from_ty}` to `{to_ty}`");
        return Err(CompileError::at(line, ErrorKind::TypeMismatch(msg)));
    }
    Ok(InstKind::Cast { op, from, to, v })
}

/// `<ty v, ty v, ...>` with `lanes` field lanes; a lane may be `undef` or `poison`.
fn vector_literal(c: &mut Cursor<'_, '_>, lanes: u32) -> Result<Operand, CompileError> {
    c.expect(b'<')?;
    let mut out = Vec::new();
    loop {
        let line = c.line();
        if c.ty()? != Ty::Field {
            let msg = format!(
                "a lane of a `{}` constant of another type",
                Ty::FieldVec(lanes)
            );
            return Err(CompileError::at(line, ErrorKind::TypeMismatch(msg)));
        }
        let w = c.word("a field constant")?;
        out.push(match w {
            "undef" | "poison" => None,
            "zeroinitializer" => Some(Fe::from(0u64)),
            _ => Some(field_literal(w).map_err(|k| CompileError::at(line, k))?),
        });
        if out.len() > lanes as usize {
            break;
        }
        if c.peek().is_some_and(|t| t.is_punct(b'>')) {
            c.next_tok();
            break;
        }
        c.expect(b',')?;
    }
    if out.len() != lanes as usize {
        let msg = format!(
            "a `{}` constant with {} lanes",
            Ty::FieldVec(lanes),
            out.len()
        );
        return Err(c.err(ErrorKind::TypeMismatch(msg)));
    }
    Ok(Operand::FieldVec(out))
}

/// A field vector type, or an error saying what the instruction needs.
fn vector_ty(c: &mut Cursor<'_, '_>, what: &str) -> Result<u32, CompileError> {
    let line = c.line();
    match c.ty()? {
        Ty::FieldVec(lanes) => Ok(lanes),
        other => Err(CompileError::at(
            line,
            ErrorKind::Unsupported(format!("`{what}` on `{other}`")),
        )),
    }
}

/// An index operand `iN v`.
fn index(c: &mut Cursor<'_, '_>, scope: &mut Scope) -> Result<(u32, Operand), CompileError> {
    let line = c.line();
    match c.ty()? {
        Ty::Int(bits) => Ok((bits, operand(c, Ty::Int(bits), scope)?)),
        other => {
            let msg = format!("a vector index must be an integer, not `{other}`");
            Err(CompileError::at(line, ErrorKind::TypeMismatch(msg)))
        }
    }
}

fn extract(c: &mut Cursor<'_, '_>, scope: &mut Scope) -> Result<InstKind, CompileError> {
    let lanes = vector_ty(c, "extractelement")?;
    let v = operand(c, Ty::FieldVec(lanes), scope)?;
    c.expect(b',')?;
    let (idx_bits, idx) = index(c, scope)?;
    Ok(InstKind::Extract {
        lanes,
        v,
        idx_bits,
        idx,
    })
}

fn insert(c: &mut Cursor<'_, '_>, scope: &mut Scope) -> Result<InstKind, CompileError> {
    let lanes = vector_ty(c, "insertelement")?;
    let v = operand(c, Ty::FieldVec(lanes), scope)?;
    c.expect(b',')?;
    let line = c.line();
    if c.ty()? != Ty::Field {
        let msg = format!(
            "`insertelement` into `{}` of another type",
            Ty::FieldVec(lanes)
        );
        return Err(CompileError::at(line, ErrorKind::TypeMismatch(msg)));
    }
    let elt = operand(c, Ty::Field, scope)?;
    c.expect(b',')?;
    let (idx_bits, idx) = index(c, scope)?;
    Ok(InstKind::Insert {
        lanes,
        v,
        elt,
        idx_bits,
        idx,
    })
}

/// `shufflevector <n x field> a, <n x field> b, <m x i32> <i32 k, ...>` (or a
/// `zeroinitializer` / `undef` / `poison` mask).
fn shuffle(c: &mut Cursor<'_, '_>, scope: &mut Scope) -> Result<InstKind, CompileError> {
    let lanes = vector_ty(c, "shufflevector")?;
    let a = operand(c, Ty::FieldVec(lanes), scope)?;
    c.expect(b',')?;
    let line = c.line();
    if c.ty()? != Ty::FieldVec(lanes) {
        let msg = "`shufflevector` of two vectors of different types".to_string();
        return Err(CompileError::at(line, ErrorKind::TypeMismatch(msg)));
    }
    let b = operand(c, Ty::FieldVec(lanes), scope)?;
    c.expect(b',')?;
    // The mask type `<m x i32>` is not a value type of the subset: read it here.
    let line = c.line();
    c.expect(b'<')?;
    let m = c.word("the mask length")?;
    let m: u32 = m
        .parse()
        .ok()
        .filter(|m| (1..=MAX_VECTOR_LANES).contains(m))
        .ok_or_else(|| {
            let msg = format!("a `shufflevector` mask has 1 to {MAX_VECTOR_LANES} lanes");
            CompileError::at(line, ErrorKind::Unsupported(msg))
        })?;
    if !c.eat_word("x") || !c.eat_word("i32") {
        return Err(c.unexpected("`x i32>`"));
    }
    c.expect(b'>')?;
    let total = 2 * u64::from(lanes);
    let mask = if c.eat_word("zeroinitializer") {
        vec![Some(0); m as usize]
    } else if c.eat_word("undef") || c.eat_word("poison") {
        vec![None; m as usize]
    } else {
        c.expect(b'<')?;
        let mut mask = Vec::new();
        loop {
            if !c.eat_word("i32") {
                return Err(c.unexpected("`i32`"));
            }
            let line = c.line();
            let w = c.word("a mask lane")?;
            mask.push(match w {
                "undef" | "poison" => None,
                _ => {
                    let k = int_literal(w, 32).map_err(|k| CompileError::at(line, k))?;
                    if k >= total {
                        let msg =
                            format!("mask lane {k} is past the {total} lanes of the two vectors");
                        return Err(CompileError::at(line, ErrorKind::Syntax(msg)));
                    }
                    Some(k as u32)
                }
            });
            if mask.len() > m as usize {
                break;
            }
            if c.peek().is_some_and(|t| t.is_punct(b'>')) {
                c.next_tok();
                break;
            }
            c.expect(b',')?;
        }
        mask
    };
    if mask.len() != m as usize {
        let msg = format!("a `<{m} x i32>` mask with {} lanes", mask.len());
        return Err(CompileError::at(line, ErrorKind::TypeMismatch(msg)));
    }
    Ok(InstKind::Shuffle { lanes, a, b, mask })
}

/// `bitcast ptr %p to ptr`: the same address (typed pointers change type by casting;
/// memory is typed by cells, not by the pointer). Other bitcasts reinterpret bits,
/// which field elements do not have.
fn bitcast(c: &mut Cursor<'_, '_>, scope: &mut Scope) -> Result<InstKind, CompileError> {
    let line = c.line();
    let from = c.ty()?;
    let v = operand(c, from, scope)?;
    if !c.eat_word("to") {
        return Err(c.unexpected("`to`"));
    }
    let to = c.ty()?;
    if from != Ty::Ptr || to != Ty::Ptr {
        let what = format!("`bitcast` from `{from}` to `{to}` (only pointer to pointer)");
        return Err(CompileError::at(line, ErrorKind::Unsupported(what)));
    }
    Ok(InstKind::Copy { ty: Ty::Ptr, v })
}

/// `alloca T [, iN count] [, align A]`: `count` must be a constant.
fn alloca(c: &mut Cursor<'_, '_>, types: &TypeTable<'_>) -> Result<InstKind, CompileError> {
    c.skip_flags(&["inalloca"]);
    let line = c.line();
    let ty = c.mem_ty(types)?;
    let mut count = 1u64;
    while c.peek().is_some_and(|t| t.is_punct(b',')) {
        match c.peek_at(1).map(|t| t.tok) {
            Some(Tok::Word("align")) => {
                c.seek(c.pos() + 3);
            }
            Some(Tok::Word("addrspace")) => {
                let what = "`alloca` in another address space".to_string();
                return Err(CompileError::at(line, ErrorKind::Unsupported(what)));
            }
            Some(Tok::Word(w)) if w.starts_with('!') => break,
            _ => {
                c.next_tok();
                let l = c.line();
                let bits = match c.ty()? {
                    Ty::Int(bits) => bits,
                    other => {
                        let msg = format!("`alloca` count of type `{other}`");
                        return Err(CompileError::at(l, ErrorKind::TypeMismatch(msg)));
                    }
                };
                let w = c.word("a constant count")?;
                count = int_literal(w, bits).map_err(|k| CompileError::at(l, k))?;
            }
        }
    }
    if ty
        .cells()
        .checked_mul(count)
        .is_none_or(|n| n > MAX_TYPE_CELLS)
    {
        let msg = format!("`alloca` of {count} x `{ty}`: more than {MAX_TYPE_CELLS} elements");
        return Err(CompileError::at(line, ErrorKind::Unsupported(msg)));
    }
    Ok(InstKind::Alloca { ty, count })
}

/// Skips `, align N` and metadata after a memory access.
fn skip_align(c: &mut Cursor<'_, '_>) {
    while c.peek().is_some_and(|t| t.is_punct(b','))
        && c.peek_at(1).is_some_and(|t| t.is_word("align"))
    {
        c.seek(c.pos() + 3);
    }
}

fn no_atomics(c: &mut Cursor<'_, '_>, op: &str) -> Result<(), CompileError> {
    c.skip_flags(&["volatile"]);
    if c.peek().is_some_and(|t| t.is_word("atomic")) {
        let what = format!("atomic `{op}`");
        return Err(c.err(ErrorKind::Unsupported(what)));
    }
    Ok(())
}

/// A `ptr %p` operand.
fn pointer(c: &mut Cursor<'_, '_>, scope: &mut Scope, what: &str) -> Result<Operand, CompileError> {
    let line = c.line();
    let ty = c.ty()?;
    if ty != Ty::Ptr {
        let msg = format!("{what} must be a pointer, not `{ty}`");
        return Err(CompileError::at(line, ErrorKind::TypeMismatch(msg)));
    }
    operand(c, Ty::Ptr, scope)
}

/// `load T, ptr %p [, align A]`: T is a scalar, a pointer or a field vector.
fn load(c: &mut Cursor<'_, '_>, scope: &mut Scope) -> Result<InstKind, CompileError> {
    no_atomics(c, "load")?;
    let line = c.line();
    let ty = c.ty().map_err(|e| aggregate_access(e, "load", line))?;
    c.expect(b',')?;
    let ptr = pointer(c, scope, "the `load` address")?;
    skip_align(c);
    Ok(InstKind::Load { ty, ptr })
}

/// `store T v, ptr %p [, align A]`.
fn store(c: &mut Cursor<'_, '_>, scope: &mut Scope) -> Result<InstKind, CompileError> {
    no_atomics(c, "store")?;
    let line = c.line();
    let ty = c.ty().map_err(|e| aggregate_access(e, "store", line))?;
    let v = operand(c, ty, scope)?;
    c.expect(b',')?;
    let ptr = pointer(c, scope, "the `store` address")?;
    skip_align(c);
    Ok(InstKind::Store { ty, v, ptr })
}

/// Names loads and stores of whole aggregates (first-class arrays and structs).
fn aggregate_access(e: CompileError, op: &str, line: usize) -> CompileError {
    match e.kind() {
        ErrorKind::UnsupportedType(t) => CompileError::at(
            line,
            ErrorKind::Unsupported(format!(
                "`{op}` of a `{t}` value (access memory one element at a time)"
            )),
        ),
        _ => e,
    }
}

/// `getelementptr [inbounds] T, ptr %p, iN i, ...`. Indices are integers, so known at
/// compile time; an index of a field type would make an address depend on a circuit
/// value and is refused by name.
fn gep(
    c: &mut Cursor<'_, '_>,
    scope: &mut Scope,
    types: &TypeTable<'_>,
) -> Result<InstKind, CompileError> {
    c.skip_flags(&["inbounds", "nuw", "nusw"]);
    if c.peek().is_some_and(|t| t.is_word("inrange")) {
        let what = "`getelementptr inrange`".to_string();
        return Err(c.err(ErrorKind::Unsupported(what)));
    }
    let ty = c.mem_ty(types)?;
    c.expect(b',')?;
    let ptr = pointer(c, scope, "the `getelementptr` base")?;
    let mut indices = Vec::new();
    while c.peek().is_some_and(|t| t.is_punct(b','))
        && !c
            .peek_at(1)
            .is_some_and(|t| matches!(t.tok, Tok::Word(w) if w.starts_with('!')))
    {
        c.next_tok();
        c.skip_flags(&["inrange"]);
        let line = c.line();
        match c.ty()? {
            Ty::Int(bits) => indices.push((bits, operand(c, Ty::Int(bits), scope)?)),
            Ty::Field => {
                let what = "address depending on a field value (a `getelementptr` index of \
                            a field type): memory addresses must be known at compile time"
                    .to_string();
                return Err(CompileError::at(line, ErrorKind::Unsupported(what)));
            }
            other => {
                let msg = format!("`getelementptr` index of type `{other}`");
                return Err(CompileError::at(line, ErrorKind::Unsupported(msg)));
            }
        }
        if indices.len() > 64 {
            let msg = "`getelementptr` with more than 64 indices".to_string();
            return Err(CompileError::at(line, ErrorKind::Unsupported(msg)));
        }
    }
    Ok(InstKind::Gep { ty, ptr, indices })
}

/// Parses `ty [ v, %bb ], ...`; the caller fills in the result slot.
fn phi(c: &mut Cursor<'_, '_>, scope: &mut Scope) -> Result<Phi, CompileError> {
    let line = c.line();
    let ty = c.ty()?;
    let mut incoming = Vec::new();
    loop {
        c.expect(b'[')?;
        let v = operand(c, ty, scope)?;
        c.expect(b',')?;
        let pred = match c.next_tok() {
            Some(Token {
                tok: Tok::Local(name),
                line,
                ..
            }) => scope.block(name, line),
            _ => return Err(c.unexpected("a predecessor block")),
        };
        c.expect(b']')?;
        incoming.push((v, pred));
        let more = c.peek().is_some_and(|t| t.is_punct(b','))
            && c.peek_at(1).is_some_and(|t| t.is_punct(b'['));
        if !more {
            break;
        }
        c.next_tok();
    }
    Ok(Phi {
        dest: 0,
        ty,
        incoming,
        line,
    })
}

/// Parses a call to `@name(args)`. Returns `None` for debug-info intrinsics, which have
/// no semantics.
fn call(
    c: &mut Cursor<'_, '_>,
    scope: &mut Scope,
    calls: &mut Vec<(String, usize)>,
) -> Result<Option<InstKind>, CompileError> {
    let line = c.line();
    let start = c.pos();
    let mut k = 0usize;
    let callee = loop {
        let Some(t) = c.peek_at(k) else {
            let what = "call without a named callee (indirect call or inline asm)".to_string();
            return Err(CompileError::at(line, ErrorKind::Unsupported(what)));
        };
        let paren_next = c.peek_at(k + 1).is_some_and(|n| n.is_punct(b'('));
        match t.tok {
            Tok::Global(name) if paren_next => break name,
            Tok::Local(_) if paren_next => {
                let what = "indirect call".to_string();
                return Err(CompileError::at(line, ErrorKind::Unsupported(what)));
            }
            _ => k += 1,
        }
    };
    // Intrinsics without meaning for the circuit: debug info, the end of an object's
    // lifetime, optimiser hints.
    const NO_EFFECT: &[&str] = &[
        "llvm.dbg.",
        "llvm.lifetime.end",
        "llvm.assume",
        "llvm.experimental.noalias.scope.decl",
    ];
    if NO_EFFECT.iter().any(|p| callee.starts_with(p)) {
        c.seek(usize::MAX);
        return Ok(None);
    }
    let head = c.slice(start, start + k);
    if head.last().is_some_and(|t| t.is_punct(b')')) {
        let what = format!(
            "call to `@{}` through a function type (variadic call)",
            excerpt(callee)
        );
        return Err(CompileError::at(line, ErrorKind::Unsupported(what)));
    }
    if let Some(name) = callee.strip_prefix("llvm.assigner.") {
        if !name.starts_with("poseidon") && !name.starts_with("sha2_256") {
            let what = format!(
                "zkLLVM builtin `@{}` (this market proves `poseidon` and `sha2_256` only)",
                excerpt(callee)
            );
            return Err(CompileError::at(line, ErrorKind::Unsupported(what)));
        }
    }
    let ret = ret_type(c.src(), head, line)?;
    c.seek(start + k + 2);
    let mut args = Vec::new();
    let mut depth = 1usize;
    let mut item: Vec<Token<'_>> = Vec::new();
    loop {
        let t = c.next_tok().ok_or_else(|| c.unexpected("`)`"))?;
        match t.tok {
            Tok::Punct(b'(' | b'[' | b'{' | b'<') => depth += 1,
            Tok::Punct(b')' | b']' | b'}' | b'>') => depth -= 1,
            _ => {}
        }
        let ends_item = depth == 0 || (depth == 1 && t.is_punct(b','));
        if !ends_item {
            item.push(t);
            continue;
        }
        if !item.is_empty() || t.is_punct(b',') {
            args.push(argument(c.src(), &item, scope, t.line)?);
        }
        item.clear();
        if depth == 0 {
            break;
        }
    }
    // Function attributes after the arguments (`#6`, `nounwind`) carry no meaning here.
    while c
        .peek()
        .is_some_and(|t| matches!(t.tok, Tok::Word(w) if !w.starts_with('!')))
    {
        c.next_tok();
    }
    if let Some(kind) = memory_intrinsic(callee, &args, line)? {
        return Ok(Some(kind));
    }
    if callee.starts_with("llvm.assigner.poseidon") {
        let state = Ty::FieldVec(3);
        return match (ret, args.as_slice()) {
            (Some(r), [(t, v)]) if r == state && *t == state => {
                Ok(Some(InstKind::Poseidon { state: v.clone() }))
            }
            _ => {
                let msg = format!("`@{}` takes and returns `{state}`", excerpt(callee));
                Err(CompileError::at(line, ErrorKind::TypeMismatch(msg)))
            }
        };
    }
    if callee.starts_with("llvm.assigner.sha2_256") {
        let block = Ty::FieldVec(2);
        return match (ret, args.as_slice()) {
            (Some(r), [(ta, a), (tb, b)]) if r == block && *ta == block && *tb == block => {
                Ok(Some(InstKind::Sha256 {
                    a: a.clone(),
                    b: b.clone(),
                }))
            }
            _ => {
                let msg = format!(
                    "`@{}` takes two `{block}` blocks and returns `{block}`",
                    excerpt(callee)
                );
                Err(CompileError::at(line, ErrorKind::TypeMismatch(msg)))
            }
        };
    }
    calls.push((callee.to_string(), line));
    Ok(Some(InstKind::Call {
        callee: callee.to_string(),
        ret,
        args,
    }))
}

/// `llvm.memcpy`, `llvm.memmove`, `llvm.memset` and `llvm.lifetime.start`, from their
/// parsed arguments.
fn memory_intrinsic(
    callee: &str,
    args: &[(Ty, Operand)],
    line: usize,
) -> Result<Option<InstKind>, CompileError> {
    let bad = || {
        let msg = format!("unexpected arguments to `@{}`", excerpt(callee));
        Err(CompileError::at(line, ErrorKind::TypeMismatch(msg)))
    };
    if callee.starts_with("llvm.memcpy.") || callee.starts_with("llvm.memmove.") {
        return match args {
            [(Ty::Ptr, d), (Ty::Ptr, s), (Ty::Int(bits), len), (Ty::Int(1), _)] => {
                Ok(Some(InstKind::MemOp {
                    dst: d.clone(),
                    src: Some(s.clone()),
                    set: None,
                    len_bits: *bits,
                    len: len.clone(),
                }))
            }
            _ => bad(),
        };
    }
    if callee.starts_with("llvm.memset.") {
        return match args {
            [(Ty::Ptr, d), (Ty::Int(8), v), (Ty::Int(bits), len), (Ty::Int(1), _)] => {
                Ok(Some(InstKind::MemOp {
                    dst: d.clone(),
                    src: None,
                    set: Some(v.clone()),
                    len_bits: *bits,
                    len: len.clone(),
                }))
            }
            _ => bad(),
        };
    }
    if callee.starts_with("llvm.lifetime.start") {
        return match args {
            [(Ty::Int(64), Operand::Int(size)), (Ty::Ptr, p)] => Ok(Some(InstKind::Lifetime {
                size: *size,
                ptr: p.clone(),
            })),
            _ => bad(),
        };
    }
    if callee.starts_with("llvm.") && !callee.starts_with("llvm.assigner.") {
        let what = format!("LLVM intrinsic `@{}`", excerpt(callee));
        return Err(CompileError::at(line, ErrorKind::Unsupported(what)));
    }
    Ok(None)
}

/// One call argument: `ty [attrs] value`.
fn argument(
    src: &str,
    item: &[Token<'_>],
    scope: &mut Scope,
    line: usize,
) -> Result<(Ty, Operand), CompileError> {
    let mut ac = Cursor::new(src, item, line);
    let ty = ac.ty()?;
    if let (Ty::FieldVec(lanes), Some(last)) = (ty, item.last()) {
        if last.is_punct(b'>') {
            // A vector constant: from its `<` (the first one after the type) on.
            let open =
                (ac.pos()..item.len()).find(|&i| item.get(i).is_some_and(|t| t.is_punct(b'<')));
            if let Some(open) = open {
                let mut vc = Cursor::new(src, item.get(open..).unwrap_or_default(), line);
                let v = vector_literal(&mut vc, lanes)?;
                vc.finish()?;
                return Ok((ty, v));
            }
        }
    }
    let value = match item.last() {
        Some(v) if ac.pos() < item.len() => *v,
        _ => return Err(ac.unexpected("an argument value")),
    };
    Ok((ty, operand_token(value, ty, scope)?))
}

fn terminator(op: &str, c: &mut Cursor<'_, '_>, scope: &mut Scope) -> Result<Term, CompileError> {
    let line = c.line();
    match op {
        "unreachable" => Ok(Term::Unreachable),
        "ret" => {
            if c.eat_word("void") {
                return Ok(Term::Ret(None));
            }
            let ty = c.ty()?;
            Ok(Term::Ret(Some((ty, operand(c, ty, scope)?))))
        }
        "br" => {
            if c.peek().is_some_and(|t| t.is_word("label")) {
                return Ok(Term::Br(scope.block(c.label()?, line)));
            }
            expect_i1(c, "the branch condition")?;
            let cond = operand(c, Ty::Int(1), scope)?;
            c.expect(b',')?;
            let then = scope.block(c.label()?, line);
            c.expect(b',')?;
            let other = scope.block(c.label()?, line);
            Ok(Term::CondBr { cond, then, other })
        }
        _ => {
            let bits = match c.ty()? {
                Ty::Int(bits) => bits,
                Ty::Field | Ty::FieldVec(_) => {
                    let what = "`switch` on a field value, unknown until proving".to_string();
                    return Err(CompileError::at(line, ErrorKind::NonConstantControl(what)));
                }
                Ty::Ptr => {
                    let what = "`switch` on a pointer".to_string();
                    return Err(CompileError::at(line, ErrorKind::Unsupported(what)));
                }
            };
            let v = operand(c, Ty::Int(bits), scope)?;
            c.expect(b',')?;
            let default = scope.block(c.label()?, line);
            c.expect(b'[')?;
            let mut cases = Vec::new();
            while !c.peek().is_some_and(|t| t.is_punct(b']')) {
                let case_line = c.line();
                if c.ty()? != Ty::Int(bits) {
                    let msg = "`switch` case of another type".to_string();
                    return Err(CompileError::at(case_line, ErrorKind::TypeMismatch(msg)));
                }
                let value = match operand(c, Ty::Int(bits), scope)? {
                    Operand::Int(v) => v,
                    _ => {
                        return Err(
                            c.err(ErrorKind::Syntax("`switch` case must be a constant".into()))
                        )
                    }
                };
                c.expect(b',')?;
                cases.push((value, scope.block(c.label()?, case_line)));
            }
            c.expect(b']')?;
            Ok(Term::Switch {
                bits,
                v,
                default,
                cases,
            })
        }
    }
}

//! Parses one function located by the module scan into an
//! [`ir::Function`](crate::circuit::ir::Function): header, parameters, statement
//! splitting, basic blocks and name resolution.
//!
//! Instructions are split into statements by line (LLVM prints one per line), except
//! that an open bracket continues a statement onto the next line (multi-line
//! `switch`). Names are resolved on first mention and checked once the whole body has
//! been read, because phis and branches refer forward. Unnamed blocks get the implicit
//! number LLVM would give them, so `%N` references to them resolve.

use std::collections::HashMap;

use crate::circuit::error::{excerpt, CompileError, ErrorKind};
use crate::circuit::inst::{parse_statement, Parsed};
use crate::circuit::ir::{Block, BlockId, Function, Inst, ParamAttr, Phi, Slot, Term, Ty};
use crate::circuit::lex::{Lexer, Tok, Token};
use crate::circuit::module::{FuncDef, TypeTable};
use crate::circuit::syntax::{ret_type, Cursor};

/// Tokens per statement; a longer one is rejected so one statement cannot claim
/// memory in proportion to the whole input.
const MAX_STATEMENT_TOKENS: usize = 1 << 16;

/// Value and block names of one function, resolved to dense indices.
#[derive(Default)]
pub struct Scope {
    values: HashMap<String, Slot>,
    value_names: Vec<String>,
    value_defined: Vec<bool>,
    value_first_use: Vec<usize>,
    blocks: HashMap<String, BlockId>,
    block_names: Vec<String>,
    block_first_use: Vec<usize>,
    next_number: u64,
}

impl Scope {
    fn slot(&mut self, name: &str, line: usize) -> Slot {
        if let Some(&s) = self.values.get(name) {
            return s;
        }
        let s = self.value_names.len() as Slot;
        self.values.insert(name.to_string(), s);
        self.value_names.push(name.to_string());
        self.value_defined.push(false);
        self.value_first_use.push(line);
        s
    }

    /// The slot of a value read at `line`.
    pub fn use_value(&mut self, name: &str, line: usize) -> Slot {
        self.slot(name, line)
    }

    /// The slot of a value defined at `line`; defining a name twice is an error.
    pub fn def_value(&mut self, name: &str, line: usize) -> Result<Slot, CompileError> {
        let s = self.slot(name, line);
        let defined = self.value_defined.get_mut(s as usize);
        match defined {
            Some(d) if !*d => *d = true,
            _ => {
                let msg = format!("value `%{}` is defined twice", excerpt(name));
                return Err(CompileError::at(line, ErrorKind::Syntax(msg)));
            }
        }
        self.count(name);
        Ok(s)
    }

    /// Records that a value without a name was defined: it still takes a number.
    pub fn def_unnamed(&mut self) {
        self.next_number = self.next_number.saturating_add(1);
    }

    /// The id of a block referenced at `line`.
    pub fn block(&mut self, name: &str, line: usize) -> BlockId {
        if let Some(&b) = self.blocks.get(name) {
            return b;
        }
        let b = self.block_names.len() as BlockId;
        self.blocks.insert(name.to_string(), b);
        self.block_names.push(name.to_string());
        self.block_first_use.push(line);
        b
    }

    /// Keeps LLVM's implicit numbering in step with explicitly numbered names.
    fn count(&mut self, name: &str) {
        if let Ok(n) = name.parse::<u64>() {
            self.next_number = n.saturating_add(1);
        }
    }

    fn implicit_name(&mut self) -> String {
        let n = self.next_number;
        self.next_number = n.saturating_add(1);
        n.to_string()
    }
}

/// A block whose terminator has not been read yet.
struct OpenBlock {
    id: BlockId,
    label: String,
    line: usize,
    phis: Vec<Phi>,
    insts: Vec<Inst>,
}

/// How a parameter or argument written as `toks` is passed: `byval(T)`, `sret(T)`, a
/// typed pointer `T*` (whose `T` is kept if it has a layout), or plainly.
pub fn param_attr(
    src: &str,
    toks: &[Token<'_>],
    ty: Ty,
    types: &TypeTable<'_>,
) -> Result<ParamAttr, CompileError> {
    if ty != Ty::Ptr {
        return Ok(ParamAttr::Plain);
    }
    let line = toks.first().map_or(0, |t| t.line);
    for (i, t) in toks.iter().enumerate() {
        let attr = match t.tok {
            Tok::Word("byval") => ParamAttr::ByVal,
            Tok::Word("sret") => ParamAttr::Sret,
            _ => continue,
        };
        if !toks.get(i + 1).is_some_and(|t| t.is_punct(b'(')) {
            continue;
        }
        let mut c = Cursor::new(src, toks.get(i + 2..).unwrap_or_default(), line);
        let inner = c.mem_ty(types)?;
        c.expect(b')')?;
        return Ok(attr(inner));
    }
    // A typed pointer: the tokens before the last `*` of the type name the pointee.
    let star = toks.iter().position(|t| t.is_punct(b'*'));
    if let Some(star) = star {
        let mut c = Cursor::new(src, toks.get(..star).unwrap_or_default(), line);
        if let Ok(t) = c.mem_ty(types) {
            if c.at_end() {
                return Ok(ParamAttr::Pointee(t));
            }
        }
    }
    Ok(ParamAttr::Plain)
}

/// Parses the function `def` of `src`.
pub fn parse_function(
    src: &str,
    def: &FuncDef<'_>,
    types: &TypeTable<'_>,
) -> Result<Function, CompileError> {
    let ret = ret_type(src, &def.before_name, def.name_line)?;
    let mut scope = Scope::default();
    let mut params = Vec::new();
    let mut param_attrs = Vec::new();
    let header = Cursor::new(src, &def.params, def.name_line);
    for (a, b) in header.split_commas() {
        let toks = def.params.get(a..b).unwrap_or_default();
        let mut c = Cursor::new(src, toks, def.name_line);
        if c.peek().is_some_and(|t| t.is_word("...")) {
            return Err(c.err(ErrorKind::Unsupported("variadic function".into())));
        }
        let line = c.line();
        let ty = c.ty()?;
        let slot = match toks.last().map(|t| t.tok) {
            Some(Tok::Local(name)) if toks.len() > 1 => scope.def_value(name, line)?,
            _ => {
                let name = scope.implicit_name();
                scope.def_value(&name, line)?
            }
        };
        params.push((ty, slot));
        param_attrs.push(param_attr(src, toks, ty, types)?);
    }

    let (start, end) = def.body;
    let mut lx = Lexer::range(src, start, end, def.body_line);
    let mut blocks: Vec<Option<Block>> = Vec::new();
    let mut open: Option<OpenBlock> = None;
    let mut entry = None;
    let mut calls = Vec::new();
    let mut stmt = Vec::new();
    while next_statement(&mut lx, &mut stmt)? {
        let Some(first) = stmt.first().copied() else {
            continue;
        };
        let line = first.line;
        if let Tok::Label(name) = first.tok {
            if let Some(b) = &open {
                return Err(unterminated(b));
            }
            scope.count(name);
            open = Some(start_block(&mut scope, name.to_string(), line, &mut entry));
            continue;
        }
        // LLVM 19+ debug records (`#dbg_value(...)`) carry no semantics.
        if matches!(first.tok, Tok::Word(w) if w.starts_with("#dbg_")) {
            continue;
        }
        let mut block = match open.take() {
            Some(b) => b,
            None => {
                let name = scope.implicit_name();
                start_block(&mut scope, name, line, &mut entry)
            }
        };
        match parse_statement(src, &stmt, &mut scope, &mut calls, types)? {
            Parsed::Phi(phi) => {
                if !block.insts.is_empty() {
                    let msg = "`phi` after a non-phi instruction".to_string();
                    return Err(CompileError::at(line, ErrorKind::Syntax(msg)));
                }
                block.phis.push(phi);
            }
            Parsed::Inst(inst) => block.insts.push(inst),
            Parsed::Nothing => {}
            Parsed::Term(term) => {
                close_block(&mut blocks, block, term, line)?;
                continue;
            }
        }
        open = Some(block);
    }
    if let Some(b) = &open {
        return Err(unterminated(b));
    }
    let entry = entry.ok_or_else(|| {
        let msg = format!("function `@{}` has an empty body", excerpt(def.name));
        CompileError::at(def.line, ErrorKind::Syntax(msg))
    })?;
    let blocks = check_names(&scope, blocks)?;
    let f = Function {
        name: def.name.to_string(),
        line: def.line,
        params,
        param_attrs,
        ret,
        blocks,
        entry,
        slot_names: scope.value_names,
        calls,
    };
    crate::circuit::ssa::check(&f)?;
    Ok(f)
}

fn start_block(
    scope: &mut Scope,
    label: String,
    line: usize,
    entry: &mut Option<BlockId>,
) -> OpenBlock {
    let id = scope.block(&label, line);
    entry.get_or_insert(id);
    OpenBlock {
        id,
        label,
        line,
        phis: Vec::new(),
        insts: Vec::new(),
    }
}

fn unterminated(b: &OpenBlock) -> CompileError {
    let msg = format!(
        "block `%{}` does not end with a terminator",
        excerpt(&b.label)
    );
    CompileError::at(b.line, ErrorKind::Syntax(msg))
}

fn close_block(
    blocks: &mut Vec<Option<Block>>,
    b: OpenBlock,
    term: Term,
    term_line: usize,
) -> Result<(), CompileError> {
    let i = b.id as usize;
    if blocks.len() <= i {
        blocks.resize_with(i + 1, || None);
    }
    let slot = blocks.get_mut(i).ok_or_else(|| unterminated(&b))?;
    if slot.is_some() {
        let msg = format!("block `%{}` is defined twice", excerpt(&b.label));
        return Err(CompileError::at(b.line, ErrorKind::Syntax(msg)));
    }
    *slot = Some(Block {
        label: b.label,
        phis: b.phis,
        insts: b.insts,
        term,
        term_line,
    });
    Ok(())
}

/// Every referenced value and block must be defined somewhere in the function.
fn check_names(scope: &Scope, blocks: Vec<Option<Block>>) -> Result<Vec<Block>, CompileError> {
    for (i, defined) in scope.value_defined.iter().enumerate() {
        if !defined {
            let name = scope
                .value_names
                .get(i)
                .map(|n| excerpt(n))
                .unwrap_or_default();
            let line = scope.value_first_use.get(i).copied().unwrap_or(0);
            return Err(CompileError::at(line, ErrorKind::UndefinedValue(name)));
        }
    }
    let mut out = Vec::with_capacity(scope.block_names.len());
    let mut blocks = blocks.into_iter();
    for (i, name) in scope.block_names.iter().enumerate() {
        match blocks.next().flatten() {
            Some(b) => out.push(b),
            None => {
                let line = scope.block_first_use.get(i).copied().unwrap_or(0);
                return Err(CompileError::at(
                    line,
                    ErrorKind::UndefinedBlock(excerpt(name)),
                ));
            }
        }
    }
    Ok(out)
}

fn depth_change(t: &Token<'_>) -> isize {
    match t.tok {
        Tok::Punct(b'(' | b'[' | b'{' | b'<') => 1,
        Tok::Punct(b')' | b']' | b'}' | b'>') => -1,
        _ => 0,
    }
}

/// Reads the next statement into `buf`: a label alone, or the tokens of one line
/// (continued while brackets are open). Returns false at the end of the body.
fn next_statement<'a>(lx: &mut Lexer<'a>, buf: &mut Vec<Token<'a>>) -> Result<bool, CompileError> {
    buf.clear();
    let Some(first) = lx.next_token()? else {
        return Ok(false);
    };
    buf.push(first);
    if matches!(first.tok, Tok::Label(_)) {
        return Ok(true);
    }
    let mut depth = depth_change(&first).max(0);
    let mut line = first.line;
    while let Some(t) = lx.peek()? {
        if matches!(t.tok, Tok::Label(_)) || (depth == 0 && t.line != line) {
            break;
        }
        if buf.len() >= MAX_STATEMENT_TOKENS {
            let msg = "statement too long".to_string();
            return Err(CompileError::at(first.line, ErrorKind::Syntax(msg)));
        }
        lx.next_token()?;
        buf.push(t);
        depth = (depth + depth_change(&t)).max(0);
        line = t.line;
    }
    Ok(true)
}

/// Checks the circuit function's signature: its parameters are the public inputs
/// (field elements, vectors of them, or pointers to field arrays and structs, passed
/// `byval` or as typed pointers) and its result a field element, a vector, or an
/// `sret` field array it fills (then it returns `void`). Errors name the offending
/// type, which the generic parse would report less helpfully (an `i32` parameter is
/// fine for a callee but not for the circuit).
pub fn check_circuit_signature(
    src: &str,
    def: &FuncDef<'_>,
    types: &TypeTable<'_>,
) -> Result<(), CompileError> {
    let as_param = |e: CompileError, text: String| match e.kind() {
        ErrorKind::UnsupportedType(t) => CompileError::at(
            e.line().unwrap_or(def.name_line),
            ErrorKind::CircuitParameter(t.clone()),
        ),
        _ if !text.is_empty() => CompileError::at(def.name_line, ErrorKind::CircuitParameter(text)),
        _ => e,
    };
    let header = Cursor::new(src, &def.params, def.name_line);
    let mut srets = 0usize;
    for (a, b) in header.split_commas() {
        let toks = def.params.get(a..b).unwrap_or_default();
        let mut c = Cursor::new(src, toks, def.name_line);
        let line = c.line();
        let param = |text: String| CompileError::at(line, ErrorKind::CircuitParameter(text));
        match c.ty() {
            Ok(Ty::Field | Ty::FieldVec(_)) => {}
            Ok(Ty::Ptr) => match param_attr(src, toks, Ty::Ptr, types)? {
                ParamAttr::ByVal(t) | ParamAttr::Pointee(t) if t.all_field() => {}
                ParamAttr::Sret(t) if t.all_field() => srets += 1,
                ParamAttr::ByVal(_) | ParamAttr::Pointee(_) | ParamAttr::Sret(_) => {
                    return Err(param(c.text(0, toks.len())))
                }
                ParamAttr::Plain => {
                    return Err(param(format!(
                        "{}: a pointer whose pointee is not stated (pass it `byval(T)` or as a typed `T*`)",
                        c.text(0, toks.len())
                    )))
                }
            },
            Ok(other) => return Err(param(other.to_string())),
            Err(e) => return Err(as_param(e, c.text(0, toks.len()))),
        }
    }
    if srets > 1 {
        let msg = "more than one `sret` parameter".to_string();
        return Err(CompileError::at(
            def.name_line,
            ErrorKind::CircuitReturn(msg),
        ));
    }
    match ret_type(src, &def.before_name, def.name_line) {
        Ok(Some(Ty::Field | Ty::FieldVec(_))) if srets == 0 => Ok(()),
        Ok(None) if srets == 1 => Ok(()),
        Ok(other) => {
            let text = other.map_or("void".to_string(), |t| t.to_string());
            Err(CompileError::at(
                def.name_line,
                ErrorKind::CircuitReturn(text),
            ))
        }
        Err(e) => match e.kind() {
            ErrorKind::UnsupportedType(t) => Err(CompileError::at(
                e.line().unwrap_or(def.name_line),
                ErrorKind::CircuitReturn(t.clone()),
            )),
            _ => Err(e),
        },
    }
}

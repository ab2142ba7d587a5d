//! A shallow scan of a whole module: which functions are defined or declared, where
//! their bodies are, and which one carries the `circuit` attribute.
//!
//! The scan looks only at `define`, `declare` and `attributes` and walks over every
//! other top-level entity (globals, comdats, types, metadata) token by token, so
//! constructs outside the compiled subset anywhere outside reachable code never cause
//! an error. Bodies are located by brace matching but not parsed here: the parser is
//! only run on functions reachable from the circuit function.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use crate::circuit::error::{excerpt, CompileError, ErrorKind};
use crate::circuit::ir::MemTy;
use crate::circuit::lex::{Lexer, Tok, Token};
use crate::circuit::syntax::Cursor;

/// Named types (`%name = type { ... }`) a module may define.
const MAX_NAMED_TYPES: usize = 1 << 14;

/// Header tokens kept per `define`; a header longer than this is rejected rather than
/// letting one line of input claim unbounded memory.
const MAX_HEADER_TOKENS: usize = 1 << 14;

/// How deeply named types may refer to other named types (by value).
const MAX_TYPE_CHAIN: usize = 32;

/// The module's named types, resolved into memory layouts on first use (and shared
/// after that, so a type used a million times is laid out once). Only each
/// definition's place in the text is kept; it is lexed again when first resolved.
#[derive(Debug, Default)]
pub struct TypeTable<'a> {
    src: &'a str,
    /// Byte range and line of each definition's body (after `type`).
    defs: HashMap<&'a str, (usize, usize, usize)>,
    resolved: RefCell<HashMap<&'a str, MemTy>>,
    resolving: RefCell<Vec<&'a str>>,
}

impl<'a> TypeTable<'a> {
    /// The layout of `%name`, referenced at `line`.
    pub fn resolve(&self, name: &str, line: usize) -> Result<MemTy, CompileError> {
        if let Some(t) = self.resolved.borrow().get(name) {
            return Ok(t.clone());
        }
        let Some((&key, &(start, end, def_line))) = self.defs.get_key_value(name) else {
            let msg = format!("undefined type `%{}`", excerpt(name));
            return Err(CompileError::at(line, ErrorKind::Syntax(msg)));
        };
        if self.resolving.borrow().contains(&key) {
            let msg = format!("type `%{}` contains itself", excerpt(name));
            return Err(CompileError::at(line, ErrorKind::Unsupported(msg)));
        }
        if self.resolving.borrow().len() >= MAX_TYPE_CHAIN {
            let msg = format!("named types nested more than {MAX_TYPE_CHAIN} deep");
            return Err(CompileError::at(line, ErrorKind::Unsupported(msg)));
        }
        let mut lx = Lexer::range(self.src, start, end, def_line);
        let mut toks = Vec::new();
        while let Some(t) = lx.next_token()? {
            push_header(&mut toks, t)?;
        }
        if toks.first().is_some_and(|t| t.is_word("opaque")) {
            let msg = format!("opaque type `%{}` in memory", excerpt(name));
            return Err(CompileError::at(def_line, ErrorKind::Unsupported(msg)));
        }
        self.resolving.borrow_mut().push(key);
        let mut c = Cursor::new(self.src, &toks, def_line);
        let ty = c.mem_ty(self).and_then(|t| c.finish().map(|()| t));
        self.resolving.borrow_mut().pop();
        let ty = ty?;
        self.resolved.borrow_mut().insert(key, ty.clone());
        Ok(ty)
    }
}

/// A function definition as located by the scan.
#[derive(Debug, Clone)]
pub struct FuncDef<'a> {
    /// The name without `@`.
    pub name: &'a str,
    /// 1-based line of the `define` keyword.
    pub line: usize,
    /// Tokens between `define` and the name: linkage, attributes, return type.
    pub before_name: Vec<Token<'a>>,
    /// Tokens strictly inside the parameter list's parentheses.
    pub params: Vec<Token<'a>>,
    /// Line of the name, for errors about the header as a whole.
    pub name_line: usize,
    /// Byte range of the body, between the braces.
    pub body: (usize, usize),
    /// Line on which the body range starts.
    pub body_line: usize,
    inline_circuit: bool,
    groups: Vec<&'a str>,
}

/// The functions of a module and the circuit among them.
#[derive(Debug)]
pub struct ModuleIndex<'a> {
    /// Definitions by name.
    pub defined: HashMap<&'a str, FuncDef<'a>>,
    /// Names that are only declared.
    pub declared: HashSet<&'a str>,
    /// Named types.
    pub types: TypeTable<'a>,
    circuit_groups: HashSet<&'a str>,
}

impl<'a> ModuleIndex<'a> {
    /// Scans `src`.
    pub fn scan(src: &'a str) -> Result<Self, CompileError> {
        let mut index = ModuleIndex {
            defined: HashMap::new(),
            declared: HashSet::new(),
            types: TypeTable {
                src,
                ..TypeTable::default()
            },
            circuit_groups: HashSet::new(),
        };
        let mut lx = Lexer::new(src);
        while let Some(t) = lx.next_token()? {
            match t.tok {
                Tok::Local(name) if lx.peek()?.is_some_and(|p| p.is_punct(b'=')) => {
                    lx.next_token()?;
                    if lx.peek()?.is_some_and(|p| p.is_word("type")) {
                        lx.next_token()?;
                        let body = scan_line(&mut lx, t.line)?;
                        if index.types.defs.len() >= MAX_NAMED_TYPES {
                            let msg = format!("more than {MAX_NAMED_TYPES} named types");
                            return Err(CompileError::at(t.line, ErrorKind::Syntax(msg)));
                        }
                        if index.types.defs.insert(name, body).is_some() {
                            let msg = format!("type `%{}` is defined twice", excerpt(name));
                            return Err(CompileError::at(t.line, ErrorKind::Syntax(msg)));
                        }
                    }
                }
                Tok::Word("define") => {
                    let def = scan_define(&mut lx, t.line)?;
                    if index.defined.contains_key(def.name) {
                        let msg = format!("function `@{}` is defined twice", def.name);
                        return Err(CompileError::at(def.line, ErrorKind::Syntax(msg)));
                    }
                    index.defined.insert(def.name, def);
                }
                Tok::Word("declare") => {
                    if let Some(name) = scan_declare(&mut lx)? {
                        index.declared.insert(name);
                    }
                }
                Tok::Word("attributes") => {
                    if let Some(group) = scan_group(&mut lx)? {
                        index.circuit_groups.insert(group);
                    }
                }
                _ => {}
            }
        }
        Ok(index)
    }

    /// The unique function with the `circuit` attribute, directly or via a group.
    pub fn circuit(&self) -> Result<&FuncDef<'a>, CompileError> {
        let mut found: Vec<&FuncDef<'a>> = self
            .defined
            .values()
            .filter(|d| {
                d.inline_circuit || d.groups.iter().any(|g| self.circuit_groups.contains(g))
            })
            .collect();
        found.sort_by_key(|d| d.line);
        match found.as_slice() {
            [] => Err(CompileError::global(ErrorKind::NoCircuit)),
            [one] => Ok(one),
            [first, second, ..] => Err(CompileError::at(
                second.line,
                ErrorKind::MultipleCircuits(first.name.to_string(), second.name.to_string()),
            )),
        }
    }
}

fn eof(line: usize, what: &str) -> CompileError {
    CompileError::at(
        line,
        ErrorKind::Syntax(format!("unexpected end of text in {what}")),
    )
}

fn push_header<'a>(v: &mut Vec<Token<'a>>, t: Token<'a>) -> Result<(), CompileError> {
    if v.len() >= MAX_HEADER_TOKENS {
        let msg = "function header too long".to_string();
        return Err(CompileError::at(t.line, ErrorKind::Syntax(msg)));
    }
    v.push(t);
    Ok(())
}

/// Reads `... @name(params) attrs {body}` after a `define` keyword.
fn scan_define<'a>(lx: &mut Lexer<'a>, line: usize) -> Result<FuncDef<'a>, CompileError> {
    let mut before_name = Vec::new();
    let (name, name_line) = loop {
        let t = lx
            .next_token()?
            .ok_or_else(|| eof(line, "a function header"))?;
        if let Tok::Global(name) = t.tok {
            if lx.peek()?.is_some_and(|p| p.is_punct(b'(')) {
                lx.next_token()?;
                break (name, t.line);
            }
        }
        push_header(&mut before_name, t)?;
    };
    let mut params = Vec::new();
    let mut depth = 1usize;
    loop {
        let t = lx
            .next_token()?
            .ok_or_else(|| eof(line, "a parameter list"))?;
        if t.is_punct(b'(') {
            depth += 1;
        } else if t.is_punct(b')') {
            depth -= 1;
            if depth == 0 {
                break;
            }
        }
        push_header(&mut params, t)?;
    }
    let mut inline_circuit = false;
    let mut groups = Vec::new();
    let mut parens = 0usize;
    let open = loop {
        let t = lx
            .next_token()?
            .ok_or_else(|| eof(line, "a function header"))?;
        match t.tok {
            Tok::Punct(b'(') => parens += 1,
            Tok::Punct(b')') => parens = parens.saturating_sub(1),
            Tok::Punct(b'{') if parens == 0 => break t,
            Tok::Word("circuit") | Tok::Str("circuit") => inline_circuit = true,
            Tok::Word(w) if w.starts_with('#') => push_group(&mut groups, w, t.line)?,
            _ => {}
        }
    };
    let mut depth = 1usize;
    let close = loop {
        let t = lx
            .next_token()?
            .ok_or_else(|| eof(line, "a function body"))?;
        if t.is_punct(b'{') {
            depth += 1;
        } else if t.is_punct(b'}') {
            depth -= 1;
            if depth == 0 {
                break t;
            }
        }
    };
    Ok(FuncDef {
        name,
        line,
        before_name,
        params,
        name_line,
        body: (open.end, close.start),
        body_line: open.line,
        inline_circuit,
        groups,
    })
}

/// The byte range of the rest of line `line` (a type definition) and its line.
fn scan_line(lx: &mut Lexer<'_>, line: usize) -> Result<(usize, usize, usize), CompileError> {
    let mut range: Option<(usize, usize)> = None;
    while let Some(t) = lx.peek()? {
        if t.line != line {
            break;
        }
        lx.next_token()?;
        range = Some(range.map_or((t.start, t.end), |(a, _)| (a, t.end)));
    }
    let (start, end) = range.unwrap_or((0, 0));
    Ok((start, end, line))
}

fn push_group<'a>(groups: &mut Vec<&'a str>, g: &'a str, line: usize) -> Result<(), CompileError> {
    if groups.len() >= MAX_HEADER_TOKENS {
        let msg = "function header too long".to_string();
        return Err(CompileError::at(line, ErrorKind::Syntax(msg)));
    }
    groups.push(g);
    Ok(())
}

/// Finds the name in a `declare` line; the rest of the line is left to the main loop,
/// which ignores it.
fn scan_declare<'a>(lx: &mut Lexer<'a>) -> Result<Option<&'a str>, CompileError> {
    let line = lx.line();
    while let Some(t) = lx.peek()? {
        if t.line != line {
            return Ok(None);
        }
        lx.next_token()?;
        if let Tok::Global(name) = t.tok {
            if lx.peek()?.is_some_and(|p| p.is_punct(b'(')) {
                return Ok(Some(name));
            }
        }
    }
    Ok(None)
}

/// Reads `#N = { ... }` after `attributes` and returns `#N` if the group holds `circuit`.
fn scan_group<'a>(lx: &mut Lexer<'a>) -> Result<Option<&'a str>, CompileError> {
    let Some(Token {
        tok: Tok::Word(id), ..
    }) = lx.next_token()?
    else {
        return Ok(None);
    };
    if !lx.next_token()?.is_some_and(|t| t.is_punct(b'=')) {
        return Ok(None);
    }
    if !lx.peek()?.is_some_and(|t| t.is_punct(b'{')) {
        return Ok(None);
    }
    lx.next_token()?;
    let mut circuit = false;
    while let Some(t) = lx.next_token()? {
        match t.tok {
            Tok::Punct(b'}') => break,
            Tok::Word("circuit") | Tok::Str("circuit") => circuit = true,
            _ => {}
        }
    }
    Ok(circuit.then_some(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("testdata/arithmetics.ll");

    #[test]
    fn scans_the_fixture() {
        let m = ModuleIndex::scan(FIXTURE).unwrap();
        assert_eq!(m.defined.len(), 5);
        assert!(m.declared.contains("__cxa_atexit"));
        let c = m.circuit().unwrap();
        assert!(c.name.starts_with("_Z24field_arithmetic_example"));
        assert_eq!(c.line, 112);
    }

    #[test]
    fn finds_inline_circuit_attribute_and_rejects_two() {
        let one = "define i32 @a() #0 { ret i32 0 }\ndefine i32 @b() circuit {\n ret i32 1\n}";
        assert_eq!(ModuleIndex::scan(one).unwrap().circuit().unwrap().name, "b");
        let two = "define i32 @a() circuit { ret i32 0 }\n\ndefine i32 @b() #1 {}\nattributes #1 = { circuit }";
        let err = ModuleIndex::scan(two).unwrap().circuit().unwrap_err();
        assert_eq!(err.line(), Some(3));
        assert!(matches!(err.kind(), ErrorKind::MultipleCircuits(a, b) if a == "a" && b == "b"));
        let none = "define i32 @a() #0 { ret i32 0 }\nattributes #0 = { nounwind }";
        let err = ModuleIndex::scan(none).unwrap().circuit().unwrap_err();
        assert_eq!(err.to_string(), "no function with the `circuit` attribute");
    }

    #[test]
    fn unterminated_body_is_an_error() {
        let err = ModuleIndex::scan("\ndefine i32 @a() {\n ret i32 0\n").unwrap_err();
        assert_eq!(err.line(), Some(2));
    }
}

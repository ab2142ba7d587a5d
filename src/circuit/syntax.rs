//! Token-level parsing helpers: a cursor over one statement's tokens, types, and
//! integer and field literals.
//!
//! Everything here works on a bounded slice of tokens (one instruction or one header),
//! which keeps look-ahead trivial and error lines precise. Types outside the subset are
//! consumed whole (pointers, aggregates, address spaces) so the error can quote them.

use ark_ff::{BigInt, PrimeField};

use crate::circuit::error::{excerpt, CompileError, ErrorKind};
use crate::circuit::ir::{MemTy, Ty, FIELD_TYPE_SPELLINGS, MAX_TYPE_CELLS, MAX_VECTOR_LANES};
use crate::circuit::lex::{Tok, Token};
use crate::circuit::module::TypeTable;
use crate::circuit::program::Fe;

/// A cursor over the tokens of one statement.
pub struct Cursor<'t, 'a> {
    src: &'a str,
    toks: &'t [Token<'a>],
    pos: usize,
    line: usize,
}

impl<'t, 'a> Cursor<'t, 'a> {
    /// A cursor at the first of `toks`; `line` is used for errors when `toks` is empty.
    pub fn new(src: &'a str, toks: &'t [Token<'a>], line: usize) -> Self {
        Cursor {
            src,
            toks,
            pos: 0,
            line,
        }
    }

    /// The token at the cursor.
    pub fn peek(&self) -> Option<Token<'a>> {
        self.toks.get(self.pos).copied()
    }

    /// The token `k` places after the cursor.
    pub fn peek_at(&self, k: usize) -> Option<Token<'a>> {
        self.toks.get(self.pos.saturating_add(k)).copied()
    }

    /// Consumes the token at the cursor.
    pub fn next_tok(&mut self) -> Option<Token<'a>> {
        let t = self.peek()?;
        self.pos += 1;
        Some(t)
    }

    /// Whether every token has been consumed.
    pub fn at_end(&self) -> bool {
        self.pos >= self.toks.len()
    }

    /// The current index, for [`Cursor::text`].
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The source text the tokens point into.
    pub fn src(&self) -> &'a str {
        self.src
    }

    /// The tokens with indices `from..to` (empty if out of range).
    pub fn slice(&self, from: usize, to: usize) -> &'t [Token<'a>] {
        self.toks.get(from..to).unwrap_or_default()
    }

    /// Moves the cursor to token index `pos`.
    pub fn seek(&mut self, pos: usize) {
        self.pos = pos.min(self.toks.len());
    }

    /// The line of the token at the cursor (or of the last token).
    pub fn line(&self) -> usize {
        self.peek()
            .or_else(|| self.toks.last().copied())
            .map_or(self.line, |t| t.line)
    }

    /// An error at the cursor's line.
    pub fn err(&self, kind: ErrorKind) -> CompileError {
        CompileError::at(self.line(), kind)
    }

    /// The source text of tokens `from..to`, cut for quoting.
    pub fn text(&self, from: usize, to: usize) -> String {
        let (Some(a), Some(b)) = (
            self.toks.get(from),
            to.checked_sub(1).and_then(|i| self.toks.get(i)),
        ) else {
            return String::new();
        };
        self.src
            .get(a.start..b.end)
            .map(excerpt)
            .unwrap_or_default()
    }

    /// A syntax error about the token at the cursor.
    pub fn unexpected(&self, wanted: &str) -> CompileError {
        let found = if self.at_end() {
            "end of line".to_string()
        } else {
            format!("`{}`", self.text(self.pos, self.pos + 1))
        };
        self.err(ErrorKind::Syntax(format!(
            "expected {wanted}, found {found}"
        )))
    }

    /// Consumes punctuation `c` or fails.
    pub fn expect(&mut self, c: u8) -> Result<(), CompileError> {
        if self.peek().is_some_and(|t| t.is_punct(c)) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(&format!("`{}`", c as char)))
        }
    }

    /// Consumes a bare word or fails.
    pub fn word(&mut self, wanted: &str) -> Result<&'a str, CompileError> {
        match self.peek().map(|t| t.tok) {
            Some(Tok::Word(w)) => {
                self.pos += 1;
                Ok(w)
            }
            _ => Err(self.unexpected(wanted)),
        }
    }

    /// Consumes the bare word `w` if it is next.
    pub fn eat_word(&mut self, w: &str) -> bool {
        let hit = self.peek().is_some_and(|t| t.is_word(w));
        if hit {
            self.pos += 1;
        }
        hit
    }

    /// Skips any of the given flag words (`nsw`, `nuw`, ...).
    pub fn skip_flags(&mut self, flags: &[&str]) {
        while self
            .peek()
            .is_some_and(|t| matches!(t.tok, Tok::Word(w) if flags.contains(&w)))
        {
            self.pos += 1;
        }
    }

    /// Consumes a `label %name` operand and returns the name.
    pub fn label(&mut self) -> Result<&'a str, CompileError> {
        if !self.eat_word("label") {
            return Err(self.unexpected("`label`"));
        }
        match self.peek().map(|t| t.tok) {
            Some(Tok::Local(name)) => {
                self.pos += 1;
                Ok(name)
            }
            _ => Err(self.unexpected("a block name")),
        }
    }

    /// Skips a bracketed group whose opening bracket was just consumed.
    fn skip_group(&mut self) -> Result<(), CompileError> {
        let mut depth = 1usize;
        while depth > 0 {
            let t = self
                .next_tok()
                .ok_or_else(|| self.unexpected("a closing bracket"))?;
            match t.tok {
                Tok::Punct(b'(' | b'[' | b'{' | b'<') => depth += 1,
                Tok::Punct(b')' | b']' | b'}' | b'>') => depth -= 1,
                _ => {}
            }
        }
        Ok(())
    }

    /// Parses a value type of the subset: a field element, `<N x field>`, `iN`, or a
    /// pointer (`ptr`, or `T*` for any `T`: the pointee of a typed pointer does not
    /// matter, the instructions that use it name their types). Anything else
    /// (aggregates as values, address spaces, other scalars) is an error quoting the
    /// whole type.
    pub fn ty(&mut self) -> Result<Ty, CompileError> {
        let start = self.pos;
        let line = self.line();
        let t = self.next_tok().ok_or_else(|| self.unexpected("a type"))?;
        let base = match t.tok {
            Tok::Word("ptr") => Some(Ty::Ptr),
            Tok::Word(w) => ty_word(w),
            Tok::Local(_) => None,
            Tok::Punct(b'<') => match vector_type(self.toks.get(self.pos..).unwrap_or_default()) {
                Some(ty) => {
                    self.pos += 4;
                    Some(ty)
                }
                None => {
                    self.skip_group()?;
                    None
                }
            },
            Tok::Punct(b'[' | b'{') => {
                self.skip_group()?;
                None
            }
            _ => {
                self.pos = start;
                return Err(self.unexpected("a type"));
            }
        };
        let mut stars = false;
        let mut addrspace = false;
        loop {
            if self.peek().is_some_and(|t| t.is_punct(b'*')) {
                self.pos += 1;
                stars = true;
            } else if self.peek().is_some_and(|t| t.is_word("addrspace"))
                && self.peek_at(1).is_some_and(|t| t.is_punct(b'('))
            {
                self.pos += 2;
                self.skip_group()?;
                addrspace = true;
            } else {
                break;
            }
        }
        match (base, stars, addrspace) {
            (_, true, false) => Ok(Ty::Ptr),
            (Some(ty), false, false) => Ok(ty),
            _ => Err(CompileError::at(
                line,
                ErrorKind::UnsupportedType(self.text(start, self.pos)),
            )),
        }
    }

    /// Parses a type as laid out in memory (`alloca`, `getelementptr`, `byval`):
    /// scalars, `<N x field>`, `[N x T]`, `{T, ...}`, `<{T, ...}>`, pointers and
    /// named types (resolved through `types`).
    pub fn mem_ty(&mut self, types: &TypeTable<'_>) -> Result<MemTy, CompileError> {
        self.mem_ty_at(types, 0)
    }

    fn mem_ty_at(&mut self, types: &TypeTable<'_>, depth: usize) -> Result<MemTy, CompileError> {
        let start = self.pos;
        let line = self.line();
        let unsupported =
            |c: &Self| CompileError::at(line, ErrorKind::UnsupportedType(c.text(start, c.pos)));
        if depth > MAX_TYPE_NESTING {
            let msg = format!("types nested more than {MAX_TYPE_NESTING} deep");
            return Err(CompileError::at(line, ErrorKind::Unsupported(msg)));
        }
        let t = self.next_tok().ok_or_else(|| self.unexpected("a type"))?;
        let base = match t.tok {
            // A named type behind a pointer is never resolved: it may be recursive
            // (`%node = type { i64, %node* }`) or opaque.
            Tok::Local(_) if self.peek().is_some_and(|t| t.is_punct(b'*')) => MemTy::Ptr,
            Tok::Local(name) => types.resolve(name, line)?,
            Tok::Word("ptr") => MemTy::Ptr,
            Tok::Word(w) => match ty_word(w) {
                Some(ty) => MemTy::of(ty),
                None => {
                    if self.peek().is_some_and(|t| t.is_punct(b'(')) {
                        // A function type, only ever behind a pointer.
                        self.next_tok();
                        self.skip_group()?;
                    }
                    if self.peek().is_some_and(|t| t.is_punct(b'*')) {
                        MemTy::Ptr
                    } else {
                        return Err(unsupported(self));
                    }
                }
            },
            Tok::Punct(b'[') => {
                let len = self.word("an array length")?;
                let len: u64 = len
                    .parse()
                    .map_err(|_| self.err(ErrorKind::Syntax("bad array length".into())))?;
                if !self.eat_word("x") {
                    return Err(self.unexpected("`x`"));
                }
                let elem = self.mem_ty_at(types, depth + 1)?;
                self.expect(b']')?;
                MemTy::array(len, elem).ok_or_else(|| too_big(self, start))?
            }
            Tok::Punct(b'<') if self.peek().is_some_and(|t| t.is_punct(b'{')) => {
                self.next_tok();
                let s = self.struct_body(types, depth, start)?;
                self.expect(b'>')?;
                s
            }
            Tok::Punct(b'<') => match vector_type(self.toks.get(self.pos..).unwrap_or_default()) {
                Some(Ty::FieldVec(n)) => {
                    self.pos += 4;
                    MemTy::FieldVec(n)
                }
                _ => {
                    self.skip_group()?;
                    return Err(unsupported(self));
                }
            },
            Tok::Punct(b'{') => self.struct_body(types, depth, start)?,
            _ => {
                self.pos = start;
                return Err(self.unexpected("a type"));
            }
        };
        let mut ty = base;
        while self.peek().is_some_and(|t| t.is_punct(b'*')) {
            self.pos += 1;
            ty = MemTy::Ptr;
        }
        if self.peek().is_some_and(|t| t.is_word("addrspace")) {
            self.next_tok();
            if self.peek().is_some_and(|t| t.is_punct(b'(')) {
                self.next_tok();
                self.skip_group()?;
            }
            return Err(unsupported(self));
        }
        Ok(ty)
    }

    /// `T, ... }` after a `{`.
    fn struct_body(
        &mut self,
        types: &TypeTable<'_>,
        depth: usize,
        start: usize,
    ) -> Result<MemTy, CompileError> {
        let mut fields = Vec::new();
        if self.peek().is_some_and(|t| t.is_punct(b'}')) {
            self.next_tok();
        } else {
            loop {
                fields.push(self.mem_ty_at(types, depth + 1)?);
                if self.peek().is_some_and(|t| t.is_punct(b'}')) {
                    self.next_tok();
                    break;
                }
                self.expect(b',')?;
            }
        }
        MemTy::structure(fields).ok_or_else(|| too_big(self, start))
    }

    /// Accepts trailing metadata attachments (`, !dbg !12, !llvm.loop !9`) and nothing
    /// else at the end of an instruction.
    pub fn finish(&mut self) -> Result<(), CompileError> {
        if self.at_end() {
            return Ok(());
        }
        let is_metadata = self.peek().is_some_and(|t| t.is_punct(b','))
            && matches!(self.peek_at(1).map(|t| t.tok), Some(Tok::Word(w)) if w.starts_with('!'));
        if is_metadata {
            self.pos = self.toks.len();
            Ok(())
        } else {
            Err(self.unexpected("end of instruction"))
        }
    }

    /// Index ranges of the comma-separated items from the cursor to the end, splitting
    /// only at commas outside brackets.
    pub fn split_commas(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut depth = 0usize;
        let mut from = self.pos;
        for (i, t) in self.toks.iter().enumerate().skip(self.pos) {
            match t.tok {
                Tok::Punct(b'(' | b'[' | b'{' | b'<') => depth += 1,
                Tok::Punct(b')' | b']' | b'}' | b'>') => depth = depth.saturating_sub(1),
                Tok::Punct(b',') if depth == 0 => {
                    out.push((from, i));
                    from = i + 1;
                }
                _ => {}
            }
        }
        if from < self.toks.len() {
            out.push((from, self.toks.len()));
        }
        out
    }
}

/// How deeply aggregate types may nest.
const MAX_TYPE_NESTING: usize = 32;

fn too_big(c: &Cursor<'_, '_>, start: usize) -> CompileError {
    let msg = format!(
        "type `{}` spans more than {MAX_TYPE_CELLS} elements",
        c.text(start, c.pos)
    );
    c.err(ErrorKind::Unsupported(msg))
}

/// `N x field >` (the tokens after a `<`): a vector of field elements in the subset.
fn vector_type(toks: &[Token<'_>]) -> Option<Ty> {
    let [n, x, elem, close, ..] = toks else {
        return None;
    };
    let (Tok::Word(n), Tok::Word(elem)) = (n.tok, elem.tok) else {
        return None;
    };
    if !x.is_word("x") || !close.is_punct(b'>') || ty_word(elem) != Some(Ty::Field) {
        return None;
    }
    if n.is_empty() || n.len() > 4 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u32 = n.parse().ok()?;
    (1..=MAX_VECTOR_LANES)
        .contains(&n)
        .then_some(Ty::FieldVec(n))
}

/// The type named by one word, if it is in the subset.
pub fn ty_word(w: &str) -> Option<Ty> {
    if FIELD_TYPE_SPELLINGS.contains(&w) {
        return Some(Ty::Field);
    }
    let digits = w.strip_prefix('i')?;
    if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u32 = digits.parse().ok()?;
    (1..=64).contains(&n).then_some(Ty::Int(n))
}

/// The return type written last in `toks` (the tokens before a function's name):
/// `None` for `void`. Anything before the type (linkage, attributes) is ignored.
pub fn ret_type(src: &str, toks: &[Token<'_>], line: usize) -> Result<Option<Ty>, CompileError> {
    let Some(last) = toks.last() else {
        let kind = ErrorKind::Syntax("missing return type".into());
        return Err(CompileError::at(line, kind));
    };
    if let Tok::Word(w) = last.tok {
        if w == "void" {
            return Ok(None);
        }
        if w == "ptr" {
            return Ok(Some(Ty::Ptr));
        }
        if let Some(ty) = ty_word(w) {
            return Ok(Some(ty));
        }
    }
    if last.is_punct(b'*') {
        return Ok(Some(Ty::Ptr));
    }
    if let Some(start) = toks.len().checked_sub(5) {
        let tail = toks.get(start..).unwrap_or_default();
        if tail.first().is_some_and(|t| t.is_punct(b'<')) {
            if let Some(ty) = vector_type(tail.get(1..).unwrap_or_default()) {
                return Ok(Some(ty));
            }
        }
    }
    // Not in the subset: quote from the start of the type, which is found by walking
    // back over pointer stars and one bracketed group.
    let mut i = toks.len() - 1;
    while i > 0 && toks.get(i).is_some_and(|t| t.is_punct(b'*')) {
        i -= 1;
    }
    if toks
        .get(i)
        .is_some_and(|t| matches!(t.tok, Tok::Punct(b')' | b']' | b'}' | b'>')))
    {
        let mut depth = 0usize;
        loop {
            match toks.get(i).map(|t| t.tok) {
                Some(Tok::Punct(b')' | b']' | b'}' | b'>')) => depth += 1,
                Some(Tok::Punct(b'(' | b'[' | b'{' | b'<')) => depth = depth.saturating_sub(1),
                _ => {}
            }
            if depth == 0 || i == 0 {
                break;
            }
            i -= 1;
        }
    }
    let start = toks.get(i).map_or(last.start, |t| t.start);
    let text = src.get(start..last.end).map(excerpt).unwrap_or_default();
    Err(CompileError::at(
        last.line,
        ErrorKind::UnsupportedType(text),
    ))
}

/// Parses an integer literal of type `iN`, truncated to N bits. Literals may be written
/// signed or unsigned (`i8 -1` and `i8 255` are the same value), as LLVM allows.
pub fn int_literal(w: &str, bits: u32) -> Result<u64, ErrorKind> {
    match w {
        "true" if bits == 1 => return Ok(1),
        "false" if bits == 1 => return Ok(0),
        _ => {}
    }
    let (negative, digits) = match w.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, w),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(if w.bytes().all(|b| b.is_ascii_alphabetic()) {
            ErrorKind::Unsupported(format!("constant `{}`", excerpt(w)))
        } else {
            ErrorKind::Syntax(format!(
                "expected an integer constant, found `{}`",
                excerpt(w)
            ))
        });
    }
    let out_of_range = || ErrorKind::IntConstantOutOfRange(excerpt(w), bits);
    let mut v: u128 = 0;
    for b in digits.bytes() {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u128::from(b - b'0')))
            .ok_or_else(out_of_range)?;
    }
    let limit: u128 = 1u128 << bits;
    let fits = if negative { v <= limit / 2 } else { v < limit };
    if !fits {
        return Err(out_of_range());
    }
    let v = if negative { limit - v } else { v };
    Ok(mask(v as u64, bits))
}

/// Truncates `v` to `bits` bits.
pub fn mask(v: u64, bits: u32) -> u64 {
    if bits >= 64 {
        v
    } else {
        v & ((1u64 << bits) - 1)
    }
}

/// Parses a field literal, `f0x...` (hex) or `f...` (decimal), which must be a
/// canonical element: below the modulus.
pub fn field_literal(w: &str) -> Result<Fe, ErrorKind> {
    let malformed = || {
        ErrorKind::Syntax(format!(
            "expected a field constant like `f0x1`, found `{}`",
            excerpt(w)
        ))
    };
    let out_of_range = || ErrorKind::FieldConstantOutOfRange(excerpt(w));
    let body = w.strip_prefix('f').ok_or_else(malformed)?;
    let (radix, digits) = match body.strip_prefix("0x") {
        Some(hex) => (16u64, hex),
        None => (10u64, body),
    };
    if digits.is_empty() {
        return Err(malformed());
    }
    let mut limbs = [0u64; 4];
    for c in digits.chars() {
        let d = c.to_digit(radix as u32).ok_or_else(malformed)?;
        let mut carry = u128::from(d);
        for limb in limbs.iter_mut() {
            let x = u128::from(*limb) * u128::from(radix) + carry;
            *limb = x as u64;
            carry = x >> 64;
        }
        if carry != 0 {
            return Err(out_of_range());
        }
    }
    Fe::from_bigint(BigInt::new(limbs)).ok_or_else(out_of_range)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circuit::lex::Lexer;

    fn lex(src: &str) -> Vec<Token<'_>> {
        let mut lx = Lexer::new(src);
        let mut v = Vec::new();
        while let Some(t) = lx.next_token().unwrap() {
            v.push(t);
        }
        v
    }

    #[test]
    fn parses_types_and_quotes_unsupported_ones() {
        for (src, want) in [
            ("i32", Ok(Ty::Int(32))),
            ("__zkllvm_field_pallas_base", Ok(Ty::Field)),
            ("field_pallasb", Ok(Ty::Field)),
            ("field_pallass", Err("field_pallass")),
            ("field_pallasb*", Ok(Ty::Ptr)),
            ("i8*", Ok(Ty::Ptr)),
            ("ptr", Ok(Ty::Ptr)),
            ("%\"class.std::ios_base::Init\"*", Ok(Ty::Ptr)),
            (
                "%\"class.std::ios_base::Init\"",
                Err("%\"class.std::ios_base::Init\""),
            ),
            ("[6 x [2 x i64]]", Err("[6 x [2 x i64]]")),
            ("<3 x __zkllvm_field_pallas_base>", Ok(Ty::FieldVec(3))),
            ("<1 x field_pallasb>", Ok(Ty::FieldVec(1))),
            ("<1024 x field_pallasb>", Ok(Ty::FieldVec(1024))),
            ("<1025 x field_pallasb>", Err("<1025 x field_pallasb>")),
            ("<0 x field_pallasb>", Err("<0 x field_pallasb>")),
            ("<4 x i32>", Err("<4 x i32>")),
            ("<3 x field_pallass>", Err("<3 x field_pallass>")),
            ("<3 x field_pallasb>*", Ok(Ty::Ptr)),
            ("i8* addrspace(1)*", Err("i8* addrspace(1)*")),
            ("ptr addrspace(1)", Err("ptr addrspace(1)")),
            ("double", Err("double")),
            ("i128", Err("i128")),
        ] {
            let toks = lex(src);
            let mut c = Cursor::new(src, &toks, 1);
            match (c.ty(), want) {
                (Ok(t), Ok(w)) => assert_eq!(t, w),
                (Err(e), Err(w)) => assert_eq!(e.kind(), &ErrorKind::UnsupportedType(w.into())),
                (got, _) => panic!("{src}: {got:?}"),
            }
        }
    }

    #[test]
    fn parses_return_types_before_a_name() {
        let src = "dso_local noundef __zkllvm_field_pallas_base";
        assert_eq!(ret_type(src, &lex(src), 1), Ok(Some(Ty::Field)));
        assert_eq!(ret_type("void", &lex("void"), 1), Ok(None));
        let src = "dso_local <3 x __zkllvm_field_pallas_base>";
        assert_eq!(ret_type(src, &lex(src), 1), Ok(Some(Ty::FieldVec(3))));
        let src = "internal { i32, i8* }";
        let e = ret_type(src, &lex(src), 1).unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::UnsupportedType("{ i32, i8* }".into()));
    }

    #[test]
    fn integer_literals_wrap_to_width() {
        assert_eq!(int_literal("-1", 8), Ok(255));
        assert_eq!(int_literal("255", 8), Ok(255));
        assert_eq!(int_literal("-128", 8), Ok(128));
        assert!(int_literal("256", 8).is_err());
        assert!(int_literal("-129", 8).is_err());
        assert_eq!(int_literal("true", 1), Ok(1));
        assert_eq!(int_literal("-1", 1), Ok(1));
        assert_eq!(int_literal("18446744073709551615", 64), Ok(u64::MAX));
        assert!(int_literal("99999999999999999999999999999999999999999999", 64).is_err());
        assert!(matches!(
            int_literal("undef", 32),
            Err(ErrorKind::Unsupported(_))
        ));
    }

    #[test]
    fn field_literals_are_canonical() {
        assert_eq!(field_literal("f0x1"), Ok(Fe::from(1u64)));
        assert_eq!(field_literal("f123"), Ok(Fe::from(123u64)));
        assert_eq!(
            field_literal("f0x12345678901234567890"),
            Ok(Fe::from(0x1234_5678_9012_3456_7890u128))
        );
        let p = "f0x40000000000000000000000000000000224698fc094cf91b992d30ed00000001";
        assert!(matches!(
            field_literal(p),
            Err(ErrorKind::FieldConstantOutOfRange(_))
        ));
        let p_minus_1 = "f0x40000000000000000000000000000000224698fc094cf91b992d30ed00000000";
        assert_eq!(field_literal(p_minus_1), Ok(-Fe::from(1u64)));
        assert!(field_literal(&format!("f0x1{}", "0".repeat(64))).is_err());
        assert!(field_literal("f0xg").is_err());
        assert!(field_literal("3").is_err());
    }
}

//! A streaming tokenizer for LLVM IR text.
//!
//! It is deliberately permissive: anything that is not whitespace, punctuation, a
//! comment or a string is one "word", so the module scanner can walk over constructs it
//! does not understand (globals, metadata, comdats) without failing on them. Only the
//! parts of the module that are compiled get a closer look, by the parser.
//!
//! Tokens borrow from the source and remember their byte span and line, so error
//! messages can quote the exact text. The lexer streams instead of building a token
//! vector up front because the text is untrusted: memory then only grows with what the
//! parser keeps, not with the input size.

use crate::circuit::error::{CompileError, ErrorKind};

/// The shape of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tok<'a> {
    /// A bare word: keyword, type name, number, `f0x..` constant, `#5`, `!dbg`, `!12`.
    Word(&'a str),
    /// `%name` or `%"quoted name"`, without the sigil and quotes.
    Local(&'a str),
    /// `@name` or `@"quoted name"`, without the sigil and quotes.
    Global(&'a str),
    /// The contents of a `"string"`.
    Str(&'a str),
    /// A block label: `name:`, `"name":`, or the old comment form `; <label>:5`.
    Label(&'a str),
    /// One of `( ) { } [ ] < > , = * :`.
    Punct(u8),
}

/// A token with its 1-based line and byte span in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    /// What the token is.
    pub tok: Tok<'a>,
    /// 1-based line of the token's first byte.
    pub line: usize,
    /// Byte offset of the token's first byte.
    pub start: usize,
    /// Byte offset just past the token.
    pub end: usize,
}

impl Token<'_> {
    /// Whether this is the punctuation character `c`.
    pub fn is_punct(&self, c: u8) -> bool {
        self.tok == Tok::Punct(c)
    }

    /// Whether this is the bare word `w`.
    pub fn is_word(&self, w: &str) -> bool {
        self.tok == Tok::Word(w)
    }
}

fn is_punct(c: u8) -> bool {
    matches!(
        c,
        b'(' | b')' | b'{' | b'}' | b'[' | b']' | b'<' | b'>' | b',' | b'=' | b'*' | b':'
    )
}

fn is_word_byte(c: u8) -> bool {
    !(c.is_ascii_whitespace() || is_punct(c) || c == b';' || c == b'"')
}

/// Streams the tokens of `src[start..end]`.
pub struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    end: usize,
    line: usize,
    peeked: Option<Option<Token<'a>>>,
}

impl<'a> Lexer<'a> {
    /// Lexes the whole of `src`.
    pub fn new(src: &'a str) -> Self {
        Lexer::range(src, 0, src.len(), 1)
    }

    /// Lexes `src[start..end]`, whose first byte is on 1-based line `line`.
    pub fn range(src: &'a str, start: usize, end: usize, line: usize) -> Self {
        Lexer {
            src,
            pos: start,
            end: end.min(src.len()),
            line,
            peeked: None,
        }
    }

    /// The line the lexer is at (of the next unread byte).
    pub fn line(&self) -> usize {
        self.line
    }

    /// The next token without consuming it.
    pub fn peek(&mut self) -> Result<Option<Token<'a>>, CompileError> {
        if let Some(t) = self.peeked {
            return Ok(t);
        }
        let t = self.lex()?;
        self.peeked = Some(t);
        Ok(t)
    }

    /// Consumes and returns the next token; `None` at the end of the range.
    pub fn next_token(&mut self) -> Result<Option<Token<'a>>, CompileError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lex(),
        }
    }

    fn byte(&self, i: usize) -> Option<u8> {
        if i < self.end {
            self.src.as_bytes().get(i).copied()
        } else {
            None
        }
    }

    fn slice(&self, a: usize, b: usize) -> Result<&'a str, CompileError> {
        self.src
            .get(a..b)
            .ok_or_else(|| CompileError::at(self.line, ErrorKind::Syntax("malformed text".into())))
    }

    fn token(&self, tok: Tok<'a>, line: usize, start: usize) -> Option<Token<'a>> {
        Some(Token {
            tok,
            line,
            start,
            end: self.pos,
        })
    }

    fn lex(&mut self) -> Result<Option<Token<'a>>, CompileError> {
        loop {
            let Some(c) = self.byte(self.pos) else {
                return Ok(None);
            };
            let start = self.pos;
            let line = self.line;
            if c == b'\n' {
                self.line += 1;
                self.pos += 1;
            } else if c.is_ascii_whitespace() {
                self.pos += 1;
            } else if c == b';' {
                if let Some(label) = self.comment()? {
                    return Ok(self.token(Tok::Label(label), line, start));
                }
            } else if c == b'"' {
                let s = self.string()?;
                if self.byte(self.pos) == Some(b':') {
                    self.pos += 1;
                    return Ok(self.token(Tok::Label(s), line, start));
                }
                return Ok(self.token(Tok::Str(s), line, start));
            } else if c == b'%' || c == b'@' {
                self.pos += 1;
                let name = if self.byte(self.pos) == Some(b'"') {
                    self.string()?
                } else {
                    self.word()?
                };
                if name.is_empty() {
                    let msg = format!("`{}` without a name", c as char);
                    return Err(CompileError::at(line, ErrorKind::Syntax(msg)));
                }
                let tok = if c == b'%' {
                    Tok::Local(name)
                } else {
                    Tok::Global(name)
                };
                return Ok(self.token(tok, line, start));
            } else if is_punct(c) {
                self.pos += 1;
                return Ok(self.token(Tok::Punct(c), line, start));
            } else {
                let w = self.word()?;
                if self.byte(self.pos) == Some(b':') {
                    self.pos += 1;
                    return Ok(self.token(Tok::Label(w), line, start));
                }
                return Ok(self.token(Tok::Word(w), line, start));
            }
        }
    }

    fn word(&mut self) -> Result<&'a str, CompileError> {
        let start = self.pos;
        while self.byte(self.pos).is_some_and(is_word_byte) {
            self.pos += 1;
        }
        self.slice(start, self.pos)
    }

    /// Reads a `"..."` string at `pos` and returns its contents. LLVM strings have no
    /// escaped quotes (`\22` is used instead) and never span lines.
    fn string(&mut self) -> Result<&'a str, CompileError> {
        let open = self.pos;
        self.pos += 1;
        loop {
            match self.byte(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    return self.slice(open + 1, self.pos - 1);
                }
                Some(b'\n') | None => {
                    let kind = ErrorKind::Syntax("unterminated string".into());
                    return Err(CompileError::at(self.line, kind));
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    /// Skips a `;` comment. Old LLVM versions printed numbered block labels only as a
    /// comment (`; <label>:5:`), so that one comment form is a label.
    fn comment(&mut self) -> Result<Option<&'a str>, CompileError> {
        let start = self.pos + 1;
        while self.byte(self.pos).is_some_and(|c| c != b'\n') {
            self.pos += 1;
        }
        let text = self.slice(start, self.pos)?.trim_start();
        let Some(rest) = text.strip_prefix("<label>:") else {
            return Ok(None);
        };
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        match rest.get(..digits) {
            Some(d) if !d.is_empty() => Ok(Some(d)),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<(Tok<'_>, usize)> {
        let mut lx = Lexer::new(src);
        let mut out = Vec::new();
        while let Some(t) = lx.next_token().unwrap() {
            out.push((t.tok, t.line));
        }
        out
    }

    #[test]
    fn lexes_names_labels_comments_and_strings() {
        let src = "%3 = add nsw i32 %\"a b\", -1 ; c\nentry:\n; <label>:7:  ; preds\n\"q x\":\n@f(x) !dbg !4";
        assert_eq!(
            toks(src),
            vec![
                (Tok::Local("3"), 1),
                (Tok::Punct(b'='), 1),
                (Tok::Word("add"), 1),
                (Tok::Word("nsw"), 1),
                (Tok::Word("i32"), 1),
                (Tok::Local("a b"), 1),
                (Tok::Punct(b','), 1),
                (Tok::Word("-1"), 1),
                (Tok::Label("entry"), 2),
                (Tok::Label("7"), 3),
                (Tok::Label("q x"), 4),
                (Tok::Global("f"), 5),
                (Tok::Punct(b'('), 5),
                (Tok::Word("x"), 5),
                (Tok::Punct(b')'), 5),
                (Tok::Word("!dbg"), 5),
                (Tok::Word("!4"), 5),
            ]
        );
    }

    #[test]
    fn rejects_unterminated_strings_and_bare_sigils() {
        let mut lx = Lexer::new("x\n\"abc\n");
        assert!(lx.next_token().is_ok());
        assert_eq!(lx.next_token().unwrap_err().line(), Some(2));
        assert!(Lexer::new("% x").next_token().is_err());
    }

    #[test]
    fn multibyte_text_is_safe() {
        let t = toks("é%ü \"ö\" ; ß\n@\"ł\":");
        assert_eq!(t.len(), 4);
    }
}

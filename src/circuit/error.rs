//! The compiler's error type.
//!
//! IR text arrives from anonymous users, so every failure must be explainable to them:
//! an error carries the 1-based line of the offending construct whenever there is one,
//! and a [`ErrorKind`] that names the construct. Keeping the line outside the kind lets
//! every stage report "line N: ..." uniformly and lets callers match on the kind.

use std::fmt;

use crate::circuit::program::ProgramError;

/// Why IR text could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CompileError {
    line: Option<usize>,
    kind: ErrorKind,
}

impl CompileError {
    /// An error located at a 1-based line of the IR text.
    pub fn at(line: usize, kind: ErrorKind) -> Self {
        CompileError {
            line: Some(line),
            kind,
        }
    }

    /// An error about the module as a whole.
    pub fn global(kind: ErrorKind) -> Self {
        CompileError { line: None, kind }
    }

    /// The 1-based line of the IR text the error is about, if it is about one.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

/// The kinds of compile failure. Texts quoted from the IR are cut to a bounded length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// The IR text is over the accepted size.
    #[error("IR text too large (over {0} bytes)")]
    InputTooLarge(usize),
    /// Text that is not well-formed LLVM IR (as far as this compiler reads it).
    #[error("syntax error: {0}")]
    Syntax(String),
    /// An instruction outside the supported subset.
    #[error("unsupported instruction `{0}`")]
    UnsupportedInstruction(String),
    /// A type outside the supported subset.
    #[error("unsupported type `{0}`{hint}", hint = field_hint(.0))]
    UnsupportedType(String),
    /// Any other construct outside the supported subset (the text names it).
    #[error("unsupported {0}")]
    Unsupported(String),
    /// A field constant that is not a canonical field element.
    #[error("field constant `{0}` is not below the Pallas base field modulus")]
    FieldConstantOutOfRange(String),
    /// An integer literal that does not fit its type.
    #[error("integer constant `{0}` does not fit in `i{1}`")]
    IntConstantOutOfRange(String, u32),
    /// A use of a `%value` that is never defined.
    #[error("undefined value `%{0}`")]
    UndefinedValue(String),
    /// A `%value` read on a path where it has not been computed yet.
    #[error("value `%{0}` used before it is defined")]
    UseBeforeDefinition(String),
    /// A branch to a `%label` that is not a block of the function.
    #[error("undefined block `%{0}`")]
    UndefinedBlock(String),
    /// A call to a function that is declared but has no body to inline.
    #[error("call to `@{0}`, which is only declared (no body to inline)")]
    DeclaredOnly(String),
    /// A call to a function that is neither defined nor declared.
    #[error("call to undefined function `@{0}`")]
    UndefinedFunction(String),
    /// Operand or argument types that disagree.
    #[error("type mismatch: {0}")]
    TypeMismatch(String),
    /// Control flow that would depend on a value unknown at compile time.
    #[error("{0}; control flow must be known at compile time")]
    NonConstantControl(String),
    /// Integer behaviour LLVM leaves undefined (division by zero, oversized shift, ...).
    #[error("undefined behaviour: {0}")]
    UndefinedBehaviour(String),
    /// The module has no function with the `circuit` attribute.
    #[error("no function with the `circuit` attribute")]
    NoCircuit,
    /// The module has several functions with the `circuit` attribute.
    #[error("more than one circuit function (`@{0}` and `@{1}`)")]
    MultipleCircuits(String, String),
    /// A circuit-function parameter that is not a field element, a vector of them, or
    /// a pointer to an array or struct of them.
    #[error("circuit parameter of unsupported type `{0}` (only the Pallas base field, `__zkllvm_field_pallas_base` or `field_pallasb`, vectors `<N x ...>` of it, and pointers to arrays and structs of it are accepted)")]
    CircuitParameter(String),
    /// A circuit function that does not return a field element or a vector of them
    /// (or fill an `sret` array of them).
    #[error("circuit function returns `{0}`, not the Pallas base field (`__zkllvm_field_pallas_base` or `field_pallasb`), a vector `<N x ...>` of it, or (`void` with an `sret` parameter) an array of it")]
    CircuitReturn(String),
    /// The unrolled program exceeds the instruction cap.
    #[error("program too large (over {0} instructions)")]
    ProgramTooLarge(usize),
    /// Symbolic execution exceeded the step cap (usually a loop bound that never holds).
    #[error("loop did not terminate within {0} steps")]
    StepLimit(u64),
    /// Calls nested deeper than the inlining cap (usually recursion).
    #[error("calls nested deeper than {0} (unbounded recursion?)")]
    CallDepth(usize),
    /// The frames of the inlined calls hold too many values at once.
    #[error("inlined call frames hold over {0} values")]
    FrameTooLarge(usize),
    /// A SHA-256 builtin call with a constant input lane of `2^128` or more (the lane,
    /// 0 to 3): it could never be evaluated.
    #[error("SHA-256 input lane {0} is a constant of 2^128 or more; the SHA-256 input lanes must be below 2^128")]
    Sha256LaneTooLarge(usize),
    /// The built program was rejected by [`crate::circuit::program::Program::new`]; a compiler bug.
    #[error("internal error: {0}")]
    Program(ProgramError),
}

/// Quotes IR text in an error message, cut to a length a log line can hold.
pub fn excerpt(text: &str) -> String {
    const MAX_CHARS: usize = 80;
    let mut out: String = text.chars().take(MAX_CHARS).collect();
    if text.chars().nth(MAX_CHARS).is_some() {
        out.push_str("...");
    }
    out
}

/// For a type that names another of zkLLVM's fields: that the market proves over the
/// Pallas base field only.
fn field_hint(ty: &str) -> &'static str {
    if crate::circuit::ir::OTHER_FIELD_TYPES.iter().any(|f| {
        ty.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|w| w == *f)
    }) {
        " (another field than the Pallas base field, the only one this market proves over)"
    } else {
        ""
    }
}

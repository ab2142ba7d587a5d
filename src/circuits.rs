//! The old path of the statement circuits, kept while callers move.
//!
//! Temporary: removed after the merge. The statement circuits and their cache live in
//! [`crate::prover::statements`]; the canonical input and field text forms in
//! [`crate::input`].

pub use crate::input::{fe_to_hex, parse_canonical};
pub use crate::prover::statements::{StatementCircuit, StatementCircuits as Circuits};

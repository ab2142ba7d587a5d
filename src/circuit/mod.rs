//! Circuits: zkLLVM IR compiled into straight-line field programs.
//!
//! `compile` is the entry point; the other modules are its stages, in order: `lex`
//! (tokens), `module` (locating functions), `syntax`/`parse`/`inst` (parsing reachable
//! functions into `ir`), `ssa` (dominance check), `exec` (symbolic execution, with `memory` for
//! `alloca`/`load`/`store`) and `builder` (emitting the `program`). `error` is shared by all stages.
pub mod builder;
pub mod compile;
pub mod error;
pub mod exec;
pub mod inst;
pub mod ir;
pub mod lex;
pub mod memory;
pub mod module;
pub mod parse;
pub mod poseidon;
pub mod program;
pub mod sha256;
pub mod ssa;
pub mod syntax;

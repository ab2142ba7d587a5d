//! Circuits: zkLLVM IR compiled into straight-line field programs.
pub mod program;

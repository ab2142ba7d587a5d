//! Proving backends: zero-knowledge proofs that a `circuit::program::Program` maps
//! public inputs to an output.
//!
//! - [`halo2`]: the public API (keys, prove, verify, batch verify) over halo2_proofs'
//!   IPA/Pasta backend.
//! - [`halo2_circuit`]: the halo2 circuit a program is turned into.
//! - [`field`]: exact conversions between the program's field type and halo2's.
pub mod field;
pub mod halo2;
pub mod halo2_circuit;
pub mod pool;

#[cfg(test)]
mod test_programs;

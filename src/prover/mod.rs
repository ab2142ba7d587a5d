//! Proving backends: zero-knowledge proofs that a `circuit::program::Program` maps
//! public inputs to an output.
//!
//! - [`halo2`]: the public API (keys, prove, verify, batch verify) over halo2_proofs'
//!   IPA/Pasta backend.
//! - [`halo2_circuit`]: the halo2 circuit a program is turned into.
//! - [`field`]: exact conversions between the program's field type and halo2's.
//! - [`statements`]: each statement's compiled circuit and keys, cached; what the
//!   market calls to check, prove and verify.
//! - `forged` (tests): a dishonest producer, who fills the advice table freely and
//!   proves against the market's own keys; every forgery must fail the verifier.
//! - [`pool`]: the bounded pools this CPU work runs on, one per kind of work (argon2,
//!   compile and evaluate, keygen and verify), so none starves another.
pub mod field;
pub mod halo2;
pub mod halo2_circuit;
pub mod pool;
pub mod poseidon_chip;
pub mod sha256_chip;
pub mod statements;

#[cfg(test)]
mod forged;
#[cfg(test)]
mod test_programs;

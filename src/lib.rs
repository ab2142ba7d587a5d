//! Proof Market: a market for zero-knowledge proofs.
pub mod circuit;

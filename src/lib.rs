//! Proof Market: a market for zero-knowledge proofs.
pub mod book;
pub mod circuit;
pub mod domain;

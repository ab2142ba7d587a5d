//! Proof Market: a market for zero-knowledge proofs.
pub mod api;
pub mod archive;
pub mod auth;
pub mod circuit;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod domain;
pub mod error;
pub mod input;
pub mod market;
pub mod metrics;
pub mod producer;
pub mod protocol;
pub mod prover;
pub mod server;
pub mod store;

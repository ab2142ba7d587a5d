//! Proof Market: a market for zero-knowledge proofs.
pub mod api;
pub mod auth;
pub mod book;
pub mod circuit;
pub mod circuits;
pub mod cli;
pub mod cluster;
pub mod domain;
pub mod error;
pub mod input;
pub mod markets;
pub mod matcher;
pub mod producer;
pub mod prover;
pub mod server;
pub mod service;
pub mod store;

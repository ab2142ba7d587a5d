//! `market-invariants`: the one invariant checker of the Proof Market, used by the load
//! test (`loadtest soak`, `loadtest check`) and by the end-to-end tests in `tests/`.
//!
//! It checks the market's invariants (README, "Invariants") over the orders as Redis
//! holds them, plus what a client was told: each order is in at most one match, a match
//! pairs a request and a proposal of one statement, respects the price and `eval_time`
//! rules and trades at the *resting* order's cost, no acknowledged order is lost, and
//! statuses only move forward.
//!
//! Layout:
//! - [`order`]: the data the checker reads ([`OrderRow`], [`AckedOrder`],
//!   [`Observation`], [`Kind`]).
//! - [`check`](mod@check): the checker itself, pure (rows in, [`Checked`] out), unit
//!   tested on hand-made rows.
//! - [`redis_rows`]: reads the rows from the market's Redis (one server, or a Redis
//!   Cluster with the `cluster` feature) by its key layout.
//! - [`archive`]: with the history archived to PostgreSQL (issue 11), closed orders
//!   leave Redis after the retention; the check then takes them from the archive, and
//!   compares what both hold (pure, like the checker).
//! - `pg_rows` (feature `pg`): reads the archive from PostgreSQL.
//!
//! The crate speaks Redis (and, with `pg`, PostgreSQL) only and does not depend on the `proof-market` crate, so the
//! load test keeps checking the market from the outside, as a client would.
#![deny(missing_docs)]

pub mod archive;
pub mod check;
pub mod order;
#[cfg(feature = "pg")]
pub mod pg_rows;
pub mod redis_rows;

pub use archive::{check_with_archive, Archive, Cursor};

pub use check::{check, may_follow, Checked, Violation};
pub use order::{AckedOrder, Kind, Observation, OrderRow};

//! The store: the only module that speaks Redis.
//!
//! Every user, statement, order, match and proof lives here; [`keys`] names every key
//! (one statement's keys share the hash tag `{stmt:<key>}`, so its transitions are
//! single-slot scripts that run unchanged on a Redis Cluster). Order state changes only
//! through [`Store::apply`], which runs a batch of transitions as one Lua script:
//! atomic, so no reader sees half of a match, and one round trip for a whole batch
//! (group commit).
//!
//! - `conn`: the [`Store`] handle and its connection (open, reconnect, ping).
//! - [`keys`]: the key layout, the one place that names keys.
//! - `transitions` (with `transitions.lua`): [`Op`], [`Store::apply`], [`Refusal`].
//! - `reads`: orders, proofs, indexes, proved inputs, idempotency keys, locating a key.
//! - `directory`: users, producer profiles, statements, the key counter.
//! - `allocator`: [`KeyAllocator`], keys for new objects from blocks of that counter,
//!   per statement for orders and proofs.
//! - `limits`: counters in time windows (failed logins, refused proofs, statements per
//!   day) and token buckets (calls per second per IP and per user).
//! - `events` (with `archived.lua`, `sweep.lua`): the per-statement event log, and
//!   trimming it and removing closed records once PostgreSQL holds them.
//! - `nodes`: cluster membership and statement leases.
//! - `batch`: one script for each of many statements, pipelined (renewals, takeovers).
//! - `records`: the typed records and their stored encoding.
//! - `target`: where Redis is and how to reach it (TLS).
//!
//! Cross-statement data (users, the statement list, the key counter, and the blocks of
//! order and proof keys reserved for each statement, which tell a key's statement) lives
//! outside the tags. A batch writes only its statement's keys; a key of a block that was
//! never used only ever leads a reader to a 404.

mod allocator;
mod batch;
mod conn;
mod directory;
mod events;
pub mod keys;
mod limits;
mod market_data;
mod nodes;
mod reads;
mod records;
mod target;
mod transitions;
mod wallets;

pub use allocator::KeyAllocator;
pub use conn::{Store, WalletConfig, EVENT_LOG_MAX, RESUME_WINDOW_MS};
pub use events::{Event, EventKind, LogState, Movement};
pub use limits::Bucket;
pub use market_data::{Day, MarketData, Trade};
pub use nodes::Lease;
pub use reads::Remembered;
pub use records::{
    CircuitSummary, Definition, OrderRecord, ProducerRecord, ProofRecord, StatementRecord,
    UserRecord,
};
pub use target::{install_crypto_provider, redact_url, RedisTarget, RedisTls};
pub use transitions::{Money, Op, Payout, Refusal};
pub use wallets::{AccountsOf, Funded, LedgerEntry, Outgoing, Wallet, MARKET_ACCOUNT};

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis could not be reached or answered with an error.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Stored data, or a script's reply, did not parse.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The caller's fencing token is stale: another node owns the statement now.
    #[error("fenced: this node no longer owns the statement")]
    Fenced,
}

impl StoreError {
    /// True when a write may have been applied although it failed: the request went out
    /// and its answer was lost (timeout, dropped connection). A refused connection or an
    /// error reply means nothing was written.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            StoreError::Redis(e) => e.is_io_error() && !e.is_connection_refusal(),
            StoreError::Corrupt(_) | StoreError::Fenced => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(kind: std::io::ErrorKind) -> StoreError {
        StoreError::Redis(redis::RedisError::from(std::io::Error::new(kind, "test")))
    }

    #[test]
    fn a_lost_answer_is_an_unknown_outcome_a_refusal_is_not() {
        use std::io::ErrorKind as K;
        for lost in [
            K::TimedOut,
            K::ConnectionReset,
            K::BrokenPipe,
            K::UnexpectedEof,
        ] {
            assert!(io(lost).outcome_unknown(), "{lost:?}");
        }
        assert!(!io(K::ConnectionRefused).outcome_unknown());
        let reply = redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "bad"));
        assert!(!StoreError::Redis(reply).outcome_unknown());
        assert!(!StoreError::Fenced.outcome_unknown());
        assert!(!StoreError::Corrupt("x".into()).outcome_unknown());
    }
}

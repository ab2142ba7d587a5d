//! Live updates: `GET /events`, a Server-Sent Events stream of the caller's own order
//! transitions and money movements and, with `?statement=K`, that statement's public
//! book depth and trades.
//!
//! - [`frames`]: what is sent, rendered from the statement event logs and wallet
//!   ledgers, and the ids a client resumes from.
//! - `depth`: what a node knows of a statement's open orders, kept from its log.
//! - [`hub`]: the node's subscriptions and the task that reads the logs.
//! - [`stream`]: one stream: greeting, resume, live frames, keep-alive.
//!
//! Streams come from Redis, not from a node's memory of what it matched: a client may
//! connect to any node, and reconnect to another with `Last-Event-ID`.

mod depth;
pub mod frames;
pub mod hub;
pub mod stream;

pub use hub::{Hub, LiveConfig};

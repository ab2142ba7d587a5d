//! The cluster: which node owns which statement, and how a node knows who is alive.
//!
//! Several nodes share one Redis or a Redis Cluster. Each node registers itself with a
//! heartbeat (the registry and the statement leases are Redis records, written by
//! [`crate::store`]); each statement is owned by the live node of highest rendezvous
//! weight ([`rendezvous`]), computed by every node from the same live set
//! ([`view::LiveView`]) with no coordination. The owner holds the statement's lease,
//! whose fencing token every transition checks; the market's router turns all of
//! this into a route for each call. Calls forwarded between nodes are signed with a
//! secret the nodes share ([`signing`]).

pub mod rendezvous;
pub mod signing;
pub mod view;

use std::time::Duration;

pub use rendezvous::{owner, NodeEntry};
pub use view::LiveView;

/// Longest node id, in bytes.
pub const MAX_NODE_ID: usize = 200;

/// Whether `id` can name a node: 1 to [`MAX_NODE_ID`] bytes, no whitespace or control
/// characters (ids travel in headers and log lines, and one node call's signed message
/// has one id per line).
pub fn is_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_NODE_ID
        && !id.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Who this node is.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Unique and stable across restarts of the same node.
    pub id: String,
    /// Where other nodes reach this one.
    pub url: String,
    /// Lease length; a dead node's statements move after about this long.
    pub lease: Duration,
    /// How long an order's `Idempotency-Key` is remembered (the same on every node).
    pub idempotency_retention: Duration,
    /// What one user may hold on one statement (the same on every node).
    pub quotas: crate::market::state::Quotas,
    /// Collateral, commission and deadlines (the same on every node).
    pub economics: crate::market::money::Economics,
}

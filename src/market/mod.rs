//! The market: what each call does, independent of HTTP.
//!
//! - [`Market`] (this file and `users`, `statements`, `orders`, `proofs`, `limits`)
//!   checks business rules, rate limits and quotas against the store, sends order
//!   changes to the statement's matcher and returns typed records; the API parses
//!   before and renders after.
//! - [`router`] decides where a call about a statement runs ([`Route`]) and owns this
//!   node's matchers; `upkeep` (impl blocks of the router) keeps ownership up to date.
//! - [`matcher`] is the actor that writes one statement's decisions to the store;
//!   [`state`] is what it decides with (pure); [`book`] is the price/time book (pure).
//!
//! Calls that change a statement's orders take the [`MatcherHandle`] their route gave,
//! so they run only on the statement's owner; reads go straight to the store, so any
//! node serves them.

mod archiving;
pub mod book;
mod limits;
pub mod matcher;
pub mod money;
mod orders;
mod proofs;
pub mod router;
pub mod state;
mod statements;
mod upkeep;
mod users;
mod wallets;

use std::sync::Arc;

use crate::archive::{Archive, ArchiveHealth};
use crate::auth::Tokens;
use crate::cluster::NodeEntry;
use crate::domain::{Key, Millis};
use crate::error::MarketError;
use crate::prover::statements::StatementCircuits;
use crate::store::{KeyAllocator, Store};

pub use archiving::Archiver;
pub use limits::RateLimits;
pub use matcher::{LocalError, LocalResult, MatcherHandle};
pub use orders::{NewOrder, OrderFilter};
pub use proofs::ProofPush;
pub use router::{Route, Router};
pub use statements::NewStatement;
pub use users::{NewUser, ProducerProfile};
pub use wallets::TrackRecord;

/// Limits on what clients may store and do.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest `definition.proving_key` / `verification_key`, in bytes.
    pub max_definition_bytes: usize,
    /// Largest proof, in bytes (hex text is twice that).
    pub max_proof_bytes: usize,
    /// Refused proofs a proposal may push per window; past that, pushes for it are
    /// refused (429) without being checked.
    pub max_refused_proofs: u64,
    /// The window of `max_refused_proofs`, from the first refusal, in milliseconds.
    pub refused_proof_window_ms: u64,
    /// Calls per second per client IP and per user.
    pub rate: RateLimits,
    /// Statements one user may push per day (0: no limit).
    pub max_statements_per_day: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_definition_bytes: 4 << 20,
            max_proof_bytes: 2 << 20,
            max_refused_proofs: 10,
            refused_proof_window_ms: 3_600_000,
            rate: RateLimits::default(),
            max_statements_per_day: 20,
        }
    }
}

/// The market service shared by all HTTP workers.
pub struct Market {
    store: Store,
    router: Arc<Router>,
    /// Statement circuits, and through them the work pools where all CPU-heavy work
    /// (argon2 too) runs on a few threads: argon2 on tokio's blocking pool would leave a
    /// 19 MiB malloc arena behind on each of hundreds of threads.
    circuits: Arc<StatementCircuits>,
    tokens: Tokens,
    limits: Limits,
    /// Keys of every kind of object, reserved from Redis in blocks.
    keys: KeyAllocator,
    /// This node's share of the rate-limit buckets.
    buckets: limits::LocalBuckets,
    /// The history database, when archiving is on: reads fall through to it.
    archive: Option<Arc<Archive>>,
    /// Collateral, commission, deadlines.
    economics: money::Economics,
    /// The operator's token for `/admin` calls.
    admin_token: Option<String>,
}

/// What `/health` reports about this node.
#[derive(Debug, Clone)]
pub struct Health {
    /// Joined the cluster and took its statements.
    pub ready: bool,
    /// Handing its statements over before it stops.
    pub leaving: bool,
    /// Whether Redis answered just now.
    pub redis_ok: bool,
    /// This node's id and URL.
    pub node: NodeEntry,
    /// Statements whose matcher runs here.
    pub owned: Vec<Key>,
    /// Live nodes in this node's view.
    pub live_nodes: usize,
    /// Writes refused because another node had taken over.
    pub fenced_writes: u64,
    /// Calls forwarded to their statements' owners.
    pub forwarded_calls: u64,
    /// The archiver's state (`None`: archiving is off).
    pub archive: Option<ArchiveHealth>,
}

/// One statement's ownership as `/cluster` shows it, read from Redis.
#[derive(Debug, Clone)]
pub struct StatementOwnership {
    /// The statement.
    pub statement: Key,
    /// Its rendezvous owner among the live nodes.
    pub owner: Option<String>,
    /// The node holding its lease, if any.
    pub lease_holder: Option<String>,
    /// The lease's current fencing token.
    pub fencing_token: u64,
    /// Writes refused under stale tokens, counted in Redis.
    pub fenced_writes: u64,
}

/// The live nodes and every statement's ownership, as `/cluster` shows them.
#[derive(Debug, Clone)]
pub struct ClusterReport {
    /// The node that answered.
    pub node: String,
    /// Live nodes with the statements whose lease each holds.
    pub nodes: Vec<(NodeEntry, Vec<Key>)>,
    /// Every statement.
    pub statements: Vec<StatementOwnership>,
}

impl Market {
    /// Wires the service together.
    pub fn new(
        store: Store,
        router: Arc<Router>,
        circuits: Arc<StatementCircuits>,
        tokens: Tokens,
        limits: Limits,
    ) -> Market {
        Market {
            store,
            router,
            circuits,
            tokens,
            limits,
            keys: KeyAllocator::new(1000),
            buckets: limits::LocalBuckets::default(),
            archive: None,
            economics: money::Economics::default(),
            admin_token: None,
        }
    }

    /// Reads of records Redis no longer holds fall through to `archive`.
    pub fn with_archive(mut self, archive: Option<Arc<Archive>>) -> Market {
        self.archive = archive;
        self
    }

    /// The token issuer/verifier.
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// The limits on what clients may store and do.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    async fn next_key(&self) -> Result<Key, MarketError> {
        Ok(self.keys.next(&self.store).await?)
    }

    /// A fresh key for an order or proof of `stmt` (its statement is found from it).
    async fn next_key_in(&self, stmt: Key) -> Result<Key, MarketError> {
        Ok(self.keys.next_in(&self.store, stmt).await?)
    }

    /// This node's state, for `/health`.
    pub async fn health(&self) -> Health {
        let node = self.router.node();
        Health {
            ready: self.router.is_ready(),
            leaving: self.router.is_leaving(),
            redis_ok: self.store.ping().await.is_ok(),
            node: NodeEntry {
                id: node.id.clone(),
                url: node.url.clone(),
            },
            owned: self.router.owned(),
            live_nodes: self.router.live_nodes().len(),
            fenced_writes: self.router.fenced_writes(),
            forwarded_calls: self.router.forwarded_calls(),
            archive: match &self.archive {
                Some(a) => Some(a.health().await),
                None => None,
            },
        }
    }

    /// What `/metrics` mirrors from this node's state (the health checks included).
    pub async fn metrics_state(&self) -> crate::metrics::NodeState {
        let h = self.health().await;
        let pools = self.circuits.pools();
        crate::metrics::NodeState {
            pools: [&pools.auth, &pools.circuit, &pools.verify]
                .iter()
                .map(|p| (p.name(), p.threads(), p.capacity(), p.in_flight(), p.busy()))
                .collect(),
            fenced_writes: h.fenced_writes,
            forwarded_calls: h.forwarded_calls,
            owned: h.owned.len(),
            live_nodes: h.live_nodes,
            ready: h.ready,
            redis_up: h.redis_ok,
            archive: h.archive.map(|a| crate::metrics::ArchiveState {
                up: a.reachable,
                lag: std::time::Duration::from_millis(a.lag_ms),
                pending: a.pending_events,
                archived: a.archived_events,
                errors: a.errors,
            }),
        }
    }

    /// Live nodes and statement ownership, read from Redis now.
    pub async fn cluster_report(&self) -> Result<ClusterReport, MarketError> {
        let nodes: Vec<NodeEntry> = self
            .store
            .live_nodes(Millis::now())
            .await?
            .into_iter()
            .map(|(id, url)| NodeEntry { id, url })
            .collect();
        let mut held: std::collections::BTreeMap<String, Vec<Key>> = Default::default();
        let mut statements = Vec::new();
        for stmt in self.store.statement_keys().await? {
            let (holder, fencing_token, fenced_writes) = self.store.lease_info(stmt).await?;
            if let Some(h) = &holder {
                held.entry(h.clone()).or_default().push(stmt);
            }
            statements.push(StatementOwnership {
                statement: stmt,
                owner: crate::cluster::owner(&nodes, stmt).map(|n| n.id.clone()),
                lease_holder: holder,
                fencing_token,
                fenced_writes,
            });
        }
        Ok(ClusterReport {
            node: self.router.node().id.clone(),
            nodes: nodes
                .into_iter()
                .map(|n| {
                    let s = held.remove(&n.id).unwrap_or_default();
                    (n, s)
                })
                .collect(),
            statements,
        })
    }
}

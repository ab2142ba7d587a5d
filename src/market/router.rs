//! The statement router: which calls this node serves itself, and where the rest go.
//!
//! A call about a statement is routed once, before anything is read for it:
//! [`Router::route`] answers a [`Route`] value — the local matcher's handle, the URL
//! of the node that owns the statement, or "route again shortly" while it changes
//! hands — and the API acts on it. The owner is the live node of highest rendezvous
//! weight in this node's [`LiveView`]; to serve a statement a node first takes its
//! lease (whose fencing token every transition checks) and loads its state from Redis.
//!
//! Membership and lease upkeep (heartbeats, renewals, takeovers, hand-overs) are in
//! `market/upkeep.rs`. The table of running matchers is read on every call and written
//! only when ownership changes, so std locks held for a lookup (never across an
//! `.await`) are the cheapest correct choice.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use actix::{Arbiter, ArbiterHandle};

use super::matcher::{load_snapshot, Matcher, MatcherHandle, Writer};
use super::state::Rules;
use crate::cluster::{LiveView, NodeConfig, NodeEntry};
use crate::domain::Key;
use crate::error::MarketError;
use crate::store::{Lease, Store, StoreError};

/// Most times a call is forwarded between nodes before it is routed again here.
pub const MAX_HOPS: u8 = 2;

/// Pause before routing again a call whose statement is changing hands here.
const RETRY_PAUSE: Duration = Duration::from_millis(10);

/// Where a call about a statement goes.
pub enum Route {
    /// This node serves the statement: call its matcher.
    Local(MatcherHandle),
    /// Another node owns it: forward the call to this base URL.
    Forward(String),
    /// It is changing hands here (this node is leaving, or views disagree past the
    /// hop limit): route again after this pause.
    Retry(Duration),
}

/// A matcher this node runs, with the fencing token it writes under.
#[derive(Clone)]
pub(super) struct Running {
    pub handle: MatcherHandle,
    pub token: u64,
}

/// The statements this node serves, their matchers, and the cluster around it.
pub struct Router {
    pub(super) store: Store,
    /// A connection of its own for heartbeats and leases, so that renewals never queue
    /// behind the calls' reads on the shared one.
    pub(super) upkeep: Store,
    pub(super) upkeep_thread: ArbiterHandle,
    pub(super) node: NodeConfig,
    pub(super) view: LiveView,
    running: RwLock<HashMap<Key, Running>>,
    /// Writes the store refused because another node had taken over (all matchers).
    fenced: Arc<AtomicU64>,
    /// Calls this node forwarded to a statement's owner (each one more HTTP hop).
    forwarded: AtomicU64,
    /// Statements known to exist.
    pub(super) known: RwLock<HashSet<Key>>,
    /// Every statement as the upkeep last listed them (read again when their count
    /// changes).
    pub(super) listed: Mutex<Arc<Vec<Key>>>,
    /// One acquisition at a time per statement.
    acquiring: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
    /// Matcher threads, each with its own Redis connection driven on that thread.
    arbiters: Vec<(ArbiterHandle, Store)>,
    pub(super) ready: AtomicBool,
}

impl Router {
    /// A router over `threads` matcher arbiters, each opening its own Redis connection.
    /// Must be called inside an actix system.
    pub async fn start(
        store: Store,
        threads: usize,
        node: NodeConfig,
    ) -> Result<Router, StoreError> {
        let mut arbiters = Vec::new();
        for _ in 0..threads.max(1) {
            arbiters.push(thread_with_connection(&store).await?);
        }
        let (upkeep_thread, upkeep) = thread_with_connection(&store).await?;
        Ok(Router {
            store,
            view: LiveView::new(node.id.clone(), upkeep.clone()),
            upkeep,
            upkeep_thread,
            node,
            running: RwLock::new(HashMap::new()),
            fenced: Arc::new(AtomicU64::new(0)),
            forwarded: AtomicU64::new(0),
            known: RwLock::new(HashSet::new()),
            listed: Mutex::new(Arc::new(Vec::new())),
            acquiring: Mutex::new(HashMap::new()),
            arbiters,
            ready: AtomicBool::new(false),
        })
    }

    /// This node.
    pub fn node(&self) -> &NodeConfig {
        &self.node
    }

    /// True once the node has joined the cluster and taken its statements.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.is_leaving()
    }

    /// True while the node hands its statements over before it stops.
    pub fn is_leaving(&self) -> bool {
        self.view.is_leaving()
    }

    /// Statements whose matcher runs here, ascending.
    pub fn owned(&self) -> Vec<Key> {
        let mut v: Vec<Key> = self.table().keys().copied().collect();
        v.sort();
        v
    }

    /// Writes of this node the store refused because another node had taken over.
    pub fn fenced_writes(&self) -> u64 {
        self.fenced.load(Ordering::Relaxed)
    }

    /// Counts a call forwarded to its statement's owner.
    pub fn count_forwarded(&self) {
        self.forwarded.fetch_add(1, Ordering::Relaxed);
    }

    /// Calls this node forwarded to their statements' owners so far.
    pub fn forwarded_calls(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }

    /// The live nodes as this node last saw them.
    pub fn live_nodes(&self) -> Vec<NodeEntry> {
        self.view.nodes()
    }

    /// Reads the live nodes again unless a read that started at or after `since` has
    /// completed (calls asking together share one read).
    pub async fn refresh_view(&self, since: Instant) -> Result<(), StoreError> {
        self.view.refresh(since).await
    }

    fn table(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Key, Running>> {
        self.running.read().unwrap_or_else(|p| p.into_inner())
    }

    fn table_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Key, Running>> {
        self.running.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The statements whose matcher runs here, with the fencing token it writes under.
    pub fn owned_tokens(&self) -> Vec<(Key, u64)> {
        self.table()
            .iter()
            .filter(|(_, r)| r.handle.is_running())
            .map(|(k, r)| (*k, r.token))
            .collect()
    }

    pub(super) fn running(&self) -> Vec<(Key, Running)> {
        self.table().iter().map(|(k, r)| (*k, r.clone())).collect()
    }

    /// The matcher this node runs for `stmt`, if any.
    pub(super) fn running_one(&self, stmt: Key) -> Option<Running> {
        self.table().get(&stmt).cloned()
    }

    /// Forgets `stmt`'s matcher if it still runs under `token`.
    pub(super) fn forget(&self, stmt: Key, token: u64) -> bool {
        let mut m = self.table_mut();
        if m.get(&stmt).is_some_and(|r| r.token == token) {
            m.remove(&stmt);
            true
        } else {
            false
        }
    }

    /// The local matcher of `stmt`, if one runs (a stopped one is forgotten).
    pub(super) fn local(&self, stmt: Key) -> Option<MatcherHandle> {
        let r = self.table().get(&stmt).cloned()?;
        if r.handle.is_running() {
            Some(r.handle)
        } else {
            self.forget(stmt, r.token);
            None
        }
    }

    async fn statement_exists(&self, stmt: Key) -> Result<bool, StoreError> {
        if self
            .known
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&stmt)
        {
            return Ok(true);
        }
        let exists = self.store.statement_exists(stmt).await?;
        if exists {
            self.note_statement(stmt);
        }
        Ok(exists)
    }

    /// Records that a statement exists (it was just created).
    pub fn note_statement(&self, stmt: Key) {
        self.known
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(stmt);
    }

    /// Where a call about `stmt` goes; `hops` is how many nodes already forwarded it.
    /// Errors: 404 for an unknown statement, 503 while this node starts or when no
    /// owner can be had in time.
    pub async fn route(&self, stmt: Key, hops: u8) -> Result<Route, MarketError> {
        if let Some(h) = self.local(stmt) {
            return Ok(Route::Local(h));
        }
        if !self.ready.load(Ordering::Acquire) {
            return Err(MarketError::unavailable(
                "the market node is starting, retry shortly",
            ));
        }
        if !self.statement_exists(stmt).await? {
            return Err(MarketError::NotFound(format!("no statement {stmt}")));
        }
        let mut owner = self.view.owner(stmt);
        if hops > 0 && owner.as_ref().is_none_or(|o| o.id != self.node.id) {
            // Whoever forwarded this thought we own it: one of the two views is stale
            // (a node is joining or leaving). Ours must not be: read it again (calls
            // arriving together share the read; it happens only while views disagree).
            self.view.refresh(Instant::now()).await?;
            owner = self.view.owner(stmt);
        }
        // A leaving node is never the owner and its view is the newest: it may take
        // one hop more than others to pass a stale forward on.
        let hop_limit = MAX_HOPS + u8::from(self.is_leaving());
        match owner {
            Some(o) if o.id == self.node.id => self.acquire(stmt, true).await,
            Some(o) if hops < hop_limit => Ok(Route::Forward(o.url)),
            // Out of hops while views still disagree: route again here after a pause,
            // with a fresh view, until they agree (the caller gives up after seconds).
            Some(_) => Ok(Route::Retry(RETRY_PAUSE)),
            None => Err(MarketError::unavailable(
                "no live market node owns this statement yet, retry shortly",
            )),
        }
    }

    /// Takes `stmt`'s lease and starts its matcher from the store's state. With `wait`,
    /// waits up to a lease (plus a second) for another holder to release or lose it.
    pub(super) async fn acquire(&self, stmt: Key, wait: bool) -> Result<Route, MarketError> {
        let _guard = self.acquisition_lock(stmt).lock_owned().await;
        let deadline = Instant::now() + self.node.lease + Duration::from_secs(1);
        loop {
            if let Some(h) = self.local(stmt) {
                return Ok(Route::Local(h));
            }
            if self.is_leaving() {
                return Ok(Route::Retry(RETRY_PAUSE));
            }
            match self
                .upkeep
                .acquire_lease(stmt, &self.node.id, self.lease_ms())
                .await?
            {
                Lease::Acquired(token) => {
                    return self.start_matcher(stmt, token).await.map(Route::Local)
                }
                Lease::HeldBy(holder) => {
                    if !wait || Instant::now() >= deadline {
                        return Err(MarketError::unavailable(format!(
                            "statement {stmt} is still held by node {holder}, retry shortly"
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// The lock one acquisition of `stmt` holds at a time.
    pub(super) fn acquisition_lock(&self, stmt: Key) -> Arc<tokio::sync::Mutex<()>> {
        self.acquiring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(stmt)
            .or_default()
            .clone()
    }

    pub(super) fn lease_ms(&self) -> u64 {
        self.node.lease.as_millis() as u64
    }

    /// Loads a statement's state and starts its matcher writing under `token`.
    pub(super) async fn start_matcher(
        &self,
        stmt: Key,
        token: u64,
    ) -> Result<MatcherHandle, MarketError> {
        let snapshot = load_snapshot(&self.store, stmt).await?;
        let (arbiter, store) = &self.arbiters[(stmt.0 as usize) % self.arbiters.len()];
        let writer = Writer {
            store: store.clone(),
            token,
            fenced: self.fenced.clone(),
        };
        let handle = Matcher::spawn(
            arbiter,
            stmt,
            snapshot,
            writer,
            Rules {
                retention: self.node.idempotency_retention,
                quotas: self.node.quotas,
                economics: self.node.economics,
            },
        );
        self.table_mut().insert(
            stmt,
            Running {
                handle: handle.clone(),
                token,
            },
        );
        crate::metrics::metrics().leases_acquired.inc();
        tracing::info!(statement = %stmt, token, node = %self.node.id, "statement taken");
        Ok(handle)
    }

    /// Starts serving a statement just created on this node, if this node should own
    /// it; otherwise its owner takes it at its next upkeep round or first call.
    pub async fn adopt_new(&self, stmt: Key) {
        self.note_statement(stmt);
        if self.view.is_mine(stmt) {
            if let Err(e) = self.acquire(stmt, false).await {
                tracing::info!(statement = %stmt, error = %e, "new statement not taken yet");
            }
        }
    }
}

/// A new thread (arbiter) and a Redis connection whose I/O runs on it.
async fn thread_with_connection(store: &Store) -> Result<(ArbiterHandle, Store), StoreError> {
    let handle = Arbiter::new().handle();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let s = store.clone();
    handle.spawn(async move {
        let _ = tx.send(s.reconnect().await);
    });
    let local = rx
        .await
        .map_err(|_| StoreError::Corrupt("a market thread stopped while connecting".into()))??;
    Ok((handle, local))
}

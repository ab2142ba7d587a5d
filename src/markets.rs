//! The shard router: which node owns which statement, this node's matchers, and keys.
//!
//! Every node registers itself in Redis with a heartbeat. Each statement is owned by
//! the live node of highest rendezvous weight ([`crate::cluster::owner`]) and that node
//! holds the statement's lease, whose fencing token every transition script checks.
//! A call for a statement owned here goes to its local [`Matcher`]; a call for one
//! owned elsewhere is answered with [`MarketError::Moved`] carrying the owner's URL,
//! which the API turns into a forwarded HTTP call.
//!
//! [`Markets::tick`] runs every third of a lease: heartbeat, refresh the view of live
//! nodes and statements, renew owned leases (a lost lease stops the matcher), hand over
//! statements whose owner changed (a node joined), and take the statements this node
//! should own (a node died or left). A takeover loads the book from Redis before the
//! matcher takes its first order. [`Markets::leave`] hands everything over on shutdown.
//!
//! The maps are read on every order and written only when ownership changes, so std
//! locks held for a lookup (never across an `.await`) are the cheapest correct choice.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use actix::{Actor, Addr, Arbiter, ArbiterHandle};

use crate::cluster::{self, NodeEntry};
use crate::domain::{Key, Millis};
use crate::error::MarketError;
use crate::matcher::{Matcher, Retire, Snapshot};
use crate::store::{Lease, Store, StoreError};

/// Hands out keys from blocks reserved in Redis with one `INCRBY` each, so creating an
/// object costs no extra round trip. Keys lost in a crash leave gaps, which is fine.
pub struct KeyAllocator {
    block: u64,
    free: Mutex<Range<u64>>,
}

impl KeyAllocator {
    /// An allocator reserving `block` keys at a time.
    pub fn new(block: u64) -> KeyAllocator {
        KeyAllocator {
            block: block.max(1),
            free: Mutex::new(0..0),
        }
    }

    /// A fresh key.
    pub async fn next(&self, store: &Store) -> Result<Key, StoreError> {
        loop {
            if let Some(k) = self.free.lock().unwrap_or_else(|p| p.into_inner()).next() {
                return Ok(Key(k));
            }
            // Reserve outside the lock; concurrent refills just waste a block.
            let fresh = store.reserve_keys(self.block).await?;
            let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
            if free.is_empty() {
                *free = fresh;
            }
        }
    }
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
}

/// A matcher this node runs, with the fencing token it writes under.
#[derive(Clone)]
pub(crate) struct Running {
    pub addr: Addr<Matcher>,
    pub token: u64,
}

/// State shared with the matchers (a matcher that finds itself fenced removes itself).
#[derive(Default)]
pub struct Owned {
    matchers: RwLock<HashMap<Key, Running>>,
    fenced: AtomicU64,
}

impl Owned {
    fn get(&self, stmt: Key) -> Option<Running> {
        self.read().get(&stmt).cloned()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Key, Running>> {
        self.matchers.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Key, Running>> {
        self.matchers.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets `stmt`'s matcher if it still runs under `token`.
    pub(crate) fn remove(&self, stmt: Key, token: u64) -> bool {
        let mut m = self.write();
        if m.get(&stmt).is_some_and(|r| r.token == token) {
            m.remove(&stmt);
            true
        } else {
            false
        }
    }

    /// Called by a matcher whose batch the store refused for a stale token.
    pub(crate) fn fenced(&self, stmt: Key, token: u64) {
        self.fenced.fetch_add(1, Ordering::Relaxed);
        self.remove(stmt, token);
        tracing::warn!(statement = %stmt, token, "write refused: another node owns the statement now");
    }
}

/// Most times a call is forwarded between nodes before it is refused with a 503.
pub const MAX_HOPS: u8 = 2;

/// The statements this node serves and their matchers, and the cluster around it.
pub struct Markets {
    store: Store,
    /// A connection of its own for heartbeats and leases, so that renewals never queue
    /// behind the calls' reads on the shared one.
    upkeep: Store,
    upkeep_thread: ArbiterHandle,
    node: NodeConfig,
    owned: Arc<Owned>,
    /// Live nodes, sorted by id, as of the last refresh.
    view: RwLock<Vec<NodeEntry>>,
    /// When the read behind `view` started. Held across a read, so calls that want a
    /// fresh view at the same moment share one read.
    view_read: tokio::sync::Mutex<Option<Instant>>,
    /// Statements known to exist.
    known: RwLock<HashSet<Key>>,
    /// One acquisition at a time per statement.
    acquiring: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
    /// Matcher threads, each with its own Redis connection driven on that thread.
    arbiters: Vec<(ArbiterHandle, Store)>,
    /// Key allocation for every kind of object.
    pub keys: KeyAllocator,
    ready: AtomicBool,
    leaving: AtomicBool,
}

impl Markets {
    /// A router over `threads` matcher arbiters, each opening its own Redis connection.
    /// Must be called inside an actix system.
    pub async fn start(
        store: Store,
        threads: usize,
        node: NodeConfig,
    ) -> Result<Markets, StoreError> {
        let mut arbiters = Vec::new();
        for _ in 0..threads.max(1) {
            arbiters.push(thread_with_connection(&store).await?);
        }
        let (upkeep_thread, upkeep) = thread_with_connection(&store).await?;
        Ok(Markets {
            store,
            upkeep,
            upkeep_thread,
            node,
            owned: Arc::new(Owned::default()),
            view: RwLock::new(Vec::new()),
            view_read: tokio::sync::Mutex::new(None),
            known: RwLock::new(HashSet::new()),
            acquiring: Mutex::new(HashMap::new()),
            arbiters,
            keys: KeyAllocator::new(1000),
            ready: AtomicBool::new(false),
            leaving: AtomicBool::new(false),
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
        self.leaving.load(Ordering::Acquire)
    }

    /// Statements whose matcher runs here, ascending.
    pub fn owned(&self) -> Vec<Key> {
        let mut v: Vec<Key> = self.owned.read().keys().copied().collect();
        v.sort();
        v
    }

    /// Number of statements served here.
    pub fn len(&self) -> usize {
        self.owned.read().len()
    }

    /// True when no statement is served here.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes of this node the store refused because another node had taken over.
    pub fn fenced_writes(&self) -> u64 {
        self.owned.fenced.load(Ordering::Relaxed)
    }

    /// The live nodes as this node last saw them.
    pub fn view(&self) -> Vec<NodeEntry> {
        self.view.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The store behind the markets.
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn lease_ms(&self) -> u64 {
        self.node.lease.as_millis() as u64
    }

    /// The owner of `stmt` in the current view (a leaving node excludes itself).
    fn owner_in_view(&self, stmt: Key) -> Option<NodeEntry> {
        let view = self.view.read().unwrap_or_else(|p| p.into_inner());
        if self.is_leaving() {
            let others: Vec<NodeEntry> = view
                .iter()
                .filter(|n| n.id != self.node.id)
                .cloned()
                .collect();
            cluster::owner(&others, stmt).cloned()
        } else {
            cluster::owner(&view, stmt).cloned()
        }
    }

    /// Makes the view at least as new as a read of the live nodes that started at or
    /// after `since`: reads Redis unless such a read has completed meanwhile (calls that
    /// ask together share one read).
    pub async fn refresh_view(&self, since: Instant) -> Result<(), StoreError> {
        let mut last = self.view_read.lock().await;
        if last.is_some_and(|t| t >= since) {
            return Ok(());
        }
        let started = Instant::now();
        let live = self.upkeep.live_nodes(Millis::now()).await?;
        let mut view: Vec<NodeEntry> = live
            .into_iter()
            .map(|(id, url)| NodeEntry { id, url })
            .collect();
        if self.is_leaving() {
            view.retain(|n| n.id != self.node.id);
        }
        *self.view.write().unwrap_or_else(|p| p.into_inner()) = view;
        *last = Some(started);
        Ok(())
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
        let exists = self.store.get_statement(stmt).await?.is_some();
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

    /// The matcher for a call about `stmt`. `hops` is how many nodes already forwarded it.
    /// Errors: 404 for an unknown statement, [`MarketError::Moved`] with the owner's
    /// URL when another node owns it, 503 when no owner can be reached in time.
    pub async fn route(&self, stmt: Key, hops: u8) -> Result<Addr<Matcher>, MarketError> {
        if let Some(r) = self.owned.get(stmt) {
            return Ok(r.addr);
        }
        if !self.ready.load(Ordering::Acquire) {
            return Err(MarketError::unavailable(
                "the market node is starting, retry shortly",
            ));
        }
        if !self.statement_exists(stmt).await? {
            return Err(MarketError::NotFound(format!("no statement {stmt}")));
        }
        let mut owner = self.owner_in_view(stmt);
        if hops > 0 && owner.as_ref().is_none_or(|o| o.id != self.node.id) {
            // Whoever forwarded this thought we own it: one of the two views is stale
            // (a node is joining or leaving). Ours must not be: read it again (calls
            // arriving together share the read; it happens only while views disagree).
            self.refresh_view(Instant::now()).await?;
            owner = self.owner_in_view(stmt);
        }
        // A leaving node is never the owner and its view is the newest: it may take
        // one hop more than others to pass a stale forward on.
        let hop_limit = MAX_HOPS + u8::from(self.is_leaving());
        match owner {
            Some(o) if o.id == self.node.id => self.acquire(stmt, true).await,
            Some(o) if hops < hop_limit => Err(MarketError::Moved(Some(o.url))),
            // Out of hops while views still disagree: route again here after a pause,
            // with a fresh view, until they agree (the caller gives up after seconds).
            Some(_) => Err(MarketError::Moved(None)),
            None => Err(MarketError::unavailable(
                "no live market node owns this statement yet, retry shortly",
            )),
        }
    }

    /// Takes `stmt`'s lease and starts its matcher from the store's state. With `wait`,
    /// waits up to a lease (plus a second) for another holder to release or lose it.
    async fn acquire(&self, stmt: Key, wait: bool) -> Result<Addr<Matcher>, MarketError> {
        let lock = self
            .acquiring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(stmt)
            .or_default()
            .clone();
        let _guard = lock.lock().await;
        let deadline = Instant::now() + self.node.lease + Duration::from_secs(1);
        loop {
            if let Some(r) = self.owned.get(stmt) {
                return Ok(r.addr);
            }
            if self.is_leaving() {
                return Err(MarketError::Moved(None));
            }
            match self
                .upkeep
                .acquire_lease(stmt, &self.node.id, self.lease_ms())
                .await?
            {
                Lease::Acquired(token) => return self.start_matcher(stmt, token).await,
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

    /// Loads a statement's state and starts its matcher writing under `token`.
    async fn start_matcher(&self, stmt: Key, token: u64) -> Result<Addr<Matcher>, MarketError> {
        let snapshot = Snapshot::load(&self.store, stmt).await?;
        let (arbiter, store) = &self.arbiters[(stmt.0 as usize) % self.arbiters.len()];
        let store = store.clone();
        let owned = self.owned.clone();
        let retention = self.node.idempotency_retention;
        let addr = Matcher::start_in_arbiter(arbiter, move |_| {
            Matcher::new(stmt, store, snapshot, token, owned).remembering_keys_for(retention)
        });
        self.owned.write().insert(
            stmt,
            Running {
                addr: addr.clone(),
                token,
            },
        );
        tracing::info!(statement = %stmt, token, node = %self.node.id, "statement taken");
        Ok(addr)
    }

    /// Starts serving a statement just created on this node, if this node should own
    /// it; otherwise its owner takes it at its next tick or first call.
    pub async fn adopt_new(&self, stmt: Key) {
        self.note_statement(stmt);
        if self
            .owner_in_view(stmt)
            .is_some_and(|o| o.id == self.node.id)
        {
            if let Err(e) = self.acquire(stmt, false).await {
                tracing::info!(statement = %stmt, error = %e, "new statement not taken yet");
            }
        }
    }

    /// Stops the local matcher of `stmt` after its queued writes, and releases the
    /// lease so the new owner can take it at once.
    async fn hand_over(&self, stmt: Key) {
        let Some(r) = self.owned.get(stmt) else {
            return;
        };
        // Unlisted first: new calls route to the new owner; the mailbox drains.
        self.owned.remove(stmt, r.token);
        let _ = tokio::time::timeout(Duration::from_secs(10), r.addr.send(Retire)).await;
        match self
            .upkeep
            .release_lease(stmt, &self.node.id, r.token)
            .await
        {
            Ok(_) => {
                tracing::info!(statement = %stmt, node = %self.node.id, "statement handed over")
            }
            Err(e) => {
                tracing::warn!(statement = %stmt, error = %e, "releasing the lease failed; it expires")
            }
        }
    }

    /// One round of membership and ownership upkeep; see the module docs.
    pub async fn tick(&self) -> Result<(), StoreError> {
        if self.is_leaving() {
            return Ok(());
        }
        let until = Millis(Millis::now().0 + self.lease_ms());
        self.upkeep
            .heartbeat(&self.node.id, &self.node.url, until)
            .await?;
        self.refresh_view(Instant::now()).await?;
        let all = self.upkeep.statement_keys().await?;
        {
            let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
            known.extend(all.iter().copied());
        }
        let running: Vec<(Key, u64)> = self
            .owned
            .read()
            .iter()
            .map(|(k, r)| (*k, r.token))
            .collect();
        for (stmt, token) in running {
            match self
                .upkeep
                .renew_lease(stmt, &self.node.id, token, self.lease_ms())
                .await
            {
                Ok(true) => {
                    if self
                        .owner_in_view(stmt)
                        .is_some_and(|o| o.id != self.node.id)
                    {
                        self.hand_over(stmt).await;
                    }
                }
                Ok(false) => {
                    tracing::warn!(statement = %stmt, "lease lost; stopping the matcher");
                    if let Some(r) = self.owned.get(stmt) {
                        if self.owned.remove(stmt, token) {
                            r.addr.do_send(Retire);
                        }
                    }
                }
                Err(e) => {
                    // The fencing token keeps writes safe meanwhile; try again next tick.
                    tracing::warn!(statement = %stmt, error = %e, "renewing a lease failed");
                }
            }
        }
        for stmt in all {
            let mine = self
                .owner_in_view(stmt)
                .is_some_and(|o| o.id == self.node.id);
            if mine && self.owned.get(stmt).is_none() {
                if let Err(e) = self.acquire(stmt, false).await {
                    tracing::debug!(statement = %stmt, error = %e, "statement not taken yet");
                }
            }
        }
        Ok(())
    }

    /// Starts [`Markets::run`] on the upkeep thread.
    pub fn spawn_upkeep(self: &Arc<Self>) {
        let me = self.clone();
        self.upkeep_thread.spawn(me.run());
    }

    /// Runs [`Markets::tick`] every third of a lease until the node leaves. The node
    /// turns ready after the first round.
    pub async fn run(self: Arc<Self>) {
        let period = self.node.lease / 3;
        loop {
            let started = Instant::now();
            match self.tick().await {
                Ok(()) => {
                    if !self.ready.swap(true, Ordering::AcqRel) {
                        tracing::info!(
                            node = %self.node.id,
                            owned = self.len(),
                            live_nodes = self.view().len(),
                            "joined the cluster; ready"
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cluster upkeep failed; retrying"),
            }
            if self.is_leaving() {
                return;
            }
            tokio::time::sleep(period.saturating_sub(started.elapsed())).await;
        }
    }

    /// Graceful shutdown: leave the live set, then hand every statement over. Calls
    /// arriving meanwhile are forwarded to the new owners.
    pub async fn leave(&self) {
        self.leaving.store(true, Ordering::Release);
        if let Err(e) = self.upkeep.leave(&self.node.id).await {
            tracing::warn!(error = %e, "leaving the live set failed; the heartbeat expires");
        }
        if let Err(e) = self.refresh_view(Instant::now()).await {
            tracing::warn!(error = %e, "reading the live set failed");
        }
        let owned = self.owned();
        futures_util::future::join_all(owned.iter().map(|s| self.hand_over(*s))).await;
        tracing::info!(node = %self.node.id, handed_over = owned.len(), "left the cluster");
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

/// Sends a message to a matcher. A full mailbox makes `send` wait, so a deadline turns
/// a matcher that cannot keep up into a 503 instead of an unbounded queue. A matcher
/// that stopped (its statement moved) answers [`MarketError::Moved`]: route again.
pub async fn ask<M>(addr: &Addr<Matcher>, msg: M) -> Result<M::Result, MarketError>
where
    M: actix::Message + Send + 'static,
    M::Result: Send,
    Matcher: actix::Handler<M>,
{
    match tokio::time::timeout(Duration::from_secs(10), addr.send(msg)).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(_)) => Err(MarketError::Moved(None)),
        Err(_) => Err(MarketError::unavailable(
            "the statement's matcher is overloaded, retry shortly",
        )),
    }
}

//! The shard router: which matcher actor owns which statement, and fresh keys.
//!
//! One [`Matcher`] per statement, spread over a few arbiters (threads) so that busy
//! statements do not queue behind each other. The map is read on every order and
//! written only when a statement appears, so a std `RwLock` held for a lookup (never
//! across an `.await`) is the cheapest correct choice.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};

use actix::{Actor, Addr, Arbiter, ArbiterHandle};

use crate::domain::Key;
use crate::error::MarketError;
use crate::matcher::{Matcher, Snapshot};
use crate::store::{Store, StoreError};

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

/// The statements this node serves and their matchers.
pub struct Markets {
    store: Store,
    matchers: RwLock<HashMap<Key, Addr<Matcher>>>,
    /// Matcher threads, each with its own Redis connection driven on that thread.
    arbiters: Vec<(ArbiterHandle, Store)>,
    /// Key allocation for every kind of object.
    pub keys: KeyAllocator,
    ready: AtomicBool,
}

impl Markets {
    /// A router over `threads` matcher arbiters, each opening its own Redis connection.
    /// Must be called inside an actix system.
    pub async fn start(store: Store, threads: usize) -> Result<Markets, StoreError> {
        let mut arbiters = Vec::new();
        for _ in 0..threads.max(1) {
            let handle = Arbiter::new().handle();
            let (tx, rx) = tokio::sync::oneshot::channel();
            let s = store.clone();
            handle.spawn(async move {
                let _ = tx.send(s.reconnect().await);
            });
            let local = rx.await.map_err(|_| {
                StoreError::Corrupt("matcher thread stopped while connecting".into())
            })??;
            arbiters.push((handle, local));
        }
        Ok(Markets {
            store,
            matchers: RwLock::new(HashMap::new()),
            arbiters,
            keys: KeyAllocator::new(1000),
            ready: AtomicBool::new(false),
        })
    }

    /// Loads every statement's book from the store; the node is ready afterwards.
    pub async fn load_all(&self) -> Result<usize, StoreError> {
        let keys = self.store.statement_keys().await?;
        for k in &keys {
            self.start_matcher(*k).await?;
        }
        self.ready.store(true, Ordering::Release);
        Ok(keys.len())
    }

    /// True once every book is loaded.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Number of statements served.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// True when no statement is served.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Key, Addr<Matcher>>> {
        self.matchers.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Loads a statement's state and starts its matcher (no-op when running).
    pub async fn start_matcher(&self, stmt: Key) -> Result<Addr<Matcher>, StoreError> {
        if let Some(a) = self.read().get(&stmt) {
            return Ok(a.clone());
        }
        let snapshot = Snapshot::load(&self.store, stmt).await?;
        let mut map = self.matchers.write().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = map.get(&stmt) {
            return Ok(a.clone());
        }
        let (arbiter, store) = &self.arbiters[(stmt.0 as usize) % self.arbiters.len()];
        let store = store.clone();
        let addr = Matcher::start_in_arbiter(arbiter, move |_| Matcher::new(stmt, store, snapshot));
        map.insert(stmt, addr.clone());
        Ok(addr)
    }

    /// The matcher of a statement, if this node serves it.
    pub fn matcher(&self, stmt: Key) -> Result<Addr<Matcher>, MarketError> {
        if !self.is_ready() {
            return Err(MarketError::unavailable(
                "the market is starting, retry shortly",
            ));
        }
        self.read()
            .get(&stmt)
            .cloned()
            .ok_or_else(|| MarketError::NotFound(format!("no statement {stmt}")))
    }
}

/// Sends a message to a matcher. A full mailbox makes `send` wait, so a deadline turns
/// a matcher that cannot keep up into a 503 instead of an unbounded queue.
pub async fn ask<M>(addr: &Addr<Matcher>, msg: M) -> Result<M::Result, MarketError>
where
    M: actix::Message + Send + 'static,
    M::Result: Send,
    Matcher: actix::Handler<M>,
{
    match tokio::time::timeout(std::time::Duration::from_secs(10), addr.send(msg)).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(_)) => Err(MarketError::unavailable(
            "the matcher stopped, retry shortly",
        )),
        Err(_) => Err(MarketError::unavailable(
            "the statement's matcher is overloaded, retry shortly",
        )),
    }
}

impl Markets {
    /// The store behind the markets.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

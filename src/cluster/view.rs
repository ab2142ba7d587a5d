//! This node's view of the live nodes, and the owner of a statement in it.
//!
//! The view is read from the registry in Redis at every upkeep round, and at once when
//! a forwarded call shows that another node's view disagrees with ours. Calls that
//! want a fresh view at the same moment share one read. It is read on every routed
//! call and written once a round, so a std lock held for a copy (never across an
//! `.await`) is the cheapest correct choice.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;
use std::time::Instant;

use crate::domain::{Key, Millis};
use crate::store::{Store, StoreError};

use super::{owner, NodeEntry};

/// The live nodes as this node last read them.
pub struct LiveView {
    me: String,
    /// The connection the registry is read on (the upkeep's own).
    registry: Store,
    /// Live nodes, sorted by id, as of the last read.
    nodes: RwLock<Vec<NodeEntry>>,
    /// When the read behind `nodes` started. Held across a read, so calls that want a
    /// fresh view at the same moment share one read.
    read: tokio::sync::Mutex<Option<Instant>>,
    /// Set when this node leaves: it is then never the owner of anything.
    leaving: AtomicBool,
}

impl LiveView {
    /// An empty view for node `me`, read through `registry`.
    pub fn new(me: String, registry: Store) -> LiveView {
        LiveView {
            me,
            registry,
            nodes: RwLock::new(Vec::new()),
            read: tokio::sync::Mutex::new(None),
            leaving: AtomicBool::new(false),
        }
    }

    /// The live nodes as last read.
    pub fn nodes(&self) -> Vec<NodeEntry> {
        self.nodes.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The owner of `stmt` in this view (a leaving node excludes itself).
    pub fn owner(&self, stmt: Key) -> Option<NodeEntry> {
        let nodes = self.nodes.read().unwrap_or_else(|p| p.into_inner());
        if self.is_leaving() {
            let others: Vec<NodeEntry> =
                nodes.iter().filter(|n| n.id != self.me).cloned().collect();
            owner(&others, stmt).cloned()
        } else {
            owner(&nodes, stmt).cloned()
        }
    }

    /// True when this node owns `stmt` in this view.
    pub fn is_mine(&self, stmt: Key) -> bool {
        self.owner(stmt).is_some_and(|o| o.id == self.me)
    }

    /// From now on this node owns nothing (it is handing its statements over).
    pub fn leave(&self) {
        self.leaving.store(true, Ordering::Release);
    }

    /// True while the node hands its statements over before it stops.
    pub fn is_leaving(&self) -> bool {
        self.leaving.load(Ordering::Acquire)
    }

    /// Makes the view at least as new as a read of the live nodes that started at or
    /// after `since`: reads Redis unless such a read has completed meanwhile.
    pub async fn refresh(&self, since: Instant) -> Result<(), StoreError> {
        let mut last = self.read.lock().await;
        if last.is_some_and(|t| t >= since) {
            return Ok(());
        }
        let started = Instant::now();
        let live = self.registry.live_nodes(Millis::now()).await?;
        let mut nodes: Vec<NodeEntry> = live
            .into_iter()
            .map(|(id, url)| NodeEntry { id, url })
            .collect();
        if self.is_leaving() {
            nodes.retain(|n| n.id != self.me);
        }
        *self.nodes.write().unwrap_or_else(|p| p.into_inner()) = nodes;
        *last = Some(started);
        Ok(())
    }
}

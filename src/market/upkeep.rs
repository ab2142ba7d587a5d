//! Membership and ownership upkeep of a node: heartbeats, lease renewals, takeovers
//! and hand-overs.
//!
//! [`Router::tick`] runs every third of a lease on a thread and Redis connection of its
//! own (so a busy node still renews in time): heartbeat, read the live set again, renew
//! owned leases (a lost lease or a fenced matcher stops serving the statement here),
//! hand over statements whose owner changed (a node joined), and take the statements
//! this node should own (a node died or left). A takeover loads the state from Redis
//! before the matcher takes its first call. [`Router::leave`] hands everything over on
//! shutdown.
//!
//! A round must end well within a lease however many statements a node holds: the
//! renewals go out pipelined (one script per lease, a thousand per round trip; see
//! `store/batch.rs`), the statement list is read again only when its count changed,
//! takeovers acquire their leases pipelined a chunk at a time and load a few statements
//! at once, and hand-overs run side by side. The `leases` mode of `loadtest/` measures
//! a round over 10^5 leases.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};

use super::router::Router;
use crate::domain::{Key, Millis};
use crate::store::{Lease, StoreError};

/// Statements a takeover handles at once: their leases in one pipeline, then their
/// matchers loaded. A call to one of them waits for the chunk (under a second).
const TAKEOVER_CHUNK: usize = 1000;
/// Statements whose state a takeover loads at once.
const LOADS_IN_FLIGHT: usize = 16;
/// Hand-overs at once (each waits for its matcher's queued writes).
const HANDOVERS_IN_FLIGHT: usize = 64;

impl Router {
    /// Stops the local matcher of `stmt` after its queued writes, and releases the
    /// lease so the new owner can take it at once.
    async fn hand_over(&self, stmt: Key) {
        let Some(r) = self.running_one(stmt) else {
            return;
        };
        // Unlisted first: new calls route to the new owner; the mailbox drains.
        self.forget(stmt, r.token);
        r.handle.retire(Duration::from_secs(10)).await;
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
        self.view.refresh(Instant::now()).await?;
        let all = self.statements().await?;
        self.renew_all().await;
        let owned = self.owned();
        let wanted: Vec<Key> = all
            .iter()
            .copied()
            .filter(|&s| owned.binary_search(&s).is_err() && self.view.is_mine(s))
            .collect();
        self.take_over(&wanted).await;
        Ok(())
    }

    /// Every statement: the list of an earlier round while their count is unchanged
    /// (statements are never removed, so the same count means no new one), else the
    /// list read again.
    async fn statements(&self) -> Result<Arc<Vec<Key>>, StoreError> {
        let count = self.upkeep.statement_count().await?;
        let listed = self
            .listed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if listed.len() as u64 == count {
            return Ok(listed);
        }
        let all = Arc::new(self.upkeep.statement_keys().await?);
        self.known
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .extend(all.iter().copied());
        *self.listed.lock().unwrap_or_else(|p| p.into_inner()) = all.clone();
        Ok(all)
    }

    /// Renews every lease held here in pipelines, then hands over the statements whose
    /// owner changed. A lost lease stops its matcher; a renewal that failed is tried
    /// again next round (the fencing token keeps writes safe meanwhile).
    async fn renew_all(&self) {
        let mut held = Vec::new();
        for (stmt, r) in self.running() {
            if r.handle.is_running() {
                held.push((stmt, r));
            } else {
                // Fenced: another node wrote under a newer token.
                self.forget(stmt, r.token);
            }
        }
        let leases: Vec<(Key, u64)> = held.iter().map(|(s, r)| (*s, r.token)).collect();
        let renewed = self
            .upkeep
            .renew_leases(&leases, &self.node.id, self.lease_ms())
            .await;
        let (mut moving, mut failed) = (Vec::new(), 0usize);
        for ((stmt, r), renewal) in held.into_iter().zip(renewed) {
            match renewal {
                Ok(true) => {
                    if !self.view.is_mine(stmt) {
                        moving.push(stmt);
                    }
                }
                Ok(false) => {
                    tracing::warn!(statement = %stmt, "lease lost; stopping the matcher");
                    if self.forget(stmt, r.token) {
                        r.handle.retire_now();
                    }
                }
                Err(e) => {
                    if failed == 0 {
                        tracing::warn!(statement = %stmt, error = %e, "renewing a lease failed");
                    } else {
                        tracing::debug!(statement = %stmt, error = %e, "renewing a lease failed");
                    }
                    failed += 1;
                }
            }
        }
        if failed > 1 {
            tracing::warn!(failed, "renewing leases failed; trying again next round");
        }
        stream::iter(moving)
            .for_each_concurrent(HANDOVERS_IN_FLIGHT, |stmt| self.hand_over(stmt))
            .await;
    }

    /// Takes `stmts` (statements this node should own and does not run), a chunk at a
    /// time: the chunk's leases acquired in pipelines, then its matchers loaded a few at
    /// once. A statement a call is acquiring meanwhile is left to that call.
    async fn take_over(&self, stmts: &[Key]) {
        for chunk in stmts.chunks(TAKEOVER_CHUNK) {
            if self.is_leaving() {
                return;
            }
            let mut locked = Vec::new();
            for &stmt in chunk {
                if let Ok(guard) = self.acquisition_lock(stmt).try_lock_owned() {
                    if self.local(stmt).is_none() {
                        locked.push((stmt, guard));
                    }
                }
            }
            let keys: Vec<Key> = locked.iter().map(|(s, _)| *s).collect();
            let leases = self
                .upkeep
                .acquire_leases(&keys, &self.node.id, self.lease_ms())
                .await;
            stream::iter(locked.into_iter().zip(leases))
                .for_each_concurrent(LOADS_IN_FLIGHT, |((stmt, guard), lease)| async move {
                    match lease {
                        Ok(Lease::Acquired(token)) => {
                            if let Err(e) = self.start_matcher(stmt, token).await {
                                tracing::debug!(statement = %stmt, error = %e, "statement not taken yet");
                            }
                        }
                        Ok(Lease::HeldBy(holder)) => {
                            tracing::debug!(statement = %stmt, holder, "statement not taken yet: still held");
                        }
                        Err(e) => {
                            tracing::debug!(statement = %stmt, error = %e, "statement not taken yet");
                        }
                    }
                    drop(guard);
                })
                .await;
        }
    }

    /// Starts [`Router::run`] on the upkeep thread.
    pub fn spawn_upkeep(self: &Arc<Self>) {
        let me = self.clone();
        self.upkeep_thread.spawn(me.run());
    }

    /// Runs [`Router::tick`] every third of a lease until the node leaves. The node
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
                            owned = self.owned().len(),
                            live_nodes = self.live_nodes().len(),
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
        self.view.leave();
        if let Err(e) = self.upkeep.leave(&self.node.id).await {
            tracing::warn!(error = %e, "leaving the live set failed; the heartbeat expires");
        }
        if let Err(e) = self.view.refresh(Instant::now()).await {
            tracing::warn!(error = %e, "reading the live set failed");
        }
        let owned = self.owned();
        futures_util::future::join_all(owned.iter().map(|s| self.hand_over(*s))).await;
        tracing::info!(node = %self.node.id, handed_over = owned.len(), "left the cluster");
    }
}

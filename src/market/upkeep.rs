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

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::router::Router;
use crate::domain::{Key, Millis};
use crate::store::StoreError;

impl Router {
    /// Stops the local matcher of `stmt` after its queued writes, and releases the
    /// lease so the new owner can take it at once.
    async fn hand_over(&self, stmt: Key) {
        let Some((_, r)) = self.running().into_iter().find(|(k, _)| *k == stmt) else {
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
        let all = self.upkeep.statement_keys().await?;
        self.known
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .extend(all.iter().copied());
        for (stmt, r) in self.running() {
            if !r.handle.is_running() {
                // Fenced: another node wrote under a newer token.
                self.forget(stmt, r.token);
                continue;
            }
            match self
                .upkeep
                .renew_lease(stmt, &self.node.id, r.token, self.lease_ms())
                .await
            {
                Ok(true) => {
                    if !self.view.is_mine(stmt) {
                        self.hand_over(stmt).await;
                    }
                }
                Ok(false) => {
                    tracing::warn!(statement = %stmt, "lease lost; stopping the matcher");
                    if self.forget(stmt, r.token) {
                        r.handle.retire_now();
                    }
                }
                Err(e) => {
                    // The fencing token keeps writes safe meanwhile; try again next tick.
                    tracing::warn!(statement = %stmt, error = %e, "renewing a lease failed");
                }
            }
        }
        let owned = self.owned();
        for stmt in all {
            if self.view.is_mine(stmt) && owned.binary_search(&stmt).is_err() {
                if let Err(e) = self.acquire(stmt, false).await {
                    tracing::debug!(statement = %stmt, error = %e, "statement not taken yet");
                }
            }
        }
        Ok(())
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

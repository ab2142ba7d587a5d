//! Cluster membership and statement leases.
//!
//! Each node heartbeats into the live-node set with the URL other nodes forward calls
//! to. A statement's owner holds its lease (a key with a TTL naming the node) and the
//! fencing token its acquisition incremented; `transitions.lua` refuses a batch whose
//! token is not the current one and counts the refusal. The keys are listed in
//! [`super::keys`]; the lease scripts below receive theirs as `KEYS` (lease, fence).
//!
//! Liveness uses each node's wall clock (a skewed clock only delays or hastens a
//! takeover); safety never does: only the fencing token decides who may write.

use std::sync::LazyLock;

use redis::AsyncCommands;

use super::{Store, StoreError};
use crate::domain::{Key, Millis};

/// What an attempt to take a statement's lease found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lease {
    /// Taken, with this fencing token.
    Acquired(u64),
    /// Held by this other node.
    HeldBy(String),
}

// Every script: KEYS[1] = the statement's lease, KEYS[2] = its fencing token.
const ACQUIRE: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return {0, cur} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, tostring(redis.call('INCR', KEYS[2]))}
"#;

// A lease that lapsed while nobody took it (the fence is still ours) is taken back:
// its holder lost no write to anyone, so stopping and rebuilding its matcher would only
// turn a slow moment of Redis or of the node into an outage.
const RENEW: &str = r#"
local cur = redis.call('GET', KEYS[1])
if (cur == ARGV[1] or not cur)
   and redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
  return 1
end
return 0
"#;

const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1]
   and redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"#;

static ACQUIRE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(ACQUIRE));
static RENEW_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(RENEW));
static RELEASE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(RELEASE));

/// What the acquisition script's reply `{ok, token or holder}` says.
fn lease_of(ok: i64, v: String) -> Result<Lease, StoreError> {
    if ok == 1 {
        v.parse()
            .map(Lease::Acquired)
            .map_err(|_| StoreError::Corrupt(format!("fencing token {v:?}")))
    } else {
        Ok(Lease::HeldBy(v))
    }
}

impl Store {
    /// Announces `node` as alive until `until`, reachable at `url`.
    pub async fn heartbeat(&self, node: &str, url: &str, until: Millis) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        let _: () = c.hset(self.keys.node_urls(), node, url).await?;
        let _: () = c.zadd(self.keys.nodes(), node, until.0).await?;
        Ok(())
    }

    /// Removes `node` from the live set at once (graceful shutdown).
    pub async fn leave(&self, node: &str) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        let _: () = c.zrem(self.keys.nodes(), node).await?;
        let _: () = c.hdel(self.keys.node_urls(), node).await?;
        Ok(())
    }

    /// Nodes whose heartbeat has not expired at `now`, with their URLs, sorted by id.
    /// Entries dead for a long time are swept.
    pub async fn live_nodes(&self, now: Millis) -> Result<Vec<(String, String)>, StoreError> {
        let mut c = self.conn.clone();
        let ids: Vec<String> = c.zrangebyscore(self.keys.nodes(), now.0, "+inf").await?;
        let urls: Vec<Option<String>> = if ids.is_empty() {
            Vec::new()
        } else {
            redis::cmd("HMGET")
                .arg(self.keys.node_urls())
                .arg(&ids)
                .query_async(&mut c)
                .await?
        };
        let _: () = c
            .zrembyscore(self.keys.nodes(), "-inf", now.0.saturating_sub(3_600_000))
            .await?;
        let mut out: Vec<(String, String)> = ids
            .into_iter()
            .zip(urls)
            .filter_map(|(id, url)| url.map(|u| (id, u)))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Tries to take statement `stmt`'s lease for `node` for `ttl_ms`. A lease left by
    /// an earlier run of the same node id is taken over; every acquisition gets a new
    /// fencing token, so that earlier run could not write any more.
    pub async fn acquire_lease(
        &self,
        stmt: Key,
        node: &str,
        ttl_ms: u64,
    ) -> Result<Lease, StoreError> {
        let mut c = self.conn.clone();
        let names = self.keys.statement(stmt);
        let (ok, v): (i64, String) = ACQUIRE_SCRIPT
            .key(names.lease())
            .key(names.fence())
            .arg(node)
            .arg(ttl_ms)
            .invoke_async(&mut c)
            .await?;
        lease_of(ok, v)
    }

    /// Extends a lease this node holds with `token` (or took last, if it lapsed and no
    /// one took it since); `false` when another node has taken it.
    pub async fn renew_lease(
        &self,
        stmt: Key,
        node: &str,
        token: u64,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        let names = self.keys.statement(stmt);
        let r: i64 = RENEW_SCRIPT
            .key(names.lease())
            .key(names.fence())
            .arg(node)
            .arg(token)
            .arg(ttl_ms)
            .invoke_async(&mut c)
            .await?;
        Ok(r == 1)
    }

    /// [`Store::acquire_lease`] for each of `stmts`, pipelined (a node taking over many
    /// statements); each statement's result in the same order.
    pub async fn acquire_leases(
        &self,
        stmts: &[Key],
        node: &str,
        ttl_ms: u64,
    ) -> Vec<Result<Lease, StoreError>> {
        let calls: Vec<_> = stmts
            .iter()
            .map(|&stmt| {
                let names = self.keys.statement(stmt);
                let mut call = ACQUIRE_SCRIPT.key(names.lease());
                call.key(names.fence()).arg(node).arg(ttl_ms);
                call
            })
            .collect();
        self.eval_each(&ACQUIRE_SCRIPT, stmts, &calls)
            .await
            .into_iter()
            .map(|r| {
                let (ok, v): (i64, String) = redis::from_redis_value(r?)
                    .map_err(|e| StoreError::Corrupt(format!("lease script reply: {e}")))?;
                lease_of(ok, v)
            })
            .collect()
    }

    /// [`Store::renew_lease`] for each `(statement, token)` of `leases`, pipelined (a
    /// node's renewal round); each lease's result in the same order. A failed call
    /// fails only its own lease.
    pub async fn renew_leases(
        &self,
        leases: &[(Key, u64)],
        node: &str,
        ttl_ms: u64,
    ) -> Vec<Result<bool, StoreError>> {
        let stmts: Vec<Key> = leases.iter().map(|(s, _)| *s).collect();
        let calls: Vec<_> = leases
            .iter()
            .map(|&(stmt, token)| {
                let names = self.keys.statement(stmt);
                let mut call = RENEW_SCRIPT.key(names.lease());
                call.key(names.fence()).arg(node).arg(token).arg(ttl_ms);
                call
            })
            .collect();
        self.eval_each(&RENEW_SCRIPT, &stmts, &calls)
            .await
            .into_iter()
            .map(|r| {
                let n: i64 = redis::from_redis_value(r?)
                    .map_err(|e| StoreError::Corrupt(format!("lease script reply: {e}")))?;
                Ok(n == 1)
            })
            .collect()
    }

    /// Gives a lease up so another node can take the statement at once.
    pub async fn release_lease(
        &self,
        stmt: Key,
        node: &str,
        token: u64,
    ) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        let names = self.keys.statement(stmt);
        let r: i64 = RELEASE_SCRIPT
            .key(names.lease())
            .key(names.fence())
            .arg(node)
            .arg(token)
            .invoke_async(&mut c)
            .await?;
        Ok(r == 1)
    }

    /// Who holds a statement's lease, its fencing token, and how many stale writes
    /// the transition script has refused for it.
    pub async fn lease_info(&self, stmt: Key) -> Result<(Option<String>, u64, u64), StoreError> {
        let mut c = self.conn.clone();
        let names = self.keys.statement(stmt);
        let (holder, fence, fenced): (Option<String>, Option<u64>, Option<u64>) = redis::pipe()
            .get(names.lease())
            .get(names.fence())
            .get(names.fenced())
            .query_async(&mut c)
            .await?;
        Ok((holder, fence.unwrap_or(0), fenced.unwrap_or(0)))
    }
}

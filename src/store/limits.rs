//! Limits kept in Redis, so they hold across nodes:
//!
//! - counters in time windows: failed logins per name and per IP, refused proofs per
//!   proposal, statements per user per day. A counter expires a window after its first
//!   count, so what it bounds is the count per window, and a quiet key leaves nothing
//!   behind;
//! - token buckets: calls per second per client IP and per user ([`Store::take_tokens`]).

use redis::AsyncCommands;

use super::{Store, StoreError};
use crate::domain::Key;

/// Adds one to a counter, starting its window (`window_ms`) on the first count.
/// Returns the new count.
const COUNT: &str = r"local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n";

/// Takes up to `ARGV[3]` tokens from a bucket refilled at `ARGV[1]` tokens per second
/// up to `ARGV[2]` tokens, kept as integer milli-tokens with the time of the last refill
/// (Redis' own clock, so nodes' clocks do not matter). Returns `{taken, wait}`: the
/// tokens taken (0 when the bucket has less than one), and when none were, the
/// milliseconds until one will be there. The key expires once the bucket would be full
/// again, so idle clients leave nothing behind.
const TAKE_TOKENS: &str = r"local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local cap = tonumber(ARGV[2]) * 1000
local want = tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 'm', 'ts')
local m = tonumber(v[1]) or cap
local ts = tonumber(v[2]) or now
if now > ts then m = math.min(cap, m + (now - ts) * rate) end
local taken = math.min(want, math.floor(m / 1000))
local wait = 0
if taken > 0 then
  m = m - taken * 1000
else
  wait = math.ceil((1000 - m) / rate)
end
redis.call('HSET', KEYS[1], 'm', m, 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((cap - m) / rate) + 1000)
return {taken, wait}";

/// Whose calls a token bucket counts.
#[derive(Debug, Clone, Copy)]
pub enum Bucket<'a> {
    /// A client IP (or IPv6 /64), as text.
    Ip(&'a str),
    /// A user, by lowercased name.
    User(&'a str),
}

impl Store {
    /// Takes up to `want` tokens from `bucket`, refilled at `per_sec` up to `burst`
    /// tokens. Returns the tokens taken and, when none were, the milliseconds to wait
    /// for one.
    pub async fn take_tokens(
        &self,
        bucket: Bucket<'_>,
        per_sec: u32,
        burst: u32,
        want: u32,
    ) -> Result<(u32, u64), StoreError> {
        let key = match bucket {
            Bucket::Ip(ip) => self.keys.rate_ip(ip),
            Bucket::User(name) => self.keys.rate_user(name),
        };
        let mut c = self.conn.clone();
        static SCRIPT: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(TAKE_TOKENS));
        Ok(SCRIPT
            .key(key)
            .arg(per_sec.max(1))
            .arg(burst.max(1))
            .arg(want.max(1))
            .invoke_async(&mut c)
            .await?)
    }

    /// Statements `user` (lowercased) pushed in the current day-long window, and the
    /// milliseconds left in it.
    pub async fn statements_today(&self, user: &str) -> Result<(u64, u64), StoreError> {
        self.window_count(&self.keys.statements_pushed(user)).await
    }

    /// Counts a statement pushed by `user` (lowercased) in its day-long window.
    pub async fn count_statement_pushed(&self, user: &str) -> Result<u64, StoreError> {
        self.count_in_window(self.keys.statements_pushed(user), 86_400_000)
            .await
    }

    /// A counter's value and the milliseconds left in its window (0 and 0 when unset).
    async fn window_count(&self, key: &str) -> Result<(u64, u64), StoreError> {
        let mut c = self.conn.clone();
        let (n, ttl): (Option<u64>, i64) =
            redis::pipe().get(key).pttl(key).query_async(&mut c).await?;
        Ok((n.unwrap_or(0), ttl.max(0) as u64))
    }

    /// Adds one to a counter (see [`COUNT`]); returns the new count.
    async fn count_in_window(&self, key: String, window_ms: u64) -> Result<u64, StoreError> {
        let mut c = self.conn.clone();
        Ok(redis::Script::new(COUNT)
            .key(key)
            .arg(window_ms.max(1))
            .invoke_async(&mut c)
            .await?)
    }

    /// Failed logins counted for a (lowercased) name and for an IP in their windows,
    /// each with the milliseconds left in its window.
    pub async fn login_failures(
        &self,
        account: &str,
        ip: Option<&str>,
    ) -> Result<[(u64, u64); 2], StoreError> {
        let by_name = self
            .window_count(&self.keys.login_failures_name(account))
            .await?;
        let by_ip = match ip {
            Some(ip) => self.window_count(&self.keys.login_failures_ip(ip)).await?,
            None => (0, 0),
        };
        Ok([by_name, by_ip])
    }

    /// Counts a failed login against a name and an IP; each counter expires `window_secs`
    /// after its first failure.
    pub async fn record_login_failure(
        &self,
        account: &str,
        ip: Option<&str>,
        window_secs: u64,
    ) -> Result<(), StoreError> {
        let window_ms = window_secs.max(1) * 1000;
        self.count_in_window(self.keys.login_failures_name(account), window_ms)
            .await?;
        if let Some(ip) = ip {
            self.count_in_window(self.keys.login_failures_ip(ip), window_ms)
                .await?;
        }
        Ok(())
    }

    /// Forgets the failed logins of a name (after a successful login).
    pub async fn clear_login_failures(&self, account: &str) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        let _: () = c.del(self.keys.login_failures_name(account)).await?;
        Ok(())
    }

    /// Proofs refused for a proposal in the current window, and the milliseconds left in
    /// it.
    pub async fn refused_proofs(&self, stmt: Key, proposal: Key) -> Result<(u64, u64), StoreError> {
        self.window_count(&self.keys.statement(stmt).refused(proposal))
            .await
    }

    /// Counts a refused proof for a proposal; returns the count in the window.
    pub async fn record_refused_proof(
        &self,
        stmt: Key,
        proposal: Key,
        window_ms: u64,
    ) -> Result<u64, StoreError> {
        self.count_in_window(self.keys.statement(stmt).refused(proposal), window_ms)
            .await
    }
}

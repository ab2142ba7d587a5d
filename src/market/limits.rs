//! Rate limits and quotas: token buckets per client IP and per user, statements per
//! user per day. All are kept in Redis, so they hold across nodes.
//!
//! A node takes tokens from Redis in batches of a tenth of a bucket (at least one) and
//! spends them locally for up to a second ([`LocalBuckets`]), and remembers a refusal
//! until the wait it gave is over: a call costs a Redis round trip once per batch, and
//! a flood of refused calls costs none. Spread over `n` nodes a client may get up to
//! `n` batches more than its bucket at once, never more over time.
//!
//! A limit that cannot be checked because Redis does not answer lets the call through
//! (logged): the call needs Redis anyway and fails on its own, and a limiter must not
//! turn a Redis hiccup into refusals of every call.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::auth;
use crate::domain::UserName;
use crate::error::MarketError;
use crate::store::Bucket;

use super::Market;

/// Calls per second per client IP and per user (token buckets refilled at that rate,
/// holding `burst_secs` seconds of it); 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Calls per second per client IP (IPv6: per /64).
    pub per_ip: u32,
    /// Calls per second per user.
    pub per_user: u32,
    /// Seconds of calls a bucket holds when full: the burst a quiet client may send.
    pub burst_secs: u32,
}

impl RateLimits {
    /// Default of `--rate-limit-ip`.
    pub const PER_IP: u32 = 50;
    /// Default of `--rate-limit-user`.
    pub const PER_USER: u32 = 20;
    /// Default of `--rate-limit-burst`.
    pub const BURST_SECS: u32 = 2;
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            per_ip: Self::PER_IP,
            per_user: Self::PER_USER,
            burst_secs: Self::BURST_SECS,
        }
    }
}

/// The bucket name of a client address: an IPv4 address, or an IPv6 address's /64
/// (one host or one customer's network has a whole /64, so counting single IPv6
/// addresses would count nothing).
pub fn ip_bucket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// How long tokens taken from Redis may be spent here.
const LOCAL_FOR: Duration = Duration::from_secs(1);
/// Most buckets remembered locally; beyond it the stale ones are dropped, and if that
/// is not enough, all (they are only a cache of Redis).
const MAX_LOCAL: usize = 100_000;

/// What this node holds of one bucket.
#[derive(Debug, Clone, Copy)]
enum Held {
    /// Tokens taken from Redis, to spend until then.
    Tokens(u32, Instant),
    /// Refused: the bucket is empty until then.
    Empty(Instant),
}

/// What the local share says of a call.
#[derive(Debug, PartialEq, Eq)]
enum Local {
    /// A token was spent here.
    Allowed,
    /// Refused here: milliseconds to wait.
    Refused(u64),
    /// Nothing held: ask Redis.
    Ask,
}

/// This node's share of the token buckets (see the module docs).
#[derive(Debug, Default)]
pub struct LocalBuckets {
    held: Mutex<HashMap<String, Held>>,
}

impl LocalBuckets {
    fn take(&self, key: &str, now: Instant) -> Local {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        match held.get_mut(key) {
            Some(Held::Tokens(n, until)) if *n > 0 && now < *until => {
                *n -= 1;
                Local::Allowed
            }
            Some(Held::Empty(until)) if now < *until => {
                Local::Refused((*until - now).as_millis() as u64 + 1)
            }
            _ => Local::Ask,
        }
    }

    /// Adds `n` tokens taken from Redis to what is held of `key` (calls that asked
    /// Redis at the same time each add their share).
    fn add_tokens(&self, key: String, n: u32, now: Instant) {
        let mut held = self.lock_bounded(now);
        let entry = held.entry(key).or_insert(Held::Empty(now));
        *entry = match *entry {
            Held::Tokens(m, until) if now < until => Held::Tokens(m.saturating_add(n), until),
            _ => Held::Tokens(n, now + LOCAL_FOR),
        };
    }

    /// Redis had no token for `key` until `until`: spends one held here if another call
    /// just brought some, else remembers the refusal. True when a token was spent.
    fn empty_until(&self, key: String, until: Instant, now: Instant) -> bool {
        let mut held = self.lock_bounded(now);
        match held.get_mut(&key) {
            Some(Held::Tokens(n, fresh)) if *n > 0 && now < *fresh => {
                *n -= 1;
                true
            }
            _ => {
                held.insert(key, Held::Empty(until));
                false
            }
        }
    }

    /// The map, with room for one more entry.
    fn lock_bounded(&self, now: Instant) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.len() >= MAX_LOCAL {
            held.retain(|_, h| match h {
                Held::Tokens(_, until) | Held::Empty(until) => now < *until,
            });
            if held.len() >= MAX_LOCAL {
                held.clear();
            }
        }
        held
    }
}

impl Market {
    /// Takes a call from `ip`'s bucket; 429 + `Retry-After` when it is empty.
    pub async fn charge_ip(&self, ip: IpAddr) -> Result<(), MarketError> {
        let rate = self.limits.rate;
        if rate.per_ip == 0 {
            return Ok(());
        }
        let bucket = ip_bucket(ip);
        self.charge(Bucket::Ip(&bucket), rate.per_ip, "this address")
            .await
    }

    /// Takes a call from `user`'s bucket; 429 + `Retry-After` when it is empty.
    pub async fn charge_user(&self, user: &UserName) -> Result<(), MarketError> {
        let rate = self.limits.rate;
        if rate.per_user == 0 {
            return Ok(());
        }
        let account = auth::account_key(user.as_str());
        self.charge(Bucket::User(&account), rate.per_user, "this user")
            .await
    }

    async fn charge(&self, bucket: Bucket<'_>, per_sec: u32, who: &str) -> Result<(), MarketError> {
        let burst = per_sec.saturating_mul(self.limits.rate.burst_secs.max(1));
        let limit = match bucket {
            Bucket::Ip(_) => "ip",
            Bucket::User(_) => "user",
        };
        let refused = |wait_ms: u64| {
            crate::metrics::metrics()
                .rate_limited
                .with_label_values(&[limit])
                .inc();
            MarketError::TooManyRequests {
                message: format!(
                    "too many calls from {who}: at most {per_sec} per second (bursts of {burst}); \
                 retry in {wait_ms} ms"
                ),
                retry_after_secs: wait_ms.div_ceil(1000).max(1),
            }
        };
        let key = match bucket {
            Bucket::Ip(ip) => format!("ip:{ip}"),
            Bucket::User(u) => format!("user:{u}"),
        };
        let now = Instant::now();
        match self.buckets.take(&key, now) {
            Local::Allowed => return Ok(()),
            Local::Refused(wait_ms) => return Err(refused(wait_ms)),
            Local::Ask => {}
        }
        let batch = (burst / 10).max(1);
        match self.store.take_tokens(bucket, per_sec, burst, batch).await {
            Ok((taken, _)) if taken > 0 => {
                if taken > 1 {
                    self.buckets.add_tokens(key, taken - 1, now);
                }
                Ok(())
            }
            Ok((_, wait_ms)) => {
                let until = now + Duration::from_millis(wait_ms);
                if self.buckets.empty_until(key, until, now) {
                    Ok(())
                } else {
                    Err(refused(wait_ms))
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, ?bucket, "rate limit not checked");
                Ok(())
            }
        }
    }

    /// Refuses a statement push past the user's statements per day; counts it
    /// otherwise. Called before the circuit is compiled, so refused pushes cost no
    /// compilation; a push that then fails still counts (it cost the market a compile).
    pub async fn charge_statement(&self, user: &UserName) -> Result<(), MarketError> {
        let limit = self.limits.max_statements_per_day;
        if limit == 0 {
            return Ok(());
        }
        let account = auth::account_key(user.as_str());
        let (n, left_ms) = self.store.statements_today(&account).await?;
        if n >= limit {
            crate::metrics::metrics()
                .rate_limited
                .with_label_values(&["statements_per_day"])
                .inc();
            return Err(MarketError::TooManyRequests {
                message: format!(
                    "{user} pushed {n} statements today, the most a user may push per day; \
                     retry in {} min",
                    left_ms.div_ceil(60_000)
                ),
                retry_after_secs: left_ms.div_ceil(1000).max(1),
            });
        }
        self.store.count_statement_pushed(&account).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_shares_spend_tokens_and_remember_refusals_until_they_lapse() {
        let b = LocalBuckets::default();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(b.take("ip:a", t0), Local::Ask);
        b.add_tokens("ip:a".into(), 1, t0);
        // Two calls that asked Redis at once: their shares add up.
        b.add_tokens("ip:a".into(), 1, t0);
        assert_eq!(b.take("ip:a", t0), Local::Allowed);
        assert_eq!(b.take("ip:a", t0), Local::Allowed);
        assert_eq!(b.take("ip:a", t0), Local::Ask);
        b.add_tokens("ip:a".into(), 5, t0);
        assert_eq!(
            b.take("ip:a", t0 + LOCAL_FOR),
            Local::Ask,
            "stale tokens are not spent"
        );
        // Redis found the bucket empty, but another call just brought tokens here.
        b.add_tokens("user:u".into(), 1, t0);
        assert!(b.empty_until("user:u".into(), t0 + ms(300), t0));
        assert!(!b.empty_until("user:u".into(), t0 + ms(300), t0));
        assert_eq!(b.take("user:u", t0), Local::Refused(301));
        assert_eq!(b.take("user:u", t0 + ms(300)), Local::Ask);
        // Bounded: past the cap, lapsed entries go first.
        for i in 0..MAX_LOCAL {
            b.empty_until(format!("ip:{i}"), t0, t0);
        }
        b.add_tokens("ip:last".into(), 1, t0 + ms(1));
        assert!(b.held.lock().unwrap().len() < 10);
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_bucket(a), "2001:db8:1:2::/64");
        assert_eq!(ip_bucket(a), ip_bucket(b));
        assert_ne!(ip_bucket(a), ip_bucket(c));
        assert_eq!(ip_bucket("10.0.0.7".parse().unwrap()), "10.0.0.7");
        assert_eq!(ip_bucket("::ffff:10.0.0.7".parse().unwrap()), "10.0.0.7");
    }
}

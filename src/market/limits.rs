//! Rate limits and quotas: token buckets per client IP and per user, statements per
//! user per day. All are kept in Redis, so they hold across nodes.
//!
//! A limit that cannot be checked because Redis does not answer lets the call through
//! (logged): the call needs Redis anyway and fails on its own, and a limiter must not
//! turn a Redis hiccup into refusals of every call.

use std::net::IpAddr;

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
        match self.store.take_token(bucket, per_sec, burst).await {
            Ok(0) => Ok(()),
            Ok(wait_ms) => Err(MarketError::TooManyRequests {
                message: format!(
                    "too many calls from {who}: at most {per_sec} per second (bursts of {burst}); \
                     retry in {} ms",
                    wait_ms
                ),
                retry_after_secs: wait_ms.div_ceil(1000).max(1),
            }),
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

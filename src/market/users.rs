//! Accounts and producer profiles.

use crate::auth;
use crate::domain::{Millis, UserName};
use crate::error::MarketError;
use crate::store::{ProducerRecord, UserRecord};

use super::Market;

/// A sign-up, parsed.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// The account name, unique.
    pub user: UserName,
    /// Kept only as an argon2 hash.
    pub passwd: String,
    /// Contact address, if given.
    pub email: Option<String>,
}

/// What a producer tells the market about itself, parsed.
#[derive(Debug, Clone, Default)]
pub struct ProducerProfile {
    /// Free text shown to requesters.
    pub description: String,
    /// Home page.
    pub url: Option<String>,
    /// Logo URL.
    pub logo: Option<String>,
    /// Payment address on the original market's chain.
    pub eth_address: Option<String>,
}

impl Market {
    /// Creates an account.
    pub async fn signup(&self, u: NewUser) -> Result<UserName, MarketError> {
        let taken = || MarketError::Conflict(format!("user name `{}` is taken", u.user));
        if self.store.get_user(u.user.as_str()).await?.is_some() {
            return Err(taken());
        }
        let passwd = u.passwd.clone();
        let hash = self
            .circuits
            .pools()
            .auth
            .run("argon2-hash", move || auth::hash_password(&passwd))
            .await??;
        let record = UserRecord {
            user: u.user.as_str().to_owned(),
            passwd_hash: hash,
            email: u.email.clone(),
            created: Millis::now().0,
        };
        if !self.store.create_user(&record).await? {
            return Err(taken());
        }
        tracing::info!(user = %u.user, "user signed up");
        Ok(u.user)
    }

    /// Checks credentials and issues a token. `ip` is the client's address, for the
    /// per-IP throttle. Throttled attempts are refused (429) before any hashing; a name
    /// that does not exist costs one argon2 verification like one that does.
    pub async fn login(
        &self,
        user: &str,
        password: String,
        ip: Option<std::net::IpAddr>,
    ) -> Result<String, MarketError> {
        let denied = || MarketError::Unauthorized("wrong user name or password".into());
        let name = UserName::parse(user).ok_or_else(denied)?;
        let record = self.check_password(&name, password, ip).await?;
        let canonical = UserName::parse(&record.user)
            .ok_or_else(|| MarketError::Internal(format!("stored user name {}", record.user)))?;
        self.tokens.issue(&canonical)
    }

    /// The account `name` (any case) if `password` is its password, counting failures
    /// against the name and `ip` and refusing (429) once either is over its limit.
    async fn check_password(
        &self,
        name: &UserName,
        password: String,
        ip: Option<std::net::IpAddr>,
    ) -> Result<UserRecord, MarketError> {
        let denied = || MarketError::Unauthorized("wrong user name or password".into());
        let policy = self.tokens.policy().clone();
        let account = auth::account_key(name.as_str());
        let ip = ip.map(|ip| ip.to_string());
        let [(by_name, name_ms), (by_ip, ip_ms)] =
            self.store.login_failures(&account, ip.as_deref()).await?;
        let over = |n: u64, limit: u64, ms: u64| (n >= limit).then_some(ms.div_ceil(1000).max(1));
        if let Some(wait) = over(by_name, policy.login_failures_per_name, name_ms)
            .or_else(|| over(by_ip, policy.login_failures_per_ip, ip_ms))
        {
            return Err(MarketError::TooManyRequests {
                message: format!("too many failed logins; retry in {wait} s"),
                retry_after_secs: wait,
            });
        }
        let record = self.store.get_user(name.as_str()).await?;
        let hash = record.as_ref().map(|r| r.passwd_hash.clone());
        let ok = self
            .circuits
            .pools()
            .auth
            .run("argon2-verify", move || match hash {
                Some(h) => auth::verify_password(&password, &h),
                None => auth::verify_dummy(&password),
            })
            .await?;
        match record {
            Some(r) if ok => {
                if by_name > 0 {
                    self.store.clear_login_failures(&account).await?;
                }
                Ok(r)
            }
            _ => {
                self.store
                    .record_login_failure(&account, ip.as_deref(), policy.login_window_secs)
                    .await?;
                Err(denied())
            }
        }
    }

    /// The user a bearer token names, if it is valid and not revoked. The revocation
    /// time is read from this node's cache, or from Redis when the cache's entry is
    /// older than the policy's `revocation_cache`.
    pub async fn authenticate(&self, v: auth::Verified) -> Result<UserName, MarketError> {
        if let Some(r) = self.tokens.check_cached(&v) {
            return r.map(|()| v.user);
        }
        let account = v.account();
        let t = self.store.revoked_before(&account).await?;
        self.tokens
            .revocations()
            .put(&account, t, self.tokens.policy().revocation_cache);
        auth::Tokens::check_revocation(&v, t)?;
        Ok(v.user)
    }

    /// Voids every token of `user` issued until now, on this node at once and on the
    /// others within the revocation cache's delay.
    pub async fn logout(&self, user: &UserName) -> Result<(), MarketError> {
        let account = auth::account_key(user.as_str());
        let now = auth::Tokens::now_ms();
        let policy = self.tokens.policy();
        // Kept until every token issued before it is past its maximum age.
        let keep = policy.max_age_secs.saturating_add(60);
        self.store.revoke_tokens(&account, now, keep).await?;
        self.tokens
            .revocations()
            .put(&account, now, policy.revocation_cache);
        tracing::info!(user = %user, "tokens revoked");
        Ok(())
    }

    /// Changes `user`'s password after checking the old one (throttled like a login),
    /// revokes every token issued so far and returns a fresh one.
    pub async fn change_password(
        &self,
        user: &UserName,
        old: String,
        new: String,
        ip: Option<std::net::IpAddr>,
    ) -> Result<String, MarketError> {
        let mut record = self.check_password(user, old, ip).await?;
        record.passwd_hash = self
            .circuits
            .pools()
            .auth
            .run("argon2-hash", move || auth::hash_password(&new))
            .await??;
        self.store.put_user(&record).await?;
        self.logout(user).await?;
        tracing::info!(user = %user, "password changed");
        self.tokens.issue(user)
    }

    /// Records a producer's public profile, replacing an earlier one.
    pub async fn register_producer(
        &self,
        user: &UserName,
        p: ProducerProfile,
    ) -> Result<ProducerRecord, MarketError> {
        let now = Millis::now().0;
        let record = ProducerRecord {
            key: user.as_str().to_owned(),
            id: format!("producer/{user}"),
            name: user.as_str().to_owned(),
            description: p.description,
            url: p.url,
            logo: p.logo,
            eth_address: p.eth_address,
            created: now,
            updated: now,
        };
        self.store.put_producer(&record).await?;
        Ok(record)
    }
}

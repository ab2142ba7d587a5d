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
            .pool()
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

    /// Checks credentials and issues a token.
    pub async fn login(&self, user: &str, password: String) -> Result<String, MarketError> {
        let denied = || MarketError::Unauthorized("wrong user name or password".into());
        let name = UserName::parse(user).ok_or_else(denied)?;
        let record = self
            .store
            .get_user(name.as_str())
            .await?
            .ok_or_else(denied)?;
        let ok = self
            .circuits
            .pool()
            .run("argon2-verify", move || {
                auth::verify_password(&password, &record.passwd_hash)
            })
            .await?;
        if !ok {
            return Err(denied());
        }
        self.tokens.issue(&name)
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

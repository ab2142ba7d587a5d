//! Who and what exists in the market: users, producer profiles and statements, plus
//! the counter that names new objects.
//!
//! These are written once (or replaced whole) with plain commands, outside the
//! transition script: none of them takes part in an order transition.

use std::ops::Range;

use redis::AsyncCommands;

use super::{ProducerRecord, StatementRecord, Store, StoreError, UserRecord};
use crate::domain::Key;

impl Store {
    /// Reserves `n` fresh keys (one INCRBY for a whole block).
    pub async fn reserve_keys(&self, n: u64) -> Result<Range<u64>, StoreError> {
        let mut c = self.conn.clone();
        let end: u64 = c.incr(self.keys.seq(), n).await?;
        Ok(end - n + 1..end + 1)
    }

    /// Creates a user; `false` when the name is taken.
    pub async fn create_user(&self, u: &UserRecord) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        let json = serde_json::to_string(u).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let set: Option<String> = redis::cmd("SET")
            .arg(self.keys.user(&u.user))
            .arg(json)
            .arg("NX")
            .query_async(&mut c)
            .await?;
        Ok(set.is_some())
    }

    /// Reads a user.
    pub async fn get_user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        let mut c = self.conn.clone();
        let v: Option<String> = c.get(self.keys.user(name)).await?;
        v.map(|s| {
            serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("user {name}: {e}")))
        })
        .transpose()
    }

    /// Writes a producer's profile, replacing an earlier one.
    pub async fn put_producer(&self, p: &ProducerRecord) -> Result<(), StoreError> {
        let json = serde_json::to_string(p).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut c = self.conn.clone();
        let _: () = c.set(self.keys.producer(&p.name), json).await?;
        Ok(())
    }

    /// Stores a new statement and lists it.
    pub async fn create_statement(&self, key: Key, s: &StatementRecord) -> Result<(), StoreError> {
        let json = serde_json::to_string(s).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut c = self.conn.clone();
        // Two slots: the statement's own, then the global list (listed only once stored).
        let _: () = c.set(self.keys.statement(key).text(), json).await?;
        let _: () = c.zadd(self.keys.statements(), key.0, key.0).await?;
        Ok(())
    }

    /// Reads a statement.
    pub async fn get_statement(&self, key: Key) -> Result<Option<StatementRecord>, StoreError> {
        let mut c = self.conn.clone();
        let text: Option<String> = c.get(self.keys.statement(key).text()).await?;
        text.map(|t| {
            serde_json::from_str(&t)
                .map_err(|e| StoreError::Corrupt(format!("statement {key}: {e}")))
        })
        .transpose()
    }

    /// Whether a statement exists (without reading its circuit).
    pub async fn statement_exists(&self, key: Key) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        Ok(c.exists(self.keys.statement(key).text()).await?)
    }

    /// Every statement key, ascending.
    pub async fn statement_keys(&self) -> Result<Vec<Key>, StoreError> {
        let mut c = self.conn.clone();
        let keys: Vec<u64> = c.zrange(self.keys.statements(), 0, -1).await?;
        Ok(keys.into_iter().map(Key).collect())
    }
}

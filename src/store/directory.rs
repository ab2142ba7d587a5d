//! Who and what exists in the market: users, producer profiles and statements, plus
//! the counter that names new objects.
//!
//! These are written once (or replaced whole) with plain commands, outside the
//! transition script: none of them takes part in an order transition.

use std::ops::Range;

use redis::AsyncCommands;

use super::{ProducerRecord, StatementRecord, Store, StoreError, UserRecord};
use crate::domain::{Key, Millis};

impl Store {
    /// Reserves `n` fresh keys (one INCRBY for a whole block).
    pub async fn reserve_keys(&self, n: u64) -> Result<Range<u64>, StoreError> {
        let mut c = self.conn.clone();
        let end: u64 = c.incr(self.keys.seq(), n).await?;
        Ok(end - n + 1..end + 1)
    }

    /// Reserves `n` fresh keys for orders and proofs of `stmt` and registers them as
    /// `stmt`'s (`Store::locate`). Keys reserved by a node that dies before registering
    /// them are never handed out.
    pub async fn reserve_block(&self, stmt: Key, n: u64) -> Result<Range<u64>, StoreError> {
        let keys = self.reserve_keys(n).await?;
        let (first, last) = (keys.start, keys.end - 1);
        let mut c = self.conn.clone();
        let _: i64 = c
            .zadd(self.keys.blocks(), format!("{first}:{last}:{stmt}"), first)
            .await?;
        Ok(keys)
    }

    /// Creates a user under its lowercased name; `false` when the name is taken in any
    /// case.
    pub async fn create_user(&self, u: &UserRecord) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        let json = serde_json::to_string(u).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let set: Option<String> = redis::cmd("SET")
            .arg(self.keys.user(&u.user.to_ascii_lowercase()))
            .arg(json)
            .arg("NX")
            .query_async(&mut c)
            .await?;
        Ok(set.is_some())
    }

    async fn user_at(&self, key: &str) -> Result<Option<UserRecord>, StoreError> {
        let mut c = self.conn.clone();
        let v: Option<String> = c.get(key).await?;
        v.map(|s| serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("{key}: {e}"))))
            .transpose()
    }

    /// Reads a user by name, case-insensitively: the account under the lowercased name,
    /// except that an account created before names were case-insensitive under exactly
    /// `name` wins over a different one there. Reading such an old account claims its
    /// lowercased key, so no new account can take the name in another case.
    pub async fn get_user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        let lower = name.to_ascii_lowercase();
        let claimed = self.user_at(&self.keys.user(&lower)).await?;
        if lower == name || claimed.as_ref().is_some_and(|u| u.user == name) {
            return Ok(claimed);
        }
        match self.user_at(&self.keys.user(name)).await? {
            Some(old) => {
                if claimed.is_none() {
                    let _ = self.create_user(&old).await?;
                }
                Ok(Some(old))
            }
            None => Ok(claimed),
        }
    }

    /// Claims the lowercased name of every account stored under its exact name before
    /// names were case-insensitive, so no new account can take one in another case.
    /// Scans the keyspace once per market (a marker key records that it was done);
    /// `None` on a Redis Cluster, where it is not done (old accounts then claim their
    /// name at their next login). Returns how many names were claimed.
    pub async fn claim_legacy_user_names(&self) -> Result<Option<u64>, StoreError> {
        let super::conn::Conn::Single(m) = &self.conn else {
            return Ok(None);
        };
        let mut c = m.clone();
        let done = self.keys.user_names_lowercased();
        if c.exists(&done).await? {
            return Ok(Some(0));
        }
        let base = self.keys.user("");
        let mut pattern = String::new();
        for ch in base.chars() {
            if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(ch);
        }
        pattern.push('*');
        let (mut cursor, mut claimed) = (0u64, 0u64);
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut c)
                .await?;
            for key in keys {
                let name = &key[base.len()..];
                if name == name.to_ascii_lowercase() {
                    continue;
                }
                if let Some(u) = self.user_at(&key).await? {
                    if u.user == name && self.create_user(&u).await? {
                        claimed += 1;
                    }
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let _: () = c.set(&done, Millis::now().0).await?;
        Ok(Some(claimed))
    }

    /// Replaces a user's record where [`Store::get_user`] finds it (and its claimed
    /// copy under the lowercased name, if that is the same account).
    pub async fn put_user(&self, u: &UserRecord) -> Result<(), StoreError> {
        let json = serde_json::to_string(u).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut c = self.conn.clone();
        let lower = self.keys.user(&u.user.to_ascii_lowercase());
        let exact = self.keys.user(&u.user);
        if self
            .user_at(&lower)
            .await?
            .is_some_and(|old| old.user == u.user)
        {
            let _: () = c.set(&lower, &json).await?;
        }
        if exact != lower {
            let _: Option<String> = redis::cmd("SET")
                .arg(&exact)
                .arg(&json)
                .arg("XX")
                .query_async(&mut c)
                .await?;
        }
        Ok(())
    }

    /// A user's revocation time (Unix ms; 0 when never revoked).
    pub async fn revoked_before(&self, account: &str) -> Result<u64, StoreError> {
        let mut c = self.conn.clone();
        let v: Option<u64> = c.get(self.keys.revoked(account)).await?;
        Ok(v.unwrap_or(0))
    }

    /// Voids a user's tokens issued before `before_ms`; the mark is kept `keep_secs`
    /// (by then every such token is past its maximum age anyway). A later time never
    /// gives way to an earlier one.
    pub async fn revoke_tokens(
        &self,
        account: &str,
        before_ms: u64,
        keep_secs: u64,
    ) -> Result<(), StoreError> {
        let script = redis::Script::new(
            r"local old = tonumber(redis.call('GET', KEYS[1]) or '0')
              local t = tonumber(ARGV[1])
              if t < old then t = old end
              redis.call('SET', KEYS[1], t, 'EX', ARGV[2])
              return t",
        );
        let mut c = self.conn.clone();
        let _: u64 = script
            .key(self.keys.revoked(account))
            .arg(before_ms)
            .arg(keep_secs.max(1))
            .invoke_async(&mut c)
            .await?;
        Ok(())
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
        let head = head_json(s)?;
        let names = self.keys.statement(key);
        let mut c = self.conn.clone();
        // Two slots: the statement's own (text and head together), then the global list
        // (listed only once stored).
        let _: () = redis::pipe()
            .atomic()
            .set(names.text(), json)
            .set(names.head(), head)
            .query_async(&mut c)
            .await?;
        let _: () = c.zadd(self.keys.statements(), key.0, key.0).await?;
        Ok(())
    }

    /// The statements `keys` without their definitions (each read is a few hundred
    /// bytes, however large its circuit), in the order given; `None` for a key with no
    /// statement. A statement stored before heads were written is read whole once and
    /// its head written for next time.
    pub async fn statement_heads(
        &self,
        keys: &[Key],
    ) -> Result<Vec<Option<StatementRecord>>, StoreError> {
        let script = redis::Script::new("return redis.call('GET', KEYS[1])");
        let calls: Vec<_> = keys
            .iter()
            .map(|k| script.key(self.keys.statement(*k).head()))
            .collect();
        let replies = self.eval_each(&script, keys, &calls).await;
        let mut out = Vec::with_capacity(keys.len());
        for (key, reply) in keys.iter().zip(replies) {
            let text: Option<String> = redis::from_redis_value(reply?)
                .map_err(|e| StoreError::Corrupt(format!("statement {key} head: {e}")))?;
            let record = match text {
                Some(t) => Some(
                    serde_json::from_str(&t)
                        .map_err(|e| StoreError::Corrupt(format!("statement {key} head: {e}")))?,
                ),
                None => match self.get_statement(*key).await? {
                    Some(full) => {
                        let head = head_json(&full)?;
                        let mut c = self.conn.clone();
                        let _: () = c.set(self.keys.statement(*key).head(), head).await?;
                        Some(without_definition(full))
                    }
                    None => None,
                },
            };
            out.push(record);
        }
        Ok(out)
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

    /// How many statements are listed (one `ZCARD`). Statements are never removed, so
    /// an unchanged count means that no statement was added.
    pub async fn statement_count(&self) -> Result<u64, StoreError> {
        let mut c = self.conn.clone();
        Ok(c.zcard(self.keys.statements()).await?)
    }

    /// Every statement key, ascending.
    pub async fn statement_keys(&self) -> Result<Vec<Key>, StoreError> {
        let mut c = self.conn.clone();
        let keys: Vec<u64> = c.zrange(self.keys.statements(), 0, -1).await?;
        Ok(keys.into_iter().map(Key).collect())
    }
}

/// A statement without its definition texts.
fn without_definition(mut s: StatementRecord) -> StatementRecord {
    s.definition.proving_key = String::new();
    s.definition.verification_key = String::new();
    s
}

/// The JSON of a statement's head: the statement without its definition.
fn head_json(s: &StatementRecord) -> Result<String, StoreError> {
    let head = StatementRecord {
        definition: Default::default(),
        ..s.clone()
    };
    serde_json::to_string(&head).map_err(|e| StoreError::Corrupt(e.to_string()))
}

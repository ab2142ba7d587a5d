//! Reading a statement's order state back: orders, proofs, the order indexes, proved
//! inputs, remembered idempotency keys, and the locator from an order or proof key to
//! its statement.
//!
//! Everything written here is written by the transition script (`transitions.rs`);
//! these are plain reads, several batched into one pipeline where a caller needs many.

use std::collections::HashMap;

use redis::AsyncCommands;

use super::{OrderRecord, ProofRecord, Store, StoreError};
use crate::domain::{Key, Millis, ScopedKey, Side, Status};

/// The fields of an order a statement's rebuild reads.
const REBUILD_FIELDS: [&str; 16] = [
    "canon",
    "held",
    "proposal_key",
    "request_key",
    "matched_time",
    "price",
    "kind",
    "status",
    "statement_key",
    "cost",
    "eval_time",
    "wait_period",
    "sender",
    "createdOn",
    "updatedOn",
    "seq",
];

impl Store {
    /// The statement an order or proof key belongs to: the one its key block was
    /// reserved for, or for a key made before key blocks, its locator. (A key of a block
    /// that was never used names the block's statement, which does not hold it.)
    pub async fn locate(&self, key: Key) -> Result<Option<Key>, StoreError> {
        let mut c = self.conn.clone();
        let block: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.keys.blocks())
            .arg(key.0)
            .arg("-inf")
            .arg("BYSCORE")
            .arg("REV")
            .arg("LIMIT")
            .arg(0)
            .arg(1)
            .query_async(&mut c)
            .await?;
        if let Some(b) = block.first() {
            let bad = || StoreError::Corrupt(format!("key block {b:?}"));
            let mut it = b.split(':').map(|n| n.parse::<u64>().map_err(|_| bad()));
            let (Some(first), Some(last), Some(stmt)) = (it.next(), it.next(), it.next()) else {
                return Err(bad());
            };
            if (first?..=last?).contains(&key.0) {
                return Ok(Some(Key(stmt?)));
            }
        }
        let v: Option<u64> = c.get(self.keys.locator(key)).await?;
        Ok(v.map(Key))
    }

    /// Reads an order.
    pub async fn get_order(&self, stmt: Key, key: Key) -> Result<Option<OrderRecord>, StoreError> {
        let name = self.keys.statement(stmt).order(key);
        self.read_hash(name, |h| OrderRecord::from_hash(key, h))
            .await
    }

    /// Whether these proof bytes were accepted for a match of `stmt` already.
    pub async fn proof_seen(&self, stmt: Key, proof: &[u8]) -> Result<bool, StoreError> {
        let digest = super::transitions::proof_digest(&hex::encode(proof));
        let mut c = self.conn.clone();
        Ok(c.sismember(self.keys.statement(stmt).seen_proofs(), digest)
            .await?)
    }

    /// Whether `user` paid for proof `proof` of `stmt` (see `keys`: `buyers`).
    pub async fn is_proof_buyer(
        &self,
        stmt: Key,
        proof: Key,
        user: &str,
    ) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        Ok(
            c.sismember(self.keys.statement(stmt).proof_buyers(proof), user)
                .await?,
        )
    }

    /// One proof of a statement, if Redis holds it.
    pub async fn get_proof(&self, stmt: Key, key: Key) -> Result<Option<ProofRecord>, StoreError> {
        let name = self.keys.statement(stmt).proof(key);
        self.read_hash(name, |h| ProofRecord::from_hash(key, h))
            .await
    }

    /// Reads the hash `name` and parses it; `None` when it does not exist.
    async fn read_hash<T>(
        &self,
        name: String,
        parse: impl FnOnce(&HashMap<String, String>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let mut c = self.conn.clone();
        let h: HashMap<String, String> = c.hgetall(name).await?;
        if h.is_empty() {
            return Ok(None);
        }
        parse(&h).map(Some)
    }

    /// Keys of a statement's orders of one side and status, ascending, at most `max`.
    pub async fn order_keys(
        &self,
        stmt: Key,
        side: Side,
        status: Status,
        max: usize,
    ) -> Result<Vec<Key>, StoreError> {
        let mut c = self.conn.clone();
        let ix = self.keys.statement(stmt).index(side, status);
        let stop = if max == 0 {
            return Ok(Vec::new());
        } else {
            max as isize - 1
        };
        let keys: Vec<u64> = c.zrange(ix, 0, stop).await?;
        Ok(keys.into_iter().map(Key).collect())
    }

    /// Reads many orders of one statement in one round trip; missing ones are skipped.
    pub async fn get_orders(
        &self,
        stmt: Key,
        keys: &[Key],
    ) -> Result<Vec<OrderRecord>, StoreError> {
        self.read_orders(stmt, keys, None).await
    }

    /// Reads orders in pipelines of 1000: every field, or only `fields` (the others
    /// read as absent).
    async fn read_orders(
        &self,
        stmt: Key,
        keys: &[Key],
        fields: Option<&[&str]>,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        let names = self.keys.statement(stmt);
        for chunk in keys.chunks(1000) {
            let mut p = redis::pipe();
            for k in chunk {
                match fields {
                    None => p.hgetall(names.order(*k)),
                    Some(f) => p.cmd("HMGET").arg(names.order(*k)).arg(f),
                };
            }
            let mut c = self.conn.clone();
            let hs: Vec<HashMap<String, String>> = match fields {
                None => p.query_async(&mut c).await?,
                Some(f) => {
                    let rows: Vec<Vec<Option<String>>> = p.query_async(&mut c).await?;
                    rows.into_iter()
                        .map(|row| {
                            f.iter()
                                .zip(row)
                                .filter_map(|(name, v)| Some((name.to_string(), v?)))
                                .collect()
                        })
                        .collect()
                }
            };
            for (k, h) in chunk.iter().zip(hs) {
                if !h.is_empty() {
                    out.push(OrderRecord::from_hash(*k, &h)?);
                }
            }
        }
        Ok(out)
    }

    /// Every open (`created` or `processing`) order of a statement, for rebuilding its
    /// state: only the fields the book, the deadlines and the per-user quotas use
    /// ([`REBUILD_FIELDS`]), not inputs, so a rebuild reads a few dozen bytes per order
    /// whatever the orders hold.
    pub async fn open_orders(&self, stmt: Key) -> Result<Vec<OrderRecord>, StoreError> {
        let mut out = Vec::new();
        for side in [Side::Request, Side::Proposal] {
            for status in [Status::Created, Status::Processing] {
                let keys = self.order_keys(stmt, side, status, usize::MAX / 2).await?;
                out.extend(self.read_orders(stmt, &keys, Some(&REBUILD_FIELDS)).await?);
            }
        }
        Ok(out)
    }

    /// The proved inputs of a statement: canonical input → proof key.
    /// Who made each proof of a statement and the price it was paid: proof → (producer,
    /// price in micro-units). Proofs stored before resales were paid have no entry.
    pub async fn resale_prices(
        &self,
        stmt: Key,
    ) -> Result<HashMap<Key, (String, u64)>, StoreError> {
        let mut c = self.conn.clone();
        let h: HashMap<u64, String> = c.hgetall(self.keys.statement(stmt).resale()).await?;
        Ok(h.into_iter()
            .filter_map(|(k, v)| {
                let (who, price) = v.rsplit_once('|')?;
                Some((Key(k), (who.to_owned(), price.parse().ok()?)))
            })
            .collect())
    }

    /// The proved inputs of a statement: canonical input → proof key.
    pub async fn proven_inputs(&self, stmt: Key) -> Result<HashMap<String, Key>, StoreError> {
        let mut c = self.conn.clone();
        let h: HashMap<String, u64> = c.hgetall(self.keys.statement(stmt).proven()).await?;
        Ok(h.into_iter().map(|(k, v)| (k, Key(v))).collect())
    }

    /// The idempotency keys a statement remembers: scoped key → (order, when placed, by
    /// whom). Entries written before the sender was stored have none.
    pub async fn idempotency_keys(
        &self,
        stmt: Key,
    ) -> Result<HashMap<ScopedKey, Remembered>, StoreError> {
        let mut c = self.conn.clone();
        let h: HashMap<String, String> = c.hgetall(self.keys.statement(stmt).idempotency()).await?;
        h.into_iter()
            .map(|(k, v)| {
                let mut parts = v.splitn(3, ':');
                let parsed = (|| {
                    let order = Key(parts.next()?.parse().ok()?);
                    let at = Millis(parts.next()?.parse().ok()?);
                    let sender = parts.next().filter(|s| !s.is_empty()).map(str::to_owned);
                    Some(Remembered { order, at, sender })
                })();
                ScopedKey::from_hex(&k)
                    .zip(parsed)
                    .ok_or_else(|| StoreError::Corrupt(format!("idempotency entry {k:?}: {v:?}")))
            })
            .collect()
    }
}

/// What a remembered idempotency key says (stored as `<order>:<millis>:<sender>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remembered {
    /// The order it placed.
    pub order: Key,
    /// When.
    pub at: Millis,
    /// Who placed it (user names have no `:`).
    pub sender: Option<String>,
}

//! Keys for new objects, reserved from Redis in blocks.
//!
//! Orders and proofs take their keys from blocks reserved for their statement: each
//! block is registered once in `P:blocks` (`Store::reserve_block`), so a key's statement
//! is found from the block that holds it (`Store::locate`) and placing an order writes
//! no key of its own outside its statement's slot. Statements take theirs from blocks
//! of no statement.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Mutex;

use crate::domain::Key;

use super::{Store, StoreError};

/// A statement's first block, in keys; each next one is twice the last, up to
/// [`KeyAllocator::new`]'s block: a statement that sees few orders wastes few keys.
const FIRST_BLOCK: u64 = 16;

/// Hands out keys from blocks reserved in Redis with one `INCRBY` each (and, for a
/// statement's keys, one `ZADD` registering the block), so creating an object costs no
/// extra round trip. Keys lost in a crash leave gaps, which is fine.
pub struct KeyAllocator {
    block: u64,
    free: Mutex<Range<u64>>,
    /// Per statement: the keys left in its block, and the size of its next block.
    statements: Mutex<HashMap<Key, (Range<u64>, u64)>>,
}

impl KeyAllocator {
    /// An allocator reserving up to `block` keys at a time.
    pub fn new(block: u64) -> KeyAllocator {
        KeyAllocator {
            block: block.max(1),
            free: Mutex::new(0..0),
            statements: Mutex::default(),
        }
    }

    /// A fresh key of no statement (for a statement itself).
    pub async fn next(&self, store: &Store) -> Result<Key, StoreError> {
        loop {
            if let Some(k) = self.free.lock().unwrap_or_else(|p| p.into_inner()).next() {
                return Ok(Key(k));
            }
            // Reserve outside the lock; concurrent refills just waste a block.
            let fresh = store.reserve_keys(self.block).await?;
            let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
            if free.is_empty() {
                *free = fresh;
            }
        }
    }

    /// A fresh key for an order or proof of `stmt`, from a block registered as
    /// `stmt`'s.
    pub async fn next_in(&self, store: &Store, stmt: Key) -> Result<Key, StoreError> {
        loop {
            let size = {
                let mut all = self.statements.lock().unwrap_or_else(|p| p.into_inner());
                let (free, next) = all
                    .entry(stmt)
                    .or_insert((0..0, FIRST_BLOCK.min(self.block)));
                if let Some(k) = free.next() {
                    return Ok(Key(k));
                }
                *next
            };
            let fresh = store.reserve_block(stmt, size).await?;
            let mut all = self.statements.lock().unwrap_or_else(|p| p.into_inner());
            let (free, next) = all.entry(stmt).or_insert((0..0, size));
            if free.is_empty() {
                *free = fresh;
                *next = size.saturating_mul(2).min(self.block);
            }
        }
    }
}

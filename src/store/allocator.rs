//! Keys for new objects, reserved from Redis in blocks.

use std::ops::Range;
use std::sync::Mutex;

use crate::domain::Key;

use super::{Store, StoreError};

/// Hands out keys from blocks reserved in Redis with one `INCRBY` each, so creating an
/// object costs no extra round trip. Keys lost in a crash leave gaps, which is fine.
pub struct KeyAllocator {
    block: u64,
    free: Mutex<Range<u64>>,
}

impl KeyAllocator {
    /// An allocator reserving `block` keys at a time.
    pub fn new(block: u64) -> KeyAllocator {
        KeyAllocator {
            block: block.max(1),
            free: Mutex::new(0..0),
        }
    }

    /// A fresh key.
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
}

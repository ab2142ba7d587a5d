//! What the criterion benches share: per-block samples for their ratio tables, and a
//! small deterministic generator.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// ns/op of every timed block, per benchmark, for the ratio table printed after
/// criterion's report.
pub static SAMPLES: Mutex<BTreeMap<&'static str, Vec<f64>>> = Mutex::new(BTreeMap::new());

/// Records a timed block of `ops` operations of `name`.
pub fn note(name: &'static str, elapsed: Duration, ops: u64) {
    if ops > 0 {
        let ns = elapsed.as_nanos() as f64 / ops as f64;
        SAMPLES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name)
            .or_default()
            .push(ns);
    }
}

/// The median of `v` (sorted in place); NaN when empty.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// xorshift64*: fast, deterministic.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

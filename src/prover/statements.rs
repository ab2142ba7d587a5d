//! Statement circuits: the zkLLVM IR of a statement compiled once, its proving keys
//! made once, both cached per statement ([`StatementCircuits`]). This is where the
//! market meets the proving stack: the compiler (`crate::circuit`) makes the program,
//! [`super::halo2`] proves and verifies it, and the answers become market errors.
//!
//! Admission ([`CircuitPolicy`]): a circuit whose table would need more than
//! `2^max_k` rows is refused at `statement push`, with the limit named, and the
//! compiler itself stops unrolling soon after that size, so neither compiling nor
//! keygen, proving or verifying the largest accepted circuit costs more than seconds.
//! Keys are built in the background right after a statement is accepted (and again if
//! the cache dropped them), never because a proof arrived: a pushed proof is first
//! checked for its exact length, which depends only on `k`. The cache is an LRU
//! bounded by the estimated memory of programs and keys. Everything here is CPU work
//! and runs on the pools (`super::pool`).

use std::sync::{Arc, Mutex, OnceLock};

use lru::LruCache;

use crate::circuit::compile::{compile_with_limits, ErrorKind, Limits};
use crate::circuit::program::{Fe, Program, ProgramError};
use crate::domain::Key;
use crate::error::MarketError;
use crate::input::{outputs_to_text, PublicInput};
use crate::prover::halo2::{self, CircuitKeys, ProverError};
use crate::prover::halo2_circuit::{min_k, usable_rows, usable_rows_needed, MAX_K};
use crate::prover::pool::Pools;
use crate::store::Store;

/// What a node accepts and keeps of circuits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitPolicy {
    /// The largest accepted table has `2^max_k` rows (at most [`MAX_K`]).
    pub max_k: u32,
    /// Memory the cache of compiled circuits and their keys may use, in bytes.
    pub cache_bytes: usize,
}

/// Default `--max-circuit-k`: keygen, proving and verifying the largest accepted
/// circuit each take a few seconds at most on a 2-core machine (see README,
/// "Circuit admission", for the measured costs per `k`).
pub const DEFAULT_MAX_K: u32 = 13;

impl Default for CircuitPolicy {
    fn default() -> Self {
        CircuitPolicy {
            max_k: DEFAULT_MAX_K,
            cache_bytes: 512 << 20,
        }
    }
}

impl CircuitPolicy {
    /// The compiler's caps for this policy: the unrolled program may have up to four
    /// times the table's rows before dead code is removed, and symbolic execution may
    /// take 256 steps per such instruction (loop bookkeeping), within the compiler's
    /// own defaults.
    fn compile_limits(&self) -> Limits {
        let rows = usable_rows(self.max_k.min(MAX_K)).unwrap_or(1);
        let d = Limits::default();
        let max_instrs = rows.saturating_mul(4).min(d.max_instrs);
        Limits {
            max_instrs,
            max_steps: (max_instrs as u64).saturating_mul(256).min(d.max_steps),
            ..d
        }
    }

    fn too_large(&self, what: String) -> String {
        format!(
            "circuit: too large for this market: {what}; the limit is a table of 2^{} rows \
             (the node's --max-circuit-k)",
            self.max_k
        )
    }
}

/// Estimated heap bytes of a proving key per table row (measured: the `cost_by_k`
/// test in `halo2` prints the growth of the resident set per keygen).
const KEY_BYTES_PER_ROW: usize = 1536;

/// The same for the `Sha256Layout` (programs with a SHA-256 call). Not measured: a
/// proving key holds about four field elements per row for each fixed column (selectors
/// included) and each equality-enabled column, and that layout has 11 equality-enabled
/// columns against 4 and about twice the fixed ones, so this charges ~2.7 times the
/// plain figure.
const SHA256_KEY_BYTES_PER_ROW: usize = 4096;

/// A compiled statement circuit with lazily built keys.
pub struct StatementCircuit {
    program: Program,
    function_name: String,
    params: Vec<usize>,
    k: u32,
    keys: OnceLock<Result<Arc<CircuitKeys>, String>>,
}

impl std::fmt::Debug for StatementCircuit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatementCircuit")
            .field("function", &self.function_name)
            .field("inputs", &self.program.num_inputs())
            .field("instructions", &self.program.instrs().len())
            .field("k", &self.k)
            .finish()
    }
}

impl StatementCircuit {
    /// Compiles IR text up to the largest size this prover handles ([`MAX_K`]): what a
    /// producer or a client uses; a market node admits statements with
    /// [`StatementCircuit::compile_under`] its own policy.
    pub fn compile(ir: &str) -> Result<StatementCircuit, String> {
        let anything = CircuitPolicy {
            max_k: MAX_K,
            ..CircuitPolicy::default()
        };
        StatementCircuit::compile_under(ir, &anything)
    }

    /// Compiles IR text; errors are client errors that name the construct and line, or
    /// the size limit.
    pub fn compile_under(ir: &str, policy: &CircuitPolicy) -> Result<StatementCircuit, String> {
        let limits = policy.compile_limits();
        let c = compile_with_limits(ir, limits).map_err(|e| match e.kind() {
            ErrorKind::ProgramTooLarge(n) => {
                policy.too_large(format!("it unrolls to more than {n} instructions"))
            }
            _ => format!("circuit: {e}"),
        })?;
        let rows = usable_rows_needed(&c.program);
        let k = match min_k(&c.program) {
            Ok(k) if k <= policy.max_k => k,
            Ok(k) => return Err(policy.too_large(format!("it needs {rows} rows (2^{k})"))),
            Err(rows) => return Err(policy.too_large(format!("it needs {rows} rows"))),
        };
        Ok(StatementCircuit {
            program: c.program,
            function_name: c.function_name,
            params: c.params,
            k,
            keys: OnceLock::new(),
        })
    }

    /// The straight-line program.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// Field elements each circuit parameter takes (1, or N for `<N x field>`).
    pub fn params(&self) -> &[usize] {
        &self.params
    }

    /// Checks an input against the circuit: its structure (if it gives one), its
    /// arity, and that the circuit has outputs on it. Returns the outputs.
    pub fn evaluate_input(&self, input: &PublicInput) -> Result<Vec<Fe>, String> {
        input
            .check_groups(&self.params)
            .map_err(|e| e.to_string())?;
        self.evaluate(&input.values)
    }

    /// The circuit function's (mangled) name.
    pub fn function_name(&self) -> &str {
        &self.function_name
    }

    /// The table has `2^k` rows.
    pub fn k(&self) -> u32 {
        self.k
    }

    /// Estimated memory of the program and its keys (once built), in bytes: what the
    /// cache charges for it.
    pub fn estimated_bytes(&self) -> usize {
        let program = std::mem::size_of_val(self.program.instrs());
        let per_row = if crate::prover::halo2_circuit::uses_sha256(&self.program) {
            SHA256_KEY_BYTES_PER_ROW
        } else {
            KEY_BYTES_PER_ROW
        };
        program.saturating_add((1usize << self.k).saturating_mul(per_row))
    }

    /// The proving/verifying keys, made on first call (slow: call on a pool).
    pub fn keys(&self) -> Result<Arc<CircuitKeys>, String> {
        self.keys
            .get_or_init(|| {
                let started = std::time::Instant::now();
                let r = CircuitKeys::setup(&self.program).map(Arc::new).map_err(|e| e.to_string());
                tracing::info!(function = %self.function_name, k = self.k, millis = started.elapsed().as_millis() as u64, ok = r.is_ok(), "circuit keys made");
                r
            })
            .clone()
    }

    /// Whether the keys are built.
    pub fn has_keys(&self) -> bool {
        self.keys.get().is_some()
    }

    /// Checks an input against the circuit: arity, and that the circuit has outputs
    /// on it (no division by zero). Returns the outputs, in order.
    pub fn evaluate(&self, inputs: &[Fe]) -> Result<Vec<Fe>, String> {
        self.program.eval(inputs).map_err(|e| match e {
            ProgramError::DivisionByZero { .. } => {
                format!("input: the circuit divides by zero on this input, so no proof of it can exist ({e})")
            }
            other => format!("input: {other}"),
        })
    }

    /// Refuses a proof of the wrong length before any other work: every proof of a
    /// circuit has the same length, which depends only on `k`.
    pub fn check_proof_len(&self, proof: &[u8]) -> Result<(), MarketError> {
        let want = halo2::program_proof_len(&self.program, self.k)
            .map_err(|e| MarketError::Internal(e.to_string()))?;
        if proof.len() == want {
            return Ok(());
        }
        Err(MarketError::BadRequest(format!(
            "proof rejected: it has {} bytes; every proof of this statement has exactly {want}",
            proof.len()
        )))
    }

    /// Verifies a proof that the circuit maps `inputs` to the outputs the market
    /// computes itself. Returns those outputs.
    pub fn verify(&self, inputs: &[Fe], proof: &[u8]) -> Result<Vec<Fe>, MarketError> {
        self.check_proof_len(proof)?;
        let outputs = self.evaluate(inputs).map_err(MarketError::BadRequest)?;
        let keys = self.keys().map_err(MarketError::Internal)?;
        halo2::verify(&keys, inputs, &outputs, proof).map_err(|e| match e {
            ProverError::InvalidProof => MarketError::BadRequest(format!(
                "proof rejected: it does not verify for this statement, input and output ({})",
                outputs_to_text(&outputs)
            )),
            other => MarketError::BadRequest(format!("proof rejected: {other}")),
        })?;
        Ok(outputs)
    }

    /// Proves the circuit on `inputs`; returns its outputs and the proof.
    pub fn prove(&self, inputs: &[Fe]) -> Result<(Vec<Fe>, Vec<u8>), String> {
        let keys = self.keys()?;
        let p = halo2::prove(&keys, &self.program, inputs).map_err(|e| e.to_string())?;
        Ok((p.outputs, p.proof))
    }
}

/// An LRU of values charged a size each, kept within a byte budget.
struct Cache<V> {
    lru: LruCache<Key, (V, usize)>,
    bytes: usize,
    budget: usize,
}

impl<V: Clone> Cache<V> {
    fn new(budget: usize) -> Cache<V> {
        Cache {
            lru: LruCache::unbounded(),
            bytes: 0,
            budget,
        }
    }

    /// The value of `key`, marked as just used.
    fn get(&mut self, key: Key) -> Option<V> {
        self.lru.get(&key).map(|(v, _)| v.clone())
    }

    /// Adds (or replaces) `key`, then drops the least recently used entries while over
    /// budget, never the one just added. Returns the keys dropped.
    fn put(&mut self, key: Key, value: V, bytes: usize) -> Vec<Key> {
        if let Some((_, old)) = self.lru.put(key, (value, bytes)) {
            self.bytes = self.bytes.saturating_sub(old);
        }
        self.bytes = self.bytes.saturating_add(bytes);
        let mut dropped = Vec::new();
        while self.bytes > self.budget && self.lru.len() > 1 {
            match self.lru.pop_lru() {
                Some((k, (_, b))) => {
                    self.bytes = self.bytes.saturating_sub(b);
                    dropped.push(k);
                }
                None => break,
            }
        }
        dropped
    }
}

/// The compiled circuit of each statement, filled on demand from the store and bounded
/// by memory.
pub struct StatementCircuits {
    store: Store,
    pools: Pools,
    policy: CircuitPolicy,
    cache: Mutex<Cache<Arc<StatementCircuit>>>,
}

impl StatementCircuits {
    /// An empty cache.
    pub fn new(store: Store, pools: Pools, policy: CircuitPolicy) -> StatementCircuits {
        StatementCircuits {
            store,
            pools,
            policy,
            cache: Mutex::new(Cache::new(policy.cache_bytes)),
        }
    }

    /// The work pools.
    pub fn pools(&self) -> &Pools {
        &self.pools
    }

    /// What this node accepts and keeps.
    pub fn policy(&self) -> &CircuitPolicy {
        &self.policy
    }

    /// Compiles IR on the circuit pool (a new statement), without caching it yet.
    pub async fn compile(&self, ir: String) -> Result<StatementCircuit, MarketError> {
        self.compile_on_pool(ir)
            .await?
            .map_err(MarketError::BadRequest)
    }

    /// Compiles IR on the pool; the outer error is the pool's, the inner the compiler's.
    async fn compile_on_pool(
        &self,
        ir: String,
    ) -> Result<Result<StatementCircuit, String>, MarketError> {
        let policy = self.policy;
        self.pools
            .circuit
            .run("compile", move || {
                StatementCircuit::compile_under(&ir, &policy)
            })
            .await
    }

    /// Remembers a statement's circuit, dropping the least recently used ones while the
    /// cache is over its budget (never the one just added), and starts building its keys
    /// in the background.
    pub fn insert(&self, stmt: Key, c: StatementCircuit) -> Arc<StatementCircuit> {
        let c = Arc::new(c);
        let dropped = self.cache.lock().unwrap_or_else(|p| p.into_inner()).put(
            stmt,
            c.clone(),
            c.estimated_bytes(),
        );
        for gone in dropped {
            tracing::info!(statement = %gone, "circuit dropped from the cache");
        }
        self.warm(stmt, c.clone());
        c
    }

    /// Builds the keys of `c` on the verification pool in the background, so that the
    /// first proof (or a garbage one) never pays for them. A full pool leaves it to the
    /// first verification.
    fn warm(&self, stmt: Key, c: Arc<StatementCircuit>) {
        if c.has_keys() {
            return;
        }
        let pool = self.pools.verify.clone();
        actix::spawn(async move {
            match pool.run("keygen", move || c.keys().map(|_| ())).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(statement = %stmt, error = %e, "keygen failed"),
                Err(e) => tracing::info!(statement = %stmt, error = %e, "keygen left for later"),
            }
        });
    }

    /// Circuits cached now, and the bytes they are charged.
    pub fn cached(&self) -> (usize, usize) {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        (cache.lru.len(), cache.bytes)
    }

    /// A statement's circuit, compiled from the stored statement on first use.
    pub async fn get(&self, stmt: Key) -> Result<Arc<StatementCircuit>, MarketError> {
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(stmt);
        if let Some(c) = cached {
            return Ok(c);
        }
        let ir = self
            .store
            .get_statement(stmt)
            .await?
            .ok_or_else(|| MarketError::NotFound(format!("no statement {stmt}")))?
            .definition
            .proving_key;
        let c = self.compile_on_pool(ir).await?.map_err(|e| {
            MarketError::Internal(format!(
                "stored statement {stmt} does not compile here: {e}"
            ))
        })?;
        Ok(self.insert(stmt, c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::parse_canonical;

    const EXAMPLE: &str = include_str!("../../example/statements/arithmetic.ll");

    #[test]
    fn the_example_circuit_proves_and_verifies() {
        let c = StatementCircuit::compile(EXAMPLE).unwrap();
        let inputs = parse_canonical("1,11").unwrap();
        let out = c.evaluate(&inputs).unwrap();
        assert_eq!(
            outputs_to_text(&out),
            "0x0cccccccccccccccccccccccccccccccd3a7b8326842aa6d0eb4cd0e7fc4e9be"
        );
        let (o, proof) = c.prove(&inputs).unwrap();
        assert_eq!(o, out);
        assert_eq!(c.verify(&inputs, &proof).unwrap(), out);
        let swapped = parse_canonical("11,1").unwrap();
        assert!(c.verify(&swapped, &proof).is_err());
        let mut bad = proof.clone();
        bad[10] ^= 1;
        assert!(c.verify(&inputs, &bad).is_err());
        assert!(c
            .evaluate(&parse_canonical("3,3").unwrap())
            .unwrap_err()
            .contains("divides by zero"));
        assert!(c.evaluate(&parse_canonical("3").unwrap()).is_err());
    }

    /// A loop adding `%x` to itself `n` times: about `n` instructions.
    fn loop_ir(n: u64) -> String {
        format!(
            "define __zkllvm_field_pallas_base @f(__zkllvm_field_pallas_base %x) circuit {{\n\
             entry:\n  br label %l\nl:\n\
               %i = phi i64 [ 0, %entry ], [ %j, %l ]\n\
               %acc = phi __zkllvm_field_pallas_base [ %x, %entry ], [ %n, %l ]\n\
               %n = add __zkllvm_field_pallas_base %acc, %x\n\
               %j = add i64 %i, 1\n\
               %c = icmp slt i64 %j, {n}\n\
               br i1 %c, label %l, label %e\n\
             e:\n  ret __zkllvm_field_pallas_base %n\n}}\n"
        )
    }

    #[test]
    fn circuits_over_the_size_limit_are_refused_with_the_limit_named() {
        let policy = CircuitPolicy {
            max_k: 10,
            ..CircuitPolicy::default()
        };
        // 1018 usable rows at k = 10.
        let c = StatementCircuit::compile_under(&loop_ir(1000), &policy).unwrap();
        assert_eq!(c.k(), 10);
        let e = StatementCircuit::compile_under(&loop_ir(1100), &policy).unwrap_err();
        assert!(
            e.contains("1100 rows (2^11)") && e.contains("2^10") && e.contains("--max-circuit-k"),
            "{e}"
        );
        // A loop of a million stops unrolling at four times the rows, not at a million.
        let e = StatementCircuit::compile_under(&loop_ir(1_000_000), &policy).unwrap_err();
        assert!(
            e.contains("more than 4072 instructions") && e.contains("--max-circuit-k"),
            "{e}"
        );
        // A loop that never ends stops at the step cap.
        let e = StatementCircuit::compile_under(
            &loop_ir(u64::MAX >> 1).replace("%n = add", "%n = sub"),
            &policy,
        );
        assert!(e.is_err());
        // Without a policy (producers, clients): the prover's own limit.
        assert_eq!(StatementCircuit::compile(&loop_ir(1100)).unwrap().k(), 11);
    }

    #[test]
    fn proofs_of_the_wrong_length_are_refused_before_any_key_is_built() {
        let c = StatementCircuit::compile(EXAMPLE).unwrap();
        let inputs = parse_canonical("1,11").unwrap();
        for junk in [vec![0u8], vec![1u8; 5000]] {
            match c.verify(&inputs, &junk) {
                Err(MarketError::BadRequest(m)) => assert!(m.contains("exactly"), "{m}"),
                other => panic!("{other:?}"),
            }
        }
        assert!(!c.has_keys());
        let right = halo2::proof_len(c.k()).unwrap();
        assert!(c.verify(&inputs, &vec![1u8; right]).is_err());
        assert!(c.has_keys());
    }

    #[test]
    fn the_cache_drops_least_recently_used_within_its_budget() {
        let mut cache = Cache::new(100);
        assert!(cache.put(Key(1), 'a', 40).is_empty());
        assert!(cache.put(Key(2), 'b', 40).is_empty());
        assert_eq!(cache.get(Key(1)), Some('a'));
        // 120 > 100: 2 is the least recently used.
        assert_eq!(cache.put(Key(3), 'c', 40), vec![Key(2)]);
        assert_eq!(cache.get(Key(2)), None);
        assert_eq!(cache.bytes, 80);
        // Replacing an entry charges its new size only.
        assert!(cache.put(Key(3), 'C', 50).is_empty());
        assert_eq!(cache.bytes, 90);
        // One entry over the whole budget stays (alone).
        assert_eq!(cache.put(Key(4), 'd', 500), vec![Key(1), Key(3)]);
        assert_eq!(cache.get(Key(4)), Some('d'));
        assert_eq!(cache.bytes, 500);
    }

    #[test]
    fn unsupported_ir_names_the_line() {
        let bad = EXAMPLE.replace("%diff = sub", "%diff = fsub");
        let e = StatementCircuit::compile(&bad).unwrap_err();
        assert!(e.contains("line") && e.contains("fsub"), "{e}");
    }
}

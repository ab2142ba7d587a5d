//! Statement circuits: the zkLLVM IR of a statement compiled once, its proving keys
//! made once, both cached per statement ([`StatementCircuits`]). This is where the
//! market meets the proving stack: the compiler (`crate::circuit`) makes the program,
//! [`super::halo2`] proves and verifies it, and the answers become market errors.
//!
//! Compiling checks a statement at push time (a 400 names the unsupported construct and
//! its line). Keys are derived lazily on first use — the first verification or proof —
//! and kept for the life of the process; never per proof. Everything here is CPU work
//! and runs on the prover pool.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use crate::circuit::compile::compile;
use crate::circuit::program::{Fe, Program, ProgramError};
use crate::domain::Key;
use crate::error::MarketError;
use crate::input::fe_to_hex;
use crate::prover::halo2::{self, CircuitKeys, ProverError};
use crate::prover::halo2_circuit::{min_k, MAX_K};
use crate::prover::pool::ProverPool;
use crate::store::Store;

/// A compiled statement circuit with lazily built keys.
pub struct StatementCircuit {
    program: Program,
    function_name: String,
    keys: OnceLock<Result<Arc<CircuitKeys>, String>>,
}

impl std::fmt::Debug for StatementCircuit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatementCircuit")
            .field("function", &self.function_name)
            .field("inputs", &self.program.num_inputs())
            .field("instructions", &self.program.instrs().len())
            .finish()
    }
}

impl StatementCircuit {
    /// Compiles IR text; errors are client errors that name the construct and line.
    pub fn compile(ir: &str) -> Result<StatementCircuit, String> {
        let c = compile(ir).map_err(|e| format!("circuit: {e}"))?;
        if let Err(rows) = min_k(&c.program) {
            return Err(format!(
                "circuit: too large to prove here ({rows} rows; the limit is 2^{MAX_K} rows)"
            ));
        }
        Ok(StatementCircuit {
            program: c.program,
            function_name: c.function_name,
            keys: OnceLock::new(),
        })
    }

    /// The straight-line program.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// The circuit function's (mangled) name.
    pub fn function_name(&self) -> &str {
        &self.function_name
    }

    /// The proving/verifying keys, made on first call (slow: call on the pool).
    pub fn keys(&self) -> Result<Arc<CircuitKeys>, String> {
        self.keys
            .get_or_init(|| {
                let started = std::time::Instant::now();
                let r = CircuitKeys::setup(&self.program).map(Arc::new).map_err(|e| e.to_string());
                tracing::info!(function = %self.function_name, millis = started.elapsed().as_millis() as u64, ok = r.is_ok(), "circuit keys made");
                r
            })
            .clone()
    }

    /// Checks an input against the circuit: arity, and that the circuit has an output
    /// on it (no division by zero). Returns the output.
    pub fn evaluate(&self, inputs: &[Fe]) -> Result<Fe, String> {
        self.program.eval(inputs).map_err(|e| match e {
            ProgramError::DivisionByZero { .. } => {
                format!("input: the circuit divides by zero on this input, so no proof of it can exist ({e})")
            }
            other => format!("input: {other}"),
        })
    }

    /// Verifies a proof that the circuit maps `inputs` to the output the market computes
    /// itself. Returns that output.
    pub fn verify(&self, inputs: &[Fe], proof: &[u8]) -> Result<Fe, MarketError> {
        let output = self.evaluate(inputs).map_err(MarketError::BadRequest)?;
        let keys = self.keys().map_err(MarketError::Internal)?;
        halo2::verify(&keys, inputs, output, proof).map_err(|e| match e {
            ProverError::InvalidProof => MarketError::BadRequest(format!(
                "proof rejected: it does not verify for this statement, input and output ({})",
                fe_to_hex(output)
            )),
            other => MarketError::BadRequest(format!("proof rejected: {other}")),
        })?;
        Ok(output)
    }

    /// Proves the circuit on `inputs`.
    pub fn prove(&self, inputs: &[Fe]) -> Result<(Fe, Vec<u8>), String> {
        let keys = self.keys()?;
        let p = halo2::prove(&keys, &self.program, inputs).map_err(|e| e.to_string())?;
        Ok((p.output, p.proof))
    }
}

/// The compiled circuit of each statement, filled on demand from the store.
pub struct StatementCircuits {
    store: Store,
    pool: ProverPool,
    map: RwLock<HashMap<Key, Arc<StatementCircuit>>>,
}

impl StatementCircuits {
    /// An empty cache.
    pub fn new(store: Store, pool: ProverPool) -> StatementCircuits {
        StatementCircuits {
            store,
            pool,
            map: RwLock::new(HashMap::new()),
        }
    }

    /// The prover pool.
    pub fn pool(&self) -> &ProverPool {
        &self.pool
    }

    /// Compiles IR on the pool (a new statement), without caching it yet.
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
        self.pool
            .run("compile", move || StatementCircuit::compile(&ir))
            .await
    }

    /// Remembers a statement's circuit.
    pub fn insert(&self, stmt: Key, c: StatementCircuit) -> Arc<StatementCircuit> {
        let c = Arc::new(c);
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(stmt, c.clone());
        c
    }

    /// A statement's circuit, compiled from the stored statement on first use.
    pub async fn get(&self, stmt: Key) -> Result<Arc<StatementCircuit>, MarketError> {
        if let Some(c) = self
            .map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&stmt)
        {
            return Ok(c.clone());
        }
        let ir = self
            .store
            .get_statement(stmt)
            .await?
            .ok_or_else(|| MarketError::NotFound(format!("no statement {stmt}")))?
            .definition
            .proving_key;
        let c = self.compile_on_pool(ir).await?.map_err(|e| {
            MarketError::Internal(format!("stored statement {stmt} no longer compiles: {e}"))
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
            fe_to_hex(out),
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

    #[test]
    fn unsupported_ir_names_the_line() {
        let bad = EXAMPLE.replace("%diff = sub", "%diff = fsub");
        let e = StatementCircuit::compile(&bad).unwrap_err();
        assert!(e.contains("line") && e.contains("fsub"), "{e}");
    }
}

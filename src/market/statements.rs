//! Statements: circuits registered on the market.

use crate::domain::{Key, Millis, UserName};
use crate::error::MarketError;
use crate::store::{Definition, StatementRecord};

use super::Market;

/// A statement as a client pushes it, parsed and checked for shape and size.
#[derive(Debug, Clone)]
pub struct NewStatement {
    /// Short title.
    pub name: String,
    /// The statement type; this market proves `placeholder-zkllvm`.
    pub kind: String,
    /// Free text.
    pub description: String,
    /// Where to read more.
    pub url: String,
    /// What the public input means.
    pub input_description: String,
    /// Hidden from listings in the original market; kept and shown here.
    pub is_private: bool,
    /// The circuit as zkLLVM LLVM IR text.
    pub proving_key: String,
    /// Ignored (the market derives its verifying key from the circuit); kept as sent.
    pub verification_key: String,
}

impl Market {
    /// Compiles a new statement's circuit, stores the statement and starts its matcher.
    pub async fn create_statement(
        &self,
        sender: &UserName,
        s: NewStatement,
    ) -> Result<StatementRecord, MarketError> {
        self.charge_statement(sender).await?;
        let circuit = self.circuits.compile(s.proving_key.clone()).await?;
        let ir_bytes = s.proving_key.len();
        let key = self.next_key().await?;
        let now = Millis::now().0;
        let record = StatementRecord {
            key: key.to_string(),
            id: format!("statement/{key}"),
            name: s.name,
            description: s.description,
            url: s.url,
            input_description: s.input_description,
            kind: s.kind,
            is_private: s.is_private,
            definition: Definition {
                proving_key: s.proving_key,
                verification_key: s.verification_key,
            },
            sender: sender.as_str().to_owned(),
            created: now,
            updated: now,
            circuit: Some(crate::store::CircuitSummary {
                function: circuit.function_name().to_owned(),
                public_inputs: circuit.program().num_inputs(),
                public_outputs: circuit.program().outputs().len(),
                instructions: circuit.program().instrs().len(),
                rows: 1u64 << circuit.k(),
                ir_bytes,
            }),
        };
        self.store.create_statement(key, &record).await?;
        self.circuits.insert(key, circuit);
        self.router.adopt_new(key).await;
        tracing::info!(statement = %key, %sender, "statement created");
        Ok(record)
    }

    /// One statement.
    pub async fn get_statement(&self, key: Key) -> Result<StatementRecord, MarketError> {
        self.store
            .get_statement(key)
            .await?
            .ok_or_else(|| MarketError::NotFound(format!("no statement {key}")))
    }

    /// A page of statements ascending by key: `limit` after the first `skipped`. Without
    /// `full`, only each statement's head is read (no `definition`: the API leaves it
    /// out), so a page costs a few hundred bytes per statement however large the
    /// circuits; with it (pages of at most 10) the whole statements.
    pub async fn list_statements(
        &self,
        limit: usize,
        skipped: usize,
        full: bool,
    ) -> Result<Vec<StatementRecord>, MarketError> {
        let mut keys = self.store.statement_keys().await?;
        keys.sort();
        let page: Vec<Key> = keys.into_iter().skip(skipped).take(limit).collect();
        if !full {
            let heads = self.store.statement_heads(&page).await?;
            return Ok(heads.into_iter().flatten().collect());
        }
        let mut out = Vec::new();
        for k in page {
            match self.get_statement(k).await {
                Ok(v) => out.push(v),
                Err(MarketError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

impl Market {
    /// A statement's market data (404 for an unknown statement).
    pub async fn market_data(&self, stmt: Key) -> Result<crate::store::MarketData, MarketError> {
        self.statement_must_exist(stmt).await?;
        Ok(self
            .store
            .market_data(stmt, crate::domain::Millis::now())
            .await?)
    }

    async fn statement_must_exist(&self, stmt: Key) -> Result<(), MarketError> {
        if self.store.statement_exists(stmt).await? {
            Ok(())
        } else {
            Err(MarketError::NotFound(format!("no statement {stmt}")))
        }
    }

    /// A statement's latest trades, newest first (404 for an unknown statement).
    pub async fn recent_trades(
        &self,
        stmt: Key,
        max: usize,
    ) -> Result<Vec<crate::store::Trade>, MarketError> {
        self.statement_must_exist(stmt).await?;
        Ok(self.store.recent_trades(stmt, max).await?)
    }
}

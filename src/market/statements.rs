//! Statements: circuits registered on the market.

use crate::domain::{Key, Millis, UserName};
use crate::error::MarketError;

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

/// `definition` of a stored statement.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Definition {
    /// The circuit as zkLLVM LLVM IR text.
    pub proving_key: String,
    /// As the client sent it.
    pub verification_key: String,
}

/// A statement as stored and shown (the original market's field names).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StatementRecord {
    /// Decimal key.
    #[serde(rename = "_key")]
    pub key: String,
    /// `statement/<key>`.
    #[serde(rename = "_id")]
    pub id: String,
    /// Short title.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Where to read more.
    pub url: String,
    /// What the public input means.
    pub input_description: String,
    /// The statement type.
    #[serde(rename = "type")]
    pub kind: String,
    /// As the client sent it.
    #[serde(rename = "isPrivate")]
    pub is_private: bool,
    /// The circuit.
    pub definition: Definition,
    /// Who pushed it.
    pub sender: String,
    /// Creation time, ms.
    #[serde(rename = "createdOn")]
    pub created: u64,
    /// Last change, ms.
    #[serde(rename = "updatedOn")]
    pub updated: u64,
}

impl Market {
    /// Compiles a new statement's circuit, stores the statement and starts its matcher.
    pub async fn create_statement(
        &self,
        sender: &UserName,
        s: NewStatement,
    ) -> Result<StatementRecord, MarketError> {
        let circuit = self.circuits.compile(s.proving_key.clone()).await?;
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
        };
        let json = serde_json::to_string(&record)
            .map_err(|e| MarketError::Internal(format!("statement record: {e}")))?;
        self.store.create_statement(key, &json).await?;
        self.circuits.insert(key, circuit);
        self.router.adopt_new(key).await;
        tracing::info!(statement = %key, %sender, "statement created");
        Ok(record)
    }

    /// One statement.
    pub async fn get_statement(&self, key: Key) -> Result<StatementRecord, MarketError> {
        let text = self
            .store
            .get_statement(key)
            .await?
            .ok_or_else(|| MarketError::NotFound(format!("no statement {key}")))?;
        serde_json::from_str(&text)
            .map_err(|e| MarketError::Internal(format!("statement {key}: {e}")))
    }

    /// Every statement.
    pub async fn list_statements(&self) -> Result<Vec<StatementRecord>, MarketError> {
        let mut out = Vec::new();
        for k in self.store.statement_keys().await? {
            match self.get_statement(k).await {
                Ok(v) => out.push(v),
                Err(MarketError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

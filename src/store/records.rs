//! Stored records and their Redis encoding.
//!
//! Orders and proofs are Redis hashes of plain text fields; this module turns them into
//! typed records and back. A hash that does not parse is reported as corrupt instead of
//! being rendered half-way. Users are stored as JSON.

use std::collections::HashMap;

use crate::domain::{Cost, Key, Millis, Minutes, Side, Status};

use super::StoreError;

/// An order (request or proposal) as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRecord {
    /// The order's key.
    pub key: Key,
    /// Request or proposal.
    pub side: Side,
    /// The statement it is for.
    pub statement: Key,
    /// Limit price.
    pub cost: Cost,
    /// Generation time limit (request) or promise (proposal).
    pub eval_time: Option<Minutes>,
    /// How long it may rest unmatched.
    pub wait_period: Option<Minutes>,
    /// Who placed it.
    pub sender: String,
    /// Creation time.
    pub created: Millis,
    /// Last change.
    pub updated: Millis,
    /// Lifecycle state.
    pub status: Status,
    /// Arrival sequence number within the statement's matcher.
    pub seq: u64,
    /// The public input as the client sent it (requests only), as JSON text.
    pub input: Option<String>,
    /// The canonical input (requests only).
    pub canon: Option<String>,
    /// The matched order's key.
    pub counterpart: Option<Key>,
    /// When it matched.
    pub matched_time: Option<Millis>,
    /// The trade price.
    pub price: Option<Cost>,
    /// The proof that completed it.
    pub proof_key: Option<Key>,
    /// What it holds in its statement, micro-units: a request's escrow, a proposal's
    /// collateral (0 once closed).
    pub held: u128,
    /// When its wallet sent the money it holds (placing only; not stored).
    pub funded_at: Option<Millis>,
    /// When its producer missed the deadline of its match (proposals only).
    pub failed: Option<Millis>,
}

/// A stored proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofRecord {
    /// The proof's key.
    pub key: Key,
    /// The statement proved.
    pub statement: Key,
    /// The request it answers.
    pub request: Key,
    /// The proposal that produced it.
    pub proposal: Key,
    /// The producer who pushed it.
    pub sender: String,
    /// The request's public input, JSON text.
    pub input: String,
    /// Milliseconds from the match to the push.
    pub generation_ms: u64,
    /// When it was stored.
    pub created: Millis,
    /// The circuit's output on the input (hex), when the proof system computed one.
    pub output: Option<String>,
    /// The proof system that made the proof.
    pub proof_system: String,
    /// The proof, lowercase hex without prefix.
    pub proof_hex: String,
}

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserRecord {
    /// The name.
    pub user: String,
    /// argon2 PHC string; never the password.
    pub passwd_hash: String,
    /// Contact address, if given.
    pub email: Option<String>,
    /// Sign-up time.
    pub created: u64,
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

impl OrderRecord {
    /// The hash fields written when the order is created (`kind` and `status` are set
    /// by the script).
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let mut f = vec![
            ("statement_key", self.statement.to_string()),
            ("cost", self.cost.micros().to_string()),
            ("eval_time", opt(&self.eval_time.map(|m| m.0))),
            ("wait_period", opt(&self.wait_period.map(|m| m.0))),
            ("sender", self.sender.clone()),
            ("createdOn", self.created.0.to_string()),
            ("updatedOn", self.updated.0.to_string()),
            ("seq", self.seq.to_string()),
        ];
        if let Some(i) = &self.input {
            f.push(("input", i.clone()));
        }
        if let Some(c) = &self.canon {
            f.push(("canon", c.clone()));
        }
        if let Some(p) = self.proof_key {
            f.push(("proof_key", p.to_string()));
        }
        if let Some(p) = self.price {
            // A request completed at once by a stored proof: what it paid.
            f.push(("price", p.micros().to_string()));
        }
        f.push(("held", self.held.to_string()));
        f
    }

    /// Parses a stored hash.
    pub fn from_hash(key: Key, h: &HashMap<String, String>) -> Result<OrderRecord, StoreError> {
        let bad = |what: &str| StoreError::Corrupt(format!("order {key}: bad or missing `{what}`"));
        let get = |f: &str| h.get(f).map(String::as_str).unwrap_or("");
        let side = match get("kind") {
            "request" => Side::Request,
            "proposal" => Side::Proposal,
            _ => return Err(bad("kind")),
        };
        let num = |f: &str| get(f).parse::<u64>().map_err(|_| bad(f));
        let opt_num = |f: &str| -> Result<Option<u64>, StoreError> {
            match get(f) {
                "" => Ok(None),
                s => s.parse::<u64>().map(Some).map_err(|_| bad(f)),
            }
        };
        let minutes = |f: &str| -> Result<Option<Minutes>, StoreError> {
            opt_num(f)?
                .map(|v| u32::try_from(v).map(Minutes).map_err(|_| bad(f)))
                .transpose()
        };
        let counterpart_field = match side {
            Side::Request => "proposal_key",
            Side::Proposal => "request_key",
        };
        Ok(OrderRecord {
            key,
            side,
            statement: Key(num("statement_key")?),
            cost: Cost::from_micros(num("cost")?).map_err(|_| bad("cost"))?,
            eval_time: minutes("eval_time")?,
            wait_period: minutes("wait_period")?,
            sender: get("sender").to_owned(),
            created: Millis(num("createdOn")?),
            updated: Millis(num("updatedOn")?),
            status: Status::parse(get("status")).ok_or_else(|| bad("status"))?,
            seq: num("seq")?,
            input: h.get("input").cloned(),
            canon: h.get("canon").cloned(),
            counterpart: opt_num(counterpart_field)?.map(Key),
            matched_time: opt_num("matched_time")?.map(Millis),
            price: opt_num("price")?
                .map(|p| Cost::from_micros(p).map_err(|_| bad("price")))
                .transpose()?,
            proof_key: opt_num("proof_key")?.map(Key),
            held: match get("held") {
                "" => 0,
                v => v.parse::<u128>().map_err(|_| bad("held"))?,
            },
            funded_at: None,
            failed: opt_num("failed")?.map(Millis),
        })
    }
}

impl ProofRecord {
    /// The hash fields of a proof.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("statement_key", self.statement.to_string()),
            ("request_key", self.request.to_string()),
            ("proposal_key", self.proposal.to_string()),
            ("sender", self.sender.clone()),
            ("input", self.input.clone()),
            ("generation_ms", self.generation_ms.to_string()),
            ("createdOn", self.created.0.to_string()),
            ("output", opt(&self.output)),
            ("proof_system", self.proof_system.clone()),
            ("proof", self.proof_hex.clone()),
        ]
    }

    /// Parses a stored hash.
    pub fn from_hash(key: Key, h: &HashMap<String, String>) -> Result<ProofRecord, StoreError> {
        let bad = |what: &str| StoreError::Corrupt(format!("proof {key}: bad or missing `{what}`"));
        let get = |f: &str| h.get(f).cloned().ok_or_else(|| bad(f));
        let num = |f: &str| get(f)?.parse::<u64>().map_err(|_| bad(f));
        Ok(ProofRecord {
            key,
            statement: Key(num("statement_key")?),
            request: Key(num("request_key")?),
            proposal: Key(num("proposal_key")?),
            sender: get("sender")?,
            input: get("input")?,
            generation_ms: num("generation_ms")?,
            created: Millis(num("createdOn")?),
            output: h.get("output").filter(|s| !s.is_empty()).cloned(),
            proof_system: get("proof_system")?,
            proof_hex: get("proof")?,
        })
    }
}

/// Statements and producer profiles are stored as the JSON the original market shows,
/// so reading one back is a parse and showing it a serialization.
/// `definition` of a stored statement.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Definition {
    /// The circuit as zkLLVM LLVM IR text.
    pub proving_key: String,
    /// As the client sent it.
    pub verification_key: String,
}

/// A statement as stored and shown (the original market's field names).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
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
    /// The circuit (left out of lists unless asked for).
    #[schema(required = false)]
    pub definition: Definition,
    /// Who pushed it.
    pub sender: String,
    /// Creation time, ms.
    #[serde(rename = "createdOn")]
    pub created: u64,
    /// Last change, ms.
    #[serde(rename = "updatedOn")]
    pub updated: u64,
    /// What the market made of its circuit when it was pushed (statements pushed
    /// before this was kept have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit: Option<CircuitSummary>,
}

fn one_output() -> usize {
    1
}

/// A statement's circuit as the market compiled it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct CircuitSummary {
    /// The IR function proved.
    pub function: String,
    /// Public inputs it takes (field elements).
    pub public_inputs: usize,
    /// Outputs it returns (field elements: 1, or N for a `<N x field>` result).
    #[serde(default = "one_output")]
    pub public_outputs: usize,
    /// Field operations of the compiled program.
    pub instructions: usize,
    /// Rows of the proving system's table (2^k).
    pub rows: u64,
    /// Size of its LLVM IR text, bytes.
    pub ir_bytes: usize,
}

/// A producer profile as stored and shown (the original market's field names).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ProducerRecord {
    /// The producer's user name.
    #[serde(rename = "_key")]
    pub key: String,
    /// `producer/<name>`.
    #[serde(rename = "_id")]
    pub id: String,
    /// The producer's user name again, as the original shows it.
    pub name: String,
    /// Free text shown to requesters.
    pub description: String,
    /// Home page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Logo URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo: Option<String>,
    /// Payment address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eth_address: Option<String>,
    /// First registration, ms.
    #[serde(rename = "createdOn")]
    pub created: u64,
    /// Last registration, ms.
    #[serde(rename = "updatedOn")]
    pub updated: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_round_trips_through_a_hash() {
        let o = OrderRecord {
            key: Key(7),
            side: Side::Request,
            statement: Key(3),
            cost: Cost::from_micros(2_500_000).unwrap(),
            eval_time: Some(Minutes(5)),
            wait_period: None,
            sender: "alice".into(),
            created: Millis(10),
            updated: Millis(10),
            status: Status::Created,
            seq: 4,
            input: Some("[{\"field\":1}]".into()),
            canon: Some("1".into()),
            counterpart: None,
            matched_time: None,
            price: None,
            proof_key: None,
            held: 0,
            funded_at: None,
            failed: None,
        };
        let mut h: HashMap<String, String> = o
            .fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        h.insert("kind".into(), "request".into());
        h.insert("status".into(), "created".into());
        assert_eq!(OrderRecord::from_hash(Key(7), &h).unwrap(), o);
        h.insert("cost".into(), "x".into());
        assert!(OrderRecord::from_hash(Key(7), &h).is_err());
    }
}

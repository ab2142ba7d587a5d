//! The market's operations: what each API call does, independent of HTTP.
//!
//! Handlers parse and authorize; this module checks business rules against the store,
//! sends order changes to the statement's matcher, and returns records to render. Reads
//! go straight to the store, so any node can serve them.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::auth::{self, Tokens};
use crate::book::Level;
use crate::circuits::{fe_to_hex, parse_canonical, Circuits};
use crate::domain::{Cost, IdempotencyKey, Key, Millis, Minutes, Side, Status, UserName};
use crate::error::MarketError;
use crate::input::PublicInput;
use crate::markets::{ask, Markets};
use crate::matcher::{Complete, Depth, Place, Placed, Withdraw};
use crate::prover::halo2::PROOF_SYSTEM;
use crate::store::{OrderRecord, ProofRecord, Store, UserRecord};

/// Size limits on what clients may store.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest `definition.proving_key` / `verification_key`, in bytes.
    pub max_definition_bytes: usize,
    /// Largest proof, in bytes (hex text is twice that).
    pub max_proof_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_definition_bytes: 4 << 20,
            max_proof_bytes: 2 << 20,
        }
    }
}

/// A new order as the client asked for it, already parsed.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// Request or proposal.
    pub side: Side,
    /// The statement.
    pub statement: Key,
    /// Limit price.
    pub cost: Cost,
    /// Generation time limit/promise.
    pub eval_time: Option<Minutes>,
    /// How long it may rest unmatched.
    pub wait_period: Option<Minutes>,
    /// Public input (requests): the JSON as sent, and its parsed form.
    pub input: Option<(Value, PublicInput)>,
    /// The client's `Idempotency-Key`, if it sent one.
    pub idempotency: Option<IdempotencyKey>,
}

/// A pushed proof, parsed.
#[derive(Debug, Clone)]
pub struct ProofPush {
    /// The proof bytes.
    pub proof: Vec<u8>,
    /// The proposal it answers.
    pub proposal: Option<Key>,
    /// The request it answers.
    pub request: Option<Key>,
}

/// Filters of a list call.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    /// Only this status.
    pub status: Option<Status>,
    /// Only this sender.
    pub sender: Option<String>,
    /// Only this statement.
    pub statement: Option<Key>,
    /// Page size.
    pub limit: usize,
    /// Offset.
    pub skipped: usize,
}

/// The market service shared by all HTTP workers.
pub struct Market {
    store: Store,
    markets: Arc<Markets>,
    /// Statement circuits, and through them the prover pool where all CPU-heavy work
    /// (argon2 too) runs on a few threads: argon2 on tokio's blocking pool would leave a
    /// 19 MiB malloc arena behind on each of hundreds of threads.
    circuits: Arc<Circuits>,
    tokens: Tokens,
    limits: Limits,
}

/// Programs up to this many instructions are evaluated inline; larger ones on the
/// prover pool.
const INLINE_EVAL_INSTRS: usize = 4096;

impl Market {
    /// Wires the service together.
    pub fn new(
        store: Store,
        markets: Arc<Markets>,
        circuits: Arc<Circuits>,
        tokens: Tokens,
        limits: Limits,
    ) -> Market {
        Market {
            store,
            markets,
            circuits,
            tokens,
            limits,
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The shard router.
    pub fn markets(&self) -> &Markets {
        &self.markets
    }

    /// The token issuer/verifier.
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    // ---- users -------------------------------------------------------------------

    /// Creates an account.
    pub async fn signup(
        &self,
        user: UserName,
        passwd: String,
        email: Option<String>,
    ) -> Result<Value, MarketError> {
        if self.store.get_user(user.as_str()).await?.is_some() {
            return Err(MarketError::Conflict(format!(
                "user name `{user}` is taken"
            )));
        }
        let hash = self
            .circuits
            .pool()
            .run("argon2-hash", move || auth::hash_password(&passwd))
            .await??;
        let record = UserRecord {
            user: user.as_str().to_owned(),
            passwd_hash: hash,
            email,
            created: Millis::now().0,
        };
        if !self.store.create_user(&record).await? {
            return Err(MarketError::Conflict(format!(
                "user name `{user}` is taken"
            )));
        }
        tracing::info!(%user, "user signed up");
        Ok(json!({"user": user.as_str(), "active": true}))
    }

    /// Checks credentials and issues a token.
    pub async fn login(&self, user: &str, password: String) -> Result<String, MarketError> {
        let denied = || MarketError::Unauthorized("wrong user name or password".into());
        let name = UserName::parse(user).ok_or_else(denied)?;
        let record = self
            .store
            .get_user(name.as_str())
            .await?
            .ok_or_else(denied)?;
        let ok = self
            .circuits
            .pool()
            .run("argon2-verify", move || {
                auth::verify_password(&password, &record.passwd_hash)
            })
            .await?;
        if !ok {
            return Err(denied());
        }
        self.tokens.issue(&name)
    }

    /// Records a producer's public profile.
    pub async fn register_producer(
        &self,
        user: &UserName,
        mut profile: Map<String, Value>,
    ) -> Result<Value, MarketError> {
        let now = Millis::now().0;
        profile.insert("_key".into(), json!(user.as_str()));
        profile.insert("_id".into(), json!(format!("producer/{user}")));
        profile.insert("name".into(), json!(user.as_str()));
        profile.insert("createdOn".into(), json!(now));
        profile.insert("updatedOn".into(), json!(now));
        let v = Value::Object(profile);
        self.store
            .put_producer(user.as_str(), &v.to_string())
            .await?;
        Ok(v)
    }

    // ---- statements --------------------------------------------------------------

    /// Stores a new statement and starts its matcher.
    pub async fn create_statement(
        &self,
        sender: &UserName,
        body: Map<String, Value>,
    ) -> Result<Value, MarketError> {
        let mut st = self.check_statement(body)?;
        let ir = st["definition"]["proving_key"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let circuit = self.circuits.compile(ir).await?;
        let key = self.markets.keys.next(&self.store).await?;
        let now = Millis::now().0;
        st.insert("_key".into(), json!(key.to_string()));
        st.insert("_id".into(), json!(format!("statement/{key}")));
        st.insert("sender".into(), json!(sender.as_str()));
        st.insert("createdOn".into(), json!(now));
        st.insert("updatedOn".into(), json!(now));
        let v = Value::Object(st);
        self.store.create_statement(key, &v.to_string()).await?;
        self.circuits.insert(key, circuit);
        self.markets.adopt_new(key).await;
        tracing::info!(statement = %key, %sender, "statement created");
        Ok(v)
    }

    fn check_statement(&self, body: Map<String, Value>) -> Result<Map<String, Value>, MarketError> {
        let bad = |m: String| Err(MarketError::BadRequest(m));
        let text = |field: &str, required: bool, max: usize| -> Result<String, MarketError> {
            match body.get(field) {
                Some(Value::String(s)) if s.len() > max => Err(MarketError::BadRequest(format!(
                    "`{field}` is longer than {max} bytes"
                ))),
                Some(Value::String(s)) if required && s.trim().is_empty() => Err(
                    MarketError::BadRequest(format!("`{field}` must not be empty")),
                ),
                Some(Value::String(s)) => Ok(s.clone()),
                None | Some(Value::Null) if !required => Ok(String::new()),
                None => Err(MarketError::BadRequest(format!("missing field `{field}`"))),
                Some(_) => Err(MarketError::BadRequest(format!(
                    "`{field}` must be a string"
                ))),
            }
        };
        let name = text("name", true, 256)?;
        let kind = text("type", true, 64)?;
        if kind != "placeholder-zkllvm" {
            return bad(format!("unsupported statement type `{kind}`; this market proves `placeholder-zkllvm` circuits"));
        }
        let mut out = Map::new();
        out.insert("name".into(), json!(name));
        for f in ["description", "url", "input_description"] {
            out.insert(f.into(), json!(text(f, false, 64 << 10)?));
        }
        out.insert("type".into(), json!(kind));
        let private = match body.get("isPrivate") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return bad("`isPrivate` must be true or false".into()),
        };
        out.insert("isPrivate".into(), json!(private));
        let def = match body.get("definition") {
            Some(Value::Object(d)) => d,
            None => return bad("missing field `definition`".into()),
            Some(_) => return bad("`definition` must be an object with `proving_key`".into()),
        };
        let max = self.limits.max_definition_bytes;
        let pk = match def.get("proving_key") {
            Some(Value::String(s)) if s.trim().is_empty() => {
                return bad("`definition.proving_key` is empty".into())
            }
            Some(Value::String(s)) if s.len() > max => {
                return bad(format!(
                    "`definition.proving_key` is larger than {max} bytes"
                ))
            }
            Some(Value::String(s)) => s.clone(),
            None => {
                return bad(
                    "missing field `definition.proving_key` (the circuit as zkLLVM IR)".into(),
                )
            }
            Some(_) => return bad("`definition.proving_key` must be a string".into()),
        };
        let vk = match def.get("verification_key") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) if s.len() > max => {
                return bad(format!(
                    "`definition.verification_key` is larger than {max} bytes"
                ))
            }
            Some(Value::String(s)) => s.clone(),
            Some(_) => return bad("`definition.verification_key` must be a string".into()),
        };
        out.insert(
            "definition".into(),
            json!({"proving_key": pk, "verification_key": vk}),
        );
        Ok(out)
    }

    /// One statement.
    pub async fn get_statement(&self, key: Key) -> Result<Value, MarketError> {
        let text = self
            .store
            .get_statement(key)
            .await?
            .ok_or_else(|| MarketError::NotFound(format!("no statement {key}")))?;
        serde_json::from_str(&text)
            .map_err(|e| MarketError::Internal(format!("statement {key}: {e}")))
    }

    /// Every statement.
    pub async fn list_statements(&self) -> Result<Vec<Value>, MarketError> {
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

    // ---- orders ------------------------------------------------------------------

    /// Places a request or proposal; it is matched at once when it can be. `hops`:
    /// how many nodes forwarded the call (see [`Markets::route`]).
    pub async fn place(
        &self,
        sender: &UserName,
        o: NewOrder,
        hops: u8,
    ) -> Result<OrderRecord, MarketError> {
        let matcher = self.markets.route(o.statement, hops).await?;
        match (&o.side, &o.input) {
            (Side::Request, None) => {
                return Err(MarketError::BadRequest("missing field `input`".into()))
            }
            (Side::Request, Some((_, input))) => self.check_input(o.statement, input).await?,
            (Side::Proposal, _) => {}
        }
        let side = o.side;
        let idempotency = o
            .idempotency
            .as_ref()
            .map(|k| k.scoped(side, sender.as_str()));
        let key = self.markets.keys.next(&self.store).await?;
        let now = Millis::now();
        let (input, canon) = match &o.input {
            Some((raw, parsed)) => (Some(raw.to_string()), Some(parsed.canonical())),
            None => (None, None),
        };
        let record = OrderRecord {
            key,
            side: o.side,
            statement: o.statement,
            cost: o.cost,
            eval_time: o.eval_time,
            wait_period: o.wait_period,
            sender: sender.as_str().to_owned(),
            created: now,
            updated: now,
            status: Status::Created,
            seq: 0,
            input,
            canon,
            counterpart: None,
            matched_time: None,
            price: None,
            proof_key: None,
        };
        match ask(
            &matcher,
            Place {
                order: record,
                idempotency,
            },
        )
        .await??
        {
            Placed::New(order) => Ok(order),
            // A retry: answer the order the key placed, as it is now. If the first call's
            // write is still in flight it is not readable yet.
            Placed::Existing(key) => match self.get_order(side, key).await {
                Err(MarketError::NotFound(_)) => Err(MarketError::unavailable(
                    "an order with this Idempotency-Key is still being placed, retry shortly",
                )),
                other => other,
            },
        }
    }

    /// Refuses inputs the statement's circuit cannot prove: wrong arity, or a division
    /// by zero on them (no proof of such an input can exist).
    async fn check_input(&self, stmt: Key, input: &PublicInput) -> Result<(), MarketError> {
        let c = self.circuits.get(stmt).await?;
        let values = input.values.clone();
        let r = if c.program().instrs().len() <= INLINE_EVAL_INSTRS {
            c.evaluate(&values)
        } else {
            self.circuits
                .pool()
                .run("evaluate", move || c.evaluate(&values))
                .await?
        };
        r.map(|_| ()).map_err(MarketError::BadRequest)
    }

    async fn locate(&self, what: &str, key: Key) -> Result<Key, MarketError> {
        self.store
            .locate(key)
            .await?
            .ok_or_else(|| MarketError::NotFound(format!("no {what} {key}")))
    }

    /// One order of the given side.
    pub async fn get_order(&self, side: Side, key: Key) -> Result<OrderRecord, MarketError> {
        let stmt = self.locate(side.as_str(), key).await?;
        match self.store.get_order(stmt, key).await? {
            Some(o) if o.side == side => Ok(o),
            _ => Err(MarketError::NotFound(format!("no {} {key}", side.as_str()))),
        }
    }

    /// Orders of one side matching `f`, ascending by key.
    pub async fn list_orders(
        &self,
        side: Side,
        f: &OrderFilter,
    ) -> Result<Vec<OrderRecord>, MarketError> {
        const SCAN_CAP: usize = 100_000;
        let stmts = match f.statement {
            Some(s) => vec![s],
            None => self.store.statement_keys().await?,
        };
        let statuses: Vec<Status> = f
            .status
            .map(|s| vec![s])
            .unwrap_or_else(|| Status::ALL.to_vec());
        let want = f.skipped.saturating_add(f.limit);
        // Without a sender filter the first `want` keys of each index suffice.
        let per_index = if f.sender.is_some() { SCAN_CAP } else { want };
        let mut candidates: Vec<(Key, Key)> = Vec::new();
        for &st in &stmts {
            for &status in &statuses {
                for k in self.store.order_keys(st, side, status, per_index).await? {
                    candidates.push((k, st));
                }
            }
        }
        candidates.sort();
        let mut out = Vec::new();
        let mut matched = 0usize;
        for chunk in candidates.chunks(500) {
            // One pipelined read per statement in the chunk, then back to key order.
            let mut by_stmt: std::collections::BTreeMap<Key, Vec<Key>> =
                std::collections::BTreeMap::new();
            for &(k, st) in chunk {
                by_stmt.entry(st).or_default().push(k);
            }
            let mut read = Vec::with_capacity(chunk.len());
            for (st, keys) in by_stmt {
                read.extend(self.store.get_orders(st, &keys).await?);
            }
            read.sort_by_key(|o| o.key);
            for o in read {
                if f.sender.as_deref().is_some_and(|s| s != o.sender) {
                    continue;
                }
                if matched >= f.skipped {
                    out.push(o);
                }
                matched += 1;
                if out.len() >= f.limit {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    /// Withdraws an open order of `sender`.
    pub async fn withdraw(
        &self,
        sender: &UserName,
        side: Side,
        key: Key,
        hops: u8,
    ) -> Result<OrderRecord, MarketError> {
        let mut o = self.get_order(side, key).await?;
        if o.sender != sender.as_str() {
            return Err(MarketError::Forbidden(format!(
                "{} {key} belongs to another user",
                side.as_str()
            )));
        }
        if o.status != Status::Created {
            return Err(MarketError::Conflict(format!(
                "{} {key} is {}; only created orders can be withdrawn",
                side.as_str(),
                o.status.as_str()
            )));
        }
        let matcher = self.markets.route(o.statement, hops).await?;
        let at = ask(
            &matcher,
            Withdraw {
                side,
                key,
                sender: sender.as_str().to_owned(),
            },
        )
        .await??;
        o.status = Status::Withdrawn;
        o.updated = at;
        Ok(o)
    }

    // ---- proofs ------------------------------------------------------------------

    /// Accepts a proof for a processing match of the caller's.
    pub async fn push_proof(
        &self,
        sender: &UserName,
        p: ProofPush,
        hops: u8,
    ) -> Result<ProofRecord, MarketError> {
        if p.proof.len() > self.limits.max_proof_bytes {
            return Err(MarketError::BadRequest(format!(
                "proof is larger than {} bytes",
                self.limits.max_proof_bytes
            )));
        }
        let (proposal, request) = match (p.proposal, p.request) {
            (Some(pk), rk) => {
                let proposal = self.get_order(Side::Proposal, pk).await?;
                let rk = match (rk, proposal.counterpart) {
                    (Some(r), Some(c)) if r != c => {
                        return Err(MarketError::BadRequest(format!(
                            "proposal {pk} is matched to request {c}, not {r}"
                        )))
                    }
                    (_, Some(c)) => c,
                    (Some(r), None) => {
                        return Err(MarketError::Conflict(format!(
                            "proposal {pk} is not matched to request {r}"
                        )))
                    }
                    (None, None) => {
                        return Err(MarketError::Conflict(format!(
                            "proposal {pk} is {}; a proof is accepted only while it is processing",
                            proposal.status.as_str()
                        )))
                    }
                };
                (proposal, self.get_order(Side::Request, rk).await?)
            }
            (None, Some(rk)) => {
                let request = self.get_order(Side::Request, rk).await?;
                let pk = request.counterpart.ok_or_else(|| {
                    MarketError::Conflict(format!(
                        "request {rk} is {}; a proof is accepted only while it is processing",
                        request.status.as_str()
                    ))
                })?;
                (self.get_order(Side::Proposal, pk).await?, request)
            }
            (None, None) => {
                return Err(MarketError::BadRequest(
                    "give `proposal_key` or `request_key`".into(),
                ))
            }
        };
        if proposal.sender != sender.as_str() {
            return Err(MarketError::Forbidden(format!(
                "proposal {} belongs to another user; only its producer may push its proof",
                proposal.key
            )));
        }
        if proposal.status != Status::Processing || request.status != Status::Processing {
            return Err(MarketError::Conflict(format!(
                "proposal {} is {}; a proof is accepted only while it is processing",
                proposal.key,
                proposal.status.as_str()
            )));
        }
        // Verify on the owner only: a call forwarded after verifying would verify twice.
        let matcher = self.markets.route(proposal.statement, hops).await?;
        let canon = request.canon.clone().unwrap_or_default();
        let inputs = parse_canonical(&canon).map_err(|e| {
            MarketError::Internal(format!("request {}: stored input: {e}", request.key))
        })?;
        let circuit = self.circuits.get(proposal.statement).await?;
        let proof = p.proof;
        let (output, proof) = self
            .circuits
            .pool()
            .run("verify", move || {
                circuit.verify(&inputs, &proof).map(|o| (o, proof))
            })
            .await??;
        let key = self.markets.keys.next(&self.store).await?;
        let now = Millis::now();
        let record = ProofRecord {
            key,
            statement: proposal.statement,
            request: request.key,
            proposal: proposal.key,
            sender: sender.as_str().to_owned(),
            input: request.input.clone().unwrap_or_else(|| "null".into()),
            generation_ms: now
                .0
                .saturating_sub(proposal.matched_time.map_or(now.0, |m| m.0)),
            created: now,
            output: Some(fe_to_hex(output)),
            proof_system: PROOF_SYSTEM.into(),
            proof_hex: hex::encode(&proof),
        };
        ask(
            &matcher,
            Complete {
                record: record.clone(),
                canon,
            },
        )
        .await??;
        tracing::info!(proof = %key, request = %request.key, proposal = %proposal.key, "proof stored");
        Ok(record)
    }

    /// One proof.
    pub async fn get_proof(&self, key: Key) -> Result<ProofRecord, MarketError> {
        let stmt = self.locate("proof", key).await?;
        self.store
            .get_proof(stmt, key)
            .await?
            .ok_or_else(|| MarketError::NotFound(format!("no proof {key}")))
    }

    /// Live nodes and statement ownership, read from Redis now.
    pub async fn cluster_view(&self) -> Result<Value, MarketError> {
        let nodes = self.store.live_nodes(Millis::now()).await?;
        let entries: Vec<crate::cluster::NodeEntry> = nodes
            .into_iter()
            .map(|(id, url)| crate::cluster::NodeEntry { id, url })
            .collect();
        let mut statements = Vec::new();
        let mut held: std::collections::BTreeMap<String, Vec<String>> =
            entries.iter().map(|n| (n.id.clone(), Vec::new())).collect();
        for stmt in self.store.statement_keys().await? {
            let (holder, token, fenced) = self.store.lease_info(stmt).await?;
            if let Some(h) = &holder {
                held.entry(h.clone()).or_default().push(stmt.to_string());
            }
            statements.push(json!({
                "statement": stmt.to_string(),
                "owner": crate::cluster::owner(&entries, stmt).map(|n| n.id.clone()),
                "lease_holder": holder,
                "fencing_token": token,
                "fenced_writes": fenced,
            }));
        }
        let nodes: Vec<Value> = entries
            .iter()
            .map(|n| {
                json!({
                    "id": n.id,
                    "url": n.url,
                    "statements": held.get(&n.id).cloned().unwrap_or_default(),
                })
            })
            .collect();
        Ok(json!({
            "node": self.markets.node().id,
            "nodes": nodes,
            "statements": statements,
        }))
    }

    /// A statement's open orders by price level.
    pub async fn book(
        &self,
        stmt: Key,
        levels: usize,
        hops: u8,
    ) -> Result<(Vec<Level>, Vec<Level>), MarketError> {
        let m = self.markets.route(stmt, hops).await?;
        ask(&m, Depth(levels)).await?
    }
}

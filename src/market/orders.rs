//! Requests and proposals: placing, reading, listing and withdrawing them.

use serde_json::Value;

use crate::domain::{Cost, IdempotencyKey, Key, Millis, Minutes, Side, Status, UserName};
use crate::error::MarketError;
use crate::input::PublicInput;
use crate::store::OrderRecord;

use super::book::Level;
use super::matcher::{Depth, LocalError, LocalResult, MatcherHandle, Place, Withdraw};
use super::state::Placed;
use super::wallets::Funding;
use super::Market;

/// Programs up to this many instructions are evaluated inline; larger ones on the
/// prover pool.
const INLINE_EVAL_INSTRS: usize = 4096;

/// Most orders of one (statement, status) a `sender` filter scans.
const SCAN_CAP: usize = 100_000;

/// A new order as the client asked for it, parsed.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// Which book side it joins.
    pub side: Side,
    /// The statement it trades.
    pub statement: Key,
    /// Limit price: the most a request pays, the least a proposal takes.
    pub cost: Cost,
    /// Longest accepted (request) or needed (proposal) generation time.
    pub eval_time: Option<Minutes>,
    /// How long it may rest unmatched before the market withdraws it.
    pub wait_period: Option<Minutes>,
    /// Public input (requests): the JSON in the shape and spelling the client sent,
    /// tidied of padding (what is stored and shown), and its parsed form.
    pub input: Option<(Value, PublicInput)>,
    /// The client's `Idempotency-Key`, if it sent one.
    pub idempotency: Option<IdempotencyKey>,
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
    /// Orders skipped before the page (the API caps it).
    pub skipped: usize,
}

impl Market {
    /// Places a request or proposal through the statement's matcher `m`; it is matched
    /// at once when it can be.
    pub async fn place(
        &self,
        m: &MatcherHandle,
        sender: &UserName,
        o: &NewOrder,
    ) -> LocalResult<OrderRecord> {
        let (input, canon) = match (o.side, &o.input) {
            (Side::Request, None) => {
                return Err(MarketError::BadRequest("missing field `input`".into()).into())
            }
            (Side::Request, Some((raw, parsed))) => {
                self.check_input(o.statement, parsed).await?;
                (Some(raw.to_string()), Some(parsed.canonical()))
            }
            (Side::Proposal, _) => (None, None),
        };
        let idempotency = o
            .idempotency
            .as_ref()
            .map(|k| k.scoped(o.side, sender.as_str()));
        let now = Millis::now();
        let key = self.next_key_in(o.statement).await?;
        let order = |funding: Option<&Funding>| OrderRecord {
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
            input: input.clone(),
            canon: canon.clone(),
            counterpart: None,
            matched_time: None,
            price: None,
            proof_key: None,
            held: 0,
            funded_at: funding.map(|f| f.at),
            failed: None,
        };
        // The money comes from the sender's account on the statement; when that is
        // short, the wallet tops it up once, the order being the receipt.
        let mut placed = m
            .ask(Place {
                order: order(None),
                idempotency,
                topup: 0,
            })
            .await;
        let mut funding = None;
        if let Ok(short @ Placed::Short { .. }) = &placed {
            let f = self
                .fund_order(sender.as_str(), key, o.statement, short)
                .await?;
            placed = m
                .ask(Place {
                    order: order(Some(&f)),
                    idempotency,
                    topup: f.amount,
                })
                .await;
            funding = Some(f);
        }
        if let Some(f) = &funding {
            match &placed {
                Ok(Placed::New(_)) => self.settle_funding(f, key, true).await,
                // Nothing of this call was written: an idempotent resend (the first
                // call's order holds its own money), still short (the account was
                // spent meanwhile), a refusal, or a moved statement.
                Ok(Placed::Existing(_) | Placed::Short { .. }) | Err(LocalError::Moved) => {
                    self.settle_funding(f, key, false).await
                }
                Err(LocalError::Market(e)) if e.is_client_error() => {
                    self.settle_funding(f, key, false).await
                }
                // The write may have happened: the resolver settles it.
                Err(LocalError::Market(_)) => {}
            }
        }
        match placed? {
            Placed::New(order) => Ok(*order),
            Placed::Short { .. } => Err(MarketError::Conflict(
                "the money sent for this order was spent by another order meanwhile; retry".into(),
            )
            .into()),
            // A resend: answer the order the key placed, as it is now. If the first
            // call's write is still in flight it is not readable yet.
            Placed::Existing(key) => match self.get_order(o.side, key).await {
                Err(MarketError::NotFound(_)) => Err(MarketError::unavailable(
                    "an order with this Idempotency-Key is still being placed, retry shortly",
                )
                .into()),
                other => Ok(other?),
            },
        }
    }

    /// Refuses inputs the statement's circuit cannot prove: wrong arity, or a division
    /// by zero on them (no proof of such an input can exist).
    async fn check_input(&self, stmt: Key, input: &PublicInput) -> Result<(), MarketError> {
        let c = self.circuits.get(stmt).await?;
        let r = if c.program().instrs().len() <= INLINE_EVAL_INSTRS {
            c.evaluate_input(input)
        } else {
            let input = input.clone();
            self.circuits
                .pools()
                .circuit
                .run("evaluate", move || c.evaluate_input(&input))
                .await?
        };
        r.map(|_| ()).map_err(MarketError::BadRequest)
    }

    /// The statement an order or proof belongs to (`what` names it in the 404).
    pub async fn statement_of(&self, what: &str, key: Key) -> Result<Key, MarketError> {
        if let Some(stmt) = self.store.locate(key).await? {
            return Ok(stmt);
        }
        // Archived and removed from Redis: the archive knows its statement.
        if let Some(a) = &self.archive {
            if let Some(o) = a.get_order(key).await? {
                return Ok(o.statement);
            }
            if let Some(p) = a.get_proof(key).await? {
                return Ok(p.statement);
            }
        }
        Err(MarketError::NotFound(format!("no {what} {key}")))
    }

    /// One order of the given side: from Redis, or from the archive once Redis no
    /// longer holds it.
    pub async fn get_order(&self, side: Side, key: Key) -> Result<OrderRecord, MarketError> {
        let found = match self.store.locate(key).await? {
            Some(stmt) => self.store.get_order(stmt, key).await?,
            None => None,
        };
        let found = match (found, &self.archive) {
            (Some(o), _) => Some(o),
            (None, Some(a)) => a.get_order(key).await?,
            (None, None) => None,
        };
        match found {
            Some(o) if o.side == side => Ok(o),
            _ => Err(MarketError::NotFound(format!("no {} {key}", side.as_str()))),
        }
    }

    /// Orders of one side matching `f`, ascending by key: those Redis holds, and with
    /// archiving on, closed ones only the archive still holds (open orders never leave
    /// Redis; a closed order is final, so either copy is the same).
    pub async fn list_orders(
        &self,
        side: Side,
        f: &OrderFilter,
    ) -> Result<Vec<OrderRecord>, MarketError> {
        let hot = self.list_hot_orders(side, f).await?;
        let Some(a) = &self.archive else {
            return Ok(hot);
        };
        let want = f.skipped.saturating_add(f.limit);
        // Both sides of the merge with no page skipped: the page is cut from the union.
        let all = OrderFilter {
            skipped: 0,
            limit: want,
            ..f.clone()
        };
        let hot = if f.skipped == 0 {
            hot
        } else {
            self.list_hot_orders(side, &all).await?
        };
        let cold = a
            .closed_orders(side, f.status, f.sender.as_deref(), f.statement, want)
            .await?;
        let mut merged: std::collections::BTreeMap<Key, OrderRecord> =
            cold.into_iter().map(|o| (o.key, o)).collect();
        merged.extend(hot.into_iter().map(|o| (o.key, o)));
        Ok(merged.into_values().skip(f.skipped).take(f.limit).collect())
    }

    /// [`Market::list_orders`] over what Redis holds.
    async fn list_hot_orders(
        &self,
        side: Side,
        f: &OrderFilter,
    ) -> Result<Vec<OrderRecord>, MarketError> {
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
        let mut matched = 0usize;
        if f.sender.is_none() {
            // Every candidate is in the list: skip without reading the skipped orders.
            let skip = f.skipped.min(candidates.len());
            candidates.drain(..skip);
            matched = skip;
        }
        let mut out = Vec::new();
        for chunk in candidates.chunks(500) {
            // One pipelined read per statement in the chunk, then back to key order.
            let mut by_stmt: std::collections::BTreeMap<Key, Vec<Key>> = Default::default();
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

    /// Withdraws an open order of `sender` through its statement's matcher `m`.
    pub async fn withdraw(
        &self,
        m: &MatcherHandle,
        sender: &UserName,
        side: Side,
        key: Key,
    ) -> LocalResult<OrderRecord> {
        let mut o = self.get_order(side, key).await?;
        if o.sender != sender.as_str() {
            return Err(LocalError::from(MarketError::Forbidden(format!(
                "{} {key} belongs to another user",
                side.as_str()
            ))));
        }
        if o.status != Status::Created {
            return Err(LocalError::from(MarketError::Conflict(format!(
                "{} {key} is {}; only created orders can be withdrawn",
                side.as_str(),
                o.status.as_str()
            ))));
        }
        let at = m
            .ask(Withdraw {
                side,
                key,
                sender: sender.as_str().to_owned(),
            })
            .await?;
        o.status = Status::Withdrawn;
        o.updated = at;
        Ok(o)
    }

    /// A statement's open orders by price level, at most `levels` a side.
    pub async fn book(
        &self,
        m: &MatcherHandle,
        levels: usize,
    ) -> LocalResult<(Vec<Level>, Vec<Level>)> {
        m.ask(Depth(levels)).await
    }
}

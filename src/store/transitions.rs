//! The write path of order state: [`Op`], the transitions of one statement, their
//! encoding for `transitions.lua` (beside this file), and [`Store::apply`], which runs a
//! batch of them as one atomic script, with [`Refusal`] naming why an op was refused.
//!
//! A batch is one round trip (group commit) and atomic: no reader sees half of a match.
//! It writes nothing outside its statement's slot: created orders and proofs are found
//! from their keys' blocks (`Store::reserve_block`, `Store::locate`).

use std::sync::LazyLock;

use super::{events, OrderRecord, ProofRecord, Store, StoreError};
use crate::domain::{Key, Millis, ScopedKey, Side};

/// The batch script as a Redis function library (`FUNCTION LOAD`, `FCALL`): its code
/// runs once when loaded, so a batch pays only for its own work, not for defining the
/// script's functions again (an `EVALSHA` of the same code costs ~30 µs more per call).
/// Library and function are named after the code's hash, so nodes of different
/// versions never call each other's.
struct Library {
    /// `FUNCTION LOAD` text.
    code: String,
    /// The function `FCALL` calls.
    function: String,
}

static TRANSITIONS: LazyLock<Library> = LazyLock::new(|| {
    use sha2::Digest;
    let body = concat!(include_str!("dec.lua"), include_str!("transitions.lua"));
    let hash = hex::encode(sha2::Sha256::digest(body.as_bytes()));
    let function = format!("pm_batch_{}", &hash[..16]);
    Library {
        code: format!(
            "#!lua name={function}\n{}",
            body.replace("__FUNCTION__", &function)
        ),
        function,
    }
});

/// True when Redis does not know the batch function (restarted without its data, or
/// a new node of a cluster): load it and call again.
fn is_unknown_function(e: &redis::RedisError) -> bool {
    e.to_string().contains("Function not found")
}

impl Store {
    /// Loads the batch function library (on every master of a cluster).
    async fn load_transitions(&self) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        redis::cmd("FUNCTION")
            .arg("LOAD")
            .arg("REPLACE")
            .arg(&TRANSITIONS.code)
            .exec_async(&mut c)
            .await?;
        Ok(())
    }
}

/// Why the transition script refused one op of a batch; nothing of that op was written.
///
/// Each variant is a name `transitions.lua` answers with (`E:<name>:<message>`) and
/// carries the script's message, which names the orders involved. What a refusal means
/// to a client is decided above the store (`impl From<Refusal> for MarketError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The order or proof to create exists already (`exists`).
    #[error("{0}")]
    Exists(String),
    /// No order of the expected side has that key (`not_found`).
    #[error("{0}")]
    NotFound(String),
    /// The order belongs to another user than the caller (`not_yours`).
    #[error("{0}")]
    NotYours(String),
    /// An order's status does not allow the transition (`wrong_status`).
    #[error("{0}")]
    WrongStatus(String),
    /// A proof names a request and a proposal that are not matched to each other
    /// (`not_matched`).
    #[error("{0}")]
    NotMatched(String),
    /// The order's money was sent by its wallet longer ago than the funding window
    /// allows (`late`): the wallet may take it back, so the order is not placed.
    #[error("{0}")]
    Late(String),
}

impl Refusal {
    /// Reads one reply of the script: `OK`, or `E:<name>:<message>` with a name this
    /// type knows. Anything else means the script and this code disagree, so the reply
    /// is reported as corrupt rather than guessed at.
    fn parse_reply(reply: &str) -> Result<Result<(), Refusal>, StoreError> {
        if reply == "OK" {
            return Ok(Ok(()));
        }
        let corrupt = || StoreError::Corrupt(format!("transition script answered {reply:?}"));
        let (name, message) = reply
            .strip_prefix("E:")
            .and_then(|r| r.split_once(':'))
            .ok_or_else(corrupt)?;
        let message = message.to_owned();
        Ok(Err(match name {
            "exists" => Refusal::Exists(message),
            "not_found" => Refusal::NotFound(message),
            "not_yours" => Refusal::NotYours(message),
            "wrong_status" => Refusal::WrongStatus(message),
            "not_matched" => Refusal::NotMatched(message),
            "late" => Refusal::Late(message),
            _ => return Err(corrupt()),
        }))
    }
}

/// One order transition of a statement; see `transitions.lua`.
#[derive(Debug, Clone)]
pub enum Op {
    /// Store a new order (its status is in the record).
    New(Box<OrderRecord>),
    /// Match two open orders.
    Match {
        /// The request.
        request: Key,
        /// The proposal.
        proposal: Key,
        /// Trade price in micro-units.
        price: u64,
        /// Match time.
        at: Millis,
        /// What the request and the proposal hold from now on (escrow at the price,
        /// collateral for it).
        held: (u128, u128),
    },
    /// Withdraw an open order, checking its sender.
    Withdraw {
        /// Request or proposal.
        side: Side,
        /// The order.
        key: Key,
        /// Who asks.
        sender: String,
        /// When.
        at: Millis,
    },
    /// Store a proof and complete both matched orders.
    Proof {
        /// The proof to store.
        record: Box<ProofRecord>,
        /// The request's canonical input, to remember that it is proved.
        canon: String,
    },
    /// Remember which order a client's idempotency key placed.
    Remember {
        /// The key scoped to side and sender ([`crate::domain::IdempotencyKey::scoped`]).
        scoped: ScopedKey,
        /// The order it placed.
        order: Key,
        /// When (keys are forgotten a retention period later).
        at: Millis,
        /// Who placed it (counted against the sender's quota of remembered keys).
        sender: String,
    },
    /// Forget idempotency keys past their retention.
    Forget(Vec<ScopedKey>),
    /// A producer missed its deadline: the request is open again (at `cost`), the
    /// proposal withdrawn and marked failed.
    Rollback {
        /// The request.
        request: Key,
        /// The proposal.
        proposal: Key,
        /// When.
        at: Millis,
        /// The request's cost from now on (its own, unless its escrow no longer covers it).
        cost: u64,
    },
    /// A request completed by a proof stored for another match of its input (a resale
    /// paying `price`); a matched one's proposal is released (withdrawn, no fine).
    Resold {
        /// The request.
        request: Key,
        /// The proof.
        proof: Key,
        /// What it paid (micro-units).
        price: u64,
        /// Its proposal, when it was matched.
        proposal: Option<Key>,
        /// When.
        at: Millis,
    },
    /// The money of the op before it, written only if that op was.
    Money(Box<Money>),
}

/// What one transition does to money: what orders hold from now on, and the movements
/// of the users' accounts on the statement (see `transitions.lua` and `wallets.rs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Money {
    /// Order → what it holds now (a request's escrow, a proposal's collateral).
    pub held: Vec<(Key, u128)>,
    /// Movements, in order.
    pub payouts: Vec<Payout>,
    /// Written on its own (a sweep), not as the money of the op before it.
    pub always: bool,
}

/// A movement of one user's account on a statement (`Payout` since money a trade frees
/// is paid into it): changes of its free balance and deposit and of what the user's
/// orders hold there. A `sweep` also sends what it takes to the user's wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payout {
    /// Whose account.
    pub user: String,
    /// Change of the free balance.
    pub balance: i128,
    /// Change of `blocked` (what the user's requests hold in escrow here).
    pub blocked: i128,
    /// Change of the free deposit.
    pub deposit: i128,
    /// Change of `locked` (what the user's proposals hold as collateral here).
    pub locked: i128,
    /// Ledger kind: topup, escrow, collateral, release, unlock, spend, earn, commission,
    /// resale, fined, fine, sweep.
    pub kind: &'static str,
    /// The order it is about.
    pub order: Key,
    /// For a producer's earnings: how long the proof took (match to push), ms; 0
    /// otherwise. Kept in the producer's track record.
    pub generation_ms: u64,
}

impl Money {
    /// True when it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty() && self.payouts.is_empty()
    }
}

impl Op {
    fn encode(&self, args: &mut Vec<String>, funding_window_ms: u64) {
        let mut a: Vec<String> = Vec::new();
        let name = match self {
            Op::New(o) => {
                a.push(o.side.as_str().into());
                a.push(o.key.to_string());
                a.push(o.status.as_str().into());
                a.push(events::placed(o));
                a.push(o.funded_at.map(|t| t.0.to_string()).unwrap_or_default());
                a.push(funding_window_ms.to_string());
                for (f, v) in o.fields() {
                    a.push(f.into());
                    a.push(v);
                }
                "new"
            }
            Op::Match {
                request,
                proposal,
                price,
                at,
                held,
            } => {
                a.extend([
                    request.to_string(),
                    proposal.to_string(),
                    price.to_string(),
                    at.0.to_string(),
                    events::matched(*request, *proposal, *price, *at),
                    held.0.to_string(),
                    held.1.to_string(),
                ]);
                "match"
            }
            Op::Withdraw {
                side,
                key,
                sender,
                at,
            } => {
                a.extend([
                    side.as_str().into(),
                    key.to_string(),
                    sender.clone(),
                    at.0.to_string(),
                    events::withdrawn(*side, *key, *at),
                ]);
                "withdraw"
            }
            Op::Proof { record, canon } => {
                a.extend([
                    record.key.to_string(),
                    record.proposal.to_string(),
                    record.request.to_string(),
                    record.sender.clone(),
                    canon.clone(),
                    record.created.0.to_string(),
                    events::proved(record),
                    proof_digest(&record.proof_hex),
                ]);
                for (f, v) in record.fields() {
                    a.push(f.into());
                    a.push(v);
                }
                "proof"
            }
            Op::Remember {
                scoped,
                order,
                at,
                sender,
            } => {
                a.extend([
                    scoped.to_hex(),
                    order.to_string(),
                    at.0.to_string(),
                    sender.clone(),
                ]);
                "remember"
            }
            Op::Forget(scoped) => {
                a.extend(scoped.iter().map(|s| s.to_hex()));
                "forget"
            }
            Op::Rollback {
                request,
                proposal,
                at,
                cost,
            } => {
                a.extend([
                    request.to_string(),
                    proposal.to_string(),
                    at.0.to_string(),
                    events::rolled_back(*request, *proposal, *cost, *at),
                    cost.to_string(),
                ]);
                "rollback"
            }
            Op::Resold {
                request,
                proof,
                price,
                proposal,
                at,
            } => {
                a.extend([
                    request.to_string(),
                    proof.to_string(),
                    at.0.to_string(),
                    price.to_string(),
                    events::resold(*request, *proof, *price, *at),
                ]);
                if let Some(p) = proposal {
                    a.push(p.to_string());
                    a.push(events::withdrawn(Side::Proposal, *p, *at));
                }
                "resold"
            }
            Op::Money(m) => {
                // The statement's ledger: the movements as one event (none: nothing).
                a.push(if m.payouts.is_empty() {
                    String::new()
                } else {
                    events::moved(&m.payouts, Millis::now())
                });
                a.push(m.held.len().to_string());
                for (k, v) in &m.held {
                    a.push(k.to_string());
                    a.push(v.to_string());
                }
                for p in &m.payouts {
                    a.extend([
                        p.user.to_lowercase(),
                        p.balance.to_string(),
                        p.blocked.to_string(),
                        p.deposit.to_string(),
                        p.locked.to_string(),
                        p.kind.to_string(),
                        p.order.to_string(),
                        p.generation_ms.to_string(),
                    ]);
                }
                if m.always {
                    "account"
                } else {
                    "money"
                }
            }
        };
        args.push(name.into());
        args.push(a.len().to_string());
        args.extend(a);
    }
}

/// The `accounts` header of a batch: every user whose account on the statement its money
/// ops move, so that the script reads them all with one command (it sends no reply).
fn encode_accounts(ops: &[Op], args: &mut Vec<String>) {
    let mut users: Vec<String> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Money(m) => Some(m.payouts.iter().map(|p| p.user.to_lowercase())),
            _ => None,
        })
        .flatten()
        .collect();
    if users.is_empty() {
        return;
    }
    users.sort_unstable();
    users.dedup();
    args.push("accounts".into());
    args.push(users.len().to_string());
    args.extend(users);
}

/// The identity of a proof's bytes: SHA-256 of its lowercase hex, hex. A proof accepted
/// once is never accepted again, for any match (`transitions.lua`, `proof`).
pub(super) fn proof_digest(proof_hex: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(
        proof_hex.to_ascii_lowercase().as_bytes(),
    ))
}

impl Store {
    /// Applies a batch of transitions of one statement atomically. Returns one
    /// outcome per op.
    pub async fn apply(
        &self,
        stmt: Key,
        fence: Option<u64>,
        ops: &[Op],
    ) -> Result<Vec<Result<(), Refusal>>, StoreError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let mut args: Vec<String> = Vec::with_capacity(ops.len() * 20 + 1);
        args.push(fence.map(|f| f.to_string()).unwrap_or_default());
        args.push(self.event_log_max.to_string());
        encode_accounts(ops, &mut args);
        for op in ops {
            op.encode(&mut args, self.wallets.funding_window_ms);
        }
        let mut call = redis::cmd("FCALL");
        call.arg(&TRANSITIONS.function)
            .arg(1)
            .arg(self.keys.statement(stmt).base())
            .arg(&args);
        let mut c = self.conn.clone();
        let replies: Vec<String> = match call.query_async(&mut c).await {
            Err(e) if is_unknown_function(&e) => {
                // Redis restarted without its functions: load them and retry once
                // (the function never ran).
                self.load_transitions().await?;
                call.query_async(&mut c).await?
            }
            other => other?,
        };
        parse_replies(replies, ops.len())
    }
}

fn parse_replies(
    replies: Vec<String>,
    n_ops: usize,
) -> Result<Vec<Result<(), Refusal>>, StoreError> {
    if replies.first().map(String::as_str) == Some("FENCED") {
        return Err(StoreError::Fenced);
    }
    if replies.len() != n_ops {
        return Err(StoreError::Corrupt(format!(
            "transition script answered {} replies for {} ops",
            replies.len(),
            n_ops
        )));
    }
    replies.iter().map(|r| Refusal::parse_reply(r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_replies_parse_into_outcomes() {
        let r = parse_replies(vec!["OK".into(), "E:exists:order 5 exists".into()], 2).unwrap();
        assert_eq!(r[0], Ok(()));
        assert_eq!(r[1], Err(Refusal::Exists("order 5 exists".into())));
        assert!(matches!(
            parse_replies(vec!["FENCED".into()], 3),
            Err(StoreError::Fenced)
        ));
        assert!(matches!(
            parse_replies(vec!["OK".into()], 2),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn every_refusal_name_parses_and_keeps_its_message() {
        let cases = [
            ("exists", Refusal::Exists("m: x".into())),
            ("not_found", Refusal::NotFound("m: x".into())),
            ("not_yours", Refusal::NotYours("m: x".into())),
            ("wrong_status", Refusal::WrongStatus("m: x".into())),
            ("not_matched", Refusal::NotMatched("m: x".into())),
        ];
        for (name, want) in cases {
            let got = Refusal::parse_reply(&format!("E:{name}:m: x")).unwrap();
            assert_eq!(got, Err(want.clone()), "{name}");
            assert_eq!(want.to_string(), "m: x");
        }
        assert_eq!(
            Refusal::parse_reply("E:exists:").unwrap(),
            Err(Refusal::Exists(String::new()))
        );
    }

    #[test]
    fn unknown_or_malformed_replies_are_corrupt() {
        for bad in [
            "E:bad_op:unknown op x",
            "E:409:old style",
            "E:exists",
            "ERR",
            "",
            "ok",
        ] {
            assert!(
                matches!(Refusal::parse_reply(bad), Err(StoreError::Corrupt(_))),
                "{bad:?}"
            );
        }
        // One unreadable reply spoils the batch: its outcomes cannot be trusted.
        assert!(matches!(
            parse_replies(vec!["OK".into(), "E:nope:x".into()], 2),
            Err(StoreError::Corrupt(_))
        ));
    }
}

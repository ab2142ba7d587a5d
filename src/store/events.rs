//! The statement event log (a Redis Stream per statement, appended by
//! `transitions.lua` in the same atomic step as each transition) and what the archiver
//! does to Redis once PostgreSQL holds the history: mark closed records, trim the log,
//! remove records past their retention.

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::AsyncCommands;

use super::{OrderRecord, ProofRecord, Store, StoreError};
use crate::domain::{Key, Millis, Side, Status};

static ARCHIVED: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("archived.lua")));
static SWEEP: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("sweep.lua")));

/// One entry of a statement's event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The stream entry id (`<ms>-<seq>`), for trimming.
    pub id: String,
    /// The event's number in its statement: 1, 2, 3, ... without gaps.
    pub n: u64,
    /// When it happened.
    pub at: Millis,
    /// What happened.
    pub what: EventKind,
}

/// What an event tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A new order, as stored (its status may already be `completed`, for a request
    /// whose input was proved).
    Placed(Box<OrderRecord>),
    /// Two orders matched at `price` (micro-units).
    Matched {
        /// The request.
        request: Key,
        /// The proposal.
        proposal: Key,
        /// The trade price.
        price: u64,
    },
    /// An open order withdrawn.
    Withdrawn {
        /// Its side.
        side: Side,
        /// The order.
        key: Key,
    },
    /// A producer missed its deadline: the request is open again at `cost`, the
    /// proposal withdrawn (failed).
    RolledBack {
        /// The request.
        request: Key,
        /// The proposal.
        proposal: Key,
        /// The request's cost from now on.
        cost: u64,
    },
    /// A request completed by a proof stored for another match of its input.
    Resold {
        /// The request.
        request: Key,
        /// The proof.
        proof: Key,
        /// What it paid.
        price: u64,
    },
    /// A proof stored; its request and proposal completed.
    Proved {
        /// The proof (its bytes are in its record).
        proof: Key,
        /// The request.
        request: Key,
        /// The proposal.
        proposal: Key,
    },
    /// Money moved between users' accounts on the statement and its orders: the
    /// statement's ledger.
    Moved(Vec<Movement>),
}

/// One movement of a user's account on a statement (signed changes, micro-units).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    /// Whose account (lowercased).
    pub user: String,
    /// Change of its free balance.
    pub balance: i128,
    /// Change of the escrow its requests hold.
    pub blocked: i128,
    /// Change of its free deposit.
    pub deposit: i128,
    /// Change of the collateral its proposals hold.
    pub locked: i128,
    /// What it pays for (topup, escrow, release, earn, sweep, ...).
    pub kind: String,
    /// The order it is about (0 for a sweep).
    pub order: Key,
}

/// An event as the log holds it (JSON, one per `e` field of a stream entry).
#[derive(serde::Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
enum Wire {
    Placed {
        at: u64,
        key: u64,
        f: HashMap<String, String>,
    },
    Matched {
        at: u64,
        request: u64,
        proposal: u64,
        price: u64,
    },
    Withdrawn {
        at: u64,
        kind: String,
        key: u64,
    },
    Proved {
        at: u64,
        proof: u64,
        request: u64,
        proposal: u64,
    },
    RolledBack {
        at: u64,
        request: u64,
        proposal: u64,
        cost: u64,
    },
    Resold {
        at: u64,
        request: u64,
        proof: u64,
        price: u64,
    },
    /// Movements as `[user, balance, blocked, deposit, locked, kind, order]`, amounts
    /// as decimal strings (they pass 2^53).
    Moved {
        at: u64,
        m: Vec<(String, String, String, String, String, String, u64)>,
    },
}

/// Appends `s` to `out` as a JSON string.
fn json_str(out: &mut String, s: &str) {
    // Serializing a &str cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

/// The `placed` event of a new order: its stored fields (see `transitions.lua`).
pub(super) fn placed(o: &OrderRecord) -> String {
    use std::fmt::Write;
    let mut e = String::with_capacity(256);
    // Writing to a String cannot fail.
    let _ = write!(
        e,
        "{{\"ev\":\"placed\",\"at\":{},\"key\":{},\"f\":{{\"kind\":\"{}\",\"status\":\"{}\"",
        o.created.0,
        o.key,
        o.side.as_str(),
        o.status.as_str()
    );
    for (f, v) in o.fields() {
        e.push_str(",\"");
        e.push_str(f);
        e.push_str("\":");
        json_str(&mut e, &v);
    }
    e.push_str("}}");
    e
}

/// The `matched` event.
pub(super) fn matched(request: Key, proposal: Key, price: u64, at: Millis) -> String {
    format!(
        "{{\"ev\":\"matched\",\"at\":{},\"request\":{request},\"proposal\":{proposal},\"price\":{price}}}",
        at.0
    )
}

/// The `withdrawn` event.
pub(super) fn withdrawn(side: Side, key: Key, at: Millis) -> String {
    format!(
        "{{\"ev\":\"withdrawn\",\"at\":{},\"kind\":\"{}\",\"key\":{key}}}",
        at.0,
        side.as_str()
    )
}

/// The `rolled_back` event.
pub(super) fn rolled_back(request: Key, proposal: Key, cost: u64, at: Millis) -> String {
    format!(
        "{{\"ev\":\"rolled_back\",\"at\":{},\"request\":{request},\"proposal\":{proposal},\"cost\":{cost}}}",
        at.0
    )
}

/// The `resold` event.
pub(super) fn resold(request: Key, proof: Key, price: u64, at: Millis) -> String {
    format!(
        "{{\"ev\":\"resold\",\"at\":{},\"request\":{request},\"proof\":{proof},\"price\":{price}}}",
        at.0
    )
}

/// The `moved` event of the account movements `payouts` (see [`Movement`]).
pub(super) fn moved(payouts: &[super::Payout], at: Millis) -> String {
    use std::fmt::Write;
    let mut e = String::with_capacity(32 + 64 * payouts.len());
    // Writing to a String cannot fail.
    let _ = write!(e, "{{\"ev\":\"moved\",\"at\":{},\"m\":[", at.0);
    for (i, p) in payouts.iter().enumerate() {
        if i > 0 {
            e.push(',');
        }
        e.push('[');
        json_str(&mut e, &p.user.to_lowercase());
        let _ = write!(
            e,
            ",\"{}\",\"{}\",\"{}\",\"{}\",\"{}\",{}]",
            p.balance, p.blocked, p.deposit, p.locked, p.kind, p.order
        );
    }
    e.push_str("]}");
    e
}

/// The `proved` event (the proof's bytes stay in its record).
pub(super) fn proved(p: &ProofRecord) -> String {
    format!(
        "{{\"ev\":\"proved\",\"at\":{},\"proof\":{},\"request\":{},\"proposal\":{}}}",
        p.created.0, p.key, p.request, p.proposal
    )
}

impl Event {
    /// Parses one stream entry: `n <first>`, then `e <event>` per event.
    fn parse_entry(id: String, fields: Vec<String>) -> Result<Vec<Event>, StoreError> {
        let bad = |what: &str| StoreError::Corrupt(format!("event entry {id}: {what}"));
        let mut it = fields.into_iter();
        let first = match (it.next().as_deref(), it.next()) {
            (Some("n"), Some(n)) => n.parse::<u64>().map_err(|_| bad("bad `n`"))?,
            _ => return Err(bad("no `n` first")),
        };
        let mut out = Vec::new();
        while let (Some(f), Some(v)) = (it.next(), it.next()) {
            if f != "e" {
                return Err(bad(&format!("unknown field {f:?}")));
            }
            let wire: Wire =
                serde_json::from_str(&v).map_err(|e| bad(&format!("event {v:?}: {e}")))?;
            let n = first + out.len() as u64;
            let (at, what) = match wire {
                Wire::Placed { at, key, f } => (
                    at,
                    EventKind::Placed(Box::new(OrderRecord::from_hash(Key(key), &f)?)),
                ),
                Wire::Matched {
                    at,
                    request,
                    proposal,
                    price,
                } => (
                    at,
                    EventKind::Matched {
                        request: Key(request),
                        proposal: Key(proposal),
                        price,
                    },
                ),
                Wire::Withdrawn { at, kind, key } => {
                    let side = match kind.as_str() {
                        "request" => Side::Request,
                        "proposal" => Side::Proposal,
                        _ => return Err(bad(&format!("event {n}: bad kind {kind:?}"))),
                    };
                    (
                        at,
                        EventKind::Withdrawn {
                            side,
                            key: Key(key),
                        },
                    )
                }
                Wire::Proved {
                    at,
                    proof,
                    request,
                    proposal,
                } => (
                    at,
                    EventKind::Proved {
                        proof: Key(proof),
                        request: Key(request),
                        proposal: Key(proposal),
                    },
                ),
                Wire::Resold {
                    at,
                    request,
                    proof,
                    price,
                } => (
                    at,
                    EventKind::Resold {
                        request: Key(request),
                        proof: Key(proof),
                        price,
                    },
                ),
                Wire::Moved { at, m } => {
                    let num =
                        |v: &str| v.parse::<i128>().map_err(|_| bad(&format!("amount {v:?}")));
                    let movements = m
                        .into_iter()
                        .map(|(user, b, k, d, l, kind, order)| {
                            Ok(Movement {
                                user,
                                balance: num(&b)?,
                                blocked: num(&k)?,
                                deposit: num(&d)?,
                                locked: num(&l)?,
                                kind,
                                order: Key(order),
                            })
                        })
                        .collect::<Result<_, StoreError>>()?;
                    (at, EventKind::Moved(movements))
                }
                Wire::RolledBack {
                    at,
                    request,
                    proposal,
                    cost,
                } => (
                    at,
                    EventKind::RolledBack {
                        request: Key(request),
                        proposal: Key(proposal),
                        cost,
                    },
                ),
            };
            out.push(Event {
                id: id.clone(),
                n,
                at: Millis(at),
                what,
            });
        }
        if out.is_empty() {
            return Err(bad("no event"));
        }
        Ok(out)
    }

    /// The orders this event names by key (not a placement, which carries its order,
    /// nor movements).
    pub fn named_orders(&self) -> Vec<Key> {
        match &self.what {
            EventKind::Matched {
                request, proposal, ..
            }
            | EventKind::RolledBack {
                request, proposal, ..
            }
            | EventKind::Proved {
                request, proposal, ..
            } => vec![*request, *proposal],
            EventKind::Withdrawn { key, .. } => vec![*key],
            EventKind::Resold { request, .. } => vec![*request],
            EventKind::Placed(_) | EventKind::Moved(_) => Vec::new(),
        }
    }

    /// The records this event closed, as members of the `closed` set
    /// (`o:<order>`, `p:<proof>`).
    pub fn closed(&self) -> Vec<String> {
        match &self.what {
            EventKind::Placed(o) if matches!(o.status, Status::Completed | Status::Withdrawn) => {
                vec![format!("o:{}", o.key)]
            }
            EventKind::Placed(_) | EventKind::Matched { .. } | EventKind::Moved(_) => Vec::new(),
            EventKind::Withdrawn { key, .. } => vec![format!("o:{key}")],
            EventKind::RolledBack { proposal, .. } => vec![format!("o:{proposal}")],
            EventKind::Resold { request, .. } => vec![format!("o:{request}")],
            EventKind::Proved {
                proof,
                request,
                proposal,
            } => vec![
                format!("o:{request}"),
                format!("o:{proposal}"),
                format!("p:{proof}"),
            ],
        }
    }
}

/// A statement's event log as it stands: its oldest entry and its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogState {
    /// Events not archived yet.
    pub pending: u64,
    /// The time of the oldest of them.
    pub oldest: Option<Millis>,
    /// The number of the last event appended.
    pub last: u64,
}

fn fenced_or_ok(reply: &redis::Value) -> Result<(), StoreError> {
    match reply {
        redis::Value::SimpleString(s) | redis::Value::VerbatimString { text: s, .. }
            if s == "FENCED" =>
        {
            Err(StoreError::Fenced)
        }
        redis::Value::BulkString(b) if b == b"FENCED" => Err(StoreError::Fenced),
        _ => Ok(()),
    }
}

impl Store {
    /// The events of the oldest entries of a statement's log not archived yet, at most
    /// `max` entries (an entry holds the events of one batch, up to 1000), and how many
    /// entries were read.
    pub async fn read_events(
        &self,
        stmt: Key,
        max: usize,
    ) -> Result<(usize, Vec<Event>), StoreError> {
        let mut c = self.conn.clone();
        let after: Option<String> = c.get(self.keys.statement(stmt).archived_id()).await?;
        let from = match after {
            Some(id) => format!("({id}"),
            None => "-".to_owned(),
        };
        self.events_from(stmt, &from, max).await
    }

    /// The events of at most `max` entries of a statement's log from `from` on (an
    /// XRANGE start: `-`, an entry id, or `(<id>` for the entries after it), and how
    /// many entries were read.
    pub async fn events_from(
        &self,
        stmt: Key,
        from: &str,
        max: usize,
    ) -> Result<(usize, Vec<Event>), StoreError> {
        let mut c = self.conn.clone();
        let rows: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
            .arg(self.keys.statement(stmt).events())
            .arg(from)
            .arg("+")
            .arg("COUNT")
            .arg(max)
            .query_async(&mut c)
            .await?;
        let entries = rows.len();
        let mut out = Vec::new();
        for (id, fields) in rows {
            out.extend(Event::parse_entry(id, fields)?);
        }
        Ok((entries, out))
    }

    /// The id of the last entry of a statement's log (`None`: empty).
    pub async fn last_entry_id(&self, stmt: Key) -> Result<Option<String>, StoreError> {
        let mut c = self.conn.clone();
        let last: Vec<(String, Vec<String>)> = redis::cmd("XREVRANGE")
            .arg(self.keys.statement(stmt).events())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut c)
            .await?;
        Ok(last.into_iter().next().map(|(id, _)| id))
    }

    /// The number of the first event a statement's log still holds (`None`: empty) and
    /// of the last event ever appended.
    pub async fn log_bounds(&self, stmt: Key) -> Result<(Option<u64>, u64), StoreError> {
        let k = self.keys.statement(stmt);
        let mut c = self.conn.clone();
        let last: Option<u64> = c.get(k.event_seq()).await?;
        let first: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
            .arg(k.events())
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut c)
            .await?;
        let first = match first.into_iter().next() {
            Some((id, fields)) => Event::parse_entry(id, fields)?.first().map(|e| e.n),
            None => None,
        };
        Ok((first, last.unwrap_or(0)))
    }

    /// The log's events not archived yet, the oldest one's time and the last event
    /// number.
    pub async fn log_state(&self, stmt: Key) -> Result<LogState, StoreError> {
        let k = self.keys.statement(stmt);
        let mut c = self.conn.clone();
        let (last, archived): (Option<u64>, Option<u64>) = redis::pipe()
            .get(k.event_seq())
            .get(k.archived())
            .query_async(&mut c)
            .await?;
        let last = last.unwrap_or(0);
        let pending = last.saturating_sub(archived.unwrap_or(0));
        let oldest = if pending == 0 {
            None
        } else {
            self.read_events(stmt, 1).await?.1.first().map(|e| e.at)
        };
        Ok(LogState {
            pending,
            oldest,
            last,
        })
    }

    /// After PostgreSQL committed the events up to `last` (id and number): marks the
    /// `closed` records (member, close time) for removal after the retention and trims
    /// the log through `last`, but for the entries of the last resume window
    /// ([`Store::with_resume_window`]), which live streams resume from.
    pub async fn finish_archived(
        &self,
        stmt: Key,
        fence: Option<u64>,
        last: (&str, u64),
        closed: &[(String, Millis)],
    ) -> Result<(), StoreError> {
        let mut inv = ARCHIVED.key(self.keys.statement(stmt).base());
        inv.arg(fence.map(|f| f.to_string()).unwrap_or_default())
            .arg(last.0)
            .arg(last.1)
            .arg(self.resume_window_ms);
        for (m, at) in closed {
            inv.arg(m).arg(at.0);
        }
        let mut c = self.conn.clone();
        let reply: redis::Value = inv.invoke_async(&mut c).await?;
        fenced_or_ok(&reply)
    }

    /// Removes at most `max` archived closed records that closed at or before `cutoff`,
    /// and their locators, and trims archived events past the resume window from the
    /// log. Returns the keys removed.
    pub async fn sweep_closed(
        &self,
        stmt: Key,
        fence: Option<u64>,
        cutoff: Millis,
        max: usize,
    ) -> Result<Vec<Key>, StoreError> {
        let mut inv = SWEEP.key(self.keys.statement(stmt).base());
        inv.arg(fence.map(|f| f.to_string()).unwrap_or_default())
            .arg(cutoff.0)
            .arg(max)
            .arg(self.resume_window_ms);
        let mut c = self.conn.clone();
        let reply: redis::Value = inv.invoke_async(&mut c).await?;
        fenced_or_ok(&reply)?;
        let keys: Vec<u64> = redis::FromRedisValue::from_redis_value(reply)
            .map_err(|e| StoreError::Corrupt(format!("sweep script answered: {e}")))?;
        let keys: Vec<Key> = keys.into_iter().map(Key).collect();
        self.delete_locators(&keys).await?;
        Ok(keys)
    }

    /// Deletes the locators of removed records made before key blocks (outside the
    /// statement's slot, so after its script: a locator left behind by a crash leads a
    /// reader to Redis, which no longer has the record, and then to PostgreSQL, which
    /// does). Keys at or above the first block's never had one.
    async fn delete_locators(&self, keys: &[Key]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut c = self.conn.clone();
        let first: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(self.keys.blocks())
            .arg(0)
            .arg(0)
            .arg("WITHSCORES")
            .query_async(&mut c)
            .await?;
        let blocks_from = first.first().map_or(u64::MAX, |(_, s)| *s as u64);
        let keys: Vec<Key> = keys.iter().copied().filter(|k| k.0 < blocks_from).collect();
        if keys.is_empty() {
            return Ok(());
        }
        if self.is_cluster() {
            for chunk in keys.chunks(64) {
                let dels = chunk.iter().map(|k| {
                    let mut c = self.conn.clone();
                    let name = self.keys.locator(*k);
                    async move { c.del::<_, ()>(name).await }
                });
                for r in futures_util::future::join_all(dels).await {
                    r?;
                }
            }
            return Ok(());
        }
        let mut p = redis::pipe();
        for k in &keys {
            p.del(self.keys.locator(*k)).ignore();
        }
        p.query_async::<()>(&mut c).await?;
        Ok(())
    }

    /// Every order and proof of a statement that Redis holds, for a full copy to the
    /// archive (a statement archived for the first time, or one whose log lost events
    /// to its cap). Returns them with the number of the last event appended *before*
    /// they were read: the copy reflects at least every event up to it.
    pub async fn statement_records(
        &self,
        stmt: Key,
    ) -> Result<(u64, Vec<OrderRecord>, Vec<Key>), StoreError> {
        let mut c = self.conn.clone();
        let before: Option<u64> = c.get(self.keys.statement(stmt).event_seq()).await?;
        let mut orders = Vec::new();
        for side in [Side::Request, Side::Proposal] {
            for status in Status::ALL {
                let keys = self.order_keys(stmt, side, status, usize::MAX / 2).await?;
                orders.extend(self.get_orders(stmt, &keys).await?);
            }
        }
        let mut proofs: Vec<Key> = orders
            .iter()
            .filter(|o| o.side == Side::Request)
            .filter_map(|o| o.proof_key)
            .collect();
        proofs.sort();
        proofs.dedup();
        Ok((before.unwrap_or(0), orders, proofs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Cost, Minutes};

    fn order() -> OrderRecord {
        OrderRecord {
            key: Key(7),
            side: Side::Request,
            statement: Key(3),
            cost: Cost::from_micros(5_000_000).unwrap(),
            eval_time: Some(Minutes(2)),
            wait_period: None,
            sender: "al\"x".into(),
            created: Millis(1000),
            updated: Millis(1000),
            status: Status::Completed,
            seq: 4,
            input: Some("[{\"field\": 1}]".into()),
            canon: Some("1".into()),
            counterpart: None,
            matched_time: None,
            price: None,
            proof_key: Some(Key(9)),
            held: 0,
            funded_at: None,
            failed: None,
        }
    }

    #[test]
    fn an_entry_of_events_round_trips_with_numbers_and_closings() {
        let proof = ProofRecord {
            key: Key(9),
            statement: Key(3),
            request: Key(7),
            proposal: Key(8),
            sender: "p".into(),
            input: "[]".into(),
            generation_ms: 5,
            created: Millis(2000),
            output: None,
            proof_system: "x".into(),
            proof_hex: "00".into(),
        };
        let fields: Vec<String> = ["n".to_string(), "41".into()]
            .into_iter()
            .chain(
                [
                    placed(&order()),
                    matched(Key(7), Key(8), 10, Millis(1500)),
                    proved(&proof),
                    withdrawn(Side::Proposal, Key(8), Millis(3000)),
                ]
                .into_iter()
                .flat_map(|e| ["e".to_string(), e]),
            )
            .collect();
        let ev = Event::parse_entry("5-0".into(), fields).unwrap();
        assert_eq!(
            ev.iter().map(|e| e.n).collect::<Vec<_>>(),
            vec![41, 42, 43, 44]
        );
        assert!(ev.iter().all(|e| e.id == "5-0"));
        assert_eq!(ev[0].what, EventKind::Placed(Box::new(order())));
        assert_eq!(ev[0].at, Millis(1000));
        assert_eq!(ev[0].closed(), vec!["o:7".to_string()]);
        assert_eq!(
            ev[1].what,
            EventKind::Matched {
                request: Key(7),
                proposal: Key(8),
                price: 10
            }
        );
        assert!(ev[1].closed().is_empty());
        assert_eq!(ev[2].closed(), vec!["o:7", "o:8", "p:9"]);
        assert_eq!(
            ev[3].what,
            EventKind::Withdrawn {
                side: Side::Proposal,
                key: Key(8)
            }
        );
        assert_eq!(ev[3].at, Millis(3000));
    }

    #[test]
    fn movements_round_trip_exactly_beyond_2_pow_63() {
        let big = 10i128.pow(19) + 7;
        let p = crate::store::Payout {
            user: "Eve\"q".into(),
            balance: -big,
            blocked: big,
            deposit: 0,
            locked: -1,
            kind: "escrow",
            order: Key(12),
            generation_ms: 0,
        };
        let fields = vec![
            "n".to_string(),
            "3".into(),
            "e".into(),
            moved(&[p], Millis(77)),
        ];
        let ev = Event::parse_entry("1-0".into(), fields).unwrap();
        assert_eq!(ev[0].at, Millis(77));
        assert_eq!(
            ev[0].what,
            EventKind::Moved(vec![Movement {
                user: "eve\"q".into(),
                balance: -big,
                blocked: big,
                deposit: 0,
                locked: -1,
                kind: "escrow".into(),
                order: Key(12),
            }])
        );
        assert!(ev[0].closed().is_empty());
    }

    #[test]
    fn malformed_entries_are_corrupt() {
        let e = |v: &str| vec!["n".to_string(), "1".into(), "e".into(), v.to_string()];
        for bad in [
            vec![],
            vec!["n".to_string(), "1".into()],
            vec![
                "x".to_string(),
                "1".into(),
                "e".into(),
                matched(Key(1), Key(2), 3, Millis(4)),
            ],
            vec![
                "n".to_string(),
                "1".into(),
                "f".into(),
                matched(Key(1), Key(2), 3, Millis(4)),
            ],
            e(r#"{"ev":"nope","at":1}"#),
            e(r#"{"ev":"matched","at":"x","request":1,"proposal":2,"price":3}"#),
            e(r#"{"ev":"withdrawn","at":1,"kind":"bid","key":2}"#),
            e(r#"{"ev":"placed","at":1,"key":2,"f":{"kind":"request"}}"#),
            e("not json"),
        ] {
            assert!(
                matches!(
                    Event::parse_entry("1-0".into(), bad.clone()),
                    Err(StoreError::Corrupt(_))
                ),
                "{bad:?}"
            );
        }
    }
}

//! The statement event log (a Redis Stream per statement, appended by
//! `transitions.lua` in the same atomic step as each transition) and what the archiver
//! does to Redis once PostgreSQL holds the history: mark closed records, trim the log,
//! remove records past their retention.

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::AsyncCommands;

use super::{OrderRecord, Store, StoreError};
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
    /// A proof stored; its request and proposal completed.
    Proved {
        /// The proof (its bytes are in its record).
        proof: Key,
        /// The request.
        request: Key,
        /// The proposal.
        proposal: Key,
    },
}

impl Event {
    /// Parses one stream entry.
    fn parse(id: String, fields: Vec<String>) -> Result<Event, StoreError> {
        let bad = |what: &str| StoreError::Corrupt(format!("event {id}: bad or missing `{what}`"));
        let mut h: HashMap<String, String> = HashMap::with_capacity(fields.len() / 2);
        let mut it = fields.into_iter();
        while let (Some(f), Some(v)) = (it.next(), it.next()) {
            h.insert(f, v);
        }
        let num = |f: &str| -> Result<u64, StoreError> {
            h.get(f)
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| bad(f))
        };
        let key = |f: &str| num(f).map(Key);
        let side = |f: &str| match h.get(f).map(String::as_str) {
            Some("request") => Ok(Side::Request),
            Some("proposal") => Ok(Side::Proposal),
            _ => Err(bad(f)),
        };
        let what = match h.get("ev").map(String::as_str) {
            Some("placed") => EventKind::Placed(Box::new(OrderRecord::from_hash(key("key")?, &h)?)),
            Some("matched") => EventKind::Matched {
                request: key("request")?,
                proposal: key("proposal")?,
                price: num("price")?,
            },
            Some("withdrawn") => EventKind::Withdrawn {
                side: side("kind")?,
                key: key("key")?,
            },
            Some("proved") => EventKind::Proved {
                proof: key("proof")?,
                request: key("request")?,
                proposal: key("proposal")?,
            },
            _ => return Err(bad("ev")),
        };
        Ok(Event {
            n: num("n")?,
            at: Millis(num("at")?),
            what,
            id,
        })
    }

    /// The records this event closed, as members of the `closed` set
    /// (`o:<order>`, `p:<proof>`).
    pub fn closed(&self) -> Vec<String> {
        match &self.what {
            EventKind::Placed(o) if matches!(o.status, Status::Completed | Status::Withdrawn) => {
                vec![format!("o:{}", o.key)]
            }
            EventKind::Placed(_) | EventKind::Matched { .. } => Vec::new(),
            EventKind::Withdrawn { key, .. } => vec![format!("o:{key}")],
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
    /// Events not yet trimmed (not yet archived, or archived a moment ago).
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
    /// The oldest events of a statement's log, at most `max`.
    pub async fn read_events(&self, stmt: Key, max: usize) -> Result<Vec<Event>, StoreError> {
        let mut c = self.conn.clone();
        let rows: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
            .arg(self.keys.statement(stmt).events())
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(max)
            .query_async(&mut c)
            .await?;
        rows.into_iter()
            .map(|(id, fields)| Event::parse(id, fields))
            .collect()
    }

    /// The log's length, oldest entry's time and last event number.
    pub async fn log_state(&self, stmt: Key) -> Result<LogState, StoreError> {
        let k = self.keys.statement(stmt);
        let mut c = self.conn.clone();
        let pending: u64 = c.xlen(k.events()).await?;
        let last: Option<u64> = c.get(k.event_seq()).await?;
        let oldest = if pending == 0 {
            None
        } else {
            self.read_events(stmt, 1).await?.first().map(|e| e.at)
        };
        Ok(LogState {
            pending,
            oldest,
            last: last.unwrap_or(0),
        })
    }

    /// After PostgreSQL committed the events up to `last` (id and number): marks the
    /// `closed` records (member, close time) for removal after the retention and trims
    /// the log through `last`.
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
            .arg(last.1);
        for (m, at) in closed {
            inv.arg(m).arg(at.0);
        }
        let mut c = self.conn.clone();
        let reply: redis::Value = inv.invoke_async(&mut c).await?;
        fenced_or_ok(&reply)
    }

    /// Removes at most `max` archived closed records that closed at or before `cutoff`,
    /// and their locators. Returns the keys removed.
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
            .arg(max);
        let mut c = self.conn.clone();
        let reply: redis::Value = inv.invoke_async(&mut c).await?;
        fenced_or_ok(&reply)?;
        let keys: Vec<u64> = redis::FromRedisValue::from_redis_value(reply)
            .map_err(|e| StoreError::Corrupt(format!("sweep script answered: {e}")))?;
        let keys: Vec<Key> = keys.into_iter().map(Key).collect();
        self.delete_locators(&keys).await?;
        Ok(keys)
    }

    /// Deletes the locators of removed records (outside the statement's slot, so after
    /// its script: a locator left behind by a crash leads a reader to Redis, which no
    /// longer has the record, and then to PostgreSQL, which does).
    async fn delete_locators(&self, keys: &[Key]) -> Result<(), StoreError> {
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
        for k in keys {
            p.del(self.keys.locator(*k)).ignore();
        }
        let mut c = self.conn.clone();
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

    fn fields(pairs: &[(&str, &str)]) -> Vec<String> {
        pairs
            .iter()
            .flat_map(|(f, v)| [f.to_string(), v.to_string()])
            .collect()
    }

    #[test]
    fn events_parse_and_name_what_they_close() {
        let placed = Event::parse(
            "1-0".into(),
            fields(&[
                ("n", "1"),
                ("ev", "placed"),
                ("at", "1000"),
                ("kind", "request"),
                ("key", "7"),
                ("status", "completed"),
                ("statement_key", "3"),
                ("cost", "5000000"),
                ("eval_time", ""),
                ("wait_period", ""),
                ("sender", "al"),
                ("createdOn", "1000"),
                ("updatedOn", "1000"),
                ("seq", "4"),
                ("input", "[]"),
                ("proof_key", "9"),
            ]),
        )
        .unwrap();
        assert_eq!(placed.n, 1);
        let EventKind::Placed(o) = &placed.what else {
            panic!("{placed:?}")
        };
        assert_eq!(
            (o.key, o.statement, o.proof_key),
            (Key(7), Key(3), Some(Key(9)))
        );
        assert_eq!(placed.closed(), vec!["o:7".to_string()]);

        let proved = Event::parse(
            "2-0".into(),
            fields(&[
                ("n", "2"),
                ("ev", "proved"),
                ("at", "2000"),
                ("proof", "9"),
                ("request", "7"),
                ("proposal", "8"),
            ]),
        )
        .unwrap();
        assert_eq!(proved.closed(), vec!["o:7", "o:8", "p:9"]);
        let matched = Event::parse(
            "3-0".into(),
            fields(&[
                ("n", "3"),
                ("ev", "matched"),
                ("at", "5"),
                ("request", "7"),
                ("proposal", "8"),
                ("price", "10"),
            ]),
        )
        .unwrap();
        assert!(matched.closed().is_empty());
        let w = Event::parse(
            "4-0".into(),
            fields(&[
                ("n", "4"),
                ("ev", "withdrawn"),
                ("at", "5"),
                ("kind", "proposal"),
                ("key", "8"),
            ]),
        )
        .unwrap();
        assert_eq!(
            w.what,
            EventKind::Withdrawn {
                side: Side::Proposal,
                key: Key(8)
            }
        );
    }

    #[test]
    fn malformed_events_are_corrupt() {
        for bad in [
            fields(&[("n", "1"), ("ev", "nope"), ("at", "1")]),
            fields(&[
                ("ev", "matched"),
                ("at", "1"),
                ("request", "1"),
                ("proposal", "2"),
                ("price", "3"),
            ]),
            fields(&[
                ("n", "1"),
                ("ev", "matched"),
                ("at", "x"),
                ("request", "1"),
                ("proposal", "2"),
                ("price", "3"),
            ]),
            fields(&[
                ("n", "1"),
                ("ev", "withdrawn"),
                ("at", "1"),
                ("kind", "bid"),
                ("key", "2"),
            ]),
        ] {
            assert!(matches!(
                Event::parse("1-0".into(), bad),
                Err(StoreError::Corrupt(_))
            ));
        }
    }
}

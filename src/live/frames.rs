//! What a live stream sends: Server-Sent Events frames rendered from the statement
//! event log ([`crate::store::Event`]) and the wallet ledger, and the ids that let a
//! client resume. Pure: no I/O, unit-tested here.
//!
//! An event's SSE `id` is `<entry>/<statement>/<n>`: the stream entry that holds it
//! (`<ms>-<seq>`, Redis's time), its statement and its number there (1, 2, 3, ...
//! without gaps). A client reconnecting sends the last one back as `Last-Event-ID`.
//! Frames that are state rather than events (`book`, `wallet`, wallet movements,
//! `reset`, `hello`) carry no id, so they never move a client's resume point.

use std::fmt::Write;

use actix_web::web::Bytes;
use serde_json::{json, Value};

use crate::api::views;
use crate::domain::{amount_json, amount_text, Key, Minutes, Side};
use crate::store::{Event, EventKind, LedgerEntry, Movement, OrderRecord};

/// Where an event sits in its statement's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// The stream entry holding it: Redis's time (ms) and sequence.
    pub entry: (u64, u64),
    /// The statement.
    pub stmt: Key,
    /// Its number in the statement's log.
    pub n: u64,
}

impl Position {
    /// The position of `e` of `stmt`.
    pub fn of(stmt: Key, e: &Event) -> Option<Position> {
        Some(Position {
            entry: parse_entry_id(&e.id)?,
            stmt,
            n: e.n,
        })
    }

    /// The SSE id: `<ms>-<seq>/<statement>/<n>`.
    pub fn id(&self) -> String {
        format!("{}-{}/{}/{}", self.entry.0, self.entry.1, self.stmt, self.n)
    }

    /// Reads a `Last-Event-ID`; `None` for anything this market did not send.
    pub fn parse(id: &str) -> Option<Position> {
        let mut it = id.trim().split('/');
        let (entry, stmt, n) = (it.next()?, it.next()?, it.next()?);
        if it.next().is_some() {
            return None;
        }
        Some(Position {
            entry: parse_entry_id(entry)?,
            stmt: Key::parse(stmt)?,
            n: n.parse().ok()?,
        })
    }

    /// The stream entry id, `<ms>-<seq>`.
    pub fn entry_id(&self) -> String {
        format!("{}-{}", self.entry.0, self.entry.1)
    }
}

/// Reads a stream entry id `<ms>-<seq>`.
pub fn parse_entry_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// One SSE frame, rendered once and shared by every stream that sends it.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The event's position, for frames that are events of a statement's log.
    pub pos: Option<Position>,
    /// The bytes on the wire: `id:`, `event:`, `data:` lines and a blank line.
    pub bytes: Bytes,
}

impl Frame {
    /// A frame of `kind` with JSON `data`, with an id when it has a position.
    pub fn new(pos: Option<Position>, kind: &str, data: &Value) -> Frame {
        let mut s = String::with_capacity(128);
        if let Some(p) = pos {
            let _ = writeln!(s, "id: {}", p.id());
        }
        // serde_json never writes a raw newline, so the data is one line.
        let _ = write!(s, "event: {kind}\ndata: {data}\n\n");
        Frame {
            pos,
            bytes: Bytes::from(s),
        }
    }

    /// A comment line, which clients ignore: keeps idle connections open through
    /// proxies and finds clients that went away.
    pub fn ping() -> Bytes {
        Bytes::from_static(b": ping\n\n")
    }

    /// The frame's bytes as text (tests).
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.bytes).unwrap_or("")
    }
}

/// What the public stream of a statement tells of an order (no sender, no input).
fn public_order(side: Side, key: Key, cost: u64, eval_time: Option<Minutes>) -> Value {
    json!({
        "side": side.as_str(),
        "key": key.to_string(),
        "cost": amount_json(u128::from(cost)),
        "eval_time": eval_time.map(|t| t.0),
    })
}

/// What an order known to a statement's stream is: side, cost, generation time and
/// sender, as far as the stream has seen it (see [`super::depth::Orders`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// Request or proposal.
    pub side: Side,
    /// Its cost (micro-units).
    pub cost: u64,
    /// Its generation time.
    pub eval_time: Option<Minutes>,
    /// Who placed it (lowercased).
    pub sender: String,
}

impl Known {
    /// What `o` is.
    pub fn of(o: &OrderRecord) -> Known {
        Known {
            side: o.side,
            cost: o.cost.micros(),
            eval_time: o.eval_time,
            sender: o.sender.to_lowercase(),
        }
    }
}

/// The public frame of an event of `stmt` (its book and trades), if it has one:
/// ledger movements are private. `known` tells what the stream knows of an order.
pub fn public(stmt: Key, e: &Event, known: &dyn Fn(Key) -> Option<Known>) -> Option<Frame> {
    let pos = Position::of(stmt, e);
    let at = e.at.0;
    let s = stmt.to_string();
    let (kind, data) = match &e.what {
        EventKind::Placed(o) => {
            let mut v = public_order(o.side, o.key, o.cost.micros(), o.eval_time);
            v["statement_key"] = json!(s);
            v["status"] = json!(o.status.as_str());
            v["at"] = json!(at);
            ("order", v)
        }
        EventKind::Matched {
            request,
            proposal,
            price,
        } => (
            "trade",
            json!({"statement_key": s, "request_key": request.to_string(),
                   "proposal_key": proposal.to_string(),
                   "price": amount_json(u128::from(*price)), "at": at}),
        ),
        EventKind::Withdrawn { side, key } => {
            let mut v = json!({"statement_key": s, "side": side.as_str(),
                               "key": key.to_string(), "at": at});
            if let Some(k) = known(*key) {
                v["cost"] = amount_json(u128::from(k.cost));
                v["eval_time"] = json!(k.eval_time.map(|t| t.0));
            }
            ("withdrawn", v)
        }
        EventKind::RolledBack {
            request,
            proposal,
            cost,
        } => (
            "rolled_back",
            json!({"statement_key": s, "request_key": request.to_string(),
                   "proposal_key": proposal.to_string(),
                   "cost": amount_json(u128::from(*cost)), "at": at}),
        ),
        EventKind::Proved {
            proof,
            request,
            proposal,
        } => (
            "proved",
            json!({"statement_key": s, "proof_key": proof.to_string(),
                   "request_key": request.to_string(),
                   "proposal_key": proposal.to_string(), "at": at}),
        ),
        EventKind::Resold {
            request,
            proof,
            price,
        } => (
            "resold",
            json!({"statement_key": s, "request_key": request.to_string(),
                   "proof_key": proof.to_string(),
                   "price": amount_json(u128::from(*price)), "at": at}),
        ),
        EventKind::Moved(_) => return None,
    };
    Some(Frame::new(pos, kind, &data))
}

/// The users (lowercased) an event concerns, with `known` telling the sender of an
/// order the event names only by key.
pub fn concerned(e: &Event, known: &dyn Fn(Key) -> Option<Known>) -> Vec<String> {
    let mut users: Vec<String> = match &e.what {
        EventKind::Placed(o) => vec![o.sender.to_lowercase()],
        EventKind::Moved(m) => m.iter().map(|m| m.user.to_lowercase()).collect(),
        _ => e
            .named_orders()
            .into_iter()
            .filter_map(|k| known(k).map(|k| k.sender))
            .collect(),
    };
    users.sort();
    users.dedup();
    users
}

/// The frame of an event of `stmt` for `user`, who it concerns: their order placed,
/// matched, proved (completed), withdrawn, rolled back, resold, or their account's
/// movements on the statement.
pub fn private(stmt: Key, e: &Event, user: &str) -> Option<Frame> {
    let pos = Position::of(stmt, e);
    if let EventKind::Placed(o) = &e.what {
        let v = serde_json::to_value(views::order(o)).ok()?;
        return Some(Frame::new(pos, "placed", &v));
    }
    if let EventKind::Moved(m) = &e.what {
        let mine: Vec<Value> = m
            .iter()
            .filter(|m| m.user.eq_ignore_ascii_case(user))
            .map(movement)
            .collect();
        if mine.is_empty() {
            return None;
        }
        let v = json!({"statement_key": stmt.to_string(), "movements": mine, "at": e.at.0});
        return Some(Frame::new(pos, "movement", &v));
    }
    let mut f = public(stmt, e, &|_| None)?;
    // The same data, under the user's own event names.
    if let EventKind::Matched { .. } = &e.what {
        let text = f.text().replacen("event: trade\n", "event: matched\n", 1);
        f.bytes = Bytes::from(text);
    }
    Some(f)
}

/// A signed amount as a JSON number of units.
fn signed(v: i128) -> Value {
    let text = amount_text(v.unsigned_abs());
    let text = if v < 0 { format!("-{text}") } else { text };
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn movement(m: &Movement) -> Value {
    json!({
        "kind": m.kind,
        "balance": signed(m.balance),
        "blocked": signed(m.blocked),
        "deposit": signed(m.deposit),
        "locked": signed(m.locked),
        "order_key": (m.order.0 != 0).then(|| m.order.to_string()),
    })
}

/// The frame of an entry of the user's wallet ledger (no id: see the module docs).
pub fn wallet_movement(e: &LedgerEntry) -> Frame {
    let v = json!({
        "statement_key": Value::Null,
        "movements": [{
            "kind": e.kind,
            "balance": signed(e.balance),
            "deposit": signed(e.deposit),
            "reference": e.reference,
        }],
        "at": e.at,
    });
    Frame::new(None, "movement", &v)
}

/// A frame without an id (`book`, `wallet`, `hello`, `reset`).
pub fn state(kind: &str, data: &Value) -> Frame {
    Frame::new(None, kind, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Cost, Millis, Status};

    fn ev(n: u64, what: EventKind) -> Event {
        Event {
            id: "1700-3".into(),
            n,
            at: Millis(1700),
            what,
        }
    }

    fn order(key: u64, side: Side, sender: &str) -> OrderRecord {
        OrderRecord {
            key: Key(key),
            side,
            statement: Key(5),
            cost: Cost::from_micros(2_500_000).unwrap(),
            eval_time: Some(Minutes(3)),
            wait_period: None,
            sender: sender.into(),
            created: Millis(1700),
            updated: Millis(1700),
            status: Status::Created,
            seq: 1,
            input: Some("[{\"field\": 1}]".into()),
            canon: Some("1".into()),
            counterpart: None,
            matched_time: None,
            price: None,
            proof_key: None,
            held: 0,
            funded_at: None,
            failed: None,
        }
    }

    #[test]
    fn ids_round_trip_and_foreign_ones_are_refused() {
        let p = Position {
            entry: (1700, 3),
            stmt: Key(5),
            n: 42,
        };
        assert_eq!(p.id(), "1700-3/5/42");
        assert_eq!(Position::parse(&p.id()), Some(p));
        for bad in [
            "",
            "42",
            "1700-3/5",
            "1700/5/42",
            "1700-3/x/42",
            "1700-3/5/42/1",
            "a-b/5/1",
        ] {
            assert_eq!(Position::parse(bad), None, "{bad}");
        }
        let later = Position { n: 43, ..p };
        assert!(later > p);
    }

    #[test]
    fn the_public_frame_of_a_placed_order_has_no_sender_or_input() {
        let e = ev(
            7,
            EventKind::Placed(Box::new(order(9, Side::Request, "Alice"))),
        );
        let f = public(Key(5), &e, &|_| None).unwrap();
        let t = f.text();
        assert!(
            t.starts_with("id: 1700-3/5/7\nevent: order\ndata: {"),
            "{t}"
        );
        assert!(t.ends_with("}\n\n"));
        assert!(!t.contains("lice") && !t.contains("field"), "{t}");
        assert!(
            t.contains("\"cost\":2.5") && t.contains("\"eval_time\":3"),
            "{t}"
        );
        assert_eq!(f.pos.unwrap().n, 7);
    }

    #[test]
    fn an_event_concerns_the_senders_of_its_orders() {
        let known = |k: Key| {
            Some(Known {
                side: if k.0 == 1 {
                    Side::Request
                } else {
                    Side::Proposal
                },
                cost: 1,
                eval_time: None,
                sender: if k.0 == 1 { "al".into() } else { "bo".into() },
            })
        };
        let m = ev(
            2,
            EventKind::Matched {
                request: Key(1),
                proposal: Key(2),
                price: 1_000_000,
            },
        );
        assert_eq!(concerned(&m, &known), vec!["al", "bo"]);
        assert!(concerned(&m, &|_| None).is_empty());
        let f = private(Key(5), &m, "al").unwrap();
        assert!(f.text().contains("event: matched\n"), "{}", f.text());
        assert!(f.text().contains("\"price\":1"), "{}", f.text());
        let placed = ev(
            1,
            EventKind::Placed(Box::new(order(1, Side::Request, "Al"))),
        );
        assert_eq!(concerned(&placed, &known), vec!["al"]);
        let f = private(Key(5), &placed, "al").unwrap();
        assert!(f.text().contains("\"input\""), "the owner sees its input");
    }

    #[test]
    fn a_user_sees_only_its_own_movements() {
        let mv = |user: &str, balance: i128| Movement {
            user: user.into(),
            balance,
            blocked: -balance,
            deposit: 0,
            locked: 0,
            kind: "release".into(),
            order: Key(3),
        };
        let e = ev(4, EventKind::Moved(vec![mv("al", 1_500_000), mv("bo", -7)]));
        let f = private(Key(5), &e, "AL").unwrap();
        let t = f.text();
        assert!(
            t.contains("\"balance\":1.5") && t.contains("\"blocked\":-1.5"),
            "{t}"
        );
        assert!(!t.contains("0.000007"), "{t}");
        assert!(private(Key(5), &e, "cy").is_none());
        assert!(
            public(Key(5), &e, &|_| None).is_none(),
            "movements are private"
        );
        assert_eq!(concerned(&e, &|_| None), vec!["al", "bo"]);
    }
}

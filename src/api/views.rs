//! JSON shapes of the original market: how the market's typed answers are rendered to
//! clients. The only place that builds response JSON.

use serde_json::{json, Value};

use crate::domain::{Side, UserName};
use crate::market::book::Level;
use crate::market::{ClusterReport, Health};
use crate::store::{OrderRecord, ProducerRecord, ProofRecord, StatementRecord};

/// A new account.
pub fn signup(user: &UserName) -> Value {
    json!({"user": user.as_str(), "active": true})
}

/// A fresh token.
pub fn token(jwt: &str) -> Value {
    json!({ "jwt": jwt })
}

/// The answer to a logout.
pub fn logged_out(user: &UserName) -> Value {
    json!({"user": user.as_str(), "tokens_revoked": true})
}

/// A producer profile (its stored form is the original's).
pub fn producer(p: &ProducerRecord) -> Value {
    serde_json::to_value(p).unwrap_or(Value::Null)
}

/// A statement (its stored form is the original's).
pub fn statement(s: &StatementRecord) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
}

/// A statement in a list: without `definition` unless `full` (a list of circuits would
/// be megabytes each; `GET /statement/{key}` shows one).
pub fn listed_statement(s: &StatementRecord, full: bool) -> Value {
    let mut v = statement(s);
    if !full {
        if let Some(m) = v.as_object_mut() {
            m.remove("definition");
        }
    }
    v
}

/// `/health`'s body.
pub fn health(h: &Health) -> Value {
    json!({
        "status": if h.redis_ok && h.ready { "ok" } else if h.leaving { "draining" } else { "unavailable" },
        "ready": h.ready,
        "node": h.node.id,
        "url": h.node.url,
        "redis": if h.redis_ok { "reachable" } else { "unreachable" },
        "statements": h.owned.len(),
        "statements_owned": h.owned.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
        "live_nodes": h.live_nodes,
        "fenced_writes": h.fenced_writes,
        "forwarded_calls": h.forwarded_calls,
        "archive": h.archive.map(|a| json!({
            "lag_ms": a.lag_ms,
            "pending_events": a.pending_events,
            "archived_events": a.archived_events,
            "removed_records": a.removed_records,
            "archived_ledger_entries": a.archived_ledger_entries,
            "errors": a.errors,
            "postgres": if a.reachable { "reachable" } else { "unreachable" },
        })),
    })
}

/// `/cluster`'s body.
pub fn cluster(c: &ClusterReport) -> Value {
    let keys = |ks: &[crate::domain::Key]| ks.iter().map(|k| k.to_string()).collect::<Vec<_>>();
    json!({
        "node": c.node,
        "nodes": c.nodes.iter().map(|(n, held)| json!({
            "id": n.id,
            "url": n.url,
            "statements": keys(held),
        })).collect::<Vec<_>>(),
        "statements": c.statements.iter().map(|s| json!({
            "statement": s.statement.to_string(),
            "owner": s.owner,
            "lease_holder": s.lease_holder,
            "fencing_token": s.fencing_token,
            "fenced_writes": s.fenced_writes,
        })).collect::<Vec<_>>(),
    })
}

/// An order as the original market shows it: rendered straight to JSON (no tree of
/// values in between), fields in the original's (alphabetical) order.
pub fn order(o: &OrderRecord) -> OrderView<'_> {
    let counterpart = |side| o.counterpart.filter(|_| o.side == side).map(KeyText);
    OrderView {
        id: IdText(o.side, o.key),
        key: KeyText(o.key),
        cost: o.cost.to_json(),
        created_on: o.created.0,
        eval_time: o.eval_time.map(|t| t.0),
        failed: o.failed.map(|t| t.0),
        input: o.input.as_deref().map(InputJson),
        matched_time: o.matched_time.map(|t| t.0),
        price: o.price.map(|p| p.to_json()),
        proof_key: o.proof_key.map(KeyText),
        proposal_key: counterpart(Side::Request),
        request_key: counterpart(Side::Proposal),
        sender: &o.sender,
        statement_key: KeyText(o.statement),
        status: o.status.as_str(),
        updated_on: o.updated.0,
        wait_period: o.wait_period.map(|t| t.0),
    }
}

/// The JSON of an order ([`order`]). `failed`: the producer missed the match's deadline
/// (its proposal was withdrawn for it).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = Order)]
pub struct OrderView<'a> {
    #[serde(rename = "_id")]
    #[schema(value_type = String)]
    id: IdText,
    #[serde(rename = "_key")]
    #[schema(value_type = String)]
    key: KeyText,
    #[schema(value_type = f64)]
    cost: Value,
    #[serde(rename = "createdOn")]
    created_on: u64,
    eval_time: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failed: Option<u64>,
    /// A request's public input, as placed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<serde_json::Value>)]
    input: Option<InputJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    matched_time: Option<u64>,
    /// The trade price, once matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    price: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    proof_key: Option<KeyText>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    proposal_key: Option<KeyText>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    request_key: Option<KeyText>,
    sender: &'a str,
    #[schema(value_type = String)]
    statement_key: KeyText,
    /// `created`, `processing`, `completed` or `withdrawn`.
    status: &'static str,
    #[serde(rename = "updatedOn")]
    updated_on: u64,
    wait_period: Option<u32>,
}

/// A key as the original shows it: a string of digits.
struct KeyText(crate::domain::Key);

impl serde::Serialize for KeyText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// An order's `_id`: `<side>/<key>`.
struct IdText(Side, crate::domain::Key);

impl serde::Serialize for IdText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}/{}", self.0.as_str(), self.1))
    }
}

/// A stored input (JSON text, checked when the order was placed) written as it is;
/// `null` if it does not parse.
struct InputJson<'a>(&'a str);

impl serde::Serialize for InputJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match serde_json::from_str::<&serde_json::value::RawValue>(self.0) {
            Ok(raw) => raw.serialize(s),
            Err(_) => s.serialize_unit(),
        }
    }
}

/// A wallet: `balance` available, `blocked` in requests' escrow, `deposit` producer
/// collateral not backing work, `locked` collateral held by the user's proposals.
pub fn wallet(user: &str, w: &crate::store::Wallet) -> Value {
    use crate::domain::amount_json;
    json!({
        "user": user,
        "balance": amount_json(w.balance),
        "blocked": amount_json(w.blocked),
        "deposit": amount_json(w.deposit),
        "locked": amount_json(w.locked),
    })
}

/// A proof record; `full` adds the proof itself (hex with `0x`).
pub fn proof(p: &ProofRecord, full: bool) -> Value {
    let mut v = json!({
        "_key": p.key.to_string(),
        "_id": format!("proof/{}", p.key),
        "statement_key": p.statement.to_string(),
        "request_key": p.request.to_string(),
        "proposal_key": p.proposal.to_string(),
        "input": serde_json::from_str::<Value>(&p.input).unwrap_or(Value::Null),
        "sender": p.sender,
        // Minutes, like eval_time, with millisecond resolution.
        "generation_time": p.generation_ms as f64 / 60_000.0,
        "createdOn": p.created.0,
        "updatedOn": p.created.0,
        "output": p.output,
        // The same, one string per output (a circuit returning a vector has several).
        "outputs": p.output.as_deref().map(|o| o.split(',').collect::<Vec<_>>()),
        "proof_system": p.proof_system,
    });
    if full {
        v["proof"] = json!(format!("0x{}", p.proof_hex));
    }
    v
}

/// The aggregated book.
pub fn book(requests: &[Level], proposals: &[Level]) -> Value {
    let levels = |ls: &[Level]| -> Vec<Value> {
        ls.iter()
            .map(|l| json!({"cost": l.cost.to_json(), "eval_time": l.eval_time.map(|t| t.0), "ordersAmount": l.orders}))
            .collect()
    };
    json!({"requests": levels(requests), "proposals": levels(proposals)})
}

fn opt_amount(v: Option<u64>) -> Value {
    v.map_or(Value::Null, |m| crate::domain::amount_json(u128::from(m)))
}

/// `GET statement/{key}?info`: the last price and today's (UTC) trading.
pub fn market_info(stmt: crate::domain::Key, d: &crate::store::MarketData) -> Value {
    use crate::domain::amount_json;
    let change = match (d.today.open, d.today.close) {
        (Some(o), Some(c)) if c >= o => amount_json(u128::from(c - o)),
        (Some(o), Some(c)) => {
            let text = format!("-{}", crate::domain::amount_text(u128::from(o - c)));
            serde_json::from_str(&text).unwrap_or(Value::Null)
        }
        _ => json!(0),
    };
    json!({
        "_key": stmt.to_string(),
        "current": opt_amount(d.last.map(|(p, _)| p)),
        "open": opt_amount(d.today.open),
        "close": opt_amount(d.today.close),
        "daily_change": change,
        "volume": amount_json(d.today.volume),
        "trades": d.today.trades,
        "min": opt_amount(d.today.min),
        "max": opt_amount(d.today.max),
    })
}

/// `GET statement/{key}?statistics`: completed trades, their mean price and mean
/// generation time (minutes, match to proof).
pub fn market_statistics(stmt: crate::domain::Key, d: &crate::store::MarketData) -> Value {
    let n = u128::from(d.completed);
    let (avg_cost, avg_eval) = match (d.price_sum.checked_div(n), d.gen_ms_sum.checked_div(n)) {
        (Some(price), Some(gen_ms)) => {
            let minutes = gen_ms as f64 / 60_000.0;
            (
                crate::domain::amount_json(price),
                json!((minutes * 1000.0).round() / 1000.0),
            )
        }
        _ => (Value::Null, Value::Null),
    };
    json!({
        "_key": stmt.to_string(),
        "avg_cost": avg_cost,
        "avg_eval_time": avg_eval,
        "completed": d.completed,
    })
}

/// `GET statement/{key}/trades`: the latest trades, newest first.
pub fn trades(t: &[crate::store::Trade]) -> Value {
    Value::Array(
        t.iter()
            .map(|t| {
                json!({
                    "request_key": t.request.to_string(),
                    "proposal_key": t.proposal.to_string(),
                    "price": crate::domain::amount_json(u128::from(t.price)),
                    "matched_time": t.at.0,
                })
            })
            .collect(),
    )
}

/// `GET producer/{user}/stats`: a producer's public track record.
pub fn track_record(user: &str, r: &crate::market::TrackRecord) -> Value {
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    json!({
        "producer": user,
        "delivered": r.delivered,
        "failures": r.failures,
        "fines": crate::domain::amount_json(r.fines),
        "mean_generation_time": r.mean_generation_minutes().map(round),
        "rating": round(r.rating()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Cost, Key, Millis, Minutes, Status};

    fn request() -> OrderRecord {
        OrderRecord {
            key: Key(7),
            side: Side::Request,
            statement: Key(3),
            cost: Cost::from_micros(2_500_000).unwrap(),
            eval_time: Some(Minutes(2)),
            wait_period: None,
            sender: "al\"x".into(),
            created: Millis(1000),
            updated: Millis(2000),
            status: Status::Processing,
            seq: 4,
            input: Some("[{\"field\": 1}, {\"field\": \"0x2\"}]".into()),
            canon: Some("1,2".into()),
            counterpart: Some(Key(8)),
            matched_time: Some(Millis(1500)),
            price: Some(Cost::from_micros(2_000_000).unwrap()),
            proof_key: None,
            held: 0,
            funded_at: None,
            failed: None,
        }
    }

    #[test]
    fn an_order_renders_as_the_original_market_shows_it() {
        let text = serde_json::to_string(&order(&request())).unwrap();
        assert_eq!(
            text,
            r#"{"_id":"request/7","_key":"7","cost":2.5,"createdOn":1000,"eval_time":2,"input":[{"field": 1}, {"field": "0x2"}],"matched_time":1500,"price":2,"proposal_key":"8","sender":"al\"x","statement_key":"3","status":"processing","updatedOn":2000,"wait_period":null}"#
        );
        // A proposal names its request; an open one has no match fields; a stored
        // input that does not parse shows as null.
        let mut p = request();
        p.side = Side::Proposal;
        p.status = Status::Withdrawn;
        (p.matched_time, p.price) = (None, None);
        p.input = Some("{not json".into());
        p.failed = Some(Millis(3000));
        let v: Value = serde_json::from_str(&serde_json::to_string(&order(&p)).unwrap()).unwrap();
        assert_eq!(v["request_key"], "8");
        assert_eq!(v["failed"], 3000);
        assert!(v["input"].is_null() && v.get("input").is_some());
        for absent in ["proposal_key", "matched_time", "price", "proof_key"] {
            assert!(v.get(absent).is_none(), "{absent} in {v}");
        }
    }
}

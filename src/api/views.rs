//! JSON shapes of the original market: how records are rendered to clients.

use serde_json::{json, Map, Value};

use crate::book::Level;
use crate::domain::Side;
use crate::store::{OrderRecord, ProofRecord};

/// An order as the original market shows it.
pub fn order(o: &OrderRecord) -> Value {
    let mut m = Map::new();
    m.insert("_key".into(), json!(o.key.to_string()));
    m.insert(
        "_id".into(),
        json!(format!("{}/{}", o.side.as_str(), o.key)),
    );
    m.insert("statement_key".into(), json!(o.statement.to_string()));
    if let Some(i) = &o.input {
        m.insert(
            "input".into(),
            serde_json::from_str(i).unwrap_or(Value::Null),
        );
    }
    m.insert("cost".into(), o.cost.to_json());
    m.insert("eval_time".into(), json!(o.eval_time.map(|t| t.0)));
    m.insert("wait_period".into(), json!(o.wait_period.map(|t| t.0)));
    m.insert("sender".into(), json!(o.sender));
    m.insert("createdOn".into(), json!(o.created.0));
    m.insert("updatedOn".into(), json!(o.updated.0));
    m.insert("status".into(), json!(o.status.as_str()));
    if let Some(c) = o.counterpart {
        let field = match o.side {
            Side::Request => "proposal_key",
            Side::Proposal => "request_key",
        };
        m.insert(field.into(), json!(c.to_string()));
    }
    if let Some(t) = o.matched_time {
        m.insert("matched_time".into(), json!(t.0));
    }
    if let Some(p) = o.price {
        m.insert("price".into(), p.to_json());
    }
    if let Some(p) = o.proof_key {
        m.insert("proof_key".into(), json!(p.to_string()));
    }
    Value::Object(m)
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

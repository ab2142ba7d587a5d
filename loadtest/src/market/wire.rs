//! What goes over the wire on the measured path: the JSON bodies of orders and proofs
//! (built as text, costs exact in micro-units) and the few fields of an order answer the
//! harness reads.

use serde::Deserialize;

/// A cost in micro-units as the JSON number text the API takes (`2.5`, `7`).
pub fn cost_text(micros: u64) -> String {
    let units = micros / 1_000_000;
    let frac = micros % 1_000_000;
    if frac == 0 {
        units.to_string()
    } else {
        let f = format!("{frac:06}");
        format!("{units}.{}", f.trim_end_matches('0'))
    }
}

/// The body of `POST …/request/`.
pub fn request_body(statement: u64, input: (u64, u64), cost: u64, eval: Option<u32>) -> String {
    let eval = eval
        .map(|e| format!(",\"eval_time\":{e}"))
        .unwrap_or_default();
    format!(
        "{{\"statement_key\":\"{statement}\",\"input\":[{{\"field\":{}}},{{\"field\":{}}}],\"cost\":{}{eval}}}",
        input.0,
        input.1,
        cost_text(cost)
    )
}

/// The body of `POST …/proposal/` (`wait`: its `wait_period`, minutes).
pub fn proposal_body(statement: u64, cost: u64, eval: Option<u32>, wait: Option<u32>) -> String {
    let eval = eval
        .map(|e| format!(",\"eval_time\":{e}"))
        .unwrap_or_default();
    let wait = wait
        .map(|w| format!(",\"wait_period\":{w}"))
        .unwrap_or_default();
    format!(
        "{{\"statement_key\":\"{statement}\",\"cost\":{}{eval}{wait}}}",
        cost_text(cost)
    )
}

/// The body of `POST …/proof` for `proposal` with a made-up proof of `len` bytes.
pub fn proof_body(proposal: u64, seed: u64, len: usize) -> String {
    let mut hex = String::with_capacity(2 + 2 * len);
    hex.push_str("0x");
    let mut x = seed | 1;
    for _ in 0..len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        hex.push_str(&format!("{:02x}", x as u8));
    }
    format!("{{\"proof\":\"{hex}\",\"proposal_key\":\"{proposal}\"}}")
}

/// The fields of an order answer the harness reads.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct OrderAnswer {
    /// Key.
    #[serde(rename = "_key")]
    pub key: String,
    /// Status.
    pub status: String,
    /// Set on a matched request.
    #[serde(default)]
    pub proposal_key: Option<String>,
    /// Set on a matched proposal.
    #[serde(default)]
    pub request_key: Option<String>,
    /// Trade price (units), when matched.
    #[serde(default)]
    pub price: Option<f64>,
}

impl OrderAnswer {
    /// Parses an answer body.
    pub fn parse(body: &[u8]) -> Option<OrderAnswer> {
        serde_json::from_slice(body).ok()
    }

    /// The key as a number.
    pub fn key_u64(&self) -> Option<u64> {
        self.key.parse().ok()
    }

    /// The matched counterpart, if the answer says the order matched.
    pub fn counterpart(&self) -> Option<u64> {
        self.proposal_key
            .as_deref()
            .or(self.request_key.as_deref())
            .and_then(|k| k.parse().ok())
    }

    /// The price in micro-units.
    pub fn price_micros(&self) -> Option<u64> {
        self.price.map(|p| (p * 1e6).round() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_valid_json_with_exact_costs() {
        assert_eq!(cost_text(2_000_000), "2");
        assert_eq!(cost_text(2_500_000), "2.5");
        assert_eq!(cost_text(10_000), "0.01");
        assert_eq!(cost_text(1_000_001), "1.000001");
        let r: serde_json::Value =
            serde_json::from_str(&request_body(7, (1, 2), 3_250_000, Some(30))).unwrap();
        assert_eq!(r["statement_key"], "7");
        assert_eq!(r["input"][1]["field"], 2);
        assert_eq!(r["cost"].as_f64(), Some(3.25));
        assert_eq!(r["eval_time"], 30);
        let p: serde_json::Value =
            serde_json::from_str(&proposal_body(7, 1_000_000, None, None)).unwrap();
        assert!(p.get("eval_time").is_none());
        assert!(p.get("wait_period").is_none());
        let w: serde_json::Value =
            serde_json::from_str(&proposal_body(7, 1_000_000, Some(10), Some(1))).unwrap();
        assert_eq!(
            (w["eval_time"].as_u64(), w["wait_period"].as_u64()),
            (Some(10), Some(1))
        );
        let f: serde_json::Value = serde_json::from_str(&proof_body(9, 1, 16)).unwrap();
        assert_eq!(f["proof"].as_str().unwrap().len(), 34);
        assert_eq!(f["proposal_key"], "9");
    }

    #[test]
    fn parses_order_answers() {
        let a = OrderAnswer::parse(
            br#"{"_key":"3","status":"processing","proposal_key":"2","price":2.5,"cost":3}"#,
        )
        .unwrap();
        assert_eq!(a.key_u64(), Some(3));
        assert_eq!(a.counterpart(), Some(2));
        assert_eq!(a.price_micros(), Some(2_500_000));
        let b = OrderAnswer::parse(br#"{"_key":"4","status":"created","eval_time":null}"#).unwrap();
        assert_eq!(b.counterpart(), None);
        assert!(OrderAnswer::parse(b"{}").is_none());
    }
}

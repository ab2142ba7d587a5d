//! Reading the market's Redis directly (read-only, sync API): the orders for the
//! invariant check, and `INFO memory` for the memory figures. Key layout (prefix `P`):
//! `P:statements` (zset of statement keys), `P:{stmt:S}:o:K` (order hash),
//! `P:{stmt:S}:ix:<kind>:<status>` (zsets of order keys), `P:loc:K` (statement of K).
//! Orders are found through the index sets and, so that an unindexed order cannot hide,
//! by a `SCAN` of the order hash keys as well.

use std::collections::HashMap;

use anyhow::{Context, Result};

use crate::invariants::{AckedOrder, OrderRow};

const KINDS: [&str; 2] = ["request", "proposal"];
const STATUSES: [&str; 4] = ["created", "processing", "completed", "withdrawn"];
/// Commands per pipeline round trip.
const CHUNK: usize = 2000;

/// Opens a connection (the URL was checked to be loopback).
pub fn connect(url: &str) -> Result<redis::Connection> {
    let client = redis::Client::open(url)?;
    client
        .get_connection_with_timeout(std::time::Duration::from_secs(10))
        .with_context(|| format!("connecting to {url}"))
}

/// A numeric `field:value` line of an `INFO` answer.
pub fn parse_info_u64(info: &str, field: &str) -> Option<u64> {
    info.lines()
        .filter_map(|l| l.trim().split_once(':'))
        .find(|(k, _)| *k == field)
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// `used_memory` in bytes.
pub fn used_memory(con: &mut redis::Connection) -> Result<u64> {
    let info: String = redis::cmd("INFO").arg("memory").query(con)?;
    parse_info_u64(&info, "used_memory").context("INFO memory without used_memory")
}

fn opt_u64(h: &HashMap<String, String>, f: &str) -> Option<u64> {
    h.get(f).and_then(|v| v.parse().ok())
}

/// Builds a row from an order hash.
pub fn row_from_hash(key: u64, statement: u64, h: &HashMap<String, String>) -> OrderRow {
    let kind = h.get("kind").cloned().unwrap_or_default();
    let counterpart = match kind.as_str() {
        "request" => opt_u64(h, "proposal_key"),
        _ => opt_u64(h, "request_key"),
    };
    OrderRow {
        key,
        statement,
        kind,
        status: h.get("status").cloned().unwrap_or_default(),
        cost: opt_u64(h, "cost"),
        eval_time: h.get("eval_time").and_then(|v| v.parse().ok()),
        counterpart,
        price: opt_u64(h, "price"),
        proof_key: opt_u64(h, "proof_key"),
        indexed_as: Vec::new(),
        located_in: None,
    }
}

/// `(statement, key)` of an order hash key `<prefix>:{stmt:S}:o:K`.
pub fn parse_order_key(prefix: &str, key: &str) -> Option<(u64, u64)> {
    let rest = key.strip_prefix(prefix)?.strip_prefix(":{stmt:")?;
    let (s, rest) = rest.split_once("}:o:")?;
    Some((s.parse().ok()?, rest.parse().ok()?))
}

/// Every order hash key under `prefix`, by `SCAN` (bounded rounds).
pub fn scan_order_keys(con: &mut redis::Connection, prefix: &str) -> Result<Vec<(u64, u64)>> {
    let pattern = format!("{prefix}:{{stmt:*}}:o:*");
    let mut out = Vec::new();
    let mut cursor: u64 = 0;
    for _ in 0..10_000_000u64 {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(5000)
            .query(con)?;
        out.extend(keys.iter().filter_map(|k| parse_order_key(prefix, k)));
        if next == 0 {
            break;
        }
        cursor = next;
    }
    Ok(out)
}

/// Every order of every statement under `prefix`, plus the acknowledged orders even
/// when no index lists them.
pub fn read_orders(
    con: &mut redis::Connection,
    prefix: &str,
    acked: &[AckedOrder],
) -> Result<Vec<OrderRow>> {
    let mut statements: Vec<u64> = redis::cmd("ZRANGE")
        .arg(format!("{prefix}:statements"))
        .arg(0)
        .arg(-1)
        .query(con)?;
    statements.extend(acked.iter().map(|a| a.statement));
    statements.sort_unstable();
    statements.dedup();

    // key -> (statement, index sets holding it)
    let mut found: HashMap<u64, (u64, Vec<String>)> = HashMap::new();
    for &s in &statements {
        let mut pipe = redis::pipe();
        let mut names = Vec::new();
        for kind in KINDS {
            for status in STATUSES {
                pipe.cmd("ZRANGE")
                    .arg(format!("{prefix}:{{stmt:{s}}}:ix:{kind}:{status}"))
                    .arg(0)
                    .arg(-1);
                names.push(format!("{kind}:{status}"));
            }
        }
        let sets: Vec<Vec<String>> = pipe.query(con)?;
        for (name, members) in names.iter().zip(sets) {
            for m in members {
                let Ok(k) = m.parse::<u64>() else { continue };
                found
                    .entry(k)
                    .or_insert_with(|| (s, Vec::new()))
                    .1
                    .push(name.clone());
            }
        }
    }
    for a in acked {
        found
            .entry(a.key)
            .or_insert_with(|| (a.statement, Vec::new()));
    }
    // Order hashes that no index lists (they show as `index` violations).
    for (s, k) in scan_order_keys(con, prefix)? {
        found.entry(k).or_insert_with(|| (s, Vec::new()));
    }

    let keys: Vec<(u64, u64, Vec<String>)> =
        found.into_iter().map(|(k, (s, ix))| (k, s, ix)).collect();
    let mut rows = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(CHUNK) {
        let mut pipe = redis::pipe();
        for (k, s, _) in chunk {
            pipe.cmd("HGETALL")
                .arg(format!("{prefix}:{{stmt:{s}}}:o:{k}"));
            pipe.cmd("GET").arg(format!("{prefix}:loc:{k}"));
        }
        let replies: Vec<redis::Value> = pipe.query(con)?;
        for ((k, s, ix), pair) in chunk.iter().zip(replies.chunks(2)) {
            let h: HashMap<String, String> = redis::from_redis_value(pair[0].clone())?;
            let loc: Option<u64> = redis::from_redis_value(pair[1].clone()).ok().flatten();
            if h.is_empty() {
                if !ix.is_empty() {
                    rows.push(OrderRow {
                        key: *k,
                        statement: *s,
                        kind: "missing-hash".into(),
                        indexed_as: ix.clone(),
                        located_in: loc,
                        ..OrderRow::default()
                    });
                }
                continue;
            }
            let mut row = row_from_hash(*k, *s, &h);
            row.indexed_as = ix.clone();
            row.indexed_as.sort();
            row.located_in = loc;
            rows.push(row);
        }
    }
    rows.sort_by_key(|r| r.key);
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_info_and_hashes() {
        let info = "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n";
        assert_eq!(parse_info_u64(info, "used_memory"), Some(1_048_576));
        assert_eq!(parse_info_u64(info, "used_memory_rss"), None);
        let h: HashMap<String, String> = [
            ("kind", "proposal"),
            ("status", "processing"),
            ("cost", "2000000"),
            ("eval_time", ""),
            ("request_key", "17"),
            ("price", "2000000"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let r = row_from_hash(18, 3, &h);
        assert_eq!(r.counterpart, Some(17));
        assert_eq!(r.eval_time, None);
        assert_eq!(r.cost, Some(2_000_000));
        assert_eq!(r.statement, 3);
        assert_eq!(parse_order_key("pm", "pm:{stmt:12}:o:345"), Some((12, 345)));
        assert_eq!(parse_order_key("a:b", "a:b:{stmt:1}:o:2"), Some((1, 2)));
        assert_eq!(
            parse_order_key("pm", "pm:{stmt:12}:ix:request:created"),
            None
        );
        assert_eq!(parse_order_key("pm", "px:{stmt:1}:o:2"), None);
    }
}

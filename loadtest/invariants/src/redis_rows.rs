//! Reading the orders straight from the market's Redis (read-only, sync API), by the
//! store's key layout (prefix `P`): `P:statements` (zset of statement keys),
//! `P:{stmt:S}:o:K` (order hash), `P:{stmt:S}:ix:<kind>:<status>` (zsets of order keys),
//! `P:blocks` (blocks of order and proof keys, `<first>:<last>:<statement>`, which tell a
//! key's statement) and `P:loc:K` (statement of K, for keys made before key blocks).
//! Orders are found through the index sets and, so that an unindexed order cannot hide,
//! by a `SCAN` of the order hash keys as well.
//!
//! [`Source`] is the little the reader needs from a connection (a batch of commands, a
//! scan of every node); it is implemented for one Redis ([`redis::Connection`]) and,
//! with the `cluster` feature, for a Redis Cluster ([`ClusterSource`]).

use std::collections::HashMap;

use redis::{Cmd, RedisResult, Value};

use crate::order::{AckedOrder, OrderRow};

const KINDS: [&str; 2] = ["request", "proposal"];
const STATUSES: [&str; 4] = ["created", "processing", "completed", "withdrawn"];
/// Commands per batch (one round trip per node).
const CHUNK: usize = 2000;

/// Where the rows are read from.
pub trait Source {
    /// Runs `cmds` and returns their replies, in order.
    fn batch(&mut self, cmds: Vec<Cmd>) -> RedisResult<Vec<Value>>;
    /// Every key matching `pattern`, on every node.
    fn scan(&mut self, pattern: &str) -> RedisResult<Vec<String>>;
}

/// `SCAN` with `MATCH pattern` over one server (bounded rounds).
fn scan_one(
    mut query: impl FnMut(&Cmd) -> RedisResult<(u64, Vec<String>)>,
    pattern: &str,
) -> RedisResult<Vec<String>> {
    let mut out = Vec::new();
    let mut cursor: u64 = 0;
    for _ in 0..10_000_000u64 {
        let mut c = redis::cmd("SCAN");
        c.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(5000);
        let (next, keys) = query(&c)?;
        out.extend(keys);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    Ok(out)
}

impl Source for redis::Connection {
    fn batch(&mut self, cmds: Vec<Cmd>) -> RedisResult<Vec<Value>> {
        let mut pipe = redis::pipe();
        for c in cmds {
            pipe.add_command(c);
        }
        pipe.query(self)
    }

    fn scan(&mut self, pattern: &str) -> RedisResult<Vec<String>> {
        scan_one(|c| c.query(self), pattern)
    }
}

/// A Redis Cluster: commands go to their key's master, a scan to every master.
#[cfg(feature = "cluster")]
pub struct ClusterSource {
    con: redis::cluster::ClusterConnection,
}

#[cfg(feature = "cluster")]
impl ClusterSource {
    /// Connects through the seed URLs (`redis://` or `rediss://`, as `ClusterClient`
    /// takes them).
    pub fn connect(seeds: &[&str]) -> RedisResult<ClusterSource> {
        let con = redis::cluster::ClusterClient::new(seeds.to_vec())?.get_connection()?;
        Ok(ClusterSource { con })
    }

    /// `(host, port)` of every master, from `CLUSTER NODES`.
    fn masters(&mut self) -> RedisResult<Vec<(String, u16)>> {
        let nodes: String = redis::cmd("CLUSTER").arg("NODES").query(&mut self.con)?;
        Ok(nodes
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                if f.len() < 3 || !f[2].split(',').any(|x| x == "master") {
                    return None;
                }
                // `ip:port@cport[,hostname]`
                let addr = f[1].split(['@', ',']).next()?;
                let (host, port) = addr.rsplit_once(':')?;
                Some((host.to_owned(), port.parse().ok()?))
            })
            .collect())
    }
}

#[cfg(feature = "cluster")]
impl Source for ClusterSource {
    fn batch(&mut self, cmds: Vec<Cmd>) -> RedisResult<Vec<Value>> {
        let mut pipe = redis::cluster::cluster_pipe();
        for c in cmds {
            pipe.add_command(c);
        }
        pipe.query(&mut self.con)
    }

    fn scan(&mut self, pattern: &str) -> RedisResult<Vec<String>> {
        use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
        let mut out = Vec::new();
        for (host, port) in self.masters()? {
            let to = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
            let con = &mut self.con;
            out.extend(scan_one(
                |c| Ok(redis::from_redis_value(con.route_command(c, to.clone())?)?),
                pattern,
            )?);
        }
        Ok(out)
    }
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
        seq: opt_u64(h, "seq"),
        counterpart,
        price: opt_u64(h, "price"),
        proof_key: opt_u64(h, "proof_key"),
        indexed_as: Vec::new(),
        located_in: None,
        archived: false,
        sender: h.get("sender").cloned(),
        held: h.get("held").and_then(|v| v.parse().ok()),
    }
}

/// `(statement, key)` of an order hash key `<prefix>:{stmt:S}:o:K`.
pub fn parse_order_key(prefix: &str, key: &str) -> Option<(u64, u64)> {
    let rest = key.strip_prefix(prefix)?.strip_prefix(":{stmt:")?;
    let (s, rest) = rest.split_once("}:o:")?;
    Some((s.parse().ok()?, rest.parse().ok()?))
}

/// Every order hash key under `prefix`, as `(statement, key)`.
pub fn scan_order_keys(con: &mut impl Source, prefix: &str) -> RedisResult<Vec<(u64, u64)>> {
    let pattern = format!("{prefix}:{{stmt:*}}:o:*");
    Ok(con
        .scan(&pattern)?
        .iter()
        .filter_map(|k| parse_order_key(prefix, k))
        .collect())
}

/// Every order of every statement under `prefix`, plus the acknowledged orders even
/// when no index lists them, sorted by key.
pub fn read_orders(
    con: &mut impl Source,
    prefix: &str,
    acked: &[AckedOrder],
) -> RedisResult<Vec<OrderRow>> {
    let mut zrange = redis::cmd("ZRANGE");
    zrange.arg(format!("{prefix}:statements")).arg(0).arg(-1);
    let mut statements: Vec<u64> = redis::from_redis_value(
        con.batch(vec![zrange])?
            .pop()
            .unwrap_or(Value::Array(Vec::new())),
    )?;
    statements.extend(acked.iter().map(|a| a.statement));
    statements.sort_unstable();
    statements.dedup();

    // key -> (statement, index sets holding it)
    let mut found: HashMap<u64, (u64, Vec<String>)> = HashMap::new();
    for &s in &statements {
        let mut cmds = Vec::new();
        let mut names = Vec::new();
        for kind in KINDS {
            for status in STATUSES {
                let mut c = redis::cmd("ZRANGE");
                c.arg(format!("{prefix}:{{stmt:{s}}}:ix:{kind}:{status}"))
                    .arg(0)
                    .arg(-1);
                cmds.push(c);
                names.push(format!("{kind}:{status}"));
            }
        }
        for (name, members) in names.iter().zip(con.batch(cmds)?) {
            let members: Vec<String> = redis::from_redis_value(members)?;
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

    let blocks = read_blocks(con, prefix)?;
    let keys: Vec<(u64, u64, Vec<String>)> =
        found.into_iter().map(|(k, (s, ix))| (k, s, ix)).collect();
    let mut rows = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(CHUNK) {
        let mut cmds = Vec::with_capacity(2 * chunk.len());
        for (k, s, _) in chunk {
            let mut h = redis::cmd("HGETALL");
            h.arg(format!("{prefix}:{{stmt:{s}}}:o:{k}"));
            let mut g = redis::cmd("GET");
            g.arg(format!("{prefix}:loc:{k}"));
            cmds.extend([h, g]);
        }
        let replies = con.batch(cmds)?;
        for ((k, s, ix), pair) in chunk.iter().zip(replies.chunks(2)) {
            let h: HashMap<String, String> = redis::from_redis_value(pair[0].clone())?;
            let loc: Option<u64> = block_of(&blocks, *k)
                .or_else(|| redis::from_redis_value(pair[1].clone()).ok().flatten());
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

/// The key blocks, `(first, last, statement)` sorted by first key.
fn read_blocks(con: &mut impl Source, prefix: &str) -> RedisResult<Vec<(u64, u64, u64)>> {
    let mut c = redis::cmd("ZRANGE");
    c.arg(format!("{prefix}:blocks")).arg(0).arg(-1);
    let reply = con.batch(vec![c])?;
    let members: Vec<String> = match reply.into_iter().next() {
        Some(v) => redis::from_redis_value(v)?,
        None => Vec::new(),
    };
    let mut blocks: Vec<(u64, u64, u64)> = members
        .iter()
        .filter_map(|m| {
            let mut it = m.split(':').map(|n| n.parse::<u64>().ok());
            Some((it.next()??, it.next()??, it.next()??))
        })
        .collect();
    blocks.sort_unstable();
    Ok(blocks)
}

/// The statement of the block holding `key`, if any.
fn block_of(blocks: &[(u64, u64, u64)], key: u64) -> Option<u64> {
    let i = blocks.partition_point(|b| b.0 <= key);
    let (_, last, stmt) = *blocks.get(i.checked_sub(1)?)?;
    (key <= last).then_some(stmt)
}

/// Each statement's event counter `<prefix>:{stmt:S}:evseq` (the number of events
/// written to its log; `None` when the key does not exist), for the archive check.
pub fn read_evseq(
    con: &mut impl Source,
    prefix: &str,
    statements: &[u64],
) -> RedisResult<HashMap<u64, Option<u64>>> {
    let mut out = HashMap::with_capacity(statements.len());
    for chunk in statements.chunks(CHUNK) {
        let cmds = chunk
            .iter()
            .map(|s| {
                let mut c = redis::cmd("GET");
                c.arg(format!("{prefix}:{{stmt:{s}}}:evseq"));
                c
            })
            .collect();
        for (s, v) in chunk.iter().zip(con.batch(cmds)?) {
            out.insert(*s, redis::from_redis_value::<Option<u64>>(v)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_in_the_block_that_spans_it() {
        let blocks = [(10, 25, 7), (26, 41, 3), (100, 131, 7)];
        assert_eq!(block_of(&blocks, 9), None);
        assert_eq!(block_of(&blocks, 10), Some(7));
        assert_eq!(block_of(&blocks, 25), Some(7));
        assert_eq!(block_of(&blocks, 26), Some(3));
        assert_eq!(block_of(&blocks, 50), None);
        assert_eq!(block_of(&blocks, 131), Some(7));
        assert_eq!(block_of(&blocks, 132), None);
    }

    #[test]
    fn parses_hashes_and_keys() {
        let h: HashMap<String, String> = [
            ("kind", "proposal"),
            ("status", "processing"),
            ("cost", "2000000"),
            ("eval_time", ""),
            ("seq", "41"),
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
        assert_eq!(r.seq, Some(41));
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

//! One script per statement for many statements at once, pipelined (lease renewals and
//! takeovers of a node's whole share).
//!
//! The calls go out in pipelines of up to [`PIPELINE`] scripts, a few pipelines in
//! flight at a time, so a round over 10^5 statements costs about a hundred round trips
//! rather than 10^5. On a Redis Cluster each pipeline holds only statements whose slots
//! sit on one master (read with `CLUSTER SLOTS` per batch) and is routed to that master;
//! its scripts still each touch one slot. Every pipeline starts with `SCRIPT LOAD`, so
//! the scripts' `EVALSHA` never meet an empty script cache (after a Redis restart, on a
//! new master).
//!
//! Each call has its own result. A call the server refused within a pipeline (`MOVED`
//! while slots migrate, `NOSCRIPT`, an error inside the script) is sent again alone, by
//! the path that follows redirections; a pipeline whose answer was lost (timeout,
//! dropped connection) fails only its own calls, which are not resent: the callers try
//! again at their next round, as they would after a failed single call.

use std::collections::HashMap;

use futures_util::stream::{self, StreamExt};
use redis::{Script, ScriptInvocation, Value};

use super::conn::Conn;
use super::{Store, StoreError};
use crate::domain::Key;

/// Most scripts in one pipeline.
pub const PIPELINE: usize = 1000;
/// Pipelines in flight at once (the next is sent while Redis runs the previous one).
const PIPELINES_IN_FLIGHT: usize = 4;
/// Calls resent alone after a refusal within a pipeline, in flight at once.
const SINGLES_IN_FLIGHT: usize = 64;
/// Hash slots of a Redis Cluster.
const SLOTS: u16 = 16384;

/// The Redis Cluster hash slot of `key` (CRC16/XMODEM of its hash tag, or of the whole
/// key when it has none), as `CLUSTER KEYSLOT` computes it.
pub fn key_slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16(tagged) % SLOTS
}

fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Which master serves each slot, from a `CLUSTER SLOTS` reply: one id per master,
/// `None` for slots the reply does not cover.
fn masters_by_slot(reply: &Value) -> Option<Vec<Option<usize>>> {
    let Value::Array(ranges) = reply else {
        return None;
    };
    let mut ids: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut by_slot = vec![None; usize::from(SLOTS)];
    for range in ranges {
        let Value::Array(fields) = range else {
            return None;
        };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            return None;
        };
        // [ip, port, id, ...]: the id when given, else the address.
        let name: Vec<u8> = match (master.first(), master.get(1), master.get(2)) {
            (_, _, Some(Value::BulkString(id))) => id.clone(),
            (Some(Value::BulkString(ip)), Some(Value::Int(port)), _) => {
                let mut n = ip.clone();
                n.extend_from_slice(format!(":{port}").as_bytes());
                n
            }
            _ => return None,
        };
        let next = ids.len();
        let id = *ids.entry(name).or_insert(next);
        let (start, end) = (usize::try_from(*start).ok()?, usize::try_from(*end).ok()?);
        if start > end || end >= by_slot.len() {
            return None;
        }
        by_slot[start..=end].fill(Some(id));
    }
    Some(by_slot)
}

/// One pipeline: the positions of its calls, and a slot the cluster routes it by.
struct Chunk {
    calls: Vec<usize>,
    slot: u16,
}

impl Store {
    /// Splits the calls on statements `stmts` into pipelines: in order on one Redis; on a
    /// cluster, grouped by the master of each statement's slot.
    async fn chunks(&self, stmts: &[Key]) -> Vec<Chunk> {
        let cut = |calls: Vec<usize>, slots: &dyn Fn(usize) -> u16| -> Vec<Chunk> {
            calls
                .chunks(PIPELINE)
                .map(|c| Chunk {
                    slot: slots(c[0]),
                    calls: c.to_vec(),
                })
                .collect()
        };
        let Conn::Cluster(cluster) = &self.conn else {
            return cut((0..stmts.len()).collect(), &|_| 0);
        };
        let slots: Vec<u16> = stmts
            .iter()
            .map(|&s| key_slot(self.keys.statement(s).base().as_bytes()))
            .collect();
        let mut c = cluster.clone();
        let map = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async::<Value>(&mut c)
            .await
            .ok()
            .and_then(|r| masters_by_slot(&r));
        // Without a slot map, one group per slot: still correct, with smaller pipelines.
        let group_of = |slot: u16| match &map {
            Some(m) => m[usize::from(slot)].map_or(usize::from(SLOTS) + usize::from(slot), |g| g),
            None => usize::from(slot),
        };
        let mut groups: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, &slot) in slots.iter().enumerate() {
            groups.entry(group_of(slot)).or_default().push(i);
        }
        let mut groups: Vec<Vec<usize>> = groups.into_values().collect();
        groups.sort_by_key(|g| g[0]);
        groups
            .into_iter()
            .flat_map(|g| cut(g, &|i| slots[i]))
            .collect()
    }

    /// Runs `calls[i]` (an invocation of `script` on statement `stmts[i]`'s keys only)
    /// for every `i`, pipelined (see the module docs); the replies in the same order.
    pub(super) async fn eval_each(
        &self,
        script: &Script,
        stmts: &[Key],
        calls: &[ScriptInvocation<'_>],
    ) -> Vec<Result<Value, StoreError>> {
        debug_assert_eq!(stmts.len(), calls.len());
        let mut out: Vec<Option<Result<Value, StoreError>>> =
            std::iter::repeat_with(|| None).take(calls.len()).collect();
        let chunks = self.chunks(stmts).await;
        let pipelines = chunks.len();
        let mut answers = stream::iter(chunks)
            .map(|chunk| {
                let mut pipe = redis::pipe();
                pipe.load_script(script);
                for &i in &chunk.calls {
                    pipe.invoke_script(&calls[i]);
                }
                let mut c = self.conn.clone();
                async move {
                    let r = c.send_pipeline(pipe, chunk.slot).await;
                    (chunk.calls, r)
                }
            })
            .buffer_unordered(PIPELINES_IN_FLIGHT);
        let mut again = Vec::new();
        while let Some((positions, answer)) = answers.next().await {
            match answer {
                Ok(values) if values.len() == positions.len() + 1 => {
                    for (i, v) in positions.into_iter().zip(values.into_iter().skip(1)) {
                        match v {
                            Value::ServerError(_) => again.push(i),
                            v => out[i] = Some(Ok(v)),
                        }
                    }
                }
                Ok(values) => {
                    let e = format!(
                        "a pipeline of {} calls got {} answers",
                        positions.len() + 1,
                        values.len()
                    );
                    for i in positions {
                        out[i] = Some(Err(StoreError::Corrupt(e.clone())));
                    }
                }
                Err(e) => {
                    for i in positions {
                        out[i] = Some(Err(StoreError::Redis(e.clone())));
                    }
                }
            }
        }
        drop(answers);
        tracing::debug!(
            calls = calls.len(),
            pipelines,
            resent = again.len(),
            "pipelined scripts"
        );
        let mut singles = stream::iter(again)
            .map(|i| {
                let mut c = self.conn.clone();
                async move { (i, calls[i].invoke_async::<Value>(&mut c).await) }
            })
            .buffer_unordered(SINGLES_IN_FLIGHT);
        while let Some((i, r)) = singles.next().await {
            out[i] = Some(r.map_err(StoreError::from));
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(StoreError::Corrupt("a call went unanswered".into()))))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis_cluster_keyslot() {
        // CRC16/XMODEM check value, and slots CLUSTER KEYSLOT gives.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{foo}:bar"), 12182);
        assert_eq!(key_slot(b"x{foo}{bar}"), 12182);
        // An empty tag does not count: the whole key is hashed.
        assert_eq!(key_slot(b"{}foo"), crc16(b"{}foo") % SLOTS);
        assert_eq!(key_slot(b"foo{"), crc16(b"foo{") % SLOTS);
    }

    #[test]
    fn cluster_slots_replies_give_one_id_per_master() {
        let node = |ip: &str, port: i64, id: &str| {
            Value::Array(vec![
                Value::BulkString(ip.into()),
                Value::Int(port),
                Value::BulkString(id.into()),
            ])
        };
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(99),
                node("127.0.0.1", 7000, "a"),
                node("127.0.0.1", 7003, "r"),
            ]),
            Value::Array(vec![
                Value::Int(100),
                Value::Int(16383),
                node("127.0.0.1", 7001, "b"),
            ]),
            Value::Array(vec![
                Value::Int(200),
                Value::Int(299),
                node("127.0.0.1", 7000, "a"),
            ]),
        ]);
        let m = masters_by_slot(&reply).unwrap();
        assert_eq!(m[0], m[99]);
        assert_eq!(m[0], m[250]);
        assert_ne!(m[0], m[100]);
        assert_eq!(m[100], m[16383]);
        assert!(m.iter().all(Option::is_some));
        assert!(masters_by_slot(&Value::Int(1)).is_none());
    }
}

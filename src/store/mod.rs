//! The store: the only module that speaks Redis.
//!
//! Every user, statement, order, match and proof lives here. Keys are
//! `<prefix>:...`; everything belonging to one statement shares the hash tag
//! `{stmt:<key>}` so that one statement's transitions are single-slot scripts that run
//! unchanged on a Redis Cluster. Order state changes only through
//! [`Store::apply`], which runs a batch of transitions as one Lua script: atomic, so no
//! reader sees half of a match, and one round trip for a whole batch (group commit).
//!
//! Cross-statement data (users, the statement list, the key counter, and a locator from
//! an order or proof key to its statement) lives outside the tags. Locators are written
//! in the same pipeline as the batch that creates the object, before its script; a
//! locator whose object was never created only ever leads a reader to a 404.

mod nodes;
mod records;
mod target;

use std::collections::HashMap;
use std::ops::Range;

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::AsyncCommands;

pub use nodes::Lease;
pub use records::{OrderRecord, ProofRecord};
pub use target::{redact_url, RedisTarget, RedisTls};

use crate::domain::{Key, Millis, ScopedKey, Side, Status};

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis could not be reached or answered with an error.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Stored data did not parse.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The caller's fencing token is stale: another node owns the statement now.
    #[error("fenced: this node no longer owns the statement")]
    Fenced,
}

impl StoreError {
    /// True when a write may have been applied although it failed: the request went out
    /// and its answer was lost (timeout, dropped connection). A refused connection or an
    /// error reply means nothing was written.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            StoreError::Redis(e) => e.is_io_error() && !e.is_connection_refusal(),
            StoreError::Corrupt(_) | StoreError::Fenced => false,
        }
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
    },
    /// Forget idempotency keys past their retention.
    Forget(Vec<ScopedKey>),
}

impl Op {
    /// The key of the object this op creates, whose locator must be written.
    fn created_key(&self) -> Option<Key> {
        match self {
            Op::New(o) => Some(o.key),
            Op::Proof { record, .. } => Some(record.key),
            _ => None,
        }
    }

    fn encode(&self, args: &mut Vec<String>) {
        let mut a: Vec<String> = Vec::new();
        let name = match self {
            Op::New(o) => {
                a.push(o.side.as_str().into());
                a.push(o.key.to_string());
                a.push(o.status.as_str().into());
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
            } => {
                a.extend([
                    request.to_string(),
                    proposal.to_string(),
                    price.to_string(),
                    at.0.to_string(),
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
                ]);
                for (f, v) in record.fields() {
                    a.push(f.into());
                    a.push(v);
                }
                "proof"
            }
            Op::Remember { scoped, order, at } => {
                a.extend([scoped.to_hex(), order.to_string(), at.0.to_string()]);
                "remember"
            }
            Op::Forget(scoped) => {
                a.extend(scoped.iter().map(|s| s.to_hex()));
                "forget"
            }
        };
        args.push(name.into());
        args.push(a.len().to_string());
        args.extend(a);
    }
}

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserRecord {
    /// The name.
    pub user: String,
    /// argon2 PHC string; never the password.
    pub passwd_hash: String,
    /// Contact address, if given.
    pub email: Option<String>,
    /// Sign-up time.
    pub created: u64,
}

/// One multiplexed connection, to a single Redis or to a cluster. Both reconnect by
/// themselves; the cluster one also follows `MOVED`/`ASK` redirections.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Handle to the Redis store; cheap to clone (one multiplexed connection).
#[derive(Clone)]
pub struct Store {
    conn: Conn,
    target: std::sync::Arc<RedisTarget>,
    prefix: String,
    transitions: std::sync::Arc<redis::Script>,
}

const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
const RESPONSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Store {
    /// Connects to `target`, namespacing every key under `prefix`.
    pub async fn open(target: &RedisTarget, prefix: &str) -> Result<Store, StoreError> {
        if target.uses_tls() {
            target::install_crypto_provider();
        }
        let certs = target.certificates();
        let conn = if target.is_cluster() {
            let mut builder =
                redis::cluster::ClusterClient::builder(target.seeds().iter().map(String::as_str))
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    .retries(3);
            if let Some(c) = certs {
                builder = builder.certs(c);
            }
            Conn::Cluster(builder.build()?.get_async_connection().await?)
        } else {
            let url = target.seeds()[0].as_str();
            let client = match certs {
                Some(c) => redis::Client::build_with_tls(url, c)?,
                None => redis::Client::open(url)?,
            };
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT))
                .set_number_of_retries(2);
            Conn::Single(ConnectionManager::new_with_config(client, config).await?)
        };
        Ok(Store {
            conn,
            target: std::sync::Arc::new(target.clone()),
            prefix: prefix.to_owned(),
            transitions: std::sync::Arc::new(redis::Script::new(include_str!("transitions.lua"))),
        })
    }

    /// True when the store is a Redis Cluster (pipelines must then stay in one slot).
    pub fn is_cluster(&self) -> bool {
        matches!(self.conn, Conn::Cluster(_))
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Another connection to the same Redis and prefix. A connection's I/O task runs on
    /// the thread that opens it, so each matcher thread opens its own: one shared
    /// connection would funnel every write through a single thread.
    pub async fn reconnect(&self) -> Result<Store, StoreError> {
        Store::open(&self.target, &self.prefix).await
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        redis::cmd("PING").query_async::<String>(&mut c).await?;
        Ok(())
    }

    fn stmt_base(&self, stmt: Key) -> String {
        format!("{}:{{stmt:{}}}", self.prefix, stmt)
    }

    fn global(&self, what: &str) -> String {
        format!("{}:{}", self.prefix, what)
    }

    /// Reserves `n` fresh keys (one INCRBY for a whole block).
    pub async fn reserve_keys(&self, n: u64) -> Result<Range<u64>, StoreError> {
        let mut c = self.conn.clone();
        let end: u64 = c.incr(self.global("seq"), n).await?;
        Ok(end - n + 1..end + 1)
    }

    // ---- users -------------------------------------------------------------------

    /// Creates a user; `false` when the name is taken.
    pub async fn create_user(&self, u: &UserRecord) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        let json = serde_json::to_string(u).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let set: Option<String> = redis::cmd("SET")
            .arg(self.global(&format!("user:{}", u.user)))
            .arg(json)
            .arg("NX")
            .query_async(&mut c)
            .await?;
        Ok(set.is_some())
    }

    /// Reads a user.
    pub async fn get_user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        let mut c = self.conn.clone();
        let v: Option<String> = c.get(self.global(&format!("user:{name}"))).await?;
        v.map(|s| {
            serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("user {name}: {e}")))
        })
        .transpose()
    }

    /// Writes a producer's profile (JSON), replacing an earlier one.
    pub async fn put_producer(&self, name: &str, json: &str) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        let _: () = c
            .set(self.global(&format!("producer:{name}")), json)
            .await?;
        Ok(())
    }

    // ---- statements --------------------------------------------------------------

    /// Stores a new statement (JSON text) and lists it.
    pub async fn create_statement(&self, key: Key, json: &str) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        // Two slots: the statement's own, then the global list (listed only once stored).
        let _: () = c.set(format!("{}:st", self.stmt_base(key)), json).await?;
        let _: () = c.zadd(self.global("statements"), key.0, key.0).await?;
        Ok(())
    }

    /// Reads a statement's JSON text.
    pub async fn get_statement(&self, key: Key) -> Result<Option<String>, StoreError> {
        let mut c = self.conn.clone();
        Ok(c.get(format!("{}:st", self.stmt_base(key))).await?)
    }

    /// Every statement key, ascending.
    pub async fn statement_keys(&self) -> Result<Vec<Key>, StoreError> {
        let mut c = self.conn.clone();
        let keys: Vec<u64> = c.zrange(self.global("statements"), 0, -1).await?;
        Ok(keys.into_iter().map(Key).collect())
    }

    // ---- orders and proofs -------------------------------------------------------

    /// The statement an order or proof key belongs to.
    pub async fn locate(&self, key: Key) -> Result<Option<Key>, StoreError> {
        let mut c = self.conn.clone();
        let v: Option<u64> = c.get(self.global(&format!("loc:{key}"))).await?;
        Ok(v.map(Key))
    }

    /// Reads an order.
    pub async fn get_order(&self, stmt: Key, key: Key) -> Result<Option<OrderRecord>, StoreError> {
        let mut c = self.conn.clone();
        let h: HashMap<String, String> = c
            .hgetall(format!("{}:o:{}", self.stmt_base(stmt), key))
            .await?;
        if h.is_empty() {
            return Ok(None);
        }
        OrderRecord::from_hash(key, &h).map(Some)
    }

    /// Reads a proof.
    pub async fn get_proof(&self, stmt: Key, key: Key) -> Result<Option<ProofRecord>, StoreError> {
        let mut c = self.conn.clone();
        let h: HashMap<String, String> = c
            .hgetall(format!("{}:proof:{}", self.stmt_base(stmt), key))
            .await?;
        if h.is_empty() {
            return Ok(None);
        }
        ProofRecord::from_hash(key, &h).map(Some)
    }

    /// Keys of a statement's orders of one side and status, ascending, at most `max`.
    pub async fn order_keys(
        &self,
        stmt: Key,
        side: Side,
        status: Status,
        max: usize,
    ) -> Result<Vec<Key>, StoreError> {
        let mut c = self.conn.clone();
        let ix = format!(
            "{}:ix:{}:{}",
            self.stmt_base(stmt),
            side.as_str(),
            status.as_str()
        );
        let stop = if max == 0 {
            return Ok(Vec::new());
        } else {
            max as isize - 1
        };
        let keys: Vec<u64> = c.zrange(ix, 0, stop).await?;
        Ok(keys.into_iter().map(Key).collect())
    }

    /// Reads many orders of one statement in one round trip; missing ones are skipped.
    pub async fn get_orders(
        &self,
        stmt: Key,
        keys: &[Key],
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        let base = self.stmt_base(stmt);
        for chunk in keys.chunks(1000) {
            let mut p = redis::pipe();
            for k in chunk {
                p.hgetall(format!("{base}:o:{k}"));
            }
            let mut c = self.conn.clone();
            let hs: Vec<HashMap<String, String>> = p.query_async(&mut c).await?;
            for (k, h) in chunk.iter().zip(hs) {
                if !h.is_empty() {
                    out.push(OrderRecord::from_hash(*k, &h)?);
                }
            }
        }
        Ok(out)
    }

    /// Every open (`created`) order of a statement, for rebuilding its book.
    pub async fn open_orders(&self, stmt: Key) -> Result<Vec<OrderRecord>, StoreError> {
        let mut out = Vec::new();
        for side in [Side::Request, Side::Proposal] {
            let keys = self
                .order_keys(stmt, side, Status::Created, usize::MAX / 2)
                .await?;
            out.extend(self.get_orders(stmt, &keys).await?);
        }
        Ok(out)
    }

    /// The proved inputs of a statement: canonical input → proof key.
    pub async fn proven_inputs(&self, stmt: Key) -> Result<HashMap<String, Key>, StoreError> {
        let mut c = self.conn.clone();
        let h: HashMap<String, u64> = c
            .hgetall(format!("{}:proven", self.stmt_base(stmt)))
            .await?;
        Ok(h.into_iter().map(|(k, v)| (k, Key(v))).collect())
    }

    /// The idempotency keys a statement remembers: scoped key → (order, when placed).
    pub async fn idempotency_keys(
        &self,
        stmt: Key,
    ) -> Result<HashMap<ScopedKey, (Key, Millis)>, StoreError> {
        let mut c = self.conn.clone();
        let h: HashMap<String, String> =
            c.hgetall(format!("{}:idem", self.stmt_base(stmt))).await?;
        h.into_iter()
            .map(|(k, v)| {
                let parsed = v
                    .split_once(':')
                    .and_then(|(o, t)| Some((Key(o.parse().ok()?), Millis(t.parse().ok()?))));
                ScopedKey::from_hex(&k)
                    .zip(parsed)
                    .ok_or_else(|| StoreError::Corrupt(format!("idempotency entry {k:?}: {v:?}")))
            })
            .collect()
    }

    /// Applies a batch of transitions of one statement atomically, writing the
    /// locators of created objects first in the same round trip. Returns one outcome
    /// per op.
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
        for op in ops {
            op.encode(&mut args);
        }
        let base = self.stmt_base(stmt);
        let mut inv = self.transitions.key(&base);
        inv.arg(&args);
        let stmt_text = stmt.to_string();
        if self.is_cluster() {
            return self.apply_cluster(ops, &inv, &stmt_text).await;
        }
        let build = |inv: &redis::ScriptInvocation<'_>| {
            let mut p = redis::pipe();
            for k in ops.iter().filter_map(Op::created_key) {
                p.set(self.global(&format!("loc:{k}")), &stmt_text).ignore();
            }
            p.invoke_script(inv);
            p
        };
        let mut c = self.conn.clone();
        let replies: Vec<Vec<String>> = match build(&inv).query_async(&mut c).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                // Redis restarted or flushed its script cache: load and retry once.
                // Retrying is safe: the script never ran, and locators are idempotent.
                self.transitions.load_async(&mut c).await?;
                build(&inv).query_async(&mut c).await?
            }
            other => other?,
        };
        let replies = replies.into_iter().next().unwrap_or_default();
        parse_replies(replies, ops.len())
    }

    /// `apply` on a cluster: locators live in other slots than the statement, so they
    /// are written first (concurrently, each to its own slot), then the script.
    async fn apply_cluster(
        &self,
        ops: &[Op],
        inv: &redis::ScriptInvocation<'_>,
        stmt_text: &str,
    ) -> Result<Vec<Result<(), Refusal>>, StoreError> {
        let sets = ops.iter().filter_map(Op::created_key).map(|k| {
            let mut c = self.conn.clone();
            let key = self.global(&format!("loc:{k}"));
            async move { c.set::<_, _, ()>(key, stmt_text).await }
        });
        for r in futures_util::future::join_all(sets).await {
            r?;
        }
        let mut c = self.conn.clone();
        let replies: Vec<String> = inv.invoke_async(&mut c).await?;
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

    fn io(kind: std::io::ErrorKind) -> StoreError {
        StoreError::Redis(redis::RedisError::from(std::io::Error::new(kind, "test")))
    }

    #[test]
    fn a_lost_answer_is_an_unknown_outcome_a_refusal_is_not() {
        use std::io::ErrorKind as K;
        for lost in [
            K::TimedOut,
            K::ConnectionReset,
            K::BrokenPipe,
            K::UnexpectedEof,
        ] {
            assert!(io(lost).outcome_unknown(), "{lost:?}");
        }
        assert!(!io(K::ConnectionRefused).outcome_unknown());
        let reply = redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "bad"));
        assert!(!StoreError::Redis(reply).outcome_unknown());
        assert!(!StoreError::Fenced.outcome_unknown());
        assert!(!StoreError::Corrupt("x".into()).outcome_unknown());
    }

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

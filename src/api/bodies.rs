//! Request bodies and query strings: from client bytes to the market's typed inputs.
//!
//! A body is read once, as bytes ([`JsonBody`]), within its route's size limit
//! ([`BodyClass`], [`BodyLimits`]) and within a time limit, and refused before it is
//! read when it is too large or compressed; the same bytes are forwarded unchanged when
//! another node owns the call (and, on a call forwarded here, checked against the
//! digest its signature covers). It is parsed once, as JSON, and checked field by field
//! into a typed value, so every refusal names the field and what was wrong with it
//! ("`cost` must be greater than 0") instead of a deserializer's position report.
//!
//! What one body may cost the node is bounded three ways: its route's limit (a login is
//! a few KiB, a statement its circuit), the read timeout (a client that stalls mid-body
//! is cut off), and a node-wide budget for the bytes of large bodies being read at once
//! ([`BodyBudget`]): a body's first [`BodyBudget::FREE`] bytes are free, the rest is
//! reserved from the budget while the call runs, and a call that finds it spent gets
//! 503 + `Retry-After` before more is read. So slow uploads of megabyte statements hold
//! at most the budget, and ordinary calls (all under the free part) never wait on it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{FromRequest, HttpRequest};
use futures_util::StreamExt;
use serde_json::{Map, Value};

use crate::domain::{Cost, IdempotencyKey, Key, Minutes, Side, Status, UserName};
use crate::error::MarketError;
use crate::input::PublicInput;
use crate::market::{
    Limits, NewOrder, NewStatement, NewUser, OrderFilter, ProducerProfile, ProofPush,
};
use crate::protocol::IDEMPOTENCY_HEADER;

use super::error::ApiError;

type R<T> = Result<T, ApiError>;

/// What kind of body a route takes, registered as the route's `app_data`; it picks the
/// size limit from [`BodyLimits`]. A route that registers none gets the smallest limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyClass {
    /// Sign-up and `/_open/auth`: a name, a password, an e-mail.
    Account,
    /// A request or proposal.
    Order,
    /// A producer's profile.
    Producer,
    /// A proof as hex.
    Proof,
    /// A statement with its circuit.
    Statement,
}

/// Largest body per [`BodyClass`], in bytes, the body read timeout, and the node-wide
/// budget for large bodies; the server puts one in the app's data (the defaults apply
/// without it).
#[derive(Debug, Clone)]
pub struct BodyLimits {
    /// Sign-up and login bodies.
    pub account: usize,
    /// Request and proposal bodies.
    pub order: usize,
    /// Producer profile bodies.
    pub producer: usize,
    /// Proof bodies: the largest proof as hex, plus slack for the keys.
    pub proof: usize,
    /// Statement bodies: both definition texts at their cap, plus the other fields.
    pub statement: usize,
    /// Longest time reading one body may take, from the handler's first read.
    pub read_timeout: Duration,
    /// Bytes of large bodies (beyond each body's free part) read at once, node-wide.
    pub budget: Arc<BodyBudget>,
}

impl BodyLimits {
    /// Default of `--max-account-body`.
    pub const ACCOUNT: usize = 4 << 10;
    /// Default of `--max-order-body`.
    pub const ORDER: usize = 64 << 10;
    /// Default of `--max-producer-body`.
    pub const PRODUCER: usize = 16 << 10;
    /// Default of `--body-read-timeout-ms`.
    pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default of `--body-budget-mib`, in bytes.
    pub const BUDGET: usize = 128 << 20;

    /// The default limits for a market with `limits` on what it stores: a proof route
    /// takes the largest proof as hex plus 64 KiB, a statement route both definition
    /// texts at their cap plus 1 MiB (JSON escapes of the IR text and the other fields).
    pub fn for_market(limits: &Limits) -> BodyLimits {
        BodyLimits {
            account: Self::ACCOUNT,
            order: Self::ORDER,
            producer: Self::PRODUCER,
            proof: limits.max_proof_bytes * 2 + (64 << 10),
            statement: limits.max_definition_bytes * 2 + (1 << 20),
            read_timeout: Self::READ_TIMEOUT,
            budget: Arc::new(BodyBudget::new(Self::BUDGET)),
        }
    }

    /// The limit of a route's bodies.
    pub fn of(&self, class: Option<BodyClass>) -> usize {
        match class {
            Some(BodyClass::Account) | None => self.account,
            Some(BodyClass::Order) => self.order,
            Some(BodyClass::Producer) => self.producer,
            Some(BodyClass::Proof) => self.proof,
            Some(BodyClass::Statement) => self.statement,
        }
    }
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits::for_market(&Limits::default())
    }
}

/// The node-wide allowance for bytes of large bodies read at once (see the module doc).
#[derive(Debug)]
pub struct BodyBudget {
    capacity: usize,
    used: AtomicUsize,
}

impl BodyBudget {
    /// Bytes of each body that are not counted (an order's limit: ordinary calls never
    /// touch the budget).
    pub const FREE: usize = 64 << 10;

    /// A budget of `capacity` bytes.
    pub fn new(capacity: usize) -> BodyBudget {
        BodyBudget {
            capacity,
            used: AtomicUsize::new(0),
        }
    }

    fn try_take(self: &Arc<Self>, n: usize, held: &mut Reservation) -> bool {
        let mut cur = self.used.load(Ordering::Relaxed);
        loop {
            if cur + n > self.capacity {
                return false;
            }
            match self
                .used
                .compare_exchange_weak(cur, cur + n, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    held.bytes += n;
                    held.budget = Some(self.clone());
                    return true;
                }
                Err(now) => cur = now,
            }
        }
    }
}

/// Bytes a body holds of the [`BodyBudget`], given back when the body is dropped.
#[derive(Debug, Default)]
struct Reservation {
    budget: Option<Arc<BodyBudget>>,
    bytes: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.used.fetch_sub(self.bytes, Ordering::AcqRel);
        }
    }
}

/// A JSON object body: the bytes as sent (to forward them unchanged) and the object
/// they parse to.
pub struct JsonBody {
    /// The body as received.
    pub bytes: Bytes,
    /// The parsed object.
    pub object: Map<String, Value>,
    /// Its share of the large-body budget, held while the call runs.
    _reserved: Reservation,
}

impl FromRequest for JsonBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = R<JsonBody>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let encoded = req
            .headers()
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
        let limits = req
            .app_data::<web::Data<BodyLimits>>()
            .map(|l| l.get_ref().clone())
            .unwrap_or_default();
        let limit = limits.of(req.app_data::<BodyClass>().copied());
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            if encoded {
                // Inflating would let a small body cost a large allocation.
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "compressed request bodies are not accepted; send plain JSON",
                ));
            }
            if declared.is_some_and(|n| n > limit) {
                return Err(too_large(limit));
            }
            let mut reserved = Reservation::default();
            let busy = || -> ApiError {
                MarketError::unavailable(
                    "too many large request bodies are being received, retry shortly",
                )
                .into()
            };
            // A declared length is reserved (and allocated) at once, so the buffer never
            // grows past what the budget counts; a chunked body reserves as it comes.
            let upfront = declared.unwrap_or(0).saturating_sub(BodyBudget::FREE);
            if upfront > 0 && !limits.budget.try_take(upfront, &mut reserved) {
                return Err(busy());
            }
            let read = async {
                let mut buf = BytesMut::with_capacity(declared.unwrap_or(0));
                while let Some(chunk) = payload.next().await {
                    let chunk = chunk
                        .map_err(|e| ApiError::bad_request(format!("unreadable body: {e}")))?;
                    let len = buf.len() + chunk.len();
                    if len > limit {
                        return Err(too_large(limit));
                    }
                    let counted = len.saturating_sub(BodyBudget::FREE);
                    if counted > reserved.bytes
                        && !limits
                            .budget
                            .try_take(counted - reserved.bytes, &mut reserved)
                    {
                        return Err(busy());
                    }
                    buf.extend_from_slice(&chunk);
                }
                Ok(buf.freeze())
            };
            let bytes = match tokio::time::timeout(limits.read_timeout, read).await {
                Ok(r) => r?,
                Err(_) => {
                    return Err(ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        format!(
                            "the request body was not received within {} ms",
                            limits.read_timeout.as_millis()
                        ),
                    ))
                }
            };
            super::node_auth::check_body(&req, &bytes)?;
            Ok(JsonBody {
                object: parse_object(&bytes)?,
                bytes,
                _reserved: reserved,
            })
        })
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body is larger than {limit} bytes, this call's limit"),
    )
}

/// Most JSON text a body's non-string values may have together. Every body the API
/// takes is an object of strings, numbers and small arrays; only strings (a circuit, a
/// proof) are large. A parsed JSON tree takes tens of bytes per value (with arbitrary
/// precision, a heap string per number), so `[1,1,...]` would grow a 9 MiB body into
/// hundreds of MB; this caps every body's tree at a few MB.
pub const MAX_TREE_TEXT: usize = 64 << 10;

/// Parses a body that must be a JSON object: its values are read as raw text first;
/// strings are then decoded as strings (any length the body limit allows), objects at
/// the top two levels (a statement's `definition`) read the same way, and any other
/// value parsed into a tree only while such values' text stays within [`MAX_TREE_TEXT`]
/// in all.
pub fn parse_object(bytes: &[u8]) -> R<Map<String, Value>> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        // Still say what is wrong with text that is not JSON at all.
        serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(malformed)?;
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    let mut budget = MAX_TREE_TEXT;
    raw_object(bytes, 2, &mut budget)
}

fn malformed(e: serde_json::Error) -> ApiError {
    ApiError::bad_request(format!("malformed JSON body: {e}"))
}

/// The object in `text`, its members read as [`parse_object`] says; objects nested
/// `depth` levels down or deeper count as trees.
fn raw_object(text: &[u8], depth: u32, budget: &mut usize) -> R<Map<String, Value>> {
    type Raw = Box<serde_json::value::RawValue>;
    let members: std::collections::BTreeMap<String, Raw> =
        serde_json::from_slice(text).map_err(malformed)?;
    let mut out = Map::new();
    for (field, value) in members {
        let text = value.get();
        let parsed = if text.starts_with('"') {
            Value::String(serde_json::from_str(text).map_err(malformed)?)
        } else if text.starts_with('{') && depth > 1 {
            Value::Object(raw_object(text.as_bytes(), depth - 1, budget)?)
        } else {
            *budget = budget.checked_sub(text.len()).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "`{}`: the body's values other than strings are over {MAX_TREE_TEXT} bytes \
                     of JSON",
                    excerpt(&field)
                ))
            })?;
            serde_json::from_str(text).map_err(malformed)?
        };
        out.insert(field, parsed);
    }
    Ok(out)
}

/// At most 64 characters of client text, for error messages.
fn excerpt(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The body must be a JSON object.
pub fn object(v: Value) -> R<Map<String, Value>> {
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::bad_request("the body must be a JSON object")),
    }
}

/// An optional string field of at most `max` bytes.
fn optional_string(m: &Map<String, Value>, field: &str, max: usize) -> R<Option<String>> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= max => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_request(format!(
            "`{field}` must be a string of at most {max} bytes"
        ))),
    }
}

/// A required string field.
pub fn string(m: &Map<String, Value>, field: &str) -> R<String> {
    match m.get(field) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Err(ApiError::bad_request(format!("missing field `{field}`"))),
        Some(_) => Err(ApiError::bad_request(format!("`{field}` must be a string"))),
    }
}

/// A key given as a decimal string or a non-negative integer.
pub fn key_field(m: &Map<String, Value>, field: &str) -> R<Option<Key>> {
    let text = match m.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => {
            return Err(ApiError::bad_request(format!(
                "`{field}` must be a key (decimal string)"
            )))
        }
    };
    Key::parse(&text)
        .map(Some)
        .ok_or_else(|| ApiError::bad_request(format!("`{field}` is not a valid key: `{text}`")))
}

/// A key in a path segment.
pub fn path_key(what: &str, s: &str) -> R<Key> {
    Key::parse(s).ok_or_else(|| ApiError::bad_request(format!("`{s}` is not a valid {what} key")))
}

fn minutes(m: &Map<String, Value>, field: &str) -> R<Option<Minutes>> {
    let bad = || {
        ApiError::bad_request(format!(
            "`{field}` must be a whole number of minutes from 1 to {} or null",
            Minutes::MAX.0
        ))
    };
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let v = n.as_u64().ok_or_else(bad)?;
            if v == 0 || v > u64::from(Minutes::MAX.0) {
                return Err(bad());
            }
            Ok(Some(Minutes(v as u32)))
        }
        Some(_) => Err(bad()),
    }
}

fn cost(m: &Map<String, Value>) -> R<Cost> {
    match m.get("cost") {
        Some(Value::Number(n)) => Cost::parse_json_number(&n.to_string())
            .map_err(|e| ApiError::bad_request(format!("`cost`: {e}"))),
        None | Some(Value::Null) => Err(ApiError::bad_request("missing field `cost`")),
        Some(_) => Err(ApiError::bad_request("`cost`: cost must be a JSON number")),
    }
}

/// An amount of money (`amount`): a JSON number of units, as a cost is (> 0, at most 6
/// decimals, at most 10^12), in micro-units.
pub fn amount(m: &Map<String, Value>) -> R<u128> {
    match m.get("amount") {
        Some(Value::Number(n)) => Cost::parse_json_number(&n.to_string())
            .map(|c| u128::from(c.micros()))
            .map_err(|e| ApiError::bad_request(format!("`amount`: {e}"))),
        None | Some(Value::Null) => Err(ApiError::bad_request("missing field `amount`")),
        Some(_) => Err(ApiError::bad_request("`amount` must be a JSON number")),
    }
}

/// An operator credit: `{user, amount}`.
pub fn credit(m: &Map<String, Value>) -> R<(UserName, u128)> {
    let user = string(m, "user")?;
    let user =
        UserName::parse(&user).ok_or_else(|| ApiError::bad_request("`user`: not a user name"))?;
    Ok((user, amount(m)?))
}

/// A new request or proposal, with the `Idempotency-Key` header it came with.
pub fn new_order(
    side: Side,
    m: &Map<String, Value>,
    idempotency: Option<IdempotencyKey>,
) -> R<NewOrder> {
    let statement = key_field(m, "statement_key")?
        .ok_or_else(|| ApiError::bad_request("missing field `statement_key`"))?;
    let input = match side {
        Side::Request => {
            let raw = m
                .get("input")
                .filter(|v| !v.is_null())
                .ok_or_else(|| ApiError::bad_request("missing field `input`"))?;
            let parsed =
                PublicInput::from_json(raw).map_err(|e| ApiError::bad_request(e.to_string()))?;
            Some((tidy_input(raw), parsed))
        }
        Side::Proposal => None,
    };
    Ok(NewOrder {
        side,
        statement,
        cost: cost(m)?,
        eval_time: minutes(m, "eval_time")?,
        wait_period: minutes(m, "wait_period")?,
        input,
        idempotency,
    })
}

/// The input as it is stored and shown: the client's shape and the client's spelling
/// of each value (`5`, `"0x05"`), without anything else it sent around them
/// (whitespace, separators), so what is stored is bounded by the circuit's arity, not
/// by what the client padded. `raw` has passed [`PublicInput::from_json`].
fn tidy_input(raw: &Value) -> Value {
    match raw {
        Value::Object(m) => {
            let text = m.get("input").and_then(Value::as_str).unwrap_or_default();
            let lines: Vec<&str> = text.split_whitespace().collect();
            serde_json::json!({ "input": lines.join("\n") })
        }
        Value::Array(items) => Value::Array(items.iter().map(tidy_item).collect()),
        other => other.clone(),
    }
}

/// One item of an array input: `{"field": v}` with its value trimmed, or a
/// `{"vector"|"array"|"struct": [...]}` of such items.
fn tidy_item(item: &Value) -> Value {
    if let Some(v) = item.get("field") {
        return match v {
            Value::String(s) => serde_json::json!({"field": s.trim()}),
            v => serde_json::json!({ "field": v }),
        };
    }
    for kind in ["vector", "array", "struct"] {
        if let Some(Value::Array(members)) = item.get(kind) {
            let members: Vec<Value> = members.iter().map(tidy_item).collect();
            return serde_json::json!({ kind: members });
        }
    }
    item.clone()
}

/// A sign-up.
pub fn new_user(m: &Map<String, Value>) -> R<NewUser> {
    let user = UserName::parse(&string(m, "user")?).ok_or_else(|| {
        ApiError::bad_request(
            "`user` must be 1 to 64 characters of letters, digits, `_`, `-`, `.`, `@`",
        )
    })?;
    let passwd = password(m, "passwd")?;
    let email = match m.get("email") {
        None | Some(Value::Null) => None,
        Some(Value::String(e)) if e.contains('@') && e.len() <= 254 => Some(e.clone()),
        Some(_) => return Err(ApiError::bad_request("`email` must be an e-mail address")),
    };
    Ok(NewUser {
        user,
        passwd,
        email,
    })
}

/// A password field: 1 to 1024 bytes.
fn password(m: &Map<String, Value>, field: &str) -> R<String> {
    let p = string(m, field)?;
    if p.is_empty() || p.len() > 1024 {
        return Err(ApiError::bad_request(format!(
            "`{field}` must be 1 to 1024 bytes"
        )));
    }
    Ok(p)
}

/// Credentials of `/_open/auth`: user name and password (at most 1024 bytes, like
/// every stored one).
pub fn credentials(m: &Map<String, Value>) -> R<(String, String)> {
    Ok((string(m, "username")?, password(m, "password")?))
}

/// A password change: `{"passwd": old, "new_passwd": new}`.
pub fn password_change(m: &Map<String, Value>) -> R<(String, String)> {
    Ok((password(m, "passwd")?, password(m, "new_passwd")?))
}

/// Largest producer `description`, in bytes.
pub const MAX_PRODUCER_DESCRIPTION: usize = 4 << 10;
/// Largest producer `url` and `logo`, in bytes.
pub const MAX_PRODUCER_URL: usize = 2 << 10;

/// A producer's profile.
pub fn producer_profile(m: &Map<String, Value>) -> R<ProducerProfile> {
    let description = string(m, "description")?;
    if description.len() > MAX_PRODUCER_DESCRIPTION {
        return Err(ApiError::bad_request(format!(
            "`description` is longer than {MAX_PRODUCER_DESCRIPTION} bytes"
        )));
    }
    Ok(ProducerProfile {
        description,
        url: optional_string(m, "url", MAX_PRODUCER_URL)?,
        logo: optional_string(m, "logo", MAX_PRODUCER_URL)?,
        eth_address: optional_string(m, "eth_address", 128)?,
    })
}

/// A new statement; `max_definition` bounds each of the definition's two texts.
pub fn new_statement(m: &Map<String, Value>, max_definition: usize) -> R<NewStatement> {
    let text = |field: &str, required: bool, max: usize| -> R<String> {
        match m.get(field) {
            Some(Value::String(s)) if s.len() > max => Err(ApiError::bad_request(format!(
                "`{field}` is longer than {max} bytes"
            ))),
            Some(Value::String(s)) if required && s.trim().is_empty() => Err(
                ApiError::bad_request(format!("`{field}` must not be empty")),
            ),
            Some(Value::String(s)) => Ok(s.clone()),
            None | Some(Value::Null) if !required => Ok(String::new()),
            None | Some(Value::Null) => {
                Err(ApiError::bad_request(format!("missing field `{field}`")))
            }
            Some(_) => Err(ApiError::bad_request(format!("`{field}` must be a string"))),
        }
    };
    let name = text("name", true, 256)?;
    let kind = text("type", true, 64)?;
    if kind != "placeholder-zkllvm" {
        return Err(ApiError::bad_request(format!(
            "unsupported statement type `{kind}`; this market proves `placeholder-zkllvm` circuits"
        )));
    }
    let is_private = match m.get("isPrivate") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::bad_request("`isPrivate` must be true or false")),
    };
    let def = match m.get("definition") {
        Some(Value::Object(d)) => d,
        None => return Err(ApiError::bad_request("missing field `definition`")),
        Some(_) => {
            return Err(ApiError::bad_request(
                "`definition` must be an object with `proving_key`",
            ))
        }
    };
    let too_big = |f: &str| {
        ApiError::bad_request(format!(
            "`definition.{f}` is larger than {max_definition} bytes"
        ))
    };
    let proving_key = match def.get("proving_key") {
        Some(Value::String(s)) if s.trim().is_empty() => {
            return Err(ApiError::bad_request("`definition.proving_key` is empty"))
        }
        Some(Value::String(s)) if s.len() > max_definition => return Err(too_big("proving_key")),
        Some(Value::String(s)) => s.clone(),
        None => {
            return Err(ApiError::bad_request(
                "missing field `definition.proving_key` (the circuit as zkLLVM IR)",
            ))
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "`definition.proving_key` must be a string",
            ))
        }
    };
    let verification_key = match def.get("verification_key") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) if s.len() > max_definition => {
            return Err(too_big("verification_key"))
        }
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "`definition.verification_key` must be a string",
            ))
        }
    };
    Ok(NewStatement {
        name,
        kind,
        description: text("description", false, 16 << 10)?,
        url: text("url", false, 2 << 10)?,
        input_description: text("input_description", false, 16 << 10)?,
        is_private,
        proving_key,
        verification_key,
    })
}

/// The `Idempotency-Key` header, if sent.
pub fn idempotency_key(req: &actix_web::HttpRequest) -> R<Option<IdempotencyKey>> {
    let Some(v) = req.headers().get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    let text = v
        .to_str()
        .map_err(|_| ApiError::bad_request("Idempotency-Key must be visible ASCII characters"))?;
    IdempotencyKey::parse(text)
        .map(Some)
        .map_err(ApiError::bad_request)
}

/// A pushed proof: hex text with an optional `0x` prefix.
pub fn proof_push(m: &Map<String, Value>, max_bytes: usize) -> R<ProofPush> {
    let text = string(m, "proof")?;
    let t = text.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    if t.is_empty() {
        return Err(ApiError::bad_request("`proof` is empty"));
    }
    if t.len() > max_bytes * 2 {
        return Err(ApiError::bad_request(format!(
            "`proof` is larger than {max_bytes} bytes"
        )));
    }
    let proof = hex::decode(t)
        .map_err(|e| ApiError::bad_request(format!("`proof` is not hex text: {e}")))?;
    Ok(ProofPush {
        proof: proof.into(),
        proposal: key_field(m, "proposal_key")?,
        request: key_field(m, "request_key")?,
    })
}

/// Largest `skipped` of a list call: a page further on is a 400, not a scan.
pub const MAX_SKIPPED: usize = 100_000;

fn page(
    limit: Option<usize>,
    skipped: Option<usize>,
    max_limit: usize,
    default: usize,
) -> R<(usize, usize)> {
    let limit = limit.unwrap_or(default);
    if limit == 0 || limit > max_limit {
        return Err(ApiError::bad_request(format!(
            "`limit` must be from 1 to {max_limit}"
        )));
    }
    let skipped = skipped.unwrap_or(0);
    if skipped > MAX_SKIPPED {
        return Err(ApiError::bad_request(format!(
            "`skipped` must be at most {MAX_SKIPPED}; narrow the list with `q` instead"
        )));
    }
    Ok((limit, skipped))
}

/// Query string of `GET /statement`: a page of statements, with their definitions only
/// when `full=true` (then at most [`StatementQuery::MAX_FULL`] a page).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatementQuery {
    /// Most statements (default 100, at most 1000; 10 with `full`).
    limit: Option<usize>,
    /// Statements to skip first.
    skipped: Option<usize>,
    /// Include each statement's `definition`.
    full: Option<bool>,
}

impl StatementQuery {
    /// Most statements a page with definitions holds (each may be megabytes).
    pub const MAX_FULL: usize = 10;

    /// (limit, skipped, full).
    pub fn page(&self) -> R<(usize, usize, bool)> {
        let full = self.full.unwrap_or(false);
        let (max, default) = if full {
            (Self::MAX_FULL, Self::MAX_FULL)
        } else {
            (1000, 100)
        };
        let (limit, skipped) = page(self.limit, self.skipped, max, default)?;
        Ok((limit, skipped, full))
    }
}

/// Query string of list calls.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Filter: a JSON array of `{"key": <field>, "value": <value>}` (fields `status`,
    /// `statement_key`, `sender`).
    q: Option<String>,
    /// Most orders (default 100, at most 1000).
    limit: Option<usize>,
    /// Orders to skip first.
    skipped: Option<usize>,
}

impl ListQuery {
    /// The filter it describes.
    pub fn filter(&self) -> R<OrderFilter> {
        let (limit, skipped) = page(self.limit, self.skipped, 1000, 100)?;
        let mut f = OrderFilter {
            limit,
            skipped,
            ..OrderFilter::default()
        };
        let Some(q) = &self.q else { return Ok(f) };
        let terms: Vec<Value> = serde_json::from_str(q).map_err(|_| {
            ApiError::bad_request("`q` must be a JSON array of {\"key\": .., \"value\": ..}")
        })?;
        for t in terms {
            let key = t.get("key").and_then(Value::as_str);
            let value = t.get("value");
            let text = match value {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => {
                    return Err(ApiError::bad_request(
                        "each `q` term needs a string `value`",
                    ))
                }
            };
            match key {
                Some("status") => {
                    f.status =
                        Some(Status::parse(&text).ok_or_else(|| {
                            ApiError::bad_request(format!("unknown status `{text}`"))
                        })?)
                }
                Some("sender") => f.sender = Some(text),
                Some("statement_key") => f.statement = Some(path_key("statement", &text)?),
                Some(other) => {
                    return Err(ApiError::bad_request(format!(
                        "cannot filter on `{other}`; use status, sender or statement_key"
                    )))
                }
                None => return Err(ApiError::bad_request("each `q` term needs a `key`")),
            }
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        object(v).unwrap()
    }

    #[test]
    fn bodies_never_grow_into_large_trees() {
        // Large strings are fine; numbers keep their exact text.
        let proof = "ab".repeat(1 << 20);
        let body = format!(
            r#"{{"proof": "{proof}", "cost": 1.000001, "n": [1, {{"a": null}}],
                "definition": {{"proving_key": "{proof}", "deep": {{"k": [2]}}}}}}"#
        );
        let m = parse_object(body.as_bytes()).unwrap();
        assert_eq!(m["proof"].as_str().map(str::len), Some(2 << 20));
        let pk = m["definition"]["proving_key"].as_str().map(str::len);
        assert_eq!(pk, Some(2 << 20));
        assert_eq!(m["definition"]["deep"], json!({"k": [2]}));
        assert_eq!(m["cost"].to_string(), "1.000001");
        assert_eq!(m["n"], json!([1, {"a": null}]));
        // 100 KiB of `[1,1,...]` under any name is refused, in one field or spread out.
        let ones = vec!["1"; 50 << 10].join(",");
        let body = format!(r#"{{"proof": "00", "x": [{ones}]}}"#);
        let e = parse_object(body.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("`x`"), "{e}");
        let body = format!(r#"{{"definition": {{"proving_key": "", "x": [{ones}]}}}}"#);
        assert!(parse_object(body.as_bytes()).is_err());
        let spread: Vec<String> = (0..40)
            .map(|i| format!(r#""f{i}": [{}]"#, vec!["1"; 1000].join(",")))
            .collect();
        let body = format!("{{{}}}", spread.join(","));
        assert!(parse_object(body.as_bytes()).is_err());
        // Not an object, not JSON.
        for bad in ["[1]", "\"x\"", "nul", "{\"a\": }", ""] {
            assert!(parse_object(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(parse_object(b"[1]")
            .unwrap_err()
            .to_string()
            .contains("object"));
    }

    #[test]
    fn orders_parse_and_refuse() {
        let ok = new_order(
            Side::Request,
            &obj(json!({"statement_key": "5", "cost": 2, "input": {"input": "1\n11"}})),
            None,
        )
        .unwrap();
        assert_eq!(ok.statement, Key(5));
        assert_eq!(ok.cost.micros(), 2_000_000);
        for bad in [
            json!({"statement_key": "5", "cost": 0, "input": []}),
            json!({"statement_key": "5", "cost": -1, "input": []}),
            json!({"statement_key": "5", "cost": "2", "input": []}),
            json!({"statement_key": "5", "cost": 1e13, "input": []}),
            json!({"statement_key": "5", "cost": 1, "input": [{"field": "x"}]}),
            json!({"statement_key": "5", "cost": 1}),
            json!({"cost": 1, "input": []}),
            json!({"statement_key": "abc", "cost": 1, "input": []}),
            json!({"statement_key": "5", "cost": 1, "input": [], "eval_time": -3}),
            json!({"statement_key": "5", "cost": 1, "input": [], "eval_time": 1.5}),
        ] {
            assert!(
                new_order(Side::Request, &obj(bad.clone()), None).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn proofs_are_hex() {
        let p = proof_push(
            &obj(json!({"proof": "0xdeadBEEF", "proposal_key": "7"})),
            100,
        )
        .unwrap();
        assert_eq!(&p.proof[..], [0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(p.proposal, Some(Key(7)));
        assert!(proof_push(&obj(json!({"proof": "0x"})), 100).is_err());
        assert!(proof_push(&obj(json!({"proof": "xyz"})), 100).is_err());
        assert!(proof_push(&obj(json!({"proof": "abc"})), 100).is_err());
        assert!(proof_push(&obj(json!({"proof": "00".repeat(101)})), 100).is_err());
    }

    #[test]
    fn inputs_are_stored_without_padding_in_their_shape() {
        let padded = json!({"input": format!("  1{}\n\n 0x0b  ", " ".repeat(1000))});
        assert_eq!(tidy_input(&padded), json!({"input": "1\n0x0b"}));
        let fields = json!([{"field": " 0x03 "}, {"field": 30}]);
        assert_eq!(
            tidy_input(&fields),
            json!([{"field": "0x03"}, {"field": 30}])
        );
    }

    #[test]
    fn pages_are_capped() {
        let q = |limit, skipped| ListQuery {
            q: None,
            limit,
            skipped,
        };
        assert!(q(None, Some(MAX_SKIPPED)).filter().is_ok());
        assert!(q(None, Some(MAX_SKIPPED + 1)).filter().is_err());
        assert!(q(Some(1001), None).filter().is_err());
        let s = |limit, full| StatementQuery {
            limit,
            skipped: None,
            full,
        };
        assert_eq!(s(None, None).page().unwrap(), (100, 0, false));
        assert_eq!(s(None, Some(true)).page().unwrap(), (10, 0, true));
        assert!(s(Some(11), Some(true)).page().is_err());
    }

    #[test]
    fn the_budget_is_given_back() {
        let b = Arc::new(BodyBudget::new(100));
        let mut r = Reservation::default();
        assert!(b.try_take(60, &mut r));
        assert!(!b.try_take(41, &mut Reservation::default()));
        drop(r);
        assert!(b.try_take(100, &mut Reservation::default()));
    }

    #[test]
    fn queries_filter() {
        let q = ListQuery {
            q: Some(
                r#"[{"key":"status","value":"created"},{"key":"sender","value":"bob"}]"#.into(),
            ),
            limit: None,
            skipped: None,
        };
        let f = q.filter().unwrap();
        assert_eq!(f.status, Some(Status::Created));
        assert_eq!(f.sender.as_deref(), Some("bob"));
        let bad = ListQuery {
            q: Some("[{\"key\":\"cost\",\"value\":\"1\"}]".into()),
            limit: None,
            skipped: None,
        };
        assert!(bad.filter().is_err());
    }
}

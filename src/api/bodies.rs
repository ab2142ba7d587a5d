//! Request bodies and query strings: from client bytes to the market's typed inputs.
//!
//! A body is read once, as bytes ([`JsonBody`]), within the size limit and refused
//! before it is read when it is too large or compressed; the same bytes are forwarded
//! unchanged when another node owns the call. It is parsed once, as JSON, and checked
//! field by field into a typed value, so every refusal names the field and what was
//! wrong with it ("`cost` must be greater than 0") instead of a deserializer's position
//! report.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::{header, StatusCode};
use actix_web::web::{Bytes, BytesMut};
use actix_web::{FromRequest, HttpRequest};
use futures_util::StreamExt;
use serde_json::{Map, Value};

use crate::domain::{Cost, IdempotencyKey, Key, Minutes, Side, Status, UserName};
use crate::input::PublicInput;
use crate::market::{NewOrder, NewStatement, NewUser, OrderFilter, ProducerProfile, ProofPush};
use crate::protocol::IDEMPOTENCY_HEADER;

use super::error::ApiError;
use super::MAX_BODY;

type R<T> = Result<T, ApiError>;

/// A JSON object body: the bytes as sent (to forward them unchanged) and the object
/// they parse to.
pub struct JsonBody {
    /// The body as received.
    pub bytes: Bytes,
    /// The parsed object.
    pub object: Map<String, Value>,
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
        let mut payload = payload.take();
        Box::pin(async move {
            if encoded {
                // Inflating would let a small body cost a large allocation.
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "compressed request bodies are not accepted; send plain JSON",
                ));
            }
            if declared.is_some_and(|n| n > MAX_BODY) {
                return Err(too_large());
            }
            let mut buf = BytesMut::with_capacity(declared.unwrap_or(0));
            while let Some(chunk) = payload.next().await {
                let chunk =
                    chunk.map_err(|e| ApiError::bad_request(format!("unreadable body: {e}")))?;
                if buf.len() + chunk.len() > MAX_BODY {
                    return Err(too_large());
                }
                buf.extend_from_slice(&chunk);
            }
            let bytes = buf.freeze();
            let value: Value = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))?;
            Ok(JsonBody {
                bytes,
                object: object(value)?,
            })
        })
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body is larger than {MAX_BODY} bytes"),
    )
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
            Some((raw.clone(), parsed))
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

/// A producer's profile.
pub fn producer_profile(m: &Map<String, Value>) -> R<ProducerProfile> {
    const MAX: usize = 2048;
    Ok(ProducerProfile {
        description: string(m, "description")?,
        url: optional_string(m, "url", MAX)?,
        logo: optional_string(m, "logo", MAX)?,
        eth_address: optional_string(m, "eth_address", MAX)?,
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
        description: text("description", false, 64 << 10)?,
        url: text("url", false, 64 << 10)?,
        input_description: text("input_description", false, 64 << 10)?,
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

/// Query string of list calls.
#[derive(Debug, serde::Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    limit: Option<usize>,
    skipped: Option<usize>,
}

impl ListQuery {
    /// The filter it describes.
    pub fn filter(&self) -> R<OrderFilter> {
        let mut f = OrderFilter {
            limit: self.limit.unwrap_or(100),
            skipped: self.skipped.unwrap_or(0),
            ..OrderFilter::default()
        };
        if f.limit == 0 || f.limit > 1000 {
            return Err(ApiError::bad_request("`limit` must be from 1 to 1000"));
        }
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

//! Request ids: every call gets one (the client's `x-request-id` when it is a sane
//! token, else a fresh one), answered in the same header, carried when the call is
//! forwarded to another node, and set on a `call` span around the call's handling, so
//! every log line written for the call carries it (and the JSON logs its method, path,
//! and the statement and order it touched, where the handler records them).

use std::fmt::Write;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest};
use tracing::Instrument;

pub use crate::protocol::REQUEST_ID_HEADER;

/// Longest client-chosen request id.
pub const MAX_LEN: usize = 64;

/// Most characters of a path put in the log span (a client chooses the path).
const MAX_LOGGED_PATH: usize = 128;

/// The id of the call being handled, in the request's extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

impl RequestId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or("")
    }
}

/// `raw` when it is a request id a client may choose.
fn accepted(raw: &[u8]) -> bool {
    !raw.is_empty()
        && raw.len() <= MAX_LEN
        && raw
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// A fresh id: 16 hex digits of randomness.
fn fresh() -> HeaderValue {
    let mut s = String::with_capacity(16);
    let _ = write!(s, "{:016x}", rand::random::<u64>());
    // Hex digits are always a valid header value.
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// The id of `req` (set by [`assign`]).
pub fn of(req: &HttpRequest) -> Option<RequestId> {
    req.extensions().get::<RequestId>().cloned()
}

/// Middleware: gives the call its id, runs it inside a `call` span carrying it, and
/// answers the id in [`REQUEST_ID_HEADER`].
pub async fn assign(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .filter(|v| accepted(v.as_bytes()))
        .cloned()
        .unwrap_or_else(fresh);
    let path = req.path();
    let path = match path.char_indices().nth(MAX_LOGGED_PATH) {
        Some((i, _)) => &path[..i],
        None => path,
    };
    let span = tracing::info_span!(
        "call",
        request_id = id.to_str().unwrap_or(""),
        method = %req.method(),
        path,
        statement = tracing::field::Empty,
        order = tracing::field::Empty,
    );
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut res = next.call(req).instrument(span).await?;
    res.headers_mut()
        .insert(HeaderName::from_static(REQUEST_ID_HEADER), id);
    Ok(res)
}

/// Records the statement and order a call touched on its `call` span (shown in every
/// later log line of the call).
pub fn record_keys(statement: Option<crate::domain::Key>, order: Option<crate::domain::Key>) {
    let span = tracing::Span::current();
    if let Some(s) = statement {
        span.record("statement", s.0);
    }
    if let Some(o) = order {
        span.record("order", o.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_must_be_short_tokens() {
        assert!(accepted(b"abc-123_x.y:z"));
        assert!(accepted(&[b'a'; MAX_LEN]));
        assert!(!accepted(&[b'a'; MAX_LEN + 1]));
        assert!(!accepted(b""));
        assert!(!accepted(b"has space"));
        assert!(!accepted(b"new\nline"));
        assert!(!accepted("é".as_bytes()));
    }

    #[test]
    fn fresh_ids_are_sixteen_hex_digits() {
        let a = fresh();
        let b = fresh();
        assert_eq!(a.len(), 16);
        assert!(a.to_str().unwrap().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}

//! [`Transport`]: how one market call goes over the wire.
//!
//! It owns the HTTP connection pool, the timeouts (connect [`CONNECT_TIMEOUT`], whole call
//! [`REQUEST_TIMEOUT`]), the retry policy, and the mapping of answers and failures to
//! [`ClientError`]. It knows no market paths; [`crate::client::calls`] does.
//!
//! Retries: only a 503 or 429 that carries `Retry-After: <seconds>` is retried, at most
//! [`MAX_RETRIES`] times, each wait capped at [`MAX_RETRY_WAIT`]. Nothing else is retried,
//! because a failed POST may or may not have been applied, except for calls sent with an
//! `Idempotency-Key` (order placement), which the market applies
//! once however often they arrive: those are also resent after a lost connection or answer.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use crate::client::error::{one_line, ClientError};

/// Most resends of one call after 503/429 with `Retry-After`.
pub const MAX_RETRIES: u32 = 5;
/// Most resends of a keyed call after the connection failed (one second apart).
pub const MAX_TRANSPORT_RETRIES: u32 = 2;
/// Longest wait honoured from one `Retry-After`.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(5);
/// Time allowed to open a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for a whole call (connect, send, answer).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A market's base URL and a pooled HTTP/1.1 client for it.
#[derive(Debug, Clone)]
pub struct Transport {
    http: reqwest::Client,
    base_url: String,
    /// Whether a keyed call is resent after a lost connection (see the module doc).
    resend_lost: bool,
}

impl Transport {
    /// A transport to `base_url` (trailing slashes dropped). The URL is checked per call.
    pub fn new(base_url: &str) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            // Building only fails when no TLS/resolver backend can start; the plain client
            // then is the best there is.
            .unwrap_or_else(|_| reqwest::Client::new());
        Transport {
            http,
            base_url: base_url.trim().trim_end_matches('/').to_string(),
            resend_lost: true,
        }
    }

    /// The same connection pool to another base URL, for one attempt there: a call
    /// that loses its connection fails at once (its caller goes elsewhere).
    pub fn one_attempt_at(&self, base_url: &str) -> Self {
        Transport {
            http: self.http.clone(),
            base_url: base_url.trim().trim_end_matches('/').to_string(),
            resend_lost: false,
        }
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The URL of `path` (which starts with `/`) under the base URL, with `query` appended.
    pub fn url(&self, path: &str, query: &[(&str, String)]) -> Result<Url, ClientError> {
        let mut url = Url::parse(&format!("{}{path}", self.base_url)).map_err(|e| {
            ClientError::Invalid(format!("invalid market URL '{}': {e}", self.base_url))
        })?;
        // reqwest is built without TLS (default features off), so https cannot work.
        if url.scheme() != "http" {
            return Err(ClientError::Invalid(format!(
                "invalid market URL '{}': it must start with http:// (this client has no TLS)",
                self.base_url
            )));
        }
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// Sends one call, resending it after 503/429 with `Retry-After`, and, when it
    /// carries an `Idempotency-Key`, after a lost connection too (see the module doc).
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        token: Option<&str>,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Value, ClientError> {
        let mut retries = 0;
        let mut transport_retries = 0;
        // One id for the call, resends included: the market's logs show them together,
        // and an error line names it.
        let request_id = format!("{:016x}", rand::random::<u64>());
        loop {
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .header(crate::protocol::REQUEST_ID_HEADER, &request_id);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(key) = idempotency_key {
                request = request.header(crate::protocol::IDEMPOTENCY_HEADER, key);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = match request.send().await {
                Ok(r) => r,
                Err(_)
                    if self.resend_lost
                        && idempotency_key.is_some()
                        && transport_retries < MAX_TRANSPORT_RETRIES =>
                {
                    transport_retries += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Err(e) => return Err(transport_error(&self.base_url, &e)),
            };
            let status = response.status();
            if let Some(wait) = retry_wait(status, response.headers()) {
                if retries < MAX_RETRIES {
                    retries += 1;
                    drop(response);
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            let text = response.text().await.map_err(|e| {
                ClientError::Transport(format!(
                    "lost the connection to the market at {} while reading its answer: {}",
                    self.base_url,
                    cause(&e)
                ))
            })?;
            return decode_answer(status, &text).map_err(|e| e.with_request_id(&request_id));
        }
    }
}

/// The wait a 503/429 answer asks for in `Retry-After: <seconds>`, capped; `None` when the
/// answer must not be retried.
pub fn retry_wait(status: StatusCode, headers: &HeaderMap) -> Option<Duration> {
    if status != StatusCode::SERVICE_UNAVAILABLE && status != StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    let seconds: f64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(seconds).min(MAX_RETRY_WAIT))
}

/// A success is 2xx with a JSON body; anything else becomes [`ClientError::Http`].
fn decode_answer(status: StatusCode, text: &str) -> Result<Value, ClientError> {
    if !status.is_success() {
        return Err(ClientError::from_http_body(status.as_u16(), text));
    }
    serde_json::from_str(text).map_err(|e| {
        ClientError::Invalid(format!(
            "the market answered {} with a body that is not JSON ({e}): {}",
            status.as_u16(),
            one_line(&text.chars().take(80).collect::<String>())
        ))
    })
}

/// One line for a failed send: `cannot reach the market at URL: connection refused`.
fn transport_error(base_url: &str, err: &reqwest::Error) -> ClientError {
    if err.is_builder() {
        return ClientError::Invalid(format!("cannot build the call: {}", cause(err)));
    }
    let reason = if err.is_timeout() {
        if err.is_connect() {
            format!("no connection within {} s", CONNECT_TIMEOUT.as_secs())
        } else {
            format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())
        }
    } else {
        cause(err)
    };
    ClientError::Transport(format!("cannot reach the market at {base_url}: {reason}"))
}

/// The most specific cause in an error chain, in words a user knows.
fn cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost: &(dyn std::error::Error + 'static) = err;
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            let known = match io.kind() {
                ConnectionRefused => Some("connection refused"),
                ConnectionReset => Some("connection reset"),
                ConnectionAborted => Some("connection aborted"),
                TimedOut => Some("timed out"),
                UnexpectedEof => Some("the connection closed early"),
                _ => None,
            };
            if let Some(known) = known {
                return known.to_string();
            }
        }
        innermost = e;
        current = e.source();
    }
    one_line(&innermost.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn retry_only_on_503_and_429_with_retry_after() {
        let mut with = HeaderMap::new();
        with.insert(RETRY_AFTER, reqwest::header::HeaderValue::from_static("2"));
        let none = HeaderMap::new();
        let unavailable = StatusCode::SERVICE_UNAVAILABLE;
        assert_eq!(retry_wait(unavailable, &with), Some(Duration::from_secs(2)));
        assert_eq!(
            retry_wait(StatusCode::TOO_MANY_REQUESTS, &with),
            Some(Duration::from_secs(2))
        );
        assert_eq!(retry_wait(unavailable, &none), None);
        assert_eq!(retry_wait(StatusCode::CONFLICT, &with), None);
        assert_eq!(retry_wait(StatusCode::INTERNAL_SERVER_ERROR, &with), None);
        let mut long = HeaderMap::new();
        long.insert(
            RETRY_AFTER,
            reqwest::header::HeaderValue::from_static("3600"),
        );
        assert_eq!(retry_wait(unavailable, &long), Some(MAX_RETRY_WAIT));
        let mut date = HeaderMap::new();
        date.insert(
            RETRY_AFTER,
            reqwest::header::HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_wait(unavailable, &date), None);
    }

    #[test]
    fn answers_decode_or_fail_in_one_line() {
        assert_eq!(
            decode_answer(StatusCode::OK, r#"{"a":1}"#).ok(),
            Some(json!({"a": 1}))
        );
        let err = decode_answer(StatusCode::OK, "<html>\n</html>").err();
        assert!(err.is_some_and(|e| !e.to_string().contains('\n')));
        let err = decode_answer(
            StatusCode::NOT_FOUND,
            r#"{"error":true,"code":404,"errorMessage":"no request 7"}"#,
        );
        assert_eq!(
            err.err().map(|e| e.to_string()).as_deref(),
            Some("404 Not Found: no request 7")
        );
    }
}

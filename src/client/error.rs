//! The client library's error type, [`ClientError`], and the parsing of the market's error
//! bodies.
//!
//! Every variant renders as one line, because the command line prints `error: <Display>` and
//! exits, and the producer daemon logs it as one field: a user reads that line and nothing
//! else. Causes are therefore folded into the message
//! instead of being chained as `source()`, so `{}` and `{:#}` print the same single line.

use std::path::PathBuf;

/// Anything that can go wrong while talking to the market or preparing a call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The market answered with a non-success status; `message` is its `errorMessage`
    /// (or, for a body that is not the market's error JSON, the body's first line).
    #[error("{}", http_line(*.status, .message, .request_id.as_deref()))]
    Http {
        /// HTTP status code, e.g. 409.
        status: u16,
        /// What the server said went wrong, one line; may be empty.
        message: String,
        /// The call's `x-request-id`, which names it in the market's logs.
        request_id: Option<String>,
    },
    /// The market could not be reached or the exchange broke off; the whole line is ready
    /// to print, e.g. `cannot reach the market at http://127.0.0.1:8080: connection refused`.
    #[error("{0}")]
    Transport(String),
    /// A local file could not be read or written.
    #[error("cannot {action} {}: {reason}", .path.display())]
    Io {
        /// `"read"`, `"write"`, `"create"`, ...
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The operating system's reason.
        reason: std::io::Error,
    },
    /// Bad local input (a key, proof text, a file's contents) or an answer the client cannot
    /// use.
    #[error("{0}")]
    Invalid(String),
    /// The call needs a token and there is none usable.
    #[error("not logged in: {0}")]
    NotLoggedIn(String),
    /// A wait ran out of time (`--wait --timeout`); the line says what did not happen.
    #[error("{0}")]
    TimedOut(String),
    /// `get_proof_by_request`: the request exists but holds no `proof_key` yet.
    #[error("request {request_key} has no proof yet (status: {status})")]
    NoProofYet {
        /// The request asked about.
        request_key: String,
        /// Its current status, as the market reported it.
        status: String,
    },
}

impl ClientError {
    /// Builds [`ClientError::Io`].
    pub fn io(action: &'static str, path: impl Into<PathBuf>, reason: std::io::Error) -> Self {
        ClientError::Io {
            action,
            path: path.into(),
            reason,
        }
    }

    /// The HTTP status, when the market answered with an error status.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Builds [`ClientError::Http`] from an error answer's status and body.
    ///
    /// The market's bodies look like `{"error": true, "code": 409, "errorMessage": "..."}`;
    /// anything else (a proxy's HTML page, plain text, nothing) is reduced to its first
    /// non-empty line, at most [`MAX_MESSAGE_CHARS`] characters.
    pub fn from_http_body(status: u16, body: &str) -> Self {
        let from_json = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| match v.get("errorMessage") {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(other) if !other.is_null() => Some(other.to_string()),
                _ => None,
            });
        let raw = match from_json {
            Some(message) => message,
            None => body
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("")
                .to_string(),
        };
        ClientError::Http {
            status,
            message: one_line(&raw),
            request_id: None,
        }
    }

    /// The same error, naming the call's request id (when it is an HTTP answer).
    pub fn with_request_id(self, id: &str) -> Self {
        match self {
            ClientError::Http {
                status, message, ..
            } => ClientError::Http {
                status,
                message,
                request_id: Some(id.to_owned()),
            },
            other => other,
        }
    }
}

/// Longest message kept from an error body.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// Collapses whitespace runs (newlines included) to single spaces and caps the length, so a
/// message always fits on the one line the binary prints.
pub fn one_line(text: &str) -> String {
    let mut out = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.chars().count() > MAX_MESSAGE_CHARS {
        out = out.chars().take(MAX_MESSAGE_CHARS).collect::<String>() + "...";
    }
    out
}

/// `409 Conflict: <message>`, or `503 Service Unavailable` when there is no message.
fn http_line(status: u16, message: &str, request_id: Option<&str>) -> String {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("HTTP error");
    let line = if message.is_empty() {
        format!("{status} {reason}")
    } else {
        format!("{status} {reason}: {message}")
    };
    match request_id {
        Some(id) => format!("{line} (request id {id})"),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn market_error_body_becomes_one_line() {
        let body = r#"{"error":true,"code":409,"errorMessage":"request 123 is processing, only created orders can be withdrawn"}"#;
        let err = ClientError::from_http_body(409, body);
        assert_eq!(err.status(), Some(409));
        assert_eq!(
            err.to_string(),
            "409 Conflict: request 123 is processing, only created orders can be withdrawn"
        );
    }

    #[test]
    fn the_request_id_ends_the_line() {
        let body = r#"{"error":true,"code":409,"errorMessage":"already withdrawn"}"#;
        let err = ClientError::from_http_body(409, body).with_request_id("9f0c1d2e3a4b5c6d");
        assert_eq!(
            err.to_string(),
            "409 Conflict: already withdrawn (request id 9f0c1d2e3a4b5c6d)"
        );
        let other = ClientError::Invalid("x".into()).with_request_id("1");
        assert_eq!(other.to_string(), "x");
    }

    #[test]
    fn multi_line_message_is_folded() {
        let body = r#"{"error":true,"code":400,"errorMessage":"bad input:\n  value 7\n  is not a field element"}"#;
        let line = ClientError::from_http_body(400, body).to_string();
        assert_eq!(
            line,
            "400 Bad Request: bad input: value 7 is not a field element"
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn non_json_body_keeps_first_line() {
        let err = ClientError::from_http_body(502, "\n  Bad gateway  \nupstream died\n");
        assert_eq!(err.to_string(), "502 Bad Gateway: Bad gateway");
    }

    #[test]
    fn empty_body_prints_status_only() {
        assert_eq!(
            ClientError::from_http_body(503, "").to_string(),
            "503 Service Unavailable"
        );
        assert_eq!(
            ClientError::from_http_body(599, "").to_string(),
            "599 HTTP error"
        );
    }

    #[test]
    fn long_message_is_capped() {
        let body = format!(r#"{{"errorMessage":"{}"}}"#, "x".repeat(1000));
        let line = ClientError::from_http_body(400, &body).to_string();
        assert!(line.len() < MAX_MESSAGE_CHARS + 40);
        assert!(line.ends_with("..."));
    }

    #[test]
    fn other_variants_are_one_line() {
        let errs = [
            ClientError::io(
                "read",
                "proof.bin",
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ),
            ClientError::NotLoggedIn(
                "no token in .proof-market-auth.json (run 'proof-market user login')".into(),
            ),
            ClientError::NoProofYet {
                request_key: "16153352".into(),
                status: "processing".into(),
            },
        ];
        for e in errs {
            let line = e.to_string();
            assert!(!line.contains('\n'), "{line}");
            assert_eq!(format!("{:#}", anyhow::Error::from(e)), line);
        }
    }
}

//! The market's error type: what went wrong, in terms a client can act on.
//!
//! Every layer below the API (matcher, service, auth) reports a [`MarketError`]; the
//! API maps it to an HTTP status and the JSON error body in exactly one place
//! (`api::error`).

use crate::store::{Refusal, StoreError};

/// A failed market operation. A failed operation changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum MarketError {
    /// The client sent something malformed or meaningless.
    #[error("{0}")]
    BadRequest(String),
    /// No valid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// The caller does not own what it touches.
    #[error("{0}")]
    Forbidden(String),
    /// No such object.
    #[error("{0}")]
    NotFound(String),
    /// The object is not in a state that allows this.
    #[error("{0}")]
    Conflict(String),
    /// The market cannot take this now; retry after the given seconds.
    #[error("{message}")]
    Unavailable {
        /// What is busy or down.
        message: String,
        /// Suggested wait.
        retry_after_secs: u64,
    },
    /// Too many attempts (failed logins); retry after the given seconds. HTTP 429.
    #[error("{message}")]
    TooManyRequests {
        /// What was refused.
        message: String,
        /// When the caller may try again.
        retry_after_secs: u64,
    },
    /// A change was sent on but its answer was lost (a store timeout or dropped
    /// connection, an owner node that died mid-call): it may or may not have been
    /// applied, and resending it blindly could apply it twice. HTTP 504.
    #[error("{0}")]
    OutcomeUnknown(String),
    /// A bug or corrupt data; details are logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl MarketError {
    /// True for a 4xx: the call was refused for what it asked, so nothing of it was
    /// written (a 5xx may mean the write's outcome is unknown).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            MarketError::BadRequest(_)
                | MarketError::Unauthorized(_)
                | MarketError::Forbidden(_)
                | MarketError::NotFound(_)
                | MarketError::Conflict(_)
                | MarketError::TooManyRequests { .. }
        )
    }

    /// The same error for another waiter of a failed batch: a 503 stays that 503,
    /// anything else becomes an internal error with its text (logged, not sent).
    pub fn duplicate(&self) -> MarketError {
        match self {
            MarketError::Unavailable {
                message,
                retry_after_secs,
            } => MarketError::Unavailable {
                message: message.clone(),
                retry_after_secs: *retry_after_secs,
            },
            other => MarketError::Internal(other.to_string()),
        }
    }

    /// Shorthand for a 503 with a one-second retry hint.
    pub fn unavailable(message: impl Into<String>) -> MarketError {
        MarketError::Unavailable {
            message: message.into(),
            retry_after_secs: 1,
        }
    }
}

impl From<StoreError> for MarketError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Redis(e) => {
                tracing::warn!(error = %e, "store unavailable");
                MarketError::unavailable("the store is unavailable, retry shortly")
            }
            StoreError::Fenced => {
                MarketError::unavailable("statement is moving to another node, retry shortly")
            }
            StoreError::Corrupt(m) => MarketError::Internal(m),
        }
    }
}

impl From<crate::archive::ArchiveError> for MarketError {
    fn from(e: crate::archive::ArchiveError) -> Self {
        use crate::archive::ArchiveError as A;
        match e {
            A::Store(e) => e.into(),
            A::Corrupt(m) => MarketError::Internal(m),
            other => {
                tracing::warn!(error = %other, "history database unavailable");
                MarketError::unavailable("the history database is unavailable, retry shortly")
            }
        }
    }
}

impl MarketError {
    /// The answer to an order placement without an Idempotency-Key whose write may or
    /// may not have happened.
    pub fn placement_unknown(what: &str) -> MarketError {
        MarketError::OutcomeUnknown(format!(
            "{what}; the order may or may not have been placed: list your orders before \
             placing it again, or send an Idempotency-Key"
        ))
    }
}

impl From<Refusal> for MarketError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::NotYours(m) => MarketError::Forbidden(m),
            Refusal::NotFound(m) => MarketError::NotFound(m),
            Refusal::Exists(m) | Refusal::WrongStatus(m) | Refusal::NotMatched(m) => {
                MarketError::Conflict(m)
            }
            Refusal::Late(m) => MarketError::unavailable(format!("{m}; place the order again")),
        }
    }
}

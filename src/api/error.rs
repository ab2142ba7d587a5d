//! The one place where market errors become HTTP responses.
//!
//! Every failure leaves as `{"error": true, "code": <status>, "errorMessage": "..."}`
//! (the original market's shape). 503s and 429s carry `Retry-After`; a 401 refusing a
//! call between nodes carries `WWW-Authenticate` with the node scheme. Internal errors
//! are logged with their detail and sent without it.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};

use crate::error::MarketError;

/// A market error on its way out over HTTP.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
    /// `WWW-Authenticate` scheme of a 401.
    challenge: Option<&'static str>,
}

impl ApiError {
    /// An error with an explicit status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
            challenge: None,
        }
    }

    /// The same error naming the authentication `scheme` it wants (`WWW-Authenticate`).
    pub fn with_challenge(mut self, scheme: &'static str) -> ApiError {
        self.challenge = Some(scheme);
        self
    }

    /// 400 with a message.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl From<MarketError> for ApiError {
    fn from(e: MarketError) -> Self {
        let (status, retry_after) = match &e {
            MarketError::BadRequest(_) => (StatusCode::BAD_REQUEST, None),
            MarketError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, None),
            MarketError::Forbidden(_) => (StatusCode::FORBIDDEN, None),
            MarketError::NotFound(_) => (StatusCode::NOT_FOUND, None),
            MarketError::Conflict(_) => (StatusCode::CONFLICT, None),
            MarketError::Unavailable {
                retry_after_secs, ..
            } => (StatusCode::SERVICE_UNAVAILABLE, Some(*retry_after_secs)),
            MarketError::TooManyRequests {
                retry_after_secs, ..
            } => (StatusCode::TOO_MANY_REQUESTS, Some(*retry_after_secs)),
            MarketError::OutcomeUnknown(_) => (StatusCode::GATEWAY_TIMEOUT, None),
            MarketError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                return ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; it has been logged",
                );
            }
        };
        ApiError {
            status,
            message: e.to_string(),
            retry_after,
            challenge: None,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status);
        if let Some(s) = self.retry_after {
            r.insert_header((header::RETRY_AFTER, s.to_string()));
        }
        if let Some(scheme) = self.challenge {
            r.insert_header((header::WWW_AUTHENTICATE, scheme));
        }
        r.json(serde_json::json!({
            "error": true,
            "code": self.status.as_u16(),
            "errorMessage": self.message,
        }))
    }
}

/// Maps query-string failures to 400.
pub fn query_error(
    err: actix_web::error::QueryPayloadError,
    _: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::bad_request(format!("bad query string: {err}")).into()
}

/// Maps path failures to 400.
pub fn path_error(
    err: actix_web::error::PathError,
    _: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::bad_request(format!("bad path: {err}")).into()
}

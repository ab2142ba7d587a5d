//! The authenticated caller, taken from `Authorization: Bearer <jwt>`.

use std::future::{ready, Ready};

use actix_web::{web, FromRequest, HttpRequest};

use crate::domain::UserName;
use crate::error::MarketError;
use crate::market::Market;

use super::error::ApiError;

/// The user a valid token names. Extracting it is the authorization check.
#[derive(Debug, Clone)]
pub struct Caller(pub UserName);

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Caller, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(caller(req))
    }
}

fn caller(req: &HttpRequest) -> Result<Caller, ApiError> {
    let market = req
        .app_data::<web::Data<Market>>()
        .ok_or_else(|| ApiError::from(MarketError::Internal("market state missing".into())))?;
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| {
            MarketError::Unauthorized(
                "missing `Authorization: Bearer <token>`; log in at /_open/auth".into(),
            )
        })?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .unwrap_or(header)
        .trim();
    Ok(Caller(market.tokens().verify(token)?))
}

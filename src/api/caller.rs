//! The authenticated caller, taken from `Authorization: Bearer <jwt>`.
//!
//! The token's signature, expiry and maximum age are checked at once; its revocation
//! (logout, password change) against this node's cache of the user's revocation time,
//! which costs a Redis read only when the cache entry is older than its TTL.

use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::{ready, Either, LocalBoxFuture, Ready};

use crate::auth::Verified;
use crate::domain::UserName;
use crate::error::MarketError;
use crate::market::Market;

use super::error::ApiError;
use super::node_auth;

/// The user a valid token names. Extracting it is the authorization check.
#[derive(Debug, Clone)]
pub struct Caller(pub UserName);

impl FromRequest for Caller {
    type Error = ApiError;
    type Future =
        Either<Ready<Result<Caller, ApiError>>, LocalBoxFuture<'static, Result<Caller, ApiError>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let (market, v) = match verified(req) {
            Ok(x) => x,
            Err(e) => return Either::Left(ready(Err(e))),
        };
        // The user's calls are counted once, on the node the client called.
        let charge = market.limits().rate.per_user > 0 && !node_auth::from_node(req);
        match market.tokens().check_cached(&v) {
            Some(Err(e)) => Either::Left(ready(Err(e.into()))),
            Some(Ok(())) if !charge => Either::Left(ready(Ok(Caller(v.user)))),
            Some(Ok(())) => Either::Right(Box::pin(async move {
                market.charge_user(&v.user).await?;
                Ok(Caller(v.user))
            })),
            None => Either::Right(Box::pin(async move {
                let user = market.authenticate(v).await?;
                if charge {
                    market.charge_user(&user).await?;
                }
                Ok(Caller(user))
            })),
        }
    }
}

fn verified(req: &HttpRequest) -> Result<(web::Data<Market>, Verified), ApiError> {
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
    Ok((market.clone(), market.tokens().verify(token)?))
}

/// The verified token of a call that needs its claims (`user/renew`), revocation
/// checked like [`Caller`].
#[derive(Debug, Clone)]
pub struct CallerToken(pub Verified);

impl FromRequest for CallerToken {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<CallerToken, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let x = verified(req);
        let from_node = node_auth::from_node(req);
        Box::pin(async move {
            let (market, v) = x?;
            let user = market.authenticate(v.clone()).await?;
            if !from_node {
                market.charge_user(&user).await?;
            }
            Ok(CallerToken(v))
        })
    }
}

/// The caller of a route anyone may read (market data): `None` without an
/// `Authorization` header; with one, the token must be valid like [`Caller`]'s (a bad
/// token is refused, never read as anonymous).
#[derive(Debug, Clone)]
pub struct MaybeCaller(pub Option<UserName>);

impl FromRequest for MaybeCaller {
    type Error = ApiError;
    type Future = Either<
        Ready<Result<MaybeCaller, ApiError>>,
        LocalBoxFuture<'static, Result<MaybeCaller, ApiError>>,
    >;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        if !req
            .headers()
            .contains_key(actix_web::http::header::AUTHORIZATION)
        {
            return Either::Left(ready(Ok(MaybeCaller(None))));
        }
        let caller = Caller::from_request(req, payload);
        Either::Right(Box::pin(
            async move { Ok(MaybeCaller(Some(caller.await?.0))) },
        ))
    }
}

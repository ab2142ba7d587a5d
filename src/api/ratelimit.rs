//! The per-IP rate limit, as middleware: every call from a client address takes a
//! token from that address's bucket in Redis before anything else is done with it (its
//! body is not read); an empty bucket is a 429 with `Retry-After` and the JSON error.
//! `/health` is not counted (monitors poll it), nor are calls forwarded by another node
//! (the client was counted where it called). The per-user limit is taken where the
//! token is checked ([`super::caller`]).

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};

use crate::market::Market;

use super::error::ApiError;
use super::node_auth;

/// Charges the caller's address (see the module docs).
pub async fn limit_ip(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let charged = match (req.app_data::<web::Data<Market>>(), req.peer_addr()) {
        (Some(m), Some(peer))
            if req.path() != "/health" && !node_auth::from_node(req.request()) =>
        {
            m.charge_ip(peer.ip()).await
        }
        _ => Ok(()),
    };
    match charged {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(e) => {
            let response = ApiError::from(e).error_response();
            Ok(req.into_response(response).map_into_right_body())
        }
    }
}

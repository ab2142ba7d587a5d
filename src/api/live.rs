//! `GET /events`: the caller's live stream (Server-Sent Events); see [`crate::live`].

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::bodies;
use super::caller::Caller;
use super::error::ApiError;
use super::views;
use crate::error::MarketError;
use crate::live::frames::{self, Position};
use crate::live::stream::{replay, EventStream};
use crate::live::Hub;
use crate::market::{Market, Router};

/// The header a reconnecting client names the last event it saw with.
pub const LAST_EVENT_ID: &str = "Last-Event-ID";

/// Query of `GET /events`.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Also stream this statement's public book depth, orders and trades.
    statement: Option<String>,
}

/// `GET /events[?statement=K]` with `Last-Event-ID` to resume.
#[utoipa::path(get, path = "/_db/market/v0_0/events", tag = "live", security(("bearer" = [])),
    description = "Server-Sent Events: the caller's own orders (placed, matched, proved, withdrawn, rolled_back, resold) and money movements, and with `statement` that statement's public `book`, `order`, `trade` frames. Each event's `id` resumes the stream when sent back as `Last-Event-ID` (on any node, within the resume window); `reset` says events were lost and state should be read again.",
    params(EventsQuery, ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event")),
    responses((status = 200, description = "The stream", content_type = "text/event-stream", body = String), super::openapi::Errors))]
pub async fn events(
    m: web::Data<Market>,
    hub: web::Data<Hub>,
    router: web::Data<Router>,
    req: HttpRequest,
    c: Caller,
    q: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let hub = hub.into_inner();
    let stmt = q
        .statement
        .as_deref()
        .map(|s| bodies::path_key("statement", s))
        .transpose()?;
    if let Some(s) = stmt {
        super::request_id::record_keys(Some(s), None);
        if !hub
            .store()
            .statement_exists(s)
            .await
            .map_err(MarketError::from)?
        {
            return Err(MarketError::NotFound(format!("no statement {s}")).into());
        }
    }
    let from = match req.headers().get(LAST_EVENT_ID) {
        None => None,
        Some(v) => Some(v.to_str().ok().and_then(Position::parse).ok_or_else(|| {
            MarketError::BadRequest(format!(
                "{LAST_EVENT_ID} must be an event id this market sent (<ms>-<seq>/<statement>/<n>)"
            ))
        })?),
    };
    let user = c.0.as_str().to_owned();
    // Subscribed before anything is read: nothing that happens from now on is missed.
    let sub = hub.subscribe(&user, stmt)?;
    let mut first = Vec::new();
    let hello = frames::state(
        "hello",
        &json!({"node": router.node().id, "user": user,
                "statement_key": stmt.map(|s| s.to_string()), "resumed": from.is_some()}),
    );
    // `retry:` sets how soon a browser reconnects after the stream ends.
    first.push(format!("retry: 1000\n{}", hello.text()).into());
    let wallet = m.balance(&user, &user).await?;
    first.push(frames::state("wallet", &views::wallet(&user, &wallet)).bytes);
    let mut upto = Default::default();
    if let Some(from) = from {
        let r = replay(hub.store(), &user, stmt, from)
            .await
            .map_err(MarketError::from)?;
        match r.reset {
            Some(reason) => first.push(frames::state("reset", &json!({ "reason": reason })).bytes),
            None => {
                first.extend(r.frames);
                upto = r.upto;
            }
        }
    }
    let stream = EventStream::new(sub, first, upto, hub.config().ping);
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream.body()))
}

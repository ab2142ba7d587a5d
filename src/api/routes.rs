//! HTTP handlers: parse, authorize, route, call the market, render. Nothing else.

use super::request_id::record_keys;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use crate::domain::Side;
use crate::error::MarketError;
use crate::market::{Market, Router};

use super::bodies::{self, JsonBody, ListQuery, StatementQuery};
use super::caller::{Caller, CallerToken, MaybeCaller};
use super::error::ApiError;
use super::forward::{dispatch, Resend};
use super::views;

type Res = Result<HttpResponse, ApiError>;

fn ok(v: Value) -> Res {
    Ok(HttpResponse::Ok().json(v))
}

/// 200 with `v` written as JSON.
fn json_ok(v: impl serde::Serialize) -> HttpResponse {
    HttpResponse::Ok().json(v)
}

/// `POST /user/signup`
pub async fn signup(m: web::Data<Market>, body: JsonBody) -> Res {
    let user = m.signup(bodies::new_user(&body.object)?).await?;
    ok(views::signup(&user))
}

/// `POST /_open/auth`
pub async fn login(m: web::Data<Market>, req: HttpRequest, body: JsonBody) -> Res {
    let (user, password) = bodies::credentials(&body.object)?;
    let ip = req.peer_addr().map(|a| a.ip());
    ok(views::token(&m.login(&user, password, ip).await?))
}

/// `POST /user/renew`: a new token with the same login time, refused past the maximum
/// token age.
pub async fn renew(m: web::Data<Market>, c: CallerToken) -> Res {
    ok(views::token(&m.tokens().renew(&c.0)?))
}

/// `POST /user/logout`: revokes every token of the caller issued so far.
pub async fn logout(m: web::Data<Market>, c: Caller) -> Res {
    m.logout(&c.0).await?;
    ok(views::logged_out(&c.0))
}

/// `POST /user/password`: `{"passwd": old, "new_passwd": new}`; revokes every token of
/// the caller and answers a fresh one.
pub async fn change_password(
    m: web::Data<Market>,
    req: HttpRequest,
    c: Caller,
    body: JsonBody,
) -> Res {
    let (old, new) = bodies::password_change(&body.object)?;
    let ip = req.peer_addr().map(|a| a.ip());
    ok(views::token(&m.change_password(&c.0, old, new, ip).await?))
}

/// `POST /producer/register`
pub async fn register_producer(m: web::Data<Market>, c: Caller, body: JsonBody) -> Res {
    let profile = bodies::producer_profile(&body.object)?;
    ok(views::producer(&m.register_producer(&c.0, profile).await?))
}

/// `POST /statement`
pub async fn push_statement(m: web::Data<Market>, c: Caller, body: JsonBody) -> Res {
    let s = bodies::new_statement(&body.object, m.limits().max_definition_bytes)?;
    ok(views::statement(&m.create_statement(&c.0, s).await?))
}

/// `GET /statement[?limit=&skipped=&full=true]`: a page of statements, ascending by
/// key, without `definition` unless `full=true`.
pub async fn list_statements(
    m: web::Data<Market>,
    _c: MaybeCaller,
    q: web::Query<StatementQuery>,
) -> Res {
    let (limit, skipped, full) = q.page()?;
    let page = m.list_statements(limit, skipped, full).await?;
    ok(Value::Array(
        page.iter()
            .map(|s| views::listed_statement(s, full))
            .collect(),
    ))
}

/// `GET /statement/{key}`; `?info` instead answers its market data of today,
/// `?statistics` its completed trades' averages.
pub async fn get_statement(
    m: web::Data<Market>,
    req: HttpRequest,
    _c: MaybeCaller,
    key: web::Path<String>,
) -> Res {
    let key = bodies::path_key("statement", &key)?;
    let flags: Vec<&str> = req
        .query_string()
        .split('&')
        .map(|p| p.split('=').next().unwrap_or(""))
        .collect();
    if flags.contains(&"info") {
        return ok(views::market_info(key, &m.market_data(key).await?));
    }
    if flags.contains(&"statistics") {
        return ok(views::market_statistics(key, &m.market_data(key).await?));
    }
    ok(views::statement(&m.get_statement(key).await?))
}

/// `GET /statement/{key}/trades[?limit=N]`: its latest trades (at most 100), newest
/// first.
pub async fn trades(
    m: web::Data<Market>,
    _c: MaybeCaller,
    key: web::Path<String>,
    q: web::Query<TradesQuery>,
) -> Res {
    let key = bodies::path_key("statement", &key)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 100);
    ok(views::trades(&m.recent_trades(key, limit).await?))
}

/// Query of `GET /statement/{key}/trades`.
#[derive(serde::Deserialize)]
pub struct TradesQuery {
    limit: Option<usize>,
}

/// `POST /request` and `POST /proposal`
pub async fn push_order(
    m: web::Data<Market>,
    router: web::Data<Router>,
    side: web::Data<Side>,
    req: HttpRequest,
    c: Caller,
    body: JsonBody,
) -> Res {
    let idempotency = bodies::idempotency_key(&req)?;
    // Placing an order twice is not harmless: only a keyed placement may be resent.
    let resend = match idempotency {
        Some(_) => Resend::Safe,
        None => Resend::Unsafe,
    };
    let order = bodies::new_order(**side, &body.object, idempotency)?;
    record_keys(Some(order.statement), None);
    let (m, c) = (&m, &c);
    let order = &order;
    let answer = dispatch(
        &router,
        &req,
        order.statement,
        Some(&body.bytes),
        resend,
        |h| async move { m.place(&h, &c.0, order).await },
    )
    .await?;
    Ok(answer.respond(|o| {
        record_keys(None, Some(o.key));
        json_ok(views::order(&o))
    }))
}

async fn withdraw(
    m: &Market,
    router: &Router,
    req: &HttpRequest,
    c: &Caller,
    side: Side,
    key: &str,
) -> Res {
    let key = bodies::path_key(side.as_str(), key)?;
    let stmt = m.statement_of(side.as_str(), key).await?;
    record_keys(Some(stmt), Some(key));
    // A second withdrawal of the same order is refused (409), never applied twice.
    let answer = dispatch(router, req, stmt, None, Resend::Safe, |h| async move {
        m.withdraw(&h, &c.0, side, key).await
    })
    .await?;
    Ok(answer.respond(|o| json_ok(views::order(&o))))
}

/// `GET /request/{key}` and `GET /proposal/{key}`
pub async fn get_order(
    m: web::Data<Market>,
    side: web::Data<Side>,
    _c: Caller,
    key: web::Path<String>,
) -> Res {
    let side = **side;
    let key = bodies::path_key(side.as_str(), &key)?;
    record_keys(None, Some(key));
    Ok(json_ok(views::order(&m.get_order(side, key).await?)))
}

/// `GET /request?q=..` and `GET /proposal?q=..`
pub async fn list_orders(
    m: web::Data<Market>,
    side: web::Data<Side>,
    _c: Caller,
    q: web::Query<ListQuery>,
) -> Res {
    let orders = m.list_orders(**side, &q.filter()?).await?;
    Ok(json_ok(orders.iter().map(views::order).collect::<Vec<_>>()))
}

/// `DELETE /request/{key}` and `DELETE /proposal/{key}`
pub async fn withdraw_order(
    m: web::Data<Market>,
    router: web::Data<Router>,
    side: web::Data<Side>,
    req: HttpRequest,
    c: Caller,
    key: web::Path<String>,
) -> Res {
    withdraw(&m, &router, &req, &c, **side, &key).await
}

/// `POST /proof`
pub async fn push_proof(
    m: web::Data<Market>,
    router: web::Data<Router>,
    req: HttpRequest,
    c: Caller,
    body: JsonBody,
) -> Res {
    let p = bodies::proof_push(&body.object, m.limits().max_proof_bytes)?;
    let stmt = m.proof_statement(&p).await?;
    record_keys(Some(stmt), None);
    let (m, c) = (&m, &c);
    // A second proof for the same orders is refused (409), never applied twice.
    let p = &p;
    let answer = dispatch(
        &router,
        &req,
        stmt,
        Some(&body.bytes),
        Resend::Safe,
        |h| async move { m.push_proof(&h, &c.0, p).await },
    )
    .await?;
    Ok(answer.respond(|p| json_ok(views::proof(&p, false))))
}

/// Query of `GET /proof/{key}`.
#[derive(serde::Deserialize)]
pub struct ProofQuery {
    full: Option<bool>,
}

/// `GET /proof/{key}`
pub async fn get_proof(
    m: web::Data<Market>,
    c: Caller,
    key: web::Path<String>,
    q: web::Query<ProofQuery>,
) -> Res {
    let p = m.get_proof(bodies::path_key("proof", &key)?).await?;
    let full = q.full.unwrap_or(false);
    if full && !m.may_read_proof(c.0.as_str(), &p).await? {
        return Err(MarketError::Forbidden(format!(
            "proof {}'s bytes are for those who paid for it, its producer and its statement's              owner; its record without `full=true` is public",
            p.key
        ))
        .into());
    }
    ok(views::proof(&p, full))
}

/// `GET /book/{statement_key}`
pub async fn book(
    m: web::Data<Market>,
    router: web::Data<Router>,
    req: HttpRequest,
    _c: MaybeCaller,
    key: web::Path<String>,
) -> Res {
    let stmt = bodies::path_key("statement", &key)?;
    let m = &m;
    let answer = dispatch(&router, &req, stmt, None, Resend::Safe, |h| async move {
        m.book(&h, 1000).await
    })
    .await?;
    Ok(answer.respond(|(r, p)| json_ok(views::book(&r, &p))))
}

/// `GET /user/{user}/balance`: the caller's own wallet.
pub async fn balance(m: web::Data<Market>, c: Caller, user: web::Path<String>) -> Res {
    let w = m.balance(c.0.as_str(), &user).await?;
    ok(views::wallet(c.0.as_str(), &w))
}

/// `POST /admin/credit` `{user, amount}`, with the operator's token.
pub async fn admin_credit(m: web::Data<Market>, req: HttpRequest, body: JsonBody) -> Res {
    let token = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    m.check_admin(token)?;
    let (user, amount) = bodies::credit(&body.object)?;
    let w = m.admin_credit(user.as_str(), amount).await?;
    ok(views::wallet(user.as_str(), &w))
}

/// `GET /producer/{user}/stats`: a producer's public track record.
pub async fn producer_stats(m: web::Data<Market>, _c: MaybeCaller, user: web::Path<String>) -> Res {
    let r = m.track_record(&user).await?;
    ok(views::track_record(&user, &r))
}

/// `POST /producer/deposit` `{amount}`: balance into the producer deposit.
pub async fn deposit(m: web::Data<Market>, c: Caller, body: JsonBody) -> Res {
    let amount = bodies::amount(&body.object)?;
    let w = m.move_deposit(c.0.as_str(), amount, true).await?;
    ok(views::wallet(c.0.as_str(), &w))
}

/// `POST /producer/deposit/release` `{amount}`: deposit no work holds back to the
/// balance.
pub async fn release_deposit(m: web::Data<Market>, c: Caller, body: JsonBody) -> Res {
    let amount = bodies::amount(&body.object)?;
    let w = m.move_deposit(c.0.as_str(), amount, false).await?;
    ok(views::wallet(c.0.as_str(), &w))
}

/// `GET /health`: 200 once the node has joined the cluster and Redis answers; 503
/// while starting, while handing statements over before it stops, or without Redis.
pub async fn health(m: web::Data<Market>) -> HttpResponse {
    let h = m.health().await;
    let body = views::health(&h);
    if h.redis_ok && h.ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .json(body)
    }
}

/// `GET /metrics`: this node's metrics in the Prometheus text format.
pub async fn metrics(m: web::Data<Market>) -> HttpResponse {
    let text = crate::metrics::render(m.metrics_state().await).await;
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
}

/// `GET /cluster`: the live nodes and, for every statement, the node that should own
/// it (rendezvous over the live nodes) and the node holding its lease, read from Redis.
pub async fn cluster(m: web::Data<Market>, _c: Caller) -> Res {
    ok(views::cluster(&m.cluster_report().await?))
}

/// Any other path.
pub async fn not_found(req: HttpRequest) -> Res {
    Err(MarketError::NotFound(format!("no route for {} {}", req.method(), req.path())).into())
}

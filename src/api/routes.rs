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
use super::{openapi, views};

type Res = Result<HttpResponse, ApiError>;

fn ok(v: Value) -> Res {
    Ok(HttpResponse::Ok().json(v))
}

/// 200 with `v` written as JSON.
fn json_ok(v: impl serde::Serialize) -> HttpResponse {
    HttpResponse::Ok().json(v)
}

/// `POST /user/signup`
#[utoipa::path(post, path = "/_db/market/v0_0/user/signup", tag = "accounts",
    request_body = openapi::NewUser,
    responses((status = 200, description = "The new account", body = openapi::SignedUp), openapi::Errors))]
pub async fn signup(m: web::Data<Market>, body: JsonBody) -> Res {
    let user = m.signup(bodies::new_user(&body.object)?).await?;
    ok(views::signup(&user))
}

/// `POST /_open/auth`
#[utoipa::path(post, path = "/_open/auth", tag = "accounts",
    request_body = openapi::Credentials,
    responses((status = 200, description = "A token for `Authorization: Bearer`", body = openapi::Token), openapi::Errors))]
pub async fn login(m: web::Data<Market>, req: HttpRequest, body: JsonBody) -> Res {
    let (user, password) = bodies::credentials(&body.object)?;
    let ip = req.peer_addr().map(|a| a.ip());
    ok(views::token(&m.login(&user, password, ip).await?))
}

/// `POST /user/renew`: a new token with the same login time, refused past the maximum
/// token age.
#[utoipa::path(post, path = "/_db/market/v0_0/user/renew", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, description = "A fresh token", body = openapi::Token), openapi::Errors))]
pub async fn renew(m: web::Data<Market>, c: CallerToken) -> Res {
    ok(views::token(&m.tokens().renew(&c.0)?))
}

/// `POST /user/logout`: revokes every token of the caller issued so far.
#[utoipa::path(post, path = "/_db/market/v0_0/user/logout", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, description = "Every token of the caller revoked", body = openapi::LoggedOut), openapi::Errors))]
pub async fn logout(m: web::Data<Market>, c: Caller) -> Res {
    m.logout(&c.0).await?;
    ok(views::logged_out(&c.0))
}

/// `POST /user/password`: `{"passwd": old, "new_passwd": new}`; revokes every token of
/// the caller and answers a fresh one.
#[utoipa::path(post, path = "/_db/market/v0_0/user/password", tag = "accounts", security(("bearer" = [])),
    request_body = openapi::PasswordChange,
    responses((status = 200, description = "A fresh token (the others are revoked)", body = openapi::Token), openapi::Errors))]
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
#[utoipa::path(post, path = "/_db/market/v0_0/producer/register", tag = "accounts", security(("bearer" = [])),
    request_body = openapi::ProducerProfile,
    responses((status = 200, description = "The producer profile", body = crate::store::ProducerRecord), openapi::Errors))]
pub async fn register_producer(m: web::Data<Market>, c: Caller, body: JsonBody) -> Res {
    let profile = bodies::producer_profile(&body.object)?;
    ok(views::producer(&m.register_producer(&c.0, profile).await?))
}

/// `POST /statement`
#[utoipa::path(post, path = "/_db/market/v0_0/statement", tag = "statements", security(("bearer" = [])),
    description = "Registers a circuit: the market compiles its IR and refuses what it cannot prove.",
    request_body = openapi::NewStatement,
    responses((status = 200, description = "The statement", body = crate::store::StatementRecord), openapi::Errors))]
pub async fn push_statement(m: web::Data<Market>, c: Caller, body: JsonBody) -> Res {
    let s = bodies::new_statement(&body.object, m.limits().max_definition_bytes)?;
    ok(views::statement(&m.create_statement(&c.0, s).await?))
}

/// `GET /statement[?limit=&skipped=&full=true]`: a page of statements, ascending by
/// key, without `definition` unless `full=true`.
#[utoipa::path(get, path = "/_db/market/v0_0/statement", tag = "statements", security((), ("bearer" = [])),
    params(StatementQuery),
    responses((status = 200, description = "A page of statements, by key", body = Vec<crate::store::StatementRecord>), openapi::Errors))]
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
#[utoipa::path(get, path = "/_db/market/v0_0/statement/{key}", tag = "statements", security((), ("bearer" = [])),
    description = "The statement; with `?info` today's market data instead, with `?statistics` its completed trades' means.",
    params(("key" = String, Path, description = "The statement's key"),
           ("info" = Option<String>, Query, description = "Answer today's market data"),
           ("statistics" = Option<String>, Query, description = "Answer completed trades' count and means")),
    responses((status = 200, description = "The statement, or its market data", body = openapi::StatementAnswer),
              openapi::Errors))]
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
#[utoipa::path(get, path = "/_db/market/v0_0/statement/{key}/trades", tag = "statements", security((), ("bearer" = [])),
    params(("key" = String, Path, description = "The statement's key"), TradesQuery),
    responses((status = 200, description = "Its latest trades, newest first", body = Vec<openapi::Trade>), openapi::Errors))]
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
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TradesQuery {
    /// Most trades (1–100, default 100).
    limit: Option<usize>,
}

async fn push_order(
    m: &Market,
    router: &Router,
    side: Side,
    req: &HttpRequest,
    c: &Caller,
    body: &JsonBody,
) -> Res {
    let idempotency = bodies::idempotency_key(req)?;
    // Placing an order twice is not harmless: only a keyed placement may be resent.
    let resend = match idempotency {
        Some(_) => Resend::Safe,
        None => Resend::Unsafe,
    };
    let order = bodies::new_order(side, &body.object, idempotency)?;
    record_keys(Some(order.statement), None);
    let order = &order;
    let answer = dispatch(
        router,
        req,
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

/// `POST /request`: a bid for a proof.
#[utoipa::path(post, path = "/_db/market/v0_0/request", tag = "orders",
    description = "Places a request: escrows its cost and matches it against the best proposal, or rests it in the book. A request whose input already has a proof completes at once. With `Idempotency-Key`, a resend answers the same order.",
    params(("Idempotency-Key" = Option<String>, Header, description = "Places the order once however often it is sent")),
    request_body = openapi::NewRequest, security(("bearer" = [])),
    responses((status = 200, description = "The order", body = views::OrderView), openapi::Errors))]
pub async fn push_request(
    m: web::Data<Market>,
    router: web::Data<Router>,
    req: HttpRequest,
    c: Caller,
    body: JsonBody,
) -> Res {
    push_order(&m, &router, Side::Request, &req, &c, &body).await
}

/// `POST /proposal`: an ask to produce proofs.
#[utoipa::path(post, path = "/_db/market/v0_0/proposal", tag = "orders",
    description = "Places a proposal, backed by collateral from the producer's deposit, matched against the best request or rested in the book.",
    params(("Idempotency-Key" = Option<String>, Header, description = "Places the order once however often it is sent")),
    request_body = openapi::NewProposal, security(("bearer" = [])),
    responses((status = 200, description = "The order", body = views::OrderView), openapi::Errors))]
pub async fn push_proposal(
    m: web::Data<Market>,
    router: web::Data<Router>,
    req: HttpRequest,
    c: Caller,
    body: JsonBody,
) -> Res {
    push_order(&m, &router, Side::Proposal, &req, &c, &body).await
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

async fn get_order(m: &Market, side: Side, key: &str) -> Res {
    let key = bodies::path_key(side.as_str(), key)?;
    record_keys(None, Some(key));
    Ok(json_ok(views::order(&m.get_order(side, key).await?)))
}

/// `GET /request/{key}`
#[utoipa::path(get, path = "/_db/market/v0_0/request/{key}", tag = "orders",
    params(("key" = String, Path, description = "The request's key")), security(("bearer" = [])),
    responses((status = 200, description = "The request", body = views::OrderView), openapi::Errors))]
pub async fn get_request(m: web::Data<Market>, _c: Caller, key: web::Path<String>) -> Res {
    get_order(&m, Side::Request, &key).await
}

/// `GET /proposal/{key}`
#[utoipa::path(get, path = "/_db/market/v0_0/proposal/{key}", tag = "orders",
    params(("key" = String, Path, description = "The proposal's key")), security(("bearer" = [])),
    responses((status = 200, description = "The proposal", body = views::OrderView), openapi::Errors))]
pub async fn get_proposal(m: web::Data<Market>, _c: Caller, key: web::Path<String>) -> Res {
    get_order(&m, Side::Proposal, &key).await
}

async fn list_orders(m: &Market, side: Side, q: &ListQuery) -> Res {
    let orders = m.list_orders(side, &q.filter()?).await?;
    Ok(json_ok(orders.iter().map(views::order).collect::<Vec<_>>()))
}

/// `GET /request?q=..`
#[utoipa::path(get, path = "/_db/market/v0_0/request", tag = "orders",
    params(ListQuery), security(("bearer" = [])),
    responses((status = 200, description = "Requests matching the filter", body = Vec<views::OrderView>), openapi::Errors))]
pub async fn list_requests(m: web::Data<Market>, _c: Caller, q: web::Query<ListQuery>) -> Res {
    list_orders(&m, Side::Request, &q).await
}

/// `GET /proposal?q=..`
#[utoipa::path(get, path = "/_db/market/v0_0/proposal", tag = "orders",
    params(ListQuery), security(("bearer" = [])),
    responses((status = 200, description = "Proposals matching the filter", body = Vec<views::OrderView>), openapi::Errors))]
pub async fn list_proposals(m: web::Data<Market>, _c: Caller, q: web::Query<ListQuery>) -> Res {
    list_orders(&m, Side::Proposal, &q).await
}

/// `DELETE /request/{key}`
#[utoipa::path(delete, path = "/_db/market/v0_0/request/{key}", tag = "orders",
    description = "Withdraws the caller's request while it is `created`, releasing its escrow.",
    params(("key" = String, Path, description = "The request's key")), security(("bearer" = [])),
    responses((status = 200, description = "The withdrawn request", body = views::OrderView), openapi::Errors))]
pub async fn withdraw_request(
    m: web::Data<Market>,
    router: web::Data<Router>,
    req: HttpRequest,
    c: Caller,
    key: web::Path<String>,
) -> Res {
    withdraw(&m, &router, &req, &c, Side::Request, &key).await
}

/// `DELETE /proposal/{key}`
#[utoipa::path(delete, path = "/_db/market/v0_0/proposal/{key}", tag = "orders",
    description = "Withdraws the caller's proposal while it is `created`, releasing its collateral.",
    params(("key" = String, Path, description = "The proposal's key")), security(("bearer" = [])),
    responses((status = 200, description = "The withdrawn proposal", body = views::OrderView), openapi::Errors))]
pub async fn withdraw_proposal(
    m: web::Data<Market>,
    router: web::Data<Router>,
    req: HttpRequest,
    c: Caller,
    key: web::Path<String>,
) -> Res {
    withdraw(&m, &router, &req, &c, Side::Proposal, &key).await
}

/// `POST /proof`
#[utoipa::path(post, path = "/_db/market/v0_0/proof", tag = "proofs", security(("bearer" = [])),
    description = "The matched producer pushes its proof; the market verifies it, stores it and completes both orders.",
    request_body = openapi::NewProof,
    responses((status = 200, description = "The proof record, without its bytes", body = openapi::Proof), openapi::Errors))]
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
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProofQuery {
    /// Add the proof's bytes (for those who paid for it, its producer and its
    /// statement's owner).
    full: Option<bool>,
}

/// `GET /proof/{key}`
#[utoipa::path(get, path = "/_db/market/v0_0/proof/{key}", tag = "proofs", security(("bearer" = [])),
    params(("key" = String, Path, description = "The proof's key"), ProofQuery),
    responses((status = 200, description = "The proof record", body = openapi::Proof), openapi::Errors))]
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
#[utoipa::path(get, path = "/_db/market/v0_0/book/{key}", tag = "statements", security((), ("bearer" = [])),
    params(("key" = String, Path, description = "The statement's key")),
    responses((status = 200, description = "Open orders by price level, best first", body = openapi::Book), openapi::Errors))]
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
#[utoipa::path(get, path = "/_db/market/v0_0/user/{user}/balance", tag = "accounts", security(("bearer" = [])),
    params(("user" = String, Path, description = "The caller's own name")),
    responses((status = 200, description = "The caller's wallet", body = openapi::Wallet), openapi::Errors))]
pub async fn balance(m: web::Data<Market>, c: Caller, user: web::Path<String>) -> Res {
    let w = m.balance(c.0.as_str(), &user).await?;
    ok(views::wallet(c.0.as_str(), &w))
}

/// `POST /admin/credit` `{user, amount}`, with the operator's token.
#[utoipa::path(post, path = "/_db/market/v0_0/admin/credit", tag = "accounts", security(("bearer" = [])),
    description = "The operator (its own token, PROOF_MARKET_ADMIN_TOKEN) credits a user.",
    request_body = openapi::Credit,
    responses((status = 200, description = "The user's wallet", body = openapi::Wallet), openapi::Errors))]
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
#[utoipa::path(get, path = "/_db/market/v0_0/producer/{user}/stats", tag = "accounts", security((), ("bearer" = [])),
    params(("user" = String, Path, description = "The producer")),
    responses((status = 200, description = "Its public track record", body = openapi::TrackRecord), openapi::Errors))]
pub async fn producer_stats(m: web::Data<Market>, _c: MaybeCaller, user: web::Path<String>) -> Res {
    let r = m.track_record(&user).await?;
    ok(views::track_record(&user, &r))
}

/// `POST /producer/deposit` `{amount}`: balance into the producer deposit.
#[utoipa::path(post, path = "/_db/market/v0_0/producer/deposit", tag = "accounts", security(("bearer" = [])),
    request_body = openapi::AmountBody,
    responses((status = 200, description = "The wallet", body = openapi::Wallet), openapi::Errors))]
pub async fn deposit(m: web::Data<Market>, c: Caller, body: JsonBody) -> Res {
    let amount = bodies::amount(&body.object)?;
    let w = m.move_deposit(c.0.as_str(), amount, true).await?;
    ok(views::wallet(c.0.as_str(), &w))
}

/// `POST /producer/deposit/release` `{amount}`: deposit no work holds back to the
/// balance.
#[utoipa::path(post, path = "/_db/market/v0_0/producer/deposit/release", tag = "accounts", security(("bearer" = [])),
    request_body = openapi::AmountBody,
    responses((status = 200, description = "The wallet", body = openapi::Wallet), openapi::Errors))]
pub async fn release_deposit(m: web::Data<Market>, c: Caller, body: JsonBody) -> Res {
    let amount = bodies::amount(&body.object)?;
    let w = m.move_deposit(c.0.as_str(), amount, false).await?;
    ok(views::wallet(c.0.as_str(), &w))
}

/// `GET /health`: 200 once the node has joined the cluster and Redis answers; 503
/// while starting, while handing statements over before it stops, or without Redis.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "Ready", body = openapi::Health),
              (status = 503, description = "Starting, draining or without Redis", body = openapi::Health)))]
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
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String), openapi::Errors))]
pub async fn metrics(m: web::Data<Market>) -> HttpResponse {
    let text = crate::metrics::render(m.metrics_state().await).await;
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
}

/// `GET /cluster`: the live nodes and, for every statement, the node that should own
/// it (rendezvous over the live nodes) and the node holding its lease, read from Redis.
#[utoipa::path(get, path = "/_db/market/v0_0/cluster", tag = "operations", security(("bearer" = [])),
    responses((status = 200, description = "Live nodes and statement owners", body = openapi::Cluster), openapi::Errors))]
pub async fn cluster(m: web::Data<Market>, _c: Caller) -> Res {
    ok(views::cluster(&m.cluster_report().await?))
}

/// Any other path.
pub async fn not_found(req: HttpRequest) -> Res {
    Err(MarketError::NotFound(format!("no route for {} {}", req.method(), req.path())).into())
}

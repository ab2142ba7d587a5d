//! HTTP handlers: parse, authorize, call the service, render. Nothing else.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use crate::domain::{Side, UserName};
use crate::error::MarketError;
use crate::service::Market;

use super::bodies::{self, ListQuery};
use super::caller::Caller;
use super::error::ApiError;
use super::forward::{routed, Resend};
use super::views;

type Res = Result<HttpResponse, ApiError>;

fn ok(v: Value) -> Res {
    Ok(HttpResponse::Ok().json(v))
}

/// `POST /user/signup`
pub async fn signup(m: web::Data<Market>, body: web::Json<Value>) -> Res {
    let b = bodies::object(body.into_inner())?;
    let name = bodies::string(&b, "user")?;
    let user = UserName::parse(&name).ok_or_else(|| {
        ApiError::bad_request(
            "`user` must be 1 to 64 characters of letters, digits, `_`, `-`, `.`, `@`",
        )
    })?;
    let passwd = bodies::string(&b, "passwd")?;
    if passwd.is_empty() || passwd.len() > 1024 {
        return Err(ApiError::bad_request("`passwd` must be 1 to 1024 bytes"));
    }
    let email = match b.get("email") {
        None | Some(Value::Null) => None,
        Some(Value::String(e)) if e.contains('@') && e.len() <= 254 => Some(e.clone()),
        Some(_) => return Err(ApiError::bad_request("`email` must be an e-mail address")),
    };
    ok(m.signup(user, passwd, email).await?)
}

/// `POST /_open/auth`
pub async fn login(m: web::Data<Market>, body: web::Json<Value>) -> Res {
    let b = bodies::object(body.into_inner())?;
    let user = bodies::string(&b, "username")?;
    let password = bodies::string(&b, "password")?;
    let jwt = m.login(&user, password).await?;
    ok(json!({"jwt": jwt}))
}

/// `POST /user/renew`
pub async fn renew(m: web::Data<Market>, c: Caller) -> Res {
    ok(json!({"jwt": m.tokens().issue(&c.0)?}))
}

/// `POST /producer/register`
pub async fn register_producer(m: web::Data<Market>, c: Caller, body: web::Json<Value>) -> Res {
    let b = bodies::object(body.into_inner())?;
    let mut profile = serde_json::Map::new();
    profile.insert(
        "description".into(),
        json!(bodies::string(&b, "description")?),
    );
    for f in ["url", "logo", "eth_address"] {
        match b.get(f) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.len() <= 2048 => {
                profile.insert(f.into(), json!(s));
            }
            Some(_) => {
                return Err(ApiError::bad_request(format!(
                    "`{f}` must be a string of at most 2048 bytes"
                )))
            }
        }
    }
    ok(m.register_producer(&c.0, profile).await?)
}

/// `POST /statement`
pub async fn push_statement(m: web::Data<Market>, c: Caller, body: web::Json<Value>) -> Res {
    let b = bodies::object(body.into_inner())?;
    ok(m.create_statement(&c.0, b).await?)
}

/// `GET /statement`
pub async fn list_statements(m: web::Data<Market>, _c: Caller) -> Res {
    ok(Value::Array(m.list_statements().await?))
}

/// `GET /statement/{key}`
pub async fn get_statement(m: web::Data<Market>, _c: Caller, key: web::Path<String>) -> Res {
    ok(m.get_statement(bodies::path_key("statement", &key)?)
        .await?)
}

async fn push_order(m: &Market, req: &HttpRequest, c: &Caller, side: Side, body: Value) -> Res {
    let b = &bodies::object(body)?;
    let idempotency = &bodies::idempotency_key(req)?;
    // Parsed inside the call: a bad body fails there with its 400 before any routing.
    // Placing an order twice is not harmless: only a keyed placement may be resent.
    let resend = Resend::from(idempotency.is_some());
    routed(req, Some(b), resend, |hops| async move {
        let mut order = bodies::new_order(side, b)?;
        order.idempotency = idempotency.clone();
        ok(views::order(&m.place(&c.0, order, hops).await?))
    })
    .await
}

async fn get_order(m: &Market, side: Side, key: &str) -> Res {
    ok(views::order(
        &m.get_order(side, bodies::path_key(side.as_str(), key)?)
            .await?,
    ))
}

async fn list_orders(m: &Market, side: Side, q: &ListQuery) -> Res {
    let orders = m.list_orders(side, &q.filter()?).await?;
    ok(Value::Array(orders.iter().map(views::order).collect()))
}

async fn withdraw(m: &Market, req: &HttpRequest, c: &Caller, side: Side, key: &str) -> Res {
    let key = bodies::path_key(side.as_str(), key)?;
    // A second withdrawal of the same order is refused (409), never applied twice.
    routed(req, None, Resend::Safe, |hops| async move {
        ok(views::order(&m.withdraw(&c.0, side, key, hops).await?))
    })
    .await
}

/// `POST /request`
pub async fn push_request(
    m: web::Data<Market>,
    req: HttpRequest,
    c: Caller,
    body: web::Json<Value>,
) -> Res {
    push_order(&m, &req, &c, Side::Request, body.into_inner()).await
}

/// `GET /request/{key}`
pub async fn get_request(m: web::Data<Market>, _c: Caller, key: web::Path<String>) -> Res {
    get_order(&m, Side::Request, &key).await
}

/// `GET /request?q=..`
pub async fn list_requests(m: web::Data<Market>, _c: Caller, q: web::Query<ListQuery>) -> Res {
    list_orders(&m, Side::Request, &q).await
}

/// `DELETE /request/{key}`
pub async fn withdraw_request(
    m: web::Data<Market>,
    req: HttpRequest,
    c: Caller,
    key: web::Path<String>,
) -> Res {
    withdraw(&m, &req, &c, Side::Request, &key).await
}

/// `POST /proposal`
pub async fn push_proposal(
    m: web::Data<Market>,
    req: HttpRequest,
    c: Caller,
    body: web::Json<Value>,
) -> Res {
    push_order(&m, &req, &c, Side::Proposal, body.into_inner()).await
}

/// `GET /proposal/{key}`
pub async fn get_proposal(m: web::Data<Market>, _c: Caller, key: web::Path<String>) -> Res {
    get_order(&m, Side::Proposal, &key).await
}

/// `GET /proposal?q=..`
pub async fn list_proposals(m: web::Data<Market>, _c: Caller, q: web::Query<ListQuery>) -> Res {
    list_orders(&m, Side::Proposal, &q).await
}

/// `DELETE /proposal/{key}`
pub async fn withdraw_proposal(
    m: web::Data<Market>,
    req: HttpRequest,
    c: Caller,
    key: web::Path<String>,
) -> Res {
    withdraw(&m, &req, &c, Side::Proposal, &key).await
}

/// `POST /proof`
pub async fn push_proof(
    m: web::Data<Market>,
    req: HttpRequest,
    c: Caller,
    body: web::Json<Value>,
    limits: web::Data<crate::service::Limits>,
) -> Res {
    let b = &bodies::object(body.into_inner())?;
    let max = limits.max_proof_bytes;
    let (m, c) = (&m, &c);
    // A second proof for the same orders is refused (409), never applied twice.
    routed(&req, Some(b), Resend::Safe, |hops| async move {
        let p = bodies::proof_push(b, max)?;
        ok(views::proof(&m.push_proof(&c.0, p, hops).await?, false))
    })
    .await
}

/// Query of `GET /proof/{key}`.
#[derive(serde::Deserialize)]
pub struct ProofQuery {
    full: Option<bool>,
}

/// `GET /proof/{key}`
pub async fn get_proof(
    m: web::Data<Market>,
    _c: Caller,
    key: web::Path<String>,
    q: web::Query<ProofQuery>,
) -> Res {
    let p = m.get_proof(bodies::path_key("proof", &key)?).await?;
    ok(views::proof(&p, q.full.unwrap_or(false)))
}

/// `GET /book/{statement_key}`
pub async fn book(
    m: web::Data<Market>,
    req: HttpRequest,
    _c: Caller,
    key: web::Path<String>,
) -> Res {
    let key = bodies::path_key("statement", &key)?;
    let m = &m;
    routed(&req, None, Resend::Safe, |hops| async move {
        let (r, p) = m.book(key, 1000, hops).await?;
        ok(views::book(&r, &p))
    })
    .await
}

/// `GET /health`: 200 once the node has joined the cluster and Redis answers; 503
/// while starting, while handing statements over before it stops, or without Redis.
pub async fn health(m: web::Data<Market>) -> HttpResponse {
    let redis_ok = m.store().ping().await.is_ok();
    let mk = m.markets();
    let ready = mk.is_ready();
    let owned = mk.owned();
    let body = json!({
        "status": if redis_ok && ready { "ok" } else if mk.is_leaving() { "draining" } else { "unavailable" },
        "ready": ready,
        "node": mk.node().id,
        "url": mk.node().url,
        "redis": if redis_ok { "reachable" } else { "unreachable" },
        "statements": owned.len(),
        "statements_owned": owned.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
        "live_nodes": mk.view().len(),
        "fenced_writes": mk.fenced_writes(),
    });
    if redis_ok && ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .json(body)
    }
}

/// `GET /cluster`: the live nodes and, for every statement, the node that should own
/// it (rendezvous over the live nodes) and the node holding its lease, read from Redis.
pub async fn cluster(m: web::Data<Market>, _c: Caller) -> Res {
    ok(m.cluster_view().await?)
}

/// Any other path.
pub async fn not_found(req: actix_web::HttpRequest) -> Res {
    Err(MarketError::NotFound(format!("no route for {} {}", req.method(), req.path())).into())
}

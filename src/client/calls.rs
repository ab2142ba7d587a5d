//! [`MarketClient`]: a small typed HTTP client for the market's v1 REST dialect.
//!
//! The command line and the producer daemon share it, so it knows nothing of files or
//! printing: each method is one market call (two for [`MarketClient::get_proof_by_request`])
//! and returns the answer's JSON or a [`ClientError`] whose Display is one line. Requests
//! and proposals are read, listed and withdrawn by the same methods, told apart by their
//! [`Side`]. How a call travels (timeouts, retries on 503/429) is
//! [`crate::client::transport`]'s part.

use reqwest::Method;
use serde_json::{json, Value};

use crate::client::error::{one_line, ClientError};
use crate::client::owners::{Owner, Owners};
use crate::client::transport::Transport;
use crate::domain::{Cost, Side};

/// Path of the market's REST root under the base URL.
pub use crate::protocol::ROOT as MARKET_ROOT;

/// Filters for the list calls (`GET …/request/?q=…`): an AND of equalities, plus paging.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// `created`, `processing`, `completed` or `withdrawn`.
    pub status: Option<String>,
    /// The user who placed the order.
    pub sender: Option<String>,
    /// The statement the order is for.
    pub statement_key: Option<String>,
    /// Most orders to return (market default 100, max 1000).
    pub limit: Option<u32>,
    /// Orders to skip (offset).
    pub skipped: Option<u32>,
}

impl ListFilter {
    /// The query pairs, with `q` as the market's JSON list of `{"key","value"}` conditions.
    pub fn query_pairs(&self) -> Vec<(&'static str, String)> {
        let conditions: Vec<Value> = [
            ("status", &self.status),
            ("sender", &self.sender),
            ("statement_key", &self.statement_key),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.as_ref().map(|v| json!({"key": key, "value": v})))
        .collect();
        let mut pairs = Vec::new();
        if !conditions.is_empty() {
            pairs.push(("q", Value::Array(conditions).to_string()));
        }
        if let Some(limit) = self.limit {
            pairs.push(("limit", limit.to_string()));
        }
        if let Some(skipped) = self.skipped {
            pairs.push(("skipped", skipped.to_string()));
        }
        pairs
    }
}

/// A market client: the transport to one market and the token, if logged in.
#[derive(Clone)]
pub struct MarketClient {
    transport: Transport,
    jwt: Option<String>,
    /// Statements' owners, shared by clones: orders go to them directly.
    owners: std::sync::Arc<Owners>,
    direct: bool,
}

impl std::fmt::Debug for MarketClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("MarketClient")
            .field("base_url", &self.transport.base_url())
            .field("logged_in", &self.jwt.is_some())
            .finish()
    }
}

/// Whether a call sends the bearer token.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    Anonymous,
    Bearer,
}

impl MarketClient {
    /// A client for the market at `base_url` (e.g. `http://127.0.0.1:8080`), with the token
    /// from a previous login, if any. The URL is checked at the first call.
    pub fn new(base_url: &str, jwt: Option<String>) -> Self {
        MarketClient {
            transport: Transport::new(base_url),
            jwt,
            owners: Default::default(),
            direct: true,
        }
    }

    /// With `false`, every call goes to the base URL, also orders whose statement
    /// another node owns (that node forwards them).
    pub fn with_direct_orders(mut self, direct: bool) -> Self {
        self.direct = direct;
        self
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.transport.base_url()
    }

    /// The token in use, if any.
    pub fn jwt(&self) -> Option<&str> {
        self.jwt.as_deref()
    }

    /// Replaces the token (after [`login`](Self::login) or [`renew`](Self::renew)).
    pub fn set_jwt(&mut self, jwt: Option<String>) {
        self.jwt = jwt;
    }

    /// `POST /user/signup`; the answer is `{"user", "active"}`. `email` is left out of the
    /// body when `None`.
    pub async fn signup(
        &self,
        user: &str,
        passwd: &str,
        email: Option<&str>,
    ) -> Result<Value, ClientError> {
        let mut body = json!({"user": user, "passwd": passwd});
        if let Some(email) = email {
            body["email"] = json!(email);
        }
        self.market(Method::POST, "/user/signup", Auth::Anonymous, Some(body))
            .await
    }

    /// `POST /_open/auth`; returns the token (the client itself is left unchanged).
    pub async fn login(&self, user: &str, passwd: &str) -> Result<String, ClientError> {
        let body = json!({"username": user, "password": passwd});
        let answer = self
            .call(
                Method::POST,
                "/_open/auth",
                &[],
                Auth::Anonymous,
                Some(body),
                None,
            )
            .await?;
        take_jwt(&answer)
    }

    /// `POST /user/renew`; returns a fresh token for the current one.
    pub async fn renew(&self) -> Result<String, ClientError> {
        let answer = self
            .market(Method::POST, "/user/renew", Auth::Bearer, None)
            .await?;
        take_jwt(&answer)
    }

    /// `POST /statement/`; returns the stored statement.
    pub async fn push_statement(&self, statement: &Value) -> Result<Value, ClientError> {
        self.market(
            Method::POST,
            "/statement/",
            Auth::Bearer,
            Some(statement.clone()),
        )
        .await
    }

    /// `GET /statement/{key}` (with its definition), or, when `key` is `None`, the array
    /// of all statements without their definitions (every page of `GET /statement/`).
    pub async fn get_statement(&self, key: Option<&str>) -> Result<Value, ClientError> {
        if let Some(key) = key {
            let path = format!("/statement/{}", check_key("statement", key)?);
            return self.market(Method::GET, &path, Auth::Bearer, None).await;
        }
        const PAGE: usize = 1000;
        let mut all = Vec::new();
        loop {
            let path = format!("/statement/?limit={PAGE}&skipped={}", all.len());
            let page = self.market(Method::GET, &path, Auth::Bearer, None).await?;
            let page = match page {
                Value::Array(items) => items,
                other => return Ok(other),
            };
            let n = page.len();
            all.extend(page);
            if n < PAGE {
                return Ok(Value::Array(all));
            }
        }
    }

    /// `POST /request/`: a bid of at most `cost` for a proof of `statement_key` on `input`,
    /// which is sent unchanged (the market checks the field elements).
    pub async fn push_request(
        &self,
        statement_key: &str,
        input: Value,
        cost: Cost,
        eval_time: Option<u32>,
        wait_period: Option<u32>,
    ) -> Result<Value, ClientError> {
        let mut body = order_body(statement_key, cost, eval_time, wait_period)?;
        body["input"] = input;
        self.place(Side::Request, body).await
    }

    /// `POST /proposal/`: an offer to prove `statement_key` for `cost`.
    pub async fn push_proposal(
        &self,
        statement_key: &str,
        cost: Cost,
        eval_time: Option<u32>,
        wait_period: Option<u32>,
    ) -> Result<Value, ClientError> {
        let body = order_body(statement_key, cost, eval_time, wait_period)?;
        self.place(Side::Proposal, body).await
    }

    /// `GET /events[?statement=K]`: the caller's live stream (and the statement's public
    /// one), resuming after `last_id` when given.
    pub async fn events(
        &self,
        statement_key: Option<&str>,
        last_id: Option<&str>,
    ) -> Result<crate::client::events::EventSource, ClientError> {
        let mut query = Vec::new();
        if let Some(k) = statement_key {
            query.push(("statement", check_key("statement", k)?.to_owned()));
        }
        let url = self
            .transport
            .url(&format!("{MARKET_ROOT}/events"), &query)?;
        crate::client::events::EventSource::open(url, self.jwt.as_deref(), last_id).await
    }

    /// `GET /request/{key}` or `GET /proposal/{key}`: one order.
    pub async fn get_order(&self, side: Side, key: &str) -> Result<Value, ClientError> {
        let path = order_path(side, key)?;
        self.market(Method::GET, &path, Auth::Bearer, None).await
    }

    /// `GET /request/?q=…` or `GET /proposal/?q=…`: the orders of `side` matching `filter`.
    pub async fn list_orders(&self, side: Side, filter: &ListFilter) -> Result<Value, ClientError> {
        let path = format!("{MARKET_ROOT}/{}/", side.as_str());
        self.call(
            Method::GET,
            &path,
            &filter.query_pairs(),
            Auth::Bearer,
            None,
            None,
        )
        .await
    }

    /// `DELETE /request/{key}` or `DELETE /proposal/{key}`; returns the order, now
    /// `withdrawn`.
    pub async fn withdraw_order(&self, side: Side, key: &str) -> Result<Value, ClientError> {
        let path = order_path(side, key)?;
        self.market(Method::DELETE, &path, Auth::Bearer, None).await
    }

    /// `POST /proof`: the proof for a match, named by its proposal and/or request (at least
    /// one). `proof_hex` may carry a `0x` prefix; it is sent as `0x` + lowercase hex.
    pub async fn push_proof(
        &self,
        proof_hex: &str,
        proposal_key: Option<&str>,
        request_key: Option<&str>,
    ) -> Result<Value, ClientError> {
        let digits = proof_hex.trim();
        let digits = digits
            .strip_prefix("0x")
            .or_else(|| digits.strip_prefix("0X"))
            .unwrap_or(digits);
        if digits.is_empty() || hex::decode(digits).is_err() {
            return Err(ClientError::Invalid(
                "the proof must be an even number of hex digits, optionally after 0x".into(),
            ));
        }
        let mut body = json!({"proof": format!("0x{}", digits.to_ascii_lowercase())});
        match (proposal_key, request_key) {
            (None, None) => {
                return Err(ClientError::Invalid(
                    "a proof needs a proposal key or a request key".into(),
                ))
            }
            (p, r) => {
                if let Some(p) = p {
                    body["proposal_key"] = json!(check_key("proposal", p)?);
                }
                if let Some(r) = r {
                    body["request_key"] = json!(check_key("request", r)?);
                }
            }
        }
        self.market(Method::POST, "/proof", Auth::Bearer, Some(body))
            .await
    }

    /// `GET /proof/{key}`, with the proof bytes (`?full=true`) when `full`.
    pub async fn get_proof_by_key(&self, key: &str, full: bool) -> Result<Value, ClientError> {
        let path = format!("{MARKET_ROOT}/proof/{}", check_key("proof", key)?);
        let query = if full {
            vec![("full", "true".to_string())]
        } else {
            Vec::new()
        };
        self.call(Method::GET, &path, &query, Auth::Bearer, None, None)
            .await
    }

    /// The proof of a request: `GET /request/{key}`, then `GET /proof/{proof_key}`.
    /// [`ClientError::NoProofYet`] when the request holds no `proof_key` yet.
    pub async fn get_proof_by_request(
        &self,
        request_key: &str,
        full: bool,
    ) -> Result<Value, ClientError> {
        let request = self.get_order(Side::Request, request_key).await?;
        let proof_key = match request.get("proof_key") {
            Some(Value::String(k)) if !k.is_empty() => k.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                let status = match request.get("status") {
                    Some(Value::String(s)) => s.clone(),
                    _ => "unknown".to_string(),
                };
                return Err(ClientError::NoProofYet {
                    request_key: request_key.to_string(),
                    status,
                });
            }
        };
        self.get_proof_by_key(&proof_key, full).await
    }

    /// `GET /user/{user}/balance`: the caller's wallet (`balance`, `blocked`, `deposit`,
    /// `locked`).
    pub async fn balance(&self, user: &str) -> Result<Value, ClientError> {
        let path = format!("/user/{}/balance", check_user(user)?);
        self.market(Method::GET, &path, Auth::Bearer, None).await
    }

    /// `POST /admin/credit` `{user, amount}`: this client's token must be the market
    /// operator's.
    pub async fn credit(&self, user: &str, amount: Cost) -> Result<Value, ClientError> {
        let body = json!({"user": check_user(user)?, "amount": amount.to_json()});
        self.market(Method::POST, "/admin/credit", Auth::Bearer, Some(body))
            .await
    }

    /// `POST /producer/deposit` (`release` false) or `/producer/deposit/release`.
    pub async fn move_deposit(&self, amount: Cost, release: bool) -> Result<Value, ClientError> {
        let path = if release {
            "/producer/deposit/release"
        } else {
            "/producer/deposit"
        };
        let body = json!({"amount": amount.to_json()});
        self.market(Method::POST, path, Auth::Bearer, Some(body))
            .await
    }

    /// A statement's market data: `GET /statement/{key}?info` and `?statistics`, and
    /// the latest `trades` of `GET /statement/{key}/trades`, as one object.
    pub async fn statement_stats(
        &self,
        statement_key: &str,
        trades: u32,
    ) -> Result<Value, ClientError> {
        let path = format!(
            "{MARKET_ROOT}/statement/{}",
            check_key("statement", statement_key)?
        );
        let flag = |f: &'static str| [(f, String::new())];
        let info = self
            .call(Method::GET, &path, &flag("info"), Auth::Bearer, None, None)
            .await?;
        let statistics = self
            .call(
                Method::GET,
                &path,
                &flag("statistics"),
                Auth::Bearer,
                None,
                None,
            )
            .await?;
        let latest = self
            .call(
                Method::GET,
                &format!("{path}/trades"),
                &[("limit", trades.to_string())],
                Auth::Bearer,
                None,
                None,
            )
            .await?;
        Ok(json!({"info": info, "statistics": statistics, "trades": latest}))
    }

    /// `GET /book/{statement_key}`: open orders aggregated by price level.
    pub async fn book(&self, statement_key: &str) -> Result<Value, ClientError> {
        let path = format!("/book/{}", check_key("statement", statement_key)?);
        self.market(Method::GET, &path, Auth::Bearer, None).await
    }

    /// `GET /_db/market/v0_0/health`, falling back to `GET /health` when the first is 404.
    /// Sends no token.
    pub async fn health(&self) -> Result<Value, ClientError> {
        match self
            .market(Method::GET, "/health", Auth::Anonymous, None)
            .await
        {
            Err(ClientError::Http { status: 404, .. }) => {
                self.call(Method::GET, "/health", &[], Auth::Anonymous, None, None)
                    .await
            }
            other => other,
        }
    }

    /// Places an order under a fresh `Idempotency-Key`, so that resending it (after a
    /// 503, or a lost answer) can never place it twice: first to its statement's owner
    /// when another node owns it ([`crate::client::owners`]), and if that node cannot be
    /// reached, to the base URL (the key makes the resend safe).
    async fn place(&self, side: Side, body: Value) -> Result<Value, ClientError> {
        let key = format!("client-{:032x}", rand::random::<u128>());
        let path = format!("{MARKET_ROOT}/{}/", side.as_str());
        let stmt = body["statement_key"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if let Some(owner) = self.owner_of(&stmt).await {
            let direct = self.transport.one_attempt_at(&owner);
            let token = self.jwt.as_deref();
            // An owner URL that does not parse, or a node that cannot be reached: the
            // base URL takes the order.
            let sent = match direct.url(&path, &[]) {
                Ok(url) => {
                    direct
                        .send(Method::POST, url, token, Some(&body), Some(&key))
                        .await
                }
                Err(e) => Err(ClientError::Transport(e.to_string())),
            };
            match sent {
                Err(ClientError::Transport(_)) => {
                    self.owners.down(&owner, std::time::Instant::now());
                }
                other => return other,
            }
        }
        self.call(
            Method::POST,
            &path,
            &[],
            Auth::Bearer,
            Some(body),
            Some(&key),
        )
        .await
    }

    /// The base URL of the node owning `stmt`, when calls about it should go there
    /// rather than to the base URL (reads `GET /cluster` when the view is old).
    async fn owner_of(&self, stmt: &str) -> Option<String> {
        if !self.direct || self.jwt.is_none() || stmt.is_empty() {
            return None;
        }
        let base = self.transport.base_url();
        let mut owner = self.owners.owner(stmt, base, std::time::Instant::now());
        if owner == Owner::Unknown {
            let view = self
                .market(Method::GET, "/cluster", Auth::Bearer, None)
                .await
                .ok();
            self.owners.update(view.as_ref(), std::time::Instant::now());
            owner = self.owners.owner(stmt, base, std::time::Instant::now());
        }
        match owner {
            Owner::At(url) => Some(url),
            Owner::Base | Owner::Unknown => None,
        }
    }

    /// A call under the market root.
    async fn market(
        &self,
        method: Method,
        path: &str,
        auth: Auth,
        body: Option<Value>,
    ) -> Result<Value, ClientError> {
        self.call(
            method,
            &format!("{MARKET_ROOT}{path}"),
            &[],
            auth,
            body,
            None,
        )
        .await
    }

    /// Every call goes through here: the token when `auth` asks for it, the URL, and the
    /// transport (which resends a call carrying an `idempotency_key` more freely).
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        auth: Auth,
        body: Option<Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Value, ClientError> {
        let token = match auth {
            Auth::Anonymous => None,
            Auth::Bearer => Some(self.jwt.as_deref().ok_or_else(|| {
                ClientError::NotLoggedIn("this call needs a token; log in first".into())
            })?),
        };
        let url = self.transport.url(path, query)?;
        self.transport
            .send(method, url, token, body.as_ref(), idempotency_key)
            .await
    }
}

/// The `jwt` field of a login or renew answer.
fn take_jwt(answer: &Value) -> Result<String, ClientError> {
    match answer.get("jwt") {
        Some(Value::String(jwt)) if !jwt.is_empty() => Ok(jwt.clone()),
        _ => Err(ClientError::Invalid(
            "the market's answer holds no \"jwt\" token".into(),
        )),
    }
}

/// `/request/{key}` or `/proposal/{key}`, with the key checked.
fn order_path(side: Side, key: &str) -> Result<String, ClientError> {
    let kind = side.as_str();
    Ok(format!("/{kind}/{}", check_key(kind, key)?))
}

/// The body shared by requests and proposals.
fn order_body(
    statement_key: &str,
    cost: Cost,
    eval_time: Option<u32>,
    wait_period: Option<u32>,
) -> Result<Value, ClientError> {
    let mut body = json!({
        "statement_key": check_key("statement", statement_key)?,
        "cost": cost.to_json(),
    });
    if let Some(m) = eval_time {
        body["eval_time"] = json!(m);
    }
    if let Some(m) = wait_period {
        body["wait_period"] = json!(m);
    }
    Ok(body)
}

/// Keys go into URL paths, so only `[A-Za-z0-9_-]` is allowed (the market uses decimals).
/// A user name as the market accepts it, checked before it goes into a path.
fn check_user(user: &str) -> Result<&str, ClientError> {
    if crate::domain::UserName::parse(user).is_some() {
        Ok(user)
    } else {
        Err(ClientError::Invalid(format!(
            "invalid user name '{user}': 1 to 64 of letters, digits, _ . @ -"
        )))
    }
}

pub fn check_key<'a>(kind: &str, key: &'a str) -> Result<&'a str, ClientError> {
    let ok = !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(key)
    } else {
        Err(ClientError::Invalid(format!(
            "invalid {kind} key '{}': keys are numbers like 16153352",
            one_line(key)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_filter_builds_the_q_parameter() {
        assert!(ListFilter::default().query_pairs().is_empty());
        let filter = ListFilter {
            status: Some("created".into()),
            statement_key: Some("32326".into()),
            limit: Some(10),
            ..ListFilter::default()
        };
        assert_eq!(
            filter.query_pairs(),
            vec![
                (
                    "q",
                    r#"[{"key":"status","value":"created"},{"key":"statement_key","value":"32326"}]"#
                        .to_string()
                ),
                ("limit", "10".to_string()),
            ]
        );
    }

    #[test]
    fn keys_must_be_path_safe() {
        assert!(check_key("request", "16153352").is_ok());
        for bad in ["", "../admin", "1/2", "1?x=2", "a b"] {
            let err = check_key("request", bad).err().map(|e| e.to_string());
            assert!(
                err.is_some_and(|e| e.starts_with("invalid request key")),
                "{bad}"
            );
        }
    }

    #[test]
    fn order_bodies_carry_only_given_fields() -> Result<(), Box<dyn std::error::Error>> {
        assert_eq!(
            order_body("32326", Cost::parse_decimal("2")?, None, None)?,
            json!({"statement_key": "32326", "cost": 2})
        );
        assert_eq!(
            order_body("32326", Cost::parse_decimal("2.5")?, Some(10), Some(60))?,
            json!({"statement_key": "32326", "cost": 2.5, "eval_time": 10, "wait_period": 60})
        );
        // The exact decimal goes out, not the float nearest to it.
        assert_eq!(
            order_body(
                "32326",
                Cost::parse_decimal("123456789012.123457")?,
                None,
                None
            )?
            .to_string(),
            r#"{"cost":123456789012.123457,"statement_key":"32326"}"#
        );
        assert!(order_body("../x", Cost::parse_decimal("2")?, None, None).is_err());
        Ok(())
    }

    #[test]
    fn order_paths_name_the_side() {
        assert_eq!(
            order_path(Side::Request, "7").ok().as_deref(),
            Some("/request/7")
        );
        assert_eq!(
            order_path(Side::Proposal, "7").ok().as_deref(),
            Some("/proposal/7")
        );
        let err = order_path(Side::Proposal, "a/b")
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.starts_with("invalid proposal key")));
    }
}

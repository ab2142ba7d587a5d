//! Setting a run up over HTTP (not measured): signing users up and in, publishing the
//! example statement, spreading users over nodes; and the retrying JSON call they use
//! (a node starting or a statement changing hands answers 503/429 for a moment).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use reqwest::header::HeaderValue;
use serde::Deserialize;

use super::{http_client, Home, Population, SimUser, Target, UserState, ROOT};
use crate::http1::Pool;

/// The example statement every run publishes (one copy per simulated statement).
const STATEMENT_JSON: &str = include_str!("../../../example/statements/arithmetic.json");

/// Error body of the API.
#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(rename = "errorMessage")]
    message: Option<String>,
}

/// How long setup calls keep retrying answers of 503/429 (a node starting, or a
/// statement changing hands), honouring `Retry-After` (at most 5 s per wait).
const SETUP_RETRY_FOR: Duration = Duration::from_secs(60);

/// The wait a 503/429 asks for: `Retry-After` seconds (at most 5), else 200 ms.
pub fn retry_wait(retry_after: Option<&str>) -> Duration {
    retry_after
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_millis(200), |s| {
            Duration::from_secs(s.min(5)).max(Duration::from_millis(50))
        })
}

/// A failed setup call.
#[derive(Debug)]
struct CallError {
    status: Option<reqwest::StatusCode>,
    /// Earlier attempts were answered 503/429 (so a 409 may be our own earlier call).
    retried: bool,
    error: anyhow::Error,
}

/// A setup call (`POST` with a JSON body, or `GET` without), retrying 503/429 answers
/// as [`SETUP_RETRY_FOR`] says; the JSON of the 2xx answer.
async fn call_json(
    http: &reqwest::Client,
    url: &str,
    auth: Option<&HeaderValue>,
    body: Option<&str>,
) -> std::result::Result<serde_json::Value, CallError> {
    let deadline = Instant::now() + SETUP_RETRY_FOR;
    let mut retried = false;
    let method = if body.is_some() { "POST" } else { "GET" };
    loop {
        let mut rb = match body {
            Some(b) => http
                .post(url)
                .header("content-type", "application/json")
                .body(b.to_owned()),
            None => http.get(url),
        };
        if let Some(a) = auth {
            rb = rb.header("authorization", a.clone());
        }
        let fail = |status, error| CallError {
            status,
            retried,
            error,
        };
        let r = match rb.send().await {
            Ok(r) => r,
            Err(e) => {
                return Err(fail(
                    None,
                    anyhow::Error::new(e).context(format!("{method} {url}")),
                ))
            }
        };
        let status = r.status();
        let wait = retry_wait(
            r.headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
        );
        let text = r.text().await.map_err(|e| fail(Some(status), e.into()))?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| fail(Some(status), e.into()));
        }
        let busy = status == reqwest::StatusCode::SERVICE_UNAVAILABLE
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
        if busy && Instant::now() + wait < deadline && !crate::driver::stopped() {
            retried = true;
            tokio::time::sleep(wait).await;
            continue;
        }
        let msg = serde_json::from_str::<ApiError>(&text)
            .ok()
            .and_then(|e| e.message)
            .unwrap_or(text);
        return Err(fail(
            Some(status),
            anyhow::anyhow!("{method} {url}: {status}: {msg}"),
        ));
    }
}

async fn post_json_status(
    http: &reqwest::Client,
    url: &str,
    auth: Option<&HeaderValue>,
    body: String,
) -> std::result::Result<serde_json::Value, CallError> {
    call_json(http, url, auth, Some(&body)).await
}

async fn post_json(
    http: &reqwest::Client,
    url: &str,
    auth: Option<&HeaderValue>,
    body: String,
) -> Result<serde_json::Value> {
    post_json_status(http, url, auth, body)
        .await
        .map_err(|e| e.error)
}

/// `GET url` as `user` (out of band, not measured), retrying brief 503/429 answers.
pub async fn get_json(user: &SimUser, url: &str) -> Result<serde_json::Value> {
    call_json(&user.http, url, Some(&user.auth), None)
        .await
        .map_err(|e| e.error)
}

/// Signs a user up and logs in; returns the simulated user.
pub async fn sign_up(base: &str, name: &str) -> Result<SimUser> {
    let http = http_client()?;
    let pw = format!("pw-{name}");
    let body = serde_json::json!({"user": name, "passwd": pw, "email": format!("{name}@loadtest.invalid")});
    let signed = post_json_status(
        &http,
        &format!("{base}{ROOT}/user/signup"),
        None,
        body.to_string(),
    )
    .await;
    match signed {
        Ok(_) => {}
        // A 503 answer may have come after the sign-up was stored: the retry then finds
        // the user there, and logging in tells whether it is ours.
        Err(e) if e.retried && e.status == Some(reqwest::StatusCode::CONFLICT) => {}
        Err(e) => return Err(e.error),
    }
    let body = serde_json::json!({"username": name, "password": pw});
    let v = post_json(&http, &format!("{base}/_open/auth"), None, body.to_string()).await?;
    let jwt = v["jwt"].as_str().context("login answer without jwt")?;
    let auth_text = format!("Authorization: Bearer {jwt}\r\n");
    Ok(SimUser {
        home: None,
        pool: Pool::new(),
        http,
        auth: HeaderValue::from_str(&format!("Bearer {jwt}"))?,
        auth_text,
        state: Mutex::new(UserState::default()),
    })
}

/// Publishes the example statement; returns its key.
pub async fn push_statement(base: &str, user: &SimUser) -> Result<u64> {
    let v = post_json(
        &user.http,
        &format!("{base}{ROOT}/statement/"),
        Some(&user.auth),
        STATEMENT_JSON.to_owned(),
    )
    .await?;
    v["_key"]
        .as_str()
        .and_then(|k| k.parse().ok())
        .context("statement answer without a decimal _key")
}

/// A real proof, by the market's own prover, of the example statement the harness
/// publishes, on `input`: `0x…` hex. Slow (CPU-bound): call it off the async threads.
pub fn example_proof(input: (u64, u64)) -> Result<String> {
    use proof_market::prover::statements::StatementCircuit;
    let st: serde_json::Value = serde_json::from_str(STATEMENT_JSON)?;
    let pk = st["definition"]["proving_key"]
        .as_str()
        .context("the example statement has no definition.proving_key")?;
    let c = StatementCircuit::compile(pk).map_err(anyhow::Error::msg)?;
    let values = [input.0.into(), input.1.into()];
    let (_, proof) = c.prove(&values).map_err(anyhow::Error::msg)?;
    let mut hex = String::with_capacity(2 + 2 * proof.len());
    hex.push_str("0x");
    for b in proof {
        hex.push_str(&format!("{b:02x}"));
    }
    Ok(hex)
}

/// Proves `input` on every statement of `pop` through the API (setup, not measured): a
/// proposal and a request at the same cost that match, then the real `proof` (see
/// [`example_proof`]) pushed for the proposal; both orders must read `completed`. From
/// then on a request for `input` completes on arrival. A statement where `input` is
/// already proved (the request completes at once) has its proposal withdrawn instead.
pub async fn prove_input(
    base: &str,
    pop: &Population,
    input: (u64, u64),
    proof: &str,
) -> Result<()> {
    let (Some(req), Some(prod)) = (pop.requesters.first(), pop.producers.first()) else {
        bail!("proving an input needs a requester and a producer");
    };
    let key = |v: &serde_json::Value, what: &str| -> Result<String> {
        v["_key"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("{what} answer without _key: {v}"))
    };
    const COST: u64 = 5_000_000;
    for &stmt in &pop.statements {
        let p = post_json(
            &prod.http,
            &format!("{base}{ROOT}/proposal/"),
            Some(&prod.auth),
            super::proposal_body(stmt, COST, None, None),
        )
        .await?;
        let pk = key(&p, "proposal")?;
        let r = post_json(
            &req.http,
            &format!("{base}{ROOT}/request/"),
            Some(&req.auth),
            super::request_body(stmt, input, COST, None),
        )
        .await?;
        let rk = key(&r, "request")?;
        match (r["status"].as_str(), r["proposal_key"].as_str()) {
            (Some("completed"), _) => {
                // Proved already: the proposal is not needed.
                let url = format!("{base}{ROOT}/proposal/{pk}");
                let d = prod
                    .http
                    .delete(&url)
                    .header("authorization", prod.auth.clone())
                    .send()
                    .await
                    .with_context(|| format!("DELETE {url}"))?;
                if !d.status().is_success() {
                    bail!("DELETE {url}: {}", d.status());
                }
                continue;
            }
            (Some("processing"), Some(k)) if k == pk => {}
            _ => bail!("statement {stmt}: request {rk} did not match proposal {pk}: {r}"),
        }
        let body = serde_json::json!({"proof": proof, "proposal_key": pk}).to_string();
        post_json(
            &prod.http,
            &format!("{base}{ROOT}/proof"),
            Some(&prod.auth),
            body,
        )
        .await
        .with_context(|| format!("statement {stmt}: pushing the proof of {input:?}"))?;
        for (who, kind, k) in [(req, "request", &rk), (prod, "proposal", &pk)] {
            let v = get_json(who, &format!("{base}{ROOT}/{kind}/{k}")).await?;
            if v["status"].as_str() != Some("completed") {
                bail!("statement {stmt}: {kind} {k} is not completed after the proof: {v}");
            }
        }
    }
    Ok(())
}

/// Signs up `requesters` + `producers` users named after `run` and publishes
/// `statements` statements.
pub async fn populate(
    target: &Target,
    run: &str,
    requesters: usize,
    producers: usize,
    statements: usize,
) -> Result<Population> {
    let bases = [target.base()];
    let (requesters, producers, statements) =
        create(&bases, run, requesters, producers, statements).await?;
    Ok(Population {
        requesters: requesters.into_iter().map(|(_, u)| Arc::new(u)).collect(),
        producers: producers.into_iter().map(|(_, u)| Arc::new(u)).collect(),
        statements,
        owners: HashMap::new(),
        direct: Vec::new(),
    })
}

/// Node index of the `i`-th user of one side over `nodes` nodes: round robin.
pub fn home_of(i: usize, nodes: usize) -> usize {
    i % nodes.max(1)
}

/// Like [`populate`] over several nodes: the users of each side are spread round robin
/// over `nodes`, each signed up on and pinned to its node (its connection pool only ever
/// calls that node), and the statements are created round robin over the nodes. The
/// statements' owners are left for the caller to fill in (`Population::owners`).
pub async fn populate_spread(
    nodes: &[Arc<Target>],
    run: &str,
    requesters: usize,
    producers: usize,
    statements: usize,
) -> Result<Population> {
    if nodes.is_empty() {
        bail!("no node to populate");
    }
    let bases: Vec<Arc<str>> = nodes.iter().map(|t| t.base()).collect();
    let (requesters, producers, statements) =
        create(&bases, run, requesters, producers, statements).await?;
    let pin = |(i, mut u): (usize, SimUser)| {
        u.home = Some(Home {
            index: i,
            target: nodes[i].clone(),
        });
        Arc::new(u)
    };
    Ok(Population {
        requesters: requesters.into_iter().map(pin).collect(),
        producers: producers.into_iter().map(pin).collect(),
        statements,
        owners: HashMap::new(),
        direct: Vec::new(),
    })
}

/// Signs up the users (the `i`-th of each side on node `home_of(i)`) and creates the
/// statements (the `i`-th on node `i % nodes`); returns users with their node index.
async fn create(
    bases: &[Arc<str>],
    run: &str,
    requesters: usize,
    producers: usize,
    statements: usize,
) -> Result<(Vec<(usize, SimUser)>, Vec<(usize, SimUser)>, Vec<u64>)> {
    if requesters == 0 || producers == 0 || statements == 0 {
        bail!("need at least one requester, one producer and one statement");
    }
    let n = bases.len();
    let mut wanted: Vec<(String, usize)> = (0..requesters)
        .map(|i| (format!("{run}-req{i}"), home_of(i, n)))
        .collect();
    wanted.extend((0..producers).map(|i| (format!("{run}-prod{i}"), home_of(i, n))));
    // Sign-ups hash a password (argon2): a few at a time.
    let mut users = Vec::with_capacity(wanted.len());
    for chunk in wanted.chunks(4) {
        let futs = chunk.iter().map(|(name, home)| {
            let (base, name, home) = (bases[*home].clone(), name.clone(), *home);
            async move { sign_up(&base, &name).await.map(|u| (home, u)) }
        });
        for u in futures_join(futs).await {
            users.push(u?);
        }
    }
    let producers_v = users.split_off(requesters);
    let mut keys = Vec::with_capacity(statements);
    for i in 0..statements {
        let who = &users[i % users.len()].1;
        keys.push(push_statement(&bases[i % n], who).await?);
    }
    Ok((users, producers_v, keys))
}

/// Awaits a handful of futures concurrently (a tiny `join_all`).
async fn futures_join<F, T>(futs: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        match h.await {
            Ok(v) => out.push(v),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_waits_follow_retry_after() {
        assert_eq!(retry_wait(Some("1")), Duration::from_secs(1));
        assert_eq!(retry_wait(Some(" 2 ")), Duration::from_secs(2));
        assert_eq!(retry_wait(Some("600")), Duration::from_secs(5));
        assert_eq!(retry_wait(Some("0")), Duration::from_millis(50));
        assert_eq!(retry_wait(None), Duration::from_millis(200));
        // An HTTP date is not parsed: the short default applies.
        assert_eq!(
            retry_wait(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            Duration::from_millis(200)
        );
    }

    /// A server answering 503 + Retry-After twice, then 200: setup calls get through;
    /// another answering 400 fails at once.
    #[tokio::test]
    async fn setup_calls_retry_brief_503s() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let answers = [
                "503 Service Unavailable\r\nRetry-After: 0",
                "503 Service Unavailable\r\nRetry-After: 0",
                "200 OK",
                "400 Bad Request",
            ];
            for a in answers {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                // Head and the 2-byte body `{}`.
                while !got.windows(4).any(|w| w == b"\r\n\r\n") || !got.ends_with(b"{}") {
                    let n = s.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                let body = r#"{"errorMessage":"busy","n":1}"#;
                let resp = format!(
                    "HTTP/1.1 {a}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(resp.as_bytes()).await.unwrap();
            }
        });
        let http = http_client().unwrap();
        let url = format!("http://{addr}/x");
        let t = Instant::now();
        let v = post_json(&http, &url, None, "{}".into()).await.unwrap();
        assert_eq!(v["n"], 1);
        assert!(t.elapsed() >= Duration::from_millis(100), "two 50 ms waits");
        let e = post_json_status(&http, &url, None, "{}".into())
            .await
            .unwrap_err();
        assert_eq!(e.status, Some(reqwest::StatusCode::BAD_REQUEST));
        assert!(!e.retried);
        assert!(e.error.to_string().contains("busy"), "{}", e.error);
        server.await.unwrap();
    }
}

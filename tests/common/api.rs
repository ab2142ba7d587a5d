//! The HTTP client of the tests ([`Api`]: status and JSON body of each call, with an
//! optional token and `Idempotency-Key`), and reading every order of a statement.

use std::time::Duration;

use serde_json::{json, Value};

/// The original market's API root.
pub use proof_market::protocol::ROOT;

/// A thin HTTP client returning (status, JSON body).
#[derive(Clone)]
pub struct Api {
    pub base: String,
    http: reqwest::Client,
    pub token: Option<String>,
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            token: None,
        }
    }

    pub fn with_token(&self, token: &str) -> Api {
        Api {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> (u16, Value) {
        let rb = match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        };
        let r = rb.send().await.expect("HTTP call failed");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("non-JSON body ({status}): {text}"));
        (status, v)
    }

    /// Like `post`/`delete`, but a connection failure is an `Err` instead of a panic
    /// (for calls to nodes that may be dead).
    pub async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        self.try_call_keyed(method, path, body, None).await
    }

    /// `try_call` with an optional `Idempotency-Key`.
    pub async fn try_call_keyed(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<(u16, Value), String> {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(Duration::from_secs(20));
        if let Some(k) = idempotency_key {
            rb = rb.header("idempotency-key", k);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        let r = rb.send().await.map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        let text = r.text().await.map_err(|e| e.to_string())?;
        let v =
            serde_json::from_str(&text).map_err(|_| format!("non-JSON body ({status}): {text}"))?;
        Ok((status, v))
    }

    /// The same user's client against another node.
    pub fn at(&self, base: &str) -> Api {
        Api {
            base: base.to_owned(),
            ..self.clone()
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// `get` with one extra header.
    pub async fn get_with_header(&self, path: &str, name: &str, value: &str) -> (u16, Value) {
        self.send(
            self.http
                .get(format!("{}{path}", self.base))
                .header(name, value),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    /// `post` with an `Idempotency-Key` header (raw bytes, to send bad ones too).
    pub async fn post_keyed(&self, path: &str, body: &Value, key: &[u8]) -> (u16, Value) {
        let value = reqwest::header::HeaderValue::from_bytes(key).unwrap();
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .header("idempotency-key", value)
                .json(body),
        )
        .await
    }

    /// `post` that also returns the `Retry-After` header.
    pub async fn post_retry_after(&self, path: &str, body: &Value) -> (u16, Value, Option<u64>) {
        let mut rb = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let retry = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let v = r.json().await.unwrap_or(Value::Null);
        (status, v, retry)
    }

    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }

    /// Signs up and logs in `user`; returns an authenticated client.
    pub async fn user(&self, user: &str) -> Api {
        let (s, v) = self
            .post(
                &format!("{ROOT}/user/signup"),
                &json!({"user": user, "passwd": "pw-" , "email": "u@example.org"}),
            )
            .await;
        assert_eq!(s, 200, "signup {user}: {v}");
        let (s, v) = self
            .post("/_open/auth", &json!({"username": user, "password": "pw-"}))
            .await;
        assert_eq!(s, 200, "login {user}: {v}");
        self.with_token(v["jwt"].as_str().unwrap())
    }
}

/// Every order of one kind, all pages.
pub async fn all_orders(api: &Api, kind: &str, statement: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let q = format!(r#"[{{"key":"statement_key","value":"{statement}"}}]"#);
        let path = format!(
            "{ROOT}/{kind}/?q={}&limit=1000&skipped={}",
            urlencode(&q),
            out.len()
        );
        let (s, v) = api.get(&path).await;
        assert_eq!(s, 200, "{v}");
        let page = v.as_array().unwrap().clone();
        let n = page.len();
        out.extend(page);
        if n < 1000 {
            return out;
        }
    }
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

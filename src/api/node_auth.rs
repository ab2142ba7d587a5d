//! Calls between nodes at the HTTP edge: refusing every unsigned one, believing the
//! signed ones, and signing the ones this node forwards.
//!
//! [`check_node_calls`] is a middleware in front of every route. A call with no header
//! starting with [`INTERNAL_HEADER_PREFIX`] is a client's and passes untouched (a scan
//! of its header names). A call with any such header must be a correctly signed node
//! call (see [`crate::cluster::signing`]): exactly one of each internal header and no
//! other, a time within the window, and the HMAC of a node that shares this node's
//! cluster secret; anything else is answered 401 (the API's JSON error, with
//! `WWW-Authenticate: ProofMarket-Node`) before any route runs, and logged at most once
//! a second. A call that passes carries a [`SignedCall`] in its extensions, and only
//! that, never a header, tells the API it was forwarded ([`hops`]). The signed body
//! digest is compared with the body once it is read ([`check_body`]), so bodies stay
//! under their routes' limits and budget.
//!
//! A node without a cluster secret refuses every node call and forwards none (see
//! `forward.rs`): it serves the statements it owns and answers 503 for the others.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, ResponseError};

use crate::cluster::is_node_id;
use crate::cluster::signing::{self, ClusterSecret, NodeCall, Refusal};
use crate::domain::Millis;
use crate::market::router::MAX_HOPS;
use crate::protocol::{
    BODY_DIGEST_HEADER, HOPS_HEADER, INTERNAL_HEADER_PREFIX, NODE_AUTH_SCHEME, NODE_HEADER,
    SIGNATURE_HEADER, TIME_HEADER,
};

use super::error::ApiError;
use super::log_gate::LogGate;

/// The internal headers a node call carries, each exactly once.
const INTERNAL_HEADERS: [&str; 5] = [
    HOPS_HEADER,
    NODE_HEADER,
    TIME_HEADER,
    BODY_DIGEST_HEADER,
    SIGNATURE_HEADER,
];

/// This node's part in node-to-node authentication: its id and the cluster secret, if
/// one is configured. One per node, in the app's data.
#[derive(Debug, Clone)]
pub struct NodeAuth {
    node: String,
    secret: Option<ClusterSecret>,
}

/// A node call that passed [`check_node_calls`]: what its signature vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCall {
    /// Nodes that have forwarded it, 1 ..= MAX_HOPS + 1.
    pub hops: u8,
    /// The node that forwarded it.
    pub node: String,
    /// The digest of the body it was signed with.
    pub body_sha256: [u8; 32],
}

/// The internal headers of a call, read but not yet verified.
#[derive(Debug, PartialEq, Eq)]
struct Claim {
    hops: u8,
    time_ms: u64,
    node: String,
    body_sha256: [u8; 32],
    signature: [u8; 32],
}

impl NodeAuth {
    /// Node `node`, signing and verifying with `secret` (none: no node calls at all).
    pub fn new(node: impl Into<String>, secret: Option<ClusterSecret>) -> NodeAuth {
        NodeAuth {
            node: node.into(),
            secret,
        }
    }

    /// Whether this node signs and takes node calls.
    pub fn enabled(&self) -> bool {
        self.secret.is_some()
    }

    /// The internal headers of a call this node forwards, `None` without a secret.
    /// `path_and_query` must be the request target exactly as it goes on the wire.
    pub fn sign(
        &self,
        method: &str,
        path_and_query: &str,
        hops: u8,
        body: &[u8],
    ) -> Option<[(&'static str, String); 5]> {
        let secret = self.secret.as_ref()?;
        let call = NodeCall {
            method,
            path_and_query,
            hops,
            time_ms: Millis::now().0,
            node: &self.node,
            body_sha256: signing::body_digest(body),
        };
        let signature = secret.sign(&call);
        Some([
            (HOPS_HEADER, hops.to_string()),
            (NODE_HEADER, self.node.clone()),
            (TIME_HEADER, call.time_ms.to_string()),
            (BODY_DIGEST_HEADER, hex::encode(call.body_sha256)),
            (SIGNATURE_HEADER, hex::encode(signature)),
        ])
    }

    /// Verifies a claim made by a call to `method` `path_and_query` at `now_ms`.
    fn verify(
        &self,
        claim: &Claim,
        method: &str,
        path_and_query: &str,
        now_ms: u64,
    ) -> Result<(), Refusal> {
        let secret = self.secret.as_ref().ok_or(Refusal::NoSecret)?;
        signing::check_time(claim.time_ms, now_ms)?;
        let call = NodeCall {
            method,
            path_and_query,
            hops: claim.hops,
            time_ms: claim.time_ms,
            node: &claim.node,
            body_sha256: claim.body_sha256,
        };
        secret.verify(&call, &claim.signature)
    }
}

fn malformed(what: impl Into<String>) -> Refusal {
    Refusal::Malformed(what.into())
}

/// The internal headers of a call: `Ok(None)` when it has none (a client's call).
fn claim(headers: &HeaderMap) -> Result<Option<Claim>, Refusal> {
    let mut any = false;
    for name in headers.keys() {
        if name.as_str().starts_with(INTERNAL_HEADER_PREFIX) {
            if !INTERNAL_HEADERS.contains(&name.as_str()) {
                return Err(malformed(format!("unknown header {name}")));
            }
            any = true;
        }
    }
    if !any {
        return Ok(None);
    }
    let one = |name: &'static str| -> Result<&HeaderValue, Refusal> {
        let mut values = headers.get_all(HeaderName::from_static(name));
        match (values.next(), values.next()) {
            (Some(v), None) => Ok(v),
            (None, _) => Err(malformed(format!("{name} missing"))),
            (Some(_), Some(_)) => Err(malformed(format!("{name} sent more than once"))),
        }
    };
    let digits = |name: &'static str, max_len: usize| -> Result<u64, Refusal> {
        let v = one(name)?.as_bytes();
        if v.is_empty() || v.len() > max_len || !v.iter().all(u8::is_ascii_digit) {
            return Err(malformed(format!("{name} is not a decimal number")));
        }
        std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| malformed(format!("{name} is out of range")))
    };
    let hex32 = |name: &'static str| -> Result<[u8; 32], Refusal> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(one(name)?.as_bytes(), &mut out)
            .map_err(|_| malformed(format!("{name} is not 64 hex digits")))?;
        Ok(out)
    };
    let hops = match digits(HOPS_HEADER, 1)? {
        n @ 1.. if n <= u64::from(MAX_HOPS) + 1 => n as u8,
        _ => return Err(malformed(format!("{HOPS_HEADER} is out of range"))),
    };
    let node = std::str::from_utf8(one(NODE_HEADER)?.as_bytes())
        .ok()
        .filter(|n| is_node_id(n))
        .ok_or_else(|| malformed(format!("{NODE_HEADER} is not a node id")))?
        .to_owned();
    Ok(Some(Claim {
        hops,
        time_ms: digits(TIME_HEADER, 20)?,
        node,
        body_sha256: hex32(BODY_DIGEST_HEADER)?,
        signature: hex32(SIGNATURE_HEADER)?,
    }))
}

/// The 401 refusing a node call (the forwarding node relays its message to its client).
fn refused(reason: &Refusal) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        format!("node call refused: {reason}"),
    )
    .with_challenge(NODE_AUTH_SCHEME)
}

fn log_refusal(req: &HttpRequest, node: Option<&str>, reason: &Refusal) {
    static GATE: LogGate = LogGate::new();
    if let Some(suppressed) = GATE.pass_now() {
        tracing::warn!(
            peer = ?req.peer_addr(),
            method = %req.method(),
            path = %req.path(),
            claimed_node = node.unwrap_or("-"),
            %reason,
            suppressed,
            "refused a call with internal headers"
        );
    }
}

/// The middleware described in the module doc.
pub async fn check_node_calls<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let verdict = match claim(req.headers()) {
        Ok(None) => {
            return next
                .call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
        Ok(Some(claim)) => match req.app_data::<web::Data<NodeAuth>>() {
            Some(auth) => {
                let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
                match auth.verify(&claim, req.method().as_str(), target, Millis::now().0) {
                    Ok(()) => Ok(claim),
                    Err(r) => Err((Some(claim.node), r)),
                }
            }
            None => Err((Some(claim.node), Refusal::NoSecret)),
        },
        Err(r) => Err((None, r)),
    };
    match verdict {
        Ok(claim) => {
            req.extensions_mut().insert(SignedCall {
                hops: claim.hops,
                node: claim.node,
                body_sha256: claim.body_sha256,
            });
            next.call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
        Err((node, reason)) => {
            log_refusal(req.request(), node.as_deref(), &reason);
            let response = refused(&reason).error_response();
            Ok(req.into_response(response).map_into_right_body())
        }
    }
}

/// How many nodes have forwarded this call: its signed hop count, 0 for a client's
/// call. Never read from a header: [`check_node_calls`] only lets a correctly signed
/// node call carry one.
pub fn hops(req: &HttpRequest) -> u8 {
    req.extensions().get::<SignedCall>().map_or(0, |c| c.hops)
}

/// Whether the call was forwarded by another node, signed: its client was counted
/// against the rate limits where it called.
pub fn from_node(req: &HttpRequest) -> bool {
    req.extensions().get::<SignedCall>().is_some()
}

/// For a node call, checks that `body` is the body it was signed with (401 if not).
/// Every body-reading route calls it once the body is in, before parsing it.
pub fn check_body(req: &HttpRequest, body: &[u8]) -> Result<(), ApiError> {
    let Some(call) = req.extensions().get::<SignedCall>().cloned() else {
        return Ok(());
    };
    if signing::body_digest(body) == call.body_sha256 {
        Ok(())
    } else {
        log_refusal(req, Some(&call.node), &Refusal::BodyMismatch);
        Err(refused(&Refusal::BodyMismatch))
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const PATH: &str = "/_db/market/v0_0/request";

    fn auth() -> NodeAuth {
        NodeAuth::new("node-a", Some(ClusterSecret::new(KEY).unwrap()))
    }

    /// The headers `auth` signs for a POST of `body` to PATH with `hops`.
    fn signed(auth: &NodeAuth, hops: u8, body: &[u8]) -> Vec<(&'static str, String)> {
        auth.sign("POST", PATH, hops, body).unwrap().to_vec()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut r = TestRequest::default();
        for (n, v) in pairs {
            r = r.append_header((*n, *v));
        }
        r.to_http_request().headers().clone()
    }

    fn verify(auth: &NodeAuth, pairs: &[(&str, &str)]) -> Result<Option<Claim>, Refusal> {
        let c = claim(&headers(pairs))?;
        match c {
            Some(c) => auth
                .verify(&c, "POST", PATH, Millis::now().0)
                .map(|()| Some(c)),
            None => Ok(None),
        }
    }

    fn pairs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        v.iter().map(|(n, v)| (*n, v.as_str())).collect()
    }

    #[test]
    fn a_client_call_has_no_claim() {
        let h = headers(&[("authorization", "Bearer x"), ("x-proof-marketing", "1")]);
        assert_eq!(claim(&h), Ok(None));
    }

    #[test]
    fn what_a_node_signs_another_node_with_the_secret_believes() {
        let a = auth();
        let b = NodeAuth::new("node-b", Some(ClusterSecret::new(KEY).unwrap()));
        for hops in 1..=MAX_HOPS + 1 {
            let h = signed(&a, hops, b"{}");
            let c = verify(&b, &pairs(&h)).unwrap().unwrap();
            assert_eq!((c.hops, c.node.as_str()), (hops, "node-a"));
            assert_eq!(c.body_sha256, signing::body_digest(b"{}"));
        }
    }

    #[test]
    fn hop_headers_alone_are_refused_whatever_their_value() {
        // What a client could send before calls were signed: all refused now, in range
        // or not, once or twice.
        let a = auth();
        for v in [
            "1", "2", "3", "4", "0", "255", "256", "999999", "-1", "+1", "01", "abc", "", " 2",
        ] {
            assert!(
                matches!(verify(&a, &[(HOPS_HEADER, v)]), Err(Refusal::Malformed(_))),
                "{v:?}"
            );
        }
        assert!(verify(&a, &[(HOPS_HEADER, "1"), (HOPS_HEADER, "1")]).is_err());
        // Any internal header at all makes a call a node call.
        assert!(verify(&a, &[(NODE_HEADER, "node-a")]).is_err());
        assert!(verify(&a, &[("x-proof-market-whatever", "1")]).is_err());
    }

    #[test]
    fn every_tampered_or_incomplete_signed_call_is_refused() {
        let a = auth();
        let good = signed(&a, 1, b"{}");
        assert!(verify(&a, &pairs(&good)).is_ok());
        // Each header missing, repeated, or changed.
        for i in 0..good.len() {
            let mut missing = pairs(&good);
            missing.remove(i);
            assert!(verify(&a, &missing).is_err(), "without {}", good[i].0);
            let mut twice = pairs(&good);
            twice.push(twice[i]);
            assert!(verify(&a, &twice).is_err(), "{} twice", good[i].0);
        }
        let now = Millis::now().0;
        let flip = |s: &str| {
            let mut b = s.as_bytes().to_vec();
            b[0] = if b[0] == b'a' { b'b' } else { b'a' };
            String::from_utf8(b).unwrap()
        };
        let changed = [
            (HOPS_HEADER, "2".to_owned()),
            (HOPS_HEADER, "4".to_owned()),
            (NODE_HEADER, "node-b".to_owned()),
            (TIME_HEADER, (now + 1).to_string()),
            (TIME_HEADER, (now - 60_000).to_string()),
            (TIME_HEADER, "99999999999999999999999".to_owned()),
            (
                BODY_DIGEST_HEADER,
                hex::encode(signing::body_digest(b"{ }")),
            ),
            (SIGNATURE_HEADER, flip(&good[4].1)),
            (SIGNATURE_HEADER, good[4].1[..62].to_owned()),
        ];
        for (name, value) in changed {
            let h: Vec<(&str, &str)> = good
                .iter()
                .map(|(n, v)| (*n, if *n == name { value.as_str() } else { v }))
                .collect();
            assert!(verify(&a, &h).is_err(), "{name}: {value}");
        }
        // Another method or path than the one signed.
        let c = claim(&headers(&pairs(&good))).unwrap().unwrap();
        let now = Millis::now().0;
        assert_eq!(
            a.verify(&c, "DELETE", PATH, now),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            a.verify(&c, "POST", "/_db/market/v0_0/proposal", now),
            Err(Refusal::BadSignature)
        );
        // A call signed 31 s ago, or 31 s ahead.
        for skew in [-31_000i64, 31_000] {
            assert!(matches!(
                a.verify(&c, "POST", PATH, c.time_ms.saturating_add_signed(-skew)),
                Err(Refusal::Stale { .. })
            ));
        }
    }

    #[test]
    fn another_secret_or_none_is_refused() {
        let a = auth();
        let h = signed(&a, 1, b"");
        let other = NodeAuth::new(
            "node-b",
            Some(ClusterSecret::new(b"a different secret, 32 bytes long").unwrap()),
        );
        assert_eq!(verify(&other, &pairs(&h)), Err(Refusal::BadSignature));
        let none = NodeAuth::new("node-b", None);
        assert_eq!(verify(&none, &pairs(&h)), Err(Refusal::NoSecret));
        assert!(none.sign("GET", PATH, 1, b"").is_none());
    }

    #[test]
    fn only_a_signed_call_has_hops_and_its_body_must_match() {
        let plain = TestRequest::default()
            .insert_header((HOPS_HEADER, "2"))
            .to_http_request();
        assert_eq!(hops(&plain), 0);
        assert!(check_body(&plain, b"anything").is_ok());
        let signed = TestRequest::default().to_http_request();
        signed.extensions_mut().insert(SignedCall {
            hops: 2,
            node: "node-a".into(),
            body_sha256: signing::body_digest(b"{\"cost\":5}"),
        });
        assert_eq!(hops(&signed), 2);
        assert!(check_body(&signed, b"{\"cost\":5}").is_ok());
        let e = check_body(&signed, b"{\"cost\":6}").unwrap_err();
        assert_eq!(e.status_code(), StatusCode::UNAUTHORIZED);
    }

    /// What signing and verifying cost a node per forwarded call, for the README.
    #[test]
    #[ignore = "a timing, not a check: cargo test --lib node_auth::tests::cost -- --ignored --nocapture"]
    fn cost() {
        use std::hint::black_box;
        use std::time::Instant;
        let a = auth();
        let order = br#"{"statement_key":"16153352","cost":5,"input":[{"field":1},{"field":11}]}"#;
        let n = 50_000;
        let t = Instant::now();
        let mut last = None;
        for _ in 0..n {
            last = black_box(a.sign("POST", PATH, 1, black_box(order)));
        }
        let sign = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        let h = headers(&pairs(&last.unwrap()));
        let now = Millis::now().0;
        let t = Instant::now();
        for _ in 0..n {
            let c = claim(black_box(&h)).unwrap().unwrap();
            a.verify(&c, "POST", PATH, now).unwrap();
            assert_eq!(signing::body_digest(black_box(order)), c.body_sha256);
        }
        let verify = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        let proof = vec![0x5au8; 4 << 20];
        let t = Instant::now();
        for _ in 0..10 {
            black_box(signing::body_digest(black_box(&proof)));
        }
        let digest_ms = t.elapsed().as_secs_f64() * 1e3 / 10.0;
        println!(
            "node call, {}-byte order body: sign {sign:.2} us, parse + verify + body check \
             {verify:.2} us; SHA-256 of a 4 MiB proof body {digest_ms:.2} ms (each side)",
            order.len()
        );
    }
}

//! Bad input gets a clear 4xx JSON error and changes nothing.

mod common;

use common::*;
use serde_json::{json, Value};

fn assert_error(status: u16, body: &Value, want: u16, needle: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"], true, "{body}");
    assert_eq!(body["code"], want, "{body}");
    let msg = body["errorMessage"].as_str().unwrap();
    assert!(
        msg.to_lowercase().contains(&needle.to_lowercase()),
        "`{msg}` does not mention `{needle}`"
    );
}

/// Everything a statement holds, to compare before and after refused calls.
async fn snapshot(api: &Api, stmt: &str) -> (Vec<Value>, Vec<Value>, Value, usize) {
    let (_, statements) = api.get(&format!("{ROOT}/statement")).await;
    (
        all_orders(api, "request", stmt).await,
        all_orders(api, "proposal", stmt).await,
        api.get(&format!("{ROOT}/book/{stmt}")).await.1,
        statements.as_array().unwrap().len(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_orders_are_refused_and_change_nothing() {
    let backend = Backend::new();
    let server = Server::start(&backend).await;
    let api = server.api().user("frank").await;
    let stmt = push_statement(&api).await;
    // Some state to protect: a resting request and a match in processing.
    let (_, rest) = api
        .post(
            &format!("{ROOT}/request/"),
            &json!({"statement_key": stmt, "cost": 1, "input": [{"field": 1}, {"field": 2}]}),
        )
        .await;
    let (_, r2) = api
        .post(
            &format!("{ROOT}/request/"),
            &json!({"statement_key": stmt, "cost": 9, "input": [{"field": 3}, {"field": 4}]}),
        )
        .await;
    // Another user produces (a user's request never takes its own proposal).
    let producer = server.api().user("frank-producer").await;
    let (_, p2) = producer
        .post(
            &format!("{ROOT}/proposal/"),
            &json!({"statement_key": stmt, "cost": 9}),
        )
        .await;
    assert_eq!(p2["status"], "processing");
    let before = snapshot(&api, &stmt).await;

    let req = |body: Value| (format!("{ROOT}/request/"), body);
    let prop = |body: Value| (format!("{ROOT}/proposal/"), body);
    let cases: Vec<((String, Value), u16, &str)> = vec![
        (
            req(json!({"statement_key": stmt, "cost": 0, "input": [{"field": 1}]})),
            400,
            "greater than 0",
        ),
        (
            req(json!({"statement_key": stmt, "cost": -2, "input": [{"field": 1}]})),
            400,
            "greater than 0",
        ),
        (
            req(json!({"statement_key": stmt, "cost": "NaN", "input": [{"field": 1}]})),
            400,
            "number",
        ),
        (
            req(json!({"statement_key": stmt, "cost": 1e13, "input": [{"field": 1}]})),
            400,
            "at most",
        ),
        (
            req(json!({"statement_key": stmt, "cost": 1.0000001, "input": [{"field": 1}]})),
            400,
            "decimals",
        ),
        (
            req(json!({"statement_key": stmt, "input": [{"field": 1}]})),
            400,
            "cost",
        ),
        (req(json!({"statement_key": stmt, "cost": 1})), 400, "input"),
        (
            req(json!({"cost": 1, "input": [{"field": 1}]})),
            400,
            "statement_key",
        ),
        (
            req(json!({"statement_key": "424242", "cost": 1, "input": [{"field": 1}]})),
            404,
            "statement",
        ),
        (
            req(json!({"statement_key": "x1", "cost": 1, "input": [{"field": 1}]})),
            400,
            "statement_key",
        ),
        (
            req(json!({"statement_key": stmt, "cost": 1, "input": "1 11"})),
            400,
            "input",
        ),
        (
            req(json!({"statement_key": stmt, "cost": 1, "input": [{"field": "zz"}]})),
            400,
            "field",
        ),
        (
            req(json!({"statement_key": stmt, "cost": 1, "input": [{"int": 5}]})),
            400,
            "int",
        ),
        (
            req(json!({"statement_key": stmt, "cost": 1, "input": [{"field": 1.5}]})),
            400,
            "field",
        ),
        (
            req(
                json!({"statement_key": stmt, "cost": 1, "input": [{"field": "28948022309329048855892746252171976963363056481941560715954676764349967630337"}]}),
            ),
            400,
            "modulus",
        ),
        (
            req(json!({"statement_key": stmt, "cost": 1, "input": [{"field": 1}], "eval_time": 0})),
            400,
            "eval_time",
        ),
        (
            req(
                json!({"statement_key": stmt, "cost": 1, "input": [{"field": 1}], "wait_period": "soon"}),
            ),
            400,
            "wait_period",
        ),
        (
            prop(json!({"statement_key": stmt, "cost": 0})),
            400,
            "greater than 0",
        ),
        (prop(json!({"statement_key": stmt})), 400, "cost"),
        (prop(json!([1, 2])), 400, "object"),
    ];
    for ((path, body), want, needle) in cases {
        let (s, v) = api.post(&path, &body).await;
        assert_error(s, &v, want, needle);
    }
    let (s, v) = api
        .post_raw(
            &format!("{ROOT}/request/"),
            b"{\"statement_key\": ".to_vec(),
        )
        .await;
    assert_error(s, &v, 400, "JSON");
    let (s, v) = api
        .post_raw(
            &format!("{ROOT}/request/"),
            br#"{"statement_key": "1", "cost": NaN}"#.to_vec(),
        )
        .await;
    assert_error(s, &v, 400, "JSON");
    let huge = format!(
        "{{\"statement_key\": \"{stmt}\", \"cost\": 1, \"input\": \"{}\"}}",
        "1".repeat(10 << 20)
    );
    let (s, v) = api
        .post_raw(&format!("{ROOT}/request/"), huge.into_bytes())
        .await;
    assert_error(s, &v, 413, "larger");

    // Withdraw: not yours, not open, unknown.
    let other = server.api().user("grace").await;
    let rk = rest["_key"].as_str().unwrap();
    let (s, v) = other.delete(&format!("{ROOT}/request/{rk}")).await;
    assert_error(s, &v, 403, "another user");
    let (s, v) = api
        .delete(&format!("{ROOT}/request/{}", r2["_key"].as_str().unwrap()))
        .await;
    assert_error(s, &v, 409, "processing");
    let (s, v) = api.delete(&format!("{ROOT}/proposal/{rk}")).await;
    assert_error(s, &v, 404, "proposal");

    // Proofs: not yours, not processing, malformed, neither key.
    let pk = p2["_key"].as_str().unwrap();
    let (s, v) = other
        .post(
            &format!("{ROOT}/proof"),
            &json!({"proof": "0xabcd", "proposal_key": pk}),
        )
        .await;
    assert_error(s, &v, 403, "another user");
    for (body, want, needle) in [
        (json!({"proof": "0xabcd"}), 400, "proposal_key"),
        (json!({"proof": "0xabc", "proposal_key": pk}), 400, "hex"),
        (json!({"proof": "", "proposal_key": pk}), 400, "empty"),
        (json!({"proof": "nothex", "proposal_key": pk}), 400, "hex"),
        (json!({"proposal_key": pk}), 400, "proof"),
        (
            json!({"proof": "0xabcd", "proposal_key": pk, "request_key": rk}),
            400,
            "matched to request",
        ),
        (
            json!({"proof": "0xabcd", "proposal_key": "777777"}),
            404,
            "proposal",
        ),
        (
            json!({"proof": "0xabcd", "request_key": rk}),
            409,
            "created",
        ),
    ] {
        let (s, v) = producer.post(&format!("{ROOT}/proof"), &body).await;
        assert_error(s, &v, want, needle);
    }

    // Proofs that do not verify: garbage, a proof of another input, a tampered one.
    let good = example_proof(&[3, 4]);
    let mut tampered = good.clone().into_bytes();
    tampered[40] = if tampered[40] == b'0' { b'1' } else { b'0' };
    for proof in [
        "0xabcd".to_owned(),
        example_proof(&[4, 3]),
        example_proof(&[1, 11]),
        String::from_utf8(tampered).unwrap(),
        format!("{good}00"),
    ] {
        let (s, v) = producer
            .post(
                &format!("{ROOT}/proof"),
                &json!({"proof": proof, "proposal_key": pk}),
            )
            .await;
        assert_error(s, &v, 400, "proof rejected");
    }
    // Requests the circuit cannot prove: wrong arity, division by zero (a == b).
    for (input, needle) in [
        (json!([{"field": 1}]), "2 public inputs"),
        (json!({"input": "5\n5"}), "divides by zero"),
    ] {
        let (s, v) = api
            .post(
                &format!("{ROOT}/request/"),
                &json!({"statement_key": stmt, "cost": 1, "input": input}),
            )
            .await;
        assert_error(s, &v, 400, needle);
    }

    assert_eq!(
        snapshot(&api, &stmt).await,
        before,
        "a refused call changed state"
    );

    // The real proof is taken, a second one is refused.
    let (s, v) = producer
        .post(
            &format!("{ROOT}/proof"),
            &json!({"proof": good, "proposal_key": pk}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["proof_system"], "halo2-ipa-pasta-v3");
    let (s, v) = producer
        .post(
            &format!("{ROOT}/proof"),
            &json!({"proof": good, "proposal_key": pk}),
        )
        .await;
    assert_error(s, &v, 409, "completed");
    let (s, v) = producer
        .post(
            &format!("{ROOT}/proof"),
            &json!({"proof": good, "request_key": r2["_key"]}),
        )
        .await;
    assert_error(s, &v, 409, "completed");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_statements_and_accounts_are_refused() {
    let backend = Backend::new();
    let server = Server::start(&backend).await;
    let api = server.api().user("heidi").await;
    let good = example_statement();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut s = good.clone();
        f(&mut s);
        s
    };
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            with(&|s| s["definition"]["proving_key"] = json!("")),
            400,
            "empty",
        ),
        (
            with(&|s| s["definition"]["proving_key"] = json!("   ")),
            400,
            "empty",
        ),
        (
            with(&|s| s["definition"]["proving_key"] = json!(5)),
            400,
            "string",
        ),
        (
            with(&|s| {
                s["definition"]["proving_key"] = json!(format!("define {}", "x".repeat(5 << 20)))
            }),
            400,
            "larger",
        ),
        (
            with(&|s| s["definition"]["proving_key"] = json!("hello, not IR")),
            400,
            "circuit",
        ),
        (
            with(&|s| {
                let ir = s["definition"]["proving_key"]
                    .as_str()
                    .unwrap()
                    .replace("%diff = sub", "%diff = fsub");
                s["definition"]["proving_key"] = json!(ir)
            }),
            400,
            "fsub",
        ),
        (
            with(&|s| {
                s.as_object_mut()
                    .unwrap()
                    .remove("definition")
                    .map(|_| ())
                    .unwrap()
            }),
            400,
            "definition",
        ),
        (with(&|s| s["type"] = json!("groth16")), 400, "type"),
        (
            with(&|s| {
                s.as_object_mut()
                    .unwrap()
                    .remove("name")
                    .map(|_| ())
                    .unwrap()
            }),
            400,
            "name",
        ),
        (with(&|s| s["name"] = json!(7)), 400, "name"),
        (with(&|s| s["isPrivate"] = json!("yes")), 400, "isPrivate"),
        (json!("statement"), 400, "object"),
    ];
    for (body, want, needle) in cases {
        let (s, v) = api.post(&format!("{ROOT}/statement/"), &body).await;
        assert_error(s, &v, want, needle);
    }
    let (s, v) = api.get(&format!("{ROOT}/statement/")).await;
    assert_eq!(s, 200);
    assert_eq!(
        v.as_array().unwrap().len(),
        0,
        "a refused statement was stored"
    );
    let (s, v) = api.get(&format!("{ROOT}/statement/98765")).await;
    assert_error(s, &v, 404, "statement");

    // Accounts.
    let anon = server.api();
    let (s, v) = anon
        .post(
            &format!("{ROOT}/user/signup"),
            &json!({"user": "heidi", "passwd": "x"}),
        )
        .await;
    assert_error(s, &v, 409, "taken");
    let (s, v) = anon
        .post(
            &format!("{ROOT}/user/signup"),
            &json!({"user": "bad name", "passwd": "x"}),
        )
        .await;
    assert_error(s, &v, 400, "user");
    let (s, v) = anon
        .post(&format!("{ROOT}/user/signup"), &json!({"user": "ivan"}))
        .await;
    assert_error(s, &v, 400, "passwd");
    let (s, v) = anon
        .post(
            "/_open/auth",
            &json!({"username": "heidi", "password": "wrong"}),
        )
        .await;
    assert_error(s, &v, 401, "password");
    let (s, v) = anon
        .post(
            "/_open/auth",
            &json!({"username": "nobody", "password": "x"}),
        )
        .await;
    assert_error(s, &v, 401, "password");
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_checked() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let backend = Backend::new();
    let server = Server::start(&backend).await;
    let api = server.api().user("judy").await;
    // Orders need a login (market data such as statements and books do not).
    let path = format!("{ROOT}/request/");
    let (s, v) = server.api().get(&path).await;
    assert_error(s, &v, 401, "authorization");
    let (s, v) = server.api().with_token("not.a.token").get(&path).await;
    assert_error(s, &v, 401, "token");
    let now = jsonwebtoken::get_current_timestamp();
    let claims = |exp: u64| json!({"sub": "judy", "iat": now, "exp": exp, "iss": "proof-market"});
    let forged = encode(
        &Header::default(),
        &claims(now + 600),
        &EncodingKey::from_secret(b"some other secret"),
    )
    .unwrap();
    let (s, v) = server.api().with_token(&forged).get(&path).await;
    assert_error(s, &v, 401, "signature");
    let expired = encode(
        &Header::default(),
        &claims(now - 600),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let (s, v) = server.api().with_token(&expired).get(&path).await;
    assert_error(s, &v, 401, "expired");
    let hs512 = encode(
        &Header::new(jsonwebtoken::Algorithm::HS512),
        &claims(now + 600),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let (s, v) = server.api().with_token(&hs512).get(&path).await;
    assert_error(s, &v, 401, "token");
    // A genuine token works, and renew gives another that works.
    assert_eq!(api.get(&path).await.0, 200);
    let (s, v) = api.post(&format!("{ROOT}/user/renew"), &json!({})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        server
            .api()
            .with_token(v["jwt"].as_str().unwrap())
            .get(&path)
            .await
            .0,
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn original_paths_and_slashes_work() {
    let backend = Backend::new();
    let server = Server::start(&backend).await;
    let api = server.api().user("ken").await;
    let stmt = push_statement(&api).await;
    let (s, v) = api
        .post(
            "/_db/market//v0_0/request/",
            &json!({"statement_key": stmt, "cost": 3, "input": {"input": "1\n11"}}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let key = v["_key"].as_str().unwrap();
    assert_eq!(v["_id"], format!("request/{key}"));
    for path in [
        format!("/_db/market/v0_0/request/{key}"),
        format!("/_db/market//v0_0/request/{key}/"),
        format!("//_db/market/v0_0//request//{key}"),
    ] {
        let (s, v) = api.get(&path).await;
        assert_eq!(s, 200, "{path}: {v}");
        assert_eq!(v["_key"], key);
    }
    let q = urlencode(r#"[{"key":"status","value":"created"},{"key":"sender","value":"ken"}]"#);
    let (s, v) = api.get(&format!("{ROOT}/request/?q={q}")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v.as_array().unwrap().len(), 1);
    let (s, v) = api
        .get(&format!(
            "{ROOT}/request/?q={}",
            urlencode("[{\"key\":\"color\",\"value\":\"x\"}]")
        ))
        .await;
    assert_error(s, &v, 400, "color");
    let (s, v) = api.get("/_db/market/v0_0/nothing-here").await;
    assert_error(s, &v, 404, "no route");
    let (s, v) = api
        .post(
            &format!("{ROOT}/producer/register"),
            &json!({"description": "fast prover", "url": "https://example.org"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["name"], "ken");
    // Withdrawal by the owner.
    let (s, v) = api.delete(&format!("{ROOT}/request/{key}")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "withdrawn");
    let (_, book) = api.get(&format!("{ROOT}/book/{stmt}")).await;
    assert_eq!(book["requests"].as_array().unwrap().len(), 0);
}

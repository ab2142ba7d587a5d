//! Attacks on accounts and tokens, each run against real nodes and a real Redis and
//! refused: a weak signing secret, a stolen token after logout or a password change, a
//! token renewed forever, a name taken again in another case, user enumeration by login
//! timing, and password guessing.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// `POST /_open/auth` as (status, Retry-After, body).
async fn login(base: &str, user: &str, password: &str) -> (u16, Option<u64>, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/_open/auth"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (status, retry, r.json().await.unwrap())
}

async fn signup(api: &Api, user: &str, passwd: &str) -> (u16, Value) {
    api.post(
        &format!("{ROOT}/user/signup"),
        &json!({"user": user, "passwd": passwd}),
    )
    .await
}

/// A call any valid token may make.
async fn authorized(api: &Api, token: &str) -> u16 {
    api.with_token(token)
        .get(&format!("{ROOT}/statement"))
        .await
        .0
}

fn serve_and_fail(secret: Option<&str>, data_dir: &std::path::Path) -> (Option<i32>, String) {
    let mut cmd = Command::new(bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        // Never reached: the secret is checked before Redis.
        .args(["--redis-url", "redis://127.0.0.1:1"])
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("PROOF_MARKET_JWT_SECRET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(s) = secret {
        cmd.env("PROOF_MARKET_JWT_SECRET", s);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_weak_or_exposed_secret_stops_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = serve_and_fail(Some("guessable-secret"), dir.path());
    assert_eq!(code, Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("at least 32"), "{stderr}");
    // A generated secret file that other users can read is refused too.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.path().join("jwt-secret");
        std::fs::write(&path, "s".repeat(64)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (code, stderr) = serve_and_fail(None, dir.path());
        assert_eq!(code, Some(1), "{stderr}");
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with("error:") && l.contains("0644")),
            "{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_revokes_tokens_here_at_once_and_on_other_nodes_within_the_delay() {
    let backend = Backend::new();
    let a = Server::start_with(&backend, &["--revocation-cache-ms", "1000"]).await;
    let b = Server::start_with(&backend, &["--revocation-cache-ms", "1000"]).await;
    let alice = a.api().user("alice").await;
    let stolen = alice.token.clone().unwrap();
    // The token works on both nodes (and B now caches "not revoked").
    assert_eq!(authorized(&a.api(), &stolen).await, 200);
    assert_eq!(authorized(&b.api(), &stolen).await, 200);
    let (s, v) = alice.post(&format!("{ROOT}/user/logout"), &json!({})).await;
    assert_eq!(s, 200, "{v}");
    let revoked = Instant::now();
    // Refused at once on the node that revoked it, renewal included.
    assert_eq!(authorized(&a.api(), &stolen).await, 401);
    let (s, v) = a
        .api()
        .with_token(&stolen)
        .post(&format!("{ROOT}/user/renew"), &json!({}))
        .await;
    assert_eq!(s, 401, "{v}");
    assert!(
        v["errorMessage"].as_str().unwrap().contains("revoked"),
        "{v}"
    );
    // Refused on the other node within the cache delay (1 s, plus slack for the test).
    loop {
        if authorized(&b.api(), &stolen).await == 401 {
            break;
        }
        assert!(
            revoked.elapsed() < Duration::from_millis(2500),
            "node B still accepts a revoked token after {:?}",
            revoked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A new login works everywhere.
    let (s, _, v) = login(&a.url, "alice", "pw-").await;
    assert_eq!(s, 200, "{v}");
    let fresh = v["jwt"].as_str().unwrap();
    assert_eq!(authorized(&a.api(), fresh).await, 200);
    assert_eq!(authorized(&b.api(), fresh).await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_change_revokes_every_token_and_the_old_password() {
    let backend = Backend::new();
    let a = Server::start(&backend).await;
    let b = Server::start(&backend).await;
    let bob = a.api().user("bob").await;
    let stolen = bob.token.clone().unwrap();
    assert_eq!(authorized(&b.api(), &stolen).await, 200);
    let path = format!("{ROOT}/user/password");
    // The old password must be right.
    let (s, v) = bob
        .post(&path, &json!({"passwd": "wrong", "new_passwd": "n3w"}))
        .await;
    assert_eq!(s, 401, "{v}");
    assert_eq!(authorized(&a.api(), &stolen).await, 200);
    let (s, v) = bob
        .post(&path, &json!({"passwd": "pw-", "new_passwd": "n3w"}))
        .await;
    assert_eq!(s, 200, "{v}");
    let fresh = v["jwt"].as_str().unwrap().to_owned();
    assert_eq!(authorized(&a.api(), &stolen).await, 401);
    assert_eq!(authorized(&a.api(), &fresh).await, 200);
    let t0 = Instant::now();
    while authorized(&b.api(), &stolen).await != 401 {
        assert!(
            t0.elapsed() < Duration::from_millis(2500),
            "B still accepts it"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(authorized(&b.api(), &fresh).await, 200);
    assert_eq!(login(&a.url, "bob", "pw-").await.0, 401);
    assert_eq!(login(&b.url, "bob", "n3w").await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn renewals_stop_at_the_maximum_token_age() {
    let backend = Backend::new();
    let s = Server::start_with(&backend, &["--token-max-age", "3"]).await;
    let carol = s.api().user("carol").await;
    let logged_in = Instant::now();
    let (st, v) = carol.post(&format!("{ROOT}/user/renew"), &json!({})).await;
    assert_eq!(st, 200, "{v}");
    let renewed = v["jwt"].as_str().unwrap().to_owned();
    assert_eq!(authorized(&s.api(), &renewed).await, 200);
    tokio::time::sleep(Duration::from_millis(3500).saturating_sub(logged_in.elapsed())).await;
    // Renewing the renewed token does not extend the login past its maximum age.
    let (st, v) = s
        .api()
        .with_token(&renewed)
        .post(&format!("{ROOT}/user/renew"), &json!({}))
        .await;
    assert_eq!(st, 401, "{v}");
    assert!(
        v["errorMessage"].as_str().unwrap().contains("too old"),
        "{v}"
    );
    assert_eq!(authorized(&s.api(), &renewed).await, 401);
    // Logging in again starts a new chain.
    assert_eq!(login(&s.url, "carol", "pw-").await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn user_names_are_unique_whatever_their_case() {
    let backend = Backend::new();
    let s = Server::start(&backend).await;
    let api = s.api();
    assert_eq!(signup(&api, "Alice", "pw-A").await.0, 200);
    for other in ["alice", "ALICE", "aLiCe"] {
        let (st, v) = signup(&api, other, "pw-evil").await;
        assert_eq!(st, 409, "{other}: {v}");
    }
    // Login is case-insensitive and names the account as it signed up.
    let (st, _, v) = login(&s.url, "alice", "pw-A").await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = api
        .with_token(v["jwt"].as_str().unwrap())
        .post(&format!("{ROOT}/user/renew"), &json!({}))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(login(&s.url, "alice", "pw-evil").await.0, 401);

    // An account stored before this change (under its exact name) keeps working, and
    // once it has logged in its name cannot be taken in another case.
    let legacy = json!({
        "user": "Dave",
        "passwd_hash": proof_market::auth::hash_password("pw-D").unwrap(),
        "email": null,
        "created": 1,
    });
    let _: () = redis_query(
        &backend.url,
        redis::cmd("SET")
            .arg(format!("{}:user:Dave", backend.prefix))
            .arg(legacy.to_string()),
    );
    assert_eq!(login(&s.url, "Dave", "pw-D").await.0, 200);
    assert_eq!(signup(&api, "dave", "pw-evil").await.0, 409);
    assert_eq!(login(&s.url, "dave", "pw-D").await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn old_accounts_claim_their_lowercased_names_when_the_market_starts() {
    // The start-up claim scans one Redis; on a Redis Cluster old names are claimed at
    // their next login instead (the test above). So this test has a Redis of its own
    // even in the suite's cluster pass.
    let own = OwnRedis::start();
    let backend = Backend::on(own.url());
    // Stored before names were case-insensitive, never logged in since.
    let legacy = json!({
        "user": "Zed",
        "passwd_hash": proof_market::auth::hash_password("pw-Z").unwrap(),
        "email": null,
        "created": 1,
    });
    let _: () = redis_query(
        &backend.url,
        redis::cmd("SET")
            .arg(format!("{}:user:Zed", backend.prefix))
            .arg(legacy.to_string()),
    );
    let s = Server::start(&backend).await;
    assert_eq!(signup(&s.api(), "zed", "pw-evil").await.0, 409);
    assert_eq!(signup(&s.api(), "ZED", "pw-evil").await.0, 409);
    assert_eq!(login(&s.url, "Zed", "pw-Z").await.0, 200);
    assert_eq!(login(&s.url, "zed", "pw-Z").await.0, 200);
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_users_take_as_long_to_refuse_as_known_ones() {
    let backend = Backend::new();
    let s = Server::start(&backend).await;
    assert_eq!(signup(&s.api(), "erin", "pw-E").await.0, 200);
    let time = |user: String| {
        let url = s.url.clone();
        async move {
            let t = Instant::now();
            let (st, _, v) = login(&url, &user, "not-the-password").await;
            assert_eq!(st, 401, "{user}: {v}");
            t.elapsed()
        }
    };
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    // Alternated, so both see the same machine load; 5 each (under the name limit).
    for i in 0..5 {
        known.push(time("erin".into()).await);
        unknown.push(time(format!("nobody-{i}")).await);
    }
    let (k, u) = (median(known), median(unknown));
    assert!(
        u.as_secs_f64() >= 0.5 * k.as_secs_f64(),
        "unknown user refused in {u:?}, known user in {k:?}: the timing tells them apart"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn password_guessing_is_cut_off_per_name_across_nodes() {
    let backend = Backend::new();
    let args = [
        "--login-failures-per-name",
        "5",
        "--login-failures-per-ip",
        "1000",
        "--login-window",
        "60",
    ];
    let a = Server::start_with(&backend, &args).await;
    let b = Server::start_with(&backend, &args).await;
    assert_eq!(signup(&a.api(), "frank", "pw-F").await.0, 200);
    assert_eq!(signup(&a.api(), "grace", "pw-G").await.0, 200);
    for i in 0..5 {
        let (st, _, v) = login(&a.url, "frank", &format!("guess-{i}")).await;
        assert_eq!(st, 401, "{v}");
    }
    // Cut off, on every node, in any case of the name, even with the right password;
    // answered before any password is checked.
    for (node, name, pw) in [
        (&a, "frank", "guess-x"),
        (&b, "frank", "guess-y"),
        (&a, "FRANK", "guess-z"),
        (&b, "frank", "pw-F"),
    ] {
        let (st, retry, v) = login(&node.url, name, pw).await;
        assert_eq!(st, 429, "{name}: {v}");
        assert_eq!(v["error"], true, "{v}");
        assert_eq!(v["code"], 429, "{v}");
        let retry = retry.expect("Retry-After on a 429");
        assert!((1..=60).contains(&retry), "Retry-After: {retry}");
    }
    // Meanwhile another user logs in from the same address.
    let (st, _, v) = login(&b.url, "grace", "pw-G").await;
    assert_eq!(st, 200, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn password_guessing_is_cut_off_per_ip() {
    let backend = Backend::new();
    let s = Server::start_with(
        &backend,
        &[
            "--login-failures-per-ip",
            "3",
            "--login-failures-per-name",
            "100",
        ],
    )
    .await;
    assert_eq!(signup(&s.api(), "heidi", "pw-H").await.0, 200);
    // Spraying guesses over many names from one address...
    for i in 0..3 {
        let (st, _, v) = login(&s.url, &format!("victim-{i}"), "guess").await;
        assert_eq!(st, 401, "{v}");
    }
    // ...stops that address, whatever the name.
    let (st, retry, v) = login(&s.url, "heidi", "pw-H").await;
    assert_eq!(st, 429, "{v}");
    assert!(retry.is_some());
}

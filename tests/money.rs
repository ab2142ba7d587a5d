//! Money end to end, against the real server and Redis (one, or a Redis Cluster when
//! the suite runs on one): escrow, collateral, settlement and commission, refusals that
//! change nothing, self-trade prevention, deadlines that roll a match back (also while
//! the statement's owner is down), and the money invariant under a concurrent random
//! workload with a kill -9 in the middle.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// Micro-units of a JSON amount (`12.5` → 12_500_000).
fn micros(v: &Value) -> u128 {
    let t = v.to_string();
    let (whole, frac) = t.split_once('.').unwrap_or((&t, ""));
    let frac = format!("{frac:0<6}");
    whole
        .parse::<u128>()
        .unwrap_or_else(|_| panic!("amount {t}"))
        * 1_000_000
        + frac.parse::<u128>().unwrap()
}

const U: u128 = 1_000_000;

/// (balance, blocked, deposit, locked) of the caller's wallet.
async fn wallet(api: &Api, user: &str) -> (u128, u128, u128, u128) {
    let (s, v) = api.get(&format!("{ROOT}/user/{user}/balance")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["user"], user);
    (
        micros(&v["balance"]),
        micros(&v["blocked"]),
        micros(&v["deposit"]),
        micros(&v["locked"]),
    )
}

/// Waits until `user`'s wallet reads `want` (payouts arrive just after the batch
/// that made them).
async fn wallet_becomes(api: &Api, user: &str, want: (u128, u128, u128, u128)) {
    let start = Instant::now();
    loop {
        let got = wallet(api, user).await;
        if got == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{user}'s wallet is {got:?}, expected {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn credit(anon: &Api, user: &str, amount: u64) {
    let op = anon.with_token(ADMIN_TOKEN);
    let (s, v) = op
        .post(
            &format!("{ROOT}/admin/credit"),
            &json!({"user": user, "amount": amount}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
}

async fn order(api: &Api, side: &str, body: Value) -> Value {
    let (s, v) = api.post(&format!("{ROOT}/{side}/"), &body).await;
    assert_eq!(s, 200, "{side} {body}: {v}");
    v
}

async fn status_of(api: &Api, side: &str, key: &str) -> Value {
    let (s, v) = api.get(&format!("{ROOT}/{side}/{key}")).await;
    assert_eq!(s, 200, "{v}");
    v
}

fn redis_hget(b: &Backend, key: &str, field: &str) -> Option<String> {
    redis_query(&b.url, redis::cmd("HGET").arg(key).arg(field))
}

/// Every wallet balance and deposit equals the sum of its ledger entries.
fn ledger_sums_match(b: &Backend, users: &[&str]) {
    for u in users {
        let base = format!("{}:{{u:{}}}", b.prefix, u.to_lowercase());
        let entries: Vec<(String, BTreeMap<String, String>)> = redis_query(
            &b.url,
            redis::cmd("XRANGE")
                .arg(format!("{base}:led"))
                .arg("-")
                .arg("+"),
        );
        let (mut bal, mut dep) = (0i128, 0i128);
        for (_, f) in &entries {
            bal += f["b"].parse::<i128>().unwrap();
            dep += f["d"].parse::<i128>().unwrap();
        }
        let get = |f: &str| -> i128 {
            redis_hget(b, &format!("{base}:w"), f)
                .unwrap_or_else(|| "0".into())
                .parse()
                .unwrap()
        };
        assert_eq!(get("balance"), bal, "{u}: balance vs its ledger");
        assert_eq!(get("deposit"), dep, "{u}: deposit vs its ledger");
    }
}

/// The market's commissions: its wallet, and its account on `stmt` (where they are
/// paid, until swept to the wallet).
fn market_account(b: &Backend, stmt: &str) -> u128 {
    let get = |key: &str, f: &str| -> u128 {
        redis_hget(b, key, f)
            .map(|v| v.parse().unwrap())
            .unwrap_or(0)
    };
    get(&format!("{}:{{u:#market}}:w", b.prefix), "balance")
        + get(&format!("{}:{{stmt:{stmt}}}:acct", b.prefix), "#market:b")
}

/// Every account on `stmt` equals the sum of its entries in the statement's ledger
/// (the `moved` events of its event log: free balance and deposit, escrow and
/// collateral held), and nothing is negative.
fn account_ledgers_match(b: &Backend, stmt: &str) {
    let base = format!("{}:{{stmt:{stmt}}}", b.prefix);
    let entries: Vec<(String, Vec<String>)> = redis_query(
        &b.url,
        redis::cmd("XRANGE")
            .arg(format!("{base}:events"))
            .arg("-")
            .arg("+"),
    );
    let mut sums: BTreeMap<String, i128> = BTreeMap::new();
    for (_, fields) in &entries {
        // `n <first>`, then `e <event JSON>` per event.
        for f in fields.chunks(2).skip(1) {
            let ev: Value = serde_json::from_str(&f[1]).unwrap();
            if ev["ev"] != "moved" {
                continue;
            }
            for m in ev["m"].as_array().unwrap() {
                let user = m[0].as_str().unwrap();
                for (i, field) in ["b", "k", "d", "l"].iter().enumerate() {
                    let delta: i128 = m[1 + i].as_str().unwrap().parse().unwrap();
                    if delta != 0 {
                        *sums.entry(format!("{user}:{field}")).or_default() += delta;
                    }
                }
            }
        }
    }
    let mut accounts: BTreeMap<String, String> =
        redis_query(&b.url, redis::cmd("HGETALL").arg(format!("{base}:acct")));
    // Producers' records (`:ok`, `:fail`) are counts, not money.
    accounts.retain(|f, _| [":b", ":k", ":d", ":l"].iter().any(|s| f.ends_with(s)));
    for (field, sum) in &sums {
        assert!(
            accounts.contains_key(field),
            "{field} moved but is not stored"
        );
        assert!(*sum >= 0, "{field} went negative: {sum}");
    }
    for (field, v) in &accounts {
        assert_eq!(
            v.parse::<i128>().unwrap(),
            sums.get(field).copied().unwrap_or(0),
            "account field {field} vs the statement's ledger"
        );
    }
}

async fn no_money(b: &Backend) -> Server {
    Server::start_with(b, &["--signup-credit", "0", "--signup-deposit", "0"]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn escrow_match_settlement_and_commission_move_exact_money() {
    let backend = Backend::new();
    let server = no_money(&backend).await;
    let anon = server.api();
    let alice = anon.user("alice").await;
    let bob = anon.user("bob").await;
    let stmt = push_statement(&alice).await;

    // Operator credits: only with the operator's token, only to existing users.
    let (s, _) = alice
        .post(
            &format!("{ROOT}/admin/credit"),
            &json!({"user": "alice", "amount": 5}),
        )
        .await;
    assert_eq!(s, 401, "a user's token is not the operator's");
    let (s, _) = anon
        .with_token(ADMIN_TOKEN)
        .post(
            &format!("{ROOT}/admin/credit"),
            &json!({"user": "nobody", "amount": 5}),
        )
        .await;
    assert_eq!(s, 404);
    for bad in [
        json!({"user": "alice", "amount": 0}),
        json!({"user": "alice", "amount": -1}),
        json!({"user": "alice", "amount": 1e13}),
        json!({"user": "alice", "amount": "5"}),
        json!({"user": "alice", "amount": 0.0000001}),
    ] {
        let (s, v) = anon
            .with_token(ADMIN_TOKEN)
            .post(&format!("{ROOT}/admin/credit"), &bad)
            .await;
        assert_eq!(s, 400, "{bad}: {v}");
    }
    credit(&anon, "alice", 100).await;
    credit(&anon, "bob", 100).await;
    assert_eq!(wallet(&alice, "alice").await, (100 * U, 0, 0, 0));
    // Your own balance only.
    let (s, _) = alice.get(&format!("{ROOT}/user/bob/balance")).await;
    assert_eq!(s, 403);

    // A request blocks its cost; one beyond the balance is refused, naming the shortfall.
    let (s, v) = alice
        .post(
            &format!("{ROOT}/request/"),
            &json!({"statement_key": stmt, "cost": 200, "input": [{"field": 1}, {"field": 11}]}),
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        v["errorMessage"].as_str().unwrap().contains("short by 100"),
        "{v}"
    );
    let r = order(
        &alice,
        "request",
        json!({"statement_key": stmt, "cost": 5, "input": [{"field": 1}, {"field": 11}]}),
    )
    .await;
    let rk = r["_key"].as_str().unwrap().to_owned();
    assert_eq!(wallet(&alice, "alice").await, (95 * U, 5 * U, 0, 0));

    // A proposal needs collateral: 10 × the price it may trade at (the best bid, 5).
    let (s, v) = bob
        .post(
            &format!("{ROOT}/proposal/"),
            &json!({"statement_key": stmt, "cost": 2}),
        )
        .await;
    assert_eq!(s, 400, "no deposit yet: {v}");
    assert!(
        v["errorMessage"].as_str().unwrap().contains("deposit"),
        "{v}"
    );
    let (s, v) = bob
        .post(
            &format!("{ROOT}/producer/deposit"),
            &json!({"amount": 1000}),
        )
        .await;
    assert_eq!(s, 400, "more than the balance: {v}");
    let (s, v) = bob
        .post(&format!("{ROOT}/producer/deposit"), &json!({"amount": 60}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(wallet(&bob, "bob").await, (40 * U, 0, 60 * U, 0));

    // Matched at the resting request's cost: escrow stays 5, collateral 50 locked.
    let p = order(&bob, "proposal", json!({"statement_key": stmt, "cost": 2})).await;
    let pk = p["_key"].as_str().unwrap().to_owned();
    assert_eq!(p["status"], "processing");
    assert_eq!(p["price"], 5);
    wallet_becomes(&bob, "bob", (40 * U, 0, 10 * U, 50 * U)).await;
    assert_eq!(wallet(&alice, "alice").await, (95 * U, 5 * U, 0, 0));
    // What no work needs can be released; more cannot.
    let (s, _) = bob
        .post(
            &format!("{ROOT}/producer/deposit/release"),
            &json!({"amount": 11}),
        )
        .await;
    assert_eq!(s, 400);

    // The proof: bob earns 5 less 0.5 % commission, his collateral comes back.
    let proof = example_proof(&[1, 11]);
    let (s, v) = bob
        .post(
            &format!("{ROOT}/proof"),
            &json!({"proof": proof, "proposal_key": pk}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    wallet_becomes(&bob, "bob", (40 * U + 5 * U - 25_000, 0, 60 * U, 0)).await;
    wallet_becomes(&alice, "alice", (95 * U, 0, 0, 0)).await;
    assert_eq!(market_account(&backend, &stmt), 25_000);
    assert_eq!(
        status_of(&alice, "request", &rk).await["status"],
        "completed"
    );

    // Self-trade: alice's own proposal never takes her own request.
    let (s, _) = alice
        .post(&format!("{ROOT}/producer/deposit"), &json!({"amount": 50}))
        .await;
    assert_eq!(s, 200);
    let mine = order(
        &alice,
        "request",
        json!({"statement_key": stmt, "cost": 4, "input": [{"field": 2}, {"field": 3}]}),
    )
    .await;
    let own = order(
        &alice,
        "proposal",
        json!({"statement_key": stmt, "cost": 1}),
    )
    .await;
    assert_eq!(own["status"], "created", "{own}");
    assert_eq!(
        status_of(&alice, "request", mine["_key"].as_str().unwrap()).await["status"],
        "created"
    );
    // Withdrawing releases both: escrow to the balance, collateral to the deposit.
    for (side, o) in [("request", &mine), ("proposal", &own)] {
        let (s, v) = alice
            .delete(&format!("{ROOT}/{side}/{}", o["_key"].as_str().unwrap()))
            .await;
        assert_eq!(s, 200, "{v}");
    }
    wallet_becomes(&alice, "alice", (45 * U, 0, 50 * U, 0)).await;
    ledger_sums_match(&backend, &["alice", "bob", "#market"]);
    account_ledgers_match(&backend, &stmt);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_producer_that_never_delivers_is_fined_and_the_request_rematched_first() {
    let backend = Backend::new();
    // A minute lasts 300 ms: eval_time 1 is a 300 ms deadline.
    let mut server = Server::start_fixed_port_with(
        &backend,
        &[
            "--signup-credit",
            "100",
            "--signup-deposit",
            "100",
            "--minute-ms",
            "300",
        ],
    )
    .await;
    let anon = server.api();
    let alice = anon.user("alice").await;
    let bob = anon.user("bob").await;
    let carol = anon.user("carol").await;
    let dave = anon.user("dave").await;
    let stmt = push_statement(&alice).await;
    let input = json!([{"field": 1}, {"field": 11}]);

    // alice's request matches bob's proposal (price 5, collateral 50, deadline 300 ms).
    let r = order(
        &alice,
        "request",
        json!({"statement_key": stmt, "cost": 5, "input": input}),
    )
    .await;
    let rk = r["_key"].as_str().unwrap().to_owned();
    let p = order(
        &bob,
        "proposal",
        json!({"statement_key": stmt, "cost": 5, "eval_time": 1}),
    )
    .await;
    let pk = p["_key"].as_str().unwrap().to_owned();
    assert_eq!(p["status"], "processing");
    // dave bids the same price later: alice's request keeps its earlier arrival.
    let d = order(
        &dave,
        "request",
        json!({"statement_key": stmt, "cost": 5, "input": [{"field": 2}, {"field": 11}]}),
    )
    .await;
    assert_eq!(d["status"], "created");
    wallet_becomes(&bob, "bob", (100 * U, 0, 50 * U, 50 * U)).await;

    // The deadline passes: rolled back, bob fined 50 (to alice), alice's request open.
    let start = Instant::now();
    loop {
        let v = status_of(&alice, "request", &rk).await;
        if v["status"] == "created" {
            assert!(v.get("proposal_key").is_none(), "{v}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never rolled back: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let failed = status_of(&bob, "proposal", &pk).await;
    assert_eq!(failed["status"], "withdrawn");
    assert!(failed["failed"].as_u64().is_some(), "{failed}");
    wallet_becomes(&bob, "bob", (100 * U, 0, 50 * U, 0)).await;
    wallet_becomes(&alice, "alice", (145 * U, 5 * U, 100 * U, 0)).await;
    // bob's record shows the failure and the fine.
    let (s, rec) = alice.get(&format!("{ROOT}/producer/bob/stats")).await;
    assert_eq!(s, 200, "{rec}");
    assert_eq!(
        (
            rec["delivered"].clone(),
            rec["failures"].clone(),
            rec["fines"].clone()
        ),
        (json!(0), json!(1), json!(50))
    );
    assert_eq!(rec["rating"], json!(0.333));
    // bob's late proof is refused.
    let (s, _) = bob
        .post(
            &format!("{ROOT}/proof"),
            &json!({"proof": example_proof(&[1, 11]), "proposal_key": pk}),
        )
        .await;
    assert_eq!(s, 409);

    // carol's proposal takes alice's request (earlier than dave's at the same price).
    let c = order(
        &carol,
        "proposal",
        json!({"statement_key": stmt, "cost": 3, "eval_time": 1}),
    )
    .await;
    assert_eq!(c["request_key"], rk.as_str(), "{c}");
    let ck = c["_key"].as_str().unwrap().to_owned();

    // carol's deadline falls while the statement's only node is down: after restart it
    // is rolled back exactly once.
    server.kill9();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.restart().await;
    let start = Instant::now();
    loop {
        let v = status_of(&alice, "request", &rk).await;
        if v["status"] == "created" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "never rolled back: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status_of(&carol, "proposal", &ck).await["status"],
        "withdrawn"
    );
    // One fine of 10 × 5 for carol, once.
    wallet_becomes(&alice, "alice", (195 * U, 5 * U, 100 * U, 0)).await;
    wallet_becomes(&carol, "carol", (100 * U, 0, 50 * U, 0)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(wallet(&alice, "alice").await, (195 * U, 5 * U, 100 * U, 0));
    ledger_sums_match(&backend, &["alice", "bob", "carol", "dave"]);
    account_ledgers_match(&backend, &stmt);
}

/// Money in the books: wallets (balance + deposit), accounts on the statement (free
/// balance + deposit), what orders hold; nothing may be in flight (sent to orders not
/// placed yet, payouts not yet applied). Read once quiet.
async fn total_money(b: &Backend, api: &Api, stmt: &str, users: &[String]) -> u128 {
    let mut total = 0u128;
    for u in users.iter().map(String::as_str).chain(["#market"]) {
        let base = format!("{}:{{u:{}}}", b.prefix, u.to_lowercase());
        for f in ["balance", "deposit"] {
            total += redis_hget(b, &format!("{base}:w"), f)
                .map(|v| v.parse::<u128>().unwrap())
                .unwrap_or(0);
        }
        let out: i64 = redis_query(&b.url, redis::cmd("HLEN").arg(format!("{base}:out")));
        assert_eq!(out, 0, "{u} still has money in flight");
        // Its account on the statement: free balance and deposit (what its orders hold
        // is counted on the orders).
        for f in ["b", "d"] {
            total += redis_hget(
                b,
                &format!("{}:{{stmt:{stmt}}}:acct", b.prefix),
                &format!("{}:{f}", u.to_lowercase()),
            )
            .map(|v| v.parse::<u128>().unwrap())
            .unwrap_or(0);
        }
    }
    for side in ["request", "proposal"] {
        for o in all_orders(api, side, stmt).await {
            let key = o["_key"].as_str().unwrap();
            let held = redis_hget(b, &format!("{}:{{stmt:{stmt}}}:o:{key}", b.prefix), "held")
                .map(|v| v.parse::<u128>().unwrap())
                .unwrap_or(0);
            if matches!(o["status"].as_str(), Some("completed" | "withdrawn")) {
                assert_eq!(held, 0, "closed {side} {key} still holds money");
            }
            total += held;
        }
    }
    let pay: i64 = redis_query(
        &b.url,
        redis::cmd("XLEN").arg(format!("{}:{{stmt:{stmt}}}:pay", b.prefix)),
    );
    assert_eq!(pay, 0, "payouts not delivered");
    total
}

#[tokio::test(flavor = "multi_thread")]
async fn money_is_conserved_under_a_random_workload_with_a_kill_in_the_middle() {
    let backend = Backend::new();
    let mut server = Server::start_fixed_port_with(
        &backend,
        &[
            "--signup-credit",
            "0",
            "--signup-deposit",
            "0",
            "--minute-ms",
            "200",
            "--funding-window-ms",
            "1000",
            // Idle accounts come back to their wallets quickly: sweeps happen all
            // through the run, and once it is quiet every account is empty.
            "--sweep-after-ms",
            "500",
        ],
    )
    .await;
    let anon = server.api();
    let owner = anon.user("owner").await;
    let stmt = push_statement(&owner).await;
    let users: Vec<String> = (0..6).map(|i| format!("trader{i}")).collect();
    let mut clients = Vec::new();
    for u in &users {
        let c = anon.user(u).await;
        credit(&anon, u, 1000).await;
        let (s, v) = c
            .post(&format!("{ROOT}/producer/deposit"), &json!({"amount": 400}))
            .await;
        assert_eq!(s, 200, "{v}");
        clients.push(c);
    }
    let credited = 1000 * U * users.len() as u128;

    // Four workers place, match and withdraw at random; matches with eval_time 1 roll
    // back after 200 ms (fines); the node is killed and restarted mid-way.
    let run = |round: u64| {
        let clients = clients.clone();
        let stmt = stmt.clone();
        async move {
            let mut tasks = Vec::new();
            for w in 0..4u64 {
                let clients = clients.clone();
                let stmt = stmt.clone();
                tasks.push(tokio::spawn(async move {
                    let mut x = round * 1000 + w * 7 + 1;
                    let mut mine: Vec<(usize, &'static str, String)> = Vec::new();
                    for _ in 0..60 {
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let who = ((x >> 33) % clients.len() as u64) as usize;
                        let c = &clients[who];
                        let cost = 1 + (x >> 40) % 9;
                        let path = |side: &str| format!("{ROOT}/{side}/");
                        let r = match (x >> 20) % 5 {
                            0 | 1 => {
                                c.try_call(
                                    reqwest::Method::POST,
                                    &path("request"),
                                    Some(&json!({
                                "statement_key": stmt, "cost": cost,
                                "input": [{"field": (x >> 24) % 50 + 2}, {"field": 11}]})),
                                )
                                .await
                            }
                            2 | 3 => {
                                c.try_call(
                                    reqwest::Method::POST,
                                    &path("proposal"),
                                    Some(&json!({
                                "statement_key": stmt, "cost": cost, "eval_time": 1})),
                                )
                                .await
                            }
                            _ => match mine.pop() {
                                Some((i, side, k)) => {
                                    clients[i]
                                        .try_call(
                                            reqwest::Method::DELETE,
                                            &format!("{ROOT}/{side}/{k}"),
                                            None,
                                        )
                                        .await
                                }
                                None => continue,
                            },
                        };
                        if let Ok((200, v)) = &r {
                            if let (Some(k), Some(id)) = (v["_key"].as_str(), v["_id"].as_str()) {
                                let side = if id.starts_with("request") {
                                    "request"
                                } else {
                                    "proposal"
                                };
                                mine.push((who, side, k.to_owned()));
                            }
                        }
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        }
    };
    run(1).await;
    let second = tokio::spawn(run(2));
    tokio::time::sleep(Duration::from_millis(400)).await;
    server.kill9();
    second.await.unwrap();
    server.restart().await;
    run(3).await;

    // Quiet: wait until every match is rolled back or done, transfers resolved, payouts
    // delivered; then the books balance to the credits exactly.
    let start = Instant::now();
    loop {
        let processing = all_orders(
            &anon.with_token(owner.token.as_deref().unwrap()),
            "request",
            &stmt,
        )
        .await
        .into_iter()
        .filter(|o| o["status"] == "processing")
        .count();
        let mut in_flight = 0i64;
        for u in &users {
            in_flight += redis_query::<i64>(
                &backend.url,
                redis::cmd("HLEN").arg(format!("{}:{{u:{u}}}:out", backend.prefix)),
            );
        }
        in_flight += redis_query::<i64>(
            &backend.url,
            redis::cmd("XLEN").arg(format!("{}:{{stmt:{stmt}}}:pay", backend.prefix)),
        );
        let accounts: BTreeMap<String, String> = redis_query(
            &backend.url,
            redis::cmd("HGETALL").arg(format!("{}:{{stmt:{stmt}}}:acct", backend.prefix)),
        );
        let parked = accounts
            .iter()
            .filter(|(f, v)| (f.ends_with(":b") || f.ends_with(":d")) && *v != "0")
            .count();
        if processing == 0 && in_flight == 0 && parked == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not quiet: {processing} processing, {in_flight} in flight, {parked} accounts not swept"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let total = total_money(&backend, &owner, &stmt, &users).await;
    assert_eq!(total, credited, "money created or destroyed");
    let mut names: Vec<&str> = users.iter().map(String::as_str).collect();
    names.push("#market");
    ledger_sums_match(&backend, &names);
    account_ledgers_match(&backend, &stmt);
    // And wallets agree with what the orders hold: blocked = open requests' escrow.
    for (u, c) in users.iter().zip(&clients) {
        let (_, blocked, _, locked) = wallet(c, u).await;
        let mut held = (0u128, 0u128);
        for side in ["request", "proposal"] {
            for o in all_orders(c, side, &stmt).await {
                if o["sender"] == u.as_str()
                    && matches!(o["status"].as_str(), Some("created" | "processing"))
                {
                    let key = o["_key"].as_str().unwrap();
                    let h: u128 = redis_hget(
                        &backend,
                        &format!("{}:{{stmt:{stmt}}}:o:{key}", backend.prefix),
                        "held",
                    )
                    .unwrap()
                    .parse()
                    .unwrap();
                    if side == "request" {
                        held.0 += h
                    } else {
                        held.1 += h
                    }
                }
            }
        }
        assert_eq!((blocked, locked), held, "{u}: wallet views vs orders");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proof_is_accepted_once_and_its_bytes_are_read_by_who_paid() {
    let backend = Backend::new();
    let server = Server::start(&backend).await;
    let anon = server.api();
    let owner = anon.user("owner").await;
    let (alice, carol) = (anon.user("alice").await, anon.user("carol").await);
    let (bob, mallory) = (anon.user("bob").await, anon.user("mallory").await);
    let stmt = push_statement(&owner).await;
    let input = json!([{"field": 1}, {"field": 11}]);
    // Two requests for the same input, each matched to its own producer.
    let r1 = order(
        &alice,
        "request",
        json!({"statement_key": stmt, "cost": 5, "input": input}),
    )
    .await;
    let p1 = order(&bob, "proposal", json!({"statement_key": stmt, "cost": 5})).await;
    let r2 = order(
        &carol,
        "request",
        json!({"statement_key": stmt, "cost": 5, "input": input}),
    )
    .await;
    let p2 = order(
        &mallory,
        "proposal",
        json!({"statement_key": stmt, "cost": 5}),
    )
    .await;
    assert_eq!(p1["request_key"], r1["_key"]);
    assert_eq!(p2["request_key"], r2["_key"]);

    let eve = anon.user("eve").await;
    let proof = example_proof(&[1, 11]);
    let (s, rec) = bob
        .post(
            &format!("{ROOT}/proof"),
            &json!({"proof": proof, "proposal_key": p1["_key"]}),
        )
        .await;
    assert_eq!(s, 200, "{rec}");
    let fk = rec["_key"].as_str().unwrap().to_owned();

    // The record is public, the bytes are not: mallory and carol did not pay for it.
    for (who, api, want) in [
        ("mallory", &mallory, 403),
        ("eve", &eve, 403),
        ("alice", &alice, 200),
        ("bob", &bob, 200),
        ("owner", &owner, 200),
    ] {
        let (s, v) = api.get(&format!("{ROOT}/proof/{fk}?full=true")).await;
        assert_eq!(s, want, "{who}: {v}");
        if want == 200 {
            assert_eq!(
                v["proof"].as_str().unwrap().trim_start_matches("0x"),
                proof.trim_start_matches("0x")
            );
        }
        let (s, v) = api.get(&format!("{ROOT}/proof/{fk}")).await;
        assert_eq!(s, 200, "{who}: {v}");
        assert!(v.get("proof").is_none());
    }
    // mallory replays bob's bytes for her own match of the same input: refused (409:
    // those bytes were accepted once; or, if the owner's tick already completed carol's
    // request by bob's proof, her match is over), and she earns nothing.
    let before = wallet(&mallory, "mallory").await;
    let (s, v) = mallory
        .post(
            &format!("{ROOT}/proof"),
            &json!({"proof": proof, "proposal_key": p2["_key"]}),
        )
        .await;
    assert_eq!(s, 409, "{v}");
    let why = v["errorMessage"].as_str().unwrap();
    assert!(
        why.contains("already accepted") || why.contains("withdrawn"),
        "{v}"
    );
    // carol's matched request is completed by bob's proof (a resale paying bob), and
    // mallory is released without a fine: her collateral back, no earnings.
    let start = Instant::now();
    let r2k = r2["_key"].as_str().unwrap();
    loop {
        let v = status_of(&carol, "request", r2k).await;
        if v["status"] == "completed" {
            assert_eq!(v["proof_key"], fk.as_str(), "{v}");
            assert_eq!(v["price"], 5, "{v}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never completed: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let released = status_of(&mallory, "proposal", p2["_key"].as_str().unwrap()).await;
    assert_eq!(released["status"], "withdrawn", "{released}");
    assert!(released.get("failed").is_none(), "{released}");
    wallet_becomes(&mallory, "mallory", (before.0, 0, before.2 + before.3, 0)).await;
    let (s, rec) = carol.get(&format!("{ROOT}/producer/mallory/stats")).await;
    assert_eq!((s, rec["failures"].clone()), (200, json!(0)), "{rec}");
    // carol paid for the proof: she may read it now.
    let (s, _) = carol.get(&format!("{ROOT}/proof/{fk}?full=true")).await;
    assert_eq!(s, 200);
    // A request completed at once by the stored proof pays its producer the price it
    // was paid (5, less 0.5 %), and makes its sender a reader.
    let dave = anon.user("dave").await;
    let (bob0, dave0) = (wallet(&bob, "bob").await, wallet(&dave, "dave").await);
    let r3 = order(
        &dave,
        "request",
        json!({"statement_key": stmt, "cost": 7, "input": {"input": "1\n11"}}),
    )
    .await;
    assert_eq!(r3["price"], 5, "{r3}");
    wallet_becomes(&dave, "dave", (dave0.0 - 5 * U, 0, dave0.2, 0)).await;
    wallet_becomes(
        &bob,
        "bob",
        (bob0.0 + 5 * U - 25_000, bob0.1, bob0.2, bob0.3),
    )
    .await;
    let (_, again) = dave
        .get(&format!("{ROOT}/request/{}", r3["_key"].as_str().unwrap()))
        .await;
    assert_eq!(again["price"], 5, "{again}");
    assert_eq!(r3["status"], "completed");
    assert_eq!(r3["proof_key"], fk.as_str());
    let (s, _) = dave.get(&format!("{ROOT}/proof/{fk}?full=true")).await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn equal_proposals_go_to_the_producer_rated_better_on_the_statement() {
    let backend = Backend::new();
    let server = Server::start(&backend).await;
    let anon = server.api();
    let owner = anon.user("owner").await;
    let alice = anon.user("alice").await;
    let (bob, carol) = (anon.user("bob").await, anon.user("carol").await);
    let stmt = push_statement(&owner).await;
    // bob delivers once on this statement: his rating there is 2/3, carol's 1/2.
    order(
        &alice,
        "request",
        json!({"statement_key": stmt, "cost": 5, "input": [{"field": 1}, {"field": 11}]}),
    )
    .await;
    let p = order(&bob, "proposal", json!({"statement_key": stmt, "cost": 5})).await;
    let (s, v) = bob
        .post(
            &format!("{ROOT}/proof"),
            &json!({"proof": example_proof(&[1, 11]), "proposal_key": p["_key"]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    // carol offers first, bob later, at the same cost and time: bob's is taken first.
    let pc = order(
        &carol,
        "proposal",
        json!({"statement_key": stmt, "cost": 3}),
    )
    .await;
    let pb = order(&bob, "proposal", json!({"statement_key": stmt, "cost": 3})).await;
    let mut taken = Vec::new();
    for input in [[2, 3], [4, 5]] {
        let r = order(
            &alice,
            "request",
            json!({"statement_key": stmt, "cost": 5,
                   "input": [{"field": input[0]}, {"field": input[1]}]}),
        )
        .await;
        taken.push(r["proposal_key"].clone());
    }
    assert_eq!(taken, [pb["_key"].clone(), pc["_key"].clone()]);
    // A cheaper offer still wins whatever its producer's rating.
    let cheap = order(
        &carol,
        "proposal",
        json!({"statement_key": stmt, "cost": 2}),
    )
    .await;
    order(&bob, "proposal", json!({"statement_key": stmt, "cost": 3})).await;
    let r = order(
        &alice,
        "request",
        json!({"statement_key": stmt, "cost": 5, "input": [{"field": 6}, {"field": 7}]}),
    )
    .await;
    assert_eq!(r["proposal_key"], cheap["_key"]);
}

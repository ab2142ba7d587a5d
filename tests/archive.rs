//! History out of Redis: every transition lands in the statement's event log, the
//! owner archives closed orders, trades and proofs to a real PostgreSQL, removes them
//! from Redis after the retention, and reads fall through to PostgreSQL through any
//! node. Crashes of the node, of PostgreSQL and of Redis mid-archive lose nothing and
//! duplicate nothing; an owner paused mid-archive and taken over writes nothing stale.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// Archiver rounds in these tests: fast, so the tests wait little.
const INTERVAL_MS: &str = "50";

fn archive_args<'a>(db: &'a TestDb, retention_secs: &'a str) -> Vec<&'a str> {
    vec![
        "--database-url",
        &db.url,
        "--archive-retention-secs",
        retention_secs,
        "--archive-interval-ms",
        INTERVAL_MS,
    ]
}

/// Waits until `cond` holds, failing the test with `what` after `limit`.
async fn wait_until<F, Fut>(what: &str, limit: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t = Instant::now();
    while !cond().await {
        assert!(
            t.elapsed() < limit,
            "timed out after {limit:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn stmt_key(b: &Backend, stmt: &str, suffix: &str) -> String {
    format!("{}:{{stmt:{stmt}}}{suffix}", b.prefix)
}

fn redis_exists(b: &Backend, key: &str) -> bool {
    redis_query::<i64>(&b.url, redis::cmd("EXISTS").arg(key)) == 1
}

fn redis_u64(b: &Backend, key: &str) -> u64 {
    redis_query::<Option<u64>>(&b.url, redis::cmd("GET").arg(key)).unwrap_or(0)
}

/// The archive has every event of the statement, and Redis knows it (the log keeps
/// archived events only for the resume window of live streams, then trims them).
async fn archive_caught_up(b: &Backend, db: &TestDb, stmt: &str) -> bool {
    let appended = redis_u64(b, &stmt_key(b, stmt, ":evseq"));
    let archived = redis_u64(b, &stmt_key(b, stmt, ":archived"));
    let pending = appended - archived.min(appended);
    let cursor = query_i64(
        &db.url,
        &format!(
            "SELECT COALESCE(MAX(event_seq), 0) FROM archive_cursor WHERE statement_key = {stmt}"
        ),
    )
    .await as u64;
    appended > 0 && cursor == appended && pending == 0
}

async fn place(api: &Api, kind: &str, body: Value) -> Value {
    let (s, v) = api.post(&format!("{ROOT}/{kind}/"), &body).await;
    assert_eq!(s, 200, "{kind} {body}: {v}");
    v
}

fn key_of(v: &Value) -> String {
    v["_key"]
        .as_str()
        .unwrap_or_else(|| panic!("no _key: {v}"))
        .to_owned()
}

/// Every order of `kind` of `stmt` by key, as node `api` lists them.
async fn listed(api: &Api, kind: &str, stmt: &str) -> BTreeMap<String, Value> {
    all_orders(api, kind, stmt)
        .await
        .into_iter()
        .map(|o| (key_of(&o), o))
        .collect()
}

/// A GET that must succeed; a 503 (a store reconnecting after a crash) is retried as a
/// client does on `Retry-After`.
async fn get_ok(api: &Api, path: &str) -> Value {
    for _ in 0..20 {
        let (s, v) = api.get(path).await;
        if s == 503 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        assert_eq!(s, 200, "GET {path}: {v}");
        return v;
    }
    panic!("GET {path}: 503 for 5 s");
}

#[tokio::test(flavor = "multi_thread")]
async fn archived_history_reads_the_same_through_any_node() {
    let b = Backend::new();
    let db = TestDb::new().await;
    let args = archive_args(&db, "1");
    let a = Server::start_with(&b, &args).await;
    let other = Server::start_with(&b, &args).await;
    let alice = a.api().user("alice").await;
    let bob = a.api().user("bob").await;
    let stmt = push_statement(&alice).await;

    // A match proved, a proposal withdrawn, a request left open, and a request for the
    // proved input, completed at once.
    let req = place(
        &alice,
        "request",
        json!({"statement_key": stmt, "cost": 2, "input": [{"field": 1}, {"field": 11}]}),
    )
    .await;
    let prop = place(&bob, "proposal", json!({"statement_key": stmt, "cost": 2})).await;
    let (rk, pk) = (key_of(&req), key_of(&prop));
    let (s, proof) = bob
        .post(
            &format!("{ROOT}/proof"),
            &json!({"proposal_key": pk, "proof": example_proof(&[1, 11])}),
        )
        .await;
    assert_eq!(s, 200, "{proof}");
    let fk = key_of(&proof);
    let gone = key_of(
        &place(
            &alice,
            "proposal",
            json!({"statement_key": stmt, "cost": 50}),
        )
        .await,
    );
    let (s, v) = alice.delete(&format!("{ROOT}/proposal/{gone}")).await;
    assert_eq!(s, 200, "{v}");
    let open = key_of(
        &place(
            &alice,
            "request",
            json!({"statement_key": stmt, "cost": 1, "input": [{"field": 2}, {"field": 3}]}),
        )
        .await,
    );
    let again = place(
        &alice,
        "request",
        json!({"statement_key": stmt, "cost": 3, "input": [{"field": 1}, {"field": 11}]}),
    )
    .await;
    assert_eq!(again["status"], "completed", "{again}");
    assert_eq!(again["proof_key"], fk.as_str());
    let again = key_of(&again);

    // What every node answers while Redis holds everything.
    let orders = [
        ("request", &rk),
        ("proposal", &pk),
        ("proposal", &gone),
        ("request", &open),
        ("request", &again),
    ];
    let mut before = Vec::new();
    for (kind, k) in orders {
        before.push(get_ok(&alice, &format!("{ROOT}/{kind}/{k}")).await);
    }
    let proof_before = get_ok(&alice, &format!("{ROOT}/proof/{fk}?full=true")).await;
    let requests_before = listed(&alice, "request", &stmt).await;
    let proposals_before = listed(&alice, "proposal", &stmt).await;
    assert_eq!(requests_before.len(), 3);

    // Archived, then removed from Redis after the retention (1 s); the open request stays.
    wait_until(
        "the closed records leave Redis",
        Duration::from_secs(30),
        || async {
            [&rk, &pk, &gone, &again]
                .iter()
                .all(|k| !redis_exists(&b, &stmt_key(&b, &stmt, &format!(":o:{k}"))))
                && !redis_exists(&b, &stmt_key(&b, &stmt, &format!(":proof:{fk}")))
        },
    )
    .await;
    assert!(redis_exists(
        &b,
        &stmt_key(&b, &stmt, &format!(":o:{open}"))
    ));
    // Keys name their statement through their block: no locator per order or proof.
    for k in [&rk, &pk, &gone, &again, &fk] {
        assert!(
            !redis_exists(&b, &format!("{}:loc:{k}", b.prefix)),
            "locator of {k} written"
        );
    }
    let blocks: u64 = redis_query(
        &b.url,
        redis::cmd("ZCARD").arg(format!("{}:blocks", b.prefix)),
    );
    assert!(
        (1..=4).contains(&blocks),
        "{blocks} key blocks for a handful of orders"
    );
    assert!(archive_caught_up(&b, &db, &stmt).await);

    // PostgreSQL holds each record once, the proof's bytes with it.
    let count = |sql: String| {
        let url = db.url.clone();
        async move { query_i64(&url, &sql).await }
    };
    assert_eq!(count("SELECT count(*) FROM orders".into()).await, 5);
    assert_eq!(count("SELECT count(*) FROM trades".into()).await, 1);
    assert_eq!(count("SELECT count(*) FROM proofs".into()).await, 1);
    assert_eq!(
        count(format!(
            "SELECT length(proof)::bigint FROM proofs WHERE key = {fk}"
        ))
        .await as usize,
        (example_proof(&[1, 11]).len() - 2) / 2
    );

    // Every node answers the same as before, from PostgreSQL.
    for node in [&a, &other] {
        let api = alice.at(&node.url);
        for ((kind, k), want) in orders.iter().zip(&before) {
            assert_eq!(
                &get_ok(&api, &format!("{ROOT}/{kind}/{k}")).await,
                want,
                "{kind} {k} via {}",
                node.url
            );
        }
        assert_eq!(
            get_ok(&api, &format!("{ROOT}/proof/{fk}?full=true")).await,
            proof_before
        );
        assert_eq!(listed(&api, "request", &stmt).await, requests_before);
        assert_eq!(listed(&api, "proposal", &stmt).await, proposals_before);
        // Filters on archived records: status, sender, pages.
        let q = urlencode(r#"[{"key":"status","value":"completed"}]"#);
        let done = get_ok(&api, &format!("{ROOT}/request/?q={q}&limit=10")).await;
        let keys: Vec<&str> = done
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o["_key"].as_str())
            .collect();
        assert_eq!(keys, vec![rk.as_str(), again.as_str()]);
        let page = get_ok(&api, &format!("{ROOT}/request/?q={q}&limit=1&skipped=1")).await;
        assert_eq!(page[0]["_key"], again.as_str(), "{page}");
        // alice's withdrawn proposal; bob produced the proved one.
        let q = urlencode(r#"[{"key":"sender","value":"alice"}]"#);
        assert_eq!(
            get_ok(&api, &format!("{ROOT}/proposal/?q={q}"))
                .await
                .as_array()
                .unwrap()
                .len(),
            1
        );
        // An archived order still refuses what its state refuses.
        let (s, v) = api.delete(&format!("{ROOT}/request/{rk}")).await;
        assert_eq!(s, 409, "{v}");
    }
    // An order that never existed is still a 404.
    let (s, _) = alice.get(&format!("{ROOT}/request/999999999")).await;
    assert_eq!(s, 404);
    let archived: u64 = [a.health().await, other.health().await]
        .iter()
        .map(|h| h["archive"]["archived_events"].as_u64().unwrap())
        .sum();
    assert!(archived > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_records_stay_in_redis_for_the_retention() {
    let b = Backend::new();
    let db = TestDb::new().await;
    let node = Server::start_with(&b, &archive_args(&db, "3600")).await;
    let al = node.api().user("al").await;
    let stmt = push_statement(&al).await;
    let p = key_of(&place(&al, "proposal", json!({"statement_key": stmt, "cost": 5})).await);
    let (s, v) = al.delete(&format!("{ROOT}/proposal/{p}")).await;
    assert_eq!(s, 200, "{v}");
    wait_until("the archive catches up", Duration::from_secs(20), || {
        archive_caught_up(&b, &db, &stmt)
    })
    .await;
    assert_eq!(
        query_i64(
            &db.url,
            &format!("SELECT count(*) FROM orders WHERE key = {p} AND status = 'withdrawn'")
        )
        .await,
        1
    );
    // In PostgreSQL, trimmed from the log, marked for removal, but still in Redis.
    assert!(redis_exists(&b, &stmt_key(&b, &stmt, &format!(":o:{p}"))));
    let marked: Option<f64> = redis_query(
        &b.url,
        redis::cmd("ZSCORE")
            .arg(stmt_key(&b, &stmt, ":closed"))
            .arg(format!("o:{p}")),
    );
    assert!(marked.is_some());
    let health = node.health().await;
    assert_eq!(health["archive"]["removed_records"], 0, "{health}");
    assert_eq!(health["archive"]["postgres"], "reachable", "{health}");
}

/// Orders made before key blocks existed are found through their locators, and a
/// closed one's locator goes with its record after the retention.
#[tokio::test(flavor = "multi_thread")]
async fn orders_made_before_key_blocks_are_found_through_their_locators() {
    let b = Backend::new();
    let db = TestDb::new().await;
    let node = Server::start_with(&b, &archive_args(&db, "1")).await;
    let al = node.api().user("al").await;
    let stmt = push_statement(&al).await;
    let open = key_of(&place(&al, "proposal", json!({"statement_key": stmt, "cost": 5})).await);
    let closed = key_of(&place(&al, "proposal", json!({"statement_key": stmt, "cost": 6})).await);
    // As an older node left them: no blocks, a locator per order.
    let _: i64 = redis_query(
        &b.url,
        redis::cmd("DEL").arg(format!("{}:blocks", b.prefix)),
    );
    for k in [&open, &closed] {
        let _: () = redis_query(
            &b.url,
            redis::cmd("SET")
                .arg(format!("{}:loc:{k}", b.prefix))
                .arg(&stmt),
        );
        let v = get_ok(&al, &format!("{ROOT}/proposal/{k}")).await;
        assert_eq!(v["_key"], k.as_str());
    }
    let (s, v) = al.delete(&format!("{ROOT}/proposal/{closed}")).await;
    assert_eq!(s, 200, "{v}");
    wait_until(
        "the closed order and its locator leave Redis",
        Duration::from_secs(30),
        || async {
            !redis_exists(&b, &stmt_key(&b, &stmt, &format!(":o:{closed}")))
                && !redis_exists(&b, &format!("{}:loc:{closed}", b.prefix))
        },
    )
    .await;
    assert!(redis_exists(&b, &format!("{}:loc:{open}", b.prefix)));
    let v = get_ok(&al, &format!("{ROOT}/proposal/{closed}")).await;
    assert_eq!(v["status"], "withdrawn");
    let v = get_ok(&al, &format!("{ROOT}/proposal/{open}")).await;
    assert_eq!(v["status"], "created");
}

/// Places a proposal and withdraws it (a closed record) `n` times from one client;
/// returns the keys whose placement was acknowledged. Connection failures and 5xx end
/// nothing: the node may be down for a while.
async fn churn(api: Api, stmt: String, n: usize) -> Vec<String> {
    let mut acked = Vec::new();
    for i in 0..n {
        let body = json!({"statement_key": stmt, "cost": 10 + (i % 7)});
        let placed = api
            .try_call(
                reqwest::Method::POST,
                &format!("{ROOT}/proposal/"),
                Some(&body),
            )
            .await;
        match placed {
            Ok((200, v)) => {
                let k = key_of(&v);
                let _ = api
                    .try_call(
                        reqwest::Method::DELETE,
                        &format!("{ROOT}/proposal/{k}"),
                        None,
                    )
                    .await;
                acked.push(k);
            }
            Ok((s, v)) if s < 500 => panic!("unexpected {s}: {v}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    acked
}

/// Every acknowledged order is readable (Redis or PostgreSQL), PostgreSQL holds each
/// once, and the archive has every event of the log.
async fn nothing_lost_nothing_twice(
    b: &Backend,
    db: &TestDb,
    api: &Api,
    stmt: &str,
    acked: &[String],
) {
    wait_until("the archive catches up", Duration::from_secs(60), || {
        archive_caught_up(b, db, stmt)
    })
    .await;
    for k in acked {
        let v = get_ok(api, &format!("{ROOT}/proposal/{k}")).await;
        assert_eq!(v["_key"], k.as_str());
    }
    let in_pg = query_i64(
        &db.url,
        &format!(
            "SELECT count(*) FROM orders WHERE statement_key = {stmt} AND key IN ({})",
            acked.join(",")
        ),
    )
    .await;
    assert_eq!(
        in_pg as usize,
        acked.len(),
        "every acknowledged order in PostgreSQL"
    );
    // Every order the log told of is in PostgreSQL (placements whose answer was lost too).
    let placed_in_redis: i64 =
        redis_query(&b.url, redis::cmd("GET").arg(format!("{}:seq", b.prefix)));
    assert!(placed_in_redis > 0);
    let pg_all = query_i64(
        &db.url,
        &format!("SELECT count(*) FROM orders WHERE statement_key = {stmt}"),
    )
    .await;
    assert!(pg_all as usize >= acked.len());
    // The statement's ledger is archived too: each account field in Redis is the sum of
    // its movements in PostgreSQL (the log is trimmed once archived). An idle account
    // may be swept meanwhile: compare again once the archive has that too.
    let start = Instant::now();
    loop {
        let mismatch = ledger_mismatch(b, db, stmt).await;
        let Some(why) = mismatch else { break };
        assert!(start.elapsed() < Duration::from_secs(30), "{why}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        wait_until("the archive catches up", Duration::from_secs(60), || {
            archive_caught_up(b, db, stmt)
        })
        .await;
    }
    wallet_ledger_archived(b, db, "al").await;
}

/// The wallet ledger is archived as well: once quiet, `user`'s wallet ledger in Redis is
/// empty, its balance and deposit are the sums of its archived entries (each entry once:
/// keyed by its stream id), and the archiver forgot the wallet (its marks are gone).
async fn wallet_ledger_archived(b: &Backend, db: &TestDb, user: &str) {
    let base = format!("{}:{{u:{user}}}", b.prefix);
    let start = Instant::now();
    loop {
        let why = wallet_ledger_mismatch(b, db, &base, user).await;
        let Some(why) = why else { break };
        assert!(start.elapsed() < Duration::from_secs(45), "{user}: {why}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn wallet_ledger_mismatch(
    b: &Backend,
    db: &TestDb,
    base: &str,
    user: &str,
) -> Option<String> {
    let led = format!("{base}:led");
    let pending: u64 = redis_query(&b.url, redis::cmd("XLEN").arg(&led));
    if pending > 0 {
        return Some(format!("{pending} ledger entries not archived yet"));
    }
    let w: (Option<String>, Option<String>) = redis_query(
        &b.url,
        redis::cmd("HMGET")
            .arg(format!("{base}:w"))
            .arg("balance")
            .arg("deposit"),
    );
    let sums = rows(
        &db.url,
        &format!(
            "SELECT COALESCE(SUM(balance), 0)::text, COALESCE(SUM(deposit), 0)::text, count(*) \
             FROM wallet_ledger WHERE user_name = '{user}'"
        ),
    )
    .await;
    let (bal, dep, n): (String, String, i64) = (sums[0].get(0), sums[0].get(1), sums[0].get(2));
    let again: u64 = redis_query(&b.url, redis::cmd("XLEN").arg(&led));
    if again > 0 {
        return Some("a new ledger entry meanwhile".into());
    }
    let have = (
        w.0.unwrap_or_else(|| "0".into()),
        w.1.unwrap_or_else(|| "0".into()),
    );
    if have != (bal.clone(), dep.clone()) || n == 0 {
        return Some(format!(
            "wallet (balance, deposit) {have:?}, sums of its {n} archived entries ({bal}, {dep})"
        ));
    }
    let marks: u64 = redis_query(
        &b.url,
        redis::cmd("ZCARD").arg(format!("{}:{{wallets}}:led-first", b.prefix)),
    );
    (marks > 0).then(|| format!("{marks} wallets still marked for the archiver"))
}

/// Where Redis's accounts on `stmt` and the sums of the archived ledger differ, if
/// anywhere.
async fn ledger_mismatch(b: &Backend, db: &TestDb, stmt: &str) -> Option<String> {
    let accounts: BTreeMap<String, String> = redis_query(
        &b.url,
        redis::cmd("HGETALL").arg(stmt_key(b, stmt, ":acct")),
    );
    let mut checked = 0;
    for (field, v) in &accounts {
        let Some((user, which)) = field.rsplit_once(':') else {
            continue;
        };
        let column = match which {
            "b" => "balance",
            "k" => "blocked",
            "d" => "deposit",
            "l" => "locked",
            _ => continue,
        };
        let sum = query_i64(
            &db.url,
            &format!(
                "SELECT COALESCE(SUM({column}), 0)::bigint FROM ledger \
                 WHERE statement_key = {stmt} AND user_name = '{user}'"
            ),
        )
        .await;
        if sum.to_string() != *v {
            return Some(format!("{field}: Redis {v}, archived ledger {sum}"));
        }
        checked += 1;
    }
    (checked == 0).then(|| format!("no account to check: {accounts:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_killed_mid_archive_loses_nothing_and_duplicates_nothing() {
    let b = Backend::new();
    let db = TestDb::new().await;
    let mut node = Server::start_fixed_port_with(&b, &archive_args(&db, "1")).await;
    let al = node.api().user("al").await;
    let stmt = push_statement(&al).await;
    let clients: Vec<_> = (0..4)
        .map(|_| tokio::spawn(churn(al.clone(), stmt.clone(), 150)))
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    node.kill9();
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.restart().await;
    let mut acked = Vec::new();
    for c in clients {
        acked.extend(c.await.unwrap());
    }
    assert!(acked.len() > 100, "{}", acked.len());
    nothing_lost_nothing_twice(&b, &db, &al, &stmt, &acked).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_killed_mid_archive_loses_nothing_and_redis_keeps_what_it_lacks() {
    let b = Backend::new();
    let mut pg = OwnPostgres::start();
    let db = TestDb::on(&pg).await;
    let node = Server::start_with(&b, &archive_args(&db, "1")).await;
    let al = node.api().user("al").await;
    let stmt = push_statement(&al).await;
    let mut acked = churn(al.clone(), stmt.clone(), 40).await;
    pg.kill9();
    // The market goes on without its history database.
    let during = churn(al.clone(), stmt.clone(), 40).await;
    assert_eq!(
        during.len(),
        40,
        "orders are taken while PostgreSQL is down"
    );
    wait_until(
        "the node reports PostgreSQL down",
        Duration::from_secs(20),
        || async {
            let h = node.health().await;
            h["archive"]["postgres"] == "unreachable"
                && h["archive"]["errors"].as_u64().unwrap_or(0) > 0
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Nothing PostgreSQL lacks has left Redis (the retention, 1 s, has passed).
    for k in &during {
        assert!(
            redis_exists(&b, &stmt_key(&b, &stmt, &format!(":o:{k}"))),
            "order {k} left Redis before PostgreSQL had it"
        );
    }
    let lag = node.health().await["archive"]["lag_ms"].as_u64().unwrap();
    assert!(lag >= 1000, "lag {lag} ms while PostgreSQL is down");
    pg.start_again();
    acked.extend(during);
    nothing_lost_nothing_twice(&b, &db, &al, &stmt, &acked).await;
    wait_until(
        "the closed records leave Redis",
        Duration::from_secs(30),
        || async {
            acked
                .iter()
                .all(|k| !redis_exists(&b, &stmt_key(&b, &stmt, &format!(":o:{k}"))))
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_killed_mid_archive_loses_nothing_and_duplicates_nothing() {
    let mut redis = OwnRedis::start();
    let b = Backend::on(redis.url());
    let db = TestDb::new().await;
    let node = Server::start_with(&b, &archive_args(&db, "1")).await;
    let al = node.api().user("al").await;
    let stmt = push_statement(&al).await;
    let clients: Vec<_> = (0..3)
        .map(|_| tokio::spawn(churn(al.clone(), stmt.clone(), 120)))
        .collect();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    redis.crash_and_restart();
    let mut acked = Vec::new();
    for c in clients {
        acked.extend(c.await.unwrap());
    }
    assert!(acked.len() > 100, "{}", acked.len());
    nothing_lost_nothing_twice(&b, &db, &al, &stmt, &acked).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_owner_paused_mid_archive_is_taken_over_without_gaps_or_stale_writes() {
    let b = Backend::new();
    let db = TestDb::new().await;
    let mut args = archive_args(&db, "1");
    args.extend(["--lease-ms", "1000"]);
    let n1 = Server::start_with(&b, &args).await;
    let n2 = Server::start_with(&b, &args).await;
    let al = n1.api().user("al").await;
    let stmt = push_statement(&al).await;
    let owner_of = || async {
        let (n1o, n2o) = (n1.owned().await, n2.owned().await);
        (n1o.contains(&stmt), n2o.contains(&stmt))
    };
    wait_until(
        "one node owns the statement",
        Duration::from_secs(10),
        || async {
            let (x, y) = owner_of().await;
            x != y
        },
    )
    .await;
    let (first_owns, _) = owner_of().await;
    let (owner, survivor) = if first_owns { (&n1, &n2) } else { (&n2, &n1) };
    let token_before = query_i64(
        &db.url,
        &format!("SELECT COALESCE(MAX(fence), 0) FROM archive_cursor WHERE statement_key = {stmt}"),
    )
    .await;
    let at_survivor = al.at(&survivor.url);
    let clients: Vec<_> = (0..3)
        .map(|_| tokio::spawn(churn(at_survivor.clone(), stmt.clone(), 100)))
        .collect();
    tokio::time::sleep(Duration::from_millis(800)).await;
    // Paused mid-archive: its lease expires, the survivor takes over; then it wakes up
    // with its old token.
    owner.pause();
    wait_until(
        "the survivor takes the statement",
        Duration::from_secs(20),
        || async { survivor.owned().await.contains(&stmt) },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    owner.resume();
    let mut acked = Vec::new();
    for c in clients {
        acked.extend(c.await.unwrap());
    }
    nothing_lost_nothing_twice(&b, &db, &at_survivor, &stmt, &acked).await;
    // The archive ends under a token no newer than the statement's (a stale owner's
    // write is refused once a newer one has written: `stale_owners_cannot_write`).
    let token_after = query_i64(
        &db.url,
        &format!("SELECT fence FROM archive_cursor WHERE statement_key = {stmt}"),
    )
    .await;
    assert!(token_after >= token_before);
    assert!(token_after as u64 <= redis_u64(&b, &stmt_key(&b, &stmt, ":fence")));
}

/// The archive's own guarantees, through the library against a real PostgreSQL: a
/// replayed batch writes nothing twice, a stale owner's batch is refused once a newer
/// owner has written, and a statement never seen is copied before its events apply.
#[tokio::test(flavor = "multi_thread")]
async fn stale_owners_cannot_write_and_replays_write_nothing_twice() {
    use proof_market::archive::{Applied, Archive, ArchiveConfig, Batch};
    use proof_market::domain::{Cost, Key, Millis, Side, Status};
    use proof_market::store::{Event, EventKind, OrderRecord};

    let db = TestDb::new().await;
    let archive = Archive::open(ArchiveConfig {
        url: db.url.clone(),
        pool: 2,
        ca_file: None,
        retention: Duration::from_secs(60),
        interval: Duration::from_millis(100),
    })
    .await
    .unwrap();
    let order = |key: u64, status: Status| OrderRecord {
        key: Key(key),
        side: Side::Proposal,
        statement: Key(7),
        cost: Cost::from_micros(5_000_000).unwrap(),
        eval_time: None,
        wait_period: None,
        sender: "al".into(),
        created: Millis(1000 + key),
        updated: Millis(1000 + key),
        status,
        seq: key,
        input: None,
        canon: None,
        counterpart: None,
        matched_time: None,
        price: None,
        proof_key: None,
        held: 0,
        funded_at: None,
        failed: None,
    };
    let events: Vec<Event> = (1..=3)
        .map(|n| Event {
            id: format!("{n}-0"),
            n,
            at: Millis(1000 + n),
            what: EventKind::Placed(Box::new(order(100 + n, Status::Created))),
        })
        .chain(std::iter::once(Event {
            id: "4-0".into(),
            n: 4,
            at: Millis(2000),
            what: EventKind::Withdrawn {
                side: Side::Proposal,
                key: Key(101),
            },
        }))
        .collect();
    // Batches borrow what they write; leaked here so each call can build its own.
    let proofs: &'static std::collections::HashMap<_, _> = Box::leak(Box::default());
    let batch =
        |fence: u64, events: &'static [Event], copy: Option<(u64, &'static [OrderRecord])>| Batch {
            statement: Key(7),
            fence,
            events,
            proofs,
            copy,
        };
    let events: &'static [Event] = Box::leak(events.into_boxed_slice());
    // Never seen: a copy first (here, an order placed before the log existed).
    assert_eq!(
        archive.apply(&batch(2, &events[..2], None)).await.unwrap(),
        Applied::NeedsCopy
    );
    let legacy: &'static [OrderRecord] =
        Box::leak(vec![order(50, Status::Withdrawn)].into_boxed_slice());
    assert_eq!(
        archive
            .apply(&batch(2, &events[..2], Some((0, legacy))))
            .await
            .unwrap(),
        Applied::Committed {
            cursor: 2,
            applied: 2
        }
    );
    // The same batch again (a crash before the log was trimmed): nothing new.
    assert_eq!(
        archive.apply(&batch(2, &events[..2], None)).await.unwrap(),
        Applied::Committed {
            cursor: 2,
            applied: 0
        }
    );
    // Overlapping: only the new events apply.
    assert_eq!(
        archive.apply(&batch(3, events, None)).await.unwrap(),
        Applied::Committed {
            cursor: 4,
            applied: 2
        }
    );
    // A stale owner (token 2 < 3) is refused and changes nothing, even with new events.
    let later: &'static [Event] = Box::leak(
        vec![Event {
            id: "5-0".into(),
            n: 5,
            at: Millis(3000),
            what: EventKind::Placed(Box::new(order(105, Status::Created))),
        }]
        .into_boxed_slice(),
    );
    assert_eq!(
        archive.apply(&batch(2, later, None)).await.unwrap(),
        Applied::Fenced { by: 3 }
    );
    let count = |sql: &'static str| {
        let url = db.url.clone();
        async move { query_i64(&url, sql).await }
    };
    assert_eq!(count("SELECT count(*) FROM orders").await, 4);
    assert_eq!(
        count("SELECT count(*) FROM orders WHERE key = 105").await,
        0
    );
    assert_eq!(
        count("SELECT event_seq FROM archive_cursor WHERE statement_key = 7").await,
        4
    );
    assert_eq!(
        count("SELECT count(*) FROM orders WHERE key = 101 AND status = 'withdrawn'").await,
        1
    );
    // A gap in the log (events lost to its cap) asks for a copy again.
    let gap: &'static [Event] = Box::leak(
        vec![Event {
            id: "9-0".into(),
            n: 9,
            at: Millis(3000),
            what: EventKind::Placed(Box::new(order(109, Status::Created))),
        }]
        .into_boxed_slice(),
    );
    assert_eq!(
        archive.apply(&batch(3, gap, None)).await.unwrap(),
        Applied::NeedsCopy
    );
    // A closed order is final: a replayed older event does not reopen it.
    let reopen: &'static [Event] = Box::leak(
        vec![Event {
            id: "10-0".into(),
            n: 10,
            at: Millis(3000),
            what: EventKind::Placed(Box::new(order(101, Status::Created))),
        }]
        .into_boxed_slice(),
    );
    let empty: &'static [OrderRecord] = &[];
    archive
        .apply(&batch(3, reopen, Some((9, empty))))
        .await
        .unwrap();
    assert_eq!(
        count("SELECT count(*) FROM orders WHERE key = 101 AND status = 'withdrawn'").await,
        1
    );
}

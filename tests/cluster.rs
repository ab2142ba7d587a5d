//! Scale-out end to end: several market nodes over a Redis Cluster (three masters on
//! loopback) or over one Redis. Any node answers any call; each statement's matcher
//! runs on one node; killing, pausing or stopping a node moves its statements without
//! losing an acknowledged order or matching one twice.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use common::*;
use market_invariants::AckedOrder;
use reqwest::Method;
use serde_json::json;

/// Short leases keep the tests quick: a dead node's statements move within ~1.5 s.
const LEASE_MS: &str = "1500";

async fn start_nodes(b: &Backend, n: usize) -> Vec<Server> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(Server::start_with(b, &["--lease-ms", LEASE_MS]).await);
    }
    v
}

/// Statement → (owner by rendezvous, lease holder), and the live node ids.
async fn ownership(api: &Api) -> (BTreeMap<String, (String, Option<String>)>, Vec<String>) {
    let (s, v) = api.get(&format!("{ROOT}/cluster")).await;
    assert_eq!(s, 200, "{v}");
    let nodes = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect();
    let stmts = v["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["statement"].as_str().unwrap().to_owned(),
                (
                    s["owner"].as_str().unwrap_or_default().to_owned(),
                    s["lease_holder"].as_str().map(str::to_owned),
                ),
            )
        })
        .collect();
    (stmts, nodes)
}

/// Waits until `live` nodes are up and every statement's lease is held by its owner.
async fn settle(api: &Api, live: usize) -> BTreeMap<String, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (stmts, nodes) = ownership(api).await;
        let settled = nodes.len() == live
            && stmts
                .values()
                .all(|(owner, holder)| holder.as_deref() == Some(owner.as_str()));
        if settled {
            return stmts.into_iter().map(|(k, (o, _))| (k, o)).collect();
        }
        assert!(
            Instant::now() < deadline,
            "ownership did not settle in 30 s: nodes {nodes:?}, statements {stmts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[derive(Default, Debug)]
struct Outcome {
    /// Every acknowledged order, as its answer described it.
    acked: Vec<AckedOrder>,
    unavailable: u64,
    unreachable: u64,
    withdrawn: u64,
    /// When the last 503 was seen.
    last_unavailable: Option<Instant>,
}

impl Outcome {
    /// Waits for every client and adds their outcomes up.
    async fn gather(tasks: Vec<tokio::task::JoinHandle<Outcome>>) -> Outcome {
        let mut all = Outcome::default();
        for t in tasks {
            let o = t.await.unwrap();
            all.acked.extend(o.acked);
            all.unavailable += o.unavailable;
            all.unreachable += o.unreachable;
            all.withdrawn += o.withdrawn;
            all.last_unavailable = all.last_unavailable.max(o.last_unavailable);
        }
        all
    }
}

/// One client: orders until `until`, spread over `statements` and over the nodes in
/// `apis` (round robin), each under an `Idempotency-Key` of its own, as the CLI sends
/// them. A 503 is resent (same key) after a pause; a node that refuses connections or
/// drops the call is dropped from the client's list and the order resent (same key) to
/// another. Anything else but 200 fails the test.
async fn client(apis: Vec<Api>, statements: Vec<String>, id: u64, until: Instant) -> Outcome {
    let mut out = Outcome::default();
    let mut alive: Vec<Api> = apis;
    let mut seed = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for i in 0.. {
        if Instant::now() >= until {
            break;
        }
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let stmt = &statements[(seed >> 13) as usize % statements.len()];
        let cost = 1 + (seed >> 33) % 9;
        let (kind, body) = if (seed >> 40).is_multiple_of(2) {
            (
                "request",
                json!({"statement_key": stmt, "cost": cost, "input": [{"field": 1_000_000 + i}, {"field": 1000 + id}]}),
            )
        } else {
            (
                "proposal",
                json!({"statement_key": stmt, "cost": cost as f64 - 0.5}),
            )
        };
        let idempotency_key = format!("client-{id}-order-{i}");
        let mut attempts = 0;
        let v = loop {
            attempts += 1;
            assert!(attempts < 300, "order {i} of client {id} never got through");
            assert!(!alive.is_empty(), "client {id}: every node is gone");
            let api = &alive[(i as usize + id as usize) % alive.len()];
            match api
                .try_call_keyed(
                    Method::POST,
                    &format!("{ROOT}/{kind}"),
                    Some(&body),
                    Some(&idempotency_key),
                )
                .await
            {
                Ok((200, v)) => break v,
                Ok((503, v)) => {
                    if out.unavailable < 3 {
                        eprintln!("client {id}: 503 {v}");
                    }
                    out.unavailable += 1;
                    out.last_unavailable = Some(Instant::now());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok((s, v)) => panic!("client {id}: {s} {v}"),
                Err(_) => {
                    // The node is gone; the call may or may not have been taken, and
                    // the key makes resending it elsewhere safe.
                    out.unreachable += 1;
                    let base = api.base.clone();
                    alive.retain(|a| a.base != base);
                }
            }
        };
        let key = v["_key"].as_str().unwrap().to_owned();
        if (seed >> 50).is_multiple_of(8) && v["status"] == "created" {
            let api = &alive[i as usize % alive.len()];
            if let Ok((s, w)) = api
                .try_call(Method::DELETE, &format!("{ROOT}/{kind}/{key}"), None)
                .await
            {
                assert!(s == 200 || s == 409 || s == 503, "withdraw: {s} {w}");
                out.withdrawn += u64::from(s == 200);
            }
        }
        out.acked.push(common::acked(&v));
    }
    out
}

/// Checks every invariant on what `backend` holds, that each acknowledged order is
/// listed (through `api`) under its statement, and that nothing else is: every order
/// was sent under its own Idempotency-Key until acknowledged, so a stored order nobody
/// holds an acknowledgement for was placed twice. Returns the number of matches.
async fn check_all(
    backend: &Backend,
    api: &Api,
    statements: &[String],
    acked: &[AckedOrder],
) -> usize {
    let mut stored: HashSet<(String, String, String)> = HashSet::new();
    for stmt in statements {
        let requests = all_orders(api, "request", stmt).await;
        let proposals = all_orders(api, "proposal", stmt).await;
        for (kind, list) in [("request", &requests), ("proposal", &proposals)] {
            for o in list.iter() {
                stored.insert((
                    kind.into(),
                    o["_key"].as_str().unwrap().to_owned(),
                    o["statement_key"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    let listed: HashSet<(String, String, String)> = acked
        .iter()
        .map(|a| {
            (
                a.kind.as_str().to_owned(),
                a.key.to_string(),
                a.statement.to_string(),
            )
        })
        .collect();
    for a in &listed {
        assert!(stored.contains(a), "acknowledged order lost: {a:?}");
    }
    let extra: Vec<_> = stored.iter().filter(|s| !listed.contains(s)).collect();
    assert!(extra.is_empty(), "orders placed twice: {extra:?}");
    let checked = assert_invariants(backend, acked);
    assert_eq!(
        checked.orders,
        stored.len(),
        "Redis holds orders the nodes do not list"
    );
    checked.matches
}

/// Three nodes under a concurrent workload; one is killed with SIGKILL mid-way.
async fn three_nodes_survive_a_kill(backend: Backend) {
    let mut nodes = start_nodes(&backend, 3).await;
    let root = nodes[0].api();
    let mut users = Vec::new();
    for u in 0..3 {
        users.push(root.user(&format!("trader{u}")).await);
    }
    let mut statements = Vec::new();
    for _ in 0..6 {
        statements.push(push_statement(&users[0]).await);
    }
    let owners = settle(&users[0], 3).await;
    let by_node: Vec<String> = {
        let mut v = Vec::new();
        for n in &nodes {
            v.push(n.health().await["node"].as_str().unwrap().to_owned());
        }
        v
    };
    // Kill a node that owns something, so that something has to move.
    let victim = (0..3)
        .find(|i| owners.values().any(|o| *o == by_node[*i]))
        .unwrap();
    eprintln!("owners before: {owners:?}; killing {}", by_node[victim]);

    let mut tasks = Vec::new();
    let until = Instant::now() + Duration::from_secs(5);
    for c in 0..6u64 {
        let api = &users[c as usize % 3];
        let apis = nodes.iter().map(|n| api.at(&n.url)).collect();
        tasks.push(tokio::spawn(client(apis, statements.clone(), c, until)));
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    nodes[victim].kill9();
    let killed = Instant::now();
    let all = Outcome::gather(tasks).await;
    let survivor = (0..3).find(|i| *i != victim).unwrap();
    let api = users[0].at(&nodes[survivor].url);
    let after = settle(&api, 2).await;
    eprintln!(
        "{} orders acknowledged, {} withdrawn, {} answers 503, {} calls to the dead node; \
         the last 503 came {:?} after the kill; owners after: {after:?}",
        all.acked.len(),
        all.withdrawn,
        all.unavailable,
        all.unreachable,
        all.last_unavailable
            .map(|t| t.saturating_duration_since(killed))
    );
    assert!(after.values().all(|o| *o != by_node[victim]));
    assert!(
        all.unreachable > 0,
        "no call reached the dead node: the kill was not under load"
    );
    let matches = check_all(&backend, &api, &statements, &all.acked).await;
    assert!(
        matches > 50,
        "only {matches} matches: matching was not exercised"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_over_a_redis_cluster_survive_a_kill() {
    let (backend, _cluster) = Backend::cluster();
    three_nodes_survive_a_kill(backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_over_one_redis_survive_a_kill() {
    three_nodes_survive_a_kill(Backend::new()).await;
}

/// A node paused (SIGSTOP) past its lease loses its statements to another node; when
/// it resumes, the writes it still had queued are refused by the fencing token and
/// counted, and the orders end up placed once, by the new owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_owner_is_fenced_when_it_resumes() {
    let backend = Backend::new();
    // A minute of wait_period lasts 300 ms here: orders placed before the pause are due
    // when node A resumes, so its matcher's own timer also tries late writes.
    let nodes = [
        Server::start_with(&backend, &["--lease-ms", LEASE_MS, "--minute-ms", "300"]).await,
        Server::start_with(&backend, &["--lease-ms", LEASE_MS, "--minute-ms", "300"]).await,
    ];
    let user = nodes[0].api().user("fenced").await;
    let a_id = nodes[0].health().await["node"].as_str().unwrap().to_owned();
    // On SIGCONT node A's HTTP workers and its upkeep thread resume together. When the
    // upkeep runs first, A finds its lease lost and stops the matcher before the queued
    // calls reach it: they are routed to B and nothing is written late, which is just as
    // safe but leaves the fencing unexercised. So the pause is tried on up to three
    // statements, every round is checked for safety, and at least one round must show
    // a late batch refused by the fencing token.
    let mut fenced_before = 0;
    // What every round placed: the check reads every order Redis holds.
    let (mut statements, mut all_acked) = (Vec::new(), Vec::new());
    for round in 1..=3 {
        let mut stmt = None;
        for _ in 0..16 {
            let s = push_statement(&user).await;
            if settle(&user, 2).await.get(&s) == Some(&a_id) {
                stmt = Some(s);
                break;
            }
        }
        let stmt = stmt.expect("rendezvous never chose node A in 16 statements");
        // Due (300 ms) while A is paused: withdrawn by whichever node's timer runs first.
        for i in 0..4u64 {
            let (s, v) = user
                .at(&nodes[0].url)
                .post(
                    &format!("{ROOT}/request"),
                    &json!({"statement_key": stmt, "cost": 5, "wait_period": 1,
                        "input": [{"field": 200 + i}, {"field": 1000}]}),
                )
                .await;
            assert_eq!(s, 200, "{v}");
            all_acked.push(common::acked(&v));
        }

        nodes[0].pause();
        let paused = Instant::now();
        // Calls sent to the paused node wait in its socket buffers.
        let at_a = user.at(&nodes[0].url);
        let mut late = Vec::new();
        for i in 0..16u64 {
            let api = at_a.clone();
            let body = json!({"statement_key": stmt, "cost": 5, "input": [{"field": 100 + i}, {"field": 1000}]});
            late.push(tokio::spawn(async move {
                api.try_call(Method::POST, &format!("{ROOT}/request"), Some(&body))
                    .await
            }));
        }
        // Node B takes the statement once A's heartbeat and lease lapse.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !nodes[1].owned().await.contains(&stmt) {
            assert!(Instant::now() < deadline, "node B never took the statement");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!(
            "node B took statement {stmt} {:?} after the pause",
            paused.elapsed()
        );
        let at_b = user.at(&nodes[1].url);
        let (s, v) = at_b
            .post(
                &format!("{ROOT}/proposal"),
                &json!({"statement_key": stmt, "cost": 1}),
            )
            .await;
        assert_eq!(s, 200, "{v}");

        nodes[0].resume();
        let mut acked = vec![common::acked(&v)];
        let mut refused = 0;
        for t in late {
            match t.await.unwrap() {
                Ok((200, v)) => acked.push(common::acked(&v)),
                Ok((503, _)) => refused += 1,
                other => panic!("late call: {other:?}"),
            }
        }
        let health = nodes[0].health().await;
        let fenced_node = health["fenced_writes"].as_u64().unwrap();
        let (s, view) = at_b.get(&format!("{ROOT}/cluster")).await;
        assert_eq!(s, 200);
        let fenced_store = view["statements"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["statement"] == stmt.as_str())
            .map(|x| x["fenced_writes"].as_u64().unwrap())
            .unwrap();
        eprintln!(
            "late calls: {} placed after rerouting, {refused} answered 503; node A counted \
         {fenced_node} refused batches, Redis {fenced_store}",
            acked.len() - 1
        );
        // Every refusal Redis counted for this statement reached node A (whose counter
        // is node-wide: a statement it held briefly while ownership settled may add one).
        assert!(
            fenced_node - fenced_before >= fenced_store,
            "node A counted {} refused batches, Redis {fenced_store} for statement {stmt}",
            fenced_node - fenced_before
        );
        statements.push(stmt.clone());
        all_acked.extend(acked);
        check_all(&backend, &at_b, &statements, &all_acked).await;
        if fenced_node > fenced_before {
            return;
        }
        eprintln!("round {round}: node A's upkeep ran before its queued calls; again");
        fenced_before = fenced_node;
    }
    panic!("in three rounds node A never tried a late write");
}

/// Adding a node moves only the statements the new node wins; SIGTERM on a node hands
/// its statements over while clients keep trading, and no client sees an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_joining_node_takes_its_share_and_a_stopping_one_hands_over_cleanly() {
    let backend = Backend::new();
    let mut nodes = start_nodes(&backend, 2).await;
    let user = nodes[0].api().user("mover").await;
    let mut statements = Vec::new();
    // 24 statements: the newcomer wins none with probability (2/3)^24 < 1e-4.
    for _ in 0..24 {
        statements.push(push_statement(&user).await);
    }
    let before = settle(&user, 2).await;
    nodes.push(Server::start_with(&backend, &["--lease-ms", LEASE_MS]).await);
    let newcomer = nodes[2].health().await["node"].as_str().unwrap().to_owned();
    let after = settle(&user, 3).await;
    let moved: Vec<&String> = after.keys().filter(|k| before[*k] != after[*k]).collect();
    for k in &moved {
        assert_eq!(after[*k], newcomer, "statement {k} moved to an old node");
    }
    assert!(!moved.is_empty(), "the new node took nothing: {after:?}");
    eprintln!("{} of 24 statements moved to the new node", moved.len());

    // Clients talk to the first two nodes; the newcomer is stopped with SIGTERM while
    // they trade on every statement, including the ones it owns.
    let mut tasks = Vec::new();
    let until = Instant::now() + Duration::from_secs(4);
    for c in 0..4u64 {
        let apis = nodes[..2].iter().map(|n| user.at(&n.url)).collect();
        tasks.push(tokio::spawn(client(apis, statements.clone(), c, until)));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let code = tokio::task::block_in_place(|| nodes[2].terminate(Duration::from_secs(30)));
    assert_eq!(code, Some(0), "the node did not exit cleanly on SIGTERM");
    let all = Outcome::gather(tasks).await;
    eprintln!(
        "{} orders acknowledged while the node left; {} answers 503",
        all.acked.len(),
        all.unavailable
    );
    assert_eq!(all.unreachable, 0);
    assert_eq!(
        all.unavailable, 0,
        "clients saw 503s during a graceful handover"
    );
    let last = settle(&user, 2).await;
    assert!(last.values().all(|o| *o != newcomer));
    check_all(&backend, &user, &statements, &all.acked).await;
}

/// The client library (CLI, producer) sends a statement's orders to the node owning it,
/// read from `/cluster`, so no node forwards them; with direct orders off, the node it
/// calls forwards each one (`forwarded_calls` in `/health` counts the hops). Orders of a
/// statement its base node owns stay there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_send_orders_to_the_statements_owner() {
    let b = Backend::new();
    let nodes = start_nodes(&b, 3).await;
    let al = nodes[0].api().user("al").await;
    let mut statements = Vec::new();
    for _ in 0..6 {
        statements.push(push_statement(&al).await);
    }
    let owners = settle(&al, 3).await;
    let mut ids = Vec::new();
    for n in &nodes {
        ids.push(n.health().await["node"].as_str().unwrap().to_owned());
    }
    // A base node and a statement some other node owns.
    let (base, stmt) = (0..3)
        .find_map(|i| {
            let s = statements.iter().find(|s| owners[*s] != ids[i])?;
            Some((i, s.clone()))
        })
        .expect("three nodes share six statements");
    let forwarded = |i: usize| {
        let n = &nodes[i];
        async move { n.health().await["forwarded_calls"].as_u64().unwrap() }
    };
    let token = al.token.clone();
    let direct = proof_market::client::MarketClient::new(&nodes[base].url, token.clone());
    let hopping =
        proof_market::client::MarketClient::new(&nodes[base].url, token).with_direct_orders(false);
    let cost = proof_market::domain::Cost::from_micros(1_000_000).unwrap();

    let before: Vec<u64> = [forwarded(0).await, forwarded(1).await, forwarded(2).await].into();
    for _ in 0..5 {
        direct.push_proposal(&stmt, cost, None, None).await.unwrap();
    }
    let after: Vec<u64> = [forwarded(0).await, forwarded(1).await, forwarded(2).await].into();
    assert_eq!(before, after, "direct orders made no node forward anything");

    for _ in 0..5 {
        hopping
            .push_proposal(&stmt, cost, None, None)
            .await
            .unwrap();
    }
    assert_eq!(
        forwarded(base).await,
        after[base] + 5,
        "without direct orders the base node forwards each one"
    );

    // A statement the base owns: its orders stay at the base.
    if let Some(own) = statements.iter().find(|s| owners[*s] == ids[base]) {
        let at_base = forwarded(base).await;
        direct.push_proposal(own, cost, None, None).await.unwrap();
        assert_eq!(forwarded(base).await, at_base);
    }
    let q = urlencode(&format!(r#"[{{"key":"statement_key","value":"{stmt}"}}]"#));
    let (s, v) = al.get(&format!("{ROOT}/proposal/?q={q}&limit=100")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v.as_array().map(Vec::len), Some(10), "{v}");
}

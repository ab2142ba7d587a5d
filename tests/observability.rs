//! What an operator sees of a running node: `/metrics` in the Prometheus text format,
//! counting real calls, orders, matches and proof verifications, with labels that stay
//! bounded whatever clients send; and the monitoring files of `deploy/monitoring`
//! checked against a real scrape.

mod common;

use std::collections::HashMap;

use common::*;
use serde_json::json;

/// The scrape as `series → value` (`name{labels}` exactly as exposed).
async fn scrape(server: &Server) -> (String, HashMap<String, f64>) {
    let res = reqwest::get(format!("{}/metrics", server.url))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let ctype = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let text = res.text().await.unwrap();
    let series = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (name.to_owned(), value.parse::<f64>().unwrap())
        })
        .collect();
    (text, series)
}

fn value(series: &HashMap<String, f64>, name: &str) -> f64 {
    *series
        .get(name)
        .unwrap_or_else(|| panic!("no series {name} in {:?}", series.keys()))
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_calls_orders_matches_and_proof_checks() {
    let backend = Backend::new();
    let server = Server::start(&backend).await;
    let api = server.api();
    let req = api.user("obs-req").await;
    let prod = api.user("obs-prod").await;
    let stmt = push_statement(&req).await;

    let (r, p) = matched_pair(&req, &prod, &stmt, [3, 4]).await;
    // A wrong proof first (refused by the verifier), then the real one.
    let (s, v) = prod
        .post(
            &format!("{ROOT}/proof"),
            &json!({"proof": example_proof(&[3, 5]), "proposal_key": p["_key"]}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = prod
        .post(
            &format!("{ROOT}/proof"),
            &json!({"proof": example_proof(&[3, 4]), "proposal_key": p["_key"]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = api
        .get(&format!("{ROOT}/request/{}", r["_key"].as_str().unwrap()))
        .await;
    assert_eq!(s, 401, "an anonymous read is refused");

    let (text, m) = scrape(&server).await;
    let order_route = format!("{ROOT}/request");
    assert_eq!(
        value(
            &m,
            &format!(
                "proof_market_http_requests_total{{method=\"POST\",route=\"{order_route}\",status=\"200\"}}"
            )
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(
            &m,
            &format!(
                "proof_market_http_requests_total{{method=\"GET\",route=\"{ROOT}/request/{{key}}\",status=\"401\"}}"
            )
        ),
        1.0
    );
    for side in ["request", "proposal"] {
        assert_eq!(
            value(
                &m,
                &format!("proof_market_orders_total{{side=\"{side}\",statement=\"{stmt}\"}}")
            ),
            1.0,
            "{text}"
        );
    }
    assert_eq!(
        value(
            &m,
            &format!("proof_market_matches_total{{statement=\"{stmt}\"}}")
        ),
        1.0
    );
    assert_eq!(value(&m, "proof_market_match_latency_seconds_count"), 1.0);
    assert!(value(&m, "proof_market_match_latency_seconds_sum") > 0.0);
    assert_eq!(
        value(
            &m,
            "proof_market_proof_verify_seconds_count{result=\"valid\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "proof_market_proof_verify_seconds_count{result=\"invalid\"}"
        ),
        1.0
    );
    assert!(value(&m, "proof_market_leases_acquired_total") >= 1.0);
    assert_eq!(value(&m, "proof_market_owned_statements"), 1.0);
    assert_eq!(value(&m, "proof_market_ready"), 1.0);
    assert_eq!(value(&m, "proof_market_redis_up"), 1.0);
    assert!(
        value(
            &m,
            "proof_market_redis_call_duration_seconds_count{command=\"FCALL\"}"
        ) >= 2.0
    );
    assert!(
        value(
            &m,
            "proof_market_pool_job_seconds_count{phase=\"run\",pool=\"verification\"}"
        ) >= 2.0
    );
    assert_eq!(
        value(&m, "proof_market_pool_busy_workers{pool=\"verification\"}"),
        0.0
    );
    // No archive on this node: no PostgreSQL gauge.
    assert!(!text.contains("proof_market_postgres_up"), "{text}");
    assert!(text.contains("process_start_time_seconds"), "{text}");
    assert!(text.contains(&format!(
        "proof_market_node_info{{node=\"{}\"",
        server.node_id
    )));

    // The operator's files (alert rules and their unit tests, the scrape config, the
    // Grafana dashboard) check out offline, and every metric they name is in this real
    // scrape with its type and labels (`promtool check metrics` parses it too).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, &text).unwrap();
    let out = std::process::Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/check-monitoring.sh"
        ))
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "deploy/check-monitoring.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_paths_and_methods_do_not_grow_the_metrics() {
    let backend = Backend::new();
    let server = Server::start(&backend).await;
    let (_, before) = scrape(&server).await;
    let client = reqwest::Client::new();
    let methods = ["GET", "POST", "PUT", "BREW", "PROPFIND", "X-42"];
    for i in 0..600u32 {
        let method =
            reqwest::Method::from_bytes(methods[i as usize % methods.len()].as_bytes()).unwrap();
        let path = format!("/no/such/route/{i}/{}", "x".repeat(i as usize % 50));
        let res = client
            .request(method, format!("{}{path}", server.url))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_client_error(), "{path}: {}", res.status());
    }
    let (text, after) = scrape(&server).await;
    let unmatched: Vec<&String> = after
        .keys()
        .filter(|k| k.starts_with("proof_market_http_requests_total") && k.contains("unmatched"))
        .collect();
    // One series per (standard method or `other`, status), not per path or method text.
    assert!(unmatched.len() <= 6, "{unmatched:?}");
    assert!(
        after.len() <= before.len() + 6 + 2 * 18,
        "series grew from {} to {}:\n{text}",
        before.len(),
        after.len()
    );
    let total: f64 = unmatched.iter().map(|k| after[*k]).sum();
    assert_eq!(total, 600.0, "{text}");
}

/// A node logging JSON at info level to `log`.
async fn logged_node(b: &Backend, log: &std::path::Path) -> Server {
    Server::start_with_env(
        b,
        &["--json-logs"],
        &[
            (STDERR_FILE, Some(log.to_str().unwrap())),
            ("RUST_LOG", Some("info")),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn request_ids_are_answered_forwarded_and_in_every_log_line_of_the_call() {
    let backend = Backend::new();
    let dir = tempfile::tempdir().unwrap();
    let logs = [dir.path().join("a.log"), dir.path().join("b.log")];
    let a = logged_node(&backend, &logs[0]).await;
    let b = logged_node(&backend, &logs[1]).await;
    let req = a.api().user("rid-req").await;
    let prod = a.api().user("rid-prod").await;
    let stmt = push_statement(&req).await;
    let (_, p) = matched_pair(&req, &prod, &stmt, [3, 4]).await;

    // A wrong proof through each node: one of them owns the statement, the other
    // forwards the call to it; the owner logs both refusals.
    let token = prod.token.clone().unwrap();
    let client = reqwest::Client::new();
    let wrong = json!({"proof": example_proof(&[3, 5]), "proposal_key": p["_key"]});
    for (node, id) in [(&a, "client-chosen-id.a:1"), (&b, "client-chosen-id.b:2")] {
        let res = client
            .post(format!("{}{ROOT}/proof", node.url))
            .bearer_auth(&token)
            .header("x-request-id", id)
            .json(&wrong)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
        assert_eq!(res.headers()["x-request-id"], id);
    }
    // A hostile id is replaced by a fresh one, not echoed.
    let res = client
        .get(format!("{}/health", a.url))
        .header(
            "x-request-id",
            "bad id\twith spaces and far too long ".repeat(4),
        )
        .send()
        .await
        .unwrap();
    let fresh = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(fresh.len(), 16, "{fresh}");
    assert!(fresh.bytes().all(|c| c.is_ascii_hexdigit()), "{fresh}");

    // The refusals are logged (JSON, one object a line) with the call's id, method,
    // path and statement, on whichever node owns the statement.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text: String = logs
            .iter()
            .map(|l| std::fs::read_to_string(l).unwrap_or_default())
            .collect();
        let refusals: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["fields"]["message"] == "proof refused")
            .collect();
        if refusals.len() == 2 {
            let mut ids: Vec<&str> = refusals
                .iter()
                .map(|v| v["span"]["request_id"].as_str().unwrap_or_default())
                .collect();
            ids.sort();
            assert_eq!(
                ids,
                ["client-chosen-id.a:1", "client-chosen-id.b:2"],
                "{refusals:?}"
            );
            for v in &refusals {
                assert_eq!(v["span"]["method"], "POST", "{v}");
                assert_eq!(v["span"]["path"], format!("{ROOT}/proof"), "{v}");
                assert_eq!(v["span"]["statement"].to_string(), stmt, "{v}");
            }
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "refusals logged: {refusals:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// With Redis gone the node says so in its metrics: `redis_up` 0 and the failed calls
/// counted by command.
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_redis_shows_in_the_metrics() {
    let mut redis = OwnRedis::start();
    let backend = Backend::on(redis.url());
    let server = Server::start(&backend).await;
    let (_, m) = scrape(&server).await;
    assert_eq!(value(&m, "proof_market_redis_up"), 1.0);
    assert_eq!(
        value(
            &m,
            "proof_market_forward_failures_total{reason=\"unreachable\"}"
        ),
        0.0
    );
    redis.kill();
    let (text, m) = scrape(&server).await;
    assert_eq!(value(&m, "proof_market_redis_up"), 0.0, "{text}");
    let failed: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("proof_market_redis_errors_total{"))
        .map(|(_, v)| *v)
        .sum();
    assert!(failed >= 1.0, "{text}");
}

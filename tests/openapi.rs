//! The OpenAPI document against a live node: served at /openapi.json with its try-it
//! page at /docs (assets from the node itself), and Schemathesis (PyPI, installed by
//! deploy/pyenv.sh) sending calls generated from it: no answer may be a 5xx, carry a
//! status the document does not list for the call, or contradict its schema.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn the_document_is_served_with_its_page_and_the_node_keeps_to_it() {
    let backend = Backend::new();
    let node = Server::start(&backend).await;
    let api = node.api();
    let doc: Value = reqwest::get(format!("{}/openapi.json", node.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/_db/market/v0_0/request",
        "/_db/market/v0_0/events",
        "/_open/auth",
        "/openapi.json",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    let page = reqwest::get(format!("{}/docs", node.url)).await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui") && html.contains("<base href=\"/docs/\">"));
    for asset in [
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "swagger-initializer.js",
    ] {
        let r = reqwest::get(format!("{}/docs/{asset}", node.url))
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{asset}");
        let body = r.text().await.unwrap();
        if asset == "swagger-initializer.js" {
            assert!(body.contains("/openapi.json"), "{body}");
        }
    }

    // Something to find: a statement with a resting request and a match.
    let req = api.user("st-req").await;
    let prod = api.user("st-prod").await;
    let stmt = push_statement(&req).await;
    matched_pair(&req, &prod, &stmt, [3, 4]).await;

    let python = pyenv_python();
    let schemathesis = python.with_file_name("schemathesis");
    let token = req.token.clone().unwrap();
    let out = Command::new(&schemathesis)
        .args(["run", &format!("{}/openapi.json", node.url)])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        // A stream never ends; logout and a password change would end the token the
        // run uses (their refusals are covered by tests/accounts.rs).
        .args(["--exclude-path", "/_db/market/v0_0/events"])
        .args(["--exclude-path", "/_db/market/v0_0/user/logout"])
        .args(["--exclude-path", "/_db/market/v0_0/user/password"])
        .args(["--max-examples", "25", "--request-timeout", "20", "--no-color"])
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(" passed"), "{text}");
    assert!(!text.contains(" failed"), "{text}");
}

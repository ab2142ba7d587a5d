//! The market page at `/` in a real browser: headless Chromium (Debian's) driven by
//! Playwright (tests/browser/market_page.py; both installed by deploy/pyenv.sh) logs in
//! through the page, then a request, a matching proposal and the proof are placed
//! through the API, and the page must show each change live, without a reload. The
//! screenshot it takes is kept at target/market-page.png.

mod common;

use std::process::Command;

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_market_page_follows_a_trade_live_in_chromium() {
    let backend = Backend::new();
    let node = Server::start(&backend).await;
    let root = env!("CARGO_MANIFEST_DIR");
    let python = pyenv_python();
    let dir = tempfile::tempdir().unwrap();
    let proof = dir.path().join("proof.hex");
    std::fs::write(&proof, example_proof(&[1, 11])).unwrap();
    let shot = std::path::Path::new(root).join("target/market-page.png");
    let _ = std::fs::remove_file(&shot);
    let out = Command::new(&python)
        .arg("tests/browser/market_page.py")
        .args(["--url", &node.url])
        .args(["--statement-file", "example/statements/arithmetic.json"])
        .arg("--proof-file")
        .arg(&proof)
        .arg("--screenshot")
        .arg(&shot)
        .current_dir(root)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the page test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("PASS"), "{stdout}");
    let png = std::fs::read(&shot).expect("no screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    println!("screenshot: {}", shot.display());
}

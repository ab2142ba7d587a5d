//! The end-to-end harness every test in `tests/` shares: a real Redis (or Redis
//! Cluster), the real `proof-market` binary on a free port, an HTTP client, the example
//! statement, and the invariant check over what Redis holds.
//!
//! - [`backend`]: private Redis servers and clusters, and [`Backend`] (URL + key prefix).
//! - [`pg`]: private PostgreSQL servers ([`OwnPostgres`]), a database per test
//!   ([`TestDb`]) and one-off queries.
//! - [`server`]: the market node as a child process ([`Server`]).
//! - [`api`]: the HTTP client ([`Api`]) and listing a statement's orders.
//! - [`fixtures`]: the example statement and real proofs of its circuit.
//! - [`invariants`]: the shared checker (`market-invariants`) run on the test's Redis.
//! - [`tls`]: a throwaway PKI for the TLS tests.
//!
//! Each test binary compiles this module and uses a subset of it, so what one binary
//! leaves unused is not dead code: `dead_code` is allowed on the helper modules below
//! and `unused_imports` on their re-export (and only there), not on the tests.

#[allow(dead_code)] // each test binary uses a subset of the helpers (see above)
pub mod api;
#[allow(dead_code)] // idem
pub mod backend;
#[allow(dead_code)] // idem
pub mod fixtures;
#[allow(dead_code)] // idem
pub mod invariants;
#[allow(dead_code)] // idem
pub mod pg;
#[allow(dead_code)] // idem
pub mod server;
#[allow(dead_code)] // idem
pub mod tls;

// The tests `use common::*`; a binary may take nothing from one of these.
#[allow(unused_imports)]
pub use {api::*, backend::*, fixtures::*, invariants::*, pg::*, server::*};

/// A port free on loopback now (for a server started right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The Python of the tools' virtualenv (Playwright, Schemathesis), set up by
/// `deploy/pyenv.sh` when missing (it installs Debian's Chromium too).
#[allow(dead_code)] // used by the browser and OpenAPI tests only
pub fn pyenv_python() -> std::path::PathBuf {
    let out = std::process::Command::new("bash")
        .arg("deploy/pyenv.sh")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "deploy/pyenv.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().into()
}

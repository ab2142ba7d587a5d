//! The command-line client: speaks to a market only over HTTP, in the original =nil; Proof
//! Market v1 REST dialect, and reproduces the original toolchain's requester/producer flow.
//!
//! # Layout
//! - [`args`]: the subcommands and their flags ([`ClientCommand`]), spelled as the original
//!   scripts spelled them (`--proposal_key`, `--eval_time`).
//! - [`commands`]: carries a parsed command out and renders what it prints.
//! - [`client`]: [`MarketClient`], one method per market call; also used by the load test
//!   and producer daemons.
//! - [`transport`]: how a call goes over the wire: timeouts, retries on 503/429, errors.
//! - [`error`]: [`ClientError`], each variant one printable line.
//! - [`auth`]: the auth file keeping the login token.
//! - [`cost`]: [`Cost`], the checked price of an order.
//! - [`files`]: proof, input and statement files.
//!
//! The binary owns the process: it parses [`ClientOpts`] and a [`ClientCommand`], awaits
//! [`run`], and on `Err` prints `error: <Display>` and exits 1.

pub mod args;
pub mod auth;
pub mod client;
pub mod commands;
pub mod cost;
pub mod error;
pub mod files;
pub mod transport;
pub mod verify;

#[cfg(test)]
mod args_tests;
#[cfg(test)]
mod test_server;

use std::io::Write;
use std::path::PathBuf;

pub use args::ClientCommand;
pub use auth::AuthFile;
pub use client::{ListFilter, MarketClient};
pub use cost::Cost;
pub use error::ClientError;

/// Options shared by every client subcommand.
#[derive(clap::Args, Debug, Clone)]
pub struct ClientOpts {
    /// Market base URL.
    #[arg(
        long,
        env = "PROOF_MARKET_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// Where the login token is kept.
    #[arg(
        long = "auth",
        value_name = "FILE",
        env = "PROOF_MARKET_AUTH",
        default_value = ".proof-market-auth.json",
        global = true
    )]
    pub auth: PathBuf,
}

/// Runs one client command and prints its output on stdout.
///
/// Every error's Display is a single line meant to follow `error: `. A closed stdout (as in
/// `proof-market statement get | head`) is not an error.
pub async fn run(opts: &ClientOpts, cmd: ClientCommand) -> anyhow::Result<()> {
    let output = commands::execute(opts, cmd).await?;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{output}").and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::anyhow!("cannot write to stdout: {e}"))
        }
        _ => Ok(()),
    }
}

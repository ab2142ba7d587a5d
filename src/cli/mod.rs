//! The command line: `proof-market <family> <verb> ...`, in the original =nil; Proof Market
//! toolchain's spelling, reproducing its requester/producer flow.
//!
//! Only the command line lives here: its arguments, carrying out a command, and what it
//! prints. Talking to the market (the calls, retries, the token file) is the client library
//! [`crate::client`], which the producer daemon ([`crate::producer`]) uses as well.
//!
//! # Layout
//! - [`args`]: the subcommands and their flags ([`ClientCommand`]), spelled as the original
//!   scripts spelled them (`--proposal_key`, `--eval_time`); `--cost` is parsed into a
//!   [`Cost`](crate::domain::Cost) while parsing ([`args::parse_cost`]).
//! - [`commands`]: carries a parsed command out and renders what it prints.
//! - [`files`]: proof, input and statement files.
//! - [`verify`]: `proof verify`, re-checking a proof on this machine.
//!
//! The binary owns the process: it parses [`ClientOpts`] and a [`ClientCommand`], awaits
//! [`run`], and on `Err` prints `error: <Display>` and exits 1.

pub mod args;
pub mod commands;
pub mod config_file;
pub mod files;
pub mod verify;

#[cfg(test)]
mod args_tests;

use std::io::Write;
use std::path::PathBuf;

pub use args::ClientCommand;

/// Options shared by every subcommand that talks to a market: the client commands and
/// `producer`.
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

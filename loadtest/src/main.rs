//! `loadtest`: the Proof Market's load, latency, memory and soak harness.
//!
//! It drives a market over HTTP only (loopback addresses only), either one given with
//! `--url` or one it starts itself (a private redis-server with AOF + the server binary,
//! both stopped by PID at the end). See `loadtest --help` and the README of the crate.
//! The one exception is `leases`, which times a node's lease upkeep through the market's
//! store code (the library) against a private Redis or Redis Cluster.
//!
//! Why a tokio + reqwest client of its own rather than goose: open-loop runs must
//! measure latency from each call's *scheduled* instant (no coordinated omission), match
//! latency needs the body of the crossing order's answer and a sampled read of its
//! counterpart, and the soak must remember every acknowledged order for the invariant
//! check. Those are a few lines here and awkward to bolt onto goose, whose scheduler is
//! closed loop per user; the own client also compiles in a fraction of the time on the
//! 2-core machines this runs on.

mod baseline;
mod ceiling;
mod cli;
mod driver;
mod env;
mod http1;
mod loopback;
mod market;
mod mix;
mod modes;
mod procfs;
mod procs;
mod redis_view;
mod report;
mod rng;
mod schedule;
mod stats;
mod svg;

use anyhow::Result;
use clap::Parser;

use cli::{Cli, Command};

/// A seed from the clock and the PID.
pub fn seed_from_clock() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (u64::from(std::process::id()) << 32)
}

fn client_threads(c: &Command) -> usize {
    match c {
        Command::Run(a) => a.market.client_threads,
        Command::Peak(a) => a.market.client_threads,
        Command::Memory(a) => a.market.client_threads,
        Command::Soak(a) => a.market.client_threads,
        Command::All(a) => a.market.client_threads,
        Command::Ceilings(a) => a.market.client_threads,
        Command::Cluster(a) => a.market.client_threads,
        // One thread, like the node's upkeep (an arbiter of its own).
        Command::BaselineServer(_) | Command::Check(_) | Command::Leases(_) => 1,
    }
    .clamp(1, 64)
}

fn main() {
    let cli = Cli::parse();
    let code = match real_main(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loadtest: {e:#}");
            2
        }
    };
    std::process::exit(code);
}

fn real_main(cli: Cli) -> Result<i32> {
    if let Command::BaselineServer(a) = &cli.command {
        baseline::serve(&a.listen, a.workers)?;
        return Ok(0);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(client_threads(&cli.command))
        .enable_all()
        .build()?;
    rt.block_on(async move {
        tokio::spawn(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("loadtest: stopping (Ctrl-C)");
                driver::request_stop();
            }
        });
        match cli.command {
            Command::Run(a) => modes::run::main(a).await,
            Command::Peak(a) => modes::peak::main(a).await,
            Command::Memory(a) => modes::memory::main(a).await,
            Command::Soak(a) => modes::soak::main(a).await,
            Command::All(a) => modes::all::main(a).await,
            Command::Ceilings(a) => modes::ceilings::main(a).await,
            Command::Cluster(a) => modes::cluster::main(a).await,
            Command::Check(a) => modes::check::main(a).await,
            Command::Leases(a) => modes::leases::main(a).await,
            Command::BaselineServer(_) => Ok(0),
        }
    })
}

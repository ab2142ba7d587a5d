//! The harness's modes (`run`, `peak`, `memory`, `soak`, `all`, `cluster`, `leases`) and what they share: the
//! output directory and summary, building populations and run specs.

pub mod all;
pub mod ceilings;
pub mod check;
pub mod cluster;
pub mod leases;
pub mod memory;
pub mod peak;
pub mod run;
pub mod soak;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::cli::{LoadOpts, MarketOpts};
use crate::driver::{Load, Pricing, RunSpec};
use crate::env::{default_out, MarketEnv};
use crate::market::{self, Population};
use crate::mix::Mix;

/// Output directory, seed and running summary of one mode.
pub struct Ctx {
    /// `<out>/<mode>`.
    pub dir: PathBuf,
    /// Random seed.
    pub seed: u64,
    summary: String,
}

impl Ctx {
    /// Prepares `<out>/<mode>`.
    pub fn new(m: &MarketOpts, mode: &str) -> Result<Ctx> {
        let dir = m.out.clone().unwrap_or_else(default_out).join(mode);
        std::fs::create_dir_all(&dir)?;
        let seed = m.seed.unwrap_or_else(crate::seed_from_clock);
        Ok(Ctx {
            dir,
            seed,
            summary: String::new(),
        })
    }

    /// Prints `text` and keeps it for `summary.txt`.
    pub fn say(&mut self, text: &str) {
        println!("{text}");
        self.summary.push_str(text);
        if !text.ends_with('\n') {
            self.summary.push('\n');
        }
    }

    /// Where started nodes write their stderr.
    pub fn server_log(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// Writes `summary.txt` and `report.json`.
    pub fn finish<T: Serialize>(&self, report: &T) -> Result<()> {
        std::fs::write(self.dir.join("summary.txt"), &self.summary)?;
        crate::report::write_json(&self.dir.join("report.json"), report)?;
        println!("results in {}", self.dir.display());
        Ok(())
    }
}

/// Signs up the simulated users and publishes the statements.
pub async fn populate(
    env: &MarketEnv,
    load: &LoadOpts,
    statements: usize,
    seed: u64,
    tag: &str,
) -> Result<Arc<Population>> {
    let run = format!("lt{}{tag}", seed % 1_000_000);
    let pop = market::populate(
        &env.target,
        &run,
        load.requesters,
        load.producers,
        statements,
    )
    .await?;
    Ok(Arc::new(pop))
}

/// A run spec from the load options.
pub fn spec(
    name: &str,
    load: Load,
    mix: Mix,
    span: Duration,
    opts: &LoadOpts,
    seed: u64,
) -> RunSpec {
    RunSpec {
        name: name.to_owned(),
        load,
        mix,
        pricing: Pricing::Crossing,
        span,
        warmup: opts.warmup,
        max_ops: opts.max_ops,
        verify_every: opts.verify_every,
        record_acks: false,
        baseline: false,
        seed,
        idempotency_keys: opts.idempotency_keys,
        acked_orders: None,
        closing: None,
    }
}

/// The mix given on the command line, or `default`.
pub fn mix_or(opts: &LoadOpts, default: &str) -> Result<Mix> {
    Mix::parse(opts.mix.as_deref().unwrap_or(default))
}

//! `run`: one closed-loop or open-loop run with a mix of calls.

use std::time::Duration;

use anyhow::Result;

use crate::cli::RunArgs;
use crate::driver::Load;
use crate::env::MarketEnv;
use crate::mix::Mix;
use crate::report;

use super::{mix_or, populate, spec, Ctx};

/// Runs the `run` mode.
pub async fn main(a: RunArgs) -> Result<i32> {
    let mut ctx = Ctx::new(&a.market, "run")?;
    let env = MarketEnv::open(&a.market, &ctx.server_log()).await?;
    let pop = populate(&env, &a.load, a.load.statements, ctx.seed, "r").await?;
    let load = match a.rate {
        Some(rate) => Load::Open {
            rate,
            max_inflight: a.load.max_inflight,
        },
        None => Load::Closed {
            connections: a.load.connections,
        },
    };
    let name = if a.rate.is_some() { "open" } else { "closed" };
    let span = a.load.duration.unwrap_or(Duration::from_secs(20));
    let s = spec(
        name,
        load,
        mix_or(&a.load, Mix::DEFAULT)?,
        span,
        &a.load,
        ctx.seed,
    );
    let (_, r) = env.run(&pop, s).await?;
    ctx.say(&r.render());
    report::write_run(&ctx.dir, &r)?;
    ctx.finish(&r)?;
    Ok(0)
}

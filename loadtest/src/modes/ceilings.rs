//! `ceilings`: only the store ceiling (redis-benchmark) and the HTTP ceiling (the plain
//! baseline route driven by the harness's own client), to calibrate the machine.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::ceiling::{self, StoreCeiling};
use crate::cli::CeilingArgs;
use crate::report::{self, RunReport};

use super::Ctx;

/// Both ceilings.
#[derive(Debug, Clone, Serialize)]
pub struct Ceilings {
    /// redis-benchmark.
    pub store: Option<StoreCeiling>,
    /// Baseline route.
    pub http: RunReport,
}

/// Measures the store ceiling with `clients` connections and prints it.
pub async fn store(clients: usize, ctx: &mut Ctx) -> Option<StoreCeiling> {
    let r = tokio::task::spawn_blocking(move || ceiling::store_ceiling(clients, 200_000)).await;
    match r {
        Ok(Ok(s)) => {
            let mut t =
                String::from("store ceiling (redis-benchmark, scratch Redis with AOF everysec):\n");
            for b in &s.benches {
                let _ = writeln!(
                    t,
                    "  {:<34} -c {} -P {:<3} {:>10.0} ops/s",
                    b.label, b.clients, b.pipeline, b.ops_per_s
                );
            }
            let _ = write!(
                t,
                "  => {:.0} orders/s at 2 unpipelined calls per order; {:.0} orders/s as SET + order-writing EVAL",
                s.orders_per_s, s.orders_per_s_script
            );
            ctx.say(&t);
            Some(s)
        }
        Ok(Err(e)) => {
            ctx.say(&format!("store ceiling not measured: {e:#}"));
            None
        }
        Err(e) => {
            ctx.say(&format!("store ceiling not measured: {e}"));
            None
        }
    }
}

/// Runs the `ceilings` mode.
pub async fn main(a: CeilingArgs) -> Result<i32> {
    let mut ctx = Ctx::new(&a.market, "ceilings")?;
    let store = store(a.load.connections, &mut ctx).await;
    let http = ceiling::http_ceiling(
        a.load.requesters + a.load.producers,
        a.load.connections,
        a.load.duration.unwrap_or(Duration::from_secs(10)),
        a.load.warmup,
        ctx.seed,
        &ctx.dir.join("baseline.log"),
    )
    .await?;
    ctx.say(&http.render());
    report::write_run(&ctx.dir, &http)?;
    ctx.finish(&Ceilings { store, http })?;
    Ok(0)
}

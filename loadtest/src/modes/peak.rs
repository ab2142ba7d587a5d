//! `peak`: find the peak closed-loop order intake over a few concurrency levels, then
//! offer a fraction of it (default 70 %) open loop and report the match latency there.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use serde::Serialize;

use crate::cli::{LoadOpts, PeakArgs, PeakOpts};
use crate::driver::{self, Load};
use crate::env::MarketEnv;
use crate::market::Population;
use crate::mix::Mix;
use crate::report::{self, RunReport};
use crate::stats::ms;

use super::{mix_or, populate, spec, Ctx};

/// Match latency p99 target at 70 % of the peak (µs).
pub const MATCH_P99_TARGET_US: u64 = 5_000;

/// The peak search and the open-loop run.
#[derive(Debug, Clone, Serialize)]
pub struct PeakResult {
    /// Closed-loop steps.
    pub steps: Vec<RunReport>,
    /// Best intake (orders/s).
    pub peak_orders_per_s: f64,
    /// Connections of the best step.
    pub peak_connections: usize,
    /// Fraction offered open loop.
    pub fraction: f64,
    /// The open-loop run.
    pub open: RunReport,
    /// Its match latency p99 (µs).
    pub match_p99_us: u64,
    /// `match_p99_us <= 5 ms`.
    pub match_target_met: bool,
}

/// Closed-loop intake at each concurrency step; returns `(peak, connections, steps)`.
pub async fn find_peak(
    env: &MarketEnv,
    pop: &Arc<Population>,
    load: &LoadOpts,
    p: &PeakOpts,
    ctx: &mut Ctx,
) -> Result<(f64, usize, Vec<RunReport>)> {
    find_peak_named(env, pop, load, p, ctx, "peak").await
}

/// [`find_peak`] with runs named `<name>-c<connections>`.
pub async fn find_peak_named(
    env: &MarketEnv,
    pop: &Arc<Population>,
    load: &LoadOpts,
    p: &PeakOpts,
    ctx: &mut Ctx,
    name: &str,
) -> Result<(f64, usize, Vec<RunReport>)> {
    if p.steps.is_empty() {
        bail!("--steps needs at least one concurrency level");
    }
    let mut steps = Vec::new();
    let (mut best, mut best_c) = (0.0f64, p.steps[0]);
    for &c in &p.steps {
        let s = spec(
            &format!("{name}-c{c}"),
            Load::Closed { connections: c },
            Mix::parse(Mix::INTAKE)?,
            p.step_duration,
            load,
            ctx.seed.wrapping_add(c as u64),
        );
        let (_, r) = env.run(pop, s).await?;
        ctx.say(&r.render());
        report::write_run(&ctx.dir, &r)?;
        let gained = r.orders_per_s > best * 1.03;
        if r.orders_per_s > best {
            best = r.orders_per_s;
            best_c = c;
        }
        steps.push(r);
        if !gained || driver::stopped() {
            break; // more concurrency no longer helps
        }
    }
    ctx.say(&format!(
        "peak closed-loop intake: {best:.0} orders/s at {best_c} connections"
    ));
    Ok((best, best_c, steps))
}

/// Peak search, then the open-loop run at `p.fraction` of it.
pub async fn peak(
    env: &MarketEnv,
    pop: &Arc<Population>,
    load: &LoadOpts,
    p: &PeakOpts,
    ctx: &mut Ctx,
) -> Result<PeakResult> {
    let (best, best_c, steps) = find_peak(env, pop, load, p, ctx).await?;
    if best <= 0.0 {
        bail!("no order was acknowledged while searching the peak");
    }
    let mix = mix_or(load, Mix::INTAKE)?;
    let rate = p.fraction * best / mix.order_share();
    let span = load.duration.unwrap_or(Duration::from_secs(30));
    let name = format!("open-{:.0}pct", p.fraction * 100.0);
    let s = spec(
        &name,
        Load::Open {
            rate,
            max_inflight: load.max_inflight,
        },
        mix,
        span,
        load,
        ctx.seed ^ 0x0bad_cafe,
    );
    // Open loop starts at full rate: give connections and queues time to settle.
    let mut s = s;
    s.warmup = s.warmup.max(Duration::from_secs(5));
    let (_, open) = env.run(pop, s).await?;
    ctx.say(&open.render());
    report::write_run(&ctx.dir, &open)?;
    let p99 = open.match_latency.p99_us;
    let met = open.match_latency.count > 0 && p99 <= MATCH_P99_TARGET_US;
    ctx.say(&format!(
        "match latency at {:.0} % of peak ({rate:.0} calls/s offered, {:.0} orders/s acked): p50 {} ms, p99 {} ms, p99.9 {} ms over {} matches -> target p99 <= 5 ms {}",
        p.fraction * 100.0,
        open.orders_per_s,
        ms(open.match_latency.p50_us),
        ms(p99),
        ms(open.match_latency.p999_us),
        open.match_latency.count,
        if met { "MET" } else { "NOT MET" }
    ));
    Ok(PeakResult {
        steps,
        peak_orders_per_s: best,
        peak_connections: best_c,
        fraction: p.fraction,
        open,
        match_p99_us: p99,
        match_target_met: met,
    })
}

/// Runs the `peak` mode.
pub async fn main(a: PeakArgs) -> Result<i32> {
    let mut ctx = Ctx::new(&a.market, "peak")?;
    let env = MarketEnv::open(&a.market, &ctx.server_log()).await?;
    let pop = populate(&env, &a.load, a.load.statements, ctx.seed, "p").await?;
    let r = peak(&env, &pop, &a.load, &a.peak, &mut ctx).await?;
    ctx.finish(&r)?;
    Ok(0)
}

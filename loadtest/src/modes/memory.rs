//! `memory`: place N resting orders that cannot match (requests cost 1, proposals cost
//! 2) as fast as the node takes them, and report the node's RSS (`/proc/<pid>/status`
//! VmRSS) and Redis `used_memory`, before and after, per order.

use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cli::{LoadOpts, MemoryArgs, MemoryOpts};
use crate::driver::{Load, Pricing};
use crate::env::MarketEnv;
use crate::market::{Population, ROOT};
use crate::mix::Mix;
use crate::procfs;
use crate::redis_view;
use crate::report::{self, RunReport};

use super::{populate, spec, Ctx};

const MIB: f64 = 1024.0 * 1024.0;

/// Memory figures.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryResult {
    /// Orders asked for.
    pub orders_requested: u64,
    /// Orders acknowledged (all resting).
    pub orders_acked: u64,
    /// Resting orders the node's book reports afterwards.
    pub book_resting: Option<u64>,
    /// Placing rate.
    pub orders_per_s: f64,
    /// Node RSS before (bytes).
    pub rss_before: Option<u64>,
    /// Node RSS after (bytes).
    pub rss_after: Option<u64>,
    /// (after − before) / orders.
    pub rss_bytes_per_order: Option<f64>,
    /// Redis used_memory before (bytes).
    pub redis_before: Option<u64>,
    /// Redis used_memory after (bytes).
    pub redis_after: Option<u64>,
    /// (after − before) / orders.
    pub redis_bytes_per_order: Option<f64>,
    /// RSS after below the target.
    pub rss_target_met: Option<bool>,
    /// Redis per order below the target.
    pub redis_target_met: Option<bool>,
    /// The placing run.
    pub run: RunReport,
}

/// Sums `ordersAmount` over the node's book of each statement.
async fn book_resting(env: &MarketEnv, pop: &Population) -> Result<u64> {
    let user = pop.requesters.first().context("no user")?;
    let mut total = 0;
    for s in &pop.statements {
        let url = format!("{}{ROOT}/book/{s}", env.target.base());
        let v = crate::market::get_json(user, &url).await?;
        for side in ["requests", "proposals"] {
            for level in v[side].as_array().into_iter().flatten() {
                total += level["ordersAmount"].as_u64().unwrap_or(0);
            }
        }
    }
    Ok(total)
}

/// Places the orders on `env` and measures.
pub async fn memory(
    env: &MarketEnv,
    m: &MemoryOpts,
    load: &LoadOpts,
    ctx: &mut Ctx,
) -> Result<MemoryResult> {
    let pop = populate(env, load, m.statements, ctx.seed, "m").await?;
    let mut con = env.redis()?;
    let pid = env.server_pid();
    // Let the node settle after start-up and sign-ups.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = pid.map(procfs::rss_bytes).transpose()?;
    let redis_before = con.as_mut().map(redis_view::used_memory).transpose()?;
    ctx.say(&format!(
        "memory: placing {} non-crossing orders over {} statements with {} connections (node RSS before {}, Redis before {})",
        m.orders,
        m.statements,
        m.connections,
        rss_before.map_or("n/a".into(), |b| format!("{:.1} MiB", b as f64 / MIB)),
        redis_before.map_or("n/a".into(), |b| format!("{:.1} MiB", b as f64 / MIB)),
    ));
    let mut s = spec(
        "memory-fill",
        Load::Closed {
            connections: m.connections,
        },
        Mix::parse(Mix::INTAKE)?,
        m.max_duration,
        load,
        ctx.seed,
    );
    s.pricing = Pricing::NoCross;
    s.warmup = Duration::ZERO;
    s.max_ops = m.orders;
    s.verify_every = 0;
    let (_, run) = env.run(&pop, s).await?;
    ctx.say(&run.render());
    report::write_run(&ctx.dir, &run)?;
    let acked: u64 = run
        .ops
        .iter()
        .filter(|o| o.op.is_order())
        .map(|o| o.ok)
        .sum();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = pid.map(procfs::rss_bytes).transpose()?;
    let redis_after = con.as_mut().map(redis_view::used_memory).transpose()?;
    let book = book_resting(env, &pop).await.ok();
    let per = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) if acked > 0 => Some((b as f64 - a as f64) / acked as f64),
        _ => None,
    };
    let rss_per = per(rss_before, rss_after);
    let redis_per = per(redis_before, redis_after);
    let r = MemoryResult {
        orders_requested: m.orders,
        orders_acked: acked,
        book_resting: book,
        orders_per_s: run.orders_per_s,
        rss_before,
        rss_after,
        rss_bytes_per_order: rss_per,
        redis_before,
        redis_after,
        redis_bytes_per_order: redis_per,
        rss_target_met: rss_after.map(|b| b < m.rss_target_mib * 1024 * 1024),
        redis_target_met: redis_per.map(|b| b < m.redis_target_bytes as f64),
        run,
    };
    let verdict = |v: Option<bool>| match v {
        Some(true) => "MET",
        Some(false) => "NOT MET",
        None => "n/a",
    };
    ctx.say(&format!(
        "memory: {} orders resting (book says {}), placed at {:.0}/s\n  node RSS {} -> {} ({} per order); target < {} MiB at 1M orders: {}\n  Redis used_memory {} -> {} ({} per order); target < {} B/order: {}",
        r.orders_acked,
        book.map_or("n/a".into(), |b| b.to_string()),
        r.orders_per_s,
        rss_before.map_or("n/a".into(), |b| format!("{:.1} MiB", b as f64 / MIB)),
        rss_after.map_or("n/a".into(), |b| format!("{:.1} MiB", b as f64 / MIB)),
        rss_per.map_or("n/a".into(), |b| format!("{b:.0} B")),
        m.rss_target_mib,
        verdict(r.rss_target_met),
        redis_before.map_or("n/a".into(), |b| format!("{:.1} MiB", b as f64 / MIB)),
        redis_after.map_or("n/a".into(), |b| format!("{:.1} MiB", b as f64 / MIB)),
        redis_per.map_or("n/a".into(), |b| format!("{b:.0} B")),
        m.redis_target_bytes,
        verdict(r.redis_target_met),
    ));
    if m.orders != 1_000_000 {
        ctx.say(
            "  (the RSS target is stated for 1,000,000 orders; this run placed a different number)",
        );
    }
    Ok(r)
}

/// Runs the `memory` mode.
pub async fn main(a: MemoryArgs) -> Result<i32> {
    let mut ctx = Ctx::new(&a.market, "memory")?;
    let env = MarketEnv::open(&a.market, &ctx.server_log()).await?;
    let load = LoadOpts {
        requesters: 16,
        producers: 16,
        statements: a.memory.statements,
        connections: a.memory.connections,
        mix: None,
        duration: None,
        warmup: Duration::ZERO,
        max_ops: a.memory.orders,
        max_inflight: 4096,
        verify_every: 0,
        idempotency_keys: false,
    };
    let r = memory(&env, &a.memory, &load, &mut ctx).await?;
    ctx.finish(&r)?;
    Ok(0)
}

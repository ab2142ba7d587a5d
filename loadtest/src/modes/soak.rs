//! `soak`: open loop at half the peak rate for a long time (default 10 minutes), with a
//! kill -9 and restart of the node in the middle when the harness started it; then the
//! invariants (README, "Invariants") are checked against Redis directly, over
//! every order the harness saw acknowledged. Violations make the exit code non-zero.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use market_invariants::{self as invariants, redis_rows, Checked};
use serde::Serialize;

use crate::cli::{LoadOpts, PeakOpts, SoakArgs, SoakOpts};
use crate::driver::{self, Load};
use crate::env::MarketEnv;
use crate::market::Population;
use crate::mix::Mix;
use crate::report::{self, Marker, RunReport};

use super::{mix_or, populate, spec, Ctx};

/// Soak outcome.
#[derive(Debug, Clone, Serialize)]
pub struct SoakResult {
    /// Offered calls per second.
    pub rate: f64,
    /// Seconds into the measured window when the node was killed.
    pub killed_at_s: Option<f64>,
    /// Seconds the node took to come back (kill → /health 200).
    pub restart_s: Option<f64>,
    /// The run.
    pub run: RunReport,
    /// The invariant check.
    pub check: Checked,
    /// No violation.
    pub passed: bool,
}

/// Soaks `env` at `rate` calls/s for `span` (after the warm-up).
pub async fn soak(
    env: &mut MarketEnv,
    pop: Arc<Population>,
    load: &LoadOpts,
    s: &SoakOpts,
    span: Duration,
    rate: f64,
    ctx: &mut Ctx,
) -> Result<SoakResult> {
    let mix = mix_or(load, Mix::DEFAULT)?;
    let mut sp = spec(
        "soak",
        Load::Open {
            rate,
            max_inflight: load.max_inflight,
        },
        mix,
        span,
        load,
        ctx.seed ^ 0x50a6,
    );
    sp.record_acks = true;
    let kill = !s.no_kill && env.server.is_some();
    if !s.no_kill && !kill {
        ctx.say("soak: the node was not started by the harness, so it is not killed");
    }
    ctx.say(&format!(
        "soak: {rate:.0} calls/s for {:.0} s{}",
        span.as_secs_f64(),
        if kill {
            format!(", kill -9 + restart at {:.0} %", s.kill_at * 100.0)
        } else {
            String::new()
        }
    ));
    let forks = env.redis_forks();
    let watch = env.watch_rewrites();
    let measure_start = Instant::now() + load.warmup;
    let run = tokio::spawn(driver::run(env.target.clone(), pop, sp, env.pids()));
    let (mut killed_at, mut restart_s) = (None, None);
    if kill {
        let at = measure_start + span.mul_f64(s.kill_at.clamp(0.0, 1.0));
        tokio::time::sleep_until(at.into()).await;
        if !driver::stopped() {
            let t = Instant::now();
            env.kill9_and_restart()
                .await
                .context("restarting the node")?;
            killed_at = Some(t.saturating_duration_since(measure_start).as_secs_f64());
            restart_s = Some(t.elapsed().as_secs_f64());
            ctx.say(&format!(
                "soak: node killed (SIGKILL) at {:.1} s, back after {:.2} s at {}",
                killed_at.unwrap_or(0.0),
                restart_s.unwrap_or(0.0),
                env.target.base()
            ));
        }
    }
    let out = run.await??;
    let mut r = RunReport::from_output(&out);
    r.redis_forks = forks
        .zip(env.redis_forks())
        .map(|(a, b)| b.saturating_sub(a));
    if let Some(w) = watch {
        r.spans = w.finish(out.rec.start()).await;
    }
    if let (Some(k), Some(d)) = (killed_at, restart_s) {
        r.markers.push(Marker {
            t_s: k,
            label: "kill -9".into(),
        });
        r.markers.push(Marker {
            t_s: k + d,
            label: "node back".into(),
        });
    }
    ctx.say(&r.render());
    report::write_run(&ctx.dir, &r)?;

    let check = match env.redis()? {
        None => {
            ctx.say(
                "soak: no Redis URL known (pass --redis-url with --url): invariants not checked",
            );
            Checked::default()
        }
        Some(mut con) => {
            let prefix = env.prefix.clone();
            let acks = out.acks;
            let t = Instant::now();
            let c = tokio::task::spawn_blocking(move || -> Result<Checked> {
                let rows = redis_rows::read_orders(&mut con, &prefix, &acks.orders)?;
                Ok(invariants::check(&rows, &acks.orders, &acks.observed, true))
            })
            .await??;
            ctx.say(&format!(
                "invariants: {} orders in Redis ({:?}), {} acknowledged by the node, {} status reads, {} matches; checked in {:.1} s: {} violation(s)",
                c.orders,
                c.by_status,
                c.acked,
                c.observed,
                c.matches,
                t.elapsed().as_secs_f64(),
                c.violations.len()
            ));
            for v in c.violations.iter().take(50) {
                ctx.say(&format!(
                    "  VIOLATION {}: keys {:?}: {}",
                    v.rule, v.keys, v.detail
                ));
            }
            c
        }
    };
    let passed = check.violations.is_empty();
    Ok(SoakResult {
        rate,
        killed_at_s: killed_at,
        restart_s,
        run: r,
        check,
        passed,
    })
}

/// A short closed-loop probe of the peak intake (orders/s).
pub async fn probe_peak(
    env: &MarketEnv,
    pop: &Arc<Population>,
    load: &LoadOpts,
    ctx: &mut Ctx,
) -> Result<f64> {
    let p = PeakOpts {
        steps: vec![load.connections],
        step_duration: Duration::from_secs(5),
        fraction: 0.5,
    };
    let (best, _, _) = super::peak::find_peak(env, pop, load, &p, ctx).await?;
    Ok(best)
}

/// Runs the `soak` mode.
pub async fn main(a: SoakArgs) -> Result<i32> {
    let mut ctx = Ctx::new(&a.market, "soak")?;
    let mut env = MarketEnv::open(&a.market, &ctx.server_log()).await?;
    let pop = populate(&env, &a.load, a.load.statements, ctx.seed, "s").await?;
    let mix = mix_or(&a.load, Mix::DEFAULT)?;
    let rate = match a.soak.rate {
        Some(r) => r,
        None => {
            a.soak.soak_fraction * probe_peak(&env, &pop, &a.load, &mut ctx).await?
                / mix.order_share()
        }
    };
    let span = a.load.duration.unwrap_or(Duration::from_secs(600));
    let r = soak(&mut env, pop, &a.load, &a.soak, span, rate, &mut ctx).await?;
    ctx.say(if r.passed {
        "soak: PASSED"
    } else {
        "soak: FAILED (invariant violations above)"
    });
    ctx.finish(&r)?;
    Ok(if r.passed { 0 } else { 1 })
}

//! `cluster`: what scaling out over one Redis gives and costs, in one run on one
//! machine. First one node over a fresh Redis, then `--nodes` nodes over another fresh
//! Redis (distinct ports and ids, one shared JWT secret and cluster secret, temp data
//! dirs, all stopped by PID at the end). In both, the users are spread round robin over
//! the nodes and pinned to theirs (their connection pool only calls that node); after
//! the statements are created the harness waits until every node's `/health` is 200
//! with every node in its view, and every statement's lease sits with its owner
//! (`/cluster`). Then the peak closed-loop order intake is searched as in `peak`, and
//! each order is classified by whether the node the user called owns its statement
//! (local) or has to forward the call to the owner (one more HTTP hop). The report puts
//! both side by side, with the ratios of the scale-out run to the one-node run, the
//! forwarded share, local vs forwarded latency (their difference is the hop's cost) and
//! CPU per process. Last, the `--nodes` nodes once more with every order sent to its
//! statement's owner (as the market's client library sends them, from `/cluster`): the
//! intake without the hop, next to the one with it.
//!
//! Layout: [`ownership`] (reading and judging who owns what), [`compare`] (the figures
//! and the report text); this file runs the phases.

mod compare;
mod ownership;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::cli::{ClusterArgs, PeakOpts};
use crate::driver;
use crate::env::MarketEnv;
use crate::market;
use crate::report::ratio;

use super::Ctx;
use compare::{compare_text, per_step_text, ratio_f, Phase, Side};
use ownership::{
    expected_forwarded_share, owned_counts, read_cluster, settled_owners, wait_settled,
};

/// Everything `cluster` measured.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterResult {
    /// One node.
    pub one: Phase,
    /// `--nodes` nodes, users calling their own node (which forwards).
    pub many: Phase,
    /// `--nodes` nodes, orders sent to their statement's owner.
    pub direct: Phase,
    /// Figures of the direct run's best step.
    pub direct_side: Side,
    /// `direct / many` orders/s: what skipping the hop gives.
    pub direct_ratio: f64,
    /// Figures of one node's best step.
    pub one_side: Side,
    /// Figures of the scale-out's best step.
    pub many_side: Side,
    /// `many / one` orders/s in total.
    pub throughput_ratio: f64,
    /// `many / one` orders/s per node.
    pub per_node_ratio: f64,
    /// Anything that looked wrong in the nodes.
    pub anomalies: Vec<String>,
}

/// WARN/ERROR lines of the nodes' logs (count, first few).
fn log_warnings(logs: &[PathBuf]) -> (usize, Vec<String>) {
    let (mut n, mut samples) = (0, Vec::new());
    for p in logs {
        let Ok(text) = std::fs::read_to_string(p) else {
            continue;
        };
        let name = p.file_stem().and_then(|s| s.to_str()).unwrap_or("node");
        for l in text
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        {
            n += 1;
            if samples.len() < 8 {
                samples.push(format!(
                    "{name}: {}",
                    l.chars().take(300).collect::<String>()
                ));
            }
        }
    }
    (n, samples)
}

/// Starts `n` nodes over a fresh Redis, populates, settles, searches the peak.
async fn phase(a: &ClusterArgs, n: usize, direct: bool, ctx: &mut Ctx) -> Result<Phase> {
    let mut extra = Vec::new();
    if let Some(l) = a.lease_ms {
        extra.extend(["--lease-ms".to_owned(), l.to_string()]);
    }
    let log_dir = ctx.dir.join("logs");
    let id_prefix = format!("lt-n{n}-node");
    ctx.say(&format!(
        "\n==== {n} node(s) over one fresh Redis ====\nstarting {n} node(s) (logs in {})",
        log_dir.display()
    ));
    let env = MarketEnv::open_nodes(&a.market, n, &id_prefix, &extra, &log_dir).await?;
    let logs: Vec<PathBuf> = env
        .node_ids
        .iter()
        .map(|id| log_dir.join(format!("{id}.log")))
        .collect();
    let run = format!(
        "lt{}c{n}{}",
        ctx.seed % 1_000_000,
        if direct { "d" } else { "" }
    );
    let mut pop = market::populate_spread(
        &env.nodes,
        &run,
        a.load.requesters,
        a.load.producers,
        a.load.statements,
    )
    .await
    .context("signing up users and creating statements")?;
    let created = Instant::now();
    let owners = wait_settled(&env, &pop, a.settle_timeout).await?;
    let settle_s = created.elapsed().as_secs_f64();
    let mut users_per_node = vec![0usize; n];
    for u in pop.requesters.iter().chain(&pop.producers) {
        if let Some(h) = &u.home {
            users_per_node[h.index] += 1;
        }
    }
    let statements_owned = owned_counts(&owners, n);
    let direct = direct && n > 1;
    let expected = if direct {
        0.0
    } else {
        expected_forwarded_share(&owners, &users_per_node)
    };
    ctx.say(&format!(
        "ownership settled {settle_s:.1} s after the statements were created: statements per node {statements_owned:?}, users per node {users_per_node:?}, expected forwarded share {:.1} %",
        100.0 * expected
    ));
    pop.owners = owners.clone();
    if direct {
        ctx.say("orders go to their statement's owner directly: no hop");
        pop.direct = env.nodes.clone();
    }
    let pop = Arc::new(pop);
    let mut load = a.load.clone();
    load.duration = None;
    let peak = PeakOpts {
        steps: a.peak.steps.clone(),
        step_duration: a.load.duration.unwrap_or(a.peak.step_duration),
        fraction: a.peak.fraction,
    };
    let name = format!("n{n}{}-peak", if direct { "-direct" } else { "" });
    let (_, best_c, steps) =
        super::peak::find_peak_named(&env, &pop, &load, &peak, ctx, &name).await?;
    let best = steps
        .iter()
        .position(|s| s.connections == Some(best_c))
        .unwrap_or(0);
    let (ownership_stable, ownership_note, fenced_writes) = match read_cluster(&env, &pop).await {
        Ok((health, view)) => {
            let fenced = health.iter().map(|h| h.fenced_writes).sum();
            match settled_owners(&view, &env.node_ids, &pop.statements) {
                Ok(after) if after == owners => (true, None, fenced),
                Ok(_) => (false, Some("owners changed during the run".into()), fenced),
                Err(e) => (false, Some(e), fenced),
            }
        }
        Err(e) => (
            false,
            Some(format!("reading the cluster after the run: {e}")),
            0,
        ),
    };
    drop(env); // stops the nodes by PID, then Redis
    let (log_warnings, log_samples) = log_warnings(&logs);
    Ok(Phase {
        nodes: n,
        node_ids: (0..n).map(|i| format!("{id_prefix}{i}")).collect(),
        statements_owned,
        users_per_node,
        expected_forwarded_share: expected,
        settle_s,
        steps,
        best,
        ownership_stable,
        ownership_note,
        fenced_writes,
        log_warnings,
        log_samples,
        logs,
    })
}

/// What looked wrong in a phase.
fn anomalies(p: &Phase) -> Vec<String> {
    let mut v = Vec::new();
    let tag = format!("{} node(s)", p.nodes);
    for s in &p.steps {
        let http: u64 = s.ops.iter().map(|o| o.http_error).sum();
        let transport: u64 = s.ops.iter().map(|o| o.transport).sum();
        let busy: u64 = s.ops.iter().map(|o| o.overloaded).sum();
        if http + transport > 0 {
            v.push(format!(
                "{tag}, {}: {http} HTTP error(s), {transport} call(s) without answer; samples: {:?}",
                s.name,
                s.errors.iter().take(3).collect::<Vec<_>>()
            ));
        }
        if busy > 0 {
            v.push(format!("{tag}, {}: {busy} answer(s) 503/429", s.name));
        }
    }
    if !p.ownership_stable {
        v.push(format!(
            "{tag}: ownership not stable: {}",
            p.ownership_note.as_deref().unwrap_or("?")
        ));
    }
    if p.fenced_writes > 0 {
        v.push(format!("{tag}: {} fenced write(s)", p.fenced_writes));
    }
    if p.log_warnings > 0 {
        v.push(format!(
            "{tag}: {} WARN/ERROR line(s) in the node logs, e.g. {:?}",
            p.log_warnings,
            p.log_samples.iter().take(3).collect::<Vec<_>>()
        ));
    }
    v
}

fn clean_logs(dir: &Path) {
    // Only the logs this mode writes (`lt-n<N>-node<i>.log`).
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("lt-n") && name.ends_with(".log") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Runs the `cluster` mode.
pub async fn main(a: ClusterArgs) -> Result<i32> {
    let mut ctx = Ctx::new(&a.market, "cluster")?;
    if a.market.url.is_some() || a.market.redis_url.is_some() {
        bail!("cluster starts its own Redis and nodes: --url and --redis-url do not apply");
    }
    clean_logs(&ctx.dir.join("logs"));
    let n = usize::from(a.nodes);
    ctx.say(&format!(
        "cluster: 1 node, then {n} nodes, each over its own fresh Redis; {} requesters + {} producers pinned round robin to the nodes; {} statements; closed-loop steps {:?} of {:.0} s (+{:.0} s warm-up)",
        a.load.requesters,
        a.load.producers,
        a.load.statements,
        a.peak.steps,
        a.load.duration.unwrap_or(a.peak.step_duration).as_secs_f64(),
        a.load.warmup.as_secs_f64(),
    ));
    let one = phase(&a, 1, false, &mut ctx).await?;
    if driver::stopped() {
        bail!("stopped");
    }
    let many = phase(&a, n, false, &mut ctx).await?;
    if driver::stopped() {
        bail!("stopped");
    }
    let direct = phase(&a, n, true, &mut ctx).await?;
    let (one_side, many_side, direct_side) = (Side::of(&one), Side::of(&many), Side::of(&direct));
    let mut anomalies_v = anomalies(&one);
    anomalies_v.extend(anomalies(&many));
    anomalies_v.extend(anomalies(&direct));
    ctx.say(&format!(
        "\n==== 1 node vs {n} nodes (same run, same machine; ratios = {n} nodes / 1 node) ===="
    ));
    ctx.say(&per_step_text(&one, &many));
    ctx.say(&compare_text(&one_side, &many_side));
    ctx.say(&format!(
        "{n} nodes: forwarded share expected from ownership {:.1} %, measured {}; per-node intake = {} of one node's",
        100.0 * many.expected_forwarded_share,
        many_side
            .routing
            .as_ref()
            .map_or("n/a".into(), |r| format!("{:.1} %", 100.0 * r.forwarded_share)),
        ratio(many_side.orders_per_s_per_node, one_side.orders_per_s),
    ));
    let cpu_per_order = |side: &Side| {
        let nodes: f64 = side
            .cpu_seconds
            .iter()
            .filter(|(k, _)| k.starts_with("lt-n"))
            .map(|(_, v)| v)
            .sum();
        let orders = side.orders_per_s
            * a.load
                .duration
                .unwrap_or(a.peak.step_duration)
                .as_secs_f64();
        if orders > 0.0 {
            format!("{:.0} µs", 1e6 * nodes / orders)
        } else {
            "n/a".into()
        }
    };
    ctx.say(&format!(
        "\n==== {n} nodes: with the hop (users call their own node) vs without (orders sent to their statement's owner) ====\n\
         with the hop    {:>7.0} orders/s (p99 {:.3} ms), nodes' CPU per order {}, forwarded {}\n\
         without the hop {:>7.0} orders/s (p99 {:.3} ms), nodes' CPU per order {}, forwarded {}\n\
         without / with: {} (1 node: {:.0} orders/s; without the hop / 1 node: {})",
        many_side.orders_per_s,
        many_side.p99_us as f64 / 1000.0,
        cpu_per_order(&many_side),
        many_side.routing.as_ref().map_or("n/a".into(), |r| format!("{:.1} %", 100.0 * r.forwarded_share)),
        direct_side.orders_per_s,
        direct_side.p99_us as f64 / 1000.0,
        cpu_per_order(&direct_side),
        direct_side.routing.as_ref().map_or("n/a".into(), |r| format!("{:.1} %", 100.0 * r.forwarded_share)),
        ratio(direct_side.orders_per_s, many_side.orders_per_s),
        one_side.orders_per_s,
        ratio(direct_side.orders_per_s, one_side.orders_per_s),
    ));
    if anomalies_v.is_empty() {
        ctx.say("anomalies: none (no HTTP errors, no 503, ownership stable, no fenced write, no WARN/ERROR in the node logs)");
    } else {
        ctx.say("anomalies:");
        for x in &anomalies_v {
            ctx.say(&format!("  - {x}"));
        }
    }
    let result = ClusterResult {
        throughput_ratio: ratio_f(many_side.orders_per_s, one_side.orders_per_s),
        per_node_ratio: ratio_f(many_side.orders_per_s_per_node, one_side.orders_per_s),
        direct_ratio: ratio_f(direct_side.orders_per_s, many_side.orders_per_s),
        one,
        many,
        direct,
        one_side,
        many_side,
        direct_side,
        anomalies: anomalies_v,
    };
    ctx.finish(&result)?;
    Ok(0)
}

//! `cluster`: what scaling out over one Redis gives and costs, in one run on one
//! machine. First one node over a fresh Redis, then `--nodes` nodes over another fresh
//! Redis (distinct ports and ids, one shared JWT secret, temp data dirs, all stopped by
//! PID at the end). In both, the users are spread round robin over the nodes and pinned
//! to theirs (their connection pool only calls that node); after the statements are
//! created the harness waits until every node's `/health` is 200 with every node in its
//! view, and every statement's lease sits with its owner (`/cluster`). Then the peak
//! closed-loop order intake is searched as in `peak`, and each order is classified by
//! whether the node the user called owns its statement (local) or has to forward the
//! call to the owner (one more HTTP hop). The report puts both side by side, with the
//! ratios of the scale-out run to the one-node run, the forwarded share, local vs
//! forwarded latency (their difference is the hop's cost) and CPU per process.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::cli::{ClusterArgs, PeakOpts};
use crate::driver;
use crate::env::MarketEnv;
use crate::market::{self, Population, ROOT};
use crate::report::{ratio, RoutingReport, RunReport};
use crate::stats::ms;

use super::Ctx;

/// `GET /_db/market/v0_0/cluster`, the fields read here.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ClusterView {
    /// Live nodes.
    pub nodes: Vec<ViewNode>,
    /// Every statement with its owner and lease holder.
    pub statements: Vec<ViewStatement>,
}

/// A live node of `/cluster`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ViewNode {
    /// Its id.
    pub id: String,
    /// Its advertised URL.
    #[serde(default)]
    pub url: String,
    /// Statements whose lease it holds.
    #[serde(default)]
    pub statements: Vec<String>,
}

/// A statement of `/cluster`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ViewStatement {
    /// Its key.
    pub statement: String,
    /// The node that should own it (rendezvous over the live nodes).
    pub owner: Option<String>,
    /// The node holding its lease.
    pub lease_holder: Option<String>,
}

/// `GET /health`, the fields read here.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Health {
    /// The node's id.
    pub node: String,
    /// Live nodes in its view.
    pub live_nodes: usize,
    /// Statements whose matcher runs there.
    #[serde(default)]
    pub statements_owned: Vec<String>,
    /// Writes the store refused because another node had taken over.
    #[serde(default)]
    pub fenced_writes: u64,
}

/// Statement → index (in `ids`) of the node that owns it, once ownership has settled:
/// the live nodes are exactly `ids`, and every one of `statements` has an owner among
/// them that also holds its lease. Otherwise why not (for the timeout message).
pub fn settled_owners(
    view: &ClusterView,
    ids: &[String],
    statements: &[u64],
) -> std::result::Result<HashMap<u64, usize>, String> {
    let live: HashSet<&str> = view.nodes.iter().map(|n| n.id.as_str()).collect();
    let want: HashSet<&str> = ids.iter().map(String::as_str).collect();
    if live != want {
        let mut l: Vec<&str> = live.into_iter().collect();
        l.sort();
        return Err(format!("live nodes {l:?}, expected {ids:?}"));
    }
    let by_key: HashMap<&str, &ViewStatement> = view
        .statements
        .iter()
        .map(|s| (s.statement.as_str(), s))
        .collect();
    let mut owners = HashMap::new();
    for stmt in statements {
        let Some(s) = by_key.get(stmt.to_string().as_str()) else {
            return Err(format!("statement {stmt} not listed"));
        };
        let Some(owner) = s.owner.as_deref() else {
            return Err(format!("statement {stmt} has no owner"));
        };
        if s.lease_holder.as_deref() != Some(owner) {
            return Err(format!(
                "statement {stmt}: owner {owner}, lease held by {:?}",
                s.lease_holder
            ));
        }
        let Some(i) = ids.iter().position(|id| id == owner) else {
            return Err(format!("statement {stmt}: unknown owner {owner}"));
        };
        owners.insert(*stmt, i);
    }
    Ok(owners)
}

/// Checks that every node (in `ids` order) is answering as itself, sees all the nodes,
/// and runs the matchers of the statements `owners` gives it.
pub fn health_agrees(
    health: &[Health],
    ids: &[String],
    owners: &HashMap<u64, usize>,
) -> std::result::Result<(), String> {
    if health.len() != ids.len() {
        return Err(format!("{} of {} nodes healthy", health.len(), ids.len()));
    }
    for (i, (h, id)) in health.iter().zip(ids).enumerate() {
        if &h.node != id {
            return Err(format!("node {i} answers as {:?}, expected {id:?}", h.node));
        }
        if h.live_nodes != ids.len() {
            return Err(format!("{id} sees {} live nodes", h.live_nodes));
        }
        let running: HashSet<&str> = h.statements_owned.iter().map(String::as_str).collect();
        for (stmt, _) in owners.iter().filter(|(_, &o)| o == i) {
            if !running.contains(stmt.to_string().as_str()) {
                return Err(format!("{id} does not run statement {stmt} yet"));
            }
        }
    }
    Ok(())
}

/// How many of `statements` each of `nodes` nodes owns.
pub fn owned_counts(owners: &HashMap<u64, usize>, nodes: usize) -> Vec<usize> {
    let mut v = vec![0; nodes];
    for &o in owners.values() {
        if o < nodes {
            v[o] += 1;
        }
    }
    v
}

/// Share of orders the harness should see forwarded when users are spread evenly over
/// the nodes and statements are picked uniformly: for each statement, the share of
/// users not on its owner.
pub fn expected_forwarded_share(owners: &HashMap<u64, usize>, users_per_node: &[usize]) -> f64 {
    let users: usize = users_per_node.iter().sum();
    if owners.is_empty() || users == 0 {
        return 0.0;
    }
    let away: f64 = owners
        .values()
        .map(|&o| 1.0 - users_per_node.get(o).copied().unwrap_or(0) as f64 / users as f64)
        .sum();
    away / owners.len() as f64
}

/// One node count's measurements.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    /// Nodes.
    pub nodes: usize,
    /// Their ids, by index.
    pub node_ids: Vec<String>,
    /// Statements each node owns (by index).
    pub statements_owned: Vec<usize>,
    /// Users pinned to each node (by index).
    pub users_per_node: Vec<usize>,
    /// Forwarded share expected from the ownership and the users' spread.
    pub expected_forwarded_share: f64,
    /// Seconds from the statements' creation until ownership settled.
    pub settle_s: f64,
    /// The closed-loop steps.
    pub steps: Vec<RunReport>,
    /// Index of the best step in `steps`.
    pub best: usize,
    /// Ownership after the runs is the one the orders were classified with.
    pub ownership_stable: bool,
    /// What differed, when it was not.
    pub ownership_note: Option<String>,
    /// Fenced writes summed over the nodes after the runs.
    pub fenced_writes: u64,
    /// WARN/ERROR lines in the nodes' logs.
    pub log_warnings: usize,
    /// The first few of them.
    pub log_samples: Vec<String>,
    /// Where the nodes' logs are.
    pub logs: Vec<PathBuf>,
}

impl Phase {
    /// The best step.
    pub fn best(&self) -> &RunReport {
        &self.steps[self.best]
    }
}

/// The figures compared, one node against `nodes`.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    /// Nodes.
    pub nodes: usize,
    /// Connections of the best step.
    pub connections: usize,
    /// Orders acknowledged per second, in total.
    pub orders_per_s: f64,
    /// … per node.
    pub orders_per_s_per_node: f64,
    /// Order latency p50 (µs).
    pub p50_us: u64,
    /// Order latency p99 (µs).
    pub p99_us: u64,
    /// Orders not acknowledged (503, errors, no answer).
    pub failures: u64,
    /// Routing of the orders.
    pub routing: Option<RoutingReport>,
    /// CPU seconds used during the measured window, per process.
    pub cpu_seconds: BTreeMap<String, f64>,
}

impl Side {
    /// The figures of a phase's best step.
    pub fn of(p: &Phase) -> Side {
        let r = p.best();
        Side {
            nodes: p.nodes,
            connections: r.connections.unwrap_or(0),
            orders_per_s: r.orders_per_s,
            orders_per_s_per_node: r.orders_per_s / p.nodes.max(1) as f64,
            p50_us: r.order_latency.p50_us,
            p99_us: r.order_latency.p99_us,
            failures: r.failures,
            routing: r.routing.clone(),
            cpu_seconds: r
                .cpu_cores
                .iter()
                .map(|(k, c)| (k.clone(), c * r.window_s))
                .collect(),
        }
    }
}

/// `value / base` as a factor (`n/a` without a base).
pub fn factor(value: f64, base: f64) -> String {
    if base > 0.0 {
        format!("{:.2}x", value / base)
    } else {
        "n/a".into()
    }
}

/// The side-by-side table.
pub fn compare_text(one: &Side, many: &Side) -> String {
    let mut t = String::new();
    let n = many.nodes;
    let _ = writeln!(
        t,
        "{:<34} {:>14} {:>14} {:>9}",
        "figure (best closed-loop step)",
        "1 node",
        format!("{n} nodes"),
        "ratio"
    );
    let row = |t: &mut String, name: &str, a: String, b: String, r: String| {
        let _ = writeln!(t, "{name:<34} {a:>14} {b:>14} {r:>9}");
    };
    row(
        &mut t,
        "connections",
        one.connections.to_string(),
        many.connections.to_string(),
        String::new(),
    );
    row(
        &mut t,
        "orders/s, total",
        format!("{:.0}", one.orders_per_s),
        format!("{:.0}", many.orders_per_s),
        factor(many.orders_per_s, one.orders_per_s),
    );
    row(
        &mut t,
        "orders/s per node",
        format!("{:.0}", one.orders_per_s_per_node),
        format!("{:.0}", many.orders_per_s_per_node),
        factor(many.orders_per_s_per_node, one.orders_per_s_per_node),
    );
    let lat = |t: &mut String, name: &str, a: u64, b: u64| {
        row(t, name, ms(a), ms(b), factor(b as f64, a as f64));
    };
    lat(&mut t, "order latency p50 (ms)", one.p50_us, many.p50_us);
    lat(&mut t, "order latency p99 (ms)", one.p99_us, many.p99_us);
    row(
        &mut t,
        "orders not acknowledged",
        one.failures.to_string(),
        many.failures.to_string(),
        String::new(),
    );
    let share = |s: &Side| {
        s.routing.as_ref().map_or("n/a".into(), |r| {
            format!("{:.1} %", 100.0 * r.forwarded_share)
        })
    };
    row(
        &mut t,
        "forwarded share of acked orders",
        share(one),
        share(many),
        String::new(),
    );
    let pct = |s: &Side, f: fn(&RoutingReport) -> (u64, u64)| {
        s.routing
            .as_ref()
            .map(f)
            .filter(|&(count, _)| count > 0)
            .map(|(_, v)| v)
    };
    let opt_ms = |v: Option<u64>| v.map_or("-".into(), ms);
    type Pick = fn(&RoutingReport) -> (u64, u64);
    let picks: [(&str, Pick); 4] = [
        ("local orders p50 (ms)", |r| (r.local.count, r.local.p50_us)),
        ("local orders p99 (ms)", |r| (r.local.count, r.local.p99_us)),
        ("forwarded orders p50 (ms)", |r| {
            (r.forwarded.count, r.forwarded.p50_us)
        }),
        ("forwarded orders p99 (ms)", |r| {
            (r.forwarded.count, r.forwarded.p99_us)
        }),
    ];
    for (name, f) in picks {
        let (a, b) = (pct(one, f), pct(many, f));
        let r = match (a, b) {
            (Some(a), Some(b)) => factor(b as f64, a as f64),
            _ => String::new(),
        };
        row(&mut t, name, opt_ms(a), opt_ms(b), r);
    }
    if let Some(r) = &many.routing {
        if r.local.count > 0 && r.forwarded.count > 0 {
            let d = |f: u64, l: u64| {
                let d = f as i64 - l as i64;
                format!("{}{}", if d < 0 { "-" } else { "+" }, ms(d.unsigned_abs()))
            };
            let _ = writeln!(
                t,
                "forwarding hop ({n} nodes, forwarded - local): p50 {} ms, p99 {} ms",
                d(r.forwarded.p50_us, r.local.p50_us),
                d(r.forwarded.p99_us, r.local.p99_us)
            );
        }
        let _ = writeln!(
            t,
            "orders/s per node ({n} nodes): by entry node {} | by owner node {}",
            crate::report::per_node(&r.orders_per_s_by_entry),
            crate::report::per_node(&r.orders_per_s_by_owner)
        );
    }
    for s in [one, many] {
        let parts: Vec<String> = s
            .cpu_seconds
            .iter()
            .map(|(k, v)| format!("{k} {v:.1}"))
            .collect();
        let _ = writeln!(
            t,
            "CPU seconds in the measured window, {} node(s): {}",
            s.nodes,
            parts.join(", ")
        );
    }
    t
}

/// Orders/s of both runs at each connection count both measured.
pub fn per_step_text(one: &Phase, many: &Phase) -> String {
    let mut t = String::new();
    for a in &one.steps {
        let Some(b) = many.steps.iter().find(|b| b.connections == a.connections) else {
            continue;
        };
        let _ = writeln!(
            t,
            "  {:>4} connections: 1 node {:>7.0} orders/s (p99 {} ms) | {} nodes {:>7.0} orders/s (p99 {} ms) | ratio {}",
            a.connections.unwrap_or(0),
            a.orders_per_s,
            ms(a.order_latency.p99_us),
            many.nodes,
            b.orders_per_s,
            ms(b.order_latency.p99_us),
            factor(b.orders_per_s, a.orders_per_s)
        );
    }
    t
}

/// Everything `cluster` measured.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterResult {
    /// One node.
    pub one: Phase,
    /// `--nodes` nodes.
    pub many: Phase,
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

/// Reads the nodes' `/health` (all must answer 200) and `/cluster` (through node 0).
async fn read_cluster(
    env: &MarketEnv,
    pop: &Population,
) -> std::result::Result<(Vec<Health>, ClusterView), String> {
    let user = pop.requesters.first().ok_or("no user")?;
    let mut health = Vec::new();
    for t in &env.nodes {
        let url = format!("{}/health", t.base());
        let r = user
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("{url}: {}", r.status()));
        }
        health.push(r.json::<Health>().await.map_err(|e| e.to_string())?);
    }
    let url = format!("{}{ROOT}/cluster", env.nodes[0].base());
    let r = user
        .http
        .get(&url)
        .header("authorization", user.auth.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("{url}: {}", r.status()));
    }
    let view = r.json::<ClusterView>().await.map_err(|e| e.to_string())?;
    Ok((health, view))
}

/// Waits until ownership has settled; returns statement → node index.
async fn wait_settled(
    env: &MarketEnv,
    pop: &Population,
    limit: Duration,
) -> Result<HashMap<u64, usize>> {
    let deadline = Instant::now() + limit;
    loop {
        let why = match read_cluster(env, pop).await {
            Ok((health, view)) => {
                match settled_owners(&view, &env.node_ids, &pop.statements)
                    .and_then(|o| health_agrees(&health, &env.node_ids, &o).map(|()| o))
                {
                    Ok(o) => return Ok(o),
                    Err(e) => e,
                }
            }
            Err(e) => e,
        };
        if Instant::now() >= deadline || driver::stopped() {
            bail!("ownership did not settle within {limit:?}: {why}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
async fn phase(a: &ClusterArgs, n: usize, ctx: &mut Ctx) -> Result<Phase> {
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
    let run = format!("lt{}c{n}", ctx.seed % 1_000_000);
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
    let expected = expected_forwarded_share(&owners, &users_per_node);
    ctx.say(&format!(
        "ownership settled {settle_s:.1} s after the statements were created: statements per node {statements_owned:?}, users per node {users_per_node:?}, expected forwarded share {:.1} %",
        100.0 * expected
    ));
    pop.owners = owners.clone();
    let pop = Arc::new(pop);
    let mut load = a.load.clone();
    load.duration = None;
    let peak = PeakOpts {
        steps: a.peak.steps.clone(),
        step_duration: a.load.duration.unwrap_or(a.peak.step_duration),
        fraction: a.peak.fraction,
    };
    let (_, best_c, steps) =
        super::peak::find_peak_named(&env, &pop, &load, &peak, ctx, &format!("n{n}-peak")).await?;
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
    let one = phase(&a, 1, &mut ctx).await?;
    if driver::stopped() {
        bail!("stopped");
    }
    let many = phase(&a, n, &mut ctx).await?;
    let (one_side, many_side) = (Side::of(&one), Side::of(&many));
    let mut anomalies_v = anomalies(&one);
    anomalies_v.extend(anomalies(&many));
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
        one,
        many,
        one_side,
        many_side,
        anomalies: anomalies_v,
    };
    ctx.finish(&result)?;
    Ok(0)
}

fn ratio_f(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Percentiles;

    fn view(nodes: &[&str], stmts: &[(&str, Option<&str>, Option<&str>)]) -> ClusterView {
        ClusterView {
            nodes: nodes
                .iter()
                .map(|id| ViewNode {
                    id: (*id).into(),
                    url: String::new(),
                    statements: Vec::new(),
                })
                .collect(),
            statements: stmts
                .iter()
                .map(|(s, o, l)| ViewStatement {
                    statement: (*s).into(),
                    owner: o.map(Into::into),
                    lease_holder: l.map(Into::into),
                })
                .collect(),
        }
    }

    fn ids() -> Vec<String> {
        vec!["a".into(), "b".into(), "c".into()]
    }

    #[test]
    fn settles_only_when_every_lease_sits_with_its_owner() {
        let ok = view(
            &["c", "a", "b"],
            &[
                ("10", Some("a"), Some("a")),
                ("11", Some("c"), Some("c")),
                ("99", Some("b"), None), // not ours: ignored
            ],
        );
        let o = settled_owners(&ok, &ids(), &[10, 11]).unwrap();
        assert_eq!(o, HashMap::from([(10, 0), (11, 2)]));
        let moving = view(
            &["a", "b", "c"],
            &[("10", Some("a"), Some("b")), ("11", Some("c"), Some("c"))],
        );
        assert!(settled_owners(&moving, &ids(), &[10, 11])
            .unwrap_err()
            .contains("lease held by"));
        let unheld = view(&["a", "b", "c"], &[("10", Some("a"), None)]);
        assert!(settled_owners(&unheld, &ids(), &[10]).is_err());
        let missing_node = view(&["a", "b"], &[("10", Some("a"), Some("a"))]);
        assert!(settled_owners(&missing_node, &ids(), &[10])
            .unwrap_err()
            .contains("live nodes"));
        assert!(settled_owners(&ok, &ids(), &[12])
            .unwrap_err()
            .contains("not listed"));
        let stranger = view(&["a", "b", "c"], &[("10", Some("z"), Some("z"))]);
        assert!(settled_owners(&stranger, &ids(), &[10]).is_err());
    }

    #[test]
    fn parses_the_nodes_answers() {
        let v: ClusterView = serde_json::from_str(
            r#"{"node":"a","nodes":[{"id":"a","url":"http://127.0.0.1:1","statements":["10"]}],
                "statements":[{"statement":"10","owner":"a","lease_holder":"a","fencing_token":3,"fenced_writes":0}]}"#,
        )
        .unwrap();
        assert_eq!(
            settled_owners(&v, &["a".into()], &[10]).unwrap(),
            HashMap::from([(10, 0)])
        );
        let h: Health = serde_json::from_str(
            r#"{"status":"ok","ready":true,"node":"a","url":"u","redis":"reachable","statements":1,
                "statements_owned":["10"],"live_nodes":1,"fenced_writes":0}"#,
        )
        .unwrap();
        assert_eq!(h.statements_owned, vec!["10".to_string()]);
    }

    #[test]
    fn health_must_agree_with_ownership() {
        let h = |node: &str, live: usize, owned: &[&str]| Health {
            node: node.into(),
            live_nodes: live,
            statements_owned: owned.iter().map(|s| (*s).into()).collect(),
            fenced_writes: 0,
        };
        let owners = HashMap::from([(10, 0), (11, 2)]);
        let good = [h("a", 3, &["10"]), h("b", 3, &[]), h("c", 3, &["11"])];
        assert_eq!(health_agrees(&good, &ids(), &owners), Ok(()));
        let stale_view = [h("a", 2, &["10"]), h("b", 3, &[]), h("c", 3, &["11"])];
        assert!(health_agrees(&stale_view, &ids(), &owners).is_err());
        let not_running = [h("a", 3, &["10"]), h("b", 3, &[]), h("c", 3, &[])];
        assert!(health_agrees(&not_running, &ids(), &owners)
            .unwrap_err()
            .contains("statement 11"));
        let swapped = [h("b", 3, &[]), h("a", 3, &["10"]), h("c", 3, &["11"])];
        assert!(health_agrees(&swapped, &ids(), &owners).is_err());
        assert!(health_agrees(&good[..2], &ids(), &owners).is_err());
    }

    #[test]
    fn ownership_counts_and_expected_forwarding() {
        let owners = HashMap::from([(1, 0), (2, 0), (3, 1), (4, 2)]);
        assert_eq!(owned_counts(&owners, 3), vec![2, 1, 1]);
        // Users evenly over 3 nodes: 2/3 of the orders land on a node not owning.
        let e = expected_forwarded_share(&owners, &[4, 4, 4]);
        assert!((e - 2.0 / 3.0).abs() < 1e-9, "{e}");
        // One node: nothing is forwarded.
        let one = HashMap::from([(1, 0), (2, 0)]);
        assert_eq!(expected_forwarded_share(&one, &[8]), 0.0);
        // Uneven users: statement on node 0 (6 of 8 users) and node 1 (2 of 8).
        let e = expected_forwarded_share(&HashMap::from([(1, 0), (2, 1)]), &[6, 2]);
        assert!((e - (0.25 + 0.75) / 2.0).abs() < 1e-9, "{e}");
        assert_eq!(expected_forwarded_share(&HashMap::new(), &[1]), 0.0);
    }

    fn side(nodes: usize, orders: f64, p50: u64, p99: u64, routing: Option<RoutingReport>) -> Side {
        Side {
            nodes,
            connections: 64,
            orders_per_s: orders,
            orders_per_s_per_node: orders / nodes as f64,
            p50_us: p50,
            p99_us: p99,
            failures: 0,
            routing,
            cpu_seconds: BTreeMap::from([("node0".to_string(), 7.5)]),
        }
    }

    fn pct(count: u64, p50: u64, p99: u64) -> Percentiles {
        Percentiles {
            count,
            p50_us: p50,
            p99_us: p99,
            ..Percentiles::default()
        }
    }

    #[test]
    fn comparison_shows_ratios_and_the_hop() {
        assert_eq!(factor(1.0, 4.0), "0.25x");
        assert_eq!(factor(1.0, 0.0), "n/a");
        let one = side(
            1,
            12_000.0,
            4_000,
            12_000,
            Some(RoutingReport {
                orders: 10,
                forwarded_share: 0.0,
                local: pct(10, 4_000, 12_000),
                forwarded: Percentiles::default(),
                local_failed: 0,
                forwarded_failed: 0,
                orders_per_s_by_entry: vec![12_000.0],
                orders_per_s_by_owner: vec![12_000.0],
            }),
        );
        let many = side(
            3,
            9_000.0,
            6_000,
            20_000,
            Some(RoutingReport {
                orders: 10,
                forwarded_share: 0.66,
                local: pct(3, 4_500, 15_000),
                forwarded: pct(7, 7_000, 21_000),
                local_failed: 0,
                forwarded_failed: 0,
                orders_per_s_by_entry: vec![3_000.0; 3],
                orders_per_s_by_owner: vec![4_000.0, 3_000.0, 2_000.0],
            }),
        );
        let t = compare_text(&one, &many);
        assert!(t.contains("0.75x"), "{t}"); // total
        assert!(t.contains("0.25x"), "{t}"); // per node
        assert!(t.contains("66.0 %"), "{t}");
        assert!(t.contains("p50 +2.500 ms, p99 +6.000 ms"), "{t}");
        assert!(
            t.contains("by owner node node0 4000, node1 3000, node2 2000"),
            "{t}"
        );
        assert!(t.contains("node0 7.5"), "{t}");
        // No forwarded orders on one node: shown as '-', no ratio.
        let fwd_line = t
            .lines()
            .find(|l| l.starts_with("forwarded orders p50"))
            .unwrap();
        assert!(
            fwd_line.contains(" - ") || fwd_line.contains("-  "),
            "{fwd_line}"
        );
        assert_eq!(ratio_f(3.0, 0.0), 0.0);
    }
}

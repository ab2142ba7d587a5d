//! `leases`: a node's lease upkeep at scale, through the market's own store code.
//!
//! Puts N statements in a private Redis (or a 3-master Redis Cluster with `--cluster`):
//! their keys in the statement list, and their leases held by one node. Then times, in
//! the same run, what an upkeep round costs the old way and the new way:
//! - listing the statements: `ZRANGE` of all of them (every round, old) vs `ZCARD`
//!   (new: the list is read again only when the count changed);
//! - renewing every lease: one `renew_lease` script call after another (old) vs
//!   `renew_leases` (new: pipelined, 1000 a round trip);
//! - taking all N over: `acquire_lease` one after another vs `acquire_leases`.
//!
//! Each renewal round is checked (every lease renewed), measured `--rounds` times each
//! way alternating, and reported as the median, as a ratio, and as a fraction of the
//! lease (a round runs every third of one), with the Redis CPU seconds it took.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use proof_market::domain::Key;
use proof_market::store::keys::Keys;
use proof_market::store::{Lease, RedisTarget, Store};
use serde::Serialize;

use crate::cli::LeasesArgs;
use crate::env::default_out;
use crate::procfs;
use crate::procs::{OwnCluster, OwnRedis};

use super::Ctx;

const NODE: &str = "lt-node";
const PREFIX: &str = "lt-leases";

/// One way of doing a step: its measured times (s) and Redis CPU (s).
#[derive(Debug, Clone, Serialize)]
pub struct Way {
    /// Wall time of each measurement.
    pub seconds: Vec<f64>,
    /// The median of `seconds`.
    pub median_s: f64,
    /// Redis CPU seconds (all masters) of each measurement.
    pub redis_cpu_s: Vec<f64>,
}

impl Way {
    fn new() -> Way {
        Way {
            seconds: Vec::new(),
            median_s: 0.0,
            redis_cpu_s: Vec::new(),
        }
    }

    fn finish(&mut self) {
        let mut v = self.seconds.clone();
        v.sort_by(f64::total_cmp);
        self.median_s = v.get(v.len() / 2).copied().unwrap_or(0.0);
    }
}

/// Old and new way of one step.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// One call after another (the old upkeep).
    pub sequential: Way,
    /// Pipelined (the new upkeep).
    pub pipelined: Way,
    /// sequential ÷ pipelined (medians).
    pub ratio: f64,
}

/// Everything the mode measured.
#[derive(Debug, Clone, Serialize)]
pub struct LeasesReport {
    /// Statements (leases held by one node).
    pub statements: u64,
    /// Over a Redis Cluster of three masters.
    pub cluster: bool,
    /// Lease length (ms) compared with.
    pub lease_ms: u64,
    /// Listing the statements: `ZRANGE` of all (sequential) vs `ZCARD` (pipelined).
    pub listing: Step,
    /// Renewing every lease.
    pub renewal: Step,
    /// Acquiring every lease (a takeover of all N; measured once each way).
    pub acquisition: Step,
    /// A whole round's store work, old (ZRANGE + sequential renewals) and new (ZCARD +
    /// pipelined renewals), as fractions of the lease.
    pub old_round_of_lease: f64,
    /// See `old_round_of_lease`.
    pub new_round_of_lease: f64,
}

/// The Redis processes' CPU seconds so far.
fn redis_cpu(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|&p| procfs::cpu_seconds(p)).sum()
}

/// Times `f` and the Redis CPU it took, into `way`.
async fn measure<F, T>(way: &mut Way, pids: &[u32], f: F) -> T
where
    F: std::future::Future<Output = T>,
{
    let cpu = redis_cpu(pids);
    let t = Instant::now();
    let out = f.await;
    way.seconds.push(t.elapsed().as_secs_f64());
    way.redis_cpu_s.push(redis_cpu(pids) - cpu);
    out
}

/// Adds the statement keys to the statement list, 10,000 a pipeline.
async fn list_statements(url: &str, cluster: bool, n: u64) -> Result<()> {
    let list = Keys::new(PREFIX).statements();
    let mut pipes = Vec::new();
    for start in (1..=n).step_by(10_000) {
        let mut p = redis::pipe();
        for k in start..(start + 10_000).min(n + 1) {
            p.zadd(&list, k, k).ignore();
        }
        pipes.push(p);
    }
    if cluster {
        // One key, so each pipeline stays in one slot.
        let seeds: Vec<&str> = url.split(',').collect();
        let mut c = redis::cluster::ClusterClient::new(seeds)?
            .get_async_connection()
            .await?;
        for p in &pipes {
            p.exec_async(&mut c).await?;
        }
    } else {
        let mut c = redis::Client::open(url)?
            .get_multiplexed_async_connection()
            .await?;
        for p in &pipes {
            p.exec_async(&mut c).await?;
        }
    }
    Ok(())
}

/// Runs the `leases` mode.
pub async fn main(a: LeasesArgs) -> Result<i32> {
    let mut ctx = Ctx {
        dir: a.out.clone().unwrap_or_else(default_out).join("leases"),
        seed: 0,
        summary: String::new(),
    };
    std::fs::create_dir_all(&ctx.dir)?;
    let (_single, _cluster, url, pids) = if a.cluster {
        let c = OwnCluster::start()?;
        let (url, pids) = (c.url(), c.pids());
        (None, Some(c), url, pids)
    } else {
        let r = OwnRedis::start(&[])?;
        let (url, pids) = (r.url(), vec![r.pid()]);
        (Some(r), None, url, pids)
    };
    let n = a.statements;
    let lease = a.lease_ms;
    let store = Store::open(
        &RedisTarget::parse(&url, a.cluster).map_err(anyhow::Error::msg)?,
        PREFIX,
    )
    .await?;
    ctx.say(&format!(
        "leases: {n} statements held by one node, lease {lease} ms (a round every {:.0} ms), {}",
        lease as f64 / 3.0,
        if a.cluster {
            "a private Redis Cluster of 3 masters (AOF everysec)"
        } else {
            "a private Redis (AOF everysec)"
        }
    ));
    let stmts: Vec<Key> = (1..=n).map(Key).collect();

    // The statement list.
    list_statements(&url, a.cluster, n).await?;
    let mut listing = Step {
        sequential: Way::new(),
        pipelined: Way::new(),
        ratio: 0.0,
    };
    for _ in 0..a.rounds {
        let all = measure(&mut listing.sequential, &pids, store.statement_keys()).await?;
        if all.len() as u64 != n {
            bail!("listed {} statements of {n}", all.len());
        }
        let count = measure(&mut listing.pipelined, &pids, store.statement_count()).await?;
        if count != n {
            bail!("counted {count} statements of {n}");
        }
    }

    // Taking them all: one after another, then pipelined (the same node takes its own
    // leases again, each time with a new fencing token: the same script work).
    let mut acquisition = Step {
        sequential: Way::new(),
        pipelined: Way::new(),
        ratio: 0.0,
    };
    measure(&mut acquisition.sequential, &pids, async {
        for &s in &stmts {
            match store.acquire_lease(s, NODE, lease).await? {
                Lease::Acquired(_) => {}
                Lease::HeldBy(h) => bail!("statement {s} held by {h}"),
            }
        }
        Ok(())
    })
    .await?;
    let taken = measure(
        &mut acquisition.pipelined,
        &pids,
        store.acquire_leases(&stmts, NODE, lease),
    )
    .await;
    let mut held = Vec::with_capacity(stmts.len());
    for (&s, r) in stmts.iter().zip(taken) {
        match r.with_context(|| format!("acquiring statement {s}'s lease"))? {
            Lease::Acquired(t) => held.push((s, t)),
            Lease::HeldBy(h) => bail!("statement {s} held by {h}"),
        }
    }

    // Renewal rounds, alternating.
    let mut renewal = Step {
        sequential: Way::new(),
        pipelined: Way::new(),
        ratio: 0.0,
    };
    for _ in 0..a.rounds {
        measure(&mut renewal.sequential, &pids, async {
            for &(s, t) in &held {
                if !store.renew_lease(s, NODE, t, lease).await? {
                    bail!("statement {s}'s lease was not renewed");
                }
            }
            Ok(())
        })
        .await?;
        let renewed = measure(
            &mut renewal.pipelined,
            &pids,
            store.renew_leases(&held, NODE, lease),
        )
        .await;
        for (&(s, _), r) in held.iter().zip(renewed) {
            if !r.with_context(|| format!("renewing statement {s}'s lease"))? {
                bail!("statement {s}'s lease was not renewed");
            }
        }
    }

    for step in [&mut listing, &mut acquisition, &mut renewal] {
        step.sequential.finish();
        step.pipelined.finish();
        step.ratio = step.sequential.median_s / step.pipelined.median_s.max(1e-9);
    }
    let lease_s = Duration::from_millis(lease).as_secs_f64();
    let report = LeasesReport {
        statements: n,
        cluster: a.cluster,
        lease_ms: lease,
        old_round_of_lease: (listing.sequential.median_s + renewal.sequential.median_s) / lease_s,
        new_round_of_lease: (listing.pipelined.median_s + renewal.pipelined.median_s) / lease_s,
        listing,
        renewal,
        acquisition,
    };
    let line = |what: &str, s: &Step| {
        format!(
            "  {what:<38} {:>9.1} ms  {:>9.1} ms  {:>7.1}x   Redis CPU {:.2} s vs {:.2} s",
            s.sequential.median_s * 1e3,
            s.pipelined.median_s * 1e3,
            s.ratio,
            s.sequential.redis_cpu_s.iter().sum::<f64>()
                / s.sequential.redis_cpu_s.len().max(1) as f64,
            s.pipelined.redis_cpu_s.iter().sum::<f64>()
                / s.pipelined.redis_cpu_s.len().max(1) as f64,
        )
    };
    ctx.say(&format!(
        "  {:<38} {:>12} {:>12} {:>8}\n{}\n{}\n{}",
        "(median of each way)",
        "old",
        "new",
        "ratio",
        line("list statements (ZRANGE vs ZCARD)", &report.listing),
        line(&format!("renew {n} leases"), &report.renewal),
        line(
            &format!("acquire {n} leases (once each way)"),
            &report.acquisition
        ),
    ));
    ctx.say(&format!(
        "  renewal round: old {:.1} ms = {:.1} % of the lease, new {:.1} ms = {:.2} % of the lease; \
         whole round's store work (listing + renewals): old {:.1} %, new {:.2} % of the lease",
        report.renewal.sequential.median_s * 1e3,
        100.0 * report.renewal.sequential.median_s / lease_s,
        report.renewal.pipelined.median_s * 1e3,
        100.0 * report.renewal.pipelined.median_s / lease_s,
        100.0 * report.old_round_of_lease,
        100.0 * report.new_round_of_lease,
    ));
    ctx.finish(&report)?;
    Ok(0)
}

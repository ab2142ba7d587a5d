//! The two ceilings every market figure is divided by, measured in the same run:
//!
//! - HTTP ceiling: the `baseline-server` child (plain actix-web route, same JSON, no
//!   Redis) driven by the very same client code, connections and users.
//! - Store ceiling: `redis-benchmark` against a scratch redis-server configured like the
//!   market's (AOF, `appendfsync everysec`). The server makes ~2 Redis round trips per
//!   order (a pipelined locator `SET` + `EVALSHA` of the transition script), so the
//!   primary store ceiling is `SET` ops/s (`-P 1`) ÷ 2. Two more figures are reported:
//!   `SET -P 16` (what pipelining/group commit can buy), and an `EVAL` of a script that
//!   writes what a new order writes (`EXISTS`, `HSET` of the order's 12 fields, `ZADD`
//!   to the status index) combined with one `SET`: 1 / (1/set + 1/eval) orders/s.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::driver::{self, Load, Pricing, RunSpec};
use crate::market::{Population, Target};
use crate::mix::Mix;
use crate::procs::{BaselineChild, OwnRedis};
use crate::report::RunReport;

/// One redis-benchmark run.
#[derive(Debug, Clone, Serialize)]
pub struct RedisBench {
    /// What it stands for.
    pub label: String,
    /// The command benchmarked.
    pub command: String,
    /// `-c`.
    pub clients: usize,
    /// `-P`.
    pub pipeline: usize,
    /// `-n`.
    pub requests: u64,
    /// Result.
    pub ops_per_s: f64,
}

/// The store ceiling.
#[derive(Debug, Clone, Serialize)]
pub struct StoreCeiling {
    /// The runs.
    pub benches: Vec<RedisBench>,
    /// `SET -P 1` ops/s ÷ 2 calls per order.
    pub orders_per_s: f64,
    /// One `SET` + one order-writing `EVAL` per order, unpipelined.
    pub orders_per_s_script: f64,
}

/// The Lua body of the order-shaped benchmark (what the `new` transition writes).
const ORDER_SCRIPT: &str = "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end \
redis.call('HSET', KEYS[1], 'kind', 'request', 'status', 'created', 'statement_key', '1', \
'cost', '5000000', 'eval_time', '', 'wait_period', '', 'sender', 'lt-req0', \
'createdOn', '1795627360805', 'updatedOn', '1795627360805', 'seq', ARGV[1], \
'input', '[{~field~:1},{~field~:2}]', 'canon', '1 2') \
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[1]) return 1";

/// The `rps` column of `redis-benchmark --csv` (last data line).
pub fn parse_csv_rps(text: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with("\"test\""))
        .filter_map(|l| {
            // The test name may itself hold commas and quotes; `rps` is the 7th
            // column from the end (test, rps, avg, min, p50, p95, p99, max).
            let cols: Vec<&str> = l.split("\",\"").collect();
            let i = cols.len().checked_sub(7)?;
            cols.get(i)?.trim_matches('"').parse::<f64>().ok()
        })
        .next_back()
}

fn bench(port: u16, clients: usize, pipeline: usize, n: u64, cmd: &[&str]) -> Result<f64> {
    let mut c = Command::new("redis-benchmark");
    c.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-c", &clients.to_string(), "-P", &pipeline.to_string()])
        .args(["-n", &n.to_string(), "-r", "100000000", "--csv"])
        .args(cmd);
    let out = c
        .output()
        .context("running redis-benchmark (apt-get install redis-tools)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    match parse_csv_rps(&text) {
        Some(v) if out.status.success() => Ok(v),
        _ => bail!(
            "redis-benchmark {cmd:?} failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Measures the store ceiling on a scratch Redis with `clients` connections.
pub fn store_ceiling(clients: usize, n: u64) -> Result<StoreCeiling> {
    let redis = OwnRedis::start(&[])?;
    let port = redis.port();
    let clients = clients.clamp(1, 1000);
    let n = n.max(1000);
    let mut benches = Vec::new();
    let mut run = |label: &str, pipeline: usize, n: u64, cmd: &[&str]| -> Result<f64> {
        let v = bench(port, clients, pipeline, n, cmd)?;
        benches.push(RedisBench {
            label: label.into(),
            command: cmd.join(" "),
            clients,
            pipeline,
            requests: n,
            ops_per_s: v,
        });
        Ok(v)
    };
    let set = run("SET, unpipelined", 1, n, &["-t", "set"])?;
    run("SET, pipeline 16", 16, n * 4, &["-t", "set"])?;
    let eval = run(
        "order-writing EVAL, unpipelined",
        1,
        n,
        &[
            "EVAL",
            ORDER_SCRIPT,
            "2",
            "pm:{stmt:1}:o:__rand_int__",
            "pm:{stmt:1}:ix:request:created",
            "__rand_int__",
        ],
    )?;
    drop(redis);
    Ok(StoreCeiling {
        benches,
        orders_per_s: set / 2.0,
        orders_per_s_script: 1.0 / (1.0 / set + 1.0 / eval),
    })
}

/// Measures the HTTP ceiling: the baseline server driven closed loop like the market.
pub async fn http_ceiling(
    users: usize,
    connections: usize,
    span: Duration,
    warmup: Duration,
    seed: u64,
    log: &std::path::Path,
) -> Result<RunReport> {
    let child = BaselineChild::start(0, log).await?;
    let target = Arc::new(Target::new(child.url())?);
    let pop = Arc::new(Population::anonymous(users)?);
    let spec = RunSpec {
        name: "http-ceiling".into(),
        load: Load::Closed { connections },
        mix: Mix::parse(Mix::INTAKE)?,
        pricing: Pricing::Crossing,
        span,
        warmup,
        max_ops: u64::MAX / 2,
        verify_every: 0,
        record_acks: false,
        baseline: true,
        seed,
        idempotency_keys: false,
        acked_orders: None,
        closing: None,
    };
    let out = driver::run(
        target,
        pop,
        spec,
        vec![("baseline-server".into(), child.pid())],
    )
    .await?;
    drop(child);
    Ok(RunReport::from_output(&out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_redis_benchmark_csv() {
        let text = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\"SET\",\"77519.38\",\"0.112\",\"0.032\",\"0.103\",\"0.183\",\"0.287\",\"1.167\"\n";
        assert_eq!(parse_csv_rps(text), Some(77_519.38));
        let custom =
            "\"EVAL a\",\"b 2 k\",\"1234.5\",\"0.1\",\"0.1\",\"0.1\",\"0.1\",\"0.1\",\"0.1\"\n";
        assert_eq!(parse_csv_rps(custom), Some(1234.5));
        assert_eq!(parse_csv_rps(""), None);
    }
}

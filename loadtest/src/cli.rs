//! Command-line interface: subcommands and their options.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Load, latency, memory and soak tests of the Proof Market over HTTP (loopback only).
///
/// Without `--url`, every mode starts its own redis-server (AOF, appendfsync everysec, in
/// a temp dir) and its own market node from `--server-bin`, and stops both at the end.
#[derive(Debug, Parser)]
#[command(name = "loadtest", version)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Modes.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// One load run: closed loop (default) or open loop (`--rate`), with a mix of calls.
    Run(RunArgs),
    /// Find the peak closed-loop order intake, then run open loop at a fraction of it
    /// (default 70 %) and report the match latency.
    Peak(PeakArgs),
    /// Place N non-crossing resting orders and report server RSS and Redis memory.
    Memory(MemoryArgs),
    /// Long run at half the peak rate with a kill -9 and restart of the node in the
    /// middle; then check the invariants against Redis. Exits non-zero on violations.
    Soak(SoakArgs),
    /// Check the invariants of a market's Redis (`--redis-url`, loopback only) as it is
    /// now, without load: statuses, indexes, links, match rules, crossed books.
    Check(CheckArgs),
    /// Only the two ceilings: the plain HTTP route and redis-benchmark.
    Ceilings(CeilingArgs),
    /// Scale-out: the peak closed-loop intake of 1 node, then of `--nodes` nodes over
    /// one Redis (users pinned round robin to the nodes), side by side: orders/s in
    /// total and per node, latency, and local vs forwarded orders.
    Cluster(ClusterArgs),
    /// Lease upkeep at scale, through the market's own store code (not over HTTP): N
    /// statements' leases in a private Redis (or `--cluster`), one renewal round the old
    /// way (one script call after another) and the pipelined way, in the same run.
    Leases(LeasesArgs),
    /// The HTTP ceiling: a plain actix-web route parsing the same JSON (used as a child).
    BaselineServer(BaselineArgs),
    /// The whole suite for the README figures (ceilings, peak, mixed run, 70 % open
    /// loop, memory, short soak), ~5 minutes by default.
    All(AllArgs),
}

/// Where the market is and where results go.
#[derive(Debug, Clone, Args)]
pub struct MarketOpts {
    /// Drive an already running market at this URL (loopback only) instead of starting one.
    #[arg(long)]
    pub url: Option<String>,
    /// Redis of an external market (loopback only), for memory figures and the invariant check.
    #[arg(long)]
    pub redis_url: Option<String>,
    /// PostgreSQL of an external market's archive (loopback only, no TLS), so that the
    /// soak's check also reads the orders that left Redis.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Key prefix of the market's Redis keys.
    #[arg(long, default_value = "pm")]
    pub key_prefix: String,
    /// The market server binary (default: target/release/proof-market under the workspace root).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// `auto-aof-rewrite-percentage` of the Redis the harness starts (Redis default 100;
    /// 0 turns automatic AOF rewrites off, to tell their effect on the tail apart).
    #[arg(long)]
    pub aof_rewrite_percentage: Option<u32>,
    /// `auto-aof-rewrite-min-size` of the Redis the harness starts; the default is the
    /// market's deployment policy (deploy/run-market.sh, README "AOF policy"), Redis's
    /// own default is `64mb`.
    #[arg(long, default_value = "1gb")]
    pub aof_rewrite_min_size: String,
    /// `--http-workers` passed to a node the harness starts (0: one per core).
    #[arg(long)]
    pub http_workers: Option<usize>,
    /// `--matcher-threads` passed to a node the harness starts (0: one per core).
    #[arg(long)]
    pub matcher_threads: Option<usize>,
    /// Output directory (default: target/loadtest under the workspace root).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Worker threads of the load generator's own runtime.
    #[arg(long, default_value_t = 2)]
    pub client_threads: usize,
    /// Random seed (default: from the clock).
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Shape of the simulated population and of a run.
#[derive(Debug, Clone, Args)]
pub struct LoadOpts {
    /// Simulated requesters (each with its own connection pool).
    #[arg(long, default_value_t = 16)]
    pub requesters: usize,
    /// Simulated producers (each with its own connection pool).
    #[arg(long, default_value_t = 16)]
    pub producers: usize,
    /// Statements the orders are spread over.
    #[arg(long, default_value_t = 8)]
    pub statements: usize,
    /// Closed loop: concurrent calls.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Call mix, e.g. `request=40,proposal=40,get=15,withdraw=5,proof=0`.
    #[arg(long)]
    pub mix: Option<String>,
    /// Measured duration, e.g. `20s`, `2m`.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Warm-up before measuring (not recorded).
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub warmup: Duration,
    /// Most calls in one run, warm-up included.
    #[arg(long, default_value_t = 20_000_000)]
    pub max_ops: u64,
    /// Open loop: most calls in flight.
    #[arg(long, default_value_t = 4096)]
    pub max_inflight: usize,
    /// Read the counterpart order of one match in N (0: never).
    #[arg(long, default_value_t = 20)]
    pub verify_every: u64,
    /// Send every order under an Idempotency-Key of its own (as the CLI does).
    #[arg(long)]
    pub idempotency_keys: bool,
}

/// `run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub market: MarketOpts,
    #[command(flatten)]
    pub load: LoadOpts,
    /// Open loop at this many calls per second (default: closed loop).
    #[arg(long)]
    pub rate: Option<f64>,
}

/// `peak`.
#[derive(Debug, Clone, Args)]
pub struct PeakArgs {
    #[command(flatten)]
    pub market: MarketOpts,
    #[command(flatten)]
    pub load: LoadOpts,
    #[command(flatten)]
    pub peak: PeakOpts,
}

/// How the peak is searched.
#[derive(Debug, Clone, Args)]
pub struct PeakOpts {
    /// Closed-loop concurrency levels tried when searching the peak intake.
    #[arg(long, value_delimiter = ',', default_value = "16,64,128")]
    pub steps: Vec<usize>,
    /// Measured duration of each step.
    #[arg(long, value_parser = parse_duration, default_value = "8s")]
    pub step_duration: Duration,
    /// Fraction of the peak offered in the open-loop run.
    #[arg(long, default_value_t = 0.7)]
    pub fraction: f64,
}

/// `memory`.
#[derive(Debug, Clone, Args)]
pub struct MemoryArgs {
    #[command(flatten)]
    pub market: MarketOpts,
    #[command(flatten)]
    pub memory: MemoryOpts,
}

/// Memory test shape.
#[derive(Debug, Clone, Args)]
pub struct MemoryOpts {
    /// Resting orders to place.
    #[arg(long = "orders", default_value_t = 1_000_000)]
    pub orders: u64,
    /// Concurrent calls while placing them.
    #[arg(
        id = "memory_connections",
        long = "memory-connections",
        default_value_t = 64
    )]
    pub connections: usize,
    /// Statements the orders are spread over.
    #[arg(
        id = "memory_statements",
        long = "memory-statements",
        default_value_t = 4
    )]
    pub statements: usize,
    /// Give up placing after this long.
    #[arg(long, value_parser = parse_duration, default_value = "20m")]
    pub max_duration: Duration,
    /// Server RSS target (MiB) for the verdict.
    #[arg(long, default_value_t = 500)]
    pub rss_target_mib: u64,
    /// Redis bytes per order target for the verdict.
    #[arg(long, default_value_t = 1024)]
    pub redis_target_bytes: u64,
}

/// `soak`.
#[derive(Debug, Clone, Args)]
pub struct SoakArgs {
    #[command(flatten)]
    pub market: MarketOpts,
    #[command(flatten)]
    pub load: LoadOpts,
    #[command(flatten)]
    pub soak: SoakOpts,
}

/// Soak shape.
#[derive(Debug, Clone, Args)]
pub struct SoakOpts {
    /// Open-loop rate (default: half the peak found by a short closed-loop probe).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Fraction of the peak when the rate is not given.
    #[arg(long, default_value_t = 0.5)]
    pub soak_fraction: f64,
    /// When to kill -9 the node, as a fraction of the duration.
    #[arg(long, default_value_t = 0.5)]
    pub kill_at: f64,
    /// Do not kill the node.
    #[arg(long)]
    pub no_kill: bool,
    /// History archived to a private PostgreSQL (issue 11) by the node the harness starts:
    /// `on`, `off`, or `both` (two soaks in one invocation, archiving off then on, at the
    /// same rate, with the intake ratio on/off). Default `on`; with `--url` the market
    /// is as it is (`--database-url` lets the check read its archive).
    #[arg(long, value_enum)]
    pub archive: Option<ArchiveMode>,
    /// Seconds a closed order stays in Redis once archived
    /// (`PROOF_MARKET_ARCHIVE_RETENTION_SECS` of the node the harness starts; the node's
    /// own default is 300 s, 60 s here so that removal happens within a run).
    #[arg(long, default_value_t = 60)]
    pub retention: u64,
    /// The orders' flow: `closing` (every order closes: requests carry an input proved
    /// before the run and complete on arrival, proposals carry `wait_period` 1 and are
    /// withdrawn by the market a minute later if nothing took them; so the live set is
    /// stationary) or `matching` (the mix's crossing orders; matched ones stay
    /// `processing`). Default `closing` when a soak archives (with `both`, for both
    /// soaks), `matching` otherwise.
    #[arg(long, value_enum)]
    pub flow: Option<Flow>,
}

/// `--flow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flow {
    /// Every order closes.
    Closing,
    /// Crossing orders; matched ones stay open.
    Matching,
}

impl Flow {
    /// `--flow`, or its default: `closing` when any soak of the invocation archives.
    pub fn or_default(flow: Option<Flow>, archiving: bool) -> Flow {
        flow.unwrap_or(if archiving {
            Flow::Closing
        } else {
            Flow::Matching
        })
    }

    /// Its name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Flow::Closing => "closing",
            Flow::Matching => "matching",
        }
    }
}

/// `--archive`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ArchiveMode {
    /// Archiving to a private PostgreSQL.
    On,
    /// No PostgreSQL: Redis keeps everything.
    Off,
    /// Off, then on, at the same rate.
    Both,
}

/// `check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// The market's Redis.
    #[arg(long)]
    pub redis_url: String,
    /// Key prefix of the market's Redis keys.
    #[arg(long, default_value = "pm")]
    pub key_prefix: String,
    /// Do not flag open orders that could still match (a market under load).
    #[arg(long)]
    pub unsettled: bool,
    /// The market's PostgreSQL (loopback only, no TLS): orders that left Redis are read
    /// from its archive, and both stores are compared.
    #[arg(long)]
    pub database_url: Option<String>,
}

/// `ceilings`.
#[derive(Debug, Clone, Args)]
pub struct CeilingArgs {
    #[command(flatten)]
    pub market: MarketOpts,
    #[command(flatten)]
    pub load: LoadOpts,
}

/// `cluster`.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub market: MarketOpts,
    #[command(flatten)]
    pub load: LoadOpts,
    #[command(flatten)]
    pub peak: PeakOpts,
    /// Nodes of the scale-out run (compared with 1 node measured in the same run).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub nodes: u16,
    /// `--lease-ms` of the nodes (default: the node's own default).
    #[arg(long)]
    pub lease_ms: Option<u64>,
    /// Most time to wait for every node's /health and every statement's lease to sit
    /// with its owner.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub settle_timeout: Duration,
}

/// `leases`.
#[derive(Debug, Clone, Args)]
pub struct LeasesArgs {
    /// Statements whose leases one node holds.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub statements: u64,
    /// Lease length (ms) the figures are compared with (the node's default `--lease-ms`).
    #[arg(long, default_value_t = 5000)]
    pub lease_ms: u64,
    /// Renewal rounds measured each way (alternating); the median is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,
    /// Over a private Redis Cluster of three masters instead of one Redis.
    #[arg(long)]
    pub cluster: bool,
    /// Output directory (default: target/loadtest under the workspace root).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `baseline-server`.
#[derive(Debug, Clone, Args)]
pub struct BaselineArgs {
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Worker threads (0: one per core, like the market's default).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
}

/// `all`.
#[derive(Debug, Clone, Args)]
pub struct AllArgs {
    #[command(flatten)]
    pub market: MarketOpts,
    #[command(flatten)]
    pub load: LoadOpts,
    #[command(flatten)]
    pub peak: PeakOpts,
    #[command(flatten)]
    pub memory: MemoryOpts,
    /// Duration of each ceiling measurement (HTTP baseline) and of the mixed run.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub ceiling_duration: Duration,
    /// Duration of the soak (0 skips it).
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub soak_duration: Duration,
    /// Skip the memory test.
    #[arg(long)]
    pub no_memory: bool,
}

/// Parses `250ms`, `20s`, `5m`, `1h`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30s, 500ms, 10m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "sec" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("unknown unit in {text:?} (ms, s, m, h)")),
    };
    if !(secs.is_finite() && (0.0..=7.0 * 86_400.0).contains(&secs)) {
        return Err(format!("{text:?} is out of range (0 to 7 days)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("5y").is_err());
        assert!(parse_duration("abc").is_err());
    }

    #[test]
    fn cli_is_consistent_and_parses() {
        Cli::command().debug_assert();
        let c =
            Cli::try_parse_from(["loadtest", "soak", "--duration", "60s", "--no-kill"]).unwrap();
        match c.command {
            Command::Soak(a) => {
                assert_eq!(a.load.duration, Some(Duration::from_secs(60)));
                assert!(a.soak.no_kill);
                assert_eq!((a.soak.archive, a.soak.retention), (None, 60));
            }
            other => panic!("{other:?}"),
        }
        let c = Cli::try_parse_from(["loadtest", "soak", "--archive", "both", "--retention", "5"])
            .unwrap();
        match c.command {
            Command::Soak(a) => {
                assert_eq!(a.soak.archive, Some(ArchiveMode::Both));
                assert_eq!(a.soak.retention, 5);
                assert_eq!(a.soak.flow, None);
                assert_eq!(Flow::or_default(a.soak.flow, true), Flow::Closing);
                assert_eq!(Flow::or_default(a.soak.flow, false), Flow::Matching);
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["loadtest", "soak", "--archive", "maybe"]).is_err());
        let c = Cli::try_parse_from(["loadtest", "soak", "--flow", "matching"]).unwrap();
        match c.command {
            Command::Soak(a) => assert_eq!(a.soak.flow, Some(Flow::Matching)),
            other => panic!("{other:?}"),
        }
        let c = Cli::try_parse_from([
            "loadtest",
            "all",
            "--connections",
            "32",
            "--memory-connections",
            "8",
            "--orders",
            "10",
        ])
        .unwrap();
        match c.command {
            Command::All(a) => {
                assert_eq!(a.load.connections, 32);
                assert_eq!(a.memory.connections, 8);
                assert_eq!(a.memory.orders, 10);
            }
            other => panic!("{other:?}"),
        }
        for mode in ["run", "memory", "baseline-server"] {
            assert!(Cli::try_parse_from(["loadtest", mode]).is_ok(), "{mode}");
        }
        let c = Cli::try_parse_from([
            "loadtest",
            "cluster",
            "--steps",
            "64",
            "--duration",
            "5s",
            "--statements",
            "6",
        ])
        .unwrap();
        match c.command {
            Command::Cluster(a) => {
                assert_eq!(a.nodes, 3);
                assert_eq!(a.peak.steps, vec![64]);
                assert_eq!(a.load.duration, Some(Duration::from_secs(5)));
                assert_eq!(a.load.statements, 6);
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["loadtest", "cluster", "--nodes", "0"]).is_err());
        let c = Cli::try_parse_from(["loadtest", "peak", "--steps", "8,32"]).unwrap();
        match c.command {
            Command::Peak(a) => assert_eq!(a.peak.steps, vec![8, 32]),
            other => panic!("{other:?}"),
        }
    }
}

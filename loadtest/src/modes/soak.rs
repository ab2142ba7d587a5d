//! `soak`: open loop at half the peak rate for a long time (default 10 minutes), with a
//! kill -9 and restart of the node in the middle when the harness started it; then the
//! invariants (README, "Invariants") are checked against Redis directly (and against
//! the archive in PostgreSQL, when the node archives), over every order the harness saw
//! acknowledged. Violations make the exit code non-zero.
//!
//! With the archive of issue 11 (`--archive on`, the default for a node the harness
//! starts) the node runs over a private PostgreSQL with a short retention
//! (`--retention`, 60 s), so closed orders leave Redis within the run. Every 5 s the
//! soak samples Redis memory and size, the node's `/health` `archive` figures and the
//! orders acknowledged so far (`samples.csv`, `memory.svg`), and reports whether Redis
//! memory levels off and the archive keeps up (`BOUND MISSED` lines otherwise; they do
//! not change the exit code). `--archive both` runs the soak twice, archiving off then
//! on, at the same rate, and reports the intake ratio.
//!
//! `--flow closing` (the default when a soak archives) makes every order close, so that
//! the live set is stationary: before the window, one input ([`CLOSING_INPUT`]) is
//! proved for real on every statement; then every request carries it (and completes on
//! arrival) and every proposal carries `wait_period` [`CLOSING_WAIT_MINUTES`] (the
//! market withdraws it once that passed, if nothing took it: `StatementState::expire`,
//! run by each statement's matcher every second). `--flow matching` keeps the crossing
//! orders, whose matches stay `processing` (the harness pushes no proofs then).

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use market_invariants::{self as invariants, pg_rows, redis_rows, Checked};
use serde::Serialize;

use crate::cli::{ArchiveMode, Flow, LoadOpts, PeakOpts, SoakArgs, SoakOpts};
use crate::driver::{self, Closing, Load};
use crate::env::{ArchiveConf, MarketEnv};
use crate::market::{self, Population, Target};
use crate::mix::Mix;
use crate::procs::ArchiveHealth;
use crate::redis_view::parse_info_u64;
use crate::report::{self, Marker, RunReport};

use super::{mix_or, populate, spec, Ctx};

/// How often the market is sampled during a soak.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Bound on Redis memory growth over the second half of the window, as a fraction of
/// its level at the half (with archiving, closed orders leave Redis: memory should
/// level off).
pub const MEMORY_GROWTH_BOUND: f64 = 0.25;
/// Bound on the archive's lag (seconds).
pub const LAG_BOUND_S: f64 = 10.0;
/// The input proved before a `--flow closing` soak, that every request then carries.
pub const CLOSING_INPUT: (u64, u64) = (1, 11);
/// The `wait_period` (minutes) of every proposal of a `--flow closing` soak.
pub const CLOSING_WAIT_MINUTES: u32 = 1;

/// One soak of a run of the mode (the mode runs one, or two with `--archive both`).
#[derive(Debug, Clone)]
pub struct SoakRun {
    /// Name of the run's files (`<name>.json`, `<name>.svg`).
    pub name: String,
    /// Does the node archive (as far as the harness knows)?
    pub archive: bool,
    /// Retention the node was given, when the harness started it archiving.
    pub retention_s: Option<u64>,
    /// The orders' flow.
    pub flow: Flow,
}

/// One sample of the market during a soak.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds since the measured window began.
    pub t_s: f64,
    /// Redis `used_memory`.
    pub used_memory_bytes: Option<u64>,
    /// Redis `used_memory_rss`.
    pub rss_bytes: Option<u64>,
    /// Redis `DBSIZE` (keys).
    pub dbsize: Option<u64>,
    /// `/health` `archive.lag_ms` (none: no archive, or no answer).
    pub lag_ms: Option<u64>,
    /// `/health` `archive.pending_events`.
    pub pending_events: Option<u64>,
    /// Orders acknowledged so far (warm-up included).
    pub orders_acked: u64,
    /// Open orders (created, processing) in Redis' indexes.
    pub open_orders: Option<u64>,
    /// Closed orders (completed, withdrawn) still in Redis' indexes.
    pub closed_orders: Option<u64>,
    /// `/health` `archive.archived_events` (since the node process started).
    pub archived_events: Option<u64>,
}

/// The CSV header of `samples.csv`.
pub const CSV_HEADER: &str = "t_s,used_memory_bytes,rss,dbsize,lag_ms,pending_events,orders_acked_so_far,open_orders,closed_orders,archived_events";

impl Sample {
    /// One CSV line (an absent value is an empty field).
    pub fn csv(&self) -> String {
        let o = |v: Option<u64>| v.map_or(String::new(), |x| x.to_string());
        format!(
            "{:.1},{},{},{},{},{},{},{},{},{}",
            self.t_s,
            o(self.used_memory_bytes),
            o(self.rss_bytes),
            o(self.dbsize),
            o(self.lag_ms),
            o(self.pending_events),
            self.orders_acked,
            o(self.open_orders),
            o(self.closed_orders),
            o(self.archived_events)
        )
    }
}

/// What the samples say.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MemoryFigures {
    /// Redis `used_memory` (MB) at 25 %, 50 %, 75 % and the end of the window.
    pub used_memory_mb: [Option<f64>; 4],
    /// Growth over the second half (MB).
    pub growth_second_half_mb: Option<f64>,
    /// Growth over the second half, % of the level at the half.
    pub growth_second_half_pct: Option<f64>,
    /// Redis `used_memory_rss` at the end (MB).
    pub rss_end_mb: Option<f64>,
    /// Most archive lag sampled (ms).
    pub lag_max_ms: Option<u64>,
    /// 99th percentile (nearest rank) of the sampled lag (ms).
    pub lag_p99_ms: Option<u64>,
    /// Most events pending sampled.
    pub pending_events_max: Option<u64>,
    /// Samples with an archive lag.
    pub lag_samples: usize,
    /// Open / closed orders in Redis at the half and at the end.
    pub open_orders_half_end: [Option<u64>; 2],
    /// Closed orders still in Redis at the half and at the end.
    pub closed_orders_half_end: [Option<u64>; 2],
    /// Events the node archived between the first and the last sample that had the
    /// figure (a node restarted counts from 0 again: a drop counts as a restart).
    pub archived_events: Option<u64>,
    /// The same per second.
    pub archived_events_per_s: Option<f64>,
}

/// Events archived over the samples, across restarts of the node (its counter starts
/// at 0 again), and the seconds between the first and last sample with the figure.
fn archived_over(samples: &[Sample]) -> Option<(u64, f64)> {
    let mut pts = samples
        .iter()
        .filter_map(|s| s.archived_events.map(|v| (s.t_s, v)));
    let (t0, mut prev) = pts.next()?;
    let (mut total, mut t1) = (0u64, t0);
    for (t, v) in pts {
        total += if v >= prev { v - prev } else { v };
        (prev, t1) = (v, t);
    }
    Some((total, t1 - t0))
}

/// Linear interpolation of `f` over the samples at `t` (between the samples around it
/// that have a value; the nearest one at either end).
fn level_at(samples: &[Sample], t: f64, f: impl Fn(&Sample) -> Option<u64>) -> Option<f64> {
    let pts: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|s| f(s).map(|v| (s.t_s, v as f64)))
        .collect();
    let first = pts.first()?;
    if t <= first.0 {
        return Some(first.1);
    }
    for w in pts.windows(2) {
        let ((t0, v0), (t1, v1)) = (w[0], w[1]);
        if t <= t1 {
            let k = if t1 > t0 { (t - t0) / (t1 - t0) } else { 1.0 };
            return Some(v0 + k * (v1 - v0));
        }
    }
    pts.last().map(|p| p.1)
}

/// The value of the sample nearest to `t` that has one.
fn nearest(samples: &[Sample], t: f64, f: impl Fn(&Sample) -> Option<u64>) -> Option<u64> {
    samples
        .iter()
        .filter_map(|s| f(s).map(|v| ((s.t_s - t).abs(), v)))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, v)| v)
}

impl MemoryFigures {
    /// The figures of a window of `window_s` seconds.
    pub fn of(samples: &[Sample], window_s: f64) -> MemoryFigures {
        const MB: f64 = 1e6;
        let mem = |q: f64| level_at(samples, q * window_s, |s| s.used_memory_bytes);
        let levels = [0.25, 0.5, 0.75, 1.0].map(|q| mem(q).map(|b| b / MB));
        let (growth_mb, growth_pct) = match (levels[1], levels[3]) {
            (Some(h), Some(e)) => (Some(e - h), (h > 0.0).then(|| 100.0 * (e - h) / h)),
            _ => (None, None),
        };
        let mut lags: Vec<u64> = samples.iter().filter_map(|s| s.lag_ms).collect();
        lags.sort_unstable();
        let p99 = (!lags.is_empty()).then(|| {
            let rank = (0.99 * lags.len() as f64).ceil() as usize;
            lags[rank.clamp(1, lags.len()) - 1]
        });
        MemoryFigures {
            used_memory_mb: levels,
            growth_second_half_mb: growth_mb,
            growth_second_half_pct: growth_pct,
            rss_end_mb: level_at(samples, window_s, |s| s.rss_bytes).map(|b| b / MB),
            lag_max_ms: lags.last().copied(),
            lag_p99_ms: p99,
            pending_events_max: samples.iter().filter_map(|s| s.pending_events).max(),
            lag_samples: lags.len(),
            open_orders_half_end: [0.5, 1.0]
                .map(|q| nearest(samples, q * window_s, |s| s.open_orders)),
            closed_orders_half_end: [0.5, 1.0]
                .map(|q| nearest(samples, q * window_s, |s| s.closed_orders)),
            archived_events: archived_over(samples).map(|a| a.0),
            archived_events_per_s: archived_over(samples)
                .and_then(|(n, dt)| (dt > 0.0).then(|| n as f64 / dt)),
        }
    }

    /// The `BOUND MISSED` lines: memory growth (`memory_bound`: when the node archives
    /// and every order closes) and lag.
    pub fn bounds_missed(&self, memory_bound: bool) -> Vec<String> {
        let mut v = Vec::new();
        if memory_bound {
            if let (Some(pct), Some(mb), Some(half)) = (
                self.growth_second_half_pct,
                self.growth_second_half_mb,
                self.used_memory_mb[1],
            ) {
                if pct > 100.0 * MEMORY_GROWTH_BOUND {
                    v.push(format!(
                        "BOUND MISSED: Redis used_memory grew {mb:.1} MB ({pct:.1} %) over the second half, more than {:.0} % of its level at the half ({half:.1} MB)",
                        100.0 * MEMORY_GROWTH_BOUND
                    ));
                }
            }
        }
        if let Some(max) = self.lag_max_ms.filter(|&m| m as f64 > LAG_BOUND_S * 1000.0) {
            v.push(format!(
                "BOUND MISSED: archive lag reached {:.1} s (bound {LAG_BOUND_S:.0} s)",
                max as f64 / 1000.0
            ));
        }
        v
    }
}

/// Soak outcome.
#[derive(Debug, Clone, Serialize)]
pub struct SoakResult {
    /// Offered calls per second.
    pub rate: f64,
    /// Did the node archive to PostgreSQL?
    pub archive: bool,
    /// Retention given to the node (s), when the harness started it archiving.
    pub retention_s: Option<u64>,
    /// The orders' flow.
    pub flow: Flow,
    /// Seconds into the measured window when the node was killed.
    pub killed_at_s: Option<f64>,
    /// Seconds the node took to come back (kill → /health 200).
    pub restart_s: Option<f64>,
    /// The run.
    pub run: RunReport,
    /// Redis memory, the archive's lag, orders in Redis.
    pub memory: MemoryFigures,
    /// Bounds missed (reported, not failing).
    pub bounds_missed: Vec<String>,
    /// The samples (also in the CSV file).
    pub samples: Vec<Sample>,
    /// The invariant check.
    pub check: Checked,
    /// No violation.
    pub passed: bool,
}

impl SoakResult {
    /// The summary lines of memory, lag, intake and bounds.
    pub fn render_memory(&self) -> String {
        let mut s = String::new();
        let mb = |v: Option<f64>| v.map_or("n/a".into(), |x| format!("{x:.1} MB"));
        let m = &self.memory;
        let _ = writeln!(
            s,
            "{}: Redis used_memory at 25 % {} | 50 % {} | 75 % {} | end {}; second half {} ({}); RSS at the end {}",
            self.run.name,
            mb(m.used_memory_mb[0]),
            mb(m.used_memory_mb[1]),
            mb(m.used_memory_mb[2]),
            mb(m.used_memory_mb[3]),
            m.growth_second_half_mb.map_or("n/a".into(), |x| format!("{x:+.1} MB")),
            m.growth_second_half_pct.map_or("n/a".into(), |x| format!("{x:+.1} %")),
            mb(m.rss_end_mb),
        );
        if self.archive {
            let _ = writeln!(
                s,
                "{}: archive (retention {}): lag max {}, p99 {} over {} samples; pending events max {}",
                self.run.name,
                self.retention_s.map_or("the node's".into(), |r| format!("{r} s")),
                m.lag_max_ms.map_or("n/a".into(), |x| format!("{:.2} s", x as f64 / 1000.0)),
                m.lag_p99_ms.map_or("n/a".into(), |x| format!("{:.2} s", x as f64 / 1000.0)),
                m.lag_samples,
                m.pending_events_max.map_or("n/a".into(), |x| x.to_string()),
            );
            let _ = writeln!(
                s,
                "{}: archiver throughput: {} events archived over the window, {} (/health archive.archived_events, end minus start, across the restart)",
                self.run.name,
                m.archived_events.map_or("n/a".into(), |x| x.to_string()),
                m.archived_events_per_s.map_or("n/a".into(), |x| format!("{x:.0} events/s")),
            );
            if m.lag_samples == 0 {
                let _ = writeln!(
                    s,
                    "{}: the node's /health had no archive figures: is it archiving?",
                    self.run.name
                );
            }
        }
        let o = |v: Option<u64>| v.map_or("n/a".into(), |x| x.to_string());
        let _ = writeln!(
            s,
            "{}: flow {}: intake {:.0} acked orders/s; orders in Redis: {} open + {} closed at the half, {} open + {} closed at the end ({})",
            self.run.name,
            self.flow.as_str(),
            self.run.orders_per_s,
            o(m.open_orders_half_end[0]),
            o(m.closed_orders_half_end[0]),
            o(m.open_orders_half_end[1]),
            o(m.closed_orders_half_end[1]),
            match self.flow {
                Flow::Closing => "every order closes: requests complete on arrival, proposals are withdrawn by the market after their wait_period",
                Flow::Matching => "matched orders stay processing: the harness pushes no proofs, so only withdrawn orders close, and Redis grows with the open orders",
            },
        );
        if let Some(r) = self.retention_s.filter(|_| self.archive) {
            // The live set settles once the oldest orders closed and left Redis.
            let wait = match self.flow {
                Flow::Closing => 60 * u64::from(CLOSING_WAIT_MINUTES),
                Flow::Matching => 0,
            };
            if 2.0 * (r + wait) as f64 > self.run.window_s {
                let _ = writeln!(
                    s,
                    "{}: note: a closed order leaves Redis {r} s after it closed{}, so a {:.0} s window shows the start of removal, not its steady state",
                    self.run.name,
                    if wait > 0 {
                        format!(" and an untaken proposal closes {wait} s after it was placed")
                    } else {
                        String::new()
                    },
                    self.run.window_s
                );
            }
        }
        for b in &self.bounds_missed {
            let _ = writeln!(s, "{}: {b}", self.run.name);
        }
        s
    }
}

/// A running sampler of the market.
struct Sampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Vec<(Instant, Sample)>>,
}

/// What the sampler reads.
struct SampleSource {
    redis_url: Option<String>,
    target: Arc<Target>,
    prefix: String,
    statements: Vec<u64>,
    acked: Arc<AtomicU64>,
}

impl SampleSource {
    async fn take(
        &self,
        redis: &mut Option<redis::aio::MultiplexedConnection>,
        http: &reqwest::Client,
    ) -> Sample {
        let mut s = Sample::default();
        if redis.is_none() {
            if let Some(url) = &self.redis_url {
                if let Ok(c) = redis::Client::open(url.as_str()) {
                    *redis = c.get_multiplexed_async_connection().await.ok();
                }
            }
        }
        if let Some(con) = redis.as_mut() {
            let info: Option<String> = redis::cmd("INFO").arg("memory").query_async(con).await.ok();
            if let Some(i) = &info {
                s.used_memory_bytes = parse_info_u64(i, "used_memory");
                s.rss_bytes = parse_info_u64(i, "used_memory_rss");
            }
            s.dbsize = redis::cmd("DBSIZE").query_async(con).await.ok();
            let mut pipe = redis::pipe();
            for st in &self.statements {
                for kind in ["request", "proposal"] {
                    for status in ["created", "processing", "completed", "withdrawn"] {
                        pipe.cmd("ZCARD")
                            .arg(format!("{}:{{stmt:{st}}}:ix:{kind}:{status}", self.prefix));
                    }
                }
            }
            let counts: Option<Vec<u64>> = pipe.query_async(con).await.ok();
            if let Some(c) = counts {
                // Per statement and kind: created, processing, completed, withdrawn.
                let (mut open, mut closed) = (0, 0);
                for (i, n) in c.iter().enumerate() {
                    if i % 4 < 2 {
                        open += n;
                    } else {
                        closed += n;
                    }
                }
                s.open_orders = Some(open);
                s.closed_orders = Some(closed);
            }
        }
        let health = async {
            let r = http
                .get(format!("{}/health", self.target.base()))
                .send()
                .await
                .ok()?;
            r.json::<serde_json::Value>().await.ok()
        };
        if let Some(a) = health.await.as_ref().and_then(ArchiveHealth::parse) {
            s.lag_ms = a.lag_ms;
            s.pending_events = a.pending_events;
            s.archived_events = a.archived_events;
        }
        s.orders_acked = self.acked.load(Ordering::Relaxed);
        s
    }
}

impl Sampler {
    /// Samples every [`SAMPLE_EVERY`] from `first` on, and once more when stopped.
    fn start(src: SampleSource, first: Instant) -> Sampler {
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut out = Vec::new();
            let http = match reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
            {
                Ok(h) => h,
                Err(_) => return out,
            };
            let mut redis = None;
            let mut next = first;
            // At most ~28 hours of 5-s samples.
            for _ in 0..20_000 {
                tokio::select! {
                    _ = tokio::time::sleep_until(next.into()) => {
                        let at = Instant::now();
                        out.push((at, src.take(&mut redis, &http).await));
                        next += SAMPLE_EVERY;
                    }
                    _ = &mut stopped => break,
                }
            }
            // The end of the window, unless a tick just sampled it.
            if out
                .last()
                .is_none_or(|(t, _)| t.elapsed() >= Duration::from_secs(1))
            {
                let at = Instant::now();
                out.push((at, src.take(&mut redis, &http).await));
            }
            out
        });
        Sampler { stop, task }
    }

    /// Stops it (after one last sample); the samples with times relative to `zero`.
    async fn finish(self, zero: Instant) -> Vec<Sample> {
        let _ = self.stop.send(());
        self.task
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|(at, mut s)| {
                s.t_s = at.saturating_duration_since(zero).as_secs_f64();
                s
            })
            .collect()
    }
}

/// Writes the samples as CSV.
fn write_csv(path: &Path, samples: &[Sample]) -> Result<()> {
    let mut text = String::from(CSV_HEADER);
    text.push('\n');
    for s in samples {
        text.push_str(&s.csv());
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Writes `memory.svg` with every soak of the invocation.
pub fn write_memory_plot(dir: &Path, runs: &[&SoakResult]) -> Result<()> {
    let labels: Vec<String> = runs
        .iter()
        .map(|r| {
            format!(
                "{}, {:.0} orders/s",
                if r.archive { "on" } else { "off" },
                r.run.orders_per_s
            )
        })
        .collect();
    let series: Vec<crate::svg::MemorySeries<'_>> = runs
        .iter()
        .zip(&labels)
        .map(|(r, label)| crate::svg::MemorySeries {
            label,
            points: r
                .samples
                .iter()
                .map(|s| {
                    (
                        s.t_s,
                        s.used_memory_bytes.map(|b| b as f64 / 1e6),
                        s.lag_ms.map(|l| l as f64 / 1000.0),
                    )
                })
                .collect(),
        })
        .collect();
    let events: Vec<Marker> = runs
        .first()
        .map(|r| r.run.markers.clone())
        .unwrap_or_default();
    let title = format!(
        "soak at {:.0} calls/s: Redis memory and archive lag (archive {})",
        runs.first().map_or(0.0, |r| r.rate),
        runs.iter()
            .map(|r| if r.archive { "on" } else { "off" })
            .collect::<Vec<_>>()
            .join(" / ")
    );
    let svg = crate::svg::memory_plot(&title, &series, &events, LAG_BOUND_S);
    std::fs::write(dir.join("memory.svg"), svg).context("writing memory.svg")
}

/// Soaks `env` at `rate` calls/s for `span` (after the warm-up); the samples go to
/// `<ctx.dir>/<samples_file>`.
#[allow(clippy::too_many_arguments)]
pub async fn soak(
    env: &mut MarketEnv,
    pop: Arc<Population>,
    load: &LoadOpts,
    s: &SoakOpts,
    run: &SoakRun,
    samples_file: &str,
    span: Duration,
    rate: f64,
    ctx: &mut Ctx,
) -> Result<SoakResult> {
    let mix = mix_or(load, Mix::DEFAULT)?;
    let closing = match run.flow {
        Flow::Matching => None,
        Flow::Closing => {
            let t = Instant::now();
            let proof =
                tokio::task::spawn_blocking(|| market::example_proof(CLOSING_INPUT)).await??;
            market::prove_input(&env.target.base(), &pop, CLOSING_INPUT, &proof)
                .await
                .context("proving the closing flow's input")?;
            ctx.say(&format!(
                "{}: flow closing: input {CLOSING_INPUT:?} proved on {} statement(s) in {:.1} s (request + proposal matched, real proof pushed, both completed); requests carry it, proposals wait_period {CLOSING_WAIT_MINUTES} min",
                run.name,
                pop.statements.len(),
                t.elapsed().as_secs_f64()
            ));
            Some(Closing {
                input: CLOSING_INPUT,
                wait_period: CLOSING_WAIT_MINUTES,
            })
        }
    };
    let mut sp = spec(
        &run.name,
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
    sp.closing = closing;
    let acked = Arc::new(AtomicU64::new(0));
    sp.acked_orders = Some(acked.clone());
    let kill = !s.no_kill && env.server.is_some();
    if !s.no_kill && !kill {
        ctx.say("soak: the node was not started by the harness, so it is not killed");
    }
    ctx.say(&format!(
        "{}: {rate:.0} calls/s for {:.0} s{}; flow {}; archive {}",
        run.name,
        span.as_secs_f64(),
        if kill {
            format!(", kill -9 + restart at {:.0} %", s.kill_at * 100.0)
        } else {
            String::new()
        },
        run.flow.as_str(),
        match (run.archive, run.retention_s) {
            (true, Some(r)) => format!("on (private PostgreSQL, retention {r} s)"),
            (true, None) => "on".into(),
            (false, _) => "off".into(),
        }
    ));
    let forks = env.redis_forks();
    let watch = env.watch_rewrites();
    let measure_start = Instant::now() + load.warmup;
    let sampler = Sampler::start(
        SampleSource {
            redis_url: env.redis_url.clone(),
            target: env.target.clone(),
            prefix: env.prefix.clone(),
            statements: pop.statements.clone(),
            acked,
        },
        measure_start,
    );
    let driven = tokio::spawn(driver::run(env.target.clone(), pop, sp, env.pids()));
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
    let out = driven.await??;
    let samples = sampler.finish(out.rec.start()).await;
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
    write_csv(&ctx.dir.join(samples_file), &samples)?;
    let memory = MemoryFigures::of(&samples, r.window_s);
    let bounds_missed = memory.bounds_missed(run.archive && run.flow == Flow::Closing);

    // With every order closing, the node changes Redis on its own after the load
    // stopped (proposals past their wait_period are withdrawn every second), and the
    // check, reading the indexes and the hashes apart, would see an order withdrawn
    // between its two reads as mis-indexed: stop the node first when the harness owns
    // it (the archive is as consistent after a kill -9 as after the mid-run one).
    if run.flow == Flow::Closing {
        if env.stop_node() {
            ctx.say("soak: node stopped (SIGKILL) before the check: its wait_period expiry would change orders under the check's reads");
        } else {
            ctx.say("soak: note: the node keeps withdrawing proposals past their wait_period while the check reads; an order withdrawn between its reads shows as an `index` violation");
        }
    }
    let check = match env.redis()? {
        None => {
            ctx.say(
                "soak: no Redis URL known (pass --redis-url with --url): invariants not checked",
            );
            Checked::default()
        }
        Some(mut con) => {
            let prefix = env.prefix.clone();
            let db = env.database_url.clone();
            if run.archive && db.is_none() {
                ctx.say("soak: the archive's PostgreSQL is not known (--database-url): orders that left Redis count as lost");
            }
            let acks = out.acks;
            let t = Instant::now();
            let c = tokio::task::spawn_blocking(move || -> Result<Checked> {
                match db {
                    None => {
                        let rows = redis_rows::read_orders(&mut con, &prefix, &acks.orders)?;
                        Ok(invariants::check(&rows, &acks.orders, &acks.observed, true))
                    }
                    Some(url) => {
                        let mut pg = pg_rows::connect(&url)
                            .context("connecting to the archive's PostgreSQL")?;
                        let (rows, archive) =
                            pg_rows::read_all(&mut con, &prefix, &acks.orders, &mut pg)?;
                        Ok(invariants::check_with_archive(
                            rows,
                            archive,
                            &acks.orders,
                            &acks.observed,
                            true,
                        ))
                    }
                }
            })
            .await??;
            ctx.say(&format!(
                "invariants: {} orders in the store ({:?}; {} only in PostgreSQL, {} in both, {} archive cursors), {} acknowledged by the node, {} status reads, {} matches; checked in {:.1} s: {} violation(s)",
                c.orders,
                c.by_status,
                c.archived,
                c.in_both,
                c.cursors,
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
    let result = SoakResult {
        rate,
        archive: run.archive,
        retention_s: run.retention_s,
        flow: run.flow,
        killed_at_s: killed_at,
        restart_s,
        run: r,
        memory,
        bounds_missed,
        samples,
        check,
        passed,
    };
    ctx.say(&result.render_memory());
    Ok(result)
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

/// `soak --archive both`: the two soaks and their intake ratio.
#[derive(Debug, Clone, Serialize)]
pub struct SoakPair {
    /// Archiving off.
    pub off: SoakResult,
    /// Archiving on.
    pub on: SoakResult,
    /// Intake (acked orders/s) with archiving on / off, at the same offered rate.
    pub intake_ratio_on_off: Option<f64>,
    /// Both passed the invariant check.
    pub passed: bool,
}

/// Which soaks a mode runs: archiving off/on in order (`[false]`, `[true]`,
/// `[false, true]`); with `--url`, the market as it is (`None`).
pub fn archive_plan(mode: Option<ArchiveMode>, external: bool) -> Result<Option<Vec<bool>>> {
    match (mode, external) {
        (None, true) => Ok(None),
        (Some(_), true) => anyhow::bail!(
            "--archive applies to a node the harness starts; with --url the market is as it is (--database-url lets the check read its archive)"
        ),
        (None | Some(ArchiveMode::On), false) => Ok(Some(vec![true])),
        (Some(ArchiveMode::Off), false) => Ok(Some(vec![false])),
        (Some(ArchiveMode::Both), false) => Ok(Some(vec![false, true])),
    }
}

/// Runs the `soak` mode.
pub async fn main(a: SoakArgs) -> Result<i32> {
    let mut ctx = Ctx::new(&a.market, "soak")?;
    let plan = archive_plan(a.soak.archive, a.market.url.is_some())?;
    let span = a.load.duration.unwrap_or(Duration::from_secs(600));
    let mix = mix_or(&a.load, Mix::DEFAULT)?;
    let conf = |on: bool| {
        on.then_some(ArchiveConf {
            retention_secs: a.soak.retention,
        })
    };
    let Some(plan) = plan else {
        // An external market, as it is.
        let mut env = MarketEnv::open(&a.market, &ctx.server_log()).await?;
        let pop = populate(&env, &a.load, a.load.statements, ctx.seed, "s").await?;
        let flow = Flow::or_default(a.soak.flow, env.database_url.is_some());
        let rate = match a.soak.rate {
            Some(r) => r,
            None => {
                a.soak.soak_fraction * probe_peak(&env, &pop, &a.load, &mut ctx).await?
                    / mix.order_share()
            }
        };
        let run = SoakRun {
            name: "soak".into(),
            archive: env.database_url.is_some(),
            retention_s: None,
            flow,
        };
        let r = soak(
            &mut env,
            pop,
            &a.load,
            &a.soak,
            &run,
            "samples.csv",
            span,
            rate,
            &mut ctx,
        )
        .await?;
        write_memory_plot(&ctx.dir, &[&r])?;
        return finish_one(&mut ctx, &r);
    };
    // The rate: given, or a fraction of the peak of a market archiving as the last soak
    // will (so that `both` offers the archiving node a rate it can take), probed on a
    // market of its own so that every soak starts from an empty one.
    let rate = match a.soak.rate {
        Some(r) => r,
        None => {
            let last = plan.last().copied().unwrap_or(true);
            let env = MarketEnv::open_archived(&a.market, &ctx.server_log(), conf(last)).await?;
            let pop = populate(&env, &a.load, a.load.statements, ctx.seed, "p").await?;
            a.soak.soak_fraction * probe_peak(&env, &pop, &a.load, &mut ctx).await?
                / mix.order_share()
        }
    };
    // One flow for every soak of the invocation, so that `both` compares like with like.
    let flow = Flow::or_default(a.soak.flow, plan.contains(&true));
    let mut results = Vec::new();
    for (i, &on) in plan.iter().enumerate() {
        if driver::stopped() {
            break;
        }
        let mut env = MarketEnv::open_archived(&a.market, &ctx.server_log(), conf(on)).await?;
        let pop = populate(&env, &a.load, a.load.statements, ctx.seed, &format!("s{i}")).await?;
        let both = plan.len() > 1;
        let run = SoakRun {
            name: if both {
                format!("soak-{}", if on { "on" } else { "off" })
            } else {
                "soak".into()
            },
            archive: on,
            retention_s: on.then_some(a.soak.retention),
            flow,
        };
        let file = if both && !on {
            "samples-off.csv"
        } else {
            "samples.csv"
        };
        results.push(
            soak(
                &mut env, pop, &a.load, &a.soak, &run, file, span, rate, &mut ctx,
            )
            .await?,
        );
    }
    let refs: Vec<&SoakResult> = results.iter().collect();
    write_memory_plot(&ctx.dir, &refs)?;
    match <[SoakResult; 2]>::try_from(results) {
        Ok([off, on]) => {
            let ratio =
                (off.run.orders_per_s > 0.0).then(|| on.run.orders_per_s / off.run.orders_per_s);
            ctx.say(&format!(
                "soak: flow {}: intake at {rate:.0} calls/s offered: archive off {:.0} orders/s, on {:.0} orders/s: ratio on/off {}",
                flow.as_str(),
                off.run.orders_per_s,
                on.run.orders_per_s,
                ratio.map_or("n/a".into(), |x| format!("{x:.3}"))
            ));
            let pair = SoakPair {
                passed: off.passed && on.passed,
                off,
                on,
                intake_ratio_on_off: ratio,
            };
            for b in pair.off.bounds_missed.iter().chain(&pair.on.bounds_missed) {
                ctx.say(b);
            }
            ctx.say(if pair.passed {
                "soak: PASSED"
            } else {
                "soak: FAILED (invariant violations above)"
            });
            ctx.finish(&pair)?;
            Ok(if pair.passed { 0 } else { 1 })
        }
        Err(mut v) => match v.pop() {
            Some(r) => finish_one(&mut ctx, &r),
            None => {
                ctx.say("soak: stopped before it ran");
                Ok(2)
            }
        },
    }
}

fn finish_one(ctx: &mut Ctx, r: &SoakResult) -> Result<i32> {
    for b in &r.bounds_missed {
        ctx.say(b);
    }
    ctx.say(if r.passed {
        "soak: PASSED"
    } else {
        "soak: FAILED (invariant violations above)"
    });
    ctx.finish(r)?;
    Ok(if r.passed { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, mb: u64, lag: Option<u64>) -> Sample {
        Sample {
            t_s: t,
            used_memory_bytes: Some(mb * 1_000_000),
            lag_ms: lag,
            open_orders: Some(mb),
            ..Sample::default()
        }
    }

    #[test]
    fn figures_from_samples() {
        // 0..100 s, memory 10 → 20 MB at 50 s, then 20 → 30 MB at 100 s.
        let s: Vec<Sample> = (0..=20)
            .map(|i| {
                let t = i as f64 * 5.0;
                sample(t, 10 + i / 2, (i % 4 == 0).then_some(i * 100))
            })
            .collect();
        let m = MemoryFigures::of(&s, 100.0);
        assert_eq!(m.used_memory_mb[1], Some(15.0));
        assert_eq!(m.used_memory_mb[3], Some(20.0));
        assert_eq!(m.growth_second_half_mb, Some(5.0));
        assert!((m.growth_second_half_pct.unwrap_or(0.0) - 33.33).abs() < 0.01);
        assert_eq!(m.lag_max_ms, Some(2000));
        assert_eq!(m.lag_p99_ms, Some(2000));
        assert_eq!(m.lag_samples, 6);
        let b = m.bounds_missed(true);
        assert_eq!(b.len(), 1);
        assert!(b[0].starts_with("BOUND MISSED: Redis used_memory grew 5.0 MB (33.3 %)"));
        // Archiving off: no memory bound; the lag bound stands on its own.
        assert!(m.bounds_missed(false).is_empty());
        let mut lagging = m.clone();
        lagging.lag_max_ms = Some(12_500);
        assert_eq!(
            lagging.bounds_missed(false),
            vec!["BOUND MISSED: archive lag reached 12.5 s (bound 10 s)".to_string()]
        );
    }

    #[test]
    fn interpolates_and_skips_gaps() {
        let mut s = vec![sample(0.0, 10, None), sample(10.0, 20, None)];
        s.insert(
            1,
            Sample {
                t_s: 5.0,
                ..Sample::default()
            },
        );
        assert_eq!(level_at(&s, 2.5, |x| x.used_memory_bytes), Some(12.5e6));
        assert_eq!(level_at(&s, 50.0, |x| x.used_memory_bytes), Some(20e6));
        assert_eq!(level_at(&[], 1.0, |x| x.used_memory_bytes), None);
        assert_eq!(
            s[1].csv(),
            "5.0,,,,,,0,,,",
            "an absent value is an empty field"
        );
        assert_eq!(CSV_HEADER.split(',').count(), s[0].csv().split(',').count());
    }

    #[test]
    fn archived_events_count_across_a_restart() {
        let at = |t: f64, n: Option<u64>| Sample {
            t_s: t,
            archived_events: n,
            ..Sample::default()
        };
        // 100 → 400, restart (counter from 0), 0 → 250: 300 + 250 over 20 s.
        let s = [
            at(0.0, Some(100)),
            at(5.0, Some(400)),
            at(10.0, None),
            at(15.0, Some(50)),
            at(20.0, Some(250)),
        ];
        assert_eq!(archived_over(&s), Some((550, 20.0)));
        let m = MemoryFigures::of(&s, 20.0);
        assert_eq!(m.archived_events_per_s, Some(27.5));
        assert_eq!(archived_over(&[at(0.0, None)]), None);
    }

    #[test]
    fn the_archive_plan() {
        assert_eq!(archive_plan(None, false).ok(), Some(Some(vec![true])));
        assert_eq!(
            archive_plan(Some(ArchiveMode::Both), false).ok(),
            Some(Some(vec![false, true]))
        );
        assert_eq!(
            archive_plan(Some(ArchiveMode::Off), false).ok(),
            Some(Some(vec![false]))
        );
        assert_eq!(archive_plan(None, true).ok(), Some(None));
        assert!(archive_plan(Some(ArchiveMode::On), true).is_err());
    }
}

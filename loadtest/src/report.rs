//! Turning a run's measurements into a serialisable report, a human summary, and files
//! (`<name>.json`, `<name>.svg`, `summary.txt`, `report.json`) in the output directory.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::driver::{Load, RunOutput};
use crate::mix::Op;
use crate::stats::{ms, Percentiles, RouteStats};

/// One call type of a run.
#[derive(Debug, Clone, Serialize)]
pub struct OpReport {
    /// Call.
    pub op: Op,
    /// 200 answers.
    pub ok: u64,
    /// 409 answers (expected races).
    pub conflict: u64,
    /// 503/429 answers.
    pub overloaded: u64,
    /// Other HTTP failures.
    pub http_error: u64,
    /// No answer.
    pub transport: u64,
    /// 200 answers per second.
    pub ok_per_s: f64,
    /// Latency of 200 answers.
    pub latency: Percentiles,
    /// Latency of 409 answers.
    pub conflict_latency: Percentiles,
}

/// One second of the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// Seconds since the measured window began.
    pub t_s: f64,
    /// Seconds of the window this bucket covers (1, less for the last one).
    pub span_s: f64,
    /// Calls answered (200/409).
    pub calls: u64,
    /// Orders acknowledged.
    pub orders: u64,
    /// Matches acknowledged.
    pub matches: u64,
    /// Failed calls.
    pub failures: u64,
    /// Order latency percentiles of this second.
    pub order_latency: Percentiles,
}

/// An event drawn on the plot (e.g. the soak's kill -9).
#[derive(Debug, Clone, Serialize)]
pub struct Marker {
    /// Seconds since the measured window began.
    pub t_s: f64,
    /// What happened.
    pub label: String,
}

/// A stretch of time drawn shaded on the plot (e.g. a Redis AOF rewrite).
#[derive(Debug, Clone, Serialize)]
pub struct Span {
    /// Start, seconds since the measured window began (may be negative: warm-up).
    pub from_s: f64,
    /// End.
    pub to_s: f64,
    /// What it was.
    pub label: String,
}

/// Several nodes: orders split by route (local to the statement's owner, or forwarded
/// to it by the node the user called) and counted per node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoutingReport {
    /// Orders classified (acknowledged or not).
    pub orders: u64,
    /// Share of the acknowledged orders that were forwarded.
    pub forwarded_share: f64,
    /// Latency of acknowledged local orders.
    pub local: Percentiles,
    /// Latency of acknowledged forwarded orders.
    pub forwarded: Percentiles,
    /// Local orders not acknowledged (503, errors, no answer).
    pub local_failed: u64,
    /// Forwarded orders not acknowledged.
    pub forwarded_failed: u64,
    /// Orders acknowledged per second, by the node the users called (index = node).
    pub orders_per_s_by_entry: Vec<f64>,
    /// Orders acknowledged per second, by the node owning the statement.
    pub orders_per_s_by_owner: Vec<f64>,
}

impl RoutingReport {
    /// Summarises `r` over a window of `window_s` seconds; `None` when nothing was
    /// classified (one node without pinned users).
    pub fn of(r: &RouteStats, window_s: f64) -> Option<RoutingReport> {
        if r.total() == 0 {
            return None;
        }
        let per_s = |v: &[u64]| v.iter().map(|&n| n as f64 / window_s.max(1e-3)).collect();
        Some(RoutingReport {
            orders: r.total(),
            forwarded_share: r.forwarded_share(),
            local: Percentiles::of(&r.local),
            forwarded: Percentiles::of(&r.forwarded),
            local_failed: r.local_failed,
            forwarded_failed: r.forwarded_failed,
            orders_per_s_by_entry: per_s(&r.by_entry),
            orders_per_s_by_owner: per_s(&r.by_owner),
        })
    }
}

/// Everything about one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Name.
    pub name: String,
    /// `closed` or `open`.
    pub mode: String,
    /// Closed loop: workers.
    pub connections: Option<usize>,
    /// Open loop: offered calls per second.
    pub target_rate: Option<f64>,
    /// Mix.
    pub mix: String,
    /// Requesters, producers, statements.
    pub requesters: usize,
    /// Producers.
    pub producers: usize,
    /// Statements.
    pub statements: usize,
    /// Measured window (s).
    pub window_s: f64,
    /// Calls answered 200/409 per second.
    pub calls_per_s: f64,
    /// Orders acknowledged per second (the intake).
    pub orders_per_s: f64,
    /// Calls that failed (503, other errors, no answer).
    pub failures: u64,
    /// Per call type.
    pub ops: Vec<OpReport>,
    /// Latency of every acknowledged order (both sides).
    pub order_latency: Percentiles,
    /// Match latency: crossing order sent → its ack saying `processing`.
    pub match_latency: Percentiles,
    /// Matches per second.
    pub matches_per_s: f64,
    /// Crossing order sent → counterpart read back as `processing` (sampled).
    pub match_visible: Percentiles,
    /// Sampled counterpart reads that never saw the match.
    pub match_not_visible: u64,
    /// Open loop: dispatcher lag behind the schedule.
    pub dispatch_lag: Option<Percentiles>,
    /// Open loop: arrivals never sent.
    pub unsent: u64,
    /// Retries after a 503/429 (the call's latency includes the waits).
    pub retried_503: u64,
    /// Cores used per process.
    pub cpu_cores: BTreeMap<String, f64>,
    /// Forks of the market's Redis during the run (AOF rewrites), when known.
    pub redis_forks: Option<u64>,
    /// Several nodes: orders by route and per node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing: Option<RoutingReport>,
    /// Per second.
    pub timeline: Vec<Point>,
    /// Events.
    pub markers: Vec<Marker>,
    /// Stretches of time (Redis AOF rewrites).
    pub spans: Vec<Span>,
    /// Sampled error messages.
    pub errors: Vec<String>,
}

impl RunReport {
    /// Summarises a run.
    pub fn from_output(out: &RunOutput) -> RunReport {
        let rec = &out.rec;
        let window = rec.window().as_secs_f64().max(1e-3);
        let mut ops = Vec::new();
        let (mut calls, mut orders, mut failures) = (0u64, 0u64, 0u64);
        for op in Op::ALL {
            let s = &rec.ops[op.index()];
            if s.total() == 0 {
                continue;
            }
            if op != Op::VerifyMatch {
                calls += s.ok + s.conflict;
                failures += s.overloaded + s.http_error + s.transport;
            }
            if op.is_order() {
                orders += s.ok;
            }
            ops.push(OpReport {
                op,
                ok: s.ok,
                conflict: s.conflict,
                overloaded: s.overloaded,
                http_error: s.http_error,
                transport: s.transport,
                ok_per_s: s.ok as f64 / window,
                latency: Percentiles::of(&s.hist),
                conflict_latency: Percentiles::of(&s.conflict_hist),
            });
        }
        let (mode, connections, target_rate) = match out.spec.load {
            Load::Closed { connections } => ("closed", Some(connections), None),
            Load::Open { rate, .. } => ("open", None, Some(rate)),
        };
        let matched = Percentiles::of(&rec.matched);
        RunReport {
            name: out.spec.name.clone(),
            mode: mode.into(),
            connections,
            target_rate,
            mix: if out.spec.baseline {
                "baseline_post=100".into()
            } else {
                out.spec.mix.to_string()
            },
            requesters: out.users.0,
            producers: out.users.1,
            statements: out.users.2,
            window_s: window,
            calls_per_s: calls as f64 / window,
            orders_per_s: orders as f64 / window,
            failures,
            ops,
            order_latency: Percentiles::of(&rec.orders),
            match_latency: matched,
            matches_per_s: matched.count as f64 / window,
            match_visible: Percentiles::of(&rec.match_visible),
            match_not_visible: rec.match_not_visible,
            dispatch_lag: (mode == "open").then(|| Percentiles::of(&rec.lag)),
            unsent: out.unsent,
            retried_503: out.retried,
            cpu_cores: out.cpu.iter().cloned().collect(),
            redis_forks: None,
            routing: RoutingReport::of(&rec.routes, window),
            timeline: rec
                .timeline
                .iter()
                .enumerate()
                .map(|(i, b)| (i, b, (window - i as f64).clamp(0.0, 1.0)))
                // A last bucket covering under a quarter second would plot as a dip.
                .filter(|&(_, _, span)| span >= 0.25)
                .map(|(i, b, span)| Point {
                    t_s: i as f64,
                    span_s: span,
                    calls: b.calls,
                    orders: b.orders,
                    matches: b.matches,
                    failures: b.failures,
                    order_latency: Percentiles::of(&b.order_hist),
                })
                .collect(),
            markers: Vec::new(),
            spans: Vec::new(),
            errors: out.errors.clone(),
        }
    }

    /// The human summary.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let how = match (self.connections, self.target_rate) {
            (Some(c), _) => format!("closed loop, {c} connections"),
            (_, Some(r)) => format!("open loop at {r:.0} calls/s"),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "== {}: {how}; mix {}; {} requesters + {} producers; {} statements ==",
            self.name, self.mix, self.requesters, self.producers, self.statements
        );
        let _ = writeln!(
            s,
            "window {:.1} s | calls {:.0}/s | orders {:.0}/s | matches {:.0}/s | failures {}",
            self.window_s, self.calls_per_s, self.orders_per_s, self.matches_per_s, self.failures
        );
        let _ = writeln!(
            s,
            "{:<15} {:>9} {:>7} {:>7} {:>6} {:>6} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "call",
            "ok",
            "409",
            "503",
            "err",
            "noans",
            "ok/s",
            "p50 ms",
            "p90",
            "p99",
            "p99.9",
            "max"
        );
        for o in &self.ops {
            let l = &o.latency;
            let _ = writeln!(
                s,
                "{:<15} {:>9} {:>7} {:>7} {:>6} {:>6} {:>9.0} {:>8} {:>8} {:>8} {:>8} {:>8}",
                o.op.name(),
                o.ok,
                o.conflict,
                o.overloaded,
                o.http_error,
                o.transport,
                o.ok_per_s,
                ms(l.p50_us),
                ms(l.p90_us),
                ms(l.p99_us),
                ms(l.p999_us),
                ms(l.max_us)
            );
        }
        let line = |s: &mut String, name: &str, p: &Percentiles| {
            let _ = writeln!(
                s,
                "{:<15} {:>9} {:>38} {:>8} {:>8} {:>8} {:>8} {:>8}",
                name,
                p.count,
                "",
                ms(p.p50_us),
                ms(p.p90_us),
                ms(p.p99_us),
                ms(p.p999_us),
                ms(p.max_us)
            );
        };
        line(&mut s, "match (ack)", &self.match_latency);
        line(&mut s, "match visible", &self.match_visible);
        if self.match_not_visible > 0 {
            let _ = writeln!(
                s,
                "sampled counterpart reads that never saw the match: {}",
                self.match_not_visible
            );
        }
        if let Some(l) = &self.dispatch_lag {
            line(&mut s, "dispatch lag", l);
        }
        if let Some(r) = &self.routing {
            line(&mut s, "orders (all)", &self.order_latency);
            line(&mut s, "orders local", &r.local);
            line(&mut s, "orders fwd", &r.forwarded);
            let _ = writeln!(
                s,
                "forwarded: {:.1} % of acked orders (not acked: {} local, {} forwarded) | orders/s by entry node: {} | by owner node: {}",
                100.0 * r.forwarded_share,
                r.local_failed,
                r.forwarded_failed,
                per_node(&r.orders_per_s_by_entry),
                per_node(&r.orders_per_s_by_owner)
            );
        }
        if self.retried_503 > 0 {
            let _ = writeln!(
                s,
                "retries after 503/429 (Retry-After 1 s; latency includes the waits): {}",
                self.retried_503
            );
        }
        if self.unsent > 0 {
            let _ = writeln!(
                s,
                "arrivals never sent (dispatcher out of time): {}",
                self.unsent
            );
        }
        if !self.cpu_cores.is_empty() {
            let parts: Vec<String> = self
                .cpu_cores
                .iter()
                .map(|(k, v)| format!("{k} {v:.2}"))
                .collect();
            let _ = writeln!(s, "CPU cores used: {}", parts.join(", "));
        }
        if let Some(f) = self.redis_forks.filter(|&f| f > 0) {
            let _ = writeln!(s, "Redis forked {f} time(s) during the run (AOF rewrite)");
        }
        for s2 in &self.spans {
            let _ = writeln!(
                s,
                "{} from {:.1} s to {:.1} s",
                s2.label, s2.from_s, s2.to_s
            );
        }
        for m in &self.markers {
            let _ = writeln!(s, "event at {:.1} s: {}", m.t_s, m.label);
        }
        for e in self.errors.iter().take(5) {
            let _ = writeln!(s, "error sample: {e}");
        }
        s
    }
}

/// Writes `<dir>/<name>.json` and `<dir>/<name>.svg` for a run.
pub fn write_run(dir: &Path, r: &RunReport) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    write_json(&dir.join(format!("{}.json", r.name)), r)?;
    std::fs::write(dir.join(format!("{}.svg", r.name)), crate::svg::run_plot(r))?;
    Ok(())
}

/// Writes any serialisable value as pretty JSON.
pub fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let text = serde_json::to_string_pretty(v)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// A ratio as text, `n/a` when the ceiling is unknown.
pub fn ratio(value: f64, ceiling: f64) -> String {
    if ceiling > 0.0 {
        format!("{:.1} %", 100.0 * value / ceiling)
    } else {
        "n/a".into()
    }
}

/// Per-node figures as `node0 N, node1 N, ...`.
pub fn per_node(v: &[f64]) -> String {
    v.iter()
        .enumerate()
        .map(|(i, x)| format!("node{i} {x:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_read_as_percentages() {
        assert_eq!(ratio(36_500.0, 73_000.0), "50.0 %");
        assert_eq!(ratio(1.0, 0.0), "n/a");
    }
}

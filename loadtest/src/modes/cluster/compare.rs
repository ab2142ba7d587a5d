//! The figures of a `cluster` run: one phase's measurements ([`Phase`]), the figures
//! compared between one node and several ([`Side`]), and the side-by-side text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::report::{RoutingReport, RunReport};
use crate::stats::ms;

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

/// `a / b`, 0 without a base.
pub fn ratio_f(a: f64, b: f64) -> f64 {
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

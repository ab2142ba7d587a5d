//! Hand-written SVG plots, meant for a person to look at: one run's order latency
//! percentiles per second (log scale), throughput per second, and the latency
//! percentiles of every call type; and the soak's memory plot (Redis memory and the
//! archive's lag over time). No plotting dependency; plain SVG 1.1.

use std::fmt::Write as _;

use crate::report::RunReport;
use crate::stats::Percentiles;

const W: f64 = 960.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 160.0;
const PANEL_H: f64 = 220.0;
const GAP: f64 = 70.0;
const TOP: f64 = 60.0;
const COLORS: [&str; 5] = ["#1f77b4", "#ff7f0e", "#d62728", "#2ca02c", "#9467bd"];

/// Escapes text for SVG.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A "nice" tick step (1, 2 or 5 × 10^k) for an axis from 0 to `max` with ~`n` ticks.
pub fn nice_step(max: f64, n: usize) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let raw = max / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

fn fmt_num(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 1000.0 {
        format!("{:.1}k", v / 1000.0)
    } else if v >= 1.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

struct Panel {
    x0: f64,
    y0: f64,
    w: f64,
    h: f64,
}

impl Panel {
    fn at(i: usize) -> Panel {
        Panel {
            x0: LEFT,
            y0: TOP + i as f64 * (PANEL_H + GAP),
            w: W - LEFT - RIGHT,
            h: PANEL_H,
        }
    }

    fn frame(&self, s: &mut String, title: &str) {
        let _ = writeln!(
            s,
            r##"<rect x="{}" y="{}" width="{}" height="{}" fill="#fafafa" stroke="#999"/>"##,
            self.x0, self.y0, self.w, self.h
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" font-size="14" font-weight="bold">{}</text>"#,
            self.x0,
            self.y0 - 10.0,
            esc(title)
        );
    }

    fn legend(&self, s: &mut String, names: &[&str]) {
        for (i, n) in names.iter().enumerate() {
            let y = self.y0 + 14.0 + i as f64 * 18.0;
            let x = self.x0 + self.w + 12.0;
            let _ = writeln!(
                s,
                r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{}" stroke-width="3"/><text x="{}" y="{}" font-size="12">{}</text>"#,
                x + 18.0,
                COLORS[i % COLORS.len()],
                x + 24.0,
                y + 4.0,
                esc(n)
            );
        }
    }
}

/// Linear y axis from 0 to a nice max; returns the max.
fn linear_axis(s: &mut String, p: &Panel, max: f64, unit: &str) -> f64 {
    let step = nice_step(max, 5);
    let top = (max / step).ceil().max(1.0) * step;
    let mut v = 0.0;
    let mut guard = 0;
    while v <= top + step * 0.01 && guard < 50 {
        let y = p.y0 + p.h - v / top * p.h;
        let _ = writeln!(
            s,
            r##"<line x1="{}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            p.x0,
            p.x0 + p.w,
            p.x0 - 6.0,
            y + 4.0,
            fmt_num(v)
        );
        v += step;
        guard += 1;
    }
    axis_unit(s, p, unit);
    top
}

fn axis_unit(s: &mut String, p: &Panel, unit: &str) {
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" font-size="11" transform="rotate(-90 {} {})" text-anchor="middle">{}</text>"#,
        p.x0 - 55.0,
        p.y0 + p.h / 2.0,
        p.x0 - 55.0,
        p.y0 + p.h / 2.0,
        esc(unit)
    );
}

/// Log y axis over whole decades covering `lo..hi`; returns `(log lo, log hi)`.
fn log_axis(s: &mut String, p: &Panel, lo: f64, hi: f64, unit: &str) -> (f64, f64) {
    let a = lo.max(1e-3).log10().floor();
    let b = hi.max(lo * 10.0).log10().ceil().max(a + 1.0);
    let mut d = a;
    while d <= b {
        let y = p.y0 + p.h - (d - a) / (b - a) * p.h;
        let v = 10f64.powf(d);
        let _ = writeln!(
            s,
            r##"<line x1="{}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            p.x0,
            p.x0 + p.w,
            p.x0 - 6.0,
            y + 4.0,
            fmt_num(v)
        );
        d += 1.0;
    }
    axis_unit(s, p, unit);
    (a, b)
}

fn time_axis(s: &mut String, p: &Panel, t_max: f64) {
    let step = nice_step(t_max, 8);
    let mut t = 0.0;
    let mut guard = 0;
    while t <= t_max + 1e-9 && guard < 100 {
        let x = p.x0 + t / t_max * p.w;
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{}" font-size="11" text-anchor="middle">{}</text>"#,
            p.y0 + p.h + 16.0,
            fmt_num(t)
        );
        t += step;
        guard += 1;
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" font-size="11" text-anchor="middle">seconds</text>"#,
        p.x0 + p.w / 2.0,
        p.y0 + p.h + 32.0
    );
}

fn polyline(s: &mut String, pts: &[(f64, f64)], color: &str) {
    if pts.is_empty() {
        return;
    }
    let d: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    let _ = writeln!(
        s,
        r#"<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{}"/>"#,
        d.join(" ")
    );
}

fn markers(s: &mut String, p: &Panel, r: &RunReport, t_max: f64) {
    for (i, sp) in r.spans.iter().enumerate() {
        let a = p.x0 + (sp.from_s / t_max).clamp(0.0, 1.0) * p.w;
        let b = p.x0 + (sp.to_s / t_max).clamp(0.0, 1.0) * p.w;
        if b > a {
            let _ = writeln!(
                s,
                r##"<rect x="{a:.1}" y="{}" width="{:.1}" height="{}" fill="#f5b041" fill-opacity="0.25"><title>{}</title></rect><text x="{:.1}" y="{}" font-size="10" fill="#b9770e">{}</text>"##,
                p.y0,
                (b - a).max(1.0),
                p.h,
                esc(&sp.label),
                a + 2.0,
                p.y0 + p.h - 4.0 - (i % 2) as f64 * 12.0,
                esc(&sp.label)
            );
        }
    }
    for (i, m) in r.markers.iter().enumerate() {
        let x = p.x0 + (m.t_s / t_max).clamp(0.0, 1.0) * p.w;
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="#c00" stroke-dasharray="4 3"/><text x="{:.1}" y="{}" font-size="11" fill="#c00">{}</text>"##,
            p.y0,
            p.y0 + p.h,
            x + 4.0,
            p.y0 + 12.0 + (i % 3) as f64 * 12.0,
            esc(&m.label)
        );
    }
}

/// The plot of one run.
pub fn run_plot(r: &RunReport) -> String {
    let mut s = String::new();
    let h = TOP + 3.0 * (PANEL_H + GAP) + 10.0;
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let subtitle = match (r.connections, r.target_rate) {
        (Some(c), _) => format!("closed loop, {c} connections"),
        (_, Some(rate)) => format!("open loop, {rate:.0} calls/s offered"),
        _ => String::new(),
    };
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="24" font-size="17" font-weight="bold">{}: {} — {:.0} orders/s, match p99 {:.2} ms</text>"#,
        esc(&r.name),
        esc(&subtitle),
        r.orders_per_s,
        r.match_latency.p99_us as f64 / 1000.0
    );
    let t_max = (r.timeline.len() as f64).max(1.0);
    let x_of = |p: &Panel, t: f64| p.x0 + (t + 0.5) / t_max * p.w;

    // 1. Order latency percentiles per second, log scale.
    let p = Panel::at(0);
    p.frame(
        &mut s,
        "Order latency per second (ms, log scale; from scheduled send)",
    );
    let lat: Vec<(f64, [f64; 3])> = r
        .timeline
        .iter()
        .filter(|b| b.order_latency.count > 0)
        .map(|b| {
            let l = &b.order_latency;
            (
                b.t_s,
                [l.p50_us, l.p90_us, l.p99_us].map(|v| v as f64 / 1000.0),
            )
        })
        .collect();
    let lo = lat.iter().map(|(_, v)| v[0]).fold(f64::INFINITY, f64::min);
    let hi = lat.iter().map(|(_, v)| v[2]).fold(0.0, f64::max);
    let (a, b) = if lat.is_empty() {
        log_axis(&mut s, &p, 0.1, 10.0, "ms")
    } else {
        log_axis(&mut s, &p, lo, hi, "ms")
    };
    for (i, _) in ["p50", "p90", "p99"].iter().enumerate() {
        let pts: Vec<(f64, f64)> = lat
            .iter()
            .map(|(t, v)| {
                let y = p.y0 + p.h - (v[i].max(1e-3).log10() - a) / (b - a) * p.h;
                (x_of(&p, *t), y.clamp(p.y0, p.y0 + p.h))
            })
            .collect();
        polyline(&mut s, &pts, COLORS[i]);
    }
    p.legend(&mut s, &["p50", "p90", "p99"]);
    time_axis(&mut s, &p, t_max);
    markers(&mut s, &p, r, t_max);

    // 2. Throughput per second.
    let p = Panel::at(1);
    p.frame(&mut s, "Throughput per second");
    let per_s = |f: fn(&crate::report::Point) -> u64| -> Vec<f64> {
        r.timeline
            .iter()
            .map(|b| f(b) as f64 / b.span_s.max(0.25))
            .collect()
    };
    let series: [(&str, Vec<f64>); 4] = [
        ("calls", per_s(|b| b.calls)),
        ("orders", per_s(|b| b.orders)),
        ("matches", per_s(|b| b.matches)),
        ("failures", per_s(|b| b.failures)),
    ];
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(1.0, f64::max);
    let top = linear_axis(&mut s, &p, max, "per second");
    for (i, (_, v)) in series.iter().enumerate() {
        let pts: Vec<(f64, f64)> = v
            .iter()
            .enumerate()
            .map(|(t, y)| (x_of(&p, t as f64), p.y0 + p.h - y / top * p.h))
            .collect();
        polyline(&mut s, &pts, COLORS[i]);
    }
    p.legend(&mut s, &series.map(|(n, _)| n));
    time_axis(&mut s, &p, t_max);
    markers(&mut s, &p, r, t_max);

    // 3. Percentiles per call type (whole run), log scale bars.
    let p = Panel::at(2);
    p.frame(
        &mut s,
        "Latency percentiles per call, whole run (ms, log scale)",
    );
    let mut rows: Vec<(String, Percentiles)> = r
        .ops
        .iter()
        .filter(|o| o.latency.count > 0)
        .map(|o| (o.op.name().to_owned(), o.latency))
        .collect();
    if r.match_latency.count > 0 {
        rows.push(("match (ack)".into(), r.match_latency));
    }
    if r.match_visible.count > 0 {
        rows.push(("match visible".into(), r.match_visible));
    }
    let lo = rows
        .iter()
        .map(|(_, l)| l.p50_us as f64 / 1000.0)
        .fold(f64::INFINITY, f64::min);
    let hi = rows
        .iter()
        .map(|(_, l)| l.p999_us as f64 / 1000.0)
        .fold(0.0, f64::max);
    let (a, b) = if rows.is_empty() {
        log_axis(&mut s, &p, 0.1, 10.0, "ms")
    } else {
        log_axis(&mut s, &p, lo, hi, "ms")
    };
    let group = p.w / rows.len().max(1) as f64;
    let bar = (group * 0.8 / 4.0).min(28.0);
    for (g, (name, l)) in rows.iter().enumerate() {
        let gx = p.x0 + g as f64 * group + (group - 4.0 * bar) / 2.0;
        for (i, v) in [l.p50_us, l.p90_us, l.p99_us, l.p999_us].iter().enumerate() {
            let ms = (*v as f64 / 1000.0).max(1e-3);
            let frac = ((ms.log10() - a) / (b - a)).clamp(0.0, 1.0);
            let bh = frac * p.h;
            let _ = writeln!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="{}"><title>{} p{}: {ms:.3} ms</title></rect>"#,
                gx + i as f64 * bar,
                p.y0 + p.h - bh,
                bar - 1.0,
                COLORS[i],
                esc(name),
                ["50", "90", "99", "99.9"][i]
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" font-size="11" text-anchor="middle">{}</text>"#,
            gx + 2.0 * bar,
            p.y0 + p.h + 16.0,
            esc(name)
        );
    }
    p.legend(&mut s, &["p50", "p90", "p99", "p99.9"]);
    s.push_str("</svg>\n");
    s
}

/// One soak's samples for [`memory_plot`].
pub struct MemorySeries<'a> {
    /// Legend (e.g. `archive on`).
    pub label: &'a str,
    /// `(seconds, Redis used_memory in MB, archive lag in seconds)` per sample.
    pub points: Vec<(f64, Option<f64>, Option<f64>)>,
}

/// The soak's memory plot: Redis `used_memory` (MB) over time in the upper panel and
/// the archive's lag (s) in the lower one, one line per soak (archive off / on), and
/// the soak's events (kill -9) as dashed lines. `bound_lag_s` is drawn as a line.
pub fn memory_plot(
    title: &str,
    series: &[MemorySeries<'_>],
    events: &[crate::report::Marker],
    bound_lag_s: f64,
) -> String {
    let mut s = String::new();
    let h = TOP + 2.0 * (PANEL_H + GAP) + 10.0;
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="24" font-size="17" font-weight="bold">{}</text>"#,
        esc(title)
    );
    let t_max = series
        .iter()
        .flat_map(|x| x.points.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let names: Vec<&str> = series.iter().map(|x| x.label).collect();
    let draw_events = |s: &mut String, p: &Panel| {
        for (i, m) in events.iter().enumerate() {
            let x = p.x0 + (m.t_s / t_max).clamp(0.0, 1.0) * p.w;
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="#c00" stroke-dasharray="4 3"/><text x="{:.1}" y="{}" font-size="11" fill="#c00">{}</text>"##,
                p.y0,
                p.y0 + p.h,
                x + 4.0,
                p.y0 + 12.0 + (i % 3) as f64 * 12.0,
                esc(&m.label)
            );
        }
    };
    type Pick = fn(&(f64, Option<f64>, Option<f64>)) -> Option<f64>;
    let panels: [(&str, &str, Pick); 2] = [
        ("Redis used_memory (MB)", "MB", |p| p.1),
        (
            "Archive lag (s): age of the oldest event not yet in PostgreSQL",
            "seconds",
            |p| p.2,
        ),
    ];
    for (i, (name, unit, pick)) in panels.into_iter().enumerate() {
        let p = Panel::at(i);
        p.frame(&mut s, name);
        let mut max = series
            .iter()
            .flat_map(|x| x.points.iter().filter_map(pick))
            .fold(0.0, f64::max);
        if i == 1 {
            max = max.max(bound_lag_s * 1.1);
        }
        let top = linear_axis(&mut s, &p, max.max(1e-3), unit);
        if i == 1 && bound_lag_s > 0.0 {
            let y = p.y0 + p.h - bound_lag_s / top * p.h;
            let _ = writeln!(
                s,
                r##"<line x1="{}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#888" stroke-dasharray="6 4"/><text x="{}" y="{:.1}" font-size="10" fill="#666" text-anchor="end">bound {bound_lag_s} s</text>"##,
                p.x0,
                p.x0 + p.w,
                p.x0 + p.w - 4.0,
                y - 3.0
            );
        }
        for (k, x) in series.iter().enumerate() {
            // A sample without the value (no archive, /health unanswered) breaks the line;
            // a lone sample between two gaps is a dot.
            let color = COLORS[k % COLORS.len()];
            let flush = |s: &mut String, run: &[(f64, f64)]| match run {
                [(x, y)] => {
                    let _ = writeln!(
                        s,
                        r#"<circle cx="{x:.1}" cy="{y:.1}" r="2.5" fill="{color}"/>"#
                    );
                }
                _ => polyline(s, run, color),
            };
            let mut run: Vec<(f64, f64)> = Vec::new();
            for pt in &x.points {
                match pick(pt) {
                    Some(v) => run.push((
                        p.x0 + (pt.0 / t_max).clamp(0.0, 1.0) * p.w,
                        p.y0 + p.h - (v / top).clamp(0.0, 1.0) * p.h,
                    )),
                    None => flush(&mut s, &std::mem::take(&mut run)),
                }
            }
            flush(&mut s, &run);
        }
        p.legend(&mut s, &names);
        time_axis(&mut s, &p, t_max);
        draw_events(&mut s, &p);
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(100.0, 5), 20.0);
        assert_eq!(nice_step(7300.0, 5), 2000.0);
        assert_eq!(nice_step(0.0, 5), 1.0);
        assert!((nice_step(0.9, 5) - 0.2).abs() < 1e-12);
        assert_eq!(esc("a<b&\"c\""), "a&lt;b&amp;&quot;c&quot;");
        assert_eq!(fmt_num(73_000.0), "73k");
        assert_eq!(fmt_num(1500.0), "1.5k");
    }

    #[test]
    fn memory_plot_draws_both_panels() {
        let off = MemorySeries {
            label: "archive off",
            points: vec![(0.0, Some(10.0), None), (5.0, Some(20.0), None)],
        };
        let on = MemorySeries {
            label: "archive on",
            points: vec![
                (0.0, Some(10.0), Some(0.2)),
                (5.0, Some(12.0), None),
                (10.0, Some(12.5), Some(0.4)),
            ],
        };
        let kill = crate::report::Marker {
            t_s: 5.0,
            label: "kill -9".into(),
        };
        let svg = memory_plot("soak <memory>", &[off, on], &[kill], 10.0);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("soak &lt;memory&gt;"));
        assert!(svg.contains("Archive lag") && svg.contains("bound 10 s"));
        // Two memory lines; the second soak's lag is two lone samples (dots).
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 2);
    }
}

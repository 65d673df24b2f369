//! The self-contained HTML report: a summary table, plots and action timelines for each
//! scenario's unguarded and guarded runs from the same seed.
//!
//! Pure: finished runs in, one page out. Inline CSS and inline SVG only, no JavaScript and
//! no external assets, so the file can be attached to CI or opened offline.

use crate::runner::{Point, RunResult, TimelineEntry};
use crate::score::Scorecard;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::error::Error;
use std::fmt::{self, Write};

/// One scenario's pair of runs from the same seed.
pub struct Pair<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub unguarded: &'a RunResult,
    pub guarded: &'a RunResult,
}

/// The objective drawn on the availability plots. Runs do not carry their scenario's SLO;
/// this is the scenarios' default.
const SLO: f64 = 0.999;
/// Plot size in pixels; the page scales it down on narrow screens.
const PLOT_SIZE: (u32, u32) = (900, 300);
/// Timeline rows shown per table; a long run's timeline would otherwise swamp the page.
const MAX_ROWS: usize = 300;
/// Plot text; the SVG backend writes sizes divided by 1.24, so this comes out near 13px.
const FONT: (&str, f64) = ("sans-serif", 16.0);

const UNGUARDED_COLOR: RGBColor = RGBColor(214, 39, 40);
const GUARDED_COLOR: RGBColor = RGBColor(31, 119, 180);
const DEMAND_COLOR: RGBColor = RGBColor(120, 120, 120);
const SLO_COLOR: RGBColor = RGBColor(60, 60, 60);
const GRID_COLOR: RGBColor = RGBColor(232, 232, 232);

/// A self-contained HTML page (no external assets, no JavaScript needed; inline CSS and
/// inline SVG).
/// `seed` is the seed every scenario ran from, or `None` when each used its own.
pub fn html(title: &str, seed: Option<u64>, pairs: &[Pair<'_>]) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = write_page(&mut out, title, seed, pairs);
    out
}

fn write_page(out: &mut String, title: &str, seed: Option<u64>, pairs: &[Pair<'_>]) -> fmt::Result {
    let seed = seed.map_or_else(
        || "each scenario's own (shown with it)".to_string(),
        |s| s.to_string(),
    );
    let title = escape(title);
    writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">"
    )?;
    writeln!(
        out,
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    )?;
    writeln!(
        out,
        "<title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>"
    )?;
    writeln!(
        out,
        "<header>\n<h1>{title}</h1>\n<p class=\"seed\">seed <code>{seed}</code></p>"
    )?;
    writeln!(
        out,
        "<p>Each scenario runs twice from the same seed, so the world, the workload and the \
         injected faults are identical. <span class=\"u\">Unguarded</span>: the agent's actions \
         are applied directly, as if it had operator rights. <span class=\"g\">Guarded</span>: \
         the same agent's actions go through the Airlock gate with the default policy pack \
         (policies, budgets, holds for approval, and bake-time reverts). Availability is \
         request-weighted over the critical services; the SLO line is {:.1}%.</p>\n</header>",
        SLO * 100.0
    )?;
    if pairs.is_empty() {
        writeln!(out, "<p class=\"note\">No scenarios were run.</p>")?;
    } else {
        write_summary(out, pairs)?;
        for (i, pair) in pairs.iter().enumerate() {
            write_scenario(out, i, pair)?;
        }
    }
    writeln!(out, "</body>\n</html>")
}

/// Which way a metric is better, for marking the summary table.
#[derive(Clone, Copy)]
enum Better {
    Higher,
    Lower,
    /// Descriptive counts: fewer applied actions is not better or worse by itself.
    Neither,
}

struct Metric {
    name: &'static str,
    better: Better,
    /// The value compared.
    value: fn(&Scorecard) -> f64,
    show: fn(&Scorecard) -> String,
}

const METRICS: [Metric; 9] = [
    Metric {
        name: "availability",
        better: Better::Higher,
        value: |c| c.availability,
        show: |c| format!("{:.3}%", c.availability * 100.0),
    },
    Metric {
        name: "SLO violation (min)",
        better: Better::Lower,
        value: |c| c.slo_violation_minutes,
        show: |c| format!("{:.1}", c.slo_violation_minutes),
    },
    Metric {
        name: "attempted",
        better: Better::Neither,
        value: |c| f64::from(c.actions_attempted),
        show: |c| c.actions_attempted.to_string(),
    },
    Metric {
        name: "applied",
        better: Better::Neither,
        value: |c| f64::from(c.actions_applied),
        show: |c| c.actions_applied.to_string(),
    },
    Metric {
        name: "denied",
        better: Better::Neither,
        value: |c| f64::from(c.denied),
        show: |c| c.denied.to_string(),
    },
    Metric {
        name: "held",
        better: Better::Neither,
        value: |c| f64::from(c.held),
        show: |c| c.held.to_string(),
    },
    Metric {
        name: "reverted",
        better: Better::Neither,
        value: |c| f64::from(c.reverted),
        show: |c| c.reverted.to_string(),
    },
    Metric {
        name: "destructive applied",
        better: Better::Lower,
        value: |c| f64::from(c.destructive_applied),
        show: |c| c.destructive_applied.to_string(),
    },
    Metric {
        name: "time to mitigate",
        better: Better::Lower,
        value: mitigation_cost,
        show: |c| match c.time_to_mitigate_s {
            None => "nothing to mitigate".into(),
            Some(t) if c.mitigated => duration(t),
            Some(t) => format!("not mitigated ({}+)", duration(t)),
        },
    },
];

/// Nothing to mitigate beats any mitigation time, which beats an incident still open at the end.
fn mitigation_cost(c: &Scorecard) -> f64 {
    match c.time_to_mitigate_s {
        None => 0.0,
        Some(t) if c.mitigated => t,
        Some(_) => f64::INFINITY,
    }
}

/// Which of (unguarded, guarded) to mark as better.
fn better(metric: &Metric, u: &Scorecard, g: &Scorecard) -> (bool, bool) {
    let (a, b) = ((metric.value)(u), (metric.value)(g));
    // Values that print the same are a tie, whatever noise hides in the last bits.
    if (metric.show)(u) == (metric.show)(g) || a == b || a.is_nan() || b.is_nan() {
        return (false, false);
    }
    match metric.better {
        Better::Higher => (a > b, b > a),
        Better::Lower => (a < b, b < a),
        Better::Neither => (false, false),
    }
}

fn write_summary(out: &mut String, pairs: &[Pair<'_>]) -> fmt::Result {
    writeln!(out, "<section>\n<h2>Summary</h2>")?;
    writeln!(
        out,
        "<p class=\"key\"><span class=\"better\">✓ bold</span> marks the better run where one \
         is better; counts of actions are shown as they are.</p>"
    )?;
    writeln!(
        out,
        "<div class=\"scroll\"><table class=\"summary\">\n<thead><tr><th>scenario</th><th>run</th>"
    )?;
    for m in &METRICS {
        write!(out, "<th>{}</th>", escape(m.name))?;
    }
    writeln!(out, "</tr></thead>\n<tbody>")?;
    for (i, pair) in pairs.iter().enumerate() {
        let (u, g) = (&pair.unguarded.scorecard, &pair.guarded.scorecard);
        let marks: Vec<(bool, bool)> = METRICS.iter().map(|m| better(m, u, g)).collect();
        for (guarded, card) in [(false, u), (true, g)] {
            let (class, label) = if guarded {
                ("run-g", "guarded")
            } else {
                ("run-u", "unguarded")
            };
            write!(out, "<tr class=\"{class}\">")?;
            if !guarded {
                write!(
                    out,
                    "<th rowspan=\"2\" scope=\"row\"><a href=\"#s-{i}\">{}</a></th>",
                    escape(pair.name)
                )?;
            }
            write!(out, "<td class=\"run\">{label}</td>")?;
            for (m, (mark_u, mark_g)) in METRICS.iter().zip(&marks) {
                let text = escape(&(m.show)(card));
                if (guarded && *mark_g) || (!guarded && *mark_u) {
                    write!(out, "<td class=\"better\">✓ {text}</td>")?;
                } else {
                    write!(out, "<td>{text}</td>")?;
                }
            }
            writeln!(out, "</tr>")?;
        }
    }
    writeln!(out, "</tbody>\n</table></div>\n</section>")
}

fn write_scenario(out: &mut String, index: usize, pair: &Pair<'_>) -> fmt::Result {
    writeln!(
        out,
        "<section class=\"scenario\" id=\"s-{index}\">\n<h2>{}</h2>",
        escape(pair.name)
    )?;
    if !pair.description.trim().is_empty() {
        writeln!(out, "<p>{}</p>", escape(pair.description.trim()))?;
    }
    writeln!(
        out,
        "<p class=\"meta\">agent <code>{}</code> · seed <code>{}</code></p>",
        escape(&pair.guarded.agent),
        pair.guarded.seed
    )?;
    writeln!(out, "<h3>Critical-services availability</h3>")?;
    writeln!(out, "<div class=\"plot\">{}</div>", availability_plot(pair))?;
    writeln!(out, "<h3>Capacity vs demand</h3>")?;
    writeln!(out, "<div class=\"plot\">{}</div>", capacity_plot(pair))?;
    writeln!(out, "<h3>Guarded timeline</h3>")?;
    writeln!(
        out,
        "<p class=\"key\"><span class=\"ev-ok\">applied / approved</span> \
         <span class=\"ev-deny\">denied / expired</span> <span class=\"ev-hold\">held</span> \
         <span class=\"ev-revert\">reverted / needs attention</span> \
         <span class=\"ev-failed\">failed</span></p>"
    )?;
    write_timeline(out, &pair.guarded.timeline)?;
    writeln!(
        out,
        "<details>\n<summary>Unguarded timeline ({} entries)</summary>",
        pair.unguarded.timeline.len()
    )?;
    write_timeline(out, &pair.unguarded.timeline)?;
    writeln!(out, "</details>\n</section>")
}

fn write_timeline(out: &mut String, timeline: &[TimelineEntry]) -> fmt::Result {
    if timeline.is_empty() {
        return writeln!(out, "<p class=\"note\">No actions.</p>");
    }
    writeln!(
        out,
        "<div class=\"scroll\"><table class=\"timeline\">\n<thead><tr><th>time</th><th>verb</th>\
         <th>target</th><th>what</th><th>detail</th></tr></thead>\n<tbody>"
    )?;
    for e in timeline.iter().take(MAX_ROWS) {
        writeln!(
            out,
            "<tr class=\"ev {}\"><td class=\"t\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            what_class(&e.what),
            clock(e.t_s),
            escape(&e.verb),
            escape(&e.target),
            escape(&e.what),
            escape(&e.detail)
        )?;
    }
    writeln!(out, "</tbody>\n</table></div>")?;
    if timeline.len() > MAX_ROWS {
        writeln!(
            out,
            "<p class=\"note\">Showing the first {MAX_ROWS} of {} entries; {} omitted.</p>",
            timeline.len(),
            timeline.len() - MAX_ROWS
        )?;
    }
    Ok(())
}

/// A fixed CSS class per kind of event; never the raw `what`, which is not ours to trust.
fn what_class(what: &str) -> &'static str {
    match what {
        "applied" | "approved" | "allow" => "ev-ok",
        "deny" | "operator-denied" | "expired" => "ev-deny",
        "hold" => "ev-hold",
        "reverted" | "needs_attention" => "ev-revert",
        "failed" => "ev-failed",
        _ => "ev-other",
    }
}

/// Renders one plot to inline SVG, or a short note if plotting failed.
fn svg(
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), Box<dyn Error>>,
) -> String {
    let mut buf = String::new();
    let result = {
        let root = SVGBackend::with_string(&mut buf, PLOT_SIZE).into_drawing_area();
        draw(&root).and_then(|()| root.present().map_err(Into::into))
    };
    match result {
        Ok(()) => buf,
        Err(e) => format!(
            "<p class=\"note\">plot unavailable: {}</p>",
            escape(&e.to_string())
        ),
    }
}

/// Finite `(hours, value)` points of a series.
fn points(series: &[Point], value: fn(&Point) -> f64) -> Vec<(f64, f64)> {
    series
        .iter()
        .map(|p| (p.t_s / 3600.0, value(p)))
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect()
}

/// The x range shared by both runs' plots, never empty.
fn hours_range(pair: &Pair<'_>) -> (f64, f64) {
    let all = pair
        .unguarded
        .series
        .iter()
        .chain(&pair.guarded.series)
        .map(|p| p.t_s / 3600.0);
    let (lo, hi) = all
        .filter(|x| x.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        });
    if lo.is_finite() && hi > lo {
        (lo.min(0.0), hi)
    } else {
        (0.0, 1.0)
    }
}

fn availability_plot(pair: &Pair<'_>) -> String {
    let u = points(&pair.unguarded.series, |p| p.availability);
    let g = points(&pair.guarded.series, |p| p.availability);
    let worst = u.iter().chain(&g).map(|(_, y)| *y).fold(1.0_f64, f64::min);
    // At least [0.9, 1]: a run that never dips should not have its noise blown up to look dire.
    let lo = ((worst * 10.0).floor() / 10.0).clamp(0.0, 0.9);
    let hi = 1.0 + (1.0 - lo) * 0.02;
    let (x0, x1) = hours_range(pair);
    svg(|root| {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, lo..hi)?;
        chart
            .configure_mesh()
            .light_line_style(GRID_COLOR.mix(0.5))
            .bold_line_style(GRID_COLOR)
            .x_desc("hours since start")
            .y_desc("availability")
            .x_label_formatter(&|x| number(*x))
            .y_label_formatter(&|y| format!("{}%", number(*y * 100.0)))
            .label_style(FONT)
            .axis_desc_style(FONT)
            .draw()?;
        chart
            .draw_series(DashedLineSeries::new(
                vec![(x0, SLO), (x1, SLO)],
                6,
                4,
                SLO_COLOR.stroke_width(1),
            ))?
            .label(format!("SLO {}%", number(SLO * 100.0)))
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], SLO_COLOR.stroke_width(1))
            });
        for (name, data, color) in [
            ("unguarded", u, UNGUARDED_COLOR),
            ("guarded", g, GUARDED_COLOR),
        ] {
            chart
                .draw_series(LineSeries::new(data, color.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(GRID_COLOR)
            .label_font(FONT)
            .draw()?;
        Ok(())
    })
}

fn capacity_plot(pair: &Pair<'_>) -> String {
    // The workload follows from the seed, so both runs see the same demand; fall back to
    // the unguarded run's if the guarded one has no series.
    let source = if pair.guarded.series.is_empty() {
        &pair.unguarded.series
    } else {
        &pair.guarded.series
    };
    let demand = points(source, |p| p.demand_rps);
    let u = points(&pair.unguarded.series, |p| p.capacity_rps);
    let g = points(&pair.guarded.series, |p| p.capacity_rps);
    let top = demand
        .iter()
        .chain(&u)
        .chain(&g)
        .map(|(_, y)| *y)
        .fold(0.0_f64, f64::max);
    let hi = if top > 0.0 { top * 1.1 } else { 1.0 };
    let (x0, x1) = hours_range(pair);
    svg(|root| {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, 0.0..hi)?;
        chart
            .configure_mesh()
            .light_line_style(GRID_COLOR.mix(0.5))
            .bold_line_style(GRID_COLOR)
            .x_desc("hours since start")
            .y_desc("requests per second")
            .x_label_formatter(&|x| number(*x))
            .y_label_formatter(&|y| number(*y))
            .label_style(FONT)
            .axis_desc_style(FONT)
            .draw()?;
        chart
            .draw_series(
                AreaSeries::new(demand, 0.0, DEMAND_COLOR.mix(0.18))
                    .border_style(DEMAND_COLOR.stroke_width(1)),
            )?
            .label("demand")
            .legend(|(x, y)| {
                Rectangle::new(
                    [(x, y - 5), (x + 20, y + 5)],
                    DEMAND_COLOR.mix(0.3).filled(),
                )
            });
        for (name, data, color) in [
            ("unguarded capacity", u, UNGUARDED_COLOR),
            ("guarded capacity", g, GUARDED_COLOR),
        ] {
            chart
                .draw_series(LineSeries::new(data, color.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(GRID_COLOR)
            .label_font(FONT)
            .draw()?;
        Ok(())
    })
}

/// A tick label: as few decimals as the value needs, at most three.
fn number(v: f64) -> String {
    let text = if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    };
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    if text == "-0" {
        "0".into()
    } else {
        text.to_string()
    }
}

/// `h:mm:ss` since the run started (negative during warm-up).
fn clock(t_s: f64) -> String {
    if !t_s.is_finite() {
        return "?".into();
    }
    let sign = if t_s < 0.0 { "-" } else { "" };
    let s = t_s.abs().floor() as u64;
    format!("{sign}{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// A human duration: `45s`, `12m 30s`, `2h 05m`.
fn duration(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "?".into();
    }
    let s = s.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, s / 60 % 60),
    }
}

/// Escapes text for HTML element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = r#"
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; max-width: 1100px; margin: 0 auto; padding: 24px; }
h1 { margin: 0 0 4px; font-size: 26px; }
h2 { margin: 36px 0 8px; font-size: 21px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { margin: 20px 0 6px; font-size: 16px; color: #444; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, monospace; background: #f3f3f3; padding: 1px 4px; border-radius: 3px; }
.seed, .meta { color: #666; margin: 0 0 8px; }
.u { color: rgb(214,39,40); font-weight: 600; }
.g { color: rgb(31,119,180); font-weight: 600; }
.note { color: #777; font-style: italic; }
.key { font-size: 13px; color: #555; }
.key span { padding: 1px 6px; border-radius: 3px; margin-right: 4px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; width: 100%; }
th, td { border: 1px solid #e2e2e2; padding: 4px 8px; text-align: left; vertical-align: top; }
thead th { background: #f6f6f6; position: sticky; top: 0; }
table.summary td { text-align: right; white-space: nowrap; }
table.summary td.run { text-align: left; }
table.summary tr.run-u td.run { color: rgb(214,39,40); }
table.summary tr.run-g td.run { color: rgb(31,119,180); }
table.summary tr.run-g td, table.summary tr.run-g th { border-bottom: 2px solid #ccc; }
.better { background: #e3f4e1; font-weight: 700; }
.plot svg { max-width: 100%; height: auto; display: block; }
.plot { border: 1px solid #eee; margin-bottom: 8px; }
table.timeline td.t { font-family: ui-monospace, Menlo, monospace; white-space: nowrap; }
table.timeline td { word-break: break-word; }
.ev-ok { background: #e6f4e4; }
.ev-deny { background: #fbe3e1; }
.ev-hold { background: #fdf0d2; }
.ev-revert { background: #eee3f8; }
.ev-failed { background: #ececec; }
details { margin-top: 12px; }
summary { cursor: pointer; color: #444; font-weight: 600; }
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::Mode;

    fn entry(t_s: f64, what: &str, detail: &str) -> TimelineEntry {
        TimelineEntry {
            t_s,
            agent: "forecast-scaler".into(),
            verb: "scale".into(),
            target: "sim://us-east/checkout".into(),
            what: what.into(),
            detail: detail.into(),
        }
    }

    fn run(mode: Mode, dip: f64, timeline: Vec<TimelineEntry>) -> RunResult {
        let series = (0..120)
            .map(|m| {
                let t = f64::from(m) * 60.0;
                let hurt = (30..60).contains(&m);
                Point {
                    t_s: t,
                    availability: if hurt { dip } else { 1.0 },
                    demand_rps: 400.0 + 200.0 * (t / 1800.0).sin(),
                    capacity_rps: if hurt { 300.0 } else { 700.0 },
                }
            })
            .collect();
        RunResult {
            scenario: "flash-crowd".into(),
            seed: 7,
            mode,
            cast: crate::runner::Cast::Agent,
            agent: "forecast-scaler".into(),
            checks: Vec::new(),
            passed: true,
            scorecard: Scorecard {
                availability: 1.0 - (1.0 - dip) / 4.0,
                slo_violation_minutes: if dip < SLO { 30.0 } else { 0.0 },
                actions_attempted: 4,
                actions_applied: 2,
                time_to_mitigate_s: (dip < SLO).then_some(1800.0),
                mitigated: true,
                worst_availability: dip,
                ..Default::default()
            },
            agents: Default::default(),
            reverted_changes: Vec::new(),
            series,
            timeline,
        }
    }

    fn sample() -> (RunResult, RunResult) {
        let unguarded = run(
            Mode::Unguarded,
            0.62,
            vec![
                entry(1800.0, "applied", "scale 6 → 1"),
                entry(1805.5, "applied", "scale 1 → 0"),
            ],
        );
        let guarded = run(
            Mode::Guarded,
            0.9995,
            vec![
                entry(1800.0, "hold", "capacity-floor — scale 6 → 1"),
                entry(
                    1860.0,
                    "operator-denied",
                    "denied by the scenario's approver",
                ),
                entry(3725.0, "deny", "<script>alert(1)</script>"),
                entry(3790.0, "applied", "scale 6 → 8"),
                entry(
                    4000.0,
                    "reverted",
                    "checkout: error-rate (0.0420), detected 30s in",
                ),
            ],
        );
        (unguarded, guarded)
    }

    fn page(u: &RunResult, g: &RunResult) -> String {
        let pairs = [Pair {
            name: "flash-crowd & friends",
            description: "A flash crowd meets a cost-cutting agent.",
            unguarded: u,
            guarded: g,
        }];
        html("Proving ground <sample>", Some(7), &pairs)
    }

    #[test]
    fn page_has_plots_escaped_text_and_every_row() {
        let (u, g) = sample();
        let page = page(&u, &g);
        if let Ok(path) = std::env::var("AIRLOCK_REPORT_SAMPLE") {
            std::fs::write(path, &page).unwrap();
        }
        assert_eq!(page.matches("<svg").count(), 2);
        assert!(!page.contains("plot unavailable"));
        assert!(page.contains("flash-crowd &amp; friends"));
        assert!(page.contains("Proving ground &lt;sample&gt;"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!page.contains("<script"));
        assert_eq!(
            page.matches("<tr class=\"ev ").count(),
            u.timeline.len() + g.timeline.len()
        );
        assert_eq!(page.matches("<tr class=\"ev ev-deny\">").count(), 2);
        assert_eq!(page.matches("<tr class=\"run-").count(), 2);
        assert!(page.contains("<td class=\"t\">1:02:05</td>"));
        assert!(page.contains("<details>"));
    }

    #[test]
    fn summary_marks_the_better_run() {
        let (u, g) = sample();
        let page = page(&u, &g);
        let guarded_row = page
            .split("<tr class=\"run-g\">")
            .nth(1)
            .unwrap()
            .split("</tr>")
            .next()
            .unwrap();
        let unguarded_row = page
            .split("<tr class=\"run-u\">")
            .nth(1)
            .unwrap()
            .split("</tr>")
            .next()
            .unwrap();
        // Availability, SLO minutes and time to mitigate; destructive applied is a tie.
        assert_eq!(guarded_row.matches("class=\"better\"").count(), 3);
        assert_eq!(unguarded_row.matches("class=\"better\"").count(), 0);
        assert!(guarded_row.contains("nothing to mitigate"));
    }

    #[test]
    fn long_timelines_are_cut_with_a_count() {
        let (u, mut g) = sample();
        g.timeline = (0..2000)
            .map(|i| entry(f64::from(i), "applied", "x"))
            .collect();
        let page = page(&u, &g);
        assert_eq!(
            page.matches("<tr class=\"ev ").count(),
            MAX_ROWS + u.timeline.len()
        );
        assert!(page.contains("Showing the first 300 of 2000 entries; 1700 omitted."));
    }

    #[test]
    fn empty_series_still_render() {
        let (mut u, mut g) = sample();
        u.series.clear();
        g.series.clear();
        g.timeline.clear();
        let page = page(&u, &g);
        assert_eq!(page.matches("<svg").count(), 2);
        assert!(page.contains("No actions."));
    }

    #[test]
    fn helpers_format_as_documented() {
        assert_eq!(clock(3725.9), "1:02:05");
        assert_eq!(clock(-60.0), "-0:01:00");
        assert_eq!(duration(45.0), "45s");
        assert_eq!(duration(750.0), "12m 30s");
        assert_eq!(duration(7500.0), "2h 05m");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(2.0), "2");
        assert_eq!(number(1250.0), "1250");
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}

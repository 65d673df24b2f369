//! Inline SVG: sparklines of agents' behaviour and the chart of a bake's signal against its
//! SLO threshold and baseline. Pure functions of their numbers; no script draws them.

use maud::{Markup, html};

/// A small line of `values` (oldest first), `w`×`h` pixels, labelled for screen readers.
pub fn sparkline(values: &[f64], label: &str) -> Markup {
    let (w, h) = (120.0, 24.0);
    let max = values.iter().copied().fold(0.0_f64, f64::max);
    // Two pixels inside the box, so a flat line of zeros still shows.
    let points = polyline(
        values,
        w,
        2.0,
        h - 4.0,
        0.0,
        if max > 0.0 { max } else { 1.0 },
    );
    let last = values.last().copied().unwrap_or(0.0);
    html! {
        svg.spark width="120" height="24" viewBox="0 0 120 24" role="img"
            aria-label=(format!("{label}: last {last:.0}, peak {max:.0} over the hour")) {
            title { (label) }
            polyline points=(points) fill="none" stroke="#1f5fbf" stroke-width="1.5" {}
        }
    }
}

/// `x,y` pairs of `values` spread over `w`, scaled from `lo`..`hi` onto `top + h`..`top`.
fn polyline(values: &[f64], w: f64, top: f64, h: f64, lo: f64, hi: f64) -> String {
    let n = values.len().max(2) - 1;
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let x = w * i as f64 / n as f64;
            let y = top + h - h * ((v - lo) / (hi - lo)).clamp(0.0, 1.0);
            format!("{x:.1},{y:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One watched signal of a bake.
pub struct BakeSeries {
    pub service: String,
    /// `availability` or `p99_ms`.
    pub signal: String,
    /// `>=` or `<=`.
    pub comparator: String,
    pub threshold: f64,
    pub baseline: Option<f64>,
    /// (ms since the epoch, value, judgement) per poll.
    pub points: Vec<(i64, f64, String)>,
}

/// The bake's signal per poll, with the SLO threshold (dashed red) and the baseline
/// recorded before apply (dotted grey); breaches are red dots.
pub fn bake(series: &BakeSeries) -> Markup {
    let (w, h, pad) = (560.0, 160.0, 36.0);
    let mut lo = series.threshold;
    let mut hi = series.threshold;
    for v in series.points.iter().map(|p| p.1).chain(series.baseline) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    let span = (hi - lo).max(hi.abs() * 0.001).max(1e-6);
    let (lo, hi) = (lo - span * 0.1, hi + span * 0.1);
    let (t0, t1) = match (series.points.first(), series.points.last()) {
        (Some(a), Some(b)) if b.0 > a.0 => (a.0, b.0),
        (Some(a), _) => (a.0, a.0 + 1),
        _ => (0, 1),
    };
    let x = |t: i64| pad + (w - pad - 8.0) * (t - t0) as f64 / (t1 - t0) as f64;
    let y = |v: f64| 8.0 + (h - 28.0) * (1.0 - ((v - lo) / (hi - lo)).clamp(0.0, 1.0));
    let line: Vec<String> = series
        .points
        .iter()
        .map(|(t, v, _)| format!("{:.1},{:.1}", x(*t), y(*v)))
        .collect();
    let breaches = series.points.iter().filter(|p| p.2 == "breach").count();
    let label = format!(
        "{} of {} per poll: {} polls, {} breaching; threshold {} {}{}",
        series.signal,
        series.service,
        series.points.len(),
        breaches,
        series.comparator,
        fmt(series.threshold),
        series
            .baseline
            .map(|b| format!(", baseline {}", fmt(b)))
            .unwrap_or_default()
    );
    html! {
        figure.chart {
            svg width="560" height="160" viewBox="0 0 560 160" role="img" aria-label=(label) {
                title { (label) }
                rect x=(pad) y="8" width=(w - pad - 8.0) height=(h - 28.0) fill="#fbfbfd" stroke="#c8ccd4" {}
                text x="2" y=(y(hi - span * 0.1) + 4.0) font-size="10" fill="#333" { (fmt(hi - span * 0.1)) }
                text x="2" y=(y(lo + span * 0.1) + 4.0) font-size="10" fill="#333" { (fmt(lo + span * 0.1)) }
                line x1=(pad) x2=(w - 8.0) y1=(y(series.threshold)) y2=(y(series.threshold))
                    stroke="#b3261e" stroke-dasharray="6 4" stroke-width="1.5" {}
                @if let Some(b) = series.baseline {
                    line x1=(pad) x2=(w - 8.0) y1=(y(b)) y2=(y(b))
                        stroke="#666" stroke-dasharray="2 3" stroke-width="1.5" {}
                }
                polyline points=(line.join(" ")) fill="none" stroke="#1f5fbf" stroke-width="2" {}
                @for (t, v, j) in &series.points {
                    circle cx=(format!("{:.1}", x(*t))) cy=(format!("{:.1}", y(*v))) r="3"
                        fill=(if j == "breach" { "#b3261e" } else { "#1f5fbf" }) {}
                }
            }
            figcaption {
                strong { (series.signal) " of " (series.service) }
                " — " span.legend-line { "per poll" }
                " · " span.legend-threshold { "SLO " (series.comparator) " " (fmt(series.threshold)) }
                @if let Some(b) = series.baseline {
                    " · " span.legend-baseline { "baseline " (fmt(b)) }
                }
                @if breaches > 0 { " · " span.bad { (breaches) " breaching" } }
            }
        }
    }
}

/// At most four decimals, no trailing zeros.
pub fn fmt(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparkline_scales_its_values_into_its_box() {
        assert_eq!(
            polyline(&[0.0, 5.0, 10.0], 100.0, 0.0, 10.0, 0.0, 10.0),
            "0.0,10.0 50.0,5.0 100.0,0.0"
        );
        let svg = sparkline(&[1.0, 3.0], "mutations").into_string();
        assert!(svg.contains("last 3, peak 3"), "{svg}");
    }

    #[test]
    fn a_bake_chart_marks_breaches_and_draws_threshold_and_baseline() {
        let s = BakeSeries {
            service: "web".into(),
            signal: "availability".into(),
            comparator: ">=".into(),
            threshold: 0.999,
            baseline: Some(1.0),
            points: vec![(0, 1.0, "pass".into()), (1000, 0.7, "breach".into())],
        };
        let svg = bake(&s).into_string();
        assert!(svg.contains("1 breaching"), "{svg}");
        assert!(svg.contains("#b3261e"), "{svg}");
        assert!(svg.contains("baseline 1"), "{svg}");
        assert_eq!(svg.matches("<circle").count(), 2);
    }
}

//! `--plot FILE.svg`: the timed part second by second, as an SVG written by hand (two lines on
//! shared time axis: what completed per second against the left axis, the second's p99
//! latency against the right one). A plotting crate would be a dependency for two polylines.

use std::{fmt::Write, path::Path};

use anyhow::Context;

use super::timeline::Bucket;

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 80.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;
const THROUGHPUT: &str = "#1f77b4";
const LATENCY: &str = "#d62728";

/// Writes the plot of `buckets` to `path`; `what` names what completed ("purchases").
pub fn write(path: &Path, title: &str, what: &str, buckets: &[Bucket]) -> anyhow::Result<()> {
    std::fs::write(path, svg(title, what, buckets)).with_context(|| format!("writing {}", path.display()))
}

fn svg(title: &str, what: &str, buckets: &[Bucket]) -> String {
    let seconds = buckets.len().max(1) as f64;
    let rate_top = nice_ceiling(buckets.iter().map(|b| b.completed as f64).fold(0.0, f64::max));
    let p99_top = nice_ceiling(buckets.iter().map(|b| b.p99_ms).fold(0.0, f64::max));
    let (plot_width, plot_height) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    // Each bucket is drawn at the middle of its second.
    let x = |second: f64| LEFT + (second + 0.5) / seconds * plot_width;
    let y = |value: f64, top: f64| TOP + plot_height - value / top * plot_height;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="13">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    let bottom = TOP + plot_height;
    let right = LEFT + plot_width;
    let _ = writeln!(
        out,
        r#"<path d="M{LEFT},{TOP} V{bottom} H{right} V{TOP}" fill="none" stroke="black" stroke-width="1"/>"#
    );
    for tick in 0..=5 {
        let fraction = f64::from(tick) / 5.0;
        let at = TOP + plot_height - fraction * plot_height;
        let _ = writeln!(out, r##"<line x1="{LEFT}" y1="{at}" x2="{right}" y2="{at}" stroke="#ddd"/>"##);
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end" fill="{THROUGHPUT}">{}</text>"#,
            LEFT - 6.0,
            at + 4.0,
            label(rate_top * fraction)
        );
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" fill="{LATENCY}">{}</text>"#,
            right + 6.0,
            at + 4.0,
            label(p99_top * fraction)
        );
    }
    let step = nice_ceiling(seconds / 10.0).max(1.0);
    let mut second = 0.0;
    while second <= seconds {
        let at = LEFT + second / seconds * plot_width;
        let _ = writeln!(out, r#"<line x1="{at}" y1="{bottom}" x2="{at}" y2="{}" stroke="black"/>"#, bottom + 5.0);
        let _ = writeln!(out, r#"<text x="{at}" y="{}" text-anchor="middle">{second}</text>"#, bottom + 18.0);
        second += step;
    }
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">seconds</text>"#,
        LEFT + plot_width / 2.0,
        HEIGHT - 16.0
    );
    let middle = TOP + plot_height / 2.0;
    let _ = writeln!(
        out,
        r#"<text x="18" y="{middle}" text-anchor="middle" fill="{THROUGHPUT}" transform="rotate(-90 18 {middle})">{} per second</text>"#,
        escape(what)
    );
    let _ = writeln!(
        out,
        r#"<text x="{0}" y="{middle}" text-anchor="middle" fill="{LATENCY}" transform="rotate(90 {0} {middle})">p99 latency in that second, ms</text>"#,
        WIDTH - 18.0
    );
    let line = |values: &mut dyn Iterator<Item = f64>, top: f64| -> String {
        values
            .enumerate()
            .map(|(second, value)| format!("{:.1},{:.1}", x(second as f64), y(value, top)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let rates = line(&mut buckets.iter().map(|b| b.completed as f64), rate_top);
    let p99s = line(&mut buckets.iter().map(|b| b.p99_ms), p99_top);
    let _ = writeln!(out, r#"<polyline points="{rates}" fill="none" stroke="{THROUGHPUT}" stroke-width="2"/>"#);
    let _ = writeln!(out, r#"<polyline points="{p99s}" fill="none" stroke="{LATENCY}" stroke-width="2"/>"#);
    out.push_str("</svg>\n");
    out
}

/// The smallest 1, 2 or 5 times a power of ten at or above `value`, so the axes read well.
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let power = 10_f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * power).find(|&nice| nice >= value).unwrap_or(10.0 * power)
}

fn label(value: f64) -> String {
    if value >= 10.0 || value == 0.0 { format!("{value:.0}") } else { format!("{value:.1}") }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

//! The charts, as SVG drawn on the server: scales, axes with units, stacked bars and lines.
//! Colours come from the stylesheet's classes (`o-<outcome>`, …), never from here.

use std::{fmt, time::Duration};

use maud::{html, Markup};

use super::view::{self, Bucket, Window, OUTCOMES};

/// A coordinate, written with one decimal.
struct Px(f64);

impl fmt::Display for Px {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1}", self.0)
    }
}

impl maud::Render for Px {
    fn render_to(&self, buffer: &mut String) {
        use fmt::Write as _;
        let _ = write!(buffer, "{self}");
    }
}

/// An axis from 0 to `max`, with a tick every `step`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Axis {
    pub(crate) max: f64,
    pub(crate) step: f64,
}

impl Axis {
    /// An axis that holds `max` with about `ticks` steps of 1, 2 or 5 × 10ⁿ (whole steps when
    /// `whole`: counts).
    pub(crate) fn nice(max: f64, ticks: u32, whole: bool) -> Self {
        if !(max.is_finite() && max > 0.0) {
            return Self {
                max: 1.0,
                step: if whole { 1.0 } else { 0.5 },
            };
        }
        let raw = max / f64::from(ticks.max(1));
        let magnitude = 10f64.powf(raw.log10().floor());
        // A hair over, so that float noise (0.2 / 0.1 = 2.0000000000000004) stays on its step.
        let norm = raw / magnitude - 1e-9;
        let mut step = magnitude
            * if norm <= 1.0 {
                1.0
            } else if norm <= 2.0 {
                2.0
            } else if norm <= 5.0 {
                5.0
            } else {
                10.0
            };
        if whole {
            step = step.max(1.0).round();
        }
        Self {
            max: (max / step - 1e-9).ceil() * step,
            step,
        }
    }

    /// The tick values, 0 to `max`.
    pub(crate) fn ticks(&self) -> impl Iterator<Item = f64> + '_ {
        let n = (self.max / self.step).round() as u32;
        (0..=n).map(move |i| f64::from(i) * self.step)
    }
}

// The big charts' frame, in viewBox units.
const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 250.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 42.0;
const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
const PLOT_H: f64 = HEIGHT - TOP - BOTTOM;

/// The y of `value` on `axis`.
fn y(value: f64, axis: &Axis) -> f64 {
    TOP + PLOT_H - (value / axis.max).clamp(0.0, 1.0) * PLOT_H
}

/// Bar `i`'s left edge and width, of `n`.
fn bar(i: usize, n: usize) -> (f64, f64) {
    let width = PLOT_W / n.max(1) as f64;
    (LEFT + width * i as f64, width)
}

/// What a time chart's frame shows.
struct Chart<'a> {
    id: &'a str,
    title: &'a str,
    axis: Axis,
    /// Writes a y tick's value.
    label: fn(f64) -> String,
    y_title: &'a str,
}

/// Axes, grid, tick labels and axis titles around `plot`.
fn frame(chart: &Chart<'_>, buckets: &[Bucket], window: Window, plot: Markup) -> Markup {
    let Chart {
        id,
        title,
        axis,
        label,
        y_title,
    } = chart;
    let every = window.label_every().as_secs();
    let n = buckets.len();
    let x_ticks = buckets.iter().enumerate().filter_map(|(i, b)| {
        let secs = b
            .minute
            .start
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs();
        (secs % every == 0).then(|| (bar(i, n).0, view::axis_time(b.minute.start)))
    });
    html! {
        svg id=(id) class="chart" viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img"
            aria-label=(title) {
            title { (title) }
            g class="grid" {
                @for v in axis.ticks() {
                    line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(Px(y(v, axis))) y2=(Px(y(v, axis))) {}
                    text class="tick" x=(LEFT - 6.0) y=(Px(y(v, axis) + 4.0)) text-anchor="end" {
                        (label(v))
                    }
                }
            }
            (plot)
            g class="axis" {
                line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(TOP + PLOT_H) y2=(TOP + PLOT_H) {}
                line x1=(LEFT) x2=(LEFT) y1=(TOP) y2=(TOP + PLOT_H) {}
                @for (x, text) in x_ticks {
                    line x1=(Px(x)) x2=(Px(x)) y1=(TOP + PLOT_H) y2=(TOP + PLOT_H + 4.0) {}
                    text class="tick" x=(Px(x)) y=(TOP + PLOT_H + 16.0) text-anchor="middle" {
                        (text)
                    }
                }
                text class="axis-title" x=(Px(LEFT + PLOT_W / 2.0)) y=(HEIGHT - 4.0)
                    text-anchor="middle" { "time (UTC)" }
                text class="axis-title" transform={ "translate(14 " (Px(TOP + PLOT_H / 2.0)) ") rotate(-90)" }
                    text-anchor="middle" { (y_title) }
            }
        }
    }
}

/// `svg#chart-deliveries`: deliveries per bucket, stacked by outcome.
pub(crate) fn deliveries(buckets: &[Bucket], window: Window) -> Markup {
    let peak = buckets
        .iter()
        .map(|b| b.minute.deliveries())
        .max()
        .unwrap_or(0);
    let axis = Axis::nice(peak as f64, 4, true);
    let n = buckets.len();
    let gap = if PLOT_W / n.max(1) as f64 > 4.0 {
        1.0
    } else {
        0.0
    };
    let bucket = window.bucket();
    let plot = html! {
        g class="bars" {
            @for (i, b) in buckets.iter().enumerate() {
                @if b.minute.deliveries() > 0 {
                    @let (x, w) = bar(i, n);
                    g {
                        title { (bucket_title(b, bucket)) }
                        @for (name, top, bottom) in stack(b, &axis) {
                            rect class={ "o-" (name) } x=(Px(x + gap / 2.0)) y=(Px(top))
                                width=(Px(w - gap)) height=(Px(bottom - top)) {}
                        }
                    }
                }
            }
        }
    };
    let y_title = format!("deliveries / {}", view::span(bucket));
    let chart = Chart {
        id: "chart-deliveries",
        title: "Deliveries per time bucket, by outcome",
        axis,
        label: |v| format!("{v}"),
        y_title: &y_title,
    };
    frame(&chart, buckets, window, plot)
}

/// A bucket's outcomes stacked from the axis up: `(outcome, top y, bottom y)`.
fn stack<'a>(b: &'a Bucket, axis: &'a Axis) -> impl Iterator<Item = (&'static str, f64, f64)> + 'a {
    let mut below = 0u64;
    b.minute
        .outcomes
        .named()
        .into_iter()
        .filter(|&(_, c)| c > 0)
        .map(move |(name, count)| {
            let bottom = y(below as f64, axis);
            below += u64::from(count);
            (name, y(below as f64, axis), bottom)
        })
}

/// A bucket's tooltip: its time span and counts.
fn bucket_title(b: &Bucket, width: Duration) -> String {
    use fmt::Write as _;
    let n = b.minute.deliveries();
    let mut s = format!(
        "{}–{} UTC: {n} {}",
        view::axis_time(b.minute.start),
        view::axis_time(b.minute.start + width),
        if n == 1 { "delivery" } else { "deliveries" }
    );
    for (name, count) in b.minute.outcomes.named() {
        if count > 0 {
            let _ = write!(s, ", {count} {name}");
        }
    }
    s
}

/// The unit a latency axis is drawn in, for its largest value.
fn latency_unit(max: Duration) -> (&'static str, f64) {
    if max >= Duration::from_secs(1) {
        ("s", 1e6)
    } else if max >= Duration::from_millis(1) {
        ("ms", 1e3)
    } else {
        ("µs", 1.0)
    }
}

/// `svg#chart-latency`: p50 and p95 per bucket as lines, the budget as a dashed line.
pub(crate) fn latency(buckets: &[Bucket], window: Window, budget: Option<Duration>) -> Markup {
    let peak = buckets
        .iter()
        .filter_map(|b| b.p95)
        .chain(budget)
        .max()
        .unwrap_or_default();
    let (unit, per_unit) = latency_unit(peak);
    let value = |d: Duration| d.as_micros() as f64 / per_unit;
    let axis = Axis::nice(value(peak), 4, false);
    let n = buckets.len();
    let point = |i: usize, d: Duration| {
        let (x, w) = bar(i, n);
        (x + w / 2.0, y(value(d), &axis))
    };
    let lines = [
        ("p95", buckets.iter().map(|b| b.p95).collect::<Vec<_>>()),
        ("p50", buckets.iter().map(|b| b.p50).collect::<Vec<_>>()),
    ];
    let plot = html! {
        @if let Some(budget) = budget {
            @let at = y(value(budget), &axis);
            g class="budget" {
                line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(Px(at)) y2=(Px(at)) {}
                text x=(LEFT + 6.0) y=(Px(at - 5.0)) {
                    "budget " (view::latency(budget))
                }
            }
        }
        @for (name, values) in &lines {
            path class={ "line line-" (name) } d=(path(values.iter().enumerate().map(|(i, v)| v.map(|d| point(i, d))))) {}
            g class={ "dots dots-" (name) } {
                @for (i, v) in values.iter().enumerate() {
                    @if let Some(d) = v {
                        @let (cx, cy) = point(i, *d);
                        circle cx=(Px(cx)) cy=(Px(cy)) r="2" {
                            title {
                                (view::axis_time(buckets[i].minute.start)) " UTC: " (name) " "
                                (view::latency(*d))
                            }
                        }
                    }
                }
            }
        }
    };
    let y_title = format!("latency ({unit})");
    let chart = Chart {
        id: "chart-latency",
        title: "Latency per time bucket: p50 and p95",
        axis,
        label: view::significant,
        y_title: &y_title,
    };
    frame(&chart, buckets, window, plot)
}

/// An SVG path through `points`, broken where a point is missing.
fn path(points: impl Iterator<Item = Option<(f64, f64)>>) -> String {
    use fmt::Write as _;
    let mut d = String::new();
    let mut pen_down = false;
    for p in points {
        match p {
            Some((x, y)) => {
                let _ = write!(d, "{}{:.1} {:.1}", if pen_down { "L" } else { "M" }, x, y);
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    d
}

/// `svg.spark`: the last 24 hours by hour, answered well (below) and not (above).
pub(crate) fn spark(hours: &[Bucket]) -> Markup {
    const W: f64 = 120.0;
    const H: f64 = 28.0;
    let peak = hours
        .iter()
        .map(|b| b.minute.deliveries())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let width = W / hours.len().max(1) as f64;
    let total: u64 = hours.iter().map(|b| b.minute.deliveries()).sum();
    let not_ok: u64 = hours.iter().map(Bucket::not_ok).sum();
    let title = format!(
        "last 24 h by hour: {total} {}, {not_ok} not ok (late, failed, rejected, panicked, \
         cancelled); busiest hour {peak}",
        if total == 1 { "delivery" } else { "deliveries" }
    );
    html! {
        svg class="spark" viewBox={ "0 0 " (W) " " (H) } role="img" aria-label=(title) {
            title { (title) }
            line class="base" x1="0" x2=(W) y1=(H - 0.5) y2=(H - 0.5) {}
            @for (i, b) in hours.iter().enumerate() {
                @let x = width * i as f64 + 0.5;
                @let ok = b.ok() as f64 / peak * H;
                @let bad = b.not_ok() as f64 / peak * H;
                @if ok > 0.0 {
                    rect class="s-ok" x=(Px(x)) y=(Px(H - ok)) width=(Px(width - 1.0)) height=(Px(ok)) {}
                }
                @if bad > 0.0 {
                    rect class="s-bad" x=(Px(x)) y=(Px(H - ok - bad)) width=(Px(width - 1.0)) height=(Px(bad)) {}
                }
            }
        }
    }
}

/// `svg#timings`: the body read, the handler and the rest of one delivery, with the budget.
pub(crate) fn timings(
    body_read: Duration,
    handler: Duration,
    total: Duration,
    budget: Option<Duration>,
) -> Markup {
    const W: f64 = 960.0;
    const H: f64 = 78.0;
    const L: f64 = 16.0;
    const R: f64 = 24.0;
    const BAR_Y: f64 = 22.0;
    const BAR_H: f64 = 22.0;
    let rest = total.saturating_sub(body_read).saturating_sub(handler);
    let peak = total.max(budget.unwrap_or_default());
    let (unit, per_unit) = latency_unit(peak);
    let value = |d: Duration| d.as_micros() as f64 / per_unit;
    let axis = Axis::nice(value(peak), 5, false);
    let x = |v: f64| L + (v / axis.max).clamp(0.0, 1.0) * (W - L - R);
    let mut at = 0.0;
    let segments = [
        ("t-read", "body read", body_read),
        ("t-handler", "handler", handler),
        ("t-rest", "rest", rest),
    ]
    .map(|(class, name, d)| {
        let start = at;
        at += value(d);
        (class, name, d, x(start), x(at))
    });
    html! {
        svg id="timings" class="chart" viewBox={ "0 0 " (W) " " (H) } role="img"
            aria-label="Timings: body read, handler, rest" {
            title { "Timings: body read, handler, rest, against the budget" }
            @for (class, name, d, from, to) in segments {
                @if d > Duration::ZERO {
                    rect class=(class) x=(Px(from)) y=(BAR_Y) width=(Px((to - from).max(1.0)))
                        height=(BAR_H) {
                        title { (name) ": " (view::latency(d)) }
                    }
                }
            }
            g class="axis" {
                line x1=(L) x2=(W - R) y1=(BAR_Y + BAR_H + 4.0) y2=(BAR_Y + BAR_H + 4.0) {}
                @for v in axis.ticks() {
                    line x1=(Px(x(v))) x2=(Px(x(v))) y1=(BAR_Y + BAR_H + 4.0) y2=(BAR_Y + BAR_H + 8.0) {}
                    text class="tick" x=(Px(x(v))) y=(H - 8.0) text-anchor="middle" {
                        (view::significant(v)) " " (unit)
                    }
                }
            }
            @if let Some(budget) = budget {
                @let bx = x(value(budget));
                g class="budget" {
                    line x1=(Px(bx)) x2=(Px(bx)) y1="4" y2=(BAR_Y + BAR_H + 4.0) {}
                    text x=(Px(bx - 4.0)) y="14" text-anchor="end" { "budget " (view::latency(budget)) }
                }
            }
        }
    }
}

/// The legend of the deliveries chart: every outcome's colour.
pub(crate) fn outcome_legend() -> Markup {
    html! {
        ul class="legend" {
            @for name in OUTCOMES {
                li { span class={ "swatch o-" (name) } {} (name) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::history::Minute;

    #[test]
    fn nice_axes() {
        assert_eq!(
            Axis::nice(7.0, 4, true),
            Axis {
                max: 8.0,
                step: 2.0
            }
        );
        assert_eq!(
            Axis::nice(95.0, 4, true),
            Axis {
                max: 100.0,
                step: 50.0
            }
        );
        assert_eq!(
            Axis::nice(100.0, 4, true),
            Axis {
                max: 100.0,
                step: 50.0
            }
        );
        assert_eq!(
            Axis::nice(101.0, 4, true),
            Axis {
                max: 150.0,
                step: 50.0
            }
        );
        assert_eq!(
            Axis::nice(3.0, 4, true),
            Axis {
                max: 3.0,
                step: 1.0
            }
        );
        assert_eq!(
            Axis::nice(0.0, 4, true),
            Axis {
                max: 1.0,
                step: 1.0
            }
        );
        assert_eq!(
            Axis::nice(0.3, 4, true),
            Axis {
                max: 1.0,
                step: 1.0
            }
        );
        assert_eq!(
            Axis::nice(10.0, 4, false),
            Axis {
                max: 10.0,
                step: 5.0
            }
        );
        assert_eq!(
            Axis::nice(0.8, 4, false),
            Axis {
                max: 0.8,
                step: 0.2
            }
        );
        assert_eq!(
            Axis::nice(f64::NAN, 4, false),
            Axis {
                max: 1.0,
                step: 0.5
            }
        );
        let ticks: Vec<f64> = Axis::nice(7.0, 4, true).ticks().collect();
        assert_eq!(ticks, [0.0, 2.0, 4.0, 6.0, 8.0]);
    }

    #[test]
    fn scales() {
        let axis = Axis {
            max: 8.0,
            step: 2.0,
        };
        assert_eq!(y(0.0, &axis), TOP + PLOT_H);
        assert_eq!(y(8.0, &axis), TOP);
        assert_eq!(y(4.0, &axis), TOP + PLOT_H / 2.0);
        assert_eq!(y(80.0, &axis), TOP, "clamped");
        assert_eq!(bar(0, 60), (LEFT, PLOT_W / 60.0));
        let (x, w) = bar(59, 60);
        assert!(
            (x + w - (WIDTH - RIGHT)).abs() < 1e-9,
            "the last bar ends at the right edge"
        );
        assert_eq!(latency_unit(Duration::from_millis(999)), ("ms", 1e3));
        assert_eq!(latency_unit(Duration::from_secs(10)), ("s", 1e6));
        assert_eq!(latency_unit(Duration::from_micros(20)), ("µs", 1.0));
    }

    #[test]
    fn paths_break_at_gaps() {
        let d = path([Some((1.0, 2.0)), Some((3.0, 4.0)), None, Some((5.0, 6.0))].into_iter());
        assert_eq!(d, "M1.0 2.0L3.0 4.0M5.0 6.0");
    }

    #[test]
    fn time_axis_labels_fall_on_the_hour() {
        // 6 h of 5-minute buckets from 13:00: labels every hour, 13:00 to 18:00.
        let start = UNIX_EPOCH + Duration::from_secs(1_795_870_800); // 2026-11-28T13:00:00Z
        let buckets: Vec<Bucket> = (0..72u32)
            .map(|i| {
                let b = Minute::new(start + Duration::from_secs(300) * i);
                let mut buckets = view::bucketize(
                    std::slice::from_ref(&b),
                    b.start,
                    Duration::from_secs(300),
                    1,
                );
                buckets.remove(0)
            })
            .collect();
        let svg = deliveries(&buckets, Window::H6).into_string();
        let labels: Vec<&str> = ["13:00", "14:00", "15:00", "16:00", "17:00", "18:00"].into();
        for l in &labels {
            assert!(svg.contains(&format!(">{l}</text>")), "{l}");
        }
        assert!(!svg.contains(">13:05</text>"));
        assert!(svg.contains("deliveries / 5 min"));
    }
}

//! The latency watchers: p95 near the provider's timeout, and p95 degraded against a baseline.

use std::{collections::VecDeque, fmt, time::Duration};

use sketches_ddsketch::{Config, DDSketch};

use super::{engine::Reading, Watch};
use crate::FieldValue;

const DAY: Duration = Duration::from_secs(86_400);

/// Latency sketches: 1 % relative accuracy, in microseconds.
fn sketch() -> DDSketch {
    DDSketch::new(Config::new(0.01, 2048, 1.0))
}

/// The percentiles of one closed window, in microseconds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Percentiles {
    p50: f64,
    pub(super) p95: f64,
    p99: f64,
    samples: u64,
}

impl Percentiles {
    fn of(sketch: &DDSketch) -> Option<Self> {
        let q = |q| sketch.quantile(q).ok().flatten();
        Some(Self {
            p50: q(0.5)?,
            p95: q(0.95)?,
            p99: q(0.99)?,
            samples: sketch.count() as u64,
        })
    }

    /// The percentiles of a history's latency histogram (the fleet's, merged from its
    /// instances' minutes), if it counted anything.
    #[cfg(feature = "redis")]
    pub(super) fn of_histogram(histogram: &crate::history::LatencyHistogram) -> Option<Self> {
        let q = |q| histogram.quantile(q).map(|d| d.as_secs_f64() * 1e6);
        Some(Self {
            p50: q(0.5)?,
            p95: q(0.95)?,
            p99: q(0.99)?,
            samples: histogram.count(),
        })
    }

    fn figures(self) -> [(&'static str, FieldValue); 4] {
        [
            ("p50_ms", ms(self.p50)),
            ("p95_ms", ms(self.p95)),
            ("p99_ms", ms(self.p99)),
            ("samples", self.samples.into()),
        ]
    }
}

/// Microseconds to milliseconds, to 0.1 ms.
fn ms(micros: f64) -> FieldValue {
    ((micros / 100.0).round() / 10.0).into()
}

/// One route's latency: the current window and day, the last closed window's percentiles and
/// the daily p95s the baseline is taken from.
pub(super) struct Latency {
    window: DDSketch,
    window_index: u64,
    /// When the window or the day closes next, since the watchers started.
    next_roll: Duration,
    day: DDSketch,
    day_index: u64,
    /// The last closed window with enough samples.
    last: Option<Percentiles>,
    /// Daily p95s (days with enough samples), the newest at the back.
    days: VecDeque<f64>,
}

impl Latency {
    pub(super) fn new(elapsed: Duration, w: &Watch) -> Self {
        let mut latency = Self {
            window: sketch(),
            window_index: window_index(elapsed, w),
            next_roll: Duration::ZERO,
            day: sketch(),
            day_index: elapsed.as_secs() / DAY.as_secs(),
            last: None,
            days: VecDeque::new(),
        };
        latency.set_next_roll(w);
        latency
    }

    fn set_next_roll(&mut self, w: &Watch) {
        let window_end = w
            .latency_window
            .saturating_mul(self.window_index as u32 + 1);
        let day_end = DAY.saturating_mul(self.day_index as u32 + 1);
        self.next_roll = window_end.min(day_end);
    }

    /// Records one delivery's latency, in the window (merged into its day when it closes).
    pub(super) fn record(&mut self, latency: Duration) {
        self.window.add(latency.as_secs_f64() * 1e6);
    }

    /// Closes the window and the day if `elapsed` (since the watchers started) is past them. A
    /// window counts in the day it closes in.
    pub(super) fn roll(&mut self, elapsed: Duration, w: &Watch) {
        if elapsed < self.next_roll {
            return;
        }
        let index = window_index(elapsed, w);
        if index != self.window_index {
            self.window_index = index;
            let closed = std::mem::replace(&mut self.window, sketch());
            // Same configuration: merging cannot fail.
            let _ = self.day.merge(&closed);
            if closed.count() as u64 >= w.latency_min_samples {
                self.last = Percentiles::of(&closed).or(self.last);
            }
        }
        let day = elapsed.as_secs() / DAY.as_secs();
        if day != self.day_index {
            self.day_index = day;
            let closed = std::mem::replace(&mut self.day, sketch());
            if closed.count() as u64 >= w.latency_min_samples {
                if let Some(p) = Percentiles::of(&closed) {
                    if self.days.len() >= w.baseline_days {
                        self.days.pop_front();
                    }
                    self.days.push_back(p.p95);
                }
            }
        }
        self.set_next_roll(w);
    }

    /// The last window's p95 against a share of the timeout budget.
    pub(super) fn near_timeout(&self, w: &Watch, budget: Option<Duration>) -> Option<Reading> {
        near_timeout(self.last?, w, budget?)
    }

    /// The last window's p95 against a multiple of the baseline: the lowest daily p95 kept.
    pub(super) fn degraded(&self, w: &Watch) -> Option<Reading> {
        degraded(self.last?, self.days.iter().copied(), w)
    }
}

/// `p`'s p95 against a share of the timeout `budget`.
pub(super) fn near_timeout(p: Percentiles, w: &Watch, budget: Duration) -> Option<Reading> {
    let budget = budget.as_secs_f64() * 1e6;
    let [p50, p95, p99, samples] = p.figures();
    let figures = [p50, p95, p99, samples, ("budget_ms", ms(budget))];
    Some(Reading::new(p.p95 > w.near_timeout * budget, figures))
}

/// `p`'s p95 against a multiple of the baseline: the lowest of the daily p95s `days`.
pub(super) fn degraded(
    p: Percentiles,
    days: impl Iterator<Item = f64>,
    w: &Watch,
) -> Option<Reading> {
    let baseline = days.reduce(f64::min)?;
    let [p50, p95, p99, samples] = p.figures();
    let figures = [p50, p95, p99, samples, ("baseline_p95_ms", ms(baseline))];
    Some(Reading::new(p.p95 > w.degradation * baseline, figures))
}

impl fmt::Debug for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Latency")
            .field("window_samples", &self.window.count())
            .field("last", &self.last)
            .field("days", &self.days)
            .finish_non_exhaustive()
    }
}

fn window_index(elapsed: Duration, w: &Watch) -> u64 {
    (elapsed.as_nanos() / w.latency_window.as_nanos()) as u64
}

//! The memory watch: the process's resident memory, sampled once a minute by the reporter's
//! worker, raises [`MemoryGrowth`](AlertKind::MemoryGrowth) when it keeps growing.

use std::{
    collections::VecDeque,
    sync::Arc,
    time::{Duration, SystemTime},
};

use tokio::time::Instant;

use super::{
    engine::{Reading, Slot},
    whole_minutes, AlertKind, COOLDOWN, PROCESS_ROUTE,
};
use crate::report::Report;

/// The memory watch's thresholds: when the process's resident memory (RSS) has grown for long
/// enough to raise [`MemoryGrowth`](AlertKind::MemoryGrowth), the symptom of a leak. Set it
/// with [`ReporterBuilder::memory_watch`](crate::report::ReporterBuilder::memory_watch): the
/// process is the reporter's scope, not a route's.
///
/// The reporter's worker samples the resident memory once a minute and keeps the samples of
/// the last [`window`](Self::window). The baseline is the lowest sample in the window, and the
/// line is the baseline plus the larger of `min_bytes` and `min_ratio` × baseline
/// ([`growth`](Self::growth)). The alert opens when each of the last
/// [`sustained`](Self::sustained) samples is on or above the line (growth that held, not a
/// burst), and resolves when the latest sample is under it: the memory was freed, or the
/// window slid past the growth and a plateau became the baseline. Like every alert, it has a
/// 5-minute cooldown after it resolves.
///
/// The resident memory is read with the [memory-stats](https://docs.rs/memory-stats) crate:
/// `/proc/self/statm` on Linux, `task_info` on macOS (and on Windows and FreeBSD). Where the
/// platform tells nothing, there is no sample and the alert never opens.
///
/// The watch runs wherever the reporter runs watchers, and is on by default.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use webhook_monitor::{report::Reporter, watch::MemoryWatch};
///
/// // A service whose memory should stay flat: 32 MiB more for 5 minutes within an hour is
/// // worth a look.
/// let memory = MemoryWatch::default()
///     .window(Duration::from_secs(3600))
///     .growth(32 << 20, 0.1)
///     .sustained(5);
/// assert!(memory.is_enabled());
/// let builder = Reporter::builder().memory_watch(memory);
/// # let _ = builder;
/// assert!(!MemoryWatch::off().is_enabled());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryWatch {
    enabled: bool,
    window_minutes: usize,
    min_bytes: u64,
    min_ratio: f64,
    sustained: usize,
}

impl Default for MemoryWatch {
    fn default() -> Self {
        Self {
            enabled: true,
            window_minutes: 30,
            min_bytes: 64 << 20,
            min_ratio: 0.25,
            sustained: 3,
        }
    }
}

/// The shortest window, in minutes.
const MIN_WINDOW_MINUTES: usize = 3;
/// The longest window, in minutes: 24 hours, 1,440 samples (11.25 KiB).
const MAX_WINDOW_MINUTES: usize = 24 * 60;

impl MemoryWatch {
    /// No memory watch: the resident memory is not sampled, and
    /// [`MemoryGrowth`](AlertKind::MemoryGrowth) never opens. Health reports still carry it
    /// ([`HealthReport::rss_bytes`](crate::report::HealthReport::rss_bytes)).
    pub fn off() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// Whether the memory watch is on.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// How far back the samples go: the baseline is the lowest of them. Defaults to 30
    /// minutes. Rounded up to whole minutes (one sample each), at least 3 and at most 24 hours
    /// (1,440 samples, 11.25 KiB).
    #[must_use]
    pub fn window(mut self, window: Duration) -> Self {
        self.window_minutes = whole_minutes(window, MIN_WINDOW_MINUTES, MAX_WINDOW_MINUTES);
        self
    }

    /// How much the memory must grow above the baseline: at least `min_bytes`, and at least
    /// `min_ratio` times the baseline (0.25: a quarter more). Defaults to 64 MiB and 0.25.
    /// `min_bytes` below 1 is raised to 1; a negative or NaN `min_ratio` counts as 0.
    #[must_use]
    pub fn growth(mut self, min_bytes: u64, min_ratio: f64) -> Self {
        self.min_bytes = min_bytes.max(1);
        self.min_ratio = min_ratio.max(0.0);
        self
    }

    /// How many samples in a row (one a minute) must be on or above the line for the alert to
    /// open. Defaults to 3. Values below 1 are raised to 1; values of the window's minutes or
    /// more count as one less than the window's minutes, so that the baseline comes before
    /// them.
    #[must_use]
    pub fn sustained(mut self, samples: usize) -> Self {
        self.sustained = samples.max(1);
        self
    }
}

/// The process's resident memory (RSS) in bytes, or `None` where the platform does not tell.
pub(crate) fn resident_bytes() -> Option<u64> {
    memory_stats::memory_stats().and_then(|m| u64::try_from(m.physical_mem).ok())
}

/// The memory watch's state in the reporter's worker.
#[derive(Debug)]
pub(super) struct Memory {
    watch: MemoryWatch,
    /// The last `window_minutes` samples, oldest first.
    samples: VecDeque<u64>,
    slot: Slot,
    route: Arc<str>,
}

impl Memory {
    /// The state for `watch`; `None` when it is off.
    pub(super) fn new(watch: MemoryWatch) -> Option<Self> {
        watch.enabled.then(|| Self {
            samples: VecDeque::with_capacity(watch.window_minutes),
            watch,
            slot: Slot::default(),
            route: Arc::from(PROCESS_ROUTE),
        })
    }

    /// Takes the minute's sample, `None` when the read failed (no sample, the state is held),
    /// and returns the alert to send if it opens or resolves.
    pub(super) fn sample(
        &mut self,
        rss: Option<u64>,
        now: Instant,
        wall: SystemTime,
    ) -> Option<Report> {
        let rss = rss?;
        if self.samples.len() == self.watch.window_minutes {
            self.samples.pop_front();
        }
        self.samples.push_back(rss);
        let reading = self.read()?;
        let kind = AlertKind::MemoryGrowth;
        self.slot
            .update(kind, &self.route, reading, now, wall, COOLDOWN)
    }

    /// The rule, on the samples kept; `None` until there are more samples than the sustained
    /// ones, so that the baseline comes before them.
    fn read(&self) -> Option<Reading> {
        let w = &self.watch;
        let sustained = w.sustained.min(w.window_minutes - 1);
        if self.samples.len() <= sustained {
            return None;
        }
        let baseline = self.samples.iter().copied().min()?;
        let latest = *self.samples.back()?;
        // A float to integer `as` saturates: a ratio too large to fit is as good as infinite.
        let threshold = w.min_bytes.max((w.min_ratio * baseline as f64) as u64);
        let line = baseline.saturating_add(threshold);
        let active = if self.slot.is_open() {
            latest >= line
        } else {
            self.samples
                .iter()
                .rev()
                .take(sustained)
                .all(|&s| s >= line)
        };
        Some(Reading::new(
            active,
            [
                ("rss_bytes", latest.into()),
                ("baseline_bytes", baseline.into()),
                ("growth_bytes", (latest - baseline).into()),
                ("window_minutes", (w.window_minutes as u64).into()),
            ],
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{watch::AlertState, FieldValue};

    const MIB: u64 = 1 << 20;

    /// Feeds one sample a minute, in MiB (`None`: a failed read), from a fixed start; returns
    /// the alerts as (minute, state, figures in MiB).
    fn run(watch: MemoryWatch, samples: &[Option<u64>]) -> Vec<(usize, AlertState, [u64; 3], u64)> {
        let mut memory = Memory::new(watch).expect("on");
        let start = Instant::now();
        let wall = SystemTime::UNIX_EPOCH;
        let mut alerts = Vec::new();
        for (i, rss) in samples.iter().enumerate() {
            let minute = Duration::from_secs(60 * i as u64);
            let Some(Report::Alert(a)) =
                memory.sample(rss.map(|mib| mib * MIB), start + minute, wall + minute)
            else {
                continue;
            };
            assert_eq!(a.kind, AlertKind::MemoryGrowth);
            assert_eq!(&*a.route, PROCESS_ROUTE);
            assert_eq!(a.severity, crate::watch::Severity::Warning);
            let figure = |name| match a.figure(name) {
                Some(FieldValue::U64(v)) => *v,
                other => panic!("{name}: {other:?}"),
            };
            let mib = |name| figure(name) / MIB;
            alerts.push((
                i,
                a.state,
                [mib("rss_bytes"), mib("baseline_bytes"), mib("growth_bytes")],
                figure("window_minutes"),
            ));
        }
        alerts
    }

    fn mib(samples: &[u64]) -> Vec<Option<u64>> {
        samples.iter().copied().map(Some).collect()
    }

    /// Window 5 minutes, 96 MiB of growth, 3 samples in a row.
    fn five_minutes() -> MemoryWatch {
        MemoryWatch::default()
            .window(Duration::from_secs(300))
            .growth(96 * MIB, 0.0)
            .sustained(3)
    }

    #[test]
    fn growth_that_holds_opens_and_freeing_it_resolves() {
        // 100 MiB, then 64 MiB more every minute, held, then freed.
        let samples = mib(&[100, 164, 228, 292, 356, 356, 100]);
        assert_eq!(
            run(five_minutes(), &samples),
            [
                // Minute 4: 228, 292 and 356 are all at least 100 + 96; 164 is not, so minute 3
                // (164, 228, 292) did not open it.
                (4, AlertState::Opened, [356, 100, 256], 5),
                // Minute 6: back to 100, under the line (the baseline is now 100 again).
                (6, AlertState::Resolved, [100, 100, 0], 5),
            ]
        );
    }

    #[test]
    fn a_burst_that_is_freed_opens_nothing() {
        let samples = mib(&[100, 100, 356, 356, 100, 100, 100, 100, 100]);
        assert_eq!(run(five_minutes(), &samples), []);
        // One sample short of the sustained three, whatever its size.
        let samples = mib(&[100, 100, 10_000, 10_000, 100]);
        assert_eq!(run(five_minutes(), &samples), []);
    }

    #[test]
    fn the_window_sliding_past_a_plateau_resolves_it() {
        // Grows once and stays: the old baseline leaves the 5-minute window at minute 5.
        let samples = mib(&[100, 300, 300, 300, 300, 300, 300]);
        assert_eq!(
            run(five_minutes(), &samples),
            [
                (3, AlertState::Opened, [300, 100, 200], 5),
                (5, AlertState::Resolved, [300, 300, 0], 5),
            ]
        );
    }

    #[test]
    fn the_threshold_is_the_larger_of_bytes_and_ratio() {
        let watch = five_minutes().growth(10 * MIB, 0.5);
        // Baseline 1000 MiB: the line is 1500 (the ratio wins).
        assert_eq!(run(watch.clone(), &mib(&[1000, 1400, 1400, 1400])), []);
        let opened = run(watch.clone(), &mib(&[1000, 1500, 1500, 1500]));
        assert_eq!(opened, [(3, AlertState::Opened, [1500, 1000, 500], 5)]);
        // Baseline 4 MiB: the line is 14 (the bytes win).
        assert_eq!(run(watch.clone(), &mib(&[4, 13, 13, 13])), []);
        let opened = run(watch, &mib(&[4, 14, 14, 14]));
        assert_eq!(opened, [(3, AlertState::Opened, [14, 4, 10], 5)]);
    }

    #[test]
    fn while_open_it_holds_until_the_latest_sample_falls_under_the_line() {
        // A dip under the line (196) before three in a row holds it closed; one dip after it
        // opened resolves it.
        let samples = mib(&[100, 200, 250, 150, 250, 250, 250, 190, 250]);
        assert_eq!(
            run(five_minutes().window(Duration::from_secs(600)), &samples),
            [
                (6, AlertState::Opened, [250, 100, 150], 10),
                (7, AlertState::Resolved, [190, 100, 90], 10),
            ]
        );
    }

    #[test]
    fn it_reopens_only_after_the_cooldown() {
        // Opens at 3, resolves at 4; grows again from 5 on: the cooldown (5 minutes after
        // minute 4) holds it closed until minute 9.
        let samples = mib(&[100, 300, 300, 300, 100, 300, 300, 300, 300, 300]);
        let states: Vec<_> = run(five_minutes().window(Duration::from_secs(600)), &samples)
            .into_iter()
            .map(|(minute, state, ..)| (minute, state))
            .collect();
        assert_eq!(
            states,
            [
                (3, AlertState::Opened),
                (4, AlertState::Resolved),
                (9, AlertState::Opened),
            ]
        );
    }

    #[test]
    fn a_failed_read_is_no_sample() {
        // The reads at minutes 1 and 3 failed: the samples are 100, 300, 300, 300.
        let samples = [Some(100), None, Some(300), None, Some(300), Some(300)];
        let opened = run(five_minutes(), &samples);
        assert_eq!(opened, [(5, AlertState::Opened, [300, 100, 200], 5)]);
        assert_eq!(run(five_minutes(), &[None; 10]), []);
    }

    #[test]
    fn settings_are_bounded() {
        let w = MemoryWatch::default();
        assert_eq!(
            (w.window_minutes, w.min_bytes, w.min_ratio, w.sustained),
            (30, 64 * MIB, 0.25, 3)
        );
        let minutes = |d| MemoryWatch::default().window(d).window_minutes;
        assert_eq!(minutes(Duration::ZERO), 3);
        assert_eq!(minutes(Duration::from_secs(241)), 5);
        assert_eq!(minutes(Duration::MAX), 1440);
        let w = MemoryWatch::default().growth(0, f64::NAN).sustained(0);
        assert_eq!((w.min_bytes, w.min_ratio, w.sustained), (1, 0.0, 1));
        assert_eq!(MemoryWatch::default().growth(1, -1.0).min_ratio, 0.0);
        // Sustained as long as the window: one less, so that the baseline comes first.
        let watch = five_minutes().window(Duration::ZERO).sustained(10);
        let opened = run(watch, &mib(&[100, 300, 300]));
        assert_eq!(opened, [(2, AlertState::Opened, [300, 100, 200], 3)]);
        assert!(Memory::new(MemoryWatch::off()).is_none());
    }

    #[test]
    fn the_resident_memory_is_read_here() {
        if cfg!(any(target_os = "linux", target_os = "macos")) {
            let rss = resident_bytes().expect("Linux and macOS tell");
            assert!(rss > MIB, "{rss}");
        }
    }
}

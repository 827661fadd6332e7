//! Watchers: alerts on what success and failure counts miss.
//!
//! The reporter's worker feeds every delivery report to the watchers of its route, off the
//! request path, and evaluates them after every batch and once a minute, so that silence is
//! caught with no traffic at all. Once a minute it also samples the process's resident memory
//! for the [memory watch](MemoryWatch), set on the reporter rather than per route. What they
//! detect is sent to the sinks as an [`Alert`]
//! ([`Report::Alert`](crate::report::Report::Alert)), once when it opens and once when it
//! resolves.
//!
//! | Alert | Opens when | Resolves when |
//! |---|---|---|
//! | [`Spike`](AlertKind::Spike) | the current or last full minute has more than 5× the mean of the 10 minutes before it, and more than 30 | a full minute is back under it |
//! | [`Drop`](AlertKind::Drop) | a full minute and the current one saw no delivery, while the 10 minutes before averaged more than 5 | a delivery arrives |
//! | [`Silence`](AlertKind::Silence) | no delivery for longer than the expected interval ([`Watch::expect_at_least`]), outside quiet hours | a delivery arrives |
//! | [`AllRejected`](AlertKind::AllRejected) | at least 5 deliveries in the last 5 minutes, every one rejected | a delivery gets through |
//! | [`RetryStorm`](AlertKind::RetryStorm) | at least 10 deliveries flagged `many_attempts` or `rapid_retries` in the last 10 minutes | fewer are |
//! | [`FailureRate`](AlertKind::FailureRate) | at least 50 % of at least 10 handled deliveries failed in the last 5 minutes | the share is under 50 % of at least 10 |
//! | [`ConsecutiveFailures`](AlertKind::ConsecutiveFailures) | 5 handled deliveries in a row failed | one succeeds |
//! | [`NearTimeout`](AlertKind::NearTimeout) | the last hour's p95 is above 80 % of the provider's timeout budget | an hour's p95 is under it |
//! | [`LatencyDegraded`](AlertKind::LatencyDegraded) | the last hour's p95 is above 2× the baseline: the lowest daily p95 of the last 28 days | an hour's p95 is under it |
//! | [`MemoryGrowth`](AlertKind::MemoryGrowth) (route [`PROCESS_ROUTE`]) | each of the last 3 minutes' samples of the process's resident memory is at least the baseline (the lowest sample of the last 30 minutes) plus max(64 MiB, 25 % of the baseline) | the latest sample is under that line: the memory was freed, or the window slid past a plateau |
//!
//! | [`InstanceSilent`](AlertKind::InstanceSilent) (fleet watchers only, [`Fleet`]) | a live instance received none of the route's deliveries in the last 5 minutes while the other live instances averaged at least 2 each per minute | it receives one, the others are no longer busy, or it is gone |
//! | [`InstanceFailureRate`](AlertKind::InstanceFailureRate) (fleet watchers only) | over the last 5 minutes, an instance's failure rate (of at least 10 handled) is at least 0.25 above the rest's and at least twice it | the gap closes |
//!
//! In a fleet ([`ReporterBuilder::fleet`](crate::report::ReporterBuilder::fleet), feature
//! `redis`), one instance evaluates the route watchers on the whole fleet's traffic and sends
//! their alerts ([`Fleet`] says how); each instance's own watchers open route alerts only while
//! its fleet view is stale.
//!
//! Where there is too little traffic to tell, an alert keeps its state: a failure rate does not
//! clear because deliveries stopped (silence and drops tell that story).
//!
//! "Handled" deliveries reached the handler: successes and failures (including late, panicked
//! and cancelled ones), but not rejections or duplicates. Latency is the time from receiving the
//! request until the response was ready; a latency window, or a day, with fewer than 20 samples
//! leaves the figures as they were. Every threshold is set per route with [`Watch`], but the
//! memory watch's, set on the reporter with
//! [`ReporterBuilder::memory_watch`](crate::report::ReporterBuilder::memory_watch); every alert
//! has a 5-minute cooldown after it resolves.
//!
//! # Clocks
//!
//! Windows run on the worker's `tokio::time::Instant`, so tests with a paused clock are exact.
//! Quiet hours are read off the reporter's wall clock
//! ([`ReporterBuilder::clock`](crate::report::ReporterBuilder::clock)), in a fixed UTC offset
//! or, with the `tz` feature, in an IANA time zone, daylight saving time included
//! ([`QuietHours`]).
//!
//! # Memory
//!
//! About 6.5 KiB per watched route, measured with 1000 routes whose latencies spread from 1 ms to
//! 5 s (`benches/worker.rs`). Most of it is the two latency sketches (the current window's and
//! the day's), which grow in 1 KiB steps with the spread of latencies, up to 4 KiB each for 1 ms
//! to 5 s; then 61 minute counters and 28 daily baselines. A route with its watchers off costs
//! under 200 bytes. The memory watch keeps one 8-byte sample per minute of its window, once per
//! reporter: 240 bytes at the default 30 minutes, 11.25 KiB at the longest window (24 hours).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use webhook_monitor::{watch::{QuietHours, Watch}, Policy};
//!
//! let policy = Policy::stripe("whsec_…")
//!     // Orders come in every few minutes on weekdays: silence for 30 minutes is an incident.
//!     .expect_at_least(1, Duration::from_secs(30 * 60))
//!     .quiet_hours(QuietHours::weekends().and_daily(22, 7).utc_offset_minutes(60))
//!     .watch(|w| w.failure_rate(0.2, 20, Duration::from_secs(10 * 60)).consecutive_failures(3));
//! # let _ = policy;
//! ```

mod alert;
mod engine;
#[cfg(feature = "redis")]
mod fleet;
mod latency;
mod memory;
mod traffic;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use alert::{Alert, AlertKind, AlertState, Severity};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use fleet::Fleet;
#[cfg(feature = "redis")]
pub(crate) use fleet::FleetWatch;
#[cfg(not(feature = "redis"))]
pub(crate) use no_fleet::FleetWatch;

/// Without the `redis` feature there is no fleet: the worker's fleet hooks are on a type
/// with no values, so they compile away.
#[cfg(not(feature = "redis"))]
mod no_fleet {
    use std::{sync::Arc, time::Duration};

    use tokio::time::Instant;

    use super::Registration;
    use crate::report::{FleetHealth, Report};

    pub(crate) enum FleetWatch {}

    impl FleetWatch {
        pub(crate) fn period(&self) -> Duration {
            match *self {}
        }

        pub(crate) fn stale(&self) -> bool {
            match *self {}
        }

        pub(crate) fn health(&self) -> FleetHealth {
            match *self {}
        }

        pub(crate) fn instance(&self) -> &Arc<str> {
            match *self {}
        }

        pub(crate) fn register(&mut self, _: &Registration) {
            match *self {}
        }

        #[allow(clippy::unused_async)]
        pub(crate) async fn tick(&mut self, _: Instant, _: &mut Vec<Report>) {
            match *self {}
        }

        #[allow(clippy::unused_async)]
        pub(crate) async fn release(&mut self) {
            match *self {}
        }
    }
}
#[cfg(feature = "redis")]
pub(crate) use engine::judge;
pub(crate) use engine::{Registration, Watchers};
pub(crate) use memory::resident_bytes;
pub use memory::MemoryWatch;

/// The route name process-wide alerts carry in [`Alert::route`]: alerts about the whole
/// process rather than one route ([`AlertKind::MemoryGrowth`]). Parenthesized, so that a
/// policy's name is unlikely to look the same.
///
/// # Example
///
/// ```
/// use webhook_monitor::watch::{Alert, PROCESS_ROUTE};
///
/// fn about_a_route(alert: &Alert) -> Option<&str> {
///     (&*alert.route != PROCESS_ROUTE).then_some(&*alert.route)
/// }
/// # let _ = about_a_route;
/// ```
pub const PROCESS_ROUTE: &str = "(process)";

/// How long a resolved alert stays closed before it may open again, unless a route's
/// [`Watch::cooldown`] says otherwise.
const COOLDOWN: Duration = Duration::from_secs(5 * 60);

/// The watchers' thresholds for one route. Set them with [`Policy::watch`](crate::Policy::watch).
///
/// Every setter documents its default. Windows counted in minutes are rounded up to whole
/// minutes and capped at 60.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use webhook_monitor::watch::Watch;
///
/// let watch = Watch::default()
///     .spike(10.0, 100)
///     .near_timeout(0.5)
///     .cooldown(Duration::from_secs(15 * 60));
/// assert!(watch.is_enabled());
/// assert!(!Watch::off().is_enabled());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Watch {
    pub(crate) enabled: bool,
    pub(crate) cooldown: Duration,
    pub(crate) spike_multiple: f64,
    pub(crate) spike_floor: u32,
    pub(crate) drop_mean: f64,
    pub(crate) expected_interval: Option<Duration>,
    pub(crate) quiet: Option<QuietHours>,
    pub(crate) rejected_min: u32,
    pub(crate) rejected_minutes: usize,
    pub(crate) failure_rate: f64,
    pub(crate) failure_min: u32,
    pub(crate) failure_minutes: usize,
    pub(crate) consecutive_failures: u32,
    pub(crate) retry_min: u32,
    pub(crate) retry_minutes: usize,
    pub(crate) latency_window: Duration,
    pub(crate) latency_min_samples: u64,
    pub(crate) near_timeout: f64,
    pub(crate) degradation: f64,
    pub(crate) baseline_days: usize,
}

impl Default for Watch {
    fn default() -> Self {
        Self {
            enabled: true,
            cooldown: COOLDOWN,
            spike_multiple: 5.0,
            spike_floor: 30,
            drop_mean: 5.0,
            expected_interval: None,
            quiet: None,
            rejected_min: 5,
            rejected_minutes: 5,
            failure_rate: 0.5,
            failure_min: 10,
            failure_minutes: 5,
            consecutive_failures: 5,
            retry_min: 10,
            retry_minutes: 10,
            latency_window: Duration::from_secs(3600),
            latency_min_samples: 20,
            near_timeout: 0.8,
            degradation: 2.0,
            baseline_days: 28,
        }
    }
}

/// Minutes in `window`, rounded up, between `min` and `max`.
fn whole_minutes(window: Duration, min: usize, max: usize) -> usize {
    let secs = window
        .as_secs()
        .saturating_add(u64::from(window.subsec_nanos() > 0));
    usize::try_from(secs.div_ceil(60)).map_or(max, |m| m.clamp(min, max))
}

/// Minutes in `window`, rounded up, between 1 and 60.
fn minutes(window: Duration) -> usize {
    whole_minutes(window, 1, 60)
}

impl Watch {
    /// No watcher for this route: its reports go to the sinks, and nothing else.
    pub fn off() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// Whether the route is watched.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// How long a resolved alert stays closed before it may open again, so that a condition on
    /// the edge does not flap. Defaults to 5 minutes.
    #[must_use]
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// A spike is a minute with more than `multiple` times the mean of the 10 minutes before
    /// it, and more than `floor` deliveries. Defaults to 5× and 30. Needs 10 minutes of history.
    #[must_use]
    pub fn spike(mut self, multiple: f64, floor: u32) -> Self {
        self.spike_multiple = multiple;
        self.spike_floor = floor;
        self
    }

    /// A drop is a full minute, and the current one, without a delivery while the 10 minutes
    /// before averaged more than `mean` a minute. Defaults to 5.
    #[must_use]
    pub fn drop_below_mean(mut self, mean: f64) -> Self {
        self.drop_mean = mean;
        self
    }

    /// Expects at least `n` deliveries per `per`: a gap longer than `per / n` without a
    /// delivery (outside [quiet hours](Self::quiet_hours)) is a silence. Off by default.
    /// `n == 0` turns it off.
    #[must_use]
    pub fn expect_at_least(mut self, n: u32, per: Duration) -> Self {
        self.expected_interval = (n > 0).then(|| per / n);
        self
    }

    /// When silence is expected: no silence alert opens then, and the gap is counted from the
    /// end of the quiet time. Defaults to none.
    #[must_use]
    pub fn quiet_hours(mut self, quiet: QuietHours) -> Self {
        self.quiet = Some(quiet);
        self
    }

    /// "Deliveries arrive, none gets through": at least `min_deliveries` in the last `window`,
    /// every one rejected. Defaults to 5 in 5 minutes.
    #[must_use]
    pub fn all_rejected(mut self, min_deliveries: u32, window: Duration) -> Self {
        self.rejected_min = min_deliveries.max(1);
        self.rejected_minutes = minutes(window);
        self
    }

    /// A failure rate at or above `rate` (0 to 1) over the last `window`, once at least
    /// `min_handled` deliveries were handled in it. Defaults to 0.5, 10 and 5 minutes.
    #[must_use]
    pub fn failure_rate(mut self, rate: f64, min_handled: u32, window: Duration) -> Self {
        self.failure_rate = rate;
        self.failure_min = min_handled.max(1);
        self.failure_minutes = minutes(window);
        self
    }

    /// `n` handled deliveries failing in a row. Defaults to 5.
    #[must_use]
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.consecutive_failures = n.max(1);
        self
    }

    /// A retry storm: at least `min_flagged` deliveries flagged
    /// [`many_attempts`](crate::Flags::many_attempts) or
    /// [`rapid_retries`](crate::Flags::rapid_retries) in the last `window`. Defaults to 10 in
    /// 10 minutes.
    #[must_use]
    pub fn retry_storm(mut self, min_flagged: u32, window: Duration) -> Self {
        self.retry_min = min_flagged.max(1);
        self.retry_minutes = minutes(window);
        self
    }

    /// The latency window percentiles are computed over, and the fewest samples a window (or a
    /// day, for the baseline) needs to count. Defaults to 1 hour and 20.
    #[must_use]
    pub fn latency_window(mut self, window: Duration, min_samples: u64) -> Self {
        self.latency_window = window.max(Duration::from_secs(1));
        self.latency_min_samples = min_samples.max(1);
        self
    }

    /// A window's p95 above this share (0 to 1) of the provider's
    /// [timeout budget](crate::Policy::timeout_budget) is near timeout. Defaults to 0.8.
    #[must_use]
    pub fn near_timeout(mut self, share: f64) -> Self {
        self.near_timeout = share;
        self
    }

    /// A window's p95 above `multiple` times the baseline (the lowest daily p95 of the last
    /// `baseline_days` days) is a degradation. Defaults to 2× and 28 days: a slow creep over
    /// weeks stays measured against where it started.
    #[must_use]
    pub fn degradation(mut self, multiple: f64, baseline_days: usize) -> Self {
        self.degradation = multiple;
        self.baseline_days = baseline_days.max(1);
        self
    }
}

/// When a route is expected to be silent: weekends, a daily span, or both, in local time.
///
/// Local time is a fixed UTC offset ([`utc_offset_minutes`](Self::utc_offset_minutes), UTC by
/// default), which does not follow daylight saving time, or, with the `tz` feature, an IANA time
/// zone (`QuietHours::time_zone`), which does. Setting one replaces the other.
///
/// `QuietHours` is `Clone` but not `Copy`: a time zone holds its rules behind a reference count.
///
/// # Example
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use webhook_monitor::watch::QuietHours;
///
/// let quiet = QuietHours::daily(20, 8).and_weekends();
/// let monday_noon = UNIX_EPOCH + Duration::from_secs(4 * 86_400 + 12 * 3600); // 1970-01-05
/// let monday_night = UNIX_EPOCH + Duration::from_secs(4 * 86_400 + 23 * 3600);
/// assert!(!quiet.contains(monday_noon));
/// assert!(quiet.contains(monday_night));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuietHours {
    weekends: bool,
    /// A daily span, in minutes of the day: from (inclusive), to (exclusive); it wraps past
    /// midnight when `from > to`.
    daily: Option<(u32, u32)>,
    zone: Zone,
}

/// Where local time is read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Zone {
    /// A fixed offset from UTC, in minutes.
    Offset(i32),
    /// An IANA time zone, daylight saving time included.
    #[cfg(feature = "tz")]
    Tz(jiff::tz::TimeZone),
}

/// The time zone given to [`QuietHours::time_zone`] is not in the tz database.
#[cfg(feature = "tz")]
#[cfg_attr(docsrs, doc(cfg(feature = "tz")))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuietHoursError {
    name: String,
}

#[cfg(feature = "tz")]
impl QuietHoursError {
    /// The time zone name that was not found.
    pub fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(feature = "tz")]
impl std::fmt::Display for QuietHoursError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown time zone {:?}", self.name)
    }
}

#[cfg(feature = "tz")]
impl std::error::Error for QuietHoursError {}

impl QuietHours {
    /// All of Saturday and Sunday.
    pub fn weekends() -> Self {
        Self {
            weekends: true,
            daily: None,
            zone: Zone::Offset(0),
        }
    }

    /// Every day from `from_hour` until `to_hour` (0 to 24), past midnight when
    /// `from_hour > to_hour`.
    pub fn daily(from_hour: u8, to_hour: u8) -> Self {
        Self {
            weekends: false,
            daily: None,
            zone: Zone::Offset(0),
        }
        .and_daily(from_hour, to_hour)
    }

    /// Adds weekends.
    #[must_use]
    pub fn and_weekends(mut self) -> Self {
        self.weekends = true;
        self
    }

    /// Adds (replaces) the daily span.
    #[must_use]
    pub fn and_daily(mut self, from_hour: u8, to_hour: u8) -> Self {
        let minute = |h: u8| u32::from(h.min(24)) * 60;
        self.daily = Some((minute(from_hour), minute(to_hour)));
        self
    }

    /// The local time's offset from UTC, in minutes (for example 60 for CET, -300 for EST).
    /// A fixed offset does not follow daylight saving time; with the `tz` feature,
    /// `QuietHours::time_zone` does. Replaces a time zone set before. Defaults to 0.
    #[must_use]
    pub fn utc_offset_minutes(mut self, minutes: i32) -> Self {
        self.zone = Zone::Offset(minutes);
        self
    }

    /// Reads weekends and the daily span in the IANA time zone `name` (for example
    /// `Europe/Berlin` or `America/New_York`), daylight saving time included: a span from 22
    /// to 7 is 22:00 to 07:00 on the local clock in winter and in summer. Replaces a
    /// [UTC offset](Self::utc_offset_minutes) set before. The time zone database is bundled
    /// with the crate, so the host's does not matter.
    ///
    /// Each instant is turned into the zone's local date and time, and that wall-clock time is
    /// compared with the span. So on the day the clocks skip an hour, a span that starts in the
    /// skipped hour starts when it ends (a span from 2 in `Europe/Berlin` starts at 03:00 summer
    /// time on the last Sunday of March), and one that ends in it ends when it starts. On the
    /// day an hour repeats, an instant in either of the two is in the span if that local time
    /// is: a span from 2 to 3 lasts two hours.
    ///
    /// # Errors
    ///
    /// [`QuietHoursError`] when the tz database has no zone of that name.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use webhook_monitor::watch::QuietHours;
    ///
    /// let quiet = QuietHours::daily(22, 7).time_zone("Europe/Berlin")?;
    /// // 2026-07-01 04:30 UTC is 06:30 summer time in Berlin: quiet.
    /// let july_1 = UNIX_EPOCH + Duration::from_secs(20_635 * 86_400);
    /// assert!(quiet.contains(july_1 + Duration::from_secs(4 * 3600 + 30 * 60)));
    /// // 05:30 UTC is 07:30 there: no longer.
    /// assert!(!quiet.contains(july_1 + Duration::from_secs(5 * 3600 + 30 * 60)));
    /// assert!(QuietHours::weekends().time_zone("Mars/Olympus_Mons").is_err());
    /// # Ok::<(), webhook_monitor::watch::QuietHoursError>(())
    /// ```
    #[cfg(feature = "tz")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tz")))]
    pub fn time_zone(mut self, name: &str) -> Result<Self, QuietHoursError> {
        let tz = jiff::tz::TimeZone::get(name).map_err(|_| QuietHoursError {
            name: name.to_owned(),
        })?;
        self.zone = Zone::Tz(tz);
        Ok(self)
    }

    /// Whether `t` falls in the quiet time. With a time zone, an instant outside the years
    /// -9999 to 9999 is never quiet.
    pub fn contains(&self, t: SystemTime) -> bool {
        let Some((weekday, minute_of_day)) = self.local(t) else {
            return false;
        };
        if self.weekends && weekday >= 5 {
            return true;
        }
        match self.daily {
            Some((from, to)) if from <= to => (from..to).contains(&minute_of_day),
            Some((from, to)) => minute_of_day >= from || minute_of_day < to,
            None => false,
        }
    }

    /// The local weekday (Monday is 0) and minute of the day at `t`.
    fn local(&self, t: SystemTime) -> Option<(i64, u32)> {
        match &self.zone {
            Zone::Offset(offset_minutes) => {
                let secs = match t.duration_since(UNIX_EPOCH) {
                    Ok(d) => d.as_secs() as i64,
                    Err(e) => -(e.duration().as_secs() as i64),
                };
                let local = secs + i64::from(*offset_minutes) * 60;
                let days = local.div_euclid(86_400);
                let minute_of_day = (local.rem_euclid(86_400) / 60) as u32;
                // 1970-01-01 was a Thursday: with Monday as 0, it is day 3.
                Some(((days + 3).rem_euclid(7), minute_of_day))
            }
            #[cfg(feature = "tz")]
            Zone::Tz(tz) => {
                let local = tz.to_datetime(jiff::Timestamp::try_from(t).ok()?);
                let weekday = i64::from(local.weekday().to_monday_zero_offset());
                let minute_of_day =
                    u32::try_from(local.hour()).ok()? * 60 + u32::try_from(local.minute()).ok()?;
                Some((weekday, minute_of_day))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(day: u64, hour: u64, minute: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(day * 86_400 + hour * 3600 + minute * 60)
    }

    #[test]
    fn weekends_are_saturday_and_sunday() {
        let q = QuietHours::weekends();
        // 1970-01-01 (day 0) is a Thursday; days 2 and 3 are the weekend.
        let quiet: Vec<bool> = (0..7).map(|d| q.contains(at(d, 12, 0))).collect();
        assert_eq!(quiet, [false, false, true, true, false, false, false]);
    }

    #[test]
    fn daily_spans_wrap_past_midnight() {
        let q = QuietHours::daily(22, 7);
        assert!(q.contains(at(0, 22, 0)));
        assert!(q.contains(at(0, 6, 59)));
        assert!(!q.contains(at(0, 7, 0)));
        assert!(!q.contains(at(0, 21, 59)));
        let q = QuietHours::daily(12, 14);
        assert!(q.contains(at(0, 13, 0)));
        assert!(!q.contains(at(0, 14, 0)));
    }

    #[test]
    fn the_offset_shifts_local_time() {
        // 23:30 UTC on Friday (day 1) is 00:30 on Saturday at UTC+1.
        let q = QuietHours::weekends().utc_offset_minutes(60);
        assert!(q.contains(at(1, 23, 30)));
        assert!(!QuietHours::weekends().contains(at(1, 23, 30)));
        // And 00:30 UTC on Monday (day 4) is still Sunday at UTC-5.
        let q = QuietHours::weekends().utc_offset_minutes(-300);
        assert!(q.contains(at(4, 0, 30)));
    }

    /// 2026-01-01 (a Thursday) as days since 1970-01-01: 56 years of 365 days and 14 leap days
    /// (1972 to 2024), 20_440 + 14. 2026 is not a leap year: March 1 is day 59 of the year,
    /// October 1 day 273, November 1 day 304 (all 0-based).
    #[cfg(feature = "tz")]
    const JAN_1_2026: u64 = 20_454;

    #[cfg(feature = "tz")]
    fn zone(q: QuietHours, name: &str) -> QuietHours {
        q.time_zone(name)
            .expect("a zone in the bundled tz database")
    }

    #[cfg(feature = "tz")]
    #[test]
    fn berlin_quiet_hours_follow_the_spring_forward_change() {
        // Sunday 2026-03-29 (day 59 + 28 = 87 of the year) at 01:00 UTC, 02:00 CET becomes
        // 03:00 CEST: UTC+1 before, UTC+2 after.
        let q = zone(QuietHours::daily(22, 7), "Europe/Berlin");
        let sat = JAN_1_2026 + 86;
        let sun = JAN_1_2026 + 87;
        // Saturday evening, in CET: 22:00 local is 21:00 UTC.
        assert!(!q.contains(at(sat, 20, 59)));
        assert!(q.contains(at(sat, 21, 0)));
        // After the change, in CEST: 06:30 local is 04:30 UTC, 07:30 local is 05:30 UTC
        // (which at a fixed UTC+1 would be 06:30, still quiet).
        assert!(q.contains(at(sun, 0, 59))); // 01:59 CET
        assert!(q.contains(at(sun, 1, 0))); // 03:00 CEST
        assert!(q.contains(at(sun, 4, 30)));
        assert!(q.contains(at(sun, 4, 59)));
        assert!(!q.contains(at(sun, 5, 0)));
        assert!(!q.contains(at(sun, 5, 30)));
        // Sunday evening, in CEST: 22:00 local is 20:00 UTC.
        assert!(!q.contains(at(sun, 19, 59)));
        assert!(q.contains(at(sun, 20, 0)));
    }

    #[cfg(feature = "tz")]
    #[test]
    fn berlin_quiet_hours_follow_the_fall_back_change() {
        // Sunday 2026-10-25 (day 273 + 24 = 297 of the year) at 01:00 UTC, 03:00 CEST becomes
        // 02:00 CET: UTC+2 before, UTC+1 after.
        let q = zone(QuietHours::daily(22, 7), "Europe/Berlin");
        let sat = JAN_1_2026 + 296;
        let sun = JAN_1_2026 + 297;
        // Saturday evening, in CEST: 22:00 local is 20:00 UTC.
        assert!(!q.contains(at(sat, 19, 59)));
        assert!(q.contains(at(sat, 20, 0)));
        // After the change, in CET: 06:30 local is 05:30 UTC (which at a fixed UTC+2 would be
        // 07:30, no longer quiet), 07:30 local is 06:30 UTC.
        assert!(q.contains(at(sun, 5, 30)));
        assert!(q.contains(at(sun, 5, 59)));
        assert!(!q.contains(at(sun, 6, 0)));
        assert!(!q.contains(at(sun, 6, 30)));
    }

    #[cfg(feature = "tz")]
    #[test]
    fn new_york_quiet_hours_follow_both_changes() {
        let q = zone(QuietHours::daily(22, 7), "America/New_York");
        // Sunday 2026-03-08 (day 59 + 7 = 66 of the year) at 07:00 UTC, 02:00 EST becomes
        // 03:00 EDT: UTC-5 before, UTC-4 after.
        let sun = JAN_1_2026 + 66;
        // Saturday 22:00 EST is Sunday 03:00 UTC.
        assert!(!q.contains(at(sun, 2, 59)));
        assert!(q.contains(at(sun, 3, 0)));
        // 06:30 EDT is 10:30 UTC; 07:30 EDT is 11:30 UTC (at a fixed UTC-5, 06:30: quiet).
        assert!(q.contains(at(sun, 10, 30)));
        assert!(!q.contains(at(sun, 11, 0)));
        assert!(!q.contains(at(sun, 11, 30)));

        // Sunday 2026-11-01 (day 304 of the year) at 06:00 UTC, 02:00 EDT becomes 01:00 EST:
        // UTC-4 before, UTC-5 after.
        let sun = JAN_1_2026 + 304;
        // Saturday 22:00 EDT is Sunday 02:00 UTC.
        assert!(!q.contains(at(sun, 1, 59)));
        assert!(q.contains(at(sun, 2, 0)));
        // 06:30 EST is 11:30 UTC (at a fixed UTC-4, 07:30: not quiet); 07:30 EST is 12:30 UTC.
        assert!(q.contains(at(sun, 11, 30)));
        assert!(!q.contains(at(sun, 12, 0)));
        assert!(!q.contains(at(sun, 12, 30)));
    }

    #[cfg(feature = "tz")]
    #[test]
    fn weekends_are_read_on_the_local_date() {
        let q = zone(QuietHours::weekends(), "Europe/Berlin");
        // Friday 2026-03-27 (day 85) 23:30 UTC is Saturday 00:30 CET.
        let fri = JAN_1_2026 + 85;
        assert!(!q.contains(at(fri, 22, 30))); // Friday 23:30 CET
        assert!(q.contains(at(fri, 23, 30)));
        // Sunday 2026-03-29 (day 87) 22:30 UTC is Monday 00:30 CEST (at CET's UTC+1 it would
        // still be Sunday 23:30).
        let sun = JAN_1_2026 + 87;
        assert!(q.contains(at(sun, 21, 30))); // Sunday 23:30 CEST
        assert!(!q.contains(at(sun, 22, 30)));

        let q = zone(QuietHours::weekends(), "America/New_York");
        // Saturday 2026-03-07 (day 65) 04:30 UTC is Friday 23:30 EST.
        let sat = JAN_1_2026 + 65;
        assert!(!q.contains(at(sat, 4, 30)));
        assert!(q.contains(at(sat, 5, 0))); // Saturday 00:00 EST
                                            // Monday 2026-03-09 (day 67) 03:30 UTC is Sunday 23:30 EDT; 04:00 UTC is Monday.
        let mon = JAN_1_2026 + 67;
        assert!(q.contains(at(mon, 3, 30)));
        assert!(!q.contains(at(mon, 4, 0)));
    }

    #[cfg(feature = "tz")]
    #[test]
    fn a_span_in_the_skipped_or_repeated_hour_is_read_on_the_wall_clock() {
        let q = zone(QuietHours::daily(2, 4), "Europe/Berlin");
        // 2026-03-29: 02:00 local never happens; the span starts at 03:00 CEST (01:00 UTC).
        let sun = JAN_1_2026 + 87;
        assert!(!q.contains(at(sun, 0, 59))); // 01:59 CET
        assert!(q.contains(at(sun, 1, 0))); // 03:00 CEST
        assert!(q.contains(at(sun, 1, 59))); // 03:59 CEST
        assert!(!q.contains(at(sun, 2, 0))); // 04:00 CEST
                                             // 2026-10-25: 02:00 to 03:00 local happens twice, both quiet.
        let q = zone(QuietHours::daily(2, 3), "Europe/Berlin");
        let sun = JAN_1_2026 + 297;
        assert!(!q.contains(at(sun - 1, 23, 59))); // 01:59 CEST
        assert!(q.contains(at(sun, 0, 0))); // 02:00 CEST
        assert!(q.contains(at(sun, 1, 0))); // 02:00 CET
        assert!(q.contains(at(sun, 1, 59))); // 02:59 CET
        assert!(!q.contains(at(sun, 2, 0))); // 03:00 CET
    }

    #[cfg(feature = "tz")]
    #[test]
    fn an_unknown_zone_is_an_error_and_zone_and_offset_replace_each_other() {
        let err = QuietHours::weekends()
            .time_zone("Mars/Olympus_Mons")
            .expect_err("no such zone");
        assert_eq!(err.name(), "Mars/Olympus_Mons");
        assert_eq!(err.to_string(), "unknown time zone \"Mars/Olympus_Mons\"");
        // Friday 2026-03-27 23:30 UTC: Saturday in Berlin, Friday in UTC.
        let t = at(JAN_1_2026 + 85, 23, 30);
        let berlin = zone(
            QuietHours::weekends().utc_offset_minutes(-300),
            "Europe/Berlin",
        );
        assert!(berlin.contains(t));
        assert!(!berlin.utc_offset_minutes(0).contains(t));
    }

    #[test]
    fn windows_round_up_to_whole_minutes() {
        assert_eq!(minutes(Duration::from_secs(1)), 1);
        assert_eq!(minutes(Duration::from_secs(60)), 1);
        assert_eq!(minutes(Duration::from_secs(61)), 2);
        assert_eq!(minutes(Duration::from_secs(3 * 3600)), 60);
        assert_eq!(minutes(Duration::ZERO), 1);
        assert_eq!(minutes(Duration::MAX), 60);
    }
}

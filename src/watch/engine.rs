//! The watchers' state in the reporter's worker: one [`Route`] per watched route, fed by
//! [`Watchers::observe`] and turned into alerts by [`Watchers::evaluate`], and the process-wide
//! memory watch ([`Memory`]), sampled by it on the minute's tick.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use hashbrown::HashMap;
use tokio::time::Instant;

use super::{
    latency::Latency,
    memory::{resident_bytes, Memory},
    traffic::Minutes,
    Alert, AlertKind, AlertState, MemoryWatch, Watch,
};
use crate::{
    outcome::Field,
    policy::Clock,
    report::{DeliveryReport, Report},
    FieldValue, Outcome,
};

/// What a watcher read: whether its condition holds, and the figures behind it.
#[derive(Debug)]
pub(super) struct Reading {
    active: bool,
    figures: Vec<Field>,
}

impl Reading {
    pub(super) fn new<const N: usize>(
        active: bool,
        named: [(&'static str, FieldValue); N],
    ) -> Self {
        let figures = named
            .into_iter()
            .map(|(name, value)| Field {
                name: name.into(),
                value,
            })
            .collect();
        Self { active, figures }
    }
}

/// A route the layer registered with the reporter: its name, thresholds and timeout budget.
#[derive(Debug, Clone)]
pub(crate) struct Registration {
    pub(crate) route: Arc<str>,
    pub(crate) watch: Watch,
    pub(crate) budget: Option<Duration>,
    pub(crate) at: Instant,
}

/// Every watched route, keyed by name, and the process-wide watchers.
pub(crate) struct Watchers {
    origin: Instant,
    clock: Clock,
    /// `None` for a route whose watchers are off. Hashed with foldhash: route names come from
    /// the code, not from requests, and the lookup is on every report.
    routes: HashMap<Arc<str>, Option<Box<Route>>>,
    /// The memory watch; `None` when it is off.
    memory: Option<Memory>,
}

/// The state of one alert kind: on one route, or process-wide.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Slot {
    opened_at: Option<SystemTime>,
    resolved_at: Option<Instant>,
}

impl Slot {
    /// A slot read back from elsewhere (the fleet's alert state in Redis).
    #[cfg(feature = "redis")]
    pub(super) fn restored(opened_at: Option<SystemTime>, resolved_at: Option<Instant>) -> Self {
        Self {
            opened_at,
            resolved_at,
        }
    }

    /// When the open alert opened.
    #[cfg(feature = "redis")]
    pub(super) fn opened_at(&self) -> Option<SystemTime> {
        self.opened_at
    }

    /// When the alert last resolved.
    #[cfg(feature = "redis")]
    pub(super) fn resolved_at(&self) -> Option<Instant> {
        self.resolved_at
    }

    /// Whether the alert is open.
    pub(super) fn is_open(&self) -> bool {
        self.opened_at.is_some()
    }

    /// Moves the alert of `kind` on `route` to what `reading` says: the report to send when it
    /// opens (unless it resolved less than `cooldown` ago) or resolves; `None` when its state
    /// stays.
    pub(super) fn update(
        &mut self,
        kind: AlertKind,
        route: &Arc<str>,
        reading: Reading,
        now: Instant,
        wall: SystemTime,
        cooldown: Duration,
    ) -> Option<Report> {
        let (state, opened_at) = match (self.opened_at, reading.active) {
            (None, true) => {
                let cooled = self
                    .resolved_at
                    .is_none_or(|at| now.duration_since(at) >= cooldown);
                if !cooled {
                    return None;
                }
                self.opened_at = Some(wall);
                (AlertState::Opened, wall)
            }
            (Some(opened_at), false) => {
                self.opened_at = None;
                self.resolved_at = Some(now);
                (AlertState::Resolved, opened_at)
            }
            _ => return None,
        };
        Some(Report::Alert(Alert {
            kind,
            route: Arc::clone(route),
            severity: kind.severity(),
            state,
            opened_at,
            at: wall,
            figures: reading.figures,
            instance: None,
        }))
    }
}

#[derive(Debug)]
struct Route {
    watch: Watch,
    budget: Option<Duration>,
    minutes: Minutes,
    latency: Latency,
    /// The last delivery, or when the route was registered.
    last_seen: Instant,
    /// The last evaluation inside quiet hours: silence is counted from after it.
    quiet_seen: Option<Instant>,
    consecutive_failures: u32,
    /// The longest run of failures that grew since the last evaluation: a run that ends inside
    /// one batch still counts.
    peak_failures: u32,
    /// Observed since the last evaluation.
    dirty: bool,
    slots: [Slot; AlertKind::PER_ROUTE],
}

impl Watchers {
    pub(crate) fn new(clock: Clock, memory: MemoryWatch) -> Self {
        Self {
            origin: Instant::now(),
            clock,
            routes: HashMap::new(),
            memory: Memory::new(memory),
        }
    }

    fn elapsed(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.origin)
    }

    fn minute(&self, now: Instant) -> u64 {
        self.elapsed(now).as_secs() / 60
    }

    fn route(&self, watch: Watch, budget: Option<Duration>, at: Instant) -> Option<Box<Route>> {
        if !watch.enabled {
            return None;
        }
        Some(Box::new(Route {
            minutes: Minutes::new(self.minute(at)),
            latency: Latency::new(self.elapsed(at), &watch),
            watch,
            budget,
            last_seen: at,
            quiet_seen: None,
            consecutive_failures: 0,
            peak_failures: 0,
            dirty: false,
            slots: Default::default(),
        }))
    }

    /// Watches a route with `watch`, or updates its thresholds; its history is kept unless its
    /// watchers were off.
    pub(crate) fn register(&mut self, r: Registration) {
        match self.routes.get_mut(&r.route) {
            Some(Some(route)) if r.watch.enabled => {
                route.watch = r.watch;
                route.budget = r.budget;
            }
            _ => {
                let route = self.route(r.watch, r.budget, r.at);
                self.routes.insert(r.route, route);
            }
        }
    }

    /// Counts a batch of reports received `now`. A route that was never registered is watched
    /// with the defaults.
    pub(crate) fn observe(&mut self, reports: &[Report], now: Instant) {
        let (minute, elapsed) = (self.minute(now), self.elapsed(now));
        let mut rest = reports;
        while let [first, ..] = rest {
            let Report::Delivery(first) = first else {
                rest = &rest[1..];
                continue;
            };
            // Reports come in runs from the same route (one route per layer, one `Arc` per
            // route): look the route up once per run.
            let name = &first.delivery.data().route;
            let run = rest
                .iter()
                .take_while(|r| {
                    matches!(r, Report::Delivery(d) if Arc::ptr_eq(&d.delivery.data().route, name))
                })
                .count();
            let (run, next) = rest.split_at(run);
            rest = next;
            if !self.routes.contains_key(name) {
                let route = self.route(Watch::default(), None, now);
                self.routes.insert(Arc::clone(name), route);
            }
            let Some(Some(route)) = self.routes.get_mut(name) else {
                continue; // watchers off
            };
            for report in run.iter().filter_map(Report::as_delivery) {
                route.observe(report, now, minute, elapsed);
            }
        }
    }

    /// Evaluates the routes observed since their last evaluation, or on the minute's `tick`
    /// every route, and then samples the process's resident memory for the memory watch.
    /// Appends the alerts that open or resolve to `out`. Unless `open` (in a fleet whose view
    /// is fresh, the fleet watchers speak for the routes), route alerts do not open; those
    /// open still resolve.
    pub(crate) fn evaluate(&mut self, now: Instant, tick: bool, open: bool, out: &mut Vec<Report>) {
        let (minute, elapsed) = (self.minute(now), self.elapsed(now));
        let wall = (self.clock)();
        for (name, route) in &mut self.routes {
            match route {
                Some(route) if tick || route.dirty => {
                    route.evaluate(name, now, minute, elapsed, wall, open, out);
                }
                _ => {}
            }
        }
        if tick {
            if let Some(memory) = &mut self.memory {
                out.extend(memory.sample(resident_bytes(), now, wall));
            }
        }
    }
}

/// How the watchers count a delivery: whether it reached the handler, whether it failed there,
/// and whether its latency counts.
pub(crate) fn judge(r: &DeliveryReport) -> (bool, bool, bool) {
    match r.outcome {
        Outcome::Success => (true, false, true),
        Outcome::Late | Outcome::Failure(_) | Outcome::Panicked => (true, true, true),
        // Cancelled in the handler: the provider got no answer.
        Outcome::Cancelled => (!r.handler.is_zero(), true, false),
        Outcome::Rejected(_) | Outcome::Duplicate | Outcome::InFlight => (false, false, false),
    }
}

impl Route {
    fn observe(&mut self, r: &DeliveryReport, now: Instant, minute: u64, elapsed: Duration) {
        self.dirty = true;
        self.last_seen = now;
        self.minutes.advance(minute);
        self.latency.roll(elapsed, &self.watch);
        let m = self.minutes.current_mut();
        m.total += 1;
        m.retried += u32::from(r.flags.many_attempts || r.flags.rapid_retries);
        m.rejected += u32::from(matches!(r.outcome, Outcome::Rejected(_)));
        let (handled, failed, timed) = judge(r);
        if handled {
            m.handled += 1;
            m.failed += u32::from(failed);
            self.consecutive_failures = if failed {
                self.consecutive_failures + 1
            } else {
                0
            };
            self.peak_failures = self.peak_failures.max(self.consecutive_failures);
        }
        if timed {
            self.latency.record(r.total);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn evaluate(
        &mut self,
        name: &Arc<str>,
        now: Instant,
        minute: u64,
        elapsed: Duration,
        wall: SystemTime,
        open: bool,
        out: &mut Vec<Report>,
    ) {
        self.dirty = false;
        self.minutes.advance(minute);
        self.latency.roll(elapsed, &self.watch);
        for kind in &AlertKind::ALL[..AlertKind::PER_ROUTE] {
            if !open && !self.slots[kind.index()].is_open() {
                continue;
            }
            let Some(reading) = self.read(*kind, now, wall) else {
                continue; // not enough history: hold the state
            };
            let slot = &mut self.slots[kind.index()];
            out.extend(slot.update(*kind, name, reading, now, wall, self.watch.cooldown));
        }
    }

    /// One watcher's reading, or `None` when it cannot tell (too little history or traffic,
    /// not configured): the alert's state is held.
    fn read(&mut self, kind: AlertKind, now: Instant, wall: SystemTime) -> Option<Reading> {
        let w = &self.watch;
        Some(match kind {
            AlertKind::Spike => self.minutes.spike(w)?,
            AlertKind::Drop => self.minutes.drop_to_zero(w)?,
            AlertKind::Silence => return self.silence(now, wall),
            AlertKind::AllRejected => self.minutes.all_rejected(w)?,
            AlertKind::RetryStorm => self.minutes.retry_storm(w),
            AlertKind::FailureRate => self.minutes.failure_rate(w)?,
            AlertKind::ConsecutiveFailures => {
                let run = std::mem::take(&mut self.peak_failures).max(self.consecutive_failures);
                Reading::new(
                    run >= w.consecutive_failures,
                    [("consecutive_failures", run.into())],
                )
            }
            AlertKind::NearTimeout => self.latency.near_timeout(w, self.budget)?,
            AlertKind::LatencyDegraded => self.latency.degraded(w)?,
            // Process-wide, not a route's: the memory watch reads it (`Watchers::evaluate`).
            AlertKind::MemoryGrowth
            | AlertKind::InstanceSilent
            | AlertKind::InstanceFailureRate => return None,
        })
    }

    fn silence(&mut self, now: Instant, wall: SystemTime) -> Option<Reading> {
        let since = |later: Instant, earlier: Instant| later.saturating_duration_since(earlier);
        silence(
            &self.watch,
            now,
            self.last_seen,
            &mut self.quiet_seen,
            wall,
            since,
        )
    }
}

/// The silence watcher: silent for longer than the expected interval, counted from the last
/// delivery (`last_seen`) or the end of quiet hours (`quiet_seen`, the last evaluation inside
/// them). In quiet hours a silence can only resolve. On the worker's clock (`Instant`) for one
/// process, on the wall clock for a fleet: `since` measures between two times of either.
pub(super) fn silence<T: Copy + Ord>(
    w: &Watch,
    now: T,
    last_seen: T,
    quiet_seen: &mut Option<T>,
    wall: SystemTime,
    since: impl Fn(T, T) -> Duration,
) -> Option<Reading> {
    let interval = w.expected_interval?;
    let gap = since(now, last_seen);
    let quiet = w.quiet.as_ref().is_some_and(|q| q.contains(wall));
    if quiet {
        *quiet_seen = Some(now);
        if gap > interval {
            return None;
        }
    }
    let from = quiet_seen.map_or(last_seen, |q| q.max(last_seen));
    let silent = since(now, from);
    Some(Reading::new(
        silent > interval,
        [
            ("silent_for_s", silent.as_secs().into()),
            ("expected_interval_s", interval.as_secs().into()),
        ],
    ))
}

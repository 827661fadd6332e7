//! The reporter's background worker: drains the queue in batches into the sink.

use std::{
    borrow::Cow,
    panic::AssertUnwindSafe,
    sync::{atomic::Ordering::Relaxed, Arc},
    time::Duration,
};

use futures_util::FutureExt;
use tokio::{
    sync::{mpsc, oneshot},
    time::{Instant, MissedTickBehavior},
};

use super::{reporter::Shared, HealthReport, Report, RouteInfo, Sink, SinkError};
use crate::{
    outcome::panic_message,
    policy::Clock,
    watch::{resident_bytes, FleetWatch, MemoryWatch, Watchers},
};

pub(super) struct Config {
    pub(super) batch_size: usize,
    pub(super) linger: Duration,
    pub(super) sink_timeout: Duration,
    pub(super) health_interval: Option<Duration>,
    pub(super) clock: Clock,
    /// Whether the watchers run (not in a [`Fanout`](super::Fanout)'s per-sink workers).
    pub(super) watch: bool,
    /// The memory watch, when the watchers run.
    pub(super) memory: MemoryWatch,
    /// The fleet watchers, with [`ReporterBuilder::fleet`](super::ReporterBuilder::fleet).
    pub(super) fleet: Option<FleetWatch>,
}

/// How often the watchers are evaluated without traffic (for silence, drops, windows closing).
const TICK: Duration = Duration::from_secs(60);

/// Sink failures, and panics, are logged at most once per this interval.
const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// What the worker logs at most once per [`WARN_INTERVAL`].
struct Warnings {
    at: Option<Instant>,
}

impl Warnings {
    /// Whether it is time to log again.
    fn due(&mut self) -> bool {
        let now = Instant::now();
        let due = self
            .at
            .is_none_or(|at| now.duration_since(at) >= WARN_INTERVAL);
        if due {
            self.at = Some(now);
        }
        due
    }
}

/// Runs `f`, which calls a sink's or a watcher's code; a panic is counted in `counter`, logged
/// at most once per interval, and turned into `None`, so that the worker carries on.
fn guarded<T>(
    f: impl FnOnce() -> T,
    counter: &std::sync::atomic::AtomicU64,
    what: &'static str,
    warnings: &mut Warnings,
) -> Option<T> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => Some(value),
        Err(panic) => {
            caught(&*panic, counter, what, warnings);
            None
        }
    }
}

/// Counts a caught panic in `counter` and logs it, at most once per interval.
fn caught(
    panic: &(dyn std::any::Any + Send),
    counter: &std::sync::atomic::AtomicU64,
    what: &'static str,
    warnings: &mut Warnings,
) {
    counter.fetch_add(1, Relaxed);
    if warnings.due() {
        let message = panic_message(panic).unwrap_or(Cow::Borrowed("(not a string)"));
        tracing::error!(
            target: "webhook_monitor::report",
            panic = %message, "{what} panicked; the reporter carries on"
        );
    }
}

pub(super) async fn run<K: Sink>(
    sink: K,
    mut rx: mpsc::Receiver<Report>,
    mut stop: oneshot::Receiver<Option<Instant>>,
    done: oneshot::Sender<Closed>,
    shared: Arc<Shared>,
    mut config: Config,
) {
    let mut batch = Vec::with_capacity(config.batch_size);
    let mut warnings = Warnings { at: None };
    let mut stopping = false;
    // When the guard's `shutdown` gives up waiting: past it, closing the sink is cut short.
    let mut deadline: Option<Instant> = None;
    let mut watchers = config
        .watch
        .then(|| Watchers::new(Arc::clone(&config.clock), config.memory.clone()));
    let mut tick = watchers.is_some().then(|| interval(TICK));
    let mut health = config.health_interval.map(interval);
    let mut fleet = config.fleet.take();
    let mut fleet_tick = fleet.as_ref().map(|f| interval(f.period()));
    while !stopping {
        // Idle: wait for the first report (the channel wakes us), the watchers' tick or the stop
        // signal.
        tokio::select! {
            biased;
            stopped = &mut stop => {
                deadline = stopped.ok().flatten();
                break;
            }
            () = next(&mut tick) => {
                watch(&sink, watchers.as_mut(), fleet.as_mut(), &shared, &mut batch, &mut warnings);
                if !batch.is_empty() {
                    deliver(&sink, &mut batch, &shared, &config, &mut warnings).await;
                }
                continue;
            }
            () = next(&mut fleet_tick) => {
                if let Some(fleet) = &mut fleet {
                    register(&sink, watchers.as_mut(), Some(&mut *fleet), &shared, &mut warnings);
                    // A panic in the fleet watchers loses their tick, not the worker.
                    let tick = AssertUnwindSafe(fleet.tick(Instant::now(), &mut batch));
                    if let Err(panic) = tick.catch_unwind().await {
                        let panics = &shared.counters.watcher_panics;
                        caught(&*panic, panics, "the fleet watchers", &mut warnings);
                    }
                    let raised = batch.len() as u64;
                    shared.counters.alerts.fetch_add(raised, Relaxed);
                }
                if !batch.is_empty() {
                    deliver(&sink, &mut batch, &shared, &config, &mut warnings).await;
                }
                continue;
            }
            () = next(&mut health) => {
                register(&sink, watchers.as_mut(), fleet.as_mut(), &shared, &mut warnings);
                let reporter = shared.stats(rx.len());
                let panics = &shared.counters.sink_panics;
                let sinks = guarded(|| sink.health(), panics, "a sink's health", &mut warnings);
                let sinks = sinks.unwrap_or_default();
                batch.push(Report::Health(Box::new(HealthReport {
                    at: (config.clock)(),
                    reporter,
                    sinks,
                    rss_bytes: resident_bytes(),
                    fleet: fleet.as_ref().map(FleetWatch::health),
                })));
                deliver(&sink, &mut batch, &shared, &config, &mut warnings).await;
                continue;
            }
            n = rx.recv_many(&mut batch, config.batch_size) => if n == 0 { break },
        }
        // Linger so that a batch gathers, unless the rest of a batch is already queued.
        let room = config.batch_size - batch.len();
        if room > 0 && !config.linger.is_zero() {
            shared.wake_at.store(room, Relaxed);
            let linger_until = Instant::now() + config.linger;
            // Checked after publishing `room`: a sender that queued before could not wake us.
            // A wake-up with the batch still short is a stale permit (left by a crossing while
            // we were not lingering): linger on.
            while rx.len() < room {
                tokio::select! {
                    biased;
                    stopped = &mut stop => {
                        deadline = stopped.ok().flatten();
                        stopping = true;
                        break;
                    }
                    () = shared.notify.notified() => {}
                    () = tokio::time::sleep_until(linger_until) => break,
                }
            }
        }
        if room > 0 && !rx.is_empty() {
            rx.recv_many(&mut batch, room).await;
        }
        watch(
            &sink,
            watchers.as_mut(),
            fleet.as_mut(),
            &shared,
            &mut batch,
            &mut warnings,
        );
        deliver(&sink, &mut batch, &shared, &config, &mut warnings).await;
    }
    // Stop accepting, then send what is already queued.
    rx.close();
    while rx.recv_many(&mut batch, config.batch_size).await > 0 {
        watch(
            &sink,
            watchers.as_mut(),
            fleet.as_mut(),
            &shared,
            &mut batch,
            &mut warnings,
        );
        deliver(&sink, &mut batch, &shared, &config, &mut warnings).await;
    }
    // Another instance takes the fleet watchers over at once.
    if let Some(fleet) = &mut fleet {
        fleet.release().await;
    }
    // The sink's own close (a Fanout drains its entries) is cut short when `shutdown` gives up:
    // nobody waits for it after that, and a hung sink must not keep the worker forever.
    let close = AssertUnwindSafe(sink.close()).catch_unwind();
    let closed = match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, close).await.ok(),
        None => Some(close.await),
    };
    if let Some(Err(panic)) = &closed {
        let panics = &shared.counters.sink_panics;
        caught(&**panic, panics, "a sink's close", &mut warnings);
    }
    let _ = done.send(match closed {
        Some(_) => Closed::Drained,
        None => Closed::CutShort,
    });
}

/// How the worker ended, for the guard's `shutdown`.
pub(super) enum Closed {
    /// Every queued report went to the sink, and the sink closed (or panicked closing).
    Drained,
    /// The sink's close was cut short at the shutdown's deadline.
    CutShort,
}

/// A timer ticking every `period`, the first tick one period from now.
fn interval(period: Duration) -> tokio::time::Interval {
    let mut interval = tokio::time::interval_at(Instant::now() + period, period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

/// The next tick of an optional timer; never, without one.
async fn next(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Hands the routes layers registered since the last call to the sink and the watchers. A
/// panic in the sink's `register_routes` or in a watcher is counted and logged.
fn register<K: Sink>(
    sink: &K,
    watchers: Option<&mut Watchers>,
    fleet: Option<&mut FleetWatch>,
    shared: &Shared,
    warnings: &mut Warnings,
) {
    if !shared.registered.swap(false, Relaxed) {
        return;
    }
    let pending = std::mem::take(
        &mut *shared
            .registrations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let routes: Vec<RouteInfo> = pending
        .iter()
        .map(|r| RouteInfo::new(Arc::clone(&r.route), r.budget))
        .collect();
    let counters = &shared.counters;
    guarded(
        || sink.register_routes(&routes),
        &counters.sink_panics,
        "a sink's register_routes",
        warnings,
    );
    if let Some(fleet) = fleet {
        pending.iter().for_each(|r| fleet.register(r));
    }
    if let Some(watchers) = watchers {
        let register = || pending.into_iter().for_each(|r| watchers.register(r));
        guarded(register, &counters.watcher_panics, "a watcher", warnings);
    }
}

/// Registers new routes (see [`register`]), feeds the batch's reports to the watchers and
/// appends the alerts they raise. An empty batch (the minute's tick) evaluates every route and
/// samples the process's memory; otherwise only the routes with news are evaluated. A panic in
/// a watcher is counted and logged; the batch goes on to the sink all the same.
fn watch<K: Sink>(
    sink: &K,
    mut watchers: Option<&mut Watchers>,
    mut fleet: Option<&mut FleetWatch>,
    shared: &Shared,
    batch: &mut Vec<Report>,
    warnings: &mut Warnings,
) {
    register(
        sink,
        watchers.as_deref_mut(),
        fleet.as_deref_mut(),
        shared,
        warnings,
    );
    let Some(watchers) = watchers else {
        return;
    };
    // In a fleet, this instance's alerts name it; its route alerts open only while the fleet
    // view is stale.
    let open = fleet.as_ref().is_none_or(|f| f.stale());
    let instance = fleet.as_ref().map(|f| f.instance());
    let observe = || {
        let now = Instant::now();
        watchers.observe(batch, now);
        let before = batch.len();
        watchers.evaluate(now, before == 0, open, batch);
        for report in &mut batch[before..] {
            if let Report::Alert(alert) = report {
                alert.instance = instance.cloned();
            }
        }
        let raised = (batch.len() - before) as u64;
        shared.counters.alerts.fetch_add(raised, Relaxed);
    };
    guarded(
        observe,
        &shared.counters.watcher_panics,
        "a watcher",
        warnings,
    );
}

async fn deliver<K: Sink>(
    sink: &K,
    batch: &mut Vec<Report>,
    shared: &Shared,
    config: &Config,
    warnings: &mut Warnings,
) {
    let n = batch.len() as u64;
    let counters = &shared.counters;
    // A panicking sink (or a Fanout's filter) loses its batch, not the worker.
    let send = AssertUnwindSafe(sink.send(batch)).catch_unwind();
    let result = tokio::time::timeout(config.sink_timeout, send).await;
    counters.batches.fetch_add(1, Relaxed);
    let failure = match result {
        Ok(Ok(Ok(()))) => {
            counters.sent.fetch_add(n, Relaxed);
            None
        }
        Ok(Ok(Err(error))) => Some(Failure::Error(error)),
        Ok(Err(panic)) => Some(Failure::Panic(panic)),
        Err(_) => Some(Failure::TimedOut),
    };
    if let Some(failure) = failure {
        counters.failed.fetch_add(n, Relaxed);
        match failure {
            Failure::Panic(panic) => caught(&*panic, &counters.sink_panics, "the sink", warnings),
            Failure::Error(error) if warnings.due() => tracing::warn!(
                target: "webhook_monitor::report",
                %error, reports = n, "sink failed; reports lost"
            ),
            Failure::TimedOut if warnings.due() => tracing::warn!(
                target: "webhook_monitor::report",
                timeout = ?config.sink_timeout, reports = n, "sink timed out; reports lost"
            ),
            Failure::Error(_) | Failure::TimedOut => {}
        }
    }
    batch.clear();
}

/// How a batch was lost.
enum Failure {
    Error(SinkError),
    Panic(Box<dyn std::any::Any + Send>),
    TimedOut,
}

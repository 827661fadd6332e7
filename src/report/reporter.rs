use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed},
        Arc, Mutex, PoisonError,
    },
    task::{Context, Poll},
    time::{Duration, SystemTime},
};

use tokio::{
    sync::{mpsc, oneshot, Notify},
    time::Instant,
};

use super::{worker, Report, Sink};
use crate::{
    policy::Clock,
    watch::{MemoryWatch, Registration, Watch},
};

/// The cheap, cloneable handle the layer reports through. Never blocks, never fails a request.
///
/// Create one with [`Reporter::spawn`] or [`Reporter::builder`]. See the
/// [module docs](crate::report) for an example.
#[derive(Clone)]
pub struct Reporter {
    tx: mpsc::Sender<Report>,
    shared: Arc<Shared>,
}

/// State shared by every [`Reporter`] clone and the worker.
pub(super) struct Shared {
    pub(super) counters: Counters,
    /// Wakes a lingering worker once `wake_at` reports are queued: the room left in the batch
    /// it is gathering, which the worker publishes before it lingers.
    pub(super) notify: Notify,
    pub(super) wake_at: AtomicUsize,
    /// Routes registered by layers, for the worker to pick up (see [`Reporter::watch_route`]).
    pub(super) registrations: Mutex<Vec<Registration>>,
    pub(super) registered: AtomicBool,
    /// Why the worker was told to stop: one of the `STOP_*` constants.
    stop: AtomicU8,
}

/// The worker was not told to stop (if it is gone, its task was aborted or its runtime shut
/// down).
const STOP_NONE: u8 = 0;
/// The guard was dropped without `shutdown`.
const STOP_GUARD_DROPPED: u8 = 1;
/// `ReporterGuard::shutdown` was called.
const STOP_SHUTDOWN: u8 = 2;

impl Shared {
    /// The counters, with the queue's depth as the caller sees it.
    pub(super) fn stats(&self, queue_depth: usize) -> ReporterStats {
        let c = &self.counters;
        ReporterStats {
            enqueued: c.enqueued.load(Relaxed),
            dropped_full: c.dropped_full.load(Relaxed),
            dropped_closed: c.dropped_closed.load(Relaxed),
            sent: c.sent.load(Relaxed),
            failed: c.failed.load(Relaxed),
            batches: c.batches.load(Relaxed),
            alerts: c.alerts.load(Relaxed),
            sink_panics: c.sink_panics.load(Relaxed),
            watcher_panics: c.watcher_panics.load(Relaxed),
            queue_depth,
        }
    }
}

#[derive(Default)]
pub(super) struct Counters {
    enqueued: AtomicU64,
    dropped_full: AtomicU64,
    dropped_closed: AtomicU64,
    pub(super) sent: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) batches: AtomicU64,
    pub(super) alerts: AtomicU64,
    pub(super) sink_panics: AtomicU64,
    pub(super) watcher_panics: AtomicU64,
}

impl Reporter {
    /// Spawns a worker with the default settings onto the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (as [`tokio::spawn`] does).
    pub fn spawn(sink: impl Sink) -> (Self, ReporterGuard) {
        Self::builder().spawn(sink)
    }

    /// A builder to set the queue, batching and sink timeout.
    pub fn builder() -> ReporterBuilder {
        ReporterBuilder::default()
    }

    /// Queues a report for the worker without waiting.
    ///
    /// When the queue is full, or the worker has stopped, the report is dropped and counted in
    /// [`ReporterStats::dropped_full`] or [`ReporterStats::dropped_closed`].
    pub fn try_report(&self, report: Report) {
        let counters = &self.shared.counters;
        match self.tx.try_send(report) {
            Ok(()) => {
                counters.enqueued.fetch_add(1, Relaxed);
                // Exactly at the threshold, so that one crossing wakes the worker once. A crossing
                // missed by racing senders only costs the linger delay.
                let queued = self.tx.max_capacity() - self.tx.capacity();
                if queued == self.shared.wake_at.load(Relaxed) {
                    self.shared.notify.notify_one();
                }
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                counters.dropped_full.fetch_add(1, Relaxed);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                if counters.dropped_closed.fetch_add(1, Relaxed) == 0 {
                    self.warn_closed();
                }
            }
        }
    }

    /// Says, once, why reports are being dropped: a worker that stopped drops every report
    /// from then on, which must not go unnoticed.
    #[cold]
    fn warn_closed(&self) {
        match self.shared.stop.load(Relaxed) {
            STOP_GUARD_DROPPED => tracing::warn!(
                "webhook-monitor: dropping reports: the reporter's worker stopped because its \
                 ReporterGuard was dropped (bound to `_`?). Keep the guard until shutdown \
                 (`let (reporter, _guard) = …`) and call `guard.shutdown(..)` at exit. Further \
                 drops are counted in `Reporter::stats().dropped_closed`"
            ),
            STOP_SHUTDOWN => tracing::warn!(
                "webhook-monitor: dropping reports: the reporter was shut down while deliveries \
                 were still being handled (stop serving before `ReporterGuard::shutdown`). \
                 Further drops are counted in `Reporter::stats().dropped_closed`"
            ),
            _ => tracing::warn!(
                "webhook-monitor: dropping reports: the reporter's worker is gone (its task was \
                 aborted, or its runtime shut down). Further drops are counted in \
                 `Reporter::stats().dropped_closed`"
            ),
        }
    }

    /// Has the worker watch `route` with `watch`, from now on: silence is counted from this
    /// call. The layer calls it for its policy's route when it is built.
    pub(crate) fn watch_route(&self, route: Arc<str>, watch: Watch, budget: Option<Duration>) {
        let registration = Registration {
            route,
            watch,
            budget,
            at: Instant::now(),
        };
        let shared = &self.shared;
        let mut pending = shared
            .registrations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        pending.push(registration);
        shared.registered.store(true, Relaxed);
    }

    /// The reporter's own counters: monitor the monitor.
    pub fn stats(&self) -> ReporterStats {
        self.shared
            .stats(self.tx.max_capacity() - self.tx.capacity())
    }
}

impl fmt::Debug for Reporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reporter")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Counters of a [`Reporter`], from [`Reporter::stats`].
///
/// Every report handed to [`Reporter::try_report`] is counted exactly once in `enqueued`,
/// `dropped_full` or `dropped_closed`; every enqueued report, and every alert and health report,
/// ends in `sent` or `failed`, or is still queued (`queue_depth`) or in the batch being sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReporterStats {
    /// Reports accepted into the queue.
    pub enqueued: u64,
    /// Reports dropped because the queue was full.
    pub dropped_full: u64,
    /// Reports dropped because the worker had stopped: after
    /// [`ReporterGuard::shutdown`], after the guard was dropped (bound to `_`, say), or after
    /// the worker's task was aborted. The first one is also logged, with its cause.
    pub dropped_closed: u64,
    /// Reports the sink accepted.
    pub sent: u64,
    /// Reports in batches the sink failed on, timed out on, or panicked on.
    pub failed: u64,
    /// Batches handed to the sink.
    pub batches: u64,
    /// Alerts the [watchers](crate::watch) opened or resolved. They travel in the batches, and
    /// are counted in `sent` or `failed` too.
    pub alerts: u64,
    /// Times the sink panicked: in [`Sink::send`] (its batch is counted in `failed`; a
    /// [`Fanout`](super::Fanout)'s filters run there too), [`Sink::health`] or [`Sink::close`].
    /// The worker catches the panic, logs it at most once per 10 s, and carries on.
    pub sink_panics: u64,
    /// Times the [watchers](crate::watch) panicked on a batch (a bug in this crate: please
    /// report it). The batch still goes to the sink, without the alerts that run would have
    /// raised.
    pub watcher_panics: u64,
    /// Reports waiting in the queue now.
    pub queue_depth: usize,
}

/// Settings for a [`Reporter`] and its worker.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use webhook_monitor::report::{Reporter, TracingSink};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (reporter, guard, worker) = Reporter::builder()
///     .queue_capacity(16_384)
///     .batch_size(1000)
///     .sink_timeout(Duration::from_secs(2))
///     .pair(TracingSink::new());
/// tokio::spawn(worker); // or hand it to your own task tracker
/// # drop(reporter);
/// # guard.shutdown(Duration::from_secs(1)).await.unwrap();
/// # }
/// ```
#[derive(Clone)]
pub struct ReporterBuilder {
    queue_capacity: usize,
    batch_size: usize,
    linger: Duration,
    sink_timeout: Duration,
    health_interval: Option<Duration>,
    clock: Option<Clock>,
    watch: bool,
    memory: MemoryWatch,
    #[cfg(feature = "redis")]
    fleet: Option<crate::watch::Fleet>,
}

impl Default for ReporterBuilder {
    fn default() -> Self {
        Self {
            queue_capacity: ReporterBuilder::DEFAULT_QUEUE_CAPACITY,
            batch_size: ReporterBuilder::DEFAULT_BATCH_SIZE,
            linger: ReporterBuilder::DEFAULT_LINGER,
            sink_timeout: ReporterBuilder::DEFAULT_SINK_TIMEOUT,
            health_interval: Some(ReporterBuilder::DEFAULT_HEALTH_INTERVAL),
            clock: None,
            watch: true,
            memory: MemoryWatch::default(),
            #[cfg(feature = "redis")]
            fleet: None,
        }
    }
}

impl fmt::Debug for ReporterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReporterBuilder")
            .field("queue_capacity", &self.queue_capacity)
            .field("batch_size", &self.batch_size)
            .field("linger", &self.linger)
            .field("sink_timeout", &self.sink_timeout)
            .field("health_interval", &self.health_interval)
            .field("clock", &self.clock.as_ref().map(|_| "custom"))
            .field("memory", &self.memory)
            .finish()
    }
}

impl ReporterBuilder {
    /// Default [`queue_capacity`](Self::queue_capacity): 8192 reports.
    pub const DEFAULT_QUEUE_CAPACITY: usize = 8192;
    /// Default [`batch_size`](Self::batch_size): 512 reports.
    pub const DEFAULT_BATCH_SIZE: usize = 512;
    /// Default [`linger`](Self::linger): 5 ms.
    pub const DEFAULT_LINGER: Duration = Duration::from_millis(5);
    /// Default [`sink_timeout`](Self::sink_timeout): 75 s, so that an HTTP sink on the
    /// defaults (feature `http`) can retry for its whole retry window (60 s) plus one last
    /// attempt (10 s) before its batch counts as failed.
    pub const DEFAULT_SINK_TIMEOUT: Duration = Duration::from_secs(75);
    /// Default [`health_interval`](Self::health_interval): 60 s.
    pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(60);

    /// How many reports may wait for the worker. Past it, reports are dropped and counted.
    /// Size it as the reports per second you expect times the longest sink stall you want to
    /// absorb. Defaults to [`Self::DEFAULT_QUEUE_CAPACITY`]. Values below 1 are raised to 1.
    #[must_use]
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// The most reports handed to the sink at once; once this many are queued, a lingering
    /// worker wakes early. Defaults to [`Self::DEFAULT_BATCH_SIZE`]. Values below 1 are raised
    /// to 1.
    #[must_use]
    pub fn batch_size(mut self, size: usize) -> Self {
        self.batch_size = size.max(1);
        self
    }

    /// How long the worker waits, after the first report of a batch, for more to gather.
    /// Bounds the delay a report sees before its sink gets it. Defaults to
    /// [`Self::DEFAULT_LINGER`]; zero sends whatever is queued at once.
    #[must_use]
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// How long one [`Sink::send`] may take before its batch counts as failed. Defaults to
    /// [`Self::DEFAULT_SINK_TIMEOUT`].
    #[must_use]
    pub fn sink_timeout(mut self, timeout: Duration) -> Self {
        self.sink_timeout = timeout;
        self
    }

    /// How often the worker sends a [`HealthReport`](super::HealthReport) (its own counters and
    /// each sink's [`health`](Sink::health)) to the sink; `None` sends none. Defaults to
    /// [`Self::DEFAULT_HEALTH_INTERVAL`]. The first is sent one interval after the start.
    #[must_use]
    pub fn health_interval(mut self, interval: Option<Duration>) -> Self {
        self.health_interval = interval.filter(|i| !i.is_zero());
        self
    }

    /// The wall clock alerts are stamped with and [quiet hours](crate::watch::QuietHours) are
    /// read from. Defaults to [`SystemTime::now`].
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::{Duration, SystemTime, UNIX_EPOCH};
    /// use webhook_monitor::report::{Reporter, TracingSink};
    ///
    /// // In a test with a paused tokio clock: a wall clock that starts on a Monday at 09:00 UTC
    /// // and follows tokio's time.
    /// let start = tokio::time::Instant::now();
    /// let monday = UNIX_EPOCH + Duration::from_secs(4 * 86_400 + 9 * 3600);
    /// let builder = Reporter::builder().clock(move || monday + start.elapsed());
    /// # let _ = builder;
    /// ```
    #[must_use]
    pub fn clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// The [memory watch](MemoryWatch): the worker samples the process's resident memory once
    /// a minute and raises [`MemoryGrowth`](crate::watch::AlertKind::MemoryGrowth) when it
    /// keeps growing. Defaults to [`MemoryWatch::default()`]: on, a 30-minute window, 64 MiB
    /// and 25 % of growth held for 3 minutes; [`MemoryWatch::off()`] turns it off.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use webhook_monitor::{report::Reporter, watch::MemoryWatch};
    ///
    /// // A process that holds large caches on purpose: only a gigabyte more is news.
    /// let builder = Reporter::builder().memory_watch(MemoryWatch::default().growth(1 << 30, 0.5));
    /// # let _ = builder;
    /// ```
    #[must_use]
    pub fn memory_watch(mut self, memory: MemoryWatch) -> Self {
        self.memory = memory;
        self
    }

    /// Makes this reporter one instance of a fleet (feature `redis`): its route watchers'
    /// alerts are left to the [fleet watchers](crate::watch::Fleet), evaluated on the whole
    /// fleet's traffic by the one instance that holds their lease in Redis, and its health
    /// reports carry its [`FleetHealth`](super::FleetHealth).
    ///
    /// The worker then sends a heartbeat and renews or tries to take the lease every third of
    /// the lease's TTL; holding it, it evaluates the fleet watchers as often and sends their
    /// alerts through its sink. Its own watchers keep running on its own traffic, and open
    /// alerts only while the fleet view is stale (Redis unreachable for the lease's TTL), so
    /// that a Redis outage does not silence them; those resolve as usual. Alerts it raises
    /// itself carry its id in [`Alert::instance`](crate::watch::Alert::instance). On
    /// shutdown it releases the lease, so that another instance takes over at its next tick.
    ///
    /// The fleet's figures come from a [`RedisHistory`](crate::history::RedisHistory) every
    /// instance writes: put it in this reporter's sink (alone or in a
    /// [`Fanout`](super::Fanout)).
    ///
    /// # Example
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use webhook_monitor::{history::RedisHistory, report::{Fanout, Reporter, TracingSink}};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let history = RedisHistory::builder().connect("redis://127.0.0.1:6379/").await?;
    /// let sink = Fanout::new().sink("log", TracingSink::new()).sink("fleet", history.clone());
    /// let (reporter, guard) = Reporter::builder().fleet(history.fleet()).spawn(sink);
    /// # drop(reporter);
    /// # guard.shutdown(Duration::from_secs(5)).await?;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    #[must_use]
    pub fn fleet(mut self, fleet: crate::watch::Fleet) -> Self {
        self.fleet = Some(fleet);
        self
    }

    /// A worker that only batches into its sink: no watchers, no health reports. The per-sink
    /// workers of a [`Fanout`](super::Fanout) are these.
    pub(super) fn plain(mut self) -> Self {
        self.watch = false;
        self.health_interval = None;
        #[cfg(feature = "redis")]
        {
            self.fleet = None;
        }
        self
    }

    /// Builds the reporter and spawns its worker onto the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (as [`tokio::spawn`] does).
    pub fn spawn(self, sink: impl Sink) -> (Reporter, ReporterGuard) {
        let (reporter, guard, worker) = self.pair(sink);
        tokio::spawn(worker);
        (reporter, guard)
    }

    /// Builds the reporter and returns its worker future for you to spawn.
    ///
    /// Nothing is sent until the worker runs. It ends once the guard is shut down or dropped, or
    /// once every [`Reporter`] is dropped, after draining the queue.
    pub fn pair(self, sink: impl Sink) -> (Reporter, ReporterGuard, ReporterWorker) {
        let (tx, rx) = mpsc::channel(self.queue_capacity);
        let (stop_tx, stop_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let shared = Arc::new(Shared {
            counters: Counters::default(),
            notify: Notify::new(),
            wake_at: AtomicUsize::new(self.batch_size),
            registrations: Mutex::new(Vec::new()),
            registered: AtomicBool::new(false),
            stop: AtomicU8::new(STOP_NONE),
        });
        let config = worker::Config {
            batch_size: self.batch_size,
            linger: self.linger,
            sink_timeout: self.sink_timeout,
            health_interval: self.health_interval,
            watch: self.watch,
            memory: self.memory,
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemTime::now)),
            #[cfg(feature = "redis")]
            fleet: self
                .fleet
                .filter(|_| self.watch)
                .map(crate::watch::FleetWatch::new),
            #[cfg(not(feature = "redis"))]
            fleet: None,
        };
        let worker = worker::run(sink, rx, stop_rx, done_tx, Arc::clone(&shared), config);
        let reporter = Reporter { tx, shared };
        let guard = ReporterGuard {
            stop: Some(stop_tx),
            done: Some(done_rx),
            shared: Arc::clone(&reporter.shared),
        };
        let worker = ReporterWorker {
            inner: Box::pin(worker),
        };
        (reporter, guard, worker)
    }
}

/// The reporter's worker, from [`ReporterBuilder::pair`]: spawn it on a tokio runtime.
#[must_use = "the worker does nothing unless spawned or awaited"]
pub struct ReporterWorker {
    inner: Pin<Box<dyn Future<Output = ()> + Send + 'static>>,
}

impl Future for ReporterWorker {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.inner.as_mut().poll(cx)
    }
}

impl fmt::Debug for ReporterWorker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReporterWorker").finish_non_exhaustive()
    }
}

/// Stops the reporter's worker. [`shutdown`](Self::shutdown) waits for the queue to drain.
///
/// Dropping the guard stops the worker without waiting: it still sends what is queued, but
/// nobody waits for it, and every report after that is dropped. Binding the guard to `_`
/// (`let (reporter, _) = …`) drops it at once; bind it to a name
/// (`let (reporter, _guard) = …`) to keep the reporter running. A reporter whose guard was
/// dropped says so in a warning (`tracing`) at the first report it drops, and counts every
/// one in [`ReporterStats::dropped_closed`].
#[must_use = "dropping the guard stops the reporter's worker"]
pub struct ReporterGuard {
    /// Carries when `shutdown` stops waiting (`None`: nobody waits).
    stop: Option<oneshot::Sender<Option<Instant>>>,
    done: Option<oneshot::Receiver<worker::Closed>>,
    /// Where the guard says why the worker stops.
    shared: Arc<Shared>,
}

impl ReporterGuard {
    /// Stops accepting reports, sends every queued one, closes the sink, and waits at most
    /// `timeout` for that.
    ///
    /// Reports offered after this call are dropped and counted in
    /// [`ReporterStats::dropped_closed`]. The sink's [`close`](super::Sink::close) is cut short
    /// at the timeout: a [`Fanout`](super::Fanout) closes its entries together, within it.
    ///
    /// # Errors
    ///
    /// [`ShutdownError::TimedOut`] when the queue was not drained in time (a slow or hung
    /// sink): the worker keeps draining in the background. [`ShutdownError::WorkerGone`] when
    /// the worker had already gone without draining (its task was aborted or dropped with its
    /// runtime): what was queued is lost.
    pub async fn shutdown(mut self, timeout: Duration) -> Result<(), ShutdownError> {
        self.shared.stop.store(STOP_SHUTDOWN, Relaxed);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(Instant::now().checked_add(timeout));
        }
        let Some(done) = self.done.take() else {
            return Ok(());
        };
        match tokio::time::timeout(timeout, done).await {
            Ok(Ok(worker::Closed::Drained)) => Ok(()),
            Ok(Ok(worker::Closed::CutShort)) => Err(ShutdownError::TimedOut),
            // The worker was dropped without signalling that it drained.
            Ok(Err(_)) => Err(ShutdownError::WorkerGone),
            Err(_) => Err(ShutdownError::TimedOut),
        }
    }
}

impl Drop for ReporterGuard {
    fn drop(&mut self) {
        // Signal only: blocking here would stall a runtime thread, or deadlock a current_thread
        // runtime whose worker task could never run.
        if let Some(stop) = self.stop.take() {
            self.shared.stop.store(STOP_GUARD_DROPPED, Relaxed);
            let _ = stop.send(None);
        }
    }
}

impl fmt::Debug for ReporterGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReporterGuard").finish_non_exhaustive()
    }
}

/// Why [`ReporterGuard::shutdown`] could not confirm that every queued report was handled.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use webhook_monitor::report::{MemorySink, Reporter, ShutdownError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (reporter, guard) = Reporter::spawn(MemorySink::new());
/// # drop(reporter);
/// match guard.shutdown(Duration::from_secs(5)).await {
///     Ok(()) => {}
///     Err(ShutdownError::TimedOut) => eprintln!("the sink is slow; it goes on in the background"),
///     Err(e) => eprintln!("reports were lost: {e}"),
/// }
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShutdownError {
    /// The queue was not drained within the time given (a slow or hung sink). The worker keeps
    /// draining in the background.
    TimedOut,
    /// The worker was gone before it drained the queue: its task was aborted, or dropped when
    /// its runtime shut down. What was queued is lost.
    WorkerGone,
}

impl fmt::Display for ShutdownError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TimedOut => "reporter shutdown timed out",
            Self::WorkerGone => "the reporter's worker was gone before it drained its queue",
        })
    }
}

impl std::error::Error for ShutdownError {}

//! [`Fanout`]: several sinks at once, each with its own queue, batching and filter.

use std::{
    borrow::Cow,
    fmt,
    sync::{Arc, Mutex, OnceLock, PoisonError},
    time::Duration,
};

use super::{RouteInfo, Sink, SinkError, SinkHealth};
use crate::report::{Report, Reporter, ReporterBuilder, ReporterGuard};

/// Several sinks at once: each gets the reports its filter lets through, in its own bounded
/// queue, drained by its own worker task in batches of its own size.
///
/// A slow or dead sink never holds up the others: its queue fills, and what does not fit is
/// dropped and counted in its [`health`](Sink::health) entry (`dropped`). Every entry's
/// counters travel in the reporter's periodic [health report](crate::report::HealthReport),
/// which goes to every sink whose filter lets health reports through: a sink that keeps
/// failing is seen through the others. Each entry's worker logs its sink's failures at most
/// once per 10 s.
///
/// [`send`](Sink::send) never waits: it queues clones of the reports for each entry. At
/// shutdown, [`close`](Sink::close) drains every entry's queue into its sink.
///
/// Building a `Fanout` needs no runtime: each entry's worker is spawned at the first batch,
/// on the runtime of the reporter's worker.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use webhook_monitor::report::{Fanout, JsonLinesSink, Reporter, SinkOptions, TracingSink};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let sink = Fanout::new()
///     .sink("log", TracingSink::new())
///     // Alerts only, one at a time, to another destination.
///     .sink_with(
///         "alerts",
///         JsonLinesSink::new(std::io::stderr()),
///         SinkOptions::new().alerts_only().batch_size(1),
///     );
/// let (reporter, guard) = Reporter::spawn(sink);
/// # drop(reporter);
/// guard.shutdown(Duration::from_secs(5)).await.expect("drained");
/// # }
/// ```
#[derive(Default)]
pub struct Fanout {
    entries: Vec<Entry>,
}

struct Entry {
    name: Cow<'static, str>,
    filter: Option<Filter>,
    /// The sink, for what the worker asks of it directly: its counters and the routes.
    sink: Arc<dyn SyncParts>,
    /// Started by the first batch (or by `close`), inside the reporter worker's runtime.
    worker: OnceLock<EntryWorker>,
    start: Box<dyn Fn() -> EntryWorker + Send + Sync>,
}

/// The synchronous part of [`Sink`], which is object-safe.
trait SyncParts: Send + Sync {
    fn health(&self) -> Vec<SinkHealth>;
    fn register_routes(&self, routes: &[RouteInfo]);
}

impl<S: Sink> SyncParts for S {
    fn health(&self) -> Vec<SinkHealth> {
        Sink::health(self)
    }

    fn register_routes(&self, routes: &[RouteInfo]) {
        Sink::register_routes(self, routes);
    }
}

/// An entry's running worker.
struct EntryWorker {
    reporter: Reporter,
    guard: Mutex<Option<ReporterGuard>>,
}

type Filter = Arc<dyn Fn(&Report) -> bool + Send + Sync>;

/// How a [`Fanout`] feeds one of its sinks: filter, queue, batching and timeout.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use webhook_monitor::report::SinkOptions;
///
/// // A backend that takes batches of 500, retries for up to a minute, and may be down for a
/// // while: up to 100,000 reports wait for it.
/// let options = SinkOptions::new()
///     .batch_size(500)
///     .linger(Duration::from_secs(1))
///     .queue_capacity(100_000)
///     .timeout(Duration::from_secs(90));
/// # let _ = options;
/// ```
#[derive(Clone, Default)]
pub struct SinkOptions {
    builder: ReporterBuilder,
    filter: Option<Filter>,
}

impl SinkOptions {
    /// The defaults: every report, a queue of
    /// [`DEFAULT_QUEUE_CAPACITY`](ReporterBuilder::DEFAULT_QUEUE_CAPACITY), batches of up to
    /// [`DEFAULT_BATCH_SIZE`](ReporterBuilder::DEFAULT_BATCH_SIZE) gathered for up to
    /// [`DEFAULT_LINGER`](ReporterBuilder::DEFAULT_LINGER), and
    /// [`DEFAULT_SINK_TIMEOUT`](ReporterBuilder::DEFAULT_SINK_TIMEOUT) per batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only the reports `filter` accepts reach the sink.
    #[must_use]
    pub fn filter(mut self, filter: impl Fn(&Report) -> bool + Send + Sync + 'static) -> Self {
        self.filter = Some(Arc::new(filter));
        self
    }

    /// Only alerts reach the sink (for a pager or a chat channel).
    #[must_use]
    pub fn alerts_only(self) -> Self {
        self.filter(|r| matches!(r, Report::Alert(_)))
    }

    /// The most reports handed to the sink at once.
    #[must_use]
    pub fn batch_size(mut self, size: usize) -> Self {
        self.builder = self.builder.batch_size(size);
        self
    }

    /// How long a batch may gather after its first report before it is sent: the entry's
    /// [`ReporterBuilder::linger`]. Defaults to
    /// [`DEFAULT_LINGER`](ReporterBuilder::DEFAULT_LINGER).
    #[must_use]
    pub fn linger(mut self, linger: Duration) -> Self {
        self.builder = self.builder.linger(linger);
        self
    }

    /// How many reports may wait for the sink; past it they are dropped and counted. This is
    /// the buffer that holds reports while a backend is down.
    #[must_use]
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.builder = self.builder.queue_capacity(capacity);
        self
    }

    /// How long one batch may take (with its retries) before it counts as failed. Raise it for
    /// a sink that retries for longer.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.builder = self.builder.sink_timeout(timeout);
        self
    }
}

impl fmt::Debug for SinkOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinkOptions")
            .field("builder", &self.builder)
            .field("filtered", &self.filter.is_some())
            .finish()
    }
}

impl Fanout {
    /// No sinks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `sink`, named `name` in health reports and logs, with the default
    /// [`SinkOptions`].
    #[must_use]
    pub fn sink(self, name: impl Into<Cow<'static, str>>, sink: impl Sink) -> Self {
        self.sink_with(name, sink, SinkOptions::new())
    }

    /// Adds `sink`, named `name` in health reports and logs, fed as `options` say.
    #[must_use]
    pub fn sink_with(
        mut self,
        name: impl Into<Cow<'static, str>>,
        sink: impl Sink,
        options: SinkOptions,
    ) -> Self {
        let sink = Arc::new(sink);
        let inner = Arc::clone(&sink);
        let builder = options.builder.plain();
        let start = move || {
            let (reporter, guard) = builder.clone().spawn(Arc::clone(&sink));
            EntryWorker {
                reporter,
                guard: Mutex::new(Some(guard)),
            }
        };
        self.entries.push(Entry {
            name: name.into(),
            filter: options.filter,
            sink: inner,
            worker: OnceLock::new(),
            start: Box::new(start),
        });
        self
    }
}

impl Entry {
    /// The entry's worker, spawned on first use: only ever from the reporter's worker (`send`,
    /// `close`), which runs in a tokio runtime.
    fn worker(&self) -> &EntryWorker {
        self.worker.get_or_init(|| (self.start)())
    }

    /// The sink's own counters, with what its queue holds and dropped added to the first; or,
    /// for a sink without counters, the queue's.
    fn health(&self) -> Vec<SinkHealth> {
        let stats = self
            .worker
            .get()
            .map(|w| w.reporter.stats())
            .unwrap_or_default();
        let dropped = stats.dropped_full + stats.dropped_closed;
        let queued = stats.queue_depth as u64;
        let mut health = self.sink.health();
        match health.first_mut() {
            Some(first) => {
                first.accepted += dropped + queued;
                first.dropped += dropped;
                first.queued += queued;
                first.panics += stats.sink_panics;
            }
            None => {
                let mut entry = SinkHealth::new(self.name.clone());
                entry.accepted = stats.enqueued + dropped;
                entry.sent = stats.sent;
                entry.failed = stats.failed;
                entry.dropped = dropped;
                entry.queued = queued;
                entry.panics = stats.sink_panics;
                health.push(entry);
            }
        }
        health
    }
}

impl Sink for Fanout {
    async fn send(&self, batch: &[Report]) -> Result<(), SinkError> {
        for entry in &self.entries {
            let reporter = &entry.worker().reporter;
            for report in batch {
                if entry.filter.as_ref().is_none_or(|accepts| accepts(report)) {
                    reporter.try_report(report.clone());
                }
            }
        }
        Ok(())
    }

    fn health(&self) -> Vec<SinkHealth> {
        self.entries.iter().flat_map(Entry::health).collect()
    }

    /// Every entry's sink learns the routes, whatever its filter.
    fn register_routes(&self, routes: &[RouteInfo]) {
        self.entries
            .iter()
            .for_each(|entry| entry.sink.register_routes(routes));
    }

    /// Stops every entry's worker at once and waits for them all to drain: a hung sink holds
    /// up no other. The reporter's own shutdown timeout bounds the whole close.
    async fn close(&self) {
        // An entry that never got a batch starts now, so that its sink is closed all the same.
        let guards = self.entries.iter().filter_map(|entry| {
            entry
                .worker()
                .guard
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
        });
        let closing = guards.map(|guard| guard.shutdown(Duration::MAX));
        futures_util::future::join_all(closing).await;
    }
}

impl fmt::Debug for Fanout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.entries.iter().map(|e| &*e.name).collect();
        f.debug_struct("Fanout").field("sinks", &names).finish()
    }
}

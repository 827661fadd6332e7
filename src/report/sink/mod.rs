//! Where batches of reports go: the [`Sink`] trait and the embedded sinks.

mod fanout;
mod json_lines;
mod memory;
#[cfg(feature = "metrics")]
mod metrics;
mod tracing;

use std::{borrow::Cow, fmt, future::Future, time::Duration};

#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use self::metrics::MetricsSink;
pub use self::tracing::TracingSink;
pub use fanout::{Fanout, SinkOptions};
pub use json_lines::JsonLinesSink;
pub use memory::MemorySink;

use super::Report;
use crate::BoxError;

/// A destination for batches of reports.
///
/// The reporter's worker calls [`send`](Self::send) with one batch at a time, never
/// concurrently, and bounds each call with its
/// [`sink_timeout`](super::ReporterBuilder::sink_timeout). A failed or timed-out batch is counted
/// in [`ReporterStats::failed`](super::ReporterStats::failed) and logged at most once per 10 s.
///
/// # Example
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use webhook_monitor::report::{Report, Sink, SinkError};
///
/// #[derive(Default)]
/// struct CountFailures(AtomicU64);
///
/// impl Sink for CountFailures {
///     async fn send(&self, batch: &[Report]) -> Result<(), SinkError> {
///         let failed = batch
///             .iter()
///             .filter_map(Report::as_delivery)
///             .filter(|d| !d.outcome.is_success())
///             .count();
///         self.0.fetch_add(failed as u64, Ordering::Relaxed);
///         Ok(())
///     }
/// }
/// ```
pub trait Sink: Send + Sync + 'static {
    /// Sends one batch.
    fn send(&self, batch: &[Report]) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// The sink's own counters, for the reporter's periodic [health report](super::HealthReport):
    /// one entry per backend it feeds. Defaults to none: the reporter's counters then say
    /// everything (sent, failed).
    fn health(&self) -> Vec<SinkHealth> {
        Vec::new()
    }

    /// The routes layers were built for since the last call, with their timeout budgets: a
    /// sink that shows routes (a [`History`](crate::history::History)) knows them before their
    /// first delivery. The worker calls it before the batch that follows the layers' building.
    /// Defaults to nothing.
    fn register_routes(&self, routes: &[RouteInfo]) {
        let _ = routes;
    }

    /// Called once when the reporter stops, after its last batch: send what the sink still
    /// holds (a sink with its own queue or retry buffer), and return. The reporter's
    /// [`shutdown`](super::ReporterGuard::shutdown) timeout bounds it. Defaults to nothing.
    fn close(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// A shared sink: keep a handle to read it (its counters, what it holds) while the reporter
/// sends to it.
impl<S: Sink> Sink for std::sync::Arc<S> {
    fn send(&self, batch: &[Report]) -> impl Future<Output = Result<(), SinkError>> + Send {
        (**self).send(batch)
    }

    fn health(&self) -> Vec<SinkHealth> {
        (**self).health()
    }

    fn register_routes(&self, routes: &[RouteInfo]) {
        (**self).register_routes(routes);
    }

    fn close(&self) -> impl Future<Output = ()> + Send {
        (**self).close()
    }
}

/// A route a layer was built for, as [`Sink::register_routes`] hands it over.
///
/// # Example
///
/// ```
/// use std::sync::Mutex;
/// use webhook_monitor::report::{Report, RouteInfo, Sink, SinkError};
///
/// #[derive(Default)]
/// struct Budgets(Mutex<Vec<(String, Option<std::time::Duration>)>>);
///
/// impl Sink for Budgets {
///     async fn send(&self, _: &[Report]) -> Result<(), SinkError> {
///         Ok(())
///     }
///
///     fn register_routes(&self, routes: &[RouteInfo]) {
///         let mut budgets = self.0.lock().unwrap();
///         budgets.extend(routes.iter().map(|r| (r.name.to_string(), r.budget)));
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouteInfo {
    /// The route's name ([`Policy::name`](crate::Policy::name)).
    pub name: std::sync::Arc<str>,
    /// Its [timeout budget](crate::Policy::timeout_budget), if it has one.
    pub budget: Option<Duration>,
}

impl RouteInfo {
    /// The route `name`, with `budget`.
    pub fn new(name: impl Into<std::sync::Arc<str>>, budget: Option<Duration>) -> Self {
        Self {
            name: name.into(),
            budget,
        }
    }
}

/// One backend's counters, from [`Sink::health`].
///
/// `accepted` reports were handed to it; each ends as `sent`, `failed` (the backend refused
/// it, or the retry window ran out) or `dropped` (its buffer was full), or is still `queued`.
///
/// Deserializes from one entry of a health report's `sinks` (see
/// [`HealthReport`](super::HealthReport)).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SinkHealth {
    /// The backend's name, as in logs and reports (`"slack"`, `"seiri"`, a URL's host…).
    pub name: Cow<'static, str>,
    /// Reports handed to the backend.
    pub accepted: u64,
    /// Reports the backend took.
    pub sent: u64,
    /// Reports given up on: refused (a 4xx other than 429), or not delivered within the retry
    /// window.
    pub failed: u64,
    /// Reports dropped because the backend's buffer was full.
    pub dropped: u64,
    /// Reports waiting for the backend.
    pub queued: u64,
    /// Requests retried.
    pub retries: u64,
    /// Times the sink panicked (a [`Fanout`] entry's worker catches it and carries on; the
    /// batch is counted in `failed`).
    pub panics: u64,
    /// Failed attempts in a row, now: zero when the last attempt succeeded.
    pub consecutive_failures: u32,
    /// Whether the backend is considered down (a circuit breaker is open).
    pub down: bool,
    /// How long the last successful request took.
    pub latency: Option<Duration>,
}

impl SinkHealth {
    /// Counters for the backend `name`, all zero.
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}

/// A sink could not take a batch.
#[derive(Debug)]
pub struct SinkError {
    source: BoxError,
}

impl SinkError {
    /// Wraps the underlying error.
    pub fn new(source: impl Into<BoxError>) -> Self {
        Self {
            source: source.into(),
        }
    }
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sink failed to send a batch")
    }
}

impl std::error::Error for SinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

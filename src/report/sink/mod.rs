//! Where batches of reports go: the [`Sink`] trait and the embedded sinks.

mod json_lines;
mod memory;
mod tracing;

use std::{fmt, future::Future};

pub use self::tracing::TracingSink;
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

use std::{
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use tokio::sync::Notify;

use super::{Sink, SinkError};
use crate::report::Report;

/// Keeps every report in memory, for tests: yours and ours.
///
/// Clones share the same reports. Memory grows with every report: don't use it in production.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use webhook_monitor::report::{MemorySink, Reporter};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let sink = MemorySink::new();
/// let (reporter, guard) = Reporter::spawn(sink.clone());
/// // … send requests through a layer holding `reporter` …
/// # drop(reporter);
/// guard.shutdown(Duration::from_secs(5)).await.unwrap();
/// assert!(sink.reports().is_empty());
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    reports: Mutex<Vec<Report>>,
    arrived: Notify,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every report received so far.
    pub fn reports(&self) -> Vec<Report> {
        self.lock().clone()
    }

    /// How many reports were received so far.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// `true` when no report was received yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until at least `count` reports were received, or `timeout` passed, and returns a
    /// copy of them all. Check the length: after a timeout there are fewer.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Report> {
        let wait = async {
            loop {
                let arrived = self.inner.arrived.notified();
                if self.len() >= count {
                    return;
                }
                arrived.await;
            }
        };
        let _ = tokio::time::timeout(timeout, wait).await;
        self.reports()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Report>> {
        self.inner
            .reports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Sink for MemorySink {
    async fn send(&self, batch: &[Report]) -> Result<(), SinkError> {
        self.lock().extend_from_slice(batch);
        self.inner.arrived.notify_waiters();
        Ok(())
    }
}

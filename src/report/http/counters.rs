//! The counters behind a sink's [`SinkHealth`]: reports accepted, then settled as sent, failed
//! or dropped ([`Pending`] settles a request's reports), and retried requests.

use std::{
    borrow::Cow,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc,
    },
};

use crate::report::SinkHealth;

/// One sink's report counters.
#[derive(Default)]
pub(super) struct Counters {
    accepted: AtomicU64,
    sent: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    retries: AtomicU64,
}

impl Counters {
    /// Counts `n` reports the sink takes on.
    pub(super) fn accepted(&self, n: u64) {
        self.accepted.fetch_add(n, Relaxed);
    }

    /// Counts `n` accepted reports as dropped.
    pub(super) fn dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Relaxed);
    }

    /// Counts a retried request.
    pub(super) fn retried(&self) {
        self.retries.fetch_add(1, Relaxed);
    }

    /// `n` accepted reports to settle as sent or failed once their request ends.
    pub(super) fn pending(self: &Arc<Self>, n: u64) -> Pending {
        Pending {
            counters: Arc::clone(self),
            n,
        }
    }

    /// The counters of the sink `name`; the breaker's fields are left at zero.
    pub(super) fn health(&self, name: Cow<'static, str>) -> SinkHealth {
        // Not one snapshot: saturate `queued` rather than trust the loads' order.
        let (sent, failed, dropped) = (
            self.sent.load(Relaxed),
            self.failed.load(Relaxed),
            self.dropped.load(Relaxed),
        );
        let accepted = self.accepted.load(Relaxed);
        SinkHealth {
            accepted,
            sent,
            failed,
            dropped,
            queued: accepted.saturating_sub(sent + failed + dropped),
            retries: self.retries.load(Relaxed),
            ..SinkHealth::new(name)
        }
    }
}

/// Reports in flight: settled as sent or failed, or counted failed if dropped unsettled (the
/// `send` was cancelled, by the reporter's timeout for instance).
#[must_use = "unsettled reports count as failed when dropped"]
pub(super) struct Pending {
    counters: Arc<Counters>,
    n: u64,
}

impl Pending {
    pub(super) fn settle(mut self, delivered: bool) {
        let n = std::mem::take(&mut self.n);
        let counter = if delivered {
            &self.counters.sent
        } else {
            &self.counters.failed
        };
        counter.fetch_add(n, Relaxed);
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.counters.failed.fetch_add(self.n, Relaxed);
    }
}

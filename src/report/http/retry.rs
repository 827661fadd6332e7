//! [`RetryPolicy`]: how long a request is retried, the backoff with full jitter between its
//! attempts, and the settings of the circuit breaker.

use std::time::Duration;

/// Longer waits are this long: `Instant + Duration` must not overflow.
pub(super) const FOREVER: Duration = Duration::from_secs(100 * 365 * 86_400);

/// When to retry a request, and when to stop sending to a backend that keeps failing.
///
/// A failed attempt (no answer, `429` or `5xx`) is retried after the backend's `Retry-After`
/// when it sends one, otherwise after a random wait between zero and
/// `min(max_backoff, initial_backoff × 2^(retry − 1))` ("full jitter", so that many clients
/// do not retry in step). A request is given up when its next attempt would start after its
/// [`window`](Self::window), counted from its first attempt; a `Retry-After` past the window
/// gives it up at once.
///
/// After [`open_after`](Self::open_after) failed attempts in a row, the sink's circuit
/// breaker opens: no request for [`probe_after`](Self::probe_after), then one probe. An
/// answer closes it; a failure opens it again.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use webhook_monitor::report::http::RetryPolicy;
///
/// // Retry for up to 2 minutes; after 3 failures in a row, probe every 15 s.
/// let retry = RetryPolicy::default()
///     .max_backoff(Duration::from_secs(10))
///     .window(Duration::from_secs(120))
///     .open_after(3)
///     .probe_after(Duration::from_secs(15));
/// # let _ = retry;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    initial_backoff: Duration,
    max_backoff: Duration,
    pub(super) window: Duration,
    pub(super) open_after: u32,
    pub(super) probe_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Self::DEFAULT_INITIAL_BACKOFF,
            max_backoff: Self::DEFAULT_MAX_BACKOFF,
            window: Self::DEFAULT_WINDOW,
            open_after: Self::DEFAULT_OPEN_AFTER,
            probe_after: Self::DEFAULT_PROBE_AFTER,
        }
    }
}

impl RetryPolicy {
    /// Default [`initial_backoff`](Self::initial_backoff): 500 ms.
    pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(500);
    /// Default [`max_backoff`](Self::max_backoff): 30 s.
    pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);
    /// Default [`window`](Self::window): 60 s. With the transport's default attempt timeout
    /// (10 s), a batch's retries end within the reporter's default
    /// [`sink_timeout`](crate::report::ReporterBuilder::sink_timeout) (75 s).
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
    /// Default [`open_after`](Self::open_after): 5 failed attempts.
    pub const DEFAULT_OPEN_AFTER: u32 = 5;
    /// Default [`probe_after`](Self::probe_after): 30 s.
    pub const DEFAULT_PROBE_AFTER: Duration = Duration::from_secs(30);

    /// The cap of the first retry's wait; each retry doubles it, up to
    /// [`max_backoff`](Self::max_backoff). Defaults to [`Self::DEFAULT_INITIAL_BACKOFF`].
    #[must_use]
    pub fn initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// The largest wait between two attempts (a `Retry-After` may ask for more). Defaults to
    /// [`Self::DEFAULT_MAX_BACKOFF`].
    #[must_use]
    pub fn max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// How long a request is retried, from its first attempt; zero makes one attempt. Reports
    /// wait for it in the queue in front of the sink. Defaults to [`Self::DEFAULT_WINDOW`].
    #[must_use]
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Failed attempts in a row that open the circuit breaker. Defaults to
    /// [`Self::DEFAULT_OPEN_AFTER`]; values below 1 are raised to 1.
    #[must_use]
    pub fn open_after(mut self, failures: u32) -> Self {
        self.open_after = failures.max(1);
        self
    }

    /// How long an open breaker sends nothing before one request probes the backend.
    /// Defaults to [`Self::DEFAULT_PROBE_AFTER`].
    #[must_use]
    pub fn probe_after(mut self, wait: Duration) -> Self {
        self.probe_after = wait;
        self
    }

    /// The wait before retry number `retry` (1 for the first): full jitter under the
    /// exponential cap.
    pub(super) fn backoff(&self, retry: u32) -> Duration {
        let doubling = 2u32.saturating_pow(retry.saturating_sub(1));
        let cap = self
            .initial_backoff
            .saturating_mul(doubling)
            .min(self.max_backoff);
        cap.mul_f64(fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_cap() {
        let policy = RetryPolicy::default()
            .initial_backoff(Duration::from_millis(100))
            .max_backoff(Duration::from_millis(500));
        for (retry, cap) in [(1, 100), (2, 200), (3, 400), (4, 500), (40, 500)] {
            let waits: Vec<Duration> = (0..200).map(|_| policy.backoff(retry)).collect();
            let cap = Duration::from_millis(cap);
            assert!(waits.iter().all(|w| *w <= cap), "retry {retry}");
            // Spread over the whole range, not bunched near the cap.
            assert!(waits.iter().any(|w| *w < cap / 4), "retry {retry}");
            assert!(waits.iter().any(|w| *w > cap * 3 / 4), "retry {retry}");
        }
    }
}

use std::{
    collections::BTreeMap,
    fmt::{self, Write as _},
    sync::{Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use hashbrown::HashMap;
use reqwest::Url;
use tokio::time::Instant;

use super::{
    counters::Pending,
    delivered_fine, join, parse_url,
    transport::{Backend, Call},
    HttpSinkError, HttpTransport,
};
use crate::{
    report::{Report, Sink, SinkError, SinkHealth},
    Outcome,
};

/// Pings a Healthchecks.io-style monitor per route, at most once per interval, with a summary
/// of the deliveries since the last ping.
///
/// Such services expect a ping when a job ran, notice when pings stop, and drop (or refuse)
/// pings that come too fast. So deliveries are not forwarded one by one: the sink counts each
/// mapped route's deliveries by outcome, and pings the route's check at most once per
/// [`interval`](Self::interval):
///
/// ```text
/// POST {base}/{check}            when every delivery since the last ping was fine
/// POST {base}/{check}/fail       when at least one was not
/// Content-Type: text/plain; charset=utf-8
///
/// deliveries: 3 (failure=1 success=2)
/// ```
///
/// A delivery is fine when its outcome is `success` or `duplicate` (the same rule as
/// [`SeiriSink`](super::SeiriSink)'s pings). `{check}` is the check's uuid, or its slug when
/// `base` ends with the project's ping key (`https://hc-ping.com/<ping-key>`); it is
/// percent-encoded as one path segment. Routes without a check, alerts and health reports are
/// ignored (not counted as accepted). A route without deliveries is not pinged: its silence is
/// what the service alerts on.
///
/// # When pings go out
///
/// [`send`](Sink::send) runs only when the reporter has a batch, so pings are flushed there: a
/// route's first delivery is pinged at once, later ones on the first batch at least one
/// interval after the route's last ping. The reporter sends a health report every minute by
/// default ([`health_interval`](crate::report::ReporterBuilder::health_interval)), which
/// flushes due pings on quiet routes; keep it on, or pings can wait for the next delivery.
/// At shutdown, [`close`](Sink::close) pings the routes that are due; the deliveries of routes
/// pinged less than an interval before are not pinged, and are counted as dropped.
///
/// Deliveries waiting for their route's ping are `queued` in [`SinkHealth`] (named
/// `"healthchecks"`), then `sent` or `failed` with the ping.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use webhook_monitor::report::http::{HealthchecksSink, HttpTransport};
///
/// let transport = HttpTransport::builder().build()?;
/// let sink = HealthchecksSink::new(&transport, "https://hc-ping.com")?
///     .check("stripe", "5f3a2c1e-9f0b-4d7e-8a61-2b4c6d8e0f12")
///     .interval(Duration::from_secs(5 * 60));
/// # let _ = sink;
/// # Ok::<_, webhook_monitor::report::http::HttpSinkError>(())
/// ```
pub struct HealthchecksSink {
    backend: Backend,
    base: Url,
    interval: Duration,
    checks: Mutex<HashMap<String, Check>>,
}

/// One route's check and its deliveries since the last ping.
struct Check {
    id: String,
    by_outcome: BTreeMap<&'static str, u64>,
    held: u64,
    failed: bool,
    last_ping: Option<Instant>,
}

impl HealthchecksSink {
    /// Default [`interval`](Self::interval): 60 s.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

    /// A sink pinging checks under `base_url` (required: no service's URL is built in).
    ///
    /// # Errors
    ///
    /// [`HttpSinkError::InvalidUrl`] when `base_url` is not an absolute `http(s)` URL.
    pub fn new(transport: &HttpTransport, base_url: &str) -> Result<Self, HttpSinkError> {
        Ok(Self {
            backend: transport.backend("healthchecks"),
            base: parse_url(base_url)?,
            interval: Self::DEFAULT_INTERVAL,
            checks: Mutex::new(HashMap::new()),
        })
    }

    /// Pings `check` (a uuid or a slug) for the deliveries of `route` (a
    /// [`Policy`](crate::Policy)'s name).
    #[must_use]
    pub fn check(mut self, route: impl Into<String>, check: impl Into<String>) -> Self {
        let check = Check {
            id: check.into(),
            by_outcome: BTreeMap::new(),
            held: 0,
            failed: false,
            last_ping: None,
        };
        self.checks
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(route.into(), check);
        self
    }

    /// The least time between two pings of one route. Defaults to [`Self::DEFAULT_INTERVAL`].
    #[must_use]
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Counts `batch`'s deliveries, and returns the pings now due.
    fn due(&self, batch: &[Report]) -> Vec<(Call, Pending)> {
        let mut checks = self.lock();
        for d in batch.iter().filter_map(Report::as_delivery) {
            if let Some(check) = checks.get_mut(d.delivery.route()) {
                check.count(d.outcome);
                self.backend.accepted(1);
            }
        }
        let now = Instant::now();
        checks
            .values_mut()
            .filter(|c| c.held > 0 && c.last_ping.is_none_or(|at| now - at >= self.interval))
            .map(|check| {
                check.last_ping = Some(now);
                let mut summary = format!("deliveries: {} (", check.held);
                for (i, (outcome, n)) in std::mem::take(&mut check.by_outcome).iter().enumerate() {
                    let sep = if i == 0 { "" } else { " " };
                    let _ = write!(summary, "{sep}{outcome}={n}");
                }
                summary.push(')');
                let url = if std::mem::take(&mut check.failed) {
                    join(&self.base, &[&check.id, "fail"])
                } else {
                    join(&self.base, &[&check.id])
                };
                let pending = self.backend.pending(std::mem::take(&mut check.held));
                (
                    Call::post(url, "text/plain; charset=utf-8", summary),
                    pending,
                )
            })
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Check>> {
        self.checks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Check {
    fn count(&mut self, outcome: Outcome) {
        *self.by_outcome.entry(outcome.as_str()).or_default() += 1;
        self.held += 1;
        self.failed |= !delivered_fine(outcome);
    }
}

impl Sink for HealthchecksSink {
    async fn send(&self, batch: &[Report]) -> Result<(), SinkError> {
        let pings = self.due(batch);
        self.backend
            .deliver_all(pings)
            .await
            .map_err(SinkError::new)
    }

    fn health(&self) -> Vec<SinkHealth> {
        vec![self.backend.health()]
    }

    async fn close(&self) {
        let _ = self.send(&[]).await;
        let mut checks = self.lock();
        for check in checks.values_mut() {
            check.by_outcome.clear();
            check.failed = false;
            self.backend.dropped(std::mem::take(&mut check.held));
        }
    }
}

impl fmt::Debug for HealthchecksSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthchecksSink")
            .field("interval", &self.interval)
            .field("routes", &self.lock().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

//! [`MemoryHistory`]: the embedded history, kept in this process.

use std::{
    collections::{BTreeMap, VecDeque},
    fmt,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use super::{AlertLog, DeliveryFilter, History, HistoryError, Minute, Recorded, RouteEntry};
use crate::{
    report::{DeliveryReport, HealthReport, Report, RouteInfo, Sink, SinkError},
    watch::{Alert, AlertState},
};

/// The embedded [`History`]: a [`Sink`] that keeps recent deliveries, minute rollups, alerts
/// and health in this process, for the dashboard (feature `dashboard`).
///
/// Clones share the same history: give one to the reporter (or a
/// [`Fanout`](crate::report::Fanout)) and one to the dashboard.
///
/// # Bounds and memory
///
/// Per route, by default:
/// - the last [`DEFAULT_DELIVERIES`](Self::DEFAULT_DELIVERIES) (1,000) delivery reports, each
///   with the delivery record it shares with the handler (a few hundred bytes, plus its reason
///   and custom fields);
/// - the newest [`DEFAULT_RETENTION`](Self::DEFAULT_RETENTION) / 1 min minutes with traffic
///   (2,880: 48 h of a route with traffic every minute): 104 bytes each, plus 8 bytes per
///   latency bucket hit (16 buckets per doubling of
///   the spread of that minute's latencies).
///
/// Measured at those bounds (`benches/worker.rs`): **1.1 MB per route** with 1,000 Stripe-like
/// reports kept and 2,880 minutes of 5 deliveries each. A quiet route costs what it keeps.
/// Alerts: the open ones (at most one per route and kind) and the last
/// [`DEFAULT_RESOLVED`](Self::DEFAULT_RESOLVED) (200) resolved ones. Health: the latest report.
/// Routes are not bounded: they come from the policies in the code, not from requests.
///
/// Minutes are bounded by count, not by a clock: a report stamped in the future (a skewed
/// clock) costs one minute's room and never pushes the present out.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use webhook_monitor::{history::{History, MemoryHistory}, report::Reporter};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let history = MemoryHistory::builder()
///     .deliveries_per_route(200)
///     .retention(Duration::from_secs(24 * 3600))
///     .build();
/// let (reporter, guard) = Reporter::spawn(history.clone());
/// # drop(reporter);
/// guard.shutdown(Duration::from_secs(5)).await?;
/// assert!(history.alerts().await?.open.is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct MemoryHistory {
    inner: Arc<Inner>,
}

struct Inner {
    limits: Limits,
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    deliveries: usize,
    /// Minutes kept per route: the retention in minutes.
    minutes: usize,
    resolved: usize,
}

#[derive(Default)]
struct State {
    routes: BTreeMap<Arc<str>, RouteLog>,
    /// Newest first.
    open: Vec<Alert>,
    /// Newest first.
    resolved: VecDeque<Alert>,
    health: Option<HealthReport>,
}

#[derive(Default)]
struct RouteLog {
    budget: Option<Duration>,
    provider: Option<Arc<str>>,
    last_delivery: Option<SystemTime>,
    /// The id of the next delivery recorded.
    next_id: u64,
    /// Oldest first; ids are consecutive.
    deliveries: VecDeque<Recorded>,
    /// Oldest first; only minutes with traffic.
    minutes: VecDeque<Minute>,
}

impl MemoryHistory {
    /// Delivery reports kept per route by default.
    pub const DEFAULT_DELIVERIES: usize = 1000;
    /// How long minutes are kept by default: 48 hours.
    pub const DEFAULT_RETENTION: Duration = Duration::from_secs(48 * 3600);
    /// Resolved alerts kept by default.
    pub const DEFAULT_RESOLVED: usize = 200;

    /// An empty history with the default bounds.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder, to set the bounds.
    pub fn builder() -> MemoryHistoryBuilder {
        MemoryHistoryBuilder {
            limits: Limits {
                deliveries: Self::DEFAULT_DELIVERIES,
                minutes: minutes_in(Self::DEFAULT_RETENTION),
                resolved: Self::DEFAULT_RESOLVED,
            },
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `read` on `route`'s log, if there is one.
    fn read<T>(&self, route: &str, read: impl FnOnce(&RouteLog) -> T) -> Option<T> {
        self.lock().routes.get(route).map(read)
    }
}

impl Default for MemoryHistory {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryHistory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("MemoryHistory")
            .field("limits", &self.inner.limits)
            .field("routes", &state.routes.len())
            .field("open_alerts", &state.open.len())
            .finish_non_exhaustive()
    }
}

/// Sets a [`MemoryHistory`]'s bounds.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use webhook_monitor::history::MemoryHistory;
///
/// let history = MemoryHistory::builder()
///     .deliveries_per_route(5_000)
///     .retention(Duration::from_secs(7 * 24 * 3600))
///     .resolved_alerts(1_000)
///     .build();
/// # let _ = history;
/// ```
#[derive(Debug, Clone)]
pub struct MemoryHistoryBuilder {
    limits: Limits,
}

impl MemoryHistoryBuilder {
    /// Delivery reports kept per route; the oldest goes when a new one comes. Defaults to
    /// [`MemoryHistory::DEFAULT_DELIVERIES`].
    #[must_use]
    pub fn deliveries_per_route(mut self, count: usize) -> Self {
        self.limits.deliveries = count;
        self
    }

    /// How much of each route's minutes is kept: the newest `retention` / 1 min minutes with
    /// traffic (rounded up). Defaults to [`MemoryHistory::DEFAULT_RETENTION`].
    #[must_use]
    pub fn retention(mut self, retention: Duration) -> Self {
        self.limits.minutes = minutes_in(retention);
        self
    }

    /// Resolved alerts kept. Defaults to [`MemoryHistory::DEFAULT_RESOLVED`].
    #[must_use]
    pub fn resolved_alerts(mut self, count: usize) -> Self {
        self.limits.resolved = count;
        self
    }

    /// The history.
    pub fn build(self) -> MemoryHistory {
        MemoryHistory {
            inner: Arc::new(Inner {
                limits: self.limits,
                state: Mutex::default(),
            }),
        }
    }
}

impl State {
    fn route(&mut self, name: &str) -> &mut RouteLog {
        if !self.routes.contains_key(name) {
            self.routes.insert(name.into(), RouteLog::default());
        }
        self.routes
            .get_mut(name)
            .expect("inserted above when missing")
    }

    fn alert(&mut self, alert: &Alert, limits: &Limits) {
        self.open.retain(|a| {
            !(a.kind == alert.kind && a.route == alert.route && a.instance == alert.instance)
        });
        match alert.state {
            AlertState::Opened => self.open.insert(0, alert.clone()),
            AlertState::Resolved => {
                self.resolved.push_front(alert.clone());
                self.resolved.truncate(limits.resolved);
            }
        }
    }
}

impl RouteLog {
    fn record(&mut self, report: &DeliveryReport, limits: &Limits) {
        let delivery = &report.delivery;
        let received = delivery.received_at();
        if self.provider.as_deref() != delivery.provider() {
            self.provider = delivery.provider().map(Arc::from);
        }
        self.last_delivery = Some(self.last_delivery.map_or(received, |l| l.max(received)));
        if limits.deliveries > 0 {
            if self.deliveries.len() == limits.deliveries {
                self.deliveries.pop_front();
            }
            self.deliveries
                .push_back(Recorded::new(self.next_id, report.clone()));
            self.next_id += 1;
        }
        self.minute(minute_start(received)).record(report);
        if self.minutes.len() > limits.minutes {
            self.minutes.pop_front();
        }
    }

    /// The minute starting at `start`, made if missing. Reports arrive nearly in order: the
    /// search starts from the newest.
    fn minute(&mut self, start: SystemTime) -> &mut Minute {
        let after = self
            .minutes
            .iter()
            .rev()
            .take_while(|m| m.start > start)
            .count();
        let at = self.minutes.len() - after;
        if at == 0 || self.minutes[at - 1].start != start {
            self.minutes.insert(at, Minute::new(start));
            return &mut self.minutes[at];
        }
        &mut self.minutes[at - 1]
    }

    fn entry(&self, name: &Arc<str>) -> RouteEntry {
        RouteEntry {
            name: Arc::clone(name),
            provider: self.provider.clone(),
            budget: self.budget,
            last_delivery: self.last_delivery,
        }
    }
}

/// Whole minutes in `retention`, rounded up.
fn minutes_in(retention: Duration) -> usize {
    usize::try_from(retention.as_secs().div_ceil(60)).unwrap_or(usize::MAX)
}

/// The start of the minute holding `at`.
fn minute_start(at: SystemTime) -> SystemTime {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    UNIX_EPOCH + Duration::from_secs(secs - secs % 60)
}

impl Sink for MemoryHistory {
    async fn send(&self, batch: &[Report]) -> Result<(), SinkError> {
        let limits = &self.inner.limits;
        let mut state = self.lock();
        for report in batch {
            match report {
                Report::Delivery(d) => state.route(d.delivery.route()).record(d, limits),
                Report::Alert(alert) => state.alert(alert, limits),
                Report::Health(health) => state.health = Some((**health).clone()),
            }
        }
        Ok(())
    }

    fn register_routes(&self, routes: &[RouteInfo]) {
        let mut state = self.lock();
        for info in routes {
            state.route(&info.name).budget = info.budget;
        }
    }
}

impl History for MemoryHistory {
    async fn routes(&self) -> Result<Vec<RouteEntry>, HistoryError> {
        let state = self.lock();
        Ok(state
            .routes
            .iter()
            .map(|(name, log)| log.entry(name))
            .collect())
    }

    async fn minutes(&self, route: &str, since: SystemTime) -> Result<Vec<Minute>, HistoryError> {
        let since = minute_start(since);
        let minutes = self.read(route, |log| {
            let skip = log.minutes.partition_point(|m| m.start < since);
            log.minutes.range(skip..).cloned().collect()
        });
        Ok(minutes.unwrap_or_default())
    }

    async fn deliveries(
        &self,
        route: &str,
        filter: &DeliveryFilter,
    ) -> Result<Vec<Recorded>, HistoryError> {
        let deliveries = self.read(route, |log| {
            log.deliveries
                .iter()
                .rev()
                .filter(|r| filter.matches(r))
                .take(filter.limit)
                .cloned()
                .collect()
        });
        Ok(deliveries.unwrap_or_default())
    }

    async fn delivery(&self, route: &str, id: u64) -> Result<Option<Recorded>, HistoryError> {
        let recorded = self.read(route, |log| {
            let first = log.deliveries.front()?.id;
            let index = usize::try_from(id.checked_sub(first)?).ok()?;
            log.deliveries.get(index).cloned()
        });
        Ok(recorded.flatten())
    }

    async fn alerts(&self) -> Result<AlertLog, HistoryError> {
        let state = self.lock();
        Ok(AlertLog {
            open: state.open.clone(),
            resolved: state.resolved.iter().cloned().collect(),
        })
    }

    async fn health(&self) -> Result<Option<HealthReport>, HistoryError> {
        Ok(self.lock().health.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The figure the type's docs give.
    #[test]
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    fn a_minute_is_104_bytes() {
        assert_eq!(std::mem::size_of::<Minute>(), 104);
    }

    /// A delivery report of `route` received `secs` after the Unix epoch.
    fn received(route: &str, secs: u64) -> Report {
        let at = humantime::format_rfc3339(UNIX_EPOCH + Duration::from_secs(secs));
        let line = format!(
            r#"{{"type":"delivery","route":"{route}","provider":null,"delivery_id":null,"event_type":null,"attempt":null,"signature":"unchecked","secret_index":null,"status":200,"outcome":"success","outcome_detail":null,"reason":null,"payload_check":null,"received_at":"{at}","body_read_us":1,"handler_us":1,"total_us":2,"body_bytes":2,"fingerprint":null,"times_seen":null,"first_seen":null,"mean_retry_interval_ms":null,"lag_ms":null,"flags":[],"fields":{{}}}}"#
        );
        serde_json::from_str(&line).expect("a delivery report")
    }

    #[tokio::test]
    async fn two_instances_alerts_of_one_kind_and_route_are_two_alerts() {
        let alert = |instance: &str, state: &str| -> Report {
            let line = format!(
                r#"{{"type":"alert","kind":"instance_silent","route":"orders","instance":"{instance}","severity":"warning","state":"{state}","opened_at":"2026-12-03T10:00:00Z","at":"2026-12-03T10:00:00Z","figures":{{}}}}"#
            );
            serde_json::from_str(&line).expect("an alert")
        };
        let history = MemoryHistory::new();
        let both = [alert("web-1", "opened"), alert("web-2", "opened")];
        history.send(&both).await.expect("sent");
        history
            .send(&[alert("web-1", "resolved")])
            .await
            .expect("sent");
        let log = history.alerts().await.expect("read");
        let open: Vec<_> = log.open.iter().map(|a| a.instance.as_deref()).collect();
        assert_eq!(open, [Some("web-2")]);
        assert_eq!(log.resolved.len(), 1);
    }

    #[tokio::test]
    async fn a_report_from_the_future_does_not_push_the_present_out() {
        let history = MemoryHistory::builder()
            .retention(Duration::from_secs(5 * 60))
            .build();
        let now = 1_764_000_000;
        let future = received("r", now + 3 * 86_400);
        let batch: Vec<Report> = (0..3).map(|m| received("r", now + m * 60)).collect();
        history.send(&batch[..2]).await.unwrap();
        history.send(&[future]).await.unwrap();
        history.send(&batch[2..]).await.unwrap();
        let minutes = history.minutes("r", UNIX_EPOCH).await.unwrap();
        let starts: Vec<u64> = minutes
            .iter()
            .map(|m| m.start.duration_since(UNIX_EPOCH).unwrap().as_secs() - now)
            .collect();
        assert_eq!(starts, [0, 60, 120, 3 * 86_400]);
        // Past the bound, the oldest goes first.
        let later: Vec<Report> = (3..5).map(|m| received("r", now + m * 60)).collect();
        history.send(&later).await.unwrap();
        let minutes = history.minutes("r", UNIX_EPOCH).await.unwrap();
        assert_eq!(minutes.len(), 5);
        assert_eq!(minutes[0].start, UNIX_EPOCH + Duration::from_secs(now + 60));
    }

    #[test]
    fn minutes_start_on_the_minute() {
        let at = UNIX_EPOCH + Duration::from_millis(1_764_000_059_999);
        assert_eq!(
            minute_start(at),
            UNIX_EPOCH + Duration::from_secs(1_764_000_000)
        );
        assert_eq!(
            minute_start(UNIX_EPOCH - Duration::from_secs(1)),
            UNIX_EPOCH
        );
    }
}

//! What the dashboard (feature `dashboard`) reads: the [`History`] of recent deliveries, minute
//! rollups, alerts and health, and [`MemoryHistory`], the embedded one.
//!
//! A history is written as a [sink](crate::report::Sink): it goes into the reporter (or a
//! [`Fanout`](crate::report::Fanout)) like any other, off the request path, and keeps
//! - the last deliveries of each route ([`Recorded`], newest first), for the route and delivery
//!   pages;
//! - one [`Minute`] per route and minute with traffic: deliveries by outcome, flags, retries and
//!   a [`LatencyHistogram`], for the charts, counts and percentiles;
//! - the open alerts and the recently resolved ones ([`AlertLog`]);
//! - the latest [`HealthReport`]: the reporter's counters and each sink's;
//! - for a history a fleet shares, its instances ([`InstanceEntry`]).
//!
//! Everything is bounded; [`MemoryHistory`] documents its bounds and their memory cost.
//!
//! [`History`] is the reading side, as a trait: the dashboard does not care whether the history
//! lives in this process or is shared by a fleet.
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use webhook_monitor::{history::{History, MemoryHistory}, report::{Fanout, Reporter, TracingSink}};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let history = MemoryHistory::new();
//! let sink = Fanout::new()
//!     .sink("log", TracingSink::new())
//!     .sink("history", history.clone());
//! let (reporter, guard) = Reporter::spawn(sink);
//! // … layers report through `reporter`; a dashboard reads `history` …
//! # drop(reporter);
//! guard.shutdown(Duration::from_secs(5)).await?;
//! assert!(history.routes().await?.is_empty());
//! # Ok(())
//! # }
//! ```

mod latency;
mod memory;
#[cfg(feature = "redis")]
pub(crate) mod redis;

use std::{
    fmt,
    future::Future,
    sync::Arc,
    time::{Duration, SystemTime},
};

pub use latency::LatencyHistogram;
pub use memory::{MemoryHistory, MemoryHistoryBuilder};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::{RedisHistory, RedisHistoryBuilder};

use crate::{
    report::{DeliveryReport, HealthReport},
    watch::Alert,
    BoxError, Flags, Outcome,
};

/// What the dashboard reads. Implemented by [`MemoryHistory`]; a history shared by several
/// instances implements it over its store.
///
/// Every method may fail (a shared store that cannot be reached); the dashboard then says so.
/// Times are the reports' own: a minute is the one a delivery was received in.
///
/// # Example
///
/// A history that forwards to another and counts its readers:
///
/// ```
/// use std::{sync::atomic::{AtomicU64, Ordering}, time::SystemTime};
/// use webhook_monitor::history::{
///     AlertLog, DeliveryFilter, History, HistoryError, MemoryHistory, Minute, Recorded, RouteEntry,
/// };
/// use webhook_monitor::report::HealthReport;
///
/// struct Counted(MemoryHistory, AtomicU64);
///
/// impl History for Counted {
///     async fn routes(&self) -> Result<Vec<RouteEntry>, HistoryError> {
///         self.1.fetch_add(1, Ordering::Relaxed);
///         self.0.routes().await
///     }
///     async fn minutes(&self, route: &str, since: SystemTime) -> Result<Vec<Minute>, HistoryError> {
///         self.0.minutes(route, since).await
///     }
///     async fn deliveries(&self, route: &str, filter: &DeliveryFilter) -> Result<Vec<Recorded>, HistoryError> {
///         self.0.deliveries(route, filter).await
///     }
///     async fn delivery(&self, route: &str, id: u64) -> Result<Option<Recorded>, HistoryError> {
///         self.0.delivery(route, id).await
///     }
///     async fn alerts(&self) -> Result<AlertLog, HistoryError> {
///         self.0.alerts().await
///     }
///     async fn health(&self) -> Result<Option<HealthReport>, HistoryError> {
///         self.0.health().await
///     }
/// }
/// ```
pub trait History: Send + Sync + 'static {
    /// Every route known: registered by a layer, or seen in a report. In name order.
    fn routes(&self) -> impl Future<Output = Result<Vec<RouteEntry>, HistoryError>> + Send;

    /// `route`'s minutes with traffic from the one holding `since` on, oldest first. Empty for
    /// an unknown route.
    fn minutes(
        &self,
        route: &str,
        since: SystemTime,
    ) -> impl Future<Output = Result<Vec<Minute>, HistoryError>> + Send;

    /// `route`'s recorded deliveries that match `filter`, newest first, at most
    /// [`filter.limit`](DeliveryFilter::limit) of them.
    fn deliveries(
        &self,
        route: &str,
        filter: &DeliveryFilter,
    ) -> impl Future<Output = Result<Vec<Recorded>, HistoryError>> + Send;

    /// One recorded delivery of `route`, by its [`Recorded::id`]; `None` when it is unknown or no
    /// longer kept.
    fn delivery(
        &self,
        route: &str,
        id: u64,
    ) -> impl Future<Output = Result<Option<Recorded>, HistoryError>> + Send;

    /// The open alerts and the recently resolved ones.
    fn alerts(&self) -> impl Future<Output = Result<AlertLog, HistoryError>> + Send;

    /// The latest health report, if one arrived.
    fn health(&self) -> impl Future<Output = Result<Option<HealthReport>, HistoryError>> + Send;

    /// The instances of the fleet that shares this history, by id: their heartbeats, which
    /// one holds the fleet watchers' lease, and their latest health reports. Empty for a
    /// history of one process, which is what this provided method answers.
    fn instances(&self) -> impl Future<Output = Result<Vec<InstanceEntry>, HistoryError>> + Send {
        std::future::ready(Ok(Vec::new()))
    }
}

/// A shared history: the dashboard reads the one the reporter writes.
impl<H: History> History for Arc<H> {
    fn routes(&self) -> impl Future<Output = Result<Vec<RouteEntry>, HistoryError>> + Send {
        (**self).routes()
    }

    fn minutes(
        &self,
        route: &str,
        since: SystemTime,
    ) -> impl Future<Output = Result<Vec<Minute>, HistoryError>> + Send {
        (**self).minutes(route, since)
    }

    fn deliveries(
        &self,
        route: &str,
        filter: &DeliveryFilter,
    ) -> impl Future<Output = Result<Vec<Recorded>, HistoryError>> + Send {
        (**self).deliveries(route, filter)
    }

    fn delivery(
        &self,
        route: &str,
        id: u64,
    ) -> impl Future<Output = Result<Option<Recorded>, HistoryError>> + Send {
        (**self).delivery(route, id)
    }

    fn alerts(&self) -> impl Future<Output = Result<AlertLog, HistoryError>> + Send {
        (**self).alerts()
    }

    fn health(&self) -> impl Future<Output = Result<Option<HealthReport>, HistoryError>> + Send {
        (**self).health()
    }

    fn instances(&self) -> impl Future<Output = Result<Vec<InstanceEntry>, HistoryError>> + Send {
        (**self).instances()
    }
}

/// A route, as the history knows it.
///
/// # Example
///
/// ```
/// use webhook_monitor::history::RouteEntry;
///
/// fn budget_ms(route: &RouteEntry) -> Option<u128> {
///     route.budget.map(|b| b.as_millis())
/// }
/// # let _ = budget_ms;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouteEntry {
    /// The route's name.
    pub name: Arc<str>,
    /// The provider of its last delivery, if it had one.
    pub provider: Option<Arc<str>>,
    /// Its timeout budget, if its layer registered one.
    pub budget: Option<Duration>,
    /// When its last delivery was received.
    pub last_delivery: Option<SystemTime>,
}

impl RouteEntry {
    /// A route named `name`, nothing else known.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            provider: None,
            budget: None,
            last_delivery: None,
        }
    }
}

/// One instance of a fleet that shares a history, as [`History::instances`] lists it.
///
/// # Example
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use webhook_monitor::history::InstanceEntry;
///
/// /// How long the instance has been silent, if it ever sent a heartbeat.
/// fn silent_for(instance: &InstanceEntry, now: SystemTime) -> Option<Duration> {
///     now.duration_since(instance.last_heartbeat?).ok()
/// }
///
/// let mut web1 = InstanceEntry::new("web-1");
/// assert_eq!(silent_for(&web1, SystemTime::now()), None);
/// web1.last_heartbeat = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_583_200));
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_583_230);
/// assert_eq!(silent_for(&web1, now), Some(Duration::from_secs(30)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InstanceEntry {
    /// Its id among the fleet's (for a `RedisHistory`, feature `redis`, the one its builder's
    /// `instance` gave).
    pub id: Arc<str>,
    /// Its first heartbeat.
    pub started: Option<SystemTime>,
    /// Its latest heartbeat: an instance sends one with every batch it writes.
    pub last_heartbeat: Option<SystemTime>,
    /// Whether it holds the lease of the fleet watchers (feature `redis`): it evaluates them
    /// and sends their alerts.
    pub leader: bool,
    /// Its latest health report, while the history keeps it.
    pub health: Option<HealthReport>,
}

impl InstanceEntry {
    /// The instance `id`, nothing else known.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Self {
            id: id.into(),
            started: None,
            last_heartbeat: None,
            leader: false,
            health: None,
        }
    }
}

/// One route's deliveries during one minute.
///
/// # Example
///
/// ```
/// use webhook_monitor::history::Minute;
///
/// fn success_rate(minutes: &[Minute]) -> Option<f64> {
///     let mut total = Minute::default();
///     minutes.iter().for_each(|m| total.merge(m));
///     total.outcomes.success_rate()
/// }
/// assert_eq!(success_rate(&[]), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Minute {
    /// The minute's first second.
    pub start: SystemTime,
    /// Deliveries by outcome.
    pub outcomes: OutcomeCounts,
    /// Deliveries by flag.
    pub flags: FlagCounts,
    /// Deliveries that were retries: an attempt past the first, by the provider's attempt
    /// marker or the dedupe store's count. Duplicates are counted in
    /// [`outcomes`](Self::outcomes), not here.
    pub retries: u32,
    /// The latency (receipt to response) of the deliveries that reached the handler.
    pub latency: LatencyHistogram,
}

impl Default for Minute {
    fn default() -> Self {
        Self::new(SystemTime::UNIX_EPOCH)
    }
}

impl Minute {
    /// An empty minute starting at `start`.
    pub fn new(start: SystemTime) -> Self {
        Self {
            start,
            outcomes: OutcomeCounts::default(),
            flags: FlagCounts::default(),
            retries: 0,
            latency: LatencyHistogram::default(),
        }
    }

    /// Counts one delivery.
    pub fn record(&mut self, report: &DeliveryReport) {
        self.outcomes.count(report.outcome);
        self.flags.count(report.flags);
        let delivery = &report.delivery;
        let retry = delivery.attempt().is_some_and(|a| a > 1)
            || delivery.times_seen().is_some_and(|n| n > 1);
        self.retries += u32::from(retry);
        if handled(report.outcome) {
            self.latency.record(report.total);
        }
    }

    /// Adds `other`'s counts to this one's (its start is kept).
    pub fn merge(&mut self, other: &Self) {
        self.outcomes.merge(&other.outcomes);
        self.flags.merge(&other.flags);
        self.retries += other.retries;
        self.latency.merge(&other.latency);
    }

    /// How many deliveries it counted.
    pub fn deliveries(&self) -> u64 {
        self.outcomes.total()
    }
}

/// Whether a delivery reached the handler: its latency is the handler's.
pub(crate) fn handled(outcome: Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Success
            | Outcome::Late
            | Outcome::Failure(_)
            | Outcome::Panicked
            | Outcome::Cancelled
    )
}

macro_rules! counts {
    ($(#[$meta:meta])* $name:ident { $($(#[$doc:meta])* $field:ident),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct $name {
            $($(#[$doc])* pub $field: u32,)*
        }

        impl $name {
            /// Every count with its name, as in reports.
            pub fn named(&self) -> [(&'static str, u32); [$(stringify!($field)),*].len()] {
                [$((stringify!($field), self.$field)),*]
            }

            /// Adds `other`'s counts to this one's.
            pub fn merge(&mut self, other: &Self) {
                $(self.$field = self.$field.saturating_add(other.$field);)*
            }

            /// Sets the count named `name` (as in [`named`](Self::named)) to `count`; `false`
            /// when no count has that name.
            #[cfg_attr(not(feature = "redis"), allow(dead_code))]
            pub(crate) fn set(&mut self, name: &str, count: u32) -> bool {
                match name {
                    $(stringify!($field) => self.$field = count,)*
                    _ => return false,
                }
                true
            }

            /// The sum of the counts.
            pub fn total(&self) -> u64 {
                0 $(+ u64::from(self.$field))*
            }
        }
    };
}

counts!(
    /// Deliveries by [`Outcome`], named as in reports.
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::{history::OutcomeCounts, Outcome};
    ///
    /// let mut counts = OutcomeCounts::default();
    /// counts.count(Outcome::Success);
    /// counts.count(Outcome::Late);
    /// assert_eq!(counts.success_rate(), Some(0.5));
    /// assert_eq!(counts.named()[0], ("success", 1));
    /// ```
    OutcomeCounts {
        /// Answered 2xx within the budget.
        success,
        /// Answered 2xx past the budget.
        late,
        /// The handler's answer meant failure.
        failure,
        /// Rejected by the layer.
        rejected,
        /// Copies of deliveries already processed.
        duplicate,
        /// Copies of deliveries still being processed.
        in_flight,
        /// The handler panicked.
        panicked,
        /// Dropped before the response was ready.
        cancelled,
    }
);

impl OutcomeCounts {
    /// Counts one delivery of `outcome`.
    pub fn count(&mut self, outcome: Outcome) {
        let count = match outcome {
            Outcome::Success => &mut self.success,
            Outcome::Late => &mut self.late,
            Outcome::Failure(_) => &mut self.failure,
            Outcome::Rejected(_) => &mut self.rejected,
            Outcome::Duplicate => &mut self.duplicate,
            Outcome::InFlight => &mut self.in_flight,
            Outcome::Panicked => &mut self.panicked,
            Outcome::Cancelled => &mut self.cancelled,
        };
        *count = count.saturating_add(1);
    }

    /// The share of deliveries that succeeded, of those that were not copies (duplicates and
    /// in-flight copies are answered by the layer, not failures); `None` when there were none.
    pub fn success_rate(&self) -> Option<f64> {
        let judged = self.total() - u64::from(self.duplicate) - u64::from(self.in_flight);
        (judged > 0).then(|| f64::from(self.success) / judged as f64)
    }
}

counts!(
    /// Deliveries by [flag](Flags), named as in reports.
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::{history::FlagCounts, Flags};
    ///
    /// let mut counts = FlagCounts::default();
    /// counts.count(Flags::default());
    /// assert_eq!(counts.total(), 0);
    /// ```
    FlagCounts {
        /// Close to the timeout budget.
        near_timeout,
        /// Past the timeout budget.
        over_budget,
        /// Processed without the dedupe store.
        dedupe_unavailable,
        /// More attempts than the retry threshold.
        many_attempts,
        /// Retried faster than the minimum interval.
        rapid_retries,
        /// The dedupe claim expired while the handler ran.
        claim_expired,
        /// A flagging payload check failed.
        payload_flagged,
    }
);

impl FlagCounts {
    /// Counts one delivery's `flags`.
    pub fn count(&mut self, flags: Flags) {
        let Flags {
            near_timeout,
            over_budget,
            dedupe_unavailable,
            many_attempts,
            rapid_retries,
            claim_expired,
            payload_flagged,
        } = flags;
        let counts = [
            (near_timeout, &mut self.near_timeout),
            (over_budget, &mut self.over_budget),
            (dedupe_unavailable, &mut self.dedupe_unavailable),
            (many_attempts, &mut self.many_attempts),
            (rapid_retries, &mut self.rapid_retries),
            (claim_expired, &mut self.claim_expired),
            (payload_flagged, &mut self.payload_flagged),
        ];
        for (on, count) in counts {
            *count = count.saturating_add(u32::from(on));
        }
    }
}

/// A delivery report as a history keeps it, with the id it is found by.
///
/// # Example
///
/// ```
/// use webhook_monitor::history::Recorded;
///
/// fn link(route: &str, recorded: &Recorded) -> String {
///     format!("/routes/{route}/deliveries/{}", recorded.id)
/// }
/// # let _ = link;
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Recorded {
    /// Unique within the route, growing with arrival.
    pub id: u64,
    /// The report.
    pub report: DeliveryReport,
}

impl Recorded {
    /// `report`, found by `id`.
    pub fn new(id: u64, report: DeliveryReport) -> Self {
        Self { id, report }
    }
}

/// Which recorded deliveries [`History::deliveries`] returns. Every condition set must hold.
///
/// # Example
///
/// ```
/// use webhook_monitor::history::DeliveryFilter;
///
/// // The last 20 failures of `invoice.paid` events.
/// let filter = DeliveryFilter::new().outcome("failure").event_type("invoice.paid").limit(20);
/// # let _ = filter;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryFilter {
    /// The outcome's name, as in reports (`failure`, `rejected`…).
    pub outcome: Option<String>,
    /// The event type, exactly.
    pub event_type: Option<String>,
    /// The delivery id, exactly: every attempt of one delivery.
    pub delivery_id: Option<String>,
    /// Only deliveries recorded before this id (the next page).
    pub before: Option<u64>,
    /// The most deliveries returned. Defaults to 50.
    pub limit: usize,
}

impl Default for DeliveryFilter {
    fn default() -> Self {
        Self {
            outcome: None,
            event_type: None,
            delivery_id: None,
            before: None,
            limit: 50,
        }
    }
}

impl DeliveryFilter {
    /// Every delivery, the 50 newest.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only deliveries with this outcome (`success`, `failure`, `rejected`…).
    #[must_use]
    pub fn outcome(mut self, outcome: impl Into<String>) -> Self {
        self.outcome = Some(outcome.into());
        self
    }

    /// Only deliveries of this event type.
    #[must_use]
    pub fn event_type(mut self, event_type: impl Into<String>) -> Self {
        self.event_type = Some(event_type.into());
        self
    }

    /// Only the attempts of this delivery id.
    #[must_use]
    pub fn delivery_id(mut self, id: impl Into<String>) -> Self {
        self.delivery_id = Some(id.into());
        self
    }

    /// Only deliveries recorded before the one with this id.
    #[must_use]
    pub fn before(mut self, id: u64) -> Self {
        self.before = Some(id);
        self
    }

    /// At most `limit` deliveries.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Whether `recorded` matches.
    pub fn matches(&self, recorded: &Recorded) -> bool {
        let r = &recorded.report;
        let d = &r.delivery;
        self.before.is_none_or(|before| recorded.id < before)
            && self
                .outcome
                .as_deref()
                .is_none_or(|o| o == r.outcome.as_str())
            && self
                .event_type
                .as_deref()
                .is_none_or(|t| d.event_type() == Some(t))
            && self
                .delivery_id
                .as_deref()
                .is_none_or(|id| d.id() == Some(id))
    }
}

/// The alerts a history holds.
///
/// # Example
///
/// ```
/// use webhook_monitor::history::AlertLog;
///
/// fn paging(log: &AlertLog) -> bool {
///     !log.open.is_empty()
/// }
/// assert!(!paging(&AlertLog::default()));
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct AlertLog {
    /// Open alerts, as they opened, newest first.
    pub open: Vec<Alert>,
    /// Resolved alerts, as they resolved, newest first.
    pub resolved: Vec<Alert>,
}

/// A history could not be read.
///
/// # Example
///
/// ```
/// use webhook_monitor::history::HistoryError;
///
/// let error = HistoryError::unavailable(std::io::Error::other("connection refused"));
/// assert_eq!(error.to_string(), "the history could not be read");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum HistoryError {
    /// Its store could not be reached or answered with an error.
    Unavailable(BoxError),
}

impl HistoryError {
    /// Its store failed with `source`.
    pub fn unavailable(source: impl Into<BoxError>) -> Self {
        Self::Unavailable(source.into())
    }
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(_) => f.write_str("the history could not be read"),
        }
    }
}

impl std::error::Error for HistoryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Unavailable(source) => Some(&**source),
        }
    }
}

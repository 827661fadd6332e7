//! Reporting: what is sent ([`Report`]), the handle the layer sends through ([`Reporter`]), the
//! guard that stops the background worker ([`ReporterGuard`]) and where batches go ([`Sink`]).
//!
//! # How reports travel
//!
//! The layer builds one [`Report`] per delivery and hands it to [`Reporter::try_report`], which
//! never waits: when the bounded queue is full, or the worker is gone, the report is dropped and
//! counted by reason in [`Reporter::stats`]. One worker task drains the queue in batches. It does
//! not wake for every report: after the first report of a quiet spell it lingers (5 ms by default)
//! so that more can gather, and is woken early once a full batch is queued. Each batch goes to the
//! [`Sink`], with a timeout.
//!
//! Alongside the deliveries, the worker sends [alerts](crate::watch) and, every
//! [`health_interval`](ReporterBuilder::health_interval), a [`HealthReport`]: its own counters
//! and each sink's. Several sinks at once, each with its own queue, batching and filter, are a
//! [`Fanout`].
//!
//! # When reports are sent
//!
//! Once per delivery: when the response is ready (success, failure, late, panicked), when the
//! layer rejects the request (too large, unreadable body), when the inner service returns an
//! error, and when the response future is dropped before that (cancelled). Never twice for one
//! request.
//!
//! # Memory
//!
//! The queue holds at most [`queue_capacity`](ReporterBuilder::queue_capacity) reports of about
//! 300 bytes each (2.5 MiB at the default 8192), plus whatever custom fields handlers attach.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use webhook_monitor::report::{MemorySink, Reporter};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let sink = MemorySink::new();
//! let (reporter, guard) = Reporter::builder()
//!     .queue_capacity(1024)
//!     .linger(Duration::from_millis(2))
//!     .spawn(sink.clone());
//! // … hand `reporter` to `WebhookMonitorLayer::new` …
//! # drop(reporter);
//! guard.shutdown(Duration::from_secs(5)).await.expect("drained in time");
//! # }
//! ```

// What the alert sinks write of an alert (the email sink uses only part of it).
#[cfg(any(feature = "http", feature = "email"))]
#[cfg_attr(not(feature = "http"), allow(dead_code))]
mod alert_text;
mod de;
#[cfg(feature = "email")]
mod email;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
mod reporter;
pub mod sink;
mod worker;

use std::{
    borrow::Cow,
    fmt,
    sync::Arc,
    time::{Duration, SystemTime},
};

use ::http::StatusCode; // `::`: not the `http` module below
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use self::http::{
    DiscordSink, HealthchecksSink, JsonHttpSink, OpsgenieSink, PagerDutySink, SeiriSink, SlackSink,
    TeamsSink, TwilioSmsSink,
};
#[cfg(feature = "email")]
#[cfg_attr(docsrs, doc(cfg(feature = "email")))]
pub use email::{EmailError, EmailSink, EmailSinkBuilder, EmailTls};
pub use reporter::{
    Reporter, ReporterBuilder, ReporterGuard, ReporterStats, ReporterWorker, ShutdownError,
};
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use sink::MetricsSink;
pub use sink::{
    Fanout, JsonLinesSink, MemorySink, RouteInfo, Sink, SinkError, SinkHealth, SinkOptions,
    TracingSink,
};

use crate::{outcome::Field, watch::Alert, Delivery, FieldValue, Outcome};

/// What the reporter sends to its sink.
///
/// Serializes to the JSON schema documented in `docs/report-schema.md`, with a `"type"` tag, and
/// deserializes from it: a backend written in Rust reads what the sinks send back into this type
/// (by its `"type"`), and writing it again gives the same JSON. Unknown keys are skipped, so
/// that reports from a newer version stay readable; a missing `"type"`, an unknown outcome or a
/// malformed value is an error.
///
/// Floats (custom [fields](DeliveryReport::fields), alert figures) read back to the bit only
/// with serde_json's `float_roundtrip` feature: its default parser can be one unit in the last
/// place off, and such a float is then written back differently.
///
/// # Example
///
/// A line a [`JsonLinesSink`] wrote, read back:
///
/// ```
/// use webhook_monitor::{FailureKind, Outcome, Report};
///
/// let line = r#"{"type":"delivery","route":"orders","provider":"shop","delivery_id":"d-7","event_type":"order.created","attempt":null,"signature":"unchecked","secret_index":null,"status":200,"outcome":"failure","outcome_detail":"marked","reason":"missing order_id","payload_check":null,"received_at":"2026-11-28T19:30:00.123456Z","body_read_us":21,"handler_us":54,"total_us":75,"body_bytes":12,"fingerprint":"xxh3-128:5b7d2e4f0c1a9e8d7c6b5a4f3e2d1c0b","times_seen":null,"first_seen":null,"mean_retry_interval_ms":null,"lag_ms":null,"flags":[],"fields":{}}"#;
///
/// let report: Report = serde_json::from_str(line)?;
/// let delivery = report.as_delivery().expect("a delivery report");
/// assert_eq!(delivery.outcome, Outcome::Failure(FailureKind::Marked));
/// assert_eq!(delivery.delivery.id(), Some("d-7"));
/// assert_eq!(delivery.reason.as_deref(), Some("missing order_id"));
/// assert_eq!(serde_json::to_string(&report)?, line);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Report {
    /// One delivery, as the layer saw it.
    Delivery(DeliveryReport),
    /// An alert a [watcher](crate::watch) opened or resolved.
    Alert(Alert),
    /// The reporter's own counters and its sinks', sent periodically: monitor the monitor.
    ///
    /// Boxed: a health report goes out once a minute, while every delivery's report is moved
    /// through the queue, and a `Report` larger than 128 bytes is moved with a `memcpy` call.
    Health(Box<HealthReport>),
}

impl Report {
    /// The delivery report, if this is one.
    pub fn as_delivery(&self) -> Option<&DeliveryReport> {
        match self {
            Self::Delivery(d) => Some(d),
            Self::Alert(_) | Self::Health(_) => None,
        }
    }

    /// The alert, if this is one.
    pub fn as_alert(&self) -> Option<&Alert> {
        match self {
            Self::Alert(a) => Some(a),
            Self::Delivery(_) | Self::Health(_) => None,
        }
    }

    /// The health report, if this is one.
    pub fn as_health(&self) -> Option<&HealthReport> {
        match self {
            Self::Health(h) => Some(h),
            Self::Delivery(_) | Self::Alert(_) => None,
        }
    }
}

/// One delivery: what came in, what the handler answered, how long each part took.
///
/// Serializes to, and deserializes from, the `"type": "delivery"` object of
/// `docs/report-schema.md` (see [`Report`]), its [`Delivery`] record included. Read back, its
/// times are to the microsecond, as written; `mean_retry_interval_ms` is not read but worked
/// out again from `received_at`, `first_seen` and `times_seen`
/// ([`Delivery::mean_retry_interval`]); and the provider's send time, which the schema does not
/// carry, reads back as `received_at` minus `lag_ms` ([`Delivery::sent_at`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeliveryReport {
    /// What the layer learned about the request: the record the handler saw (a shared pointer,
    /// so the report travels the queue small).
    pub delivery: Delivery,
    /// The status sent to the provider; `None` when none was sent (cancelled, service error).
    pub status: Option<StatusCode>,
    /// The classification.
    pub outcome: Outcome,
    /// A human-readable reason: the handler's [`Mark::failed`](crate::Mark::failed) reason, the
    /// rejection's details, or the panic message.
    pub reason: Option<Cow<'static, str>>,
    /// Time spent reading the body.
    pub body_read: Duration,
    /// Time spent in the handler, until its response was ready (zero if it was never called).
    pub handler: Duration,
    /// Time from receiving the request until the response was ready.
    pub total: Duration,
    /// Noteworthy facts.
    pub flags: Flags,
    /// The handler's custom fields, from its [`Mark`](crate::Mark).
    pub fields: Vec<Field>,
    /// The failed [payload check](crate::payload), if any: the one that rejected the delivery
    /// (outcome rejected, `payload_check`), or the one that flagged it
    /// ([`payload_flagged`](Flags::payload_flagged)).
    pub payload: Option<Box<crate::payload::PayloadViolation>>,
}

/// Noteworthy facts about a delivery.
///
/// Deserializes from a report's `flags`, a list of flag names; a name this version does not
/// know is skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Flags {
    /// The response took more than
    /// [`NEAR_TIMEOUT_PERCENT`](crate::Policy::NEAR_TIMEOUT_PERCENT) of the timeout budget, but
    /// not all of it.
    pub near_timeout: bool,
    /// The response took longer than the timeout budget: the provider gave up waiting.
    pub over_budget: bool,
    /// The dedupe store could not answer and the delivery was processed anyway (fail-open), or
    /// its claim could not be completed: a copy may be processed twice.
    pub dedupe_unavailable: bool,
    /// More attempts than the policy's retry threshold (5 by default).
    pub many_attempts: bool,
    /// Retried faster than the policy's minimum mean interval (60 s by default).
    pub rapid_retries: bool,
    /// The dedupe claim expired while the handler ran (it took longer than the policy's
    /// in-flight TTL): a copy may have been processed at the same time.
    pub claim_expired: bool,
    /// A flagging [payload check](crate::payload) failed; the report's
    /// [`payload`](DeliveryReport::payload) names it.
    pub payload_flagged: bool,
}

impl Flags {
    /// The flags' names, as in reports.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        [
            (self.near_timeout, "near_timeout"),
            (self.over_budget, "over_budget"),
            (self.dedupe_unavailable, "dedupe_unavailable"),
            (self.many_attempts, "many_attempts"),
            (self.rapid_retries, "rapid_retries"),
            (self.claim_expired, "claim_expired"),
            (self.payload_flagged, "payload_flagged"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
    }
}

impl fmt::Display for Flags {
    /// The set flags' names, comma-separated (empty when none is set).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.names().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

impl Serialize for Report {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Delivery(d) => d.serialize(s),
            Self::Alert(a) => a.serialize(s),
            Self::Health(h) => h.serialize(s),
        }
    }
}

impl Serialize for DeliveryReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let d = &self.delivery;
        let mut m = s.serialize_map(Some(25))?;
        m.serialize_entry("type", "delivery")?;
        m.serialize_entry("route", d.route())?;
        m.serialize_entry("provider", &d.provider())?;
        m.serialize_entry("delivery_id", &d.id())?;
        m.serialize_entry("event_type", &d.event_type())?;
        m.serialize_entry("attempt", &d.attempt())?;
        m.serialize_entry("signature", d.signature().as_str())?;
        m.serialize_entry("secret_index", &d.signature().secret_index())?;
        m.serialize_entry("status", &self.status.map(|s| s.as_u16()))?;
        m.serialize_entry("outcome", self.outcome.as_str())?;
        m.serialize_entry("outcome_detail", &self.outcome.detail())?;
        m.serialize_entry("reason", &self.reason)?;
        m.serialize_entry("payload_check", &self.payload)?;
        let received_at = humantime::format_rfc3339_micros(d.received_at()).to_string();
        m.serialize_entry("received_at", &received_at)?;
        m.serialize_entry("body_read_us", &micros(self.body_read))?;
        m.serialize_entry("handler_us", &micros(self.handler))?;
        m.serialize_entry("total_us", &micros(self.total))?;
        m.serialize_entry("body_bytes", &d.body_len())?;
        m.serialize_entry("fingerprint", &d.fingerprint().map(|f| f.to_string()))?;
        m.serialize_entry("times_seen", &d.times_seen())?;
        let first_seen = d
            .first_seen()
            .map(|t| humantime::format_rfc3339_micros(t).to_string());
        m.serialize_entry("first_seen", &first_seen)?;
        let interval = d
            .mean_retry_interval()
            .map(|i| u64::try_from(i.as_millis()).unwrap_or(u64::MAX));
        m.serialize_entry("mean_retry_interval_ms", &interval)?;
        let lag = d
            .lag()
            .map(|l| u64::try_from(l.as_millis()).unwrap_or(u64::MAX));
        m.serialize_entry("lag_ms", &lag)?;
        m.serialize_entry("flags", &FlagList(self.flags))?;
        m.serialize_entry("fields", &FieldMap(&self.fields))?;
        m.end()
    }
}

/// The reporter's own counters and its sinks', and the process's resident memory, sent to the
/// sinks every [`health_interval`](ReporterBuilder::health_interval): a backend that is failing
/// shows here, through the sinks that still work.
///
/// Serializes to, and deserializes from, the `"type": "health"` object of
/// `docs/report-schema.md` (see [`Report`]), its [`ReporterStats`], [`SinkHealth`] entries and
/// [`FleetHealth`] included. Read back, [`at`](Self::at) is to the second, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthReport {
    /// When the counters were read, by the reporter's clock.
    pub at: SystemTime,
    /// The reporter's counters.
    pub reporter: ReporterStats,
    /// Each backend's counters, from [`Sink::health`].
    pub sinks: Vec<SinkHealth>,
    /// The process's resident memory (RSS) in bytes, read when the report was built; `None`
    /// where the platform does not tell (Linux and macOS do). The
    /// [memory watch](crate::watch::MemoryWatch) samples the same figure once a minute.
    ///
    pub rss_bytes: Option<u64>,
    /// This instance's view of the fleet, with
    /// [`ReporterBuilder::fleet`](crate::report::ReporterBuilder::fleet); `None` without.
    /// Written as the `fleet` object only when set: outside a fleet, the report is written as
    /// it was before.
    pub fleet: Option<FleetHealth>,
}

/// An instance's view of its fleet (feature `redis`, with
/// [`ReporterBuilder::fleet`](crate::report::ReporterBuilder::fleet)): whether it holds the
/// fleet watchers' lease, whether its view is stale, and what its
/// [`RedisHistory`](crate::history::RedisHistory) could not write.
///
/// Written as a health report's `fleet` object (see [`HealthReport`] and
/// `docs/report-schema.md`), its keys named as its fields, [`last_write`](Self::last_write) in
/// RFC 3339 to the millisecond (or `null`); deserializes from it.
///
/// # Example
///
/// ```
/// use webhook_monitor::report::HealthReport;
///
/// fn fleet_trouble(health: &HealthReport) -> Option<String> {
///     let fleet = health.fleet.as_ref()?;
///     fleet.stale.then(|| format!("{}: fleet view stale, {} deliveries' entries lost",
///         fleet.instance, fleet.lost_deliveries))
/// }
/// # let _ = fleet_trouble;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FleetHealth {
    /// This instance's id.
    pub instance: Arc<str>,
    /// Whether this instance holds the lease: it evaluates the fleet watchers and sends their
    /// alerts.
    pub leader: bool,
    /// Whether no write or lease operation succeeded for longer than the lease's TTL: the
    /// fleet's figures (and its watchers) miss this instance's latest reports, and this
    /// instance's own watchers open alerts meanwhile.
    pub stale: bool,
    /// The last successful write or lease operation, by the history's clock, to the millisecond.
    pub last_write: Option<SystemTime>,
    /// Writes (batches, heartbeats) that failed.
    pub failed_writes: u64,
    /// Deliveries whose recent-delivery entries could not be written: dropped.
    pub lost_deliveries: u64,
    /// Deliveries whose counts were dropped: kept while Redis was away, then past the pending
    /// bound.
    pub dropped_counts: u64,
    /// Alerts that could not be written to the history's alert log (the sinks still had them).
    pub dropped_alerts: u64,
    /// Deliveries counted but not written yet: they go with the next write that gets through.
    pub pending_deliveries: u64,
}

impl Serialize for HealthReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = &self.reporter;
        let mut m = s.serialize_map(Some(14 + usize::from(self.fleet.is_some())))?;
        m.serialize_entry("type", "health")?;
        let at = humantime::format_rfc3339_seconds(self.at).to_string();
        m.serialize_entry("at", &at)?;
        m.serialize_entry("enqueued", &r.enqueued)?;
        m.serialize_entry("dropped_full", &r.dropped_full)?;
        m.serialize_entry("dropped_closed", &r.dropped_closed)?;
        m.serialize_entry("sent", &r.sent)?;
        m.serialize_entry("failed", &r.failed)?;
        m.serialize_entry("batches", &r.batches)?;
        m.serialize_entry("alerts", &r.alerts)?;
        m.serialize_entry("sink_panics", &r.sink_panics)?;
        m.serialize_entry("watcher_panics", &r.watcher_panics)?;
        m.serialize_entry("queue_depth", &r.queue_depth)?;
        m.serialize_entry("rss_bytes", &self.rss_bytes)?;
        // Only when set: a report outside a fleet is written as it was before fleets.
        if let Some(fleet) = &self.fleet {
            m.serialize_entry("fleet", &FleetEntry(fleet))?;
        }
        m.serialize_entry("sinks", &SinkList(&self.sinks))?;
        m.end()
    }
}

struct FleetEntry<'a>(&'a FleetHealth);

impl Serialize for FleetEntry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let h = self.0;
        let mut m = s.serialize_map(Some(9))?;
        m.serialize_entry("instance", &*h.instance)?;
        m.serialize_entry("leader", &h.leader)?;
        m.serialize_entry("stale", &h.stale)?;
        let last_write = h
            .last_write
            .map(|t| humantime::format_rfc3339_millis(t).to_string());
        m.serialize_entry("last_write", &last_write)?;
        m.serialize_entry("failed_writes", &h.failed_writes)?;
        m.serialize_entry("lost_deliveries", &h.lost_deliveries)?;
        m.serialize_entry("dropped_counts", &h.dropped_counts)?;
        m.serialize_entry("dropped_alerts", &h.dropped_alerts)?;
        m.serialize_entry("pending_deliveries", &h.pending_deliveries)?;
        m.end()
    }
}

struct SinkList<'a>(&'a [SinkHealth]);

impl Serialize for SinkList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for sink in self.0 {
            seq.serialize_element(&SinkEntry(sink))?;
        }
        seq.end()
    }
}

struct SinkEntry<'a>(&'a SinkHealth);

impl Serialize for SinkEntry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let h = self.0;
        let mut m = s.serialize_map(Some(11))?;
        m.serialize_entry("name", &h.name)?;
        m.serialize_entry("accepted", &h.accepted)?;
        m.serialize_entry("sent", &h.sent)?;
        m.serialize_entry("failed", &h.failed)?;
        m.serialize_entry("dropped", &h.dropped)?;
        m.serialize_entry("queued", &h.queued)?;
        m.serialize_entry("retries", &h.retries)?;
        m.serialize_entry("panics", &h.panics)?;
        m.serialize_entry("consecutive_failures", &h.consecutive_failures)?;
        m.serialize_entry("down", &h.down)?;
        m.serialize_entry("latency_us", &h.latency.map(micros))?;
        m.end()
    }
}

impl fmt::Display for HealthReport {
    /// One line: the reporter's counters and the process's resident memory, then in a fleet
    /// this instance's view of it
    /// (`; fleet web-2 leader last_write=2026-11-28T19:29:12.250Z failed_writes=0 … STALE`),
    /// then each sink's.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.reporter;
        write!(
            f,
            "reporter enqueued={} sent={} failed={} dropped_full={} dropped_closed={} queued={} alerts={}",
            r.enqueued, r.sent, r.failed, r.dropped_full, r.dropped_closed, r.queue_depth, r.alerts
        )?;
        if let Some(rss) = self.rss_bytes {
            write!(f, " rss_bytes={rss}")?;
        }
        if r.sink_panics + r.watcher_panics > 0 {
            write!(
                f,
                " sink_panics={} watcher_panics={}",
                r.sink_panics, r.watcher_panics
            )?;
        }
        if let Some(fleet) = &self.fleet {
            write!(
                f,
                "; fleet {}{} last_write=",
                fleet.instance,
                if fleet.leader { " leader" } else { "" }
            )?;
            match fleet.last_write {
                Some(t) => write!(f, "{}", humantime::format_rfc3339_millis(t))?,
                None => f.write_str("-")?,
            }
            write!(
                f,
                " failed_writes={} lost_deliveries={} dropped_counts={} dropped_alerts={} \
                 pending_deliveries={}{}",
                fleet.failed_writes,
                fleet.lost_deliveries,
                fleet.dropped_counts,
                fleet.dropped_alerts,
                fleet.pending_deliveries,
                if fleet.stale { " STALE" } else { "" }
            )?;
        }
        for h in &self.sinks {
            write!(
                f,
                "; {} sent={} failed={} dropped={} queued={} retries={}{}",
                h.name,
                h.sent,
                h.failed,
                h.dropped,
                h.queued,
                h.retries,
                if h.down { " DOWN" } else { "" }
            )?;
        }
        Ok(())
    }
}

pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

struct FlagList(Flags);

impl Serialize for FlagList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for name in self.0.names() {
            seq.serialize_element(name)?;
        }
        seq.end()
    }
}

pub(crate) struct FieldMap<'a>(pub(crate) &'a [Field]);

impl Serialize for FieldMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for f in self.0 {
            m.serialize_entry(&f.name, &f.value)?;
        }
        m.end()
    }
}

impl Serialize for FieldValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Bool(v) => s.serialize_bool(*v),
            Self::I64(v) => s.serialize_i64(*v),
            Self::U64(v) => s.serialize_u64(*v),
            Self::F64(v) if v.is_finite() => s.serialize_f64(*v),
            Self::F64(_) => s.serialize_unit(),
            Self::Str(v) => s.serialize_str(v),
        }
    }
}

impl fmt::Display for DeliveryReport {
    /// One human-readable line: route, outcome, status, timings.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.delivery.route(), self.outcome.as_str())?;
        if let Some(detail) = self.outcome.detail() {
            write!(f, "({detail})")?;
        }
        match self.status {
            Some(s) => write!(f, " status={}", s.as_u16())?,
            None => f.write_str(" status=-")?,
        }
        write!(
            f,
            " body={}B read={:?} handler={:?} total={:?}",
            self.delivery.body_len(),
            self.body_read,
            self.handler,
            self.total
        )?;
        if let Some(n) = self.delivery.times_seen() {
            write!(f, " seen={n}")?;
        }
        match self.delivery.signature() {
            crate::SignatureStatus::Unchecked => {}
            crate::SignatureStatus::Verified { secret_index } => {
                write!(f, " signature=verified(secret {secret_index})")?;
            }
            other => write!(f, " signature={}", other.as_str())?,
        }
        for name in self.flags.names() {
            write!(f, " [{name}]")?;
        }
        if let Some(violation) = &self.payload {
            write!(f, " payload_check={}", violation.check())?;
            if self.flags.payload_flagged {
                write!(f, " ({violation})")?; // a rejection's reason says it already
            }
        }
        if let Some(reason) = &self.reason {
            write!(f, " reason={reason:?}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every report travels the queue by value (pushed, popped, batched). Up to 128 bytes the
    /// compiler moves it inline; past that, with a `memcpy` call each time: an unboxed
    /// `HealthReport` of 128 bytes made it 136, and cost about 145 instructions more per
    /// delivery (callgrind, `monitored`).
    #[test]
    fn the_health_line_shows_the_fleet_only_in_one() {
        use std::time::UNIX_EPOCH;

        let at = UNIX_EPOCH + Duration::from_secs(1_795_894_200);
        let mut report = HealthReport {
            at,
            reporter: ReporterStats::default(),
            sinks: vec![SinkHealth::new("slack")],
            rss_bytes: None,
            fleet: None,
        };
        let line = report.to_string();
        assert!(!line.contains("fleet"), "{line}");
        report.fleet = Some(FleetHealth {
            instance: "web-2".into(),
            leader: true,
            stale: false,
            last_write: Some(at - Duration::from_millis(47_750)),
            failed_writes: 1,
            lost_deliveries: 2,
            dropped_counts: 3,
            dropped_alerts: 4,
            pending_deliveries: 5,
        });
        let line = report.to_string();
        assert!(
            line.ends_with(
                "; fleet web-2 leader last_write=2026-11-28T19:29:12.250Z failed_writes=1 \
                 lost_deliveries=2 dropped_counts=3 dropped_alerts=4 pending_deliveries=5; \
                 slack sent=0 failed=0 dropped=0 queued=0 retries=0"
            ),
            "{line}"
        );
        let fleet = report.fleet.as_mut().unwrap();
        (fleet.leader, fleet.stale, fleet.last_write) = (false, true, None);
        let line = report.to_string();
        assert!(
            line.contains(
                "; fleet web-2 last_write=- failed_writes=1 lost_deliveries=2 dropped_counts=3 \
                 dropped_alerts=4 pending_deliveries=5 STALE; slack"
            ),
            "{line}"
        );
    }

    #[test]
    fn a_report_is_moved_inline() {
        let size = std::mem::size_of::<Report>();
        assert!(size <= 128, "a Report is {size} bytes");
    }
}

//! What a watcher sends: [`Alert`].

use std::{fmt, sync::Arc, time::SystemTime};

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::{outcome::Field, report::FieldMap};

/// An alert a watcher raised or cleared, sent to the sinks as
/// [`Report::Alert`](crate::report::Report::Alert).
///
/// An alert is sent once when it opens and once when it resolves, never on every evaluation.
/// After it resolves it cannot open again for the route's
/// [cooldown](super::Watch::cooldown).
///
/// Serializes to, and deserializes from, the `"type": "alert"` object of
/// `docs/report-schema.md` (see [`Report`](crate::report::Report)). Read back, its times are to
/// the second, as written, and its severity is the one written.
///
/// # Example
///
/// ```
/// use webhook_monitor::{report::Report, watch::{AlertKind, AlertState}};
///
/// fn page_someone(report: &Report) -> bool {
///     report.as_alert().is_some_and(|a| {
///         a.state == AlertState::Opened && a.kind == AlertKind::Silence
///     })
/// }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Alert {
    /// What was detected.
    pub kind: AlertKind,
    /// The route's name, or [`PROCESS_ROUTE`](super::PROCESS_ROUTE) for an alert about the
    /// whole process ([`MemoryGrowth`](AlertKind::MemoryGrowth)).
    pub route: Arc<str>,
    /// How urgent it is.
    pub severity: Severity,
    /// Opened or resolved.
    pub state: AlertState,
    /// When it opened (for a resolved alert, when it had opened).
    pub opened_at: SystemTime,
    /// When this state was reached, by the reporter's clock.
    pub at: SystemTime,
    /// The figures that triggered it, or for a resolved alert the figures that cleared it.
    pub figures: Vec<Field>,
    /// The instance it is about: for the [fleet watchers](super::Fleet)' per-instance alerts
    /// ([`InstanceSilent`](AlertKind::InstanceSilent),
    /// [`InstanceFailureRate`](AlertKind::InstanceFailureRate)), and, in a fleet, for the
    /// alerts one instance raises about itself ([`MemoryGrowth`](AlertKind::MemoryGrowth)).
    /// `None` for an alert about a route (of one process, or of the whole fleet).
    ///
    /// Written as the alert's `instance` key, only when set: an alert outside a fleet is
    /// written as it was before. Its one-line summary (the alert's `Display`, what the alert
    /// sinks show) names it: `… the rest of the fleet on web-2 (opened) …`.
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::watch::{Alert, AlertKind};
    ///
    /// let line = r#"{"type":"alert","kind":"instance_failure_rate","route":"orders","instance":"web-2","severity":"critical","state":"opened","opened_at":"2026-11-28T19:30:00Z","at":"2026-11-28T19:30:00Z","figures":{"failure_rate":0.8,"failed":16,"handled":20,"others_failure_rate":0.05,"window_minutes":5}}"#;
    ///
    /// let alert: Alert = serde_json::from_str(line)?;
    /// assert_eq!(alert.kind, AlertKind::InstanceFailureRate);
    /// assert_eq!(alert.instance.as_deref(), Some("web-2"));
    /// assert!(alert.to_string().starts_with(
    ///     "[critical] orders: an instance fails far more than the rest of the fleet on web-2 (opened)"
    /// ));
    /// assert_eq!(serde_json::to_string(&alert)?, line);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub instance: Option<Arc<str>>,
}

impl Alert {
    /// The first part of its one-line summary, without the figures:
    /// `[critical] orders: deliveries arrive, none gets through (opened)`, and with an
    /// [instance](Self::instance),
    /// `[critical] orders: an instance fails far more than the rest of the fleet on web-2 (opened)`.
    pub(crate) fn headline(&self) -> Headline<'_> {
        Headline(self)
    }

    /// The figure named `name`, if the alert carries it.
    pub fn figure(&self, name: &str) -> Option<&crate::FieldValue> {
        self.figures
            .iter()
            .find(|f| f.name == name)
            .map(|f| &f.value)
    }
}

/// What a watcher detected.
///
/// Deserializes from its [name](Self::as_str).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AlertKind {
    /// The current (or last full) minute saw many times the deliveries of the minutes before.
    Spike,
    /// A minute went by without a delivery on a route that usually gets several a minute.
    Drop,
    /// No delivery for longer than the route's expected interval.
    Silence,
    /// Deliveries arrive but every one of them is rejected (bad signature, too large…).
    AllRejected,
    /// Many deliveries are retries: more attempts, or faster retries, than the policy allows.
    RetryStorm,
    /// The share of failed deliveries over the window is above the threshold.
    FailureRate,
    /// Several deliveries in a row failed.
    ConsecutiveFailures,
    /// The window's p95 latency is close to the provider's timeout budget.
    NearTimeout,
    /// The window's p95 latency is a multiple of the route's baseline.
    LatencyDegraded,
    /// The process's resident memory kept growing over the
    /// [memory watch](super::MemoryWatch)'s window: a leak, or a cache without a bound.
    /// Process-wide: its route is [`PROCESS_ROUTE`](super::PROCESS_ROUTE).
    MemoryGrowth,
    /// A live instance of the fleet received none of a route's deliveries while the other
    /// instances were busy with them: a load balancer or a deploy left it out. Raised by the
    /// [fleet watchers](super::Fleet), with the instance in [`Alert::instance`].
    InstanceSilent,
    /// One instance's share of failed deliveries on a route is well above the rest of the
    /// fleet's: a bad host, a stale deploy, a broken local dependency. Raised by the
    /// [fleet watchers](super::Fleet), with the instance in [`Alert::instance`].
    InstanceFailureRate,
}

impl AlertKind {
    /// Every kind, in a fixed order: the kinds a route's watchers raise, then the process-wide
    /// ones.
    pub const ALL: [AlertKind; 12] = [
        Self::Spike,
        Self::Drop,
        Self::Silence,
        Self::AllRejected,
        Self::RetryStorm,
        Self::FailureRate,
        Self::ConsecutiveFailures,
        Self::NearTimeout,
        Self::LatencyDegraded,
        Self::MemoryGrowth,
        Self::InstanceSilent,
        Self::InstanceFailureRate,
    ];

    /// How many kinds a route's watchers raise: the first ones of [`ALL`](Self::ALL). The
    /// others are process-wide, or about one instance of a fleet.
    pub(crate) const PER_ROUTE: usize = Self::MemoryGrowth as usize;

    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Spike => "spike",
            Self::Drop => "drop",
            Self::Silence => "silence",
            Self::AllRejected => "all_rejected",
            Self::RetryStorm => "retry_storm",
            Self::FailureRate => "failure_rate",
            Self::ConsecutiveFailures => "consecutive_failures",
            Self::NearTimeout => "near_timeout",
            Self::LatencyDegraded => "latency_degraded",
            Self::MemoryGrowth => "memory_growth",
            Self::InstanceSilent => "instance_silent",
            Self::InstanceFailureRate => "instance_failure_rate",
        }
    }

    /// How urgent an alert of this kind is.
    ///
    /// Critical: deliveries are being lost now (silence, all rejected, failures). Warning: a
    /// trend that needs a look (spikes, drops, retries, latency, memory growth).
    pub fn severity(self) -> Severity {
        match self {
            Self::Silence
            | Self::AllRejected
            | Self::FailureRate
            | Self::ConsecutiveFailures
            | Self::InstanceFailureRate => Severity::Critical,
            Self::Spike
            | Self::Drop
            | Self::RetryStorm
            | Self::NearTimeout
            | Self::LatencyDegraded
            | Self::MemoryGrowth
            | Self::InstanceSilent => Severity::Warning,
        }
    }

    /// What it means, in a few words.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Spike => "traffic spike",
            Self::Drop => "traffic dropped to zero",
            Self::Silence => "no deliveries for longer than expected",
            Self::AllRejected => "deliveries arrive, none gets through",
            Self::RetryStorm => "retry storm",
            Self::FailureRate => "failure rate above threshold",
            Self::ConsecutiveFailures => "consecutive failures",
            Self::NearTimeout => "p95 latency near the provider's timeout",
            Self::LatencyDegraded => "p95 latency well above its baseline",
            Self::MemoryGrowth => "resident memory keeps growing",
            Self::InstanceSilent => "an instance receives nothing while the others are busy",
            Self::InstanceFailureRate => "an instance fails far more than the rest of the fleet",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// How urgent an [`Alert`] is.
///
/// Deserializes from its [name](Self::as_str).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Severity {
    /// A trend to look at.
    Warning,
    /// Deliveries are being lost.
    Critical,
}

impl Severity {
    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

/// Whether an [`Alert`] opens or resolves.
///
/// Deserializes from its [name](Self::as_str).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AlertState {
    /// The condition was detected.
    Opened,
    /// The condition cleared.
    Resolved,
}

impl AlertState {
    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::Resolved => "resolved",
        }
    }
}

impl Serialize for Alert {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(8 + usize::from(self.instance.is_some())))?;
        m.serialize_entry("type", "alert")?;
        m.serialize_entry("kind", self.kind.as_str())?;
        m.serialize_entry("route", &*self.route)?;
        // Only when set: an alert outside a fleet is written as it was before fleets.
        if let Some(instance) = &self.instance {
            m.serialize_entry("instance", &**instance)?;
        }
        m.serialize_entry("severity", self.severity.as_str())?;
        m.serialize_entry("state", self.state.as_str())?;
        let rfc3339 = |t| humantime::format_rfc3339_seconds(t).to_string();
        m.serialize_entry("opened_at", &rfc3339(self.opened_at))?;
        m.serialize_entry("at", &rfc3339(self.at))?;
        m.serialize_entry("figures", &FieldMap(&self.figures))?;
        m.end()
    }
}

/// [`Alert::headline`].
pub(crate) struct Headline<'a>(&'a Alert);

impl fmt::Display for Headline<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.0;
        write!(
            f,
            "[{}] {}: {}",
            a.severity.as_str(),
            a.route,
            a.kind.describe()
        )?;
        if let Some(instance) = &a.instance {
            write!(f, " on {instance}")?;
        }
        write!(f, " ({})", a.state.as_str())
    }
}

impl fmt::Display for Alert {
    /// One line: `[critical] orders: deliveries arrive, none gets through (opened) total=12 …`;
    /// with an [instance](Self::instance), `… on web-2 (opened) …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.headline())?;
        for field in &self.figures {
            write!(f, " {}=", field.name)?;
            match &field.value {
                crate::FieldValue::F64(v) => write!(f, "{v:.3}")?,
                crate::FieldValue::Str(v) => write!(f, "{v:?}")?,
                crate::FieldValue::Bool(v) => write!(f, "{v}")?,
                crate::FieldValue::I64(v) => write!(f, "{v}")?,
                crate::FieldValue::U64(v) => write!(f, "{v}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::{report::Report, FieldValue};

    #[test]
    fn serializes_to_the_documented_schema() {
        let at = UNIX_EPOCH + Duration::from_secs(4 * 86_400 + 9 * 3600 + 12 * 60);
        let field = |name: &'static str, value: FieldValue| Field {
            name: name.into(),
            value,
        };
        let alert = Alert {
            kind: AlertKind::FailureRate,
            route: "payments".into(),
            severity: AlertKind::FailureRate.severity(),
            state: AlertState::Opened,
            opened_at: at,
            at,
            instance: None,
            figures: vec![
                field("failure_rate", 0.6.into()),
                field("failed", 12u32.into()),
                field("handled", 20u32.into()),
                field("window_minutes", 5u64.into()),
            ],
        };
        let json = serde_json::to_string(&Report::Alert(alert.clone())).unwrap();
        // The example in docs/report-schema.md.
        assert_eq!(
            json,
            r#"{"type":"alert","kind":"failure_rate","route":"payments","severity":"critical","state":"opened","opened_at":"1970-01-05T09:12:00Z","at":"1970-01-05T09:12:00Z","figures":{"failure_rate":0.6,"failed":12,"handled":20,"window_minutes":5}}"#
        );
        assert_eq!(
            alert.to_string(),
            "[critical] payments: failure rate above threshold (opened) failure_rate=0.600 \
             failed=12 handled=20 window_minutes=5"
        );
    }

    #[test]
    fn an_instance_is_written_and_named_in_the_summary_only_when_set() {
        let at = UNIX_EPOCH + Duration::from_secs(4 * 86_400 + 9 * 3600 + 12 * 60);
        let mut alert = Alert {
            kind: AlertKind::InstanceSilent,
            route: "orders".into(),
            severity: AlertKind::InstanceSilent.severity(),
            state: AlertState::Resolved,
            opened_at: at,
            at,
            instance: Some("web-2".into()),
            figures: vec![Field {
                name: "deliveries".into(),
                value: 4u32.into(),
            }],
        };
        assert_eq!(
            serde_json::to_string(&alert).unwrap(),
            r#"{"type":"alert","kind":"instance_silent","route":"orders","instance":"web-2","severity":"warning","state":"resolved","opened_at":"1970-01-05T09:12:00Z","at":"1970-01-05T09:12:00Z","figures":{"deliveries":4}}"#
        );
        assert_eq!(
            alert.to_string(),
            "[warning] orders: an instance receives nothing while the others are busy on web-2 \
             (resolved) deliveries=4"
        );
        alert.instance = None;
        let json = serde_json::to_string(&alert).unwrap();
        assert!(!json.contains(r#""instance":"#), "{json}");
        assert_eq!(
            alert.headline().to_string(),
            "[warning] orders: an instance receives nothing while the others are busy (resolved)"
        );
    }

    #[test]
    fn kinds_index_their_slots_in_order() {
        for (i, kind) in AlertKind::ALL.into_iter().enumerate() {
            assert_eq!(kind.index(), i);
        }
    }

    #[test]
    fn the_process_and_instance_kinds_come_after_the_per_route_ones() {
        let (per_route, rest) = AlertKind::ALL.split_at(AlertKind::PER_ROUTE);
        assert_eq!(
            rest,
            [
                AlertKind::MemoryGrowth,
                AlertKind::InstanceSilent,
                AlertKind::InstanceFailureRate
            ]
        );
        assert!(rest.iter().all(|kind| !per_route.contains(kind)));
    }
}

use std::fmt;

use reqwest::Url;

use super::{
    parse_url,
    transport::{Backend, Call},
    HttpSinkError, HttpTransport,
};
use crate::report::alert_text::{alert_key, truncate};
use crate::{
    report::{FieldMap, Report, Sink, SinkError, SinkHealth},
    watch::{Alert, AlertState, Severity},
};

/// The longest `payload.summary` PagerDuty accepts, in characters.
const MAX_SUMMARY: usize = 1024;

/// Triggers and resolves PagerDuty incidents through the
/// [Events API v2](https://developer.pagerduty.com/docs/events-api-v2/overview/), one event per
/// alert.
///
/// Other reports (deliveries, health) are ignored, and not counted as accepted. An alert
/// opening triggers an event:
///
/// ```text
/// POST https://events.pagerduty.com/v2/enqueue
/// Content-Type: application/json
///
/// {"routing_key": "<routing key>",
///  "event_action": "trigger",
///  "dedup_key": "webhook-monitor/payments/failure_rate",
///  "client": "webhook-monitor",
///  "payload": {
///    "summary": "[critical] payments: failure rate above threshold (opened) failure_rate=0.600 failed=12 handled=20 window_minutes=5",
///    "source": "payments",
///    "severity": "critical",
///    "timestamp": "1970-01-05T09:12:00Z",
///    "component": "payments",
///    "class": "failure_rate",
///    "custom_details": {"failure_rate": 0.6, "failed": 12, "handled": 20, "window_minutes": 5}}}
/// ```
///
/// and the same alert resolving resolves it, by the same `dedup_key`:
///
/// ```text
/// POST https://events.pagerduty.com/v2/enqueue
/// Content-Type: application/json
///
/// {"routing_key": "<routing key>", "event_action": "resolve", "dedup_key": "webhook-monitor/payments/failure_rate"}
/// ```
///
/// How an [`Alert`] is mapped:
///
/// - `dedup_key`: `webhook-monitor/<route>/<kind>`, so one route's alert of one kind is one
///   incident, opened and resolved in turn; for an alert about one instance of a fleet (its
///   [`instance`](Alert::instance) is set), `webhook-monitor/<route>/<kind>/<instance>`, so
///   that two instances' alerts are two incidents;
/// - `summary`: the alert's one-line summary (its [`Display`](Alert#impl-Display-for-Alert),
///   which names the instance, if any), cut to 1024 characters (PagerDuty's limit) on a
///   character boundary;
/// - `source`: the route's name, or the [`source`](Self::source) set (a host name, say);
/// - `severity`: `critical` or `warning`, as the alert's;
/// - `timestamp`: when the alert opened, RFC 3339 to the second;
/// - `component`: the route's name; `class`: the alert's [kind](crate::watch::AlertKind::as_str);
/// - `custom_details`: the alert's figures by name, as JSON numbers, strings or booleans (a
///   non-finite float as `null`).
///
/// Requests go through the [`HttpTransport`]: retried on `429` and `5xx` (PagerDuty's answers
/// to a rate limit or an outage), not on other refusals. A batch's events are sent one after
/// the other, in order, so that a resolution never overtakes its trigger. Counted in
/// [`SinkHealth`] as `"pagerduty"`.
///
/// The routing key (the integration key of a PagerDuty service) is a credential: it never
/// appears in `Debug`, logs or errors.
///
/// # Example
///
/// ```
/// use webhook_monitor::report::http::{HttpTransport, PagerDutySink};
///
/// let transport = HttpTransport::builder().build()?;
/// let sink = PagerDutySink::new(&transport, "R0UT1NGK3Y0000000000000000000000")?
///     .source("web-1.example.com");
/// assert!(!format!("{sink:?}").contains("R0UT1NGK3Y"));
/// # Ok::<_, webhook_monitor::report::http::HttpSinkError>(())
/// ```
pub struct PagerDutySink {
    backend: Backend,
    url: Url,
    routing_key: String,
    source: Option<String>,
}

impl PagerDutySink {
    /// Default [`url`](Self::url): PagerDuty's Events API v2 endpoint.
    pub const DEFAULT_URL: &'static str = "https://events.pagerduty.com/v2/enqueue";

    /// A sink sending events with `routing_key` (the integration key of a PagerDuty service's
    /// Events API v2 integration) to [`Self::DEFAULT_URL`].
    ///
    /// # Errors
    ///
    /// None for now: the `Result` leaves room to check the key without breaking callers.
    pub fn new(
        transport: &HttpTransport,
        routing_key: impl Into<String>,
    ) -> Result<Self, HttpSinkError> {
        Ok(Self {
            backend: transport.backend("pagerduty"),
            url: parse_url(Self::DEFAULT_URL)?,
            routing_key: routing_key.into(),
            source: None,
        })
    }

    /// Sends the events to `url` instead of [`Self::DEFAULT_URL`] (a proxy, a test server).
    ///
    /// ```
    /// # use webhook_monitor::report::http::{HttpTransport, PagerDutySink};
    /// # let transport = HttpTransport::builder().build()?;
    /// let sink = PagerDutySink::new(&transport, "key")?
    ///     .url("https://events.eu.pagerduty.com/v2/enqueue")?;
    /// # let _ = sink;
    /// # Ok::<_, webhook_monitor::report::http::HttpSinkError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`HttpSinkError::InvalidUrl`] when `url` is not an absolute `http(s)` URL.
    pub fn url(mut self, url: &str) -> Result<Self, HttpSinkError> {
        self.url = parse_url(url)?;
        Ok(self)
    }

    /// The event's `payload.source`: where the problem is, as PagerDuty shows it (a host or
    /// service name). Defaults to the alert's route.
    #[must_use]
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The event for `alert`, as JSON.
    fn event(&self, alert: &Alert) -> serde_json::Value {
        let route = &*alert.route;
        let kind = alert.kind.as_str();
        let dedup_key = alert_key(alert);
        match alert.state {
            AlertState::Resolved => serde_json::json!({
                "routing_key": self.routing_key,
                "event_action": "resolve",
                "dedup_key": dedup_key,
            }),
            AlertState::Opened => serde_json::json!({
                "routing_key": self.routing_key,
                "event_action": "trigger",
                "dedup_key": dedup_key,
                "client": "webhook-monitor",
                "payload": {
                    "summary": truncate(&alert.to_string(), MAX_SUMMARY),
                    "source": self.source.as_deref().unwrap_or(route),
                    "severity": match alert.severity {
                        Severity::Critical => "critical",
                        Severity::Warning => "warning",
                    },
                    "timestamp": humantime::format_rfc3339_seconds(alert.opened_at).to_string(),
                    "component": route,
                    "class": kind,
                    "custom_details": FieldMap(&alert.figures),
                },
            }),
        }
    }
}

impl Sink for PagerDutySink {
    async fn send(&self, batch: &[Report]) -> Result<(), SinkError> {
        self.backend
            .deliver_alerts(batch, |alert| {
                let body = self.event(alert).to_string();
                Call::post(self.url.clone(), "application/json", body)
            })
            .await
    }

    fn health(&self) -> Vec<SinkHealth> {
        vec![self.backend.health()]
    }
}

impl fmt::Debug for PagerDutySink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PagerDutySink")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

use std::fmt;

use http::{header::AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::Url;

use super::{
    join, parse_url,
    transport::{Backend, Call},
    HttpSinkError, HttpTransport,
};
use crate::report::alert_text::{alert_key, truncate};
use crate::{
    report::{Report, Sink, SinkError, SinkHealth},
    watch::{Alert, AlertState, Severity},
    FieldValue,
};

/// The longest `message` Opsgenie accepts, in characters.
const MAX_MESSAGE: usize = 130;

/// The longest `description` Opsgenie accepts, in characters.
const MAX_DESCRIPTION: usize = 15_000;

/// Opens and closes Opsgenie alerts through the
/// [Alert API](https://docs.opsgenie.com/docs/alert-api), one request per alert.
///
/// Other reports (deliveries, health) are ignored, and not counted as accepted. An alert
/// opening creates an Opsgenie alert:
///
/// ```text
/// POST https://api.opsgenie.com/v2/alerts
/// Authorization: GenieKey <api key>
/// Content-Type: application/json
///
/// {"message": "[critical] payments: failure rate above threshold (opened)",
///  "alias": "webhook-monitor/payments/failure_rate",
///  "description": "[critical] payments: failure rate above threshold (opened) failure_rate=0.600 failed=12 handled=20 window_minutes=5",
///  "priority": "P1",
///  "source": "webhook-monitor",
///  "entity": "payments",
///  "tags": ["webhook-monitor", "payments", "failure_rate"],
///  "details": {"failure_rate": "0.6", "failed": "12", "handled": "20", "window_minutes": "5"}}
/// ```
///
/// and the same alert resolving closes it, by its alias (percent-encoded as a path segment):
///
/// ```text
/// POST https://api.opsgenie.com/v2/alerts/webhook-monitor%2Fpayments%2Ffailure_rate/close?identifierType=alias
/// Authorization: GenieKey <api key>
/// Content-Type: application/json
///
/// {"source": "webhook-monitor",
///  "note": "[critical] payments: failure rate above threshold (resolved) failure_rate=0.050 failed=1 handled=20 window_minutes=5"}
/// ```
///
/// How an [`Alert`] is mapped:
///
/// - `alias`: `webhook-monitor/<route>/<kind>`, so one route's alert of one kind is one
///   Opsgenie alert, opened and closed in turn; for an alert about one instance of a fleet
///   (its [`instance`](Alert::instance) is set), `webhook-monitor/<route>/<kind>/<instance>`,
///   so that two instances' alerts are two Opsgenie alerts;
/// - `message`: the start of the alert's one-line summary (its
///   [`Display`](Alert#impl-Display-for-Alert)) without the figures — severity, route, what
///   was detected, `on <instance>` if any, `(opened)` — cut to 130 characters (Opsgenie's
///   limit);
/// - `description`: the whole summary, figures included (cut to Opsgenie's 15 000
///   characters); the closing `note` is the resolved alert's summary;
/// - `priority`: `P1` for a critical alert, `P3` for a warning;
/// - `entity`: the route's name; `tags`: `webhook-monitor`, the route, the
///   [kind](crate::watch::AlertKind::as_str);
/// - `details`: the alert's figures by name, each as a string (`"0.6"`, `"12"`, `"true"`; a
///   string figure as it is).
///
/// Requests go through the [`HttpTransport`]: retried on `429` and `5xx`, not on other
/// refusals. A batch's requests are sent one after the other, in order, so that a close never
/// overtakes its create. Counted in [`SinkHealth`] as `"opsgenie"`.
///
/// The API key is a credential: it never appears in `Debug`, logs or errors.
///
/// # Example
///
/// ```
/// use webhook_monitor::report::http::{HttpTransport, OpsgenieSink};
///
/// let transport = HttpTransport::builder().build()?;
/// let sink = OpsgenieSink::new(&transport, "0000-GENIE-KEY")?.eu();
/// assert!(!format!("{sink:?}").contains("GENIE-KEY"));
/// # Ok::<_, webhook_monitor::report::http::HttpSinkError>(())
/// ```
pub struct OpsgenieSink {
    backend: Backend,
    base: Url,
    headers: HeaderMap,
}

impl OpsgenieSink {
    /// Default [`url`](Self::url): Opsgenie's API, US instance.
    pub const DEFAULT_URL: &'static str = "https://api.opsgenie.com";

    /// The API of Opsgenie's EU instance, set by [`eu`](Self::eu).
    pub const EU_URL: &'static str = "https://api.eu.opsgenie.com";

    /// A sink calling [`Self::DEFAULT_URL`] with `api_key` (the key of an Opsgenie API
    /// integration), sent as `Authorization: GenieKey <api_key>`.
    ///
    /// # Errors
    ///
    /// [`HttpSinkError::InvalidHeader`] when `api_key` cannot be sent in a header (it holds a
    /// line break or another control character).
    pub fn new(transport: &HttpTransport, api_key: &str) -> Result<Self, HttpSinkError> {
        let mut value = HeaderValue::try_from(format!("GenieKey {api_key}"))
            .map_err(|_| HttpSinkError::InvalidHeader)?;
        value.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value);
        Ok(Self {
            backend: transport.backend("opsgenie"),
            base: parse_url(Self::DEFAULT_URL)?,
            headers,
        })
    }

    /// Calls the API at `base` instead of [`Self::DEFAULT_URL`] (a proxy, a test server);
    /// `/v2/alerts…` is appended to its path.
    ///
    /// ```
    /// # use webhook_monitor::report::http::{HttpTransport, OpsgenieSink};
    /// # let transport = HttpTransport::builder().build()?;
    /// let sink = OpsgenieSink::new(&transport, "key")?.url("https://opsgenie-proxy.internal")?;
    /// # let _ = sink;
    /// # Ok::<_, webhook_monitor::report::http::HttpSinkError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`HttpSinkError::InvalidUrl`] when `base` is not an absolute `http(s)` URL.
    pub fn url(mut self, base: &str) -> Result<Self, HttpSinkError> {
        self.base = parse_url(base)?;
        Ok(self)
    }

    /// Calls Opsgenie's EU instance, [`Self::EU_URL`].
    #[must_use]
    pub fn eu(mut self) -> Self {
        // A constant, checked by the unit test below.
        if let Ok(url) = parse_url(Self::EU_URL) {
            self.base = url;
        }
        self
    }

    /// The request for `alert`.
    fn call(&self, alert: &Alert) -> Call {
        let route = &*alert.route;
        let kind = alert.kind.as_str();
        let alias = alert_key(alert);
        let (url, body) = match alert.state {
            AlertState::Opened => {
                let message = alert.headline().to_string();
                let details: serde_json::Map<_, _> = alert
                    .figures
                    .iter()
                    .map(|f| (f.name.to_string(), detail(&f.value).into()))
                    .collect();
                let body = serde_json::json!({
                    "message": truncate(&message, MAX_MESSAGE),
                    "alias": alias,
                    "description": truncate(&alert.to_string(), MAX_DESCRIPTION),
                    "priority": match alert.severity {
                        Severity::Critical => "P1",
                        Severity::Warning => "P3",
                    },
                    "source": "webhook-monitor",
                    "entity": route,
                    "tags": ["webhook-monitor", route, kind],
                    "details": details,
                });
                (join(&self.base, &["v2", "alerts"]), body)
            }
            AlertState::Resolved => {
                let mut url = join(&self.base, &["v2", "alerts", &alias, "close"]);
                url.set_query(Some("identifierType=alias"));
                let body = serde_json::json!({
                    "source": "webhook-monitor",
                    "note": alert.to_string(),
                });
                (url, body)
            }
        };
        Call::post(url, "application/json", body.to_string()).headers(&self.headers)
    }
}

/// A figure's value as a string.
fn detail(value: &FieldValue) -> String {
    match value {
        FieldValue::Bool(v) => v.to_string(),
        FieldValue::I64(v) => v.to_string(),
        FieldValue::U64(v) => v.to_string(),
        FieldValue::F64(v) => v.to_string(),
        FieldValue::Str(v) => v.to_string(),
    }
}

impl Sink for OpsgenieSink {
    async fn send(&self, batch: &[Report]) -> Result<(), SinkError> {
        self.backend
            .deliver_alerts(batch, |alert| self.call(alert))
            .await
    }

    fn health(&self) -> Vec<SinkHealth> {
        vec![self.backend.health()]
    }
}

impl fmt::Debug for OpsgenieSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpsgenieSink")
            .field("host", &self.base.host_str())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_and_eu_urls_parse() {
        assert!(parse_url(OpsgenieSink::DEFAULT_URL).is_ok());
        assert!(parse_url(OpsgenieSink::EU_URL).is_ok());
    }
}

use std::{fmt, time::Duration};

use serde_json::{json, Value};

use super::{limit::ChatWebhook, HttpSinkError, HttpTransport};
use crate::report::alert_text::{dropped_note, figure_text};
use crate::{
    report::{Report, Sink, SinkError, SinkHealth},
    watch::{Alert, AlertState, Severity},
};

/// Posts alerts to a Microsoft Teams channel through a Workflows (or incoming) webhook, one
/// Adaptive Card per alert, rate-limited.
///
/// Other reports (deliveries, health) are ignored, and not counted as accepted. Each alert
/// becomes one request:
///
/// ```text
/// POST {webhook_url}
/// Content-Type: application/json
///
/// {"type": "message", "attachments": [{
///   "contentType": "application/vnd.microsoft.card.adaptive",
///   "contentUrl": null,
///   "content": {
///     "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
///     "type": "AdaptiveCard",
///     "version": "1.4",
///     "body": [
///       {"type": "TextBlock", "text": "[critical] payments: failure rate above threshold (opened)",
///        "weight": "Bolder", "size": "Medium", "wrap": true, "color": "Attention"},
///       {"type": "FactSet", "facts": [
///         {"title": "kind", "value": "failure_rate"},
///         {"title": "opened at", "value": "2026-11-28T19:30:00Z"},
///         {"title": "failure_rate", "value": "0.600"},
///         {"title": "failed", "value": "12"},
///         {"title": "handled", "value": "20"},
///         {"title": "window_minutes", "value": "5"}
///       ]}
///     ]
///   }
/// }]}
/// ```
///
/// The heading is the alert's one-line summary without its figures (at most 256 characters),
/// coloured `Attention` for a critical alert opening, `Warning` for a warning opening, `Good`
/// when one resolves. The facts are the alert's kind, its instance (only for an alert about
/// one instance of a fleet), when it opened, then its figures (floats with three decimals).
///
/// # Rate limit
///
/// At most one message per [`min_interval`](Self::min_interval). An alert that comes sooner
/// is dropped, counted as `dropped` in [`SinkHealth`] (named `"teams"`), and the next card that
/// goes out ends with one more block:
/// `{"type": "TextBlock", "text": "N more alerts were dropped by the rate limit since the
/// previous message", "isSubtle": true, "wrap": true}`.
///
/// The webhook URL is a credential: it never appears in `Debug`, logs or errors.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use webhook_monitor::report::http::{HttpTransport, TeamsSink};
///
/// let transport = HttpTransport::builder().build()?;
/// let url = "https://prod-00.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?sig=XXXX";
/// let sink = TeamsSink::new(&transport, url)?.min_interval(Duration::from_secs(5));
/// assert!(!format!("{sink:?}").contains("XXXX"));
/// # Ok::<_, webhook_monitor::report::http::HttpSinkError>(())
/// ```
pub struct TeamsSink {
    webhook: ChatWebhook,
}

impl TeamsSink {
    /// Default [`min_interval`](Self::min_interval): 1 s.
    pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(1);

    /// A sink posting to the Teams webhook `webhook_url` (a Workflows "post to a channel when a
    /// webhook request is received" URL, or a legacy incoming webhook's).
    ///
    /// # Errors
    ///
    /// [`HttpSinkError::InvalidUrl`] when `webhook_url` is not an absolute `http(s)` URL.
    pub fn new(transport: &HttpTransport, webhook_url: &str) -> Result<Self, HttpSinkError> {
        let webhook =
            ChatWebhook::new(transport, "teams", webhook_url, Self::DEFAULT_MIN_INTERVAL)?;
        Ok(Self { webhook })
    }

    /// The least time between two messages. Defaults to [`Self::DEFAULT_MIN_INTERVAL`].
    #[must_use]
    pub fn min_interval(mut self, interval: Duration) -> Self {
        self.webhook.set_min_interval(interval);
        self
    }
}

impl Sink for TeamsSink {
    async fn send(&self, batch: &[Report]) -> Result<(), SinkError> {
        self.webhook
            .send(batch, |alert, dropped| message(alert, dropped).to_string())
            .await
    }

    fn health(&self) -> Vec<SinkHealth> {
        self.webhook.health()
    }
}

/// The message for `alert`, noting the `dropped` alerts before it.
fn message(alert: &Alert, dropped: u64) -> Value {
    let color = match (alert.state, alert.severity) {
        (AlertState::Resolved, _) => "Good",
        (_, Severity::Critical) => "Attention",
        _ => "Warning",
    };
    let mut facts = vec![json!({ "title": "kind", "value": alert.kind.as_str() })];
    if let Some(instance) = &alert.instance {
        facts.push(json!({ "title": "instance", "value": &**instance }));
    }
    facts.push(json!({
        "title": "opened at",
        "value": humantime::format_rfc3339_seconds(alert.opened_at).to_string(),
    }));
    facts.extend(
        alert
            .figures
            .iter()
            .map(|f| json!({ "title": &*f.name, "value": figure_text(&f.value) })),
    );
    let mut body = vec![
        json!({
            "type": "TextBlock",
            "text": alert.headline().to_string(),
            "weight": "Bolder",
            "size": "Medium",
            "wrap": true,
            "color": color,
        }),
        json!({ "type": "FactSet", "facts": facts }),
    ];
    if dropped > 0 {
        body.push(json!({
            "type": "TextBlock",
            "text": dropped_note(dropped),
            "isSubtle": true,
            "wrap": true,
        }));
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
            },
        }],
    })
}

impl fmt::Debug for TeamsSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TeamsSink")
            .field("min_interval", &self.webhook.min_interval())
            .finish_non_exhaustive()
    }
}

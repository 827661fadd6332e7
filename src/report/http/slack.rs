use std::{
    fmt::{self, Write as _},
    time::Duration,
};

use super::{limit::ChatWebhook, HttpSinkError, HttpTransport};
use crate::{
    report::{Report, Sink, SinkError, SinkHealth},
    watch::{Alert, AlertState, Severity},
};

/// Posts alerts to a Slack incoming webhook, one message per alert, rate-limited.
///
/// Other reports (deliveries, health) are ignored, and not counted as accepted. Each alert
/// becomes one request:
///
/// ```text
/// POST {webhook_url}
/// Content-Type: application/json
///
/// {"text": ":rotating_light: [critical] payments: failure rate above threshold (opened) failure_rate=0.600 failed=12 handled=20 window_minutes=5 (kind: failure_rate)"}
/// ```
///
/// The text is the alert's one-line summary (severity, route, what was detected, on which
/// instance for an alert about one instance of a fleet, opened or resolved, and its figures),
/// then its kind, after an icon: `:rotating_light:` for a critical
/// alert opening, `:warning:` for a warning opening, `:white_check_mark:` when one resolves.
/// `&`, `<` and `>` are escaped as Slack asks.
///
/// # Rate limit
///
/// At most one message per [`min_interval`](Self::min_interval) (Slack accepts about one per
/// second per webhook). An alert that comes sooner is dropped, counted as `dropped` in
/// [`SinkHealth`] (named `"slack"`), and the next message that goes out ends with
/// `_N more alerts were dropped by the rate limit since the previous message_`.
///
/// The webhook URL is a credential: it never appears in `Debug`, logs or errors.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use webhook_monitor::report::http::{HttpTransport, SlackSink};
///
/// let transport = HttpTransport::builder().build()?;
/// let sink = SlackSink::new(&transport, "https://hooks.slack.com/services/T000/B000/XXXX")?
///     .min_interval(Duration::from_secs(10));
/// assert!(!format!("{sink:?}").contains("XXXX"));
/// # Ok::<_, webhook_monitor::report::http::HttpSinkError>(())
/// ```
pub struct SlackSink {
    webhook: ChatWebhook,
}

impl SlackSink {
    /// Default [`min_interval`](Self::min_interval): 1 s.
    pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(1);

    /// A sink posting to the incoming webhook `webhook_url`.
    ///
    /// # Errors
    ///
    /// [`HttpSinkError::InvalidUrl`] when `webhook_url` is not an absolute `http(s)` URL.
    pub fn new(transport: &HttpTransport, webhook_url: &str) -> Result<Self, HttpSinkError> {
        let webhook =
            ChatWebhook::new(transport, "slack", webhook_url, Self::DEFAULT_MIN_INTERVAL)?;
        Ok(Self { webhook })
    }

    /// The least time between two messages. Defaults to [`Self::DEFAULT_MIN_INTERVAL`].
    #[must_use]
    pub fn min_interval(mut self, interval: Duration) -> Self {
        self.webhook.set_min_interval(interval);
        self
    }
}

impl Sink for SlackSink {
    async fn send(&self, batch: &[Report]) -> Result<(), SinkError> {
        self.webhook
            .send(batch, |alert, dropped| {
                serde_json::json!({ "text": text(alert, dropped) }).to_string()
            })
            .await
    }

    fn health(&self) -> Vec<SinkHealth> {
        self.webhook.health()
    }
}

/// The message for `alert`, noting the `dropped` alerts before it.
fn text(alert: &Alert, dropped: u64) -> String {
    let icon = match (alert.state, alert.severity) {
        (AlertState::Resolved, _) => ":white_check_mark:",
        (_, Severity::Critical) => ":rotating_light:",
        _ => ":warning:",
    };
    let mut text = format!("{icon} {alert} (kind: {})", alert.kind.as_str());
    if dropped > 0 {
        let _ = write!(
            text,
            "\n_{dropped} more alerts were dropped by the rate limit since the previous message_"
        );
    }
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl fmt::Debug for SlackSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackSink")
            .field("min_interval", &self.webhook.min_interval())
            .finish_non_exhaustive()
    }
}

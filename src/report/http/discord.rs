use std::{fmt, time::Duration};

use serde_json::{json, Value};

use super::{limit::ChatWebhook, HttpSinkError, HttpTransport};
use crate::report::alert_text::{dropped_note, figure_text, headline, truncate};
use crate::{
    report::{Report, Sink, SinkError, SinkHealth},
    watch::{Alert, AlertState, Severity},
};

/// Characters of an embed's title Discord accepts (also the limit of a field's name).
const TITLE_CHARS: usize = 256;
/// Characters of an embed field's value Discord accepts.
const FIELD_VALUE_CHARS: usize = 1024;
/// Fields an embed may have.
const MAX_FIELDS: usize = 25;

/// Posts alerts to a Discord webhook, one message (one embed) per alert, rate-limited.
///
/// Other reports (deliveries, health) are ignored, and not counted as accepted. Each alert
/// becomes one request:
///
/// ```text
/// POST {webhook_url}
/// Content-Type: application/json
///
/// {"username": "webhook-monitor", "allowed_mentions": {"parse": []}, "embeds": [{
///   "title": "[critical] payments: failure rate above threshold (opened)",
///   "description": "kind: `failure_rate`",
///   "color": 14105161,
///   "timestamp": "2026-11-28T19:30:00Z",
///   "fields": [
///     {"name": "failure_rate", "value": "0.600", "inline": true},
///     {"name": "failed", "value": "12", "inline": true},
///     {"name": "handled", "value": "20", "inline": true},
///     {"name": "window_minutes", "value": "5", "inline": true}
///   ]
/// }]}
/// ```
///
/// The title is the alert's one-line summary without its figures (at most 256 characters);
/// the description its kind and, for an alert about one instance of a fleet, the instance
/// (`` kind: `instance_silent`, instance: `web-2` ``); the figures are the embed's fields (at most 25; floats with three decimals). The colour is
/// red (`0xD73A49`) for a critical alert opening, yellow (`0xDBAB09`) for a warning opening,
/// green (`0x2EA44F`) when one resolves; the timestamp is when the alert reached this state.
/// `allowed_mentions` is empty, so a route name can't ping anyone.
///
/// # Rate limit
///
/// At most one message per [`min_interval`](Self::min_interval) (Discord allows about 30 a
/// minute per webhook). An alert that comes sooner is dropped, counted as `dropped` in
/// [`SinkHealth`] (named `"discord"`), and the next message that goes out has the footer
/// `{"text": "N more alerts were dropped by the rate limit since the previous message"}`.
///
/// The webhook URL is a credential: it never appears in `Debug`, logs or errors.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use webhook_monitor::report::http::{DiscordSink, HttpTransport};
///
/// let transport = HttpTransport::builder().build()?;
/// let sink = DiscordSink::new(&transport, "https://discord.com/api/webhooks/123/XXXX")?
///     .min_interval(Duration::from_secs(10));
/// assert!(!format!("{sink:?}").contains("XXXX"));
/// # Ok::<_, webhook_monitor::report::http::HttpSinkError>(())
/// ```
pub struct DiscordSink {
    webhook: ChatWebhook,
}

impl DiscordSink {
    /// Default [`min_interval`](Self::min_interval): 2 s.
    pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(2);

    /// A sink posting to the Discord webhook `webhook_url`
    /// (`https://discord.com/api/webhooks/{id}/{token}`).
    ///
    /// # Errors
    ///
    /// [`HttpSinkError::InvalidUrl`] when `webhook_url` is not an absolute `http(s)` URL.
    pub fn new(transport: &HttpTransport, webhook_url: &str) -> Result<Self, HttpSinkError> {
        let webhook = ChatWebhook::new(
            transport,
            "discord",
            webhook_url,
            Self::DEFAULT_MIN_INTERVAL,
        )?;
        Ok(Self { webhook })
    }

    /// The least time between two messages. Defaults to [`Self::DEFAULT_MIN_INTERVAL`].
    #[must_use]
    pub fn min_interval(mut self, interval: Duration) -> Self {
        self.webhook.set_min_interval(interval);
        self
    }
}

impl Sink for DiscordSink {
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
        (AlertState::Resolved, _) => 0x2E_A4_4F,
        (_, Severity::Critical) => 0xD7_3A_49,
        _ => 0xDB_AB_09,
    };
    let fields: Vec<Value> = alert
        .figures
        .iter()
        .take(MAX_FIELDS)
        .map(|f| {
            json!({
                "name": truncate(&f.name, TITLE_CHARS),
                "value": truncate(&figure_text(&f.value), FIELD_VALUE_CHARS),
                "inline": true,
            })
        })
        .collect();
    let mut embed = json!({
        "title": headline(alert, TITLE_CHARS),
        "description": description(alert),
        "color": color,
        "timestamp": humantime::format_rfc3339_seconds(alert.at).to_string(),
        "fields": fields,
    });
    if dropped > 0 {
        embed["footer"] = json!({ "text": dropped_note(dropped) });
    }
    json!({
        "username": "webhook-monitor",
        "allowed_mentions": { "parse": [] },
        "embeds": [embed],
    })
}

/// ``kind: `failure_rate` ``, and ``, instance: `web-2` `` after it for an alert about one
/// instance.
fn description(alert: &Alert) -> String {
    let kind = alert.kind.as_str();
    match &alert.instance {
        Some(instance) => format!("kind: `{kind}`, instance: `{instance}`"),
        None => format!("kind: `{kind}`"),
    }
}

impl fmt::Debug for DiscordSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscordSink")
            .field("min_interval", &self.webhook.min_interval())
            .finish_non_exhaustive()
    }
}

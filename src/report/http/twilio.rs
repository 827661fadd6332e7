use std::{fmt, time::Duration};

use base64::Engine as _;
use http::{header::AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::Url;

use super::{
    join,
    limit::Limiter,
    parse_url,
    transport::{Backend, Call},
    HttpSinkError, HttpTransport,
};
use crate::report::alert_text::truncate;
use crate::{
    report::{Report, Sink, SinkError, SinkHealth},
    watch::{Alert, Severity},
};

/// Characters of an SMS text before the note of dropped alerts.
const TEXT_CHARS: usize = 320;

/// Sends alerts as SMS through Twilio's Messages API: one text per alert and recipient, only
/// critical alerts by default, rate-limited.
///
/// Other reports (deliveries, health), and alerts below [`min_severity`](Self::min_severity),
/// are ignored, and not counted as accepted. Both the opening and the resolution of an alert
/// are sent. Each alert becomes one request per recipient:
///
/// ```text
/// POST https://api.twilio.com/2010-04-01/Accounts/{account_sid}/Messages.json
/// Authorization: Basic base64({account_sid}:{auth_token})
/// Content-Type: application/x-www-form-urlencoded
///
/// To=%2B15550100&From=%2B15550199&Body=webhook-monitor%3A+%5Bcritical%5D+payments%3A+failure+rate+above+threshold+%28opened%29+failure_rate%3D0.600+failed%3D12+handled%3D20+window_minutes%3D5
/// ```
///
/// The text is `webhook-monitor: ` then the alert's one-line summary (severity, route, what was
/// detected, on which instance for an alert about one instance of a fleet, opened or resolved,
/// and its figures), cut to its first 320 characters, then
/// ` (+N dropped)` when the rate limit dropped `N` alerts since the previous text.
///
/// # Rate limit
///
/// At most one alert per [`min_interval`](Self::min_interval), 5 minutes by default: texts
/// cost money and wake people up. An alert that comes sooner is dropped, its texts (one per
/// recipient) counted as `dropped` in [`SinkHealth`] (named `"twilio"`, where `accepted`
/// counts texts), and the next one that goes out says how many alerts were dropped.
///
/// The auth token is a credential: it never appears in `Debug`, logs or errors, and neither do
/// the account SID or the phone numbers.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use webhook_monitor::{
///     report::http::{HttpTransport, TwilioSmsSink},
///     watch::Severity,
/// };
///
/// let transport = HttpTransport::builder().build()?;
/// let sink = TwilioSmsSink::new(&transport, "AC0123", "XXXX", "+15550199", "+15550100")?
///     .to("+15550101")
///     .min_interval(Duration::from_secs(600))
///     .min_severity(Severity::Warning);
/// assert!(!format!("{sink:?}").contains("XXXX"));
/// # Ok::<_, webhook_monitor::report::http::HttpSinkError>(())
/// ```
pub struct TwilioSmsSink {
    backend: Backend,
    account_sid: String,
    /// `Basic base64(sid:token)`, marked sensitive.
    authorization: HeaderValue,
    from: String,
    to: Vec<String>,
    messages_url: Url,
    limiter: Limiter,
    min_severity: Severity,
}

impl TwilioSmsSink {
    /// Default [`url`](Self::url): Twilio's API.
    pub const DEFAULT_URL: &'static str = "https://api.twilio.com";

    /// Default [`min_interval`](Self::min_interval): 5 min.
    pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(5 * 60);

    /// A sink texting `to` from `from` (phone numbers in E.164 form, `+15550100`, or a
    /// messaging service's sender), with the account `account_sid` and its `auth_token`.
    ///
    /// # Errors
    ///
    /// [`HttpSinkError::InvalidHeader`] when `account_sid` holds a `:`, which Basic
    /// authentication can't carry.
    pub fn new(
        transport: &HttpTransport,
        account_sid: &str,
        auth_token: &str,
        from: &str,
        to: &str,
    ) -> Result<Self, HttpSinkError> {
        if account_sid.contains(':') {
            return Err(HttpSinkError::InvalidHeader);
        }
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{account_sid}:{auth_token}"));
        let mut authorization = HeaderValue::try_from(format!("Basic {credentials}"))
            .map_err(|_| HttpSinkError::InvalidHeader)?;
        authorization.set_sensitive(true);
        let base = parse_url(Self::DEFAULT_URL)?;
        Ok(Self {
            backend: transport.backend("twilio"),
            messages_url: messages_url(&base, account_sid),
            account_sid: account_sid.to_owned(),
            authorization,
            from: from.to_owned(),
            to: vec![to.to_owned()],
            limiter: Limiter::new(Self::DEFAULT_MIN_INTERVAL),
            min_severity: Severity::Critical,
        })
    }

    /// Adds a recipient: each alert is texted to every one, one message each.
    #[must_use]
    pub fn to(mut self, number: &str) -> Self {
        self.to.push(number.to_owned());
        self
    }

    /// The API's base URL, for a proxy or a test server. Defaults to [`Self::DEFAULT_URL`].
    ///
    /// # Errors
    ///
    /// [`HttpSinkError::InvalidUrl`] when `base` is not an absolute `http(s)` URL.
    pub fn url(mut self, base: &str) -> Result<Self, HttpSinkError> {
        self.messages_url = messages_url(&parse_url(base)?, &self.account_sid);
        Ok(self)
    }

    /// The least time between two alerts texted. Defaults to [`Self::DEFAULT_MIN_INTERVAL`].
    #[must_use]
    pub fn min_interval(mut self, interval: Duration) -> Self {
        self.limiter = Limiter::new(interval);
        self
    }

    /// The least severity texted. Defaults to [`Severity::Critical`]: warnings are ignored.
    #[must_use]
    pub fn min_severity(mut self, severity: Severity) -> Self {
        self.min_severity = severity;
        self
    }
}

/// `{base}/2010-04-01/Accounts/{sid}/Messages.json`.
fn messages_url(base: &Url, account_sid: &str) -> Url {
    join(
        base,
        &["2010-04-01", "Accounts", account_sid, "Messages.json"],
    )
}

impl Sink for TwilioSmsSink {
    async fn send(&self, batch: &[Report]) -> Result<(), SinkError> {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, self.authorization.clone());
        let recipients = self.to.len() as u64;
        let mut messages = Vec::new();
        let alerts = batch.iter().filter_map(Report::as_alert);
        for alert in alerts.filter(|a| a.severity >= self.min_severity) {
            let Some(dropped) = self.limiter.admit(&self.backend, recipients) else {
                continue;
            };
            let text = text(alert, dropped);
            for to in &self.to {
                let body = form_urlencoded::Serializer::new(String::new())
                    .append_pair("To", to)
                    .append_pair("From", &self.from)
                    .append_pair("Body", &text)
                    .finish();
                let call = Call::post(
                    self.messages_url.clone(),
                    "application/x-www-form-urlencoded",
                    body,
                )
                .headers(&headers);
                messages.push((call, self.backend.pending(1)));
            }
        }
        self.backend
            .deliver_all(messages)
            .await
            .map_err(SinkError::new)
    }

    fn health(&self) -> Vec<SinkHealth> {
        vec![self.backend.health()]
    }
}

/// The text for `alert`, noting the `dropped` alerts before it.
fn text(alert: &Alert, dropped: u64) -> String {
    let full = format!("webhook-monitor: {alert}");
    let mut text = truncate(&full, TEXT_CHARS).to_owned();
    if dropped > 0 {
        text.push_str(&format!(" (+{dropped} dropped)"));
    }
    text
}

impl fmt::Debug for TwilioSmsSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioSmsSink")
            .field("recipients", &self.to.len())
            .field("min_interval", &self.limiter.min_interval())
            .field("min_severity", &self.min_severity)
            .finish_non_exhaustive()
    }
}

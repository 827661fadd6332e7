//! Sinks that ship reports over HTTP (feature `http`), on a shared [`HttpTransport`]:
//! [`JsonHttpSink`], [`SeiriSink`] and [`HealthchecksSink`] for reports; and for alerts, where
//! people are: [`SlackSink`], [`DiscordSink`] and [`TeamsSink`] (chat), [`PagerDutySink`] and
//! [`OpsgenieSink`] (on-call: opened alerts trigger, resolved ones resolve, one incident per
//! route and kind) and [`TwilioSmsSink`] (text messages, critical alerts by default).
//!
//! # What the transport does for every request
//!
//! - **Timeout**: each attempt is bounded by [`HttpTransportBuilder::timeout`] (connect, send,
//!   and reading the answer).
//! - **Retries**: connect errors, timeouts, broken connections, `429 Too Many Requests` and
//!   `5xx` answers are retried with exponential backoff and full jitter (each wait is drawn
//!   uniformly between zero and the exponential cap), or after the backend's `Retry-After`
//!   (seconds or an HTTP date) when it sends one. A request is given up when the next attempt
//!   would start after its [retry window](RetryPolicy::window).
//! - **No retry** on any other answer (`3xx`, `4xx`): the backend refused the report, and
//!   sending it again would not change that. It is counted as failed, and the first refusal of
//!   each sink is logged (`WARN`, target `webhook_monitor::report`). Redirects are not followed.
//! - **Circuit breaker**: after [`open_after`](RetryPolicy::open_after) failed attempts in a
//!   row the sink sends nothing for [`probe_after`](RetryPolicy::probe_after); then one request
//!   probes the backend while the others wait. Any answer from the backend closes the breaker;
//!   a failed probe opens it again.
//!
//! # Blocking, and where reports wait
//!
//! A sink's [`send`](crate::report::Sink::send) returns once its batch is delivered, refused,
//! or given up: while the backend is down it blocks, up to the retry window. Give it a queue of
//! its own in a [`Fanout`](crate::report::Fanout) entry: reports wait there, bounded by
//! [`SinkOptions::queue_capacity`](crate::report::SinkOptions::queue_capacity) (past it they
//! are dropped and counted), while the other sinks go on. The defaults agree: a batch retries
//! for up to [`RetryPolicy::DEFAULT_WINDOW`] (60 s), each attempt bounded by
//! [`HttpTransportBuilder::DEFAULT_TIMEOUT`] (10 s), within the reporter's default
//! [`sink_timeout`](crate::report::ReporterBuilder::sink_timeout) (75 s). Raise a longer
//! window's entry [`timeout`](crate::report::SinkOptions::timeout) (or the reporter's
//! `sink_timeout`, for a sink on its own) above the window plus one attempt: a `send` cut
//! short by the timeout counts its reports as failed while they were still being retried.
//!
//! # Counters
//!
//! Each sink reports one [`SinkHealth`](crate::report::SinkHealth) through
//! [`Sink::health`](crate::report::Sink::health): `accepted` reports (those the sink takes on;
//! a [`SlackSink`] takes alerts only, for instance) end as `sent`, `failed` or `dropped`, or are
//! still `queued`; `retries` counts retried requests, `consecutive_failures` the failed attempts
//! in a row, `down` whether the breaker is open, and `latency` is the last successful request's.
//!
//! # Secrets
//!
//! URLs (a Slack webhook URL is a credential, a ping URL's uuid nearly one), tokens and header
//! values never appear in `Debug`, logs or errors: sinks are named by their kind or host.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use webhook_monitor::report::{
//!     http::{HttpTransport, JsonHttpSink, RetryPolicy, SlackSink},
//!     Fanout, Reporter, SinkOptions, TracingSink,
//! };
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let window = Duration::from_secs(60);
//! let transport = HttpTransport::builder()
//!     .timeout(Duration::from_secs(5))
//!     .retry(RetryPolicy::default().window(window))
//!     .build()?;
//! let ingest = JsonHttpSink::new(&transport, "https://ingest.example.com/reports")?
//!     .bearer_token(std::env::var("INGEST_TOKEN")?)?;
//! let slack = SlackSink::new(&transport, &std::env::var("SLACK_WEBHOOK_URL")?)?;
//! // Each HTTP sink gets its own queue, and time for its retries.
//! let options = SinkOptions::new().timeout(window + Duration::from_secs(10));
//! let sink = Fanout::new()
//!     .sink("log", TracingSink::new())
//!     .sink_with("ingest", ingest, options.clone().batch_size(500).queue_capacity(50_000))
//!     .sink_with("slack", slack, options.alerts_only());
//! let (reporter, guard) = Reporter::spawn(sink);
//! // … hand `reporter` to `WebhookMonitorLayer::new` …
//! # drop(reporter);
//! guard.shutdown(Duration::from_secs(10)).await?;
//! # Ok(())
//! # }
//! ```

mod breaker;
mod counters;
mod discord;
mod healthchecks;
mod json;
mod limit;
mod opsgenie;
mod pagerduty;
mod retry;
mod retry_after;
mod seiri;
mod slack;
mod teams;
mod tls;
mod transport;
mod twilio;

use std::fmt;

use http::StatusCode;

pub use discord::DiscordSink;
pub use healthchecks::HealthchecksSink;
pub use json::JsonHttpSink;
pub use opsgenie::OpsgenieSink;
pub use pagerduty::PagerDutySink;
pub use retry::RetryPolicy;
#[cfg(fuzzing)]
pub(crate) use retry_after::retry_after;
pub use seiri::{SeiriMode, SeiriSink};
pub use slack::SlackSink;
pub use teams::TeamsSink;
pub use transport::{HttpTransport, HttpTransportBuilder};
pub use twilio::TwilioSmsSink;

use crate::{BoxError, Outcome};

/// Why an HTTP sink could not be built, or could not deliver.
///
/// Never names a URL, a token or a header value: they may be credentials. A failed
/// [`send`](crate::report::Sink::send) returns it as the source of its
/// [`SinkError`](crate::report::SinkError).
///
/// # Example
///
/// ```
/// use webhook_monitor::report::http::{HttpSinkError, HttpTransport, JsonHttpSink};
///
/// let transport = HttpTransport::builder().build()?;
/// let error = JsonHttpSink::new(&transport, "ftp://example.com/reports").unwrap_err();
/// assert!(matches!(error, HttpSinkError::InvalidUrl));
/// # Ok::<_, HttpSinkError>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum HttpSinkError {
    /// A URL given to a sink is not an absolute `http` or `https` URL.
    InvalidUrl,
    /// A header name or value given to a sink is not valid HTTP.
    InvalidHeader,
    /// The HTTP client could not be built (its TLS setup failed).
    Client(BoxError),
    /// The backend answered with a status that is not retried (a `4xx` other than `429`, or a
    /// `3xx`).
    Refused(StatusCode),
    /// The retry window ran out: the next attempt would have started after it.
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// The last attempt's status (`429` or `5xx`); `None` when it got no answer.
        status: Option<StatusCode>,
        /// The last attempt's error, when it got no answer (connect error, timeout, reset).
        source: Option<BoxError>,
    },
    /// The circuit breaker stays open past the retry window: nothing was sent.
    Down,
}

impl fmt::Display for HttpSinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl => f.write_str("invalid URL: absolute http(s) URL expected"),
            Self::InvalidHeader => f.write_str("invalid HTTP header name or value"),
            Self::Client(_) => f.write_str("could not build the HTTP client"),
            Self::Refused(status) => write!(f, "the backend refused the request: {status}"),
            Self::GaveUp {
                attempts,
                status: Some(status),
                ..
            } => write!(
                f,
                "gave up after {attempts} attempts, the last answered {status}"
            ),
            Self::GaveUp { attempts, .. } => {
                write!(
                    f,
                    "gave up after {attempts} attempts, the last got no answer"
                )
            }
            Self::Down => f.write_str("the backend is down: circuit breaker open"),
        }
    }
}

impl std::error::Error for HttpSinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Client(source)
            | Self::GaveUp {
                source: Some(source),
                ..
            } => Some(&**source),
            _ => None,
        }
    }
}

/// The rule for pings: a delivery went fine when it succeeded, or was a copy of one that did.
fn delivered_fine(outcome: Outcome) -> bool {
    matches!(outcome, Outcome::Success | Outcome::Duplicate)
}

/// Parses an absolute `http` or `https` URL.
fn parse_url(url: &str) -> Result<reqwest::Url, HttpSinkError> {
    reqwest::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
        .ok_or(HttpSinkError::InvalidUrl)
}

/// `base` with `segments` appended as path segments, each percent-encoded.
fn join(base: &reqwest::Url, segments: &[&str]) -> reqwest::Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        // `base` is an http(s) URL, so it has path segments; a trailing slash is dropped.
        path.pop_if_empty().extend(segments);
    }
    url
}

//! The client every HTTP sink shares ([`HttpTransport`] and its builder), and the send loop of
//! each sink's [`Backend`]: one attempt, its outcome, retries and the breaker's gate around it.

use std::{
    borrow::Cow,
    fmt,
    sync::{
        atomic::{AtomicBool, Ordering::Relaxed},
        Arc,
    },
    time::Duration,
};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{header::CONTENT_TYPE, HeaderMap, HeaderValue, Method, StatusCode};
use reqwest::Url;
use tokio::time::Instant;

use super::{
    breaker::Breaker,
    counters::{Counters, Pending},
    retry::{RetryPolicy, FOREVER},
    retry_after::retry_after,
    tls, HttpSinkError,
};
use crate::{
    report::{Report, SinkError, SinkHealth},
    watch::Alert,
    BoxError,
};

/// Requests one sink runs at once, when a batch needs several.
const CONCURRENCY: usize = 8;

/// Bytes of an answer read (and then discarded) so that its connection can be reused.
const DRAIN_LIMIT: usize = 64 * 1024;

/// Bytes of a refusal's body quoted in the log.
const QUOTED_BODY: usize = 256;

// The defaults agree: a batch's last attempt starts within the retry window and ends within
// its own timeout, before the reporter's sink timeout cuts it short (which would count the
// batch failed while its retries were still going).
const _: () = assert!(
    RetryPolicy::DEFAULT_WINDOW.as_secs() + HttpTransportBuilder::DEFAULT_TIMEOUT.as_secs()
        < crate::report::ReporterBuilder::DEFAULT_SINK_TIMEOUT.as_secs()
);

/// A pooled HTTP client and the [`RetryPolicy`] of the sinks built on it.
///
/// Cheap to clone: clones share one connection pool. Each sink built on a transport keeps its
/// own circuit breaker and counters, since each talks to its own backend.
///
/// TLS is rustls with the *ring* provider, passed to the client (no process-wide provider is
/// installed), and server certificates are checked by the operating system's verifier. HTTP/1.1,
/// redirects not followed (a redirected `POST` would lose its body).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use webhook_monitor::report::http::{HttpTransport, RetryPolicy};
///
/// let transport = HttpTransport::builder()
///     .timeout(Duration::from_secs(3))
///     .retry(
///         RetryPolicy::default()
///             .initial_backoff(Duration::from_millis(200))
///             .window(Duration::from_secs(120)),
///     )
///     .build()?;
/// # Ok::<_, webhook_monitor::report::http::HttpSinkError>(())
/// ```
#[derive(Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    timeout: Duration,
    retry: RetryPolicy,
}

impl HttpTransport {
    /// A builder, with the defaults: [`HttpTransportBuilder::DEFAULT_TIMEOUT`] and
    /// [`RetryPolicy::default`].
    pub fn builder() -> HttpTransportBuilder {
        HttpTransportBuilder {
            timeout: HttpTransportBuilder::DEFAULT_TIMEOUT,
            retry: RetryPolicy::default(),
        }
    }

    /// Per-backend state for a sink named `name` (its name in [`SinkHealth`] and logs).
    pub(super) fn backend(&self, name: impl Into<Cow<'static, str>>) -> Backend {
        Backend {
            transport: self.clone(),
            name: name.into(),
            breaker: Breaker::default(),
            counters: Arc::default(),
            refusal_logged: AtomicBool::new(false),
        }
    }
}

impl fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpTransport")
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// Settings for an [`HttpTransport`], from [`HttpTransport::builder`].
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use webhook_monitor::report::http::HttpTransport;
///
/// let transport = HttpTransport::builder().timeout(Duration::from_secs(2)).build()?;
/// # let _ = transport;
/// # Ok::<_, webhook_monitor::report::http::HttpSinkError>(())
/// ```
#[derive(Debug, Clone)]
pub struct HttpTransportBuilder {
    timeout: Duration,
    retry: RetryPolicy,
}

impl HttpTransportBuilder {
    /// Default [`timeout`](Self::timeout): 10 s.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    /// How long one attempt may take, from connecting to reading the answer's body; past it
    /// the attempt fails and is retried. Defaults to [`Self::DEFAULT_TIMEOUT`].
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Retries and circuit breaker. Defaults to [`RetryPolicy::default`].
    #[must_use]
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Builds the transport and its client.
    ///
    /// # Errors
    ///
    /// [`HttpSinkError::Client`] when the TLS setup fails (the platform verifier cannot load).
    pub fn build(self) -> Result<HttpTransport, HttpSinkError> {
        let tls = tls::client_config()?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("webhook-monitor/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HttpSinkError::Client(e.into()))?;
        Ok(HttpTransport {
            client,
            timeout: self.timeout,
            retry: self.retry,
        })
    }
}

/// One HTTP request, rebuilt for each attempt.
pub(super) struct Call {
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Bytes,
}

impl Call {
    /// `GET url`, without a body.
    pub(super) fn get(url: Url) -> Self {
        Self {
            method: Method::GET,
            url,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    /// `POST url` with `body` of the given content type.
    pub(super) fn post(url: Url, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        Self {
            method: Method::POST,
            url,
            headers,
            body: body.into(),
        }
    }

    /// Adds `headers` (overriding those of the same name).
    pub(super) fn headers(mut self, headers: &HeaderMap) -> Self {
        self.headers.extend(headers.clone());
        self
    }
}

/// A sink's view of its backend: the transport, the breaker and the counters.
pub(super) struct Backend {
    transport: HttpTransport,
    name: Cow<'static, str>,
    breaker: Breaker,
    counters: Arc<Counters>,
    refusal_logged: AtomicBool,
}

/// How one attempt ended.
enum Attempt {
    Delivered,
    Refused(StatusCode, Vec<u8>),
    Failed {
        status: Option<StatusCode>,
        source: Option<BoxError>,
        retry_after: Option<Duration>,
    },
}

impl Backend {
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// Counts `n` reports the sink takes on.
    pub(super) fn accepted(&self, n: u64) {
        self.counters.accepted(n);
    }

    /// Counts `n` accepted reports as dropped.
    pub(super) fn dropped(&self, n: u64) {
        self.counters.dropped(n);
    }

    /// Counts `n` reports as accepted, and returns them to settle.
    pub(super) fn accept(&self, n: u64) -> Pending {
        self.accepted(n);
        self.pending(n)
    }

    /// `n` accepted reports to settle as sent or failed once their request ends.
    pub(super) fn pending(&self, n: u64) -> Pending {
        self.counters.pending(n)
    }

    /// The counters, for [`Sink::health`](crate::report::Sink::health).
    pub(super) fn health(&self) -> SinkHealth {
        let mut health = self.counters.health(self.name.clone());
        self.breaker.health(&mut health);
        health
    }

    /// Runs `calls`, at most [`CONCURRENCY`] at once, settling each one's reports; returns the
    /// first error, after every call has ended.
    pub(super) async fn deliver_all(
        &self,
        calls: Vec<(Call, Pending)>,
    ) -> Result<(), HttpSinkError> {
        let mut results = futures_util::stream::iter(calls)
            .map(|(call, pending)| async move {
                let result = self.deliver(&call).await;
                pending.settle(result.is_ok());
                result
            })
            .buffer_unordered(CONCURRENCY);
        let mut first = Ok(());
        while let Some(result) = results.next().await {
            first = first.and(result);
        }
        first
    }

    /// Sends one call per alert of `batch` (built by `call`; other reports are ignored), one
    /// after the other, in order (an alert's resolution must not overtake its opening), each
    /// counted as one accepted report; returns the first error, after every call has ended.
    /// Those not sent when the `send` is cut short count as failed.
    pub(super) async fn deliver_alerts(
        &self,
        batch: &[Report],
        call: impl Fn(&Alert) -> Call,
    ) -> Result<(), SinkError> {
        let calls: Vec<_> = batch
            .iter()
            .filter_map(Report::as_alert)
            .map(|alert| (call(alert), self.accept(1)))
            .collect();
        let mut first = Ok(());
        for (call, pending) in calls {
            let result = self.deliver(&call).await;
            pending.settle(result.is_ok());
            first = first.and(result);
        }
        first.map_err(SinkError::new)
    }

    /// Sends `call` until it is delivered, refused, or its retry window runs out.
    pub(super) async fn deliver(&self, call: &Call) -> Result<(), HttpSinkError> {
        let policy = &self.transport.retry;
        let deadline = Instant::now() + policy.window.min(FOREVER);
        let mut attempts = 0;
        loop {
            let probe = self.breaker.admit(deadline).await?;
            let guard = self.breaker.probe_guard(probe);
            attempts += 1;
            let started = Instant::now();
            let attempt = self.attempt(call).await;
            guard.disarm();
            let (status, source, retry_after) = match attempt {
                Attempt::Delivered => {
                    self.breaker.answered(Some(started.elapsed()));
                    return Ok(());
                }
                Attempt::Refused(status, body) => {
                    self.breaker.answered(None);
                    self.log_refusal(status, &body);
                    return Err(HttpSinkError::Refused(status));
                }
                Attempt::Failed {
                    status,
                    source,
                    retry_after,
                } => (status, source, retry_after),
            };
            self.breaker.failed(probe, policy);
            let wait = retry_after.unwrap_or_else(|| policy.backoff(attempts));
            // `wait` may come from the backend: compared, never added to an instant.
            if wait > deadline.saturating_duration_since(Instant::now()) {
                return Err(HttpSinkError::GaveUp {
                    attempts,
                    status,
                    source,
                });
            }
            self.counters.retried();
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(&self, call: &Call) -> Attempt {
        let request = self
            .transport
            .client
            .request(call.method.clone(), call.url.clone())
            .headers(call.headers.clone())
            .body(call.body.clone());
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                return Attempt::Failed {
                    status: None,
                    source: Some(error.without_url().into()),
                    retry_after: None,
                }
            }
        };
        let status = response.status();
        if status.is_success() {
            drain(response, 0).await;
            Attempt::Delivered
        } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            let retry_after = retry_after(response.headers());
            drain(response, 0).await;
            Attempt::Failed {
                status: Some(status),
                source: None,
                retry_after,
            }
        } else {
            Attempt::Refused(status, drain(response, QUOTED_BODY).await)
        }
    }

    fn log_refusal(&self, status: StatusCode, body: &[u8]) {
        if !self.refusal_logged.swap(true, Relaxed) {
            tracing::warn!(
                target: "webhook_monitor::report",
                sink = %self.name,
                status = status.as_u16(),
                body = %String::from_utf8_lossy(body),
                "backend refused a report: not retried, counted as failed (logged once per sink)"
            );
        }
    }
}

/// Reads the answer's body, up to [`DRAIN_LIMIT`] bytes so that the connection can be reused,
/// and returns its first `keep` bytes.
async fn drain(mut response: reqwest::Response, keep: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut read = 0;
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = keep.saturating_sub(kept.len()).min(chunk.len());
        kept.extend_from_slice(&chunk[..room]);
        read += chunk.len();
        if read >= DRAIN_LIMIT {
            break;
        }
    }
    kept
}

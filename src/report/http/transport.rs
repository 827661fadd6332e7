//! The machinery every HTTP sink shares: the pooled client, retries with backoff, the circuit
//! breaker, and the counters behind [`SinkHealth`].

use std::{
    borrow::Cow,
    fmt,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{
    header::{CONTENT_TYPE, RETRY_AFTER},
    HeaderMap, HeaderValue, Method, StatusCode,
};
use reqwest::Url;
use rustls_platform_verifier::BuilderVerifierExt;
use tokio::{sync::Notify, time::Instant};

use super::HttpSinkError;
use crate::{report::SinkHealth, BoxError};

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

/// Longer waits are this long: `Instant + Duration` must not overflow.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 86_400);

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
            breaker: Mutex::new(Breaker::default()),
            changed: Notify::new(),
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
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(BuilderVerifierExt::with_platform_verifier)
            .map_err(|e| HttpSinkError::Client(e.into()))?
            .with_no_client_auth();
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

/// When to retry a request, and when to stop sending to a backend that keeps failing.
///
/// A failed attempt (no answer, `429` or `5xx`) is retried after the backend's `Retry-After`
/// when it sends one, otherwise after a random wait between zero and
/// `min(max_backoff, initial_backoff × 2^(retry − 1))` ("full jitter", so that many clients
/// do not retry in step). A request is given up when its next attempt would start after its
/// [`window`](Self::window), counted from its first attempt; a `Retry-After` past the window
/// gives it up at once.
///
/// After [`open_after`](Self::open_after) failed attempts in a row, the sink's circuit
/// breaker opens: no request for [`probe_after`](Self::probe_after), then one probe. An
/// answer closes it; a failure opens it again.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use webhook_monitor::report::http::RetryPolicy;
///
/// // Retry for up to 2 minutes; after 3 failures in a row, probe every 15 s.
/// let retry = RetryPolicy::default()
///     .max_backoff(Duration::from_secs(10))
///     .window(Duration::from_secs(120))
///     .open_after(3)
///     .probe_after(Duration::from_secs(15));
/// # let _ = retry;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    initial_backoff: Duration,
    max_backoff: Duration,
    window: Duration,
    open_after: u32,
    probe_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Self::DEFAULT_INITIAL_BACKOFF,
            max_backoff: Self::DEFAULT_MAX_BACKOFF,
            window: Self::DEFAULT_WINDOW,
            open_after: Self::DEFAULT_OPEN_AFTER,
            probe_after: Self::DEFAULT_PROBE_AFTER,
        }
    }
}

impl RetryPolicy {
    /// Default [`initial_backoff`](Self::initial_backoff): 500 ms.
    pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(500);
    /// Default [`max_backoff`](Self::max_backoff): 30 s.
    pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);
    /// Default [`window`](Self::window): 60 s. With the transport's default attempt timeout
    /// (10 s), a batch's retries end within the reporter's default
    /// [`sink_timeout`](crate::report::ReporterBuilder::sink_timeout) (75 s).
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
    /// Default [`open_after`](Self::open_after): 5 failed attempts.
    pub const DEFAULT_OPEN_AFTER: u32 = 5;
    /// Default [`probe_after`](Self::probe_after): 30 s.
    pub const DEFAULT_PROBE_AFTER: Duration = Duration::from_secs(30);

    /// The cap of the first retry's wait; each retry doubles it, up to
    /// [`max_backoff`](Self::max_backoff). Defaults to [`Self::DEFAULT_INITIAL_BACKOFF`].
    #[must_use]
    pub fn initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// The largest wait between two attempts (a `Retry-After` may ask for more). Defaults to
    /// [`Self::DEFAULT_MAX_BACKOFF`].
    #[must_use]
    pub fn max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// How long a request is retried, from its first attempt; zero makes one attempt. Reports
    /// wait for it in the queue in front of the sink. Defaults to [`Self::DEFAULT_WINDOW`].
    #[must_use]
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Failed attempts in a row that open the circuit breaker. Defaults to
    /// [`Self::DEFAULT_OPEN_AFTER`]; values below 1 are raised to 1.
    #[must_use]
    pub fn open_after(mut self, failures: u32) -> Self {
        self.open_after = failures.max(1);
        self
    }

    /// How long an open breaker sends nothing before one request probes the backend.
    /// Defaults to [`Self::DEFAULT_PROBE_AFTER`].
    #[must_use]
    pub fn probe_after(mut self, wait: Duration) -> Self {
        self.probe_after = wait;
        self
    }

    /// The wait before retry number `retry` (1 for the first): full jitter under the
    /// exponential cap.
    fn backoff(&self, retry: u32) -> Duration {
        let doubling = 2u32.saturating_pow(retry.saturating_sub(1));
        let cap = self
            .initial_backoff
            .saturating_mul(doubling)
            .min(self.max_backoff);
        cap.mul_f64(fastrand::f64())
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
    breaker: Mutex<Breaker>,
    /// Signalled when the breaker closes, opens again, or its probe is abandoned.
    changed: Notify,
    counters: Arc<Counters>,
    refusal_logged: AtomicBool,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    sent: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    retries: AtomicU64,
}

#[derive(Default)]
struct Breaker {
    consecutive_failures: u32,
    /// Open until then; at that time one request may probe.
    open_until: Option<Instant>,
    probing: bool,
    latency: Option<Duration>,
}

/// What the breaker lets a request do now.
enum Gate {
    Go,
    Probe,
    /// Wait until the breaker may be probed, or (`None`) for the probe in flight.
    Wait(Option<Instant>),
}

impl Breaker {
    fn gate(&mut self, now: Instant) -> Gate {
        match self.open_until {
            None => Gate::Go,
            Some(_) if self.probing => Gate::Wait(None),
            Some(at) if now >= at => {
                self.probing = true;
                Gate::Probe
            }
            Some(at) => Gate::Wait(Some(at)),
        }
    }
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
        self.counters.accepted.fetch_add(n, Relaxed);
    }

    /// Counts `n` accepted reports as dropped.
    pub(super) fn dropped(&self, n: u64) {
        self.counters.dropped.fetch_add(n, Relaxed);
    }

    /// Counts `n` reports as accepted, and returns them to settle.
    pub(super) fn accept(&self, n: u64) -> Pending {
        self.accepted(n);
        self.pending(n)
    }

    /// `n` accepted reports to settle as sent or failed once their request ends.
    pub(super) fn pending(&self, n: u64) -> Pending {
        Pending {
            counters: Arc::clone(&self.counters),
            n,
        }
    }

    /// The counters, for [`Sink::health`](crate::report::Sink::health).
    pub(super) fn health(&self) -> SinkHealth {
        let c = &self.counters;
        // Not one snapshot: saturate `queued` rather than trust the loads' order.
        let (sent, failed, dropped) = (
            c.sent.load(Relaxed),
            c.failed.load(Relaxed),
            c.dropped.load(Relaxed),
        );
        let accepted = c.accepted.load(Relaxed);
        let breaker = self.lock();
        SinkHealth {
            name: self.name.clone(),
            accepted,
            sent,
            failed,
            dropped,
            queued: accepted.saturating_sub(sent + failed + dropped),
            retries: c.retries.load(Relaxed),
            consecutive_failures: breaker.consecutive_failures,
            down: breaker.open_until.is_some(),
            latency: breaker.latency,
            panics: 0,
        }
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

    /// Sends `call` until it is delivered, refused, or its retry window runs out.
    pub(super) async fn deliver(&self, call: &Call) -> Result<(), HttpSinkError> {
        let policy = &self.transport.retry;
        let deadline = Instant::now() + policy.window.min(FOREVER);
        let mut attempts = 0;
        loop {
            let probe = self.admit(deadline).await?;
            let guard = ProbeGuard(probe.then_some(self));
            attempts += 1;
            let started = Instant::now();
            let attempt = self.attempt(call).await;
            guard.disarm();
            let (status, source, retry_after) = match attempt {
                Attempt::Delivered => {
                    self.answered(Some(started.elapsed()));
                    return Ok(());
                }
                Attempt::Refused(status, body) => {
                    self.answered(None);
                    self.log_refusal(status, &body);
                    return Err(HttpSinkError::Refused(status));
                }
                Attempt::Failed {
                    status,
                    source,
                    retry_after,
                } => (status, source, retry_after),
            };
            self.failed(probe);
            let wait = retry_after.unwrap_or_else(|| policy.backoff(attempts));
            // `wait` may come from the backend: compared, never added to an instant.
            if wait > deadline.saturating_duration_since(Instant::now()) {
                return Err(HttpSinkError::GaveUp {
                    attempts,
                    status,
                    source,
                });
            }
            self.counters.retries.fetch_add(1, Relaxed);
            tokio::time::sleep(wait).await;
        }
    }

    /// Waits until the breaker lets a request through; `Ok(true)` for the probe.
    async fn admit(&self, deadline: Instant) -> Result<bool, HttpSinkError> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before reading the state, so that no change is missed.
            changed.as_mut().enable();
            let now = Instant::now();
            let wake = match self.lock().gate(now) {
                Gate::Go => return Ok(false),
                Gate::Probe => return Ok(true),
                Gate::Wait(Some(at)) if at <= deadline => at,
                Gate::Wait(None) if now < deadline => deadline,
                Gate::Wait(_) => return Err(HttpSinkError::Down),
            };
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep_until(wake) => {}
            }
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

    /// The backend answered: it is up.
    fn answered(&self, latency: Option<Duration>) {
        let mut breaker = self.lock();
        breaker.consecutive_failures = 0;
        breaker.open_until = None;
        breaker.probing = false;
        if latency.is_some() {
            breaker.latency = latency;
        }
        drop(breaker);
        self.changed.notify_waiters();
    }

    /// An attempt failed: opens the breaker after too many in a row, or when it was the probe.
    fn failed(&self, probe: bool) {
        let policy = &self.transport.retry;
        let mut breaker = self.lock();
        breaker.consecutive_failures = breaker.consecutive_failures.saturating_add(1);
        if probe || breaker.consecutive_failures >= policy.open_after {
            breaker.open_until = Some(Instant::now() + policy.probe_after.min(FOREVER));
            breaker.probing = false;
            drop(breaker);
            self.changed.notify_waiters();
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

    fn lock(&self) -> MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Frees the breaker's probe slot if the probing request is dropped before its attempt ends.
struct ProbeGuard<'a>(Option<&'a Backend>);

impl ProbeGuard<'_> {
    /// The attempt ended: its outcome updates the breaker.
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if let Some(backend) = self.0 {
            backend.lock().probing = false;
            backend.changed.notify_waiters();
        }
    }
}

/// Reports in flight: settled as sent or failed, or counted failed if dropped unsettled (the
/// `send` was cancelled, by the reporter's timeout for instance).
#[must_use = "unsettled reports count as failed when dropped"]
pub(super) struct Pending {
    counters: Arc<Counters>,
    n: u64,
}

impl Pending {
    fn settle(mut self, delivered: bool) {
        let n = std::mem::take(&mut self.n);
        let counter = if delivered {
            &self.counters.sent
        } else {
            &self.counters.failed
        };
        counter.fetch_add(n, Relaxed);
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.counters.failed.fetch_add(self.n, Relaxed);
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

/// The wait a `Retry-After` header asks for: delay-seconds or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_cap() {
        let policy = RetryPolicy::default()
            .initial_backoff(Duration::from_millis(100))
            .max_backoff(Duration::from_millis(500));
        for (retry, cap) in [(1, 100), (2, 200), (3, 400), (4, 500), (40, 500)] {
            let waits: Vec<Duration> = (0..200).map(|_| policy.backoff(retry)).collect();
            let cap = Duration::from_millis(cap);
            assert!(waits.iter().all(|w| *w <= cap), "retry {retry}");
            // Spread over the whole range, not bunched near the cap.
            assert!(waits.iter().any(|w| *w < cap / 4), "retry {retry}");
            assert!(waits.iter().any(|w| *w > cap * 3 / 4), "retry {retry}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let header = |v: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
            retry_after(&headers)
        };
        assert_eq!(header("7"), Some(Duration::from_secs(7)));
        assert_eq!(header(" 0 "), Some(Duration::ZERO));
        let in_a_minute = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(61));
        let wait = header(&in_a_minute).unwrap();
        assert!(wait > Duration::from_secs(59) && wait <= Duration::from_secs(61));
        assert_eq!(
            header("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(header("soon"), None);
        // Found by fuzzing (the oracle's mistake, not the parser's): a value that is not
        // visible ASCII, here a no-break space after the number, is not read.
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_bytes(b" 2\xc2\xa0").unwrap());
        assert_eq!(retry_after(&headers), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }
}

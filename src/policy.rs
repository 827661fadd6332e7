//! Per-route settings: [`Policy`].

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime},
};

use http::StatusCode;

use crate::{
    dedupe::{DedupeKey, DedupeStore, StoreFailure},
    outcome::{Classify, DefaultClassify},
    payload::PayloadChecks,
    provider::{AttemptSource, Scheme, Source},
    watch::{QuietHours, Watch},
};

/// The clock a policy reads, for timestamps and `received_at`.
pub(crate) type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Everything one webhook route decides, in code.
///
/// A policy names the route (the name travels in every report), limits the body, states the
/// provider's response-timeout budget and decides how responses are classified. Build one with
/// [`Policy::custom`] and refine it with the setters, each of which documents its default.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use webhook_monitor::{provider::Source, Policy};
///
/// let policy = Policy::custom("orders")
///     .max_body_bytes(256 * 1024)
///     .timeout_budget(Duration::from_secs(5))
///     .delivery_id(Source::header("x-delivery-id"))
///     .event_type(Source::json("/type"));
/// assert_eq!(policy.name(), "orders");
/// ```
#[derive(Clone)]
pub struct Policy {
    pub(crate) name: Arc<str>,
    pub(crate) provider: Option<Arc<str>>,
    pub(crate) max_body_bytes: usize,
    pub(crate) body_timeout: Option<Duration>,
    pub(crate) timeout_budget: Option<Duration>,
    pub(crate) classify: Arc<dyn Classify>,
    pub(crate) fingerprint: FingerprintAlgorithm,
    pub(crate) scheme: Option<Arc<dyn Scheme>>,
    pub(crate) delivery_id: Option<Source>,
    pub(crate) event_type: Option<Source>,
    pub(crate) attempt: Option<AttemptSource>,
    pub(crate) sent_at: Option<Source>,
    pub(crate) clock: Option<Clock>,
    pub(crate) retry_horizon: Option<Duration>,
    pub(crate) dedupe: Option<Arc<dyn DedupeStore>>,
    pub(crate) dedupe_key: DedupeKey,
    pub(crate) dedupe_window: Option<Duration>,
    pub(crate) in_flight_ttl: Duration,
    pub(crate) on_store_failure: StoreFailure,
    pub(crate) duplicate_status: StatusCode,
    pub(crate) in_flight_retry_after: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) min_retry_interval: Duration,
    pub(crate) payload_checks: Option<Arc<PayloadChecks>>,
    pub(crate) watch: Watch,
}

impl Policy {
    /// Where the delivery fields (id, event type, send time, attempt) come from.
    pub(crate) fn sources(&self) -> impl Iterator<Item = &Source> {
        let attempt = self
            .attempt
            .as_ref()
            .map(|AttemptSource::Counter { source, .. }| source);
        [
            self.delivery_id.as_ref(),
            self.event_type.as_ref(),
            self.sent_at.as_ref(),
            attempt,
        ]
        .into_iter()
        .flatten()
    }

    /// The default body limit: 1 MiB.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

    /// Default [`body_timeout`](Self::body_timeout) of a policy without a timeout budget: 30 s,
    /// the longest any provider here waits for an answer (GitHub Enterprise Server).
    pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

    /// Default [`in_flight_ttl`](Self::in_flight_ttl): 60 s.
    pub const DEFAULT_IN_FLIGHT_TTL: Duration = Duration::from_secs(60);
    /// The shortest [`in_flight_ttl`](Self::in_flight_ttl): 1 s.
    pub const MIN_IN_FLIGHT_TTL: Duration = Duration::from_secs(1);
    /// Default [`dedupe_window`](Self::dedupe_window) when the provider's retry horizon is
    /// unknown: 24 hours.
    pub const DEFAULT_DEDUPE_WINDOW: Duration = Duration::from_secs(24 * 3600);
    /// Default `Retry-After` for a copy that arrives while the first is in the handler: 5 s.
    pub const DEFAULT_IN_FLIGHT_RETRY_AFTER: Duration = Duration::from_secs(5);
    /// Default attempt count past which a delivery is flagged `many_attempts`: 5.
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
    /// Default mean interval between attempts below which a delivery is flagged
    /// `rapid_retries`: 60 s.
    pub const DEFAULT_MIN_RETRY_INTERVAL: Duration = Duration::from_secs(60);

    /// Share of the [timeout budget](Self::timeout_budget), in percent, past which a delivery is
    /// flagged [`near_timeout`](crate::Flags::near_timeout).
    pub const NEAR_TIMEOUT_PERCENT: u32 = 80;

    /// A policy for a route named `name`, with no provider scheme.
    ///
    /// Defaults: a 1 MiB body limit, no timeout budget, [`DefaultClassify`], the xxh3-128 body
    /// fingerprint, no signature scheme, no identification, the system clock.
    pub fn custom(name: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            provider: None,
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            body_timeout: None,
            timeout_budget: None,
            classify: Arc::new(DefaultClassify::default()),
            fingerprint: FingerprintAlgorithm::Xxh3_128,
            scheme: None,
            delivery_id: None,
            event_type: None,
            attempt: None,
            sent_at: None,
            clock: None,
            retry_horizon: None,
            dedupe: None,
            dedupe_key: DedupeKey::DeliveryId,
            dedupe_window: None,
            in_flight_ttl: Self::DEFAULT_IN_FLIGHT_TTL,
            on_store_failure: StoreFailure::Open,
            duplicate_status: StatusCode::OK,
            in_flight_retry_after: Self::DEFAULT_IN_FLIGHT_RETRY_AFTER,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            min_retry_interval: Self::DEFAULT_MIN_RETRY_INTERVAL,
            payload_checks: None,
            watch: Watch::default(),
        }
    }

    /// The route's name, as it appears in reports.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renames the route in reports. A preset names the route after its provider: rename it when
    /// several routes use one provider (a Stripe Connect endpoint beside a direct one).
    #[must_use]
    pub fn rename(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Names the provider in reports (for example `"acme"`). Defaults to none.
    #[must_use]
    pub fn provider(mut self, provider: impl Into<Arc<str>>) -> Self {
        self.provider = Some(provider.into());
        self
    }

    /// Maximum request body size in bytes, inclusive. Larger bodies are answered
    /// `413 Payload Too Large` without calling the handler. Defaults to
    /// [`Self::DEFAULT_MAX_BODY_BYTES`] (1 MiB).
    #[must_use]
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// How long the body may take to arrive, counted from when the layer receives the request.
    /// Past it the layer answers `408 Request Timeout` without calling the handler, and reports
    /// [`RejectReason::BodyTimeout`](crate::RejectReason::BodyTimeout).
    ///
    /// A provider never takes longer to send than it waits for the answer, so this defaults to
    /// the [timeout budget](Self::timeout_budget), or [`Self::DEFAULT_BODY_TIMEOUT`] without
    /// one. It bounds what a client that trickles bytes can hold: a connection, and what it
    /// sent (the buffer grows with what arrives, never with what is declared).
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use webhook_monitor::Policy;
    ///
    /// // GitHub waits 10 s for the answer; a body still arriving after 5 s is not GitHub's.
    /// let policy = Policy::github("secret").body_timeout(Duration::from_secs(5));
    /// # let _ = policy;
    /// ```
    #[must_use]
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = Some(timeout);
        self
    }

    /// The provider's response timeout: how long it waits for an answer before it gives up and
    /// schedules a retry.
    ///
    /// A 2xx answered later than this is reported as [`Outcome::Late`](crate::Outcome::Late), and
    /// any answer past [`NEAR_TIMEOUT_PERCENT`](Self::NEAR_TIMEOUT_PERCENT) of it is flagged
    /// [`near_timeout`](crate::Flags::near_timeout). Time is counted from the moment the layer
    /// receives the request until the handler's response is ready. Defaults to none.
    #[must_use]
    pub fn timeout_budget(mut self, budget: Duration) -> Self {
        self.timeout_budget = Some(budget);
        self
    }

    /// Replaces the classifier that turns the handler's response into an
    /// [`Outcome`](crate::Outcome). Defaults to [`DefaultClassify`].
    ///
    /// A handler's [`Mark`](crate::Mark) and the timeout budget are applied after the classifier.
    #[must_use]
    pub fn classify_with(mut self, classify: impl Classify) -> Self {
        self.classify = Arc::new(classify);
        self
    }

    /// Sets the route's [watchers](crate::watch)' thresholds: `f` gets the current ones (the
    /// [defaults](Watch::default) unless changed) and returns the new ones. Turn them off with
    /// `.watch(|_| Watch::off())`.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use webhook_monitor::Policy;
    ///
    /// let policy = Policy::custom("orders")
    ///     .timeout_budget(Duration::from_secs(10))
    ///     .watch(|w| w.consecutive_failures(3).near_timeout(0.5));
    /// # let _ = policy;
    /// ```
    #[must_use]
    pub fn watch(mut self, f: impl FnOnce(Watch) -> Watch) -> Self {
        self.watch = f(self.watch);
        self
    }

    /// Expects at least `n` deliveries per `per`: a gap longer than `per / n` is reported as a
    /// [silence](crate::watch::AlertKind::Silence), by the reporter's worker, with no traffic at
    /// all. Shorthand for [`Watch::expect_at_least`]. Off by default.
    #[must_use]
    pub fn expect_at_least(self, n: u32, per: Duration) -> Self {
        self.watch(|w| w.expect_at_least(n, per))
    }

    /// When the route is expected to be silent: no silence alert opens then. Shorthand for
    /// [`Watch::quiet_hours`]. Defaults to none.
    #[must_use]
    pub fn quiet_hours(self, quiet: QuietHours) -> Self {
        self.watch(|w| w.quiet_hours(quiet))
    }

    /// How the body is fingerprinted in each [`Delivery`](crate::Delivery). Defaults to
    /// [`FingerprintAlgorithm::Xxh3_128`].
    #[must_use]
    pub fn fingerprint(mut self, algorithm: FingerprintAlgorithm) -> Self {
        self.fingerprint = algorithm;
        self
    }

    /// Where the provider's delivery id is. A body field is read only after the signature is
    /// verified. Defaults to none; `None` turns off a source a preset set (as do the other source
    /// setters).
    #[must_use]
    pub fn delivery_id(mut self, source: impl Into<Option<Source>>) -> Self {
        self.delivery_id = source.into();
        self
    }

    /// Where the event type is. Defaults to none.
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::{provider::Source, Policy};
    ///
    /// // Stripe's preset reads `type` from the body; this route's reports go without it.
    /// let policy = Policy::stripe("whsec_...").event_type(None);
    /// // A custom route reads it from a header.
    /// let custom = Policy::custom("orders").event_type(Source::header("x-event-type"));
    /// # let _ = (policy, custom);
    /// ```
    #[must_use]
    pub fn event_type(mut self, source: impl Into<Option<Source>>) -> Self {
        self.event_type = source.into();
        self
    }

    /// Where the delivery attempt number is. A value that is not a number is ignored. Defaults
    /// to none.
    #[must_use]
    pub fn attempt(mut self, source: impl Into<Option<AttemptSource>>) -> Self {
        self.attempt = source.into();
        self
    }

    /// Where the provider stamps when it first sent the delivery (or when the event happened):
    /// an RFC 3339 time in UTC or unix seconds (or milliseconds), in a header or a body field. The
    /// report then carries the delivery's lag: how late it arrives, retries included. Defaults to
    /// none (the presets set it where the provider documents one).
    #[must_use]
    pub fn sent_at(mut self, source: impl Into<Option<Source>>) -> Self {
        self.sent_at = source.into();
        self
    }

    /// Verifies every delivery's signature with `scheme`; a failed check answers
    /// `401 Unauthorized` without calling the handler. Defaults to none (the presets set one).
    #[must_use]
    pub fn verify_with(mut self, scheme: impl Scheme) -> Self {
        self.scheme = Some(Arc::new(scheme));
        self
    }

    /// The clock for signature timestamps and each delivery's `received_at`, for tests.
    /// Defaults to [`SystemTime::now`].
    #[must_use]
    pub fn clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// How long the provider keeps retrying a failed delivery (Stripe: 3 days). The presets set
    /// the provider's documented horizon; it sizes how long a delivery id is worth remembering.
    /// Defaults to none.
    #[must_use]
    pub fn retry_horizon(mut self, horizon: Duration) -> Self {
        self.retry_horizon = Some(horizon);
        self
    }

    /// Processes each delivery once: claims its key in `store` before calling the handler, marks
    /// it done on success, and releases it on failure, panic or cancellation so the provider's
    /// retry is processed. A copy of a processed delivery is answered with the
    /// [duplicate status](Self::duplicate_status) without calling the handler; a copy arriving
    /// while the first is in the handler gets `409 Conflict` with
    /// [`Retry-After`](Self::in_flight_retry_after). Defaults to none.
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::{dedupe::MemoryStore, Policy};
    ///
    /// let store = MemoryStore::new(); // share one store between routes, or one per route
    /// let policy = Policy::stripe("whsec_…").dedupe(store);
    /// # let _ = policy;
    /// ```
    #[must_use]
    pub fn dedupe(mut self, store: impl DedupeStore) -> Self {
        self.dedupe = Some(Arc::new(store));
        self
    }

    /// Checks each delivery's body ([`PayloadChecks`]: size, valid JSON, required and non-null
    /// fields, nesting depth), after its signature is verified and before dedupe. A rejecting
    /// check that fails answers `422 Unprocessable Entity` without calling the handler; a
    /// flagging one lets the delivery through and flags its report
    /// [`payload_flagged`](crate::Flags::payload_flagged). Either way the report's
    /// [`payload`](crate::DeliveryReport::payload) names the failed check. Defaults to none: no
    /// check, and no cost.
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::{payload::Check, PayloadChecks, Policy};
    ///
    /// let policy = Policy::stripe("whsec_…").payload_checks(
    ///     PayloadChecks::new()
    ///         .reject(Check::max_depth(32))
    ///         .reject(Check::require("/data/object/id"))
    ///         .flag(Check::not_null("/data/object/customer")),
    /// );
    /// # let _ = policy;
    /// ```
    #[must_use]
    pub fn payload_checks(mut self, checks: PayloadChecks) -> Self {
        self.payload_checks = Some(Arc::new(checks));
        self
    }

    /// What identifies a delivery. Defaults to [`DedupeKey::DeliveryId`].
    #[must_use]
    pub fn dedupe_key(mut self, key: DedupeKey) -> Self {
        self.dedupe_key = key;
        self
    }

    /// How long a processed delivery is remembered. Defaults to the provider's
    /// [retry horizon](Self::retry_horizon), or [`Self::DEFAULT_DEDUPE_WINDOW`] when unknown.
    #[must_use]
    pub fn dedupe_window(mut self, window: Duration) -> Self {
        self.dedupe_window = Some(window);
        self
    }

    /// How long a claim lasts once its holder is gone (the process died mid-handler): then a
    /// copy is processed again. While the handler runs, the layer renews the claim every half
    /// TTL, so a handler may take longer than this (a copy arriving meanwhile is answered `409`).
    /// Defaults to [`Self::DEFAULT_IN_FLIGHT_TTL`].
    ///
    /// # Panics
    ///
    /// Below [`Self::MIN_IN_FLIGHT_TTL`] (1 s): a claim that lapses at once, or is renewed in a
    /// tight loop, is a mistake.
    #[must_use]
    pub fn in_flight_ttl(mut self, ttl: Duration) -> Self {
        assert!(
            ttl >= Self::MIN_IN_FLIGHT_TTL,
            "Policy::in_flight_ttl: {ttl:?} is below the minimum of {:?}",
            Self::MIN_IN_FLIGHT_TTL
        );
        self.in_flight_ttl = ttl;
        self
    }

    /// What to do when the dedupe store cannot answer. Defaults to [`StoreFailure::Open`].
    #[must_use]
    pub fn on_store_failure(mut self, failure: StoreFailure) -> Self {
        self.on_store_failure = failure;
        self
    }

    /// The status for a copy of a processed delivery. A 2xx stops the provider's retries.
    /// Defaults to `200 OK`.
    #[must_use]
    pub fn duplicate_status(mut self, status: StatusCode) -> Self {
        self.duplicate_status = status;
        self
    }

    /// The `Retry-After` of the `409` for a copy arriving while the first is in the handler.
    /// Defaults to [`Self::DEFAULT_IN_FLIGHT_RETRY_AFTER`].
    #[must_use]
    pub fn in_flight_retry_after(mut self, after: Duration) -> Self {
        self.in_flight_retry_after = after;
        self
    }

    /// Flags a delivery `many_attempts` past `max_attempts` attempts (by the provider's count or
    /// the dedupe store's), and `rapid_retries` when retried at a mean interval below
    /// `min_interval`. Defaults to [`Self::DEFAULT_MAX_ATTEMPTS`] and
    /// [`Self::DEFAULT_MIN_RETRY_INTERVAL`].
    #[must_use]
    pub fn retry_thresholds(mut self, max_attempts: u32, min_interval: Duration) -> Self {
        self.max_attempts = max_attempts;
        self.min_retry_interval = min_interval;
        self
    }

    /// The body's deadline: [`body_timeout`](Self::body_timeout), else the timeout budget,
    /// else [`Self::DEFAULT_BODY_TIMEOUT`].
    pub(crate) fn body_timeout_or_default(&self) -> Duration {
        self.body_timeout
            .or(self.timeout_budget)
            .unwrap_or(Self::DEFAULT_BODY_TIMEOUT)
    }

    pub(crate) fn dedupe_window_or_default(&self) -> Duration {
        self.dedupe_window
            .or(self.retry_horizon)
            .unwrap_or(Self::DEFAULT_DEDUPE_WINDOW)
    }

    pub(crate) fn now(&self) -> SystemTime {
        self.clock.as_ref().map_or_else(SystemTime::now, |c| c())
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("name", &self.name)
            .field("provider", &self.provider)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("body_timeout", &self.body_timeout)
            .field("timeout_budget", &self.timeout_budget)
            .field("fingerprint", &self.fingerprint)
            .field("verifies", &self.scheme.is_some())
            .field("delivery_id", &self.delivery_id)
            .field("event_type", &self.event_type)
            .field("attempt", &self.attempt)
            .field("sent_at", &self.sent_at)
            .field("retry_horizon", &self.retry_horizon)
            .field("dedupe", &self.dedupe.is_some())
            .field("dedupe_key", &self.dedupe_key)
            .field("dedupe_window", &self.dedupe_window)
            .field("in_flight_ttl", &self.in_flight_ttl)
            .field("on_store_failure", &self.on_store_failure)
            .field("payload_checks", &self.payload_checks)
            .field("watch", &self.watch)
            .finish_non_exhaustive()
    }
}

/// The hash that fingerprints each delivery's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FingerprintAlgorithm {
    /// XXH3, 128 bits: fast (a few hundred nanoseconds for 2 KiB), not cryptographic.
    #[default]
    Xxh3_128,
    /// SHA-256: cryptographic, about 1.3 µs for 2 KiB. A route that dedupes by its body (see
    /// [`DedupeKey`](crate::dedupe::DedupeKey)) keys on this digest instead of hashing the body
    /// a second time.
    Sha256,
}

//! [`WebhookMonitor`]: the request path.

use std::{
    borrow::Cow,
    fmt,
    future::Future,
    panic::AssertUnwindSafe,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures_util::{future::Either, FutureExt};
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use tokio::time::Instant;
use tower_service::Service;

use crate::{
    body::{read_body, BodyError},
    dedupe::{self, Claim, StoreFailure, Token},
    delivery::{Delivery, DeliveryData, Fingerprint, SignatureStatus},
    future::ResponseFuture,
    layer::Shared,
    outcome::panic_message,
    payload::{Action, PayloadViolation},
    provider::{source, SignedRequest},
    report::{DeliveryReport, Flags, Report},
    Answer, BoxError, EmptyResponse, FailureKind, Mark, Outcome, Policy, RejectReason, Respond,
    WebhookBody,
};

/// The service that monitors a webhook route. Built by
/// [`WebhookMonitorLayer`](crate::WebhookMonitorLayer).
///
/// See the [crate docs](crate) for an example.
#[derive(Clone)]
pub struct WebhookMonitor<S, R = EmptyResponse> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
    /// Shapes the layer's own answers.
    pub(crate) respond: R,
}

impl<S: fmt::Debug, R> fmt::Debug for WebhookMonitor<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookMonitor")
            .field("inner", &self.inner)
            .field("shared", &self.shared)
            .field("respond", &std::any::type_name::<R>())
            .finish()
    }
}

impl<S, R> WebhookMonitor<S, R> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for WebhookMonitor<S, R>
where
    S: Service<Request<WebhookBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Respond<ResBody>,
    ReqBody: Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<BoxError>,
    ResBody: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let span = delivery_span(&self.shared.policy);
        let recorder = Recorder::new(Arc::clone(&self.shared), span.clone());
        // The inner service was driven ready by `poll_ready`; a fresh clone may not be. Move the
        // ready one into the future and keep the clone. See "Be careful when cloning inner
        // services" in the `tower_service::Service` docs.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        // Split here rather than in `handle`: an async fn keeps a slot for each argument for its
        // whole life, so passing the whole request would hold its parts twice.
        let (parts, body) = req.into_parts();
        let respond = self.respond.clone();
        ResponseFuture::new(handle(recorder, inner, respond, parts, body), span)
    }
}

/// The delivery's span: the handler runs in it, so that its own `tracing` events carry the
/// route and the delivery. The ids are recorded as the layer reads them, the outcome and status
/// at the end. With no subscriber interested, this is one check of the callsite's cached
/// interest, and a disabled span that every later step skips.
fn delivery_span(policy: &Policy) -> tracing::Span {
    use tracing::field::Empty;
    tracing::info_span!(
        target: "webhook_monitor::delivery",
        "webhook",
        route = &*policy.name,
        provider = policy.provider.as_deref(),
        delivery_id = Empty,
        event_type = Empty,
        attempt = Empty,
        outcome = Empty,
        detail = Empty,
        status = Empty,
    )
}

/// The pipeline for one delivery. Every exit goes through a `Recorder::finish*`; an early drop
/// of this future drops the recorder armed, which reports the delivery as cancelled.
///
/// An `async move` block rather than an `async fn`: an async fn moves its arguments into locals
/// and so stores them twice, and this future's size decides whether its allocation takes the
/// allocator's fast path.
#[allow(clippy::manual_async_fn)] // on purpose, see above
fn handle<S, R, ReqBody, ResBody>(
    mut rec: Recorder,
    mut inner: S,
    respond: R,
    mut parts: http::request::Parts,
    body: ReqBody,
) -> impl Future<Output = Result<Response<ResBody>, S::Error>>
where
    S: Service<Request<WebhookBody>, Response = Response<ResBody>>,
    R: Respond<ResBody>,
    ReqBody: Body,
    ReqBody::Error: Into<BoxError>,
{
    async move {
        let limit = rec.shared.policy.max_body_bytes;
        rec.identify(&parts.headers, None);

        // 1. Reject an over-long body on its declared length, before reading anything. The body's
        //    own exact size is authoritative; the header only matters when the body does not know.
        let hint = body.size_hint();
        let declared = hint.exact().or_else(|| content_length(&parts.headers));
        if let Some(n) = declared.filter(|&n| n > limit as u64) {
            rec.delivery().body_len = n;
            let reason = format!("declared body of {n} bytes exceeds the limit of {limit}");
            return Ok(rec.reject(&respond, RejectReason::TooLarge, reason));
        }

        // 2. Read it, enforcing the limit on what actually arrives, by the body's deadline.
        let bytes = match read_body(body, limit, rec.start, rec.shared.body_timeout).await {
            Ok(bytes) => bytes,
            Err(BodyError::TooLarge { read }) => {
                rec.delivery().body_len = read;
                let reason = format!("body exceeds the limit of {limit} bytes");
                return Ok(rec.reject(&respond, RejectReason::TooLarge, reason));
            }
            Err(BodyError::Read { read, source }) => {
                rec.delivery().body_len = read;
                let reason = format!("reading the body failed: {source}");
                return Ok(rec.reject(&respond, RejectReason::BodyRead, reason));
            }
            Err(BodyError::TimedOut { read }) => {
                let timeout = rec.shared.body_timeout;
                let reason =
                    format!("the body did not arrive within {timeout:?} ({read} bytes in)");
                rec.delivery().body_len = read;
                return Ok(rec.reject(&respond, RejectReason::BodyTimeout, reason));
            }
        };
        rec.body_read(&bytes);

        // 3. Verify the signature, then read the ids a verified body carries.
        let shared = Arc::clone(&rec.shared);
        if let Some(scheme) = &shared.policy.scheme {
            let now = rec.delivery().received_at;
            match scheme.verify(&SignedRequest::new(&parts.headers, &parts.uri, &bytes, now)) {
                Ok(verified) => {
                    rec.delivery().signature = SignatureStatus::Verified {
                        secret_index: verified.secret_index(),
                    };
                }
                Err(err) => {
                    rec.delivery().signature = SignatureStatus::Failed;
                    return Ok(rec.reject(&respond, RejectReason::from(&err), err.to_string()));
                }
            }
        }
        rec.identify(&parts.headers, Some(&bytes[..]));

        // 4. Check the payload, where the policy asks for it.
        if let Some(checks) = &shared.policy.payload_checks {
            match checks.evaluate(&bytes) {
                Some((violation, Action::Reject)) => {
                    let reason = violation.to_string();
                    rec.payload = Some(Box::new(violation));
                    return Ok(rec.reject(&respond, RejectReason::PayloadCheck, reason));
                }
                Some((violation, Action::Flag)) => {
                    rec.flags.payload_flagged = true;
                    rec.payload = Some(Box::new(violation));
                }
                None => {}
            }
        }

        // 5. Claim the delivery, so that only one copy reaches the handler.
        if let Some(store) = &shared.policy.dedupe {
            let policy = &shared.policy;
            let d = rec.delivery();
            let key = dedupe::delivery_key(
                policy,
                d.id(),
                d.fingerprint.as_ref(),
                &parts.headers,
                &bytes,
            );
            let token = Token::random();
            let now = rec.delivery().received_at;
            match store.claim(&key, token, policy.in_flight_ttl, now).await {
                Ok(Claim::Claimed {
                    attempt,
                    first_seen,
                }) => {
                    rec.delivery().times_seen = Some(attempt);
                    rec.delivery().first_seen = Some(first_seen);
                    rec.claim = Some((key, token));
                }
                Ok(Claim::InFlight { attempts }) => {
                    rec.delivery().times_seen = Some(attempts);
                    let retry_after = Some(policy.in_flight_retry_after);
                    let status = StatusCode::CONFLICT;
                    let outcome = Outcome::InFlight;
                    return Ok(rec.answer(&respond, outcome, status, None, retry_after));
                }
                Ok(Claim::Done { attempts, .. }) => {
                    rec.delivery().times_seen = Some(attempts);
                    let status = policy.duplicate_status;
                    return Ok(rec.answer(&respond, Outcome::Duplicate, status, None, None));
                }
                Err(err) => match policy.on_store_failure {
                    StoreFailure::Open => {
                        // The claim may have landed before the error (a timeout): settle it
                        // with the same token all the same. If it never landed, that is a no-op.
                        rec.flags.dedupe_unavailable = true;
                        rec.claim = Some((key, token));
                    }
                    StoreFailure::Closed => {
                        // The claim may have landed before the error (a timeout): give it up
                        // with the same token, or the provider's retries would be answered 409
                        // until it expires. In the background: the 503 does not wait on a store
                        // that just failed.
                        let window = policy.dedupe_window_or_default();
                        dedupe::release_later(store, key, token, window);
                        let reason = RejectReason::DedupeUnavailable;
                        return Ok(rec.reject(&respond, reason, err.to_string()));
                    }
                },
            }
        }

        // 6. Call the handler with the buffered body, catching a panic in `call` or in its future.
        parts.extensions.insert(rec.shared_delivery());
        let req = Request::from_parts(parts, WebhookBody::from(bytes));
        rec.handler_start = Some(Instant::now());
        // Build the future before awaiting it: a `match` scrutinee stays alive across an `.await` in
        // its arms, which would store the handler's future twice in this one.
        let caught = match std::panic::catch_unwind(AssertUnwindSafe(|| inner.call(req))) {
            Ok(future) => Either::Left(AssertUnwindSafe(future).catch_unwind()),
            Err(panic) => Either::Right(std::future::ready(Err(panic))),
        };
        // A claim is renewed while the handler runs, so that it outlives the handler however
        // long it takes.
        let result = match &rec.claim {
            Some(claim) => {
                let (result, held) = dedupe::hold(caught, claim, &shared.policy).await;
                rec.flags.claim_expired |= held.lost;
                rec.flags.dedupe_unavailable |= held.unavailable;
                result
            }
            None => caught.await,
        };
        rec.handler_end = Some(Instant::now());

        // 7. Classify; settle the claim before answering, so that a copy arriving after the
        //    response always finds the delivery done (or released).
        match result {
            Ok(Ok(mut res)) => {
                let mark = res.extensions_mut().remove::<Mark>();
                let (outcome, reason, fields) = rec.classify(res.status(), res.headers(), mark);
                rec.settle(matches!(outcome, Outcome::Success)).await;
                rec.send(Some(res.status()), outcome, reason, fields);
                Ok(res)
            }
            Ok(Err(err)) => {
                rec.settle(false).await;
                let outcome = Outcome::Failure(FailureKind::ServiceError);
                rec.send(None, outcome, None, Vec::new());
                Err(err)
            }
            Err(panic) => {
                rec.settle(false).await;
                let status = StatusCode::INTERNAL_SERVER_ERROR;
                let reason = panic_message(&*panic);
                Ok(rec.answer(&respond, Outcome::Panicked, status, reason, None))
            }
        }
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Builds the delivery's report as the pipeline learns things, and sends it exactly once.
///
/// Dropped while still armed (the response future was dropped mid-way), it reports
/// [`Outcome::Cancelled`]. That is why the pipeline never uses `?`: every exit finishes
/// explicitly.
struct Recorder {
    shared: Arc<Shared>,
    armed: bool,
    start: Instant,
    body_read: Duration,
    handler_start: Option<Instant>,
    handler_end: Option<Instant>,
    /// A dedupe claim was settled after the handler: the response was ready only then.
    settled: bool,
    /// A pointer to a shared record: the response future stays small enough for the
    /// allocator's fast path (see `handle`), the handler's extension shares it, and `send`
    /// moves it into the report, which travels the queue small.
    slot: Option<Delivery>,
    flags: Flags,
    /// The failed payload check, rejecting or flagging.
    payload: Option<Box<PayloadViolation>>,
    /// The dedupe claim this request holds: its key and owner token.
    claim: Option<(String, Token)>,
    /// The delivery's span (disabled when no subscriber wants it), for the ids and the outcome.
    /// A second handle: the `ResponseFuture` holds the one it enters on each poll. Entering it
    /// from in here instead (a wrapper around the handler's future borrowing this one) made
    /// this future larger and cost 160 instructions more per request (BENCHMARKS.md).
    span: tracing::Span,
}

impl Recorder {
    fn new(shared: Arc<Shared>, span: tracing::Span) -> Self {
        let start = Instant::now();
        let policy = &shared.policy;
        let delivery = Some(Delivery::new(DeliveryData::received(
            Arc::clone(&policy.name),
            policy.provider.clone(),
            policy.now(),
        )));
        Self {
            shared,
            armed: true,
            start,
            body_read: Duration::ZERO,
            handler_start: None,
            handler_end: None,
            settled: false,
            slot: delivery,
            flags: Flags::default(),
            payload: None,
            claim: None,
            span,
        }
    }

    /// The delivery, shared from here on: for the handler's extension.
    fn shared_delivery(&self) -> Delivery {
        self.slot
            .clone()
            .expect("the delivery is taken by `send`, after which nothing records")
    }

    /// The delivery being recorded; `send` takes it, once, at the end. Only before the handler
    /// is called: once the handler's extension shares it, this would copy it.
    fn delivery(&mut self) -> &mut DeliveryData {
        recorded(&mut self.slot)
    }

    /// Reads the delivery id, event type, attempt and send time the policy names: header
    /// sources before the body is read (`body` is `None`), body fields once the body is verified.
    fn identify(&mut self, headers: &HeaderMap, body: Option<&[u8]>) {
        let policy = &self.shared.policy;
        match body {
            None if self.shared.reads_headers => {
                source::read_headers(policy, headers, recorded(&mut self.slot));
            }
            Some(body) if self.shared.reads_body => {
                source::read_body(policy, body, recorded(&mut self.slot));
            }
            _ => return,
        }
        if let (false, Some(d)) = (self.span.is_disabled(), &self.slot) {
            record(&self.span, "delivery_id", d.id());
            record(&self.span, "event_type", d.event_type());
            record(&self.span, "attempt", d.attempt());
        }
    }

    /// The body is in: record its size, fingerprint and read time.
    fn body_read(&mut self, bytes: &[u8]) {
        let d = recorded(&mut self.slot);
        d.body_len = bytes.len() as u64;
        d.fingerprint = Some(Fingerprint::of(self.shared.policy.fingerprint, bytes));
        self.body_read = self.start.elapsed();
    }

    /// Rejects the request: the reason's status, and its details in the report.
    fn reject<B>(
        &mut self,
        respond: &impl Respond<B>,
        reason: RejectReason,
        detail: String,
    ) -> Response<B> {
        let status = reason.status();
        self.answer(
            respond,
            Outcome::Rejected(reason),
            status,
            Some(detail.into()),
            None,
        )
    }

    /// Answers for the layer, shaped by `respond`, and reports it: the handler was not called
    /// (or it panicked).
    fn answer<B>(
        &mut self,
        respond: &impl Respond<B>,
        outcome: Outcome,
        status: StatusCode,
        reason: Option<Cow<'static, str>>,
        retry_after: Option<Duration>,
    ) -> Response<B> {
        // Read only: after a panic the handler's extension may still share the record.
        let delivery = self
            .slot
            .as_ref()
            .expect("`send` has not taken the delivery yet");
        if delivery.fingerprint().is_none() {
            self.body_read = self.start.elapsed(); // answered while reading
        }
        let mut res = respond.respond(&Answer {
            status,
            outcome,
            reason: reason.as_deref(),
            retry_after,
            delivery,
        });
        if let Some(after) = retry_after {
            let secs = HeaderValue::from(after.as_secs().max(1));
            res.headers_mut().entry(header::RETRY_AFTER).or_insert(secs);
        }
        self.send(Some(status), outcome, reason, Vec::new());
        res
    }

    /// The handler answered: its outcome, by the policy's classifier and the handler's mark.
    fn classify(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        mark: Option<Mark>,
    ) -> (Outcome, Option<Cow<'static, str>>, Vec<crate::Field>) {
        let outcome = self.shared.policy.classify.classify(status, headers);
        match mark {
            Some(Mark {
                failure: Some(reason),
                fields,
            }) => (Outcome::Failure(FailureKind::Marked), Some(reason), fields),
            Some(Mark {
                failure: None,
                fields,
            }) => (outcome, None, fields),
            None => (outcome, None, Vec::new()),
        }
    }

    /// Settles the dedupe claim, if any: done when the delivery was processed, released
    /// otherwise so that the provider's retry is processed.
    async fn settle(&mut self, processed: bool) {
        let Some((key, token)) = self.claim.take() else {
            return;
        };
        self.settled = true;
        let policy = &self.shared.policy;
        let Some(store) = &policy.dedupe else {
            return;
        };
        let window = policy.dedupe_window_or_default();
        let settled = if processed {
            store.complete(&key, token, window, policy.now()).await
        } else {
            store.release(&key, token, window).await
        };
        match settled {
            Ok(true) => {}
            // The claim expired while the handler ran: a copy may have been processed too. (After
            // a failed claim, a claim that never landed is expected.)
            Ok(false) => self.flags.claim_expired |= !self.flags.dedupe_unavailable,
            Err(_) => self.flags.dedupe_unavailable = true,
        }
    }

    /// Sends the report and disarms the recorder.
    fn send(
        &mut self,
        status: Option<StatusCode>,
        mut outcome: Outcome,
        reason: Option<Cow<'static, str>>,
        fields: Vec<crate::Field>,
    ) {
        self.armed = false;
        let Some(delivery) = self.slot.take() else {
            return; // sent already: `send` runs once
        };
        // The handler's end is when the response was ready, unless settling a claim took time
        // after it.
        let now = match self.handler_end {
            Some(end) if !self.settled => end,
            _ => Instant::now(),
        };
        let total = now - self.start;
        let handler = self
            .handler_start
            .map_or(Duration::ZERO, |h| self.handler_end.unwrap_or(now) - h);
        let policy = &self.shared.policy;
        let mut flags = self.flags;
        let attempts = delivery.attempt().max(delivery.times_seen());
        flags.many_attempts = attempts.is_some_and(|n| n > policy.max_attempts);
        flags.rapid_retries = delivery
            .mean_retry_interval()
            .is_some_and(|mean| mean < policy.min_retry_interval);
        if let Some(budget) = policy.timeout_budget {
            if total > budget {
                flags.over_budget = true;
                if outcome == Outcome::Success {
                    outcome = Outcome::Late;
                }
            } else {
                flags.near_timeout = total > budget / 100 * Policy::NEAR_TIMEOUT_PERCENT;
            }
        }
        if !self.span.is_disabled() {
            self.span.record("outcome", outcome.as_str());
            record(&self.span, "detail", outcome.detail());
            record(&self.span, "status", status.map(|s| s.as_u16()));
        }
        let report = DeliveryReport {
            delivery,
            status,
            outcome,
            reason,
            body_read: self.body_read,
            handler,
            total,
            flags,
            fields,
            payload: self.payload.take(),
        };
        self.shared.reporter.try_report(Report::Delivery(report));
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Cancelled mid-way. Release the claim in the background, so the provider's retry is
        // processed without waiting for the claim to expire; `Drop` cannot wait for it.
        if let (Some((key, token)), Some(store)) = (self.claim.take(), &self.shared.policy.dedupe) {
            let window = self.shared.policy.dedupe_window_or_default();
            dedupe::release_later(store, key, token, window);
        }
        // `try_report` never blocks, so reporting from `Drop` is safe.
        self.send(None, Outcome::Cancelled, None, Vec::new());
    }
}

/// Records `value` in `span`, when there is one. (Recording `None` records nothing, but
/// `tracing-subscriber`'s `fmt` still adds a separator for it.)
fn record(span: &tracing::Span, field: &str, value: Option<impl tracing::Value>) {
    if let Some(value) = value {
        span.record(field, value);
    }
}

/// The delivery in a recorder's slot (a function, so that it borrows the slot field alone).
fn recorded(slot: &mut Option<Delivery>) -> &mut DeliveryData {
    slot.as_mut()
        .expect("the delivery is taken by `send`, after which nothing records")
        .make_mut()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The boxed response future takes glibc's allocation fast path (its tcache serves up to
    /// 1,032 bytes) only while it is small enough: past it, every request paid about 1,200
    /// instructions more in `malloc` (callgrind, `monitored-id`). Anything a request keeps
    /// across the handler's wait (the claim's renewal) must stay out of line.
    #[test]
    fn the_response_future_fits_the_allocators_fast_path() {
        let (reporter, _guard, _worker) =
            crate::report::Reporter::builder().pair(crate::report::MemorySink::new());
        let layer = crate::WebhookMonitorLayer::new(Policy::custom("route"), reporter);
        let router = axum::Router::new().route("/", axum::routing::post(|| async { "ok" }));
        let service = tower_layer::Layer::layer(&layer, router.clone());
        let (parts, body) = Request::new(axum::body::Body::empty()).into_parts();
        let recorder = Recorder::new(Arc::clone(&service.shared), tracing::Span::none());
        let respond = crate::EmptyResponse;
        let future = handle::<_, _, _, axum::body::Body>(recorder, router, respond, parts, body);
        let size = std::mem::size_of_val(&future);
        assert!(size <= 1024, "the response future is {size} bytes");
    }
}

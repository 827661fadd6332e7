//! Testing your own webhook route: sign requests as the provider does with
//! `webhook_monitor::testing`, send them through your app in-process with
//! `tower::ServiceExt::oneshot`, and assert on the status and on the report a `MemorySink`
//! received.
//!
//! Run the tests with `cargo test --example testing_signers` (`cargo test` runs them too: the
//! example is declared with `test = true`). Run with `cargo run --example testing_signers` to
//! run the same checks once, printing each; nothing listens on a socket either way.
//!
//! The app is a Stripe route that books payments. Copy the shape into your own tests:
//!
//! 1. build the app from a function that takes the `Policy` and the `Reporter`, so a test can
//!    pass a reporter into a `MemorySink`, and freeze the policy's clock;
//! 2. sign the body with the provider's signer (`testing::stripe`, `testing::github`, …) at
//!    that clock's time, with the same secret the policy has;
//! 3. send it with `app.clone().oneshot(request)` and check the status;
//! 4. shut the reporter down (`guard.shutdown(..)` sends every queued report) and check the
//!    reports: outcome, signature, delivery id, event type.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    body::Body,
    extract::{Json, State},
    http::{HeaderMap, Request, StatusCode},
    routing::post,
    Extension, Router,
};
use serde_json::Value;
use tower::ServiceExt;
use webhook_monitor::{
    dedupe::MemoryStore,
    report::{MemorySink, Reporter},
    testing, Delivery, DeliveryReport, Outcome, Policy, RejectReason, ReporterGuard,
    SignatureStatus, WebhookMonitorLayer,
};

/// The signing secret the tests use (production reads the real one from its configuration).
const SECRET: &str = "whsec_test_secret";

/// The payments the app booked, by Stripe event id.
type Ledger = Arc<Mutex<Vec<String>>>;

/// The handler under test: books a `payment_intent.succeeded`, ignores other events.
async fn stripe(
    State(ledger): State<Ledger>,
    Extension(delivery): Extension<Delivery>,
    Json(event): Json<Value>,
) -> StatusCode {
    if delivery.event_type() == Some("payment_intent.succeeded") {
        let id = delivery.id().unwrap_or_default().to_owned();
        ledger
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(id);
    }
    match event["data"]["object"]["amount"].as_u64() {
        Some(_) => StatusCode::OK,
        None => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// The app, as production builds it, but with the policy and reporter passed in.
fn app(policy: Policy, reporter: Reporter, ledger: Ledger) -> Router {
    Router::new()
        .route("/webhooks/stripe", post(stripe))
        .route_layer(WebhookMonitorLayer::new(policy, reporter))
        .with_state(ledger)
}

/// The production policy of the route.
fn stripe_policy(secret: &str) -> Policy {
    Policy::stripe(secret)
        .timeout_budget(Duration::from_secs(10))
        .dedupe(MemoryStore::new())
}

/// The time the tests run at, in unix seconds: the policy's clock is frozen there, so a
/// signature made at `NOW` is always fresh and one made an hour before is always stale.
const NOW: u64 = 1_700_000_000;

/// The app under test, a `MemorySink` that receives its reports, and what it booked.
struct Harness {
    app: Router,
    sink: MemorySink,
    guard: ReporterGuard,
    ledger: Ledger,
}

impl Harness {
    fn new() -> Self {
        let sink = MemorySink::new();
        let (reporter, guard) = Reporter::spawn(sink.clone());
        let policy = stripe_policy(SECRET).clock(|| UNIX_EPOCH + Duration::from_secs(NOW));
        let ledger = Ledger::default();
        Self {
            app: app(policy, reporter, ledger.clone()),
            sink,
            guard,
            ledger,
        }
    }

    /// Sends `body` with `headers` through the app, in-process, and returns the status.
    async fn send(&self, body: &str, headers: HeaderMap) -> StatusCode {
        let mut req = Request::post("/webhooks/stripe")
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .expect("a valid request");
        req.headers_mut().extend(headers);
        let res = self.app.clone().oneshot(req).await;
        res.expect("the router never fails").status()
    }

    /// Stops the reporter, which sends every queued report first, and returns the deliveries'
    /// reports, in order, with what the handler booked.
    async fn finish(self) -> (Vec<DeliveryReport>, Vec<String>) {
        let drained = self.guard.shutdown(Duration::from_secs(5)).await;
        drained.expect("the memory sink takes every report");
        let reports = self.sink.reports();
        let deliveries = reports.iter().filter_map(|r| r.as_delivery().cloned());
        let booked = self
            .ledger
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        (deliveries.collect(), booked)
    }
}

const PAID: &str = r#"{"id":"evt_1","type":"payment_intent.succeeded","data":{"object":{"id":"pi_1","amount":1200}}}"#;

/// A correctly signed event is verified, identified, booked once; Stripe's retry of it is
/// answered without the handler.
async fn a_signed_event_is_booked_once() {
    let h = Harness::new();
    let signed = testing::stripe(SECRET, PAID.as_bytes(), NOW);
    assert_eq!(h.send(PAID, signed).await, StatusCode::OK);
    // Stripe signs every attempt afresh: a later timestamp, the same event.
    let retry = testing::stripe(SECRET, PAID.as_bytes(), NOW + 60);
    assert_eq!(h.send(PAID, retry).await, StatusCode::OK);

    let (reports, booked) = h.finish().await;
    assert_eq!(booked, ["evt_1"], "booked once");
    let [first, retry] = &reports[..] else {
        panic!("two reports, got {reports:#?}");
    };
    assert_eq!(first.outcome, Outcome::Success);
    assert_eq!(
        first.delivery.signature(),
        SignatureStatus::Verified { secret_index: 0 }
    );
    assert_eq!(first.delivery.id(), Some("evt_1"));
    assert_eq!(
        first.delivery.event_type(),
        Some("payment_intent.succeeded")
    );
    assert_eq!(retry.outcome, Outcome::Duplicate);
    assert_eq!(retry.handler, Duration::ZERO, "the handler was not called");
}

/// A forged signature is answered 401 and never reaches the handler.
async fn a_forged_signature_never_reaches_the_handler() {
    let h = Harness::new();
    let forged = testing::stripe("whsec_someone_else", PAID.as_bytes(), NOW);
    assert_eq!(h.send(PAID, forged).await, StatusCode::UNAUTHORIZED);

    let (reports, booked) = h.finish().await;
    assert!(booked.is_empty());
    assert_eq!(
        reports[0].outcome,
        Outcome::Rejected(RejectReason::BadSignature)
    );
}

/// A correctly signed event replayed an hour later is refused: Stripe's tolerance is 5 min.
async fn a_replayed_signature_is_stale() {
    let h = Harness::new();
    let replayed = testing::stripe(SECRET, PAID.as_bytes(), NOW - 3600);
    assert_eq!(h.send(PAID, replayed).await, StatusCode::UNAUTHORIZED);

    let (reports, booked) = h.finish().await;
    assert!(booked.is_empty());
    assert_eq!(
        reports[0].outcome,
        Outcome::Rejected(RejectReason::StaleTimestamp)
    );
}

/// An event the handler cannot process is reported as the handler's failure, with its status.
async fn an_event_without_an_amount_is_a_client_error() {
    let h = Harness::new();
    let body = r#"{"id":"evt_2","type":"charge.refunded","data":{"object":{"id":"ch_2"}}}"#;
    let signed = testing::stripe(SECRET, body.as_bytes(), NOW);
    assert_eq!(h.send(body, signed).await, StatusCode::UNPROCESSABLE_ENTITY);

    let (reports, _) = h.finish().await;
    assert_eq!(
        reports[0].outcome,
        Outcome::Failure(webhook_monitor::FailureKind::ClientError)
    );
    assert_eq!(reports[0].status, Some(StatusCode::UNPROCESSABLE_ENTITY));
}

/// `cargo run --example testing_signers`: the same checks, once, without the test harness.
#[tokio::main]
async fn main() {
    let started = SystemTime::now();
    a_signed_event_is_booked_once().await;
    println!("ok  a signed event is booked once; Stripe's retry is a duplicate");
    a_forged_signature_never_reaches_the_handler().await;
    println!("ok  a forged signature never reaches the handler (401)");
    a_replayed_signature_is_stale().await;
    println!("ok  a signature replayed an hour later is stale (401)");
    an_event_without_an_amount_is_a_client_error().await;
    println!("ok  an event the handler refuses is reported as its failure (422)");
    let took = started.elapsed().unwrap_or_default();
    println!("\n4 checks passed in {took:.1?}; `cargo test --example testing_signers` runs them as tests");
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_signed_event_is_booked_once() {
        super::a_signed_event_is_booked_once().await;
    }

    #[tokio::test]
    async fn a_forged_signature_never_reaches_the_handler() {
        super::a_forged_signature_never_reaches_the_handler().await;
    }

    #[tokio::test]
    async fn a_replayed_signature_is_stale() {
        super::a_replayed_signature_is_stale().await;
    }

    #[tokio::test]
    async fn an_event_without_an_amount_is_a_client_error() {
        super::an_event_without_an_amount_is_a_client_error().await;
    }
}

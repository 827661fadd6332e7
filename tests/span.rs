//! The span per delivery: a handler's own `tracing` events carry the delivery they belong to,
//! and the span closes with the outcome. A real server on loopback, a real `fmt` subscriber.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::{routing::post, Router};
use http::StatusCode;
use tracing_subscriber::fmt::format::FmtSpan;
use webhook_monitor::{
    provider::{AttemptSource, Source},
    Policy,
};

use common::{full, monitored, send, SharedBuf};

const SECRET: &str = "whsec_span_test";

/// Captures this thread's events, and each span's close with its fields, until the guard is
/// dropped. The tests run on a current_thread runtime: the server's tasks are on this thread.
fn capture() -> (SharedBuf, tracing::subscriber::DefaultGuard) {
    let logs = SharedBuf::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_span_events(FmtSpan::CLOSE)
        .with_writer(move || writer.clone())
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

/// The one line of `logs` that contains `needle`.
fn line<'a>(logs: &'a str, needle: &str) -> &'a str {
    let lines: Vec<&str> = logs.lines().filter(|l| l.contains(needle)).collect();
    assert_eq!(lines.len(), 1, "one line with {needle:?} in:\n{logs}");
    lines[0]
}

async fn handler() -> StatusCode {
    tracing::info!(step = "charge", "handler ran");
    StatusCode::OK
}

/// Posts `body` to the monitored route, signed with `secret` as Stripe signs, and waits for
/// its report.
async fn send_signed(m: &common::Monitored, secret: &str, body: &'static [u8]) -> StatusCode {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let headers = webhook_monitor::testing::stripe(secret, body, now);
    let signature = headers["stripe-signature"].to_str().unwrap();
    let (status, _) = send(
        &m.url("/hook"),
        full(body),
        &[("stripe-signature", signature)],
    )
    .await;
    m.report(1).await;
    status
}

#[tokio::test]
async fn a_handlers_events_carry_the_verified_delivery_and_the_span_closes_with_its_outcome() {
    let (logs, _guard) = capture();
    let app = Router::new().route("/hook", post(handler));
    let m = monitored(Policy::stripe(SECRET), app).await;
    let body =
        br#"{"id":"evt_span_1","object":"event","type":"invoice.paid","created":1700000000}"#;
    assert_eq!(send_signed(&m, SECRET, body).await, StatusCode::OK);

    let logs = logs.text();
    let event = line(&logs, "handler ran");
    assert!(
        event.contains(
            r#"webhook{route="stripe" provider="stripe" delivery_id="evt_span_1" event_type="invoice.paid"}"#
        ),
        "{event}"
    );
    assert!(event.contains(r#"step="charge""#), "{event}");
    let close = line(&logs, "close");
    assert!(
        close.contains(r#"outcome="success" status=200"#),
        "the span closes with the outcome and status: {close}"
    );
    assert!(close.contains(r#"delivery_id="evt_span_1""#), "{close}");
}

#[tokio::test]
async fn a_rejected_delivery_closes_its_span_with_the_reason_and_no_unverified_ids() {
    let (logs, _guard) = capture();
    let app = Router::new().route("/hook", post(handler));
    let m = monitored(Policy::stripe(SECRET), app).await;
    let body = br#"{"id":"evt_forged","type":"invoice.paid"}"#;
    let status = send_signed(&m, "whsec_someone_else", body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let logs = logs.text();
    assert!(!logs.contains("handler ran"), "{logs}");
    let close = line(&logs, "close");
    assert!(
        close.contains(r#"outcome="rejected" detail="bad_signature" status=401"#),
        "{close}"
    );
    // The body's id is read only once the signature checks out.
    assert!(!close.contains("evt_forged"), "{close}");
}

#[tokio::test]
async fn header_ids_and_the_attempt_are_recorded() {
    let (logs, _guard) = capture();
    let app = Router::new().route("/hook", post(handler));
    let policy = Policy::custom("orders")
        .provider("shop")
        .delivery_id(Source::header("x-delivery"))
        .event_type(Source::header("x-event"))
        .attempt(AttemptSource::count(Source::header("x-attempt")));
    let m = monitored(policy, app).await;
    let headers = [
        ("x-delivery", "d-42"),
        ("x-event", "order.created"),
        ("x-attempt", "3"),
    ];
    let (status, _) = send(&m.url("/hook"), full("{}"), &headers).await;
    assert_eq!(status, StatusCode::OK);
    m.report(1).await;

    let logs = logs.text();
    let event = line(&logs, "handler ran");
    assert!(
        event.contains(
            r#"webhook{route="orders" provider="shop" delivery_id="d-42" event_type="order.created" attempt=3}"#
        ),
        "{event}"
    );
}

//! Every outcome through a real server on 127.0.0.1:0, driven by a real HTTP client.
#![cfg(feature = "axum")]
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use axum::{
    extract::Json,
    http::StatusCode,
    response::{IntoResponse, Redirect},
    routing::post,
    Router,
};
use bytes::Bytes;
use common::{chunked, full, monitored, send};
use webhook_monitor::{
    provider::{AttemptSource, Source},
    Delivery, FailureKind, FieldValue, Mark, Outcome, Policy, RejectReason, SignatureStatus,
};

fn routes() -> Router {
    Router::new()
        .route(
            "/ok",
            post(|body: Bytes| async move { format!("{}", body.len()) }),
        )
        .route(
            "/json",
            post(|Json(v): Json<serde_json::Value>| async move { v["id"].to_string() }),
        )
        .route("/string", post(|s: String| async move { s.to_uppercase() }))
        .route(
            "/client-error",
            post(|| async { StatusCode::UNPROCESSABLE_ENTITY }),
        )
        .route(
            "/server-error",
            post(|| async { StatusCode::SERVICE_UNAVAILABLE }),
        )
        .route(
            "/redirect",
            post(|| async { Redirect::permanent("/elsewhere") }),
        )
        .route(
            "/marked",
            post(|| async {
                (
                    StatusCode::OK,
                    Mark::failed("missing payment_id").field("records", 0u64),
                    "accepted",
                )
            }),
        )
        .route(
            "/fields",
            post(|| async {
                (
                    Mark::new().field("records", 12u64).field("tenant", "acme"),
                    "ok",
                )
            }),
        )
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "done"
            }),
        )
        .route("/panic", post(panicking))
        .route(
            "/delivery",
            post(|d: Delivery| async move {
                format!(
                    "{}|{}|{}|{}|{:?}",
                    d.route(),
                    d.id().unwrap_or("-"),
                    d.event_type().unwrap_or("-"),
                    d.body_len(),
                    d.attempt()
                )
            }),
        )
}

async fn panicking() -> impl IntoResponse {
    if std::hint::black_box(true) {
        panic!("handler bug: index out of range");
    }
    "unreachable"
}

fn policy() -> Policy {
    Policy::custom("orders")
        .provider("acme")
        .max_body_bytes(1024)
        .delivery_id(Source::header("x-delivery-id"))
        .event_type(Source::header("x-event"))
        .attempt(AttemptSource::count(Source::header("x-attempt")))
}

#[tokio::test]
async fn success_passes_raw_bytes_to_bytes_json_and_string_extractors() {
    let m = monitored(policy(), routes()).await;
    let body = r#"{"id": 42,  "note": "ünïcode ✓"}"#;
    let (status, text) = send(&m.url("/ok"), full(body), &[]).await;
    assert_eq!(
        (status, &text[..]),
        (StatusCode::OK, body.len().to_string().as_bytes())
    );
    let (status, text) = send(
        &m.url("/json"),
        full(body),
        &[("content-type", "application/json")],
    )
    .await;
    assert_eq!((status, &text[..]), (StatusCode::OK, &b"42"[..]));
    let (status, text) = send(&m.url("/string"), full("abc"), &[]).await;
    assert_eq!((status, &text[..]), (StatusCode::OK, &b"ABC"[..]));

    let r = m.report(1).await;
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!(r.status, Some(StatusCode::OK));
    assert_eq!(r.delivery.route(), "orders");
    assert_eq!(r.delivery.provider(), Some("acme"));
    assert_eq!(r.delivery.body_len(), body.len() as u64);
    assert_eq!(r.delivery.signature(), SignatureStatus::Unchecked);
    assert!(r.delivery.fingerprint().is_some());
    assert!(r.total >= r.handler && r.total >= r.body_read);
    assert_eq!(m.sink.wait_for(3, Duration::from_secs(5)).await.len(), 3);
}

#[tokio::test]
async fn status_classes_are_failures_of_their_class() {
    let m = monitored(policy(), routes()).await;
    let cases = [
        ("/client-error", 422, FailureKind::ClientError),
        ("/server-error", 503, FailureKind::ServerError),
        ("/redirect", 308, FailureKind::Redirect),
    ];
    for (i, (path, code, kind)) in cases.into_iter().enumerate() {
        let (status, _) = send(&m.url(path), full("{}"), &[]).await;
        assert_eq!(status.as_u16(), code, "{path}");
        let r = m.report(i + 1).await;
        assert_eq!(r.outcome, Outcome::Failure(kind), "{path}");
        assert_eq!(r.status.map(|s| s.as_u16()), Some(code));
    }
}

#[tokio::test]
async fn a_marked_200_is_a_failure_with_reason_and_fields() {
    let m = monitored(policy(), routes()).await;
    let (status, text) = send(&m.url("/marked"), full("{}"), &[]).await;
    assert_eq!((status, &text[..]), (StatusCode::OK, &b"accepted"[..]));
    let r = m.report(1).await;
    assert_eq!(r.outcome, Outcome::Failure(FailureKind::Marked));
    assert_eq!(r.status, Some(StatusCode::OK));
    assert_eq!(r.reason.as_deref(), Some("missing payment_id"));
    assert_eq!(r.fields[0].name, "records");
    assert_eq!(r.fields[0].value, FieldValue::U64(0));

    let (status, _) = send(&m.url("/fields"), full("{}"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let r = m.report(2).await;
    assert_eq!(
        r.outcome,
        Outcome::Success,
        "a mark without a verdict keeps the status's"
    );
    assert_eq!(r.fields.len(), 2);
    assert_eq!(r.fields[1].value, FieldValue::Str("acme".into()));
}

#[tokio::test]
async fn a_2xx_past_the_budget_is_late_and_near_it_is_flagged() {
    let m = monitored(
        policy().timeout_budget(Duration::from_millis(150)),
        routes(),
    )
    .await;
    let (status, _) = send(&m.url("/slow"), full("{}"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let r = m.report(1).await;
    assert_eq!(r.outcome, Outcome::Late);
    assert!(r.flags.over_budget && !r.flags.near_timeout);
    assert!(r.handler >= Duration::from_millis(300), "{:?}", r.handler);

    // 300 ms of a 350 ms budget is past 80 %: a success, flagged.
    let m = monitored(
        policy().timeout_budget(Duration::from_millis(350)),
        routes(),
    )
    .await;
    send(&m.url("/slow"), full("{}"), &[]).await;
    let r = m.report(1).await;
    assert_eq!(r.outcome, Outcome::Success);
    assert!(r.flags.near_timeout && !r.flags.over_budget);
}

#[tokio::test]
async fn a_panic_is_answered_500_and_reported() {
    let m = monitored(policy(), routes()).await;
    let (status, _) = send(&m.url("/panic"), full("{}"), &[]).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let r = m.report(1).await;
    assert_eq!(r.outcome, Outcome::Panicked);
    assert_eq!(
        r.status,
        Some(StatusCode::INTERNAL_SERVER_ERROR),
        "what the provider got"
    );
    assert_eq!(r.reason.as_deref(), Some("handler bug: index out of range"));
    // The server survived.
    let (status, _) = send(&m.url("/ok"), full("{}"), &[]).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_client_that_goes_away_mid_handler_is_cancelled() {
    let m = monitored(policy(), routes()).await;
    let url = m.url("/slow");
    let attempt = tokio::time::timeout(Duration::from_millis(50), send(&url, full("{}"), &[]));
    assert!(attempt.await.is_err(), "the client gave up first");
    let r = m.report(1).await;
    assert_eq!(r.outcome, Outcome::Cancelled);
    assert_eq!(r.status, None);
    assert!(r.total < Duration::from_millis(300), "{:?}", r.total);
}

#[tokio::test]
async fn an_outer_timeout_cancels_the_handler() {
    let (reporter, _guard, sink) = common::memory_reporter();
    let app = routes()
        .layer(webhook_monitor::WebhookMonitorLayer::new(
            policy(),
            reporter,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_millis(50),
        ));
    let addr = common::serve(app).await;
    let (status, _) = send(&format!("http://{addr}/slow"), full("{}"), &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let reports = sink.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(common::delivery(&reports[0]).outcome, Outcome::Cancelled);
}

#[tokio::test]
async fn declared_length_over_the_limit_is_413_before_reading() {
    let m = monitored(policy(), routes()).await;
    let (status, _) = send(&m.url("/ok"), full(vec![b'x'; 1025]), &[]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = m.report(1).await;
    assert_eq!(r.outcome, Outcome::Rejected(RejectReason::TooLarge));
    assert_eq!(r.status, Some(StatusCode::PAYLOAD_TOO_LARGE));
    assert_eq!(r.delivery.body_len(), 1025);
    assert_eq!(r.delivery.fingerprint(), None);
    assert_eq!(r.handler, Duration::ZERO);

    let (status, _) = send(&m.url("/ok"), full(vec![b'x'; 1024]), &[]).await;
    assert_eq!(status, StatusCode::OK, "the limit is inclusive");
}

#[tokio::test]
async fn chunked_bodies_at_the_limit_pass_and_one_byte_over_is_413() {
    let m = monitored(policy(), routes()).await;
    let chunks = |n: usize| {
        let data = vec![b'y'; n];
        data.chunks(100)
            .map(Bytes::copy_from_slice)
            .collect::<Vec<_>>()
    };
    let (status, text) = send(&m.url("/ok"), chunked(chunks(1024)), &[]).await;
    assert_eq!((status, &text[..]), (StatusCode::OK, &b"1024"[..]));
    let r = m.report(1).await;
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!(r.delivery.body_len(), 1024);

    let (status, _) = send(&m.url("/ok"), chunked(chunks(1025)), &[]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = m.report(2).await;
    assert_eq!(r.outcome, Outcome::Rejected(RejectReason::TooLarge));
}

#[tokio::test]
async fn the_handler_sees_the_delivery_and_the_report_carries_it() {
    let m = monitored(policy(), routes()).await;
    let headers = [
        ("x-delivery-id", "evt_123"),
        ("x-event", "order.paid"),
        ("x-attempt", " 3 "),
    ];
    let (status, text) = send(&m.url("/delivery"), full("{\"a\":1}"), &headers).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&text[..], b"orders|evt_123|order.paid|7|Some(3)");
    let r = m.report(1).await;
    assert_eq!(r.delivery.id(), Some("evt_123"));
    assert_eq!(r.delivery.event_type(), Some("order.paid"));
    assert_eq!(r.delivery.attempt(), Some(3));

    // A non-numeric attempt is ignored, not an error.
    send(&m.url("/delivery"), full("{}"), &[("x-attempt", "three")]).await;
    assert_eq!(m.report(2).await.delivery.attempt(), None);
}

#[tokio::test]
async fn route_layer_monitors_only_matched_routes() {
    let (reporter, _guard, sink) = common::memory_reporter();
    let app = routes().route_layer(webhook_monitor::WebhookMonitorLayer::new(
        policy(),
        reporter,
    ));
    let addr = common::serve(app).await;
    let (status, _) = send(&format!("http://{addr}/ok"), full("{}"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(&format!("http://{addr}/missing"), full("{}"), &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let reports = sink.wait_for(2, Duration::from_millis(300)).await;
    assert_eq!(reports.len(), 1, "the 404 never reached the layer");
    assert_eq!(common::delivery(&reports[0]).outcome, Outcome::Success);
}

/// `route_layer` wraps the webhook route only: a scanner's request to any other path is a plain
/// 404, never reported. `Router::layer` (the trap the docs warn about) would answer it 401 and
/// report it as a rejected delivery of the route, feeding its all-rejected watcher.
#[tokio::test]
async fn an_unmatched_path_is_not_reported() {
    let routes = || Router::new().route("/webhooks/stripe", post(|| async { "ok" }));
    let probes = ["/wp-login.php", "/", "/webhooks/stripe/../admin", "/.env"];

    let m = monitored(Policy::stripe("whsec_test"), routes()).await;
    for path in probes {
        let (status, _) = send(&m.url(path), full("{}"), &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    // The route itself is still monitored: an unsigned delivery is refused and reported.
    let (status, _) = send(&m.url("/webhooks/stripe"), full("{}"), &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    drop(m.reporter);
    m.guard.shutdown(Duration::from_secs(5)).await.unwrap();
    let reports = m.sink.reports();
    assert_eq!(
        reports.len(),
        1,
        "only the webhook route's delivery: {reports:?}"
    );
    let only = common::delivery(&reports[0]);
    assert_eq!(
        only.outcome,
        Outcome::Rejected(RejectReason::MissingSignature)
    );

    // The trap: `Router::layer` wraps the fallback too.
    let (reporter, guard, sink) = common::memory_reporter();
    let app = routes().layer(webhook_monitor::WebhookMonitorLayer::new(
        Policy::stripe("whsec_test"),
        reporter.clone(),
    ));
    let addr = common::serve(app).await;
    let (status, _) = send(&format!("http://{addr}/wp-login.php"), full("{}"), &[]).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a scanner, reported as a delivery"
    );
    drop(reporter);
    guard.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(sink.reports().len(), 1);
}

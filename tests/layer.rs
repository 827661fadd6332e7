//! The layer in a bare tower stack (`service_fn` + `oneshot`), with a paused clock where time
//! matters.
#![allow(clippy::unwrap_used)]

mod common;

use std::{convert::Infallible, io, time::Duration};

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
use webhook_monitor::{
    report::{MemorySink, Reporter},
    FailureKind, Outcome, Policy, RejectReason, WebhookBody, WebhookMonitor, WebhookMonitorLayer,
};

fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}

#[test]
fn layer_and_service_are_axum_compatible() {
    assert_send_sync_clone::<WebhookMonitorLayer>();
    assert_send_sync_clone::<WebhookMonitor<axum::routing::Route>>();
    assert_send_sync_clone::<Reporter>();
}

fn reporter() -> (Reporter, webhook_monitor::ReporterGuard, MemorySink) {
    let sink = MemorySink::new();
    let (reporter, guard) = Reporter::builder()
        .linger(Duration::ZERO)
        .spawn(sink.clone());
    (reporter, guard, sink)
}

async fn only_report(
    guard: webhook_monitor::ReporterGuard,
    sink: &MemorySink,
) -> webhook_monitor::DeliveryReport {
    guard.shutdown(Duration::from_secs(5)).await.unwrap();
    let reports = sink.reports();
    assert_eq!(reports.len(), 1);
    common::delivery(&reports[0])
}

async fn echo(req: Request<WebhookBody>) -> Result<Response<Body>, Infallible> {
    let bytes = req.into_body().collect().await.unwrap().to_bytes();
    Ok(Response::new(Body::from(bytes)))
}

#[tokio::test(start_paused = true)]
async fn timing_is_exact_with_a_paused_clock() {
    let (reporter, guard, sink) = reporter();
    let policy = Policy::custom("r").timeout_budget(Duration::from_secs(10));
    let svc = ServiceBuilder::new()
        .layer(WebhookMonitorLayer::new(policy, reporter))
        .service(service_fn(|_req: Request<WebhookBody>| async {
            tokio::time::sleep(Duration::from_millis(8_500)).await;
            Ok::<_, Infallible>(Response::new(Body::empty()))
        }));
    let res = svc.oneshot(Request::new(Body::from("x"))).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let r = only_report(guard, &sink).await;
    assert_eq!(r.handler, Duration::from_millis(8_500));
    assert_eq!(r.total, Duration::from_millis(8_500));
    assert_eq!(r.body_read, Duration::ZERO);
    assert_eq!(r.outcome, Outcome::Success);
    assert!(r.flags.near_timeout, "8.5 s is past 80 % of 10 s");
}

#[tokio::test(start_paused = true)]
async fn exactly_the_budget_is_not_late() {
    for (ms, late) in [(10_000, false), (10_001, true)] {
        let (reporter, guard, sink) = reporter();
        let policy = Policy::custom("r").timeout_budget(Duration::from_secs(10));
        let svc = WebhookMonitorLayer::new(policy, reporter).layer_fn(move |_| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, Infallible>(Response::new(Body::empty()))
        });
        svc.oneshot(Request::new(Body::empty())).await.unwrap();
        let r = only_report(guard, &sink).await;
        assert_eq!(r.outcome == Outcome::Late, late, "{ms} ms");
        assert_eq!(r.flags.over_budget, late, "{ms} ms");
    }
}

/// Builds a service from a closure, behind the layer.
trait LayerFn {
    fn layer_fn<F, Fut>(self, f: F) -> WebhookMonitor<tower::util::ServiceFn<F>>
    where
        F: FnMut(Request<WebhookBody>) -> Fut;
}

impl LayerFn for WebhookMonitorLayer {
    fn layer_fn<F, Fut>(self, f: F) -> WebhookMonitor<tower::util::ServiceFn<F>>
    where
        F: FnMut(Request<WebhookBody>) -> Fut,
    {
        tower::Layer::layer(&self, service_fn(f))
    }
}

#[tokio::test]
async fn a_service_error_passes_through_and_is_reported() {
    let (reporter, guard, sink) = reporter();
    let svc = WebhookMonitorLayer::new(Policy::custom("r"), reporter)
        .layer_fn(|_| async { Err::<Response<Body>, _>(io::Error::other("backend down")) });
    let err = svc.oneshot(Request::new(Body::empty())).await.unwrap_err();
    assert_eq!(err.to_string(), "backend down");
    let r = only_report(guard, &sink).await;
    assert_eq!(r.outcome, Outcome::Failure(FailureKind::ServiceError));
    assert_eq!(r.status, None);
}

#[tokio::test]
async fn a_panic_in_call_itself_is_caught() {
    #[derive(Clone)]
    struct PanicsInCall;
    impl tower::Service<Request<WebhookBody>> for PanicsInCall {
        type Response = Response<Body>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response<Body>, Infallible>>;
        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Infallible>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: Request<WebhookBody>) -> Self::Future {
            panic!("panicked before returning a future")
        }
    }
    let (reporter, guard, sink) = reporter();
    let svc = tower::Layer::layer(
        &WebhookMonitorLayer::new(Policy::custom("r"), reporter),
        PanicsInCall,
    );
    let res = svc.oneshot(Request::new(Body::empty())).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let r = only_report(guard, &sink).await;
    assert_eq!(r.outcome, Outcome::Panicked);
    assert_eq!(
        r.reason.as_deref(),
        Some("panicked before returning a future")
    );
}

#[tokio::test(start_paused = true)]
async fn dropped_future_reports_cancelled() {
    let (reporter, guard, sink) = reporter();
    let svc = WebhookMonitorLayer::new(Policy::custom("r"), reporter)
        .layer_fn(|_| async { std::future::pending::<Result<Response<Body>, Infallible>>().await });
    let call = svc.oneshot(Request::new(Body::from("abc")));
    assert!(tokio::time::timeout(Duration::from_secs(3), call)
        .await
        .is_err());
    let r = only_report(guard, &sink).await;
    assert_eq!(r.outcome, Outcome::Cancelled);
    assert_eq!(r.handler, Duration::from_secs(3));
    assert_eq!(r.delivery.body_len(), 3);
}

#[tokio::test]
async fn a_custom_classifier_decides_and_a_mark_still_overrides() {
    let (reporter, guard, sink) = reporter();
    let policy = Policy::custom("r").classify_with(|s: StatusCode, h: &HeaderMap| {
        if s == StatusCode::CONFLICT || h.contains_key("x-already-processed") {
            Outcome::Success
        } else {
            Outcome::Failure(FailureKind::ServerError)
        }
    });
    let svc = WebhookMonitorLayer::new(policy, reporter).layer_fn(
        |req: Request<WebhookBody>| async move {
            let mut res = Response::new(Body::empty());
            *res.status_mut() = StatusCode::CONFLICT;
            if req.headers().contains_key("x-mark") {
                res.extensions_mut()
                    .insert(webhook_monitor::Mark::failed("half done"));
            }
            Ok::<_, Infallible>(res)
        },
    );
    svc.clone()
        .oneshot(Request::new(Body::empty()))
        .await
        .unwrap();
    let marked = Request::builder()
        .header("x-mark", "1")
        .body(Body::empty())
        .unwrap();
    svc.oneshot(marked).await.unwrap();
    guard.shutdown(Duration::from_secs(5)).await.unwrap();
    let reports = sink.reports();
    assert_eq!(common::delivery(&reports[0]).outcome, Outcome::Success);
    assert_eq!(
        common::delivery(&reports[1]).outcome,
        Outcome::Failure(FailureKind::Marked)
    );
}

#[tokio::test]
async fn an_outer_limit_behind_axum_body_is_413_not_400() {
    let (reporter, guard, sink) = reporter();
    let svc = WebhookMonitorLayer::new(Policy::custom("r"), reporter).layer_fn(echo);
    // An outer layer limited the body to 10 bytes; axum's Body wraps that error in its own.
    let chunks = futures_util::stream::iter(
        (0..5).map(|_| Ok::<_, Infallible>(http_body::Frame::data(Bytes::from_static(b"abcd")))),
    );
    let limited = Limited::new(http_body_util::StreamBody::new(chunks), 10);
    let res = svc.oneshot(Request::new(Body::new(limited))).await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = only_report(guard, &sink).await;
    assert_eq!(r.outcome, Outcome::Rejected(RejectReason::TooLarge));
}

#[tokio::test]
async fn a_body_that_fails_mid_stream_is_400() {
    let (reporter, guard, sink) = reporter();
    let svc = WebhookMonitorLayer::new(Policy::custom("r"), reporter).layer_fn(echo);
    let frames = futures_util::stream::iter(vec![
        Ok(http_body::Frame::data(Bytes::from_static(b"{\"id\":"))),
        Err(io::Error::new(io::ErrorKind::ConnectionReset, "peer reset")),
    ]);
    let body = Body::new(http_body_util::StreamBody::new(frames));
    let res = svc.oneshot(Request::new(body)).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let r = only_report(guard, &sink).await;
    assert_eq!(r.outcome, Outcome::Rejected(RejectReason::BodyRead));
    assert!(
        r.reason.as_deref().unwrap().contains("peer reset"),
        "{:?}",
        r.reason
    );
}

#[tokio::test]
async fn a_content_length_header_over_the_limit_is_rejected_when_the_body_does_not_know_its_size() {
    let (reporter, guard, sink) = reporter();
    let svc =
        WebhookMonitorLayer::new(Policy::custom("r").max_body_bytes(10), reporter).layer_fn(echo);
    let frames = futures_util::stream::iter(vec![Ok::<_, Infallible>(http_body::Frame::data(
        Bytes::from_static(b"tiny"),
    ))]);
    let req = Request::builder()
        .header("content-length", "999999")
        .body(Body::new(http_body_util::StreamBody::new(frames)))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = only_report(guard, &sink).await;
    assert_eq!(r.delivery.body_len(), 999_999);
}

#[tokio::test]
async fn readiness_is_forwarded_and_the_ready_service_is_called() {
    // A service that is ready once per poll_ready and panics if called without it.
    #[derive(Default)]
    struct Strict {
        ready: bool,
    }
    impl Clone for Strict {
        fn clone(&self) -> Self {
            Self::default() // a clone has not been made ready
        }
    }
    impl tower::Service<Request<WebhookBody>> for Strict {
        type Response = Response<Body>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response<Body>, Infallible>>;
        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Infallible>> {
            self.ready = true;
            std::task::Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: Request<WebhookBody>) -> Self::Future {
            let status = if std::mem::take(&mut self.ready) {
                StatusCode::OK
            } else {
                StatusCode::IM_A_TEAPOT
            };
            let mut res = Response::new(Body::empty());
            *res.status_mut() = status;
            std::future::ready(Ok(res))
        }
    }
    let (reporter, _guard, _sink) = reporter();
    let mut svc = tower::Layer::layer(
        &WebhookMonitorLayer::new(Policy::custom("r"), reporter),
        Strict::default(),
    );
    for _ in 0..3 {
        let ready = ServiceExt::<Request<Body>>::ready(&mut svc).await.unwrap();
        let res = ready.call(Request::new(Body::empty())).await.unwrap();
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "the service made ready is the one called"
        );
    }
}

#[tokio::test]
async fn a_queued_report_keeps_no_request_buffer_alive() {
    use webhook_monitor::provider::Source;

    // hyper hands over header values and bodies as slices of its read buffers; a report that kept
    // such a slice would pin the whole buffer (or body) while it waits in the queue.
    let (reporter, guard, sink) = reporter();
    let buffer = Bytes::from_static(b"evt_from_a_header_buffer");
    let body = Bytes::from(r#"{"type":"invoice.paid","pad":"xxxxxxxxxxxxxxxx"}"#.to_owned());
    let id = http::HeaderValue::from_maybe_shared(buffer.clone()).unwrap();
    let policy = Policy::custom("r")
        .delivery_id(Source::header("x-id"))
        .event_type(Source::json("/type"));
    let svc = WebhookMonitorLayer::new(policy, reporter).layer_fn(echo);
    let req = Request::builder()
        .header("x-id", id)
        .body(Body::from(body.clone()))
        .unwrap();
    svc.oneshot(req).await.unwrap();
    let r = only_report(guard, &sink).await;
    let within = |s: &str, b: &Bytes| b.as_ptr_range().contains(&s.as_ptr());
    let id = r.delivery.id().unwrap();
    assert_eq!(id, "evt_from_a_header_buffer");
    assert!(!within(id, &buffer), "the id is a copy");
    let event = r.delivery.event_type().unwrap();
    assert_eq!(event, "invoice.paid");
    assert!(!within(event, &body), "the event type is a copy");
}

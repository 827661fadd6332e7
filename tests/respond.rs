//! The layer's own answers: the default says nothing but the status; a `Respond` hook shapes
//! them (a JSON body for verified senders), keeps a `409`'s `Retry-After`, and lets a route use
//! a response body without `Default`.
#![allow(clippy::unwrap_used)]

use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http::{header, HeaderMap, Request, Response, StatusCode};
use http_body::{Body as HttpBody, Frame};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, Layer, ServiceExt};
use webhook_monitor::{
    dedupe::MemoryStore,
    payload::Check,
    report::{MemorySink, Reporter},
    testing, Answer, Outcome, PayloadChecks, Policy, RejectReason, WebhookBody,
    WebhookMonitorLayer,
};

const SECRET: &str = "whsec_respond_test";

/// A response body that has no `Default`: only a hook can build the layer's answers in it.
struct Text(Option<Bytes>);

impl HttpBody for Text {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.take().map(|b| Ok(Frame::data(b))))
    }
}

/// The hook under test: a JSON error for a verified sender, the bare status for the rest.
fn json_error(answer: &Answer<'_>) -> Response<Text> {
    let body = answer.verified().then(|| {
        let json = serde_json::json!({
            "outcome": answer.outcome().as_str(),
            "detail": answer.reason(),
            "route": answer.delivery().route(),
        });
        Bytes::from(json.to_string())
    });
    let mut res = Response::new(Text(body));
    *res.status_mut() = answer.status();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    res
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn stripe_request(body: &'static [u8], headers: HeaderMap) -> Request<Full<Bytes>> {
    let mut req = Request::post("/webhooks/stripe")
        .body(Full::new(Bytes::from_static(body)))
        .unwrap();
    *req.headers_mut() = headers;
    req
}

async fn read(res: Response<Text>) -> (StatusCode, HeaderMap, Bytes) {
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, bytes)
}

#[tokio::test]
async fn a_hook_shapes_every_answer_and_tells_only_verified_senders_why() {
    let sink = MemorySink::new();
    let (reporter, guard) = Reporter::spawn(sink.clone());
    let policy = Policy::stripe(SECRET)
        .max_body_bytes(64)
        .dedupe(MemoryStore::new())
        .payload_checks(PayloadChecks::new().reject(Check::require("/data/object/id")));
    let layer = WebhookMonitorLayer::new(policy, reporter).respond_with(json_error);
    let svc = layer.layer(service_fn(|req: Request<WebhookBody>| async move {
        if req
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .ends_with(br#"!"}"#)
        {
            panic!("the handler broke");
        }
        Ok::<_, Infallible>(Response::new(Text(Some(Bytes::from_static(b"handled")))))
    }));

    // Unverified: a forged signature. The hook says nothing but the status.
    let mut forged = testing::stripe("whsec_other", br#"{"id":"evt_1"}"#, now());
    forged.insert("content-type", "application/json".parse().unwrap());
    let res = svc
        .clone()
        .oneshot(stripe_request(br#"{"id":"evt_1"}"#, forged))
        .await
        .unwrap();
    let (status, _, body) = read(res).await;
    assert_eq!((status, &body[..]), (StatusCode::UNAUTHORIZED, &b""[..]));

    // Too large, before any verification: the bare status again.
    let big: &'static [u8] = &[b'x'; 100];
    let res = svc
        .clone()
        .oneshot(stripe_request(big, testing::stripe(SECRET, big, now())))
        .await
        .unwrap();
    assert_eq!(read(res).await.0, StatusCode::PAYLOAD_TOO_LARGE);

    // Verified, failing a payload check: the hook explains.
    let no_object = br#"{"id":"evt_2","type":"x"}"#;
    let res = svc
        .clone()
        .oneshot(stripe_request(
            no_object,
            testing::stripe(SECRET, no_object, now()),
        ))
        .await
        .unwrap();
    let (status, headers, body) = read(res).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["outcome"], "rejected");
    assert_eq!(json["route"], "stripe");
    assert!(
        json["detail"].as_str().unwrap().contains("/data/object/id"),
        "{json}"
    );

    // A processed delivery, then its copy: the duplicate's answer goes through the hook too.
    let ok = br#"{"id":"evt_3","data":{"object":{"id":"o"}}}"#;
    for expected in [
        &b"handled"[..],
        br#"{"detail":null,"outcome":"duplicate","route":"stripe"}"#,
    ] {
        let res = svc
            .clone()
            .oneshot(stripe_request(ok, testing::stripe(SECRET, ok, now())))
            .await
            .unwrap();
        let (status, _, body) = read(res).await;
        assert_eq!((status, &body[..]), (StatusCode::OK, expected));
    }

    // A panic: 500, shaped by the hook.
    let breaks = br#"{"id":"evt_4","data":{"object":{"id":"o"}},"x":"!"}"#;
    let res = svc
        .clone()
        .oneshot(stripe_request(
            breaks,
            testing::stripe(SECRET, breaks, now()),
        ))
        .await
        .unwrap();
    let (status, _, body) = read(res).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["outcome"], "panicked");
    assert_eq!(json["detail"], "the handler broke");

    // The reports are what they were without a hook.
    guard.shutdown(Duration::from_secs(5)).await.unwrap();
    let outcomes: Vec<Outcome> = sink
        .reports()
        .iter()
        .filter_map(|r| r.as_delivery().map(|d| d.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Rejected(RejectReason::BadSignature),
            Outcome::Rejected(RejectReason::TooLarge),
            Outcome::Rejected(RejectReason::PayloadCheck),
            Outcome::Success,
            Outcome::Duplicate,
            Outcome::Panicked,
        ]
    );
}

#[tokio::test]
async fn a_copy_in_flight_keeps_its_retry_after_whatever_the_hook_answers() {
    let (reporter, _guard) = Reporter::spawn(MemorySink::new());
    let policy = Policy::custom("r")
        .delivery_id(webhook_monitor::provider::Source::header("X-Id"))
        .dedupe(MemoryStore::new())
        .in_flight_retry_after(Duration::from_secs(7));
    let (entered_tx, entered_rx) = tokio::sync::oneshot::channel::<()>();
    let entered = std::sync::Arc::new(std::sync::Mutex::new(Some(entered_tx)));
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let held = std::sync::Arc::clone(&release);
    // A hook that sets no headers of its own.
    let bare = |answer: &Answer<'_>| {
        let mut res = Response::new(Text(None));
        *res.status_mut() = answer.status();
        res
    };
    let svc = WebhookMonitorLayer::new(policy, reporter)
        .respond_with(bare)
        .layer(service_fn(move |_: Request<WebhookBody>| {
            let entered = entered.lock().unwrap().take();
            let held = std::sync::Arc::clone(&held);
            async move {
                if let Some(tx) = entered {
                    let _ = tx.send(());
                    held.notified().await;
                }
                Ok::<_, Infallible>(Response::new(Text(None)))
            }
        }));
    let request = || {
        Request::post("/")
            .header("x-id", "d1")
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap()
    };
    let first = tokio::spawn(svc.clone().oneshot(request()));
    entered_rx.await.unwrap();
    let (status, headers, _) = read(svc.clone().oneshot(request()).await.unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(headers[header::RETRY_AFTER], "7");
    release.notify_one();
    assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn by_default_the_layer_answers_with_the_status_alone() {
    let (reporter, _guard) = Reporter::spawn(MemorySink::new());
    let svc = WebhookMonitorLayer::new(Policy::stripe(SECRET), reporter).layer(service_fn(
        |_: Request<WebhookBody>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        },
    ));
    let body = br#"{"id":"evt_1"}"#;
    let forged = testing::stripe("whsec_other", body, now());
    let res = svc.oneshot(stripe_request(body, forged)).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().is_empty(), "{:?}", res.headers());
    assert!(res
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .is_empty());
}

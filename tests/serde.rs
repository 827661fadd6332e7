//! Reports read back: real deliveries through the layer, written by the `JsonLinesSink`, each
//! line deserialized into a `Report` and checked, and written again byte for byte.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    convert::Infallible,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::body::Body;
use common::SharedBuf;
use http::{Request, Response, StatusCode};
use tower::{Layer, ServiceExt};
use webhook_monitor::{
    dedupe::MemoryStore,
    payload::{Check, PayloadViolation},
    report::{HealthReport, JsonLinesSink, Reporter},
    testing,
    watch::{Alert, AlertKind, AlertState, Severity},
    FailureKind, FieldValue, Mark, Outcome, PayloadChecks, Policy, RejectReason, Report,
    SignatureStatus, WebhookBody, WebhookMonitorLayer,
};

const SECRET: &str = "whsec_serde";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A Stripe-signed request (or one with a wrong signature).
fn signed(body: &str, good: bool) -> Request<Body> {
    let secret = if good { SECRET } else { "whsec_wrong" };
    let mut req = Request::post("/hook")
        .body(Body::from(body.to_owned()))
        .unwrap();
    req.headers_mut()
        .extend(testing::stripe(secret, body.as_bytes(), now()));
    req
}

#[tokio::test]
async fn every_line_the_json_lines_sink_writes_reads_back_into_a_report() {
    let buf = SharedBuf::default();
    let (reporter, guard) = Reporter::builder()
        .linger(Duration::from_millis(1))
        .health_interval(Some(Duration::from_millis(100)))
        .spawn(JsonLinesSink::new(buf.clone()));
    let policy = Policy::stripe(SECRET)
        .dedupe(MemoryStore::new())
        .payload_checks(
            PayloadChecks::new()
                .reject(Check::max_depth(4))
                .flag(Check::not_null("/data/object/\"customer\"")),
        )
        .watch(|w| w.consecutive_failures(2));
    // Fails twice, then succeeds, marking its fields.
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = {
        let calls = Arc::clone(&calls);
        tower::service_fn(move |_: Request<WebhookBody>| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                let mut res = Response::new(Body::empty());
                if n < 2 {
                    *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                } else {
                    res.extensions_mut().insert(
                        Mark::new()
                            .field("records", 3u64)
                            .field("tenant", "t-\"1\"")
                            .field("ratio", 0.1 + 0.2)
                            .field("delta", -4i64)
                            .field("ok", true),
                    );
                }
                Ok::<_, Infallible>(res)
            }
        })
    };
    let svc = WebhookMonitorLayer::new(policy, reporter).layer(handler);

    let created = now() - 3;
    let order = format!(
        r#"{{"id":"evt_1","type":"order.created","created":{created},"data":{{"object":{{"\"customer\"":null}}}}}}"#
    );
    let requests = [
        signed(&order, true),                              // 500
        signed(&order, true),                              // 500, retried
        signed(&order, true),                              // 200, retried
        signed(&order, true),                              // a duplicate
        signed(&order, false),                             // a bad signature
        signed(r#"{"id":"evt_2","a":[[[[[1]]]]]}"#, true), // too deep
    ];
    let mut statuses = Vec::new();
    for req in requests {
        statuses.push(svc.clone().oneshot(req).await.unwrap().status().as_u16());
        // One batch each: the watchers see the failures, then the success, in turn.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(statuses, [500, 500, 200, 200, 401, 422]);
    tokio::time::sleep(Duration::from_millis(250)).await; // a health report or two
    guard.shutdown(Duration::from_secs(5)).await.unwrap();

    let out = buf.text();
    let mut reports = Vec::new();
    for line in out.lines() {
        let report: Report = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(
            serde_json::to_string(&report).unwrap(),
            line,
            "written again"
        );
        reports.push(report);
    }

    let deliveries: Vec<_> = reports.iter().filter_map(Report::as_delivery).collect();
    let outcomes: Vec<_> = deliveries.iter().map(|d| d.outcome).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Failure(FailureKind::ServerError),
            Outcome::Failure(FailureKind::ServerError),
            Outcome::Success,
            Outcome::Duplicate,
            Outcome::Rejected(RejectReason::BadSignature),
            Outcome::Rejected(RejectReason::PayloadCheck),
        ]
    );
    let flagged = PayloadViolation::Null {
        pointer: "/data/object/\"customer\"".into(),
        absent: false,
    };
    for (i, d) in deliveries[..3].iter().enumerate() {
        let n = u32::try_from(i).unwrap() + 1;
        let delivery = &d.delivery;
        assert_eq!(delivery.route(), "stripe");
        assert_eq!(delivery.provider(), Some("stripe"));
        assert_eq!(delivery.id(), Some("evt_1"));
        assert_eq!(delivery.event_type(), Some("order.created"));
        assert_eq!(
            delivery.signature(),
            SignatureStatus::Verified { secret_index: 0 }
        );
        assert_eq!(delivery.body_len(), order.len() as u64);
        assert!(delivery.fingerprint().is_some());
        assert_eq!(delivery.times_seen(), Some(n));
        assert_eq!(delivery.mean_retry_interval().is_some(), n > 1);
        let first_seen = delivery.first_seen().unwrap();
        assert!(first_seen <= delivery.received_at());
        let lag = delivery.lag().unwrap();
        assert!(
            lag >= Duration::from_secs(2) && lag < Duration::from_secs(60),
            "{lag:?}"
        );
        assert_eq!(
            delivery.sent_at(),
            Some(delivery.received_at() - lag),
            "read back from received_at and lag_ms"
        );
        assert!(d.flags.payload_flagged);
        assert_eq!(d.payload.as_deref(), Some(&flagged));
        assert!(d.total >= d.handler);
    }
    assert_eq!(
        deliveries[0].status,
        Some(StatusCode::INTERNAL_SERVER_ERROR)
    );
    assert_eq!(
        deliveries[0].delivery.first_seen(),
        deliveries[2].delivery.first_seen()
    );
    let fields: Vec<_> = deliveries[2]
        .fields
        .iter()
        .map(|f| (&*f.name, f.value.clone()))
        .collect();
    assert_eq!(
        fields,
        [
            ("records", FieldValue::U64(3)),
            ("tenant", FieldValue::Str("t-\"1\"".into())),
            ("ratio", FieldValue::F64(0.1 + 0.2)),
            ("delta", FieldValue::I64(-4)),
            ("ok", FieldValue::Bool(true)),
        ]
    );
    assert!(deliveries[0].fields.is_empty());
    let duplicate = &deliveries[3];
    assert_eq!(duplicate.status, Some(StatusCode::OK));
    assert_eq!(duplicate.handler, Duration::ZERO);
    let rejected = &deliveries[4];
    assert_eq!(rejected.delivery.signature(), SignatureStatus::Failed);
    assert_eq!(rejected.status, Some(StatusCode::UNAUTHORIZED));
    assert!(rejected.reason.is_some());
    let too_deep = &deliveries[5];
    assert_eq!(
        too_deep.payload.as_deref(),
        Some(&PayloadViolation::TooDeep { max: 4 })
    );
    assert_eq!(too_deep.status, Some(StatusCode::UNPROCESSABLE_ENTITY));

    let alerts: Vec<&Alert> = reports.iter().filter_map(Report::as_alert).collect();
    let states: Vec<_> = alerts.iter().map(|a| (a.kind, a.state)).collect();
    assert_eq!(
        states,
        [
            (AlertKind::ConsecutiveFailures, AlertState::Opened),
            (AlertKind::ConsecutiveFailures, AlertState::Resolved),
        ]
    );
    for alert in &alerts {
        assert_eq!(&*alert.route, "stripe");
        assert_eq!(alert.severity, Severity::Critical);
        assert!(alert.opened_at <= alert.at);
    }
    assert_eq!(
        alerts[0].figure("consecutive_failures"),
        Some(&FieldValue::U64(2))
    );

    let health: Vec<&HealthReport> = reports.iter().filter_map(Report::as_health).collect();
    assert!(!health.is_empty(), "no health report in {out}");
    let last = health[health.len() - 1];
    assert_eq!(last.reporter.enqueued, 6);
    assert_eq!(last.reporter.alerts, 2);
    assert_eq!(last.reporter.dropped_full, 0);
    assert!(last.reporter.sent >= 8, "{:?}", last.reporter);
    assert!(last.sinks.is_empty(), "a JsonLinesSink reports no backend");
}

//! Payload checks through a real server on 127.0.0.1:0: rejections (422, handler not called),
//! flags (handler called), their reports, and where the checks sit in the pipeline.
#![cfg(feature = "axum")]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use axum::{http::StatusCode, routing::post, Router};
use bytes::Bytes;
use common::{full, monitored, send, Monitored};
use serde_json::json;
use webhook_monitor::{
    dedupe::MemoryStore,
    payload::{Check, JsonErrorKind, PayloadViolation},
    provider::Source,
    testing, DeliveryReport, Outcome, PayloadChecks, Policy, RejectReason, SignatureStatus,
};

/// A server whose one route echoes the body and counts its calls.
async fn server(policy: Policy) -> (Monitored, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let routes = Router::new().route(
        "/hook",
        post(move |body: Bytes| async move {
            counter.fetch_add(1, Ordering::SeqCst);
            body
        }),
    );
    (monitored(policy, routes).await, calls)
}

fn checked(checks: PayloadChecks) -> Policy {
    Policy::custom("orders").payload_checks(checks)
}

/// One failing body per check, with the check's name.
fn cases() -> Vec<(Check, &'static str, String)> {
    vec![
        (Check::max_bytes(8), "max_bytes", r#"{"id":"evt_1"}"#.into()),
        (Check::json(), "json", r#"{"id":"evt_1""#.into()),
        (
            Check::require("/data/id"),
            "required",
            r#"{"data":{}}"#.into(),
        ),
        (
            Check::not_null("/data/id"),
            "not_null",
            r#"{"data":{"id":null}}"#.into(),
        ),
        (
            Check::max_depth(2),
            "max_depth",
            r#"{"data":{"id":[1]}}"#.into(),
        ),
    ]
}

fn report_json(r: &DeliveryReport) -> serde_json::Value {
    serde_json::to_value(r).unwrap()
}

#[tokio::test]
async fn each_rejecting_check_answers_422_without_calling_the_handler() {
    for (check, name, body) in cases() {
        let (m, calls) = server(checked(PayloadChecks::new().reject(check))).await;
        let (status, _) = send(&m.url("/hook"), full(body.clone()), &[]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{name}");
        assert_eq!(calls.load(Ordering::SeqCst), 0, "{name}");

        let r = m.report(1).await;
        assert_eq!(r.outcome, Outcome::Rejected(RejectReason::PayloadCheck));
        assert_eq!(r.status, Some(StatusCode::UNPROCESSABLE_ENTITY));
        let violation = r.payload.clone().expect("the failed check");
        assert_eq!(violation.check(), name);
        assert_eq!(r.reason.as_deref(), Some(&*violation.to_string()));
        assert!(!r.flags.payload_flagged);
        assert_eq!(r.delivery.body_len(), body.len() as u64);
        assert!(
            r.to_string().contains(&format!("payload_check={name}")),
            "{r}"
        );

        let v = report_json(&r);
        assert_eq!(
            (&v["outcome"], &v["outcome_detail"]),
            (&json!("rejected"), &json!("payload_check"))
        );
        assert_eq!(
            v["payload_check"],
            json!({"check": name, "message": violation.to_string()})
        );
        assert_eq!(v["flags"], json!([]));
    }
}

#[tokio::test]
async fn each_flagging_check_lets_the_delivery_through_and_flags_it() {
    for (check, name, body) in cases() {
        let (m, calls) = server(checked(PayloadChecks::new().flag(check))).await;
        let (status, echoed) = send(&m.url("/hook"), full(body.clone()), &[]).await;
        assert_eq!(
            (status, &echoed[..]),
            (StatusCode::OK, body.as_bytes()),
            "{name}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1, "{name}");

        let r = m.report(1).await;
        assert_eq!(r.outcome, Outcome::Success);
        assert!(r.flags.payload_flagged, "{name}");
        let violation = r.payload.clone().expect("the failed check");
        assert_eq!(violation.check(), name);
        assert_eq!(r.reason, None);
        let line = r.to_string();
        assert!(line.contains("[payload_flagged]"), "{line}");
        assert!(
            line.contains(&format!("payload_check={name} ({violation})")),
            "{line}"
        );

        let v = report_json(&r);
        assert_eq!(v["outcome"], json!("success"));
        assert_eq!(v["flags"], json!(["payload_flagged"]));
        assert_eq!(
            v["payload_check"],
            json!({"check": name, "message": violation.to_string()})
        );
    }
}

#[tokio::test]
async fn valid_bodies_pass_untouched() {
    let checks = PayloadChecks::new()
        .reject(Check::max_bytes(1024))
        .reject(Check::json())
        .reject(Check::max_depth(4))
        .reject(Check::require("/type"))
        .reject(Check::not_null("/data/object/id"))
        .flag(Check::not_null("/data/object/customer"));
    let (m, calls) = server(checked(checks)).await;
    let body = r#" {"type": "charge.succeeded", "data": {"object": {"id": "ch_1", "customer": "cus_1", "amount": 2000}}} "#;
    let (status, echoed) = send(&m.url("/hook"), full(body), &[]).await;
    assert_eq!((status, &echoed[..]), (StatusCode::OK, body.as_bytes()));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let r = m.report(1).await;
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!(r.payload, None);
    assert!(!r.flags.payload_flagged);
    assert!(!r.to_string().contains("payload"), "{r}");
    assert_eq!(report_json(&r)["payload_check"], json!(null));
}

#[tokio::test]
async fn pointers_unescape_and_index_arrays() {
    let checks = PayloadChecks::new()
        .reject(Check::not_null("/a~1b/m~0n"))
        .reject(Check::require("/items/1/sku"));
    let (m, calls) = server(checked(checks)).await;
    let ok = r#"{"a/b":{"m~n":1},"items":[{},{"sku":"s2"}]}"#;
    assert_eq!(send(&m.url("/hook"), full(ok), &[]).await.0, StatusCode::OK);
    let literal = r#"{"a~1b":{"m~0n":1},"items":[{},{"sku":"s2"}]}"#;
    let (status, _) = send(&m.url("/hook"), full(literal), &[]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let wrong_index = r#"{"a/b":{"m~n":1},"items":[{"sku":"s1"},{}]}"#;
    let (status, _) = send(&m.url("/hook"), full(wrong_index), &[]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let absent = PayloadViolation::Null {
        pointer: "/a~1b/m~0n".into(),
        absent: true,
    };
    assert_eq!(m.report(2).await.payload.as_deref(), Some(&absent));
    let missing = PayloadViolation::Missing {
        pointer: "/items/1/sku".into(),
    };
    assert_eq!(m.report(3).await.payload.as_deref(), Some(&missing));
}

#[tokio::test]
async fn a_100_000_deep_body_is_rejected_without_overflowing_the_stack() {
    let deep = "[".repeat(100_000);

    let (m, calls) = server(checked(PayloadChecks::new().reject(Check::max_depth(32)))).await;
    let (status, _) = send(&m.url("/hook"), full(deep.clone()), &[]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        m.report(1).await.payload.as_deref(),
        Some(&PayloadViolation::TooDeep { max: 32 })
    );

    // No depth check: the body is skipped without recursion, and is a truncated JSON value.
    let (m, _) = server(checked(PayloadChecks::new().reject(Check::json()))).await;
    let (status, _) = send(&m.url("/hook"), full(deep), &[]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let violation = *m.report(1).await.payload.unwrap();
    assert!(
        matches!(
            violation,
            PayloadViolation::InvalidJson {
                kind: JsonErrorKind::Eof,
                line: 1,
                column: 100_000,
                ..
            }
        ),
        "{violation:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_reject_beats_a_flag() {
    let checks = PayloadChecks::new()
        .flag(Check::max_bytes(4))
        .flag(Check::not_null("/customer"))
        .reject(Check::require("/id"));
    let (m, calls) = server(checked(checks)).await;
    let (status, _) = send(&m.url("/hook"), full(r#"{"customer":null}"#), &[]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = m.report(1).await;
    assert_eq!(r.outcome, Outcome::Rejected(RejectReason::PayloadCheck));
    assert_eq!(r.payload.map(|v| v.check()), Some("required"));
    assert!(!r.flags.payload_flagged);

    // With the id, the first flag (size) is the one reported.
    let body = r#"{"customer":null,"id":1}"#;
    assert_eq!(
        send(&m.url("/hook"), full(body), &[]).await.0,
        StatusCode::OK
    );
    let r = m.report(2).await;
    assert_eq!(
        r.payload.as_deref(),
        Some(&PayloadViolation::TooLarge {
            size: body.len(),
            max: 4
        })
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn checks_run_after_signature_verification() {
    let checks = PayloadChecks::new().reject(Check::require("/id"));
    let policy = Policy::github("gh-secret").payload_checks(checks);
    let (m, calls) = server(policy).await;
    let body = br#"{"action":"opened"}"#;
    let header_pairs = |headers: &http::HeaderMap| -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect()
    };
    let send_signed = |secret: &'static str| {
        let pairs = header_pairs(&testing::github(secret, body, "d-1", "issues"));
        let url = m.url("/hook");
        async move {
            let headers: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (&k[..], &v[..])).collect();
            send(&url, full(&body[..]), &headers).await.0
        }
    };

    // Forged: the body fails the check too, but the signature is checked first.
    assert_eq!(
        send_signed("not-the-secret").await,
        StatusCode::UNAUTHORIZED
    );
    let r = m.report(1).await;
    assert_eq!(r.outcome, Outcome::Rejected(RejectReason::BadSignature));
    assert_eq!(r.payload, None);

    assert_eq!(
        send_signed("gh-secret").await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let r = m.report(2).await;
    assert_eq!(r.outcome, Outcome::Rejected(RejectReason::PayloadCheck));
    assert!(matches!(
        r.delivery.signature(),
        SignatureStatus::Verified { .. }
    ));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_rejected_delivery_is_not_claimed() {
    // Checks run before the dedupe claim: a fixed retry of a rejected delivery is processed.
    let policy = checked(PayloadChecks::new().reject(Check::json()))
        .delivery_id(Source::header("x-delivery-id"))
        .dedupe(MemoryStore::new());
    let (m, calls) = server(policy).await;
    let id = [("x-delivery-id", "evt_7")];
    let (status, _) = send(&m.url("/hook"), full("{"), &id).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(m.report(1).await.delivery.times_seen(), None);
    let (status, _) = send(&m.url("/hook"), full("{}"), &id).await;
    assert_eq!(status, StatusCode::OK);
    let r = m.report(2).await;
    assert_eq!(
        (r.outcome, r.delivery.times_seen()),
        (Outcome::Success, Some(1))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

//! The paging sinks (PagerDuty, Opsgenie) against a real server on loopback: the exact requests
//! each alert becomes, what is ignored, retries through the transport, and keys kept secret.
#![cfg(feature = "http")]
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    io::Write,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::recorder::Backend;
use http::Method;
use serde_json::{json, Value};
use webhook_monitor::{
    report::{
        http::{HttpTransport, OpsgenieSink, PagerDutySink, RetryPolicy},
        MemorySink, Report, Reporter, Sink, SinkHealth,
    },
    watch::Alert,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---------------------------------------------------------------------------------------------
// Reports.

/// An alert report, read from its JSON (docs/report-schema.md), opened at 10:00:00 and
/// resolved (if it is) at 10:07:30. `figures` is JSON text, read in its order.
fn alert(kind: &str, route: &str, state: &str, figures: &str) -> Report {
    instance_alert(kind, route, None, state, figures)
}

/// [`alert`], about one instance of a fleet when `instance` is set.
fn instance_alert(
    kind: &str,
    route: &str,
    instance: Option<&str>,
    state: &str,
    figures: &str,
) -> Report {
    let severity = match kind {
        "silence"
        | "all_rejected"
        | "failure_rate"
        | "consecutive_failures"
        | "instance_failure_rate" => "critical",
        _ => "warning",
    };
    let at = match state {
        "opened" => "2026-03-01T10:00:00Z",
        _ => "2026-03-01T10:07:30Z",
    };
    let mut head = json!({
        "type": "alert", "kind": kind, "route": route, "severity": severity, "state": state,
        "opened_at": "2026-03-01T10:00:00Z", "at": at,
    });
    if let Some(instance) = instance {
        head["instance"] = instance.into();
    }
    let head = head.to_string();
    let json = format!("{},\"figures\":{figures}}}", head.trim_end_matches('}'));
    serde_json::from_str(&json).unwrap()
}

fn value(json: &str) -> Value {
    serde_json::from_str(json).unwrap()
}

fn as_alert(report: &Report) -> &Alert {
    report.as_alert().unwrap()
}

/// A delivery report: the example of docs/report-schema.md.
fn delivery() -> Report {
    serde_json::from_str(
        r#"{"type":"delivery","route":"orders","provider":"shop","delivery_id":"d-7","event_type":"order.created","attempt":null,"signature":"unchecked","secret_index":null,"status":200,"outcome":"failure","outcome_detail":"marked","reason":"missing order_id","payload_check":null,"received_at":"2026-11-28T19:30:00.123456Z","body_read_us":21,"handler_us":54,"total_us":75,"body_bytes":12,"fingerprint":"xxh3-128:5b7d2e4f0c1a9e8d7c6b5a4f3e2d1c0b","times_seen":null,"first_seen":null,"mean_retry_interval_ms":null,"lag_ms":null,"flags":[],"fields":{}}"#,
    )
    .unwrap()
}

/// A health report, from a reporter ticking fast.
async fn health_report() -> Report {
    let sink = MemorySink::new();
    let (reporter, guard) = Reporter::builder()
        .health_interval(Some(ms(10)))
        .spawn(sink.clone());
    let report = sink.wait_for(1, Duration::from_secs(5)).await[0].clone();
    drop(reporter);
    guard.shutdown(Duration::from_secs(1)).await.unwrap();
    assert!(matches!(report, Report::Health(_)), "{report:?}");
    report
}

// ---------------------------------------------------------------------------------------------
// Sinks.

/// Fast retries for tests: a few ms between attempts, a 3 s window, no breaker.
fn transport() -> HttpTransport {
    let retry = RetryPolicy::default()
        .initial_backoff(ms(10))
        .max_backoff(ms(40))
        .window(Duration::from_secs(3))
        .open_after(1000);
    HttpTransport::builder()
        .timeout(ms(500))
        .retry(retry)
        .build()
        .unwrap()
}

const PD_KEY: &str = "pd-routing-key-0123456789abcdef";

fn pagerduty(addr: SocketAddr) -> PagerDutySink {
    PagerDutySink::new(&transport(), PD_KEY)
        .unwrap()
        .url(&format!("http://{addr}/v2/enqueue"))
        .unwrap()
}

fn health(sink: &impl Sink) -> SinkHealth {
    let mut health = sink.health();
    assert_eq!(health.len(), 1);
    health.remove(0)
}

async fn deliver(
    sink: &impl Sink,
    batch: &[Report],
) -> Result<(), webhook_monitor::report::SinkError> {
    tokio::time::timeout(Duration::from_secs(10), sink.send(batch))
        .await
        .expect("send ended")
}

/// The figures of [`opened_then_resolved`]'s alerts.
const OPENED_FIGURES: &str =
    r#"{"failure_rate": 0.6, "failed": 12, "handled": 20, "window_minutes": 5}"#;
const RESOLVED_FIGURES: &str =
    r#"{"failure_rate": 0.05, "failed": 1, "handled": 20, "window_minutes": 5}"#;

/// The figures of [`two_instances`]' alerts.
const INSTANCE_FIGURES: &str = r#"{"failure_rate": 0.8, "failed": 16, "handled": 20, "others_failure_rate": 0.05, "window_minutes": 5}"#;

/// The same alert about two instances of a fleet, `web-1` and `web-2`, opened; then `web-2`'s
/// resolved.
fn two_instances() -> [Report; 3] {
    let on = |instance, state| {
        instance_alert(
            "instance_failure_rate",
            "orders",
            Some(instance),
            state,
            INSTANCE_FIGURES,
        )
    };
    [
        on("web-1", "opened"),
        on("web-2", "opened"),
        on("web-2", "resolved"),
    ]
}

/// A batch with a failure-rate alert on `route` that opened (at 1) and the same resolved (at
/// 3), among reports that are not alerts: a sink sends the two, in order.
async fn opened_then_resolved(route: &str) -> [Report; 4] {
    [
        delivery(),
        alert("failure_rate", route, "opened", OPENED_FIGURES),
        health_report().await,
        alert("failure_rate", route, "resolved", RESOLVED_FIGURES),
    ]
}

// ---------------------------------------------------------------------------------------------
// PagerDuty.

#[tokio::test]
async fn pagerduty_triggers_then_resolves_the_same_incident_and_ignores_other_reports() {
    let (backend, addr) = Backend::serve([], 202).await;
    let sink = pagerduty(addr);
    let batch = opened_then_resolved("payments").await;
    deliver(&sink, &batch).await.unwrap();

    let seen = backend.seen();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    for s in &seen {
        assert_eq!(s.method, Method::POST);
        assert_eq!(s.path, "/v2/enqueue");
        assert_eq!(s.query, None);
        assert_eq!(s.header("content-type"), "application/json");
    }
    assert_eq!(
        seen[0].json(),
        json!({
            "routing_key": PD_KEY,
            "event_action": "trigger",
            "dedup_key": "webhook-monitor/payments/failure_rate",
            "client": "webhook-monitor",
            "payload": {
                "summary": "[critical] payments: failure rate above threshold (opened) \
                            failure_rate=0.600 failed=12 handled=20 window_minutes=5",
                "source": "payments",
                "severity": "critical",
                "timestamp": "2026-03-01T10:00:00Z",
                "component": "payments",
                "class": "failure_rate",
                "custom_details": value(OPENED_FIGURES),
            },
        })
    );
    assert_eq!(
        seen[1].json(),
        json!({
            "routing_key": PD_KEY,
            "event_action": "resolve",
            "dedup_key": "webhook-monitor/payments/failure_rate",
        })
    );
    let h = health(&sink);
    assert_eq!(h.name, "pagerduty");
    assert_eq!(
        (h.accepted, h.sent, h.failed, h.retries),
        (2, 2, 0, 0),
        "{h:?}"
    );
}

#[tokio::test]
async fn pagerduty_keys_an_instance_alert_by_its_instance_too() {
    let (backend, addr) = Backend::serve([], 202).await;
    let sink = pagerduty(addr);
    deliver(&sink, &two_instances()).await.unwrap();

    let seen: Vec<Value> = backend.seen().iter().map(|s| s.json()).collect();
    assert_eq!(seen.len(), 3, "{seen:#?}");
    // Two incidents, one per instance; the resolution closes web-2's only.
    let keys: Vec<_> = seen.iter().map(|s| s["dedup_key"].clone()).collect();
    assert_eq!(
        keys,
        [
            "webhook-monitor/orders/instance_failure_rate/web-1",
            "webhook-monitor/orders/instance_failure_rate/web-2",
            "webhook-monitor/orders/instance_failure_rate/web-2",
        ]
    );
    assert_eq!(
        seen[1],
        json!({
            "routing_key": PD_KEY,
            "event_action": "trigger",
            "dedup_key": "webhook-monitor/orders/instance_failure_rate/web-2",
            "client": "webhook-monitor",
            "payload": {
                "summary": "[critical] orders: an instance fails far more than the rest of the \
                            fleet on web-2 (opened) failure_rate=0.800 failed=16 handled=20 \
                            others_failure_rate=0.050 window_minutes=5",
                "source": "orders",
                "severity": "critical",
                "timestamp": "2026-03-01T10:00:00Z",
                "component": "orders",
                "class": "instance_failure_rate",
                "custom_details": value(INSTANCE_FIGURES),
            },
        })
    );
    assert_eq!(seen[2]["event_action"], "resolve");
}

#[tokio::test]
async fn pagerduty_maps_a_warning_and_uses_the_source_set() {
    let (backend, addr) = Backend::serve([], 202).await;
    let sink = pagerduty(addr).source("web-1.example.com");
    let figures = r#"{"per_minute": 240, "trailing_mean": 12.5}"#;
    let spike = alert("spike", "orders", "opened", figures);
    deliver(&sink, &[spike]).await.unwrap();

    let seen = backend.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].json(),
        json!({
            "routing_key": PD_KEY,
            "event_action": "trigger",
            "dedup_key": "webhook-monitor/orders/spike",
            "client": "webhook-monitor",
            "payload": {
                "summary": "[warning] orders: traffic spike (opened) per_minute=240 \
                            trailing_mean=12.500",
                "source": "web-1.example.com",
                "severity": "warning",
                "timestamp": "2026-03-01T10:00:00Z",
                "component": "orders",
                "class": "spike",
                "custom_details": value(figures),
            },
        })
    );
}

#[tokio::test]
async fn pagerduty_cuts_the_summary_to_1024_characters_and_keeps_every_figure() {
    let (backend, addr) = Backend::serve([], 202).await;
    let sink = pagerduty(addr);
    // Two bytes per character: a cut by bytes, or inside a character, would show.
    let long = "é".repeat(2000);
    let figures = json!({"consecutive_failures": 7, "last_error": long, "paused": false});
    let report = alert(
        "consecutive_failures",
        "billing",
        "opened",
        &figures.to_string(),
    );
    deliver(&sink, std::slice::from_ref(&report)).await.unwrap();

    let body = backend.seen()[0].json();
    let summary = body["payload"]["summary"].as_str().unwrap();
    let full = as_alert(&report).to_string();
    assert!(full.chars().count() > 2000);
    assert_eq!(summary.chars().count(), 1024);
    assert_eq!(summary, full.chars().take(1024).collect::<String>());
    assert_eq!(body["payload"]["custom_details"], figures);
    assert_eq!(body["payload"]["severity"], "critical");
}

#[tokio::test]
async fn pagerduty_sends_nothing_for_deliveries_and_health_reports() {
    let (backend, addr) = Backend::serve([], 202).await;
    let sink = pagerduty(addr);
    deliver(&sink, &[delivery(), health_report().await, delivery()])
        .await
        .unwrap();
    deliver(&sink, &[]).await.unwrap();
    assert_eq!(backend.seen().len(), 0);
    let h = health(&sink);
    assert_eq!((h.accepted, h.sent, h.failed), (0, 0, 0), "{h:?}");
}

#[tokio::test]
async fn pagerduty_is_retried_by_the_transport_after_a_429() {
    let (backend, addr) = Backend::serve([(429, "slow down"), (202, "")], 202).await;
    let sink = pagerduty(addr);
    let report = alert("silence", "orders", "opened", r#"{"silent_for_s": 900}"#);
    deliver(&sink, &[report]).await.unwrap();

    let seen = backend.seen();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_eq!(seen[0].body, seen[1].body, "the same event again");
    assert_eq!(seen[1].json()["event_action"], "trigger");
    let h = health(&sink);
    assert_eq!(
        (h.accepted, h.sent, h.failed, h.retries),
        (1, 1, 0, 1),
        "{h:?}"
    );
}

/// Collects what a `tracing` subscriber writes.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// An error's `Display` and `Debug`, and its sources'.
fn error_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = format!("{error} {error:?}");
    let mut source = error.source();
    while let Some(e) = source {
        text += &format!(" {e} {e:?}");
        source = e.source();
    }
    text
}

#[tokio::test]
async fn pagerduty_never_shows_its_routing_key_in_debug_errors_or_logs() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let (backend, addr) = Backend::serve([(400, "invalid event")], 202).await;
    let sink = pagerduty(addr).source("web-1");
    let debug = format!("{sink:?}");
    assert!(debug.contains("PagerDutySink"), "{debug}");
    assert!(!debug.contains(PD_KEY), "{debug}");

    let report = alert("drop", "orders", "opened", r#"{"per_minute": 0}"#);
    let error = deliver(&sink, &[report]).await.unwrap_err();
    assert_eq!(backend.seen().len(), 1, "a refusal is not retried");
    let error_text = error_text(&error);
    assert!(error_text.contains("400"), "{error_text}");
    assert!(!error_text.contains(PD_KEY), "{error_text}");

    let logged = logs.text();
    assert!(
        logged.contains("pagerduty"),
        "the refusal is logged: {logged}"
    );
    assert!(!logged.contains(PD_KEY), "{logged}");
    assert_eq!(health(&sink).failed, 1);
}

#[tokio::test]
async fn pagerduty_url_must_be_absolute_http() {
    let sink = PagerDutySink::new(&transport(), PD_KEY).unwrap();
    assert!(sink.url("ftp://events.example.com/v2/enqueue").is_err());
    let sink = PagerDutySink::new(&transport(), PD_KEY).unwrap();
    assert!(sink.url("/v2/enqueue").is_err());
}

// ---------------------------------------------------------------------------------------------
// Opsgenie.

const OG_KEY: &str = "og-api-key-fedcba9876543210";

fn opsgenie(addr: SocketAddr) -> OpsgenieSink {
    OpsgenieSink::new(&transport(), OG_KEY)
        .unwrap()
        .url(&format!("http://{addr}"))
        .unwrap()
}

#[tokio::test]
async fn opsgenie_creates_then_closes_the_alert_by_its_alias_and_ignores_other_reports() {
    let (backend, addr) = Backend::serve([], 202).await;
    let sink = opsgenie(addr);
    // A `/` in the route: the alias is one path segment all the same.
    let batch = opened_then_resolved("checkout/eu").await;
    let resolved = &batch[3];
    deliver(&sink, &batch).await.unwrap();

    let seen = backend.seen();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    for s in &seen {
        assert_eq!(s.method, Method::POST);
        assert_eq!(s.header("authorization"), format!("GenieKey {OG_KEY}"));
        assert_eq!(s.header("content-type"), "application/json");
    }
    assert_eq!(seen[0].path, "/v2/alerts");
    assert_eq!(seen[0].query, None);
    assert_eq!(
        seen[0].json(),
        json!({
            "message": "[critical] checkout/eu: failure rate above threshold (opened)",
            "alias": "webhook-monitor/checkout/eu/failure_rate",
            "description": "[critical] checkout/eu: failure rate above threshold (opened) \
                            failure_rate=0.600 failed=12 handled=20 window_minutes=5",
            "priority": "P1",
            "source": "webhook-monitor",
            "entity": "checkout/eu",
            "tags": ["webhook-monitor", "checkout/eu", "failure_rate"],
            "details": {"failure_rate": "0.6", "failed": "12", "handled": "20", "window_minutes": "5"},
        })
    );
    assert_eq!(
        seen[1].path,
        "/v2/alerts/webhook-monitor%2Fcheckout%2Feu%2Ffailure_rate/close"
    );
    assert_eq!(seen[1].query.as_deref(), Some("identifierType=alias"));
    assert_eq!(
        seen[1].json(),
        json!({
            "source": "webhook-monitor",
            "note": as_alert(resolved).to_string(),
        })
    );
    assert_eq!(
        as_alert(resolved).to_string(),
        "[critical] checkout/eu: failure rate above threshold (resolved) failure_rate=0.050 \
         failed=1 handled=20 window_minutes=5"
    );
    let h = health(&sink);
    assert_eq!(h.name, "opsgenie");
    assert_eq!(
        (h.accepted, h.sent, h.failed, h.retries),
        (2, 2, 0, 0),
        "{h:?}"
    );
}

#[tokio::test]
async fn opsgenie_aliases_an_instance_alert_by_its_instance_too() {
    let (backend, addr) = Backend::serve([], 202).await;
    let sink = opsgenie(addr);
    let batch = two_instances();
    deliver(&sink, &batch).await.unwrap();

    let seen = backend.seen();
    assert_eq!(seen.len(), 3, "{seen:#?}");
    // Two Opsgenie alerts, one per instance; the resolution closes web-2's only.
    assert_eq!(
        seen[0].json()["alias"],
        "webhook-monitor/orders/instance_failure_rate/web-1"
    );
    assert_eq!(
        seen[1].json(),
        json!({
            "message": "[critical] orders: an instance fails far more than the rest of the \
                        fleet on web-2 (opened)",
            "alias": "webhook-monitor/orders/instance_failure_rate/web-2",
            "description": as_alert(&batch[1]).to_string(),
            "priority": "P1",
            "source": "webhook-monitor",
            "entity": "orders",
            "tags": ["webhook-monitor", "orders", "instance_failure_rate"],
            "details": {
                "failure_rate": "0.8", "failed": "16", "handled": "20",
                "others_failure_rate": "0.05", "window_minutes": "5",
            },
        })
    );
    assert_eq!(
        seen[2].path,
        "/v2/alerts/webhook-monitor%2Forders%2Finstance_failure_rate%2Fweb-2/close"
    );
    assert_eq!(
        seen[2].json()["note"],
        "[critical] orders: an instance fails far more than the rest of the fleet on web-2 \
         (resolved) failure_rate=0.800 failed=16 handled=20 others_failure_rate=0.050 \
         window_minutes=5"
    );
}

#[tokio::test]
async fn opsgenie_maps_a_warning_to_p3_cuts_the_message_to_130_and_stringifies_details() {
    let (backend, addr) = Backend::serve([], 202).await;
    let sink = opsgenie(addr);
    // A long route name: the message would be 170 characters; two bytes per character.
    let route = "ö".repeat(120);
    let figures = r#"{"p95_ms": 2400.5, "samples": 40, "degraded": true, "note": "slow db"}"#;
    let report = alert("latency_degraded", &route, "opened", figures);
    deliver(&sink, std::slice::from_ref(&report)).await.unwrap();

    let body = backend.seen()[0].json();
    let head = format!("[warning] {route}: p95 latency well above its baseline (opened)");
    assert!(head.chars().count() > 130);
    let message = body["message"].as_str().unwrap();
    assert_eq!(message.chars().count(), 130);
    assert_eq!(message, head.chars().take(130).collect::<String>());
    assert_eq!(body["priority"], "P3");
    assert_eq!(body["description"], as_alert(&report).to_string());
    assert_eq!(
        body["details"],
        json!({"p95_ms": "2400.5", "samples": "40", "degraded": "true", "note": "slow db"})
    );
    assert_eq!(
        body["tags"],
        json!(["webhook-monitor", route, "latency_degraded"])
    );
}

#[tokio::test]
async fn opsgenie_sends_nothing_for_deliveries_and_health_reports() {
    let (backend, addr) = Backend::serve([], 202).await;
    let sink = opsgenie(addr);
    deliver(&sink, &[delivery(), health_report().await])
        .await
        .unwrap();
    assert_eq!(backend.seen().len(), 0);
    let h = health(&sink);
    assert_eq!((h.accepted, h.sent, h.failed), (0, 0, 0), "{h:?}");
}

#[tokio::test]
async fn opsgenie_is_retried_by_the_transport_after_a_429() {
    let (backend, addr) = Backend::serve([(429, ""), (202, "")], 202).await;
    let sink = opsgenie(addr);
    let report = alert("all_rejected", "orders", "resolved", r#"{"rejected": 0}"#);
    deliver(&sink, &[report]).await.unwrap();

    let seen = backend.seen();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_eq!(seen[0].body, seen[1].body);
    assert_eq!(
        seen[1].path,
        "/v2/alerts/webhook-monitor%2Forders%2Fall_rejected/close"
    );
    assert_eq!(
        seen[1].header("authorization"),
        format!("GenieKey {OG_KEY}")
    );
    let h = health(&sink);
    assert_eq!(
        (h.accepted, h.sent, h.failed, h.retries),
        (1, 1, 0, 1),
        "{h:?}"
    );
}

#[tokio::test]
async fn opsgenie_never_shows_its_api_key_in_debug_errors_or_logs() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let (backend, addr) = Backend::serve([(422, "bad request")], 202).await;
    let sink = opsgenie(addr);
    let debug = format!("{sink:?}");
    assert!(debug.contains("OpsgenieSink"), "{debug}");
    assert!(!debug.contains(OG_KEY), "{debug}");
    let eu = format!(
        "{:?}",
        OpsgenieSink::new(&transport(), OG_KEY).unwrap().eu()
    );
    assert!(eu.contains("api.eu.opsgenie.com"), "{eu}");
    assert!(!eu.contains(OG_KEY), "{eu}");

    let report = alert("spike", "orders", "opened", r#"{"per_minute": 90}"#);
    let error = deliver(&sink, &[report]).await.unwrap_err();
    assert_eq!(backend.seen().len(), 1, "a refusal is not retried");
    let text = error_text(&error);
    assert!(text.contains("422"), "{text}");
    assert!(!text.contains(OG_KEY), "{text}");

    let logged = logs.text();
    assert!(
        logged.contains("opsgenie"),
        "the refusal is logged: {logged}"
    );
    assert!(!logged.contains(OG_KEY), "{logged}");
}

#[tokio::test]
async fn opsgenie_rejects_a_key_that_is_not_a_header_value_and_a_relative_url() {
    assert!(OpsgenieSink::new(&transport(), "key\r\nX-Injected: 1").is_err());
    let sink = OpsgenieSink::new(&transport(), OG_KEY).unwrap();
    assert!(sink.url("api.opsgenie.com").is_err());
}

//! `MetricsSink` fed by the layer, into a real Prometheus recorder (metrics-exporter-prometheus)
//! installed for this test binary: the exact metric names, labels and values, read from the
//! exposition text, once over HTTP as Prometheus would scrape it.
//!
//! Every test uses its own route names; only the health test sends health reports, so the
//! reporter's unlabelled metrics are its own.
#![cfg(all(feature = "metrics", feature = "axum"))]
#![allow(clippy::unwrap_used)]

mod common;

use std::{sync::OnceLock, time::Duration};

use axum::{
    body::Body,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use http::Request;
use http_body_util::BodyExt;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tower::ServiceExt;
use webhook_monitor::{
    dedupe::MemoryStore,
    provider::{AttemptSource, Source},
    report::{MetricsSink, Reporter, Sink, SinkError, SinkHealth},
    Mark, Policy, Report, WebhookMonitorLayer,
};

/// The process-wide Prometheus recorder, with buckets for the webhook metrics (as the docs
/// advise) so that durations render as histograms.
fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Prefix("webhook_".to_owned()),
                MetricsSink::DURATION_BUCKETS,
            )
            .unwrap()
            .install_recorder()
            .unwrap()
    })
}

/// The value of `series` (name and labels, as rendered) in the exposition `text`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

/// Asserts each `(series, value)` against `text`.
fn assert_series(text: &str, expected: &[(&str, f64)]) {
    for &(series, want) in expected {
        assert_eq!(value(text, series), Some(want), "{series} in\n{text}");
    }
}

/// Sleeps `x-sleep-ms`, answers `x-status` (200 by default), marks a failure on `x-mark`.
async fn handler(headers: HeaderMap) -> Response {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = header("x-sleep-ms").and_then(|v| v.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let status = header("x-status")
        .and_then(|s| s.parse().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    match header("x-mark") {
        Some(reason) => (Mark::failed(reason.to_owned()), status).into_response(),
        None => status.into_response(),
    }
}

/// A route named `name` (provider `shop`, ids and attempts from headers, dedupe in memory,
/// 64-byte bodies) reporting into a `MetricsSink` with no health reports.
fn route(name: &str) -> (Router, webhook_monitor::ReporterGuard) {
    let (reporter, guard) = Reporter::builder()
        .linger(Duration::from_millis(1))
        .health_interval(None)
        .spawn(MetricsSink::new());
    let policy = Policy::custom(name)
        .provider("shop")
        .max_body_bytes(64)
        .delivery_id(Source::header("x-delivery-id"))
        .attempt(AttemptSource::count(Source::header("x-attempt")))
        .dedupe(MemoryStore::new())
        .watch(|w| w.consecutive_failures(2));
    let app = Router::new().route(
        "/hook",
        post(handler).layer(WebhookMonitorLayer::new(policy, reporter)),
    );
    (app, guard)
}

/// Sends one delivery through `app` in-process; `headers` are name/value pairs.
async fn deliver(app: &Router, headers: &[(&str, &str)], body: &'static [u8]) -> StatusCode {
    let mut req = Request::post("/hook");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = app.clone().oneshot(req.body(Body::from(body)).unwrap());
    res.await.unwrap().status()
}

#[tokio::test]
async fn a_scrape_over_http_counts_deliveries_by_route_provider_outcome_and_detail() {
    let handle = prometheus().clone();
    let (app, guard) = route("scraped");
    let app = app.route("/metrics", get(move || async move { handle.render() }));
    let addr = common::serve(app).await;
    let url = format!("http://{addr}/hook");
    let send = |headers: &'static [(&'static str, &'static str)], body: &'static [u8]| {
        let url = url.clone();
        async move { common::send(&url, common::full(body), headers).await.0 }
    };
    assert_eq!(send(&[("x-delivery-id", "a")], b"{}").await, StatusCode::OK);
    assert_eq!(send(&[("x-delivery-id", "b")], b"{}").await, StatusCode::OK);
    // A copy of `a`: answered without the handler.
    assert_eq!(send(&[("x-delivery-id", "a")], b"{}").await, StatusCode::OK);
    let status = send(&[("x-delivery-id", "c"), ("x-status", "500")], b"{}").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let status = send(&[("x-delivery-id", "d"), ("x-mark", "no order id")], b"{}").await;
    assert_eq!(status, StatusCode::OK);
    let status = send(&[("x-delivery-id", "e")], &[b'x'; 100]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    guard.shutdown(Duration::from_secs(5)).await.unwrap();

    let res = common::client()
        .get(format!("http://{addr}/metrics").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.into_body().collect().await.unwrap().to_bytes();
    let text = std::str::from_utf8(&text).unwrap();
    let series = |labels: &str| {
        format!(r#"webhook_deliveries_total{{route="scraped",provider="shop",{labels}}}"#)
    };
    assert_series(
        text,
        &[
            (&series(r#"outcome="success""#), 2.0),
            (&series(r#"outcome="duplicate""#), 1.0),
            (&series(r#"outcome="failure",detail="server_error""#), 1.0),
            (&series(r#"outcome="failure",detail="marked""#), 1.0),
            (&series(r#"outcome="rejected",detail="too_large""#), 1.0),
        ],
    );
    let scraped: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("webhook_deliveries_total{route=\"scraped\""))
        .collect();
    assert_eq!(scraped.len(), 5, "{scraped:#?}");
    assert!(text.contains("# TYPE webhook_deliveries_total counter\n"));
    assert!(text.contains(
        "# HELP webhook_deliveries_total Webhook deliveries by route, provider, outcome and detail\n"
    ));
    assert!(text.contains("# TYPE webhook_handler_duration_seconds histogram\n"));
}

#[tokio::test]
async fn durations_are_recorded_in_seconds_for_the_outcomes_they_describe() {
    let (app, guard) = route("timed");
    let slow = [("x-delivery-id", "slow"), ("x-sleep-ms", "60")];
    assert_eq!(deliver(&app, &slow, b"{}").await, StatusCode::OK);
    assert_eq!(
        deliver(&app, &[("x-delivery-id", "fast")], b"{}").await,
        StatusCode::OK
    );
    // Neither a copy nor a rejection calls the handler.
    assert_eq!(
        deliver(&app, &[("x-delivery-id", "fast")], b"{}").await,
        StatusCode::OK
    );
    let status = deliver(&app, &[("x-delivery-id", "big")], &[b'x'; 100]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    guard.shutdown(Duration::from_secs(5)).await.unwrap();

    let text = prometheus().render();
    assert_series(
        &text,
        &[
            (
                r#"webhook_handler_duration_seconds_count{route="timed"}"#,
                2.0,
            ),
            (
                r#"webhook_handler_duration_seconds_bucket{route="timed",le="0.05"}"#,
                1.0,
            ),
            (
                r#"webhook_handler_duration_seconds_bucket{route="timed",le="+Inf"}"#,
                2.0,
            ),
            (
                r#"webhook_body_read_duration_seconds_count{route="timed"}"#,
                4.0,
            ),
            (
                r#"webhook_total_duration_seconds_count{route="timed"}"#,
                4.0,
            ),
        ],
    );
    // Seconds, not milliseconds: the slow handler slept 60 ms.
    let sum = value(
        &text,
        r#"webhook_handler_duration_seconds_sum{route="timed"}"#,
    )
    .unwrap();
    assert!((0.06..1.0).contains(&sum), "{sum}");
    let total = value(
        &text,
        r#"webhook_total_duration_seconds_sum{route="timed"}"#,
    )
    .unwrap();
    assert!(total >= sum, "{total} < {sum}");
}

#[test]
fn duration_buckets_are_sorted_and_bound_the_providers_budgets() {
    let buckets = MetricsSink::DURATION_BUCKETS;
    assert!(
        buckets.windows(2).all(|w| w[0] < w[1]),
        "strictly increasing: {buckets:?}"
    );
    assert!(buckets.iter().all(|b| b.is_finite() && *b > 0.0));
    // Slack/Zoom/Discord, Shopify/Paddle/Razorpay, GitHub/Square/GitLab, Twilio/Svix, GHES.
    for budget in [3.0, 5.0, 10.0, 15.0, 30.0] {
        assert!(buckets.contains(&budget), "{budget} s in {buckets:?}");
        // Where `near_timeout` starts.
        let near = budget * f64::from(Policy::NEAR_TIMEOUT_PERCENT) / 100.0;
        assert!(buckets.contains(&near), "{near} s in {buckets:?}");
    }
    assert_eq!(buckets.first(), Some(&0.005));
    assert!(buckets.last().is_some_and(|last| *last > 30.0), "past 30 s");
}

#[tokio::test]
async fn durations_render_as_histograms_with_every_bucket() {
    let (app, guard) = route("bucketed");
    let slow = [("x-delivery-id", "b1"), ("x-sleep-ms", "30")];
    assert_eq!(deliver(&app, &slow, b"{}").await, StatusCode::OK);
    guard.shutdown(Duration::from_secs(5)).await.unwrap();

    let text = prometheus().render();
    let metrics = [
        "webhook_body_read_duration_seconds",
        "webhook_handler_duration_seconds",
        "webhook_total_duration_seconds",
    ];
    for metric in metrics {
        assert!(
            text.contains(&format!("# TYPE {metric} histogram\n")),
            "{metric} in\n{text}"
        );
        let bounds = MetricsSink::DURATION_BUCKETS.iter().map(f64::to_string);
        let mut last = 0.0;
        for le in bounds.chain(["+Inf".to_owned()]) {
            let series = format!(r#"{metric}_bucket{{route="bucketed",le="{le}"}}"#);
            let count = value(&text, &series).unwrap_or_else(|| panic!("{series} in\n{text}"));
            assert!(count >= last, "cumulative: {series} {count} < {last}");
            last = count;
        }
        assert_eq!(last, 1.0, "{metric}: one delivery");
        let quantile = format!(r#"{metric}{{route="bucketed",quantile="#);
        assert!(!text.contains(&quantile), "not a summary: {metric}");
    }
    // The budgets render as written in the constant, and the slow handler (30 ms) lands
    // between 25 and 50 ms.
    let handler = |le: &str| {
        let series =
            format!(r#"webhook_handler_duration_seconds_bucket{{route="bucketed",le="{le}"}}"#);
        value(&text, &series)
    };
    for le in ["3", "5", "10", "15", "30", "60"] {
        assert_eq!(handler(le), Some(1.0), "le={le}");
    }
    assert_eq!(handler("0.025"), Some(0.0));
    assert_eq!(handler("0.05"), Some(1.0));
}

#[tokio::test]
async fn flags_are_counted_by_flag_and_the_provider_label_is_set_only_with_a_provider() {
    let (reporter, guard) = Reporter::builder()
        .linger(Duration::from_millis(1))
        .health_interval(None)
        .spawn(MetricsSink::new());
    // One route name, with and without a provider.
    let policy =
        Policy::custom("flagged").attempt(AttemptSource::count(Source::header("x-attempt")));
    let app = Router::new()
        .route(
            "/hook",
            post(handler).layer(WebhookMonitorLayer::new(policy.clone(), reporter.clone())),
        )
        .route(
            "/shop",
            post(handler).layer(WebhookMonitorLayer::new(policy.provider("shop"), reporter)),
        );
    for attempt in ["1", "9", "12"] {
        let status = deliver(&app, &[("x-attempt", attempt)], b"{}").await;
        assert_eq!(status, StatusCode::OK);
    }
    let req = Request::post("/shop").body(Body::from("{}")).unwrap();
    assert_eq!(app.oneshot(req).await.unwrap().status(), StatusCode::OK);
    guard.shutdown(Duration::from_secs(5)).await.unwrap();

    let text = prometheus().render();
    assert_series(
        &text,
        &[
            (
                r#"webhook_deliveries_total{route="flagged",outcome="success"}"#,
                3.0,
            ),
            (
                r#"webhook_deliveries_total{route="flagged",provider="shop",outcome="success"}"#,
                1.0,
            ),
            (
                r#"webhook_flagged_total{route="flagged",flag="many_attempts"}"#,
                2.0,
            ),
        ],
    );
    let flagged = text
        .lines()
        .filter(|l| l.starts_with(r#"webhook_flagged_total{route="flagged""#))
        .count();
    assert_eq!(flagged, 1, "{text}");
}

#[tokio::test]
async fn an_alert_sets_its_gauge_while_open_and_counts_openings() {
    let (app, guard) = route("alerting");
    let open =
        r#"webhook_alert_open{route="alerting",kind="consecutive_failures",severity="critical"}"#;
    let opened = r#"webhook_alerts_opened_total{route="alerting",kind="consecutive_failures",severity="critical"}"#;
    for id in ["f1", "f2"] {
        let status = deliver(&app, &[("x-delivery-id", id), ("x-status", "503")], b"{}").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while value(&prometheus().render(), open) != Some(1.0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the alert never opened"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let status = deliver(&app, &[("x-delivery-id", "ok")], b"{}").await;
    assert_eq!(status, StatusCode::OK);
    guard.shutdown(Duration::from_secs(5)).await.unwrap();

    assert_series(&prometheus().render(), &[(open, 0.0), (opened, 1.0)]);
}

/// The metrics sink behind a backend that reports its own health, as a `Fanout` entry does.
struct WithBackend(MetricsSink);

impl Sink for WithBackend {
    async fn send(&self, batch: &[Report]) -> Result<(), SinkError> {
        self.0.send(batch).await
    }

    fn health(&self) -> Vec<SinkHealth> {
        let mut backend = SinkHealth::new("backend");
        backend.accepted = 40;
        backend.sent = 30;
        backend.failed = 4;
        backend.dropped = 1;
        backend.queued = 5;
        backend.retries = 9;
        backend.consecutive_failures = 3;
        backend.down = true;
        backend.latency = Some(Duration::from_millis(250));
        vec![backend]
    }
}

#[tokio::test(start_paused = true)]
async fn health_reports_export_the_reporter_and_sink_counters() {
    let (reporter, guard, worker) = Reporter::builder()
        .queue_capacity(1)
        .health_interval(Some(Duration::from_secs(10)))
        .pair(WithBackend(MetricsSink::new()));
    let policy = Policy::custom("health");
    let app = Router::new()
        .route("/hook", post(handler))
        .route_layer(WebhookMonitorLayer::new(policy, reporter));
    // The worker is not running yet: one report fits the queue, two are dropped.
    for _ in 0..3 {
        assert_eq!(deliver(&app, &[], b"{}").await, StatusCode::OK);
    }
    tokio::spawn(worker);
    // The delivery goes out at once, the first health report after 10 s.
    tokio::time::sleep(Duration::from_secs(11)).await;

    let text = prometheus().render();
    assert_series(
        &text,
        &[
            ("webhook_reporter_enqueued_total", 1.0),
            (
                r#"webhook_reporter_dropped_total{reason="queue_full"}"#,
                2.0,
            ),
            (r#"webhook_reporter_dropped_total{reason="closed"}"#, 0.0),
            ("webhook_reporter_sent_total", 1.0),
            ("webhook_reporter_failed_total", 0.0),
            ("webhook_reporter_batches_total", 1.0),
            ("webhook_reporter_alerts_total", 0.0),
            (r#"webhook_reporter_panics_total{part="sink"}"#, 0.0),
            (r#"webhook_reporter_panics_total{part="watcher"}"#, 0.0),
            ("webhook_reporter_queue_depth", 0.0),
            (r#"webhook_sink_accepted_total{sink="backend"}"#, 40.0),
            (r#"webhook_sink_sent_total{sink="backend"}"#, 30.0),
            (r#"webhook_sink_failed_total{sink="backend"}"#, 4.0),
            (r#"webhook_sink_dropped_total{sink="backend"}"#, 1.0),
            (r#"webhook_sink_retries_total{sink="backend"}"#, 9.0),
            (r#"webhook_sink_queued{sink="backend"}"#, 5.0),
            (r#"webhook_sink_consecutive_failures{sink="backend"}"#, 3.0),
            (r#"webhook_sink_down{sink="backend"}"#, 1.0),
            (r#"webhook_sink_latency_seconds{sink="backend"}"#, 0.25),
        ],
    );
    let at = value(&text, "webhook_reporter_health_timestamp_seconds").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    assert!((now.as_secs_f64() - at).abs() < 60.0, "{at}");
    // The process's resident memory, where the platform tells (Linux and macOS do).
    if cfg!(any(target_os = "linux", target_os = "macos")) {
        assert!(text.contains("# TYPE webhook_process_resident_memory_bytes gauge\n"));
        let rss = value(&text, "webhook_process_resident_memory_bytes");
        assert!(rss.is_some_and(|rss| rss > 1e6), "{rss:?}");
    }
    guard.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn two_instances_alerts_are_two_series() {
    prometheus();
    let alert = |instance: &str, state: &str| -> Report {
        let json = format!(
            r#"{{"type":"alert","kind":"instance_silent","route":"fleet-route","instance":"{instance}","severity":"warning","state":"{state}","opened_at":"2026-12-03T10:00:00Z","at":"2026-12-03T10:00:00Z","figures":{{}}}}"#
        );
        serde_json::from_str(&json).unwrap()
    };
    let sink = MetricsSink::new();
    sink.send(&[alert("web-1", "opened"), alert("web-2", "opened")])
        .await
        .unwrap();
    sink.send(&[alert("web-1", "resolved")]).await.unwrap();
    let series = |instance: &str| {
        format!(
            r#"webhook_alert_open{{route="fleet-route",kind="instance_silent",severity="warning",instance="{instance}"}}"#
        )
    };
    let (one, two) = (series("web-1"), series("web-2"));
    assert_series(&prometheus().render(), &[(&one, 0.0), (&two, 1.0)]);
}

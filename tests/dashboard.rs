//! The dashboard, served for real on loopback: every page and API endpoint, authentication,
//! the `?token=` login, methods, security headers, escaping, 404/400/503. The history is a
//! `MemoryHistory` filled through `Sink::send` with reports read from their JSON, and through a
//! real `WebhookMonitorLayer` and `Reporter`.
#![cfg(feature = "dashboard")]
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::{routing::post, Router};
use base64::Engine as _;
use http::{header, HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use webhook_monitor::{
    dashboard::{Auth, Dashboard},
    history::{
        AlertLog, DeliveryFilter, History, HistoryError, MemoryHistory, Minute, Recorded,
        RouteEntry,
    },
    report::{HealthReport, Reporter, Sink},
    Policy, Report, ReporterGuard, WebhookMonitorLayer,
};

const TOKEN: &str = "test-token-0123456789abcdef";
const XSS_ROUTE: &str = "<img src=x onerror=alert(1)>";
const XSS_EVENT: &str = "<script>alert(1)</script>";

/// The pinned "now": 2026-11-28T19:30:20Z.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_894_220)
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string()
}

/// A delivery report, as a sink would have written it.
struct Delivery {
    route: &'static str,
    id: Option<&'static str>,
    event: &'static str,
    attempt: Option<u32>,
    outcome: &'static str,
    detail: Option<&'static str>,
    status: Option<u16>,
    reason: Option<&'static str>,
    ago: Duration,
    total_us: u64,
}

impl Delivery {
    fn ok(route: &'static str, ago_s: u64, total_ms: u64) -> Self {
        Self {
            route,
            id: None,
            event: "order.created",
            attempt: Some(1),
            outcome: "success",
            detail: None,
            status: Some(200),
            reason: None,
            ago: Duration::from_secs(ago_s),
            total_us: total_ms * 1000,
        }
    }

    fn report(&self) -> Report {
        let line = json!({
            "type": "delivery", "route": self.route, "provider": "shop",
            "delivery_id": self.id, "event_type": self.event, "attempt": self.attempt,
            "signature": "verified", "secret_index": 1, "status": self.status,
            "outcome": self.outcome, "outcome_detail": self.detail, "reason": self.reason,
            "payload_check": null, "received_at": rfc3339(now() - self.ago),
            "body_read_us": 40, "handler_us": self.total_us.saturating_sub(100),
            "total_us": self.total_us, "body_bytes": 512,
            "fingerprint": "xxh3-128:5b7d2e4f0c1a9e8d7c6b5a4f3e2d1c0b", "times_seen": null,
            "first_seen": null, "mean_retry_interval_ms": null, "lag_ms": 1500,
            "flags": if self.total_us > 8_000_000 { json!(["near_timeout"]) } else { json!([]) },
            "fields": {"records": 3},
        });
        serde_json::from_value(line).unwrap()
    }
}

fn report(value: Value) -> Report {
    serde_json::from_value(value).unwrap()
}

struct Fixture {
    history: MemoryHistory,
    _guard: ReporterGuard,
}

/// A history with:
/// - `orders`: 20 successes over the last hour (10 to 200 ms), a marked failure with a reason,
///   a delivery whose event type is a script, two attempts of delivery `d-7`, and one 3 h ago;
///   an open `failure_rate` alert and a resolved `silence` one;
/// - a route named like an `<img>` tag, with one success;
/// - `payments`: a real delivery through a layer whose policy has a 10 s budget (received by
///   the real clock, days after the pinned one);
/// - `refunds`: a layer whose policy has a 2 s budget, and a 1.2 s success near the pinned
///   clock;
/// - a health report with a sink that is down.
async fn fixture() -> Fixture {
    let history = MemoryHistory::new();
    let mut batch: Vec<Report> = (0..20)
        .map(|i| Delivery::ok("orders", 60 + i * 150, 10 + i * 10).report())
        .collect();
    batch.push(
        Delivery {
            id: Some("d-7"),
            attempt: Some(1),
            outcome: "failure",
            detail: Some("server_error"),
            status: Some(500),
            ..Delivery::ok("orders", 400, 900)
        }
        .report(),
    );
    batch.push(
        Delivery {
            id: Some("d-7"),
            attempt: Some(2),
            outcome: "failure",
            detail: Some("marked"),
            reason: Some("missing order_id in the payload"),
            ..Delivery::ok("orders", 120, 35)
        }
        .report(),
    );
    batch.push(
        Delivery {
            event: XSS_EVENT,
            id: Some("x-1"),
            ..Delivery::ok("orders", 30, 12)
        }
        .report(),
    );
    batch.push(Delivery::ok("orders", 3 * 3600, 9_000).report());
    batch.push(Delivery::ok(XSS_ROUTE, 200, 50).report());
    batch.push(Delivery::ok("refunds", 90, 1200).report());
    let opened = rfc3339(now() - Duration::from_secs(600));
    batch.push(report(json!({
        "type": "alert", "kind": "failure_rate", "route": "orders", "severity": "critical",
        "state": "opened", "opened_at": opened, "at": opened,
        "figures": {"failure_rate": 0.6, "failed": 12, "handled": 20, "window_minutes": 5},
    })));
    batch.push(report(json!({
        "type": "alert", "kind": "silence", "route": "orders", "severity": "critical",
        "state": "resolved", "opened_at": rfc3339(now() - Duration::from_secs(7200)),
        "at": rfc3339(now() - Duration::from_secs(5400)),
        "figures": {"silent_for_s": 1800, "expected_interval_s": 300},
    })));
    batch.push(report(json!({
        "type": "health", "at": rfc3339(now() - Duration::from_secs(20)),
        "enqueued": 1234, "dropped_full": 0, "dropped_closed": 0, "sent": 1230, "failed": 4,
        "batches": 77, "alerts": 2, "sink_panics": 0, "watcher_panics": 0, "queue_depth": 3,
        "sinks": [
            {"name": "seiri", "accepted": 1230, "sent": 1200, "failed": 30, "dropped": 0,
             "queued": 0, "retries": 12, "panics": 0, "consecutive_failures": 7, "down": true,
             "latency_us": 81234},
            {"name": "log", "accepted": 1230, "sent": 1230, "failed": 0, "dropped": 0,
             "queued": 0, "retries": 0, "panics": 0, "consecutive_failures": 0, "down": false,
             "latency_us": null},
        ],
    })));
    history.send(&batch).await.unwrap();

    // A real delivery through a layer, reported into the same history. The layers register
    // their routes' budgets; the worker hands them to the history before its next batch.
    let (reporter, guard) = Reporter::builder()
        .linger(Duration::from_millis(1))
        .spawn(history.clone());
    let refunds = Policy::custom("refunds").timeout_budget(Duration::from_secs(2));
    let _unused = WebhookMonitorLayer::new(refunds, reporter.clone());
    let policy = Policy::custom("payments").timeout_budget(Duration::from_secs(10));
    let app = Router::new()
        .route("/hook", post(|| async { "ok" }))
        .route_layer(WebhookMonitorLayer::new(policy, reporter));
    let addr = common::serve(app).await;
    let (status, _) = common::send(&format!("http://{addr}/hook"), common::full("{}"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while history
        .deliveries("payments", &DeliveryFilter::new())
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the delivery never arrived"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Fixture {
        history,
        _guard: guard,
    }
}

/// The dashboard nested at `/_webhooks`, on loopback: its base URL.
async fn serve(router: Router) -> String {
    let app = Router::new().nest("/_webhooks", router);
    format!("http://{}/_webhooks", common::serve(app).await)
}

async fn dashboard(history: &MemoryHistory, auth: Auth) -> String {
    serve(
        Dashboard::new(history.clone())
            .auth(auth)
            .clock(now)
            .router(),
    )
    .await
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        assert_eq!(self.headers[header::CONTENT_TYPE], "application/json");
        serde_json::from_str(&self.body).unwrap()
    }
}

async fn request(method: Method, url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = common::client()
        .request(req.body(common::full("")).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

async fn get(url: &str) -> Answer {
    request(
        Method::GET,
        url,
        &[("authorization", &format!("Bearer {TOKEN}"))],
    )
    .await
}

/// `GET` answered 200 with HTML.
async fn page(url: &str) -> String {
    let a = get(url).await;
    assert_eq!(a.status, StatusCode::OK, "{url}: {}", a.body);
    assert_eq!(a.headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    a.body
}

fn assert_secure(a: &Answer, what: &str) {
    let expected = [
        (
            "content-security-policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
    ];
    for (name, value) in expected {
        assert_eq!(
            a.headers.get(name).map(|v| v.to_str().unwrap()),
            Some(value),
            "{what}: {name}"
        );
    }
}

/// The `<tr>` that holds `marker`, from its opening tag to its end.
fn row<'a>(html: &'a str, marker: &str) -> &'a str {
    let at = html.find(marker).unwrap_or_else(|| panic!("no {marker}"));
    let start = html[..at].rfind("<tr").unwrap();
    let end = at + html[at..].find("</tr>").unwrap();
    &html[start..end]
}

#[tokio::test]
async fn overview_page() {
    let f = fixture().await;
    let base = dashboard(&f.history, Auth::bearer(TOKEN)).await;
    let html = page(&base).await;
    assert!(html.contains(r#"<table id="routes">"#));
    let orders = row(&html, r#"data-route="orders""#);
    // 20 successes, 2 failures and the script event in the last hour; one more 3 h ago.
    assert!(
        orders.contains(r#"<td class="num hour">23</td>"#),
        "{orders}"
    );
    assert!(
        orders.contains(r#"<td class="num day">24</td>"#),
        "{orders}"
    );
    // 22 successes of 24.
    assert!(orders.contains("91.7 %"), "{orders}");
    assert!(orders.contains(r#"<td class="status"><span class="badge st-alert">alert</span>"#));
    assert!(orders.contains("failure_rate"));
    assert!(orders.contains(r#"href="/_webhooks/routes/orders""#));
    assert!(orders.contains(r#"<svg class="spark""#));
    assert!(orders.contains("30 s ago"), "{orders}");
    // The layer registered the budget of `refunds`: its p95 (1.2 s, read as its histogram
    // bucket's middle) against it.
    let refunds = row(&html, r#"data-route="refunds""#);
    assert!(refunds.contains("p95 1.25 s of 2 s budget"), "{refunds}");
    assert!(
        refunds.contains(r#"<svg class="meter warn""#),
        "62 %: {refunds}"
    );
    assert!(refunds.contains(r#"<span class="badge st-ok">ok</span>"#));
    // The open alert on top, linked.
    assert!(html.contains("1 open alert"));
    assert!(html.contains("failure rate above threshold"));
    // Navigation, assets, the refresh period.
    for link in [
        "/_webhooks/alerts",
        "/_webhooks/health",
        "/_webhooks/assets/style.css",
    ] {
        assert!(html.contains(&format!(r#"href="{link}""#)), "{link}");
    }
    assert!(html.contains(r#"<script src="/_webhooks/assets/app.js" defer></script>"#));
    assert!(html.contains(r#"data-refresh="10""#));
    assert!(html.contains("2026-11-28T19:30:20Z"));
    // No inline script or style anywhere.
    assert_eq!(html.matches("<script").count(), 1);
    assert!(!html.contains("style="));
    assert!(!html.contains("<style"));
    assert!(!html.contains(TOKEN));
}

#[tokio::test]
async fn route_page() {
    let f = fixture().await;
    let base = dashboard(&f.history, Auth::bearer(TOKEN)).await;
    let html = page(&format!("{base}/routes/orders?window=24h")).await;
    assert!(html.contains(r#"<svg id="chart-deliveries""#));
    assert!(html.contains("deliveries / 15 min"));
    assert!(html.contains("time (UTC)"));
    assert!(html.contains(r#"<svg id="chart-latency""#));
    assert!(
        html.contains("latency (s)"),
        "the 9 s delivery sets the unit"
    );
    assert!(html.contains(r#"<table id="deliveries""#));
    assert!(html.contains(r#"<form id="filters" method="get" action="/_webhooks/routes/orders">"#));
    assert!(html.contains(r#"<option value="in_flight">in_flight</option>"#));
    // 24 deliveries in the window, 2 failures.
    assert!(html.contains(r#"<div class="value">24</div><div class="label">deliveries</div>"#));
    assert!(html.contains(r#"<div class="value">91.7 %</div>"#));
    assert_eq!(html.matches(r#"<tr data-outcome="failure">"#).count(), 2);
    assert_eq!(html.matches("<tr data-outcome=").count(), 24);
    assert!(html.contains("missing order_id in the payload"));
    assert!(html.contains(r#"aria-current="true">24h</a>"#));

    // The default window is 6 h: 72 bars of 5 min.
    let html = page(&format!("{base}/routes/orders")).await;
    assert!(html.contains("deliveries / 5 min"));

    // Filters.
    let html = page(&format!("{base}/routes/orders?outcome=failure")).await;
    assert_eq!(html.matches("<tr data-outcome=").count(), 2);
    assert!(html.contains(r#"<option value="failure" selected>failure</option>"#));
    let html = page(&format!(
        "{base}/routes/orders?delivery_id=d-7&outcome=success"
    ))
    .await;
    assert!(html.contains("No recorded delivery matches these filters."));
    let html = page(&format!(
        "{base}/routes/orders?event_type=order.created&outcome="
    ))
    .await;
    assert_eq!(html.matches("<tr data-outcome=").count(), 23);

    // The budget on a route whose layer registered one.
    let html = page(&format!("{base}/routes/payments?window=1h")).await;
    assert!(html.contains("Timeout budget: 10 s"));
    assert!(html.contains("budget 10 s"));
}

#[tokio::test]
async fn route_page_pages_through_deliveries() {
    let history = MemoryHistory::new();
    let batch: Vec<Report> = (0..120)
        .map(|i| Delivery::ok("busy", 10 + i, 5).report())
        .collect();
    history.send(&batch).await.unwrap();
    let base = dashboard(&history, Auth::bearer(TOKEN)).await;
    let html = page(&format!("{base}/routes/busy")).await;
    assert_eq!(html.matches("<tr data-outcome=").count(), 50);
    // Recorded ids 119 (newest) to 70; the next page starts before 70.
    let older = r#"href="/_webhooks/routes/busy?window=6h&amp;before=70#recent""#;
    assert!(html.contains(older), "no older link");
    let html = page(&format!("{base}/routes/busy?window=6h&before=70")).await;
    assert_eq!(html.matches("<tr data-outcome=").count(), 50);
    assert!(html.contains("before=20#recent"));
    let html = page(&format!("{base}/routes/busy?before=20")).await;
    assert_eq!(html.matches("<tr data-outcome=").count(), 20);
    assert!(!html.contains(r#"class="older""#));
    assert!(html.contains("← Newest"));
}

#[tokio::test]
async fn delivery_page() {
    let f = fixture().await;
    let base = dashboard(&f.history, Auth::bearer(TOKEN)).await;
    let failed = f
        .history
        .deliveries("orders", &DeliveryFilter::new().delivery_id("d-7"))
        .await
        .unwrap();
    let (second, first) = (&failed[0], &failed[1]);
    let html = page(&format!("{base}/routes/orders/deliveries/{}", second.id)).await;
    assert!(html.contains(r#"<dl id="report">"#));
    assert!(html.contains(r#"<dd id="reason">missing order_id in the payload</dd>"#));
    assert!(html.contains("verified with secret #1"));
    assert!(html.contains("marked"));
    assert!(html.contains("512 bytes"));
    assert!(html.contains("xxh3-128:5b7d2e4f0c1a9e8d7c6b5a4f3e2d1c0b"));
    assert!(html.contains("1.5 s"), "the lag");
    assert!(html.contains(r#"<th>records</th><td>3</td>"#));
    assert!(html.contains(r#"<svg id="timings""#));
    assert!(html.contains(r#"<ul id="attempts">"#));
    let other = format!(r#"href="/_webhooks/routes/orders/deliveries/{}""#, first.id);
    assert!(html.contains(&other), "links the first attempt");

    // A delivery without an id; one with flags.
    let plain = &f
        .history
        .deliveries("orders", &DeliveryFilter::new().limit(500))
        .await
        .unwrap();
    let slow = plain.iter().find(|r| r.report.flags.near_timeout).unwrap();
    let html = page(&format!("{base}/routes/orders/deliveries/{}", slow.id)).await;
    assert!(html.contains("This delivery has no id"));
    assert!(html.contains("near_timeout"));
    assert!(html.contains("over 80 %"));

    // The layer's own delivery, with its budget marked on the timings.
    let real = f
        .history
        .deliveries("payments", &DeliveryFilter::new())
        .await
        .unwrap();
    let html = page(&format!("{base}/routes/payments/deliveries/{}", real[0].id)).await;
    assert!(html.contains("budget 10 s"));
    assert!(html.contains("unchecked"));
}

#[tokio::test]
async fn alerts_and_health_pages() {
    let f = fixture().await;
    let base = dashboard(&f.history, Auth::bearer(TOKEN)).await;
    let html = page(&format!("{base}/alerts")).await;
    let open = row(&html, "failure_rate</code>");
    assert!(html.contains(r#"<table id="alerts-open">"#));
    assert!(open.contains("2026-11-28T19:20:20Z"));
    assert!(open.contains(r#"<td class="num">10 min</td>"#), "{open}");
    assert!(open.contains("failure_rate = 0.6"));
    assert!(open.contains("critical"));
    let resolved = row(&html, "silence</code>");
    assert!(html.contains(r#"<table id="alerts-resolved">"#));
    assert!(resolved.contains("2026-11-28T18:00:20Z"), "resolved at");
    assert!(
        resolved.contains(r#"<td class="num">30 min</td>"#),
        "{resolved}"
    );

    let html = page(&format!("{base}/health")).await;
    assert!(html.contains(r#"<table id="reporter" class="counts">"#));
    assert!(row(&html, "<th>enqueued</th>").contains("1234"));
    assert!(row(&html, "<th>queue_depth</th>").contains(">3<"));
    assert!(html.contains(r#"<table id="sinks">"#));
    let seiri = row(&html, "<td>seiri</td>");
    assert!(seiri.starts_with(r#"<tr class="down">"#), "{seiri}");
    assert!(seiri.contains("81.2 ms"));
    assert!(html.contains("2026-11-28T19:30:00Z"));

    // Before any health report.
    let empty = MemoryHistory::new();
    let base = dashboard(&empty, Auth::bearer(TOKEN)).await;
    let html = page(&format!("{base}/health")).await;
    assert!(html.contains("No health report yet"));
    assert!(html.contains("health_interval"));
    let html = page(&base).await;
    assert!(html.contains("No routes yet"));
    let html = page(&format!("{base}/alerts")).await;
    assert!(html.contains("No open alerts."));
}

/// A process-wide alert (`memory_growth`, route `(process)`) and the process's resident memory:
/// shown without a link to a route page (it has none), and no route made up for it.
#[tokio::test]
async fn process_alerts_and_resident_memory() {
    let history = MemoryHistory::new();
    let opened = rfc3339(now() - Duration::from_secs(300));
    let growth = |state: &str, at: &str, rss: u64| {
        report(json!({
            "type": "alert", "kind": "memory_growth", "route": "(process)", "severity": "warning",
            "state": state, "opened_at": opened, "at": at,
            "figures": {"rss_bytes": rss, "baseline_bytes": 104_857_600,
                        "growth_bytes": rss - 104_857_600, "window_minutes": 30},
        }))
    };
    let health = report(json!({
        "type": "health", "at": rfc3339(now() - Duration::from_secs(20)),
        "enqueued": 0, "dropped_full": 0, "dropped_closed": 0, "sent": 0, "failed": 0,
        "batches": 0, "alerts": 1, "sink_panics": 0, "watcher_panics": 0, "queue_depth": 0,
        "rss_bytes": 181_403_648, "sinks": [],
    }));
    history
        .send(&[growth("opened", &opened, 419_430_400), health])
        .await
        .unwrap();
    let base = dashboard(&history, Auth::bearer(TOKEN)).await;

    let html = page(&base).await;
    assert!(html.contains("1 open alert"));
    assert!(html.contains(r#"<span class="muted">(process)</span>: resident memory keeps growing"#));
    assert!(!html.contains("/routes/%28process%29"), "{html}");
    assert!(html.contains("No routes yet"), "no route made up for it");
    let html = page(&format!("{base}/alerts")).await;
    let open = row(&html, "memory_growth</code>");
    assert!(
        open.contains(r#"<td><span class="muted">(process)</span></td>"#),
        "{open}"
    );
    assert!(!open.contains("<a "), "{open}");
    assert!(open.contains("growth_bytes = 314572800"), "{open}");
    let route = get(&format!("{base}/routes/%28process%29")).await;
    assert_eq!(route.status, StatusCode::NOT_FOUND);

    let html = page(&format!("{base}/health")).await;
    assert!(html.contains(r#"<table id="process" class="counts">"#));
    let rss = row(&html, "<th>rss_bytes</th>");
    assert!(rss.contains(r#"<td class="num">173 MiB</td>"#), "{rss}");
    let v = get(&format!("{base}/api/health")).await.json();
    assert_eq!(v["health"]["rss_bytes"], 181_403_648);

    // Resolved, it moves to the resolved list; still no route.
    let at = rfc3339(now() - Duration::from_secs(60));
    history
        .send(&[growth("resolved", &at, 110_000_000)])
        .await
        .unwrap();
    let log = history.alerts().await.unwrap();
    assert!(log.open.is_empty(), "{log:?}");
    assert_eq!(log.resolved.len(), 1);
    assert_eq!(&*log.resolved[0].route, "(process)");
    assert!(history.routes().await.unwrap().is_empty());
    let html = page(&format!("{base}/alerts")).await;
    assert!(row(&html, "memory_growth</code>").contains(r#"<span class="muted">(process)</span>"#));

    // A platform that does not tell: a dash.
    let history = MemoryHistory::new();
    let health = report(json!({
        "type": "health", "at": rfc3339(now()), "enqueued": 0, "dropped_full": 0,
        "dropped_closed": 0, "sent": 0, "failed": 0, "batches": 0, "alerts": 0,
        "sink_panics": 0, "watcher_panics": 0, "queue_depth": 0, "rss_bytes": null, "sinks": [],
    }));
    history.send(&[health]).await.unwrap();
    let base = dashboard(&history, Auth::bearer(TOKEN)).await;
    let html = page(&format!("{base}/health")).await;
    let rss = row(&html, "<th>rss_bytes</th>");
    assert!(rss.contains(r#"<td class="num">–</td>"#), "{rss}");
    assert!(rss.contains("this platform does not tell"), "{rss}");
}

#[tokio::test]
async fn json_api() {
    let f = fixture().await;
    let base = dashboard(&f.history, Auth::bearer(TOKEN)).await;

    let v = get(&format!("{base}/api/overview")).await.json();
    assert_eq!(v["now"], "2026-11-28T19:30:20Z");
    let orders = v["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "orders")
        .unwrap();
    assert_eq!(orders["deliveries_1h"], 23);
    assert_eq!(orders["deliveries_24h"], 24);
    assert_eq!(orders["success_rate_24h"], 22.0 / 24.0);
    assert_eq!(orders["status"], "alert");
    assert_eq!(orders["open_alerts"], json!(["failure_rate"]));
    assert_eq!(orders["hours"].as_array().unwrap().len(), 24);
    assert!(orders["p95_1h_us"].as_u64().unwrap() > 100_000);
    let payments = v["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "payments")
        .unwrap();
    assert_eq!(payments["budget_us"], 10_000_000);
    assert_eq!(v["open_alerts"][0]["kind"], "failure_rate");

    let v = get(&format!("{base}/api/routes/orders?window=1h"))
        .await
        .json();
    assert_eq!(v["window"], "1h");
    assert_eq!(v["bucket_s"], 60);
    assert_eq!(v["buckets"].as_array().unwrap().len(), 60);
    assert_eq!(v["totals"]["deliveries"], 23);
    assert_eq!(v["totals"]["outcomes"]["failure"], 2);
    assert_eq!(v["totals"]["flags"]["near_timeout"], 0);
    assert_eq!(v["route"]["name"], "orders");

    let v = get(&format!(
        "{base}/api/routes/orders/deliveries?outcome=failure&limit=1"
    ))
    .await
    .json();
    let list = v["deliveries"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["reason"], "missing order_id in the payload");
    assert_eq!(list[0]["type"], "delivery");
    let id = list[0]["id"].as_u64().unwrap();
    assert_eq!(v["older_before"], id);

    let v = get(&format!("{base}/api/routes/orders/deliveries/{id}"))
        .await
        .json();
    assert_eq!(v["id"], id);
    assert_eq!(v["delivery_id"], "d-7");
    assert_eq!(v["outcome_detail"], "marked");
    assert_eq!(v["other_attempts"].as_array().unwrap().len(), 1);
    // The report schema, and "id" first.
    let raw = get(&format!("{base}/api/routes/orders/deliveries/{id}"))
        .await
        .body;
    assert!(raw.starts_with(&format!(
        r#"{{"id":{id},"type":"delivery","route":"orders""#
    )));

    let v = get(&format!("{base}/api/alerts")).await.json();
    assert_eq!(v["open"][0]["figures"]["failed"], 12);
    assert_eq!(v["resolved"][0]["kind"], "silence");

    let v = get(&format!("{base}/api/health")).await.json();
    assert_eq!(v["health"]["enqueued"], 1234);
    assert_eq!(v["health"]["sinks"][0]["down"], true);
    let empty = dashboard(&MemoryHistory::new(), Auth::bearer(TOKEN)).await;
    assert_eq!(
        get(&format!("{empty}/api/health")).await.json()["health"],
        Value::Null
    );
}

#[tokio::test]
async fn credentials_are_required() {
    let f = fixture().await;
    let base = dashboard(&f.history, Auth::bearer(TOKEN)).await;
    let paths = [
        "",
        "/routes/orders",
        "/api/overview",
        "/assets/app.js",
        "/nope",
    ];
    for path in paths {
        let url = format!("{base}{path}");
        let a = request(Method::GET, &url, &[]).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(a.headers[header::WWW_AUTHENTICATE], "Bearer");
        assert_secure(&a, "401");
        assert!(!a.body.contains("orders"));
        let wrong = request(
            Method::GET,
            &url,
            &[("authorization", "Bearer not-the-token")],
        )
        .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{path}");
        let cookie = request(Method::GET, &url, &[("cookie", "wm_session=forged")]).await;
        assert_eq!(cookie.status, StatusCode::UNAUTHORIZED, "{path}");
    }

    // Basic.
    let base = dashboard(&f.history, Auth::basic("ops", "correct horse")).await;
    let basic = |pair: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    };
    let a = request(Method::GET, &base, &[]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        a.headers[header::WWW_AUTHENTICATE],
        r#"Basic realm="webhook-monitor""#
    );
    let auth = basic("ops:wrong horse");
    let a = request(Method::GET, &base, &[("authorization", &auth)]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let auth = basic("ops:correct horse");
    let a = request(Method::GET, &base, &[("authorization", &auth)]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(!a.body.contains("correct horse"));

    // Without auth, by choice.
    let open = serve(
        Dashboard::new(f.history.clone())
            .insecure_without_auth()
            .router(),
    )
    .await;
    let a = request(Method::GET, &format!("{open}/api/overview"), &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.contains("orders"));
}

#[tokio::test]
async fn token_login_sets_a_cookie_and_drops_the_token() {
    let f = fixture().await;
    let base = dashboard(&f.history, Auth::bearer(TOKEN)).await;
    let url = format!("{base}/routes/orders?window=24h&token={TOKEN}&outcome=failure");
    let a = request(Method::GET, &url, &[]).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_secure(&a, "303");
    assert_eq!(
        a.headers[header::LOCATION],
        "/_webhooks/routes/orders?window=24h&outcome=failure"
    );
    let cookie = a.headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    let (pair, attributes) = cookie.split_once("; ").unwrap();
    assert_eq!(attributes, "HttpOnly; SameSite=Lax; Path=/_webhooks");
    let value = pair.strip_prefix("wm_session=").unwrap();
    assert_eq!(value.len(), 64);
    assert!(!cookie.contains(TOKEN));

    let a = request(
        Method::GET,
        &format!("{base}/routes/orders"),
        &[("cookie", pair)],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(!a.body.contains(TOKEN));
    let a = request(
        Method::GET,
        &format!("{base}/api/alerts"),
        &[("cookie", pair)],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);

    // A wrong token sets nothing.
    let a = request(Method::GET, &format!("{base}?token=wrong"), &[]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.headers.get(header::SET_COOKIE).is_none());

    // Not nested: the cookie is for the whole site.
    let router = Dashboard::new(f.history.clone()).auth(TOKEN).router();
    let root = format!("http://{}", common::serve(router).await);
    let a = request(Method::GET, &format!("{root}/alerts?token={TOKEN}"), &[]).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.headers[header::LOCATION], "/alerts");
    assert!(a.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .ends_with("; Path=/"));
    let a = request(Method::GET, &format!("{root}/"), &[("cookie", pair)]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        a.body.contains(r#"href="/routes/orders""#),
        "links without a prefix"
    );
}

#[tokio::test]
async fn only_get_and_head() {
    let f = fixture().await;
    let base = dashboard(&f.history, Auth::bearer(TOKEN)).await;
    let auth = format!("Bearer {TOKEN}");
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        let a = request(method.clone(), &base, &[("authorization", &auth)]).await;
        assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_secure(&a, "405");
    }
    let a = request(
        Method::HEAD,
        &format!("{base}/routes/orders"),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.is_empty());
}

#[tokio::test]
async fn every_response_is_locked_down() {
    let f = fixture().await;
    let base = dashboard(&f.history, Auth::bearer(TOKEN)).await;
    let ids = f
        .history
        .deliveries("orders", &DeliveryFilter::new())
        .await
        .unwrap();
    let id = ids[0].id;
    let paths = [
        String::new(),
        "/routes/orders".to_owned(),
        format!("/routes/orders/deliveries/{id}"),
        "/alerts".to_owned(),
        "/health".to_owned(),
        "/api/overview".to_owned(),
        "/api/routes/orders".to_owned(),
        "/api/routes/orders/deliveries".to_owned(),
        format!("/api/routes/orders/deliveries/{id}"),
        "/api/alerts".to_owned(),
        "/api/health".to_owned(),
        "/assets/style.css".to_owned(),
        "/assets/app.js".to_owned(),
        "/nope".to_owned(),
        "/routes/nope".to_owned(),
        "/routes/orders?window=7h".to_owned(),
    ];
    for path in &paths {
        let a = get(&format!("{base}{path}")).await;
        assert_secure(&a, path);
    }
    let css = get(&format!("{base}/assets/style.css")).await;
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(css.headers[header::CONTENT_TYPE], "text/css; charset=utf-8");
    assert!(css.body.contains("prefers-color-scheme: dark"));
    let js = get(&format!("{base}/assets/app.js")).await;
    assert_eq!(js.status, StatusCode::OK);
    assert_eq!(
        js.headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
}

#[tokio::test]
async fn everything_is_escaped() {
    let f = fixture().await;
    let base = dashboard(&f.history, Auth::bearer(TOKEN)).await;
    let escaped_route = "&lt;img src=x onerror=alert(1)&gt;";
    let escaped_event = "&lt;script&gt;alert(1)&lt;/script&gt;";

    let html = page(&base).await;
    assert!(!html.contains(XSS_ROUTE));
    assert!(html.contains(escaped_route));
    assert!(
        html.contains(r#"href="/_webhooks/routes/%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E""#)
    );

    let html = page(&format!("{base}/routes/orders")).await;
    assert!(!html.contains(XSS_EVENT));
    assert!(html.contains(escaped_event));

    let html = page(&format!(
        "{base}/routes/%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E"
    ))
    .await;
    assert!(!html.contains(XSS_ROUTE));
    assert!(html.contains(escaped_route));
    assert_eq!(html.matches("<tr data-outcome=").count(), 1);

    let x = f
        .history
        .deliveries("orders", &DeliveryFilter::new().event_type(XSS_EVENT))
        .await
        .unwrap();
    let html = page(&format!("{base}/routes/orders/deliveries/{}", x[0].id)).await;
    assert!(!html.contains(XSS_EVENT));
    assert!(html.contains(escaped_event));

    // A filter value is escaped back into the form.
    let html = page(&format!(
        "{base}/routes/orders?event_type=%22%3E%3Cscript%3E"
    ))
    .await;
    assert!(!html.contains(r#""><script>"#));
    assert!(html.contains("&quot;&gt;&lt;script&gt;"));
}

#[tokio::test]
async fn unknown_and_malformed() {
    let f = fixture().await;
    let base = dashboard(&f.history, Auth::bearer(TOKEN)).await;
    for path in [
        "/routes/nope",
        "/routes/orders/deliveries/999999",
        "/routes/nope/deliveries/1",
        "/nope",
    ] {
        let a = get(&format!("{base}{path}")).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}");
        assert!(a.body.contains("404 Not Found"), "{path}");
    }
    for path in [
        "/api/routes/nope",
        "/api/routes/nope/deliveries",
        "/api/routes/orders/deliveries/999999",
        "/api/nope",
    ] {
        let a = get(&format!("{base}{path}")).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(a.json()["status"], 404);
    }
    for path in [
        "/routes/orders?window=7h",
        "/routes/orders?outcome=nope",
        "/routes/orders?before=x",
        "/routes/orders/deliveries/abc",
        "/routes/%FF",
    ] {
        let a = get(&format!("{base}{path}")).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{path}: {}", a.body);
        assert!(!a.body.contains("nope"));
    }
    for path in [
        "/api/routes/orders?window=1d",
        "/api/routes/orders/deliveries?limit=0",
        "/api/routes/orders/deliveries?limit=-3",
        "/api/routes/orders/deliveries/1.5",
    ] {
        let a = get(&format!("{base}{path}")).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(a.json()["error"].as_str().unwrap().len() > 10);
    }
    let a = get(&format!("{base}/api/routes/orders/deliveries?limit=100000")).await;
    assert_eq!(a.status, StatusCode::OK, "a big limit is capped");
}

/// A history whose store is down.
struct Down;

fn down<T>() -> Result<T, HistoryError> {
    Err(HistoryError::unavailable(std::io::Error::other(
        "redis://:hunter2@10.0.0.1 refused",
    )))
}

impl History for Down {
    async fn routes(&self) -> Result<Vec<RouteEntry>, HistoryError> {
        down()
    }
    async fn minutes(&self, _: &str, _: SystemTime) -> Result<Vec<Minute>, HistoryError> {
        down()
    }
    async fn deliveries(&self, _: &str, _: &DeliveryFilter) -> Result<Vec<Recorded>, HistoryError> {
        down()
    }
    async fn delivery(&self, _: &str, _: u64) -> Result<Option<Recorded>, HistoryError> {
        down()
    }
    async fn alerts(&self) -> Result<AlertLog, HistoryError> {
        down()
    }
    async fn health(&self) -> Result<Option<HealthReport>, HistoryError> {
        down()
    }
}

#[tokio::test]
async fn an_unavailable_history_is_a_503() {
    let base = serve(Dashboard::new(Down).auth(TOKEN).router()).await;
    for path in [
        "",
        "/routes/a",
        "/routes/a/deliveries/1",
        "/alerts",
        "/health",
    ] {
        let a = get(&format!("{base}{path}")).await;
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(a.body.contains("the history is unavailable"));
        assert!(!a.body.contains("hunter2"));
        assert_secure(&a, path);
    }
    for path in [
        "/api/overview",
        "/api/routes/a",
        "/api/routes/a/deliveries",
        "/api/alerts",
        "/api/health",
    ] {
        let a = get(&format!("{base}{path}")).await;
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(a.json()["status"], 503);
        assert!(!a.body.contains("hunter2"));
    }
}

/// A fleet's instances on the health page and in `/api/health`, read from Redis: heartbeats,
/// the lease's holder, figures from their health reports; the instance whose fleet view is
/// stale gets a warning (once, though it is both this page's instance and a row), with its
/// last write and what it lost; an alert about one instance names it.
#[cfg(feature = "redis")]
#[tokio::test]
async fn a_fleets_instances_and_a_stale_fleet_view() {
    let Some(fleet) = common::fleet::fleet().await else {
        return;
    };
    let stale = fleet.stale.clone();
    let base = serve(Dashboard::new(fleet).auth(Auth::bearer(TOKEN)).router()).await;

    let html = page(&format!("{base}/health")).await;
    assert!(html.contains(r#"<table id="instances">"#), "{html}");
    let web1 = row(&html, "<code>web-1</code></td>");
    assert!(web1.starts_with(r#"<tr data-instance="web-1">"#), "{web1}");
    assert!(
        web1.contains(r#"<span class="badge st-ok">leader</span>"#),
        "{web1}"
    );
    for cell in ["2", "1200", "3", "180 MiB"] {
        assert!(
            web1.contains(&format!(r#"<td class="num">{cell}</td>"#)),
            "{cell}: {web1}"
        );
    }
    assert!(web1.contains(">current</span>"), "{web1}");
    assert!(
        web1.contains(" ago</span>"),
        "heartbeats with their age: {web1}"
    );
    let web2 = row(&html, "<code>web-2</code></td>");
    assert!(!web2.contains("leader"), "{web2}");
    assert_eq!(
        web2.matches(r#"<td class="num">–</td>"#).count(),
        4,
        "no health report: {web2}"
    );
    let web3 = row(&html, "<code>web-3</code></td>");
    assert!(
        web3.starts_with(r#"<tr data-instance="web-3" class="warn">"#),
        "{web3}"
    );
    assert!(
        web3.contains(r#"<span class="badge st-alert">stale</span>"#),
        "{web3}"
    );
    assert!(web3.contains(r#"<td class="num">96 MiB</td>"#), "{web3}");

    assert_eq!(html.matches(r#"<div class="stale""#).count(), 1, "{html}");
    let at = html.find(r#"<div class="stale""#).unwrap();
    let warning = &html[at..at + html[at..].find("</div>").unwrap()];
    assert!(warning.contains("Fleet view stale"), "{warning}");
    assert!(warning.contains("<code>web-3</code>"), "{warning}");
    let last_write = humantime::format_rfc3339_seconds(stale.last_write.unwrap()).to_string();
    assert!(warning.contains(&last_write), "{last_write}: {warning}");
    for figure in [
        "lost_deliveries = 3",
        "dropped_counts = 3",
        "failed_writes = 1",
    ] {
        assert!(warning.contains(figure), "{figure}: {warning}");
    }
    // Above everything else on the page.
    assert!(at < html.find(r#"<table id="instances">"#).unwrap());

    let v = get(&format!("{base}/api/health")).await.json();
    let instances = v["instances"].as_array().unwrap();
    let ids: Vec<&str> = instances
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["web-1", "web-2", "web-3"]);
    let leaders: Vec<bool> = instances
        .iter()
        .map(|i| i["leader"].as_bool().unwrap())
        .collect();
    assert_eq!(leaders, [true, false, false]);
    assert_eq!(instances[0]["health"]["queue_depth"], 2);
    assert_eq!(instances[0]["health"]["type"], "health");
    assert_eq!(instances[1]["health"], Value::Null);
    for i in instances {
        let started = i["started"].as_str().unwrap();
        let beat = i["last_heartbeat"].as_str().unwrap();
        assert!(started.ends_with('Z') && started <= beat, "{i}");
    }
    assert_eq!(v["health"]["sent"], 800);
    // A history of one process has none.
    let single = dashboard(&MemoryHistory::new(), Auth::bearer(TOKEN)).await;
    assert_eq!(
        get(&format!("{single}/api/health")).await.json()["instances"],
        json!([])
    );
    assert!(!page(&format!("{single}/health"))
        .await
        .contains("instances"));

    // The alert about web-2 names it, on the alerts page and the overview.
    let named = r#"<span class="instance">on <code>web-2</code></span>"#;
    let html = page(&format!("{base}/alerts")).await;
    let open = row(&html, "instance_silent</code>");
    assert!(open.contains(named), "{open}");
    assert!(
        open.contains(r#"<a href="/_webhooks/routes/orders">orders</a>"#),
        "{open}"
    );
    assert!(page(&base).await.contains(named));
}

//! The dashboard's pages, rendered through its router (`tower::ServiceExt::oneshot`, no
//! socket) from a `MemoryHistory` at its default bounds: 5 routes, each with 1,000 recorded
//! deliveries and 48 h of minutes with traffic every minute: the overview, and a route page
//! over 24 h (96 bars, its figures and its 50 latest deliveries).
//!
//! Run with `cargo bench --features dashboard --bench dashboard`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::{body::Body, Router};
use criterion::{criterion_group, criterion_main, Criterion};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use webhook_monitor::{
    dashboard::Dashboard,
    history::MemoryHistory,
    report::{RouteInfo, Sink},
    Report,
};

const ROUTES: usize = 5;
const MINUTES: u64 = 48 * 60;
/// Deliveries per route and minute.
const PER_MINUTE: u64 = 3;

/// 2026-11-28T19:30:20Z
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_894_220)
}

/// Delivery `i` of a route: mostly successes, some failures, rejections and duplicates, with
/// latencies from 1 ms to about 4 s.
fn report(route: &str, i: u64, at: SystemTime) -> Report {
    let (outcome, detail, status, reason) = match i % 20 {
        0 => (
            "failure",
            r#""server_error""#,
            "500",
            r#""upstream answered 503""#,
        ),
        1 => (
            "rejected",
            r#""bad_signature""#,
            "401",
            r#""no signature matched""#,
        ),
        2 => ("duplicate", "null", "200", "null"),
        3 => ("late", "null", "200", "null"),
        _ => ("success", "null", "200", "null"),
    };
    let total_us = 1_000 + (i * 7919) % 4_000_000;
    let line = format!(
        r#"{{"type":"delivery","route":"{route}","provider":"stripe","delivery_id":"evt_{id}","event_type":"invoice.paid","attempt":{attempt},"signature":"verified","secret_index":0,"status":{status},"outcome":"{outcome}","outcome_detail":{detail},"reason":{reason},"payload_check":null,"received_at":"{at}","body_read_us":80,"handler_us":{handler},"total_us":{total_us},"body_bytes":2048,"fingerprint":"xxh3-128:5b7d2e4f0c1a9e8d7c6b5a4f3e2d1c0b","times_seen":null,"first_seen":null,"mean_retry_interval_ms":null,"lag_ms":900,"flags":[],"fields":{{"records":3}}}}"#,
        id = i % 5000,
        attempt = 1 + i % 3,
        at = humantime::format_rfc3339_micros(at),
        handler = total_us - 200,
    );
    serde_json::from_str(&line).expect("a valid report")
}

fn filled(rt: &tokio::runtime::Runtime) -> MemoryHistory {
    let history = MemoryHistory::new();
    let names: Vec<String> = (0..ROUTES).map(|r| format!("route-{r}")).collect();
    let infos: Vec<RouteInfo> = names
        .iter()
        .map(|n| RouteInfo::new(n.as_str(), Some(Duration::from_secs(10))))
        .collect();
    history.register_routes(&infos);
    let start = now() - Duration::from_secs(MINUTES * 60);
    for name in &names {
        let batch: Vec<Report> = (0..MINUTES * PER_MINUTE)
            .map(|i| {
                let at = start + Duration::from_secs(i * 60 / PER_MINUTE);
                report(name, i, at)
            })
            .collect();
        rt.block_on(history.send(&batch)).expect("a memory history");
    }
    history
}

async fn render(router: &Router, path: &str) -> usize {
    let req = Request::get(path).body(Body::empty()).expect("request");
    let res = router.clone().oneshot(req).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    res.into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes()
        .len()
}

fn dashboard(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let history = filled(&rt);
    let router = Dashboard::new(history)
        .insecure_without_auth()
        .clock(now)
        .router();
    let mut group = c.benchmark_group("dashboard");
    for (name, path) in [
        ("overview", "/"),
        ("route_24h", "/routes/route-2?window=24h"),
    ] {
        group.bench_function(name, |b| b.iter(|| rt.block_on(render(&router, path))));
    }
    group.finish();
}

criterion_group!(benches, dashboard);
criterion_main!(benches);

//! A `Sink` of your own, to copy: it counts deliveries and failures per route, writes alerts to
//! a backend (stdout here; a pager, a chat webhook, a database in real life), and tells the
//! reporter how that backend is doing through `Sink::health`.
//!
//! Run with `cargo run --example custom_sink`. It needs no feature and no external service: a
//! route behind the layer, driven in-process, fails three deliveries in a row, which opens an
//! alert; one success resolves it; then the reporter's health report shows the sink's counters.

use std::{
    collections::BTreeMap,
    io::Write,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use axum::{body::Body, http::StatusCode, routing::post, Router};
use http::Request;
use tower::ServiceExt;
use webhook_monitor::{
    report::{Reporter, Sink, SinkError, SinkHealth},
    Policy, Report, WebhookMonitorLayer,
};

/// Deliveries and failures per route, and the alert backend's health.
struct FailureCounter {
    state: Mutex<State>,
}

struct State {
    /// Route → (deliveries, not successful).
    routes: BTreeMap<String, (u64, u64)>,
    /// The alert backend's counters, kept as the reporter's health report wants them.
    backend: SinkHealth,
}

impl FailureCounter {
    fn new() -> Self {
        Self {
            state: Mutex::new(State {
                routes: BTreeMap::new(),
                backend: SinkHealth::new("alerts-stdout"),
            }),
        }
    }
}

impl Sink for FailureCounter {
    // Called by the reporter's worker, one batch at a time. Keep it quick, or give it its own
    // queue: the worker waits for it (up to the reporter's `sink_timeout`).
    async fn send(&self, batch: &[Report]) -> Result<(), SinkError> {
        // A std mutex is fine: it is never held across an `.await`.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        for report in batch {
            match report {
                Report::Delivery(d) => {
                    let counts = state
                        .routes
                        .entry(d.delivery.route().to_owned())
                        .or_default();
                    counts.0 += 1;
                    counts.1 += u64::from(!d.outcome.is_success());
                }
                Report::Alert(alert) => {
                    let backend = &mut state.backend;
                    backend.accepted += 1;
                    let start = Instant::now();
                    match writeln!(std::io::stdout(), "ALERT {alert}") {
                        Ok(()) => {
                            backend.sent += 1;
                            backend.consecutive_failures = 0;
                            backend.latency = Some(start.elapsed());
                        }
                        Err(_) => {
                            backend.failed += 1;
                            backend.consecutive_failures += 1;
                        }
                    }
                    backend.down = backend.consecutive_failures >= 3;
                }
                Report::Health(health) => {
                    println!("HEALTH {health}");
                    for (route, (deliveries, failed)) in &state.routes {
                        println!("  {route}: {failed} of {deliveries} deliveries failed");
                    }
                }
                // `Report` is non-exhaustive: new kinds of reports may come.
                _ => {}
            }
        }
        Ok(())
    }

    fn health(&self) -> Vec<SinkHealth> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        vec![state.backend.clone()]
    }
}

/// Answers `x-status` (200 by default).
async fn handler(headers: http::HeaderMap) -> StatusCode {
    headers
        .get("x-status")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK)
}

#[tokio::main]
async fn main() -> Result<(), webhook_monitor::BoxError> {
    let (reporter, guard) = Reporter::builder()
        .health_interval(Some(Duration::from_secs(1)))
        .spawn(FailureCounter::new());
    let policy = Policy::custom("orders").watch(|w| w.consecutive_failures(3));
    let app = Router::new()
        .route("/webhooks/orders", post(handler))
        .route_layer(WebhookMonitorLayer::new(policy, reporter));

    for status in [200, 200, 500, 503, 500, 200] {
        let req = Request::post("/webhooks/orders")
            .header("x-status", status)
            .body(Body::from("{}"))?;
        let answer = app.clone().oneshot(req).await?.status();
        println!("delivery answered {answer}");
        // Let the worker take each report on its own, so the alert opens before the success.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The first health report comes one interval after the start.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    drop(app);
    guard.shutdown(Duration::from_secs(5)).await?;
    Ok(())
}

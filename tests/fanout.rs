//! Several sinks at once: filters, isolation of a hung sink, draining at shutdown, and health
//! reports that carry every sink's counters. Real deliveries through a real server.
#![cfg(feature = "axum")]
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{http::StatusCode, routing::post, Router};
use common::{full, send, serve};
use webhook_monitor::{
    report::{Fanout, MemorySink, Report, Reporter, Sink, SinkError, SinkOptions},
    Policy, WebhookMonitorLayer,
};

/// Serves a route whose handler answers `500` when the body is `fail`, behind the layer.
async fn app(reporter: Reporter) -> String {
    let policy = Policy::custom("orders").watch(|w| w.consecutive_failures(1));
    let router = Router::new()
        .route(
            "/hook",
            post(|body: String| async move {
                if body == "fail" {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }),
        )
        .route_layer(WebhookMonitorLayer::new(policy, reporter));
    format!("http://{}/hook", serve(router).await)
}

fn kinds(reports: &[Report]) -> Vec<&'static str> {
    reports
        .iter()
        .map(|r| match r {
            Report::Delivery(_) => "delivery",
            Report::Alert(_) => "alert",
            Report::Health(_) => "health",
            _ => "other",
        })
        .collect()
}

#[tokio::test]
async fn each_sink_gets_what_its_filter_lets_through() {
    let (all, alerts) = (MemorySink::new(), MemorySink::new());
    let fanout = Fanout::new()
        .sink_with(
            "all",
            all.clone(),
            SinkOptions::new().linger(Duration::ZERO),
        )
        .sink_with(
            "alerts",
            alerts.clone(),
            SinkOptions::new().alerts_only().linger(Duration::ZERO),
        );
    let (reporter, guard) = Reporter::builder()
        .linger(Duration::from_millis(1))
        .spawn(fanout);
    let url = app(reporter.clone()).await;
    send(&url, full("fail"), &[]).await; // a failure: opens consecutive_failures (threshold 1)
    tokio::time::sleep(Duration::from_millis(50)).await; // in a batch of its own
    send(&url, full("ok"), &[]).await; // resolves it
    drop(reporter);
    guard.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        kinds(&all.reports()),
        ["delivery", "alert", "delivery", "alert"]
    );
    assert_eq!(kinds(&alerts.reports()), ["alert", "alert"]);
}

/// A sink whose `send` never returns.
struct Hung(AtomicUsize);

impl Sink for Hung {
    async fn send(&self, _: &[Report]) -> Result<(), SinkError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_hung_sink_holds_up_nobody_and_its_drops_are_counted() {
    let healthy = MemorySink::new();
    let hung = Arc::new(Hung(AtomicUsize::new(0)));
    let fanout = Fanout::new().sink("healthy", healthy.clone()).sink_with(
        "hung",
        Arc::clone(&hung),
        SinkOptions::new()
            .batch_size(1)
            .linger(Duration::ZERO)
            .queue_capacity(2)
            .timeout(Duration::from_secs(3600)),
    );
    let (reporter, guard) = Reporter::builder()
        .linger(Duration::from_millis(1))
        .spawn(fanout);
    let url = app(reporter.clone()).await;
    for _ in 0..10 {
        assert_eq!(send(&url, full("ok"), &[]).await.0, StatusCode::OK);
    }
    // The healthy sink got all ten, while the other hangs on its first batch.
    assert_eq!(healthy.wait_for(10, Duration::from_secs(5)).await.len(), 10);
    assert_eq!(hung.0.load(Ordering::SeqCst), 1);
    drop(reporter);

    // The shutdown waits for the hung sink: it times out, and says so.
    assert!(guard.shutdown(Duration::from_millis(200)).await.is_err());
}

/// At shutdown, a hung entry holds up no other: every entry is closed at once, and the
/// healthy one drains its queue within the guard's timeout.
#[tokio::test]
async fn shutdown_closes_every_entry_at_once() {
    let lingering = MemorySink::new();
    let hung = Arc::new(Hung(AtomicUsize::new(0)));
    let fanout = Fanout::new()
        .sink_with(
            "hung",
            Arc::clone(&hung),
            SinkOptions::new().timeout(Duration::from_secs(3600)),
        )
        // Lingers long: its reports are still queued when the shutdown starts.
        .sink_with(
            "lingering",
            lingering.clone(),
            SinkOptions::new().linger(Duration::from_secs(3600)),
        );
    let (reporter, guard) = Reporter::builder()
        .linger(Duration::from_millis(1))
        .spawn(fanout);
    let url = app(reporter.clone()).await;
    for _ in 0..5 {
        assert_eq!(send(&url, full("ok"), &[]).await.0, StatusCode::OK);
    }
    while hung.0.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(lingering.is_empty(), "still lingering");
    drop(reporter);
    let shutdown = guard.shutdown(Duration::from_millis(500)).await;
    assert_eq!(
        shutdown,
        Err(webhook_monitor::report::ShutdownError::TimedOut)
    );
    assert_eq!(
        lingering.len(),
        5,
        "the healthy entry drained, the hung one timed out"
    );
}

/// Takes its time with every batch.
#[derive(Clone, Default)]
struct Slow(MemorySink);

impl Sink for Slow {
    async fn send(&self, batch: &[Report]) -> Result<(), SinkError> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.0.send(batch).await
    }
}

#[tokio::test]
async fn shutdown_drains_every_sinks_queue() {
    let slow = Slow::default();
    let fanout = Fanout::new().sink_with("slow", slow.clone(), SinkOptions::new().batch_size(5));
    let (reporter, guard) = Reporter::builder()
        .linger(Duration::from_millis(1))
        .spawn(fanout);
    let url = app(reporter.clone()).await;
    for _ in 0..40 {
        send(&url, full("ok"), &[]).await;
    }
    // At most a batch or two has gone through yet; the rest waits in the sink's queue.
    assert!(slow.0.len() < 40);
    drop(reporter);
    guard.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(slow.0.len(), 40);
}

#[tokio::test]
async fn health_reports_carry_every_sinks_counters() {
    let (log, failing) = (MemorySink::new(), Arc::new(FailingSink));
    let fanout = Fanout::new().sink("log", log.clone()).sink_with(
        "broken",
        Arc::clone(&failing),
        SinkOptions::new().linger(Duration::ZERO),
    );
    let (reporter, guard) = Reporter::builder()
        .linger(Duration::from_millis(1))
        .health_interval(Some(Duration::from_millis(300)))
        .spawn(fanout);
    let url = app(reporter.clone()).await;
    for _ in 0..3 {
        send(&url, full("ok"), &[]).await;
    }
    // The first health report comes after 300 ms, through the sink that works.
    let wait = async {
        loop {
            if let Some(h) = log.reports().iter().find_map(|r| r.as_health().cloned()) {
                return h;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let health = tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .unwrap();
    assert_eq!(health.reporter.enqueued, 3);
    let names: Vec<_> = health.sinks.iter().map(|s| &*s.name).collect();
    assert_eq!(names, ["log", "broken"]);
    let broken = &health.sinks[1];
    assert_eq!((broken.accepted, broken.failed, broken.sent), (3, 3, 0));
    let log_entry = &health.sinks[0];
    assert_eq!(
        (log_entry.accepted, log_entry.sent, log_entry.failed),
        (3, 3, 0)
    );
    drop(reporter);
    guard.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// Fails every batch.
struct FailingSink;

impl Sink for FailingSink {
    async fn send(&self, _: &[Report]) -> Result<(), SinkError> {
        Err(SinkError::new(std::io::Error::other("backend down")))
    }
}

#[test]
fn a_fanout_is_built_outside_a_runtime_and_starts_inside_the_reporters() {
    let delivered = MemorySink::new();
    let never_fed = MemorySink::new();
    // No runtime here: building used to spawn each entry's worker, and panicked.
    let fanout = Fanout::new().sink("all", delivered.clone()).sink_with(
        "none",
        never_fed.clone(),
        SinkOptions::new().filter(|_| false).linger(Duration::ZERO),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (reporter, guard) = Reporter::spawn(fanout);
        let url = app(reporter).await;
        for body in ["ok", "fail", "ok"] {
            send(&url, full(body), &[]).await;
        }
        guard.shutdown(Duration::from_secs(5)).await.unwrap();
    });
    let deliveries = delivered
        .reports()
        .iter()
        .filter(|r| r.as_delivery().is_some())
        .count();
    assert_eq!(deliveries, 3);
    assert!(never_fed.reports().is_empty());
}

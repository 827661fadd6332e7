//! The reporter's worker: reports per second into a counting sink with the route watched against
//! the same route with `Watch::off()`, into a `MemorySink`, into a `MemoryHistory`, and through a
//! two-sink `Fanout`; the watchers' memory per route; and a `MemoryHistory`'s memory per route at
//! its bounds.
//!
//! Run with `cargo bench --features axum --bench worker`. The memory figures are printed first.

use std::{
    alloc::System,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc,
    },
    time::{Duration, Instant},
};

use cap::Cap;

use axum::{body::Body, http::HeaderMap, routing::post, Router};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use http::{Request, StatusCode};
use tokio::sync::Notify;
use tower::ServiceExt;
use webhook_monitor::{
    history::MemoryHistory,
    report::{Fanout, MemorySink, Report, Reporter, Sink, SinkError, SinkOptions},
    watch::Watch,
    Policy, ReporterGuard, WebhookMonitorLayer,
};

/// Counts the bytes currently allocated.
#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// A sink that counts reports and wakes whoever waits for a number of them.
#[derive(Default, Clone)]
struct Counter(Arc<(AtomicU64, Notify)>);

impl Sink for Counter {
    async fn send(&self, batch: &[Report]) -> Result<(), SinkError> {
        self.0 .0.fetch_add(batch.len() as u64, Relaxed);
        self.0 .1.notify_one();
        Ok(())
    }
}

impl Counter {
    async fn wait_for(&self, n: u64) {
        while self.0 .0.load(Relaxed) < n {
            self.0 .1.notified().await;
        }
    }
}

/// The handler sleeps `x-sleep-ms` and answers `x-status`.
async fn handler(headers: HeaderMap) -> StatusCode {
    let get = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    if let Some(ms) = get("x-sleep-ms") {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    get("x-status")
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
        .unwrap_or(StatusCode::OK)
}

fn route(name: String, watch: bool, reporter: &Reporter) -> Router {
    let policy = Policy::custom(name)
        .timeout_budget(Duration::from_secs(10))
        .max_body_bytes(64)
        .watch(|w| if watch { w } else { Watch::off() });
    Router::new()
        .route("/hook", post(handler))
        .layer(WebhookMonitorLayer::new(policy, reporter.clone()))
}

/// Delivery `i` of a realistic mix: 90 % successes, 5 % 500s, 5 % rejected (too large), with
/// latencies spread from 1 ms to 5 s.
async fn deliver(app: &Router, i: u64) {
    let latency = 1 + (i * 7919) % 5000;
    let mut req = Request::post("/hook").header("x-sleep-ms", latency);
    if i % 20 == 1 {
        req = req.header("x-status", 500);
    }
    let body = if i % 20 == 2 {
        vec![b'x'; 100]
    } else {
        b"{}".to_vec()
    };
    let res = app
        .clone()
        .oneshot(req.body(Body::from(body)).expect("request"));
    res.await.expect("infallible");
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime")
}

/// Reports from `n` deliveries of the mix, on a paused clock.
fn sample_reports(n: u64) -> Vec<Report> {
    paused_runtime().block_on(async {
        let collected = webhook_monitor::report::MemorySink::new();
        let (reporter, guard) = Reporter::spawn(collected.clone());
        let app = route("hook".into(), false, &reporter);
        let runs = (0..n).map(|i| deliver(&app, i));
        futures_util::future::join_all(runs).await;
        guard
            .shutdown(Duration::from_secs(5))
            .await
            .expect("drained");
        collected.reports()
    })
}

/// Bytes the worker holds per route for `routes` routes after 50 deliveries each over two
/// hours: watched, and with the watchers off.
fn memory_per_route(routes: u64) -> (isize, isize) {
    let held = |watch: bool| {
        paused_runtime().block_on(async {
            let sink = Counter::default();
            let (reporter, guard) = Reporter::builder()
                .queue_capacity(1 << 20)
                .spawn(sink.clone());
            let apps: Vec<Router> = (0..routes)
                .map(|r| route(format!("route-{r:04}"), watch, &reporter))
                .collect();
            // Half in the first hour, half in the second: the day's sketch then holds the
            // first window's samples and the current window's sketch the rest.
            for half in 0..2 {
                let runs = apps
                    .iter()
                    .flat_map(|app| (half * 25..half * 25 + 25).map(move |i| deliver(app, i)));
                futures_util::future::join_all(runs).await;
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            sink.wait_for(routes * 50).await;
            drop(apps);
            let held = ALLOCATOR.allocated() as isize;
            guard
                .shutdown(Duration::from_secs(5))
                .await
                .expect("drained");
            drop(reporter);
            held - ALLOCATOR.allocated() as isize
        })
    };
    let per_route = |watch| held(watch) / routes as isize;
    (per_route(true), per_route(false))
}

/// Bytes a `MemoryHistory` holds for one route at its default bounds: 1,000 deliveries and
/// 48 h of minutes with 5 deliveries each, whose latencies spread over `spread_ms` (1 ms to
/// `spread_ms`).
fn history_memory_at_bounds(spread_ms: u64) -> isize {
    let start = 1_764_000_000; // a Unix time on a minute
    let before = ALLOCATOR.allocated() as isize;
    let minutes = MemoryHistory::DEFAULT_RETENTION.as_secs() / 60;
    let reports: Vec<Report> = (0..minutes * 5)
        .map(|i| {
            let at = humantime::format_rfc3339_micros(
                std::time::UNIX_EPOCH + Duration::from_secs(start + i * 12),
            );
            let total_us = 1000 * (1 + (i * 7919) % spread_ms);
            let line = format!(
                r#"{{"type":"delivery","route":"orders","provider":"stripe","delivery_id":"evt_{i:024}","event_type":"invoice.paid","attempt":null,"signature":"verified","secret_index":0,"status":200,"outcome":"success","outcome_detail":null,"reason":null,"payload_check":null,"received_at":"{at}","body_read_us":20,"handler_us":{total_us},"total_us":{total_us},"body_bytes":2048,"fingerprint":"xxh3-128:5b7d2e4f0c1a9e8d7c6b5a4f3e2d1c0b","times_seen":1,"first_seen":"{at}","mean_retry_interval_ms":null,"lag_ms":12,"flags":[],"fields":{{}}}}"#
            );
            serde_json::from_str(&line).expect("a delivery report")
        })
        .collect();
    let history = MemoryHistory::new();
    paused_runtime().block_on(async {
        for batch in reports.chunks(512) {
            history.send(batch).await.expect("kept");
        }
    });
    drop(reports);
    let held = ALLOCATOR.allocated() as isize - before;
    drop(history);
    held
}

/// A reporter into `sink` that queues up to `capacity` reports and never lingers.
fn spawn(sink: impl Sink, capacity: usize) -> (Reporter, ReporterGuard) {
    Reporter::builder()
        .queue_capacity(capacity)
        .linger(Duration::ZERO)
        .spawn(sink)
}

/// A sink that hands batches to another, then counts them.
struct Counted<S>(Counter, S);

impl<S: Sink> Sink for Counted<S> {
    async fn send(&self, batch: &[Report]) -> Result<(), SinkError> {
        self.1.send(batch).await?;
        self.0.send(batch).await
    }
}

fn worker(c: &mut Criterion) {
    let (watched, unwatched) = memory_per_route(1000);
    println!(
        "worker memory per route (1000 routes, 50 deliveries each over 2 h, 1 ms to 5 s): \
         watched {watched} bytes, unwatched {unwatched} bytes"
    );

    for spread_ms in [50, 5000] {
        let held = history_memory_at_bounds(spread_ms);
        println!(
            "MemoryHistory memory per route at its bounds (1,000 deliveries, 2,880 minutes of 5 \
             deliveries, latencies 1 ms to {spread_ms} ms): {held} bytes"
        );
    }

    let sample = sample_reports(1000);
    let mut group = c.benchmark_group("worker");
    group.throughput(Throughput::Elements(1));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    // (variant, whether the route is watched, the reporter on its sink)
    type Build = fn(Counter, usize) -> (Reporter, ReporterGuard);
    let cases: [(&str, bool, Build); 5] = [
        ("unwatched", false, |c, capacity| spawn(c, capacity)),
        ("watched", true, |c, capacity| spawn(c, capacity)),
        ("memory_sink", true, |c, capacity| {
            spawn(Counted(c, MemorySink::new()), capacity)
        }),
        ("memory_history", true, |c, capacity| {
            spawn(Counted(c, MemoryHistory::new()), capacity)
        }),
        ("fanout_2", true, |c, capacity| {
            let options = || SinkOptions::new().queue_capacity(capacity);
            let fanout = Fanout::new().sink_with("a", c, options()).sink_with(
                "b",
                MemorySink::new(),
                options(),
            );
            spawn(fanout, capacity)
        }),
    ];
    for (name, watch, build) in cases {
        group.bench_function(BenchmarkId::new("reports", name), |b| {
            b.iter_custom(|iters| {
                let reports: Vec<Report> = (0..iters)
                    .map(|i| sample[i as usize % sample.len()].clone())
                    .collect();
                rt.block_on(async {
                    let counter = Counter::default();
                    let (reporter, guard) = build(counter.clone(), iters as usize + 1);
                    let _register = route("hook".into(), watch, &reporter);
                    let start = Instant::now();
                    for report in reports {
                        reporter.try_report(report);
                    }
                    counter.wait_for(iters).await;
                    let elapsed = start.elapsed();
                    guard
                        .shutdown(Duration::from_secs(5))
                        .await
                        .expect("drained");
                    elapsed
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, worker);
criterion_main!(benches);

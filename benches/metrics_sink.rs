//! `MetricsSink`'s cost in the reporter's worker: reports per second through `Sink::send`, with
//! no recorder (the facade's no-op), with metrics-exporter-prometheus's recorder, and, for
//! comparison, the same metrics registered through the macros on every report instead of the
//! sink's cached handles.
//!
//! The reports are real: 512 deliveries through the layer (8 routes; 90 % successes, 5 % 500s,
//! 5 % rejected as too large, one in ten flagged), collected by a `MemorySink`.
//!
//! Run with `cargo bench --features metrics --bench metrics_sink`.

use std::{hint::black_box, time::Duration};

use axum::{body::Body, http::HeaderMap, routing::post, Router};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use futures_util::FutureExt;
use http::{Request, StatusCode};
use metrics::{counter, histogram};
use metrics_exporter_prometheus::PrometheusBuilder;
use tower::ServiceExt;
use webhook_monitor::{
    provider::{AttemptSource, Source},
    report::{MemorySink, MetricsSink, Reporter, Sink},
    Outcome, Policy, Report, WebhookMonitorLayer,
};

const ROUTES: usize = 8;
const REPORTS: usize = 512;

async fn handler(headers: HeaderMap) -> StatusCode {
    match headers.get("x-status") {
        Some(_) => StatusCode::INTERNAL_SERVER_ERROR,
        None => StatusCode::OK,
    }
}

/// The reports of `REPORTS` deliveries through the layer.
fn reports() -> Vec<Report> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let sink = MemorySink::new();
        let (reporter, guard) = Reporter::builder()
            .health_interval(None)
            .spawn(sink.clone());
        let routes: Vec<Router> = (0..ROUTES)
            .map(|i| {
                let policy = Policy::custom(format!("route-{i}"))
                    .provider("shop")
                    .max_body_bytes(64)
                    .attempt(AttemptSource::count(Source::header("x-attempt")));
                Router::new()
                    .route("/hook", post(handler))
                    .layer(WebhookMonitorLayer::new(policy, reporter.clone()))
            })
            .collect();
        for i in 0..REPORTS {
            let mut req = Request::post("/hook");
            if i % 20 == 1 {
                req = req.header("x-status", "500");
            }
            if i % 10 == 3 {
                req = req.header("x-attempt", "9");
            }
            let body = if i % 20 == 2 {
                vec![b'x'; 100]
            } else {
                b"{}".to_vec()
            };
            let app = routes[i % ROUTES].clone();
            app.oneshot(req.body(Body::from(body)).expect("request"))
                .await
                .expect("response");
        }
        drop((routes, reporter));
        guard
            .shutdown(Duration::from_secs(5))
            .await
            .expect("drained");
        sink.reports()
    })
}

/// What the sink does for a delivery, through the macros on every report: the registry lookup
/// and label allocations that the sink's cached handles save.
fn uncached(batch: &[Report]) {
    for d in batch.iter().filter_map(Report::as_delivery) {
        let route = d.delivery.route().to_owned();
        let labels = [
            ("route", route.clone()),
            (
                "provider",
                d.delivery.provider().unwrap_or_default().to_owned(),
            ),
            ("outcome", d.outcome.as_str().to_owned()),
            ("detail", d.outcome.detail().unwrap_or_default().to_owned()),
        ];
        counter!("webhook_deliveries_total", &labels).increment(1);
        for flag in d.flags.names() {
            counter!("webhook_flagged_total", "route" => route.clone(), "flag" => flag)
                .increment(1);
        }
        if d.outcome != Outcome::Cancelled {
            histogram!("webhook_body_read_duration_seconds", "route" => route.clone())
                .record(d.body_read);
            histogram!("webhook_total_duration_seconds", "route" => route.clone()).record(d.total);
        }
        if matches!(
            d.outcome,
            Outcome::Success | Outcome::Late | Outcome::Failure(_) | Outcome::Panicked
        ) {
            histogram!("webhook_handler_duration_seconds", "route" => route).record(d.handler);
        }
    }
}

fn send(sink: &MetricsSink, batch: &[Report]) {
    sink.send(batch)
        .now_or_never()
        .expect("ready at once")
        .expect("sent");
}

fn bench(c: &mut Criterion) {
    let batch = reports();
    assert!(batch.len() >= REPORTS, "{} reports", batch.len());
    let mut group = c.benchmark_group("metrics_sink");
    group.throughput(Throughput::Elements(batch.len() as u64));

    let noop = MetricsSink::new();
    group.bench_function("noop-recorder", |b| {
        b.iter(|| send(&noop, black_box(&batch)))
    });

    let recorder = PrometheusBuilder::new()
        .set_buckets(MetricsSink::DURATION_BUCKETS)
        .expect("buckets")
        .build_recorder();
    let handle = recorder.handle();
    let _local = metrics::set_default_local_recorder(&recorder);
    let sink = MetricsSink::new();
    // Upkeep (draining the histograms' buckets, as a scrape would) runs between batches,
    // untimed: it is the exporter's cost, not the sink's.
    group.bench_function("prometheus", |b| {
        b.iter_batched(
            || handle.run_upkeep(),
            |()| send(&sink, black_box(&batch)),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("prometheus-uncached", |b| {
        b.iter_batched(
            || handle.run_upkeep(),
            |()| uncached(black_box(&batch)),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

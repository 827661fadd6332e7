//! `JsonHttpSink` into an axum server on loopback: reports per second, in batches of 500 (one
//! `POST` of a JSON array each, on a pooled keep-alive connection). For scale, the same batch
//! only serialized.
//!
//! The reports are real: 500 deliveries through the layer (95 % successes, 5 % 500s), ids and
//! event types set, collected by a `MemorySink`: about 545 bytes of JSON each, 272 KB a batch.
//! Client and server share one 2-worker runtime, as they share the machine.
//!
//! Run with `cargo bench --features http --bench http_sink`.

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use axum::{body::Body, http::HeaderMap, routing::post, Router};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::{Request, StatusCode};
use tower::ServiceExt;
use webhook_monitor::{
    provider::Source,
    report::{
        http::{HttpTransport, JsonHttpSink},
        MemorySink, Reporter, Sink,
    },
    Policy, Report, WebhookMonitorLayer,
};

const BATCH: usize = 500;

async fn handler(headers: HeaderMap) -> StatusCode {
    match headers.get("x-status") {
        Some(_) => StatusCode::INTERNAL_SERVER_ERROR,
        None => StatusCode::OK,
    }
}

/// The reports of `BATCH` deliveries through the layer.
async fn reports() -> Vec<Report> {
    let sink = MemorySink::new();
    let (reporter, guard) = Reporter::builder()
        .health_interval(None)
        .spawn(sink.clone());
    let policy = Policy::custom("orders")
        .provider("shop")
        .delivery_id(Source::header("x-id"))
        .event_type(Source::header("x-event"));
    let app = Router::new()
        .route("/hook", post(handler))
        .layer(WebhookMonitorLayer::new(policy, reporter.clone()));
    for i in 0..BATCH {
        let mut req = Request::post("/hook")
            .header("x-id", format!("evt_{i:024}"))
            .header("x-event", "order.created");
        if i % 20 == 1 {
            req = req.header("x-status", "500");
        }
        let req = req
            .body(Body::from(r#"{"order_id":"o-1"}"#))
            .expect("request");
        app.clone().oneshot(req).await.expect("response");
    }
    drop((app, reporter));
    guard
        .shutdown(Duration::from_secs(5))
        .await
        .expect("drained");
    sink.reports()
}

fn json_http_sink(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let batch = rt.block_on(reports());
    assert_eq!(batch.len(), BATCH);
    let addr = rt.block_on(async {
        let app = Router::new().route(
            "/ingest",
            post(|body: Bytes| async move { body.len().to_string() }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        addr
    });
    let transport = HttpTransport::builder().build().expect("transport");
    let sink = JsonHttpSink::new(&transport, &format!("http://{addr}/ingest")).expect("sink");

    let mut group = c.benchmark_group("http_sink");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("json_http_sink_batch_500", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    sink.send(&batch).await.expect("delivered");
                }
                start.elapsed()
            })
        });
    });
    group.bench_function("serialize_batch_500", |b| {
        b.iter(|| serde_json::to_vec(black_box(&batch)).expect("json"));
    });
    group.finish();
    let h = &sink.health()[0];
    assert_eq!((h.failed, h.retries), (0, 0), "{h:?}");
}

criterion_group!(benches, json_http_sink);
criterion_main!(benches);

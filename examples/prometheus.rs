//! Webhook metrics for Prometheus: `MetricsSink` on metrics-exporter-prometheus's recorder, with
//! `/metrics` served by the same axum app, next to the tracing sink.
//!
//! Run with `cargo run --example prometheus --features metrics,axum`. It serves a monitored
//! GitHub webhook route on 127.0.0.1, sends itself a few deliveries (a success, a copy of it, a
//! failure, a forged signature), scrapes its own `/metrics` and prints the webhook metrics: the
//! durations as histograms, with buckets at the providers' timeouts
//! (`MetricsSink::DURATION_BUCKETS`), so that `histogram_quantile` works across a fleet.
//!
//! Run with `cargo run --example prometheus --features metrics,axum -- --serve` to keep serving
//! on 127.0.0.1:3000 (then `curl http://127.0.0.1:3000/metrics`).

use std::{future::IntoFuture, time::Duration};

use axum::{
    http::StatusCode,
    routing::{get, post},
    Router,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use webhook_monitor::{
    dedupe::MemoryStore,
    report::{Fanout, MetricsSink, Reporter, TracingSink},
    testing, Policy, WebhookMonitorLayer,
};

/// The example's GitHub webhook secret (a real route reads it from its configuration).
const SECRET: &str = "github-demo-secret";

/// Fails the deliveries whose payload asks for it, as a handler whose database is down would.
async fn handler(body: Bytes) -> StatusCode {
    if body.starts_with(br#"{"fail""#) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::NO_CONTENT
    }
}

fn app(reporter: Reporter, metrics: PrometheusHandle) -> Router {
    let policy = Policy::github(SECRET).dedupe(MemoryStore::new());
    Router::new()
        .route(
            "/webhooks/github",
            post(handler).layer(WebhookMonitorLayer::new(policy, reporter)),
        )
        .route("/metrics", get(move || async move { metrics.render() }))
}

#[tokio::main]
async fn main() -> Result<(), webhook_monitor::BoxError> {
    let serve_forever = std::env::args().any(|a| a == "--serve");
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();

    // Install the recorder before the reporter starts. Durations as histograms, not summaries:
    // without buckets the exporter renders a summary (this process's quantiles, which cannot be
    // added up across a fleet). The buckets go from 5 ms to 60 s with a bound at every
    // provider's timeout (3, 5, 10, 15, 30 s) and at 80% of it; the matcher keeps them to the
    // webhook metrics, leaving the application's own histograms alone.
    let metrics = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Prefix("webhook_".to_owned()),
            MetricsSink::DURATION_BUCKETS,
        )?
        .install_recorder()?;
    // Without the exporter's own listener, upkeep (draining histogram samples) is ours to run.
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });

    // Every report goes to the log and to the metrics; a health report every second (60 s by
    // default) so that the reporter's own metrics show up in the scrape below.
    let sink = Fanout::new()
        .sink("log", TracingSink::new())
        .sink("metrics", MetricsSink::new());
    let (reporter, guard) = Reporter::builder()
        .health_interval(Some(Duration::from_secs(1)))
        .spawn(sink);

    let addr = if serve_forever {
        "127.0.0.1:3000"
    } else {
        "127.0.0.1:0"
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(axum::serve(listener, app(reporter, metrics)).into_future());

    if serve_forever {
        println!("serving http://{addr}/webhooks/github and http://{addr}/metrics; Ctrl-C to stop");
        tokio::signal::ctrl_c().await?;
    } else {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let deliveries: [(&str, &str, &[u8], &str); 4] = [
            ("a push", "d-1", br#"{"ref":"main"}"#, SECRET),
            ("GitHub redelivers it", "d-1", br#"{"ref":"main"}"#, SECRET),
            (
                "a delivery the handler fails",
                "d-2",
                br#"{"fail":true}"#,
                SECRET,
            ),
            (
                "a forged signature",
                "d-3",
                br#"{"ref":"evil"}"#,
                "not-the-secret",
            ),
        ];
        for (what, id, body, secret) in deliveries {
            let mut req = http::Request::post(format!("http://{addr}/webhooks/github"))
                .body(Full::new(Bytes::from_static(body)))?;
            req.headers_mut()
                .extend(testing::github(secret, body, id, "push"));
            let status = client.request(req).await?.status();
            println!("{what:<30} -> {status}");
        }
        // Wait for the first health report.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let res = client
            .get(format!("http://{addr}/metrics").parse()?)
            .await?;
        let text = res.into_body().collect().await?.to_bytes();
        let text = std::str::from_utf8(&text)?;
        println!("\nGET /metrics (webhook_* series, without the buckets):\n");
        for line in text.lines() {
            if line.starts_with("webhook_") && !line.contains("_bucket{") {
                println!("{line}");
            }
        }
        // Each duration is a histogram: one cumulative counter per bucket, which Prometheus
        // adds up across instances.
        println!(
            "\nThe time to answer every delivery (copies and rejections too), as a histogram:\n"
        );
        for line in text.lines() {
            if line.starts_with("webhook_total_duration_seconds_bucket{") {
                println!("{line}");
            }
        }
        println!(
            "\nA fleet's p95 per route: histogram_quantile(0.95, sum by (route, le) \
             (rate(webhook_total_duration_seconds_bucket[5m])))"
        );
    }

    server.abort();
    guard.shutdown(Duration::from_secs(5)).await?;
    Ok(())
}

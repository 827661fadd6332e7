//! Reports to Seiri (or a Seiri-style monitor), next to the log.
//!
//! ```text
//! SEIRI_REF=my-ref cargo run --example seiri --features http,axum
//! ```
//!
//! Serves `POST /webhooks/demo` on 127.0.0.1:3000 behind the layer (a body containing `fail`
//! makes the handler answer 500). Each batch of reports goes to
//! `https://cloud.seiri.app/webhooks/{SEIRI_REF}` (or `{SEIRI_BASE_URL}/{SEIRI_REF}` when
//! `SEIRI_BASE_URL` is set) as a `metrics_batch`, through its own queue: while the service is down, reports wait there
//! (up to 50,000, then dropped and counted) and the log sink goes on. Try:
//!
//! ```text
//! curl -X POST localhost:3000/webhooks/demo -d ok
//! curl -X POST localhost:3000/webhooks/demo -d fail
//! ```
//!
//! Ctrl-C stops the server and sends what is still queued.

use std::time::Duration;

use axum::{http::StatusCode, routing::post, Router};
use webhook_monitor::{
    report::{
        http::{HttpTransport, RetryPolicy, SeiriSink},
        Fanout, Reporter, SinkOptions, TracingSink,
    },
    Policy, WebhookMonitorLayer,
};

async fn demo(body: String) -> StatusCode {
    if body.contains("fail") {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        eprintln!(
            "{name} is not set. This example needs SEIRI_REF (the ref to report to); \
             SEIRI_BASE_URL (https://…) sends elsewhere than Seiri."
        );
        std::process::exit(2)
    })
}

#[tokio::main]
async fn main() -> Result<(), webhook_monitor::BoxError> {
    let reference = env("SEIRI_REF");
    tracing_subscriber::fmt().init();

    let window = Duration::from_secs(120);
    let transport = HttpTransport::builder()
        .timeout(Duration::from_secs(5))
        .retry(RetryPolicy::default().window(window))
        .build()?;
    let mut seiri = SeiriSink::new(&transport, reference).batch_size(500);
    if let Ok(base_url) = std::env::var("SEIRI_BASE_URL") {
        seiri = seiri.base_url(&base_url)?;
    }
    let sink = Fanout::new().sink("log", TracingSink::new()).sink_with(
        "seiri",
        seiri,
        SinkOptions::new()
            .batch_size(500)
            .linger(Duration::from_secs(1))
            .queue_capacity(50_000)
            // A batch may retry for the whole window.
            .timeout(window + Duration::from_secs(10)),
    );
    let (reporter, guard) = Reporter::spawn(sink);

    let app = Router::new()
        .route("/webhooks/demo", post(demo))
        .route_layer(WebhookMonitorLayer::new(Policy::custom("demo"), reporter));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    eprintln!("serving on http://127.0.0.1:3000/webhooks/demo; Ctrl-C to stop");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    guard.shutdown(Duration::from_secs(10)).await?;
    Ok(())
}

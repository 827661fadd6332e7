//! One server variant for the load harness (`scripts/load.sh`), on 127.0.0.1, one worker thread.
//!
//! Run with `cargo run --release --all-features --example load_server -- <variant>`; it prints
//! `PORT <n>` and serves until killed. Variants: `bare`, `trace`, `report` (the layer, reporting
//! only), `hanging` (reporting to a sink that never answers), `stripe` (+ Stripe verification),
//! `full` (+ memory dedupe), `full-hanging` (full, with the hanging sink), `full-redis` (+ Redis
//! dedupe, feature `redis`, `REDIS_URL`), `hand` (no layer: the handler verifies the Stripe
//! signature itself, as users write it by hand), `hand-full` (no layer: the handler does by hand
//! what `full` does, issue #19's fair baseline), and `full-http` / `full-http-hanging` (full,
//! reporting through a `Fanout` into a real `JsonHttpSink` posting to a backend on 127.0.0.1
//! that answers `200`, or that accepts connections and never answers; feature `http`).

use std::future::{pending, Future};

use axum::{http::StatusCode, routing::post, Router};
use bytes::Bytes;
use webhook_monitor::{
    dedupe::MemoryStore,
    report::{Report, Reporter, Sink, SinkError},
    Policy, WebhookMonitorLayer,
};

#[path = "../benches/support/hand.rs"]
#[allow(unreachable_pub)]
mod hand;
#[path = "../benches/support/stripe.rs"]
#[allow(unreachable_pub)]
mod stripe;
use hand::SECRET;

/// A sink that takes every batch and does nothing with it.
struct Discard;
impl Sink for Discard {
    async fn send(&self, _: &[Report]) -> Result<(), SinkError> {
        Ok(())
    }
}

/// A backend that never answers.
struct Hangs;
impl Sink for Hangs {
    fn send(&self, _: &[Report]) -> impl Future<Output = Result<(), SinkError>> + Send {
        pending()
    }
}

async fn ok(_: Bytes) -> StatusCode {
    StatusCode::OK
}

async fn app(variant: &str) -> Router {
    let route = Router::new().route("/hook", post(ok));
    let layer = |policy: Policy, hangs: bool| {
        let reporter = if hangs {
            Reporter::spawn(Hangs)
        } else {
            Reporter::spawn(Discard)
        };
        // The guard lives as long as the process: reporting runs until it is killed.
        std::mem::forget(reporter.1);
        WebhookMonitorLayer::new(policy, reporter.0)
    };
    let plain = || Policy::custom("hook");
    // The generator signs each body once per run and sends a distinct id per request in a
    // header (see `benches/support/stripe.rs`).
    let stripe = || stripe::policy(SECRET);
    match variant {
        "bare" => route,
        "trace" => route.layer(tower_http::trace::TraceLayer::new_for_http()),
        "report" => route.layer(layer(plain(), false)),
        "hanging" => route.layer(layer(plain(), true)),
        "stripe" => route.layer(layer(stripe(), false)),
        "full" => route.layer(layer(stripe().dedupe(MemoryStore::new()), false)),
        "full-hanging" => route.layer(layer(stripe().dedupe(MemoryStore::new()), true)),
        #[cfg(feature = "redis")]
        "full-redis" => {
            let url = std::env::var("REDIS_URL").unwrap_or("redis://127.0.0.1:6379/".into());
            let prefix = format!("wm-load-{}:", std::process::id());
            let store = webhook_monitor::dedupe::RedisStore::connect(url.as_str())
                .await
                .expect("Redis for full-redis")
                .key_prefix(prefix);
            route.layer(layer(stripe().dedupe(store), false))
        }
        "hand" => hand::router(),
        "hand-full" => hand::full_router(),
        #[cfg(feature = "http")]
        "full-http" | "full-http-hanging" => {
            let url = http_backend(variant == "full-http-hanging");
            let transport = webhook_monitor::report::http::HttpTransport::builder()
                .build()
                .expect("an HTTP client");
            let sink =
                webhook_monitor::report::JsonHttpSink::new(&transport, &url).expect("a valid URL");
            // A production-like setup: batches of 500, a 100,000-report buffer for when the
            // backend is down, a timeout past the retry window.
            let options = webhook_monitor::report::SinkOptions::new()
                .batch_size(500)
                .linger(std::time::Duration::from_millis(100))
                .queue_capacity(100_000)
                .timeout(std::time::Duration::from_secs(600));
            let fanout = webhook_monitor::report::Fanout::new().sink_with("json", sink, options);
            let (reporter, guard) = Reporter::spawn(fanout);
            std::mem::forget(guard);
            let policy = stripe().dedupe(MemoryStore::new());
            route.layer(WebhookMonitorLayer::new(policy, reporter))
        }
        other => panic!("unknown variant {other}"),
    }
}

/// A monitoring backend on 127.0.0.1, on a thread of its own: it answers every POST `200`, or
/// (`hangs`) accepts connections and never reads or answers. Returns its URL.
#[cfg(feature = "http")]
fn http_backend(hangs: bool) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let url = format!("http://{}/reports", listener.local_addr().expect("bound"));
    std::thread::spawn(move || {
        if hangs {
            // Keep every connection open, unanswered.
            let mut held = Vec::new();
            for stream in listener.incoming() {
                held.push(stream);
            }
            return;
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            listener.set_nonblocking(true).expect("non-blocking");
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let app = Router::new().route("/reports", post(ok));
            axum::serve(listener, app).await.expect("backend serves");
        });
    });
    url
}

fn main() -> Result<(), webhook_monitor::BoxError> {
    let variant = std::env::args().nth(1).unwrap_or_else(|| "bare".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let app = app(&variant).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("PORT {}", listener.local_addr()?.port());
        axum::serve(listener, app).await?;
        Ok(())
    })
}

//! The server variants the benchmarks compare, built in-process, and the request loop that
//! drives them (shared by `overhead` and `instructions`).
#![allow(dead_code, unreachable_pub)]

mod event;
mod hand;
mod stripe;

pub use event::stripe_event;

use std::{
    hint::black_box,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{body::Body, http::StatusCode, routing::post, Router};
use bytes::Bytes;
use http::Request;
use tower::ServiceExt;
use webhook_monitor::{
    dedupe::MemoryStore,
    provider::Source,
    report::{JsonLinesSink, Report, Reporter, Sink, SinkError},
    watch::Watch,
    Policy, ReporterGuard, WebhookMonitorLayer,
};

/// The variants, in the order they are reported. `monitored-redis` needs `REDIS_URL`; `build`
/// also knows `monitored-unwatched` (the watchers off), `monitored-history` (reporting into
/// a `MemoryHistory`) and `monitored-fmt` (`monitored` with a `fmt` subscriber, see
/// [`subscriber`]).
pub const VARIANTS: [&str; 4] = ["bare", "trace", "monitored", "monitored-json"];

/// For a variant ending in `-fmt`, installs a `tracing-subscriber` `fmt` subscriber at its
/// default level (INFO) writing to `io::sink()` on this thread, until the guard is dropped: the
/// layer's span per delivery is then enabled, recorded and formatted. Every other variant runs
/// with no subscriber.
pub fn subscriber(variant: &str) -> Option<tracing::subscriber::DefaultGuard> {
    variant.ends_with("-fmt").then(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(std::io::sink)
            .finish();
        tracing::subscriber::set_default(subscriber)
    })
}

/// The load harness's variants (`examples/load_server.rs`), in-process: Stripe verification,
/// then memory dedupe on top (the full layer), verifying by hand without the layer, and doing
/// by hand what `full` does (`hand-full`: verify, a serde derive of `id`, `type` and `created`,
/// a `Mutex<HashMap>` dedupe, one `tracing` event).
pub const STRIPE_VARIANTS: [&str; 4] = ["stripe", "full", "hand", "hand-full"];

/// The dedupe variants: no dedupe, the memory store (empty, and full: every claim of a new key
/// evicts one, as in production once a dedupe window's deliveries fill it), and (feature
/// `redis`) Redis on loopback.
pub const DEDUPE_VARIANTS: &[&str] = &[
    "monitored-id",
    "monitored-memory",
    "monitored-memory-at-cap",
    #[cfg(feature = "redis")]
    "monitored-redis",
];

/// A sink that only counts: the layer's cost without any backend's.
#[derive(Default)]
pub struct Discard(AtomicU64);

impl Sink for Discard {
    async fn send(&self, batch: &[Report]) -> Result<(), SinkError> {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

async fn handler(body: Bytes) -> StatusCode {
    black_box(body.len());
    StatusCode::OK
}

/// A handler that waits once before answering, as one that does any I/O does: the layer then
/// holds its dedupe claim across a wait (and arms the claim's renewal timer).
async fn yielding(body: Bytes) -> StatusCode {
    tokio::task::yield_now().await;
    handler(body).await
}

/// The 2 KiB body every in-process request carries: a Stripe-like event, as the load harness
/// sends.
pub fn payload() -> Bytes {
    Bytes::from(stripe_event(2048))
}

/// Builds a variant. Must be called inside a tokio runtime (the reporter spawns its worker).
pub async fn build(variant: &str) -> (Router, Option<ReporterGuard>) {
    let router = Router::new().route("/hook", post(handler));
    let policy = || Policy::custom("hook").timeout_budget(Duration::from_secs(10));
    let with_id = || policy().delivery_id(Source::header("x-delivery-id"));
    // As in the load harness: the Stripe preset, with the id read from the per-request header.
    let stripe = || stripe::policy(hand::SECRET);
    // The route behind the layer, reporting into a sink that only counts.
    let layered = |policy: Policy| {
        let (reporter, guard) = Reporter::spawn(Discard::default());
        (
            Router::new()
                .route("/hook", post(handler))
                .layer(WebhookMonitorLayer::new(policy, reporter)),
            Some(guard),
        )
    };
    let (router, guard) = match variant {
        "bare" => (router, None),
        "trace" => (
            router.layer(tower_http::trace::TraceLayer::new_for_http()),
            None,
        ),
        "monitored" | "monitored-fmt" => layered(policy()),
        // The same with the watchers off: their share of the worker's cost.
        "monitored-unwatched" => layered(policy().watch(|_| Watch::off())),
        "monitored-json" => {
            let (reporter, guard) = Reporter::spawn(JsonLinesSink::new(std::io::sink()));
            (
                router.layer(WebhookMonitorLayer::new(policy(), reporter)),
                Some(guard),
            )
        }
        // Reporting into a `MemoryHistory` (the dashboard's) instead of a counting sink.
        "monitored-history" => {
            let history = webhook_monitor::history::MemoryHistory::new();
            let (reporter, guard) = Reporter::spawn(history);
            (
                router.layer(WebhookMonitorLayer::new(policy(), reporter)),
                Some(guard),
            )
        }
        "monitored-id" => layered(with_id()),
        "monitored-memory" => layered(with_id().dedupe(MemoryStore::new())),
        // Full after its first 1,000 deliveries: from then on every new key evicts one.
        "monitored-memory-at-cap" => {
            layered(with_id().dedupe(MemoryStore::with_capacity(1_000)))
        }
        #[cfg(feature = "redis")]
        "monitored-redis" => {
            let url = std::env::var("REDIS_URL").unwrap_or("redis://127.0.0.1:6379/".into());
            let prefix = format!("wm-bench-{}:", std::process::id());
            let store = webhook_monitor::dedupe::RedisStore::connect(url.as_str())
                .await
                .expect("Redis")
                .key_prefix(prefix);
            layered(with_id().dedupe(store))
        }
        "stripe" => layered(stripe()),
        "full" => layered(stripe().dedupe(MemoryStore::new())),
        // The same with a handler that waits once.
        "full-yield" => {
            let (reporter, guard) = Reporter::spawn(Discard::default());
            let layer = WebhookMonitorLayer::new(stripe().dedupe(MemoryStore::new()), reporter);
            let router = Router::new().route("/hook", post(yielding)).layer(layer);
            (router, Some(guard))
        }
        "hand" => return (hand::router(), None),
        "hand-full" => return (hand::full_router(), None),
        other => panic!(
            "unknown variant {other}; one of {VARIANTS:?}, {STRIPE_VARIANTS:?} or {DEDUPE_VARIANTS:?}"
        ),
    };
    // Turn handlers into routes once, as `axum::serve` does; without it a `Router<()>` rebuilds
    // each route (and re-applies its layers) on every request.
    (router.with_state(()), guard)
}

/// Sends `n` requests through `router`, yielding every 64 so that the reporter's worker (on the
/// same current_thread runtime) runs and its cost is counted, as for every variant.
pub async fn drive(router: &Router, body: &Bytes, n: u64) {
    // A distinct delivery id per request, so that dedupe variants claim a fresh key each time.
    let run = std::process::id();
    // Every request is Stripe-signed, as in the load harness (signed once: the body is the same).
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970");
    let signed = webhook_monitor::testing::stripe(hand::SECRET, body, now.as_secs());
    let signature = signed.get("stripe-signature").expect("signed").clone();
    for i in 0..n {
        let req = Request::post("/hook")
            .header("content-type", "application/json")
            .header("stripe-signature", signature.clone())
            .header("x-delivery-id", format!("evt_{run}_{i}"))
            .body(Body::from(body.clone()))
            .expect("valid request");
        let res = router.clone().oneshot(req).await.expect("infallible");
        assert_eq!(res.status(), StatusCode::OK);
        if i % 64 == 63 {
            tokio::task::yield_now().await;
        }
    }
}

/// A current_thread runtime with timers and I/O (for Redis), like a one-worker server.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

//! A tower layer that monitors webhook routes from the inside.
//!
//! Webhooks are requests you do not control: the provider decides when they come, how big they
//! are and how often they are retried. An endpoint can be "up" while its webhooks time out, fail
//! silently behind a `200`, or stop arriving. [`WebhookMonitorLayer`] wraps a webhook route and,
//! for every delivery:
//!
//! 1. buffers the body under a limit (`413` past it, `400` if it cannot be read) and hands the
//!    raw bytes to the handler, so `Bytes`, `String` and `Json` extractors work unchanged;
//! 2. verifies the provider's signature ([`provider`]: presets such as [`Policy::stripe`] and
//!    [`Policy::github`], or any HMAC scheme described as data), answering `401` and naming the
//!    failed check;
//! 3. identifies the delivery (id, event type, attempt, send time) into a [`Delivery`] the
//!    handler can read;
//! 4. optionally checks the payload ([`payload`]: size, valid JSON, required and non-null
//!    fields, nesting depth), answering `422` or only flagging the report, as each check says;
//! 5. optionally processes it once ([`dedupe`]: in memory or in Redis across a fleet), answering
//!    copies of processed deliveries without calling the handler, and releasing failed attempts
//!    so the provider's retry runs;
//! 6. times the body read and the handler separately, and classifies the answer into an
//!    [`Outcome`]: success, failure by class, *late* (a 2xx after the provider's timeout
//!    budget), a failure the handler [`Mark`]ed behind a 2xx, a caught panic (answered `500`),
//!    or a cancellation (the future was dropped mid-handler);
//! 7. hands a [`DeliveryReport`] to a background [`Reporter`] that batches reports into a
//!    [`Sink`](report::Sink). Reporting never waits and never fails the response: when the queue
//!    is full the report is dropped and counted.
//!
//! Rejections are responses, never errors: the service's error type stays the inner service's.
//!
//! On top of the reports, the reporter's worker runs [watchers](watch) per route: spikes,
//! drops and silence (with quiet hours), deliveries that are all rejected, retry storms, failure
//! rates, and p95 latency near the provider's timeout or creeping above its baseline; and for
//! the whole process, resident memory that keeps growing ([memory watch](watch::MemoryWatch)).
//! Their alerts are reports too ([`Report::Alert`]), sent once when they open and once when
//! they resolve.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use axum::{routing::post, Router};
//! use bytes::Bytes;
//! use webhook_monitor::{
//!     dedupe::MemoryStore, report::{Reporter, TracingSink}, Policy, WebhookMonitorLayer,
//! };
//!
//! async fn handler(body: Bytes) -> &'static str {
//!     // … process the event: it is verified, and seen here once …
//!     "ok"
//! }
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), webhook_monitor::BoxError> {
//! let (reporter, guard) = Reporter::spawn(TracingSink::new());
//! let policy = Policy::stripe(std::env::var("STRIPE_WEBHOOK_SECRET")?)
//!     .timeout_budget(Duration::from_secs(5))
//!     .dedupe(MemoryStore::new());
//! // `route_layer`, not `layer`: `Router::layer` also wraps the 404 fallback (see below).
//! let app = Router::new()
//!     .route("/webhooks/stripe", post(handler))
//!     .route_layer(WebhookMonitorLayer::new(policy, reporter));
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app)
//!     .with_graceful_shutdown(async { let _ = tokio::signal::ctrl_c().await; })
//!     .await?;
//! // Send every queued report before exiting.
//! guard.shutdown(Duration::from_secs(5)).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Wrap the webhook route, not the router
//!
//! In axum, put the layer on the webhook route: `Router::route_layer`, or `.layer(..)` on the
//! route's `MethodRouter` (`post(handler).layer(..)`). `Router::layer` also wraps the router's
//! fallback, so every request to any path (a scanner probing `/wp-login.php`, a health check)
//! would be verified against the route's policy, answered `401` instead of `404`, reported as
//! a rejected delivery of that route, and feed its watchers (all deliveries rejected): someone
//! gets paged for a scanner. With `route_layer`, an unmatched path is a plain `404`, unseen.
//!
//! Several providers in one app: `Router::route_layer` wraps every route added *before* it, so
//! in `.route("/a", ..).route_layer(a).route("/b", ..).route_layer(b)` route `/a` is behind
//! both layers (and `b`'s policy rejects `/a`'s deliveries). Put each layer on its own route
//! (`post(handler).layer(..)`), or build one router per provider and `merge` them, as the
//! `axum_providers` example does.
//!
//! # Features
//!
//! - `axum`: [`Delivery`] as an axum extractor and [`Mark`] usable in a handler's return tuple.
//! - `asymmetric`: Discord (Ed25519) and SendGrid (ECDSA P-256) signatures.
//! - `redis`: [`dedupe::RedisStore`], dedupe shared across instances, on one Redis or a Redis
//!   Cluster.
//! - `http`: [`report::http`], sinks that ship reports over HTTP (any JSON endpoint, a
//!   Seiri-style monitor, Healthchecks.io-style pings, Slack), with retries, backoff and a
//!   circuit breaker; reqwest on rustls (*ring*).
//! - `metrics`: [`report::MetricsSink`], reports as counters, gauges and histograms on the
//!   [`metrics`](https://docs.rs/metrics) facade (Prometheus and others).
//! - `dashboard`: [`dashboard::Dashboard`], an axum `Router` the app nests, that shows a
//!   [`History`](history::History): routes, charts, recent deliveries, alerts and the
//!   reporter's health, as pages and as JSON; authentication required.
//! - `tz`: [quiet hours](watch::QuietHours) in an IANA time zone, daylight saving time
//!   included (jiff, with the tz database bundled).
//!
//! The HMAC providers, the in-memory pieces and the `tracing` and JSON-lines sinks need no
//! feature.
//!
//! # Tracing: a span per delivery
//!
//! Each delivery runs in an INFO span named `webhook` (target `webhook_monitor::delivery`), so
//! that a handler's own `tracing` events and spans carry the delivery they belong to. Its
//! fields: `route`, `provider`, then, as the layer reads them, `delivery_id`, `event_type` and
//! `attempt` (body fields only once the signature checked out), and at the end `outcome`, its
//! `detail` (the failure kind or rejection reason) and the answer's `status`. With no subscriber
//! interested in it, it costs about 20 instructions per delivery (BENCHMARKS.md); filter the
//! target out to turn it off. `examples/opentelemetry.rs` exports it to OpenTelemetry with
//! `tracing-opentelemetry`.
//!
//! ```
//! # use axum::{http::StatusCode, routing::post, Router};
//! # use webhook_monitor::{report::{Reporter, TracingSink}, Policy, WebhookMonitorLayer};
//! async fn handler() -> StatusCode {
//!     // Logged as `webhook{route="stripe" provider="stripe" delivery_id="evt_…" …}: charging`.
//!     tracing::info!("charging");
//!     StatusCode::OK
//! }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! # let (reporter, _guard) = Reporter::spawn(TracingSink::new());
//! let layer = WebhookMonitorLayer::new(Policy::stripe("whsec_…"), reporter);
//! let app: Router = Router::new().route("/webhooks/stripe", post(handler).route_layer(layer));
//! # let _ = app;
//! # }
//! ```
//!
//! # Backpressure
//!
//! `poll_ready` is forwarded to the inner service. If that service is a `tower::buffer::Buffer`,
//! the slot it reserves stays held while the layer reads the body. Under axum this does not
//! matter: a route is always ready.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
#[cfg(feature = "dashboard")]
#[cfg_attr(docsrs, doc(cfg(feature = "dashboard")))]
pub mod dashboard;
pub mod dedupe;
mod delivery;
mod future;
pub mod history;
mod json;
mod layer;
mod outcome;
mod policy;
pub mod provider;
#[cfg(feature = "redis")]
mod redis_link;
pub mod report;
mod respond;
mod service;
pub mod testing;
pub mod watch;

// The fuzz targets' door to the parsers they exercise. Compiled only under `--cfg fuzzing`,
// which `cargo fuzz` sets; never part of the API.
#[cfg(fuzzing)]
#[doc(hidden)]
#[allow(missing_docs, unreachable_pub)]
pub mod fuzzing;

pub use body::WebhookBody;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use delivery::MissingDelivery;
pub use delivery::{Delivery, Fingerprint, SignatureStatus};
pub use future::ResponseFuture;
pub use json::{payload, IntoPointer, InvalidPointer, JsonPointer};
pub use layer::WebhookMonitorLayer;
pub use outcome::{
    Classify, DefaultClassify, FailureKind, Field, FieldValue, Mark, Outcome, RejectReason,
};
pub use payload::PayloadChecks;
pub use policy::{FingerprintAlgorithm, Policy};
pub use report::{DeliveryReport, Flags, Report, Reporter, ReporterGuard};
pub use respond::{Answer, EmptyResponse, Respond};
pub use service::WebhookMonitor;

/// Alias for a type-erased error type.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

//! Custom classification: what counts as a success or a failure on *your* route.
//!
//! The default classifier reads the status class: 2xx success, 4xx client error, 5xx server
//! error. This route's handler speaks a richer language, so the route gets its own `Classify`
//! (`Policy::classify_with`): `409 Conflict` means "already processed" (a success: the provider
//! should stop retrying), `429 Too Many Requests` means "try again later" (a failure counted
//! with the server errors: transient, on our side, not the payload's fault). The handler also
//! uses `Mark`: `Mark::failed(..)` behind a `200` for an order it will never be able to
//! process (the provider must not retry it, the monitoring must see it), and custom fields
//! that travel in every report.
//!
//! Run with `cargo run --example custom_classify --features axum`. It serves the route on
//! 127.0.0.1 (an ephemeral port), sends itself one delivery per case, and prints each answer
//! with the outcome, reason and fields the report carries.
//!
//! Run with `cargo run --example custom_classify --features axum -- --serve` to keep serving
//! on 127.0.0.1:3000 (then try
//! `curl -i -X POST 127.0.0.1:3000/webhooks/orders -H 'x-delivery-id: d-9' -d '{"order_id":"A-9","items":[1]}'`).

use std::{
    collections::HashSet,
    future::IntoFuture,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use axum::{
    extract::{Json, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Router,
};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::Value;
use webhook_monitor::{
    provider::Source,
    report::{MemorySink, Reporter},
    Classify, DefaultClassify, FailureKind, Mark, Outcome, Policy, WebhookMonitorLayer,
};

/// How the orders route's answers are classified.
///
/// It runs on the request path for every answer of the handler, so it only looks at the status
/// and headers. The layer applies the handler's `Mark::failed` and the timeout budget after it:
/// a `409` marked failed is still a failure, and a `409` after the budget is `late`.
#[derive(Debug, Clone, Copy)]
struct OrdersClassify;

impl Classify for OrdersClassify {
    fn classify(&self, status: StatusCode, headers: &HeaderMap) -> Outcome {
        match status {
            // The handler's own idempotency check found the order: processed before, under
            // another delivery id. Nothing failed, and the provider may stop retrying.
            StatusCode::CONFLICT => Outcome::Success,
            // A downstream is rate-limiting us. The default would call it a client error (the
            // payload's fault); it is transient and ours, like a 503: the provider retries it.
            StatusCode::TOO_MANY_REQUESTS => Outcome::Failure(FailureKind::ServerError),
            // Any status that comes with `Retry-After` asks for a retry, too.
            s if s.is_client_error() && headers.contains_key(header::RETRY_AFTER) => {
                Outcome::Failure(FailureKind::ServerError)
            }
            // Everything else as usual. (A closure works too:
            // `.classify_with(|status: StatusCode, _: &HeaderMap| … )`.)
            s => DefaultClassify::default().classify(s, headers),
        }
    }
}

/// The orders this process has already processed: the handler's own idempotency, below the
/// layer's dedupe (which knows delivery ids, not orders).
type Processed = Arc<Mutex<HashSet<String>>>;

async fn orders(State(processed): State<Processed>, Json(order): Json<Value>) -> Response {
    let Some(id) = order["order_id"].as_str() else {
        // The payload is wrong and always will be: a permanent client error.
        return (StatusCode::UNPROCESSABLE_ENTITY, "no order_id").into_response();
    };
    if order["rate_limited"].as_bool() == Some(true) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "30")],
            "the warehouse API is rate-limiting us",
        )
            .into_response();
    }
    if let Some(sku) = order["sku"].as_str().filter(|sku| sku.starts_with("X-")) {
        // Answer 200 so the provider stops retrying an order that can never work, and tell
        // the monitoring the truth.
        let mark = Mark::failed(format!("unknown sku {sku}")).field("order", id.to_owned());
        return (StatusCode::OK, mark, "accepted").into_response();
    }
    let first_time = processed
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id.to_owned());
    if !first_time {
        return (StatusCode::CONFLICT, "order already processed").into_response();
    }
    let items = order["items"].as_array().map_or(0, Vec::len);
    // Fields travel in the report (and the JSON report's `fields`): counts, tenants, amounts.
    let mark = Mark::new()
        .field("order", id.to_owned())
        .field("items", items)
        .field("total_eur", order["total"].as_f64().unwrap_or(0.0))
        .field("tenant", "acme");
    (StatusCode::OK, mark, "processed").into_response()
}

fn app(reporter: Reporter) -> Router {
    let policy = Policy::custom("orders")
        .provider("shop")
        .delivery_id(Source::header("x-delivery-id"))
        .event_type(Source::header("x-event-type"))
        .timeout_budget(Duration::from_secs(5))
        .classify_with(OrdersClassify);
    // A real route also verifies a signature (`Policy::verify_with`, or a provider preset).
    Router::new()
        .route("/webhooks/orders", post(orders))
        .route_layer(WebhookMonitorLayer::new(policy, reporter))
        .with_state(Processed::default())
}

#[tokio::main]
async fn main() -> Result<(), webhook_monitor::BoxError> {
    let serve_forever = std::env::args().any(|a| a == "--serve");
    let sink = MemorySink::new();
    let (reporter, guard) = Reporter::builder()
        .linger(Duration::from_millis(1))
        .spawn(sink.clone());
    let addr = if serve_forever {
        "127.0.0.1:3000"
    } else {
        "127.0.0.1:0"
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, app(reporter.clone()))
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .into_future(),
    );

    if serve_forever {
        println!("serving http://{addr}/webhooks/orders; Ctrl-C to stop");
        tokio::signal::ctrl_c().await?;
    } else {
        println!("orders route on http://{addr}/webhooks/orders, classified by OrdersClassify\n");
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let cases = [
            (
                "a new order",
                r#"{"order_id":"A-1","items":[1,2,3],"total":42.5}"#,
            ),
            (
                "the same order under a new delivery id",
                r#"{"order_id":"A-1","items":[1,2,3],"total":42.5}"#,
            ),
            (
                "an order while the warehouse rate-limits us",
                r#"{"order_id":"A-2","rate_limited":true}"#,
            ),
            (
                "an order for a sku that does not exist",
                r#"{"order_id":"A-3","sku":"X-9"}"#,
            ),
            ("an order without an id", r#"{"items":[]}"#),
        ];
        for (i, (what, body)) in cases.into_iter().enumerate() {
            let req = http::Request::post(format!("http://{addr}/webhooks/orders"))
                .header("content-type", "application/json")
                .header("x-delivery-id", format!("d-{}", i + 1))
                .header("x-event-type", "order.created")
                .body(Full::new(Bytes::from_static(body.as_bytes())))?;
            let status = client.request(req).await?.status();
            let reports = sink.wait_for(i + 1, Duration::from_secs(1)).await;
            let Some(report) = reports.get(i).and_then(|r| r.as_delivery()) else {
                println!("{what:<44} -> {status}: no report yet");
                continue;
            };
            let outcome = match report.outcome.detail() {
                Some(detail) => format!("{}({detail})", report.outcome.as_str()),
                None => report.outcome.as_str().to_owned(),
            };
            // What the default classifier would have said, where it differs.
            let default = DefaultClassify::default().classify(status, &HeaderMap::new());
            let differs = if default == report.outcome || report.outcome.detail() == Some("marked")
            {
                String::new()
            } else {
                let detail = default
                    .detail()
                    .map(|d| format!("({d})"))
                    .unwrap_or_default();
                format!(" (by default: {}{detail})", default.as_str())
            };
            println!("{what:<44} -> {status}, reported {outcome}{differs}");
            if let Some(reason) = &report.reason {
                println!("{:<48}reason: {reason}", "");
            }
            for field in &report.fields {
                // `FieldValue` serializes as in the JSON reports.
                let value = serde_json::to_string(&field.value)?;
                println!("{:<48}field {} = {value}", "", field.name);
            }
        }
    }

    let _ = stop.send(());
    server.await??;
    guard.shutdown(Duration::from_secs(5)).await?;
    Ok(())
}

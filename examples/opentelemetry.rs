//! The layer's span per delivery, exported to OpenTelemetry with `tracing-opentelemetry`.
//!
//! Every delivery runs in a `webhook` span carrying the route, the provider, the delivery id, the
//! event type and the attempt, and, once answered, the outcome and the status. A handler's own
//! spans and events nest under it, so a trace backend shows which delivery they served.
//!
//! This example serves a Stripe route on 127.0.0.1, sends it two signed deliveries and one
//! forged one, and exports the spans to an exporter that prints them. In production, swap
//! `PrintExporter` for `opentelemetry-otlp`'s exporter (and a batch processor); nothing else
//! changes.
//!
//! Run with `cargo run --example opentelemetry`.

use std::{
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{routing::post, Router};
use http::StatusCode;
use http_body_util::Full;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use opentelemetry::{trace::TracerProvider as _, Value};
use opentelemetry_sdk::{
    error::OTelSdkResult,
    trace::{SdkTracerProvider, SpanData, SpanExporter},
};
use tracing_subscriber::layer::SubscriberExt;
use webhook_monitor::{
    report::{Reporter, TracingSink},
    Policy, WebhookMonitorLayer,
};

const SECRET: &str = "whsec_opentelemetry_example";

/// Prints each finished span, and keeps it for the checks at the end.
#[derive(Debug, Clone, Default)]
struct PrintExporter(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for PrintExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        for span in &batch {
            // The span's fields; not the source locations and timings tracing-opentelemetry adds.
            let attributes: Vec<String> = span
                .attributes
                .iter()
                .filter(|kv| !kv.key.as_str().contains('.') && !kv.key.as_str().ends_with("_ns"))
                .map(|kv| format!("{}={}", kv.key, kv.value))
                .collect();
            let took = span
                .end_time
                .duration_since(span.start_time)
                .unwrap_or_default();
            println!(
                "span {:<8} trace={} parent={} {:>9.3?} {}",
                span.name,
                span.span_context.trace_id(),
                span.parent_span_id,
                took,
                attributes.join(" ")
            );
            for event in &span.events.events {
                println!("    event {:?}", event.name);
            }
        }
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(batch);
        Ok(())
    }
}

/// The handler: its span and event nest under the delivery's span.
async fn charge() -> StatusCode {
    let span = tracing::info_span!("charge_customer");
    let _entered = span.enter();
    tracing::info!("charged the customer");
    StatusCode::OK
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let exporter = PrintExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let tracer = provider.tracer("webhook-monitor-example");
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
    tracing::subscriber::set_global_default(subscriber)?;

    let (reporter, guard) = Reporter::spawn(TracingSink::new());
    let app = Router::new().route(
        "/webhooks/stripe",
        post(charge).route_layer(WebhookMonitorLayer::new(Policy::stripe(SECRET), reporter)),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/webhooks/stripe", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let deliveries = [
        ("evt_otel_1", "invoice.paid", SECRET),
        ("evt_otel_2", "customer.created", SECRET),
        ("evt_otel_forged", "invoice.paid", "whsec_not_the_secret"),
    ];
    for (id, event_type, secret) in deliveries {
        let body =
            format!(r#"{{"id":"{id}","object":"event","type":"{event_type}","created":{now}}}"#);
        let headers = webhook_monitor::testing::stripe(secret, body.as_bytes(), now);
        let mut req = http::Request::post(&url);
        for (name, value) in &headers {
            req = req.header(name, value);
        }
        let res = client.request(req.body(Full::from(body))?).await?;
        println!("{id}: {}", res.status());
    }
    guard.shutdown(std::time::Duration::from_secs(5)).await?;
    provider.shutdown()?;

    // What a trace backend receives: one `webhook` span per delivery, with the delivery's ids
    // for the verified ones, and the handler's span inside it.
    let spans = exporter
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let attribute = |span: &SpanData, key: &str| {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.clone())
    };
    let deliveries: Vec<&SpanData> = spans.iter().filter(|s| s.name == "webhook").collect();
    assert_eq!(deliveries.len(), 3, "one span per delivery");
    for id in ["evt_otel_1", "evt_otel_2"] {
        let span = deliveries
            .iter()
            .find(|s| attribute(s, "delivery_id") == Some(Value::from(id)))
            .unwrap_or_else(|| panic!("a span for {id}"));
        assert_eq!(attribute(span, "outcome"), Some(Value::from("success")));
        let handler = spans
            .iter()
            .find(|s| {
                s.name == "charge_customer" && s.parent_span_id == span.span_context.span_id()
            })
            .unwrap_or_else(|| panic!("the handler's span nested under {id}'s"));
        assert_eq!(
            handler.span_context.trace_id(),
            span.span_context.trace_id()
        );
    }
    let forged = deliveries
        .iter()
        .find(|s| attribute(s, "outcome") == Some(Value::from("rejected")))
        .expect("the forged delivery's span");
    assert_eq!(
        attribute(forged, "delivery_id"),
        None,
        "unverified ids are not recorded"
    );
    println!("ok: 3 delivery spans, the handler's spans nested in the verified ones");
    Ok(())
}

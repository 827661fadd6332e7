//! One axum app, five providers: Stripe, GitHub, Shopify, Slack and Clerk (Svix, Standard
//! Webhooks), each on its own route with its own policy, all reporting through one reporter.
//!
//! Run with `cargo run --example axum_providers --features axum`. It serves the five routes on
//! 127.0.0.1 (an ephemeral port), sends itself deliveries signed as each provider signs them
//! (`webhook_monitor::testing`), a retried copy, a forged signature and payloads the Stripe
//! route's checks reject or flag, prints each answer, shuts down gracefully, then prints every
//! report the reporter sent, route by route. The same reports go to the log (`TracingSink`, on
//! stderr) through a `Fanout`.
//!
//! Run with `cargo run --example axum_providers --features axum -- --serve` to keep serving on
//! 127.0.0.1:3000; Ctrl-C shuts down gracefully.

use std::{
    collections::BTreeMap,
    future::IntoFuture,
    io::IsTerminal,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{extract::Json, http::StatusCode, response::IntoResponse, routing::post, Router};
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::Full;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use serde_json::Value;
use webhook_monitor::{
    dedupe::MemoryStore,
    payload::Check,
    report::{Fanout, MemorySink, Reporter, TracingSink},
    testing, Delivery, Mark, PayloadChecks, Policy, WebhookMonitorLayer,
};

// The providers' signing secrets (a real app reads them from its configuration).
const STRIPE_SECRET: &str = "whsec_stripe_demo_secret";
const GITHUB_SECRET: &str = "github-demo-secret";
const SHOPIFY_SECRET: &str = "shopify-client-secret";
const SLACK_SECRET: &str = "slack-signing-secret";
/// Svix secrets are base64 after `whsec_` (this one is from the Standard Webhooks docs).
const CLERK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Stripe: the event was verified, and `payment_intent`s are checked by the route's payload
/// checks before this runs.
async fn stripe(delivery: Delivery, Json(event): Json<Value>) -> impl IntoResponse {
    let amount = event["data"]["object"]["amount"].as_u64().unwrap_or(0);
    let mark = Mark::new().field("amount", amount);
    (
        mark,
        format!("{} handled", delivery.event_type().unwrap_or("event")),
    )
}

/// GitHub: counts the commits of a push.
async fn github(Json(push): Json<Value>) -> impl IntoResponse {
    let commits = push["commits"].as_array().map_or(0, Vec::len);
    (
        Mark::new().field("commits", commits),
        StatusCode::NO_CONTENT,
    )
}

/// Shopify: an order; a real handler queues it and answers at once (Shopify waits 5 s).
async fn shopify(Json(order): Json<Value>) -> impl IntoResponse {
    let id = order["id"].as_u64().unwrap_or(0);
    (Mark::new().field("order_id", id), StatusCode::OK)
}

/// Slack: answers the one-time URL verification with its challenge, and acknowledges events.
async fn slack(Json(event): Json<Value>) -> axum::response::Response {
    match event["type"].as_str() {
        Some("url_verification") => event["challenge"]
            .as_str()
            .unwrap_or("")
            .to_owned()
            .into_response(),
        _ => StatusCode::OK.into_response(),
    }
}

/// Clerk: a user event; deleting users depends on a database that is down right now.
async fn clerk(Json(event): Json<Value>) -> StatusCode {
    match event["type"].as_str() {
        Some("user.deleted") => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::NO_CONTENT,
    }
}

/// The five routes, each with its own policy, all reporting through `reporter`.
fn app(reporter: &Reporter) -> Result<Router, webhook_monitor::BoxError> {
    // One store for every route: keys are prefixed with the route's name, so one provider's ids
    // never collide with another's (rename a route with `Policy::rename` when two routes use
    // the same preset). `RedisStore` (feature `redis`) does the same across a fleet.
    let store = MemoryStore::new();

    // Stripe publishes no response timeout, so the preset sets none (nothing would ever be
    // reported late): state the one you want. The checks reject an event without its object's
    // id (422: Stripe retries it, and the report names the check) and flag a payment without a
    // customer, which is still processed.
    let stripe_policy = Policy::stripe(STRIPE_SECRET)
        .timeout_budget(Duration::from_secs(10))
        .dedupe(store.clone())
        .payload_checks(
            PayloadChecks::new()
                .reject(Check::max_depth(32))
                .reject(Check::require("/data/object/id"))
                .flag(Check::not_null("/data/object/customer")),
        );
    // The presets carry each provider's timeout: GitHub 10 s, Shopify 5 s, Slack 3 s, Svix
    // 15 s. Tighten one where the provider's clock starts before yours: Slack counts the
    // network too, so this route calls an answer late from 2.5 s, before Slack gives up.
    let github_policy = Policy::github(GITHUB_SECRET).dedupe(store.clone());
    let shopify_policy = Policy::shopify(SHOPIFY_SECRET)
        .dedupe(store.clone())
        .watch(|w| w.consecutive_failures(3)); // alert on 3 failures in a row (5 by default)
    let slack_policy = Policy::slack(SLACK_SECRET)
        .timeout_budget(Duration::from_millis(2500))
        .dedupe(store.clone());
    let clerk_policy = Policy::clerk([CLERK_SECRET])?.dedupe(store);

    // Each provider in its own `Router`, wrapped with `route_layer`, then merged. Not one
    // chain of `.route(..).route_layer(..)` pairs: `route_layer` wraps every route added
    // before it, so the first route would also sit behind every later route's layer (and be
    // checked against the wrong provider's signature). Not `Router::layer` either: it wraps the
    // 404 fallback too. (`post(handler).layer(..)` on each route is the other correct way.)
    let route = |path: &str, handler, policy| {
        Router::new()
            .route(path, handler)
            .route_layer(WebhookMonitorLayer::new(policy, reporter.clone()))
    };
    Ok(Router::new()
        .merge(route("/webhooks/stripe", post(stripe), stripe_policy))
        .merge(route("/webhooks/github", post(github), github_policy))
        .merge(route("/webhooks/shopify", post(shopify), shopify_policy))
        .merge(route("/webhooks/slack", post(slack), slack_policy))
        .merge(route("/webhooks/clerk", post(clerk), clerk_policy)))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One delivery of the tour: what it is, where it goes, its body and signed headers.
struct Step {
    what: &'static str,
    path: &'static str,
    body: Vec<u8>,
    headers: HeaderMap,
}

fn tour() -> Result<Vec<Step>, webhook_monitor::BoxError> {
    let t = now();
    let step = |what, path, body: &str, headers: HeaderMap| Step {
        what,
        path,
        body: body.as_bytes().to_vec(),
        headers,
    };
    let paid = r#"{"id":"evt_1","type":"payment_intent.succeeded","data":{"object":{"id":"pi_1","amount":1200,"customer":"cus_1"}}}"#;
    let no_id =
        r#"{"id":"evt_2","type":"payment_intent.succeeded","data":{"object":{"amount":5}}}"#;
    let guest = r#"{"id":"evt_3","type":"payment_intent.succeeded","data":{"object":{"id":"pi_3","amount":700,"customer":null}}}"#;
    let push = r#"{"ref":"refs/heads/main","commits":[{"id":"a1"},{"id":"b2"},{"id":"c3"}]}"#;
    let order = r#"{"id":820982911946154508,"email":"jon@example.com"}"#;
    let challenge = r#"{"type":"url_verification","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}"#;
    let mention = r#"{"type":"event_callback","event_id":"Ev01","event":{"type":"app_mention"}}"#;
    let created = r#"{"type":"user.created","data":{"id":"user_1"}}"#;
    let deleted = r#"{"type":"user.deleted","data":{"id":"user_2"}}"#;

    let mut slack_retry = testing::slack(SLACK_SECRET, mention.as_bytes(), t);
    slack_retry.insert("x-slack-retry-num", "1".parse()?);
    slack_retry.insert("x-slack-retry-reason", "http_timeout".parse()?);
    let svix =
        |id, body: &str| testing::standard_webhooks("svix", CLERK_SECRET, id, body.as_bytes(), t);

    Ok(vec![
        step(
            "Stripe: a payment",
            "/webhooks/stripe",
            paid,
            testing::stripe(STRIPE_SECRET, paid.as_bytes(), t),
        ),
        // Stripe signs each attempt afresh: a new timestamp, the same event id.
        step(
            "Stripe: the same event, retried",
            "/webhooks/stripe",
            paid,
            testing::stripe(STRIPE_SECRET, paid.as_bytes(), t + 1),
        ),
        step(
            "Stripe: an event without its object's id",
            "/webhooks/stripe",
            no_id,
            testing::stripe(STRIPE_SECRET, no_id.as_bytes(), t),
        ),
        step(
            "Stripe: a payment without a customer",
            "/webhooks/stripe",
            guest,
            testing::stripe(STRIPE_SECRET, guest.as_bytes(), t),
        ),
        step(
            "Stripe: a forged signature",
            "/webhooks/stripe",
            paid,
            testing::stripe("whsec_someone_else", paid.as_bytes(), t),
        ),
        step(
            "GitHub: a push",
            "/webhooks/github",
            push,
            testing::github(GITHUB_SECRET, push.as_bytes(), "d-1", "push"),
        ),
        step(
            "Shopify: an order",
            "/webhooks/shopify",
            order,
            testing::shopify(SHOPIFY_SECRET, order.as_bytes(), "w-1", "orders/create"),
        ),
        step(
            "Slack: the URL verification",
            "/webhooks/slack",
            challenge,
            testing::slack(SLACK_SECRET, challenge.as_bytes(), t),
        ),
        step(
            "Slack: an app mention",
            "/webhooks/slack",
            mention,
            testing::slack(SLACK_SECRET, mention.as_bytes(), t),
        ),
        step(
            "Slack: it retries the mention",
            "/webhooks/slack",
            mention,
            slack_retry,
        ),
        step(
            "Clerk: a user created",
            "/webhooks/clerk",
            created,
            svix("msg_1", created)?,
        ),
        step(
            "Clerk: a user deleted (the database is down)",
            "/webhooks/clerk",
            deleted,
            svix("msg_2", deleted)?,
        ),
    ])
}

#[tokio::main]
async fn main() -> Result<(), webhook_monitor::BoxError> {
    let serve_forever = std::env::args().any(|a| a == "--serve");
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    // ONE reporter for the whole app: one queue, one worker, one place for every route's
    // reports and alerts. Here it feeds two sinks: the log, and memory (for the summary).
    let memory = MemorySink::new();
    let sink = Fanout::new()
        .sink("log", TracingSink::new())
        .sink("memory", memory.clone());
    let (reporter, guard) = Reporter::spawn(sink);

    let addr = if serve_forever {
        "127.0.0.1:3000"
    } else {
        "127.0.0.1:0"
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, app(&reporter)?)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .into_future(),
    );

    if serve_forever {
        println!(
            "serving http://{addr}/webhooks/{{stripe,github,shopify,slack,clerk}}; Ctrl-C to stop"
        );
        tokio::signal::ctrl_c().await?;
    } else {
        println!("five providers on http://{addr}/webhooks/…\n");
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        for step in tour()? {
            let mut req = http::Request::post(format!("http://{addr}{}", step.path))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(step.body)))?;
            req.headers_mut().extend(step.headers);
            let status = client.request(req).await?.status();
            println!("{:<48} -> {status}", step.what);
        }
    }

    // Stop taking requests and let those in flight finish; then send every queued report.
    let _ = stop.send(());
    server.await??;
    guard.shutdown(Duration::from_secs(5)).await?;

    let mut by_route: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for report in memory.reports() {
        if let Some(report) = report.as_delivery() {
            // `Display` gives the outcome and timings; the delivery says which one it was.
            let d = &report.delivery;
            let mut line = format!(
                "[id={} event={}{}] {report}",
                d.id().unwrap_or("-"),
                d.event_type().unwrap_or("-"),
                d.attempt()
                    .map(|n| format!(" attempt={n}"))
                    .unwrap_or_default(),
            );
            for field in &report.fields {
                // `FieldValue` serializes as in the JSON reports.
                line.push_str(&format!(
                    " {}={}",
                    field.name,
                    serde_json::to_string(&field.value)?
                ));
            }
            by_route
                .entry(report.delivery.route().to_owned())
                .or_default()
                .push(line);
        }
    }
    println!("\nReports, by route (one reporter for all):");
    for (route, lines) in by_route {
        println!("  {route}");
        for line in lines {
            println!("    {line}");
        }
    }
    let stats = reporter.stats();
    println!(
        "\nreporter: {} reports queued, {} dropped",
        stats.enqueued,
        stats.dropped_full + stats.dropped_closed
    );
    Ok(())
}

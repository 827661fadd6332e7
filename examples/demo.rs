//! A guided tour of webhook-monitor on its embedded defaults: no Redis, no external backend.
//!
//! Run with `cargo run --example demo`. It serves two monitored webhook routes on 127.0.0.1,
//! sends itself a scripted set of deliveries with a real HTTP client, prints each report as the
//! reporter emits it, then a summary, and exits.
//!
//! Run with `cargo run --example demo --features dashboard -- --serve` to keep serving, with the
//! scripted deliveries flowing every few seconds, and open the dashboard at the URL it prints
//! (with its token). Without the `dashboard` feature, `--serve` serves the routes and prints curl
//! commands to try.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    future::IntoFuture,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    extract::Json, http::StatusCode, response::IntoResponse, routing::post, Extension, Router,
};
use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::Value;
use webhook_monitor::{
    dedupe::MemoryStore,
    provider::Source,
    report::{Reporter, Sink, SinkError},
    testing, Delivery, Mark, Policy, Report, WebhookMonitorLayer,
};

/// Per (route, outcome): how many, and the longest total time.
type Tally = BTreeMap<(String, String), (u32, Duration)>;

/// Prints one line per report (or only alerts, when `quiet`) and keeps a tally for the summary.
#[derive(Clone, Default)]
struct PrintSink {
    tally: Arc<Mutex<Tally>>,
    quiet: bool,
}

impl Sink for PrintSink {
    async fn send(&self, batch: &[Report]) -> Result<(), SinkError> {
        let mut tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        for report in batch {
            let report = match report {
                Report::Delivery(report) => report,
                Report::Alert(alert) => {
                    println!("  ALERT   {alert}");
                    continue;
                }
                _ => continue,
            };
            if !self.quiet {
                println!("  report  {report}");
            }
            let outcome = match report.outcome.detail() {
                Some(detail) => format!("{}({detail})", report.outcome.as_str()),
                None => report.outcome.as_str().to_owned(),
            };
            let entry = tally
                .entry((report.delivery.route().to_owned(), outcome))
                .or_default();
            entry.0 += 1;
            entry.1 = entry.1.max(report.total);
        }
        Ok(())
    }
}

/// Orders: parses the JSON itself, reports a silent failure with `Mark`, can be slow or panic.
async fn orders(Extension(delivery): Extension<Delivery>, body: Bytes) -> impl IntoResponse {
    let order: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(ms) = order["work_ms"].as_u64() {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if order["explode"].as_bool() == Some(true) {
        panic!("bug in the order handler");
    }
    let Some(id) = order["order_id"].as_str() else {
        // The provider must not retry a payload that will never work, so answer 200, but tell
        // the monitoring the truth. (With the `axum` feature, return the `Mark` directly.)
        return (Extension(Mark::failed("missing order_id")), StatusCode::OK).into_response();
    };
    let items = order["items"].as_array().map_or(0, Vec::len);
    let mark = Mark::new().field("items", items);
    let id = format!("order {id} via delivery {}", delivery.id().unwrap_or("-"));
    (Extension(mark), id).into_response()
}

/// Payments: a typed `Json` extractor, and a downstream that can fail.
async fn payments(Json(payment): Json<Value>) -> StatusCode {
    if payment["amount"].as_u64() == Some(0) {
        StatusCode::SERVICE_UNAVAILABLE // the ledger refused it: the provider should retry
    } else if payment["api"].as_str() == Some("v1") {
        StatusCode::PERMANENT_REDIRECT // providers don't follow redirects: a failed delivery
    } else {
        StatusCode::NO_CONTENT
    }
}

fn app(reporter: Reporter) -> Router {
    let orders_policy = Policy::custom("orders")
        .provider("shop")
        .max_body_bytes(16 * 1024)
        .timeout_budget(Duration::from_millis(500))
        .delivery_id(Source::header("x-delivery-id"))
        .event_type(Source::header("x-event-type"));
    // Payments come from Stripe: signed, identified by the event id in the body, and processed
    // once however often Stripe retries (the in-memory store; `RedisStore` for a fleet).
    // The watchers alert on three failures in a row (five by default).
    let payments_policy = Policy::stripe(STRIPE_SECRET)
        .rename("payments")
        .timeout_budget(Duration::from_secs(3))
        .dedupe(MemoryStore::new())
        .watch(|w| w.consecutive_failures(3));
    Router::new()
        .route(
            "/webhooks/orders",
            post(orders).layer(WebhookMonitorLayer::new(orders_policy, reporter.clone())),
        )
        .route(
            "/webhooks/payments",
            post(payments).layer(WebhookMonitorLayer::new(payments_policy, reporter)),
        )
}

type Body = BoxBody<Bytes, std::io::Error>;

/// The demo's Stripe signing secret (a real route reads it from its configuration).
const STRIPE_SECRET: &str = "whsec_demo_secret";

/// How the tour signs a delivery.
#[derive(Clone, Copy, PartialEq)]
enum Signing {
    /// Correctly, now.
    Valid,
    /// With the wrong secret.
    Forged,
    /// Correctly, but an hour ago: a replay.
    Stale,
}

#[derive(Clone)]
struct Step {
    what: &'static str,
    path: &'static str,
    body: Vec<u8>,
    give_up_after: Option<Duration>,
    mid_body: MidBody,
    signing: Signing,
}

/// What the sender does after the body's first chunk.
#[derive(Clone, Copy, PartialEq)]
enum MidBody {
    /// Sends the rest at once.
    Nothing,
    /// Fails: the connection breaks.
    Breaks,
    /// Waits 700 ms, past the route's 500 ms budget, before the rest.
    Stalls,
}

fn step(what: &'static str, path: &'static str, body: impl Into<Vec<u8>>) -> Step {
    Step {
        what,
        path,
        body: body.into(),
        give_up_after: None,
        mid_body: MidBody::Nothing,
        signing: Signing::Valid,
    }
}

const ORDERS: &str = "/webhooks/orders";
const PAYMENTS: &str = "/webhooks/payments";

fn tour() -> Vec<Step> {
    let paid = r#"{"id":"evt_1","type":"payment_intent.succeeded","amount":1200}"#;
    vec![
        step(
            "a normal order",
            ORDERS,
            r#"{"order_id":"A-1","items":[1,2]}"#,
        ),
        step("a normal payment, signed by Stripe", PAYMENTS, paid),
        Step {
            signing: Signing::Forged,
            ..step("a payment with a forged signature", PAYMENTS, paid)
        },
        Step {
            signing: Signing::Stale,
            ..step("the same payment replayed an hour later", PAYMENTS, paid)
        },
        step(
            "Stripe retries the payment it already delivered",
            PAYMENTS,
            paid,
        ),
        step(
            "an order that takes 420 ms of its 500 ms budget",
            ORDERS,
            r#"{"order_id":"A-2","work_ms":420}"#,
        ),
        step(
            "an order answered after the provider gave up (600 ms)",
            ORDERS,
            r#"{"order_id":"A-3","work_ms":600}"#,
        ),
        step(
            "a payment the handler fails with 503",
            PAYMENTS,
            r#"{"id":"evt_3","type":"charge.failed","amount":0}"#,
        ),
        step("a payment that is not JSON", PAYMENTS, "amount=12"),
        step(
            "a payment to an endpoint that moved (308)",
            PAYMENTS,
            r#"{"id":"evt_4","type":"charge.succeeded","amount":5,"api":"v1"}"#,
        ),
        step(
            "a payment succeeds again: the alert resolves",
            PAYMENTS,
            r#"{"id":"evt_5","type":"charge.succeeded","amount":7}"#,
        ),
        step(
            "an order with no order_id: a silent failure behind a 200",
            ORDERS,
            r#"{"items":[]}"#,
        ),
        step(
            "a 20 KiB order on a 16 KiB route",
            ORDERS,
            vec![b' '; 20 * 1024],
        ),
        step(
            "an order that hits a bug",
            ORDERS,
            r#"{"order_id":"A-4","explode":true}"#,
        ),
        Step {
            give_up_after: Some(Duration::from_millis(100)),
            ..step(
                "an order whose sender hangs up after 100 ms",
                ORDERS,
                r#"{"order_id":"A-5","work_ms":2000}"#,
            )
        },
        Step {
            mid_body: MidBody::Breaks,
            ..step(
                "an order whose connection breaks mid-body",
                ORDERS,
                r#"{"order_id":"A-6","#,
            )
        },
        Step {
            mid_body: MidBody::Stalls,
            ..step(
                "an order whose sender stalls mid-body past the budget",
                ORDERS,
                r#"{"order_id":"A-7","items":[1]}"#,
            )
        },
    ]
}

/// The step's body: whole, or its first bytes followed by a broken stream or a long pause.
fn body_of(step: &Step) -> Body {
    let data = Bytes::from(step.body.clone());
    let (pause, rest) = match step.mid_body {
        MidBody::Nothing => {
            return Full::new(data)
                .map_err(|never: Infallible| match never {})
                .boxed()
        }
        // 50 ms after the first chunk the sender fails and the client aborts the request, so
        // the server sees the body break part-way.
        MidBody::Breaks => (
            Duration::from_millis(50),
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "sender crashed",
            )),
        ),
        // The rest comes 700 ms later: the layer has answered 408 at the route's deadline.
        MidBody::Stalls => (Duration::from_millis(700), Ok(Frame::data(data.slice(8..)))),
    };
    let first = match step.mid_body {
        MidBody::Stalls => data.slice(..8),
        _ => data,
    };
    let frames =
        futures_util::stream::iter([(Duration::ZERO, Ok(Frame::data(first))), (pause, rest)]);
    let frames = frames.then(|(wait, frame)| async move {
        tokio::time::sleep(wait).await;
        frame
    });
    BodyExt::boxed(StreamBody::new(frames))
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Body>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends `s` with the delivery id `id`, its Stripe event ids prefixed `evt` (the tour's `evt_`),
/// and says what came back.
async fn send_step(
    client: &HttpClient,
    addr: std::net::SocketAddr,
    s: &Step,
    id: &str,
    evt: &str,
) -> Result<String, webhook_monitor::BoxError> {
    let body = String::from_utf8_lossy(&s.body)
        .replace("evt_", evt)
        .into_bytes();
    let s = &Step { body, ..s.clone() };
    let mut req = http::Request::post(format!("http://{addr}{}", s.path))
        .header("x-delivery-id", id)
        .header("x-event-type", "order.created")
        .header("content-type", "application/json")
        .body(body_of(s))?;
    if s.path == PAYMENTS {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
        let (secret, at) = match s.signing {
            Signing::Valid => (STRIPE_SECRET, now.as_secs()),
            Signing::Forged => ("whsec_someone_else", now.as_secs()),
            Signing::Stale => (STRIPE_SECRET, now.as_secs() - 3600),
        };
        req.headers_mut()
            .extend(testing::stripe(secret, &s.body, at));
    }
    let call = client.request(req);
    Ok(match s.give_up_after {
        Some(limit) => match tokio::time::timeout(limit, call).await {
            Ok(res) => res?.status().to_string(),
            Err(_) => "no answer (client hung up)".to_owned(),
        },
        None if s.mid_body != MidBody::Nothing => match call.await {
            Ok(res) => res.status().to_string(),
            Err(_) => "no answer (request aborted)".to_owned(),
        },
        None => call.await?.status().to_string(),
    })
}

/// `--serve`: the tour again and again, one step every 1.5 s, with fresh ids each round.
async fn keep_traffic_flowing(addr: std::net::SocketAddr) {
    let client = client();
    for round in 1u64.. {
        for (i, s) in tour().into_iter().enumerate() {
            let id = format!("r{round}-d-{}", i + 1);
            // Failures are what this traffic is for; a lost answer is one more.
            let _ = send_step(&client, addr, &s, &id, &format!("evt_r{round}_")).await;
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
    }
}

/// The dashboard at `/_webhooks` on `history`, behind a token; returns the router and the URL
/// path that logs in.
#[cfg(feature = "dashboard")]
fn dashboard(history: webhook_monitor::history::MemoryHistory) -> (Router, String) {
    use webhook_monitor::dashboard::{Auth, Dashboard};
    let token = std::env::var("DASHBOARD_TOKEN").unwrap_or_else(|_| {
        // fastrand's generator is seeded from the OS: good enough for a demo on loopback.
        (0..4)
            .map(|_| format!("{:08x}", fastrand::u32(..)))
            .collect()
    });
    let router = Dashboard::new(history).auth(Auth::bearer(&*token)).router();
    (router, format!("/_webhooks?token={token}"))
}

#[tokio::main]
async fn main() -> Result<(), webhook_monitor::BoxError> {
    let serve_forever = std::env::args().any(|a| a == "--serve");
    // With the dashboard and `--serve`, deliveries show there and only alerts print.
    let quiet = serve_forever && cfg!(feature = "dashboard");
    // One line instead of a backtrace (none when quiet): the layer catches the handler's panic
    // and reports it.
    std::panic::set_hook(Box::new(move |info| {
        let at = info.location().map(ToString::to_string).unwrap_or_default();
        if !quiet {
            println!("  (a handler panicked at {at}; the layer caught it)");
        }
    }));
    let sink = PrintSink {
        quiet,
        ..PrintSink::default()
    };
    // With the dashboard, reports also go to the history it reads.
    #[cfg(feature = "dashboard")]
    let history = webhook_monitor::history::MemoryHistory::new();
    #[cfg(feature = "dashboard")]
    let reports = webhook_monitor::report::Fanout::new()
        .sink("print", sink.clone())
        .sink("history", history.clone());
    #[cfg(not(feature = "dashboard"))]
    let reports = sink.clone();
    let (reporter, guard) = Reporter::builder()
        .linger(Duration::from_millis(1))
        .spawn(reports);
    let addr = if serve_forever {
        "127.0.0.1:3000"
    } else {
        "127.0.0.1:0"
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    #[cfg(feature = "dashboard")]
    let (dashboard, login) = dashboard(history);
    #[cfg(feature = "dashboard")]
    let app = app(reporter.clone()).nest("/_webhooks", dashboard);
    #[cfg(not(feature = "dashboard"))]
    let app = app(reporter.clone());
    let server = tokio::spawn(axum::serve(listener, app).into_future());

    if serve_forever {
        tokio::spawn(keep_traffic_flowing(addr));
        println!(
            "webhook-monitor demo serving on http://{addr}; the tour's deliveries keep coming"
        );
        println!("every 1.5 s. Try your own:\n");
        println!("  curl -i -X POST http://{addr}/webhooks/orders -H 'x-delivery-id: d-1' \\\n       -d '{{\"order_id\":\"A-1\",\"items\":[1]}}'");
        println!("  curl -i -X POST http://{addr}/webhooks/orders -d '{{\"items\":[]}}'          # silent failure");
        println!("  curl -i -X POST http://{addr}/webhooks/orders -d '{{\"order_id\":\"A-2\",\"work_ms\":700}}'  # late");
        println!("  curl -i -X POST http://{addr}/webhooks/orders -d '{{\"order_id\":\"A-3\",\"explode\":true}}'  # panic");
        println!(
            "  curl -i -X POST http://{addr}/webhooks/payments -d '{{\"amount\":0}}'        # 401: not signed"
        );
        println!("  head -c 20000 /dev/zero | curl -i -X POST http://{addr}/webhooks/orders --data-binary @-  # 413");
        #[cfg(feature = "dashboard")]
        println!("\nThe dashboard (the token logs you in): http://{addr}{login}");
        #[cfg(not(feature = "dashboard"))]
        println!(
            "\nFor the dashboard, run: cargo run --example demo --features dashboard -- --serve"
        );
        println!("\nCtrl-C to stop.");
        tokio::signal::ctrl_c().await?;
    } else {
        println!("webhook-monitor demo: two monitored routes on http://{addr}\n");
        let client = client();
        for (i, s) in tour().into_iter().enumerate() {
            let answer = send_step(&client, addr, &s, &format!("d-{}", i + 1), "evt_").await?;
            println!("{:>2}. {:<62} -> {answer}", i + 1, s.what);
            // Let the report print under its step.
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    server.abort();
    drop(reporter);
    guard.shutdown(Duration::from_secs(5)).await?;
    println!(
        "\nSummary\n  {:<10} {:<28} {:>5} {:>12}",
        "route", "outcome", "count", "max total"
    );
    let tally = sink.tally.lock().unwrap_or_else(|e| e.into_inner());
    for ((route, outcome), (count, max)) in tally.iter() {
        println!(
            "  {route:<10} {outcome:<28} {count:>5} {:>12}",
            format!("{max:.1?}")
        );
    }
    Ok(())
}

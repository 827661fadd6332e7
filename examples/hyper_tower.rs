//! webhook-monitor without axum: a plain hyper 1 server (hyper-util's `TowerToHyperService`,
//! graceful shutdown) serving a tower `ServiceBuilder` stack, with tower-http's `TraceLayer`
//! outside, `WebhookMonitorLayer` on the webhook path only, tower-http's `TimeoutLayer` inside
//! it, and a `service_fn` handler.
//!
//! Run with `cargo run --example hyper_tower`. It serves a GitHub webhook endpoint on
//! 127.0.0.1 (an ephemeral port), sends itself a few signed deliveries with a real client (a
//! push, GitHub redelivering it, a push whose handler overruns its deadline, a forged
//! signature, and a scanner probing another path), prints each answer and its report, shuts
//! the server down gracefully, drains the reporter and exits.
//!
//! Run with `cargo run --example hyper_tower -- --serve` to keep serving on 127.0.0.1:3000;
//! Ctrl-C shuts down gracefully.

use std::{
    convert::Infallible, future::Future, io::IsTerminal, net::SocketAddr, pin::pin, time::Duration,
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::{TokioExecutor, TokioIo},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
use tower_http::{
    timeout::TimeoutLayer,
    trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer},
};
use tracing::Level;
use webhook_monitor::{
    dedupe::MemoryStore,
    report::{MemorySink, Reporter},
    testing, Delivery, Mark, Policy, WebhookBody, WebhookMonitorLayer,
};

/// The example's GitHub webhook secret (a real server reads it from its configuration).
const SECRET: &str = "github-demo-secret";

/// The webhook endpoint's path.
const PATH: &str = "/webhooks/github";

/// How long the handler may run before `TimeoutLayer` answers `503` for it. GitHub waits 10 s
/// for an answer: a real server cuts its handler a little before, say at 9 s, so that GitHub
/// gets a `503` (and retries) rather than a closed connection. Short here, to show it quickly.
const HANDLER_DEADLINE: Duration = Duration::from_millis(500);

/// The response body of every layer in the stack. `WebhookMonitorLayer` and `TimeoutLayer`
/// answer with `ResBody::default()`, so it must implement `Default`, as `Full` does.
type ResBody = Full<Bytes>;

/// The webhook handler: a plain async fn on the buffered body, no framework.
async fn github(req: Request<WebhookBody>) -> Result<Response<ResBody>, Infallible> {
    // What the layer learned about the delivery (id, event, signature) rides in the extensions.
    let event = req
        .extensions()
        .get::<Delivery>()
        .and_then(|d| d.event_type().map(str::to_owned));
    // `WebhookBody` cannot fail: the layer has already read and verified it.
    let Ok(body) = req.into_body().collect().await;
    let push: serde_json::Value = serde_json::from_slice(&body.to_bytes()).unwrap_or_default();
    if push["slow"].as_bool() == Some(true) {
        // A downstream that hangs: `TimeoutLayer` gives up on it at HANDLER_DEADLINE.
        tokio::time::sleep(HANDLER_DEADLINE * 4).await;
    }
    let commits = push["commits"].as_array().map_or(0, Vec::len);
    let mut res = Response::new(Full::from(format!(
        "{} with {commits} commit(s) processed",
        event.as_deref().unwrap_or("event")
    )));
    // Custom fields for the report, without the `axum` feature: a `Mark` in the extensions.
    res.extensions_mut()
        .insert(Mark::new().field("commits", commits));
    Ok(res)
}

/// The whole server: the webhook stack on its path, `404` elsewhere, all of it traced.
///
/// The monitor wraps the webhook path only, as axum's `route_layer` would: wrapped around the
/// whole server it would check every stray request against GitHub's policy, answer it `401`
/// and report it as a rejected GitHub delivery.
fn app(
    reporter: Reporter,
) -> impl Service<
    Request<Incoming>,
    Response = Response<impl http_body::Body<Data = Bytes, Error = Infallible> + Send + 'static>,
    Error = Infallible,
    Future = impl Future + Send + 'static,
> + Clone
       + Send
       + 'static {
    let policy = Policy::github(SECRET).dedupe(MemoryStore::new());
    let webhooks = ServiceBuilder::new()
        .layer(WebhookMonitorLayer::new(policy, reporter))
        // Inside the monitor, so the monitor sees the timeout's `503`: the delivery is
        // reported as a server error, with the handler's time, and its dedupe claim is
        // released so GitHub's retry runs. Outside the monitor, the timeout would drop the
        // monitor's future instead, and the delivery would be reported as `cancelled`.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            HANDLER_DEADLINE,
        ))
        .service_fn(github);
    ServiceBuilder::new()
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .service(service_fn(move |req: Request<Incoming>| {
            let webhooks = webhooks.clone();
            async move {
                if req.method() == Method::POST && req.uri().path() == PATH {
                    webhooks.oneshot(req).await
                } else {
                    let mut res = Response::new(ResBody::default());
                    *res.status_mut() = StatusCode::NOT_FOUND;
                    Ok(res)
                }
            }
        }))
}

/// Serves `app` on `listener` until `stop` completes, then stops accepting and lets the
/// requests in flight finish (for at most 10 s).
async fn serve<S, B>(listener: TcpListener, app: S, stop: impl Future<Output = ()>)
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes, Error = Infallible> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let mut stop = pin!(stop);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors, usually: wait a moment rather than spin.
                    eprintln!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let conn = http1::Builder::new()
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                eprintln!("connection error: {e}");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(10)) => {
            eprintln!("requests still running after 10 s; stopping anyway");
        }
    }
}

/// One delivery of the tour: GitHub's delivery id, the body, the secret it is signed with.
struct Step {
    what: &'static str,
    path: &'static str,
    id: &'static str,
    body: &'static [u8],
    secret: &'static str,
}

const fn step(what: &'static str, id: &'static str, body: &'static [u8]) -> Step {
    Step {
        what,
        path: PATH,
        id,
        body,
        secret: SECRET,
    }
}

/// Sends `step`, signed as GitHub signs a push, and returns the status.
async fn deliver(
    client: &Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
    step: &Step,
) -> Result<StatusCode, webhook_monitor::BoxError> {
    let mut req = Request::post(format!("http://{addr}{}", step.path))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(step.body)))?;
    req.headers_mut()
        .extend(testing::github(step.secret, step.body, step.id, "push"));
    Ok(client.request(req).await?.status())
}

#[tokio::main]
async fn main() -> Result<(), webhook_monitor::BoxError> {
    let serve_forever = std::env::args().any(|a| a == "--serve");
    // TraceLayer's spans and events, on stdout beside the example's own lines.
    tracing_subscriber::fmt()
        .with_ansi(std::io::stdout().is_terminal())
        .with_target(false)
        .without_time()
        .init();

    let sink = MemorySink::new();
    let (reporter, guard) = Reporter::builder()
        .linger(Duration::from_millis(1))
        .spawn(sink.clone());
    let addr = if serve_forever {
        "127.0.0.1:3000"
    } else {
        "127.0.0.1:0"
    };
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, app(reporter.clone()), async {
        let _ = stop_rx.await;
    }));

    if serve_forever {
        println!("serving http://{addr}{PATH}; Ctrl-C to stop. Try (unsigned, so 401):");
        println!("  curl -i -X POST http://{addr}{PATH} -d '{{}}'");
        tokio::signal::ctrl_c().await?;
    } else {
        println!("hyper + tower stack serving http://{addr}{PATH}\n");
        let client = Client::builder(TokioExecutor::new()).build_http();
        let push = br#"{"ref":"refs/heads/main","commits":[{"id":"a1"},{"id":"b2"}]}"#;
        let steps = [
            step("a push", "d-1", push),
            step("GitHub redelivers it", "d-1", push),
            step("a push whose handler overruns", "d-2", br#"{"slow":true}"#),
            Step {
                secret: "not-the-secret",
                ..step(
                    "a push with a forged signature",
                    "d-3",
                    br#"{"ref":"evil"}"#,
                )
            },
            Step {
                path: "/wp-login.php",
                ..step("a scanner probing another path", "-", b"{}")
            },
        ];
        for step in &steps {
            let seen = sink.len();
            let status = deliver(&client, addr, step).await?;
            println!("{:<32} -> {status}", step.what);
            let reports = sink.wait_for(seen + 1, Duration::from_millis(200)).await;
            match reports.get(seen).and_then(|r| r.as_delivery()) {
                Some(report) => {
                    println!("    report: {report}");
                    for field in &report.fields {
                        // `FieldValue` serializes as in the JSON reports.
                        let value = serde_json::to_string(&field.value)?;
                        println!("    handler's field: {} = {value}", field.name);
                    }
                    println!();
                }
                None => println!("    no report: the monitor wraps {PATH} only\n"),
            }
        }
    }

    // Stop accepting, let requests in flight finish, then send every queued report.
    let _ = stop_tx.send(());
    server.await?;
    guard.shutdown(Duration::from_secs(5)).await?;
    let stats = reporter.stats();
    println!(
        "reporter: {} reports queued, {} dropped",
        stats.enqueued,
        stats.dropped_full + stats.dropped_closed
    );
    Ok(())
}

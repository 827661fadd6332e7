//! The HTTP sinks against real servers on loopback: the exact requests each sink sends, and the
//! transport's behaviour when the backend fails (5xx, 429, hangs, resets, down, refusals), with
//! the sinks' counters checked after each.
#![cfg(all(feature = "http", feature = "axum"))]
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use axum::{
    extract::State,
    response::{IntoResponse, Response},
    routing::post,
    Router,
};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::{json, Value};
use tokio::{io::AsyncReadExt, net::TcpListener, sync::Notify, time::Instant};
use webhook_monitor::{
    dedupe::MemoryStore,
    provider::Source,
    report::{
        http::{
            HealthchecksSink, HttpSinkError, HttpTransport, JsonHttpSink, RetryPolicy, SeiriMode,
            SeiriSink, SlackSink,
        },
        Fanout, MemorySink, Report, Reporter, Sink, SinkError, SinkHealth, SinkOptions,
    },
    Policy,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---------------------------------------------------------------------------------------------
// The backend: records every request, answers from a script (200 once the script is empty).

#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
    /// The status answered; `None` for a request left hanging.
    answered: Option<u16>,
}

impl Seen {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

#[derive(Debug, Clone)]
enum Answer {
    Status(u16),
    /// A status with `Retry-After: <value>`.
    RetryAfter(u16, &'static str),
    /// A status with `Retry-After: <HTTP date this many seconds after the answer>`.
    RetryAt(u16, u64),
    /// A status with a body.
    Body(u16, &'static str),
    /// Never answers.
    Hang,
}

#[derive(Clone, Default)]
struct Backend {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    arrived: Arc<Notify>,
}

impl Backend {
    fn new(script: impl IntoIterator<Item = Answer>) -> Self {
        let backend = Self::default();
        backend.script.lock().unwrap().extend(script);
        backend
    }

    fn router(&self) -> Router {
        Router::new().fallback(record).with_state(self.clone())
    }

    async fn serve(&self) -> SocketAddr {
        common::serve(self.router()).await
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Requests answered 2xx: what was delivered.
    fn delivered(&self) -> Vec<Seen> {
        let ok = |s: &Seen| s.answered.is_some_and(|a| (200..300).contains(&a));
        self.seen().into_iter().filter(ok).collect()
    }

    async fn wait_for(&self, n: usize) -> Vec<Seen> {
        let wait = async {
            loop {
                let arrived = self.arrived.notified();
                if self.seen.lock().unwrap().len() >= n {
                    return;
                }
                arrived.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .expect("requests arrived");
        self.seen()
    }
}

async fn record(
    State(backend): State<Backend>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = backend.script.lock().unwrap().pop_front();
    let status = |s: u16| StatusCode::from_u16(s).unwrap();
    let (answered, response) = match answer {
        None => (Some(200), StatusCode::OK.into_response()),
        Some(Answer::Status(s)) => (Some(s), status(s).into_response()),
        Some(Answer::RetryAfter(s, v)) => {
            (Some(s), (status(s), [("retry-after", v)]).into_response())
        }
        Some(Answer::RetryAt(s, secs)) => {
            let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(secs));
            (Some(s), (status(s), [("retry-after", at)]).into_response())
        }
        Some(Answer::Body(s, b)) => (Some(s), (status(s), b).into_response()),
        Some(Answer::Hang) => (None, StatusCode::OK.into_response()),
    };
    backend.seen.lock().unwrap().push(Seen {
        method,
        path: uri.to_string(),
        headers,
        body,
        at: Instant::now(),
        answered,
    });
    backend.arrived.notify_waiters();
    if answered.is_none() {
        std::future::pending::<()>().await;
    }
    response
}

// ---------------------------------------------------------------------------------------------
// Reports, made by running real requests through the layer.

/// Sends one delivery per `(id, status)` through a route named `route` (the handler answers
/// `status`), and returns every report the reporter produced, alerts included.
async fn reports(policy: Policy, deliveries: &[(&str, u16)]) -> Vec<Report> {
    let routes = Router::new().route(
        "/hook",
        post(|body: String| async move { StatusCode::from_u16(body.parse().unwrap()).unwrap() }),
    );
    let policy = policy.delivery_id(Source::header("x-id"));
    let m = common::monitored(policy, routes).await;
    for (id, status) in deliveries {
        common::send(
            &m.url("/hook"),
            common::full(status.to_string()),
            &[("x-id", id)],
        )
        .await;
    }
    m.sink
        .wait_for(deliveries.len(), Duration::from_secs(5))
        .await;
    m.guard.shutdown(Duration::from_secs(5)).await.unwrap();
    m.sink.reports()
}

/// `n` successful deliveries on route `orders`, with ids `d0`, `d1`…
async fn deliveries(n: usize) -> Vec<Report> {
    let ids: Vec<String> = (0..n).map(|i| format!("d{i}")).collect();
    let script: Vec<(&str, u16)> = ids.iter().map(|id| (id.as_str(), 200)).collect();
    reports(Policy::custom("orders"), &script).await
}

/// A health report, from a reporter ticking fast.
async fn health_report() -> Report {
    let sink = MemorySink::new();
    let (reporter, guard) = Reporter::builder()
        .health_interval(Some(ms(10)))
        .spawn(sink.clone());
    let report = sink.wait_for(1, Duration::from_secs(5)).await[0].clone();
    drop(reporter);
    guard.shutdown(Duration::from_secs(1)).await.unwrap();
    report
}

fn delivery_ids(seen: &[Seen]) -> Vec<String> {
    let mut ids: Vec<String> = seen
        .iter()
        .flat_map(|s| s.json().as_array().unwrap().clone())
        .map(|r| r["delivery_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

// ---------------------------------------------------------------------------------------------
// Sinks and transports.

/// Fast retries for tests: a few ms between attempts, a 3 s window, no breaker unless asked.
fn retry() -> RetryPolicy {
    RetryPolicy::default()
        .initial_backoff(ms(10))
        .max_backoff(ms(40))
        .window(Duration::from_secs(3))
        .open_after(1000)
}

fn transport(timeout: Duration, retry: RetryPolicy) -> HttpTransport {
    HttpTransport::builder()
        .timeout(timeout)
        .retry(retry)
        .build()
        .unwrap()
}

fn json_sink(addr: SocketAddr, retry: RetryPolicy) -> JsonHttpSink {
    let url = format!("http://{addr}/ingest");
    JsonHttpSink::new(&transport(ms(300), retry), &url).unwrap()
}

fn health(sink: &impl Sink) -> SinkHealth {
    let mut health = sink.health();
    assert_eq!(health.len(), 1);
    health.remove(0)
}

/// Every report the sink took on is settled: sent, failed or dropped, none still queued.
fn assert_settled(h: &SinkHealth) {
    assert_eq!(h.sent + h.failed + h.dropped, h.accepted, "{h:?}");
    assert_eq!(h.queued, 0, "{h:?}");
}

/// Fails the test instead of hanging it.
async fn bounded<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("bounded in time")
}

async fn deliver(sink: &impl Sink, batch: &[Report]) -> Result<(), SinkError> {
    bounded(sink.send(batch)).await
}

fn http_error(error: &SinkError) -> &HttpSinkError {
    std::error::Error::source(error)
        .and_then(|e| e.downcast_ref::<HttpSinkError>())
        .expect("an HttpSinkError")
}

// ---------------------------------------------------------------------------------------------
// Each sink's requests.

#[tokio::test]
async fn json_sink_posts_each_batch_as_one_json_array_with_its_headers() {
    let backend = Backend::default();
    let addr = backend.serve().await;
    let batch = reports(Policy::custom("orders"), &[("a", 200), ("b", 500)]).await;
    let sink = JsonHttpSink::new(
        &transport(ms(300), retry()),
        &format!("http://{addr}/v1/in"),
    )
    .unwrap()
    .bearer_token("t0k3n")
    .unwrap()
    .header("x-tenant", "acme")
    .unwrap();

    deliver(&sink, &batch).await.unwrap();
    deliver(&sink, &[]).await.unwrap(); // nothing to send: no request

    let seen = backend.seen();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.method, Method::POST);
    assert_eq!(request.path, "/v1/in");
    assert_eq!(request.header("content-type"), "application/json");
    assert_eq!(request.header("authorization"), "Bearer t0k3n");
    assert_eq!(request.header("x-tenant"), "acme");
    assert!(request.header("user-agent").starts_with("webhook-monitor/"));
    assert_eq!(request.json(), serde_json::to_value(&batch).unwrap());

    let h = health(&sink);
    assert_eq!(h.name, "127.0.0.1");
    assert_eq!((h.accepted, h.sent, h.failed, h.retries), (2, 2, 0, 0));
    assert!(h.latency.is_some() && !h.down);
    assert_settled(&h);
    let debug = format!("{sink:?}");
    assert!(!debug.contains("t0k3n") && !debug.contains("acme") && !debug.contains("/v1/in"));
}

/// Route `orders` (ref `orders ref`, with a space to see it encoded): a success, its duplicate,
/// a failure, which opens an alert. Route `billing` (the default ref): a success.
async fn seiri_reports() -> Vec<Report> {
    let orders = Policy::custom("orders")
        .dedupe(MemoryStore::new())
        .watch(|w| w.consecutive_failures(1));
    let mut batch = reports(orders, &[("a", 200), ("a", 200), ("b", 500)]).await;
    batch.extend(reports(Policy::custom("billing"), &[("c", 200)]).await);
    let outcomes: Vec<_> = batch
        .iter()
        .map(|r| match r {
            Report::Delivery(d) => d.outcome.as_str(),
            _ => "alert",
        })
        .collect();
    assert_eq!(
        outcomes,
        ["success", "duplicate", "failure", "alert", "success"]
    );
    batch
}

fn seiri_sink(addr: SocketAddr, mode: SeiriMode) -> SeiriSink {
    SeiriSink::new(&transport(ms(300), retry()), "default-ref")
        .base_url(&format!("http://{addr}/api/"))
        .unwrap()
        .route("orders", "orders ref")
        .mode(mode)
}

#[tokio::test]
async fn seiri_ping_mode_pings_success_or_fail_per_delivery_to_its_route_ref() {
    let backend = Backend::default();
    let sink = seiri_sink(backend.serve().await, SeiriMode::Ping);
    let batch = seiri_reports().await;

    deliver(&sink, &batch).await.unwrap();

    let mut pings: Vec<(Method, String, Bytes)> = backend
        .seen()
        .into_iter()
        .map(|s| (s.method, s.path, s.body))
        .collect();
    pings.sort_by(|a, b| a.1.cmp(&b.1)); // sent concurrently: in any order
    let get = |path: &str| (Method::GET, path.to_owned(), Bytes::new());
    assert_eq!(
        pings,
        [
            get("/api/default-ref/success"),
            get("/api/orders%20ref/fail"),
            get("/api/orders%20ref/success"),
            get("/api/orders%20ref/success"),
        ]
    );
    // The alert is not pinged, nor counted.
    let h = health(&sink);
    assert_eq!((h.name.as_ref(), h.accepted, h.sent), ("seiri", 4, 4));
    assert_settled(&h);
}

#[tokio::test]
async fn seiri_post_mode_posts_each_report_to_its_route_ref() {
    let backend = Backend::default();
    let sink = seiri_sink(backend.serve().await, SeiriMode::Post);
    let mut batch = seiri_reports().await;
    batch.push(health_report().await);

    deliver(&sink, &batch).await.unwrap();

    let mut posts: Vec<(String, Value)> = backend
        .seen()
        .iter()
        .map(|s| {
            assert_eq!(s.method, Method::POST);
            assert_eq!(s.header("content-type"), "application/json");
            (s.path.clone(), s.json())
        })
        .collect();
    let to_json = |r: &Report| serde_json::to_value(r).unwrap();
    let orders = "/api/orders%20ref".to_owned();
    let default = "/api/default-ref".to_owned();
    let mut expected = vec![
        (orders.clone(), to_json(&batch[0])),
        (orders.clone(), to_json(&batch[1])),
        (orders.clone(), to_json(&batch[2])),
        (orders, to_json(&batch[3])), // the alert, by its route
        (default.clone(), to_json(&batch[4])),
        (default, to_json(&batch[5])), // the health report
    ];
    let key = |p: &(String, Value)| (p.0.clone(), p.1.to_string());
    posts.sort_by_key(key);
    expected.sort_by_key(key);
    assert_eq!(posts, expected);
    let h = health(&sink);
    assert_eq!((h.accepted, h.sent), (6, 6));
    assert_settled(&h);
}

#[tokio::test]
async fn seiri_batch_mode_posts_one_metrics_batch_per_ref_with_its_flush_reason() {
    let backend = Backend::default();
    let sink = seiri_sink(backend.serve().await, SeiriMode::Batch).batch_size(6);
    let mut batch = seiri_reports().await;
    batch.push(health_report().await);
    let to_json = |reports: &[&Report]| serde_json::to_value(reports).unwrap();

    // Six reports: a full batch.
    deliver(&sink, &batch).await.unwrap();
    let mut seen = backend.wait_for(2).await;
    seen.sort_by(|a, b| a.path.cmp(&b.path));
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["/api/default-ref", "/api/orders%20ref"]);
    assert_eq!(
        seen[0].json(),
        json!({"metrics_batch": to_json(&[&batch[4], &batch[5]]), "batch_size": 2, "flush_reason": "size"})
    );
    assert_eq!(
        seen[1].json(),
        json!({
            "metrics_batch": to_json(&[&batch[0], &batch[1], &batch[2], &batch[3]]),
            "batch_size": 4,
            "flush_reason": "size",
        })
    );
    assert!(seen
        .iter()
        .all(|s| s.method == Method::POST && s.header("content-type") == "application/json"));

    // One report: cut by time.
    deliver(&sink, &batch[4..5]).await.unwrap();
    let seen = backend.wait_for(3).await;
    assert_eq!(seen[2].path, "/api/default-ref");
    assert_eq!(
        seen[2].json(),
        json!({"metrics_batch": to_json(&[&batch[4]]), "batch_size": 1, "flush_reason": "interval"})
    );

    // The reporter stops.
    bounded(sink.close()).await;
    let seen = backend.wait_for(4).await;
    assert_eq!(seen[3].path, "/api/default-ref");
    assert_eq!(
        seen[3].json(),
        json!({"metrics_batch": [], "batch_size": 0, "flush_reason": "shutdown"})
    );
    let h = health(&sink);
    assert_eq!((h.accepted, h.sent), (7, 7));
    assert_settled(&h);
}

#[tokio::test]
async fn healthchecks_pings_each_route_at_most_once_per_interval_with_a_summary() {
    let backend = Backend::default();
    let addr = backend.serve().await;
    let interval = ms(400);
    let sink = HealthchecksSink::new(&transport(ms(300), retry()), &format!("http://{addr}/hc"))
        .unwrap()
        .check("orders", "0b5e-uuid")
        .check("billing", "billing-slug")
        .interval(interval);
    let orders = Policy::custom("orders")
        .dedupe(MemoryStore::new())
        .watch(|w| w.consecutive_failures(1));
    let first = reports(orders.clone(), &[("a", 200), ("b", 200)]).await;
    let second = reports(orders, &[("c", 200), ("c", 200), ("d", 500)]).await;
    let billing = reports(Policy::custom("billing"), &[("e", 200)]).await;
    let misc = Policy::custom("misc").watch(|w| w.consecutive_failures(1));
    let unmapped = reports(misc, &[("f", 500)]).await;
    let text = |s: &Seen| (s.method.clone(), s.path.clone(), s.text().to_owned());
    let ping = |path: &str, body: &str| (Method::POST, path.to_owned(), body.to_owned());

    // A route's first deliveries are pinged at once.
    deliver(&sink, &first).await.unwrap();
    let seen = backend.wait_for(1).await;
    assert_eq!(
        text(&seen[0]),
        ping("/hc/0b5e-uuid", "deliveries: 2 (success=2)")
    );
    assert_eq!(seen[0].header("content-type"), "text/plain; charset=utf-8");

    // Within the interval: `orders` waits; `billing`'s first ping goes; `misc` has no check.
    let batch: Vec<Report> = [second, billing, unmapped].concat();
    assert_eq!(batch.iter().filter(|r| r.as_alert().is_some()).count(), 2);
    deliver(&sink, &batch).await.unwrap();
    let seen = backend.wait_for(2).await;
    assert_eq!(
        text(&seen[1]),
        ping("/hc/billing-slug", "deliveries: 1 (success=1)")
    );
    assert_eq!(health(&sink).queued, 3);

    // The interval has passed: the next batch (a health report, say) flushes `orders`.
    tokio::time::sleep(interval).await;
    deliver(&sink, &[health_report().await]).await.unwrap();
    let seen = backend.wait_for(3).await;
    assert_eq!(
        text(&seen[2]),
        ping(
            "/hc/0b5e-uuid/fail",
            "deliveries: 3 (duplicate=1 failure=1 success=1)"
        )
    );
    assert!(seen[2].at - seen[0].at >= interval);

    // Deliveries too recent to ping when the reporter stops are dropped, and counted.
    deliver(&sink, &first).await.unwrap();
    bounded(sink.close()).await;
    assert_eq!(backend.seen().len(), 3);
    let h = health(&sink);
    assert_eq!(h.name, "healthchecks");
    assert_eq!((h.accepted, h.sent, h.dropped), (8, 6, 2));
    assert_settled(&h);
}

#[tokio::test]
async fn slack_posts_one_message_per_alert_and_drops_alerts_past_its_rate_limit() {
    let backend = Backend::default();
    let addr = backend.serve().await;
    let min_interval = ms(300);
    let sink = SlackSink::new(
        &transport(ms(300), retry()),
        &format!("http://{addr}/services/T0/B0/secret"),
    )
    .unwrap()
    .min_interval(min_interval);
    // Two routes fail, and each opens an alert. `<&>` in a name, to see it escaped.
    let failing = |route: &str| Policy::custom(route).watch(|w| w.consecutive_failures(1));
    let mut batch = reports(failing("orders<&>"), &[("a", 500)]).await;
    batch.extend(reports(failing("billing"), &[("b", 500)]).await);
    let alerts: Vec<_> = batch.iter().filter_map(Report::as_alert).collect();
    assert_eq!(alerts.len(), 2);
    let expected = |alert: &webhook_monitor::watch::Alert, tail: &str| {
        let line = format!(":rotating_light: {alert} (kind: consecutive_failures){tail}");
        json!({ "text": line.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;") })
    };
    assert!(expected(alerts[0], "")["text"]
        .as_str()
        .unwrap()
        .starts_with(
            ":rotating_light: [critical] orders&lt;&amp;&gt;: consecutive failures (opened)"
        ));

    // Deliveries are ignored; the second alert comes too soon and is dropped.
    deliver(&sink, &batch).await.unwrap();
    let seen = backend.wait_for(1).await;
    assert_eq!(seen[0].method, Method::POST);
    assert_eq!(seen[0].path, "/services/T0/B0/secret");
    assert_eq!(seen[0].header("content-type"), "application/json");
    assert_eq!(seen[0].json(), expected(alerts[0], ""));

    // The next message, past the interval, says what was dropped.
    tokio::time::sleep(min_interval).await;
    deliver(&sink, &batch[3..]).await.unwrap(); // `billing`'s alert again
    let seen = backend.wait_for(2).await;
    let tail = "\n_1 more alerts were dropped by the rate limit since the previous message_";
    assert_eq!(seen[1].json(), expected(alerts[1], tail));
    assert!(seen[1].at - seen[0].at >= min_interval);

    let h = health(&sink);
    assert_eq!(
        (h.name.as_ref(), h.accepted, h.sent, h.dropped),
        ("slack", 3, 2, 1)
    );
    assert_settled(&h);
    assert!(!format!("{sink:?}").contains("secret"));
}

// ---------------------------------------------------------------------------------------------
// Faults.

#[tokio::test]
async fn server_errors_are_retried_until_the_backend_recovers() {
    use Answer::Status;
    let backend = Backend::new([Status(500), Status(503), Status(502)]);
    let sink = json_sink(backend.serve().await, retry());
    let batch = deliveries(3).await;

    deliver(&sink, &batch).await.unwrap();

    let seen = backend.seen();
    let answers: Vec<_> = seen.iter().map(|s| s.answered.unwrap()).collect();
    assert_eq!(answers, [500, 503, 502, 200]);
    assert!(
        seen.iter().all(|s| s.body == seen[0].body),
        "the same batch each time"
    );
    assert_eq!(delivery_ids(&backend.delivered()), ["d0", "d1", "d2"]);
    let h = health(&sink);
    assert_eq!(
        (h.sent, h.failed, h.retries, h.consecutive_failures),
        (3, 0, 3, 0)
    );
    assert_settled(&h);
}

#[tokio::test]
async fn retry_after_is_honoured_in_seconds_and_as_an_http_date() {
    let backend = Backend::new([Answer::RetryAfter(429, "1"), Answer::RetryAt(503, 2)]);
    let sink = json_sink(backend.serve().await, retry());

    deliver(&sink, &deliveries(1).await).await.unwrap();

    let seen = backend.seen();
    assert_eq!(seen.len(), 3);
    let first_wait = seen[1].at - seen[0].at;
    assert!(
        first_wait >= ms(1000) && first_wait < ms(1500),
        "{first_wait:?}"
    );
    // An HTTP date has whole seconds: "2 s from now" is between 1 and 2 s away.
    let second_wait = seen[2].at - seen[1].at;
    assert!(
        second_wait >= ms(1000) && second_wait < ms(2500),
        "{second_wait:?}"
    );
    assert_settled(&health(&sink));
}

#[tokio::test]
async fn a_retry_after_past_the_window_gives_up_at_once() {
    // The largest delay-seconds there is: no overflow either.
    let backend = Backend::new([Answer::RetryAfter(429, "18446744073709551615")]);
    let sink = json_sink(backend.serve().await, retry().window(ms(1000)));
    let started = Instant::now();

    let error = deliver(&sink, &deliveries(2).await).await.unwrap_err();

    assert!(started.elapsed() < ms(500));
    assert!(matches!(
        http_error(&error),
        HttpSinkError::GaveUp {
            attempts: 1,
            status: Some(StatusCode::TOO_MANY_REQUESTS),
            ..
        }
    ));
    assert_eq!(backend.seen().len(), 1);
    let h = health(&sink);
    assert_eq!((h.sent, h.failed, h.retries), (0, 2, 0));
    assert_settled(&h);
}

#[tokio::test]
async fn a_backend_failing_for_the_whole_window_fails_the_batch() {
    let backend = Backend::new(std::iter::repeat_n(Answer::Status(503), 1000));
    let sink = json_sink(backend.serve().await, retry().window(ms(400)));
    let started = Instant::now();

    let error = deliver(&sink, &deliveries(2).await).await.unwrap_err();

    assert!(
        started.elapsed() <= ms(400 + 300),
        "{:?}",
        started.elapsed()
    );
    let HttpSinkError::GaveUp {
        attempts, status, ..
    } = http_error(&error)
    else {
        panic!("{error:?}")
    };
    assert_eq!(*status, Some(StatusCode::SERVICE_UNAVAILABLE));
    assert!(*attempts >= 3 && *attempts as usize == backend.seen().len());
    let h = health(&sink);
    assert_eq!((h.sent, h.failed), (0, 2));
    assert_eq!(h.retries, u64::from(*attempts) - 1);
    assert_settled(&h);
}

#[tokio::test]
async fn a_hanging_backend_times_out_and_is_retried() {
    let backend = Backend::new([Answer::Hang]);
    let sink = json_sink(backend.serve().await, retry()); // 300 ms per attempt
    let started = Instant::now();

    deliver(&sink, &deliveries(2).await).await.unwrap();

    assert!(started.elapsed() >= ms(300));
    let seen = backend.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen[1].at - seen[0].at >= ms(300));
    assert_eq!(delivery_ids(&backend.delivered()), ["d0", "d1"]);
    let h = health(&sink);
    assert_eq!((h.sent, h.retries), (2, 1));
    assert_settled(&h);
}

#[tokio::test]
async fn a_connection_reset_without_an_answer_is_retried() {
    let backend = Backend::default();
    // The first two connections read the request and are dropped unanswered; then the same
    // listener serves the backend.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = backend.router();
    tokio::spawn(async move {
        for _ in 0..2 {
            let (mut stream, _) = listener.accept().await.unwrap();
            let _ = stream.read(&mut [0; 64]).await;
            drop(stream);
        }
        axum::serve(listener, router).await.unwrap();
    });
    let sink = json_sink(addr, retry());

    deliver(&sink, &deliveries(2).await).await.unwrap();

    assert_eq!(backend.seen().len(), 1);
    assert_eq!(delivery_ids(&backend.delivered()), ["d0", "d1"]);
    let h = health(&sink);
    assert_eq!((h.sent, h.retries), (2, 2));
    assert_settled(&h);
}

#[tokio::test]
async fn a_backend_down_at_start_gets_every_report_once_it_is_up() {
    // A port nobody listens on, for now.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let sink = Arc::new(json_sink(addr, retry()));
    let (reporter, guard) = Reporter::builder()
        .batch_size(5)
        .linger(ms(1))
        .sink_timeout(Duration::from_secs(5))
        .health_interval(None)
        .spawn(Arc::clone(&sink));
    let batch = deliveries(20).await;
    for report in &batch {
        reporter.try_report(report.clone());
    }

    tokio::time::sleep(ms(500)).await;
    assert!(health(&sink).retries > 0, "connection refused, retried");
    let backend = Backend::default();
    let listener = TcpListener::bind(addr).await.unwrap();
    let router = backend.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    guard.shutdown(Duration::from_secs(5)).await.unwrap();

    let expected: Vec<String> = {
        let mut ids: Vec<String> = (0..20).map(|i| format!("d{i}")).collect();
        ids.sort();
        ids
    };
    assert_eq!(delivery_ids(&backend.seen()), expected, "each once");
    let stats = reporter.stats();
    assert_eq!((stats.sent, stats.failed), (20, 0));
    let h = health(&sink);
    assert_eq!((h.accepted, h.sent, h.failed), (20, 20, 0));
    assert_settled(&h);
}

#[tokio::test] // current_thread: the subscriber set below sees the sink's events
async fn a_refused_report_is_not_retried_and_is_counted_failed_and_logged_once() {
    let (logs, _default) = common::SharedBuf::capture_logs();
    let backend = Backend::new([Answer::Body(400, "no such field: x"), Answer::Status(422)]);
    let sink = json_sink(backend.serve().await, retry());
    let batch = deliveries(2).await;

    let first = deliver(&sink, &batch).await.unwrap_err();
    let second = deliver(&sink, &batch).await.unwrap_err();

    assert!(matches!(
        http_error(&first),
        HttpSinkError::Refused(StatusCode::BAD_REQUEST)
    ));
    assert!(matches!(
        http_error(&second),
        HttpSinkError::Refused(StatusCode::UNPROCESSABLE_ENTITY)
    ));
    assert_eq!(backend.seen().len(), 2, "no retry");
    let h = health(&sink);
    assert_eq!(
        (h.sent, h.failed, h.retries, h.consecutive_failures),
        (0, 4, 0, 0)
    );
    assert!(!h.down);
    assert_settled(&h);
    let logs = logs.text();
    assert_eq!(
        logs.matches("backend refused a report").count(),
        1,
        "{logs}"
    );
    assert!(logs.contains("WARN webhook_monitor::report"), "{logs}");
    assert!(
        logs.contains("status=400") && logs.contains("no such field: x"),
        "{logs}"
    );
    assert!(!logs.contains("/ingest"), "no URL in logs: {logs}");
}

#[tokio::test]
async fn the_breaker_opens_after_failures_in_a_row_then_lets_one_probe_through() {
    use Answer::Status;
    // Three failures open the breaker; the first probe fails; the second succeeds.
    let backend = Backend::new([Status(500), Status(500), Status(500), Status(500)]);
    let probe_after = ms(400);
    let policy = retry().open_after(3).probe_after(probe_after);
    let sink = Arc::new(json_sink(backend.serve().await, policy));
    let batch = Arc::new(deliveries(2).await);
    let send = {
        let (sink, batch) = (Arc::clone(&sink), Arc::clone(&batch));
        move || {
            let (sink, batch) = (Arc::clone(&sink), Arc::clone(&batch));
            tokio::spawn(async move { deliver(&*sink, &batch).await })
        }
    };

    let first = send();
    backend.wait_for(3).await;
    tokio::time::sleep(ms(100)).await;
    let h = health(&sink);
    assert!(h.down && h.consecutive_failures == 3, "{h:?}");
    // Another batch while the breaker is open: it waits too, no request goes out.
    let second = send();
    bounded(first).await.unwrap().unwrap();
    bounded(second).await.unwrap().unwrap();

    let seen = backend.seen();
    assert_eq!(
        seen.len(),
        6,
        "3 failures, a failed probe, a probe, the other batch"
    );
    assert!(seen[3].at - seen[2].at >= probe_after, "nothing while open");
    assert!(
        seen[4].at - seen[3].at >= probe_after,
        "a failed probe opens it again"
    );
    assert!(
        seen[5].at - seen[4].at < ms(200),
        "the waiting batch goes once it closes"
    );
    assert_eq!(
        delivery_ids(&backend.delivered()),
        ["d0", "d0", "d1", "d1"],
        "one per batch"
    );
    let h = health(&sink);
    assert!(!h.down && h.consecutive_failures == 0);
    assert_eq!((h.accepted, h.sent, h.failed), (4, 4, 0));
    assert_settled(&h);
}

#[tokio::test]
async fn a_probe_cut_short_lets_the_next_request_probe() {
    let backend = Backend::new([Answer::Status(500), Answer::Hang]);
    let policy = retry().open_after(1).probe_after(ms(100));
    let sink = json_sink(backend.serve().await, policy); // 300 ms per attempt
    let batch = deliveries(1).await;

    // A failure opens the breaker; 100 ms later the probe hangs, and the send is cut short.
    let cut = tokio::time::timeout(ms(250), sink.send(&batch)).await;
    assert!(cut.is_err());
    assert_eq!(backend.seen().len(), 2);
    // The next batch probes at once, and closes the breaker.
    let started = Instant::now();
    deliver(&sink, &batch).await.unwrap();

    assert!(started.elapsed() < ms(200), "{:?}", started.elapsed());
    let h = health(&sink);
    assert!(!h.down);
    assert_eq!((h.sent, h.failed), (1, 1));
    assert_settled(&h);
}

#[tokio::test]
async fn a_breaker_open_past_the_retry_window_fails_batches_without_a_request() {
    let backend = Backend::new([Answer::Status(500)]);
    let policy = retry()
        .window(ms(300))
        .open_after(1)
        .probe_after(Duration::from_secs(60));
    let sink = json_sink(backend.serve().await, policy);
    let batch = deliveries(2).await;

    let first = deliver(&sink, &batch).await.unwrap_err();
    let started = Instant::now();
    let second = deliver(&sink, &batch).await.unwrap_err();

    assert!(started.elapsed() < ms(50));
    assert!(matches!(http_error(&first), HttpSinkError::Down));
    assert!(matches!(http_error(&second), HttpSinkError::Down));
    assert_eq!(
        backend.seen().len(),
        1,
        "one attempt, then the breaker holds"
    );
    let h = health(&sink);
    assert!(h.down);
    assert_eq!((h.sent, h.failed), (0, 4));
    assert_settled(&h);
}

#[tokio::test]
async fn a_send_cut_short_counts_its_reports_failed() {
    let backend = Backend::new([Answer::Hang]);
    let sink = json_sink(backend.serve().await, retry());

    let cut = tokio::time::timeout(ms(100), sink.send(&deliveries(3).await)).await;

    assert!(cut.is_err());
    let h = health(&sink);
    assert_eq!((h.accepted, h.failed), (3, 3));
    assert_settled(&h);
}

#[tokio::test]
async fn graceful_shutdown_flushes_every_queued_report_to_a_healthy_backend() {
    let backend = Backend::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = backend.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    // Production-like: the sink behind a Fanout entry that gathers batches for a whole second,
    // so that at shutdown most reports are still waiting in its queue.
    let options = SinkOptions::new()
        .batch_size(50)
        .linger(Duration::from_secs(1))
        .timeout(Duration::from_secs(60));
    let fanout = Fanout::new().sink_with("json", json_sink(addr, retry()), options);
    let (reporter, guard) = Reporter::builder()
        .linger(ms(1))
        .health_interval(None)
        .spawn(fanout);
    for report in deliveries(120).await {
        reporter.try_report(report);
    }
    tokio::time::sleep(ms(50)).await;
    let early = delivery_ids(&backend.delivered()).len();
    assert!(early < 120, "a batch still gathering: {early} delivered");
    let started = Instant::now();
    guard.shutdown(Duration::from_secs(5)).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    let mut expected: Vec<String> = (0..120).map(|i| format!("d{i}")).collect();
    expected.sort();
    assert_eq!(delivery_ids(&backend.delivered()), expected, "each once");
    let stats = reporter.stats();
    assert_eq!((stats.sent, stats.failed), (120, 0));
}

#[tokio::test]
async fn a_full_buffer_while_the_backend_is_down_drops_and_counts_exactly() {
    // A port nobody listens on, for now.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let options = SinkOptions::new()
        .batch_size(5)
        .linger(ms(1))
        .queue_capacity(10)
        .timeout(Duration::from_secs(10));
    let fanout = Arc::new(Fanout::new().sink_with("json", json_sink(addr, retry()), options));
    let (reporter, guard) = Reporter::builder()
        .linger(ms(1))
        .health_interval(None)
        .spawn(Arc::clone(&fanout));
    // 100 reports reach the entry at once (one batch, on this one-thread runtime): 10 fit in
    // its buffer, 90 are dropped.
    for report in deliveries(100).await {
        reporter.try_report(report);
    }
    tokio::time::sleep(ms(300)).await;
    let backend = Backend::default();
    let listener = TcpListener::bind(addr).await.unwrap();
    let router = backend.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    guard.shutdown(Duration::from_secs(5)).await.unwrap();

    let delivered = delivery_ids(&backend.delivered());
    assert_eq!(delivered.len(), 10, "{delivered:?}");
    let mut unique = delivered.clone();
    unique.dedup();
    assert_eq!(unique, delivered, "each once");
    let stats = reporter.stats();
    assert_eq!((stats.enqueued, stats.sent, stats.failed), (100, 100, 0));
    // The entry's counters: its buffer's drops, and what its sink did with the rest.
    let h = health(&*fanout);
    assert_eq!(
        (h.accepted, h.sent, h.dropped, h.failed, h.queued),
        (100, 10, 90, 0, 0),
        "{h:?}"
    );
    assert!(h.retries > 0, "the backend was down at first: {h:?}");
}

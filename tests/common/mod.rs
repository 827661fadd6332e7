//! Helpers shared by the integration tests: a real server on 127.0.0.1:0 and a real client.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

#[cfg(feature = "redis")]
pub mod fleet;
pub mod recorder;
#[cfg(feature = "redis")]
pub mod redis;

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use axum::Router;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use webhook_monitor::{
    report::{MemorySink, Reporter},
    DeliveryReport, Policy, Report, ReporterGuard, WebhookMonitorLayer,
};

pub type ClientBody = BoxBody<Bytes, Infallible>;

/// Serves `app` on an ephemeral loopback port until the test ends.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A scripted handler: sleeps `x-sleep-ms` (on tokio's clock, so a paused clock makes it
/// exact), then answers `x-status` (200 by default).
pub async fn scripted(headers: http::HeaderMap) -> StatusCode {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    if let Some(ms) = header("x-sleep-ms") {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    header("x-status")
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
        .unwrap_or(StatusCode::OK)
}

/// A reporter into a fresh memory sink, lingering 1 ms.
pub fn memory_reporter() -> (Reporter, ReporterGuard, MemorySink) {
    let sink = MemorySink::new();
    let (reporter, guard) = Reporter::builder()
        .linger(Duration::from_millis(1))
        .spawn(sink.clone());
    (reporter, guard, sink)
}

/// `routes` behind the layer with `policy`, served on loopback.
pub struct Monitored {
    pub addr: SocketAddr,
    pub sink: MemorySink,
    pub reporter: Reporter,
    pub guard: ReporterGuard,
}

pub async fn monitored(policy: Policy, routes: Router) -> Monitored {
    let (reporter, guard, sink) = memory_reporter();
    let app = routes.route_layer(WebhookMonitorLayer::new(policy, reporter.clone()));
    Monitored {
        addr: serve(app).await,
        sink,
        reporter,
        guard,
    }
}

impl Monitored {
    /// Waits for the `n`th report and returns it.
    pub async fn report(&self, n: usize) -> DeliveryReport {
        let reports = self.sink.wait_for(n, Duration::from_secs(5)).await;
        assert!(reports.len() >= n, "only {} reports arrived", reports.len());
        delivery(&reports[n - 1])
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

pub fn delivery(report: &Report) -> DeliveryReport {
    report.as_delivery().expect("a delivery report").clone()
}

pub fn client() -> Client<HttpConnector, ClientBody> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn full(body: impl Into<Bytes>) -> ClientBody {
    Full::new(body.into()).boxed()
}

/// A body sent with `Transfer-Encoding: chunked`, in the given chunks.
pub fn chunked(chunks: Vec<Bytes>) -> ClientBody {
    let frames = chunks
        .into_iter()
        .map(|c| Ok::<_, Infallible>(Frame::data(c)));
    StreamBody::new(futures_util::stream::iter(frames)).boxed()
}

/// Sends a POST and returns the status and body.
pub async fn send(url: &str, body: ClientBody, headers: &[(&str, &str)]) -> (StatusCode, Bytes) {
    let mut req = Request::post(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = client().request(req.body(body).unwrap()).await.unwrap();
    let status = res.status();
    (status, res.into_body().collect().await.unwrap().to_bytes())
}

/// A writer into a shared buffer: for a `JsonLinesSink`, or for what `tracing` writes
/// ([`SharedBuf::capture_logs`]).
#[derive(Clone, Default)]
pub struct SharedBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl SharedBuf {
    /// Captures this thread's `tracing` events (no colours) until the guard is dropped: in a
    /// current_thread test, every event of the test, its server and its reporter.
    pub fn capture_logs() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Self::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

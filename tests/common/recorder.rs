//! A backend on 127.0.0.1:0 that records every request and answers from a script, and reports
//! an alert sink must ignore: for the alert sinks' tests.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::IntoResponse,
    Router,
};
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::time::Instant;
use webhook_monitor::Report;

/// One request the backend received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Seen {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Clone, Default)]
pub struct Backend {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<VecDeque<(u16, &'static str)>>>,
    otherwise: u16,
}

impl Backend {
    /// A backend answering `script` (status, body) in turn, then `otherwise` with no body.
    pub async fn serve(
        script: impl IntoIterator<Item = (u16, &'static str)>,
        otherwise: u16,
    ) -> (Self, SocketAddr) {
        let backend = Self {
            otherwise,
            ..Self::default()
        };
        backend.script.lock().unwrap().extend(script);
        let app = Router::new().fallback(record).with_state(backend.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (backend, addr)
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn record(
    State(backend): State<Backend>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let next = backend.script.lock().unwrap().pop_front();
    let (status, answer) = next.unwrap_or((backend.otherwise, ""));
    backend.seen.lock().unwrap().push(Seen {
        method,
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers,
        body,
        at: Instant::now(),
    });
    (StatusCode::from_u16(status).unwrap(), answer)
}

/// A delivery report, which an alert sink ignores.
pub fn delivery() -> Report {
    serde_json::from_str(r#"{"type":"delivery","route":"orders","provider":"shop","delivery_id":"d-7","event_type":"order.created","attempt":null,"signature":"unchecked","secret_index":null,"status":200,"outcome":"failure","outcome_detail":"marked","reason":"missing order_id","payload_check":null,"received_at":"2026-11-28T19:30:00.123456Z","body_read_us":21,"handler_us":54,"total_us":75,"body_bytes":12,"fingerprint":"xxh3-128:5b7d2e4f0c1a9e8d7c6b5a4f3e2d1c0b","times_seen":null,"first_seen":null,"mean_retry_interval_ms":null,"lag_ms":null,"flags":[],"fields":{}}"#).unwrap()
}

/// A health report, which an alert sink ignores.
pub fn health_report() -> Report {
    serde_json::from_value(json!({
        "type": "health", "at": "2026-11-28T19:30:00Z", "enqueued": 0, "dropped_full": 0,
        "dropped_closed": 0, "sent": 0, "failed": 0, "batches": 0, "alerts": 0,
        "sink_panics": 0, "watcher_panics": 0, "queue_depth": 0, "sinks": [],
    }))
    .unwrap()
}

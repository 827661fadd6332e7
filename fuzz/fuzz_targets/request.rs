//! Whole requests through the layer, one preset each (with dedupe and payload checks on): body
//! reading, verification, identification from headers and body fields (ids, event types,
//! attempts, timestamps), payload checks, the dedupe key and claim, and classification.
//!
//! Oracles: no panic; the layer answers one of its documented statuses; and nothing reaches the
//! handler that the route's scheme does not verify on its own.
#![no_main]

use std::{
    convert::Infallible,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Mutex, OnceLock,
    },
    time::{Duration, UNIX_EPOCH},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use libfuzzer_sys::fuzz_target;
use tower::{Layer, ServiceExt};
use webhook_monitor::{
    dedupe::MemoryStore,
    fuzzing,
    payload::Check,
    provider::SignedRequest,
    report::{MemorySink, Reporter, ReporterGuard, ReporterWorker},
    PayloadChecks, Policy, WebhookBody, WebhookMonitorLayer,
};
use webhook_monitor_fuzz::{parse, presets};

/// The policies' clock, set to each input's `now`.
static NOW: AtomicU64 = AtomicU64::new(0);

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime")
    })
}

/// One layer per preset. The reporter's worker never runs: reports fill its small queue, then
/// are dropped and counted, so memory stays flat.
fn layers() -> &'static [(&'static str, Policy, WebhookMonitorLayer)] {
    static LAYERS: OnceLock<Vec<(&'static str, Policy, WebhookMonitorLayer)>> = OnceLock::new();
    LAYERS.get_or_init(|| {
        let (reporter, guard, worker) = Reporter::builder()
            .queue_capacity(16)
            .pair(MemorySink::new());
        // Kept, never run: dropping the guard would close the queue.
        static KEPT: OnceLock<Mutex<(ReporterGuard, ReporterWorker)>> = OnceLock::new();
        let _ = KEPT.set(Mutex::new((guard, worker)));
        presets()
            .iter()
            .map(|(name, policy)| {
                let policy = policy
                    .clone()
                    .clock(|| UNIX_EPOCH + Duration::from_secs(NOW.load(Relaxed)))
                    .dedupe(MemoryStore::with_capacity(4096))
                    .payload_checks(
                        PayloadChecks::new()
                            .reject(Check::max_depth(64))
                            .flag(Check::not_null("/data/object/id"))
                            .flag(Check::require("/type")),
                    );
                let layer = WebhookMonitorLayer::new(policy.clone(), reporter.clone());
                (*name, policy, layer)
            })
            .collect()
    })
}

/// The layer's own answers, and the handler's.
const STATUSES: [StatusCode; 9] = [
    StatusCode::OK,
    StatusCode::BAD_REQUEST,
    StatusCode::UNAUTHORIZED,
    StatusCode::REQUEST_TIMEOUT,
    StatusCode::CONFLICT,
    StatusCode::PAYLOAD_TOO_LARGE,
    StatusCode::UNPROCESSABLE_ENTITY,
    StatusCode::INTERNAL_SERVER_ERROR,
    StatusCode::SERVICE_UNAVAILABLE,
];

fuzz_target!(|data: &[u8]| {
    let Some(input) = parse(data) else {
        return;
    };
    let layers = layers();
    // The named preset; for any other name, one picked by the name's bytes.
    let pick = layers
        .iter()
        .position(|(n, ..)| *n == input.preset)
        .unwrap_or_else(|| input.preset.bytes().map(usize::from).sum::<usize>() % layers.len());
    let (name, policy, layer) = &layers[pick];
    let now = input
        .now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    NOW.store(now, Relaxed);

    let mut request = Request::post(input.uri.clone())
        .body(one_frame(input.body))
        .expect("a request");
    *request.headers_mut() = input.headers.clone();
    let service = layer.layer(tower::service_fn(|_: Request<WebhookBody>| async {
        let mut res = Response::new(String::new());
        res.headers_mut()
            .insert("x-handler", http::HeaderValue::from_static("1"));
        Ok::<_, Infallible>(res)
    }));
    let response = runtime()
        .block_on(service.oneshot(request))
        .expect("infallible");
    assert!(
        STATUSES.contains(&response.status()),
        "{name}: {}",
        response.status()
    );
    if response.headers().contains_key("x-handler") {
        let signed = SignedRequest::new(&input.headers, &input.uri, input.body, input.now);
        let verified = fuzzing::verify(policy, &signed);
        assert!(
            verified.as_ref().is_none_or(Result::is_ok),
            "{name}: the handler ran for a request its scheme refuses: {verified:?}"
        );
    }
});

/// The body as one frame, as hyper hands a small body over.
fn one_frame(body: &[u8]) -> WebhookBody {
    WebhookBody::from(Bytes::copy_from_slice(body))
}

//! The variants users write instead of the layer: an axum handler that verifies the Stripe
//! signature itself (`hand`), and one that does by hand what the layer does (`hand-full`, issue
//! #19's fair baseline). Shared by the in-process benchmarks and the load harness's server.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{extract::State, http::HeaderMap, http::StatusCode, routing::post, Router};
use bytes::Bytes;
use hmac::{KeyInit, Mac};

/// The Stripe secret every benchmark and the load generator sign with.
pub const SECRET: &str = "whsec_load_test_secret";

/// The `/hook` route verifying by hand, with its pre-keyed HMAC as state.
pub fn router() -> Router {
    let key = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key");
    Router::new()
        .route("/hook", post(verify_by_hand))
        .with_state(key)
}

/// What a careful user writes without the layer: a pre-keyed HMAC, the header parsed by hand,
/// every `v1` tried in constant time, the timestamp checked.
async fn verify_by_hand(
    State(key): State<hmac::Hmac<sha2::Sha256>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if verified(&key, &headers, &body) {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    }
}

/// The `/hook` route doing by hand what the layer's `full` variant does (issue #19): verify the
/// Stripe signature, read `id`, `type` and `created` with a `#[derive(Deserialize)]` struct,
/// dedupe on the delivery id in a `Mutex<HashMap>` with expiry (swept once a minute), and emit
/// one `tracing` event with the timings.
pub fn full_router() -> Router {
    let key = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key");
    let state = Arc::new(Hand {
        key,
        seen: Mutex::new((HashMap::new(), Instant::now())),
    });
    Router::new()
        .route("/hook", post(full_by_hand))
        .with_state(state)
}

/// `hand-full`'s state: the pre-keyed HMAC, the ids seen with when, and the last sweep.
struct Hand {
    key: hmac::Hmac<sha2::Sha256>,
    seen: Mutex<(HashMap<String, Instant>, Instant)>,
}

/// How long an id counts as seen, as the layer's default dedupe window.
const WINDOW: Duration = Duration::from_secs(24 * 3600);
/// How often the expired ids are swept. (The first cut swept whenever the map was past a size:
/// once past it, with nothing expired yet, every request swept the whole map, 90 ms each under
/// load.)
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The fields a handler reads from a Stripe event; serde skips the rest.
#[derive(serde::Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created: i64,
}

async fn full_by_hand(
    State(hand): State<Arc<Hand>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let start = Instant::now();
    if !verified(&hand.key, &headers, &body) {
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(event) = serde_json::from_slice::<Event>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let verified_in = start.elapsed();
    // The harness sends the delivery id in a header, as the layer's `full` variant reads it.
    let Some(id) = headers.get("x-delivery-id").and_then(|v| v.to_str().ok()) else {
        return StatusCode::BAD_REQUEST;
    };
    {
        let mut guard = hand
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (seen, swept) = &mut *guard;
        if swept.elapsed() >= SWEEP_EVERY {
            seen.retain(|_, at| at.elapsed() < WINDOW);
            *swept = start;
        }
        match seen.get(id) {
            Some(at) if at.elapsed() < WINDOW => return StatusCode::OK, // a duplicate
            _ => {
                seen.insert(id.to_owned(), start);
            }
        }
    }
    tracing::info!(
        delivery_id = id,
        event_id = %event.id,
        event_type = %event.kind,
        created = event.created,
        verify_us = verified_in.as_micros() as u64,
        total_us = start.elapsed().as_micros() as u64,
        "webhook processed"
    );
    StatusCode::OK
}

/// Whether the `Stripe-Signature` header signs `body` with `key`: a `v1` that matches in
/// constant time, with a timestamp within 5 minutes.
fn verified(key: &hmac::Hmac<sha2::Sha256>, headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(header) = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for pair in header.split(',') {
        match pair.split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<u64>().ok(),
            Some(("v1", s)) => signatures.push(s),
            _ => {}
        }
    }
    let Some(t) = timestamp else {
        return false;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if now.abs_diff(t) > 300 {
        return false;
    }
    let mut mac = key.clone();
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    let mut decoded = [0u8; 32];
    signatures.into_iter().any(|s| {
        hex::decode_to_slice(s, &mut decoded).is_ok()
            && subtle::ConstantTimeEq::ct_eq(&decoded[..], &expected[..]).into()
    })
}

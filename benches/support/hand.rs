//! The variant users write instead of the layer: an axum handler that verifies the Stripe
//! signature itself. Shared by the in-process benchmarks and the load harness's server.

use std::time::{SystemTime, UNIX_EPOCH};

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
    let Some(header) = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return StatusCode::UNAUTHORIZED;
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
        return StatusCode::UNAUTHORIZED;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if now.abs_diff(t) > 300 {
        return StatusCode::UNAUTHORIZED;
    }
    let mut mac = key.clone();
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(&body);
    let expected = mac.finalize().into_bytes();
    let mut decoded = [0u8; 32];
    for s in signatures {
        if hex::decode_to_slice(s, &mut decoded).is_ok()
            && subtle::ConstantTimeEq::ct_eq(&decoded[..], &expected[..]).into()
        {
            return StatusCode::OK;
        }
    }
    StatusCode::UNAUTHORIZED
}

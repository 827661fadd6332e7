//! A fixed amount of work per variant, for `valgrind --tool=callgrind` (instruction counts are
//! deterministic where wall-clock time is not). `scripts/instructions.sh` runs it twice per
//! variant and divides the difference by the difference in requests, which cancels setup.
//!
//! Usage: `instructions <variant> <requests>`; variants as in `benches/support/mod.rs` (with
//! `-50k` appended, the 50 KiB Stripe-shaped event instead of the 2 KiB one), or
//! `verify-raw`, `verify-stripe`, `verify-sw`, `verify-reference` (one signature check of a
//! 2 KiB body per iteration: raw HMAC-SHA256, the Stripe and Standard Webhooks schemes, and the
//! reference `standardwebhooks` crate), `peek-new`, `peek-serde` (one `peek` of the 2 KiB body
//! for the Stripe preset's fields `type`, `created`, `id` per iteration, and the floor it is
//! compared with: serde_json skipping the same body into `IgnoredAny`), `peek-50k` (the same
//! `peek` of the 50 KiB event), `verify-twilio` and `verify-twilio-flood` (a Twilio form of 24
//! parameters; a 1 MiB body of `a&a&…` under a signature that does not match).

mod support;

// `peek` is crate-private: its source file is compiled into this bench as a module.
#[path = "../src/json/mod.rs"]
#[allow(dead_code, unreachable_pub, unused_imports)]
mod json;

use std::time::Duration;

use json::{peek, JsonPointer};

fn main() {
    let mut args = std::env::args().skip(1);
    // `cargo bench` runs every bench target with `--bench`: do nothing then.
    let Some(variant) = args.next().filter(|a| !a.starts_with('-')) else {
        return;
    };
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    if let Some(scheme) = variant.strip_prefix("verify-") {
        return verify(scheme, n);
    }
    if let Some(which) = variant.strip_prefix("peek-") {
        return peek_body(which, n);
    }
    let rt = support::runtime();
    // `<variant>-50k`: the variant with the 50 KiB Stripe-shaped event instead of the 2 KiB one.
    let (variant, body) = match variant.strip_suffix("-50k") {
        Some(v) => (
            v.to_owned(),
            bytes::Bytes::from(support::stripe_event(50 * 1024)),
        ),
        None => (variant, support::payload()),
    };
    let _subscriber = support::subscriber(&variant);
    rt.block_on(async {
        let (router, guard) = support::build(&variant).await;
        support::drive(&router, &body, n).await;
        drop(router);
        if let Some(guard) = guard {
            guard
                .shutdown(Duration::from_secs(5))
                .await
                .expect("drained");
        }
    });
}

/// `n` peeks of the harness body (a pretty-printed Stripe-like event, `support::stripe_event`):
/// `new` is `peek` of the 2 KiB body, `serde` serde_json's skip of it into `IgnoredAny`, `50k`
/// is `peek` of the 50 KiB body.
fn peek_body(which: &str, n: u64) {
    use std::hint::black_box;

    let pointers = ["/type", "/created", "/id"].map(|p| JsonPointer::parse(p).expect("valid"));
    let body = match which {
        "50k" => support::stripe_event(50 * 1024),
        _ => support::payload().to_vec(),
    };
    match which {
        "new" | "50k" => {
            let [ty, created, id] =
                peek::peek(&body, pointers.each_ref().map(Some)).expect("valid");
            assert!(ty.is_some() && created.is_some() && id.is_some());
            for _ in 0..n {
                black_box(peek::peek(black_box(&body), pointers.each_ref().map(Some)).is_ok());
            }
        }
        "serde" => {
            for _ in 0..n {
                black_box(
                    serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&body)).is_ok(),
                );
            }
        }
        other => panic!("unknown peek variant {other}"),
    }
}

/// `n` signature checks of the same 2 KiB message with `scheme`.
fn verify(scheme: &str, n: u64) {
    use std::hint::black_box;

    use hmac::{KeyInit, Mac};
    use http::{HeaderMap, Uri};
    use webhook_monitor::{
        provider::{HmacScheme, Scheme, Secret, SignedRequest},
        testing,
    };

    const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let body = support::payload().to_vec();
    let t = 1_700_000_000;
    let now = std::time::UNIX_EPOCH + Duration::from_secs(t);
    let uri = Uri::from_static("/hook");
    let sw_headers =
        testing::standard_webhooks("webhook", SW_SECRET, "msg_1", &body, t).expect("base64 secret");
    let check = |scheme: &dyn Scheme, headers: &HeaderMap| {
        let request = SignedRequest::new(headers, &uri, &body, now);
        assert!(scheme.verify(&request).is_ok());
        for _ in 0..n {
            black_box(scheme.verify(black_box(&request)).is_ok());
        }
    };
    match scheme {
        "raw" => {
            let keyed = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"whsec_test").expect("any key");
            for _ in 0..n {
                let mut mac = keyed.clone();
                mac.update(black_box(&body));
                black_box(mac.finalize().into_bytes());
            }
        }
        "stripe" => check(
            &HmacScheme::stripe("whsec_test"),
            &testing::stripe("whsec_test", &body, t),
        ),
        "sw" => check(
            &HmacScheme::standard_webhooks("webhook", Secret::from_base64(SW_SECRET).expect("b64")),
            &sw_headers,
        ),
        "reference" => {
            // The reference crate checks the timestamp against the real clock: sign for now.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970")
                .as_secs();
            let headers = testing::standard_webhooks("webhook", SW_SECRET, "msg_1", &body, t)
                .expect("base64 secret");
            let reference = standardwebhooks::Webhook::new(SW_SECRET).expect("secret");
            assert!(reference.verify(&body, &headers).is_ok());
            for _ in 0..n {
                black_box(
                    reference
                        .verify(black_box(&body), black_box(&headers))
                        .is_ok(),
                );
            }
        }
        "twilio" | "twilio-flood" => twilio(scheme, n),
        other => panic!("unknown verify variant {other}"),
    }
}

/// `n` checks of a Twilio form request: `twilio`, an SMS status callback of 24 parameters
/// (signed, verifies); `twilio-flood`, a 1 MiB body of `a&a&…` under a well-formed signature
/// that does not match (what any sender can make the server parse before the MAC).
fn twilio(which: &str, n: u64) {
    use std::hint::black_box;

    use http::Uri;
    use webhook_monitor::{
        provider::{Scheme, SignedRequest, TwilioScheme},
        testing,
    };

    const URL: &str = "https://example.com/twilio/sms";
    let now = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let uri = Uri::from_static("/twilio/sms");
    let params: Vec<(String, String)> = (0..24)
        .map(|i| {
            (
                format!("Param{i:02}"),
                format!("value {i} +1 (415) 867-5309 café"),
            )
        })
        .collect();
    let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (&**k, &**v)).collect();
    let headers = testing::twilio_form("auth-token", URL, &pairs);
    let body: Vec<u8> = match which {
        "twilio" => pairs
            .iter()
            .map(|(k, v)| {
                let v = v.replace('%', "%25").replace('+', "%2B").replace(' ', "+");
                format!("{k}={}", v.replace('é', "%C3%A9"))
            })
            .collect::<Vec<_>>()
            .join("&")
            .into_bytes(),
        _ => b"a&".repeat(512 * 1024),
    };
    let scheme = TwilioScheme::new("auth-token", URL);
    let request = SignedRequest::new(&headers, &uri, &body, now);
    assert_eq!(scheme.verify(&request).is_ok(), which == "twilio");
    for _ in 0..n {
        black_box(scheme.verify(black_box(&request)).is_ok());
    }
}

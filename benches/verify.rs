//! Signature verification cost per scheme, against raw HMAC-SHA256 of the same bytes (the floor)
//! and against the reference Standard Webhooks verifier (the `standardwebhooks` crate, whose code
//! the `svix` crate's verifier shares; `svix` 2.9 itself does not build against current
//! hyper-util) on the same message.
//!
//! Run with `cargo bench --bench verify`.

use std::{
    hint::black_box,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hmac::{KeyInit, Mac};
use http::{HeaderMap, Uri};
use webhook_monitor::{
    provider::{HmacScheme, Scheme, Secret, SignedRequest},
    testing,
};

const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn body(len: usize) -> Vec<u8> {
    let mut b = br#"{"id":"evt_1","type":"payment_intent.succeeded","data":{"pad":""#.to_vec();
    b.resize(len - 4, b'x');
    b.extend_from_slice(br#""}}"#);
    b.push(b'\n');
    b
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

fn verify(c: &mut Criterion) {
    let uri = Uri::from_static("/hook");
    let t = now();
    let at = UNIX_EPOCH + Duration::from_secs(t);
    for len in [2 * 1024, 50 * 1024] {
        let body = body(len);
        let mut group = c.benchmark_group(format!("verify_{}KiB", len / 1024));
        group.throughput(Throughput::Bytes(len as u64));

        // The floor: HMAC-SHA256 of the body with a pre-keyed state, as the schemes use.
        let keyed = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"whsec_test").expect("any key");
        group.bench_function("raw_hmac_sha256", |b| {
            b.iter(|| {
                let mut mac = keyed.clone();
                mac.update(black_box(&body));
                black_box(mac.finalize().into_bytes())
            })
        });

        let cases: Vec<(&str, HmacScheme, HeaderMap)> = vec![
            (
                "stripe",
                HmacScheme::stripe("whsec_test"),
                testing::stripe("whsec_test", &body, t),
            ),
            (
                "github",
                HmacScheme::github("s"),
                testing::github("s", &body, "d", "push"),
            ),
            (
                "shopify",
                HmacScheme::shopify("s"),
                testing::shopify("s", &body, "w", "t"),
            ),
            (
                "slack",
                HmacScheme::slack("s"),
                testing::slack("s", &body, t),
            ),
            (
                "paddle",
                HmacScheme::paddle("s"),
                testing::paddle("s", &body, t),
            ),
            (
                "standard_webhooks",
                HmacScheme::standard_webhooks(
                    "webhook",
                    Secret::from_base64(SW_SECRET).expect("base64"),
                ),
                testing::standard_webhooks("webhook", SW_SECRET, "msg_1", &body, t)
                    .expect("base64"),
            ),
        ];
        for (name, scheme, headers) in &cases {
            let request = SignedRequest::new(headers, &uri, &body, at);
            assert!(scheme.verify(&request).is_ok(), "{name} verifies");
            group.bench_with_input(BenchmarkId::new("scheme", name), &request, |b, r| {
                b.iter(|| black_box(scheme.verify(black_box(r))))
            });
        }

        // The reference verifier on the same Standard Webhooks message.
        let (_, _, sw_headers) = &cases[5];
        let reference = standardwebhooks::Webhook::new(SW_SECRET).expect("reference secret");
        assert!(
            reference.verify(&body, sw_headers).is_ok(),
            "the reference verifies"
        );
        group.bench_function("standardwebhooks_crate", |b| {
            b.iter(|| black_box(reference.verify(black_box(&body), black_box(sw_headers))))
        });
        group.finish();
    }
}

criterion_group!(benches, verify);
criterion_main!(benches);

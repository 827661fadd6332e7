//! Payload checks on Stripe-like `invoice.paid` events, pretty-printed as Stripe sends them (line
//! items are added until the body reaches 2 KiB and 50 KiB: 2.5 KiB and 50.2 KiB as built),
//! against the floor: serde_json validating the same bytes into `IgnoredAny`. Also the checks
//! without the depth limit, and `serde_json::Value` for reference (what the checks avoid).
//!
//! Run with `cargo bench --bench payload`.

mod support;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use webhook_monitor::{payload::Check, PayloadChecks};

fn payload(c: &mut Criterion) {
    let pointers = || {
        PayloadChecks::new()
            .reject(Check::json())
            .reject(Check::require("/id"))
            .reject(Check::require("/type"))
            .reject(Check::require("/data/object/id"))
    };
    let variants = [
        ("checks_json", PayloadChecks::new().reject(Check::json())),
        ("checks_json_3_pointers", pointers()),
        (
            "checks_json_3_pointers_depth_32",
            pointers().reject(Check::max_depth(32)),
        ),
    ];
    for len in [2 * 1024, 50 * 1024] {
        let body = support::stripe_event(len);
        let mut group = c.benchmark_group(format!("payload_{}KiB", len / 1024));
        group.throughput(Throughput::Bytes(body.len() as u64));

        group.bench_function("serde_json_ignored_any", |b| {
            b.iter(|| {
                serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&body)).expect("valid")
            })
        });
        for (name, checks) in &variants {
            assert_eq!(checks.evaluate(&body), None, "{name} passes");
            group.bench_function(*name, |b| b.iter(|| checks.evaluate(black_box(&body))));
        }
        group.bench_function("serde_json_value", |b| {
            b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&body)).expect("valid"))
        });
        group.finish();
    }
}

criterion_group!(benches, payload);
criterion_main!(benches);

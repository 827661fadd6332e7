//! `peek` (a few scalar fields pulled out of a webhook body in one pass) on the harness's
//! Stripe-like `invoice.paid` events (`support::stripe_event`, pretty-printed as Stripe sends
//! them, 2 KiB and 50 KiB), against the floor: serde_json validating the same bytes into
//! `IgnoredAny`. The paths are the Stripe preset's fields, `type`, `created` and `id`; `type`
//! comes after `data`, so the whole body is scanned.
//!
//! `peek` is crate-private: its source file is compiled into this bench as a module.
//!
//! Run with `cargo bench --bench peek`.

mod support;

#[path = "../src/json/mod.rs"]
#[allow(dead_code, unreachable_pub, unused_imports)]
mod json;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use json::{peek, JsonPointer};

/// The Stripe preset's fields.
const PATHS: [&str; 3] = ["/type", "/created", "/id"];

fn bench_peek(c: &mut Criterion) {
    let bodies = [
        ("stripe_2KiB", support::stripe_event(2 * 1024)),
        ("stripe_50KiB", support::stripe_event(50 * 1024)),
    ];
    let pointers = PATHS.map(|p| JsonPointer::parse(p).expect("valid"));
    for (name, body) in &bodies {
        let [ty, _, id] = peek::peek(body, pointers.each_ref().map(Some)).expect("valid");
        assert!(ty.is_some() && id.is_some(), "{name}: fields found");
        let mut group = c.benchmark_group(format!("peek_{name}"));
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function("serde_json_ignored_any", |b| {
            b.iter(|| {
                serde_json::from_slice::<serde::de::IgnoredAny>(black_box(body)).expect("valid")
            })
        });
        group.bench_function("peek_type_created_id", |b| {
            b.iter(|| peek::peek(black_box(body), pointers.each_ref().map(Some)).expect("valid"))
        });
        group.finish();
    }
}

criterion_group!(benches, bench_peek);
criterion_main!(benches);

//! Added time per request: a bare axum route, the same route behind tower-http's `TraceLayer`
//! (a typical middleware), and behind `WebhookMonitorLayer` (reporting into a discarding sink,
//! and into the JSON-lines sink writing to `io::sink()`). 2 KiB body, in-process, on a
//! current_thread runtime that also runs the reporter's worker.
//!
//! Run with `cargo bench --bench overhead`.

mod support;

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// Benchmarks each variant in its own group, on one current_thread runtime.
fn group(c: &mut Criterion, name: &str, variants: &[&str]) {
    let rt = support::runtime();
    let body = support::payload();
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(5));
    for &variant in variants {
        let _subscriber = support::subscriber(variant);
        let (router, guard) = rt.block_on(support::build(variant));
        group.bench_function(variant, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    support::drive(&router, &body, iters).await;
                    start.elapsed()
                })
            });
        });
        drop(router);
        if let Some(guard) = guard {
            rt.block_on(guard.shutdown(Duration::from_secs(5)))
                .expect("drained");
        }
    }
    group.finish();
}

fn overhead(c: &mut Criterion) {
    group(c, "overhead_2KiB", &support::VARIANTS);
}

/// The span per delivery: no subscriber, and a `fmt` subscriber writing to `io::sink()`.
fn span(c: &mut Criterion) {
    group(c, "span_2KiB", &["bare", "monitored", "monitored-fmt"]);
}

/// Dedupe on a fresh delivery id per request: no dedupe, the memory store, Redis on loopback.
fn dedupe(c: &mut Criterion) {
    group(c, "dedupe_2KiB", support::DEDUPE_VARIANTS);
}

/// The load harness's Stripe variants in-process, against bare in the same group.
fn stripe(c: &mut Criterion) {
    let mut variants = vec!["bare"];
    variants.extend(support::STRIPE_VARIANTS);
    group(c, "stripe_2KiB", &variants);
}

criterion_group!(benches, overhead, span, dedupe, stripe);
criterion_main!(benches);

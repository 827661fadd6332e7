//! `peek` (a few scalar fields pulled out of a webhook body in one pass) on the Stripe-like
//! `invoice.paid` events of `benches/payload.rs` (2.5 KiB and 50.2 KiB as built, pretty-printed)
//! and on the load harness's 2 KiB body (`support::payload()`, compact), against the floor:
//! serde_json validating the same bytes into `IgnoredAny`. The paths are the Stripe preset's
//! fields, `type`, `created` and `id`; `created` is absent from the harness body, so the whole
//! body is scanned in every case.
//!
//! `peek` is crate-private: its source file is compiled into this bench as a module.
//!
//! Run with `cargo bench --bench peek`.

mod support;

#[path = "../src/provider/peek.rs"]
#[allow(dead_code, unreachable_pub)]
mod peek;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;

/// The Stripe preset's fields.
const PATHS: [&[&str]; 3] = [&["type"], &["created"], &["id"]];

/// An `invoice.paid` event shaped like Stripe's, with line items added until it is `len` bytes
/// or just over (copied from `benches/payload.rs`).
fn stripe_event(len: usize) -> Vec<u8> {
    let item = |i: usize| {
        json!({
            "id": format!("il_1PqR8sLkdIwHu7ix{i:08}"), "object": "line_item", "amount": 1500 + i,
            "currency": "usd", "description": format!("1 × Widget #{i} (at $15.00 / month)"),
            "discountable": true, "discounts": [], "invoice": "in_1PqR8sLkdIwHu7ixAb3Cd4Ef",
            "livemode": false, "metadata": {"sku": format!("W-{i}"), "warehouse": "sfo-2"},
            "period": {"end": 1_726_678_523, "start": 1_724_000_123},
            "price": {"id": "price_1PqR7xLkdIwHu7ixQ9", "object": "price", "active": true,
                      "currency": "usd", "product": "prod_QhXo5vT1hZ9yJm", "type": "recurring",
                      "recurring": {"interval": "month", "interval_count": 1}, "unit_amount": 1500},
            "proration": false, "quantity": 1, "tax_amounts": [], "type": "subscription"
        })
    };
    let mut event = json!({
        "id": "evt_1PqR8sLkdIwHu7ix0Zr1Yb2c", "object": "event", "api_version": "2024-06-20",
        "created": 1_724_000_123, "livemode": false, "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null}, "type": "invoice.paid",
        "data": {"object": {
            "id": "in_1PqR8sLkdIwHu7ixAb3Cd4Ef", "object": "invoice", "account_country": "US",
            "amount_due": 1500, "amount_paid": 1500, "amount_remaining": 0, "attempt_count": 1,
            "attempted": true, "billing_reason": "subscription_cycle", "charge": null,
            "collection_method": "charge_automatically", "currency": "usd",
            "customer": "cus_QhXo5vT1hZ9yJm", "customer_email": "jenny.rosen@example.com",
            "customer_address": {"city": "San Francisco", "country": "US", "line1": "510 Townsend St",
                                 "line2": null, "postal_code": "94103", "state": "CA"},
            "hosted_invoice_url": "https://invoice.stripe.com/i/acct_1Ow2Lk/test_YWNjdF8x",
            "lines": {"object": "list", "data": [], "has_more": false,
                      "url": "/v1/invoices/in_1PqR8sLkdIwHu7ixAb3Cd4Ef/lines"},
            "metadata": {}, "number": "F2B1C3D4-0042", "paid": true, "status": "paid",
            "status_transitions": {"finalized_at": 1_724_000_120, "paid_at": 1_724_000_123}
        }}
    });
    let mut i = 0;
    loop {
        let body = serde_json::to_vec_pretty(&event).expect("serializable");
        if body.len() >= len {
            return body;
        }
        event["data"]["object"]["lines"]["data"]
            .as_array_mut()
            .expect("an array")
            .push(item(i));
        i += 1;
    }
}

fn bench_peek(c: &mut Criterion) {
    let bodies = [
        ("stripe_2KiB", stripe_event(2 * 1024)),
        ("stripe_50KiB", stripe_event(50 * 1024)),
        ("harness_2KiB", support::payload().to_vec()),
    ];
    for (name, body) in &bodies {
        let [ty, _, id] = peek::peek(body, PATHS).expect("valid");
        assert!(ty.is_some() && id.is_some(), "{name}: fields found");
        let mut group = c.benchmark_group(format!("peek_{name}"));
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function("serde_json_ignored_any", |b| {
            b.iter(|| {
                serde_json::from_slice::<serde::de::IgnoredAny>(black_box(body)).expect("valid")
            })
        });
        group.bench_function("peek_type_created_id", |b| {
            b.iter(|| peek::peek(black_box(body), PATHS).expect("valid"))
        });
        group.finish();
    }
}

criterion_group!(benches, bench_peek);
criterion_main!(benches);

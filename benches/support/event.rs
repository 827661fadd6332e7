//! The body the benchmarks and the load harness send: a Stripe-like event of an exact size.
//! Shared by `benches/support` and `examples/load_gen.rs` (through `#[path]`).

/// An `invoice.paid` event shaped like Stripe's and pretty-printed as Stripe sends it (`type`
/// after `data`), exactly `len` bytes long, or the bare event (1,443 bytes) when `len` is less:
/// line items while the next fits, then metadata entries while the next fits, then the invoice's
/// `footer` padded to the exact length.
pub fn stripe_event(len: usize) -> Vec<u8> {
    let item = |i: usize| {
        serde_json::json!({
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
    let mut event = serde_json::json!({
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
            "footer": "", "metadata": {}, "number": "F2B1C3D4-0042", "paid": true, "status": "paid",
            "status_transitions": {"finalized_at": 1_724_000_120, "paid_at": 1_724_000_123}
        }}
    });
    let size = |event: &serde_json::Value| {
        serde_json::to_vec_pretty(event)
            .expect("serializable")
            .len()
    };
    // Grows the event by one `add` at a time while the result still fits in `len`.
    let fill = |event: &mut serde_json::Value, add: &dyn Fn(&mut serde_json::Value, usize)| {
        for i in 0.. {
            let mut next = event.clone();
            add(&mut next, i);
            if size(&next) > len {
                return;
            }
            *event = next;
        }
    };
    fill(&mut event, &|event, i| {
        let lines = &mut event["data"]["object"]["lines"]["data"];
        lines.as_array_mut().expect("an array").push(item(i));
    });
    fill(&mut event, &|event, i| {
        event["data"]["object"]["metadata"][format!("order_line_{i}")] =
            serde_json::json!(format!("sku-{i:06}"));
    });
    let pad = len.saturating_sub(size(&event));
    event["data"]["object"]["footer"] = serde_json::json!("x".repeat(pad));
    serde_json::to_vec_pretty(&event).expect("serializable")
}

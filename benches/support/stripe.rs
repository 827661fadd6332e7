//! The Stripe route every harness measures: the Stripe preset, with the delivery id read from
//! the `x-delivery-id` header the drivers send. Shared by the in-process benchmarks and the load
//! harness's server.
//!
//! The drivers sign one body per run and send a distinct id per request in that header: the
//! same verification and dedupe work as a distinct event each time, without the driver signing
//! every body. Stripe does not sign that header, so the layer would rightly dedupe these
//! requests by their (identical) body; [`VouchedId`] tells it the harness vouches for the
//! header, so that every request is a fresh delivery, keyed by its id, as distinct Stripe events
//! are. Never do this with a real provider's unsigned header.

use http::HeaderMap;
use webhook_monitor::{
    provider::{HmacScheme, Scheme, SignatureError, SignedRequest, Source, Verified},
    Policy,
};

/// The Stripe scheme, also vouching for `x-delivery-id` (see the module docs).
pub struct VouchedId(HmacScheme);

impl Scheme for VouchedId {
    fn verify(&self, request: &SignedRequest<'_>) -> Result<Verified, SignatureError> {
        self.0.verify(request)
    }

    fn covers(&self, source: &Source, headers: &HeaderMap) -> bool {
        matches!(source, Source::Header(name) if name == "x-delivery-id")
            || self.0.covers(source, headers)
    }
}

/// `Policy::stripe(secret)`, named `hook`, with its id from `x-delivery-id`.
pub fn policy(secret: &str) -> Policy {
    Policy::stripe(secret)
        .rename("hook")
        .verify_with(VouchedId(HmacScheme::stripe(secret)))
        .delivery_id(Source::header("x-delivery-id"))
}

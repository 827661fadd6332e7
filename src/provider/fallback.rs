//! [`Fallback`]: one of two HMAC schemes, chosen by which signature header is present.

use super::{HmacScheme, Scheme, SignatureError, SignedRequest, Verified};

/// Verifies with `primary` when its signature header is present, else with `fallback`
/// (Standard Webhooks' `webhook-*` or Svix's `svix-*` headers; GitHub's SHA-256 header or its
/// legacy SHA-1 one).
#[derive(Debug, Clone)]
pub(crate) struct Fallback {
    pub(crate) primary: HmacScheme,
    pub(crate) fallback: HmacScheme,
}

impl Scheme for Fallback {
    fn verify(&self, request: &SignedRequest<'_>) -> Result<Verified, SignatureError> {
        if request.headers().contains_key(self.primary.header()) {
            self.primary.verify(request)
        } else {
            self.fallback.verify(request)
        }
    }
}

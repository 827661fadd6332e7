//! [`Fallback`]: one of two HMAC schemes, chosen by which signature header is present.

use http::HeaderMap;

use super::{HmacScheme, Scheme, SignatureError, SignedRequest, Source, Verified};

/// Verifies with `primary` when its signature header is present, else with `fallback`
/// (Standard Webhooks' `webhook-*` or Svix's `svix-*` headers; GitHub's SHA-256 header or its
/// legacy SHA-1 one).
#[derive(Debug, Clone)]
pub(crate) struct Fallback {
    pub(crate) primary: HmacScheme,
    pub(crate) fallback: HmacScheme,
}

impl Fallback {
    /// The scheme that checks a request with these headers.
    fn chosen(&self, headers: &HeaderMap) -> &HmacScheme {
        if headers.contains_key(self.primary.header()) {
            &self.primary
        } else {
            &self.fallback
        }
    }
}

impl Scheme for Fallback {
    fn verify(&self, request: &SignedRequest<'_>) -> Result<Verified, SignatureError> {
        self.chosen(request.headers()).verify(request)
    }

    /// What the scheme that checked this request covers: a Svix route's `svix-id` is signed
    /// only when the request was checked with the `svix-*` headers.
    fn covers(&self, source: &Source, headers: &HeaderMap) -> bool {
        self.chosen(headers).covers(source, headers)
    }
}

//! Provider signature schemes: verifying who sent a delivery.
//!
//! A [`Scheme`] checks a request's signature against the route's [`Secrets`] and answers which
//! secret matched, or why none did ([`SignatureError`]). Most providers sign with an HMAC and
//! differ only in data (header, prefix, digest, encoding, signed content, timestamp), which
//! [`HmacScheme`] describes; the rest are code. The [`Policy`](crate::Policy) presets
//! (`Policy::stripe`, `Policy::github`, …) pick the scheme and fill in the provider's documented
//! facts.
//!
//! A failed check answers `401 Unauthorized` without calling the handler, and the report names
//! the check that failed. Neither the secret nor the expected signature is ever reported.

#[cfg(feature = "asymmetric")]
pub(crate) mod discord;
mod fallback;
mod github;
pub(crate) mod gitlab_token;
mod hmac;
mod intercom;
mod lemon_squeezy;
mod linear;
pub(crate) mod mailgun;
mod paddle;
mod razorpay;
mod secret;
#[cfg(feature = "asymmetric")]
pub(crate) mod sendgrid;
mod shopify;
mod slack;
pub(crate) mod source;
mod square;
mod standard_webhooks;
mod stripe;
#[cfg(test)]
mod test_support;
pub(crate) mod twilio;
mod typeform;
mod zoom;

use std::{fmt, time::SystemTime};

use http::{HeaderMap, HeaderName, Uri};

pub use self::hmac::{Digest, Encoding, HmacScheme, Part, SignatureFormat, TimestampSource};
pub use self::{gitlab_token::GitlabTokenScheme, mailgun::MailgunScheme, twilio::TwilioScheme};
#[cfg(feature = "asymmetric")]
#[cfg_attr(docsrs, doc(cfg(feature = "asymmetric")))]
pub use discord::{DiscordScheme, InvalidPublicKey};
pub use secret::{InvalidSecret, Secret, Secrets};
#[cfg(feature = "asymmetric")]
#[cfg_attr(docsrs, doc(cfg(feature = "asymmetric")))]
pub use sendgrid::SendgridScheme;
pub use source::{AttemptSource, Source};

/// Verifies a provider's signature.
///
/// Runs on the request path after the body is read, so it must not block. Implement it for a
/// scheme the presets and [`HmacScheme`] don't cover.
///
/// # Example
///
/// ```
/// use webhook_monitor::provider::{Scheme, SignatureError, SignedRequest, Verified};
///
/// /// Accepts requests carrying a shared token in `x-token` (compare in constant time in real code).
/// struct Token(&'static str);
///
/// impl Scheme for Token {
///     fn verify(&self, req: &SignedRequest<'_>) -> Result<Verified, SignatureError> {
///         let name = http::HeaderName::from_static("x-token");
///         match req.headers().get(&name) {
///             None => Err(SignatureError::MissingHeader(name)),
///             Some(v) if v.as_bytes() == self.0.as_bytes() => Ok(Verified::by_secret(0)),
///             Some(_) => Err(SignatureError::Mismatch),
///         }
///     }
/// }
/// ```
pub trait Scheme: Send + Sync + 'static {
    /// Checks the request's signature.
    ///
    /// # Errors
    ///
    /// The check that failed.
    fn verify(&self, request: &SignedRequest<'_>) -> Result<Verified, SignatureError>;

    /// Whether a signature this scheme verified vouches for the value `source` reads from a
    /// request with these `headers`: a body field when the scheme signs the body, a header only
    /// when the scheme signs that header.
    ///
    /// The layer dedupes by a delivery id only when the route's scheme covers it. An id it does
    /// not cover (GitHub's `X-GitHub-Delivery`, Shopify's `X-Shopify-Webhook-Id`) can be changed
    /// by anyone who once saw a signed request, so such a route dedupes by the body's SHA-256
    /// instead, and a signed body replayed under a fresh id is still a duplicate (see
    /// [`DedupeKey`](crate::dedupe::DedupeKey)).
    ///
    /// Defaults to what a scheme that signs the whole body and no header covers: every body
    /// field, and no header. Override it when the scheme signs a header (Standard Webhooks'
    /// `webhook-id`) or does not sign the whole body (a shared token, Mailgun's in-body
    /// signature).
    ///
    /// # Example
    ///
    /// ```
    /// use http::{HeaderMap, HeaderName};
    /// use webhook_monitor::provider::{Scheme, SignatureError, SignedRequest, Source, Verified};
    ///
    /// /// Signs `x-acme-id` and the body (verification left out here).
    /// struct Acme;
    ///
    /// impl Scheme for Acme {
    ///     fn verify(&self, _: &SignedRequest<'_>) -> Result<Verified, SignatureError> {
    ///         Err(SignatureError::Mismatch)
    ///     }
    ///
    ///     fn covers(&self, source: &Source, _: &HeaderMap) -> bool {
    ///         match source {
    ///             Source::Json(_) => true,
    ///             Source::Header(name) => name == "x-acme-id",
    ///             _ => false,
    ///         }
    ///     }
    /// }
    ///
    /// let headers = HeaderMap::new();
    /// assert!(Acme.covers(&Source::header("x-acme-id"), &headers));
    /// assert!(!Acme.covers(&Source::header("x-acme-retry"), &headers));
    /// ```
    fn covers(&self, source: &Source, headers: &HeaderMap) -> bool {
        let _ = headers;
        matches!(source, Source::Json(_))
    }
}

/// What a [`Scheme`] sees of a request.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    headers: &'a HeaderMap,
    uri: &'a Uri,
    body: &'a [u8],
    now: SystemTime,
}

impl<'a> SignedRequest<'a> {
    /// A request as the layer sees it; `now` is the policy's clock.
    pub fn new(headers: &'a HeaderMap, uri: &'a Uri, body: &'a [u8], now: SystemTime) -> Self {
        Self {
            headers,
            uri,
            body,
            now,
        }
    }

    /// The request's headers.
    pub fn headers(&self) -> &'a HeaderMap {
        self.headers
    }

    /// The request's URI as the server received it (proxies may have rewritten it).
    pub fn uri(&self) -> &'a Uri {
        self.uri
    }

    /// The raw body.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The current time, by the policy's clock.
    pub fn now(&self) -> SystemTime {
        self.now
    }

    /// The header's value, or [`SignatureError::MissingHeader`].
    ///
    /// # Errors
    ///
    /// `MissingHeader` when absent; `Malformed` when not visible ASCII.
    pub fn header(&self, name: &HeaderName) -> Result<&'a str, SignatureError> {
        self.headers
            .get(name)
            .ok_or_else(|| SignatureError::MissingHeader(name.clone()))?
            .to_str()
            .map_err(|_| SignatureError::Malformed("header is not visible ASCII"))
    }
}

/// A successful verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    secret_index: usize,
}

impl Verified {
    /// Verified with the secret at `index` in the route's [`Secrets`].
    pub fn by_secret(index: usize) -> Self {
        Self {
            secret_index: index,
        }
    }

    /// Which secret matched (0 for the first): watch it move during a rotation.
    pub fn secret_index(&self) -> usize {
        self.secret_index
    }
}

/// Why a signature was rejected. Never contains a secret or an expected signature.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureError {
    /// A header the scheme needs is absent.
    MissingHeader(HeaderName),
    /// The signature, its header, or the signed fields cannot be parsed.
    Malformed(&'static str),
    /// Well-formed, but no signature matched any secret.
    Mismatch,
    /// The signed timestamp is older than the tolerance allows.
    Stale {
        /// Seconds between the timestamp and now.
        age_secs: u64,
        /// The tolerance, in seconds.
        tolerance_secs: u64,
    },
    /// The signed timestamp is further in the future than the tolerance allows.
    Future {
        /// Seconds between now and the timestamp.
        ahead_secs: u64,
        /// The tolerance, in seconds.
        tolerance_secs: u64,
    },
    /// The route has no secret to check against.
    NoSecret,
}

impl SignatureError {
    /// The name of the failed check, as in reports: `missing_signature`, `malformed_signature`,
    /// `bad_signature`, `stale_timestamp`, `future_timestamp`.
    pub fn check(&self) -> &'static str {
        crate::RejectReason::from(self).as_str()
    }
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingHeader(name) => write!(f, "missing header {name}"),
            Self::Malformed(what) => write!(f, "malformed signature: {what}"),
            Self::Mismatch => f.write_str("no signature matched any secret"),
            Self::Stale {
                age_secs,
                tolerance_secs,
            } => write!(
                f,
                "timestamp is {age_secs} s old, tolerance is {tolerance_secs} s"
            ),
            Self::Future {
                ahead_secs,
                tolerance_secs,
            } => write!(
                f,
                "timestamp is {ahead_secs} s in the future, tolerance is {tolerance_secs} s"
            ),
            Self::NoSecret => f.write_str("the route has no secret configured"),
        }
    }
}

impl std::error::Error for SignatureError {}

/// The default timestamp tolerance of every scheme, in both directions: 5 minutes (what the
/// providers' own libraries use).
pub const DEFAULT_TOLERANCE: std::time::Duration = std::time::Duration::from_secs(300);

/// A signed timestamp's unix seconds: decimal digits only (no sign), surrounding whitespace
/// ignored. Every scheme reads its timestamp with this one parser.
#[inline]
pub(crate) fn parse_timestamp(timestamp: &str) -> Result<u64, SignatureError> {
    let digits = timestamp.trim();
    // `u64`'s parser takes digits only, but for a leading `+`.
    if digits.starts_with('+') {
        return Err(SignatureError::Malformed("timestamp is not a number"));
    }
    digits
        .parse()
        .map_err(|_| SignatureError::Malformed("timestamp is not a number"))
}

/// Checks a unix timestamp (seconds) against `now`, in both directions.
pub(crate) fn check_timestamp(
    ts: u64,
    now: SystemTime,
    tolerance: std::time::Duration,
) -> Result<(), SignatureError> {
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let tolerance_secs = tolerance.as_secs();
    if now > ts && now - ts > tolerance_secs {
        return Err(SignatureError::Stale {
            age_secs: now - ts,
            tolerance_secs,
        });
    }
    if ts > now && ts - now > tolerance_secs {
        return Err(SignatureError::Future {
            ahead_secs: ts - now,
            tolerance_secs,
        });
    }
    Ok(())
}

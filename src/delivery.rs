//! What the layer learned about one request: [`Delivery`].

use std::{fmt, sync::Arc, time::SystemTime};

use http::HeaderValue;
use sha2::{Digest, Sha256};

use crate::policy::FingerprintAlgorithm;

/// What the layer learned about a webhook request.
///
/// The layer inserts it into the request's extensions before calling the handler, so a handler
/// can read it without parsing headers again. With the `axum` feature it is an extractor
/// (`Delivery` or `Option<Delivery>`). Every [`DeliveryReport`](crate::DeliveryReport) carries it.
///
/// # Example
///
/// ```
/// use http::Request;
/// use webhook_monitor::{Delivery, WebhookBody};
///
/// fn handler(req: &Request<WebhookBody>) -> String {
///     match req.extensions().get::<Delivery>() {
///         Some(d) => format!("{} bytes on {}", d.body_len(), d.route()),
///         None => "not behind the layer".to_owned(),
///     }
/// }
/// # assert_eq!(handler(&Request::new(WebhookBody::default())), "not behind the layer");
/// ```
#[derive(Clone)]
pub struct Delivery {
    /// Shared: the handler's extension and the report hold the same record, so handing it to
    /// the handler costs a reference count, not a copy.
    data: Arc<DeliveryData>,
}

/// The fields of a [`Delivery`]. The layer fills them in before the handler runs; after that the
/// record is shared and never changes.
#[derive(Debug, Clone)]
pub(crate) struct DeliveryData {
    pub(crate) route: Arc<str>,
    pub(crate) provider: Option<Arc<str>>,
    pub(crate) id: Option<HeaderValue>,
    pub(crate) event_type: Option<HeaderValue>,
    pub(crate) attempt: Option<u32>,
    pub(crate) signature: SignatureStatus,
    pub(crate) received_at: SystemTime,
    pub(crate) body_len: u64,
    pub(crate) fingerprint: Option<Fingerprint>,
    pub(crate) times_seen: Option<u32>,
    pub(crate) first_seen: Option<SystemTime>,
    pub(crate) sent_at: Option<SystemTime>,
}

impl DeliveryData {
    /// A request to `route` (by `provider`), just received: nothing learned about it yet.
    pub(crate) fn received(
        route: Arc<str>,
        provider: Option<Arc<str>>,
        received_at: SystemTime,
    ) -> Self {
        Self {
            route,
            provider,
            id: None,
            event_type: None,
            attempt: None,
            signature: SignatureStatus::Unchecked,
            received_at,
            body_len: 0,
            fingerprint: None,
            times_seen: None,
            first_seen: None,
            sent_at: None,
        }
    }

    /// The delivery id as text (see [`Delivery::id`]).
    pub(crate) fn id(&self) -> Option<&str> {
        self.id.as_ref().and_then(|v| v.to_str().ok())
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.data.fmt(f)
    }
}

impl Delivery {
    pub(crate) fn new(data: DeliveryData) -> Self {
        Self {
            data: Arc::new(data),
        }
    }

    /// The fields, to read.
    pub(crate) fn data(&self) -> &DeliveryData {
        &self.data
    }

    /// The fields, to fill in while the record is not shared yet (a shared one is copied first).
    pub(crate) fn make_mut(&mut self) -> &mut DeliveryData {
        Arc::make_mut(&mut self.data)
    }

    /// The route's name, from its [`Policy`](crate::Policy).
    pub fn route(&self) -> &str {
        &self.data.route
    }

    /// The provider's name, where the policy names one.
    pub fn provider(&self) -> Option<&str> {
        self.data.provider.as_deref()
    }

    /// The provider's delivery id, where the policy says where to find it and the request has one.
    pub fn id(&self) -> Option<&str> {
        self.data.id()
    }

    /// The event type, where the policy says where to find it and the request has one.
    pub fn event_type(&self) -> Option<&str> {
        self.data.event_type.as_ref().and_then(|v| v.to_str().ok())
    }

    /// The delivery attempt (1 for the first), where the provider says.
    pub fn attempt(&self) -> Option<u32> {
        self.data.attempt
    }

    /// Whether the provider's signature was checked.
    pub fn signature(&self) -> SignatureStatus {
        self.data.signature
    }

    /// Wall-clock time at which the layer received the request.
    pub fn received_at(&self) -> SystemTime {
        self.data.received_at
    }

    /// Body size in bytes: what was read (for a rejected body, what had arrived when it was
    /// rejected), or, for a body rejected on its declared length before reading, that length.
    pub fn body_len(&self) -> u64 {
        self.data.body_len
    }

    /// Fingerprint of the body, once it has been read whole.
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        self.data.fingerprint
    }

    /// When the provider says it first sent the delivery (or the event happened), where the
    /// policy says where to read it.
    pub fn sent_at(&self) -> Option<SystemTime> {
        self.data.sent_at
    }

    /// How late the delivery arrived: from [`sent_at`](Self::sent_at) to
    /// [`received_at`](Self::received_at); zero if the provider's clock is ahead.
    pub fn lag(&self) -> Option<std::time::Duration> {
        let sent = self.data.sent_at?;
        Some(
            self.data
                .received_at
                .duration_since(sent)
                .unwrap_or_default(),
        )
    }

    /// With dedupe on: how many times this delivery was claimed for processing, this time
    /// included (1 the first time; a retry after a failure is 2…), by the dedupe store.
    pub fn times_seen(&self) -> Option<u32> {
        self.data.times_seen
    }

    /// With dedupe on: when this delivery was first claimed.
    pub fn first_seen(&self) -> Option<SystemTime> {
        self.data.first_seen
    }

    /// With dedupe on and a retry: the mean interval between this delivery's attempts so far.
    ///
    /// Worked out from [`first_seen`](Self::first_seen) and
    /// [`received_at`](Self::received_at) to the microsecond, as reports write them, so that a
    /// report read back gives the same interval.
    pub fn mean_retry_interval(&self) -> Option<std::time::Duration> {
        let n = self.data.times_seen.filter(|&n| n > 1)?;
        let span = whole_micros(self.data.received_at)
            .duration_since(whole_micros(self.data.first_seen?))
            .ok()?;
        Some(span / (n - 1))
    }
}

/// `t` without its nanoseconds past the microsecond, as RFC 3339 with micros writes it.
fn whole_micros(t: SystemTime) -> SystemTime {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => {
            SystemTime::UNIX_EPOCH + std::time::Duration::new(d.as_secs(), d.subsec_micros() * 1000)
        }
        Err(_) => t, // before 1970: reports cannot write it either
    }
}

/// Whether a delivery's signature was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureStatus {
    /// The route's policy has no signature scheme, or the request was rejected before the check.
    Unchecked,
    /// A signature matched the route's secret at this index (0 for the first).
    Verified {
        /// Which secret matched: watch it move during a rotation.
        secret_index: usize,
    },
    /// No valid signature: the request was rejected (the report's outcome says why).
    Failed,
}

impl SignatureStatus {
    /// The name used in reports: `unchecked`, `verified` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unchecked => "unchecked",
            Self::Verified { .. } => "verified",
            Self::Failed => "failed",
        }
    }

    /// The index of the secret that matched, for a verified delivery.
    pub fn secret_index(self) -> Option<usize> {
        match self {
            Self::Verified { secret_index } => Some(secret_index),
            _ => None,
        }
    }
}

/// A hash of a delivery's body, to recognise the same payload across deliveries.
///
/// Displays as `xxh3-128:<32 hex digits>` or `sha256:<64 hex digits>`, and deserializes from
/// that form (lowercase), as in a report's `fingerprint`.
///
/// # Example
///
/// ```
/// use webhook_monitor::{Fingerprint, FingerprintAlgorithm};
///
/// let fp = Fingerprint::of(FingerprintAlgorithm::Sha256, b"abc");
/// assert_eq!(
///     fp.to_string(),
///     "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fingerprint {
    /// XXH3 128-bit hash.
    Xxh3_128(u128),
    /// SHA-256 digest.
    Sha256([u8; 32]),
}

impl Fingerprint {
    /// Fingerprints `body` with `algorithm`.
    pub fn of(algorithm: FingerprintAlgorithm, body: &[u8]) -> Self {
        match algorithm {
            FingerprintAlgorithm::Xxh3_128 => Self::Xxh3_128(twox_hash::XxHash3_128::oneshot(body)),
            FingerprintAlgorithm::Sha256 => Self::Sha256(Sha256::digest(body).into()),
        }
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Xxh3_128(h) => write!(f, "xxh3-128:{h:032x}"),
            Self::Sha256(d) => {
                f.write_str("sha256:")?;
                d.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}

#[cfg(feature = "axum")]
mod axum_impls {
    use axum_core::{
        extract::{FromRequestParts, OptionalFromRequestParts},
        response::{IntoResponse, Response},
    };
    use http::{request::Parts, StatusCode};

    use super::Delivery;

    /// Rejection of the [`Delivery`] extractor when the route is not behind the layer.
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    #[derive(Debug, Clone, Copy)]
    #[non_exhaustive]
    pub struct MissingDelivery;

    impl std::fmt::Display for MissingDelivery {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("route is not behind a WebhookMonitorLayer")
        }
    }

    impl std::error::Error for MissingDelivery {}

    impl IntoResponse for MissingDelivery {
        fn into_response(self) -> Response {
            (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
        }
    }

    impl<S: Send + Sync> FromRequestParts<S> for Delivery {
        type Rejection = MissingDelivery;

        async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
            parts
                .extensions
                .get::<Delivery>()
                .cloned()
                .ok_or(MissingDelivery)
        }
    }

    impl<S: Send + Sync> OptionalFromRequestParts<S> for Delivery {
        type Rejection = std::convert::Infallible;

        async fn from_request_parts(
            parts: &mut Parts,
            _: &S,
        ) -> Result<Option<Self>, Self::Rejection> {
            Ok(parts.extensions.get::<Delivery>().cloned())
        }
    }
}

#[cfg(feature = "axum")]
pub use axum_impls::MissingDelivery;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxh3_fingerprint_is_stable_and_formatted() {
        let fp = Fingerprint::of(FingerprintAlgorithm::Xxh3_128, b"");
        // XXH3-128 of the empty input, from the reference implementation's test suite.
        assert_eq!(fp.to_string(), "xxh3-128:99aa06d3014798d86001c324468d497f");
        assert_ne!(fp, Fingerprint::of(FingerprintAlgorithm::Xxh3_128, b"a"));
    }
}

//! Exactly-once handling: a [`DedupeStore`] remembers which deliveries were processed.
//!
//! The layer claims a delivery's key after verifying it, and only the claimant calls the
//! handler. A success marks the key done for the policy's window, so every later copy is answered
//! without calling the handler; a failure, panic or cancellation releases the claim, so the
//! provider's retry is processed. A copy that arrives while the first is still in the handler is
//! answered `409 Conflict` with `Retry-After`. While the handler runs, the layer renews its
//! claim every half in-flight TTL; a claim expires on its own (its in-flight TTL) only when the
//! process died mid-handler.
//!
//! [`MemoryStore`] is the embedded default; `RedisStore` (feature `redis`) shares the state
//! across a fleet, on one Redis or a Redis Cluster.

mod hold;
mod key;
mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, SystemTime},
};

pub use memory::MemoryStore;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::RedisStore;

pub(crate) use hold::{hold, release_later};
pub(crate) use key::delivery_key;

use crate::BoxError;

/// What [`DedupeStore`] methods return: an answer already known ([`StoreFuture::ready`], for a
/// store in memory, without allocating), or a boxed future ([`StoreFuture::new`], for a store
/// over the network).
///
/// # Example
///
/// ```
/// use webhook_monitor::dedupe::{StoreError, StoreFuture};
///
/// fn answer_now<'a>() -> StoreFuture<'a, bool> {
///     StoreFuture::ready(Ok(true))
/// }
///
/// fn answer_later<'a>() -> StoreFuture<'a, bool> {
///     StoreFuture::new(async {
///         // … a round trip to the store …
///         Err(StoreError::new(std::io::Error::other("store unreachable")))
///     })
/// }
/// # let _ = (answer_now(), answer_later());
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct StoreFuture<'a, T> {
    inner: Answer<'a, T>,
}

enum Answer<'a, T> {
    /// Taken when polled.
    Ready(Option<Result<T, StoreError>>),
    Pending(Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>),
}

impl<'a, T> StoreFuture<'a, T> {
    /// An answer known already.
    pub fn ready(result: Result<T, StoreError>) -> Self {
        Self {
            inner: Answer::Ready(Some(result)),
        }
    }

    /// An answer `future` will give (boxed).
    pub fn new(future: impl Future<Output = Result<T, StoreError>> + Send + 'a) -> Self {
        Self {
            inner: Answer::Pending(Box::pin(future)),
        }
    }
}

impl<T: Unpin> Future for StoreFuture<'_, T> {
    type Output = Result<T, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().inner {
            // As `std::future::Ready` does: polling a completed future is a bug in the caller.
            Answer::Ready(answer) => Poll::Ready(answer.take().expect("polled after completion")),
            Answer::Pending(future) => future.as_mut().poll(cx),
        }
    }
}

impl<T> fmt::Debug for StoreFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.inner {
            Answer::Ready(Some(_)) => "ready",
            Answer::Ready(None) => "taken",
            Answer::Pending(_) => "pending",
        };
        f.debug_tuple("StoreFuture").field(&state).finish()
    }
}

/// Where the layer records which deliveries it has seen, claimed and processed.
///
/// Implementations must make each method atomic with respect to every other caller, in this
/// process and (for a shared store) in others.
pub trait DedupeStore: Send + Sync + 'static {
    /// Claims `key` for `token`'s owner, for at most `in_flight_ttl`.
    ///
    /// A key never seen, or released, becomes claimed (its attempt count goes up by one); a key
    /// claimed by someone else whose claim has not expired is [`Claim::InFlight`]; a completed
    /// key is [`Claim::Done`] until its window expires. An expired key, an abandoned claim
    /// included, is as if never seen: its history is forgotten. `now` is the policy's clock.
    fn claim<'a>(
        &'a self,
        key: &'a str,
        token: Token,
        in_flight_ttl: Duration,
        now: SystemTime,
    ) -> StoreFuture<'a, Claim>;

    /// Marks `key` done, if `token` still owns its claim, and remembers it for `window`.
    /// Returns whether the claim was still owned (it may have expired meanwhile).
    fn complete<'a>(
        &'a self,
        key: &'a str,
        token: Token,
        window: Duration,
        now: SystemTime,
    ) -> StoreFuture<'a, bool>;

    /// Gives `key` up, if `token` still owns its claim, so the next copy is processed; the
    /// attempt count and first-seen time are kept for `window`. Returns whether the claim was
    /// still owned.
    fn release<'a>(&'a self, key: &'a str, token: Token, window: Duration)
        -> StoreFuture<'a, bool>;

    /// Extends `key`'s claim to `in_flight_ttl` from now, if `token` still owns it (a live
    /// claim: an expired one stays expired). Returns whether it did.
    ///
    /// The layer renews a claim every half `in_flight_ttl` while its handler runs, so that a
    /// claim lapses only when its holder is gone (the process died), however long the handler
    /// takes.
    fn renew<'a>(
        &'a self,
        key: &'a str,
        token: Token,
        in_flight_ttl: Duration,
    ) -> StoreFuture<'a, bool>;
}

/// The answer to [`DedupeStore::claim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Claim {
    /// The caller owns the delivery: call the handler.
    Claimed {
        /// How many times this key was claimed, this one included (1 for a first delivery).
        attempt: u32,
        /// When the key was first claimed.
        first_seen: SystemTime,
    },
    /// Another caller is processing it now.
    InFlight {
        /// Attempts so far.
        attempts: u32,
    },
    /// Already processed.
    Done {
        /// Attempts that were claimed before it completed.
        attempts: u32,
        /// When it completed.
        completed_at: SystemTime,
    },
}

/// An owner token: identifies one claim, so that an instance never completes or releases a claim
/// it does not hold. Random, 128 bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token(u128);

impl Token {
    /// A fresh random token.
    pub fn random() -> Self {
        Self(fastrand::u128(..))
    }

    /// The token's value (stores serialise it).
    pub fn get(self) -> u128 {
        self.0
    }

    /// A token from a stored value.
    pub fn from_u128(value: u128) -> Self {
        Self(value)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({:032x})", self.0)
    }
}

/// A store could not answer (Redis down, a timeout…). The policy's [`StoreFailure`] decides
/// what the layer does then.
#[derive(Debug)]
pub struct StoreError {
    source: BoxError,
}

impl StoreError {
    /// Wraps the underlying error.
    pub fn new(source: impl Into<BoxError>) -> Self {
        Self {
            source: source.into(),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dedupe store unavailable: {}", self.source)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// What the layer does when the store cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StoreFailure {
    /// Process the delivery anyway and flag the report `dedupe_unavailable`: nothing is lost,
    /// but a duplicate may be processed twice. The default.
    #[default]
    Open,
    /// Answer `503 Service Unavailable`, so the provider retries later.
    Closed,
}

/// What identifies a delivery for dedupe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DedupeKey {
    /// The route's name and the provider's delivery id, when the route's signature vouches for
    /// the id ([`Scheme::covers`](crate::provider::Scheme::covers)); the body's SHA-256 when the
    /// request has no id, or when the id is in a header the signature does not cover. The
    /// default.
    ///
    /// GitHub, Shopify, Razorpay, Linear, Twilio and GitLab put the delivery id in a header they
    /// do not sign: anyone who once saw a signed request could send it again under a fresh id.
    /// Their routes dedupe by the body, so a replay is a duplicate whatever its id, and so is
    /// the provider's own redelivery (the same body). Reports still carry the provider's id. A
    /// route without a scheme verifies nothing and dedupes by the id it is sent.
    #[default]
    DeliveryId,
    /// The route's name and the body's SHA-256, even when there is an id (for providers whose
    /// ids change on retries).
    BodySha256,
}

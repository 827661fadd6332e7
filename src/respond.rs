//! The layer's own answers: [`Answer`], what the layer answers without the handler, and
//! [`Respond`], which shapes that answer into a response.

use std::time::Duration;

use http::{Response, StatusCode};

use crate::{Delivery, Outcome, SignatureStatus};

/// What the layer answers by itself: a rejection (`401`, `408`, `413`, `422`, `400`, `503`), a
/// duplicate (`200` by default), a copy still in flight (`409`), or a handler that panicked
/// (`500`). Handed to a [`Respond`] hook to shape the response.
///
/// # Example
///
/// ```
/// use http::{header, Response};
/// use webhook_monitor::Answer;
///
/// /// A problem+json body (RFC 9457) for senders whose signature checked out; the bare status
/// /// for everyone else.
/// fn problem(answer: &Answer<'_>) -> Response<String> {
///     let mut res = Response::new(String::new());
///     *res.status_mut() = answer.status();
///     if answer.verified() {
///         let detail = answer.reason().unwrap_or_default();
///         let body = serde_json::json!({
///             "status": answer.status().as_u16(),
///             "title": answer.outcome().as_str(),
///             "detail": detail,
///         });
///         res.headers_mut().insert(
///             header::CONTENT_TYPE,
///             header::HeaderValue::from_static("application/problem+json"),
///         );
///         *res.body_mut() = body.to_string();
///     }
///     res
/// }
/// # let _ = problem;
/// ```
#[derive(Debug)]
pub struct Answer<'a> {
    pub(crate) status: StatusCode,
    pub(crate) outcome: Outcome,
    pub(crate) reason: Option<&'a str>,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) delivery: &'a Delivery,
}

impl Answer<'_> {
    /// The status the layer answers with: the rejection's
    /// ([`RejectReason::status`](crate::RejectReason::status)), the policy's
    /// [duplicate status](crate::Policy::duplicate_status), `409` for a copy in flight, `500`
    /// after a panic. A hook may answer with another.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Why: [`Outcome::Rejected`] with its reason, [`Outcome::Duplicate`],
    /// [`Outcome::InFlight`] or [`Outcome::Panicked`], as the report says.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// The details, as in the report (which check failed, by how much a body was over the
    /// limit, the panic's message). Before the signature is verified, every byte of the
    /// request is the sender's: tell an unverified sender no more than you would tell anyone
    /// (see [`verified`](Self::verified)).
    pub fn reason(&self) -> Option<&str> {
        self.reason
    }

    /// How long a copy in flight should wait before it is retried: the `Retry-After` the layer
    /// sends with a `409`. If the hook's response has no `Retry-After` header, the layer adds
    /// this one.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// What the layer learned about the request so far (its signature status, the delivery id
    /// once verified, …).
    pub fn delivery(&self) -> &Delivery {
        self.delivery
    }

    /// Whether the request's signature was verified: only then is the sender known.
    pub fn verified(&self) -> bool {
        matches!(self.delivery.signature(), SignatureStatus::Verified { .. })
    }
}

/// Shapes the layer's own [`Answer`]s into responses of the route's body type `B`: a JSON error
/// body, a problem+json document. Set with
/// [`WebhookMonitorLayer::respond_with`](crate::WebhookMonitorLayer::respond_with).
///
/// Implemented for closures `Fn(&Answer<'_>) -> Response<B>` (that are `Clone`); the default
/// is [`EmptyResponse`]. A hook runs on the request path: keep it cheap, and never let it
/// panic.
pub trait Respond<B>: Clone + Send + Sync + 'static {
    /// The response for `answer`.
    fn respond(&self, answer: &Answer<'_>) -> Response<B>;
}

impl<B, F> Respond<B> for F
where
    F: Fn(&Answer<'_>) -> Response<B> + Clone + Send + Sync + 'static,
{
    fn respond(&self, answer: &Answer<'_>) -> Response<B> {
        self(answer)
    }
}

/// The default [`Respond`]: the status alone, with an empty body (`B::default()`), and
/// `Retry-After` on a `409`. It tells the sender nothing but the status.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct EmptyResponse;

impl<B: Default> Respond<B> for EmptyResponse {
    #[inline]
    fn respond(&self, answer: &Answer<'_>) -> Response<B> {
        let mut res = Response::new(B::default());
        *res.status_mut() = answer.status;
        res
    }
}

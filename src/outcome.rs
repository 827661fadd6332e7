//! Classification: [`Outcome`], the [`Classify`] hook, and the handler's [`Mark`].

use std::borrow::Cow;

use http::{HeaderMap, StatusCode};

/// How one delivery ended.
///
/// The layer decides `Rejected`, `Panicked`, `Cancelled` and service errors itself; for a response
/// from the handler the policy's [`Classify`] decides, then a handler's [`Mark::failed`] turns it
/// into `Failure(Marked)`, and a success past the policy's timeout budget becomes `Late`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The handler answered 2xx within the budget.
    Success,
    /// The handler answered 2xx, but after the provider's timeout budget: the provider has
    /// already counted the delivery as failed and will retry it.
    Late,
    /// The handler answered, and the answer means the delivery failed.
    Failure(FailureKind),
    /// The layer answered without calling the handler.
    Rejected(RejectReason),
    /// A copy of a delivery already processed: answered without calling the handler (`200` by
    /// default).
    Duplicate,
    /// A copy of a delivery whose handler is still running: answered `409 Conflict` with
    /// `Retry-After`.
    InFlight,
    /// The handler panicked; the layer answered `500 Internal Server Error`.
    Panicked,
    /// The response future was dropped before the response was ready: the client went away or an
    /// outer timeout fired.
    Cancelled,
}

impl Outcome {
    /// The name used in reports: `success`, `late`, `failure`, `rejected`, `duplicate`,
    /// `in_flight`, `panicked`, `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Late => "late",
            Self::Failure(_) => "failure",
            Self::Rejected(_) => "rejected",
            Self::Duplicate => "duplicate",
            Self::InFlight => "in_flight",
            Self::Panicked => "panicked",
            Self::Cancelled => "cancelled",
        }
    }

    /// The failure kind or rejection reason, as named in reports (`server_error`, `too_large`…).
    pub fn detail(self) -> Option<&'static str> {
        match self {
            Self::Failure(kind) => Some(kind.as_str()),
            Self::Rejected(reason) => Some(reason.as_str()),
            _ => None,
        }
    }

    /// `true` for [`Outcome::Success`] only.
    pub fn is_success(self) -> bool {
        self == Self::Success
    }
}

/// Why a handled delivery counts as failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// A 1xx or 3xx answer: providers count anything but 2xx as a failure.
    Redirect,
    /// A 4xx answer.
    ClientError,
    /// A 5xx answer.
    ServerError,
    /// The handler attached [`Mark::failed`], whatever the status.
    Marked,
    /// The inner service returned an error instead of a response (never happens under axum).
    ServiceError,
    /// A 2xx the provider does not count as delivered (Lemon Squeezy accepts only `200`).
    NotAccepted,
}

impl FailureKind {
    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Redirect => "redirect",
            Self::ClientError => "client_error",
            Self::ServerError => "server_error",
            Self::Marked => "marked",
            Self::ServiceError => "service_error",
            Self::NotAccepted => "not_accepted",
        }
    }
}

/// Why the layer answered without calling the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// The body is larger than the policy's limit, declared or read (`413`).
    TooLarge,
    /// Reading the body failed (`400`).
    BodyRead,
    /// The body did not arrive within the policy's
    /// [`body_timeout`](crate::Policy::body_timeout) (`408`).
    BodyTimeout,
    /// The signature header is absent (`401`).
    MissingSignature,
    /// The signature, its header or a signed field cannot be parsed (`401`).
    MalformedSignature,
    /// No signature matched any of the route's secrets (`401`).
    BadSignature,
    /// The signed timestamp is older than the tolerance (`401`).
    StaleTimestamp,
    /// The signed timestamp is further in the future than the tolerance (`401`).
    FutureTimestamp,
    /// The dedupe store could not answer and the policy fails closed (`503`).
    DedupeUnavailable,
    /// A rejecting [payload check](crate::payload) failed (`422`); the report's
    /// [`payload`](crate::DeliveryReport::payload) names it.
    PayloadCheck,
}

impl RejectReason {
    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::BodyRead => "body_read",
            Self::BodyTimeout => "body_timeout",
            Self::MissingSignature => "missing_signature",
            Self::MalformedSignature => "malformed_signature",
            Self::BadSignature => "bad_signature",
            Self::StaleTimestamp => "stale_timestamp",
            Self::FutureTimestamp => "future_timestamp",
            Self::DedupeUnavailable => "dedupe_unavailable",
            Self::PayloadCheck => "payload_check",
        }
    }

    /// The status the layer answers with.
    pub fn status(self) -> StatusCode {
        match self {
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyRead => StatusCode::BAD_REQUEST,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::MissingSignature
            | Self::MalformedSignature
            | Self::BadSignature
            | Self::StaleTimestamp
            | Self::FutureTimestamp => StatusCode::UNAUTHORIZED,
            Self::DedupeUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::PayloadCheck => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

impl From<&crate::provider::SignatureError> for RejectReason {
    fn from(err: &crate::provider::SignatureError) -> Self {
        use crate::provider::SignatureError as E;
        match err {
            E::MissingHeader(_) => Self::MissingSignature,
            E::Malformed(_) => Self::MalformedSignature,
            E::Stale { .. } => Self::StaleTimestamp,
            E::Future { .. } => Self::FutureTimestamp,
            E::Mismatch | E::NoSecret => Self::BadSignature,
        }
    }
}

/// Decides the [`Outcome`] of a response from the handler.
///
/// Implemented for every `Fn(StatusCode, &HeaderMap) -> Outcome + Send + Sync + 'static`. It runs
/// on the request path, so it must be cheap and must not block.
///
/// # Example
///
/// ```
/// use http::{HeaderMap, StatusCode};
/// use webhook_monitor::{FailureKind, Outcome, Policy};
///
/// // This route answers 409 to say "already have it": count that as a success.
/// let policy = Policy::custom("orders").classify_with(|status: StatusCode, _: &HeaderMap| {
///     match status.as_u16() {
///         200..=299 | 409 => Outcome::Success,
///         400..=499 => Outcome::Failure(FailureKind::ClientError),
///         _ => Outcome::Failure(FailureKind::ServerError),
///     }
/// });
/// # let _ = policy;
/// ```
pub trait Classify: Send + Sync + 'static {
    /// Classifies a response by its status and headers.
    fn classify(&self, status: StatusCode, headers: &HeaderMap) -> Outcome;
}

impl<F> Classify for F
where
    F: Fn(StatusCode, &HeaderMap) -> Outcome + Send + Sync + 'static,
{
    fn classify(&self, status: StatusCode, headers: &HeaderMap) -> Outcome {
        self(status, headers)
    }
}

/// The default classifier: 2xx is a success; 1xx and 3xx, 4xx and 5xx are failures of their class.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct DefaultClassify;

impl Classify for DefaultClassify {
    fn classify(&self, status: StatusCode, _: &HeaderMap) -> Outcome {
        if status.is_success() {
            Outcome::Success
        } else if status.is_client_error() {
            Outcome::Failure(FailureKind::ClientError)
        } else if status.is_server_error() {
            Outcome::Failure(FailureKind::ServerError)
        } else {
            Outcome::Failure(FailureKind::Redirect)
        }
    }
}

/// What a handler attaches to its response to tell what the status code hides.
///
/// Put it in the response's extensions (with the `axum` feature, return it in a tuple). The layer
/// takes it out of the response: a `Mark::failed` makes the delivery a
/// [`Failure(Marked)`](FailureKind::Marked) whatever the status, and the fields travel in the
/// report.
///
/// # Example
///
/// ```
/// use http::{Response, StatusCode};
/// use webhook_monitor::Mark;
///
/// // Answer 200 so the provider does not retry a payload that will never work, but make
/// // sure the monitoring sees the failure.
/// let mut res = Response::new(String::new());
/// res.extensions_mut().insert(Mark::failed("missing payment_id").field("records", 0u64));
/// assert_eq!(res.status(), StatusCode::OK);
/// ```
///
/// With the `axum` feature:
///
/// ```
/// # #[cfg(feature = "axum")]
/// # {
/// use axum::{http::StatusCode, response::IntoResponse};
/// use webhook_monitor::Mark;
///
/// async fn handler() -> impl IntoResponse {
///     (StatusCode::OK, Mark::new().field("records", 12u64), "done")
/// }
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mark {
    pub(crate) failure: Option<Cow<'static, str>>,
    pub(crate) fields: Vec<Field>,
}

impl Mark {
    /// A mark with no verdict, to carry [fields](Self::field) only.
    pub fn new() -> Self {
        Self::default()
    }

    /// A mark that reports the delivery as failed, with a reason.
    pub fn failed(reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            failure: Some(reason.into()),
            fields: Vec::new(),
        }
    }

    /// Adds a custom field to the report (records processed, a tenant…).
    #[must_use]
    pub fn field(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<FieldValue>,
    ) -> Self {
        self.fields.push(Field {
            name: name.into(),
            value: value.into(),
        });
        self
    }

    /// The failure reason, for a [`Mark::failed`].
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// The custom fields.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }
}

/// A custom field of a [`Mark`].
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The field's name.
    pub name: Cow<'static, str>,
    /// Its value.
    pub value: FieldValue,
}

/// The value of a custom [`Field`].
///
/// Deserializes from a JSON boolean, number, string or `null`, as in a report's `fields` and an
/// alert's `figures`. A number reads back as its form says: an integer as `U64` (`I64` if
/// negative), one with a fraction or an exponent as `F64`. So an `I64` that is not negative
/// reads back as a `U64`, and `null` (a non-finite `F64`) as `F64(NaN)`: both write the same
/// JSON again.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FieldValue {
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer.
    U64(u64),
    /// A float. Non-finite values are reported as `null`.
    F64(f64),
    /// A string.
    Str(Cow<'static, str>),
}

macro_rules! field_value_from {
    ($($t:ty => $variant:ident as $as:ty),* $(,)?) => {
        $(impl From<$t> for FieldValue {
            fn from(v: $t) -> Self {
                Self::$variant(<$as>::from(v))
            }
        })*
    };
}

field_value_from! {
    bool => Bool as bool,
    i32 => I64 as i64, i64 => I64 as i64,
    u32 => U64 as u64, u64 => U64 as u64,
    f32 => F64 as f64, f64 => F64 as f64,
    &'static str => Str as Cow<'static, str>,
    String => Str as Cow<'static, str>,
}

impl From<usize> for FieldValue {
    fn from(v: usize) -> Self {
        Self::U64(v as u64)
    }
}

#[cfg(feature = "axum")]
impl axum_core::response::IntoResponseParts for Mark {
    type Error = std::convert::Infallible;

    fn into_response_parts(
        self,
        mut res: axum_core::response::ResponseParts,
    ) -> Result<axum_core::response::ResponseParts, Self::Error> {
        res.extensions_mut().insert(self);
        Ok(res)
    }
}

/// The message a panic carries, when it is a string (as `panic!` makes it).
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> Option<Cow<'static, str>> {
    if let Some(s) = panic.downcast_ref::<&'static str>() {
        Some(Cow::Borrowed(*s))
    } else {
        panic
            .downcast_ref::<String>()
            .map(|s| Cow::Owned(s.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_classify_by_status_class() {
        let c = DefaultClassify;
        let h = HeaderMap::new();
        let cases = [
            (200, Outcome::Success),
            (204, Outcome::Success),
            (101, Outcome::Failure(FailureKind::Redirect)),
            (301, Outcome::Failure(FailureKind::Redirect)),
            (404, Outcome::Failure(FailureKind::ClientError)),
            (429, Outcome::Failure(FailureKind::ClientError)),
            (500, Outcome::Failure(FailureKind::ServerError)),
            (503, Outcome::Failure(FailureKind::ServerError)),
        ];
        for (code, want) in cases {
            let status = StatusCode::from_u16(code).expect("valid status");
            assert_eq!(c.classify(status, &h), want, "{code}");
        }
    }

    #[test]
    fn closures_classify() {
        let c = |s: StatusCode, _: &HeaderMap| {
            if s == StatusCode::CONFLICT {
                Outcome::Success
            } else {
                Outcome::Failure(FailureKind::ServerError)
            }
        };
        assert_eq!(
            c.classify(StatusCode::CONFLICT, &HeaderMap::new()),
            Outcome::Success
        );
    }

    #[test]
    fn mark_carries_reason_and_fields() {
        let m = Mark::failed("missing payment_id")
            .field("records", 3u64)
            .field("tenant", "t1");
        assert_eq!(m.failure(), Some("missing payment_id"));
        assert_eq!(m.fields()[0].value, FieldValue::U64(3));
        assert_eq!(m.fields()[1].value, FieldValue::Str("t1".into()));
        assert_eq!(Mark::new().failure(), None);
    }
}

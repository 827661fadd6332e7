//! Where a delivery's id, event type, attempt and send time come from ([`Source`],
//! [`AttemptSource`]), and reading them from a request.

use std::{
    borrow::Cow,
    time::{Duration, SystemTime},
};

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::{
    delivery::DeliveryData,
    json::{
        peek::{self, Scalar},
        IntoPointer, JsonPointer,
    },
    Policy,
};

/// Where a field of the [`Delivery`](crate::Delivery) is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// A request header.
    Header(HeaderName),
    /// A field of a JSON body, by [`JsonPointer`] (`/data/id`). The body is peeked without
    /// building a document, and only when a policy asks for a body field.
    Json(JsonPointer),
}

impl Source {
    /// A header, by its name, in any case (`"X-GitHub-Delivery"` and `"x-github-delivery"` are
    /// the same header).
    ///
    /// # Panics
    ///
    /// If `name` is not a valid header name (empty, or a character a header name cannot hold):
    /// a name written in code is a bug to fix. For a name from configuration, parse a
    /// [`HeaderName`] first and use [`Source::Header`].
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::provider::Source;
    ///
    /// assert_eq!(Source::header("X-Request-Id"), Source::header("x-request-id"));
    /// ```
    #[track_caller]
    pub fn header(name: &str) -> Self {
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(name) => Self::Header(name),
            Err(_) => panic!("invalid header name {name:?}"),
        }
    }

    /// A JSON body field, by pointer: a [`JsonPointer`], or a pointer string (`"/data/id"`).
    ///
    /// # Panics
    ///
    /// If `pointer` is a string that is not a valid JSON pointer (see [`IntoPointer`]).
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::{provider::Source, JsonPointer};
    ///
    /// let from_config = JsonPointer::parse("/data/object/id")?;
    /// assert_eq!(Source::json(from_config), Source::json("/data/object/id"));
    /// # Ok::<_, webhook_monitor::InvalidPointer>(())
    /// ```
    #[track_caller]
    pub fn json(pointer: impl IntoPointer) -> Self {
        Self::Json(pointer.into_pointer())
    }
}

/// Where the delivery attempt number comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptSource {
    /// A number in a header or body field, plus `offset`: Slack's `X-Slack-Retry-Num: 1` is the
    /// second attempt (offset 1); a field that counts attempts has offset 0. A delivery without
    /// the field is the first attempt when `absent_is_first` is set.
    Counter {
        /// Where the number is.
        source: Source,
        /// Added to the number.
        offset: u32,
        /// A request without the field is attempt 1 (retry headers appear on retries only).
        absent_is_first: bool,
    },
}

impl AttemptSource {
    /// The attempt number is in `source`, as is.
    pub fn count(source: Source) -> Self {
        Self::Counter {
            source,
            offset: 0,
            absent_is_first: false,
        }
    }

    /// `source` counts retries, and appears on retries only (Slack, Square): attempt = retries + 1,
    /// and 1 when absent.
    pub fn retries(source: Source) -> Self {
        Self::Counter {
            source,
            offset: 1,
            absent_is_first: true,
        }
    }
}

/// Reads the sources in headers: before the body is read.
pub(crate) fn read_headers(policy: &Policy, headers: &HeaderMap, d: &mut DeliveryData) {
    let header = |s: Option<&Source>| match s {
        Some(Source::Header(name)) => headers.get(name),
        _ => None,
    };
    d.id = header(policy.delivery_id.as_ref()).and_then(|v| owned_value(v.as_bytes()));
    d.event_type = header(policy.event_type.as_ref()).and_then(|v| owned_value(v.as_bytes()));
    d.sent_at = header(policy.sent_at.as_ref())
        .and_then(|v| v.to_str().ok())
        .and_then(|text| timestamp(&Scalar::Str(Cow::Borrowed(text))));
    if let Some(AttemptSource::Counter {
        source: source @ Source::Header(_),
        offset,
        absent_is_first,
    }) = &policy.attempt
    {
        let n = header(Some(source)).and_then(|v| v.to_str().ok()?.trim().parse().ok());
        d.attempt = counter(n, *offset, *absent_is_first);
    }
}

/// Reads the sources in body fields: once the body is verified.
pub(crate) fn read_body(policy: &Policy, body: &[u8], d: &mut DeliveryData) {
    fn pointer(s: Option<&Source>) -> Option<&JsonPointer> {
        match s {
            Some(Source::Json(pointer)) => Some(pointer),
            _ => None,
        }
    }
    let attempt = policy.attempt.as_ref().map(
        |AttemptSource::Counter {
             source,
             offset,
             absent_is_first,
         }| (source, *offset, *absent_is_first),
    );
    let pointers = [
        pointer(policy.delivery_id.as_ref()),
        pointer(policy.event_type.as_ref()),
        pointer(attempt.map(|(source, ..)| source)),
        pointer(policy.sent_at.as_ref()),
    ];
    let Ok([id, event_type, n, sent_at]) = peek::peek(body, pointers) else {
        return;
    };
    if pointers[3].is_some() {
        d.sent_at = sent_at.as_ref().and_then(timestamp);
    }
    if pointers[0].is_some() {
        d.id = id.and_then(|v| owned_value(v.as_text()?.as_bytes()));
    }
    if pointers[1].is_some() {
        d.event_type = event_type.and_then(|v| owned_value(v.as_text()?.as_bytes()));
    }
    if let (Some(_), Some((_, offset, first))) = (pointers[2], attempt) {
        let n = n
            .and_then(|v| v.as_u64())
            .and_then(|n| u32::try_from(n).ok());
        d.attempt = counter(n, offset, first);
    }
}

/// The attempt number from a counter field: the field plus `offset`, or 1 when the field is
/// absent and its absence means a first attempt.
fn counter(n: Option<u32>, offset: u32, absent_is_first: bool) -> Option<u32> {
    match n {
        Some(n) => n.checked_add(offset),
        None => absent_is_first.then_some(1),
    }
}

/// A provider's timestamp: unix seconds (milliseconds when it is that large), as a number or
/// digits, or an RFC 3339 time.
fn timestamp(value: &Scalar<'_>) -> Option<SystemTime> {
    let from_unix = |n: u64| {
        let d = if n > 100_000_000_000 {
            Duration::from_millis(n)
        } else {
            Duration::from_secs(n)
        };
        SystemTime::UNIX_EPOCH.checked_add(d)
    };
    match value {
        Scalar::F64(f) if f.is_finite() && *f >= 0.0 => from_unix(*f as u64),
        Scalar::Str(text) => match value.as_u64() {
            Some(n) => from_unix(n),
            None => humantime::parse_rfc3339_weak(text.trim()).ok(),
        },
        other => from_unix(other.as_u64()?),
    }
}

/// A copy of a header's value, or of a body field's text, as a small owned header value.
///
/// Never a slice of the request: hyper's header values and the body share its buffers, and a
/// report waiting in the queue would keep a whole read buffer, or a whole body, alive.
fn owned_value(text: &[u8]) -> Option<HeaderValue> {
    HeaderValue::from_bytes(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_source_takes_its_name_in_any_case() {
        let policy = Policy::custom("r")
            .delivery_id(Source::header("X-GitHub-Delivery"))
            .event_type(Source::header("x-github-event"));
        let mut headers = HeaderMap::new();
        headers.insert("x-github-delivery", HeaderValue::from_static("d-1"));
        headers.insert("X-GitHub-Event", HeaderValue::from_static("push"));
        let mut d = DeliveryData::received("r".into(), None, SystemTime::now());
        read_headers(&policy, &headers, &mut d);
        assert_eq!(d.id(), Some("d-1"));
        assert_eq!(
            d.event_type.as_ref().map(HeaderValue::as_bytes),
            Some(&b"push"[..])
        );
    }

    #[test]
    #[should_panic(expected = r#"invalid header name "x id""#)]
    fn an_invalid_header_name_panics_where_it_is_given() {
        let _ = Source::header("x id");
    }
}

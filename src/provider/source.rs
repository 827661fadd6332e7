//! Where a delivery's id, event type and attempt come from: [`Source`], [`AttemptSource`].

use http::HeaderName;

/// Where a field of the [`Delivery`](crate::Delivery) is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// A request header.
    Header(HeaderName),
    /// A JSON field of the body, by its path of object keys (`&["data", "id"]`). The body is
    /// peeked without building a document, and only when a policy asks for a body field.
    Json(&'static [&'static str]),
}

impl Source {
    /// A header, by its lowercase name.
    ///
    /// # Panics
    ///
    /// If `name` is not a valid lowercase header name (as [`HeaderName::from_static`]).
    pub fn header(name: &'static str) -> Self {
        Self::Header(HeaderName::from_static(name))
    }

    /// A JSON body field, by path.
    pub fn json(path: &'static [&'static str]) -> Self {
        Self::Json(path)
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

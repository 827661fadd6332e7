//! What the fuzz targets in `fuzz/` reach that the API does not show: each parser that reads
//! request bytes, behind a thin wrapper with public types. Compiled only under `--cfg fuzzing`.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body::Body;
use serde_json::Value;

use crate::{
    body::BodyError,
    json::{peek::Scalar, JsonPointer},
    provider::{SignatureError, SignedRequest, Source, Verified},
    BoxError, Policy,
};

/// `policy`'s scheme on `request`; `None` for a policy without one.
pub fn verify(
    policy: &Policy,
    request: &SignedRequest<'_>,
) -> Option<Result<Verified, SignatureError>> {
    policy.scheme.as_ref().map(|scheme| scheme.verify(request))
}

/// Whether `policy`'s scheme vouches for `source` in a request with `headers`.
pub fn covers(policy: &Policy, source: &Source, headers: &HeaderMap) -> Option<bool> {
    policy
        .scheme
        .as_ref()
        .map(|scheme| scheme.covers(source, headers))
}

/// The dedupe store key of a delivery with `id`.
pub fn delivery_key(policy: &Policy, id: Option<&str>, headers: &HeaderMap, body: &[u8]) -> String {
    crate::dedupe::delivery_key(policy, id, None, headers, body)
}

/// The scalars at four JSON pointers, as `serde_json` values (to compare with `serde_json`'s
/// own); `None` if a pointer is not valid.
///
/// # Errors
///
/// The peek's error, as text.
pub fn peek(body: &[u8], pointers: [&str; 4]) -> Option<Result<[Option<Value>; 4], String>> {
    let [a, b, c, d] = pointers.map(|p| JsonPointer::parse(p).ok());
    let pointers = [a?, b?, c?, d?];
    let found = crate::json::peek::peek(body, pointers.each_ref().map(Some));
    Some(found.map_err(|e| e.to_string()).map(|found| {
        found.map(|scalar| {
            scalar.map(|s| match s {
                Scalar::Str(s) => Value::String(s.into_owned()),
                Scalar::U64(n) => Value::from(n),
                Scalar::I64(n) => Value::from(n),
                Scalar::F64(f) => {
                    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
                }
                Scalar::Bool(b) => Value::Bool(b),
                Scalar::Null => Value::Null,
            })
        })
    }))
}

/// How [`read_body`] failed, and after how many bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFailure {
    TooLarge(u64),
    Read(u64),
    TimedOut(u64),
}

/// The layer's body reader, with a deadline `timeout` from now (`None`: none).
///
/// # Errors
///
/// Why and where it stopped.
pub async fn read_body<B>(
    body: B,
    limit: usize,
    timeout: Option<Duration>,
) -> Result<Bytes, BodyFailure>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let timeout = timeout.unwrap_or(Duration::MAX);
    crate::body::read_body(body, limit, tokio::time::Instant::now(), timeout)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge { read } => BodyFailure::TooLarge(read),
            BodyError::Read { read, .. } => BodyFailure::Read(read),
            BodyError::TimedOut { read } => BodyFailure::TimedOut(read),
        })
}

/// The wait an HTTP backend's `Retry-After` asks for.
#[cfg(feature = "http")]
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    crate::report::http::retry_after(headers)
}

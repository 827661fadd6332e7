//! Helpers for the presets' tests: requests from header pairs at a fixed clock, and HMACs
//! computed with the `hmac` crate directly, independently of [`HmacScheme`].

use std::time::{Duration, SystemTime};

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use sha2::Digest as _;

use super::{HmacScheme, Scheme, SignatureError, SignedRequest, Verified};

/// The URI of the test requests. No preset reads it (Square's URL is configured, not read).
pub(crate) const URI: &str = "https://example.com/webhooks";

/// `secs` seconds after the unix epoch.
pub(crate) fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// A header map from `(name, value)` pairs; names in any case.
pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::try_from(*name).expect("a valid header name"),
            HeaderValue::from_str(value).expect("a valid header value"),
        );
    }
    map
}

/// Verifies `body` sent with these headers to [`URI`], at `now` (unix seconds).
pub(crate) fn verify(
    scheme: &impl Scheme,
    pairs: &[(&str, &str)],
    body: impl AsRef<[u8]>,
    now: u64,
) -> Result<Verified, SignatureError> {
    verify_at_uri(scheme, URI, pairs, body, now)
}

/// [`verify`], with the request sent to `uri`.
pub(crate) fn verify_at_uri(
    scheme: &impl Scheme,
    uri: &str,
    pairs: &[(&str, &str)],
    body: impl AsRef<[u8]>,
    now: u64,
) -> Result<Verified, SignatureError> {
    let headers = headers(pairs);
    let uri: Uri = uri.parse().expect("a valid URI");
    scheme.verify(&SignedRequest::new(&headers, &uri, body.as_ref(), at(now)))
}

/// `scheme`'s signature of `body` (and of the signed headers among `pairs`) with the secret at
/// `index`, encoded but without prefix or layout, by [`HmacScheme::sign`].
pub(crate) fn sign(
    scheme: &HmacScheme,
    index: usize,
    pairs: &[(&str, &str)],
    body: impl AsRef<[u8]>,
    timestamp: Option<&str>,
) -> String {
    let headers = headers(pairs);
    let uri = Uri::from_static(URI);
    let request = SignedRequest::new(&headers, &uri, body.as_ref(), SystemTime::UNIX_EPOCH);
    scheme
        .sign(index, &request, timestamp)
        .expect("the signed headers are present")
        .expect("a secret at this index")
}

/// HMAC-SHA256 of the concatenated `parts`, by the `hmac` crate.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// HMAC-SHA1 of the concatenated `parts`, by the `hmac` crate.
pub(crate) fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(key).expect("any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Standard, padded base64.
pub(crate) fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The SHA-256 of `bytes`, in hex: pins a fixture's exact bytes.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// `signature` with the character at `index` replaced by another one that is valid in both hex
/// and base64, so the result still decodes but to different bytes.
pub(crate) fn flip_char(signature: &str, index: usize) -> String {
    let mut bytes = signature.as_bytes().to_vec();
    bytes[index] = if bytes[index] == b'0' { b'1' } else { b'0' };
    String::from_utf8(bytes).expect("ASCII in, ASCII out")
}

/// `body` with one bit of its byte at `index` flipped.
pub(crate) fn flip_byte(body: &[u8], index: usize) -> Vec<u8> {
    let mut bytes = body.to_vec();
    bytes[index] ^= 0x01;
    bytes
}

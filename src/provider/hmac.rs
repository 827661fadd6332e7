//! [`HmacScheme`]: an HMAC signature scheme described as data.

use std::{borrow::Cow, fmt, time::Duration};

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderName};
use subtle::ConstantTimeEq;

use super::{
    check_timestamp, parse_timestamp, secret::BASE64_SIGNATURE, Scheme, Secrets, SignatureError,
    SignedRequest, Source, Verified,
};
use crate::json::{peek, IntoPointer, JsonPointer};

/// The hash under the HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Digest {
    /// SHA-1 (GitHub's legacy header, Intercom, Twilio).
    Sha1,
    /// SHA-256.
    Sha256,
}

/// How the signature is written in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Encoding {
    /// Hexadecimal (either case).
    Hex,
    /// Standard base64, padded or not.
    Base64,
}

/// How the signature header is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureFormat {
    /// One signature after a prefix (`sha256=…`, `v0=…`, or no prefix).
    Single {
        /// Text before the signature.
        prefix: Cow<'static, str>,
    },
    /// `key=value` pairs (Stripe `t=…,v1=…,v1=…`, Paddle `ts=…;h1=…`): the timestamp under
    /// `timestamp_key`, one or more signatures under `signature_key`, other keys ignored.
    Pairs {
        /// Between pairs: `,` or `;`.
        separator: char,
        /// Key of the timestamp (`t`, `ts`).
        timestamp_key: Cow<'static, str>,
        /// Key of each signature (`v1`, `h1`).
        signature_key: Cow<'static, str>,
    },
    /// Space-separated `version,signature` entries (Standard Webhooks `v1,…`); other versions are
    /// ignored.
    Versioned {
        /// The version to check (`v1`).
        version: Cow<'static, str>,
    },
}

/// A piece of the signed content, fed to the HMAC in order without building the string.
///
/// Its `Debug` never prints a literal's text, which may be a URL with credentials in it
/// (Square's notification URL): only its length.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Part {
    /// Fixed text, such as a separator (`.`) or the endpoint's public URL (Square).
    Literal(Cow<'static, str>),
    /// The timestamp, exactly as sent.
    Timestamp,
    /// A header's value (Standard Webhooks' `webhook-id`).
    Header(HeaderName),
    /// The raw body.
    Body,
}

impl fmt::Debug for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Literal(text) => write!(f, "Literal(<{} bytes>)", text.len()),
            Self::Timestamp => f.write_str("Timestamp"),
            Self::Header(name) => f.debug_tuple("Header").field(name).finish(),
            Self::Body => f.write_str("Body"),
        }
    }
}

impl Part {
    /// Fixed text.
    pub fn text(s: impl Into<Cow<'static, str>>) -> Self {
        Self::Literal(s.into())
    }
}

/// Where the signed timestamp comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimestampSource {
    /// No timestamp: replays are caught by dedupe only (on the body, unless the delivery id is
    /// a signed header).
    None,
    /// A header holding unix seconds.
    Header(HeaderName),
    /// The `timestamp_key` of a [`SignatureFormat::Pairs`] header.
    Signature,
    /// A JSON body field holding unix milliseconds (Linear's `webhookTimestamp`); checked after
    /// the signature, since it is only trustworthy then.
    JsonMillis(JsonPointer),
}

impl TimestampSource {
    /// A JSON body field holding unix milliseconds, by pointer: a [`JsonPointer`] or a pointer
    /// string (`"/webhookTimestamp"`).
    ///
    /// # Panics
    ///
    /// If `pointer` is a string that is not a valid JSON pointer (see [`IntoPointer`]).
    #[track_caller]
    pub fn json_millis(pointer: impl IntoPointer) -> Self {
        Self::JsonMillis(pointer.into_pointer())
    }
}

/// An HMAC signature scheme described as data: header, layout, digest, encoding, signed content,
/// timestamp and tolerance. Each secret's keyed state is prepared once, so a request pays for
/// hashing its content only.
///
/// # Example
///
/// A provider that sends `X-Acme-Signature: t=<unix>,s=<hex hmac-sha256 of "{t}.{body}">`:
///
/// ```
/// use webhook_monitor::provider::{Digest, Encoding, HmacScheme, Part, SignatureFormat, TimestampSource};
/// use webhook_monitor::Policy;
///
/// let scheme = HmacScheme::new(
///     http::HeaderName::from_static("x-acme-signature"),
///     Digest::Sha256,
///     Encoding::Hex,
///     "acme-signing-secret",
/// )
/// .format(SignatureFormat::Pairs { separator: ',', timestamp_key: "t".into(), signature_key: "s".into() })
/// .timestamp(TimestampSource::Signature)
/// .signed_content([Part::Timestamp, Part::text("."), Part::Body]);
/// let policy = Policy::custom("acme").verify_with(scheme);
/// # let _ = policy;
/// ```
#[derive(Clone)]
pub struct HmacScheme {
    header: HeaderName,
    encoding: Encoding,
    format: SignatureFormat,
    content: Vec<Part>,
    timestamp: TimestampSource,
    tolerance: Duration,
    /// One keyed state per usable secret, with the secret's index.
    keys: Vec<(usize, Keyed)>,
}

impl HmacScheme {
    /// The default timestamp tolerance, in both directions: 5 minutes.
    pub const DEFAULT_TOLERANCE: Duration = super::DEFAULT_TOLERANCE;

    /// A scheme whose header holds one signature of the raw body. Defaults: no prefix, no
    /// timestamp, [`Self::DEFAULT_TOLERANCE`].
    pub fn new(
        header: HeaderName,
        digest: Digest,
        encoding: Encoding,
        secrets: impl Into<Secrets>,
    ) -> Self {
        let keys = secrets
            .into()
            .usable()
            .map(|(index, key)| (index, Keyed::new(digest, key)))
            .collect();
        Self {
            header,
            encoding,
            format: SignatureFormat::Single {
                prefix: Cow::Borrowed(""),
            },
            content: vec![Part::Body],
            timestamp: TimestampSource::None,
            tolerance: Self::DEFAULT_TOLERANCE,
            keys,
        }
    }

    /// The header's layout. Defaults to a single signature with no prefix.
    #[must_use]
    pub fn format(mut self, format: SignatureFormat) -> Self {
        self.format = format;
        self
    }

    /// Shorthand for a single signature after `prefix` (`"sha256="`).
    #[must_use]
    pub fn prefix(self, prefix: impl Into<Cow<'static, str>>) -> Self {
        self.format(SignatureFormat::Single {
            prefix: prefix.into(),
        })
    }

    /// What is signed, in order. Defaults to the body alone.
    #[must_use]
    pub fn signed_content(mut self, parts: impl IntoIterator<Item = Part>) -> Self {
        self.content = parts.into_iter().collect();
        self
    }

    /// Where the timestamp is. Defaults to [`TimestampSource::None`].
    #[must_use]
    pub fn timestamp(mut self, source: TimestampSource) -> Self {
        self.timestamp = source;
        self
    }

    /// How far the timestamp may be from now, in either direction. Defaults to
    /// [`Self::DEFAULT_TOLERANCE`].
    #[must_use]
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// The signature header's name.
    pub fn header(&self) -> &HeaderName {
        &self.header
    }

    /// The signature of `request` with the secret at `index`, encoded as the provider writes it
    /// (without prefix or layout), and `None` if there is no such secret. `timestamp` is the value
    /// the timestamp part signs. For signers in tests: see [`crate::testing`].
    ///
    /// # Errors
    ///
    /// `MissingHeader` when a signed header is absent from the request.
    pub fn sign(
        &self,
        index: usize,
        request: &SignedRequest<'_>,
        timestamp: Option<&str>,
    ) -> Result<Option<String>, SignatureError> {
        let Some((_, key)) = self.keys.iter().find(|(i, _)| *i == index) else {
            return Ok(None);
        };
        let tag = self.tag(key, request, timestamp)?;
        Ok(Some(match self.encoding {
            Encoding::Hex => hex::encode(tag.as_slice()),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(tag.as_slice()),
        }))
    }

    fn tag(
        &self,
        key: &Keyed,
        request: &SignedRequest<'_>,
        timestamp: Option<&str>,
    ) -> Result<Tag, SignatureError> {
        let mut mac = key.clone();
        for part in &self.content {
            match part {
                Part::Literal(s) => mac.update(s.as_bytes()),
                Part::Timestamp => mac.update(timestamp.unwrap_or_default().as_bytes()),
                Part::Header(name) => mac.update(request.header(name)?.as_bytes()),
                Part::Body => mac.update(request.body()),
            }
        }
        Ok(mac.finish())
    }

    /// The timestamp as sent, from the header or the signature header.
    fn sent_timestamp<'a>(
        &self,
        request: &SignedRequest<'a>,
        value: &'a str,
    ) -> Result<Option<&'a str>, SignatureError> {
        match &self.timestamp {
            TimestampSource::None | TimestampSource::JsonMillis(_) => Ok(None),
            TimestampSource::Header(name) => request.header(name).map(Some),
            TimestampSource::Signature => {
                let SignatureFormat::Pairs {
                    separator,
                    timestamp_key,
                    ..
                } = &self.format
                else {
                    return Err(SignatureError::Malformed("no timestamp in the signature"));
                };
                value
                    .split(*separator)
                    .filter_map(|pair| pair.trim().split_once('='))
                    .find(|(k, _)| k == timestamp_key)
                    .map(|(_, v)| Some(v))
                    .ok_or(SignatureError::Malformed("no timestamp in the signature"))
            }
        }
    }

    /// The signatures in the header, in order, not yet decoded.
    fn candidates<'v>(&'v self, value: &'v str) -> impl Iterator<Item = &'v str> + 'v {
        // A visible-ASCII header value never contains '\n': a single signature is one item.
        let separator = match &self.format {
            SignatureFormat::Single { .. } => '\n',
            SignatureFormat::Pairs { separator, .. } => *separator,
            SignatureFormat::Versioned { .. } => ' ',
        };
        value
            .split(separator)
            .filter_map(move |item| match &self.format {
                SignatureFormat::Single { prefix } => item.trim().strip_prefix(prefix.as_ref()),
                SignatureFormat::Pairs { signature_key, .. } => item
                    .trim()
                    .split_once('=')
                    .filter(|(k, _)| k == signature_key)
                    .map(|(_, v)| v),
                SignatureFormat::Versioned { version } => item
                    .split_once(',')
                    .filter(|(v, _)| v == version)
                    .map(|(_, s)| s),
            })
    }

    fn decode<'b>(&self, candidate: &str, buf: &'b mut [u8; 64]) -> Option<&'b [u8]> {
        match self.encoding {
            Encoding::Hex => {
                let out = buf.get_mut(..candidate.len() / 2)?;
                hex::decode_to_slice(candidate, out).ok()?;
                Some(out)
            }
            Encoding::Base64 => {
                let n = BASE64_SIGNATURE.decode_slice(candidate, buf).ok()?;
                Some(&buf[..n])
            }
        }
    }
}

impl Scheme for HmacScheme {
    fn verify(&self, request: &SignedRequest<'_>) -> Result<Verified, SignatureError> {
        if self.keys.is_empty() {
            return Err(SignatureError::NoSecret);
        }
        let value = request.header(&self.header)?;
        let timestamp = self.sent_timestamp(request, value)?;
        let secs = timestamp.map(parse_timestamp).transpose()?;
        let mut well_formed = false;
        let mut buf = [0u8; 64];
        for (index, key) in &self.keys {
            let tag = self.tag(key, request, timestamp)?;
            for candidate in self.candidates(value) {
                let Some(signature) = self.decode(candidate, &mut buf) else {
                    continue; // an unparsable entry (Paddle's `h1=dummy`) is skipped
                };
                well_formed = true;
                if bool::from(signature.ct_eq(tag.as_slice())) {
                    // The timestamp's age is checked once it is known to be signed: a sender
                    // without the secret learns nothing from the reason (not even our clock).
                    if let Some(secs) = secs {
                        check_timestamp(secs, request.now(), self.tolerance)?;
                    }
                    self.check_body_timestamp(request)?;
                    return Ok(Verified::by_secret(*index));
                }
            }
        }
        Err(if well_formed {
            SignatureError::Mismatch
        } else {
            SignatureError::Malformed("no well-formed signature in the header")
        })
    }

    /// The body, when it is signed (every preset signs it); the headers the signed content
    /// names (Standard Webhooks' `webhook-id`); and a header that holds the very value of one of
    /// those (Svix sends its id as `svix-id` and `webhook-id` alike, and signs one of them).
    fn covers(&self, source: &Source, headers: &HeaderMap) -> bool {
        self.content.iter().any(|part| match (part, source) {
            (Part::Body, Source::Json(_)) => true,
            (Part::Header(signed), Source::Header(name)) => {
                signed == name
                    || headers
                        .get(name)
                        .is_some_and(|value| headers.get(signed) == Some(value))
            }
            _ => false,
        })
    }
}

impl HmacScheme {
    fn check_body_timestamp(&self, request: &SignedRequest<'_>) -> Result<(), SignatureError> {
        let TimestampSource::JsonMillis(path) = &self.timestamp else {
            return Ok(());
        };
        let [field] = peek::peek(request.body(), [Some(path)])
            .map_err(|_| SignatureError::Malformed("body is not JSON"))?;
        let millis = field
            .and_then(|f| f.as_u64())
            .ok_or(SignatureError::Malformed("no timestamp in the body"))?;
        check_timestamp(millis / 1000, request.now(), self.tolerance)
    }
}

impl fmt::Debug for HmacScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HmacScheme")
            .field("header", &self.header)
            .field("encoding", &self.encoding)
            .field("format", &self.format)
            .field("content", &self.content)
            .field("timestamp", &self.timestamp)
            .field("tolerance", &self.tolerance)
            .field("secrets", &self.keys.len())
            .finish()
    }
}

/// A secret's keyed HMAC state, ready to be cloned for each request.
#[derive(Clone)]
enum Keyed {
    Sha1(Hmac<sha1::Sha1>),
    Sha256(Hmac<sha2::Sha256>),
}

impl Keyed {
    fn new(digest: Digest, key: &[u8]) -> Self {
        const ANY_LENGTH: &str = "HMAC accepts keys of any length";
        match digest {
            Digest::Sha1 => Self::Sha1(KeyInit::new_from_slice(key).expect(ANY_LENGTH)),
            Digest::Sha256 => Self::Sha256(KeyInit::new_from_slice(key).expect(ANY_LENGTH)),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sha1(m) => m.update(data),
            Self::Sha256(m) => m.update(data),
        }
    }

    fn finish(self) -> Tag {
        let mut tag = Tag {
            bytes: [0; 32],
            len: 0,
        };
        match self {
            Self::Sha1(m) => tag.fill(&m.finalize().into_bytes()),
            Self::Sha256(m) => tag.fill(&m.finalize().into_bytes()),
        }
        tag
    }
}

struct Tag {
    bytes: [u8; 32],
    len: usize,
}

impl Tag {
    fn fill(&mut self, digest: &[u8]) {
        self.len = digest.len();
        self.bytes[..self.len].copy_from_slice(digest);
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use http::{HeaderMap, HeaderValue, Uri};

    use super::*;
    use crate::provider::Secret;

    fn verify(scheme: &HmacScheme, header: &str, body: &[u8]) -> Result<Verified, SignatureError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            scheme.header().clone(),
            HeaderValue::from_str(header).unwrap(),
        );
        let uri = Uri::from_static("/");
        scheme.verify(&SignedRequest::new(
            &headers,
            &uri,
            body,
            SystemTime::UNIX_EPOCH,
        ))
    }

    fn github_sig(key: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn an_empty_secret_never_verifies() {
        // An unset environment variable read as "": the empty key must not let anyone sign.
        let forged = github_sig("", b"{}");
        assert_eq!(
            verify(&HmacScheme::github(""), &forged, b"{}"),
            Err(SignatureError::NoSecret)
        );
        let rotating = HmacScheme::github(["", "real"]);
        assert_eq!(
            verify(&rotating, &forged, b"{}"),
            Err(SignatureError::Mismatch)
        );
        let good = github_sig("real", b"{}");
        assert_eq!(
            verify(&rotating, &good, b"{}"),
            Ok(Verified::by_secret(1)),
            "index kept"
        );
    }

    #[test]
    fn a_hex_signature_takes_no_prefix() {
        let scheme = HmacScheme::github("real");
        let good = github_sig("real", b"{}");
        assert_eq!(verify(&scheme, &good, b"{}"), Ok(Verified::by_secret(0)));
        let upper = good.replace("sha256=", "").to_uppercase();
        assert_eq!(
            verify(&scheme, &format!("sha256={upper}"), b"{}"),
            Ok(Verified::by_secret(0)),
            "either case"
        );
        // The hex decoder strips a `0x` prefix; the signature's length rules it out first.
        let prefixed = good.replace("sha256=", "sha256=0x");
        assert!(verify(&scheme, &prefixed, b"{}").is_err());
        let short = prefixed[..prefixed.len() - 2].to_owned();
        assert!(verify(&scheme, &short, b"{}").is_err());
    }

    #[test]
    fn a_base64_signature_has_one_spelling() {
        // Standard Webhooks V1: the valid signature ends "Kkw="; "Kkx=" decodes to the same
        // bytes under a lenient decoder (non-zero trailing bits) and must not verify.
        let secret = Secret::from_base64("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let scheme = HmacScheme::standard_webhooks("webhook", secret)
            .tolerance(Duration::from_secs(u64::from(u32::MAX)) * 100);
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let mut headers = HeaderMap::new();
        headers.insert(
            "webhook-id",
            HeaderValue::from_static("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk"),
        );
        headers.insert("webhook-timestamp", HeaderValue::from_static("1649367553"));
        let uri = Uri::from_static("/");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_649_367_553);
        let mut check = |sig: &'static str| {
            headers.insert("webhook-signature", HeaderValue::from_static(sig));
            scheme.verify(&SignedRequest::new(&headers, &uri, body, now))
        };
        assert_eq!(
            check("v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="),
            Ok(Verified::by_secret(0))
        );
        assert!(check("v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkx=").is_err());
    }
}

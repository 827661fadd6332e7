//! Mailgun: [`MailgunScheme`] and [`Policy::mailgun`].
//!
//! Mailgun puts the signature inside the JSON body: `signature.timestamp`, `signature.token` and
//! `signature.signature`, the hex HMAC-SHA256 of `timestamp` followed by `token` (no separator),
//! keyed with the HTTP webhook signing key.

use std::{fmt, sync::LazyLock, time::Duration};

use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{check_timestamp, Scheme, Secrets, SignatureError, SignedRequest, Source, Verified};
use crate::{
    json::{
        peek::{self, Scalar},
        IntoPointer, JsonPointer,
    },
    Policy,
};

/// Where the signature's fields are in the body: its timestamp, token and signature.
static FIELDS: LazyLock<[JsonPointer; 3]> = LazyLock::new(|| {
    [
        "/signature/timestamp",
        "/signature/token",
        "/signature/signature",
    ]
    .map(IntoPointer::into_pointer)
});

/// Mailgun's in-body signature: `signature.signature` is the hex HMAC-SHA256 of
/// `signature.timestamp` + `signature.token`, keyed with the webhook signing key.
///
/// The timestamp (a string or a number of unix seconds) must be within the
/// [tolerance](Self::tolerance) of now, in both directions; it is checked after the signature,
/// since it is only trustworthy then. Mailgun asks receivers to refuse a token seen before: the
/// [`Policy::mailgun`] preset makes the token the delivery id, so dedupe does that.
///
/// Only JSON webhooks are understood: legacy form-encoded webhooks, and the `parent-signature`
/// of subaccount events, are not.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use webhook_monitor::{provider::MailgunScheme, Policy};
///
/// let scheme = MailgunScheme::new("mailgun-signing-key").tolerance(Duration::from_secs(900));
/// let policy = Policy::mailgun("mailgun-signing-key").verify_with(scheme);
/// # let _ = policy;
/// ```
#[derive(Clone)]
pub struct MailgunScheme {
    keys: Vec<(usize, Hmac<Sha256>)>,
    tolerance: Duration,
}

impl MailgunScheme {
    /// The default timestamp tolerance, in both directions: 5 minutes.
    pub const DEFAULT_TOLERANCE: Duration = super::DEFAULT_TOLERANCE;

    /// Checks signatures made with any of `signing_keys`. The tolerance defaults to
    /// [`Self::DEFAULT_TOLERANCE`].
    pub fn new(signing_keys: impl Into<Secrets>) -> Self {
        let keys = signing_keys
            .into()
            .usable()
            .map(|(index, key)| {
                let mac =
                    Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
                (index, mac)
            })
            .collect();
        Self {
            keys,
            tolerance: Self::DEFAULT_TOLERANCE,
        }
    }

    /// How far `signature.timestamp` may be from now, in either direction. Defaults to
    /// [`Self::DEFAULT_TOLERANCE`]; Mailgun advises against being "too aggressive".
    #[must_use]
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }
}

impl Scheme for MailgunScheme {
    fn verify(&self, request: &SignedRequest<'_>) -> Result<Verified, SignatureError> {
        if self.keys.is_empty() {
            return Err(SignatureError::NoSecret);
        }
        let [timestamp, token, signature] = peek::peek(request.body(), FIELDS.each_ref().map(Some))
            .map_err(|_| SignatureError::Malformed("body is not JSON"))?;
        let timestamp = timestamp.ok_or(SignatureError::Malformed(
            "no signature.timestamp in the body",
        ))?;
        let secs = timestamp.as_u64().ok_or(SignatureError::Malformed(
            "signature.timestamp is not a number",
        ))?;
        let timestamp = timestamp.as_text().ok_or(SignatureError::Malformed(
            "signature.timestamp is not a number",
        ))?;
        let token = match token {
            Some(Scalar::Str(token)) => token,
            _ => return Err(SignatureError::Malformed("no signature.token in the body")),
        };
        let signature = match signature {
            Some(Scalar::Str(signature)) => signature,
            _ => {
                return Err(SignatureError::Malformed(
                    "no signature.signature in the body",
                ))
            }
        };
        let signature = signature.trim();
        if signature.is_empty() || signature.len() % 2 != 0 {
            return Err(SignatureError::Malformed("signature is not hex"));
        }
        let mut buf = [0u8; 32];
        let Some(decoded) = buf.get_mut(..signature.len() / 2) else {
            // Longer than any HMAC-SHA256: it cannot match, if it is hex at all.
            return Err(if signature.bytes().all(|b| b.is_ascii_hexdigit()) {
                SignatureError::Mismatch
            } else {
                SignatureError::Malformed("signature is not hex")
            });
        };
        hex::decode_to_slice(signature, decoded)
            .map_err(|_| SignatureError::Malformed("signature is not hex"))?;
        for (index, key) in &self.keys {
            let mut mac = key.clone();
            mac.update(timestamp.as_bytes());
            mac.update(token.as_bytes());
            if bool::from(decoded.ct_eq(mac.finalize().into_bytes().as_slice())) {
                check_timestamp(secs, request.now(), self.tolerance)?;
                return Ok(Verified::by_secret(*index));
            }
        }
        Err(SignatureError::Mismatch)
    }

    /// `signature.timestamp` and `signature.token` only: Mailgun signs nothing else of the body.
    fn covers(&self, source: &Source, _: &HeaderMap) -> bool {
        matches!(source, Source::Json(path) if FIELDS[..2].contains(path))
    }
}

impl fmt::Debug for MailgunScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailgunScheme")
            .field("tolerance", &self.tolerance)
            .field("secrets", &self.keys.len())
            .finish()
    }
}

impl Policy {
    /// Mailgun: verifies the signature inside the JSON body with [`MailgunScheme`] (5-minute
    /// timestamp tolerance), keyed with the HTTP webhook signing key.
    ///
    /// Fills in: provider `"mailgun"`, the delivery id from the body's `signature.token` (the
    /// token Mailgun says to cache and never honour twice), the event type from
    /// `event-data.event`, and an 8-hour retry horizon (Mailgun retries for 8 hours). Mailgun
    /// documents no response timeout, so there is no timeout budget.
    ///
    /// Answer `406 Not Acceptable` to refuse a delivery for good: Mailgun retries on any other
    /// non-200 code.
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::Policy;
    ///
    /// let policy = Policy::mailgun(["new-signing-key", "old-signing-key"]);
    /// assert_eq!(policy.name(), "mailgun");
    /// ```
    pub fn mailgun(signing_key: impl Into<Secrets>) -> Self {
        Self::custom("mailgun")
            .provider("mailgun")
            .verify_with(MailgunScheme::new(signing_key))
            .delivery_id(Source::json(&FIELDS[1]))
            .event_type(Source::json("/event-data/event"))
            .retry_horizon(Duration::from_secs(8 * 60 * 60))
    }
}

/// `signature.signature` for `timestamp` and `token`, as Mailgun computes it.
pub(crate) fn sign(secret: &[u8], timestamp: &str, token: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(token.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use http::{HeaderMap, Uri};

    use super::*;

    const KEY: &str = "key-secret-example";
    const TS: u64 = 1_770_920_772;
    const TOKEN_B: &str = "e0b5477167110d68991efc6b9f89f0a11066af27834600e123";
    const SIG_B: &str = "6fe69daded99073af059d9c26a4966cd935a57dc565e7283381f204c6688a329";

    fn body(timestamp: &str, token: &str, signature: &str) -> String {
        format!(
            r#"{{"signature":{{"timestamp":{timestamp},"token":"{token}","signature":"{signature}"}},
            "event-data":{{"event":"delivered","id":"CPgfbmQMTCKtHW6uIWtuVe"}}}}"#
        )
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn check_at(
        scheme: &MailgunScheme,
        body: &str,
        now: SystemTime,
    ) -> Result<Verified, SignatureError> {
        let headers = HeaderMap::new();
        let uri = Uri::from_static("/mailgun");
        scheme.verify(&SignedRequest::new(&headers, &uri, body.as_bytes(), now))
    }

    fn check(scheme: &MailgunScheme, body: &str) -> Result<Verified, SignatureError> {
        check_at(scheme, body, at(TS + 10))
    }

    #[test]
    fn table_b_vector() {
        assert_eq!(sign(KEY.as_bytes(), &TS.to_string(), TOKEN_B), SIG_B);
        let scheme = MailgunScheme::new(KEY);
        let ok = Ok(Verified::by_secret(0));
        // Mailgun sends the timestamp as a string; a number signs the same digits.
        assert_eq!(check(&scheme, &body(r#""1770920772""#, TOKEN_B, SIG_B)), ok);
        assert_eq!(check(&scheme, &body("1770920772", TOKEN_B, SIG_B)), ok);
        let upper = SIG_B.to_ascii_uppercase();
        assert_eq!(check(&scheme, &body("1770920772", TOKEN_B, &upper)), ok);
    }

    #[test]
    fn tampering_is_rejected() {
        let scheme = MailgunScheme::new(KEY);
        let ts = r#""1770920772""#;
        // One byte of the token, of the signature, of the timestamp.
        let token = TOKEN_B.replacen('e', "f", 1);
        assert_eq!(
            check(&scheme, &body(ts, &token, SIG_B)),
            Err(SignatureError::Mismatch)
        );
        let flipped = SIG_B.replacen('6', "7", 1);
        assert_eq!(
            check(&scheme, &body(ts, TOKEN_B, &flipped)),
            Err(SignatureError::Mismatch)
        );
        for ts in [r#""1770920773""#, r#""2770920772""#, r#""0770920772""#] {
            assert_eq!(
                check(&scheme, &body(ts, TOKEN_B, SIG_B)),
                Err(SignatureError::Mismatch),
                "{ts}"
            );
        }
        // Truncated, too long, not hex.
        let truncated = SIG_B.get(..62).unwrap();
        assert_eq!(
            check(&scheme, &body(ts, TOKEN_B, truncated)),
            Err(SignatureError::Mismatch)
        );
        let long = format!("{SIG_B}00");
        assert_eq!(
            check(&scheme, &body(ts, TOKEN_B, &long)),
            Err(SignatureError::Mismatch)
        );
        for bad in [SIG_B.get(..63).unwrap(), "", "zz", &format!("{SIG_B}zz")] {
            assert!(
                matches!(
                    check(&scheme, &body(ts, TOKEN_B, bad)),
                    Err(SignatureError::Malformed(_))
                ),
                "{bad}"
            );
        }
        // Another key.
        let other = sign(b"another-key", "1770920772", TOKEN_B);
        assert_eq!(
            check(&scheme, &body(ts, TOKEN_B, &other)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn other_body_fields_are_not_signed() {
        // Mailgun signs the timestamp and token only; the rest of the body is not covered.
        let scheme = MailgunScheme::new(KEY);
        let tampered = body(r#""1770920772""#, TOKEN_B, SIG_B).replace("delivered", "delivereD");
        assert_eq!(check(&scheme, &tampered), Ok(Verified::by_secret(0)));
        // But the body must still be one JSON document.
        let broken = format!("{tampered} x");
        assert_eq!(
            check(&scheme, &broken),
            Err(SignatureError::Malformed("body is not JSON"))
        );
    }

    #[test]
    fn missing_or_mistyped_fields() {
        let scheme = MailgunScheme::new(KEY);
        let bodies = [
            "{}".to_owned(),
            r#"{"signature":{"token":"t","signature":"00"}}"#.to_owned(),
            r#"{"signature":{"timestamp":"1","signature":"00"}}"#.to_owned(),
            r#"{"signature":{"timestamp":"1","token":"t"}}"#.to_owned(),
            body(r#""17709207x2""#, TOKEN_B, SIG_B),
            body("-1", TOKEN_B, SIG_B),
            body("1.5", TOKEN_B, SIG_B),
            body(r#""""#, TOKEN_B, SIG_B),
            body("null", TOKEN_B, SIG_B),
            r#"{"signature":{"timestamp":"1","token":7,"signature":"00"}}"#.to_owned(),
            r#"{"signature":{"timestamp":"1","token":"t","signature":{}}}"#.to_owned(),
            r#"{"signature":"flat"}"#.to_owned(),
            "[1,2]".to_owned(),
            "not json".to_owned(),
            String::new(),
        ];
        for body in &bodies {
            assert!(
                matches!(check(&scheme, body), Err(SignatureError::Malformed(_))),
                "{body}: {:?}",
                check(&scheme, body)
            );
        }
    }

    #[test]
    fn timestamp_tolerance() {
        let scheme = MailgunScheme::new(KEY);
        let valid = body(r#""1770920772""#, TOKEN_B, SIG_B);
        assert_eq!(
            check_at(&scheme, &valid, at(TS + 301)),
            Err(SignatureError::Stale {
                age_secs: 301,
                tolerance_secs: 300
            })
        );
        assert_eq!(
            check_at(&scheme, &valid, at(TS - 301)),
            Err(SignatureError::Future {
                ahead_secs: 301,
                tolerance_secs: 300
            })
        );
        assert!(check_at(&scheme, &valid, at(TS + 300)).is_ok());
        assert!(check_at(&scheme, &valid, at(TS - 300)).is_ok());
        let lenient = scheme.tolerance(Duration::from_secs(3600));
        assert_eq!(
            check_at(&lenient, &valid, at(TS + 3000)),
            Ok(Verified::by_secret(0))
        );
        // A forged request is a bad signature, whatever its timestamp.
        let forged = body(r#""1""#, TOKEN_B, SIG_B);
        assert_eq!(check(&lenient, &forged), Err(SignatureError::Mismatch));
    }

    #[test]
    fn rotation_reports_the_matching_key() {
        let scheme = MailgunScheme::new(["new-key", KEY]);
        let valid = body(r#""1770920772""#, TOKEN_B, SIG_B);
        assert_eq!(check(&scheme, &valid), Ok(Verified::by_secret(1)));
        let none = MailgunScheme::new(Secrets::default());
        assert_eq!(check(&none, &valid), Err(SignatureError::NoSecret));
    }

    #[test]
    fn escaped_strings_are_signed_decoded() {
        let token = "tok/\"x\"";
        let signature = sign(KEY.as_bytes(), "1770920772", token);
        let body = body(r#""1770920772""#, r#"tok\/\"x\""#, &signature);
        assert_eq!(
            check(&MailgunScheme::new(KEY), &body),
            Ok(Verified::by_secret(0))
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let shown = format!("{:?}", MailgunScheme::new(["key-one", "key-two"]));
        assert!(!shown.contains("key-"), "{shown}");
        assert!(shown.contains("secrets: 2"), "{shown}");
    }

    #[test]
    fn preset() {
        let policy = Policy::mailgun(KEY);
        assert_eq!(policy.provider.as_deref(), Some("mailgun"));
        assert_eq!(policy.delivery_id, Some(Source::json(&FIELDS[1])));
        assert_eq!(policy.event_type, Some(Source::json("/event-data/event")));
        assert_eq!(policy.retry_horizon, Some(Duration::from_secs(28_800)));
        assert!(policy.scheme.is_some());
    }
}

//! Discord interactions: [`DiscordScheme`] (Ed25519) and [`InvalidPublicKey`], shared with the
//! other public-key schemes.

use std::{fmt, time::Duration};

use ed25519_dalek::{Signature, VerifyingKey, PUBLIC_KEY_LENGTH, SIGNATURE_LENGTH};
use http::HeaderName;

use super::{
    check_timestamp, parse_timestamp, Scheme, SignatureError, SignedRequest, Source, Verified,
};
use crate::Policy;

const SIGNATURE: HeaderName = HeaderName::from_static("x-signature-ed25519");
const TIMESTAMP: HeaderName = HeaderName::from_static("x-signature-timestamp");

/// Discord's interactions endpoint signature: Ed25519 over `timestamp + body`, checked against
/// the application's public key.
///
/// Discord sends the signature, in hex, in `X-Signature-Ed25519` and the signed unix timestamp in
/// `X-Signature-Timestamp`. The signature is checked with strict Ed25519 verification (small-order
/// points and non-canonical encodings are rejected), and the timestamp must be within
/// [`tolerance`](Self::tolerance) of now in either direction. Discord routinely sends invalid
/// signatures on purpose to check that the endpoint rejects them: it answers `401`.
///
/// Several public keys may be given (during a key rotation); the report names the index of the one
/// that matched. [`Policy::discord`] builds a whole policy around one key.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use webhook_monitor::{provider::DiscordScheme, Policy};
///
/// # fn main() -> Result<(), webhook_monitor::provider::InvalidPublicKey> {
/// let scheme = DiscordScheme::new([
///     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", // new
///     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", // old
/// ])?
/// .tolerance(Duration::from_secs(60));
/// let policy = Policy::custom("interactions")
///     .provider("discord")
///     .verify_with(scheme);
/// # let _ = policy;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct DiscordScheme {
    keys: Vec<VerifyingKey>,
    tolerance: Duration,
}

impl DiscordScheme {
    /// The default timestamp tolerance, in both directions: 5 minutes.
    pub const DEFAULT_TOLERANCE: Duration = super::DEFAULT_TOLERANCE;

    /// A scheme accepting signatures by any of these public keys, each written in hex (64
    /// characters, either case) as the Discord Developer Portal shows it. Defaults:
    /// [`Self::DEFAULT_TOLERANCE`].
    ///
    /// With no key, every request is rejected ([`SignatureError::NoSecret`]).
    ///
    /// # Errors
    ///
    /// The first key that is not hex ([`InvalidPublicKey::NotHex`]), not 32 bytes, not a point on
    /// the curve, or a weak (small-order) key ([`InvalidPublicKey::Invalid`]).
    pub fn new<I, S>(public_keys_hex: I) -> Result<Self, InvalidPublicKey>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let keys = public_keys_hex
            .into_iter()
            .map(|key| parse_key(key.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            keys,
            tolerance: Self::DEFAULT_TOLERANCE,
        })
    }

    /// How far the timestamp may be from now, in either direction. Defaults to
    /// [`Self::DEFAULT_TOLERANCE`].
    #[must_use]
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// How many public keys are accepted.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// `true` when there is no key: every request is then rejected.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn parse_key(hex_key: &str) -> Result<VerifyingKey, InvalidPublicKey> {
    let hex_key = hex_key.trim();
    if !hex_key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(InvalidPublicKey::NotHex);
    }
    let mut bytes = [0u8; PUBLIC_KEY_LENGTH];
    // Hex, but not 64 digits: not an Ed25519 key.
    hex::decode_to_slice(hex_key, &mut bytes).map_err(|_| InvalidPublicKey::Invalid)?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| InvalidPublicKey::Invalid)?;
    if key.is_weak() {
        return Err(InvalidPublicKey::Invalid);
    }
    Ok(key)
}

impl Scheme for DiscordScheme {
    fn verify(&self, request: &SignedRequest<'_>) -> Result<Verified, SignatureError> {
        if self.keys.is_empty() {
            return Err(SignatureError::NoSecret);
        }
        let signature = request.header(&SIGNATURE)?;
        let timestamp = request.header(&TIMESTAMP)?;
        let secs = parse_timestamp(timestamp)?;

        let mut bytes = [0u8; SIGNATURE_LENGTH];
        let malformed = SignatureError::Malformed("signature is not 64 bytes of hex");
        let hex_signature = signature.trim();
        // Exactly 128 digits: the hex decoder would also take a `0x` prefix.
        if hex_signature.len() != 2 * SIGNATURE_LENGTH {
            return Err(malformed);
        }
        hex::decode_to_slice(hex_signature, &mut bytes).map_err(|_| malformed)?;
        let signature = Signature::from_bytes(&bytes);

        // `verify_strict` takes the message in one piece: timestamp and body are copied once.
        let mut message = Vec::with_capacity(timestamp.len() + request.body().len());
        message.extend_from_slice(timestamp.as_bytes());
        message.extend_from_slice(request.body());
        let verified = self
            .keys
            .iter()
            .position(|key| key.verify_strict(&message, &signature).is_ok())
            .map(Verified::by_secret)
            .ok_or(SignatureError::Mismatch)?;
        // Only a signed timestamp's age is worth telling: an unsigned sender learns nothing.
        check_timestamp(secs, request.now(), self.tolerance)?;
        Ok(verified)
    }
}

impl fmt::Debug for DiscordScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscordScheme")
            .field("public_keys", &self.keys.len())
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

impl Policy {
    /// A policy for a Discord interactions endpoint, verified with the application's public key
    /// (hex, from the Developer Portal).
    ///
    /// Named `"discord"` (route and provider). Fills in: [`DiscordScheme`] with its default
    /// tolerance, the delivery id from the body's `id` (the interaction id), the event type from
    /// the body's `type` (`1` is a PING), and a 3 s timeout budget: Discord invalidates the
    /// interaction token when the first response takes longer. Discord does not retry, so there
    /// is no retry horizon. Every setting can be overridden; for a key rotation, replace the
    /// scheme with [`verify_with`](Self::verify_with) and a [`DiscordScheme`] holding both keys.
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::{provider::DiscordScheme, Policy};
    ///
    /// # fn main() -> Result<(), webhook_monitor::provider::InvalidPublicKey> {
    /// const NEW: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    /// const OLD: &str = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";
    /// let policy = Policy::discord(NEW)?;
    /// // During a key rotation, accept both keys:
    /// let rotating = Policy::discord(NEW)?.verify_with(DiscordScheme::new([NEW, OLD])?);
    /// assert!(Policy::discord("not a key").is_err());
    /// # let _ = (policy, rotating);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`InvalidPublicKey`] when the key is not a valid hex Ed25519 public key.
    #[cfg_attr(docsrs, doc(cfg(feature = "asymmetric")))]
    pub fn discord(public_key_hex: &str) -> Result<Self, InvalidPublicKey> {
        let scheme = DiscordScheme::new([public_key_hex])?;
        Ok(Self::custom("discord")
            .provider("discord")
            .verify_with(scheme)
            .delivery_id(Source::json("/id"))
            .event_type(Source::json("/type"))
            .timeout_budget(Duration::from_secs(3)))
    }
}

/// A public key that could not be parsed, by [`DiscordScheme::new`] (hex Ed25519 keys) or
/// [`SendgridScheme::new`](super::SendgridScheme::new) (base64 DER P-256 keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidPublicKey {
    /// Not hexadecimal (for a key given in hex).
    NotHex,
    /// Not base64 (for a key given in base64).
    NotBase64,
    /// Decoded, but not a key of the scheme's algorithm: wrong length, not on the curve, a weak
    /// key, or the wrong key type.
    Invalid,
}

impl fmt::Display for InvalidPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotHex => "public key is not valid hex",
            Self::NotBase64 => "public key is not valid base64",
            Self::Invalid => "public key is not a valid key for this scheme",
        })
    }
}

impl std::error::Error for InvalidPublicKey {}

/// The hex `X-Signature-Ed25519` value for `timestamp` and `body`, as Discord would send it.
pub(crate) fn sign(
    signing_key: &ed25519_dalek::SigningKey,
    timestamp: &str,
    body: &[u8],
) -> String {
    use ed25519_dalek::Signer;
    let mut message = Vec::with_capacity(timestamp.len() + body.len());
    message.extend_from_slice(timestamp.as_bytes());
    message.extend_from_slice(body);
    hex::encode(signing_key.sign(&message).to_bytes())
}

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    use ed25519_dalek::SigningKey;
    use http::{HeaderMap, HeaderValue, Uri};

    use super::*;

    /// RFC 8032 section 7.1, TEST 1.
    const SECRET: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    /// RFC 8032 section 7.1, TEST 2 (another key).
    const OTHER_SECRET: &str = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
    const OTHER_PUBLIC: &str = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";

    /// PROVIDERS.md table B, Discord row (derived, not published by Discord).
    const TS: &str = "1700000000";
    const BODY: &[u8] = br#"{"type":1}"#;
    const SIG: &str = "1695961a47c91a1ec033b819b7e87e3dbc583dd0cee6d1fd0216f58ac87b6228\
                       ae531ddbf91fb7bc28d7edf7f08604da16f54624f38a6bc0614e4dc13cd47f0f";

    fn signing_key(secret_hex: &str) -> SigningKey {
        let mut secret = [0u8; 32];
        hex::decode_to_slice(secret_hex, &mut secret).unwrap();
        SigningKey::from_bytes(&secret)
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn headers(signature: Option<&str>, timestamp: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(s) = signature {
            headers.insert(SIGNATURE, HeaderValue::from_str(s).unwrap());
        }
        if let Some(t) = timestamp {
            headers.insert(TIMESTAMP, HeaderValue::from_str(t).unwrap());
        }
        headers
    }

    fn check(
        scheme: &DiscordScheme,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Verified, SignatureError> {
        let uri = Uri::from_static("/interactions");
        scheme.verify(&SignedRequest::new(headers, &uri, body, now))
    }

    fn scheme() -> DiscordScheme {
        DiscordScheme::new([PUBLIC]).unwrap()
    }

    #[test]
    fn derived_vector_passes() {
        let key = signing_key(SECRET);
        assert_eq!(hex::encode(key.verifying_key().to_bytes()), PUBLIC);
        assert_eq!(sign(&key, TS, BODY), SIG);
        let verified = check(
            &scheme(),
            &headers(Some(SIG), Some(TS)),
            BODY,
            at(1_700_000_000),
        );
        assert_eq!(verified, Ok(Verified::by_secret(0)));
        // Upper-case hex is the same signature.
        let upper = SIG.to_ascii_uppercase();
        let verified = check(
            &scheme(),
            &headers(Some(&upper), Some(TS)),
            BODY,
            at(1_700_000_100),
        );
        assert_eq!(verified, Ok(Verified::by_secret(0)));
    }

    #[test]
    fn tampering_is_a_mismatch() {
        let now = at(1_700_000_000);
        let mut body = BODY.to_vec();
        body[2] ^= 1;
        assert_eq!(
            check(&scheme(), &headers(Some(SIG), Some(TS)), &body, now),
            Err(SignatureError::Mismatch)
        );
        let mut sig = SIG.as_bytes().to_vec();
        sig[10] = if sig[10] == b'0' { b'1' } else { b'0' };
        let sig = String::from_utf8(sig).unwrap();
        assert_eq!(
            check(&scheme(), &headers(Some(&sig), Some(TS)), BODY, now),
            Err(SignatureError::Mismatch)
        );
        // Within tolerance, but not the signed timestamp.
        assert_eq!(
            check(
                &scheme(),
                &headers(Some(SIG), Some("1700000001")),
                BODY,
                now
            ),
            Err(SignatureError::Mismatch)
        );
        // The same number, written differently, is not what was signed either.
        assert_eq!(
            check(
                &scheme(),
                &headers(Some(SIG), Some("01700000000")),
                BODY,
                now
            ),
            Err(SignatureError::Mismatch)
        );
        // An `s` half past the group order: rejected by strict verification.
        let mut bytes = [0u8; 64];
        hex::decode_to_slice(SIG, &mut bytes).unwrap();
        bytes[32..].fill(0xff);
        assert_eq!(
            check(
                &scheme(),
                &headers(Some(&hex::encode(bytes)), Some(TS)),
                BODY,
                now
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn missing_headers() {
        let now = at(1_700_000_000);
        assert_eq!(
            check(&scheme(), &headers(None, Some(TS)), BODY, now),
            Err(SignatureError::MissingHeader(SIGNATURE))
        );
        assert_eq!(
            check(&scheme(), &headers(Some(SIG), None), BODY, now),
            Err(SignatureError::MissingHeader(TIMESTAMP))
        );
    }

    #[test]
    fn malformed_signatures_and_timestamps() {
        let now = at(1_700_000_000);
        let not_hex = format!("zz{}", &SIG[2..]);
        for bad in [
            not_hex.as_str(),
            &SIG[..126],
            &SIG[..127],
            "",
            "  ",
            &SIG[..64],
        ] {
            assert!(
                matches!(
                    check(&scheme(), &headers(Some(bad), Some(TS)), BODY, now),
                    Err(SignatureError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        // Too long, and the valid signature with a `0x` prefix: both malformed.
        for bad in [format!("{SIG}00"), format!("0x{SIG}")] {
            assert!(
                matches!(
                    check(&scheme(), &headers(Some(&bad), Some(TS)), BODY, now),
                    Err(SignatureError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        for bad in [
            "",
            "+1700000000",
            "-1",
            "1.7e9",
            "17000000000000000000000",
            "now",
        ] {
            assert_eq!(
                check(&scheme(), &headers(Some(SIG), Some(bad)), BODY, now),
                Err(SignatureError::Malformed("timestamp is not a number")),
                "{bad:?}"
            );
        }
        // Not visible ASCII.
        let mut headers = headers(None, Some(TS));
        headers.insert(SIGNATURE, HeaderValue::from_bytes(b"\xff\xfe").unwrap());
        assert!(matches!(
            check(&scheme(), &headers, BODY, now),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn stale_and_future_timestamps() {
        let h = headers(Some(SIG), Some(TS));
        assert_eq!(
            check(&scheme(), &h, BODY, at(1_700_000_301)),
            Err(SignatureError::Stale {
                age_secs: 301,
                tolerance_secs: 300
            })
        );
        assert_eq!(
            check(&scheme(), &h, BODY, at(1_699_999_699)),
            Err(SignatureError::Future {
                ahead_secs: 301,
                tolerance_secs: 300
            })
        );
        assert!(check(&scheme(), &h, BODY, at(1_700_000_300)).is_ok());
        assert!(check(&scheme(), &h, BODY, at(1_699_999_700)).is_ok());
        let strict = scheme().tolerance(Duration::from_secs(10));
        assert_eq!(
            check(&strict, &h, BODY, at(1_700_000_011)),
            Err(SignatureError::Stale {
                age_secs: 11,
                tolerance_secs: 10
            })
        );
    }

    #[test]
    fn a_stale_timestamp_is_told_only_to_a_valid_signature() {
        let h = headers(Some(SIG), Some(TS));
        for now in [1_700_000_301, 1_699_999_699] {
            assert_eq!(
                check(&scheme(), &h, b"{\"type\":2}", at(now)),
                Err(SignatureError::Mismatch),
                "at {now}"
            );
        }
    }

    #[test]
    fn other_key_and_rotation() {
        let now = at(1_700_000_000);
        let h = headers(Some(SIG), Some(TS));
        let other = DiscordScheme::new([OTHER_PUBLIC]).unwrap();
        assert_eq!(check(&other, &h, BODY, now), Err(SignatureError::Mismatch));
        let rotating = DiscordScheme::new([OTHER_PUBLIC, PUBLIC]).unwrap();
        assert_eq!(check(&rotating, &h, BODY, now), Ok(Verified::by_secret(1)));
        let by_other = sign(&signing_key(OTHER_SECRET), TS, BODY);
        let h = headers(Some(&by_other), Some(TS));
        assert_eq!(check(&rotating, &h, BODY, now), Ok(Verified::by_secret(0)));
        assert_eq!(
            check(&scheme(), &h, BODY, now),
            Err(SignatureError::Mismatch)
        );
        let none = DiscordScheme::new(Vec::<String>::new()).unwrap();
        assert!(none.is_empty());
        assert_eq!(check(&none, &h, BODY, now), Err(SignatureError::NoSecret));
    }

    #[test]
    fn round_trip_with_arbitrary_bodies() {
        let key = signing_key(SECRET);
        let body = br#"{"id":"123","type":2,"data":{"name":"ping"}}"#;
        let sig = sign(&key, "1700000123", body);
        let h = headers(Some(&sig), Some("1700000123"));
        assert_eq!(
            check(&scheme(), &h, body, at(1_700_000_000)),
            Ok(Verified::by_secret(0))
        );
        assert_eq!(
            check(&scheme(), &h, b"", at(1_700_000_000)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn invalid_public_keys() {
        assert_eq!(
            DiscordScheme::new(["xyz"]).unwrap_err(),
            InvalidPublicKey::NotHex
        );
        assert_eq!(
            DiscordScheme::new([&PUBLIC[..63]]).unwrap_err(),
            InvalidPublicKey::Invalid
        );
        assert_eq!(
            DiscordScheme::new([&PUBLIC[..62]]).unwrap_err(),
            InvalidPublicKey::Invalid
        );
        assert_eq!(
            DiscordScheme::new([""]).unwrap_err(),
            InvalidPublicKey::Invalid
        );
        // The identity point: small order, so weak.
        let identity = format!("01{}", "00".repeat(31));
        assert_eq!(
            DiscordScheme::new([identity]).unwrap_err(),
            InvalidPublicKey::Invalid
        );
        // y = 2 is not on the curve.
        let off_curve = format!("02{}", "00".repeat(31));
        assert_eq!(
            DiscordScheme::new([off_curve]).unwrap_err(),
            InvalidPublicKey::Invalid
        );
        // One bad key among good ones fails the whole set.
        assert!(DiscordScheme::new([PUBLIC, "nope"]).is_err());
        assert!(DiscordScheme::new([format!(" {PUBLIC}\n")]).is_ok());
        assert_eq!(
            InvalidPublicKey::NotHex.to_string(),
            "public key is not valid hex"
        );
    }

    #[test]
    fn preset_and_debug() {
        let policy = Policy::discord(PUBLIC).unwrap();
        assert_eq!(&*policy.name, "discord");
        assert_eq!(policy.provider.as_deref(), Some("discord"));
        assert_eq!(policy.delivery_id, Some(Source::json("/id")));
        assert_eq!(policy.event_type, Some(Source::json("/type")));
        assert_eq!(policy.timeout_budget, Some(Duration::from_secs(3)));
        assert!(policy.scheme.is_some());
        assert_eq!(
            Policy::discord("0x00").unwrap_err(),
            InvalidPublicKey::NotHex
        );
        let shown = format!("{:?}", DiscordScheme::new([PUBLIC, OTHER_PUBLIC]).unwrap());
        assert_eq!(shown, "DiscordScheme { public_keys: 2, tolerance: 300s }");
    }

    /// Hostile header values and bodies: every combination is an error or a verification,
    /// never a panic.
    #[test]
    fn hostile_inputs_never_panic() {
        let long = "A".repeat(10_000);
        let values: Vec<&[u8]> = vec![
            b"",
            b" ",
            b"=",
            b"\t\t",
            b"0",
            b"00",
            b"18446744073709551615",
            b"18446744073709551616",
            b"-0",
            b"0x1f",
            b"\xff\xfe\x80",
            b"MA==",
            b"MAA=",
            b"MAYCAQECAQE=",
            b"MIIBAAIBAQ==",
            long.as_bytes(),
            SIG.as_bytes(),
            TS.as_bytes(),
        ];
        let bodies: [&[u8]; 4] = [b"", b"\0", BODY, &[0xff; 300]];
        for signature in &values {
            for timestamp in &values {
                let mut headers = HeaderMap::new();
                headers.insert(SIGNATURE, HeaderValue::from_bytes(signature).unwrap());
                headers.insert(TIMESTAMP, HeaderValue::from_bytes(timestamp).unwrap());
                for body in bodies {
                    for now in [UNIX_EPOCH, SystemTime::now(), at(u64::from(u32::MAX) * 4)] {
                        let _ = check(&scheme(), &headers, body, now);
                    }
                }
            }
        }
    }
}

//! SendGrid's signed Event Webhook: [`SendgridScheme`] (ECDSA P-256).

use std::{fmt, time::Duration};

use base64::Engine;
use http::HeaderName;
use p256::{
    ecdsa::{signature::MultipartVerifier, Signature, VerifyingKey},
    pkcs8::DecodePublicKey,
};

use super::{
    check_timestamp, parse_timestamp,
    secret::{BASE64_ANY_PAD, BASE64_SIGNATURE},
    InvalidPublicKey, Scheme, SignatureError, SignedRequest, Verified,
};
use crate::Policy;

const SIGNATURE: HeaderName = HeaderName::from_static("x-twilio-email-event-webhook-signature");
const TIMESTAMP: HeaderName = HeaderName::from_static("x-twilio-email-event-webhook-timestamp");

/// The longest DER encoding of a P-256 ECDSA signature is 72 bytes; anything longer is malformed.
const MAX_DER_SIGNATURE: usize = 72;

/// SendGrid's signed Event Webhook: ECDSA P-256 with SHA-256 over `timestamp + body`, checked
/// against the account's verification key.
///
/// SendGrid sends the signature (base64 of an ASN.1 DER ECDSA signature) in
/// `X-Twilio-Email-Event-Webhook-Signature` and the signed unix timestamp in
/// `X-Twilio-Email-Event-Webhook-Timestamp`. The body is signed byte for byte, trailing `\r\n`
/// included. The timestamp must be within [`tolerance`](Self::tolerance) of now in either
/// direction.
///
/// Several public keys may be given (during a key rotation); the report names the index of the
/// one that matched. [`Policy::sendgrid`] builds a whole policy around one key.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use webhook_monitor::{provider::SendgridScheme, Policy};
///
/// # fn main() -> Result<(), webhook_monitor::provider::InvalidPublicKey> {
/// let key = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==";
/// let scheme = SendgridScheme::new([key])?.tolerance(Duration::from_secs(600));
/// let policy = Policy::custom("email-events").provider("sendgrid").verify_with(scheme);
/// # let _ = policy;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SendgridScheme {
    keys: Vec<VerifyingKey>,
    tolerance: Duration,
}

impl SendgridScheme {
    /// The default timestamp tolerance, in both directions: 5 minutes.
    pub const DEFAULT_TOLERANCE: Duration = super::DEFAULT_TOLERANCE;

    /// A scheme accepting signatures by any of these public keys, each the base64 DER
    /// (SubjectPublicKeyInfo) string that SendGrid shows as the "Verification Key" and returns
    /// from its "Get Signed Event Webhook's Public Key" API. Defaults:
    /// [`Self::DEFAULT_TOLERANCE`].
    ///
    /// With no key, every request is rejected ([`SignatureError::NoSecret`]).
    ///
    /// # Errors
    ///
    /// The first key that is not base64 ([`InvalidPublicKey::NotBase64`]) or not a P-256 public
    /// key ([`InvalidPublicKey::Invalid`]).
    pub fn new<I, S>(public_keys_base64_der: I) -> Result<Self, InvalidPublicKey>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let keys = public_keys_base64_der
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

fn parse_key(base64_der: &str) -> Result<VerifyingKey, InvalidPublicKey> {
    let der = BASE64_ANY_PAD
        .decode(base64_der.trim())
        .map_err(|_| InvalidPublicKey::NotBase64)?;
    VerifyingKey::from_public_key_der(&der).map_err(|_| InvalidPublicKey::Invalid)
}

impl Scheme for SendgridScheme {
    fn verify(&self, request: &SignedRequest<'_>) -> Result<Verified, SignatureError> {
        if self.keys.is_empty() {
            return Err(SignatureError::NoSecret);
        }
        let signature = request.header(&SIGNATURE)?;
        let timestamp = request.header(&TIMESTAMP)?;
        let secs = parse_timestamp(timestamp)?;

        let mut der = [0u8; MAX_DER_SIGNATURE];
        let len = BASE64_SIGNATURE
            .decode_slice(signature.trim(), &mut der)
            .map_err(|e| match e {
                base64::DecodeSliceError::OutputSliceTooSmall => {
                    SignatureError::Malformed("signature is too long for P-256")
                }
                base64::DecodeSliceError::DecodeError(_) => {
                    SignatureError::Malformed("signature is not base64")
                }
            })?;
        let signature = der
            .get(..len)
            .and_then(|der| Signature::from_der(der).ok())
            .ok_or(SignatureError::Malformed(
                "signature is not a DER ECDSA P-256 signature",
            ))?;

        let message = [timestamp.as_bytes(), request.body()];
        let verified = self
            .keys
            .iter()
            .position(|key| key.multipart_verify(&message, &signature).is_ok())
            .map(Verified::by_secret)
            .ok_or(SignatureError::Mismatch)?;
        // Only a signed timestamp's age is worth telling: an unsigned sender learns nothing.
        check_timestamp(secs, request.now(), self.tolerance)?;
        Ok(verified)
    }
}

impl fmt::Debug for SendgridScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendgridScheme")
            .field("public_keys", &self.keys.len())
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

impl Policy {
    /// A policy for SendGrid's signed Event Webhook, verified with the account's verification key
    /// (base64 DER, as SendGrid shows it).
    ///
    /// Named `"sendgrid"` (route and provider), with [`SendgridScheme`] and its default tolerance.
    /// **No delivery id and no event type are set:** the body is a JSON array of events, each
    /// with its own `sg_event_id` and `event`, so a delivery has no single id or type. De-duplicate
    /// per event in the handler, by `sg_event_id`. No timeout budget or retry horizon is set
    /// either: SendGrid documents neither for the Event Webhook. Every setting can be
    /// overridden; for a key rotation, replace the scheme with [`verify_with`](Self::verify_with)
    /// and a [`SendgridScheme`] holding both keys.
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::Policy;
    ///
    /// # fn main() -> Result<(), webhook_monitor::provider::InvalidPublicKey> {
    /// let policy = Policy::sendgrid(
    ///     "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==",
    /// )?;
    /// # let _ = policy;
    /// assert!(Policy::sendgrid("not a key!").is_err());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`InvalidPublicKey`] when the key is not a base64 DER P-256 public key.
    #[cfg_attr(docsrs, doc(cfg(feature = "asymmetric")))]
    pub fn sendgrid(public_key_base64_der: &str) -> Result<Self, InvalidPublicKey> {
        let scheme = SendgridScheme::new([public_key_base64_der])?;
        Ok(Self::custom("sendgrid")
            .provider("sendgrid")
            .verify_with(scheme))
    }
}

/// The base64 `X-Twilio-Email-Event-Webhook-Signature` value for `timestamp` and `body`, as
/// SendGrid would send it (deterministic, RFC 6979).
pub(crate) fn sign(signing_key: &p256::ecdsa::SigningKey, timestamp: &str, body: &[u8]) -> String {
    use p256::ecdsa::signature::MultipartSigner;
    let signature: Signature = signing_key.multipart_sign(&[timestamp.as_bytes(), body]);
    base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes())
}

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    use http::{HeaderMap, HeaderValue, Uri};
    use p256::ecdsa::SigningKey;

    use super::*;

    /// sendgrid/sendgrid-python `test/unit/test_eventwebhook.py` (PROVIDERS.md A11).
    const PUBLIC: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==";
    const OTHER_PUBLIC: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8REntlo7aNDthvj+y7GjUuFDb/R1NGe1OPzpA==";
    const TS: &str = "1600112502";
    const SIG: &str = "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM=";
    const OTHER_SIG: &str = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH3j/0=";
    const BODY: &[u8] = b"[{\"email\":\"hello@world.com\",\"event\":\"dropped\",\"reason\":\"Bounced Address\",\"sg_event_id\":\"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA\",\"sg_message_id\":\"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0\",\"smtp-id\":\"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>\",\"timestamp\":1600112492}]\r\n";
    const NOW: u64 = 1_600_112_502;

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
        scheme: &SendgridScheme,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Verified, SignatureError> {
        let uri = Uri::from_static("/sendgrid/events");
        scheme.verify(&SignedRequest::new(headers, &uri, body, now))
    }

    fn scheme() -> SendgridScheme {
        SendgridScheme::new([PUBLIC]).unwrap()
    }

    fn test_key(byte: u8) -> SigningKey {
        SigningKey::from_slice(&[byte; 32]).unwrap()
    }

    #[test]
    fn official_vector_passes() {
        assert_eq!(BODY.len(), 327);
        assert_eq!(
            check(&scheme(), &headers(Some(SIG), Some(TS)), BODY, at(NOW)),
            Ok(Verified::by_secret(0))
        );
        // Padding is optional.
        let unpadded = SIG.trim_end_matches('=');
        assert_eq!(
            check(
                &scheme(),
                &headers(Some(unpadded), Some(TS)),
                BODY,
                at(NOW + 60)
            ),
            Ok(Verified::by_secret(0))
        );
    }

    #[test]
    fn high_and_low_s_both_verify() {
        // The official signature has a high `s`; P-256 ECDSA does not require low-S, and
        // SendGrid's signer does not normalise, so both forms must pass.
        let der = base64::engine::general_purpose::STANDARD
            .decode(SIG)
            .unwrap();
        let official = Signature::from_der(&der).unwrap();
        let low = official.normalize_s();
        assert_ne!(low, official, "the official vector is high-S");
        let low = base64::engine::general_purpose::STANDARD.encode(low.to_der().as_bytes());
        assert_eq!(
            check(&scheme(), &headers(Some(&low), Some(TS)), BODY, at(NOW)),
            Ok(Verified::by_secret(0))
        );
    }

    #[test]
    fn longest_der_signature_is_well_formed() {
        // r and s both 33 bytes (leading 0x00 before a high bit): 72 bytes, the maximum.
        let mut der = vec![0x30, 70, 0x02, 33, 0x00, 0x80];
        der.extend_from_slice(&[0; 31]);
        der.extend_from_slice(&[0x02, 33, 0x00, 0x80]);
        der.extend_from_slice(&[0; 31]);
        assert_eq!(der.len(), MAX_DER_SIGNATURE);
        let sig = base64::engine::general_purpose::STANDARD.encode(&der);
        assert_eq!(
            check(&scheme(), &headers(Some(&sig), Some(TS)), BODY, at(NOW)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn official_negatives_fail() {
        let now = at(NOW);
        let other = SendgridScheme::new([OTHER_PUBLIC]).unwrap();
        assert_eq!(
            check(&other, &headers(Some(SIG), Some(TS)), BODY, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(&scheme(), &headers(Some(SIG), Some(TS)), b"payload", now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(&scheme(), &headers(Some(OTHER_SIG), Some(TS)), BODY, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(&scheme(), &headers(Some(SIG), Some("timestamp")), BODY, now),
            Err(SignatureError::Malformed("timestamp is not a number"))
        );
    }

    #[test]
    fn tampering_is_a_mismatch() {
        let now = at(NOW);
        // Without the trailing "\r\n".
        assert_eq!(
            check(&scheme(), &headers(Some(SIG), Some(TS)), &BODY[..325], now),
            Err(SignatureError::Mismatch)
        );
        let mut body = BODY.to_vec();
        body[10] ^= 1;
        assert_eq!(
            check(&scheme(), &headers(Some(SIG), Some(TS)), &body, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(
                &scheme(),
                &headers(Some(SIG), Some("1600112503")),
                BODY,
                now
            ),
            Err(SignatureError::Mismatch)
        );
        // Flip a bit inside `r` (byte 10 of the DER): still well-formed, no longer valid.
        let mut der = base64::engine::general_purpose::STANDARD
            .decode(SIG)
            .unwrap();
        der[10] ^= 1;
        let flipped = base64::engine::general_purpose::STANDARD.encode(&der);
        assert_eq!(
            check(&scheme(), &headers(Some(&flipped), Some(TS)), BODY, now),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn missing_headers() {
        let now = at(NOW);
        assert_eq!(
            check(&scheme(), &headers(None, Some(TS)), BODY, now),
            Err(SignatureError::MissingHeader(SIGNATURE))
        );
        assert_eq!(
            check(&scheme(), &headers(Some(SIG), None), BODY, now),
            Err(SignatureError::MissingHeader(TIMESTAMP))
        );
        assert_eq!(
            check(&scheme(), &HeaderMap::new(), BODY, now),
            Err(SignatureError::MissingHeader(SIGNATURE))
        );
    }

    #[test]
    fn malformed_signatures() {
        let now = at(NOW);
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let der = base64::engine::general_purpose::STANDARD
            .decode(SIG)
            .unwrap();
        let mut trailing = der.clone();
        trailing.push(0);
        let mut wrong_tag = der.clone();
        wrong_tag[0] = 0x31;
        let zero_s = [0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x00];
        let zero_r = [0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x01];
        let too_long = b64(&[0x30; 100]);
        let cases = [
            "not base64!".to_owned(),
            "".to_owned(),
            "====".to_owned(),
            b64(&der[..der.len() - 1]),
            b64(&trailing),
            b64(&wrong_tag),
            b64(&zero_s),
            b64(&zero_r),
            b64(&[]),
            too_long,
            b64(&[0u8; 64]), // a raw (r, s) pair, not DER
            SIG[..SIG.len() - 4].to_owned(),
        ];
        for bad in &cases {
            assert!(
                matches!(
                    check(&scheme(), &headers(Some(bad), Some(TS)), BODY, now),
                    Err(SignatureError::Malformed(_))
                ),
                "{bad:?}: {:?}",
                check(&scheme(), &headers(Some(bad), Some(TS)), BODY, now)
            );
        }
    }

    #[test]
    fn stale_and_future_timestamps() {
        let h = headers(Some(SIG), Some(TS));
        assert_eq!(
            check(&scheme(), &h, BODY, at(NOW + 301)),
            Err(SignatureError::Stale {
                age_secs: 301,
                tolerance_secs: 300
            })
        );
        assert_eq!(
            check(&scheme(), &h, BODY, at(NOW - 301)),
            Err(SignatureError::Future {
                ahead_secs: 301,
                tolerance_secs: 300
            })
        );
        // Checked against the real clock, the 2020 vector is long stale.
        assert!(matches!(
            check(&scheme(), &h, BODY, SystemTime::now()),
            Err(SignatureError::Stale { .. })
        ));
        let lenient = scheme().tolerance(Duration::from_secs(3600));
        assert!(check(&lenient, &h, BODY, at(NOW + 3600)).is_ok());
    }

    #[test]
    fn rotation_and_round_trip() {
        let now = at(NOW);
        let rotating = SendgridScheme::new([OTHER_PUBLIC, PUBLIC]).unwrap();
        assert_eq!(
            check(&rotating, &headers(Some(SIG), Some(TS)), BODY, now),
            Ok(Verified::by_secret(1))
        );

        let key = test_key(7);
        // SPKI = the fixed P-256 header (the first 26 bytes of any such key) + the SEC1 point.
        let mut spki = base64::engine::general_purpose::STANDARD
            .decode(PUBLIC)
            .unwrap();
        spki.truncate(26);
        spki.extend_from_slice(key.verifying_key().to_sec1_point(false).as_bytes());
        let public = base64::engine::general_purpose::STANDARD.encode(&spki);
        let body = b"[{\"event\":\"delivered\",\"sg_event_id\":\"abc\"}]\r\n";
        let sig = sign(&key, "1600112600", body);
        let h = headers(Some(&sig), Some("1600112600"));
        let ours = SendgridScheme::new([PUBLIC, public.as_str()]).unwrap();
        assert_eq!(check(&ours, &h, body, now), Ok(Verified::by_secret(1)));
        assert_eq!(
            check(&scheme(), &h, body, now),
            Err(SignatureError::Mismatch)
        );
        let other = sign(&test_key(8), "1600112600", body);
        assert_eq!(
            check(&ours, &headers(Some(&other), Some("1600112600")), body, now),
            Err(SignatureError::Mismatch)
        );

        let none = SendgridScheme::new(Vec::<&str>::new()).unwrap();
        assert!(none.is_empty());
        assert_eq!(check(&none, &h, body, now), Err(SignatureError::NoSecret));
    }

    #[test]
    fn invalid_public_keys() {
        assert_eq!(
            SendgridScheme::new(["not base64!"]).unwrap_err(),
            InvalidPublicKey::NotBase64
        );
        assert_eq!(
            SendgridScheme::new([""]).unwrap_err(),
            InvalidPublicKey::Invalid
        );
        assert_eq!(
            SendgridScheme::new(["AAAA"]).unwrap_err(),
            InvalidPublicKey::Invalid
        );
        // A truncated key.
        assert_eq!(
            SendgridScheme::new([&PUBLIC[..PUBLIC.len() - 8]]).unwrap_err(),
            InvalidPublicKey::Invalid
        );
        // A point not on the curve: change the last coordinate byte.
        let mut der = base64::engine::general_purpose::STANDARD
            .decode(PUBLIC)
            .unwrap();
        let last = der.len() - 1;
        der[last] ^= 1;
        let off_curve = base64::engine::general_purpose::STANDARD.encode(&der);
        assert_eq!(
            SendgridScheme::new([off_curve]).unwrap_err(),
            InvalidPublicKey::Invalid
        );
        // An Ed25519 SPKI (RFC 8410 example) is not a P-256 key.
        assert_eq!(
            SendgridScheme::new(["MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE="])
                .unwrap_err(),
            InvalidPublicKey::Invalid
        );
        assert!(SendgridScheme::new([format!("{PUBLIC}\n")]).is_ok());
    }

    #[test]
    fn preset_and_debug() {
        let policy = Policy::sendgrid(PUBLIC).unwrap();
        assert_eq!(&*policy.name, "sendgrid");
        assert_eq!(policy.provider.as_deref(), Some("sendgrid"));
        assert_eq!(policy.delivery_id, None);
        assert_eq!(policy.event_type, None);
        assert!(policy.scheme.is_some());
        assert_eq!(
            Policy::sendgrid("???").unwrap_err(),
            InvalidPublicKey::NotBase64
        );
        let shown = format!("{:?}", SendgridScheme::new([PUBLIC, OTHER_PUBLIC]).unwrap());
        assert_eq!(shown, "SendgridScheme { public_keys: 2, tolerance: 300s }");
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

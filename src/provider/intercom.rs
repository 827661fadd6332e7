//! Intercom: `X-Hub-Signature: sha1=<hex>` over the body.

use http::HeaderName;

use super::{AttemptSource, Digest, Encoding, HmacScheme, Secrets, Source};
use crate::Policy;

impl HmacScheme {
    /// Intercom's scheme: HMAC-SHA1 (hex) of the body in `X-Hub-Signature: sha1=…`, keyed with
    /// the app's client secret (or the legacy hub secret).
    pub fn intercom(secrets: impl Into<Secrets>) -> Self {
        HmacScheme::new(
            HeaderName::from_static("x-hub-signature"),
            Digest::Sha1,
            Encoding::Hex,
            secrets,
        )
        .prefix("sha1=")
    }
}

impl Policy {
    /// An Intercom webhook route: [`HmacScheme::intercom`], the notification's `id` as the
    /// delivery id, its `topic` as the event type, its `delivery_attempts` as the attempt, and
    /// its `first_sent_at` for the delivery lag.
    /// Intercom's timeout and retries are not documented consistently, so none are set.
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::Policy;
    ///
    /// let policy = Policy::intercom("client-secret");
    /// # let _ = policy;
    /// ```
    pub fn intercom(secrets: impl Into<Secrets>) -> Self {
        Policy::custom("intercom")
            .provider("intercom")
            .verify_with(HmacScheme::intercom(secrets))
            .delivery_id(Source::json("/id"))
            .event_type(Source::json("/topic"))
            .attempt(AttemptSource::count(Source::json("/delivery_attempts")))
            .sent_at(Source::json("/first_sent_at"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{test_support::*, SignatureError, Verified};

    /// Table B (derived).
    const SECRET: &str = "intercom_client_secret";
    const BODY: &str = r#"{"type":"notification_event","id":"notif_1","topic":"ping"}"#;
    const B_SIGNATURE: &str = "sha1=fbec98ddd75e9d6d7345ee09807cc23fe24bf2f8";

    fn check(scheme: &HmacScheme, signature: &str) -> Result<Verified, SignatureError> {
        verify(scheme, &[("X-Hub-Signature", signature)], BODY, 0)
    }

    fn signed(signer: &HmacScheme, index: usize) -> String {
        format!("sha1={}", sign(signer, index, &[], BODY, None))
    }

    #[test]
    fn derived_vector_verifies() {
        assert_eq!(
            check(&HmacScheme::intercom(SECRET), B_SIGNATURE),
            Ok(Verified::by_secret(0))
        );
    }

    #[test]
    fn sign_matches_an_independent_hmac_sha1() {
        let expected = hmac_sha1(SECRET.as_bytes(), &[BODY.as_bytes()]);
        assert_eq!(
            signed(&HmacScheme::intercom(SECRET), 0),
            format!("sha1={}", hex::encode(expected))
        );
    }

    #[test]
    fn flipped_body_byte_is_mismatch() {
        let got = verify(
            &HmacScheme::intercom(SECRET),
            &[("x-hub-signature", B_SIGNATURE)],
            flip_byte(BODY.as_bytes(), 20),
            0,
        );
        assert_eq!(got, Err(SignatureError::Mismatch));
    }

    #[test]
    fn flipped_signature_char_is_mismatch() {
        let flipped = flip_char(B_SIGNATURE, "sha1=".len() + 12);
        assert_eq!(
            check(&HmacScheme::intercom(SECRET), &flipped),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn sha256_signature_is_mismatch() {
        let sha256 = hmac_sha256(SECRET.as_bytes(), &[BODY.as_bytes()]);
        assert_eq!(
            check(
                &HmacScheme::intercom(SECRET),
                &format!("sha1={}", hex::encode(sha256))
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn missing_header_is_missing_x_hub_signature() {
        assert_eq!(
            verify(&HmacScheme::intercom(SECRET), &[], BODY, 0),
            Err(SignatureError::MissingHeader(HeaderName::from_static(
                "x-hub-signature"
            )))
        );
    }

    #[test]
    fn truncated_signature_is_mismatch_or_malformed_when_odd() {
        let scheme = HmacScheme::intercom(SECRET);
        assert_eq!(
            check(&scheme, &B_SIGNATURE[.."sha1=".len() + 20]),
            Err(SignatureError::Mismatch)
        );
        assert!(matches!(
            check(&scheme, &B_SIGNATURE[..B_SIGNATURE.len() - 1]),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn signature_with_another_secret_is_mismatch() {
        let header = signed(&HmacScheme::intercom("other-secret"), 0);
        assert_eq!(
            check(&HmacScheme::intercom(SECRET), &header),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn second_secret_matches_with_index_1() {
        let rotating = HmacScheme::intercom(["new-secret", SECRET]);
        assert_eq!(check(&rotating, B_SIGNATURE).unwrap().secret_index(), 1);
    }

    #[test]
    fn no_secrets_is_no_secret() {
        assert_eq!(
            check(&HmacScheme::intercom(Secrets::default()), B_SIGNATURE),
            Err(SignatureError::NoSecret)
        );
    }

    #[test]
    fn policy_builds_without_printing_the_secret() {
        let shown = format!("{:?}", Policy::intercom("ic_do_not_print"));
        assert!(!shown.contains("ic_do_not_print"), "{shown}");
        assert!(shown.contains("intercom"), "{shown}");
    }
}

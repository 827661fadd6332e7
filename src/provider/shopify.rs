//! Shopify: `X-Shopify-Hmac-Sha256: <base64>` over the body.

use std::time::Duration;

use http::HeaderName;

use super::{Digest, Encoding, HmacScheme, Secrets, Source};
use crate::Policy;

impl HmacScheme {
    /// Shopify's scheme: HMAC-SHA256 (base64) of the body, keyed with the app's client secret.
    pub fn shopify(secrets: impl Into<Secrets>) -> Self {
        HmacScheme::new(
            HeaderName::from_static("x-shopify-hmac-sha256"),
            Digest::Sha256,
            Encoding::Base64,
            secrets,
        )
    }
}

impl Policy {
    /// A Shopify webhook route: [`HmacScheme::shopify`], `X-Shopify-Webhook-Id` as the delivery
    /// id (Shopify's current advice), `X-Shopify-Topic` as the event type,
    /// `X-Shopify-Triggered-At` for the delivery lag (retries carry the original payload and
    /// time), Shopify's 5 s timeout
    /// and its 4-hour retry horizon (8 retries). After rotating the client secret, Shopify may
    /// sign with the old one for up to an hour: pass both.
    ///
    /// Shopify signs the body but none of its headers: with [`dedupe`](Self::dedupe), the route
    /// dedupes by the body's SHA-256, so a signed body replayed under a fresh webhook id is a
    /// duplicate (a retry carries the original payload, so it is one too). Reports carry the
    /// webhook id all the same.
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::Policy;
    ///
    /// let policy = Policy::shopify(["new-client-secret", "old-client-secret"]);
    /// # let _ = policy;
    /// ```
    pub fn shopify(secrets: impl Into<Secrets>) -> Self {
        Policy::custom("shopify")
            .provider("shopify")
            .verify_with(HmacScheme::shopify(secrets))
            .delivery_id(Source::header("x-shopify-webhook-id"))
            .event_type(Source::header("x-shopify-topic"))
            .sent_at(Source::header("x-shopify-triggered-at"))
            .timeout_budget(Duration::from_secs(5))
            .retry_horizon(Duration::from_secs(4 * 3600))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{test_support::*, SignatureError, Verified};

    /// A6: shopify-app-js `validate.test.ts`.
    const A6_SECRET: &str = "test_secret_key";
    const A6_BODY: &str = r#"{"foo": "bar"}"#;
    const A6_HMAC: &str = "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=";

    const SECRET: &str = "shopify-client-secret";
    const BODY: &str = r#"{"id":820982911946154508,"email":"jon@example.com"}"#;

    fn check(scheme: &HmacScheme, signature: &str) -> Result<Verified, SignatureError> {
        verify(scheme, &[("X-Shopify-Hmac-Sha256", signature)], BODY, 0)
    }

    fn signed(signer: &HmacScheme, index: usize) -> String {
        sign(signer, index, &[], BODY, None)
    }

    #[test]
    fn a6_sdk_vector_verifies() {
        assert_eq!(A6_BODY.len(), 14);
        let got = verify(
            &HmacScheme::shopify(A6_SECRET),
            &[
                ("X-Shopify-Hmac-Sha256", A6_HMAC),
                ("X-Shopify-Topic", "products/create"),
                ("X-Shopify-Shop-Domain", "shop1.myshopify.io"),
                ("X-Shopify-API-Version", "2023-01"),
                ("X-Shopify-Webhook-Id", "123456789"),
            ],
            A6_BODY,
            0,
        );
        assert_eq!(got, Ok(Verified::by_secret(0)));
    }

    #[test]
    fn a6_fake_hmac_is_mismatch() {
        assert_eq!(
            verify(
                &HmacScheme::shopify(A6_SECRET),
                &[("x-shopify-hmac-sha256", "fake")],
                A6_BODY,
                0
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a6_body_without_the_space_is_mismatch() {
        assert_eq!(
            verify(
                &HmacScheme::shopify(A6_SECRET),
                &[("x-shopify-hmac-sha256", A6_HMAC)],
                r#"{"foo":"bar"}"#,
                0
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn sign_matches_an_independent_hmac() {
        let expected = base64(&hmac_sha256(SECRET.as_bytes(), &[BODY.as_bytes()]));
        assert_eq!(signed(&HmacScheme::shopify(SECRET), 0), expected);
    }

    #[test]
    fn unpadded_signature_verifies() {
        let scheme = HmacScheme::shopify(SECRET);
        let sig = signed(&scheme, 0);
        assert_eq!(
            check(&scheme, sig.trim_end_matches('=')),
            Ok(Verified::by_secret(0))
        );
    }

    #[test]
    fn flipped_body_byte_is_mismatch() {
        let scheme = HmacScheme::shopify(SECRET);
        assert_eq!(
            verify(
                &scheme,
                &[("x-shopify-hmac-sha256", &signed(&scheme, 0))],
                flip_byte(BODY.as_bytes(), 7),
                0
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn flipped_signature_char_is_mismatch() {
        let scheme = HmacScheme::shopify(SECRET);
        let flipped = flip_char(&signed(&scheme, 0), 21);
        assert_eq!(check(&scheme, &flipped), Err(SignatureError::Mismatch));
    }

    #[test]
    fn missing_header_is_missing_x_shopify_hmac_sha256() {
        assert_eq!(
            verify(&HmacScheme::shopify(SECRET), &[], BODY, 0),
            Err(SignatureError::MissingHeader(HeaderName::from_static(
                "x-shopify-hmac-sha256"
            )))
        );
    }

    #[test]
    fn truncated_signature_is_mismatch_or_malformed_when_not_base64() {
        let scheme = HmacScheme::shopify(SECRET);
        let sig = signed(&scheme, 0);
        assert_eq!(check(&scheme, &sig[..8]), Err(SignatureError::Mismatch));
        // 41 characters: a length base64 cannot have.
        assert!(matches!(
            check(&scheme, &sig[..41]),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn signature_with_another_secret_is_mismatch() {
        let header = signed(&HmacScheme::shopify("other-secret"), 0);
        assert_eq!(
            check(&HmacScheme::shopify(SECRET), &header),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn second_secret_matches_with_index_1() {
        let header = signed(&HmacScheme::shopify(SECRET), 0);
        let rotating = HmacScheme::shopify(["new-secret", SECRET]);
        assert_eq!(check(&rotating, &header).unwrap().secret_index(), 1);
    }

    #[test]
    fn no_secrets_is_no_secret() {
        let header = signed(&HmacScheme::shopify(SECRET), 0);
        assert_eq!(
            check(&HmacScheme::shopify(Secrets::default()), &header),
            Err(SignatureError::NoSecret)
        );
    }

    #[test]
    fn policy_builds_without_printing_the_secret() {
        let shown = format!("{:?}", Policy::shopify("shpss_do_not_print"));
        assert!(!shown.contains("shpss_do_not_print"), "{shown}");
        assert!(shown.contains("shopify"), "{shown}");
    }
}

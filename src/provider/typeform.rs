//! Typeform: `Typeform-Signature: sha256=<base64>` over the body.

use http::HeaderName;

use super::{Digest, Encoding, HmacScheme, Secrets, Source};
use crate::Policy;

impl HmacScheme {
    /// Typeform's scheme: HMAC-SHA256 (base64) of the body in `Typeform-Signature: sha256=…`.
    pub fn typeform(secrets: impl Into<Secrets>) -> Self {
        HmacScheme::new(
            HeaderName::from_static("typeform-signature"),
            Digest::Sha256,
            Encoding::Base64,
            secrets,
        )
        .prefix("sha256=")
    }
}

impl Policy {
    /// A Typeform webhook route: [`HmacScheme::typeform`], the body's `event_id` as the delivery
    /// id and `event_type` as the event type. Typeform's timeout is not officially documented.
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::Policy;
    ///
    /// let policy = Policy::typeform("typeform_secret");
    /// # let _ = policy;
    /// ```
    pub fn typeform(secrets: impl Into<Secrets>) -> Self {
        Policy::custom("typeform")
            .provider("typeform")
            .verify_with(HmacScheme::typeform(secrets))
            .delivery_id(Source::json("/event_id"))
            .event_type(Source::json("/event_type"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{test_support::*, SignatureError, Verified};

    /// Table B (derived, checked with openssl).
    const B_SECRET: &str = "typeform_secret";
    const B_BODY: &str = r#"{"event_id":"01ABC","event_type":"form_response"}"#;
    const B_SIGNATURE: &str = "sha256=avoM/oP7xoyOktm7gKBSCvy0i7ltp/sf6guWr8qLwwA=";

    const SECRET: &str = "typeform-secret";
    const BODY: &str = r#"{"event_id":"01HX","event_type":"form_response","form_response":{}}"#;

    fn check(scheme: &HmacScheme, signature: &str) -> Result<Verified, SignatureError> {
        verify(scheme, &[("Typeform-Signature", signature)], BODY, 0)
    }

    fn signed(signer: &HmacScheme, index: usize) -> String {
        format!("sha256={}", sign(signer, index, &[], BODY, None))
    }

    #[test]
    fn derived_vector_verifies() {
        assert_eq!(
            verify(
                &HmacScheme::typeform(B_SECRET),
                &[("Typeform-Signature", B_SIGNATURE)],
                B_BODY,
                0
            ),
            Ok(Verified::by_secret(0))
        );
    }

    #[test]
    fn sign_matches_an_independent_hmac() {
        let expected = base64(&hmac_sha256(SECRET.as_bytes(), &[BODY.as_bytes()]));
        assert_eq!(
            signed(&HmacScheme::typeform(SECRET), 0),
            format!("sha256={expected}")
        );
    }

    #[test]
    fn flipped_body_byte_is_mismatch() {
        let scheme = HmacScheme::typeform(SECRET);
        assert_eq!(
            verify(
                &scheme,
                &[("typeform-signature", &signed(&scheme, 0))],
                flip_byte(BODY.as_bytes(), 3),
                0
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn flipped_signature_char_is_mismatch() {
        let scheme = HmacScheme::typeform(SECRET);
        let flipped = flip_char(&signed(&scheme, 0), "sha256=".len() + 20);
        assert_eq!(check(&scheme, &flipped), Err(SignatureError::Mismatch));
    }

    #[test]
    fn missing_header_is_missing_typeform_signature() {
        assert_eq!(
            verify(&HmacScheme::typeform(SECRET), &[], BODY, 0),
            Err(SignatureError::MissingHeader(HeaderName::from_static(
                "typeform-signature"
            )))
        );
    }

    #[test]
    fn truncated_signature_is_mismatch() {
        let scheme = HmacScheme::typeform(SECRET);
        let sig = signed(&scheme, 0);
        assert_eq!(
            check(&scheme, &sig[.."sha256=".len() + 8]),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn signature_without_prefix_is_malformed() {
        let scheme = HmacScheme::typeform(SECRET);
        let bare = sign(&scheme, 0, &[], BODY, None);
        assert!(matches!(
            check(&scheme, &bare),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn signature_with_another_secret_is_mismatch() {
        let header = signed(&HmacScheme::typeform("other-secret"), 0);
        assert_eq!(
            check(&HmacScheme::typeform(SECRET), &header),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn second_secret_matches_with_index_1() {
        let header = signed(&HmacScheme::typeform(SECRET), 0);
        let rotating = HmacScheme::typeform(["new-secret", SECRET]);
        assert_eq!(check(&rotating, &header).unwrap().secret_index(), 1);
    }

    #[test]
    fn no_secrets_is_no_secret() {
        let header = signed(&HmacScheme::typeform(SECRET), 0);
        assert_eq!(
            check(&HmacScheme::typeform(Secrets::default()), &header),
            Err(SignatureError::NoSecret)
        );
    }

    #[test]
    fn policy_builds_without_printing_the_secret() {
        let shown = format!("{:?}", Policy::typeform("tf_do_not_print"));
        assert!(!shown.contains("tf_do_not_print"), "{shown}");
        assert!(shown.contains("typeform"), "{shown}");
    }
}

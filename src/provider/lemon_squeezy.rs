//! Lemon Squeezy: `X-Signature: <hex>` over the body.

use http::{HeaderMap, HeaderName, StatusCode};

use super::{Digest, Encoding, HmacScheme, Secrets, Source};
use crate::{Classify, DefaultClassify, FailureKind, Outcome, Policy};

impl HmacScheme {
    /// Lemon Squeezy's scheme: HMAC-SHA256 (hex) of the body, keyed with the signing secret.
    pub fn lemon_squeezy(secrets: impl Into<Secrets>) -> Self {
        HmacScheme::new(
            HeaderName::from_static("x-signature"),
            Digest::Sha256,
            Encoding::Hex,
            secrets,
        )
    }
}

impl Policy {
    /// A Lemon Squeezy webhook route: [`HmacScheme::lemon_squeezy`], `X-Event-Name` as the event
    /// type, and a classifier for Lemon Squeezy's rule that only `200` counts as delivered
    /// (a `204` is a failure there). There is no delivery id.
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::Policy;
    ///
    /// let policy = Policy::lemon_squeezy("signing-secret");
    /// # let _ = policy;
    /// ```
    pub fn lemon_squeezy(secrets: impl Into<Secrets>) -> Self {
        Policy::custom("lemon_squeezy")
            .provider("lemon_squeezy")
            .verify_with(HmacScheme::lemon_squeezy(secrets))
            .event_type(Source::header("x-event-name"))
            .classify_with(only_200)
    }
}

fn only_200(status: StatusCode, headers: &HeaderMap) -> Outcome {
    match status {
        StatusCode::OK => Outcome::Success,
        s if s.is_success() => Outcome::Failure(FailureKind::NotAccepted),
        s => DefaultClassify.classify(s, headers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{test_support::*, SignatureError, Verified};

    /// Table B (derived).
    const SECRET: &str = "lemon_secret";
    const BODY: &str = r#"{"meta":{"event_name":"order_created"}}"#;
    const B_SIGNATURE: &str = "0f3d9bfed675915e39487eb1e4e10dd77c3ee9d6cd5f1daee7ace283f29cac2b";

    fn check(scheme: &HmacScheme, signature: &str) -> Result<Verified, SignatureError> {
        verify(
            scheme,
            &[
                ("X-Signature", signature),
                ("X-Event-Name", "order_created"),
            ],
            BODY,
            0,
        )
    }

    fn signed(signer: &HmacScheme, index: usize) -> String {
        sign(signer, index, &[], BODY, None)
    }

    #[test]
    fn derived_vector_verifies() {
        assert_eq!(
            check(&HmacScheme::lemon_squeezy(SECRET), B_SIGNATURE),
            Ok(Verified::by_secret(0))
        );
    }

    #[test]
    fn sign_matches_an_independent_hmac() {
        let expected = hmac_sha256(SECRET.as_bytes(), &[BODY.as_bytes()]);
        assert_eq!(
            signed(&HmacScheme::lemon_squeezy(SECRET), 0),
            hex::encode(expected)
        );
    }

    #[test]
    fn flipped_body_byte_is_mismatch() {
        let got = verify(
            &HmacScheme::lemon_squeezy(SECRET),
            &[("x-signature", B_SIGNATURE)],
            flip_byte(BODY.as_bytes(), 15),
            0,
        );
        assert_eq!(got, Err(SignatureError::Mismatch));
    }

    #[test]
    fn flipped_signature_char_is_mismatch() {
        assert_eq!(
            check(
                &HmacScheme::lemon_squeezy(SECRET),
                &flip_char(B_SIGNATURE, 40)
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn missing_header_is_missing_x_signature() {
        assert_eq!(
            verify(&HmacScheme::lemon_squeezy(SECRET), &[], BODY, 0),
            Err(SignatureError::MissingHeader(HeaderName::from_static(
                "x-signature"
            )))
        );
    }

    #[test]
    fn truncated_signature_is_mismatch_or_malformed_when_odd() {
        let scheme = HmacScheme::lemon_squeezy(SECRET);
        assert_eq!(
            check(&scheme, &B_SIGNATURE[..32]),
            Err(SignatureError::Mismatch)
        );
        assert!(matches!(
            check(&scheme, &B_SIGNATURE[..63]),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn signature_with_another_secret_is_mismatch() {
        let header = signed(&HmacScheme::lemon_squeezy("other-secret"), 0);
        assert_eq!(
            check(&HmacScheme::lemon_squeezy(SECRET), &header),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn second_secret_matches_with_index_1() {
        let rotating = HmacScheme::lemon_squeezy(["new-secret", SECRET]);
        assert_eq!(check(&rotating, B_SIGNATURE).unwrap().secret_index(), 1);
    }

    #[test]
    fn no_secrets_is_no_secret() {
        assert_eq!(
            check(&HmacScheme::lemon_squeezy(Secrets::default()), B_SIGNATURE),
            Err(SignatureError::NoSecret)
        );
    }

    #[test]
    fn policy_builds_without_printing_the_secret() {
        let shown = format!("{:?}", Policy::lemon_squeezy("ls_do_not_print"));
        assert!(!shown.contains("ls_do_not_print"), "{shown}");
        assert!(shown.contains("lemon_squeezy"), "{shown}");
    }

    #[test]
    fn only_200_counts_as_delivered() {
        let headers = HeaderMap::new();
        assert_eq!(only_200(StatusCode::OK, &headers), Outcome::Success);
        assert_eq!(
            only_200(StatusCode::NO_CONTENT, &headers),
            Outcome::Failure(FailureKind::NotAccepted)
        );
    }
}

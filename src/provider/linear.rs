//! Linear: `Linear-Signature: <hex>` over the body; the timestamp is in the body.

use std::time::Duration;

use http::HeaderName;

use super::{Digest, Encoding, HmacScheme, Secrets, Source, TimestampSource};
use crate::Policy;

impl HmacScheme {
    /// Linear's scheme: HMAC-SHA256 (hex) of the body; once the signature matches, the body's
    /// `webhookTimestamp` (milliseconds) must be within 60 s of now, as Linear's SDK checks.
    pub fn linear(secrets: impl Into<Secrets>) -> Self {
        HmacScheme::new(
            HeaderName::from_static("linear-signature"),
            Digest::Sha256,
            Encoding::Hex,
            secrets,
        )
        .timestamp(TimestampSource::json_millis("/webhookTimestamp"))
        .tolerance(Duration::from_secs(60))
    }
}

impl Policy {
    /// A Linear webhook route: [`HmacScheme::linear`], `Linear-Delivery` as the delivery id and
    /// `Linear-Event` as the event type. Linear publishes no timeout or retry schedule.
    ///
    /// Linear signs the body (its `webhookTimestamp` included) but not `Linear-Delivery`: with
    /// [`dedupe`](Self::dedupe), the route dedupes by the body's SHA-256. Reports carry the
    /// delivery id all the same.
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::Policy;
    ///
    /// let policy = Policy::linear("lin_wh_…");
    /// # let _ = policy;
    /// ```
    pub fn linear(secrets: impl Into<Secrets>) -> Self {
        Policy::custom("linear")
            .provider("linear")
            .verify_with(HmacScheme::linear(secrets))
            .delivery_id(Source::header("linear-delivery"))
            .event_type(Source::header("linear-event"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{test_support::*, SignatureError, Verified};

    /// Table B (derived).
    const SECRET: &str = "linear_secret";
    const BODY: &str = r#"{"action":"create","type":"Issue","webhookTimestamp":1700000000000}"#;
    const B_SIGNATURE: &str = "1b912ae7b8aa915f5c7f2a82ad16048ba94da42871fbabdffbdc6cf9e9ff2320";
    /// `webhookTimestamp` in seconds.
    const TS: u64 = 1_700_000_000;

    fn check_at(
        scheme: &HmacScheme,
        signature: &str,
        body: &str,
        now: u64,
    ) -> Result<Verified, SignatureError> {
        verify(scheme, &[("Linear-Signature", signature)], body, now)
    }

    fn check(scheme: &HmacScheme, signature: &str) -> Result<Verified, SignatureError> {
        check_at(scheme, signature, BODY, TS + 30)
    }

    fn signed(signer: &HmacScheme, index: usize, body: &str) -> String {
        sign(signer, index, &[], body, None)
    }

    #[test]
    fn derived_vector_verifies_30_s_later() {
        assert_eq!(
            check(&HmacScheme::linear(SECRET), B_SIGNATURE),
            Ok(Verified::by_secret(0))
        );
    }

    #[test]
    fn derived_vector_61_s_later_is_stale() {
        assert_eq!(
            check_at(&HmacScheme::linear(SECRET), B_SIGNATURE, BODY, TS + 61),
            Err(SignatureError::Stale {
                age_secs: 61,
                tolerance_secs: 60
            })
        );
    }

    #[test]
    fn derived_vector_61_s_early_is_future() {
        assert_eq!(
            check_at(&HmacScheme::linear(SECRET), B_SIGNATURE, BODY, TS - 61),
            Err(SignatureError::Future {
                ahead_secs: 61,
                tolerance_secs: 60
            })
        );
    }

    #[test]
    fn stale_body_with_a_bad_signature_is_mismatch_not_stale() {
        let flipped = flip_char(B_SIGNATURE, 7);
        assert_eq!(
            check_at(&HmacScheme::linear(SECRET), &flipped, BODY, TS + 3600),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn sign_matches_an_independent_hmac() {
        let expected = hmac_sha256(SECRET.as_bytes(), &[BODY.as_bytes()]);
        assert_eq!(
            signed(&HmacScheme::linear(SECRET), 0, BODY),
            hex::encode(expected)
        );
    }

    #[test]
    fn flipped_body_byte_is_mismatch() {
        let body = flip_byte(BODY.as_bytes(), 4);
        let got = verify(
            &HmacScheme::linear(SECRET),
            &[("linear-signature", B_SIGNATURE)],
            body,
            TS + 30,
        );
        assert_eq!(got, Err(SignatureError::Mismatch));
    }

    #[test]
    fn changed_webhook_timestamp_is_mismatch() {
        let moved = BODY.replace("1700000000000", "1700000001000");
        assert_eq!(
            check_at(&HmacScheme::linear(SECRET), B_SIGNATURE, &moved, TS + 30),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn flipped_signature_char_is_mismatch() {
        assert_eq!(
            check(&HmacScheme::linear(SECRET), &flip_char(B_SIGNATURE, 50)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn signed_body_without_webhook_timestamp_is_malformed() {
        let scheme = HmacScheme::linear(SECRET);
        let body = r#"{"action":"create","type":"Issue"}"#;
        let got = check_at(&scheme, &signed(&scheme, 0, body), body, TS);
        assert!(matches!(got, Err(SignatureError::Malformed(_))), "{got:?}");
    }

    #[test]
    fn signed_body_that_is_not_json_is_malformed() {
        let scheme = HmacScheme::linear(SECRET);
        let body = "not json";
        let got = check_at(&scheme, &signed(&scheme, 0, body), body, TS);
        assert!(matches!(got, Err(SignatureError::Malformed(_))), "{got:?}");
    }

    #[test]
    fn missing_header_is_missing_linear_signature() {
        assert_eq!(
            verify(&HmacScheme::linear(SECRET), &[], BODY, TS),
            Err(SignatureError::MissingHeader(HeaderName::from_static(
                "linear-signature"
            )))
        );
    }

    #[test]
    fn truncated_signature_is_mismatch() {
        assert_eq!(
            check(&HmacScheme::linear(SECRET), &B_SIGNATURE[..32]),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn signature_with_another_secret_is_mismatch() {
        let header = signed(&HmacScheme::linear("other-secret"), 0, BODY);
        assert_eq!(
            check(&HmacScheme::linear(SECRET), &header),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn second_secret_matches_with_index_1() {
        let rotating = HmacScheme::linear(["new-secret", SECRET]);
        assert_eq!(check(&rotating, B_SIGNATURE).unwrap().secret_index(), 1);
    }

    #[test]
    fn no_secrets_is_no_secret() {
        assert_eq!(
            check(&HmacScheme::linear(Secrets::default()), B_SIGNATURE),
            Err(SignatureError::NoSecret)
        );
    }

    #[test]
    fn policy_builds_without_printing_the_secret() {
        let shown = format!("{:?}", Policy::linear("lin_wh_do_not_print"));
        assert!(!shown.contains("lin_wh_do_not_print"), "{shown}");
        assert!(shown.contains("linear"), "{shown}");
    }
}

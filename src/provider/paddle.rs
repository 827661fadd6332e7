//! Paddle Billing: `Paddle-Signature: ts=<unix>;h1=<hex>[;h1=…]` over `{ts}:{body}`.

use std::time::Duration;

use http::HeaderName;

use super::{
    Digest, Encoding, HmacScheme, Part, Secrets, SignatureFormat, Source, TimestampSource,
};
use crate::Policy;

impl HmacScheme {
    /// Paddle Billing's scheme: HMAC-SHA256 (hex) of `{ts}:{body}`, keyed with the `pdl_ntf_…`
    /// string as is; every `h1` is tried and unparsable ones are skipped; `ts` must be within
    /// 5 minutes of now, either way (Paddle's SDK allows only 5 s by default, which rejects
    /// deliveries delayed by a queue; tighten it with [`HmacScheme::tolerance`]).
    pub fn paddle(secrets: impl Into<Secrets>) -> Self {
        HmacScheme::new(
            HeaderName::from_static("paddle-signature"),
            Digest::Sha256,
            Encoding::Hex,
            secrets,
        )
        .format(SignatureFormat::Pairs {
            separator: ';',
            timestamp_key: "ts".into(),
            signature_key: "h1".into(),
        })
        .timestamp(TimestampSource::Signature)
        .signed_content([Part::Timestamp, Part::text(":"), Part::Body])
    }
}

impl Policy {
    /// A Paddle Billing route: [`HmacScheme::paddle`], the body's `event_id` as the delivery id,
    /// its `event_type`, Paddle's 5 s timeout and its 3-day retry horizon.
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::Policy;
    ///
    /// let policy = Policy::paddle("pdl_ntf_…");
    /// # let _ = policy;
    /// ```
    pub fn paddle(secrets: impl Into<Secrets>) -> Self {
        Policy::custom("paddle")
            .provider("paddle")
            .verify_with(HmacScheme::paddle(secrets))
            .delivery_id(Source::json("/event_id"))
            .event_type(Source::json("/event_type"))
            .timeout_budget(Duration::from_secs(5))
            .retry_horizon(Duration::from_secs(3 * 24 * 3600))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{test_support::*, SignatureError, Verified};

    /// A9: paddle-python-sdk `test_Verifier.py`.
    const A9_HEADER: &str =
        "ts=1696195954;h1=dummy;h1=d96299976a6eb066f484d7fde011ac56fc32b38fc9940bc419d6e537fdc6ef02";
    const A9_TS: u64 = 1_696_195_954;
    const A9_BODY: &str = "hello-world";
    const A9_WRONG_1: &str = "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_TjIG2BXbm83HPXqNfziwe506sBEdqL/4";
    const A9_WRONG_2: &str = "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_vB/yIOnTOCWIvpBadM5jzBZPHc7OmdSo";
    const A9_RIGHT: &str = "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_WvRO0eL4Bj9rgYYIBZY6wZhG4EHy9jzh";

    const SECRET: &str = "pdl_ntf_test_secret";
    const TS: u64 = 1_700_000_000;
    const BODY: &str = r#"{"event_id":"evt_01","event_type":"transaction.paid"}"#;

    fn a9(scheme: &HmacScheme, now: u64) -> Result<Verified, SignatureError> {
        verify(scheme, &[("Paddle-Signature", A9_HEADER)], A9_BODY, now)
    }

    fn signed(signer: &HmacScheme, index: usize) -> String {
        sign(signer, index, &[], BODY, Some(&TS.to_string()))
    }

    fn check(scheme: &HmacScheme, header: &str) -> Result<Verified, SignatureError> {
        verify(scheme, &[("paddle-signature", header)], BODY, TS)
    }

    #[test]
    fn a9_sdk_vector_verifies_skipping_h1_dummy() {
        assert_eq!(
            a9(&HmacScheme::paddle(A9_RIGHT), A9_TS + 3),
            Ok(Verified::by_secret(0))
        );
    }

    #[test]
    fn a9_third_of_three_secrets_matches_with_index_2() {
        let scheme = HmacScheme::paddle([A9_WRONG_1, A9_WRONG_2, A9_RIGHT]);
        assert_eq!(a9(&scheme, A9_TS).unwrap().secret_index(), 2);
    }

    #[test]
    fn a9_the_other_two_secrets_are_mismatch() {
        for secret in [A9_WRONG_1, A9_WRONG_2] {
            assert_eq!(
                a9(&HmacScheme::paddle(secret), A9_TS),
                Err(SignatureError::Mismatch),
                "{secret}"
            );
        }
    }

    #[test]
    fn a9_signed_string_is_ts_colon_body() {
        let expected = hmac_sha256(A9_RIGHT.as_bytes(), &[b"1696195954:hello-world"]);
        assert!(A9_HEADER.ends_with(&hex::encode(expected)));
    }

    #[test]
    fn a9_beyond_a_5_s_tolerance_is_stale() {
        let strict = HmacScheme::paddle(A9_RIGHT).tolerance(Duration::from_secs(5));
        assert_eq!(a9(&strict, A9_TS + 5), Ok(Verified::by_secret(0)));
        assert_eq!(
            a9(&strict, A9_TS + 6),
            Err(SignatureError::Stale {
                age_secs: 6,
                tolerance_secs: 5
            })
        );
    }

    #[test]
    fn a9_only_h1_dummy_is_malformed() {
        let got = verify(
            &HmacScheme::paddle(A9_RIGHT),
            &[("paddle-signature", "ts=1696195954;h1=dummy")],
            A9_BODY,
            A9_TS,
        );
        assert!(matches!(got, Err(SignatureError::Malformed(_))), "{got:?}");
    }

    #[test]
    fn sign_matches_an_independent_hmac() {
        let expected = hmac_sha256(SECRET.as_bytes(), &[b"1700000000:", BODY.as_bytes()]);
        assert_eq!(
            signed(&HmacScheme::paddle(SECRET), 0),
            hex::encode(expected)
        );
    }

    #[test]
    fn two_h1_where_the_second_matches_verifies() {
        let scheme = HmacScheme::paddle(SECRET);
        let other = signed(&HmacScheme::paddle("pdl_ntf_old"), 0);
        let header = format!("ts={TS};h1={other};h1={}", signed(&scheme, 0));
        assert_eq!(check(&scheme, &header), Ok(Verified::by_secret(0)));
    }

    #[test]
    fn flipped_body_byte_is_mismatch() {
        let scheme = HmacScheme::paddle(SECRET);
        let header = format!("ts={TS};h1={}", signed(&scheme, 0));
        assert_eq!(
            verify(
                &scheme,
                &[("paddle-signature", &header)],
                flip_byte(BODY.as_bytes(), 9),
                TS
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn flipped_signature_char_is_mismatch() {
        let scheme = HmacScheme::paddle(SECRET);
        let header = format!("ts={TS};h1={}", flip_char(&signed(&scheme, 0), 33));
        assert_eq!(check(&scheme, &header), Err(SignatureError::Mismatch));
    }

    #[test]
    fn changed_timestamp_within_tolerance_is_mismatch() {
        let scheme = HmacScheme::paddle(SECRET);
        let header = format!("ts={};h1={}", TS + 1, signed(&scheme, 0));
        assert_eq!(check(&scheme, &header), Err(SignatureError::Mismatch));
    }

    #[test]
    fn missing_header_is_missing_paddle_signature() {
        assert_eq!(
            verify(&HmacScheme::paddle(SECRET), &[], BODY, TS),
            Err(SignatureError::MissingHeader(HeaderName::from_static(
                "paddle-signature"
            )))
        );
    }

    #[test]
    fn truncated_signature_is_mismatch() {
        let scheme = HmacScheme::paddle(SECRET);
        let header = format!("ts={TS};h1={}", &signed(&scheme, 0)[..32]);
        assert_eq!(check(&scheme, &header), Err(SignatureError::Mismatch));
    }

    #[test]
    fn signature_with_another_secret_is_mismatch() {
        let header = format!("ts={TS};h1={}", signed(&HmacScheme::paddle("pdl_ntf_x"), 0));
        assert_eq!(
            check(&HmacScheme::paddle(SECRET), &header),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn second_secret_matches_with_index_1() {
        let header = format!("ts={TS};h1={}", signed(&HmacScheme::paddle(SECRET), 0));
        let rotating = HmacScheme::paddle(["pdl_ntf_new", SECRET]);
        assert_eq!(check(&rotating, &header).unwrap().secret_index(), 1);
    }

    #[test]
    fn no_secrets_is_no_secret() {
        let header = format!("ts={TS};h1={}", signed(&HmacScheme::paddle(SECRET), 0));
        assert_eq!(
            check(&HmacScheme::paddle(Secrets::default()), &header),
            Err(SignatureError::NoSecret)
        );
    }

    #[test]
    fn policy_builds_without_printing_the_secret() {
        let shown = format!("{:?}", Policy::paddle("pdl_ntf_do_not_print"));
        assert!(!shown.contains("pdl_ntf_do_not_print"), "{shown}");
        assert!(shown.contains("paddle"), "{shown}");
    }
}

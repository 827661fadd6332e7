//! Zoom: `x-zm-signature: v0=<hex>` over `v0:{x-zm-request-timestamp}:{body}`.

use std::time::Duration;

use http::HeaderName;

use super::{Digest, Encoding, HmacScheme, Part, Secrets, Source, TimestampSource};
use crate::Policy;

impl HmacScheme {
    /// Zoom's scheme: HMAC-SHA256 (hex) of `v0:{timestamp}:{body}` in `x-zm-signature: v0=…`,
    /// keyed with the app's secret token; the timestamp must be within 5 minutes of now.
    pub fn zoom(secrets: impl Into<Secrets>) -> Self {
        HmacScheme::new(
            HeaderName::from_static("x-zm-signature"),
            Digest::Sha256,
            Encoding::Hex,
            secrets,
        )
        .prefix("v0=")
        .timestamp(TimestampSource::Header(HeaderName::from_static(
            "x-zm-request-timestamp",
        )))
        .signed_content([
            Part::text("v0:"),
            Part::Timestamp,
            Part::text(":"),
            Part::Body,
        ])
    }
}

impl Policy {
    /// A Zoom webhook route: [`HmacScheme::zoom`], the body's `event` as the event type, Zoom's
    /// 3 s timeout and its retry horizon (retries at 5, 20 and 60 minutes). Zoom documents no
    /// delivery id. Zoom's `endpoint.url_validation` challenge is answered by your handler.
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::Policy;
    ///
    /// let policy = Policy::zoom("zoom_secret_token");
    /// # let _ = policy;
    /// ```
    pub fn zoom(secrets: impl Into<Secrets>) -> Self {
        Policy::custom("zoom")
            .provider("zoom")
            .verify_with(HmacScheme::zoom(secrets))
            .event_type(Source::json("/event"))
            .timeout_budget(Duration::from_secs(3))
            .retry_horizon(Duration::from_secs(85 * 60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{test_support::*, SignatureError, Verified};

    /// Table B (derived, checked with openssl).
    const SECRET: &str = "zoom_secret_token";
    const TS: u64 = 1_700_000_000;
    const BODY: &str = r#"{"event":"meeting.started","event_ts":1700000000000,"payload":{}}"#;
    const B_SIGNATURE: &str = "v0=44c480522168b1ad488a8a0cf7d3f3f2e3af46dd40631530280a09946f14b213";

    fn check_at(
        scheme: &HmacScheme,
        signature: &str,
        ts: u64,
        now: u64,
    ) -> Result<Verified, SignatureError> {
        verify(
            scheme,
            &[
                ("x-zm-signature", signature),
                ("x-zm-request-timestamp", &ts.to_string()),
            ],
            BODY,
            now,
        )
    }

    fn check(scheme: &HmacScheme, signature: &str) -> Result<Verified, SignatureError> {
        check_at(scheme, signature, TS, TS)
    }

    fn signed(signer: &HmacScheme, index: usize) -> String {
        format!(
            "v0={}",
            sign(signer, index, &[], BODY, Some(&TS.to_string()))
        )
    }

    #[test]
    fn derived_vector_verifies() {
        assert_eq!(
            check_at(&HmacScheme::zoom(SECRET), B_SIGNATURE, TS, TS + 2),
            Ok(Verified::by_secret(0))
        );
    }

    #[test]
    fn derived_vector_301_s_later_is_stale() {
        assert_eq!(
            check_at(&HmacScheme::zoom(SECRET), B_SIGNATURE, TS, TS + 301),
            Err(SignatureError::Stale {
                age_secs: 301,
                tolerance_secs: 300
            })
        );
    }

    #[test]
    fn sign_matches_an_independent_hmac() {
        let expected = hmac_sha256(SECRET.as_bytes(), &[b"v0:1700000000:", BODY.as_bytes()]);
        assert_eq!(
            signed(&HmacScheme::zoom(SECRET), 0),
            format!("v0={}", hex::encode(expected))
        );
    }

    #[test]
    fn flipped_body_byte_is_mismatch() {
        let got = verify(
            &HmacScheme::zoom(SECRET),
            &[
                ("x-zm-signature", B_SIGNATURE),
                ("x-zm-request-timestamp", "1700000000"),
            ],
            flip_byte(BODY.as_bytes(), 2),
            TS,
        );
        assert_eq!(got, Err(SignatureError::Mismatch));
    }

    #[test]
    fn flipped_signature_char_is_mismatch() {
        let flipped = flip_char(B_SIGNATURE, "v0=".len() + 10);
        assert_eq!(
            check(&HmacScheme::zoom(SECRET), &flipped),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn changed_timestamp_within_tolerance_is_mismatch() {
        assert_eq!(
            check_at(&HmacScheme::zoom(SECRET), B_SIGNATURE, TS - 1, TS),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn missing_signature_header_is_missing_x_zm_signature() {
        let got = verify(
            &HmacScheme::zoom(SECRET),
            &[("x-zm-request-timestamp", "1700000000")],
            BODY,
            TS,
        );
        assert_eq!(
            got,
            Err(SignatureError::MissingHeader(HeaderName::from_static(
                "x-zm-signature"
            )))
        );
    }

    #[test]
    fn missing_timestamp_header_is_missing_x_zm_request_timestamp() {
        let got = verify(
            &HmacScheme::zoom(SECRET),
            &[("x-zm-signature", B_SIGNATURE)],
            BODY,
            TS,
        );
        assert_eq!(
            got,
            Err(SignatureError::MissingHeader(HeaderName::from_static(
                "x-zm-request-timestamp"
            )))
        );
    }

    #[test]
    fn truncated_signature_is_mismatch() {
        assert_eq!(
            check(&HmacScheme::zoom(SECRET), &B_SIGNATURE[.."v0=".len() + 32]),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn signature_with_another_secret_is_mismatch() {
        let header = signed(&HmacScheme::zoom("other-token"), 0);
        assert_eq!(
            check(&HmacScheme::zoom(SECRET), &header),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn second_secret_matches_with_index_1() {
        let rotating = HmacScheme::zoom(["new-token", SECRET]);
        assert_eq!(check(&rotating, B_SIGNATURE).unwrap().secret_index(), 1);
    }

    #[test]
    fn no_secrets_is_no_secret() {
        assert_eq!(
            check(&HmacScheme::zoom(Secrets::default()), B_SIGNATURE),
            Err(SignatureError::NoSecret)
        );
    }

    #[test]
    fn policy_builds_without_printing_the_secret() {
        let shown = format!("{:?}", Policy::zoom("zoom_do_not_print"));
        assert!(!shown.contains("zoom_do_not_print"), "{shown}");
        assert!(shown.contains("zoom"), "{shown}");
    }
}

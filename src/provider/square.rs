//! Square: `x-square-hmacsha256-signature: <base64>` over `{notification URL}{body}`.

use std::time::Duration;

use http::HeaderName;

use super::{AttemptSource, Digest, Encoding, HmacScheme, Part, Secrets, Source};
use crate::Policy;

impl HmacScheme {
    /// Square's scheme: HMAC-SHA256 (base64) of the subscription's notification URL followed by
    /// the body, keyed with the subscription's signature key. The URL must be byte for byte the
    /// one configured in Square (proxies rewrite the one the server sees, so it is given here).
    pub fn square(secrets: impl Into<Secrets>, notification_url: impl Into<String>) -> Self {
        HmacScheme::new(
            HeaderName::from_static("x-square-hmacsha256-signature"),
            Digest::Sha256,
            Encoding::Base64,
            secrets,
        )
        .signed_content([Part::text(notification_url.into()), Part::Body])
    }
}

impl Policy {
    /// A Square webhook route: [`HmacScheme::square`], the body's `event_id` as the delivery id,
    /// its `type` as the event type, the attempt from `square-retry-number`, the lag from
    /// `square-initial-delivery-timestamp`, a 10 s timeout and
    /// a 24-hour retry horizon (Square's current documentation).
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::Policy;
    ///
    /// let policy = Policy::square("signature-key", "https://example.com/webhooks/square");
    /// # let _ = policy;
    /// ```
    pub fn square(secrets: impl Into<Secrets>, notification_url: impl Into<String>) -> Self {
        Policy::custom("square")
            .provider("square")
            .verify_with(HmacScheme::square(secrets, notification_url))
            .delivery_id(Source::json("/event_id"))
            .event_type(Source::json("/type"))
            .attempt(AttemptSource::retries(Source::header(
                "square-retry-number",
            )))
            .sent_at(Source::header("square-initial-delivery-timestamp"))
            .timeout_budget(Duration::from_secs(10))
            .retry_horizon(Duration::from_secs(24 * 3600))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{test_support::*, SignatureError, Verified};

    /// A8: square-python-sdk `test_webhooks_helper.py`.
    const A8_KEY: &str = "Ibxx_5AKakO-3qeNVR61Dw";
    const A8_URL: &str = "https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9";
    const A8_BODY: &str = r#"{"merchant_id":"MLEFBHHSJGVHD","type":"webhooks.test_notification","event_id":"ac3ac95b-f97d-458c-a6e6-18981597e05f","created_at":"2022-07-13T20:30:59.037339943Z","data":{"type":"webhooks","id":"bc368e64-01aa-407e-b46e-3231809b1129"}}"#;
    const A8_SIGNATURE: &str = "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4=";

    const SECRET: &str = "square-signature-key";
    const URL: &str = "https://example.com/webhooks/square";
    const BODY: &str = r#"{"event_id":"e-1","type":"payment.created"}"#;

    fn a8(scheme: &HmacScheme, signature: &str, body: &str) -> Result<Verified, SignatureError> {
        verify(
            scheme,
            &[("x-square-hmacsha256-signature", signature)],
            body,
            0,
        )
    }

    fn check(scheme: &HmacScheme, signature: &str) -> Result<Verified, SignatureError> {
        verify(
            scheme,
            &[("x-square-hmacsha256-signature", signature)],
            BODY,
            0,
        )
    }

    fn signed(signer: &HmacScheme, index: usize) -> String {
        sign(signer, index, &[], BODY, None)
    }

    #[test]
    fn debug_hides_the_notification_url() {
        let scheme = HmacScheme::square(SECRET, "https://user:hunter2@hooks.example.com/square");
        let policy = Policy::square(SECRET, "https://user:hunter2@hooks.example.com/square");
        for text in [format!("{scheme:?}"), format!("{policy:?}")] {
            assert!(
                !text.contains("hunter2") && !text.contains("example.com"),
                "{text}"
            );
            assert!(!text.contains(SECRET), "{text}");
        }
        assert!(format!("{scheme:?}").contains("Literal(<45 bytes>)"));
    }

    #[test]
    fn a8_sdk_vector_verifies() {
        assert_eq!(
            a8(&HmacScheme::square(A8_KEY, A8_URL), A8_SIGNATURE, A8_BODY),
            Ok(Verified::by_secret(0))
        );
    }

    #[test]
    fn a8_verifies_whatever_uri_the_server_sees() {
        let got = verify_at_uri(
            &HmacScheme::square(A8_KEY, A8_URL),
            "http://10.0.0.7:8080/internal/square",
            &[("x-square-hmacsha256-signature", A8_SIGNATURE)],
            A8_BODY,
            0,
        );
        assert_eq!(got, Ok(Verified::by_secret(0)));
    }

    #[test]
    fn a8_url_mismatch_is_mismatch() {
        let wrong_url = "https://webhook.site/79a4f3a-dcfa-49ee-bac5-9d0edad886b9";
        assert_eq!(
            a8(
                &HmacScheme::square(A8_KEY, wrong_url),
                A8_SIGNATURE,
                A8_BODY
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a8_other_key_is_mismatch() {
        assert_eq!(
            a8(
                &HmacScheme::square("MCmhFRxGX82xMwg5FsaoQA", A8_URL),
                A8_SIGNATURE,
                A8_BODY
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a8_other_signature_is_mismatch() {
        assert_eq!(
            a8(
                &HmacScheme::square(A8_KEY, A8_URL),
                "1z2n3DEJJiUPKcPzQo1ftvbxGdw=",
                A8_BODY
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a8_changed_created_at_is_mismatch() {
        let body = A8_BODY.replace("2022-07-13", "2022-06-13");
        assert_eq!(
            a8(&HmacScheme::square(A8_KEY, A8_URL), A8_SIGNATURE, &body),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a8_pretty_printed_body_is_mismatch() {
        let pretty = r#"
        {
            "merchant_id": "MLEFBHHSJGVHD",
            "type": "webhooks.test_notification",
            "event_id": "ac3ac95b-f97d-458c-a6e6-18981597e05f",
            "created_at": "2022-07-13T20:30:59.037339943Z",
            "data": {
              "type": "webhooks",
              "id": "bc368e64-01aa-407e-b46e-3231809b1129"
            }
        }
        "#;
        assert_eq!(
            a8(&HmacScheme::square(A8_KEY, A8_URL), A8_SIGNATURE, pretty),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a8_escaping_vector_verifies_unescaped_bytes() {
        let scheme = HmacScheme::square("signature-key", "https://webhook.site/webhooks");
        let signature = "Cxt7+aTi4rKgcA0bC4g9EHdVtLSDWdqccmL5MvihU4U=";
        let body = r#"{"data":{"type":"webhooks","id":">id<"}}"#;
        assert_eq!(a8(&scheme, signature, body), Ok(Verified::by_secret(0)));
        let escaped = r#"{"data":{"type":"webhooks","id":"\u003eid\u003c"}}"#;
        assert_eq!(
            a8(&scheme, signature, escaped),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn sign_matches_an_independent_hmac() {
        let expected = base64(&hmac_sha256(
            SECRET.as_bytes(),
            &[URL.as_bytes(), BODY.as_bytes()],
        ));
        assert_eq!(signed(&HmacScheme::square(SECRET, URL), 0), expected);
    }

    #[test]
    fn flipped_body_byte_is_mismatch() {
        let scheme = HmacScheme::square(SECRET, URL);
        assert_eq!(
            verify(
                &scheme,
                &[("x-square-hmacsha256-signature", &signed(&scheme, 0))],
                flip_byte(BODY.as_bytes(), 4),
                0
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn flipped_signature_char_is_mismatch() {
        let scheme = HmacScheme::square(SECRET, URL);
        let flipped = flip_char(&signed(&scheme, 0), 22);
        assert_eq!(check(&scheme, &flipped), Err(SignatureError::Mismatch));
    }

    #[test]
    fn missing_header_is_missing_x_square_hmacsha256_signature() {
        assert_eq!(
            verify(&HmacScheme::square(SECRET, URL), &[], BODY, 0),
            Err(SignatureError::MissingHeader(HeaderName::from_static(
                "x-square-hmacsha256-signature"
            )))
        );
    }

    #[test]
    fn truncated_signature_is_mismatch() {
        let scheme = HmacScheme::square(SECRET, URL);
        let sig = signed(&scheme, 0);
        assert_eq!(check(&scheme, &sig[..8]), Err(SignatureError::Mismatch));
    }

    #[test]
    fn signature_with_another_secret_is_mismatch() {
        let header = signed(&HmacScheme::square("other-key", URL), 0);
        assert_eq!(
            check(&HmacScheme::square(SECRET, URL), &header),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn second_secret_matches_with_index_1() {
        let header = signed(&HmacScheme::square(SECRET, URL), 0);
        let rotating = HmacScheme::square(["new-key", SECRET], URL);
        assert_eq!(check(&rotating, &header).unwrap().secret_index(), 1);
    }

    #[test]
    fn no_secrets_is_no_secret() {
        let header = signed(&HmacScheme::square(SECRET, URL), 0);
        assert_eq!(
            check(&HmacScheme::square(Secrets::default(), URL), &header),
            Err(SignatureError::NoSecret)
        );
    }

    #[test]
    fn policy_builds_without_printing_the_secret() {
        let shown = format!("{:?}", Policy::square("sq_do_not_print", URL));
        assert!(!shown.contains("sq_do_not_print"), "{shown}");
        assert!(shown.contains("square"), "{shown}");
    }
}

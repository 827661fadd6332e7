//! Razorpay: `X-Razorpay-Signature: <hex>` over the body.

use std::time::Duration;

use http::HeaderName;

use super::{Digest, Encoding, HmacScheme, Secrets, Source};
use crate::Policy;

impl HmacScheme {
    /// Razorpay's scheme: HMAC-SHA256 (hex) of the body, keyed with the webhook secret.
    pub fn razorpay(secrets: impl Into<Secrets>) -> Self {
        HmacScheme::new(
            HeaderName::from_static("x-razorpay-signature"),
            Digest::Sha256,
            Encoding::Hex,
            secrets,
        )
    }
}

impl Policy {
    /// A Razorpay webhook route: [`HmacScheme::razorpay`], `x-razorpay-event-id` as the delivery
    /// id, the body's `event` as the event type, Razorpay's 5 s timeout and its 24-hour retry
    /// horizon. After changing the secret, keep the old one: retries stay signed with it while
    /// replays use the new one.
    ///
    /// Razorpay signs the body but not `x-razorpay-event-id`: with [`dedupe`](Self::dedupe), the
    /// route dedupes by the body's SHA-256, so a signed body sent again under a fresh id is a
    /// duplicate. Reports carry the event id all the same.
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::Policy;
    ///
    /// let policy = Policy::razorpay(["new-secret", "old-secret"]);
    /// # let _ = policy;
    /// ```
    pub fn razorpay(secrets: impl Into<Secrets>) -> Self {
        Policy::custom("razorpay")
            .provider("razorpay")
            .verify_with(HmacScheme::razorpay(secrets))
            .delivery_id(Source::header("x-razorpay-event-id"))
            .event_type(Source::json("/event"))
            .timeout_budget(Duration::from_secs(5))
            .retry_horizon(Duration::from_secs(24 * 3600))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{test_support::*, SignatureError, Verified};

    /// A10: razorpay-python `test_client_utility.py` with
    /// `tests/mocks/fake_payment_authorized_webhook.json` (971 bytes, trailing newline included).
    const A10_SECRET: &str = "key_secret";
    const A10_SIGNATURE: &str = "d60e67fd884556c045e9be7dad57903e33efc7172c17c6e3ef77db42d2b366e9";
    const A10_BODY: &str = r#"{
  "event": "payment.authorized",
  "entity": "event",
  "contains": [
    "payment"
  ],
  "payload": {
    "payment": {
      "entity": {
        "id": "pay_6koWN7bvxujzxM",
        "entity": "payment",
        "amount": 1000000,
        "currency": "INR",
        "status": "captured",
        "order_id": "order_100000000order",
        "international": false,
        "method": "card",
        "amount_refunded": 0,
        "refund_status": null,
        "captured": true,
        "description": "random description",
        "card_id": "card_6koWNAT6LASUqy",
        "bank": null,
        "wallet": null,
        "vpa": null,
        "email": "a@b.com",
        "contact": "+919999999999",
        "notes": {
          "merchant_order_id": "random order id"
        },
        "fee": 23000,
        "service_tax": 3000,
        "error_code": null,
        "error_description": null,
        "created_at": 1479978483
      }
    }
  },
  "created_at": 1400826760
}
"#;

    const SECRET: &str = "razorpay-webhook-secret";
    const BODY: &str = r#"{"entity":"event","event":"payment.captured","payload":{}}"#;

    fn check(scheme: &HmacScheme, signature: &str) -> Result<Verified, SignatureError> {
        verify(
            scheme,
            &[
                ("X-Razorpay-Signature", signature),
                ("x-razorpay-event-id", "EvT1"),
            ],
            BODY,
            0,
        )
    }

    fn signed(signer: &HmacScheme, index: usize) -> String {
        sign(signer, index, &[], BODY, None)
    }

    #[test]
    fn a10_fixture_is_971_bytes_with_the_trailing_newline() {
        assert_eq!(A10_BODY.len(), 971);
        assert!(A10_BODY.ends_with("}\n"));
        assert_eq!(
            sha256_hex(A10_BODY.as_bytes()),
            "9cc0236491299f34a154292eaed46d94b010f44b22095c034f884ca6a1862bef"
        );
    }

    #[test]
    fn a10_sdk_vector_verifies() {
        assert_eq!(
            verify(
                &HmacScheme::razorpay(A10_SECRET),
                &[("X-Razorpay-Signature", A10_SIGNATURE)],
                A10_BODY,
                0
            ),
            Ok(Verified::by_secret(0))
        );
    }

    #[test]
    fn a10_body_without_trailing_newline_is_mismatch() {
        let trimmed = &A10_BODY.as_bytes()[..970];
        assert_eq!(
            verify(
                &HmacScheme::razorpay(A10_SECRET),
                &[("x-razorpay-signature", A10_SIGNATURE)],
                trimmed,
                0
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            hex::encode(hmac_sha256(A10_SECRET.as_bytes(), &[trimmed])),
            "0971cde1d9216765d9aa72c766aef4a913fedfd2d36cc05cbca5de1ef90c12e4"
        );
    }

    #[test]
    fn independently_computed_vector_verifies() {
        let signature = hex::encode(hmac_sha256(SECRET.as_bytes(), &[BODY.as_bytes()]));
        assert_eq!(
            check(&HmacScheme::razorpay(SECRET), &signature),
            Ok(Verified::by_secret(0))
        );
    }

    #[test]
    fn sign_matches_an_independent_hmac() {
        let expected = hmac_sha256(SECRET.as_bytes(), &[BODY.as_bytes()]);
        assert_eq!(
            signed(&HmacScheme::razorpay(SECRET), 0),
            hex::encode(expected)
        );
    }

    #[test]
    fn flipped_body_byte_is_mismatch() {
        let scheme = HmacScheme::razorpay(SECRET);
        let got = verify(
            &scheme,
            &[("x-razorpay-signature", &signed(&scheme, 0))],
            flip_byte(BODY.as_bytes(), 30),
            0,
        );
        assert_eq!(got, Err(SignatureError::Mismatch));
    }

    #[test]
    fn flipped_signature_char_is_mismatch() {
        let scheme = HmacScheme::razorpay(SECRET);
        let flipped = flip_char(&signed(&scheme, 0), 3);
        assert_eq!(check(&scheme, &flipped), Err(SignatureError::Mismatch));
    }

    #[test]
    fn missing_header_is_missing_x_razorpay_signature() {
        assert_eq!(
            verify(&HmacScheme::razorpay(SECRET), &[], BODY, 0),
            Err(SignatureError::MissingHeader(HeaderName::from_static(
                "x-razorpay-signature"
            )))
        );
    }

    #[test]
    fn truncated_signature_is_mismatch() {
        let scheme = HmacScheme::razorpay(SECRET);
        let sig = signed(&scheme, 0);
        assert_eq!(check(&scheme, &sig[..32]), Err(SignatureError::Mismatch));
    }

    #[test]
    fn signature_with_another_secret_is_mismatch() {
        let header = signed(&HmacScheme::razorpay("old-secret"), 0);
        assert_eq!(
            check(&HmacScheme::razorpay(SECRET), &header),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn second_secret_matches_with_index_1() {
        let header = signed(&HmacScheme::razorpay(SECRET), 0);
        let rotating = HmacScheme::razorpay(["new-secret", SECRET]);
        assert_eq!(check(&rotating, &header).unwrap().secret_index(), 1);
    }

    #[test]
    fn no_secrets_is_no_secret() {
        let header = signed(&HmacScheme::razorpay(SECRET), 0);
        assert_eq!(
            check(&HmacScheme::razorpay(Secrets::default()), &header),
            Err(SignatureError::NoSecret)
        );
    }

    #[test]
    fn policy_builds_without_printing_the_secret() {
        let shown = format!("{:?}", Policy::razorpay("rzp_do_not_print"));
        assert!(!shown.contains("rzp_do_not_print"), "{shown}");
        assert!(shown.contains("razorpay"), "{shown}");
    }
}

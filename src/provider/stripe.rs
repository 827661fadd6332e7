//! Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]` over `{t}.{body}`.

use std::time::Duration;

use http::HeaderName;

use super::{
    Digest, Encoding, HmacScheme, Part, Secrets, SignatureFormat, Source, TimestampSource,
};
use crate::Policy;

impl HmacScheme {
    /// Stripe's scheme: HMAC-SHA256 (hex) of `{t}.{body}`, keyed with the `whsec_…` string as
    /// is; every `v1` signature is tried (Stripe sends several while a secret is rolled), `v0` and
    /// unknown keys are ignored; `t` must be within 5 minutes of now, either way.
    pub fn stripe(secrets: impl Into<Secrets>) -> Self {
        HmacScheme::new(
            HeaderName::from_static("stripe-signature"),
            Digest::Sha256,
            Encoding::Hex,
            secrets,
        )
        .format(SignatureFormat::Pairs {
            separator: ',',
            timestamp_key: "t".into(),
            signature_key: "v1".into(),
        })
        .timestamp(TimestampSource::Signature)
        .signed_content([Part::Timestamp, Part::text("."), Part::Body])
    }
}

impl Policy {
    /// A Stripe webhook route: [`HmacScheme::stripe`], the event id (`evt_…`, body `id`) as the
    /// delivery id, the event `type`, the event's `created` time for the delivery lag, and
    /// Stripe's 3-day retry horizon. Stripe publishes no
    /// response timeout, so none is set: add yours with [`Policy::timeout_budget`].
    ///
    /// Reading these body fields scans the whole event, because Stripe puts `type` after `data`
    /// and a later duplicate key would win: about 6 to 8 instructions per byte, on a 50 KiB
    /// event about as much as the HMAC. Any of them can be turned off with `None` (for example
    /// [`Policy::event_type`]); the scan is skipped only when no body field is left.
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::Policy;
    ///
    /// let policy = Policy::stripe("whsec_…");
    /// // During a secret roll, accept both:
    /// let rolling = Policy::stripe(["whsec_new…", "whsec_old…"]);
    /// # let _ = (policy, rolling);
    /// ```
    pub fn stripe(secrets: impl Into<Secrets>) -> Self {
        Policy::custom("stripe")
            .provider("stripe")
            .verify_with(HmacScheme::stripe(secrets))
            .delivery_id(Source::json("/id"))
            .event_type(Source::json("/type"))
            .sent_at(Source::json("/created"))
            .retry_horizon(Duration::from_secs(3 * 24 * 3600))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{test_support::*, SignatureError, Verified};

    /// A3: stripe-dotnet `EventUtilityTest` with `event_test_signature.json`.
    const A3_SECRET: &str = "webhook_secret";
    const A3_TS: u64 = 1_533_204_620;
    const A3_HEADER: &str = "t=1533204620,\
        v1=2220f87ef101a04665f11cdf770523143f875572008577fa0f20882ddb9cc3c7,\
        v0=63f3a72374a733066c4be69ed7f8e5ac85c22c9f0a6a612ab9a025a9e4ee7eef";
    const A3_BODY: &str = r#"{
  "id": "evt_123",
  "object": "event",
  "account": "acct_123",
  "api_version": "2017-05-25",
  "created": 1533204620,
  "data": {
    "object": {
      "id": "cus_123",
      "object": "customer",
      "created": 123456789,
      "email": "test@stripe.com",
      "livemode": false,
      "metadata": {}
    }
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {
    "id": "req_123",
    "idempotency_key": "idempotency-key-123"
  },
  "type": "customer.created"
}
"#;

    const SECRET: &str = "whsec_test_secret";
    const TS: u64 = 1_700_000_000;
    const BODY: &str = r#"{"id":"evt_test_webhook","object":"event"}"#;

    fn a3(body: &[u8], now: u64) -> Result<Verified, SignatureError> {
        verify(
            &HmacScheme::stripe(A3_SECRET),
            &[("Stripe-Signature", A3_HEADER)],
            body,
            now,
        )
    }

    /// A `t=…,v1=…` header: `BODY` at `TS`, signed by `signer`'s secret at `index`.
    fn signed(signer: &HmacScheme, index: usize) -> String {
        let sig = sign(signer, index, &[], BODY, Some(&TS.to_string()));
        format!("t={TS},v1={sig}")
    }

    fn check(scheme: &HmacScheme, header: &str) -> Result<Verified, SignatureError> {
        verify(scheme, &[("stripe-signature", header)], BODY, TS)
    }

    #[test]
    fn a3_fixture_is_484_bytes_with_the_trailing_newline() {
        assert_eq!(A3_BODY.len(), 484);
        assert!(A3_BODY.ends_with("}\n"));
        assert_eq!(
            sha256_hex(A3_BODY.as_bytes()),
            "98cc89412549ca7faf118fca984763bdb6f81e13d1ce8c528dbbb5be602ec1be"
        );
    }

    #[test]
    fn a3_official_vector_verifies_100_s_later() {
        assert_eq!(
            a3(A3_BODY.as_bytes(), A3_TS + 100),
            Ok(Verified::by_secret(0))
        );
    }

    #[test]
    fn a3_body_without_trailing_newline_is_mismatch() {
        let trimmed = &A3_BODY.as_bytes()[..483];
        assert_eq!(a3(trimmed, A3_TS + 100), Err(SignatureError::Mismatch));
        // That body's own signature, as PROVIDERS.md gives it.
        let sig = hmac_sha256(A3_SECRET.as_bytes(), &[b"1533204620.", trimmed]);
        assert_eq!(
            hex::encode(sig),
            "8c506d7d19ece69e9a38e398964787dda54eeb2583381ffc7f56070c28d7f119"
        );
    }

    #[test]
    fn a3_body_with_appended_text_is_mismatch() {
        let changed = format!("{A3_BODY}this_changes_the_json");
        assert_eq!(
            a3(changed.as_bytes(), A3_TS + 100),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a3_400_s_later_is_stale() {
        assert_eq!(
            a3(A3_BODY.as_bytes(), A3_TS + 400),
            Err(SignatureError::Stale {
                age_secs: 400,
                tolerance_secs: 300
            })
        );
    }

    /// The MAC is checked before the timestamp's age: a sender without the secret learns
    /// nothing from the reason, not even how far off our clock is.
    #[test]
    fn a_stale_timestamp_is_told_only_to_a_valid_signature() {
        let forged = A3_HEADER.replace("v1=2220", "v1=3220");
        for now in [A3_TS + 400, A3_TS - 400, A3_TS + 100] {
            assert_eq!(
                verify(
                    &HmacScheme::stripe(A3_SECRET),
                    &[("Stripe-Signature", &forged)],
                    A3_BODY,
                    now
                ),
                Err(SignatureError::Mismatch),
                "at {now}"
            );
        }
        let not_a_number = "t=+1533204620,v1=00";
        assert_eq!(
            check(&HmacScheme::stripe(SECRET), not_a_number),
            Err(SignatureError::Malformed("timestamp is not a number"))
        );
    }

    #[test]
    fn a3_v0_signature_alone_is_not_accepted() {
        let v0_only = "t=1533204620,\
            v0=63f3a72374a733066c4be69ed7f8e5ac85c22c9f0a6a612ab9a025a9e4ee7eef";
        let got = verify(
            &HmacScheme::stripe(A3_SECRET),
            &[("stripe-signature", v0_only)],
            A3_BODY,
            A3_TS,
        );
        assert!(matches!(got, Err(SignatureError::Malformed(_))), "{got:?}");
    }

    #[test]
    fn sign_matches_an_independent_hmac() {
        let sig = sign(
            &HmacScheme::stripe(SECRET),
            0,
            &[],
            BODY,
            Some("1700000000"),
        );
        let expected = hmac_sha256(SECRET.as_bytes(), &[b"1700000000.", BODY.as_bytes()]);
        assert_eq!(sig, hex::encode(expected));
    }

    #[test]
    fn signed_header_verifies() {
        let scheme = HmacScheme::stripe(SECRET);
        assert_eq!(
            check(&scheme, &signed(&scheme, 0)),
            Ok(Verified::by_secret(0))
        );
    }

    #[test]
    fn flipped_body_byte_is_mismatch() {
        let scheme = HmacScheme::stripe(SECRET);
        let header = signed(&scheme, 0);
        let body = flip_byte(BODY.as_bytes(), 10);
        assert_eq!(
            verify(&scheme, &[("stripe-signature", &header)], body, TS),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn flipped_signature_char_is_mismatch() {
        let scheme = HmacScheme::stripe(SECRET);
        let sig = sign(&scheme, 0, &[], BODY, Some(&TS.to_string()));
        let header = format!("t={TS},v1={}", flip_char(&sig, 20));
        assert_eq!(check(&scheme, &header), Err(SignatureError::Mismatch));
    }

    #[test]
    fn changed_timestamp_within_tolerance_is_mismatch() {
        let scheme = HmacScheme::stripe(SECRET);
        let sig = sign(&scheme, 0, &[], BODY, Some(&TS.to_string()));
        let header = format!("t={},v1={sig}", TS + 1);
        assert_eq!(check(&scheme, &header), Err(SignatureError::Mismatch));
    }

    #[test]
    fn timestamp_301_s_ahead_is_future() {
        let scheme = HmacScheme::stripe(SECRET);
        assert_eq!(
            verify(
                &scheme,
                &[("stripe-signature", &signed(&scheme, 0))],
                BODY,
                TS - 301
            ),
            Err(SignatureError::Future {
                ahead_secs: 301,
                tolerance_secs: 300
            })
        );
    }

    #[test]
    fn missing_header_is_missing_stripe_signature() {
        assert_eq!(
            verify(&HmacScheme::stripe(SECRET), &[], BODY, TS),
            Err(SignatureError::MissingHeader(HeaderName::from_static(
                "stripe-signature"
            )))
        );
    }

    #[test]
    fn header_without_t_is_malformed() {
        let scheme = HmacScheme::stripe(SECRET);
        let sig = sign(&scheme, 0, &[], BODY, Some(&TS.to_string()));
        let got = check(&scheme, &format!("v1={sig}"));
        assert!(matches!(got, Err(SignatureError::Malformed(_))), "{got:?}");
    }

    #[test]
    fn truncated_signature_is_mismatch_or_malformed_when_odd() {
        let scheme = HmacScheme::stripe(SECRET);
        let sig = sign(&scheme, 0, &[], BODY, Some(&TS.to_string()));
        let half = format!("t={TS},v1={}", &sig[..32]);
        assert_eq!(check(&scheme, &half), Err(SignatureError::Mismatch));
        let odd = format!("t={TS},v1={}", &sig[..63]);
        assert!(matches!(
            check(&scheme, &odd),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn signature_with_another_secret_is_mismatch() {
        let header = signed(&HmacScheme::stripe("whsec_other"), 0);
        assert_eq!(
            check(&HmacScheme::stripe(SECRET), &header),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn second_secret_matches_with_index_1() {
        let header = signed(&HmacScheme::stripe(SECRET), 0);
        let rotating = HmacScheme::stripe(["whsec_new", SECRET]);
        assert_eq!(check(&rotating, &header).unwrap().secret_index(), 1);
    }

    #[test]
    fn rolled_header_with_two_v1_verifies_by_either() {
        let old = sign(
            &HmacScheme::stripe("whsec_old"),
            0,
            &[],
            BODY,
            Some("1700000000"),
        );
        let new = sign(
            &HmacScheme::stripe(SECRET),
            0,
            &[],
            BODY,
            Some("1700000000"),
        );
        let header = format!("t={TS},v1={old},v1={new},v0=ignored");
        assert_eq!(
            check(&HmacScheme::stripe(SECRET), &header),
            Ok(Verified::by_secret(0))
        );
        assert_eq!(
            check(&HmacScheme::stripe("whsec_old"), &header),
            Ok(Verified::by_secret(0))
        );
    }

    #[test]
    fn no_secrets_is_no_secret() {
        let header = signed(&HmacScheme::stripe(SECRET), 0);
        assert_eq!(
            check(&HmacScheme::stripe(Secrets::default()), &header),
            Err(SignatureError::NoSecret)
        );
    }

    #[test]
    fn policy_builds_without_printing_the_secret() {
        let shown = format!("{:?}", Policy::stripe("whsec_do_not_print"));
        assert!(!shown.contains("whsec_do_not_print"), "{shown}");
        assert!(shown.contains("stripe"), "{shown}");
        let scheme = format!("{:?}", HmacScheme::stripe("whsec_do_not_print"));
        assert!(!scheme.contains("whsec_do_not_print"), "{scheme}");
    }
}

//! Slack: `X-Slack-Signature: v0=<hex>` over `v0:{ts}:{body}`.

use std::time::Duration;

use http::HeaderName;

use super::{AttemptSource, Digest, Encoding, HmacScheme, Part, Secrets, Source, TimestampSource};
use crate::Policy;

impl HmacScheme {
    /// Slack's scheme: HMAC-SHA256 (hex) of `v0:{X-Slack-Request-Timestamp}:{body}` in
    /// `X-Slack-Signature: v0=…`, keyed with the signing secret; the timestamp must be within
    /// 5 minutes of now.
    pub fn slack(secrets: impl Into<Secrets>) -> Self {
        HmacScheme::new(
            HeaderName::from_static("x-slack-signature"),
            Digest::Sha256,
            Encoding::Hex,
            secrets,
        )
        .prefix("v0=")
        .timestamp(TimestampSource::Header(HeaderName::from_static(
            "x-slack-request-timestamp",
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
    /// A Slack Events API route: [`HmacScheme::slack`], the envelope's `event_id` as the delivery
    /// id, the inner event's `type`, the attempt from `X-Slack-Retry-Num` (absent on the first
    /// delivery), Slack's 3 s timeout and its retry horizon (three retries within about
    /// 6 minutes; 10 minutes here).
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::Policy;
    ///
    /// let policy = Policy::slack("8f742231b10e8888abcd99yyyzzz85a5");
    /// # let _ = policy;
    /// ```
    pub fn slack(secrets: impl Into<Secrets>) -> Self {
        Policy::custom("slack")
            .provider("slack")
            .verify_with(HmacScheme::slack(secrets))
            .delivery_id(Source::json("/event_id"))
            .event_type(Source::json("/event/type"))
            .attempt(AttemptSource::retries(Source::header("x-slack-retry-num")))
            .timeout_budget(Duration::from_secs(3))
            .retry_horizon(Duration::from_secs(10 * 60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{test_support::*, SignatureError, Verified};

    /// A4: Slack's docs vector (python-slack-sdk `test_signature_verifier.py`).
    const A4_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const A4_TS: u64 = 1_531_420_618;
    const A4_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const A4_SIGNATURE: &str =
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    const SECRET: &str = "slack-signing-secret";
    const TS: u64 = 1_700_000_000;
    const BODY: &str = r#"{"type":"event_callback","event_id":"Ev1","event":{"type":"message"}}"#;

    fn a4(body: &str, now: u64) -> Result<Verified, SignatureError> {
        verify(
            &HmacScheme::slack(A4_SECRET),
            &[
                ("X-Slack-Signature", A4_SIGNATURE),
                ("X-Slack-Request-Timestamp", "1531420618"),
            ],
            body,
            now,
        )
    }

    /// `BODY` signed at `TS`.
    fn signed(signer: &HmacScheme, index: usize) -> String {
        format!(
            "v0={}",
            sign(signer, index, &[], BODY, Some(&TS.to_string()))
        )
    }

    fn check(scheme: &HmacScheme, signature: &str, ts: u64) -> Result<Verified, SignatureError> {
        verify(
            scheme,
            &[
                ("x-slack-signature", signature),
                ("x-slack-request-timestamp", &ts.to_string()),
            ],
            BODY,
            TS,
        )
    }

    #[test]
    fn a4_docs_vector_verifies() {
        assert_eq!(A4_BODY.len(), 362);
        assert_eq!(a4(A4_BODY, A4_TS + 10), Ok(Verified::by_secret(0)));
    }

    #[test]
    fn a4_body_with_appended_dashes_is_mismatch() {
        let changed = format!("{A4_BODY}------");
        assert_eq!(a4(&changed, A4_TS + 10), Err(SignatureError::Mismatch));
    }

    #[test]
    fn a4_at_a_later_clock_is_stale() {
        assert_eq!(
            a4(A4_BODY, TS),
            Err(SignatureError::Stale {
                age_secs: TS - A4_TS,
                tolerance_secs: 300
            })
        );
    }

    #[test]
    fn sign_matches_an_independent_hmac() {
        let sig = sign(&HmacScheme::slack(SECRET), 0, &[], BODY, Some("1700000000"));
        let expected = hmac_sha256(SECRET.as_bytes(), &[b"v0:1700000000:", BODY.as_bytes()]);
        assert_eq!(sig, hex::encode(expected));
    }

    #[test]
    fn flipped_body_byte_is_mismatch() {
        let scheme = HmacScheme::slack(SECRET);
        let got = verify(
            &scheme,
            &[
                ("x-slack-signature", &signed(&scheme, 0)),
                ("x-slack-request-timestamp", "1700000000"),
            ],
            flip_byte(BODY.as_bytes(), 12),
            TS,
        );
        assert_eq!(got, Err(SignatureError::Mismatch));
    }

    #[test]
    fn flipped_signature_char_is_mismatch() {
        let scheme = HmacScheme::slack(SECRET);
        let flipped = flip_char(&signed(&scheme, 0), "v0=".len() + 40);
        assert_eq!(check(&scheme, &flipped, TS), Err(SignatureError::Mismatch));
    }

    #[test]
    fn changed_timestamp_within_tolerance_is_mismatch() {
        let scheme = HmacScheme::slack(SECRET);
        assert_eq!(
            check(&scheme, &signed(&scheme, 0), TS + 1),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn missing_signature_header_is_missing_x_slack_signature() {
        let got = verify(
            &HmacScheme::slack(SECRET),
            &[("x-slack-request-timestamp", "1700000000")],
            BODY,
            TS,
        );
        assert_eq!(
            got,
            Err(SignatureError::MissingHeader(HeaderName::from_static(
                "x-slack-signature"
            )))
        );
    }

    #[test]
    fn missing_timestamp_header_is_missing_x_slack_request_timestamp() {
        let scheme = HmacScheme::slack(SECRET);
        let got = verify(
            &scheme,
            &[("x-slack-signature", &signed(&scheme, 0))],
            BODY,
            TS,
        );
        assert_eq!(
            got,
            Err(SignatureError::MissingHeader(HeaderName::from_static(
                "x-slack-request-timestamp"
            )))
        );
    }

    #[test]
    fn truncated_signature_is_mismatch() {
        let scheme = HmacScheme::slack(SECRET);
        let sig = signed(&scheme, 0);
        assert_eq!(
            check(&scheme, &sig[.."v0=".len() + 32], TS),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn signature_with_another_secret_is_mismatch() {
        let header = signed(&HmacScheme::slack("other-secret"), 0);
        assert_eq!(
            check(&HmacScheme::slack(SECRET), &header, TS),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn second_secret_matches_with_index_1() {
        let header = signed(&HmacScheme::slack(SECRET), 0);
        let rotating = HmacScheme::slack(["new-secret", SECRET]);
        assert_eq!(check(&rotating, &header, TS).unwrap().secret_index(), 1);
    }

    #[test]
    fn no_secrets_is_no_secret() {
        let header = signed(&HmacScheme::slack(SECRET), 0);
        assert_eq!(
            check(&HmacScheme::slack(Secrets::default()), &header, TS),
            Err(SignatureError::NoSecret)
        );
    }

    #[test]
    fn policy_builds_without_printing_the_secret() {
        let shown = format!("{:?}", Policy::slack("slack_do_not_print"));
        assert!(!shown.contains("slack_do_not_print"), "{shown}");
        assert!(shown.contains("slack"), "{shown}");
    }
}

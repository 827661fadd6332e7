//! Standard Webhooks (and Svix, Clerk, Resend, GitLab's signing token):
//! `webhook-signature: v1,<base64> …` over `{webhook-id}.{webhook-timestamp}.{body}`.

use std::time::Duration;

use http::HeaderName;

use super::{
    fallback::Fallback, Digest, Encoding, HmacScheme, InvalidSecret, Part, Secrets,
    SignatureFormat, Source, TimestampSource,
};
use crate::Policy;

impl HmacScheme {
    /// The Standard Webhooks scheme with headers named `{prefix}-id`, `{prefix}-timestamp` and
    /// `{prefix}-signature` (`prefix` is `webhook` or `svix`): HMAC-SHA256 (base64) of
    /// `{id}.{timestamp}.{body}`; every space-separated `v1,` signature is tried, other versions
    /// are ignored; the timestamp must be within 5 minutes of now, either way. Pass secrets
    /// decoded with [`Secrets::from_base64`].
    ///
    /// # Panics
    ///
    /// If `prefix` is not a lowercase header-name prefix.
    pub fn standard_webhooks(prefix: &'static str, secrets: impl Into<Secrets>) -> Self {
        let header = |suffix: &str| {
            HeaderName::try_from(format!("{prefix}-{suffix}")).expect("a valid header prefix")
        };
        HmacScheme::new(
            header("signature"),
            Digest::Sha256,
            Encoding::Base64,
            secrets,
        )
        .format(SignatureFormat::Versioned {
            version: "v1".into(),
        })
        .timestamp(TimestampSource::Header(header("timestamp")))
        .signed_content([
            Part::Header(header("id")),
            Part::text("."),
            Part::Timestamp,
            Part::text("."),
            Part::Body,
        ])
    }
}

/// `webhook-*` headers when present, else `svix-*`.
fn either_headers(secrets: Secrets) -> Fallback {
    Fallback {
        primary: HmacScheme::standard_webhooks("webhook", secrets.clone()),
        fallback: HmacScheme::standard_webhooks("svix", secrets),
    }
}

/// A route for a Standard Webhooks sender, named `provider`.
fn route(provider: &'static str, secrets: Secrets, id_header: &'static str) -> Policy {
    Policy::custom(provider)
        .provider(provider)
        .verify_with(either_headers(secrets))
        .delivery_id(Source::header(id_header))
        .event_type(Source::json("/type"))
        .timeout_budget(Duration::from_secs(15))
        // Svix's schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
        .retry_horizon(Duration::from_secs(28 * 3600))
}

impl Policy {
    /// A route for any Standard Webhooks sender, with `webhook-*` or Svix's `svix-*` headers:
    /// [`HmacScheme::standard_webhooks`], `webhook-id` (the same on every retry) as the delivery
    /// id, the body's `type` as the event type, a 15 s timeout and Svix's ~28-hour retry
    /// horizon. Secrets are `whsec_…` strings (base64, padded or not); several for a rotation.
    ///
    /// # Errors
    ///
    /// [`InvalidSecret`] when a secret is not base64.
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::Policy;
    ///
    /// let policy = Policy::standard_webhooks(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])?;
    /// # Ok::<(), webhook_monitor::provider::InvalidSecret>(())
    /// ```
    pub fn standard_webhooks<I, S>(secrets: I) -> Result<Self, InvalidSecret>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Ok(route(
            "standard_webhooks",
            Secrets::from_base64(secrets)?,
            "webhook-id",
        ))
    }

    /// A Svix-sent route (`svix-*` headers; `webhook-*` accepted too): as
    /// [`Policy::standard_webhooks`], with `svix-id` as the delivery id.
    ///
    /// # Errors
    ///
    /// [`InvalidSecret`] when a secret is not base64.
    pub fn svix<I, S>(secrets: I) -> Result<Self, InvalidSecret>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Ok(route("svix", Secrets::from_base64(secrets)?, "svix-id"))
    }

    /// A Clerk webhook route (Clerk sends through Svix): as [`Policy::svix`].
    ///
    /// # Errors
    ///
    /// [`InvalidSecret`] when a secret is not base64.
    pub fn clerk<I, S>(secrets: I) -> Result<Self, InvalidSecret>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Ok(route("clerk", Secrets::from_base64(secrets)?, "svix-id"))
    }

    /// A Resend webhook route (Resend sends through Svix): as [`Policy::svix`].
    ///
    /// # Errors
    ///
    /// [`InvalidSecret`] when a secret is not base64.
    pub fn resend<I, S>(secrets: I) -> Result<Self, InvalidSecret>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Ok(route("resend", Secrets::from_base64(secrets)?, "svix-id"))
    }

    /// A GitLab route with a signing token (GitLab's opt-in Standard Webhooks signing):
    /// `webhook-signature` over `{webhook-id}.{webhook-timestamp}.{body}`, the signed
    /// `webhook-id` as the delivery id (GitLab sends the same value in `Idempotency-Key`, which
    /// is not signed), `X-Gitlab-Event` as the event type, and GitLab's 10 s timeout. For the
    /// classic plain `X-Gitlab-Token`, see [`Policy::gitlab`].
    ///
    /// # Errors
    ///
    /// [`InvalidSecret`] when a token is not base64.
    pub fn gitlab_signed<I, S>(signing_tokens: I) -> Result<Self, InvalidSecret>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let secrets = Secrets::from_base64(signing_tokens)?;
        Ok(Policy::custom("gitlab")
            .provider("gitlab")
            .verify_with(HmacScheme::standard_webhooks("webhook", secrets))
            .delivery_id(Source::header("webhook-id"))
            .event_type(Source::header("x-gitlab-event"))
            .timeout_budget(Duration::from_secs(10)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{test_support::*, SignatureError, Verified};

    /// A5 V1: standard-webhooks Rust `test_sign`, svix `webhooks.rs`.
    const V1_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const V1_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const V1_TS: u64 = 1_649_367_553;
    const V1_BODY: &str = r#"{"email":"test@example.com","username":"test_user"}"#;
    const V1_SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    /// A5 V2: the Python/JS/Go `sign` tests.
    const V2_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const V2_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const V2_TS: u64 = 1_614_265_330;
    const V2_BODY: &str = r#"{"test": 2432232314}"#;
    const V2_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    /// A wrong signature in the Python tests (`test_invalid_signature_raises_error`).
    const V2_NEGATIVE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=";
    const OTHER_V1: &str = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";

    fn scheme(prefix: &'static str, secrets: &[&str]) -> HmacScheme {
        let secrets = Secrets::from_base64(secrets).expect("base64 secrets");
        HmacScheme::standard_webhooks(prefix, secrets)
    }

    fn v2_scheme() -> HmacScheme {
        scheme("webhook", &[V2_SECRET])
    }

    /// A `webhook-*` request for `V2_BODY`.
    fn deliver(
        scheme: &HmacScheme,
        id: &str,
        ts: &str,
        signature: &str,
        now: u64,
    ) -> Result<Verified, SignatureError> {
        verify(
            scheme,
            &[
                ("webhook-id", id),
                ("webhook-timestamp", ts),
                ("webhook-signature", signature),
            ],
            V2_BODY,
            now,
        )
    }

    /// The V2 request with `signature`, at the V2 timestamp.
    fn v2_with(scheme: &HmacScheme, signature: &str) -> Result<Verified, SignatureError> {
        deliver(scheme, V2_ID, "1614265330", signature, V2_TS)
    }

    /// `v1,…` for `V2_BODY` with `V2_ID` at `ts`, by `signer`'s secret at `index`.
    fn signed(signer: &HmacScheme, index: usize, ts: u64) -> String {
        let sig = sign(
            signer,
            index,
            &[("webhook-id", V2_ID)],
            V2_BODY,
            Some(&ts.to_string()),
        );
        format!("v1,{sig}")
    }

    fn name(s: &'static str) -> HeaderName {
        HeaderName::from_static(s)
    }

    #[test]
    fn v1_vector_verifies() {
        let got = verify(
            &scheme("webhook", &[V1_SECRET]),
            &[
                ("webhook-id", V1_ID),
                ("webhook-timestamp", "1649367553"),
                ("webhook-signature", V1_SIGNATURE),
            ],
            V1_BODY,
            V1_TS,
        );
        assert_eq!(got, Ok(Verified::by_secret(0)));
    }

    #[test]
    fn v1_vector_verifies_with_svix_headers() {
        let got = verify(
            &scheme("svix", &[V1_SECRET]),
            &[
                ("svix-id", V1_ID),
                ("svix-timestamp", "1649367553"),
                ("svix-signature", V1_SIGNATURE),
            ],
            V1_BODY,
            V1_TS + 10,
        );
        assert_eq!(got, Ok(Verified::by_secret(0)));
    }

    #[test]
    fn policy_scheme_accepts_svix_headers_when_webhook_ones_are_absent() {
        let secrets = Secrets::from_base64([V1_SECRET]).unwrap();
        let got = verify(
            &either_headers(secrets),
            &[
                ("svix-id", V1_ID),
                ("svix-timestamp", "1649367553"),
                ("svix-signature", V1_SIGNATURE),
            ],
            V1_BODY,
            V1_TS,
        );
        assert_eq!(got, Ok(Verified::by_secret(0)));
    }

    #[test]
    fn policy_scheme_uses_webhook_headers_whenever_present() {
        let secrets = Secrets::from_base64([V1_SECRET]).unwrap();
        let got = verify(
            &either_headers(secrets),
            &[
                ("webhook-id", V1_ID),
                ("webhook-timestamp", "1649367553"),
                ("webhook-signature", OTHER_V1),
                ("svix-id", V1_ID),
                ("svix-timestamp", "1649367553"),
                ("svix-signature", V1_SIGNATURE),
            ],
            V1_BODY,
            V1_TS,
        );
        assert_eq!(got, Err(SignatureError::Mismatch));
    }

    #[test]
    fn v2_vector_verifies_with_and_without_whsec_prefix() {
        let bare = V2_SECRET.trim_start_matches("whsec_");
        for secret in [V2_SECRET, bare] {
            assert_eq!(
                v2_with(&scheme("webhook", &[secret]), V2_SIGNATURE),
                Ok(Verified::by_secret(0)),
                "{secret}"
            );
        }
    }

    #[test]
    fn v2_negative_signature_is_mismatch() {
        assert_eq!(
            v2_with(&v2_scheme(), V2_NEGATIVE),
            Err(SignatureError::Mismatch)
        );
    }

    /// The Python library pads secrets (`b64decode(s + "==")`); these signatures were computed
    /// with its decoding: `…LaS` is 23 key bytes, `…LaSwBr` is 25.
    #[test]
    fn unpadded_secrets_verify_like_the_python_library() {
        for (secret, signature) in [
            (
                "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",
                "v1,LVOXivKoo4FWasi/IaHvzhE/u+7/cu2AME+zS/nXqzk=",
            ),
            (
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr",
                "v1,yK2tMbA6BHPrMEJ1lLv7UlJJbgFoqGenJkiajZ29evg=",
            ),
        ] {
            assert_eq!(
                v2_with(&scheme("webhook", &[secret]), signature),
                Ok(Verified::by_secret(0)),
                "{secret}"
            );
        }
    }

    #[test]
    fn multi_signature_header_with_the_valid_one_in_the_middle_verifies() {
        let header = format!(
            "{OTHER_V1} v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= {V2_SIGNATURE} {OTHER_V1}"
        );
        assert_eq!(v2_with(&v2_scheme(), &header), Ok(Verified::by_secret(0)));
    }

    #[test]
    fn v2_entries_are_ignored() {
        let valid_as_v2 = V2_SIGNATURE.replacen("v1,", "v2,", 1);
        let got = v2_with(&v2_scheme(), &valid_as_v2);
        assert!(matches!(got, Err(SignatureError::Malformed(_))), "{got:?}");
    }

    #[test]
    fn partial_v1_entry_is_mismatch() {
        assert_eq!(v2_with(&v2_scheme(), "v1,"), Err(SignatureError::Mismatch));
    }

    #[test]
    fn first_8_chars_of_a_signature_are_rejected() {
        // Of the header value: `v1,g0hM9` leaves 5 base64 characters, which cannot decode.
        let got = v2_with(&v2_scheme(), &V2_SIGNATURE[..8]);
        assert!(matches!(got, Err(SignatureError::Malformed(_))), "{got:?}");
        // Of the signature: 8 characters decode to 6 bytes.
        let short = format!("v1,{}", &V2_SIGNATURE[3..11]);
        assert_eq!(v2_with(&v2_scheme(), &short), Err(SignatureError::Mismatch));
    }

    #[test]
    fn timestamp_301_s_old_is_stale() {
        let scheme = v2_scheme();
        let ts = V2_TS - 301;
        let got = deliver(
            &scheme,
            V2_ID,
            &ts.to_string(),
            &signed(&scheme, 0, ts),
            V2_TS,
        );
        assert_eq!(
            got,
            Err(SignatureError::Stale {
                age_secs: 301,
                tolerance_secs: 300
            })
        );
    }

    #[test]
    fn timestamp_301_s_ahead_is_future() {
        let scheme = v2_scheme();
        let ts = V2_TS + 301;
        let got = deliver(
            &scheme,
            V2_ID,
            &ts.to_string(),
            &signed(&scheme, 0, ts),
            V2_TS,
        );
        assert_eq!(
            got,
            Err(SignatureError::Future {
                ahead_secs: 301,
                tolerance_secs: 300
            })
        );
    }

    #[test]
    fn timestamp_300_s_either_way_verifies() {
        let scheme = v2_scheme();
        for ts in [V2_TS - 300, V2_TS + 300] {
            let got = deliver(
                &scheme,
                V2_ID,
                &ts.to_string(),
                &signed(&scheme, 0, ts),
                V2_TS,
            );
            assert_eq!(got, Ok(Verified::by_secret(0)), "{ts}");
        }
    }

    #[test]
    fn timestamp_hello_is_malformed() {
        let got = deliver(&v2_scheme(), V2_ID, "hello", V2_SIGNATURE, V2_TS);
        assert!(matches!(got, Err(SignatureError::Malformed(_))), "{got:?}");
    }

    #[test]
    fn each_missing_header_is_missing_header() {
        let all = [
            ("webhook-id", V2_ID),
            ("webhook-timestamp", "1614265330"),
            ("webhook-signature", V2_SIGNATURE),
        ];
        for (missing, _) in all {
            let rest: Vec<_> = all.into_iter().filter(|(n, _)| *n != missing).collect();
            assert_eq!(
                verify(&v2_scheme(), &rest, V2_BODY, V2_TS),
                Err(SignatureError::MissingHeader(name(missing))),
            );
        }
    }

    #[test]
    fn sign_matches_an_independent_hmac() {
        let key = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )
        .unwrap();
        let expected = hmac_sha256(
            &key,
            &[V2_ID.as_bytes(), b".1614265330.", V2_BODY.as_bytes()],
        );
        assert_eq!(
            signed(&v2_scheme(), 0, V2_TS),
            format!("v1,{}", base64(&expected))
        );
        assert_eq!(signed(&v2_scheme(), 0, V2_TS), V2_SIGNATURE);
    }

    #[test]
    fn flipped_body_byte_is_mismatch() {
        let got = verify(
            &v2_scheme(),
            &[
                ("webhook-id", V2_ID),
                ("webhook-timestamp", "1614265330"),
                ("webhook-signature", V2_SIGNATURE),
            ],
            flip_byte(V2_BODY.as_bytes(), 3),
            V2_TS,
        );
        assert_eq!(got, Err(SignatureError::Mismatch));
    }

    #[test]
    fn flipped_signature_char_is_mismatch() {
        let flipped = flip_char(V2_SIGNATURE, "v1,".len() + 20);
        assert_eq!(
            v2_with(&v2_scheme(), &flipped),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn changed_timestamp_within_tolerance_is_mismatch() {
        let got = deliver(&v2_scheme(), V2_ID, "1614265331", V2_SIGNATURE, V2_TS);
        assert_eq!(got, Err(SignatureError::Mismatch));
    }

    #[test]
    fn changed_id_is_mismatch() {
        let got = deliver(&v2_scheme(), "msg_other", "1614265330", V2_SIGNATURE, V2_TS);
        assert_eq!(got, Err(SignatureError::Mismatch));
    }

    #[test]
    fn signature_with_another_secret_is_mismatch() {
        assert_eq!(
            v2_with(&scheme("webhook", &[V1_SECRET]), V2_SIGNATURE),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn second_secret_matches_with_index_1() {
        let rotating = scheme("webhook", &[V1_SECRET, V2_SECRET]);
        assert_eq!(v2_with(&rotating, V2_SIGNATURE).unwrap().secret_index(), 1);
    }

    #[test]
    fn no_secrets_is_no_secret() {
        let none = HmacScheme::standard_webhooks("webhook", Secrets::default());
        assert_eq!(v2_with(&none, V2_SIGNATURE), Err(SignatureError::NoSecret));
    }

    #[test]
    fn policies_build_without_printing_the_secret() {
        let policies = [
            Policy::standard_webhooks([V2_SECRET]).unwrap(),
            Policy::svix([V2_SECRET]).unwrap(),
            Policy::clerk([V2_SECRET]).unwrap(),
            Policy::resend([V2_SECRET]).unwrap(),
            Policy::gitlab_signed([V2_SECRET]).unwrap(),
        ];
        let secret = V2_SECRET.trim_start_matches("whsec_");
        for policy in policies {
            let shown = format!("{policy:?}");
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn policies_reject_secrets_that_are_not_base64() {
        assert_eq!(
            Policy::standard_webhooks(["whsec_not base64!"]).unwrap_err(),
            InvalidSecret::NotBase64
        );
        assert_eq!(Policy::svix(["whsec_"]).unwrap_err(), InvalidSecret::Empty);
    }
}

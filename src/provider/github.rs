//! GitHub: `X-Hub-Signature-256: sha256=<hex>` over the body (legacy `X-Hub-Signature: sha1=`).

use std::time::Duration;

use http::HeaderName;

use super::{fallback::Fallback, Digest, Encoding, HmacScheme, Secrets, Source};
use crate::Policy;

impl HmacScheme {
    /// GitHub's scheme: HMAC-SHA256 (hex) of the body in `X-Hub-Signature-256: sha256=…`. No
    /// timestamp, and `X-GitHub-Delivery` is not signed: a replayed body is caught by dedupe on
    /// the body (see [`DedupeKey`](crate::dedupe::DedupeKey)).
    pub fn github(secrets: impl Into<Secrets>) -> Self {
        HmacScheme::new(
            HeaderName::from_static("x-hub-signature-256"),
            Digest::Sha256,
            Encoding::Hex,
            secrets,
        )
        .prefix("sha256=")
    }

    /// GitHub's legacy scheme: HMAC-SHA1 (hex) of the body in `X-Hub-Signature: sha1=…`.
    pub fn github_sha1(secrets: impl Into<Secrets>) -> Self {
        HmacScheme::new(
            HeaderName::from_static("x-hub-signature"),
            Digest::Sha1,
            Encoding::Hex,
            secrets,
        )
        .prefix("sha1=")
    }
}

impl Policy {
    /// A GitHub webhook route: [`HmacScheme::github`], `X-GitHub-Delivery` as the delivery id
    /// (the same on a redelivery), `X-GitHub-Event` as the event type, GitHub's 10 s timeout,
    /// and a 25 MB body limit (GitHub's payload cap). GitHub does not retry on its own.
    ///
    /// GitHub signs the body but not `X-GitHub-Delivery`, and stamps no time: with
    /// [`dedupe`](Self::dedupe), the route dedupes by the body's SHA-256, so a signed body
    /// replayed under a fresh id is answered as a duplicate, as is GitHub's own redelivery.
    /// Reports carry the delivery id all the same.
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::Policy;
    ///
    /// let policy = Policy::github("It's a Secret to Everybody");
    /// # let _ = policy;
    /// ```
    pub fn github(secrets: impl Into<Secrets>) -> Self {
        Self::github_with(HmacScheme::github(secrets))
    }

    /// [`Policy::github`], also accepting deliveries signed only with the legacy SHA-1 header
    /// (old GitHub Enterprise Server versions). The SHA-256 header is used whenever present.
    pub fn github_with_sha1_fallback(secrets: impl Into<Secrets>) -> Self {
        let secrets = secrets.into();
        Self::github_with(Fallback {
            primary: HmacScheme::github(secrets.clone()),
            fallback: HmacScheme::github_sha1(secrets),
        })
    }

    fn github_with(scheme: impl super::Scheme) -> Self {
        Policy::custom("github")
            .provider("github")
            .verify_with(scheme)
            .delivery_id(Source::header("x-github-delivery"))
            .event_type(Source::header("x-github-event"))
            .timeout_budget(Duration::from_secs(10))
            .max_body_bytes(25 * 1024 * 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{test_support::*, SignatureError, Verified};

    /// A1: GitHub's docs vector.
    const A1_SECRET: &str = "It's a Secret to Everybody";
    const A1_BODY: &str = "Hello, World!";
    const A1_SHA256: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    /// Derived (openssl) for the legacy header.
    const A1_SHA1: &str = "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59";

    /// A2: octokit/webhooks-methods.js.
    const A2_SECRET: &str = "mysecret";
    const A2_COMPACT: &str = r#"{"foo":"bar"}"#;
    const A2_COMPACT_SIG: &str =
        "sha256=4864d2759938a15468b5df9ade20bf161da9b4f737ea61794142f3484236bda3";
    const A2_PRETTY: &str = "{\n  \"foo\": \"bar\"\n}\n";
    const A2_PRETTY_SIG: &str =
        "sha256=e3eccac34c43c7dc1cbb905488b1b81347fcc700a7b025697a9d07862256023f";

    const SECRET: &str = "github-secret";
    const BODY: &str = r#"{"action":"opened","number":1}"#;

    fn check(scheme: &HmacScheme, signature: &str) -> Result<Verified, SignatureError> {
        verify(scheme, &[("X-Hub-Signature-256", signature)], BODY, 0)
    }

    fn signed(signer: &HmacScheme, index: usize) -> String {
        format!("sha256={}", sign(signer, index, &[], BODY, None))
    }

    #[test]
    fn a1_docs_vector_verifies() {
        assert_eq!(
            verify(
                &HmacScheme::github(A1_SECRET),
                &[("X-Hub-Signature-256", A1_SHA256)],
                A1_BODY,
                0
            ),
            Ok(Verified::by_secret(0))
        );
    }

    #[test]
    fn a1_derived_sha1_vector_verifies_with_the_legacy_scheme() {
        assert_eq!(
            verify(
                &HmacScheme::github_sha1(A1_SECRET),
                &[("X-Hub-Signature", A1_SHA1)],
                A1_BODY,
                0
            ),
            Ok(Verified::by_secret(0))
        );
        let independent = hmac_sha1(A1_SECRET.as_bytes(), &[A1_BODY.as_bytes()]);
        assert_eq!(format!("sha1={}", hex::encode(independent)), A1_SHA1);
    }

    #[test]
    fn a1_uppercase_hex_verifies() {
        let upper = format!("sha256={}", A1_SHA256["sha256=".len()..].to_uppercase());
        assert_eq!(
            verify(
                &HmacScheme::github(A1_SECRET),
                &[("x-hub-signature-256", &upper)],
                A1_BODY,
                0
            ),
            Ok(Verified::by_secret(0))
        );
    }

    #[test]
    fn a2_compact_and_pretty_bodies_verify() {
        let scheme = HmacScheme::github(A2_SECRET);
        for (body, sig) in [(A2_COMPACT, A2_COMPACT_SIG), (A2_PRETTY, A2_PRETTY_SIG)] {
            assert_eq!(
                verify(&scheme, &[("x-hub-signature-256", sig)], body, 0),
                Ok(Verified::by_secret(0)),
                "{body:?}"
            );
        }
    }

    #[test]
    fn a2_pretty_signature_on_the_compact_body_is_mismatch() {
        assert_eq!(
            verify(
                &HmacScheme::github(A2_SECRET),
                &[("x-hub-signature-256", A2_PRETTY_SIG)],
                A2_COMPACT,
                0
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a2_negatives_are_malformed() {
        let scheme = HmacScheme::github(A2_SECRET);
        for bad in [
            "sha256=xxxccac34c43c7dc1cbb905488b1b81347fcc700a7b025697a9d07862256023f",
            "foo",
        ] {
            let got = verify(&scheme, &[("x-hub-signature-256", bad)], A2_PRETTY, 0);
            assert!(
                matches!(got, Err(SignatureError::Malformed(_))),
                "{bad}: {got:?}"
            );
        }
    }

    #[test]
    fn sign_matches_an_independent_hmac() {
        let sig = sign(&HmacScheme::github(SECRET), 0, &[], BODY, None);
        assert_eq!(
            sig,
            hex::encode(hmac_sha256(SECRET.as_bytes(), &[BODY.as_bytes()]))
        );
        let sig1 = sign(&HmacScheme::github_sha1(SECRET), 0, &[], BODY, None);
        assert_eq!(
            sig1,
            hex::encode(hmac_sha1(SECRET.as_bytes(), &[BODY.as_bytes()]))
        );
    }

    #[test]
    fn flipped_body_byte_is_mismatch() {
        let scheme = HmacScheme::github(SECRET);
        assert_eq!(
            verify(
                &scheme,
                &[("x-hub-signature-256", &signed(&scheme, 0))],
                flip_byte(BODY.as_bytes(), 5),
                0
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn flipped_signature_char_is_mismatch() {
        let scheme = HmacScheme::github(SECRET);
        let flipped = flip_char(&signed(&scheme, 0), "sha256=".len() + 30);
        assert_eq!(check(&scheme, &flipped), Err(SignatureError::Mismatch));
    }

    #[test]
    fn missing_header_is_missing_x_hub_signature_256() {
        assert_eq!(
            verify(&HmacScheme::github(SECRET), &[], BODY, 0),
            Err(SignatureError::MissingHeader(HeaderName::from_static(
                "x-hub-signature-256"
            )))
        );
    }

    #[test]
    fn truncated_signature_is_mismatch_or_malformed_when_odd() {
        let scheme = HmacScheme::github(SECRET);
        let sig = signed(&scheme, 0);
        assert_eq!(
            check(&scheme, &sig[.."sha256=".len() + 32]),
            Err(SignatureError::Mismatch)
        );
        assert!(matches!(
            check(&scheme, &sig[..sig.len() - 1]),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn signature_without_prefix_is_malformed() {
        let scheme = HmacScheme::github(SECRET);
        let bare = sign(&scheme, 0, &[], BODY, None);
        assert!(matches!(
            check(&scheme, &bare),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn signature_with_another_secret_is_mismatch() {
        let header = signed(&HmacScheme::github("other-secret"), 0);
        assert_eq!(
            check(&HmacScheme::github(SECRET), &header),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn second_secret_matches_with_index_1() {
        let header = signed(&HmacScheme::github(SECRET), 0);
        let rotating = HmacScheme::github(["new-secret", SECRET]);
        assert_eq!(check(&rotating, &header).unwrap().secret_index(), 1);
    }

    #[test]
    fn no_secrets_is_no_secret() {
        let header = signed(&HmacScheme::github(SECRET), 0);
        assert_eq!(
            check(&HmacScheme::github(Secrets::default()), &header),
            Err(SignatureError::NoSecret)
        );
    }

    fn with_sha1_fallback(secrets: impl Into<Secrets>) -> Fallback {
        let secrets = secrets.into();
        Fallback {
            primary: HmacScheme::github(secrets.clone()),
            fallback: HmacScheme::github_sha1(secrets),
        }
    }

    #[test]
    fn sha1_fallback_verifies_a_legacy_only_delivery() {
        assert_eq!(
            verify(
                &with_sha1_fallback(A1_SECRET),
                &[("X-Hub-Signature", A1_SHA1)],
                A1_BODY,
                0
            ),
            Ok(Verified::by_secret(0))
        );
    }

    #[test]
    fn sha1_fallback_uses_sha256_whenever_present() {
        let bad_sha256 = flip_char(A1_SHA256, 20);
        assert_eq!(
            verify(
                &with_sha1_fallback(A1_SECRET),
                &[
                    ("X-Hub-Signature-256", &bad_sha256),
                    ("X-Hub-Signature", A1_SHA1)
                ],
                A1_BODY,
                0
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn policies_build_without_printing_the_secret() {
        for policy in [
            Policy::github("gh_do_not_print"),
            Policy::github_with_sha1_fallback("gh_do_not_print"),
        ] {
            let shown = format!("{policy:?}");
            assert!(!shown.contains("gh_do_not_print"), "{shown}");
            assert!(shown.contains("github"), "{shown}");
        }
        let scheme = format!("{:?}", HmacScheme::github_sha1("gh_do_not_print"));
        assert!(!scheme.contains("gh_do_not_print"), "{scheme}");
    }
}

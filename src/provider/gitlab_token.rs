//! GitLab's classic secret token: [`GitlabTokenScheme`] and [`Policy::gitlab`].
//!
//! GitLab sends the webhook's secret token as is, in `X-Gitlab-Token`. Nothing is signed: the
//! token proves the sender knows the secret, but covers neither the body nor `Idempotency-Key`,
//! and a captured request can be replayed. Dedupe catches a replay of the same body, whatever
//! its `Idempotency-Key` (the route dedupes by the body's SHA-256); anyone holding the token can
//! send any body. Prefer GitLab's signing tokens ([`Policy::gitlab_signed`]).

use std::{fmt, time::Duration};

use http::{HeaderMap, HeaderName};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use super::{Scheme, Secrets, SignatureError, SignedRequest, Source, Verified};
use crate::Policy;

/// The header holding the token.
const TOKEN: HeaderName = HeaderName::from_static("x-gitlab-token");

/// GitLab's `X-Gitlab-Token`, compared with each secret in constant time.
///
/// The comparison is between SHA-256 digests of the token and of each secret, so its time
/// reveals neither the secret's bytes nor its length. An empty token never matches, even an empty
/// secret. The token is compared as raw header bytes, so it may hold any characters GitLab
/// accepts.
///
/// # Example
///
/// ```
/// use webhook_monitor::{provider::GitlabTokenScheme, Policy};
///
/// let scheme = GitlabTokenScheme::new(["new-token", "old-token"]);
/// let policy = Policy::custom("gitlab-ci").provider("gitlab").verify_with(scheme);
/// # let _ = policy;
/// ```
#[derive(Clone)]
pub struct GitlabTokenScheme {
    /// SHA-256 of each secret, in order.
    digests: Vec<[u8; 32]>,
}

impl GitlabTokenScheme {
    /// Accepts requests whose `X-Gitlab-Token` is any of `tokens`.
    pub fn new(tokens: impl Into<Secrets>) -> Self {
        let digests = tokens.into().0.iter().map(|s| digest(s.bytes())).collect();
        Self { digests }
    }
}

impl Scheme for GitlabTokenScheme {
    fn verify(&self, request: &SignedRequest<'_>) -> Result<Verified, SignatureError> {
        if self.digests.is_empty() {
            return Err(SignatureError::NoSecret);
        }
        let token = request
            .headers()
            .get(&TOKEN)
            .ok_or(SignatureError::MissingHeader(TOKEN))?
            .as_bytes();
        if token.is_empty() {
            return Err(SignatureError::Mismatch);
        }
        let sent = digest(token);
        self.digests
            .iter()
            .position(|secret| bool::from(secret.ct_eq(&sent)))
            .map(Verified::by_secret)
            .ok_or(SignatureError::Mismatch)
    }

    /// Nothing: the token is the same on every request and signs neither body nor headers.
    fn covers(&self, _: &Source, _: &HeaderMap) -> bool {
        false
    }
}

impl fmt::Debug for GitlabTokenScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitlabTokenScheme")
            .field("secrets", &self.digests.len())
            .finish()
    }
}

impl Policy {
    /// GitLab with the classic secret token: checks `X-Gitlab-Token` with
    /// [`GitlabTokenScheme`].
    ///
    /// Fills in: provider `"gitlab"`, the delivery id from `Idempotency-Key` (stable across
    /// retries), the event type from `X-Gitlab-Event`, and a 10 s timeout budget (GitLab.com's
    /// limit and the self-managed default). The token signs nothing, so with
    /// [`dedupe`](Self::dedupe) the route dedupes by the body's SHA-256, not by
    /// `Idempotency-Key`.
    ///
    /// GitLab disables a hook after repeated failures, permanently on 4xx answers: a rejected
    /// token (`401`) counts as one.
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::Policy;
    ///
    /// let policy = Policy::gitlab("gitlab-secret-token");
    /// assert_eq!(policy.name(), "gitlab");
    /// ```
    pub fn gitlab(token: impl Into<Secrets>) -> Self {
        Self::custom("gitlab")
            .provider("gitlab")
            .verify_with(GitlabTokenScheme::new(token))
            .delivery_id(Source::header("idempotency-key"))
            .event_type(Source::header("x-gitlab-event"))
            .timeout_budget(Duration::from_secs(10))
    }
}

/// The `X-Gitlab-Token` value GitLab sends for `secret`: the secret itself.
pub(crate) fn sign(secret: &[u8]) -> String {
    String::from_utf8_lossy(secret).into_owned()
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use http::{HeaderMap, HeaderValue, Uri};

    use super::*;

    const SECRET: &str = "s3cr3t-t0ken";

    fn check(
        scheme: &GitlabTokenScheme,
        token: Option<&[u8]>,
        body: &[u8],
    ) -> Result<Verified, SignatureError> {
        let mut headers = HeaderMap::new();
        if let Some(token) = token {
            headers.insert(TOKEN, HeaderValue::from_bytes(token).unwrap());
        }
        let uri = Uri::from_static("/gitlab");
        scheme.verify(&SignedRequest::new(&headers, &uri, body, SystemTime::now()))
    }

    #[test]
    fn matching_token() {
        let scheme = GitlabTokenScheme::new(SECRET);
        let token = sign(SECRET.as_bytes());
        assert_eq!(
            check(&scheme, Some(token.as_bytes()), b"{}"),
            Ok(Verified::by_secret(0))
        );
        // Non-ASCII tokens are compared as bytes.
        let scheme = GitlabTokenScheme::new("tökén");
        assert_eq!(
            check(&scheme, Some("tökén".as_bytes()), b""),
            Ok(Verified::by_secret(0))
        );
    }

    #[test]
    fn the_body_is_not_covered() {
        // The classic token signs nothing: a changed body still passes. Use GitLab's signing
        // token (Standard Webhooks) to authenticate the body.
        let scheme = GitlabTokenScheme::new(SECRET);
        assert_eq!(
            check(
                &scheme,
                Some(SECRET.as_bytes()),
                br#"{"object_kind":"pusH"}"#
            ),
            Ok(Verified::by_secret(0))
        );
    }

    #[test]
    fn wrong_tokens_are_rejected() {
        let scheme = GitlabTokenScheme::new(SECRET);
        let flipped = SECRET.replacen('s', "t", 1);
        let truncated = SECRET.get(..SECRET.len() - 1).unwrap();
        let longer = format!("{SECRET}x");
        let other = sign(b"another-token");
        for token in [flipped.as_str(), truncated, &longer, &other, " "] {
            assert_eq!(
                check(&scheme, Some(token.as_bytes()), b"{}"),
                Err(SignatureError::Mismatch),
                "{token}"
            );
        }
        assert_eq!(
            check(&scheme, None, b"{}"),
            Err(SignatureError::MissingHeader(TOKEN))
        );
    }

    #[test]
    fn empty_token_never_matches() {
        let scheme = GitlabTokenScheme::new(["", SECRET]);
        assert_eq!(
            check(&scheme, Some(b""), b"{}"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(&scheme, Some(SECRET.as_bytes()), b"{}"),
            Ok(Verified::by_secret(1))
        );
    }

    #[test]
    fn rotation_reports_the_matching_token() {
        let scheme = GitlabTokenScheme::new(["new-token", SECRET]);
        assert_eq!(
            check(&scheme, Some(SECRET.as_bytes()), b"{}"),
            Ok(Verified::by_secret(1))
        );
        let none = GitlabTokenScheme::new(Secrets::default());
        assert_eq!(
            check(&none, Some(SECRET.as_bytes()), b"{}"),
            Err(SignatureError::NoSecret)
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let shown = format!("{:?}", GitlabTokenScheme::new(["tok-one", "tok-two"]));
        assert!(!shown.contains("tok-"), "{shown}");
        assert_eq!(shown, "GitlabTokenScheme { secrets: 2 }");
    }

    #[test]
    fn preset() {
        let policy = Policy::gitlab(SECRET);
        assert_eq!(policy.provider.as_deref(), Some("gitlab"));
        assert_eq!(policy.timeout_budget, Some(Duration::from_secs(10)));
        assert_eq!(policy.delivery_id, Some(Source::header("idempotency-key")));
        assert_eq!(policy.event_type, Some(Source::header("x-gitlab-event")));
        assert!(policy.scheme.is_some());
    }
}

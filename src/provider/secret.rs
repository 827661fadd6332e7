//! Signing secrets: [`Secret`] and [`Secrets`].

use std::{fmt, sync::Arc};

use base64::{
    engine::{general_purpose::GeneralPurpose, DecodePaddingMode, GeneralPurposeConfig},
    Engine,
};

/// Standard base64 that accepts padded and unpadded input and, like Python's decoder (which the
/// Standard Webhooks Python library uses), non-zero trailing bits.
pub(crate) const BASE64_ANY_PAD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Standard base64 for signatures: padding optional, but non-zero trailing bits rejected, so
/// that one signature has one spelling.
pub(crate) const BASE64_SIGNATURE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One signing key. Never printed: its `Debug` shows `Secret(..)`.
///
/// Most providers use the secret string's bytes as the key ([`Secret::new`]); Standard Webhooks,
/// Svix and the services built on them use the base64 part of a `whsec_…` string
/// ([`Secret::from_base64`]).
///
/// # Example
///
/// ```
/// use webhook_monitor::provider::Secret;
///
/// let raw = Secret::new("whsec_used_verbatim_by_stripe");
/// let decoded = Secret::from_base64("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
/// assert_eq!(format!("{raw:?}"), "Secret(..)");
/// # let _ = decoded;
/// ```
#[derive(Clone)]
pub struct Secret(Arc<[u8]>);

impl Secret {
    /// A key made of these bytes, as they are (`"whsec_…"` for Stripe, the token for GitHub…).
    pub fn new(key: impl AsRef<[u8]>) -> Self {
        Self(Arc::from(key.as_ref()))
    }

    /// A key decoded from base64, after removing an optional `whsec_` prefix. Padding is optional.
    ///
    /// # Errors
    ///
    /// [`InvalidSecret`] when the rest is empty or is not base64.
    pub fn from_base64(secret: &str) -> Result<Self, InvalidSecret> {
        let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
        if encoded.is_empty() {
            return Err(InvalidSecret::Empty);
        }
        let key = BASE64_ANY_PAD
            .decode(encoded)
            .map_err(|_| InvalidSecret::NotBase64)?;
        if key.is_empty() {
            return Err(InvalidSecret::Empty);
        }
        Ok(Self(key.into()))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A secret that could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidSecret {
    /// Nothing left after the prefix.
    Empty,
    /// Not base64.
    NotBase64,
}

impl fmt::Display for InvalidSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "secret is empty",
            Self::NotBase64 => "secret is not valid base64",
        })
    }
}

impl std::error::Error for InvalidSecret {}

/// The secrets a route accepts, in order; several during a rotation. Reports name the one that
/// matched by its index.
///
/// Built from one or several raw secret strings, or [`Secret`]s.
///
/// # Example
///
/// ```
/// use webhook_monitor::provider::{Secret, Secrets};
///
/// let one: Secrets = "whsec_current".into();
/// let rotating: Secrets = ["whsec_new", "whsec_old"].into();
/// let decoded: Secrets = vec![Secret::from_base64("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap()].into();
/// assert_eq!((one.len(), rotating.len(), decoded.len()), (1, 2, 1));
/// ```
#[derive(Clone, Debug, Default)]
pub struct Secrets(pub(crate) Vec<Secret>);

impl Secrets {
    /// How many secrets.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `true` when there is none: every signature is then rejected as having no secret.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The secrets a scheme may key with, with their positions. An empty secret is skipped: it
    /// would let anyone sign (an unset variable read as `""`), and a route with only empty
    /// secrets rejects every delivery as having no secret.
    pub(crate) fn usable(&self) -> impl Iterator<Item = (usize, &[u8])> {
        self.0
            .iter()
            .enumerate()
            .map(|(index, secret)| (index, secret.bytes()))
            .filter(|(_, key)| !key.is_empty())
    }

    /// Parses base64 secrets (`whsec_…`, as Standard Webhooks issues them).
    ///
    /// # Errors
    ///
    /// The first [`InvalidSecret`].
    pub fn from_base64<I, S>(secrets: I) -> Result<Self, InvalidSecret>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        secrets
            .into_iter()
            .map(|s| Secret::from_base64(s.as_ref()))
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

impl From<Secret> for Secrets {
    fn from(s: Secret) -> Self {
        Self(vec![s])
    }
}

impl From<Vec<Secret>> for Secrets {
    fn from(s: Vec<Secret>) -> Self {
        Self(s)
    }
}

impl From<&str> for Secrets {
    fn from(s: &str) -> Self {
        Self(vec![Secret::new(s)])
    }
}

impl From<String> for Secrets {
    fn from(s: String) -> Self {
        Self(vec![Secret::new(s)])
    }
}

impl<const N: usize> From<[&str; N]> for Secrets {
    fn from(s: [&str; N]) -> Self {
        Self(s.iter().map(Secret::new).collect())
    }
}

impl From<Vec<String>> for Secrets {
    fn from(s: Vec<String>) -> Self {
        Self(s.iter().map(Secret::new).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_secrets_accept_prefix_and_missing_padding() {
        let padded = Secret::from_base64("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let bare = Secret::from_base64("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(padded.bytes(), bare.bytes());
        // Accepted by the Python library (it pads, and ignores trailing bits).
        assert!(Secret::from_base64("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS").is_ok());
        assert!(Secret::from_base64("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr").is_ok());
        assert_eq!(
            Secret::from_base64("whsec_").unwrap_err(),
            InvalidSecret::Empty
        );
        assert_eq!(Secret::from_base64("").unwrap_err(), InvalidSecret::Empty);
        assert_eq!(
            Secret::from_base64("not base64!").unwrap_err(),
            InvalidSecret::NotBase64
        );
    }

    #[test]
    fn secrets_never_print() {
        let s: Secrets = ["a-secret", "another"].into();
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("a-secret") && shown.contains("Secret(..)"),
            "{shown}"
        );
    }
}

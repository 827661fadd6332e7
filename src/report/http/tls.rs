//! TLS for the HTTP client: rustls with the *ring* provider, passed to the client (no
//! process-wide provider is installed), server certificates checked by the platform verifier.

use std::sync::Arc;

use rustls_platform_verifier::BuilderVerifierExt;

use super::HttpSinkError;

/// The client's TLS configuration.
///
/// # Errors
///
/// [`HttpSinkError::Client`] when the platform verifier cannot load.
pub(super) fn client_config() -> Result<rustls::ClientConfig, HttpSinkError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(BuilderVerifierExt::with_platform_verifier)
        .map_err(|e| HttpSinkError::Client(e.into()))?
        .with_no_client_auth();
    Ok(tls)
}

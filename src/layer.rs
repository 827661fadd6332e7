//! [`WebhookMonitorLayer`].

use std::{fmt, sync::Arc, time::Duration};

use tower_layer::Layer;

use crate::{provider::Source, report::Reporter, Policy, WebhookMonitor};

/// The tower [`Layer`] that monitors a webhook route: buffers and limits the body, times the
/// handler, classifies its answer and reports the delivery.
///
/// Put it on the webhook route: axum's `Router::route_layer`, or `.layer(..)` on the route's
/// `MethodRouter`; or in any tower stack. Not `Router::layer`, which also wraps the router's
/// 404 fallback: every request to any path would be checked against this route's policy,
/// answered `401` and reported as a rejected delivery (see the [crate docs](crate#wrap-the-webhook-route-not-the-router)).
/// Cloning it costs one reference-count bump.
#[derive(Clone)]
pub struct WebhookMonitorLayer {
    shared: Arc<Shared>,
}

/// What every clone of the layer and its services share.
pub(crate) struct Shared {
    pub(crate) policy: Policy,
    pub(crate) reporter: Reporter,
    /// Whether any of the policy's delivery fields comes from a header.
    pub(crate) reads_headers: bool,
    /// Whether any of them comes from a body field.
    pub(crate) reads_body: bool,
    /// The policy's body timeout, worked out once.
    pub(crate) body_timeout: Duration,
}

impl WebhookMonitorLayer {
    /// A layer that applies `policy` and reports through `reporter`.
    ///
    /// The reporter's worker starts [watching](crate::watch) the route now, with the policy's
    /// thresholds: a route that never gets a delivery can be reported silent.
    pub fn new(policy: Policy, reporter: Reporter) -> Self {
        reporter.watch_route(
            Arc::clone(&policy.name),
            policy.watch.clone(),
            policy.timeout_budget,
        );
        let reads_headers = policy.sources().any(|s| matches!(s, Source::Header(_)));
        let reads_body = policy.sources().any(|s| matches!(s, Source::Json(_)));
        let body_timeout = policy.body_timeout_or_default();
        Self {
            shared: Arc::new(Shared {
                policy,
                reporter,
                reads_headers,
                reads_body,
                body_timeout,
            }),
        }
    }

    /// The route's policy.
    pub fn policy(&self) -> &Policy {
        &self.shared.policy
    }

    /// The reporter the layer sends through.
    pub fn reporter(&self) -> &Reporter {
        &self.shared.reporter
    }
}

impl<S> Layer<S> for WebhookMonitorLayer {
    type Service = WebhookMonitor<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WebhookMonitor {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

impl fmt::Debug for WebhookMonitorLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookMonitorLayer")
            .field("policy", &self.shared.policy)
            .field("reporter", &self.shared.reporter)
            .finish()
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

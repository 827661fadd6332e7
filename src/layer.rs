//! [`WebhookMonitorLayer`].

use std::{fmt, sync::Arc, time::Duration};

use tower_layer::Layer;

use crate::{provider::Source, report::Reporter, EmptyResponse, Policy, WebhookMonitor};

/// The tower [`Layer`] that monitors a webhook route: buffers and limits the body, times the
/// handler, classifies its answer and reports the delivery.
///
/// Put it on the webhook route: axum's `Router::route_layer`, or `.layer(..)` on the route's
/// `MethodRouter`; or in any tower stack. Not `Router::layer`, which also wraps the router's
/// 404 fallback: every request to any path would be checked against this route's policy,
/// answered `401` and reported as a rejected delivery (see the [crate docs](crate#wrap-the-webhook-route-not-the-router)).
/// Cloning it costs one reference-count bump (and a clone of its [`Respond`](crate::Respond)
/// hook, if one is set).
#[derive(Clone)]
pub struct WebhookMonitorLayer<R = EmptyResponse> {
    shared: Arc<Shared>,
    respond: R,
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
            respond: EmptyResponse,
        }
    }
}

impl<R> WebhookMonitorLayer<R> {
    /// Shapes the layer's own answers (rejections, duplicates, copies in flight, panics) with
    /// `respond`: a closure from the [`Answer`](crate::Answer) to a response of the route's
    /// body type, or a [`Respond`](crate::Respond) of your own.
    ///
    /// Defaults to [`EmptyResponse`]: the status alone, which tells a sender nothing more. With
    /// a hook, the route's response body no longer needs to implement `Default`. A `409`'s
    /// `Retry-After` is added when the hook's response has none.
    ///
    /// # Example
    ///
    /// ```
    /// use axum::{body::Body, http::{header, Response}, routing::post, Router};
    /// use webhook_monitor::{report::{Reporter, TracingSink}, Answer, Policy, WebhookMonitorLayer};
    ///
    /// /// A JSON error for senders whose signature checked out; the bare status for the rest.
    /// fn json_error(answer: &Answer<'_>) -> Response<Body> {
    ///     let body = if answer.verified() {
    ///         let error = serde_json::json!({
    ///             "error": answer.outcome().as_str(),
    ///             "detail": answer.reason(),
    ///         });
    ///         Body::from(error.to_string())
    ///     } else {
    ///         Body::empty()
    ///     };
    ///     let mut res = Response::new(body);
    ///     *res.status_mut() = answer.status();
    ///     res.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    ///     res
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (reporter, _guard) = Reporter::spawn(TracingSink::new());
    /// let layer = WebhookMonitorLayer::new(Policy::stripe("whsec_test"), reporter)
    ///     .respond_with(json_error);
    /// let app: Router = Router::new().route("/webhooks/stripe", post(|| async { "ok" }).route_layer(layer));
    /// # let _ = app;
    /// # }
    /// ```
    #[must_use]
    pub fn respond_with<R2>(self, respond: R2) -> WebhookMonitorLayer<R2> {
        WebhookMonitorLayer {
            shared: self.shared,
            respond,
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

impl<S, R: Clone> Layer<S> for WebhookMonitorLayer<R> {
    type Service = WebhookMonitor<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        WebhookMonitor {
            inner,
            shared: Arc::clone(&self.shared),
            respond: self.respond.clone(),
        }
    }
}

impl<R> fmt::Debug for WebhookMonitorLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookMonitorLayer")
            .field("policy", &self.shared.policy)
            .field("reporter", &self.shared.reporter)
            .field("respond", &std::any::type_name::<R>())
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

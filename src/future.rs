//! [`ResponseFuture`], the opaque future of [`WebhookMonitor`](crate::WebhookMonitor).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::Response;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Response future of [`WebhookMonitor`](crate::WebhookMonitor).
///
/// Opaque on purpose: it is a boxed `async fn` today and may become a hand-written state machine
/// without a breaking change.
pub struct ResponseFuture<B, E> {
    inner: BoxFuture<Result<Response<B>, E>>,
    /// The delivery's span, entered while the pipeline (and so the handler) is polled.
    span: tracing::Span,
}

impl<B, E> ResponseFuture<B, E> {
    pub(crate) fn new(
        future: impl Future<Output = Result<Response<B>, E>> + Send + 'static,
        span: tracing::Span,
    ) -> Self {
        Self {
            inner: Box::pin(future),
            span,
        }
    }
}

impl<B, E> Future for ResponseFuture<B, E> {
    type Output = Result<Response<B>, E>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let _entered = this.span.enter();
        this.inner.as_mut().poll(cx)
    }
}

impl<B, E> fmt::Debug for ResponseFuture<B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

//! Holding a claim while its handler runs, and giving it up from where nothing can wait.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use tokio::time::{Instant, Sleep};

use super::{DedupeStore, StoreFuture, Token};

/// What happened to a claim while [`hold`] held it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Held {
    /// A renewal found the claim no longer ours (it had expired, and perhaps been claimed by a
    /// copy).
    pub(crate) lost: bool,
    /// A renewal failed: the store could not answer.
    pub(crate) unavailable: bool,
}

/// Runs `work` while holding the claim `token` has on `key`, claimed at `claimed_at` for
/// `ttl`: renews it every half `ttl` for as long as `work` runs, so that the claim outlives it.
///
/// Costs nothing when `work` is ready at once; otherwise one timer, armed at the first wait. A
/// renewal runs beside `work`, never in its way: `work` is polled first on every wake-up.
pub(crate) fn hold<'a, F: Future>(
    work: F,
    store: &'a dyn DedupeStore,
    key: &'a str,
    token: Token,
    ttl: Duration,
    claimed_at: Instant,
) -> Hold<'a, F> {
    Hold {
        work,
        store,
        key,
        token,
        ttl,
        first: claimed_at + ttl / 2,
        timer: None,
        renewal: None,
        held: Held::default(),
    }
}

pin_project_lite::pin_project! {
    /// The future of [`hold`]: `work`'s output, and what happened to the claim.
    pub(crate) struct Hold<'a, F> {
        #[pin]
        work: F,
        store: &'a dyn DedupeStore,
        key: &'a str,
        token: Token,
        ttl: Duration,
        // When the first renewal is due.
        first: Instant,
        timer: Option<Pin<Box<Sleep>>>,
        renewal: Option<StoreFuture<'a, bool>>,
        held: Held,
    }
}

impl<F: Future> Future for Hold<'_, F> {
    type Output = (F::Output, Held);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.work.poll(cx) {
            return Poll::Ready((output, *this.held));
        }
        loop {
            if let Some(pending) = this.renewal {
                match Pin::new(pending).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(true)) => {}
                    Poll::Ready(Ok(false)) => this.held.lost = true,
                    Poll::Ready(Err(_)) => this.held.unavailable = true,
                }
                *this.renewal = None;
            }
            if this.held.lost {
                return Poll::Pending; // nothing left to renew
            }
            let first = *this.first;
            let timer = this
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(first)));
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            timer.as_mut().reset(Instant::now() + *this.ttl / 2);
            *this.renewal = Some(this.store.renew(this.key, *this.token, *this.ttl));
        }
    }
}

/// Releases the claim in a task of its own, on the current runtime (none: the claim expires on
/// its TTL), for callers that cannot wait: `Drop`, or an answer that must not wait on a store
/// that just failed.
pub(crate) fn release_later(
    store: &Arc<dyn DedupeStore>,
    key: String,
    token: Token,
    window: Duration,
) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let store = Arc::clone(store);
        runtime.spawn(async move { store.release(&key, token, window).await });
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::dedupe::{Claim, MemoryStore};

    const TTL: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn a_claim_outlives_a_handler_that_runs_past_its_ttl() {
        let store = MemoryStore::new();
        let token = Token::random();
        let claim = store
            .claim("k", token, TTL, SystemTime::now())
            .await
            .unwrap();
        assert!(matches!(claim, Claim::Claimed { .. }));
        let work = async {
            // Six TTLs: the claim would have lapsed five times over without renewals.
            tokio::time::sleep(TTL * 6).await;
            // Still ours: a copy arriving now is in flight.
            store
                .claim("k", Token::random(), TTL, SystemTime::now())
                .await
                .unwrap()
        };
        let (copy, held) = hold(work, &store, "k", token, TTL, Instant::now()).await;
        assert_eq!(copy, Claim::InFlight { attempts: 1 });
        assert_eq!(held, Held::default());
        // Once the work is over, nothing renews it: it lapses a TTL after the last renewal.
        tokio::time::sleep(TTL).await;
        let after = store
            .claim("k", Token::random(), TTL, SystemTime::now())
            .await;
        assert!(matches!(after.unwrap(), Claim::Claimed { attempt: 1, .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn a_claim_lost_meanwhile_is_said() {
        let store = MemoryStore::new();
        let token = Token::random();
        store
            .claim("k", token, TTL, SystemTime::now())
            .await
            .unwrap();
        // Someone else's token: the first renewal finds the claim not ours.
        let work = tokio::time::sleep(TTL);
        let (_, held) = hold(work, &store, "k", Token::random(), TTL, Instant::now()).await;
        assert_eq!(
            held,
            Held {
                lost: true,
                unavailable: false
            }
        );
    }

    #[tokio::test]
    async fn work_ready_at_once_arms_no_timer() {
        let store = MemoryStore::new();
        // A zero TTL would renew in a tight loop if a timer were armed.
        let (out, held) = hold(
            async { 7 },
            &store,
            "k",
            Token::random(),
            Duration::ZERO,
            Instant::now(),
        )
        .await;
        assert_eq!((out, held), (7, Held::default()));
    }
}

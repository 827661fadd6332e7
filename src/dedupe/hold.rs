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
use crate::Policy;

/// What happened to a claim while [`hold`] held it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Held {
    /// A renewal found the claim no longer ours (it had expired, and perhaps been claimed by a
    /// copy).
    pub(crate) lost: bool,
    /// A renewal failed: the store could not answer.
    pub(crate) unavailable: bool,
}

/// Runs `work` while holding `claim` (its key and owner token) in `policy`'s store: renews it
/// every half in-flight TTL for as long as `work` runs, so that the claim outlives it.
///
/// Costs one poll when `work` is ready at once. Otherwise, at the first wait, it reads the
/// clock and boxes a timer (the first renewal is due half a TTL later: the claim was made just
/// before). Everything else stays out of line, so that the caller's future, which holds this
/// one across the handler's wait, stays small. A renewal runs beside `work`, never in its way:
/// `work` is polled first on every wake-up.
pub(crate) fn hold<'a, F: Future>(
    work: F,
    claim: &'a (String, Token),
    policy: &'a Policy,
) -> Hold<'a, F> {
    Hold {
        work,
        claim,
        policy,
        renewal: None,
        held: Held::default(),
    }
}

pin_project_lite::pin_project! {
    /// The future of [`hold`]: `work`'s output, and what happened to the claim.
    pub(crate) struct Hold<'a, F> {
        #[pin]
        work: F,
        claim: &'a (String, Token),
        policy: &'a Policy,
        renewal: Option<Pin<Box<Renewal<'a>>>>,
        held: Held,
    }
}

pin_project_lite::pin_project! {
    /// The timer of the next renewal, and the renewal under way.
    struct Renewal<'a> {
        #[pin]
        timer: Sleep,
        pending: Option<StoreFuture<'a, bool>>,
    }
}

impl<F: Future> Future for Hold<'_, F> {
    type Output = (F::Output, Held);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.work.poll(cx) {
            return Poll::Ready((output, *this.held));
        }
        let Some(store) = &this.policy.dedupe else {
            return Poll::Pending;
        };
        let ttl = this.policy.in_flight_ttl;
        let renewal = this.renewal.get_or_insert_with(|| {
            Box::pin(Renewal {
                timer: tokio::time::sleep(ttl / 2),
                pending: None,
            })
        });
        let mut renewal = renewal.as_mut().project();
        loop {
            if let Some(pending) = renewal.pending {
                match Pin::new(pending).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(true)) => {}
                    Poll::Ready(Ok(false)) => this.held.lost = true,
                    Poll::Ready(Err(_)) => this.held.unavailable = true,
                }
                *renewal.pending = None;
            }
            if this.held.lost {
                return Poll::Pending; // nothing left to renew
            }
            if renewal.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            renewal.timer.as_mut().reset(Instant::now() + ttl / 2);
            let (key, token) = *this.claim;
            *renewal.pending = Some(store.renew(key, *token, ttl));
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

    /// A policy deduping in `store` with [`TTL`], and a claim of `k` by a fresh token.
    async fn claimed(store: &MemoryStore) -> (Policy, (String, Token)) {
        let policy = Policy::custom("r").dedupe(store.clone()).in_flight_ttl(TTL);
        let token = Token::random();
        let claim = store
            .claim("k", token, TTL, SystemTime::now())
            .await
            .unwrap();
        assert!(matches!(claim, Claim::Claimed { .. }));
        (policy, ("k".to_owned(), token))
    }

    #[tokio::test(start_paused = true)]
    async fn a_claim_outlives_a_handler_that_runs_past_its_ttl() {
        let store = MemoryStore::new();
        let (policy, claim) = claimed(&store).await;
        let work = async {
            // Six TTLs: the claim would have lapsed five times over without renewals.
            tokio::time::sleep(TTL * 6).await;
            // Still ours: a copy arriving now is in flight.
            store
                .claim("k", Token::random(), TTL, SystemTime::now())
                .await
                .unwrap()
        };
        let (copy, held) = hold(work, &claim, &policy).await;
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
        let (policy, (key, _)) = claimed(&store).await;
        // Someone else's token: the first renewal finds the claim not ours.
        let not_ours = (key, Token::random());
        let (_, held) = hold(tokio::time::sleep(TTL), &not_ours, &policy).await;
        assert_eq!(
            held,
            Held {
                lost: true,
                unavailable: false
            }
        );
    }

    /// Polls `work` under [`hold`] once; whether it finished, and whether a timer was armed.
    fn poll_once<F: Future>(work: F, claim: &(String, Token), policy: &Policy) -> (bool, bool) {
        let mut held = std::pin::pin!(hold(work, claim, policy));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let ready = held.as_mut().poll(&mut cx).is_ready();
        (ready, held.as_ref().get_ref().renewal.is_some())
    }

    #[tokio::test]
    async fn a_timer_is_armed_only_for_work_that_waits() {
        let store = MemoryStore::new();
        let (policy, claim) = claimed(&store).await;
        assert_eq!(poll_once(async { 7 }, &claim, &policy), (true, false));
        let waits = std::future::pending::<()>();
        assert_eq!(poll_once(waits, &claim, &policy), (false, true));
        // A policy without a store has nothing to renew.
        let no_store = Policy::custom("r");
        let waits = std::future::pending::<()>();
        assert_eq!(poll_once(waits, &claim, &no_store), (false, false));
    }
}

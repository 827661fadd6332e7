//! A dedupe store that answers too late: the claim landed, but the layer saw an error. A
//! fail-closed route answers `503` and gives the claim up with the same token, so that the
//! provider's retry is processed instead of being answered `409` until the claim expires.
//!
//! Against the memory store wrapped to fail after landing, and against Redis behind a loopback
//! proxy that holds Redis's answers back past the store's timeout.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, SystemTime},
};

use axum::{routing::post, Router};
use http::StatusCode;
use webhook_monitor::{
    dedupe::{Claim, DedupeStore, MemoryStore, StoreError, StoreFailure, StoreFuture, Token},
    provider::Source,
    Outcome, Policy, RejectReason,
};

/// Serves a fail-closed route on `store`; returns it and the handler's call count.
async fn fail_closed(store: impl DedupeStore) -> (common::Monitored, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let policy = Policy::custom("orders")
        .delivery_id(Source::header("x-delivery-id"))
        .dedupe(store)
        .on_store_failure(StoreFailure::Closed);
    let counted = calls.clone();
    let routes = Router::new().route(
        "/hook",
        post(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async { "ok" }
        }),
    );
    (common::monitored(policy, routes).await, calls)
}

async fn send(m: &common::Monitored, id: &str) -> StatusCode {
    common::send(
        &m.url("/hook"),
        common::full("{}"),
        &[("x-delivery-id", id)],
    )
    .await
    .0
}

/// Lands every claim in the memory store it wraps, then says the store failed (as a timeout
/// after the write reached the store does).
#[derive(Clone)]
struct LandsThenFails(MemoryStore);

impl DedupeStore for LandsThenFails {
    fn claim<'a>(
        &'a self,
        key: &'a str,
        token: Token,
        in_flight_ttl: Duration,
        now: SystemTime,
    ) -> StoreFuture<'a, Claim> {
        StoreFuture::new(async move {
            self.0.claim(key, token, in_flight_ttl, now).await?;
            Err(StoreError::new(std::io::Error::other(
                "timed out (after the claim landed)",
            )))
        })
    }

    fn complete<'a>(
        &'a self,
        key: &'a str,
        token: Token,
        window: Duration,
        now: SystemTime,
    ) -> StoreFuture<'a, bool> {
        self.0.complete(key, token, window, now)
    }

    fn release<'a>(
        &'a self,
        key: &'a str,
        token: Token,
        window: Duration,
    ) -> StoreFuture<'a, bool> {
        self.0.release(key, token, window)
    }

    fn renew<'a>(&'a self, key: &'a str, token: Token, ttl: Duration) -> StoreFuture<'a, bool> {
        self.0.renew(key, token, ttl)
    }
}

#[tokio::test]
async fn a_fail_closed_claim_that_landed_is_released() {
    let memory = MemoryStore::new();
    let (m, calls) = fail_closed(LandsThenFails(memory.clone())).await;
    assert_eq!(send(&m, "evt_1").await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        m.report(1).await.outcome,
        Outcome::Rejected(RejectReason::DedupeUnavailable)
    );
    // The release runs in the background: wait for it (bounded).
    let mut claim = None;
    for _ in 0..100 {
        let now = SystemTime::now();
        let probe = Token::random();
        match memory
            .claim("orders:id:evt_1", probe, Duration::from_secs(60), now)
            .await
        {
            Ok(c @ Claim::Claimed { .. }) => {
                claim = Some(c);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    // The provider's retry would be claimed again (attempt 2), not refused as in flight.
    assert!(
        matches!(claim, Some(Claim::Claimed { attempt: 2, .. })),
        "{claim:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[cfg(feature = "redis")]
mod redis {
    use std::sync::atomic::AtomicBool;

    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::{TcpListener, TcpStream},
    };
    use webhook_monitor::dedupe::RedisStore;

    use super::*;

    /// The store's per-operation timeout, and how long the proxy holds each answer back.
    const TIMEOUT: Duration = Duration::from_millis(200);
    const HOLD: Duration = Duration::from_millis(500);

    /// A TCP proxy on 127.0.0.1 to `upstream` that passes requests at once and, while `slow`
    /// is set, holds each chunk of the answers back by [`HOLD`].
    async fn proxy(upstream: String, slow: Arc<AtomicBool>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (mut client_rx, mut client_tx) = client.into_split();
                let (mut server_rx, mut server_tx) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_rx, &mut server_tx).await;
                });
                let slow = slow.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n @ 1..) = server_rx.read(&mut buf).await {
                        if slow.load(Ordering::SeqCst) {
                            tokio::time::sleep(HOLD).await;
                        }
                        if client_tx.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        format!("redis://{addr}/")
    }

    #[tokio::test]
    async fn a_fail_closed_claim_that_landed_is_released() {
        let Ok(url) = std::env::var("REDIS_URL") else {
            eprintln!("skipped: REDIS_URL is not set (CI sets it)");
            return;
        };
        let upstream = url
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        let slow = Arc::new(AtomicBool::new(false));
        let through_proxy = proxy(upstream, slow.clone()).await;
        let prefix = format!("wm-test-slow:{:032x}:", Token::random().get());
        let store = RedisStore::connect(through_proxy.as_str())
            .await
            .unwrap()
            .key_prefix(prefix.clone())
            .timeout(TIMEOUT);
        // Load the claim and release scripts into Redis first (a restart empties its script
        // cache): held back, a NOSCRIPT answer would come too late for the store to load the
        // script and try again, and the claim would not land at all.
        let warm = Token::random();
        let ttl = Duration::from_secs(1);
        store
            .claim("warm-up", warm, ttl, SystemTime::now())
            .await
            .unwrap();
        assert!(store.release("warm-up", warm, ttl).await.unwrap());
        let (m, calls) = fail_closed(store).await;

        slow.store(true, Ordering::SeqCst);
        // The claim reaches Redis at once; its answer, 500 ms later, comes after the timeout.
        assert_eq!(send(&m, "evt_1").await, StatusCode::SERVICE_UNAVAILABLE);
        // The release goes out at once too (and its answer comes late as well).
        tokio::time::sleep(HOLD * 3).await;
        slow.store(false, Ordering::SeqCst);

        // The provider's retry is processed: the claim was released, not left in flight.
        assert_eq!(send(&m, "evt_1").await, StatusCode::OK);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let retry = m.report(2).await;
        assert_eq!(retry.outcome, Outcome::Success);
        assert_eq!(
            retry.delivery.times_seen(),
            Some(2),
            "the landed claim was attempt 1"
        );
        assert_eq!(send(&m, "evt_1").await, StatusCode::OK);
        assert_eq!(m.report(3).await.outcome, Outcome::Duplicate);
    }
}

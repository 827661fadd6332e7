//! Exactly-once handling through real servers, one suite run against every store: the
//! in-memory store, and Redis (feature `redis`, `REDIS_URL`) shared by two app instances.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{http::StatusCode, routing::post, Router};
use webhook_monitor::{dedupe::DedupeStore, provider::Source, Outcome, Policy, Report};

/// What the handler does, by the body it receives.
fn routes(calls: Arc<AtomicUsize>) -> Router {
    Router::new().route(
        "/hook",
        post(move |body: String| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                if body.contains("slow") {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                if body.contains("long") {
                    tokio::time::sleep(LONG).await;
                }
                if body.contains("fail") {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    )
}

fn policy(store: impl DedupeStore) -> Policy {
    Policy::custom("orders")
        .delivery_id(Source::header("x-delivery-id"))
        .dedupe(store)
}

/// One app instance: a router behind the layer, served on loopback.
async fn instance(policy: Policy, calls: Arc<AtomicUsize>) -> common::Monitored {
    common::monitored(policy, routes(calls)).await
}

async fn deliver(m: &common::Monitored, id: &str, body: &str) -> (StatusCode, http::HeaderMap) {
    let req = http::Request::post(m.url("/hook"))
        .header("x-delivery-id", id)
        .body(common::full(body.to_owned()))
        .unwrap();
    let res = common::client().request(req).await.unwrap();
    (res.status(), res.headers().clone())
}

fn outcomes(reports: &[Report]) -> Vec<Outcome> {
    reports
        .iter()
        .map(|r| common::delivery(r).outcome)
        .collect()
}

/// Two instances sharing one backend receive the same delivery 50 times at once: the handler
/// runs exactly once; every other copy is a duplicate (200) or in flight (409).
async fn exactly_once_across_two_instances(a: Policy, b: Policy, id: &str) {
    let calls = Arc::new(AtomicUsize::new(0));
    let (a, b) = (
        instance(a, calls.clone()).await,
        instance(b, calls.clone()).await,
    );
    let copies = (0..50).map(|i| {
        let m = if i % 2 == 0 { &a } else { &b };
        deliver(m, id, "slow")
    });
    let answers = futures_util::future::join_all(copies).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the handler ran exactly once"
    );
    let ok = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let in_flight: Vec<_> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CONFLICT)
        .collect();
    assert_eq!(ok + in_flight.len(), 50, "{answers:?}");
    assert!(in_flight
        .iter()
        .all(|(_, h)| h.get("retry-after").is_some()));
    let mut all = a.sink.wait_for(25, Duration::from_secs(5)).await;
    all.extend(b.sink.wait_for(25, Duration::from_secs(5)).await);
    let o = outcomes(&all);
    assert_eq!(
        o.iter().filter(|o| **o == Outcome::Success).count(),
        1,
        "{o:?}"
    );
    assert_eq!(
        o.iter()
            .filter(|o| matches!(o, Outcome::Duplicate | Outcome::InFlight))
            .count(),
        49,
        "{o:?}"
    );
}

/// A failed handler releases the claim: the provider's retry runs the handler again, and the
/// report counts the attempts; after a success, copies are duplicates.
async fn a_failure_is_retried_and_a_success_is_final(p: Policy, id: &str) {
    let calls = Arc::new(AtomicUsize::new(0));
    let m = instance(p, calls.clone()).await;
    assert_eq!(
        deliver(&m, id, "fail").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(deliver(&m, id, "ok").await.0, StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the retry ran the handler");
    let (status, _) = deliver(&m, id, "ok").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a duplicate is answered 2xx, so the provider stops"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the duplicate did not");

    let first = m.report(1).await;
    assert_eq!(first.delivery.times_seen(), Some(1));
    let retry = m.report(2).await;
    assert_eq!(retry.outcome, Outcome::Success);
    assert_eq!(retry.delivery.times_seen(), Some(2));
    assert_eq!(retry.delivery.first_seen(), first.delivery.first_seen());
    assert!(retry.flags.rapid_retries, "retried within a second");
    let duplicate = m.report(3).await;
    assert_eq!(duplicate.outcome, Outcome::Duplicate);
    assert_eq!(duplicate.status, Some(StatusCode::OK));
}

/// A client that hangs up mid-handler releases the claim: the retry is processed, not refused.
async fn a_cancelled_delivery_is_released(p: Policy, id: &str) {
    let calls = Arc::new(AtomicUsize::new(0));
    let m = instance(p, calls.clone()).await;
    let gone = tokio::time::timeout(Duration::from_millis(50), deliver(&m, id, "slow")).await;
    assert!(gone.is_err());
    assert_eq!(m.report(1).await.outcome, Outcome::Cancelled);
    // The release runs in the background: wait for it (bounded), then retry.
    let mut status = StatusCode::CONFLICT;
    for _ in 0..50 {
        status = deliver(&m, id, "ok").await.0;
        if status != StatusCode::CONFLICT {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// Without a delivery id the body's SHA-256 is the key.
async fn without_an_id_the_body_is_the_key(p: Policy) {
    let calls = Arc::new(AtomicUsize::new(0));
    let m = instance(p, calls.clone()).await;
    let body = format!("{{\"n\":{}}}", fastrand_u64());
    for _ in 0..3 {
        let req = http::Request::post(m.url("/hook"))
            .body(common::full(body.clone()))
            .unwrap();
        assert_eq!(
            common::client().request(req).await.unwrap().status(),
            StatusCode::OK
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// How long a `long` delivery's handler runs: 2.5 times the shortest in-flight TTL.
const LONG: Duration = Duration::from_millis(2500);

/// A handler that runs past the claim's in-flight TTL keeps its claim (renewed while it runs):
/// a copy that arrives after the TTL is in flight, not run a second time.
async fn a_claim_outlives_a_handler_longer_than_its_ttl(p: Policy, id: &str) {
    let p = p.in_flight_ttl(Policy::MIN_IN_FLIGHT_TTL);
    let calls = Arc::new(AtomicUsize::new(0));
    let m = instance(p, calls.clone()).await;
    let first = tokio::spawn({
        let url = m.url("/hook");
        let id = id.to_owned();
        async move {
            let req = http::Request::post(url)
                .header("x-delivery-id", id)
                .body(common::full("long"))
                .unwrap();
            common::client().request(req).await.unwrap().status()
        }
    });
    // Past the TTL (1 s), while the first handler still runs.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let (status, headers) = deliver(&m, id, "ok").await;
    assert_eq!(status, StatusCode::CONFLICT, "in flight, not run again");
    assert!(headers.contains_key("retry-after"));
    assert_eq!(first.await.unwrap(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(deliver(&m, id, "ok").await.0, StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "a duplicate once done");
    let reports = m.sink.wait_for(3, Duration::from_secs(5)).await;
    let outcomes = outcomes(&reports);
    assert_eq!(
        outcomes,
        [Outcome::InFlight, Outcome::Success, Outcome::Duplicate]
    );
    let done = common::delivery(&reports[1]);
    assert!(!done.flags.claim_expired, "{:?}", done.flags);
}

const GITHUB_SECRET: &str = "github-webhook-secret";

/// One signed GitHub body sent 100 times, each time under a fresh `X-GitHub-Delivery` (which
/// GitHub does not sign): the handler runs once, the copies are duplicates, every report keeps
/// the id it was sent, and the provider's own redelivery (same id, same body) is a duplicate
/// too.
async fn a_signed_body_replayed_under_fresh_ids_runs_once(store: impl DedupeStore) {
    let calls = Arc::new(AtomicUsize::new(0));
    let m = instance(Policy::github(GITHUB_SECRET).dedupe(store), calls.clone()).await;
    let body = format!(r#"{{"zen":"{}","hook_id":1}}"#, fastrand_u64());
    let send = |id: String| {
        let headers = webhook_monitor::testing::github(GITHUB_SECRET, body.as_bytes(), &id, "ping");
        let mut req = http::Request::post(m.url("/hook"));
        for (name, value) in &headers {
            req = req.header(name, value);
        }
        let req = req.body(common::full(body.clone())).unwrap();
        async move { common::client().request(req).await.unwrap().status() }
    };
    for i in 0..100 {
        assert_eq!(send(format!("guid-{i}")).await, StatusCode::OK);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the handler ran once");
    // GitHub's own redelivery keeps the id and the body.
    assert_eq!(send("guid-0".to_owned()).await, StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let reports = m.sink.wait_for(101, Duration::from_secs(5)).await;
    assert_eq!(reports.len(), 101);
    for (i, report) in reports.iter().enumerate() {
        let report = common::delivery(report);
        let expected = if i == 0 {
            Outcome::Success
        } else {
            Outcome::Duplicate
        };
        assert_eq!(report.outcome, expected, "report {i}");
        let id = format!("guid-{}", i % 100);
        assert_eq!(report.delivery.id(), Some(id.as_str()), "the provider's id");
    }
    assert_eq!(
        common::delivery(&reports[100]).delivery.times_seen(),
        Some(1)
    );
}

fn fastrand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", fastrand_u64())
}

mod memory {
    use webhook_monitor::dedupe::MemoryStore;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exactly_once_across_two_instances() {
        let store = MemoryStore::new();
        let id = unique("evt");
        super::exactly_once_across_two_instances(policy(store.clone()), policy(store), &id).await;
    }

    #[tokio::test]
    async fn a_failure_is_retried_and_a_success_is_final() {
        super::a_failure_is_retried_and_a_success_is_final(policy(MemoryStore::new()), "evt_1")
            .await;
    }

    #[tokio::test]
    async fn a_cancelled_delivery_is_released() {
        super::a_cancelled_delivery_is_released(policy(MemoryStore::new()), "evt_1").await;
    }

    #[tokio::test]
    async fn without_an_id_the_body_is_the_key() {
        super::without_an_id_the_body_is_the_key(policy(MemoryStore::new())).await;
    }

    #[tokio::test]
    async fn a_claim_outlives_a_handler_longer_than_its_ttl() {
        super::a_claim_outlives_a_handler_longer_than_its_ttl(policy(MemoryStore::new()), "evt_1")
            .await;
    }

    #[test]
    #[should_panic(expected = "below the minimum")]
    fn a_zero_in_flight_ttl_is_refused() {
        let _ = policy(MemoryStore::new()).in_flight_ttl(Duration::ZERO);
    }

    #[tokio::test]
    async fn a_signed_body_replayed_under_fresh_ids_runs_once() {
        let store = MemoryStore::new();
        super::a_signed_body_replayed_under_fresh_ids_runs_once(store.clone()).await;
        assert_eq!(store.len(), 1, "one key, however many ids were sent");
    }

    /// Where the signature covers the id (Standard Webhooks signs `webhook-id`), the id stays
    /// the key: two messages with the same body and different ids both run.
    #[tokio::test]
    async fn a_signed_id_stays_the_key() {
        const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let calls = Arc::new(AtomicUsize::new(0));
        let policy = Policy::standard_webhooks([SECRET])
            .unwrap()
            .dedupe(MemoryStore::new());
        let m = instance(policy, calls.clone()).await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let body = r#"{"type":"user.created"}"#;
        for id in ["msg_1", "msg_2", "msg_1"] {
            let headers = webhook_monitor::testing::standard_webhooks(
                "webhook",
                SECRET,
                id,
                body.as_bytes(),
                now,
            )
            .unwrap();
            let mut req = http::Request::post(m.url("/hook"));
            for (name, value) in &headers {
                req = req.header(name, value);
            }
            let req = req.body(common::full(body)).unwrap();
            assert_eq!(
                common::client().request(req).await.unwrap().status(),
                StatusCode::OK
            );
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "msg_1 and msg_2 ran, msg_1 once"
        );
        assert_eq!(m.report(3).await.outcome, Outcome::Duplicate);
    }

    #[tokio::test]
    async fn many_attempts_are_flagged() {
        let calls = Arc::new(AtomicUsize::new(0));
        let m = instance(
            policy(MemoryStore::new()).retry_thresholds(3, Duration::ZERO),
            calls,
        )
        .await;
        for _ in 0..4 {
            deliver(&m, "evt_storm", "fail").await;
        }
        let third = m.report(3).await;
        assert!(!third.flags.many_attempts && !third.flags.rapid_retries);
        let fourth = m.report(4).await;
        assert_eq!(fourth.delivery.times_seen(), Some(4));
        assert!(fourth.flags.many_attempts);
    }
}

#[cfg(feature = "redis")]
mod redis {
    use super::{common::redis::Backend, *};

    /// A store on `backend` with a key prefix of its own, or `None` (and why) without it.
    async fn store(backend: Backend) -> Option<webhook_monitor::dedupe::RedisStore> {
        common::redis::store(backend, &(unique("wm-test") + ":")).await
    }

    /// Runs each test below on one Redis and on a Redis Cluster: `node::test` and
    /// `cluster::test`.
    macro_rules! on_each_backend {
        ($(#[$test:meta] $name:ident,)*) => {
            on_each_backend!(@ node, Node, $(#[$test] $name,)*);
            on_each_backend!(@ cluster, Cluster, $(#[$test] $name,)*);
        };
        (@ $module:ident, $backend:ident, $(#[$test:meta] $name:ident,)*) => {
            mod $module {
                $(
                    #[$test]
                    async fn $name() {
                        super::$name(super::Backend::$backend).await;
                    }
                )*
            }
        };
    }

    on_each_backend! {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)] exactly_once_across_two_instances,
        #[tokio::test] a_failure_is_retried_and_a_success_is_final,
        #[tokio::test] a_cancelled_delivery_is_released,
        #[tokio::test] without_an_id_the_body_is_the_key,
        #[tokio::test] a_claim_outlives_a_handler_longer_than_its_ttl,
        #[tokio::test] a_signed_body_replayed_under_fresh_ids_runs_once,
    }

    async fn exactly_once_across_two_instances(backend: Backend) {
        // Two instances, two connections, one Redis (or one cluster).
        let prefix = unique("wm-test") + ":";
        let (Some(a), Some(b)) = (
            common::redis::store(backend, &prefix).await,
            common::redis::store(backend, &prefix).await,
        ) else {
            return;
        };
        super::exactly_once_across_two_instances(policy(a), policy(b), &unique("evt")).await;
    }

    async fn a_failure_is_retried_and_a_success_is_final(backend: Backend) {
        let Some(s) = store(backend).await else {
            return;
        };
        super::a_failure_is_retried_and_a_success_is_final(policy(s), "evt_1").await;
    }

    async fn a_cancelled_delivery_is_released(backend: Backend) {
        let Some(s) = store(backend).await else {
            return;
        };
        super::a_cancelled_delivery_is_released(policy(s), "evt_1").await;
    }

    async fn without_an_id_the_body_is_the_key(backend: Backend) {
        let Some(s) = store(backend).await else {
            return;
        };
        super::without_an_id_the_body_is_the_key(policy(s)).await;
    }

    async fn a_claim_outlives_a_handler_longer_than_its_ttl(backend: Backend) {
        let Some(s) = store(backend).await else {
            return;
        };
        super::a_claim_outlives_a_handler_longer_than_its_ttl(policy(s), "evt_1").await;
    }

    async fn a_signed_body_replayed_under_fresh_ids_runs_once(backend: Backend) {
        let prefix = unique("wm-test") + ":";
        let Some(s) = common::redis::store(backend, &prefix).await else {
            return;
        };
        super::a_signed_body_replayed_under_fresh_ids_runs_once(s).await;
        let keys: Vec<String> = common::redis::keys_per_node(backend, &prefix)
            .await
            .into_iter()
            .flat_map(|(_, keys)| keys)
            .collect();
        assert_eq!(
            keys.len(),
            1,
            "one key, however many ids were sent: {keys:?}"
        );
    }
}

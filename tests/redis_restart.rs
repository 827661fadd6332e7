//! `RedisStore` and the layer across a Redis outage: errors (not panics, not hangs) while Redis is
//! down, fail-open and fail-closed policies answering as documented, and the same store working
//! again once Redis is back.
//!
//! These tests stop and restart the Redis at `REDIS_URL` (127.0.0.1 only), so they live in their
//! own test binary (cargo runs test binaries one after another, never alongside the unit tests)
//! and take a lock so that they run one at a time. A guard restarts Redis even if an assertion
//! fails.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)]

use std::{
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant, SystemTime},
};

mod common;

use webhook_monitor::dedupe::{Claim, DedupeStore, RedisStore, Token};

/// One outage at a time.
static REDIS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const OP_TIMEOUT: Duration = Duration::from_millis(500);
const TTL: Duration = Duration::from_secs(60);

/// `REDIS_URL` and its port, if it is on the loopback interface; `None` (with the reason
/// printed) when the test must not run.
fn local_redis() -> Option<(String, u16)> {
    let Ok(url) = std::env::var("REDIS_URL") else {
        eprintln!("skipping: REDIS_URL is not set");
        return None;
    };
    let rest = url.strip_prefix("redis://").unwrap_or(&url);
    let authority = rest.split('/').next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let (host, port) = host_port.rsplit_once(':').unwrap_or((host_port, "6379"));
    if host != "127.0.0.1" && host != "localhost" {
        eprintln!("skipping: REDIS_URL is not on 127.0.0.1; this test restarts Redis");
        return None;
    }
    match port.parse() {
        Ok(port) => Some((url, port)),
        Err(_) => {
            eprintln!("skipping: cannot read the port of REDIS_URL");
            None
        }
    }
}

fn ping(port: u16) -> bool {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "ping"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|out| out.status.success() && out.stdout.starts_with(b"PONG"))
}

/// Polls until `ping` returns `up`, for at most 10 s.
fn wait_until(port: u16, up: bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if ping(port) == up {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    false
}

fn stop_redis(port: u16) {
    let _ = Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "shutdown",
            "nosave",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(wait_until(port, false), "Redis did not stop");
}

fn start_redis(port: u16) -> bool {
    let started = Command::new("redis-server")
        .args(["--daemonize", "yes", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .status();
    started.is_ok_and(|s| s.success()) && wait_until(port, true)
}

/// Restarts Redis when dropped, if it is not answering: the shared Redis survives a failed
/// assertion.
struct RestoreRedis(u16);

impl Drop for RestoreRedis {
    fn drop(&mut self) {
        if !ping(self.0) && !start_redis(self.0) {
            eprintln!("could not restart redis-server on port {}", self.0);
        }
    }
}

async fn claim(
    store: &RedisStore,
    key: &str,
) -> Result<Claim, webhook_monitor::dedupe::StoreError> {
    store
        .claim(key, Token::random(), TTL, SystemTime::now())
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_store_recovers_after_a_redis_restart() {
    let Some((url, port)) = local_redis() else {
        return;
    };
    let _one_at_a_time = REDIS.lock().await;
    assert!(ping(port), "REDIS_URL is set but Redis does not answer");
    let test = async {
        let prefix = format!(
            "webhook-monitor-test:restart:{:032x}:",
            Token::random().get()
        );
        let store = RedisStore::connect(url.as_str())
            .await
            .unwrap()
            .key_prefix(prefix)
            .timeout(OP_TIMEOUT);
        let token = Token::random();
        let before = store.claim("before", token, TTL, SystemTime::now()).await;
        assert!(matches!(before, Ok(Claim::Claimed { attempt: 1, .. })));

        let _restore = RestoreRedis(port);
        tokio::task::spawn_blocking(move || stop_redis(port))
            .await
            .unwrap();

        // Down: every operation is an error, within the timeout.
        for round in 0..3 {
            let started = Instant::now();
            let results = [
                claim(&store, "during").await.map(|_| ()),
                store
                    .complete("before", token, TTL, SystemTime::now())
                    .await
                    .map(|_| ()),
                store.release("before", token, TTL).await.map(|_| ()),
            ];
            for result in results {
                let err = result.expect_err("Redis is down");
                eprintln!("down, round {round}: {err}");
            }
            assert!(
                started.elapsed() < 3 * OP_TIMEOUT + Duration::from_millis(300),
                "three operations took {:?}",
                started.elapsed()
            );
        }

        assert!(
            tokio::task::spawn_blocking(move || start_redis(port))
                .await
                .unwrap(),
            "Redis did not restart"
        );

        // Back: the same store, not recreated, works from the first operation on (the
        // restarted Redis has lost its script cache and the old keys).
        let after = claim(&store, "after").await;
        assert!(
            matches!(after, Ok(Claim::Claimed { attempt: 1, .. })),
            "{after:?}"
        );
        let again = store.claim("before", token, TTL, SystemTime::now()).await;
        assert!(
            matches!(again, Ok(Claim::Claimed { attempt: 1, .. })),
            "{again:?}"
        );
        assert!(store
            .complete("before", token, TTL, SystemTime::now())
            .await
            .unwrap());
    };
    tokio::time::timeout(Duration::from_secs(60), test)
        .await
        .expect("the restart test finished within 60 s");
}

/// The layer during an outage: a fail-open route processes and flags the delivery, a fail-closed
/// route answers 503 without calling the handler; once Redis is back both dedupe again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_fails_open_or_closed_while_redis_is_down_and_recovers() {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };

    use axum::{routing::post, Router};
    use http::StatusCode;
    use webhook_monitor::{dedupe::StoreFailure, provider::Source, Outcome, Policy, RejectReason};

    let Some((url, port)) = local_redis() else {
        return;
    };
    let _one_at_a_time = REDIS.lock().await;
    assert!(ping(port), "REDIS_URL is set but Redis does not answer");
    let test = async {
        let calls = Arc::new(AtomicUsize::new(0));
        let prefix = format!(
            "webhook-monitor-test:outage:{:032x}:",
            Token::random().get()
        );
        let app = |failure: StoreFailure| {
            let calls = calls.clone();
            let url = url.clone();
            let prefix = prefix.clone();
            async move {
                let store = RedisStore::connect(url.as_str())
                    .await
                    .unwrap()
                    .key_prefix(prefix)
                    .timeout(OP_TIMEOUT);
                let policy = Policy::custom("orders")
                    .delivery_id(Source::header("x-delivery-id"))
                    .dedupe(store)
                    .on_store_failure(failure);
                let routes = Router::new().route(
                    "/hook",
                    post(move || {
                        calls.fetch_add(1, Ordering::SeqCst);
                        async { "ok" }
                    }),
                );
                common::monitored(policy, routes).await
            }
        };
        let open = app(StoreFailure::Open).await;
        let closed = app(StoreFailure::Closed).await;
        let send = |m: &common::Monitored, id: &'static str| {
            let url = m.url("/hook");
            async move {
                let headers = [("x-delivery-id", id)];
                common::send(&url, common::full("{}"), &headers).await.0
            }
        };

        assert_eq!(send(&open, "evt_1").await, StatusCode::OK);
        assert_eq!(send(&open, "evt_1").await, StatusCode::OK);
        assert_eq!(calls.load(Ordering::SeqCst), 1, "deduped while Redis is up");

        let _restore = RestoreRedis(port);
        tokio::task::spawn_blocking(move || stop_redis(port))
            .await
            .unwrap();

        assert_eq!(send(&open, "evt_2").await, StatusCode::OK);
        assert_eq!(calls.load(Ordering::SeqCst), 2, "fail-open processed it");
        let r = open.report(3).await;
        assert_eq!(r.outcome, Outcome::Success);
        assert!(r.flags.dedupe_unavailable);

        assert_eq!(
            send(&closed, "evt_3").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "fail-closed did not call the handler"
        );
        let r = closed.report(1).await;
        assert_eq!(
            r.outcome,
            Outcome::Rejected(RejectReason::DedupeUnavailable)
        );

        assert!(
            tokio::task::spawn_blocking(move || start_redis(port))
                .await
                .unwrap(),
            "Redis did not restart"
        );
        // Back: the provider's retry of the refused delivery is processed, then deduped.
        assert_eq!(send(&closed, "evt_3").await, StatusCode::OK);
        assert_eq!(send(&closed, "evt_3").await, StatusCode::OK);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(closed.report(3).await.outcome, Outcome::Duplicate);
    };
    tokio::time::timeout(Duration::from_secs(60), test)
        .await
        .expect("the outage test finished within 60 s");
}

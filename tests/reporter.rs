//! The reporter: never blocks, counts every drop by reason, batches, drains on shutdown.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    convert::Infallible,
    future::Future,
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{body::Body, routing::post, Router};
use common::SharedBuf;
use http::{Request, Response};
use tower::{Layer, ServiceExt};
use webhook_monitor::{
    provider::Source,
    report::{JsonLinesSink, MemorySink, Reporter, ReporterStats, ShutdownError, Sink, SinkError},
    Mark, Policy, Report, WebhookBody, WebhookMonitorLayer,
};

/// Sends `n` deliveries through the layer, in-process, each answered 200 at once.
async fn deliver(reporter: &Reporter, n: usize) {
    let layer = WebhookMonitorLayer::new(Policy::custom("r"), reporter.clone());
    let svc = layer.layer(tower::service_fn(|_: Request<WebhookBody>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    }));
    for _ in 0..n {
        svc.clone()
            .oneshot(Request::new(Body::from("{}")))
            .await
            .unwrap();
    }
}

/// A sink whose `send` never completes.
struct Hangs;
impl Sink for Hangs {
    fn send(&self, _: &[Report]) -> impl Future<Output = Result<(), SinkError>> + Send {
        std::future::pending()
    }
}

/// A sink that takes `delay` per batch.
struct Slow {
    delay: Duration,
    inner: MemorySink,
}
impl Sink for Slow {
    async fn send(&self, batch: &[Report]) -> Result<(), SinkError> {
        tokio::time::sleep(self.delay).await;
        self.inner.send(batch).await
    }
}

/// A sink that always fails.
struct Fails;
impl Sink for Fails {
    async fn send(&self, _: &[Report]) -> Result<(), SinkError> {
        Err(SinkError::new(std::io::Error::other("backend said no")))
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_full_queue_drops_and_counts_without_blocking() {
    // The worker is never spawned: nothing drains the queue.
    let (reporter, _guard, _worker) = Reporter::builder().queue_capacity(2).pair(Hangs);
    deliver(&reporter, 5).await;
    let s = reporter.stats();
    assert_eq!((s.enqueued, s.dropped_full, s.dropped_closed), (2, 3, 0));
    assert_eq!(s.queue_depth, 2);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn shutdown_drains_every_queued_report_on_current_thread() {
    let sink = MemorySink::new();
    let slow = Slow {
        delay: Duration::from_millis(50),
        inner: sink.clone(),
    };
    let (reporter, guard) = Reporter::builder().batch_size(3).spawn(slow);
    deliver(&reporter, 10).await;
    guard
        .shutdown(Duration::from_secs(5))
        .await
        .expect("drained in time");
    assert_eq!(sink.len(), 10);
    let s = reporter.stats();
    assert_eq!((s.enqueued, s.sent, s.failed, s.batches), (10, 10, 0, 4));

    // After shutdown, a report is dropped and counted, and the request does not wait.
    deliver(&reporter, 1).await;
    assert_eq!(reporter.stats().dropped_closed, 1);
}

#[tokio::test(flavor = "current_thread")]
async fn shutdown_gives_up_on_a_hung_sink_after_its_timeout() {
    let (reporter, guard) = Reporter::spawn(Hangs);
    deliver(&reporter, 3).await;
    let err = guard.shutdown(Duration::from_millis(50)).await.unwrap_err();
    assert_eq!(err.to_string(), "reporter shutdown timed out");
}

#[tokio::test(flavor = "current_thread")]
async fn the_worker_batches_instead_of_waking_per_report() {
    // Queue 1000 reports before the worker first runs: it takes them in full batches.
    let sink = MemorySink::new();
    let (reporter, guard) = Reporter::builder().batch_size(256).spawn(sink.clone());
    deliver(&reporter, 1000).await;
    guard.shutdown(Duration::from_secs(5)).await.unwrap();
    let s = reporter.stats();
    assert_eq!((s.sent, s.batches), (1000, 4), "256 + 256 + 256 + 232");
}

#[tokio::test(flavor = "current_thread")]
async fn a_lingering_worker_wakes_once_a_batch_is_queued() {
    // A linger of an hour: only the early wake-up can deliver within the test.
    let sink = MemorySink::new();
    let (reporter, _guard) = Reporter::builder()
        .batch_size(100)
        .linger(Duration::from_secs(3600))
        .spawn(sink.clone());
    deliver(&reporter, 1).await;
    while reporter.stats().queue_depth > 0 {
        tokio::task::yield_now().await; // the worker takes the first report and lingers
    }
    tokio::task::yield_now().await;
    assert_eq!(reporter.stats().batches, 0, "still lingering");
    deliver(&reporter, 99).await;
    let reports = sink.wait_for(100, Duration::from_secs(10)).await;
    assert_eq!(reports.len(), 100);
    assert_eq!(reporter.stats().batches, 1, "one batch of 100");
}

#[tokio::test]
async fn failed_and_timed_out_batches_are_counted() {
    let (reporter, guard) = Reporter::builder().linger(Duration::ZERO).spawn(Fails);
    deliver(&reporter, 7).await;
    guard.shutdown(Duration::from_secs(5)).await.unwrap();
    let s = reporter.stats();
    assert_eq!((s.enqueued, s.sent, s.failed), (7, 0, 7));

    let (reporter, guard) = Reporter::builder()
        .sink_timeout(Duration::from_millis(20))
        .spawn(Hangs);
    deliver(&reporter, 4).await;
    guard.shutdown(Duration::from_secs(5)).await.unwrap();
    let s = reporter.stats();
    assert_eq!((s.enqueued, s.sent, s.failed), (4, 0, 4));
}

#[tokio::test]
async fn the_worker_ends_when_every_reporter_is_dropped() {
    let sink = MemorySink::new();
    let (reporter, _guard, worker) = Reporter::builder().pair(sink.clone());
    let worker = tokio::spawn(worker);
    deliver(&reporter, 3).await;
    drop(reporter);
    tokio::time::timeout(Duration::from_secs(5), worker)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sink.len(), 3, "drained before ending");
}

#[tokio::test]
async fn dropping_the_guard_stops_the_worker_after_draining() {
    let sink = MemorySink::new();
    let (reporter, guard, worker) = Reporter::builder().pair(sink.clone());
    deliver(&reporter, 3).await;
    let worker = tokio::spawn(worker);
    drop(guard);
    tokio::time::timeout(Duration::from_secs(5), worker)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sink.len(), 3);
    deliver(&reporter, 1).await;
    assert_eq!(reporter.stats().dropped_closed, 1);
}

#[tokio::test]
async fn a_guard_bound_to_underscore_is_loud_once_and_counted() {
    let (logs, _logging) = SharedBuf::capture_logs();

    let sink = MemorySink::new();
    let (reporter, _) = Reporter::spawn(sink.clone());
    // The worker stops once it sees the dropped guard; from then on reports are dropped.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while reporter.stats().dropped_closed == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker never stopped"
        );
        deliver(&reporter, 1).await;
        tokio::task::yield_now().await;
    }
    deliver(&reporter, 2).await;
    let stats = reporter.stats();
    assert_eq!(stats.dropped_closed, 3);
    let warnings: Vec<String> = logs
        .text()
        .lines()
        .filter(|l| l.contains("WARN"))
        .map(str::to_owned)
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains("ReporterGuard was dropped") && warnings[0].contains("_guard"),
        "{}",
        warnings[0]
    );
}

#[tokio::test]
async fn a_report_after_shutdown_names_the_shutdown() {
    let (logs, _logging) = SharedBuf::capture_logs();

    let (reporter, guard) = Reporter::spawn(MemorySink::new());
    guard.shutdown(Duration::from_secs(5)).await.unwrap();
    deliver(&reporter, 1).await;
    assert_eq!(reporter.stats().dropped_closed, 1);
    assert!(
        logs.text().contains("the reporter was shut down"),
        "{}",
        logs.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_sink_that_never_returns_10_000_requests_all_complete() {
    let (reporter, guard) = Reporter::builder().queue_capacity(1024).spawn(Hangs);
    let app = Router::new()
        .route("/hook", post(|| async { "ok" }))
        .route_layer(WebhookMonitorLayer::new(
            Policy::custom("hook"),
            reporter.clone(),
        ));
    let addr = common::serve(app).await;
    let url = format!("http://{addr}/hook");
    // 8 keep-alive connections, 1250 requests each. A hang guard, not a timed assertion.
    let clients = (0..8).map(|_| {
        let url = url.clone();
        tokio::spawn(async move {
            let client = common::client();
            for _ in 0..1250 {
                let req = Request::post(&url).body(common::full("{}")).unwrap();
                let res = client.request(req).await.unwrap();
                assert_eq!(res.status(), 200);
            }
        })
    });
    let all = futures_util::future::join_all(clients);
    for r in tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("no request waits")
    {
        r.unwrap();
    }
    let s: ReporterStats = reporter.stats();
    assert_eq!(s.enqueued + s.dropped_full, 10_000, "{s:?}");
    // The worker took at most one batch into the hung sink; the queue holds the rest.
    assert!(s.enqueued <= 1024 + 512, "{s:?}");
    assert_eq!(s.dropped_full, 10_000 - s.enqueued);
    assert_eq!(s.sent, 0);
    assert!(guard.shutdown(Duration::from_millis(10)).await.is_err());
}

#[tokio::test]
async fn json_lines_follow_the_documented_schema() {
    let buf = SharedBuf::default();
    let (reporter, guard) = Reporter::spawn(JsonLinesSink::new(buf.clone()));
    let policy = Policy::custom("payments")
        .provider("acme")
        .delivery_id(Source::header("x-id"))
        .timeout_budget(Duration::from_secs(3));
    let svc = WebhookMonitorLayer::new(policy, reporter).layer(tower::service_fn(
        |_: Request<WebhookBody>| async {
            let mut res = Response::new(Body::empty());
            res.extensions_mut().insert(
                Mark::failed("no payment_id")
                    .field("records", 2u64)
                    .field("ok", false),
            );
            Ok::<_, Infallible>(res)
        },
    ));
    let req = Request::builder()
        .header("x-id", "evt_1")
        .body(Body::from("{\"a\":1}"))
        .unwrap();
    svc.oneshot(req).await.unwrap();
    guard.shutdown(Duration::from_secs(5)).await.unwrap();

    let out = buf.text();
    let lines: Vec<_> = out.lines().collect();
    assert_eq!(lines.len(), 1);
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    let mut want = vec![
        "type",
        "route",
        "provider",
        "delivery_id",
        "event_type",
        "attempt",
        "signature",
        "secret_index",
        "status",
        "outcome",
        "outcome_detail",
        "reason",
        "payload_check",
        "received_at",
        "body_read_us",
        "handler_us",
        "total_us",
        "body_bytes",
        "fingerprint",
        "times_seen",
        "first_seen",
        "mean_retry_interval_ms",
        "lag_ms",
        "flags",
        "fields",
    ];
    want.sort_unstable();
    let mut keys_sorted = keys.clone();
    keys_sorted.sort_unstable();
    assert_eq!(keys_sorted, want);
    assert_eq!(v["type"], "delivery");
    assert_eq!(v["route"], "payments");
    assert_eq!(v["provider"], "acme");
    assert_eq!(v["delivery_id"], "evt_1");
    assert_eq!(v["event_type"], serde_json::Value::Null);
    assert_eq!(v["signature"], "unchecked");
    assert_eq!(v["secret_index"], serde_json::Value::Null);
    assert_eq!(v["status"], 200);
    assert_eq!(v["outcome"], "failure");
    assert_eq!(v["outcome_detail"], "marked");
    assert_eq!(v["reason"], "no payment_id");
    assert_eq!(v["payload_check"], serde_json::Value::Null);
    assert_eq!(v["body_bytes"], 7);
    assert_eq!(v["flags"], serde_json::json!([]));
    assert_eq!(
        v["times_seen"],
        serde_json::Value::Null,
        "no dedupe on this route"
    );
    assert_eq!(v["fields"], serde_json::json!({"records": 2, "ok": false}));
    let fp = v["fingerprint"].as_str().unwrap();
    assert!(fp.starts_with("xxh3-128:") && fp.len() == 9 + 32, "{fp}");
    let at = v["received_at"].as_str().unwrap();
    assert!(humantime::parse_rfc3339(at).is_ok(), "{at}");
    assert!(v["total_us"].as_u64().unwrap() >= v["handler_us"].as_u64().unwrap());
}

/// Panics on every third batch; keeps the others.
#[derive(Default)]
struct PanicsEveryThird {
    calls: std::sync::atomic::AtomicUsize,
    kept: Mutex<Vec<Report>>,
}

impl Sink for PanicsEveryThird {
    async fn send(&self, batch: &[Report]) -> Result<(), SinkError> {
        let call = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        assert!(
            call % 3 != 0,
            "batch {call}: this sink panics on every third"
        );
        self.kept.lock().unwrap().extend_from_slice(batch);
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_sink_that_panics_on_every_third_batch_loses_no_other_batch() {
    let sink = Arc::new(PanicsEveryThird::default());
    let (reporter, guard) = Reporter::builder()
        .batch_size(1)
        .linger(Duration::ZERO)
        .health_interval(Some(Duration::from_secs(60)))
        .spawn(Arc::clone(&sink));
    // 30 deliveries, one per batch: batches 3, 6, … 30 panic.
    deliver(&reporter, 30).await;
    for _ in 0..10_000 {
        if reporter.stats().batches >= 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let s = reporter.stats();
    assert_eq!((s.sent, s.failed, s.sink_panics), (20, 10, 10));
    let kept = sink.kept.lock().unwrap().len();
    assert_eq!(kept, 20, "every batch but the panicking ones arrived");

    // The worker carried on: the next health report (batch 31) arrives and counts the panics.
    tokio::time::sleep(Duration::from_secs(61)).await;
    let health = sink
        .kept
        .lock()
        .unwrap()
        .iter()
        .find_map(|r| r.as_health().cloned())
        .expect("a health report after the panics");
    assert_eq!(health.reporter.sink_panics, 10);
    assert_eq!(health.reporter.failed, 10);
    drop(reporter);
    guard.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn shutdown_says_when_the_worker_is_gone() {
    let (reporter, guard, worker) = Reporter::builder().pair(MemorySink::new());
    let task = tokio::spawn(worker);
    deliver(&reporter, 3).await;
    task.abort();
    let _ = task.await;
    assert_eq!(
        guard.shutdown(Duration::from_secs(1)).await,
        Err(ShutdownError::WorkerGone)
    );
    assert_eq!(reporter.stats().enqueued, 3);
}

/// A writer whose first write blocks the calling thread until `release` says so.
struct BlocksOnce {
    writing: Arc<std::sync::atomic::AtomicBool>,
    release: std::sync::mpsc::Receiver<()>,
    out: SharedBuf,
}

impl Write for BlocksOnce {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.writing.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let _ = self.release.recv();
        }
        self.out.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A JSON-lines writer that blocks (a full pipe, a paused terminal) holds no runtime thread:
/// on a `current_thread` runtime, requests are still served while the write waits.
#[tokio::test(flavor = "current_thread")]
async fn a_blocked_json_lines_writer_does_not_stall_the_runtime() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

    let (release, released_by) = std::sync::mpsc::channel();
    let writing = Arc::new(AtomicBool::new(false));
    let out = SharedBuf::default();
    let sink = JsonLinesSink::new(BlocksOnce {
        writing: Arc::clone(&writing),
        release: released_by,
        out: out.clone(),
    });
    let (reporter, guard) = Reporter::builder()
        .linger(Duration::ZERO)
        .health_interval(None)
        .spawn(sink);
    // A watchdog, so that a runtime stalled inside the write (the bug) ends the test anyway.
    let released = Arc::new(AtomicBool::new(false));
    let release = Arc::new(Mutex::new(Some(release)));
    let free = {
        let (released, release) = (Arc::clone(&released), Arc::clone(&release));
        move || {
            if let Some(tx) = release.lock().unwrap().take() {
                released.store(true, SeqCst);
                let _ = tx.send(());
            }
        }
    };
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn({
        let free = free.clone();
        move || {
            if finished.recv_timeout(Duration::from_secs(5)).is_err() {
                free();
            }
        }
    });

    deliver(&reporter, 1).await;
    while !writing.load(SeqCst) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The write is blocked now; this runtime's only thread still serves a request.
    deliver(&reporter, 1).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(
        !released.load(SeqCst),
        "the runtime was stalled until the watchdog released the writer"
    );
    free();
    let _ = done.send(());
    drop(reporter);
    guard.shutdown(Duration::from_secs(5)).await.unwrap();
    watchdog.join().unwrap();
    let lines = out.text();
    assert_eq!(lines.lines().count(), 2, "{lines}");
}

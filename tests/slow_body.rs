//! A client that declares a huge body and trickles it, before any signature can be checked:
//! the server's memory follows what arrived, and the layer answers `408` at the body's deadline.
//!
//! Its own test binary: the counting allocator below sees the whole process.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    alloc::System,
    sync::{
        atomic::{AtomicUsize, Ordering::Relaxed},
        Arc,
    },
    time::Duration,
};

use axum::{routing::post, Router};
use cap::Cap;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};
use webhook_monitor::{Outcome, Policy, RejectReason, WebhookMonitorLayer};

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// GitHub's preset (a 25 MiB limit) with a 2 s timeout budget: the body's deadline.
const BUDGET: Duration = Duration::from_secs(2);
const DECLARED: usize = 25 * 1024 * 1024;

#[tokio::test]
async fn a_trickled_body_holds_no_memory_and_is_answered_408_at_its_deadline() {
    let (reporter, _guard, sink) = common::memory_reporter();
    let policy = Policy::github("It's a Secret to Everybody").timeout_budget(BUDGET);
    let app = Router::new().route(
        "/webhooks/github",
        post(|| async { "never called" }).route_layer(WebhookMonitorLayer::new(policy, reporter)),
    );
    let addr = common::serve(app).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // Settle what connecting allocated (the connection's task and buffers), then measure.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = ALLOCATOR.allocated();
    // What the process holds, sampled every 5 ms until the answer: the old reader allocated
    // the declared size at the second frame and held it until the end.
    let peak = Arc::new(AtomicUsize::new(before));
    let sampler = tokio::spawn({
        let peak = Arc::clone(&peak);
        async move {
            loop {
                peak.fetch_max(ALLOCATOR.allocated(), Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });

    let head = format!(
        "POST /webhooks/github HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {DECLARED}\r\n\
         x-hub-signature-256: sha256={}\r\nx-github-delivery: d-1\r\n\r\n",
        "0".repeat(64)
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let sent_at = Instant::now();
    let (mut read, mut write) = stream.into_split();
    // One byte every 100 ms, until the server answers (the writer then fails or is dropped).
    let trickle = tokio::spawn(async move {
        let mut sent = 0u64;
        while write.write_all(b"{").await.is_ok() {
            sent += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        sent
    });
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(BUDGET * 3, read.read(&mut answer))
        .await
        .expect("answered within the deadline")
        .unwrap();
    let waited = sent_at.elapsed();
    sampler.abort();
    trickle.abort();
    let peak = peak.load(Relaxed).max(ALLOCATOR.allocated()) - before;

    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        waited >= BUDGET,
        "answered after {waited:?}, before the deadline"
    );
    assert!(
        waited < BUDGET + Duration::from_millis(500),
        "answered {waited:?} after the request, the deadline is {BUDGET:?}"
    );
    assert!(
        peak < 64 * 1024,
        "the server allocated {peak} bytes for a body that declared {DECLARED}"
    );

    let report = common::delivery(&sink.wait_for(1, Duration::from_secs(5)).await[0]);
    assert_eq!(report.outcome, Outcome::Rejected(RejectReason::BodyTimeout));
    let arrived = report.delivery.body_len();
    assert!(
        (10..=30).contains(&arrived),
        "{arrived} bytes arrived in {waited:?}"
    );
    eprintln!("peak allocation over the request: {peak} bytes; {arrived} bytes arrived");
}

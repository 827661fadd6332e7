//! The memory watch on a real reporter, with a paused tokio clock and real allocations measured
//! by the process's real resident memory: memory allocated and held raises `memory_growth`,
//! memory allocated and freed raises nothing. Health reports carry the resident memory.
//!
//! Every allocation is a 64 MiB chunk. glibc serves an allocation that large with its own
//! `mmap` (its dynamic mmap threshold grows to 32 MiB at most), so freeing it unmaps it and the
//! resident memory falls at once; a smaller one could stay in the heap after it is freed. Each
//! chunk is filled with a non-zero byte, so that its pages are touched and resident (`vec![0;
//! n]` maps zero pages lazily, and they would not count).
#![allow(clippy::unwrap_used)]

use std::{hint::black_box, time::Duration};

use tokio::{sync::Mutex, time::sleep};
use webhook_monitor::{
    report::{HealthReport, MemorySink, Reporter},
    watch::{Alert, AlertKind, AlertState, MemoryWatch, PROCESS_ROUTE},
    FieldValue, ReporterGuard,
};

const MIB: u64 = 1 << 20;
const CHUNK: u64 = 64 * MIB;
const MINUTE: Duration = Duration::from_secs(60);
/// The growth the tests set: one chunk is less, two are more.
const GROWTH: u64 = 96 * MIB;

/// The resident memory is the whole process's: one test at a time, so that one test's chunks
/// do not show in another's samples.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// The process's resident memory, as the tests read it themselves.
fn rss() -> Option<u64> {
    memory_stats::memory_stats().map(|m| m.physical_mem as u64)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

/// A chunk of `CHUNK` bytes, every page touched.
fn chunk() -> Vec<u8> {
    black_box(vec![1u8; CHUNK as usize])
}

/// A reporter whose worker samples every minute: a 5-minute window, 96 MiB of growth, 3
/// samples in a row; health reports every `health` when given.
fn reporter(health: Option<Duration>) -> (Reporter, ReporterGuard, MemorySink) {
    let sink = MemorySink::new();
    let memory = MemoryWatch::default()
        .window(5 * MINUTE)
        .growth(GROWTH, 0.0)
        .sustained(3);
    let (reporter, guard) = Reporter::builder()
        .health_interval(health)
        .memory_watch(memory)
        .spawn(sink.clone());
    (reporter, guard, sink)
}

fn memory_alerts(sink: &MemorySink) -> Vec<Alert> {
    sink.reports()
        .iter()
        .filter_map(|r| r.as_alert())
        .filter(|a| a.kind == AlertKind::MemoryGrowth)
        .cloned()
        .collect()
}

fn health_reports(sink: &MemorySink) -> Vec<HealthReport> {
    sink.reports()
        .iter()
        .filter_map(|r| r.as_health().cloned())
        .collect()
}

fn bytes(alert: &Alert, name: &str) -> u64 {
    match alert.figure(name) {
        Some(FieldValue::U64(v)) => *v,
        other => panic!("{name}: {other:?}"),
    }
}

fn print(what: &str, alert: &Alert) {
    let figure = |name| mib(bytes(alert, name));
    println!(
        "{what}: rss {:.1} MiB, baseline {:.1} MiB, growth {:.1} MiB, window {} min",
        figure("rss_bytes"),
        figure("baseline_bytes"),
        figure("growth_bytes"),
        bytes(alert, "window_minutes"),
    );
}

/// The worker ticks on the minute from its start; the tests act on the half minute, so that
/// each tick samples what the step before it left.
async fn half_minute() {
    sleep(MINUTE / 2).await;
}

#[tokio::test(start_paused = true)]
async fn memory_allocated_and_held_raises_memory_growth_once() {
    let _serial = SERIAL.lock().await;
    let Some(before) = rss() else {
        println!("skipped: this platform does not tell the resident memory");
        return;
    };
    let (reporter, guard, sink) = reporter(None);
    // Minute 1: the baseline, before any chunk.
    sleep(MINUTE).await;
    half_minute().await;
    let mut held = Vec::new();
    // Three chunks (samples at +64, +128, +192 MiB): only the last two are 96 MiB above the
    // baseline, one short of three in a row.
    for _ in 0..3 {
        held.push(chunk());
        sleep(MINUTE).await;
        let alerts = memory_alerts(&sink);
        assert!(alerts.is_empty(), "{} chunks: {alerts:?}", held.len());
    }
    // The fourth: +128, +192 and +256 MiB are all at least 96 MiB above the baseline.
    held.push(chunk());
    sleep(MINUTE).await;
    let peak = rss().unwrap();
    println!(
        "held: rss {:.1} MiB before, {:.1} MiB with {} chunks",
        mib(before),
        mib(peak),
        held.len()
    );
    let alerts = memory_alerts(&sink);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let opened = &alerts[0];
    print("opened", opened);
    assert_eq!(opened.state, AlertState::Opened);
    assert_eq!(&*opened.route, PROCESS_ROUTE);
    let (rss_bytes, baseline, growth) = (
        bytes(opened, "rss_bytes"),
        bytes(opened, "baseline_bytes"),
        bytes(opened, "growth_bytes"),
    );
    assert_eq!(rss_bytes, baseline + growth);
    assert!(growth >= GROWTH);
    // Four chunks measured, give or take 16 MiB of everything else the process did.
    let expected = 4 * CHUNK;
    assert!(
        growth.abs_diff(expected) <= 16 * MIB,
        "growth {:.1} MiB",
        mib(growth)
    );
    assert_eq!(bytes(opened, "window_minutes"), 5);

    // Held one more minute: still open (+256 MiB is above the new baseline, +64, plus 96),
    // nothing sent.
    sleep(MINUTE).await;
    assert_eq!(memory_alerts(&sink).len(), 1);

    // Freed: the next sample is back near the first baseline, under the line. Held, it would
    // still be open (+256 MiB against +128 plus 96): freeing it is what resolves it.
    drop(held);
    let freed = rss().unwrap();
    println!("freed: rss {:.1} MiB", mib(freed));
    assert!(
        peak.saturating_sub(freed) >= 4 * CHUNK - 16 * MIB,
        "the chunks were unmapped"
    );
    sleep(MINUTE).await;
    let alerts = memory_alerts(&sink);
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    let resolved = &alerts[1];
    print("resolved", resolved);
    assert_eq!(resolved.state, AlertState::Resolved);
    assert_eq!(&*resolved.route, PROCESS_ROUTE);
    assert_eq!(resolved.opened_at, opened.at);
    assert!(bytes(resolved, "rss_bytes") < bytes(resolved, "baseline_bytes") + GROWTH);
    assert!(bytes(resolved, "baseline_bytes") < baseline + 16 * MIB);

    // Quiet again for the rest of a window; the reporter counted both alerts.
    sleep(5 * MINUTE).await;
    assert_eq!(memory_alerts(&sink).len(), 2);
    assert_eq!(reporter.stats().alerts, 2);
    drop(reporter);
    guard.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn memory_allocated_and_freed_raises_nothing() {
    let _serial = SERIAL.lock().await;
    let Some(before) = rss() else {
        println!("skipped: this platform does not tell the resident memory");
        return;
    };
    // Health reports on the same minute as the samples: they show what the watch saw.
    let (reporter, guard, sink) = reporter(Some(MINUTE));
    // Four samples first, more than the sustained three: from then on one sample could open
    // the alert if the watch did not ask for three in a row.
    sleep(4 * MINUTE).await;
    half_minute().await;
    // Four chunks at once, held for one sample, then freed.
    let burst: Vec<_> = (0..4).map(|_| chunk()).collect();
    let peak = rss().unwrap();
    println!(
        "burst: rss {:.1} MiB before, {:.1} MiB with {} chunks",
        mib(before),
        mib(peak),
        burst.len()
    );
    sleep(MINUTE).await;
    drop(burst);
    println!("freed: rss {:.1} MiB", mib(rss().unwrap()));
    // The rest of the window and more.
    sleep(6 * MINUTE).await;

    let alerts = memory_alerts(&sink);
    assert!(alerts.is_empty(), "{alerts:?}");
    assert_eq!(reporter.stats().alerts, 0);
    // The worker did see the burst: one minute's health report is 4 chunks above the others.
    let seen: Vec<u64> = health_reports(&sink)
        .iter()
        .map(|h| h.rss_bytes.unwrap())
        .collect();
    println!(
        "health reports: {:?} MiB",
        seen.iter().map(|&b| mib(b).round()).collect::<Vec<_>>()
    );
    assert_eq!(seen.len(), 11);
    let (low, high) = (*seen.iter().min().unwrap(), *seen.iter().max().unwrap());
    assert!(
        high - low >= 4 * CHUNK - 16 * MIB,
        "{:.1} MiB",
        mib(high - low)
    );
    assert_eq!(seen.iter().filter(|&&b| b > low + GROWTH).count(), 1);
    drop(reporter);
    guard.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn health_reports_carry_the_resident_memory() {
    let _serial = SERIAL.lock().await;
    let (reporter, guard, sink) = reporter(Some(Duration::from_secs(10)));
    sleep(Duration::from_secs(11)).await;
    let ours = rss();
    let health = health_reports(&sink);
    assert_eq!(health.len(), 1);
    let theirs = health[0].rss_bytes;
    println!(
        "health report: rss {:?} MiB, read here {:?} MiB",
        theirs.map(mib),
        ours.map(mib)
    );
    if cfg!(any(target_os = "linux", target_os = "macos")) {
        let (theirs, ours) = (theirs.unwrap(), ours.unwrap());
        assert!(theirs > MIB);
        assert!(theirs.abs_diff(ours) < 16 * MIB);
    } else {
        assert_eq!(theirs.is_some(), ours.is_some());
    }
    // In its JSON, a number.
    let json = serde_json::to_value(&health[0]).unwrap();
    assert_eq!(json["rss_bytes"].as_u64(), theirs);
    drop(reporter);
    guard.shutdown(Duration::from_secs(5)).await.unwrap();
}

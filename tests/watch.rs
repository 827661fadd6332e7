//! The watchers, driven through the layer with a paused tokio clock: scripted traffic histories
//! and the exact alerts they must raise.
#![cfg(feature = "axum")]
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::{body::Body, routing::post, Router};
use http::{Request, StatusCode};
use tokio::time::{sleep, sleep_until, Instant};
use tower::ServiceExt;
use webhook_monitor::{
    provider::{AttemptSource, Source},
    report::{MemorySink, Reporter},
    watch::{Alert, AlertKind, AlertState, QuietHours, Watch},
    FieldValue, Policy, ReporterGuard, WebhookMonitorLayer,
};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// Monday 1970-01-05, 09:00 UTC: the simulated wall clock's start.
fn monday_9am() -> SystemTime {
    UNIX_EPOCH + 4 * DAY + 9 * HOUR
}

/// One monitored route on a simulated clock. Start it inside `start_paused` tests.
struct Sim {
    app: Router,
    sink: MemorySink,
    guard: ReporterGuard,
    start: Instant,
}

/// One delivery's script.
#[derive(Default, Clone, Copy)]
struct Send {
    sleep_ms: u64,
    status: Option<u16>,
    attempt: Option<u32>,
    /// Bigger than the body limit, so that it is rejected.
    too_large: bool,
}

impl Sim {
    fn new(policy: Policy) -> Self {
        Self::new_at(policy, monday_9am())
    }

    /// A route whose simulated wall clock starts at `wall`.
    fn new_at(policy: Policy, wall: SystemTime) -> Self {
        let start = Instant::now();
        let sink = MemorySink::new();
        let (reporter, guard) = Reporter::builder()
            .linger(Duration::from_millis(1))
            .clock(move || wall + start.elapsed())
            .spawn(sink.clone());
        let policy = policy
            .max_body_bytes(64)
            .delivery_id(Source::header("x-delivery-id"))
            .attempt(AttemptSource::count(Source::header("x-attempt")));
        let app = Router::new()
            .route("/hook", post(common::scripted))
            .route_layer(WebhookMonitorLayer::new(policy, reporter));
        Self {
            app,
            sink,
            guard,
            start,
        }
    }

    async fn send(&self, s: Send) -> StatusCode {
        let status = self.send_now(s).await;
        // Let the worker take the report (it lingers 1 ms), so that each batch holds one.
        sleep(Duration::from_millis(5)).await;
        status
    }

    /// Sends without waiting for the worker: reports sent in a row share a batch.
    async fn send_now(&self, s: Send) -> StatusCode {
        let mut req = Request::post("/hook");
        if s.sleep_ms > 0 {
            req = req.header("x-sleep-ms", s.sleep_ms);
        }
        if let Some(status) = s.status {
            req = req.header("x-status", status);
        }
        if let Some(attempt) = s.attempt {
            req = req.header("x-attempt", attempt);
        }
        let body = if s.too_large {
            vec![b'x'; 100]
        } else {
            b"{}".to_vec()
        };
        let res = self
            .app
            .clone()
            .oneshot(req.body(Body::from(body)).unwrap());
        res.await.unwrap().status()
    }

    /// Sends `n` deliveries spread evenly over the next minute.
    async fn minute_of(&self, n: u32, s: Send) {
        let end = Instant::now() + MINUTE;
        for i in 0..n {
            self.send(s).await;
            sleep_until(end - MINUTE * (n - i - 1) / n).await;
        }
        sleep_until(end).await;
    }

    /// Sleeps until `at` after the start.
    async fn until(&self, at: Duration) {
        sleep_until(self.start + at).await;
    }

    fn alerts(&self) -> Vec<Alert> {
        self.sink
            .reports()
            .iter()
            .filter_map(|r| r.as_alert().cloned())
            .collect()
    }

    /// The alerts so far, as (kind, state).
    fn sequence(&self) -> Vec<(AlertKind, AlertState)> {
        states(&self.alerts())
    }

    async fn finish(self) -> Vec<Alert> {
        let alerts = self.alerts();
        self.guard.shutdown(Duration::from_secs(5)).await.unwrap();
        alerts
    }
}

/// The alerts as (kind, state).
fn states(alerts: &[Alert]) -> Vec<(AlertKind, AlertState)> {
    alerts.iter().map(|a| (a.kind, a.state)).collect()
}

/// A delivery the handler fails with a 500.
const FAILING: Send = Send {
    sleep_ms: 0,
    status: Some(500),
    attempt: None,
    too_large: false,
};

/// Both failure alerts open, then both resolve.
const FAILED_THEN_RECOVERED: [(AlertKind, AlertState); 4] = [
    (AlertKind::ConsecutiveFailures, AlertState::Opened),
    (AlertKind::FailureRate, AlertState::Opened),
    (AlertKind::ConsecutiveFailures, AlertState::Resolved),
    (AlertKind::FailureRate, AlertState::Resolved),
];

/// When the alert was raised, as time since the simulation started.
fn since_start(alert: &Alert) -> Duration {
    alert.at.duration_since(monday_9am()).unwrap()
}

fn f64_figure(alert: &Alert, name: &str) -> f64 {
    match alert.figure(name) {
        Some(FieldValue::F64(v)) => *v,
        Some(FieldValue::U64(v)) => *v as f64,
        other => panic!("{name}: {other:?}"),
    }
}

use AlertKind::*;
use AlertState::*;

#[tokio::test(start_paused = true)]
async fn a_spike_opens_and_resolves_once_traffic_is_back_to_normal() {
    let sim = Sim::new(Policy::custom("orders"));
    for _ in 0..12 {
        sim.minute_of(10, Send::default()).await;
    }
    assert_eq!(sim.sequence(), []);
    sim.minute_of(100, Send::default()).await;
    assert_eq!(sim.sequence(), [(Spike, Opened)]);
    for _ in 0..3 {
        sim.minute_of(10, Send::default()).await;
    }
    let alerts = sim.finish().await;
    assert_eq!(states(&alerts), [(Spike, Opened), (Spike, Resolved)]);
    let opened = &alerts[0];
    // Opened within the spike minute (minute 12), once the count passed 5 x 10 and the floor.
    assert_eq!(since_start(opened).as_secs() / 60, 12);
    assert_eq!(f64_figure(opened, "per_minute"), 51.0);
    assert_eq!(f64_figure(opened, "trailing_mean"), 10.0);
    // Resolved at the start of minute 14: minute 13 was back to normal.
    assert_eq!(since_start(&alerts[1]).as_secs() / 60, 14);
}

#[tokio::test(start_paused = true)]
async fn a_drop_to_zero_opens_and_a_delivery_resolves_it() {
    let sim = Sim::new(Policy::custom("orders"));
    for _ in 0..12 {
        sim.minute_of(10, Send::default()).await;
    }
    // Minute 12 is empty; the tick at minute 13 sees a full empty minute and an empty current.
    sim.until(15 * MINUTE + Duration::from_secs(30)).await;
    assert_eq!(sim.sequence(), [(Drop, Opened)]);
    sim.send(Send::default()).await;
    let alerts = sim.finish().await;
    assert_eq!(states(&alerts), [(Drop, Opened), (Drop, Resolved)]);
    assert_eq!(since_start(&alerts[0]), 13 * MINUTE);
    assert_eq!(f64_figure(&alerts[0], "trailing_mean"), 10.0);
}

#[tokio::test(start_paused = true)]
async fn a_quiet_route_alone_raises_no_drop() {
    // Five a minute is the default floor for a drop: no alert for a route that quiet.
    let sim = Sim::new(Policy::custom("orders"));
    for _ in 0..12 {
        sim.minute_of(5, Send::default()).await;
    }
    sim.until(20 * MINUTE).await;
    assert_eq!(sim.finish().await.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn silence_is_caught_in_working_hours_and_not_at_night_or_on_weekends() {
    let policy = Policy::custom("orders")
        .expect_at_least(1, HOUR)
        .quiet_hours(QuietHours::daily(18, 9).and_weekends());
    let sim = Sim::new(policy);
    // A week from Monday 09:00: hourly deliveries from 09:00 to 17:00 on weekdays, except
    // Wednesday 12:00 to 14:00, when none come.
    for day in 0..5u32 {
        for hour in 0..9u32 {
            if day == 2 && (3..6).contains(&hour) {
                continue;
            }
            sim.until(day * DAY + hour * HOUR).await;
            sim.send(Send::default()).await;
        }
    }
    sim.until(7 * DAY + 2 * HOUR).await; // Monday 11:00, a week later: nothing since Friday
    let alerts = sim.finish().await;
    let minutes = |d: Duration| d.as_secs() / 60;
    let seen: Vec<_> = alerts
        .iter()
        .map(|a| (a.kind, a.state, minutes(since_start(a))))
        .collect();
    // Nights (17:00 to 09:00) and the weekend are quiet. Wednesday's gap opens at the first
    // tick past an hour (12:01) and resolves with the 15:00 delivery. On Monday the hour is
    // counted from the end of the quiet time, 09:00: it opens at 10:00.
    let wednesday = 2 * DAY;
    assert_eq!(
        seen,
        [
            (Silence, Opened, minutes(wednesday + 3 * HOUR + MINUTE)),
            (Silence, Resolved, minutes(wednesday + 6 * HOUR)),
            (Silence, Opened, minutes(7 * DAY + HOUR)),
        ]
    );
    assert_eq!(f64_figure(&alerts[0], "expected_interval_s"), 3600.0);
    assert_eq!(f64_figure(&alerts[0], "silent_for_s"), 3659.0);
}

#[cfg(feature = "tz")]
#[tokio::test(start_paused = true)]
async fn silence_waits_for_the_end_of_local_quiet_hours_across_a_dst_change() {
    // Saturday 2026-03-28, 20:30 UTC (21:30 CET): 2026-01-01 is day 20_454 since 1970-01-01
    // (56 years of 365 days and 14 leap days), and March 28 is day 31 + 28 + 27 = 86 of 2026.
    let wall_start = UNIX_EPOCH + (20_454 + 86) * DAY + 20 * HOUR + 30 * MINUTE;
    let policy = Policy::custom("orders")
        .expect_at_least(1, HOUR)
        .quiet_hours(QuietHours::daily(22, 7).time_zone("Europe/Berlin").unwrap());
    let sim = Sim::new_at(policy, wall_start);
    sim.send(Send::default()).await;
    // Quiet from 22:00 CET (21:00 UTC, 30 minutes in). At 01:00 UTC the clocks go forward to
    // summer time (UTC+2), so quiet hours end at 07:00 CEST, 05:00 UTC (8 h 30 in), and the
    // hour of silence is counted from there: it opens at 06:00 UTC (9 h 30 in). At a fixed
    // UTC+1, quiet hours would end an hour later and the alert would open at 10 h 30.
    sim.until(9 * HOUR + 29 * MINUTE).await;
    assert_eq!(sim.sequence(), []);
    sim.until(11 * HOUR).await;
    sim.send(Send::default()).await;
    let alerts = sim.finish().await;
    let minutes = |a: &Alert| a.at.duration_since(wall_start).unwrap().as_secs() / 60;
    let seen: Vec<_> = alerts
        .iter()
        .map(|a| (a.kind, a.state, minutes(a)))
        .collect();
    assert_eq!(
        seen,
        [(Silence, Opened, 9 * 60 + 30), (Silence, Resolved, 11 * 60)]
    );
}

#[tokio::test(start_paused = true)]
async fn deliveries_that_all_get_rejected_raise_an_alert() {
    let sim = Sim::new(Policy::custom("orders"));
    let rejected = Send {
        too_large: true,
        ..Send::default()
    };
    for i in 0..4 {
        assert_eq!(
            sim.send(rejected).await,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{i}"
        );
    }
    assert_eq!(sim.sequence(), []);
    sim.send(rejected).await;
    assert_eq!(sim.sequence(), [(AllRejected, Opened)]);
    for _ in 0..5 {
        sim.send(rejected).await;
    }
    sim.send(Send::default()).await;
    let alerts = sim.finish().await;
    assert_eq!(
        states(&alerts),
        [(AllRejected, Opened), (AllRejected, Resolved)]
    );
    assert_eq!(f64_figure(&alerts[0], "rejected"), 5.0);
    assert_eq!(f64_figure(&alerts[1], "rejected"), 10.0);
    assert_eq!(f64_figure(&alerts[1], "deliveries"), 11.0);
}

#[tokio::test(start_paused = true)]
async fn a_retry_storm_opens_and_resolves_once_the_window_is_clear() {
    let sim = Sim::new(Policy::custom("orders"));
    let retry = Send {
        attempt: Some(7), // past the default 5 attempts: flagged many_attempts
        ..Send::default()
    };
    sim.minute_of(9, retry).await;
    sim.minute_of(5, Send::default()).await;
    assert_eq!(sim.sequence(), []);
    sim.minute_of(3, retry).await;
    assert_eq!(sim.sequence(), [(RetryStorm, Opened)]);
    // The window is 10 minutes: the storm clears once the first minute's retries leave it.
    sim.until(20 * MINUTE).await;
    let alerts = sim.finish().await;
    assert_eq!(
        states(&alerts),
        [(RetryStorm, Opened), (RetryStorm, Resolved)]
    );
    assert_eq!(f64_figure(&alerts[0], "retried"), 10.0);
    assert_eq!(since_start(&alerts[1]), 10 * MINUTE);
    assert_eq!(f64_figure(&alerts[1], "retried"), 3.0);
}

#[tokio::test(start_paused = true)]
async fn failures_open_alerts_and_recovery_resolves_them() {
    let sim = Sim::new(Policy::custom("orders"));
    for _ in 0..4 {
        sim.send(FAILING).await;
    }
    assert_eq!(sim.sequence(), []);
    sim.send(FAILING).await;
    assert_eq!(sim.sequence(), [(ConsecutiveFailures, Opened)]);
    for _ in 0..5 {
        sim.send(FAILING).await;
    }
    assert_eq!(
        sim.sequence(),
        [(ConsecutiveFailures, Opened), (FailureRate, Opened)]
    );
    // One success ends the run of failures; the rate (10 of 11) stays up.
    sim.send(Send::default()).await;
    assert_eq!(sim.sequence().len(), 3);
    // Ten more: 10 failed of 21 handled is under half.
    for _ in 0..10 {
        sim.send(Send::default()).await;
    }
    let alerts = sim.finish().await;
    assert_eq!(states(&alerts), FAILED_THEN_RECOVERED);
    assert_eq!(f64_figure(&alerts[1], "failure_rate"), 1.0);
    assert_eq!(f64_figure(&alerts[1], "handled"), 10.0);
    assert_eq!(f64_figure(&alerts[3], "failed"), 10.0);
    assert_eq!(f64_figure(&alerts[3], "handled"), 21.0);
    assert_eq!(alerts[3].opened_at, alerts[1].at);
}

#[tokio::test(start_paused = true)]
async fn a_run_of_failures_inside_one_batch_still_opens_an_alert() {
    let sim = Sim::new(Policy::custom("orders"));
    // Five failures then a success, all in one batch: the run ended before the evaluation.
    for _ in 0..5 {
        sim.send_now(FAILING).await;
    }
    sim.send(Send::default()).await;
    assert_eq!(sim.sequence(), [(ConsecutiveFailures, Opened)]);
    assert_eq!(f64_figure(&sim.alerts()[0], "consecutive_failures"), 5.0);
    // The next evaluation (a batch, or the minute's tick) sees the run is over.
    sim.send(Send::default()).await;
    let alerts = sim.finish().await;
    assert_eq!(
        states(&alerts),
        [
            (ConsecutiveFailures, Opened),
            (ConsecutiveFailures, Resolved)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failure_rate_does_not_clear_because_traffic_stopped() {
    let sim = Sim::new(Policy::custom("orders"));
    for _ in 0..10 {
        sim.send(FAILING).await;
    }
    // The window empties: no verdict without deliveries, so both alerts stay open.
    sim.until(12 * MINUTE).await;
    assert_eq!(
        sim.sequence(),
        [(ConsecutiveFailures, Opened), (FailureRate, Opened)]
    );
    // A success ends the run, but 1 handled delivery is too few for a rate: held until 10.
    for _ in 0..9 {
        sim.send(Send::default()).await;
    }
    assert_eq!(sim.sequence().len(), 3);
    sim.send(Send::default()).await;
    let alerts = sim.finish().await;
    assert_eq!(states(&alerts), FAILED_THEN_RECOVERED);
    assert_eq!(f64_figure(&alerts[3], "failed"), 0.0);
    assert_eq!(f64_figure(&alerts[3], "handled"), 10.0);
}

#[tokio::test(start_paused = true)]
async fn a_resolved_alert_waits_for_the_cooldown_before_it_opens_again() {
    let sim = Sim::new(Policy::custom("orders").watch(|w| w.consecutive_failures(2)));
    for _ in 0..2 {
        sim.send(FAILING).await;
    }
    sim.send(Send::default()).await;
    for _ in 0..2 {
        sim.send(FAILING).await;
    }
    // Flapping within the 5-minute cooldown: still resolved.
    assert_eq!(
        sim.sequence(),
        [
            (ConsecutiveFailures, Opened),
            (ConsecutiveFailures, Resolved)
        ]
    );
    // The condition still holds after the cooldown: the next evaluation opens it again.
    sim.until(6 * MINUTE + Duration::from_secs(30)).await;
    let alerts = sim.finish().await;
    assert_eq!(alerts.len(), 3);
    assert_eq!(
        (alerts[2].kind, alerts[2].state),
        (ConsecutiveFailures, Opened)
    );
    assert_eq!(since_start(&alerts[2]), 6 * MINUTE);
}

/// One delivery every 2 minutes for `days`, with the handler taking `latency(t)`.
async fn latency_history(sim: &Sim, days: u32, latency: impl Fn(Duration) -> Duration) {
    let every = 2 * MINUTE;
    let mut at = Duration::ZERO;
    while at < days * DAY {
        sim.until(at).await;
        let ms = latency(at).as_millis() as u64;
        sim.send(Send {
            sleep_ms: ms,
            ..Send::default()
        })
        .await;
        at += every;
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_creep_over_four_weeks_is_caught_as_a_degradation_long_before_timeouts() {
    let policy = Policy::custom("orders").timeout_budget(Duration::from_secs(10));
    let sim = Sim::new(policy);
    // p95 creeps linearly from 150 ms to 800 ms over 28 days.
    let creep = |t: Duration| {
        let share = t.as_secs_f64() / (28 * DAY).as_secs_f64();
        Duration::from_secs_f64(0.150 + 0.650 * share)
    };
    latency_history(&sim, 28, creep).await;
    let alerts = sim.finish().await;
    assert_eq!(states(&alerts), [(LatencyDegraded, Opened)]);
    let opened = &alerts[0];
    // The baseline is day 0's p95 (~169 ms, within the sketch's 1 %); twice that is reached
    // after about 8.2 days, at ~338 ms: far below the 10 s budget.
    let baseline = f64_figure(opened, "baseline_p95_ms");
    assert!((167.0..=172.0).contains(&baseline), "{baseline}");
    let p95 = f64_figure(opened, "p95_ms");
    assert!(p95 > 2.0 * baseline && p95 < 2.1 * baseline, "{p95}");
    let day = since_start(opened).as_secs_f64() / 86_400.0;
    assert!((8.0..8.6).contains(&day), "{day}");
}

#[tokio::test(start_paused = true)]
async fn a_p95_near_the_timeout_budget_opens_and_resolves() {
    let policy = Policy::custom("orders").timeout_budget(Duration::from_secs(1));
    let sim = Sim::new(policy);
    // Three hours: 200 ms, then 850 ms (85 % of the budget), then 200 ms again.
    latency_history(&sim, 1, |t| {
        Duration::from_millis(if t >= HOUR && t < 2 * HOUR { 850 } else { 200 })
    })
    .await;
    let alerts = sim.finish().await;
    assert_eq!(
        states(&alerts),
        [(NearTimeout, Opened), (NearTimeout, Resolved)]
    );
    // Evaluated when the hour closes.
    assert_eq!(since_start(&alerts[0]), 2 * HOUR);
    assert_eq!(since_start(&alerts[1]), 3 * HOUR);
    let p95 = f64_figure(&alerts[0], "p95_ms");
    assert!((841.0..=859.0).contains(&p95), "{p95}");
    assert_eq!(f64_figure(&alerts[0], "budget_ms"), 1000.0);
    assert_eq!(f64_figure(&alerts[0], "samples"), 30.0);
}

#[tokio::test(start_paused = true)]
async fn a_route_with_watchers_off_raises_nothing() {
    let sim = Sim::new(Policy::custom("orders").watch(|_| Watch::off()));
    for _ in 0..10 {
        sim.send(FAILING).await;
    }
    assert_eq!(sim.finish().await.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn interleaved_routes_in_one_batch_are_watched_apart() {
    let sink = MemorySink::new();
    let (reporter, guard) = Reporter::builder()
        .linger(Duration::from_millis(1))
        .spawn(sink.clone());
    let app = Router::new()
        .route(
            "/orders",
            post(common::scripted).layer(WebhookMonitorLayer::new(
                Policy::custom("orders"),
                reporter.clone(),
            )),
        )
        .route(
            "/refunds",
            post(common::scripted).layer(WebhookMonitorLayer::new(
                Policy::custom("refunds"),
                reporter,
            )),
        );
    let send = |path: &'static str, status: u16| {
        let req = Request::post(path)
            .header("x-status", status)
            .body(Body::from("{}"))
            .unwrap();
        app.clone().oneshot(req)
    };
    // One batch: each failure on one route sits between successes on the other, so a route
    // that took the other's reports would never see a run of five failures.
    for _ in 0..5 {
        send("/orders", 500).await.unwrap();
        send("/refunds", 200).await.unwrap();
        send("/refunds", 200).await.unwrap();
    }
    sleep(Duration::from_millis(5)).await;
    let alerts: Vec<Alert> = sink
        .reports()
        .iter()
        .filter_map(|r| r.as_alert().cloned())
        .collect();
    assert_eq!(states(&alerts), [(ConsecutiveFailures, Opened)]);
    assert_eq!(&*alerts[0].route, "orders");
    assert_eq!(f64_figure(&alerts[0], "consecutive_failures"), 5.0);
    guard.shutdown(Duration::from_secs(5)).await.unwrap();
}

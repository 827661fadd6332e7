//! `MemoryHistory` fed by a real layer and reporter on a paused tokio clock: its rollups, its
//! bounds, the alerts and health it keeps, exactly.
#![cfg(feature = "axum")]
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{body::Body, routing::post, Router};
use http::{Request, StatusCode};
use tokio::time::{sleep, Instant};
use tower::ServiceExt;
use webhook_monitor::{
    dedupe::MemoryStore,
    history::{DeliveryFilter, History, LatencyHistogram, MemoryHistory, Minute},
    provider::{AttemptSource, Source},
    report::{Fanout, MemorySink, Reporter},
    watch::{AlertKind, Watch},
    Policy, ReporterGuard, WebhookMonitorLayer,
};

const MINUTE: Duration = Duration::from_secs(60);

/// 2026-12-01 10:00:00 UTC: the simulated wall clock's start, on a minute.
fn start_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_764_583_200)
}

/// A route named `orders` with a 10 s budget, reporting into a `MemoryHistory`, on a simulated
/// clock. Start it inside `start_paused` tests.
struct Sim {
    app: Router,
    history: MemoryHistory,
    guard: ReporterGuard,
}

/// One delivery's script.
#[derive(Clone, Copy)]
struct Send<'a> {
    id: &'a str,
    event: &'a str,
    sleep_ms: u64,
    status: u16,
    attempt: u32,
}

impl Default for Send<'_> {
    fn default() -> Self {
        Self {
            id: "",
            event: "order.created",
            sleep_ms: 0,
            status: 200,
            attempt: 1,
        }
    }
}

impl Sim {
    fn new(history: MemoryHistory, watch: Watch) -> Self {
        let start = Instant::now();
        let clock = move || start_time() + start.elapsed();
        let (reporter, guard) = Reporter::builder()
            .linger(Duration::from_millis(1))
            .health_interval(Some(Duration::from_secs(30)))
            .clock(clock)
            .spawn(history.clone());
        let policy = Policy::custom("orders")
            .clock(clock)
            .timeout_budget(Duration::from_secs(10))
            .watch(|_| watch)
            .dedupe(MemoryStore::new())
            .delivery_id(Source::header("x-delivery-id"))
            .event_type(Source::header("x-event"))
            .attempt(AttemptSource::count(Source::header("x-attempt")));
        let app = Router::new()
            .route("/hook", post(common::scripted))
            .route_layer(WebhookMonitorLayer::new(policy, reporter));
        Self {
            app,
            history,
            guard,
        }
    }

    async fn send(&self, s: Send<'_>) -> StatusCode {
        let mut req = Request::post("/hook")
            .header("x-sleep-ms", s.sleep_ms)
            .header("x-status", s.status)
            .header("x-attempt", s.attempt)
            .header("x-event", s.event);
        if !s.id.is_empty() {
            req = req.header("x-delivery-id", s.id);
        }
        let res = self
            .app
            .clone()
            .oneshot(req.body(Body::from("{}")).unwrap());
        let status = res.await.unwrap().status();
        // Let the worker take the report (it lingers 1 ms).
        sleep(Duration::from_millis(5)).await;
        status
    }
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

#[tokio::test(start_paused = true)]
async fn rollups_count_each_minute_by_outcome_flag_and_latency() {
    let sim = Sim::new(MemoryHistory::new(), Watch::off());
    // Minute 0: 4 successes of 100, 200, 300 and 9,000 ms (near the 10 s budget), one 500.
    for (i, sleep_ms) in [100, 200, 300, 9_000].into_iter().enumerate() {
        let id = format!("a{i}");
        let s = Send {
            id: &id,
            sleep_ms,
            ..Send::default()
        };
        assert_eq!(sim.send(s).await, StatusCode::OK);
    }
    let failed = Send {
        id: "f1",
        status: 500,
        sleep_ms: 50,
        ..Send::default()
    };
    sim.send(failed).await;
    // Minute 1 (after 60 s): the failure retried (attempt 2, seen before), succeeds past the
    // budget (late), then a copy of a processed delivery (duplicate).
    sleep(MINUTE).await;
    let retry = Send {
        id: "f1",
        attempt: 2,
        sleep_ms: 11_000,
        ..Send::default()
    };
    sim.send(retry).await;
    let copy = Send {
        id: "a0",
        ..Send::default()
    };
    sim.send(copy).await;

    let history = &sim.history;
    let minutes = history.minutes("orders", start_time()).await.unwrap();
    assert_eq!(minutes.len(), 2, "{minutes:#?}");
    let (first, second) = (&minutes[0], &minutes[1]);
    assert_eq!(first.start, start_time());
    assert_eq!(second.start, start_time() + MINUTE);
    let counts = |m: &Minute| {
        m.outcomes
            .named()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect::<Vec<_>>()
    };
    assert_eq!(counts(first), [("success", 4), ("failure", 1)]);
    assert_eq!(counts(second), [("late", 1), ("duplicate", 1)]);
    assert_eq!(first.flags.near_timeout, 1);
    assert_eq!(second.flags.over_budget, 1);
    // The second attempt is a retry; the duplicate is counted as one, not as a retry.
    assert_eq!((first.retries, second.retries), (0, 1));
    // Handled deliveries only: the duplicate never reached the handler.
    assert_eq!(first.latency.count(), 5);
    assert_eq!(second.latency.count(), 1);
    let median = first.latency.quantile(0.5).unwrap();
    assert_eq!(
        LatencyHistogram::bucket(median.as_micros() as u64),
        LatencyHistogram::bucket(200_000)
    );
    let p95 = first.latency.quantile(0.95).unwrap();
    assert!(ms(p95).abs_diff(9_000) <= 9_000 / 16, "p95 {p95:?}");
    assert_eq!(first.outcomes.success_rate(), Some(0.8));
    assert_eq!(
        second.outcomes.success_rate(),
        Some(0.0),
        "a duplicate is not judged"
    );

    // `since` starts at the minute that holds it.
    let later = history
        .minutes("orders", start_time() + MINUTE + Duration::from_secs(59))
        .await;
    assert_eq!(later.unwrap().len(), 1);
    assert!(history
        .minutes("unknown", start_time())
        .await
        .unwrap()
        .is_empty());

    // The route: registered by the layer with its budget, provider from its deliveries.
    let routes = history.routes().await.unwrap();
    assert_eq!(routes.len(), 1);
    let route = &routes[0];
    assert_eq!(&*route.name, "orders");
    assert_eq!(route.budget, Some(Duration::from_secs(10)));
    // The copy was received at the end of the second minute's sends.
    let last = route.last_delivery.unwrap();
    assert!(
        last > start_time() + MINUTE + Duration::from_secs(11) && last < start_time() + 2 * MINUTE
    );
    sim.guard.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_route_is_known_before_its_first_delivery() {
    let sim = Sim::new(MemoryHistory::new(), Watch::off());
    // The worker hands registrations over before its next batch: a health report is one.
    sleep(Duration::from_secs(31)).await;
    let routes = sim.history.routes().await.unwrap();
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].budget, Some(Duration::from_secs(10)));
    assert_eq!(routes[0].last_delivery, None);
    let health = sim
        .history
        .health()
        .await
        .unwrap()
        .expect("a health report after 30 s");
    assert_eq!(health.at, start_time() + Duration::from_secs(30));
    sim.guard.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn deliveries_are_bounded_and_filtered() {
    let history = MemoryHistory::builder().deliveries_per_route(5).build();
    let sim = Sim::new(history, Watch::off());
    let ids = ["d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7"];
    for (i, id) in ids.iter().enumerate() {
        let status = if i % 2 == 0 { 200 } else { 500 };
        let event = if i < 6 { "order.created" } else { "order.paid" };
        sim.send(Send {
            id,
            status,
            event,
            ..Send::default()
        })
        .await;
    }
    let history = &sim.history;
    let all = history
        .deliveries("orders", &DeliveryFilter::new())
        .await
        .unwrap();
    let kept: Vec<_> = all
        .iter()
        .map(|r| (r.id, r.report.delivery.id().unwrap()))
        .collect();
    assert_eq!(
        kept,
        [(7, "d7"), (6, "d6"), (5, "d5"), (4, "d4"), (3, "d3")],
        "newest first"
    );
    assert!(
        history.delivery("orders", 2).await.unwrap().is_none(),
        "no longer kept"
    );
    assert!(
        history.delivery("orders", 8).await.unwrap().is_none(),
        "not yet"
    );
    let d4 = history.delivery("orders", 4).await.unwrap().unwrap();
    assert_eq!(d4.report.delivery.id(), Some("d4"));

    let ids_of = |filter: DeliveryFilter| async move {
        let found = history.deliveries("orders", &filter).await.unwrap();
        found.iter().map(|r| r.id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids_of(DeliveryFilter::new().outcome("failure")).await,
        [7, 5, 3]
    );
    assert_eq!(
        ids_of(DeliveryFilter::new().event_type("order.paid")).await,
        [7, 6]
    );
    assert_eq!(ids_of(DeliveryFilter::new().delivery_id("d5")).await, [5]);
    assert_eq!(ids_of(DeliveryFilter::new().before(5).limit(1)).await, [4]);
    let both = DeliveryFilter::new()
        .outcome("success")
        .event_type("order.created");
    assert_eq!(ids_of(both).await, [4]);
    assert!(ids_of(DeliveryFilter::new().outcome("late"))
        .await
        .is_empty());
    // The rollups count every delivery, kept or not.
    let minutes = history.minutes("orders", start_time()).await.unwrap();
    assert_eq!(minutes[0].deliveries(), 8);
    sim.guard.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn minutes_are_bounded_by_the_retention() {
    let history = MemoryHistory::builder()
        .retention(10 * MINUTE)
        .deliveries_per_route(0)
        .build();
    let sim = Sim::new(history, Watch::off());
    // One delivery in each of 15 minutes.
    for i in 0..15 {
        let id = format!("m{i}");
        sim.send(Send {
            id: &id,
            ..Send::default()
        })
        .await;
        sleep(MINUTE - Duration::from_millis(5)).await;
    }
    let minutes = sim.history.minutes("orders", UNIX_EPOCH).await.unwrap();
    let starts: Vec<u64> = minutes
        .iter()
        .map(|m| m.start.duration_since(start_time()).unwrap().as_secs() / 60)
        .collect();
    assert_eq!(
        starts,
        (5..15).collect::<Vec<_>>(),
        "the 10 minutes up to the newest"
    );
    assert!(minutes.iter().all(|m| m.deliveries() == 1));
    assert!(sim
        .history
        .deliveries("orders", &DeliveryFilter::new())
        .await
        .unwrap()
        .is_empty());
    sim.guard.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn alerts_move_from_open_to_resolved() {
    let history = MemoryHistory::builder().resolved_alerts(1).build();
    let watch = Watch::default()
        .consecutive_failures(3)
        .cooldown(Duration::ZERO);
    let sim = Sim::new(history, watch);
    let history = &sim.history;
    for round in 0..2 {
        for i in 0..3 {
            let id = format!("r{round}-{i}");
            sim.send(Send {
                id: &id,
                status: 500,
                ..Send::default()
            })
            .await;
        }
        let log = history.alerts().await.unwrap();
        assert_eq!(log.open.len(), 1, "round {round}: {log:#?}");
        assert_eq!(log.open[0].kind, AlertKind::ConsecutiveFailures);
        assert_eq!(&*log.open[0].route, "orders");
        let id = format!("ok{round}");
        sim.send(Send {
            id: &id,
            ..Send::default()
        })
        .await;
        let log = history.alerts().await.unwrap();
        assert!(log.open.is_empty(), "round {round}: {log:#?}");
        assert_eq!(log.resolved.len(), 1, "one resolved alert kept");
    }
    sim.guard.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_shared_history_reads_what_the_reporter_writes() {
    let history = Arc::new(MemoryHistory::new());
    let (reporter, guard) = Reporter::builder()
        .linger(Duration::ZERO)
        .spawn(Arc::clone(&history));
    let app = Router::new()
        .route("/hook", post(common::scripted))
        .route_layer(WebhookMonitorLayer::new(Policy::custom("shared"), reporter));
    let req = Request::post("/hook").body(Body::from("{}")).unwrap();
    assert_eq!(app.oneshot(req).await.unwrap().status(), StatusCode::OK);
    guard.shutdown(Duration::from_secs(5)).await.unwrap();
    let recorded = History::deliveries(&history, "shared", &DeliveryFilter::new())
        .await
        .unwrap();
    assert_eq!(recorded.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_history_behind_a_fanout_learns_the_routes() {
    let history = MemoryHistory::new();
    let fanout = Fanout::new()
        .sink("memory", MemorySink::new())
        .sink("history", history.clone());
    let (reporter, guard) = Reporter::spawn(fanout);
    let policy = Policy::custom("budgeted").timeout_budget(Duration::from_secs(7));
    let app = Router::new()
        .route("/hook", post(common::scripted))
        .route_layer(WebhookMonitorLayer::new(policy, reporter));
    let req = Request::post("/hook").body(Body::from("{}")).unwrap();
    assert_eq!(app.oneshot(req).await.unwrap().status(), StatusCode::OK);
    guard.shutdown(Duration::from_secs(5)).await.unwrap();
    let routes = history.routes().await.unwrap();
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].budget, Some(Duration::from_secs(7)));
    assert!(routes[0].last_delivery.is_some());
}

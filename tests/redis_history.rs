//! `RedisHistory` read back as a `History`: three instances (`web-1`, `web-2`, `web-3`) write
//! real reports through `Sink::send`, a fourth (`reader`) reads the fleet's history, and a
//! `MemoryHistory` fed the same batches says what it must read: the same minutes, to the count
//! (latency histograms included), the same deliveries in the same order under every filter,
//! and the routes, alerts, health and instances. Once on one Redis (`REDIS_URL`) and once on a
//! Redis Cluster (`REDIS_CLUSTER_URLS`), where a pipeline across hash slots would fail with
//! `CROSSSLOT`. Each test writes under its own key prefix.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    sync::atomic::Ordering,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use common::redis::Backend;
use serde_json::json;
use webhook_monitor::{
    history::{DeliveryFilter, History, HistoryError, MemoryHistory, RedisHistory},
    report::{RouteInfo, Sink},
    Report,
};

const MINUTE: Duration = Duration::from_secs(60);

/// A key prefix no other test (or run) uses.
fn prefix(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "webhook-monitor-test:history:{test}:{}:{nanos}:",
        std::process::id()
    )
}

/// A history on `backend` under `prefix`, as instance `instance`; `None` (and why) without
/// the backend.
async fn history(backend: Backend, prefix: &str, instance: &str) -> Option<RedisHistory> {
    let urls = backend.urls()?;
    let builder = RedisHistory::builder()
        .key_prefix(prefix)
        .instance(instance)
        .deliveries_per_route(1000);
    let history = match backend {
        Backend::Node => builder.connect(&urls[0]).await,
        Backend::Cluster => builder.connect_cluster(&urls).await,
    };
    Some(history.unwrap_or_else(|e| panic!("{backend:?} at {urls:?}: {e}")))
}

/// Sets `key` to `value` on `backend`, by hand.
async fn set(backend: Backend, key: &str, value: &str) {
    let urls = backend.urls().unwrap();
    let mut command = redis::cmd("SET");
    command.arg(key).arg(value);
    match backend {
        Backend::Node => {
            let client = redis::Client::open(urls[0].as_str()).unwrap();
            let mut c = client.get_multiplexed_async_connection().await.unwrap();
            command.query_async::<()>(&mut c).await.unwrap();
        }
        Backend::Cluster => {
            let client = redis::cluster::ClusterClient::new(urls).unwrap();
            let mut c = client.get_async_connection().await.unwrap();
            command.query_async::<()>(&mut c).await.unwrap();
        }
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string()
}

/// The start of the minute 10 minutes ago: the deliveries are received over the 4 minutes
/// after it.
fn base() -> SystemTime {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(secs - secs % 60) - MINUTE * 10
}

/// Delivery `n` of `route`, received at `at`: outcomes, event types, attempts, latencies and
/// flags vary with `n`.
fn delivery(route: &str, n: u32, at: SystemTime) -> Report {
    let (outcome, detail, status) = match n % 5 {
        0 | 1 => ("success", None, Some(200)),
        2 => ("failure", Some("server_error"), Some(500)),
        3 => ("rejected", Some("bad_signature"), Some(401)),
        _ => ("duplicate", None, Some(200)),
    };
    let total_us = 1_000 + u64::from(n) * 7_919;
    let event_type = ["order.created", "order.paid"][n as usize % 2];
    let line = json!({
        "type": "delivery", "route": route,
        "provider": if route == "payments" { "stripe" } else { "shop" },
        "delivery_id": format!("d-{}", n / 2), "event_type": event_type,
        "attempt": n % 2 + 1, "signature": "verified", "secret_index": 0, "status": status,
        "outcome": outcome, "outcome_detail": detail, "reason": null, "payload_check": null,
        "received_at": rfc3339(at), "body_read_us": 40, "handler_us": total_us - 100,
        "total_us": total_us, "body_bytes": 512, "fingerprint": null, "times_seen": null,
        "first_seen": null, "mean_retry_interval_ms": null, "lag_ms": 1500,
        "flags": if n % 7 == 0 { json!(["near_timeout"]) } else { json!([]) },
        "fields": {"n": n},
    });
    serde_json::from_value(line).unwrap()
}

fn alert(kind: &str, route: &str, state: &str, opened: SystemTime, at: SystemTime) -> Report {
    serde_json::from_value(json!({
        "type": "alert", "kind": kind, "route": route, "severity": "critical", "state": state,
        "opened_at": humantime::format_rfc3339_seconds(opened).to_string(),
        "at": humantime::format_rfc3339_seconds(at).to_string(),
        "figures": {"failure_rate": 0.5},
    }))
    .unwrap()
}

fn health(enqueued: u64, queue_depth: u64) -> Report {
    serde_json::from_value(json!({
        "type": "health", "at": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        "enqueued": enqueued, "dropped_full": 0, "dropped_closed": 0, "sent": enqueued - 1,
        "failed": 1, "batches": 9, "alerts": 2, "sink_panics": 0, "watcher_panics": 0,
        "queue_depth": queue_depth, "rss_bytes": 50 << 20, "sinks": [],
    }))
    .unwrap()
}

/// A report's JSON: reports compare by it.
fn json_of(r: &webhook_monitor::history::Recorded) -> String {
    serde_json::to_string(&r.report).unwrap()
}

/// Three instances write, the reader reads what a `MemoryHistory` fed the same batches holds.
async fn three_instances_one_reader(backend: Backend) {
    let prefix = prefix(&format!("fleet-{backend:?}"));
    let Some(reader) = history(backend, &prefix, "reader").await else {
        return;
    };
    let mut writers = Vec::new();
    for id in ["web-1", "web-2", "web-3"] {
        writers.push(history(backend, &prefix, id).await.unwrap());
    }
    let memory = MemoryHistory::new();
    let base = base();
    let routes = [
        RouteInfo::new("orders", Some(Duration::from_secs(10))),
        RouteInfo::new("refunds", Some(Duration::from_secs(2))),
    ];
    writers[0].register_routes(&routes);
    memory.register_routes(&routes);
    // Each instance writes its own deliveries of both routes, over the same 4 minutes, in two
    // batches; the second instance has the latest delivery.
    let mut n = 0;
    for round in 0..2 {
        for (i, writer) in writers.iter().enumerate() {
            let mut batch = Vec::new();
            for _ in 0..30 {
                let at =
                    base + MINUTE * (n % 4) + Duration::from_millis(u64::from(n) * 997 % 60_000);
                batch.push(delivery(
                    if n % 3 == 0 { "payments" } else { "orders" },
                    n,
                    at,
                ));
                n += 1;
            }
            if round == 1 && i == 1 {
                batch.push(delivery(
                    "orders",
                    n,
                    base + MINUTE * 5 + Duration::from_micros(123_456_789),
                ));
                n += 1;
            }
            batch.push(health(100 + i as u64, i as u64));
            writer.send(&batch).await.unwrap();
            memory.send(&batch).await.unwrap();
        }
    }

    // Minutes: every instance's counts, added.
    for route in ["orders", "payments"] {
        let read = reader.minutes(route, base).await.unwrap();
        let expected = memory.minutes(route, base).await.unwrap();
        assert_eq!(read, expected, "{route}");
        assert_eq!(read.len(), if route == "orders" { 5 } else { 4 });
        let total: u64 = read.iter().map(|m| m.deliveries()).sum();
        let latencies: u64 = read.iter().map(|m| m.latency.count()).sum();
        let handled: u64 = read
            .iter()
            .map(|m| u64::from(m.outcomes.success + m.outcomes.failure))
            .sum();
        assert_eq!(latencies, handled, "{route}: handled deliveries' latencies");
        assert!(read
            .iter()
            .any(|m| m.retries > 0 && m.flags.near_timeout > 0));
        if route == "payments" {
            assert_eq!(total, 60);
        }
    }
    let orders: u64 = reader
        .minutes("orders", UNIX_EPOCH)
        .await
        .unwrap()
        .iter()
        .map(|m| m.deliveries())
        .sum();
    assert_eq!(orders, 121, "since the epoch: back to the retention");
    let later = reader.minutes("orders", base + MINUTE * 4).await.unwrap();
    assert_eq!(later.len(), 1, "from the minute holding `since`");
    assert!(reader.minutes("nope", base).await.unwrap().is_empty());

    // Routes: in name order, provider and budget, the latest delivery of any instance (to the ms).
    let read = reader.routes().await.unwrap();
    let names: Vec<&str> = read.iter().map(|r| &*r.name).collect();
    assert_eq!(names, ["orders", "payments", "refunds"]);
    assert_eq!(read[0].provider.as_deref(), Some("shop"));
    assert_eq!(read[0].budget, Some(Duration::from_secs(10)));
    assert_eq!(
        read[0].last_delivery,
        Some(base + MINUTE * 5 + Duration::from_millis(123_456))
    );
    assert_eq!(read[1].provider.as_deref(), Some("stripe"));
    assert_eq!(read[1].budget, None);
    assert_eq!(read[2].budget, Some(Duration::from_secs(2)));
    assert_eq!(
        (read[2].provider.as_deref(), read[2].last_delivery),
        (None, None)
    );

    // Deliveries: newest first, the same under every filter as the memory's.
    let filters = [
        DeliveryFilter::new(),
        DeliveryFilter::new().limit(7),
        DeliveryFilter::new().limit(1000),
        DeliveryFilter::new().outcome("failure"),
        DeliveryFilter::new()
            .outcome("rejected")
            .event_type("order.paid"),
        DeliveryFilter::new().event_type("order.created").limit(3),
        DeliveryFilter::new().delivery_id("d-4"),
        DeliveryFilter::new().delivery_id("nope"),
        DeliveryFilter::new().limit(0),
    ];
    for route in ["orders", "payments", "refunds", "nope"] {
        for filter in &filters {
            let read = reader.deliveries(route, filter).await.unwrap();
            let expected = memory.deliveries(route, filter).await.unwrap();
            let read_json: Vec<String> = read.iter().map(json_of).collect();
            let expected_json: Vec<String> = expected.iter().map(json_of).collect();
            assert_eq!(read_json, expected_json, "{route} {filter:?}");
            assert!(read.windows(2).all(|w| w[0].id > w[1].id), "ids fall");
        }
    }
    let all = reader
        .deliveries("orders", &DeliveryFilter::new().limit(1000))
        .await
        .unwrap();
    assert_eq!(all.len(), 121);
    // Newest first is by arrival (the last batch first), as the memory's.
    let latest = all.iter().map(|r| r.report.delivery.received_at()).max();
    assert_eq!(
        latest,
        Some(base + MINUTE * 5 + Duration::from_micros(123_456_789))
    );
    assert_eq!(
        json_of(&all[0]),
        json_of(
            &memory
                .deliveries("orders", &DeliveryFilter::new())
                .await
                .unwrap()[0]
        )
    );
    // Paging backwards with `before`, with and without a filter.
    for filter in [
        DeliveryFilter::new().limit(7),
        DeliveryFilter::new().outcome("success").limit(4),
    ] {
        let mut paged = Vec::new();
        let mut page = reader.deliveries("orders", &filter).await.unwrap();
        while let Some(last) = page.last() {
            let before = last.id;
            paged.append(&mut page);
            page = reader
                .deliveries("orders", &filter.clone().before(before))
                .await
                .unwrap();
        }
        let whole = reader
            .deliveries("orders", &filter.clone().limit(1000))
            .await
            .unwrap();
        let ids = |list: &[webhook_monitor::history::Recorded]| {
            list.iter().map(|r| r.id).collect::<Vec<_>>()
        };
        assert_eq!(ids(&paged), ids(&whole), "{filter:?}");
    }
    assert!(reader
        .deliveries("orders", &DeliveryFilter::new().before(0))
        .await
        .unwrap()
        .is_empty());
    // One delivery by its id, and ids that name none.
    for recorded in all.iter().step_by(17) {
        let found = reader
            .delivery("orders", recorded.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.id, recorded.id);
        assert_eq!(json_of(&found), json_of(recorded));
    }
    assert!(reader.delivery("orders", 1 << 20).await.unwrap().is_none());
    assert!(reader.delivery("nope", all[0].id).await.unwrap().is_none());

    // Alerts: opened by two instances, the newest first; then one resolved by a third.
    let t = |s: u64| base + Duration::from_secs(s);
    writers[0]
        .send(&[alert("failure_rate", "orders", "opened", t(60), t(60))])
        .await
        .unwrap();
    writers[1]
        .send(&[alert("failure_rate", "payments", "opened", t(120), t(120))])
        .await
        .unwrap();
    let log = reader.alerts().await.unwrap();
    let open: Vec<(&str, SystemTime)> = log.open.iter().map(|a| (&*a.route, a.at)).collect();
    assert_eq!(open, [("payments", t(120)), ("orders", t(60))]);
    assert!(log.resolved.is_empty());
    writers[2]
        .send(&[alert("failure_rate", "orders", "resolved", t(60), t(180))])
        .await
        .unwrap();
    let log = reader.alerts().await.unwrap();
    let open: Vec<&str> = log.open.iter().map(|a| &*a.route).collect();
    assert_eq!(open, ["payments"]);
    assert_eq!(log.resolved.len(), 1);
    assert_eq!(&*log.resolved[0].route, "orders");
    assert_eq!(
        (log.resolved[0].opened_at, log.resolved[0].at),
        (t(60), t(180))
    );

    // Health: each instance reads its own; the reader sent none.
    assert_eq!(History::health(&reader).await.unwrap(), None);
    let own = History::health(&writers[1]).await.unwrap().unwrap();
    assert_eq!(
        (own.reporter.enqueued, own.reporter.queue_depth),
        (101, 1usize)
    );

    // Instances: by id, with their heartbeats, the lease's holder and their health.
    set(backend, &format!("{prefix}{{fleet}}:lease"), "web-2").await;
    let instances = reader.instances().await.unwrap();
    let ids: Vec<&str> = instances.iter().map(|i| &*i.id).collect();
    assert_eq!(ids, ["web-1", "web-2", "web-3"]);
    let leaders: Vec<bool> = instances.iter().map(|i| i.leader).collect();
    assert_eq!(leaders, [false, true, false]);
    let now = SystemTime::now();
    for (i, instance) in instances.iter().enumerate() {
        let (started, beat) = (instance.started.unwrap(), instance.last_heartbeat.unwrap());
        assert!(started <= beat && beat <= now, "{instance:?}");
        assert!(now.duration_since(started).unwrap() < Duration::from_secs(60));
        let h = instance.health.as_ref().unwrap();
        assert_eq!(h.reporter.enqueued, 100 + i as u64);
        assert_eq!(h.reporter.queue_depth, i);
        assert_eq!(h.rss_bytes, Some(50 << 20));
    }
    // The first heartbeat stays; the latest moves.
    let before = &instances[0];
    tokio::time::sleep(Duration::from_millis(5)).await;
    writers[0].send(&[]).await.unwrap();
    let after = reader.instances().await.unwrap();
    assert_eq!(after[0].started, before.started);
    assert!(after[0].last_heartbeat > before.last_heartbeat);
}

#[tokio::test]
async fn three_instances_one_reader_on_one_redis() {
    three_instances_one_reader(Backend::Node).await;
}

#[tokio::test]
async fn three_instances_one_reader_on_a_cluster() {
    three_instances_one_reader(Backend::Cluster).await;
}

/// A filter that matches only the oldest of 450 entries reads pages of 200 until it finds it;
/// one that matches none reads the whole stream and ends.
#[tokio::test]
async fn filters_read_past_pages_of_misses() {
    let prefix = prefix("pages");
    let Some(history) = history(Backend::Node, &prefix, "web-1").await else {
        return;
    };
    let at = base();
    let mut batch = vec![delivery("bulk", 2, at)]; // the one failure
    batch.extend((0..449).map(|i| delivery("bulk", 5 * i, at))); // successes
    history.send(&batch).await.unwrap();
    let found = history
        .deliveries("bulk", &DeliveryFilter::new().outcome("failure"))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].report.outcome.as_str(), "failure");
    let none = history
        .deliveries("bulk", &DeliveryFilter::new().outcome("panicked"))
        .await
        .unwrap();
    assert!(none.is_empty());
    let all = history
        .deliveries("bulk", &DeliveryFilter::new().limit(500))
        .await
        .unwrap();
    assert_eq!(all.len(), 450);
}

/// An entry whose report does not parse is skipped, not an error; so are alerts and health
/// reports that do not parse.
#[tokio::test]
async fn what_does_not_parse_is_skipped() {
    let prefix = prefix("garbage");
    let Some(history) = history(Backend::Node, &prefix, "web-1").await else {
        return;
    };
    let at = base();
    history.send(&[delivery("r", 0, at)]).await.unwrap();
    let url = &Backend::Node.urls().unwrap()[0];
    let mut c = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut p = redis::pipe();
    p.cmd("XADD")
        .arg(format!("{prefix}{{r}}:log"))
        .arg("*")
        .arg("r")
        .arg("{not a report")
        .ignore();
    p.cmd("XADD")
        .arg(format!("{prefix}{{r}}:log"))
        .arg("*")
        .arg("x")
        .arg("1")
        .ignore();
    p.cmd("HSET")
        .arg(format!("{prefix}{{fleet}}:alerts:open"))
        .arg("x")
        .arg("[]")
        .ignore();
    p.cmd("SET")
        .arg(format!("{prefix}{{fleet}}:health:web-1"))
        .arg("{")
        .ignore();
    p.query_async::<()>(&mut c).await.unwrap();
    let list = history
        .deliveries("r", &DeliveryFilter::new())
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].report.delivery.received_at(), at);
    assert!(history.alerts().await.unwrap().open.is_empty());
    assert_eq!(History::health(&history).await.unwrap(), None);
    let instances = history.instances().await.unwrap();
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0].health, None);
}

/// What Redis answers with an error is a `HistoryError::Unavailable` whose source is the
/// `RedisError`.
#[tokio::test]
async fn a_redis_error_is_unavailable() {
    let prefix = prefix("wrongtype");
    let Some(history) = history(Backend::Node, &prefix, "web-1").await else {
        return;
    };
    set(
        Backend::Node,
        &format!("{prefix}{{fleet}}:routes"),
        "not a set",
    )
    .await;
    set(Backend::Node, &format!("{prefix}{{r}}:log"), "not a stream").await;
    set(
        Backend::Node,
        &format!("{prefix}{{fleet}}:alerts:open"),
        "not a hash",
    )
    .await;
    let errors = [
        history.routes().await.err(),
        history.deliveries("r", &DeliveryFilter::new()).await.err(),
        history.delivery("r", 1).await.err(),
        history.alerts().await.err(),
    ];
    for error in errors {
        let error = error.expect("an error");
        let HistoryError::Unavailable(source) = &error else {
            panic!("{error:?}");
        };
        let redis = source
            .downcast_ref::<redis::RedisError>()
            .expect("a RedisError");
        assert!(redis.to_string().contains("WRONGTYPE"), "{redis}");
    }
}

/// A Redis that stops answering: every read fails within the timeout, as unavailable.
#[tokio::test]
async fn a_redis_that_hangs_times_out() {
    let Some(urls) = Backend::Node.urls() else {
        return;
    };
    let (addr, stall) = common::redis::stalling_proxy(&common::redis::host_port(&urls[0])).await;
    let timeout = Duration::from_millis(200);
    let history = RedisHistory::builder()
        .key_prefix(prefix("hang"))
        .instance("web-1")
        .timeout(timeout)
        .connect(format!("redis://{addr}/"))
        .await
        .unwrap();
    history.send(&[delivery("r", 0, base())]).await.unwrap();
    assert_eq!(history.routes().await.unwrap().len(), 1);
    stall.store(true, Ordering::Relaxed);
    let started = tokio::time::Instant::now();
    let errors = [
        history.routes().await.err(),
        history.minutes("r", base()).await.err(),
        history.deliveries("r", &DeliveryFilter::new()).await.err(),
        history.delivery("r", 1).await.err(),
        history.alerts().await.err(),
        History::health(&history).await.err(),
        history.instances().await.err(),
    ];
    assert!(started.elapsed() < timeout * 7 + Duration::from_millis(500));
    // The health report this instance wrote (or tried to) is kept: its own dashboard shows it.
    let report = common::fleet::health(5, 0, 0, 1, serde_json::Value::Null);
    history.send(std::slice::from_ref(&report)).await.unwrap();
    let Report::Health(sent) = report else {
        unreachable!()
    };
    assert_eq!(History::health(&history).await.unwrap(), Some(*sent));
    for error in errors {
        let error = error.expect("an error");
        let HistoryError::Unavailable(source) = &error else {
            panic!("{error:?}");
        };
        assert!(
            source.to_string().contains("timed out after 200ms"),
            "{source}"
        );
    }
    stall.store(false, Ordering::Relaxed);
}

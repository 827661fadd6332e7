//! A fleet for the dashboard's tests: three instances writing to one Redis (`REDIS_URL`), the
//! third through a proxy that stops forwarding, so that its writes fail and its fleet view goes
//! stale; and a `History` that shows them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use webhook_monitor::{
    history::{
        AlertLog, DeliveryFilter, History, HistoryError, InstanceEntry, MemoryHistory, Minute,
        Recorded, RedisHistory, RouteEntry,
    },
    report::{FleetHealth, HealthReport, Sink},
    Report,
};

use super::redis::{host_port, stalling_proxy, Backend};

/// What the dashboard of `web-3` would read: its own history (`memory`), with its health
/// report's fleet view, and the fleet's instances read from Redis.
///
/// Each instance's fleet view goes through Redis inside its health report. `web-3`'s went
/// stale after its last report got through, so its entry read from Redis is given the view its
/// next report carries (`RedisHistory::status`), as once Redis answers it again.
pub struct FleetHistory {
    pub memory: MemoryHistory,
    pub instances: Vec<InstanceEntry>,
    /// `web-3`'s view: stale.
    pub stale: FleetHealth,
}

impl History for FleetHistory {
    async fn routes(&self) -> Result<Vec<RouteEntry>, HistoryError> {
        self.memory.routes().await
    }
    async fn minutes(&self, route: &str, since: SystemTime) -> Result<Vec<Minute>, HistoryError> {
        self.memory.minutes(route, since).await
    }
    async fn deliveries(
        &self,
        route: &str,
        filter: &DeliveryFilter,
    ) -> Result<Vec<Recorded>, HistoryError> {
        self.memory.deliveries(route, filter).await
    }
    async fn delivery(&self, route: &str, id: u64) -> Result<Option<Recorded>, HistoryError> {
        self.memory.delivery(route, id).await
    }
    async fn alerts(&self) -> Result<AlertLog, HistoryError> {
        self.memory.alerts().await
    }
    async fn health(&self) -> Result<Option<HealthReport>, HistoryError> {
        History::health(&self.memory).await
    }
    async fn instances(&self) -> Result<Vec<InstanceEntry>, HistoryError> {
        Ok(self.instances.clone())
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string()
}

/// A success of `route` received `ago` before now.
pub fn delivery(route: &str, ago: Duration) -> Report {
    serde_json::from_value(json!({
        "type": "delivery", "route": route, "provider": "shop", "delivery_id": "d-1",
        "event_type": "order.created", "attempt": 1, "signature": "verified", "secret_index": 0,
        "status": 200, "outcome": "success", "outcome_detail": null, "reason": null,
        "payload_check": null, "received_at": rfc3339(SystemTime::now() - ago),
        "body_read_us": 40, "handler_us": 11_900, "total_us": 12_000, "body_bytes": 512,
        "fingerprint": null, "times_seen": null, "first_seen": null,
        "mean_retry_interval_ms": null, "lag_ms": null, "flags": [], "fields": {},
    }))
    .unwrap()
}

/// A health report taken now, with `fleet` (a `FleetHealth` as JSON, or null).
pub fn health(
    sent: u64,
    failed: u64,
    queue_depth: u64,
    rss_mib: u64,
    fleet: serde_json::Value,
) -> Report {
    serde_json::from_value(json!({
        "type": "health", "at": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        "enqueued": sent + failed, "dropped_full": 0, "dropped_closed": 0, "sent": sent,
        "failed": failed, "batches": 12, "alerts": 1, "sink_panics": 0, "watcher_panics": 0,
        "queue_depth": queue_depth, "rss_bytes": rss_mib << 20, "fleet": fleet, "sinks": [],
    }))
    .unwrap()
}

/// `instance`'s fleet view as its health report writes it: current, leading or not.
fn current(instance: &str, leader: bool) -> serde_json::Value {
    json!({
        "instance": instance, "leader": leader, "stale": false,
        "last_write": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        "failed_writes": 0, "lost_deliveries": 0, "dropped_counts": 0, "dropped_alerts": 0,
        "pending_deliveries": 0,
    })
}

/// The fleet: `web-1` holds the lease; `web-2` wrote no health report; `web-3` wrote once,
/// then its writes of 3 deliveries failed (Redis stopped answering it), so its fleet view is
/// stale: 3 deliveries' entries lost and, with no room for pending counts, 3 dropped. `None`
/// (and why) without `REDIS_URL`.
pub async fn fleet() -> Option<FleetHistory> {
    let urls = Backend::Node.urls()?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!("webhook-monitor-test:fleet:{}:{nanos}:", std::process::id());
    let builder = |id: &str| {
        RedisHistory::builder()
            .key_prefix(prefix.as_str())
            .instance(id)
            .timeout(Duration::from_millis(150))
            .pending_minutes(0)
    };
    let web1 = builder("web-1").connect(&urls[0]).await.unwrap();
    let web2 = builder("web-2").connect(&urls[0]).await.unwrap();
    let (proxy, stall) = stalling_proxy(&host_port(&urls[0])).await;
    let web3 = builder("web-3")
        .connect(format!("redis://{proxy}/"))
        .await
        .unwrap();
    let minute = Duration::from_secs(60);
    let web1_health = health(1200, 3, 2, 180, current("web-1", true));
    web1.send(&[delivery("orders", minute * 3), web1_health])
        .await
        .unwrap();
    web2.send(&[delivery("orders", minute * 2)]).await.unwrap();
    web3.send(&[
        delivery("orders", minute),
        health(800, 0, 0, 96, current("web-3", false)),
    ])
    .await
    .unwrap();
    let mut lease = redis::cmd("SET");
    lease.arg(format!("{prefix}{{fleet}}:lease")).arg("web-1");
    let mut c = redis::Client::open(urls[0].as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    lease.query_async::<()>(&mut c).await.unwrap();

    // Redis stops answering web-3: its next batch is not written.
    stall.store(true, std::sync::atomic::Ordering::Relaxed);
    let lost: Vec<Report> = (0..3).map(|_| delivery("orders", Duration::ZERO)).collect();
    web3.send(&lost).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let stale = web3.status(Duration::from_millis(1));
    assert!(stale.stale && stale.last_write.is_some(), "{stale:?}");
    assert_eq!((stale.lost_deliveries, stale.dropped_counts), (3, 3));

    let mut instances = web1.instances().await.unwrap();
    let leader = instances.iter().find(|i| &*i.id == "web-1").unwrap();
    let view = leader
        .health
        .as_ref()
        .and_then(|h| h.fleet.as_ref())
        .unwrap();
    assert!(view.leader && !view.stale, "read back from Redis: {view:?}");
    for instance in instances.iter_mut().filter(|i| &*i.id == "web-3") {
        if let Some(health) = &mut instance.health {
            health.fleet = Some(stale.clone());
        }
    }

    // web-3's own history: its deliveries, an alert about web-2, its health and stale view.
    let memory = MemoryHistory::new();
    let mut batch = vec![
        delivery("orders", minute),
        delivery("orders", Duration::ZERO),
    ];
    let opened = humantime::format_rfc3339_seconds(SystemTime::now() - minute * 4).to_string();
    let alert = serde_json::from_value(json!({
        "type": "alert", "kind": "instance_silent", "route": "orders", "instance": "web-2",
        "severity": "warning", "state": "opened", "opened_at": opened, "at": opened,
        "figures": {"deliveries": 0, "others_per_minute": 12.5, "instances": 3, "window_minutes": 5},
    }));
    batch.push(alert.unwrap());
    match health(800, 0, 0, 96, serde_json::Value::Null) {
        Report::Health(mut report) => {
            report.fleet = Some(stale.clone());
            batch.push(Report::Health(report));
        }
        other => panic!("{other:?}"),
    }
    memory.send(&batch).await.unwrap();
    Some(FleetHistory {
        memory,
        instances,
        stale,
    })
}

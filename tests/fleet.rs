//! A fleet of three instances on one Redis: each its own server, layer, reporter and
//! connection, writing one `RedisHistory`, with the fleet watchers on. Real time, real Redis;
//! the wall clock the layers, reporters and histories read is the test's, so that minutes go by
//! when the test says (the lease and the ticks run on real time: a 3 s lease, a tick a second).
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)]

use std::{
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
        Arc,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{http::StatusCode, routing::post, Router};
use webhook_monitor::{
    dedupe::Token,
    history::RedisHistory,
    report::{Fanout, MemorySink, Reporter, ReporterGuard},
    watch::{Alert, AlertKind, AlertState},
    Policy, Report, WebhookMonitorLayer,
};

mod common;

use common::{full, send, serve};

const LEASE: Duration = Duration::from_secs(3);
/// One fleet at a time: their timings are real, and two tests' twelve reporters on two cores
/// could starve a lease holder past its lease.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// Long enough for a batch to reach Redis and the lease holder's next evaluation.
const SETTLE: Duration = Duration::from_millis(2500);

/// The wall clock of the test: real time plus the minutes the test skipped.
#[derive(Clone)]
struct Wall {
    start: SystemTime,
    real: std::time::Instant,
    skipped_ms: Arc<AtomicU64>,
}

impl Wall {
    fn new() -> Self {
        Self {
            start: SystemTime::now(),
            real: std::time::Instant::now(),
            skipped_ms: Arc::default(),
        }
    }

    fn now(&self) -> SystemTime {
        self.start + self.real.elapsed() + Duration::from_millis(self.skipped_ms.load(Relaxed))
    }

    fn clock(&self) -> impl Fn() -> SystemTime + Send + Sync + Clone + 'static {
        let wall = self.clone();
        move || wall.now()
    }

    fn skip(&self, by: Duration) {
        self.skipped_ms
            .fetch_add(u64::try_from(by.as_millis()).unwrap(), Relaxed);
    }

    /// Skips to 2 s past the start of the next minute, so that what the test sends next lands
    /// in one minute.
    fn next_minute(&self) {
        let ms = self.now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        self.skip(Duration::from_millis(60_000 - ms % 60_000 + 2_000));
    }
}

struct Instance {
    id: &'static str,
    url: String,
    sink: MemorySink,
    history: RedisHistory,
    guard: Option<ReporterGuard>,
}

impl Instance {
    async fn start(
        id: &'static str,
        redis: &str,
        prefix: &str,
        wall: &Wall,
        policy: &Policy,
        failing: &Arc<AtomicBool>,
    ) -> Self {
        let builder = RedisHistory::builder()
            .key_prefix(prefix)
            .instance(id)
            .clock(wall.clock());
        let history = match redis.split_once(',') {
            Some(_) => builder.connect_cluster(redis.split(',')).await,
            None => builder.connect(redis).await,
        };
        let history = history.unwrap();
        let sink = MemorySink::new();
        let fanout = Fanout::new()
            .sink("memory", sink.clone())
            .sink("fleet", history.clone());
        let (reporter, guard) = Reporter::builder()
            .clock(wall.clock())
            .linger(Duration::from_millis(1))
            .fleet(history.fleet().lease_ttl(LEASE).instance_silence(3, 1.0))
            .spawn(fanout);
        let failing = Arc::clone(failing);
        let handler = post(move || {
            let failing = failing.load(Relaxed);
            async move {
                if failing {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        });
        let layer = WebhookMonitorLayer::new(policy.clone().clock(wall.clock()), reporter);
        let app = Router::new().route("/hook", handler.route_layer(layer));
        let addr = serve(app).await;
        Self {
            id,
            url: format!("http://{addr}/hook"),
            sink,
            history,
            guard: Some(guard),
        }
    }

    async fn deliver(&self, n: usize) {
        for _ in 0..n {
            send(&self.url, full(r#"{"type":"order.paid"}"#), &[]).await;
        }
    }

    fn leads(&self) -> bool {
        self.history.status(LEASE).leader
    }

    fn alerts(&self) -> Vec<Alert> {
        self.sink
            .reports()
            .into_iter()
            .filter_map(|r| match r {
                Report::Alert(a) => Some(a),
                _ => None,
            })
            .collect()
    }

    async fn stop(&mut self) {
        if let Some(guard) = self.guard.take() {
            guard.shutdown(Duration::from_secs(5)).await.unwrap();
        }
    }
}

/// The Redis at `REDIS_URL`, or the Redis Cluster at `REDIS_CLUSTER_URLS` (node URLs separated
/// by commas); `None`, with the reason printed, when the variable is not set.
fn redis_url(var: &str) -> Option<String> {
    let url = std::env::var(var).ok();
    if url.is_none() {
        eprintln!("skipped: {var} is not set (CI sets it)");
    }
    url
}

fn prefix() -> String {
    format!("wm-test:fleet:{:032x}:", Token::random().get())
}

/// Three instances, `a`, `b` and `c`, of the route `orders`.
async fn fleet(
    redis: &str,
    prefix: &str,
    wall: &Wall,
    policy: Policy,
) -> (Vec<Instance>, Arc<AtomicBool>) {
    let failing = Arc::new(AtomicBool::new(false));
    let mut instances = Vec::new();
    for id in ["a", "b", "c"] {
        instances.push(Instance::start(id, redis, prefix, wall, &policy, &failing).await);
    }
    (instances, failing)
}

/// Every alert any instance sent, of `kind`, as (state, instance it is about, sender).
fn sent(
    instances: &[Instance],
    kind: AlertKind,
) -> Vec<(AlertState, Option<String>, &'static str)> {
    let mut sent: Vec<_> = instances
        .iter()
        .flat_map(|i| {
            i.alerts()
                .into_iter()
                .filter(|a| a.kind == kind)
                .map(|a| (a.state, a.instance.as_deref().map(str::to_owned), i.id))
        })
        .collect();
    sent.sort_by_key(|(state, about, from)| (*state as u8, about.clone(), *from));
    sent
}

async fn until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_to_one_instance_is_no_silence_and_the_idle_instances_are_named() {
    let Some(redis) = redis_url("REDIS_URL") else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let (wall, prefix) = (Wall::new(), prefix());
    let policy = Policy::custom("orders").expect_at_least(1, Duration::from_secs(180));
    let (mut instances, _) = fleet(&redis, &prefix, &wall, policy).await;
    until("one instance leads", LEASE * 2, || {
        instances.iter().any(Instance::leads)
    })
    .await;
    // Six minutes: a's deliveries every minute, none to b or c.
    for _ in 0..6 {
        wall.next_minute();
        instances[0].deliver(6).await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    tokio::time::sleep(SETTLE).await;
    assert_eq!(
        sent(&instances, AlertKind::Silence),
        vec![],
        "the route is busy"
    );
    let silent = sent(&instances, AlertKind::InstanceSilent);
    let leader = instances.iter().find(|i| i.leads()).unwrap().id;
    assert_eq!(
        silent,
        vec![
            (AlertState::Opened, Some("b".to_owned()), leader),
            (AlertState::Opened, Some("c".to_owned()), leader),
        ],
        "b and c named once each, by the lease holder only"
    );
    for i in &mut instances {
        i.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spike_split_over_three_instances_is_one_fleet_alert() {
    let Some(redis) = redis_url("REDIS_URL") else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    spike_split_over_three_instances(&redis).await;
}

/// The same on a Redis Cluster: every pipeline and script stays in one slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spike_split_over_three_instances_is_one_fleet_alert_on_a_cluster() {
    let Some(redis) = redis_url("REDIS_CLUSTER_URLS") else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    spike_split_over_three_instances(&redis).await;
}

async fn spike_split_over_three_instances(redis: &str) {
    let (wall, prefix) = (Wall::new(), prefix());
    let (mut instances, _) = fleet(redis, &prefix, &wall, Policy::custom("orders")).await;
    until("one instance leads", LEASE * 2, || {
        instances.iter().any(Instance::leads)
    })
    .await;
    // The route's first delivery, then eleven quiet minutes: the spike watcher's history.
    instances[0].deliver(1).await;
    tokio::time::sleep(SETTLE).await;
    wall.skip(Duration::from_secs(11 * 60));
    wall.next_minute();
    // 15 each: under the spike floor (30) on every instance, 45 for the fleet.
    for i in &instances {
        i.deliver(15).await;
    }
    tokio::time::sleep(SETTLE).await;
    let leader = instances.iter().find(|i| i.leads()).unwrap().id;
    assert_eq!(
        sent(&instances, AlertKind::Spike),
        vec![(AlertState::Opened, None, leader)],
        "one spike, sent once"
    );
    let spike = instances
        .iter()
        .flat_map(Instance::alerts)
        .find(|a| a.kind == AlertKind::Spike)
        .unwrap();
    assert_eq!(spike.figure("per_minute"), Some(&45u32.into()));
    for i in &instances {
        let status = i.history.status(LEASE);
        assert_eq!(
            (status.failed_writes, status.lost_deliveries),
            (0, 0),
            "{status:?}"
        );
    }
    for i in &mut instances {
        i.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_moves_when_its_holder_stops_and_the_open_alert_resolves_once() {
    let Some(redis) = redis_url("REDIS_URL") else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let (wall, prefix) = (Wall::new(), prefix());
    let policy = Policy::custom("orders").watch(|w| {
        w.cooldown(Duration::from_secs(1))
            .consecutive_failures(1000)
    });
    let (mut instances, failing) = fleet(&redis, &prefix, &wall, policy).await;
    until("one instance leads", LEASE * 2, || {
        instances.iter().any(Instance::leads)
    })
    .await;
    failing.store(true, Relaxed);
    for i in &instances {
        i.deliver(4).await;
    }
    tokio::time::sleep(SETTLE).await;
    let first = instances.iter().position(Instance::leads).unwrap();
    assert_eq!(
        sent(&instances, AlertKind::FailureRate),
        vec![(AlertState::Opened, None, instances[first].id)]
    );

    // The holder shuts down mid-incident: it releases the lease, another takes it at its
    // next tick (a third of the lease).
    instances[first].stop().await;
    let rest: Vec<usize> = (0..3).filter(|i| *i != first).collect();
    let took = until("another instance leads", LEASE, || {
        rest.iter().any(|i| instances[*i].leads())
    })
    .await;
    eprintln!("the lease moved {took:?} after its holder stopped");
    let second = *rest.iter().find(|i| instances[**i].leads()).unwrap();

    failing.store(false, Relaxed);
    for i in &rest {
        instances[*i].deliver(15).await;
    }
    tokio::time::sleep(SETTLE).await;
    assert_eq!(
        sent(&instances, AlertKind::FailureRate),
        vec![
            (AlertState::Opened, None, instances[first].id),
            (AlertState::Resolved, None, instances[second].id),
        ],
        "opened once, resolved once, by the new holder"
    );
    for i in &mut instances {
        i.stop().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Redis restarted mid-run: a Redis of the test's own, on its own port, with its writes on disk
// (append-only file, fsync always), so that what was written before the restart is still there.

struct OwnRedis {
    port: u16,
    dir: std::path::PathBuf,
}

impl OwnRedis {
    fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let dir = std::env::temp_dir().join(format!("wm-fleet-redis-{port}"));
        std::fs::create_dir_all(&dir).ok()?;
        let redis = Self { port, dir };
        if !redis.up() {
            eprintln!("skipped: redis-server could not be started (CI installs it)");
            return None;
        }
        Some(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn cli(&self, args: &[&str]) -> Option<String> {
        common::redis::cli(self.port, args).map(|out| out.trim().to_owned())
    }

    fn answers(&self) -> bool {
        self.cli(&["ping"]).is_some_and(|o| o == "PONG")
    }

    fn wait(&self, up: bool) -> bool {
        for _ in 0..200 {
            if self.answers() == up {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn up(&self) -> bool {
        let started = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--daemonize", "yes", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .status();
        started.is_ok_and(|s| s.success()) && self.wait(true)
    }

    fn down(&self) {
        let _ = self.cli(&["shutdown", "nosave"]);
        assert!(self.wait(false), "redis did not stop");
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.cli(&["shutdown", "nosave"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The deliveries the fleet's minutes of `orders` count, summed.
fn counted(redis: &OwnRedis, prefix: &str) -> u64 {
    let keys = redis
        .cli(&["--raw", "keys", &format!("{prefix}{{orders}}:m:*")])
        .unwrap();
    keys.lines()
        .filter(|k| !k.is_empty())
        .map(|key| {
            let fields = redis.cli(&["--raw", "hgetall", key]).unwrap();
            let lines: Vec<&str> = fields.lines().collect();
            lines
                .chunks(2)
                .filter(|kv| kv[0].starts_with("o:"))
                .map(|kv| kv[1].parse::<u64>().unwrap())
                .sum::<u64>()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_loses_only_what_it_says_and_the_fleet_view_recovers() {
    let Some(redis) = OwnRedis::start() else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let (wall, prefix) = (Wall::new(), prefix());
    let (mut instances, _) = fleet(&redis.url(), &prefix, &wall, Policy::custom("orders")).await;
    until("one instance leads", LEASE * 2, || {
        instances.iter().any(Instance::leads)
    })
    .await;
    for i in &instances {
        i.deliver(5).await;
    }
    tokio::time::sleep(SETTLE).await;
    assert_eq!(counted(&redis, &prefix), 15);

    redis.down();
    for i in &instances {
        i.deliver(7).await;
    }
    until(
        "every instance sees the fleet view stale",
        LEASE * 3,
        || instances.iter().all(|i| i.history.status(LEASE).stale),
    )
    .await;
    let down: Vec<_> = instances.iter().map(|i| i.history.status(LEASE)).collect();
    for status in &down {
        assert!(!status.leader, "no lease without Redis: {status:?}");
        assert_eq!(status.lost_deliveries, 7, "{status:?}");
        assert_eq!(status.pending_deliveries, 7, "{status:?}");
        assert!(status.failed_writes >= 1, "{status:?}");
    }

    assert!(redis.up(), "redis did not restart");
    until("every instance writes again", LEASE * 3, || {
        instances.iter().all(|i| !i.history.status(LEASE).stale)
    })
    .await;
    for i in &instances {
        i.deliver(3).await;
    }
    until("one instance leads again", LEASE * 3, || {
        instances.iter().any(Instance::leads)
    })
    .await;
    tokio::time::sleep(SETTLE).await;
    // Before the outage, during it (kept, then written), after it: every count is there.
    assert_eq!(counted(&redis, &prefix), 15 + 21 + 9);
    for i in &instances {
        let status = i.history.status(LEASE);
        assert!(!status.stale, "{status:?}");
        assert_eq!(
            status.lost_deliveries, 7,
            "only the outage's entries: {status:?}"
        );
        assert_eq!(status.pending_deliveries, 0, "{status:?}");
        assert_eq!(status.dropped_counts, 0, "{status:?}");
    }
    for i in &mut instances {
        i.stop().await;
    }
}

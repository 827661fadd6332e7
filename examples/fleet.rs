//! A fleet of three instances on one Redis, and the single set of alerts it sends.
//!
//! Run with `cargo run --example fleet --features redis`, with a Redis at `REDIS_URL` (default
//! `redis://127.0.0.1:6379/`); without one it says so and exits with an error. Three instances
//! of one app run in this process, each as it would in its own: its own axum server on
//! 127.0.0.1, `WebhookMonitorLayer`, `Reporter` and `RedisHistory` (their own connection to
//! Redis), all writing one fleet history under a key prefix of this run's own. The reporters
//! are fleet members (`ReporterBuilder::fleet`): a lease in Redis picks one of them to evaluate
//! the watchers on the whole fleet's traffic and send their alerts.
//!
//! Real Stripe-signed deliveries go to instance 1 only, for six minutes: the Stripe route is
//! busy (no `silence` alert, although it expects a delivery every 3 minutes), while instances 2
//! and 3 receive nothing (each named once by an `instance_silent` alert). The example prints,
//! per instance, whether it holds the lease and the alerts it sent, checks that the fleet sent
//! exactly those two alerts, once each, from the lease holder, deletes its keys, and exits with
//! an error if the check failed (CI runs it).

use std::{
    future::IntoFuture,
    process::ExitCode,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{http::StatusCode, routing::post, Router};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use tokio::{sync::oneshot, task::JoinHandle};
use webhook_monitor::{
    dedupe::Token,
    history::RedisHistory,
    report::{Fanout, MemorySink, Reporter},
    testing,
    watch::{Alert, AlertKind, AlertState},
    BoxError, Policy, Report, ReporterGuard, WebhookMonitorLayer,
};

/// The route's Stripe signing secret (a real app reads it from its configuration).
const SECRET: &str = "whsec_fleet_example_secret";
/// The fleet watchers' lease: every instance renews or tries to take it, and the holder
/// evaluates the watchers, every third of it (here every second). 3 s is the shortest allowed.
const LEASE: Duration = Duration::from_secs(3);
/// Minutes of traffic, and deliveries to instance 1 in each.
const MINUTES: usize = 6;
const PER_MINUTE: u64 = 10;
/// Instances 2 and 3 are named when they received nothing for 3 minutes while the others
/// averaged at least 2 a minute (instance 1 gets 10, so the others average 5).
const SILENT_MINUTES: usize = 3;

/// The wall clock every layer, reporter and history of this example reads: real time plus the
/// minutes the example skips.
///
/// The watchers work on whole minutes of the wall clock (a route's minute in Redis, an
/// instance silent for 3 minutes). Waiting for six real minutes would make the example last
/// six minutes, so each of its minutes is skipped to instead: the deliveries of a minute are
/// sent, the example waits 1.2 s of real time (long enough for their batch to reach Redis and
/// for the lease holder to evaluate once more: it does every second, on tokio's real timer),
/// and then moves the wall clock on to the next minute. The lease and the ticks run on real
/// time; only what the watchers read as "now" jumps. The whole run takes about 15 s.
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

    /// Skips to 2 s past the start of the next minute, so that a minute's deliveries land in
    /// one minute.
    fn next_minute(&self) {
        let ms = millis(self.now());
        self.skipped_ms
            .fetch_add(60_000 - ms % 60_000 + 2_000, Relaxed);
    }
}

fn millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One instance of the app: a server, its layer's reporter, the fleet history it writes, and
/// a `MemorySink` next to the history that keeps the alerts this instance sent.
struct Instance {
    id: String,
    url: String,
    sent: MemorySink,
    history: RedisHistory,
    guard: Option<ReporterGuard>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl Instance {
    async fn start(id: &str, redis: &str, prefix: &str, wall: &Wall) -> Result<Self, BoxError> {
        let history = RedisHistory::builder()
            .key_prefix(prefix)
            .instance(id)
            .clock(wall.clock())
            .connect(redis)
            .await
            .map_err(|e| {
                format!(
                    "cannot reach Redis at {redis}: {} (set REDIS_URL)",
                    chain(&e)
                )
            })?;
        // In production the sink would be Slack, PagerDuty, email…: here a memory sink keeps
        // what this instance sent, for the summary.
        let sent = MemorySink::new();
        let sink = Fanout::new()
            .sink("alerts", sent.clone())
            .sink("fleet", history.clone());
        let fleet = history
            .fleet()
            .lease_ttl(LEASE)
            .instance_silence(SILENT_MINUTES, 2.0);
        let (reporter, guard) = Reporter::builder()
            .clock(wall.clock())
            .fleet(fleet)
            .spawn(sink);
        // The route expects a delivery at least every 3 minutes: a `silence` alert would say
        // the fleet stopped receiving Stripe's events. It keeps receiving them (on instance 1).
        let policy = Policy::stripe(SECRET)
            .expect_at_least(1, Duration::from_secs(180))
            .clock(wall.clock());
        let app = Router::new().route(
            "/webhooks/stripe",
            post(|| async { StatusCode::OK })
                .route_layer(WebhookMonitorLayer::new(policy, reporter)),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/webhooks/stripe", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let server = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .into_future();
        Ok(Self {
            id: id.to_owned(),
            url,
            sent,
            history,
            guard: Some(guard),
            stop: Some(stop),
            server: Some(tokio::spawn(server)),
        })
    }

    fn leads(&self) -> bool {
        self.history.status(LEASE).leader
    }

    fn alerts(&self) -> Vec<Alert> {
        let reports = self.sent.reports().into_iter();
        reports
            .filter_map(|r| match r {
                Report::Alert(a) => Some(a),
                _ => None,
            })
            .collect()
    }

    /// Stops the server, then the reporter (which sends what is queued and gives the lease up).
    async fn stop(&mut self) -> Result<(), BoxError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await??;
        }
        if let Some(guard) = self.guard.take() {
            guard.shutdown(Duration::from_secs(5)).await?;
        }
        Ok(())
    }
}

/// An error and its sources: `the history could not be read: Connection refused …`.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        // redis-rs's errors repeat their source's message: said once.
        let message = e.to_string();
        if !text.ends_with(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = e.source();
    }
    text
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Sends one Stripe event to `url`, signed as Stripe signs it, stamped with the wall clock.
async fn deliver(client: &HttpClient, url: &str, wall: &Wall, n: u64) -> Result<(), BoxError> {
    let t = millis(wall.now()) / 1000;
    let body = format!(
        r#"{{"id":"evt_fleet_{n}","object":"event","created":{t},"data":{{"object":{{"id":"in_{n}","object":"invoice","amount_paid":2000}}}},"type":"invoice.paid"}}"#
    );
    let mut req = http::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.clone())))?;
    req.headers_mut()
        .extend(testing::stripe(SECRET, body.as_bytes(), t));
    let status = client.request(req).await?.status();
    if status != StatusCode::OK {
        return Err(format!("delivery {n}: {status}").into());
    }
    Ok(())
}

/// Deletes every key under `prefix`; returns how many there were.
async fn delete_keys(redis: &str, prefix: &str) -> Result<usize, BoxError> {
    let client = redis::Client::open(redis)?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    let mut cursor = 0u64;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut connection)
            .await?;
        if !keys.is_empty() {
            deleted += keys.len();
            redis::cmd("DEL")
                .arg(&keys)
                .query_async::<()>(&mut connection)
                .await?;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

/// What the fleet sent, checked: exactly one `instance_silent` alert for instance 2 and one
/// for instance 3, opened, all from the one instance that holds the lease, and nothing else
/// (no route `silence`: the route is busy on instance 1).
fn check(instances: &[Instance]) -> Result<(), String> {
    let leaders: Vec<&str> = instances
        .iter()
        .filter(|i| i.leads())
        .map(|i| i.id.as_str())
        .collect();
    let [leader] = leaders[..] else {
        return Err(format!("expected one lease holder, got {leaders:?}"));
    };
    let mut sent: Vec<(String, AlertKind, AlertState, Option<String>)> = instances
        .iter()
        .flat_map(|i| {
            i.alerts().into_iter().map(|a| {
                let about = a.instance.as_deref().map(str::to_owned);
                (i.id.clone(), a.kind, a.state, about)
            })
        })
        .collect();
    sent.sort_by_key(|(from, kind, _, about)| (about.clone(), kind.as_str(), from.clone()));
    let expected: Vec<_> = ["instance-2", "instance-3"]
        .into_iter()
        .map(|about| {
            let about = Some(about.to_owned());
            (
                leader.to_owned(),
                AlertKind::InstanceSilent,
                AlertState::Opened,
                about,
            )
        })
        .collect();
    if sent != expected {
        return Err(format!(
            "expected {expected:?} (from the lease holder only), the fleet sent {sent:?}"
        ));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), BoxError> {
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    // This run's keys only: another run (or another app) on the same Redis is left alone.
    let prefix = format!(
        "webhook-monitor:example-fleet:{:032x}:",
        Token::random().get()
    );
    let wall = Wall::new();

    let mut instances = Vec::new();
    let mut outcome = Ok(());
    for n in 1..=3 {
        match Instance::start(&format!("instance-{n}"), &redis, &prefix, &wall).await {
            Ok(instance) => instances.push(instance),
            Err(error) => {
                outcome = Err(error);
                break;
            }
        }
    }
    if outcome.is_ok() {
        outcome = traffic(&instances, &prefix, &redis, &wall).await;
    }
    // Whatever happened: every instance stops, and this run's keys go.
    for i in &mut instances {
        if let Err(error) = i.stop().await {
            eprintln!("{} did not stop cleanly: {error}", i.id);
        }
    }
    if !instances.is_empty() {
        let deleted = delete_keys(&redis, &prefix).await?;
        println!("\ndeleted this run's {deleted} keys");
    }
    outcome?;
    println!(
        "one set of alerts: instance-2 and instance-3 named once each, by the lease holder \
         only, and no route silence"
    );
    Ok(())
}

/// Six minutes of deliveries to instance 1, then what each instance sent, checked.
async fn traffic(
    instances: &[Instance],
    prefix: &str,
    redis: &str,
    wall: &Wall,
) -> Result<(), BoxError> {
    println!("three instances on {redis}, keys under {prefix}");
    for i in instances {
        println!("  {}: {}", i.id, i.url);
    }
    // Every instance tries to take the lease at its first tick (a third of the lease from
    // its start): one gets it.
    let start = std::time::Instant::now();
    while !instances.iter().any(Instance::leads) {
        if start.elapsed() > LEASE * 3 {
            return Err("no instance took the fleet watchers' lease".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let mut n = 0;
    for minute in 1..=MINUTES {
        wall.next_minute();
        for _ in 0..PER_MINUTE {
            n += 1;
            deliver(&client, &instances[0].url, wall, n).await?;
        }
        println!("minute {minute}: {PER_MINUTE} deliveries to instance-1, none to the others");
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    // The last minute's batch, and the holder's evaluation after it.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    println!("\nwhat each instance sent:");
    for i in instances {
        let lease = if i.leads() {
            "holds the lease"
        } else {
            "does not hold the lease"
        };
        let alerts = i.alerts();
        println!("  {} ({lease}): {} alert(s)", i.id, alerts.len());
        for alert in alerts {
            let about = alert.instance.as_deref().unwrap_or("the whole fleet");
            println!("    about {about}: {alert}");
        }
    }
    check(instances).map_err(|why| format!("not a single set of alerts: {why}").into())
}

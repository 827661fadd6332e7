//! [`RedisHistory`]: a [`History`](super::History) that a fleet of instances writes and any of
//! them reads (feature `redis`).

mod keys;
mod read;
mod write;

use std::{
    fmt,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
        Arc, Mutex, PoisonError,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use ::redis::{aio::ConnectionManager, cluster::ClusterClient, Client};
use tokio::time::Instant;

pub(crate) use keys::{alert_field_of, Keys};
use write::Pending;

use crate::{
    policy::Clock,
    redis_link::{Addr, ConnectError, Connection, DEFAULT_TIMEOUT},
    report::{FleetHealth, HealthReport},
};

/// The history of a fleet, in Redis (feature `redis`): every instance writes its reports to it,
/// as a [sink](crate::report::Sink), and any instance (or a dashboard of its own) reads the
/// whole fleet's from it, as a [`History`](super::History). With
/// [`ReporterBuilder::fleet`](crate::report::ReporterBuilder::fleet) it is also where the
/// [fleet watchers](crate::watch::Fleet) read the fleet's traffic and keep their alerts' state.
///
/// # What it writes, and when
///
/// Nothing on the request path: the reporter's worker hands it each batch, and the batch
/// becomes **one pipelined round trip** (`MULTI`/`EXEC`, so that a batch counts whole or not at
/// all). On a [Redis Cluster](RedisHistoryBuilder::connect_cluster) the batch is one such round
/// trip per route it touches, plus one for the fleet's keys, sent at once.
///
/// Every key carries the [prefix](RedisHistoryBuilder::key_prefix) (default
/// `webhook-monitor:history:`). A route's keys share the hash tag `{<route>}`, so each route
/// lives in one slot and a cluster spreads routes over its nodes; the fleet's own keys share
/// the tag `{fleet}`. Keep `{` and `}` out of the prefix.
///
/// | key | type | what | bound |
/// |---|---|---|---|
/// | `{r}:m:<minute>` | hash | the route's minute: `o:<outcome>`, `f:<flag>`, `r` retries, `l:<bucket>` latency buckets, and for the watchers `h` handled, `x` failed, `w` retry-flagged | [retention](RedisHistoryBuilder::retention) (default 2 days) |
/// | `{r}:i:<minute>` | hash | per instance: `n:<id>` deliveries, `h:<id>` handled, `x:<id>` failed | 2 hours |
/// | `{r}:d:<day>` | hash | the day's latency buckets, for the latency baseline | 60 days |
/// | `{r}:log` | stream | recent deliveries, as report JSON | [`deliveries_per_route`](RedisHistoryBuilder::deliveries_per_route) (approximate `MAXLEN`), and the retention |
/// | `{r}:info` | hash | `provider`, `budget_ms`, `first` (the first minute seen) | the retention |
/// | `{r}:seen`, `{r}:run` | hash | per instance: its last delivery (ms), its current run of failures | the retention |
/// | `{r}:slots` | hash | the fleet watchers' alert states | the retention |
/// | `{fleet}:routes` | set | route names | — (one name per route) |
/// | `{fleet}:instances`, `{fleet}:started` | hash | per instance: last and first heartbeat (ms) | instances silent for the retention are dropped by the fleet watchers |
/// | `{fleet}:health:<id>` | string | the instance's latest health report | 1 hour |
/// | `{fleet}:alerts:open` | hash | open alerts | resolved ones are removed |
/// | `{fleet}:alerts:resolved` | list | resolved alerts, newest first | [`resolved_alerts`](RedisHistoryBuilder::resolved_alerts) |
/// | `{fleet}:lease` | string | the fleet watchers' lease holder | the lease's TTL |
///
/// All counts are `HINCRBY`s: instances' minutes add up exactly, latency histograms included
/// ([`LatencyHistogram`](super::LatencyHistogram) buckets merge by adding).
///
/// # What it reads
///
/// As a [`History`](super::History), it reads the whole fleet's routes, minutes, recent
/// deliveries and alerts, this instance's health report, and the fleet's
/// [instances](super::History::instances): each call one or a few pipelined round trips, each
/// bounded by the [timeout](RedisHistoryBuilder::timeout). Its `History` implementation below
/// says what each call reads.
///
/// # When Redis is away
///
/// A batch that could not be written is not lost at once: its counts (minutes, per-instance
/// minutes, latency days), its alerts and the latest health report are kept and go with the
/// next batch that gets through, up to [`pending_minutes`](RedisHistoryBuilder::pending_minutes)
/// route-minutes (the oldest are dropped past that). Its recent-delivery entries are dropped.
/// Both are counted exactly in [`status`](Self::status): deliveries whose entries were lost
/// and deliveries whose counts were dropped. The sink itself never fails a batch: the reporter's
/// other sinks go on, and its health report carries the fleet's
/// [`FleetHealth`] (with [`ReporterBuilder::fleet`](crate::report::ReporterBuilder::fleet)).
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use webhook_monitor::{history::RedisHistory, report::{Fanout, Reporter, TracingSink}};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let history = RedisHistory::builder()
///     .instance("web-1")
///     .retention(Duration::from_secs(24 * 3600))
///     .connect("redis://127.0.0.1:6379/")
///     .await?;
/// let sink = Fanout::new()
///     .sink("log", TracingSink::new())
///     .sink("fleet", history.clone());
/// let (reporter, guard) = Reporter::builder().fleet(history.fleet()).spawn(sink);
/// # drop(reporter);
/// # guard.shutdown(Duration::from_secs(5)).await?;
/// # Ok(())
/// # }
/// ```
///
/// # Sizing
///
/// Measured with Redis 7.0 (`benches/fleet.rs`; BENCHMARKS.md, "Fleet on Redis"):
///
/// - **Commands.** Each route a batch touches costs 7 `PEXPIRE`s, 3 `HSET`s, an `HSETNX`, an
///   `HINCRBY` per count and latency bucket that moved (6 for one delivery, about 90 for 64
///   deliveries over 40 buckets) and an `XADD` per delivery; each batch 5 more. A batch of one
///   delivery is 23 commands; of 512 on one route, 621 (1.2 a delivery); of 512 over 10
///   routes, 1,408. Each is one round trip. The fleet watchers add little: a round trip of 3
///   commands per instance and tick (a third of the lease's TTL), and for the lease holder 4
///   round trips of 8 commands plus one of 11 per route.
/// - **Batches.** With the reporter's defaults (up to 512 reports, 5 ms of linger), an instance
///   receiving 200 deliveries a second writes about 82 batches a second of 2.4 deliveries; at
///   2,000 a second, about 107 of 19.
/// - **A fleet of 50 instances at 10,000 deliveries a second** sends Redis about 4,100 round
///   trips and 112,000 commands a second when each batch touches one route, up to 200,000 when
///   deliveries are spread over 10 routes, with 15 to 23 MB/s of requests. The per-route,
///   per-batch work dominates, not the `XADD` per delivery (5 to 9 % of the commands): fewer,
///   busier instances batch more (5 instances at 2,000 a second: about 530 round trips a second
///   for the same commands). Redis's CPU per delivery ranged from 2.8 µs (batches of 512) to
///   98 to 125 µs (batches of 2.4, each waking an idle Redis) on a small machine: measure it
///   on yours at the batch rate you expect.
/// - **Memory per route** with deliveries every minute, at the default 2-day retention: about
///   1.9 MB with one instance and 2.4 MB with 50: 2,880 minute hashes of about 580 bytes
///   (1.67 MB; 835 KB a day), 120 per-instance minute hashes (240 bytes with one instance,
///   4.2 KB with 50), 60 daily latency hashes of about 0.5 KB and the recent deliveries (about
///   150 KB for 200 entries).
/// - **Instance ids** longer than 62 bytes put the per-instance fields (`n:<id>`) past Redis's
///   `hash-max-listpack-value` (64): those hashes then take Redis's hashtable encoding, about
///   3 times larger.
#[derive(Clone)]
pub struct RedisHistory {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) connection: Connection,
    addr: Addr,
    pub(crate) keys: Keys,
    pub(crate) instance: Arc<str>,
    pub(crate) limits: Limits,
    pub(crate) timeout: Duration,
    pub(crate) clock: Clock,
    pending: Mutex<Pending>,
    /// The latest health report this instance wrote (or tried to).
    latest_health: Mutex<Option<HealthReport>>,
    pub(crate) status: Status,
    /// What [`Status::last_ok_at`] counts from.
    origin: Instant,
}

/// The history's bounds.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) deliveries: usize,
    pub(crate) retention: Duration,
    pub(crate) resolved: usize,
    pub(crate) pending_minutes: usize,
}

/// What the history counts about its own writes, shared with the fleet watchers.
#[derive(Debug, Default)]
pub(crate) struct Status {
    /// The last successful write or lease operation, ms since the epoch; 0 before the first.
    pub(crate) last_ok_ms: AtomicU64,
    /// The same, on the runtime's clock: ns since [`Inner::origin`], plus 1; 0 before the first.
    last_ok_at: AtomicU64,
    pub(crate) failed_writes: AtomicU64,
    pub(crate) lost_deliveries: AtomicU64,
    pub(crate) dropped_counts: AtomicU64,
    pub(crate) dropped_alerts: AtomicU64,
    pub(crate) pending_deliveries: AtomicU64,
    pub(crate) leader: AtomicBool,
}

/// Builds a [`RedisHistory`]: its bounds and names, then the connection.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use webhook_monitor::history::RedisHistory;
///
/// # async fn run() -> Result<(), webhook_monitor::history::HistoryError> {
/// let history = RedisHistory::builder()
///     .key_prefix("shop:webhooks:")
///     .instance(std::env::var("POD_NAME").unwrap_or_else(|_| "web".into()))
///     .deliveries_per_route(500)
///     .connect_cluster(["redis://10.0.0.1:6379/", "redis://10.0.0.2:6379/"])
///     .await?;
/// # let _ = history;
/// # Ok(())
/// # }
/// ```
#[must_use]
pub struct RedisHistoryBuilder {
    prefix: String,
    instance: Option<Arc<str>>,
    limits: Limits,
    timeout: Duration,
    clock: Clock,
}

impl fmt::Debug for RedisHistoryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisHistoryBuilder")
            .field("prefix", &self.prefix)
            .field("instance", &self.instance)
            .field("limits", &self.limits)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisHistory {
    /// Deliveries kept per route by default.
    pub const DEFAULT_DELIVERIES: usize = 200;
    /// How long minutes are kept by default: 2 days.
    pub const DEFAULT_RETENTION: Duration = Duration::from_secs(2 * 86_400);

    /// A builder with the defaults: prefix `webhook-monitor:history:`, this host's name and
    /// process id as the instance, 200 deliveries per route, 2 days of minutes, 100 resolved
    /// alerts, 1 s per operation.
    pub fn builder() -> RedisHistoryBuilder {
        RedisHistoryBuilder {
            prefix: "webhook-monitor:history:".to_owned(),
            instance: None,
            limits: Limits {
                deliveries: Self::DEFAULT_DELIVERIES,
                retention: Self::DEFAULT_RETENTION,
                resolved: 100,
                pending_minutes: 4096,
            },
            timeout: DEFAULT_TIMEOUT,
            clock: Arc::new(SystemTime::now),
        }
    }

    /// This instance's id, as it is written next to its counts and heartbeats.
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// What the history knows of its own writes: failed writes, lost and dropped counts, and
    /// whether the fleet view is stale (no write or lease operation succeeded for
    /// `stale_after`, on the runtime's clock).
    pub fn status(&self, stale_after: Duration) -> FleetHealth {
        let s = &self.inner.status;
        let last = s.last_ok_ms.load(Relaxed);
        let stale = match s.last_ok_at.load(Relaxed) {
            0 => true,
            at => {
                let at = self.inner.origin + Duration::from_nanos(at - 1);
                Instant::now().saturating_duration_since(at) > stale_after
            }
        };
        FleetHealth {
            instance: Arc::clone(&self.inner.instance),
            leader: s.leader.load(Relaxed),
            stale,
            last_write: (last > 0).then(|| UNIX_EPOCH + Duration::from_millis(last)),
            failed_writes: s.failed_writes.load(Relaxed),
            lost_deliveries: s.lost_deliveries.load(Relaxed),
            dropped_counts: s.dropped_counts.load(Relaxed),
            dropped_alerts: s.dropped_alerts.load(Relaxed),
            pending_deliveries: s.pending_deliveries.load(Relaxed),
        }
    }

    /// The fleet watchers on this history, with their defaults, for
    /// [`ReporterBuilder::fleet`](crate::report::ReporterBuilder::fleet).
    pub fn fleet(&self) -> crate::watch::Fleet {
        crate::watch::Fleet::new(self.clone())
    }

    /// The latest health report this instance wrote or tried to, if it wrote one.
    pub(crate) fn latest_health(&self) -> Option<HealthReport> {
        let latest = self.inner.latest_health.lock();
        latest.unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Keeps `health` as the latest.
    pub(crate) fn keep_health(&self, health: &HealthReport) {
        let latest = self.inner.latest_health.lock();
        *latest.unwrap_or_else(PoisonError::into_inner) = Some(health.clone());
    }

    /// Records a successful operation now.
    pub(crate) fn ok(&self) {
        let inner = &self.inner;
        let now = millis((inner.clock)());
        inner.status.last_ok_ms.fetch_max(now, Relaxed);
        let at = Instant::now().saturating_duration_since(inner.origin);
        let at = u64::try_from(at.as_nanos()).unwrap_or(u64::MAX - 1) + 1;
        inner.status.last_ok_at.fetch_max(at, Relaxed);
    }
}

impl fmt::Debug for RedisHistory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("RedisHistory");
        self.inner.addr.debug_into(&mut s);
        s.field("instance", &self.inner.instance)
            .field("keys", &self.inner.keys)
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

impl RedisHistoryBuilder {
    /// Prepends `prefix` to every key. Default: `"webhook-monitor:history:"`.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// This instance's id among the fleet's: unique per running instance, stable while it
    /// runs (a pod name, a host and port). Default: the host name and the process id.
    pub fn instance(mut self, id: impl Into<Arc<str>>) -> Self {
        self.instance = Some(id.into());
        self
    }

    /// The recent deliveries kept per route (approximately: Redis trims streams in whole
    /// nodes). Default: 200. 0 keeps none.
    pub fn deliveries_per_route(mut self, count: usize) -> Self {
        self.limits.deliveries = count;
        self
    }

    /// How long minutes and recent deliveries are kept. Default: 2 days; at least 2 hours.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.limits.retention = retention.max(Duration::from_secs(7200));
        self
    }

    /// The resolved alerts kept. Default: 100.
    pub fn resolved_alerts(mut self, count: usize) -> Self {
        self.limits.resolved = count;
        self
    }

    /// The route-minutes of counts kept while Redis cannot be written, to go with the next
    /// write that gets through. Default: 4096 (about 1 MiB at most). The oldest are dropped
    /// past it, and their deliveries counted in [`FleetHealth::dropped_counts`].
    pub fn pending_minutes(mut self, count: usize) -> Self {
        self.limits.pending_minutes = count;
        self
    }

    /// Fails an operation that takes longer than `timeout`. Default: 1 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The clock heartbeats and the staleness of the fleet view are read off. Default: the
    /// system's.
    pub fn clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Connects to the Redis at `url`: fails if the URL is invalid or Redis does not accept
    /// the connection within 1 s; reconnects on demand after that.
    pub async fn connect(self, url: impl AsRef<str>) -> Result<RedisHistory, super::HistoryError> {
        let client = Client::open(url.as_ref()).map_err(super::HistoryError::unavailable)?;
        self.from_client(client).await
    }

    /// Connects with a [`redis::Client`](::redis::Client), as [`connect`](Self::connect) does.
    pub async fn from_client(self, client: Client) -> Result<RedisHistory, super::HistoryError> {
        let (connection, addr) = Connection::node(client).await.map_err(connect_error)?;
        Ok(self.build(connection, addr))
    }

    /// Uses an existing managed connection. Does no I/O.
    pub fn from_connection_manager(self, connection: ConnectionManager) -> RedisHistory {
        self.build(Connection::Node(connection), Addr::Unknown)
    }

    /// Connects to the Redis Cluster that `urls` are nodes of (one is enough), with the same
    /// bounded retries as [`RedisStore::connect_cluster`](crate::dedupe::RedisStore::connect_cluster).
    pub async fn connect_cluster(
        self,
        urls: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<RedisHistory, super::HistoryError> {
        let (connection, addr) = Connection::cluster(urls).await.map_err(connect_error)?;
        Ok(self.build(connection, addr))
    }

    /// Connects to a Redis Cluster with a client configured by its owner.
    pub async fn from_cluster_client(
        self,
        client: ClusterClient,
    ) -> Result<RedisHistory, super::HistoryError> {
        let connection = Connection::cluster_client(client).await;
        Ok(self.build(connection.map_err(connect_error)?, Addr::Unknown))
    }

    fn build(self, connection: Connection, addr: Addr) -> RedisHistory {
        let instance = self.instance.unwrap_or_else(default_instance);
        RedisHistory {
            inner: Arc::new(Inner {
                connection,
                addr,
                keys: Keys::new(&self.prefix),
                instance,
                limits: self.limits,
                timeout: self.timeout,
                clock: self.clock,
                pending: Mutex::default(),
                latest_health: Mutex::default(),
                status: Status::default(),
                origin: Instant::now(),
            }),
        }
    }
}

/// The host's name (Linux's, or `$HOSTNAME`) and the process id.
fn default_instance() -> Arc<str> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    format!("{host}:{}", std::process::id()).into()
}

fn connect_error(error: ConnectError) -> super::HistoryError {
    match error {
        ConnectError::Redis(e) => super::HistoryError::unavailable(e),
        ConnectError::TimedOut => super::HistoryError::unavailable(TimedOut {
            op: "connect",
            after: DEFAULT_TIMEOUT,
        }),
    }
}

/// A Redis operation of the history (or of the fleet watchers on it) failed.
#[derive(Debug)]
pub(crate) enum OpError {
    Redis(::redis::RedisError),
    TimedOut(TimedOut),
}

impl OpError {
    /// As a [`HistoryError`](super::HistoryError) whose source is the Redis error or the
    /// timeout itself.
    pub(crate) fn unavailable(self) -> super::HistoryError {
        match self {
            Self::Redis(e) => super::HistoryError::unavailable(e),
            Self::TimedOut(t) => super::HistoryError::unavailable(t),
        }
    }
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Redis(e) => write!(f, "redis: {e}"),
            Self::TimedOut(t) => t.fmt(f),
        }
    }
}

impl std::error::Error for OpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Redis(e) => Some(e),
            Self::TimedOut(t) => Some(t),
        }
    }
}

impl RedisHistory {
    /// Awaits the Redis operation `op` (named `name` in its timeout) for at most the history's
    /// timeout.
    pub(crate) async fn bounded<T>(
        &self,
        name: &'static str,
        op: impl std::future::Future<Output = ::redis::RedisResult<T>>,
    ) -> Result<T, OpError> {
        let after = self.inner.timeout;
        match tokio::time::timeout(after, op).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(OpError::Redis(e)),
            Err(_) => Err(OpError::TimedOut(TimedOut { op: name, after })),
        }
    }

    /// Sends `p` on a clone of the connection, bounded by the timeout.
    pub(crate) async fn pipeline<T: ::redis::FromRedisValue>(
        &self,
        name: &'static str,
        p: &::redis::Pipeline,
    ) -> Result<T, OpError> {
        let mut connection = self.inner.connection.clone();
        self.bounded(name, p.query_async(&mut connection)).await
    }
}

/// A Redis operation of the history took longer than its timeout.
#[derive(Debug)]
pub(crate) struct TimedOut {
    pub(crate) op: &'static str,
    pub(crate) after: Duration,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "redis {} timed out after {:?}", self.op, self.after)
    }
}

impl std::error::Error for TimedOut {}

/// Milliseconds since the epoch; 0 before it.
pub(crate) fn millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, duration_millis)
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn duration_millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

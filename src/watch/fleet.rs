//! The fleet watchers (feature `redis`): one instance of a fleet, chosen by a lease in Redis,
//! evaluates the watchers on the fleet's traffic and sends their alerts.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{atomic::Ordering::Relaxed, Arc, LazyLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use ::redis::{from_redis_value, pipe, FromRedisValue, Pipeline, RedisError, Value};
use tokio::time::Instant;

use super::{
    engine::{silence, Reading, Registration, Slot},
    latency::{degraded, near_timeout, Percentiles},
    traffic::{Minute, Minutes},
    AlertKind, Watch,
};
use crate::{
    history::{
        redis::{duration_millis, millis, Inner, OpError},
        LatencyHistogram, RedisHistory,
    },
    redis_link::Lua,
    report::{FleetHealth, Report},
};

/// The fleet watchers, for [`ReporterBuilder::fleet`](crate::report::ReporterBuilder::fleet)
/// (feature `redis`): the route watchers evaluated on the whole fleet's traffic, by one
/// instance at a time, and the watchers only a fleet view has: an instance that receives
/// nothing while the others are busy, and an instance whose failure rate is far above the
/// rest's.
///
/// # How
///
/// Every instance writes its reports to the fleet's
/// [`RedisHistory`](crate::history::RedisHistory). Every third of the
/// [lease's TTL](Self::lease_ttl), each instance sends a heartbeat and renews the lease or
/// tries to take it (`SET NX PX`; renewing and releasing are scripts that check the holder, so
/// an instance never renews or drops another's lease). The holder then evaluates every route of
/// the fleet (those in the history, and its own) with the thresholds its layers registered
/// ([`Watch`] defaults for a route it does not serve), on the fleet's minutes: one pipelined
/// round trip per route, in the route's slot. Minutes older than two are read once and kept.
///
/// The alerts' state (open since, resolved at) is written to Redis before the alerts go out:
/// the next holder (after a shutdown, which releases the lease, within a third of the TTL;
/// after a crash, within 1⅓ of it) reads it and carries on, so an open alert is neither
/// opened again nor left unresolved. An alert whose state could not be written is not sent;
/// the next evaluation tries again.
///
/// The watchers read what the fleet's minutes hold, and so differ from one process's in three
/// ways:
/// - **Latency** percentiles come from the history's
///   [`LatencyHistogram`](crate::history::LatencyHistogram) (buckets 1/8 of a doubling wide,
///   within 6.25 %), which instances' minutes merge exactly with `HINCRBY`, rather than from
///   the 1 %-accurate sketch one process keeps; windows are aligned on the epoch (the last
///   closed hour, by default), and the baseline reads the daily histograms.
/// - **Consecutive failures** are the sum of the current runs of failed deliveries of the live
///   instances, each written with its batches: exact when one instance gets the traffic, a
///   close reading of "the latest deliveries all failed" when several do.
/// - **Silence** is counted from the fleet's last delivery on the route, on the wall clock.
///
/// An instance is live while its last heartbeat is under 2 minutes old (or the lease's TTL,
/// if longer), and is judged by the instance watchers once it has been live for their whole
/// window. One that stops being live resolves the alerts about it.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use webhook_monitor::{history::RedisHistory, report::Reporter};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let history = RedisHistory::builder().connect("redis://127.0.0.1:6379/").await?;
/// let fleet = history
///     .fleet()
///     .lease_ttl(Duration::from_secs(30))
///     .instance_silence(10, 5.0);
/// let (reporter, guard) = Reporter::builder().fleet(fleet).spawn(history);
/// # drop(reporter);
/// # guard.shutdown(Duration::from_secs(5)).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Fleet {
    pub(crate) history: RedisHistory,
    pub(crate) lease_ttl: Duration,
    rules: InstanceRules,
}

/// The instance watchers' thresholds.
#[derive(Debug, Clone)]
struct InstanceRules {
    minutes: usize,
    silent_floor: f64,
    failure_gap: f64,
    failure_min: u32,
}

impl Default for InstanceRules {
    fn default() -> Self {
        Self {
            minutes: 5,
            silent_floor: 2.0,
            failure_gap: 0.25,
            failure_min: 10,
        }
    }
}

impl Fleet {
    /// Default [`lease_ttl`](Self::lease_ttl): 15 s.
    pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(15);

    pub(crate) fn new(history: RedisHistory) -> Self {
        Self {
            history,
            lease_ttl: Self::DEFAULT_LEASE_TTL,
            rules: InstanceRules::default(),
        }
    }

    /// How long the lease lasts unless its holder renews it. Every instance renews or tries to
    /// take the lease, and sends its heartbeat, every third of it; the holder evaluates the
    /// fleet watchers as often. A holder that stops (shut down: it releases the lease) is
    /// replaced within a third of it; one that dies, within 1⅓ of it. It is also how long the
    /// fleet view may go without a successful write before it counts as stale. Default: 15 s;
    /// at least 3 s.
    #[must_use]
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_secs(3));
        self
    }

    /// The [`InstanceSilent`](super::AlertKind::InstanceSilent) watcher: it opens when a live
    /// instance received none of a route's deliveries over the last `minutes` minutes while
    /// the other live instances averaged at least `per_minute` each per minute. Defaults to 5
    /// minutes and 2 per minute.
    #[must_use]
    pub fn instance_silence(mut self, minutes: usize, per_minute: f64) -> Self {
        self.rules.minutes = minutes.clamp(1, 60);
        self.rules.silent_floor = per_minute;
        self
    }

    /// The [`InstanceFailureRate`](super::AlertKind::InstanceFailureRate) watcher: it opens
    /// when, over the same window as the silence's, an instance's failure rate (of at least
    /// `min_handled` handled deliveries) is at least `gap` above the rest's (of at least as
    /// many) and at least twice it. Defaults to 0.25 and 10.
    #[must_use]
    pub fn instance_failure_rate(mut self, gap: f64, min_handled: u32) -> Self {
        self.rules.failure_gap = gap;
        self.rules.failure_min = min_handled.max(1);
        self
    }
}

/// Renews the lease. `KEYS[1]`: the lease. `ARGV`: the instance id, the TTL (ms). Returns 1 if
/// the instance held it (its TTL starts again), 0 otherwise.
const RENEW_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// Releases the lease. `KEYS[1]`: the lease. `ARGV`: the instance id. Returns 1 if the instance
/// held it (it is gone), 0 otherwise.
const RELEASE_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

static RENEW: LazyLock<Lua> = LazyLock::new(|| Lua::new(RENEW_LUA));
static RELEASE: LazyLock<Lua> = LazyLock::new(|| Lua::new(RELEASE_LUA));

/// The minutes the traffic watchers read: an hour and the current one.
const TRAFFIC_MINUTES: u64 = 60;
/// Minutes older than this many are taken as final and read once: later writes to them (an
/// instance catching up after Redis was away) reach the dashboard, not watchers past them.
const SETTLED_MINUTES: u64 = 2;
/// An instance is live while its last heartbeat is younger than this, or than the lease's TTL
/// if longer: heartbeats come every third of the TTL.
const LIVE: Duration = Duration::from_secs(120);
/// The longest latency window read from the fleet's minutes: a day.
const MAX_LATENCY_MINUTES: u64 = 1440;

/// The fleet watchers' state in one instance's worker: the lease, and while it holds it, the
/// alert state of every route of the fleet.
pub(crate) struct FleetWatch {
    fleet: Fleet,
    leader: bool,
    /// This instance's routes: their thresholds and budgets.
    registered: HashMap<Arc<str>, Registration>,
    /// While leader: every route evaluated since the lease was taken.
    routes: HashMap<Arc<str>, FleetRoute>,
    /// When the lease was taken: a route never seen is silent from then.
    since: SystemTime,
}

/// What one minute of a route saw, fleet-wide.
#[derive(Debug, Clone, Default)]
struct FleetMinute {
    counts: Minute,
    latency: LatencyHistogram,
}

/// One route, while this instance leads.
struct FleetRoute {
    /// `None` until read from Redis.
    slots: Option<[Slot; AlertKind::PER_ROUTE]>,
    /// Per-instance alerts: (kind's index, instance) → state.
    instance_slots: BTreeMap<(usize, Arc<str>), Slot>,
    /// Settled minutes read, by minute since the epoch.
    minutes: BTreeMap<u64, FleetMinute>,
    quiet_seen: Option<SystemTime>,
    /// The daily p95s (µs) of the baseline, and the day they were read on.
    days: Option<(u64, Vec<f64>)>,
}

/// What a route's evaluation read from Redis.
struct Read {
    minutes: Vec<(u64, Option<FleetMinute>)>,
    instances: BTreeMap<u64, HashMap<String, u64>>,
    seen: HashMap<String, u64>,
    runs: HashMap<String, u64>,
    first: Option<u64>,
    slots: Option<HashMap<String, String>>,
    days: Option<Vec<HashMap<String, u64>>>,
}

/// The fleet's live instances: last heartbeat within the lease's TTL.
struct Live {
    /// Every live instance.
    all: Vec<String>,
    /// Live for the whole instance window: the instance watchers judge these.
    settled: Vec<String>,
}

impl FleetWatch {
    pub(crate) fn new(fleet: Fleet) -> Self {
        Self {
            fleet,
            leader: false,
            registered: HashMap::new(),
            routes: HashMap::new(),
            since: SystemTime::UNIX_EPOCH,
        }
    }

    /// How often [`tick`](Self::tick) runs: a third of the lease.
    pub(crate) fn period(&self) -> Duration {
        self.fleet.lease_ttl / 3
    }

    /// Whether the fleet view is stale: no write or lease operation succeeded for a lease's
    /// TTL. This instance's own watchers open alerts only then.
    pub(crate) fn stale(&self) -> bool {
        self.fleet.history.status(self.fleet.lease_ttl).stale
    }

    /// This instance's view of the fleet, for its health report.
    pub(crate) fn health(&self) -> FleetHealth {
        self.fleet.history.status(self.fleet.lease_ttl)
    }

    /// The instance's id.
    pub(crate) fn instance(&self) -> &Arc<str> {
        &self.fleet.history.inner.instance
    }

    /// Learns a route's thresholds and budget (this instance's layers registered it).
    pub(crate) fn register(&mut self, r: &Registration) {
        self.registered.insert(Arc::clone(&r.route), r.clone());
    }

    fn history(&self) -> &Inner {
        &self.fleet.history.inner
    }

    async fn pipeline<T: FromRedisValue>(&self, p: &Pipeline) -> Result<T, OpError> {
        self.fleet.history.pipeline("fleet watchers", p).await
    }

    /// Runs a lease script with `args`; its integer reply.
    async fn script(&self, lua: &Lua, args: &[&str]) -> Result<i64, OpError> {
        let mut connection = self.history().connection.clone();
        let key = self.history().keys.lease();
        let run = async {
            let call = |verb: &str, script: &str| {
                let mut cmd = ::redis::cmd(verb);
                cmd.arg(script).arg(1).arg(&key).arg(args);
                cmd
            };
            let value = lua.run(&mut connection, call).await?;
            from_redis_value(value).map_err(RedisError::from)
        };
        self.fleet.history.bounded("lease", run).await
    }

    /// Sends the heartbeat, renews or tries to take the lease, and, holding it, evaluates the
    /// fleet watchers: the alerts that open or resolve are appended to `out`.
    pub(crate) async fn tick(&mut self, now: Instant, out: &mut Vec<Report>) {
        let inner = Arc::clone(&self.fleet.history.inner);
        let wall = (inner.clock)();
        let wall_ms = millis(wall);
        let (keys, id) = (&inner.keys, &*inner.instance);
        let mut beat = pipe();
        beat.hset(keys.instances(), id, wall_ms)
            .ignore()
            .cmd("HSETNX")
            .arg(keys.started())
            .arg(id)
            .arg(wall_ms)
            .ignore();
        let ttl = duration_millis(self.fleet.lease_ttl);
        let leader = if self.leader {
            let renewed = self.script(&RENEW, &[id, &ttl.to_string()]).await;
            renewed.map(|held| held == 1)
        } else {
            beat.cmd("SET")
                .arg(keys.lease())
                .arg(id)
                .arg("NX")
                .arg("PX")
                .arg(ttl);
            self.pipeline::<(Option<String>,)>(&beat)
                .await
                .map(|(taken,)| taken.is_some())
        };
        let beat_ok = if self.leader {
            self.pipeline::<()>(&beat).await.is_ok()
        } else {
            leader.is_ok()
        };
        let status = &inner.status;
        if beat_ok && leader.is_ok() {
            self.fleet.history.ok();
        } else {
            status.failed_writes.fetch_add(1, Relaxed);
        }
        let leader = leader.unwrap_or(false);
        if leader && !self.leader {
            self.routes.clear();
            self.since = wall;
            tracing::info!(target: "webhook_monitor::fleet", instance = id, "took the fleet watchers' lease");
        } else if !leader && self.leader {
            self.routes.clear();
            tracing::info!(target: "webhook_monitor::fleet", instance = id, "lost the fleet watchers' lease");
        }
        self.leader = leader;
        status.leader.store(leader, Relaxed);
        if leader {
            self.evaluate(now, wall, out).await;
        }
    }

    /// Gives the lease up, if held (the reporter is shutting down).
    pub(crate) async fn release(&mut self) {
        if !std::mem::take(&mut self.leader) {
            return;
        }
        let id = Arc::clone(&self.history().instance);
        let _ = self.script(&RELEASE, &[&id]).await;
        self.history().status.leader.store(false, Relaxed);
    }

    /// The fleet's routes (every route written to the history, and this instance's) and its
    /// live instances: one round trip (the fleet's slot).
    async fn fleet_view(&self, wall_ms: u64) -> Result<(Vec<Arc<str>>, Live), OpError> {
        let keys = &self.history().keys;
        let mut p = pipe();
        p.smembers(keys.routes())
            .hgetall(keys.instances())
            .hgetall(keys.started());
        let (names, beats, started): (Vec<String>, HashMap<String, u64>, HashMap<String, u64>) =
            self.pipeline(&p).await?;
        let mut names: Vec<Arc<str>> = names.into_iter().map(Arc::from).collect();
        names.extend(self.registered.keys().cloned());
        names.sort_unstable();
        names.dedup();
        let fresh = wall_ms.saturating_sub(duration_millis(self.fleet.lease_ttl.max(LIVE)));
        let window = self.fleet.rules.minutes as u64 * 60_000;
        let mut all: Vec<String> = beats
            .into_iter()
            .filter(|(_, at)| *at >= fresh)
            .map(|(id, _)| id)
            .collect();
        all.sort_unstable();
        let settled = all
            .iter()
            .filter(|id| started.get(*id).is_some_and(|s| *s + window <= wall_ms))
            .cloned()
            .collect();
        Ok((names, Live { all, settled }))
    }

    async fn evaluate(&mut self, now: Instant, wall: SystemTime, out: &mut Vec<Report>) {
        let wall_ms = millis(wall);
        let (names, live) = match self.fleet_view(wall_ms).await {
            Ok(view) => view,
            Err(error) => {
                tracing::debug!(target: "webhook_monitor::fleet", %error, "fleet watchers could not read the fleet");
                return;
            }
        };
        for name in names {
            let registration = self.registered.get(&name);
            let watch = registration.map_or_else(Watch::default, |r| r.watch.clone());
            if !watch.enabled {
                continue;
            }
            let budget = registration.and_then(|r| r.budget);
            let read = match self.read(&name, &watch, wall_ms).await {
                Ok(read) => read,
                Err(error) => {
                    tracing::debug!(target: "webhook_monitor::fleet", %error, route = &*name, "fleet watchers could not read a route");
                    continue;
                }
            };
            let since = self.since;
            let route = self
                .routes
                .entry(Arc::clone(&name))
                .or_insert_with(|| FleetRoute {
                    slots: None,
                    instance_slots: BTreeMap::new(),
                    minutes: BTreeMap::new(),
                    quiet_seen: None,
                    days: None,
                });
            let before = (route.slots, route.instance_slots.clone());
            let mut alerts = Vec::new();
            route.update(
                &name,
                &watch,
                budget,
                read,
                &live,
                &self.fleet.rules,
                now,
                wall,
                since,
                &mut alerts,
            );
            if alerts.is_empty() {
                continue;
            }
            // The alert state goes to Redis before the alerts go out: a lease holder that dies
            // next leaves its successor the state its alerts said.
            let slots = route_slots(route);
            let saved = self.save(&name, slots, now, wall).await;
            match saved {
                Ok(()) => out.extend(alerts),
                Err(error) => {
                    let route = self.routes.get_mut(&name).expect("inserted above");
                    (route.slots, route.instance_slots) = before;
                    tracing::debug!(target: "webhook_monitor::fleet", %error, route = &*name, "fleet alert state not saved; retried next time");
                }
            }
        }
    }

    /// Reads what `route`'s evaluation needs, in one round trip (one slot).
    async fn read(&self, name: &str, watch: &Watch, wall_ms: u64) -> Result<Read, OpError> {
        let keys = &self.history().keys;
        let now_min = wall_ms / 60_000;
        let route = self.routes.get(name);
        let (from, _) = minute_range(watch, now_min);
        let settled_before = now_min.saturating_sub(SETTLED_MINUTES);
        let wanted: Vec<u64> = (from..=now_min)
            .filter(|m| *m >= settled_before || route.is_none_or(|r| !r.minutes.contains_key(m)))
            .collect();
        let window = self.fleet.rules.minutes as u64;
        let instance_minutes: Vec<u64> =
            (now_min + 1 - window.min(now_min + 1)..=now_min).collect();
        let today = wall_ms / 86_400_000;
        let want_days = route.is_none_or(|r| r.days.as_ref().is_none_or(|(day, _)| *day != today));
        let want_slots = route.is_none_or(|r| r.slots.is_none());
        let mut p = pipe();
        for m in &wanted {
            p.hgetall(keys.minute(name, *m));
        }
        for m in &instance_minutes {
            p.hgetall(keys.instance_minute(name, *m));
        }
        p.hgetall(keys.seen(name))
            .hgetall(keys.run(name))
            .hget(keys.info(name), "first");
        if want_slots {
            p.hgetall(keys.slots(name));
        }
        let days: Vec<u64> = if want_days {
            (1..=watch.baseline_days as u64)
                .filter_map(|back| today.checked_sub(back))
                .collect()
        } else {
            Vec::new()
        };
        for day in &days {
            p.hgetall(keys.day(name, *day));
        }
        let mut values: std::vec::IntoIter<Value> =
            self.pipeline::<Vec<Value>>(&p).await?.into_iter();
        let mut next = || values.next().unwrap_or(Value::Nil);
        let hash = |v: Value| -> HashMap<String, u64> { from_redis_value(v).unwrap_or_default() };
        let minutes = wanted
            .iter()
            .map(|m| (*m, parse_minute(&hash(next()))))
            .collect();
        let instances = instance_minutes
            .iter()
            .map(|m| (*m, hash(next())))
            .collect();
        let seen = hash(next());
        let runs = hash(next());
        let first = from_redis_value::<Option<u64>>(next()).ok().flatten();
        let slots = want_slots.then(|| from_redis_value(next()).unwrap_or_default());
        let days = want_days.then(|| days.iter().map(|_| hash(next())).collect());
        Ok(Read {
            minutes,
            instances,
            seen,
            runs,
            first,
            slots,
            days,
        })
    }

    /// Writes `route`'s alert states.
    async fn save(
        &self,
        name: &str,
        slots: Vec<(String, Slot)>,
        now: Instant,
        wall: SystemTime,
    ) -> Result<(), OpError> {
        let key = self.history().keys.slots(name);
        let mut p = pipe();
        for (field, slot) in slots {
            let opened = slot.opened_at().map_or(0, millis);
            let resolved = slot.resolved_at().map_or(0, |at| {
                millis(wall).saturating_sub(duration_millis(now.saturating_duration_since(at)))
            });
            p.hset(&key, field, format!("{opened}:{resolved}")).ignore();
        }
        expire(&mut p, &key, self.history().limits.retention);
        self.pipeline::<()>(&p).await
    }
}

/// Every slot of a route with its field name: the kind, and the instance for an instance's.
fn route_slots(route: &FleetRoute) -> Vec<(String, Slot)> {
    let kinds = route.slots.iter().flat_map(|slots| {
        AlertKind::ALL[..AlertKind::PER_ROUTE]
            .iter()
            .map(|kind| (kind.as_str().to_owned(), slots[kind.index()]))
    });
    let instances = route.instance_slots.iter().map(|((kind, id), slot)| {
        (
            format!("{}\u{1f}{id}", AlertKind::ALL[*kind].as_str()),
            *slot,
        )
    });
    kinds.chain(instances).collect()
}

fn expire(p: &mut Pipeline, key: &str, ttl: Duration) {
    p.cmd("PEXPIRE")
        .arg(key)
        .arg(duration_millis(ttl).max(1))
        .ignore();
}

/// The minutes a route's evaluation needs: the traffic watchers' hour and the last closed
/// latency window. Returns the first minute and the window's `(start, end)` minutes.
fn minute_range(watch: &Watch, now_min: u64) -> (u64, (u64, u64)) {
    let window = (watch.latency_window.as_secs() / 60).clamp(1, MAX_LATENCY_MINUTES);
    let end = now_min - now_min % window;
    let start = end.saturating_sub(window);
    (
        start.min(now_min.saturating_sub(TRAFFIC_MINUTES)),
        (start, end),
    )
}

/// A minute's hash as the history writes it; `None` when it is empty (no traffic).
fn parse_minute(hash: &HashMap<String, u64>) -> Option<FleetMinute> {
    if hash.is_empty() {
        return None;
    }
    let get = |field: &str| {
        hash.get(field)
            .map_or(0, |n| u32::try_from(*n).unwrap_or(u32::MAX))
    };
    let total: u32 = hash
        .iter()
        .filter(|(k, _)| k.starts_with("o:"))
        .map(|(_, n)| u32::try_from(*n).unwrap_or(u32::MAX))
        .fold(0, u32::saturating_add);
    let latency = parse_latency(hash);
    Some(FleetMinute {
        counts: Minute {
            total,
            rejected: get("o:rejected"),
            handled: get("h"),
            failed: get("x"),
            retried: get("w"),
        },
        latency,
    })
}

/// The latency histogram in a hash's `l:<bucket>` fields.
fn parse_latency(hash: &HashMap<String, u64>) -> LatencyHistogram {
    let mut latency = LatencyHistogram::default();
    for (field, n) in hash {
        if let Some(bucket) = field.strip_prefix("l:").and_then(|b| b.parse().ok()) {
            latency.add(bucket, u32::try_from(*n).unwrap_or(u32::MAX));
        }
    }
    latency
}

impl FleetRoute {
    #[allow(clippy::too_many_arguments)]
    fn update(
        &mut self,
        name: &Arc<str>,
        w: &Watch,
        budget: Option<Duration>,
        read: Read,
        live: &Live,
        fleet: &InstanceRules,
        now: Instant,
        wall: SystemTime,
        since: SystemTime,
        out: &mut Vec<Report>,
    ) {
        let wall_ms = millis(wall);
        let now_min = wall_ms / 60_000;
        let settled_before = now_min.saturating_sub(SETTLED_MINUTES);
        let mut fresh = BTreeMap::new();
        for (minute, counts) in read.minutes {
            let counts = counts.unwrap_or_default();
            if minute < settled_before {
                self.minutes.insert(minute, counts);
            } else {
                fresh.insert(minute, counts);
            }
        }
        let (from, (window_start, window_end)) = minute_range(w, now_min);
        self.minutes.retain(|m, _| *m >= from);
        let minute = |m: u64| {
            fresh
                .get(&m)
                .or_else(|| self.minutes.get(&m))
                .cloned()
                .unwrap_or_default()
        };
        let first = read.first.unwrap_or(now_min);
        let kept = now_min.saturating_sub(TRAFFIC_MINUTES);
        let ring = (kept..=now_min).map(|m| minute(m).counts);
        let minutes = Minutes::from_counts(ring, now_min, now_min.saturating_sub(first));
        let mut window = LatencyHistogram::default();
        for m in window_start..window_end {
            window.merge(&minute(m).latency);
        }
        let last = (window.count() >= w.latency_min_samples)
            .then(|| Percentiles::of_histogram(&window))
            .flatten();
        if let Some(days) = read.days {
            let p95s = days
                .iter()
                .filter_map(|hash| {
                    let day = parse_latency(hash);
                    (day.count() >= w.latency_min_samples)
                        .then(|| Percentiles::of_histogram(&day))
                        .flatten()
                        .map(|p| p.p95)
                })
                .collect();
            self.days = Some((wall_ms / 86_400_000, p95s));
        }
        if let Some(saved) = &read.slots {
            self.slots = Some(std::array::from_fn(|i| {
                restore(saved.get(AlertKind::ALL[i].as_str()), now, wall)
            }));
            self.instance_slots = saved
                .iter()
                .filter_map(|(field, value)| {
                    let (kind, id) = field.split_once('\u{1f}')?;
                    let kind = *AlertKind::ALL.iter().find(|k| k.as_str() == kind)?;
                    Some((
                        (kind.index(), Arc::from(id)),
                        restore(Some(value), now, wall),
                    ))
                })
                .collect();
        }
        let slots = self.slots.get_or_insert_with(Default::default);
        let last_seen = read
            .seen
            .values()
            .max()
            .map_or(since, |ms| UNIX_EPOCH + Duration::from_millis(*ms));
        let live_runs: u64 = read
            .runs
            .iter()
            .filter(|(id, _)| live.all.contains(id))
            .map(|(_, n)| *n)
            .sum();
        for kind in &AlertKind::ALL[..AlertKind::PER_ROUTE] {
            let reading = match kind {
                AlertKind::Spike => minutes.spike(w),
                AlertKind::Drop => minutes.drop_to_zero(w),
                AlertKind::Silence => {
                    let since = |later: SystemTime, earlier: SystemTime| {
                        later.duration_since(earlier).unwrap_or_default()
                    };
                    silence(w, wall, last_seen, &mut self.quiet_seen, wall, since)
                }
                AlertKind::AllRejected => minutes.all_rejected(w),
                AlertKind::RetryStorm => Some(minutes.retry_storm(w)),
                AlertKind::FailureRate => minutes.failure_rate(w),
                AlertKind::ConsecutiveFailures => {
                    let run = u32::try_from(live_runs).unwrap_or(u32::MAX);
                    Some(Reading::new(
                        run >= w.consecutive_failures,
                        [("consecutive_failures", run.into())],
                    ))
                }
                AlertKind::NearTimeout => last.and_then(|p| near_timeout(p, w, budget?)),
                AlertKind::LatencyDegraded => last.and_then(|p| {
                    let days = self.days.as_ref()?;
                    degraded(p, days.1.iter().copied(), w)
                }),
                AlertKind::MemoryGrowth
                | AlertKind::InstanceSilent
                | AlertKind::InstanceFailureRate => None,
            };
            if let Some(reading) = reading {
                let slot = &mut slots[kind.index()];
                out.extend(slot.update(*kind, name, reading, now, wall, w.cooldown));
            }
        }
        self.instances(name, w, &read.instances, live, fleet, now, wall, out);
    }

    /// The instance watchers: each live instance against the rest of the fleet, on the route.
    #[allow(clippy::too_many_arguments)]
    fn instances(
        &mut self,
        name: &Arc<str>,
        w: &Watch,
        counts: &BTreeMap<u64, HashMap<String, u64>>,
        live: &Live,
        fleet: &InstanceRules,
        now: Instant,
        wall: SystemTime,
        out: &mut Vec<Report>,
    ) {
        let sum = |what: &str, ids: &mut dyn Iterator<Item = &str>| -> u64 {
            ids.map(|id| {
                let field = format!("{what}:{id}");
                counts.values().filter_map(|h| h.get(&field)).sum::<u64>()
            })
            .sum()
        };
        let minutes = fleet.minutes as u64;
        // The settled live instances, and those with an open alert (to resolve it when they
        // are gone).
        let mut ids: BTreeSet<Arc<str>> = live.settled.iter().map(|id| Arc::from(&**id)).collect();
        ids.extend(
            self.instance_slots
                .iter()
                .filter(|(_, slot)| slot.is_open())
                .map(|((_, id), _)| Arc::clone(id)),
        );
        for id in ids {
            let judged = live.settled.iter().any(|s| **s == *id);
            let others = || live.all.iter().map(String::as_str).filter(|o| *o != &*id);
            let silent = if !judged {
                Some(Reading::new(false, []))
            } else if others().next().is_none() {
                None
            } else {
                let n = sum("n", &mut std::iter::once(&*id));
                let rest = sum("n", &mut others());
                let per = rest as f64 / (others().count() as u64 * minutes) as f64;
                Some(Reading::new(
                    n == 0 && per >= fleet.silent_floor,
                    [
                        ("deliveries", n.into()),
                        ("others_per_minute", per.into()),
                        ("instances", (live.all.len() as u64).into()),
                        ("window_minutes", minutes.into()),
                    ],
                ))
            };
            let failing = if judged {
                let (handled, failed) = (
                    sum("h", &mut std::iter::once(&*id)),
                    sum("x", &mut std::iter::once(&*id)),
                );
                let (rest_handled, rest_failed) =
                    (sum("h", &mut others()), sum("x", &mut others()));
                let min = u64::from(fleet.failure_min);
                (handled >= min && rest_handled >= min).then(|| {
                    let rate = failed as f64 / handled as f64;
                    let rest = rest_failed as f64 / rest_handled as f64;
                    Reading::new(
                        rate - rest >= fleet.failure_gap && rate >= 2.0 * rest,
                        [
                            ("failure_rate", rate.into()),
                            ("failed", failed.into()),
                            ("handled", handled.into()),
                            ("others_failure_rate", rest.into()),
                            ("window_minutes", minutes.into()),
                        ],
                    )
                })
            } else {
                Some(Reading::new(false, []))
            };
            for (kind, reading) in [
                (AlertKind::InstanceSilent, silent),
                (AlertKind::InstanceFailureRate, failing),
            ] {
                let Some(reading) = reading else { continue };
                let slot = self
                    .instance_slots
                    .entry((kind.index(), Arc::clone(&id)))
                    .or_default();
                if let Some(mut alert) = slot.update(kind, name, reading, now, wall, w.cooldown) {
                    if let Report::Alert(alert) = &mut alert {
                        alert.instance = Some(Arc::clone(&id));
                    }
                    out.push(alert);
                }
            }
        }
    }
}

/// A slot as saved (`opened_ms:resolved_ms`, 0 for none), with its resolution on the worker's
/// clock.
fn restore(saved: Option<&String>, now: Instant, wall: SystemTime) -> Slot {
    let parse = |s: &str| s.parse::<u64>().ok().filter(|ms| *ms > 0);
    let (opened, resolved) = saved
        .and_then(|s| s.split_once(':'))
        .map_or((None, None), |(o, r)| (parse(o), parse(r)));
    let opened_at = opened.map(|ms| UNIX_EPOCH + Duration::from_millis(ms));
    let resolved_at = resolved.map(|ms| {
        let ago = millis(wall).saturating_sub(ms);
        now.checked_sub(Duration::from_millis(ago)).unwrap_or(now)
    });
    Slot::restored(opened_at, resolved_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(minutes: &[(u64, &[(&str, u64)])]) -> BTreeMap<u64, HashMap<String, u64>> {
        minutes
            .iter()
            .map(|(m, fields)| {
                let hash = fields.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
                (*m, hash)
            })
            .collect()
    }

    fn route() -> FleetRoute {
        FleetRoute {
            slots: None,
            instance_slots: BTreeMap::new(),
            minutes: BTreeMap::new(),
            quiet_seen: None,
            days: None,
        }
    }

    fn live(ids: &[&str]) -> Live {
        let ids: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
        Live {
            all: ids.clone(),
            settled: ids,
        }
    }

    /// The alerts the instance watchers raise on `counts`, as (kind, state, instance).
    fn judge(
        route: &mut FleetRoute,
        fleet: &InstanceRules,
        counts: &BTreeMap<u64, HashMap<String, u64>>,
        live: &Live,
    ) -> Vec<(AlertKind, crate::watch::AlertState, String)> {
        let mut out = Vec::new();
        let name: Arc<str> = "orders".into();
        let w = Watch::default().cooldown(Duration::ZERO);
        route.instances(
            &name,
            &w,
            counts,
            live,
            fleet,
            Instant::now(),
            SystemTime::now(),
            &mut out,
        );
        out.into_iter()
            .filter_map(|r| match r {
                Report::Alert(a) => Some((a.kind, a.state, a.instance?.to_string())),
                _ => None,
            })
            .collect()
    }

    fn fleet() -> InstanceRules {
        InstanceRules {
            minutes: 3,
            ..InstanceRules::default()
        }
    }

    #[test]
    fn an_idle_instance_among_busy_ones_is_silent_until_it_gets_a_delivery() {
        use crate::watch::AlertState::{Opened, Resolved};
        let (fleet, mut route, live) = (fleet(), route(), live(&["a", "b", "c"]));
        let busy = counts(&[
            (1, &[("n:a", 9), ("n:c", 9)]),
            (2, &[("n:a", 9), ("n:c", 9)]),
        ]);
        assert_eq!(
            judge(&mut route, &fleet, &busy, &live),
            vec![(AlertKind::InstanceSilent, Opened, "b".to_owned())]
        );
        assert_eq!(
            judge(&mut route, &fleet, &busy, &live),
            vec![],
            "held, not sent again"
        );
        let quiet = counts(&[(1, &[("n:a", 1)])]);
        assert_eq!(
            judge(&mut route, &fleet, &quiet, &live),
            vec![(AlertKind::InstanceSilent, Resolved, "b".to_owned())],
            "the others average under 2 a minute, not busy: b resolves, c is not named"
        );
    }

    #[test]
    fn an_instance_that_is_gone_resolves_its_alerts_and_a_lone_one_is_not_judged() {
        use crate::watch::AlertState::{Opened, Resolved};
        let (fleet, mut route) = (fleet(), route());
        let busy = counts(&[(1, &[("n:a", 30)])]);
        assert_eq!(
            judge(&mut route, &fleet, &busy, &live(&["a", "b"])),
            vec![(AlertKind::InstanceSilent, Opened, "b".to_owned())]
        );
        assert_eq!(
            judge(&mut route, &fleet, &busy, &live(&["a"])),
            vec![(AlertKind::InstanceSilent, Resolved, "b".to_owned())],
            "b stopped: not silent, gone"
        );
        assert_eq!(
            judge(&mut route, &fleet, &counts(&[]), &live(&["a"])),
            vec![]
        );
    }

    #[test]
    fn an_instance_failing_far_more_than_the_rest_is_named() {
        use crate::watch::AlertState::{Opened, Resolved};
        let (fleet, mut route, live) = (fleet(), route(), live(&["a", "b", "c"]));
        let fields: &[(&str, u64)] = &[
            ("n:a", 20),
            ("h:a", 20),
            ("x:a", 1),
            ("n:b", 20),
            ("h:b", 20),
            ("x:b", 12),
            ("n:c", 20),
            ("h:c", 20),
            ("x:c", 1),
        ];
        assert_eq!(
            judge(&mut route, &fleet, &counts(&[(5, fields)]), &live),
            vec![(AlertKind::InstanceFailureRate, Opened, "b".to_owned())]
        );
        // All failing alike: not one instance's problem.
        let alike: &[(&str, u64)] = &[
            ("n:a", 20),
            ("h:a", 20),
            ("x:a", 12),
            ("n:b", 20),
            ("h:b", 20),
            ("x:b", 12),
            ("n:c", 20),
            ("h:c", 20),
            ("x:c", 12),
        ];
        assert_eq!(
            judge(&mut route, &fleet, &counts(&[(5, alike)]), &live),
            vec![(AlertKind::InstanceFailureRate, Resolved, "b".to_owned())]
        );
        // Too few handled to tell: the state holds.
        let few: &[(&str, u64)] = &[("n:a", 3), ("h:a", 3), ("x:a", 3), ("n:b", 3), ("h:b", 3)];
        assert_eq!(
            judge(&mut route, &fleet, &counts(&[(5, few)]), &live),
            vec![]
        );
    }

    #[test]
    fn a_saved_slot_comes_back_with_its_times() {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let opened = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let saved = format!("{}:{}", millis(opened), millis(wall) - 30_000);
        let slot = restore(Some(&saved), now, wall);
        assert_eq!(slot.opened_at(), Some(opened));
        let ago = now.duration_since(slot.resolved_at().unwrap());
        assert_eq!(ago, Duration::from_secs(30));
        let empty = restore(Some(&"0:0".to_owned()), now, wall);
        assert!(!empty.is_open() && empty.resolved_at().is_none());
        assert!(!restore(Some(&"garbage".to_owned()), now, wall).is_open());
    }

    #[test]
    fn the_latency_window_read_is_the_last_closed_one() {
        let w = Watch::default(); // an hour
        let now = 1000 * 60 + 17; // 17 minutes into an hour
        assert_eq!(
            minute_range(&w, now),
            (now - 17 - 60, (now - 17 - 60, now - 17))
        );
        let short = Watch::default().latency_window(Duration::from_secs(300), 20);
        assert_eq!(
            minute_range(&short, now),
            (now - 60, (now - 2 - 5, now - 2))
        );
    }
}

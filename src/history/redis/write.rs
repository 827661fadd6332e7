//! The writing side of [`RedisHistory`]: each batch of reports becomes one pipelined, atomic
//! round trip (per route and one for the fleet's keys, on a cluster).

use std::{
    collections::BTreeMap,
    sync::{atomic::Ordering::Relaxed, Arc, PoisonError},
    time::Duration,
};

use ::redis::{pipe, Pipeline};
use futures_util::future::join_all;
use hashbrown::HashMap;

use super::{duration_millis, millis, Inner, RedisHistory};
use crate::{
    history::{redis::alert_field_of, LatencyHistogram, Minute},
    report::{DeliveryReport, HealthReport, Report, RouteInfo, Sink, SinkError},
    watch::{judge, Alert, AlertState},
};

/// How long per-instance minutes are kept: the instance watchers look back an hour at most.
pub(crate) const INSTANCE_MINUTES_TTL: Duration = Duration::from_secs(2 * 3600);
/// How long daily latency histograms are kept: the latency baseline looks back 28 days by
/// default.
pub(crate) const DAYS_TTL: Duration = Duration::from_secs(60 * 86_400);
/// How long an instance's latest health report is kept.
const HEALTH_TTL: Duration = Duration::from_secs(3600);
/// The most alerts kept while Redis cannot be written.
const PENDING_ALERTS: usize = 1024;

/// What was not written yet.
#[derive(Default)]
pub(crate) struct Pending {
    routes: BTreeMap<Arc<str>, RouteNews>,
    alerts: Vec<Alert>,
    health: Option<Box<HealthReport>>,
    registered: Vec<RouteInfo>,
    /// This instance's current run of failed deliveries, per route: kept across batches.
    runs: HashMap<Arc<str>, u32>,
}

/// One route's news since the last write.
#[derive(Default)]
struct RouteNews {
    minutes: BTreeMap<u64, Rollup>,
    /// Per minute: deliveries, handled, failed.
    instance_minutes: BTreeMap<u64, [u32; 3]>,
    days: BTreeMap<u64, LatencyHistogram>,
    /// The latest delivery, ms since the epoch.
    seen_ms: u64,
    provider: Option<Arc<str>>,
    /// The batch's deliveries as report JSON: not kept when the write fails.
    log: Vec<String>,
}

/// One route's minute, as written: the history's counts and the watchers'.
#[derive(Default)]
struct Rollup {
    counts: Minute,
    handled: u32,
    failed: u32,
    /// Flagged `many_attempts` or `rapid_retries`.
    flagged: u32,
}

impl Rollup {
    fn merge(&mut self, other: &Self) {
        self.counts.merge(&other.counts);
        self.handled += other.handled;
        self.failed += other.failed;
        self.flagged += other.flagged;
    }
}

impl RouteNews {
    /// Deliveries counted in its minutes.
    fn deliveries(&self) -> u64 {
        self.minutes.values().map(|m| m.counts.deliveries()).sum()
    }

    /// Takes `other`'s counts back (a failed write), its log entries excepted.
    fn merge(&mut self, other: Self) {
        for (minute, rollup) in other.minutes {
            self.minutes.entry(minute).or_default().merge(&rollup);
        }
        for (minute, [n, h, x]) in other.instance_minutes {
            let counts = self.instance_minutes.entry(minute).or_default();
            counts[0] += n;
            counts[1] += h;
            counts[2] += x;
        }
        for (day, histogram) in other.days {
            self.days.entry(day).or_default().merge(&histogram);
        }
        self.seen_ms = self.seen_ms.max(other.seen_ms);
        self.provider = self.provider.take().or(other.provider);
    }
}

impl Pending {
    /// Counts `report`; keeps its JSON for the recent deliveries when `log` (some are kept).
    fn record(&mut self, report: &DeliveryReport, log: bool) {
        let delivery = &report.delivery;
        let route = &delivery.data().route;
        if !self.routes.contains_key(route) {
            self.routes.insert(Arc::clone(route), RouteNews::default());
        }
        let Some(news) = self.routes.get_mut(route) else {
            return;
        };
        let received = millis(delivery.received_at());
        let (minute, day) = (received / 60_000, received / 86_400_000);
        let (handled, failed, _) = judge(report);
        let rollup = news.minutes.entry(minute).or_default();
        rollup.counts.record(report);
        rollup.handled += u32::from(handled);
        rollup.failed += u32::from(failed);
        rollup.flagged += u32::from(report.flags.many_attempts || report.flags.rapid_retries);
        let by_instance = news.instance_minutes.entry(minute).or_default();
        by_instance[0] += 1;
        by_instance[1] += u32::from(handled);
        by_instance[2] += u32::from(failed);
        if crate::history::handled(report.outcome) {
            news.days.entry(day).or_default().record(report.total);
        }
        news.seen_ms = news.seen_ms.max(received);
        if let Some(provider) = delivery.provider() {
            if news.provider.as_deref() != Some(provider) {
                news.provider = Some(provider.into());
            }
        }
        // Most of the history's cost per report (about 14,000 of 25,500 instructions).
        if log {
            if let Ok(json) = serde_json::to_string(report) {
                news.log.push(json);
            }
        }
        if handled {
            let run = self.runs.entry(Arc::clone(route)).or_insert(0);
            *run = if failed { *run + 1 } else { 0 };
        }
    }

    /// Counts not written yet, in deliveries.
    fn deliveries(&self) -> u64 {
        self.routes.values().map(RouteNews::deliveries).sum()
    }

    /// Drops the oldest minutes past `cap` route-minutes; returns the deliveries they counted.
    fn trim(&mut self, cap: usize) -> u64 {
        let mut dropped = 0;
        loop {
            let held: usize = self.routes.values().map(|r| r.minutes.len()).sum();
            if held <= cap {
                return dropped;
            }
            let oldest = self
                .routes
                .iter()
                .filter_map(|(name, r)| Some((*r.minutes.keys().next()?, Arc::clone(name))))
                .min();
            let Some((minute, route)) = oldest else {
                return dropped;
            };
            if let Some(news) = self.routes.get_mut(&route) {
                if let Some(rollup) = news.minutes.remove(&minute) {
                    dropped += rollup.counts.deliveries();
                }
                news.instance_minutes.remove(&minute);
            }
        }
    }
}

/// One write: what was taken from [`Pending`], to be put back if it fails.
struct Work {
    routes: BTreeMap<Arc<str>, RouteNews>,
    alerts: Vec<Alert>,
    health: Option<Box<HealthReport>>,
    registered: Vec<RouteInfo>,
    /// This instance's runs on the routes with news.
    runs: Vec<(Arc<str>, u32)>,
}

impl RedisHistory {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `pipes` at once, each bounded by the timeout; the result of each.
    async fn send_pipes(&self, pipes: &[Pipeline]) -> Vec<Result<(), SinkError>> {
        let writes = pipes.iter().map(|p| async move {
            let written = self.pipeline::<()>("write", p).await;
            written.map_err(SinkError::new)
        });
        join_all(writes).await
    }
}

impl Sink for RedisHistory {
    async fn send(&self, batch: &[Report]) -> Result<(), SinkError> {
        let inner = &*self.inner;
        let log = inner.limits.deliveries > 0;
        let work = {
            let mut pending = self.pending();
            for report in batch {
                match report {
                    Report::Delivery(d) => pending.record(d, log),
                    Report::Alert(alert) => pending.alerts.push(alert.clone()),
                    Report::Health(health) => {
                        self.keep_health(health);
                        pending.health = Some(health.clone());
                    }
                }
            }
            let runs = pending
                .routes
                .keys()
                .map(|r| (Arc::clone(r), pending.runs.get(r).copied().unwrap_or(0)))
                .collect();
            Work {
                routes: std::mem::take(&mut pending.routes),
                alerts: std::mem::take(&mut pending.alerts),
                health: pending.health.take(),
                registered: std::mem::take(&mut pending.registered),
                runs,
            }
        };
        let now = millis((inner.clock)());
        // One pipeline per route and one for the fleet's keys on a cluster (each in one slot);
        // all in one on a single Redis.
        let cluster = inner.connection.is_cluster();
        let mut pipes: Vec<Pipeline> = Vec::new();
        let mut owners: Vec<Option<Arc<str>>> = Vec::new();
        let mut fleet = pipe();
        fleet.atomic();
        let mut budgets: BTreeMap<&Arc<str>, Duration> = BTreeMap::new();
        for info in &work.registered {
            if let Some(budget) = info.budget {
                budgets.insert(&info.name, budget);
            }
        }
        let mut touched: Vec<&Arc<str>> =
            work.routes.keys().chain(budgets.keys().copied()).collect();
        touched.sort_unstable();
        touched.dedup();
        for route in touched {
            let news = work.routes.get(route);
            let run = work
                .runs
                .iter()
                .find(|(r, _)| r == route)
                .map_or(0, |r| r.1);
            let budget = budgets.get(route).copied();
            if cluster {
                let mut p = pipe();
                p.atomic();
                write_route(inner, &mut p, route, news, run, budget);
                pipes.push(p);
                owners.push(Some(Arc::clone(route)));
            } else {
                write_route(inner, &mut fleet, route, news, run, budget);
            }
        }
        write_fleet(inner, &mut fleet, &work, now);
        pipes.push(fleet);
        owners.push(None);
        let results = self.send_pipes(&pipes).await;
        let failed: Vec<Option<&Arc<str>>> = owners
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.is_err())
            .map(|(owner, _)| owner.as_ref())
            .collect();
        if failed.len() < results.len() {
            self.ok();
        }
        let status = &inner.status;
        if let Some(Err(error)) = results.iter().find(|r| r.is_err()) {
            status.failed_writes.fetch_add(1, Relaxed);
            tracing::debug!(
                target: "webhook_monitor::history", %error, "the fleet history could not be written"
            );
        }
        // What failed goes back: all of it on one Redis; on a cluster, the failed pipelines'.
        let fleet_failed = failed.contains(&None);
        let route_failed = |route: &Arc<str>| {
            if cluster {
                failed.contains(&Some(route))
            } else {
                fleet_failed
            }
        };
        let mut pending = self.pending();
        for (route, news) in work.routes {
            if route_failed(&route) {
                let lost = news.log.len() as u64;
                status.lost_deliveries.fetch_add(lost, Relaxed);
                pending.routes.entry(route).or_default().merge(news);
            }
        }
        let registered = work.registered.into_iter();
        let registered: Vec<RouteInfo> = registered
            .filter(|r| fleet_failed || route_failed(&r.name))
            .chain(std::mem::take(&mut pending.registered))
            .collect();
        pending.registered = registered;
        if fleet_failed {
            let mut alerts = work.alerts;
            alerts.append(&mut pending.alerts);
            let over = alerts.len().saturating_sub(PENDING_ALERTS);
            status.dropped_alerts.fetch_add(over as u64, Relaxed);
            alerts.drain(..over);
            pending.alerts = alerts;
            pending.health = pending.health.take().or(work.health);
        }
        let dropped = pending.trim(inner.limits.pending_minutes);
        status.dropped_counts.fetch_add(dropped, Relaxed);
        status
            .pending_deliveries
            .store(pending.deliveries(), Relaxed);
        Ok(())
    }

    fn register_routes(&self, routes: &[RouteInfo]) {
        self.pending().registered.extend_from_slice(routes);
    }
}

/// Adds `n` to `field` of the hash at `key`, unless it is 0.
fn incr(p: &mut Pipeline, key: &str, field: &str, n: u32) {
    if n > 0 {
        p.cmd("HINCRBY").arg(key).arg(field).arg(n).ignore();
    }
}

fn expire(p: &mut Pipeline, key: &str, ttl: Duration) {
    p.cmd("PEXPIRE")
        .arg(key)
        .arg(duration_millis(ttl).max(1))
        .ignore();
}

fn incr_latency(p: &mut Pipeline, key: &str, histogram: &LatencyHistogram) {
    for (bucket, count) in histogram.buckets() {
        incr(p, key, &format!("l:{bucket}"), count);
    }
}

/// One route's commands: its minutes, per-instance minutes, days, log, and what is known of it.
fn write_route(
    inner: &Inner,
    p: &mut Pipeline,
    route: &str,
    news: Option<&RouteNews>,
    run: u32,
    budget: Option<Duration>,
) {
    let (keys, id, retention) = (&inner.keys, &*inner.instance, inner.limits.retention);
    let info = keys.info(route);
    if let Some(budget) = budget {
        p.hset(&info, "budget_ms", duration_millis(budget)).ignore();
    }
    let Some(news) = news else {
        // A registration alone: only the budget was written.
        expire(p, &info, retention);
        return;
    };
    for (minute, rollup) in &news.minutes {
        let key = keys.minute(route, *minute);
        let c = &rollup.counts;
        for (name, n) in c.outcomes.named() {
            incr(p, &key, &format!("o:{name}"), n);
        }
        for (name, n) in c.flags.named() {
            incr(p, &key, &format!("f:{name}"), n);
        }
        incr(p, &key, "r", c.retries);
        incr(p, &key, "h", rollup.handled);
        incr(p, &key, "x", rollup.failed);
        incr(p, &key, "w", rollup.flagged);
        incr_latency(p, &key, &c.latency);
        expire(p, &key, retention);
    }
    for (minute, [n, h, x]) in &news.instance_minutes {
        let key = keys.instance_minute(route, *minute);
        incr(p, &key, &format!("n:{id}"), *n);
        incr(p, &key, &format!("h:{id}"), *h);
        incr(p, &key, &format!("x:{id}"), *x);
        expire(p, &key, INSTANCE_MINUTES_TTL);
    }
    for (day, histogram) in &news.days {
        let key = keys.day(route, *day);
        incr_latency(p, &key, histogram);
        expire(p, &key, DAYS_TTL);
    }
    if let Some(first) = news.minutes.keys().next() {
        p.cmd("HSETNX").arg(&info).arg("first").arg(first).ignore();
    }
    if let Some(provider) = &news.provider {
        p.hset(&info, "provider", &**provider).ignore();
    }
    expire(p, &info, retention);
    if news.seen_ms > 0 {
        let seen = keys.seen(route);
        p.hset(&seen, id, news.seen_ms).ignore();
        expire(p, &seen, retention);
        let runs = keys.run(route);
        p.hset(&runs, id, run).ignore();
        expire(p, &runs, retention);
    }
    if !news.log.is_empty() {
        let log = keys.log(route);
        // The stream keeps the newest `deliveries`: older ones of a bigger batch would be
        // trimmed at once.
        let skip = news.log.len().saturating_sub(inner.limits.deliveries);
        for entry in &news.log[skip..] {
            p.cmd("XADD")
                .arg(&log)
                .arg("MAXLEN")
                .arg("~")
                .arg(inner.limits.deliveries)
                .arg("*")
                .arg("r")
                .arg(entry)
                .ignore();
        }
        expire(p, &log, retention);
    }
}

/// The fleet's keys: route names, this instance's heartbeat and health, alerts.
fn write_fleet(inner: &Inner, p: &mut Pipeline, work: &Work, now: u64) {
    let (keys, id) = (&inner.keys, &*inner.instance);
    let names: Vec<&str> = work
        .routes
        .keys()
        .map(|r| &**r)
        .chain(work.registered.iter().map(|r| &*r.name))
        .collect();
    if !names.is_empty() {
        p.sadd(keys.routes(), names).ignore();
    }
    p.hset(keys.instances(), id, now).ignore();
    p.cmd("HSETNX")
        .arg(keys.started())
        .arg(id)
        .arg(now)
        .ignore();
    if let Some(health) = &work.health {
        if let Ok(json) = serde_json::to_string(&**health) {
            p.cmd("SET")
                .arg(keys.health(id))
                .arg(json)
                .arg("PX")
                .arg(duration_millis(HEALTH_TTL))
                .ignore();
        }
    }
    let mut resolved = false;
    for alert in &work.alerts {
        let Ok(json) = serde_json::to_string(alert) else {
            continue;
        };
        let field = alert_field_of(alert);
        match alert.state {
            AlertState::Opened => {
                p.hset(keys.open_alerts(), field, json).ignore();
            }
            AlertState::Resolved => {
                p.hdel(keys.open_alerts(), field).ignore();
                p.lpush(keys.resolved_alerts(), json).ignore();
                resolved = true;
            }
        }
    }
    if resolved {
        let last = isize::try_from(inner.limits.resolved).unwrap_or(isize::MAX) - 1;
        p.ltrim(keys.resolved_alerts(), 0, last).ignore();
    }
}

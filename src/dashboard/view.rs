//! The figures the pages and the API show, computed once here from the [`History`]: both
//! render these structs, neither computes anything of its own.

use std::{
    borrow::Cow,
    fmt::Write as _,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::extract::{rejection::PathRejection, Path};

use crate::{
    history::{
        AlertLog, DeliveryFilter, History, HistoryError, InstanceEntry, Minute, Recorded,
        RouteEntry,
    },
    report::{FleetHealth, HealthReport},
    watch::{Alert, AlertKind},
};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// Why a page or an API call cannot answer. The messages are fixed: nothing from the request
/// or from a history's error is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// 400: a query parameter or path segment is malformed.
    BadRequest(&'static str),
    /// 404: no such route, delivery or page.
    NotFound(&'static str),
    /// 503: the history could not be read.
    Unavailable,
}

impl From<HistoryError> for Failure {
    fn from(_: HistoryError) -> Self {
        Self::Unavailable
    }
}

impl Failure {
    pub(crate) fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::NotFound(_) => 404,
            Self::Unavailable => 503,
        }
    }

    pub(crate) fn message(&self) -> &'static str {
        match self {
            Self::BadRequest(m) | Self::NotFound(m) => m,
            Self::Unavailable => "the history is unavailable; try again later",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Query parameters

/// A request's query parameters, decoded (`+` and `%xx`), in order.
#[derive(Debug, Default)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        Self(
            form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The last non-empty value of `name` (an empty form field means "any").
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// The chart window, `6h` by default.
    pub(crate) fn window(&self) -> Result<Window, Failure> {
        self.get("window").map_or(Ok(Window::H6), |w| {
            Window::parse(w).ok_or(Failure::BadRequest(
                "window must be one of 1h, 6h, 24h, 48h",
            ))
        })
    }

    /// The deliveries filter: `outcome`, `event_type`, `delivery_id`, `before`, `limit`
    /// (`default_limit` when absent, at most [`MAX_LIMIT`]).
    pub(crate) fn filter(&self, default_limit: usize) -> Result<DeliveryFilter, Failure> {
        let mut filter = DeliveryFilter::new().limit(default_limit);
        if let Some(outcome) = self.get("outcome") {
            if !OUTCOMES.contains(&outcome) {
                return Err(Failure::BadRequest(
                    "outcome must be one of success, late, failure, rejected, duplicate, \
                     in_flight, panicked, cancelled",
                ));
            }
            filter = filter.outcome(outcome);
        }
        if let Some(event_type) = self.get("event_type") {
            filter = filter.event_type(event_type);
        }
        if let Some(id) = self.get("delivery_id") {
            filter = filter.delivery_id(id);
        }
        if let Some(before) = self.get("before") {
            let before = before.parse().map_err(|_| {
                Failure::BadRequest("before must be a recorded delivery's id (a whole number)")
            })?;
            filter = filter.before(before);
        }
        if let Some(limit) = self.get("limit") {
            let limit = limit
                .parse::<usize>()
                .ok()
                .filter(|&l| l > 0)
                .ok_or(Failure::BadRequest("limit must be a whole number from 1"))?;
            filter = filter.limit(limit.min(MAX_LIMIT));
        }
        Ok(filter)
    }
}

/// The most deliveries one request returns.
pub(crate) const MAX_LIMIT: usize = 500;
/// Deliveries on a route page.
pub(crate) const PAGE_LIMIT: usize = 50;

/// Every outcome's name, in [`OutcomeCounts::named`]'s order (a test checks it).
pub(crate) const OUTCOMES: [&str; 8] = [
    "success",
    "late",
    "failure",
    "rejected",
    "duplicate",
    "in_flight",
    "panicked",
    "cancelled",
];

/// A route page's chart window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Window {
    H1,
    H6,
    H24,
    H48,
}

impl Window {
    pub(crate) const ALL: [Self; 4] = [Self::H1, Self::H6, Self::H24, Self::H48];

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.as_str() == s)
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::H1 => "1h",
            Self::H6 => "6h",
            Self::H24 => "24h",
            Self::H48 => "48h",
        }
    }

    pub(crate) fn length(self) -> Duration {
        HOUR * self.hours()
    }

    fn hours(self) -> u32 {
        match self {
            Self::H1 => 1,
            Self::H6 => 6,
            Self::H24 => 24,
            Self::H48 => 48,
        }
    }

    /// One bar's width: 60, 72, 96 and 96 bars.
    pub(crate) fn bucket(self) -> Duration {
        MINUTE
            * match self {
                Self::H1 => 1,
                Self::H6 => 5,
                Self::H24 => 15,
                Self::H48 => 30,
            }
    }

    /// How far apart the time axis' labels are.
    pub(crate) fn label_every(self) -> Duration {
        match self {
            Self::H1 => MINUTE * 10,
            Self::H6 => HOUR,
            Self::H24 => HOUR * 4,
            Self::H48 => HOUR * 6,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Buckets

/// Deliveries over one span of time: minutes merged.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bucket {
    /// Its counts; `minute.start` is the bucket's start.
    pub(crate) minute: Minute,
    pub(crate) p50: Option<Duration>,
    pub(crate) p95: Option<Duration>,
}

impl Bucket {
    fn new(minute: Minute) -> Self {
        Self {
            p50: minute.latency.quantile(0.5),
            p95: minute.latency.quantile(0.95),
            minute,
        }
    }

    /// Deliveries answered well: successes, and copies the layer answered.
    pub(crate) fn ok(&self) -> u64 {
        let o = &self.minute.outcomes;
        u64::from(o.success) + u64::from(o.duplicate) + u64::from(o.in_flight)
    }

    /// The rest: late, failed, rejected, panicked, cancelled.
    pub(crate) fn not_ok(&self) -> u64 {
        self.minute.deliveries() - self.ok()
    }
}

/// `count` buckets of `width` from `start`, each the merge of the `minutes` that start in it;
/// minutes outside are left out.
pub(crate) fn bucketize(
    minutes: &[Minute],
    start: SystemTime,
    width: Duration,
    count: usize,
) -> Vec<Bucket> {
    let mut merged: Vec<Minute> = (0..count)
        .map(|i| Minute::new(start + width * u32::try_from(i).unwrap_or(u32::MAX)))
        .collect();
    let width_secs = width.as_secs().max(1);
    for minute in minutes {
        let Ok(offset) = minute.start.duration_since(start) else {
            continue;
        };
        let index = usize::try_from(offset.as_secs() / width_secs).unwrap_or(usize::MAX);
        if let Some(bucket) = merged.get_mut(index) {
            bucket.merge(minute);
        }
    }
    merged.into_iter().map(Bucket::new).collect()
}

/// The merge of `buckets`, as one bucket starting with the first.
fn total(buckets: &[Bucket]) -> Bucket {
    let mut total = Minute::new(buckets.first().map_or(UNIX_EPOCH, |b| b.minute.start));
    for b in buckets {
        total.merge(&b.minute);
    }
    Bucket::new(total)
}

/// The end of the `width`-aligned span that holds `now`: the end of a window of such buckets,
/// whose last bucket is the current one. With a minute, the end of the last-hour and last-day
/// figures.
pub(crate) fn window_end(now: SystemTime, width: Duration) -> SystemTime {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let width = width.as_secs().max(1);
    UNIX_EPOCH + Duration::from_secs(secs - secs % width + width)
}

// ---------------------------------------------------------------------------------------------
// Overview

/// `/`: every route, and the open alerts.
#[derive(Debug)]
pub(crate) struct Overview {
    pub(crate) now: SystemTime,
    pub(crate) routes: Vec<RouteSummary>,
    /// Newest first.
    pub(crate) open: Vec<Alert>,
}

/// One route's line on the overview.
#[derive(Debug)]
pub(crate) struct RouteSummary {
    pub(crate) entry: RouteEntry,
    /// The kinds of its open alerts.
    pub(crate) alerts: Vec<AlertKind>,
    /// The last 60 minutes (the current one included).
    pub(crate) last_hour: Bucket,
    /// The last 24 hours, by minute likewise.
    pub(crate) last_day: Bucket,
    /// 24 clock hours, the current one last, oldest first.
    pub(crate) hours: Vec<Bucket>,
}

/// A route's state at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// It has open alerts.
    Alert,
    /// It never had a delivery.
    Idle,
    Ok,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Alert => "alert",
            Self::Idle => "idle",
            Self::Ok => "ok",
        }
    }
}

impl RouteSummary {
    pub(crate) fn status(&self) -> Status {
        status(&self.entry, &self.alerts)
    }
}

fn status(entry: &RouteEntry, alerts: &[AlertKind]) -> Status {
    if !alerts.is_empty() {
        Status::Alert
    } else if entry.last_delivery.is_none() {
        Status::Idle
    } else {
        Status::Ok
    }
}

/// The kinds of `route`'s open alerts.
fn alert_kinds(open: &[Alert], route: &str) -> Vec<AlertKind> {
    open.iter()
        .filter(|a| &*a.route == route)
        .map(|a| a.kind)
        .collect()
}

pub(crate) async fn overview<H: History>(
    history: &H,
    now: SystemTime,
) -> Result<Overview, Failure> {
    let entries = history.routes().await?;
    let AlertLog { open, .. } = history.alerts().await?;
    let day_start = window_end(now, MINUTE) - DAY;
    let mut routes = Vec::with_capacity(entries.len());
    for entry in entries {
        let minutes = history.minutes(&entry.name, day_start).await?;
        let alerts = alert_kinds(&open, &entry.name);
        routes.push(summarize(entry, alerts, &minutes, now));
    }
    Ok(Overview { now, routes, open })
}

/// One route's figures from its last day of minutes.
pub(crate) fn summarize(
    entry: RouteEntry,
    alerts: Vec<AlertKind>,
    minutes: &[Minute],
    now: SystemTime,
) -> RouteSummary {
    let end = window_end(now, MINUTE);
    let span = |length: Duration| {
        bucketize(minutes, end - length, length, 1)
            .pop()
            .unwrap_or_else(|| Bucket::new(Minute::new(end - length)))
    };
    // By clock hour, the current one last: the day's hours start within its 24 h.
    let hours = bucketize(minutes, window_end(now, HOUR) - DAY, HOUR, 24);
    RouteSummary {
        entry,
        alerts,
        last_hour: span(HOUR),
        last_day: span(DAY),
        hours,
    }
}

// ---------------------------------------------------------------------------------------------
// Route

/// `/routes/{route}`: the charts and figures over a window.
#[derive(Debug)]
pub(crate) struct RouteView {
    pub(crate) now: SystemTime,
    pub(crate) entry: RouteEntry,
    pub(crate) alerts: Vec<AlertKind>,
    pub(crate) window: Window,
    pub(crate) start: SystemTime,
    pub(crate) end: SystemTime,
    /// Oldest first, each [`Window::bucket`] wide.
    pub(crate) buckets: Vec<Bucket>,
    /// The whole window.
    pub(crate) total: Bucket,
}

impl RouteView {
    pub(crate) fn status(&self) -> Status {
        status(&self.entry, &self.alerts)
    }
}

/// The route named `name`, or 404.
async fn entry<H: History>(history: &H, name: &str) -> Result<RouteEntry, Failure> {
    history
        .routes()
        .await?
        .into_iter()
        .find(|r| &*r.name == name)
        .ok_or(Failure::NotFound("no such route"))
}

pub(crate) async fn route<H: History>(
    history: &H,
    name: &str,
    window: Window,
    now: SystemTime,
) -> Result<RouteView, Failure> {
    let entry = entry(history, name).await?;
    let alerts = alert_kinds(&history.alerts().await?.open, name);
    let start = window_end(now, window.bucket()) - window.length();
    let minutes = history.minutes(name, start).await?;
    Ok(window_view(entry, alerts, window, &minutes, now))
}

pub(crate) fn window_view(
    entry: RouteEntry,
    alerts: Vec<AlertKind>,
    window: Window,
    minutes: &[Minute],
    now: SystemTime,
) -> RouteView {
    // Buckets aligned to their width, the current one last: the time axis' labels fall on
    // bucket edges.
    let end = window_end(now, window.bucket());
    let start = end - window.length();
    let count = (window.length().as_secs() / window.bucket().as_secs()) as usize;
    let buckets = bucketize(minutes, start, window.bucket(), count);
    RouteView {
        now,
        entry,
        alerts,
        window,
        start,
        end,
        total: total(&buckets),
        buckets,
    }
}

/// A page of a route's recorded deliveries.
#[derive(Debug)]
pub(crate) struct DeliveryList {
    pub(crate) route: RouteEntry,
    pub(crate) filter: DeliveryFilter,
    /// Newest first.
    pub(crate) deliveries: Vec<Recorded>,
    /// The `before` of the next (older) page, when there is one.
    pub(crate) older: Option<u64>,
}

pub(crate) async fn deliveries<H: History>(
    history: &H,
    name: &str,
    filter: DeliveryFilter,
) -> Result<DeliveryList, Failure> {
    let route = entry(history, name).await?;
    // One more than asked: whether there is an older page.
    let mut probe = filter.clone();
    probe.limit = filter.limit.saturating_add(1);
    let mut deliveries = history.deliveries(name, &probe).await?;
    let older = if deliveries.len() > filter.limit {
        deliveries.truncate(filter.limit);
        deliveries.last().map(|r| r.id)
    } else {
        None
    };
    Ok(DeliveryList {
        route,
        filter,
        deliveries,
        older,
    })
}

// ---------------------------------------------------------------------------------------------
// Delivery

/// `/routes/{route}/deliveries/{id}`.
#[derive(Debug)]
pub(crate) struct DeliveryView {
    pub(crate) route: RouteEntry,
    pub(crate) recorded: Recorded,
    /// The other recorded attempts of the same delivery id, newest first; `None` when the
    /// delivery has no id.
    pub(crate) attempts: Option<Vec<Recorded>>,
}

/// A route's name in the address (`/routes/{route}…`), or 400.
pub(crate) fn route_name(path: Result<Path<String>, PathRejection>) -> Result<String, Failure> {
    let Path(name) = path.map_err(|_| Failure::BadRequest("the address is malformed"))?;
    Ok(name)
}

/// A route's name and a delivery's id in the address (`/routes/{route}/deliveries/{id}`), or
/// 400.
pub(crate) fn delivery_address(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(String, u64), Failure> {
    let Path((name, id)) = path.map_err(|_| Failure::BadRequest("the address is malformed"))?;
    let id = id
        .parse()
        .map_err(|_| Failure::BadRequest("a delivery's id in the address is a whole number"))?;
    Ok((name, id))
}

pub(crate) async fn delivery<H: History>(
    history: &H,
    name: &str,
    id: u64,
) -> Result<DeliveryView, Failure> {
    let route = entry(history, name).await?;
    let recorded = history
        .delivery(name, id)
        .await?
        .ok_or(Failure::NotFound("no such delivery (or no longer kept)"))?;
    let attempts = match recorded.report.delivery.id() {
        Some(delivery_id) => {
            let filter = DeliveryFilter::new()
                .delivery_id(delivery_id)
                .limit(PAGE_LIMIT);
            let mut all = history.deliveries(name, &filter).await?;
            all.retain(|r| r.id != id);
            Some(all)
        }
        None => None,
    };
    Ok(DeliveryView {
        route,
        recorded,
        attempts,
    })
}

/// What a set flag means, in one line.
pub(crate) fn flag_meaning(name: &str) -> &'static str {
    match name {
        "near_timeout" => "the response took most of the timeout budget (over 80 %), not all of it",
        "over_budget" => "the response took longer than the timeout budget: the provider gave up waiting",
        "dedupe_unavailable" => {
            "the dedupe store did not answer and the delivery was processed anyway: a copy may be processed twice"
        }
        "many_attempts" => "more attempts than the policy's retry threshold",
        "rapid_retries" => "retried faster than the policy's minimum mean interval",
        "claim_expired" => {
            "the dedupe claim expired while the handler ran: a copy may have been processed at the same time"
        }
        "payload_flagged" => "a flagging payload check failed (see the payload check)",
        _ => "",
    }
}

/// What a signature status means, in one line.
pub(crate) fn signature_meaning(status: &str) -> &'static str {
    match status {
        "verified" => "a signature matched one of the route's secrets",
        "failed" => "no valid signature: the request was rejected",
        _ => "not checked: the route verifies no signature, or the request was rejected before the check",
    }
}

// ---------------------------------------------------------------------------------------------
// Alerts and health

/// `/alerts`.
#[derive(Debug)]
pub(crate) struct AlertsView {
    pub(crate) now: SystemTime,
    pub(crate) log: AlertLog,
}

pub(crate) async fn alerts<H: History>(
    history: &H,
    now: SystemTime,
) -> Result<AlertsView, Failure> {
    Ok(AlertsView {
        now,
        log: history.alerts().await?,
    })
}

/// How long an alert was (resolved) or has been (open) open.
pub(crate) fn alert_duration(alert: &Alert, now: SystemTime) -> Duration {
    let end = match alert.state {
        crate::watch::AlertState::Opened => now,
        crate::watch::AlertState::Resolved => alert.at,
    };
    end.duration_since(alert.opened_at).unwrap_or_default()
}

/// `/health`.
#[derive(Debug)]
pub(crate) struct HealthView {
    pub(crate) now: SystemTime,
    pub(crate) report: Option<HealthReport>,
    /// The fleet's instances, by id; empty for a history of one process.
    pub(crate) instances: Vec<InstanceEntry>,
}

impl HealthView {
    /// The stale fleet views to warn about: the report's own, then the instances', once per
    /// instance.
    pub(crate) fn stale(&self) -> Vec<&FleetHealth> {
        let own = self.report.as_ref().and_then(|h| h.fleet.as_ref());
        let theirs = self
            .instances
            .iter()
            .filter_map(|i| i.health.as_ref()?.fleet.as_ref());
        let mut stale: Vec<&FleetHealth> = Vec::new();
        for fleet in own.into_iter().chain(theirs) {
            if fleet.stale && !stale.iter().any(|s| s.instance == fleet.instance) {
                stale.push(fleet);
            }
        }
        stale
    }
}

pub(crate) async fn health<H: History>(
    history: &H,
    now: SystemTime,
) -> Result<HealthView, Failure> {
    Ok(HealthView {
        now,
        report: history.health().await?,
        instances: history.instances().await?,
    })
}

// ---------------------------------------------------------------------------------------------
// Formatting, shared by pages and charts

/// `t` as RFC 3339 UTC to the second; times outside 1970–9999 as their bound.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let max = UNIX_EPOCH + Duration::from_secs(253_402_300_799);
    humantime::format_rfc3339_seconds(t.clamp(UNIX_EPOCH, max)).to_string()
}

/// `t` relative to `now`: `12 s ago`, `3 min ago`, `5 h ago`, `2 d ago`, `in 4 s`.
pub(crate) fn ago(t: SystemTime, now: SystemTime) -> String {
    match now.duration_since(t) {
        Ok(d) => format!("{} ago", span(d)),
        Err(e) if e.duration() < Duration::from_secs(1) => "0 s ago".into(),
        Err(e) => format!("in {}", span(e.duration())),
    }
}

/// A coarse duration: `12 s`, `3 min`, `5 h`, `2 d`.
pub(crate) fn span(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..172_800 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

/// A latency with its unit and three significant digits at most: `850 µs`, `12.3 ms`,
/// `1.25 s`, `10 s`.
pub(crate) fn latency(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    let (value, unit) = if us < 1_000.0 {
        (us, "µs")
    } else if us < 1_000_000.0 {
        (us / 1e3, "ms")
    } else {
        (us / 1e6, "s")
    };
    format!("{} {unit}", significant(value))
}

/// A size in MiB, with three significant digits below 100 MiB: `0.5 MiB`, `12.3 MiB`,
/// `1536 MiB`.
pub(crate) fn mebibytes(bytes: u64) -> String {
    format!("{} MiB", significant(bytes as f64 / (1u64 << 20) as f64))
}

/// `value` with up to three significant digits, trailing zeros dropped: `1.25`, `12.3`, `850`.
pub(crate) fn significant(value: f64) -> String {
    let decimals = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    let mut s = format!("{value:.decimals$}");
    if s.contains('.') {
        let trimmed = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(trimmed);
    }
    s
}

/// A share as a percentage: `99.5 %`; `–` for none.
pub(crate) fn percent(rate: Option<f64>) -> String {
    match rate {
        Some(r) => {
            let mut s = String::new();
            let _ = write!(s, "{:.1} %", r * 100.0);
            s
        }
        None => "–".into(),
    }
}

/// A string cut to `max` characters, with `…` when it was longer.
pub(crate) fn truncate(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        Some((at, _)) => Cow::Owned(format!("{}…", &s[..at])),
        None => Cow::Borrowed(s),
    }
}

/// Displays a [`Duration`] in whole microseconds, for the API.
pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// `HH:MM` of `t` in UTC, or `MM-DD` at midnight: the time axis' labels.
pub(crate) fn axis_time(t: SystemTime) -> String {
    let s = rfc3339(t);
    match s.get(11..16) {
        Some("00:00") => s.get(5..10).unwrap_or_default().to_owned(),
        Some(hm) => hm.to_owned(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{history::OutcomeCounts, report::Report, DeliveryReport};

    /// A delivery report of `outcome`, received at `at`, that took `total_us`.
    pub(crate) fn report(
        outcome: &str,
        detail: Option<&str>,
        at: SystemTime,
        total_us: u64,
    ) -> DeliveryReport {
        let json = format!(
            r#"{{"type":"delivery","route":"orders","provider":"shop","delivery_id":"d-1","event_type":"order.created","attempt":1,"signature":"unchecked","secret_index":null,"status":200,"outcome":"{outcome}","outcome_detail":{detail},"reason":null,"payload_check":null,"received_at":"{at}","body_read_us":1,"handler_us":{total_us},"total_us":{total_us},"body_bytes":12,"fingerprint":null,"times_seen":null,"first_seen":null,"mean_retry_interval_ms":null,"lag_ms":null,"flags":[],"fields":{{}}}}"#,
            detail = detail.map_or("null".to_owned(), |d| format!("\"{d}\"")),
            at = humantime::format_rfc3339_micros(at),
        );
        let report: Report = serde_json::from_str(&json).expect("a valid report");
        report.as_delivery().expect("a delivery").clone()
    }

    fn minute(start: SystemTime, reports: &[DeliveryReport]) -> Minute {
        let mut m = Minute::new(start);
        reports.iter().for_each(|r| m.record(r));
        m
    }

    /// 2026-11-28T19:30:20Z
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_894_220)
    }

    #[test]
    fn outcome_names_are_the_counts_names() {
        let named = OutcomeCounts::default().named().map(|(name, _)| name);
        assert_eq!(named, OUTCOMES);
    }

    #[test]
    fn windows_have_at_most_120_bars() {
        for w in Window::ALL {
            let bars = w.length().as_secs() / w.bucket().as_secs();
            assert!((60..=120).contains(&bars), "{w:?}: {bars}");
            assert_eq!(w.length().as_secs() % w.bucket().as_secs(), 0);
            assert_eq!(Window::parse(w.as_str()), Some(w));
        }
        assert_eq!(Window::parse("2h"), None);
    }

    #[test]
    fn windows_end_with_the_current_bucket() {
        assert_eq!(rfc3339(window_end(now(), MINUTE)), "2026-11-28T19:31:00Z");
        assert_eq!(
            rfc3339(window_end(now(), MINUTE * 15)),
            "2026-11-28T19:45:00Z"
        );
        assert_eq!(rfc3339(window_end(now(), HOUR)), "2026-11-28T20:00:00Z");
        let view = window_view(RouteEntry::new("r"), vec![], Window::H24, &[], now());
        assert_eq!(rfc3339(view.start), "2026-11-27T19:45:00Z");
        assert_eq!(view.buckets.len(), 96);
        assert_eq!(rfc3339(now()), "2026-11-28T19:30:20Z");
    }

    #[test]
    fn bucketing_counts_each_minute_once() {
        let end = window_end(now(), MINUTE);
        let start = end - HOUR * 6;
        // One delivery per minute for the last 6 h, and one minute before the window.
        let minutes: Vec<Minute> = (0..=360u32)
            .map(|i| {
                let at = start - MINUTE + MINUTE * i;
                minute(at, &[report("success", None, at, 1000)])
            })
            .collect();
        let buckets = bucketize(&minutes, start, MINUTE * 5, 72);
        assert_eq!(buckets.len(), 72);
        assert!(buckets.iter().all(|b| b.minute.deliveries() == 5));
        assert_eq!(buckets[0].minute.start, start);
        assert_eq!(buckets[71].minute.start, end - MINUTE * 5);
        assert_eq!(total(&buckets).minute.deliveries(), 360);
    }

    #[test]
    fn route_figures() {
        let at = window_end(now(), MINUTE) - MINUTE * 2;
        // 8 handled deliveries of 1..=8 µs (exact histogram buckets), 2 rejected, 2 duplicates.
        let mut reports: Vec<_> = (1..=8)
            .map(|us| {
                let outcome = if us <= 6 { "success" } else { "failure" };
                let detail = (us > 6).then_some("server_error");
                report(outcome, detail, at, us)
            })
            .collect();
        reports.push(report("rejected", Some("bad_signature"), at, 0));
        reports.push(report("rejected", Some("too_large"), at, 0));
        reports.push(report("duplicate", None, at, 0));
        reports.push(report("duplicate", None, at, 0));
        let minutes = [minute(at, &reports)];
        let view = window_view(
            RouteEntry::new("orders"),
            vec![],
            Window::H1,
            &minutes,
            now(),
        );
        assert_eq!(view.buckets.len(), 60);
        assert_eq!(view.buckets[58].minute.deliveries(), 12);
        let t = &view.total;
        assert_eq!(t.minute.deliveries(), 12);
        // 6 successes of 10 judged (12 less the 2 duplicates).
        assert_eq!(t.minute.outcomes.success_rate(), Some(0.6));
        assert_eq!(t.p50, Some(Duration::from_micros(4)));
        assert_eq!(t.p95, Some(Duration::from_micros(8)));
        assert_eq!(t.ok(), 8);
        assert_eq!(t.not_ok(), 4);
        assert_eq!(t.minute.retries, 0);
    }

    #[test]
    fn overview_figures() {
        let end = window_end(now(), MINUTE);
        let mut minutes = Vec::new();
        // 3 deliveries 30 min ago (1 ms each), 2 failures 5 h ago (1 s each), and one 25 h ago
        // (outside the day).
        let recent = end - MINUTE * 30;
        minutes.push(minute(
            recent,
            &vec![report("success", None, recent, 1000); 3],
        ));
        let earlier = end - HOUR * 5;
        minutes.push(minute(
            earlier,
            &vec![report("failure", Some("server_error"), earlier, 1_000_000); 2],
        ));
        let old = end - HOUR * 25;
        minutes.push(minute(old, &[report("success", None, old, 1000)]));
        minutes.sort_by_key(|m| m.start);
        let mut entry = RouteEntry::new("orders");
        entry.last_delivery = Some(recent);
        let summary = summarize(entry, vec![], &minutes, now());
        assert_eq!(summary.status(), Status::Ok);
        assert_eq!(summary.last_hour.minute.deliveries(), 3);
        assert_eq!(summary.last_day.minute.deliveries(), 5);
        assert_eq!(summary.last_day.minute.outcomes.success_rate(), Some(0.6));
        // 1 ms falls in the bucket 960..=1023 µs: its middle.
        assert_eq!(summary.last_hour.p50, Some(Duration::from_micros(991)));
        assert_eq!(summary.last_hour.p95, Some(Duration::from_micros(991)));
        assert_eq!(summary.hours.len(), 24);
        assert_eq!(summary.hours[23].ok(), 3);
        // Clock hours, 20:00 the day before to 20:00: 14:31 is in the 19th.
        assert_eq!(summary.hours[18].not_ok(), 2);
        let total: u64 = summary.hours.iter().map(|h| h.minute.deliveries()).sum();
        assert_eq!(total, 5);

        let idle = summarize(RouteEntry::new("new"), vec![], &[], now());
        assert_eq!(idle.status(), Status::Idle);
        assert_eq!(idle.last_day.minute.outcomes.success_rate(), None);
        assert_eq!(idle.last_hour.p95, None);
        let alerting = summarize(RouteEntry::new("new"), vec![AlertKind::Silence], &[], now());
        assert_eq!(alerting.status(), Status::Alert);
    }

    #[test]
    fn query_parameters() {
        let q = Query::parse(Some(
            "window=24h&outcome=failure&event_type=a+b&before=12&limit=9999",
        ));
        assert_eq!(q.window(), Ok(Window::H24));
        let f = q.filter(PAGE_LIMIT).expect("valid");
        assert_eq!(f.outcome.as_deref(), Some("failure"));
        assert_eq!(f.event_type.as_deref(), Some("a b"));
        assert_eq!(f.before, Some(12));
        assert_eq!(f.limit, MAX_LIMIT);
        // Empty form fields mean "any".
        let f = Query::parse(Some("outcome=&event_type=&delivery_id="))
            .filter(50)
            .expect("valid");
        assert_eq!(f, DeliveryFilter::new());
        assert_eq!(Query::parse(None).window(), Ok(Window::H6));
        for bad in [
            "window=7h",
            "outcome=nope",
            "before=-1",
            "limit=0",
            "limit=x",
        ] {
            let q = Query::parse(Some(bad));
            assert!(
                matches!(
                    q.window().and_then(|_| q.filter(50).map(|_| ())),
                    Err(Failure::BadRequest(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn stale_fleet_views_once_per_instance() {
        let fleet = |instance: &str, stale: bool| FleetHealth {
            instance: instance.into(),
            leader: false,
            stale,
            last_write: None,
            failed_writes: 0,
            lost_deliveries: 0,
            dropped_counts: 0,
            dropped_alerts: 0,
            pending_deliveries: 0,
        };
        let health = |f: FleetHealth| {
            let line = r#"{"type":"health","at":"2026-11-28T19:30:00Z","enqueued":0,"dropped_full":0,"dropped_closed":0,"sent":0,"failed":0,"batches":0,"alerts":0,"sink_panics":0,"watcher_panics":0,"queue_depth":0,"sinks":[]}"#;
            let mut h: HealthReport = serde_json::from_str(line).expect("a health report");
            h.fleet = Some(f);
            h
        };
        let instance = |id: &str, f: Option<FleetHealth>| {
            let mut i = InstanceEntry::new(id);
            i.health = f.map(health);
            i
        };
        let view = HealthView {
            now: now(),
            report: Some(health(fleet("b", true))),
            instances: vec![
                instance("a", Some(fleet("a", true))),
                instance("b", Some(fleet("b", true))),
                instance("c", Some(fleet("c", false))),
                instance("d", None),
            ],
        };
        let stale: Vec<&str> = view.stale().iter().map(|f| &*f.instance).collect();
        assert_eq!(stale, ["b", "a"]);
        let calm = HealthView {
            now: now(),
            report: None,
            instances: vec![instance("c", Some(fleet("c", false)))],
        };
        assert!(calm.stale().is_empty());
    }

    #[test]
    fn formatting() {
        assert_eq!(latency(Duration::from_micros(850)), "850 µs");
        assert_eq!(latency(Duration::from_micros(12_345)), "12.3 ms");
        assert_eq!(latency(Duration::from_millis(1250)), "1.25 s");
        assert_eq!(latency(Duration::from_secs(10)), "10 s");
        assert_eq!(latency(Duration::from_micros(991)), "991 µs");
        assert_eq!(mebibytes(512 << 10), "0.5 MiB");
        assert_eq!(mebibytes(12_940_000), "12.3 MiB");
        assert_eq!(mebibytes(1536 << 20), "1536 MiB");
        assert_eq!(ago(now() - Duration::from_secs(190), now()), "3 min ago");
        assert_eq!(ago(now() + Duration::from_secs(5), now()), "in 5 s");
        assert_eq!(percent(Some(0.995)), "99.5 %");
        assert_eq!(percent(None), "–");
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(axis_time(now()), "19:30");
        assert_eq!(axis_time(UNIX_EPOCH + DAY * 3), "01-04");
        assert_eq!(rfc3339(UNIX_EPOCH - HOUR), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + DAY * 4_000_000),
            "9999-12-31T23:59:59Z"
        );
    }
}

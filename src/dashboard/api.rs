//! The JSON API: the [view](super::view) figures the pages show, serialized by hand (the
//! crate's serde has no derive). Documented in `docs/dashboard-api.md`.

use std::{sync::Arc, time::Duration, time::SystemTime};

use axum::{
    extract::{rejection::PathRejection, Path, RawQuery, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use super::{
    view::{self, Bucket, Failure, Query},
    Shared,
};
use crate::{
    history::{History, InstanceEntry, Recorded, RouteEntry},
    watch::AlertKind,
};

// ---------------------------------------------------------------------------------------------
// Handlers

pub(crate) async fn overview<H: History>(State(shared): State<Arc<Shared<H>>>) -> Response {
    let now = shared.now();
    respond(
        view::overview(&shared.history, now)
            .await
            .map(|v| json(&OverviewJson(&v))),
    )
}

pub(crate) async fn route<H: History>(
    State(shared): State<Arc<Shared<H>>>,
    name: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Response {
    let now = shared.now();
    let result = async {
        let name = view::route_name(name)?;
        let window = Query::parse(raw.as_deref()).window()?;
        view::route(&shared.history, &name, window, now).await
    }
    .await;
    respond(result.map(|v| json(&RouteJson(&v))))
}

pub(crate) async fn deliveries<H: History>(
    State(shared): State<Arc<Shared<H>>>,
    name: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Response {
    let result = async {
        let name = view::route_name(name)?;
        let filter = Query::parse(raw.as_deref()).filter(view::PAGE_LIMIT)?;
        view::deliveries(&shared.history, &name, filter).await
    }
    .await;
    respond(result.map(|list| {
        // `{"route": …, "deliveries": [<report with id>…], "older_before": …}`
        let mut body = String::with_capacity(512 * (list.deliveries.len() + 1));
        body.push_str(r#"{"route":"#);
        body.push_str(&json(&*list.route.name));
        body.push_str(r#","deliveries":["#);
        for (i, r) in list.deliveries.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&with_id(r, None));
        }
        body.push_str(r#"],"older_before":"#);
        body.push_str(&json(&list.older));
        body.push('}');
        body
    }))
}

pub(crate) async fn delivery<H: History>(
    State(shared): State<Arc<Shared<H>>>,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let result = async {
        let (name, id) = view::delivery_address(params)?;
        view::delivery(&shared.history, &name, id).await
    }
    .await;
    respond(result.map(|v| {
        let others: Option<Vec<u64>> = v
            .attempts
            .as_ref()
            .map(|a| a.iter().map(|r| r.id).collect());
        with_id(&v.recorded, Some(&json(&others)))
    }))
}

pub(crate) async fn alerts<H: History>(State(shared): State<Arc<Shared<H>>>) -> Response {
    let now = shared.now();
    respond(
        view::alerts(&shared.history, now)
            .await
            .map(|v| json(&AlertsJson(&v))),
    )
}

pub(crate) async fn health<H: History>(State(shared): State<Arc<Shared<H>>>) -> Response {
    let now = shared.now();
    respond(
        view::health(&shared.history, now)
            .await
            .map(|v| json(&HealthJson(&v))),
    )
}

// ---------------------------------------------------------------------------------------------
// Responses

fn respond(result: Result<String, Failure>) -> Response {
    match result {
        Ok(body) => with_type(StatusCode::OK, body),
        Err(f) => failure(&f),
    }
}

/// A failure as `{"status": 404, "error": "no such route"}`.
pub(crate) fn failure(failure: &Failure) -> Response {
    let status = StatusCode::from_u16(failure.status()).unwrap_or(StatusCode::BAD_REQUEST);
    with_type(status, json(&FailureJson(failure)))
}

fn with_type(status: StatusCode, body: String) -> Response {
    let mut res = (status, body).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

fn json<T: Serialize + ?Sized>(value: &T) -> String {
    // Serializing to a string fails only for a map key that is not a string: there is none.
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// A delivery report in the report schema, with `"id"` first and, when given, `other_attempts`
/// last.
fn with_id(recorded: &Recorded, others: Option<&str>) -> String {
    let report = json(&recorded.report);
    // The report is a JSON object: `{"type":…}`.
    let fields = report
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .unwrap_or_default();
    let mut out = format!(r#"{{"id":{},{fields}"#, recorded.id);
    if let Some(others) = others {
        out.push_str(r#","other_attempts":"#);
        out.push_str(others);
    }
    out.push('}');
    out
}

// ---------------------------------------------------------------------------------------------
// Serialization of the view figures

fn time(t: Option<SystemTime>) -> Option<String> {
    t.map(view::rfc3339)
}

fn us(d: Option<Duration>) -> Option<u64> {
    d.map(view::micros)
}

/// The JSON form of a view type.
struct Wrap<'a, T>(&'a T);

struct OverviewJson<'a>(&'a view::Overview);

impl Serialize for OverviewJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("now", &view::rfc3339(v.now))?;
        m.serialize_entry("routes", &List(&v.routes))?;
        m.serialize_entry("open_alerts", &v.open)?;
        m.end()
    }
}

impl Serialize for Wrap<'_, view::RouteSummary> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut m = s.serialize_map(None)?;
        route_entries(&mut m, &r.entry, r.status(), &r.alerts)?;
        m.serialize_entry("deliveries_1h", &r.last_hour.minute.deliveries())?;
        m.serialize_entry("deliveries_24h", &r.last_day.minute.deliveries())?;
        m.serialize_entry(
            "success_rate_24h",
            &r.last_day.minute.outcomes.success_rate(),
        )?;
        m.serialize_entry("p50_1h_us", &us(r.last_hour.p50))?;
        m.serialize_entry("p95_1h_us", &us(r.last_hour.p95))?;
        m.serialize_entry("hours", &Hours(&r.hours))?;
        m.end()
    }
}

/// The overview's hourly form: `{"start", "ok", "not_ok"}` each.
struct Hours<'a>(&'a [Bucket]);

impl Serialize for Hours<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for b in self.0 {
            seq.serialize_element(&HourJson(b))?;
        }
        seq.end()
    }
}

struct HourJson<'a>(&'a Bucket);

impl Serialize for HourJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("start", &view::rfc3339(self.0.minute.start))?;
        m.serialize_entry("ok", &self.0.ok())?;
        m.serialize_entry("not_ok", &self.0.not_ok())?;
        m.end()
    }
}

/// A route's own fields, shared by the overview and the route.
fn route_entries<M: SerializeMap>(
    m: &mut M,
    entry: &RouteEntry,
    status: view::Status,
    alerts: &[AlertKind],
) -> Result<(), M::Error> {
    m.serialize_entry("name", &*entry.name)?;
    m.serialize_entry("provider", &entry.provider.as_deref())?;
    m.serialize_entry("budget_us", &us(entry.budget))?;
    m.serialize_entry("last_delivery", &time(entry.last_delivery))?;
    m.serialize_entry("status", status.as_str())?;
    m.serialize_entry("open_alerts", &Kinds(alerts))
}

struct Kinds<'a>(&'a [AlertKind]);

impl Serialize for Kinds<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|k| k.as_str()))
    }
}

struct RouteJson<'a>(&'a view::RouteView);

impl Serialize for RouteJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        let mut m = s.serialize_map(Some(8))?;
        m.serialize_entry("now", &view::rfc3339(v.now))?;
        m.serialize_entry("route", &RouteEntryJson(v))?;
        m.serialize_entry("window", v.window.as_str())?;
        m.serialize_entry("start", &view::rfc3339(v.start))?;
        m.serialize_entry("end", &view::rfc3339(v.end))?;
        m.serialize_entry("bucket_s", &v.window.bucket().as_secs())?;
        m.serialize_entry("totals", &Wrap(&v.total))?;
        m.serialize_entry("buckets", &List(&v.buckets))?;
        m.end()
    }
}

struct RouteEntryJson<'a>(&'a view::RouteView);

impl Serialize for RouteEntryJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(6))?;
        route_entries(&mut m, &self.0.entry, self.0.status(), &self.0.alerts)?;
        m.end()
    }
}

impl Serialize for Wrap<'_, Bucket> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let b = self.0;
        let mut m = s.serialize_map(Some(8))?;
        m.serialize_entry("start", &view::rfc3339(b.minute.start))?;
        m.serialize_entry("deliveries", &b.minute.deliveries())?;
        m.serialize_entry("success_rate", &b.minute.outcomes.success_rate())?;
        m.serialize_entry("retries", &b.minute.retries)?;
        m.serialize_entry("outcomes", &Named(b.minute.outcomes.named()))?;
        m.serialize_entry("flags", &Named(b.minute.flags.named()))?;
        m.serialize_entry("p50_us", &us(b.p50))?;
        m.serialize_entry("p95_us", &us(b.p95))?;
        m.end()
    }
}

/// Counts by name, as an object.
struct Named<const N: usize>([(&'static str, u32); N]);

impl<const N: usize> Serialize for Named<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|&(k, v)| (k, v)))
    }
}

/// A list of view items, each in its JSON form.
struct List<'a, T>(&'a [T]);

impl<'a, T> Serialize for List<'a, T>
where
    Wrap<'a, T>: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(Wrap))
    }
}

struct AlertsJson<'a>(&'a view::AlertsView);

impl Serialize for AlertsJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("now", &view::rfc3339(self.0.now))?;
        m.serialize_entry("open", &self.0.log.open)?;
        m.serialize_entry("resolved", &self.0.log.resolved)?;
        m.end()
    }
}

struct HealthJson<'a>(&'a view::HealthView);

impl Serialize for HealthJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("now", &view::rfc3339(self.0.now))?;
        m.serialize_entry("health", &self.0.report)?;
        m.serialize_entry("instances", &List(&self.0.instances))?;
        m.end()
    }
}

impl Serialize for Wrap<'_, InstanceEntry> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let i = self.0;
        let mut m = s.serialize_map(Some(5))?;
        m.serialize_entry("id", &*i.id)?;
        m.serialize_entry("started", &time(i.started))?;
        m.serialize_entry("last_heartbeat", &time(i.last_heartbeat))?;
        m.serialize_entry("leader", &i.leader)?;
        m.serialize_entry("health", &i.health)?;
        m.end()
    }
}

struct FailureJson<'a>(&'a Failure);

impl Serialize for FailureJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("status", &self.0.status())?;
        m.serialize_entry("error", self.0.message())?;
        m.end()
    }
}

//! The HTML pages: server-rendered from the [view](super::view) figures with maud, which
//! escapes everything spliced in.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use axum::{
    extract::{rejection::PathRejection, Path, RawQuery, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Extension,
};
use maud::{html, Markup, DOCTYPE};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::{
    chart,
    view::{self, Failure, Query, Status, Window, OUTCOMES, PAGE_LIMIT},
    Prefix, Shared,
};
use crate::{
    history::{DeliveryFilter, History, InstanceEntry, Recorded, RouteEntry},
    report::FleetHealth,
    watch::{Alert, AlertState, PROCESS_ROUTE},
    FieldValue,
};

const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/app.js");
const ICON: &str = include_str!("assets/icon.svg");

pub(crate) async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// The page's icon: linked from every page, so that browsers do not ask the site's root for
/// `/favicon.ico` (which the app may not serve).
pub(crate) async fn icon() -> Response {
    asset("image/svg+xml", ICON)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

// ---------------------------------------------------------------------------------------------
// Handlers

pub(crate) async fn overview<H: History>(
    State(shared): State<Arc<Shared<H>>>,
    Extension(Prefix(prefix)): Extension<Prefix>,
) -> Response {
    let now = shared.now();
    let page = Page::new(&prefix, shared.refresh_secs, now);
    match view::overview(&shared.history, now).await {
        Ok(v) => page.render("Overview", Nav::Overview, overview_body(&page, &v)),
        Err(f) => page.failure(&f),
    }
}

pub(crate) async fn route<H: History>(
    State(shared): State<Arc<Shared<H>>>,
    Extension(Prefix(prefix)): Extension<Prefix>,
    name: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Response {
    let now = shared.now();
    let page = Page::new(&prefix, shared.refresh_secs, now);
    let result = async {
        let name = view::route_name(name)?;
        let query = Query::parse(raw.as_deref());
        let window = query.window()?;
        let filter = query.filter(PAGE_LIMIT)?;
        let route = view::route(&shared.history, &name, window, now).await?;
        let list = view::deliveries(&shared.history, &name, filter).await?;
        Ok::<_, Failure>((route, list))
    }
    .await;
    match result {
        Ok((route, list)) => {
            let title = format!("Route {}", route.entry.name);
            page.render(&title, Nav::None, route_body(&page, &route, &list))
        }
        Err(f) => page.failure(&f),
    }
}

pub(crate) async fn delivery<H: History>(
    State(shared): State<Arc<Shared<H>>>,
    Extension(Prefix(prefix)): Extension<Prefix>,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let now = shared.now();
    let page = Page::new(&prefix, shared.refresh_secs, now);
    let result = async {
        let (name, id) = view::delivery_address(params)?;
        view::delivery(&shared.history, &name, id).await
    }
    .await;
    match result {
        Ok(v) => {
            let title = format!("Delivery {} of {}", v.recorded.id, v.route.name);
            page.render(&title, Nav::None, delivery_body(&page, &v))
        }
        Err(f) => page.failure(&f),
    }
}

pub(crate) async fn alerts<H: History>(
    State(shared): State<Arc<Shared<H>>>,
    Extension(Prefix(prefix)): Extension<Prefix>,
) -> Response {
    let now = shared.now();
    let page = Page::new(&prefix, shared.refresh_secs, now);
    match view::alerts(&shared.history, now).await {
        Ok(v) => page.render("Alerts", Nav::Alerts, alerts_body(&page, &v)),
        Err(f) => page.failure(&f),
    }
}

pub(crate) async fn health<H: History>(
    State(shared): State<Arc<Shared<H>>>,
    Extension(Prefix(prefix)): Extension<Prefix>,
) -> Response {
    let now = shared.now();
    let page = Page::new(&prefix, shared.refresh_secs, now);
    match view::health(&shared.history, now).await {
        Ok(v) => page.render("Health", Nav::Health, health_body(&page, &v)),
        Err(f) => page.failure(&f),
    }
}

/// The 404 page of an unknown address (it does not refresh itself).
pub(crate) fn failure(prefix: &str, now: SystemTime, failure: &Failure) -> Response {
    Page::new(prefix, 0, now).failure(failure)
}

// ---------------------------------------------------------------------------------------------
// Layout and links

/// What every page knows: where it is nested, how often it refreshes, and now.
struct Page<'a> {
    prefix: &'a str,
    refresh: u64,
    now: SystemTime,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Nav {
    Overview,
    Alerts,
    Health,
    None,
}

/// Path segments: everything but unreserved characters is percent-encoded. (Browsers resolve a
/// segment `.` or `..`, encoded or not: routes named so cannot be linked.)
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

impl<'a> Page<'a> {
    fn new(prefix: &'a str, refresh: u64, now: SystemTime) -> Self {
        Self {
            prefix,
            refresh,
            now,
        }
    }

    /// `path` under the prefix; the overview is the prefix itself (axum's `nest("/x", ..)`
    /// serves it at `/x`, not at `/x/`).
    fn link(&self, path: &str) -> String {
        match (path, self.prefix) {
            ("/", "") => "/".to_owned(),
            ("/", prefix) => prefix.to_owned(),
            (path, prefix) => format!("{prefix}{path}"),
        }
    }

    fn route_link(&self, name: &str) -> String {
        format!(
            "{}/routes/{}",
            self.prefix,
            utf8_percent_encode(name, SEGMENT)
        )
    }

    fn route_query(&self, name: &str, pairs: &[(&str, &str)]) -> String {
        let mut link = self.route_link(name);
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs.iter().filter(|(_, v)| !v.is_empty()))
            .finish();
        if !query.is_empty() {
            link.push('?');
            link.push_str(&query);
        }
        link
    }

    fn delivery_link(&self, name: &str, id: u64) -> String {
        format!("{}/deliveries/{id}", self.route_link(name))
    }

    /// A time as RFC 3339 UTC and how long ago.
    fn when(&self, t: SystemTime) -> Markup {
        let rfc = view::rfc3339(t);
        html! {
            time datetime=(rfc) { (rfc) }
            " " span class="ago" { "(" (view::ago(t, self.now)) ")" }
        }
    }

    /// A time as RFC 3339 UTC, and how long ago on a second line: for table cells.
    fn when_cell(&self, t: SystemTime) -> Markup {
        let rfc = view::rfc3339(t);
        html! {
            time datetime=(rfc) { (rfc) }
            br;
            span class="ago" { (view::ago(t, self.now)) }
        }
    }

    fn render(&self, title: &str, nav: Nav, main: Markup) -> Response {
        self.respond(StatusCode::OK, title, nav, main)
    }

    fn failure(&self, failure: &Failure) -> Response {
        let status = StatusCode::from_u16(failure.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let title = status.canonical_reason().unwrap_or("Error");
        let main = html! {
            h1 { (status.as_u16()) " " (title) }
            p class="error" { (failure.message()) "." }
            p { a href=(self.link("/")) { "Back to the overview" } }
        };
        self.respond(status, title, Nav::None, main)
    }

    fn respond(&self, status: StatusCode, title: &str, nav: Nav, main: Markup) -> Response {
        let item = |target: Nav, path: &str, label: &str| {
            html! {
                a href=(self.link(path)) aria-current=[(nav == target).then_some("page")] { (label) }
            }
        };
        let page = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    meta name="referrer" content="no-referrer";
                    title { (title) " · webhook-monitor" }
                    link rel="icon" type="image/svg+xml" href=(self.link("/assets/icon.svg"));
                    link rel="stylesheet" href=(self.link("/assets/style.css"));
                    script src=(self.link("/assets/app.js")) defer {}
                }
                body data-refresh=(self.refresh) {
                    header class="top" {
                        a class="brand" href=(self.link("/")) { "webhook-monitor" }
                        nav {
                            (item(Nav::Overview, "/", "Overview"))
                            (item(Nav::Alerts, "/alerts", "Alerts"))
                            (item(Nav::Health, "/health", "Health"))
                        }
                        label id="live-toggle" class="live" hidden {
                            input id="live" type="checkbox" checked;
                            " live"
                            span id="live-status" {}
                        }
                    }
                    main id="main" {
                        (main)
                        p class="rendered" {
                            "Times are UTC. Rendered at " (view::rfc3339(self.now)) "."
                        }
                    }
                }
            }
        };
        let mut res = (status, page.into_string()).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        res
    }
}

// ---------------------------------------------------------------------------------------------
// Pieces

fn status_badge(status: Status) -> Markup {
    html! { span class={ "badge st-" (status.as_str()) } { (status.as_str()) } }
}

fn outcome_badge(report: &crate::DeliveryReport) -> Markup {
    let name = report.outcome.as_str();
    html! {
        span class={ "badge o-" (name) } { (name) }
        @if let Some(detail) = report.outcome.detail() {
            " " span class="detail" { (detail) }
        }
    }
}

fn opt<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| v.to_string())
}

fn latency(d: Option<Duration>) -> String {
    d.map_or_else(|| "–".to_owned(), view::latency)
}

/// p95 against the budget, with a bar of its share of it, and p50.
fn latency_cell(p50: Option<Duration>, p95: Option<Duration>, budget: Option<Duration>) -> Markup {
    html! {
        @if let Some(p95) = p95 {
            "p95 " (view::latency(p95))
            @if let Some(budget) = budget { " of " (view::latency(budget)) " budget" }
            div class="meter-line" {
                @if let Some(budget) = budget {
                    @let share = p95.as_secs_f64() / budget.as_secs_f64().max(1e-9);
                    @let level = if share >= 0.8 { "bad" } else if share >= 0.5 { "warn" } else { "good" };
                    svg class={ "meter " (level) } viewBox="0 0 100 6" role="img"
                        aria-label={ "p95 is " (format!("{:.0}", share * 100.0)) " % of the budget" } {
                        rect class="track" x="0" y="0" width="100" height="6" {}
                        rect class="fill" x="0" y="0" width=(format!("{:.1}", (share * 100.0).min(100.0))) height="6" {}
                    }
                    " "
                }
                span class="muted" { "p50 " (latency(p50)) }
            }
        } @else {
            span class="muted" { "no handled deliveries" }
        }
    }
}

fn field_value(value: &FieldValue) -> String {
    match value {
        FieldValue::Bool(v) => v.to_string(),
        FieldValue::I64(v) => v.to_string(),
        FieldValue::U64(v) => v.to_string(),
        FieldValue::F64(v) if v.is_finite() => v.to_string(),
        FieldValue::F64(_) => "null".to_owned(),
        FieldValue::Str(v) => v.to_string(),
    }
}

fn figures(fields: &[crate::Field]) -> Markup {
    html! {
        @for (i, f) in fields.iter().enumerate() {
            @if i > 0 { ", " }
            span class="figure" { (f.name) " = " (field_value(&f.value)) }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Overview

fn overview_body(page: &Page<'_>, v: &view::Overview) -> Markup {
    html! {
        h1 { "Overview" }
        section id="open-alerts" {
            @if v.open.is_empty() {
                p class="calm" { "No open alerts." }
            } @else {
                h2 { (v.open.len()) " open alert" @if v.open.len() > 1 { "s" } }
                ul class="alert-list" {
                    @for a in &v.open {
                        li {
                            span class={ "badge sev-" (a.severity.as_str()) } { (a.severity.as_str()) }
                            " "
                            (alert_route(page, a))
                            ": " (a.kind.describe()) " (" code { (a.kind.as_str()) } "), opened "
                            (page.when(a.opened_at))
                        }
                    }
                }
                p { a href=(page.link("/alerts")) { "All alerts" } }
            }
        }
        h2 { "Routes" }
        @if v.routes.is_empty() {
            p class="empty" {
                "No routes yet. A route appears when a layer reporting into this history is \
                 built, or with its first delivery."
            }
        } @else {
            div class="scroll" {
                table id="routes" {
                    thead {
                        tr {
                            th { "Route" }
                            th { "Provider" }
                            th { "Status" }
                            th class="num" { "Last hour" }
                            th class="num" { "Last 24 h" }
                            th class="num" { "Success (24 h)" }
                            th { "Latency, last hour" }
                            th { "Last delivery" }
                            th { "24 h by hour" }
                        }
                    }
                    tbody {
                        @for r in &v.routes {
                            @let status = r.status();
                            tr data-route=(r.entry.name) {
                                td { a href=(page.route_link(&r.entry.name)) { (r.entry.name) } }
                                td { (opt(r.entry.provider.as_deref())) }
                                td class="status" {
                                    (status_badge(status))
                                    @if status == Status::Alert {
                                        " "
                                        @for (i, kind) in r.alerts.iter().enumerate() {
                                            @if i > 0 { ", " }
                                            span class="kind" { (kind.as_str()) }
                                        }
                                    }
                                }
                                td class="num hour" { (r.last_hour.minute.deliveries()) }
                                td class="num day" { (r.last_day.minute.deliveries()) }
                                td class="num rate" { (view::percent(r.last_day.minute.outcomes.success_rate())) }
                                td class="latency" { (latency_cell(r.last_hour.p50, r.last_hour.p95, r.entry.budget)) }
                                td {
                                    @match r.entry.last_delivery {
                                        Some(t) => (page.when_cell(t)),
                                        None => span class="muted" { "never" },
                                    }
                                }
                                td { (chart::spark(&r.hours)) }
                            }
                        }
                    }
                }
            }
            p class="note" {
                "Success rate: successes among deliveries that were not copies (duplicates and \
                 in-flight copies are answered by the layer). The chart: green, answered well \
                 (success, duplicate, in flight); red, the rest."
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Route

fn route_header(page: &Page<'_>, entry: &RouteEntry, status: Status) -> Markup {
    html! {
        p class="crumbs" { a href=(page.link("/")) { "Overview" } " / route" }
        h1 { "Route " span class="name" { (entry.name) } " " (status_badge(status)) }
        p class="facts" {
            "Provider: " (opt(entry.provider.as_deref()))
            " · Timeout budget: " (entry.budget.map_or_else(|| "none".to_owned(), view::latency))
            " · Last delivery: "
            @match entry.last_delivery {
                Some(t) => (page.when(t)),
                None => "never",
            }
        }
    }
}

fn route_body(page: &Page<'_>, v: &view::RouteView, list: &view::DeliveryList) -> Markup {
    let name = &*v.entry.name;
    let t = &v.total;
    let o = &t.minute.outcomes;
    html! {
        (route_header(page, &v.entry, v.status()))
        @if !v.alerts.is_empty() {
            p class="alerting" {
                "Open alerts: "
                @for (i, kind) in v.alerts.iter().enumerate() {
                    @if i > 0 { ", " }
                    (kind.describe()) " (" code { (kind.as_str()) } ")"
                }
                " · " a href=(page.link("/alerts")) { "alerts" }
            }
        }
        nav class="windows" aria-label="Window" {
            "Window: "
            @for w in Window::ALL {
                a href=(page.route_query(name, &[("window", w.as_str())]))
                    aria-current=[(w == v.window).then_some("true")] { (w.as_str()) }
            }
            span class="muted" {
                " " (view::rfc3339(v.start)) " to " (view::rfc3339(v.end)) ", bars of "
                (view::span(v.window.bucket()))
            }
        }
        section class="cards" aria-label="Figures for the window" {
            (card("deliveries", t.minute.deliveries().to_string()))
            (card("success rate", view::percent(o.success_rate())))
            (card("p50 latency", latency(t.p50)))
            (card("p95 latency", latency(t.p95)))
            (card("retries", t.minute.retries.to_string()))
            (card("duplicates", o.duplicate.to_string()))
            (card("in-flight copies", o.in_flight.to_string()))
            (card("rejected", o.rejected.to_string()))
        }
        div class="split" {
            table class="counts" id="outcome-counts" {
                caption { "Outcomes in the window" }
                @for (name, count) in o.named() {
                    tr { th { span class={ "swatch o-" (name) } {} (name) } td class="num" { (count) } }
                }
            }
            table class="counts" id="flag-counts" {
                caption { "Flags in the window" }
                @for (name, count) in t.minute.flags.named() {
                    tr { th title=(view::flag_meaning(name)) { (name) } td class="num" { (count) } }
                }
            }
        }
        figure {
            figcaption { "Deliveries per " (view::span(v.window.bucket())) ", by outcome" }
            (chart::deliveries(&v.buckets, v.window))
            (chart::outcome_legend())
        }
        figure {
            figcaption { "Latency (receipt to response, deliveries that reached the handler)" }
            (chart::latency(&v.buckets, v.window, v.entry.budget))
            ul class="legend" {
                li { span class="swatch line-p50" {} "p50" }
                li { span class="swatch line-p95" {} "p95" }
                @if let Some(b) = v.entry.budget {
                    li { span class="swatch budget" {} "budget " (view::latency(b)) }
                }
            }
        }
        h2 id="recent" { "Recent deliveries" }
        (filters(page, name, v.window, &list.filter))
        (delivery_table(page, name, &list.deliveries, "deliveries"))
        @if list.deliveries.is_empty() {
            p class="empty" {
                @if is_filtered(&list.filter) { "No recorded delivery matches these filters." }
                @else { "No deliveries recorded yet." }
            }
        }
        p class="pager" {
            @if list.filter.before.is_some() {
                a href=(page_link(page, name, v.window, &list.filter, None)) { "← Newest" }
                " "
            }
            @if let Some(before) = list.older {
                a class="older" href=(page_link(page, name, v.window, &list.filter, Some(before))) {
                    "Older deliveries →"
                }
            }
        }
    }
}

fn card(label: &str, value: String) -> Markup {
    html! { div class="card" { div class="value" { (value) } div class="label" { (label) } } }
}

fn is_filtered(f: &DeliveryFilter) -> bool {
    f.outcome.is_some() || f.event_type.is_some() || f.delivery_id.is_some() || f.before.is_some()
}

fn page_link(
    page: &Page<'_>,
    name: &str,
    window: Window,
    f: &DeliveryFilter,
    before: Option<u64>,
) -> String {
    let before = before.map(|b| b.to_string()).unwrap_or_default();
    let limit = match f.limit {
        PAGE_LIMIT => String::new(),
        limit => limit.to_string(),
    };
    page.route_query(
        name,
        &[
            ("window", window.as_str()),
            ("outcome", f.outcome.as_deref().unwrap_or_default()),
            ("event_type", f.event_type.as_deref().unwrap_or_default()),
            ("delivery_id", f.delivery_id.as_deref().unwrap_or_default()),
            ("limit", &limit),
            ("before", &before),
        ],
    ) + "#recent"
}

fn filters(page: &Page<'_>, name: &str, window: Window, f: &DeliveryFilter) -> Markup {
    html! {
        form id="filters" method="get" action=(page.route_link(name)) {
            input type="hidden" name="window" value=(window.as_str());
            label {
                "Outcome "
                select name="outcome" {
                    option value="" { "any" }
                    @for o in OUTCOMES {
                        option value=(o) selected[f.outcome.as_deref() == Some(o)] { (o) }
                    }
                }
            }
            label {
                "Event type "
                input type="text" name="event_type" value=(f.event_type.as_deref().unwrap_or_default())
                    placeholder="exact, e.g. invoice.paid";
            }
            label {
                "Delivery id "
                input type="text" name="delivery_id" value=(f.delivery_id.as_deref().unwrap_or_default())
                    placeholder="exact";
            }
            button type="submit" { "Filter" }
            @if is_filtered(f) {
                " " a href=(page.route_query(name, &[("window", window.as_str())])) { "Clear" }
            }
        }
    }
}

fn delivery_table(page: &Page<'_>, route: &str, rows: &[Recorded], id: &str) -> Markup {
    html! {
        @if !rows.is_empty() {
            div class="scroll" {
                table id=(id) class="deliveries" {
                    thead {
                        tr {
                            th { "Received" }
                            th { "Delivery" }
                            th { "Event type" }
                            th class="num" { "Attempt" }
                            th class="num" { "Status" }
                            th { "Outcome" }
                            th class="num" { "Latency" }
                            th { "Reason" }
                        }
                    }
                    tbody {
                        @for r in rows {
                            @let report = &r.report;
                            @let d = &report.delivery;
                            tr data-outcome=(report.outcome.as_str()) {
                                td { (page.when_cell(d.received_at())) }
                                td {
                                    a href=(page.delivery_link(route, r.id)) {
                                        @match d.id() {
                                            Some(id) => (view::truncate(id, 40)),
                                            None => { "#" (r.id) },
                                        }
                                    }
                                }
                                td { (opt(d.event_type().map(|e| view::truncate(e, 40)))) }
                                td class="num" { (opt(d.attempt())) }
                                td class="num" { (opt(report.status.map(|s| s.as_u16()))) }
                                td { (outcome_badge(report)) }
                                td class="num" { (view::latency(report.total)) }
                                td class="reason" {
                                    @if let Some(reason) = &report.reason {
                                        span title=(reason) { (view::truncate(reason, 80)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Delivery

fn delivery_body(page: &Page<'_>, v: &view::DeliveryView) -> Markup {
    let r = &v.recorded.report;
    let d = &r.delivery;
    let name = &*v.route.name;
    let signature = d.signature();
    html! {
        p class="crumbs" {
            a href=(page.link("/")) { "Overview" } " / "
            a href=(page.route_link(name)) { (name) } " / delivery"
        }
        h1 { "Delivery #" (v.recorded.id) " " (outcome_badge(r)) }
        dl id="report" {
            dt { "Route" } dd { a href=(page.route_link(name)) { (name) } }
            dt { "Provider" } dd { (opt(d.provider())) }
            dt { "Delivery id" } dd { code { (opt(d.id())) } }
            dt { "Event type" } dd { code { (opt(d.event_type())) } }
            dt { "Attempt" } dd { (opt(d.attempt())) @if d.attempt().is_none() { span class="muted" { " (the provider does not say)" } } }
            dt { "Signature" }
            dd {
                (signature.as_str())
                @if let Some(index) = signature.secret_index() { " with secret #" (index) }
                span class="muted" { " — " (view::signature_meaning(signature.as_str())) }
            }
            dt { "HTTP status" } dd { (opt(r.status.map(|s| s.as_u16()))) @if r.status.is_none() { span class="muted" { " (none was sent)" } } }
            dt { "Outcome" } dd { (outcome_badge(r)) }
            dt { "Reason" } dd id="reason" { (opt(r.reason.as_deref())) }
            dt { "Payload check" }
            dd {
                @match &r.payload {
                    Some(p) => { code { (p.check()) } ": " (p.to_string()) },
                    None => "none failed",
                }
            }
            dt { "Received at" } dd { (page.when(d.received_at())) }
            dt { "Body" } dd { (d.body_len()) " bytes" }
            dt { "Fingerprint" } dd { code { (opt(d.fingerprint())) } }
            dt { "Times seen" } dd { (opt(d.times_seen())) @if d.times_seen().is_none() { span class="muted" { " (no dedupe)" } } }
            dt { "First seen" } dd { @match d.first_seen() { Some(t) => (page.when(t)), None => "–" } }
            dt { "Mean retry interval" } dd { (opt(d.mean_retry_interval().map(view::latency))) }
            dt { "Lag" } dd { (opt(d.lag().map(view::latency))) span class="muted" { " (from the provider's send time to receipt)" } }
            dt { "Timings" }
            dd {
                "body read " (view::latency(r.body_read)) " · handler " (view::latency(r.handler))
                " · total " (view::latency(r.total))
                @if let Some(b) = v.route.budget { " of a " (view::latency(b)) " budget" }
            }
            dt { "Flags" }
            dd {
                @if r.flags.names().next().is_none() { "none" }
                @else {
                    ul class="flags" {
                        @for flag in r.flags.names() {
                            li { code { (flag) } ": " (view::flag_meaning(flag)) }
                        }
                    }
                }
            }
            dt { "Custom fields" }
            dd {
                @if r.fields.is_empty() { "none" }
                @else {
                    table class="fields" {
                        @for f in &r.fields { tr { th { (f.name) } td { (field_value(&f.value)) } } }
                    }
                }
            }
        }
        figure {
            figcaption { "Timings" }
            (chart::timings(r.body_read, r.handler, r.total, v.route.budget))
            ul class="legend" {
                li { span class="swatch t-read" {} "body read" }
                li { span class="swatch t-handler" {} "handler" }
                li { span class="swatch t-rest" {} "rest (layer, dedupe, response)" }
                @if v.route.budget.is_some() { li { span class="swatch budget" {} "budget" } }
            }
        }
        h2 { "Other attempts" }
        ul id="attempts" {
            @match &v.attempts {
                None => li class="muted" { "This delivery has no id: its attempts cannot be told apart." },
                Some(others) if others.is_empty() => li class="muted" { "No other recorded attempt of this delivery id." },
                Some(others) => @for o in others {
                    li {
                        a href=(page.delivery_link(name, o.id)) { "#" (o.id) }
                        " attempt " (opt(o.report.delivery.attempt())) ", "
                        (page.when(o.report.delivery.received_at())) ": "
                        (outcome_badge(&o.report))
                    }
                },
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Alerts and health

fn alerts_body(page: &Page<'_>, v: &view::AlertsView) -> Markup {
    html! {
        h1 { "Alerts" }
        h2 { "Open" }
        @if v.log.open.is_empty() { p class="empty calm" { "No open alerts." } }
        @else { (alert_table(page, v, &v.log.open, "alerts-open")) }
        h2 { "Resolved" }
        @if v.log.resolved.is_empty() { p class="empty" { "No resolved alerts kept." } }
        @else { (alert_table(page, v, &v.log.resolved, "alerts-resolved")) }
    }
}

/// An alert's route: a link to its page, or a process-wide alert's name, which has no page;
/// then the instance it is about, if it is about one.
fn alert_route(page: &Page<'_>, a: &Alert) -> Markup {
    html! {
        @if &*a.route == PROCESS_ROUTE { span class="muted" { (a.route) } }
        @else { a href=(page.route_link(&a.route)) { (a.route) } }
        @if let Some(instance) = &a.instance {
            " " span class="instance" { "on " code { (instance) } }
        }
    }
}

fn alert_table(page: &Page<'_>, v: &view::AlertsView, alerts: &[Alert], id: &str) -> Markup {
    let resolved = alerts
        .first()
        .is_some_and(|a| a.state == AlertState::Resolved);
    html! {
        div class="scroll" {
            table id=(id) {
                thead {
                    tr {
                        th { "Route" } th { "Kind" } th { "Severity" } th { "Opened" }
                        @if resolved { th { "Resolved" } }
                        th class="num" { "Duration" } th { "Figures" }
                    }
                }
                tbody {
                    @for a in alerts {
                        tr {
                            td { (alert_route(page, a)) }
                            td { code { (a.kind.as_str()) } br; span class="muted" { (a.kind.describe()) } }
                            td { span class={ "badge sev-" (a.severity.as_str()) } { (a.severity.as_str()) } }
                            td { (page.when_cell(a.opened_at)) }
                            @if resolved { td { (page.when_cell(a.at)) } }
                            td class="num" { (view::span(view::alert_duration(a, v.now))) }
                            td { (figures(&a.figures)) }
                        }
                    }
                }
            }
        }
    }
}

/// A warning that `fleet`'s instance no longer writes to the fleet's history: since when, and
/// what it lost.
fn stale_warning(page: &Page<'_>, fleet: &FleetHealth) -> Markup {
    html! {
        div class="stale" role="alert" data-instance=(fleet.instance) {
            strong { "Fleet view stale" }
            " on instance " code { (fleet.instance) } ": "
            @match fleet.last_write {
                Some(t) => { "its last write to the fleet's history succeeded at " (page.when(t)) "." },
                None => "no write to the fleet's history has succeeded yet.",
            }
            " The fleet's figures miss its latest deliveries, and its own watchers alert meanwhile."
            br;
            @for (i, (name, value)) in [
                ("lost_deliveries", fleet.lost_deliveries),
                ("dropped_counts", fleet.dropped_counts),
                ("dropped_alerts", fleet.dropped_alerts),
                ("pending_deliveries", fleet.pending_deliveries),
                ("failed_writes", fleet.failed_writes),
            ].into_iter().enumerate() {
                @if i > 0 { " · " }
                span class="figure" { (name) " = " (value) }
            }
        }
    }
}

/// The fleet's instances: heartbeats, the lease, and figures from their health reports.
fn instances_table(page: &Page<'_>, instances: &[InstanceEntry]) -> Markup {
    html! {
        h2 { "Instances" }
        div class="scroll" {
            table id="instances" {
                thead {
                    tr {
                        th { "Instance" } th { "Started" } th { "Last heartbeat" } th { "Lease" }
                        th class="num" { "Queue depth" } th class="num" { "Sent" }
                        th class="num" { "Failed" } th class="num" { "Resident memory" }
                        th { "Fleet view" }
                    }
                }
                tbody {
                    @for i in instances {
                        @let h = i.health.as_ref();
                        @let fleet = h.and_then(|h| h.fleet.as_ref());
                        tr data-instance=(i.id) class=[fleet.is_some_and(|f| f.stale).then_some("warn")] {
                            td { code { (i.id) } }
                            td { @match i.started { Some(t) => (page.when_cell(t)), None => "–" } }
                            td { @match i.last_heartbeat { Some(t) => (page.when_cell(t)), None => "–" } }
                            td { @if i.leader { span class="badge st-ok" { "leader" } } }
                            td class="num" { (opt(h.map(|h| h.reporter.queue_depth))) }
                            td class="num" { (opt(h.map(|h| h.reporter.sent))) }
                            td class="num" { (opt(h.map(|h| h.reporter.failed))) }
                            td class="num" { (opt(h.and_then(|h| h.rss_bytes).map(view::mebibytes))) }
                            td {
                                @match fleet {
                                    Some(f) if f.stale => span class="badge st-alert" { "stale" },
                                    Some(_) => span class="badge st-ok" { "current" },
                                    None => span class="muted" { "–" },
                                }
                            }
                        }
                    }
                }
            }
        }
        p class="note" {
            "An instance sends a heartbeat with every batch it writes. The lease's holder \
             evaluates the fleet watchers and sends their alerts. Queue depth, sent, failed and \
             resident memory are from the instance's latest health report (kept for an hour)."
        }
    }
}

fn health_body(page: &Page<'_>, v: &view::HealthView) -> Markup {
    html! {
        h1 { "Health" }
        @for fleet in v.stale() { (stale_warning(page, fleet)) }
        @if !v.instances.is_empty() { (instances_table(page, &v.instances)) }
        @match &v.report {
            None => p class="empty" {
                "No health report yet. The reporter sends one every health_interval \
                 (60 s by default)."
            },
            Some(h) => {
                p { "Report taken at " (page.when(h.at)) ". The reporter sends one every health_interval." }
                @let r = &h.reporter;
                h2 { "Reporter" }
                table id="reporter" class="counts" {
                    @for (name, value, meaning) in [
                        ("enqueued", r.enqueued, "reports accepted into the queue"),
                        ("sent", r.sent, "reports the sink accepted"),
                        ("failed", r.failed, "reports in batches the sink failed, timed out or panicked on"),
                        ("dropped_full", r.dropped_full, "reports dropped: the queue was full"),
                        ("dropped_closed", r.dropped_closed, "reports dropped: the reporter had stopped"),
                        ("batches", r.batches, "batches handed to the sink"),
                        ("alerts", r.alerts, "alerts opened or resolved"),
                        ("sink_panics", r.sink_panics, "times the sink panicked (caught)"),
                        ("watcher_panics", r.watcher_panics, "times the watchers panicked (a bug: please report it)"),
                        ("queue_depth", r.queue_depth as u64, "reports waiting in the queue"),
                    ] {
                        tr class=[(value > 0 && matches!(name, "failed" | "dropped_full" | "dropped_closed" | "sink_panics" | "watcher_panics")).then_some("warn")] {
                            th { (name) }
                            td class="num" { (value) }
                            td class="muted" { (meaning) }
                        }
                    }
                }
                h2 { "Process" }
                table id="process" class="counts" {
                    tr {
                        th { "rss_bytes" }
                        td class="num" { (opt(h.rss_bytes.map(view::mebibytes))) }
                        td class="muted" {
                            @if h.rss_bytes.is_some() { "resident memory when the report was taken" }
                            @else { "resident memory: this platform does not tell" }
                        }
                    }
                }
                h2 { "Sinks" }
                @if h.sinks.is_empty() {
                    p class="empty" { "The sink reports no backends of its own: the reporter's counters say it all." }
                } @else {
                    div class="scroll" {
                        table id="sinks" {
                            thead {
                                tr {
                                    th { "Sink" } th { "State" }
                                    th class="num" { "Accepted" } th class="num" { "Sent" }
                                    th class="num" { "Failed" } th class="num" { "Dropped" }
                                    th class="num" { "Queued" } th class="num" { "Retries" }
                                    th class="num" { "Panics" } th class="num" { "Failures in a row" }
                                    th class="num" { "Last latency" }
                                }
                            }
                            tbody {
                                @for s in &h.sinks {
                                    tr class=[s.down.then_some("down")] {
                                        td { (s.name) }
                                        td { @if s.down { span class="badge st-alert" { "down" } } @else { span class="badge st-ok" { "up" } } }
                                        td class="num" { (s.accepted) }
                                        td class="num" { (s.sent) }
                                        td class="num" { (s.failed) }
                                        td class="num" { (s.dropped) }
                                        td class="num" { (s.queued) }
                                        td class="num" { (s.retries) }
                                        td class="num" { (s.panics) }
                                        td class="num" { (s.consecutive_failures) }
                                        td class="num" { (latency(s.latency)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_encode_route_names() {
        let page = Page::new("/_webhooks", 10, SystemTime::UNIX_EPOCH);
        assert_eq!(page.route_link("a/b c"), "/_webhooks/routes/a%2Fb%20c");
        assert_eq!(page.route_link("stripe.eu"), "/_webhooks/routes/stripe.eu");
        assert_eq!(
            page.route_link("<img src=x>"),
            "/_webhooks/routes/%3Cimg%20src%3Dx%3E"
        );
        assert_eq!(
            page.route_query(
                "r",
                &[("window", "6h"), ("outcome", ""), ("event_type", "a&b")]
            ),
            "/_webhooks/routes/r?window=6h&event_type=a%26b"
        );
        assert_eq!(
            page.delivery_link("r", 7),
            "/_webhooks/routes/r/deliveries/7"
        );
    }
}

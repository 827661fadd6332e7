use std::{
    sync::{Arc, Mutex, PoisonError},
    time::UNIX_EPOCH,
};

use hashbrown::HashMap;
use metrics::{counter, gauge, histogram, Counter, Histogram, KeyName, Label, SharedString, Unit};

use super::{Sink, SinkError};
use crate::{
    report::{DeliveryReport, HealthReport, Report},
    watch::{Alert, AlertState},
    Outcome,
};

/// A sink that turns reports into metrics on the [`metrics`] facade, for whichever recorder
/// the application installed (Prometheus, StatsD, OpenTelemetry…).
///
/// Names follow the Prometheus conventions: base units (seconds), `_total` on counters. Label
/// values come from the code (route and provider names, fixed vocabularies), never from requests:
/// no delivery id or event type is ever a label.
///
/// | metric | type | labels | meaning |
/// |---|---|---|---|
/// | `webhook_deliveries_total` | counter | `route`, `provider`, `outcome`, `detail` | deliveries by [`Outcome::as_str`]; `detail` is the failure kind or rejection reason ([`Outcome::detail`]). `provider` and `detail` are left out when there is none |
/// | `webhook_flagged_total` | counter | `route`, `flag` | deliveries with a [flag](crate::Flags::names) set, by flag |
/// | `webhook_body_read_duration_seconds` | histogram | `route` | time reading the body, every outcome but `cancelled` |
/// | `webhook_handler_duration_seconds` | histogram | `route` | time in the handler, for the deliveries it answered: `success`, `late`, `failure`, `panicked` |
/// | `webhook_total_duration_seconds` | histogram | `route` | time from the request to the response, every outcome but `cancelled` |
/// | `webhook_alert_open` | gauge | `route`, `kind`, `severity`, and `instance` for an alert about one instance of a fleet | 1 while an [alert](crate::watch::Alert) is open, 0 once it resolved |
/// | `webhook_alerts_opened_total` | counter | `route`, `kind`, `severity` (and `instance`) | alerts opened |
/// | `webhook_reporter_enqueued_total` | counter | | reports accepted into the reporter's queue |
/// | `webhook_reporter_dropped_total` | counter | `reason`: `queue_full`, `closed` | reports dropped before the queue |
/// | `webhook_reporter_sent_total` | counter | | reports the reporter's sink accepted |
/// | `webhook_reporter_failed_total` | counter | | reports in batches its sink failed on |
/// | `webhook_reporter_batches_total` | counter | | batches handed to its sink |
/// | `webhook_reporter_alerts_total` | counter | | alerts raised or resolved by the watchers |
/// | `webhook_reporter_panics_total` | counter | `part`: `sink`, `watcher` | panics the reporter's worker caught |
/// | `webhook_reporter_queue_depth` | gauge | | reports waiting in the queue |
/// | `webhook_reporter_health_timestamp_seconds` | gauge | | Unix time of the last health report: a stalled reporter stops moving it |
/// | `webhook_process_resident_memory_bytes` | gauge | | the process's resident memory ([`HealthReport::rss_bytes`]); not set where the platform does not tell |
/// | `webhook_sink_accepted_total` | counter | `sink` | reports handed to a backend ([`SinkHealth`](super::SinkHealth)) |
/// | `webhook_sink_sent_total` | counter | `sink` | reports the backend took |
/// | `webhook_sink_failed_total` | counter | `sink` | reports given up on |
/// | `webhook_sink_dropped_total` | counter | `sink` | reports dropped on a full backend buffer |
/// | `webhook_sink_retries_total` | counter | `sink` | requests retried |
/// | `webhook_sink_panics_total` | counter | `sink` | panics of the backend's sink, caught |
/// | `webhook_sink_queued` | gauge | `sink` | reports waiting for the backend |
/// | `webhook_sink_consecutive_failures` | gauge | `sink` | failed attempts in a row |
/// | `webhook_sink_down` | gauge | `sink` | 1 while the backend is considered down |
/// | `webhook_sink_latency_seconds` | gauge | `sink` | the last successful request's duration |
///
/// The `webhook_reporter_*`, `webhook_process_*` and `webhook_sink_*` metrics come from the
/// reporter's periodic [`HealthReport`] (every
/// [`health_interval`](crate::report::ReporterBuilder::health_interval)), so they lag by up to
/// one interval; their counters are set to the reporter's totals. They
/// describe one reporter: run one per process, as intended.
///
/// Rejections by reason are `webhook_deliveries_total{outcome="rejected"}` by `detail`,
/// duplicates `webhook_deliveries_total{outcome="duplicate"}`.
///
/// Install the recorder before the reporter starts: the sink describes the metrics on its first
/// batch, and keeps the handles it registers per route and outcome, so that a report costs a
/// few atomic operations rather than a registry lookup.
///
/// # Histograms and their buckets
///
/// The three durations, `webhook_body_read_duration_seconds`,
/// `webhook_handler_duration_seconds` and `webhook_total_duration_seconds`, are recorded as
/// histograms, in seconds. What a histogram becomes is the recorder's choice:
/// metrics-exporter-prometheus renders one as a *summary* (quantiles of this process, a sum and
/// a count) unless it is given buckets. Quantiles of one process cannot be added up, so a
/// fleet's p95 needs buckets: give the exporter [`DURATION_BUCKETS`](Self::DURATION_BUCKETS)
/// for the `webhook_` metrics (or buckets of your own), and each duration renders as
/// `_bucket{le="…"}` counters that Prometheus' `histogram_quantile` sums across instances:
///
/// ```text
/// histogram_quantile(0.95, sum by (route, le) (rate(webhook_total_duration_seconds_bucket[5m])))
/// ```
///
/// `webhook_total_duration_seconds` is the time the [timeout budget](crate::Policy::timeout_budget)
/// is measured against, and the buckets include every provider's budget, so the share of a
/// route's deliveries answered after a 3 s budget (Slack's) is exact:
///
/// ```text
/// 1 - sum(rate(webhook_total_duration_seconds_bucket{route="slack",le="3"}[5m]))
///   / sum(rate(webhook_total_duration_seconds_count{route="slack"}[5m]))
/// ```
///
/// Each bucket is one more series per route and duration metric: 20 with `+Inf`, so 60 per
/// route.
///
/// # Example
///
/// With metrics-exporter-prometheus, serving `handle.render()` at `/metrics` (see
/// `examples/prometheus.rs`). The matcher gives the buckets to this sink's histograms only,
/// leaving the application's own to their settings:
///
/// ```
/// use std::time::Duration;
/// use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
/// use webhook_monitor::report::{MetricsSink, Reporter};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), webhook_monitor::BoxError> {
/// let handle = PrometheusBuilder::new()
///     .set_buckets_for_metric(
///         Matcher::Prefix("webhook_".to_owned()),
///         MetricsSink::DURATION_BUCKETS,
///     )?
///     .install_recorder()?;
/// let (reporter, guard) = Reporter::spawn(MetricsSink::new());
/// // … hand `reporter` to `WebhookMonitorLayer::new`, serve `handle.render()` …
/// # drop(reporter);
/// guard.shutdown(Duration::from_secs(5)).await?;
/// # let _ = handle.render();
/// # Ok(())
/// # }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
#[derive(Debug, Default)]
pub struct MetricsSink {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    described: bool,
    /// Hashed with foldhash: route names come from the code, and the lookup is on every report.
    routes: HashMap<String, RouteMetrics>,
}

/// The handles of one route, registered on its first report.
#[derive(Debug)]
struct RouteMetrics {
    body_read: Histogram,
    handler: Histogram,
    total: Histogram,
    /// A handful per route, searched in order.
    deliveries: Vec<(ProviderOutcome, Counter)>,
    flags: Vec<(&'static str, Counter)>,
}

type ProviderOutcome = (Option<Arc<str>>, Outcome);

const DELIVERIES: &str = "webhook_deliveries_total";
const FLAGGED: &str = "webhook_flagged_total";
const BODY_READ: &str = "webhook_body_read_duration_seconds";
const HANDLER: &str = "webhook_handler_duration_seconds";
const TOTAL: &str = "webhook_total_duration_seconds";
const ALERT_OPEN: &str = "webhook_alert_open";
const ALERTS_OPENED: &str = "webhook_alerts_opened_total";
const REPORTER_ENQUEUED: &str = "webhook_reporter_enqueued_total";
const REPORTER_DROPPED: &str = "webhook_reporter_dropped_total";
const REPORTER_SENT: &str = "webhook_reporter_sent_total";
const REPORTER_FAILED: &str = "webhook_reporter_failed_total";
const REPORTER_BATCHES: &str = "webhook_reporter_batches_total";
const REPORTER_ALERTS: &str = "webhook_reporter_alerts_total";
const REPORTER_PANICS: &str = "webhook_reporter_panics_total";
const REPORTER_QUEUE_DEPTH: &str = "webhook_reporter_queue_depth";
const REPORTER_HEALTH_AT: &str = "webhook_reporter_health_timestamp_seconds";
const PROCESS_RSS: &str = "webhook_process_resident_memory_bytes";
const SINK_ACCEPTED: &str = "webhook_sink_accepted_total";
const SINK_SENT: &str = "webhook_sink_sent_total";
const SINK_FAILED: &str = "webhook_sink_failed_total";
const SINK_DROPPED: &str = "webhook_sink_dropped_total";
const SINK_RETRIES: &str = "webhook_sink_retries_total";
const SINK_PANICS: &str = "webhook_sink_panics_total";
const SINK_QUEUED: &str = "webhook_sink_queued";
const SINK_CONSECUTIVE_FAILURES: &str = "webhook_sink_consecutive_failures";
const SINK_DOWN: &str = "webhook_sink_down";
const SINK_LATENCY: &str = "webhook_sink_latency_seconds";

enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric's type, name, unit and help text, for the recorder's descriptions.
#[rustfmt::skip]
const DESCRIPTIONS: [(Kind, &str, Option<Unit>, &str); 27] = [
    (Kind::Counter, DELIVERIES, None, "Webhook deliveries by route, provider, outcome and detail"),
    (Kind::Counter, FLAGGED, None, "Webhook deliveries with a flag set, by flag"),
    (Kind::Histogram, BODY_READ, Some(Unit::Seconds), "Time reading a webhook's body"),
    (Kind::Histogram, HANDLER, Some(Unit::Seconds), "Time in the webhook handler"),
    (Kind::Histogram, TOTAL, Some(Unit::Seconds), "Time from a webhook request to its response"),
    (Kind::Gauge, ALERT_OPEN, None, "1 while the alert is open, 0 once it resolved"),
    (Kind::Counter, ALERTS_OPENED, None, "Alerts opened by the webhook watchers"),
    (Kind::Counter, REPORTER_ENQUEUED, None, "Reports accepted into the reporter's queue"),
    (Kind::Counter, REPORTER_DROPPED, None, "Reports dropped before the reporter's queue, by reason"),
    (Kind::Counter, REPORTER_SENT, None, "Reports the reporter's sink accepted"),
    (Kind::Counter, REPORTER_FAILED, None, "Reports in batches the reporter's sink failed on"),
    (Kind::Counter, REPORTER_BATCHES, None, "Batches handed to the reporter's sink"),
    (Kind::Counter, REPORTER_ALERTS, None, "Alerts raised or resolved by the watchers"),
    (Kind::Counter, REPORTER_PANICS, None, "Panics the reporter's worker caught, by part"),
    (Kind::Gauge, REPORTER_QUEUE_DEPTH, None, "Reports waiting in the reporter's queue"),
    (Kind::Gauge, REPORTER_HEALTH_AT, Some(Unit::Seconds), "Unix time of the reporter's last health report"),
    (Kind::Gauge, PROCESS_RSS, Some(Unit::Bytes), "Resident memory of the process"),
    (Kind::Counter, SINK_ACCEPTED, None, "Reports handed to the backend"),
    (Kind::Counter, SINK_SENT, None, "Reports the backend took"),
    (Kind::Counter, SINK_FAILED, None, "Reports given up on"),
    (Kind::Counter, SINK_DROPPED, None, "Reports dropped on the backend's full buffer"),
    (Kind::Counter, SINK_RETRIES, None, "Requests to the backend retried"),
    (Kind::Counter, SINK_PANICS, None, "Panics of the backend's sink, caught"),
    (Kind::Gauge, SINK_QUEUED, None, "Reports waiting for the backend"),
    (Kind::Gauge, SINK_CONSECUTIVE_FAILURES, None, "Failed attempts in a row"),
    (Kind::Gauge, SINK_DOWN, None, "1 while the backend is considered down"),
    (Kind::Gauge, SINK_LATENCY, Some(Unit::Seconds), "Duration of the backend's last successful request"),
];

impl MetricsSink {
    /// Histogram buckets for the three duration metrics, in seconds, sorted: from 5 ms to 60 s,
    /// with a bound at every provider's response timeout and at 80% of it.
    ///
    /// - 5 ms to 1 s in 1-2.5-5 steps: a healthy handler's answer, and the body reads.
    /// - The providers' response timeouts, as their presets set the
    ///   [`timeout_budget`](crate::Policy::timeout_budget): 3 s (Slack, Zoom, Discord), 5 s
    ///   (Shopify, Paddle, Razorpay), 10 s (GitHub, Square, GitLab), 15 s (Twilio, Svix and
    ///   Standard Webhooks); and 30 s, the longest any provider documents (GitHub Enterprise
    ///   Server) and the default [body timeout](crate::Policy::DEFAULT_BODY_TIMEOUT). A bound on
    ///   a budget counts exactly the deliveries answered in time; the others were
    ///   [late](crate::Outcome::Late) or failed, and the provider retries them.
    /// - 80% of each budget (2.4, 4, 8, 12 and 24 s): where a delivery is flagged
    ///   [`near_timeout`](crate::Flags::near_timeout)
    ///   ([`NEAR_TIMEOUT_PERCENT`](crate::Policy::NEAR_TIMEOUT_PERCENT)), so a p95 that creeps
    ///   towards a budget shows before it crosses it, rather than somewhere in a bucket as wide
    ///   as the budget.
    /// - 60 s, twice the longest budget: a handler that runs far past every provider's patience
    ///   still lands in a bucket, not only in `+Inf`.
    ///
    /// Pass them to the recorder; see [Histograms and their
    /// buckets](Self#histograms-and-their-buckets).
    ///
    /// # Example
    ///
    /// ```
    /// use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    /// use webhook_monitor::report::MetricsSink;
    ///
    /// # fn main() -> Result<(), metrics_exporter_prometheus::BuildError> {
    /// let recorder = PrometheusBuilder::new()
    ///     .set_buckets_for_metric(
    ///         Matcher::Prefix("webhook_".to_owned()),
    ///         MetricsSink::DURATION_BUCKETS,
    ///     )?
    ///     .build_recorder();
    /// # let _ = recorder;
    /// assert!(MetricsSink::DURATION_BUCKETS.contains(&3.0));
    /// # Ok(())
    /// # }
    /// ```
    pub const DURATION_BUCKETS: &'static [f64] = &[
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.4, 3.0, 4.0, 5.0, 8.0, 10.0, 12.0, 15.0,
        24.0, 30.0, 60.0,
    ];

    /// A metrics sink, for the recorder installed when it gets its first batch.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Sink for MetricsSink {
    async fn send(&self, batch: &[Report]) -> Result<(), SinkError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !state.described {
            state.described = true;
            describe();
        }
        for report in batch {
            match report {
                Report::Delivery(d) => state.delivery(d),
                Report::Alert(a) => alert(a),
                Report::Health(h) => health(h),
            }
        }
        Ok(())
    }
}

fn describe() {
    metrics::with_recorder(|recorder| {
        for (kind, name, unit, help) in DESCRIPTIONS {
            let (name, help) = (KeyName::from_const_str(name), SharedString::const_str(help));
            match kind {
                Kind::Counter => recorder.describe_counter(name, unit, help),
                Kind::Gauge => recorder.describe_gauge(name, unit, help),
                Kind::Histogram => recorder.describe_histogram(name, unit, help),
            }
        }
    });
}

impl State {
    fn delivery(&mut self, r: &DeliveryReport) {
        let d = &r.delivery;
        let route = self
            .routes
            .entry_ref(d.route())
            .or_insert_with(|| RouteMetrics::new(&d.data().route));
        let provider = d.provider();
        cached(
            &mut route.deliveries,
            |(p, outcome)| *outcome == r.outcome && p.as_deref() == provider,
            || {
                let mut labels = vec![Label::new("route", Arc::clone(&d.data().route))];
                if let Some(provider) = &d.data().provider {
                    labels.push(Label::new("provider", Arc::clone(provider)));
                }
                labels.push(Label::new("outcome", r.outcome.as_str()));
                if let Some(detail) = r.outcome.detail() {
                    labels.push(Label::new("detail", detail));
                }
                (
                    (d.data().provider.clone(), r.outcome),
                    counter!(DELIVERIES, labels),
                )
            },
        )
        .increment(1);
        for flag in r.flags.names() {
            cached(
                &mut route.flags,
                |f| *f == flag,
                || {
                    let route = Arc::clone(&d.data().route);
                    (flag, counter!(FLAGGED, "route" => route, "flag" => flag))
                },
            )
            .increment(1);
        }
        if r.outcome != Outcome::Cancelled {
            route.body_read.record(r.body_read);
            route.total.record(r.total);
        }
        if matches!(
            r.outcome,
            Outcome::Success | Outcome::Late | Outcome::Failure(_) | Outcome::Panicked
        ) {
            route.handler.record(r.handler);
        }
    }
}

impl RouteMetrics {
    fn new(route: &Arc<str>) -> Self {
        let histogram = |name| histogram!(name, "route" => Arc::clone(route));
        Self {
            body_read: histogram(BODY_READ),
            handler: histogram(HANDLER),
            total: histogram(TOTAL),
            deliveries: Vec::new(),
            flags: Vec::new(),
        }
    }
}

/// The cached counter whose key `matches`, or a new one from `register`.
fn cached<K>(
    counters: &mut Vec<(K, Counter)>,
    matches: impl Fn(&K) -> bool,
    register: impl FnOnce() -> (K, Counter),
) -> &Counter {
    let i = match counters.iter().position(|(k, _)| matches(k)) {
        Some(i) => i,
        None => {
            counters.push(register());
            counters.len() - 1
        }
    };
    &counters[i].1
}

fn alert(a: &Alert) {
    let mut labels = vec![
        Label::new("route", Arc::clone(&a.route)),
        Label::new("kind", a.kind.as_str()),
        Label::new("severity", a.severity.as_str()),
    ];
    if let Some(instance) = &a.instance {
        labels.push(Label::new("instance", Arc::clone(instance)));
    }
    let open = a.state == AlertState::Opened;
    gauge!(ALERT_OPEN, labels.clone()).set(f64::from(u8::from(open)));
    if open {
        counter!(ALERTS_OPENED, labels).increment(1);
    }
}

fn health(h: &HealthReport) {
    let r = &h.reporter;
    counter!(REPORTER_ENQUEUED).absolute(r.enqueued);
    counter!(REPORTER_DROPPED, "reason" => "queue_full").absolute(r.dropped_full);
    counter!(REPORTER_DROPPED, "reason" => "closed").absolute(r.dropped_closed);
    counter!(REPORTER_SENT).absolute(r.sent);
    counter!(REPORTER_FAILED).absolute(r.failed);
    counter!(REPORTER_BATCHES).absolute(r.batches);
    counter!(REPORTER_ALERTS).absolute(r.alerts);
    counter!(REPORTER_PANICS, "part" => "sink").absolute(r.sink_panics);
    counter!(REPORTER_PANICS, "part" => "watcher").absolute(r.watcher_panics);
    gauge!(REPORTER_QUEUE_DEPTH).set(r.queue_depth as f64);
    if let Ok(at) = h.at.duration_since(UNIX_EPOCH) {
        gauge!(REPORTER_HEALTH_AT).set(at);
    }
    if let Some(rss) = h.rss_bytes {
        gauge!(PROCESS_RSS).set(rss as f64);
    }
    for s in &h.sinks {
        let sink = [("sink", s.name.clone())];
        counter!(SINK_ACCEPTED, &sink).absolute(s.accepted);
        counter!(SINK_SENT, &sink).absolute(s.sent);
        counter!(SINK_FAILED, &sink).absolute(s.failed);
        counter!(SINK_DROPPED, &sink).absolute(s.dropped);
        counter!(SINK_RETRIES, &sink).absolute(s.retries);
        counter!(SINK_PANICS, &sink).absolute(s.panics);
        gauge!(SINK_QUEUED, &sink).set(s.queued as f64);
        gauge!(SINK_CONSECUTIVE_FAILURES, &sink).set(s.consecutive_failures);
        gauge!(SINK_DOWN, &sink).set(f64::from(u8::from(s.down)));
        if let Some(latency) = s.latency {
            gauge!(SINK_LATENCY, &sink).set(latency);
        }
    }
}

use std::fmt;

use hashbrown::HashMap;
use reqwest::Url;
use serde::ser::{Serialize, SerializeMap, Serializer};

use super::{
    delivered_fine, join, parse_url,
    transport::{Backend, Call},
    HttpSinkError, HttpTransport,
};
use crate::report::{Report, ReporterBuilder, Sink, SinkError, SinkHealth};

/// Sends reports to a Seiri-style monitor: pings, reports, or batches, each to the `ref` of
/// the report's route.
///
/// Requests go to `{base}/{ref}…`, the ref percent-encoded as one path segment, `base` being
/// Seiri's [`DEFAULT_BASE_URL`](Self::DEFAULT_BASE_URL) (`https://cloud.seiri.app/webhooks`)
/// unless [`base_url`](Self::base_url) sets another (a self-hosted or compatible service).
/// [`SeiriSink::new`] takes the default `ref`; map routes to their own refs with
/// [`route`](Self::route). The sink is named `"seiri"` in [`SinkHealth`].
///
/// # Requests, by [`SeiriMode`]
///
/// - [`Batch`](SeiriMode::Batch) (the default): per batch, one request per ref, with every
///   report of that ref (alerts by their route, health reports to the default ref):
///
///   ```text
///   POST {base}/{ref}
///   Content-Type: application/json
///
///   {"metrics_batch": [<report>, …], "batch_size": <n>, "flush_reason": "size" | "interval"}
///   ```
///
///   `flush_reason` is `"size"` when the batch handed to the sink holds at least
///   [`batch_size`](Self::batch_size) reports (the batch was cut because it was full), and
///   `"interval"` otherwise (it was cut by time: the reporter's linger or its periodic tick).
///   When the reporter stops, [`close`](Sink::close) posts
///   `{"metrics_batch": [], "batch_size": 0, "flush_reason": "shutdown"}` to the default ref, so
///   that the service can tell a stop from a crash.
/// - [`Ping`](SeiriMode::Ping): per delivery, `GET {base}/{ref}/success` when its outcome is
///   `success` or `duplicate` (a copy of a delivery already processed successfully), and
///   `GET {base}/{ref}/fail` for every other outcome (`late`, `failure`, `rejected`,
///   `in_flight`, `panicked`, `cancelled`). Alerts and health reports are not pinged (nor
///   counted as accepted).
/// - [`Post`](SeiriMode::Post): per report (deliveries, alerts and health reports),
///   `POST {base}/{ref}` with the report's JSON (`docs/report-schema.md`) as the body.
///
/// Reports are the schema's objects. Up to 8 requests of one batch run at once; `send` fails
/// when any of them does, once all have ended. See the [module docs](super) for retries.
///
/// # Example
///
/// ```
/// use webhook_monitor::report::http::{HttpTransport, SeiriMode, SeiriSink};
///
/// let transport = HttpTransport::builder().build()?;
/// let sink = SeiriSink::new(&transport, "all-webhooks")
///     .route("stripe", "payments-ref")
///     .mode(SeiriMode::Ping);
/// // The same on another host:
/// let elsewhere = SeiriSink::new(&transport, "all-webhooks").base_url("https://seiri.example")?;
/// # let _ = sink;
/// # Ok::<_, webhook_monitor::report::http::HttpSinkError>(())
/// ```
pub struct SeiriSink {
    backend: Backend,
    base: Url,
    default_ref: String,
    refs: HashMap<String, String>,
    mode: SeiriMode,
    batch_size: usize,
}

/// What a [`SeiriSink`] sends: see its docs for each mode's requests.
///
/// # Example
///
/// ```
/// use webhook_monitor::report::http::{HttpTransport, SeiriMode, SeiriSink};
///
/// let transport = HttpTransport::builder().build()?;
/// // A success or fail ping per delivery, nothing else.
/// let pings = SeiriSink::new(&transport, "ref").mode(SeiriMode::Ping);
/// # let _ = pings;
/// # Ok::<_, webhook_monitor::report::http::HttpSinkError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SeiriMode {
    /// One `POST` per ref and batch, with the batch's reports in `metrics_batch`.
    #[default]
    Batch,
    /// One `GET …/success` or `GET …/fail` per delivery.
    Ping,
    /// One `POST` per report, with its JSON.
    Post,
}

impl SeiriSink {
    /// Seiri's address, the default base URL: requests go to `{DEFAULT_BASE_URL}/{ref}…`.
    pub const DEFAULT_BASE_URL: &'static str = "https://cloud.seiri.app/webhooks";

    /// A sink sending to Seiri ([`DEFAULT_BASE_URL`](Self::DEFAULT_BASE_URL)), with
    /// `default_ref` for routes not given one with [`route`](Self::route) and for health
    /// reports.
    pub fn new(transport: &HttpTransport, default_ref: impl Into<String>) -> Self {
        Self {
            backend: transport.backend("seiri"),
            base: parse_url(Self::DEFAULT_BASE_URL).expect("the default base URL is valid"),
            default_ref: default_ref.into(),
            refs: HashMap::new(),
            mode: SeiriMode::default(),
            batch_size: ReporterBuilder::DEFAULT_BATCH_SIZE,
        }
    }

    /// Sends to `base_url` instead of Seiri's (a self-hosted or compatible service, or a test
    /// server): requests go to `{base_url}/{ref}…`.
    ///
    /// # Errors
    ///
    /// [`HttpSinkError::InvalidUrl`] when `base_url` is not an absolute `http(s)` URL.
    pub fn base_url(mut self, base_url: &str) -> Result<Self, HttpSinkError> {
        self.base = parse_url(base_url)?;
        Ok(self)
    }

    /// Sends the reports of `route` (a [`Policy`](crate::Policy)'s name) to `reference`
    /// instead of the default ref.
    #[must_use]
    pub fn route(mut self, route: impl Into<String>, reference: impl Into<String>) -> Self {
        self.refs.insert(route.into(), reference.into());
        self
    }

    /// What to send. Defaults to [`SeiriMode::Batch`].
    #[must_use]
    pub fn mode(mut self, mode: SeiriMode) -> Self {
        self.mode = mode;
        self
    }

    /// In [`SeiriMode::Batch`], the batch size that makes a batch full (`"flush_reason":
    /// "size"`): set it to the batch size of whatever hands batches to this sink. Defaults to
    /// [`ReporterBuilder::DEFAULT_BATCH_SIZE`].
    #[must_use]
    pub fn batch_size(mut self, size: usize) -> Self {
        self.batch_size = size;
        self
    }

    fn ref_of(&self, route: Option<&str>) -> &str {
        route
            .and_then(|r| self.refs.get(r))
            .unwrap_or(&self.default_ref)
    }

    /// The requests for `batch`, each with the number of reports it carries.
    fn calls(&self, batch: &[Report]) -> Result<Vec<(Call, u64)>, serde_json::Error> {
        fn route(report: &Report) -> Option<&str> {
            match report {
                Report::Delivery(d) => Some(d.delivery.route()),
                Report::Alert(a) => Some(&a.route),
                Report::Health(_) => None,
            }
        }
        match self.mode {
            SeiriMode::Ping => Ok(batch
                .iter()
                .filter_map(Report::as_delivery)
                .map(|d| {
                    let action = if delivered_fine(d.outcome) {
                        "success"
                    } else {
                        "fail"
                    };
                    let reference = self.ref_of(Some(d.delivery.route()));
                    (Call::get(join(&self.base, &[reference, action])), 1)
                })
                .collect()),
            SeiriMode::Post => batch
                .iter()
                .map(|report| {
                    let url = join(&self.base, &[self.ref_of(route(report))]);
                    Ok((Call::post(url, JSON, serde_json::to_vec(report)?), 1))
                })
                .collect(),
            SeiriMode::Batch => {
                let reason = if batch.len() >= self.batch_size {
                    "size"
                } else {
                    "interval"
                };
                let mut by_ref: Vec<(&str, Vec<&Report>)> = Vec::new();
                for report in batch {
                    let reference = self.ref_of(route(report));
                    match by_ref.iter_mut().find(|(r, _)| *r == reference) {
                        Some((_, reports)) => reports.push(report),
                        None => by_ref.push((reference, vec![report])),
                    }
                }
                by_ref
                    .into_iter()
                    .map(|(reference, reports)| {
                        let n = reports.len() as u64;
                        Ok((self.batch_call(reference, &reports, reason)?, n))
                    })
                    .collect()
            }
        }
    }

    fn batch_call(
        &self,
        reference: &str,
        reports: &[&Report],
        reason: &'static str,
    ) -> Result<Call, serde_json::Error> {
        let body = serde_json::to_vec(&MetricsBatch { reports, reason })?;
        Ok(Call::post(join(&self.base, &[reference]), JSON, body))
    }
}

const JSON: &str = "application/json";

impl Sink for SeiriSink {
    async fn send(&self, batch: &[Report]) -> Result<(), SinkError> {
        let calls = self.calls(batch).map_err(SinkError::new)?;
        let calls = calls
            .into_iter()
            .map(|(call, n)| (call, self.backend.accept(n)))
            .collect();
        self.backend
            .deliver_all(calls)
            .await
            .map_err(SinkError::new)
    }

    fn health(&self) -> Vec<SinkHealth> {
        vec![self.backend.health()]
    }

    async fn close(&self) {
        if self.mode != SeiriMode::Batch {
            return;
        }
        if let Ok(call) = self.batch_call(&self.default_ref, &[], "shutdown") {
            // It carries no report: a failure has nothing to count, the reporter is stopping.
            let _ = self.backend.deliver(&call).await;
        }
    }
}

/// The body of a batch: `{"metrics_batch": […], "batch_size": n, "flush_reason": …}`.
struct MetricsBatch<'a> {
    reports: &'a [&'a Report],
    reason: &'static str,
}

impl Serialize for MetricsBatch<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("metrics_batch", self.reports)?;
        m.serialize_entry("batch_size", &self.reports.len())?;
        m.serialize_entry("flush_reason", self.reason)?;
        m.end()
    }
}

impl fmt::Debug for SeiriSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeiriSink")
            .field("mode", &self.mode)
            .field("routes", &self.refs.keys().collect::<Vec<_>>())
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_go_to_seiri_unless_told_otherwise() {
        let transport = HttpTransport::builder().build().expect("a transport");
        let sink = SeiriSink::new(&transport, "orders");
        let ping = join(&sink.base, &["my ref", "success"]);
        assert_eq!(
            ping.as_str(),
            "https://cloud.seiri.app/webhooks/my%20ref/success"
        );
        let elsewhere = sink
            .base_url("http://127.0.0.1:9/api/")
            .expect("a valid URL");
        assert_eq!(
            join(&elsewhere.base, &["orders"]).as_str(),
            "http://127.0.0.1:9/api/orders"
        );
        let invalid = SeiriSink::new(&transport, "orders").base_url("/relative");
        assert!(matches!(invalid, Err(HttpSinkError::InvalidUrl)));
    }
}

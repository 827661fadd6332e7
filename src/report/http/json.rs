use std::fmt;

use http::{
    header::{HeaderName, AUTHORIZATION},
    HeaderMap, HeaderValue,
};
use reqwest::Url;

use super::{
    parse_url,
    transport::{Backend, Call},
    HttpSinkError, HttpTransport,
};
use crate::report::{Report, Sink, SinkError, SinkHealth};

/// Posts each batch, as one JSON array of reports, to any URL.
///
/// # Requests
///
/// One per batch (none for an empty one):
///
/// ```text
/// POST {url}
/// Content-Type: application/json
/// User-Agent: webhook-monitor/<version>
/// Authorization: Bearer <token>          (with `bearer_token`)
/// <extra headers>                        (with `header`)
///
/// [<report>, <report>, …]
/// ```
///
/// Each report is one object of the schema in `docs/report-schema.md`: deliveries, alerts and
/// health reports alike. The batch is delivered, refused, or given up as a whole (see the
/// [module docs](super) for retries). Named by the URL's host in [`SinkHealth`].
///
/// # Example
///
/// ```
/// use webhook_monitor::report::http::{HttpTransport, JsonHttpSink};
///
/// let transport = HttpTransport::builder().build()?;
/// let sink = JsonHttpSink::new(&transport, "https://ingest.example.com/v1/reports")?
///     .bearer_token("s3cr3t")?
///     .header("x-source", "webhooks")?;
/// assert!(!format!("{sink:?}").contains("s3cr3t"));
/// # Ok::<_, webhook_monitor::report::http::HttpSinkError>(())
/// ```
pub struct JsonHttpSink {
    backend: Backend,
    url: Url,
    headers: HeaderMap,
}

impl JsonHttpSink {
    /// A sink posting to `url`, an absolute `http` or `https` URL.
    ///
    /// # Errors
    ///
    /// [`HttpSinkError::InvalidUrl`] when `url` is not one.
    pub fn new(transport: &HttpTransport, url: &str) -> Result<Self, HttpSinkError> {
        let url = parse_url(url)?;
        let host = url.host_str().unwrap_or_default().to_owned();
        Ok(Self {
            backend: transport.backend(host),
            url,
            headers: HeaderMap::new(),
        })
    }

    /// Sends `Authorization: Bearer <token>` with every request. The token never appears in
    /// `Debug` or logs.
    ///
    /// # Errors
    ///
    /// [`HttpSinkError::InvalidHeader`] when the token has characters a header cannot carry.
    pub fn bearer_token(self, token: impl fmt::Display) -> Result<Self, HttpSinkError> {
        self.insert(AUTHORIZATION, &format!("Bearer {token}"))
    }

    /// Sends the header `name: value` with every request (replacing an earlier one of the
    /// same name). Only its name appears in `Debug`.
    ///
    /// # Errors
    ///
    /// [`HttpSinkError::InvalidHeader`] when `name` or `value` is not valid HTTP.
    pub fn header(self, name: &str, value: &str) -> Result<Self, HttpSinkError> {
        let name = HeaderName::try_from(name).map_err(|_| HttpSinkError::InvalidHeader)?;
        self.insert(name, value)
    }

    fn insert(mut self, name: HeaderName, value: &str) -> Result<Self, HttpSinkError> {
        let mut value = HeaderValue::try_from(value).map_err(|_| HttpSinkError::InvalidHeader)?;
        value.set_sensitive(true);
        self.headers.insert(name, value);
        Ok(self)
    }
}

impl Sink for JsonHttpSink {
    async fn send(&self, batch: &[Report]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let pending = self.backend.accept(batch.len() as u64);
        let body = serde_json::to_vec(batch).map_err(SinkError::new)?;
        let call = Call::post(self.url.clone(), "application/json", body).headers(&self.headers);
        self.backend
            .deliver_all(vec![(call, pending)])
            .await
            .map_err(SinkError::new)
    }

    fn health(&self) -> Vec<SinkHealth> {
        vec![self.backend.health()]
    }
}

impl fmt::Debug for JsonHttpSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonHttpSink")
            .field("host", &self.backend.name())
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

//! [`EmailSink`]: alerts by email, over SMTP (feature `email`).

use std::{
    fmt::{self, Write as _},
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex, PoisonError,
    },
    time::Duration,
};

use lettre::{
    message::{Mailbox, MultiPart},
    transport::smtp::{
        authentication::Credentials,
        client::{Certificate, Tls, TlsParameters},
    },
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};
use rustls_pki_types::{pem::PemObject, CertificateDer};
use tokio::time::Instant;

use super::alert_text::figure_text;
use crate::{
    report::{Report, Sink, SinkError, SinkHealth},
    watch::{Alert, AlertState, Severity},
    BoxError,
};

/// How an [`EmailSink`] secures its SMTP connection.
///
/// # Example
///
/// ```
/// use webhook_monitor::report::{EmailSink, EmailTls};
///
/// // Port 465 by default with implicit TLS.
/// let builder = EmailSink::builder("smtp.example.com").tls(EmailTls::Implicit);
/// # drop(builder);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum EmailTls {
    /// Connect in plain text, then upgrade with `STARTTLS`; fail if the server does not offer
    /// it. Default port 587. The default.
    #[default]
    StartTls,
    /// TLS from the first byte ("SMTPS"). Default port 465.
    Implicit,
    /// No TLS at all: credentials and messages travel in clear. Only for a relay on loopback
    /// (a local mail daemon) and for tests. Default port 25.
    None,
}

impl EmailTls {
    fn default_port(self) -> u16 {
        match self {
            Self::StartTls => 587,
            Self::Implicit => 465,
            Self::None => 25,
        }
    }
}

/// Why an [`EmailSink`] could not be built, or could not send.
///
/// Never names the password.
///
/// # Example
///
/// ```
/// use webhook_monitor::report::{EmailError, EmailSink};
///
/// let error = EmailSink::builder("smtp.example.com")
///     .from("alerts@example.com")
///     .build()
///     .unwrap_err();
/// assert!(matches!(error, EmailError::MissingTo));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum EmailError {
    /// An address given to the builder is not a valid mailbox (`name@example.com` or
    /// `Name <name@example.com>`).
    InvalidAddress(String),
    /// No [`from`](EmailSinkBuilder::from) address was given.
    MissingFrom,
    /// No [`to`](EmailSinkBuilder::to) address was given.
    MissingTo,
    /// A [root certificate](EmailSinkBuilder::root_certificate) holds no PEM certificate, or
    /// one that cannot be read.
    InvalidRootCertificate,
    /// The TLS setup failed.
    Tls(BoxError),
    /// The message could not be built.
    Message(BoxError),
    /// The SMTP exchange failed (connection, TLS handshake, authentication, or the server
    /// refused the message).
    Smtp(BoxError),
}

impl fmt::Display for EmailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidAddress(address) => write!(f, "invalid email address: {address:?}"),
            Self::MissingFrom => f.write_str("no sender address (`from`) given"),
            Self::MissingTo => f.write_str("no recipient address (`to`) given"),
            Self::InvalidRootCertificate => {
                f.write_str("the root certificate is not a PEM certificate")
            }
            Self::Tls(_) => f.write_str("could not set up TLS for SMTP"),
            Self::Message(_) => f.write_str("could not build the email"),
            Self::Smtp(_) => f.write_str("SMTP delivery failed"),
        }
    }
}

impl std::error::Error for EmailError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Tls(source) | Self::Message(source) | Self::Smtp(source) => Some(&**source),
            _ => None,
        }
    }
}

/// Builds an [`EmailSink`]; from [`EmailSink::builder`].
///
/// The password given to [`credentials`](Self::credentials) never appears in `Debug`.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use webhook_monitor::report::{EmailSink, EmailTls};
///
/// // A local relay on loopback: no TLS, no login.
/// let sink = EmailSink::builder("127.0.0.1")
///     .tls(EmailTls::None)
///     .port(2525)
///     .timeout(Duration::from_secs(5))
///     .from("webhook-monitor@localhost")
///     .to("ops@localhost")
///     .build()?;
/// # drop(sink);
/// # Ok::<_, webhook_monitor::report::EmailError>(())
/// ```
#[must_use]
pub struct EmailSinkBuilder {
    host: String,
    port: Option<u16>,
    tls: EmailTls,
    credentials: Option<(String, String)>,
    from: Option<String>,
    to: Vec<String>,
    digest: Option<Duration>,
    timeout: Duration,
    /// PEM bundles of root certificates trusted besides the platform's.
    roots: Vec<Vec<u8>>,
}

impl EmailSinkBuilder {
    /// The server's port. Defaults to 587 for [`EmailTls::StartTls`], 465 for
    /// [`EmailTls::Implicit`] and 25 for [`EmailTls::None`].
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// How the connection is secured. Defaults to [`EmailTls::StartTls`].
    pub fn tls(mut self, tls: EmailTls) -> Self {
        self.tls = tls;
        self
    }

    /// Log in as `user` with `password` (`AUTH PLAIN` or `LOGIN`). Defaults to no login.
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((user.into(), password.into()));
        self
    }

    /// The sender's address. Required.
    pub fn from(mut self, address: impl Into<String>) -> Self {
        self.from = Some(address.into());
        self
    }

    /// Adds a recipient. At least one is required.
    pub fn to(mut self, address: impl Into<String>) -> Self {
        self.to.push(address.into());
        self
    }

    /// Gather alerts into one message per `interval` instead of one message per alert.
    /// Defaults to off.
    ///
    /// The digest goes out from [`send`](Sink::send) once `interval` has passed since its
    /// first alert (so with the next batch the sink gets after that: any report, the
    /// reporter's periodic health reports included, unless the sink only gets alerts), and
    /// from [`close`](Sink::close) when the reporter stops.
    pub fn digest(mut self, interval: Duration) -> Self {
        self.digest = Some(interval);
        self
    }

    /// Also trusts the root certificates in `pem` (one or more PEM certificates), besides the
    /// platform's: for a relay whose certificate a private CA signed. Defaults to the
    /// platform's roots alone. The PEM is read by [`build`](Self::build).
    ///
    /// # Example
    ///
    /// ```no_run
    /// use webhook_monitor::report::EmailSink;
    ///
    /// # fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let sink = EmailSink::builder("smtp.internal.example")
    ///     .root_certificate(std::fs::read("/etc/ssl/internal-ca.pem")?)
    ///     .from("alerts@example.com")
    ///     .to("oncall@example.com")
    ///     .build()?;
    /// # let _ = sink;
    /// # Ok(())
    /// # }
    /// ```
    pub fn root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.roots.push(pem.into());
        self
    }

    /// Bounds each SMTP exchange (connect, TLS, login, message). Defaults to
    /// [`EmailSink::DEFAULT_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The sink. Connects to nothing yet: each message opens its own connection.
    ///
    /// # Errors
    ///
    /// [`EmailError::MissingFrom`], [`EmailError::MissingTo`], [`EmailError::InvalidAddress`],
    /// [`EmailError::InvalidRootCertificate`], or [`EmailError::Tls`] when the TLS setup
    /// fails.
    pub fn build(self) -> Result<EmailSink, EmailError> {
        let parse = |address: &str| {
            address
                .parse::<Mailbox>()
                .map_err(|_| EmailError::InvalidAddress(address.to_owned()))
        };
        let from = parse(self.from.as_deref().ok_or(EmailError::MissingFrom)?)?;
        if self.to.is_empty() {
            return Err(EmailError::MissingTo);
        }
        let to = self
            .to
            .iter()
            .map(|a| parse(a))
            .collect::<Result<Vec<_>, _>>()?;
        let port = self.port.unwrap_or(self.tls.default_port());
        let tls_parameters = || {
            let tls_error = |e: lettre::transport::smtp::Error| EmailError::Tls(Box::new(e));
            let mut parameters = TlsParameters::builder(self.host.clone());
            for pem in &self.roots {
                // lettre reads a text without a certificate as an empty list: refuse it here.
                let mut certificates = CertificateDer::pem_slice_iter(pem).peekable();
                if certificates.peek().is_none() || certificates.any(|c| c.is_err()) {
                    return Err(EmailError::InvalidRootCertificate);
                }
                parameters =
                    parameters.add_root_certificate(Certificate::from_pem(pem).map_err(tls_error)?);
            }
            parameters.build().map_err(tls_error)
        };
        let tls = match self.tls {
            EmailTls::StartTls => Tls::Required(tls_parameters()?),
            EmailTls::Implicit => Tls::Wrapper(tls_parameters()?),
            EmailTls::None => Tls::None,
        };
        let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(port)
            .tls(tls)
            .timeout(Some(self.timeout));
        if let Some((user, password)) = self.credentials {
            transport = transport.credentials(Credentials::new(user, password));
        }
        Ok(EmailSink {
            transport: transport.build(),
            host: self.host,
            port,
            tls: self.tls,
            from,
            to,
            digest: self.digest,
            pending: Mutex::default(),
            counters: Counters::default(),
        })
    }
}

impl fmt::Debug for EmailSinkBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailSinkBuilder")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .field("from", &self.from)
            .field("to", &self.to)
            .field("digest", &self.digest)
            .field("root_certificates", &self.roots.len())
            .finish_non_exhaustive()
    }
}

/// Sends alerts by email over SMTP, one message per alert, or one per interval with a
/// [`digest`](EmailSinkBuilder::digest).
///
/// Other reports (deliveries, health) are ignored, and not counted as accepted. Each message
/// is `multipart/alternative`, plain text and HTML (route names and figures escaped), to every
/// recipient, with a subject to triage from:
///
/// ```text
/// Subject: [webhook-monitor] CRITICAL opened: payments: failure rate above threshold
/// Subject: [webhook-monitor] resolved: payments: failure rate above threshold
/// Subject: [webhook-monitor] CRITICAL opened: orders: an instance fails far more than the rest of the fleet on web-2
/// Subject: [webhook-monitor] 3 alerts (2 critical opened, 1 resolved)
/// ```
///
/// The body gives each alert's one-line summary, its kind, its instance (for an alert about one
/// instance of a fleet), its figures as a list (a table in
/// HTML), when it opened and, for a resolved alert, when it resolved (RFC 3339, UTC, to the
/// second).
///
/// Each message opens its own connection: alerts are rare, a pool would hold a connection the
/// server closes anyway. A failed exchange is not retried: its alerts count as `failed` in the
/// [`SinkHealth`] named `"email"` and [`send`](Sink::send) returns the error; a failed
/// digest's alerts are not sent again.
///
/// The password never appears in `Debug`, logs or errors.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use webhook_monitor::report::{EmailSink, EmailTls};
///
/// let sink = EmailSink::builder("smtp.example.com")
///     .tls(EmailTls::StartTls)
///     .credentials("alerts@example.com", "hunter2")
///     .from("Webhook monitor <alerts@example.com>")
///     .to("oncall@example.com")
///     .to("payments-team@example.com")
///     .digest(Duration::from_secs(300))
///     .build()?;
/// assert!(!format!("{sink:?}").contains("hunter2"));
/// # Ok::<_, webhook_monitor::report::EmailError>(())
/// ```
pub struct EmailSink {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    host: String,
    port: u16,
    tls: EmailTls,
    from: Mailbox,
    to: Vec<Mailbox>,
    digest: Option<Duration>,
    pending: Mutex<Pending>,
    counters: Counters,
}

/// The digest's alerts, since its first.
#[derive(Default)]
struct Pending {
    since: Option<Instant>,
    alerts: Vec<Alert>,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    sent: AtomicU64,
    failed: AtomicU64,
    queued: AtomicU64,
}

impl EmailSink {
    /// Default [`timeout`](EmailSinkBuilder::timeout) of an SMTP exchange: 30 s.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

    /// A builder for a sink sending through the SMTP server `host` (a name or an IP address).
    pub fn builder(host: impl Into<String>) -> EmailSinkBuilder {
        EmailSinkBuilder {
            host: host.into(),
            port: None,
            tls: EmailTls::default(),
            credentials: None,
            from: None,
            to: Vec::new(),
            digest: None,
            timeout: Self::DEFAULT_TIMEOUT,
            roots: Vec::new(),
        }
    }

    /// Sends one message about `alerts` (one alert, or a digest), counting them.
    async fn deliver(&self, alerts: &[Alert]) -> Result<(), EmailError> {
        let n = alerts.len() as u64;
        let result = match self.message(alerts) {
            Ok(message) => self
                .transport
                .send(message)
                .await
                .map(drop)
                .map_err(|e| EmailError::Smtp(Box::new(e))),
            Err(e) => Err(e),
        };
        let counter = match result {
            Ok(()) => &self.counters.sent,
            Err(_) => &self.counters.failed,
        };
        counter.fetch_add(n, Ordering::Relaxed);
        result
    }

    fn message(&self, alerts: &[Alert]) -> Result<Message, EmailError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(subject(alerts));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder
            .multipart(MultiPart::alternative_plain_html(
                plain(alerts),
                html(alerts),
            ))
            .map_err(|e| EmailError::Message(Box::new(e)))
    }

    /// The gathered alerts, when the digest is due (or `now` is `None`: at close).
    fn take_digest(&self, now: Option<Instant>, interval: Duration) -> Vec<Alert> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let due = pending
            .since
            .is_some_and(|since| now.is_none_or(|now| now - since >= interval));
        if !due {
            return Vec::new();
        }
        pending.since = None;
        let alerts = std::mem::take(&mut pending.alerts);
        self.counters
            .queued
            .fetch_sub(alerts.len() as u64, Ordering::Relaxed);
        alerts
    }
}

impl Sink for EmailSink {
    async fn send(&self, batch: &[Report]) -> Result<(), SinkError> {
        let alerts = batch.iter().filter_map(Report::as_alert);
        let Some(interval) = self.digest else {
            let mut first_error = None;
            for alert in alerts {
                self.counters.accepted.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = self.deliver(std::slice::from_ref(alert)).await {
                    first_error.get_or_insert(e);
                }
            }
            return first_error.map_or(Ok(()), |e| Err(SinkError::new(e)));
        };
        let now = Instant::now();
        {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            for alert in alerts {
                self.counters.accepted.fetch_add(1, Ordering::Relaxed);
                self.counters.queued.fetch_add(1, Ordering::Relaxed);
                pending.since.get_or_insert(now);
                pending.alerts.push(alert.clone());
            }
        }
        let due = self.take_digest(Some(now), interval);
        if due.is_empty() {
            return Ok(());
        }
        self.deliver(&due).await.map_err(SinkError::new)
    }

    fn health(&self) -> Vec<SinkHealth> {
        let mut health = SinkHealth::new("email");
        health.accepted = self.counters.accepted.load(Ordering::Relaxed);
        health.sent = self.counters.sent.load(Ordering::Relaxed);
        health.failed = self.counters.failed.load(Ordering::Relaxed);
        health.queued = self.counters.queued.load(Ordering::Relaxed);
        vec![health]
    }

    async fn close(&self) {
        let Some(interval) = self.digest else {
            return;
        };
        let due = self.take_digest(None, interval);
        if !due.is_empty() {
            if let Err(e) = self.deliver(&due).await {
                tracing::warn!(
                    target: "webhook_monitor::report",
                    error = %e,
                    source = ?std::error::Error::source(&e).map(ToString::to_string),
                    "email sink: the last digest was not sent"
                );
            }
        }
    }
}

impl fmt::Debug for EmailSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailSink")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("from", &self.from.to_string())
            .field(
                "to",
                &self.to.iter().map(ToString::to_string).collect::<Vec<_>>(),
            )
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

/// `CRITICAL opened: payments: failure rate above threshold`, or `resolved: …`; with `on web-2`
/// at the end for an alert about one instance.
fn triage_line(alert: &Alert) -> String {
    let state = match alert.state {
        AlertState::Opened => match alert.severity {
            Severity::Critical => "CRITICAL opened",
            Severity::Warning => "WARNING opened",
        },
        AlertState::Resolved => "resolved",
    };
    let mut line = format!("{state}: {}: {}", alert.route, alert.kind.describe());
    if let Some(instance) = &alert.instance {
        let _ = write!(line, " on {instance}");
    }
    line
}

fn subject(alerts: &[Alert]) -> String {
    let subject = match alerts {
        [alert] => format!("[webhook-monitor] {}", triage_line(alert)),
        _ => {
            let count = |f: &dyn Fn(&Alert) -> bool| alerts.iter().filter(|a| f(a)).count();
            let opened = |s| move |a: &Alert| a.state == AlertState::Opened && a.severity == s;
            let parts = [
                (count(&opened(Severity::Critical)), "critical opened"),
                (count(&opened(Severity::Warning)), "warning opened"),
                (count(&|a| a.state == AlertState::Resolved), "resolved"),
            ]
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect::<Vec<_>>()
            .join(", ");
            format!("[webhook-monitor] {} alerts ({parts})", alerts.len())
        }
    };
    // A route name is the application's text: no line breaks in a header.
    subject.replace(|c: char| c.is_control(), " ")
}

fn rfc3339(at: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// When the alert opened, and when it resolved (or was reported, if later than it opened).
fn times(alert: &Alert) -> Vec<(&'static str, String)> {
    let mut times = vec![("opened at", rfc3339(alert.opened_at))];
    match alert.state {
        AlertState::Resolved => times.push(("resolved at", rfc3339(alert.at))),
        AlertState::Opened if alert.at != alert.opened_at => {
            times.push(("reported at", rfc3339(alert.at)));
        }
        AlertState::Opened => {}
    }
    times
}

fn plain(alerts: &[Alert]) -> String {
    let mut text = String::new();
    for (i, alert) in alerts.iter().enumerate() {
        if i > 0 {
            text.push_str("\n\n");
        }
        let _ = writeln!(text, "{alert}");
        let _ = writeln!(text, "\nkind: {}", alert.kind.as_str());
        if let Some(instance) = &alert.instance {
            let _ = writeln!(text, "instance: {instance}");
        }
        for figure in &alert.figures {
            let _ = writeln!(text, "- {}: {}", figure.name, figure_text(&figure.value));
        }
        text.push('\n');
        for (label, at) in times(alert) {
            let _ = writeln!(text, "{label}: {at}");
        }
    }
    text
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn html(alerts: &[Alert]) -> String {
    let mut html = String::from("<!DOCTYPE html>\n<html><body>\n");
    for alert in alerts {
        let _ = write!(
            html,
            "<h2>{}</h2>\n<p>kind: <code>{}</code>",
            escape(&alert.headline().to_string()),
            alert.kind.as_str()
        );
        if let Some(instance) = &alert.instance {
            let _ = write!(html, ", instance: <code>{}</code>", escape(instance));
        }
        html.push_str("</p>\n<table>\n");
        for figure in &alert.figures {
            let _ = writeln!(
                html,
                "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
                escape(&figure.name),
                escape(&figure_text(&figure.value))
            );
        }
        let times = times(alert)
            .iter()
            .map(|(label, at)| format!("{label}: {at}"))
            .collect::<Vec<_>>()
            .join("<br>\n");
        let _ = write!(html, "</table>\n<p>{times}</p>\n");
    }
    html.push_str("</body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(escape("<b>&\"'"), "&lt;b&gt;&amp;&quot;&#39;");
    }
}

//! The email alert sink against a real SMTP server on loopback (aiosmtpd, through
//! tests/smtp_server.py): what the server receives (envelope, login, subject, both parts),
//! digests, what is ignored, failures and counters; STARTTLS and implicit TLS with a
//! certificate from a test CA (openssl). Skipped, saying so, without python3 and aiosmtpd (CI
//! installs them: .ci/run) or, for TLS, openssl.
#![cfg(feature = "email")]
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use serde_json::{json, Value};
use webhook_monitor::report::{EmailError, EmailSink, EmailTls, Report, Sink, SinkHealth};

// ---------------------------------------------------------------------------------------------
// Reports, read from their JSON (docs/report-schema.md).

const AT: &str = "2026-11-28T19:30:00Z";
const OPENED_AT: &str = "2026-11-28T19:25:00Z";

fn alert(kind: &str, severity: &str, state: &str, route: &str, figures: Value) -> Report {
    serde_json::from_value(json!({
        "type": "alert", "kind": kind, "route": route, "severity": severity, "state": state,
        "opened_at": OPENED_AT, "at": AT, "figures": figures,
    }))
    .unwrap()
}

/// A critical alert; its figures in `json!`'s order (by name).
fn critical(state: &str, route: &str) -> Report {
    let figures = json!({"failure_rate": 0.6, "failed": 12, "handled": 20, "window_minutes": 5});
    alert("failure_rate", "critical", state, route, figures)
}

// ---------------------------------------------------------------------------------------------
// The server.

/// aiosmtpd on a free loopback port, recording into a fresh directory; killed on drop.
struct SmtpServer {
    child: Child,
    dir: PathBuf,
    port: u16,
    /// With TLS: the certificate of the CA that signed the server's, PEM.
    certificate: Option<Vec<u8>>,
}

/// How the test server speaks TLS, with a certificate for 127.0.0.1 that a test CA signed.
#[derive(Clone, Copy)]
enum ServerTls {
    /// Offers STARTTLS and requires it before a message.
    StartTls,
    /// TLS from the first byte.
    Implicit,
}

impl SmtpServer {
    /// `None`, having printed `skipped: …`, without python3 or aiosmtpd.
    fn start(test: &str) -> Option<Self> {
        Self::start_with(test, None)
    }

    /// With TLS; also `None`, having printed why, without `openssl` to make the certificate.
    fn start_tls(test: &str, tls: ServerTls) -> Option<Self> {
        Self::start_with(test, Some(tls))
    }

    fn start_with(test: &str, tls: Option<ServerTls>) -> Option<Self> {
        let importable = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !importable {
            println!(
                "skipped: {test} needs python3 with aiosmtpd (python3 -m pip install aiosmtpd)"
            );
            return None;
        }
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "webhook-monitor-email-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_server.py");
        let mut command = Command::new("python3");
        command.arg(script).arg(port.to_string()).arg(&dir);
        let mut certificate = None;
        if let Some(tls) = tls {
            let Some(ca) = test_pki(&dir) else {
                println!("skipped: {test} needs openssl to make test certificates");
                let _ = std::fs::remove_dir_all(&dir);
                return None;
            };
            certificate = Some(ca);
            let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
            let mode = match tls {
                ServerTls::StartTls => "starttls",
                ServerTls::Implicit => "implicit",
            };
            command.arg(mode).arg(cert).arg(key);
        }
        let child = command.stdout(Stdio::null()).spawn().unwrap();
        let server = Self {
            child,
            dir,
            port,
            certificate,
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("the SMTP server did not answer on port {port} within 5 s");
    }

    /// A sink to this server without TLS, from `from`, to two recipients.
    fn sink(&self) -> webhook_monitor::report::EmailSinkBuilder {
        EmailSink::builder("127.0.0.1")
            .tls(EmailTls::None)
            .port(self.port)
            .timeout(Duration::from_secs(5))
            .from("Webhook monitor <alerts@example.com>")
            .to("oncall@example.com")
            .to("Payments team <payments@example.com>")
    }

    /// Every message received so far, in order (each complete: its JSON is written last).
    fn messages(&self) -> Vec<Value> {
        (1..)
            .map(|n| self.dir.join(format!("{n}.json")))
            .take_while(|path| path.exists())
            .map(|path| serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap())
            .collect()
    }
}

/// A test CA and a server certificate it signed for `127.0.0.1` (P-256 keys, valid for a day),
/// made by openssl in `dir`: the server's chain in `cert.pem` and key in `key.pem`; returns the
/// CA's certificate (PEM), or `None` without openssl.
fn test_pki(dir: &std::path::Path) -> Option<Vec<u8>> {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let openssl = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let made = openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &["-days", "1", "-subj", "/CN=webhook-monitor test CA"],
            &[
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
            &["-keyout", "ca.key", "-out", "ca.pem"],
        ]
        .concat(),
    ) && openssl(
        &[
            &["req", "-new"][..],
            &ec,
            &[
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "key.pem",
                "-out",
                "server.csr",
            ],
        ]
        .concat(),
    ) && openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "server.ext",
        "-out",
        "cert.pem",
    ]);
    made.then(|| std::fs::read(dir.join("ca.pem")).unwrap())
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Fails the test instead of hanging it.
async fn send(sink: &EmailSink, batch: &[Report]) {
    tokio::time::timeout(Duration::from_secs(10), sink.send(batch))
        .await
        .expect("bounded in time")
        .unwrap();
}

fn health(sink: &EmailSink) -> SinkHealth {
    let mut health = sink.health();
    assert_eq!(health.len(), 1);
    health.remove(0)
}

/// `(accepted, sent, failed, queued)`.
fn counts(sink: &EmailSink) -> (u64, u64, u64, u64) {
    let h = health(sink);
    assert_eq!(h.name, "email");
    (h.accepted, h.sent, h.failed, h.queued)
}

fn text<'a>(message: &'a Value, part: &str) -> &'a str {
    message["parts"][part]
        .as_str()
        .unwrap_or_else(|| panic!("no {part} part in {message:#}"))
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[tokio::test]
async fn one_message_per_alert_with_plain_text_and_escaped_html() {
    let Some(server) = SmtpServer::start("one_message_per_alert") else {
        return;
    };
    let sink = server.sink().build().unwrap();
    send(&sink, &[critical("opened", "payments <b>eu</b>")]).await;
    send(&sink, &[critical("resolved", "payments <b>eu</b>")]).await;

    let messages = server.messages();
    assert_eq!(messages.len(), 2, "{messages:#?}");
    let opened = &messages[0];
    assert_eq!(opened["from"], "alerts@example.com");
    assert_eq!(
        opened["to"],
        json!(["oncall@example.com", "payments@example.com"])
    );
    assert_eq!(opened["login"], Value::Null);
    assert_eq!(opened["tls"], false);
    assert_eq!(opened["content_type"], "multipart/alternative");
    assert_eq!(
        opened["subject"],
        "[webhook-monitor] CRITICAL opened: payments <b>eu</b>: failure rate above threshold"
    );

    let plain = text(opened, "text/plain");
    assert!(
        plain.contains(
            "[critical] payments <b>eu</b>: failure rate above threshold (opened) \
             failed=12 failure_rate=0.600 handled=20 window_minutes=5"
        ),
        "{plain}"
    );
    assert!(plain.contains("kind: failure_rate"), "{plain}");
    assert!(
        !plain.contains("instance"),
        "not about an instance: {plain}"
    );
    for figure in [
        "- failure_rate: 0.600",
        "- failed: 12",
        "- handled: 20",
        "- window_minutes: 5",
    ] {
        assert!(plain.contains(figure), "{figure} in {plain}");
    }
    assert!(plain.contains("opened at: 2026-11-28T19:25:00Z"), "{plain}");
    assert!(
        plain.contains("reported at: 2026-11-28T19:30:00Z"),
        "{plain}"
    );

    let html = text(opened, "text/html");
    assert!(
        html.contains(
            "<h2>[critical] payments &lt;b&gt;eu&lt;/b&gt;: failure rate above threshold (opened)</h2>"
        ),
        "{html}"
    );
    assert!(!html.contains("<b>"), "the route is text: {html}");
    assert!(
        html.contains("<p>kind: <code>failure_rate</code></p>"),
        "{html}"
    );
    assert!(
        html.contains("<tr><th align=\"left\">failure_rate</th><td>0.600</td></tr>"),
        "{html}"
    );
    assert!(html.contains("opened at: 2026-11-28T19:25:00Z"), "{html}");

    let resolved = &messages[1];
    assert_eq!(
        resolved["subject"],
        "[webhook-monitor] resolved: payments <b>eu</b>: failure rate above threshold"
    );
    assert!(text(resolved, "text/plain").contains("resolved at: 2026-11-28T19:30:00Z"));
    assert_eq!(counts(&sink), (2, 2, 0, 0));
}

#[tokio::test]
async fn an_alert_about_one_instance_names_it_in_the_subject_and_both_parts() {
    let Some(server) = SmtpServer::start("instance") else {
        return;
    };
    let sink = server.sink().build().unwrap();
    let mut report = serde_json::to_value(critical("opened", "orders")).unwrap();
    report["kind"] = "instance_failure_rate".into();
    report["instance"] = "web-2 <eu>".into();
    let report: Report = serde_json::from_value(report).unwrap();
    send(&sink, &[report]).await;

    let messages = server.messages();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    let headline = "orders: an instance fails far more than the rest of the fleet on web-2 <eu>";
    assert_eq!(
        messages[0]["subject"],
        format!("[webhook-monitor] CRITICAL opened: {headline}")
    );
    let plain = text(&messages[0], "text/plain");
    assert!(
        plain.contains(&format!("[critical] {headline} (opened) failed=12")),
        "{plain}"
    );
    let lines: Vec<&str> = plain.lines().collect();
    assert!(
        lines
            .windows(2)
            .any(|w| w == ["kind: instance_failure_rate", "instance: web-2 <eu>"]),
        "{plain}"
    );
    let html = text(&messages[0], "text/html");
    let escaped = headline.replace('<', "&lt;").replace('>', "&gt;");
    assert!(
        html.contains(&format!("<h2>[critical] {escaped} (opened)</h2>")),
        "{html}"
    );
    assert!(
        html.contains(
            "<p>kind: <code>instance_failure_rate</code>, instance: <code>web-2 &lt;eu&gt;</code></p>"
        ),
        "{html}"
    );
    assert_eq!(counts(&sink), (1, 1, 0, 0));
}

#[tokio::test]
async fn logs_in_with_the_credentials_and_never_shows_the_password() {
    let Some(server) = SmtpServer::start("credentials") else {
        return;
    };
    let builder = server.sink().credentials("alerts-user", "s3cret-pa55");
    assert!(!format!("{builder:?}").contains("s3cret-pa55"));
    let sink = builder.build().unwrap();
    let debug = format!("{sink:?}");
    assert!(!debug.contains("s3cret-pa55"), "{debug}");
    assert!(debug.contains("127.0.0.1"), "{debug}");

    let warning = alert(
        "spike",
        "warning",
        "opened",
        "orders",
        json!({"per_minute": 90, "trailing_mean": 7.25}),
    );
    send(&sink, &[warning]).await;
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["login"], "alerts-user");
    assert_eq!(
        messages[0]["subject"],
        "[webhook-monitor] WARNING opened: orders: traffic spike"
    );
    assert!(text(&messages[0], "text/plain").contains("- trailing_mean: 7.250"));
}

#[tokio::test]
async fn deliveries_and_health_reports_are_ignored_and_not_counted() {
    let Some(server) = SmtpServer::start("ignored") else {
        return;
    };
    for sink in [
        server.sink().build().unwrap(),
        server.sink().digest(Duration::ZERO).build().unwrap(),
    ] {
        send(
            &sink,
            &[
                common::recorder::delivery(),
                common::recorder::health_report(),
                common::recorder::delivery(),
            ],
        )
        .await;
        sink.close().await;
        assert_eq!(counts(&sink), (0, 0, 0, 0));
    }
    assert_eq!(server.messages().len(), 0);
}

#[tokio::test]
async fn a_digest_gathers_the_alerts_of_its_interval_into_one_message() {
    let Some(server) = SmtpServer::start("digest") else {
        return;
    };
    let interval = Duration::from_millis(300);
    let sink = server.sink().digest(interval).build().unwrap();
    let started = tokio::time::Instant::now();
    send(&sink, &[critical("opened", "payments")]).await;
    send(
        &sink,
        &[critical("opened", "refunds"), common::recorder::delivery()],
    )
    .await;
    send(&sink, &[critical("resolved", "payments")]).await;
    // Well within the interval (three loopback round trips of nothing): nothing sent yet.
    assert!(started.elapsed() < interval, "the machine is too slow");
    assert_eq!(server.messages().len(), 0);
    assert_eq!(counts(&sink), (3, 0, 0, 3));

    tokio::time::sleep(interval).await;
    // The next batch, even without an alert, sends the digest.
    send(&sink, &[common::recorder::health_report()]).await;
    let messages = server.messages();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    let digest = &messages[0];
    assert_eq!(
        digest["subject"],
        "[webhook-monitor] 3 alerts (2 critical opened, 1 resolved)"
    );
    let plain = text(digest, "text/plain");
    for line in [
        "[critical] payments: failure rate above threshold (opened)",
        "[critical] refunds: failure rate above threshold (opened)",
        "[critical] payments: failure rate above threshold (resolved)",
    ] {
        assert!(plain.contains(line), "{line} in {plain}");
    }
    assert_eq!(text(digest, "text/html").matches("<h2>").count(), 3);
    assert_eq!(counts(&sink), (3, 3, 0, 0));

    // At shutdown, `close` sends what is gathered, interval or not.
    send(&sink, &[critical("opened", "orders")]).await;
    assert_eq!(server.messages().len(), 1);
    sink.close().await;
    let messages = server.messages();
    assert_eq!(messages.len(), 2);
    assert_eq!(
        messages[1]["subject"],
        "[webhook-monitor] CRITICAL opened: orders: failure rate above threshold"
    );
    assert_eq!(counts(&sink), (4, 4, 0, 0));
    // Nothing left: a second close sends nothing.
    sink.close().await;
    assert_eq!(server.messages().len(), 2);
}

#[tokio::test]
async fn smtp_errors_count_as_failed_and_fail_the_send() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sink = EmailSink::builder("127.0.0.1")
        .tls(EmailTls::None)
        .port(port)
        .credentials("alerts-user", "s3cret-pa55")
        .timeout(Duration::from_secs(2))
        .from("alerts@example.com")
        .to("oncall@example.com")
        .build()
        .unwrap();
    let error = tokio::time::timeout(
        Duration::from_secs(10),
        sink.send(&[critical("opened", "payments")]),
    )
    .await
    .unwrap()
    .unwrap_err();
    let mut chain = format!("{error}");
    let mut source = std::error::Error::source(&error);
    while let Some(e) = source {
        chain += &format!(": {e} ({e:?})");
        source = e.source();
    }
    assert!(chain.contains("SMTP delivery failed"), "{chain}");
    assert!(!chain.contains("s3cret-pa55"), "{chain}");
    assert_eq!(counts(&sink), (1, 0, 1, 0));
}

/// Over TLS, the certificate checked against the root the sink is given: the message arrives
/// encrypted, after the login.
async fn delivers_over_tls(test: &str, server_tls: ServerTls, tls: EmailTls) {
    let Some(server) = SmtpServer::start_tls(test, server_tls) else {
        return;
    };
    let sink = server
        .sink()
        .tls(tls)
        .root_certificate(server.certificate.clone().unwrap())
        .credentials("alerts-user", "s3cret-pa55")
        .build()
        .unwrap();
    send(&sink, &[critical("opened", "payments")]).await;
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["tls"], true, "{:#}", messages[0]);
    assert_eq!(messages[0]["login"], "alerts-user");
    assert_eq!(
        messages[0]["to"],
        json!(["oncall@example.com", "payments@example.com"])
    );
    assert_eq!(counts(&sink), (1, 1, 0, 0));
}

#[tokio::test]
async fn starttls_with_a_trusted_root_delivers_encrypted() {
    delivers_over_tls("starttls_trusted", ServerTls::StartTls, EmailTls::StartTls).await;
}

#[tokio::test]
async fn implicit_tls_with_a_trusted_root_delivers_encrypted() {
    delivers_over_tls("implicit_trusted", ServerTls::Implicit, EmailTls::Implicit).await;
}

#[tokio::test]
async fn a_certificate_no_trusted_root_signed_is_refused() {
    // The platform's roots alone do not vouch for the test CA: nothing is sent.
    for (server_tls, tls) in [
        (ServerTls::StartTls, EmailTls::StartTls),
        (ServerTls::Implicit, EmailTls::Implicit),
    ] {
        let Some(server) = SmtpServer::start_tls("untrusted_certificate", server_tls) else {
            return;
        };
        nothing_is_sent(&server, tls).await;
    }
}

/// A sink to `server` with `tls` fails its send, and the server receives nothing.
async fn nothing_is_sent(server: &SmtpServer, tls: EmailTls) {
    let sink = server
        .sink()
        .tls(tls)
        .credentials("alerts-user", "s3cret-pa55")
        .build()
        .unwrap();
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        sink.send(&[critical("opened", "payments")]),
    )
    .await
    .unwrap();
    assert!(result.is_err());
    assert_eq!(server.messages().len(), 0);
    assert_eq!(counts(&sink), (1, 0, 1, 0));
}

#[test]
fn a_root_certificate_must_be_pem() {
    let builder = || {
        EmailSink::builder("smtp.example.com")
            .from("a@example.com")
            .to("b@example.com")
    };
    for pem in [
        &b"not a certificate"[..],
        b"",
        b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n",
    ] {
        let error = builder().root_certificate(pem).build().unwrap_err();
        assert!(
            matches!(error, EmailError::InvalidRootCertificate),
            "{error:?}"
        );
    }
    assert_eq!(
        EmailError::InvalidRootCertificate.to_string(),
        "the root certificate is not a PEM certificate"
    );
}

#[test]
fn the_builder_checks_its_addresses() {
    let builder = || EmailSink::builder("smtp.example.com");
    assert!(matches!(
        builder().to("a@example.com").build(),
        Err(EmailError::MissingFrom)
    ));
    assert!(matches!(
        builder().from("a@example.com").build(),
        Err(EmailError::MissingTo)
    ));
    let error = builder()
        .from("a@example.com")
        .to("not an address")
        .build()
        .unwrap_err();
    assert!(matches!(&error, EmailError::InvalidAddress(a) if a == "not an address"));
    assert_eq!(
        error.to_string(),
        "invalid email address: \"not an address\""
    );
    // TLS on by default, and no connection at build time.
    let sink = builder()
        .from("a@example.com")
        .to("b@example.com")
        .build()
        .unwrap();
    let debug = format!("{sink:?}");
    assert!(
        debug.contains("StartTls") && debug.contains("587"),
        "{debug}"
    );
    let implicit = builder()
        .tls(EmailTls::Implicit)
        .from("a@example.com")
        .to("b@example.com")
        .build()
        .unwrap();
    assert!(format!("{implicit:?}").contains("465"));
}

#[tokio::test]
async fn starttls_is_required_never_skipped() {
    // The test server offers no STARTTLS: a StartTls sink sends nothing rather than sending
    // in clear.
    let Some(server) = SmtpServer::start("starttls_required") else {
        return;
    };
    nothing_is_sent(&server, EmailTls::StartTls).await;
}

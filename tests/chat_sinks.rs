//! The chat and SMS alert sinks (Discord, Teams, Twilio) against a real server on loopback:
//! the exact request each sends per alert, colours and severities, the shared rate limit and
//! its note of dropped alerts, what they ignore, and how each (Slack's too) names the instance
//! of an alert about one instance of a fleet.
#![cfg(feature = "http")]
#![allow(clippy::unwrap_used)]

mod common;

use std::{net::SocketAddr, time::Duration};

use http::Method;
use serde_json::{json, Value};
// The backend records every request and answers `200`. A sink's `send` returns once its
// requests are answered, so they are all recorded by then.
use common::recorder::{Backend, Seen};
use webhook_monitor::report::{
    http::{
        DiscordSink, HttpSinkError, HttpTransport, RetryPolicy, SlackSink, TeamsSink, TwilioSmsSink,
    },
    Report, Sink, SinkHealth,
};
use webhook_monitor::watch::Severity;

// ---------------------------------------------------------------------------------------------
// Reports, read from their JSON (docs/report-schema.md).

const AT: &str = "2026-11-28T19:30:00Z";
const OPENED_AT: &str = "2026-11-28T19:25:00Z";

/// An alert of `kind` on `route`; `figures` is a JSON object, as text (its order kept).
fn alert(kind: &str, severity: &str, state: &str, route: &str, figures: &str) -> Report {
    let alert = format!(
        r#"{{"type":"alert","kind":"{kind}","route":{route},"severity":"{severity}","state":"{state}","opened_at":"{OPENED_AT}","at":"{AT}","figures":{figures}}}"#,
        route = Value::from(route),
    );
    serde_json::from_str(&alert).unwrap()
}

fn critical(state: &str) -> Report {
    let figures = r#"{"failure_rate":0.6,"failed":12,"handled":20,"window_minutes":5}"#;
    alert("failure_rate", "critical", state, "payments", figures)
}

fn warning(state: &str) -> Report {
    let figures = r#"{"per_minute":90,"trailing_mean":7.25}"#;
    alert("spike", "warning", state, "orders", figures)
}

/// An alert about `web-2`, one instance of a fleet, on `orders`.
fn instance_alert(state: &str) -> Report {
    let figures = r#"{"failure_rate":0.8,"failed":16,"handled":20,"others_failure_rate":0.05,"window_minutes":5}"#;
    let alert = format!(
        r#"{{"type":"alert","kind":"instance_failure_rate","route":"orders","instance":"web-2","severity":"critical","state":"{state}","opened_at":"{OPENED_AT}","at":"{AT}","figures":{figures}}}"#,
    );
    serde_json::from_str(&alert).unwrap()
}

/// [`instance_alert`]'s summary without its figures.
const INSTANCE_HEADLINE: &str =
    "[critical] orders: an instance fails far more than the rest of the fleet on web-2 (opened)";

/// [`instance_alert`]'s figures, after its headline.
const INSTANCE_FIGURES: &str =
    "failure_rate=0.800 failed=16 handled=20 others_failure_rate=0.050 window_minutes=5";

// ---------------------------------------------------------------------------------------------
// Sinks.

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn transport() -> HttpTransport {
    let retry = RetryPolicy::default()
        .initial_backoff(ms(10))
        .max_backoff(ms(40))
        .window(Duration::from_secs(3));
    HttpTransport::builder()
        .timeout(ms(500))
        .retry(retry)
        .build()
        .unwrap()
}

/// Fails the test instead of hanging it.
async fn deliver(sink: &impl Sink, batch: &[Report]) {
    tokio::time::timeout(Duration::from_secs(10), sink.send(batch))
        .await
        .expect("bounded in time")
        .unwrap();
}

fn health(sink: &impl Sink) -> SinkHealth {
    let mut health = sink.health();
    assert_eq!(health.len(), 1);
    health.remove(0)
}

/// `(name, accepted, sent, dropped)`, with every accepted report settled.
fn counts(sink: &impl Sink) -> (String, u64, u64, u64) {
    let h = health(sink);
    assert_eq!(h.sent + h.failed + h.dropped, h.accepted, "{h:?}");
    assert_eq!((h.queued, h.failed), (0, 0), "{h:?}");
    (h.name.to_string(), h.accepted, h.sent, h.dropped)
}

/// The note of `n` dropped alerts.
fn dropped(n: u64) -> String {
    format!("{n} more alerts were dropped by the rate limit since the previous message")
}

// ---------------------------------------------------------------------------------------------
// Discord.

fn discord(addr: SocketAddr, min_interval: Duration) -> DiscordSink {
    let url = format!("http://{addr}/api/webhooks/123/s3cr3t-token");
    DiscordSink::new(&transport(), &url)
        .unwrap()
        .min_interval(min_interval)
}

fn discord_message(embed: Value) -> Value {
    json!({
        "username": "webhook-monitor",
        "allowed_mentions": {"parse": []},
        "embeds": [embed],
    })
}

#[tokio::test]
async fn discord_posts_one_embed_per_alert_coloured_by_severity_and_state() {
    let (backend, addr) = Backend::serve([], 200).await;
    let sink = discord(addr, Duration::ZERO);
    let batch = [
        common::recorder::delivery(),
        critical("opened"),
        common::recorder::health_report(),
        warning("opened"),
        critical("resolved"),
    ];
    deliver(&sink, &batch).await;

    let seen = backend.seen();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert_eq!(s.method, Method::POST);
        assert_eq!(s.path, "/api/webhooks/123/s3cr3t-token");
        assert_eq!(s.header("content-type"), "application/json");
    }
    let failure_rate_fields = json!([
        {"name": "failure_rate", "value": "0.600", "inline": true},
        {"name": "failed", "value": "12", "inline": true},
        {"name": "handled", "value": "20", "inline": true},
        {"name": "window_minutes", "value": "5", "inline": true},
    ]);
    let mut bodies: Vec<Value> = seen.iter().map(Seen::json).collect();
    // Sent concurrently: in any order.
    bodies.sort_by_key(|b| b["embeds"][0]["title"].as_str().unwrap().to_owned());
    assert_eq!(
        bodies,
        [
            discord_message(json!({
                "title": "[critical] payments: failure rate above threshold (opened)",
                "description": "kind: `failure_rate`",
                "color": 0xD7_3A_49,
                "timestamp": AT,
                "fields": failure_rate_fields,
            })),
            discord_message(json!({
                "title": "[critical] payments: failure rate above threshold (resolved)",
                "description": "kind: `failure_rate`",
                "color": 0x2E_A4_4F,
                "timestamp": AT,
                "fields": failure_rate_fields,
            })),
            discord_message(json!({
                "title": "[warning] orders: traffic spike (opened)",
                "description": "kind: `spike`",
                "color": 0xDB_AB_09,
                "timestamp": AT,
                "fields": [
                    {"name": "per_minute", "value": "90", "inline": true},
                    {"name": "trailing_mean", "value": "7.250", "inline": true},
                ],
            })),
        ]
    );
    // Deliveries and health reports are not taken on.
    assert_eq!(counts(&sink), ("discord".into(), 3, 3, 0));
}

#[tokio::test]
async fn discord_names_the_instance_of_an_alert_about_one() {
    let (backend, addr) = Backend::serve([], 200).await;
    let sink = discord(addr, Duration::ZERO);
    deliver(&sink, &[instance_alert("opened")]).await;

    let embed = backend.seen()[0].json()["embeds"][0].clone();
    assert_eq!(embed["title"], INSTANCE_HEADLINE);
    assert_eq!(
        embed["description"],
        "kind: `instance_failure_rate`, instance: `web-2`"
    );
    assert_eq!(embed["fields"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn discord_caps_the_title_and_the_fields_at_discords_limits() {
    let (backend, addr) = Backend::serve([], 200).await;
    let sink = discord(addr, Duration::ZERO);
    let route = "é".repeat(300);
    let figures: Vec<String> = (0..30).map(|i| format!(r#""f{i}":{i}"#)).collect();
    let figures = format!("{{{}}}", figures.join(","));
    let long = alert("spike", "warning", "opened", &route, &figures);
    deliver(&sink, &[long]).await;

    let embed = backend.seen()[0].json()["embeds"][0].clone();
    let title = embed["title"].as_str().unwrap();
    assert_eq!(title.chars().count(), 256);
    assert_eq!(title, format!("[warning] {}", "é".repeat(246)));
    let fields = embed["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 25);
    assert_eq!(
        fields[24],
        json!({"name": "f24", "value": "24", "inline": true})
    );
}

#[tokio::test]
async fn discord_drops_alerts_past_its_rate_limit_and_says_so_in_the_next_footer() {
    let (backend, addr) = Backend::serve([], 200).await;
    let min_interval = ms(300);
    let sink = discord(addr, min_interval);

    // The first alert goes out; the next two come too soon.
    let batch = [critical("opened"), warning("opened"), warning("resolved")];
    deliver(&sink, &batch).await;
    let seen = backend.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].json()["embeds"][0].get("footer"), None);
    assert_eq!(counts(&sink), ("discord".into(), 3, 1, 2));

    // Still too soon.
    tokio::time::sleep(min_interval / 3).await;
    deliver(&sink, &[critical("resolved")]).await;
    assert_eq!(backend.seen().len(), 1);

    // Past the interval: the message notes the three dropped alerts.
    tokio::time::sleep(min_interval).await;
    deliver(&sink, &[critical("resolved")]).await;
    let seen = backend.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen[1].at - seen[0].at >= min_interval);
    let embed = &seen[1].json()["embeds"][0];
    assert_eq!(embed["footer"], json!({"text": dropped(3)}));
    assert_eq!(counts(&sink), ("discord".into(), 5, 2, 3));

    // The count starts again.
    tokio::time::sleep(min_interval).await;
    deliver(&sink, &[critical("opened")]).await;
    assert_eq!(backend.seen()[2].json()["embeds"][0].get("footer"), None);
}

#[tokio::test]
async fn discord_debug_hides_the_webhook_url() {
    let sink = DiscordSink::new(
        &transport(),
        "https://discord.com/api/webhooks/123/s3cr3t-token",
    )
    .unwrap();
    let debug = format!("{sink:?}");
    assert!(debug.contains("DiscordSink"), "{debug}");
    assert!(
        !debug.contains("s3cr3t") && !debug.contains("webhooks"),
        "{debug}"
    );
}

// ---------------------------------------------------------------------------------------------
// Teams.

fn teams(addr: SocketAddr, min_interval: Duration) -> TeamsSink {
    let url = format!("http://{addr}/workflows/abc/triggers/manual/paths/invoke?sig=s3cr3t");
    TeamsSink::new(&transport(), &url)
        .unwrap()
        .min_interval(min_interval)
}

/// The message Teams gets: one Adaptive Card with these body blocks.
fn card(body: Value) -> Value {
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
            },
        }],
    })
}

fn heading(text: &str, color: &str) -> Value {
    json!({
        "type": "TextBlock", "text": text, "weight": "Bolder", "size": "Medium", "wrap": true,
        "color": color,
    })
}

fn card_body(seen: &Seen) -> Vec<Value> {
    let body = &seen.json()["attachments"][0]["content"]["body"];
    body.as_array().unwrap().clone()
}

#[tokio::test]
async fn teams_posts_one_adaptive_card_per_alert_coloured_by_severity_and_state() {
    let (backend, addr) = Backend::serve([], 200).await;
    let sink = teams(addr, Duration::ZERO);
    let batch = [
        common::recorder::delivery(),
        critical("opened"),
        common::recorder::health_report(),
        warning("opened"),
        critical("resolved"),
    ];
    deliver(&sink, &batch).await;

    let seen = backend.seen();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert_eq!(s.method, Method::POST);
        assert_eq!(s.path, "/workflows/abc/triggers/manual/paths/invoke");
        assert_eq!(s.query.as_deref(), Some("sig=s3cr3t"));
        assert_eq!(s.header("content-type"), "application/json");
    }
    let failure_rate_facts = |opened_at: &str| {
        json!({"type": "FactSet", "facts": [
            {"title": "kind", "value": "failure_rate"},
            {"title": "opened at", "value": opened_at},
            {"title": "failure_rate", "value": "0.600"},
            {"title": "failed", "value": "12"},
            {"title": "handled", "value": "20"},
            {"title": "window_minutes", "value": "5"},
        ]})
    };
    let mut bodies: Vec<Value> = seen.iter().map(Seen::json).collect();
    // Sent concurrently: in any order.
    bodies.sort_by_key(|b| b.to_string());
    let mut expected = vec![
        card(json!([
            heading(
                "[critical] payments: failure rate above threshold (opened)",
                "Attention"
            ),
            failure_rate_facts(OPENED_AT),
        ])),
        card(json!([
            heading(
                "[critical] payments: failure rate above threshold (resolved)",
                "Good"
            ),
            failure_rate_facts(OPENED_AT),
        ])),
        card(json!([
            heading("[warning] orders: traffic spike (opened)", "Warning"),
            {"type": "FactSet", "facts": [
                {"title": "kind", "value": "spike"},
                {"title": "opened at", "value": OPENED_AT},
                {"title": "per_minute", "value": "90"},
                {"title": "trailing_mean", "value": "7.250"},
            ]},
        ])),
    ];
    expected.sort_by_key(|b| b.to_string());
    assert_eq!(bodies, expected);
    // Deliveries and health reports are not taken on.
    assert_eq!(counts(&sink), ("teams".into(), 3, 3, 0));
}

#[tokio::test]
async fn teams_names_the_instance_of_an_alert_about_one() {
    let (backend, addr) = Backend::serve([], 200).await;
    let sink = teams(addr, Duration::ZERO);
    deliver(&sink, &[instance_alert("opened")]).await;

    let seen = backend.seen();
    assert_eq!(
        seen[0].json(),
        card(json!([
            heading(INSTANCE_HEADLINE, "Attention"),
            {"type": "FactSet", "facts": [
                {"title": "kind", "value": "instance_failure_rate"},
                {"title": "instance", "value": "web-2"},
                {"title": "opened at", "value": OPENED_AT},
                {"title": "failure_rate", "value": "0.800"},
                {"title": "failed", "value": "16"},
                {"title": "handled", "value": "20"},
                {"title": "others_failure_rate", "value": "0.050"},
                {"title": "window_minutes", "value": "5"},
            ]},
        ]))
    );
}

#[tokio::test]
async fn teams_drops_alerts_past_its_rate_limit_and_says_so_in_the_next_card() {
    let (backend, addr) = Backend::serve([], 200).await;
    let min_interval = ms(300);
    let sink = teams(addr, min_interval);

    let batch = [critical("opened"), warning("opened"), warning("resolved")];
    deliver(&sink, &batch).await;
    let seen = backend.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(card_body(&seen[0]).len(), 2);
    assert_eq!(counts(&sink), ("teams".into(), 3, 1, 2));

    tokio::time::sleep(min_interval).await;
    deliver(&sink, &[critical("resolved")]).await;
    let seen = backend.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen[1].at - seen[0].at >= min_interval);
    let body = card_body(&seen[1]);
    assert_eq!(body.len(), 3);
    assert_eq!(
        body[2],
        json!({"type": "TextBlock", "text": dropped(2), "isSubtle": true, "wrap": true})
    );
    assert_eq!(counts(&sink), ("teams".into(), 4, 2, 2));
}

#[test]
fn teams_debug_hides_the_webhook_url() {
    let url = "https://prod-00.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?sig=s3cr3t";
    let sink = TeamsSink::new(&transport(), url).unwrap();
    let debug = format!("{sink:?}");
    assert!(debug.contains("TeamsSink"), "{debug}");
    assert!(
        !debug.contains("s3cr3t") && !debug.contains("logic.azure"),
        "{debug}"
    );
}

// ---------------------------------------------------------------------------------------------
// Twilio.

const SID: &str = "AC0123";
const FROM: &str = "+15550199";

fn twilio(addr: SocketAddr, min_interval: Duration, to: &[&str]) -> TwilioSmsSink {
    let mut sink = TwilioSmsSink::new(&transport(), SID, "t0k3n", FROM, to[0])
        .unwrap()
        .url(&format!("http://{addr}/"))
        .unwrap()
        .min_interval(min_interval);
    for number in &to[1..] {
        sink = sink.to(number);
    }
    sink
}

/// A text's form, in order, after checking the request's method, path and headers.
fn sms(seen: &Seen) -> Vec<(String, String)> {
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.path, "/2010-04-01/Accounts/AC0123/Messages.json");
    // base64("AC0123:t0k3n")
    assert_eq!(seen.header("authorization"), "Basic QUMwMTIzOnQwazNu");
    assert_eq!(
        seen.header("content-type"),
        "application/x-www-form-urlencoded"
    );
    url::form_urlencoded::parse(&seen.body)
        .into_owned()
        .collect()
}

fn form(to: &str, body: &str) -> Vec<(String, String)> {
    [("To", to), ("From", FROM), ("Body", body)]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The alert's text, as the sink writes it (before any note of dropped alerts).
fn sms_text(report: &Report) -> String {
    format!("webhook-monitor: {}", report.as_alert().unwrap())
}

/// The forms seen, sorted (requests run concurrently).
fn forms(backend: &Backend) -> Vec<Vec<(String, String)>> {
    let mut forms: Vec<_> = backend.seen().iter().map(sms).collect();
    forms.sort();
    forms
}

#[tokio::test]
async fn twilio_texts_critical_alerts_only_by_default_once_per_recipient() {
    let (backend, addr) = Backend::serve([], 200).await;
    let sink = twilio(addr, Duration::ZERO, &["+15550100", "+15550101"]);
    let batch = [
        common::recorder::delivery(),
        warning("opened"),
        critical("opened"),
        common::recorder::health_report(),
        warning("resolved"),
        critical("resolved"),
    ];
    deliver(&sink, &batch).await;

    let opened = sms_text(&critical("opened"));
    assert_eq!(
        opened,
        "webhook-monitor: [critical] payments: failure rate above threshold (opened) \
         failure_rate=0.600 failed=12 handled=20 window_minutes=5"
    );
    let resolved = sms_text(&critical("resolved"));
    let mut expected = vec![
        form("+15550100", &opened),
        form("+15550101", &opened),
        form("+15550100", &resolved),
        form("+15550101", &resolved),
    ];
    expected.sort();
    assert_eq!(forms(&backend), expected);
    // One text per alert and recipient; warnings, deliveries and health reports not counted.
    assert_eq!(counts(&sink), ("twilio".into(), 4, 4, 0));
}

#[tokio::test]
async fn twilio_texts_warnings_too_when_asked() {
    let (backend, addr) = Backend::serve([], 200).await;
    let sink = twilio(addr, Duration::ZERO, &["+15550100"]).min_severity(Severity::Warning);
    deliver(&sink, &[warning("opened"), critical("opened")]).await;

    let mut expected = vec![
        form("+15550100", &sms_text(&warning("opened"))),
        form("+15550100", &sms_text(&critical("opened"))),
    ];
    expected.sort();
    assert_eq!(forms(&backend), expected);
    assert_eq!(counts(&sink), ("twilio".into(), 2, 2, 0));
}

#[tokio::test]
async fn twilio_names_the_instance_of_an_alert_about_one() {
    let (backend, addr) = Backend::serve([], 200).await;
    let sink = twilio(addr, Duration::ZERO, &["+15550100"]);
    deliver(&sink, &[instance_alert("opened")]).await;

    let text = format!("webhook-monitor: {INSTANCE_HEADLINE} {INSTANCE_FIGURES}");
    assert_eq!(sms_text(&instance_alert("opened")), text);
    assert_eq!(forms(&backend), [form("+15550100", &text)]);
}

#[tokio::test]
async fn twilio_cuts_the_text_at_320_characters() {
    let (backend, addr) = Backend::serve([], 200).await;
    let sink = twilio(addr, Duration::ZERO, &["+15550100"]);
    let long = alert(
        "silence",
        "critical",
        "opened",
        &"é".repeat(400),
        r#"{"silent_for_s":900,"expected_interval_s":60}"#,
    );
    deliver(&sink, std::slice::from_ref(&long)).await;

    let text: String = sms_text(&long).chars().take(320).collect();
    assert!(text.starts_with("webhook-monitor: [critical] éé"));
    assert_eq!(text.chars().count(), 320);
    assert_eq!(forms(&backend), [form("+15550100", &text)]);
}

#[tokio::test]
async fn twilio_drops_alerts_past_its_rate_limit_and_notes_them_in_the_next_text() {
    let (backend, addr) = Backend::serve([], 200).await;
    let min_interval = ms(300);
    let sink = twilio(addr, min_interval, &["+15550100", "+15550101"]);

    // The first critical alert goes out to both; the second comes too soon; the warning is
    // ignored, neither sent nor dropped.
    let batch = [critical("opened"), warning("opened"), critical("resolved")];
    deliver(&sink, &batch).await;
    assert_eq!(backend.seen().len(), 2);
    assert_eq!(counts(&sink), ("twilio".into(), 4, 2, 2));

    tokio::time::sleep(min_interval).await;
    deliver(&sink, &[critical("opened")]).await;
    let seen = backend.seen();
    assert_eq!(seen.len(), 4);
    assert!(seen[2].at - seen[0].at >= min_interval);
    let text = format!("{} (+1 dropped)", sms_text(&critical("opened")));
    let mut last: Vec<_> = seen[2..].iter().map(sms).collect();
    last.sort();
    assert_eq!(last, [form("+15550100", &text), form("+15550101", &text)]);
    assert_eq!(counts(&sink), ("twilio".into(), 6, 4, 2));
}

#[test]
fn twilio_debug_hides_the_token_the_account_and_the_numbers() {
    let sink = TwilioSmsSink::new(&transport(), SID, "t0k3n", FROM, "+15550100")
        .unwrap()
        .to("+15550101");
    let debug = format!("{sink:?}");
    assert!(debug.contains("TwilioSmsSink"), "{debug}");
    for secret in ["t0k3n", "AC0123", "5550", "QUMw"] {
        assert!(!debug.contains(secret), "{debug}");
    }
    let error = TwilioSmsSink::new(&transport(), "AC:0123", "t0k3n", FROM, "+1").unwrap_err();
    assert!(matches!(error, HttpSinkError::InvalidHeader), "{error:?}");
    assert!(!format!("{error:?} {error}").contains("t0k3n"));
}

// ---------------------------------------------------------------------------------------------
// Slack (its other tests are in tests/http_sinks.rs).

#[tokio::test]
async fn slack_names_the_instance_of_an_alert_about_one() {
    let (backend, addr) = Backend::serve([], 200).await;
    let sink = SlackSink::new(
        &transport(),
        &format!("http://{addr}/services/T0/B0/s3cr3t"),
    )
    .unwrap()
    .min_interval(Duration::ZERO);
    deliver(&sink, &[instance_alert("opened")]).await;

    assert_eq!(
        backend.seen()[0].json(),
        json!({
            "text": format!(
                ":rotating_light: {INSTANCE_HEADLINE} {INSTANCE_FIGURES} \
                 (kind: instance_failure_rate)"
            ),
        })
    );
}

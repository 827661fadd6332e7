//! The dashboard in a real browser: headless Chromium, driven over WebDriver by chromedriver,
//! against a server with scripted traffic through real layers. Checks what a person would see,
//! fails on any console error (a Content-Security-Policy violation is one), and saves
//! screenshots.
//!
//! Needs `CHROMEDRIVER` (the chromedriver binary; `.ci/run` installs Debian's `chromium` and
//! `chromium-driver` and sets it) and, optionally, `CHROMIUM` (the browser; defaults to
//! `/usr/bin/chromium`). Without `CHROMEDRIVER` the tests say why and skip; the fleet's (feature
//! `redis`) also needs `REDIS_URL`. Screenshots go to `target/tmp/dashboard-*.png`; with
//! `UPDATE_SCREENSHOT=1` the overview also replaces `docs/dashboard.png`.
#![cfg(all(feature = "dashboard", feature = "axum"))]
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{http::StatusCode, routing::post, Router};
use fantoccini::{
    wd::{Capabilities, WebDriverCompatibleCommand},
    Client, ClientBuilder, Locator,
};
use http::Method;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use webhook_monitor::{
    dashboard::{Auth, Dashboard},
    dedupe::MemoryStore,
    history::MemoryHistory,
    provider::Source,
    report::Reporter,
    testing, Mark, Policy, WebhookMonitorLayer,
};

const TOKEN: &str = "browser-test-token-0123456789abcdef";
const STRIPE_SECRET: &str = "whsec_browser_test";

/// chromedriver on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    /// Starts chromedriver, or says why it cannot.
    async fn start() -> Result<Self, String> {
        let path = std::env::var("CHROMEDRIVER")
            .map_err(|_| "CHROMEDRIVER is not set (CI installs chromium-driver and sets it)")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let child = Command::new(&path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{path}: {e}"))?;
        let driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        // Ready when its status answers.
        for _ in 0..100 {
            let status = http::Request::get(format!("{}/status", driver.url))
                .body(common::full(""))
                .unwrap();
            if common::client().request(status).await.is_ok() {
                return Ok(driver);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("{path} did not answer on port {port} within 10 s"))
    }

    async fn session(&self) -> Client {
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binary,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,1000",
                         "--hide-scrollbars"],
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let capabilities: Capabilities = capabilities;
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The browser's console messages since the last read (chromedriver's log endpoint).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (Method, Option<String>) {
        (Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

/// Fails on any console error or warning the page logged since the last call.
async fn assert_quiet_console(browser: &Client, page: &str) {
    let log = browser.issue_cmd(BrowserLog).await.unwrap();
    let problems: Vec<&Value> = log
        .as_array()
        .into_iter()
        .flatten()
        .filter(|entry| matches!(entry["level"].as_str(), Some("SEVERE" | "WARNING")))
        .collect();
    assert!(problems.is_empty(), "console on the {page}: {problems:#?}");
}

/// Saves what the browser shows, `height` pixels tall (the whole page, for the long ones).
async fn screenshot(browser: &Client, name: &str, height: u32) {
    browser.set_window_size(1400, height).await.unwrap();
    let png = browser.screenshot().await.unwrap();
    let path = format!("{}/dashboard-{name}.png", env!("CARGO_TARGET_TMPDIR"));
    std::fs::write(&path, &png).unwrap();
    println!("screenshot: {path}");
    if name == "overview" && std::env::var_os("UPDATE_SCREENSHOT").is_some() {
        let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/dashboard.png");
        std::fs::write(docs, &png).unwrap();
        println!("updated {docs}");
    }
}

async fn text(browser: &Client, css: &str) -> String {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

/// Orders: takes `work_ms`, fails behind a 200 when `order_id` is missing, 500 on `"explode"`.
async fn orders(body: bytes::Bytes) -> (Mark, StatusCode) {
    let order: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(ms) = order["work_ms"].as_u64() {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if order["explode"].as_bool() == Some(true) {
        return (Mark::new(), StatusCode::INTERNAL_SERVER_ERROR);
    }
    match order["order_id"].as_str() {
        Some(_) => (Mark::new(), StatusCode::OK),
        None => (Mark::failed("missing order_id"), StatusCode::OK),
    }
}

/// Payments: Stripe-signed; an amount of 0 fails with 503.
async fn payments(body: bytes::Bytes) -> StatusCode {
    let payment: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match payment["amount"].as_u64() {
        Some(0) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::OK,
    }
}

/// Two monitored routes and the dashboard at `/_webhooks`, served on loopback, with a scripted
/// traffic history sent over HTTP: 6 orders (a silent failure and a 500) and 6 Stripe payments
/// (the last three failed: an open alert).
async fn scripted_server() -> SocketAddr {
    let history = MemoryHistory::new();
    let (reporter, guard) = Reporter::builder()
        .linger(Duration::from_millis(1))
        .health_interval(Some(Duration::from_millis(200)))
        .spawn(history.clone());
    std::mem::forget(guard); // the reporter lives as long as the test's server
    let orders_policy = Policy::custom("orders")
        .provider("shop")
        .timeout_budget(Duration::from_millis(500))
        .delivery_id(Source::header("x-delivery-id"))
        .event_type(Source::header("x-event-type"));
    let payments_policy = Policy::stripe(STRIPE_SECRET)
        .rename("payments")
        .timeout_budget(Duration::from_secs(3))
        .dedupe(MemoryStore::new())
        .watch(|w| w.consecutive_failures(3));
    let dashboard = Dashboard::new(history)
        .auth(Auth::bearer(TOKEN))
        .refresh(Duration::from_secs(1))
        .router();
    let app = Router::new()
        .route(
            "/webhooks/orders",
            post(orders).route_layer(WebhookMonitorLayer::new(orders_policy, reporter.clone())),
        )
        .route(
            "/webhooks/payments",
            post(payments).route_layer(WebhookMonitorLayer::new(payments_policy, reporter)),
        )
        .nest("/_webhooks", dashboard);
    let addr = common::serve(app).await;

    let url = |path| format!("http://{addr}{path}");
    let orders = [
        r#"{"order_id":"A-1","work_ms":40}"#,
        r#"{"order_id":"A-2","work_ms":120}"#,
        r#"{"items":[]}"#,
        r#"{"order_id":"A-3","work_ms":260}"#,
        r#"{"order_id":"A-4","explode":true}"#,
        r#"{"order_id":"A-5","work_ms":380}"#,
    ];
    for (i, body) in orders.into_iter().enumerate() {
        let id = format!("ord-{i}");
        let headers = [("x-delivery-id", &*id), ("x-event-type", "order.created")];
        common::send(&url("/webhooks/orders"), common::full(body), &headers).await;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for i in 0..6 {
        let amount = if i >= 3 { 0 } else { 1200 };
        let body = format!(r#"{{"id":"evt_{i}","type":"charge.succeeded","amount":{amount}}}"#);
        let signed = testing::stripe(STRIPE_SECRET, body.as_bytes(), now);
        let headers: Vec<(String, String)> = signed
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (&**k, &**v)).collect();
        common::send(&url("/webhooks/payments"), common::full(body), &headers).await;
    }
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_sees_routes_counts_failures_and_alerts() {
    let driver = match Driver::start().await {
        Ok(driver) => driver,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let addr = scripted_server().await;
    // Let the reporter take the last reports.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let browser = driver.session().await;
    let base = format!("http://{addr}/_webhooks");

    // Without credentials: refused. (Asked outside the browser: a browser shown the bare 401
    // asks the site's root for `/favicon.ico` whenever it likes, and logs its 404 late.)
    let refused = http::Request::get(&base).body(common::full("")).unwrap();
    let refused = common::client().request(refused).await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    // The URL the demo prints logs in, and the token leaves the address bar.
    browser
        .goto(&format!("{base}?token={TOKEN}"))
        .await
        .unwrap();
    let url = browser.current_url().await.unwrap();
    assert_eq!(url.path(), "/_webhooks");
    assert!(url.query().is_none_or(|q| !q.contains("token")), "{url}");

    // Live refresh (every second here) off while the test clicks around: it replaces the page's
    // content, and with it the elements found. The toggle is remembered across pages.
    browser
        .find(Locator::Id("live"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // The overview: both routes, their counts, the open alert on payments.
    let orders = text(&browser, r#"tr[data-route="orders"]"#).await;
    let payments = text(&browser, r#"tr[data-route="payments"]"#).await;
    assert!(
        orders.contains("orders") && orders.contains("shop"),
        "{orders}"
    );
    assert!(payments.contains("stripe"), "{payments}");
    let status = text(&browser, r#"tr[data-route="payments"] td.status"#).await;
    assert!(status.contains("alert"), "{status}");
    let status = text(&browser, r#"tr[data-route="orders"] td.status"#).await;
    assert!(status.contains("ok"), "{status}");
    let hour = text(&browser, r#"tr[data-route="orders"] td.hour"#).await;
    assert_eq!(hour.trim(), "6");
    let rate = text(&browser, r#"tr[data-route="orders"] td.rate"#).await;
    assert_eq!(rate.trim(), "66.7 %", "4 of 6 orders succeeded");
    browser.find(Locator::Css("svg.spark")).await.unwrap();
    assert_quiet_console(&browser, "overview").await;
    screenshot(&browser, "overview", 640).await;

    // A route page, reached by its link: the charts and the failed deliveries.
    browser
        .find(Locator::Css(r#"tr[data-route="orders"] a"#))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .find(Locator::Css("svg#chart-deliveries"))
        .await
        .unwrap();
    browser
        .find(Locator::Css("svg#chart-latency"))
        .await
        .unwrap();
    let budget = text(&browser, "svg#chart-latency").await;
    assert!(budget.contains("budget"), "{budget}");
    let failures = browser
        .find_all(Locator::Css(
            r#"table#deliveries tr[data-outcome="failure"]"#,
        ))
        .await
        .unwrap();
    assert_eq!(failures.len(), 2, "the silent failure and the 500");
    assert_quiet_console(&browser, "route page").await;
    screenshot(&browser, "route", 2200).await;

    // The silent failure's delivery page, by the filter form and then its link.
    let form = browser.form(Locator::Css("form#filters")).await.unwrap();
    form.set_by_name("delivery_id", "ord-2").await.unwrap();
    form.submit().await.unwrap();
    // The submit returns before the browser has loaded the filtered page.
    for _ in 0..50 {
        let url = browser.current_url().await.unwrap();
        if url.query().is_some_and(|q| q.contains("delivery_id=ord-2")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows = browser
        .find_all(Locator::Css("table#deliveries tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    rows[0]
        .find(Locator::Css("a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(text(&browser, "#reason").await.trim(), "missing order_id");
    let report = text(&browser, "dl#report").await;
    assert!(
        report.contains("ord-2") && report.contains("order.created"),
        "{report}"
    );
    browser.find(Locator::Css("svg#timings")).await.unwrap();
    assert_quiet_console(&browser, "delivery page").await;
    screenshot(&browser, "delivery", 1100).await;

    // The alerts page: the open alert on payments.
    browser.goto(&format!("{base}/alerts")).await.unwrap();
    let open = text(&browser, "table#alerts-open").await;
    assert!(
        open.contains("payments") && open.contains("consecutive_failures"),
        "{open}"
    );
    assert_quiet_console(&browser, "alerts page").await;

    // The health page: the reporter's counters and the process's resident memory (a health
    // report every 200 ms here).
    browser.goto(&format!("{base}/health")).await.unwrap();
    let process = text(&browser, "table#process").await;
    assert!(
        process.contains("rss_bytes") && process.contains(" MiB"),
        "{process}"
    );
    assert_quiet_console(&browser, "health page").await;
    screenshot(&browser, "health", 1300).await;

    // Live refresh back on, every second: a new delivery shows without a reload, and the
    // script logs no error.
    browser.goto(&base).await.unwrap();
    browser
        .find(Locator::Id("live"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let headers = [
        ("x-delivery-id", "ord-late"),
        ("x-event-type", "order.created"),
    ];
    let order = common::full(r#"{"order_id":"A-6"}"#);
    common::send(&format!("http://{addr}/webhooks/orders"), order, &headers).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let hour = text(&browser, r#"tr[data-route="orders"] td.hour"#).await;
    assert_eq!(hour.trim(), "7", "refreshed in place");
    assert_quiet_console(&browser, "overview after live refreshes").await;

    browser.close().await.unwrap();
}

/// A fleet's instance: its health page lists the fleet's instances (read from Redis), marks
/// the lease's holder, and warns that its own view of the fleet is stale; its alerts name the
/// instance they are about. Needs `REDIS_URL` as well.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_sees_the_fleets_instances() {
    let driver = match Driver::start().await {
        Ok(driver) => driver,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let Some(fleet) = common::fleet::fleet().await else {
        return;
    };
    let router = Dashboard::new(fleet)
        .auth(Auth::bearer(TOKEN))
        .refresh(Duration::from_secs(600))
        .router();
    let addr = common::serve(Router::new().nest("/_webhooks", router)).await;
    let base = format!("http://{addr}/_webhooks");
    let browser = driver.session().await;
    browser
        .goto(&format!("{base}/health?token={TOKEN}"))
        .await
        .unwrap();

    let rows = browser
        .find_all(Locator::Css("table#instances tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    let web1 = text(&browser, r#"tr[data-instance="web-1"]"#).await;
    assert!(
        web1.contains("leader") && web1.contains("180 MiB") && web1.contains("current"),
        "{web1}"
    );
    let web3 = text(&browser, r#"tr[data-instance="web-3"]"#).await;
    assert!(web3.contains("stale"), "{web3}");
    let warning = text(&browser, "div.stale").await;
    assert!(
        warning.contains("Fleet view stale on instance web-3")
            && warning.contains("lost_deliveries = 3")
            && warning.contains("dropped_counts = 3"),
        "{warning}"
    );
    assert_quiet_console(&browser, "health page of a fleet").await;
    screenshot(&browser, "instances", 1000).await;

    browser.goto(&format!("{base}/alerts")).await.unwrap();
    let open = text(&browser, "table#alerts-open").await;
    assert!(open.contains("orders on web-2"), "{open}");
    assert_quiet_console(&browser, "alerts page of a fleet").await;
    screenshot(&browser, "instance-alert", 500).await;
}

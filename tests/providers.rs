//! Round trip for every provider scheme: what `webhook_monitor::testing` signs, the layer
//! accepts through a real server, and identifies; tampered deliveries get 401 and never reach
//! the handler.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{routing::post, Router};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use webhook_monitor::{testing, Outcome, Policy, RejectReason, SignatureStatus};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A monitored route that counts handler calls.
async fn serve(policy: Policy) -> (common::Monitored, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let routes = Router::new().route(
        "/hook",
        post(move |_: Bytes| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { "ok" }
        }),
    );
    (common::monitored(policy, routes).await, calls)
}

async fn deliver(m: &common::Monitored, body: &[u8], headers: &HeaderMap) -> StatusCode {
    let pairs: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    common::send(&m.url("/hook"), common::full(body.to_vec()), &refs)
        .await
        .0
}

struct Case {
    name: &'static str,
    policy: Policy,
    body: Vec<u8>,
    headers: HeaderMap,
    id: Option<&'static str>,
    event: Option<&'static str>,
    attempt: Option<u32>,
}

fn cases() -> Vec<Case> {
    let t = now();
    let ms = t * 1000;
    let stripe = br#"{"id":"evt_1","type":"invoice.paid"}"#.to_vec();
    let slack = br#"{"event_id":"Ev1","event":{"type":"app_mention"}}"#.to_vec();
    let sw = br#"{"type":"user.created","data":{}}"#.to_vec();
    let square = br#"{"event_id":"sq-1","type":"payment.updated"}"#.to_vec();
    let paddle = br#"{"event_id":"evt_p1","event_type":"transaction.paid"}"#.to_vec();
    let linear = format!(r#"{{"action":"create","webhookTimestamp":{ms}}}"#).into_bytes();
    let zoom = br#"{"event":"meeting.started","payload":{}}"#.to_vec();
    let intercom = br#"{"id":"notif_1","topic":"ping","delivery_attempts":2}"#.to_vec();
    let plain = br#"{"hello":"world"}"#.to_vec();
    let typeform = br#"{"event_id":"01ABC","event_type":"form_response"}"#.to_vec();
    let whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let twilio_url = "https://example.com/hook?tenant=1";
    let twilio_params = [
        ("CallSid", "CA1"),
        ("From", "+14158675309"),
        ("Body", "hi there"),
    ];
    let twilio_form = b"CallSid=CA1&From=%2B14158675309&Body=hi+there".to_vec();
    let twilio_json = br#"{"event":"call.completed"}"#.to_vec();
    let mailgun = testing::mailgun("mg-key", t, "tok-1", "delivered");
    let mut slack_retry = testing::slack("slack-secret", &slack, t);
    slack_retry.insert("x-slack-retry-num", "2".parse().unwrap());
    vec![
        Case {
            name: "twilio form",
            policy: Policy::twilio("tw-token", twilio_url),
            headers: testing::twilio_form("tw-token", twilio_url, &twilio_params),
            body: twilio_form,
            id: None,
            event: None,
            attempt: None,
        },
        Case {
            name: "twilio json",
            policy: Policy::twilio("tw-token", twilio_url),
            headers: testing::twilio_json("tw-token", twilio_url, &twilio_json),
            body: twilio_json,
            id: None,
            event: None,
            attempt: None,
        },
        Case {
            name: "mailgun",
            policy: Policy::mailgun("mg-key"),
            headers: HeaderMap::new(),
            body: mailgun,
            id: Some("tok-1"),
            event: Some("delivered"),
            attempt: None,
        },
        Case {
            name: "gitlab token",
            policy: Policy::gitlab("gl-token"),
            headers: testing::gitlab("gl-token", "idem-9", "Push Hook"),
            body: br#"{"object_kind":"push"}"#.to_vec(),
            id: Some("idem-9"),
            event: Some("Push Hook"),
            attempt: None,
        },
        Case {
            name: "stripe",
            policy: Policy::stripe("whsec_test"),
            headers: testing::stripe("whsec_test", &stripe, t),
            body: stripe,
            id: Some("evt_1"),
            event: Some("invoice.paid"),
            attempt: None,
        },
        Case {
            name: "github",
            policy: Policy::github("gh-secret"),
            headers: testing::github("gh-secret", &plain, "d-1", "push"),
            body: plain.clone(),
            id: Some("d-1"),
            event: Some("push"),
            attempt: None,
        },
        Case {
            name: "shopify",
            policy: Policy::shopify("shop-secret"),
            headers: testing::shopify("shop-secret", &plain, "w-1", "orders/create"),
            body: plain.clone(),
            id: Some("w-1"),
            event: Some("orders/create"),
            attempt: None,
        },
        Case {
            name: "slack",
            policy: Policy::slack("slack-secret"),
            headers: testing::slack("slack-secret", &slack, t),
            body: slack.clone(),
            id: Some("Ev1"),
            event: Some("app_mention"),
            attempt: Some(1),
        },
        Case {
            name: "slack retry",
            policy: Policy::slack("slack-secret"),
            headers: slack_retry,
            body: slack,
            id: Some("Ev1"),
            event: Some("app_mention"),
            attempt: Some(3),
        },
        Case {
            name: "standard webhooks",
            policy: Policy::standard_webhooks([whsec]).unwrap(),
            headers: testing::standard_webhooks("webhook", whsec, "msg_1", &sw, t).unwrap(),
            body: sw.clone(),
            id: Some("msg_1"),
            event: Some("user.created"),
            attempt: None,
        },
        Case {
            name: "svix headers",
            policy: Policy::svix([whsec]).unwrap(),
            headers: testing::standard_webhooks("svix", whsec, "msg_2", &sw, t).unwrap(),
            body: sw.clone(),
            id: Some("msg_2"),
            event: Some("user.created"),
            attempt: None,
        },
        Case {
            name: "clerk",
            policy: Policy::clerk([whsec]).unwrap(),
            headers: testing::standard_webhooks("svix", whsec, "msg_3", &sw, t).unwrap(),
            body: sw.clone(),
            id: Some("msg_3"),
            event: Some("user.created"),
            attempt: None,
        },
        Case {
            name: "resend",
            policy: Policy::resend([whsec]).unwrap(),
            headers: testing::standard_webhooks("svix", whsec, "msg_4", &sw, t).unwrap(),
            body: sw.clone(),
            id: Some("msg_4"),
            event: Some("user.created"),
            attempt: None,
        },
        Case {
            name: "gitlab signed",
            policy: Policy::gitlab_signed([whsec]).unwrap(),
            headers: testing::gitlab_signed(whsec, "idem-1", "Push Hook", &sw, t).unwrap(),
            body: sw,
            id: Some("idem-1"),
            event: Some("Push Hook"),
            attempt: None,
        },
        Case {
            name: "square",
            policy: Policy::square("sq-key", "https://example.com/hook"),
            headers: testing::square("sq-key", "https://example.com/hook", &square),
            body: square,
            id: Some("sq-1"),
            event: Some("payment.updated"),
            attempt: Some(1),
        },
        Case {
            name: "paddle",
            policy: Policy::paddle("pdl_ntf_x"),
            headers: testing::paddle("pdl_ntf_x", &paddle, t),
            body: paddle,
            id: Some("evt_p1"),
            event: Some("transaction.paid"),
            attempt: None,
        },
        Case {
            name: "linear",
            policy: Policy::linear("lin"),
            headers: testing::linear("lin", &linear, "ld-1", "Issue"),
            body: linear,
            id: Some("ld-1"),
            event: Some("Issue"),
            attempt: None,
        },
        Case {
            name: "zoom",
            policy: Policy::zoom("zoom"),
            headers: testing::zoom("zoom", &zoom, t),
            body: zoom,
            id: None,
            event: Some("meeting.started"),
            attempt: None,
        },
        Case {
            name: "intercom",
            policy: Policy::intercom("ic"),
            headers: testing::intercom("ic", &intercom),
            body: intercom,
            id: Some("notif_1"),
            event: Some("ping"),
            attempt: Some(2),
        },
        Case {
            name: "razorpay",
            policy: Policy::razorpay("rzp"),
            headers: testing::razorpay("rzp", &plain, "evt_r1"),
            body: plain.clone(),
            id: Some("evt_r1"),
            event: None,
            attempt: None,
        },
        Case {
            name: "lemon squeezy",
            policy: Policy::lemon_squeezy("lemon"),
            headers: testing::lemon_squeezy("lemon", &plain, "order_created"),
            body: plain,
            id: None,
            event: Some("order_created"),
            attempt: None,
        },
        Case {
            name: "typeform",
            policy: Policy::typeform("tf"),
            headers: testing::typeform("tf", &typeform),
            body: typeform,
            id: Some("01ABC"),
            event: Some("form_response"),
            attempt: None,
        },
    ]
}

#[tokio::test]
async fn what_testing_signs_the_layer_accepts_and_identifies() {
    for case in cases() {
        let (m, calls) = serve(case.policy).await;
        let status = deliver(&m, &case.body, &case.headers).await;
        if status != StatusCode::OK {
            let r = m.report(1).await;
            panic!("{}: {status} {:?} {:?}", case.name, r.outcome, r.reason);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "{}", case.name);
        let r = m.report(1).await;
        assert_eq!(r.outcome, Outcome::Success, "{}", case.name);
        assert_eq!(
            r.delivery.signature(),
            SignatureStatus::Verified { secret_index: 0 },
            "{}",
            case.name
        );
        assert_eq!(r.delivery.id(), case.id, "{} id", case.name);
        assert_eq!(r.delivery.event_type(), case.event, "{} event", case.name);
        assert_eq!(r.delivery.attempt(), case.attempt, "{} attempt", case.name);
    }
}

#[tokio::test]
async fn a_tampered_body_is_401_and_never_reaches_the_handler() {
    // GitLab's classic token does not cover the body: nothing to tamper with.
    for case in cases().into_iter().filter(|c| c.name != "gitlab token") {
        let (m, calls) = serve(case.policy).await;
        let mut body = case.body.clone();
        // One flipped bit in a signed byte: Mailgun signs only its token (and timestamp).
        let at = match case.name {
            "mailgun" => body.windows(5).position(|w| w == b"tok-1").unwrap() + 4,
            _ => 1,
        };
        body[at] ^= 0x01;
        let status = deliver(&m, &body, &case.headers).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{}", case.name);
        assert_eq!(calls.load(Ordering::SeqCst), 0, "{}", case.name);
        let r = m.report(1).await;
        assert_eq!(
            r.outcome,
            Outcome::Rejected(RejectReason::BadSignature),
            "{}",
            case.name
        );
        assert_eq!(
            r.delivery.signature(),
            SignatureStatus::Failed,
            "{}",
            case.name
        );
        // The reason names the check, never a secret or the expected signature.
        let reason = r.reason.as_deref();
        assert_eq!(
            reason,
            Some("no signature matched any secret"),
            "{}",
            case.name
        );
    }
}

#[tokio::test]
async fn missing_and_stale_signatures_name_the_failed_check() {
    let body = br#"{"id":"evt_1","type":"invoice.paid"}"#;
    let (m, calls) = serve(Policy::stripe("whsec_test")).await;

    assert_eq!(
        deliver(&m, body, &HeaderMap::new()).await,
        StatusCode::UNAUTHORIZED
    );
    let r = m.report(1).await;
    assert_eq!(r.outcome, Outcome::Rejected(RejectReason::MissingSignature));
    assert_eq!(r.reason.as_deref(), Some("missing header stripe-signature"));
    assert_eq!(r.outcome.detail(), Some("missing_signature"));

    let stale = testing::stripe("whsec_test", body, now() - 3600);
    assert_eq!(deliver(&m, body, &stale).await, StatusCode::UNAUTHORIZED);
    let r = m.report(2).await;
    assert_eq!(r.outcome, Outcome::Rejected(RejectReason::StaleTimestamp));

    let future = testing::stripe("whsec_test", body, now() + 3600);
    assert_eq!(deliver(&m, body, &future).await, StatusCode::UNAUTHORIZED);
    let r = m.report(3).await;
    assert_eq!(r.outcome, Outcome::Rejected(RejectReason::FutureTimestamp));

    let garbage: HeaderMap = [(
        http::header::HeaderName::from_static("stripe-signature"),
        "t=1,v1=zz".parse().unwrap(),
    )]
    .into_iter()
    .collect();
    assert_eq!(deliver(&m, body, &garbage).await, StatusCode::UNAUTHORIZED);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(m.sink.wait_for(4, Duration::from_secs(5)).await.len(), 4);
}

#[tokio::test]
async fn a_rotation_reports_which_secret_matched() {
    let body = br#"{"id":"evt_9","type":"invoice.paid"}"#;
    let (m, _) = serve(Policy::stripe(["whsec_new", "whsec_old"])).await;
    let old = testing::stripe("whsec_old", body, now());
    assert_eq!(deliver(&m, body, &old).await, StatusCode::OK);
    let r = m.report(1).await;
    assert_eq!(
        r.delivery.signature(),
        SignatureStatus::Verified { secret_index: 1 }
    );
}

#[tokio::test]
async fn a_fixed_clock_verifies_old_deliveries() {
    // The Stripe A3 timestamp, checked against a clock set 100 s after it.
    let t = 1_533_204_620;
    let body = br#"{"id":"evt_123","type":"customer.created"}"#;
    let policy =
        Policy::stripe("webhook_secret").clock(move || UNIX_EPOCH + Duration::from_secs(t + 100));
    let (m, _) = serve(policy).await;
    assert_eq!(
        deliver(&m, body, &testing::stripe("webhook_secret", body, t)).await,
        StatusCode::OK
    );
    let r = m.report(1).await;
    assert_eq!(
        r.delivery.received_at(),
        UNIX_EPOCH + Duration::from_secs(t + 100)
    );
}

#[cfg(feature = "asymmetric")]
#[tokio::test]
async fn discord_and_sendgrid_round_trip() {
    use webhook_monitor::testing::{DiscordKey, SendgridKey};

    let discord = DiscordKey::from_seed([7; 32]);
    let body = br#"{"id":"int_1","type":1}"#;
    let (m, calls) = serve(Policy::discord(&discord.public_key_hex()).unwrap()).await;
    assert_eq!(
        deliver(&m, body, &discord.sign(body, now())).await,
        StatusCode::OK
    );
    let r = m.report(1).await;
    assert_eq!(
        r.delivery.signature(),
        SignatureStatus::Verified { secret_index: 0 }
    );
    assert_eq!(r.delivery.id(), Some("int_1"));
    assert_eq!(r.delivery.event_type(), Some("1"));
    let forged = DiscordKey::from_seed([8; 32]).sign(body, now());
    assert_eq!(deliver(&m, body, &forged).await, StatusCode::UNAUTHORIZED);
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let sendgrid = SendgridKey::from_seed([7; 32]);
    let body = b"[{\"event\":\"delivered\",\"sg_event_id\":\"e1\"}]\r\n";
    let (m, calls) = serve(Policy::sendgrid(&sendgrid.public_key_base64_der()).unwrap()).await;
    assert_eq!(
        deliver(&m, body, &sendgrid.sign(body, now())).await,
        StatusCode::OK
    );
    assert_eq!(
        m.report(1).await.delivery.signature(),
        SignatureStatus::Verified { secret_index: 0 }
    );
    let stale = sendgrid.sign(body, now() - 3600);
    assert_eq!(deliver(&m, body, &stale).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        m.report(2).await.outcome,
        Outcome::Rejected(RejectReason::StaleTimestamp)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_delivery_lag_is_measured_from_the_providers_stamp() {
    let t = 1_700_000_000;
    let clock = move || UNIX_EPOCH + Duration::from_secs(t);
    // Stripe: the event's `created`, 2 minutes before it arrives.
    let body = format!(
        r#"{{"id":"evt_1","type":"invoice.paid","created":{}}}"#,
        t - 120
    );
    let (m, _) = serve(Policy::stripe("whsec_test").clock(clock)).await;
    let headers = testing::stripe("whsec_test", body.as_bytes(), t);
    assert_eq!(deliver(&m, body.as_bytes(), &headers).await, StatusCode::OK);
    let r = m.report(1).await;
    assert_eq!(r.delivery.lag(), Some(Duration::from_secs(120)));

    // Shopify: `X-Shopify-Triggered-At`, RFC 3339, an hour and a half before (a retry).
    let (m, _) = serve(Policy::shopify("shop").clock(clock)).await;
    let mut headers = testing::shopify("shop", b"{}", "w-1", "orders/create");
    headers.insert(
        "x-shopify-triggered-at",
        "2023-11-14T20:43:20.5Z".parse().unwrap(),
    );
    assert_eq!(deliver(&m, b"{}", &headers).await, StatusCode::OK);
    let lag = m.report(1).await.delivery.lag().unwrap();
    assert_eq!(lag, Duration::from_millis(5_399_500));
}

#[tokio::test]
async fn a_presets_body_fields_can_be_turned_off() {
    let t = 1_700_000_000;
    let clock = move || UNIX_EPOCH + Duration::from_secs(t);
    let body = format!(
        r#"{{"id":"evt_1","created":{},"data":{{}},"type":"invoice.paid"}}"#,
        t - 120
    );
    let headers = testing::stripe("whsec_test", body.as_bytes(), t);

    // The preset reads `type` and `created` from the body.
    let (m, _) = serve(Policy::stripe("whsec_test").clock(clock)).await;
    assert_eq!(deliver(&m, body.as_bytes(), &headers).await, StatusCode::OK);
    let r = m.report(1).await;
    assert_eq!(r.delivery.event_type(), Some("invoice.paid"));
    assert_eq!(r.delivery.lag(), Some(Duration::from_secs(120)));

    // Turned off, neither is read; the delivery is still verified and identified by its `id`.
    let policy = Policy::stripe("whsec_test")
        .clock(clock)
        .event_type(None)
        .sent_at(None);
    let (m, _) = serve(policy).await;
    assert_eq!(deliver(&m, body.as_bytes(), &headers).await, StatusCode::OK);
    let r = m.report(1).await;
    assert_eq!(r.delivery.event_type(), None);
    assert_eq!(r.delivery.lag(), None);
    assert_eq!(r.delivery.id(), Some("evt_1"));
    assert_eq!(
        r.delivery.signature(),
        SignatureStatus::Verified { secret_index: 0 }
    );
}

/// Shopify's own `webhooks.validate` (shopify-app-js) refuses a delivery without any of these.
#[test]
fn testing_shopify_sends_every_header_shopifys_validate_requires() {
    let headers = testing::shopify("shop-secret", b"{}", "w-1", "orders/create");
    for name in [
        "x-shopify-hmac-sha256",
        "x-shopify-topic",
        "x-shopify-api-version",
        "x-shopify-shop-domain",
        "x-shopify-webhook-id",
    ] {
        assert!(headers.contains_key(name), "{name}");
    }
    assert_eq!(
        headers["x-shopify-shop-domain"],
        testing::SHOPIFY_SHOP_DOMAIN
    );
}

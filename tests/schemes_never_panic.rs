//! Property test: no header value or body makes any scheme panic. Header values and bodies are
//! attacker-controlled; every scheme must answer with a verdict.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use proptest::prelude::*;
use webhook_monitor::provider::{
    GitlabTokenScheme, HmacScheme, MailgunScheme, Scheme, Secret, SignedRequest, TwilioScheme,
};

/// Every scheme, with the header names each one reads.
fn schemes() -> Vec<(Box<dyn Scheme>, &'static [&'static str])> {
    let sw = || Secret::from_base64("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    #[allow(unused_mut)]
    let mut schemes: Vec<(Box<dyn Scheme>, &'static [&'static str])> = vec![
        (Box::new(HmacScheme::stripe("s")), &["stripe-signature"]),
        (Box::new(HmacScheme::github("s")), &["x-hub-signature-256"]),
        (Box::new(HmacScheme::github_sha1("s")), &["x-hub-signature"]),
        (
            Box::new(HmacScheme::shopify("s")),
            &["x-shopify-hmac-sha256"],
        ),
        (
            Box::new(HmacScheme::slack("s")),
            &["x-slack-signature", "x-slack-request-timestamp"],
        ),
        (
            Box::new(HmacScheme::standard_webhooks("webhook", sw())),
            &["webhook-signature", "webhook-timestamp", "webhook-id"],
        ),
        (
            Box::new(HmacScheme::square("s", "https://e.x/h")),
            &["x-square-hmacsha256-signature"],
        ),
        (Box::new(HmacScheme::paddle("s")), &["paddle-signature"]),
        (Box::new(HmacScheme::linear("s")), &["linear-signature"]),
        (
            Box::new(HmacScheme::zoom("s")),
            &["x-zm-signature", "x-zm-request-timestamp"],
        ),
        (Box::new(HmacScheme::intercom("s")), &["x-hub-signature"]),
        (
            Box::new(HmacScheme::razorpay("s")),
            &["x-razorpay-signature"],
        ),
        (Box::new(HmacScheme::lemon_squeezy("s")), &["x-signature"]),
        (Box::new(HmacScheme::typeform("s")), &["typeform-signature"]),
        (
            Box::new(TwilioScheme::new("s", "https://e.x:8443/h?a=1#rt=5")),
            &["x-twilio-signature"],
        ),
        (Box::new(MailgunScheme::new("s")), &[]),
        // A token is compared as it is, so a one-letter one is guessable: proptest found "s".
        (
            Box::new(GitlabTokenScheme::new(
                "gitlab-token-no-random-header-guesses",
            )),
            &["x-gitlab-token"],
        ),
    ];
    #[cfg(feature = "asymmetric")]
    {
        use webhook_monitor::{
            provider::{DiscordScheme, SendgridScheme},
            testing::{DiscordKey, SendgridKey},
        };
        let discord =
            DiscordScheme::new([DiscordKey::from_seed([7; 32]).public_key_hex()]).unwrap();
        let sendgrid =
            SendgridScheme::new([SendgridKey::from_seed([7; 32]).public_key_base64_der()]).unwrap();
        schemes.push((
            Box::new(discord),
            &["x-signature-ed25519", "x-signature-timestamp"],
        ));
        schemes.push((
            Box::new(sendgrid),
            &[
                "x-twilio-email-event-webhook-signature",
                "x-twilio-email-event-webhook-timestamp",
            ],
        ));
    }
    schemes
}

/// Header text shaped like signatures: separators, prefixes, hex and base64 runs, and noise.
fn header_text() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        "[ -~]{0,200}".prop_map(String::into_bytes),
        "((t|ts|v1|v0|h1|sha256|sha1)[=,]?[0-9a-fA-F+/=]{0,80}[,; ]?){0,6}"
            .prop_map(String::into_bytes),
        "-?[0-9]{0,25}".prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn no_scheme_panics_on_any_header_or_body(
        values in proptest::collection::vec(header_text(), 3),
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300),
            "\\{\"webhookTimestamp\":-?[0-9]{0,22}(\\.[0-9]+)?\\}".prop_map(String::into_bytes),
            "\\{\"signature\":\\{\"timestamp\":\"?[0-9]{0,12}\"?,\"token\":\"[a-z0-9]{0,10}\",\"signature\":\"[0-9a-f]{0,66}\"\\}\\}".prop_map(String::into_bytes),
            "([A-Za-z]{1,6}=[A-Za-z0-9%+]{0,8}&?){0,5}".prop_map(String::into_bytes),
        ],
        now in 0u64..u64::MAX / 2,
    ) {
        let uri = Uri::from_static("/hook");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(now);
        for (scheme, names) in schemes() {
            let mut headers = HeaderMap::new();
            for (name, value) in names.iter().zip(&values) {
                if let Ok(value) = HeaderValue::from_bytes(value) {
                    headers.insert(HeaderName::from_static(name), value);
                }
            }
            // A verdict, whatever it is; a forged signature never passes.
            let verdict = scheme.verify(&SignedRequest::new(&headers, &uri, &body, now));
            prop_assert!(verdict.is_err());
        }
    }
}

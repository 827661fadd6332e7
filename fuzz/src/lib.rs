//! What the fuzz targets share: the text form of a request they read, and the presets they run
//! it through, keyed with the secrets of the providers' official test vectors (and of the
//! derived ones in `PROVIDERS.md`), so that the seeds in `seeds/` verify and the fuzzer starts
//! past the MAC.
//!
//! A request is written as
//!
//! ```text
//! <preset> <unix seconds now>
//! <request URI>
//! <header name>: <value>
//! …
//!
//! <body, to the end>
//! ```
//!
//! Lines that are not valid headers are skipped; an unknown preset runs every preset.

use std::{
    sync::OnceLock,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use webhook_monitor::{provider::Source, Policy};

/// One request, as the targets read it.
pub struct Input<'a> {
    pub preset: &'a str,
    pub now: SystemTime,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: &'a [u8],
}

/// Reads the text form above; `None` when the first line is not UTF-8.
pub fn parse(data: &[u8]) -> Option<Input<'_>> {
    let (first, rest) = split_line(data);
    let first = std::str::from_utf8(first).ok()?;
    let (preset, now) = first.split_once(' ').unwrap_or((first, "0"));
    let now = UNIX_EPOCH + Duration::from_secs(now.trim().parse::<u32>().unwrap_or(0).into());
    let (uri, mut rest) = split_line(rest);
    let uri = Uri::try_from(uri).unwrap_or_else(|_| Uri::from_static("/"));
    let mut headers = HeaderMap::new();
    while !rest.is_empty() {
        let (line, after) = split_line(rest);
        rest = after;
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        let value = value[1..].strip_prefix(b" ").unwrap_or(&value[1..]);
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    Some(Input {
        preset,
        now,
        uri,
        headers,
        body: rest,
    })
}

/// A first line of settings (paths, checks) and the body after it; no line, no settings.
pub fn settings_and_body(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    }
}

fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// Standard Webhooks' official vector's secret (A5 V1); Svix routes use it too.
pub const SW_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
/// Twilio's official vector (A7): Auth Token and URL.
pub const TWILIO_TOKEN: &str = "12345";
pub const TWILIO_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

/// Every preset, by name, keyed as the seeds are signed.
pub fn presets() -> &'static [(&'static str, Policy)] {
    static PRESETS: OnceLock<Vec<(&'static str, Policy)>> = OnceLock::new();
    PRESETS.get_or_init(|| {
        vec![
            ("stripe", Policy::stripe("webhook_secret")),
            ("github", Policy::github("It's a Secret to Everybody")),
            (
                "github-sha1",
                Policy::github_with_sha1_fallback("It's a Secret to Everybody"),
            ),
            ("shopify", Policy::shopify("test_secret_key")),
            ("slack", Policy::slack("8f742231b10e8888abcd99yyyzzz85a5")),
            (
                "standard_webhooks",
                Policy::standard_webhooks([SW_SECRET]).expect("base64"),
            ),
            ("svix", Policy::svix([SW_SECRET]).expect("base64")),
            ("gitlab", Policy::gitlab("gitlab-token")),
            (
                "gitlab_signed",
                Policy::gitlab_signed(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]).expect("base64"),
            ),
            ("twilio", Policy::twilio(TWILIO_TOKEN, TWILIO_URL)),
            (
                "square",
                Policy::square(
                    "Ibxx_5AKakO-3qeNVR61Dw",
                    "https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9",
                ),
            ),
            (
                "paddle",
                Policy::paddle(
                    "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_WvRO0eL4Bj9rgYYIBZY6wZhG4EHy9jzh",
                ),
            ),
            ("razorpay", Policy::razorpay("key_secret")),
            ("linear", Policy::linear("linear_secret")),
            ("zoom", Policy::zoom("zoom_secret_token")),
            ("intercom", Policy::intercom("intercom_client_secret")),
            ("lemon_squeezy", Policy::lemon_squeezy("lemon_secret")),
            ("typeform", Policy::typeform("typeform_secret")),
            ("mailgun", Policy::mailgun("key-secret-example")),
            (
                "discord",
                Policy::discord("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
                    .expect("a public key"),
            ),
            (
                "sendgrid",
                Policy::sendgrid(
                    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1\
                     flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==",
                )
                .expect("a public key"),
            ),
        ]
    })
}

/// The presets `name` selects: that one, or all of them for an unknown name.
pub fn select(name: &str) -> impl Iterator<Item = &'static (&'static str, Policy)> {
    let all = presets();
    let one = all.iter().position(|(n, _)| *n == name);
    all.iter()
        .enumerate()
        .filter(move |(i, _)| one.is_none_or(|one| one == *i))
        .map(|(_, p)| p)
}

/// The sources the targets ask `covers` about.
pub fn sources() -> [Source; 4] {
    [
        Source::json("/id"),
        Source::json("/signature/token"),
        Source::header("webhook-id"),
        Source::header("x-github-delivery"),
    ]
}

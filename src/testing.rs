//! Sign requests the way providers do, to test your own webhook handlers end to end.
//!
//! Each function returns the headers the provider would send with `body`; add them to your
//! request and send it through your router behind the matching [`Policy`](crate::Policy) preset.
//! Timestamps are unix seconds, as the provider would stamp them: use the current time, or the
//! time of the policy's [`clock`](crate::Policy::clock). For a scheme of your own, use
//! [`HmacScheme::sign`].
//!
//! # Panics
//!
//! Every function panics if an id, event name or URL it is given cannot be a header value
//! (control characters): that is a bug in the test.
//!
//! # Example
//!
//! ```
//! use http::Request;
//! use webhook_monitor::testing;
//!
//! let body = br#"{"id":"evt_1","type":"invoice.paid"}"#;
//! let now = std::time::SystemTime::now()
//!     .duration_since(std::time::UNIX_EPOCH)
//!     .unwrap()
//!     .as_secs();
//! let mut req = Request::post("/webhooks/stripe").body(body.to_vec()).unwrap();
//! req.headers_mut().extend(testing::stripe("whsec_test", body, now));
//! assert!(req.headers()["stripe-signature"].to_str().unwrap().starts_with("t="));
//! ```

use std::time::SystemTime;

use http::{HeaderMap, HeaderName, HeaderValue, Uri};

use crate::provider::{
    gitlab_token, mailgun, twilio, HmacScheme, InvalidSecret, Secret, SignedRequest,
};

/// Signs with `scheme`'s first secret. `headers` holds every header the signature covers.
fn signature(scheme: &HmacScheme, headers: &HeaderMap, body: &[u8], ts: Option<&str>) -> String {
    let uri = Uri::from_static("/");
    let request = SignedRequest::new(headers, &uri, body, SystemTime::UNIX_EPOCH);
    scheme
        .sign(0, &request, ts)
        .expect("the signed headers are provided")
        .expect("the scheme has a secret")
}

fn headers<const N: usize>(pairs: [(&'static str, String); N]) -> HeaderMap {
    pairs
        .into_iter()
        .map(|(name, value)| {
            let value = HeaderValue::try_from(value).expect("a valid header value");
            (HeaderName::from_static(name), value)
        })
        .collect()
}

/// Stripe: `Stripe-Signature: t={timestamp},v1=…`.
pub fn stripe(secret: &str, body: &[u8], timestamp: u64) -> HeaderMap {
    let ts = timestamp.to_string();
    let sig = signature(
        &HmacScheme::stripe(secret),
        &HeaderMap::new(),
        body,
        Some(&ts),
    );
    headers([("stripe-signature", format!("t={ts},v1={sig}"))])
}

/// GitHub: `X-Hub-Signature-256: sha256=…`, with `X-GitHub-Delivery` and `X-GitHub-Event`.
pub fn github(secret: &str, body: &[u8], delivery: &str, event: &str) -> HeaderMap {
    let sig = signature(&HmacScheme::github(secret), &HeaderMap::new(), body, None);
    headers([
        ("x-hub-signature-256", format!("sha256={sig}")),
        ("x-github-delivery", delivery.to_owned()),
        ("x-github-event", event.to_owned()),
    ])
}

/// The shop [`shopify`] names in `X-Shopify-Shop-Domain`.
pub const SHOPIFY_SHOP_DOMAIN: &str = "webhook-monitor-test.myshopify.com";

/// The Admin API version [`shopify`] names in `X-Shopify-API-Version`.
pub const SHOPIFY_API_VERSION: &str = "2025-10";

/// Shopify: `X-Shopify-Hmac-Sha256`, with `X-Shopify-Webhook-Id`, `X-Shopify-Topic`, and the
/// `X-Shopify-Shop-Domain` ([`SHOPIFY_SHOP_DOMAIN`]) and `X-Shopify-API-Version`
/// ([`SHOPIFY_API_VERSION`]) that Shopify's own `webhooks.validate` requires. Neither is signed:
/// insert your own shop's values over them if your handler reads them.
pub fn shopify(secret: &str, body: &[u8], webhook_id: &str, topic: &str) -> HeaderMap {
    let sig = signature(&HmacScheme::shopify(secret), &HeaderMap::new(), body, None);
    headers([
        ("x-shopify-hmac-sha256", sig),
        ("x-shopify-webhook-id", webhook_id.to_owned()),
        ("x-shopify-topic", topic.to_owned()),
        ("x-shopify-shop-domain", SHOPIFY_SHOP_DOMAIN.to_owned()),
        ("x-shopify-api-version", SHOPIFY_API_VERSION.to_owned()),
    ])
}

/// Slack: `X-Slack-Signature: v0=…` and `X-Slack-Request-Timestamp`.
pub fn slack(secret: &str, body: &[u8], timestamp: u64) -> HeaderMap {
    let ts = timestamp.to_string();
    let sig = signature(
        &HmacScheme::slack(secret),
        &HeaderMap::new(),
        body,
        Some(&ts),
    );
    headers([
        ("x-slack-signature", format!("v0={sig}")),
        ("x-slack-request-timestamp", ts),
    ])
}

/// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,…`; with
/// `prefix` `"svix"`, the same as `svix-*` headers (Svix, Clerk, Resend).
///
/// # Errors
///
/// [`InvalidSecret`] when `secret` is not a base64 (`whsec_…`) secret.
///
/// # Panics
///
/// If `prefix` is not a lowercase header-name prefix.
pub fn standard_webhooks(
    prefix: &'static str,
    secret: &str,
    id: &str,
    body: &[u8],
    timestamp: u64,
) -> Result<HeaderMap, InvalidSecret> {
    let scheme = HmacScheme::standard_webhooks(prefix, Secret::from_base64(secret)?);
    let ts = timestamp.to_string();
    let name = |suffix: &str| {
        HeaderName::try_from(format!("{prefix}-{suffix}")).expect("a valid header prefix")
    };
    let mut out = HeaderMap::new();
    out.insert(
        name("id"),
        HeaderValue::try_from(id).expect("a valid header value"),
    );
    let sig = signature(&scheme, &out, body, Some(&ts));
    out.insert(name("timestamp"), HeaderValue::from(timestamp));
    out.insert(
        name("signature"),
        HeaderValue::try_from(format!("v1,{sig}")).expect("base64"),
    );
    Ok(out)
}

/// GitLab with a signing token: Standard Webhooks headers plus `Idempotency-Key` (the same
/// value as the signed `webhook-id`) and `X-Gitlab-Event`.
///
/// # Errors
///
/// [`InvalidSecret`] when `token` is not base64.
pub fn gitlab_signed(
    token: &str,
    id: &str,
    event: &str,
    body: &[u8],
    timestamp: u64,
) -> Result<HeaderMap, InvalidSecret> {
    let mut out = standard_webhooks("webhook", token, id, body, timestamp)?;
    out.extend(headers([
        ("idempotency-key", id.to_owned()),
        ("x-gitlab-event", event.to_owned()),
    ]));
    Ok(out)
}

/// Square: `x-square-hmacsha256-signature` over the notification URL and the body.
pub fn square(signature_key: &str, notification_url: &str, body: &[u8]) -> HeaderMap {
    let scheme = HmacScheme::square(signature_key, notification_url.to_owned());
    let sig = signature(&scheme, &HeaderMap::new(), body, None);
    headers([("x-square-hmacsha256-signature", sig)])
}

/// Paddle Billing: `Paddle-Signature: ts=…;h1=…`.
pub fn paddle(secret: &str, body: &[u8], timestamp: u64) -> HeaderMap {
    let ts = timestamp.to_string();
    let sig = signature(
        &HmacScheme::paddle(secret),
        &HeaderMap::new(),
        body,
        Some(&ts),
    );
    headers([("paddle-signature", format!("ts={ts};h1={sig}"))])
}

/// Linear: `Linear-Signature`, with `Linear-Delivery` and `Linear-Event`. The body must carry
/// its own `webhookTimestamp` (milliseconds), as Linear's do.
pub fn linear(secret: &str, body: &[u8], delivery: &str, event: &str) -> HeaderMap {
    let sig = signature(&HmacScheme::linear(secret), &HeaderMap::new(), body, None);
    headers([
        ("linear-signature", sig),
        ("linear-delivery", delivery.to_owned()),
        ("linear-event", event.to_owned()),
    ])
}

/// Zoom: `x-zm-signature: v0=…` and `x-zm-request-timestamp`.
pub fn zoom(secret: &str, body: &[u8], timestamp: u64) -> HeaderMap {
    let ts = timestamp.to_string();
    let sig = signature(
        &HmacScheme::zoom(secret),
        &HeaderMap::new(),
        body,
        Some(&ts),
    );
    headers([
        ("x-zm-signature", format!("v0={sig}")),
        ("x-zm-request-timestamp", ts),
    ])
}

/// Intercom: `X-Hub-Signature: sha1=…`.
pub fn intercom(secret: &str, body: &[u8]) -> HeaderMap {
    let sig = signature(&HmacScheme::intercom(secret), &HeaderMap::new(), body, None);
    headers([("x-hub-signature", format!("sha1={sig}"))])
}

/// Razorpay: `X-Razorpay-Signature`, with `x-razorpay-event-id`.
pub fn razorpay(secret: &str, body: &[u8], event_id: &str) -> HeaderMap {
    let sig = signature(&HmacScheme::razorpay(secret), &HeaderMap::new(), body, None);
    headers([
        ("x-razorpay-signature", sig),
        ("x-razorpay-event-id", event_id.to_owned()),
    ])
}

/// Lemon Squeezy: `X-Signature`, with `X-Event-Name`.
pub fn lemon_squeezy(secret: &str, body: &[u8], event: &str) -> HeaderMap {
    let sig = signature(
        &HmacScheme::lemon_squeezy(secret),
        &HeaderMap::new(),
        body,
        None,
    );
    headers([("x-signature", sig), ("x-event-name", event.to_owned())])
}

/// Typeform: `Typeform-Signature: sha256=…`.
pub fn typeform(secret: &str, body: &[u8]) -> HeaderMap {
    let sig = signature(&HmacScheme::typeform(secret), &HeaderMap::new(), body, None);
    headers([("typeform-signature", format!("sha256={sig}"))])
}

/// GitLab's classic webhook: `X-Gitlab-Token` (the token itself), `Idempotency-Key` and
/// `X-Gitlab-Event`.
pub fn gitlab(token: &str, idempotency_key: &str, event: &str) -> HeaderMap {
    headers([
        ("x-gitlab-token", gitlab_token::sign(token.as_bytes())),
        ("idempotency-key", idempotency_key.to_owned()),
        ("x-gitlab-event", event.to_owned()),
    ])
}

/// Twilio, form-encoded: `X-Twilio-Signature` over `public_url` and `params`, and the form
/// `Content-Type`. Send `params` form-encoded as the body, to the route whose policy has the
/// same public URL.
pub fn twilio_form(auth_token: &str, public_url: &str, params: &[(&str, &str)]) -> HeaderMap {
    let sig = twilio::sign(auth_token.as_bytes(), public_url, params);
    headers([
        ("x-twilio-signature", sig),
        (
            "content-type",
            "application/x-www-form-urlencoded".to_owned(),
        ),
    ])
}

/// Twilio, JSON body: `X-Twilio-Signature` over `public_url` with the body's `bodySHA256`
/// appended, as Twilio signs JSON requests.
pub fn twilio_json(auth_token: &str, public_url: &str, body: &[u8]) -> HeaderMap {
    let url = twilio::json_url(public_url, body);
    headers([(
        "x-twilio-signature",
        twilio::sign(auth_token.as_bytes(), &url, &[]),
    )])
}

/// A Mailgun event body (JSON) carrying its signature: `signature.{timestamp,token,signature}`
/// and `event-data.event`.
pub fn mailgun(signing_key: &str, timestamp: u64, token: &str, event: &str) -> Vec<u8> {
    let ts = timestamp.to_string();
    let signature = mailgun::sign(signing_key.as_bytes(), &ts, token);
    serde_json::json!({
        "signature": {"timestamp": ts, "token": token, "signature": signature},
        "event-data": {"event": event},
    })
    .to_string()
    .into_bytes()
}

/// A Discord application's Ed25519 key pair, for tests (feature `asymmetric`).
///
/// # Example
///
/// ```
/// use webhook_monitor::{testing::DiscordKey, Policy};
///
/// let key = DiscordKey::from_seed([7; 32]);
/// let policy = Policy::discord(&key.public_key_hex()).unwrap();
/// let headers = key.sign(br#"{"type":1}"#, 1_700_000_000);
/// assert!(headers.contains_key("x-signature-ed25519"));
/// # let _ = policy;
/// ```
#[cfg(feature = "asymmetric")]
#[cfg_attr(docsrs, doc(cfg(feature = "asymmetric")))]
#[derive(Debug)]
pub struct DiscordKey(ed25519_dalek::SigningKey);

#[cfg(feature = "asymmetric")]
impl DiscordKey {
    /// The key pair of this 32-byte secret seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// The public key, hex-encoded as the Developer Portal shows it.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.0.verifying_key().to_bytes())
    }

    /// `X-Signature-Ed25519` and `X-Signature-Timestamp` for `body` at `timestamp`.
    pub fn sign(&self, body: &[u8], timestamp: u64) -> HeaderMap {
        let ts = timestamp.to_string();
        headers([
            (
                "x-signature-ed25519",
                crate::provider::discord::sign(&self.0, &ts, body),
            ),
            ("x-signature-timestamp", ts),
        ])
    }
}

/// A SendGrid Event Webhook's ECDSA P-256 key pair, for tests (feature `asymmetric`).
///
/// # Example
///
/// ```
/// use webhook_monitor::{testing::SendgridKey, Policy};
///
/// let key = SendgridKey::from_seed([7; 32]);
/// let policy = Policy::sendgrid(&key.public_key_base64_der()).unwrap();
/// let headers = key.sign(b"[]\r\n", 1_700_000_000);
/// assert!(headers.contains_key("x-twilio-email-event-webhook-signature"));
/// # let _ = policy;
/// ```
#[cfg(feature = "asymmetric")]
#[cfg_attr(docsrs, doc(cfg(feature = "asymmetric")))]
#[derive(Debug)]
pub struct SendgridKey(p256::ecdsa::SigningKey);

#[cfg(feature = "asymmetric")]
impl SendgridKey {
    /// The key pair of this 32-byte secret scalar.
    ///
    /// # Panics
    ///
    /// If `seed` is not a valid P-256 scalar (zero, or not below the group order); any seed with
    /// a first byte below `0xff` is valid.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(p256::ecdsa::SigningKey::from_slice(&seed).expect("a valid P-256 scalar"))
    }

    /// The public key as SendGrid's API returns it: base64 of the DER SubjectPublicKeyInfo.
    pub fn public_key_base64_der(&self) -> String {
        use base64::Engine;
        // The SubjectPublicKeyInfo header for an uncompressed P-256 point, then the point.
        const SPKI_HEADER: [u8; 26] = [
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        let mut der = SPKI_HEADER.to_vec();
        der.extend_from_slice(self.0.verifying_key().to_sec1_point(false).as_bytes());
        base64::engine::general_purpose::STANDARD.encode(der)
    }

    /// The signature and timestamp headers for `body` at `timestamp`.
    pub fn sign(&self, body: &[u8], timestamp: u64) -> HeaderMap {
        let ts = timestamp.to_string();
        headers([
            (
                "x-twilio-email-event-webhook-signature",
                crate::provider::sendgrid::sign(&self.0, &ts, body),
            ),
            ("x-twilio-email-event-webhook-timestamp", ts),
        ])
    }
}

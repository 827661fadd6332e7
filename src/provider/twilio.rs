//! Twilio: [`TwilioScheme`] and [`Policy::twilio`].
//!
//! Twilio signs the URL it calls, not the body: `X-Twilio-Signature` is the base64 HMAC-SHA1,
//! keyed with the account's Auth Token, of the full public URL followed by each POST parameter as
//! `name` + `value`, sorted by name (the values of a repeated name sorted too). A JSON body is
//! signed through its hash instead: Twilio adds `bodySHA256=<hex sha256(body)>` to the URL's query
//! and signs that URL with no parameters.

use std::{borrow::Cow, fmt, time::Duration};

use base64::{DecodeSliceError, Engine};
use hmac::{Hmac, KeyInit, Mac};
use http::{header::CONTENT_TYPE, HeaderMap, HeaderName};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use super::{
    secret::BASE64_SIGNATURE, Scheme, Secrets, SignatureError, SignedRequest, Source, Verified,
};
use crate::Policy;

/// The signature header.
const SIGNATURE: HeaderName = HeaderName::from_static("x-twilio-signature");

/// The query parameter that carries the hash of a JSON body.
const BODY_HASH: &str = "bodySHA256";

/// Twilio's `X-Twilio-Signature`, checked against the public URL Twilio calls.
///
/// The URL must be the one configured in Twilio, query string included, exactly as configured:
/// a proxy in front of the server may rewrite the scheme, host or port the server sees, so the
/// request's own URI is not used. Like Twilio's SDKs, the check also accepts the URL with its
/// port removed or with the default port (`:443` for https, `:80` for http) added, since Twilio
/// is inconsistent there. A URL fragment (Twilio's `#rt=…` connection overrides) is never sent in
/// a request, so the URL is also tried without it.
///
/// What is signed depends on the body:
///
/// * `application/x-www-form-urlencoded`: the URL, then the decoded parameters (`+` is a space,
///   `%XX` a byte), sorted by name and then by value.
/// * any other non-empty body (Twilio sends JSON): the URL with `bodySHA256=<hex sha256(body)>`
///   appended to its query, with no parameters, and the hash must be the body's. If the
///   configured URL already carries `bodySHA256`, it is used as is. A `bodySHA256` in the
///   request's query must match the body too.
/// * an empty body: the URL alone.
///
/// Webhooks configured as `GET` are not supported: Twilio then adds its parameters to the URL's
/// query, and signs that longer URL. Use `POST`, Twilio's default.
///
/// Several Auth Tokens may be given during a rotation; the one that matched is reported by index.
/// There is no timestamp, and `I-Twilio-Idempotency-Token` is not signed: replays are caught by
/// dedupe on the body only (see [`Policy::twilio`]).
///
/// Requests Twilio signs with HMAC-SHA256 under a Webhook Rule
/// (`X-Twilio-Webhooks-Signature-Settings`) are not supported.
///
/// # Example
///
/// ```
/// use webhook_monitor::{provider::TwilioScheme, Policy};
///
/// let scheme = TwilioScheme::new(["new-auth-token", "old-auth-token"], "https://example.com/sms");
/// let policy = Policy::custom("sms").provider("twilio").verify_with(scheme);
/// # let _ = policy;
/// ```
#[derive(Clone)]
pub struct TwilioScheme {
    /// The URLs to try, in order (as configured first).
    urls: Vec<SignedUrl>,
    /// The `bodySHA256` value of the configured URL's query, if it has one.
    pinned_hash: Option<String>,
    /// One keyed HMAC state per Auth Token.
    keys: Vec<(usize, Hmac<Sha1>)>,
}

impl TwilioScheme {
    /// Checks signatures made with any of `auth_tokens` for the public URL `public_url` (scheme,
    /// host, path and query, as configured in Twilio).
    pub fn new(auth_tokens: impl Into<Secrets>, public_url: impl Into<String>) -> Self {
        let url = public_url.into();
        let (head, fragment) = match url.find('#') {
            Some(i) => url.split_at(i),
            None => (url.as_str(), ""),
        };
        let mut urls: Vec<SignedUrl> = Vec::new();
        for fragment in [fragment, ""] {
            for head in port_variants(head) {
                let candidate = SignedUrl {
                    head,
                    fragment: fragment.to_owned(),
                };
                if !urls.contains(&candidate) {
                    urls.push(candidate);
                }
            }
        }
        let pinned_hash = head
            .split_once('?')
            .and_then(|(_, query)| query_param(query, BODY_HASH))
            .map(Cow::into_owned);
        let keys = auth_tokens
            .into()
            .usable()
            .map(|(index, key)| {
                let mac =
                    Hmac::<Sha1>::new_from_slice(key).expect("HMAC accepts keys of any length");
                (index, mac)
            })
            .collect();
        Self {
            urls,
            pinned_hash,
            keys,
        }
    }

    /// What is signed after the URL, for this request.
    fn content<'a>(&self, request: &SignedRequest<'a>) -> Result<Content<'a>, SignatureError> {
        let body = request.body();
        if is_form(request.headers()) {
            return Ok(Content::Params(parse_form(body)?));
        }
        let sent_hash = request
            .uri()
            .query()
            .and_then(|query| query_param(query, BODY_HASH));
        if body.is_empty() && sent_hash.is_none() && self.pinned_hash.is_none() {
            return Ok(Content::Params(Vec::new()));
        }
        let mut hash = [0u8; 64];
        hex::encode_to_slice(Sha256::digest(body).as_slice(), &mut hash)
            .map_err(|_| SignatureError::Malformed("body hash"))?;
        let matches = |claimed: &str| claimed.as_bytes().eq_ignore_ascii_case(&hash);
        if sent_hash.is_some_and(|sent| !matches(&sent)) {
            return Err(SignatureError::Mismatch);
        }
        match &self.pinned_hash {
            Some(pinned) if matches(pinned) => Ok(Content::Params(Vec::new())),
            Some(_) => Err(SignatureError::Mismatch),
            None => Ok(Content::BodyHash(hash)),
        }
    }
}

impl Scheme for TwilioScheme {
    fn verify(&self, request: &SignedRequest<'_>) -> Result<Verified, SignatureError> {
        if self.keys.is_empty() {
            return Err(SignatureError::NoSecret);
        }
        let value = request.header(&SIGNATURE)?.trim();
        if value.is_empty() {
            return Err(SignatureError::Malformed("empty signature"));
        }
        let mut buf = [0u8; 32];
        let signature = match BASE64_SIGNATURE.decode_slice(value, &mut buf) {
            Ok(n) => buf.get(..n).unwrap_or_default(),
            // Longer than any HMAC-SHA1: it cannot match.
            Err(DecodeSliceError::OutputSliceTooSmall) => return Err(SignatureError::Mismatch),
            Err(DecodeSliceError::DecodeError(_)) => {
                return Err(SignatureError::Malformed("signature is not base64"))
            }
        };
        let content = self.content(request)?;
        for (index, key) in &self.keys {
            for url in &self.urls {
                let mut mac = key.clone();
                url.feed(&mut mac, &content);
                if bool::from(signature.ct_eq(mac.finalize().into_bytes().as_slice())) {
                    return Ok(Verified::by_secret(*index));
                }
            }
        }
        Err(SignatureError::Mismatch)
    }
}

impl fmt::Debug for TwilioScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry basic-auth credentials (`https://user:pass@…`): never printed.
        f.debug_struct("TwilioScheme")
            .field("urls", &self.urls.len())
            .field("pinned_body_hash", &self.pinned_hash.is_some())
            .field("secrets", &self.keys.len())
            .finish()
    }
}

impl Policy {
    /// Twilio (Programmable Messaging, Voice, status callbacks…): verifies `X-Twilio-Signature`
    /// with [`TwilioScheme`] against `public_url`, the webhook URL exactly as configured in
    /// Twilio, query string included.
    ///
    /// Fills in: provider `"twilio"`, the delivery id from `I-Twilio-Idempotency-Token`, and a
    /// 15 s timeout budget (Twilio's default read and total timeouts; a URL's `#rt=`/`#tt=`
    /// overrides change it, and so should [`timeout_budget`](Self::timeout_budget)). Twilio
    /// signs no timestamp, and not the idempotency token: with [`dedupe`](Self::dedupe), the
    /// route dedupes by the body's SHA-256, so a replayed request is a duplicate whatever its
    /// token. Reports carry the token all the same.
    ///
    /// # Example
    ///
    /// ```
    /// use webhook_monitor::Policy;
    ///
    /// let policy = Policy::twilio("twilio-auth-token", "https://example.com/twilio/sms?tenant=7");
    /// assert_eq!(policy.name(), "twilio");
    /// ```
    pub fn twilio(auth_token: impl Into<Secrets>, public_url: impl Into<String>) -> Self {
        Self::custom("twilio")
            .provider("twilio")
            .verify_with(TwilioScheme::new(auth_token, public_url))
            .delivery_id(Source::header("i-twilio-idempotency-token"))
            .timeout_budget(Duration::from_secs(15))
    }
}

/// The signature Twilio sends for `params` posted to `url` (pass no params for a JSON body and
/// the URL from [`json_url`]).
pub(crate) fn sign(secret: &[u8], url: &str, params: &[(&str, &str)]) -> String {
    let mut params = params.to_vec();
    params.sort_unstable();
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(url.as_bytes());
    for (name, value) in params {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// `url` with `bodySHA256=<hex sha256(body)>` added to its query, as Twilio signs a JSON body.
pub(crate) fn json_url(url: &str, body: &[u8]) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    let hash = hex::encode(Sha256::digest(body));
    format!("{url}{separator}{BODY_HASH}={hash}")
}

/// One URL to try: the part before the fragment, and the fragment (`#…`, or empty).
#[derive(Clone, PartialEq, Eq)]
struct SignedUrl {
    head: String,
    fragment: String,
}

impl SignedUrl {
    /// Feeds the URL and the signed content to `mac`.
    fn feed(&self, mac: &mut Hmac<Sha1>, content: &Content<'_>) {
        mac.update(self.head.as_bytes());
        match content {
            Content::BodyHash(hash) => {
                mac.update(if self.head.contains('?') { b"&" } else { b"?" });
                mac.update(BODY_HASH.as_bytes());
                mac.update(b"=");
                mac.update(hash);
                mac.update(self.fragment.as_bytes());
            }
            Content::Params(params) => {
                mac.update(self.fragment.as_bytes());
                for (name, value) in params {
                    mac.update(name.as_bytes());
                    mac.update(value.as_bytes());
                }
            }
        }
    }
}

/// A decoded form parameter: name and value.
type Param<'a> = (Cow<'a, str>, Cow<'a, str>);

/// What follows the URL in the signed string.
enum Content<'a> {
    /// Sorted form parameters (none for a URL signed alone).
    Params(Vec<Param<'a>>),
    /// The body's hex SHA-256, appended to the URL's query as `bodySHA256`.
    BodyHash([u8; 64]),
}

/// `url` as is, without its port, and with the scheme's default port when it has none: the URLs
/// Twilio's SDKs try. Only the part before any fragment is expected.
///
/// Split by hand rather than with the `url` crate: Twilio signs the URL byte for byte as
/// configured, and `url` normalizes what it parses (it drops a default port, lowercases the
/// host, adds a `/` path, re-encodes), which would change the signed string.
fn port_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_owned()];
    let Some(scheme_end) = url.find("://") else {
        return out;
    };
    let authority_start = scheme_end + 3;
    let rest = url.get(authority_start..).unwrap_or_default();
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = rest.get(..authority_len).unwrap_or_default();
    // After any `user:password@`.
    let host_start = authority.rfind('@').map_or(0, |i| i + 1);
    let host_port = authority.get(host_start..).unwrap_or_default();
    let host_len = if host_port.starts_with('[') {
        // An IPv6 literal: the port, if any, follows the `]`.
        match host_port.find(']') {
            Some(i) => i + 1,
            None => return out,
        }
    } else {
        host_port.find(':').unwrap_or(host_port.len())
    };
    let port = host_port.get(host_len..).unwrap_or_default();
    if !port.is_empty() && !port.starts_with(':') {
        return out;
    }
    let split = authority_start + host_start + host_len;
    let (before, after) = url.split_at(split);
    let after_port = after.get(port.len()..).unwrap_or_default();
    let other = if port.is_empty() {
        let scheme = url.get(..scheme_end).unwrap_or_default();
        let default = if scheme.eq_ignore_ascii_case("https") {
            ":443"
        } else if scheme.eq_ignore_ascii_case("http") {
            ":80"
        } else {
            return out;
        };
        format!("{before}{default}{after}")
    } else {
        format!("{before}{after_port}")
    };
    if !out.contains(&other) {
        out.push(other);
    }
    out
}

/// Whether the body is `application/x-www-form-urlencoded` (parameters after `;` ignored).
fn is_form(headers: &HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).is_some_and(|value| {
        let bytes = value.as_bytes();
        let essence = bytes
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        essence.eq_ignore_ascii_case(b"application/x-www-form-urlencoded")
    })
}

/// The most form parameters a request may carry. Twilio sends a few dozen (a message with ten
/// media attachments has about 50); anything past this is refused before any MAC is computed,
/// so that what an unsigned sender makes us decode and sort stays bounded.
const MAX_FORM_PARAMS: usize = 1000;

/// The parameters of an `application/x-www-form-urlencoded` body, decoded and sorted by name,
/// then by value. Empty pieces (`a=1&&b=2`) are skipped; a piece without `=` is a name with an
/// empty value.
///
/// Decoded by hand rather than with `form_urlencoded`, which decodes each piece in two passes
/// (`+`, then `%XX`) with two allocations: verifying a 24-parameter Twilio form cost 98,807
/// instructions with it and 71,126 with [`form_decode`] (callgrind, `verify-twilio`).
///
/// # Errors
///
/// `Malformed` past [`MAX_FORM_PARAMS`] parameters: the rest is not looked at.
fn parse_form(body: &[u8]) -> Result<Vec<Param<'_>>, SignatureError> {
    let mut params = Vec::new();
    for piece in body.split(|&b| b == b'&').filter(|piece| !piece.is_empty()) {
        if params.len() == MAX_FORM_PARAMS {
            return Err(SignatureError::Malformed(
                "the form has more than 1000 parameters",
            ));
        }
        params.push(match piece.iter().position(|&b| b == b'=') {
            Some(i) => {
                let (name, value) = piece.split_at(i);
                (
                    form_decode(name),
                    form_decode(value.get(1..).unwrap_or_default()),
                )
            }
            None => (form_decode(piece), Cow::Borrowed("")),
        });
    }
    params.sort_unstable();
    Ok(params)
}

/// The decoded value of `name` in a query string, for its first occurrence.
fn query_param<'q>(query: &'q str, name: &str) -> Option<Cow<'q, str>> {
    query.split('&').find_map(|piece| {
        let (key, value) = piece.split_once('=').unwrap_or((piece, ""));
        (form_decode(key.as_bytes()) == name).then(|| form_decode(value.as_bytes()))
    })
}

/// Decodes one form-encoded name or value, as browsers, Python and Twilio's SDKs do: `+` is a
/// space, `%XX` is the byte `XX`, a `%` not followed by two hex digits stays as it is, and bytes
/// that are not UTF-8 become U+FFFD. Borrows when there is nothing to decode.
fn form_decode(input: &[u8]) -> Cow<'_, str> {
    if !input.iter().any(|&b| b == b'+' || b == b'%') {
        return String::from_utf8_lossy(input);
    }
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        match byte {
            b'+' => out.push(b' '),
            b'%' => match tail {
                [high, low, after @ ..] => match (hex_value(*high), hex_value(*low)) {
                    (Some(high), Some(low)) => {
                        out.push(high << 4 | low);
                        rest = after;
                    }
                    _ => out.push(b'%'),
                },
                _ => out.push(b'%'),
            },
            other => out.push(other),
        }
    }
    Cow::Owned(match String::from_utf8(out) {
        Ok(text) => text,
        Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
    })
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use http::{HeaderValue, Uri};

    use super::*;

    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const FORM: &str = "application/x-www-form-urlencoded";
    /// The A7 parameters, form-encoded in another order than the sorted one.
    const BODY: &str = "To=%2B18005551212&From=%2B14158675309&Digits=1234\
                        &CallSid=CA1234567890ABCDE&Caller=%2B14158675309";
    const SIGNATURE_A7: &str = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
    const JSON_BODY: &str = r#"{"property": "value", "boolean": true}"#;
    const JSON_HASH: &str = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";

    fn check(
        scheme: &TwilioScheme,
        content_type: Option<&str>,
        uri: &str,
        body: &str,
        signature: Option<&str>,
    ) -> Result<Verified, SignatureError> {
        let mut headers = HeaderMap::new();
        if let Some(ct) = content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        }
        if let Some(sig) = signature {
            headers.insert(SIGNATURE, HeaderValue::from_str(sig).unwrap());
        }
        let uri: Uri = uri.parse().unwrap();
        let request = SignedRequest::new(&headers, &uri, body.as_bytes(), SystemTime::now());
        scheme.verify(&request)
    }

    fn form(
        scheme: &TwilioScheme,
        body: &str,
        signature: &str,
    ) -> Result<Verified, SignatureError> {
        check(
            scheme,
            Some(FORM),
            "/myapp.php?foo=1&bar=2",
            body,
            Some(signature),
        )
    }

    #[test]
    fn a7_form_params() {
        let scheme = TwilioScheme::new(TOKEN, URL);
        assert_eq!(
            form(&scheme, BODY, SIGNATURE_A7),
            Ok(Verified::by_secret(0))
        );
        let with_charset = check(
            &scheme,
            Some("Application/X-WWW-Form-Urlencoded; charset=utf-8"),
            "/",
            BODY,
            Some(SIGNATURE_A7),
        );
        assert_eq!(with_charset, Ok(Verified::by_secret(0)));
    }

    #[test]
    fn a7_duplicate_params() {
        let scheme = TwilioScheme::new(TOKEN, URL);
        let body = "Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234";
        let signature = "IK+Dwps556ElfBT0I3Rgjkr1wJU=";
        assert_eq!(form(&scheme, body, signature), Ok(Verified::by_secret(0)));
        let reordered = "Digits=1234&SidAccount=AC123&Digits=5678&Sid=CA123";
        assert_eq!(
            form(&scheme, reordered, signature),
            Ok(Verified::by_secret(0))
        );
        // Dropping one of the repeated values changes the signed string.
        let dropped = "Sid=CA123&SidAccount=AC123&Digits=1234";
        assert_eq!(
            form(&scheme, dropped, signature),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a7_port_variants() {
        let https_443 = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        let http_80 = "http://mycompany.com:80/myapp.php?foo=1&bar=2";
        let http_bare = "http://mycompany.com/myapp.php?foo=1&bar=2";
        let http_1234 = "http://mycompany.com:1234/myapp.php?foo=1&bar=2";
        let https_1234 = "https://mycompany.com:1234/myapp.php?foo=1&bar=2";
        let with_443 = "kvajT1Ptam85bY51eRf/AJRuM3w=";
        let with_80 = "0ZXoZLH/DfblKGATFgpif+LLRf4=";
        let with_1234 = "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=";
        let cases = [
            // Each URL with its own vector.
            (https_443, with_443),
            (http_80, with_80),
            (http_1234, with_1234),
            // Twilio signed without the port, the configured URL has it.
            (https_443, SIGNATURE_A7),
            (https_1234, SIGNATURE_A7),
            // Twilio signed with the default port, the configured URL has none.
            (URL, with_443),
            (http_bare, with_80),
        ];
        for (url, signature) in cases {
            let scheme = TwilioScheme::new(TOKEN, url);
            assert_eq!(
                form(&scheme, BODY, signature),
                Ok(Verified::by_secret(0)),
                "{url} {signature}"
            );
        }
        // A non-default port is never added, and the scheme's default port is not another's.
        for (url, signature) in [(URL, with_1234), (URL, with_80), (http_bare, with_443)] {
            let scheme = TwilioScheme::new(TOKEN, url);
            assert_eq!(
                form(&scheme, BODY, signature),
                Err(SignatureError::Mismatch),
                "{url} {signature}"
            );
        }
    }

    #[test]
    fn port_variants_keep_userinfo_and_ipv6() {
        assert_eq!(
            port_variants("https://u:p@h.example:8443/x?a=b"),
            [
                "https://u:p@h.example:8443/x?a=b",
                "https://u:p@h.example/x?a=b"
            ]
        );
        assert_eq!(
            port_variants("https://u:p@h.example?a=b"),
            ["https://u:p@h.example?a=b", "https://u:p@h.example:443?a=b"]
        );
        assert_eq!(
            port_variants("http://[::1]:8080/x"),
            ["http://[::1]:8080/x", "http://[::1]/x"]
        );
        assert_eq!(
            port_variants("http://[::1]"),
            ["http://[::1]", "http://[::1]:80"]
        );
        for odd in [
            "",
            "no-scheme",
            "ftp://h/x",
            "https://[::1/x",
            "https://[::1]x/",
        ] {
            assert_eq!(port_variants(odd), [odd], "{odd}");
        }
    }

    #[test]
    fn a7_json_body_sha256() {
        let signature = "a9nBmqA0ju/hNViExpshrM61xv4=";
        let pinned = format!("{URL}&bodySHA256={JSON_HASH}");
        let request_uri = format!("/myapp.php?foo=1&bar=2&bodySHA256={JSON_HASH}");
        // The configured URL carries the hash, as in the SDK test.
        let scheme = TwilioScheme::new(TOKEN, pinned.as_str());
        let json = Some("application/json");
        let ok = Ok(Verified::by_secret(0));
        assert_eq!(check(&scheme, json, "/", JSON_BODY, Some(signature)), ok);
        assert_eq!(
            check(&scheme, json, &request_uri, JSON_BODY, Some(signature)),
            ok
        );
        // The configured URL is the webhook's: the hash is appended per request.
        let scheme = TwilioScheme::new(TOKEN, URL);
        assert_eq!(
            check(&scheme, json, &request_uri, JSON_BODY, Some(signature)),
            ok
        );
        assert_eq!(check(&scheme, None, "/", JSON_BODY, Some(signature)), ok);
        assert_eq!(json_url(URL, JSON_BODY.as_bytes()), pinned);
    }

    #[test]
    fn json_body_with_wrong_hash() {
        let signature = "a9nBmqA0ju/hNViExpshrM61xv4=";
        let json = Some("application/json");
        let tampered = JSON_BODY.replace("value", "valuf");
        let pinned = TwilioScheme::new(TOKEN, format!("{URL}&bodySHA256={JSON_HASH}"));
        let appended = TwilioScheme::new(TOKEN, URL);
        for scheme in [&pinned, &appended] {
            assert_eq!(
                check(scheme, json, "/", &tampered, Some(signature)),
                Err(SignatureError::Mismatch)
            );
        }
        // The request's query names another hash than the body's.
        let wrong_query = format!("/myapp.php?foo=1&bar=2&bodySHA256={}", "0".repeat(64));
        assert_eq!(
            check(&appended, json, &wrong_query, JSON_BODY, Some(signature)),
            Err(SignatureError::Mismatch)
        );
        // The hash in the query signs the body: a form signature does not cover a JSON body.
        assert_eq!(
            check(&appended, json, "/", JSON_BODY, Some(SIGNATURE_A7)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn get_request_signs_the_url_alone() {
        let url = "https://example.com/voice?From=%2B1555";
        let signature = sign(TOKEN.as_bytes(), url, &[]);
        let scheme = TwilioScheme::new(TOKEN, url);
        assert_eq!(
            check(&scheme, None, "/voice?From=%2B1555", "", Some(&signature)),
            Ok(Verified::by_secret(0))
        );
        // A body the scheme cannot see as params is covered by its hash, never ignored.
        assert_eq!(
            check(&scheme, Some("text/plain"), "/", "extra", Some(&signature)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn fragment_is_tried_without() {
        let url = "https://example.com/sms?x=1#rt=5000&rc=2";
        let scheme = TwilioScheme::new(TOKEN, url);
        let params = [("Body", "hi")];
        for signed in [url, "https://example.com/sms?x=1"] {
            let signature = sign(TOKEN.as_bytes(), signed, &params);
            assert_eq!(
                form(&scheme, "Body=hi", &signature),
                Ok(Verified::by_secret(0))
            );
        }
        // JSON: the hash is appended to the query of the URL without its fragment.
        let signature = sign(
            TOKEN.as_bytes(),
            &json_url("https://example.com/sms?x=1", b"{}"),
            &[],
        );
        assert_eq!(
            check(
                &scheme,
                Some("application/json"),
                "/",
                "{}",
                Some(&signature)
            ),
            Ok(Verified::by_secret(0))
        );
    }

    #[test]
    fn plus_and_percent_encoded_values() {
        let scheme = TwilioScheme::new(TOKEN, URL);
        let params = [
            ("Body", "Hello world +1 100% café"),
            ("From", "+14158675309"),
        ];
        let signature = sign(TOKEN.as_bytes(), URL, &params);
        let body = "Body=Hello+world+%2B1+100%25+caf%C3%A9&From=%2b14158675309";
        assert_eq!(form(&scheme, body, &signature), Ok(Verified::by_secret(0)));
        // `+` is a space, not a plus: a raw `+` in the phone number changes the value.
        let raw_plus = "Body=Hello+world+%2B1+100%25+caf%C3%A9&From=+14158675309";
        assert_eq!(
            form(&scheme, raw_plus, &signature),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn form_decoding() {
        assert_eq!(form_decode(b"plain"), "plain");
        assert!(matches!(form_decode(b"plain"), Cow::Borrowed(_)));
        assert_eq!(form_decode(b"a+b%20c"), "a b c");
        assert_eq!(form_decode(b"%2B%2b"), "++");
        assert_eq!(form_decode(b"%41%4a%6A"), "AJj");
        // Incomplete or invalid escapes stay as they are.
        assert_eq!(form_decode(b"100%"), "100%");
        assert_eq!(form_decode(b"%4"), "%4");
        assert_eq!(form_decode(b"%zz%2"), "%zz%2");
        assert_eq!(form_decode(b"%%41"), "%A");
        // Multi-byte UTF-8, decoded or raw; invalid bytes become U+FFFD.
        assert_eq!(form_decode(b"caf%C3%A9"), "café");
        assert_eq!(form_decode("café".as_bytes()), "café");
        assert_eq!(form_decode(b"%FF+x"), "\u{FFFD} x");
        assert_eq!(form_decode(b"\xff"), "\u{FFFD}");
        assert_eq!(form_decode(b""), "");
    }

    #[test]
    fn a_form_past_the_parameter_cap_is_refused_before_the_mac() {
        let at_cap = b"a&".repeat(MAX_FORM_PARAMS);
        assert_eq!(parse_form(&at_cap).unwrap().len(), MAX_FORM_PARAMS);
        let flood = b"a&".repeat(512 * 1024); // 1 MiB, 524,288 parameters
        assert_eq!(
            parse_form(&flood),
            Err(SignatureError::Malformed(
                "the form has more than 1000 parameters"
            ))
        );
        // Through the scheme: a well-formed signature that would not match anyway.
        let scheme = TwilioScheme::new(TOKEN, URL);
        let flood = String::from_utf8(flood).unwrap();
        assert!(matches!(
            form(&scheme, &flood, SIGNATURE_A7),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn form_parsing() {
        let params = parse_form(b"b=2&a=&&c&a=1&=x&d=%3D=").unwrap();
        let pairs: Vec<(&str, &str)> = params.iter().map(|(n, v)| (&**n, &**v)).collect();
        assert_eq!(
            pairs,
            [
                ("", "x"),
                ("a", ""),
                ("a", "1"),
                ("b", "2"),
                ("c", ""),
                ("d", "==")
            ]
        );
        assert!(parse_form(b"").unwrap().is_empty());
        assert_eq!(
            query_param("a=1&bodySHA256=ab&bodySHA256=cd", BODY_HASH).as_deref(),
            Some("ab")
        );
        assert_eq!(
            query_param("body%53HA256=ab", BODY_HASH).as_deref(),
            Some("ab")
        );
        assert_eq!(query_param("a=1", BODY_HASH), None);
    }

    #[test]
    fn tampering_is_rejected() {
        let scheme = TwilioScheme::new(TOKEN, URL);
        // One byte of the body.
        let body = BODY.replace("1234&", "1235&");
        assert_eq!(
            form(&scheme, &body, SIGNATURE_A7),
            Err(SignatureError::Mismatch)
        );
        // One byte of the signature.
        let flipped = SIGNATURE_A7.replacen('R', "S", 1);
        assert_eq!(form(&scheme, BODY, &flipped), Err(SignatureError::Mismatch));
        // Truncated: still base64, too short.
        let truncated = SIGNATURE_A7.get(..24).unwrap();
        assert_eq!(
            form(&scheme, BODY, truncated),
            Err(SignatureError::Mismatch)
        );
        // Missing padding is accepted, as the SDKs' decoders do.
        let unpadded = SIGNATURE_A7.trim_end_matches('=');
        assert_eq!(form(&scheme, BODY, unpadded), Ok(Verified::by_secret(0)));
        // Not base64, empty, too long.
        assert!(matches!(
            form(&scheme, BODY, "not base64!"),
            Err(SignatureError::Malformed(_))
        ));
        assert!(matches!(
            form(&scheme, BODY, " "),
            Err(SignatureError::Malformed(_))
        ));
        let long = "A".repeat(200);
        assert_eq!(form(&scheme, BODY, &long), Err(SignatureError::Mismatch));
        // Missing header.
        assert_eq!(
            check(&scheme, Some(FORM), "/", BODY, None),
            Err(SignatureError::MissingHeader(SIGNATURE))
        );
        // Another URL, another token.
        let elsewhere = TwilioScheme::new(TOKEN, "https://mycompany.com/other.php?foo=1&bar=2");
        assert_eq!(
            form(&elsewhere, BODY, SIGNATURE_A7),
            Err(SignatureError::Mismatch)
        );
        let other = sign(b"another-token", URL, &[]);
        assert_eq!(form(&scheme, "", &other), Err(SignatureError::Mismatch));
    }

    #[test]
    fn rotation_reports_the_matching_token() {
        let scheme = TwilioScheme::new(["new-token", TOKEN], URL);
        assert_eq!(
            form(&scheme, BODY, SIGNATURE_A7),
            Ok(Verified::by_secret(1))
        );
        let none = TwilioScheme::new(Secrets::default(), URL);
        assert_eq!(
            form(&none, BODY, SIGNATURE_A7),
            Err(SignatureError::NoSecret)
        );
    }

    #[test]
    fn garbage_never_panics() {
        let scheme = TwilioScheme::new(TOKEN, URL);
        let bodies: [&[u8]; 5] = [b"%", b"%%%%", b"=&=&=", b"\xff\xfe=\x00%C3", b"a=%C3%28"];
        for body in bodies {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(FORM));
            headers.insert(SIGNATURE, HeaderValue::from_static(SIGNATURE_A7));
            let uri = Uri::from_static("/?bodySHA256=%zz");
            let request = SignedRequest::new(&headers, &uri, body, SystemTime::now());
            assert_eq!(scheme.verify(&request), Err(SignatureError::Mismatch));
        }
        let weird = TwilioScheme::new(TOKEN, "https://:::@@[]:x/?%");
        assert_eq!(
            form(&weird, BODY, SIGNATURE_A7),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn debug_hides_secrets_and_url() {
        let scheme = TwilioScheme::new(["tok-one", "tok-two"], "https://user:pw@example.com/x");
        let shown = format!("{scheme:?}");
        assert!(!shown.contains("tok-") && !shown.contains("pw"), "{shown}");
        assert!(shown.contains("secrets: 2"), "{shown}");
    }

    #[test]
    fn preset() {
        let policy = Policy::twilio(TOKEN, URL);
        assert_eq!(policy.provider.as_deref(), Some("twilio"));
        assert_eq!(policy.timeout_budget, Some(Duration::from_secs(15)));
        assert_eq!(
            policy.delivery_id,
            Some(Source::header("i-twilio-idempotency-token"))
        );
        assert!(policy.scheme.is_some());
    }
}

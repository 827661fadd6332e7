//! Twilio's URL and form handling, against an independent signer: the configured URL's port
//! variants, fragments and `bodySHA256`, and the form's decoding and sorting, with
//! `form_urlencoded` as the reference decoder.
//!
//! Input: a first line holding the URL configured in Twilio, then the body (a form, or JSON
//! when it starts with `{`). The request is signed as Twilio signs it, by code that shares
//! nothing with the scheme. Oracle: the scheme verifies it (a form of more than 1000
//! parameters is refused as malformed instead), and refuses it once the signature is changed.
#![no_main]

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderValue, Uri};
use libfuzzer_sys::fuzz_target;
use sha2::Digest;
use webhook_monitor::provider::{Scheme, SignatureError, SignedRequest, TwilioScheme};

fuzz_target!(|data: &[u8]| {
    let (url, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => return,
    };
    let Ok(url) = std::str::from_utf8(url) else {
        return;
    };
    // What Twilio calls: the URL without its fragment (never sent in a request).
    let signed_url = url.split('#').next().unwrap_or_default();
    let json = body.first() == Some(&b'{');
    let mut headers = HeaderMap::new();
    let mac = if json {
        let hash = hex::encode(sha2::Sha256::digest(body));
        let separator = if signed_url.contains('?') { '&' } else { '?' };
        if url.contains("bodySHA256") {
            return; // a URL pinning its own hash: covered by the unit tests
        }
        sign(&format!("{signed_url}{separator}bodySHA256={hash}"), &[])
    } else {
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let mut params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
        params.sort_unstable();
        if params.len() > 1000 {
            let scheme = TwilioScheme::new("auth-token", url);
            headers.insert("x-twilio-signature", HeaderValue::from_static("AAAA"));
            let uri = Uri::from_static("/");
            let request = SignedRequest::new(&headers, &uri, body, std::time::UNIX_EPOCH);
            assert!(matches!(
                scheme.verify(&request),
                Err(SignatureError::Malformed(_))
            ));
            return;
        }
        sign(signed_url, &params)
    };
    let uri = Uri::from_static("/");
    let scheme = TwilioScheme::new("auth-token", url);
    headers.insert(
        "x-twilio-signature",
        HeaderValue::from_str(&mac).expect("base64"),
    );
    let request = SignedRequest::new(&headers, &uri, body, std::time::UNIX_EPOCH);
    assert_eq!(
        scheme.verify(&request).map(|v| v.secret_index()),
        Ok(0),
        "{url:?}"
    );

    let mut forged = mac.into_bytes();
    forged[0] = if forged[0] == b'A' { b'B' } else { b'A' };
    headers.insert(
        "x-twilio-signature",
        HeaderValue::from_bytes(&forged).expect("ascii"),
    );
    let request = SignedRequest::new(&headers, &uri, body, std::time::UNIX_EPOCH);
    assert!(scheme.verify(&request).is_err());
});

/// base64(HMAC-SHA1("auth-token", url + sorted name/value pairs)).
fn sign(url: &str, params: &[(String, String)]) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"auth-token").expect("any key");
    mac.update(url.as_bytes());
    for (name, value) in params {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

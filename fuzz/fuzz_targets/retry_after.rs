//! `Retry-After` from an HTTP backend (delay-seconds or an HTTP date), as the HTTP sinks read it.
//!
//! Oracles: no panic; a number of seconds (in a visible-ASCII value, as HTTP allows) is read as
//! exactly that many seconds.
#![no_main]

use std::time::Duration;

use http::{header::RETRY_AFTER, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use webhook_monitor::fuzzing;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(RETRY_AFTER, value);
    let wait = fuzzing::retry_after(&headers);
    let visible = data
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b));
    let text = std::str::from_utf8(data).ok().filter(|_| visible);
    if let Some(secs) = text.and_then(|s| s.trim().parse::<u64>().ok()) {
        assert_eq!(wait, Some(Duration::from_secs(secs)));
    }
});

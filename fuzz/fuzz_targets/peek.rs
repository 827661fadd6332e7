//! The JSON peek that reads delivery ids, event types and timestamps from bodies, against
//! `serde_json::Value` on the same bytes.
//!
//! Input: a first line of up to four `;`-separated JSON pointers (missing ones are the root,
//! `""`), then the body. Oracles: no panic; where serde_json accepts the body, peek accepts it
//! too and finds at every pointer the very scalar `serde_json::Value::pointer` finds there (the
//! last of duplicate keys; array indices as RFC 6901 has them).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use webhook_monitor::fuzzing;
use webhook_monitor_fuzz::settings_and_body;

fuzz_target!(|data: &[u8]| {
    let (spec, body) = settings_and_body(data);
    let Ok(spec) = std::str::from_utf8(spec) else {
        return;
    };
    let mut pointers: Vec<&str> = spec.split(';').take(4).collect();
    pointers.resize(4, "");
    let pointers: [&str; 4] = std::array::from_fn(|i| pointers[i]);
    let Some(got) = fuzzing::peek(body, pointers) else {
        return; // not a valid pointer
    };
    if let Ok(root) = serde_json::from_slice::<Value>(body) {
        let got = got.unwrap_or_else(|e| panic!("serde_json accepts the body, peek: {e}"));
        for (pointer, found) in pointers.iter().zip(got) {
            assert_eq!(found, reference(&root, pointer), "at {pointer:?}");
        }
    }
});

/// The scalar at `pointer` in serde_json's document: `None` when absent, an object or an array.
fn reference(root: &Value, pointer: &str) -> Option<Value> {
    match root.pointer(pointer)? {
        Value::Array(_) | Value::Object(_) => None,
        scalar => Some(scalar.clone()),
    }
}

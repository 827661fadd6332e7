//! The JSON peek that reads delivery ids, event types and timestamps from bodies, against
//! `serde_json::Value` on the same bytes.
//!
//! Input: a first line of up to four `;`-separated paths of `.`-separated keys, then the body.
//! Oracles: no panic; where serde_json accepts the body, peek accepts it too and finds at every
//! path the very scalar `serde_json::Value` holds there (the last of duplicate keys).
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
    let mut paths: Vec<Vec<&str>> = spec
        .split(';')
        .take(4)
        .map(|p| {
            if p.is_empty() {
                Vec::new()
            } else {
                p.split('.').collect()
            }
        })
        .collect();
    paths.resize(4, Vec::new());
    let paths: [&[&str]; 4] = std::array::from_fn(|i| paths[i].as_slice());
    let got = fuzzing::peek(body, paths);
    if let Ok(root) = serde_json::from_slice::<Value>(body) {
        let got = got.unwrap_or_else(|e| panic!("serde_json accepts the body, peek: {e}"));
        for (path, found) in paths.iter().zip(got) {
            assert_eq!(found, reference(&root, path), "at {path:?}");
        }
    }
});

/// The scalar at `path` in serde_json's document: `None` when absent, an object or an array.
fn reference(root: &Value, path: &[&str]) -> Option<Value> {
    let mut value = root;
    for key in path {
        value = value.as_object()?.get(*key)?;
    }
    match value {
        Value::Array(_) | Value::Object(_) => None,
        scalar => Some(scalar.clone()),
    }
}

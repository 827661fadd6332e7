//! Payload checks on arbitrary bodies, against `serde_json::Value` on the same bytes.
//!
//! Input: a first line of space-separated checks (`json`, `max:<n>`, `depth:<n>`,
//! `require:<pointer>`, `notnull:<pointer>`), then the body. Each check is evaluated alone.
//! Oracles: no panic; where serde_json accepts the body (nested no deeper than the checks
//! allow), `json` passes, `require` fails exactly when `Value::pointer` finds nothing, and
//! `notnull` fails exactly when it finds nothing or `null`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use webhook_monitor::{
    payload::{Check, PayloadViolation},
    PayloadChecks,
};
use webhook_monitor_fuzz::settings_and_body;

fuzz_target!(|data: &[u8]| {
    let (spec, body) = settings_and_body(data);
    let Ok(spec) = std::str::from_utf8(spec) else {
        return;
    };
    let parsed = serde_json::from_slice::<Value>(body)
        .ok()
        .filter(|_| depth(body) <= PayloadChecks::MAX_DEPTH);
    for item in spec.split(' ').take(8) {
        let (kind, arg) = item.split_once(':').unwrap_or((item, ""));
        let check = match kind {
            "json" => Check::json(),
            "max" => Check::max_bytes(arg.parse().unwrap_or(0)),
            "depth" => Check::max_depth(arg.parse().unwrap_or(0)),
            "require" if valid_pointer(arg) => Check::require(arg),
            "notnull" if valid_pointer(arg) => Check::not_null(arg),
            _ => continue,
        };
        let violation = PayloadChecks::new()
            .reject(check)
            .evaluate(body)
            .map(|(v, _)| v);
        let Some(root) = &parsed else {
            continue;
        };
        match kind {
            "json" => assert_eq!(violation, None),
            "require" => {
                let missing = root.pointer(arg).is_none();
                assert_eq!(
                    matches!(violation, Some(PayloadViolation::Missing { .. })),
                    missing,
                    "{arg}"
                );
            }
            "notnull" => {
                let null = root.pointer(arg).is_none_or(Value::is_null);
                assert_eq!(
                    matches!(violation, Some(PayloadViolation::Null { .. })),
                    null,
                    "{arg}"
                );
            }
            _ => {}
        }
    }
});

/// A pointer `Check::require` takes (it panics on others, which are bugs in code, not input).
fn valid_pointer(p: &str) -> bool {
    (p.is_empty() || p.starts_with('/'))
        && p.split('/').count() <= PayloadChecks::MAX_DEPTH + 1
        && p.match_indices('~')
            .all(|(i, _)| matches!(p.as_bytes().get(i + 1), Some(b'0' | b'1')))
}

/// How deep arrays and objects nest, counting brackets outside strings.
fn depth(body: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

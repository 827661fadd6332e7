//! Every preset's scheme on arbitrary requests: header parsing, timestamp parsing, decoding and
//! the MAC, then what the scheme says it covers and the dedupe key it leads to.
//!
//! Oracles: no panic; a verified request names the route's only secret (index 0); a dedupe key
//! always starts with the route's name. With `SEEDS_MUST_VERIFY` set (`scripts/fuzz.sh` runs
//! the seeds so first), a request naming a preset must verify: the seeds start past the MAC.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use webhook_monitor::{fuzzing, provider::SignedRequest};
use webhook_monitor_fuzz::{parse, select, sources};

fuzz_target!(|data: &[u8]| {
    let Some(input) = parse(data) else {
        return;
    };
    let request = SignedRequest::new(&input.headers, &input.uri, input.body, input.now);
    for (name, policy) in select(input.preset) {
        let verified = fuzzing::verify(policy, &request).expect("every preset has a scheme");
        static SEEDS_MUST_VERIFY: OnceLock<bool> = OnceLock::new();
        if *SEEDS_MUST_VERIFY.get_or_init(|| std::env::var_os("SEEDS_MUST_VERIFY").is_some()) {
            assert!(
                *name != input.preset || verified.is_ok(),
                "{name}: {verified:?}"
            );
        }
        match &verified {
            Ok(v) => assert_eq!(v.secret_index(), 0, "{name}: one secret"),
            Err(e) => {
                let _ = (e.check(), e.to_string());
            }
        }
        for source in &sources() {
            let _ = fuzzing::covers(policy, source, &input.headers);
        }
        let id = std::str::from_utf8(input.body)
            .ok()
            .filter(|s| s.len() < 64);
        let key = fuzzing::delivery_key(policy, id, &input.headers, input.body);
        assert!(key.starts_with(policy.name()), "{name}: {key}");
    }
});

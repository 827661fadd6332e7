//! A fixed amount of work per variant, for `valgrind --tool=callgrind` (instruction counts are
//! deterministic where wall-clock time is not). `scripts/instructions.sh` runs it twice per
//! variant and divides the difference by the difference in requests, which cancels setup.
//!
//! Usage: `instructions <variant> <requests>`; variants as in `benches/support/mod.rs`.

mod support;

use std::time::Duration;

fn main() {
    let mut args = std::env::args().skip(1);
    // `cargo bench` runs every bench target with `--bench`: do nothing then.
    let Some(variant) = args.next().filter(|a| !a.starts_with('-')) else {
        return;
    };
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let rt = support::runtime();
    let body = support::payload();
    rt.block_on(async {
        let (router, guard) = support::build(&variant);
        support::drive(&router, &body, n).await;
        drop(router);
        if let Some(guard) = guard {
            guard
                .shutdown(Duration::from_secs(5))
                .await
                .expect("drained");
        }
    });
}

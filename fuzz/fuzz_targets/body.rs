//! The layer's body reader on arbitrary frame sequences: data of any sizes, trailers, errors,
//! waits, and size hints that lie, under any limit, with or without a deadline.
//!
//! Oracles: no panic, no hang; a body read whole is exactly its data frames, within the limit;
//! "too large" comes exactly when the data crosses the limit, "read error" exactly at an error
//! frame, and "timed out" only with a deadline, each with the bytes read so far.
#![no_main]

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::OnceLock,
    task::{Context, Poll},
    time::Duration,
};

use arbitrary::Arbitrary;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use libfuzzer_sys::fuzz_target;
use webhook_monitor::fuzzing::{self, BodyFailure};

#[derive(Debug, Arbitrary)]
enum Step {
    Data(Vec<u8>),
    Trailers,
    Error,
    /// Not ready this many times (waking itself), then the next step.
    Wait(u8),
}

#[derive(Debug, Arbitrary)]
struct Input {
    steps: Vec<Step>,
    hint_lower: u64,
    hint_upper: Option<u64>,
    limit: u16,
    /// A deadline this many milliseconds away (the clock is paused: it passes only while the
    /// reader waits on nothing).
    deadline_ms: Option<u8>,
}

struct Scripted {
    steps: VecDeque<Step>,
    hint: SizeHint,
}

impl Body for Scripted {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        loop {
            return Poll::Ready(match self.steps.pop_front() {
                None => None,
                Some(Step::Data(d)) => Some(Ok(Frame::data(Bytes::from(d)))),
                Some(Step::Trailers) => Some(Ok(Frame::trailers(http::HeaderMap::new()))),
                Some(Step::Error) => Some(Err(std::io::Error::other("reset"))),
                Some(Step::Wait(0)) => continue,
                Some(Step::Wait(n)) => {
                    self.steps.push_front(Step::Wait(n - 1));
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            });
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.hint.clone()
    }
}

fuzz_target!(|input: Input| {
    let mut hint = SizeHint::new();
    hint.set_lower(input.hint_lower);
    if let Some(upper) = input.hint_upper.filter(|&u| u >= input.hint_lower) {
        hint.set_upper(upper);
    }
    // What the body holds, and where it first crosses the limit or fails.
    let limit = usize::from(input.limit);
    let mut expected: Result<Vec<u8>, BodyFailure> = Ok(Vec::new());
    for step in &input.steps {
        let Ok(so_far) = &mut expected else { break };
        match step {
            Step::Data(d) => {
                so_far.extend_from_slice(d);
                if so_far.len() > limit {
                    expected = Err(BodyFailure::TooLarge(so_far.len() as u64));
                }
            }
            Step::Error => expected = Err(BodyFailure::Read(so_far.len() as u64)),
            Step::Trailers | Step::Wait(_) => {}
        }
    }
    let body = Scripted {
        steps: input.steps.into(),
        hint,
    };
    let timeout = input.deadline_ms.map(|ms| Duration::from_millis(ms.into()));
    let got = runtime().block_on(fuzzing::read_body(body, limit, timeout));
    match got {
        Err(BodyFailure::TimedOut(read)) => {
            assert!(timeout.is_some(), "timed out without a deadline");
            let total = match &expected {
                Ok(all) => all.len() as u64,
                Err(BodyFailure::TooLarge(n) | BodyFailure::Read(n)) => *n,
                Err(BodyFailure::TimedOut(_)) => unreachable!(),
            };
            assert!(read <= total);
        }
        got => assert_eq!(got.map(|b| b.to_vec()), expected),
    }
});

/// One runtime for every input (building one per input cost most of the time), its clock
/// paused: a deadline passes only when the reader waits on nothing but the timer.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime")
    })
}

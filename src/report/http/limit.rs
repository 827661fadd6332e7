//! The rate limit of the alert sinks (Slack, Discord, Teams, Twilio): at most one message per
//! interval; alerts in between are dropped, counted, and noted in the next message.

use std::{
    sync::{Mutex, PoisonError},
    time::Duration,
};

use tokio::time::Instant;

use super::transport::Backend;

/// At most one message per `min_interval`.
pub(super) struct Limiter {
    min_interval: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    last_message: Option<Instant>,
    /// Alerts dropped since the last message.
    dropped: u64,
}

impl Limiter {
    pub(super) fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            state: Mutex::default(),
        }
    }

    pub(super) fn min_interval(&self) -> Duration {
        self.min_interval
    }

    /// Takes one alert that would become `messages` messages (one per recipient), counting them
    /// as accepted by `backend`. Returns how many alerts were dropped since the previous message
    /// when the alert may go out now; `None` when it comes too soon, and is dropped (its
    /// messages counted as dropped by `backend`).
    pub(super) fn admit(&self, backend: &Backend, messages: u64) -> Option<u64> {
        backend.accepted(messages);
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state
            .last_message
            .is_some_and(|at| now - at < self.min_interval)
        {
            state.dropped += 1;
            backend.dropped(messages);
            return None;
        }
        state.last_message = Some(now);
        Some(std::mem::take(&mut state.dropped))
    }
}

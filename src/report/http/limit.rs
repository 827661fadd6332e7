//! The rate limit of the alert sinks (Slack, Discord, Teams, Twilio): at most one message per
//! interval; alerts in between are dropped, counted, and noted in the next message. And
//! [`ChatWebhook`], what the chat sinks share: one JSON message per alert to a webhook URL.

use std::{
    sync::{Mutex, PoisonError},
    time::Duration,
};

use tokio::time::Instant;

use reqwest::Url;

use super::{
    parse_url,
    transport::{Backend, Call},
    HttpSinkError, HttpTransport,
};
use crate::{
    report::{Report, SinkError, SinkHealth},
    watch::Alert,
};

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

/// A chat channel's incoming webhook (Slack, Discord, Teams): one JSON message per alert, posted
/// to the webhook's URL under the rate limit; other reports are ignored, and not counted. The
/// URL is a credential: the sinks' `Debug` leaves it out.
pub(super) struct ChatWebhook {
    backend: Backend,
    url: Url,
    limiter: Limiter,
}

impl ChatWebhook {
    /// Posting to `webhook_url`, counted as the backend `name`.
    pub(super) fn new(
        transport: &HttpTransport,
        name: &'static str,
        webhook_url: &str,
        min_interval: Duration,
    ) -> Result<Self, HttpSinkError> {
        Ok(Self {
            backend: transport.backend(name),
            url: parse_url(webhook_url)?,
            limiter: Limiter::new(min_interval),
        })
    }

    pub(super) fn set_min_interval(&mut self, interval: Duration) {
        self.limiter = Limiter::new(interval);
    }

    pub(super) fn min_interval(&self) -> Duration {
        self.limiter.min_interval()
    }

    /// Posts `message(alert, dropped before it)` for each alert the rate limit lets through.
    pub(super) async fn send(
        &self,
        batch: &[Report],
        message: impl Fn(&Alert, u64) -> String,
    ) -> Result<(), SinkError> {
        let mut messages = Vec::new();
        for alert in batch.iter().filter_map(Report::as_alert) {
            let Some(dropped) = self.limiter.admit(&self.backend, 1) else {
                continue;
            };
            let call = Call::post(
                self.url.clone(),
                "application/json",
                message(alert, dropped),
            );
            messages.push((call, self.backend.pending(1)));
        }
        self.backend
            .deliver_all(messages)
            .await
            .map_err(SinkError::new)
    }

    pub(super) fn health(&self) -> Vec<SinkHealth> {
        vec![self.backend.health()]
    }
}

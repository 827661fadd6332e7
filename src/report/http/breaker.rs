//! The circuit breaker of one sink: opened by failed attempts in a row, probed by one request
//! at a time once its wait is over, closed by any answer.

use std::{
    sync::{Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use tokio::{sync::Notify, time::Instant};

use super::{
    retry::{RetryPolicy, FOREVER},
    HttpSinkError,
};
use crate::report::SinkHealth;

/// One sink's breaker, shared by its requests in flight.
#[derive(Default)]
pub(super) struct Breaker {
    state: Mutex<State>,
    /// Signalled when the breaker closes, opens again, or its probe is abandoned.
    changed: Notify,
}

#[derive(Default)]
struct State {
    consecutive_failures: u32,
    /// Open until then; at that time one request may probe.
    open_until: Option<Instant>,
    probing: bool,
    latency: Option<Duration>,
}

/// What the breaker lets a request do now.
enum Gate {
    Go,
    Probe,
    /// Wait until the breaker may be probed, or (`None`) for the probe in flight.
    Wait(Option<Instant>),
}

impl State {
    fn gate(&mut self, now: Instant) -> Gate {
        match self.open_until {
            None => Gate::Go,
            Some(_) if self.probing => Gate::Wait(None),
            Some(at) if now >= at => {
                self.probing = true;
                Gate::Probe
            }
            Some(at) => Gate::Wait(Some(at)),
        }
    }
}

impl Breaker {
    /// Waits until the breaker lets a request through; `Ok(true)` for the probe.
    pub(super) async fn admit(&self, deadline: Instant) -> Result<bool, HttpSinkError> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before reading the state, so that no change is missed.
            changed.as_mut().enable();
            let now = Instant::now();
            let wake = match self.lock().gate(now) {
                Gate::Go => return Ok(false),
                Gate::Probe => return Ok(true),
                Gate::Wait(Some(at)) if at <= deadline => at,
                Gate::Wait(None) if now < deadline => deadline,
                Gate::Wait(_) => return Err(HttpSinkError::Down),
            };
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Arms a [`ProbeGuard`] for the request [`admit`](Self::admit) let through, when it is
    /// the probe.
    pub(super) fn probe_guard(&self, probe: bool) -> ProbeGuard<'_> {
        ProbeGuard(probe.then_some(self))
    }

    /// The backend answered: it is up.
    pub(super) fn answered(&self, latency: Option<Duration>) {
        let mut breaker = self.lock();
        breaker.consecutive_failures = 0;
        breaker.open_until = None;
        breaker.probing = false;
        if latency.is_some() {
            breaker.latency = latency;
        }
        drop(breaker);
        self.changed.notify_waiters();
    }

    /// An attempt failed: opens the breaker after too many in a row, or when it was the probe.
    pub(super) fn failed(&self, probe: bool, policy: &RetryPolicy) {
        let mut breaker = self.lock();
        breaker.consecutive_failures = breaker.consecutive_failures.saturating_add(1);
        if probe || breaker.consecutive_failures >= policy.open_after {
            breaker.open_until = Some(Instant::now() + policy.probe_after.min(FOREVER));
            breaker.probing = false;
            drop(breaker);
            self.changed.notify_waiters();
        }
    }

    /// Fills in the breaker's fields of `health`.
    pub(super) fn health(&self, health: &mut SinkHealth) {
        let breaker = self.lock();
        health.consecutive_failures = breaker.consecutive_failures;
        health.down = breaker.open_until.is_some();
        health.latency = breaker.latency;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Frees the breaker's probe slot if the probing request is dropped before its attempt ends.
pub(super) struct ProbeGuard<'a>(Option<&'a Breaker>);

impl ProbeGuard<'_> {
    /// The attempt ended: its outcome updates the breaker.
    pub(super) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if let Some(breaker) = self.0 {
            breaker.lock().probing = false;
            breaker.changed.notify_waiters();
        }
    }
}

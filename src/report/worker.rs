//! The reporter's background worker: drains the queue in batches into the sink.

use std::{
    sync::{atomic::Ordering::Relaxed, Arc},
    time::Duration,
};

use tokio::{
    sync::{mpsc, oneshot},
    time::{Instant, MissedTickBehavior},
};

use super::{reporter::Shared, HealthReport, Report, Sink};
use crate::{policy::Clock, watch::Watchers};

pub(super) struct Config {
    pub(super) batch_size: usize,
    pub(super) linger: Duration,
    pub(super) sink_timeout: Duration,
    pub(super) health_interval: Option<Duration>,
    pub(super) clock: Clock,
    /// Whether the watchers run (not in a [`Fanout`](super::Fanout)'s per-sink workers).
    pub(super) watch: bool,
}

/// How often the watchers are evaluated without traffic (for silence, drops, windows closing).
const TICK: Duration = Duration::from_secs(60);

/// Sink failures are logged at most once per this interval.
const WARN_INTERVAL: Duration = Duration::from_secs(10);

pub(super) async fn run<K: Sink>(
    sink: K,
    mut rx: mpsc::Receiver<Report>,
    mut stop: oneshot::Receiver<()>,
    done: oneshot::Sender<()>,
    shared: Arc<Shared>,
    config: Config,
) {
    let mut batch = Vec::with_capacity(config.batch_size);
    let mut warned_at: Option<Instant> = None;
    let mut stopping = false;
    let mut watchers = config
        .watch
        .then(|| Watchers::new(Arc::clone(&config.clock)));
    let mut tick = watchers.is_some().then(|| interval(TICK));
    let mut health = config.health_interval.map(interval);
    while !stopping {
        // Idle: wait for the first report (the channel wakes us), the watchers' tick or the stop
        // signal.
        tokio::select! {
            biased;
            _ = &mut stop => break,
            () = next(&mut tick) => {
                watch(watchers.as_mut(), &shared, &mut batch);
                if !batch.is_empty() {
                    deliver(&sink, &mut batch, &shared, &config, &mut warned_at).await;
                }
                continue;
            }
            () = next(&mut health) => {
                let reporter = shared.stats(rx.len());
                let sinks = sink.health();
                batch.push(Report::Health(HealthReport { at: (config.clock)(), reporter, sinks }));
                deliver(&sink, &mut batch, &shared, &config, &mut warned_at).await;
                continue;
            }
            n = rx.recv_many(&mut batch, config.batch_size) => if n == 0 { break },
        }
        // Linger so that a batch gathers, unless the rest of a batch is already queued.
        let room = config.batch_size - batch.len();
        if room > 0 && !config.linger.is_zero() {
            shared.wake_at.store(room, Relaxed);
            let deadline = Instant::now() + config.linger;
            // Checked after publishing `room`: a sender that queued before could not wake us.
            // A wake-up with the batch still short is a stale permit (left by a crossing while
            // we were not lingering): linger on.
            while rx.len() < room {
                tokio::select! {
                    biased;
                    _ = &mut stop => {
                        stopping = true;
                        break;
                    }
                    () = shared.notify.notified() => {}
                    () = tokio::time::sleep_until(deadline) => break,
                }
            }
        }
        if room > 0 && !rx.is_empty() {
            rx.recv_many(&mut batch, room).await;
        }
        watch(watchers.as_mut(), &shared, &mut batch);
        deliver(&sink, &mut batch, &shared, &config, &mut warned_at).await;
    }
    // Stop accepting, then send what is already queued.
    rx.close();
    while rx.recv_many(&mut batch, config.batch_size).await > 0 {
        watch(watchers.as_mut(), &shared, &mut batch);
        deliver(&sink, &mut batch, &shared, &config, &mut warned_at).await;
    }
    sink.close().await;
    let _ = done.send(());
}

/// A timer ticking every `period`, the first tick one period from now.
fn interval(period: Duration) -> tokio::time::Interval {
    let mut interval = tokio::time::interval_at(Instant::now() + period, period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

/// The next tick of an optional timer; never, without one.
async fn next(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Feeds the batch's reports to the watchers and appends the alerts they raise. An empty batch
/// (the tick) evaluates every route; otherwise only those with news are.
fn watch(watchers: Option<&mut Watchers>, shared: &Shared, batch: &mut Vec<Report>) {
    let Some(watchers) = watchers else {
        return;
    };
    if shared.registered.swap(false, Relaxed) {
        let pending = std::mem::take(
            &mut *shared
                .registrations
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        pending.into_iter().for_each(|r| watchers.register(r));
    }
    let now = Instant::now();
    watchers.observe(batch, now);
    let before = batch.len();
    watchers.evaluate(now, before == 0, batch);
    let raised = (batch.len() - before) as u64;
    shared.counters.alerts.fetch_add(raised, Relaxed);
}

async fn deliver<K: Sink>(
    sink: &K,
    batch: &mut Vec<Report>,
    shared: &Shared,
    config: &Config,
    warned_at: &mut Option<Instant>,
) {
    let n = batch.len() as u64;
    let counters = &shared.counters;
    let result = tokio::time::timeout(config.sink_timeout, sink.send(batch)).await;
    counters.batches.fetch_add(1, Relaxed);
    match result {
        Ok(Ok(())) => {
            counters.sent.fetch_add(n, Relaxed);
        }
        failure => {
            counters.failed.fetch_add(n, Relaxed);
            let now = Instant::now();
            if warned_at.is_none_or(|at| now.duration_since(at) >= WARN_INTERVAL) {
                *warned_at = Some(now);
                match failure {
                    Ok(Err(error)) => tracing::warn!(
                        target: "webhook_monitor::report",
                        %error, reports = n, "sink failed; reports lost"
                    ),
                    _ => tracing::warn!(
                        target: "webhook_monitor::report",
                        timeout = ?config.sink_timeout, reports = n, "sink timed out; reports lost"
                    ),
                }
            }
        }
    }
    batch.clear();
}

//! Per-minute counts of one route, and the traffic watchers on them: spike, drop, all rejected,
//! retry storm and failure rate.

use std::collections::VecDeque;

use super::{engine::Reading, Watch};

/// The minutes kept: an hour, plus the current one.
const KEPT: usize = 61;
/// The minutes a spike or a drop is compared with.
const TRAILING: usize = 10;

/// What one minute saw.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Minute {
    /// Every delivery.
    pub(super) total: u32,
    /// Rejected by the layer (signature, size, payload checks…).
    pub(super) rejected: u32,
    /// Reached the handler.
    pub(super) handled: u32,
    /// Reached the handler and failed.
    pub(super) failed: u32,
    /// Flagged by the retry tracking.
    pub(super) retried: u32,
}

/// The last [`KEPT`] minutes, the newest at the back.
#[derive(Debug)]
pub(super) struct Minutes {
    ring: VecDeque<Minute>,
    /// The index of the newest minute (minutes since the watchers started).
    current: u64,
    /// Full minutes seen since the route was first watched.
    history: u64,
}

impl Minutes {
    pub(super) fn new(minute: u64) -> Self {
        Self {
            ring: VecDeque::from([Minute::default()]),
            current: minute,
            history: 0,
        }
    }

    /// Moves the newest minute to `minute`, with empty minutes for those that went by.
    pub(super) fn advance(&mut self, minute: u64) {
        let gone = minute.saturating_sub(self.current);
        for _ in 0..gone.min(KEPT as u64) {
            if self.ring.len() == KEPT {
                self.ring.pop_front();
            }
            self.ring.push_back(Minute::default());
        }
        self.current = self.current.max(minute);
        self.history += gone;
    }

    /// Minutes read back from elsewhere (a fleet's rollups): `ring` holds the minutes up to
    /// `current`, oldest first (at most [`KEPT`] are kept), and `history` full minutes have
    /// gone by since the route's first.
    #[cfg(feature = "redis")]
    pub(super) fn from_counts(
        ring: impl IntoIterator<Item = Minute>,
        current: u64,
        history: u64,
    ) -> Self {
        let mut ring: VecDeque<Minute> = ring.into_iter().collect();
        while ring.len() > KEPT {
            ring.pop_front();
        }
        if ring.is_empty() {
            ring.push_back(Minute::default());
        }
        Self {
            ring,
            current,
            history,
        }
    }

    pub(super) fn current_mut(&mut self) -> &mut Minute {
        let last = self.ring.len() - 1;
        &mut self.ring[last]
    }

    /// The minute `back` minutes ago (0: the current one); empty before the history starts.
    fn get(&self, back: usize) -> Minute {
        self.ring
            .len()
            .checked_sub(back + 1)
            .map_or_else(Minute::default, |i| self.ring[i])
    }

    /// Sums `f` over the last `minutes` minutes, the current one included.
    fn sum(&self, minutes: usize, f: impl Fn(&Minute) -> u32) -> u32 {
        (0..minutes).map(|back| f(&self.get(back))).sum()
    }

    /// The mean count of the [`TRAILING`] full minutes before the one `back` minutes ago, if
    /// the history reaches that far.
    fn trailing_mean(&self, back: usize) -> Option<f64> {
        if self.history < (back + TRAILING) as u64 {
            return None;
        }
        let sum: u32 = (back + 1..=back + TRAILING)
            .map(|b| self.get(b).total)
            .sum();
        Some(f64::from(sum) / TRAILING as f64)
    }

    /// The spike watcher: the current minute, or the last full one, against the minutes before.
    pub(super) fn spike(&self, w: &Watch) -> Option<Reading> {
        let is_spike = |&(count, mean): &(u32, f64)| {
            count > w.spike_floor && f64::from(count) > w.spike_multiple * mean
        };
        let current = (self.get(0).total, self.trailing_mean(0)?);
        let last = self.trailing_mean(1).map(|mean| (self.get(1).total, mean));
        let spike = [Some(current), last].into_iter().flatten().find(is_spike);
        let (count, mean) = spike.unwrap_or(current);
        let figures = [("per_minute", count.into()), ("trailing_mean", mean.into())];
        Some(Reading::new(spike.is_some(), figures))
    }

    /// The drop watcher: the last full minute and the current one empty, after a busy spell.
    pub(super) fn drop_to_zero(&self, w: &Watch) -> Option<Reading> {
        let mean = self.trailing_mean(1)?;
        let count = self.get(1).total + self.get(0).total;
        let on = count == 0 && mean > w.drop_mean;
        Some(Reading::new(
            on,
            [("per_minute", count.into()), ("trailing_mean", mean.into())],
        ))
    }

    /// Deliveries arrive, none gets through. Too few deliveries to tell, none of them through,
    /// hold the state: only a delivery that gets through resolves it.
    pub(super) fn all_rejected(&self, w: &Watch) -> Option<Reading> {
        let total = self.sum(w.rejected_minutes, |m| m.total);
        let rejected = self.sum(w.rejected_minutes, |m| m.rejected);
        if rejected == total && total < w.rejected_min {
            return None;
        }
        Some(Reading::new(
            rejected == total,
            [
                ("deliveries", total.into()),
                ("rejected", rejected.into()),
                ("window_minutes", (w.rejected_minutes as u64).into()),
            ],
        ))
    }

    /// Many deliveries flagged by the retry tracking.
    pub(super) fn retry_storm(&self, w: &Watch) -> Reading {
        let retried = self.sum(w.retry_minutes, |m| m.retried);
        let total = self.sum(w.retry_minutes, |m| m.total);
        Reading::new(
            retried >= w.retry_min,
            [
                ("retried", retried.into()),
                ("deliveries", total.into()),
                ("window_minutes", (w.retry_minutes as u64).into()),
            ],
        )
    }

    /// The share of handled deliveries that failed. Too few handled to tell hold the state: a
    /// failure rate does not clear because traffic stopped.
    pub(super) fn failure_rate(&self, w: &Watch) -> Option<Reading> {
        let handled = self.sum(w.failure_minutes, |m| m.handled);
        if handled < w.failure_min {
            return None;
        }
        let failed = self.sum(w.failure_minutes, |m| m.failed);
        let rate = f64::from(failed) / f64::from(handled);
        Some(Reading::new(
            rate >= w.failure_rate,
            [
                ("failure_rate", rate.into()),
                ("failed", failed.into()),
                ("handled", handled.into()),
                ("window_minutes", (w.failure_minutes as u64).into()),
            ],
        ))
    }
}

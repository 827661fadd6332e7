//! [`LatencyHistogram`]: latencies counted in fixed buckets, which merge by adding counts.

use std::time::Duration;

/// Latencies counted in fixed, log-linear buckets: eight per doubling, exact below 16 µs.
///
/// A bucket is 1/8 of its power of two wide, so a quantile read from it (the bucket's middle)
/// is within 6.25 % of the true value. The buckets are the same everywhere, so two histograms
/// merge exactly by adding their counts: one minute's with the next, one instance's with
/// another's (a Redis `HINCRBY` per bucket does it). Only buckets that were hit are stored, in
/// order: a minute whose latencies stay within a few milliseconds of each other costs a few
/// dozen bytes.
///
/// Why not the DDSketch the watchers use: its store grows in 1 KiB chunks, which, kept for
/// every minute of two days, would cost megabytes per route; and its bins cannot be merged by
/// a Redis command.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use webhook_monitor::history::LatencyHistogram;
///
/// let mut minute = LatencyHistogram::default();
/// for ms in 1..=100 {
///     minute.record(Duration::from_millis(ms));
/// }
/// let mut next = LatencyHistogram::default();
/// next.record(Duration::from_secs(9));
/// minute.merge(&next);
///
/// assert_eq!(minute.count(), 101);
/// let p50 = minute.quantile(0.5).unwrap();
/// assert!(p50.abs_diff(Duration::from_millis(51)) <= Duration::from_millis(51) / 16);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    /// `(bucket, count)`, ordered by bucket, counts above zero.
    buckets: Vec<(u16, u32)>,
}

/// Sub-buckets per doubling, as a power of two.
const SUB_BITS: u32 = 3;
const SUB: u64 = 1 << SUB_BITS;

impl LatencyHistogram {
    /// The bucket of a latency of `micros` microseconds: exact below 16, then eight per
    /// doubling.
    pub fn bucket(micros: u64) -> u16 {
        if micros < 2 * SUB {
            return micros as u16; // < 16
        }
        let exponent = u64::from(63 - micros.leading_zeros()); // ≥ 4
        let sub = (micros >> (exponent - u64::from(SUB_BITS))) & (SUB - 1);
        // At most 8 × 61 + 7 = 495 for u64::MAX.
        ((exponent - u64::from(SUB_BITS) + 1) * SUB + sub) as u16
    }

    /// The smallest and largest latency, in microseconds, that fall in `bucket`.
    pub fn bounds(bucket: u16) -> (u64, u64) {
        let bucket = u64::from(bucket);
        if bucket < 2 * SUB {
            return (bucket, bucket);
        }
        let shift = bucket / SUB - 1;
        let low = (SUB + bucket % SUB) << shift;
        (low, low + ((1 << shift) - 1))
    }

    /// Counts one latency.
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.add(Self::bucket(micros), 1);
    }

    /// Adds `count` to `bucket`.
    pub fn add(&mut self, bucket: u16, count: u32) {
        if count == 0 {
            return;
        }
        match self.buckets.binary_search_by_key(&bucket, |&(b, _)| b) {
            Ok(i) => self.buckets[i].1 = self.buckets[i].1.saturating_add(count),
            Err(i) => self.buckets.insert(i, (bucket, count)),
        }
    }

    /// Adds `other`'s counts to this one's.
    pub fn merge(&mut self, other: &Self) {
        if self.buckets.is_empty() {
            self.buckets.clone_from(&other.buckets);
            return;
        }
        for &(bucket, count) in &other.buckets {
            self.add(bucket, count);
        }
    }

    /// How many latencies were counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|&(_, c)| u64::from(c)).sum()
    }

    /// `true` when nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// The buckets that were hit, `(bucket, count)`, in order.
    pub fn buckets(&self) -> impl Iterator<Item = (u16, u32)> + '_ {
        self.buckets.iter().copied()
    }

    /// The latency at quantile `q` (0.5 for the median, 0.95…), by nearest rank: the middle of
    /// the bucket that holds it. `None` when nothing was counted.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        // Nearest rank, 1-based, clamped to the samples.
        let rank = ((q.clamp(0.0, 1.0) * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0;
        let bucket = self.buckets.iter().find_map(|&(bucket, c)| {
            seen += u64::from(c);
            (seen >= rank).then_some(bucket)
        })?;
        let (low, high) = Self::bounds(bucket);
        Some(Duration::from_micros(low + (high - low) / 2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn buckets_are_contiguous_and_ordered() {
        let mut expected_low = 0;
        for bucket in 0..=LatencyHistogram::bucket(u64::MAX) {
            let (low, high) = LatencyHistogram::bounds(bucket);
            assert_eq!(low, expected_low, "bucket {bucket}");
            assert!(high >= low);
            assert_eq!(LatencyHistogram::bucket(low), bucket);
            assert_eq!(LatencyHistogram::bucket(high), bucket);
            expected_low = high.wrapping_add(1);
        }
        assert_eq!(expected_low, 0, "the last bucket ends at u64::MAX");
        assert_eq!(LatencyHistogram::bucket(u64::MAX), 495);
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let mut h = LatencyHistogram::default();
        assert_eq!(h.quantile(0.5), None);
        for us in [3, 3, 7, 12] {
            h.record(Duration::from_micros(us));
        }
        // Exact buckets below 16 µs.
        assert_eq!(h.quantile(0.0), Some(Duration::from_micros(3)));
        assert_eq!(h.quantile(0.5), Some(Duration::from_micros(3)));
        assert_eq!(h.quantile(0.75), Some(Duration::from_micros(7)));
        assert_eq!(h.quantile(1.0), Some(Duration::from_micros(12)));
        assert_eq!(h.count(), 4);
    }

    proptest! {
        #[test]
        fn a_quantile_is_within_one_sixteenth(us in 1u64..(1 << 40)) {
            let mut h = LatencyHistogram::default();
            h.record(Duration::from_micros(us));
            let read = h.quantile(0.95).unwrap().as_micros() as u64;
            prop_assert!(read.abs_diff(us) * 16 <= us, "{us} read as {read}");
        }

        #[test]
        fn merging_is_adding(
            a in proptest::collection::vec(0u64..10_000_000, 0..50),
            b in proptest::collection::vec(0u64..10_000_000, 0..50),
        ) {
            let (mut left, mut right, mut both) = Default::default();
            let record = |h: &mut LatencyHistogram, us: &[u64]| {
                us.iter().for_each(|&us| h.record(Duration::from_micros(us)));
            };
            record(&mut left, &a);
            record(&mut right, &b);
            record(&mut both, &a);
            record(&mut both, &b);
            left.merge(&right);
            prop_assert_eq!(left, both);
        }
    }
}

//! A fixed-size log-linear latency histogram: constant memory, no allocation per sample,
//! about 3 % relative precision, mergeable across subscriber tasks.

/// Values below this are counted exactly (one bucket per nanosecond).
const EXACT_LIMIT: u64 = 1 << MANTISSA_BITS;
/// Each power of two above [`EXACT_LIMIT`] is split into this many buckets (2^5 = 32).
const MANTISSA_BITS: u32 = 5;
const SUB_BUCKETS: usize = 1 << MANTISSA_BITS;
/// Exponents 5..=63 each get [`SUB_BUCKETS`] buckets after the exact range.
const BUCKETS: usize = SUB_BUCKETS + (64 - MANTISSA_BITS as usize) * SUB_BUCKETS;

/// Latencies in nanoseconds.
#[derive(Clone)]
pub struct LatencyHistogram {
    counts: Box<[u64]>,
    total: u64,
    max: u64,
    sum: u128,
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("total", &self.total)
            .field("max", &self.max)
            .finish()
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            max: 0,
            sum: 0,
        }
    }
}

fn bucket_of(value: u64) -> usize {
    if value < EXACT_LIMIT {
        return value as usize;
    }
    let exponent = 63 - value.leading_zeros(); // >= MANTISSA_BITS
    let mantissa = (value >> (exponent - MANTISSA_BITS)) as usize & (SUB_BUCKETS - 1);
    SUB_BUCKETS + (exponent - MANTISSA_BITS) as usize * SUB_BUCKETS + mantissa
}

/// The largest value that falls into `bucket` (reporting the upper bound never flatters).
fn bucket_upper_bound(bucket: usize) -> u64 {
    if bucket < SUB_BUCKETS {
        return bucket as u64;
    }
    let shift = ((bucket - SUB_BUCKETS) / SUB_BUCKETS) as u32;
    let mantissa = ((bucket - SUB_BUCKETS) % SUB_BUCKETS) as u64;
    let lower = (SUB_BUCKETS as u64 + mantissa) << shift;
    lower.saturating_add((1u64 << shift) - 1)
}

impl LatencyHistogram {
    pub fn record(&mut self, nanos: u64) {
        self.counts[bucket_of(nanos)] += 1;
        self.total += 1;
        self.sum += u128::from(nanos);
        self.max = self.max.max(nanos);
    }

    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.total += other.total;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    #[cfg(test)]
    pub fn mean(&self) -> Option<u64> {
        (self.total > 0).then(|| (self.sum / u128::from(self.total)) as u64)
    }

    /// The value at `quantile` (0.0..=1.0): the smallest recorded bucket bound at or below which
    /// at least that share of samples lies, capped at the true maximum. `None` when empty.
    pub fn quantile(&self, quantile: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((quantile.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(bucket_upper_bound(bucket).min(self.max));
            }
        }
        Some(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_histogram_has_no_percentiles() {
        let histogram = LatencyHistogram::default();
        assert_eq!(histogram.quantile(0.5), None);
        assert_eq!(histogram.mean(), None);
    }

    #[test]
    fn small_values_are_exact() {
        let mut histogram = LatencyHistogram::default();
        for value in 0..20 {
            histogram.record(value);
        }
        assert_eq!(histogram.quantile(0.5), Some(9));
        assert_eq!(histogram.quantile(1.0), Some(19));
        assert_eq!(histogram.quantile(0.0), Some(0));
    }

    #[test]
    fn percentiles_of_uniform_microseconds_are_within_precision() {
        let mut histogram = LatencyHistogram::default();
        for micros in 1..=10_000u64 {
            histogram.record(micros * 1000);
        }
        let p50 = histogram.quantile(0.5).unwrap() as f64;
        let p99 = histogram.quantile(0.99).unwrap() as f64;
        assert!((p50 / 5_000_000.0 - 1.0).abs() < 0.04, "p50 {p50}");
        assert!((p99 / 9_900_000.0 - 1.0).abs() < 0.04, "p99 {p99}");
        assert_eq!(histogram.quantile(1.0), Some(10_000_000));
        assert_eq!(histogram.mean(), Some(5_000_500));
    }

    #[test]
    fn a_slow_tail_shows_in_p99_but_not_p50() {
        let mut histogram = LatencyHistogram::default();
        for _ in 0..980 {
            histogram.record(100_000);
        }
        for _ in 0..20 {
            histogram.record(50_000_000);
        }
        assert!(histogram.quantile(0.5).unwrap() <= 103_000);
        assert!(histogram.quantile(0.99).unwrap() >= 48_000_000);
    }

    #[test]
    fn merging_adds_counts_and_keeps_the_maximum() {
        let mut left = LatencyHistogram::default();
        let mut right = LatencyHistogram::default();
        left.record(1_000);
        right.record(2_000_000);
        right.record(3_000);
        left.merge(&right);
        assert_eq!(left.count(), 3);
        assert_eq!(left.max(), 2_000_000);
        assert_eq!(left.quantile(1.0), Some(2_000_000));
    }

    #[test]
    fn every_bucket_bound_maps_back_to_its_bucket() {
        for value in [31u64, 32, 33, 63, 64, 1_000, 123_456_789, u64::MAX] {
            let bucket = bucket_of(value);
            assert!(bucket < BUCKETS);
            assert!(bucket_upper_bound(bucket) >= value);
            assert_eq!(bucket_of(bucket_upper_bound(bucket)), bucket);
        }
    }
}

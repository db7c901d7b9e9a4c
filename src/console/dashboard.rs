//! The Status dashboard's state: the latest figures and a ring buffer of per-second rates.

use std::collections::VecDeque;

use crate::broker::StatsSnapshot;

/// Samples kept for the rate charts: five minutes at one per second.
pub const RATE_HISTORY: usize = 300;

#[derive(Debug, Clone, Default)]
pub struct Dashboard {
    pub latest: StatsSnapshot,
    /// Messages received per second, oldest first.
    pub rate_in: VecDeque<u64>,
    /// Messages sent per second, oldest first.
    pub rate_out: VecDeque<u64>,
    /// Whether any figures have arrived yet.
    pub has_data: bool,
}

impl Dashboard {
    pub fn record(&mut self, stats: StatsSnapshot) {
        push_bounded(
            &mut self.rate_in,
            stats.messages_received_per_sec.round() as u64,
        );
        push_bounded(
            &mut self.rate_out,
            stats.messages_sent_per_sec.round() as u64,
        );
        self.latest = stats;
        self.has_data = true;
    }

    /// The newest `width` samples, padded with zeros on the left so the chart fills from the
    /// right as time passes.
    pub fn window(samples: &VecDeque<u64>, width: usize) -> Vec<u64> {
        let skip = samples.len().saturating_sub(width);
        let mut out = vec![0; width.saturating_sub(samples.len())];
        out.extend(samples.iter().skip(skip));
        out
    }
}

fn push_bounded(ring: &mut VecDeque<u64>, value: u64) {
    if ring.len() == RATE_HISTORY {
        ring.pop_front();
    }
    ring.push_back(value);
}

/// Bytes as megabytes with two decimals, as the Status tab shows storage sizes.
pub fn megabytes(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_last_five_minutes() {
        let mut dashboard = Dashboard::default();
        for i in 0..(RATE_HISTORY as u64 + 10) {
            dashboard.record(StatsSnapshot {
                messages_received_per_sec: i as f64,
                ..Default::default()
            });
        }
        assert_eq!(dashboard.rate_in.len(), RATE_HISTORY);
        assert_eq!(dashboard.rate_in.front(), Some(&10));
        assert_eq!(dashboard.rate_in.back(), Some(&(RATE_HISTORY as u64 + 9)));
    }

    #[test]
    fn window_pads_on_the_left() {
        let samples: VecDeque<u64> = [1, 2, 3].into_iter().collect();
        assert_eq!(Dashboard::window(&samples, 5), vec![0, 0, 1, 2, 3]);
        assert_eq!(Dashboard::window(&samples, 2), vec![2, 3]);
    }

    #[test]
    fn megabytes_are_rounded() {
        assert_eq!(megabytes(0), "0.00 MB");
        assert_eq!(megabytes(1536 * 1024), "1.50 MB");
    }
}

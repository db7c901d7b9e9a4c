//! Loss, duplicate and order accounting from per-publisher sequence numbers.
//!
//! Every publisher numbers its messages 0, 1, 2, ...; each subscriber keeps one
//! [`SequenceTracker`] per publisher it hears from. After the run, the number of messages a
//! publisher sent is known, and `sent - unique` is what this subscriber lost from it.

/// Sequence numbers further than this beyond the highest one seen are not believed (they
/// would make the bitmap huge); they are counted as invalid instead.
const MAX_JUMP: u64 = 1 << 26;

/// What one subscriber received from one publisher.
#[derive(Debug, Clone, Default)]
pub struct SequenceTracker {
    /// One bit per sequence number seen.
    seen: Vec<u64>,
    highest: Option<u64>,
    unique: u64,
    duplicates: u64,
    out_of_order: u64,
    invalid: u64,
}

/// The totals of one or more trackers, checked against what was sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    pub expected: u64,
    pub unique: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    /// Payloads whose sequence number could not have been sent (corruption).
    pub invalid: u64,
}

impl DeliveryCounts {
    /// Expected deliveries that never arrived.
    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.unique)
    }

    pub fn add(&mut self, other: &DeliveryCounts) {
        self.expected += other.expected;
        self.unique += other.unique;
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
        self.invalid += other.invalid;
    }
}

impl SequenceTracker {
    pub fn record(&mut self, sequence: u64) {
        if sequence > self.highest.unwrap_or(0).saturating_add(MAX_JUMP) {
            self.invalid += 1;
            return;
        }
        let word = (sequence / 64) as usize;
        let bit = 1u64 << (sequence % 64);
        if word >= self.seen.len() {
            // Grow geometrically so a long run costs amortised O(1) per message.
            let wanted = (word + 1).max(self.seen.len() * 2);
            self.seen.resize(wanted, 0);
        }
        if self.seen[word] & bit != 0 {
            self.duplicates += 1;
            return;
        }
        self.seen[word] |= bit;
        self.unique += 1;
        match self.highest {
            Some(highest) if sequence < highest => self.out_of_order += 1,
            _ => self.highest = Some(sequence),
        }
    }

    /// The counts for a publisher that sent `sent` messages (sequence numbers `0..sent`).
    /// Sequence numbers at or above `sent` count as invalid.
    pub fn counts(&self, sent: u64) -> DeliveryCounts {
        let beyond_sent = (sent..self.highest.map_or(0, |highest| highest + 1))
            .filter(|sequence| self.contains(*sequence))
            .count() as u64;
        DeliveryCounts {
            expected: sent,
            unique: self.unique - beyond_sent,
            duplicates: self.duplicates,
            out_of_order: self.out_of_order,
            invalid: self.invalid + beyond_sent,
        }
    }

    fn contains(&self, sequence: u64) -> bool {
        let word = (sequence / 64) as usize;
        self.seen
            .get(word)
            .is_some_and(|bits| bits & (1u64 << (sequence % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_complete_stream_has_no_loss() {
        let mut tracker = SequenceTracker::default();
        for sequence in 0..1000 {
            tracker.record(sequence);
        }
        let counts = tracker.counts(1000);
        assert_eq!(counts.unique, 1000);
        assert_eq!(counts.lost(), 0);
        assert_eq!(counts.duplicates, 0);
        assert_eq!(counts.out_of_order, 0);
    }

    #[test]
    fn gaps_count_as_lost_including_the_tail() {
        let mut tracker = SequenceTracker::default();
        for sequence in (0..100).filter(|s| s % 10 != 3) {
            tracker.record(sequence);
        }
        // 10 gaps inside, plus 5 messages sent after the last one received.
        assert_eq!(tracker.counts(105).lost(), 15);
    }

    #[test]
    fn duplicates_are_counted_once_and_not_as_received() {
        let mut tracker = SequenceTracker::default();
        for sequence in [0, 1, 1, 2, 2, 2, 3] {
            tracker.record(sequence);
        }
        let counts = tracker.counts(4);
        assert_eq!(counts.unique, 4);
        assert_eq!(counts.duplicates, 3);
        assert_eq!(counts.lost(), 0);
    }

    #[test]
    fn late_arrivals_are_out_of_order_not_lost() {
        let mut tracker = SequenceTracker::default();
        for sequence in [0, 2, 3, 1, 4] {
            tracker.record(sequence);
        }
        let counts = tracker.counts(5);
        assert_eq!(counts.out_of_order, 1);
        assert_eq!(counts.lost(), 0);
    }

    #[test]
    fn sequence_numbers_never_sent_are_invalid() {
        let mut tracker = SequenceTracker::default();
        tracker.record(0);
        tracker.record(7);
        tracker.record(u64::MAX);
        let counts = tracker.counts(2);
        assert_eq!(counts.unique, 1);
        assert_eq!(counts.invalid, 2);
        assert_eq!(counts.lost(), 1);
    }

    #[test]
    fn counts_add_up_across_subscribers() {
        let mut total = DeliveryCounts::default();
        total.add(&DeliveryCounts {
            expected: 10,
            unique: 10,
            ..DeliveryCounts::default()
        });
        total.add(&DeliveryCounts {
            expected: 10,
            unique: 7,
            duplicates: 1,
            ..DeliveryCounts::default()
        });
        assert_eq!(total.expected, 20);
        assert_eq!(total.lost(), 3);
        assert_eq!(total.duplicates, 1);
    }
}

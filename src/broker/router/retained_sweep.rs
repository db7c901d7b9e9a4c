//! Purging expired retained messages (MQTT-3.3.2-5) from the router's one-second tick,
//! whether or not `$SYS` is on, without scanning the retained messages while none is due.
//!
//! [`SweepSchedule`] remembers, to the second, when retained messages were set to expire;
//! the tick sweeps the container only when one of those seconds has passed. Replaced or
//! cleared messages leave their second behind, which costs at most one needless sweep.

use std::collections::BTreeSet;
use std::time::Instant;

use super::Router;

/// Distinct due seconds kept at most; beyond it the two latest merge into the later one,
/// so a sweep may come late for far-off deadlines but is never missed, and a client
/// setting many different expiries cannot grow the schedule.
const MAX_DUE_SECONDS: usize = 1024;

/// When the retained messages are due to expire, in whole seconds since `epoch`.
#[derive(Debug)]
pub(super) struct SweepSchedule {
    epoch: Instant,
    due: BTreeSet<u64>,
}

impl SweepSchedule {
    pub(super) fn new(epoch: Instant) -> SweepSchedule {
        SweepSchedule {
            epoch,
            due: BTreeSet::new(),
        }
    }

    /// A retained message that expires at `expires_at` (if it can expire) was stored.
    pub(super) fn note(&mut self, expires_at: Option<Instant>) {
        let Some(at) = expires_at else {
            return;
        };
        let since = at.saturating_duration_since(self.epoch);
        // Rounded up: the sweep at that second finds the message expired.
        let second = since.as_secs() + u64::from(since.subsec_nanos() > 0);
        self.due.insert(second);
        if self.due.len() > MAX_DUE_SECONDS {
            let mut latest = self.due.iter().rev();
            if let (Some(_), Some(&next_latest)) = (latest.next(), latest.next()) {
                self.due.remove(&next_latest);
            }
        }
    }

    /// Whether a sweep is due at `now`; forgets the seconds it covers.
    pub(super) fn take_due(&mut self, now: Instant) -> bool {
        let now = now.saturating_duration_since(self.epoch).as_secs();
        let mut due = false;
        while self.due.first().is_some_and(|second| *second <= now) {
            self.due.pop_first();
            due = true;
        }
        due
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.due.len()
    }
}

impl Router {
    /// Drops the retained messages expired at `now`, when some are due, and updates the
    /// gauge.
    pub(super) fn sweep_expired_retained(&mut self, now: Instant) {
        if self.retained_sweep.take_due(now) {
            self.retained.purge_expired(now);
            self.update_gauges();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::testing::{message_at, router};
    use super::{MAX_DUE_SECONDS, SweepSchedule};
    use crate::broker::metrics::Metrics;

    #[test]
    fn a_sweep_is_due_once_a_noted_second_has_passed() {
        let epoch = Instant::now();
        let mut schedule = SweepSchedule::new(epoch);
        schedule.note(None);
        assert_eq!(schedule.len(), 0, "a message that never expires");
        schedule.note(Some(epoch + Duration::from_millis(1500)));
        schedule.note(Some(epoch + Duration::from_millis(1900)));
        schedule.note(Some(epoch + Duration::from_secs(5)));
        assert_eq!(schedule.len(), 2, "one entry per second");
        assert!(!schedule.take_due(epoch + Duration::from_millis(1999)));
        assert!(schedule.take_due(epoch + Duration::from_secs(2)));
        assert!(!schedule.take_due(epoch + Duration::from_secs(2)));
        assert!(schedule.take_due(epoch + Duration::from_secs(9)));
        assert_eq!(schedule.len(), 0);
    }

    #[test]
    fn the_schedule_stays_bounded_and_late_deadlines_are_not_lost() {
        let epoch = Instant::now();
        let mut schedule = SweepSchedule::new(epoch);
        for second in 1..=(MAX_DUE_SECONDS as u64 * 3) {
            schedule.note(Some(epoch + Duration::from_secs(second)));
        }
        assert_eq!(schedule.len(), MAX_DUE_SECONDS);
        assert!(schedule.take_due(epoch + Duration::from_secs(1)));
        let last = epoch + Duration::from_secs(MAX_DUE_SECONDS as u64 * 3);
        assert!(schedule.take_due(last), "the latest deadline is kept");
        assert_eq!(schedule.len(), 0);
    }

    #[tokio::test]
    async fn the_tick_purges_expired_retained_messages_and_the_gauge() {
        // MQTT-3.3.2-5: an expired retained message is not kept for new subscribers.
        let mut router = router();
        let now = Instant::now();
        // `retain` stores whatever it is given as its topic's retained message.
        for message in [
            message_at("short", Some(1), now),
            message_at("forever", None, now),
        ] {
            router.retain(&message).await.expect("memory store");
        }
        assert_eq!(Metrics::get(&router.shared.metrics.retained), 2);
        router.sweep_expired_retained(now + Duration::from_millis(500));
        assert_eq!(router.retained.len(), 2);
        router.sweep_expired_retained(now + Duration::from_secs(2));
        assert_eq!(router.retained.len(), 1);
        assert_eq!(Metrics::get(&router.shared.metrics.retained), 1);
    }
}

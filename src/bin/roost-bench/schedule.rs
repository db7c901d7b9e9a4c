//! The timeline all clients of one run share: a common clock base (the generator is one
//! process, so send and receive times compare directly), the end of the warm-up, and the end
//! of the measurement window, set when the last publisher stops.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// When publishers stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopRule {
    /// At this many nanoseconds after the base.
    At(u64),
    /// After each publisher has sent this many messages after the warm-up.
    AfterCount(u64),
}

#[derive(Debug)]
pub struct Schedule {
    base: Instant,
    warm_up_end: u64,
    stop: StopRule,
    window_end: AtomicU64,
    publishing: AtomicUsize,
    window_closed: Notify,
}

impl Schedule {
    pub fn new(warm_up: Duration, stop: StopRule, publishers: usize) -> Schedule {
        Schedule {
            base: Instant::now(),
            warm_up_end: warm_up.as_nanos() as u64,
            stop,
            window_end: AtomicU64::new(u64::MAX),
            publishing: AtomicUsize::new(publishers),
            window_closed: Notify::new(),
        }
    }

    /// Nanoseconds since the base.
    pub fn now(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    pub fn base(&self) -> Instant {
        self.base
    }

    pub fn warm_up_end(&self) -> u64 {
        self.warm_up_end
    }

    pub fn stop_rule(&self) -> StopRule {
        self.stop
    }

    /// Whether a delivery received at `nanos` falls into the measurement window.
    pub fn in_window(&self, nanos: u64) -> bool {
        nanos >= self.warm_up_end && nanos < self.window_end.load(Ordering::Relaxed)
    }

    /// The end of the window, once every publisher has stopped.
    pub fn window_end(&self) -> Option<u64> {
        let end = self.window_end.load(Ordering::Acquire);
        (end != u64::MAX).then_some(end)
    }

    /// Called once by each publisher when it stops publishing (not when its acks are in).
    pub fn publisher_stopped(&self) {
        if self.publishing.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.window_end.store(self.now(), Ordering::Release);
            self.window_closed.notify_one();
        }
    }

    /// Waits until the last publisher has stopped.
    pub async fn window_closed(&self) -> u64 {
        loop {
            if let Some(end) = self.window_end() {
                return end;
            }
            self.window_closed.notified().await;
        }
    }
}

/// Calls [`Schedule::publisher_stopped`] exactly once, also when a publisher fails early.
pub struct StoppedGuard<'a> {
    schedule: &'a Schedule,
    done: bool,
}

impl<'a> StoppedGuard<'a> {
    pub fn new(schedule: &'a Schedule) -> Self {
        StoppedGuard {
            schedule,
            done: false,
        }
    }

    pub fn stopped(&mut self) {
        if !self.done {
            self.done = true;
            self.schedule.publisher_stopped();
        }
    }
}

impl Drop for StoppedGuard<'_> {
    fn drop(&mut self) {
        self.stopped();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_closes_when_the_last_publisher_stops() {
        let schedule = Schedule::new(Duration::ZERO, StopRule::AfterCount(1), 2);
        assert!(schedule.in_window(1));
        {
            let mut first = StoppedGuard::new(&schedule);
            first.stopped();
            first.stopped();
        }
        assert_eq!(schedule.window_end(), None);
        drop(StoppedGuard::new(&schedule));
        let end = schedule.window_end().unwrap();
        assert!(!schedule.in_window(end));
        assert!(end == 0 || schedule.in_window(end - 1));
    }

    #[test]
    fn deliveries_during_warm_up_are_outside_the_window() {
        let schedule = Schedule::new(Duration::from_secs(1), StopRule::At(2_000_000_000), 1);
        assert!(!schedule.in_window(999_999_999));
        assert!(schedule.in_window(1_000_000_000));
    }
}

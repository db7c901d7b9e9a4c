//! Slowing down repeated failures: an address whose CONNECTs keep failing their password
//! check waits longer before each next check, doubling from [`FIRST_DELAY`] up to
//! [`MAX_DELAY`]. A success, or [`FORGET_AFTER`] without a failure, forgets the address.
//!
//! Time is passed in (`now`), so that tests drive it without waiting.
//!
//! The table is bounded ([`CAPACITY`] addresses): when it is full, the address whose last
//! failure is the oldest makes room, so that an attacker with many addresses cannot grow it.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use foldhash::{HashMap, HashMapExt};
use std::time::Instant;

pub const FIRST_DELAY: Duration = Duration::from_millis(200);
pub const MAX_DELAY: Duration = Duration::from_secs(10);
pub const FORGET_AFTER: Duration = Duration::from_secs(300);
pub const CAPACITY: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

#[derive(Debug)]
pub struct FailureTable {
    entries: Mutex<HashMap<IpAddr, Failures>>,
    capacity: usize,
}

impl Default for FailureTable {
    fn default() -> Self {
        FailureTable::with_capacity(CAPACITY)
    }
}

impl FailureTable {
    pub fn with_capacity(capacity: usize) -> FailureTable {
        FailureTable {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Failures>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long the next check from `address` waits.
    pub fn delay_for(&self, address: IpAddr, now: Instant) -> Duration {
        let mut entries = self.entries();
        let Some(failures) = entries.get(&address).copied() else {
            return Duration::ZERO;
        };
        if now.duration_since(failures.last) >= FORGET_AFTER {
            entries.remove(&address);
            return Duration::ZERO;
        }
        let doublings = failures.count.saturating_sub(1).min(16);
        FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
    }

    pub fn record(&self, address: IpAddr, now: Instant) {
        let mut entries = self.entries();
        if !entries.contains_key(&address) && entries.len() >= self.capacity {
            // Full: the stalest address goes. A linear scan, under attack at most once per
            // failed check, which itself costs far more.
            if let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, failures)| failures.last)
                .map(|(address, _)| *address)
            {
                entries.remove(&oldest);
            }
        }
        let failures = entries.entry(address).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.duration_since(failures.last) >= FORGET_AFTER {
            failures.count = 0;
        }
        failures.count = failures.count.saturating_add(1);
        failures.last = now;
    }

    pub fn forget(&self, address: IpAddr) {
        let mut entries = self.entries();
        if !entries.is_empty() {
            entries.remove(&address);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn each_failure_doubles_the_wait_up_to_the_maximum() {
        let table = FailureTable::default();
        let now = Instant::now();
        assert_eq!(table.delay_for(ip(1), now), Duration::ZERO);
        table.record(ip(1), now);
        assert_eq!(table.delay_for(ip(1), now), FIRST_DELAY);
        table.record(ip(1), now);
        assert_eq!(table.delay_for(ip(1), now), FIRST_DELAY * 2);
        table.record(ip(1), now);
        assert_eq!(table.delay_for(ip(1), now), FIRST_DELAY * 4);
        for _ in 0..40 {
            table.record(ip(1), now);
        }
        assert_eq!(table.delay_for(ip(1), now), MAX_DELAY);
        // Other addresses are not slowed down.
        assert_eq!(table.delay_for(ip(2), now), Duration::ZERO);
    }

    #[test]
    fn success_or_time_forgets_the_address() {
        let table = FailureTable::default();
        let mut now = Instant::now();
        table.record(ip(1), now);
        table.forget(ip(1));
        assert_eq!(table.delay_for(ip(1), now), Duration::ZERO);
        table.record(ip(1), now);
        table.record(ip(1), now);
        now += FORGET_AFTER;
        assert_eq!(table.delay_for(ip(1), now), Duration::ZERO);
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn the_table_never_grows_past_its_capacity() {
        let table = FailureTable::with_capacity(100);
        let mut now = Instant::now();
        for n in 0..10_000 {
            table.record(ip(n), now);
            now += Duration::from_millis(1);
        }
        assert_eq!(table.len(), 100);
        // The newest addresses are those kept.
        assert_eq!(table.delay_for(ip(9_999), now), FIRST_DELAY);
        assert_eq!(table.delay_for(ip(0), now), Duration::ZERO);
    }
}

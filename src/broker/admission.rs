//! Admission at accept: the `limits.max_connections` connection slots that every listener
//! shares, and the few sockets refused at a time because no slot was free.
//!
//! A socket is a connection only while it holds a [`ConnectionSlot`], taken before anything
//! is read from it, so a flood past the limit costs a refused socket each and never a
//! connection with its buffers and tasks.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Refused sockets answered at a time (read their CONNECT, send CONNACK Server busy).
/// Past this, refused sockets are closed at once, so a flood cannot pin more than this
/// many small buffers and timers.
pub const REFUSALS_AT_ONCE: usize = 64;

/// The connection slots and the refusal budget.
#[derive(Debug)]
pub struct Admission {
    slots: Arc<Slots>,
    refusals: Arc<Semaphore>,
}

#[derive(Debug)]
struct Slots {
    free: Semaphore,
    sizing: Mutex<Sizing>,
}

#[derive(Debug)]
struct Sizing {
    limit: u32,
    /// Slots to retire as connections close: a lowered limit never closes open connections,
    /// it only keeps their slots from coming back.
    owed: usize,
}

/// One connection's slot, given back when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    slots: Arc<Slots>,
}

/// Permission to answer one refused socket.
#[derive(Debug)]
pub struct RefusalSlot {
    _permit: OwnedSemaphorePermit,
}

impl Admission {
    pub fn new(limit: u32) -> Admission {
        Admission {
            slots: Arc::new(Slots {
                free: Semaphore::new(limit as usize),
                sizing: Mutex::new(Sizing { limit, owed: 0 }),
            }),
            refusals: Arc::new(Semaphore::new(REFUSALS_AT_ONCE)),
        }
    }

    /// A slot for a new connection, or `None` when `limit` connections are open.
    pub fn admit(&self) -> Option<ConnectionSlot> {
        let permit = self.slots.free.try_acquire().ok()?;
        // The slot's drop gives the permit back, or retires it if the limit was lowered.
        permit.forget();
        Some(ConnectionSlot {
            slots: self.slots.clone(),
        })
    }

    /// Room to answer one refused socket, or `None` when [`REFUSALS_AT_ONCE`] are being
    /// answered already.
    pub fn refusal(&self) -> Option<RefusalSlot> {
        let permit = self.refusals.clone().try_acquire_owned().ok()?;
        Some(RefusalSlot { _permit: permit })
    }

    /// The current limit.
    pub fn limit(&self) -> u32 {
        self.slots.sizing().limit
    }

    /// Changes the limit. Raising it frees slots at once; lowering it takes free slots away
    /// and retires the rest as open connections close.
    pub fn set_limit(&self, limit: u32) {
        let mut sizing = self.slots.sizing();
        let old = sizing.limit;
        if limit > old {
            let grow = (limit - old) as usize;
            let repaid = grow.min(sizing.owed);
            sizing.owed -= repaid;
            self.slots.free.add_permits(grow - repaid);
        } else if limit < old {
            let shrink = (old - limit) as usize;
            let taken = self.slots.free.forget_permits(shrink);
            sizing.owed += shrink - taken;
        }
        sizing.limit = limit;
    }
}

impl Slots {
    fn sizing(&self) -> std::sync::MutexGuard<'_, Sizing> {
        self.sizing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut sizing = self.slots.sizing();
        if sizing.owed > 0 {
            sizing.owed -= 1;
        } else {
            self.slots.free.add_permits(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admit_all(admission: &Admission) -> Vec<ConnectionSlot> {
        std::iter::from_fn(|| admission.admit()).collect()
    }

    #[test]
    fn admits_up_to_the_limit_and_again_when_a_slot_is_freed() {
        let admission = Admission::new(3);
        let mut open = admit_all(&admission);
        assert_eq!(open.len(), 3);
        assert!(admission.admit().is_none());
        open.pop();
        let freed = admission.admit();
        assert!(freed.is_some());
        assert!(admission.admit().is_none());
    }

    #[test]
    fn a_raised_limit_admits_more_at_once() {
        let admission = Admission::new(2);
        let mut open = admit_all(&admission);
        admission.set_limit(5);
        open.extend(admit_all(&admission));
        assert_eq!(open.len(), 5);
    }

    #[test]
    fn a_lowered_limit_keeps_open_connections_and_retires_their_slots() {
        let admission = Admission::new(4);
        let mut open = admit_all(&admission);
        admission.set_limit(1);
        assert_eq!(open.len(), 4, "nothing is closed");
        // Three connections close: their slots are retired, the count is now at the limit.
        open.truncate(1);
        assert!(admission.admit().is_none());
        open.clear();
        let again = admit_all(&admission);
        assert_eq!(again.len(), 1);
    }

    #[test]
    fn lowering_then_raising_repays_retired_slots_first() {
        let admission = Admission::new(4);
        let open = admit_all(&admission);
        admission.set_limit(2); // two slots owed
        admission.set_limit(3); // one owed
        drop(open);
        assert_eq!(admit_all(&admission).len(), 3);
        assert_eq!(admission.limit(), 3);
    }

    #[test]
    fn lowering_with_free_slots_takes_them_first() {
        let admission = Admission::new(5);
        let open: Vec<_> = (0..2).filter_map(|_| admission.admit()).collect();
        admission.set_limit(3);
        let more = admit_all(&admission);
        assert_eq!(open.len() + more.len(), 3);
    }

    #[test]
    fn refusals_are_bounded() {
        let admission = Admission::new(0);
        let held: Vec<_> = std::iter::from_fn(|| admission.refusal()).collect();
        assert_eq!(held.len(), REFUSALS_AT_ONCE);
        drop(held);
        assert!(admission.refusal().is_some());
    }
}

//! Offline queues on disk: with a store that keeps queues ([`Store::keeps_queues`], the
//! disk modes), the waiting messages of a persistent session live in the store only, and
//! the session holds in memory no more than a window of them.
//!
//! - While the session is offline, a new message for it is written to the store and not
//!   kept in memory; when it goes offline, its waiting messages leave memory (they are in
//!   the store already). A million 64-byte messages queued for offline sessions thus cost
//!   the broker almost no memory (see `tests/offline_queue_memory.rs`).
//! - While it is connected, messages wait in memory up to [`MEMORY_WINDOW`]; beyond that,
//!   and whenever older ones are still in the store only, new ones go to the store, so
//!   that the order holds (MQTT-4.6.0-6).
//! - As the client drains its queue, the next window is read back off the runtime thread
//!   ([`Store::read_queued`], at most [`MAX_READS`] at once) and appended; the messages
//!   in flight stay in memory throughout.
//!
//! A read covers the sequences from [`Spill::from`] up to the newest numbered when it was
//! asked for, so that messages spilled meanwhile are counted exactly; anything that moves
//! `from` (the session going offline again) cancels it, and its answer is dropped.
//!
//! Messages that expire while kept in the store are purged as they are read back, and by a
//! sweep that looks at up to [`SWEEP_BATCH`] records a second, session after session, so
//! that a queue nobody drains does not keep them (MQTT-3.3.2-5) and nothing scans
//! everything at once.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::task::JoinSet;

use super::{Router, store_failed};
use crate::broker::metrics::Metrics;
use crate::broker::session::{Queued, Session, Spill};
use crate::broker::subscriptions::SessionKey;
use crate::store::{ExpiredScan, QueueRange, QueuedRecord, Store, StoreError, StoreOp};

/// Waiting messages a connected session holds in memory before new ones stay in the
/// store; the next window is read when half of it is left.
pub(super) const MEMORY_WINDOW: usize = 512;

/// Window reads running at once.
const MAX_READS: usize = 4;

/// Records the sweep of expired messages looks at per second.
const SWEEP_BATCH: usize = 20_000;

/// What a read of the store off the runtime thread answers.
pub(super) enum StoreRead {
    Window(WindowRead),
    Expired(Vec<ExpiredRead>),
}

/// A window read's answer.
pub(super) struct WindowRead {
    key: SessionKey,
    upto: u64,
    limit: usize,
    result: Result<Vec<QueuedRecord>, StoreError>,
}

/// One session's part of a sweep.
pub(super) struct ExpiredRead {
    key: SessionKey,
    /// The session's `Spill::from` when the sweep was asked for: if it moved, records may
    /// have left the store's part of the queue meanwhile, and the answer is dropped.
    from: u64,
    result: Result<ExpiredScan, StoreError>,
}

/// The reads under way, the sessions waiting for a turn, and the sweep's round.
#[derive(Default)]
pub(super) struct QueueReads {
    pub(super) running: JoinSet<StoreRead>,
    backlog: VecDeque<SessionKey>,
    sweeping: bool,
    /// Sessions the current round of the sweep has still to look at.
    to_sweep: VecDeque<SessionKey>,
}

impl Session {
    /// Whether a new waiting message goes to the store only (the store keeps queues).
    pub(super) fn spills_next(&self) -> bool {
        self.spilled() > 0
            || (!self.can_send_now() && (!self.is_connected() || self.queue.len() >= MEMORY_WINDOW))
    }

    /// A message numbered `sequence` went to the store only.
    pub(super) fn spill_one(&mut self, sequence: u64) {
        let spill = self.spill.get_or_insert_with(|| {
            Box::new(Spill {
                from: sequence,
                ..Spill::default()
            })
        });
        if spill.count == 0 && spill.reading.is_none() {
            spill.from = sequence;
        }
        spill.count += 1;
        if spill.reading.is_some() {
            spill.since_read += 1;
        }
    }

    /// The store refused what [`Session::spill_one`] counted: it was not written.
    pub(super) fn unspill_one(&mut self) {
        if let Some(spill) = self.spill.as_mut() {
            spill.count = spill.count.saturating_sub(1);
            if spill.reading.is_some() {
                spill.since_read = spill.since_read.saturating_sub(1);
            }
        }
        self.drop_empty_spill();
    }

    /// Its waiting messages leave memory: they are in the store (the session went
    /// offline). A read under way is cancelled: its range no longer follows the queue.
    pub(super) fn spill_queue(&mut self) {
        let Some(first) = self.queue.front().map(|q| q.sequence) else {
            return;
        };
        let moved = self.queue.len() as u64;
        self.queue.clear();
        let spill = self.spill.get_or_insert_with(Box::default);
        spill.from = if spill.count == 0 {
            first
        } else {
            spill.from.min(first)
        };
        spill.count += moved;
        spill.reading = None;
        spill.since_read = 0;
    }

    /// Whether the in-memory queue runs low while the store holds more.
    fn wants_window(&self) -> bool {
        self.is_connected()
            && self.queue.len() <= MEMORY_WINDOW / 2
            && self
                .spill
                .as_ref()
                .is_some_and(|spill| spill.count > 0 && spill.reading.is_none())
    }

    /// Appends a window read from the store. `exhausted`: the read found everything up to
    /// `upto`. Returns how many messages joined the queue.
    fn take_window(&mut self, records: Vec<QueuedRecord>, upto: u64, exhausted: bool) -> usize {
        let Some(spill) = self.spill.as_mut() else {
            return 0;
        };
        spill.reading = None;
        let last_read = records.last().map(|r| r.sequence);
        let mut in_flight: Vec<u64> = self.inflight.iter().map(|i| i.queued.sequence).collect();
        in_flight.sort_unstable();
        let mut appended = 0;
        for record in records {
            // Sent already (a message in flight is kept in memory throughout).
            if in_flight.binary_search(&record.sequence).is_ok() {
                continue;
            }
            self.queue.push_back(Queued {
                sequence: record.sequence,
                payload: record.payload,
                message: record.message,
                qos: record.qos,
                retain: record.retain,
                subscription_ids: record.subscription_ids,
                share: record.share,
            });
            appended += 1;
        }
        if exhausted {
            // Everything left was spilled after the read was asked for.
            spill.count = spill.since_read;
            spill.from = upto.saturating_add(1);
        } else {
            spill.count = spill.count.saturating_sub(appended as u64);
            if let Some(last) = last_read {
                spill.from = last.saturating_add(1);
            }
        }
        spill.since_read = 0;
        self.drop_empty_spill();
        appended
    }

    fn drop_empty_spill(&mut self) {
        if self
            .spill
            .as_ref()
            .is_some_and(|spill| spill.count == 0 && spill.reading.is_none())
        {
            self.spill = None;
        }
    }
}

impl Router {
    /// Asks for the session's next window when its in-memory queue runs low.
    pub(super) fn refill(&mut self, key: SessionKey) {
        if !self.sessions.get(&key).is_some_and(|s| s.wants_window()) {
            return;
        }
        if self.reads.running.len() >= MAX_READS {
            if !self.reads.backlog.contains(&key) {
                self.reads.backlog.push_back(key);
            }
            return;
        }
        self.start_read(key);
    }

    fn start_read(&mut self, key: SessionKey) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        let upto = session.last_sequence();
        let Some(spill) = session.spill.as_mut() else {
            return;
        };
        let from = spill.from;
        spill.reading = Some(upto);
        spill.since_read = 0;
        let limit = MEMORY_WINDOW.saturating_sub(session.queue.len()).max(1);
        let client_id = session.client_id.clone();
        let store = self.persist.store.clone();
        self.reads.running.spawn_blocking(move || {
            StoreRead::Window(WindowRead {
                key,
                upto,
                limit,
                result: store.read_queued(&client_id, QueueRange::new(from, upto, limit)),
            })
        });
    }

    /// A read off the runtime thread finished.
    pub(super) async fn store_read(&mut self, read: StoreRead) {
        match read {
            StoreRead::Window(read) => self.window_read(read).await,
            StoreRead::Expired(reads) => {
                self.reads.sweeping = false;
                for read in reads {
                    self.purge_expired(read);
                }
            }
        }
    }

    /// Once a second: asks the store for the expired messages among the next
    /// [`SWEEP_BATCH`] records kept only there, session after session.
    pub(super) fn sweep_expired_queues(&mut self) {
        if self.reads.sweeping || !self.persist.keeps_queues {
            return;
        }
        if self.reads.to_sweep.is_empty() {
            let spilled = self
                .sessions
                .iter()
                .filter(|(_, session)| session.spilled() > 0)
                .map(|(key, _)| *key);
            self.reads.to_sweep.extend(spilled);
        }
        let mut budget = SWEEP_BATCH as u64;
        let mut wanted = Vec::new();
        while budget > 0 {
            let Some(key) = self.reads.to_sweep.pop_front() else {
                break;
            };
            let Some(session) = self.sessions.get(&key) else {
                continue;
            };
            let Some(spill) = session.spill.as_ref().filter(|s| s.reading.is_none()) else {
                continue;
            };
            wanted.push((
                key,
                session.client_id.clone(),
                spill.swept.max(spill.from),
                spill.from,
                session.last_sequence(),
            ));
            budget = budget.saturating_sub(spill.count);
        }
        if wanted.is_empty() {
            return;
        }
        self.reads.sweeping = true;
        let store = self.persist.store.clone();
        self.reads.running.spawn_blocking(move || {
            let now = std::time::SystemTime::now();
            let mut left = SWEEP_BATCH;
            let reads = wanted
                .into_iter()
                .map(|(key, client_id, start, from, upto)| {
                    let result =
                        store.expired_queued(&client_id, QueueRange::new(start, upto, left), now);
                    if let Ok(scan) = &result {
                        left = left.saturating_sub(scan.scanned).max(1);
                    }
                    ExpiredRead { key, from, result }
                })
                .collect();
            StoreRead::Expired(reads)
        });
    }

    /// Removes what a sweep found expired, if the session's part in the store is as it was
    /// when the sweep looked. Written at once, so that no read that follows returns it.
    fn purge_expired(&mut self, read: ExpiredRead) {
        let ExpiredRead { key, from, result } = read;
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        let Some(spill) = session.spill.as_mut() else {
            return;
        };
        if spill.from != from || spill.reading.is_some() {
            // Looked at again in the next round.
            return;
        }
        let scan = match result {
            Ok(scan) => scan,
            Err(error) => {
                let client_id = session.client_id.clone();
                store_failed(
                    &self.shared.metrics,
                    &error,
                    "look for expired queued messages",
                    Some(&client_id),
                    None,
                );
                return;
            }
        };
        match scan.next {
            Some(next) => {
                spill.swept = next;
                self.reads.to_sweep.push_back(key);
            }
            // This round is done with the session; the next starts again from `from`.
            None => spill.swept = 0,
        }
        let in_flight: Vec<u64> = session.inflight.iter().map(|i| i.queued.sequence).collect();
        let ops: Vec<StoreOp> = scan
            .expired
            .into_iter()
            .filter(|(sequence, _)| *sequence >= from && !in_flight.contains(sequence))
            .map(|(sequence, payload)| StoreOp::RemoveMessage {
                client_id: session.client_id.clone(),
                sequence,
                payload,
            })
            .collect();
        if ops.is_empty() {
            return;
        }
        let purged = ops.len() as u64;
        let client_id = session.client_id.clone();
        match self.commit(ops) {
            Ok(()) => {
                Metrics::add(&self.shared.metrics.messages_dropped, purged);
                if let Some(session) = self.sessions.get_mut(&key) {
                    if let Some(spill) = session.spill.as_mut() {
                        spill.count = spill.count.saturating_sub(purged);
                    }
                    session.drop_empty_spill();
                }
                tracing::debug!(%client_id, purged, "store: expired queued messages purged");
            }
            Err(error) => store_failed(
                &self.shared.metrics,
                &error,
                "purge expired queued messages",
                Some(&client_id),
                None,
            ),
        }
    }

    /// A window read finished: its messages join the queue and go out as the window
    /// allows; the next session waiting for a read gets its turn.
    async fn window_read(&mut self, read: WindowRead) {
        let WindowRead {
            key,
            upto,
            limit,
            result,
        } = read;
        let current = self
            .sessions
            .get(&key)
            .and_then(|s| s.spill.as_ref())
            .is_some_and(|spill| spill.reading == Some(upto));
        if current {
            match result {
                Ok(records) => {
                    let exhausted = records.len() < limit;
                    if let Some(session) = self.sessions.get_mut(&key) {
                        session.take_window(records, upto, exhausted);
                    }
                    self.pump(key).await;
                }
                Err(error) => {
                    let client_id = self.sessions.get_mut(&key).map(|session| {
                        if let Some(spill) = session.spill.as_mut() {
                            spill.reading = None;
                        }
                        session.client_id.clone()
                    });
                    store_failed(
                        &self.shared.metrics,
                        &error,
                        "read a queue back; tried again when the client acknowledges",
                        client_id.as_deref(),
                        None,
                    );
                }
            }
        }
        while self.reads.running.len() < MAX_READS {
            let Some(next) = self.reads.backlog.pop_front() else {
                break;
            };
            if self.sessions.get(&next).is_some_and(|s| s.wants_window()) {
                self.start_read(next);
            }
        }
    }

    /// Waits for the reads under way and forgets them (before the store changes); a
    /// session still short of messages asks again when it is next pumped.
    pub(super) async fn cancel_reads(&mut self) {
        while self.reads.running.join_next().await.is_some() {}
        self.reads.backlog.clear();
        self.reads.sweeping = false;
        self.reads.to_sweep.clear();
        for session in self.sessions.values_mut() {
            if let Some(spill) = session.spill.as_mut() {
                spill.reading = None;
                spill.since_read = 0;
            }
            session.drop_empty_spill();
        }
    }

    /// Brings every message kept only in the store back into memory (before the state is
    /// copied to another store). Reads off the runtime thread.
    pub(super) async fn unspill_all(&mut self) -> Result<(), StoreError> {
        self.cancel_reads().await;
        let wanted: Vec<(SessionKey, Arc<str>, u64, u64)> = self
            .sessions
            .iter()
            .filter_map(|(key, session)| {
                let spill = session.spill.as_ref()?;
                Some((
                    *key,
                    session.client_id.clone(),
                    spill.from,
                    session.last_sequence(),
                ))
            })
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let store: Arc<dyn Store> = self.persist.store.clone();
        let read = tokio::task::spawn_blocking(move || {
            wanted
                .into_iter()
                .map(|(key, client_id, from, upto)| {
                    let records =
                        store.read_queued(&client_id, QueueRange::new(from, upto, usize::MAX))?;
                    Ok((key, upto, records))
                })
                .collect::<Result<Vec<_>, StoreError>>()
        })
        .await
        .map_err(|error| StoreError::Io(std::io::Error::other(error)))??;
        for (key, upto, records) in read {
            if let Some(session) = self.sessions.get_mut(&key) {
                session.take_window(records, upto, true);
                session.spill = None;
            }
        }
        Ok(())
    }

    /// With a store that keeps queues, offline persistent sessions hold no waiting
    /// messages in memory (after a switch to such a store).
    pub(super) fn spill_offline_queues(&mut self) {
        if !self.persist.keeps_queues {
            return;
        }
        for session in self.sessions.values_mut() {
            if !session.is_connected() && session.is_persistent() {
                session.spill_queue();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::testing::{QueueKeepingStore, connect_request, queued, router_on};
    use crate::mqtt::QoS;

    #[tokio::test]
    async fn a_copy_handed_over_after_its_session_went_offline_waits_behind_the_stored_ones() {
        // MQTT-4.6.0-6: a QoS 2 copy held until its batch was durable must not overtake
        // messages that reached the session after it was admitted and went to the store.
        let mut router = router_on(Arc::new(QueueKeepingStore::default()));
        let (request, _outbox) = connect_request("s", 1, false, Some(3600), None);
        router.connect(request).await;
        let key = router.by_client_id["s"];
        router.close_connection(key, None, false).await;
        let session = router.sessions.get_mut(&key).expect("session");
        session.spill_one(1);

        let mut held = queued("t", QoS::ExactlyOnce, None);
        held.sequence = 2;
        router.hand_over(vec![(key, held)]);
        let session = &router.sessions[&key];
        assert!(session.queue.is_empty(), "nothing of it kept in memory");
        assert_eq!(session.spilled(), 2);
        assert_eq!(session.spill.as_ref().map(|s| s.from), Some(1));
    }

    #[test]
    fn a_window_read_skips_messages_in_flight_and_counts_the_rest_exactly() {
        let (mut session, _outbox) =
            super::super::testing::connected_session(crate::mqtt::ProtocolVersion::V5, 10);
        let mut in_flight = super::super::testing::inflight(1, "a", QoS::AtLeastOnce);
        in_flight.queued.sequence = 3;
        session.inflight.push_back(in_flight);
        for sequence in 3..=8 {
            session.spill_one(sequence);
        }
        // One of them (3) is in flight already: the store counted it as waiting.
        let spill = session.spill.as_mut().expect("spill");
        spill.count = 5;
        spill.reading = Some(8);
        session.spill_one(9);
        let records = (3..=8)
            .map(|sequence| {
                let mut record = queued("a", QoS::AtLeastOnce, None).to_record(None);
                record.sequence = sequence;
                record
            })
            .collect();
        let appended = session.take_window(records, 8, true);
        assert_eq!(appended, 5, "4 to 8");
        let sequences: Vec<u64> = session.queue.iter().map(|q| q.sequence).collect();
        assert_eq!(sequences, [4, 5, 6, 7, 8]);
        let spill = session.spill.as_ref().expect("9 is left");
        assert_eq!((spill.count, spill.from, spill.reading), (1, 9, None));
    }
}

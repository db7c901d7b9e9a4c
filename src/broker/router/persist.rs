//! The router's side of the store: operations are written without waiting for the disk,
//! and what must not go out before its batch is durable waits here.
//!
//! Operations whose failure changes the answer (a copy queued for a persistent session, a
//! retained message, a subscription, an inbound QoS 2 packet id) are written at once with
//! [`Router::commit`]; the others (removals, delivery stages, session records) are staged
//! and written with the next commit or at the end of the router's turn
//! ([`Router::end_turn`]), so that one inbox batch costs few writes.
//!
//! In the unbuffered modes ([`Store::acks_wait_for_sync`]) every acknowledgement of a turn
//! (PUBACK, PUBREC, PUBCOMP) waits until everything written by the end of that turn is
//! durable; the store's durability task fsyncs once for all of them (group commit) and
//! reports "durable up to N" through a watch channel, which wakes the router. An inbound
//! QoS 2 message of a persistent session is stored with its packet id record in one batch,
//! and its copies are handed to the subscribers only once that batch is durable: handed
//! over before, a crash could lose the record, and the publisher's resend after the restart
//! would be delivered twice (MQTT-4.3.3-9, method B).

use std::collections::VecDeque;

use super::delivery::RoutedCopy;
use super::{Router, store_failed};
use crate::broker::connection::link::Ack;
use crate::broker::subscriptions::SessionKey;
use crate::store::{Store, StoreError, StoreOp};

/// Sequence placeholder of an entry made during the current turn: it waits for whatever
/// the turn writes, and gets that batch's number at the end of the turn.
const THIS_TURN: u64 = u64::MAX;

/// Something that goes out once the batch `sequence` is durable.
#[derive(Debug)]
pub(super) struct Awaiting {
    sequence: u64,
    session: SessionKey,
    connection_id: u64,
    what: AwaitingKind,
}

#[derive(Debug)]
enum AwaitingKind {
    Ack(Ack),
    /// The copies of an inbound QoS 2 message, stored with its packet id record and handed
    /// to the subscribers once that batch is durable; or those of a message of the same
    /// client behind one, kept in order (MQTT-4.6.0-2..-4). The acknowledgement follows.
    Copies(Vec<RoutedCopy>, Option<Ack>),
    /// An outbound PUBLISH held back until the record of its packet id is durable (see
    /// [`crate::broker::session::Session::defer_sends`]).
    Publish(u16),
}

/// What the router holds for the store.
pub(super) struct Persistence {
    pub(super) store: std::sync::Arc<dyn Store>,
    /// Written with the next commit or at the end of the turn.
    staged: Vec<StoreOp>,
    /// The sequence of the last batch written.
    written: u64,
    pub(super) durable: tokio::sync::watch::Receiver<u64>,
    pub(super) waits_for_sync: bool,
    /// Waiting messages of persistent sessions may stay in the store only (see `spill`).
    pub(super) keeps_queues: bool,
    awaiting: VecDeque<Awaiting>,
    /// Sessions with entries in `awaiting`, and how many.
    awaiting_by_session: foldhash::HashMap<SessionKey, usize>,
    /// Sessions with copies in `awaiting`, and how many entries.
    held_publishes: foldhash::HashMap<SessionKey, usize>,
}

impl Persistence {
    pub(super) fn new(store: std::sync::Arc<dyn Store>) -> Persistence {
        Persistence {
            durable: store.durable(),
            waits_for_sync: store.acks_wait_for_sync(),
            keeps_queues: store.keeps_queues(),
            store,
            staged: Vec::new(),
            written: 0,
            awaiting: VecDeque::new(),
            awaiting_by_session: foldhash::HashMap::default(),
            held_publishes: foldhash::HashMap::default(),
        }
    }

    /// Writes the staged operations and `ops` as one batch now (without waiting for the
    /// disk). On failure nothing of it is stored and the error is returned.
    pub(super) fn commit(&mut self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        let mut batch = std::mem::take(&mut self.staged);
        batch.extend(ops);
        if batch.is_empty() {
            return Ok(());
        }
        self.written = self.store.write(&batch)?;
        Ok(())
    }

    /// Makes `store` the one written to and returns the previous one. Nothing may wait on
    /// the previous store's durability any more (see `Router::switch_store`).
    pub(super) fn replace_store(
        &mut self,
        store: std::sync::Arc<dyn Store>,
    ) -> std::sync::Arc<dyn Store> {
        debug_assert!(self.awaiting.is_empty() && self.staged.is_empty());
        self.durable = store.durable();
        self.waits_for_sync = store.acks_wait_for_sync();
        self.keeps_queues = store.keeps_queues();
        self.written = 0;
        std::mem::replace(&mut self.store, store)
    }

    /// Whether anything waits for durability.
    pub(super) fn is_waiting(&self) -> bool {
        !self.awaiting.is_empty()
    }
}

impl Router {
    /// Stages an operation whose failure changes nothing the client is told.
    pub(super) fn stage(&mut self, op: StoreOp) {
        self.persist.staged.push(op);
    }

    /// See [`Persistence::commit`].
    pub(super) fn commit(&mut self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        self.persist.commit(ops)
    }

    /// Sends `ack` to the session's connection now, or, in the unbuffered modes, once what
    /// this turn writes is durable.
    pub(super) fn send_ack_durable(&mut self, key: SessionKey, ack: Ack) {
        let Some(session) = self.sessions.get(&key) else {
            return;
        };
        if !self.persist.waits_for_sync {
            session.send_ack(ack);
            return;
        }
        self.await_durable(key, AwaitingKind::Ack(ack));
    }

    /// Sends `ack` for something that wrote nothing to the store (a message with no
    /// persistent recipient): now, unless an earlier acknowledgement of the session still
    /// waits, which it must not overtake (MQTT-4.6.0-2..-4). Its publisher does not wait for
    /// other clients' fsyncs.
    pub(super) fn send_ack_in_order(&mut self, key: SessionKey, ack: Ack) {
        if self.persist.awaiting_by_session.contains_key(&key) {
            self.await_durable(key, AwaitingKind::Ack(ack));
        } else if let Some(session) = self.sessions.get(&key) {
            session.send_ack(ack);
        }
    }

    /// Sends the in-flight PUBLISH `packet_id` once what this turn writes is durable.
    pub(super) fn send_when_durable(&mut self, key: SessionKey, packet_id: u16) {
        self.await_durable(key, AwaitingKind::Publish(packet_id));
    }

    /// Queues `what` until what this turn writes is durable, for the session's current
    /// connection; false (and dropped) when the session has none.
    fn await_durable(&mut self, key: SessionKey, what: AwaitingKind) -> bool {
        let Some(connection_id) = self
            .sessions
            .get(&key)
            .and_then(|s| s.link())
            .map(|link| link.connection_id)
        else {
            return false;
        };
        self.persist.awaiting.push_back(Awaiting {
            sequence: THIS_TURN,
            session: key,
            connection_id,
            what,
        });
        *self.persist.awaiting_by_session.entry(key).or_default() += 1;
        true
    }

    /// Whether a PUBLISH of this session must wait behind an earlier one still waiting.
    pub(super) fn publish_is_held(&self, key: SessionKey) -> bool {
        self.persist.held_publishes.contains_key(&key)
    }

    /// Holds the copies of a message of `key` (and its acknowledgement) until what this
    /// turn writes is durable.
    pub(super) fn hold_copies(
        &mut self,
        key: SessionKey,
        copies: Vec<RoutedCopy>,
        ack: Option<Ack>,
    ) {
        if self.await_durable(key, AwaitingKind::Copies(copies, ack)) {
            *self.persist.held_publishes.entry(key).or_default() += 1;
        }
    }

    /// The end of a router turn: the staged operations are written, and what this turn
    /// made wait gets the number of the last batch written.
    pub(super) fn end_turn(&mut self) {
        if !self.persist.staged.is_empty()
            && let Err(error) = self.commit(Vec::new())
        {
            store_failed(
                &self.shared.metrics,
                &error,
                "record removals and delivery stages",
                None,
                None,
            );
        }
        if let Err(error) = self.persist.store.end_turn() {
            // What waits for this turn's batches keeps waiting; the next turn writes again.
            store_failed(
                &self.shared.metrics,
                &error,
                "write the log out",
                None,
                None,
            );
        }
        let written = self.persist.written;
        for entry in self.persist.awaiting.iter_mut().rev() {
            if entry.sequence != THIS_TURN {
                break;
            }
            entry.sequence = written;
        }
        self.release_durable();
    }

    /// Sends what waited for batches now durable, in order.
    pub(super) fn release_durable(&mut self) {
        loop {
            let durable = *self.persist.durable.borrow_and_update();
            let Some(front) = self.persist.awaiting.front() else {
                return;
            };
            if front.sequence == THIS_TURN || front.sequence > durable {
                return;
            }
            let Some(entry) = self.persist.awaiting.pop_front() else {
                return;
            };
            if let Some(count) = self.persist.awaiting_by_session.get_mut(&entry.session) {
                *count -= 1;
                if *count == 0 {
                    self.persist.awaiting_by_session.remove(&entry.session);
                }
            }
            let current = self.is_current(entry.session, entry.connection_id);
            match entry.what {
                AwaitingKind::Ack(ack) => {
                    if current && let Some(session) = self.sessions.get(&entry.session) {
                        session.send_ack(ack);
                    }
                }
                AwaitingKind::Publish(packet_id) => {
                    // On a new connection it was resent with the others in flight.
                    if current && let Some(session) = self.sessions.get(&entry.session) {
                        session.send_held_publish(packet_id);
                    }
                }
                AwaitingKind::Copies(copies, ack) => {
                    if let Some(count) = self.persist.held_publishes.get_mut(&entry.session) {
                        *count -= 1;
                        if *count == 0 {
                            self.persist.held_publishes.remove(&entry.session);
                        }
                    }
                    // The message is stored: its copies go even if the publisher's
                    // connection has gone (its resend is then acknowledged, not forwarded).
                    self.hand_over(copies);
                    if let Some(ack) = ack
                        && current
                        && let Some(session) = self.sessions.get(&entry.session)
                    {
                        session.send_ack(ack);
                    }
                }
            }
        }
    }

    /// Graceful stop: everything written is made durable (and backed up in the
    /// fault-tolerant mode), off the runtime thread.
    pub(super) async fn stop_store(&mut self) {
        if let Err(error) = self.commit(Vec::new()) {
            store_failed(
                &self.shared.metrics,
                &error,
                "write the last changes",
                None,
                None,
            );
        }
        let store = self.persist.store.clone();
        match tokio::task::spawn_blocking(move || store.graceful_stop()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                store_failed(&self.shared.metrics, &error, "sync the store", None, None)
            }
            Err(error) => tracing::error!(%error, "store: the stop task failed"),
        }
    }
}

//! Delivery: a PUBLISH from a client routed to the matching sessions, each copy handed to
//! its session's connection or queue, the inflight window pumped, resends, and the
//! acknowledgements that complete outbound messages (PUBACK, PUBREC, PUBCOMP) or inbound
//! QoS 2 ones (PUBREL).
//!
//! What concerns one session alone is written as methods on [`Session`], which unit tests
//! drive without the router; the router's methods add the store, the metrics and the
//! lookups across sessions.

use std::sync::Arc;
use std::time::Instant;

use super::{Router, store_failed, store_failure_reason};
use crate::broker::connection::link::{Ack, AckKind, Outbound};
use crate::broker::message::{Delivery, Message};
use crate::broker::metrics::Metrics;
use crate::broker::session::{ClientCounters, Inflight, Queued, Session};
use crate::broker::subscriptions::SessionKey;
use crate::mqtt::{PubResponse, Publish, QoS, ReasonCode};
use crate::store::{Stage, StoreError, StoreOp};

/// One copy of a message for one session, admitted and numbered, not yet handed over.
pub(super) type RoutedCopy = (SessionKey, Queued);

/// What [`Router::route_with`] did with a message.
struct Routed {
    /// Sessions it went to.
    delivered: usize,
    /// The copies held until their batch is durable (`hold`).
    held: Option<Vec<RoutedCopy>>,
    /// Whether anything was written to the store for it.
    wrote: bool,
}

/// What [`Router::admit`] decided.
struct Admitted {
    /// The copies to hand over.
    copies: Vec<RoutedCopy>,
    /// Their store operations.
    ops: Vec<StoreOp>,
    /// Sessions that got a copy in the store only, one entry per copy.
    spilled: Vec<SessionKey>,
}

impl Router {
    /// A PUBLISH from a client: forwarded to the subscribers, then acknowledged.
    pub(super) async fn client_publish(&mut self, key: SessionKey, publish: Publish) {
        if !self.publish_allowed(key, &publish) {
            return;
        }
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        let qos = publish.qos;
        let packet_id = publish.packet_id.unwrap_or(0);
        let mut inbound_record = Vec::new();
        if qos == QoS::ExactlyOnce {
            if session.incoming_qos2.contains(&packet_id) {
                // A re-sent PUBLISH of a message already forwarded (method B, MQTT-4.3.3-9):
                // acknowledge again, forward nothing.
                self.send_ack_durable(key, Ack::success(AckKind::PubRec, packet_id));
                return;
            }
            // Receive Maximum is enforced per connection by its reader (MQTT 5.0 §4.9).
            session.incoming_qos2.insert(packet_id);
            if session.is_persistent() {
                // Exactly once across a restart (MQTT-4.3.3): the packet id is stored in
                // the same batch as the copies it forwards.
                inbound_record.push(StoreOp::AddInbound {
                    client_id: session.client_id.clone(),
                    packet_id,
                });
            }
        }
        // In the unbuffered modes a persistent session's QoS 2 message is handed to the
        // subscribers only once its packet id record is durable, and the messages of the
        // same client that follow it wait behind it (MQTT-4.6.0-2..-4).
        let hold = self.persist.waits_for_sync
            && (!inbound_record.is_empty() || self.publish_is_held(key));
        self.congested = None;
        let message = Arc::new(Message::arrived(publish));
        // A retained message the store cannot keep refuses the whole PUBLISH: nothing is
        // forwarded, so that the refusal means what it says.
        let stored = if message.publish.retain {
            // MQTT-3.3.1-5..-7: store, replace, or clear with an empty payload.
            self.retain(&message).await
        } else {
            Ok(())
        };
        let routed = match stored {
            Ok(()) => self.route_with(&message, Some(key), inbound_record, hold),
            Err(error) => Err(error),
        };
        let wrote = message.publish.retain || matches!(routed, Ok(Routed { wrote: true, .. }));
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        if let Some(backlog) = self.congested.take()
            && let Some(link) = session.link()
        {
            link.throttle.set(backlog);
        }
        let Routed {
            delivered, held, ..
        } = match routed {
            Ok(routed) => routed,
            Err(error) => {
                // Not acknowledged as stored (issue 6): the QoS 2 exchange ends here and its
                // packet id is free again, whether refused (MQTT 5.0 §4.3.3) or left for a
                // resend after the connection closes.
                session.incoming_qos2.remove(&packet_id);
                tracing::warn!(
                    client_id = %session.client_id,
                    topic = message.topic(),
                    %error,
                    "PUBLISH refused: the store could not keep it"
                );
                self.refuse_unstored(key, qos, packet_id, &error).await;
                return;
            }
        };
        let reason = if delivered == 0 && session.protocol.is_v5() {
            ReasonCode::NoMatchingSubscribers
        } else {
            ReasonCode::Success
        };
        let ack = match qos {
            QoS::AtMostOnce => None,
            QoS::AtLeastOnce => Some(Ack::new(AckKind::PubAck, packet_id, reason)),
            QoS::ExactlyOnce => Some(Ack::new(AckKind::PubRec, packet_id, reason)),
        };
        match (held, ack) {
            (Some(copies), ack) => self.hold_copies(key, copies, ack),
            (None, Some(ack)) if wrote => self.send_ack_durable(key, ack),
            (None, Some(ack)) => self.send_ack_in_order(key, ack),
            (None, None) => {}
        }
    }

    /// Answers a PUBLISH that could not be stored. v5: PUBACK/PUBREC with 0x80 or 0x97
    /// (MQTT 5.0 §3.4.2.1, §3.5.2.1). v3.1.1 has no negative acknowledgement, so, as for a
    /// PUBLISH the server will not perform (MQTT-3.3.5-2), the connection is closed rather
    /// than the message acknowledged; the client resends it on its session
    /// (MQTT-4.4.0-1). QoS 0 has no acknowledgement to withhold (MQTT 5.0 §4.3.1).
    async fn refuse_unstored(
        &mut self,
        key: SessionKey,
        qos: QoS,
        packet_id: u16,
        error: &StoreError,
    ) {
        let Some(session) = self.sessions.get(&key) else {
            return;
        };
        let kind = match qos {
            QoS::AtMostOnce => return,
            QoS::AtLeastOnce => AckKind::PubAck,
            QoS::ExactlyOnce => AckKind::PubRec,
        };
        if session.protocol.is_v5() {
            session.send_ack(Ack::new(kind, packet_id, store_failure_reason(error)));
        } else {
            // Closed by the server without DISCONNECT: the will goes out (MQTT-3.1.2-8).
            self.close_connection(key, None, true).await;
        }
    }

    /// Sends `message` to every matching subscription; returns how many sessions got it, or
    /// the store's error when the copies for persistent sessions could not be stored (the
    /// other copies still go).
    pub(super) async fn route(
        &mut self,
        message: &Arc<Message>,
        publisher: Option<SessionKey>,
    ) -> Result<usize, StoreError> {
        self.route_with(message, publisher, Vec::new(), false)
            .map(|routed| routed.delivered)
    }

    /// [`Router::route`], writing `ops` in the same batch as the copies. With `hold`, the
    /// copies are returned instead of handed over, for once their batch is durable.
    fn route_with(
        &mut self,
        message: &Arc<Message>,
        publisher: Option<SessionKey>,
        ops: Vec<StoreOp>,
        hold: bool,
    ) -> Result<Routed, StoreError> {
        let copies = self.plan(message, publisher);
        let delivered = copies.len();
        let Admitted {
            copies,
            ops: mut batch,
            spilled,
        } = self.admit(copies);
        batch.extend(ops);
        let wrote = !batch.is_empty();
        let stored = self.commit(batch);
        if stored.is_err() {
            self.unspill(&spilled);
        }
        match stored {
            Ok(()) if hold => Ok(Routed {
                delivered,
                held: Some(copies),
                wrote,
            }),
            Ok(()) => {
                self.hand_over(copies);
                Ok(Routed {
                    delivered,
                    held: None,
                    wrote,
                })
            }
            Err(error) => {
                // The copies for persistent sessions are dropped (memory keeps what the
                // store keeps); the others still go.
                store_failed(
                    &self.shared.metrics,
                    &error,
                    "queue a message for persistent sessions; those copies are dropped",
                    None,
                    Some(message.topic()),
                );
                let sessions = &self.sessions;
                let others: Vec<RoutedCopy> = copies
                    .into_iter()
                    .filter(|(key, queued)| {
                        queued.qos == QoS::AtMostOnce
                            || sessions.get(key).is_some_and(|s| !s.is_persistent())
                    })
                    .collect();
                self.hand_over(others);
                Err(error)
            }
        }
    }

    /// One copy per matching session for its overlapping ordinary subscriptions, at the
    /// highest QoS, with every matching subscription identifier (MQTT-3.3.4-2, -3), and one
    /// per shared subscription group.
    fn plan(&mut self, message: &Arc<Message>, publisher: Option<SessionKey>) -> Vec<RoutedCopy> {
        let mut matches = std::mem::take(&mut self.scratch);
        matches.clear();
        let sessions = &self.sessions;
        self.tree.matches(
            message.topic(),
            |key| sessions.get(&key).is_some_and(|s| s.is_connected()),
            &mut matches,
        );
        // No Local: not back to the publishing client (MQTT-3.8.3-3).
        matches.retain(|m| !(m.subscription.options.no_local && Some(m.session) == publisher));
        matches.sort_unstable_by_key(|m| (m.share.is_some(), m.session));
        let mut copies = Vec::new();
        let mut index = 0;
        while index < matches.len() {
            let first = &matches[index];
            let mut end = index + 1;
            if first.share.is_none() {
                while end < matches.len()
                    && matches[end].share.is_none()
                    && matches[end].session == first.session
                {
                    end += 1;
                }
            }
            let group = &matches[index..end];
            let max_qos = group
                .iter()
                .map(|m| m.subscription.options.qos)
                .max()
                .unwrap_or(QoS::AtMostOnce);
            let retain_as_published = group
                .iter()
                .any(|m| m.subscription.options.retain_as_published);
            let subscription_ids: Vec<u32> = group
                .iter()
                .filter_map(|m| m.subscription.identifier)
                .collect();
            // Delivery never crosses a read rule; checked only when rules exist.
            if self.permissions_active && !self.may_receive(first.session, message.topic()) {
                index = end;
                continue;
            }
            copies.push((
                first.session,
                Queued {
                    sequence: 0,
                    payload: 0,
                    message: message.clone(),
                    // Downgraded to the subscription's maximum QoS (MQTT-3.8.4-8 / 3.1.1
                    // §3.8.4).
                    qos: message.publish.qos.min(max_qos),
                    // Retain As Published (MQTT-3.3.1-12/-13).
                    retain: retain_as_published && message.publish.retain,
                    subscription_ids,
                    share: first.share.clone(),
                },
            ));
            index = end;
        }
        self.scratch = matches;
        copies
    }

    /// Hands one message to one session (see [`Router::admit`] and [`Router::hand_over`]);
    /// returns the store's error when its copy could not be stored (then dropped).
    pub(super) async fn deliver(
        &mut self,
        key: SessionKey,
        queued: Queued,
    ) -> Result<(), StoreError> {
        let Admitted {
            copies,
            ops,
            spilled,
        } = self.admit(vec![(key, queued)]);
        if let Err(error) = self.commit(ops) {
            self.unspill(&spilled);
            store_failed(
                &self.shared.metrics,
                &error,
                "queue a message; the copy is dropped",
                self.sessions.get(&key).map(|s| &*s.client_id),
                None,
            );
            return Err(error);
        }
        self.hand_over(copies);
        Ok(())
    }

    /// Decides for each copy whether it goes: an expired message, a QoS 1/2 copy for a full
    /// queue (bounded by `max_queued_messages`) or a copy with a Message Expiry Interval of
    /// 0 that cannot start now are dropped and counted. The QoS 1/2 copies kept are
    /// numbered; those for persistent sessions come with their store operations (one
    /// payload for all of them), and those that wait in the store only (see [`spill`]) are
    /// not handed over.
    ///
    /// [`spill`]: super::spill
    fn admit(&mut self, copies: Vec<RoutedCopy>) -> Admitted {
        let max_queued = u64::from(self.limits.max_queued_messages);
        let keeps_queues = self.persist.keeps_queues;
        let mut kept = Vec::with_capacity(copies.len());
        let mut ops = Vec::new();
        let mut spilled = Vec::new();
        // The payload id of the message last pushed, by its address: the copies of one
        // message share it within this batch.
        let mut payload: Option<(*const Message, u64)> = None;
        for (key, mut queued) in copies {
            let Some(session) = self.sessions.get_mut(&key) else {
                continue;
            };
            // A message with a Message Expiry Interval of 0 goes only where its delivery
            // starts now: MQTT-3.3.2-5 drops only copies whose delivery has not started,
            // and any copy that waits (offline, behind a full window) has expired before it
            // could start.
            let immediate = queued.message.expires_on_arrival();
            if !immediate && queued.message.has_expired() {
                Metrics::add(&self.shared.metrics.messages_dropped, 1);
                continue;
            }
            if queued.qos == QoS::AtMostOnce {
                // QoS 0 is never queued for an offline session.
                if session.is_connected() {
                    kept.push((key, queued));
                }
                continue;
            }
            if session.is_queue_full(max_queued) || (immediate && !session.can_send_now()) {
                Metrics::add(&self.shared.metrics.messages_dropped, 1);
                if let Some(connected) = &session.connection {
                    ClientCounters::add(&connected.info.counters.dropped);
                }
                continue;
            }
            queued.sequence = session.next_sequence();
            if session.is_persistent() {
                let address = Arc::as_ptr(&queued.message);
                queued.payload = match payload {
                    Some((last, id)) if last == address => id,
                    _ => {
                        let id = self.next_payload;
                        self.next_payload += 1;
                        payload = Some((address, id));
                        id
                    }
                };
                ops.push(StoreOp::PushMessage {
                    client_id: session.client_id.clone(),
                    record: queued.to_record(None),
                });
                if keeps_queues && session.spills_next() {
                    session.spill_one(queued.sequence);
                    spilled.push(key);
                    continue;
                }
            }
            kept.push((key, queued));
        }
        Admitted {
            copies: kept,
            ops,
            spilled,
        }
    }

    /// The store refused the batch that would have held these spilled copies.
    fn unspill(&mut self, spilled: &[SessionKey]) {
        for key in spilled {
            if let Some(session) = self.sessions.get_mut(key) {
                session.unspill_one();
            }
        }
    }

    /// Gives admitted copies to their sessions: straight to the connection when the
    /// inflight window allows, otherwise into the queue. QoS 0 is the first to go when a
    /// connection cannot keep up.
    pub(super) fn hand_over(&mut self, copies: Vec<RoutedCopy>) {
        for (key, queued) in copies {
            let Some(session) = self.sessions.get_mut(&key) else {
                continue;
            };
            if queued.qos == QoS::AtMostOnce {
                if let Some(link) = session.link() {
                    if !link.try_send_qos0(delivery(&queued, None, false)) {
                        Metrics::add(&self.shared.metrics.messages_dropped, 1);
                        if let Some(connected) = &session.connection {
                            ClientCounters::add(&connected.info.counters.dropped);
                        }
                    } else if self.congested.is_none() && link.backlog.is_congested() {
                        self.congested = Some(link.backlog.clone());
                    }
                }
                continue;
            }
            if self.persist.keeps_queues
                && session.is_persistent()
                && (session.spilled() > 0 || !session.is_connected())
            {
                // Held until its batch was durable, it finds its session offline or with
                // older messages in the store only: it is in the store already, and waits
                // there behind them (MQTT-4.6.0-6).
                session.spill_one(queued.sequence);
                continue;
            }
            let before = session.inflight.len();
            session.send_or_queue(queued);
            self.stage_sent(key, before);
        }
    }

    /// Records the packet ids of the messages a persistent session has sent since its
    /// inflight list was `before` long, so that a restart resends them with DUP and the
    /// same ids (MQTT-4.4.0-1).
    pub(super) fn stage_sent(&mut self, key: SessionKey, before: usize) {
        let Some(session) = self.sessions.get(&key) else {
            return;
        };
        if !session.is_persistent() || session.inflight.len() <= before {
            return;
        }
        let client_id = session.client_id.clone();
        let defer = session.defer_sends;
        let sent: Vec<(u64, u16)> = session
            .inflight
            .iter()
            .skip(before)
            .map(|i| (i.queued.sequence, i.packet_id))
            .collect();
        for (sequence, packet_id) in sent {
            if defer {
                self.send_when_durable(key, packet_id);
            }
            self.stage(StoreOp::SetStage {
                client_id: client_id.clone(),
                sequence,
                stage: Stage {
                    packet_id,
                    released: false,
                },
            });
        }
    }

    /// Resends messages owed a resend, then moves queued messages into the inflight window,
    /// while it has room; expired queued messages are dropped.
    pub(super) async fn pump(&mut self, key: SessionKey) {
        let now = Instant::now();
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        let before = session.inflight.len();
        let expired = session.pump_queue(now);
        let persistent = session.is_persistent();
        let client_id = session.client_id.clone();
        self.stage_sent(key, before);
        if !expired.is_empty() {
            Metrics::add(&self.shared.metrics.messages_dropped, expired.len() as u64);
            if persistent {
                for queued in expired {
                    self.stage(StoreOp::RemoveMessage {
                        client_id: client_id.clone(),
                        sequence: queued.sequence,
                        payload: queued.payload,
                    });
                }
            }
        }
        self.refill(key);
    }

    /// PUBACK, PUBCOMP, or a discarded oversize PUBLISH: the message is done.
    pub(super) async fn complete_outbound(&mut self, key: SessionKey, packet_id: u16) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        let Some(done) = session.complete(packet_id) else {
            return;
        };
        if session.is_persistent() {
            // Left in the store, the message would only be delivered again after a
            // restart (a duplicate QoS 1/2 allows); nobody waits for this answer.
            let op = StoreOp::RemoveMessage {
                client_id: session.client_id.clone(),
                sequence: done.queued.sequence,
                payload: done.queued.payload,
            };
            self.stage(op);
        }
        self.pump(key).await;
    }

    pub(super) async fn pubrec(&mut self, key: SessionKey, rec: PubResponse) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        if session.receive_pubrec(&rec) {
            self.complete_outbound(key, rec.packet_id).await;
            return;
        }
        // PUBREL has gone: after a restart it goes again, not the PUBLISH (MQTT-4.3.3).
        let released = session
            .inflight
            .iter()
            .find(|i| i.packet_id == rec.packet_id && i.released)
            .map(|i| i.queued.sequence);
        if let Some(sequence) = released
            && session.is_persistent()
        {
            let op = StoreOp::SetStage {
                client_id: session.client_id.clone(),
                sequence,
                stage: Stage {
                    packet_id: rec.packet_id,
                    released: true,
                },
            };
            self.stage(op);
        }
    }

    /// PUBREL for an inbound QoS 2 message: the packet id is free again, PUBCOMP goes back
    /// (after the removal of its record is durable, in the unbuffered modes: otherwise a
    /// restart could take the client's next message with this id for a resend).
    pub(super) fn pubrel(&mut self, key: SessionKey, packet_id: u16) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        let (known, ack) = session.answer_pubrel(packet_id);
        if known && session.is_persistent() {
            let op = StoreOp::RemoveInbound {
                client_id: session.client_id.clone(),
                packet_id,
            };
            self.stage(op);
            // Answered once the packet id is free in the store too: a crash before would
            // leave it marked, and the client's next message with that id, after PUBCOMP,
            // would be taken for a resend.
            self.send_ack_durable(key, ack);
        } else {
            self.send_ack_in_order(key, ack);
        }
    }
}

impl Session {
    /// Whether a new QoS 1/2 message goes straight out: connected, nothing queued ahead of
    /// it, and room in the inflight window.
    pub(super) fn can_send_now(&self) -> bool {
        self.is_connected() && self.queue.is_empty() && self.spilled() == 0 && self.has_window()
    }

    /// Whether a new QoS 1/2 message must be dropped: the queue holds `max_queued` and the
    /// message could not go straight out.
    pub(super) fn is_queue_full(&self, max_queued: u64) -> bool {
        self.queued_len() >= max_queued && !self.can_send_now()
    }

    /// Sends a QoS 1/2 message now if it can go, otherwise queues it behind the others.
    pub(super) fn send_or_queue(&mut self, queued: Queued) {
        if self.can_send_now() {
            self.send_inflight(queued);
        } else {
            self.queue.push_back(queued);
        }
    }

    /// Sends a message under a fresh packet id and records it as in flight; with no id free
    /// it goes back to the front of the queue.
    pub(super) fn send_inflight(&mut self, queued: Queued) {
        let Some(packet_id) = self.allocate_packet_id() else {
            self.queue.push_front(queued);
            return;
        };
        let deferred = self.defer_sends && queued.qos != QoS::AtMostOnce;
        if let Some(link) = self.link()
            && !deferred
        {
            link.send(Outbound::Publish(delivery(&queued, Some(packet_id), false)));
        }
        self.inflight.push_back(Inflight {
            packet_id,
            queued,
            released: false,
        });
    }

    /// Sends an in-flight PUBLISH held back by `defer_sends`, for the first time
    /// (DUP 0, MQTT-3.3.1-1), unless it is done already.
    pub(super) fn send_held_publish(&self, packet_id: u16) {
        let Some(inflight) = self
            .inflight
            .iter()
            .find(|i| i.packet_id == packet_id && !i.released)
        else {
            return;
        };
        if let Some(link) = self.link() {
            link.send(Outbound::Publish(delivery(
                &inflight.queued,
                Some(packet_id),
                false,
            )));
        }
    }

    /// Resends, with DUP, the in-flight PUBLISHes owed a resend that the window has room for.
    pub(super) fn resend_within_window(&mut self) {
        while self.is_connected() && self.has_window_for_resend() {
            let Some(packet_id) = self.pending_resend.pop_front() else {
                break;
            };
            let Some(inflight) = self.inflight.iter().find(|i| i.packet_id == packet_id) else {
                continue;
            };
            if let Some(link) = self.link() {
                link.send(Outbound::Publish(delivery(
                    &inflight.queued,
                    Some(packet_id),
                    true,
                )));
            }
        }
    }

    /// Resends what is owed a resend, then moves queued messages into the inflight window
    /// while it has room. Returns the queued messages dropped because they expired
    /// (MQTT-3.3.2-5), for the store.
    pub(super) fn pump_queue(&mut self, now: Instant) -> Vec<Queued> {
        if !self.pending_resend.is_empty() {
            self.resend_within_window();
        }
        let mut expired = Vec::new();
        while self.is_connected() && self.has_window() {
            let Some(queued) = self.queue.pop_front() else {
                break;
            };
            if queued.message.is_expired(now) {
                // Expired messages are dropped from queues (MQTT-3.3.2-5).
                expired.push(queued);
                continue;
            }
            self.send_inflight(queued);
        }
        expired
    }

    /// The in-flight message `packet_id` is done (acknowledged, refused or discarded):
    /// returns it, or `None` for an id not in flight.
    pub(super) fn complete(&mut self, packet_id: u16) -> Option<Inflight> {
        let position = self
            .inflight
            .iter()
            .position(|i| i.packet_id == packet_id)?;
        let done = self.inflight.remove(position)?;
        self.forget_resend(packet_id);
        Some(done)
    }

    /// PUBREC for an outbound QoS 2 message: PUBREL goes back. Returns true when the client
    /// refused the message (an error reason), which is then done (MQTT 5.0 §4.3.3) and for
    /// the caller to complete.
    pub(super) fn receive_pubrec(&mut self, rec: &PubResponse) -> bool {
        let found = self
            .inflight
            .iter_mut()
            .find(|i| i.packet_id == rec.packet_id && i.queued.qos == QoS::ExactlyOnce);
        match found {
            Some(_) if rec.reason.is_error() => true,
            Some(inflight) => {
                inflight.released = true;
                // Received on an earlier connection: the PUBLISH need not go again.
                self.forget_resend(rec.packet_id);
                self.send_ack(Ack::success(AckKind::PubRel, rec.packet_id));
                false
            }
            None => {
                let reason = if self.protocol.is_v5() {
                    ReasonCode::PacketIdentifierNotFound
                } else {
                    ReasonCode::Success
                };
                self.send_ack(Ack::new(AckKind::PubRel, rec.packet_id, reason));
                false
            }
        }
    }

    /// PUBREL for an inbound QoS 2 message: the packet id is free again, PUBCOMP goes back.
    #[cfg(test)]
    pub(super) fn receive_pubrel(&mut self, packet_id: u16) {
        let (_, ack) = self.answer_pubrel(packet_id);
        self.send_ack(ack);
    }

    /// Frees an inbound QoS 2 packet id: whether it was in use, and the PUBCOMP to send.
    pub(super) fn answer_pubrel(&mut self, packet_id: u16) -> (bool, Ack) {
        let known = self.incoming_qos2.remove(&packet_id);
        let reason = if known || !self.protocol.is_v5() {
            ReasonCode::Success
        } else {
            ReasonCode::PacketIdentifierNotFound
        };
        (known, Ack::new(AckKind::PubComp, packet_id, reason))
    }

    /// On resume: unacknowledged PUBLISHes again with DUP and PUBRELs again
    /// (MQTT-4.4.0-1), in the original order (MQTT-4.6.0-1..-4), ahead of the queue. The
    /// resent PUBLISHes count against the new connection's Receive Maximum like any other
    /// (MQTT-3.3.4-9, MQTT-4.9.0-1/-2; QoS 2 ones until PUBCOMP): those beyond it wait in
    /// `pending_resend` for [`Session::pump_queue`], which sends them as acknowledgements
    /// free slots. Onward delivery of these has started, so they are resent even if their
    /// expiry has passed since (MQTT-3.3.2-5 only drops copies whose delivery has not
    /// started).
    pub(super) fn resend_after_resume(&mut self) {
        self.pending_resend.clear();
        let mut unacknowledged = self.inflight.iter().filter(|i| i.released).count();
        for inflight in &self.inflight {
            let Some(link) = self.connection.as_ref().map(|c| &c.link) else {
                break;
            };
            if inflight.released {
                link.send(Outbound::Ack(Ack::success(
                    AckKind::PubRel,
                    inflight.packet_id,
                )));
            } else if unacknowledged < self.window && self.pending_resend.is_empty() {
                unacknowledged += 1;
                link.send(Outbound::Publish(delivery(
                    &inflight.queued,
                    Some(inflight.packet_id),
                    true,
                )));
            } else {
                self.pending_resend.push_back(inflight.packet_id);
            }
        }
    }
}

/// One copy of a queued message as the connection's writer sends it.
pub(super) fn delivery(queued: &Queued, packet_id: Option<u16>, dup: bool) -> Delivery {
    Delivery {
        message: queued.message.clone(),
        qos: queued.qos,
        packet_id,
        dup,
        retain: queued.retain,
        subscription_ids: queued.subscription_ids.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::testing::{connected_session, inflight, message_at, queued, sent};
    use crate::mqtt::{Properties, ProtocolVersion, PubResponse, QoS, ReasonCode};

    fn pubrec(packet_id: u16, reason: ReasonCode) -> PubResponse {
        PubResponse {
            packet_id,
            reason,
            properties: Properties::default(),
        }
    }

    #[test]
    fn messages_go_out_while_the_window_has_room_then_queue_in_order() {
        // MQTT-4.9.0-2: no more QoS 1/2 PUBLISHes in flight than the Receive Maximum.
        let (mut session, mut receiver) = connected_session(ProtocolVersion::V5, 2);
        for topic in ["a", "b", "c", "d"] {
            session.send_or_queue(queued(topic, QoS::AtLeastOnce, None));
        }
        assert_eq!(sent(&mut receiver), ["PUBLISH a 1 new", "PUBLISH b 2 new"]);
        assert_eq!(session.inflight.len(), 2);
        let waiting: Vec<&str> = session.queue.iter().map(|q| q.message.topic()).collect();
        assert_eq!(waiting, ["c", "d"]);
        assert!(
            session.is_queue_full(2),
            "queue at its limit, no room to send"
        );
        assert!(!session.is_queue_full(3));
    }

    #[test]
    fn a_new_message_does_not_overtake_queued_ones() {
        // MQTT-4.6.0-6: messages to one subscriber keep their order, even when the window
        // has room while older messages still wait (e.g. queued while offline).
        let (mut session, mut receiver) = connected_session(ProtocolVersion::V5, 5);
        session
            .queue
            .push_back(queued("older", QoS::AtLeastOnce, None));
        assert!(!session.can_send_now());
        assert!(
            session.is_queue_full(1),
            "the queue is not bypassed at its limit"
        );
        session.send_or_queue(queued("newer", QoS::AtLeastOnce, None));
        assert!(sent(&mut receiver).is_empty());
        session.pump_queue(Instant::now());
        assert_eq!(
            sent(&mut receiver),
            ["PUBLISH older 1 new", "PUBLISH newer 2 new"]
        );
    }

    #[test]
    fn an_acknowledgement_frees_a_slot_for_the_next_queued_message() {
        // MQTT-4.6.0-6: messages go out in the order they were queued.
        let (mut session, mut receiver) = connected_session(ProtocolVersion::V5, 1);
        for topic in ["a", "b", "c"] {
            session.send_or_queue(queued(topic, QoS::AtLeastOnce, None));
        }
        assert_eq!(sent(&mut receiver), ["PUBLISH a 1 new"]);
        assert!(session.complete(7).is_none(), "7 is not in flight");
        let done = session
            .complete(1)
            .map(|i| i.queued.message.topic().to_owned());
        assert_eq!(done.as_deref(), Some("a"));
        assert!(session.pump_queue(Instant::now()).is_empty());
        assert_eq!(sent(&mut receiver), ["PUBLISH b 2 new"]);
        assert_eq!(session.queue.len(), 1);
    }

    #[test]
    fn a_disconnected_session_queues_everything() {
        let (mut session, mut receiver) = connected_session(ProtocolVersion::V5, 10);
        session.connection = None;
        session.send_or_queue(queued("a", QoS::AtLeastOnce, None));
        assert!(session.pump_queue(Instant::now()).is_empty());
        assert!(sent(&mut receiver).is_empty());
        assert!(session.inflight.is_empty());
        assert_eq!(session.queue.len(), 1);
        assert!(
            session.is_queue_full(1),
            "offline: nothing can go straight out"
        );
    }

    #[test]
    fn pump_drops_queued_messages_that_expired_and_reports_them() {
        // MQTT-3.3.2-5: an expired message is not delivered onward.
        let (mut session, mut receiver) = connected_session(ProtocolVersion::V5, 1);
        let published = Instant::now();
        let mut expiring = queued("old", QoS::AtLeastOnce, None);
        expiring.message = message_at("old", Some(1), published);
        expiring.sequence = 5;
        let mut fresh = queued("new", QoS::AtLeastOnce, None);
        fresh.sequence = 6;
        session.queue.extend([expiring, fresh]);
        let expired = session.pump_queue(published + Duration::from_secs(2));
        let expired: Vec<u64> = expired.iter().map(|q| q.sequence).collect();
        assert_eq!(expired, [5]);
        assert_eq!(sent(&mut receiver), ["PUBLISH new 1 new"]);
        assert!(session.queue.is_empty());
    }

    #[test]
    fn packet_ids_skip_those_still_in_flight() {
        // MQTT-2.2.1-3: a new PUBLISH takes an identifier not in use.
        let (mut session, mut receiver) = connected_session(ProtocolVersion::V5, 10);
        session
            .inflight
            .push_back(inflight(1, "x", QoS::AtLeastOnce));
        session
            .inflight
            .push_back(inflight(3, "y", QoS::AtLeastOnce));
        session.send_inflight(queued("a", QoS::AtLeastOnce, None));
        session.send_inflight(queued("b", QoS::AtLeastOnce, None));
        assert_eq!(sent(&mut receiver), ["PUBLISH a 2 new", "PUBLISH b 4 new"]);
        let ids: Vec<u16> = session.inflight.iter().map(|i| i.packet_id).collect();
        assert_eq!(ids, [1, 3, 2, 4]);
    }

    #[test]
    fn resume_resends_in_order_within_the_new_window() {
        // MQTT-4.4.0-1 (resend with DUP, PUBREL again), MQTT-4.6.0-1..-4 (original order),
        // MQTT-3.3.4-9 (the resends count against the Receive Maximum).
        let (mut session, mut receiver) = connected_session(ProtocolVersion::V5, 2);
        let mut released = inflight(1, "r", QoS::ExactlyOnce);
        released.released = true;
        session.inflight.push_back(released);
        session
            .inflight
            .push_back(inflight(2, "a", QoS::AtLeastOnce));
        session
            .inflight
            .push_back(inflight(3, "b", QoS::AtLeastOnce));
        session
            .inflight
            .push_back(inflight(4, "c", QoS::ExactlyOnce));
        session
            .queue
            .push_back(queued("queued", QoS::AtLeastOnce, None));

        session.resend_after_resume();
        assert!(session.pump_queue(Instant::now()).is_empty());
        assert_eq!(
            sent(&mut receiver),
            ["ACK PubRel 1 Success", "PUBLISH a 2 dup"],
            "the released one and one resend fill the window of 2"
        );
        assert_eq!(session.pending_resend, [3, 4]);

        session.complete(2);
        session.pump_queue(Instant::now());
        assert_eq!(sent(&mut receiver), ["PUBLISH b 3 dup"]);
        session.complete(1);
        session.complete(3);
        session.pump_queue(Instant::now());
        assert_eq!(
            sent(&mut receiver),
            ["PUBLISH c 4 dup", "PUBLISH queued 1 new"],
            "the queue waits until every resend is out; id 1 is free again"
        );
        assert!(session.pending_resend.is_empty());
    }

    #[test]
    fn a_qos2_message_holds_its_slot_until_pubcomp() {
        let (mut session, mut receiver) = connected_session(ProtocolVersion::V5, 1);
        session
            .inflight
            .push_back(inflight(1, "a", QoS::ExactlyOnce));
        session
            .inflight
            .push_back(inflight(2, "b", QoS::AtLeastOnce));
        session.resend_after_resume();
        assert_eq!(sent(&mut receiver), ["PUBLISH a 1 dup"]);
        // PUBREC for 1 arrives: PUBREL goes, 1 stays in flight until PUBCOMP.
        assert!(!session.receive_pubrec(&pubrec(1, ReasonCode::Success)));
        assert_eq!(sent(&mut receiver), ["ACK PubRel 1 Success"]);
        assert!(session.inflight[0].released);
        session.resend_within_window();
        assert!(sent(&mut receiver).is_empty(), "1 still holds the window");
        session.complete(1);
        session.pump_queue(Instant::now());
        assert_eq!(sent(&mut receiver), ["PUBLISH b 2 dup"]);
    }

    #[test]
    fn pubrec_for_an_unknown_id_or_with_an_error_reason() {
        let (mut session, mut receiver) = connected_session(ProtocolVersion::V5, 4);
        session
            .inflight
            .push_back(inflight(1, "q1", QoS::AtLeastOnce));
        session
            .inflight
            .push_back(inflight(2, "q2", QoS::ExactlyOnce));
        // A PUBREC names a QoS 2 message; for anything else the id is not found (MQTT 5.0
        // §3.6.2.1).
        assert!(!session.receive_pubrec(&pubrec(1, ReasonCode::Success)));
        assert!(!session.receive_pubrec(&pubrec(9, ReasonCode::Success)));
        assert_eq!(
            sent(&mut receiver),
            [
                "ACK PubRel 1 PacketIdentifierNotFound",
                "ACK PubRel 9 PacketIdentifierNotFound"
            ]
        );
        // A refusal ends the message (MQTT 5.0 §4.3.3): the caller completes it.
        assert!(session.receive_pubrec(&pubrec(2, ReasonCode::QuotaExceeded)));
        assert!(sent(&mut receiver).is_empty());

        let (mut v311, mut receiver) = connected_session(ProtocolVersion::V3_1_1, 4);
        assert!(!v311.receive_pubrec(&pubrec(9, ReasonCode::Success)));
        assert_eq!(sent(&mut receiver), ["ACK PubRel 9 Success"]);
    }

    #[test]
    fn pubrel_frees_the_inbound_id_and_answers_pubcomp() {
        // MQTT-4.3.3-9 method B; MQTT 5.0 §3.7.2.1 for the unknown id.
        let (mut session, mut receiver) = connected_session(ProtocolVersion::V5, 1);
        session.incoming_qos2.insert(7);
        session.receive_pubrel(7);
        session.receive_pubrel(7);
        assert_eq!(
            sent(&mut receiver),
            [
                "ACK PubComp 7 Success",
                "ACK PubComp 7 PacketIdentifierNotFound"
            ]
        );
        assert!(session.incoming_qos2.is_empty());

        let (mut v311, mut receiver) = connected_session(ProtocolVersion::V3_1_1, 1);
        v311.receive_pubrel(7);
        assert_eq!(sent(&mut receiver), ["ACK PubComp 7 Success"]);
    }
}

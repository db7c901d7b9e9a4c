//! Retained messages (MQTT-3.3.1-5..-7): the last retained message of each topic, and the
//! ones a new subscription gets (MQTT-3.3.1-9..-11), handed out in chunks.
//!
//! [`RetainedMessages`] is the container: a [`RetainedIndex`] by topic level, so that a
//! SUBSCRIBE costs what its filter matches; [`Router::retain`] keeps it and the store in step.
//!
//! A subscription's retained messages do not go out all at once: SUBSCRIBE records a
//! [`PendingMatch`] (a resumable cursor over the index, with the subscription's options and
//! identifier) in [`PendingRetained`], and every router turn
//! ([`Router::send_retained_chunks`]) hands each session at most one bounded chunk, and only
//! as much as it can take: its QoS 1/2 queue keeps room for live messages and its
//! connection's backlog stays far below the limits where QoS 0 messages are dropped. A
//! filter matching a million retained messages thus costs the router many short turns, with
//! everything else it has to do in between, instead of one long stall.
//!
//! Order (MQTT-4.6.0): the retained messages of one subscription go out in the index's
//! order, one subscription after the other in SUBSCRIBE order; live messages published
//! meanwhile may come in between, which the spec allows (it orders the messages of one topic
//! from one publisher). A chunk reads the index as it is when the chunk is taken, so a
//! subscriber never gets a topic's older retained message after a newer live one.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use foldhash::HashMap;

use super::{Router, store_failed};
use crate::broker::connection::link::READ_PAUSE_ITEMS;
use crate::broker::message::Message;
use crate::broker::metrics::Metrics;
use crate::broker::retained_index::{RetainedIndex, RetainedMatch};
use crate::broker::session::{Queued, Session};
use crate::broker::subscriptions::{SessionKey, Subscription};
use crate::mqtt::QoS;
use crate::store::{StoreError, StoreOp};

/// Most retained messages one session gets per router turn: small enough that a turn with
/// a few such sessions stays well under a millisecond.
pub(super) const RETAINED_CHUNK: usize = 256;
/// No retained chunk is taken for a session while its connection has this many items
/// waiting for the writer: half the mark at which the connection's own reader stops reading
/// its socket, so retained messages never pause a subscriber's reading (its PUBACKs, its
/// PINGREQs), and far below the limits where QoS 0 messages are dropped.
const RETAINED_BACKLOG: usize = READ_PAUSE_ITEMS / 2;
/// How soon the router looks again when every pending match waits for its subscriber (a
/// writer draining its backlog does not tell the router; an acknowledgement does, as a
/// message in its inbox). Short, because a subscriber that reads takes a backlog of
/// [`RETAINED_BACKLOG`] in well under a millisecond; the wake-up costs a few atomic loads
/// per waiting session.
pub(super) const RETAINED_RETRY: Duration = Duration::from_millis(2);

/// The retained message of each topic that has one.
#[derive(Debug, Default)]
pub(super) struct RetainedMessages {
    index: RetainedIndex,
}

impl RetainedMessages {
    /// Stores `message` as its topic's retained message, replacing any earlier one.
    pub(super) fn set(&mut self, message: Arc<Message>) {
        let topic = message.publish.topic.clone();
        self.index.set(&topic, message);
    }

    /// Removes the retained message of `topic`; returns whether there was one.
    pub(super) fn clear(&mut self, topic: &str) -> bool {
        self.index.remove(topic).is_some()
    }

    /// Every retained message (a store switch copies them all).
    pub(super) fn all(&self) -> Vec<Arc<Message>> {
        self.index.all()
    }

    pub(super) fn len(&self) -> usize {
        self.index.len()
    }

    /// Drops the messages expired at `now` (MQTT-3.3.2-5).
    pub(super) fn purge_expired(&mut self, now: Instant) {
        if !self.index.is_empty() {
            self.index.purge_expired(now);
        }
    }

    /// The next chunk of at most `max` unexpired messages of a match (see
    /// [`RetainedIndex::next_chunk`]).
    pub(super) fn next_chunk(
        &self,
        cursor: &mut RetainedMatch,
        max: usize,
        now: Instant,
        out: &mut Vec<Arc<Message>>,
    ) -> usize {
        self.index.next_chunk(cursor, max, now, out)
    }
}

/// The retained messages one subscription still has to get.
#[derive(Debug)]
pub(super) struct PendingMatch {
    /// The filter as subscribed: UNSUBSCRIBE and a new SUBSCRIBE find the match by it.
    filter: Box<str>,
    cursor: RetainedMatch,
    subscription: Subscription,
    /// The connection that subscribed: the match ends with it.
    connection_id: u64,
}

/// Each session's pending matches, in SUBSCRIBE order.
#[derive(Debug, Default)]
pub(super) struct PendingRetained {
    by_session: HashMap<SessionKey, VecDeque<PendingMatch>>,
    /// Reused by every turn.
    keys: Vec<SessionKey>,
    chunk: Vec<Arc<Message>>,
}

/// What the pending matches need from the run loop after a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RetainedTurn {
    /// Nothing pending.
    Idle,
    /// Some session can take more at once: the next turn should follow soon.
    Ready,
    /// Every pending match waits for its subscriber: look again after [`RETAINED_RETRY`].
    Blocked,
}

impl PendingRetained {
    pub(super) fn is_empty(&self) -> bool {
        self.by_session.is_empty()
    }

    /// Starts sending `filter`'s retained messages to the session, in place of a match still
    /// pending for the same filter (a new SUBSCRIBE replaces the subscription and sends its
    /// retained messages again, MQTT-3.8.4-3).
    pub(super) fn start(
        &mut self,
        key: SessionKey,
        connection_id: u64,
        filter: &str,
        subscription: Subscription,
    ) {
        let pending = self.by_session.entry(key).or_default();
        pending.retain(|m| &*m.filter != filter);
        pending.push_back(PendingMatch {
            filter: filter.into(),
            cursor: RetainedMatch::new(filter),
            subscription,
            connection_id,
        });
    }

    /// The subscription of `filter` was replaced without asking for its retained messages
    /// (Retain Handling 1 or 2): a match still pending goes on with the new options.
    pub(super) fn update(&mut self, key: SessionKey, filter: &str, subscription: Subscription) {
        if let Some(pending) = self.by_session.get_mut(&key) {
            for m in pending.iter_mut().filter(|m| &*m.filter == filter) {
                m.subscription = subscription;
            }
        }
    }

    /// UNSUBSCRIBE: the filter's pending match ends.
    pub(super) fn cancel(&mut self, key: SessionKey, filter: &str) {
        if let Some(pending) = self.by_session.get_mut(&key) {
            pending.retain(|m| &*m.filter != filter);
            if pending.is_empty() {
                self.by_session.remove(&key);
            }
        }
    }

    /// The session lost its connection or ended: its pending matches end.
    pub(super) fn cancel_session(&mut self, key: SessionKey) {
        self.by_session.remove(&key);
    }

    #[cfg(test)]
    pub(super) fn pending(&self, key: SessionKey) -> usize {
        self.by_session.get(&key).map_or(0, VecDeque::len)
    }
}

/// How many retained messages of a subscription at `qos` the session can take now.
fn room_for_retained(session: &Session, qos: QoS, max_queued: usize) -> usize {
    let Some(link) = session.link() else {
        return 0;
    };
    let mut room = RETAINED_BACKLOG
        .saturating_sub(link.backlog.waiting())
        .min(RETAINED_CHUNK);
    if qos != QoS::AtMostOnce {
        // Retained messages fill at most half the queue, so that live messages still find
        // room and nothing is dropped for `max_queued_messages`.
        let queued = usize::try_from(session.queued_len()).unwrap_or(usize::MAX);
        room = room.min((max_queued / 2).max(1).saturating_sub(queued));
    }
    room
}

impl Router {
    /// A PUBLISH with RETAIN set: stored, replacing the topic's earlier one, or, with an
    /// empty payload, clearing it (MQTT-3.3.1-5..-7); the store follows. A message the
    /// store cannot keep does not replace the one it holds, and the error is returned.
    pub(super) async fn retain(&mut self, message: &Arc<Message>) -> Result<(), StoreError> {
        let topic = message.publish.topic.clone();
        let result = if message.publish.payload.is_empty() || message.expires_on_arrival() {
            // An empty retained message clears the topic and is not stored (MQTT-3.3.1-6/-7);
            // one with a Message Expiry Interval of 0 replaces the old one (MQTT-3.3.1-5)
            // but has expired before anyone could get it (MQTT-3.3.2-5).
            if self.retained.clear(&topic) {
                self.commit(vec![StoreOp::SetRetained {
                    topic: topic.clone(),
                    message: None,
                }])
            } else {
                Ok(())
            }
        } else {
            let stored = self.commit(vec![StoreOp::SetRetained {
                topic: topic.clone(),
                message: Some(message.clone()),
            }]);
            if stored.is_ok() {
                self.retained_sweep.note(message.expires_at);
                self.retained.set(message.clone());
            }
            stored
        };
        if let Err(error) = &result {
            store_failed(
                &self.shared.metrics,
                error,
                "keep the retained message",
                None,
                Some(&topic),
            );
        }
        Metrics::set(&self.shared.metrics.retained, self.retained.len() as u64);
        result
    }

    /// One router turn of the pending matches: each session that can take some gets one
    /// chunk of its first pending match.
    pub(super) async fn send_retained_chunks(&mut self) -> RetainedTurn {
        if self.pending_retained.is_empty() {
            return RetainedTurn::Idle;
        }
        let now = Instant::now();
        let max_queued = self.limits.max_queued_messages as usize;
        let mut keys = std::mem::take(&mut self.pending_retained.keys);
        let mut chunk = std::mem::take(&mut self.pending_retained.chunk);
        keys.clear();
        keys.extend(self.pending_retained.by_session.keys().copied());
        let mut ready = false;
        for &key in &keys {
            let Some(pending) = self.pending_retained.by_session.get_mut(&key) else {
                continue;
            };
            let session = self.sessions.get(&key);
            let connection = session.and_then(|s| s.link()).map(|l| l.connection_id);
            let Some(first) = pending
                .front_mut()
                .filter(|first| connection == Some(first.connection_id))
            else {
                // The connection that subscribed is gone (cancel_session covers the usual
                // paths; this covers any other).
                self.pending_retained.by_session.remove(&key);
                continue;
            };
            let subscription = first.subscription;
            let room = session.map_or(0, |s| {
                room_for_retained(s, subscription.options.qos, max_queued)
            });
            if room == 0 {
                continue;
            }
            chunk.clear();
            self.retained
                .next_chunk(&mut first.cursor, room, now, &mut chunk);
            if first.cursor.is_done() {
                pending.pop_front();
                if pending.is_empty() {
                    self.pending_retained.by_session.remove(&key);
                }
            }
            ready |= self.pending_retained.by_session.contains_key(&key);
            for message in chunk.drain(..) {
                // Retained messages obey the read rules as live ones do.
                if !self.may_receive(key, message.topic()) {
                    continue;
                }
                let queued = Queued {
                    sequence: 0,
                    payload: 0,
                    qos: message.publish.qos.min(subscription.options.qos),
                    // Retained messages sent because of a subscription carry RETAIN=1
                    // (MQTT-3.3.1-8), whatever Retain As Published says.
                    retain: true,
                    subscription_ids: subscription.identifier.into_iter().collect(),
                    share: None,
                    message,
                };
                // A copy the store could not keep is dropped (`deliver` logged and counted
                // it); the match goes on.
                if let Err(error) = self.deliver(key, queued).await {
                    tracing::debug!(%error, "retained message not sent to a new subscription");
                }
            }
        }
        self.pending_retained.keys = keys;
        self.pending_retained.chunk = chunk;
        if self.pending_retained.is_empty() {
            RetainedTurn::Idle
        } else if ready {
            RetainedTurn::Ready
        } else {
            RetainedTurn::Blocked
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::message_at;
    use super::*;

    /// Every message a whole match of `filter` returns, as at SUBSCRIBE.
    fn matching(retained: &RetainedMessages, filter: &str, now: Instant) -> Vec<Arc<Message>> {
        let mut cursor = RetainedMatch::new(filter);
        let mut out = Vec::new();
        while !cursor.is_done() {
            retained.next_chunk(&mut cursor, 100, now, &mut out);
        }
        out
    }

    fn topics(retained: &RetainedMessages, filter: &str, now: Instant) -> Vec<String> {
        let mut topics: Vec<String> = matching(retained, filter, now)
            .iter()
            .map(|m| m.topic().to_owned())
            .collect();
        topics.sort();
        topics
    }

    #[test]
    fn a_topic_keeps_only_its_latest_retained_message() {
        // MQTT-3.3.1-5: a new retained message replaces the topic's earlier one.
        let now = Instant::now();
        let mut retained = RetainedMessages::default();
        retained.set(message_at("a/b", None, now));
        let latest = message_at("a/b", Some(60), now);
        retained.set(latest.clone());
        assert_eq!(retained.len(), 1);
        let found = matching(&retained, "a/b", now);
        assert_eq!(found.len(), 1);
        assert!(std::sync::Arc::ptr_eq(&found[0], &latest));
    }

    #[test]
    fn clear_says_whether_there_was_a_message() {
        // MQTT-3.3.1-6: an empty retained message clears the topic.
        let now = Instant::now();
        let mut retained = RetainedMessages::default();
        retained.set(message_at("a", None, now));
        assert!(retained.clear("a"));
        assert!(!retained.clear("a"));
        assert!(!retained.clear("never"));
        assert_eq!(retained.len(), 0);
    }

    #[test]
    fn matching_follows_the_filter_and_skips_expired_messages() {
        // MQTT-3.3.1-9 (what a subscription gets), MQTT-3.3.2-5 (expired: not sent),
        // MQTT-4.7.2-1 (`#` and `+` at the start do not match `$` topics).
        let now = Instant::now();
        let mut retained = RetainedMessages::default();
        for topic in [
            "home/kitchen",
            "home/hall/lamp",
            "office",
            "$SYS/broker/uptime",
        ] {
            retained.set(message_at(topic, None, now));
        }
        retained.set(message_at("home/garage", Some(10), now));
        assert_eq!(
            topics(&retained, "home/+", now),
            ["home/garage", "home/kitchen"]
        );
        assert_eq!(
            topics(&retained, "home/#", now + Duration::from_secs(11)),
            ["home/hall/lamp", "home/kitchen"]
        );
        assert_eq!(
            topics(&retained, "#", now),
            ["home/garage", "home/hall/lamp", "home/kitchen", "office"]
        );
        assert_eq!(topics(&retained, "$SYS/#", now), ["$SYS/broker/uptime"]);
        assert!(topics(&retained, "nothing/here", now).is_empty());
    }

    #[test]
    fn purge_removes_only_expired_messages() {
        let now = Instant::now();
        let mut retained = RetainedMessages::default();
        retained.set(message_at("short", Some(1), now));
        retained.set(message_at("long", Some(100), now));
        retained.set(message_at("forever", None, now));
        retained.purge_expired(now);
        assert_eq!(retained.len(), 3);
        retained.purge_expired(now + Duration::from_secs(2));
        assert_eq!(retained.len(), 2);
        assert!(!retained.clear("short"));
    }
}

/// The scheduling of pending matches, driven through the router without its run loop.
#[cfg(test)]
mod scheduling_tests {
    use std::sync::Arc;
    use std::time::Instant;

    use tokio::sync::mpsc;

    use super::super::Router;
    use super::super::testing::{connected_session, link, message_at};
    use super::{RETAINED_BACKLOG, RETAINED_CHUNK, RetainedTurn};
    use crate::broker::connection::link::{Outbound, Outbox};
    use crate::broker::metrics::Metrics;
    use crate::broker::state::BrokerState;
    use crate::broker::subscriptions::SessionKey;
    use crate::mqtt::{
        Properties, ProtocolVersion, QoS, RetainHandling, Subscribe, SubscribeFilter,
        SubscriptionOptions, Unsubscribe,
    };
    use crate::store::MemoryStore;

    const KEY: SessionKey = 1;

    /// A router holding `count` retained messages on `t/00000`, `t/00001`, ... (index order
    /// is numeric order), with one connected v5 session `KEY` with an inflight window of
    /// `window`; the receiver is that session's connection.
    fn router(count: usize, window: usize, max_queued: u32) -> (Router, Outbox) {
        let (_inbox, receiver) = mpsc::channel(1);
        let mut router = Router::new(
            Arc::new(BrokerState::new()),
            Arc::new(MemoryStore::new()),
            receiver,
        );
        router.limits.max_queued_messages = max_queued;
        let now = Instant::now();
        for i in 0..count {
            router
                .retained
                .set(message_at(&format!("t/{i:05}"), None, now));
        }
        let (session, connection) = connected_session(ProtocolVersion::V5, window);
        router.sessions.insert(KEY, Box::new(session));
        (router, connection)
    }

    fn subscribe(packet_id: u16, filters: &[&str], qos: QoS) -> Subscribe {
        Subscribe {
            packet_id,
            properties: Properties {
                subscription_identifiers: vec![7],
                ..Properties::default()
            },
            filters: filters
                .iter()
                .map(|filter| SubscribeFilter {
                    filter: (*filter).into(),
                    options: SubscriptionOptions {
                        qos,
                        ..SubscriptionOptions::default()
                    },
                })
                .collect(),
        }
    }

    fn unsubscribe(filter: &str) -> Unsubscribe {
        Unsubscribe {
            packet_id: 9,
            properties: Properties::default(),
            filters: vec![filter.into()],
        }
    }

    /// What reached the connection: the topics of the PUBLISHes (checked to carry RETAIN=1
    /// and the subscription identifier) and the other packets' types, taken off the backlog
    /// as the writer would.
    fn drain(connection: &mut Outbox) -> Vec<String> {
        let mut items = Vec::new();
        while let Some(item) = connection.try_recv() {
            items.push(match item {
                Outbound::Publish(delivery) => {
                    assert!(delivery.retain, "MQTT-3.3.1-8");
                    assert_eq!(delivery.subscription_ids, [7], "MQTT-3.3.4-3");
                    delivery.message.topic().to_owned()
                }
                Outbound::Packet(packet) => packet.packet_type().to_string(),
                other => format!("{other:?}"),
            });
        }
        items
    }

    fn dropped(router: &Router) -> u64 {
        Metrics::get(&router.shared.metrics.messages_dropped)
    }

    #[tokio::test]
    async fn suback_first_then_one_chunk_per_turn_in_index_order() {
        let (mut router, mut connection) = router(1000, 10, 1000);
        router
            .subscribe(KEY, subscribe(1, &["t/+"], QoS::AtMostOnce))
            .await;
        let suback = drain(&mut connection);
        assert_eq!(suback.len(), 1, "only the SUBACK before the first turn");
        assert!(suback[0].contains("SUBACK"), "{suback:?}");
        let mut received = Vec::new();
        let mut turns = 0;
        loop {
            let turn = router.send_retained_chunks().await;
            turns += 1;
            let chunk = drain(&mut connection);
            assert!(chunk.len() <= RETAINED_CHUNK);
            received.extend(chunk);
            if turn == RetainedTurn::Idle {
                break;
            }
            assert_eq!(turn, RetainedTurn::Ready);
        }
        assert_eq!(turns, 1000usize.div_ceil(RETAINED_CHUNK));
        let expected: Vec<String> = (0..1000).map(|i| format!("t/{i:05}")).collect();
        assert_eq!(
            received, expected,
            "every message once, in the index's order"
        );
        assert_eq!(router.pending_retained.pending(KEY), 0);
        assert_eq!(dropped(&router), 0);
    }

    #[tokio::test]
    async fn a_full_queue_blocks_the_match_until_acknowledgements_free_room() {
        // max_queued_messages 10: retained messages fill at most 5 of it; window 2.
        let (mut router, mut connection) = router(100, 2, 10);
        router
            .subscribe(KEY, subscribe(1, &["t/+"], QoS::AtLeastOnce))
            .await;
        drain(&mut connection);
        assert_eq!(router.send_retained_chunks().await, RetainedTurn::Ready);
        assert_eq!(drain(&mut connection).len(), 2, "the window's worth");
        assert_eq!(router.sessions[&KEY].queue.len(), 3);
        assert_eq!(router.send_retained_chunks().await, RetainedTurn::Ready);
        assert_eq!(router.sessions[&KEY].queue.len(), 5);
        assert_eq!(router.send_retained_chunks().await, RetainedTurn::Blocked);
        assert_eq!(
            router.sessions[&KEY].queue.len(),
            5,
            "nothing pulled when blocked"
        );
        // Acknowledging moves the queue on and frees room for the next chunk.
        let mut received = 2;
        let mut turns = 0;
        while router.send_retained_chunks().await != RetainedTurn::Idle
            || !router.sessions[&KEY].inflight.is_empty()
        {
            let in_flight: Vec<u16> = router.sessions[&KEY]
                .inflight
                .iter()
                .map(|i| i.packet_id)
                .collect();
            for packet_id in in_flight {
                router.complete_outbound(KEY, packet_id).await;
            }
            received += drain(&mut connection).len();
            assert!(router.sessions[&KEY].queue.len() <= 5);
            turns += 1;
            assert!(turns < 1000, "the match does not end");
        }
        assert_eq!(received, 100);
        assert_eq!(dropped(&router), 0, "max_queued_messages dropped nothing");
    }

    #[tokio::test]
    async fn a_congested_backlog_blocks_qos0_until_the_writer_drains() {
        let (mut router, mut connection) = router(3 * RETAINED_BACKLOG, 10, 1000);
        router
            .subscribe(KEY, subscribe(1, &["t/+"], QoS::AtMostOnce))
            .await;
        // The writer takes nothing: the backlog fills to its retained share, then stops.
        let backlog = router.sessions[&KEY]
            .link()
            .expect("connected")
            .backlog
            .clone();
        let mut turns = 0;
        while router.send_retained_chunks().await == RetainedTurn::Ready {
            turns += 1;
            assert!(turns < 1000);
        }
        assert_eq!(router.send_retained_chunks().await, RetainedTurn::Blocked);
        assert!(
            backlog.waiting() <= RETAINED_BACKLOG + 1,
            "{}",
            backlog.waiting()
        );
        let mut received = drain(&mut connection).len();
        // The writer drains: the match goes on to the end, nothing dropped.
        while router.send_retained_chunks().await != RetainedTurn::Idle {
            received += drain(&mut connection).len();
        }
        received += drain(&mut connection).len();
        assert_eq!(
            received,
            1 + 3 * RETAINED_BACKLOG,
            "SUBACK and every message"
        );
        assert_eq!(dropped(&router), 0);
    }

    #[tokio::test]
    async fn unsubscribe_cancels_its_match_and_disconnect_cancels_all() {
        let (mut router, mut connection) = router(1000, 10, 1000);
        router
            .subscribe(KEY, subscribe(1, &["t/+", "t/#"], QoS::AtMostOnce))
            .await;
        assert_eq!(router.pending_retained.pending(KEY), 2);
        router.send_retained_chunks().await;
        assert_eq!(drain(&mut connection).len(), 1 + RETAINED_CHUNK);
        router.unsubscribe(KEY, unsubscribe("t/+")).await;
        assert_eq!(router.pending_retained.pending(KEY), 1, "t/# goes on");
        router.send_retained_chunks().await;
        let items = drain(&mut connection);
        assert_eq!(items.len(), 1 + RETAINED_CHUNK);
        // Only t/# continued after the UNSUBACK, from its own start.
        assert_eq!(items[1], "t/00000");
        router.close_connection(KEY, None, false).await;
        assert_eq!(router.pending_retained.pending(KEY), 0);
        assert_eq!(router.send_retained_chunks().await, RetainedTurn::Idle);
    }

    #[tokio::test]
    async fn a_new_connection_does_not_inherit_the_old_ones_match() {
        let (mut router, _old) = router(1000, 10, 1000);
        router
            .subscribe(KEY, subscribe(1, &["t/+"], QoS::AtMostOnce))
            .await;
        // The session is now attached to another connection (as after a takeover that
        // went around cancel_session): the old match is dropped, nothing is sent.
        let (mut session, _) = connected_session(ProtocolVersion::V5, 10);
        let (link, mut connection) = link(2);
        if let Some(connected) = session.connection.as_mut() {
            connected.link = link;
        }
        router.sessions.insert(KEY, Box::new(session));
        assert_eq!(router.send_retained_chunks().await, RetainedTurn::Idle);
        assert!(drain(&mut connection).is_empty());
    }

    #[tokio::test]
    async fn subscribing_the_same_filter_again_restarts_its_match() {
        // MQTT-3.8.4-3: the subscription is replaced and its retained messages sent again.
        let (mut router, mut connection) = router(1000, 10, 1000);
        router
            .subscribe(KEY, subscribe(1, &["t/+"], QoS::AtMostOnce))
            .await;
        router.send_retained_chunks().await;
        router
            .subscribe(KEY, subscribe(2, &["t/+"], QoS::AtMostOnce))
            .await;
        assert_eq!(
            router.pending_retained.pending(KEY),
            1,
            "replaced, not added"
        );
        let mut items = drain(&mut connection);
        for turn in 0.. {
            assert!(turn < 100, "the match does not end");
            let done = router.send_retained_chunks().await == RetainedTurn::Idle;
            items.extend(drain(&mut connection));
            if done {
                break;
            }
        }
        let publishes = items.iter().filter(|i| i.starts_with("t/")).count();
        assert_eq!(publishes, RETAINED_CHUNK + 1000);
    }

    #[tokio::test]
    async fn shared_subscriptions_and_do_not_send_start_no_match() {
        // MQTT 5.0 §4.8.2: no retained messages for a shared subscription; MQTT-3.3.1-11:
        // Retain Handling 2 sends none.
        let (mut router, mut connection) = router(10, 10, 1000);
        router
            .subscribe(KEY, subscribe(1, &["$share/g/t/+"], QoS::AtMostOnce))
            .await;
        let mut do_not_send = subscribe(2, &["t/+"], QoS::AtMostOnce);
        do_not_send.filters[0].options.retain_handling = RetainHandling::DoNotSend;
        router.subscribe(KEY, do_not_send).await;
        assert_eq!(router.pending_retained.pending(KEY), 0);
        assert_eq!(router.send_retained_chunks().await, RetainedTurn::Idle);
        let items = drain(&mut connection);
        assert_eq!(items.len(), 2, "two SUBACKs and nothing else: {items:?}");
    }
}

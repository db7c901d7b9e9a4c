//! The router actor: owns every session, the subscription tree and the retained messages,
//! and is reached only through its channel. It never waits on a connection: deliveries go
//! to each connection's writer through [`ConnectionLink`].

use std::collections::BTreeSet;

use foldhash::{HashMap, HashMapExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::api::ClientInfo;
use super::message::{Delivery, Message};
use super::metrics::{Metrics, RateMeter};
use super::session::{
    Ack, AckKind, Backlog, Connected, ConnectionInfo, ConnectionLink, Inflight, Outbound, Queued,
    Session,
};
use super::shared::Shared;
use super::subscriptions::{
    FilterRef, Match, SessionKey, Subscription, SubscriptionTree, filter_matches,
};
use super::sys;
use crate::config::Limits;
use crate::mqtt::{
    ConnAck, Packet, Properties, ProtocolVersion, PubResponse, Publish, QoS, ReasonCode,
    RetainHandling, SubAck, Subscribe, UnsubAck, Unsubscribe, Will, topic,
};
use crate::store::{QueuedRecord, SessionRecord, Store};

/// Capacity of the router's inbox: connections wait (and stop reading their socket) when
/// it is full, which pushes back on publishers.
pub const ROUTER_CHANNEL_CAPACITY: usize = 4096;

/// A client whose CONNECT was accepted by its connection task.
#[derive(Debug)]
pub struct ConnectRequest {
    pub client_id: Arc<str>,
    pub protocol: ProtocolVersion,
    pub clean_start: bool,
    /// Seconds after disconnection; `None` never expires.
    pub expiry_secs: Option<u32>,
    pub will: Option<Will>,
    /// How many QoS 1/2 messages may be in flight to the client.
    pub window: usize,
    pub link: ConnectionLink,
    pub info: ConnectionInfo,
    /// CONNACK as the connection negotiated it; the router sets Session Present.
    pub connack: ConnAck,
    pub reply: oneshot::Sender<SessionKey>,
}

// PUBLISH travels by value: boxing it would cost an allocation per message, and the
// channel's slots are allocated once in blocks.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum RouterMsg {
    Connect(Box<ConnectRequest>),
    /// Packets from a connected client, in the order received (PUBLISH with its topic alias
    /// resolved): all those one read from the socket brought in, so that the router is
    /// woken once per read rather than once per packet.
    FromClient {
        session: SessionKey,
        connection_id: u64,
        packets: Vec<Packet>,
    },
    /// The connection ended on its own (client DISCONNECT, socket closed, protocol error).
    ConnectionLost {
        session: SessionKey,
        connection_id: u64,
        publish_will: bool,
        /// Session Expiry Interval sent in a v5 DISCONNECT.
        expiry_secs: Option<u32>,
    },
    /// An outbound PUBLISH was larger than the client's Maximum Packet Size and was
    /// discarded as if delivered (MQTT-3.1.2-25).
    Discarded {
        session: SessionKey,
        connection_id: u64,
        packet_id: u16,
    },
    Configure(Arc<crate::config::Config>),
    Clients(oneshot::Sender<Vec<ClientInfo>>),
    DisconnectClient {
        client_id: String,
        reply: oneshot::Sender<bool>,
    },
    /// Closes every connection with this v5 reason (shutdown, service disabled).
    DisconnectAll {
        reason: ReasonCode,
        /// The broker is shutting down: the sessions it holds end with it.
        shutdown: bool,
        reply: oneshot::Sender<()>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    Will,
    SessionExpiry,
}

/// Messages the router handles in a row once woken, before it looks at its timers again.
const INBOX_BATCH: usize = 64;

pub struct Router {
    shared: Arc<Shared>,
    store: Arc<dyn Store>,
    limits: Limits,
    sys_interval: Option<Duration>,
    sessions: HashMap<SessionKey, Session>,
    by_client_id: HashMap<Arc<str>, SessionKey>,
    next_session_key: SessionKey,
    tree: SubscriptionTree,
    retained: HashMap<Arc<str>, Arc<Message>>,
    timers: BTreeSet<(Instant, SessionKey, TimerKind)>,
    /// Reused for every PUBLISH so that matching allocates nothing per subscriber.
    scratch: Vec<Match>,
    /// A subscriber backlog the current PUBLISH found congested (see [`Backlog`]).
    congested: Option<Arc<Backlog>>,
    inbox: mpsc::Receiver<RouterMsg>,
}

impl Router {
    pub fn new(
        shared: Arc<Shared>,
        store: Arc<dyn Store>,
        inbox: mpsc::Receiver<RouterMsg>,
    ) -> Router {
        Router {
            shared,
            store,
            limits: Limits::default(),
            sys_interval: None,
            sessions: HashMap::new(),
            by_client_id: HashMap::new(),
            next_session_key: 1,
            tree: SubscriptionTree::default(),
            retained: HashMap::new(),
            timers: BTreeSet::new(),
            scratch: Vec::new(),
            congested: None,
            inbox,
        }
    }

    pub async fn run(mut self) {
        self.load().await;
        let mut second = tokio::time::interval(Duration::from_secs(1));
        second.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rates = RateMeter::new(&self.shared.metrics);
        // The first tick after $SYS is switched on publishes at once.
        let mut last_sys: Option<Instant> = None;
        loop {
            let next_timer = self.timers.first().map(|t| t.0);
            tokio::select! {
                message = self.inbox.recv() => match message {
                    Some(message) => {
                        self.handle(message).await;
                        // Whatever else is waiting is handled before going back to the
                        // select (bounded, so timers and the tick still get their turn).
                        for _ in 1..INBOX_BATCH {
                            match self.inbox.try_recv() {
                                Ok(message) => self.handle(message).await,
                                Err(_) => break,
                            }
                        }
                    }
                    None => break,
                },
                _ = sleep_until(next_timer), if next_timer.is_some() => self.fire_timers().await,
                _ = second.tick() => {
                    rates.update(&self.shared.metrics);
                    if let Some(interval) = self.sys_interval
                        && last_sys.is_none_or(|at| at.elapsed() + Duration::from_millis(50) >= interval)
                    {
                        last_sys = Some(Instant::now());
                        self.publish_sys().await;
                    }
                }
            }
        }
    }

    /// Starts from what the store holds (nothing for a fresh memory store).
    async fn load(&mut self) {
        let snapshot = match self.store.load().await {
            Ok(snapshot) => snapshot,
            Err(error) => {
                tracing::error!(%error, "cannot load the store; starting empty");
                return;
            }
        };
        let now = Instant::now();
        for message in snapshot.retained {
            if !message.is_expired(now) {
                self.retained.insert(message.publish.topic.clone(), message);
            }
        }
        for (record, queued) in snapshot.sessions {
            let key = self.new_session(record.client_id.clone(), ProtocolVersion::V5);
            let Some(session) = self.sessions.get_mut(&key) else {
                continue;
            };
            session.expiry_secs = record.expiry_secs;
            for (filter, subscription) in &record.subscriptions {
                session.subscriptions.insert(filter.clone(), *subscription);
                self.tree.insert(filter, key, *subscription);
            }
            for item in queued {
                session.queue.push_back(Queued {
                    sequence: item.sequence,
                    message: item.message,
                    qos: item.qos,
                    retain: item.retain,
                    subscription_ids: item.subscription_ids,
                    share: None,
                });
            }
            self.schedule_expiry(key, now);
        }
        self.update_gauges();
    }

    async fn handle(&mut self, message: RouterMsg) {
        match message {
            RouterMsg::Connect(request) => self.connect(*request).await,
            RouterMsg::FromClient {
                session,
                connection_id,
                packets,
            } => {
                for packet in packets {
                    // A packet can end the connection (e.g. Receive Maximum exceeded): the
                    // rest of the batch is then ignored like anything else it sent later.
                    if !self.is_current(session, connection_id) {
                        break;
                    }
                    self.client_packet(session, packet).await;
                }
            }
            RouterMsg::ConnectionLost {
                session,
                connection_id,
                publish_will,
                expiry_secs,
            } => {
                if self.is_current(session, connection_id) {
                    if let Some(s) = self.sessions.get_mut(&session) {
                        s.connection = None;
                        if let Some(expiry) = expiry_secs {
                            s.expiry_secs = Some(expiry.min(self.limits.max_session_expiry_secs));
                        }
                    }
                    self.connection_lost(session, publish_will).await;
                }
            }
            RouterMsg::Discarded {
                session,
                connection_id,
                packet_id,
            } => {
                if self.is_current(session, connection_id) {
                    self.complete_outbound(session, packet_id).await;
                }
            }
            RouterMsg::Configure(config) => {
                self.limits = config.limits.clone();
                self.sys_interval = match config.broker.sys_interval_secs {
                    0 => None,
                    secs => Some(Duration::from_secs(u64::from(secs))),
                };
            }
            RouterMsg::Clients(reply) => {
                let _ = reply.send(self.clients());
            }
            RouterMsg::DisconnectClient { client_id, reply } => {
                let found = match self.by_client_id.get(client_id.as_str()).copied() {
                    Some(key) if self.sessions.get(&key).is_some_and(Session::is_connected) => {
                        // An administrative close is not the client's normal DISCONNECT:
                        // its will is published (MQTT-3.1.2-8).
                        self.close_connection(key, Some(ReasonCode::AdministrativeAction), true)
                            .await;
                        true
                    }
                    _ => false,
                };
                let _ = reply.send(found);
            }
            RouterMsg::DisconnectAll {
                reason,
                shutdown,
                reply,
            } => {
                self.disconnect_all(reason, shutdown).await;
                let _ = reply.send(());
            }
        }
    }

    fn is_current(&self, session: SessionKey, connection_id: u64) -> bool {
        self.sessions
            .get(&session)
            .and_then(|s| s.link())
            .is_some_and(|link| link.connection_id == connection_id)
    }

    fn new_session(&mut self, client_id: Arc<str>, protocol: ProtocolVersion) -> SessionKey {
        let key = self.next_session_key;
        self.next_session_key += 1;
        self.by_client_id.insert(client_id.clone(), key);
        self.sessions.insert(key, Session::new(client_id, protocol));
        key
    }

    // ----- CONNECT, takeover, disconnection, session end --------------------------------

    async fn connect(&mut self, request: ConnectRequest) {
        let existing = self.by_client_id.get(&request.client_id).copied();
        let mut session_present = false;
        let key = match existing {
            Some(key) => {
                // Session takeover (MQTT-3.1.4-3): the old connection is closed with 0x8E.
                if self.sessions.get(&key).is_some_and(Session::is_connected) {
                    let will_survives = !request.clean_start
                        && self
                            .sessions
                            .get(&key)
                            .and_then(|s| s.will.as_ref())
                            .is_some_and(|will| {
                                will.properties.will_delay_interval.unwrap_or(0) > 0
                            });
                    // The old will goes out unless the session is resumed before its will
                    // delay has run (MQTT-3.1.3-9); a resumed session cancels it.
                    self.close_connection(key, Some(ReasonCode::SessionTakenOver), !will_survives)
                        .await;
                    if let Some(session) = self.sessions.get_mut(&key) {
                        session.will = None;
                        session.will_at = None;
                    }
                }
                if request.clean_start {
                    self.end_session(key).await;
                    self.new_session(request.client_id.clone(), request.protocol)
                } else if self.sessions.contains_key(&key) {
                    session_present = true;
                    // Reconnecting in time cancels a delayed will (MQTT-3.1.3-9).
                    if let Some(session) = self.sessions.get_mut(&key) {
                        session.will = None;
                        session.will_at = None;
                        session.expires_at = None;
                    }
                    key
                } else {
                    self.new_session(request.client_id.clone(), request.protocol)
                }
            }
            None => self.new_session(request.client_id.clone(), request.protocol),
        };
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        session.protocol = request.protocol;
        session.expiry_secs = request.expiry_secs;
        session.will = request.will;
        session.window = request.window.max(1);
        session.connection = Some(Connected {
            link: request.link,
            info: request.info,
        });
        let mut connack = request.connack;
        connack.session_present = session_present;
        session.send_packet(Packet::ConnAck(connack));
        let _ = request.reply.send(key);
        if session.is_persistent() {
            let record = session_record(session);
            if let Err(error) = self.store.put_session(record).await {
                tracing::warn!(%error, "store: cannot save session");
            }
        }
        // Resume: unacknowledged PUBLISH again with DUP, PUBREL again (MQTT-4.4.0-1), in the
        // original order (MQTT-4.6.0-1..-4), then the queue. The resent PUBLISHes count
        // against the new connection's Receive Maximum like any other (MQTT-3.3.4-9,
        // MQTT-4.9.0-1/-2; QoS 2 ones until PUBCOMP): those beyond it wait in
        // `pending_resend` for `pump`, which sends them as acknowledgements free slots.
        // Onward delivery of these has started, so they are resent even if their expiry has
        // passed since (MQTT-3.3.2-5 only drops copies whose delivery has not started).
        if let Some(session) = self.sessions.get_mut(&key) {
            session.pending_resend.clear();
            let mut unacknowledged = session.inflight.iter().filter(|i| i.released).count();
            for inflight in &session.inflight {
                let Some(link) = session.connection.as_ref().map(|c| &c.link) else {
                    break;
                };
                if inflight.released {
                    link.send(Outbound::Ack(Ack::success(
                        AckKind::PubRel,
                        inflight.packet_id,
                    )));
                } else if unacknowledged < session.window && session.pending_resend.is_empty() {
                    unacknowledged += 1;
                    link.send(Outbound::Publish(delivery(
                        &inflight.queued,
                        Some(inflight.packet_id),
                        true,
                    )));
                } else {
                    session.pending_resend.push_back(inflight.packet_id);
                }
            }
        }
        self.pump(key).await;
        Metrics::add(&self.shared.metrics.clients_connected, 1);
        self.update_gauges();
    }

    /// Closes every connection from the broker's side (shutdown, service disabled).
    async fn disconnect_all(&mut self, reason: ReasonCode, shutdown: bool) {
        let connected: Vec<SessionKey> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.is_connected())
            .map(|(key, _)| *key)
            .collect();
        for key in connected {
            // The server closes the connection without having received DISCONNECT, so the
            // will is published, after its delay (MQTT-3.1.2-8, MQTT 5.0 §3.1.2.5): a server
            // shutdown is not exempt.
            self.close_connection(key, Some(reason), true).await;
        }
        if shutdown {
            // Wills waiting for their delay go out now: the store keeps no wills, so every
            // session as the router holds it (with the memory store, the session itself)
            // ends with the broker, and a session that ends publishes its will (MQTT 5.0
            // §3.1.2.5). A durable store that keeps wills could let one whose session
            // survives the restart wait instead.
            let delayed: Vec<SessionKey> = self
                .sessions
                .iter()
                .filter(|(_, s)| s.will_at.is_some())
                .map(|(key, _)| *key)
                .collect();
            for key in delayed {
                let Some(session) = self.sessions.get_mut(&key) else {
                    continue;
                };
                session.will_at = None;
                if let Some(will) = session.will.take() {
                    self.publish_will(will).await;
                }
            }
        }
    }

    /// Closes the session's connection from the broker's side.
    async fn close_connection(
        &mut self,
        key: SessionKey,
        reason: Option<ReasonCode>,
        publish_will: bool,
    ) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        let Some(connected) = session.connection.take() else {
            return;
        };
        let reason = reason.filter(|_| session.protocol.is_v5());
        connected.link.send(Outbound::Close(reason));
        self.connection_lost(key, publish_will).await;
    }

    /// The session has just lost its connection.
    async fn connection_lost(&mut self, key: SessionKey, publish_will: bool) {
        let now = Instant::now();
        let metrics = &self.shared.metrics.clients_connected;
        Metrics::set(metrics, Metrics::get(metrics).saturating_sub(1));
        self.redistribute_shared(key).await;
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        let will = session.will.take();
        let expiry = session.expiry_secs;
        let mut publish_now = None;
        if let Some(will) = will.filter(|_| publish_will) {
            let delay = will.properties.will_delay_interval.unwrap_or(0);
            if delay == 0 || expiry == Some(0) {
                publish_now = Some(will);
            } else {
                // Out when the delay or the session ends, whichever first (MQTT 5.0 §3.1.2.5).
                let delay = match expiry {
                    Some(expiry) => delay.min(expiry),
                    None => delay,
                };
                let at = later(now, delay);
                session.will = Some(will);
                session.will_at = Some(at);
                self.timers.insert((at, key, TimerKind::Will));
            }
        }
        if let Some(will) = publish_now {
            self.publish_will(will).await;
        }
        self.schedule_expiry(key, now);
        if self
            .sessions
            .get(&key)
            .is_some_and(|s| s.expiry_secs == Some(0))
        {
            self.end_session(key).await;
        }
        self.update_gauges();
    }

    fn schedule_expiry(&mut self, key: SessionKey, now: Instant) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        if let Some(secs) = session.expiry_secs.filter(|secs| *secs > 0) {
            let at = later(now, secs);
            session.expires_at = Some(at);
            self.timers.insert((at, key, TimerKind::SessionExpiry));
        }
    }

    /// Removes a session; a will still waiting for its delay goes out now (MQTT 5.0 §3.1.2.5).
    async fn end_session(&mut self, key: SessionKey) {
        let Some(mut session) = self.sessions.remove(&key) else {
            return;
        };
        self.by_client_id.remove(&session.client_id);
        for filter in session.subscriptions.keys() {
            self.tree.remove(filter, key);
        }
        // Unconditionally: the session may have been persistent earlier in its life (a v5
        // DISCONNECT can lower its expiry to 0).
        if let Err(error) = self.store.remove_session(&session.client_id).await {
            tracing::warn!(%error, "store: cannot remove session");
        }
        if let Some(will) = session.will.take().filter(|_| session.will_at.is_some()) {
            self.publish_will(will).await;
        }
        self.update_gauges();
    }

    async fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(&(at, key, kind)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let Some(session) = self.sessions.get_mut(&key) else {
                continue;
            };
            match kind {
                TimerKind::Will if session.will_at == Some(at) => {
                    session.will_at = None;
                    if let Some(will) = session.will.take() {
                        self.publish_will(will).await;
                    }
                }
                TimerKind::SessionExpiry
                    if session.expires_at == Some(at) && !session.is_connected() =>
                {
                    self.end_session(key).await;
                }
                _ => {}
            }
        }
    }

    async fn publish_will(&mut self, will: Will) {
        let mut properties = will.properties;
        properties.will_delay_interval = None;
        let publish = Publish {
            dup: false,
            qos: will.qos,
            retain: will.retain,
            topic: will.topic,
            packet_id: None,
            properties,
            payload: will.payload,
        };
        let message = Arc::new(Message::arrived(publish));
        if message.publish.retain {
            self.retain(&message).await;
        }
        self.route(&message, None).await;
    }

    // ----- packets from clients ----------------------------------------------------------

    async fn client_packet(&mut self, key: SessionKey, packet: Packet) {
        match packet {
            Packet::Publish(publish) => self.client_publish(key, publish).await,
            Packet::PubAck(ack) => self.complete_outbound(key, ack.packet_id).await,
            Packet::PubRec(rec) => self.pubrec(key, rec).await,
            Packet::PubComp(comp) => self.complete_outbound(key, comp.packet_id).await,
            Packet::PubRel(rel) => {
                let Some(session) = self.sessions.get_mut(&key) else {
                    return;
                };
                let known = session.incoming_qos2.remove(&rel.packet_id);
                let reason = if known || !session.protocol.is_v5() {
                    ReasonCode::Success
                } else {
                    ReasonCode::PacketIdentifierNotFound
                };
                session.send_ack(Ack::new(AckKind::PubComp, rel.packet_id, reason));
            }
            Packet::Subscribe(subscribe) => self.subscribe(key, subscribe).await,
            Packet::Unsubscribe(unsubscribe) => self.unsubscribe(key, unsubscribe).await,
            other => {
                tracing::debug!(packet = %other.packet_type(), "router ignores packet");
            }
        }
    }

    async fn client_publish(&mut self, key: SessionKey, publish: Publish) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        let qos = publish.qos;
        let packet_id = publish.packet_id.unwrap_or(0);
        if qos == QoS::ExactlyOnce {
            if session.incoming_qos2.contains(&packet_id) {
                // A re-sent PUBLISH of a message already forwarded (method B, MQTT-4.3.3-9):
                // acknowledge again, forward nothing.
                session.send_ack(Ack::success(AckKind::PubRec, packet_id));
                return;
            }
            // Receive Maximum is enforced per connection by its reader (MQTT 5.0 §4.9).
            session.incoming_qos2.insert(packet_id);
        }
        self.congested = None;
        let message = Arc::new(Message::arrived(publish));
        if message.publish.retain {
            // MQTT-3.3.1-5..-7: store, replace, or clear with an empty payload.
            self.retain(&message).await;
        }
        let delivered = self.route(&message, Some(key)).await;
        let Some(session) = self.sessions.get(&key) else {
            return;
        };
        if let Some(backlog) = self.congested.take()
            && let Some(link) = session.link()
        {
            link.throttle.set(backlog);
        }
        let reason = if delivered == 0 && session.protocol.is_v5() {
            ReasonCode::NoMatchingSubscribers
        } else {
            ReasonCode::Success
        };
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => session.send_ack(Ack::new(AckKind::PubAck, packet_id, reason)),
            QoS::ExactlyOnce => session.send_ack(Ack::new(AckKind::PubRec, packet_id, reason)),
        }
    }

    async fn retain(&mut self, message: &Arc<Message>) {
        let topic = message.publish.topic.clone();
        if message.publish.payload.is_empty() {
            // An empty retained message clears the topic and is not stored (MQTT-3.3.1-6/-7).
            if self.retained.remove(&topic).is_some()
                && let Err(error) = self.store.set_retained(&topic, None).await
            {
                tracing::warn!(%error, "store: cannot clear retained message");
            }
        } else {
            self.retained.insert(topic.clone(), message.clone());
            if let Err(error) = self.store.set_retained(&topic, Some(message.clone())).await {
                tracing::warn!(%error, "store: cannot save retained message");
            }
        }
        Metrics::set(&self.shared.metrics.retained, self.retained.len() as u64);
    }

    /// Sends `message` to every matching subscription; returns how many sessions got it.
    async fn route(&mut self, message: &Arc<Message>, publisher: Option<SessionKey>) -> usize {
        let mut matches = std::mem::take(&mut self.scratch);
        matches.clear();
        let sessions = &self.sessions;
        self.tree.matches(
            message.topic(),
            |key| sessions.get(&key).is_some_and(Session::is_connected),
            &mut matches,
        );
        // No Local: not back to the publishing client (MQTT-3.8.3-3).
        matches.retain(|m| !(m.subscription.options.no_local && Some(m.session) == publisher));
        // One copy per session for its overlapping ordinary subscriptions, at the highest
        // QoS, with every matching subscription identifier (MQTT-3.3.4-2, -3).
        matches.sort_unstable_by_key(|m| (m.share.is_some(), m.session));
        let mut delivered = 0;
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
            let queued = Queued {
                sequence: 0,
                message: message.clone(),
                // Downgraded to the subscription's maximum QoS (MQTT-3.8.4-8 / 3.1.1 §3.8.4).
                qos: message.publish.qos.min(max_qos),
                // Retain As Published (MQTT-3.3.1-12/-13).
                retain: retain_as_published && message.publish.retain,
                subscription_ids,
                share: first.share.clone(),
            };
            let session = first.session;
            self.deliver(session, queued).await;
            delivered += 1;
            index = end;
        }
        self.scratch = matches;
        delivered
    }

    /// Hands one message to one session: straight to its connection when the inflight
    /// window allows, otherwise into its queue (bounded by `max_queued_messages`).
    async fn deliver(&mut self, key: SessionKey, mut queued: Queued) {
        let max_queued = self.limits.max_queued_messages as usize;
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        if queued.message.has_expired() {
            Metrics::add(&self.shared.metrics.messages_dropped, 1);
            return;
        }
        if queued.qos == QoS::AtMostOnce {
            // QoS 0 is never queued for an offline session, and is the first to go when a
            // connection cannot keep up.
            if let Some(link) = session.link() {
                if !link.try_send_qos0(delivery(&queued, None, false)) {
                    Metrics::add(&self.shared.metrics.messages_dropped, 1);
                } else if self.congested.is_none() && link.backlog.is_congested() {
                    self.congested = Some(link.backlog.clone());
                }
            }
            return;
        }
        if session.queue.len() >= max_queued
            && !(session.is_connected() && session.queue.is_empty() && session.has_window())
        {
            Metrics::add(&self.shared.metrics.messages_dropped, 1);
            return;
        }
        queued.sequence = session.next_sequence();
        if session.is_persistent() {
            let record = QueuedRecord {
                sequence: queued.sequence,
                message: queued.message.clone(),
                qos: queued.qos,
                retain: queued.retain,
                subscription_ids: queued.subscription_ids.clone(),
            };
            if let Err(error) = self.store.push_message(&session.client_id, record).await {
                tracing::warn!(%error, "store: cannot queue message");
            }
        }
        if session.is_connected() && session.queue.is_empty() && session.has_window() {
            send_inflight(session, queued);
        } else {
            session.queue.push_back(queued);
        }
    }

    /// Resends messages owed a resend, then moves queued messages into the inflight window,
    /// while it has room.
    async fn pump(&mut self, key: SessionKey) {
        let now = Instant::now();
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        if !session.pending_resend.is_empty() {
            resend_within_window(session);
        }
        let mut expired = Vec::new();
        while session.is_connected() && session.has_window() {
            let Some(queued) = session.queue.pop_front() else {
                break;
            };
            if queued.message.is_expired(now) {
                // Expired messages are dropped from queues (MQTT-3.3.2-5).
                expired.push(queued.sequence);
                continue;
            }
            send_inflight(session, queued);
        }
        if !expired.is_empty() {
            Metrics::add(&self.shared.metrics.messages_dropped, expired.len() as u64);
            if session.is_persistent() {
                let client_id = session.client_id.clone();
                for sequence in expired {
                    let _ = self.store.remove_message(&client_id, sequence).await;
                }
            }
        }
    }

    /// PUBACK, PUBCOMP, or a discarded oversize PUBLISH: the message is done.
    async fn complete_outbound(&mut self, key: SessionKey, packet_id: u16) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        let Some(position) = session
            .inflight
            .iter()
            .position(|i| i.packet_id == packet_id)
        else {
            return;
        };
        let Some(done) = session.inflight.remove(position) else {
            return;
        };
        session.forget_resend(packet_id);
        if session.is_persistent() {
            let client_id = session.client_id.clone();
            let _ = self
                .store
                .remove_message(&client_id, done.queued.sequence)
                .await;
        }
        self.pump(key).await;
    }

    async fn pubrec(&mut self, key: SessionKey, rec: PubResponse) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        let found = session
            .inflight
            .iter_mut()
            .find(|i| i.packet_id == rec.packet_id && i.queued.qos == QoS::ExactlyOnce);
        match found {
            Some(_) if rec.reason.is_error() => {
                // The client refused the message: it is done (MQTT 5.0 §4.3.3).
                self.complete_outbound(key, rec.packet_id).await;
            }
            Some(inflight) => {
                inflight.released = true;
                // Received on an earlier connection: the PUBLISH need not go again.
                session.forget_resend(rec.packet_id);
                session.send_ack(Ack::success(AckKind::PubRel, rec.packet_id));
            }
            None => {
                let reason = if session.protocol.is_v5() {
                    ReasonCode::PacketIdentifierNotFound
                } else {
                    ReasonCode::Success
                };
                session.send_ack(Ack::new(AckKind::PubRel, rec.packet_id, reason));
            }
        }
    }

    /// A shared-subscription member left: its QoS 1 messages in flight and every queued
    /// message of the group go to another connected member (MQTT 5.0 §4.8.2). QoS 2
    /// messages already in flight stay: their delivery completes with this client when it
    /// reconnects (MQTT-4.8.2-4/-5).
    async fn redistribute_shared(&mut self, key: SessionKey) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        let mut moving = Vec::new();
        let mut index = 0;
        while index < session.inflight.len() {
            let inflight = &session.inflight[index];
            if inflight.queued.share.is_some() && inflight.queued.qos == QoS::AtLeastOnce {
                if let Some(inflight) = session.inflight.remove(index) {
                    session.forget_resend(inflight.packet_id);
                    moving.push(inflight.queued);
                }
            } else {
                index += 1;
            }
        }
        let (shared, own): (Vec<Queued>, Vec<Queued>) =
            session.queue.drain(..).partition(|q| q.share.is_some());
        session.queue.extend(own);
        moving.extend(shared);
        let client_id = session.client_id.clone();
        let persistent = session.is_persistent();
        for queued in moving {
            let Some(share) = queued.share.clone() else {
                continue;
            };
            let sessions = &self.sessions;
            let other = self.tree.pick_other_member(&share, key, |k| {
                sessions.get(&k).is_some_and(Session::is_connected)
            });
            match other {
                Some((other, subscription)) => {
                    if persistent {
                        let _ = self.store.remove_message(&client_id, queued.sequence).await;
                    }
                    let moved = Queued {
                        qos: queued.message.publish.qos.min(subscription.options.qos),
                        subscription_ids: subscription.identifier.into_iter().collect(),
                        ..queued
                    };
                    self.deliver(other, moved).await;
                }
                None => {
                    // Nobody else to take it: it waits for this member.
                    if let Some(session) = self.sessions.get_mut(&key) {
                        session.queue.push_front(queued);
                    }
                }
            }
        }
    }

    async fn subscribe(&mut self, key: SessionKey, subscribe: Subscribe) {
        let identifier = subscribe
            .properties
            .subscription_identifiers
            .first()
            .copied();
        let now = Instant::now();
        // No Local on a shared subscription is a protocol error (MQTT-3.8.3-4).
        if subscribe
            .filters
            .iter()
            .any(|f| f.options.no_local && FilterRef::parse(&f.filter).group.is_some())
        {
            self.close_connection(key, Some(ReasonCode::ProtocolError), true)
                .await;
            return;
        }
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        let mut reasons = Vec::with_capacity(subscribe.filters.len());
        let mut retained_to_send: Vec<(Arc<Message>, Subscription)> = Vec::new();
        for request in &subscribe.filters {
            let parsed = FilterRef::parse(&request.filter);
            if !topic::is_valid_topic_filter_within(&request.filter, self.limits.max_topic_levels) {
                reasons.push(ReasonCode::TopicFilterInvalid);
                continue;
            }
            let subscription = Subscription {
                options: request.options,
                identifier,
            };
            let existed = self.tree.insert(&request.filter, key, subscription);
            session
                .subscriptions
                .insert(request.filter.clone(), subscription);
            reasons.push(match request.options.qos {
                QoS::AtMostOnce => ReasonCode::Success,
                QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
                QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
            });
            // Retained messages are not sent for shared subscriptions (MQTT 5.0 §4.8.2);
            // Retain Handling decides for the others (MQTT-3.3.1-9/-10/-11).
            let send_retained = parsed.group.is_none()
                && match request.options.retain_handling {
                    RetainHandling::SendOnSubscribe => true,
                    RetainHandling::SendIfNew => !existed,
                    RetainHandling::DoNotSend => false,
                };
            if send_retained {
                for message in self.retained.values() {
                    if filter_matches(parsed.filter, message.topic()) && !message.is_expired(now) {
                        retained_to_send.push((message.clone(), subscription));
                    }
                }
            }
        }
        session.send_packet(Packet::SubAck(SubAck {
            packet_id: subscribe.packet_id,
            properties: Properties::default(),
            reasons,
        }));
        if session.is_persistent() {
            let record = session_record(session);
            let _ = self.store.put_session(record).await;
        }
        for (message, subscription) in retained_to_send {
            let queued = Queued {
                sequence: 0,
                qos: message.publish.qos.min(subscription.options.qos),
                // Retained messages sent because of a subscription carry RETAIN=1 (MQTT-3.3.1-8).
                retain: true,
                subscription_ids: subscription.identifier.into_iter().collect(),
                share: None,
                message,
            };
            self.deliver(key, queued).await;
        }
        self.update_gauges();
    }

    async fn unsubscribe(&mut self, key: SessionKey, unsubscribe: Unsubscribe) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        let mut reasons = Vec::with_capacity(unsubscribe.filters.len());
        for filter in &unsubscribe.filters {
            let existed = session.subscriptions.remove(filter).is_some();
            if existed {
                self.tree.remove(filter, key);
            }
            reasons.push(if existed {
                ReasonCode::Success
            } else {
                ReasonCode::NoSubscriptionExisted
            });
        }
        session.send_packet(Packet::UnsubAck(UnsubAck {
            packet_id: unsubscribe.packet_id,
            properties: Properties::default(),
            reasons,
        }));
        if session.is_persistent() {
            let record = session_record(session);
            let _ = self.store.put_session(record).await;
        }
        self.update_gauges();
    }

    // ----- console, statistics, $SYS ------------------------------------------------------

    fn clients(&self) -> Vec<ClientInfo> {
        let mut clients: Vec<ClientInfo> = self
            .sessions
            .values()
            .filter_map(|session| {
                let connected = session.connection.as_ref()?;
                Some(ClientInfo {
                    client_id: session.client_id.clone(),
                    address: connected.info.address,
                    listener: connected.info.listener,
                    protocol: session.protocol,
                    username: connected.info.username.clone(),
                    keep_alive_secs: connected.info.keep_alive_secs,
                    subscriptions: session.subscriptions.len(),
                    inflight: session.inflight.len(),
                    queued: session.queue.len(),
                    connected_since: connected.info.connected_since,
                })
            })
            .collect();
        clients.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        clients
    }

    fn update_gauges(&self) {
        let metrics = &self.shared.metrics;
        Metrics::set(&metrics.sessions, self.sessions.len() as u64);
        Metrics::set(&metrics.subscriptions, self.tree.len() as u64);
        Metrics::set(&metrics.retained, self.retained.len() as u64);
    }

    /// Publishes the `$SYS/broker/...` topics, retained.
    async fn publish_sys(&mut self) {
        let now = Instant::now();
        self.retained.retain(|_, message| !message.is_expired(now));
        self.update_gauges();
        for (topic, value) in sys::values(&self.shared) {
            let publish = Publish {
                dup: false,
                qos: QoS::AtMostOnce,
                retain: true,
                topic: Arc::from(topic.as_str()),
                packet_id: None,
                properties: Properties::default(),
                payload: value.into(),
            };
            let message = Arc::new(Message::new(publish, now));
            self.retained
                .insert(message.publish.topic.clone(), message.clone());
            self.route(&message, None).await;
        }
        self.update_gauges();
    }
}

fn send_inflight(session: &mut Session, queued: Queued) {
    let Some(packet_id) = session.allocate_packet_id() else {
        session.queue.push_front(queued);
        return;
    };
    if let Some(link) = session.link() {
        link.send(Outbound::Publish(delivery(&queued, Some(packet_id), false)));
    }
    session.inflight.push_back(Inflight {
        packet_id,
        queued,
        released: false,
    });
}

/// Resends, with DUP, the in-flight PUBLISHes owed a resend that the window has room for.
fn resend_within_window(session: &mut Session) {
    while session.is_connected() && session.has_window_for_resend() {
        let Some(packet_id) = session.pending_resend.pop_front() else {
            break;
        };
        let Some(inflight) = session.inflight.iter().find(|i| i.packet_id == packet_id) else {
            continue;
        };
        if let Some(link) = session.link() {
            link.send(Outbound::Publish(delivery(
                &inflight.queued,
                Some(packet_id),
                true,
            )));
        }
    }
}

fn delivery(queued: &Queued, packet_id: Option<u16>, dup: bool) -> Delivery {
    Delivery {
        message: queued.message.clone(),
        qos: queued.qos,
        packet_id,
        dup,
        retain: queued.retain,
        subscription_ids: queued.subscription_ids.clone(),
    }
}

fn session_record(session: &Session) -> SessionRecord {
    SessionRecord {
        client_id: session.client_id.clone(),
        expiry_secs: session.expiry_secs,
        subscriptions: session
            .subscriptions
            .iter()
            .map(|(filter, subscription)| (filter.clone(), *subscription))
            .collect(),
    }
}

/// `secs` after `now`, saturating at a date far beyond any session.
fn later(now: Instant, secs: u32) -> Instant {
    now.checked_add(Duration::from_secs(u64::from(secs)))
        .unwrap_or(now + Duration::from_secs(100 * 365 * 24 * 3600))
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

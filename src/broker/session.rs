//! One session as the router holds it (MQTT 5.0 §4.1): subscriptions, messages queued and in
//! flight in both directions, the will, and the connection currently attached.

use std::collections::VecDeque;

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Notify, mpsc};

use super::api::ListenerKind;
use super::message::{Delivery, Message};
use super::subscriptions::Subscription;
use crate::mqtt::{Packet, Properties, ProtocolVersion, PubResponse, QoS, ReasonCode, Will};

/// What the router (or the reader half of a connection) asks a connection's writer to send.
#[derive(Debug)]
pub enum Outbound {
    Packet(Box<Packet>),
    /// A PUBACK, PUBREC, PUBREL or PUBCOMP without properties: the most frequent control
    /// packets, sent without allocating a boxed [`Packet`] each.
    Ack(Ack),
    Publish(Delivery),
    /// Send DISCONNECT with this reason (MQTT 5.0 only), then close the connection.
    Close(Option<ReasonCode>),
}

/// Which acknowledgement an [`Outbound::Ack`] is.
// The variants are named after the packet types they stand for.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckKind {
    PubAck,
    PubRec,
    PubRel,
    PubComp,
}

/// An acknowledgement of one packet identifier, without properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub kind: AckKind,
    pub packet_id: u16,
    pub reason: ReasonCode,
}

impl Ack {
    pub fn new(kind: AckKind, packet_id: u16, reason: ReasonCode) -> Self {
        Ack {
            kind,
            packet_id,
            reason,
        }
    }

    pub fn success(kind: AckKind, packet_id: u16) -> Self {
        Ack::new(kind, packet_id, ReasonCode::Success)
    }

    /// The packet the writer encodes.
    pub fn into_packet(self) -> Packet {
        let response = PubResponse {
            packet_id: self.packet_id,
            reason: self.reason,
            properties: Properties::default(),
        };
        match self.kind {
            AckKind::PubAck => Packet::PubAck(response),
            AckKind::PubRec => Packet::PubRec(response),
            AckKind::PubRel => Packet::PubRel(response),
            AckKind::PubComp => Packet::PubComp(response),
        }
    }
}

/// What is waiting for one connection's writer. Shared by the router (adds) and the writer
/// (takes).
#[derive(Debug, Default)]
pub struct Backlog {
    items: AtomicUsize,
    /// Payload bytes of the QoS 0 messages among them.
    qos0_bytes: AtomicUsize,
    /// Wakes throttled publishers when the backlog falls to [`BACKLOG_LOW`].
    drained: Notify,
    /// Set when a throttled publisher waited in vain: the subscriber is not draining, so it
    /// throttles no one until it has caught up again.
    stalled: AtomicBool,
}

/// QoS 0 messages are dropped for a connection whose writer is this far behind: a peer that
/// stopped reading (or cannot keep up for long). Bursts below these stay lossless.
pub const QOS0_BACKLOG_ITEMS: usize = 100_000;
pub const QOS0_BACKLOG_BYTES: usize = 64 * 1024 * 1024;
/// Above this many waiting items, publishers whose messages feed the backlog are slowed
/// down (their sockets are not read) until it falls to [`BACKLOG_LOW`]: backpressure
/// instead of loss for a subscriber that is slower than its publishers. A subscriber that
/// does not drain while a publisher waits, or falls behind to the drop limits, throttles no
/// one: a stuck client costs publishers one short pause, not their throughput.
pub const BACKLOG_HIGH: usize = 10_000;
pub const BACKLOG_LOW: usize = 2_000;

impl Backlog {
    /// Called by the writer for every item it takes off the channel.
    pub fn taken(&self, item: &Outbound) {
        if self.items.fetch_sub(1, Relaxed) == BACKLOG_LOW + 1 {
            self.stalled.store(false, Relaxed);
            self.drained.notify_waiters();
        }
        if let Outbound::Publish(delivery) = item
            && delivery.qos == QoS::AtMostOnce
        {
            self.qos0_bytes
                .fetch_sub(delivery.message.publish.payload.len(), Relaxed);
        }
    }

    /// Items waiting for the writer, control packets included.
    pub fn waiting(&self) -> usize {
        self.items.load(Relaxed)
    }

    fn has_room_for_qos0(&self) -> bool {
        self.items.load(Relaxed) < QOS0_BACKLOG_ITEMS
            && self.qos0_bytes.load(Relaxed) < QOS0_BACKLOG_BYTES
    }

    /// Behind enough to slow publishers down, not so far behind as to be given up on.
    pub fn is_congested(&self) -> bool {
        self.items.load(Relaxed) >= BACKLOG_HIGH
            && self.has_room_for_qos0()
            && !self.stalled.load(Relaxed)
    }

    /// Waits until the backlog is down to [`BACKLOG_LOW`], at most `limit`.
    pub async fn wait_drained(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            // Created before the check so that a wake-up in between is not lost.
            let drained = self.drained.notified();
            if self.items.load(Relaxed) <= BACKLOG_LOW {
                return;
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                self.stalled.store(true, Relaxed);
                return;
            }
        }
    }
}

/// A publisher's connection is told here which congested backlog to wait for before it
/// reads more from its socket.
#[derive(Debug, Default)]
pub struct Throttle {
    waiting_for: Mutex<Option<Arc<Backlog>>>,
}

impl Throttle {
    pub fn set(&self, backlog: Arc<Backlog>) {
        *self
            .waiting_for
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(backlog);
    }

    pub fn take(&self) -> Option<Arc<Backlog>> {
        self.waiting_for
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }
}

/// The router's line to one connection's writer. The channel is unbounded, but every kind
/// of item on it is bounded elsewhere: QoS 1/2 deliveries by the inflight window, QoS 0
/// deliveries by the [`Backlog`] limits, control packets by the client's own requests (each
/// answers one inbound packet, and inbound reading waits on the router's bounded channel).
#[derive(Debug, Clone)]
pub struct ConnectionLink {
    pub connection_id: u64,
    pub sender: mpsc::UnboundedSender<Outbound>,
    pub backlog: Arc<Backlog>,
    /// Set by the router when this client's messages feed a congested backlog.
    pub throttle: Arc<Throttle>,
}

impl ConnectionLink {
    pub fn send(&self, item: Outbound) -> bool {
        self.backlog.items.fetch_add(1, Relaxed);
        self.sender.send(item).is_ok()
    }

    /// Sends a QoS 0 delivery unless the writer is too far behind; false means dropped.
    pub fn try_send_qos0(&self, delivery: Delivery) -> bool {
        if !self.backlog.has_room_for_qos0() {
            return false;
        }
        self.backlog
            .qos0_bytes
            .fetch_add(delivery.message.publish.payload.len(), Relaxed);
        self.send(Outbound::Publish(delivery))
    }
}

/// Facts about the attached connection, for the console's client list.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub address: SocketAddr,
    pub listener: ListenerKind,
    pub username: Option<String>,
    pub keep_alive_secs: u16,
    pub connected_since: SystemTime,
}

#[derive(Debug)]
pub struct Connected {
    pub link: ConnectionLink,
    pub info: ConnectionInfo,
}

/// A message waiting for (or in flight to) this session.
#[derive(Debug, Clone)]
pub struct Queued {
    pub sequence: u64,
    pub message: Arc<Message>,
    pub qos: QoS,
    pub retain: bool,
    pub subscription_ids: Vec<u32>,
    /// The shared subscription it was delivered through, if any.
    pub share: Option<Arc<str>>,
}

#[derive(Debug)]
pub struct Inflight {
    pub packet_id: u16,
    pub queued: Queued,
    /// QoS 2: PUBREC received and PUBREL sent; waiting for PUBCOMP.
    pub released: bool,
}

#[derive(Debug)]
pub struct Session {
    pub client_id: Arc<str>,
    pub protocol: ProtocolVersion,
    pub connection: Option<Connected>,
    /// Seconds the session outlives its connection; `None` never expires.
    pub expiry_secs: Option<u32>,
    pub subscriptions: HashMap<String, Subscription>,
    /// Outbound QoS 1/2 messages sent and not yet acknowledged, in send order.
    pub inflight: VecDeque<Inflight>,
    /// Packet ids of in-flight PUBLISHes owed a resend (DUP) on the current connection, in
    /// send order: on resume they go out as the new connection's window allows, before
    /// anything from `queue` (MQTT-4.4.0-1 with MQTT-3.3.4-9).
    pub pending_resend: VecDeque<u16>,
    /// Outbound QoS 1/2 messages waiting for the inflight window or for the client.
    pub queue: VecDeque<Queued>,
    /// Inbound QoS 2 packet ids whose PUBREL has not arrived (method B: the message was
    /// forwarded on PUBLISH; a re-sent PUBLISH with one of these ids is not forwarded again).
    pub incoming_qos2: HashSet<u16>,
    /// How many QoS 1/2 messages may be in flight to the client (its Receive Maximum,
    /// capped by ours).
    pub window: usize,
    /// The will of the attached (or last) connection, until published or deleted.
    pub will: Option<Will>,
    /// When a will whose delay is running goes out.
    pub will_at: Option<Instant>,
    /// When a disconnected session ends.
    pub expires_at: Option<Instant>,
    next_packet_id: u16,
    next_sequence: u64,
}

impl Session {
    pub fn new(client_id: Arc<str>, protocol: ProtocolVersion) -> Session {
        Session {
            client_id,
            protocol,
            connection: None,
            expiry_secs: Some(0),
            subscriptions: HashMap::new(),
            inflight: VecDeque::new(),
            pending_resend: VecDeque::new(),
            queue: VecDeque::new(),
            incoming_qos2: HashSet::new(),
            window: 1,
            will: None,
            will_at: None,
            expires_at: None,
            next_packet_id: 1,
            next_sequence: 1,
        }
    }

    pub fn is_connected(&self) -> bool {
        self.connection.is_some()
    }

    /// Whether the session outlives its connection, so its state goes through the store.
    pub fn is_persistent(&self) -> bool {
        self.expiry_secs != Some(0)
    }

    pub fn next_sequence(&mut self) -> u64 {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        sequence
    }

    /// A packet id not used by any message in flight (MQTT-2.2.1-3 / MQTT-2.3.1-2).
    pub fn allocate_packet_id(&mut self) -> Option<u16> {
        for _ in 0..u16::MAX {
            let candidate = self.next_packet_id;
            self.next_packet_id = self.next_packet_id.checked_add(1).unwrap_or(1);
            if !self.inflight.iter().any(|i| i.packet_id == candidate) {
                return Some(candidate);
            }
        }
        None
    }

    /// Room for a new message: messages owed a resend hold their slots, so nothing new
    /// overtakes them.
    pub fn has_window(&self) -> bool {
        self.inflight.len() < self.window
    }

    /// Room to resend one of `pending_resend`: fewer than `window` PUBLISHes are out on the
    /// current connection unacknowledged (MQTT-3.3.4-9).
    pub fn has_window_for_resend(&self) -> bool {
        self.inflight
            .len()
            .saturating_sub(self.pending_resend.len())
            < self.window
    }

    /// The message is no longer owed a resend (acknowledged, released or moved away).
    pub fn forget_resend(&mut self, packet_id: u16) {
        if !self.pending_resend.is_empty() {
            self.pending_resend.retain(|id| *id != packet_id);
        }
    }

    pub fn link(&self) -> Option<&ConnectionLink> {
        self.connection.as_ref().map(|c| &c.link)
    }

    /// Sends a control packet to the attached connection, if any.
    pub fn send_packet(&self, packet: Packet) {
        if let Some(link) = self.link() {
            link.send(Outbound::Packet(Box::new(packet)));
        }
    }

    /// Sends an acknowledgement to the attached connection, if any.
    pub fn send_ack(&self, ack: Ack) {
        if let Some(link) = self.link() {
            link.send(Outbound::Ack(ack));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant as StdInstant;

    use bytes::Bytes;

    use super::*;
    use crate::mqtt::{PacketType, Publish};

    fn qos0() -> Outbound {
        let publish = Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: Arc::from("t"),
            packet_id: None,
            properties: Default::default(),
            payload: Bytes::from_static(b"12345678"),
        };
        Outbound::Publish(Delivery {
            message: Arc::new(Message::new(publish, StdInstant::now())),
            qos: QoS::AtMostOnce,
            packet_id: None,
            dup: false,
            retain: false,
            subscription_ids: Vec::new(),
        })
    }

    fn link() -> (ConnectionLink, mpsc::UnboundedReceiver<Outbound>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let link = ConnectionLink {
            connection_id: 1,
            sender,
            backlog: Arc::new(Backlog::default()),
            throttle: Arc::new(Throttle::default()),
        };
        (link, receiver)
    }

    fn fill(link: &ConnectionLink, n: usize) {
        for _ in 0..n {
            let Outbound::Publish(delivery) = qos0() else {
                unreachable!()
            };
            assert!(link.try_send_qos0(delivery));
        }
    }

    #[tokio::test]
    async fn congestion_starts_at_the_high_mark_and_drains_to_the_low_one() {
        let (link, mut receiver) = link();
        fill(&link, BACKLOG_HIGH - 1);
        assert!(!link.backlog.is_congested());
        fill(&link, 1);
        assert!(link.backlog.is_congested());
        assert_eq!(link.backlog.qos0_bytes.load(Relaxed), BACKLOG_HIGH * 8);

        let backlog = link.backlog.clone();
        let waiter = tokio::spawn(async move {
            backlog.wait_drained(Duration::from_secs(5)).await;
        });
        tokio::task::yield_now().await;
        for _ in 0..(BACKLOG_HIGH - BACKLOG_LOW) {
            let item = receiver.try_recv().unwrap();
            link.backlog.taken(&item);
        }
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("woken at the low mark")
            .unwrap();
        assert!(!link.backlog.is_congested());
        assert_eq!(link.backlog.qos0_bytes.load(Relaxed), BACKLOG_LOW * 8);
    }

    #[tokio::test]
    async fn a_backlog_that_does_not_drain_stops_throttling_until_it_catches_up() {
        let (link, mut receiver) = link();
        fill(&link, BACKLOG_HIGH);
        link.backlog.wait_drained(Duration::from_millis(20)).await;
        assert!(!link.backlog.is_congested(), "stalled: throttles no one");
        for _ in 0..(BACKLOG_HIGH - BACKLOG_LOW) {
            let item = receiver.try_recv().unwrap();
            link.backlog.taken(&item);
        }
        fill(&link, BACKLOG_HIGH - BACKLOG_LOW);
        assert!(
            link.backlog.is_congested(),
            "caught up once: throttles again"
        );
    }

    #[test]
    fn qos0_is_dropped_at_the_item_limit() {
        let (link, _receiver) = link();
        fill(&link, QOS0_BACKLOG_ITEMS);
        let Outbound::Publish(delivery) = qos0() else {
            unreachable!()
        };
        assert!(!link.try_send_qos0(delivery));
        assert!(
            !link.backlog.is_congested(),
            "given up on: throttles no one"
        );
    }

    #[test]
    fn an_ack_becomes_the_packet_of_its_kind_without_properties() {
        let cases = [
            (AckKind::PubAck, PacketType::PubAck),
            (AckKind::PubRec, PacketType::PubRec),
            (AckKind::PubRel, PacketType::PubRel),
            (AckKind::PubComp, PacketType::PubComp),
        ];
        for (kind, packet_type) in cases {
            let packet = Ack::new(kind, 7, ReasonCode::NoMatchingSubscribers).into_packet();
            assert_eq!(packet.packet_type(), packet_type);
            let (Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r)) =
                packet
            else {
                panic!("not an acknowledgement: {packet:?}");
            };
            assert_eq!(r.packet_id, 7);
            assert_eq!(r.reason, ReasonCode::NoMatchingSubscribers);
            assert_eq!(r.properties, Properties::default());
        }
        assert_eq!(Ack::success(AckKind::PubAck, 1).reason, ReasonCode::Success);
    }
}

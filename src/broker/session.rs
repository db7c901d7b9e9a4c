//! One session as the router holds it (MQTT 5.0 §4.1): subscriptions, messages queued and in
//! flight in both directions, the will, and the connection currently attached.

use std::collections::VecDeque;

use foldhash::{HashSet, HashSetExt};
use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroU32};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::api::ListenerKind;
use super::message::Message;
use super::small_map::SmallMap;
use super::subscriptions::Subscription;
use crate::auth::acl::ClientAcl;
use crate::mqtt::{Packet, ProtocolVersion, QoS, Will};

use super::connection::link::{Ack, ConnectionLink, Outbound};

/// Facts about the attached connection, for the console's client list.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub address: SocketAddr,
    pub listener: ListenerKind,
    /// Shared with the session's access record (one allocation per client).
    pub username: Option<Arc<str>>,
    /// SHA-256 thumbprint of the client certificate it connected with (TLS), so that
    /// revoking the certificate disconnects it.
    pub certificate: Option<Arc<str>>,
    pub keep_alive_secs: u16,
    pub connected_since: SystemTime,
    pub clean_start: bool,
    /// The client's CONNECT properties as it sent them (MQTT 5.0 §3.1.2.11), for the
    /// console's detail pane: Receive Maximum, Maximum Packet Size, Topic Alias Maximum.
    /// The first two cannot be 0 (MQTT 5.0 §3.1.2.11.3, §3.1.2.11.4: a protocol error),
    /// which keeps them small: this record exists for every connection (see
    /// `tests/hostile_memory.rs`).
    pub receive_maximum: Option<NonZeroU16>,
    pub maximum_packet_size: Option<NonZeroU32>,
    pub topic_alias_maximum: Option<u16>,
    /// Messages in and out of this connection, counted by its reader and writer.
    pub counters: Arc<ClientCounters>,
}

/// Per-connection message counts: relaxed atomics, written by the connection's own tasks
/// and the router, read when the console lists the clients.
#[derive(Debug, Default)]
pub struct ClientCounters {
    pub received: std::sync::atomic::AtomicU64,
    pub sent: std::sync::atomic::AtomicU64,
    pub dropped: std::sync::atomic::AtomicU64,
}

impl ClientCounters {
    pub fn add(counter: &std::sync::atomic::AtomicU64) {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn get(counter: &std::sync::atomic::AtomicU64) -> u64 {
        counter.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[derive(Debug)]
pub struct Connected {
    pub link: ConnectionLink,
    /// Boxed: read only for the clients list and revocations, and the router holds a
    /// session for every client, connected or not (see `a_session_stays_small`).
    pub info: Box<ConnectionInfo>,
}

/// A message waiting for (or in flight to) this session.
#[derive(Debug, Clone)]
pub struct Queued {
    pub sequence: u64,
    /// The id of its payload in the store (persistent sessions; see
    /// [`crate::store::StoreOp::PushMessage`]).
    pub payload: u64,
    pub message: Arc<Message>,
    pub qos: QoS,
    pub retain: bool,
    pub subscription_ids: Vec<u32>,
    /// The shared subscription it was delivered through, if any.
    pub share: Option<Arc<str>>,
}

impl Queued {
    /// The record the store keeps of it; `stage` once it has been sent.
    pub fn to_record(&self, stage: Option<crate::store::Stage>) -> crate::store::QueuedRecord {
        crate::store::QueuedRecord {
            sequence: self.sequence,
            payload: self.payload,
            message: self.message.clone(),
            qos: self.qos,
            retain: self.retain,
            subscription_ids: self.subscription_ids.clone(),
            share: self.share.clone(),
            stage,
        }
    }
}

/// The waiting messages of a session that are only in the store.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Spill {
    /// How many: every one comes after everything in the session's `queue`.
    pub count: u64,
    /// No sequence among them is lower.
    pub from: u64,
    /// A read of the next window is under way, for sequences up to this one.
    pub reading: Option<u64>,
    /// Messages spilled since that read was asked for (above its range).
    pub since_read: u64,
    /// Where the purge of expired messages goes on (see `Router::sweep_expired_queues`).
    pub swept: u64,
}

#[derive(Debug)]
pub struct Inflight {
    pub packet_id: u16,
    pub queued: Queued,
    /// QoS 2: PUBREC received and PUBREL sent; waiting for PUBCOMP.
    pub released: bool,
}

/// The identity and topic permissions of a session's client.
#[derive(Debug, Default)]
pub struct SessionAccess {
    /// The username of the last connection, kept so that new topic permissions can be
    /// applied to the session while it is offline.
    pub username: Option<Arc<str>>,
    /// The client's topic permissions; `None` when the configuration has none.
    pub acl: Option<Arc<ClientAcl>>,
    /// Some subscription matches topics the client may not read: deliveries are checked.
    pub checks_delivery: bool,
}

#[derive(Debug)]
pub struct Session {
    pub client_id: Arc<str>,
    pub protocol: ProtocolVersion,
    pub connection: Option<Connected>,
    /// Seconds the session outlives its connection; `None` never expires.
    pub expiry_secs: Option<u32>,
    pub subscriptions: SmallMap<String, Subscription>,
    /// Outbound QoS 1/2 messages sent and not yet acknowledged, in send order.
    pub inflight: VecDeque<Inflight>,
    /// Packet ids of in-flight PUBLISHes owed a resend (DUP) on the current connection, in
    /// send order: on resume they go out as the new connection's window allows, before
    /// anything from `queue` (MQTT-4.4.0-1 with MQTT-3.3.4-9).
    pub pending_resend: VecDeque<u16>,
    /// Outbound QoS 1/2 messages waiting for the inflight window or for the client.
    pub queue: VecDeque<Queued>,
    /// Waiting messages kept only in the store, after those in `queue` (a disk store,
    /// [`crate::store::Store::keeps_queues`]): an offline session holds none in memory, a
    /// connected one a window that is read back as the client drains it.
    pub spill: Option<Box<Spill>>,
    /// Inbound QoS 2 packet ids whose PUBREL has not arrived (method B: the message was
    /// forwarded on PUBLISH; a re-sent PUBLISH with one of these ids is not forwarded again).
    pub incoming_qos2: HashSet<u16>,
    /// How many QoS 1/2 messages may be in flight to the client (its Receive Maximum,
    /// capped by ours).
    pub window: usize,
    /// The will of the attached (or last) connection, until published or deleted. Boxed:
    /// most clients have none, and inline it would more than double the session's size.
    pub will: Option<Box<Will>>,
    /// When a will whose delay is running goes out.
    pub will_at: Option<Instant>,
    /// When a disconnected session ends.
    pub expires_at: Option<Instant>,
    /// Who the client is and what it may do; `None` for an anonymous client while the
    /// configuration has no topic permissions. Boxed, as most of the time it is `None`.
    pub access: Option<Box<SessionAccess>>,
    next_packet_id: u16,
    next_sequence: u64,
    /// A new outbound QoS 1/2 PUBLISH is not sent by `send_inflight` but once the record of
    /// its packet id is durable (persistent session, unbuffered store): sent before, a crash
    /// could lose the id, and a QoS 2 message would go again after the restart as a new
    /// one, which the client would deliver twice. QoS 1 waits too, so that nothing
    /// overtakes a held QoS 2 message (MQTT-4.6.0-6).
    pub defer_sends: bool,
}

impl Session {
    pub fn new(client_id: Arc<str>, protocol: ProtocolVersion) -> Session {
        Session {
            client_id,
            protocol,
            connection: None,
            expiry_secs: Some(0),
            subscriptions: SmallMap::new(),
            inflight: VecDeque::new(),
            pending_resend: VecDeque::new(),
            queue: VecDeque::new(),
            spill: None,
            incoming_qos2: HashSet::new(),
            window: 1,
            will: None,
            will_at: None,
            expires_at: None,
            access: None,
            next_packet_id: 1,
            next_sequence: 1,
            defer_sends: false,
        }
    }

    pub fn username(&self) -> Option<&str> {
        self.access.as_ref().and_then(|a| a.username.as_deref())
    }

    pub fn acl(&self) -> Option<&ClientAcl> {
        self.access.as_ref().and_then(|a| a.acl.as_deref())
    }

    pub fn is_connected(&self) -> bool {
        self.connection.is_some()
    }

    /// Waiting messages kept only in the store.
    pub fn spilled(&self) -> u64 {
        self.spill.as_ref().map_or(0, |spill| spill.count)
    }

    /// Waiting messages, in memory and only in the store.
    pub fn queued_len(&self) -> u64 {
        self.queue.len() as u64 + self.spilled()
    }

    /// The sequence of the newest message numbered so far.
    pub fn last_sequence(&self) -> u64 {
        self.next_sequence - 1
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

    /// A message numbered `sequence` was restored from the store: later ones come after it.
    pub fn restored_sequence(&mut self, sequence: u64) {
        self.next_sequence = self.next_sequence.max(sequence.saturating_add(1));
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
    use super::*;

    /// The router holds one session per client, connected or not, so its size counts in the
    /// memory of every idle connection (issue 6). A will alone was 392 bytes inline; the
    /// session was 752 bytes before it was boxed.
    #[test]
    fn a_session_stays_small() {
        let size = size_of::<Session>();
        assert!(size <= 384, "Session is {size} bytes");
    }

    /// Every connection has one, boxed: at 104 bytes its allocation stays in glibc's
    /// 112-byte class (the detail pane's CONNECT properties fit in what was padding).
    #[test]
    fn connection_info_stays_small() {
        let size = size_of::<ConnectionInfo>();
        assert!(size <= 104, "ConnectionInfo is {size} bytes");
    }
}

//! Test helpers for the router's modules: sessions attached to a connection whose writer is
//! an unbounded channel the test reads, messages to put through them, and a [`Router`] on a
//! memory store that tests drive by calling its methods.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{ConnectRequest, Router};
use crate::broker::api::ListenerKind;
use crate::broker::connection::link::{ConnectionLink, Outbound, Outbox};
use crate::broker::message::Message;
use crate::broker::session::{Connected, ConnectionInfo, Inflight, Queued, Session};
use crate::broker::state::BrokerState;
use crate::mqtt::{ConnAck, Properties, ProtocolVersion, Publish, QoS, ReasonCode, Will};
use crate::store::{MemoryStore, QueueRange, QueuedRecord, Snapshot, Store, StoreError, StoreOp};

/// A router on a memory store with default limits, not running: tests call its methods.
pub(super) fn router() -> Router {
    router_on(Arc::new(MemoryStore::new()))
}

/// A router on `store`, not running.
pub(super) fn router_on(store: Arc<dyn Store>) -> Router {
    let (_sender, inbox) = mpsc::channel(1);
    Router::new(Arc::new(BrokerState::new()), store, inbox)
}

/// A memory store that keeps queues as the disk stores do ([`Store::keeps_queues`]).
#[derive(Default)]
pub(super) struct QueueKeepingStore(pub MemoryStore);

impl Store for QueueKeepingStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        self.0.load()
    }
    fn write(&self, ops: &[StoreOp]) -> Result<u64, StoreError> {
        self.0.write(ops)
    }
    fn durable(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.durable()
    }
    fn keeps_queues(&self) -> bool {
        true
    }
    fn read_queued(
        &self,
        client_id: &str,
        range: QueueRange,
    ) -> Result<Vec<QueuedRecord>, StoreError> {
        self.0.read_queued(client_id, range)
    }
}

/// A link to a connection `connection_id` whose writer's end is the returned outbox.
pub(super) fn link(connection_id: u64) -> (ConnectionLink, Outbox) {
    ConnectionLink::new(connection_id)
}

fn connection_info() -> ConnectionInfo {
    ConnectionInfo {
        address: SocketAddr::from((Ipv4Addr::LOCALHOST, 1883)),
        listener: ListenerKind::Tcp,
        username: None,
        certificate: None,
        keep_alive_secs: 60,
        connected_since: SystemTime::now(),
        clean_start: true,
        receive_maximum: None,
        maximum_packet_size: None,
        topic_alias_maximum: None,
        counters: Default::default(),
    }
}

/// A v5 CONNECT of `client_id` as its connection `connection_id` accepted it.
pub(super) fn connect_request(
    client_id: &str,
    connection_id: u64,
    clean_start: bool,
    expiry_secs: Option<u32>,
    will: Option<Will>,
) -> (ConnectRequest, Outbox) {
    let (link, receiver) = link(connection_id);
    let (reply, _) = tokio::sync::oneshot::channel();
    let request = ConnectRequest {
        client_id: Arc::from(client_id),
        protocol: ProtocolVersion::V5,
        clean_start,
        expiry_secs,
        will,
        window: 10,
        link,
        info: connection_info(),
        connack: ConnAck {
            session_present: false,
            reason: ReasonCode::Success,
            properties: Properties::default(),
        },
        reply,
    };
    (request, receiver)
}

/// A session of `protocol` attached to a connection with an inflight window of `window`;
/// the receiver gets what the router would hand the connection's writer.
pub(super) fn connected_session(protocol: ProtocolVersion, window: usize) -> (Session, Outbox) {
    let (link, receiver) = link(1);
    let mut session = Session::new(Arc::from("client"), protocol);
    session.window = window;
    session.connection = Some(Connected {
        link,
        info: Box::new(connection_info()),
    });
    (session, receiver)
}

/// A message published on `topic` at `now`, expiring `expiry_secs` later if given.
pub(super) fn message_at(topic: &str, expiry_secs: Option<u32>, now: Instant) -> Arc<Message> {
    let publish = Publish {
        dup: false,
        qos: QoS::ExactlyOnce,
        retain: false,
        topic: Arc::from(topic),
        packet_id: None,
        properties: Properties {
            message_expiry_interval: expiry_secs,
            ..Properties::default()
        },
        payload: Bytes::from_static(b"payload"),
    };
    Arc::new(Message::new(publish, now))
}

/// A message for one session on `topic`, at `qos`, through the shared subscription `share`.
pub(super) fn queued(topic: &str, qos: QoS, share: Option<&str>) -> Queued {
    Queued {
        payload: 0,
        sequence: 0,
        message: message_at(topic, None, Instant::now()),
        qos,
        retain: false,
        subscription_ids: Vec::new(),
        share: share.map(Arc::from),
    }
}

/// A message already in flight under `packet_id`.
pub(super) fn inflight(packet_id: u16, topic: &str, qos: QoS) -> Inflight {
    Inflight {
        packet_id,
        queued: queued(topic, qos, None),
        released: false,
    }
}

/// Everything sent to the connection so far, as readable items: `PUBLISH topic id dup` or
/// `ACK kind id reason`.
pub(super) fn sent(receiver: &mut Outbox) -> Vec<String> {
    let mut items = Vec::new();
    while let Some(item) = receiver.try_recv() {
        items.push(match item {
            Outbound::Publish(delivery) => format!(
                "PUBLISH {} {} {}",
                delivery.message.topic(),
                delivery.packet_id.map_or(0, u32::from),
                if delivery.dup { "dup" } else { "new" }
            ),
            Outbound::Ack(ack) => format!("ACK {:?} {} {:?}", ack.kind, ack.packet_id, ack.reason),
            Outbound::Packet(packet) => format!("PACKET {}", packet.packet_type()),
            Outbound::Close(reason) => format!("CLOSE {reason:?}"),
        });
    }
    items
}

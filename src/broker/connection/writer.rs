//! The writer: the task that takes everything queued for one connection off its link,
//! encodes it into one batch per wake-up (outbound topic aliases, the client's Maximum
//! Packet Size, Request Problem Information) and writes the batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::aliases::OutboundAliases;
use super::link::{Outbound, Outbox};
use crate::broker::api::{Direction, ListenerKind};
use crate::broker::message::Delivery;
use crate::broker::metrics::Metrics;
use crate::broker::router::RouterMsg;
use crate::broker::session::ClientCounters;
use crate::broker::state::BrokerState;
use crate::broker::subscriptions::SessionKey;
use crate::mqtt::{
    Disconnect, EncodeError, Packet, ProtocolVersion, PublishDelivery, QoS, encode, encode_publish,
};

/// Largest batch the writer gathers before writing.
const WRITE_BATCH: usize = 64 * 1024;
/// What a batch starts with; it grows as needed up to about [`WRITE_BATCH`].
const BATCH_START: usize = 4 * 1024;
/// A batch that cannot be written in this time means a peer that stopped reading: the
/// connection is closed rather than held open forever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) struct Writer<W> {
    /// This connection's message counts, shown in the console's client list.
    pub(super) counters: std::sync::Arc<ClientCounters>,
    pub(super) out: W,
    pub(super) outbox: Outbox,
    pub(super) version: ProtocolVersion,
    /// The client's Maximum Packet Size (MQTT-3.1.2-24/-25).
    pub(super) max_packet_size: u32,
    /// Topic aliases up to the client's Topic Alias Maximum.
    pub(super) aliases: OutboundAliases,
    /// Request Problem Information (MQTT-3.1.2-29).
    pub(super) problem_information: bool,
    pub(super) unacknowledged_qos1: Arc<AtomicUsize>,
    pub(super) shared: Arc<BrokerState>,
    pub(super) client_id: Arc<str>,
    /// For the diagnostics log.
    pub(super) transport: ListenerKind,
    pub(super) router: mpsc::Sender<RouterMsg>,
    pub(super) connection_id: u64,
    /// The session attached to this connection (`None` only when attaching failed).
    pub(super) session: Option<SessionKey>,
    /// Dropped when the writer ends (closed, write failed or timed out, or aborted): the
    /// reader then stops reading. A channel rather than a cancellation token because the
    /// reader polls it on every wake-up, and a oneshot receiver is polled with atomics only.
    pub(super) _ended: oneshot::Sender<()>,
}

impl<W: AsyncWrite + Unpin + Send> Writer<W> {
    pub(super) async fn run(mut self) {
        let mut batch = BytesMut::new();
        'outer: loop {
            // One slot for the item in hand, from the wait to the end of the batch: every
            // local held across an await is carried by every idle connection's writer.
            let mut next = match self.outbox.try_recv() {
                Some(item) => Some(item),
                None => {
                    // Nothing to write: an idle connection holds no write buffer and no
                    // queue. The buffer goes back to this thread's pool, so a connection
                    // that writes a little at a time does not allocate one per wake-up.
                    batch_pool::give_back(std::mem::take(&mut batch));
                    self.outbox.release_memory();
                    self.outbox.recv().await
                }
            };
            if next.is_none() {
                // Every link is dropped: the connection is ending, and what the router sent
                // before has been written.
                if let Some(reason) = self.outbox.farewell() {
                    self.encode_packet(Packet::Disconnect(Disconnect::new(reason)), &mut batch);
                }
                let _ = self.flush(&mut batch).await;
                let _ = self.out.shutdown().await;
                break;
            }
            if batch.capacity() == 0 {
                batch = batch_pool::take();
            }
            batch.reserve(BATCH_START);
            let mut closing = None;
            // Drain everything queued into one buffer, then write once.
            while let Some(item) = next.take() {
                match item {
                    Outbound::Packet(packet) => self.encode_packet(*packet, &mut batch),
                    Outbound::Ack(ack) => self.encode_packet(ack.into_packet(), &mut batch),
                    Outbound::Publish(delivery) => {
                        if let Some(discarded) = self.encode_delivery(delivery, &mut batch) {
                            // Boxed: a rare wait that every writer's future would otherwise
                            // carry.
                            let _ = Box::pin(self.router.send(discarded)).await;
                        }
                    }
                    Outbound::Close(reason) => {
                        closing = Some(reason);
                        break;
                    }
                }
                if batch.len() >= WRITE_BATCH {
                    break;
                }
                next = self.outbox.try_recv();
            }
            if let Some(reason) = closing {
                if let Some(reason) = reason {
                    self.encode_packet(Packet::Disconnect(Disconnect::new(reason)), &mut batch);
                }
                let _ = self.flush(&mut batch).await;
                let _ = self.out.shutdown().await;
                break 'outer;
            }
            if self.flush(&mut batch).await.is_err() {
                break;
            }
        }
    }

    async fn flush(&mut self, batch: &mut BytesMut) -> std::io::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        // Flushed too: a TCP socket writes through, but a framing or encrypting stream
        // (WebSockets, TLS) may hold the bytes until told to send them.
        let written = async {
            self.out.write_all(batch).await?;
            self.out.flush().await
        };
        let result = tokio::time::timeout(WRITE_TIMEOUT, written).await;
        Metrics::add(&self.shared.metrics.bytes_sent, batch.len() as u64);
        batch.clear();
        match result {
            Ok(written) => written,
            Err(_elapsed) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }

    fn encode_packet(&mut self, mut packet: Packet, batch: &mut BytesMut) {
        if matches!(packet, Packet::PubAck(_)) {
            let _ = self
                .unacknowledged_qos1
                .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
        }
        if !self.problem_information {
            strip_problem_information(&mut packet);
        }
        let before = batch.len();
        match encode(&packet, self.version, self.max_packet_size, batch) {
            Ok(()) => {
                if self.shared.diagnostics.is_on() {
                    self.shared.diagnostics.record(
                        &self.client_id,
                        self.transport,
                        Direction::Out,
                        &packet,
                        batch.len() - before,
                    );
                }
            }
            Err(error) => {
                batch.truncate(before);
                // Never silently: a control packet the client cannot take leaves it waiting.
                // (A CONNACK that does not fit is refused before the session starts, so it
                // cannot end up here.)
                tracing::debug!(
                    client_id = %self.client_id,
                    packet = %packet.packet_type(),
                    %error,
                    "packet not sent"
                );
            }
        }
    }

    /// Encodes one PUBLISH into `batch`; returns the message for the router when it was
    /// too large for the client and must be accounted as delivered.
    fn encode_delivery(&mut self, delivery: Delivery, batch: &mut BytesMut) -> Option<RouterMsg> {
        let publish = &delivery.message.publish;
        let alias = self.aliases.lookup(&publish.topic);
        let fields = PublishDelivery {
            qos: delivery.qos,
            dup: delivery.dup,
            retain: delivery.retain,
            packet_id: delivery.packet_id,
            topic_alias: alias.alias,
            omit_topic: alias.omit_topic,
            subscription_identifiers: &delivery.subscription_ids,
            message_expiry_interval: delivery.message.remaining_expiry_now(),
        };
        let before = batch.len();
        match encode_publish(publish, &fields, self.version, self.max_packet_size, batch) {
            Ok(()) => {
                self.aliases.confirm(&publish.topic, alias);
                Metrics::add(&self.shared.metrics.messages_sent, 1);
                ClientCounters::add(&self.counters.sent);
                if self.shared.diagnostics.is_on() {
                    let mut shown = publish.clone();
                    shown.qos = delivery.qos;
                    shown.packet_id = delivery.packet_id;
                    self.shared.diagnostics.record(
                        &self.client_id,
                        self.transport,
                        Direction::Out,
                        &Packet::Publish(shown),
                        batch.len() - before,
                    );
                }
            }
            Err(EncodeError::TooLarge { .. }) => {
                batch.truncate(before);
                // Too large for the client: discarded as if sent (MQTT-3.1.2-25).
                Metrics::add(&self.shared.metrics.messages_dropped, 1);
                ClientCounters::add(&self.counters.dropped);
                if let (Some(packet_id), Some(session)) = (delivery.packet_id, self.session)
                    && delivery.qos != QoS::AtMostOnce
                {
                    return Some(RouterMsg::Discarded {
                        session,
                        connection_id: self.connection_id,
                        packet_id,
                    });
                }
            }
            Err(error) => {
                batch.truncate(before);
                tracing::debug!(client_id = %self.client_id, %error, "PUBLISH not sent");
            }
        }
        None
    }
}

/// With Request Problem Information 0 the server sends no Reason String or User Properties
/// except on PUBLISH, CONNACK and DISCONNECT (MQTT-3.1.2-29).
fn strip_problem_information(packet: &mut Packet) {
    let properties = match packet {
        Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r) => {
            &mut r.properties
        }
        Packet::SubAck(s) => &mut s.properties,
        Packet::UnsubAck(u) => &mut u.properties,
        Packet::Auth(a) => &mut a.properties,
        _ => return,
    };
    properties.reason_string = None;
    properties.user_properties.clear();
}

/// Write buffers between connections' bursts. A writer gives its buffer back when it runs dry
/// and takes one when it wakes, so an idle connection holds none while busy ones, each writing
/// a few packets at a time, reuse the same few instead of allocating one per wake-up. Per
/// thread, so taking and giving back need no lock.
mod batch_pool {
    use std::cell::RefCell;

    use bytes::BytesMut;

    use super::BATCH_START;

    /// Buffers kept per thread at most.
    const POOL_SIZE: usize = 64;
    /// Larger buffers (grown by a flat-out writer) are freed rather than kept.
    const KEPT_CAPACITY: usize = 16 * 1024;

    thread_local! {
        static POOL: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    }

    /// An empty buffer, from the pool if it has one.
    pub(super) fn take() -> BytesMut {
        POOL.with(|pool| pool.borrow_mut().pop())
            .unwrap_or_else(|| BytesMut::with_capacity(BATCH_START))
    }

    /// Keeps `buffer` for the next [`take`] on this thread, or frees it.
    pub(super) fn give_back(mut buffer: BytesMut) {
        let capacity = buffer.capacity();
        if capacity == 0 || capacity > KEPT_CAPACITY {
            return;
        }
        buffer.clear();
        POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < POOL_SIZE {
                pool.push(buffer);
            }
        });
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_buffer_given_back_is_taken_again_and_large_ones_are_freed() {
            let mut buffer = take();
            buffer.extend_from_slice(b"packet");
            let address = buffer.as_ptr();
            give_back(buffer);
            let again = take();
            assert!(again.is_empty());
            assert_eq!(again.as_ptr(), address, "the same allocation");
            give_back(BytesMut::with_capacity(KEPT_CAPACITY * 2));
            give_back(BytesMut::new());
            let fresh = take();
            assert!(fresh.capacity() >= BATCH_START && fresh.capacity() <= KEPT_CAPACITY);
        }
    }
}

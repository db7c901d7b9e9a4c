//! The reader: this connection's half that reads the socket. It decodes packets, answers
//! PINGREQ, enforces keep alive, our Receive Maximum and inbound topic aliases, and hands
//! everything else to the router in batches.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use foldhash::HashSet;
use tokio::sync::{mpsc, oneshot};

use super::aliases::InboundAliases;
use super::link::{ConnectionLink, Outbound};
use super::{Ending, Input, READ_CHUNK};
use crate::broker::api::{Direction, ListenerKind};
use crate::broker::metrics::Metrics;
use crate::broker::router::RouterMsg;
use crate::broker::session::ClientCounters;
use crate::broker::state::BrokerState;
use crate::broker::subscriptions::SessionKey;
use crate::config::Limits;
use crate::mqtt::{Disconnect, Packet, ProtocolVersion, Publish, QoS, ReasonCode, decode, topic};

/// Longest a publisher waits for one congested subscriber before reading on.
const THROTTLE_LIMIT: Duration = Duration::from_millis(500);

pub(super) struct Reader<R> {
    /// This connection's message counts, shown in the console's client list.
    pub(super) counters: std::sync::Arc<ClientCounters>,
    pub(super) reader: R,
    pub(super) buffer: BytesMut,
    pub(super) version: ProtocolVersion,
    pub(super) limits: Limits,
    pub(super) keep_alive: u16,
    pub(super) connect_expiry: u32,
    /// Inbound topic aliases (MQTT 5.0 §3.3.2.3.4), at most `limits.max_topic_aliases`.
    pub(super) aliases: InboundAliases,
    /// Inbound QoS 1 PUBLISH whose PUBACK the writer has not sent yet (shared with it).
    pub(super) unacknowledged_qos1: Arc<AtomicUsize>,
    /// Packet ids of inbound v5 QoS 2 PUBLISH on this connection not yet released by PUBREL.
    /// With `unacknowledged_qos1` it is the client's send quota in use (MQTT 5.0 §4.9), which
    /// starts afresh on every network connection. Bounded: exceeding our Receive Maximum ends
    /// the connection.
    pub(super) unreleased_qos2: HashSet<u16>,
    pub(super) shared: Arc<BrokerState>,
    pub(super) client_id: Arc<str>,
    /// For the diagnostics log.
    pub(super) transport: ListenerKind,
    pub(super) router: mpsc::Sender<RouterMsg>,
    pub(super) session: SessionKey,
    pub(super) connection_id: u64,
    /// This connection's line to its writer (the same as the router's): the reader answers
    /// PINGREQ through it. Its throttle is the backpressure from a congested subscriber.
    pub(super) link: ConnectionLink,
    /// Packets decoded from the current read, sent to the router together (in order) before
    /// the next read, before anything the reader handles itself ends the connection, or when
    /// [`FORWARD_BATCH`] of them are waiting.
    pub(super) pending: Vec<Packet>,
}

/// Packets the reader hands to the router in one message at most.
const FORWARD_BATCH: usize = 64;

enum Step {
    Continue,
    End(Ending),
}

/// What the reader does after one decoded packet (or a malformed one).
enum AfterPacket {
    /// Decode the next packet in the buffer.
    Decode,
    /// [`FORWARD_BATCH`] packets are waiting: hand them to the router first.
    Forward,
    /// Hand what is waiting to the router, then end the connection.
    End(Ending),
}

fn protocol_error(reason: ReasonCode) -> Step {
    Step::End(Ending {
        reason: Some(reason),
        publish_will: true,
        expiry_secs: None,
        closed_by_broker: false,
    })
}

impl<R: Input> Reader<R> {
    pub(super) async fn run(&mut self, writer_ended: &mut oneshot::Receiver<()>) -> Ending {
        // Keep alive: 1.5 times the interval without a packet closes the connection
        // (MQTT-3.1.2-24); v5 clients get DISCONNECT 0x8D first.
        let grace =
            (self.keep_alive > 0).then(|| Duration::from_millis(u64::from(self.keep_alive) * 1500));
        let mut deadline = grace.map(|g| Instant::now() + g);
        // One timer for the whole connection: creating it per read registered and
        // deregistered it every time. It is set to the deadline known when it was armed; when
        // it fires early (packets came since), it is re-armed.
        let keep_alive = sleep_until(deadline);
        tokio::pin!(keep_alive);
        loop {
            // The keep-alive deadline moves once per read, not per packet: one clock read
            // for all the packets a read brought in.
            let mut decoded_any = false;
            loop {
                let available = self.buffer.len();
                // What to do next is decided before any await, so that the decoded packet
                // (hundreds of bytes) is never held across one: held, it would sit in every
                // idle connection's future.
                let next = match decode(
                    &mut self.buffer,
                    Some(self.version),
                    self.limits.max_packet_size,
                ) {
                    Ok(Some(packet)) => {
                        decoded_any = true;
                        let size = available - self.buffer.len();
                        match self.handle(packet, size) {
                            Step::End(ending) => AfterPacket::End(ending),
                            Step::Continue if self.pending.len() >= FORWARD_BATCH => {
                                AfterPacket::Forward
                            }
                            Step::Continue => AfterPacket::Decode,
                        }
                    }
                    Ok(None) => {
                        if decoded_any {
                            deadline = grace.map(|g| Instant::now() + g);
                        }
                        break;
                    }
                    Err(error) => {
                        // A malformed packet closes this connection only (MQTT-4.13.1-1).
                        tracing::debug!(client_id = %self.client_id, %error, "closing on a bad packet");
                        match protocol_error(error.reason_code()) {
                            Step::End(ending) => AfterPacket::End(ending),
                            Step::Continue => AfterPacket::Decode,
                        }
                    }
                };
                match next {
                    AfterPacket::Decode => {}
                    AfterPacket::Forward => {
                        if let Step::End(ending) = self.flush_pending().await {
                            return ending;
                        }
                    }
                    AfterPacket::End(ending) => {
                        // What came before the end still reaches the router first.
                        let _ = self.flush_pending().await;
                        return ending;
                    }
                }
            }
            if let Step::End(ending) = self.flush_pending().await {
                return ending;
            }
            if let Some(backlog) = self.link.throttle.take() {
                // Our messages feed a subscriber that is behind: read no more until it has
                // caught up (bounded, so a stuck subscriber cannot stall us for long).
                // Boxed, like every rare wait here: the connection's future stays small.
                Box::pin(backlog.wait_drained(THROTTLE_LIMIT)).await;
                // Packets waiting in the socket meanwhile must not count as silence.
                deadline = grace.map(|g| Instant::now() + g);
            }
            if self.link.backlog.is_over_read_limit() {
                // The client is not reading what it asked for: read no more of its packets
                // until the writer has caught up, so TCP slows it down (defect 3 of issue 6).
                tokio::select! {
                    _ = &mut *writer_ended => {
                        return Ending { reason: None, publish_will: true, expiry_secs: None, closed_by_broker: true };
                    }
                    _ = Box::pin(self.link.backlog.wait_for_room_to_read()) => {}
                }
                deadline = grace.map(|g| Instant::now() + g);
            }
            if self.buffer.is_empty() {
                // No packet is half read: an idle connection holds no read buffer. (Decoded
                // payloads share the old one; it is freed when they are.)
                self.buffer = BytesMut::new();
            }
            tokio::select! {
                // The writer ended (the broker closed the connection or the peer stopped
                // taking data): this branch completes once, and the loop returns.
                _ = &mut *writer_ended => {
                    return Ending { reason: None, publish_will: true, expiry_secs: None, closed_by_broker: true };
                }
                ready = self.reader.ready() => {
                    let read = match ready {
                        Ok(()) => read_available(&self.reader, &mut self.buffer),
                        Err(error) => Err(error),
                    };
                    match read {
                        Ok(0) => {
                            return Ending { reason: None, publish_will: true, expiry_secs: None, closed_by_broker: false };
                        }
                        Ok(n) => {
                            Metrics::add(&self.shared.metrics.bytes_received, n as u64);
                            // Waiting for readiness costs no scheduling budget when input is
                            // already there, and `try_read` never does: without this, a
                            // publisher that always has input would read on and on in one
                            // poll, starving the router and the writers (tokio's cooperative
                            // budget, which `AsyncRead` reads spend).
                            tokio::task::consume_budget().await;
                        }
                        // Readiness can be spurious.
                        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => {
                            return Ending { reason: None, publish_will: true, expiry_secs: None, closed_by_broker: false };
                        }
                    }
                }
                _ = &mut keep_alive, if deadline.is_some() => {
                    if deadline.is_some_and(|at| at > Instant::now()) {
                        keep_alive.set(sleep_until(deadline));
                        continue;
                    }
                    tracing::debug!(client_id = %self.client_id, "keep alive timeout");
                    return Ending {
                        reason: Some(ReasonCode::KeepAliveTimeout),
                        publish_will: true,
                        expiry_secs: None,
                        closed_by_broker: false,
                    };
                }
            }
        }
    }

    /// Whether this PUBLISH takes a v5 client past our Receive Maximum: QoS 1 and QoS 2
    /// messages count together until PUBACK / PUBCOMP (MQTT-3.3.4-7 seen from the server;
    /// MQTT 5.0 §4.9). A re-sent QoS 2 PUBLISH with a packet id already held counts once.
    fn exceeds_receive_maximum(&mut self, publish: &Publish) -> bool {
        let in_use = match publish.qos {
            QoS::AtMostOnce => return false,
            QoS::AtLeastOnce => self.unacknowledged_qos1.fetch_add(1, Relaxed) + 1,
            QoS::ExactlyOnce => {
                if self.version.is_v5()
                    && let Some(packet_id) = publish.packet_id
                {
                    self.unreleased_qos2.insert(packet_id);
                }
                self.unacknowledged_qos1.load(Relaxed)
            }
        };
        self.version.is_v5()
            && in_use + self.unreleased_qos2.len() > usize::from(self.limits.max_inflight)
    }

    fn handle(&mut self, packet: Packet, size: usize) -> Step {
        if self.shared.diagnostics.is_on() {
            self.shared.diagnostics.record(
                &self.client_id,
                self.transport,
                Direction::In,
                &packet,
                size,
            );
        }
        match packet {
            Packet::PingReq => {
                self.link.send(Outbound::Packet(Box::new(Packet::PingResp)));
                Step::Continue
            }
            Packet::Publish(publish) => match self.resolve_topic(publish) {
                Ok(publish) => {
                    if self.exceeds_receive_maximum(&publish) {
                        return protocol_error(ReasonCode::ReceiveMaximumExceeded);
                    }
                    Metrics::add(&self.shared.metrics.messages_received, 1);
                    ClientCounters::add(&self.counters.received);
                    self.forward(Packet::Publish(publish))
                }
                Err(reason) => protocol_error(reason),
            },
            Packet::Disconnect(disconnect) => self.disconnect(disconnect),
            Packet::PubRel(release) => {
                self.unreleased_qos2.remove(&release.packet_id);
                self.forward(Packet::PubRel(release))
            }
            Packet::PubAck(_)
            | Packet::PubRec(_)
            | Packet::PubComp(_)
            | Packet::Subscribe(_)
            | Packet::Unsubscribe(_) => self.forward(packet),
            // A second CONNECT is a protocol error (MQTT-3.1.0-2); server-to-client packets
            // and AUTH (no enhanced authentication is offered) are too.
            Packet::Connect(_)
            | Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp
            | Packet::Auth(_) => protocol_error(ReasonCode::ProtocolError),
        }
    }

    /// Queues a packet for the router; the read loop sends them in batches.
    fn forward(&mut self, packet: Packet) -> Step {
        self.pending.push(packet);
        Step::Continue
    }

    /// Sends the packets decoded so far to the router, in one message.
    async fn flush_pending(&mut self) -> Step {
        if self.pending.is_empty() {
            return Step::Continue;
        }
        let message = RouterMsg::FromClient {
            session: self.session,
            connection_id: self.connection_id,
            packets: std::mem::take(&mut self.pending),
        };
        // Usually the router's inbox has room and no wait is needed. When it has not, the wait
        // is boxed: every idle connection's future would otherwise carry a send future.
        let sent = match self.router.try_send(message) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(message)) => {
                Box::pin(self.router.send(message)).await.is_ok()
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        };
        if !sent {
            return Step::End(Ending {
                reason: Some(ReasonCode::ServerShuttingDown),
                publish_will: false,
                expiry_secs: None,
                closed_by_broker: false,
            });
        }
        Step::Continue
    }

    fn disconnect(&mut self, disconnect: Disconnect) -> Step {
        let expiry = disconnect.properties.session_expiry_interval;
        // Setting a non-zero expiry on DISCONNECT after CONNECT asked for 0 is a protocol
        // error (MQTT-3.14.2-2).
        if self.connect_expiry == 0 && expiry.is_some_and(|e| e > 0) {
            return protocol_error(ReasonCode::ProtocolError);
        }
        // Normal DISCONNECT deletes the will (MQTT-3.1.2-10, MQTT-3.14.4-3); reason 0x04
        // asks for it to be published.
        Step::End(Ending {
            reason: None,
            publish_will: disconnect.reason == ReasonCode::DisconnectWithWillMessage,
            expiry_secs: expiry,
            closed_by_broker: false,
        })
    }

    /// Resolves an inbound topic alias and checks what the codec cannot know.
    fn resolve_topic(&mut self, mut publish: Publish) -> Result<Publish, ReasonCode> {
        // A client may not send Subscription Identifiers (MQTT-3.3.4-6).
        if !publish.properties.subscription_identifiers.is_empty() {
            return Err(ReasonCode::ProtocolError);
        }
        self.aliases
            .resolve(&mut publish, self.limits.max_topic_aliases)?;
        if publish.topic.is_empty() {
            return Err(ReasonCode::ProtocolError);
        }
        if !topic::is_valid_topic_name_within(&publish.topic, self.limits.max_topic_levels) {
            return Err(ReasonCode::TopicNameInvalid);
        }
        Ok(publish)
    }
}
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

thread_local! {
    /// Where a read into an empty buffer lands first (see [`read_available`]).
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
}

/// Reads what is ready into `buffer`. A read into an empty buffer goes through this thread's
/// scratch space, and only what arrived is kept: one allocation of the input's own size
/// rather than a whole read chunk for a packet of a few dozen bytes, which would also stay
/// allocated for as long as a queued payload decoded from it lives.
fn read_available<R: Input>(input: &R, buffer: &mut BytesMut) -> std::io::Result<usize> {
    if !buffer.is_empty() {
        // The rest of a packet: read straight into the buffer that holds its beginning.
        buffer.reserve(READ_CHUNK);
        return input.try_read_into(buffer);
    }
    SCRATCH.with_borrow_mut(|scratch| {
        let read = input.try_read(scratch)?;
        *buffer = BytesMut::from(&scratch[..read]);
        Ok(read)
    })
}

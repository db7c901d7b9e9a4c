//! One client connection: a reader (this task: CONNECT, keep alive, topic aliases in,
//! inbound packets to the router) and a writer task (batches everything the router queued
//! into one write, topic aliases out, the client's Maximum Packet Size).
//!
//! The code sees only a byte stream ([`ByteStream`]) so that TLS and WebSockets slot in as
//! other transports.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use super::api::{Direction, ListenerKind};
use super::auth;
use super::metrics::Metrics;
use super::router::{ConnectRequest, RouterMsg};
use super::session::{Backlog, ConnectionInfo, ConnectionLink, Outbound, Throttle};
use super::shared::Shared;
use super::subscriptions::SessionKey;
use crate::config::{Config, Limits};
use crate::mqtt::{
    ConnAck, Connect, DecodeError, Disconnect, EncodeError, MAX_REMAINING_LENGTH, Packet,
    Properties, ProtocolVersion, Publish, PublishDelivery, QoS, ReasonCode, decode, encode,
    encode_publish, topic,
};

/// Any transport's byte stream: TCP now, TLS and WebSockets later.
pub trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> ByteStream for T {}

/// Largest batch the writer gathers before writing.
const WRITE_BATCH: usize = 64 * 1024;
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 8 * 1024;
/// How long a closing connection waits for its writer to flush the last packets.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Longest a publisher waits for one congested subscriber before reading on.
const THROTTLE_LIMIT: Duration = Duration::from_millis(500);
/// A batch that cannot be written in this time means a peer that stopped reading: the
/// connection is closed rather than held open forever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Keeps `open_connections` honest however the task ends.
struct OpenConnection<'a>(&'a Shared);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.metrics.open_connections.fetch_sub(1, Relaxed);
    }
}

/// What ended the reader loop.
struct Ending {
    /// v5 DISCONNECT reason to send before closing; `None` closes silently.
    reason: Option<ReasonCode>,
    publish_will: bool,
    expiry_secs: Option<u32>,
    /// The router (or a write failure) already closed the connection.
    closed_by_broker: bool,
}

/// Serves one accepted socket until it closes.
pub async fn run<S: ByteStream>(
    stream: S,
    address: SocketAddr,
    listener: ListenerKind,
    shared: Arc<Shared>,
    router: mpsc::Sender<RouterMsg>,
) {
    let open = shared.metrics.open_connections.fetch_add(1, Relaxed) + 1;
    let _open = OpenConnection(&shared);
    let config = shared.config();
    let limits = &config.limits;
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut buffer = BytesMut::with_capacity(READ_CHUNK);

    // CONNECT must come first, and within the connect timeout (MQTT-3.1.0-1).
    let connect_timeout = Duration::from_secs(u64::from(limits.connect_timeout_secs.max(1)));
    let first = tokio::time::timeout(
        connect_timeout,
        read_connect(&mut reader, &mut buffer, limits.max_packet_size, &shared),
    )
    .await;
    let (connect, connect_size) = match first {
        Ok(Ok(read)) => read,
        Ok(Err(ConnectFailure::Unsupported)) => {
            // The client's level is unknown to us, so answer in 3.1.1 form: return code 0x01
            // Unacceptable protocol version, then close (MQTT-3.1.2-2).
            let _ = writer.write_all(&[0x20, 0x02, 0x00, 0x01]).await;
            let _ = writer.shutdown().await;
            return;
        }
        Ok(Err(ConnectFailure::RefusedV5(reason))) => {
            refuse(
                &mut writer,
                ProtocolVersion::V5,
                reason,
                limits.max_packet_size,
            )
            .await;
            return;
        }
        Ok(Err(ConnectFailure::Closed)) => return,
        Err(_elapsed) => {
            tracing::debug!(%address, "no CONNECT within the connect timeout");
            return;
        }
    };
    let version = connect.protocol;

    if let Err(reason) = admit(&connect, &config, open) {
        refuse(&mut writer, version, reason, limits.max_packet_size).await;
        return;
    }
    let (client_id, assigned) = if connect.client_id.is_empty() {
        // An empty client id is allowed in v5 and, in 3.1.1, only with a clean session
        // (MQTT-3.1.3-6, MQTT-3.1.3-8).
        if version.is_v5() || connect.clean_start {
            (shared.assign_client_id(), true)
        } else {
            refuse(
                &mut writer,
                version,
                ReasonCode::ClientIdentifierNotValid,
                limits.max_packet_size,
            )
            .await;
            return;
        }
    } else {
        (connect.client_id.clone(), false)
    };
    let client_id: Arc<str> = Arc::from(client_id);
    tracing::Span::current().record("client_id", &*client_id);
    let negotiated = Negotiated::new(&connect, limits, assigned.then(|| client_id.clone()));
    // The server sends CONNACK first (MQTT-3.2.0-1) and nothing larger than the client's
    // Maximum Packet Size (MQTT-3.1.2-24). A client whose limit is below even the CONNACK
    // without default-valued properties is refused (a bare CONNACK, if that fits) rather
    // than left waiting for an answer that never comes.
    if !fits(
        &negotiated.connack,
        version,
        negotiated.client_max_packet_size,
    ) {
        tracing::warn!(
            %address,
            client_id = %client_id,
            maximum_packet_size = negotiated.client_max_packet_size,
            "CONNACK does not fit the client's Maximum Packet Size; refusing the connection"
        );
        refuse(
            &mut writer,
            version,
            ReasonCode::ImplementationSpecificError,
            negotiated.client_max_packet_size,
        )
        .await;
        return;
    }
    if shared.diagnostics.is_on() {
        shared.diagnostics.record(
            &client_id,
            Direction::In,
            &Packet::Connect(Box::new(connect.clone())),
            connect_size,
        );
    }

    let connection_id = shared.next_connection_id();
    let (sender, receiver) = mpsc::unbounded_channel();
    let backlog = Arc::new(Backlog::default());
    let throttle = Arc::new(Throttle::default());
    let unacknowledged_qos1 = Arc::new(AtomicUsize::new(0));
    let link = ConnectionLink {
        connection_id,
        sender: sender.clone(),
        backlog: backlog.clone(),
        throttle: throttle.clone(),
    };
    let (writer_ended, mut closed) = oneshot::channel::<()>();
    let (attached_tx, attached_rx) = oneshot::channel();
    let writer_task = tokio::spawn(
        Writer {
            out: writer,
            receiver,
            backlog,
            version,
            max_packet_size: negotiated.client_max_packet_size,
            alias_max: negotiated.client_topic_alias_max,
            aliases: HashMap::new(),
            problem_information: negotiated.request_problem_information,
            unacknowledged_qos1: unacknowledged_qos1.clone(),
            shared: shared.clone(),
            client_id: client_id.clone(),
            router: router.clone(),
            connection_id,
            session: attached_rx,
            session_key: None,
            _ended: writer_ended,
        }
        .run()
        .instrument(tracing::Span::current()),
    );

    let (reply, session) = oneshot::channel();
    let request = ConnectRequest {
        client_id: client_id.clone(),
        protocol: version,
        clean_start: connect.clean_start,
        expiry_secs: negotiated.expiry_secs,
        will: connect.will.clone(),
        window: negotiated.window,
        link,
        info: ConnectionInfo {
            address,
            listener,
            username: connect.username.clone(),
            keep_alive_secs: negotiated.keep_alive,
            connected_since: SystemTime::now(),
        },
        connack: negotiated.connack.clone(),
        reply,
    };
    let session = if router
        .send(RouterMsg::Connect(Box::new(request)))
        .await
        .is_ok()
    {
        session.await.ok()
    } else {
        None
    };
    let Some(session) = session else {
        let _ = sender.send(Outbound::Close(Some(ReasonCode::ServerUnavailable)));
        let _ = tokio::time::timeout(CLOSE_GRACE, writer_task).await;
        return;
    };
    let _ = attached_tx.send(session);
    tracing::debug!(%address, client_id = %client_id, %version, "client connected");

    let mut connection = Reader {
        reader,
        buffer,
        version,
        limits: limits.clone(),
        keep_alive: negotiated.keep_alive,
        connect_expiry: negotiated.requested_expiry,
        aliases: HashMap::new(),
        unacknowledged_qos1,
        unreleased_qos2: HashSet::new(),
        throttle,
        shared: shared.clone(),
        client_id: client_id.clone(),
        router: router.clone(),
        session,
        connection_id,
        sender: sender.clone(),
        pending: Vec::new(),
    };
    let ending = connection.run(&mut closed).await;
    if !ending.closed_by_broker {
        let reason = ending.reason.filter(|_| version.is_v5());
        let _ = sender.send(Outbound::Close(reason));
    }
    // The router ignores this when it closed the connection itself (takeover, admin).
    let _ = router
        .send(RouterMsg::ConnectionLost {
            session,
            connection_id,
            publish_will: ending.publish_will,
            expiry_secs: ending.expiry_secs,
        })
        .await;
    drop(sender);
    let abort = writer_task.abort_handle();
    if tokio::time::timeout(CLOSE_GRACE, writer_task)
        .await
        .is_err()
    {
        // The peer is not reading: give up on the last packets and close the socket.
        abort.abort();
    }
    tracing::debug!(client_id = %client_id, "connection closed");
}

/// Limits and authentication, decided before a session is touched.
fn admit(connect: &Connect, config: &Config, open: u64) -> Result<(), ReasonCode> {
    // Over max_connections: the CONNECT is read and answered with Server busy (3.1.1: 0x03
    // Server unavailable) so that the client learns why, then the socket is closed. A
    // socket that never sends CONNECT is bounded by the connect timeout.
    if open > u64::from(config.limits.max_connections) {
        return Err(ReasonCode::ServerBusy);
    }
    // A will topic the broker would refuse in a PUBLISH: 0x90 Topic Name Invalid, "the Will
    // Topic Name is not malformed, but is not accepted by this Server" (MQTT 5.0 §3.2.2.2).
    if let Some(will) = &connect.will
        && !topic::is_valid_topic_name_within(&will.topic, config.limits.max_topic_levels)
    {
        return Err(ReasonCode::TopicNameInvalid);
    }
    auth::authenticate(connect, config)
}

/// Sends a CONNACK refusing the connection (no properties), then closes it. `max_packet_size`
/// is the most the client accepts; a client that cannot take even that is just closed.
async fn refuse<W: AsyncWrite + Unpin>(
    writer: &mut W,
    version: ProtocolVersion,
    reason: ReasonCode,
    max_packet_size: u32,
) {
    // MQTT 3.1.1 has no return code for a refused will topic: close without CONNACK
    // (MQTT-3.2.2-6).
    if !version.is_v5() && reason == ReasonCode::TopicNameInvalid {
        let _ = writer.shutdown().await;
        return;
    }
    let connack = Packet::ConnAck(ConnAck {
        session_present: false,
        reason,
        properties: Properties::default(),
    });
    let mut out = BytesMut::new();
    match encode(&connack, version, max_packet_size, &mut out) {
        Ok(()) => {
            let _ = writer.write_all(&out).await;
        }
        Err(error) => tracing::debug!(%error, ?reason, "refusing CONNACK not sent"),
    }
    let _ = writer.shutdown().await;
}

/// Whether `connack` encodes within `max_packet_size`.
fn fits(connack: &ConnAck, version: ProtocolVersion, max_packet_size: u32) -> bool {
    let mut scratch = BytesMut::new();
    encode(
        &Packet::ConnAck(connack.clone()),
        version,
        max_packet_size,
        &mut scratch,
    )
    .is_ok()
}

enum ConnectFailure {
    Unsupported,
    RefusedV5(ReasonCode),
    Closed,
}

/// Whether the bytes start a CONNECT with protocol name "MQTT" and level 5, read before
/// decoding so that a bad v5 CONNECT can be answered in v5 form.
fn claims_v5(buffer: &[u8]) -> bool {
    if buffer.first() != Some(&0x10) {
        return false;
    }
    // Skip the remaining length (1 to 4 bytes, high bit = continuation).
    let Some(length_bytes) = buffer
        .iter()
        .skip(1)
        .take(4)
        .position(|byte| byte & 0x80 == 0)
    else {
        return false;
    };
    let start = 1 + length_bytes + 1;
    buffer.get(start..start + 7) == Some(&[0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05][..])
}

async fn read_connect<R: AsyncRead + Unpin>(
    reader: &mut R,
    buffer: &mut BytesMut,
    max_packet_size: u32,
    shared: &Shared,
) -> Result<(Connect, usize), ConnectFailure> {
    loop {
        let available = buffer.len();
        let is_v5 = claims_v5(buffer);
        match decode(buffer, None, max_packet_size) {
            Ok(Some(Packet::Connect(connect))) => return Ok((*connect, available - buffer.len())),
            Ok(Some(_)) => return Err(ConnectFailure::Closed),
            Ok(None) => {}
            Err(DecodeError::UnsupportedProtocolVersion(_)) => {
                return Err(ConnectFailure::Unsupported);
            }
            Err(error) => {
                tracing::debug!(%error, "bad CONNECT");
                // A v5 client learns why (MQTT 5.0 §3.1.4: CONNACK with a reason code of
                // 0x80 or more, then close); 3.1.1 has no code for it, so it is just closed.
                return Err(match is_v5 {
                    true => ConnectFailure::RefusedV5(error.reason_code()),
                    false => ConnectFailure::Closed,
                });
            }
        }
        buffer.reserve(READ_CHUNK);
        match reader.read_buf(buffer).await {
            Ok(0) | Err(_) => return Err(ConnectFailure::Closed),
            Ok(n) => Metrics::add(&shared.metrics.bytes_received, n as u64),
        }
    }
}

/// What the broker and the client agreed on in CONNECT / CONNACK.
struct Negotiated {
    keep_alive: u16,
    expiry_secs: Option<u32>,
    requested_expiry: u32,
    window: usize,
    client_max_packet_size: u32,
    client_topic_alias_max: u16,
    request_problem_information: bool,
    connack: ConnAck,
}

impl Negotiated {
    fn new(connect: &Connect, limits: &Limits, assigned_id: Option<Arc<str>>) -> Negotiated {
        let v5 = connect.protocol.is_v5();
        let client = &connect.properties;
        let mut properties = Properties::default();
        // Keep alive: a v5 client asking for more than max_keep_alive_secs is told the
        // maximum in Server Keep Alive and held to it (MQTT-3.2.2-21). 0 (no keep alive) is
        // accepted, as both versions allow. A 3.1.1 client cannot be told another value, so
        // the broker enforces the value it asked for: holding it to a shorter one would
        // disconnect a client that behaves correctly.
        let keep_alive = if v5 && connect.keep_alive > limits.max_keep_alive_secs {
            properties.server_keep_alive = Some(limits.max_keep_alive_secs);
            limits.max_keep_alive_secs
        } else {
            connect.keep_alive
        };
        let requested_expiry = client.session_expiry_interval.unwrap_or(0);
        let expiry_secs = if v5 {
            let granted = requested_expiry.min(limits.max_session_expiry_secs);
            if granted != requested_expiry {
                properties.session_expiry_interval = Some(granted);
            }
            Some(granted)
        } else if connect.clean_start {
            Some(0)
        } else {
            // A 3.1.1 session with Clean Session 0 lasts until a clean connect.
            None
        };
        let max_inflight = limits.max_inflight.max(1);
        let window = if v5 {
            client.receive_maximum.unwrap_or(u16::MAX).min(max_inflight)
        } else {
            max_inflight
        };
        if v5 {
            // Only properties that differ from their defaults (MQTT 5.0 §3.2.2.3), so that the
            // CONNACK fits a small client Maximum Packet Size. Left out because roost offers
            // the default: Maximum QoS (2), Retain Available, Wildcard Subscription Available,
            // Subscription Identifiers Available and Shared Subscription Available (all 1).
            if max_inflight != u16::MAX {
                // Absent means 65,535 (§3.2.2.3.3).
                properties.receive_maximum = Some(max_inflight);
            }
            if limits.max_packet_size < MAX_REMAINING_LENGTH as u32 + 5 {
                // Absent means no limit beyond the protocol's own (§3.2.2.3.6).
                properties.maximum_packet_size = Some(limits.max_packet_size);
            }
            if limits.max_topic_aliases > 0 {
                // Absent means 0 (§3.2.2.3.8).
                properties.topic_alias_maximum = Some(limits.max_topic_aliases);
            }
            properties.assigned_client_identifier = assigned_id.map(|id| id.to_string());
        }
        Negotiated {
            keep_alive,
            expiry_secs,
            requested_expiry,
            window: usize::from(window),
            client_max_packet_size: client
                .maximum_packet_size
                .unwrap_or(MAX_REMAINING_LENGTH as u32 + 5),
            client_topic_alias_max: if v5 {
                client.topic_alias_maximum.unwrap_or(0)
            } else {
                0
            },
            request_problem_information: client.request_problem_information != Some(0),
            connack: ConnAck {
                session_present: false,
                reason: ReasonCode::Success,
                properties,
            },
        }
    }
}

struct Reader<R> {
    reader: ReadHalf<R>,
    buffer: BytesMut,
    version: ProtocolVersion,
    limits: Limits,
    keep_alive: u16,
    connect_expiry: u32,
    /// Inbound topic aliases (MQTT 5.0 §3.3.2.3.4), at most `limits.max_topic_aliases`.
    aliases: HashMap<u16, Arc<str>>,
    /// Inbound QoS 1 PUBLISH whose PUBACK the writer has not sent yet (shared with it).
    unacknowledged_qos1: Arc<AtomicUsize>,
    /// Packet ids of inbound v5 QoS 2 PUBLISH on this connection not yet released by PUBREL.
    /// With `unacknowledged_qos1` it is the client's send quota in use (MQTT 5.0 §4.9), which
    /// starts afresh on every network connection. Bounded: exceeding our Receive Maximum ends
    /// the connection.
    unreleased_qos2: HashSet<u16>,
    /// Backpressure from a congested subscriber (see [`Backlog`]).
    throttle: Arc<Throttle>,
    shared: Arc<Shared>,
    client_id: Arc<str>,
    router: mpsc::Sender<RouterMsg>,
    session: SessionKey,
    connection_id: u64,
    sender: mpsc::UnboundedSender<Outbound>,
    /// Packets decoded from the current read, sent to the router together (in order) before
    /// the next read, before anything the reader handles itself ends the connection, or when
    /// [`FORWARD_BATCH`] of them are waiting.
    pending: Vec<Packet>,
}

/// Packets the reader hands to the router in one message at most.
const FORWARD_BATCH: usize = 64;

enum Step {
    Continue,
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

impl<R: ByteStream> Reader<R> {
    async fn run(&mut self, writer_ended: &mut oneshot::Receiver<()>) -> Ending {
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
                match decode(
                    &mut self.buffer,
                    Some(self.version),
                    self.limits.max_packet_size,
                ) {
                    Ok(Some(packet)) => {
                        decoded_any = true;
                        let size = available - self.buffer.len();
                        if let Step::End(ending) = self.handle(packet, size).await {
                            // What came before the end still reaches the router first.
                            let _ = self.flush_pending().await;
                            return ending;
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
                        let _ = self.flush_pending().await;
                        if let Step::End(ending) = protocol_error(error.reason_code()) {
                            return ending;
                        }
                    }
                }
            }
            if let Step::End(ending) = self.flush_pending().await {
                return ending;
            }
            if let Some(backlog) = self.throttle.take() {
                // Our messages feed a subscriber that is behind: read no more until it has
                // caught up (bounded, so a stuck subscriber cannot stall us for long).
                backlog.wait_drained(THROTTLE_LIMIT).await;
                // Packets waiting in the socket meanwhile must not count as silence.
                deadline = grace.map(|g| Instant::now() + g);
            }
            self.buffer.reserve(READ_CHUNK);
            tokio::select! {
                // The writer ended (the broker closed the connection or the peer stopped
                // taking data): this branch completes once, and the loop returns.
                _ = &mut *writer_ended => {
                    return Ending { reason: None, publish_will: true, expiry_secs: None, closed_by_broker: true };
                }
                read = self.reader.read_buf(&mut self.buffer) => match read {
                    Ok(0) | Err(_) => {
                        return Ending { reason: None, publish_will: true, expiry_secs: None, closed_by_broker: false };
                    }
                    Ok(n) => Metrics::add(&self.shared.metrics.bytes_received, n as u64),
                },
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

    async fn handle(&mut self, packet: Packet, size: usize) -> Step {
        if self.shared.diagnostics.is_on() {
            self.shared
                .diagnostics
                .record(&self.client_id, Direction::In, &packet, size);
        }
        match packet {
            Packet::PingReq => {
                let _ = self
                    .sender
                    .send(Outbound::Packet(Box::new(Packet::PingResp)));
                Step::Continue
            }
            Packet::Publish(publish) => match self.resolve_topic(publish) {
                Ok(publish) => {
                    if self.exceeds_receive_maximum(&publish) {
                        return protocol_error(ReasonCode::ReceiveMaximumExceeded);
                    }
                    Metrics::add(&self.shared.metrics.messages_received, 1);
                    self.forward(Packet::Publish(publish)).await
                }
                Err(reason) => protocol_error(reason),
            },
            Packet::Disconnect(disconnect) => self.disconnect(disconnect),
            Packet::PubRel(release) => {
                self.unreleased_qos2.remove(&release.packet_id);
                self.forward(Packet::PubRel(release)).await
            }
            Packet::PubAck(_)
            | Packet::PubRec(_)
            | Packet::PubComp(_)
            | Packet::Subscribe(_)
            | Packet::Unsubscribe(_) => self.forward(packet).await,
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

    async fn forward(&mut self, packet: Packet) -> Step {
        self.pending.push(packet);
        if self.pending.len() >= FORWARD_BATCH {
            return self.flush_pending().await;
        }
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
        if self.router.send(message).await.is_err() {
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
        if let Some(alias) = publish.properties.topic_alias.take() {
            // 0 or above our Topic Alias Maximum (MQTT-3.3.2-8, MQTT-3.3.2-9).
            if alias == 0 || alias > self.limits.max_topic_aliases {
                return Err(ReasonCode::TopicAliasInvalid);
            }
            if publish.topic.is_empty() {
                match self.aliases.get(&alias) {
                    Some(topic) => publish.topic = topic.clone(),
                    None => return Err(ReasonCode::ProtocolError),
                }
            } else {
                self.aliases.insert(alias, publish.topic.clone());
            }
        }
        if publish.topic.is_empty() {
            return Err(ReasonCode::ProtocolError);
        }
        if !topic::is_valid_topic_name_within(&publish.topic, self.limits.max_topic_levels) {
            return Err(ReasonCode::TopicNameInvalid);
        }
        Ok(publish)
    }
}

struct Writer<W> {
    out: WriteHalf<W>,
    receiver: mpsc::UnboundedReceiver<Outbound>,
    backlog: Arc<Backlog>,
    version: ProtocolVersion,
    /// The client's Maximum Packet Size (MQTT-3.1.2-24/-25).
    max_packet_size: u32,
    /// The client's Topic Alias Maximum.
    alias_max: u16,
    aliases: HashMap<Arc<str>, u16>,
    /// Request Problem Information (MQTT-3.1.2-29).
    problem_information: bool,
    unacknowledged_qos1: Arc<AtomicUsize>,
    shared: Arc<Shared>,
    client_id: Arc<str>,
    router: mpsc::Sender<RouterMsg>,
    connection_id: u64,
    session: oneshot::Receiver<SessionKey>,
    session_key: Option<SessionKey>,
    /// Dropped when the writer ends (closed, write failed or timed out, or aborted): the
    /// reader then stops reading. A channel rather than a cancellation token because the
    /// reader polls it on every wake-up, and a oneshot receiver is polled with atomics only.
    _ended: oneshot::Sender<()>,
}

impl<W: ByteStream> Writer<W> {
    async fn run(mut self) {
        let mut batch = BytesMut::with_capacity(WRITE_BATCH);
        'outer: loop {
            let Some(first) = self.receiver.recv().await else {
                break;
            };
            let mut next = Some(first);
            let mut closing = None;
            // Drain everything queued into one buffer, then write once.
            while let Some(item) = next.take() {
                self.backlog.taken(&item);
                match item {
                    Outbound::Packet(packet) => self.encode_packet(*packet, &mut batch),
                    Outbound::Ack(ack) => self.encode_packet(ack.into_packet(), &mut batch),
                    Outbound::Publish(delivery) => self.encode_delivery(delivery, &mut batch).await,
                    Outbound::Close(reason) => {
                        closing = Some(reason);
                        break;
                    }
                }
                if batch.len() >= WRITE_BATCH {
                    break;
                }
                next = self.receiver.try_recv().ok();
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
        let result = tokio::time::timeout(WRITE_TIMEOUT, self.out.write_all(batch)).await;
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

    async fn encode_delivery(&mut self, delivery: super::message::Delivery, batch: &mut BytesMut) {
        if self.session_key.is_none() {
            self.session_key = self.session.try_recv().ok();
        }
        let publish = &delivery.message.publish;
        // Outbound topic alias: the topic is sent once with a new alias, then only the alias.
        let (topic_alias, omit_topic, new_alias) = match self.aliases.get(&publish.topic) {
            Some(alias) => (Some(*alias), true, false),
            None if self.aliases.len() < usize::from(self.alias_max) => {
                (Some(self.aliases.len() as u16 + 1), false, true)
            }
            None => (None, false, false),
        };
        let fields = PublishDelivery {
            qos: delivery.qos,
            dup: delivery.dup,
            retain: delivery.retain,
            packet_id: delivery.packet_id,
            topic_alias,
            omit_topic,
            subscription_identifiers: &delivery.subscription_ids,
            message_expiry_interval: delivery.message.remaining_expiry_now(),
        };
        let before = batch.len();
        match encode_publish(publish, &fields, self.version, self.max_packet_size, batch) {
            Ok(()) => {
                if let (true, Some(alias)) = (new_alias, topic_alias) {
                    self.aliases.insert(publish.topic.clone(), alias);
                }
                Metrics::add(&self.shared.metrics.messages_sent, 1);
                if self.shared.diagnostics.is_on() {
                    let mut shown = publish.clone();
                    shown.qos = delivery.qos;
                    shown.packet_id = delivery.packet_id;
                    self.shared.diagnostics.record(
                        &self.client_id,
                        Direction::Out,
                        &Packet::Publish(shown),
                        batch.len() - before,
                    );
                }
            }
            Err(EncodeError::TooLarge { .. }) => {
                batch.truncate(before);
                // Too large for the client: discarded as if sent (MQTT-3.1.2-25).
                if let (Some(packet_id), Some(session)) = (delivery.packet_id, self.session_key)
                    && delivery.qos != QoS::AtMostOnce
                {
                    let _ = self
                        .router
                        .send(RouterMsg::Discarded {
                            session,
                            connection_id: self.connection_id,
                            packet_id,
                        })
                        .await;
                }
                Metrics::add(&self.shared.metrics.messages_dropped, 1);
            }
            Err(error) => {
                batch.truncate(before);
                tracing::debug!(client_id = %self.client_id, %error, "PUBLISH not sent");
            }
        }
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

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

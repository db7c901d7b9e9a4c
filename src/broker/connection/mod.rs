//! One client connection, from the accepted socket to its close.
//!
//! [`run`] drives it: the handshake ([`handshake`]: CONNECT, admission, what was
//! negotiated), then a reader ([`reader`], this task) and a writer task ([`writer`]) joined
//! by a [`link`] that the router holds too. Topic aliases are in [`aliases`].
//!
//! The code sees only a byte stream ([`ByteStream`], in [`transport`]) so that TLS and
//! WebSockets slot in as other transports.
//!
//! Memory: thousands of connections are mostly idle, so an idle one holds no read buffer
//! (it reads on readiness), no write buffer and no queue (released when the writer has
//! nothing to do), and its task's future carries only the serving loop: the handshake, the
//! goodbye and rare waits are boxed. About 5 KB per idle subscriber in all, router included
//! (`tests/hostile_connections.rs` holds it under 8 KB).

mod aliases;
mod handshake;

pub use self::handshake::refuse_busy;
pub mod link;
mod reader;
mod transport;
mod writer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use foldhash::{HashSet, HashSetExt};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::Instrument;

use self::aliases::{InboundAliases, OutboundAliases};
use self::handshake::{ConnectFailure, Negotiated, admit, fits, read_connect, refuse};
use self::link::{ConnectionLink, Outbound};
use self::reader::Reader;
use self::writer::Writer;
use super::api::{Direction, ListenerKind};
use super::router::{ConnectRequest, RouterMsg};
use super::session::{ClientCounters, ConnectionInfo};
use super::state::BrokerState;
use crate::mqtt::{Packet, ProtocolVersion, ReasonCode};

pub use self::transport::{ByteStream, Identified, Input, Streamed, StreamedInput};

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 8 * 1024;
/// How long a closing connection waits for its writer to flush the last packets.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How long, and how many bytes, a closing connection keeps reading and discarding input
/// so that its last packet is not destroyed by a reset (see [`discard_input`]).
const DISCARD_GRACE: Duration = Duration::from_secs(1);
const DISCARD_LIMIT: usize = 1024 * 1024;

/// Keeps `open_connections` honest however the task ends.
struct OpenConnection(Arc<BrokerState>);

impl Drop for OpenConnection {
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
    shared: Arc<BrokerState>,
    router: mpsc::Sender<RouterMsg>,
) {
    // Only the serving loop's state stays in the task of an idle connection: the handshake
    // and the goodbye are boxed, and their memory is freed when they are done.
    let Some(mut serving) = Box::pin(start(stream, address, listener, shared, router)).await else {
        return;
    };
    let ending = serving.reader.run(&mut serving.writer_ended).await;
    Box::pin(serving.finish(ending)).await;
}

/// A connection past its handshake: the reader (this task) and the writer task.
struct Serving<R> {
    reader: Reader<R>,
    /// Completes when the writer ends.
    writer_ended: oneshot::Receiver<()>,
    writer_task: JoinHandle<()>,
    open: OpenConnection,
}

/// The handshake, up to a session attached to a new connection; `None` when the connection
/// was refused or closed.
async fn start<S: ByteStream>(
    stream: S,
    address: SocketAddr,
    listener: ListenerKind,
    shared: Arc<BrokerState>,
    router: mpsc::Sender<RouterMsg>,
) -> Option<Serving<S::Input>> {
    // The caller holds this connection's slot under limits.max_connections.
    shared.metrics.open_connections.fetch_add(1, Relaxed);
    let open_guard = OpenConnection(shared.clone());
    let config = shared.config();
    let limits = &config.effective_limits();
    // Who the client proved to be in the TLS handshake, if it presented a certificate.
    let identity = stream.peer_identity();
    let (mut reader, mut writer) = stream.into_halves();
    // Taken when input arrives; see `reader`.
    let mut buffer = BytesMut::new();

    // CONNECT must come first, and within the connect timeout (MQTT-3.1.0-1).
    let connect_timeout = Duration::from_secs(u64::from(limits.connect_timeout_secs.max(1)));
    let first = tokio::time::timeout(
        connect_timeout,
        read_connect(&reader, &mut buffer, limits.max_packet_size, &shared),
    )
    .await;
    let (connect, connect_size) = match first {
        Ok(Ok(read)) => read,
        Ok(Err(ConnectFailure::Unsupported)) => {
            // The client's level is unknown to us, so answer in 3.1.1 form: return code 0x01
            // Unacceptable protocol version, then close (MQTT-3.1.2-2).
            let _ = writer.write_all(&[0x20, 0x02, 0x00, 0x01]).await;
            let _ = writer.shutdown().await;
            discard_input(&mut reader, open_guard).await;
            return None;
        }
        Ok(Err(ConnectFailure::RefusedV5(reason))) => {
            refuse(
                &mut writer,
                ProtocolVersion::V5,
                reason,
                limits.max_packet_size,
            )
            .await;
            discard_input(&mut reader, open_guard).await;
            return None;
        }
        Ok(Err(ConnectFailure::Closed)) => return None,
        Err(_elapsed) => {
            tracing::debug!(%address, "no CONNECT within the connect timeout");
            return None;
        }
    };
    let version = connect.protocol;
    let mut connect = connect;
    if config.broker.tls.certificate_common_name_as_username
        && let Some(name) = identity.as_ref().and_then(|i| i.common_name.clone())
    {
        // The certificate's common name is the username: whatever the CONNECT says, the
        // checks below and the topic permissions see the name the certificate proves.
        connect.username = Some(name);
    }

    if let Err(reason) = admit(&connect, &config, address.ip(), &shared).await {
        refuse(&mut writer, version, reason, limits.max_packet_size).await;
        discard_input(&mut reader, open_guard).await;
        return None;
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
            discard_input(&mut reader, open_guard).await;
            return None;
        }
    } else {
        (connect.client_id.clone(), false)
    };
    let client_id: Arc<str> = Arc::from(client_id);
    tracing::Span::current().record("client_id", &*client_id);
    // A will goes out as a PUBLISH of its client: its topic must be writable by it.
    if let Some(will) = &connect.will
        && let Some(acl) = config
            .acl
            .for_client(connect.username.as_deref(), &client_id)
        && !acl.may_write(&will.topic)
    {
        tracing::warn!(%address, client_id = %client_id, topic = %will.topic, "CONNECT refused: the will topic is not writable");
        refuse(
            &mut writer,
            version,
            ReasonCode::NotAuthorized,
            limits.max_packet_size,
        )
        .await;
        discard_input(&mut reader, open_guard).await;
        return None;
    }
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
        discard_input(&mut reader, open_guard).await;
        return None;
    }
    if shared.diagnostics.is_on() {
        shared.diagnostics.record(
            &client_id,
            listener,
            Direction::In,
            &Packet::Connect(Box::new(connect.clone())),
            connect_size,
        );
    }

    let connection_id = shared.next_connection_id();
    let (link, outbox) = ConnectionLink::new(connection_id);
    let unacknowledged_qos1 = Arc::new(AtomicUsize::new(0));
    let (writer_ended, closed) = oneshot::channel::<()>();
    // Started once the session is attached (what the router sends meanwhile waits in the
    // link), so that it knows the session from the start.
    let counters = std::sync::Arc::new(ClientCounters::default());
    let mut writing = Writer {
        counters: counters.clone(),
        out: writer,
        outbox,
        version,
        max_packet_size: negotiated.client_max_packet_size,
        aliases: OutboundAliases::new(negotiated.client_topic_alias_max),
        problem_information: negotiated.request_problem_information,
        unacknowledged_qos1: unacknowledged_qos1.clone(),
        shared: shared.clone(),
        client_id: client_id.clone(),
        transport: listener,
        router: router.clone(),
        connection_id,
        session: None,
        _ended: writer_ended,
    };

    let (reply, session) = oneshot::channel();
    let request = ConnectRequest {
        client_id: client_id.clone(),
        protocol: version,
        clean_start: connect.clean_start,
        expiry_secs: negotiated.expiry_secs,
        will: connect.will.clone(),
        window: negotiated.window,
        link: link.clone(),
        info: ConnectionInfo {
            address,
            listener,
            username: connect.username.as_deref().map(Arc::from),
            certificate: identity.map(|identity| identity.thumbprint),
            keep_alive_secs: negotiated.keep_alive,
            connected_since: SystemTime::now(),
            clean_start: connect.clean_start,
            receive_maximum: connect
                .properties
                .receive_maximum
                .and_then(std::num::NonZeroU16::new),
            maximum_packet_size: connect
                .properties
                .maximum_packet_size
                .and_then(std::num::NonZeroU32::new),
            topic_alias_maximum: connect.properties.topic_alias_maximum,
            counters: counters.clone(),
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
    writing.session = session;
    let writer_task = tokio::spawn(writing.run().instrument(tracing::Span::current()));
    let Some(session) = session else {
        link.send(Outbound::Close(Some(ReasonCode::ServerUnavailable)));
        let _ = tokio::time::timeout(CLOSE_GRACE, writer_task).await;
        discard_input(&mut reader, open_guard).await;
        return None;
    };
    tracing::debug!(%address, client_id = %client_id, %version, "client connected");

    let reader = Reader {
        counters,
        reader,
        buffer,
        version,
        limits: limits.clone(),
        keep_alive: negotiated.keep_alive,
        connect_expiry: negotiated.requested_expiry,
        aliases: InboundAliases::default(),
        unacknowledged_qos1,
        unreleased_qos2: HashSet::new(),
        shared: shared.clone(),
        client_id: client_id.clone(),
        transport: listener,
        router: router.clone(),
        session,
        connection_id,
        link,
        pending: Vec::new(),
    };
    Some(Serving {
        reader,
        writer_ended: closed,
        writer_task,
        open: open_guard,
    })
}

impl<R: Input> Serving<R> {
    /// Ends the connection: the router is told, the writer finishes, the client gets the
    /// time to read the last packet.
    async fn finish(self, ending: Ending) {
        let Serving {
            reader,
            writer_task,
            open,
            ..
        } = self;
        let Reader {
            reader: mut input,
            buffer,
            pending,
            link,
            version,
            router,
            session,
            connection_id,
            client_id,
            ..
        } = reader;
        // Not needed any more: freed now rather than after the grace periods below, which
        // matters when thousands of connections close at once.
        drop((buffer, pending));
        // The DISCONNECT goes out after the router's answers to what the reader forwarded.
        link.close_after_others(
            ending
                .reason
                .filter(|_| version.is_v5() && !ending.closed_by_broker),
        );
        // The router ignores this when it closed the connection itself (takeover, admin).
        let _ = router
            .send(RouterMsg::ConnectionLost {
                session,
                connection_id,
                publish_will: ending.publish_will,
                expiry_secs: ending.expiry_secs,
            })
            .await;
        let abort = writer_task.abort_handle();
        if tokio::time::timeout(CLOSE_GRACE, writer_task)
            .await
            .is_err()
        {
            // The peer is not reading: give up on the last packets and close the socket.
            abort.abort();
        }
        discard_input(&mut input, open).await;
        tracing::debug!(client_id = %client_id, "connection closed");
    }
}

/// Reads and throws away what the client still sends, for a short while, after the last
/// packet to it (a DISCONNECT or a refusing CONNACK) has been written and the write side shut
/// down. Closing a socket with unread input makes the kernel send RST instead of FIN, and a
/// RST can destroy that last packet before the client has read it; so the socket closes only
/// once the client has closed its side, or after [`DISCARD_GRACE`] or [`DISCARD_LIMIT`]
/// bytes, whichever comes first. The connection no longer counts among the open ones
/// meanwhile.
async fn discard_input<R: Input>(input: &mut R, open: OpenConnection) {
    drop(open);
    drain_input(input).await;
}

/// The read-and-discard loop of [`discard_input`].
pub(super) async fn drain_input<R: Input>(input: &R) {
    let mut scratch = BytesMut::new();
    let mut discarded = 0;
    let deadline = tokio::time::Instant::now() + DISCARD_GRACE;
    while discarded < DISCARD_LIMIT {
        if !matches!(
            tokio::time::timeout_at(deadline, input.ready()).await,
            Ok(Ok(()))
        ) {
            return;
        }
        scratch.clear();
        scratch.reserve(1024);
        match input.try_read_into(&mut scratch) {
            Ok(0) => return,
            Ok(n) => discarded += n,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

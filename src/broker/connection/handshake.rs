//! The handshake: reading the first packet (CONNECT), admitting or refusing the client, and
//! what the two sides agree on ([`Negotiated`]). Everything here but the reading and the
//! refusal is a pure function of the CONNECT and the configuration.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::{ByteStream, Input, READ_CHUNK};
use crate::broker::auth;
use crate::broker::metrics::Metrics;
use crate::broker::state::BrokerState;
use crate::config::{Config, Limits};
use crate::mqtt::{
    ConnAck, Connect, DecodeError, MAX_REMAINING_LENGTH, Packet, Properties, ProtocolVersion,
    ReasonCode, decode, encode, topic,
};

/// Bytes read for a CONNECT before its size is known: most CONNECTs fit, and a silent or
/// slow socket holds no more than this.
const CONNECT_READ: usize = 256;

/// The most read from a socket refused over the connection limit: a CONNECT with a client
/// id, credentials and a few properties fits; a larger one is not worth answering.
pub const REFUSAL_READ_LIMIT: usize = 512;

/// Authentication, decided before a session is touched. The connection limit was checked
/// when the socket was accepted (see [`refuse_busy`]).
pub(super) async fn admit(
    connect: &Connect,
    config: &Config,
    address: std::net::IpAddr,
    shared: &BrokerState,
) -> Result<(), ReasonCode> {
    // A will topic the broker would refuse in a PUBLISH: 0x90 Topic Name Invalid, "the Will
    // Topic Name is not malformed, but is not accepted by this Server" (MQTT 5.0 §3.2.2.2).
    if let Some(will) = &connect.will
        && !topic::is_valid_topic_name_within(&will.topic, config.limits.max_topic_levels)
    {
        return Err(ReasonCode::TopicNameInvalid);
    }
    auth::authenticate(connect, config, address, &shared.auth, &shared.metrics).await
}

/// Answers a socket accepted over `limits.max_connections`: reads at most
/// [`REFUSAL_READ_LIMIT`] bytes for its CONNECT within `wait`, answers CONNACK 0x89 Server
/// busy (MQTT 5.0 §3.2.2.2; 3.1.1: 0x03 Server unavailable, §3.2.2.3) so that the client
/// learns why, and closes (MQTT-3.2.2-5). Anything else, or nothing in time, is just closed.
pub async fn refuse_busy<S: ByteStream>(stream: S, wait: Duration, shared: &BrokerState) {
    let (input, mut output) = stream.into_halves();
    let mut buffer = BytesMut::new();
    let read = read_connect(&input, &mut buffer, REFUSAL_READ_LIMIT as u32, shared);
    if let Ok(Ok((connect, _))) = tokio::time::timeout(wait, read).await {
        // Within the client's Maximum Packet Size, as every CONNACK (MQTT-3.1.2-24).
        let client_max = connect.properties.maximum_packet_size.unwrap_or(u32::MAX);
        refuse(
            &mut output,
            connect.protocol,
            ReasonCode::ServerBusy,
            client_max,
        )
        .await;
        // So that the CONNACK is not destroyed by a reset (see `drain_input`).
        super::drain_input(&input).await;
    }
}

/// Sends a CONNACK refusing the connection (no properties), then closes it. `max_packet_size`
/// is the most the client accepts; a client that cannot take even that is just closed.
pub(super) async fn refuse<W: AsyncWrite + Unpin>(
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
pub(super) fn fits(connack: &ConnAck, version: ProtocolVersion, max_packet_size: u32) -> bool {
    let mut scratch = BytesMut::new();
    encode(
        &Packet::ConnAck(connack.clone()),
        version,
        max_packet_size,
        &mut scratch,
    )
    .is_ok()
}

pub(super) enum ConnectFailure {
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

/// The size of the packet that `buffer` starts, once its fixed header is complete.
fn packet_size(buffer: &[u8]) -> Option<usize> {
    let mut remaining = 0usize;
    for (index, byte) in buffer.iter().skip(1).take(4).enumerate() {
        remaining |= usize::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Some(1 + index + 1 + remaining);
        }
    }
    None
}

/// Reads the CONNECT. The buffer grows only as far as the CONNECT needs: [`CONNECT_READ`]
/// bytes until its size is known, then towards that size (which `decode` has already held
/// to `max_packet_size`) as its bytes arrive.
pub(super) async fn read_connect<R: Input>(
    reader: &R,
    buffer: &mut BytesMut,
    max_packet_size: u32,
    shared: &BrokerState,
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
        if reader.ready().await.is_err() {
            return Err(ConnectFailure::Closed);
        }
        // Grow with the data that arrives, never by what a header merely claims.
        let wanted = packet_size(buffer).unwrap_or(CONNECT_READ);
        buffer.reserve(wanted.saturating_sub(buffer.len()).clamp(1, READ_CHUNK));
        match reader.try_read_into(buffer) {
            Ok(0) => return Err(ConnectFailure::Closed),
            Ok(n) => Metrics::add(&shared.metrics.bytes_received, n as u64),
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return Err(ConnectFailure::Closed),
        }
    }
}

/// What the broker and the client agreed on in CONNECT / CONNACK.
pub(super) struct Negotiated {
    pub(super) keep_alive: u16,
    pub(super) expiry_secs: Option<u32>,
    pub(super) requested_expiry: u32,
    pub(super) window: usize,
    pub(super) client_max_packet_size: u32,
    pub(super) client_topic_alias_max: u16,
    pub(super) request_problem_information: bool,
    pub(super) connack: ConnAck,
}

impl Negotiated {
    pub(super) fn new(
        connect: &Connect,
        limits: &Limits,
        assigned_id: Option<Arc<str>>,
    ) -> Negotiated {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::Poll;
    use tokio::io::AsyncWriteExt;
    use tokio::net::tcp::OwnedReadHalf;
    use tokio::net::{TcpListener, TcpStream};

    /// Both ends of a loopback TCP connection: the client, and the server's read half.
    async fn socket_pair() -> (TcpStream, OwnedReadHalf, tokio::net::tcp::OwnedWriteHalf) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (input, output) = server.into_split();
        (client, input, output)
    }

    /// Waits until `input` has something to read, so that one poll of a read sees it.
    async fn arrived(input: &OwnedReadHalf) {
        input.readable().await.unwrap();
    }

    /// Polls `future` once: `true` while it waits for more input.
    async fn waits_for_input(future: impl Future) -> bool {
        let mut future = pin!(future);
        std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx).is_pending())).await
    }

    #[test]
    fn packet_size_is_known_once_the_fixed_header_is_complete() {
        assert_eq!(packet_size(&[0x10]), None);
        assert_eq!(packet_size(&[0x10, 0x0c]), Some(14));
        assert_eq!(packet_size(&[0x10, 0x80]), None);
        // 128 = 0x80 0x01 (MQTT 5.0 §1.5.5).
        assert_eq!(packet_size(&[0x10, 0x80, 0x01]), Some(131));
        assert_eq!(
            packet_size(&[0x10, 0xff, 0xff, 0xff, 0x7f]),
            Some(5 + 268_435_455)
        );
    }

    #[tokio::test]
    async fn a_connect_that_claims_a_megabyte_holds_only_what_arrived() {
        let (mut client, server, _output) = socket_pair().await;
        // CONNECT, remaining length 1,000,000 (0xc0 0x84 0x3d), then 100 bytes of it.
        let mut bytes = vec![0x10, 0xc0, 0x84, 0x3d];
        bytes.extend_from_slice(&[0u8; 100]);
        client.write_all(&bytes).await.unwrap();
        let shared = BrokerState::default();
        let mut buffer = BytesMut::new();
        // Until all 104 bytes are in (TCP may deliver them in pieces).
        while buffer.len() < 104 {
            arrived(&server).await;
            let read = read_connect(&server, &mut buffer, 2_000_000, &shared);
            assert!(waits_for_input(read).await, "the CONNECT is incomplete");
        }
        assert_eq!(buffer.len(), 104);
        assert!(buffer.capacity() <= 2 * READ_CHUNK, "{}", buffer.capacity());
    }

    #[tokio::test]
    async fn a_silent_socket_holds_a_small_buffer() {
        let (_client, server, _output) = socket_pair().await;
        let shared = BrokerState::default();
        let mut buffer = BytesMut::new();
        let read = read_connect(&server, &mut buffer, 1 << 20, &shared);
        assert!(waits_for_input(read).await);
        assert!(buffer.capacity() <= CONNECT_READ, "{}", buffer.capacity());
    }

    fn connect(protocol: ProtocolVersion, keep_alive: u16) -> Connect {
        Connect {
            protocol,
            clean_start: true,
            keep_alive,
            properties: Properties::default(),
            client_id: "c".into(),
            will: None,
            username: None,
            password: None,
        }
    }

    #[test]
    fn a_v5_keep_alive_over_the_maximum_is_lowered_and_announced_mqtt_3_2_2_21() {
        let limits = Limits {
            max_keep_alive_secs: 60,
            ..Limits::default()
        };
        let negotiated = Negotiated::new(&connect(ProtocolVersion::V5, 600), &limits, None);
        assert_eq!(negotiated.keep_alive, 60);
        assert_eq!(negotiated.connack.properties.server_keep_alive, Some(60));
    }

    #[test]
    fn a_v311_keep_alive_is_held_as_asked_since_it_cannot_be_told_otherwise() {
        let limits = Limits {
            max_keep_alive_secs: 60,
            ..Limits::default()
        };
        let negotiated = Negotiated::new(&connect(ProtocolVersion::V3_1_1, 600), &limits, None);
        assert_eq!(negotiated.keep_alive, 600);
        assert_eq!(negotiated.connack.properties.server_keep_alive, None);
    }

    #[test]
    fn the_window_is_the_clients_receive_maximum_capped_by_ours_mqtt_5_0_4_9() {
        let limits = Limits {
            max_inflight: 10,
            ..Limits::default()
        };
        let mut small = connect(ProtocolVersion::V5, 30);
        small.properties.receive_maximum = Some(3);
        assert_eq!(Negotiated::new(&small, &limits, None).window, 3);
        let large = connect(ProtocolVersion::V5, 30);
        let negotiated = Negotiated::new(&large, &limits, None);
        assert_eq!(negotiated.window, 10);
        assert_eq!(negotiated.connack.properties.receive_maximum, Some(10));
    }

    #[test]
    fn the_protocol_level_is_read_before_decoding_so_a_bad_v5_connect_gets_a_v5_answer() {
        let v5 = [0x10, 0x10, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02];
        let v311 = [0x10, 0x10, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02];
        assert!(claims_v5(&v5));
        assert!(!claims_v5(&v311));
        assert!(!claims_v5(&v5[..5]), "too short to tell");
        assert!(!claims_v5(&[0x30, 0x00]), "not a CONNECT");
    }
}

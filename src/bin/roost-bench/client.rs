//! The generator's lean MQTT client: connect, subscribe, and a pre-encoded PUBLISH template.
//!
//! Only setup goes through this module packet by packet; the hot loops in
//! [`super::publisher`] and [`super::subscriber`] work on whole buffers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::BenchError;
use super::stamp::Stamp;
use super::tls::TlsClient;
use roost::mqtt::{
    self, Connect, Disconnect, Packet, PacketType, Properties, ProtocolVersion, Publish, QoS,
    ReasonCode, Subscribe, SubscribeFilter, SubscriptionOptions,
};

/// Largest packet the generator accepts from a broker.
pub const MAX_INCOMING_PACKET: u32 = 16 * 1024 * 1024;
/// Keep alive asked for in CONNECT; the clients ping well within it.
pub const KEEP_ALIVE_SECS: u16 = 30;
/// How long a client may stay silent before it sends PINGREQ.
pub const PING_EVERY: Duration = Duration::from_secs(10);
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one write may wait for the broker to take the bytes before the client gives up
/// (a broker that stops reading must not hang the benchmark).
pub const WRITE_STALL: Duration = Duration::from_secs(10);

/// The read half of a connection: a TCP socket's, or a WebSocket's bytes.
pub type Reader = Box<dyn AsyncRead + Send + Unpin>;
/// The write half of a connection.
pub type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// Writes all of `bytes`, or explains why it could not. Flushed, as a WebSocket sends its
/// frames only then (a TCP socket writes through).
pub async fn write_or_give_up(writer: &mut Writer, bytes: &[u8]) -> Result<(), String> {
    let written = async {
        writer.write_all(bytes).await?;
        writer.flush().await
    };
    match tokio::time::timeout(WRITE_STALL, written).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("write failed: {e}")),
        Err(_) => Err(format!(
            "the broker took no data for {} s",
            WRITE_STALL.as_secs()
        )),
    }
}

/// A connected client, between CONNACK and the start of the run.
pub struct Connection {
    pub client_id: String,
    pub version: ProtocolVersion,
    pub reader: Reader,
    pub writer: Writer,
    /// Bytes read past the last packet handled during setup.
    pub read_buf: BytesMut,
    /// How many QoS 1/2 PUBLISHes the broker accepts unacknowledged (v5 Receive Maximum;
    /// unlimited by the protocol for 3.1.1).
    pub broker_receive_maximum: u16,
    /// CONNACK's Session Present flag (MQTT-3.2.2-2, MQTT 5.0 §3.2.2.1.1).
    pub session_present: bool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("client_id", &self.client_id)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Opens a connection to `address` over `transport` and completes CONNECT / CONNACK with
    /// a clean session.
    pub async fn open(
        address: SocketAddr,
        transport: &Transport,
        version: ProtocolVersion,
        client_id: String,
    ) -> Result<Connection, BenchError> {
        Connection::open_session(address, transport, version, client_id, false).await
    }

    /// [`Connection::open`], with a persistent session when `persistent` (3.1.1 Clean
    /// Session 0, v5 Clean Start 0 with a Session Expiry Interval of an hour).
    pub async fn open_session(
        address: SocketAddr,
        transport: &Transport,
        version: ProtocolVersion,
        client_id: String,
        persistent: bool,
    ) -> Result<Connection, BenchError> {
        let (reader, writer) = transport.open(address).await?;
        let mut connection = Connection {
            client_id,
            version,
            reader,
            writer,
            read_buf: BytesMut::with_capacity(64 * 1024),
            broker_receive_maximum: u16::MAX,
            session_present: false,
        };
        let connect = Connect {
            protocol: version,
            clean_start: !persistent,
            keep_alive: KEEP_ALIVE_SECS,
            properties: Properties {
                session_expiry_interval: (persistent && version.is_v5()).then_some(3600),
                ..Properties::default()
            },
            client_id: connection.client_id.clone(),
            will: None,
            username: None,
            password: None,
        };
        connection.send(&Packet::Connect(Box::new(connect))).await?;
        match connection.receive().await? {
            Packet::ConnAck(connack) if !connack.reason.is_error() => {
                if let Some(maximum) = connack.properties.receive_maximum {
                    connection.broker_receive_maximum = maximum;
                }
                connection.session_present = connack.session_present;
                Ok(connection)
            }
            Packet::ConnAck(connack) => Err(BenchError::Refused {
                client_id: connection.client_id,
                what: "CONNECT",
                reason: format!("{:?}", connack.reason),
            }),
            other => Err(BenchError::Unexpected {
                expected: PacketType::ConnAck,
                got: other.packet_type(),
            }),
        }
    }

    /// Sends DISCONNECT and waits for the broker to close the connection, as it must on a
    /// DISCONNECT (MQTT-3.14.4-1, MQTT 5.0 §3.14.4): the broker's side closes first, so the
    /// socket's TIME_WAIT stays there rather than using up the generator's local ports.
    pub async fn disconnect(mut self) -> Result<(), BenchError> {
        self.send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
            .await?;
        let closed = async {
            loop {
                self.read_buf.clear();
                match self.reader.read_buf(&mut self.read_buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(SETUP_TIMEOUT, closed)
            .await
            .map_err(|_| BenchError::Timeout("the broker to close after DISCONNECT"))
    }

    /// Subscribes to one filter and waits for a SUBACK granting it.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> Result<(), BenchError> {
        let subscribe = Subscribe {
            packet_id: 1,
            properties: Properties::default(),
            filters: vec![SubscribeFilter {
                filter: filter.to_string(),
                options: SubscriptionOptions {
                    qos,
                    ..SubscriptionOptions::default()
                },
            }],
        };
        self.send(&Packet::Subscribe(subscribe)).await?;
        match self.receive().await? {
            Packet::SubAck(suback) if suback.reasons.iter().all(|r| !r.is_error()) => Ok(()),
            Packet::SubAck(suback) => Err(BenchError::Refused {
                client_id: self.client_id.clone(),
                what: "SUBSCRIBE",
                reason: format!("{:?}", suback.reasons),
            }),
            other => Err(BenchError::Unexpected {
                expected: PacketType::SubAck,
                got: other.packet_type(),
            }),
        }
    }

    pub async fn send(&mut self, packet: &Packet) -> Result<(), BenchError> {
        let mut out = BytesMut::new();
        mqtt::encode(packet, self.version, u32::MAX, &mut out)?;
        self.writer
            .write_all(&out)
            .await
            .map_err(|source| BenchError::io("write", source))?;
        self.writer
            .flush()
            .await
            .map_err(|source| BenchError::io("write", source))
    }

    pub async fn receive(&mut self) -> Result<Packet, BenchError> {
        let read = async {
            loop {
                if let Some(packet) =
                    mqtt::decode(&mut self.read_buf, Some(self.version), MAX_INCOMING_PACKET)?
                {
                    return Ok(packet);
                }
                let n = self
                    .reader
                    .read_buf(&mut self.read_buf)
                    .await
                    .map_err(|source| BenchError::io("read", source))?;
                if n == 0 {
                    return Err(BenchError::Closed {
                        client_id: self.client_id.clone(),
                    });
                }
            }
        };
        tokio::time::timeout(SETUP_TIMEOUT, read)
            .await
            .map_err(|_| BenchError::Timeout("a reply from the broker during setup"))?
    }
}

/// How the generator's clients reach the broker: TCP, TLS over it when given a client
/// configuration, and a WebSocket on top when given a URL path (`wss://` with both).
#[derive(Debug, Clone, Default)]
pub struct Transport {
    pub tls: Option<TlsClient>,
    pub websocket: Option<String>,
}

impl Transport {
    /// Plain TCP.
    pub fn tcp() -> Transport {
        Transport::default()
    }

    /// A connected socket (TLS handshake and WebSocket upgrade done), in halves.
    pub async fn open(&self, address: SocketAddr) -> Result<(Reader, Writer), BenchError> {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|source| BenchError::Connect { address, source })?;
        // Writes are batched by the generator itself; Nagle would only add delay.
        stream
            .set_nodelay(true)
            .map_err(|source| BenchError::io("TCP_NODELAY", source))?;
        Ok(match (&self.tls, &self.websocket) {
            (None, None) => {
                let (reader, writer) = stream.into_split();
                (Box::new(reader), Box::new(writer))
            }
            (None, Some(path)) => halves(open_websocket("ws", address, path, stream).await?),
            (Some(tls), None) => halves(tls.handshake(stream).await?),
            (Some(tls), Some(path)) => {
                let secured = tls.handshake(stream).await?;
                halves(open_websocket("wss", address, path, secured).await?)
            }
        })
    }
}

/// A stream that reads and writes both ways as boxed halves (TLS and WebSocket streams are
/// one object; tokio splits them behind a lock, uncontended in these clients).
fn halves<S>(stream: S) -> (Reader, Writer)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (reader, writer) = tokio::io::split(stream);
    (Box::new(reader), Box::new(writer))
}

/// The WebSocket upgrade on `path`, offering the `mqtt` subprotocol (MQTT-6.0.0-3), and the
/// socket as a byte stream.
async fn open_websocket<S>(
    scheme: &str,
    address: SocketAddr,
    path: &str,
    stream: S,
) -> Result<roost::broker::WsBytes<S>, BenchError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let refused = |why: String| BenchError::Refused {
        client_id: String::new(),
        what: "the WebSocket upgrade",
        reason: why,
    };
    let mut request = format!("{scheme}://{address}{path}")
        .into_client_request()
        .map_err(|e| refused(e.to_string()))?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        tokio_tungstenite::tungstenite::http::HeaderValue::from_static("mqtt"),
    );
    let (socket, _response) = tokio_tungstenite::client_async(request, stream)
        .await
        .map_err(|e| refused(e.to_string()))?;
    Ok(roost::broker::WsBytes::new(socket))
}

/// A PUBLISH encoded once by the codec; each message copies it and patches only the bytes
/// that differ (packet identifier and payload stamp), so the hot loop allocates nothing.
#[derive(Debug, Clone)]
pub struct PublishTemplate {
    bytes: Vec<u8>,
    packet_id_at: Option<usize>,
    payload_at: usize,
}

const TEMPLATE_PACKET_ID: u16 = 0xA55A;

impl PublishTemplate {
    pub fn new(
        topic: &str,
        qos: QoS,
        payload_len: usize,
        version: ProtocolVersion,
    ) -> Result<PublishTemplate, BenchError> {
        let publish = Publish {
            dup: false,
            qos,
            retain: false,
            topic: Arc::from(topic),
            packet_id: (qos != QoS::AtMostOnce).then_some(TEMPLATE_PACKET_ID),
            properties: Properties::default(),
            payload: Bytes::from(vec![0u8; payload_len]),
        };
        let mut out = BytesMut::new();
        mqtt::encode(&Packet::Publish(publish), version, u32::MAX, &mut out)?;
        let bytes = out.to_vec();
        let payload_at = bytes.len() - payload_len;
        // The packet identifier directly follows the topic name (MQTT 3.1.1 §3.3.2,
        // MQTT 5.0 §3.3.2); in 5.0 the property length comes between it and the payload,
        // one byte (0) for no properties.
        let properties_len = if version.is_v5() { 1 } else { 0 };
        let packet_id_at = match qos {
            QoS::AtMostOnce => None,
            _ => {
                let at = payload_at
                    .checked_sub(properties_len + 2)
                    .ok_or(BenchError::Template)?;
                if bytes[at..at + 2] != TEMPLATE_PACKET_ID.to_be_bytes() {
                    return Err(BenchError::Template);
                }
                Some(at)
            }
        };
        Ok(PublishTemplate {
            bytes,
            packet_id_at,
            payload_at,
        })
    }

    /// The encoded size of one message.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Appends one PUBLISH with this packet identifier (ignored at QoS 0) and stamp.
    pub fn append(&self, out: &mut BytesMut, packet_id: u16, stamp: &Stamp) {
        let start = out.len();
        out.extend_from_slice(&self.bytes);
        if let Some(at) = self.packet_id_at {
            out[start + at..start + at + 2].copy_from_slice(&packet_id.to_be_bytes());
        }
        stamp.write(&mut out[start + self.payload_at..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patched_templates_decode_as_the_publish_they_stand_for() {
        for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                let template = PublishTemplate::new("bench/a/b", qos, 64, version).unwrap();
                let mut out = BytesMut::new();
                for (packet_id, sequence) in [(1u16, 0u64), (0xBEEF, 1), (65535, 2)] {
                    let stamp = Stamp {
                        run_id: 9,
                        publisher: 3,
                        sequence,
                        sent_at_nanos: 1_000 + sequence,
                    };
                    template.append(&mut out, packet_id, &stamp);
                }
                assert_eq!(out.len(), 3 * template.len());
                for (packet_id, sequence) in [(1u16, 0u64), (0xBEEF, 1), (65535, 2)] {
                    let packet = mqtt::decode(&mut out, Some(version), MAX_INCOMING_PACKET)
                        .unwrap()
                        .unwrap();
                    let Packet::Publish(publish) = packet else {
                        panic!("{version} {qos:?}: not a PUBLISH: {packet:?}");
                    };
                    assert_eq!(&*publish.topic, "bench/a/b");
                    assert_eq!(publish.qos, qos);
                    assert_eq!(publish.payload.len(), 64);
                    let expected_id = (qos != QoS::AtMostOnce).then_some(packet_id);
                    assert_eq!(publish.packet_id, expected_id, "{version} {qos:?}");
                    let stamp = Stamp::read(&publish.payload).unwrap();
                    assert_eq!((stamp.publisher, stamp.sequence), (3, sequence));
                }
                assert!(out.is_empty());
            }
        }
    }
}

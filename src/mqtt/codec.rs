//! Encoding and decoding of whole packets. (Contract only: the implementation lands with the codec work.)

use bytes::BytesMut;
use thiserror::Error;

use super::{Packet, ProtocolVersion, Publish, QoS, ReasonCode};

/// Why a packet could not be decoded. Each variant maps to the reason code the broker sends
/// in its DISCONNECT (or CONNACK, before the session exists) before it closes the connection.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    #[error("packet of {size} bytes exceeds the maximum packet size of {max}")]
    TooLarge { size: usize, max: u32 },
    #[error("unsupported protocol version (level {0})")]
    UnsupportedProtocolVersion(u8),
    #[error("invalid topic name: {0}")]
    TopicNameInvalid(&'static str),
}

impl DecodeError {
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            DecodeError::Malformed(_) => ReasonCode::MalformedPacket,
            DecodeError::Protocol(_) => ReasonCode::ProtocolError,
            DecodeError::TooLarge { .. } => ReasonCode::PacketTooLarge,
            DecodeError::UnsupportedProtocolVersion(_) => ReasonCode::UnsupportedProtocolVersion,
            DecodeError::TopicNameInvalid(_) => ReasonCode::TopicNameInvalid,
        }
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EncodeError {
    #[error("packet of {size} bytes exceeds the peer's maximum packet size of {max}")]
    TooLarge { size: usize, max: u32 },
    #[error("{0} cannot be encoded for this protocol version")]
    NotInVersion(&'static str),
}

/// What differs between deliveries of one shared [`Publish`] to different subscribers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishDelivery<'a> {
    pub qos: QoS,
    pub dup: bool,
    pub retain: bool,
    /// Present exactly when `qos > 0`.
    pub packet_id: Option<u16>,
    /// MQTT 5.0 outbound topic alias; with `omit_topic` the topic name is sent empty.
    pub topic_alias: Option<u16>,
    pub omit_topic: bool,
    /// Replaces the publisher's subscription identifiers (MQTT-3.3.4-3).
    pub subscription_identifiers: &'a [u32],
    /// Replaces the publisher's message expiry interval with the time left (MQTT-3.3.2-6).
    pub message_expiry_interval: Option<u32>,
}

/// Decodes one packet from the front of `buf`, consuming its bytes.
///
/// Returns `Ok(None)` when `buf` does not yet hold a whole packet. `version` is `None` until
/// CONNECT has been read: then only CONNECT is accepted (MQTT-3.1.0-1) and it carries its own
/// protocol level. `max_packet_size` bounds the whole packet (fixed header included).
pub fn decode(
    buf: &mut BytesMut,
    version: Option<ProtocolVersion>,
    max_packet_size: u32,
) -> Result<Option<Packet>, DecodeError> {
    let _ = (buf, version, max_packet_size);
    unimplemented!("codec")
}

/// Appends the encoding of `packet` for `version` to `out`; refuses to exceed `max_packet_size`.
pub fn encode(
    packet: &Packet,
    version: ProtocolVersion,
    max_packet_size: u32,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let _ = (packet, version, max_packet_size, out);
    unimplemented!("codec")
}

/// Appends one delivery of a shared PUBLISH to `out` without cloning it.
pub fn encode_publish(
    publish: &Publish,
    delivery: &PublishDelivery<'_>,
    version: ProtocolVersion,
    max_packet_size: u32,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let _ = (publish, delivery, version, max_packet_size, out);
    unimplemented!("codec")
}

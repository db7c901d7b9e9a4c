//! Encoding and decoding of whole packets.
//!
//! Decoding reads the fixed header (MQTT 5.0 §2.1, MQTT 3.1.1 §2.2), bounds the packet size
//! before buffering its body, and hands the body to the decoder of its packet type. Encoding
//! measures a packet with the same code that writes it ([`primitives::Sink`]), checks the
//! receiver's maximum packet size, reserves once and writes.

mod ack;
mod auth;
mod connect;
mod disconnect;
mod primitives;
mod properties;
mod publish;
mod subscribe;

use bytes::{Buf, BufMut, BytesMut};
use thiserror::Error;

use super::{MAX_REMAINING_LENGTH, Packet, PacketType, ProtocolVersion, Publish, QoS, ReasonCode};
use primitives::{Counter, DecodeResult, Reader, Sink, parse_varint, varint_len};

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

impl<'a> PublishDelivery<'a> {
    /// The delivery that re-encodes `publish` exactly as it is.
    pub fn unchanged(publish: &'a Publish) -> Self {
        PublishDelivery {
            qos: publish.qos,
            dup: publish.dup,
            retain: publish.retain,
            packet_id: publish.packet_id,
            topic_alias: publish.properties.topic_alias,
            omit_topic: false,
            subscription_identifiers: &publish.properties.subscription_identifiers,
            message_expiry_interval: publish.properties.message_expiry_interval,
        }
    }
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
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let packet_type = first >> 4;
    let flags = first & 0x0F;
    // MQTT-3.1.0-1: the first packet from the client must be CONNECT; refuse anything else
    // before buffering it.
    let version = match version {
        Some(version) => Some(version),
        None if packet_type == PacketType::Connect as u8 => None,
        None => {
            return Err(DecodeError::Protocol(
                "the first packet on a connection must be CONNECT",
            ));
        }
    };
    // Remaining Length: a Variable Byte Integer of at most four bytes (MQTT 3.1.1 §2.2.3,
    // MQTT 5.0 §2.1.4); parse_varint rejects a fifth byte as malformed.
    let Some((remaining, length_bytes)) = parse_varint(&buf[1..])? else {
        return Ok(None);
    };
    let header_len = 1 + length_bytes;
    let total = header_len + remaining as usize;
    // Bound the packet as soon as its size is known, so a peer cannot make us buffer more
    // than the maximum packet size (MQTT 5.0 §3.1.2.11.4 / §3.2.2.3.6: a larger packet is
    // answered with Packet Too Large).
    if total > max_packet_size as usize {
        return Err(DecodeError::TooLarge {
            size: total,
            max: max_packet_size,
        });
    }
    if buf.len() < total {
        return Ok(None);
    }
    let mut body = buf.split_to(total).freeze();
    body.advance(header_len);
    decode_body(packet_type, flags, Reader::new(body), version).map(Some)
}

fn decode_body(
    packet_type: u8,
    flags: u8,
    reader: Reader,
    version: Option<ProtocolVersion>,
) -> DecodeResult<Packet> {
    if packet_type == PacketType::Connect as u8 {
        expect_flags(flags, 0)?;
        return connect::decode_connect(reader).map(|c| Packet::Connect(Box::new(c)));
    }
    let Some(version) = version else {
        return Err(DecodeError::Protocol(
            "the first packet on a connection must be CONNECT",
        ));
    };
    Ok(match packet_type {
        2 => {
            expect_flags(flags, 0)?;
            Packet::ConnAck(connect::decode_connack(reader, version)?)
        }
        3 => Packet::Publish(publish::decode_publish(flags, reader, version)?),
        4 => {
            expect_flags(flags, 0)?;
            Packet::PubAck(ack::decode(PacketType::PubAck, reader, version)?)
        }
        5 => {
            expect_flags(flags, 0)?;
            Packet::PubRec(ack::decode(PacketType::PubRec, reader, version)?)
        }
        6 => {
            // MQTT-3.6.1-1: PUBREL's fixed header flags are 0b0010.
            expect_flags(flags, 0b0010)?;
            Packet::PubRel(ack::decode(PacketType::PubRel, reader, version)?)
        }
        7 => {
            expect_flags(flags, 0)?;
            Packet::PubComp(ack::decode(PacketType::PubComp, reader, version)?)
        }
        8 => {
            // MQTT-3.8.1-1: SUBSCRIBE's fixed header flags are 0b0010.
            expect_flags(flags, 0b0010)?;
            Packet::Subscribe(subscribe::decode_subscribe(reader, version)?)
        }
        9 => {
            expect_flags(flags, 0)?;
            Packet::SubAck(subscribe::decode_suback(reader, version)?)
        }
        10 => {
            // MQTT-3.10.1-1: UNSUBSCRIBE's fixed header flags are 0b0010.
            expect_flags(flags, 0b0010)?;
            Packet::Unsubscribe(subscribe::decode_unsubscribe(reader, version)?)
        }
        11 => {
            expect_flags(flags, 0)?;
            Packet::UnsubAck(subscribe::decode_unsuback(reader, version)?)
        }
        12 => {
            expect_flags(flags, 0)?;
            expect_empty(reader)?;
            Packet::PingReq
        }
        13 => {
            expect_flags(flags, 0)?;
            expect_empty(reader)?;
            Packet::PingResp
        }
        14 => {
            expect_flags(flags, 0)?;
            Packet::Disconnect(disconnect::decode(reader, version)?)
        }
        15 if version.is_v5() => {
            expect_flags(flags, 0)?;
            Packet::Auth(auth::decode(reader)?)
        }
        // Type 15 is reserved in MQTT 3.1.1 and type 0 in every version (MQTT 3.1.1
        // §2.2.1 "Forbidden", MQTT 5.0 §2.1.2).
        _ => return Err(DecodeError::Malformed("reserved packet type")),
    })
}

/// Reserved fixed header flags must have their defined value; anything else is malformed
/// (MQTT-2.2.2-1, MQTT-2.2.2-2 in 3.1.1; MQTT 5.0 §2.1.3).
fn expect_flags(flags: u8, expected: u8) -> DecodeResult<()> {
    if flags == expected {
        Ok(())
    } else {
        Err(DecodeError::Malformed("invalid fixed header flags"))
    }
}

/// Bytes after the last field a packet declares make it malformed (MQTT 5.0 §4.13: the
/// Remaining Length must match the content).
fn expect_empty(reader: Reader) -> DecodeResult<()> {
    if reader.is_empty() {
        Ok(())
    } else {
        Err(DecodeError::Malformed(
            "unexpected bytes at the end of the packet",
        ))
    }
}

/// Packet identifiers must be non-zero where present (MQTT-2.3.1-1 in 3.1.1,
/// MQTT-2.2.1-3 in 5.0).
fn read_packet_id(reader: &mut Reader) -> DecodeResult<u16> {
    match reader.u16()? {
        0 => Err(DecodeError::Protocol("packet identifier 0")),
        id => Ok(id),
    }
}

/// Reads a reason code byte. A byte that is no reason code at all is malformed; a known code
/// that the packet may not carry is a protocol error (each packet's "MUST use one of the
/// ... Reason Codes", e.g. MQTT-3.4.2-1, MQTT-3.14.2-1).
fn read_reason(reader: &mut Reader, allowed: &[u8]) -> DecodeResult<ReasonCode> {
    let code = reader.u8()?;
    let reason =
        ReasonCode::from_code(code).ok_or(DecodeError::Malformed("unknown reason code"))?;
    if allowed.contains(&code) {
        Ok(reason)
    } else {
        Err(DecodeError::Protocol(
            "reason code not allowed in this packet",
        ))
    }
}

/// A packet body that can measure and write itself.
trait Body {
    /// The first byte of the fixed header: packet type and flags.
    fn first_byte(&self) -> u8;

    /// Writes the variable header and payload. With `drop_optional`, the reason string and
    /// user properties are left out to fit the receiver's maximum packet size.
    fn write<S: Sink>(&self, sink: &mut S, drop_optional: bool);

    /// Whether the reason string and user properties may be dropped (not for PUBLISH: its
    /// user properties belong to the application message, MQTT-3.3.2-17).
    fn can_drop_optional(&self) -> bool {
        true
    }
}

/// Measures `body`, checks the size bound and writes it; `out` is touched only on success.
fn encode_body<B: Body>(
    body: &B,
    version: ProtocolVersion,
    max_packet_size: u32,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let mut drop_optional = false;
    loop {
        let mut counter = Counter::default();
        body.write(&mut counter, drop_optional);
        let remaining = counter.0;
        let total = 1 + varint_len(remaining) + remaining;
        if remaining <= MAX_REMAINING_LENGTH && total <= max_packet_size as usize {
            out.reserve(total);
            out.put_u8(body.first_byte());
            out.write_varint(remaining);
            body.write(out, drop_optional);
            return Ok(());
        }
        // MQTT-3.1.2-29 / MQTT-3.4.2-2 and their siblings: reason string and user properties
        // are left out rather than exceed the receiver's maximum packet size.
        if version.is_v5() && !drop_optional && body.can_drop_optional() {
            drop_optional = true;
            continue;
        }
        // MQTT-3.1.2-25: a packet larger than the receiver's maximum is not sent. The
        // protocol itself bounds a packet at a 4-byte remaining length plus its header.
        const LARGEST_PACKET: u32 = 1 + 4 + MAX_REMAINING_LENGTH as u32;
        return Err(EncodeError::TooLarge {
            size: total,
            max: max_packet_size.min(LARGEST_PACKET),
        });
    }
}

/// PINGREQ and PINGRESP: a fixed header only.
struct HeaderOnly(u8);

impl Body for HeaderOnly {
    fn first_byte(&self) -> u8 {
        self.0
    }

    fn write<S: Sink>(&self, _sink: &mut S, _drop_optional: bool) {}
}

/// Appends the encoding of `packet` for `version` to `out`; refuses to exceed `max_packet_size`.
pub fn encode(
    packet: &Packet,
    version: ProtocolVersion,
    max_packet_size: u32,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let max = max_packet_size;
    match packet {
        Packet::Connect(connect) => encode_body(
            &connect::ConnectBody { connect, version },
            version,
            max,
            out,
        ),
        Packet::ConnAck(connack) => encode_body(
            &connect::ConnAckBody { connack, version },
            version,
            max,
            out,
        ),
        Packet::Publish(publish) => encode_publish(
            publish,
            &PublishDelivery::unchanged(publish),
            version,
            max,
            out,
        ),
        Packet::PubAck(response) => {
            encode_response(PacketType::PubAck, response, version, max, out)
        }
        Packet::PubRec(response) => {
            encode_response(PacketType::PubRec, response, version, max, out)
        }
        Packet::PubRel(response) => {
            encode_response(PacketType::PubRel, response, version, max, out)
        }
        Packet::PubComp(response) => {
            encode_response(PacketType::PubComp, response, version, max, out)
        }
        Packet::Subscribe(subscribe) => encode_body(
            &subscribe::SubscribeBody { subscribe, version },
            version,
            max,
            out,
        ),
        Packet::SubAck(suback) => encode_body(
            &subscribe::SubAckBody { suback, version },
            version,
            max,
            out,
        ),
        Packet::Unsubscribe(unsubscribe) => encode_body(
            &subscribe::UnsubscribeBody {
                unsubscribe,
                version,
            },
            version,
            max,
            out,
        ),
        Packet::UnsubAck(unsuback) => encode_body(
            &subscribe::UnsubAckBody { unsuback, version },
            version,
            max,
            out,
        ),
        Packet::PingReq => encode_body(&HeaderOnly(0xC0), version, max, out),
        Packet::PingResp => encode_body(&HeaderOnly(0xD0), version, max, out),
        Packet::Disconnect(disconnect) => encode_body(
            &disconnect::DisconnectBody {
                disconnect,
                version,
            },
            version,
            max,
            out,
        ),
        Packet::Auth(auth) => {
            // AUTH exists only in MQTT 5.0 (§3.15).
            if !version.is_v5() {
                return Err(EncodeError::NotInVersion("AUTH"));
            }
            encode_body(&auth::AuthBody { auth }, version, max, out)
        }
    }
}

fn encode_response(
    packet_type: PacketType,
    response: &super::PubResponse,
    version: ProtocolVersion,
    max: u32,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let body = ack::PubResponseBody {
        packet_type,
        response,
        version,
    };
    encode_body(&body, version, max, out)
}

/// Appends one delivery of a shared PUBLISH to `out` without cloning it.
pub fn encode_publish(
    publish: &Publish,
    delivery: &PublishDelivery<'_>,
    version: ProtocolVersion,
    max_packet_size: u32,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let body = publish::PublishBody {
        publish,
        delivery,
        version,
    };
    encode_body(&body, version, max_packet_size, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: Option<ProtocolVersion> = Some(ProtocolVersion::V3_1_1);

    #[test]
    fn waits_for_a_whole_packet_without_consuming() {
        let whole = [0x30, 0x05, 0, 1, b't', b'h', b'i'];
        for cut in 0..whole.len() {
            let mut buf = BytesMut::from(&whole[..cut]);
            assert_eq!(decode(&mut buf, V4, 1024), Ok(None), "cut at {cut}");
            assert_eq!(buf.len(), cut, "partial packet must stay buffered");
        }
        let mut buf = BytesMut::from(&whole[..]);
        buf.extend_from_slice(&[0xC0, 0x00]);
        assert!(matches!(
            decode(&mut buf, V4, 1024),
            Ok(Some(Packet::Publish(_)))
        ));
        assert_eq!(decode(&mut buf, V4, 1024), Ok(Some(Packet::PingReq)));
        assert!(buf.is_empty());
    }

    #[test]
    fn too_large_is_refused_from_the_fixed_header_alone() {
        // Only the fixed header of a 1,000-byte PUBLISH has arrived.
        let mut buf = BytesMut::from(&[0x30, 0xE5, 0x07][..]);
        assert_eq!(
            decode(&mut buf, V4, 100),
            Err(DecodeError::TooLarge {
                size: 1000,
                max: 100
            })
        );
        // Exactly at the bound is fine.
        let mut buf = BytesMut::from(&[0x30, 0x03, 0, 1, b't'][..]);
        assert!(decode(&mut buf, V4, 5).unwrap().is_some());
    }

    #[test]
    fn remaining_length_of_five_bytes_is_malformed() {
        // MQTT 3.1.1 §2.2.3 / MQTT 5.0 §1.5.5.
        let mut buf = BytesMut::from(&[0x30, 0x80, 0x80, 0x80, 0x80, 0x01][..]);
        assert!(matches!(
            decode(&mut buf, V4, u32::MAX),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn before_connect_only_connect_is_accepted() {
        // MQTT-3.1.0-1: refused from the first byte.
        let mut buf = BytesMut::from(&[0xC0][..]);
        assert!(matches!(
            decode(&mut buf, None, u32::MAX),
            Err(DecodeError::Protocol(_))
        ));
    }

    #[test]
    fn reserved_packet_type_0_is_malformed() {
        let mut buf = BytesMut::from(&[0x00, 0x00][..]);
        assert!(matches!(
            decode(&mut buf, V4, u32::MAX),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn pings_are_two_bytes_and_strict() {
        let mut out = BytesMut::new();
        encode(&Packet::PingReq, ProtocolVersion::V5, u32::MAX, &mut out).unwrap();
        encode(
            &Packet::PingResp,
            ProtocolVersion::V3_1_1,
            u32::MAX,
            &mut out,
        )
        .unwrap();
        assert_eq!(&out[..], &[0xC0, 0, 0xD0, 0]);
        // MQTT-2.2.2-1: reserved flags.
        let mut buf = BytesMut::from(&[0xC1, 0x00][..]);
        assert!(matches!(
            decode(&mut buf, V4, u32::MAX),
            Err(DecodeError::Malformed(_))
        ));
        // A PINGREQ with a body is malformed.
        let mut buf = BytesMut::from(&[0xD0, 0x01, 0x00][..]);
        assert!(matches!(
            decode(&mut buf, V4, u32::MAX),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn encode_leaves_out_untouched_on_error() {
        let mut out = BytesMut::from(&b"x"[..]);
        assert!(encode(&Packet::PingReq, ProtocolVersion::V5, 1, &mut out).is_err());
        assert_eq!(&out[..], b"x");
    }
}

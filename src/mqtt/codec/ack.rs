//! PUBACK, PUBREC, PUBREL and PUBCOMP (MQTT 3.1.1 §3.4-§3.7, MQTT 5.0 §3.4-§3.7).

use super::primitives::{DecodeResult, Reader, Sink};
use super::properties::{
    PropertyContext, PropertySource, properties_len, read_properties, write_properties,
};
use super::{Body, expect_empty, read_packet_id, read_reason};
use crate::mqtt::{PacketType, ProtocolVersion, PubResponse, ReasonCode};

/// MQTT 5.0 §3.4.2.1 (PUBACK) and §3.5.2.1 (PUBREC).
const PUBACK_REASONS: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
/// MQTT 5.0 §3.6.2.1 (PUBREL) and §3.7.2.1 (PUBCOMP).
const PUBREL_REASONS: &[u8] = &[0x00, 0x92];

fn allowed_reasons(packet_type: PacketType) -> &'static [u8] {
    match packet_type {
        PacketType::PubAck | PacketType::PubRec => PUBACK_REASONS,
        _ => PUBREL_REASONS,
    }
}

pub(super) fn decode(
    packet_type: PacketType,
    mut r: Reader,
    version: ProtocolVersion,
) -> DecodeResult<PubResponse> {
    let packet_id = read_packet_id(&mut r)?;
    let mut response = PubResponse::success(packet_id);
    if version.is_v5() {
        // §3.4.2.1: a Remaining Length of 2 means Success without properties; below 4 there
        // is no Property Length.
        if !r.is_empty() {
            response.reason = read_reason(&mut r, allowed_reasons(packet_type))?;
        }
        if !r.is_empty() {
            response.properties = read_properties(&mut r, PropertyContext::PubResponse)?;
        }
    }
    // In 3.1.1 the Remaining Length is exactly 2 (§3.4.1 etc.).
    expect_empty(r)?;
    Ok(response)
}

pub(super) struct PubResponseBody<'a> {
    pub(super) packet_type: PacketType,
    pub(super) response: &'a PubResponse,
    pub(super) version: ProtocolVersion,
}

impl Body for PubResponseBody<'_> {
    fn first_byte(&self) -> u8 {
        let flags = if self.packet_type == PacketType::PubRel {
            // MQTT-3.6.1-1: PUBREL's reserved flags are 0b0010.
            0b0010
        } else {
            0
        };
        ((self.packet_type as u8) << 4) | flags
    }

    fn write<S: Sink>(&self, s: &mut S, drop_optional: bool) {
        let r = self.response;
        s.write_u16(r.packet_id);
        if !self.version.is_v5() {
            return;
        }
        let source = PropertySource::of(&r.properties);
        let has_properties =
            properties_len(&source, PropertyContext::PubResponse, drop_optional) > 0;
        // §3.4.2.1: Success without properties is just the packet identifier; without
        // properties the Property Length may be left out too.
        if r.reason == ReasonCode::Success && !has_properties {
            return;
        }
        s.write_u8(r.reason.code());
        if has_properties {
            write_properties(s, &source, PropertyContext::PubResponse, drop_optional);
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use crate::mqtt::{
        DecodeError, EncodeError, Packet, Properties, ProtocolVersion, PubResponse, ReasonCode,
        decode, encode,
    };

    const V4: ProtocolVersion = ProtocolVersion::V3_1_1;
    const V5: ProtocolVersion = ProtocolVersion::V5;

    fn decode_one(bytes: &[u8], version: ProtocolVersion) -> Result<Packet, DecodeError> {
        let mut buf = BytesMut::from(bytes);
        let packet = decode(&mut buf, Some(version), u32::MAX)?.expect("whole packet");
        assert!(buf.is_empty());
        Ok(packet)
    }

    fn encoded(packet: &Packet, version: ProtocolVersion, max: u32) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(packet, version, max, &mut out).unwrap();
        out.to_vec()
    }

    #[test]
    fn acks_in_3_1_1_are_four_bytes() {
        for (packet, first) in [
            (Packet::PubAck(PubResponse::success(7)), 0x40),
            (Packet::PubRec(PubResponse::success(7)), 0x50),
            (Packet::PubRel(PubResponse::success(7)), 0x62),
            (Packet::PubComp(PubResponse::success(7)), 0x70),
        ] {
            let bytes = encoded(&packet, V4, u32::MAX);
            assert_eq!(bytes, vec![first, 2, 0, 7]);
            assert_eq!(decode_one(&bytes, V4).unwrap(), packet);
        }
    }

    #[test]
    fn v5_success_without_properties_is_just_the_packet_id() {
        // MQTT 5.0 §3.4.2.1.
        let bytes = encoded(&Packet::PubAck(PubResponse::success(1)), V5, u32::MAX);
        assert_eq!(bytes, vec![0x40, 2, 0, 1]);
    }

    #[test]
    fn v5_reason_without_properties_omits_property_length() {
        let ack = PubResponse {
            packet_id: 1,
            reason: ReasonCode::NoMatchingSubscribers,
            properties: Properties::default(),
        };
        let bytes = encoded(&Packet::PubAck(ack.clone()), V5, u32::MAX);
        assert_eq!(bytes, vec![0x40, 3, 0, 1, 0x10]);
        assert_eq!(decode_one(&bytes, V5).unwrap(), Packet::PubAck(ack));
        // And with an explicit empty Property Length.
        let Packet::PubAck(a) = decode_one(&[0x40, 4, 0, 1, 0x10, 0], V5).unwrap() else {
            panic!("not a PUBACK")
        };
        assert_eq!(a.reason, ReasonCode::NoMatchingSubscribers);
    }

    #[test]
    fn reason_string_is_dropped_rather_than_exceed_the_maximum() {
        // MQTT-3.4.2-2 / MQTT-3.4.2-3.
        let ack = PubResponse {
            packet_id: 1,
            reason: ReasonCode::PacketIdentifierNotFound,
            properties: Properties {
                reason_string: Some("a rather long explanation".into()),
                ..Properties::default()
            },
        };
        let bytes = encoded(&Packet::PubComp(ack.clone()), V5, 10);
        assert_eq!(bytes, vec![0x70, 3, 0, 1, 0x92]);
        assert!(encoded(&Packet::PubComp(ack), V5, 100).len() > 10);
        let mut out = BytesMut::new();
        assert!(matches!(
            encode(&Packet::PubComp(PubResponse::success(1)), V5, 3, &mut out),
            Err(EncodeError::TooLarge { size: 4, max: 3 })
        ));
        assert!(out.is_empty());
    }

    #[test]
    fn pubrel_flags_must_be_0010() {
        // MQTT-3.6.1-1 / MQTT-2.2.2-2.
        assert!(matches!(
            decode_one(&[0x60, 2, 0, 1], V4),
            Err(DecodeError::Malformed(_))
        ));
        // MQTT-2.2.2-1: other packets have flags 0.
        assert!(matches!(
            decode_one(&[0x42, 2, 0, 1], V4),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn ack_with_packet_id_0_is_refused() {
        // MQTT-2.3.1-1.
        assert!(matches!(
            decode_one(&[0x40, 2, 0, 0], V4),
            Err(DecodeError::Protocol(_))
        ));
    }

    #[test]
    fn short_or_long_acks_are_malformed() {
        assert!(matches!(
            decode_one(&[0x40, 1, 0], V4),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode_one(&[0x40, 3, 0, 1, 0], V4),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn reason_code_not_allowed_in_pubrel_is_a_protocol_error() {
        // MQTT 5.0 §3.6.2.1: only 0x00 and 0x92.
        assert!(matches!(
            decode_one(&[0x62, 3, 0, 1, 0x10], V5),
            Err(DecodeError::Protocol(_))
        ));
        // 0x03 is no reason code at all.
        assert!(matches!(
            decode_one(&[0x62, 3, 0, 1, 0x03], V5),
            Err(DecodeError::Malformed(_))
        ));
    }
}

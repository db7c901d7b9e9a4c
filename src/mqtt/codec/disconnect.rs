//! DISCONNECT (MQTT 3.1.1 §3.14, MQTT 5.0 §3.14).

use super::primitives::{DecodeResult, Reader, Sink};
use super::properties::{
    PropertyContext, PropertySource, properties_len, read_properties, write_properties,
};
use super::{Body, expect_empty, read_reason};
use crate::mqtt::{Disconnect, ProtocolVersion, ReasonCode};

/// MQTT 5.0 §3.14.2.1.
const DISCONNECT_REASONS: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
    0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];

pub(super) fn decode(mut r: Reader, version: ProtocolVersion) -> DecodeResult<Disconnect> {
    let mut disconnect = Disconnect::new(ReasonCode::Success);
    if version.is_v5() {
        // §3.14.2.1: a Remaining Length of 0 means Normal disconnection; below 2 there is
        // no Property Length.
        if !r.is_empty() {
            disconnect.reason = read_reason(&mut r, DISCONNECT_REASONS)?;
        }
        if !r.is_empty() {
            disconnect.properties = read_properties(&mut r, PropertyContext::Disconnect)?;
        }
    }
    // MQTT 3.1.1 §3.14: no variable header and no payload.
    expect_empty(r)?;
    Ok(disconnect)
}

pub(super) struct DisconnectBody<'a> {
    pub(super) disconnect: &'a Disconnect,
    pub(super) version: ProtocolVersion,
}

impl Body for DisconnectBody<'_> {
    fn first_byte(&self) -> u8 {
        0xE0
    }

    fn write<S: Sink>(&self, s: &mut S, drop_optional: bool) {
        if !self.version.is_v5() {
            return;
        }
        let d = self.disconnect;
        let source = PropertySource::of(&d.properties);
        let has_properties =
            properties_len(&source, PropertyContext::Disconnect, drop_optional) > 0;
        // §3.14.2.1: Normal disconnection without properties may have Remaining Length 0.
        if d.reason == ReasonCode::Success && !has_properties {
            return;
        }
        s.write_u8(d.reason.code());
        if has_properties {
            write_properties(s, &source, PropertyContext::Disconnect, drop_optional);
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use crate::mqtt::{
        DecodeError, Disconnect, Packet, Properties, ProtocolVersion, ReasonCode, decode, encode,
    };

    fn decode_one(bytes: &[u8], version: ProtocolVersion) -> Result<Packet, DecodeError> {
        let mut buf = BytesMut::from(bytes);
        let packet = decode(&mut buf, Some(version), u32::MAX)?.expect("whole packet");
        assert!(buf.is_empty());
        Ok(packet)
    }

    fn encoded(packet: &Packet, version: ProtocolVersion) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(packet, version, u32::MAX, &mut out).unwrap();
        out.to_vec()
    }

    #[test]
    fn disconnect_in_3_1_1_has_no_variable_header() {
        let d = Packet::Disconnect(Disconnect::new(ReasonCode::ServerShuttingDown));
        assert_eq!(encoded(&d, ProtocolVersion::V3_1_1), vec![0xE0, 0]);
        assert!(matches!(
            decode_one(&[0xE0, 1, 0], ProtocolVersion::V3_1_1),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn v5_normal_disconnect_is_two_bytes() {
        let d = Packet::Disconnect(Disconnect::new(ReasonCode::Success));
        assert_eq!(encoded(&d, ProtocolVersion::V5), vec![0xE0, 0]);
        assert_eq!(decode_one(&[0xE0, 0], ProtocolVersion::V5).unwrap(), d);
    }

    #[test]
    fn v5_disconnect_with_reason_and_properties() {
        let d = Disconnect {
            reason: ReasonCode::SessionTakenOver,
            properties: Properties {
                reason_string: Some("bye".into()),
                ..Properties::default()
            },
        };
        let bytes = encoded(&Packet::Disconnect(d.clone()), ProtocolVersion::V5);
        assert_eq!(bytes, vec![0xE0, 8, 0x8E, 6, 0x1F, 0, 3, b'b', b'y', b'e']);
        assert_eq!(
            decode_one(&bytes, ProtocolVersion::V5).unwrap(),
            Packet::Disconnect(d)
        );
        // Reason only.
        let Packet::Disconnect(d) = decode_one(&[0xE0, 1, 0x04], ProtocolVersion::V5).unwrap()
        else {
            panic!("not a DISCONNECT")
        };
        assert_eq!(d.reason, ReasonCode::DisconnectWithWillMessage);
    }

    #[test]
    fn disconnect_reason_not_allowed_is_a_protocol_error() {
        // Granted QoS 1 is no DISCONNECT reason (§3.14.2.1).
        assert!(matches!(
            decode_one(&[0xE0, 1, 0x01], ProtocolVersion::V5),
            Err(DecodeError::Protocol(_))
        ));
    }
}

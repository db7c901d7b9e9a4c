//! SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK (MQTT 3.1.1 §3.8-§3.11, MQTT 5.0 §3.8-§3.11).

use super::primitives::{DecodeResult, Reader, Sink};
use super::properties::{PropertyContext, PropertySource, read_properties, write_properties};
use super::{Body, DecodeError, expect_empty, read_packet_id, read_reason};
use crate::mqtt::topic::{is_valid_topic_filter, parse_shared};
use crate::mqtt::{
    Properties, ProtocolVersion, QoS, ReasonCode, RetainHandling, SubAck, Subscribe,
    SubscribeFilter, SubscriptionOptions, UnsubAck, Unsubscribe,
};

/// MQTT 5.0 §3.9.3.
const SUBACK_REASONS: &[u8] = &[
    0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
];
/// MQTT 5.0 §3.11.3.
const UNSUBACK_REASONS: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];

fn read_optional_properties(
    r: &mut Reader,
    version: ProtocolVersion,
    context: PropertyContext,
) -> DecodeResult<Properties> {
    if version.is_v5() {
        read_properties(r, context)
    } else {
        Ok(Properties::default())
    }
}

/// Reads a topic filter of SUBSCRIBE or UNSUBSCRIBE.
fn read_filter(r: &mut Reader) -> DecodeResult<String> {
    let filter = r.string()?;
    // A filter that breaks the wildcard rules (MQTT-4.7.1-1, MQTT-4.7.1-2), is empty
    // (MQTT-4.7.3-1) or is a malformed `$share/{group}/{filter}` (MQTT 5.0 §4.8.2) violates a
    // MUST of the packet's format; roost treats it as a Malformed Packet (MQTT 5.0 §4.13.1,
    // MQTT 3.1.1 §4.8: close the connection) rather than answer it in SUBACK.
    if !is_valid_topic_filter(&filter) {
        return Err(DecodeError::Malformed("invalid topic filter"));
    }
    Ok(filter)
}

fn decode_options(byte: u8, version: ProtocolVersion) -> DecodeResult<SubscriptionOptions> {
    if !version.is_v5() {
        // MQTT-3-8.3-4 (3.1.1): reserved bits 7-2 non-zero or QoS 3 is malformed.
        if byte & 0xFC != 0 {
            return Err(DecodeError::Malformed(
                "reserved subscription option bits set",
            ));
        }
        let qos = QoS::from_u8(byte).ok_or(DecodeError::Malformed("subscription QoS 3"))?;
        return Ok(SubscriptionOptions {
            qos,
            ..SubscriptionOptions::default()
        });
    }
    // MQTT-3.8.3-5: reserved bits 7-6 non-zero is malformed.
    if byte & 0xC0 != 0 {
        return Err(DecodeError::Malformed(
            "reserved subscription option bits set",
        ));
    }
    // MQTT 5.0 §3.8.3.1: Maximum QoS 3 is a Protocol Error.
    let qos = QoS::from_u8(byte & 0x03).ok_or(DecodeError::Protocol("subscription QoS 3"))?;
    let retain_handling = match (byte >> 4) & 0x03 {
        0 => RetainHandling::SendOnSubscribe,
        1 => RetainHandling::SendIfNew,
        2 => RetainHandling::DoNotSend,
        // MQTT 5.0 §3.8.3.1: Retain Handling 3 is a Protocol Error.
        _ => return Err(DecodeError::Protocol("retain handling 3")),
    };
    Ok(SubscriptionOptions {
        qos,
        no_local: byte & 0x04 != 0,
        retain_as_published: byte & 0x08 != 0,
        retain_handling,
    })
}

fn encode_options(options: &SubscriptionOptions, version: ProtocolVersion) -> u8 {
    let mut byte = options.qos as u8;
    if version.is_v5() {
        if options.no_local {
            byte |= 0x04;
        }
        if options.retain_as_published {
            byte |= 0x08;
        }
        byte |= (options.retain_handling as u8) << 4;
    }
    byte
}

pub(super) fn decode_subscribe(mut r: Reader, version: ProtocolVersion) -> DecodeResult<Subscribe> {
    let packet_id = read_packet_id(&mut r)?;
    let properties = read_optional_properties(&mut r, version, PropertyContext::Subscribe)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = read_filter(&mut r)?;
        let options = decode_options(r.u8()?, version)?;
        // MQTT-3.8.3-4: No Local on a shared subscription is a Protocol Error.
        if options.no_local && parse_shared(&filter).is_some() {
            return Err(DecodeError::Protocol("no local on a shared subscription"));
        }
        filters.push(SubscribeFilter { filter, options });
    }
    // MQTT-3.8.3-3: at least one topic filter / subscription option pair.
    if filters.is_empty() {
        return Err(DecodeError::Protocol("SUBSCRIBE without topic filters"));
    }
    Ok(Subscribe {
        packet_id,
        properties,
        filters,
    })
}

pub(super) struct SubscribeBody<'a> {
    pub(super) subscribe: &'a Subscribe,
    pub(super) version: ProtocolVersion,
}

impl Body for SubscribeBody<'_> {
    fn first_byte(&self) -> u8 {
        // MQTT-3.8.1-1: reserved flags 0b0010.
        0x82
    }

    fn write<S: Sink>(&self, s: &mut S, drop_optional: bool) {
        let sub = self.subscribe;
        s.write_u16(sub.packet_id);
        if self.version.is_v5() {
            let source = PropertySource::of(&sub.properties);
            write_properties(s, &source, PropertyContext::Subscribe, drop_optional);
        }
        for f in &sub.filters {
            s.write_str(&f.filter);
            s.write_u8(encode_options(&f.options, self.version));
        }
    }
}

pub(super) fn decode_suback(mut r: Reader, version: ProtocolVersion) -> DecodeResult<SubAck> {
    let packet_id = read_packet_id(&mut r)?;
    let properties = read_optional_properties(&mut r, version, PropertyContext::SubAck)?;
    let mut reasons = Vec::with_capacity(r.remaining());
    while !r.is_empty() {
        let reason = if version.is_v5() {
            read_reason(&mut r, SUBACK_REASONS)?
        } else {
            // MQTT 3.1.1 §3.9.3: 0x00, 0x01, 0x02 and 0x80 are the only return codes.
            match r.u8()? {
                0x00 => ReasonCode::Success,
                0x01 => ReasonCode::GrantedQoS1,
                0x02 => ReasonCode::GrantedQoS2,
                0x80 => ReasonCode::UnspecifiedError,
                _ => return Err(DecodeError::Malformed("reserved SUBACK return code")),
            }
        };
        reasons.push(reason);
    }
    // MQTT-3.9.3-1: one return code per topic filter of the SUBSCRIBE, which has at least one.
    if reasons.is_empty() {
        return Err(DecodeError::Protocol("SUBACK without return codes"));
    }
    Ok(SubAck {
        packet_id,
        properties,
        reasons,
    })
}

/// The MQTT 3.1.1 SUBACK return code for a reason code (§3.9.3): any failure is 0x80.
fn v3_suback_code(reason: ReasonCode) -> u8 {
    match reason {
        ReasonCode::Success => 0x00,
        ReasonCode::GrantedQoS1 => 0x01,
        ReasonCode::GrantedQoS2 => 0x02,
        _ => 0x80,
    }
}

pub(super) struct SubAckBody<'a> {
    pub(super) suback: &'a SubAck,
    pub(super) version: ProtocolVersion,
}

impl Body for SubAckBody<'_> {
    fn first_byte(&self) -> u8 {
        0x90
    }

    fn write<S: Sink>(&self, s: &mut S, drop_optional: bool) {
        let ack = self.suback;
        s.write_u16(ack.packet_id);
        if self.version.is_v5() {
            let source = PropertySource::of(&ack.properties);
            write_properties(s, &source, PropertyContext::SubAck, drop_optional);
            for reason in &ack.reasons {
                s.write_u8(reason.code());
            }
        } else {
            for reason in &ack.reasons {
                s.write_u8(v3_suback_code(*reason));
            }
        }
    }
}

pub(super) fn decode_unsubscribe(
    mut r: Reader,
    version: ProtocolVersion,
) -> DecodeResult<Unsubscribe> {
    let packet_id = read_packet_id(&mut r)?;
    let properties = read_optional_properties(&mut r, version, PropertyContext::Unsubscribe)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(read_filter(&mut r)?);
    }
    // MQTT-3.10.3-2: at least one topic filter.
    if filters.is_empty() {
        return Err(DecodeError::Protocol("UNSUBSCRIBE without topic filters"));
    }
    Ok(Unsubscribe {
        packet_id,
        properties,
        filters,
    })
}

pub(super) struct UnsubscribeBody<'a> {
    pub(super) unsubscribe: &'a Unsubscribe,
    pub(super) version: ProtocolVersion,
}

impl Body for UnsubscribeBody<'_> {
    fn first_byte(&self) -> u8 {
        // MQTT-3.10.1-1: reserved flags 0b0010.
        0xA2
    }

    fn write<S: Sink>(&self, s: &mut S, drop_optional: bool) {
        let unsub = self.unsubscribe;
        s.write_u16(unsub.packet_id);
        if self.version.is_v5() {
            let source = PropertySource::of(&unsub.properties);
            write_properties(s, &source, PropertyContext::Unsubscribe, drop_optional);
        }
        for filter in &unsub.filters {
            s.write_str(filter);
        }
    }
}

pub(super) fn decode_unsuback(mut r: Reader, version: ProtocolVersion) -> DecodeResult<UnsubAck> {
    let packet_id = read_packet_id(&mut r)?;
    if !version.is_v5() {
        // MQTT 3.1.1 §3.11: the packet identifier only, no payload.
        expect_empty(r)?;
        return Ok(UnsubAck {
            packet_id,
            properties: Properties::default(),
            reasons: Vec::new(),
        });
    }
    let properties = read_properties(&mut r, PropertyContext::UnsubAck)?;
    let mut reasons = Vec::with_capacity(r.remaining());
    while !r.is_empty() {
        reasons.push(read_reason(&mut r, UNSUBACK_REASONS)?);
    }
    // MQTT-3.11.3-1 (5.0): one reason code per topic filter of the UNSUBSCRIBE.
    if reasons.is_empty() {
        return Err(DecodeError::Protocol("UNSUBACK without reason codes"));
    }
    Ok(UnsubAck {
        packet_id,
        properties,
        reasons,
    })
}

pub(super) struct UnsubAckBody<'a> {
    pub(super) unsuback: &'a UnsubAck,
    pub(super) version: ProtocolVersion,
}

impl Body for UnsubAckBody<'_> {
    fn first_byte(&self) -> u8 {
        0xB0
    }

    fn write<S: Sink>(&self, s: &mut S, drop_optional: bool) {
        let ack = self.unsuback;
        s.write_u16(ack.packet_id);
        if self.version.is_v5() {
            let source = PropertySource::of(&ack.properties);
            write_properties(s, &source, PropertyContext::UnsubAck, drop_optional);
            for reason in &ack.reasons {
                s.write_u8(reason.code());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use crate::mqtt::{
        DecodeError, Packet, Properties, ProtocolVersion, QoS, ReasonCode, RetainHandling, SubAck,
        Subscribe, SubscribeFilter, SubscriptionOptions, UnsubAck, Unsubscribe, decode, encode,
    };

    const V4: ProtocolVersion = ProtocolVersion::V3_1_1;
    const V5: ProtocolVersion = ProtocolVersion::V5;

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

    /// SUBSCRIBE with packet id 10 and filters "a/b" QoS 1 and "c/d" QoS 2
    /// (the payload example of MQTT 3.1.1 §3.8.3, figure 3.23).
    const SUBSCRIBE_V311: &[u8] = &[
        0x82, 14, 0, 10, 0, 3, b'a', b'/', b'b', 0x01, 0, 3, b'c', b'/', b'd', 0x02,
    ];

    #[test]
    fn subscribe_example_v311() {
        let Packet::Subscribe(s) = decode_one(SUBSCRIBE_V311, V4).unwrap() else {
            panic!("not a SUBSCRIBE")
        };
        assert_eq!(s.packet_id, 10);
        assert_eq!(s.filters.len(), 2);
        assert_eq!(s.filters[0].filter, "a/b");
        assert_eq!(s.filters[0].options.qos, QoS::AtLeastOnce);
        assert_eq!(s.filters[1].options.qos, QoS::ExactlyOnce);
        assert_eq!(encoded(&Packet::Subscribe(s), V4), SUBSCRIBE_V311);
    }

    #[test]
    fn subscribe_v5_options_round_trip() {
        let sub = Subscribe {
            packet_id: 3,
            properties: Properties {
                subscription_identifiers: vec![300],
                ..Properties::default()
            },
            filters: vec![SubscribeFilter {
                filter: "x/+/#".into(),
                options: SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: RetainHandling::DoNotSend,
                },
            }],
        };
        let bytes = encoded(&Packet::Subscribe(sub.clone()), V5);
        assert_eq!(*bytes.last().unwrap(), 0b0010_1101);
        assert_eq!(decode_one(&bytes, V5).unwrap(), Packet::Subscribe(sub));
    }

    #[test]
    fn subscribe_flags_must_be_0010() {
        // MQTT-3.8.1-1.
        let mut bytes = SUBSCRIBE_V311.to_vec();
        bytes[0] = 0x80;
        assert!(matches!(
            decode_one(&bytes, V4),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn subscribe_without_filters_is_a_protocol_error() {
        // MQTT-3.8.3-3.
        assert!(matches!(
            decode_one(&[0x82, 2, 0, 1], V4),
            Err(DecodeError::Protocol(_))
        ));
        assert!(matches!(
            decode_one(&[0x82, 3, 0, 1, 0], V5),
            Err(DecodeError::Protocol(_))
        ));
    }

    #[test]
    fn reserved_option_bits_are_malformed() {
        // MQTT-3-8.3-4 (3.1.1): bits 7-2 reserved.
        assert!(matches!(
            decode_one(&[0x82, 6, 0, 1, 0, 1, b't', 0x04], V4),
            Err(DecodeError::Malformed(_))
        ));
        // MQTT-3.8.3-5 (5.0): bits 7-6 reserved.
        assert!(matches!(
            decode_one(&[0x82, 7, 0, 1, 0, 0, 1, b't', 0x40], V5),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn subscription_qos_3_is_refused() {
        // MQTT-3-8.3-4 (3.1.1): malformed.
        assert!(matches!(
            decode_one(&[0x82, 6, 0, 1, 0, 1, b't', 0x03], V4),
            Err(DecodeError::Malformed(_))
        ));
        // MQTT 5.0 §3.8.3.1: protocol error.
        assert!(matches!(
            decode_one(&[0x82, 7, 0, 1, 0, 0, 1, b't', 0x03], V5),
            Err(DecodeError::Protocol(_))
        ));
    }

    #[test]
    fn retain_handling_3_is_a_protocol_error() {
        // MQTT 5.0 §3.8.3.1.
        assert!(matches!(
            decode_one(&[0x82, 7, 0, 1, 0, 0, 1, b't', 0x30], V5),
            Err(DecodeError::Protocol(_))
        ));
    }

    #[test]
    fn invalid_filters_are_malformed() {
        // MQTT-4.7.1-1, MQTT-4.7.1-2, MQTT-4.7.3-1, MQTT 5.0 §4.8.2.
        for filter in [
            "a/#/b",
            "a+",
            "#a",
            "",
            "$share//a",
            "$share/g",
            "$share/g+/a",
        ] {
            let mut bytes = vec![0x82, 0, 0, 1, 0, filter.len() as u8];
            bytes.extend_from_slice(filter.as_bytes());
            bytes.push(0);
            bytes[1] = (bytes.len() - 2) as u8;
            assert!(
                matches!(decode_one(&bytes, V4), Err(DecodeError::Malformed(_))),
                "{filter:?}"
            );
        }
    }

    #[test]
    fn no_local_on_shared_subscription_is_a_protocol_error() {
        // MQTT-3.8.3-4.
        let filter = b"$share/g/t";
        let mut bytes = vec![0x82, 0, 0, 1, 0, 0, filter.len() as u8];
        bytes.extend_from_slice(filter);
        bytes.push(0x04);
        bytes[1] = (bytes.len() - 2) as u8;
        assert!(matches!(
            decode_one(&bytes, V5),
            Err(DecodeError::Protocol(_))
        ));
        // Without No Local the same subscription is fine.
        *bytes.last_mut().unwrap() = 0x01;
        assert!(decode_one(&bytes, V5).is_ok());
    }

    #[test]
    fn suback_maps_failures_to_0x80_in_3_1_1() {
        let ack = SubAck {
            packet_id: 10,
            properties: Properties::default(),
            reasons: vec![
                ReasonCode::GrantedQoS1,
                ReasonCode::NotAuthorized,
                ReasonCode::Success,
                ReasonCode::GrantedQoS2,
            ],
        };
        let bytes = encoded(&Packet::SubAck(ack.clone()), V4);
        assert_eq!(bytes, vec![0x90, 6, 0, 10, 0x01, 0x80, 0x00, 0x02]);
        let Packet::SubAck(back) = decode_one(&bytes, V4).unwrap() else {
            panic!("not a SUBACK")
        };
        assert_eq!(back.reasons[1], ReasonCode::UnspecifiedError);
        let bytes = encoded(&Packet::SubAck(ack.clone()), V5);
        assert_eq!(bytes, vec![0x90, 7, 0, 10, 0, 0x01, 0x87, 0x00, 0x02]);
        assert_eq!(decode_one(&bytes, V5).unwrap(), Packet::SubAck(ack));
    }

    #[test]
    fn suback_reserved_return_code_is_malformed() {
        assert!(matches!(
            decode_one(&[0x90, 3, 0, 1, 0x03], V4),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn unsubscribe_round_trip_and_rules() {
        let unsub = Unsubscribe {
            packet_id: 5,
            properties: Properties::default(),
            filters: vec!["a/b".into(), "c/#".into()],
        };
        let bytes = encoded(&Packet::Unsubscribe(unsub.clone()), V4);
        assert_eq!(
            bytes,
            vec![
                0xA2, 12, 0, 5, 0, 3, b'a', b'/', b'b', 0, 3, b'c', b'/', b'#'
            ]
        );
        assert_eq!(decode_one(&bytes, V4).unwrap(), Packet::Unsubscribe(unsub));
        // MQTT-3.10.3-2: no topic filters.
        assert!(matches!(
            decode_one(&[0xA2, 2, 0, 5], V4),
            Err(DecodeError::Protocol(_))
        ));
        // MQTT-3.10.1-1: flags 0b0010.
        assert!(matches!(
            decode_one(&[0xA0, 5, 0, 5, 0, 1, b'a'], V4),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn unsuback_has_no_payload_in_3_1_1() {
        let ack = UnsubAck {
            packet_id: 5,
            properties: Properties::default(),
            reasons: vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted],
        };
        assert_eq!(
            encoded(&Packet::UnsubAck(ack.clone()), V4),
            vec![0xB0, 2, 0, 5]
        );
        let bytes = encoded(&Packet::UnsubAck(ack.clone()), V5);
        assert_eq!(bytes, vec![0xB0, 5, 0, 5, 0, 0x00, 0x11]);
        assert_eq!(decode_one(&bytes, V5).unwrap(), Packet::UnsubAck(ack));
    }
}

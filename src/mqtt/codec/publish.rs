//! PUBLISH (MQTT 3.1.1 §3.3, MQTT 5.0 §3.3): the broker's hot path in both directions.

use super::primitives::{DecodeResult, Reader, Sink};
use super::properties::{PropertyContext, PropertySource, read_properties, write_properties};
use super::{Body, DecodeError, PublishDelivery, read_packet_id};
use crate::mqtt::{Properties, ProtocolVersion, Publish, QoS};

const FLAG_DUP: u8 = 0x08;
const FLAG_RETAIN: u8 = 0x01;

pub(super) fn decode_publish(
    flags: u8,
    mut r: Reader,
    version: ProtocolVersion,
) -> DecodeResult<Publish> {
    let dup = flags & FLAG_DUP != 0;
    let retain = flags & FLAG_RETAIN != 0;
    // MQTT-3.3.1-4: both QoS bits set is malformed.
    let qos = QoS::from_u8((flags >> 1) & 0x03).ok_or(DecodeError::Malformed("PUBLISH QoS 3"))?;
    // MQTT-3.3.1-2: the DUP flag must be 0 for QoS 0 messages.
    if qos == QoS::AtMostOnce && dup {
        return Err(DecodeError::Malformed("DUP flag set on a QoS 0 PUBLISH"));
    }
    let topic = r.arc_str()?;
    // MQTT-3.3.2-2: the topic name of a PUBLISH must not contain wildcard characters.
    if crate::mqtt::topic::has_wildcard(&topic) {
        return Err(DecodeError::TopicNameInvalid("wildcard in PUBLISH topic"));
    }
    let packet_id = match qos {
        QoS::AtMostOnce => None,
        // MQTT-2.3.1-1 / MQTT-2.2.1-3: QoS 1 and 2 carry a non-zero packet identifier.
        QoS::AtLeastOnce | QoS::ExactlyOnce => Some(read_packet_id(&mut r)?),
    };
    let properties = if version.is_v5() {
        read_properties(&mut r, PropertyContext::Publish)?
    } else {
        Properties::default()
    };
    if topic.is_empty() {
        if !version.is_v5() {
            // MQTT-4.7.3-1: topic names are at least one character long.
            return Err(DecodeError::TopicNameInvalid("empty PUBLISH topic"));
        }
        // MQTT 5.0 §3.3.2.3.4: a zero-length topic name without a Topic Alias is a Protocol
        // Error. With an alias, the session resolves it (MQTT-3.3.2-10 / -11).
        if properties.topic_alias.is_none() {
            return Err(DecodeError::Protocol(
                "empty topic name without topic alias",
            ));
        }
    }
    Ok(Publish {
        dup,
        qos,
        retain,
        topic,
        packet_id,
        properties,
        // The payload is everything that remains (§3.3.3): a zero-copy slice of the input.
        payload: r.rest(),
    })
}

pub(super) struct PublishBody<'a> {
    pub(super) publish: &'a Publish,
    pub(super) delivery: &'a PublishDelivery<'a>,
    pub(super) version: ProtocolVersion,
}

impl Body for PublishBody<'_> {
    fn first_byte(&self) -> u8 {
        let d = self.delivery;
        let mut byte = 0x30 | ((d.qos as u8) << 1);
        if d.dup {
            byte |= FLAG_DUP;
        }
        if d.retain {
            byte |= FLAG_RETAIN;
        }
        byte
    }

    fn write<S: Sink>(&self, s: &mut S, _drop_optional: bool) {
        let (p, d) = (self.publish, self.delivery);
        let v5 = self.version.is_v5();
        // MQTT 5.0 §3.3.2.3.4: with an established topic alias the topic name may be empty.
        let topic: &str = if v5 && d.omit_topic { "" } else { &p.topic };
        s.write_str(topic);
        if d.qos != QoS::AtMostOnce {
            s.write_u16(d.packet_id.unwrap_or_default());
        }
        if v5 {
            let source = PropertySource {
                base: &p.properties,
                message_expiry_interval: d.message_expiry_interval,
                topic_alias: d.topic_alias,
                subscription_identifiers: d.subscription_identifiers,
            };
            write_properties(s, &source, PropertyContext::Publish, false);
        }
        s.write_slice(&p.payload);
    }

    fn can_drop_optional(&self) -> bool {
        // User properties of a PUBLISH are part of the application message and are
        // forwarded unaltered (MQTT-3.3.2-17); a PUBLISH that does not fit is not sent.
        false
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::{Bytes, BytesMut};

    use crate::mqtt::{
        DecodeError, EncodeError, Packet, Properties, ProtocolVersion, Publish, PublishDelivery,
        QoS, decode, encode, encode_publish,
    };

    const V4: Option<ProtocolVersion> = Some(ProtocolVersion::V3_1_1);
    const V5: Option<ProtocolVersion> = Some(ProtocolVersion::V5);

    fn decode_one(bytes: &[u8], version: Option<ProtocolVersion>) -> Result<Packet, DecodeError> {
        let mut buf = BytesMut::from(bytes);
        let packet = decode(&mut buf, version, u32::MAX)?.expect("whole packet");
        assert!(buf.is_empty());
        Ok(packet)
    }

    fn publish(topic: &str, qos: QoS, payload: &'static [u8]) -> Publish {
        Publish {
            dup: false,
            qos,
            retain: false,
            topic: Arc::from(topic),
            packet_id: (qos != QoS::AtMostOnce).then_some(10),
            properties: Properties::default(),
            payload: Bytes::from_static(payload),
        }
    }

    #[test]
    fn qos1_publish_bytes_v311() {
        // A QoS 1 PUBLISH to "a/b" with packet identifier 10 (MQTT 3.1.1 §3.3).
        let bytes = [0x32, 0x09, 0, 3, b'a', b'/', b'b', 0, 10, b'h', b'i'];
        let packet = decode_one(&bytes, V4).unwrap();
        assert_eq!(
            packet,
            Packet::Publish(publish("a/b", QoS::AtLeastOnce, b"hi"))
        );
        let mut out = BytesMut::new();
        encode(&packet, ProtocolVersion::V3_1_1, u32::MAX, &mut out).unwrap();
        assert_eq!(&out[..], &bytes[..]);
    }

    #[test]
    fn qos0_publish_bytes_v5_with_properties() {
        let bytes = [
            0x31, 0x0A, 0, 1, b't', 0x05, 0x01, 0x01, 0x23, 0x00, 0x07, b'x',
        ];
        let Packet::Publish(p) = decode_one(&bytes, V5).unwrap() else {
            panic!("not a PUBLISH")
        };
        assert!(p.retain);
        assert_eq!(p.packet_id, None);
        assert_eq!(p.properties.payload_format_indicator, Some(1));
        assert_eq!(p.properties.topic_alias, Some(7));
        assert_eq!(p.payload, Bytes::from_static(b"x"));
        let mut out = BytesMut::new();
        encode(&Packet::Publish(p), ProtocolVersion::V5, u32::MAX, &mut out).unwrap();
        assert_eq!(&out[..], &bytes[..]);
    }

    #[test]
    fn publish_qos_3_is_malformed() {
        // MQTT-3.3.1-4.
        let bytes = [0x36, 0x05, 0, 1, b't', 0, 1];
        assert!(matches!(
            decode_one(&bytes, V4),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn dup_on_qos0_is_malformed() {
        // MQTT-3.3.1-2.
        let bytes = [0x38, 0x03, 0, 1, b't'];
        assert!(matches!(
            decode_one(&bytes, V4),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn packet_id_0_is_refused() {
        // MQTT-2.3.1-1.
        let bytes = [0x32, 0x05, 0, 1, b't', 0, 0];
        assert!(matches!(
            decode_one(&bytes, V4),
            Err(DecodeError::Protocol(_))
        ));
    }

    #[test]
    fn wildcards_in_topic_name_are_invalid() {
        // MQTT-3.3.2-2.
        for topic in [b'+', b'#'] {
            let bytes = [0x30, 0x03, 0, 1, topic];
            assert!(matches!(
                decode_one(&bytes, V4),
                Err(DecodeError::TopicNameInvalid(_))
            ));
        }
    }

    #[test]
    fn empty_topic_needs_a_topic_alias_in_v5_and_is_invalid_in_v311() {
        // MQTT-4.7.3-1 (3.1.1).
        assert!(matches!(
            decode_one(&[0x30, 0x02, 0, 0], V4),
            Err(DecodeError::TopicNameInvalid(_))
        ));
        // MQTT 5.0 §3.3.2.3.4: empty topic without alias.
        assert!(matches!(
            decode_one(&[0x30, 0x03, 0, 0, 0], V5),
            Err(DecodeError::Protocol(_))
        ));
        let Packet::Publish(p) = decode_one(&[0x30, 0x06, 0, 0, 3, 0x23, 0, 1], V5).unwrap() else {
            panic!("not a PUBLISH")
        };
        assert_eq!(&*p.topic, "");
        assert_eq!(p.properties.topic_alias, Some(1));
    }

    #[test]
    fn bad_strings_in_topic_are_malformed() {
        // MQTT-1.5.3-2: U+0000 in the topic name.
        assert!(matches!(
            decode_one(&[0x30, 0x04, 0, 2, b'a', 0], V4),
            Err(DecodeError::Malformed(_))
        ));
        // MQTT-1.5.3-1: a lone continuation byte is not UTF-8.
        assert!(matches!(
            decode_one(&[0x30, 0x03, 0, 1, 0x80], V5),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn publish_too_short_for_its_topic_is_malformed() {
        assert!(matches!(
            decode_one(&[0x30, 0x03, 0, 5, b'a'], V4),
            Err(DecodeError::Malformed(_))
        ));
        // QoS 1 without room for the packet identifier.
        assert!(matches!(
            decode_one(&[0x32, 0x04, 0, 1, b'a', 0], V4),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn payload_is_a_slice_of_the_input() {
        let bytes = [0x30, 0x07, 0, 1, b't', b'a', b'b', b'c', b'd'];
        let mut buf = BytesMut::from(&bytes[..]);
        let Some(Packet::Publish(p)) = decode(&mut buf, V4, 1024).unwrap() else {
            panic!("not a PUBLISH")
        };
        assert_eq!(p.payload, Bytes::from_static(b"abcd"));
    }

    #[test]
    fn delivery_overrides_header_alias_identifiers_and_expiry() {
        let mut shared = publish("room/1", QoS::ExactlyOnce, b"data");
        shared.properties.message_expiry_interval = Some(100);
        shared.properties.subscription_identifiers = vec![9];
        shared.properties.user_properties = vec![("k".into(), "v".into())];
        let ids = [4, 5];
        let delivery = PublishDelivery {
            qos: QoS::AtLeastOnce,
            dup: true,
            retain: true,
            packet_id: Some(77),
            topic_alias: Some(2),
            omit_topic: true,
            subscription_identifiers: &ids,
            message_expiry_interval: Some(40),
        };
        let mut out = BytesMut::new();
        encode_publish(&shared, &delivery, ProtocolVersion::V5, u32::MAX, &mut out).unwrap();
        let Packet::Publish(p) = decode_one(&out, V5).unwrap() else {
            panic!("not a PUBLISH")
        };
        assert_eq!((p.qos, p.dup, p.retain), (QoS::AtLeastOnce, true, true));
        assert_eq!(p.packet_id, Some(77));
        assert_eq!(&*p.topic, "");
        assert_eq!(p.properties.topic_alias, Some(2));
        assert_eq!(p.properties.subscription_identifiers, vec![4, 5]);
        assert_eq!(p.properties.message_expiry_interval, Some(40));
        assert_eq!(
            p.properties.user_properties,
            shared.properties.user_properties
        );
        assert_eq!(p.payload, shared.payload);

        // In 3.1.1 the topic is always written and properties are dropped.
        let mut out = BytesMut::new();
        encode_publish(
            &shared,
            &delivery,
            ProtocolVersion::V3_1_1,
            u32::MAX,
            &mut out,
        )
        .unwrap();
        assert_eq!(
            &out[..],
            &[
                0x3B, 14, 0, 6, b'r', b'o', b'o', b'm', b'/', b'1', 0, 77, b'd', b'a', b't', b'a'
            ]
        );
    }

    #[test]
    fn publish_too_large_is_not_encoded_and_keeps_user_properties() {
        // MQTT-3.1.2-25: do not send; MQTT-3.3.2-17: user properties are never dropped.
        let mut p = publish("t", QoS::AtMostOnce, b"0123456789");
        p.properties.user_properties = vec![("k".into(), "v".into())];
        let mut out = BytesMut::from(&b"keep"[..]);
        let result = encode(&Packet::Publish(p), ProtocolVersion::V5, 20, &mut out);
        assert!(matches!(result, Err(EncodeError::TooLarge { max: 20, .. })));
        assert_eq!(&out[..], b"keep");
    }
}

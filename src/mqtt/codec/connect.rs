//! CONNECT (MQTT 3.1.1 §3.1, MQTT 5.0 §3.1) and CONNACK (§3.2).

use super::primitives::{DecodeResult, Reader, Sink};
use super::properties::{PropertyContext, PropertySource, read_properties, write_properties};
use super::{Body, DecodeError, expect_empty, read_reason};
use crate::mqtt::topic::is_valid_topic_name;
use crate::mqtt::{ConnAck, Connect, Properties, ProtocolVersion, QoS, ReasonCode, Will};

const FLAG_RESERVED: u8 = 0x01;
const FLAG_CLEAN_START: u8 = 0x02;
const FLAG_WILL: u8 = 0x04;
const WILL_QOS_SHIFT: u8 = 3;
const FLAG_WILL_RETAIN: u8 = 0x20;
const FLAG_PASSWORD: u8 = 0x40;
const FLAG_USERNAME: u8 = 0x80;

/// The reason codes a CONNACK may carry (MQTT 5.0 §3.2.2.2).
const CONNACK_REASONS: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];

pub(super) fn decode_connect(mut r: Reader) -> DecodeResult<Connect> {
    let name = r.binary()?;
    let level = r.u8()?;
    let protocol = match (&name[..], level) {
        (b"MQTT", 4) => ProtocolVersion::V3_1_1,
        (b"MQTT", 5) => ProtocolVersion::V5,
        (b"MQIsdp", 3) => ProtocolVersion::V3_1,
        // MQTT-3.1.2-2: a level the server does not support (or that does not belong to the
        // protocol name) is answered with "unacceptable protocol version" / 0x84.
        (b"MQTT" | b"MQIsdp", level) => {
            return Err(DecodeError::UnsupportedProtocolVersion(level));
        }
        // MQTT-3.1.2-1: another protocol name is not MQTT; stop processing it.
        _ => return Err(DecodeError::Protocol("unknown protocol name")),
    };
    let v5 = protocol.is_v5();
    let flags = r.u8()?;
    // MQTT-3.1.2-3: the reserved flag must be 0, otherwise the packet is malformed.
    if flags & FLAG_RESERVED != 0 {
        return Err(DecodeError::Malformed("reserved CONNECT flag set"));
    }
    let will_flag = flags & FLAG_WILL != 0;
    let will_retain = flags & FLAG_WILL_RETAIN != 0;
    // MQTT-3.1.2-14 (3.1.1) / MQTT-3.1.2-12 (5.0): will QoS 3 is malformed.
    let will_qos = QoS::from_u8((flags >> WILL_QOS_SHIFT) & 0x03)
        .ok_or(DecodeError::Malformed("will QoS 3"))?;
    if !will_flag {
        // MQTT-3.1.2-13 (3.1.1) / MQTT-3.1.2-11 (5.0): without a will, will QoS is 0.
        if will_qos != QoS::AtMostOnce {
            return Err(DecodeError::Malformed("will QoS set without will flag"));
        }
        // MQTT-3.1.2-15 (3.1.1) / MQTT-3.1.2-13 (5.0): without a will, will retain is 0.
        if will_retain {
            return Err(DecodeError::Malformed("will retain set without will flag"));
        }
    }
    let has_username = flags & FLAG_USERNAME != 0;
    let has_password = flags & FLAG_PASSWORD != 0;
    // MQTT-3.1.2-22 (3.1.1 and 3.1): a password requires a user name. MQTT 5.0 lifts this.
    if !v5 && has_password && !has_username {
        return Err(DecodeError::Protocol(
            "password flag set without user name flag",
        ));
    }
    let keep_alive = r.u16()?;
    let properties = if v5 {
        read_properties(&mut r, PropertyContext::Connect)?
    } else {
        Properties::default()
    };
    // MQTT-3.1.3-3 / -4: the client identifier is present and a UTF-8 string (may be empty,
    // the session decides whether to assign one, MQTT-3.1.3-6).
    let client_id = r.string()?;
    let will = if will_flag {
        let properties = if v5 {
            read_properties(&mut r, PropertyContext::Will)?
        } else {
            Properties::default()
        };
        let topic = r.arc_str()?;
        // MQTT 3.1.1 §3.1.3.2 / MQTT 5.0 §3.1.3.3: the will topic is a topic name (no
        // wildcards, not empty, MQTT-4.7.3-1).
        if !is_valid_topic_name(&topic) {
            return Err(DecodeError::TopicNameInvalid("invalid will topic"));
        }
        let payload = r.binary()?;
        Some(Will {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            properties,
        })
    } else {
        None
    };
    // MQTT-3.1.2-18/-19 (3.1.1) and -16/-17 (5.0): user name present exactly with its flag.
    let username = if has_username {
        Some(r.string()?)
    } else {
        None
    };
    let password = if has_password {
        Some(r.binary()?)
    } else {
        None
    };
    expect_empty(r)?;
    Ok(Connect {
        protocol,
        clean_start: flags & FLAG_CLEAN_START != 0,
        keep_alive,
        properties,
        client_id,
        will,
        username,
        password,
    })
}

pub(super) struct ConnectBody<'a> {
    pub(super) connect: &'a Connect,
    pub(super) version: ProtocolVersion,
}

impl Body for ConnectBody<'_> {
    fn first_byte(&self) -> u8 {
        0x10
    }

    fn write<S: Sink>(&self, s: &mut S, drop_optional: bool) {
        let c = self.connect;
        let v5 = self.version.is_v5();
        s.write_str(match self.version {
            ProtocolVersion::V3_1 => "MQIsdp",
            _ => "MQTT",
        });
        s.write_u8(self.version.level());
        let mut flags = 0;
        if c.clean_start {
            flags |= FLAG_CLEAN_START;
        }
        if let Some(will) = &c.will {
            flags |= FLAG_WILL | ((will.qos as u8) << WILL_QOS_SHIFT);
            if will.retain {
                flags |= FLAG_WILL_RETAIN;
            }
        }
        if c.username.is_some() {
            flags |= FLAG_USERNAME;
        }
        if c.password.is_some() {
            flags |= FLAG_PASSWORD;
        }
        s.write_u8(flags);
        s.write_u16(c.keep_alive);
        if v5 {
            let source = PropertySource::of(&c.properties);
            write_properties(s, &source, PropertyContext::Connect, drop_optional);
        }
        s.write_str(&c.client_id);
        if let Some(will) = &c.will {
            if v5 {
                // Will user properties belong to the will message: never dropped.
                let source = PropertySource::of(&will.properties);
                write_properties(s, &source, PropertyContext::Will, false);
            }
            s.write_str(&will.topic);
            s.write_binary(&will.payload);
        }
        if let Some(username) = &c.username {
            s.write_str(username);
        }
        if let Some(password) = &c.password {
            s.write_binary(password);
        }
    }
}

pub(super) fn decode_connack(mut r: Reader, version: ProtocolVersion) -> DecodeResult<ConnAck> {
    let ack_flags = r.u8()?;
    // MQTT 3.1.1 §3.2.2.1 / MQTT 5.0 §3.2.2.1: bits 7-1 are reserved and must be 0.
    if ack_flags & 0xFE != 0 {
        return Err(DecodeError::Malformed("reserved CONNACK flags set"));
    }
    let (reason, properties) = if version.is_v5() {
        let reason = read_reason(&mut r, CONNACK_REASONS)?;
        (reason, read_properties(&mut r, PropertyContext::ConnAck)?)
    } else {
        // MQTT 3.1.1 §3.2.2.3: return codes 6-255 are reserved.
        let reason = ReasonCode::from_v3_connack_code(r.u8()?)
            .ok_or(DecodeError::Malformed("reserved CONNACK return code"))?;
        (reason, Properties::default())
    };
    expect_empty(r)?;
    Ok(ConnAck {
        session_present: ack_flags & 0x01 != 0,
        reason,
        properties,
    })
}

pub(super) struct ConnAckBody<'a> {
    pub(super) connack: &'a ConnAck,
    pub(super) version: ProtocolVersion,
}

impl Body for ConnAckBody<'_> {
    fn first_byte(&self) -> u8 {
        0x20
    }

    fn write<S: Sink>(&self, s: &mut S, drop_optional: bool) {
        let c = self.connack;
        // MQTT 3.1 has no session present flag: the byte is reserved.
        let session_present = c.session_present && self.version != ProtocolVersion::V3_1;
        s.write_u8(u8::from(session_present));
        if self.version.is_v5() {
            s.write_u8(c.reason.code());
            let source = PropertySource::of(&c.properties);
            write_properties(s, &source, PropertyContext::ConnAck, drop_optional);
        } else {
            s.write_u8(c.reason.to_v3_connack_code());
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};

    use crate::mqtt::{DecodeError, Packet, ProtocolVersion, QoS, ReasonCode, decode, encode};

    fn decode_all(bytes: &[u8], version: Option<ProtocolVersion>) -> Result<Packet, DecodeError> {
        let mut buf = BytesMut::from(bytes);
        let packet = decode(&mut buf, version, u32::MAX)?.expect("whole packet");
        assert!(buf.is_empty());
        Ok(packet)
    }

    /// The variable header example of MQTT 3.1.1 §3.1.2.10 (figure 3.11), with client id "c".
    const CONNECT_V311: &[u8] = &[
        0x10, 0x0D, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0xCE, 0x00, 0x0A, 0x00, 0x01, b'c',
    ];

    #[test]
    fn connect_example_from_the_specification_needs_its_payload() {
        // Figure 3.11 sets the user name, password and will flags: the payload must carry
        // them, so the bare example with only a client id is too short (malformed).
        assert!(matches!(
            decode_all(CONNECT_V311, None),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn decodes_a_full_v311_connect() {
        let mut bytes = vec![0x10, 0];
        bytes.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4, 0xCE, 0, 10]);
        bytes.extend_from_slice(&[0, 1, b'c']); // client id
        bytes.extend_from_slice(&[0, 3, b'a', b'/', b'b']); // will topic
        bytes.extend_from_slice(&[0, 2, b'h', b'i']); // will payload
        bytes.extend_from_slice(&[0, 1, b'u']); // user name
        bytes.extend_from_slice(&[0, 1, b'p']); // password
        bytes[1] = (bytes.len() - 2) as u8;
        let Packet::Connect(c) = decode_all(&bytes, None).unwrap() else {
            panic!("not a CONNECT")
        };
        assert_eq!(c.protocol, ProtocolVersion::V3_1_1);
        assert!(c.clean_start);
        assert_eq!(c.keep_alive, 10);
        assert_eq!(c.client_id, "c");
        let will = c.will.as_ref().unwrap();
        assert_eq!(&*will.topic, "a/b");
        assert_eq!(will.payload, Bytes::from_static(b"hi"));
        assert_eq!(will.qos, QoS::AtLeastOnce);
        assert!(!will.retain);
        assert_eq!(c.username.as_deref(), Some("u"));
        assert_eq!(c.password, Some(Bytes::from_static(b"p")));
        // And it encodes back to the same bytes.
        let mut out = BytesMut::new();
        encode(
            &Packet::Connect(c),
            ProtocolVersion::V3_1_1,
            u32::MAX,
            &mut out,
        )
        .unwrap();
        assert_eq!(&out[..], &bytes[..]);
    }

    #[test]
    fn decodes_v5_connect_example() {
        // MQTT 5.0 §3.1.2.12, figure 3-9 variable header: keep alive 10, properties
        // session expiry interval 10; then an empty client id.
        let bytes = [
            0x10, 18, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 10, 5, 0x11, 0, 0, 0, 10, 0, 0,
        ];
        let Packet::Connect(c) = decode_all(&bytes, None).unwrap() else {
            panic!("not a CONNECT")
        };
        assert_eq!(c.protocol, ProtocolVersion::V5);
        assert_eq!(c.properties.session_expiry_interval, Some(10));
        assert_eq!(c.client_id, "");
    }

    #[test]
    fn v5_connect_with_will_properties_bytes() {
        let mut bytes = vec![0x10, 0];
        // Protocol name, level 5, flags: user name, will retain, will QoS 2, will, clean start.
        bytes.extend_from_slice(&[
            0,
            4,
            b'M',
            b'Q',
            b'T',
            b'T',
            5,
            0x80 | 0x20 | 0x10 | 0x04 | 0x02,
        ]);
        bytes.extend_from_slice(&[0, 30]); // keep alive
        bytes.extend_from_slice(&[3, 0x21, 0, 5]); // receive maximum 5
        bytes.extend_from_slice(&[0, 2, b'i', b'd']); // client id
        bytes.extend_from_slice(&[5, 0x18, 0, 0, 0, 9]); // will delay interval 9
        bytes.extend_from_slice(&[0, 1, b'w']); // will topic
        bytes.extend_from_slice(&[0, 0]); // empty will payload
        bytes.extend_from_slice(&[0, 1, b'u']); // user name
        bytes[1] = (bytes.len() - 2) as u8;
        let Packet::Connect(c) = decode_all(&bytes, None).unwrap() else {
            panic!("not a CONNECT")
        };
        assert_eq!(c.properties.receive_maximum, Some(5));
        let will = c.will.as_ref().unwrap();
        assert_eq!((will.qos, will.retain), (QoS::ExactlyOnce, true));
        assert_eq!(will.properties.will_delay_interval, Some(9));
        assert_eq!(c.username.as_deref(), Some("u"));
        assert_eq!(c.password, None);
        let mut out = BytesMut::new();
        encode(&Packet::Connect(c), ProtocolVersion::V5, u32::MAX, &mut out).unwrap();
        assert_eq!(&out[..], &bytes[..]);
    }

    #[test]
    fn will_delay_interval_outside_the_will_is_malformed() {
        // MQTT 5.0 §2.2.2.2: Will Delay Interval belongs to the will properties only.
        let mut bytes = vec![0x10, 0];
        bytes.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 30]);
        bytes.extend_from_slice(&[5, 0x18, 0, 0, 0, 9, 0, 0]);
        bytes[1] = (bytes.len() - 2) as u8;
        assert!(matches!(
            decode_all(&bytes, None),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn accepts_mqtt_3_1() {
        let bytes = [
            0x10, 14, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 0x02, 0, 60, 0, 0,
        ];
        let Packet::Connect(c) = decode_all(&bytes, None).unwrap() else {
            panic!("not a CONNECT")
        };
        assert_eq!(c.protocol, ProtocolVersion::V3_1);
        let mut out = BytesMut::new();
        encode(
            &Packet::Connect(c),
            ProtocolVersion::V3_1,
            u32::MAX,
            &mut out,
        )
        .unwrap();
        assert_eq!(&out[..], &bytes[..]);
    }

    fn connect_with(name: &[u8], level: u8, flags: u8, tail: &[u8]) -> Vec<u8> {
        let mut body = vec![0, name.len() as u8];
        body.extend_from_slice(name);
        body.extend_from_slice(&[level, flags, 0, 0]);
        if level == 5 {
            body.push(0);
        }
        body.extend_from_slice(&[0, 1, b'c']);
        body.extend_from_slice(tail);
        let mut bytes = vec![0x10, body.len() as u8];
        bytes.extend_from_slice(&body);
        bytes
    }

    #[test]
    fn unsupported_level_is_reported_with_the_level() {
        // MQTT-3.1.2-2.
        let bytes = connect_with(b"MQTT", 6, 0, &[]);
        assert_eq!(
            decode_all(&bytes, None),
            Err(DecodeError::UnsupportedProtocolVersion(6))
        );
        // Name and level that do not belong together.
        let bytes = connect_with(b"MQIsdp", 4, 0, &[]);
        assert_eq!(
            decode_all(&bytes, None),
            Err(DecodeError::UnsupportedProtocolVersion(4))
        );
    }

    #[test]
    fn unknown_protocol_name_is_a_protocol_error() {
        // MQTT-3.1.2-1.
        let bytes = connect_with(b"MQTX", 4, 0, &[]);
        assert!(matches!(
            decode_all(&bytes, None),
            Err(DecodeError::Protocol(_))
        ));
    }

    #[test]
    fn reserved_connect_flag_is_malformed() {
        // MQTT-3.1.2-3.
        let bytes = connect_with(b"MQTT", 4, 0x01, &[]);
        assert!(matches!(
            decode_all(&bytes, None),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn will_qos_or_retain_without_will_flag_is_malformed() {
        // MQTT-3.1.2-13 (will QoS) and MQTT-3.1.2-15 (will retain), 3.1.1 numbering.
        for flags in [0x08, 0x10, 0x20] {
            for level in [4, 5] {
                let bytes = connect_with(b"MQTT", level, flags, &[]);
                assert!(
                    matches!(decode_all(&bytes, None), Err(DecodeError::Malformed(_))),
                    "flags {flags:#x} level {level}"
                );
            }
        }
    }

    #[test]
    fn will_qos_3_is_malformed() {
        // MQTT-3.1.2-14.
        let bytes = connect_with(b"MQTT", 4, 0x1C, &[0, 1, b't', 0, 0]);
        assert!(matches!(
            decode_all(&bytes, None),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn password_without_user_name_is_refused_in_3_1_1_only() {
        // MQTT-3.1.2-22 (3.1.1); MQTT 5.0 §3.1.2.9 allows it.
        let bytes = connect_with(b"MQTT", 4, 0x40, &[0, 1, b'p']);
        assert!(matches!(
            decode_all(&bytes, None),
            Err(DecodeError::Protocol(_))
        ));
        let bytes = connect_with(b"MQTT", 5, 0x40, &[0, 1, b'p']);
        let Packet::Connect(c) = decode_all(&bytes, None).unwrap() else {
            panic!("not a CONNECT")
        };
        assert_eq!(c.password, Some(Bytes::from_static(b"p")));
        assert_eq!(c.username, None);
    }

    #[test]
    fn will_topic_with_wildcard_is_an_invalid_topic_name() {
        let bytes = connect_with(b"MQTT", 4, 0x04, &[0, 1, b'#', 0, 0]);
        assert!(matches!(
            decode_all(&bytes, None),
            Err(DecodeError::TopicNameInvalid(_))
        ));
    }

    #[test]
    fn trailing_bytes_after_connect_are_malformed() {
        let bytes = connect_with(b"MQTT", 4, 0, &[0xFF]);
        assert!(matches!(
            decode_all(&bytes, None),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn connack_v311_maps_reason_codes_to_return_codes() {
        let connack = crate::mqtt::ConnAck {
            session_present: true,
            reason: ReasonCode::NotAuthorized,
            properties: crate::mqtt::Properties {
                reason_string: Some("dropped in 3.1.1".into()),
                ..Default::default()
            },
        };
        let mut out = BytesMut::new();
        encode(
            &Packet::ConnAck(connack),
            ProtocolVersion::V3_1_1,
            u32::MAX,
            &mut out,
        )
        .unwrap();
        assert_eq!(&out[..], &[0x20, 0x02, 0x01, 0x05]);
        let Packet::ConnAck(back) = decode_all(&out, Some(ProtocolVersion::V3_1_1)).unwrap() else {
            panic!("not a CONNACK")
        };
        assert_eq!(back.reason, ReasonCode::NotAuthorized);
        assert!(back.session_present);
    }

    #[test]
    fn connack_v5_with_properties() {
        let bytes = [0x20, 0x06, 0x00, 0x00, 0x03, 0x21, 0x00, 0x0A];
        let Packet::ConnAck(c) = decode_all(&bytes, Some(ProtocolVersion::V5)).unwrap() else {
            panic!("not a CONNACK")
        };
        assert_eq!(c.reason, ReasonCode::Success);
        assert_eq!(c.properties.receive_maximum, Some(10));
        let mut out = BytesMut::new();
        encode(&Packet::ConnAck(c), ProtocolVersion::V5, u32::MAX, &mut out).unwrap();
        assert_eq!(&out[..], &bytes[..]);
    }

    #[test]
    fn connack_reserved_flags_and_codes() {
        // §3.2.2.1 (3.1.1 and 5.0): reserved acknowledge flags.
        assert!(matches!(
            decode_all(&[0x20, 2, 0x02, 0], Some(ProtocolVersion::V3_1_1)),
            Err(DecodeError::Malformed(_))
        ));
        // §3.2.2.3: return code 6 is reserved in 3.1.1.
        assert!(matches!(
            decode_all(&[0x20, 2, 0, 6], Some(ProtocolVersion::V3_1_1)),
            Err(DecodeError::Malformed(_))
        ));
        // Granted QoS 1 is not a CONNACK reason code (§3.2.2.2).
        assert!(matches!(
            decode_all(&[0x20, 3, 0, 0x01, 0], Some(ProtocolVersion::V5)),
            Err(DecodeError::Protocol(_))
        ));
    }
}

//! Property tests of the MQTT codec through the public API: every generated valid packet
//! survives encode → decode unchanged (MQTT 3.1.1 and 5.0), decoding is incremental, the
//! size bound holds on encode, and arbitrary bytes never make the decoder panic.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::option::of as opt;
use proptest::prelude::*;
use proptest::sample::select;

use roost::mqtt::{
    Auth, ConnAck, Connect, DecodeError, Disconnect, EncodeError, Packet, Properties,
    ProtocolVersion, PubResponse, Publish, PublishDelivery, QoS, ReasonCode, RetainHandling,
    SubAck, Subscribe, SubscribeFilter, SubscriptionOptions, UnsubAck, Unsubscribe, Will, decode,
    encode, encode_publish,
};

const V4: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

/// Which packet a property set is generated for (MQTT 5.0 §2.2.2.2, table 2-4).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ctx {
    Connect,
    Will,
    ConnAck,
    Publish,
    Ack,
    Subscribe,
    Unsubscribe,
    Disconnect,
    Auth,
}

fn text() -> impl Strategy<Value = String> {
    // Any printable characters, including non-ASCII and U+FEFF; never U+0000.
    prop_oneof![
        "[a-z0-9 /-]{0,12}",
        "\\PC{0,6}",
        Just("\u{FEFF}x".to_string())
    ]
}

fn binary() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

fn topic_name() -> impl Strategy<Value = String> {
    "[a-z$]{1,4}(/[a-z0-9 ]{0,4}){0,3}"
}

fn topic_filter() -> impl Strategy<Value = String> {
    let level = prop_oneof![3 => "[a-z0-9]{0,4}", 1 => Just("+".to_string())];
    let plain = (vec(level, 1..4), any::<bool>()).prop_map(|(levels, hash)| {
        let mut filter = levels.join("/");
        // MQTT-4.7.3-1: a filter is at least one character long.
        if filter.is_empty() {
            filter.push('a');
        }
        if hash {
            filter.push_str("/#");
        }
        filter
    });
    let plain = prop_oneof![8 => plain, 1 => Just("#".to_string())];
    (opt("[a-z0-9]{1,5}"), plain).prop_map(|(group, filter)| match group {
        Some(group) => format!("$share/{group}/{filter}"),
        None => filter,
    })
}

fn qos() -> impl Strategy<Value = QoS> {
    select(vec![QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce])
}

fn reason(codes: &'static [u8]) -> impl Strategy<Value = ReasonCode> {
    select(codes).prop_map(|code| ReasonCode::from_code(code).expect("listed codes are valid"))
}

const CONNACK_REASONS: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];
const PUBACK_REASONS: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
const PUBREL_REASONS: &[u8] = &[0x00, 0x92];
const SUBACK_REASONS: &[u8] = &[
    0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
];
const UNSUBACK_REASONS: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
const DISCONNECT_REASONS: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
    0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];
const AUTH_REASONS: &[u8] = &[0x00, 0x18, 0x19];
/// The MQTT 3.1.1 CONNACK return codes 0..=5 as reason codes.
const V3_CONNACK_REASONS: &[u8] = &[0x00, 0x84, 0x85, 0x88, 0x86, 0x87];
const V3_SUBACK_REASONS: &[u8] = &[0x00, 0x01, 0x02, 0x80];

fn flag() -> impl Strategy<Value = Option<u8>> {
    opt(0u8..=1)
}

/// Any valid set of properties; [`restrict`] then keeps the ones allowed in a packet.
fn any_properties() -> impl Strategy<Value = Properties> {
    let a = (
        flag(),
        opt(any::<u32>()),
        opt(text()),
        opt(topic_name()),
        opt(binary()),
        vec(1u32..=268_435_455, 0..3),
        opt(any::<u32>()),
        opt(text()),
    );
    let b = (
        opt(any::<u16>()),
        opt(text()),
        opt(binary()),
        flag(),
        opt(any::<u32>()),
        flag(),
        opt(text()),
        opt(text()),
    );
    let c = (
        opt(text()),
        opt(1u16..),
        opt(any::<u16>()),
        opt(any::<u16>()),
        flag(),
        flag(),
        vec((text(), text()), 0..3),
        opt(1u32..),
    );
    let d = (flag(), flag(), flag());
    (a, b, c, d).prop_map(|(a, b, c, d)| Properties {
        payload_format_indicator: a.0,
        message_expiry_interval: a.1,
        content_type: a.2,
        response_topic: a.3.map(Arc::from),
        correlation_data: a.4,
        subscription_identifiers: a.5,
        session_expiry_interval: a.6,
        assigned_client_identifier: a.7,
        server_keep_alive: b.0,
        authentication_method: b.1,
        authentication_data: b.2,
        request_problem_information: b.3,
        will_delay_interval: b.4,
        request_response_information: b.5,
        response_information: b.6,
        server_reference: b.7,
        reason_string: c.0,
        receive_maximum: c.1,
        topic_alias_maximum: c.2,
        topic_alias: c.3,
        maximum_qos: c.4,
        retain_available: c.5,
        user_properties: c.6,
        maximum_packet_size: c.7,
        wildcard_subscription_available: d.0,
        subscription_identifier_available: d.1,
        shared_subscription_available: d.2,
    })
}

/// Clears every property that `ctx` does not allow.
fn restrict(mut p: Properties, ctx: Ctx) -> Properties {
    use Ctx::*;
    let keep = |allowed: &[Ctx]| allowed.contains(&ctx);
    macro_rules! only {
        ($field:ident, $($allowed:expr),+) => {
            if !keep(&[$($allowed),+]) {
                p.$field = Default::default();
            }
        };
    }
    only!(payload_format_indicator, Will, Publish);
    only!(message_expiry_interval, Will, Publish);
    only!(content_type, Will, Publish);
    only!(response_topic, Will, Publish);
    only!(correlation_data, Will, Publish);
    only!(subscription_identifiers, Publish, Subscribe);
    only!(session_expiry_interval, Connect, ConnAck, Disconnect);
    only!(assigned_client_identifier, ConnAck);
    only!(server_keep_alive, ConnAck);
    only!(authentication_method, Connect, ConnAck, Auth);
    only!(authentication_data, Connect, ConnAck, Auth);
    only!(request_problem_information, Connect);
    only!(will_delay_interval, Will);
    only!(request_response_information, Connect);
    only!(response_information, ConnAck);
    only!(server_reference, ConnAck, Disconnect);
    only!(reason_string, ConnAck, Ack, Disconnect, Auth);
    only!(receive_maximum, Connect, ConnAck);
    only!(topic_alias_maximum, Connect, ConnAck);
    only!(topic_alias, Publish);
    only!(maximum_qos, ConnAck);
    only!(retain_available, ConnAck);
    only!(
        user_properties,
        Connect,
        Will,
        ConnAck,
        Publish,
        Ack,
        Subscribe,
        Unsubscribe,
        Disconnect,
        Auth
    );
    only!(maximum_packet_size, Connect, ConnAck);
    only!(wildcard_subscription_available, ConnAck);
    only!(subscription_identifier_available, ConnAck);
    only!(shared_subscription_available, ConnAck);
    // §3.8.2.1.2: at most one subscription identifier in SUBSCRIBE.
    if ctx == Subscribe {
        p.subscription_identifiers.truncate(1);
    }
    // §3.1.2.11.10: authentication data only with a method.
    if p.authentication_method.is_none() {
        p.authentication_data = None;
    }
    p
}

fn properties(version: ProtocolVersion, ctx: Ctx) -> BoxedStrategy<Properties> {
    if version.is_v5() {
        any_properties().prop_map(move |p| restrict(p, ctx)).boxed()
    } else {
        Just(Properties::default()).boxed()
    }
}

fn connect(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let will = (
        topic_name(),
        binary(),
        qos(),
        any::<bool>(),
        properties(version, Ctx::Will),
    )
        .prop_map(|(topic, payload, qos, retain, properties)| Will {
            topic: Arc::from(topic),
            payload,
            qos,
            retain,
            properties,
        });
    (
        any::<bool>(),
        any::<u16>(),
        properties(version, Ctx::Connect),
        text(),
        opt(will),
        opt(text()),
        opt(binary()),
    )
        .prop_map(
            move |(clean_start, keep_alive, properties, client_id, will, username, password)| {
                // MQTT-3.1.2-22: in 3.1.1 a password needs a user name.
                let password = if version.is_v5() || username.is_some() {
                    password
                } else {
                    None
                };
                Packet::Connect(Box::new(Connect {
                    protocol: version,
                    clean_start,
                    keep_alive,
                    properties,
                    client_id,
                    will,
                    username,
                    password,
                }))
            },
        )
}

fn publish(version: ProtocolVersion) -> impl Strategy<Value = Publish> {
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        topic_name(),
        1u16..,
        properties(version, Ctx::Publish),
        binary(),
    )
        .prop_map(move |(qos, dup, retain, topic, id, properties, payload)| {
            let retained_qos = qos != QoS::AtMostOnce;
            // MQTT 5.0 §3.3.2.3.4: with a topic alias the topic name may be empty.
            let topic = if version.is_v5() && properties.topic_alias.is_some() && dup {
                String::new()
            } else {
                topic
            };
            Publish {
                // MQTT-3.3.1-2: DUP is 0 for QoS 0.
                dup: dup && retained_qos,
                qos,
                retain,
                topic: Arc::from(topic),
                packet_id: retained_qos.then_some(id),
                properties,
                payload,
            }
        })
}

fn response(version: ProtocolVersion, codes: &'static [u8]) -> BoxedStrategy<PubResponse> {
    let reasons = if version.is_v5() {
        reason(codes).boxed()
    } else {
        Just(ReasonCode::Success).boxed()
    };
    (1u16.., reasons, properties(version, Ctx::Ack))
        .prop_map(|(packet_id, reason, properties)| PubResponse {
            packet_id,
            reason,
            properties,
        })
        .boxed()
}

fn subscribe(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let options = (
        qos(),
        any::<bool>(),
        any::<bool>(),
        select(vec![
            RetainHandling::SendOnSubscribe,
            RetainHandling::SendIfNew,
            RetainHandling::DoNotSend,
        ]),
    );
    let filter = (topic_filter(), options).prop_map(move |(filter, (qos, nl, rap, rh))| {
        let options = if version.is_v5() {
            SubscriptionOptions {
                qos,
                // MQTT-3.8.3-4: No Local is not allowed on a shared subscription.
                no_local: nl && !filter.starts_with("$share/"),
                retain_as_published: rap,
                retain_handling: rh,
            }
        } else {
            SubscriptionOptions {
                qos,
                ..SubscriptionOptions::default()
            }
        };
        SubscribeFilter { filter, options }
    });
    (
        1u16..,
        properties(version, Ctx::Subscribe),
        vec(filter, 1..4),
    )
        .prop_map(|(packet_id, properties, filters)| {
            Packet::Subscribe(Subscribe {
                packet_id,
                properties,
                filters,
            })
        })
}

fn any_packet(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let v5 = version.is_v5();
    let connack_reasons = if v5 {
        CONNACK_REASONS
    } else {
        V3_CONNACK_REASONS
    };
    let suback_reasons = if v5 {
        SUBACK_REASONS
    } else {
        V3_SUBACK_REASONS
    };
    let connack = (
        any::<bool>(),
        reason(connack_reasons),
        properties(version, Ctx::ConnAck),
    )
        .prop_map(|(session_present, reason, properties)| {
            Packet::ConnAck(ConnAck {
                session_present,
                reason,
                properties,
            })
        });
    let suback = (
        1u16..,
        properties(version, Ctx::Ack),
        vec(reason(suback_reasons), 1..4),
    )
        .prop_map(|(packet_id, properties, reasons)| {
            Packet::SubAck(SubAck {
                packet_id,
                properties,
                reasons,
            })
        });
    let unsubscribe = (
        1u16..,
        properties(version, Ctx::Unsubscribe),
        vec(topic_filter(), 1..4),
    )
        .prop_map(|(packet_id, properties, filters)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                properties,
                filters,
            })
        });
    let unsuback_reasons = if v5 {
        vec(reason(UNSUBACK_REASONS), 1..4).boxed()
    } else {
        Just(Vec::new()).boxed()
    };
    let unsuback = (1u16.., properties(version, Ctx::Ack), unsuback_reasons).prop_map(
        |(packet_id, properties, reasons)| {
            Packet::UnsubAck(UnsubAck {
                packet_id,
                properties,
                reasons,
            })
        },
    );
    let disconnect_reason = if v5 {
        reason(DISCONNECT_REASONS).boxed()
    } else {
        Just(ReasonCode::Success).boxed()
    };
    let disconnect = (disconnect_reason, properties(version, Ctx::Disconnect))
        .prop_map(|(reason, properties)| Packet::Disconnect(Disconnect { reason, properties }));
    let common = prop_oneof![
        connect(version),
        connack,
        publish(version).prop_map(Packet::Publish),
        response(version, PUBACK_REASONS).prop_map(Packet::PubAck),
        response(version, PUBACK_REASONS).prop_map(Packet::PubRec),
        response(version, PUBREL_REASONS).prop_map(Packet::PubRel),
        response(version, PUBREL_REASONS).prop_map(Packet::PubComp),
        subscribe(version),
        suback,
        unsubscribe,
        unsuback,
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        disconnect,
    ];
    if v5 {
        let auth = (reason(AUTH_REASONS), properties(version, Ctx::Auth))
            .prop_map(|(reason, properties)| Packet::Auth(Auth { reason, properties }));
        prop_oneof![14 => common, 1 => auth].boxed()
    } else {
        common.boxed()
    }
}

/// The version to pass to `decode`: CONNECT is decoded as the first packet of a connection.
fn decode_version(packet: &Packet, version: ProtocolVersion) -> Option<ProtocolVersion> {
    match packet {
        Packet::Connect(_) => None,
        _ => Some(version),
    }
}

fn encoded(packet: &Packet, version: ProtocolVersion) -> BytesMut {
    let mut out = BytesMut::new();
    encode(packet, version, u32::MAX, &mut out).expect("valid packets encode");
    out
}

fn check_round_trip(packet: Packet, version: ProtocolVersion) -> Result<(), TestCaseError> {
    let mut buf = encoded(&packet, version);
    let decoded = decode(&mut buf, decode_version(&packet, version), u32::MAX);
    prop_assert_eq!(decoded, Ok(Some(packet)));
    prop_assert!(buf.is_empty());
    Ok(())
}

fn check_incremental(
    packet: Packet,
    version: ProtocolVersion,
    split: prop::sample::Index,
) -> Result<(), TestCaseError> {
    let whole = encoded(&packet, version);
    let cut = split.index(whole.len());
    let mut buf = BytesMut::from(&whole[..cut]);
    let first = decode(&mut buf, decode_version(&packet, version), u32::MAX);
    prop_assert_eq!(first, Ok(None));
    prop_assert_eq!(buf.len(), cut);
    buf.extend_from_slice(&whole[cut..]);
    let second = decode(&mut buf, decode_version(&packet, version), u32::MAX);
    prop_assert_eq!(second, Ok(Some(packet)));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_v311_packet_round_trips(packet in any_packet(V4)) {
        check_round_trip(packet, V4)?;
    }

    #[test]
    fn every_v5_packet_round_trips(packet in any_packet(V5)) {
        check_round_trip(packet, V5)?;
    }

    #[test]
    fn decoding_is_incremental_v311(packet in any_packet(V4), split in any::<prop::sample::Index>()) {
        check_incremental(packet, V4, split)?;
    }

    #[test]
    fn decoding_is_incremental_v5(packet in any_packet(V5), split in any::<prop::sample::Index>()) {
        check_incremental(packet, V5, split)?;
    }

    /// MQTT-3.1.2-24 / MQTT-3.1.2-25: an encoded packet never exceeds the receiver's maximum,
    /// and a failed encode leaves the output untouched.
    #[test]
    fn encoding_respects_the_maximum_packet_size(
        packet in any_packet(V5),
        shrink in 1usize..40,
    ) {
        let full = encoded(&packet, V5).len();
        let max = full.saturating_sub(shrink).max(1) as u32;
        let mut out = BytesMut::from(&b"prefix"[..]);
        match encode(&packet, V5, max, &mut out) {
            Ok(()) => {
                prop_assert!(out.len() - 6 <= max as usize);
                prop_assert!(&out[..6] == b"prefix");
                // What was sent is still a valid packet of the same type.
                let mut sent = out.split_off(6);
                let decoded = decode(&mut sent, decode_version(&packet, V5), u32::MAX)
                    .expect("valid").expect("whole");
                prop_assert_eq!(decoded.packet_type(), packet.packet_type());
            }
            Err(EncodeError::TooLarge { .. }) => prop_assert_eq!(&out[..], b"prefix"),
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }

    /// The header, packet id, alias, subscription identifiers and expiry come from the
    /// delivery; topic, payload and other properties from the shared PUBLISH.
    #[test]
    fn encode_publish_applies_the_delivery(
        shared in publish(V5),
        delivery_qos in qos(),
        dup in any::<bool>(),
        retain in any::<bool>(),
        packet_id in 1u16..,
        alias in opt(1u16..),
        omit_topic in any::<bool>(),
        ids in vec(1u32..=268_435_455, 0..3),
        expiry in opt(any::<u32>()),
    ) {
        let is_qos0 = delivery_qos == QoS::AtMostOnce;
        // MQTT 5.0 §3.3.2.3.4: an empty topic name needs a topic alias.
        let alias = if shared.topic.is_empty() { alias.or(Some(1)) } else { alias };
        let omit_topic = omit_topic && alias.is_some();
        let delivery = PublishDelivery {
            qos: delivery_qos,
            dup: dup && !is_qos0,
            retain,
            packet_id: (!is_qos0).then_some(packet_id),
            topic_alias: alias,
            omit_topic,
            subscription_identifiers: &ids,
            message_expiry_interval: expiry,
        };
        let mut out = BytesMut::new();
        encode_publish(&shared, &delivery, V5, u32::MAX, &mut out).unwrap();
        let Some(Packet::Publish(p)) = decode(&mut out, Some(V5), u32::MAX).unwrap() else {
            return Err(TestCaseError::fail("not a PUBLISH"));
        };
        prop_assert_eq!((p.qos, p.dup, p.retain, p.packet_id), (delivery.qos, delivery.dup, retain, delivery.packet_id));
        prop_assert_eq!(&*p.topic, if omit_topic { "" } else { &*shared.topic });
        prop_assert_eq!(p.properties.topic_alias, alias);
        prop_assert_eq!(&p.properties.subscription_identifiers, &ids);
        prop_assert_eq!(p.properties.message_expiry_interval, expiry);
        prop_assert_eq!(&p.properties.user_properties, &shared.properties.user_properties);
        prop_assert_eq!(&p.properties.correlation_data, &shared.properties.correlation_data);
        prop_assert_eq!(&p.payload, &shared.payload);
    }

    /// No input from the network can make the decoder panic; it always makes progress or
    /// asks for more bytes.
    #[test]
    fn decoding_random_bytes_never_panics(bytes in vec(any::<u8>(), 0..256), level in 0usize..3) {
        let version = [None, Some(V4), Some(V5)][level];
        let mut buf = BytesMut::from(&bytes[..]);
        loop {
            let before = buf.len();
            match decode(&mut buf, version, 1024) {
                Ok(Some(_)) => prop_assert!(buf.len() < before),
                Ok(None) | Err(_) => break,
            }
        }
    }

    /// Mutating one byte of a valid packet never panics either (reaches deeper code paths).
    #[test]
    fn decoding_mutated_packets_never_panics(
        (version, packet) in prop_oneof![
            any_packet(V4).prop_map(|p| (V4, p)),
            any_packet(V5).prop_map(|p| (V5, p)),
        ],
        position in any::<prop::sample::Index>(),
        value in any::<u8>(),
    ) {
        let mut bytes = encoded(&packet, version);
        let at = position.index(bytes.len());
        bytes[at] = value;
        let result: Result<Option<Packet>, DecodeError> =
            decode(&mut bytes, decode_version(&packet, version), u32::MAX);
        let _ = result;
    }

    /// Several packets back to back in one buffer come out one by one, in order.
    #[test]
    fn a_stream_of_packets_decodes_in_order(packets in vec(any_packet(V5), 1..6)) {
        let packets: Vec<Packet> = packets
            .into_iter()
            .filter(|p| !matches!(p, Packet::Connect(_)))
            .collect();
        let mut stream = BytesMut::new();
        for packet in &packets {
            stream.extend_from_slice(&encoded(packet, V5));
        }
        for packet in packets {
            prop_assert_eq!(decode(&mut stream, Some(V5), u32::MAX), Ok(Some(packet)));
        }
        prop_assert_eq!(decode(&mut stream, Some(V5), u32::MAX), Ok(None));
    }
}

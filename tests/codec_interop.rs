//! The roost codec against an independent MQTT implementation (the rumqttc client's packet
//! code): what a real client sends decodes as intended, and what roost sends a real client
//! understands.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use roost::mqtt::{
    ConnAck, Disconnect, Packet, Properties, ProtocolVersion, PubResponse, Publish, QoS,
    ReasonCode, RetainHandling, SubAck, UnsubAck, decode, encode,
};
use rumqttc::mqttbytes::{QoS as RQoS, v4};
use rumqttc::v5::mqttbytes::{QoS as R5QoS, v5};

const MAX: u32 = 1024 * 1024;

fn roost_decode(bytes: &mut BytesMut, version: Option<ProtocolVersion>) -> Packet {
    let packet = decode(bytes, version, MAX)
        .expect("valid packet")
        .expect("whole packet");
    assert!(bytes.is_empty(), "packet fully consumed");
    packet
}

fn roost_encode(packet: &Packet, version: ProtocolVersion) -> BytesMut {
    let mut out = BytesMut::new();
    encode(packet, version, MAX, &mut out).expect("encodes");
    out
}

#[test]
fn v311_connect_from_a_client() {
    let mut connect = v4::Connect::new("sensor-1");
    connect.keep_alive = 30;
    connect.clean_session = false;
    connect.last_will = Some(v4::LastWill::new(
        "status/sensor-1",
        "gone",
        RQoS::AtLeastOnce,
        true,
    ));
    connect.set_login("user", "secret");
    let mut bytes = BytesMut::new();
    v4::Packet::Connect(connect)
        .write(&mut bytes, MAX as usize)
        .unwrap();
    let Packet::Connect(c) = roost_decode(&mut bytes, None) else {
        panic!("not a CONNECT")
    };
    assert_eq!(c.protocol, ProtocolVersion::V3_1_1);
    assert_eq!(c.keep_alive, 30);
    assert!(!c.clean_start);
    assert_eq!(c.client_id, "sensor-1");
    let will = c.will.expect("will");
    assert_eq!(&*will.topic, "status/sensor-1");
    assert_eq!(will.payload, Bytes::from_static(b"gone"));
    assert_eq!((will.qos, will.retain), (QoS::AtLeastOnce, true));
    assert_eq!(c.username.as_deref(), Some("user"));
    assert_eq!(c.password, Some(Bytes::from_static(b"secret")));
}

#[test]
fn v311_publish_and_subscribe_from_a_client() {
    let mut publish = v4::Publish::new("a/b", RQoS::ExactlyOnce, b"payload".to_vec());
    publish.pkid = 42;
    publish.retain = true;
    let mut bytes = BytesMut::new();
    v4::Packet::Publish(publish)
        .write(&mut bytes, MAX as usize)
        .unwrap();
    let subscribe = v4::Subscribe {
        pkid: 7,
        filters: vec![
            v4::SubscribeFilter::new("a/+".into(), RQoS::AtMostOnce),
            v4::SubscribeFilter::new("b/#".into(), RQoS::ExactlyOnce),
        ],
    };
    v4::Packet::Subscribe(subscribe)
        .write(&mut bytes, MAX as usize)
        .unwrap();

    let version = Some(ProtocolVersion::V3_1_1);
    let Some(Packet::Publish(p)) = decode(&mut bytes, version, MAX).unwrap() else {
        panic!("not a PUBLISH")
    };
    assert_eq!(
        (&*p.topic, p.qos, p.retain),
        ("a/b", QoS::ExactlyOnce, true)
    );
    assert_eq!(p.packet_id, Some(42));
    assert_eq!(p.payload, Bytes::from_static(b"payload"));
    let Packet::Subscribe(s) = roost_decode(&mut bytes, version) else {
        panic!("not a SUBSCRIBE")
    };
    assert_eq!(s.packet_id, 7);
    let filters: Vec<_> = s
        .filters
        .iter()
        .map(|f| (f.filter.as_str(), f.options.qos))
        .collect();
    assert_eq!(
        filters,
        vec![("a/+", QoS::AtMostOnce), ("b/#", QoS::ExactlyOnce)]
    );
}

#[test]
fn v311_server_packets_reach_a_client() {
    let version = ProtocolVersion::V3_1_1;
    let mut bytes = BytesMut::new();
    for packet in [
        Packet::ConnAck(ConnAck {
            session_present: true,
            reason: ReasonCode::Success,
            properties: Properties::default(),
        }),
        Packet::Publish(Publish {
            dup: true,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: Arc::from("x/y"),
            packet_id: Some(9),
            properties: Properties::default(),
            payload: Bytes::from_static(b"hello"),
        }),
        Packet::PubRel(PubResponse::success(9)),
        Packet::SubAck(SubAck {
            packet_id: 7,
            properties: Properties::default(),
            reasons: vec![ReasonCode::GrantedQoS1, ReasonCode::NotAuthorized],
        }),
        Packet::UnsubAck(UnsubAck {
            packet_id: 8,
            properties: Properties::default(),
            reasons: vec![ReasonCode::Success],
        }),
        Packet::PingResp,
    ] {
        bytes.extend_from_slice(&roost_encode(&packet, version));
    }
    let mut read = || v4::Packet::read(&mut bytes, MAX as usize).unwrap();
    assert_eq!(
        read(),
        v4::Packet::ConnAck(v4::ConnAck::new(v4::ConnectReturnCode::Success, true))
    );
    let v4::Packet::Publish(p) = read() else {
        panic!("not a PUBLISH")
    };
    assert_eq!((p.topic.as_str(), p.pkid, p.dup), ("x/y", 9, true));
    assert_eq!(p.payload, Bytes::from_static(b"hello"));
    assert_eq!(read(), v4::Packet::PubRel(v4::PubRel::new(9)));
    assert_eq!(
        read(),
        v4::Packet::SubAck(v4::SubAck::new(
            7,
            vec![
                v4::SubscribeReasonCode::Success(RQoS::AtLeastOnce),
                v4::SubscribeReasonCode::Failure
            ]
        ))
    );
    assert_eq!(read(), v4::Packet::UnsubAck(v4::UnsubAck::new(8)));
    assert_eq!(read(), v4::Packet::PingResp);
}

#[test]
fn v5_connect_with_properties_from_a_client() {
    let connect = v5::Connect {
        keep_alive: 60,
        client_id: "c5".into(),
        clean_start: true,
        properties: Some(v5::ConnectProperties {
            session_expiry_interval: Some(3600),
            receive_maximum: Some(20),
            max_packet_size: Some(4096),
            topic_alias_max: Some(10),
            request_response_info: Some(1),
            request_problem_info: Some(0),
            user_properties: vec![("app".into(), "roost-test".into())],
            authentication_method: None,
            authentication_data: None,
        }),
    };
    let will = v5::LastWill {
        topic: Bytes::from_static(b"wills/c5"),
        message: Bytes::from_static(b"bye"),
        qos: R5QoS::AtMostOnce,
        retain: false,
        properties: Some(v5::LastWillProperties {
            delay_interval: Some(5),
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(100),
            content_type: Some("text/plain".into()),
            response_topic: Some("replies".into()),
            correlation_data: Some(Bytes::from_static(b"\x00\x01")),
            user_properties: vec![],
        }),
    };
    let mut bytes = BytesMut::new();
    v5::Packet::Connect(connect, Some(will), None)
        .write(&mut bytes, None)
        .unwrap();
    let Packet::Connect(c) = roost_decode(&mut bytes, None) else {
        panic!("not a CONNECT")
    };
    assert_eq!(c.protocol, ProtocolVersion::V5);
    let p = &c.properties;
    assert_eq!(p.session_expiry_interval, Some(3600));
    assert_eq!(p.receive_maximum, Some(20));
    assert_eq!(p.maximum_packet_size, Some(4096));
    assert_eq!(p.topic_alias_maximum, Some(10));
    assert_eq!(p.request_response_information, Some(1));
    assert_eq!(p.request_problem_information, Some(0));
    assert_eq!(p.user_properties, vec![("app".into(), "roost-test".into())]);
    let w = c.will.expect("will").properties;
    assert_eq!(w.will_delay_interval, Some(5));
    assert_eq!(w.payload_format_indicator, Some(1));
    assert_eq!(w.message_expiry_interval, Some(100));
    assert_eq!(w.content_type.as_deref(), Some("text/plain"));
    assert_eq!(w.response_topic.as_deref(), Some("replies"));
}

#[test]
fn v5_subscribe_from_a_client() {
    let mut filter = v5::Filter::new("$share/g/t/#", R5QoS::AtLeastOnce);
    filter.preserve_retain = true;
    filter.retain_forward_rule = v5::RetainForwardRule::Never;
    let subscribe = v5::Subscribe {
        pkid: 3,
        filters: vec![filter],
        properties: Some(v5::SubscribeProperties {
            id: Some(77),
            user_properties: vec![],
        }),
    };
    let mut bytes = BytesMut::new();
    v5::Packet::Subscribe(subscribe)
        .write(&mut bytes, None)
        .unwrap();
    let Packet::Subscribe(s) = roost_decode(&mut bytes, Some(ProtocolVersion::V5)) else {
        panic!("not a SUBSCRIBE")
    };
    assert_eq!(s.properties.subscription_identifiers, vec![77]);
    let options = s.filters[0].options;
    assert_eq!(s.filters[0].filter, "$share/g/t/#");
    assert_eq!(options.qos, QoS::AtLeastOnce);
    assert!(options.retain_as_published && !options.no_local);
    assert_eq!(options.retain_handling, RetainHandling::DoNotSend);
}

#[test]
fn v5_server_packets_reach_a_client() {
    let version = ProtocolVersion::V5;
    let mut bytes = BytesMut::new();
    let connack = Packet::ConnAck(ConnAck {
        session_present: false,
        reason: ReasonCode::Success,
        properties: Properties {
            receive_maximum: Some(100),
            maximum_qos: Some(1),
            retain_available: Some(1),
            topic_alias_maximum: Some(16),
            assigned_client_identifier: Some("auto-1".into()),
            server_keep_alive: Some(30),
            ..Properties::default()
        },
    });
    let publish = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: true,
        topic: Arc::from("m/n"),
        packet_id: Some(5),
        properties: Properties {
            message_expiry_interval: Some(50),
            subscription_identifiers: vec![1, 300],
            user_properties: vec![("k".into(), "v".into())],
            ..Properties::default()
        },
        payload: Bytes::from_static(b"body"),
    });
    let disconnect = Packet::Disconnect(Disconnect {
        reason: ReasonCode::ServerShuttingDown,
        properties: Properties {
            reason_string: Some("maintenance".into()),
            ..Properties::default()
        },
    });
    for packet in [&connack, &publish, &disconnect] {
        bytes.extend_from_slice(&roost_encode(packet, version));
    }
    let mut read = || v5::Packet::read(&mut bytes, None).unwrap();
    let v5::Packet::ConnAck(c) = read() else {
        panic!("not a CONNACK")
    };
    assert_eq!(c.code, v5::ConnectReturnCode::Success);
    let cp = c.properties.expect("properties");
    assert_eq!(cp.receive_max, Some(100));
    assert_eq!(cp.max_qos, Some(1));
    assert_eq!(cp.topic_alias_max, Some(16));
    assert_eq!(cp.assigned_client_identifier.as_deref(), Some("auto-1"));
    assert_eq!(cp.server_keep_alive, Some(30));
    let v5::Packet::Publish(p) = read() else {
        panic!("not a PUBLISH")
    };
    assert_eq!((&p.topic[..], p.pkid, p.retain), (&b"m/n"[..], 5, true));
    let pp = p.properties.expect("properties");
    assert_eq!(pp.message_expiry_interval, Some(50));
    assert_eq!(pp.subscription_identifiers, vec![1, 300]);
    assert_eq!(pp.user_properties, vec![("k".into(), "v".into())]);
    assert_eq!(p.payload, Bytes::from_static(b"body"));
    let v5::Packet::Disconnect(d) = read() else {
        panic!("not a DISCONNECT")
    };
    assert_eq!(d.reason_code, v5::DisconnectReasonCode::ServerShuttingDown);
    assert_eq!(
        d.properties.and_then(|p| p.reason_string).as_deref(),
        Some("maintenance")
    );
}

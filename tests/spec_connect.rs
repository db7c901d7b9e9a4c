//! Conformance audit: CONNECT / CONNACK, session present, enhanced authentication and the
//! Will Message (MQTT 3.1.1 §3.1–3.2, MQTT 5.0 §3.1–3.2, §3.15, §4.12).

#[path = "common/audit.rs"]
mod audit;
mod common;

use audit::*;
use bytes::Bytes;
use common::*;
use roost::mqtt::{Auth, Packet, ProtocolVersion, QoS, ReasonCode};

/// Sends raw CONNECT bytes and returns what came back before the broker closed.
async fn raw_connect(broker: &TestBroker, bytes: &[u8]) -> Vec<Packet> {
    let mut client = broker.raw(ProtocolVersion::V3_1_1).await;
    client.send_bytes(bytes).await;
    until_closed(&mut client).await
}

fn no_successful_connack(packets: &[Packet]) {
    for packet in packets {
        if let Packet::ConnAck(c) = packet {
            assert!(c.reason.is_error(), "connection accepted: {c:?}");
        }
    }
}

#[tokio::test]
async fn wrong_protocol_name_is_not_accepted() {
    // MQTT-3.1.2-1: a protocol name other than "MQTT" may be refused (v5: 0x84) or the
    // connection closed; it is never accepted.
    let broker = start().await;
    let packets = raw_connect(
        &broker,
        &[0x10, 12, 0, 4, b'M', b'Q', b'T', b'X', 4, 0x02, 0, 60, 0, 0],
    )
    .await;
    no_successful_connack(&packets);
}

#[tokio::test]
async fn reserved_connect_flag_closes_the_connection() {
    // MQTT-3.1.2-3: the reserved flag must be 0; otherwise the CONNECT is malformed and the
    // connection is closed (MQTT 5.0 §4.13: optionally after CONNACK 0x81).
    let broker = start().await;
    let packets = raw_connect(
        &broker,
        &[0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x03, 0, 60, 0, 0],
    )
    .await;
    no_successful_connack(&packets);
}

#[tokio::test]
async fn v311_session_present_follows_the_stored_session() {
    // 3.1.1 MQTT-3.2.2-1 (Clean Session 1: 0), MQTT-3.2.2-2 (stored session: 1),
    // MQTT-3.2.2-3 (no stored session: 0).
    let broker = start().await;
    let v = ProtocolVersion::V3_1_1;
    let mut c = broker.raw(v).await;
    assert!(!c.connect(persistent(v, "sp3", None)).await.session_present);
    disconnect(&mut c).await;
    let mut c = broker.raw(v).await;
    assert!(c.connect(persistent(v, "sp3", None)).await.session_present);
    disconnect(&mut c).await;
    let mut c = broker.raw(v).await;
    assert!(!c.connect(connect(v, "sp3")).await.session_present);
    disconnect(&mut c).await;
    // The clean session ended at DISCONNECT, so there is nothing to resume.
    let mut c = broker.raw(v).await;
    assert!(!c.connect(persistent(v, "sp3", None)).await.session_present);
}

#[tokio::test]
async fn v5_session_present_follows_the_stored_session() {
    // MQTT-3.2.2-2 (Clean Start 1: Session Present 0) and MQTT-3.2.2-3 (Clean Start 0 with a
    // session: 1; without one: 0).
    let broker = start().await;
    let v = ProtocolVersion::V5;
    let mut c = broker.raw(v).await;
    assert!(
        !c.connect(persistent(v, "sp5", Some(60)))
            .await
            .session_present
    );
    disconnect(&mut c).await;
    let mut c = broker.raw(v).await;
    assert!(
        c.connect(persistent(v, "sp5", Some(60)))
            .await
            .session_present
    );
    disconnect(&mut c).await;
    let mut c = broker.raw(v).await;
    let mut clean = persistent(v, "sp5", Some(60));
    clean.clean_start = true;
    assert!(!c.connect(clean).await.session_present);
}

#[tokio::test]
async fn v311_refused_connack_has_session_present_0() {
    // 3.1.1 MQTT-3.2.2-4: a non-zero return code comes with Session Present 0, even when a
    // session exists for that client (here: an identifier the server rejects, 0x02).
    let broker = start().await;
    let v = ProtocolVersion::V3_1_1;
    let mut c = broker.raw(v).await;
    let connack = c.connect(persistent(v, "", None)).await;
    assert_eq!(connack.reason, ReasonCode::ClientIdentifierNotValid);
    assert!(!connack.session_present);
    assert_eq!(c.recv().await, None, "MQTT-3.2.2-5: closed after refusal");
}

#[tokio::test]
async fn takeover_with_clean_start_0_continues_the_session() {
    // MQTT-3.1.4-3 with MQTT-3.1.2-5: the new connection takes the existing session over
    // (Session Present 1) and its subscriptions keep working.
    let broker = start().await;
    let v = ProtocolVersion::V5;
    let mut first = broker.raw(v).await;
    first.connect(persistent(v, "take", Some(60))).await;
    first.subscribe("take/t", QoS::AtLeastOnce).await;
    let mut second = broker.raw(v).await;
    let connack = second.connect(persistent(v, "take", Some(60))).await;
    assert!(connack.session_present);
    assert_eq!(disconnect_reason(&mut first).await, 0x8E);
    let mut p = broker.connected(v, "take-p").await;
    p.publish(publish("take/t", "x", QoS::AtLeastOnce, Some(1)))
        .await;
    let got = second.recv_publish().await;
    assert_eq!(&got.payload[..], b"x");
}

// ----- enhanced authentication (MQTT 5.0 §4.12) --------------------------------------------

#[tokio::test]
async fn auth_packet_without_authentication_method_is_a_protocol_error() {
    // MQTT 5.0 §4.12 / MQTT-3.15.0: a client that did not give an Authentication Method in
    // CONNECT must not send AUTH; the server treats it as a Protocol Error (DISCONNECT 0x82,
    // MQTT-4.13.2-1).
    let broker = start().await;
    let mut c = broker.connected(ProtocolVersion::V5, "auth-none").await;
    let mut auth = Auth {
        reason: ReasonCode::ReAuthenticate,
        properties: Default::default(),
    };
    auth.properties.authentication_method = Some("SCRAM-SHA-1".into());
    c.send(&Packet::Auth(auth)).await;
    assert_eq!(disconnect_reason(&mut c).await, 0x82);
}

// ----- the Will Message ---------------------------------------------------------------------

#[tokio::test]
async fn will_properties_are_published_with_the_will() {
    // MQTT-3.1.3-10: the order of the will's User Properties is kept; MQTT 5.0 §3.1.3.2: the
    // Payload Format Indicator, Content Type, Response Topic and Correlation Data of the will
    // are sent with it.
    let broker = start().await;
    let mut watcher = broker.connected(ProtocolVersion::V5, "wp-watch").await;
    watcher.subscribe("wp/will", QoS::AtLeastOnce).await;
    let mut c = connect(ProtocolVersion::V5, "wp-dies");
    let mut w = will("wp/will", "gone", QoS::AtLeastOnce, false);
    w.properties.payload_format_indicator = Some(1);
    w.properties.content_type = Some("text/plain".into());
    w.properties.response_topic = Some("wp/reply".into());
    w.properties.correlation_data = Some(Bytes::from_static(b"cd"));
    w.properties.user_properties = vec![
        ("z".into(), "1".into()),
        ("a".into(), "2".into()),
        ("z".into(), "0".into()),
    ];
    c.will = Some(w.clone());
    let mut dies = broker.raw(ProtocolVersion::V5).await;
    dies.connect(c).await;
    drop(dies);
    let got = watcher.recv_publish().await;
    assert_eq!(&got.payload[..], b"gone");
    assert_eq!(got.qos, QoS::AtLeastOnce);
    assert_eq!(got.properties.payload_format_indicator, Some(1));
    assert_eq!(got.properties.content_type.as_deref(), Some("text/plain"));
    assert_eq!(got.properties.response_topic.as_deref(), Some("wp/reply"));
    assert_eq!(
        got.properties.correlation_data,
        w.properties.correlation_data
    );
    assert_eq!(got.properties.user_properties, w.properties.user_properties);
}

#[tokio::test]
async fn will_qos_is_downgraded_to_the_subscription() {
    // MQTT-3.8.4-8: the Will Message is an ordinary Application Message once
    // published, so a QoS 0 subscriber receives the QoS 2 will at QoS 0.
    let broker = start().await;
    let mut watcher = broker.connected(ProtocolVersion::V3_1_1, "wq-watch").await;
    watcher.subscribe("wq/will", QoS::AtMostOnce).await;
    let mut c = connect(ProtocolVersion::V3_1_1, "wq-dies");
    c.will = Some(will("wq/will", "bye", QoS::ExactlyOnce, false));
    let mut dies = broker.raw(ProtocolVersion::V3_1_1).await;
    dies.connect(c).await;
    drop(dies);
    let got = watcher.recv_publish().await;
    assert_eq!(got.qos, QoS::AtMostOnce);
    assert_eq!(got.packet_id, None);
}

#[tokio::test]
async fn will_message_expiry_is_the_publication_expiry() {
    // MQTT 5.0 §3.1.3.2.4: the will's Message Expiry Interval is used as the Publication
    // Expiry Interval when the will is published; a subscriber gets the time left
    // (MQTT-3.3.2-6).
    let broker = start().await;
    let mut watcher = broker.connected(ProtocolVersion::V5, "wx-watch").await;
    watcher.subscribe("wx/will", QoS::AtMostOnce).await;
    let mut c = connect(ProtocolVersion::V5, "wx-dies");
    let mut w = will("wx/will", "gone", QoS::AtMostOnce, false);
    w.properties.message_expiry_interval = Some(120);
    c.will = Some(w);
    let mut dies = broker.raw(ProtocolVersion::V5).await;
    dies.connect(c).await;
    drop(dies);
    let got = watcher.recv_publish().await;
    let left = got
        .properties
        .message_expiry_interval
        .expect("expiry forwarded");
    assert!((118..=120).contains(&left), "{left}");
}

#[tokio::test]
async fn will_topic_with_a_wildcard_is_not_accepted() {
    // MQTT 5.0 §3.1.3.3 / 3.1.1 §3.1.3.2: the Will Topic is a Topic Name, which contains no
    // wildcard characters (MQTT-4.7.0-1 / MQTT-3.3.2-2); the server refuses the CONNECT
    // (v5: CONNACK 0x90 or another error) and closes the connection.
    let broker = start().await;
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let mut c = connect(version, "will-wild");
        c.will = Some(will("a/#", "x", QoS::AtMostOnce, false));
        let mut client = broker.raw(version).await;
        client.send(&Packet::Connect(Box::new(c))).await;
        let packets = until_closed(&mut client).await;
        no_successful_connack(&packets);
    }
}

#[tokio::test]
async fn assigned_client_identifiers_are_unique() {
    // MQTT-3.1.3-6 (3.1.1 and 5.0): a server accepting a zero-length ClientID assigns a
    // unique one, so two such clients do not take each other's session over.
    let broker = start().await;
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let mut a = broker.connected(version, "").await;
        let mut b = broker.connected(version, "").await;
        a.send(&Packet::PingReq).await;
        assert_eq!(
            a.recv().await,
            Some(Packet::PingResp),
            "{version}: first still connected"
        );
        b.send(&Packet::PingReq).await;
        assert_eq!(b.recv().await, Some(Packet::PingResp));
    }
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut c = broker.raw(ProtocolVersion::V5).await;
        let connack = c.connect(connect(ProtocolVersion::V5, "")).await;
        ids.push(
            connack
                .properties
                .assigned_client_identifier
                .expect("MQTT-3.2.2-16"),
        );
    }
    assert_ne!(ids[0], ids[1]);
}

#[tokio::test]
async fn v311_accepts_23_character_alphanumeric_client_ids() {
    // 3.1.1 MQTT-3.1.3-5: ClientIds of 1 to 23 bytes of 0-9a-zA-Z are always allowed.
    let broker = start().await;
    broker
        .connected(ProtocolVersion::V3_1_1, "abcdefghijklmnopqrstuvW")
        .await;
    broker.connected(ProtocolVersion::V3_1_1, "0").await;
}

#[tokio::test]
async fn request_problem_information_0_keeps_reason_strings_off_acks() {
    // MQTT-3.1.2-29: with Request Problem Information 0 the server sends no Reason String
    // or User Properties except on PUBLISH, CONNACK and DISCONNECT; application User
    // Properties still travel on PUBLISH.
    let broker = start().await;
    let mut c = connected_with(&broker, "rpi0", |c| {
        c.properties.request_problem_information = Some(0);
    })
    .await;
    let suback = subscribe_one(&mut c, 1, "rpi/ok", QoS::AtLeastOnce).await;
    assert_eq!(suback.properties.reason_string, None);
    assert!(suback.properties.user_properties.is_empty());
    let mut m = publish("rpi/none", "x", QoS::AtLeastOnce, Some(1));
    m.properties.user_properties = vec![("k".into(), "v".into())];
    c.publish(m.clone()).await;
    match c.recv().await {
        Some(Packet::PubAck(ack)) => {
            assert_eq!(ack.properties.reason_string, None);
            assert!(ack.properties.user_properties.is_empty());
        }
        other => panic!("expected PUBACK, got {other:?}"),
    }
    m.topic = "rpi/ok".into();
    m.packet_id = Some(2);
    c.publish(m).await;
    loop {
        match c.recv().await {
            Some(Packet::Publish(got)) => {
                assert_eq!(
                    got.properties.user_properties,
                    vec![("k".into(), "v".into())]
                );
                break;
            }
            Some(Packet::PubAck(ack)) => assert_eq!(ack.properties.reason_string, None),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn no_response_information_unless_requested() {
    // MQTT-3.1.2-28: with Request Response Information 0 (or absent) the server returns no
    // Response Information; with 1 it may, and the connection is accepted either way.
    let broker = start().await;
    for request in [None, Some(0)] {
        let mut c = connect(ProtocolVersion::V5, "rri");
        c.properties.request_response_information = request;
        let mut client = broker.raw(ProtocolVersion::V5).await;
        let connack = client.connect(c).await;
        assert_eq!(connack.reason.code(), 0);
        assert_eq!(connack.properties.response_information, None, "{request:?}");
        disconnect(&mut client).await;
    }
    let mut c = connect(ProtocolVersion::V5, "rri");
    c.properties.request_response_information = Some(1);
    let mut client = broker.raw(ProtocolVersion::V5).await;
    assert_eq!(client.connect(c).await.reason.code(), 0);
}

/// Encodes packets back to back, as a client writing without waiting for CONNACK does.
fn pipelined(version: ProtocolVersion, packets: &[Packet]) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    for packet in packets {
        roost::mqtt::encode(packet, version, u32::MAX, &mut out).unwrap();
    }
    out.to_vec()
}

#[tokio::test]
async fn packets_sent_before_connack_are_processed_in_order() {
    // MQTT 5.0 §3.1.4 / 3.1.1 §3.1.4: a client may send further packets right after CONNECT
    // without waiting for CONNACK; the server processes them in order once it accepted the
    // connection.
    let broker = start().await;
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let mut client = broker.raw(version).await;
        let bytes = pipelined(
            version,
            &[
                Packet::Connect(Box::new(connect(version, "eager"))),
                Packet::Subscribe(subscribe(1, "eager/t", QoS::AtLeastOnce)),
                Packet::Publish(publish("eager/t", "mine", QoS::AtLeastOnce, Some(2))),
            ],
        );
        client.send_bytes(&bytes).await;
        assert!(matches!(client.recv().await, Some(Packet::ConnAck(c)) if c.reason.code() == 0));
        let mut got_suback = false;
        let mut got_puback = false;
        let mut got_publish = false;
        while !(got_suback && got_puback && got_publish) {
            match client.recv().await {
                Some(Packet::SubAck(_)) => {
                    assert!(!got_publish, "{version}: SUBACK before the message");
                    got_suback = true;
                }
                Some(Packet::PubAck(ack)) => {
                    assert_eq!(ack.packet_id, 2);
                    got_puback = true;
                }
                Some(Packet::Publish(p)) => {
                    assert_eq!(&p.payload[..], b"mine");
                    client.puback(p.packet_id.unwrap()).await;
                    got_publish = true;
                }
                other => panic!("{version}: unexpected {other:?}"),
            }
        }
        disconnect(&mut client).await;
    }
}

#[tokio::test]
async fn packets_after_a_refused_connect_are_not_processed() {
    // MQTT-3.1.4-5 (5.0) / MQTT-3.2.2-5 (3.1.1): once the server refuses the CONNECT it
    // processes nothing the client sent after it: here a retained PUBLISH that would
    // otherwise be stored.
    let broker = start().await;
    let version = ProtocolVersion::V3_1_1;
    let mut refused = broker.raw(version).await;
    let mut retained = publish("refused/r", "must not exist", QoS::AtMostOnce, None);
    retained.retain = true;
    let bytes = pipelined(
        version,
        &[
            // An empty ClientID with Clean Session 0 is refused with 0x02 (MQTT-3.1.3-8).
            Packet::Connect(Box::new(persistent(version, "", None))),
            Packet::Publish(retained),
        ],
    );
    refused.send_bytes(&bytes).await;
    let packets = until_closed(&mut refused).await;
    no_successful_connack(&packets);
    let mut sub = broker.connected(version, "refused-check").await;
    sub.subscribe("refused/#", QoS::AtMostOnce).await;
    sub.expect_silence(QUIET).await;
}

#[tokio::test]
async fn will_is_published_when_keep_alive_runs_out() {
    // MQTT-3.1.2-8 with 3.1.1 §3.1.2.5 / MQTT 5.0 §3.1.2.5: a client that stops
    // communicating within the Keep Alive time has its will published.
    let broker = start().await;
    let mut watcher = broker.connected(ProtocolVersion::V3_1_1, "ka-watch").await;
    watcher.subscribe("ka/will", QoS::AtMostOnce).await;
    let mut c = connect(ProtocolVersion::V3_1_1, "ka-silent");
    c.keep_alive = 1;
    c.will = Some(will("ka/will", "timed out", QoS::AtMostOnce, false));
    let mut silent = broker.raw(ProtocolVersion::V3_1_1).await;
    silent.connect(c).await;
    let got = watcher.recv_publish().await;
    assert_eq!(&got.payload[..], b"timed out");
    assert_eq!(silent.recv().await, None, "closed without DISCONNECT");
}

#[tokio::test]
async fn unsupported_authentication_method_is_refused() {
    // MQTT-4.12.0-1: a server that does not support the Authentication Method MAY send
    // CONNACK 0x8C (Bad authentication method) or 0x87 (Not authorized) and MUST close
    // the Network Connection. roost offers no enhanced authentication.
    let broker = start().await;
    let mut c = connect(ProtocolVersion::V5, "auth-method");
    c.properties.authentication_method = Some("SCRAM-SHA-256".into());
    c.properties.authentication_data = Some(Bytes::from_static(b"client-first"));
    let mut client = broker.raw(ProtocolVersion::V5).await;
    client.send(&Packet::Connect(Box::new(c))).await;
    // roost answers 0x8C, so that the client learns which of the two it is.
    match client.recv().await {
        Some(Packet::ConnAck(connack)) => {
            assert_eq!(
                connack.reason.code(),
                0x8C,
                "accepted or refused wrongly: {connack:?}"
            );
            assert!(!connack.session_present);
            assert_eq!(client.recv().await, None, "closed after the refusal");
        }
        other => panic!("expected CONNACK 0x8C, got {other:?}"),
    }
}

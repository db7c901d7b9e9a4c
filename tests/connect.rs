//! CONNECT and CONNACK (MQTT 3.1.1 §3.1–3.2, MQTT 5.0 §3.1–3.2).

mod common;

use std::time::Duration;

use common::*;
use roost::mqtt::{Packet, ProtocolVersion, QoS, ReasonCode};

#[tokio::test]
async fn v5_connack_announces_limits_and_features() {
    let broker = start_with(|c| {
        c.limits.max_inflight = 20;
        c.limits.max_packet_size = 4096;
        c.limits.max_topic_aliases = 7;
    })
    .await;
    let mut client = broker.raw(ProtocolVersion::V5).await;
    let connack = client.connect(connect(ProtocolVersion::V5, "props")).await;
    assert_eq!(connack.reason, ReasonCode::Success);
    assert!(!connack.session_present);
    let p = &connack.properties;
    assert_eq!(p.receive_maximum, Some(20));
    assert_eq!(p.maximum_packet_size, Some(4096));
    assert_eq!(p.topic_alias_maximum, Some(7));
    // Features roost offers are left out: absent means available (Retain Available,
    // Wildcard Subscription Available, Subscription Identifiers Available and Shared
    // Subscription Available default to 1, Maximum QoS to 2; MQTT 5.0 §3.2.2.3), which
    // keeps the CONNACK within a small client Maximum Packet Size.
    assert_eq!(p.retain_available, None);
    assert_eq!(p.wildcard_subscription_available, None);
    assert_eq!(p.subscription_identifier_available, None);
    assert_eq!(p.shared_subscription_available, None);
    assert_eq!(p.maximum_qos, None);
    // The client chose its id: nothing assigned.
    assert_eq!(p.assigned_client_identifier, None);
    assert_eq!(p.server_keep_alive, None);
}

#[tokio::test]
async fn v5_connack_leaves_out_limits_equal_to_their_defaults() {
    // MQTT 5.0 §3.2.2.3.3 / §3.2.2.3.6 / §3.2.2.3.8: absent Receive Maximum means 65,535,
    // absent Maximum Packet Size no limit beyond the protocol's, absent Topic Alias
    // Maximum 0.
    let broker = start_with(|c| {
        c.limits.max_inflight = u16::MAX;
        c.limits.max_packet_size = 268_435_460;
        c.limits.max_topic_aliases = 0;
    })
    .await;
    let mut client = broker.raw(ProtocolVersion::V5).await;
    let connack = client
        .connect(connect(ProtocolVersion::V5, "defaults"))
        .await;
    assert_eq!(connack.reason, ReasonCode::Success);
    assert_eq!(connack.properties, Default::default());
}

#[tokio::test]
async fn v5_empty_client_id_gets_an_assigned_identifier() {
    // MQTT-3.1.3-6 / MQTT-3.2.2-16: the assigned id is returned in CONNACK.
    let broker = start().await;
    let mut client = broker.raw(ProtocolVersion::V5).await;
    let connack = client.connect(connect(ProtocolVersion::V5, "")).await;
    assert_eq!(connack.reason, ReasonCode::Success);
    let assigned = connack
        .properties
        .assigned_client_identifier
        .expect("assigned id");
    assert!(!assigned.is_empty());
    let clients = broker.handle.clients().await;
    assert!(clients.iter().any(|c| &*c.client_id == assigned.as_str()));
}

#[tokio::test]
async fn v311_empty_client_id_needs_clean_session() {
    let broker = start().await;
    // Clean session: accepted (MQTT-3.1.3-6).
    let mut clean = broker.raw(ProtocolVersion::V3_1_1).await;
    let connack = clean.connect(connect(ProtocolVersion::V3_1_1, "")).await;
    assert_eq!(connack.reason, ReasonCode::Success);
    // Persistent session with an empty id: return code 0x02 and close (MQTT-3.1.3-8).
    let mut client = broker.raw(ProtocolVersion::V3_1_1).await;
    let mut request = connect(ProtocolVersion::V3_1_1, "");
    request.clean_start = false;
    let connack = client.connect(request).await;
    assert_eq!(connack.reason.to_v3_connack_code(), 0x02);
    assert!(client.recv().await.is_none(), "connection closed");
}

#[tokio::test]
async fn unsupported_protocol_level_gets_0x01_and_close() {
    // MQTT-3.1.2-2: CONNACK return code 0x01, then close.
    let broker = start().await;
    let mut client = broker.raw(ProtocolVersion::V3_1_1).await;
    // CONNECT, protocol name "MQTT", level 9, clean session, keep alive 30, client id "x".
    client
        .send_bytes(&[
            0x10, 0x0D, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x09, 0x02, 0x00, 0x1E, 0x00, 0x01,
            b'x',
        ])
        .await;
    let mut reply = [0u8; 4];
    tokio::io::AsyncReadExt::read_exact(&mut client.stream, &mut reply)
        .await
        .unwrap();
    assert_eq!(reply, [0x20, 0x02, 0x00, 0x01]);
    assert!(client.recv().await.is_none());
}

#[tokio::test]
async fn first_packet_must_be_connect() {
    // MQTT-3.1.0-1: anything else first closes the connection.
    let broker = start().await;
    let mut client = broker.raw(ProtocolVersion::V3_1_1).await;
    client.send(&Packet::PingReq).await;
    assert!(client.recv().await.is_none());
}

#[tokio::test]
async fn second_connect_is_a_protocol_error() {
    // MQTT-3.1.0-2: a second CONNECT is a protocol violation; v5 gets DISCONNECT 0x82.
    let broker = start().await;
    let mut client = broker.connected(ProtocolVersion::V5, "twice").await;
    client
        .send(&Packet::Connect(Box::new(connect(
            ProtocolVersion::V5,
            "twice",
        ))))
        .await;
    let disconnect = client.expect_disconnect().await.expect("DISCONNECT");
    assert_eq!(disconnect.reason, ReasonCode::ProtocolError);
}

#[tokio::test]
async fn session_takeover_closes_the_old_connection() {
    // MQTT-3.1.4-3: the existing client is disconnected, v5 with reason 0x8E.
    let broker = start().await;
    let mut old = broker.connected(ProtocolVersion::V5, "same").await;
    let mut new = broker.connected(ProtocolVersion::V5, "same").await;
    let disconnect = old.expect_disconnect().await.expect("DISCONNECT");
    assert_eq!(disconnect.reason, ReasonCode::SessionTakenOver);
    // The new connection works.
    new.send(&Packet::PingReq).await;
    assert_eq!(new.recv().await, Some(Packet::PingResp));
    assert_eq!(broker.handle.clients().await.len(), 1);
}

#[tokio::test]
async fn v311_takeover_closes_without_disconnect() {
    let broker = start().await;
    let mut old = broker.connected(ProtocolVersion::V3_1_1, "same311").await;
    let _new = broker.connected(ProtocolVersion::V3_1_1, "same311").await;
    assert!(old.expect_disconnect().await.is_none());
}

#[tokio::test]
async fn silent_socket_is_closed_after_connect_timeout() {
    let broker = start_with(|c| c.limits.connect_timeout_secs = 1).await;
    // From before the socket opens: the broker's timer cannot have started earlier.
    let started = std::time::Instant::now();
    let mut client = broker.raw(ProtocolVersion::V3_1_1).await;
    assert_eq!(client.recv_within(DEADLINE).await, Some(None));
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn v5_keep_alive_above_maximum_is_lowered() {
    // MQTT-3.2.2-21: the client must use the Server Keep Alive the broker returns.
    let broker = start_with(|c| c.limits.max_keep_alive_secs = 20).await;
    let mut client = broker.raw(ProtocolVersion::V5).await;
    let mut request = connect(ProtocolVersion::V5, "ka");
    request.keep_alive = 600;
    let connack = client.connect(request).await;
    assert_eq!(connack.properties.server_keep_alive, Some(20));
    let clients = broker.handle.clients().await;
    assert_eq!(clients[0].keep_alive_secs, 20);
}

#[tokio::test]
async fn rumqttc_v311_and_v5_clients_exchange_messages() {
    let broker = start().await;
    let mut sub = v4::spawn(v4::options(broker.addr, "sub311")).await;
    sub.client
        .subscribe("greet/#", rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    sub.suback().await;
    let v5sub = v5::spawn(v5::options(broker.addr, "sub5")).await;
    let mut v5sub = v5sub;
    v5sub
        .client
        .subscribe("greet/+", rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
        .await
        .unwrap();
    v5sub.suback().await;
    let pubr = v4::spawn(v4::options(broker.addr, "pub311")).await;
    pubr.client
        .publish("greet/world", rumqttc::QoS::AtLeastOnce, false, "hello")
        .await
        .unwrap();
    let got = sub.next_publish().await;
    assert_eq!(&got.topic, "greet/world");
    assert_eq!(&got.payload[..], b"hello");
    let got5 = v5sub.next_publish().await;
    assert_eq!(&got5.topic[..], b"greet/world");
    assert_eq!(&got5.payload[..], b"hello");
}

#[tokio::test]
async fn mqtt_3_1_clients_are_served() {
    // Protocol name "MQIsdp", level 3.
    let broker = start().await;
    let mut client = broker.raw(ProtocolVersion::V3_1).await;
    let connack = client
        .connect(connect(ProtocolVersion::V3_1, "old-timer"))
        .await;
    assert_eq!(connack.reason, ReasonCode::Success);
    client.subscribe("legacy", QoS::AtLeastOnce).await;
    client
        .publish(publish("legacy", "still works", QoS::AtLeastOnce, Some(5)))
        .await;
    let mut got_publish = false;
    let mut got_ack = false;
    while !(got_publish && got_ack) {
        match client.recv().await {
            Some(Packet::Publish(p)) => {
                assert_eq!(&p.payload[..], b"still works");
                client.puback(p.packet_id.unwrap()).await;
                got_publish = true;
            }
            Some(Packet::PubAck(ack)) => {
                assert_eq!(ack.packet_id, 5);
                got_ack = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

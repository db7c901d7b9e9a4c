//! Malformed packets and protocol errors: the broker closes that one connection, with the
//! right v5 reason code (MQTT 5.0 §4.13), keeps serving the others and never panics.

mod common;

use common::*;
use roost::mqtt::{Packet, ProtocolVersion, QoS, ReasonCode};

/// Sends `bytes` after a v5 CONNECT and returns the reason of the DISCONNECT the broker
/// sends before closing; then checks that another client is still served.
async fn reason_for(broker: &TestBroker, bytes: &[u8]) -> ReasonCode {
    let mut client = broker.connected(ProtocolVersion::V5, "culprit").await;
    client.send_bytes(bytes).await;
    let disconnect = client
        .expect_disconnect()
        .await
        .expect("DISCONNECT before close");
    still_serving(broker).await;
    disconnect.reason
}

async fn still_serving(broker: &TestBroker) {
    let mut healthy = broker.connected(ProtocolVersion::V5, "healthy").await;
    healthy.subscribe("ok", QoS::AtMostOnce).await;
    healthy
        .publish(publish("ok", "fine", QoS::AtMostOnce, None))
        .await;
    assert_eq!(&healthy.recv_publish().await.payload[..], b"fine");
}

#[tokio::test]
async fn reserved_packet_type_is_malformed() {
    // MQTT 5.0 §2.1.2: packet type 0 is reserved.
    let broker = start().await;
    assert_eq!(
        reason_for(&broker, &[0x00, 0x00]).await,
        ReasonCode::MalformedPacket
    );
}

#[tokio::test]
async fn five_byte_remaining_length_is_malformed() {
    // MQTT 5.0 §1.5.5: at most four bytes.
    let broker = start().await;
    let bytes = [0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F];
    assert_eq!(
        reason_for(&broker, &bytes).await,
        ReasonCode::MalformedPacket
    );
}

#[tokio::test]
async fn publish_with_qos_3_is_malformed() {
    // MQTT-3.3.1-4.
    let broker = start().await;
    let bytes = [0x36, 0x06, 0x00, 0x01, b't', 0x00, 0x01, 0x00];
    assert_eq!(
        reason_for(&broker, &bytes).await,
        ReasonCode::MalformedPacket
    );
}

#[tokio::test]
async fn wrong_fixed_header_flags_are_malformed() {
    // MQTT-2.1.3-1 / MQTT 5.0 §2.1.3: PUBREL must carry flags 0b0010.
    let broker = start().await;
    let bytes = [0x60, 0x02, 0x00, 0x01];
    assert_eq!(
        reason_for(&broker, &bytes).await,
        ReasonCode::MalformedPacket
    );
}

#[tokio::test]
async fn wildcard_in_topic_name_is_refused() {
    // MQTT-3.3.2-2: no wildcards in a topic name.
    let broker = start().await;
    // PUBLISH QoS 0, topic "a/+", no properties, payload "x".
    let bytes = [0x30, 0x07, 0x00, 0x03, b'a', b'/', b'+', 0x00, b'x'];
    let reason = reason_for(&broker, &bytes).await;
    assert!(
        matches!(
            reason,
            ReasonCode::TopicNameInvalid | ReasonCode::MalformedPacket
        ),
        "{reason:?}"
    );
}

#[tokio::test]
async fn invalid_utf8_topic_is_malformed() {
    // MQTT-1.5.4-1.
    let broker = start().await;
    let bytes = [0x30, 0x05, 0x00, 0x02, 0xC3, 0x28, 0x00];
    assert_eq!(
        reason_for(&broker, &bytes).await,
        ReasonCode::MalformedPacket
    );
}

#[tokio::test]
async fn invalid_topic_filter_closes_the_connection() {
    // MQTT-4.7.1-1: `#` must be last.
    let broker = start().await;
    // SUBSCRIBE id 1, no properties, filter "a/#/b", options QoS 0.
    let bytes = [
        0x82, 0x0A, 0x00, 0x01, 0x00, 0x00, 0x05, b'a', b'/', b'#', b'/', b'b', 0x00,
    ];
    let reason = reason_for(&broker, &bytes).await;
    assert!(
        matches!(
            reason,
            ReasonCode::MalformedPacket | ReasonCode::TopicFilterInvalid
        ),
        "{reason:?}"
    );
}

#[tokio::test]
async fn packet_larger_than_maximum_gets_0x95() {
    // MQTT 5.0 §3.1.2.11.4 / §4.13: Packet too large.
    let broker = start_with(|c| c.limits.max_packet_size = 128).await;
    let mut client = broker.connected(ProtocolVersion::V5, "big").await;
    let big = "x".repeat(500);
    client
        .publish(publish("t", &big, QoS::AtMostOnce, None))
        .await;
    let d = client.expect_disconnect().await.expect("DISCONNECT");
    assert_eq!(d.reason, ReasonCode::PacketTooLarge);
    still_serving(&broker).await;
}

#[tokio::test]
async fn subscription_identifier_from_client_publish_is_a_protocol_error() {
    // MQTT-3.3.4-6: a PUBLISH from a client must not carry a Subscription Identifier.
    let broker = start().await;
    let mut client = broker.connected(ProtocolVersion::V5, "subid").await;
    let mut p = publish("t", "x", QoS::AtMostOnce, None);
    p.properties.subscription_identifiers = vec![3];
    client.publish(p).await;
    let d = client.expect_disconnect().await.expect("DISCONNECT");
    assert!(
        matches!(
            d.reason,
            ReasonCode::ProtocolError | ReasonCode::MalformedPacket
        ),
        "{:?}",
        d.reason
    );
}

#[tokio::test]
async fn v311_malformed_packet_closes_without_disconnect() {
    // MQTT 3.1.1 §4.8: close the connection; there is no DISCONNECT from the server.
    let broker = start().await;
    let mut client = broker.connected(ProtocolVersion::V3_1_1, "old").await;
    client.send_bytes(&[0x00, 0x00]).await;
    assert!(client.expect_disconnect().await.is_none());
    still_serving(&broker).await;
}

#[tokio::test]
async fn garbage_from_many_sockets_never_hurts_the_broker() {
    let broker = start().await;
    let mut seed: u32 = 0x1234_5678;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    for round in 0..60 {
        let mut client = RawClient::open(broker.addr, ProtocolVersion::V5).await;
        if round % 2 == 0 {
            client
                .send(&Packet::Connect(Box::new(connect(
                    ProtocolVersion::V5,
                    "fuzz",
                ))))
                .await;
        }
        let len = (next() % 64) as usize + 1;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        client.send_bytes(&bytes).await;
        drop(client);
    }
    still_serving(&broker).await;
}

#[tokio::test]
async fn malformed_v5_connect_gets_a_connack_with_the_reason() {
    // MQTT 5.0 §3.1.4: the server may answer a bad CONNECT with CONNACK >= 0x80, then
    // must close. Here the reserved flag bit 0 of the connect flags is set (MQTT-3.1.2-3).
    let broker = start().await;
    let mut client = broker.raw(ProtocolVersion::V5).await;
    client
        .send_bytes(&[
            0x10, 0x0E, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x03, 0x00, 0x1E, 0x00, 0x00,
            0x01, b'x',
        ])
        .await;
    match client.recv().await {
        Some(Packet::ConnAck(connack)) => assert_eq!(connack.reason, ReasonCode::MalformedPacket),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    assert!(client.recv().await.is_none());
    still_serving(&broker).await;
}

//! MQTT 5.0 properties carried through, and the client's Maximum Packet Size.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use roost::mqtt::{ProtocolVersion, QoS, ReasonCode};

#[tokio::test]
async fn application_properties_pass_through_unchanged() {
    // MQTT-3.3.2-15 (payload format), -16..-17 (response topic, correlation data),
    // -18 (user properties, order kept), -20 (content type).
    let broker = start().await;
    let mut sub = broker.connected(ProtocolVersion::V5, "props-sub").await;
    sub.subscribe("req", QoS::AtMostOnce).await;
    let mut p = broker.connected(ProtocolVersion::V5, "props-pub").await;
    let mut m = publish("req", "{}", QoS::AtMostOnce, None);
    m.properties.payload_format_indicator = Some(1);
    m.properties.content_type = Some("application/json".into());
    m.properties.response_topic = Some("reply/here".into());
    m.properties.correlation_data = Some(Bytes::from_static(b"\x01\x02"));
    m.properties.user_properties = vec![
        ("b".into(), "2".into()),
        ("a".into(), "1".into()),
        ("b".into(), "3".into()),
    ];
    p.publish(m.clone()).await;
    let got = sub.recv_publish().await;
    assert_eq!(got.properties.payload_format_indicator, Some(1));
    assert_eq!(
        got.properties.content_type.as_deref(),
        Some("application/json")
    );
    assert_eq!(got.properties.response_topic.as_deref(), Some("reply/here"));
    assert_eq!(
        got.properties.correlation_data,
        m.properties.correlation_data
    );
    assert_eq!(got.properties.user_properties, m.properties.user_properties);
}

#[tokio::test]
async fn messages_above_the_clients_maximum_packet_size_are_skipped() {
    // MQTT-3.1.2-25: discard, and behave as if sent (the QoS 1 window is not blocked).
    let broker = start().await;
    let mut sub = broker.raw(ProtocolVersion::V5).await;
    let mut c = connect(ProtocolVersion::V5, "tiny");
    c.properties.maximum_packet_size = Some(64);
    c.properties.receive_maximum = Some(1);
    sub.connect(c).await;
    sub.subscribe("sz", QoS::AtLeastOnce).await;
    let mut p = broker.connected(ProtocolVersion::V5, "sz-pub").await;
    p.publish(publish("sz", &"x".repeat(200), QoS::AtLeastOnce, Some(1)))
        .await;
    p.publish(publish("sz", "small", QoS::AtLeastOnce, Some(2)))
        .await;
    let got = sub.recv_publish().await;
    assert_eq!(&got.payload[..], b"small");
    sub.puback(got.packet_id.unwrap()).await;
    sub.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn administrative_disconnect_sends_0x98() {
    // MQTT 5.0 §3.14.2.1: 0x98 Administrative action.
    let broker = start().await;
    let mut client = broker.connected(ProtocolVersion::V5, "kicked").await;
    assert!(broker.handle.disconnect_client("kicked").await);
    let d = client.expect_disconnect().await.expect("DISCONNECT");
    assert_eq!(d.reason, ReasonCode::AdministrativeAction);
    assert!(!broker.handle.disconnect_client("kicked").await);
}

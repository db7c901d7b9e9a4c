//! Retained messages (MQTT 5.0 §3.3.1.3, §3.8.3.1 Retain Handling).

mod common;

use std::time::Duration;

use common::*;
use roost::mqtt::{Packet, ProtocolVersion, QoS, RetainHandling};

fn retained(topic: &str, payload: &str, qos: QoS, id: Option<u16>) -> roost::mqtt::Publish {
    let mut p = publish(topic, payload, qos, id);
    p.retain = true;
    p
}

#[tokio::test]
async fn retained_message_is_delivered_on_subscribe_with_retain_flag() {
    // MQTT-3.3.1-5 (stored), MQTT-3.3.1-8 (sent with RETAIN=1 on subscribe).
    let broker = start().await;
    let mut p = broker.connected(ProtocolVersion::V3_1_1, "rp").await;
    p.publish(retained("status/door", "open", QoS::AtLeastOnce, Some(1)))
        .await;
    p.recv().await;
    let mut sub = broker.connected(ProtocolVersion::V3_1_1, "rs").await;
    sub.subscribe("status/+", QoS::AtLeastOnce).await;
    let got = sub.recv_publish().await;
    assert!(got.retain);
    assert_eq!(&got.payload[..], b"open");
    assert_eq!(broker.handle.stats().messages_retained, 1);
}

#[tokio::test]
async fn newer_retained_message_replaces_and_empty_payload_clears() {
    // MQTT-3.3.1-5 (replace), MQTT-3.3.1-6/-7 (empty payload clears, is not stored).
    let broker = start().await;
    let mut p = broker.connected(ProtocolVersion::V3_1_1, "rp2").await;
    p.publish(retained("r/t", "first", QoS::AtMostOnce, None))
        .await;
    p.publish(retained("r/t", "second", QoS::AtMostOnce, None))
        .await;
    p.sync().await;
    let mut sub = broker.connected(ProtocolVersion::V3_1_1, "rs2").await;
    sub.subscribe("r/t", QoS::AtMostOnce).await;
    assert_eq!(&sub.recv_publish().await.payload[..], b"second");
    p.publish(retained("r/t", "", QoS::AtMostOnce, None)).await;
    // The clearing message itself is still forwarded to current subscribers.
    assert!(sub.recv_publish().await.payload.is_empty());
    let mut late = broker.connected(ProtocolVersion::V3_1_1, "rs3").await;
    late.subscribe("r/t", QoS::AtMostOnce).await;
    late.expect_nothing(Duration::from_millis(300)).await;
    assert_eq!(broker.handle.stats().messages_retained, 0);
}

#[tokio::test]
async fn live_messages_have_retain_cleared_unless_retain_as_published() {
    // MQTT-3.3.1-12 (cleared), MQTT-3.3.1-13 (kept with Retain As Published).
    let broker = start().await;
    let mut plain = broker.connected(ProtocolVersion::V5, "plain").await;
    plain.subscribe("live", QoS::AtMostOnce).await;
    let mut rap = broker.connected(ProtocolVersion::V5, "rap").await;
    let mut s = subscribe(1, "live", QoS::AtMostOnce);
    s.filters[0].options.retain_as_published = true;
    rap.send(&Packet::Subscribe(s)).await;
    rap.recv().await;
    let mut p = broker.connected(ProtocolVersion::V5, "lp").await;
    p.publish(retained("live", "x", QoS::AtMostOnce, None))
        .await;
    assert!(!plain.recv_publish().await.retain);
    assert!(rap.recv_publish().await.retain);
}

#[tokio::test]
async fn retain_handling_options() {
    // MQTT-3.3.1-9 (0: send), MQTT-3.3.1-10 (1: only for a new subscription),
    // MQTT-3.3.1-11 (2: never).
    let broker = start().await;
    let mut p = broker.connected(ProtocolVersion::V5, "rhp").await;
    p.publish(retained("rh", "kept", QoS::AtMostOnce, None))
        .await;
    p.sync().await;
    let mut sub = broker.connected(ProtocolVersion::V5, "rhs").await;
    let with = |handling| {
        let mut s = subscribe(1, "rh", QoS::AtMostOnce);
        s.filters[0].options.retain_handling = handling;
        Packet::Subscribe(s)
    };
    sub.send(&with(RetainHandling::SendIfNew)).await;
    sub.recv().await; // SUBACK
    assert_eq!(&sub.recv_publish().await.payload[..], b"kept");
    sub.send(&with(RetainHandling::SendIfNew)).await;
    sub.recv().await;
    sub.expect_nothing(Duration::from_millis(200)).await;
    sub.send(&with(RetainHandling::SendOnSubscribe)).await;
    sub.recv().await;
    assert_eq!(&sub.recv_publish().await.payload[..], b"kept");
    let mut other = broker.connected(ProtocolVersion::V5, "rhn").await;
    other.send(&with(RetainHandling::DoNotSend)).await;
    other.recv().await;
    other.expect_nothing(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn rumqttc_retained_round_trip() {
    let broker = start().await;
    let mut p = v4::spawn(v4::options(broker.addr, "rr-p")).await;
    p.client
        .publish("rr/a", rumqttc::QoS::AtLeastOnce, true, "kept")
        .await
        .unwrap();
    p.puback().await;
    let mut s = v4::spawn(v4::options(broker.addr, "rr-s")).await;
    s.client
        .subscribe("rr/#", rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    let got = s.next_publish().await;
    assert!(got.retain);
    assert_eq!(&got.payload[..], b"kept");
}

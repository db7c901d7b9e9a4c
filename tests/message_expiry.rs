//! Message Expiry Interval (MQTT 5.0 §3.3.2.3.3).

mod common;

use std::time::Duration;

use common::*;
use roost::mqtt::{Connect, Disconnect, Packet, ProtocolVersion, QoS, ReasonCode};

fn persistent(id: &str) -> Connect {
    let mut c = connect(ProtocolVersion::V5, id);
    c.clean_start = false;
    c.properties.session_expiry_interval = Some(60);
    c
}

fn expiring(topic: &str, payload: &str, secs: u32, retain: bool) -> roost::mqtt::Publish {
    let mut p = publish(topic, payload, QoS::AtLeastOnce, Some(1));
    p.properties.message_expiry_interval = Some(secs);
    p.retain = retain;
    p
}

async fn go_offline(broker: &TestBroker, id: &str, filter: &str) {
    let mut sub = broker.raw(ProtocolVersion::V5).await;
    sub.connect(persistent(id)).await;
    sub.subscribe(filter, QoS::AtLeastOnce).await;
    sub.send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
        .await;
    assert!(sub.recv().await.is_none());
    // Messages published from here on must find the session offline, not the closing link.
    broker.wait_offline(id).await;
}

#[tokio::test]
async fn expired_queued_messages_are_not_delivered() {
    // MQTT-3.3.2-5: once expired, the message is not sent to the subscriber.
    let broker = start().await;
    go_offline(&broker, "exp-sub", "exp/#").await;
    let mut p = broker.connected(ProtocolVersion::V5, "exp-pub").await;
    p.publish(expiring("exp/a", "short", 1, false)).await;
    p.recv().await;
    let mut keep = expiring("exp/b", "long", 60, false);
    keep.packet_id = Some(2);
    p.publish(keep).await;
    p.recv().await;
    // Timer logic: well past the 1 s interval, however slowly the machine runs.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut sub = broker.raw(ProtocolVersion::V5).await;
    sub.connect(persistent("exp-sub")).await;
    let got = sub.recv_publish().await;
    assert_eq!(&got.payload[..], b"long");
    sub.puback(got.packet_id.unwrap()).await;
    sub.expect_nothing(Duration::from_millis(200)).await;
    assert!(broker.handle.stats().messages_dropped >= 1);
}

#[tokio::test]
async fn forwarded_expiry_is_the_time_left() {
    // MQTT-3.3.2-6: the interval sent is the received value minus the time waited.
    let broker = start().await;
    go_offline(&broker, "left-sub", "left").await;
    let mut p = broker.connected(ProtocolVersion::V5, "left-pub").await;
    let published = std::time::Instant::now();
    p.publish(expiring("left", "x", 60, false)).await;
    p.recv().await;
    // Timer logic: the message waits at least 2 s; a slow machine only makes it wait longer.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut sub = broker.raw(ProtocolVersion::V5).await;
    sub.connect(persistent("left-sub")).await;
    let got = sub.recv_publish().await;
    let waited = published.elapsed().as_secs_f64();
    let left = got
        .properties
        .message_expiry_interval
        .expect("expiry forwarded");
    // At least the 2 s slept are gone; at most what this test measured (plus a second of
    // rounding) is.
    let least = 60 - waited.ceil() as u32 - 1;
    assert!(
        (least..=58).contains(&left),
        "{left} s left after {waited:.2} s"
    );
}

#[tokio::test]
async fn expired_retained_message_is_dropped() {
    // MQTT-3.3.2-5 for the retained store.
    let broker = start().await;
    let mut p = broker.connected(ProtocolVersion::V5, "ret-pub").await;
    let published = std::time::Instant::now();
    // 4 s: long enough for `early` to subscribe on a loaded machine.
    p.publish(expiring("ret/exp", "soon gone", 4, true)).await;
    p.recv().await;
    let mut early = broker.connected(ProtocolVersion::V5, "early").await;
    early.subscribe("ret/exp", QoS::AtMostOnce).await;
    assert_eq!(&early.recv_publish().await.payload[..], b"soon gone");
    // Timer logic: well past the 4 s interval.
    tokio::time::sleep(Duration::from_millis(5500).saturating_sub(published.elapsed())).await;
    let mut late = broker.connected(ProtocolVersion::V5, "late").await;
    late.subscribe("ret/exp", QoS::AtMostOnce).await;
    late.expect_nothing(Duration::from_millis(300)).await;
}

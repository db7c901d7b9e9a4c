//! Will messages (MQTT 3.1.1 §3.1.2.5, MQTT 5.0 §3.1.2.5, §3.1.3.2).

mod common;

use std::time::Duration;

use common::*;
use roost::mqtt::{Disconnect, Packet, ProtocolVersion, QoS, ReasonCode};

async fn watcher(broker: &TestBroker, id: &str) -> RawClient {
    let mut w = broker.connected(ProtocolVersion::V5, id).await;
    w.subscribe("will/#", QoS::AtLeastOnce).await;
    w
}

#[tokio::test]
async fn will_is_published_when_the_connection_drops() {
    // MQTT-3.1.2-8: published when the connection closes without DISCONNECT.
    let broker = start().await;
    let mut watch = watcher(&broker, "w1").await;
    let mut client = broker.raw(ProtocolVersion::V3_1_1).await;
    let mut c = connect(ProtocolVersion::V3_1_1, "dies");
    c.will = Some(will("will/dies", "gone", QoS::AtLeastOnce, false));
    client.connect(c).await;
    drop(client);
    let got = watch.recv_publish().await;
    assert_eq!(&*got.topic, "will/dies");
    assert_eq!(&got.payload[..], b"gone");
    assert_eq!(got.qos, QoS::AtLeastOnce);
}

#[tokio::test]
async fn will_is_not_published_after_normal_disconnect() {
    // MQTT-3.1.2-10 / MQTT-3.14.4-3: DISCONNECT deletes the will.
    let broker = start().await;
    let mut watch = watcher(&broker, "w2").await;
    let mut client = broker.raw(ProtocolVersion::V3_1_1).await;
    let mut c = connect(ProtocolVersion::V3_1_1, "polite");
    c.will = Some(will("will/polite", "gone", QoS::AtMostOnce, false));
    client.connect(c).await;
    client
        .send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
        .await;
    assert!(client.recv().await.is_none(), "closed after DISCONNECT");
    broker.wait_offline("polite").await;
    watch.expect_nothing(Duration::from_millis(400)).await;
}

#[tokio::test]
async fn v5_disconnect_with_will_message_publishes_it() {
    // MQTT 5.0 §3.14.2.1: reason 0x04 asks for the will.
    let broker = start().await;
    let mut watch = watcher(&broker, "w3").await;
    let mut client = broker.raw(ProtocolVersion::V5).await;
    let mut c = connect(ProtocolVersion::V5, "asks");
    c.will = Some(will("will/asks", "please", QoS::AtMostOnce, false));
    client.connect(c).await;
    client
        .send(&Packet::Disconnect(Disconnect::new(
            ReasonCode::DisconnectWithWillMessage,
        )))
        .await;
    assert_eq!(&watch.recv_publish().await.payload[..], b"please");
}

#[tokio::test]
async fn will_is_published_on_protocol_error() {
    let broker = start().await;
    let mut watch = watcher(&broker, "w4").await;
    let mut client = broker.raw(ProtocolVersion::V5).await;
    let mut c = connect(ProtocolVersion::V5, "bad");
    c.will = Some(will("will/bad", "broken", QoS::AtMostOnce, false));
    client.connect(c).await;
    // Packet type 0 is reserved: malformed (MQTT 5.0 §2.1.2).
    client.send_bytes(&[0x00, 0x00]).await;
    assert_eq!(&watch.recv_publish().await.payload[..], b"broken");
}

#[tokio::test]
async fn will_retain_sets_the_retained_message() {
    let broker = start().await;
    let mut client = broker.raw(ProtocolVersion::V3_1_1).await;
    let mut c = connect(ProtocolVersion::V3_1_1, "retainer");
    c.will = Some(will("will/kept", "last words", QoS::AtMostOnce, true));
    client.connect(c).await;
    drop(client);
    broker
        .wait_stats("the will retained", |s| s.messages_retained == 1)
        .await;
    let mut late = broker.connected(ProtocolVersion::V3_1_1, "late").await;
    late.subscribe("will/kept", QoS::AtMostOnce).await;
    let got = late.recv_publish().await;
    assert!(got.retain);
    assert_eq!(&got.payload[..], b"last words");
}

#[tokio::test]
async fn will_delay_waits_and_is_cancelled_by_reconnect() {
    // MQTT 5.0 §3.1.3.2.2 / MQTT-3.1.3-9: the will waits for its delay; a reconnect to the
    // session in time cancels it.
    let broker = start().await;
    let mut watch = watcher(&broker, "w5").await;
    let open = |id: &str| {
        let mut c = connect(ProtocolVersion::V5, id);
        c.clean_start = false;
        c.properties.session_expiry_interval = Some(60);
        let mut w = will("will/delayed", id, QoS::AtMostOnce, false);
        // 2 s: time enough to reconnect in on a loaded machine.
        w.properties.will_delay_interval = Some(2);
        c.will = Some(w);
        c
    };
    // Cancelled: reconnect within the delay, once the broker has seen the connection drop.
    let mut client = broker.raw(ProtocolVersion::V5).await;
    client.connect(open("back")).await;
    drop(client);
    broker.wait_offline("back").await;
    let mut client = broker.raw(ProtocolVersion::V5).await;
    client.connect(open("back")).await;
    // Timer logic: past the delay, the will would have been sent.
    watch.expect_nothing(Duration::from_millis(2500)).await;

    // Sent after the delay.
    let mut gone = broker.raw(ProtocolVersion::V5).await;
    gone.connect(open("gone")).await;
    let dropped_at = std::time::Instant::now();
    drop(gone);
    let got = match watch.recv_within(DEADLINE).await {
        Some(Some(Packet::Publish(got))) => got,
        other => panic!("expected the delayed will, got {other:?}"),
    };
    assert_eq!(&got.payload[..], b"gone");
    // Not before the delay (the clock started before the broker saw the drop).
    assert!(dropped_at.elapsed() >= Duration::from_millis(1900));
    drop(client);
}

#[tokio::test]
async fn will_goes_out_when_session_ends_before_delay() {
    // The will is sent when the session ends, if that comes before the delay.
    let broker = start().await;
    let mut watch = watcher(&broker, "w6").await;
    let mut client = broker.raw(ProtocolVersion::V5).await;
    let mut c = connect(ProtocolVersion::V5, "brief");
    c.properties.session_expiry_interval = Some(0);
    let mut w = will("will/brief", "now", QoS::AtMostOnce, false);
    w.properties.will_delay_interval = Some(30);
    c.will = Some(w);
    client.connect(c).await;
    drop(client);
    assert_eq!(&watch.recv_publish().await.payload[..], b"now");
}

#[tokio::test]
async fn takeover_publishes_the_old_will() {
    // MQTT 5.0 §3.1.4: on takeover the old connection's will is published (no delay).
    let broker = start().await;
    let mut watch = watcher(&broker, "w7").await;
    let mut old = broker.raw(ProtocolVersion::V3_1_1).await;
    let mut c = connect(ProtocolVersion::V3_1_1, "taken");
    c.will = Some(will("will/taken", "replaced", QoS::AtMostOnce, false));
    old.connect(c).await;
    let _new = broker.connected(ProtocolVersion::V3_1_1, "taken").await;
    assert_eq!(&watch.recv_publish().await.payload[..], b"replaced");
}

//! Conformance audit: session state across connections and the Session Expiry Interval set
//! on DISCONNECT (MQTT 3.1.1 §4.1, MQTT 5.0 §4.1, §3.1.2.11.2, §3.14.2.2.2).

#[path = "common/audit.rs"]
mod audit;
mod common;

use std::time::Duration;

use audit::*;
use common::*;
use roost::mqtt::{Disconnect, Packet, ProtocolVersion, QoS, ReasonCode};

fn disconnect_expiry(expiry: u32) -> Disconnect {
    let mut d = Disconnect::new(ReasonCode::Success);
    d.properties.session_expiry_interval = Some(expiry);
    d
}

#[tokio::test]
async fn disconnect_with_expiry_0_ends_a_persistent_session() {
    // MQTT 5.0 §3.14.2.2.2: the Session Expiry Interval of DISCONNECT replaces the one of
    // CONNECT; 0 ends the session when the connection closes.
    let broker = start().await;
    let v = ProtocolVersion::V5;
    let mut c = broker.raw(v).await;
    c.connect(persistent(v, "dx0", Some(60))).await;
    c.subscribe("dx0", QoS::AtLeastOnce).await;
    disconnect_with(&mut c, disconnect_expiry(0)).await;
    let mut c = broker.raw(v).await;
    assert!(
        !c.connect(persistent(v, "dx0", Some(60)))
            .await
            .session_present
    );
}

#[tokio::test]
async fn disconnect_can_lengthen_the_session_expiry() {
    // MQTT 5.0 §3.14.2.2.2: a non-zero CONNECT expiry may be changed to another non-zero
    // value on DISCONNECT; the session then outlives the CONNECT interval.
    let broker = start().await;
    let v = ProtocolVersion::V5;
    let mut c = broker.raw(v).await;
    c.connect(persistent(v, "dxl", Some(1))).await;
    disconnect_with(&mut c, disconnect_expiry(60)).await;
    // Timer logic: well past the CONNECT's 1 s, far from the DISCONNECT's 60 s.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut c = broker.raw(v).await;
    assert!(
        c.connect(persistent(v, "dxl", Some(60)))
            .await
            .session_present
    );
}

#[tokio::test]
async fn v5_resumed_session_gets_messages_published_while_offline() {
    // MQTT 5.0 §4.1: the session state holds QoS 1 and QoS 2 messages pending transmission;
    // MQTT-3.1.2-5: Clean Start 0 resumes it.
    let broker = start().await;
    let v = ProtocolVersion::V5;
    let mut c = broker.raw(v).await;
    c.connect(persistent(v, "off5", Some(60))).await;
    c.subscribe("off5", QoS::ExactlyOnce).await;
    disconnect(&mut c).await;
    let mut p = broker.connected(v, "off5-p").await;
    publish_acked(&mut p, publish("off5", "one", QoS::AtLeastOnce, Some(1))).await;
    publish_acked(&mut p, publish("off5", "two", QoS::ExactlyOnce, Some(2))).await;
    p.publish(publish("off5", "zero", QoS::AtMostOnce, None))
        .await;
    let mut c = broker.raw(v).await;
    assert!(
        c.connect(persistent(v, "off5", Some(60)))
            .await
            .session_present
    );
    let one = c.recv_publish().await;
    assert_eq!((&one.payload[..], one.qos), (&b"one"[..], QoS::AtLeastOnce));
    let two = c.recv_publish().await;
    assert_eq!((&two.payload[..], two.qos), (&b"two"[..], QoS::ExactlyOnce));
}

#[tokio::test]
async fn inbound_qos2_is_delivered_once_across_a_reconnect() {
    // MQTT 5.0 §4.1 (session state: QoS 2 messages received but not completely
    // acknowledged), MQTT-4.4.0-1 and MQTT-4.3.3-9: the client re-sends the PUBLISH after
    // reconnecting; the server answers PUBREC again and does not deliver it twice, and the
    // PUBREL that follows completes with Success.
    let broker = start().await;
    let v = ProtocolVersion::V5;
    let mut sub = broker.connected(v, "x2-sub").await;
    sub.subscribe("x2", QoS::AtMostOnce).await;
    let mut p = broker.raw(v).await;
    p.connect(persistent(v, "x2-pub", Some(60))).await;
    p.publish(publish("x2", "once", QoS::ExactlyOnce, Some(11)))
        .await;
    assert!(matches!(p.recv().await, Some(Packet::PubRec(r)) if r.packet_id == 11));
    assert_eq!(&sub.recv_publish().await.payload[..], b"once");
    drop(p);
    broker.wait_offline("x2-pub").await;
    let mut p = broker.raw(v).await;
    assert!(
        p.connect(persistent(v, "x2-pub", Some(60)))
            .await
            .session_present
    );
    let mut again = publish("x2", "once", QoS::ExactlyOnce, Some(11));
    again.dup = true;
    p.publish(again).await;
    assert!(matches!(p.recv().await, Some(Packet::PubRec(r)) if r.packet_id == 11));
    p.send(&Packet::PubRel(response(11))).await;
    assert_eq!(p.recv().await, Some(Packet::PubComp(response(11))));
    sub.expect_nothing(QUIET).await;
}

#[tokio::test]
async fn v311_clean_session_state_is_not_reused() {
    // 3.1.1 MQTT-3.1.2-6: with Clean Session 1 the session lasts as long as the connection
    // and its state is not reused by a later session.
    let broker = start().await;
    let v = ProtocolVersion::V3_1_1;
    let mut c = broker.connected(v, "cs-once").await;
    c.subscribe("cs-once", QoS::AtLeastOnce).await;
    disconnect(&mut c).await;
    let mut c = broker.raw(v).await;
    assert!(
        !c.connect(persistent(v, "cs-once", None))
            .await
            .session_present
    );
    let mut p = broker.connected(v, "cs-once-p").await;
    publish_acked(&mut p, publish("cs-once", "x", QoS::AtLeastOnce, Some(1))).await;
    c.expect_silence(QUIET).await;
}

#[tokio::test]
async fn session_expiry_counts_from_the_disconnection() {
    // MQTT 5.0 §3.1.2.11.2: the session is kept for the interval after the connection
    // closes and removed afterwards.
    let broker = start().await;
    let v = ProtocolVersion::V5;
    let mut c = broker.raw(v).await;
    // 3 s: long enough to reconnect in on a loaded machine, short enough to wait out.
    c.connect(persistent(v, "sx1", Some(3))).await;
    // Being connected longer than the interval does not end the session.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    disconnect(&mut c).await;
    let mut c = broker.raw(v).await;
    assert!(
        c.connect(persistent(v, "sx1", Some(3)))
            .await
            .session_present
    );
    disconnect(&mut c).await;
    // Timer logic: well past the interval after this disconnection.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let mut c = broker.raw(v).await;
    assert!(
        !c.connect(persistent(v, "sx1", Some(3)))
            .await
            .session_present
    );
}

//! Sessions: clean start, expiry, resume with redelivery (MQTT 5.0 §4.1, §4.4).

mod common;

use std::time::Duration;

use common::*;
use roost::mqtt::{Connect, Disconnect, Packet, ProtocolVersion, PubResponse, QoS, ReasonCode};

fn persistent(version: ProtocolVersion, id: &str, expiry: Option<u32>) -> Connect {
    let mut c = connect(version, id);
    c.clean_start = false;
    c.properties.session_expiry_interval = expiry;
    c
}

async fn disconnect(client: &mut RawClient) {
    client
        .send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
        .await;
    assert!(client.recv().await.is_none());
}

#[tokio::test]
async fn v311_persistent_session_keeps_subscriptions_and_queues_messages() {
    // MQTT-3.1.2-4/-5: Clean Session 0 resumes the session; session present (MQTT-3.2.2-2).
    let broker = start().await;
    let mut sub = broker.raw(ProtocolVersion::V3_1_1).await;
    let connack = sub
        .connect(persistent(ProtocolVersion::V3_1_1, "keep", None))
        .await;
    assert!(!connack.session_present);
    sub.subscribe("offline/#", QoS::AtLeastOnce).await;
    disconnect(&mut sub).await;
    broker.wait_offline("keep").await;

    let mut publisher = broker.connected(ProtocolVersion::V3_1_1, "p").await;
    for i in 0..3 {
        publisher
            .publish(publish(
                "offline/x",
                &format!("m{i}"),
                QoS::AtLeastOnce,
                Some(i + 1),
            ))
            .await;
        publisher.recv().await;
    }
    // QoS 0 is not queued for an offline client.
    publisher
        .publish(publish("offline/x", "q0", QoS::AtMostOnce, None))
        .await;
    publisher.sync().await;
    assert_eq!(broker.handle.stats().sessions, 2);

    let mut sub = broker.raw(ProtocolVersion::V3_1_1).await;
    let connack = sub
        .connect(persistent(ProtocolVersion::V3_1_1, "keep", None))
        .await;
    assert!(connack.session_present);
    for i in 0..3 {
        let got = sub.recv_publish().await;
        assert_eq!(got.payload, format!("m{i}").as_bytes());
        sub.puback(got.packet_id.unwrap()).await;
    }
    sub.expect_nothing(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn clean_start_discards_the_old_session() {
    // MQTT-3.1.2-4 (v5 Clean Start 1): no session present, no old subscriptions.
    let broker = start().await;
    let mut sub = broker.raw(ProtocolVersion::V5).await;
    sub.connect(persistent(ProtocolVersion::V5, "cs", Some(300)))
        .await;
    sub.subscribe("cs/t", QoS::AtLeastOnce).await;
    disconnect(&mut sub).await;
    let mut sub = broker.raw(ProtocolVersion::V5).await;
    let connack = sub.connect(connect(ProtocolVersion::V5, "cs")).await;
    assert!(!connack.session_present);
    let mut publisher = broker.connected(ProtocolVersion::V5, "csp").await;
    publisher
        .publish(publish("cs/t", "x", QoS::AtMostOnce, None))
        .await;
    publisher.sync().await;
    sub.expect_nothing(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn unacknowledged_messages_are_resent_with_dup_on_resume() {
    // MQTT-4.4.0-1 / MQTT-3.3.1-1: unacknowledged PUBLISH re-sent with DUP=1, and PUBREL
    // re-sent for QoS 2 messages that got PUBREC.
    let broker = start().await;
    let mut sub = broker.raw(ProtocolVersion::V5).await;
    sub.connect(persistent(ProtocolVersion::V5, "dup", Some(300)))
        .await;
    sub.subscribe("r/1", QoS::AtLeastOnce).await;
    sub.subscribe("r/2", QoS::ExactlyOnce).await;
    let mut publisher = broker.connected(ProtocolVersion::V5, "dup-pub").await;
    publisher
        .publish(publish("r/1", "one", QoS::AtLeastOnce, Some(1)))
        .await;
    publisher
        .publish(publish("r/2", "two", QoS::ExactlyOnce, Some(2)))
        .await;
    let first = sub.recv_publish().await;
    assert!(!first.dup);
    let second = sub.recv_publish().await;
    assert_eq!(second.qos, QoS::ExactlyOnce);
    // Acknowledge the QoS 2 message halfway, then drop the connection.
    let second_id = second.packet_id.unwrap();
    sub.send(&Packet::PubRec(PubResponse::success(second_id)))
        .await;
    assert_eq!(
        sub.recv().await,
        Some(Packet::PubRel(PubResponse::success(second_id)))
    );
    drop(sub);
    broker.wait_offline("dup").await;

    let mut sub = broker.raw(ProtocolVersion::V5).await;
    let connack = sub
        .connect(persistent(ProtocolVersion::V5, "dup", Some(300)))
        .await;
    assert!(connack.session_present);
    let again = sub.recv_publish().await;
    assert!(again.dup, "re-sent PUBLISH carries DUP");
    assert_eq!(again.packet_id, first.packet_id);
    assert_eq!(&again.payload[..], b"one");
    assert_eq!(
        sub.recv().await,
        Some(Packet::PubRel(PubResponse::success(second_id)))
    );
}

#[tokio::test]
async fn v5_session_expires_after_its_interval() {
    // MQTT 5.0 §3.1.2.11.2: the session ends when the interval passes after disconnection.
    let broker = start().await;
    let mut client = broker.raw(ProtocolVersion::V5).await;
    client
        .connect(persistent(ProtocolVersion::V5, "short", Some(1)))
        .await;
    client.subscribe("s", QoS::AtLeastOnce).await;
    disconnect(&mut client).await;
    assert_eq!(broker.handle.stats().sessions, 1);
    // Timer logic: expired some time after the interval, however slow the machine.
    broker
        .wait_stats("the session expired", |s| s.sessions == 0)
        .await;
    let mut client = broker.raw(ProtocolVersion::V5).await;
    let connack = client
        .connect(persistent(ProtocolVersion::V5, "short", Some(1)))
        .await;
    assert!(!connack.session_present);
}

#[tokio::test]
async fn v5_session_expiry_is_capped_and_announced() {
    // MQTT-3.2.2-? (§3.2.2.3.2): a different Session Expiry Interval is sent in CONNACK.
    let broker = start_with(|c| c.limits.max_session_expiry_secs = 60).await;
    let mut client = broker.raw(ProtocolVersion::V5).await;
    let connack = client
        .connect(persistent(ProtocolVersion::V5, "cap", Some(u32::MAX)))
        .await;
    assert_eq!(connack.properties.session_expiry_interval, Some(60));
}

#[tokio::test]
async fn without_persistent_sessions_v5_is_granted_expiry_zero_and_keeps_nothing() {
    // "Enable persistent sessions and messages" unchecked: nothing is kept for a disconnected
    // MQTT 5.0 client; it is told Session Expiry Interval 0 (MQTT 5.0 §3.2.2.3.2), and a
    // DISCONNECT cannot raise it again.
    let broker = start_with(|c| c.persistence.enabled = false).await;
    let mut client = broker.raw(ProtocolVersion::V5).await;
    let connack = client
        .connect(persistent(ProtocolVersion::V5, "transient", Some(3600)))
        .await;
    assert_eq!(connack.properties.session_expiry_interval, Some(0));
    client.subscribe("kept/not", QoS::AtLeastOnce).await;
    let mut bye = Disconnect::new(ReasonCode::Success);
    bye.properties.session_expiry_interval = Some(3600);
    client.send(&Packet::Disconnect(bye)).await;
    assert!(client.recv().await.is_none());
    broker
        .wait_stats("the session ended", |s| s.sessions == 0)
        .await;
    let mut client = broker.raw(ProtocolVersion::V5).await;
    let connack = client
        .connect(persistent(ProtocolVersion::V5, "transient", Some(3600)))
        .await;
    assert!(!connack.session_present);
}

#[tokio::test]
async fn without_persistent_sessions_v311_clean_session_0_still_gets_a_session() {
    // MQTT-3.1.2-4: a 3.1.1 client with Clean Session 0 resumes its session; 3.1.1 has no
    // way to tell it otherwise, so the session is kept in memory.
    let broker = start_with(|c| c.persistence.enabled = false).await;
    let mut client = broker.raw(ProtocolVersion::V3_1_1).await;
    client
        .connect(persistent(ProtocolVersion::V3_1_1, "classic", None))
        .await;
    client.subscribe("kept/yes", QoS::AtLeastOnce).await;
    disconnect(&mut client).await;
    broker.wait_offline("classic").await;
    let mut client = broker.raw(ProtocolVersion::V3_1_1).await;
    let connack = client
        .connect(persistent(ProtocolVersion::V3_1_1, "classic", None))
        .await;
    assert!(connack.session_present);
}

#[tokio::test]
async fn expiry_zero_ends_the_session_at_disconnect() {
    let broker = start().await;
    let mut client = broker.raw(ProtocolVersion::V5).await;
    client
        .connect(persistent(ProtocolVersion::V5, "zero", None))
        .await;
    disconnect(&mut client).await;
    broker
        .wait_stats("the session ended", |s| s.sessions == 0)
        .await;
}

#[tokio::test]
async fn disconnect_may_not_set_expiry_after_zero() {
    // MQTT-3.14.2-2: non-zero Session Expiry on DISCONNECT after 0 in CONNECT is a
    // protocol error.
    let broker = start().await;
    let mut client = broker.connected(ProtocolVersion::V5, "late").await;
    let mut d = Disconnect::new(ReasonCode::Success);
    d.properties.session_expiry_interval = Some(100);
    client.send(&Packet::Disconnect(d)).await;
    let reply = client.expect_disconnect().await.expect("DISCONNECT");
    assert_eq!(reply.reason, ReasonCode::ProtocolError);
}

#[tokio::test]
async fn queue_limit_drops_and_counts() {
    let broker = start_with(|c| c.limits.max_queued_messages = 3).await;
    let mut sub = broker.raw(ProtocolVersion::V3_1_1).await;
    sub.connect(persistent(ProtocolVersion::V3_1_1, "full", None))
        .await;
    sub.subscribe("full", QoS::AtLeastOnce).await;
    disconnect(&mut sub).await;
    let mut publisher = broker.connected(ProtocolVersion::V3_1_1, "filler").await;
    for i in 0..5u16 {
        publisher
            .publish(publish(
                "full",
                &i.to_string(),
                QoS::AtLeastOnce,
                Some(i + 1),
            ))
            .await;
        publisher.recv().await;
    }
    assert_eq!(broker.handle.stats().messages_dropped, 2);
    let mut sub = broker.raw(ProtocolVersion::V3_1_1).await;
    sub.connect(persistent(ProtocolVersion::V3_1_1, "full", None))
        .await;
    for i in 0..3 {
        let got = sub.recv_publish().await;
        assert_eq!(got.payload, i.to_string().as_bytes());
        sub.puback(got.packet_id.unwrap()).await;
    }
    sub.expect_silence(Duration::from_millis(200)).await;
}

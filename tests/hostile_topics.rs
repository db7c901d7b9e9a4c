//! Hostile topics: filters and topic names with tens of thousands of levels must be refused
//! with the right reason code, and must never take the broker down for everyone else.
//!
//! The broker runs in this test process, so a stack overflow in it aborts the whole test
//! binary: a crash is this file's failure mode.

mod common;

use common::*;
use roost::mqtt::{Packet, ProtocolVersion, QoS, ReasonCode};

/// 60,000 `/` characters: 60,001 empty levels, far over any level limit and deep enough to
/// overflow a thread's stack when walked recursively.
fn deep_topic() -> String {
    "/".repeat(60_000)
}

/// A fresh client can still subscribe, publish at QoS 1 and receive its own message: the
/// broker (router included) still serves others.
async fn broker_still_serves(broker: &TestBroker, version: ProtocolVersion) {
    let mut client = broker.connected(version, "bystander").await;
    assert_eq!(
        client.subscribe("after/deep", QoS::AtLeastOnce).await,
        vec![ReasonCode::GrantedQoS1]
    );
    client
        .publish(publish(
            "after/deep",
            "still here",
            QoS::AtLeastOnce,
            Some(7),
        ))
        .await;
    let mut got_ack = false;
    let mut got_message = false;
    while !(got_ack && got_message) {
        match client.recv().await {
            Some(Packet::PubAck(ack)) => {
                assert_eq!(ack.packet_id, 7);
                got_ack = true;
            }
            Some(Packet::Publish(message)) => {
                assert_eq!(&*message.topic, "after/deep");
                assert_eq!(&message.payload[..], b"still here");
                if let Some(id) = message.packet_id {
                    client.puback(id).await;
                }
                got_message = true;
            }
            other => panic!("expected PUBACK or PUBLISH, got {other:?}"),
        }
    }
}

async fn deep_subscribe_is_refused(version: ProtocolVersion, refusal: ReasonCode) {
    let broker = start().await;
    let mut hostile = broker.connected(version, "deep-subscriber").await;
    // Over `limits.max_topic_levels`: 0x8F Topic Filter Invalid in v5 (MQTT 5.0 §3.9.3),
    // 0x80 Failure in 3.1.1 (MQTT 3.1.1 §3.9.3).
    assert_eq!(
        hostile.subscribe(&deep_topic(), QoS::AtMostOnce).await,
        vec![refusal]
    );
    // The subscription tree is walked again when the session ends and when the broker stops.
    hostile
        .send(&Packet::Disconnect(roost::mqtt::Disconnect::new(
            ReasonCode::Success,
        )))
        .await;
    assert_eq!(hostile.recv().await, None, "broker closes after DISCONNECT");
    broker_still_serves(&broker, version).await;
}

#[tokio::test]
async fn deep_filter_gets_topic_filter_invalid_v5() {
    deep_subscribe_is_refused(ProtocolVersion::V5, ReasonCode::TopicFilterInvalid).await;
}

#[tokio::test]
async fn deep_filter_gets_failure_v311() {
    deep_subscribe_is_refused(ProtocolVersion::V3_1_1, ReasonCode::UnspecifiedError).await;
}

async fn deep_publish_closes_the_connection(version: ProtocolVersion) {
    let broker = start().await;
    // A subscriber to the deep filter itself: matching the deep topic walks as deep as the
    // tree goes. Depending on the broker it is refused or accepted; either way it must not
    // crash anything.
    let mut deep_subscriber = broker.connected(version, "deep-subscriber").await;
    let _ = deep_subscriber
        .subscribe(&deep_topic(), QoS::AtMostOnce)
        .await;
    let mut hostile = broker.connected(version, "deep-publisher").await;
    hostile
        .publish(publish(&deep_topic(), "x", QoS::AtMostOnce, None))
        .await;
    // Over `limits.max_topic_levels`: a malformed topic name, DISCONNECT 0x90 Topic Name
    // Invalid in v5 (MQTT 5.0 §3.3.2.1, §4.13); 3.1.1 has no reason codes, the connection
    // is closed (MQTT-4.8.0-1).
    let disconnect = hostile.expect_disconnect().await;
    match version {
        ProtocolVersion::V5 => assert_eq!(
            disconnect.map(|d| d.reason),
            Some(ReasonCode::TopicNameInvalid)
        ),
        _ => assert_eq!(disconnect, None),
    }
    broker_still_serves(&broker, version).await;
}

#[tokio::test]
async fn deep_topic_name_disconnects_with_topic_name_invalid_v5() {
    deep_publish_closes_the_connection(ProtocolVersion::V5).await;
}

#[tokio::test]
async fn deep_topic_name_closes_the_connection_v311() {
    deep_publish_closes_the_connection(ProtocolVersion::V3_1_1).await;
}

async fn deep_will_topic_is_refused(version: ProtocolVersion) {
    let broker = start().await;
    let mut hostile = broker.raw(version).await;
    let mut request = connect(version, "deep-will");
    request.will = Some(will(&deep_topic(), "gone", QoS::AtMostOnce, false));
    hostile.send(&Packet::Connect(Box::new(request))).await;
    // v5: CONNACK 0x90 Topic Name Invalid, the will topic being well formed but not
    // accepted by this server (MQTT 5.0 §3.2.2.2), then close (MQTT-3.2.2-7). 3.1.1 has no
    // return code for it: closed without CONNACK (MQTT-3.2.2-6).
    if version == ProtocolVersion::V5 {
        match hostile.recv().await {
            Some(Packet::ConnAck(connack)) => {
                assert_eq!(connack.reason, ReasonCode::TopicNameInvalid)
            }
            other => panic!("expected CONNACK 0x90, got {other:?}"),
        }
    }
    assert_eq!(
        hostile.recv().await,
        None,
        "the broker closes the connection"
    );
    broker_still_serves(&broker, version).await;
}

#[tokio::test]
async fn deep_will_topic_gets_connack_topic_name_invalid_v5() {
    deep_will_topic_is_refused(ProtocolVersion::V5).await;
}

#[tokio::test]
async fn deep_will_topic_closes_the_connection_v311() {
    deep_will_topic_is_refused(ProtocolVersion::V3_1_1).await;
}

/// `limits.max_topic_levels` is the boundary: that many levels pass, one more does not.
#[tokio::test]
async fn topic_level_limit_is_configurable() {
    let broker = start_with(|c| c.limits.max_topic_levels = 3).await;
    let version = ProtocolVersion::V5;
    let mut client = broker.connected(version, "levels").await;
    assert_eq!(
        client.subscribe("a/+/#", QoS::AtLeastOnce).await,
        vec![ReasonCode::GrantedQoS1]
    );
    assert_eq!(
        client.subscribe("$share/g/a/b/c", QoS::AtLeastOnce).await,
        vec![ReasonCode::GrantedQoS1],
        "the $share/{{group}}/ prefix is not counted"
    );
    assert_eq!(
        client.subscribe("a/b/c/#", QoS::AtLeastOnce).await,
        vec![ReasonCode::TopicFilterInvalid]
    );
    client
        .publish(publish("a/b/c", "three", QoS::AtLeastOnce, Some(1)))
        .await;
    let mut got_ack = false;
    let mut got_message = false;
    while !(got_ack && got_message) {
        match client.recv().await {
            Some(Packet::PubAck(_)) => got_ack = true,
            Some(Packet::Publish(message)) => {
                assert_eq!(&*message.topic, "a/b/c");
                if let Some(id) = message.packet_id {
                    client.puback(id).await;
                }
                got_message = true;
            }
            other => panic!("expected PUBACK or PUBLISH, got {other:?}"),
        }
    }
    client
        .publish(publish("a/b/c/d", "four", QoS::AtLeastOnce, Some(2)))
        .await;
    let disconnect = client.expect_disconnect().await;
    assert_eq!(
        disconnect.map(|d| d.reason),
        Some(ReasonCode::TopicNameInvalid)
    );
}

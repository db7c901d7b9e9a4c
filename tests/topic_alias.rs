//! Topic aliases in both directions (MQTT 5.0 §3.3.2.3.4).

mod common;

use std::time::Duration;

use common::*;
use roost::mqtt::{ProtocolVersion, QoS, ReasonCode};

fn aliased(topic: &str, alias: u16, payload: &str) -> roost::mqtt::Publish {
    let mut p = publish(topic, payload, QoS::AtMostOnce, None);
    p.properties.topic_alias = Some(alias);
    p
}

#[tokio::test]
async fn inbound_alias_is_resolved_for_subscribers() {
    let broker = start_with(|c| c.limits.max_topic_aliases = 4).await;
    let mut sub = broker.connected(ProtocolVersion::V3_1_1, "as").await;
    sub.subscribe("long/topic/name", QoS::AtMostOnce).await;
    let mut p = broker.connected(ProtocolVersion::V5, "ap").await;
    p.publish(aliased("long/topic/name", 3, "first")).await;
    p.publish(aliased("", 3, "second")).await;
    for expected in ["first", "second"] {
        let got = sub.recv_publish().await;
        assert_eq!(&*got.topic, "long/topic/name");
        assert_eq!(got.payload, expected.as_bytes());
    }
}

#[tokio::test]
async fn alias_zero_or_above_maximum_is_refused_with_0x94() {
    // MQTT-3.3.2-8 (0 is not permitted) and MQTT-3.3.2-9 (not above our maximum).
    let broker = start_with(|c| c.limits.max_topic_aliases = 4).await;
    for alias in [0u16, 5] {
        let mut p = broker.connected(ProtocolVersion::V5, "bad-alias").await;
        p.publish(aliased("t", alias, "x")).await;
        let d = p.expect_disconnect().await.expect("DISCONNECT");
        assert_eq!(d.reason, ReasonCode::TopicAliasInvalid, "alias {alias}");
    }
}

#[tokio::test]
async fn unknown_alias_with_empty_topic_is_a_protocol_error() {
    // MQTT 5.0 §3.3.4: an alias with no mapping and no topic name.
    let broker = start().await;
    let mut p = broker.connected(ProtocolVersion::V5, "unknown-alias").await;
    p.publish(aliased("", 2, "x")).await;
    let d = p.expect_disconnect().await.expect("DISCONNECT");
    assert_eq!(d.reason, ReasonCode::ProtocolError);
}

#[tokio::test]
async fn outbound_aliases_replace_repeated_topics() {
    // MQTT-3.3.2-? (§3.3.2.3.4): the server may use aliases up to the client's Topic Alias
    // Maximum; the second message carries only the alias.
    let broker = start().await;
    let mut sub = broker.raw(ProtocolVersion::V5).await;
    let mut c = connect(ProtocolVersion::V5, "alias-sub");
    c.properties.topic_alias_maximum = Some(2);
    sub.connect(c).await;
    sub.subscribe("out/#", QoS::AtMostOnce).await;
    let mut p = broker.connected(ProtocolVersion::V5, "alias-pub").await;
    for topic in ["out/a", "out/a", "out/b", "out/c", "out/c"] {
        p.publish(publish(topic, topic, QoS::AtMostOnce, None))
            .await;
    }
    let first = sub.recv_publish().await;
    assert_eq!(&*first.topic, "out/a");
    let alias_a = first.properties.topic_alias.expect("alias assigned");
    let second = sub.recv_publish().await;
    assert_eq!(&*second.topic, "");
    assert_eq!(second.properties.topic_alias, Some(alias_a));
    let third = sub.recv_publish().await;
    assert_eq!(&*third.topic, "out/b");
    assert!(third.properties.topic_alias.is_some());
    // Only two aliases allowed: out/c goes with its full name, no alias.
    for _ in 0..2 {
        let c = sub.recv_publish().await;
        assert_eq!(&*c.topic, "out/c");
        assert_eq!(c.properties.topic_alias, None);
    }
    sub.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn clients_without_alias_maximum_get_full_topics() {
    // MQTT-3.3.2-11? (§3.2.2.3.8 from the client side): no aliases unless the client allows.
    let broker = start().await;
    let mut sub = broker.connected(ProtocolVersion::V5, "noalias").await;
    sub.subscribe("n", QoS::AtMostOnce).await;
    let mut p = broker.connected(ProtocolVersion::V5, "np").await;
    for _ in 0..2 {
        p.publish(publish("n", "x", QoS::AtMostOnce, None)).await;
        let got = sub.recv_publish().await;
        assert_eq!(&*got.topic, "n");
        assert_eq!(got.properties.topic_alias, None);
    }
}

//! SUBSCRIBE / UNSUBSCRIBE and topic matching (MQTT 5.0 §3.8–3.11, §4.7).

mod common;

use std::time::Duration;

use common::*;
use roost::mqtt::{
    Packet, Properties, ProtocolVersion, QoS, ReasonCode, Subscribe, SubscribeFilter,
    SubscriptionOptions, Unsubscribe,
};

fn subscribe_with_id(packet_id: u16, filter: &str, qos: QoS, id: u32) -> Packet {
    let mut s = subscribe(packet_id, filter, qos);
    s.properties.subscription_identifiers = vec![id];
    Packet::Subscribe(s)
}

#[tokio::test]
async fn wildcards_match_as_specified() {
    // MQTT 5.0 §4.7.1: `+` one level, `#` any number of levels including the parent.
    let broker = start().await;
    let mut sub = broker.connected(ProtocolVersion::V3_1_1, "wild").await;
    sub.subscribe("sport/+/player", QoS::AtMostOnce).await;
    sub.subscribe("news/#", QoS::AtMostOnce).await;
    let mut p = broker.connected(ProtocolVersion::V3_1_1, "wp").await;
    for topic in [
        "sport/tennis/player",
        "sport/tennis/x/player",
        "news",
        "news/a/b",
        "other",
    ] {
        p.publish(publish(topic, topic, QoS::AtMostOnce, None))
            .await;
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(sub.recv_publish().await.topic.to_string());
    }
    assert_eq!(got, ["sport/tennis/player", "news", "news/a/b"]);
    sub.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn dollar_topics_are_not_matched_by_leading_wildcards() {
    // MQTT-4.7.2-1.
    let broker = start().await;
    let mut all = broker.connected(ProtocolVersion::V3_1_1, "all").await;
    all.subscribe("#", QoS::AtMostOnce).await;
    all.subscribe("+/x", QoS::AtMostOnce).await;
    let mut dollar = broker.connected(ProtocolVersion::V3_1_1, "dollar").await;
    dollar.subscribe("$app/#", QoS::AtMostOnce).await;
    let mut p = broker.connected(ProtocolVersion::V3_1_1, "dp").await;
    p.publish(publish("$app/x", "d", QoS::AtMostOnce, None))
        .await;
    assert_eq!(&*dollar.recv_publish().await.topic, "$app/x");
    all.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn overlapping_subscriptions_deliver_one_copy_with_all_identifiers() {
    // MQTT-3.3.4-2 (one copy, highest QoS) and MQTT-3.3.4-3 (every identifier).
    let broker = start().await;
    let mut sub = broker.connected(ProtocolVersion::V5, "overlap").await;
    sub.send(&subscribe_with_id(1, "a/+", QoS::AtMostOnce, 11))
        .await;
    sub.recv().await;
    sub.send(&subscribe_with_id(2, "a/#", QoS::AtLeastOnce, 22))
        .await;
    sub.recv().await;
    let mut p = broker.connected(ProtocolVersion::V5, "op").await;
    p.publish(publish("a/b", "x", QoS::ExactlyOnce, Some(1)))
        .await;
    let got = sub.recv_publish().await;
    assert_eq!(got.qos, QoS::AtLeastOnce);
    let mut ids = got.properties.subscription_identifiers.clone();
    ids.sort();
    assert_eq!(ids, vec![11, 22]);
    sub.puback(got.packet_id.unwrap()).await;
    sub.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn resubscribing_replaces_the_subscription() {
    // MQTT-3.8.4-3: the new subscription replaces the old one; one copy delivered.
    let broker = start().await;
    let mut sub = broker.connected(ProtocolVersion::V3_1_1, "again").await;
    sub.subscribe("same", QoS::AtMostOnce).await;
    sub.subscribe("same", QoS::AtLeastOnce).await;
    assert_eq!(broker.handle.stats().subscriptions, 1);
    let mut p = broker.connected(ProtocolVersion::V3_1_1, "ap").await;
    p.publish(publish("same", "x", QoS::AtLeastOnce, Some(1)))
        .await;
    let got = sub.recv_publish().await;
    assert_eq!(got.qos, QoS::AtLeastOnce);
    sub.puback(got.packet_id.unwrap()).await;
    sub.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn no_local_keeps_own_messages_away() {
    // MQTT-3.8.3-3.
    let broker = start().await;
    let mut me = broker.connected(ProtocolVersion::V5, "me").await;
    let mut s = subscribe(1, "chat", QoS::AtMostOnce);
    s.filters[0].options.no_local = true;
    me.send(&Packet::Subscribe(s)).await;
    me.recv().await;
    let mut other = broker.connected(ProtocolVersion::V5, "other").await;
    other.subscribe("chat", QoS::AtMostOnce).await;
    me.publish(publish("chat", "hi", QoS::AtMostOnce, None))
        .await;
    assert_eq!(&other.recv_publish().await.payload[..], b"hi");
    me.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn suback_grants_the_requested_qos_for_each_filter() {
    let broker = start().await;
    let mut sub = broker.connected(ProtocolVersion::V5, "granted").await;
    let options = |qos| SubscriptionOptions {
        qos,
        ..SubscriptionOptions::default()
    };
    sub.send(&Packet::Subscribe(Subscribe {
        packet_id: 9,
        properties: Properties::default(),
        filters: vec![
            SubscribeFilter {
                filter: "a".into(),
                options: options(QoS::AtMostOnce),
            },
            SubscribeFilter {
                filter: "b".into(),
                options: options(QoS::AtLeastOnce),
            },
            SubscribeFilter {
                filter: "c".into(),
                options: options(QoS::ExactlyOnce),
            },
        ],
    }))
    .await;
    match sub.recv().await {
        Some(Packet::SubAck(ack)) => {
            assert_eq!(ack.packet_id, 9);
            assert_eq!(
                ack.reasons,
                vec![
                    ReasonCode::Success,
                    ReasonCode::GrantedQoS1,
                    ReasonCode::GrantedQoS2
                ]
            );
        }
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

#[tokio::test]
async fn unsubscribe_reports_per_filter() {
    // MQTT 5.0 §3.11.3: 0x00 Success, 0x11 No subscription existed.
    let broker = start().await;
    let mut sub = broker.connected(ProtocolVersion::V5, "unsub").await;
    sub.subscribe("here", QoS::AtMostOnce).await;
    sub.send(&Packet::Unsubscribe(Unsubscribe {
        packet_id: 3,
        properties: Properties::default(),
        filters: vec!["here".into(), "never".into()],
    }))
    .await;
    match sub.recv().await {
        Some(Packet::UnsubAck(ack)) => {
            assert_eq!(ack.packet_id, 3);
            assert_eq!(
                ack.reasons,
                vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted]
            );
        }
        other => panic!("expected UNSUBACK, got {other:?}"),
    }
    let mut p = broker.connected(ProtocolVersion::V5, "up").await;
    p.publish(publish("here", "x", QoS::AtMostOnce, None)).await;
    sub.expect_silence(Duration::from_millis(300)).await;
    assert_eq!(broker.handle.stats().subscriptions, 0);
}

#[tokio::test]
async fn shared_subscription_with_no_local_is_a_protocol_error() {
    // MQTT-3.8.3-4.
    let broker = start().await;
    let mut sub = broker.connected(ProtocolVersion::V5, "sharednl").await;
    let mut s = subscribe(1, "$share/g/t", QoS::AtMostOnce);
    s.filters[0].options.no_local = true;
    sub.send(&Packet::Subscribe(s)).await;
    let d = sub.expect_disconnect().await.expect("DISCONNECT");
    assert_eq!(d.reason, ReasonCode::ProtocolError);
}

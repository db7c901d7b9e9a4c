//! `$SYS/broker/...` topics, Mosquitto's names, retained, every `sys_interval_secs`.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use roost::mqtt::{ProtocolVersion, QoS};

#[tokio::test]
async fn sys_topics_are_published_and_retained() {
    let broker = start_with(|c| c.broker.sys_interval_secs = 1).await;
    let mut sub = broker.connected(ProtocolVersion::V3_1_1, "sys").await;
    sub.subscribe("$SYS/broker/#", QoS::AtMostOnce).await;
    let wanted = [
        "$SYS/broker/version",
        "$SYS/broker/uptime",
        "$SYS/broker/clients/connected",
        "$SYS/broker/clients/total",
        "$SYS/broker/connections/refused",
        "$SYS/broker/messages/received",
        "$SYS/broker/messages/sent",
        "$SYS/broker/subscriptions/count",
        "$SYS/broker/retained messages/count",
    ];
    let mut seen = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    while !wanted.iter().all(|t| seen.contains_key(*t)) && tokio::time::Instant::now() < deadline {
        let p = sub.recv_publish().await;
        if p.retain {
            // Values retained before we subscribed; wait for the live ones.
            continue;
        }
        seen.insert(
            p.topic.to_string(),
            String::from_utf8(p.payload.to_vec()).unwrap(),
        );
    }
    for topic in wanted {
        assert!(seen.contains_key(topic), "missing {topic}: {seen:?}");
    }
    assert!(seen["$SYS/broker/uptime"].ends_with(" seconds"));
    assert_eq!(seen["$SYS/broker/clients/connected"], "1");
    assert_eq!(seen["$SYS/broker/subscriptions/count"], "1");
    assert_eq!(seen["$SYS/broker/connections/refused"], "0");
    assert!(seen["$SYS/broker/version"].starts_with("roost "));

    // Retained: a later subscriber gets the values at once.
    let mut late = broker.connected(ProtocolVersion::V3_1_1, "late").await;
    late.subscribe("$SYS/broker/version", QoS::AtMostOnce).await;
    assert!(late.recv_publish().await.retain);
}

#[tokio::test]
async fn hash_subscribers_do_not_get_sys_topics() {
    // MQTT-4.7.2-1.
    let broker = start_with(|c| c.broker.sys_interval_secs = 1).await;
    let mut sub = broker
        .connected(ProtocolVersion::V3_1_1, "everything")
        .await;
    sub.subscribe("#", QoS::AtMostOnce).await;
    sub.expect_silence(Duration::from_millis(1500)).await;
}

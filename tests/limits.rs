//! Limits from the configuration.

mod common;

use std::time::Duration;

use common::*;
use roost::mqtt::{ProtocolVersion, QoS, ReasonCode};

#[tokio::test]
async fn connections_above_the_maximum_are_refused_as_server_busy() {
    // The limit is checked when the socket is accepted: a socket over limits.max_connections
    // never becomes a connection. Its CONNECT is still read (if it comes quickly) and
    // answered with 0x89 Server busy (MQTT 5.0 §3.2.2.2; 3.1.1: 0x03 Server unavailable,
    // §3.2.2.3), then the socket is closed (MQTT-3.2.2-5).
    let broker = start_with(|c| {
        c.limits.max_connections = 2;
        // Long, so that a socket kept until the connect timeout fails the test.
        c.limits.connect_timeout_secs = 60;
    })
    .await;
    let a = broker.connected(ProtocolVersion::V5, "a").await;
    let _b = broker.connected(ProtocolVersion::V5, "b").await;
    let mut c = broker.raw(ProtocolVersion::V5).await;
    let connack = c.connect(connect(ProtocolVersion::V5, "c")).await;
    assert_eq!(connack.reason, ReasonCode::ServerBusy);
    assert!(c.recv().await.is_none());
    let mut d = broker.raw(ProtocolVersion::V3_1_1).await;
    let connack = d.connect(connect(ProtocolVersion::V3_1_1, "d")).await;
    assert_eq!(connack.reason.to_v3_connack_code(), 0x03);
    assert!(d.recv().await.is_none());
    // A socket over the limit that sends nothing is closed within seconds, not after the
    // connect timeout.
    let mut silent = broker.raw(ProtocolVersion::V5).await;
    assert_eq!(
        silent.recv_within(Duration::from_secs(10)).await,
        Some(None),
        "a silent socket over the limit stays open"
    );
    let stats = broker.handle.stats();
    assert_eq!(stats.connections, 2, "refused sockets are not connections");
    assert_eq!(stats.connections_refused, 3);

    // A closed connection frees its slot for the next client.
    drop(a);
    eventually("a connection admitted after one closed", || async {
        let mut e = broker.raw(ProtocolVersion::V5).await;
        let connack = e.connect(connect(ProtocolVersion::V5, "e")).await;
        assert!(
            matches!(connack.reason, ReasonCode::Success | ReasonCode::ServerBusy),
            "{:?}",
            connack.reason
        );
        connack.reason == ReasonCode::Success
    })
    .await;
}

#[tokio::test]
async fn an_applied_connection_limit_takes_effect_for_new_connections() {
    // Lowering the limit keeps the open connections and refuses new ones until the count
    // falls below it; raising it admits new ones at once.
    let mut config = test_config();
    config.limits.max_connections = 3;
    let broker = start_with(|c| *c = config.clone()).await;
    let mut a = broker.connected(ProtocolVersion::V5, "a").await;
    a.subscribe("a/echo", QoS::AtLeastOnce).await;
    let b = broker.connected(ProtocolVersion::V5, "b").await;

    config.limits.max_connections = 1;
    broker.handle.apply(config.clone()).await.expect("apply");
    let mut refused = broker.raw(ProtocolVersion::V5).await;
    let connack = refused.connect(connect(ProtocolVersion::V5, "c")).await;
    assert_eq!(connack.reason, ReasonCode::ServerBusy);
    // The open connections were kept.
    a.publish(publish("a/echo", "still here", QoS::AtLeastOnce, Some(1)))
        .await;
    let mut got = (false, false);
    while got != (true, true) {
        match a.recv().await {
            Some(roost::mqtt::Packet::PubAck(_)) => got.0 = true,
            Some(roost::mqtt::Packet::Publish(p)) => {
                assert_eq!(&p.payload[..], b"still here");
                got.1 = true;
            }
            other => panic!("expected PUBACK and PUBLISH, got {other:?}"),
        }
    }
    // Two open, limit one: closing b still leaves the count at the limit.
    drop(b);
    broker
        .wait_stats("b's connection closed", |s| s.connections == 1)
        .await;
    let mut refused = broker.raw(ProtocolVersion::V5).await;
    let connack = refused.connect(connect(ProtocolVersion::V5, "d")).await;
    assert_eq!(connack.reason, ReasonCode::ServerBusy);

    config.limits.max_connections = 3;
    broker.handle.apply(config.clone()).await.expect("apply");
    let _e = broker.connected(ProtocolVersion::V5, "e").await;
    let _f = broker.connected(ProtocolVersion::V5, "f").await;
    let mut refused = broker.raw(ProtocolVersion::V3_1_1).await;
    let connack = refused.connect(connect(ProtocolVersion::V3_1_1, "g")).await;
    assert_eq!(connack.reason.to_v3_connack_code(), 0x03);
    assert_eq!(broker.handle.stats().connections_refused, 3);
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_loses_qos0_messages_not_the_broker() {
    // QoS 0 is dropped first for a slow connection; drops are counted.
    let broker = start().await;
    let mut stuck = broker.connected(ProtocolVersion::V5, "stuck").await;
    stuck.subscribe("flood", QoS::AtMostOnce).await;
    let mut healthy = broker.connected(ProtocolVersion::V5, "fine").await;
    healthy.subscribe("other", QoS::AtMostOnce).await;
    let mut p = broker.connected(ProtocolVersion::V5, "flooder").await;
    // More than the 64 MiB of QoS 0 payload a connection may have waiting.
    let payload = "x".repeat(64 * 1024);
    for _ in 0..1600 {
        p.publish(publish("flood", &payload, QoS::AtMostOnce, None))
            .await;
    }
    broker
        .wait_stats("QoS 0 messages dropped", |s| s.messages_dropped > 0)
        .await;
    p.publish(publish("other", "still here", QoS::AtMostOnce, None))
        .await;
    assert_eq!(&healthy.recv_publish().await.payload[..], b"still here");
    drop(stuck);
}

#[tokio::test]
async fn a_subscriber_that_stopped_reading_does_not_throttle_publishers_for_long() {
    // 30 000 messages of 1 KiB: the stuck subscriber's backlog passes the throttling mark
    // (10 000 waiting) long before the drop limits (100 000 or 64 MiB). Publishers pause at most once, then run at full speed again.
    let broker = start().await;
    let mut stuck = broker.connected(ProtocolVersion::V5, "stuck-small").await;
    stuck.subscribe("small", QoS::AtMostOnce).await;
    let mut p = broker.connected(ProtocolVersion::V5, "small-pub").await;
    let started = std::time::Instant::now();
    for i in 0..30_000u32 {
        p.publish(publish("small", "tiny", QoS::AtMostOnce, None))
            .await;
        if i % 1000 == 0 {
            // A round trip proves the publisher's packets are being read.
            p.send(&roost::mqtt::Packet::PingReq).await;
            assert_eq!(p.recv().await, Some(roost::mqtt::Packet::PingResp));
        }
    }
    // Generous for a loaded machine, and still far below what pausing for the throttle
    // limit (0.5 s) more than a few times over 30 000 messages would take.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    // Everything has been routed once a QoS 1 message is acknowledged by the router.
    p.publish(publish("small", "last", QoS::AtLeastOnce, Some(1)))
        .await;
    loop {
        match p.recv().await {
            Some(roost::mqtt::Packet::PubAck(_)) => break,
            Some(_) => {}
            None => panic!("publisher disconnected"),
        }
    }
    // Below the drop limits nothing was lost: it all waits for the subscriber.
    assert_eq!(broker.handle.stats().messages_dropped, 0);
    drop(stuck);
}

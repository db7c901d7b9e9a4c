//! The Will Delay Interval (MQTT 5.0 §3.1.2.5, §3.1.3.2.2): a will waits for its delay
//! after the connection ends, and a new Network Connection for the same Client Identifier
//! within the delay deletes it, whatever that connection's Clean Start (MQTT-3.1.2-8,
//! MQTT-3.1.3-9).
//!
//! "Not published" is checked with a barrier: once the new connection has its CONNACK, the
//! router has dealt with the old will; the watcher then publishes QoS 1 to a topic it is
//! subscribed to, and the first PUBLISH it gets back must be its own (messages to one
//! subscriber keep their order, MQTT-4.6.0-6).

mod common;

use std::time::{Duration, Instant};

use common::*;
use roost::mqtt::{Connect, Packet, ProtocolVersion, QoS, ReasonCode};

const WILL_TOPIC: &str = "will/status";

async fn watcher(broker: &TestBroker) -> RawClient {
    let mut watch = broker.connected(ProtocolVersion::V5, "watcher").await;
    watch.subscribe("will/#", QoS::AtLeastOnce).await;
    watch
}

/// A v5 CONNECT of `id` with a will of `delay` seconds and a session expiry of 60 s.
fn with_will(id: &str, delay: Option<u32>, clean_start: bool) -> Connect {
    let mut c = connect(ProtocolVersion::V5, id);
    c.clean_start = clean_start;
    c.properties.session_expiry_interval = Some(60);
    let mut w = will(WILL_TOPIC, "offline", QoS::AtLeastOnce, false);
    w.properties.will_delay_interval = delay;
    c.will = Some(w);
    c
}

async fn connect_as(broker: &TestBroker, c: Connect) -> RawClient {
    let mut client = broker.raw(ProtocolVersion::V5).await;
    let connack = client.connect(c).await;
    assert_eq!(connack.reason, ReasonCode::Success);
    client
}

/// Waits until the router no longer lists `id` as connected: it has handled the loss of
/// its connection.
async fn wait_disconnected(broker: &TestBroker, id: &str) {
    let deadline = Instant::now() + WAIT;
    while broker
        .handle
        .clients()
        .await
        .iter()
        .any(|c| &*c.client_id == id)
    {
        assert!(Instant::now() < deadline, "{id} still listed as connected");
        tokio::task::yield_now().await;
    }
}

/// The watcher's QoS 1 round trip: returns the first PUBLISH it receives after sending its
/// own, which is its own unless something was routed to it before.
async fn barrier(watch: &mut RawClient) -> String {
    watch
        .publish(publish(
            "will/barrier",
            "barrier",
            QoS::AtLeastOnce,
            Some(1),
        ))
        .await;
    loop {
        match watch.recv().await {
            Some(Packet::PubAck(_)) => {}
            Some(Packet::Publish(p)) => {
                if let Some(id) = p.packet_id {
                    watch.puback(id).await;
                }
                return format!("{} {}", p.topic, String::from_utf8_lossy(&p.payload));
            }
            other => panic!("watcher got {other:?}"),
        }
    }
}

#[tokio::test]
async fn reconnect_with_clean_start_after_the_connection_dropped_does_not_publish_the_will() {
    // MQTT-3.1.2-8: the will is not published when "a new Network Connection for the
    // ClientID is opened before the Will Delay Interval has elapsed"; Clean Start 1 ends
    // the old session but that does not publish a will the new connection deleted.
    let broker = start().await;
    let mut watch = watcher(&broker).await;
    let client = connect_as(&broker, with_will("flaky", Some(30), true)).await;
    drop(client);
    wait_disconnected(&broker, "flaky").await;
    let _again = connect_as(&broker, with_will("flaky", Some(30), true)).await;
    assert_eq!(barrier(&mut watch).await, "will/barrier barrier");
}

#[tokio::test]
async fn takeover_with_clean_start_within_the_will_delay_does_not_publish_the_will() {
    // MQTT-3.1.4-3: the old connection gets DISCONNECT 0x8E; its will waits for its delay
    // and the new connection deletes it (MQTT-3.1.2-8, MQTT-3.1.3-9).
    let broker = start().await;
    let mut watch = watcher(&broker).await;
    let mut old = connect_as(&broker, with_will("twin", Some(30), true)).await;
    let _new = connect_as(&broker, with_will("twin", Some(30), true)).await;
    let disconnect = old.expect_disconnect().await.expect("DISCONNECT");
    assert_eq!(disconnect.reason, ReasonCode::SessionTakenOver);
    assert_eq!(barrier(&mut watch).await, "will/barrier barrier");
}

#[tokio::test]
async fn resuming_with_clean_start_0_within_the_will_delay_does_not_publish_the_will() {
    // MQTT-3.1.3-9: a new connection to this session before the delay has passed.
    let broker = start().await;
    let mut watch = watcher(&broker).await;
    let client = connect_as(&broker, with_will("resumer", Some(30), false)).await;
    drop(client);
    wait_disconnected(&broker, "resumer").await;
    let mut again = broker.raw(ProtocolVersion::V5).await;
    let connack = again.connect(with_will("resumer", Some(30), false)).await;
    assert!(connack.session_present);
    assert_eq!(barrier(&mut watch).await, "will/barrier barrier");
}

#[tokio::test]
async fn takeover_without_a_will_delay_publishes_the_old_connections_will() {
    // The old connection ends without DISCONNECT and its will has no delay, so it goes out
    // at once (MQTT-3.1.2-8), before the new connection exists; HiveMQ does the same.
    let broker = start().await;
    let mut watch = watcher(&broker).await;
    let mut old = connect_as(&broker, with_will("hasty", None, false)).await;
    let _new = connect_as(&broker, with_will("hasty", None, false)).await;
    let disconnect = old.expect_disconnect().await.expect("DISCONNECT");
    assert_eq!(disconnect.reason, ReasonCode::SessionTakenOver);
    assert_eq!(barrier(&mut watch).await, "will/status offline");
}

#[tokio::test]
async fn the_will_is_published_when_its_delay_runs_out_without_a_reconnect() {
    // MQTT 5.0 §3.1.2.5: published once the Will Delay Interval has passed (the session,
    // 60 s, outlives it).
    let broker = start().await;
    let mut watch = watcher(&broker).await;
    let client = connect_as(&broker, with_will("gone", Some(2), true)).await;
    let dropped = Instant::now();
    drop(client);
    match watch.recv_within(Duration::from_secs(20)).await {
        Some(Some(Packet::Publish(p))) => {
            assert_eq!(&*p.topic, WILL_TOPIC);
            assert_eq!(&p.payload[..], b"offline");
        }
        other => panic!("expected the will, got {other:?}"),
    }
    assert!(
        dropped.elapsed() >= Duration::from_millis(1900),
        "published after {:?}, before its delay",
        dropped.elapsed()
    );
}

//! Conformance audit: what the server sends around DISCONNECT and closing, and packets
//! sized for a client with a small Maximum Packet Size (MQTT 5.0 §3.14, §4.13,
//! §3.1.2.11.4).

#[path = "common/audit.rs"]
mod audit;
mod common;

use audit::*;
use common::*;
use std::sync::Arc;

use roost::broker::BrokerHandle;
use roost::mqtt::{Packet, ProtocolVersion, QoS};
use roost::store::MemoryStore;

#[tokio::test]
async fn nothing_follows_the_servers_disconnect() {
    // MQTT-3.14.4-1: after sending DISCONNECT the sender sends no more packets, and
    // MQTT-3.14.4-2: it closes the Network Connection. Messages keep arriving for the
    // client while the broker is closing it.
    let broker = start().await;
    let mut c = broker.connected(ProtocolVersion::V5, "last-word").await;
    c.subscribe("flood", QoS::AtMostOnce).await;
    let mut p = broker.connected(ProtocolVersion::V5, "flooder").await;
    for i in 0..200 {
        p.publish(publish("flood", &i.to_string(), QoS::AtMostOnce, None))
            .await;
    }
    // A Subscription Identifier from the client is a Protocol Error (MQTT-3.3.4-6).
    let mut bad = publish("x", "y", QoS::AtMostOnce, None);
    bad.properties.subscription_identifiers = vec![1];
    c.publish(bad).await;
    for i in 200..400 {
        p.publish(publish("flood", &i.to_string(), QoS::AtMostOnce, None))
            .await;
    }
    let packets = until_closed(&mut c).await;
    let position = packets
        .iter()
        .position(|p| matches!(p, Packet::Disconnect(_)))
        .expect("a DISCONNECT");
    assert_eq!(
        position,
        packets.len() - 1,
        "packets after DISCONNECT: {:?}",
        &packets[position..]
    );
    match &packets[position] {
        Packet::Disconnect(d) => assert_eq!(d.reason.code(), 0x82),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn v311_server_never_sends_disconnect() {
    // 3.1.1 §3.14: DISCONNECT is sent only by the client; a 3.1.1 connection closed by the
    // server for a protocol violation ends without one (MQTT-4.8.0-1 / MQTT-4.13.1-1).
    let broker = start().await;
    let mut c = broker.connected(ProtocolVersion::V3_1_1, "v3-close").await;
    c.send(&Packet::Connect(Box::new(connect(
        ProtocolVersion::V3_1_1,
        "v3-close",
    ))))
    .await;
    let packets = until_closed(&mut c).await;
    assert!(
        !packets.iter().any(|p| matches!(p, Packet::Disconnect(_))),
        "{packets:?}"
    );
}

#[tokio::test]
async fn connack_fits_a_small_maximum_packet_size() {
    // MQTT-3.2.0-1: the server sends CONNACK before any other packet, and MQTT-3.1.2-24:
    // no packet larger than the client's Maximum Packet Size. A CONNACK is 5 bytes at
    // its smallest, so the server leaves optional properties out rather than send no
    // CONNACK (the client would wait for it until its own timeout).
    let broker = start().await;
    let mut c = connect(ProtocolVersion::V5, "tiny-max");
    c.properties.maximum_packet_size = Some(16);
    let mut client = broker.raw(ProtocolVersion::V5).await;
    client.send(&Packet::Connect(Box::new(c))).await;
    match client.recv().await {
        Some(Packet::ConnAck(connack)) => assert_eq!(connack.reason.code(), 0),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[tokio::test]
async fn connack_that_cannot_fit_refuses_the_connection() {
    // MQTT-3.1.2-24 with MQTT-3.2.0-1: with the default limits the CONNACK carries Receive
    // Maximum, Maximum Packet Size and Topic Alias Maximum (16 bytes); a client accepting
    // 15 is refused with a bare CONNACK, and one accepting less than that gets nothing but
    // the close. Either way it is not left waiting.
    let broker = start().await;
    let mut c = connect(ProtocolVersion::V5, "small-max");
    c.properties.maximum_packet_size = Some(15);
    let mut client = broker.raw(ProtocolVersion::V5).await;
    client.send(&Packet::Connect(Box::new(c))).await;
    match client.recv().await {
        Some(Packet::ConnAck(connack)) => {
            assert_eq!(connack.reason.code(), 0x83, "{connack:?}");
            assert!(!connack.session_present);
            assert_eq!(connack.properties, Default::default());
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
    assert_eq!(client.recv().await, None, "closed after the refusal");

    let mut c = connect(ProtocolVersion::V5, "tiny-max");
    c.properties.maximum_packet_size = Some(4);
    let mut client = broker.raw(ProtocolVersion::V5).await;
    client.send(&Packet::Connect(Box::new(c))).await;
    assert_eq!(
        client.recv().await,
        None,
        "closed: not even a bare CONNACK fits"
    );
}

#[tokio::test]
async fn will_is_published_when_the_server_closes_on_shutdown() {
    // MQTT-3.1.2-8: the Will Message is published after the Network Connection closes
    // unless it was deleted by a DISCONNECT with 0x00 (or a reconnection in time); MQTT
    // 5.0 §3.1.2.5 lists "the Server closes the Network Connection without first
    // receiving a DISCONNECT" among the cases. Observable with a retained will and a
    // store that outlives the broker.
    let store = MemoryStore::new();
    let first = BrokerHandle::spawn_with_store(Arc::new(store.clone()));
    first.apply(test_config()).await.unwrap();
    let addr = first.stats().listeners[0].address;
    let mut c = connect(ProtocolVersion::V5, "will-at-shutdown");
    c.will = Some(will("ws/will", "server went away", QoS::AtMostOnce, true));
    let mut client = RawClient::open(addr, ProtocolVersion::V5).await;
    assert_eq!(client.connect(c).await.reason.code(), 0);
    first.shutdown().await;
    assert!(until_closed(&mut client).await.len() <= 1);

    let second = BrokerHandle::spawn_with_store(Arc::new(store));
    second.apply(test_config()).await.unwrap();
    let addr = second.stats().listeners[0].address;
    let mut sub = RawClient::open(addr, ProtocolVersion::V5).await;
    sub.connect(connect(ProtocolVersion::V5, "ws-sub")).await;
    sub.subscribe("ws/will", QoS::AtMostOnce).await;
    let got = sub.recv_publish().await;
    assert_eq!(&got.payload[..], b"server went away");
}

#[tokio::test]
async fn delayed_wills_go_out_at_shutdown() {
    // MQTT 5.0 §3.1.2.5: the will is published when its delay has passed or the session
    // ends, whichever first. roost keeps wills only in memory, so at shutdown the sessions
    // as it holds them end: a will still waiting for its delay goes out then, both for a
    // client connected at shutdown and for one that left earlier.
    let store = MemoryStore::new();
    let first = BrokerHandle::spawn_with_store(Arc::new(store.clone()));
    first.apply(test_config()).await.unwrap();
    let addr = first.stats().listeners[0].address;
    let mut clients = Vec::new();
    for id in ["delayed-connected", "delayed-gone"] {
        let mut c = persistent(ProtocolVersion::V5, id, Some(300));
        let mut w = will(&format!("dw/{id}"), id, QoS::AtMostOnce, true);
        w.properties.will_delay_interval = Some(300);
        c.will = Some(w);
        let mut client = RawClient::open(addr, ProtocolVersion::V5).await;
        assert_eq!(client.connect(c).await.reason.code(), 0);
        clients.push(client);
    }
    // One leaves before the shutdown: its will waits for the delay.
    drop(clients.pop());
    wait_offline(&first, "delayed-gone").await;
    first.shutdown().await;

    let second = BrokerHandle::spawn_with_store(Arc::new(store));
    second.apply(test_config()).await.unwrap();
    let addr = second.stats().listeners[0].address;
    let mut sub = RawClient::open(addr, ProtocolVersion::V5).await;
    sub.connect(connect(ProtocolVersion::V5, "dw-sub")).await;
    sub.subscribe("dw/#", QoS::AtMostOnce).await;
    let mut got = [sub.recv_publish().await, sub.recv_publish().await];
    got.sort_by(|a, b| a.topic.cmp(&b.topic));
    assert_eq!(&got[0].payload[..], b"delayed-connected");
    assert_eq!(&got[1].payload[..], b"delayed-gone");
}

#[tokio::test]
async fn will_is_published_when_the_service_is_disabled() {
    // MQTT-3.1.2-8: disabling the service closes connections without a DISCONNECT from
    // the client, so their wills are published.
    let broker = start().await;
    let mut c = connect(ProtocolVersion::V5, "disabled-will");
    c.will = Some(will("dis/will", "service off", QoS::AtMostOnce, true));
    let mut client = broker.raw(ProtocolVersion::V5).await;
    assert_eq!(client.connect(c).await.reason.code(), 0);
    let mut off = test_config();
    off.broker.enabled = false;
    broker.handle.apply(off).await.unwrap();
    assert!(until_closed(&mut client).await.len() <= 1);
    broker.handle.apply(test_config()).await.unwrap();
    let addr = broker.handle.stats().listeners[0].address;
    let mut sub = RawClient::open(addr, ProtocolVersion::V5).await;
    sub.connect(connect(ProtocolVersion::V5, "dis-sub")).await;
    sub.subscribe("dis/will", QoS::AtMostOnce).await;
    assert_eq!(&sub.recv_publish().await.payload[..], b"service off");
}

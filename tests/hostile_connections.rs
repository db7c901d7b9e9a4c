//! Hostile input aimed at a connection's resources, against the real `roost serve` binary
//! (a child process, so that its memory can be measured from outside): a client that
//! writes and never reads, and thousands of idle subscribers.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use common::child::ChildBroker;
use common::*;
use roost::mqtt::{Packet, ProtocolVersion, QoS, encode};
use tokio::io::AsyncWriteExt;

const MIB: u64 = 1024 * 1024;

/// A v3.1.1 client gets service from `addr`: it subscribes and receives its own QoS 1
/// message (a full round trip through the router).
async fn gets_service(addr: SocketAddr, client_id: &str) {
    let mut client = RawClient::open(addr, ProtocolVersion::V3_1_1).await;
    let connack = client
        .connect(connect(ProtocolVersion::V3_1_1, client_id))
        .await;
    assert_eq!(connack.reason.code(), 0);
    let topic = format!("service/{client_id}");
    client.subscribe(&topic, QoS::AtLeastOnce).await;
    client
        .publish(publish(&topic, "still served", QoS::AtLeastOnce, Some(7)))
        .await;
    let mut got_puback = false;
    let mut got_publish = false;
    while !(got_puback && got_publish) {
        match client.recv().await {
            Some(Packet::PubAck(_)) => got_puback = true,
            Some(Packet::Publish(p)) => {
                assert_eq!(&p.payload[..], b"still served");
                client.puback(p.packet_id.expect("QoS 1")).await;
                got_publish = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// MQTT-3.12.4-1 makes every PINGREQ owe a PINGRESP, but a client that never reads them
/// must not make the broker hold them without bound: once its outgoing backlog is full, the
/// broker stops reading its socket (TCP backpressure) instead of queueing more.
#[tokio::test]
async fn an_unread_ping_flood_does_not_grow_the_broker() {
    const PINGS: usize = 1_000_000;
    const BATCH: usize = 32 * 1024;
    let broker = ChildBroker::start();
    gets_service(broker.addr, "warm-up").await;
    let before = broker.rss_bytes();

    let mut flooder = RawClient::open(broker.addr, ProtocolVersion::V3_1_1).await;
    flooder
        .connect(connect(ProtocolVersion::V3_1_1, "flooder"))
        .await;
    let mut batch = BytesMut::new();
    for _ in 0..BATCH {
        encode(
            &Packet::PingReq,
            ProtocolVersion::V3_1_1,
            u32::MAX,
            &mut batch,
        )
        .expect("encode");
    }
    // Writes until all are sent or the broker stops taking them for a second (backpressure:
    // it stopped reading, as it should).
    let mut sent = 0;
    while sent < PINGS {
        match tokio::time::timeout(Duration::from_secs(1), flooder.stream.write_all(&batch)).await {
            Ok(Ok(())) => sent += BATCH,
            Ok(Err(error)) => panic!("the broker closed the flooding connection: {error}"),
            Err(_stalled) => break,
        }
    }

    gets_service(broker.addr, "bystander").await;
    // The broker may still be working through what it read: watch it for a second.
    let mut peak = broker.rss_bytes();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak = peak.max(broker.rss_bytes());
    }
    let grown = peak.saturating_sub(before);
    eprintln!(
        "{sent} unread PINGREQs: broker RSS grew by {} KiB",
        grown / 1024
    );
    assert!(
        grown <= 4 * MIB,
        "{sent} unread PINGREQs grew the broker by {} KiB",
        grown / 1024
    );
}

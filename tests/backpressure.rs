//! Backpressure instead of loss: a publisher that sends QoS 0 as fast as TCP takes it is
//! slowed down (its socket is not read) while its subscriber catches up; nothing is dropped
//! for a subscriber that keeps reading.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use bytes::BytesMut;
use common::*;
use roost::mqtt::{Packet, ProtocolVersion, QoS, encode};

/// QoS 0 messages the publisher sends in one burst: more than the backlog a subscriber may
/// have waiting before QoS 0 is dropped (100,000), so that a broker that does not slow the
/// publisher down loses some.
const FLOOD: usize = 150_000;

/// Encodes `packet` as MQTT 3.1.1.
fn bytes_of(packet: &Packet) -> BytesMut {
    let mut out = BytesMut::new();
    encode(packet, ProtocolVersion::V3_1_1, u32::MAX, &mut out).expect("encodes");
    out
}

/// Connects with blocking I/O on its own thread and writes the whole flood in large writes,
/// then a QoS 1 message that marks the end; returns once the PUBACK of the marker arrived.
fn flood(addr: std::net::SocketAddr) {
    let mut socket = TcpStream::connect(addr).expect("connect");
    socket
        .write_all(&bytes_of(&Packet::Connect(Box::new(connect(
            ProtocolVersion::V3_1_1,
            "flooder",
        )))))
        .expect("CONNECT");
    let mut connack = [0u8; 4];
    socket.read_exact(&mut connack).expect("CONNACK");
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x00], "accepted");

    let mut chunk = BytesMut::new();
    for index in 0..FLOOD {
        let message = publish("flood", &index.to_string(), QoS::AtMostOnce, None);
        chunk.extend_from_slice(&bytes_of(&Packet::Publish(message)));
        if chunk.len() >= 64 * 1024 {
            socket.write_all(&chunk).expect("flood");
            chunk.clear();
        }
    }
    let end = publish("flood", "end", QoS::AtLeastOnce, Some(1));
    chunk.extend_from_slice(&bytes_of(&Packet::Publish(end)));
    socket.write_all(&chunk).expect("flood");
    let mut puback = [0u8; 4];
    socket.read_exact(&mut puback).expect("PUBACK");
    assert_eq!(puback, [0x40, 0x02, 0x00, 0x01], "PUBACK of the end marker");
}

// One thread, as `roost serve` runs by default: a reader that never yields would starve the
// router and the subscriber's writer here.
#[tokio::test]
async fn a_flat_out_qos0_publisher_is_slowed_down_not_dropped() {
    let broker = start().await;
    let mut subscriber = broker
        .connected(ProtocolVersion::V3_1_1, "keeps-reading")
        .await;
    subscriber.subscribe("flood", QoS::AtLeastOnce).await;

    let addr = broker.addr;
    let publisher = std::thread::spawn(move || flood(addr));

    // Messages of one publisher on one topic arrive in order (MQTT-4.6.0-5), so every
    // flood message comes before the end marker.
    let mut received = 0usize;
    loop {
        match subscriber.recv().await {
            Some(Packet::Publish(p)) if &p.payload[..] == b"end" => {
                if let Some(id) = p.packet_id {
                    subscriber.puback(id).await;
                }
                break;
            }
            Some(Packet::Publish(p)) => {
                assert_eq!(
                    p.payload,
                    received.to_string().as_bytes(),
                    "in order, none missing"
                );
                received += 1;
            }
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }
    publisher.join().expect("the publisher thread");
    assert_eq!(received, FLOOD);
    assert_eq!(broker.handle.stats().messages_dropped, 0);
}

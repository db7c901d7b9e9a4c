//! A DISCONNECT (or refusing CONNACK) that the server sends reaches the client even when the
//! client is still writing. Closing a socket with unread input makes the kernel answer with
//! RST, which can destroy the reason code in flight; the server shuts down its write side
//! and discards input for a short grace period first (MQTT 5.0 §4.13: the server sends
//! DISCONNECT with a reason code before closing; MQTT-3.2.2-5 for CONNACK refusals).

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::*;
use roost::mqtt::{Packet, ProtocolVersion, PubResponse, QoS, ReasonCode, decode, encode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Encodes `packets` for one write.
fn bytes_of(version: ProtocolVersion, packets: &[Packet]) -> BytesMut {
    let mut out = BytesMut::new();
    for packet in packets {
        encode(packet, version, u32::MAX, &mut out).expect("encode");
    }
    out
}

/// Writes `bytes` several times, a little apart, as a client that has not noticed the close
/// yet does. Every write must succeed: the server is still taking input.
async fn keep_writing(client: &mut RawClient, bytes: &[u8]) {
    for round in 0..5 {
        if let Err(error) = client.stream.write_all(bytes).await {
            panic!("write {round} failed: {error} (the server reset the connection)");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads until the server closes, failing on a reset: every packet, in order.
async fn read_to_end(client: &mut RawClient) -> Vec<Packet> {
    let mut bytes = BytesMut::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, client.stream.read_buf(&mut bytes)).await {
            Err(_) => panic!("the server did not close the connection"),
            Ok(Ok(0)) => break,
            Ok(Ok(_)) => {}
            Ok(Err(error)) => panic!("read failed: {error} (the server reset the connection)"),
        }
    }
    let mut packets = Vec::new();
    while let Some(packet) = decode(&mut bytes, Some(client.version), u32::MAX).expect("decode") {
        packets.push(packet);
    }
    packets
}

/// The flow of the Paho interoperability suite's `test_flow_control2`: Receive Maximum + 1
/// QoS 2 PUBLISHes sent without reading (MQTT-3.3.4-9 forbids it; the server answers with
/// DISCONNECT 0x93 Receive Maximum exceeded, MQTT 5.0 §4.9), then PUBRELs written while the
/// server closes. The client reads the PUBRECs, then the DISCONNECT, then an orderly end.
#[tokio::test]
async fn receive_maximum_exceeded_disconnect_reaches_a_client_that_keeps_writing() {
    const RECEIVE_MAXIMUM: u16 = 3;
    let broker = start_with(|c| c.limits.max_inflight = RECEIVE_MAXIMUM).await;
    let mut client = broker.raw(ProtocolVersion::V5).await;
    let connack = client
        .connect(connect(ProtocolVersion::V5, "over-the-limit"))
        .await;
    assert_eq!(connack.properties.receive_maximum, Some(RECEIVE_MAXIMUM));

    let publishes: Vec<Packet> = (1..=RECEIVE_MAXIMUM + 1)
        .map(|id| {
            Packet::Publish(publish(
                "flow/control",
                "payload",
                QoS::ExactlyOnce,
                Some(id),
            ))
        })
        .collect();
    client
        .send_bytes(&bytes_of(ProtocolVersion::V5, &publishes))
        .await;
    let releases: Vec<Packet> = (1..=RECEIVE_MAXIMUM)
        .map(|id| Packet::PubRel(PubResponse::success(id)))
        .collect();
    keep_writing(&mut client, &bytes_of(ProtocolVersion::V5, &releases)).await;

    let packets = read_to_end(&mut client).await;
    let (last, before) = packets.split_last().expect("packets before the close");
    let Packet::Disconnect(disconnect) = last else {
        panic!("the last packet is not DISCONNECT: {packets:?}");
    };
    assert_eq!(disconnect.reason, ReasonCode::ReceiveMaximumExceeded);
    let acknowledged: Vec<u16> = before
        .iter()
        .filter_map(|packet| match packet {
            Packet::PubRec(rec) => Some(rec.packet_id),
            _ => None,
        })
        .collect();
    assert_eq!(
        acknowledged,
        (1..=RECEIVE_MAXIMUM).collect::<Vec<_>>(),
        "the PUBRECs of the accepted PUBLISHes come before the DISCONNECT: {packets:?}"
    );
}

/// A CONNACK refusal reaches a client that wrote more after its CONNECT: a 3.1.1 client
/// with an empty client id and Clean Session 0 gets 0x02 Identifier rejected
/// (MQTT-3.1.3-8, MQTT-3.2.2-5), then an orderly close.
#[tokio::test]
async fn refusing_connack_reaches_a_client_that_keeps_writing() {
    let broker = start().await;
    let mut client = broker.raw(ProtocolVersion::V3_1_1).await;
    let mut c = connect(ProtocolVersion::V3_1_1, "");
    c.clean_start = false;
    client.send(&Packet::Connect(Box::new(c))).await;
    let pings = bytes_of(ProtocolVersion::V3_1_1, &[Packet::PingReq, Packet::PingReq]);
    keep_writing(&mut client, &pings).await;
    let packets = read_to_end(&mut client).await;
    let [Packet::ConnAck(connack)] = &packets[..] else {
        panic!("expected only CONNACK: {packets:?}");
    };
    assert_eq!(connack.reason, ReasonCode::ClientIdentifierNotValid);
}

/// The same for a v5 refusal: a CONNECT naming an Authentication Method roost does not
/// offer gets 0x8C (MQTT-4.12.0-1), whatever the client writes next.
#[tokio::test]
async fn v5_refusing_connack_reaches_a_client_that_keeps_writing() {
    let broker = start().await;
    let mut client = broker.raw(ProtocolVersion::V5).await;
    let mut c = connect(ProtocolVersion::V5, "unknown-method");
    c.properties.authentication_method = Some("SCRAM-SHA-1".into());
    client.send(&Packet::Connect(Box::new(c))).await;
    let pings = bytes_of(ProtocolVersion::V5, &[Packet::PingReq, Packet::PingReq]);
    keep_writing(&mut client, &pings).await;
    let packets = read_to_end(&mut client).await;
    let [Packet::ConnAck(connack)] = &packets[..] else {
        panic!("expected only CONNACK: {packets:?}");
    };
    assert_eq!(connack.reason, ReasonCode::BadAuthenticationMethod);
}

/// Takeover: the old connection gets DISCONNECT 0x8E Session taken over (MQTT-3.1.4-3, MQTT
/// 5.0 §4.13) even while it is writing.
#[tokio::test]
async fn takeover_disconnect_reaches_a_client_that_keeps_writing() {
    let broker = start().await;
    let mut old = broker.connected(ProtocolVersion::V5, "taken").await;
    let _new = broker.connected(ProtocolVersion::V5, "taken").await;
    let pings = bytes_of(ProtocolVersion::V5, &[Packet::PingReq]);
    keep_writing(&mut old, &pings).await;
    let packets = read_to_end(&mut old).await;
    let Some(Packet::Disconnect(disconnect)) = packets.last() else {
        panic!("the last packet is not DISCONNECT: {packets:?}");
    };
    assert_eq!(disconnect.reason, ReasonCode::SessionTakenOver);
}

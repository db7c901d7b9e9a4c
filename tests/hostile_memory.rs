//! Hostile input aimed at a connection's resources, against the real `roost serve` binary
//! (a child process, so that its memory can be measured from outside): a client that
//! writes and never reads, and thousands of idle subscribers.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::child::ChildBroker;
use common::*;
use futures::StreamExt;
use roost::mqtt::{Packet, ProtocolVersion, QoS, encode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

/// How many idle subscribers the broker holds at once in the memory test.
const IDLE_CONNECTIONS: usize = 9_000;
/// At most this much broker memory per idle connection subscribed to one topic. Issue 6
/// requires 8 KB; roost needs about 3.4 KB in a release build and about 4.6 KB in the debug
/// build this suite runs (9,000 connections; Mosquitto 2.0 needs about 1.0 KB). The ceiling
/// keeps a margin for allocator noise and still catches a regression of a kilobyte.
const BYTES_PER_IDLE_CONNECTION: u64 = 5632;

/// One idle subscriber: CONNECT and SUBSCRIBE in one write, then CONNACK and SUBACK read.
async fn idle_subscriber(addr: SocketAddr, index: usize) -> TcpStream {
    let version = ProtocolVersion::V3_1_1;
    let mut out = BytesMut::new();
    let mut c = connect(version, &format!("idle-{index}"));
    c.keep_alive = 300;
    encode(&Packet::Connect(Box::new(c)), version, u32::MAX, &mut out).expect("encode");
    let topic = format!("idle/{index}");
    encode(
        &Packet::Subscribe(subscribe(1, &topic, QoS::AtMostOnce)),
        version,
        u32::MAX,
        &mut out,
    )
    .expect("encode");
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(&out).await.expect("write");
    // CONNACK (accepted, no session) then SUBACK for packet id 1, granted QoS 0.
    let mut answer = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(60), stream.read_exact(&mut answer))
        .await
        .unwrap_or_else(|_| panic!("no CONNACK/SUBACK for idle-{index}"))
        .unwrap_or_else(|error| panic!("idle-{index}: {error}"));
    assert_eq!(answer, [0x20, 2, 0, 0, 0x90, 3, 0, 1, 0], "idle-{index}");
    stream
}

/// Thousands of idle connections, each subscribed to one topic, cost the broker at most
/// [`BYTES_PER_IDLE_CONNECTION`] each, and the broker still serves everyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cost_little_memory() {
    // The test holds one socket per connection too: raise its own open-file limit (the
    // child inherits it, and raises its own as well).
    let limit = rlimit::increase_nofile_limit(u64::MAX).expect("getrlimit");
    assert!(
        limit > IDLE_CONNECTIONS as u64 + 100,
        "the open-file limit {limit} is too low for {IDLE_CONNECTIONS} connections"
    );
    let broker = ChildBroker::start();
    gets_service(broker.addr, "warm-up").await;
    let before = broker.rss_bytes();

    let started = Instant::now();
    let addr = broker.addr;
    let idle: Vec<TcpStream> = futures::stream::iter(0..IDLE_CONNECTIONS)
        .map(|index| idle_subscriber(addr, index))
        .buffered(64)
        .collect()
        .await;
    assert_eq!(idle.len(), IDLE_CONNECTIONS);
    let after = broker.rss_bytes();
    let per_connection = after.saturating_sub(before) / IDLE_CONNECTIONS as u64;
    eprintln!(
        "{IDLE_CONNECTIONS} idle connections in {:?}: broker RSS {} KiB -> {} KiB, {per_connection} bytes each",
        started.elapsed(),
        before / 1024,
        after / 1024
    );

    gets_service(broker.addr, "bystander").await;
    // One of the idle subscribers still receives what is published to its topic.
    let mut publisher = RawClient::open(broker.addr, ProtocolVersion::V3_1_1).await;
    publisher
        .connect(connect(ProtocolVersion::V3_1_1, "publisher"))
        .await;
    publisher
        .publish(publish("idle/4321", "wake up", QoS::AtMostOnce, None))
        .await;
    let mut idle = idle;
    let mut received = [0u8; 2 + 2 + 9 + 7];
    tokio::time::timeout(WAIT, idle[4321].read_exact(&mut received))
        .await
        .expect("the idle subscriber receives its message")
        .expect("read");
    assert!(received.ends_with(b"idle/4321wake up"), "{received:?}");

    assert!(
        per_connection <= BYTES_PER_IDLE_CONNECTION,
        "{per_connection} bytes per idle connection (at most {BYTES_PER_IDLE_CONNECTION})"
    );
}

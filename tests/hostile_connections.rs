//! Hostile connections: floods past `limits.max_connections` and sockets that never send
//! CONNECT. The broker runs in this process, so both ends of every socket count against
//! this process's open-file limit.

mod common;

use std::time::Duration;

use common::*;
use roost::mqtt::{Packet, ProtocolVersion, QoS, ReasonCode};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How long a refused socket may wait for its answer (CONNACK or close). Well below the
/// connect timeout the flood test configures, so a broker that keeps refused sockets until
/// the connect timeout fails.
const REFUSED_WITHIN: Duration = Duration::from_secs(8);
const FLOOD_CONNECT_TIMEOUT_SECS: u16 = 30;

/// Raises the soft open-file limit to the hard one and checks that `needed` descriptors fit.
fn raise_open_file_limit(needed: u64) {
    let raised = rlimit::increase_nofile_limit(u64::MAX).expect("raise RLIMIT_NOFILE");
    assert!(
        raised >= needed,
        "this test needs {needed} open files but the limit is {raised}: raise the hard limit \
         (ulimit -Hn)"
    );
}

/// A QoS 1 PUBLISH to a topic the client subscribed to comes back, and is acknowledged:
/// proof that the client's connection and the router work.
async fn qos1_round_trip(client: &mut RawClient, topic: &str, packet_id: u16) {
    client
        .publish(publish(topic, "ping", QoS::AtLeastOnce, Some(packet_id)))
        .await;
    let (mut acknowledged, mut delivered) = (false, false);
    while !(acknowledged && delivered) {
        match client.recv().await {
            Some(Packet::PubAck(ack)) if ack.packet_id == packet_id => acknowledged = true,
            Some(Packet::Publish(p)) if &*p.topic == topic => {
                if let Some(id) = p.packet_id {
                    client.puback(id).await;
                }
                delivered = true;
            }
            other => panic!("expected PUBACK and PUBLISH, got {other:?}"),
        }
    }
}

/// What a socket over the limit saw.
#[derive(Debug)]
enum Refusal {
    /// CONNACK with this return code (v5 reason code or 3.1.1 return code), then close.
    ConnAck(u8),
    /// Closed without an answer.
    Closed,
}

/// Opens a socket, sends CONNECT unless `silent`, and waits for the refusal.
async fn refused_socket(
    addr: std::net::SocketAddr,
    version: ProtocolVersion,
    silent: bool,
    id: usize,
) -> (Refusal, Duration) {
    let started = Instant::now();
    let mut client = RawClient::open(addr, version).await;
    if !silent {
        client
            .send(&Packet::Connect(Box::new(connect(
                version,
                &format!("flood-{id}"),
            ))))
            .await;
    }
    let refusal = match client.recv_within(REFUSED_WITHIN).await {
        None => panic!("socket {id} neither answered nor closed within {REFUSED_WITHIN:?}"),
        Some(None) => Refusal::Closed,
        Some(Some(Packet::ConnAck(connack))) => {
            // After a refusing CONNACK the broker closes the connection (MQTT-3.2.2-5).
            assert_eq!(client.recv_within(REFUSED_WITHIN).await, Some(None));
            Refusal::ConnAck(match version {
                ProtocolVersion::V5 => connack.reason.code(),
                _ => connack.reason.to_v3_connack_code(),
            })
        }
        Some(Some(other)) => panic!("socket {id}: expected CONNACK or close, got {other:?}"),
    };
    (refusal, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_past_the_connection_limit_is_refused_at_accept() {
    const LIMIT: usize = 4;
    const FLOOD: usize = LIMIT * 5;
    raise_open_file_limit(1024);
    let broker = start_with(|c| {
        c.limits.max_connections = LIMIT as u32;
        c.limits.connect_timeout_secs = FLOOD_CONNECT_TIMEOUT_SECS;
    })
    .await;
    let mut steady = broker.connected(ProtocolVersion::V5, "steady").await;
    steady.subscribe("steady/echo", QoS::AtLeastOnce).await;
    let mut fillers = Vec::new();
    for i in 1..LIMIT {
        fillers.push(
            broker
                .connected(ProtocolVersion::V3_1_1, &format!("filler-{i}"))
                .await,
        );
    }
    assert_eq!(broker.handle.stats().connections, LIMIT as u64);

    // A third each: v5 CONNECT, v3.1.1 CONNECT, nothing at all.
    let mut flood = JoinSet::new();
    for i in 0..FLOOD {
        let (version, silent) = match i % 3 {
            0 => (ProtocolVersion::V5, false),
            1 => (ProtocolVersion::V3_1_1, false),
            _ => (ProtocolVersion::V5, true),
        };
        flood.spawn(refused_socket(broker.addr, version, silent, i));
    }
    // While the flood is refused, no refused socket becomes a connection.
    let mut most_open = 0;
    while !flood.is_empty() {
        most_open = most_open.max(broker.handle.stats().connections);
        tokio::select! {
            done = flood.join_next() => {
                let (refusal, took) = done.expect("a flood task").expect("flood task panicked");
                assert!(took < REFUSED_WITHIN, "refused after {took:?}");
                match refusal {
                    // 0x89 Server busy (MQTT 5.0 §3.2.2.2), 0x03 Server unavailable
                    // (MQTT 3.1.1 §3.2.2.3).
                    Refusal::ConnAck(code) => assert!(code == 0x89 || code == 0x03, "{code:#x}"),
                    Refusal::Closed => {}
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
    }
    assert!(
        most_open <= LIMIT as u64,
        "{most_open} connections open with a limit of {LIMIT}"
    );
    assert_eq!(broker.handle.stats().connections_refused, FLOOD as u64);

    // The client connected before the flood never noticed.
    qos1_round_trip(&mut steady, "steady/echo", 1).await;

    // A freed slot is taken by the next client; the refused sockets hold none.
    drop(fillers.pop());
    let mut attempts = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = loop {
        attempts += 1;
        let mut client = broker.raw(ProtocolVersion::V5).await;
        let connack = client.connect(connect(ProtocolVersion::V5, "after")).await;
        if connack.reason == ReasonCode::Success {
            break client;
        }
        assert_eq!(connack.reason, ReasonCode::ServerBusy);
        assert!(Instant::now() < deadline, "no slot freed in 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    after.subscribe("after/echo", QoS::AtLeastOnce).await;
    qos1_round_trip(&mut after, "after/echo", 2).await;
    let mut one_too_many = broker.raw(ProtocolVersion::V5).await;
    let connack = one_too_many
        .connect(connect(ProtocolVersion::V5, "one-too-many"))
        .await;
    assert_eq!(connack.reason, ReasonCode::ServerBusy);
    assert_eq!(
        broker.handle.stats().connections_refused,
        (FLOOD + attempts) as u64,
        "every refusal is counted"
    );
    qos1_round_trip(&mut steady, "steady/echo", 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_are_closed_by_the_connect_timeout() {
    // MQTT-3.1.4-1 allows closing a connection that sends no CONNECT "within a reasonable
    // amount of time"; roost's is limits.connect_timeout_secs.
    const SILENT: usize = 500;
    raise_open_file_limit(2 * SILENT as u64 + 256);
    let broker = start_with(|c| c.limits.connect_timeout_secs = 2).await;
    let mut steady = broker.connected(ProtocolVersion::V5, "steady").await;
    steady.subscribe("steady/echo", QoS::AtLeastOnce).await;

    let opened = Instant::now();
    let mut silent = Vec::with_capacity(SILENT);
    for _ in 0..SILENT {
        silent.push(TcpStream::connect(broker.addr).await.expect("connect"));
    }
    broker
        .wait_stats("every silent socket accepted", |s| {
            s.connections == SILENT as u64 + 1
        })
        .await;
    qos1_round_trip(&mut steady, "steady/echo", 1).await;

    // Every silent socket is closed (end of stream), none before the connect timeout.
    let deadline = Instant::now() + Duration::from_secs(15);
    for (index, socket) in silent.iter_mut().enumerate() {
        let mut byte = [0u8; 1];
        match tokio::time::timeout_at(deadline, socket.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {}
            Ok(Ok(_)) => panic!("silent socket {index} was sent data"),
            Err(_) => panic!("silent socket {index} still open after the connect timeout"),
        }
    }
    assert!(opened.elapsed() >= Duration::from_secs(2));
    broker
        .wait_stats("only the steady client's connection left", |s| {
            s.connections == 1
        })
        .await;
    assert_eq!(broker.handle.stats().connections_refused, 0);
    qos1_round_trip(&mut steady, "steady/echo", 2).await;
}

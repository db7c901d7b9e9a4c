//! A child `roost serve` in an unbuffered disk mode killed (SIGKILL) at random moments under
//! continuous QoS 1 and QoS 2 load, restarted, and killed again, for about 90 seconds
//! (`ROOST_KILL_LOOP_SECS` sets another length; `tests/scripts/kill_loop.sh` runs it longer).
//!
//! Publishers with persistent sessions send numbered messages and count one as acknowledged
//! at its PUBACK/PUBREC; after a kill they reconnect and resend what was not acknowledged
//! with DUP and the same packet id, and PUBREL for what was (MQTT-4.4.0-1). A persistent
//! subscriber, offline while the load runs, drains its queue after every restart. At the
//! end no acknowledged message may be missing, and no QoS 2 message may arrive twice
//! (MQTT-4.3.3): the acknowledgement waited for the fsync covering the message, and its
//! packet id was stored with it.

// The disk modes need the disk store.
#![cfg(feature = "disk-store")]

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::child::ChildBroker;
use common::*;
use roost::mqtt::{
    Connect, Disconnect, Packet, ProtocolVersion, PubResponse, Publish, QoS, ReasonCode,
};

fn persistent(id: &str) -> Connect {
    let mut c = connect(ProtocolVersion::V5, id);
    c.clean_start = false;
    c.properties.session_expiry_interval = Some(3600);
    c
}

fn start(dir: &Path, config: &Path) -> ChildBroker {
    ChildBroker::start_with_args(&[
        "--persistence",
        "disk-unbuffered",
        "--data-dir",
        dir.to_str().expect("UTF-8 path"),
        "--config",
        config.to_str().expect("UTF-8 path"),
    ])
}

/// One publisher's state across kills.
struct Publisher {
    id: String,
    qos: QoS,
    next: u32,
    /// Sent, not yet acknowledged: resent with DUP after a reconnect.
    unacknowledged: Option<(u16, String)>,
    /// QoS 2 acknowledged with PUBREC, PUBCOMP not yet received.
    unreleased: Option<u16>,
    acknowledged: Vec<String>,
}

impl Publisher {
    fn packet_id(&self) -> u16 {
        (self.next % 60_000) as u16 + 1
    }
}

/// Sends `packet`; false when the connection is gone (the broker was killed).
async fn try_send(client: &mut RawClient, packet: &Packet) -> bool {
    use tokio::io::AsyncWriteExt;
    let mut out = bytes::BytesMut::new();
    roost::mqtt::encode(packet, client.version, u32::MAX, &mut out).expect("encode");
    client.stream.write_all(&out).await.is_ok()
}

/// Runs `publisher` against `addr` until the connection breaks, or until `stop_at` once
/// nothing is left mid-flight.
async fn publish_until_broken(addr: SocketAddr, publisher: &mut Publisher, stop_at: Instant) {
    let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let mut client = RawClient::from_stream(stream, ProtocolVersion::V5);
    let connect = Packet::Connect(Box::new(persistent(&publisher.id)));
    if !try_send(&mut client, &connect).await {
        return;
    }
    match client.recv_within(Duration::from_secs(10)).await {
        Some(Some(Packet::ConnAck(_))) => {}
        _ => return,
    }
    loop {
        if let Some(packet_id) = publisher.unreleased {
            if !try_send(
                &mut client,
                &Packet::PubRel(PubResponse::success(packet_id)),
            )
            .await
            {
                return;
            }
            match client.recv_within(Duration::from_secs(10)).await {
                Some(Some(Packet::PubComp(comp))) => {
                    // 0x92 when the broker had completed it before the kill and the PUBCOMP
                    // was lost with the connection (MQTT 5.0 §3.7.2.1); the message itself is
                    // checked by the counts below.
                    assert!(
                        matches!(
                            comp.reason,
                            ReasonCode::Success | ReasonCode::PacketIdentifierNotFound
                        ),
                        "{}: {comp:?}",
                        publisher.id
                    );
                    publisher.unreleased = None;
                }
                _ => return,
            }
        }
        if Instant::now() >= stop_at && publisher.unacknowledged.is_none() {
            let _ = try_send(
                &mut client,
                &Packet::Disconnect(Disconnect::new(ReasonCode::Success)),
            )
            .await;
            return;
        }
        let (packet_id, payload, dup) = match publisher.unacknowledged.clone() {
            Some((packet_id, payload)) => (packet_id, payload, true),
            None => {
                let payload = format!("{}-{}", publisher.id, publisher.next);
                let packet_id = publisher.packet_id();
                publisher.next += 1;
                publisher.unacknowledged = Some((packet_id, payload.clone()));
                (packet_id, payload, false)
            }
        };
        let mut p: Publish = publish("load/t", &payload, publisher.qos, Some(packet_id));
        p.dup = dup;
        if !try_send(&mut client, &Packet::Publish(p)).await {
            return;
        }
        match client.recv_within(Duration::from_secs(10)).await {
            Some(Some(Packet::PubAck(ack))) if ack.packet_id == packet_id => {
                assert!(!ack.reason.is_error(), "{ack:?}");
            }
            Some(Some(Packet::PubRec(rec))) if rec.packet_id == packet_id => {
                assert!(!rec.reason.is_error(), "{rec:?}");
                publisher.unreleased = Some(packet_id);
            }
            Some(Some(other)) => panic!("{}: unexpected {other:?}", publisher.id),
            _ => return,
        }
        publisher.unacknowledged = None;
        publisher.acknowledged.push(payload);
    }
}

/// Connects the subscriber and drains its queue up to a marker; `None` if the broker went
/// away meanwhile (it is not killed while draining, so that does not happen).
async fn drain(addr: SocketAddr, round: usize, seen: &mut HashMap<String, usize>) {
    let mut sink = RawClient::open(addr, ProtocolVersion::V5).await;
    sink.connect(persistent("sink")).await;
    let marker = format!("marker-{round}");
    let mut marker_publisher = RawClient::open(addr, ProtocolVersion::V5).await;
    marker_publisher
        .connect(connect(ProtocolVersion::V5, "marker"))
        .await;
    marker_publisher
        .publish(publish("load/marker", &marker, QoS::AtLeastOnce, Some(1)))
        .await;
    assert!(matches!(
        marker_publisher.recv().await,
        Some(Packet::PubAck(_))
    ));
    loop {
        match sink.recv().await {
            Some(Packet::Publish(p)) => {
                let payload = String::from_utf8_lossy(&p.payload).into_owned();
                match (p.qos, p.packet_id) {
                    (QoS::AtLeastOnce, Some(id)) => sink.puback(id).await,
                    (QoS::ExactlyOnce, Some(id)) => {
                        sink.send(&Packet::PubRec(PubResponse::success(id))).await
                    }
                    _ => {}
                }
                if payload == marker {
                    break;
                }
                if !payload.starts_with("marker-") {
                    *seen.entry(payload).or_default() += 1;
                }
            }
            Some(Packet::PubRel(rel)) => {
                sink.send(&Packet::PubComp(PubResponse::success(rel.packet_id)))
                    .await
            }
            other => panic!("sink: unexpected {other:?}"),
        }
    }
    // Everything it was sent is acknowledged before it leaves: PUBCOMPs for the PUBRELs
    // that follow, then a barrier.
    loop {
        match sink.recv_within(Duration::from_millis(300)).await {
            Some(Some(Packet::PubRel(rel))) => {
                sink.send(&Packet::PubComp(PubResponse::success(rel.packet_id)))
                    .await
            }
            Some(Some(other)) => panic!("sink: unexpected {other:?}"),
            _ => break,
        }
    }
    sink.send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbuffered_mode_loses_no_acknowledged_message_and_duplicates_no_qos2_across_kills() {
    let length = std::env::var("ROOST_KILL_LOOP_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(90u64);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("roost.ron");
    // Room for everything a round queues for the offline subscriber.
    std::fs::write(&config, "(limits: (max_queued_messages: 1000000))").expect("config");
    let data = dir.path().join("data");

    let broker = start(&data, &config);
    let mut sink = RawClient::open(broker.addr, ProtocolVersion::V5).await;
    sink.connect(persistent("sink")).await;
    assert_eq!(
        sink.subscribe("load/#", QoS::ExactlyOnce).await,
        [ReasonCode::GrantedQoS2]
    );
    sink.send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
        .await;
    let mut broker = Some(broker);

    let mut publishers: Vec<Publisher> = [
        ("q1-a", QoS::AtLeastOnce),
        ("q1-b", QoS::AtLeastOnce),
        ("q2-a", QoS::ExactlyOnce),
        ("q2-b", QoS::ExactlyOnce),
    ]
    .into_iter()
    .map(|(id, qos)| Publisher {
        id: id.into(),
        qos,
        next: 0,
        unacknowledged: None,
        unreleased: None,
        acknowledged: Vec::new(),
    })
    .collect();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let end = Instant::now() + Duration::from_secs(length);
    let mut rounds = 0;
    // A simple xorshift: kill moments vary from round to round.
    let mut random: u64 = 0x9E37_79B9_7F4A_7C15;
    while Instant::now() < end {
        rounds += 1;
        let running = match broker.take() {
            Some(running) => running,
            None => start(&data, &config),
        };
        drain(running.addr, rounds, &mut seen).await;
        let addr = running.addr;
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        let kill_after = Duration::from_millis(200 + random % 1500);
        let stop_at = Instant::now() + Duration::from_secs(30);
        let load = futures::future::join_all(
            publishers
                .iter_mut()
                .map(|p| publish_until_broken(addr, p, stop_at)),
        );
        tokio::pin!(load);
        let finished = tokio::select! {
            _ = &mut load => true,
            _ = tokio::time::sleep(kill_after) => false,
        };
        running.kill();
        if !finished {
            // The publishers see their connections break and stop.
            load.await;
        }
    }
    // A last restart: everything acknowledged must be there.
    let running = start(&data, &config);
    // Publishers finish what was left mid-flight: resends and PUBRELs.
    let settle = Instant::now();
    for publisher in &mut publishers {
        publish_until_broken(running.addr, publisher, settle).await;
    }
    drain(running.addr, rounds + 1, &mut seen).await;

    let mut acknowledged = 0;
    let mut lost = Vec::new();
    let mut duplicated = Vec::new();
    let qos2: HashSet<&str> = ["q2-a", "q2-b"].into_iter().collect();
    for publisher in &publishers {
        for payload in &publisher.acknowledged {
            acknowledged += 1;
            match seen.get(payload) {
                None => lost.push(payload.clone()),
                Some(n) if *n > 1 && qos2.contains(publisher.id.as_str()) => {
                    duplicated.push((payload.clone(), *n))
                }
                _ => {}
            }
        }
    }
    eprintln!(
        "kill loop: {rounds} kills, {acknowledged} acknowledged, {} lost, {} QoS 2 duplicates",
        lost.len(),
        duplicated.len()
    );
    assert!(rounds >= 3, "only {rounds} rounds fit");
    assert!(
        acknowledged > 100,
        "only {acknowledged} messages acknowledged"
    );
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    assert!(
        duplicated.is_empty(),
        "QoS 2 delivered twice: {duplicated:?}"
    );
}

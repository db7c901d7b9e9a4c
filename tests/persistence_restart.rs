//! Restarts of a child `roost serve` in each storage mode, stopped gracefully (SIGTERM) and
//! killed (SIGKILL).
//!
//! Before the stop: a v3.1.1 session with Clean Session 0 (MQTT-3.1.2-4) and a v5 session
//! with a Session Expiry Interval subscribe at QoS 2 and disconnect; a persistent v5
//! publisher sends QoS 1 and QoS 2 messages, each acknowledged (PUBACK, or PUBREC then
//! PUBCOMP), a retained message, and one QoS 2 message left at PUBREC (no PUBREL yet).
//! After the restart, in the disk modes: both sessions are present and receive every
//! acknowledged message, each once (no QoS 2 duplicate, MQTT-4.3.3); the retained message
//! is there; the publisher's resend of the unreleased QoS 2 message is acknowledged but not
//! forwarded again, and its PUBREL finds the packet id (MQTT-4.3.3-9, method B). In memory
//! mode everything is gone.

// The disk modes need the disk store.
#![cfg(feature = "disk-store")]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;

use common::child::ChildBroker;
use common::*;
use roost::mqtt::{
    Connect, Disconnect, Packet, ProtocolVersion, PubResponse, Publish, QoS, ReasonCode,
};

const MESSAGES: usize = 20;
const HELD_ID: u16 = 4000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stop {
    Graceful,
    Kill,
}

fn persistent(version: ProtocolVersion, id: &str) -> Connect {
    let mut c = connect(version, id);
    c.clean_start = false;
    if version.is_v5() {
        c.properties.session_expiry_interval = Some(3600);
    }
    c
}

fn start(mode: &str, dir: &std::path::Path) -> ChildBroker {
    ChildBroker::start_with_args(&[
        "--persistence",
        mode,
        "--data-dir",
        dir.to_str().expect("UTF-8 path"),
    ])
}

async fn subscribe_and_leave(addr: SocketAddr, version: ProtocolVersion, id: &str) {
    let mut client = RawClient::open(addr, version).await;
    client.connect(persistent(version, id)).await;
    let granted = client.subscribe("restart/#", QoS::ExactlyOnce).await;
    assert_eq!(granted, [ReasonCode::GrantedQoS2]);
    client
        .send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
        .await;
    assert!(client.recv().await.is_none(), "closed after DISCONNECT");
}

/// Publishes and waits for the acknowledgement; QoS 2 is completed unless `release` is
/// false (then it stops at PUBREC).
async fn publish_acknowledged(publisher: &mut RawClient, p: Publish, release: bool) {
    let packet_id = p.packet_id.expect("QoS 1/2");
    let qos = p.qos;
    publisher.publish(p).await;
    match (qos, publisher.recv().await) {
        (QoS::AtLeastOnce, Some(Packet::PubAck(ack))) => assert!(!ack.reason.is_error()),
        (QoS::ExactlyOnce, Some(Packet::PubRec(rec))) => {
            assert!(!rec.reason.is_error());
            if release {
                publisher
                    .send(&Packet::PubRel(PubResponse::success(packet_id)))
                    .await;
                match publisher.recv().await {
                    Some(Packet::PubComp(comp)) => assert_eq!(comp.reason, ReasonCode::Success),
                    other => panic!("expected PUBCOMP, got {other:?}"),
                }
            }
        }
        (_, other) => panic!("expected the acknowledgement, got {other:?}"),
    }
}

/// Receives until the `marker` payload, acknowledging every QoS 1/2 PUBLISH; returns how
/// many times each payload arrived.
async fn drain_until(client: &mut RawClient, marker: &str) -> HashMap<String, usize> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    loop {
        match client.recv().await {
            Some(Packet::Publish(p)) => {
                let payload = String::from_utf8_lossy(&p.payload).into_owned();
                match (p.qos, p.packet_id) {
                    (QoS::AtLeastOnce, Some(id)) => client.puback(id).await,
                    (QoS::ExactlyOnce, Some(id)) => {
                        client.send(&Packet::PubRec(PubResponse::success(id))).await
                    }
                    _ => {}
                }
                if payload == marker {
                    return seen;
                }
                // Other subscribers' markers are not part of the count.
                if !payload.starts_with("marker-") {
                    *seen.entry(payload).or_default() += 1;
                }
            }
            Some(Packet::PubRel(rel)) => {
                client
                    .send(&Packet::PubComp(PubResponse::success(rel.packet_id)))
                    .await;
            }
            Some(other) => panic!("unexpected {other:?}"),
            None => panic!("the broker closed the connection"),
        }
    }
}

async fn restart_round(mode: &str, stop: Stop) {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = start(mode, dir.path());
    subscribe_and_leave(broker.addr, ProtocolVersion::V3_1_1, "sub311").await;
    subscribe_and_leave(broker.addr, ProtocolVersion::V5, "sub5").await;

    let mut publisher = RawClient::open(broker.addr, ProtocolVersion::V5).await;
    publisher
        .connect(persistent(ProtocolVersion::V5, "pub"))
        .await;
    let mut expected = Vec::new();
    for i in 0..MESSAGES {
        let qos = if i % 2 == 0 {
            QoS::AtLeastOnce
        } else {
            QoS::ExactlyOnce
        };
        let payload = format!("m{i}");
        let p = publish("restart/t", &payload, qos, Some(i as u16 + 1));
        publish_acknowledged(&mut publisher, p, true).await;
        expected.push(payload);
    }
    let mut retained = publish("restart/retained", "kept", QoS::AtLeastOnce, Some(900));
    retained.retain = true;
    publish_acknowledged(&mut publisher, retained, true).await;
    expected.push("kept".to_string());
    // Acknowledged with PUBREC, not yet released: its packet id is inbound QoS 2 state.
    let held = publish("restart/t", "held", QoS::ExactlyOnce, Some(HELD_ID));
    publish_acknowledged(&mut publisher, held.clone(), false).await;
    expected.push("held".to_string());
    drop(publisher);

    match stop {
        Stop::Graceful => assert!(broker.terminate().success()),
        Stop::Kill => broker.kill(),
    }
    let broker = start(mode, dir.path());
    let in_memory = mode == "memory";

    // The publisher resends the unreleased message (MQTT-4.4.0-1).
    let mut publisher = RawClient::open(broker.addr, ProtocolVersion::V5).await;
    let connack = publisher
        .connect(persistent(ProtocolVersion::V5, "pub"))
        .await;
    assert_eq!(connack.session_present, !in_memory);
    let mut resent = held;
    resent.dup = true;
    publish_acknowledged(&mut publisher, resent, true).await;

    for (version, id) in [
        (ProtocolVersion::V3_1_1, "sub311"),
        (ProtocolVersion::V5, "sub5"),
    ] {
        let mut sub = RawClient::open(broker.addr, version).await;
        let connack = sub.connect(persistent(version, id)).await;
        assert_eq!(connack.session_present, !in_memory, "{id}");
        if in_memory {
            // Nothing survived: no subscription, so a new message finds nobody.
            sub.expect_nothing(std::time::Duration::from_millis(200))
                .await;
            continue;
        }
        // Everything queued before the stop comes ahead of a message published now
        // (MQTT-4.6.0-6), so the marker ends the wait for them.
        let marker = format!("marker-{id}");
        publish_acknowledged(
            &mut publisher,
            publish("restart/marker", &marker, QoS::AtLeastOnce, Some(901)),
            true,
        )
        .await;
        let seen = drain_until(&mut sub, &marker).await;
        let lost: Vec<&String> = expected.iter().filter(|p| !seen.contains_key(*p)).collect();
        assert!(
            lost.is_empty(),
            "{mode} {stop:?} {id}: acknowledged but lost: {lost:?}"
        );
        let duplicated: Vec<(&String, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            duplicated.is_empty(),
            "{mode} {stop:?} {id}: delivered more than once: {duplicated:?}"
        );
        assert_eq!(seen.len(), expected.len(), "{id}: {seen:?}");
    }

    // The retained message survives (or not, in memory).
    let mut late = RawClient::open(broker.addr, ProtocolVersion::V5).await;
    late.connect(connect(ProtocolVersion::V5, "late")).await;
    late.subscribe("restart/retained", QoS::AtLeastOnce).await;
    if in_memory {
        late.expect_nothing(std::time::Duration::from_millis(200))
            .await;
    } else {
        let got = late.recv_publish().await;
        assert_eq!(&got.payload[..], b"kept");
        assert!(got.retain);
    }
}

#[tokio::test]
async fn memory_mode_loses_everything_on_restart() {
    restart_round("memory", Stop::Graceful).await;
}

#[tokio::test]
async fn disk_buffered_survives_a_graceful_stop() {
    restart_round("disk-buffered", Stop::Graceful).await;
}

#[tokio::test]
async fn disk_buffered_survives_a_process_kill() {
    restart_round("disk-buffered", Stop::Kill).await;
}

#[tokio::test]
async fn disk_unbuffered_survives_a_graceful_stop() {
    restart_round("disk-unbuffered", Stop::Graceful).await;
}

#[tokio::test]
async fn disk_unbuffered_survives_a_process_kill() {
    restart_round("disk-unbuffered", Stop::Kill).await;
}

#[tokio::test]
async fn disk_fault_tolerant_survives_a_graceful_stop() {
    restart_round("disk-fault-tolerant", Stop::Graceful).await;
}

#[tokio::test]
async fn disk_fault_tolerant_survives_a_process_kill() {
    restart_round("disk-fault-tolerant", Stop::Kill).await;
}

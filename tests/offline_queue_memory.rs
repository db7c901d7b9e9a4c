//! Offline queues live on disk, not in memory: a child `roost serve` in the buffered disk
//! mode takes a million 64-byte QoS 1 messages for ten offline persistent sessions (Clean
//! Session 0, MQTT-3.1.2-4) and its resident memory grows by no more than 64 MiB; then each
//! session comes back and receives its whole queue, every message once and in the order it
//! was published (MQTT-4.6.0-6), read back from the store window by window as the client
//! acknowledges.

#![cfg(feature = "disk-store")]

mod common;

use std::time::Instant;

use bytes::BytesMut;
use common::child::ChildBroker;
use common::*;
use roost::config::{Config, StorageMode};
use roost::mqtt::{Packet, ProtocolVersion, PubResponse, QoS, ReasonCode, encode};

const SESSIONS: usize = 10;
const PER_SESSION: usize = 100_000;
/// Published before the first measurement, so that the baseline includes what the store
/// allocates once (its write buffers, the first log).
const WARM_UP: usize = 2_000;
const PAYLOAD: usize = 64;
/// The bound for a million queued messages.
const CEILING: u64 = 64 << 20;
/// PUBLISHes written before their PUBACKs are read.
const PIPELINE: usize = 1_000;

fn persistent(id: &str) -> roost::mqtt::Connect {
    let mut connect = connect(ProtocolVersion::V3_1_1, id);
    connect.clean_start = false;
    connect
}

fn topic(session: usize) -> String {
    format!("offline/{session}")
}

/// A payload of exactly [`PAYLOAD`] bytes that names its message.
fn payload(session: usize, index: usize) -> String {
    let name = format!("{session:02}/{index:010}/");
    let padding = "x".repeat(PAYLOAD - name.len());
    name + &padding
}

/// Publishes messages `range` to every session's topic at QoS 1, pipelined, and waits for
/// every PUBACK.
async fn publish_range(publisher: &mut RawClient, range: std::ops::Range<usize>) {
    let mut pending = Vec::with_capacity(PIPELINE);
    for index in range {
        for session in 0..SESSIONS {
            pending.push((session, index));
            if pending.len() == PIPELINE {
                publish_pipelined(publisher, &mut pending).await;
            }
        }
    }
    publish_pipelined(publisher, &mut pending).await;
}

async fn publish_pipelined(publisher: &mut RawClient, pending: &mut Vec<(usize, usize)>) {
    let mut out = BytesMut::new();
    for (packet_id, (session, index)) in (1u16..).zip(pending.iter()) {
        let packet = Packet::Publish(publish(
            &topic(*session),
            &payload(*session, *index),
            QoS::AtLeastOnce,
            Some(packet_id),
        ));
        encode(&packet, ProtocolVersion::V3_1_1, u32::MAX, &mut out).expect("encode");
    }
    publisher.send_bytes(&out).await;
    for _ in 0..pending.len() {
        match publisher.recv().await {
            Some(Packet::PubAck(_)) => {}
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
    pending.clear();
}

#[tokio::test]
async fn a_million_messages_queued_for_offline_sessions_stay_on_disk() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut config = Config::default();
    config.persistence.mode = StorageMode::DiskBuffered;
    config.persistence.data_dir = dir.path().join("data");
    config.limits.max_queued_messages = (PER_SESSION + WARM_UP) as u32;
    let config_path = dir.path().join("roost.ron");
    std::fs::write(&config_path, config.to_ron()).expect("config");
    let broker = ChildBroker::start_with_args(&["--config", config_path.to_str().expect("UTF-8")]);

    for session in 0..SESSIONS {
        let mut subscriber = RawClient::open(broker.addr, ProtocolVersion::V3_1_1).await;
        subscriber
            .connect(persistent(&format!("offline-{session}")))
            .await;
        assert_eq!(
            subscriber
                .subscribe(&topic(session), QoS::AtLeastOnce)
                .await,
            [ReasonCode::GrantedQoS1]
        );
        drop(subscriber);
    }
    let mut publisher = RawClient::open(broker.addr, ProtocolVersion::V3_1_1).await;
    publisher
        .connect(connect(ProtocolVersion::V3_1_1, "publisher"))
        .await;
    publish_range(&mut publisher, 0..WARM_UP / SESSIONS).await;
    let before = broker.rss_bytes();

    let started = Instant::now();
    publish_range(
        &mut publisher,
        WARM_UP / SESSIONS..PER_SESSION + WARM_UP / SESSIONS,
    )
    .await;
    let published = started.elapsed();
    let after = broker.rss_bytes();
    let growth = after.saturating_sub(before);
    eprintln!(
        "{} messages queued in {published:?}: RSS {} -> {} MiB (+{:.1} MiB)",
        SESSIONS * PER_SESSION,
        before >> 20,
        after >> 20,
        growth as f64 / f64::from(1 << 20)
    );
    assert!(
        growth <= CEILING,
        "a million queued messages grew the broker by {growth} bytes"
    );

    // Every session gets its whole queue back, in order, as it acknowledges.
    let started = Instant::now();
    for session in 0..SESSIONS {
        let mut subscriber = RawClient::open(broker.addr, ProtocolVersion::V3_1_1).await;
        let connack = subscriber
            .connect(persistent(&format!("offline-{session}")))
            .await;
        assert!(connack.session_present, "MQTT-3.2.2-2");
        for index in 0..PER_SESSION + WARM_UP / SESSIONS {
            let message = subscriber.recv_publish().await;
            assert_eq!(
                std::str::from_utf8(&message.payload).expect("UTF-8"),
                payload(session, index),
                "session {session}, message {index}"
            );
            let packet_id = message.packet_id.expect("QoS 1");
            subscriber
                .send(&Packet::PubAck(PubResponse::success(packet_id)))
                .await;
        }
        subscriber
            .expect_nothing(std::time::Duration::from_millis(200))
            .await;
    }
    eprintln!("drained in {:?}", started.elapsed());
}

//! Queues kept on disk, from a real client's side, in a broker whose store keeps them (the
//! buffered disk mode): messages that expire while their session is offline are purged
//! from the store while nobody drains it (MQTT-3.3.2-5), the rest arrive in order; a
//! connected subscriber slower than its publisher gets everything, in order, through the
//! windows read back from the store (MQTT-4.6.0-6); and a session that ends leaves nothing
//! of its queue in the store.

#![cfg(feature = "disk-store")]

#[path = "common/audit.rs"]
mod audit;
mod common;

use common::*;
use roost::config::{Config, StorageMode};
use roost::mqtt::{Connect, Disconnect, Packet, ProtocolVersion, PubResponse, QoS, ReasonCode};

const V5: ProtocolVersion = ProtocolVersion::V5;

fn disk_config(dir: &std::path::Path) -> Config {
    let mut config = test_config();
    config.persistence.enabled = true;
    config.persistence.mode = StorageMode::DiskBuffered;
    config.persistence.data_dir = dir.to_path_buf();
    config.limits.max_queued_messages = 100_000;
    config
}

async fn start_on_disk(dir: &std::path::Path) -> TestBroker {
    start_on_store(disk_config(dir)).await
}

fn persistent(id: &str) -> Connect {
    let mut c = connect(V5, id);
    c.clean_start = false;
    c.properties.session_expiry_interval = Some(3600);
    c
}

async fn subscribe_and_leave(broker: &TestBroker, id: &str, filter: &str) {
    let mut client = broker.raw(V5).await;
    client.connect(persistent(id)).await;
    assert_eq!(
        client.subscribe(filter, QoS::AtLeastOnce).await,
        [ReasonCode::GrantedQoS1]
    );
    client
        .send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
        .await;
    assert!(client.recv().await.is_none());
    broker.wait_offline(id).await;
}

/// Publishes at QoS 1, with a Message Expiry Interval if given, and checks its PUBACK.
async fn publish_stored(
    publisher: &mut RawClient,
    topic: &str,
    payload: &str,
    expiry: Option<u32>,
) {
    let mut p = publish(topic, payload, QoS::AtLeastOnce, Some(1));
    p.properties.message_expiry_interval = expiry;
    let reason = audit::publish_acked(publisher, p).await;
    assert!(reason < 0x80, "PUBACK reason {reason:#x}");
}

async fn queued(broker: &TestBroker, id: &str) -> usize {
    broker
        .handle
        .client_detail(id)
        .await
        .expect("the session exists")
        .queued
}

#[tokio::test]
async fn messages_that_expire_in_an_offline_queue_are_purged_while_nobody_drains_it() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let broker = start_on_disk(dir.path()).await;
    subscribe_and_leave(&broker, "away", "expiry/#").await;
    let mut publisher = broker.connected(V5, "publisher").await;
    for index in 0..40 {
        // Every fourth lives an hour, the others a second.
        let expiry = if index % 4 == 0 { 3600 } else { 1 };
        publish_stored(
            &mut publisher,
            "expiry/t",
            &format!("m{index}"),
            Some(expiry),
        )
        .await;
    }
    assert_eq!(queued(&broker, "away").await, 40);

    // Nobody reads the queue: the sweep finds the expired ones in the store.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let left = queued(&broker, "away").await;
        if left == 10 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{left} messages left in the queue"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(broker.handle.stats().messages_dropped >= 30);

    let mut client = broker.raw(V5).await;
    assert!(client.connect(persistent("away")).await.session_present);
    for index in (0..40).step_by(4) {
        let message = client.recv_publish().await;
        assert_eq!(&message.payload[..], format!("m{index}").as_bytes());
        client.puback(message.packet_id.expect("QoS 1")).await;
    }
    client
        .expect_nothing(std::time::Duration::from_millis(200))
        .await;
}

#[tokio::test]
async fn a_slow_subscriber_gets_a_long_queue_in_order_through_windows_read_back() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let broker = start_on_disk(dir.path()).await;
    const COUNT: usize = 3_000;

    // Connected, but it reads nothing until everything is published: its queue outgrows
    // the window kept in memory.
    let mut subscriber = broker.raw(V5).await;
    let mut connect = persistent("slow");
    connect.properties.receive_maximum = Some(10);
    subscriber.connect(connect).await;
    subscriber.subscribe("slow/#", QoS::AtLeastOnce).await;
    let mut publisher = broker.connected(V5, "publisher").await;
    for index in 0..COUNT {
        publish_stored(&mut publisher, "slow/t", &format!("m{index}"), None).await;
    }
    assert_eq!(queued(&broker, "slow").await + 10, COUNT);

    for index in 0..COUNT {
        let message = subscriber.recv_publish().await;
        assert_eq!(
            &message.payload[..],
            format!("m{index}").as_bytes(),
            "message {index}"
        );
        subscriber
            .send(&Packet::PubAck(PubResponse::success(
                message.packet_id.expect("QoS 1"),
            )))
            .await;
    }
    subscriber
        .expect_nothing(std::time::Duration::from_millis(200))
        .await;
    assert_eq!(queued(&broker, "slow").await, 0);
}

#[tokio::test]
async fn a_session_ended_by_clean_start_leaves_nothing_of_its_queue_in_the_store() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let broker = start_on_disk(dir.path()).await;
    subscribe_and_leave(&broker, "leaver", "leave/#").await;
    let mut publisher = broker.connected(V5, "publisher").await;
    for index in 0..200 {
        publish_stored(&mut publisher, "leave/t", &format!("m{index}"), None).await;
    }
    assert_eq!(queued(&broker, "leaver").await, 200);

    // Clean Start ends the old session: its queue goes with it (MQTT-3.1.2-4).
    let mut client = broker.raw(V5).await;
    let mut fresh = persistent("leaver");
    fresh.clean_start = true;
    assert!(!client.connect(fresh).await.session_present);
    client.subscribe("leave/#", QoS::AtLeastOnce).await;
    publish_stored(&mut publisher, "leave/t", "after", None).await;
    let message = client.recv_publish().await;
    assert_eq!(&message.payload[..], b"after", "nothing of the old queue");
    client.puback(message.packet_id.expect("QoS 1")).await;
    client
        .expect_nothing(std::time::Duration::from_millis(200))
        .await;

    // The store kept nothing of the old queue: after a restart on it, the session holds
    // none of the 200.
    client
        .send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
        .await;
    assert!(client.recv().await.is_none());
    broker.wait_offline("leaver").await;
    let broker = restart_on(broker, disk_config(dir.path())).await;
    assert_eq!(queued(&broker, "leaver").await, 0);
}

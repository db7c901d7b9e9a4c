//! Switching the store by Apply, without a restart: memory to disk, another disk mode in the
//! same directory, disk to memory, another data directory (with its certificates), and the
//! refusals that keep the broker on the store it has (a directory that cannot be created,
//! one locked by another roost, one holding another store).

// The disk modes need the disk store.
#![cfg(feature = "disk-store")]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use roost::broker::{ApplyError, ApplyReport};
use roost::config::{Config, StorageMode};
use roost::mqtt::{Connect, Disconnect, Packet, ProtocolVersion, QoS, ReasonCode};
use roost::store::{RocksStore, SyncMode, store_dir};

const V311: ProtocolVersion = ProtocolVersion::V3_1_1;

fn with_store(dir: &Path, mode: StorageMode) -> Config {
    let mut config = test_config();
    config.persistence.enabled = true;
    config.persistence.mode = mode;
    config.persistence.data_dir = dir.to_path_buf();
    config
}

fn persistent(id: &str) -> Connect {
    let mut c = connect(V311, id);
    c.clean_start = false;
    c
}

/// A 3.1.1 session `keeper` with Clean Session 0 subscribed to `switch/#` at QoS 1, then
/// offline.
async fn park_a_session(broker: &TestBroker) {
    park(broker, "keeper").await;
}

async fn park(broker: &TestBroker, id: &str) {
    let mut client = broker.raw(V311).await;
    client.connect(persistent(id)).await;
    client.subscribe("switch/#", QoS::AtLeastOnce).await;
    client
        .send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
        .await;
    assert!(client.recv().await.is_none());
    broker.wait_offline(id).await;
}

/// Publishes `payloads` at QoS 1, each acknowledged; `retain` marks them retained.
async fn publish_acknowledged(broker: &TestBroker, payloads: &[&str], retain: bool) {
    let mut publisher = broker.connected(V311, "publisher").await;
    for (index, payload) in payloads.iter().enumerate() {
        let mut p = publish(
            "switch/x",
            payload,
            QoS::AtLeastOnce,
            Some(index as u16 + 1),
        );
        p.retain = retain;
        publisher.publish(p).await;
        match publisher.recv().await {
            Some(Packet::PubAck(ack)) => assert!(!ack.reason.is_error(), "{ack:?}"),
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
}

/// The keeper resumes its session and receives `expected`, in order.
async fn resume_and_receive(broker: &TestBroker, expected: &[&str]) {
    resume_and_receive_as(broker, "keeper", expected).await;
}

async fn resume_and_receive_as(broker: &TestBroker, id: &str, expected: &[&str]) {
    let mut client = broker.raw(V311).await;
    let connack = client.connect(persistent(id)).await;
    assert!(connack.session_present, "the session survived");
    for payload in expected {
        let p = client.recv_publish().await;
        assert_eq!(String::from_utf8_lossy(&p.payload), *payload);
        if let Some(id) = p.packet_id {
            client.puback(id).await;
        }
    }
}

fn store_changes(report: &ApplyReport) -> Vec<String> {
    report
        .changes
        .iter()
        .map(|c| c.to_string())
        .filter(|c| c.starts_with("store:") || c.starts_with("keys and certificates"))
        .collect()
}

fn refusal_field(error: ApplyError) -> (String, String) {
    match error {
        ApplyError::Invalid(error) => (error.field, error.message),
        other => panic!("expected a refusal naming a field, got {other}"),
    }
}

#[tokio::test]
async fn memory_to_disk_copies_the_state_and_a_restart_finds_it() {
    let dir = tempfile::tempdir().unwrap();
    let memory = with_store(dir.path(), StorageMode::Memory);
    let broker = start_with(|c| *c = memory.clone()).await;
    park_a_session(&broker).await;
    publish_acknowledged(&broker, &["before-1", "before-2"], false).await;

    let disk = with_store(dir.path(), StorageMode::DiskUnbuffered);
    let report = broker.handle.apply(disk.clone()).await.expect("switch");
    let changes = store_changes(&report);
    assert!(
        changes.iter().any(|c| c.contains("Disk (unbuffered)")
            && c.contains("1 sessions and 0 retained messages copied from memory")),
        "{changes:?}"
    );
    publish_acknowledged(&broker, &["after-1"], false).await;

    let again = restart_on(broker, disk).await;
    resume_and_receive(&again, &["before-1", "before-2", "after-1"]).await;
}

#[tokio::test]
async fn another_disk_mode_in_the_same_directory_reopens_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let buffered = with_store(dir.path(), StorageMode::DiskBuffered);
    let broker = start_with(|c| *c = buffered.clone()).await;
    park_a_session(&broker).await;
    publish_acknowledged(&broker, &["buffered"], true).await;

    let unbuffered = with_store(dir.path(), StorageMode::DiskFaultTolerant);
    let report = broker
        .handle
        .apply(unbuffered.clone())
        .await
        .expect("switch");
    let changes = store_changes(&report);
    assert!(
        changes.iter().any(
            |c| c.contains("reopened") && c.contains("1 sessions and 1 retained messages kept")
        ),
        "{changes:?}"
    );
    // Acknowledgements now wait for the fsync; they still come.
    publish_acknowledged(&broker, &["fault-tolerant"], false).await;
    let again = restart_on(broker, unbuffered).await;
    assert!(
        dir.path().join("backup").is_dir(),
        "the fault-tolerant mode keeps backups"
    );
    resume_and_receive(&again, &["buffered", "fault-tolerant"]).await;
    // The retained message came along too.
    let mut late = again.connected(V311, "late").await;
    late.subscribe("switch/#", QoS::AtMostOnce).await;
    let retained = late.recv_publish().await;
    assert!(retained.retain);
    assert_eq!(&retained.payload[..], b"buffered");
}

#[tokio::test]
async fn disk_to_memory_keeps_the_old_store_and_a_switch_back_into_it_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let disk = with_store(dir.path(), StorageMode::DiskBuffered);
    let broker = start_with(|c| *c = disk.clone()).await;
    park_a_session(&broker).await;

    let memory = with_store(dir.path(), StorageMode::Memory);
    let report = broker.handle.apply(memory.clone()).await.expect("switch");
    let changes = store_changes(&report);
    let kept = format!("{} is kept as it was", store_dir(dir.path()).display());
    assert!(
        changes
            .iter()
            .any(|c| c.contains("store: Memory") && c.contains(&kept)),
        "{changes:?}"
    );
    publish_acknowledged(&broker, &["in-memory"], false).await;

    // The old directory still holds the session as it was: not mixed with the new state.
    let (field, message) = refusal_field(broker.handle.apply(disk).await.unwrap_err());
    assert_eq!(field, "persistence.mode");
    assert!(message.contains("already holds a store"), "{message}");
    // Still running on memory, with the session and its message.
    resume_and_receive(&broker, &["in-memory"]).await;
}

#[tokio::test]
async fn an_unusable_directory_is_refused_and_the_broker_keeps_its_store() {
    let dir = tempfile::tempdir().unwrap();
    let disk = with_store(&dir.path().join("a"), StorageMode::DiskUnbuffered);
    let broker = start_with(|c| *c = disk.clone()).await;
    park_a_session(&broker).await;

    // A directory that cannot be created: a file is in the way.
    std::fs::write(dir.path().join("file"), b"not a directory").unwrap();
    let blocked = with_store(&dir.path().join("file/b"), StorageMode::DiskUnbuffered);
    let (field, message) = refusal_field(broker.handle.apply(blocked).await.unwrap_err());
    assert_eq!(field, "persistence.data_dir");
    assert!(message.contains("file/b"), "names the directory: {message}");

    // A directory another roost has open (RocksDB's lock).
    let locked_dir = dir.path().join("locked");
    let other = RocksStore::open(&store_dir(&locked_dir), SyncMode::Buffered).unwrap();
    let locked = with_store(&locked_dir, StorageMode::DiskUnbuffered);
    let (field, message) = refusal_field(broker.handle.apply(locked).await.unwrap_err());
    assert_eq!(field, "persistence.data_dir");
    assert!(message.contains("lock"), "{message}");
    drop(other);

    // Still on the first store: messages are acknowledged and a restart finds them.
    publish_acknowledged(&broker, &["still-here"], false).await;
    let again = restart_on(broker, disk).await;
    resume_and_receive(&again, &["still-here"]).await;
}

#[tokio::test]
async fn a_new_data_directory_takes_the_certificates_along() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let broker = start_with(|c| *c = with_store(&a, StorageMode::Memory)).await;
    std::fs::create_dir_all(a.join("certificates")).unwrap();
    let key = a.join("certificates/ca.key");
    std::fs::write(&key, b"key").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    // The new directory holding other certificates: refused, nothing moved.
    std::fs::create_dir_all(b.join("certificates")).unwrap();
    std::fs::write(b.join("certificates/ca.crt"), b"other").unwrap();
    let (field, message) = refusal_field(
        broker
            .handle
            .apply(with_store(&b, StorageMode::Memory))
            .await
            .unwrap_err(),
    );
    assert_eq!(field, "persistence.data_dir");
    assert!(message.contains("holds certificates already"), "{message}");
    assert!(key.exists());

    std::fs::remove_dir_all(b.join("certificates")).unwrap();
    let report = broker
        .handle
        .apply(with_store(&b, StorageMode::DiskBuffered))
        .await
        .expect("switch");
    let changes = store_changes(&report);
    assert!(
        changes
            .iter()
            .any(|c| c.contains("keys and certificates (moved")),
        "{changes:?}"
    );
    let moved = b.join("certificates/ca.key");
    assert_eq!(std::fs::read(&moved).unwrap(), b"key");
    let mode = std::fs::metadata(&moved).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the key stays private");
    assert!(!a.join("certificates").exists());
    assert!(
        store_dir(&b).is_dir(),
        "the disk store is in the new directory"
    );
}

/// Queues kept on disk go from the old store to the new one a chunk at a time (more
/// messages than one chunk holds), with the payloads the two sessions share.
#[tokio::test]
async fn long_queues_kept_on_disk_go_to_a_new_directory_chunk_by_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = with_store(&dir.path().join("a"), StorageMode::DiskBuffered);
    first.limits.max_queued_messages = 10_000;
    let broker = start_on_store(first.clone()).await;
    park(&broker, "keeper").await;
    park(&broker, "other").await;
    let payloads: Vec<String> = (0..5_000).map(|i| format!("m{i}")).collect();
    let payloads: Vec<&str> = payloads.iter().map(String::as_str).collect();
    publish_acknowledged(&broker, &payloads, false).await;

    let mut second = first.clone();
    second.persistence.data_dir = dir.path().join("b");
    let report = broker.handle.apply(second.clone()).await.expect("switch");
    assert!(
        store_changes(&report)
            .iter()
            .any(|c| c.contains("2 sessions and 0 retained messages copied")),
        "{:?}",
        store_changes(&report)
    );
    publish_acknowledged(&broker, &["after"], false).await;
    let again = restart_on(broker, second).await;
    let mut expected = payloads.clone();
    expected.push("after");
    resume_and_receive_as(&again, "keeper", &expected).await;
    resume_and_receive_as(&again, "other", &expected).await;
}

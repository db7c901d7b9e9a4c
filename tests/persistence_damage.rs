//! A damaged store, found when `roost serve` starts.
//!
//! Fault-tolerant mode: the live store is damaged while the broker is stopped (its CURRENT
//! file deleted, or its newest table file truncated); on start it is moved aside and
//! restored from the backup taken on the graceful stop, the log says so, and the session
//! with its queued message is back. The other disk modes refuse to start on the same
//! damage, say how to recover, and leave every file as it was.

// The disk modes need the disk store.
#![cfg(feature = "disk-store")]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use common::child::ChildBroker;
use common::*;
use roost::mqtt::{Connect, Disconnect, Packet, ProtocolVersion, QoS, ReasonCode};

fn persistent(id: &str) -> Connect {
    let mut c = connect(ProtocolVersion::V5, id);
    c.clean_start = false;
    c.properties.session_expiry_interval = Some(3600);
    c
}

fn args<'a>(mode: &'a str, dir: &'a Path) -> [&'a str; 4] {
    [
        "--persistence",
        mode,
        "--data-dir",
        dir.to_str().expect("UTF-8 path"),
    ]
}

/// A persistent subscriber leaves, and a QoS 1 message is queued for it (PUBACK received).
async fn queue_one_message(addr: SocketAddr) {
    let mut sub = RawClient::open(addr, ProtocolVersion::V5).await;
    sub.connect(persistent("damaged-sub")).await;
    sub.subscribe("damage/#", QoS::AtLeastOnce).await;
    sub.send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
        .await;
    assert!(sub.recv().await.is_none());
    let mut publisher = RawClient::open(addr, ProtocolVersion::V5).await;
    publisher.connect(connect(ProtocolVersion::V5, "p")).await;
    publisher
        .publish(publish("damage/t", "survivor", QoS::AtLeastOnce, Some(1)))
        .await;
    assert!(matches!(publisher.recv().await, Some(Packet::PubAck(_))));
}

/// Every file under `dir` with its size, to show that nothing changed. RocksDB's own info
/// log (`LOG`, rotated to `LOG.old.*` by each attempt to open) is left out: it holds no data.
fn files(dir: &Path) -> BTreeMap<PathBuf, u64> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable").flatten() {
            let path = entry.path();
            let meta = entry.metadata().expect("metadata");
            if meta.is_dir() {
                pending.push(path);
            } else if !entry.file_name().to_string_lossy().starts_with("LOG") {
                found.insert(path, meta.len());
            }
        }
    }
    found
}

#[derive(Clone, Copy, Debug)]
enum Damage {
    DeleteCurrent,
    TruncateNewestTable,
    TruncateManifest,
}

fn damage(store: &Path, how: Damage) {
    let newest = |suffix: &str| -> PathBuf {
        std::fs::read_dir(store)
            .expect("store directory")
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().is_some_and(|n| {
                    n.to_string_lossy().starts_with(suffix) || n.to_string_lossy().ends_with(suffix)
                })
            })
            .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .unwrap_or_else(|| panic!("no {suffix} file in {}", store.display()))
    };
    match how {
        Damage::DeleteCurrent => std::fs::remove_file(store.join("CURRENT")).expect("CURRENT"),
        Damage::TruncateNewestTable => {
            let table = newest(".sst");
            let len = std::fs::metadata(&table).expect("table").len();
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&table)
                .expect("table opens");
            file.set_len(len / 2).expect("truncate");
        }
        Damage::TruncateManifest => {
            let manifest = newest("MANIFEST-");
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&manifest)
                .expect("manifest opens");
            file.set_len(10).expect("truncate");
        }
    }
}

async fn fault_tolerant_restores(how: Damage) {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = ChildBroker::start_with_args(&args("disk-fault-tolerant", dir.path()));
    queue_one_message(broker.addr).await;
    // The graceful stop takes a backup.
    assert!(broker.terminate().success());
    assert!(dir.path().join("backup").exists());
    damage(&dir.path().join("store"), how);

    // Its own config file, so that its admin socket is its own (the tests run at once).
    let config = dir.path().join("roost.ron");
    std::fs::write(&config, roost::config::default_config_text()).expect("config");
    let mut with_config = args("disk-fault-tolerant", dir.path()).to_vec();
    with_config.extend(["--config", config.to_str().expect("UTF-8 path")]);
    let broker = ChildBroker::start_with_args(&with_config);
    let logs = broker.logs().join("\n");
    assert!(
        logs.contains("store restored from a backup"),
        "{how:?}: the operator is told: {logs}"
    );
    let kept = std::fs::read_dir(dir.path())
        .expect("data dir")
        .flatten()
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("store.damaged-")
        });
    assert!(kept, "{how:?}: the damaged store is kept, not deleted");
    // A console attaching later is told too (its popup and Status read this).
    let socket = roost::admin::socket_path_for(&config).expect("socket path");
    let client = roost::admin::AdminClient::connect(&socket)
        .await
        .expect("the broker answers on its admin socket");
    let stats = roost::admin::Admin::Attached(client)
        .stats()
        .await
        .expect("stats");
    let recovery = stats.store_recovery.expect("the recovery is in the status");
    assert!(recovery.contains("restored from backup"), "{recovery}");
    let mut sub = RawClient::open(broker.addr, ProtocolVersion::V5).await;
    let connack = sub.connect(persistent("damaged-sub")).await;
    assert!(connack.session_present, "{how:?}");
    let got = sub.recv_publish().await;
    assert_eq!(&got.payload[..], b"survivor");
}

#[tokio::test]
async fn fault_tolerant_mode_restores_a_store_without_its_current_file() {
    fault_tolerant_restores(Damage::DeleteCurrent).await;
}

#[tokio::test]
async fn fault_tolerant_mode_restores_a_store_with_a_truncated_table() {
    fault_tolerant_restores(Damage::TruncateNewestTable).await;
}

async fn other_modes_refuse(mode: &str, how: Damage) {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = ChildBroker::start_with_args(&args(mode, dir.path()));
    queue_one_message(broker.addr).await;
    assert!(broker.terminate().success());
    damage(&dir.path().join("store"), how);
    let before = files(dir.path());

    let (status, stderr) = ChildBroker::refused_start(&args(mode, dir.path()));
    assert!(!status.success(), "{mode} {how:?}: {stderr}");
    assert!(
        stderr.contains("refuses to start") && stderr.contains("Nothing was changed or deleted"),
        "{mode} {how:?}: a clear message: {stderr}"
    );
    assert!(stderr.contains("To recover"), "{stderr}");
    assert_eq!(files(dir.path()), before, "{mode} {how:?}: nothing touched");
}

#[tokio::test]
async fn disk_unbuffered_refuses_a_store_without_its_current_file() {
    other_modes_refuse("disk-unbuffered", Damage::DeleteCurrent).await;
}

#[tokio::test]
async fn disk_buffered_refuses_a_store_with_a_truncated_manifest() {
    other_modes_refuse("disk-buffered", Damage::TruncateManifest).await;
}

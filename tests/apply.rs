//! Applying configurations: listeners start, stop and restart; a refused apply changes
//! nothing.

mod common;

use std::time::Duration;

use common::*;
use roost::broker::{ApplyError, ChangeAction};
use roost::mqtt::{ProtocolVersion, QoS, ReasonCode};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn port_in_use_is_refused_and_the_running_broker_is_untouched() {
    let broker = start().await;
    let mut client = broker.connected(ProtocolVersion::V5, "survivor").await;
    client.subscribe("s", QoS::AtMostOnce).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = test_config();
    config.broker.tcp.port = taken.local_addr().unwrap().port();
    config.limits.max_inflight = 7;
    let error = broker.handle.apply(config).await.unwrap_err();
    assert!(matches!(error, ApplyError::Bind { .. }), "{error}");
    // Same listener, same limits, same clients.
    assert_eq!(broker.handle.stats().listeners[0].address, broker.addr);
    let mut other = broker.connected(ProtocolVersion::V5, "newcomer").await;
    other
        .publish(publish("s", "ok", QoS::AtMostOnce, None))
        .await;
    assert_eq!(&client.recv_publish().await.payload[..], b"ok");
    let mut fresh = broker.raw(ProtocolVersion::V5).await;
    let connack = fresh.connect(connect(ProtocolVersion::V5, "x")).await;
    assert_eq!(connack.properties.receive_maximum, Some(100));
}

#[tokio::test]
async fn changing_the_port_restarts_the_listener() {
    let broker = start().await;
    let port = free_port();
    let mut config = test_config();
    config.broker.tcp.port = port;
    let report = broker.handle.apply(config.clone()).await.unwrap();
    assert!(
        report
            .changes
            .iter()
            .any(|c| c.action == ChangeAction::Restarted && c.subject.contains("TCP")),
        "{report:?}"
    );
    let address = broker.handle.stats().listeners[0].address;
    assert_eq!(address.port(), port);
    let mut client = RawClient::open(address, ProtocolVersion::V5).await;
    client.connect(connect(ProtocolVersion::V5, "moved")).await;
    assert!(tokio::net::TcpStream::connect(broker.addr).await.is_err());
    // The same config again changes nothing.
    let report = broker.handle.apply(config).await.unwrap();
    assert!(report.changes.is_empty(), "{report:?}");
}

#[tokio::test]
async fn disabling_the_service_stops_listeners_and_disconnects_clients() {
    // v5 clients get DISCONNECT 0x8B Server shutting down.
    let broker = start().await;
    let mut client = broker.connected(ProtocolVersion::V5, "bye").await;
    let mut config = test_config();
    config.broker.enabled = false;
    let report = broker.handle.apply(config).await.unwrap();
    assert!(
        report
            .changes
            .iter()
            .any(|c| c.action == ChangeAction::Stopped)
    );
    let d = client.expect_disconnect().await.expect("DISCONNECT");
    assert_eq!(d.reason, ReasonCode::ServerShuttingDown);
    assert!(broker.handle.stats().listeners.is_empty());
    assert!(!broker.handle.stats().running);
}

#[tokio::test]
async fn later_features_are_stored_not_active() {
    let broker = start().await;
    let mut config = test_config();
    config.broker.require_credentials = true;
    let report = broker.handle.apply(config).await.unwrap();
    let inactive: Vec<_> = report
        .changes
        .iter()
        .filter(|c| c.action == ChangeAction::StoredNotActive)
        .map(|c| c.subject.as_str())
        .collect();
    // Credentials are enforced since issue 8: reported as updated, not as stored.
    assert!(
        !inactive.iter().any(|s| s.contains("credentials")),
        "{report:?}"
    );
    assert!(
        report
            .changes
            .iter()
            .any(|c| c.subject.contains("require client credentials")
                && c.action == ChangeAction::Updated),
        "{report:?}"
    );
}

#[tokio::test]
async fn invalid_config_is_refused() {
    let broker = start().await;
    let mut config = test_config();
    config.broker.tcp.bind = "not an address".into();
    let error = broker.handle.apply(config).await.unwrap_err();
    assert!(matches!(error, ApplyError::Invalid(_)), "{error}");
    assert_eq!(broker.handle.stats().listeners[0].address, broker.addr);
}

#[tokio::test]
async fn shutdown_closes_everything() {
    let broker = start().await;
    let mut client = broker.connected(ProtocolVersion::V5, "last").await;
    tokio::time::timeout(Duration::from_secs(5), broker.handle.shutdown())
        .await
        .unwrap();
    let d = client.expect_disconnect().await.expect("DISCONNECT");
    assert_eq!(d.reason, ReasonCode::ServerShuttingDown);
    assert!(tokio::net::TcpStream::connect(broker.addr).await.is_err());
}

//! MQTT over WebSockets over TLS (`wss://`): with TLS on, the WebSockets listener serves
//! `wss://` with the same server certificate and client-certificate rules as MQTT over TLS.
//! Real clients: paho-mqtt with `transport="websockets"` and `tls_set`
//! (tests/scripts/paho_websockets.py), beside a paho client on MQTT over TLS.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};

use common::tls::{ClientFiles, Fixture, tls_config};
use roost::broker::{BrokerHandle, ListenerKind};
use roost::config::Config;

/// A broker with TLS on and WebSockets on a free port; the TLS and wss addresses.
async fn start(config: Config) -> (BrokerHandle, SocketAddr, SocketAddr) {
    let mut config = config;
    config.broker.websockets.enabled = true;
    config.broker.websockets.bind = "127.0.0.1".to_string();
    config.broker.websockets.port = 0;
    config.broker.websockets.path = "/mqtt".to_string();
    let handle = BrokerHandle::spawn();
    handle.apply(config).await.expect("apply");
    let listeners = handle.stats().listeners;
    let find = |kind| {
        listeners
            .iter()
            .find(|l| l.kind == kind)
            .unwrap_or_else(|| panic!("no {kind:?} listener in {listeners:?}"))
            .address
    };
    let (tls, wss) = (find(ListenerKind::Tls), find(ListenerKind::SecureWebSocket));
    (handle, tls, wss)
}

/// Runs the paho checks over wss and MQTT over TLS, trusting `ca`, presenting `client`.
async fn paho(tls: SocketAddr, wss: SocketAddr, ca: &Path, client: Option<&ClientFiles>) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/paho_websockets.py");
    let mut command = Command::new("python3");
    command
        .arg(script)
        .args([
            "127.0.0.1",
            &tls.port().to_string(),
            &wss.port().to_string(),
        ])
        .arg("/mqtt")
        .arg(ca);
    if let Some(client) = client {
        command.arg(&client.certificate).arg(&client.key);
    }
    tokio::task::spawn_blocking(move || command.output().expect("python3 runs"))
        .await
        .unwrap()
}

#[tokio::test]
async fn paho_over_wss_talks_to_a_tls_client_at_every_qos() {
    let fixture = Fixture::new();
    let (broker, tls, wss) = start(tls_config(&fixture, vec![])).await;
    let output = paho(tls, wss, fixture.ca_file(), None).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "paho checks over wss failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("all paho websocket checks passed"),
        "{stdout}"
    );
    broker.shutdown().await;
}

/// "Require client certificate" holds on wss as on MQTT over TLS: refused without a
/// certificate, served with one the CA issued.
#[tokio::test]
async fn wss_requires_a_client_certificate_when_tls_does() {
    let fixture = Fixture::new();
    let mut config = tls_config(&fixture, vec![]);
    config.broker.tls.require_client_certificate = true;
    let (broker, tls, wss) = start(config).await;

    let refused = paho(tls, wss, fixture.ca_file(), None).await;
    assert!(
        !refused.status.success(),
        "a wss client without a certificate was served:\n{}",
        String::from_utf8_lossy(&refused.stdout)
    );

    let device = fixture.valid_client("device", true);
    let served = paho(tls, wss, fixture.ca_file(), Some(&device)).await;
    assert!(
        served.status.success(),
        "a wss client with a trusted certificate was refused:\n{}\n{}",
        String::from_utf8_lossy(&served.stdout),
        String::from_utf8_lossy(&served.stderr)
    );
    broker.shutdown().await;
}

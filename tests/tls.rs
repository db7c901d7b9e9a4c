//! TLS on the TCP listener: handshakes (versions, suites, plain MQTT on the TLS port), real
//! clients (rumqttc with rustls, mosquitto_pub/sub, openssl s_client), the server certificate
//! made at the first start, and changes at apply (a new server certificate, a revoked client
//! disconnected) without restarting the listener.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::tls::{Fixture, client_config, listed, mqtt_connect, qos1_round_trip, tls_config};
use roost::broker::{BrokerHandle, ListenerKind};
use roost::config::ClientCertificateStatus::{Authorized, Revoked};
use roost::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn start(config: Config) -> (BrokerHandle, std::net::SocketAddr) {
    let handle = BrokerHandle::spawn();
    handle.apply(config).await.expect("apply");
    let listener = handle.stats().listeners[0].clone();
    assert_eq!(listener.kind, ListenerKind::Tls);
    (handle, listener.address)
}

#[tokio::test]
async fn the_first_tls_start_makes_a_server_certificate_issued_by_the_ca() {
    let fixture = Fixture::new();
    let (broker, addr) = start(tls_config(&fixture, vec![])).await;
    let server = roost::pki::server::show(&fixture.paths).expect("made at the first start");
    assert_eq!(server.issuer, "CN=Test CA");
    assert!(server.subject_alt_names.contains(&"127.0.0.1".to_string()));
    let key_mode = std::fs::metadata(&fixture.paths.server_private_key)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600, "the server key is private");
    let ca_key_mode = std::fs::metadata(&fixture.paths.ca_private_key)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(ca_key_mode & 0o777, 0o600, "the CA key is private");
    // A client trusting the CA connects; Status knows when the certificate expires.
    let mut session = mqtt_connect(addr, client_config(fixture.ca_file(), None), "c1")
        .await
        .expect("connects over TLS");
    qos1_round_trip(&mut session, 1).await.expect("works");
    assert!(broker.stats().server_certificate_expires.is_some());
    broker.shutdown().await;
}

#[tokio::test]
async fn plain_mqtt_on_the_tls_port_is_refused_at_once() {
    let fixture = Fixture::new();
    let mut config = tls_config(&fixture, vec![]);
    config.limits.connect_timeout_secs = 30;
    let (broker, addr) = start(config).await;
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    // A 3.1.1 CONNECT: its first byte is no TLS record type.
    socket
        .write_all(&[
            0x10, 0x0d, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 1, b'p',
        ])
        .await
        .unwrap();
    let mut buffer = [0u8; 64];
    // The broker answers with a TLS alert at most, never a CONNACK, and closes.
    let mut received = Vec::new();
    loop {
        match tokio::time::timeout(common::WAIT, socket.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => panic!("left hanging"),
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed after {:?}, not at once",
        started.elapsed()
    );
    assert_ne!(received.first(), Some(&0x20), "no CONNACK in plain MQTT");
    common::eventually("the failed handshake counted", || {
        let failed = broker.stats().tls_handshakes_failed;
        async move { failed == 1 }
    })
    .await;
    broker.shutdown().await;
}

#[tokio::test]
async fn a_revoked_client_is_disconnected_at_apply_and_others_stay() {
    let fixture = Fixture::new();
    let device = fixture.valid_client("device", true);
    let other = fixture.valid_client("other", true);
    let mut config = tls_config(
        &fixture,
        vec![listed(&device, Authorized), listed(&other, Authorized)],
    );
    config.broker.tls.require_client_certificate = true;
    let (broker, addr) = start(config.clone()).await;
    let mut revoked_session = mqtt_connect(
        addr,
        client_config(fixture.ca_file(), Some(&device)),
        "device",
    )
    .await
    .expect("device connects");
    let mut other_session = mqtt_connect(
        addr,
        client_config(fixture.ca_file(), Some(&other)),
        "other",
    )
    .await
    .expect("other connects");

    config.certificates.clients[0].status = Revoked;
    let report = broker.apply(config).await.expect("apply");
    assert!(
        report.changes.iter().any(|c| c
            .subject
            .starts_with("1 client(s) connected with a revoked certificate")),
        "{report:?}"
    );
    // The revoked client's connection ends (3.1.1: closed without DISCONNECT)...
    let mut rest = Vec::new();
    let read = tokio::time::timeout(common::WAIT, revoked_session.read_to_end(&mut rest)).await;
    assert!(matches!(read, Ok(Ok(_)) | Ok(Err(_))), "still open");
    common::wait_offline(&broker, "device").await;
    // ...the other one still works, over the same listener...
    qos1_round_trip(&mut other_session, 7)
        .await
        .expect("other still connected");
    assert_eq!(
        broker.stats().listeners[0].address,
        addr,
        "listener not restarted"
    );
    // ...and the revoked certificate is refused from now on, counted.
    let refused_before = broker.stats().certificates_refused;
    let again = mqtt_connect(
        addr,
        client_config(fixture.ca_file(), Some(&device)),
        "device",
    )
    .await;
    assert!(again.is_err(), "a revoked certificate is refused");
    common::eventually("refusal counted", || {
        let refused = broker.stats().certificates_refused;
        async move { refused > refused_before }
    })
    .await;
    broker.shutdown().await;
}

#[tokio::test]
async fn a_new_server_certificate_applies_to_new_connections_only() {
    let fixture = Fixture::new();
    let config = tls_config(&fixture, vec![]);
    let (broker, addr) = start(config.clone()).await;
    let client = client_config(fixture.ca_file(), None);
    let mut old_session = mqtt_connect(addr, client.clone(), "old")
        .await
        .expect("connects");
    let first = roost::pki::server::show(&fixture.paths).unwrap().sha256;

    let host_names = vec!["127.0.0.1".to_string()];
    roost::pki::server::create(&fixture.paths, &host_names, time::OffsetDateTime::now_utc())
        .expect("new server certificate");
    broker.apply(config).await.expect("apply");

    let new_session = mqtt_connect(addr, client, "new").await.expect("connects");
    let presented = new_session.get_ref().1.peer_certificates().unwrap()[0].clone();
    let presented = roost::pki::sha256_hex(&presented);
    assert_ne!(presented, first, "new connections get the new certificate");
    assert_eq!(
        presented,
        roost::pki::server::show(&fixture.paths).unwrap().sha256
    );
    qos1_round_trip(&mut old_session, 3)
        .await
        .expect("the old connection is kept");
    assert_eq!(broker.stats().listeners[0].address, addr);
    broker.shutdown().await;
}

#[tokio::test]
async fn the_common_name_serves_as_username_when_configured() {
    let fixture = Fixture::new();
    let device = fixture.valid_client("sensor-7", true);
    let mut config = tls_config(&fixture, vec![]);
    config.broker.tls.require_client_certificate = true;
    config.broker.tls.certificate_common_name_as_username = true;
    let (broker, addr) = start(config).await;
    let _session = mqtt_connect(addr, client_config(fixture.ca_file(), Some(&device)), "c")
        .await
        .expect("connects");
    let clients = broker.clients().await;
    assert_eq!(clients[0].username.as_deref(), Some("sensor-7"));
    assert_eq!(clients[0].listener, ListenerKind::Tls);
    broker.shutdown().await;
}

#[tokio::test]
async fn rumqttc_with_rustls_publishes_and_receives_over_tls() {
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, Event, MqttOptions, mqttbytes::v5::Packet};
    let fixture = Fixture::new();
    let device = fixture.valid_client("rumqttc", true);
    let mut config = tls_config(&fixture, vec![]);
    config.broker.tls.require_client_certificate = true;
    let (broker, addr) = start(config).await;

    let mut options = MqttOptions::new("rumqttc-tls", "127.0.0.1", addr.port());
    options.set_transport(rumqttc::Transport::tls_with_config(
        rumqttc::TlsConfiguration::Rustls(client_config(fixture.ca_file(), Some(&device))),
    ));
    let (client, mut events) = AsyncClient::new(options, 10);
    client
        .subscribe("tls/echo", QoS::AtLeastOnce)
        .await
        .unwrap();
    let received = tokio::time::timeout(common::WAIT, async {
        loop {
            match events.poll().await.expect("event loop") {
                Event::Incoming(Packet::SubAck(_)) => {
                    client
                        .publish("tls/echo", QoS::AtLeastOnce, false, "over tls")
                        .await
                        .unwrap();
                }
                Event::Incoming(Packet::Publish(publish)) => return publish.payload,
                _ => {}
            }
        }
    })
    .await
    .expect("the message comes back");
    assert_eq!(&received[..], b"over tls");
    broker.shutdown().await;
}

async fn openssl_protocol(
    addr: std::net::SocketAddr,
    fixture: &Fixture,
    args: &[&str],
) -> Option<String> {
    let output = tokio::process::Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string(), "-brief"])
        .arg("-CAfile")
        .arg(fixture.ca_file())
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("openssl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    text.lines()
        .find_map(|line| line.trim().strip_prefix("Protocol version:"))
        .map(|version| version.trim().to_string())
}

#[tokio::test]
async fn openssl_gets_tls_1_2_and_1_3_with_modern_suites_only() {
    let fixture = Fixture::new();
    let (broker, addr) = start(tls_config(&fixture, vec![])).await;
    let run = |args: &'static [&'static str]| openssl_protocol(addr, &fixture, args);
    assert_eq!(run(&["-tls1_3"]).await.as_deref(), Some("TLSv1.3"));
    assert_eq!(run(&["-tls1_2"]).await.as_deref(), Some("TLSv1.2"));
    // Older versions are refused by the broker (the client is told it may go lower).
    assert_eq!(
        run(&["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]).await,
        None
    );
    // CBC suites without forward secrecy are not offered.
    assert_eq!(
        run(&["-tls1_2", "-cipher", "AES128-SHA:@SECLEVEL=0"]).await,
        None
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn mosquitto_clients_with_certificates_exchange_a_message() {
    let fixture = Fixture::new();
    let sub_files = fixture.valid_client("mosq-sub", true);
    let pub_files = fixture.valid_client("mosq-pub", true);
    let mut config = tls_config(&fixture, vec![]);
    config.broker.tls.require_client_certificate = true;
    let (broker, addr) = start(config).await;
    let port = addr.port().to_string();
    let tls_args = |files: &common::tls::ClientFiles| {
        vec![
            "--cafile".to_string(),
            fixture.ca_file().display().to_string(),
            "--cert".to_string(),
            files.certificate.display().to_string(),
            "--key".to_string(),
            files.key.display().to_string(),
        ]
    };
    let subscriber = tokio::process::Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "tls/mosquitto",
            "-q",
            "1",
            "-C",
            "1",
            "-W",
            "20",
            "-i",
            "mosq-sub",
        ])
        .args(tls_args(&sub_files))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("mosquitto_sub runs");
    common::eventually("mosquitto_sub subscribed", || {
        let broker = &broker;
        async move {
            broker
                .clients()
                .await
                .iter()
                .any(|c| &*c.client_id == "mosq-sub" && c.subscriptions == 1)
        }
    })
    .await;
    let status = tokio::process::Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "tls/mosquitto",
            "-q",
            "1",
            "-m",
            "hello over tls",
        ])
        .args(tls_args(&pub_files))
        .status()
        .await
        .expect("mosquitto_pub runs");
    assert!(status.success());
    let output = subscriber.wait_with_output().await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "hello over tls"
    );

    // Without a certificate mosquitto_pub is refused.
    let refused = tokio::process::Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "x",
            "-m",
            "x",
            "--cafile",
        ])
        .arg(fixture.ca_file())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .expect("mosquitto_pub runs");
    assert!(!refused.success());
    broker.shutdown().await;
}

#[tokio::test]
async fn an_unusable_server_certificate_refuses_the_apply_and_keeps_the_running_one() {
    let fixture = Fixture::new();
    let config = tls_config(&fixture, vec![]);
    let (broker, addr) = start(config.clone()).await;
    std::fs::write(&fixture.paths.server_private_key, "not a key\n").unwrap();
    let error = broker.apply(config).await.unwrap_err().to_string();
    assert!(error.contains("server.key"), "{error}");
    // The setup in use is kept: new clients still connect.
    let mut session = mqtt_connect(addr, client_config(fixture.ca_file(), None), "after")
        .await
        .expect("still serving TLS");
    qos1_round_trip(&mut session, 2).await.expect("works");
    broker.shutdown().await;
}

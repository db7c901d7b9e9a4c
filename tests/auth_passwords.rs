//! Users and passwords (issue 8): CONNECTs with wrong, missing or unknown credentials are
//! refused (MQTT 3.1.1 §3.2.2.3 return code 0x05; MQTT 5.0 §3.2.2.2 reason codes 0x86 and
//! 0x87), counted, and slowed down when they repeat; users added at Apply work at once; a
//! Mosquitto password file imports and is enforced. Clients: raw packets, rumqttc,
//! `mosquitto_pub` and paho.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use bytes::Bytes;
use common::child::ChildBroker;
use common::*;
use roost::auth::password::hash_password;
use roost::config::{Config, User};
use roost::mqtt::{ProtocolVersion, ReasonCode};

const ROOST: &str = env!("CARGO_BIN_EXE_roost");

fn user(name: &str, password: &str) -> User {
    User {
        username: name.into(),
        password_hash: hash_password(password).expect("hash"),
    }
}

fn with_credentials(
    version: ProtocolVersion,
    client_id: &str,
    username: Option<&str>,
    password: Option<&str>,
) -> roost::mqtt::Connect {
    let mut connect = connect(version, client_id);
    connect.username = username.map(str::to_string);
    connect.password = password.map(|p| Bytes::copy_from_slice(p.as_bytes()));
    connect
}

async fn connack_for(
    broker: &TestBroker,
    version: ProtocolVersion,
    username: Option<&str>,
    password: Option<&str>,
) -> ReasonCode {
    let mut client = broker.raw(version).await;
    client
        .connect(with_credentials(version, "auth-test", username, password))
        .await
        .reason
}

#[tokio::test]
async fn v311_wrong_missing_or_absent_credentials_get_0x05_not_authorized_mqtt_3_2_2_3() {
    let broker = start_with(|c| {
        c.broker.require_credentials = true;
        c.users.push(user("alice", "right"));
    })
    .await;
    let v3 = ProtocolVersion::V3_1_1;
    // 0x05 Connection Refused, not authorized, as Mosquitto answers (0x04 would say the
    // credentials are malformed).
    assert_eq!(
        connack_for(&broker, v3, Some("alice"), Some("right")).await,
        ReasonCode::Success
    );
    assert_eq!(
        connack_for(&broker, v3, None, None)
            .await
            .to_v3_connack_code(),
        0x05
    );
    assert_eq!(
        connack_for(&broker, v3, Some("alice"), None)
            .await
            .to_v3_connack_code(),
        0x05
    );
    assert_eq!(
        connack_for(&broker, v3, Some("alice"), Some("wrong"))
            .await
            .to_v3_connack_code(),
        0x05
    );
    assert_eq!(broker.handle.stats().auth_failures, 3);
}

#[tokio::test]
async fn v5_wrong_password_gets_0x86_and_no_credentials_0x87_mqtt_5_3_2_2_2() {
    let broker = start_with(|c| {
        c.broker.require_credentials = true;
        c.users.push(user("alice", "right"));
    })
    .await;
    let v5 = ProtocolVersion::V5;
    assert_eq!(
        connack_for(&broker, v5, Some("alice"), Some("right")).await,
        ReasonCode::Success
    );
    assert_eq!(
        connack_for(&broker, v5, Some("alice"), Some("wrong")).await,
        ReasonCode::BadUserNameOrPassword
    );
    assert_eq!(
        connack_for(&broker, v5, Some("mallory"), Some("right")).await,
        ReasonCode::BadUserNameOrPassword
    );
    assert_eq!(
        connack_for(&broker, v5, None, None).await,
        ReasonCode::NotAuthorized
    );
    assert_eq!(broker.handle.stats().auth_failures, 3);
}

#[tokio::test]
async fn without_required_credentials_anonymous_clients_connect_but_a_claimed_username_needs_its_password()
 {
    let broker = start_with(|c| c.users.push(user("alice", "right"))).await;
    let v5 = ProtocolVersion::V5;
    assert_eq!(
        connack_for(&broker, v5, None, None).await,
        ReasonCode::Success
    );
    assert_eq!(
        connack_for(&broker, v5, Some("alice"), Some("wrong")).await,
        ReasonCode::BadUserNameOrPassword
    );
    assert_eq!(
        connack_for(&broker, v5, Some("alice"), Some("right")).await,
        ReasonCode::Success
    );
}

#[tokio::test]
async fn rumqttc_v4_and_v5_see_the_refusal() {
    let broker = start_with(|c| {
        c.broker.require_credentials = true;
        c.users.push(user("alice", "right"));
    })
    .await;
    let mut options = v4::options(broker.addr, "rumqttc-v4");
    options.set_credentials("alice", "wrong");
    let (_client, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
    match tokio::time::timeout(WAIT, eventloop.poll()).await {
        Ok(Err(rumqttc::ConnectionError::ConnectionRefused(code))) => {
            assert_eq!(code, rumqttc::ConnectReturnCode::NotAuthorized)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let mut options = v5::options(broker.addr, "rumqttc-v5");
    options.set_credentials("alice", "wrong");
    let (_client, mut eventloop) = rumqttc::v5::AsyncClient::new(options, 10);
    match tokio::time::timeout(WAIT, eventloop.poll()).await {
        Ok(Err(rumqttc::v5::ConnectionError::ConnectionRefused(code))) => assert_eq!(
            code,
            rumqttc::v5::mqttbytes::v5::ConnectReturnCode::BadUserNamePassword
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let mut options = v5::options(broker.addr, "rumqttc-v5-ok");
    options.set_credentials("alice", "right");
    let client = v5::spawn(options).await;
    assert_eq!(
        client.connack.code,
        rumqttc::v5::mqttbytes::v5::ConnectReturnCode::Success
    );
}

#[tokio::test]
async fn users_added_or_changed_at_apply_take_effect_for_new_connections_without_restart() {
    let mut config = test_config();
    config.broker.require_credentials = true;
    let broker = start_with(|c| *c = config.clone()).await;
    let v5 = ProtocolVersion::V5;
    assert_eq!(
        connack_for(&broker, v5, Some("bob"), Some("pw1")).await,
        ReasonCode::BadUserNameOrPassword
    );
    // A connected client stays connected through the Apply.
    let mut bystander = broker.raw(v5).await;
    config.users.push(user("carol", "c"));
    broker.handle.apply(config.clone()).await.expect("apply");
    let connack = bystander
        .connect(with_credentials(v5, "bystander", Some("carol"), Some("c")))
        .await;
    assert_eq!(connack.reason, ReasonCode::Success);

    config.users.push(user("bob", "pw1"));
    let report = broker.handle.apply(config.clone()).await.expect("apply");
    assert!(
        report
            .changes
            .iter()
            .all(|c| c.action != roost::broker::ChangeAction::StoredNotActive),
        "{report:?}"
    );
    assert_eq!(
        connack_for(&broker, v5, Some("bob"), Some("pw1")).await,
        ReasonCode::Success
    );
    // A new password replaces the old one at the next Apply.
    config.users.retain(|u| u.username != "bob");
    config.users.push(user("bob", "pw2"));
    broker.handle.apply(config.clone()).await.expect("apply");
    assert_eq!(
        connack_for(&broker, v5, Some("bob"), Some("pw1")).await,
        ReasonCode::BadUserNameOrPassword
    );
    assert_eq!(
        connack_for(&broker, v5, Some("bob"), Some("pw2")).await,
        ReasonCode::Success
    );
    bystander.sync().await;
}

#[tokio::test]
async fn repeated_failures_from_one_address_are_slowed_down() {
    let broker = start_with(|c| {
        c.broker.require_credentials = true;
        c.users.push(user("alice", "right"));
    })
    .await;
    let v5 = ProtocolVersion::V5;
    // Failures 1 to 3 wait 0, 200 and 400 ms before their check; the fourth waits 800 ms.
    // Only a lower bound is asserted: a loaded machine can only make it slower.
    for _ in 0..3 {
        assert_eq!(
            connack_for(&broker, v5, Some("alice"), Some("guess")).await,
            ReasonCode::BadUserNameOrPassword
        );
    }
    let started = Instant::now();
    assert_eq!(
        connack_for(&broker, v5, Some("alice"), Some("guess")).await,
        ReasonCode::BadUserNameOrPassword
    );
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "the fourth failure was answered after {:?}",
        started.elapsed()
    );
    // The right password still gets in (after its wait), and clears the address.
    assert_eq!(
        connack_for(&broker, v5, Some("alice"), Some("right")).await,
        ReasonCode::Success
    );
    assert_eq!(broker.handle.stats().auth_failures, 4);
}

#[tokio::test]
async fn auth_failures_are_published_in_sys() {
    let broker = start_with(|c| {
        c.broker.require_credentials = true;
        c.broker.sys_interval_secs = 1;
        c.users.push(user("alice", "right"));
    })
    .await;
    let v5 = ProtocolVersion::V5;
    assert_eq!(
        connack_for(&broker, v5, Some("alice"), Some("wrong")).await,
        ReasonCode::BadUserNameOrPassword
    );
    let mut watcher = broker.raw(v5).await;
    watcher
        .connect(with_credentials(
            v5,
            "watcher",
            Some("alice"),
            Some("right"),
        ))
        .await;
    watcher
        .subscribe(
            "$SYS/broker/clients/auth_failures",
            roost::mqtt::QoS::AtMostOnce,
        )
        .await;
    // The retained value may predate the failure; the next one-second update counts it.
    for _ in 0..3 {
        if &watcher.recv_publish().await.payload[..] == b"1" {
            return;
        }
    }
    panic!("$SYS/broker/clients/auth_failures never said 1");
}

// ---- The real binary, with Mosquitto's tools and paho ----

fn roost(args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(ROOST)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("roost runs");
    let _ = child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin.as_bytes());
    child.wait_with_output().expect("roost ends")
}

fn mosquitto_pub(
    broker: &ChildBroker,
    version: &str,
    user: &str,
    password: &str,
) -> (bool, String) {
    let output = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &broker.port(), "-V", version])
        .args([
            "-i",
            "mosq-auth",
            "-t",
            "auth/test",
            "-m",
            "hello",
            "-q",
            "1",
        ])
        .args(["-u", user, "-P", password])
        .output()
        .expect("mosquitto_pub is installed (Debian mosquitto-clients)");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// paho-mqtt's answer to a CONNECT with these credentials, as paho names it.
fn paho_connect(broker: &ChildBroker, version: &str, user: &str, password: &str) -> String {
    let script = r#"
import sys, threading
import paho.mqtt.client as mqtt
port, version, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
protocol = mqtt.MQTTv5 if version == "5" else mqtt.MQTTv311
client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-auth", protocol=protocol)
client.username_pw_set(user, password)
done = threading.Event()
def on_connect(client, userdata, flags, reason_code, properties):
    print(str(reason_code))
    done.set()
client.on_connect = on_connect
client.connect("127.0.0.1", port)
client.loop_start()
if not done.wait(20):
    print("no CONNACK")
client.loop_stop()
"#;
    let output = Command::new("python3")
        .args(["-c", script, &broker.port(), version, user, password])
        .output()
        .expect("python3 runs");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[test]
fn a_mosquitto_password_file_is_imported_and_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let passwords = dir.path().join("passwd");
    let status = Command::new("mosquitto_passwd")
        .args(["-c", "-b"])
        .arg(&passwords)
        .args(["sensor", "s3cret"])
        .status()
        .expect("mosquitto_passwd is installed (Debian mosquitto)");
    assert!(status.success());
    let text = std::fs::read_to_string(&passwords).unwrap();
    assert!(text.starts_with("sensor:$7$"), "{text}");

    let config = dir.path().join("roost.ron");
    let config_arg = config.to_str().unwrap();
    let output = roost(
        &[
            "--config",
            config_arg,
            "user",
            "import-mosquitto",
            passwords.to_str().unwrap(),
        ],
        "",
    );
    assert!(output.status.success(), "{output:?}");
    let imported = Config::load(&config).unwrap();
    assert_eq!(imported.users.len(), 1);
    assert_eq!(
        format!("sensor:{}\n", imported.users[0].password_hash),
        text,
        "the hash is kept as it is"
    );

    let broker = ChildBroker::start_with_args(&["--config", config_arg, "--require-credentials"]);
    for version in ["mqttv311", "mqttv5"] {
        let (ok, stderr) = mosquitto_pub(&broker, version, "sensor", "s3cret");
        assert!(ok, "{version}: {stderr}");
        let (ok, stderr) = mosquitto_pub(&broker, version, "sensor", "guess");
        assert!(!ok, "{version}: a wrong password was accepted");
        assert!(
            stderr.to_lowercase().contains("not authori")
                || stderr.to_lowercase().contains("bad user name or password"),
            "{version}: {stderr}"
        );
    }
    assert_eq!(paho_connect(&broker, "3", "sensor", "s3cret"), "Success");
    assert_eq!(
        paho_connect(&broker, "3", "sensor", "guess"),
        "Not authorized"
    );
    assert_eq!(paho_connect(&broker, "5", "sensor", "s3cret"), "Success");
    assert_eq!(
        paho_connect(&broker, "5", "sensor", "guess"),
        "Bad user name or password"
    );
    assert!(
        broker
            .logs()
            .iter()
            .any(|line| line.contains("CONNECT refused: bad credentials")),
        "refusals are logged"
    );
}

#[test]
fn the_mosquitto_fixture_in_the_unit_tests_was_written_by_mosquitto_passwd() {
    // src/cli/users.rs verifies "secret" against this hash; check it against the tool.
    let hash = "$7$101$E0XVgNCCwYc/yBBw$jWoqlW547WmcZpaR8OmVa+6Uebi80paNFdD69JXqo8OT0Mk7PhLpaiQuHxUDO8csOwggorO1kfGuoD/2/NZNVA==";
    let stored = roost::auth::password::StoredHash::parse(hash).unwrap();
    assert!(stored.verify(b"secret"));
}

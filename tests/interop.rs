//! Interoperability: the real `roost serve` binary driven by third-party clients —
//! Eclipse Mosquitto's `mosquitto_pub` / `mosquitto_sub` and the paho-mqtt Python client —
//! and the command-line behaviour operators rely on (port taken, signals, bad config).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

mod common;

use common::child::ChildBroker;

const ROOST: &str = env!("CARGO_BIN_EXE_roost");

/// A running `mosquitto_sub -d` and the lines of its standard output.
struct Subscriber {
    child: Child,
    lines: mpsc::Receiver<String>,
}

/// Starts `mosquitto_sub` and waits until its subscription is in place: with `-d` it prints
/// a debug line when the SUBACK arrives.
fn mosquitto_sub(served: &ChildBroker, args: &[&str]) -> Subscriber {
    // `-d` prints its debug lines on standard output, which stdio buffers when it is a pipe:
    // stdbuf makes it line-buffered so that the SUBACK line arrives when it is printed.
    let mut child = Command::new("stdbuf")
        .args(["-oL", "mosquitto_sub"])
        .args(["-h", "127.0.0.1", "-p", &served.port(), "-W", "20", "-d"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub is installed (Debian mosquitto-clients)");
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let subscriber = Subscriber { child, lines };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match subscriber.lines.recv_timeout(remaining) {
            Ok(line) if line.starts_with("Client ") && line.ends_with("received SUBACK") => {
                return subscriber;
            }
            Ok(_) => {}
            Err(error) => panic!("mosquitto_sub got no SUBACK: {error}"),
        }
    }
}

fn mosquitto_pub(served: &ChildBroker, args: &[&str]) {
    let output = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &served.port()])
        .args(args)
        .output()
        .expect("mosquitto_pub is installed (Debian mosquitto-clients)");
    assert!(
        output.status.success(),
        "mosquitto_pub {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Waits for `mosquitto_sub` to exit and returns the messages it printed, without its `-d`
/// debug lines.
fn finish(subscriber: Subscriber) -> String {
    let output = subscriber.child.wait_with_output().expect("client exits");
    assert!(
        output.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The reader thread ends with the pipe, so this drains everything the client printed.
    subscriber
        .lines
        .iter()
        .filter(|line| !line.starts_with("Client ") && !line.starts_with("Subscribed (mid"))
        .map(|line| line + "\n")
        .collect()
}

#[test]
fn mosquitto_clients_exchange_messages_at_every_qos_over_v311() {
    let served = ChildBroker::start();
    let sub = mosquitto_sub(
        &served,
        &[
            "-V",
            "mqttv311",
            "-t",
            "interop/v311/#",
            "-q",
            "2",
            "-C",
            "3",
            "-F",
            "%t %q %p",
        ],
    );
    for qos in ["0", "1", "2"] {
        mosquitto_pub(
            &served,
            &[
                "-V",
                "mqttv311",
                "-t",
                &format!("interop/v311/q{qos}"),
                "-q",
                qos,
                "-m",
                &format!("m{qos}"),
            ],
        );
    }
    let lines = finish(sub);
    // MQTT-4.6.0-6: one publisher's messages to one topic tree arrive in order; the delivered
    // QoS is the minimum of the published and the granted QoS (MQTT-3.8.4-8).
    assert_eq!(
        lines.lines().collect::<Vec<_>>(),
        vec![
            "interop/v311/q0 0 m0",
            "interop/v311/q1 1 m1",
            "interop/v311/q2 2 m2"
        ]
    );
}

#[test]
fn mosquitto_clients_pass_user_properties_over_v5() {
    let served = ChildBroker::start();
    let sub = mosquitto_sub(
        &served,
        &[
            "-V",
            "mqttv5",
            "-t",
            "interop/v5",
            "-q",
            "1",
            "-C",
            "1",
            "-F",
            "%t %P %p",
        ],
    );
    mosquitto_pub(
        &served,
        &[
            "-V",
            "mqttv5",
            "-t",
            "interop/v5",
            "-q",
            "1",
            "-m",
            "hello",
            "-D",
            "publish",
            "user-property",
            "room",
            "kitchen",
        ],
    );
    // MQTT-3.3.2-17: the server forwards user properties unchanged.
    assert_eq!(finish(sub).trim(), "interop/v5 room:kitchen hello");
}

#[test]
fn mosquitto_sub_receives_retained_message_with_retain_flag() {
    let served = ChildBroker::start();
    mosquitto_pub(
        &served,
        &[
            "-t",
            "interop/retained",
            "-q",
            "1",
            "-r",
            "-m",
            "last-value",
        ],
    );
    let sub = mosquitto_sub(
        &served,
        &["-t", "interop/retained", "-C", "1", "-F", "%r %t %p"],
    );
    // MQTT-3.3.1-9: a retained message sent because of a new subscription has RETAIN set.
    assert_eq!(finish(sub).trim(), "1 interop/retained last-value");
}

#[test]
fn paho_python_client_checks_pass() {
    let served = ChildBroker::start();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/paho_client.py");
    let output: Output = Command::new("python3")
        .arg(&script)
        .args(["127.0.0.1", &served.port()])
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "paho checks failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("all paho checks passed"), "{stdout}");
}

#[test]
fn serve_exits_cleanly_on_sigterm() {
    let served = ChildBroker::start();
    let status = served.terminate();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn serve_refuses_a_port_that_is_taken() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("address").to_string();
    let output = Command::new(ROOST)
        .args(["serve", "--tcp", &addr])
        .stdin(Stdio::null())
        .output()
        .expect("roost runs");
    assert!(
        !output.status.success(),
        "roost serve must fail when the port is taken"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot listen on") && stderr.contains(&addr),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_a_bad_config_naming_the_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bad.ron");
    std::fs::write(&path, "(limits: (max_packet_size: 3))").expect("write");
    let output = Command::new(ROOST)
        .args(["serve", "--config"])
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .expect("roost runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("limits.max_packet_size"), "{stderr}");
}

#[test]
fn config_init_prints_a_config_that_checks_valid() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("roost.ron");
    let init = Command::new(ROOST)
        .args(["config", "init"])
        .output()
        .expect("roost runs");
    assert!(init.status.success());
    std::fs::write(&path, &init.stdout).expect("write");
    let check = Command::new(ROOST)
        .args(["config", "check", "--config"])
        .arg(&path)
        .output()
        .expect("roost runs");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(String::from_utf8_lossy(&check.stdout).contains("valid"));
}

#[test]
fn serve_logs_each_listener() {
    let served = ChildBroker::start();
    assert_eq!(served.addr.ip().to_string(), "127.0.0.1");
    assert_ne!(served.addr.port(), 0);
}

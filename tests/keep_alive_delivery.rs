//! Clients that live longer than their keep alive keep receiving: a subscriber that has sent
//! PINGREQ (MQTT-3.1.2-23: the client pings when it has nothing else to send) still gets
//! every message at every QoS and protocol version. The PINGRESP the broker answers with must
//! not disturb the accounting of what waits for the subscriber's writer.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::child::ChildBroker;
use common::*;
use roost::mqtt::{Packet, ProtocolVersion, PubResponse, QoS};

/// Keep alive of the subscribers: short, so that several periods fit in a few seconds.
const KEEP_ALIVE_SECS: u16 = 1;
/// Rounds of ping-then-publish; each round takes half a keep-alive period.
const ROUNDS: usize = 6;

/// A subscriber with a one-second keep alive pings twice per period, as a client with
/// nothing to send does, and must receive a message at `qos` after every ping: the rounds
/// span three keep-alive periods.
async fn subscriber_keeps_receiving_across_pings(version: ProtocolVersion, qos: QoS) {
    let broker = start().await;
    let topic = format!("pings/{version}/{qos:?}");
    let mut subscriber = broker.raw(version).await;
    let mut c = connect(version, "pinging-subscriber");
    c.keep_alive = KEEP_ALIVE_SECS;
    subscriber.connect(c).await;
    subscriber.subscribe(&topic, qos).await;
    let mut publisher = broker.connected(version, "publisher").await;

    for round in 0..ROUNDS {
        subscriber.send(&Packet::PingReq).await;
        assert_eq!(subscriber.recv().await, Some(Packet::PingResp));
        let payload = format!("round {round}");
        let packet_id = (qos != QoS::AtMostOnce).then_some(round as u16 + 1);
        publisher
            .publish(publish(&topic, &payload, qos, packet_id))
            .await;
        let received = subscriber.recv_publish().await;
        assert_eq!(&received.payload[..], payload.as_bytes(), "round {round}");
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                subscriber
                    .puback(received.packet_id.expect("packet id"))
                    .await;
                assert!(matches!(publisher.recv().await, Some(Packet::PubAck(_))));
            }
            QoS::ExactlyOnce => {
                let id = received.packet_id.expect("packet id");
                subscriber
                    .send(&Packet::PubRec(PubResponse::success(id)))
                    .await;
                assert!(matches!(subscriber.recv().await, Some(Packet::PubRel(_))));
                subscriber
                    .send(&Packet::PubComp(PubResponse::success(id)))
                    .await;
                let Some(Packet::PubRec(rec)) = publisher.recv().await else {
                    panic!("publisher expected PUBREC");
                };
                publisher
                    .send(&Packet::PubRel(PubResponse::success(rec.packet_id)))
                    .await;
                assert!(matches!(publisher.recv().await, Some(Packet::PubComp(_))));
            }
        }
        // Time passes as it does for a real client: the rounds span several periods. Not a
        // synchronisation: every step above waited for its answer.
        tokio::time::sleep(Duration::from_millis(u64::from(KEEP_ALIVE_SECS) * 500)).await;
    }
}

#[tokio::test]
async fn v311_subscriber_keeps_receiving_qos0_after_pinging() {
    subscriber_keeps_receiving_across_pings(ProtocolVersion::V3_1_1, QoS::AtMostOnce).await;
}

#[tokio::test]
async fn v311_subscriber_keeps_receiving_qos1_after_pinging() {
    subscriber_keeps_receiving_across_pings(ProtocolVersion::V3_1_1, QoS::AtLeastOnce).await;
}

#[tokio::test]
async fn v311_subscriber_keeps_receiving_qos2_after_pinging() {
    subscriber_keeps_receiving_across_pings(ProtocolVersion::V3_1_1, QoS::ExactlyOnce).await;
}

#[tokio::test]
async fn v5_subscriber_keeps_receiving_qos0_after_pinging() {
    subscriber_keeps_receiving_across_pings(ProtocolVersion::V5, QoS::AtMostOnce).await;
}

#[tokio::test]
async fn v5_subscriber_keeps_receiving_qos1_after_pinging() {
    subscriber_keeps_receiving_across_pings(ProtocolVersion::V5, QoS::AtLeastOnce).await;
}

#[tokio::test]
async fn v5_subscriber_keeps_receiving_qos2_after_pinging() {
    subscriber_keeps_receiving_across_pings(ProtocolVersion::V5, QoS::ExactlyOnce).await;
}

/// rumqttc pings on its own timer: with a one-second keep alive it pings several times
/// while the test publishes QoS 0 to it for four seconds.
#[tokio::test]
async fn rumqttc_subscriber_with_a_short_keep_alive_keeps_receiving_qos0() {
    let broker = start().await;
    let mut options = v4::options(broker.addr, "rumqttc-pinger");
    options.set_keep_alive(Duration::from_secs(1));
    let mut subscriber = v4::spawn(options).await;
    subscriber
        .client
        .subscribe("rumqttc/pings", rumqttc::QoS::AtMostOnce)
        .await
        .expect("subscribe queued");
    let mut publisher = broker
        .connected(ProtocolVersion::V3_1_1, "rumqttc-feeder")
        .await;
    // The SUBACK is not visible through the helper: a QoS 1 message to the same subscriber
    // through a second, QoS 1 subscription is the barrier.
    subscriber
        .client
        .subscribe("rumqttc/barrier", rumqttc::QoS::AtLeastOnce)
        .await
        .expect("subscribe queued");
    loop {
        publisher
            .publish(publish(
                "rumqttc/barrier",
                "ready?",
                QoS::AtLeastOnce,
                Some(1),
            ))
            .await;
        assert!(matches!(publisher.recv().await, Some(Packet::PubAck(_))));
        if let Ok(Some(_)) =
            tokio::time::timeout(Duration::from_millis(200), subscriber.publishes.recv()).await
        {
            break;
        }
    }
    let started = Instant::now();
    let mut round = 0;
    while started.elapsed() < Duration::from_secs(4) {
        let payload = format!("qos0 {round}");
        publisher
            .publish(publish("rumqttc/pings", &payload, QoS::AtMostOnce, None))
            .await;
        let received = subscriber.next_publish().await;
        assert_eq!(&received.payload[..], payload.as_bytes());
        round += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Reads a child's stdout lines on a thread.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits for a line containing `needle`, returning the lines skipped.
fn wait_for_line(lines: &mpsc::Receiver<String>, needle: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(remaining) {
            Ok(line) if line.contains(needle) => return,
            Ok(_) => {}
            Err(_) => panic!("no line containing {needle:?} within {within:?}"),
        }
    }
}

/// Kills the child on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The defect as a user met it: `mosquitto_sub -k 5` (its smallest keep alive) stopped
/// printing QoS 0 messages after its first PINGREQ. Each round waits for the PINGRESP line,
/// then publishes and waits for the message line. `stdbuf` makes its debug lines arrive as
/// they are printed.
#[test]
fn mosquitto_sub_keeps_receiving_qos0_across_pings() {
    let broker = ChildBroker::start();
    let port = broker.addr.port().to_string();
    let mut sub = Killed(
        Command::new("stdbuf")
            .args(["-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", &port])
            .args(["-t", "ping/#", "-k", "5", "-d", "-v"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub is installed (Debian mosquitto-clients)"),
    );
    let lines = lines_of(&mut sub.0);
    wait_for_line(&lines, "received SUBACK", Duration::from_secs(10));
    for round in 0..2 {
        wait_for_line(&lines, "received PINGRESP", Duration::from_secs(10));
        let payload = format!("after-ping-{round}");
        let status = Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-t",
                "ping/1",
                "-m",
                &payload,
            ])
            .status()
            .expect("mosquitto_pub is installed");
        assert!(status.success());
        wait_for_line(&lines, &format!("ping/1 {payload}"), Duration::from_secs(5));
    }
}

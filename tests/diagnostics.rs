//! Diagnostic events: one per packet in and out, only while switched on.

mod common;

use std::time::Duration;

use common::*;
use roost::broker::Direction;
use roost::mqtt::{PacketType, ProtocolVersion, QoS};

#[tokio::test]
async fn events_flow_only_while_switched_on() {
    let broker = start().await;
    let mut events = broker.handle.subscribe_diagnostics();
    let mut quiet = broker.connected(ProtocolVersion::V5, "quiet").await;
    quiet.subscribe("d", QoS::AtMostOnce).await;
    assert!(events.try_recv().is_err(), "nothing while off");

    broker.handle.set_diagnostics(true);
    let mut p = broker.connected(ProtocolVersion::V5, "loud").await;
    p.publish(publish("d", "hello", QoS::AtMostOnce, None))
        .await;
    quiet.recv_publish().await;
    let mut seen = Vec::new();
    while let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(300), events.recv()).await
    {
        seen.push(event);
    }
    assert!(seen.iter().any(|e| e.packet_type == PacketType::Connect
        && e.direction == Direction::In
        && &*e.client_id == "loud"));
    assert!(
        seen.iter()
            .any(|e| e.packet_type == PacketType::ConnAck && e.direction == Direction::Out)
    );
    let inbound = seen
        .iter()
        .find(|e| e.packet_type == PacketType::Publish && e.direction == Direction::In)
        .expect("inbound PUBLISH");
    assert_eq!(inbound.topic.as_deref(), Some("d"));
    assert_eq!(inbound.payload_preview.as_deref(), Some(&b"hello"[..]));
    let outbound = seen
        .iter()
        .find(|e| e.packet_type == PacketType::Publish && e.direction == Direction::Out)
        .expect("outbound PUBLISH");
    assert_eq!(&*outbound.client_id, "quiet");
    assert!(outbound.size > 5);

    broker.handle.set_diagnostics(false);
    p.publish(publish("d", "again", QoS::AtMostOnce, None))
        .await;
    quiet.recv_publish().await;
    assert!(events.try_recv().is_err(), "nothing after switching off");
}

#[tokio::test]
async fn configured_log_file_gets_one_line_per_packet() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("diag.log");
    let log = path.clone();
    let broker = start_with(move |c| {
        c.diagnostics.log_messages = true;
        c.diagnostics.log_file = Some(log);
    })
    .await;
    let mut client = broker.connected(ProtocolVersion::V3_1_1, "logged").await;
    client.subscribe("l", QoS::AtMostOnce).await;
    client
        .publish(publish("l", "line", QoS::AtMostOnce, None))
        .await;
    client.recv_publish().await;
    // The log is written by its own task: poll the file until both lines are there.
    let logged = |text: &str| {
        text.lines()
            .any(|l| l.contains("logged") && l.contains("SUBSCRIBE"))
            && text
                .lines()
                .any(|l| l.contains("PUBLISH") && l.contains("topic=l"))
    };
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if logged(&text) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the log file lacks the SUBSCRIBE or PUBLISH line: {text}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

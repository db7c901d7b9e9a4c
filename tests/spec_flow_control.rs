//! Conformance audit: flow control with Receive Maximum both ways, and the client's Maximum
//! Packet Size (MQTT 5.0 §3.3.4, §4.9, §3.1.2.11.4).

#[path = "common/audit.rs"]
mod audit;
mod common;

use audit::*;
use common::*;

use roost::mqtt::{Packet, ProtocolVersion, QoS, ReasonCode};

/// A v5 subscriber to `topic` at QoS 2 whose Receive Maximum is `receive_maximum`.
async fn limited_subscriber(
    broker: &TestBroker,
    id: &str,
    topic: &str,
    receive_maximum: u16,
) -> RawClient {
    let mut sub = connected_with(broker, id, |c| {
        c.properties.receive_maximum = Some(receive_maximum)
    })
    .await;
    sub.subscribe(topic, QoS::ExactlyOnce).await;
    sub
}

#[tokio::test]
async fn qos2_uses_the_receive_maximum_until_pubcomp() {
    // MQTT-3.3.4-9: a QoS 2 PUBLISH counts against the client's Receive Maximum until
    // PUBCOMP (PUBREC alone does not free the slot).
    let broker = start().await;
    let mut sub = limited_subscriber(&broker, "rm2-sub", "rm2", 1).await;
    let mut p = broker.connected(ProtocolVersion::V5, "rm2-pub").await;
    for i in 1..=2u16 {
        publish_acked(
            &mut p,
            publish("rm2", &i.to_string(), QoS::ExactlyOnce, Some(i)),
        )
        .await;
    }
    let first = sub.recv_publish().await;
    assert_eq!(&first.payload[..], b"1");
    let id = first.packet_id.unwrap();
    sub.send(&Packet::PubRec(response(id))).await;
    assert_eq!(sub.recv().await, Some(Packet::PubRel(response(id))));
    sub.expect_silence(QUIET).await;
    sub.send(&Packet::PubComp(response(id))).await;
    assert_eq!(&sub.recv_publish().await.payload[..], b"2");
}

#[tokio::test]
async fn pubrec_with_an_error_reason_completes_the_message() {
    // MQTT-3.3.4-9 and MQTT 5.0 §4.3.3: a PUBREC with a Reason Code of 0x80 or more ends
    // the flow (no PUBREL) and frees the Receive Maximum slot.
    let broker = start().await;
    let mut sub = limited_subscriber(&broker, "rme-sub", "rme", 1).await;
    let mut p = broker.connected(ProtocolVersion::V5, "rme-pub").await;
    for i in 1..=2u16 {
        publish_acked(
            &mut p,
            publish("rme", &i.to_string(), QoS::ExactlyOnce, Some(i)),
        )
        .await;
    }
    let first = sub.recv_publish().await;
    sub.send(&Packet::PubRec(response_with(
        first.packet_id.unwrap(),
        ReasonCode::ImplementationSpecificError,
    )))
    .await;
    let next = sub.recv_publish().await;
    assert_eq!(
        &next.payload[..],
        b"2",
        "no PUBREL, the next message instead"
    );
}

#[tokio::test]
async fn qos1_and_qos2_share_the_receive_maximum() {
    // MQTT-3.3.4-9: the quota counts QoS 1 and QoS 2 PUBLISH packets together.
    let broker = start().await;
    let mut sub = limited_subscriber(&broker, "rmm-sub", "rmm", 2).await;
    let mut p = broker.connected(ProtocolVersion::V5, "rmm-pub").await;
    publish_acked(&mut p, publish("rmm", "1", QoS::AtLeastOnce, Some(1))).await;
    publish_acked(&mut p, publish("rmm", "2", QoS::ExactlyOnce, Some(2))).await;
    publish_acked(&mut p, publish("rmm", "3", QoS::AtLeastOnce, Some(3))).await;
    let one = sub.recv_publish().await;
    let two = sub.recv_publish().await;
    assert_eq!((&one.payload[..], &two.payload[..]), (&b"1"[..], &b"2"[..]));
    sub.expect_silence(QUIET).await;
    sub.puback(one.packet_id.unwrap()).await;
    assert_eq!(&sub.recv_publish().await.payload[..], b"3");
}

#[tokio::test]
async fn qos0_is_not_held_back_by_a_full_receive_maximum() {
    // MQTT 5.0 §4.9: the quota applies to QoS 1 and QoS 2 only; the server may go on sending
    // QoS 0 PUBLISH packets, and roost does.
    let broker = start().await;
    let mut sub = limited_subscriber(&broker, "rm0-sub", "rm0", 1).await;
    let mut p = broker.connected(ProtocolVersion::V5, "rm0-pub").await;
    publish_acked(&mut p, publish("rm0", "q1", QoS::AtLeastOnce, Some(1))).await;
    publish_acked(&mut p, publish("rm0", "q1b", QoS::AtLeastOnce, Some(2))).await;
    p.publish(publish("rm0", "q0", QoS::AtMostOnce, None)).await;
    let first = sub.recv_publish().await;
    assert_eq!(&first.payload[..], b"q1");
    let next = sub.recv_publish().await;
    assert_eq!(&next.payload[..], b"q0");
    assert_eq!(next.qos, QoS::AtMostOnce);
}

#[tokio::test]
async fn inbound_qos2_beyond_our_receive_maximum_is_refused_with_0x93() {
    // MQTT-3.3.4-7 (the client's duty) and MQTT 5.0 §3.3.4: a server receiving more
    // unacknowledged QoS 2 PUBLISH than its Receive Maximum disconnects with 0x93.
    let broker = start_with(|c| c.limits.max_inflight = 2).await;
    let mut c = broker.connected(ProtocolVersion::V5, "in-rm").await;
    for i in 1..=3u16 {
        c.publish(publish("in-rm", "x", QoS::ExactlyOnce, Some(i)))
            .await;
    }
    let packets = until_closed(&mut c).await;
    let last = packets.last().expect("packets before closing");
    match last {
        Packet::Disconnect(d) => assert_eq!(d.reason.code(), 0x93),
        other => panic!("expected DISCONNECT 0x93, got {other:?}"),
    }
}

#[tokio::test]
async fn completed_qos2_flows_free_our_receive_maximum() {
    // MQTT 5.0 §4.9: the quota is returned when PUBCOMP is sent, so a client that completes
    // each flow may send any number of QoS 2 messages.
    let broker = start_with(|c| c.limits.max_inflight = 2).await;
    let mut c = broker.connected(ProtocolVersion::V5, "in-rm-ok").await;
    for i in 1..=6u16 {
        let reason =
            publish_acked(&mut c, publish("in-rm-ok", "x", QoS::ExactlyOnce, Some(i))).await;
        assert!(reason < 0x80, "reason {reason:#x}");
    }
}

#[tokio::test]
async fn oversize_qos1_message_is_discarded_as_if_delivered() {
    // MQTT-3.1.2-25: a message larger than the client's Maximum Packet Size is discarded
    // without sending and the server behaves as if it had completed sending it, so it
    // does not hold a Receive Maximum slot.
    let broker = start().await;
    let mut sub = connected_with(&broker, "mps-sub", |c| {
        c.properties.receive_maximum = Some(1);
        c.properties.maximum_packet_size = Some(128);
    })
    .await;
    sub.subscribe("mps", QoS::AtLeastOnce).await;
    let mut p = broker.connected(ProtocolVersion::V5, "mps-pub").await;
    let big = "x".repeat(512);
    publish_acked(&mut p, publish("mps", &big, QoS::AtLeastOnce, Some(1))).await;
    publish_acked(&mut p, publish("mps", "small", QoS::AtLeastOnce, Some(2))).await;
    let got = sub.recv_publish().await;
    assert_eq!(&got.payload[..], b"small");
}

#[tokio::test]
async fn resumed_session_resends_within_the_new_receive_maximum() {
    // MQTT-3.3.4-9 and MQTT-4.9.0-1/-2: the send quota starts at the Receive Maximum of
    // the new connection (it is not session state, MQTT 5.0 §4.9), and PUBLISH packets
    // re-sent on resume (MQTT-4.4.0-1) are QoS 1 PUBLISH packets like any other: no more
    // than Receive Maximum of them may be unacknowledged.
    let broker = start().await;
    let v = ProtocolVersion::V5;
    let mut c = broker.raw(v).await;
    let mut first = persistent(v, "rm-resume", Some(60));
    first.properties.receive_maximum = Some(3);
    c.connect(first).await;
    c.subscribe("rm-resume", QoS::AtLeastOnce).await;
    let mut p = broker.connected(v, "rm-resume-p").await;
    for i in 1..=3u16 {
        publish_acked(
            &mut p,
            publish("rm-resume", &i.to_string(), QoS::AtLeastOnce, Some(i)),
        )
        .await;
    }
    for _ in 0..3 {
        c.recv_publish().await;
    }
    drop(c);
    broker.wait_offline("rm-resume").await;
    // Queued while offline: it goes out only after every resend.
    publish_acked(&mut p, publish("rm-resume", "4", QoS::AtLeastOnce, Some(4))).await;
    let mut c = broker.raw(v).await;
    let mut again = persistent(v, "rm-resume", Some(60));
    again.properties.receive_maximum = Some(1);
    assert!(c.connect(again).await.session_present);
    for (payload, dup) in [("1", true), ("2", true), ("3", true), ("4", false)] {
        let got = c.recv_publish().await;
        assert_eq!(&got.payload[..], payload.as_bytes());
        assert_eq!(got.dup, dup, "DUP on message {payload}");
        c.expect_silence(QUIET).await;
        c.puback(got.packet_id.unwrap()).await;
    }
}

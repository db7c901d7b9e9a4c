//! PUBLISH at QoS 0, 1 and 2 in both directions (MQTT 5.0 §4.3, §4.6, §4.9).

mod common;

use std::time::Duration;

use common::*;
use roost::mqtt::{Packet, ProtocolVersion, PubResponse, QoS, ReasonCode};

#[tokio::test]
async fn qos1_is_acknowledged_and_delivered_with_a_packet_id() {
    let broker = start().await;
    let mut sub = broker.connected(ProtocolVersion::V5, "sub").await;
    sub.subscribe("t/1", QoS::AtLeastOnce).await;
    let mut publisher = broker.connected(ProtocolVersion::V5, "pub").await;
    publisher
        .publish(publish("t/1", "one", QoS::AtLeastOnce, Some(7)))
        .await;
    match publisher.recv().await {
        Some(Packet::PubAck(ack)) => {
            assert_eq!(ack.packet_id, 7);
            assert_eq!(ack.reason, ReasonCode::Success);
        }
        other => panic!("expected PUBACK, got {other:?}"),
    }
    let got = sub.recv_publish().await;
    assert_eq!(got.qos, QoS::AtLeastOnce);
    assert!(got.packet_id.is_some());
    assert!(!got.dup);
    assert_eq!(&got.payload[..], b"one");
}

#[tokio::test]
async fn v5_puback_says_no_matching_subscribers() {
    // MQTT 5.0 §3.4.2.1: 0x10 when nobody subscribed.
    let broker = start().await;
    let mut publisher = broker.connected(ProtocolVersion::V5, "lonely").await;
    publisher
        .publish(publish("nobody/here", "x", QoS::AtLeastOnce, Some(1)))
        .await;
    match publisher.recv().await {
        Some(Packet::PubAck(ack)) => assert_eq!(ack.reason, ReasonCode::NoMatchingSubscribers),
        other => panic!("expected PUBACK, got {other:?}"),
    }
}

#[tokio::test]
async fn qos2_inbound_is_forwarded_once_even_when_resent() {
    // MQTT-4.3.3-9 (method B): the packet id is kept until PUBREL; a re-sent PUBLISH with
    // DUP is acknowledged again but not delivered twice.
    let broker = start().await;
    let mut sub = broker.connected(ProtocolVersion::V3_1_1, "sub2").await;
    sub.subscribe("q2", QoS::ExactlyOnce).await;
    let mut publisher = broker.connected(ProtocolVersion::V3_1_1, "pub2").await;
    let message = publish("q2", "exactly", QoS::ExactlyOnce, Some(42));
    publisher.publish(message.clone()).await;
    assert_eq!(
        publisher.recv().await,
        Some(Packet::PubRec(PubResponse::success(42)))
    );
    let mut again = message;
    again.dup = true;
    publisher.publish(again).await;
    assert_eq!(
        publisher.recv().await,
        Some(Packet::PubRec(PubResponse::success(42)))
    );
    publisher
        .send(&Packet::PubRel(PubResponse::success(42)))
        .await;
    assert_eq!(
        publisher.recv().await,
        Some(Packet::PubComp(PubResponse::success(42)))
    );

    // The subscriber: exactly one copy, through the QoS 2 outbound flow.
    let got = sub.recv_publish().await;
    assert_eq!(got.qos, QoS::ExactlyOnce);
    let id = got.packet_id.unwrap();
    sub.send(&Packet::PubRec(PubResponse::success(id))).await;
    assert_eq!(
        sub.recv().await,
        Some(Packet::PubRel(PubResponse::success(id)))
    );
    sub.send(&Packet::PubComp(PubResponse::success(id))).await;
    sub.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn delivery_qos_is_the_minimum_of_publish_and_subscription() {
    // MQTT 5.0 §3.8.4 / MQTT-3.8.4-8 (3.1.1: MQTT-3.8.4-6): the lower of the two QoS.
    let broker = start().await;
    let mut sub0 = broker.connected(ProtocolVersion::V5, "s0").await;
    sub0.subscribe("down", QoS::AtMostOnce).await;
    let mut sub2 = broker.connected(ProtocolVersion::V5, "s2").await;
    sub2.subscribe("down", QoS::ExactlyOnce).await;
    let mut publisher = broker.connected(ProtocolVersion::V5, "p").await;
    publisher
        .publish(publish("down", "a", QoS::AtLeastOnce, Some(1)))
        .await;
    let got0 = sub0.recv_publish().await;
    assert_eq!(got0.qos, QoS::AtMostOnce);
    assert_eq!(got0.packet_id, None);
    let got2 = sub2.recv_publish().await;
    assert_eq!(got2.qos, QoS::AtLeastOnce);
}

#[tokio::test]
async fn messages_arrive_in_publish_order() {
    // MQTT-4.6.0-2..-6: ordered per topic for QoS 1.
    let broker = start().await;
    let mut sub = broker
        .connected(ProtocolVersion::V3_1_1, "ordered-sub")
        .await;
    sub.subscribe("order", QoS::AtLeastOnce).await;
    let mut publisher = broker
        .connected(ProtocolVersion::V3_1_1, "ordered-pub")
        .await;
    for i in 0..200u16 {
        publisher
            .publish(publish(
                "order",
                &i.to_string(),
                QoS::AtLeastOnce,
                Some(i + 1),
            ))
            .await;
    }
    for i in 0..200u16 {
        let got = sub.recv_publish().await;
        assert_eq!(got.payload, i.to_string().as_bytes());
        sub.puback(got.packet_id.unwrap()).await;
    }
}

#[tokio::test]
async fn client_receive_maximum_limits_unacknowledged_deliveries() {
    // MQTT-3.3.4-9: no more than the client's Receive Maximum in flight.
    let broker = start().await;
    let mut sub = broker.raw(ProtocolVersion::V5).await;
    let mut request = connect(ProtocolVersion::V5, "slow");
    request.properties.receive_maximum = Some(2);
    sub.connect(request).await;
    sub.subscribe("rm", QoS::AtLeastOnce).await;
    let mut publisher = broker.connected(ProtocolVersion::V5, "fast").await;
    for i in 1..=5u16 {
        publisher
            .publish(publish("rm", &i.to_string(), QoS::AtLeastOnce, Some(i)))
            .await;
    }
    let first = sub.recv_publish().await;
    let second = sub.recv_publish().await;
    sub.expect_silence(Duration::from_millis(300)).await;
    sub.puback(first.packet_id.unwrap()).await;
    let third = sub.recv_publish().await;
    assert_eq!(&third.payload[..], b"3");
    sub.expect_silence(Duration::from_millis(200)).await;
    sub.puback(second.packet_id.unwrap()).await;
    sub.puback(third.packet_id.unwrap()).await;
    assert_eq!(&sub.recv_publish().await.payload[..], b"4");
    assert_eq!(&sub.recv_publish().await.payload[..], b"5");
}

#[tokio::test]
async fn exceeding_our_receive_maximum_disconnects_with_0x93() {
    // MQTT 5.0 §3.3.4 (MQTT-3.3.4-7 seen from the server): more unacknowledged QoS 2
    // PUBLISH than our Receive Maximum is answered with DISCONNECT 0x93.
    let broker = start_with(|c| c.limits.max_inflight = 2).await;
    let mut client = broker.connected(ProtocolVersion::V5, "greedy").await;
    for id in 1..=3u16 {
        client
            .publish(publish("x", "y", QoS::ExactlyOnce, Some(id)))
            .await;
    }
    let disconnect = client.expect_disconnect().await.expect("DISCONNECT");
    assert_eq!(disconnect.reason, ReasonCode::ReceiveMaximumExceeded);
}

#[tokio::test]
async fn qos1_and_qos2_share_our_receive_maximum() {
    // MQTT-3.3.4-7 seen from the server, MQTT 5.0 §4.9: QoS 1 and QoS 2 PUBLISH count together
    // against the Receive Maximum until PUBACK / PUBCOMP; a re-sent QoS 2 PUBLISH (DUP) with a
    // packet id already held counts once; PUBREL gives its slot back.
    let broker = start_with(|c| c.limits.max_inflight = 2).await;
    let mut client = broker.connected(ProtocolVersion::V5, "mixed").await;
    client
        .publish(publish("x", "a", QoS::ExactlyOnce, Some(1)))
        .await;
    let mut resent = publish("x", "a", QoS::ExactlyOnce, Some(1));
    resent.dup = true;
    client.publish(resent).await;
    client
        .publish(publish("x", "b", QoS::ExactlyOnce, Some(2)))
        .await;
    // Two held, both PUBRECs arrive (one per PUBLISH received, the re-send included).
    for _ in 0..3 {
        match client.recv().await {
            Some(Packet::PubRec(rec)) => assert!(rec.packet_id == 1 || rec.packet_id == 2),
            other => panic!("expected PUBREC, got {other:?}"),
        }
    }
    client.send(&Packet::PubRel(PubResponse::success(1))).await;
    match client.recv().await {
        Some(Packet::PubComp(comp)) => assert_eq!(comp.packet_id, 1),
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
    // One QoS 2 held: a QoS 1 fits (1 + 1 = 2) ...
    client
        .publish(publish("x", "c", QoS::AtLeastOnce, Some(3)))
        .await;
    match client.recv().await {
        Some(Packet::PubAck(ack)) => assert_eq!(ack.packet_id, 3),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    // ... a second held QoS 2 fills the quota (2 + 0 = 2) ...
    client
        .publish(publish("x", "d", QoS::ExactlyOnce, Some(4)))
        .await;
    match client.recv().await {
        Some(Packet::PubRec(rec)) => assert_eq!(rec.packet_id, 4),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    // ... so a QoS 1 on top of the two QoS 2 is one too many, though QoS 1 alone is under it.
    client
        .publish(publish("x", "e", QoS::AtLeastOnce, Some(5)))
        .await;
    let disconnect = client.expect_disconnect().await.expect("DISCONNECT");
    assert_eq!(disconnect.reason, ReasonCode::ReceiveMaximumExceeded);
}

#[tokio::test]
async fn rumqttc_qos2_round_trip() {
    let broker = start().await;
    let mut sub = v5::spawn(v5::options(broker.addr, "r-sub")).await;
    sub.client
        .subscribe("exact/#", rumqttc::v5::mqttbytes::QoS::ExactlyOnce)
        .await
        .unwrap();
    sub.suback().await;
    let publisher = v4::spawn(v4::options(broker.addr, "r-pub")).await;
    for i in 0..10 {
        publisher
            .client
            .publish(
                format!("exact/{i}"),
                rumqttc::QoS::ExactlyOnce,
                false,
                vec![i],
            )
            .await
            .unwrap();
    }
    for i in 0..10u8 {
        let got = sub.next_publish().await;
        assert_eq!(got.payload[..], [i]);
        assert_eq!(got.qos, rumqttc::v5::mqttbytes::QoS::ExactlyOnce);
    }
    sub.no_publish(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_v5_client_within_our_receive_maximum_is_never_cut_off() {
    // The QoS 1 count falls as PUBACKs go out: a client that waits for them can publish
    // any number of messages.
    let broker = start_with(|c| c.limits.max_inflight = 2).await;
    let mut client = broker.connected(ProtocolVersion::V5, "polite-qos1").await;
    for round in 0..20u16 {
        for id in 1..=2u16 {
            client
                .publish(publish(
                    "polite",
                    "x",
                    QoS::AtLeastOnce,
                    Some(round * 2 + id),
                ))
                .await;
        }
        for _ in 0..2 {
            assert!(matches!(client.recv().await, Some(Packet::PubAck(_))));
        }
    }
}

#[tokio::test]
async fn pubrel_for_an_unknown_packet_id_gets_0x92() {
    // MQTT 5.0 §3.7.2.1: PUBCOMP 0x92 Packet Identifier not found.
    let broker = start().await;
    let mut client = broker.connected(ProtocolVersion::V5, "stray").await;
    client.send(&Packet::PubRel(PubResponse::success(77))).await;
    match client.recv().await {
        Some(Packet::PubComp(comp)) => {
            assert_eq!(comp.packet_id, 77);
            assert_eq!(comp.reason, ReasonCode::PacketIdentifierNotFound);
        }
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
}

#[tokio::test]
async fn pubrec_with_an_error_ends_the_qos2_flow() {
    // MQTT 5.0 §4.3.3: a PUBREC with a reason code of 0x80 or more ends the exchange; the
    // window slot is free again.
    let broker = start().await;
    let mut sub = broker.raw(ProtocolVersion::V5).await;
    let mut c = connect(ProtocolVersion::V5, "refuser");
    c.properties.receive_maximum = Some(1);
    sub.connect(c).await;
    sub.subscribe("refuse", QoS::ExactlyOnce).await;
    let mut p = broker.connected(ProtocolVersion::V5, "refused").await;
    for id in 1..=2u16 {
        p.publish(publish(
            "refuse",
            &id.to_string(),
            QoS::ExactlyOnce,
            Some(id),
        ))
        .await;
    }
    let first = sub.recv_publish().await;
    sub.send(&Packet::PubRec(PubResponse {
        packet_id: first.packet_id.unwrap(),
        reason: ReasonCode::UnspecifiedError,
        properties: Default::default(),
    }))
    .await;
    let second = sub.recv_publish().await;
    assert_eq!(&second.payload[..], b"2");
}

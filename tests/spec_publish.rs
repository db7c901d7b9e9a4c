//! Conformance audit: PUBLISH and the QoS flows, DUP, topic aliases across connections,
//! payload format and subscription identifiers (MQTT 3.1.1 §3.3, §4.3; MQTT 5.0 §3.3–3.7,
//! §4.3).

#[path = "common/audit.rs"]
mod audit;
mod common;

use std::collections::HashSet;

use audit::*;
use bytes::Bytes;
use common::*;
use roost::mqtt::{Packet, ProtocolVersion, QoS, ReasonCode};

#[tokio::test]
async fn qos2_packet_id_is_a_new_message_after_pubcomp() {
    // MQTT-4.3.3-11 (5.0) / MQTT-4.3.3-2 (3.1.1): once PUBCOMP is sent, a PUBLISH with the
    // same Packet Identifier is a new Application Message and is delivered again.
    let broker = start().await;
    let mut sub = broker.connected(ProtocolVersion::V5, "q2n-sub").await;
    sub.subscribe("q2n", QoS::AtMostOnce).await;
    let mut p = broker.connected(ProtocolVersion::V5, "q2n-pub").await;
    for payload in ["first", "second"] {
        let reason =
            publish_acked(&mut p, publish("q2n", payload, QoS::ExactlyOnce, Some(7))).await;
        assert_eq!(reason, 0);
        assert_eq!(sub.recv_publish().await.payload, payload.as_bytes());
    }
    sub.expect_silence(QUIET).await;
}

#[tokio::test]
async fn v5_pubrel_for_an_unknown_packet_id_gets_pubcomp_0x92() {
    // MQTT 5.0 §3.7.2.1 / MQTT-4.3.3-10: PUBREL is always answered with PUBCOMP; for a
    // Packet Identifier the server does not know the reason is 0x92.
    let broker = start().await;
    let mut c = broker.connected(ProtocolVersion::V5, "rel-unknown").await;
    c.send(&Packet::PubRel(response(99))).await;
    assert_eq!(
        c.recv().await,
        Some(Packet::PubComp(response_with(
            99,
            ReasonCode::PacketIdentifierNotFound
        )))
    );
}

#[tokio::test]
async fn v311_pubrel_is_always_answered_with_pubcomp() {
    // 3.1.1 MQTT-4.3.3-2 / §3.6.4: the receiver responds to PUBREL with PUBCOMP with the
    // same Packet Identifier, also when it has nothing stored for it.
    let broker = start().await;
    let mut c = broker.connected(ProtocolVersion::V3_1_1, "rel-311").await;
    c.send(&Packet::PubRel(response(5))).await;
    match c.recv().await {
        Some(Packet::PubComp(comp)) => assert_eq!(comp.packet_id, 5),
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
}

#[tokio::test]
async fn outbound_qos2_sends_pubrel_on_pubrec_and_never_the_publish_again() {
    // MQTT-4.3.3-4: on PUBREC the sender sends PUBREL with the same Packet Identifier;
    // MQTT-4.3.3-6: after PUBREL it does not re-send the PUBLISH.
    let broker = start().await;
    let mut sub = broker.connected(ProtocolVersion::V5, "oq2-sub").await;
    sub.subscribe("oq2", QoS::ExactlyOnce).await;
    let mut p = broker.connected(ProtocolVersion::V5, "oq2-pub").await;
    publish_acked(&mut p, publish("oq2", "x", QoS::ExactlyOnce, Some(1))).await;
    let got = sub.recv_publish().await;
    assert_eq!(got.qos, QoS::ExactlyOnce);
    assert!(!got.dup, "MQTT-4.3.3-2: the first PUBLISH has DUP 0");
    let id = got.packet_id.expect("packet id");
    sub.send(&Packet::PubRec(response(id))).await;
    assert_eq!(sub.recv().await, Some(Packet::PubRel(response(id))));
    sub.send(&Packet::PubComp(response(id))).await;
    sub.expect_silence(QUIET).await;
}

#[tokio::test]
async fn messages_in_flight_have_distinct_packet_ids() {
    // MQTT-2.2.1-3 / MQTT-4.3.2-1: each new QoS > 0 PUBLISH gets a Packet Identifier that
    // is not in use.
    let broker = start().await;
    let mut sub = broker.connected(ProtocolVersion::V5, "ids-sub").await;
    sub.subscribe("ids", QoS::ExactlyOnce).await;
    let mut p = broker.connected(ProtocolVersion::V5, "ids-pub").await;
    for i in 0..10u16 {
        let qos = if i % 2 == 0 {
            QoS::AtLeastOnce
        } else {
            QoS::ExactlyOnce
        };
        publish_acked(&mut p, publish("ids", "m", qos, Some(i + 1))).await;
    }
    let mut seen = HashSet::new();
    for _ in 0..10 {
        let got = sub.recv_publish().await;
        let id = got.packet_id.expect("packet id");
        assert_ne!(id, 0);
        assert!(seen.insert(id), "packet id {id} reused while in flight");
    }
}

#[tokio::test]
async fn incoming_dup_flag_is_not_propagated() {
    // 3.1.1 MQTT-3.3.1-3 / MQTT 5.0 MQTT-3.3.1-3: the DUP flag of an outgoing PUBLISH says
    // only whether that PUBLISH is a retransmission.
    let broker = start().await;
    let mut sub = broker.connected(ProtocolVersion::V3_1_1, "dup-sub").await;
    sub.subscribe("dupf", QoS::AtLeastOnce).await;
    let mut p = broker.connected(ProtocolVersion::V3_1_1, "dup-pub").await;
    let mut m = publish("dupf", "x", QoS::AtLeastOnce, Some(3));
    m.dup = true;
    publish_acked(&mut p, m).await;
    let got = sub.recv_publish().await;
    assert!(!got.dup, "first delivery to the subscriber carries DUP 0");
}

#[tokio::test]
async fn topic_alias_mappings_end_with_the_connection() {
    // MQTT-3.3.2-7: a receiver does not carry Topic Alias mappings from one Network
    // Connection to the next, so an alias-only PUBLISH on a new connection is a Protocol
    // Error (MQTT 5.0 §3.3.2.3.4).
    let broker = start().await;
    let mut c = broker.connected(ProtocolVersion::V5, "alias-carry").await;
    let mut m = publish("ac/t", "x", QoS::AtMostOnce, None);
    m.properties.topic_alias = Some(1);
    c.publish(m).await;
    disconnect(&mut c).await;
    let mut c = broker.connected(ProtocolVersion::V5, "alias-carry").await;
    let mut m = publish("", "y", QoS::AtMostOnce, None);
    m.properties.topic_alias = Some(1);
    c.publish(m).await;
    assert_eq!(disconnect_reason(&mut c).await, 0x82);
}

#[tokio::test]
async fn topic_alias_can_be_mapped_to_another_topic() {
    // MQTT 5.0 §3.3.2.3.4: a PUBLISH with a Topic Name and an alias already in use replaces
    // the mapping.
    let broker = start().await;
    let mut sub = broker.connected(ProtocolVersion::V5, "remap-sub").await;
    sub.subscribe("remap/#", QoS::AtMostOnce).await;
    let mut c = broker.connected(ProtocolVersion::V5, "remap-pub").await;
    for (topic, payload) in [("remap/a", "1"), ("", "2"), ("remap/b", "3"), ("", "4")] {
        let mut m = publish(topic, payload, QoS::AtMostOnce, None);
        m.properties.topic_alias = Some(1);
        c.publish(m).await;
    }
    let mut got = Vec::new();
    for _ in 0..4 {
        let p = sub.recv_publish().await;
        // MQTT 5.0 §3.3.2.3.4: aliases are per connection and direction; a subscriber that
        // allows none gets none.
        assert_eq!(p.properties.topic_alias, None);
        got.push((
            p.topic.to_string(),
            String::from_utf8(p.payload.to_vec()).unwrap(),
        ));
    }
    let want: Vec<(String, String)> = [
        ("remap/a", "1"),
        ("remap/a", "2"),
        ("remap/b", "3"),
        ("remap/b", "4"),
    ]
    .iter()
    .map(|(t, p)| (t.to_string(), p.to_string()))
    .collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn payload_format_indicator_is_sent_unaltered_or_checked() {
    // MQTT-3.3.2-4: the Payload Format Indicator reaches subscribers unaltered. A server MAY
    // check the payload against it; if it does, an invalid one is refused with 0x99
    // (MQTT 5.0 §3.3.2.3.2). Either way invalid UTF-8 never arrives labelled otherwise.
    let broker = start().await;
    let mut sub = broker.connected(ProtocolVersion::V5, "pfi-sub").await;
    sub.subscribe("pfi", QoS::AtMostOnce).await;
    let mut p = broker.connected(ProtocolVersion::V5, "pfi-pub").await;
    let mut m = publish("pfi", "", QoS::AtLeastOnce, Some(1));
    m.properties.payload_format_indicator = Some(1);
    m.payload = Bytes::from_static(&[0xC3, 0x28, 0xFF]);
    p.publish(m.clone()).await;
    match p.recv().await {
        Some(Packet::PubAck(ack)) if ack.reason.code() == 0x99 => {
            sub.expect_silence(QUIET).await;
        }
        Some(Packet::PubAck(ack)) => {
            assert_eq!(ack.reason.code(), 0, "{ack:?}");
            let got = sub.recv_publish().await;
            assert_eq!(got.properties.payload_format_indicator, Some(1));
            assert_eq!(got.payload, m.payload);
        }
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason.code(), 0x99),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn empty_retained_publish_still_reaches_subscribers() {
    // MQTT 5.0 MQTT-3.3.1-6 / 3.1.1 MQTT-3.3.1-10: a retained PUBLISH with an empty payload
    // clears the retained message and is otherwise processed normally.
    let broker = start().await;
    let mut sub = broker.connected(ProtocolVersion::V5, "er-sub").await;
    sub.subscribe("er", QoS::AtMostOnce).await;
    let mut p = broker.connected(ProtocolVersion::V5, "er-pub").await;
    let mut m = publish("er", "", QoS::AtMostOnce, None);
    m.retain = true;
    p.publish(m).await;
    let got = sub.recv_publish().await;
    assert!(got.payload.is_empty());
    assert_eq!(&*got.topic, "er");
}

#[tokio::test]
async fn retained_messages_carry_the_subscription_identifier() {
    // MQTT-3.3.4-3: messages sent because of a subscription with a Subscription Identifier
    // carry it, retained ones included.
    let broker = start().await;
    let mut p = broker.connected(ProtocolVersion::V5, "rsi-pub").await;
    let mut m = publish("rsi/t", "kept", QoS::AtLeastOnce, Some(1));
    m.retain = true;
    publish_acked(&mut p, m).await;
    let mut sub = broker.connected(ProtocolVersion::V5, "rsi-sub").await;
    subscribe_many(
        &mut sub,
        1,
        vec![filter("rsi/#", QoS::AtLeastOnce)],
        Some(42),
    )
    .await;
    let got = sub.recv_publish().await;
    assert!(got.retain);
    assert_eq!(got.properties.subscription_identifiers, vec![42]);
}

#[tokio::test]
async fn qos1_resent_by_the_client_is_acknowledged_each_time() {
    // MQTT-4.3.2-4/-5: a QoS 1 receiver acknowledges every PUBLISH, re-sent ones with
    // DUP 1 included (it may deliver them again: at least once).
    let broker = start().await;
    let mut p = broker.connected(ProtocolVersion::V5, "q1r").await;
    let m = publish("q1r", "x", QoS::AtLeastOnce, Some(9));
    assert_eq!(publish_acked(&mut p, m.clone()).await, 0x10);
    let mut again = m;
    again.dup = true;
    assert_eq!(publish_acked(&mut p, again).await, 0x10);
}

#[tokio::test]
async fn messages_to_one_topic_keep_their_order_across_qos() {
    // MQTT-4.6.0-5/-6 (ordered topic): messages published to one topic at QoS 0, 1 and 2
    // arrive in publishing order at a subscriber with Maximum QoS 2.
    let broker = start().await;
    let mut sub = broker.connected(ProtocolVersion::V5, "ord-sub").await;
    sub.subscribe("ord", QoS::ExactlyOnce).await;
    let mut p = broker.connected(ProtocolVersion::V5, "ord-pub").await;
    let qos = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];
    for i in 0..9u16 {
        publish_acked(
            &mut p,
            publish("ord", &i.to_string(), qos[usize::from(i % 3)], Some(i + 1)),
        )
        .await;
    }
    let mut payloads = Vec::new();
    while payloads.len() < 9 {
        match sub.recv().await {
            Some(Packet::Publish(got)) => {
                payloads.push(String::from_utf8(got.payload.to_vec()).unwrap());
                match got.qos {
                    QoS::AtMostOnce => {}
                    QoS::AtLeastOnce => sub.puback(got.packet_id.unwrap()).await,
                    QoS::ExactlyOnce => {
                        let id = got.packet_id.unwrap();
                        sub.send(&Packet::PubRec(response(id))).await;
                    }
                }
            }
            Some(Packet::PubRel(rel)) => sub.send(&Packet::PubComp(response(rel.packet_id))).await,
            other => panic!("unexpected {other:?}"),
        }
    }
    let want: Vec<String> = (0..9).map(|i| i.to_string()).collect();
    assert_eq!(payloads, want);
}

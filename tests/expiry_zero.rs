//! A Message Expiry Interval of 0 (MQTT 5.0 §3.3.2.3.3): the message has no time to wait,
//! so it goes to the subscribers that can receive it now and is kept for nobody.
//!
//! Onward delivery to a connected subscriber with room in its window starts at once, and
//! MQTT-3.3.2-5 drops only copies whose delivery has not started: those copies go out,
//! with the received interval minus the time waited, which is 0 (MQTT-3.3.2-6). A copy
//! that would have to wait (an offline session, a full window) is expired and dropped.

mod common;

use common::*;
use roost::mqtt::{
    Connect, Disconnect, Packet, ProtocolVersion, PubResponse, Publish, QoS, ReasonCode,
};

fn zero(topic: &str, payload: &str, qos: QoS, packet_id: Option<u16>) -> Publish {
    let mut p = publish(topic, payload, qos, packet_id);
    p.properties.message_expiry_interval = Some(0);
    p
}

fn persistent(id: &str) -> Connect {
    let mut c = connect(ProtocolVersion::V5, id);
    c.clean_start = false;
    c.properties.session_expiry_interval = Some(60);
    c
}

/// Publishes at `qos` and completes the flow; returns the publisher's acknowledgement
/// reason (Success for QoS 0).
async fn publish_and_complete(publisher: &mut RawClient, p: Publish) -> ReasonCode {
    let qos = p.qos;
    let packet_id = p.packet_id;
    publisher.publish(p).await;
    match qos {
        QoS::AtMostOnce => ReasonCode::Success,
        QoS::AtLeastOnce => match publisher.recv().await {
            Some(Packet::PubAck(ack)) => ack.reason,
            other => panic!("expected PUBACK, got {other:?}"),
        },
        QoS::ExactlyOnce => {
            let reason = match publisher.recv().await {
                Some(Packet::PubRec(rec)) => rec.reason,
                other => panic!("expected PUBREC, got {other:?}"),
            };
            let id = packet_id.expect("QoS 2 has a packet id");
            publisher
                .send(&Packet::PubRel(PubResponse::success(id)))
                .await;
            match publisher.recv().await {
                Some(Packet::PubComp(_)) => {}
                other => panic!("expected PUBCOMP, got {other:?}"),
            }
            reason
        }
    }
}

#[tokio::test]
async fn online_subscribers_get_it_at_every_qos_with_an_interval_of_0() {
    // MQTT-3.3.2-5 (delivery started), MQTT-3.3.2-6 (0 minus the time waited is 0).
    let broker = start().await;
    let mut sub = broker.connected(ProtocolVersion::V5, "zero-sub").await;
    sub.subscribe("zero/#", QoS::ExactlyOnce).await;
    let mut publisher = broker.connected(ProtocolVersion::V5, "zero-pub").await;
    for (n, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        let topic = format!("zero/{n}");
        let packet_id = (qos != QoS::AtMostOnce).then_some(10 + n as u16);
        let reason =
            publish_and_complete(&mut publisher, zero(&topic, "now", qos, packet_id)).await;
        assert_eq!(reason, ReasonCode::Success, "QoS {qos:?}");
        let got = sub.recv_publish().await;
        assert_eq!(&*got.topic, topic);
        assert_eq!(got.qos, qos);
        assert_eq!(got.properties.message_expiry_interval, Some(0));
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => sub.puback(got.packet_id.unwrap()).await,
            QoS::ExactlyOnce => {
                let id = got.packet_id.unwrap();
                sub.send(&Packet::PubRec(PubResponse::success(id))).await;
                assert!(matches!(sub.recv().await, Some(Packet::PubRel(_))));
                sub.send(&Packet::PubComp(PubResponse::success(id))).await;
            }
        }
    }
}

#[tokio::test]
async fn it_is_not_queued_for_an_offline_session() {
    // MQTT-3.3.2-5: a copy that has to wait has expired before its delivery starts.
    let broker = start().await;
    let mut sub = broker.raw(ProtocolVersion::V5).await;
    sub.connect(persistent("zero-away")).await;
    sub.subscribe("away/#", QoS::AtLeastOnce).await;
    sub.send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
        .await;
    assert!(sub.recv().await.is_none());

    let mut publisher = broker.connected(ProtocolVersion::V5, "zero-pub2").await;
    publish_and_complete(
        &mut publisher,
        zero("away/now", "lost", QoS::AtLeastOnce, Some(1)),
    )
    .await;
    publish_and_complete(
        &mut publisher,
        publish("away/later", "kept", QoS::AtLeastOnce, Some(2)),
    )
    .await;

    let mut sub = broker.raw(ProtocolVersion::V5).await;
    assert!(sub.connect(persistent("zero-away")).await.session_present);
    let got = sub.recv_publish().await;
    assert_eq!(&got.payload[..], b"kept", "the expiry-0 message was queued");
}

#[tokio::test]
async fn it_does_not_wait_behind_a_full_window() {
    // Receive Maximum 1 and one message unacknowledged: the next copy would have to wait.
    let broker = start().await;
    let mut sub = broker.raw(ProtocolVersion::V5).await;
    let mut c = connect(ProtocolVersion::V5, "zero-slow");
    c.properties.receive_maximum = Some(1);
    sub.connect(c).await;
    sub.subscribe("slow/#", QoS::AtLeastOnce).await;

    let mut publisher = broker.connected(ProtocolVersion::V5, "zero-pub3").await;
    publish_and_complete(
        &mut publisher,
        publish("slow/1", "first", QoS::AtLeastOnce, Some(1)),
    )
    .await;
    let first = sub.recv_publish().await;
    assert_eq!(&first.payload[..], b"first");
    publish_and_complete(
        &mut publisher,
        zero("slow/2", "lost", QoS::AtLeastOnce, Some(2)),
    )
    .await;
    publish_and_complete(
        &mut publisher,
        publish("slow/3", "third", QoS::AtLeastOnce, Some(3)),
    )
    .await;
    sub.puback(first.packet_id.unwrap()).await;
    let next = sub.recv_publish().await;
    assert_eq!(&next.payload[..], b"third", "the expiry-0 message waited");
}

#[tokio::test]
async fn a_retained_publish_with_expiry_0_clears_the_old_one_and_stores_nothing() {
    // MQTT-3.3.1-5: a retained PUBLISH replaces the topic's retained message; this one
    // expires at once, so nothing is left (MQTT-3.3.2-5).
    let broker = start().await;
    let mut publisher = broker.connected(ProtocolVersion::V5, "zero-retain").await;
    let mut old = publish("ret/zero", "old", QoS::AtLeastOnce, Some(1));
    old.retain = true;
    publish_and_complete(&mut publisher, old).await;
    assert_eq!(broker.handle.stats().messages_retained, 1);
    let mut new = zero("ret/zero", "new", QoS::AtLeastOnce, Some(2));
    new.retain = true;
    publish_and_complete(&mut publisher, new).await;
    assert_eq!(broker.handle.stats().messages_retained, 0);

    let mut late = broker.connected(ProtocolVersion::V5, "zero-late").await;
    late.subscribe("ret/#", QoS::AtLeastOnce).await;
    // Retained messages follow the SUBACK; a QoS 1 round trip comes after them.
    publish_and_complete(
        &mut publisher,
        publish("ret/live", "live", QoS::AtLeastOnce, Some(3)),
    )
    .await;
    let got = late.recv_publish().await;
    assert_eq!(&got.payload[..], b"live", "a retained message was left");
}

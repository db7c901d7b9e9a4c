//! Shared subscriptions `$share/{group}/{filter}` (MQTT 5.0 §4.8.2).

mod common;

use std::time::Duration;

use common::*;
use roost::mqtt::{ProtocolVersion, QoS};

#[tokio::test]
async fn messages_are_spread_round_robin_across_members() {
    let broker = start().await;
    let mut a = broker.connected(ProtocolVersion::V5, "a").await;
    let mut b = broker.connected(ProtocolVersion::V5, "b").await;
    a.subscribe("$share/workers/jobs/+", QoS::AtMostOnce).await;
    b.subscribe("$share/workers/jobs/+", QoS::AtMostOnce).await;
    let mut plain = broker.connected(ProtocolVersion::V5, "plain").await;
    plain.subscribe("jobs/+", QoS::AtMostOnce).await;
    let mut p = broker.connected(ProtocolVersion::V5, "boss").await;
    for i in 0..4 {
        p.publish(publish("jobs/x", &i.to_string(), QoS::AtMostOnce, None))
            .await;
    }
    // Every ordinary subscriber gets everything; the group shares.
    for _ in 0..4 {
        plain.recv_publish().await;
    }
    for _ in 0..2 {
        a.recv_publish().await;
        b.recv_publish().await;
    }
    a.expect_silence(Duration::from_millis(200)).await;
    b.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn retained_messages_are_not_sent_to_shared_subscriptions() {
    // MQTT 5.0 §4.8.2: "retained messages are not sent to a Shared Subscription".
    let broker = start().await;
    let mut p = broker.connected(ProtocolVersion::V5, "ret").await;
    let mut m = publish("kept/x", "r", QoS::AtMostOnce, None);
    m.retain = true;
    p.publish(m).await;
    p.sync().await;
    assert_eq!(broker.handle.stats().messages_retained, 1);
    let mut a = broker.connected(ProtocolVersion::V5, "shared-a").await;
    a.subscribe("$share/g/kept/#", QoS::AtMostOnce).await;
    a.expect_nothing(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_leaving_member_hands_its_unacknowledged_messages_to_another() {
    // MQTT 5.0 §4.8.2: QoS 1 messages of a member that loses its connection may go to
    // another member.
    let broker = start().await;
    let mut a = broker.connected(ProtocolVersion::V5, "ma").await;
    a.subscribe("$share/g/work", QoS::AtLeastOnce).await;
    let mut b = broker.connected(ProtocolVersion::V5, "mb").await;
    b.subscribe("$share/g/work", QoS::AtLeastOnce).await;
    let mut p = broker.connected(ProtocolVersion::V5, "mp").await;
    for i in 0..2u16 {
        p.publish(publish(
            "work",
            &i.to_string(),
            QoS::AtLeastOnce,
            Some(i + 1),
        ))
        .await;
    }
    // One message each; `a` leaves without acknowledging.
    let got_a = a.recv_publish().await;
    let got_b = b.recv_publish().await;
    b.puback(got_b.packet_id.unwrap()).await;
    drop(a);
    let moved = b.recv_publish().await;
    assert_eq!(moved.payload, got_a.payload);
    b.puback(moved.packet_id.unwrap()).await;
}

#[tokio::test]
async fn rumqttc_shared_group() {
    // MQTT 5.0 §4.8.2: each message goes to exactly one member of the group; roost spreads
    // them round robin.
    let broker = start().await;
    let mut one = v5::spawn(v5::options(broker.addr, "one")).await;
    let mut two = v5::spawn(v5::options(broker.addr, "two")).await;
    for member in [&mut one, &mut two] {
        member
            .client
            .subscribe("$share/grp/s/#", rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
            .await
            .unwrap();
        member.suback().await;
    }
    let p = v5::spawn(v5::options(broker.addr, "three")).await;
    for i in 0..6u8 {
        p.client
            .publish(
                "s/t",
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                false,
                vec![i],
            )
            .await
            .unwrap();
    }
    let mut to_one = Vec::new();
    let mut to_two = Vec::new();
    for _ in 0..3 {
        to_one.push(one.next_publish().await.payload[0]);
        to_two.push(two.next_publish().await.payload[0]);
    }
    // Nothing beyond the six: no message went to both members.
    one.no_publish(Duration::from_millis(300)).await;
    two.no_publish(Duration::from_millis(300)).await;
    let mut delivered: Vec<u8> = to_one.iter().chain(&to_two).copied().collect();
    delivered.sort_unstable();
    assert_eq!(
        delivered,
        (0..6).collect::<Vec<u8>>(),
        "{to_one:?} {to_two:?}"
    );
}

//! Many retained messages (issue 6, defect 6): a subscription matching tens of thousands of
//! retained messages gets every one of them exactly once, with RETAIN=1 (MQTT-3.3.1-8), at
//! the pace the subscriber takes them, while other clients keep being served; an
//! UNSUBSCRIBE stops the flow.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::*;
use roost::mqtt::{Packet, ProtocolVersion, QoS, Unsubscribe, encode};

/// Retained messages stored by each test, on `r/{i / 1000}/{i % 1000}`: `+/+/+` matches all.
const RETAINED: usize = 50_000;
/// Generous bound for one QoS 1 round trip of another client: a liveness check on a loaded
/// 2-core machine, not a benchmark.
const ROUND_TRIP_BOUND: Duration = Duration::from_secs(2);

fn topic(i: usize) -> String {
    format!("r/{}/{}", i / 1000, i % 1000)
}

/// Stores [`RETAINED`] QoS 1 retained messages, in batches whose PUBACKs are read (so the
/// publisher never has more in flight than the broker's Receive Maximum allows).
async fn store_retained(broker: &TestBroker) {
    let mut publisher = broker.connected(ProtocolVersion::V5, "store").await;
    const BATCH: usize = 100;
    for start in (0..RETAINED).step_by(BATCH) {
        let mut out = BytesMut::new();
        for i in start..(start + BATCH).min(RETAINED) {
            let mut message = publish(
                &topic(i),
                "v",
                QoS::AtLeastOnce,
                Some((i % BATCH + 1) as u16),
            );
            message.retain = true;
            encode(
                &Packet::Publish(message),
                ProtocolVersion::V5,
                u32::MAX,
                &mut out,
            )
            .expect("encode");
        }
        publisher.send_bytes(&out).await;
        for _ in start..(start + BATCH).min(RETAINED) {
            match publisher.recv().await {
                Some(Packet::PubAck(_)) => {}
                other => panic!("expected PUBACK, got {other:?}"),
            }
        }
    }
    assert_eq!(broker.handle.stats().messages_retained, RETAINED as u64);
}

/// Reads `count` retained PUBLISHes (acknowledging QoS 1 ones) and checks each is new and
/// carries RETAIN=1; returns the topics seen.
async fn receive_retained(client: &mut RawClient, count: usize) -> HashSet<String> {
    let mut seen = HashSet::with_capacity(count);
    while seen.len() < count {
        let message = client.recv_publish().await;
        assert!(
            message.retain,
            "MQTT-3.3.1-8: RETAIN=1 on {}",
            message.topic
        );
        assert!(
            seen.insert(message.topic.to_string()),
            "{} received twice",
            message.topic
        );
        if let Some(id) = message.packet_id {
            client.puback(id).await;
        }
    }
    seen
}

/// A QoS 1 round trip of `client` through the router (PUBLISH, PUBACK); returns how long it
/// took.
async fn round_trip(client: &mut RawClient, packet_id: u16) -> Duration {
    let started = Instant::now();
    client
        .publish(publish("ping", "x", QoS::AtLeastOnce, Some(packet_id)))
        .await;
    match client.recv().await {
        Some(Packet::PubAck(ack)) => assert_eq!(ack.packet_id, packet_id),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    started.elapsed()
}

async fn every_retained_message_arrives_once(qos: QoS) {
    let broker = start().await;
    store_retained(&broker).await;
    let mut subscriber = broker.connected(ProtocolVersion::V5, "many").await;
    assert_eq!(
        subscriber.subscribe("+/+/+", qos).await,
        [match qos {
            QoS::AtMostOnce => roost::mqtt::ReasonCode::Success,
            _ => roost::mqtt::ReasonCode::GrantedQoS1,
        }]
    );
    let seen = receive_retained(&mut subscriber, RETAINED).await;
    assert!((0..RETAINED).all(|i| seen.contains(&topic(i))));
    // Nothing more: the next packet is a live message published after the last retained one
    // arrived, not a duplicate.
    assert_eq!(subscriber.subscribe("end", QoS::AtMostOnce).await.len(), 1);
    let mut publisher = broker.connected(ProtocolVersion::V5, "ender").await;
    round_trip_on(&mut publisher, "end").await;
    let next = subscriber.recv_publish().await;
    assert_eq!(&*next.topic, "end");
    assert_eq!(broker.handle.stats().messages_dropped, 0);
}

async fn round_trip_on(client: &mut RawClient, topic: &str) {
    client
        .publish(publish(topic, "x", QoS::AtLeastOnce, Some(1)))
        .await;
    match client.recv().await {
        Some(Packet::PubAck(_)) => {}
        other => panic!("expected PUBACK, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_retained_messages_arrive_once_each_at_qos0() {
    every_retained_message_arrives_once(QoS::AtMostOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_retained_messages_arrive_once_each_at_qos1_without_drops() {
    // The default max_queued_messages (1000) must not drop any: retained messages are
    // pulled from the index only as the session's queue has room.
    every_retained_message_arrives_once(QoS::AtLeastOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_clients_are_served_while_a_subscriber_does_not_read_its_retained_messages() {
    let broker = start().await;
    store_retained(&broker).await;
    let mut slow = broker.connected(ProtocolVersion::V5, "slow").await;
    // Two SUBSCRIBEs of the same filter and one more, none of their messages read for now.
    for (id, filter) in [(1, "+/+/+"), (2, "+/+/+"), (3, "r/+/+")] {
        slow.send(&Packet::Subscribe(subscribe(id, filter, QoS::AtMostOnce)))
            .await;
    }
    let mut other = broker.connected(ProtocolVersion::V5, "other").await;
    for id in 1..=50 {
        let took = round_trip(&mut other, id).await;
        assert!(
            took < ROUND_TRIP_BOUND,
            "round trip {id} took {took:?} while retained messages were pending"
        );
    }
    // The slow subscriber then reads: both subscriptions' messages, each once per
    // subscription (the re-subscribed filter's match was replaced, not doubled).
    let mut counts = std::collections::HashMap::<String, u32>::new();
    let mut subacks = 0;
    let mut twice = 0;
    while subacks < 3 || twice < RETAINED {
        match slow.recv().await {
            Some(Packet::SubAck(_)) => subacks += 1,
            Some(Packet::Publish(message)) => {
                assert!(message.retain);
                let count = counts.entry(message.topic.to_string()).or_default();
                *count += 1;
                if *count == 2 {
                    twice += 1;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        counts.values().all(|n| *n <= 3),
        "a topic arrived too often"
    );
    assert_eq!(broker.handle.stats().messages_dropped, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribing_mid_delivery_stops_the_retained_messages() {
    let broker = start().await;
    store_retained(&broker).await;
    let mut subscriber = broker.connected(ProtocolVersion::V5, "quitter").await;
    assert_eq!(subscriber.subscribe("end", QoS::AtMostOnce).await.len(), 1);
    subscriber
        .send(&Packet::Subscribe(subscribe(2, "+/+/+", QoS::AtMostOnce)))
        .await;
    let mut received = 0;
    let mut suback = false;
    while !suback || received < 100 {
        match subscriber.recv().await {
            Some(Packet::SubAck(_)) => suback = true,
            Some(Packet::Publish(_)) => received += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    subscriber
        .send(&Packet::Unsubscribe(Unsubscribe {
            packet_id: 3,
            properties: Default::default(),
            filters: vec!["+/+/+".into()],
        }))
        .await;
    loop {
        match subscriber.recv().await {
            Some(Packet::UnsubAck(_)) => break,
            Some(Packet::Publish(_)) => received += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    // What was already on its way may still arrive (MQTT-3.10.4-3); then the live message
    // on `end`, published after the UNSUBACK, and nothing after it.
    let mut publisher = broker.connected(ProtocolVersion::V5, "ender").await;
    round_trip_on(&mut publisher, "end").await;
    loop {
        let message = subscriber.recv_publish().await;
        if &*message.topic == "end" {
            break;
        }
        received += 1;
    }
    assert!(
        received < RETAINED / 2,
        "{received} of {RETAINED} retained messages arrived although UNSUBSCRIBE went after 100"
    );
    subscriber.expect_silence(Duration::from_millis(300)).await;
}

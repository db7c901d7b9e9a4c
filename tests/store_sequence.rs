//! A session restored from the store keeps numbering its queued messages after the ones it
//! restored: a new message must not take (and overwrite) the record of an older one, and
//! the messages go out in the order they came (MQTT-4.6.0-6).

mod common;

use std::sync::Arc;

use common::*;
use roost::broker::BrokerHandle;
use roost::mqtt::{Connect, Disconnect, Packet, ProtocolVersion, QoS, ReasonCode};
use roost::store::MemoryStore;

fn persistent(id: &str) -> Connect {
    let mut c = connect(ProtocolVersion::V5, id);
    c.clean_start = false;
    c.properties.session_expiry_interval = Some(600);
    c
}

async fn broker_on(store: &MemoryStore) -> TestBroker {
    let handle = BrokerHandle::spawn_with_store(Arc::new(store.clone()));
    handle.apply(test_config()).await.expect("apply");
    let addr = handle.stats().listeners[0].address;
    TestBroker { handle, addr }
}

/// Publishes `payload` at QoS 1 to `seq/t` and waits for its PUBACK: by then the copy for
/// the offline session is in the store.
async fn publish_acknowledged(broker: &TestBroker, payload: &str) {
    let mut p = broker.connected(ProtocolVersion::V5, "seq-pub").await;
    p.publish(publish("seq/t", payload, QoS::AtLeastOnce, Some(1)))
        .await;
    assert!(matches!(p.recv().await, Some(Packet::PubAck(_))));
}

#[tokio::test]
async fn messages_queued_after_a_restart_do_not_overwrite_restored_ones() {
    let store = MemoryStore::new();
    let first = broker_on(&store).await;
    let mut sub = first.raw(ProtocolVersion::V5).await;
    sub.connect(persistent("seq-sub")).await;
    sub.subscribe("seq/#", QoS::AtLeastOnce).await;
    sub.send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
        .await;
    assert!(sub.recv().await.is_none());
    publish_acknowledged(&first, "one").await;
    publish_acknowledged(&first, "two").await;
    assert_eq!(store.queued_len("seq-sub"), 2);
    first.handle.shutdown().await;

    let second = broker_on(&store).await;
    publish_acknowledged(&second, "three").await;
    assert_eq!(
        store.queued_len("seq-sub"),
        3,
        "the new message took the record of a restored one"
    );
    second.handle.shutdown().await;

    let third = broker_on(&store).await;
    let mut sub = third.raw(ProtocolVersion::V5).await;
    assert!(sub.connect(persistent("seq-sub")).await.session_present);
    for expected in ["one", "two", "three"] {
        let got = sub.recv_publish().await;
        assert_eq!(&got.payload[..], expected.as_bytes());
        sub.puback(got.packet_id.unwrap()).await;
    }
}

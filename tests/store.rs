//! The store seam: every durable change goes through `Store`, and a broker started on a
//! store that holds state resumes from it.

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

#[tokio::test]
async fn a_broker_restarted_on_the_same_store_keeps_sessions_queues_and_retained() {
    let store = MemoryStore::new();
    let first = BrokerHandle::spawn_with_store(Arc::new(store.clone()));
    first.apply(test_config()).await.unwrap();
    let addr = first.stats().listeners[0].address;

    let mut sub = RawClient::open(addr, ProtocolVersion::V5).await;
    sub.connect(persistent("durable")).await;
    sub.subscribe("d/#", QoS::AtLeastOnce).await;
    sub.send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
        .await;
    assert!(sub.recv().await.is_none());
    wait_offline(&first, "durable").await;
    let mut p = RawClient::open(addr, ProtocolVersion::V5).await;
    p.connect(connect(ProtocolVersion::V5, "p")).await;
    p.publish(publish("d/q", "queued", QoS::AtLeastOnce, Some(1)))
        .await;
    p.recv().await;
    let mut r = publish("d/r", "retained", QoS::AtMostOnce, None);
    r.retain = true;
    p.publish(r).await;
    p.sync().await;
    eventually("the message queued and the retained one stored", || async {
        store.queued_len("durable") == 1 && store.retained_len() == 1
    })
    .await;
    first.shutdown().await;

    let second = BrokerHandle::spawn_with_store(Arc::new(store.clone()));
    second.apply(test_config()).await.unwrap();
    let addr = second.stats().listeners[0].address;
    let mut sub = RawClient::open(addr, ProtocolVersion::V5).await;
    let connack = sub.connect(persistent("durable")).await;
    assert!(connack.session_present);
    let got = sub.recv_publish().await;
    assert_eq!(&got.payload[..], b"queued");
    sub.puback(got.packet_id.unwrap()).await;
    // The subscription came back too: the retained message arrives on a new subscribe and
    // live messages reach the restored subscription.
    let mut late = RawClient::open(addr, ProtocolVersion::V5).await;
    late.connect(connect(ProtocolVersion::V5, "late")).await;
    late.subscribe("d/r", QoS::AtMostOnce).await;
    assert_eq!(&late.recv_publish().await.payload[..], b"retained");
    late.publish(publish("d/live", "live", QoS::AtMostOnce, None))
        .await;
    assert_eq!(&sub.recv_publish().await.payload[..], b"live");
    // The PUBACK for "queued" went to the router before "live" was published.
    eventually(
        "the acknowledged message removed from the store",
        || async { store.queued_len("durable") == 0 },
    )
    .await;
}

/// Anonymous clients may publish anywhere; alice may read only `alice/#`.
const ALICE_ACL: &str = "topic write #\n\nuser alice\ntopic read alice/#\n";

#[tokio::test]
async fn a_restored_session_keeps_its_username_and_its_topic_permissions() {
    let store = MemoryStore::new();
    let config = || {
        let mut config = test_config();
        config.acl = roost::auth::acl::parse_acl_file(ALICE_ACL).expect("acl");
        config
    };
    let alice = || {
        let mut c = persistent("alice-phone");
        c.username = Some("alice".into());
        c
    };
    let first = BrokerHandle::spawn_with_store(Arc::new(store.clone()));
    first.apply(config()).await.unwrap();
    let addr = first.stats().listeners[0].address;
    let mut sub = RawClient::open(addr, ProtocolVersion::V5).await;
    sub.connect(alice()).await;
    // Accepted: some topics it matches are readable; deliveries are checked.
    sub.subscribe("#", QoS::AtLeastOnce).await;
    sub.send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
        .await;
    assert!(sub.recv().await.is_none());
    wait_offline(&first, "alice-phone").await;
    first.shutdown().await;

    // Restarted, and messages arrive before alice does: they are checked against her
    // rules, which the restored session must already have.
    let second = BrokerHandle::spawn_with_store(Arc::new(store.clone()));
    second.apply(config()).await.unwrap();
    let addr = second.stats().listeners[0].address;
    let mut p = RawClient::open(addr, ProtocolVersion::V5).await;
    p.connect(connect(ProtocolVersion::V5, "publisher")).await;
    for (id, topic) in [(1, "alice/inbox"), (2, "secret/plans"), (3, "alice/end")] {
        p.publish(publish(topic, topic, QoS::AtLeastOnce, Some(id)))
            .await;
        p.recv().await;
    }
    let mut sub = RawClient::open(addr, ProtocolVersion::V5).await;
    assert!(sub.connect(alice()).await.session_present);
    for expected in ["alice/inbox", "alice/end"] {
        let got = sub.recv_publish().await;
        assert_eq!(&*got.topic, expected, "secret/plans is never delivered");
        sub.puback(got.packet_id.unwrap()).await;
    }
}

/// A memory store that reports its batches durable only when the test opens the gate, as
/// a disk whose fsyncs lag would.
#[derive(Default)]
struct GatedStore {
    inner: MemoryStore,
    written: std::sync::atomic::AtomicU64,
    durable: tokio::sync::watch::Sender<u64>,
}

impl GatedStore {
    fn open_gate(&self) {
        self.durable
            .send_replace(self.written.load(std::sync::atomic::Ordering::SeqCst));
    }
}

impl roost::store::Store for GatedStore {
    fn load(&self) -> Result<roost::store::Snapshot, roost::store::StoreError> {
        self.inner.load()
    }
    fn write(&self, ops: &[roost::store::StoreOp]) -> Result<u64, roost::store::StoreError> {
        let sequence = self.inner.write(ops)?;
        self.written
            .store(sequence, std::sync::atomic::Ordering::SeqCst);
        Ok(sequence)
    }
    fn acks_wait_for_sync(&self) -> bool {
        true
    }
    fn durable(&self) -> tokio::sync::watch::Receiver<u64> {
        self.durable.subscribe()
    }
    fn read_queued(
        &self,
        client_id: &str,
        range: roost::store::QueueRange,
    ) -> Result<Vec<roost::store::QueuedRecord>, roost::store::StoreError> {
        self.inner.read_queued(client_id, range)
    }
}

async fn puback_within(client: &mut RawClient, wait: std::time::Duration) -> Option<u16> {
    match client.recv_within(wait).await {
        Some(Some(Packet::PubAck(ack))) => Some(ack.packet_id),
        None => None,
        other => panic!("expected PUBACK, got {other:?}"),
    }
}

/// While the disk lags, a message that nothing stores (no persistent recipient, not
/// retained) is acknowledged at once: its publisher does not wait for other clients'
/// fsyncs. A client's acknowledgements still keep their order (MQTT-4.6.0-2): one that
/// follows a stored message waits behind it.
#[tokio::test]
async fn a_message_nothing_stores_is_acknowledged_without_waiting_for_the_disk() {
    let store = Arc::new(GatedStore::default());
    let broker = BrokerHandle::spawn_with_store(store.clone());
    broker.apply(test_config()).await.unwrap();
    let addr = broker.stats().listeners[0].address;
    let mut keeper = RawClient::open(addr, ProtocolVersion::V5).await;
    keeper.connect(persistent("keeper")).await;
    keeper.subscribe("stored/#", QoS::AtLeastOnce).await;
    let mut plain = RawClient::open(addr, ProtocolVersion::V5).await;
    plain.connect(connect(ProtocolVersion::V5, "plain")).await;
    plain.subscribe("plain/#", QoS::AtLeastOnce).await;
    store.open_gate();

    let quick = std::time::Duration::from_secs(5);
    let mut light = RawClient::open(addr, ProtocolVersion::V5).await;
    light.connect(connect(ProtocolVersion::V5, "light")).await;
    light
        .publish(publish("plain/a", "a", QoS::AtLeastOnce, Some(1)))
        .await;
    assert_eq!(puback_within(&mut light, quick).await, Some(1));

    let mut heavy = RawClient::open(addr, ProtocolVersion::V5).await;
    heavy.connect(connect(ProtocolVersion::V5, "heavy")).await;
    heavy
        .publish(publish("stored/b", "b", QoS::AtLeastOnce, Some(2)))
        .await;
    heavy
        .publish(publish("plain/c", "c", QoS::AtLeastOnce, Some(3)))
        .await;
    // The light client's next message is not held up by the heavy one's.
    light
        .publish(publish("plain/d", "d", QoS::AtLeastOnce, Some(4)))
        .await;
    assert_eq!(puback_within(&mut light, quick).await, Some(4));
    assert_eq!(
        puback_within(&mut heavy, std::time::Duration::from_millis(300)).await,
        None,
        "the stored message waits for the disk, and the next one behind it"
    );
    store.open_gate();
    assert_eq!(puback_within(&mut heavy, quick).await, Some(2));
    assert_eq!(puback_within(&mut heavy, quick).await, Some(3));
}

//! A store that fails: a message the broker could not store is not acknowledged as stored.
//!
//! v5 publishers get PUBACK/PUBREC 0x80 (Unspecified error), or 0x97 (Quota exceeded) when
//! the store is full (MQTT 5.0 §3.4.2.1, §3.5.2.1); v3.1.1 has no negative acknowledgement,
//! so the connection is closed instead of a positive one (as MQTT-3.3.5-2 does for a
//! PUBLISH the server will not perform), and the client resends when it reconnects
//! (MQTT-4.4.0-1). A subscription that cannot be stored for a persistent session is refused
//! (SUBACK 0x80 in both versions, MQTT 5.0 §3.9.3, MQTT 3.1.1 §3.9.3). Every failure is
//! counted in `store_errors`, and the broker works again once the store does.

mod common;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

use common::*;
use roost::broker::BrokerHandle;
use roost::mqtt::{Connect, Packet, ProtocolVersion, PubResponse, Publish, QoS, ReasonCode};
use roost::store::{MemoryStore, QueueRange, QueuedRecord, Snapshot, Store, StoreError, StoreOp};
use tokio::sync::watch;

/// A memory store whose writes fail while `failing` is set (with "storage full" while
/// `full` is set too).
#[derive(Default)]
struct FlakyStore {
    inner: MemoryStore,
    failing: AtomicBool,
    full: AtomicBool,
}

impl FlakyStore {
    fn check(&self) -> Result<(), StoreError> {
        if !self.failing.load(SeqCst) {
            return Ok(());
        }
        let kind = if self.full.load(SeqCst) {
            io::ErrorKind::StorageFull
        } else {
            io::ErrorKind::Other
        };
        Err(StoreError::Io(io::Error::new(kind, "the disk says no")))
    }
}

impl Store for FlakyStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        self.inner.load()
    }
    fn write(&self, ops: &[StoreOp]) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.write(ops)
    }
    fn durable(&self) -> watch::Receiver<u64> {
        self.inner.durable()
    }
    fn read_queued(
        &self,
        client_id: &str,
        range: QueueRange,
    ) -> Result<Vec<QueuedRecord>, StoreError> {
        self.check()?;
        self.inner.read_queued(client_id, range)
    }
}

async fn start_flaky() -> (TestBroker, Arc<FlakyStore>) {
    let store = Arc::new(FlakyStore::default());
    let handle = BrokerHandle::spawn_with_store(store.clone());
    handle.apply(test_config()).await.expect("apply");
    let addr = handle.stats().listeners[0].address;
    (TestBroker { handle, addr }, store)
}

fn persistent(version: ProtocolVersion, id: &str) -> Connect {
    let mut c = connect(version, id);
    c.clean_start = false;
    c.properties.session_expiry_interval = Some(600);
    c
}

/// A persistent v5 subscriber to `filter` at QoS 2, connected: each message for it goes
/// through the store.
async fn persistent_subscriber(broker: &TestBroker, id: &str, filter: &str) -> RawClient {
    let mut sub = broker.raw(ProtocolVersion::V5).await;
    sub.connect(persistent(ProtocolVersion::V5, id)).await;
    assert_eq!(
        sub.subscribe(filter, QoS::ExactlyOnce).await,
        [ReasonCode::GrantedQoS2]
    );
    sub
}

/// Sends `p` and returns the reason of its PUBACK (QoS 1) or PUBREC (QoS 2); a successful
/// QoS 2 exchange is completed.
async fn acknowledgement(publisher: &mut RawClient, p: Publish) -> ReasonCode {
    let packet_id = p.packet_id.expect("QoS 1/2");
    publisher.publish(p).await;
    match publisher.recv().await {
        Some(Packet::PubAck(ack)) => ack.reason,
        Some(Packet::PubRec(rec)) => {
            if !rec.reason.is_error() {
                publisher
                    .send(&Packet::PubRel(PubResponse::success(packet_id)))
                    .await;
                assert!(matches!(publisher.recv().await, Some(Packet::PubComp(_))));
            }
            rec.reason
        }
        other => panic!("expected PUBACK or PUBREC, got {other:?}"),
    }
}

/// Receives one PUBLISH and acknowledges it at its QoS.
async fn take(sub: &mut RawClient) -> Publish {
    let got = sub.recv_publish().await;
    match (got.qos, got.packet_id) {
        (QoS::AtLeastOnce, Some(id)) => sub.puback(id).await,
        (QoS::ExactlyOnce, Some(id)) => {
            sub.send(&Packet::PubRec(PubResponse::success(id))).await;
            assert!(matches!(sub.recv().await, Some(Packet::PubRel(_))));
            sub.send(&Packet::PubComp(PubResponse::success(id))).await;
        }
        _ => {}
    }
    got
}

#[tokio::test]
async fn v5_publishes_that_cannot_be_stored_get_0x80_and_work_again_afterwards() {
    let (broker, store) = start_flaky().await;
    let mut sub = persistent_subscriber(&broker, "keeper", "s/#").await;
    let mut publisher = broker.connected(ProtocolVersion::V5, "v5-pub").await;

    store.failing.store(true, SeqCst);
    let q1 = publish("s/1", "lost-1", QoS::AtLeastOnce, Some(1));
    assert_eq!(
        acknowledgement(&mut publisher, q1).await,
        ReasonCode::UnspecifiedError
    );
    let q2 = publish("s/2", "lost-2", QoS::ExactlyOnce, Some(2));
    assert_eq!(
        acknowledgement(&mut publisher, q2).await,
        ReasonCode::UnspecifiedError
    );
    store.full.store(true, SeqCst);
    let full = publish("s/3", "lost-3", QoS::AtLeastOnce, Some(3));
    assert_eq!(
        acknowledgement(&mut publisher, full).await,
        ReasonCode::QuotaExceeded,
        "a full store is a quota"
    );
    let errors = broker.handle.stats().store_errors;
    assert!(errors >= 3, "store_errors = {errors}");

    store.failing.store(false, SeqCst);
    store.full.store(false, SeqCst);
    // PUBREC 0x80 ended the QoS 2 exchange: packet id 2 is free for a new message
    // (MQTT 5.0 §4.3.3).
    let again = publish("s/2", "kept", QoS::ExactlyOnce, Some(2));
    assert_eq!(
        acknowledgement(&mut publisher, again).await,
        ReasonCode::Success
    );
    // The refused messages were not delivered either: the first to arrive is the kept one.
    let got = take(&mut sub).await;
    assert_eq!(&got.payload[..], b"kept");
    assert_eq!(broker.handle.stats().store_errors, errors);
}

#[tokio::test]
async fn a_retained_message_that_cannot_be_stored_is_refused_and_not_kept() {
    let (broker, store) = start_flaky().await;
    let mut publisher = broker.connected(ProtocolVersion::V5, "ret-pub").await;
    let mut old = publish("r/t", "old", QoS::AtLeastOnce, Some(1));
    old.retain = true;
    assert_eq!(
        acknowledgement(&mut publisher, old).await,
        ReasonCode::NoMatchingSubscribers
    );

    store.failing.store(true, SeqCst);
    let mut new = publish("r/t", "new", QoS::AtLeastOnce, Some(2));
    new.retain = true;
    assert_eq!(
        acknowledgement(&mut publisher, new).await,
        ReasonCode::UnspecifiedError
    );
    assert!(broker.handle.stats().store_errors >= 1);
    store.failing.store(false, SeqCst);

    // The retained message is still the one the store holds.
    let mut late = broker.connected(ProtocolVersion::V5, "ret-late").await;
    late.subscribe("r/#", QoS::AtLeastOnce).await;
    let got = take(&mut late).await;
    assert_eq!(&got.payload[..], b"old");
    assert!(got.retain);

    let mut newer = publish("r/t", "newer", QoS::AtLeastOnce, Some(3));
    newer.retain = true;
    assert_eq!(
        acknowledgement(&mut publisher, newer).await,
        ReasonCode::Success
    );
    assert_eq!(&take(&mut late).await.payload[..], b"newer");
}

#[tokio::test]
async fn a_v311_publisher_is_disconnected_instead_of_acknowledged() {
    let (broker, store) = start_flaky().await;
    let mut sub = persistent_subscriber(&broker, "keeper311", "v3/#").await;
    let mut publisher = broker.raw(ProtocolVersion::V3_1_1).await;
    publisher
        .connect(persistent(ProtocolVersion::V3_1_1, "v3-pub"))
        .await;

    store.failing.store(true, SeqCst);
    publisher
        .publish(publish("v3/a", "lost", QoS::AtLeastOnce, Some(1)))
        .await;
    // Closed without a PUBACK (3.1.1 has no negative acknowledgement).
    assert!(
        publisher.recv().await.is_none(),
        "a v3.1.1 PUBLISH that was not stored was acknowledged"
    );
    let mut q2 = broker.raw(ProtocolVersion::V3_1_1).await;
    q2.connect(connect(ProtocolVersion::V3_1_1, "v3-pub2"))
        .await;
    q2.publish(publish("v3/b", "lost", QoS::ExactlyOnce, Some(1)))
        .await;
    assert!(q2.recv().await.is_none(), "QoS 2 was acknowledged");
    assert!(broker.handle.stats().store_errors >= 2);

    store.failing.store(false, SeqCst);
    // Reconnecting (the session survives the store failure), the client resends.
    let mut publisher = broker.raw(ProtocolVersion::V3_1_1).await;
    publisher
        .connect(persistent(ProtocolVersion::V3_1_1, "v3-pub"))
        .await;
    let mut resent = publish("v3/a", "resent", QoS::AtLeastOnce, Some(1));
    resent.dup = true;
    publisher.publish(resent).await;
    assert!(matches!(publisher.recv().await, Some(Packet::PubAck(_))));
    assert_eq!(&take(&mut sub).await.payload[..], b"resent");
}

#[tokio::test]
async fn a_subscription_that_cannot_be_stored_is_refused_in_both_versions() {
    let (broker, store) = start_flaky().await;
    let mut v5 = broker.raw(ProtocolVersion::V5).await;
    v5.connect(persistent(ProtocolVersion::V5, "sub5")).await;
    let mut v311 = broker.raw(ProtocolVersion::V3_1_1).await;
    v311.connect(persistent(ProtocolVersion::V3_1_1, "sub311"))
        .await;
    let mut publisher = broker.connected(ProtocolVersion::V5, "sub-pub").await;

    store.failing.store(true, SeqCst);
    assert_eq!(
        v5.subscribe("f/#", QoS::AtLeastOnce).await,
        [ReasonCode::UnspecifiedError]
    );
    // Encoded as 0x80 Failure in a 3.1.1 SUBACK.
    let reasons = v311.subscribe("f/#", QoS::AtLeastOnce).await;
    assert_eq!(reasons.len(), 1);
    assert!(reasons[0].is_error(), "3.1.1 SUBACK {reasons:?}");
    assert!(broker.handle.stats().store_errors >= 2);
    store.failing.store(false, SeqCst);

    // Refused means not subscribed: nobody gets this one.
    let nobody = publish("f/x", "x", QoS::AtLeastOnce, Some(1));
    assert_eq!(
        acknowledgement(&mut publisher, nobody).await,
        ReasonCode::NoMatchingSubscribers
    );
    // And subscribing works again.
    assert_eq!(
        v5.subscribe("f/#", QoS::AtLeastOnce).await,
        [ReasonCode::GrantedQoS1]
    );
    assert_eq!(
        v311.subscribe("f/#", QoS::AtLeastOnce).await,
        [ReasonCode::GrantedQoS1]
    );
    let both = publish("f/y", "y", QoS::AtLeastOnce, Some(2));
    assert_eq!(
        acknowledgement(&mut publisher, both).await,
        ReasonCode::Success
    );
    assert_eq!(&take(&mut v5).await.payload[..], b"y");
    assert_eq!(&take(&mut v311).await.payload[..], b"y");
}

#[tokio::test]
async fn an_unsubscription_that_cannot_be_stored_is_refused_and_undone() {
    // v5: UNSUBACK 0x80 (MQTT 5.0 §3.11.3). v3.1.1: no reason codes and the UNSUBACK may
    // not be withheld (MQTT-3.10.4-4), so the connection is closed.
    let (broker, store) = start_flaky().await;
    let mut v5 = persistent_subscriber(&broker, "unsub5", "u/#").await;
    let mut v311 = broker.raw(ProtocolVersion::V3_1_1).await;
    v311.connect(persistent(ProtocolVersion::V3_1_1, "unsub311"))
        .await;
    v311.subscribe("u/#", QoS::AtLeastOnce).await;
    let mut publisher = broker.connected(ProtocolVersion::V5, "unsub-pub").await;

    store.failing.store(true, SeqCst);
    let unsubscribe = |packet_id| {
        Packet::Unsubscribe(roost::mqtt::Unsubscribe {
            packet_id,
            properties: Default::default(),
            filters: vec!["u/#".into()],
        })
    };
    v5.send(&unsubscribe(7)).await;
    match v5.recv().await {
        Some(Packet::UnsubAck(ack)) => assert_eq!(ack.reasons, [ReasonCode::UnspecifiedError]),
        other => panic!("expected UNSUBACK, got {other:?}"),
    }
    v311.send(&unsubscribe(7)).await;
    assert!(
        v311.recv().await.is_none(),
        "3.1.1 UNSUBSCRIBE was acknowledged"
    );
    store.failing.store(false, SeqCst);

    // Still subscribed, in both sessions.
    let still = publish("u/1", "still", QoS::AtLeastOnce, Some(1));
    assert_eq!(
        acknowledgement(&mut publisher, still).await,
        ReasonCode::Success
    );
    assert_eq!(&take(&mut v5).await.payload[..], b"still");
    let mut v311 = broker.raw(ProtocolVersion::V3_1_1).await;
    assert!(
        v311.connect(persistent(ProtocolVersion::V3_1_1, "unsub311"))
            .await
            .session_present
    );
    assert_eq!(&take(&mut v311).await.payload[..], b"still");
}

//! Expired retained messages leave memory and the `retained` gauge on their own, with
//! `$SYS` off (the test config's default): MQTT-3.3.2-5 stops their delivery, and the
//! broker must not hold them until something else happens to sweep.

mod common;

use std::time::{Duration, Instant};

use common::*;
use roost::mqtt::{Packet, ProtocolVersion, QoS};

#[tokio::test]
async fn an_expired_retained_message_is_purged_without_sys() {
    let broker = start().await;
    let mut publisher = broker.connected(ProtocolVersion::V5, "short-lived").await;
    let mut short = publish("ret/short", "soon gone", QoS::AtLeastOnce, Some(1));
    short.retain = true;
    short.properties.message_expiry_interval = Some(1);
    publisher.publish(short).await;
    assert!(matches!(publisher.recv().await, Some(Packet::PubAck(_))));
    let mut long = publish("ret/long", "stays", QoS::AtLeastOnce, Some(2));
    long.retain = true;
    long.properties.message_expiry_interval = Some(3600);
    publisher.publish(long).await;
    assert!(matches!(publisher.recv().await, Some(Packet::PubAck(_))));
    assert_eq!(broker.handle.stats().messages_retained, 2);

    // Expiry is 1 s and the sweep runs every second: polls the gauge (time has to pass;
    // nothing in the protocol says when a purge happened) up to a generous bound.
    let deadline = Instant::now() + Duration::from_secs(15);
    while broker.handle.stats().messages_retained != 1 {
        assert!(
            Instant::now() < deadline,
            "the expired retained message is still counted: {}",
            broker.handle.stats().messages_retained
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

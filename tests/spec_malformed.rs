//! Conformance audit: packets that break a "MUST" of the payload or properties rules, sent
//! as raw bytes. A v5 connection gets DISCONNECT with 0x81 (Malformed Packet) or 0x82
//! (Protocol Error) and is closed (MQTT-4.13.1-1, MQTT 5.0 §4.13); a 3.1.1 one is closed
//! without DISCONNECT.

#[path = "common/audit.rs"]
mod audit;
mod common;

use audit::*;
use common::*;
use roost::mqtt::{Packet, ProtocolVersion};

/// Sends `bytes` on a fresh v5 connection and returns the DISCONNECT reason.
async fn v5_reason(broker: &TestBroker, bytes: &[u8]) -> u8 {
    let mut c = broker.connected(ProtocolVersion::V5, "culprit").await;
    c.send_bytes(bytes).await;
    disconnect_reason(&mut c).await
}

async fn assert_refused(broker: &TestBroker, what: &str, bytes: &[u8], allowed: &[u8]) {
    let reason = v5_reason(broker, bytes).await;
    assert!(
        allowed.contains(&reason),
        "{what}: DISCONNECT {reason:#04x}, expected one of {allowed:02x?}"
    );
}

#[tokio::test]
async fn subscribe_options_outside_the_spec_are_refused() {
    let broker = start().await;
    // MQTT 5.0 §3.8.3.1: Maximum QoS 3 is a Protocol Error (Malformed in 3.1.1 terms).
    assert_refused(
        &broker,
        "QoS 3",
        &[0x82, 7, 0, 1, 0, 0, 1, b'a', 0x03],
        &[0x81, 0x82],
    )
    .await;
    // §3.8.3.1: Retain Handling 3 is a Protocol Error.
    assert_refused(
        &broker,
        "retain handling 3",
        &[0x82, 7, 0, 1, 0, 0, 1, b'a', 0x30],
        &[0x81, 0x82],
    )
    .await;
    // MQTT-3.8.3-5: non-zero reserved bits make the packet malformed.
    assert_refused(
        &broker,
        "reserved bits",
        &[0x82, 7, 0, 1, 0, 0, 1, b'a', 0xC0],
        &[0x81],
    )
    .await;
}

#[tokio::test]
async fn subscribe_and_unsubscribe_without_filters_are_refused() {
    // MQTT-3.8.3-2 and MQTT-3.10.3-2: at least one Topic Filter.
    let broker = start().await;
    assert_refused(
        &broker,
        "empty SUBSCRIBE",
        &[0x82, 3, 0, 1, 0],
        &[0x81, 0x82],
    )
    .await;
    assert_refused(
        &broker,
        "empty UNSUBSCRIBE",
        &[0xA2, 3, 0, 1, 0],
        &[0x81, 0x82],
    )
    .await;
    // 3.1.1: the server closes the connection (MQTT-3.8.3-3 in 3.1.1 numbering).
    let mut c = broker
        .connected(ProtocolVersion::V3_1_1, "empty-sub-311")
        .await;
    c.send_bytes(&[0x82, 2, 0, 1]).await;
    let packets = until_closed(&mut c).await;
    assert!(
        !packets
            .iter()
            .any(|p| matches!(p, Packet::SubAck(_) | Packet::Disconnect(_))),
        "{packets:?}"
    );
}

#[tokio::test]
async fn packet_identifier_0_is_refused() {
    // MQTT-2.2.1-3: SUBSCRIBE, UNSUBSCRIBE and QoS > 0 PUBLISH carry a non-zero Packet
    // Identifier.
    let broker = start().await;
    assert_refused(
        &broker,
        "SUBSCRIBE id 0",
        &[0x82, 7, 0, 0, 0, 0, 1, b'a', 0x00],
        &[0x81, 0x82],
    )
    .await;
    assert_refused(
        &broker,
        "UNSUBSCRIBE id 0",
        &[0xA2, 6, 0, 0, 0, 0, 1, b'a'],
        &[0x81, 0x82],
    )
    .await;
    assert_refused(
        &broker,
        "PUBLISH QoS 1 id 0",
        &[0x32, 6, 0, 1, b't', 0, 0, 0],
        &[0x81, 0x82],
    )
    .await;
}

#[tokio::test]
async fn properties_that_do_not_belong_to_the_packet_are_refused() {
    // MQTT 5.0 §2.2.2.2: a packet carrying a property that is not defined for it is
    // malformed (Session Expiry Interval in PUBLISH; Topic Alias in SUBSCRIBE).
    let broker = start().await;
    assert_refused(
        &broker,
        "session expiry in PUBLISH",
        &[0x30, 9, 0, 1, b't', 5, 0x11, 0, 0, 0, 1],
        &[0x81, 0x82],
    )
    .await;
    assert_refused(
        &broker,
        "topic alias in SUBSCRIBE",
        &[0x82, 10, 0, 1, 3, 0x23, 0, 1, 0, 1, b'a', 0x00],
        &[0x81, 0x82],
    )
    .await;
}

#[tokio::test]
async fn empty_topic_without_an_alias_is_a_protocol_error() {
    // MQTT 5.0 §3.3.2.1 / MQTT-3.3.2-1: a zero-length Topic Name is allowed only with a
    // Topic Alias; otherwise it is a Protocol Error.
    let broker = start().await;
    assert_refused(&broker, "empty topic", &[0x30, 4, 0, 0, 0, b'x'], &[0x82]).await;
}

#[tokio::test]
async fn v311_empty_topic_closes_without_disconnect() {
    // 3.1.1 MQTT-4.7.3-1: Topic Names are at least one character long; a 3.1.1 server
    // closes the connection on a violation without sending DISCONNECT.
    let broker = start().await;
    let mut c = broker
        .connected(ProtocolVersion::V3_1_1, "empty-topic-311")
        .await;
    c.send_bytes(&[0x30, 3, 0, 0, b'x']).await;
    let packets = until_closed(&mut c).await;
    assert!(
        !packets.iter().any(|p| matches!(p, Packet::Disconnect(_))),
        "{packets:?}"
    );
}

#[tokio::test]
async fn user_property_with_invalid_utf8_is_malformed() {
    // MQTT-1.5.4-1: UTF-8 Encoded Strings (here a User Property name) must be well-formed.
    let broker = start().await;
    assert_refused(
        &broker,
        "bad user property",
        &[0x30, 12, 0, 1, b't', 7, 0x26, 0, 1, 0xFF, 0, 1, b'v', b'p'],
        &[0x81],
    )
    .await;
}

//! Helpers for the `spec_*` conformance tests, on top of `common`.
#![allow(dead_code)]

use std::time::Duration;

use roost::mqtt::{
    Connect, Disconnect, Packet, ProtocolVersion, PubResponse, QoS, ReasonCode, SubAck, Subscribe,
    SubscribeFilter, SubscriptionOptions, UnsubAck, Unsubscribe,
};

use super::common::{RawClient, TestBroker, connect};

/// Short waits for "nothing happens" assertions: enough on a loaded 2-core machine for a
/// packet already on its way, short enough to keep the suite fast.
pub const QUIET: Duration = Duration::from_millis(250);

/// A CONNECT that keeps its session: Clean Start 0 and, in v5, the given expiry.
pub fn persistent(version: ProtocolVersion, id: &str, expiry: Option<u32>) -> Connect {
    let mut c = connect(version, id);
    c.clean_start = false;
    c.properties.session_expiry_interval = expiry;
    c
}

/// Sends a normal DISCONNECT and waits until the broker closes the socket.
pub async fn disconnect(client: &mut RawClient) {
    disconnect_with(client, Disconnect::new(ReasonCode::Success)).await;
}

pub async fn disconnect_with(client: &mut RawClient, disconnect: Disconnect) {
    client.send(&Packet::Disconnect(disconnect)).await;
    assert_eq!(client.recv().await, None, "broker closes after DISCONNECT");
}

/// Every packet until the broker closes the connection.
pub async fn until_closed(client: &mut RawClient) -> Vec<Packet> {
    let mut packets = Vec::new();
    while let Some(packet) = client.recv().await {
        packets.push(packet);
    }
    packets
}

/// The reason of the DISCONNECT the broker sends before closing (panics on anything else).
pub async fn disconnect_reason(client: &mut RawClient) -> u8 {
    match client.expect_disconnect().await {
        Some(d) => d.reason.code(),
        None => panic!("broker closed without DISCONNECT"),
    }
}

pub fn filter(filter: &str, qos: QoS) -> SubscribeFilter {
    SubscribeFilter {
        filter: filter.into(),
        options: SubscriptionOptions {
            qos,
            ..SubscriptionOptions::default()
        },
    }
}

/// SUBSCRIBE with the given filters, packet id and optional subscription identifier.
pub async fn subscribe_many(
    client: &mut RawClient,
    packet_id: u16,
    filters: Vec<SubscribeFilter>,
    identifier: Option<u32>,
) -> SubAck {
    let mut s = Subscribe {
        packet_id,
        properties: Default::default(),
        filters,
    };
    s.properties.subscription_identifiers = identifier.into_iter().collect();
    client.send(&Packet::Subscribe(s)).await;
    match client.recv().await {
        Some(Packet::SubAck(suback)) => suback,
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

/// SUBSCRIBE to one filter without a subscription identifier; returns the SUBACK.
pub async fn subscribe_one(
    client: &mut RawClient,
    packet_id: u16,
    topic_filter: &str,
    qos: QoS,
) -> SubAck {
    subscribe_many(client, packet_id, vec![filter(topic_filter, qos)], None).await
}

pub async fn unsubscribe(client: &mut RawClient, packet_id: u16, filters: &[&str]) -> UnsubAck {
    let u = Unsubscribe {
        packet_id,
        properties: Default::default(),
        filters: filters.iter().map(|f| f.to_string()).collect(),
    };
    client.send(&Packet::Unsubscribe(u)).await;
    match client.recv().await {
        Some(Packet::UnsubAck(unsuback)) => unsuback,
        other => panic!("expected UNSUBACK, got {other:?}"),
    }
}

pub fn response(packet_id: u16) -> PubResponse {
    PubResponse::success(packet_id)
}

pub fn response_with(packet_id: u16, reason: ReasonCode) -> PubResponse {
    PubResponse {
        packet_id,
        reason,
        properties: Default::default(),
    }
}

/// Publishes and waits for the QoS 1 / QoS 2 acknowledgement (PUBACK or PUBREC, returned),
/// completing QoS 2 with PUBREL / PUBCOMP.
pub async fn publish_acked(client: &mut RawClient, publish: roost::mqtt::Publish) -> u8 {
    let qos = publish.qos;
    let id = publish.packet_id;
    client.publish(publish).await;
    match qos {
        QoS::AtMostOnce => 0,
        QoS::AtLeastOnce => match client.recv().await {
            Some(Packet::PubAck(ack)) => ack.reason.code(),
            other => panic!("expected PUBACK, got {other:?}"),
        },
        QoS::ExactlyOnce => {
            let rec = match client.recv().await {
                Some(Packet::PubRec(rec)) => rec,
                other => panic!("expected PUBREC, got {other:?}"),
            };
            if !rec.reason.is_error() {
                client
                    .send(&Packet::PubRel(response(id.unwrap_or(0))))
                    .await;
                match client.recv().await {
                    Some(Packet::PubComp(_)) => {}
                    other => panic!("expected PUBCOMP, got {other:?}"),
                }
            }
            rec.reason.code()
        }
    }
}

/// A v5 client connected with extra CONNECT settings.
pub async fn connected_with(
    broker: &TestBroker,
    id: &str,
    change: impl FnOnce(&mut Connect),
) -> RawClient {
    let mut c = connect(ProtocolVersion::V5, id);
    change(&mut c);
    let mut client = broker.raw(ProtocolVersion::V5).await;
    let connack = client.connect(c).await;
    assert_eq!(connack.reason.code(), 0, "connack {connack:?}");
    client
}

//! Keep alive (MQTT-3.1.2-24: 1.5 times the interval without a packet closes the connection).

mod common;

use std::time::{Duration, Instant};

use common::*;
use roost::mqtt::{Packet, ProtocolVersion, ReasonCode};

#[tokio::test]
async fn v5_client_silent_for_one_and_a_half_keep_alive_gets_0x8d() {
    let broker = start().await;
    let mut client = broker.raw(ProtocolVersion::V5).await;
    let mut c = connect(ProtocolVersion::V5, "sleepy");
    c.keep_alive = 1;
    // From before the CONNECT: the broker's timer cannot have started earlier.
    let started = Instant::now();
    client.connect(c).await;
    let disconnect = client.expect_disconnect().await.expect("DISCONNECT");
    assert_eq!(disconnect.reason, ReasonCode::KeepAliveTimeout);
    let waited = started.elapsed();
    // Not before one and a half keep-alive periods (less a little timer rounding); the upper
    // bound only says the timeout is enforced at all, with room for a loaded machine.
    assert!(waited >= Duration::from_millis(1400), "{waited:?}");
    assert!(waited < Duration::from_secs(8), "{waited:?}");
}

#[tokio::test]
async fn v311_client_is_closed_without_disconnect() {
    let broker = start().await;
    let mut client = broker.raw(ProtocolVersion::V3_1_1).await;
    let mut c = connect(ProtocolVersion::V3_1_1, "sleepy311");
    c.keep_alive = 1;
    client.connect(c).await;
    assert!(client.expect_disconnect().await.is_none());
}

#[tokio::test]
async fn pings_keep_the_connection_open() {
    let broker = start().await;
    let mut client = broker.raw(ProtocolVersion::V3_1_1).await;
    let mut c = connect(ProtocolVersion::V3_1_1, "awake");
    // 2 s (closed after 3 s of silence); a ping every second, 4 s in all.
    c.keep_alive = 2;
    client.connect(c).await;
    for _ in 0..4 {
        // The client being idle between its pings is what is tested, not a synchronisation.
        tokio::time::sleep(Duration::from_secs(1)).await;
        client.send(&Packet::PingReq).await;
        assert_eq!(client.recv().await, Some(Packet::PingResp));
    }
}

#[tokio::test]
async fn server_keep_alive_is_enforced() {
    // A v5 client asking for more than the maximum is held to Server Keep Alive.
    let broker = start_with(|c| c.limits.max_keep_alive_secs = 1).await;
    let mut client = broker.raw(ProtocolVersion::V5).await;
    let mut c = connect(ProtocolVersion::V5, "greedy");
    c.keep_alive = 100;
    let connack = client.connect(c).await;
    assert_eq!(connack.properties.server_keep_alive, Some(1));
    let disconnect = client.expect_disconnect().await.expect("DISCONNECT");
    assert_eq!(disconnect.reason, ReasonCode::KeepAliveTimeout);
}

#[tokio::test]
async fn keep_alive_zero_means_no_timeout() {
    let broker = start_with(|c| c.limits.max_keep_alive_secs = 1).await;
    let mut client = broker.raw(ProtocolVersion::V5).await;
    let mut c = connect(ProtocolVersion::V5, "forever");
    c.keep_alive = 0;
    client.connect(c).await;
    client.expect_silence(Duration::from_millis(2000)).await;
}

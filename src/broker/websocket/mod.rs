//! MQTT over WebSockets (MQTT 5.0 §6, MQTT 3.1.1 §6): the HTTP upgrade ([`upgrade`]) and
//! the WebSocket turned into a byte stream ([`frames`]), so that the MQTT connection code
//! serves it exactly as it serves TCP.
//!
//! Everything here runs in the connection's own task, never in the accept loop, and is
//! generic over the underlying stream: plain TCP gives `ws://`, a TLS session under it gives
//! `wss://`.

mod frames;
mod upgrade;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub use self::frames::WsBytes;
pub use self::upgrade::refuse_busy;
use self::upgrade::{Endpoint, upgrade};

use super::api::ListenerKind;
use super::connection::{self, Identified, Streamed};
use super::metrics::Metrics;
use super::router::RouterMsg;
use super::state::BrokerState;
use super::tls::PeerIdentity;
use crate::config::Limits;

/// The WebSocket read buffer. tungstenite allocates it up front for every connection, so it
/// is kept small: a frame larger than this is still read, in several reads.
const READ_BUFFER: usize = 8 * 1024;
/// Room for the WebSocket framing of a frame that carries a whole maximum-size packet.
const FRAME_SLACK: usize = 16 * 1024;

/// Serves one accepted socket as MQTT over WebSockets: the upgrade within the connect
/// timeout, then the MQTT connection over the WebSocket's bytes. `identity` is what a TLS
/// layer under the WebSocket proved (`wss://` with a client certificate).
pub async fn serve<S>(
    stream: S,
    address: SocketAddr,
    kind: ListenerKind,
    identity: Option<PeerIdentity>,
    shared: Arc<BrokerState>,
    router: mpsc::Sender<RouterMsg>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Read per connection, so that a changed path or origin list applies to the next
    // connection without restarting the listener.
    let config = shared.config();
    let endpoint = Endpoint::new(&config.broker.websockets);
    // A socket that says nothing, or sends its request slowly, is closed after the connect
    // timeout like a TCP socket that sends no CONNECT (MQTT-3.1.0-1 in spirit). The CONNECT
    // then has a connect timeout of its own.
    let upgraded = tokio::time::timeout(
        connect_timeout(&config.limits),
        // Boxed: the upgrade's buffers are freed when it is done.
        Box::pin(upgrade(stream, &endpoint, socket_config(&config.limits))),
    )
    .await;
    drop(config);
    let socket = match upgraded {
        Ok(Ok(socket)) => socket,
        Ok(Err(refusal)) => {
            tracing::debug!(%address, %refusal, "WebSocket upgrade refused");
            return;
        }
        Err(_elapsed) => {
            tracing::debug!(%address, "no WebSocket upgrade within the connect timeout");
            return;
        }
    };
    Metrics::add(&shared.metrics.websocket_connections, 1);
    let counted = WebSocketConnection(shared.clone());
    connection::run(
        Identified {
            stream: Streamed(WsBytes::new(socket)),
            identity,
        },
        address,
        kind,
        shared,
        router,
    )
    .await;
    drop(counted);
}

/// Keeps `websocket_connections` honest however the connection ends.
struct WebSocketConnection(Arc<BrokerState>);

impl Drop for WebSocketConnection {
    fn drop(&mut self) {
        self.0
            .metrics
            .websocket_connections
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

fn connect_timeout(limits: &Limits) -> Duration {
    Duration::from_secs(u64::from(limits.connect_timeout_secs.max(1)))
}

/// The WebSocket limits: a frame or message may carry one maximum-size MQTT packet and its
/// framing, and no more, so a WebSocket client can make the broker buffer no more than a
/// TCP client can (the MQTT layer still checks each packet's own size).
fn socket_config(limits: &Limits) -> WebSocketConfig {
    let largest = (limits.max_packet_size as usize).saturating_add(FRAME_SLACK);
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_frame_size(Some(largest))
        .max_message_size(Some(largest))
}

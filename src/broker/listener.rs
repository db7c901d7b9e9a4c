//! Listeners: accept sockets and hand each one, as a byte stream, to a connection task.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::api::ListenerKind;
use super::connection;
use super::router::RouterMsg;
use super::shared::Shared;

/// Accepts TCP connections until `stop` is cancelled. TLS and WebSockets will wrap the
/// accepted stream before handing it on; the connection code only sees a byte stream.
pub async fn run_tcp(
    listener: TcpListener,
    shared: Arc<Shared>,
    router: mpsc::Sender<RouterMsg>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, address)) => {
                let _ = stream.set_nodelay(true);
                let span = tracing::debug_span!(
                    "connection",
                    %address,
                    client_id = tracing::field::Empty
                );
                tokio::spawn(
                    connection::run(
                        stream,
                        address,
                        ListenerKind::Tcp,
                        shared.clone(),
                        router.clone(),
                    )
                    .instrument(span),
                );
            }
            Err(error) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// The socket address of a configured `bind` and `port`.
pub fn socket_address(bind: &str, port: u16) -> Option<SocketAddr> {
    let ip: std::net::IpAddr = bind.trim_matches(|c| c == '[' || c == ']').parse().ok()?;
    Some(SocketAddr::new(ip, port))
}

//! Listeners: accept sockets and hand each one, as a byte stream, to a connection task.
//!
//! The connection limit is enforced here, before anything is read: a socket that finds no
//! free slot (see [`super::admission`]) is refused and never becomes a connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::api::ListenerKind;
use super::connection;
use super::metrics::Metrics;
use super::router::RouterMsg;
use super::state::BrokerState;
use super::tls;
use super::websocket;

/// The longest a refused socket is given to send its CONNECT (or less, if the connect
/// timeout is shorter).
const REFUSAL_WAIT: Duration = Duration::from_secs(2);
/// A refusal after this long without one starts a new burst, which is logged as a warning.
const BURST_QUIET: Duration = Duration::from_secs(10);
/// While refusals go on, a warning with their count at most this often.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Accepts TCP connections until `stop` is cancelled and serves them as `kind`: MQTT
/// directly, or WebSockets, whose upgrade runs in the connection's task (see
/// [`super::websocket`]). While TLS is on (the TLS setup is read for each socket, so an
/// apply swaps it without a restart), each connection's task runs the handshake first (see
/// [`tls::accept`]): MQTT over TLS, or WebSockets over TLS (`wss://`). The connection code
/// only sees a byte stream.
pub async fn run_tcp(
    listener: TcpListener,
    kind: ListenerKind,
    shared: Arc<BrokerState>,
    router: mpsc::Sender<RouterMsg>,
    stop: CancellationToken,
) {
    let mut refusals = RefusalLog::default();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, address)) => {
                let Some(slot) = shared.admission.admit() else {
                    refuse(stream, address, kind, &shared, &mut refusals);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let span = tracing::debug_span!(
                    "connection",
                    %address,
                    client_id = tracing::field::Empty
                );
                let (shared, router) = (shared.clone(), router.clone());
                // The connection's future is created inside the task's: created outside and
                // moved in, it would be stored twice in every connection's task (the
                // captured value and the one being awaited), hundreds of bytes each.
                // Two tasks of their own types, so that a plain connection's task is no
                // larger for TLS being possible (idle connections are counted in bytes).
                match shared.tls.current() {
                    None => {
                        tokio::spawn(
                            async move {
                                match kind {
                                    ListenerKind::WebSocket => {
                                        websocket::serve(
                                            stream, address, kind, None, shared, router,
                                        )
                                        .await;
                                    }
                                    _ => {
                                        connection::run(stream, address, kind, shared, router)
                                            .await;
                                    }
                                }
                                drop(slot);
                            }
                            .instrument(span),
                        );
                    }
                    Some(tls) => {
                        tokio::spawn(
                            async move {
                                let timeout = Duration::from_secs(u64::from(
                                    shared.config().limits.connect_timeout_secs.max(1),
                                ));
                                let counters = &shared.tls.counters;
                                // Boxed: the handshake's state is freed once it is done.
                                let secured = Box::pin(tls::accept::accept(
                                    stream, address, &tls, counters, timeout,
                                ))
                                .await;
                                drop(tls);
                                match (secured, kind) {
                                    (Some(secured), ListenerKind::WebSocket) => {
                                        let (stream, identity) = secured.into_parts();
                                        websocket::serve(
                                            stream,
                                            address,
                                            ListenerKind::SecureWebSocket,
                                            identity,
                                            shared,
                                            router,
                                        )
                                        .await;
                                    }
                                    (Some(secured), _) => {
                                        connection::run(
                                            secured,
                                            address,
                                            ListenerKind::Tls,
                                            shared,
                                            router,
                                        )
                                        .await;
                                    }
                                    (None, _) => {}
                                }
                                drop(slot);
                            }
                            .instrument(span),
                        );
                    }
                }
            }
            Err(error) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Refuses a socket accepted over `limits.max_connections`: counted, logged, then answered
/// with CONNACK Server busy by a small task if fewer than
/// [`REFUSALS_AT_ONCE`](super::admission::REFUSALS_AT_ONCE) are being answered, else closed
/// at once.
fn refuse(
    stream: TcpStream,
    address: SocketAddr,
    kind: ListenerKind,
    shared: &Arc<BrokerState>,
    log: &mut RefusalLog,
) {
    Metrics::add(&shared.metrics.connections_refused, 1);
    log.refused(address, shared.admission.limit());
    let Some(refusal) = shared.admission.refusal() else {
        return;
    };
    let connect_timeout = Duration::from_secs(u64::from(
        shared.config().limits.connect_timeout_secs.max(1),
    ));
    let shared = shared.clone();
    tokio::spawn(async move {
        let wait = REFUSAL_WAIT.min(connect_timeout);
        match kind {
            // An HTTP 503: the client has not reached MQTT yet.
            ListenerKind::WebSocket => websocket::refuse_busy(stream, wait).await,
            _ => connection::refuse_busy(stream, wait, &shared).await,
        }
        drop(refusal);
    });
}

/// Logs refusals without flooding the log: a warning when a burst starts (and every
/// [`WARN_EVERY`] while it lasts, with the count), each refusal at debug level.
#[derive(Debug, Default)]
struct RefusalLog {
    last_refusal: Option<Instant>,
    last_warning: Option<Instant>,
    since_warning: u64,
}

impl RefusalLog {
    fn refused(&mut self, address: SocketAddr, max_connections: u32) {
        let now = Instant::now();
        let new_burst = self
            .last_refusal
            .is_none_or(|at| now.duration_since(at) >= BURST_QUIET);
        let overdue = self
            .last_warning
            .is_some_and(|at| now.duration_since(at) >= WARN_EVERY);
        self.last_refusal = Some(now);
        self.since_warning += 1;
        if new_burst || overdue {
            tracing::warn!(
                max_connections,
                refused = self.since_warning,
                "connection limit reached: refusing new connections"
            );
            self.last_warning = Some(now);
            self.since_warning = 0;
        } else {
            tracing::debug!(%address, "connection refused: limit reached");
        }
    }
}

/// The socket address of a configured `bind` and `port`.
pub fn socket_address(bind: &str, port: u16) -> Option<SocketAddr> {
    let ip: std::net::IpAddr = bind.trim_matches(|c| c == '[' || c == ']').parse().ok()?;
    Some(SocketAddr::new(ip, port))
}

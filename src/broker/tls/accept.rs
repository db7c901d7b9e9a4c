//! The TLS handshake, off the broker's runtime thread.
//!
//! `roost serve` runs the whole broker on one thread, and a handshake costs a signature and a
//! key exchange (about a millisecond of CPU): a burst of new TLS clients on that thread would
//! delay every connected client's messages. So each handshake runs on a small runtime of its
//! own (one thread per spare core, at most four), at most [`HANDSHAKES_AT_ONCE`] at a time,
//! within the connect timeout. Tokio's I/O objects can be polled from another runtime's
//! threads while their own runtime runs: the socket stays registered with the broker's
//! runtime, and once the handshake is done the connection's task on the broker's runtime
//! carries on with the TLS stream.
//!
//! A client speaking plain MQTT to the TLS port fails at its first bytes (a CONNECT is not a
//! TLS record) and is closed at once rather than left hanging.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use super::verifier::{describe, is_certificate_refusal};
use super::{Secured, TlsCounters, TlsSetup};

/// Handshakes in progress at once; more wait (within their connect timeout). Bounds the
/// memory of half-open TLS sessions; the CPU is bounded by the pool's threads.
pub const HANDSHAKES_AT_ONCE: usize = 256;

/// Overrides the number of handshake threads; 0 runs handshakes on the connection's own
/// runtime (for measuring what the threads are worth, see README "TLS").
pub const THREADS_VARIABLE: &str = "ROOST_TLS_HANDSHAKE_THREADS";

/// The handshake runtime, started on first use and kept for the life of the process.
fn pool() -> Option<&'static (Runtime, Arc<Semaphore>)> {
    static POOL: OnceLock<Option<(Runtime, Arc<Semaphore>)>> = OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let configured = std::env::var(THREADS_VARIABLE)
            .ok()
            .and_then(|value| value.parse::<usize>().ok());
        if configured == Some(0) {
            return None;
        }
        let threads = configured.unwrap_or(cores.saturating_sub(1)).clamp(1, 4);
        match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("roost-tls")
            .enable_all()
            .build()
        {
            Ok(runtime) => Some((runtime, Arc::new(Semaphore::new(HANDSHAKES_AT_ONCE)))),
            Err(error) => {
                tracing::error!(%error, "cannot start the TLS handshake threads; handshakes run on the broker's");
                None
            }
        }
    })
    .as_ref()
}

/// Runs the server side of a TLS handshake on `stream` within `timeout`; the secured stream,
/// or `None` (logged and counted) when the handshake failed.
pub async fn accept<S>(
    stream: S,
    address: SocketAddr,
    setup: &TlsSetup,
    counters: &TlsCounters,
    timeout: Duration,
) -> Option<Secured<S>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let acceptor = TlsAcceptor::from(setup.server.clone());
    let deadline = tokio::time::Instant::now() + timeout;
    // `None`: the deadline passed.
    let handshake = async move {
        tokio::time::timeout_at(deadline, acceptor.accept(stream))
            .await
            .ok()
    };
    let outcome = match pool() {
        Some((runtime, permits)) => {
            let permits = permits.clone();
            let task = runtime.spawn(async move {
                // Waiting for a turn counts against the same deadline.
                let _permit = tokio::time::timeout_at(deadline, permits.acquire_owned())
                    .await
                    .ok()?
                    .ok()?;
                handshake.await
            });
            task.await.ok().flatten()
        }
        None => Box::pin(handshake).await,
    };
    match outcome {
        Some(Ok(stream)) => Some(Secured::new(stream)),
        Some(Err(error)) => {
            let tls_error = error
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>());
            match tls_error {
                Some(tls_error) if is_certificate_refusal(tls_error) => {
                    counters.certificates_refused.fetch_add(1, Relaxed);
                    tracing::warn!(%address, reason = %describe(tls_error), "client certificate refused");
                }
                _ => {
                    counters.handshakes_failed.fetch_add(1, Relaxed);
                    tracing::debug!(%address, %error, "TLS handshake failed");
                }
            }
            None
        }
        None => {
            counters.handshakes_failed.fetch_add(1, Relaxed);
            tracing::debug!(%address, "no TLS handshake within the connect timeout");
            None
        }
    }
}

//! TLS on the TCP listener (and, generic over the stream, on WebSockets): the server
//! configuration built from the certificate files and the client certificate rules
//! ([`setup`], [`verifier`]), the handshake off the broker's runtime thread ([`accept`]),
//! and the TLS stream with the client's certificate identity as a connection's byte stream
//! ([`identity`]).
//!
//! The listener reads the current [`TlsSetup`] for each new socket, so an apply that brings a
//! new server certificate or changed rules swaps one `Arc<ServerConfig>`: new connections use
//! it, connected ones keep theirs, and the listener is not restarted.

pub mod accept;
pub mod commit;
pub mod identity;
pub mod setup;
pub mod verifier;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::ServerConfig;

pub use self::identity::{PeerIdentity, Secured};
pub use self::setup::TlsError;

/// What the listener needs for a TLS connection.
#[derive(Debug)]
pub struct TlsSetup {
    pub server: Arc<ServerConfig>,
    /// When the server certificate expires (Status warns 30 days ahead).
    pub server_not_after: SystemTime,
}

/// Counts for Status and `$SYS`.
#[derive(Debug, Default)]
pub struct TlsCounters {
    /// Client certificates refused (revoked, expired, untrusted, not authorized, missing).
    pub certificates_refused: AtomicU64,
    /// Other failed handshakes: plain MQTT on the TLS port, no shared version or cipher
    /// suite, a client that gave up, none within the connect timeout.
    pub handshakes_failed: AtomicU64,
}

/// The TLS state shared by the supervisor (which sets it at apply) and the listeners.
#[derive(Debug, Default)]
pub struct TlsState {
    current: RwLock<Option<Arc<TlsSetup>>>,
    pub counters: TlsCounters,
}

impl TlsState {
    /// The setup for a socket accepted now; `None` when TLS is off.
    pub fn current(&self) -> Option<Arc<TlsSetup>> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn set(&self, setup: Option<Arc<TlsSetup>>) {
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = setup;
    }
}

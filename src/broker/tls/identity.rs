//! A TLS stream as a connection's byte stream, carrying who the client proved to be: the
//! thumbprint and common name of the certificate it presented, if any. The handshake code
//! reads it to use the common name as the username (when configured) and to remember the
//! certificate, so that revoking it at apply disconnects the client.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio_rustls::server::TlsStream;

use crate::broker::connection::{ByteStream, Streamed, StreamedInput};
use crate::pki::{CertificateInfo, sha256_hex};

/// The client certificate a TLS client presented and the verifier accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// SHA-256 of the certificate, lowercase hex (as `certificates.clients` lists it).
    pub thumbprint: Arc<str>,
    pub common_name: Option<String>,
}

impl PeerIdentity {
    /// The identity of the end-entity certificate `der`.
    pub fn of(der: &[u8]) -> PeerIdentity {
        PeerIdentity {
            thumbprint: Arc::from(sha256_hex(der)),
            common_name: CertificateInfo::parse(der)
                .ok()
                .and_then(|info| info.common_name),
        }
    }
}

/// A server-side TLS session over `S` (TCP, or a WebSocket's stream for wss).
pub struct Secured<S> {
    stream: TlsStream<S>,
    identity: Option<PeerIdentity>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Secured<S> {
    pub fn new(stream: TlsStream<S>) -> Secured<S> {
        let identity = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|der| PeerIdentity::of(der));
        Secured { stream, identity }
    }

    /// The TLS stream and the identity, for a layer above TLS (WebSockets, for `wss://`).
    pub fn into_parts(self) -> (TlsStream<S>, Option<PeerIdentity>) {
        (self.stream, self.identity)
    }
}

impl<S> ByteStream for Secured<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Input = StreamedInput<ReadHalf<TlsStream<S>>>;
    type Output = WriteHalf<TlsStream<S>>;

    fn into_halves(self) -> (Self::Input, Self::Output) {
        Streamed(self.stream).into_halves()
    }

    fn peer_identity(&self) -> Option<PeerIdentity> {
        self.identity.clone()
    }
}

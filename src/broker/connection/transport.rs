//! What a connection needs from its byte stream: two halves, a read half that says when input
//! is ready and reads it without waiting, and a write half. Reading on readiness lets an idle
//! connection hold no read buffer at all: one is taken only when there is input, and kept
//! only while a packet is incomplete. TCP implements it here; TLS and WebSockets will too.

use std::future::Future;
use std::io;

use bytes::BytesMut;
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// A transport's byte stream.
pub trait ByteStream: Send + 'static {
    type Input: Input;
    type Output: AsyncWrite + Unpin + Send + 'static;

    /// Splits the stream. Dropping the output half ends the output direction (TCP: FIN);
    /// the stream closes when both are dropped.
    fn into_halves(self) -> (Self::Input, Self::Output);
}

/// The read half of a [`ByteStream`].
pub trait Input: Send + Sync + 'static {
    /// Waits until input, the end of the stream or an error is ready. May wake spuriously.
    fn ready(&self) -> impl Future<Output = io::Result<()>> + Send;

    /// Appends what is ready to `buffer` without waiting: `Ok(0)` at the end of the stream,
    /// `WouldBlock` when nothing is ready.
    fn try_read_into(&self, buffer: &mut BytesMut) -> io::Result<usize>;
}

impl ByteStream for TcpStream {
    type Input = OwnedReadHalf;
    type Output = OwnedWriteHalf;

    fn into_halves(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        self.into_split()
    }
}

impl Input for OwnedReadHalf {
    fn ready(&self) -> impl Future<Output = io::Result<()>> + Send {
        self.readable()
    }

    fn try_read_into(&self, buffer: &mut BytesMut) -> io::Result<usize> {
        self.try_read_buf(buffer)
    }
}

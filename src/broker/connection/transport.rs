//! What a connection needs from its byte stream: two halves, a read half that says when input
//! is ready and reads it without waiting, and a write half. Reading on readiness lets an idle
//! connection hold no read buffer at all: one is taken only when there is input, and kept
//! only while a packet is incomplete. TCP implements it directly; [`Streamed`] adapts any
//! `AsyncRead + AsyncWrite` stream (TLS, WebSockets).

use std::future::Future;
use std::io;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, Interest, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Mutex;

/// How much a [`Streamed`] stream reads ahead at a time.
const READ_AHEAD: usize = 8 * 1024;

/// A transport's byte stream.
pub trait ByteStream: Send + 'static {
    type Input: Input;
    type Output: AsyncWrite + Unpin + Send + 'static;

    /// Splits the stream. Dropping the output half ends the output direction (TCP: FIN);
    /// the stream closes when both are dropped.
    fn into_halves(self) -> (Self::Input, Self::Output);

    /// The client certificate the peer presented, for transports that carry one (TLS).
    fn peer_identity(&self) -> Option<crate::broker::tls::PeerIdentity> {
        None
    }
}

/// A byte stream with the identity a lower layer proved: a WebSocket over TLS (`wss://`)
/// carries the TLS client certificate up to the MQTT connection.
pub struct Identified<B> {
    pub stream: B,
    pub identity: Option<crate::broker::tls::PeerIdentity>,
}

impl<B: ByteStream> ByteStream for Identified<B> {
    type Input = B::Input;
    type Output = B::Output;

    fn into_halves(self) -> (Self::Input, Self::Output) {
        self.stream.into_halves()
    }

    fn peer_identity(&self) -> Option<crate::broker::tls::PeerIdentity> {
        self.identity.clone()
    }
}

/// The read half of a [`ByteStream`].
pub trait Input: Send + Sync + 'static {
    /// Waits until input, the end of the stream or an error is ready. May wake spuriously.
    fn ready(&self) -> impl Future<Output = io::Result<()>> + Send;

    /// Appends what is ready to `buffer` without waiting: `Ok(0)` at the end of the stream,
    /// `WouldBlock` when nothing is ready.
    fn try_read_into(&self, buffer: &mut BytesMut) -> io::Result<usize>;

    /// As [`Input::try_read_into`], into a slice.
    fn try_read(&self, buffer: &mut [u8]) -> io::Result<usize>;
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
        // Polled readiness keeps one waker in the socket's registration; `readable()` would
        // queue a waiter on a list and take it off again at every read. Only the
        // connection's task ever waits on its read half.
        std::future::poll_fn(|context| self.as_ref().poll_read_ready(context))
    }

    fn try_read_into(&self, buffer: &mut BytesMut) -> io::Result<usize> {
        let offered = buffer.capacity() - buffer.len();
        read_marking_drained(self, offered, || self.try_read_buf(buffer))
    }

    fn try_read(&self, buffer: &mut [u8]) -> io::Result<usize> {
        let offered = buffer.len();
        read_marking_drained(self, offered, || OwnedReadHalf::try_read(self, buffer))
    }
}

/// Runs `read`, and when it returns less than the `offered` space, marks the socket as drained,
/// so that the next [`Input::ready`] waits for epoll instead of reporting the old readiness
/// and costing a read that fails with `WouldBlock`: one system call saved per read. A short
/// read of a TCP socket means its receive queue was emptied; tokio's `AsyncRead` relies on the
/// same, but its `try_read` keeps the readiness until a read would block. Data that arrives
/// after the read raises a new readiness event, which the clearing does not hide.
fn read_marking_drained(
    half: &OwnedReadHalf,
    offered: usize,
    read: impl FnOnce() -> io::Result<usize>,
) -> io::Result<usize> {
    let mut got = 0;
    let result = half.as_ref().try_io(Interest::READABLE, || {
        got = read()?;
        match got > 0 && got < offered {
            // `try_io` clears the readiness it saw when its closure says `WouldBlock`.
            true => Err(io::ErrorKind::WouldBlock.into()),
            false => Ok(got),
        }
    });
    match result {
        Err(error) if error.kind() == io::ErrorKind::WouldBlock && got > 0 => Ok(got),
        other => other,
    }
}

/// A [`ByteStream`] over any stream that only offers `AsyncRead + AsyncWrite`, such as a TLS
/// session or a WebSocket turned into bytes. Such a stream cannot say "input is ready"
/// without reading, so the read half reads when asked whether input is ready and keeps what
/// it read until the connection takes it: the buffer exists only between the two calls.
pub struct Streamed<S>(pub S);

impl<S> ByteStream for Streamed<S>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    type Input = StreamedInput<ReadHalf<S>>;
    type Output = WriteHalf<S>;

    fn into_halves(self) -> (Self::Input, Self::Output) {
        let (read, write) = tokio::io::split(self.0);
        let input = StreamedInput {
            state: Mutex::new(ReadAhead {
                reader: read,
                input: BytesMut::new(),
                ended: false,
                error: None,
            }),
        };
        (input, write)
    }
}

/// The read half of a [`Streamed`] stream.
pub struct StreamedInput<R> {
    // Only the connection's reader uses it, one call at a time; the lock is there because
    // `Input` takes `&self`. An asynchronous lock, as `ready` holds it across the read.
    state: Mutex<ReadAhead<R>>,
}

struct ReadAhead<R> {
    reader: R,
    /// Read by `ready`, not yet taken by `try_read_into`.
    input: BytesMut,
    ended: bool,
    error: Option<io::Error>,
}

impl<R: AsyncRead + Unpin + Send + 'static> Input for StreamedInput<R> {
    async fn ready(&self) -> io::Result<()> {
        let mut state = self.state.lock().await;
        if !state.input.is_empty() || state.ended || state.error.is_some() {
            return Ok(());
        }
        let ReadAhead { reader, input, .. } = &mut *state;
        input.reserve(READ_AHEAD);
        // `read_buf` is cancel safe: when `ready` loses a `select!`, nothing read is lost.
        match reader.read_buf(input).await {
            Ok(0) => state.ended = true,
            Ok(_) => {}
            Err(error) => state.error = Some(error),
        }
        Ok(())
    }

    fn try_read_into(&self, buffer: &mut BytesMut) -> io::Result<usize> {
        let Ok(mut state) = self.state.try_lock() else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        if let Some(error) = state.error.take() {
            state.ended = true;
            return Err(error);
        }
        let read = state.input.len();
        if read == 0 {
            return match state.ended {
                true => Ok(0),
                false => Err(io::ErrorKind::WouldBlock.into()),
            };
        }
        if buffer.is_empty() {
            *buffer = std::mem::take(&mut state.input);
        } else {
            buffer.extend_from_slice(&state.input);
            // Nothing is kept while the connection is idle.
            state.input = BytesMut::new();
        }
        Ok(read)
    }

    fn try_read(&self, buffer: &mut [u8]) -> io::Result<usize> {
        let Ok(mut state) = self.state.try_lock() else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        if state.input.is_empty() {
            if let Some(error) = state.error.take() {
                state.ended = true;
                return Err(error);
            }
            return match state.ended {
                true => Ok(0),
                false => Err(io::ErrorKind::WouldBlock.into()),
            };
        }
        let read = state.input.len().min(buffer.len());
        buffer[..read].copy_from_slice(&state.input[..read]);
        let _ = state.input.split_to(read);
        if state.input.is_empty() {
            // Nothing is kept while the connection is idle.
            state.input = BytesMut::new();
        }
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn streamed_input_hands_over_what_arrived_then_the_end() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let (input, _output) = Streamed(ours).into_halves();
        let mut buffer = BytesMut::new();
        assert_eq!(
            input.try_read_into(&mut buffer).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );

        theirs.write_all(b"abc").await.unwrap();
        input.ready().await.unwrap();
        assert_eq!(input.try_read_into(&mut buffer).unwrap(), 3);
        theirs.write_all(b"de").await.unwrap();
        input.ready().await.unwrap();
        assert_eq!(input.try_read_into(&mut buffer).unwrap(), 2);
        assert_eq!(&buffer[..], b"abcde");

        drop(theirs);
        input.ready().await.unwrap();
        assert_eq!(input.try_read_into(&mut buffer).unwrap(), 0);
    }

    #[tokio::test]
    async fn a_cancelled_ready_loses_nothing() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let (input, _output) = Streamed(ours).into_halves();
        // Abandoned while waiting, as when `ready` loses a `select!`.
        let waited = tokio::time::timeout(std::time::Duration::from_millis(10), input.ready());
        assert!(waited.await.is_err());

        theirs.write_all(b"xyz").await.unwrap();
        input.ready().await.unwrap();
        let mut buffer = BytesMut::new();
        assert_eq!(input.try_read_into(&mut buffer).unwrap(), 3);
        assert_eq!(&buffer[..], b"xyz");
    }

    #[tokio::test]
    async fn streamed_output_writes_through() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let (_input, mut output) = Streamed(ours).into_halves();
        output.write_all(b"hello").await.unwrap();
        output.shutdown().await.unwrap();
        let mut received = Vec::new();
        theirs.read_to_end(&mut received).await.unwrap();
        assert_eq!(received, b"hello");
    }
}

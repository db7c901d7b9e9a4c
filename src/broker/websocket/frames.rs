//! A WebSocket as a byte stream: the payloads of binary messages, read in order, and each
//! write sent as one binary message.
//!
//! MQTT does not align its packets on frames: a packet may span frames and a frame may hold
//! several packets (MQTT-6.0.0-2), so the connection's decoder simply sees the bytes. Only
//! binary data frames carry MQTT (MQTT-6.0.0-1): a text frame closes the connection with
//! close code 1003 (unsupported data, RFC 6455 §7.4.1). Pings are answered and the close
//! handshake completed by tungstenite, as a side effect of reading.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use futures::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::Error as WsError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// An upgraded WebSocket as `AsyncRead + AsyncWrite`.
pub struct WsBytes<S> {
    socket: WebSocketStream<S>,
    /// What is left of the last binary message.
    unread: Bytes,
    /// Our Close frame is queued.
    closing: bool,
}

impl<S> WsBytes<S> {
    pub fn new(socket: WebSocketStream<S>) -> WsBytes<S> {
        WsBytes {
            socket,
            unread: Bytes::new(),
            closing: false,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsBytes<S> {
    /// Starts the close handshake with `code`, as far as the socket takes it now; the
    /// connection's shutdown of its write side finishes it.
    fn close_with(&mut self, code: CloseCode, reason: &'static str, cx: &mut Context<'_>) {
        if std::mem::replace(&mut self.closing, true) {
            return;
        }
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let mut socket = Pin::new(&mut self.socket);
        if socket
            .as_mut()
            .start_send(Message::Close(Some(frame)))
            .is_ok()
        {
            let _ = socket.poll_flush(cx);
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsBytes<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.unread.is_empty() {
                let n = self.unread.len().min(buf.remaining());
                buf.put_slice(&self.unread[..n]);
                self.unread.advance(n);
                return Poll::Ready(Ok(()));
            }
            let next = ready!(Pin::new(&mut self.socket).poll_next(cx));
            match next {
                // The close handshake is over, or the connection dropped: the end of input.
                None => return Poll::Ready(Ok(())),
                Some(Ok(Message::Binary(data))) => self.unread = data,
                Some(Ok(Message::Text(_))) => {
                    // MQTT-6.0.0-1: anything but a binary data frame closes the connection.
                    self.close_with(CloseCode::Unsupported, "MQTT needs binary frames", cx);
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text frame on an MQTT WebSocket (MQTT-6.0.0-1)",
                    )));
                }
                // Pings are answered by tungstenite; after a Close, the next read ends the
                // stream once the reply is out.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_))) => {}
                Some(Ok(Message::Frame(_))) => {}
                Some(Err(error)) => {
                    let (code, reason) = match &error {
                        WsError::Capacity(_) => (CloseCode::Size, "frame too large"),
                        WsError::Protocol(_) => (CloseCode::Protocol, "WebSocket protocol error"),
                        _ => return Poll::Ready(Err(io_error(error))),
                    };
                    self.close_with(code, reason, cx);
                    return Poll::Ready(Err(io_error(error)));
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsBytes<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut socket = Pin::new(&mut self.socket);
        // Waits while earlier frames are still blocked in tungstenite's buffer: the
        // connection's writer feels the client's slowness as it does over TCP.
        ready!(socket.as_mut().poll_ready(cx)).map_err(io_error)?;
        socket
            .start_send(Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(io_error)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_flush(cx).map_err(io_error)
    }

    /// Sends a Close frame (1000, normal closure) and flushes it; the peer's answering Close
    /// is read by the connection's last reads, which then see the end of the stream.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !std::mem::replace(&mut self.closing, true) {
            let frame = CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            };
            // Fails only when the connection is closed already, which `poll_close` reports.
            let _ = Pin::new(&mut self.socket).start_send(Message::Close(Some(frame)));
        }
        Pin::new(&mut self.socket).poll_close(cx).map_err(io_error)
    }
}

fn io_error(error: WsError) -> io::Error {
    match error {
        WsError::Io(error) => error,
        WsError::ConnectionClosed | WsError::AlreadyClosed => io::ErrorKind::BrokenPipe.into(),
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

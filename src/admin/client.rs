//! The admin socket's client: one connection shared by every request (each carries an id; a
//! reader task matches the answers and passes events on).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use thiserror::Error;
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::codec::{FramedRead, FramedWrite, LinesCodec};

use super::protocol::{
    AppliedConfig, ClientMsg, Event, MAX_LINE, PROTOCOL_VERSION, Request, Response, ServerMsg,
    Welcome, version_mismatch,
};
use crate::broker::DiagEvent;

/// How long connecting and the handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Diagnostic events buffered for a console that has not read them yet.
const DIAG_BUFFER: usize = 4096;

#[derive(Debug, Error)]
pub enum AdminError {
    #[error("cannot connect to the admin socket {path}: {source}")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the broker refused the connection: {0}")]
    Refused(String),
    #[error("the admin protocol was not followed: {0}")]
    Protocol(String),
    #[error("the broker's admin connection closed")]
    Closed,
}

/// One diagnostics item for the console.
#[derive(Debug, Clone)]
pub enum DiagItem {
    Event(Arc<DiagEvent>),
    Lost(u64),
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Response>>>>;

/// A connection to a broker's admin socket.
#[derive(Debug, Clone)]
pub struct AdminClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    welcome: Welcome,
    socket: PathBuf,
    sink: tokio::sync::Mutex<FramedWrite<OwnedWriteHalf, LinesCodec>>,
    next_id: AtomicU64,
    pending: Pending,
    applied: watch::Receiver<AppliedConfig>,
    diagnostics: Mutex<Option<mpsc::Receiver<DiagItem>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl AdminClient {
    /// Connects, says Hello, and reads the applied configuration.
    pub async fn connect(path: &Path) -> Result<AdminClient, AdminError> {
        tokio::time::timeout(CONNECT_TIMEOUT, AdminClient::connect_now(path))
            .await
            .map_err(|_| AdminError::Protocol("no answer to Hello within 5 s".to_string()))?
    }

    async fn connect_now(path: &Path) -> Result<AdminClient, AdminError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| AdminError::Connect {
                path: path.to_path_buf(),
                source,
            })?;
        let (read, write) = stream.into_split();
        let mut lines = FramedRead::new(read, LinesCodec::new_with_max_length(MAX_LINE));
        let mut sink = FramedWrite::new(write, LinesCodec::new_with_max_length(MAX_LINE));
        let hello = ClientMsg::Hello {
            protocol: PROTOCOL_VERSION,
            client: format!("roost {}", env!("CARGO_PKG_VERSION")),
        };
        send_line(&mut sink, &hello).await?;
        let welcome = match read_message(&mut lines).await? {
            ServerMsg::Welcome(welcome) => welcome,
            ServerMsg::Refused { reason } => return Err(AdminError::Refused(reason)),
            other => {
                return Err(AdminError::Protocol(format!(
                    "expected Welcome, got {other:?}"
                )));
            }
        };
        if welcome.protocol != PROTOCOL_VERSION {
            return Err(AdminError::Refused(version_mismatch(
                PROTOCOL_VERSION,
                welcome.protocol,
            )));
        }
        // The applied configuration before anything else, so that the watch starts right.
        send_line(
            &mut sink,
            &ClientMsg::Request {
                id: 0,
                request: Request::Applied,
            },
        )
        .await?;
        let applied = loop {
            match read_message(&mut lines).await? {
                ServerMsg::Response {
                    response: Response::Applied(applied),
                    ..
                } => break applied,
                ServerMsg::Event(_) => continue,
                other => {
                    return Err(AdminError::Protocol(format!(
                        "expected the applied config, got {other:?}"
                    )));
                }
            }
        };
        let (applied_tx, applied_rx) = watch::channel(applied);
        let (diag_tx, diag_rx) = mpsc::channel(DIAG_BUFFER);
        let pending: Pending = Arc::default();
        let reader = tokio::spawn(read_loop(lines, pending.clone(), applied_tx, diag_tx));
        Ok(AdminClient {
            inner: Arc::new(Inner {
                welcome,
                socket: path.to_path_buf(),
                sink: tokio::sync::Mutex::new(sink),
                next_id: AtomicU64::new(1),
                pending,
                applied: applied_rx,
                diagnostics: Mutex::new(Some(diag_rx)),
                reader,
            }),
        })
    }

    pub fn welcome(&self) -> &Welcome {
        &self.inner.welcome
    }

    pub fn socket(&self) -> &Path {
        &self.inner.socket
    }

    /// Sends a request and waits for its answer.
    pub async fn request(&self, request: Request) -> Result<Response, AdminError> {
        let id = self.inner.next_id.fetch_add(1, Relaxed);
        let (reply, answer) = oneshot::channel();
        lock(&self.inner.pending).insert(id, reply);
        let sent = {
            let mut sink = self.inner.sink.lock().await;
            send_line(&mut sink, &ClientMsg::Request { id, request }).await
        };
        if let Err(err) = sent {
            lock(&self.inner.pending).remove(&id);
            return Err(err);
        }
        answer.await.map_err(|_| AdminError::Closed)
    }

    /// Follows the applied configuration, as changed by any client.
    pub fn watch_applied(&self) -> watch::Receiver<AppliedConfig> {
        self.inner.applied.clone()
    }

    /// Asks for diagnostic events and returns their receiver (once per connection).
    pub async fn diagnostics(&self) -> Result<mpsc::Receiver<DiagItem>, AdminError> {
        let receiver = lock(&self.inner.diagnostics)
            .take()
            .ok_or_else(|| AdminError::Protocol("diagnostics already taken".to_string()))?;
        self.request(Request::WatchDiagnostics).await?;
        Ok(receiver)
    }

    /// Whether the connection is still open.
    pub fn is_connected(&self) -> bool {
        !self.inner.reader.is_finished()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn read_loop(
    mut lines: FramedRead<OwnedReadHalf, LinesCodec>,
    pending: Pending,
    applied: watch::Sender<AppliedConfig>,
    diagnostics: mpsc::Sender<DiagItem>,
) {
    // Events the console could not take yet, reported with the next one that fits.
    let mut lost = 0u64;
    while let Ok(message) = read_message(&mut lines).await {
        match message {
            ServerMsg::Response { id, response } => {
                if let Some(reply) = lock(&pending).remove(&id) {
                    let _ = reply.send(response);
                }
            }
            ServerMsg::Event(Event::Applied(config)) => {
                applied.send_replace(config);
            }
            ServerMsg::Event(Event::Diagnostic(event)) => {
                if lost > 0 && diagnostics.try_send(DiagItem::Lost(lost)).is_ok() {
                    lost = 0;
                }
                if diagnostics.try_send(DiagItem::Event(event)).is_err() {
                    lost += 1;
                }
            }
            ServerMsg::Event(Event::DiagnosticsLost(n)) => lost += n,
            ServerMsg::Welcome(_) | ServerMsg::Refused { .. } => {}
        }
    }
    // Dropping the pending replies wakes every waiting request with `Closed`.
    lock(&pending).clear();
}

async fn send_line(
    sink: &mut FramedWrite<OwnedWriteHalf, LinesCodec>,
    message: &ClientMsg,
) -> Result<(), AdminError> {
    let line =
        serde_json::to_string(message).map_err(|err| AdminError::Protocol(err.to_string()))?;
    sink.send(line).await.map_err(|_| AdminError::Closed)
}

async fn read_message(
    lines: &mut FramedRead<OwnedReadHalf, LinesCodec>,
) -> Result<ServerMsg, AdminError> {
    match lines.next().await {
        Some(Ok(line)) => {
            serde_json::from_str(&line).map_err(|err| AdminError::Protocol(err.to_string()))
        }
        Some(Err(err)) => Err(AdminError::Protocol(err.to_string())),
        None => Err(AdminError::Closed),
    }
}

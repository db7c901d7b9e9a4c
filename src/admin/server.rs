//! The admin socket's server: accepts local connections (this user or root only), checks the
//! protocol version, and answers requests from [`AdminService`].

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use thiserror::Error;
use tokio::net::UnixListener;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite, LinesCodec};
use tracing::{debug, info, warn};

use super::marker::SocketMarker;
use super::path::{canonical_config_path, current_uid, ensure_private_dir};
use super::protocol::{
    AnyHello, AnyRequest, ClientMsg, Event, MAX_LINE, PROTOCOL_VERSION, Request, Response,
    ServerMsg, Welcome, version_mismatch,
};
use super::service::AdminService;

/// How long a new connection may take to say Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum BindError {
    #[error("a broker is already running on this configuration (admin socket {0})")]
    AlreadyRunning(PathBuf),
    #[error("cannot open the admin socket {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The listening admin socket and its marker in the data directory ([`super::marker`]);
/// both files are removed when this is dropped.
#[derive(Debug)]
pub struct AdminServer {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
    marker: Arc<Mutex<SocketMarker>>,
    marker_task: tokio::task::JoinHandle<()>,
}

impl AdminServer {
    /// Binds `path` (mode 0600 inside a private directory) and serves `service` on it. A
    /// socket file left by a broker that died is replaced; one that answers is not.
    pub fn bind(path: &Path, service: Arc<AdminService>) -> Result<AdminServer, BindError> {
        let io_error = |source| BindError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            ensure_private_dir(dir).map_err(io_error)?;
        }
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(BindError::AlreadyRunning(path.to_path_buf()));
            }
            fs::remove_file(path).map_err(io_error)?;
        }
        let listener = UnixListener::bind(path).map_err(io_error)?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io_error)?;
        info!(socket = %path.display(), "admin socket open");
        let marker = Arc::new(Mutex::new(SocketMarker::new(path)));
        let marker_task = tokio::spawn(follow_data_dir(service.clone(), marker.clone()));
        let task = tokio::spawn(accept_loop(listener, service));
        Ok(AdminServer {
            path: path.to_path_buf(),
            task,
            marker,
            marker_task,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.task.abort();
        self.marker_task.abort();
        lock(&self.marker).close();
        let _ = fs::remove_file(&self.path);
    }
}

/// Keeps the socket's marker in the data directory the broker runs with (an Apply may
/// change it). File work runs off the runtime thread, which the router may share.
async fn follow_data_dir(service: Arc<AdminService>, marker: Arc<Mutex<SocketMarker>>) {
    let mut applied = service.watch_applied();
    loop {
        let data_dir = service.running_data_dir();
        let marker = marker.clone();
        let _ = tokio::task::spawn_blocking(move || lock(&marker).place(&data_dir)).await;
        if applied.changed().await.is_err() {
            return;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn accept_loop(listener: UnixListener, service: Arc<AdminService>) {
    let own_uid = current_uid();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                warn!(error = %err, "admin socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // The socket's mode already keeps others out; the peer's credentials are checked
        // too, in case the mode or the directory was changed.
        match stream.peer_cred() {
            Ok(cred) if cred.uid() == own_uid || cred.uid() == 0 => {}
            Ok(cred) => {
                warn!(
                    uid = cred.uid(),
                    "admin connection from another user refused"
                );
                continue;
            }
            Err(err) => {
                warn!(error = %err, "admin connection without credentials refused");
                continue;
            }
        }
        tokio::spawn(serve_connection(stream, service.clone()));
    }
}

/// What the writer task sends: messages, or the instruction to start forwarding diagnostics.
enum Outgoing {
    Msg(ServerMsg),
    WatchDiagnostics,
}

async fn serve_connection(stream: tokio::net::UnixStream, service: Arc<AdminService>) {
    let (read, write) = stream.into_split();
    let mut lines = FramedRead::new(read, LinesCodec::new_with_max_length(MAX_LINE));
    let mut sink = FramedWrite::new(write, LinesCodec::new_with_max_length(MAX_LINE));

    let hello = match tokio::time::timeout(HELLO_TIMEOUT, lines.next()).await {
        Ok(Some(Ok(line))) => line,
        _ => return,
    };
    let theirs = match serde_json::from_str::<AnyHello>(&hello) {
        Ok(hello) => hello.hello.protocol,
        Err(err) => {
            let reason = format!("expected a Hello: {err}");
            let _ = send(&mut sink, &ServerMsg::Refused { reason }).await;
            return;
        }
    };
    if theirs != PROTOCOL_VERSION {
        let reason = version_mismatch(PROTOCOL_VERSION, theirs);
        info!(theirs, "admin client of another protocol version refused");
        let _ = send(&mut sink, &ServerMsg::Refused { reason }).await;
        return;
    }
    let welcome = ServerMsg::Welcome(Welcome {
        protocol: PROTOCOL_VERSION,
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        // Canonical: a console attached by data directory runs elsewhere, where the path
        // the broker was given may mean another file.
        config_path: canonical_config_path(service.config_path())
            .unwrap_or_else(|_| service.config_path().to_path_buf()),
    });
    if send(&mut sink, &welcome).await.is_err() {
        return;
    }
    debug!("admin client attached");

    let (out_tx, out_rx) = mpsc::channel::<Outgoing>(64);
    let writer = tokio::spawn(write_loop(sink, out_rx, service.clone()));
    while let Some(line) = lines.next().await {
        let Ok(line) = line else { break };
        let message = match serde_json::from_str::<ClientMsg>(&line) {
            Ok(message) => message,
            Err(err) => {
                warn!(error = %err, "unreadable admin request");
                // Answered when its id can be read, so that the peer does not wait forever.
                if let Ok(any) = serde_json::from_str::<AnyRequest>(&line) {
                    let response = Response::Error(format!("unreadable request: {err}"));
                    let id = any.request.id;
                    let _ = out_tx
                        .send(Outgoing::Msg(ServerMsg::Response { id, response }))
                        .await;
                }
                continue;
            }
        };
        let ClientMsg::Request { id, request } = message else {
            continue;
        };
        if matches!(request, Request::WatchDiagnostics) {
            let _ = out_tx.send(Outgoing::WatchDiagnostics).await;
            let response = Response::Done;
            let _ = out_tx
                .send(Outgoing::Msg(ServerMsg::Response { id, response }))
                .await;
            continue;
        }
        // Each request in its own task: a slow Apply does not hold up the figures.
        let service = service.clone();
        let out_tx = out_tx.clone();
        tokio::spawn(async move {
            let response = answer(&service, request).await;
            let _ = out_tx
                .send(Outgoing::Msg(ServerMsg::Response { id, response }))
                .await;
        });
    }
    drop(out_tx);
    writer.abort();
    debug!("admin client detached");
}

async fn answer(service: &AdminService, request: Request) -> Response {
    match request {
        Request::Applied => Response::Applied(service.applied()),
        Request::Apply {
            config,
            overwrite_hand_edits,
        } => Response::Apply(service.apply(*config, overwrite_hand_edits).await),
        Request::ReloadFile => Response::ReloadFile(service.reload_file().await.map(Box::new)),
        Request::Stats => Response::Stats(Box::new(service.stats())),
        Request::Clients => Response::Clients(service.clients().await),
        Request::ClientDetail { client_id } => {
            Response::ClientDetail(service.client_detail(&client_id).await.map(Box::new))
        }
        Request::Disconnect { client_id } => Response::Disconnect {
            found: service.disconnect(&client_id).await,
        },
        Request::SetDiagnostics { on } => {
            service.set_diagnostics(on);
            Response::Done
        }
        Request::WatchDiagnostics => Response::Done,
    }
}

/// Writes responses, applied-config events and (once asked) diagnostic events. Diagnostics
/// come from the broker's broadcast channel: when this client falls behind, the channel drops
/// the oldest events for it alone and says how many, which is passed on as
/// `DiagnosticsLost` — the broker never waits for a console.
async fn write_loop(
    mut sink: FramedWrite<OwnedWriteHalf, LinesCodec>,
    mut out: mpsc::Receiver<Outgoing>,
    service: Arc<AdminService>,
) {
    let mut applied = service.watch_applied();
    applied.mark_unchanged();
    let mut diagnostics: Option<crate::broker::DiagnosticsReceiver> = None;
    loop {
        let message = tokio::select! {
            biased;
            outgoing = out.recv() => match outgoing {
                Some(Outgoing::Msg(message)) => message,
                Some(Outgoing::WatchDiagnostics) => {
                    diagnostics.get_or_insert_with(|| service.broker().subscribe_diagnostics());
                    continue;
                }
                None => return,
            },
            changed = applied.changed() => {
                if changed.is_err() {
                    return;
                }
                ServerMsg::Event(Event::Applied(applied.borrow_and_update().clone()))
            }
            received = async { Some(diagnostics.as_mut()?.recv().await) }, if diagnostics.is_some() => {
                match received {
                    Some(Ok(event)) => ServerMsg::Event(Event::Diagnostic(event)),
                    Some(Err(RecvError::Lagged(lost))) => ServerMsg::Event(Event::DiagnosticsLost(lost)),
                    _ => {
                        diagnostics = None;
                        continue;
                    }
                }
            }
        };
        if send(&mut sink, &message).await.is_err() {
            return;
        }
    }
}

async fn send(
    sink: &mut FramedWrite<OwnedWriteHalf, LinesCodec>,
    message: &ServerMsg,
) -> Result<(), ()> {
    let line = serde_json::to_string(message).map_err(|_| ())?;
    sink.send(line).await.map_err(|_| ())
}

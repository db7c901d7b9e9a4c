//! [`Admin`]: the one API through which the console (and configuration commands) reach a
//! broker, whether it runs in this process or behind an admin socket.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, watch};

use super::client::{AdminClient, AdminError, DiagItem};
use super::protocol::{AppliedConfig, ApplyOutcome, ApplyRefusal, Request, Response};
use super::service::AdminService;
use crate::broker::{ClientDetail, ClientInfo, DiagnosticsReceiver, StatsSnapshot};
use crate::config::Config;

/// Where the broker runs, as the console's title bar says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Started by this process; quitting stops it.
    InProcess,
    /// Another process's broker, reached through its admin socket; quitting leaves it running.
    Attached { pid: u32, socket: PathBuf },
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::InProcess => f.write_str("in this process"),
            Origin::Attached { pid, .. } => write!(f, "attached to pid {pid}"),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Admin {
    InProcess(Arc<AdminService>),
    Attached(AdminClient),
}

impl Admin {
    pub fn origin(&self) -> Origin {
        match self {
            Admin::InProcess(_) => Origin::InProcess,
            Admin::Attached(client) => Origin::Attached {
                pid: client.welcome().pid,
                socket: client.socket().to_path_buf(),
            },
        }
    }

    /// The config file the broker saves to.
    pub fn config_path(&self) -> &Path {
        match self {
            Admin::InProcess(service) => service.config_path(),
            Admin::Attached(client) => &client.welcome().config_path,
        }
    }

    pub fn watch_applied(&self) -> watch::Receiver<AppliedConfig> {
        match self {
            Admin::InProcess(service) => service.watch_applied(),
            Admin::Attached(client) => client.watch_applied(),
        }
    }

    /// The applied configuration (without command-line overrides).
    pub fn applied(&self) -> AppliedConfig {
        self.watch_applied().borrow().clone()
    }

    /// Applies and saves `config`. A lost connection is reported as a refusal.
    pub async fn apply(
        &self,
        config: Config,
        overwrite_hand_edits: bool,
    ) -> Result<ApplyOutcome, ApplyRefusal> {
        match self {
            Admin::InProcess(service) => service.apply(config, overwrite_hand_edits).await,
            Admin::Attached(client) => {
                let request = Request::Apply {
                    config: Box::new(config),
                    overwrite_hand_edits,
                };
                match client.request(request).await {
                    Ok(Response::Apply(result)) => result,
                    Ok(other) => Err(ApplyRefusal::Refused(format!(
                        "unexpected answer {other:?}"
                    ))),
                    Err(err) => Err(ApplyRefusal::Refused(err.to_string())),
                }
            }
        }
    }

    /// Re-reads the config file (after hand edits).
    pub async fn reload_file(&self) -> Result<Config, String> {
        match self {
            Admin::InProcess(service) => service.reload_file().await,
            Admin::Attached(client) => match client.request(Request::ReloadFile).await {
                Ok(Response::ReloadFile(result)) => result.map(|c| *c),
                Ok(other) => Err(format!("unexpected answer {other:?}")),
                Err(err) => Err(err.to_string()),
            },
        }
    }

    pub async fn stats(&self) -> Result<StatsSnapshot, AdminError> {
        match self {
            Admin::InProcess(service) => Ok(service.stats()),
            Admin::Attached(client) => match client.request(Request::Stats).await? {
                Response::Stats(stats) => Ok(*stats),
                other => Err(unexpected(other)),
            },
        }
    }

    pub async fn clients(&self) -> Result<Vec<ClientInfo>, AdminError> {
        match self {
            Admin::InProcess(service) => Ok(service.clients().await),
            Admin::Attached(client) => match client.request(Request::Clients).await? {
                Response::Clients(clients) => Ok(clients),
                other => Err(unexpected(other)),
            },
        }
    }

    /// One client's session in full (connected or not); `None` when there is none.
    pub async fn client_detail(&self, client_id: &str) -> Result<Option<ClientDetail>, AdminError> {
        match self {
            Admin::InProcess(service) => Ok(service.client_detail(client_id).await),
            Admin::Attached(client) => {
                let request = Request::ClientDetail {
                    client_id: client_id.to_string(),
                };
                match client.request(request).await? {
                    Response::ClientDetail(detail) => Ok(detail.map(|d| *d)),
                    other => Err(unexpected(other)),
                }
            }
        }
    }

    /// Closes one client's connection; false when it was not connected.
    pub async fn disconnect(&self, client_id: &str) -> Result<bool, AdminError> {
        match self {
            Admin::InProcess(service) => Ok(service.disconnect(client_id).await),
            Admin::Attached(client) => {
                let request = Request::Disconnect {
                    client_id: client_id.to_string(),
                };
                match client.request(request).await? {
                    Response::Disconnect { found } => Ok(found),
                    other => Err(unexpected(other)),
                }
            }
        }
    }

    pub async fn set_diagnostics(&self, on: bool) -> Result<(), AdminError> {
        match self {
            Admin::InProcess(service) => {
                service.set_diagnostics(on);
                Ok(())
            }
            Admin::Attached(client) => {
                client.request(Request::SetDiagnostics { on }).await?;
                Ok(())
            }
        }
    }

    /// The diagnostics events. A console that falls behind loses events (counted), never
    /// slows the broker.
    pub async fn diagnostics(&self) -> Result<DiagStream, AdminError> {
        match self {
            Admin::InProcess(service) => {
                Ok(DiagStream::Local(service.broker().subscribe_diagnostics()))
            }
            Admin::Attached(client) => Ok(DiagStream::Remote(client.diagnostics().await?)),
        }
    }

    /// Whether quitting this console stops the broker.
    pub fn owns_broker(&self) -> bool {
        matches!(self, Admin::InProcess(_))
    }

    /// Stops the broker when this process owns it; an attached console leaves it running.
    pub async fn shutdown_if_owned(&self) {
        if let Admin::InProcess(service) = self {
            service.broker().shutdown().await;
        }
    }
}

fn unexpected(response: Response) -> AdminError {
    AdminError::Protocol(format!("unexpected answer {response:?}"))
}

/// Diagnostic events from the broker in this process or over the socket.
#[derive(Debug)]
pub enum DiagStream {
    Local(DiagnosticsReceiver),
    Remote(mpsc::Receiver<DiagItem>),
}

impl DiagStream {
    /// The next event or loss count; `None` once the broker is gone.
    pub async fn recv(&mut self) -> Option<DiagItem> {
        match self {
            DiagStream::Local(receiver) => match receiver.recv().await {
                Ok(event) => Some(DiagItem::Event(event)),
                Err(RecvError::Lagged(lost)) => Some(DiagItem::Lost(lost)),
                Err(RecvError::Closed) => None,
            },
            DiagStream::Remote(receiver) => receiver.recv().await,
        }
    }
}

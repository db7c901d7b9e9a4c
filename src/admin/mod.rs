//! Administration of a running broker, in this process or in another one over a local Unix
//! socket.
//!
//! - [`service`]: the broker's side — applies, keeps the applied configuration, saves the file;
//! - [`saving`]: writing the config file honestly (read-only files, hand-written comments);
//! - [`protocol`]: the versioned wire protocol of the admin socket;
//! - [`server`], [`client`]: the two ends of the socket; [`path`]: where the socket lives;
//! - [`marker`]: the file in the data directory that names the socket;
//! - [`handle`]: [`Admin`], the one API the console and configuration commands use.
//!
//! `roost serve` and the console that owns its broker both open the socket; `roost` attaches
//! to it when a broker is already running on the same config file or the same data
//! directory. There is no TCP admin port: only the user running the broker (or root) can
//! connect.

pub mod client;
pub mod handle;
pub mod marker;
pub mod path;
pub mod protocol;
pub mod saving;
pub mod server;
pub mod service;

pub use client::{AdminClient, AdminError, DiagItem};
pub use handle::{Admin, DiagStream, Origin};
pub use path::socket_path_for;
pub use protocol::{AppliedConfig, ApplyOutcome, ApplyRefusal, SaveOutcome};
pub use server::{AdminServer, BindError};
pub use service::{AdminService, Overrides};

use std::path::Path;
use std::sync::Arc;

use tracing::warn;

/// Opens the admin socket of `service`'s config file; a broker without one still serves MQTT.
pub fn open_socket(service: &Arc<AdminService>) -> Option<AdminServer> {
    let socket = match socket_path_for(service.config_path()) {
        Ok(socket) => socket,
        Err(err) => {
            warn!(error = %err, config = %service.config_path().display(), "no admin socket: the config path cannot be resolved");
            return None;
        }
    };
    match AdminServer::bind(&socket, service.clone()) {
        Ok(server) => Some(server),
        Err(err) => {
            warn!(error = %err, "running without an admin socket");
            None
        }
    }
}

/// Connects to the broker running on `config` when there is one; `Ok(None)` when there is no
/// socket or it does not answer (a broker that died leaves its socket behind).
pub async fn attach_to_running(config: &Path) -> Result<Option<AdminClient>, AdminError> {
    let Ok(socket) = socket_path_for(config) else {
        return Ok(None);
    };
    if !socket.exists() {
        return Ok(None);
    }
    match AdminClient::connect(&socket).await {
        Ok(client) => Ok(Some(client)),
        Err(AdminError::Connect { .. }) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Connects to the broker whose data directory is `data_dir`, through the marker it keeps
/// there; `Ok(None)` when there is no marker or its socket does not answer (stale).
pub async fn attach_by_data_dir(data_dir: &Path) -> Result<Option<AdminClient>, AdminError> {
    let dir = data_dir.to_path_buf();
    let socket = tokio::task::spawn_blocking(move || marker::read_marker(&dir))
        .await
        .ok()
        .flatten();
    let Some(socket) = socket else {
        return Ok(None);
    };
    match AdminClient::connect(&socket).await {
        Ok(client) => Ok(Some(client)),
        Err(AdminError::Connect { .. }) => {
            tracing::debug!(socket = %socket.display(), "stale admin socket marker ignored");
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

/// Runs `edit` on the applied configuration and applies the result through the running
/// broker when there is one (so that the broker and the file never disagree), else on the
/// file alone. For commands such as `roost user add`. Returns what was done, in words.
pub async fn edit_config(
    config_path: &Path,
    edit: impl FnOnce(&mut crate::config::Config) -> Result<(), String> + Send + 'static,
) -> Result<String, String> {
    match attach_to_running(config_path)
        .await
        .map_err(|e| e.to_string())?
    {
        Some(client) => {
            let admin = Admin::Attached(client);
            let mut config = *admin.applied().config;
            edit(&mut config)?;
            let pid = match admin.origin() {
                Origin::Attached { pid, .. } => pid,
                Origin::InProcess => std::process::id(),
            };
            let outcome = admin
                .apply(config, false)
                .await
                .map_err(|e| e.to_string())?;
            match outcome.saved {
                SaveOutcome::Saved { path, .. } => Ok(format!(
                    "applied by the running broker (pid {pid}) and saved to {}",
                    path.display()
                )),
                SaveOutcome::NotSaved { reason } => Err(format!(
                    "applied by the running broker (pid {pid}), NOT saved: {reason}"
                )),
            }
        }
        None => {
            let path = config_path.to_path_buf();
            tokio::task::spawn_blocking(move || {
                let on_disk = saving::read_if_exists(&path).map_err(|e| e.to_string())?;
                let mut config = match &on_disk {
                    Some(text) => crate::config::Config::from_ron(text)
                        .map_err(|e| format!("{}: {e}", path.display()))?,
                    None => crate::config::Config::default(),
                };
                edit(&mut config)?;
                saving::save(&path, &config, on_disk.as_deref()).map_err(|e| e.to_string())?;
                Ok(format!(
                    "saved to {} (no broker running on it)",
                    path.display()
                ))
            })
            .await
            .map_err(|e| e.to_string())?
        }
    }
}

//! `roost serve`: the broker without the console, for services, scripts, tests and benchmarks.

use std::net::SocketAddr;
use std::path::PathBuf;

use thiserror::Error;
use tracing::{info, warn};

use crate::broker::{ApplyError, BrokerHandle, ChangeAction};
use crate::config::{Config, ConfigError, ConfigFileError, StorageMode};

/// Command-line overrides of the config file for headless runs.
#[derive(Debug, Clone, Default)]
pub struct ServeOverrides {
    pub tcp: Option<SocketAddr>,
    pub ws: Option<SocketAddr>,
    pub ws_path: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub persistence: Option<StorageMode>,
}

#[derive(Debug, Error)]
pub enum ServeError {
    #[error(transparent)]
    ConfigFile(#[from] ConfigFileError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("cannot wait for signals: {0}")]
    Signals(#[source] std::io::Error),
}

/// The config a headless run uses: the file (or the defaults when no file is given and
/// `roost.ron` does not exist), the command-line overrides, and the broker enabled —
/// `serve` means serve.
pub fn headless_config(
    path: Option<&std::path::Path>,
    overrides: &ServeOverrides,
) -> Result<Config, ServeError> {
    let mut config = match path {
        Some(path) => Config::load(path)?,
        None => {
            let default_path = std::path::Path::new("roost.ron");
            if default_path.exists() {
                Config::load(default_path)?
            } else {
                Config::default()
            }
        }
    };
    config.broker.enabled = true;
    if let Some(addr) = overrides.tcp {
        config.broker.tcp.enabled = true;
        config.broker.tcp.bind = addr.ip().to_string();
        config.broker.tcp.port = addr.port();
    }
    if let Some(addr) = overrides.ws {
        config.broker.websockets.enabled = true;
        config.broker.websockets.bind = addr.ip().to_string();
        config.broker.websockets.port = addr.port();
    }
    if let Some(path) = &overrides.ws_path {
        config.broker.websockets.path = path.clone();
    }
    if let Some(dir) = &overrides.data_dir {
        config.persistence.data_dir = dir.clone();
    }
    if let Some(mode) = overrides.persistence {
        config.persistence.enabled = true;
        config.persistence.mode = mode;
    }
    config.validate()?;
    Ok(config)
}

/// Runs the broker until SIGINT or SIGTERM, then shuts it down cleanly.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    // Installed before the listeners open: a SIGTERM sent as soon as the broker accepts
    // connections still shuts it down cleanly rather than killing it.
    let signals = ShutdownSignals::install()?;
    let broker = BrokerHandle::spawn();
    let report = broker.apply(config).await?;
    for change in &report.changes {
        if change.action == ChangeAction::StoredNotActive {
            warn!("{change}");
        } else {
            info!("{change}");
        }
    }
    for listener in broker.stats().listeners {
        info!(kind = %listener.kind, address = %listener.address, "listening");
    }
    signals.wait().await;
    info!("shutting down");
    broker.shutdown().await;
    Ok(())
}

/// SIGTERM and SIGINT, caught from the moment they are installed.
struct ShutdownSignals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn install() -> Result<ShutdownSignals, ServeError> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(ShutdownSignals {
            terminate: signal(SignalKind::terminate()).map_err(ServeError::Signals)?,
            interrupt: signal(SignalKind::interrupt()).map_err(ServeError::Signals)?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.terminate.recv() => info!("received SIGTERM"),
            _ = self.interrupt.recv() => info!("received SIGINT"),
        }
    }
}

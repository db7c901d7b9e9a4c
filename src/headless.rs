//! `roost serve`: the broker without the console, for services, scripts, tests and benchmarks.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;
use tracing::{info, warn};

use crate::admin::{AdminService, Overrides};
use crate::auth::acl::TopicPermissions;
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
    /// `--tls` and the client certificate switches: each turns its setting on.
    pub tls: bool,
    pub require_client_certificate: bool,
    pub authorized_only: bool,
    pub trust_any_matching_authorized: bool,
    /// `--require-credentials`: on when set; the file decides otherwise.
    pub require_credentials: bool,
    /// `--acl-file`: topic permissions read from a Mosquitto acl_file, replacing the file's.
    pub acl: Option<TopicPermissions>,
}

#[derive(Debug, Error)]
pub enum ServeError {
    #[error(transparent)]
    ConfigFile(#[from] ConfigFileError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("roost refuses to start: {0}")]
    Store(#[from] crate::store::OpenError),
    #[error("opening the store stopped: {0}")]
    StoreTask(#[from] tokio::task::JoinError),
    #[error(transparent)]
    AclFile(#[from] crate::cli::acl::AclError),
    #[error("cannot wait for signals: {0}")]
    Signals(#[source] std::io::Error),
}

/// The config file a headless run reads: the one named, else `roost.ron` (which may not exist).
pub fn config_path(path: Option<&Path>) -> PathBuf {
    path.map_or_else(|| PathBuf::from("roost.ron"), Path::to_path_buf)
}

/// The file's configuration (the defaults when no file is given and `roost.ron` does not
/// exist) and its text, without the overrides.
pub fn load_file(path: Option<&Path>) -> Result<(Config, Option<String>), ServeError> {
    let file = config_path(path);
    if path.is_none() && !file.exists() {
        return Ok((Config::default(), None));
    }
    let config = Config::load(&file)?;
    let text = std::fs::read_to_string(&file).ok();
    Ok((config, text))
}

/// The config a headless run uses: the file (or the defaults when no file is given and
/// `roost.ron` does not exist), the command-line overrides, and the broker enabled —
/// `serve` means serve.
pub fn headless_config(
    path: Option<&Path>,
    overrides: &ServeOverrides,
) -> Result<Config, ServeError> {
    let (mut config, _) = load_file(path)?;
    overrides.apply_to(&mut config);
    config.validate()?;
    Ok(config)
}

impl ServeOverrides {
    /// Puts the overrides (and `broker.enabled`) into `config`. They are applied on top of
    /// every configuration the broker runs, and never saved to the file.
    pub fn apply_to(&self, config: &mut Config) {
        let overrides = self;
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
        let tls = &mut config.broker.tls;
        tls.enabled |= overrides.tls;
        tls.require_client_certificate |= overrides.require_client_certificate;
        tls.authorized_only |= overrides.authorized_only;
        tls.trust_any_matching_authorized |= overrides.trust_any_matching_authorized;
        config.broker.require_credentials |= overrides.require_credentials;
        if let Some(acl) = &overrides.acl {
            config.acl = acl.clone();
        }
    }

    /// Reads the topic permissions of `--acl-file`.
    pub fn read_acl_file(&mut self, path: &Path) -> Result<(), ServeError> {
        self.acl = Some(crate::cli::acl::read_acl_file(path)?);
        Ok(())
    }
}

/// Runs the broker on the config file (see [`load_file`]) with `overrides` until SIGINT or
/// SIGTERM, then shuts it down cleanly. The store the configuration asks for is opened
/// first: one that cannot be opened stops the start. The admin socket of the file is opened, so that
/// `roost` can attach; when another broker already answers on it, this one runs without.
pub async fn serve(path: Option<&Path>, overrides: ServeOverrides) -> Result<(), ServeError> {
    // Listen for the signals before saying "listening": a supervisor (or a test) that stops
    // the broker as soon as it listens must get a clean shutdown, not the default action.
    let shutdown = ShutdownSignals::install()?;
    let (config, text) = load_file(path)?;
    // The store the configuration asks for is opened first: one that cannot be opened
    // stops the start.
    let settings = {
        let mut effective = config.clone();
        overrides.apply_to(&mut effective);
        effective.persistence
    };
    let opened = {
        let settings = settings.clone();
        // Opening RocksDB reads files: off the runtime thread.
        tokio::task::spawn_blocking(move || crate::store::open_store(&settings)).await??
    };
    if let Some(recovery) = &opened.recovery {
        warn!("store restored from a backup: {recovery}");
    }
    if settings.enabled && settings.mode != StorageMode::Memory {
        info!(
            mode = settings.mode.cli_name(),
            directory = %crate::store::store_dir(&settings.data_dir).display(),
            "store opened"
        );
    }
    let broker = BrokerHandle::spawn_with_store_for(opened.store, settings);
    broker.set_store_recovery(opened.recovery.map(|r| r.to_string()));
    let apply_overrides: Overrides =
        Arc::new(move |config: &mut Config| overrides.apply_to(config));
    let service = AdminService::new(
        broker.clone(),
        config_path(path),
        config,
        text,
        apply_overrides,
    );
    let report = service.apply_initial().await?;
    let _admin_server = crate::admin::open_socket(&service);
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
    shutdown.wait().await;
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

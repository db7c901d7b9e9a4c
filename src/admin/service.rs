//! The broker's side of administration: the one place that applies a configuration, keeps the
//! applied one, and writes the config file. The in-process console calls it directly; attached
//! consoles and CLI commands reach it through the admin socket ([`super::server`]).
//!
//! Command-line overrides (`roost serve --tcp ...`) are applied on top of every configuration
//! sent to the broker, and never written: the file and the consoles see the configuration
//! without them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{Mutex, watch};
use tracing::{info, warn};

use super::protocol::{AppliedConfig, ApplyOutcome, ApplyRefusal, SaveOutcome};
use super::saving;
use crate::broker::{
    ApplyError, ApplyReport, BrokerHandle, ClientDetail, ClientInfo, StatsSnapshot,
};
use crate::config::{Config, WriteContents, write_and_sync};

/// Changes a configuration before the broker runs it, such as `--tcp ADDR`.
pub type Overrides = Arc<dyn Fn(&mut Config) + Send + Sync>;

pub struct AdminService {
    broker: BrokerHandle,
    config_path: PathBuf,
    overrides: Overrides,
    state: Mutex<FileState>,
    applied: watch::Sender<AppliedConfig>,
    /// How the config file's contents reach the disk: [`write_and_sync`], or in tests a
    /// writer that fails as a full disk does.
    write: Arc<WriteContents>,
}

impl std::fmt::Debug for AdminService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminService")
            .field("config_path", &self.config_path)
            .finish_non_exhaustive()
    }
}

/// What the file held when this process last read or wrote it.
#[derive(Debug)]
struct FileState {
    /// `None` when there was no file.
    text: Option<String>,
}

impl AdminService {
    /// A service over `broker` whose applied configuration is `config`, as read from
    /// `config_path` (`file_text`: the file's text then, `None` when there was no file).
    /// Nothing is applied yet: see [`AdminService::apply_initial`].
    pub fn new(
        broker: BrokerHandle,
        config_path: PathBuf,
        config: Config,
        file_text: Option<String>,
        overrides: Overrides,
    ) -> Arc<AdminService> {
        AdminService::with_writer(
            broker,
            config_path,
            config,
            file_text,
            overrides,
            Arc::new(write_and_sync),
        )
    }

    /// [`AdminService::new`] writing the config file's contents through `write`.
    pub fn with_writer(
        broker: BrokerHandle,
        config_path: PathBuf,
        config: Config,
        file_text: Option<String>,
        overrides: Overrides,
        write: Arc<WriteContents>,
    ) -> Arc<AdminService> {
        let (applied, _) = watch::channel(AppliedConfig {
            config: Box::new(config),
            generation: 0,
        });
        Arc::new(AdminService {
            broker,
            config_path,
            overrides,
            state: Mutex::new(FileState { text: file_text }),
            applied,
            write,
        })
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub fn broker(&self) -> &BrokerHandle {
        &self.broker
    }

    /// Applies the configuration the service was created with, without saving it (it came
    /// from the file). On error the broker runs as before (with nothing listening at start).
    pub async fn apply_initial(&self) -> Result<ApplyReport, ApplyError> {
        let mut running = (*self.applied.borrow().config).clone();
        (self.overrides)(&mut running);
        self.broker.apply(running).await
    }

    /// The data directory the broker runs with: the applied one, or a command-line
    /// override's.
    pub fn running_data_dir(&self) -> PathBuf {
        let mut running = (*self.applied.borrow().config).clone();
        (self.overrides)(&mut running);
        running.persistence.data_dir
    }

    /// The applied configuration, without command-line overrides.
    pub fn applied(&self) -> AppliedConfig {
        self.applied.borrow().clone()
    }

    /// Follows every apply, from whichever console or command.
    pub fn watch_applied(&self) -> watch::Receiver<AppliedConfig> {
        self.applied.subscribe()
    }

    /// Applies `config` and writes it to the config file, once. Refuses without applying when
    /// the file was edited by hand since this process read or wrote it, unless
    /// `overwrite_hand_edits`.
    pub async fn apply(
        &self,
        config: Config,
        overwrite_hand_edits: bool,
    ) -> Result<ApplyOutcome, ApplyRefusal> {
        // One apply at a time: the second waits for the first's save.
        let mut state = self.state.lock().await;
        let path = self.config_path.clone();
        let on_disk = blocking(move || saving::read_if_exists(&path))
            .await
            .unwrap_or_else(|reason| Err(std::io::Error::other(reason)));
        // An unreadable file is not compared: the save reports why it cannot be written.
        let unreadable = on_disk.is_err();
        let on_disk = on_disk.unwrap_or(None);
        if !overwrite_hand_edits && !unreadable && on_disk != state.text {
            return Err(ApplyRefusal::FileChangedByHand {
                path: self.config_path.clone(),
            });
        }
        let mut running = config.clone();
        (self.overrides)(&mut running);
        let report = self
            .broker
            .apply(running)
            .await
            .map_err(|err| ApplyRefusal::Refused(err.to_string()))?;

        let path = self.config_path.clone();
        let to_save = config.clone();
        let write = self.write.clone();
        let saved =
            blocking(move || saving::save_with(&path, &to_save, on_disk.as_deref(), &*write))
                .await
                .unwrap_or_else(|reason| Err(saving::SaveError(reason)));
        let saved = match saved {
            Ok(done) => {
                info!(path = %self.config_path.display(), "configuration saved");
                state.text = Some(done.text);
                SaveOutcome::Saved {
                    path: self.config_path.clone(),
                    comments_copied_to: done.comments_copied_to,
                }
            }
            Err(err) => {
                warn!(path = %self.config_path.display(), error = %err, "configuration applied but not saved");
                SaveOutcome::NotSaved {
                    reason: err.to_string(),
                }
            }
        };
        let mut generation = 0;
        self.applied.send_modify(|applied| {
            applied.generation += 1;
            *applied.config = config;
            generation = applied.generation;
        });
        Ok(ApplyOutcome {
            report,
            generation,
            saved,
        })
    }

    /// Reads the config file again after hand edits and returns it; it becomes the text that
    /// later saves compare against. The broker keeps running as it is.
    pub async fn reload_file(&self) -> Result<Config, String> {
        let mut state = self.state.lock().await;
        let path = self.config_path.clone();
        let (config, text) = blocking(move || saving::load_with_text(&path))
            .await
            .and_then(|r| r)?;
        state.text = Some(text);
        Ok(config)
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.broker.stats()
    }

    pub async fn clients(&self) -> Vec<ClientInfo> {
        self.broker.clients().await
    }

    pub async fn client_detail(&self, client_id: &str) -> Option<ClientDetail> {
        self.broker.client_detail(client_id).await
    }

    pub async fn disconnect(&self, client_id: &str) -> bool {
        let found = self.broker.disconnect_client(client_id).await;
        info!(client_id, found, "disconnect requested by an administrator");
        found
    }

    /// The live diagnostics switch: acts at once and becomes part of the applied
    /// configuration (every console sees it), without being a pending change anywhere. The
    /// file gets it with the next apply.
    pub fn set_diagnostics(&self, on: bool) {
        info!(on, "diagnostics switched by an administrator");
        self.broker.set_diagnostics(on);
        self.applied.send_if_modified(|applied| {
            if applied.config.diagnostics.log_messages == on {
                return false;
            }
            applied.config.diagnostics.log_messages = on;
            applied.generation += 1;
            true
        });
    }
}

/// Runs file work off the runtime threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| err.to_string())
}

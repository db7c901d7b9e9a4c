//! An Apply that changes the persistence settings: the store moves without a restart.
//!
//! The new store is opened before anything changes, so an unusable directory (not
//! writable, locked by another roost, corrupt, disk full, holding another store) refuses the
//! apply with an error naming it, and the broker keeps running on the store it has. The
//! router then moves its state (see `router::store_switch`). A changed data directory also
//! takes the keys and certificates kept there (`certificates/`) along, or the apply is
//! refused; when the store cannot move, they are moved back.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::api::{ApplyChange, ApplyError, ChangeAction};
use super::router::{RouterMsg, StoreSwitch, Switched};
use super::state::BrokerState;
use crate::config::{ConfigError, PersistenceSettings, StorageMode};
use crate::pki::CERTIFICATES_DIR;
use crate::store::{Store, open_store, store_dir};

/// Whether the settings keep their state in memory.
fn in_memory(settings: &PersistenceSettings) -> bool {
    !settings.enabled || settings.mode == StorageMode::Memory
}

/// Whether two persistence settings open the same store: memory whenever persistence is
/// off or in memory mode, otherwise the same mode in the same directory.
pub(super) fn same_store(a: &PersistenceSettings, b: &PersistenceSettings) -> bool {
    match (in_memory(a), in_memory(b)) {
        (true, true) => true,
        (false, false) => a.mode == b.mode && a.data_dir == b.data_dir,
        _ => false,
    }
}

/// What the store is, in words: "Memory" or "Disk (buffered) in roost-data/store".
fn describe(settings: &PersistenceSettings) -> String {
    match in_memory(settings) {
        true => "Memory".into(),
        false => format!(
            "{} in {}",
            settings.mode.label(),
            store_dir(&settings.data_dir).display()
        ),
    }
}

/// Moves the store (and the certificates of a changed data directory) for an apply from
/// `previous` to `wanted`. `initial` is the first apply, whose data directory is where the
/// broker starts: nothing is moved then. Returns what the apply report says.
pub(super) async fn apply(
    shared: &BrokerState,
    router: &mpsc::Sender<RouterMsg>,
    previous: &PersistenceSettings,
    wanted: &PersistenceSettings,
    initial: bool,
) -> Result<Vec<ApplyChange>, ApplyError> {
    let current = shared.store_settings();
    let move_certificates = !initial && previous.data_dir != wanted.data_dir;
    if same_store(&current, wanted) && !move_certificates {
        return Ok(Vec::new());
    }
    let mut changes = Vec::new();
    let moved = match move_certificates {
        true => move_certificates_dir(&previous.data_dir, &wanted.data_dir).await?,
        false => None,
    };
    if let Some(to) = &moved {
        changes.push(updated(format!(
            "keys and certificates (moved to {})",
            to.display()
        )));
    }
    if same_store(&current, wanted) {
        return Ok(changes);
    }
    match switch_store(router, &current, wanted).await {
        Ok(change) => {
            shared.set_store_settings(wanted.clone());
            changes.push(change);
            Ok(changes)
        }
        Err(error) => {
            if moved.is_some()
                && let Err(back) = move_certificates_dir(&wanted.data_dir, &previous.data_dir).await
            {
                tracing::error!(%back, "the certificates could not be moved back");
            }
            Err(error)
        }
    }
}

/// Opens the wanted store (or plans a reopen of the same directory) and has the router
/// move to it.
async fn switch_store(
    router: &mpsc::Sender<RouterMsg>,
    current: &PersistenceSettings,
    wanted: &PersistenceSettings,
) -> Result<ApplyChange, ApplyError> {
    let field = match current.data_dir != wanted.data_dir {
        true => "persistence.data_dir",
        false => "persistence.mode",
    };
    let refuse = |message: String| ApplyError::Invalid(ConfigError::new(field, message));
    let same_directory =
        !in_memory(current) && !in_memory(wanted) && current.data_dir == wanted.data_dir;
    let switch = match same_directory {
        true => StoreSwitch::Reopen {
            from: current.clone(),
            to: wanted.clone(),
        },
        false => StoreSwitch::Copy(open_empty(wanted).await.map_err(refuse)?),
    };
    let (reply, answer) = oneshot::channel();
    router
        .send(RouterMsg::SwitchStore { switch, reply })
        .await
        .map_err(|_| ApplyError::Stopped)?;
    let Switched { sessions, retained } = answer
        .await
        .map_err(|_| ApplyError::Stopped)?
        .map_err(refuse)?;
    let what = format!("{sessions} sessions and {retained} retained messages");
    let subject = match (same_directory, in_memory(current)) {
        (true, _) => format!("store: {} (reopened; {what} kept)", describe(wanted)),
        (false, true) => format!("store: {} ({what} copied from memory)", describe(wanted)),
        (false, false) => format!(
            "store: {} ({what} copied; {} is kept as it was and no longer updated)",
            describe(wanted),
            store_dir(&current.data_dir).display()
        ),
    };
    Ok(updated(subject))
}

/// Opens the store `settings` ask for, off the runtime thread, and checks that it is empty:
/// the broker's state is copied into it, and a store left by an earlier run is not mixed
/// with it (nor replaced).
async fn open_empty(settings: &PersistenceSettings) -> Result<Arc<dyn Store>, String> {
    let settings = settings.clone();
    let described = describe(&settings);
    tokio::task::spawn_blocking(move || {
        let opened = open_store(&settings).map_err(|error| error.to_string())?;
        let snapshot = opened.store.load().map_err(|error| error.to_string())?;
        if !snapshot.sessions.is_empty() || !snapshot.retained.is_empty() {
            return Err(format!(
                "{described} already holds a store ({} sessions, {} retained messages), \
                 perhaps left by an earlier switch: move it away or choose another data \
                 directory",
                snapshot.sessions.len(),
                snapshot.retained.len()
            ));
        }
        Ok(opened.store)
    })
    .await
    .map_err(|error| error.to_string())?
}

/// Moves `from/certificates` to `to/certificates`. Nothing to move: `None`. Refused when
/// the new directory holds certificates already or the move fails (nothing is lost: a
/// failed copy removes what it copied, and the originals stay).
async fn move_certificates_dir(from: &Path, to: &Path) -> Result<Option<PathBuf>, ApplyError> {
    let (source, target) = (from.join(CERTIFICATES_DIR), to.join(CERTIFICATES_DIR));
    let refuse =
        |message: String| ApplyError::Invalid(ConfigError::new("persistence.data_dir", message));
    let moved = tokio::task::spawn_blocking(move || -> Result<Option<PathBuf>, String> {
        let has_entries = |dir: &Path| {
            std::fs::read_dir(dir)
                .map(|mut entries| entries.next().is_some())
                .unwrap_or(false)
        };
        if !has_entries(&source) {
            return Ok(None);
        }
        if has_entries(&target) {
            return Err(format!(
                "{} holds certificates already; the ones in {} would have to replace them: \
                 move one of them away first",
                target.display(),
                source.display()
            ));
        }
        let parent = target.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent)
            .map_err(|error| format!("cannot create {}: {error}", parent.display()))?;
        // An empty directory left in the way is replaced.
        let _ = std::fs::remove_dir(&target);
        match std::fs::rename(&source, &target) {
            Ok(()) => Ok(Some(target)),
            Err(error) if error.kind() == std::io::ErrorKind::CrossesDevices => {
                copy_then_remove(&source, &target)?;
                Ok(Some(target))
            }
            Err(error) => Err(format!(
                "cannot move {} to {}: {error}",
                source.display(),
                target.display()
            )),
        }
    })
    .await
    .map_err(|error| refuse(error.to_string()))?;
    moved.map_err(refuse)
}

/// Another file system: the files are copied with their permissions (keys stay 0600), then
/// the originals removed. The certificates directory holds files only.
fn copy_then_remove(source: &Path, target: &Path) -> Result<(), String> {
    let copy = || -> std::io::Result<()> {
        std::fs::create_dir_all(target)?;
        for entry in std::fs::read_dir(source)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                // `fs::copy` copies the permission bits too.
                std::fs::copy(entry.path(), target.join(entry.file_name()))?;
            }
        }
        Ok(())
    };
    if let Err(error) = copy() {
        let _ = std::fs::remove_dir_all(target);
        return Err(format!(
            "cannot copy {} to {}: {error}",
            source.display(),
            target.display()
        ));
    }
    std::fs::remove_dir_all(source)
        .map_err(|error| format!("copied, but cannot remove {}: {error}", source.display()))
}

fn updated(subject: String) -> ApplyChange {
    ApplyChange {
        subject,
        action: ChangeAction::Updated,
    }
}

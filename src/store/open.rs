//! Opening the store a configuration asks for: memory, or RocksDB in the data directory
//! with the durability of the chosen mode. In the fault-tolerant mode a store that fails
//! to open or to read is moved aside and restored from the latest backup; in the other
//! modes it is refused, and nothing is changed or deleted.

use std::path::{Path, PathBuf};
use std::sync::Arc;

#[cfg(feature = "disk-store")]
use super::backup::{self, Backups};
#[cfg(feature = "disk-store")]
use super::rocks::RocksOpenError;
use super::{MemoryStore, Store};
#[cfg(feature = "disk-store")]
use super::{RocksStore, SyncMode};
use crate::config::{PersistenceSettings, StorageMode};

#[cfg(feature = "disk-store")]
/// How often the fault-tolerant mode takes a backup (and once more on a graceful stop).
pub const BACKUP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(300);

/// The RocksDB directory inside the data directory.
pub fn store_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("store")
}

/// Why the configured store could not be opened. The broker does not start on it, and
/// nothing in the directory is deleted.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create the data directory {path}: {error}")]
    DataDir {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error(
        "{error}. Nothing was changed or deleted. To recover: fix the cause (permissions, \
         disk space, another roost using the directory), restore the directory from a \
         backup, or move {path} away to start with an empty store"
    )]
    Store { path: PathBuf, error: String },
    #[error(
        "{error}, and it cannot be restored from a backup: {restore}. The damaged store \
         is kept in {kept}. To recover: restore the data directory from a copy of your own, \
         or start with an empty store (the damaged one stays where it is)"
    )]
    Unrestorable {
        error: String,
        restore: String,
        kept: PathBuf,
    },
    #[error(
        "this roost was built without the disk store (cargo feature `disk-store`): \
         choose the memory mode or a build with it"
    )]
    NoDiskStore,
}

/// A store restored from a backup when the broker started (fault-tolerant mode).
#[derive(Debug, Clone)]
pub struct Recovery {
    /// What was wrong with the live store.
    pub error: String,
    /// The backup it was restored from: its number and when it was taken.
    pub backup_id: u32,
    pub backup_taken_at: std::time::SystemTime,
    /// Where the damaged store was moved.
    pub damaged_kept_in: PathBuf,
}

impl std::fmt::Display for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let taken = utc(self.backup_taken_at);
        write!(
            f,
            "the store could not be opened ({}); it was restored from backup {} taken at {} \
             (changes after that time are lost); the damaged store is kept in {}",
            self.error,
            self.backup_id,
            taken,
            self.damaged_kept_in.display()
        )
    }
}

/// A store opened for a configuration.
pub struct Opened {
    pub store: Arc<dyn Store>,
    pub recovery: Option<Recovery>,
}

/// Opens the store for `settings`: a memory store when persistence is off or in memory
/// mode, otherwise RocksDB in `<data_dir>/store`. Blocking: call it off the runtime thread.
pub fn open_store(settings: &PersistenceSettings) -> Result<Opened, OpenError> {
    if !settings.enabled || settings.mode == StorageMode::Memory {
        return Ok(Opened {
            store: Arc::new(MemoryStore::new()),
            recovery: None,
        });
    }
    open_disk(settings)
}

#[cfg(not(feature = "disk-store"))]
fn open_disk(_settings: &PersistenceSettings) -> Result<Opened, OpenError> {
    Err(OpenError::NoDiskStore)
}

#[cfg(feature = "disk-store")]
fn open_disk(settings: &PersistenceSettings) -> Result<Opened, OpenError> {
    let sync = match settings.mode {
        StorageMode::Memory | StorageMode::DiskBuffered => SyncMode::Buffered,
        StorageMode::DiskUnbuffered | StorageMode::DiskFaultTolerant => SyncMode::Unbuffered,
    };
    std::fs::create_dir_all(&settings.data_dir).map_err(|error| OpenError::DataDir {
        path: settings.data_dir.clone(),
        error,
    })?;
    let path = store_dir(&settings.data_dir);
    if settings.mode != StorageMode::DiskFaultTolerant {
        let store = RocksStore::open_verified(&path, sync).map_err(|error| OpenError::Store {
            path: path.clone(),
            error: error.to_string(),
        })?;
        return Ok(Opened {
            store: Arc::new(store),
            recovery: None,
        });
    }
    let backups = Arc::new(
        Backups::open(&backup::backup_dir(&settings.data_dir)).map_err(|restore| {
            OpenError::Unrestorable {
                error: format!(
                    "the backup directory of {} cannot be opened",
                    path.display()
                ),
                restore,
                kept: path.clone(),
            }
        })?,
    );
    let (store, recovery) = match RocksStore::open_verified(&path, sync) {
        Ok(store) => (store, None),
        Err(error) if !is_damage(&error) => {
            // Not damage: a newer schema (a backup would be as new), or a store in use by
            // another roost (restoring would pull it from under that one).
            return Err(OpenError::Store {
                path,
                error: error.to_string(),
            });
        }
        Err(error) => {
            let (store, recovery) = restore(&path, sync, &backups, error)?;
            (store, Some(recovery))
        }
    };
    let store = store.with_backups(backups, BACKUP_INTERVAL);
    Ok(Opened {
        store: Arc::new(store),
        recovery,
    })
}

#[cfg(feature = "disk-store")]
/// Whether an opening error means damage to the files (rather than a newer schema or a
/// store locked by another process).
fn is_damage(error: &RocksOpenError) -> bool {
    match error {
        RocksOpenError::NewerSchema { .. } => false,
        RocksOpenError::Open { error, .. } => !error.contains("lock"),
        RocksOpenError::Corrupt { .. } => true,
    }
}

#[cfg(feature = "disk-store")]
/// Moves the damaged store in `path` aside and restores the latest backup in its place.
fn restore(
    path: &Path,
    sync: SyncMode,
    backups: &Backups,
    error: RocksOpenError,
) -> Result<(RocksStore, Recovery), OpenError> {
    let error = error.to_string();
    if backups.latest().is_none() {
        return Err(OpenError::Unrestorable {
            error,
            restore: "there is no backup".into(),
            kept: path.to_path_buf(),
        });
    }
    let damaged = backup::damaged_path(path);
    if let Err(moving) = std::fs::rename(path, &damaged) {
        return Err(OpenError::Unrestorable {
            error,
            restore: format!("it cannot be moved aside: {moving}"),
            kept: path.to_path_buf(),
        });
    }
    let backup = match backups.restore_latest(path) {
        Ok(backup) => backup,
        Err(restore) => {
            return Err(OpenError::Unrestorable {
                error,
                restore,
                kept: damaged,
            });
        }
    };
    match RocksStore::open_verified(path, sync) {
        Ok(store) => Ok((
            store,
            Recovery {
                error,
                backup_id: backup.id,
                backup_taken_at: backup.taken_at,
                damaged_kept_in: damaged,
            },
        )),
        Err(reopen) => Err(OpenError::Unrestorable {
            error,
            restore: format!("the restored store does not open: {reopen}"),
            kept: damaged,
        }),
    }
}

/// `2026-11-26 06:54:36 UTC`.
pub fn utc(time: std::time::SystemTime) -> String {
    let secs = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (the proleptic Gregorian calendar).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn utc_formats_a_wall_clock_time() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_676_076);
        assert_eq!(super::utc(t), "2026-11-26 06:54:36 UTC");
        assert_eq!(super::utc(UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
    }
}

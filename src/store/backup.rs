//! Backups of the disk store for the fault-tolerant mode, with RocksDB's `BackupEngine`:
//! it copies the live files into `<data_dir>/backup` (a checkpoint would hard-link them, so
//! damage to the live files would damage it too) and can verify its copies. A backup is
//! taken on a schedule and on a graceful stop; a store that fails to open or to read is
//! moved aside (never deleted) and restored from the latest backup that verifies.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rocksdb::DB;
use rocksdb::backup::{BackupEngine, BackupEngineOptions, RestoreOptions};

/// How many backups are kept.
const KEEP: usize = 2;

/// The backup directory inside the data directory.
pub fn backup_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("backup")
}

/// A backup: when it was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupInfo {
    pub id: u32,
    pub taken_at: SystemTime,
    pub size: u64,
}

pub struct Backups {
    engine: Mutex<BackupEngine>,
    dir: PathBuf,
}

impl std::fmt::Debug for Backups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backups").field("dir", &self.dir).finish()
    }
}

fn text(error: rocksdb::Error) -> String {
    error.into_string()
}

impl Backups {
    pub fn open(dir: &Path) -> Result<Backups, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let options = BackupEngineOptions::new(dir).map_err(text)?;
        let env = rocksdb::Env::new().map_err(text)?;
        let engine = BackupEngine::open(&options, &env).map_err(text)?;
        Ok(Backups {
            engine: Mutex::new(engine),
            dir: dir.to_path_buf(),
        })
    }

    fn engine(&self) -> std::sync::MutexGuard<'_, BackupEngine> {
        self.engine
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes a backup of `db` (memtables flushed first) and keeps the last few.
    pub fn take(&self, db: &DB) -> Result<Option<BackupInfo>, String> {
        let mut engine = self.engine();
        engine.create_new_backup_flush(db, true).map_err(text)?;
        engine.purge_old_backups(KEEP).map_err(text)?;
        drop(engine);
        Ok(self.latest())
    }

    /// The newest backup, if any.
    pub fn latest(&self) -> Option<BackupInfo> {
        self.engine()
            .get_backup_info()
            .into_iter()
            .max_by_key(|info| info.backup_id)
            .map(|info| BackupInfo {
                id: info.backup_id,
                taken_at: UNIX_EPOCH
                    + Duration::from_secs(u64::try_from(info.timestamp).unwrap_or(0)),
                size: info.size,
            })
    }

    /// Verifies the newest backup and restores it into `store_dir`, which must not exist.
    pub fn restore_latest(&self, store_dir: &Path) -> Result<BackupInfo, String> {
        let latest = self
            .latest()
            .ok_or_else(|| format!("there is no backup in {}", self.dir.display()))?;
        let mut engine = self.engine();
        engine
            .verify_backup(latest.id)
            .map_err(|e| format!("the latest backup does not verify: {}", text(e)))?;
        engine
            .restore_from_latest_backup(store_dir, store_dir, &RestoreOptions::default())
            .map_err(text)?;
        Ok(latest)
    }
}

/// Where a damaged store is moved before a restore: beside it, named by the time.
pub fn damaged_path(store_dir: &Path) -> PathBuf {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = store_dir
        .file_name()
        .map_or_else(|| "store".into(), |n| n.to_string_lossy().into_owned());
    store_dir.with_file_name(format!("{name}.damaged-{secs}"))
}

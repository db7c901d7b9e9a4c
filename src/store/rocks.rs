//! The disk store on RocksDB.
//!
//! Column families: `sessions` (session records and inbound QoS 2 packet ids), `queued`
//! (each session's messages in sequence order, with their delivery stage), `messages` (each
//! payload once, however many sessions queue it), `retained` and `meta` (the schema
//! version). Values use the versioned binary encoding of [`super::encoding`].
//!
//! Durability: [`SyncMode::Buffered`] writes every batch to the write-ahead log without fsync:
//! it survives a process kill, not a power loss, and batches are durable as far as this
//! mode promises as soon as they are written. [`SyncMode::Unbuffered`] buffers the log in memory
//! (`manual_wal_flush`) so that a write never touches the disk; a durability thread of its
//! own writes and fsyncs the log (`flush_wal(true)`) covering every batch written so far and
//! publishes "durable up to N": the router sends the acknowledgements waiting for those
//! batches, and every publisher waiting at the same moment shares one fsync.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use rocksdb::{ColumnFamilyDescriptor, DB, Options, WriteBatch, WriteOptions};
use tokio::sync::watch;

use super::backup::{BackupInfo, Backups};
use super::encoding::{self, QueuedValue};
use super::{QueuedRecord, Snapshot, Store, StoreError, StoreOp, StoreSizes, StoredSession};
use crate::model::Message;

/// The schema this build writes; a store with a newer one is refused.
pub const SCHEMA_VERSION: u32 = 1;

const SESSIONS: &str = "sessions";
const QUEUED: &str = "queued";
const MESSAGES: &str = "messages";
const RETAINED: &str = "retained";
const META: &str = "meta";
const FAMILIES: [&str; 5] = [SESSIONS, QUEUED, MESSAGES, RETAINED, META];
const SCHEMA_KEY: &[u8] = b"schema";

/// When a batch counts as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// Written to the log without fsync (disk, buffered).
    Buffered,
    /// Fsynced by the durability thread, acknowledgements wait for it (disk, unbuffered).
    Unbuffered,
}

fn rocks(error: rocksdb::Error) -> StoreError {
    StoreError::Rocks(error.into_string())
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum RocksOpenError {
    #[error("cannot open the store in {path}: {error}")]
    Open { path: PathBuf, error: String },
    #[error(
        "the store in {path} has schema version {found}, newer than this roost understands \
         ({SCHEMA_VERSION}): run the newer roost, or move the directory away to start empty"
    )]
    NewerSchema { path: PathBuf, found: u32 },
    #[error("the store in {path} is unreadable: {error}")]
    Corrupt { path: PathBuf, error: StoreError },
}

/// A message the store holds for some queued records: its id in `messages`, how many
/// records reference it, and the message itself (held so that its address, the map's key,
/// cannot be reused by another message while the entry exists).
struct Referenced {
    id: u64,
    count: u64,
    _message: Arc<Message>,
}

struct WriteState {
    sequence: u64,
    next_message_id: u64,
    references: HashMap<usize, Referenced>,
}

/// What the writer and the durability thread share.
struct Durability {
    /// The highest sequence written, and whether the thread should stop.
    written: Mutex<(u64, bool)>,
    wake: Condvar,
    durable: watch::Sender<u64>,
}

/// Tells a thread to stop: the flag, and the condition variable it waits on.
type StopSignal = (Mutex<bool>, Condvar);

pub struct RocksStore {
    db: Arc<DB>,
    path: PathBuf,
    sync: SyncMode,
    state: Mutex<WriteState>,
    durability: Arc<Durability>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// What opening read to check the store, handed to the first `load`.
    preloaded: Mutex<Option<Snapshot>>,
    /// Fault-tolerant mode: the backups, and the thread that takes them on a schedule.
    backups: Option<Arc<Backups>>,
    backup_thread: Mutex<Option<(Arc<StopSignal>, JoinHandle<()>)>>,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore")
            .field("path", &self.path)
            .field("sync", &self.sync)
            .finish()
    }
}

fn options(sync: SyncMode, fresh: bool) -> Options {
    let mut options = Options::default();
    // Only an empty or new directory becomes a new store: a store that lost its CURRENT
    // file must be refused, not silently replaced by an empty one.
    options.create_if_missing(fresh);
    options.create_missing_column_families(true);
    options.set_paranoid_checks(true);
    // Unbuffered: the log stays in memory until the durability thread writes and syncs it.
    options.set_manual_wal_flush(sync == SyncMode::Unbuffered);
    options.set_keep_log_file_num(4);
    options.set_max_total_wal_size(64 << 20);
    options
}

/// Opens the database in `path` with every column family, creating it when missing.
pub(super) fn open_db(path: &Path, sync: SyncMode) -> Result<DB, RocksOpenError> {
    let fresh = match std::fs::read_dir(path) {
        Ok(mut entries) => entries.next().is_none(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => true,
        Err(error) => {
            return Err(RocksOpenError::Open {
                path: path.to_path_buf(),
                error: error.to_string(),
            });
        }
    };
    let descriptors = FAMILIES
        .iter()
        .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
    DB::open_cf_descriptors(&options(sync, fresh), path, descriptors).map_err(|error| {
        RocksOpenError::Open {
            path: path.to_path_buf(),
            error: error.into_string(),
        }
    })
}

impl RocksStore {
    /// Opens (or creates) the store in `path`; refuses a newer schema.
    pub fn open(path: &Path, sync: SyncMode) -> Result<RocksStore, RocksOpenError> {
        let db = open_db(path, sync)?;
        let corrupt = |error| RocksOpenError::Corrupt {
            path: path.to_path_buf(),
            error,
        };
        let meta = db
            .cf_handle(META)
            .ok_or_else(|| corrupt(StoreError::Corrupt("no meta family".into())))?;
        match db.get_cf(meta, SCHEMA_KEY).map_err(|e| corrupt(rocks(e)))? {
            Some(value) => {
                let found = encoding::decode_schema(&value).map_err(corrupt)?;
                if found > SCHEMA_VERSION {
                    return Err(RocksOpenError::NewerSchema {
                        path: path.to_path_buf(),
                        found,
                    });
                }
            }
            None => {
                let mut write = WriteOptions::default();
                write.set_sync(true);
                db.put_cf_opt(
                    meta,
                    SCHEMA_KEY,
                    encoding::encode_schema(SCHEMA_VERSION),
                    &write,
                )
                .map_err(|e| corrupt(rocks(e)))?;
            }
        }
        let db = Arc::new(db);
        let durability = Arc::new(Durability {
            written: Mutex::new((0, false)),
            wake: Condvar::new(),
            durable: watch::Sender::new(0),
        });
        let thread = match sync {
            SyncMode::Buffered => None,
            SyncMode::Unbuffered => {
                let db = db.clone();
                let durability = durability.clone();
                let spawned = std::thread::Builder::new()
                    .name("roost-store-sync".into())
                    .spawn(move || durability_thread(&db, &durability))
                    .map_err(|e| corrupt(StoreError::Io(e)))?;
                Some(spawned)
            }
        };
        Ok(RocksStore {
            db,
            path: path.to_path_buf(),
            sync,
            state: Mutex::new(WriteState {
                sequence: 0,
                next_message_id: 1,
                references: HashMap::new(),
            }),
            durability,
            thread: Mutex::new(thread),
            preloaded: Mutex::new(None),
            backups: None,
            backup_thread: Mutex::new(None),
        })
    }

    /// Opens the store and reads all of it, so that damage shows now rather than later.
    pub fn open_verified(path: &Path, sync: SyncMode) -> Result<RocksStore, RocksOpenError> {
        let store = RocksStore::open(path, sync)?;
        let snapshot = store.load().map_err(|error| RocksOpenError::Corrupt {
            path: path.to_path_buf(),
            error,
        })?;
        *store
            .preloaded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(snapshot);
        Ok(store)
    }

    /// Takes backups into `backups` every `interval` and on a graceful stop.
    pub fn with_backups(mut self, backups: Arc<Backups>, interval: Duration) -> RocksStore {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let thread = {
            let stop = stop.clone();
            let backups = backups.clone();
            let db = self.db.clone();
            std::thread::Builder::new()
                .name("roost-store-backup".into())
                .spawn(move || backup_thread(&db, &backups, &stop, interval))
        };
        match thread {
            Ok(thread) => {
                *self
                    .backup_thread
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((stop, thread));
            }
            Err(error) => tracing::error!(%error, "store: cannot start the backup thread"),
        }
        self.backups = Some(backups);
        self
    }

    /// The newest backup (fault-tolerant mode).
    pub fn latest_backup(&self) -> Option<BackupInfo> {
        self.backups.as_ref().and_then(|b| b.latest())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn db(&self) -> &DB {
        &self.db
    }

    fn lock(&self) -> MutexGuard<'_, WriteState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn family(&self, name: &str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StoreError::Corrupt(format!("column family {name} missing")))
    }

    fn family_size(&self, name: &str) -> u64 {
        let Ok(family) = self.family(name) else {
            return 0;
        };
        [
            rocksdb::properties::TOTAL_SST_FILES_SIZE,
            rocksdb::properties::CUR_SIZE_ALL_MEM_TABLES,
        ]
        .into_iter()
        .filter_map(|property| {
            self.db
                .property_int_value_cf(family, property)
                .ok()
                .flatten()
        })
        .sum()
    }

    /// Stops the backup thread.
    fn stop_backups(&self) {
        let taken = self
            .backup_thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some((stop, thread)) = taken {
            *stop
                .0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
            stop.1.notify_all();
            let _ = thread.join();
        }
    }

    /// Stops the durability thread after a last fsync.
    fn stop(&self) {
        if let Ok(mut written) = self.durability.written.lock() {
            written.1 = true;
        }
        self.durability.wake.notify_all();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for RocksStore {
    fn drop(&mut self) {
        self.stop_backups();
        self.stop();
        if let Err(error) = self.db.flush_wal(true) {
            tracing::warn!(error = %error.into_string(), "store: last log sync failed");
        }
    }
}

/// Takes a backup every `interval` until told to stop.
fn backup_thread(db: &DB, backups: &Backups, stop: &(Mutex<bool>, Condvar), interval: Duration) {
    loop {
        let stopped = stop
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (stopped, _) = stop
            .1
            .wait_timeout_while(stopped, interval, |stopped| !*stopped)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *stopped {
            return;
        }
        drop(stopped);
        match backups.take(db) {
            Ok(info) => tracing::debug!(?info, "store: backup taken"),
            Err(error) => tracing::error!(%error, "store: backup failed"),
        }
    }
}

/// Makes batches durable as they are written: one fsync covers every batch written before
/// it started (group commit).
fn durability_thread(db: &DB, durability: &Durability) {
    let mut synced = 0;
    loop {
        let (target, stopping) = {
            let mut written = durability
                .written
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            while written.0 <= synced && !written.1 {
                written = durability
                    .wake
                    .wait(written)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            *written
        };
        if target > synced {
            match db.flush_wal(true) {
                Ok(()) => {
                    synced = target;
                    durability.durable.send_replace(target);
                }
                Err(error) => {
                    // The acknowledgements keep waiting; the next attempt covers them.
                    tracing::error!(error = %error.into_string(), "store: log sync failed");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
        }
        if stopping {
            return;
        }
    }
}

/// Reference changes of one batch, applied once it is written.
#[derive(Default)]
struct Overlay {
    changes: HashMap<usize, (u64, i64, Option<Arc<Message>>)>,
}

impl Overlay {
    fn count(&self, state: &WriteState, key: usize) -> (Option<u64>, i64) {
        let base = state.references.get(&key);
        let change = self.changes.get(&key);
        let id = change.map(|c| c.0).or(base.map(|b| b.id));
        let count = base.map_or(0, |b| b.count as i64) + change.map_or(0, |c| c.1);
        (id, count)
    }
}

impl RocksStore {
    fn build_batch(
        &self,
        state: &mut WriteState,
        ops: &[StoreOp],
        overlay: &mut Overlay,
    ) -> Result<WriteBatch, StoreError> {
        let sessions = self.family(SESSIONS)?;
        let queued = self.family(QUEUED)?;
        let messages = self.family(MESSAGES)?;
        let retained = self.family(RETAINED)?;
        let mut batch = WriteBatch::default();
        for op in ops {
            match op {
                StoreOp::PutSession(record) => {
                    batch.put_cf(
                        sessions,
                        encoding::session_key(&record.client_id),
                        encoding::encode_session(record)?,
                    );
                }
                StoreOp::RemoveSession {
                    client_id,
                    messages: held,
                } => {
                    let prefix = encoding::session_prefix(client_id);
                    let end = encoding::prefix_end(&prefix);
                    batch.delete_range_cf(sessions, &prefix, &end);
                    batch.delete_range_cf(queued, &prefix, &end);
                    for message in held {
                        release(state, overlay, &mut batch, messages, message);
                    }
                }
                StoreOp::PushMessage { client_id, record } => {
                    let key = Arc::as_ptr(&record.message) as usize;
                    let (id, count) = overlay.count(state, key);
                    let id = match id.filter(|_| count > 0) {
                        Some(id) => id,
                        None => {
                            let id = state.next_message_id;
                            state.next_message_id += 1;
                            batch.put_cf(
                                messages,
                                id.to_be_bytes(),
                                encoding::encode_message(&record.message)?,
                            );
                            id
                        }
                    };
                    let entry = overlay.changes.entry(key).or_insert((id, 0, None));
                    entry.0 = id;
                    entry.1 += 1;
                    entry.2 = Some(record.message.clone());
                    batch.put_cf(
                        queued,
                        encoding::queued_key(client_id, record.sequence, encoding::KIND_MESSAGE),
                        encoding::encode_queued(&QueuedValue {
                            message_id: id,
                            qos: record.qos,
                            retain: record.retain,
                            subscription_ids: &record.subscription_ids,
                            share: record.share.as_deref(),
                        }),
                    );
                    if let Some(stage) = record.stage {
                        batch.put_cf(
                            queued,
                            encoding::queued_key(client_id, record.sequence, encoding::KIND_STAGE),
                            encoding::encode_stage(stage),
                        );
                    }
                }
                StoreOp::SetStage {
                    client_id,
                    sequence,
                    stage,
                } => {
                    batch.put_cf(
                        queued,
                        encoding::queued_key(client_id, *sequence, encoding::KIND_STAGE),
                        encoding::encode_stage(*stage),
                    );
                }
                StoreOp::RemoveMessage {
                    client_id,
                    sequence,
                    message,
                } => {
                    batch.delete_cf(
                        queued,
                        encoding::queued_key(client_id, *sequence, encoding::KIND_MESSAGE),
                    );
                    batch.delete_cf(
                        queued,
                        encoding::queued_key(client_id, *sequence, encoding::KIND_STAGE),
                    );
                    release(state, overlay, &mut batch, messages, message);
                }
                StoreOp::SetRetained { topic, message } => match message {
                    Some(message) => batch.put_cf(
                        retained,
                        topic.as_bytes(),
                        encoding::encode_message(message)?,
                    ),
                    None => batch.delete_cf(retained, topic.as_bytes()),
                },
                StoreOp::AddInbound {
                    client_id,
                    packet_id,
                } => batch.put_cf(
                    sessions,
                    encoding::inbound_key(client_id, *packet_id),
                    [encoding::FORMAT],
                ),
                StoreOp::RemoveInbound {
                    client_id,
                    packet_id,
                } => batch.delete_cf(sessions, encoding::inbound_key(client_id, *packet_id)),
            }
        }
        Ok(batch)
    }
}

/// Drops one reference to `message`; the payload goes with the last one.
fn release(
    state: &WriteState,
    overlay: &mut Overlay,
    batch: &mut WriteBatch,
    messages: &rocksdb::ColumnFamily,
    message: &Arc<Message>,
) {
    let key = Arc::as_ptr(message) as usize;
    let (id, count) = overlay.count(state, key);
    let Some(id) = id else {
        // Never stored (queued while the session was not persistent).
        return;
    };
    if count <= 0 {
        return;
    }
    let entry = overlay.changes.entry(key).or_insert((id, 0, None));
    entry.1 -= 1;
    if count == 1 {
        batch.delete_cf(messages, id.to_be_bytes());
    }
}

impl Store for RocksStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        let preloaded = self
            .preloaded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(snapshot) = preloaded {
            return Ok(snapshot);
        }
        let mut state = self.lock();
        let mut by_client: HashMap<Arc<str>, StoredSession> = HashMap::new();
        let mut inbound: HashMap<Arc<str>, Vec<u16>> = HashMap::new();
        for item in self
            .db
            .iterator_cf(self.family(SESSIONS)?, rocksdb::IteratorMode::Start)
        {
            let (key, value) = item.map_err(rocks)?;
            let (client_id, rest) = encoding::split_session_key(&key)?;
            match rest {
                [encoding::KIND_RECORD] => {
                    let record = encoding::decode_session(client_id.clone(), &value)?;
                    by_client.insert(
                        client_id,
                        StoredSession {
                            record,
                            queued: Vec::new(),
                            inbound_qos2: Vec::new(),
                        },
                    );
                }
                [encoding::KIND_INBOUND, a, b] => {
                    inbound
                        .entry(client_id)
                        .or_default()
                        .push(u16::from_be_bytes([*a, *b]));
                }
                _ => return Err(StoreError::Corrupt("unknown session key".into())),
            }
        }
        for (client_id, ids) in inbound {
            if let Some(session) = by_client.get_mut(&client_id) {
                session.inbound_qos2 = ids;
            }
        }
        let mut messages: HashMap<u64, Arc<Message>> = HashMap::new();
        let mut max_id = 0;
        for item in self
            .db
            .iterator_cf(self.family(MESSAGES)?, rocksdb::IteratorMode::Start)
        {
            let (key, value) = item.map_err(rocks)?;
            let id = u64::from_be_bytes(
                <[u8; 8]>::try_from(&key[..])
                    .map_err(|_| StoreError::Corrupt("message key".into()))?,
            );
            max_id = max_id.max(id);
            messages.insert(id, Arc::new(encoding::decode_message(&value)?));
        }
        state.next_message_id = max_id + 1;
        state.references.clear();
        let mut orphans = WriteBatch::default();
        let queued_family = self.family(QUEUED)?;
        for item in self
            .db
            .iterator_cf(queued_family, rocksdb::IteratorMode::Start)
        {
            let (key, value) = item.map_err(rocks)?;
            let (client_id, rest) = encoding::split_session_key(&key)?;
            let [s0, s1, s2, s3, s4, s5, s6, s7, kind] = rest else {
                return Err(StoreError::Corrupt("queued key".into()));
            };
            let sequence = u64::from_be_bytes([*s0, *s1, *s2, *s3, *s4, *s5, *s6, *s7]);
            let Some(session) = by_client.get_mut(&client_id) else {
                // A queue whose session record is gone (removed by a range delete that a
                // crash interrupted cannot happen: batches are atomic; kept defensive).
                orphans.delete_cf(queued_family, &key);
                continue;
            };
            match *kind {
                encoding::KIND_MESSAGE => {
                    let decoded = encoding::decode_queued(&value)?;
                    let Some(message) = messages.get(&decoded.message_id) else {
                        return Err(StoreError::Corrupt(format!(
                            "queued message {sequence} of {client_id} references a missing payload"
                        )));
                    };
                    let entry = state
                        .references
                        .entry(Arc::as_ptr(message) as usize)
                        .or_insert(Referenced {
                            id: decoded.message_id,
                            count: 0,
                            _message: message.clone(),
                        });
                    entry.count += 1;
                    session.queued.push(QueuedRecord {
                        sequence,
                        message: message.clone(),
                        qos: decoded.qos,
                        retain: decoded.retain,
                        subscription_ids: decoded.subscription_ids,
                        share: decoded.share,
                        stage: None,
                    });
                }
                encoding::KIND_STAGE => {
                    let stage = encoding::decode_stage(&value)?;
                    match session.queued.last_mut() {
                        Some(last) if last.sequence == sequence => last.stage = Some(stage),
                        // The stage of a message never stored (queued before its session
                        // became persistent).
                        _ => orphans.delete_cf(queued_family, &key),
                    }
                }
                _ => return Err(StoreError::Corrupt("queued key kind".into())),
            }
        }
        // Payloads no queued record references any more.
        let messages_family = self.family(MESSAGES)?;
        let referenced: std::collections::HashSet<u64> =
            state.references.values().map(|r| r.id).collect();
        for id in messages.keys().filter(|id| !referenced.contains(id)) {
            orphans.delete_cf(messages_family, id.to_be_bytes());
        }
        if !orphans.is_empty() {
            self.db.write(orphans).map_err(rocks)?;
        }
        let mut retained = Vec::new();
        for item in self
            .db
            .iterator_cf(self.family(RETAINED)?, rocksdb::IteratorMode::Start)
        {
            let (_, value) = item.map_err(rocks)?;
            retained.push(Arc::new(encoding::decode_message(&value)?));
        }
        Ok(Snapshot {
            sessions: by_client.into_values().collect(),
            retained,
        })
    }

    fn write(&self, ops: &[StoreOp]) -> Result<u64, StoreError> {
        let mut state = self.lock();
        let mut overlay = Overlay::default();
        let next_message_id = state.next_message_id;
        let batch = match self.build_batch(&mut state, ops, &mut overlay) {
            Ok(batch) => batch,
            Err(error) => {
                state.next_message_id = next_message_id;
                return Err(error);
            }
        };
        if let Err(error) = self.db.write_opt(batch, &WriteOptions::default()) {
            state.next_message_id = next_message_id;
            return Err(rocks(error));
        }
        for (key, (id, change, message)) in overlay.changes {
            match state.references.get_mut(&key) {
                Some(slot) => {
                    slot.id = id;
                    slot.count = slot.count.saturating_add_signed(change);
                    if slot.count == 0 {
                        state.references.remove(&key);
                    }
                }
                None => {
                    // Pushed in this batch (only pushes carry the message).
                    if let (Some(message), Ok(count @ 1..)) = (message, u64::try_from(change)) {
                        state.references.insert(
                            key,
                            Referenced {
                                id,
                                count,
                                _message: message,
                            },
                        );
                    }
                }
            }
        }
        state.sequence += 1;
        let sequence = state.sequence;
        drop(state);
        match self.sync {
            SyncMode::Buffered => {
                self.durability.durable.send_replace(sequence);
            }
            SyncMode::Unbuffered => {
                let mut written = self
                    .durability
                    .written
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                written.0 = written.0.max(sequence);
                drop(written);
                self.durability.wake.notify_one();
            }
        }
        Ok(sequence)
    }

    fn survives_restart(&self) -> bool {
        true
    }

    fn acks_wait_for_sync(&self) -> bool {
        self.sync == SyncMode::Unbuffered
    }

    fn durable(&self) -> watch::Receiver<u64> {
        self.durability.durable.subscribe()
    }

    fn sync_now(&self) -> Result<(), StoreError> {
        let written = self.lock().sequence;
        self.db.flush_wal(true).map_err(rocks)?;
        self.durability.durable.send_if_modified(|durable| {
            let moved = written > *durable;
            *durable = (*durable).max(written);
            moved
        });
        Ok(())
    }

    fn graceful_stop(&self) -> Result<(), StoreError> {
        self.sync_now()?;
        if let Some(backups) = &self.backups {
            self.stop_backups();
            let info = backups.take(&self.db).map_err(StoreError::Rocks)?;
            tracing::info!(?info, "store: backup taken on stop");
        }
        Ok(())
    }

    fn sizes(&self) -> StoreSizes {
        StoreSizes {
            sessions: self.family_size(SESSIONS),
            queued: self.family_size(QUEUED) + self.family_size(MESSAGES),
            retained: self.family_size(RETAINED),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use bytes::Bytes;

    use super::*;
    use crate::mqtt::{Properties, ProtocolVersion, Publish, QoS};
    use crate::store::{SessionRecord, Stage};

    fn message(payload: &'static [u8]) -> Arc<Message> {
        let publish = Publish {
            dup: false,
            qos: QoS::ExactlyOnce,
            retain: false,
            topic: Arc::from("t"),
            packet_id: None,
            properties: Properties::default(),
            payload: Bytes::from_static(payload),
        };
        Arc::new(Message::new(publish, Instant::now()))
    }

    fn push(client: &Arc<str>, sequence: u64, message: &Arc<Message>) -> StoreOp {
        StoreOp::PushMessage {
            client_id: client.clone(),
            record: QueuedRecord {
                sequence,
                message: message.clone(),
                qos: QoS::ExactlyOnce,
                retain: false,
                subscription_ids: vec![3],
                share: None,
                stage: None,
            },
        }
    }

    fn count(store: &RocksStore, family: &str) -> usize {
        store
            .db
            .iterator_cf(store.family(family).unwrap(), rocksdb::IteratorMode::Start)
            .count()
    }

    #[test]
    fn a_payload_queued_for_two_sessions_is_stored_once_and_removed_with_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path(), SyncMode::Buffered).unwrap();
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        let shared = message(b"shared");
        store
            .write(&[
                StoreOp::PutSession(Box::new(SessionRecord::new(a.clone(), ProtocolVersion::V5))),
                StoreOp::PutSession(Box::new(SessionRecord::new(
                    b.clone(),
                    ProtocolVersion::V3_1_1,
                ))),
                push(&a, 1, &shared),
                push(&b, 1, &shared),
            ])
            .unwrap();
        assert_eq!(count(&store, MESSAGES), 1, "one payload for two references");
        store
            .write(&[StoreOp::SetStage {
                client_id: a.clone(),
                sequence: 1,
                stage: Stage {
                    packet_id: 7,
                    released: true,
                },
            }])
            .unwrap();
        store
            .write(&[StoreOp::RemoveMessage {
                client_id: b.clone(),
                sequence: 1,
                message: shared.clone(),
            }])
            .unwrap();
        assert_eq!(count(&store, MESSAGES), 1, "still referenced by a");
        drop(store);

        // Reopened: the references are counted again from the queues.
        let store = RocksStore::open(dir.path(), SyncMode::Buffered).unwrap();
        let snapshot = store.load().unwrap();
        let session_a = snapshot
            .sessions
            .iter()
            .find(|s| &*s.record.client_id == "a")
            .unwrap();
        assert_eq!(session_a.queued.len(), 1);
        assert_eq!(&session_a.queued[0].message.publish.payload[..], b"shared");
        assert_eq!(
            session_a.queued[0].stage,
            Some(Stage {
                packet_id: 7,
                released: true
            })
        );
        assert_eq!(session_a.queued[0].subscription_ids, [3]);
        let restored = session_a.queued[0].message.clone();
        store
            .write(&[StoreOp::RemoveSession {
                client_id: a,
                messages: vec![restored],
            }])
            .unwrap();
        assert_eq!(count(&store, MESSAGES), 0, "the last reference took it");
        assert_eq!(count(&store, QUEUED), 0);
        assert_eq!(store.load().unwrap().sessions.len(), 1, "b stays");
    }

    #[test]
    fn a_newer_schema_is_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path(), SyncMode::Buffered).unwrap();
        let meta = store.family(META).unwrap();
        store
            .db
            .put_cf(
                meta,
                SCHEMA_KEY,
                encoding::encode_schema(SCHEMA_VERSION + 1),
            )
            .unwrap();
        drop(store);
        let error = RocksStore::open(dir.path(), SyncMode::Buffered).unwrap_err();
        assert!(
            matches!(error, RocksOpenError::NewerSchema { found, .. } if found == SCHEMA_VERSION + 1)
        );
        assert!(
            error
                .to_string()
                .contains("newer than this roost understands")
        );
    }

    #[test]
    fn a_directory_that_lost_its_current_file_is_not_replaced_by_an_empty_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path(), SyncMode::Buffered).unwrap();
        store
            .write(&[StoreOp::PutSession(Box::new(SessionRecord::new(
                Arc::from("c"),
                ProtocolVersion::V5,
            )))])
            .unwrap();
        drop(store);
        std::fs::remove_file(dir.path().join("CURRENT")).unwrap();
        assert!(RocksStore::open(dir.path(), SyncMode::Buffered).is_err());
        assert!(!dir.path().join("CURRENT").exists(), "nothing created");
    }

    #[tokio::test]
    async fn unbuffered_batches_become_durable_through_the_sync_thread() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path(), SyncMode::Unbuffered).unwrap();
        assert!(store.acks_wait_for_sync());
        let mut durable = store.durable();
        let client: Arc<str> = Arc::from("c");
        let mut last = 0;
        for i in 0..50 {
            last = store.write(&[push(&client, i, &message(b"m"))]).unwrap();
        }
        // One or a few fsyncs cover all fifty (group commit).
        let reached = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            durable.wait_for(|n| *n >= last),
        )
        .await;
        assert!(matches!(reached, Ok(Ok(_))), "durable up to {last}");
    }
}

//! The disk store on RocksDB.
//!
//! Column families: `sessions` (session records and inbound QoS 2 packet ids), `queued`
//! (each session's messages in sequence order, with their delivery stage), `messages` (each
//! payload once, however many sessions queue it), `retained` and `meta` (the schema
//! version). Values use the versioned binary encoding of [`super::encoding`].
//!
//! Durability: the log is buffered in memory (`manual_wal_flush`), so that a write never
//! touches the disk. At the end of each router turn ([`Store::end_turn`]) a durability
//! thread of the store's own writes the log out, covering every batch written so far, and
//! publishes "durable up to N"; the router then sends the acknowledgements waiting for
//! those batches. [`SyncMode::Buffered`] writes without fsync (`flush_wal(false)`): it
//! survives a process kill, not a power loss. [`SyncMode::Unbuffered`] fsyncs
//! (`flush_wal(true)`): every publisher waiting at the same moment shares one fsync.
//!
//! Queues: the waiting messages of a session stay here only ([`Store::keeps_queues`]);
//! `load` brings back the messages in flight and counts the others, which the router reads
//! back with [`Store::read_queued`] as the client drains its queue. Payload references are
//! counted in memory only for payloads referenced twice or more.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use rocksdb::{ColumnFamilyDescriptor, DB, Options, WriteBatch, WriteOptions};
use tokio::sync::watch;

use super::backup::{BackupInfo, Backups};
use super::encoding::{self, QueuedValue};
use super::{
    ExpiredScan, QueueRange, QueuedRecord, Snapshot, Spilled, Store, StoreError, StoreOp,
    StoreSizes, StoredSession,
};
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

/// What the writer keeps between batches.
struct WriteState {
    sequence: u64,
    /// Payloads referenced by two or more queued records, with their count. A payload with
    /// one reference has no entry: most messages go to one session, and a million of them
    /// queued for offline sessions cost nothing here.
    shared: HashMap<u64, u32>,
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

/// Memory RocksDB may use for its write buffers (all column families together) and its
/// block cache: what the store costs in RSS however much it holds, so that queues kept on
/// disk stay off the heap.
const WRITE_BUFFERS: usize = 32 << 20;
const FAMILY_WRITE_BUFFER: usize = 16 << 20;
const BLOCK_CACHE: usize = 8 << 20;

fn options(fresh: bool) -> Options {
    let mut options = Options::default();
    // Only an empty or new directory becomes a new store: a store that lost its CURRENT
    // file must be refused, not silently replaced by an empty one.
    options.create_if_missing(fresh);
    options.create_missing_column_families(true);
    options.set_paranoid_checks(true);
    // The log stays in memory until it is written out: once per router turn (buffered,
    // `Store::end_turn`) or by the durability thread with an fsync (unbuffered), so that
    // a turn's batches cost one write, not one each.
    options.set_manual_wal_flush(true);
    options.set_keep_log_file_num(4);
    options.set_max_total_wal_size(64 << 20);
    options.set_db_write_buffer_size(WRITE_BUFFERS);
    options
}

fn family_options(cache: &rocksdb::Cache) -> Options {
    let mut options = Options::default();
    options.set_write_buffer_size(FAMILY_WRITE_BUFFER);
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_block_cache(cache);
    options.set_block_based_table_factory(&table);
    options
}

/// Opens the database in `path` with every column family, creating it when missing.
pub(super) fn open_db(path: &Path) -> Result<DB, RocksOpenError> {
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
    let cache = rocksdb::Cache::new_lru_cache(BLOCK_CACHE);
    let descriptors = FAMILIES
        .iter()
        .map(|name| ColumnFamilyDescriptor::new(*name, family_options(&cache)));
    DB::open_cf_descriptors(&options(fresh), path, descriptors).map_err(|error| {
        RocksOpenError::Open {
            path: path.to_path_buf(),
            error: error.into_string(),
        }
    })
}

impl RocksStore {
    /// Opens (or creates) the store in `path`; refuses a newer schema.
    pub fn open(path: &Path, sync: SyncMode) -> Result<RocksStore, RocksOpenError> {
        let db = open_db(path)?;
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
        let thread = {
            let db = db.clone();
            let durability = durability.clone();
            std::thread::Builder::new()
                .name("roost-store-log".into())
                .spawn(move || durability_thread(&db, &durability, sync))
                .map_err(|e| corrupt(StoreError::Io(e)))?
        };
        Ok(RocksStore {
            db,
            path: path.to_path_buf(),
            sync,
            state: Mutex::new(WriteState {
                sequence: 0,
                shared: HashMap::new(),
            }),
            durability,
            thread: Mutex::new(Some(thread)),
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

/// Writes the log out as router turns end, off the runtime thread, and reports the batches
/// durable: with an fsync in the unbuffered modes (one covers every batch written before
/// it started: group commit), without one in the buffered mode (what is written survives a
/// process kill).
fn durability_thread(db: &DB, durability: &Durability, sync: SyncMode) {
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
            match db.flush_wal(sync == SyncMode::Unbuffered) {
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

/// What one batch changes about payload references, applied once it is written.
#[derive(Default)]
struct Overlay {
    /// Payloads first stored by this batch.
    fresh: HashSet<u64>,
    /// Reference count changes.
    delta: HashMap<u64, i64>,
    /// Whether the batches hold a session removal: only then are `pushed` and `removed`
    /// kept (the common batch, a message pushed or removed, needs neither).
    removes_sessions: bool,
    /// Records pushed by these batches, per client, as (sequence, payload): a session
    /// removed later releases them too.
    pushed: HashMap<Arc<str>, Vec<(u64, u64)>>,
    /// Records removed by these batches, as (client, sequence), which a session removal
    /// that follows must not release again.
    removed: HashSet<(Arc<str>, u64)>,
}

impl Overlay {
    /// How many records reference `payload`, this batch included. A payload the router has
    /// never pushed counts as one: removing such a record deletes a key that is not there.
    fn count(&self, state: &WriteState, payload: u64) -> i64 {
        let base = if self.fresh.contains(&payload) {
            0
        } else {
            state
                .shared
                .get(&payload)
                .map_or(1, |count| i64::from(*count))
        };
        base + self.delta.get(&payload).copied().unwrap_or(0)
    }

    /// Applies the batch's changes once it is written.
    fn apply(self, state: &mut WriteState) {
        for (payload, _) in self.delta.iter() {
            let count = self.count(state, *payload);
            match u32::try_from(count) {
                Ok(count @ 2..) => {
                    state.shared.insert(*payload, count);
                }
                _ => {
                    state.shared.remove(payload);
                }
            }
        }
    }
}

impl RocksStore {
    fn build_batch(
        &self,
        state: &WriteState,
        ops: &[StoreOp],
        overlay: &mut Overlay,
    ) -> Result<WriteBatch, StoreError> {
        let sessions = self.family(SESSIONS)?;
        let queued = self.family(QUEUED)?;
        let messages = self.family(MESSAGES)?;
        let retained = self.family(RETAINED)?;
        let mut batch = WriteBatch::default();
        overlay.removes_sessions |= ops
            .iter()
            .any(|op| matches!(op, StoreOp::RemoveSession { .. }));
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
                    payloads,
                    in_store_only,
                } => {
                    let prefix = encoding::session_prefix(client_id);
                    let end = encoding::prefix_end(&prefix);
                    let pushed = overlay.pushed.remove(client_id).unwrap_or_default();
                    if *in_store_only {
                        // Some of its records are only here: read them all (a scan of the
                        // session's records on the caller's thread), then release those
                        // pushed earlier in this batch.
                        let stored = self.stored_payloads(client_id, &prefix, &end)?;
                        for (sequence, payload) in stored.into_iter().chain(pushed) {
                            if !overlay.removed.contains(&(client_id.clone(), sequence)) {
                                release(state, overlay, &mut batch, messages, payload);
                            }
                        }
                    } else {
                        // The router held every record in memory: it names their payloads.
                        for payload in payloads.iter().filter(|payload| **payload != 0) {
                            release(state, overlay, &mut batch, messages, *payload);
                        }
                    }
                    batch.delete_range_cf(sessions, &prefix, &end);
                    batch.delete_range_cf(queued, &prefix, &end);
                }
                StoreOp::PushMessage { client_id, record } => {
                    let payload = record.payload;
                    let first = !overlay.fresh.contains(&payload)
                        && !overlay.delta.contains_key(&payload)
                        && !state.shared.contains_key(&payload);
                    if first {
                        overlay.fresh.insert(payload);
                        batch.put_cf(
                            messages,
                            payload.to_be_bytes(),
                            encoding::encode_message(&record.message)?,
                        );
                    }
                    *overlay.delta.entry(payload).or_default() += 1;
                    if overlay.removes_sessions {
                        overlay
                            .pushed
                            .entry(client_id.clone())
                            .or_default()
                            .push((record.sequence, payload));
                    }
                    batch.put_cf(
                        queued,
                        encoding::queued_key(client_id, record.sequence, encoding::KIND_MESSAGE),
                        encoding::encode_queued(&QueuedValue {
                            message_id: payload,
                            qos: record.qos,
                            retain: record.retain,
                            subscription_ids: &record.subscription_ids,
                            share: record.share.as_deref(),
                            expires_at: record.message.expires_at.map(encoding::wall_clock),
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
                    payload,
                } => {
                    batch.delete_cf(
                        queued,
                        encoding::queued_key(client_id, *sequence, encoding::KIND_MESSAGE),
                    );
                    batch.delete_cf(
                        queued,
                        encoding::queued_key(client_id, *sequence, encoding::KIND_STAGE),
                    );
                    if overlay.removes_sessions {
                        overlay.removed.insert((client_id.clone(), *sequence));
                    }
                    release(state, overlay, &mut batch, messages, *payload);
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

    /// The (sequence, payload) of every queued record of one session in the store.
    fn stored_payloads(
        &self,
        client_id: &str,
        prefix: &[u8],
        end: &[u8],
    ) -> Result<Vec<(u64, u64)>, StoreError> {
        let mut found = Vec::new();
        let mut read = rocksdb::ReadOptions::default();
        read.set_iterate_upper_bound(end.to_vec());
        let mut iterator = self.db.raw_iterator_cf_opt(self.family(QUEUED)?, read);
        iterator.seek(prefix);
        while let (Some(key), Some(value)) = (iterator.key(), iterator.value()) {
            let (sequence, kind) = queued_key_parts(client_id, key)?;
            if kind == encoding::KIND_MESSAGE {
                found.push((sequence, encoding::decode_queued(value)?.message_id));
            }
            iterator.next();
        }
        iterator.status().map_err(rocks)?;
        Ok(found)
    }

    /// Reads the payloads `ids` from `messages`, each once.
    fn read_payloads(
        &self,
        ids: impl IntoIterator<Item = u64>,
    ) -> Result<HashMap<u64, Arc<Message>>, StoreError> {
        let family = self.family(MESSAGES)?;
        let ids: Vec<u64> = ids
            .into_iter()
            .collect::<HashSet<u64>>()
            .into_iter()
            .collect();
        let values = self
            .db
            .multi_get_cf(ids.iter().map(|id| (family, id.to_be_bytes())));
        let mut payloads = HashMap::with_capacity(ids.len());
        for (id, value) in ids.into_iter().zip(values) {
            if let Some(value) = value.map_err(rocks)? {
                payloads.insert(id, Arc::new(encoding::decode_message(&value)?));
            }
        }
        Ok(payloads)
    }
}

/// The sequence and kind byte of a `queued` key of `client_id`.
fn queued_key_parts(client_id: &str, key: &[u8]) -> Result<(u64, u8), StoreError> {
    let prefix_len = 2 + client_id.len();
    match key.get(prefix_len..) {
        Some(&[s0, s1, s2, s3, s4, s5, s6, s7, kind]) => {
            Ok((u64::from_be_bytes([s0, s1, s2, s3, s4, s5, s6, s7]), kind))
        }
        _ => Err(StoreError::Corrupt("queued key".into())),
    }
}

/// Drops one reference to `payload`; the payload goes with the last one.
fn release(
    state: &WriteState,
    overlay: &mut Overlay,
    batch: &mut WriteBatch,
    messages: &rocksdb::ColumnFamily,
    payload: u64,
) {
    let count = overlay.count(state, payload);
    if count <= 0 {
        return;
    }
    *overlay.delta.entry(payload).or_default() -= 1;
    if count == 1 {
        batch.delete_cf(messages, payload.to_be_bytes());
    }
}

/// A queued record as `load` reads it, before its payload is known.
struct PendingRecord {
    client_id: Arc<str>,
    sequence: u64,
    decoded: encoding::DecodedQueued,
    stage: Option<crate::store::Stage>,
}

/// What `load` gathers from the `queued` family.
struct QueueScan<'a> {
    family: &'a rocksdb::ColumnFamily,
    now: SystemTime,
    /// How many records reference each payload.
    references: HashMap<u64, u32>,
    /// Records with a stage: sent, they come back into memory.
    in_flight: Vec<PendingRecord>,
    /// Keys to delete: orphans, and waiting messages that expired.
    orphans: WriteBatch,
}

impl QueueScan<'_> {
    /// A record whose keys have all been read: in flight, expired, or left in the store
    /// (counted in its session's [`Spilled`]).
    fn settle(
        &mut self,
        record: Option<PendingRecord>,
        sessions: &mut HashMap<Arc<str>, StoredSession>,
    ) {
        let Some(record) = record else {
            return;
        };
        if record.stage.is_some() {
            self.in_flight.push(record);
        } else if record.decoded.expires_at.is_some_and(|at| at <= self.now) {
            // Expired before its delivery started: purged (MQTT-3.3.2-5); its payload goes
            // with its last reference.
            self.orphans.delete_cf(
                self.family,
                encoding::queued_key(&record.client_id, record.sequence, encoding::KIND_MESSAGE),
            );
            let id = record.decoded.message_id;
            if let Some(count) = self.references.get_mut(&id) {
                *count -= 1;
                if *count == 0 {
                    self.references.remove(&id);
                }
            }
        } else if let Some(session) = sessions.get_mut(&record.client_id) {
            let spilled = &mut session.spilled;
            if spilled.count == 0 || record.sequence < spilled.from {
                spilled.from = record.sequence;
            }
            spilled.last = spilled.last.max(record.sequence);
            spilled.count += 1;
        }
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
                            spilled: Spilled::default(),
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
        // The queues: records in flight (with a stage) come back into memory with their
        // payloads; the waiting ones stay here, counted, for the router to read back as
        // each client drains its queue. Every record counts a reference to its payload.
        let queued_family = self.family(QUEUED)?;
        let mut scan = QueueScan {
            family: queued_family,
            now: SystemTime::now(),
            references: HashMap::new(),
            in_flight: Vec::new(),
            orphans: WriteBatch::default(),
        };
        let mut waiting: Option<PendingRecord> = None;
        let mut iterator = self.db.raw_iterator_cf(queued_family);
        iterator.seek_to_first();
        while let (Some(key), Some(value)) = (iterator.key(), iterator.value()) {
            let (client_id, _) = encoding::split_session_key(key)?;
            let (sequence, kind) = queued_key_parts(&client_id, key)?;
            if !by_client.contains_key(&client_id) {
                // A queue whose session record is gone (batches are atomic, so a removal
                // cannot be half done; kept defensive).
                scan.orphans.delete_cf(queued_family, key);
                iterator.next();
                continue;
            }
            match kind {
                encoding::KIND_MESSAGE => {
                    scan.settle(waiting.take(), &mut by_client);
                    let decoded = encoding::decode_queued(value)?;
                    *scan.references.entry(decoded.message_id).or_default() += 1;
                    waiting = Some(PendingRecord {
                        client_id,
                        sequence,
                        decoded,
                        stage: None,
                    });
                }
                encoding::KIND_STAGE => {
                    let stage = encoding::decode_stage(value)?;
                    match waiting.as_mut() {
                        Some(last) if last.sequence == sequence && last.client_id == client_id => {
                            last.stage = Some(stage)
                        }
                        // The stage of a message never stored (queued before its session
                        // became persistent).
                        _ => scan.orphans.delete_cf(queued_family, key),
                    }
                }
                _ => return Err(StoreError::Corrupt("queued key kind".into())),
            }
            iterator.next();
        }
        iterator.status().map_err(rocks)?;
        drop(iterator);
        scan.settle(waiting.take(), &mut by_client);
        let QueueScan {
            references,
            in_flight,
            mut orphans,
            ..
        } = scan;

        let payloads = self.read_payloads(in_flight.iter().map(|r| r.decoded.message_id))?;
        for record in in_flight {
            let Some(message) = payloads.get(&record.decoded.message_id) else {
                return Err(StoreError::Corrupt(format!(
                    "queued message {} of {} references a missing payload",
                    record.sequence, record.client_id
                )));
            };
            if let Some(session) = by_client.get_mut(&record.client_id) {
                session.queued.push(QueuedRecord {
                    sequence: record.sequence,
                    payload: record.decoded.message_id,
                    message: message.clone(),
                    qos: record.decoded.qos,
                    retain: record.decoded.retain,
                    subscription_ids: record.decoded.subscription_ids,
                    share: record.decoded.share,
                    stage: record.stage,
                });
            }
        }
        // Payloads no queued record references any more (keys only: the values are not
        // copied out).
        let messages_family = self.family(MESSAGES)?;
        let mut max_id = references.keys().copied().max().unwrap_or(0);
        let mut present = 0;
        let mut iterator = self.db.raw_iterator_cf(messages_family);
        iterator.seek_to_first();
        while let Some(key) = iterator.key() {
            let id = u64::from_be_bytes(
                <[u8; 8]>::try_from(key).map_err(|_| StoreError::Corrupt("message key".into()))?,
            );
            max_id = max_id.max(id);
            if references.contains_key(&id) {
                present += 1;
            } else {
                orphans.delete_cf(messages_family, key);
            }
            iterator.next();
        }
        iterator.status().map_err(rocks)?;
        drop(iterator);
        if present < references.len() {
            return Err(StoreError::Corrupt(format!(
                "{} queued messages reference missing payloads",
                references.len() - present
            )));
        }
        state.shared = references
            .into_iter()
            .filter(|(_, count)| *count >= 2)
            .collect();
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
            next_payload: max_id + 1,
        })
    }

    fn read_queued(
        &self,
        client_id: &str,
        range: QueueRange,
    ) -> Result<Vec<QueuedRecord>, StoreError> {
        let QueueRange { from, upto, limit } = range;
        let mut read = rocksdb::ReadOptions::default();
        read.set_iterate_upper_bound(match upto.checked_add(1) {
            Some(next) => encoding::queued_key(client_id, next, encoding::KIND_MESSAGE),
            None => encoding::prefix_end(&encoding::session_prefix(client_id)),
        });
        let mut iterator = self.db.raw_iterator_cf_opt(self.family(QUEUED)?, read);
        iterator.seek(encoding::queued_key(
            client_id,
            from,
            encoding::KIND_MESSAGE,
        ));
        let mut records: Vec<(u64, encoding::DecodedQueued, Option<crate::store::Stage>)> =
            Vec::new();
        while let (Some(key), Some(value)) = (iterator.key(), iterator.value()) {
            let (sequence, kind) = queued_key_parts(client_id, key)?;
            match kind {
                encoding::KIND_MESSAGE => {
                    if records.len() == limit {
                        break;
                    }
                    records.push((sequence, encoding::decode_queued(value)?, None));
                }
                encoding::KIND_STAGE => {
                    if let Some(last) = records.last_mut().filter(|last| last.0 == sequence) {
                        last.2 = Some(encoding::decode_stage(value)?);
                    }
                }
                _ => return Err(StoreError::Corrupt("queued key kind".into())),
            }
            iterator.next();
        }
        iterator.status().map_err(rocks)?;
        drop(iterator);
        let payloads = self.read_payloads(records.iter().map(|r| r.1.message_id))?;
        records
            .into_iter()
            .map(|(sequence, decoded, stage)| {
                let message = payloads.get(&decoded.message_id).cloned().ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "queued message {sequence} of {client_id} references a missing payload"
                    ))
                })?;
                Ok(QueuedRecord {
                    sequence,
                    payload: decoded.message_id,
                    message,
                    qos: decoded.qos,
                    retain: decoded.retain,
                    subscription_ids: decoded.subscription_ids,
                    share: decoded.share,
                    stage,
                })
            })
            .collect()
    }

    fn write(&self, ops: &[StoreOp]) -> Result<u64, StoreError> {
        let mut state = self.lock();
        let mut overlay = Overlay::default();
        let batch = self.build_batch(&state, ops, &mut overlay)?;
        self.db
            .write_opt(batch, &WriteOptions::default())
            .map_err(rocks)?;
        overlay.apply(&mut state);
        state.sequence += 1;
        Ok(state.sequence)
    }

    fn write_chunks(
        &self,
        chunks: &mut dyn Iterator<Item = Result<Vec<StoreOp>, StoreError>>,
    ) -> Result<u64, StoreError> {
        let mut state = self.lock();
        // One overlay for all the chunks: a payload pushed by several is stored by the
        // first and counted by all.
        let mut overlay = Overlay::default();
        let mut result = Ok(());
        for chunk in chunks {
            let written = chunk.and_then(|ops| {
                let batch = self.build_batch(&state, &ops, &mut overlay)?;
                self.db
                    .write_opt(batch, &WriteOptions::default())
                    .map_err(rocks)
            });
            if let Err(error) = written {
                result = Err(error);
                break;
            }
        }
        // What was written is counted, even after a failure.
        overlay.apply(&mut state);
        state.sequence += 1;
        result.map(|()| state.sequence)
    }

    /// Hands the turn's batches to the durability thread: one log write (and in the
    /// unbuffered modes one fsync) for all of them, off the runtime thread.
    fn end_turn(&self) -> Result<(), StoreError> {
        let sequence = self.lock().sequence;
        let mut written = self
            .durability
            .written
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if sequence > written.0 {
            written.0 = sequence;
            drop(written);
            self.durability.wake.notify_one();
        }
        Ok(())
    }

    fn keeps_queues(&self) -> bool {
        true
    }

    fn expired_queued(
        &self,
        client_id: &str,
        range: QueueRange,
        now: SystemTime,
    ) -> Result<ExpiredScan, StoreError> {
        let QueueRange { from, upto, limit } = range;
        let mut read = rocksdb::ReadOptions::default();
        read.set_iterate_upper_bound(match upto.checked_add(1) {
            Some(next) => encoding::queued_key(client_id, next, encoding::KIND_MESSAGE),
            None => encoding::prefix_end(&encoding::session_prefix(client_id)),
        });
        // Its own reads do not push the router's windows out of the block cache.
        read.fill_cache(false);
        let mut iterator = self.db.raw_iterator_cf_opt(self.family(QUEUED)?, read);
        iterator.seek(encoding::queued_key(
            client_id,
            from,
            encoding::KIND_MESSAGE,
        ));
        let mut scan = ExpiredScan::default();
        // The last message record seen, if it expired: dropped again if a stage follows.
        let mut candidate: Option<(u64, u64)> = None;
        while let (Some(key), Some(value)) = (iterator.key(), iterator.value()) {
            let (sequence, kind) = queued_key_parts(client_id, key)?;
            match kind {
                encoding::KIND_MESSAGE => {
                    scan.expired.extend(candidate.take());
                    if scan.scanned == limit {
                        scan.next = Some(sequence);
                        break;
                    }
                    scan.scanned += 1;
                    let decoded = encoding::decode_queued(value)?;
                    if decoded.expires_at.is_some_and(|at| at <= now) {
                        candidate = Some((sequence, decoded.message_id));
                    }
                }
                encoding::KIND_STAGE => {
                    // Sent: its delivery has started, it is not purged (MQTT-3.3.2-5).
                    if candidate.is_some_and(|(candidate, _)| candidate == sequence) {
                        candidate = None;
                    }
                }
                _ => return Err(StoreError::Corrupt("queued key kind".into())),
            }
            iterator.next();
        }
        iterator.status().map_err(rocks)?;
        scan.expired.extend(candidate);
        Ok(scan)
    }

    fn survives_restart(&self) -> bool {
        true
    }

    /// Buffered: acknowledgements wait until the log holding them is written out of the
    /// process (a process kill then loses nothing acknowledged), without fsync.
    fn acks_wait_for_sync(&self) -> bool {
        true
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
    use std::time::{Instant, SystemTime};

    use bytes::Bytes;

    use super::*;
    use crate::mqtt::{Properties, ProtocolVersion, Publish, QoS};
    use crate::store::{SessionRecord, Spilled, Stage};

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
                payload: Arc::as_ptr(message) as u64,
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
                payload: Arc::as_ptr(&shared) as u64,
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
        store
            .write(&[StoreOp::RemoveSession {
                client_id: a,
                payloads: vec![Arc::as_ptr(&shared) as u64],
                in_store_only: false,
            }])
            .unwrap();
        assert_eq!(count(&store, MESSAGES), 0, "the last reference took it");
        assert_eq!(count(&store, QUEUED), 0);
        assert_eq!(store.load().unwrap().sessions.len(), 1, "b stays");
    }

    #[test]
    fn waiting_messages_stay_on_disk_and_are_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path(), SyncMode::Buffered).unwrap();
        let client: Arc<str> = Arc::from("offline");
        let other: Arc<str> = Arc::from("other");
        let mut ops = vec![
            StoreOp::PutSession(Box::new(SessionRecord::new(
                client.clone(),
                ProtocolVersion::V5,
            ))),
            StoreOp::PutSession(Box::new(SessionRecord::new(
                other.clone(),
                ProtocolVersion::V5,
            ))),
        ];
        let messages: Vec<Arc<Message>> = (0..10).map(|_| message(b"m")).collect();
        for (sequence, message) in (1..).zip(&messages) {
            ops.push(push(&client, sequence, message));
        }
        // The fourth is shared with another session.
        ops.push(push(&other, 1, &messages[3]));
        ops.push(StoreOp::SetStage {
            client_id: client.clone(),
            sequence: 1,
            stage: Stage {
                packet_id: 5,
                released: false,
            },
        });
        store.write(&ops).unwrap();
        store.end_turn().unwrap();
        drop(store);

        let store = RocksStore::open(dir.path(), SyncMode::Buffered).unwrap();
        let snapshot = store.load().unwrap();
        let session = snapshot
            .sessions
            .iter()
            .find(|s| s.record.client_id == client)
            .unwrap();
        let in_flight: Vec<u64> = session.queued.iter().map(|q| q.sequence).collect();
        assert_eq!(in_flight, [1], "only the message in flight is in memory");
        assert_eq!(
            session.spilled,
            Spilled {
                count: 9,
                from: 2,
                last: 10
            }
        );
        assert!(snapshot.next_payload > Arc::as_ptr(&messages[9]) as u64);

        let read = store
            .read_queued("offline", QueueRange::new(2, 100, 4))
            .unwrap();
        let sequences: Vec<u64> = read.iter().map(|q| q.sequence).collect();
        assert_eq!(sequences, [2, 3, 4, 5]);
        assert_eq!(read[0].subscription_ids, [3]);
        let rest = store
            .read_queued("offline", QueueRange::new(6, 8, 100))
            .unwrap();
        let sequences: Vec<u64> = rest.iter().map(|q| q.sequence).collect();
        assert_eq!(sequences, [6, 7, 8], "bounded by `upto`");
        assert!(
            store
                .read_queued("nobody", QueueRange::new(1, u64::MAX, 10))
                .unwrap()
                .is_empty()
        );

        // Removing the session releases the payloads it held only on disk; the shared one
        // stays for the other session.
        store
            .write(&[StoreOp::RemoveSession {
                client_id: client,
                payloads: Vec::new(),
                in_store_only: true,
            }])
            .unwrap();
        assert_eq!(count(&store, MESSAGES), 1);
        let left = store
            .read_queued("other", QueueRange::new(1, u64::MAX, 10))
            .unwrap();
        assert_eq!(&left[0].message.publish.payload[..], b"m");
    }

    fn expiring(payload: &'static [u8], expires_at: Instant) -> Arc<Message> {
        let mut message = Arc::into_inner(message(payload)).expect("the only reference");
        message.expires_at = Some(expires_at);
        Arc::new(message)
    }

    #[test]
    fn expired_waiting_messages_are_found_for_the_router_and_purged_on_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path(), SyncMode::Buffered).unwrap();
        let client: Arc<str> = Arc::from("c");
        let past = Instant::now() - Duration::from_secs(5);
        let future = Instant::now() + Duration::from_secs(3600);
        let mut ops = vec![StoreOp::PutSession(Box::new(SessionRecord::new(
            client.clone(),
            ProtocolVersion::V5,
        )))];
        // 1: sent, expired (its delivery has started: kept); 2, 4: expired; 3: alive;
        // 5: never expires.
        ops.push(push(&client, 1, &expiring(b"1", past)));
        ops.push(StoreOp::SetStage {
            client_id: client.clone(),
            sequence: 1,
            stage: Stage {
                packet_id: 1,
                released: false,
            },
        });
        ops.push(push(&client, 2, &expiring(b"2", past)));
        ops.push(push(&client, 3, &expiring(b"3", future)));
        ops.push(push(&client, 4, &expiring(b"4", past)));
        ops.push(push(&client, 5, &message(b"5")));
        store.write(&ops).unwrap();

        let now = SystemTime::now();
        let scan = store
            .expired_queued("c", QueueRange::new(1, 5, 100), now)
            .unwrap();
        let expired: Vec<u64> = scan.expired.iter().map(|(sequence, _)| *sequence).collect();
        assert_eq!(expired, [2, 4]);
        assert_eq!((scan.next, scan.scanned), (None, 5));
        let partial = store
            .expired_queued("c", QueueRange::new(1, 5, 2), now)
            .unwrap();
        assert_eq!(partial.expired.len(), 1, "sequence 2 of the first two");
        assert_eq!(partial.next, Some(3), "goes on from the third");

        // On start, the expired waiting ones are purged with their payloads.
        drop(store);
        let store = RocksStore::open(dir.path(), SyncMode::Buffered).unwrap();
        let snapshot = store.load().unwrap();
        let session = &snapshot.sessions[0];
        assert_eq!(session.queued.len(), 1, "the one in flight");
        assert_eq!(session.spilled.count, 2, "3 and 5 wait");
        assert_eq!(count(&store, MESSAGES), 3);
        let left: Vec<u64> = store
            .read_queued("c", QueueRange::new(2, 5, 10))
            .unwrap()
            .iter()
            .map(|q| q.sequence)
            .collect();
        assert_eq!(left, [3, 5]);
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
    async fn batches_become_durable_through_the_log_thread_once_the_turn_ends() {
        for sync in [SyncMode::Buffered, SyncMode::Unbuffered] {
            let dir = tempfile::tempdir().unwrap();
            let store = RocksStore::open(dir.path(), sync).unwrap();
            assert!(store.acks_wait_for_sync());
            let mut durable = store.durable();
            let client: Arc<str> = Arc::from("c");
            let mut last = 0;
            for i in 0..50 {
                last = store.write(&[push(&client, i, &message(b"m"))]).unwrap();
            }
            assert_eq!(*durable.borrow(), 0, "{sync:?}: nothing written out yet");
            // One log write (and one fsync, unbuffered) covers all fifty.
            store.end_turn().unwrap();
            let reached = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                durable.wait_for(|n| *n >= last),
            )
            .await;
            assert!(
                matches!(reached, Ok(Ok(_))),
                "{sync:?}: durable up to {last}"
            );
        }
    }
}

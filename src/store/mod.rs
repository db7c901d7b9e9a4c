//! Where session state and retained messages live: the `Store` trait and its implementations.
//!
//! The router keeps its working state in memory and mirrors every durable change through a
//! [`Store`] as [`StoreOp`]s: session records (subscriptions, expiry, will), the messages
//! queued or in flight for a session with their delivery stage, inbound QoS 2 packet ids
//! awaiting PUBREL, and retained messages.
//!
//! The router never waits on the disk. [`Store::write`] appends one batch of operations
//! atomically without forcing it to stable storage (for RocksDB: into the write-ahead log,
//! no fsync) and returns the batch's sequence number; a durability task of the store, off the
//! runtime thread, makes the batches durable and publishes "durable up to N" on a
//! [`tokio::sync::watch`] channel ([`Store::durable`]). When [`Store::acks_wait_for_sync`] is
//! true (the unbuffered modes), the router sends a PUBACK/PUBREC only once the batch holding
//! the message is durable, so that every publisher waiting at the same moment shares one
//! fsync (group commit).
//!
//! [`MemoryStore`] keeps everything in the process; [`RocksStore`] on disk.

#[cfg(feature = "disk-store")]
mod backup;
// Without the disk store only its clock conversions are used.
#[cfg_attr(not(feature = "disk-store"), allow(dead_code))]
mod encoding;
mod memory;
mod open;
#[cfg(feature = "disk-store")]
mod rocks;

use std::sync::Arc;
use std::time::SystemTime;

use thiserror::Error;
use tokio::sync::watch;

#[cfg(feature = "disk-store")]
pub use backup::{BackupInfo, Backups, backup_dir};
pub use encoding::{monotonic as monotonic_deadline, wall_clock};
pub use memory::MemoryStore;
#[cfg(feature = "disk-store")]
pub use open::BACKUP_INTERVAL;
pub use open::{OpenError, Opened, Recovery, open_store, store_dir, utc};
#[cfg(feature = "disk-store")]
pub use rocks::{RocksOpenError, RocksStore, SCHEMA_VERSION, SyncMode};

use crate::model::{Message, Subscription};
use crate::mqtt::{ProtocolVersion, QoS, Will};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("store I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("store is corrupt: {0}")]
    Corrupt(String),
    #[error("RocksDB: {0}")]
    Rocks(String),
}

impl StoreError {
    /// Whether the failure means the disk is full (answered with 0x97 Quota exceeded).
    pub fn is_storage_full(&self) -> bool {
        match self {
            StoreError::Io(io) => matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ),
            // RocksDB reports ENOSPC as an IO error whose text names it.
            StoreError::Rocks(text) => text.contains("No space left") || text.contains("NoSpace"),
            StoreError::Corrupt(_) => false,
        }
    }
}

/// What a session needs to survive a restart.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub client_id: Arc<str>,
    pub protocol: ProtocolVersion,
    /// Seconds after disconnection; `None` never expires.
    pub expiry_secs: Option<u32>,
    /// When the disconnected session ends (wall clock); `None` while it is connected (then
    /// a restart counts its expiry from the restart) or when it never expires.
    pub expires_at: Option<SystemTime>,
    /// Full filters (`$share/...` included) and their options.
    pub subscriptions: Vec<(String, Subscription)>,
    /// The will of the connection, until published or deleted.
    pub will: Option<Will>,
    /// When a delayed will goes out (wall clock); `None` while its connection is open.
    pub will_at: Option<SystemTime>,
    /// The username of its last connection: a restored session gets its topic permissions
    /// (its pending will and its deliveries are checked) before the client returns.
    pub username: Option<Arc<str>>,
}

impl SessionRecord {
    pub fn new(client_id: Arc<str>, protocol: ProtocolVersion) -> SessionRecord {
        SessionRecord {
            client_id,
            protocol,
            expiry_secs: None,
            expires_at: None,
            subscriptions: Vec::new(),
            will: None,
            will_at: None,
            username: None,
        }
    }
}

/// How far the delivery of an outbound QoS 1/2 message has gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage {
    /// The packet id it was sent with: after a restart it is resent with DUP and this id
    /// (MQTT-4.4.0-1).
    pub packet_id: u16,
    /// QoS 2: PUBREC received, PUBREL sent; after a restart PUBREL is sent again.
    pub released: bool,
}

/// A message waiting for, or in flight to, one session. `sequence` orders a session's
/// messages and names the record.
#[derive(Debug, Clone)]
pub struct QueuedRecord {
    pub sequence: u64,
    /// Names the stored payload: the copies of one message for several sessions, pushed in
    /// one batch, share it (see [`StoreOp::PushMessage`]).
    pub payload: u64,
    pub message: Arc<Message>,
    pub qos: QoS,
    pub retain: bool,
    pub subscription_ids: Vec<u32>,
    /// The shared subscription it was delivered through, if any.
    pub share: Option<Arc<str>>,
    /// Set once sent.
    pub stage: Option<Stage>,
}

/// One durable change. A payload queued for N sessions is stored once and referenced N
/// times: its records name it by [`QueuedRecord::payload`].
#[derive(Debug, Clone)]
pub enum StoreOp {
    /// Creates or replaces a session record (boxed: the will makes it large).
    PutSession(Box<SessionRecord>),
    /// Removes a session with everything it holds; the store releases the payloads its
    /// records referenced: `payloads`, those of the records the router held in memory, or,
    /// when some were in the store only (`in_store_only`), every record the store finds.
    RemoveSession {
        client_id: Arc<str>,
        payloads: Vec<u64>,
        in_store_only: bool,
    },
    /// Adds a message to a session's queue (queued or in flight). A payload id is used by
    /// the pushes of one batch only: the first of them stores the payload, and a later
    /// batch never pushes it again (a message moved to another session gets a new id).
    PushMessage {
        client_id: Arc<str>,
        record: QueuedRecord,
    },
    /// Records how far a queued message's delivery has gone.
    SetStage {
        client_id: Arc<str>,
        sequence: u64,
        stage: Stage,
    },
    /// Removes a delivered (or dropped) message from a session's queue.
    RemoveMessage {
        client_id: Arc<str>,
        sequence: u64,
        payload: u64,
    },
    /// Sets (`Some`) or clears (`None`) the retained message of `topic`.
    SetRetained {
        topic: Arc<str>,
        message: Option<Arc<Message>>,
    },
    /// An inbound QoS 2 packet id whose PUBREL has not arrived (MQTT-4.3.3).
    AddInbound { client_id: Arc<str>, packet_id: u16 },
    /// PUBREL arrived: the packet id is free again.
    RemoveInbound { client_id: Arc<str>, packet_id: u16 },
}

/// One session as stored.
#[derive(Debug, Clone)]
pub struct StoredSession {
    pub record: SessionRecord,
    /// In sequence order: the messages in flight (with their stage) and, from a store that
    /// does not keep queues on disk, the waiting ones too.
    pub queued: Vec<QueuedRecord>,
    /// Waiting messages left in the store ([`Store::keeps_queues`]), read back with
    /// [`Store::read_queued`] as the client drains its queue.
    pub spilled: Spilled,
    /// Inbound QoS 2 packet ids awaiting PUBREL.
    pub inbound_qos2: Vec<u16>,
}

/// How many waiting messages of a session are only in the store, and the lowest and
/// highest sequences among them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spilled {
    pub count: u64,
    pub from: u64,
    pub last: u64,
}

/// Which queued records of a session to read: sequences from `from` to `upto`
/// (inclusive), at most `limit` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueRange {
    pub from: u64,
    pub upto: u64,
    pub limit: usize,
}

impl QueueRange {
    pub fn new(from: u64, upto: u64, limit: usize) -> QueueRange {
        QueueRange { from, upto, limit }
    }
}

/// What [`Store::expired_queued`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpiredScan {
    /// The expired waiting records, as (sequence, payload).
    pub expired: Vec<(u64, u64)>,
    /// Where a next scan goes on; `None` when this one reached `upto`.
    pub next: Option<u64>,
    /// Records looked at.
    pub scanned: usize,
}

/// Everything a store holds, read once when the broker starts.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub sessions: Vec<StoredSession>,
    pub retained: Vec<Arc<Message>>,
    /// Higher than every payload id in the store: where new ids start.
    pub next_payload: u64,
}

/// Storage figures for the status screen and `$SYS`, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreSizes {
    pub sessions: u64,
    /// The `queued` records plus the payloads they reference.
    pub queued: u64,
    pub retained: u64,
}

/// The durable mirror of the router's state. Every method is synchronous and quick: a disk
/// store appends to its log without waiting for the disk (see the module documentation).
pub trait Store: Send + Sync + 'static {
    /// Everything stored, for the router to start from.
    fn load(&self) -> Result<Snapshot, StoreError>;
    /// Applies `ops` atomically and returns the batch's sequence number (increasing).
    fn write(&self, ops: &[StoreOp]) -> Result<u64, StoreError>;
    /// Writes `chunks` as one logical batch spread over several writes, for a whole state
    /// copied into an empty store without holding it all at once: a payload id pushed in
    /// several chunks is stored once. Not atomic: a failure leaves part of it written.
    /// Blocking.
    fn write_chunks(
        &self,
        chunks: &mut dyn Iterator<Item = Result<Vec<StoreOp>, StoreError>>,
    ) -> Result<u64, StoreError> {
        let mut last = 0;
        for chunk in chunks {
            last = self.write(&chunk?)?;
        }
        Ok(last)
    }
    /// Whether what it holds survives a restart of the process (disk stores).
    fn survives_restart(&self) -> bool {
        false
    }
    /// Whether acknowledgements wait until their batch is durable (unbuffered modes), or
    /// at least written out of the process (buffered: see [`Store::end_turn`]).
    fn acks_wait_for_sync(&self) -> bool {
        false
    }
    /// The router's turn has ended: what it wrote is made durable (a disk store writes its
    /// log once for the turn, off the runtime thread, and reports it through
    /// [`Store::durable`]). Quick.
    fn end_turn(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Whether the waiting messages of sessions can stay in the store only, read back with
    /// [`Store::read_queued`] (the disk stores): offline queues then cost no memory.
    fn keeps_queues(&self) -> bool {
        false
    }
    /// The queued records of `client_id` in `range`, in order, each with its stage.
    /// Blocking: called off the runtime thread.
    fn read_queued(
        &self,
        client_id: &str,
        range: QueueRange,
    ) -> Result<Vec<QueuedRecord>, StoreError>;
    /// Looks at the queued records of `client_id` in `range` and reports the waiting ones
    /// (no stage) whose message expired by `now`, for the router to purge. Blocking. A
    /// store that does not keep queues finds nothing.
    fn expired_queued(
        &self,
        _client_id: &str,
        _range: QueueRange,
        _now: SystemTime,
    ) -> Result<ExpiredScan, StoreError> {
        Ok(ExpiredScan::default())
    }
    /// "Durable up to N": the highest sequence number whose batch survives a power loss
    /// (or, for a store that does not sync, every batch written).
    fn durable(&self) -> watch::Receiver<u64>;
    /// Makes everything written durable before returning (graceful stop); blocking.
    fn sync_now(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// A graceful stop: everything durable, and in the fault-tolerant mode a last backup.
    /// Blocking.
    fn graceful_stop(&self) -> Result<(), StoreError> {
        self.sync_now()
    }
    /// Storage sizes (zero for memory).
    fn sizes(&self) -> StoreSizes {
        StoreSizes::default()
    }
}

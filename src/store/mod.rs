//! Where session state and retained messages live: the `Store` trait and its implementations.
//!
//! The router keeps its working state in memory and mirrors every durable change through a
//! [`Store`]: session records (subscriptions, expiry), the messages queued or in flight for a
//! session, and retained messages. Each method returns a future so that a disk store can make
//! the router wait for the write that an acknowledgement depends on (PUBACK/PUBREC are sent
//! only after the store future resolves). [`MemoryStore`] resolves at once.

mod memory;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use thiserror::Error;

pub use memory::MemoryStore;

use crate::model::{Message, Subscription};

pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("store I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("store is corrupt: {0}")]
    Corrupt(String),
}

/// What a session needs to survive a restart.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub client_id: Arc<str>,
    /// Seconds after disconnection; `None` never expires.
    pub expiry_secs: Option<u32>,
    /// Full filters (`$share/...` included) and their options.
    pub subscriptions: Vec<(String, Subscription)>,
}

/// A message waiting for, or in flight to, one session. `sequence` orders a session's
/// messages and names the record for removal.
#[derive(Debug, Clone)]
pub struct QueuedRecord {
    pub sequence: u64,
    pub message: Arc<Message>,
    pub qos: crate::mqtt::QoS,
    pub retain: bool,
    pub subscription_ids: Vec<u32>,
}

/// Everything a store holds, read once when the broker starts.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub sessions: Vec<(SessionRecord, Vec<QueuedRecord>)>,
    pub retained: Vec<Arc<Message>>,
}

/// The durable mirror of the router's state. Keep it small: each method is one write.
pub trait Store: Send + Sync + 'static {
    /// Everything stored, for the router to start from.
    fn load(&self) -> StoreFuture<'_, Snapshot>;
    /// Creates or replaces a session record.
    fn put_session(&self, session: SessionRecord) -> StoreFuture<'_, ()>;
    /// Removes a session with its queued messages.
    fn remove_session(&self, client_id: &str) -> StoreFuture<'_, ()>;
    /// Adds a message to a session's queue (queued or in flight).
    fn push_message(&self, client_id: &str, record: QueuedRecord) -> StoreFuture<'_, ()>;
    /// Removes a delivered (or dropped) message from a session's queue.
    fn remove_message(&self, client_id: &str, sequence: u64) -> StoreFuture<'_, ()>;
    /// Sets (`Some`) or clears (`None`) the retained message of `topic`.
    fn set_retained(&self, topic: &str, message: Option<Arc<Message>>) -> StoreFuture<'_, ()>;
}

//! The memory store: a mirror of the router's durable state that lives as long as the
//! process. Nothing survives a restart of the process; a broker restarted inside the same
//! process (for example after an apply that recreates the router) loads it back.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{QueuedRecord, SessionRecord, Snapshot, Store, StoreFuture};
use crate::broker::Message;

#[derive(Debug, Default)]
struct Inner {
    sessions: HashMap<Arc<str>, (SessionRecord, BTreeMap<u64, QueuedRecord>)>,
    retained: HashMap<String, Arc<Message>>,
}

#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-update of plain maps;
        // the data is still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Number of messages stored for `client_id` (tests and statistics).
    pub fn queued_len(&self, client_id: &str) -> usize {
        self.lock()
            .sessions
            .get(client_id)
            .map_or(0, |(_, queue)| queue.len())
    }

    pub fn retained_len(&self) -> usize {
        self.lock().retained.len()
    }
}

fn ready<T: Send + 'static>(value: T) -> StoreFuture<'static, T> {
    Box::pin(std::future::ready(Ok(value)))
}

impl Store for MemoryStore {
    fn load(&self) -> StoreFuture<'_, Snapshot> {
        let inner = self.lock();
        let snapshot = Snapshot {
            sessions: inner
                .sessions
                .values()
                .map(|(record, queue)| (record.clone(), queue.values().cloned().collect()))
                .collect(),
            retained: inner.retained.values().cloned().collect(),
        };
        ready(snapshot)
    }

    fn put_session(&self, session: SessionRecord) -> StoreFuture<'_, ()> {
        let mut inner = self.lock();
        match inner.sessions.get_mut(&session.client_id) {
            Some((record, _)) => *record = session,
            None => {
                inner
                    .sessions
                    .insert(session.client_id.clone(), (session, BTreeMap::new()));
            }
        }
        ready(())
    }

    fn remove_session(&self, client_id: &str) -> StoreFuture<'_, ()> {
        self.lock().sessions.remove(client_id);
        ready(())
    }

    fn push_message(&self, client_id: &str, record: QueuedRecord) -> StoreFuture<'_, ()> {
        if let Some((_, queue)) = self.lock().sessions.get_mut(client_id) {
            queue.insert(record.sequence, record);
        }
        ready(())
    }

    fn remove_message(&self, client_id: &str, sequence: u64) -> StoreFuture<'_, ()> {
        if let Some((_, queue)) = self.lock().sessions.get_mut(client_id) {
            queue.remove(&sequence);
        }
        ready(())
    }

    fn set_retained(&self, topic: &str, message: Option<Arc<Message>>) -> StoreFuture<'_, ()> {
        let mut inner = self.lock();
        match message {
            Some(message) => {
                inner.retained.insert(topic.to_string(), message);
            }
            None => {
                inner.retained.remove(topic);
            }
        }
        ready(())
    }
}

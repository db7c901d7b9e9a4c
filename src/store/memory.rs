//! The memory store: a mirror of the router's durable state that lives as long as the
//! process. Nothing survives a restart of the process; a broker restarted inside the same
//! process (for example after an apply that recreates the router) loads it back.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{QueuedRecord, SessionRecord, Snapshot, Store, StoreFuture};
use crate::model::Message;

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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use bytes::Bytes;

    use super::*;
    use crate::mqtt::{Properties, Publish, QoS};

    fn message(topic: &str) -> Arc<Message> {
        let publish = Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: true,
            topic: Arc::from(topic),
            packet_id: None,
            properties: Properties::default(),
            payload: Bytes::from_static(b"x"),
        };
        Arc::new(Message::new(publish, Instant::now()))
    }

    #[tokio::test]
    async fn mirrors_sessions_queues_and_retained_messages() {
        let store = MemoryStore::new();
        let record = SessionRecord {
            client_id: Arc::from("c"),
            expiry_secs: Some(60),
            subscriptions: Vec::new(),
        };
        store.put_session(record.clone()).await.unwrap();
        for sequence in 1..=3 {
            let queued = QueuedRecord {
                sequence,
                message: message("t"),
                qos: QoS::AtLeastOnce,
                retain: false,
                subscription_ids: Vec::new(),
            };
            store.push_message("c", queued).await.unwrap();
        }
        store.remove_message("c", 2).await.unwrap();
        store.set_retained("r", Some(message("r"))).await.unwrap();
        store
            .set_retained("gone", Some(message("gone")))
            .await
            .unwrap();
        store.set_retained("gone", None).await.unwrap();

        let snapshot = store.load().await.unwrap();
        assert_eq!(snapshot.sessions.len(), 1);
        let (loaded, queue) = &snapshot.sessions[0];
        assert_eq!(loaded, &record);
        let sequences: Vec<u64> = queue.iter().map(|q| q.sequence).collect();
        assert_eq!(sequences, vec![1, 3]);
        assert_eq!(snapshot.retained.len(), 1);
        assert_eq!(snapshot.retained[0].topic(), "r");

        store.remove_session("c").await.unwrap();
        assert_eq!(store.queued_len("c"), 0);
        assert!(store.load().await.unwrap().sessions.is_empty());
    }
}

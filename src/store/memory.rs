//! The memory store: a mirror of the router's durable state that lives as long as the
//! process. Nothing survives a restart of the process; a broker restarted inside the same
//! process (for example after an apply that recreates the router) loads it back. Every
//! batch is "durable" as soon as it is written.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::{
    QueueRange, QueuedRecord, SessionRecord, Snapshot, Spilled, Store, StoreError, StoreOp,
    StoredSession,
};
use crate::model::Message;

#[derive(Debug, Default)]
struct StoredState {
    record: Option<SessionRecord>,
    queue: BTreeMap<u64, QueuedRecord>,
    inbound: BTreeSet<u16>,
}

#[derive(Debug)]
struct Inner {
    sessions: HashMap<Arc<str>, StoredState>,
    retained: HashMap<Arc<str>, Arc<Message>>,
    sequence: u64,
    durable: watch::Sender<u64>,
}

#[derive(Debug, Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            inner: Arc::new(Mutex::new(Inner {
                sessions: HashMap::new(),
                retained: HashMap::new(),
                sequence: 0,
                durable: watch::Sender::new(0),
            })),
        }
    }
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
            .map_or(0, |state| state.queue.len())
    }

    pub fn retained_len(&self) -> usize {
        self.lock().retained.len()
    }
}

impl Inner {
    fn apply(&mut self, op: &StoreOp) {
        match op {
            StoreOp::PutSession(record) => {
                self.sessions
                    .entry(record.client_id.clone())
                    .or_default()
                    .record = Some((**record).clone());
            }
            StoreOp::RemoveSession { client_id, .. } => {
                self.sessions.remove(client_id);
            }
            StoreOp::PushMessage { client_id, record } => {
                // Like the disk store, a queue without its session record is kept: the
                // record follows in the same or a later batch.
                self.sessions
                    .entry(client_id.clone())
                    .or_default()
                    .queue
                    .insert(record.sequence, record.clone());
            }
            StoreOp::SetStage {
                client_id,
                sequence,
                stage,
            } => {
                if let Some(record) = self
                    .sessions
                    .get_mut(client_id)
                    .and_then(|s| s.queue.get_mut(sequence))
                {
                    record.stage = Some(*stage);
                }
            }
            StoreOp::RemoveMessage {
                client_id,
                sequence,
                ..
            } => {
                if let Some(state) = self.sessions.get_mut(client_id) {
                    state.queue.remove(sequence);
                }
            }
            StoreOp::SetRetained { topic, message } => match message {
                Some(message) => {
                    self.retained.insert(topic.clone(), message.clone());
                }
                None => {
                    self.retained.remove(topic);
                }
            },
            StoreOp::AddInbound {
                client_id,
                packet_id,
            } => {
                self.sessions
                    .entry(client_id.clone())
                    .or_default()
                    .inbound
                    .insert(*packet_id);
            }
            StoreOp::RemoveInbound {
                client_id,
                packet_id,
            } => {
                if let Some(state) = self.sessions.get_mut(client_id) {
                    state.inbound.remove(packet_id);
                }
            }
        }
    }
}

impl Store for MemoryStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        let inner = self.lock();
        let sessions = inner
            .sessions
            .values()
            .filter_map(|state| {
                Some(StoredSession {
                    record: state.record.clone()?,
                    queued: state.queue.values().cloned().collect(),
                    spilled: Spilled::default(),
                    inbound_qos2: state.inbound.iter().copied().collect(),
                })
            })
            .collect();
        let next_payload = inner
            .sessions
            .values()
            .flat_map(|state| state.queue.values())
            .map(|record| record.payload)
            .max()
            .unwrap_or(0)
            + 1;
        Ok(Snapshot {
            sessions,
            retained: inner.retained.values().cloned().collect(),
            next_payload,
        })
    }

    fn read_queued(
        &self,
        client_id: &str,
        range: QueueRange,
    ) -> Result<Vec<QueuedRecord>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .sessions
            .get(client_id)
            .map_or_else(Vec::new, |state| {
                state
                    .queue
                    .range(range.from..=range.upto)
                    .take(range.limit)
                    .map(|(_, record)| record.clone())
                    .collect()
            }))
    }

    fn write(&self, ops: &[StoreOp]) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        for op in ops {
            inner.apply(op);
        }
        inner.sequence += 1;
        let sequence = inner.sequence;
        inner.durable.send_replace(sequence);
        Ok(sequence)
    }

    fn durable(&self) -> watch::Receiver<u64> {
        self.lock().durable.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use bytes::Bytes;

    use super::*;
    use crate::mqtt::{Properties, ProtocolVersion, Publish, QoS};
    use crate::store::Stage;

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

    fn queued(sequence: u64, message: Arc<Message>) -> QueuedRecord {
        QueuedRecord {
            sequence,
            payload: sequence,
            message,
            qos: QoS::AtLeastOnce,
            retain: false,
            subscription_ids: Vec::new(),
            share: None,
            stage: None,
        }
    }

    #[test]
    fn mirrors_sessions_queues_inbound_ids_and_retained_messages() {
        let store = MemoryStore::new();
        let durable = store.durable();
        let client: Arc<str> = Arc::from("c");
        let mut record = SessionRecord::new(client.clone(), ProtocolVersion::V5);
        record.expiry_secs = Some(60);
        let shared = message("t");
        let mut ops = vec![StoreOp::PutSession(Box::new(record.clone()))];
        for sequence in 1..=3 {
            ops.push(StoreOp::PushMessage {
                client_id: client.clone(),
                record: queued(sequence, shared.clone()),
            });
        }
        let first = store.write(&ops).unwrap();
        assert_eq!(*durable.borrow(), first, "memory is durable at once");
        let second = store
            .write(&[
                StoreOp::RemoveMessage {
                    client_id: client.clone(),
                    sequence: 2,
                    payload: 2,
                },
                StoreOp::SetStage {
                    client_id: client.clone(),
                    sequence: 1,
                    stage: Stage {
                        packet_id: 9,
                        released: true,
                    },
                },
                StoreOp::AddInbound {
                    client_id: client.clone(),
                    packet_id: 4,
                },
                StoreOp::SetRetained {
                    topic: Arc::from("r"),
                    message: Some(message("r")),
                },
                StoreOp::SetRetained {
                    topic: Arc::from("gone"),
                    message: Some(message("gone")),
                },
                StoreOp::SetRetained {
                    topic: Arc::from("gone"),
                    message: None,
                },
            ])
            .unwrap();
        assert!(second > first);

        let snapshot = store.load().unwrap();
        assert_eq!(snapshot.sessions.len(), 1);
        let session = &snapshot.sessions[0];
        assert_eq!(session.record, record);
        let sequences: Vec<u64> = session.queued.iter().map(|q| q.sequence).collect();
        assert_eq!(sequences, vec![1, 3]);
        assert_eq!(session.queued[0].stage.map(|s| s.packet_id), Some(9));
        assert_eq!(session.inbound_qos2, vec![4]);
        assert_eq!(snapshot.retained.len(), 1);
        assert_eq!(snapshot.retained[0].topic(), "r");
        let read: Vec<u64> = store
            .read_queued("c", QueueRange::new(2, 3, 10))
            .unwrap()
            .iter()
            .map(|q| q.sequence)
            .collect();
        assert_eq!(read, vec![3], "from 2 to 3, what is left");

        store
            .write(&[StoreOp::RemoveSession {
                client_id: client,
                payloads: vec![1, 3],
                in_store_only: false,
            }])
            .unwrap();
        assert_eq!(store.queued_len("c"), 0);
        assert!(store.load().unwrap().sessions.is_empty());
    }
}

//! Switching the store at Apply, without a restart: another mode, another data directory,
//! memory to disk or back.
//!
//! Only the router knows the whole durable state, so the switch happens in one of its turns:
//! everything written to the old store is made durable first (so no acknowledgement waits
//! on it any more), then either
//! - [`StoreSwitch::Copy`]: the new store, opened beforehand by the supervisor (so that an
//!   unusable directory refuses the apply before anything changes) and empty, receives the
//!   router's whole state in chunks of [`COPY_CHUNK`] operations (queues kept only in the
//!   old store are read from it a chunk at a time, not brought into memory, unless the new
//!   store is the memory one), and the old one is closed; or
//! - [`StoreSwitch::Reopen`]: the same directory in another disk mode. RocksDB allows one
//!   process to open a directory once, and the log's flushing is chosen when it opens, so
//!   the store is closed and opened again with the new mode; its contents are already the
//!   router's state. When the new mode cannot open it, the old mode opens it again.
//!
//! The router awaits the blocking parts (fsync, close, open, the copy) off the runtime
//! thread; meanwhile connections keep running and their packets wait in the router's inbox.

use std::sync::Arc;

use super::Router;
use super::lifecycle::session_record;
use crate::config::PersistenceSettings;
use crate::mqtt::QoS;
use crate::store::{MemoryStore, QueueRange, Stage, Store, StoreError, StoreOp, open_store};

/// Operations per write when a state is copied into another store.
const COPY_CHUNK: usize = 4096;

/// A session's queued records kept only in the store being left.
struct StoredQueue {
    client_id: Arc<str>,
    from: u64,
    upto: u64,
    /// Sequences in that range the router holds in memory (in flight), copied from there.
    in_memory: Vec<u64>,
}

/// The chunks that rebuild a state in another store: the router's in-memory state (`ops`),
/// then the queued records each session keeps only in `source`, read a chunk at a time.
fn copy_chunks(
    ops: Vec<StoreOp>,
    source: Arc<dyn Store>,
    spilled: Vec<StoredQueue>,
) -> impl Iterator<Item = Result<Vec<StoreOp>, StoreError>> {
    let mut in_memory = ops.into_iter().peekable();
    let in_memory = std::iter::from_fn(move || {
        in_memory.peek()?;
        Some(Ok(in_memory.by_ref().take(COPY_CHUNK).collect()))
    });
    let from_store = spilled.into_iter().flat_map(move |queue| {
        let StoredQueue {
            client_id,
            from,
            upto,
            in_memory,
        } = queue;
        let source = source.clone();
        let mut next = Some(from);
        std::iter::from_fn(move || {
            let start = next?;
            match source.read_queued(&client_id, QueueRange::new(start, upto, COPY_CHUNK)) {
                Ok(records) => {
                    next = match records.last() {
                        Some(last) if records.len() == COPY_CHUNK => Some(last.sequence + 1),
                        _ => None,
                    };
                    if records.is_empty() {
                        return None;
                    }
                    let pushes = records
                        .into_iter()
                        .filter(|record| !in_memory.contains(&record.sequence))
                        .map(|record| StoreOp::PushMessage {
                            client_id: client_id.clone(),
                            record,
                        })
                        .collect();
                    Some(Ok(pushes))
                }
                Err(error) => {
                    next = None;
                    Some(Err(error))
                }
            }
        })
    });
    in_memory.chain(from_store)
}

/// How the router moves to another store.
pub enum StoreSwitch {
    /// To a store opened elsewhere (empty): the state is copied into it.
    Copy(Arc<dyn Store>),
    /// To the same directory in another disk mode: closed, then opened with `to`; `from`
    /// opens it again if `to` cannot.
    Reopen {
        from: PersistenceSettings,
        to: PersistenceSettings,
    },
}

impl std::fmt::Debug for StoreSwitch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreSwitch::Copy(_) => f.write_str("Copy"),
            StoreSwitch::Reopen { to, .. } => write!(f, "Reopen({:?})", to.mode),
        }
    }
}

/// What a switch did, for the apply report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switched {
    /// Persistent sessions and retained messages now in the new store.
    pub sessions: usize,
    pub retained: usize,
}

impl Router {
    /// Every operation that rebuilds the router's durable state in an empty store: the
    /// persistent sessions with their queued and in-flight messages (in order, with packet
    /// ids and QoS 2 stages) and inbound QoS 2 packet ids, and the retained messages.
    fn state_ops(&self) -> (Vec<StoreOp>, Switched) {
        let mut ops = Vec::new();
        let mut sessions = 0;
        for session in self.sessions.values() {
            if !session.is_persistent() {
                continue;
            }
            sessions += 1;
            ops.push(StoreOp::PutSession(Box::new(session_record(session))));
            let inflight = session.inflight.iter().map(|inflight| {
                let stage = Stage {
                    packet_id: inflight.packet_id,
                    released: inflight.released,
                };
                (&inflight.queued, Some(stage))
            });
            let waiting = session.queue.iter().map(|queued| (queued, None));
            for (queued, stage) in inflight.chain(waiting) {
                // QoS 0 is never stored: it is not kept for an offline session.
                if queued.qos == QoS::AtMostOnce {
                    continue;
                }
                ops.push(StoreOp::PushMessage {
                    client_id: session.client_id.clone(),
                    record: queued.to_record(stage),
                });
            }
            for packet_id in &session.incoming_qos2 {
                ops.push(StoreOp::AddInbound {
                    client_id: session.client_id.clone(),
                    packet_id: *packet_id,
                });
            }
        }
        let retained = self.retained.all();
        let counts = Switched {
            sessions,
            retained: retained.len(),
        };
        ops.extend(retained.into_iter().map(|message| StoreOp::SetRetained {
            topic: message.publish.topic.clone(),
            message: Some(message),
        }));
        (ops, counts)
    }

    /// Moves to another store (see the module documentation). On error the router keeps
    /// the store it had. Either way, a store that keeps queues then holds those of offline
    /// sessions alone.
    pub(super) async fn switch_store(&mut self, switch: StoreSwitch) -> Result<Switched, String> {
        let switched = self.move_state(switch).await;
        self.spill_offline_queues();
        switched
    }

    async fn move_state(&mut self, switch: StoreSwitch) -> Result<Switched, String> {
        // Everything written so far becomes durable: no acknowledgement is left waiting on
        // the old store.
        self.commit(Vec::new()).map_err(|error| {
            format!("cannot write the last changes to the current store: {error}")
        })?;
        let old = self.persist.store.clone();
        tokio::task::spawn_blocking(move || old.sync_now())
            .await
            .map_err(|error| error.to_string())?
            .map_err(|error| format!("cannot sync the current store: {error}"))?;
        self.release_durable();
        // No read may hold on to the old store.
        self.cancel_reads().await;

        match switch {
            StoreSwitch::Copy(new) => {
                if !new.keeps_queues() {
                    // To memory: messages kept only in the old store come into memory.
                    self.unspill_all().await.map_err(|error| {
                        format!("cannot read the queues kept in the current store: {error}")
                    })?;
                }
                let (ops, counts) = self.state_ops();
                // Queues kept only in the old store go from store to store, a chunk at a
                // time; the sessions' counts of them stay true.
                let spilled: Vec<StoredQueue> = self
                    .sessions
                    .values()
                    .filter_map(|session| {
                        let spill = session.spill.as_ref()?;
                        Some(StoredQueue {
                            client_id: session.client_id.clone(),
                            from: spill.from,
                            upto: session.last_sequence(),
                            in_memory: session
                                .inflight
                                .iter()
                                .map(|i| i.queued.sequence)
                                .filter(|sequence| *sequence >= spill.from)
                                .collect(),
                        })
                    })
                    .collect();
                let source = self.persist.store.clone();
                let target = new.clone();
                tokio::task::spawn_blocking(move || {
                    let mut chunks = copy_chunks(ops, source, spilled);
                    target.write_chunks(&mut chunks)?;
                    target.sync_now()
                })
                .await
                .map_err(|error| error.to_string())?
                .map_err(|error| format!("cannot copy the state into the new store: {error}"))?;
                let old = self.install_store(new);
                // The old store syncs and closes (releasing its directory) before the apply
                // is answered; its files stay where they are.
                let closed = tokio::task::spawn_blocking(move || {
                    let stopped = old.graceful_stop();
                    drop(old);
                    stopped
                })
                .await;
                if let Ok(Err(error)) = closed {
                    tracing::warn!(%error, "store: closing the previous store failed");
                }
                Ok(counts)
            }
            StoreSwitch::Reopen { from, to } => {
                let counts = Switched {
                    sessions: self.sessions.values().filter(|s| s.is_persistent()).count(),
                    retained: self.retained.len(),
                };
                // The router must hold the only reference, or the directory stays locked.
                self.shared.set_store(None);
                let placeholder: Arc<dyn Store> = Arc::new(MemoryStore::new());
                let old = self.install_store(placeholder);
                let reopened = tokio::task::spawn_blocking(move || {
                    if let Err(error) = old.graceful_stop() {
                        tracing::warn!(%error, "store: closing before the mode change failed");
                    }
                    drop(old);
                    match open_store(&to) {
                        Ok(opened) => Ok(opened.store),
                        Err(error) => {
                            let back = open_store(&from).map(|opened| opened.store);
                            Err((error.to_string(), back))
                        }
                    }
                })
                .await
                .map_err(|error| error.to_string())?;
                match reopened {
                    Ok(store) => {
                        // The contents are the router's state already; what the store
                        // holds from its first load is not needed.
                        let _ = store.load();
                        self.install_store(store);
                        Ok(counts)
                    }
                    Err((error, Ok(back))) => {
                        let _ = back.load();
                        self.install_store(back);
                        Err(format!("{error}; the store runs on in its previous mode"))
                    }
                    Err((error, Err(back))) => {
                        // Neither mode opens it: the broker goes on in memory and says so
                        // loudly; the files are untouched.
                        tracing::error!(
                            %error,
                            previous = %back,
                            "store: the directory cannot be opened again; running in memory"
                        );
                        self.shared.set_store(Some(self.persist.store.clone()));
                        Err(format!(
                            "{error}; it could not be opened in its previous mode either \
                             ({back}): the broker now keeps its state in memory only"
                        ))
                    }
                }
            }
        }
    }

    /// Makes `store` the router's store and returns the previous one.
    fn install_store(&mut self, store: Arc<dyn Store>) -> Arc<dyn Store> {
        self.shared.set_store(Some(store.clone()));
        self.persist.replace_store(store)
    }
}

//! The cloneable handle through which everything outside the broker talks to it.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use tokio::sync::{broadcast, mpsc, oneshot};

use super::api::{ApplyError, ApplyReport, ClientDetail, ClientInfo, DiagEvent, StatsSnapshot};
use super::metrics::Metrics;
use super::router::{ROUTER_CHANNEL_CAPACITY, Router, RouterMsg};
use super::state::BrokerState;
use super::supervisor::{Supervisor, SupervisorMsg};
use crate::config::{Config, PersistenceSettings};
use crate::store::{MemoryStore, Store};

/// Receives diagnostic events while diagnostics are switched on. Lagging receivers lose
/// the oldest events rather than slowing the broker.
pub type DiagnosticsReceiver = broadcast::Receiver<Arc<DiagEvent>>;

/// A cheap, cloneable reference to the running broker.
#[derive(Clone, Debug)]
pub struct BrokerHandle {
    shared: Arc<BrokerState>,
    supervisor: mpsc::Sender<SupervisorMsg>,
    router: mpsc::Sender<RouterMsg>,
}

impl std::fmt::Debug for SupervisorMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SupervisorMsg::Apply { .. } => "Apply",
            SupervisorMsg::Shutdown { .. } => "Shutdown",
        })
    }
}

impl BrokerHandle {
    /// Starts the broker's actors with nothing listening. Call [`BrokerHandle::apply`] with
    /// a config whose `broker.enabled` is set to open the listeners. Needs a tokio runtime.
    pub fn spawn() -> BrokerHandle {
        BrokerHandle::spawn_with_store(Arc::new(MemoryStore::new()))
    }

    /// As [`BrokerHandle::spawn`], with the given store (its contents are loaded first).
    pub fn spawn_with_store(store: Arc<dyn Store>) -> BrokerHandle {
        BrokerHandle::spawn_with_store_for(store, PersistenceSettings::default())
    }

    /// As [`BrokerHandle::spawn_with_store`], for a store opened for `settings` (see
    /// [`crate::store::open_store`]): an apply of the same persistence settings keeps it.
    pub fn spawn_with_store_for(
        store: Arc<dyn Store>,
        settings: PersistenceSettings,
    ) -> BrokerHandle {
        let shared = Arc::new(BrokerState::new());
        shared.set_store_settings(settings);
        shared.set_store(Some(store.clone()));
        let (router_tx, router_rx) = mpsc::channel(ROUTER_CHANNEL_CAPACITY);
        let (supervisor_tx, supervisor_rx) = mpsc::channel(16);
        tokio::spawn(Router::new(shared.clone(), store, router_rx).run());
        tokio::spawn(Supervisor::new(shared.clone(), router_tx.clone(), supervisor_rx).run());
        BrokerHandle {
            shared,
            supervisor: supervisor_tx,
            router: router_tx,
        }
    }

    /// Validates `config` and makes it the running configuration: listeners are started,
    /// stopped or restarted as needed. On error nothing changes.
    pub async fn apply(&self, config: Config) -> Result<ApplyReport, ApplyError> {
        let (reply, result) = oneshot::channel();
        self.supervisor
            .send(SupervisorMsg::Apply {
                config: Box::new(config),
                reply,
            })
            .await
            .map_err(|_| ApplyError::Stopped)?;
        result.await.map_err(|_| ApplyError::Stopped)?
    }

    /// The current figures; never blocks on the broker's actors.
    pub fn stats(&self) -> StatsSnapshot {
        let m = &self.shared.metrics;
        // RocksDB's size properties are read from memory, without touching the disk.
        let sizes = self.shared.store_sizes();
        StatsSnapshot {
            running: self.shared.running.load(Relaxed),
            uptime: self.shared.started_at.elapsed(),
            clients: Metrics::get(&m.clients_connected),
            connections: Metrics::get(&m.open_connections),
            connections_refused: Metrics::get(&m.connections_refused),
            websocket_connections: Metrics::get(&m.websocket_connections),
            sessions: Metrics::get(&m.sessions),
            subscriptions: Metrics::get(&m.subscriptions),
            messages_received: Metrics::get(&m.messages_received),
            messages_sent: Metrics::get(&m.messages_sent),
            messages_retained: Metrics::get(&m.retained),
            messages_dropped: Metrics::get(&m.messages_dropped),
            store_errors: Metrics::get(&m.store_errors),
            auth_failures: Metrics::get(&m.auth_failures),
            publishes_denied: Metrics::get(&m.publishes_denied),
            subscriptions_denied: Metrics::get(&m.subscriptions_denied),
            bytes_received: Metrics::get(&m.bytes_received),
            bytes_sent: Metrics::get(&m.bytes_sent),
            messages_received_per_sec: Metrics::rate(&m.received_per_sec),
            messages_sent_per_sec: Metrics::rate(&m.sent_per_sec),
            retained_storage_bytes: sizes.retained,
            queued_storage_bytes: sizes.queued,
            session_storage_bytes: sizes.sessions,
            listeners: self.shared.listeners(),
            certificates_refused: Metrics::get(&self.shared.tls.counters.certificates_refused),
            tls_handshakes_failed: Metrics::get(&self.shared.tls.counters.handshakes_failed),
            server_certificate_expires: self.shared.tls.current().map(|tls| tls.server_not_after),
            store_recovery: self.store_recovery(),
        }
    }

    /// Records that the store was restored from a backup at start (shown by the status).
    pub fn set_store_recovery(&self, recovery: Option<String>) {
        *self
            .shared
            .store_recovery
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = recovery;
    }

    /// What happened when the store was restored from a backup at start, if it was.
    pub fn store_recovery(&self) -> Option<String> {
        self.shared
            .store_recovery
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The connected clients.
    pub async fn clients(&self) -> Vec<ClientInfo> {
        let (reply, result) = oneshot::channel();
        if self.router.send(RouterMsg::Clients(reply)).await.is_err() {
            return Vec::new();
        }
        result.await.unwrap_or_default()
    }

    /// Everything about one client's session (connected or not): its subscriptions with
    /// their options, its will, its session expiry and what its CONNECT asked for. `None`
    /// when there is no such session.
    pub async fn client_detail(&self, client_id: &str) -> Option<ClientDetail> {
        let (reply, result) = oneshot::channel();
        let message = RouterMsg::ClientDetail {
            client_id: client_id.to_string(),
            reply,
        };
        self.router.send(message).await.ok()?;
        result.await.ok().flatten()
    }

    /// Closes one client's connection (v5: DISCONNECT 0x98 Administrative action).
    /// Returns false when no such client is connected.
    pub async fn disconnect_client(&self, client_id: &str) -> bool {
        let (reply, result) = oneshot::channel();
        let message = RouterMsg::DisconnectClient {
            client_id: client_id.to_string(),
            reply,
        };
        if self.router.send(message).await.is_err() {
            return false;
        }
        result.await.unwrap_or(false)
    }

    /// Switches the per-packet diagnostic events on or off, live. Off costs one relaxed
    /// atomic load per packet.
    ///
    /// Off also overrides `diagnostics.log_messages` of the applied config until the next
    /// apply: the console's switch is the operator's last word.
    pub fn set_diagnostics(&self, enabled: bool) {
        self.shared.diagnostics.set_manual(enabled);
        if !enabled {
            self.shared.diagnostics.set_configured(false);
        }
    }

    /// A new receiver of diagnostic events (only sent while diagnostics are on).
    pub fn subscribe_diagnostics(&self) -> DiagnosticsReceiver {
        self.shared.diagnostics.subscribe()
    }

    /// Closes every listener and connection (v5: DISCONNECT 0x8B Server shutting down)
    /// and waits until the actors have stopped.
    pub async fn shutdown(&self) {
        let (reply, done) = oneshot::channel();
        if self
            .supervisor
            .send(SupervisorMsg::Shutdown { reply })
            .await
            .is_ok()
        {
            let _ = done.await;
        }
    }
}

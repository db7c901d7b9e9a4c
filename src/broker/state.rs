//! The broker's state shared by the supervisor, listeners, connections and the handle:
//! metrics, diagnostics, the applied configuration, the listeners and the admission of new
//! connections. (Shared subscriptions are another thing: see `router/shared_subs.rs`.)

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use super::admission::Admission;
use super::api::ListenerInfo;
use super::auth::Authenticator;
use super::diagnostics::Diagnostics;
use super::metrics::Metrics;
use super::tls::TlsState;
use crate::config::{Config, PersistenceSettings};

/// The running store, as the broker's shared state holds it (for its sizes).
#[derive(Clone)]
pub struct StoreRef(pub Arc<dyn crate::store::Store>);

impl std::fmt::Debug for StoreRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreRef")
    }
}

#[derive(Debug)]
pub struct BrokerState {
    pub metrics: Metrics,
    /// The `limits.max_connections` slots, shared by every listener.
    pub admission: Admission,
    pub diagnostics: Diagnostics,
    /// The TLS setup new connections use, and the TLS counters.
    pub tls: TlsState,
    /// The users new connections are checked against, and the bounds on those checks.
    pub auth: Authenticator,
    /// The applied configuration; new connections read their limits from it.
    config: RwLock<Arc<Config>>,
    pub listeners: Mutex<Vec<ListenerInfo>>,
    pub started_at: Instant,
    pub running: AtomicBool,
    /// The persistence the running store was opened with.
    pub store_settings: Mutex<PersistenceSettings>,
    /// The running store, for its sizes.
    pub store: Mutex<Option<StoreRef>>,
    /// Set when the store was restored from a backup at start: what happened.
    pub store_recovery: Mutex<Option<String>>,
    next_connection_id: AtomicU64,
    next_client_number: AtomicU64,
}

impl BrokerState {
    pub fn new() -> BrokerState {
        let config = Config::default();
        BrokerState {
            metrics: Metrics::default(),
            admission: Admission::new(config.limits.max_connections),
            diagnostics: Diagnostics::default(),
            tls: TlsState::default(),
            auth: Authenticator::new(),
            config: RwLock::new(Arc::new(config)),
            listeners: Mutex::new(Vec::new()),
            started_at: Instant::now(),
            running: AtomicBool::new(false),
            store_settings: Mutex::new(PersistenceSettings::default()),
            store: Mutex::new(None),
            store_recovery: Mutex::new(None),
            next_connection_id: AtomicU64::new(1),
            next_client_number: AtomicU64::new(1),
        }
    }

    /// The persistence settings the store in use was opened with.
    pub fn store_settings(&self) -> PersistenceSettings {
        self.store_settings
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn set_store_settings(&self, settings: PersistenceSettings) {
        *self
            .store_settings
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = settings;
    }

    /// The store in use, for its sizes (`None` while a switch closes and reopens it).
    pub fn set_store(&self, store: Option<Arc<dyn crate::store::Store>>) {
        *self
            .store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = store.map(StoreRef);
    }

    /// The store's sizes in bytes (zero in memory).
    pub fn store_sizes(&self) -> crate::store::StoreSizes {
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
            .map(|store| store.0.sizes())
            .unwrap_or_default()
    }

    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn set_config(&self, config: Arc<Config>) {
        *self
            .config
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = config;
    }

    pub fn listeners(&self) -> Vec<ListenerInfo> {
        self.listeners
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn set_listeners(&self, listeners: Vec<ListenerInfo>) {
        *self
            .listeners
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = listeners;
    }

    pub fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Relaxed)
    }

    /// A client identifier for a client that sent an empty one (MQTT-3.1.3-6).
    pub fn assign_client_id(&self) -> String {
        let number = self.next_client_number.fetch_add(1, Relaxed);
        let nanos = self.started_at.elapsed().as_nanos() as u64;
        format!("roost-{:x}-{number}", nanos & 0xffff_ffff)
    }
}

impl Default for BrokerState {
    fn default() -> Self {
        BrokerState::new()
    }
}

//! The cloneable handle through which everything outside the broker talks to it.
//! (Contract only: the implementation lands with the broker engine work.)

use std::sync::Arc;

use tokio::sync::broadcast;

use super::api::{ApplyError, ApplyReport, ClientInfo, DiagEvent, StatsSnapshot};
use crate::config::Config;

/// Receives diagnostic events while diagnostics are switched on. Lagging receivers lose
/// the oldest events rather than slowing the broker.
pub type DiagnosticsReceiver = broadcast::Receiver<Arc<DiagEvent>>;

/// A cheap, cloneable reference to the running broker.
#[derive(Clone, Debug)]
pub struct BrokerHandle {
    _private: (),
}

impl BrokerHandle {
    /// Starts the broker's actors with nothing listening. Call [`BrokerHandle::apply`] with
    /// a config whose `broker.enabled` is set to open the listeners. Needs a tokio runtime.
    pub fn spawn() -> BrokerHandle {
        unimplemented!("broker engine")
    }

    /// Validates `config` and makes it the running configuration: listeners are started,
    /// stopped or restarted as needed. On error nothing changes.
    pub async fn apply(&self, config: Config) -> Result<ApplyReport, ApplyError> {
        let _ = config;
        unimplemented!("broker engine")
    }

    /// The current figures; never blocks on the broker's actors.
    pub fn stats(&self) -> StatsSnapshot {
        unimplemented!("broker engine")
    }

    /// The connected clients.
    pub async fn clients(&self) -> Vec<ClientInfo> {
        unimplemented!("broker engine")
    }

    /// Closes one client's connection (v5: DISCONNECT 0x98 Administrative action).
    /// Returns false when no such client is connected.
    pub async fn disconnect_client(&self, client_id: &str) -> bool {
        let _ = client_id;
        unimplemented!("broker engine")
    }

    /// Switches the per-packet diagnostic events on or off, live. Off costs one relaxed
    /// atomic load per packet.
    pub fn set_diagnostics(&self, enabled: bool) {
        let _ = enabled;
        unimplemented!("broker engine")
    }

    /// A new receiver of diagnostic events (only sent while diagnostics are on).
    pub fn subscribe_diagnostics(&self) -> DiagnosticsReceiver {
        unimplemented!("broker engine")
    }

    /// Closes every listener and connection (v5: DISCONNECT 0x8B Server shutting down)
    /// and waits until the actors have stopped.
    pub async fn shutdown(&self) {
        unimplemented!("broker engine")
    }
}

//! What the broker tells the outside world: apply reports, statistics, client listings and
//! diagnostic events. These types are the console's whole view of the broker; they are
//! serialisable because the admin socket (`crate::admin`) carries them between processes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::ConfigError;
use crate::mqtt::{PacketType, ProtocolVersion, QoS};

/// What an apply changed, one line per component.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyReport {
    pub changes: Vec<ApplyChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyChange {
    /// The component, for example "TCP listener 0.0.0.0:1883" or "diagnostics".
    pub subject: String,
    pub action: ChangeAction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeAction {
    Started,
    Stopped,
    Restarted,
    Updated,
    /// Saved in the configuration but not in effect until the feature behind it lands.
    StoredNotActive,
}

impl std::fmt::Display for ApplyChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let action = match self.action {
            ChangeAction::Started => "started",
            ChangeAction::Stopped => "stopped",
            ChangeAction::Restarted => "restarted",
            ChangeAction::Updated => "updated",
            ChangeAction::StoredNotActive => "stored, not active yet",
        };
        write!(f, "{}: {}", self.subject, action)
    }
}

/// Why an apply was refused. A refused apply leaves the running broker as it was.
#[derive(Debug, Error)]
pub enum ApplyError {
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    #[error("cannot listen on {address} for the {listener} listener: {source}")]
    Bind {
        listener: ListenerKind,
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS cannot start: {0}")]
    Tls(#[from] super::tls::TlsError),
    #[error("the broker has stopped")]
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ListenerKind {
    Tcp,
    Tls,
    WebSocket,
    SecureWebSocket,
}

impl std::fmt::Display for ListenerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ListenerKind::Tcp => "TCP",
            ListenerKind::Tls => "TLS",
            ListenerKind::WebSocket => "WebSocket",
            ListenerKind::SecureWebSocket => "secure WebSocket",
        })
    }
}

impl ListenerKind {
    /// The short transport name the console shows beside each client.
    pub fn transport(self) -> &'static str {
        match self {
            ListenerKind::Tcp => "tcp",
            ListenerKind::Tls => "tls",
            ListenerKind::WebSocket => "ws",
            ListenerKind::SecureWebSocket => "wss",
        }
    }
}

/// One endpoint the broker listens on right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerInfo {
    pub kind: ListenerKind,
    /// The bound address (with the real port when the config asked for port 0).
    pub address: SocketAddr,
}

/// The figures of the Status tab, read without blocking the broker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Whether the broker service is enabled and listening.
    pub running: bool,
    pub uptime: Duration,
    pub clients: u64,
    /// Open connections, including those that have not sent CONNECT yet.
    pub connections: u64,
    /// Of `connections`, those over WebSockets.
    pub websocket_connections: u64,
    /// Sockets refused because `limits.max_connections` connections were open.
    pub connections_refused: u64,
    /// Sessions, including those of disconnected clients.
    pub sessions: u64,
    pub subscriptions: u64,
    pub messages_received: u64,
    pub messages_sent: u64,
    pub messages_retained: u64,
    /// Messages dropped because a session's queue was full or they expired.
    pub messages_dropped: u64,
    /// Store operations that failed; a message that could not be stored is refused (v5
    /// PUBACK/PUBREC 0x80) or its v3.1.1 connection closed.
    pub store_errors: u64,
    /// CONNECTs refused for their credentials (wrong, missing, unknown user).
    pub auth_failures: u64,
    /// PUBLISHes and SUBSCRIBE filters refused by the topic permissions.
    pub publishes_denied: u64,
    pub subscriptions_denied: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    /// Per-second rates over the last second.
    pub messages_received_per_sec: f64,
    pub messages_sent_per_sec: f64,
    /// Storage sizes in bytes (zero with the memory store).
    pub retained_storage_bytes: u64,
    pub queued_storage_bytes: u64,
    pub session_storage_bytes: u64,
    pub listeners: Vec<ListenerInfo>,
    /// TLS clients refused for their certificate (revoked, expired, not yet valid,
    /// untrusted, not authorized, missing).
    pub certificates_refused: u64,
    /// Other failed TLS handshakes (plain MQTT on the TLS port, no common version, timeouts).
    pub tls_handshakes_failed: u64,
    /// When the server certificate in use expires (TLS on); Status warns 30 days ahead.
    pub server_certificate_expires: Option<SystemTime>,
    /// What was restored, and from when, when the store was restored from a backup at start
    /// (fault-tolerant mode); the console shows it in a popup and in Status.
    #[serde(default)]
    pub store_recovery: Option<String>,
}

/// One connected client, for the console's Clients view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    pub client_id: Arc<str>,
    pub address: SocketAddr,
    pub listener: ListenerKind,
    pub protocol: ProtocolVersion,
    pub username: Option<String>,
    pub keep_alive_secs: u16,
    pub subscriptions: usize,
    pub inflight: usize,
    pub queued: usize,
    pub connected_since: SystemTime,
    /// PUBLISH packets received from the client on this connection.
    #[serde(default)]
    pub messages_in: u64,
    /// PUBLISH packets sent to it on this connection.
    #[serde(default)]
    pub messages_out: u64,
    /// Messages meant for it that were dropped (queue full, too large, a QoS 0 it could not
    /// take in time).
    #[serde(default)]
    pub dropped: u64,
}

/// Everything the broker knows about one client, for the console's detail pane. Built only
/// when asked for one client (never per refresh of the list), so its cost does not grow with
/// the number of clients. The session may be disconnected (then `connection` is `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientDetail {
    pub client_id: Arc<str>,
    pub protocol: ProtocolVersion,
    /// The attached connection; `None` while the session waits for its client to return.
    pub connection: Option<ConnectionDetail>,
    /// Seconds the session outlives its connection (MQTT 5.0 §3.1.2.11.2); `None` never
    /// expires (a 3.1.1 session with Clean Session 0).
    pub session_expiry_secs: Option<u32>,
    /// Disconnected: how long until the session ends.
    pub session_expires_in: Option<Duration>,
    pub inflight: usize,
    pub queued: usize,
    /// Messages in flight to the client at once (its Receive Maximum capped by ours).
    pub window: usize,
    pub will: Option<WillDetail>,
    /// The subscriptions, sorted by topic filter, at most [`ClientDetail::MAX_SUBSCRIPTIONS`].
    pub subscriptions: Vec<SubscriptionDetail>,
    /// How many subscriptions the session has in all.
    pub subscription_count: usize,
}

impl ClientDetail {
    /// A client may hold any number of subscriptions; the pane shows a screenful, and the
    /// admin socket's answer stays small.
    pub const MAX_SUBSCRIPTIONS: usize = 1000;
}

/// The connection of a client as its CONNECT asked and the broker agreed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionDetail {
    pub address: SocketAddr,
    pub listener: ListenerKind,
    pub username: Option<String>,
    /// The keep alive the broker holds the client to (MQTT-3.1.2-21 may lower it).
    pub keep_alive_secs: u16,
    pub clean_start: bool,
    pub connected_since: SystemTime,
    /// The client's Receive Maximum (MQTT 5.0 §3.1.2.11.3); `None` when absent (65,535) or
    /// before 5.0.
    pub receive_maximum: Option<u16>,
    /// The client's Maximum Packet Size (§3.1.2.11.4); `None`: no limit beyond the protocol's.
    pub maximum_packet_size: Option<u32>,
    /// The client's Topic Alias Maximum (§3.1.2.11.5); `None` when absent (0).
    pub topic_alias_maximum: Option<u16>,
    pub messages_in: u64,
    pub messages_out: u64,
    pub dropped: u64,
}

/// A will as the session holds it (MQTT 5.0 §3.1.2.5, §3.1.3.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WillDetail {
    pub topic: Arc<str>,
    pub qos: QoS,
    pub retain: bool,
    pub payload_bytes: usize,
    /// The Will Delay Interval (§3.1.3.2.2); 0 when absent.
    pub delay_secs: u32,
    /// Disconnected with the delay running: how long until it is published.
    pub publishes_in: Option<Duration>,
}

/// One subscription and its options (MQTT 5.0 §3.8.3.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionDetail {
    /// The topic filter, without a `$share/{group}/` prefix.
    pub filter: String,
    /// The share group of a shared subscription (§4.8.2).
    pub share_group: Option<String>,
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    /// Retain Handling: 0 send at subscribe, 1 only if the subscription is new, 2 never.
    pub retain_handling: u8,
    /// The Subscription Identifier given with it (§3.8.2.1.2).
    pub identifier: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// From the client to the broker.
    In,
    /// From the broker to the client.
    Out,
}

/// One MQTT packet seen on a connection, for the diagnostics log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagEvent {
    pub time: SystemTime,
    pub client_id: Arc<str>,
    /// How the client is connected.
    pub transport: ListenerKind,
    pub direction: Direction,
    pub packet_type: PacketType,
    pub topic: Option<Arc<str>>,
    pub qos: Option<QoS>,
    pub packet_id: Option<u16>,
    /// Encoded size of the whole packet in bytes.
    pub size: usize,
    /// The first bytes of a PUBLISH payload.
    pub payload_preview: Option<Bytes>,
}

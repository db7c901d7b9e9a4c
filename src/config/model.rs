//! The configuration as data: every setting of the product specification, with defaults.
//!
//! Field names are the RON keys operators edit, so they are chosen to read well in the file.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The whole configuration of one roost process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub broker: BrokerSettings,
    pub persistence: PersistenceSettings,
    pub limits: Limits,
    pub users: Vec<User>,
    /// Topic permissions per user, for anonymous clients and by pattern; none: all allowed.
    pub acl: crate::auth::acl::TopicPermissions,
    pub certificates: CertificateSettings,
    pub diagnostics: DiagnosticsSettings,
    pub console: ConsoleSettings,
}

impl Config {
    /// The limits connections and the router work with. With "Enable persistent sessions and
    /// messages" unchecked the broker keeps no session for a disconnected client: an MQTT 5.0
    /// client is granted Session Expiry Interval 0 in CONNACK (MQTT 5.0 §3.2.2.3.2) and cannot
    /// raise it at DISCONNECT. MQTT 3.1.1 cannot be told so: a Clean Session 0 client still
    /// gets a session, in memory, because MQTT-3.1.2-4 requires it.
    pub fn effective_limits(&self) -> Limits {
        let mut limits = self.limits.clone();
        if !self.persistence.enabled {
            limits.max_session_expiry_secs = 0;
        }
        limits
    }
}

/// "Server Settings" of the Broker node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerSettings {
    /// "Enable MQTT broker service on this computer". Off in a fresh config, as the
    /// specification asks: the operator reviews the settings, enables and applies.
    pub enabled: bool,
    pub tcp: TcpSettings,
    pub websockets: WebSocketSettings,
    pub tls: TlsSettings,
    /// "Require client credentials": clients must present a username and password that
    /// match one of `users`.
    pub require_credentials: bool,
    /// How often the `$SYS/broker/...` topics are published, in seconds; 0 turns them off.
    pub sys_interval_secs: u32,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        BrokerSettings {
            enabled: false,
            tcp: TcpSettings::default(),
            websockets: WebSocketSettings::default(),
            tls: TlsSettings::default(),
            require_credentials: false,
            sys_interval_secs: 10,
        }
    }
}

/// "Enable TCP Server".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TcpSettings {
    pub enabled: bool,
    /// Address to bind, such as `0.0.0.0`, `127.0.0.1` or `::`.
    pub bind: String,
    /// 1883 by convention, 8883 with TLS. 0 picks a free port (tests).
    pub port: u16,
}

impl Default for TcpSettings {
    fn default() -> Self {
        TcpSettings {
            enabled: true,
            bind: "0.0.0.0".to_string(),
            port: 1883,
        }
    }
}

/// "Enable WebSockets Server".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocketSettings {
    pub enabled: bool,
    pub bind: String,
    /// 8080 by convention, 8443 with TLS.
    pub port: u16,
    /// The relative URL clients address, such as `/mqtt`; must start with `/`.
    pub path: String,
    /// Web pages allowed to connect, as the browser's `Origin` header names them (such as
    /// `https://example.com` or `http://localhost:8000`). Empty: any page, and any client.
    /// Clients that send no `Origin` (devices, not browsers) are always allowed.
    pub allowed_origins: Vec<String>,
}

impl Default for WebSocketSettings {
    fn default() -> Self {
        WebSocketSettings {
            enabled: false,
            bind: "0.0.0.0".to_string(),
            port: 8080,
            path: "/mqtt".to_string(),
            allowed_origins: Vec::new(),
        }
    }
}

/// "Use encryption (TLS)" and the client certificate options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// "Use encryption (TLS)": clients must connect over TLS (TCP) or WSS (WebSockets).
    pub enabled: bool,
    /// "Require client certificate".
    pub require_client_certificate: bool,
    /// "Accept specifically configured authorized client certificates only".
    pub authorized_only: bool,
    /// "Trust any matching authorized client certificate".
    pub trust_any_matching_authorized: bool,
    /// Host names and IP addresses the server certificate made by roost is valid for (its
    /// subject alternative names).
    pub host_names: Vec<String>,
    /// With a client certificate, its subject common name is the client's username.
    pub certificate_common_name_as_username: bool,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            enabled: false,
            require_client_certificate: false,
            authorized_only: false,
            trust_any_matching_authorized: false,
            host_names: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            certificate_common_name_as_username: false,
        }
    }
}

/// "Enable persistent sessions and messages" and the storage option.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PersistenceSettings {
    pub enabled: bool,
    pub mode: StorageMode,
    /// Where the disk store, keys and certificates live.
    pub data_dir: PathBuf,
}

impl Default for PersistenceSettings {
    fn default() -> Self {
        // Sessions kept, in memory: what MQTT asks of a broker (and Mosquitto's default).
        PersistenceSettings {
            enabled: true,
            mode: StorageMode::Memory,
            data_dir: PathBuf::from("roost-data"),
        }
    }
}

/// The four storage options of the specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum StorageMode {
    /// Session data is held in memory only.
    #[default]
    Memory,
    /// Written to disk through a write buffer; acks may precede the physical write.
    DiskBuffered,
    /// Written to disk before QoS 1/2 messages are acknowledged.
    DiskUnbuffered,
    /// As unbuffered, with a backup restored after a crash.
    DiskFaultTolerant,
}

impl StorageMode {
    pub const ALL: [StorageMode; 4] = [
        StorageMode::Memory,
        StorageMode::DiskBuffered,
        StorageMode::DiskUnbuffered,
        StorageMode::DiskFaultTolerant,
    ];

    /// The name the specification gives this option.
    pub fn label(self) -> &'static str {
        match self {
            StorageMode::Memory => "Memory",
            StorageMode::DiskBuffered => "Disk (buffered)",
            StorageMode::DiskUnbuffered => "Disk (unbuffered)",
            StorageMode::DiskFaultTolerant => "Disk (unbuffered and fault tolerant)",
        }
    }

    /// The spelling used on the command line (`--persistence`).
    pub fn cli_name(self) -> &'static str {
        match self {
            StorageMode::Memory => "memory",
            StorageMode::DiskBuffered => "disk-buffered",
            StorageMode::DiskUnbuffered => "disk-unbuffered",
            StorageMode::DiskFaultTolerant => "disk-fault-tolerant",
        }
    }

    pub fn from_cli_name(name: &str) -> Option<StorageMode> {
        StorageMode::ALL.into_iter().find(|m| m.cli_name() == name)
    }
}

/// Protocol limits. Every queue and buffer in the broker is bounded by one of these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Connections accepted at once across all listeners; further sockets are closed.
    pub max_connections: u32,
    /// Largest packet accepted, in bytes (announced as Maximum Packet Size to v5 clients).
    pub max_packet_size: u32,
    /// QoS 1/2 messages in flight per client in each direction (Receive Maximum).
    pub max_inflight: u16,
    /// Messages queued per offline or slow session; QoS 0 is dropped first.
    pub max_queued_messages: u32,
    /// Topic aliases a v5 client may use towards the broker (Topic Alias Maximum).
    pub max_topic_aliases: u16,
    /// Highest keep alive granted, in seconds; a v5 client asking for more is told this value.
    pub max_keep_alive_secs: u16,
    /// Seconds a new socket may take to send CONNECT before it is closed.
    pub connect_timeout_secs: u16,
    /// Highest session expiry interval granted to v5 clients, in seconds.
    pub max_session_expiry_secs: u32,
    /// Most levels a topic name or filter may have. A filter over it is refused in SUBACK, a
    /// topic name over it closes the connection. Bounds the depth of the topic trees.
    pub max_topic_levels: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_packet_size: 1024 * 1024,
            max_inflight: 100,
            max_queued_messages: 1000,
            max_topic_aliases: 32,
            max_keep_alive_secs: 60,
            connect_timeout_secs: 10,
            max_session_expiry_secs: 7 * 24 * 3600,
            // Mosquitto refuses topics of more than 200 levels too.
            max_topic_levels: 200,
        }
    }
}

/// A user allowed to connect when credentials are required. Passwords are stored hashed only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub username: String,
    /// A password hash, never the password itself: an argon2id PHC string (`$argon2id$...`,
    /// what roost writes) or a Mosquitto `$7$` / `$6$` hash imported as it is.
    pub password_hash: String,
}

/// The Certificate Authority, Server Certificate and Client Certificates nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct CertificateSettings {
    /// PEM file of the CA certificate (and its private key, when the CA can issue certificates).
    pub ca_certificate: Option<PathBuf>,
    pub ca_private_key: Option<PathBuf>,
    /// PEM files of the server certificate chain and its private key.
    pub server_certificate: Option<PathBuf>,
    pub server_private_key: Option<PathBuf>,
    pub clients: Vec<ClientCertificate>,
}

/// One entry of the Client Certificates list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertificate {
    /// A short name to refer to it by (`roost client-cert revoke NAME`).
    #[serde(default)]
    pub name: String,
    /// SHA-256 of the certificate's DER encoding, lowercase hex.
    pub thumbprint: String,
    /// The certificate's subject, for display.
    pub subject: String,
    /// When it expires, for display (`2028-11-26 06:47 UTC`).
    #[serde(default)]
    pub expires: String,
    pub status: ClientCertificateStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientCertificateStatus {
    Authorized,
    /// Takes precedence over everything else.
    Revoked,
}

/// The Diagnostics node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DiagnosticsSettings {
    /// "Log MQTT messages for fault finding".
    pub log_messages: bool,
    /// When set, logged messages are also appended to this file.
    pub log_file: Option<PathBuf>,
}

/// Settings of the console itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleSettings {
    /// Name of a theme in `themes/` (`dark`, `light`, `high-contrast`) or a path to a theme file.
    pub theme: String,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        ConsoleSettings {
            theme: "dark".to_string(),
        }
    }
}

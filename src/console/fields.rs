//! The editable settings of the forms: one variant per field, each knowing its label, its kind
//! (checkbox, text or choice), how to read it from a [`Config`] and how to write it back.

use std::path::PathBuf;

use crate::config::{Config, StorageMode};

use super::validate;

/// How a field is edited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Space toggles it.
    Checkbox,
    /// Enter opens a text input; the value is validated before it is accepted.
    Text,
    /// Space or ←/→ cycles through fixed options.
    Choice,
}

/// A field's current value, for display and for comparing pending with applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    Bool(bool),
    Text(String),
}

impl FieldValue {
    pub fn as_text(&self) -> String {
        match self {
            FieldValue::Bool(true) => "yes".to_string(),
            FieldValue::Bool(false) => "no".to_string(),
            FieldValue::Text(text) => text.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    BrokerEnabled,
    TcpEnabled,
    TcpBind,
    TcpPort,
    WsEnabled,
    WsBind,
    WsPort,
    WsPath,
    WsOrigins,
    TlsEnabled,
    RequireClientCertificate,
    AuthorizedOnly,
    TrustAnyMatchingAuthorized,
    RequireCredentials,
    PersistenceEnabled,
    StorageMode,
    DataDir,
    SysInterval,
    MaxConnections,
    MaxPacketSize,
    MaxInflight,
    MaxQueuedMessages,
    MaxTopicAliases,
    MaxKeepAlive,
    ConnectTimeout,
    MaxSessionExpiry,
    MaxTopicLevels,
    CaCertificate,
    CaPrivateKey,
    ServerCertificate,
    ServerPrivateKey,
    LogMessages,
    LogFile,
}

/// The fields of the Broker node ("Server Settings"), in the specification's order.
pub const SERVER_SETTINGS: &[Field] = &[
    Field::BrokerEnabled,
    Field::TcpEnabled,
    Field::TcpBind,
    Field::TcpPort,
    Field::WsEnabled,
    Field::WsBind,
    Field::WsPort,
    Field::WsPath,
    Field::WsOrigins,
    Field::TlsEnabled,
    Field::RequireClientCertificate,
    Field::AuthorizedOnly,
    Field::TrustAnyMatchingAuthorized,
    Field::RequireCredentials,
    Field::PersistenceEnabled,
    Field::StorageMode,
    Field::DataDir,
    Field::SysInterval,
];

pub const LIMITS: &[Field] = &[
    Field::MaxConnections,
    Field::MaxPacketSize,
    Field::MaxInflight,
    Field::MaxQueuedMessages,
    Field::MaxTopicAliases,
    Field::MaxKeepAlive,
    Field::ConnectTimeout,
    Field::MaxSessionExpiry,
    Field::MaxTopicLevels,
];

pub const CERTIFICATE_AUTHORITY: &[Field] = &[Field::CaCertificate, Field::CaPrivateKey];
pub const SERVER_CERTIFICATE: &[Field] = &[Field::ServerCertificate, Field::ServerPrivateKey];
pub const DIAGNOSTICS: &[Field] = &[Field::LogMessages, Field::LogFile];

impl Field {
    pub fn label(self) -> &'static str {
        match self {
            Field::BrokerEnabled => "Enable MQTT broker service",
            Field::TcpEnabled => "Enable TCP server",
            Field::TcpBind => "TCP bind address",
            Field::TcpPort => "TCP port",
            Field::WsEnabled => "Enable WebSockets server",
            Field::WsBind => "WebSockets bind address",
            Field::WsPort => "WebSockets port",
            Field::WsPath => "WebSockets URL path",
            Field::WsOrigins => "WebSockets allowed origins",
            Field::TlsEnabled => "Use encryption (TLS)",
            Field::RequireClientCertificate => "Require client certificate",
            Field::AuthorizedOnly => "Authorized client certs only",
            Field::TrustAnyMatchingAuthorized => "Trust any matching authorized",
            Field::RequireCredentials => "Require client credentials",
            Field::PersistenceEnabled => "Persistent sessions/messages",
            Field::StorageMode => "Storage",
            Field::DataDir => "Data directory",
            Field::SysInterval => "$SYS interval (s, 0 = off)",
            Field::MaxConnections => "Max connections",
            Field::MaxPacketSize => "Max packet size (bytes)",
            Field::MaxInflight => "Max inflight (per client)",
            Field::MaxQueuedMessages => "Max queued messages",
            Field::MaxTopicAliases => "Max topic aliases",
            Field::MaxKeepAlive => "Max keep alive (s)",
            Field::ConnectTimeout => "Connect timeout (s)",
            Field::MaxSessionExpiry => "Max session expiry (s)",
            Field::MaxTopicLevels => "Max topic levels",
            Field::CaCertificate => "CA certificate (PEM)",
            Field::CaPrivateKey => "CA private key (PEM)",
            Field::ServerCertificate => "Certificate chain (PEM)",
            Field::ServerPrivateKey => "Private key (PEM)",
            Field::LogMessages => "Log MQTT messages",
            Field::LogFile => "Log file (empty = none)",
        }
    }

    /// The dotted path of the setting in the configuration file.
    pub fn path(self) -> &'static str {
        match self {
            Field::BrokerEnabled => "broker.enabled",
            Field::TcpEnabled => "broker.tcp.enabled",
            Field::TcpBind => "broker.tcp.bind",
            Field::TcpPort => "broker.tcp.port",
            Field::WsEnabled => "broker.websockets.enabled",
            Field::WsBind => "broker.websockets.bind",
            Field::WsPort => "broker.websockets.port",
            Field::WsPath => "broker.websockets.path",
            Field::WsOrigins => "broker.websockets.allowed_origins",
            Field::TlsEnabled => "broker.tls.enabled",
            Field::RequireClientCertificate => "broker.tls.require_client_certificate",
            Field::AuthorizedOnly => "broker.tls.authorized_only",
            Field::TrustAnyMatchingAuthorized => "broker.tls.trust_any_matching_authorized",
            Field::RequireCredentials => "broker.require_credentials",
            Field::PersistenceEnabled => "persistence.enabled",
            Field::StorageMode => "persistence.mode",
            Field::DataDir => "persistence.data_dir",
            Field::SysInterval => "broker.sys_interval_secs",
            Field::MaxConnections => "limits.max_connections",
            Field::MaxPacketSize => "limits.max_packet_size",
            Field::MaxInflight => "limits.max_inflight",
            Field::MaxQueuedMessages => "limits.max_queued_messages",
            Field::MaxTopicAliases => "limits.max_topic_aliases",
            Field::MaxKeepAlive => "limits.max_keep_alive_secs",
            Field::ConnectTimeout => "limits.connect_timeout_secs",
            Field::MaxSessionExpiry => "limits.max_session_expiry_secs",
            Field::MaxTopicLevels => "limits.max_topic_levels",
            Field::CaCertificate => "certificates.ca_certificate",
            Field::CaPrivateKey => "certificates.ca_private_key",
            Field::ServerCertificate => "certificates.server_certificate",
            Field::ServerPrivateKey => "certificates.server_private_key",
            Field::LogMessages => "diagnostics.log_messages",
            Field::LogFile => "diagnostics.log_file",
        }
    }

    pub fn kind(self) -> FieldKind {
        match self {
            Field::BrokerEnabled
            | Field::TcpEnabled
            | Field::WsEnabled
            | Field::TlsEnabled
            | Field::RequireClientCertificate
            | Field::AuthorizedOnly
            | Field::TrustAnyMatchingAuthorized
            | Field::RequireCredentials
            | Field::PersistenceEnabled
            | Field::LogMessages => FieldKind::Checkbox,
            Field::StorageMode => FieldKind::Choice,
            _ => FieldKind::Text,
        }
    }

    /// What the operator should know about the setting beyond its name, shown under the form.
    pub fn note(self) -> Option<&'static str> {
        match self {
            Field::PersistenceEnabled => Some(
                "off: nothing kept after disconnect (v5 granted expiry 0; v3.1.1 Clean Session 0 kept in memory)",
            ),
            Field::StorageMode => Some(
                "Memory loses everything on restart; the disk modes keep it in the data directory",
            ),
            _ => None,
        }
    }

    /// Settings that are saved but whose feature is not in effect yet (the broker reports
    /// them as "stored, not active yet" on apply). None today: the store switches at Apply
    /// since issue 7; a setting whose feature lands later is listed here.
    pub fn stored_not_active(self) -> bool {
        false
    }

    pub fn get(self, config: &Config) -> FieldValue {
        let b = &config.broker;
        let l = &config.limits;
        let c = &config.certificates;
        let text = |s: &dyn ToString| FieldValue::Text(s.to_string());
        let path = |p: &Option<PathBuf>| {
            FieldValue::Text(
                p.as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            )
        };
        match self {
            Field::BrokerEnabled => FieldValue::Bool(b.enabled),
            Field::TcpEnabled => FieldValue::Bool(b.tcp.enabled),
            Field::TcpBind => text(&b.tcp.bind),
            Field::TcpPort => text(&b.tcp.port),
            Field::WsEnabled => FieldValue::Bool(b.websockets.enabled),
            Field::WsBind => text(&b.websockets.bind),
            Field::WsPort => text(&b.websockets.port),
            Field::WsPath => text(&b.websockets.path),
            Field::WsOrigins => text(&b.websockets.allowed_origins.join(", ")),
            Field::TlsEnabled => FieldValue::Bool(b.tls.enabled),
            Field::RequireClientCertificate => FieldValue::Bool(b.tls.require_client_certificate),
            Field::AuthorizedOnly => FieldValue::Bool(b.tls.authorized_only),
            Field::TrustAnyMatchingAuthorized => {
                FieldValue::Bool(b.tls.trust_any_matching_authorized)
            }
            Field::RequireCredentials => FieldValue::Bool(b.require_credentials),
            Field::PersistenceEnabled => FieldValue::Bool(config.persistence.enabled),
            Field::StorageMode => text(&config.persistence.mode.label()),
            Field::DataDir => text(&config.persistence.data_dir.display()),
            Field::SysInterval => text(&b.sys_interval_secs),
            Field::MaxConnections => text(&l.max_connections),
            Field::MaxPacketSize => text(&l.max_packet_size),
            Field::MaxInflight => text(&l.max_inflight),
            Field::MaxQueuedMessages => text(&l.max_queued_messages),
            Field::MaxTopicAliases => text(&l.max_topic_aliases),
            Field::MaxKeepAlive => text(&l.max_keep_alive_secs),
            Field::ConnectTimeout => text(&l.connect_timeout_secs),
            Field::MaxSessionExpiry => text(&l.max_session_expiry_secs),
            Field::MaxTopicLevels => text(&l.max_topic_levels),
            Field::CaCertificate => path(&c.ca_certificate),
            Field::CaPrivateKey => path(&c.ca_private_key),
            Field::ServerCertificate => path(&c.server_certificate),
            Field::ServerPrivateKey => path(&c.server_private_key),
            Field::LogMessages => FieldValue::Bool(config.diagnostics.log_messages),
            Field::LogFile => path(&config.diagnostics.log_file),
        }
    }

    /// Flips a checkbox or moves a choice on by one (backwards when `back`). Text fields are
    /// left alone.
    pub fn toggle(self, config: &mut Config, back: bool) {
        let b = &mut config.broker;
        match self {
            Field::BrokerEnabled => b.enabled = !b.enabled,
            Field::TcpEnabled => b.tcp.enabled = !b.tcp.enabled,
            Field::WsEnabled => b.websockets.enabled = !b.websockets.enabled,
            Field::TlsEnabled => b.tls.enabled = !b.tls.enabled,
            Field::RequireClientCertificate => {
                b.tls.require_client_certificate = !b.tls.require_client_certificate
            }
            Field::AuthorizedOnly => b.tls.authorized_only = !b.tls.authorized_only,
            Field::TrustAnyMatchingAuthorized => {
                b.tls.trust_any_matching_authorized = !b.tls.trust_any_matching_authorized
            }
            Field::RequireCredentials => b.require_credentials = !b.require_credentials,
            Field::PersistenceEnabled => config.persistence.enabled = !config.persistence.enabled,
            Field::LogMessages => {
                config.diagnostics.log_messages = !config.diagnostics.log_messages
            }
            Field::StorageMode => {
                let all = StorageMode::ALL;
                let index = all
                    .iter()
                    .position(|m| *m == config.persistence.mode)
                    .unwrap_or(0);
                let next = if back {
                    (index + all.len() - 1) % all.len()
                } else {
                    (index + 1) % all.len()
                };
                config.persistence.mode = all[next];
            }
            _ => {}
        }
    }

    /// Validates `input` and, when it is acceptable, writes it into `config`. On error the
    /// config is unchanged and the message says what is wrong.
    pub fn set_text(self, config: &mut Config, input: &str) -> Result<(), String> {
        let b = &mut config.broker;
        let l = &mut config.limits;
        let c = &mut config.certificates;
        match self {
            Field::TcpBind => b.tcp.bind = validate::bind_address(input)?,
            Field::TcpPort => b.tcp.port = validate::port(input)?,
            Field::WsBind => b.websockets.bind = validate::bind_address(input)?,
            Field::WsPort => b.websockets.port = validate::port(input)?,
            Field::WsPath => b.websockets.path = validate::ws_path(input)?,
            Field::WsOrigins => b.websockets.allowed_origins = validate::origins(input)?,
            Field::SysInterval => b.sys_interval_secs = validate::number(input, 0, u32::MAX)?,
            Field::DataDir => config.persistence.data_dir = validate::required_path(input)?,
            Field::MaxConnections => l.max_connections = validate::number(input, 1, 1_000_000)?,
            Field::MaxPacketSize => {
                // MQTT-2.2.3: the largest Remaining Length is 268 435 455, plus up to 5 header bytes.
                l.max_packet_size = validate::number(input, 64, 268_435_460)?
            }
            Field::MaxInflight => l.max_inflight = validate::number(input, 1, u16::MAX)?,
            Field::MaxQueuedMessages => {
                l.max_queued_messages = validate::number(input, 1, 10_000_000)?
            }
            Field::MaxTopicAliases => l.max_topic_aliases = validate::number(input, 0, u16::MAX)?,
            Field::MaxKeepAlive => l.max_keep_alive_secs = validate::number(input, 1, u16::MAX)?,
            Field::ConnectTimeout => l.connect_timeout_secs = validate::number(input, 1, 3600)?,
            Field::MaxSessionExpiry => {
                l.max_session_expiry_secs = validate::number(input, 0, u32::MAX)?
            }
            Field::MaxTopicLevels => {
                l.max_topic_levels = validate::number(input, 1, crate::config::MAX_TOPIC_LEVELS)?
            }
            Field::CaCertificate => c.ca_certificate = validate::optional_path(input),
            Field::CaPrivateKey => c.ca_private_key = validate::optional_path(input),
            Field::ServerCertificate => c.server_certificate = validate::optional_path(input),
            Field::ServerPrivateKey => c.server_private_key = validate::optional_path(input),
            Field::LogFile => config.diagnostics.log_file = validate::optional_path(input),
            _ => return Err("this setting is not text".to_string()),
        }
        Ok(())
    }

    /// Checks `input` without keeping it (inline validation while typing).
    pub fn check_text(self, input: &str) -> Result<(), String> {
        let mut scratch = Config::default();
        self.set_text(&mut scratch, input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_reads_back_what_it_writes() {
        let all = [
            SERVER_SETTINGS,
            LIMITS,
            CERTIFICATE_AUTHORITY,
            SERVER_CERTIFICATE,
            DIAGNOSTICS,
        ];
        for field in all.into_iter().flatten() {
            let mut config = Config::default();
            let before = field.get(&config);
            match field.kind() {
                FieldKind::Checkbox | FieldKind::Choice => field.toggle(&mut config, false),
                FieldKind::Text => {
                    let value = match field {
                        Field::TcpBind | Field::WsBind => "127.0.0.1",
                        Field::WsPath => "/other",
                        Field::WsOrigins => "https://a.example, http://localhost:8000",
                        Field::DataDir | Field::CaCertificate | Field::CaPrivateKey => "x.pem",
                        Field::ServerCertificate | Field::ServerPrivateKey => "x.pem",
                        Field::LogFile => "x.log",
                        _ => "123",
                    };
                    field.set_text(&mut config, value).unwrap();
                    assert_eq!(field.get(&config).as_text(), value, "{field:?}");
                }
            }
            assert_ne!(field.get(&config), before, "{field:?} did not change");
        }
    }

    #[test]
    fn storage_mode_cycles_through_the_four() {
        let mut config = Config::default();
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(config.persistence.mode);
            Field::StorageMode.toggle(&mut config, false);
        }
        assert_eq!(seen, StorageMode::ALL);
        Field::StorageMode.toggle(&mut config, true);
        assert_eq!(config.persistence.mode, StorageMode::DiskFaultTolerant);
    }

    #[test]
    fn invalid_text_leaves_config_unchanged() {
        let mut config = Config::default();
        assert!(Field::TcpPort.set_text(&mut config, "70000").is_err());
        assert!(Field::WsPath.set_text(&mut config, "mqtt").is_err());
        assert!(
            Field::WsOrigins
                .set_text(&mut config, "https://ok.example, example.com")
                .is_err()
        );
        assert!(
            Field::TcpBind
                .set_text(&mut config, "not an address")
                .is_err()
        );
        assert!(Field::MaxInflight.set_text(&mut config, "0").is_err());
        assert_eq!(config, Config::default());
    }
}

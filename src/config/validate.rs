//! Validation: every value an operator can type is checked here, and a refusal names the field.
//!
//! The per-field validators take the text as typed so that the console can check a field
//! inline, before the value is even parsed into the config.

use std::collections::HashSet;
use std::net::IpAddr;

use super::error::ConfigError;
use super::model::{Config, Limits};
use crate::mqtt::MAX_REMAINING_LENGTH;

/// The smallest maximum packet size we accept: a CONNECT with a short client id must fit.
const MIN_PACKET_SIZE: u32 = 64;

/// The most `limits.max_topic_levels` may be: a topic is a UTF-8 string of at most 65,535
/// bytes (MQTT 5.0 §1.5.4), so it cannot have more levels than this.
pub const MAX_TOPIC_LEVELS: u32 = 65_536;

/// A TCP port as typed by an operator: 1..=65535, or 0 for "any free port".
pub fn validate_port(text: &str) -> Result<u16, String> {
    let text = text.trim();
    text.parse::<u16>()
        .map_err(|_| format!("`{text}` is not a port number (0-65535)"))
}

/// An address to bind: an IPv4 or IPv6 address, or `localhost`.
pub fn validate_bind_address(text: &str) -> Result<(), String> {
    let text = text.trim();
    if text == "localhost" || text.parse::<IpAddr>().is_ok() {
        Ok(())
    } else {
        Err(format!(
            "`{text}` is not an IP address (for example 0.0.0.0, 127.0.0.1 or ::)"
        ))
    }
}

/// The relative URL of the WebSockets endpoint, such as `/mqtt`.
pub fn validate_ws_path(text: &str) -> Result<(), String> {
    if !text.starts_with('/') {
        return Err(format!("`{text}` must start with `/`"));
    }
    if let Some(bad) = text
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#'))
    {
        return Err(format!("`{text}` must not contain {bad:?}"));
    }
    Ok(())
}

/// An allowed WebSocket `Origin`: `http://` or `https://`, a host and an optional port, and
/// nothing else (no path, no trailing `/`), as browsers send it (RFC 6454 §6.2).
pub fn validate_origin(text: &str) -> Result<(), String> {
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(format!(
            "`{text}` is not an origin (for example https://example.com or http://localhost:8000)"
        ));
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(format!("`{text}` must start with http:// or https://"));
    }
    if rest.is_empty() {
        return Err(format!("`{text}` has no host"));
    }
    if let Some(bad) = rest
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '?' | '#' | '@'))
    {
        return Err(format!(
            "`{text}` must be a scheme, a host and an optional port only (found {bad:?})"
        ));
    }
    Ok(())
}

/// A whole number within `range`, as typed by an operator.
pub fn validate_number<T>(text: &str, range: std::ops::RangeInclusive<T>) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let text = text.trim();
    let value: T = text
        .parse()
        .map_err(|_| format!("`{text}` is not a whole number"))?;
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "{value} is outside {}..={}",
            range.start(),
            range.end()
        ))
    }
}

impl Config {
    /// Checks every field; the first problem found is returned with the field's path.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let broker = &self.broker;
        check("broker.tcp.bind", validate_bind_address(&broker.tcp.bind))?;
        check(
            "broker.websockets.bind",
            validate_bind_address(&broker.websockets.bind),
        )?;
        check(
            "broker.websockets.path",
            validate_ws_path(&broker.websockets.path),
        )?;
        for (index, origin) in broker.websockets.allowed_origins.iter().enumerate() {
            check(
                &format!("broker.websockets.allowed_origins[{index}]"),
                validate_origin(origin),
            )?;
        }
        if broker.tcp.enabled
            && broker.websockets.enabled
            && broker.tcp.port != 0
            && broker.tcp.port == broker.websockets.port
            && binds_overlap(&broker.tcp.bind, &broker.websockets.bind)
        {
            return Err(ConfigError::new(
                "broker.websockets.port",
                format!(
                    "port {} is already used by the TCP server",
                    broker.websockets.port
                ),
            ));
        }
        if broker.tls.authorized_only && !broker.tls.enabled {
            return Err(ConfigError::new(
                "broker.tls.authorized_only",
                "needs TLS (broker.tls.enabled)",
            ));
        }
        if broker.tls.require_client_certificate && !broker.tls.enabled {
            return Err(ConfigError::new(
                "broker.tls.require_client_certificate",
                "needs TLS (broker.tls.enabled)",
            ));
        }
        if broker.tls.trust_any_matching_authorized && !broker.tls.enabled {
            return Err(ConfigError::new(
                "broker.tls.trust_any_matching_authorized",
                "needs TLS (broker.tls.enabled)",
            ));
        }
        for (index, name) in broker.tls.host_names.iter().enumerate() {
            if name.is_empty() || !name.is_ascii() || name.contains(char::is_whitespace) {
                return Err(ConfigError::new(
                    format!("broker.tls.host_names[{index}]"),
                    format!("{name:?} is neither a host name nor an IP address"),
                ));
            }
        }
        validate_limits(&self.limits)?;
        self.validate_users()?;
        self.validate_certificates()?;
        if self.persistence.enabled && self.persistence.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::new(
                "persistence.data_dir",
                "must name a directory when persistence is enabled",
            ));
        }
        if self.console.theme.trim().is_empty() {
            return Err(ConfigError::new("console.theme", "must name a theme"));
        }
        Ok(())
    }

    fn validate_users(&self) -> Result<(), ConfigError> {
        let mut seen = HashSet::new();
        for (index, user) in self.users.iter().enumerate() {
            let field = |name: &str| format!("users[{index}].{name}");
            if user.username.is_empty() {
                return Err(ConfigError::new(field("username"), "must not be empty"));
            }
            if !seen.insert(user.username.as_str()) {
                return Err(ConfigError::new(
                    field("username"),
                    format!("`{}` is listed twice", user.username),
                ));
            }
            // Passwords are never stored in clear: only hashes such as `$argon2id$...`.
            if !user.password_hash.starts_with('$') || user.password_hash.len() < 20 {
                return Err(ConfigError::new(
                    field("password_hash"),
                    "must be a password hash in PHC format (for example $argon2id$...), never a plain password",
                ));
            }
            crate::auth::password::StoredHash::parse(&user.password_hash)
                .map_err(|error| ConfigError::new(field("password_hash"), error.to_string()))?;
        }
        self.acl
            .validate()
            .map_err(|(field, message)| ConfigError::new(field, message))?;
        Ok(())
    }

    fn validate_certificates(&self) -> Result<(), ConfigError> {
        let mut seen = HashSet::new();
        for (index, client) in self.certificates.clients.iter().enumerate() {
            let field = format!("certificates.clients[{index}].thumbprint");
            let thumbprint = client.thumbprint.to_ascii_lowercase();
            if thumbprint.len() != 64 || !thumbprint.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(ConfigError::new(
                    field,
                    "must be the SHA-256 thumbprint: 64 hexadecimal digits",
                ));
            }
            if !seen.insert(thumbprint) {
                return Err(ConfigError::new(field, "is listed twice"));
            }
        }
        Ok(())
    }
}

fn validate_limits(limits: &Limits) -> Result<(), ConfigError> {
    let max_packet = u32::try_from(MAX_REMAINING_LENGTH + 5).unwrap_or(u32::MAX);
    in_range(
        "limits.max_connections",
        limits.max_connections,
        1..=1_000_000,
    )?;
    in_range(
        "limits.max_packet_size",
        limits.max_packet_size,
        MIN_PACKET_SIZE..=max_packet,
    )?;
    in_range("limits.max_inflight", limits.max_inflight, 1..=u16::MAX)?;
    in_range(
        "limits.max_queued_messages",
        limits.max_queued_messages,
        1..=10_000_000,
    )?;
    in_range(
        "limits.max_keep_alive_secs",
        limits.max_keep_alive_secs,
        1..=u16::MAX,
    )?;
    in_range(
        "limits.max_topic_levels",
        limits.max_topic_levels,
        1..=MAX_TOPIC_LEVELS,
    )?;
    in_range(
        "limits.connect_timeout_secs",
        limits.connect_timeout_secs,
        1..=3600,
    )?;
    Ok(())
}

fn in_range<T>(field: &str, value: T, range: std::ops::RangeInclusive<T>) -> Result<(), ConfigError>
where
    T: PartialOrd + std::fmt::Display,
{
    if range.contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::new(
            field,
            format!(
                "{value} is outside the allowed range {}..={}",
                range.start(),
                range.end()
            ),
        ))
    }
}

fn check<T>(field: &str, result: Result<T, String>) -> Result<T, ConfigError> {
    result.map_err(|message| ConfigError::new(field, message))
}

/// Whether two bind addresses can collide on the same port.
fn binds_overlap(a: &str, b: &str) -> bool {
    let wildcard = |s: &str| s == "0.0.0.0" || s == "::";
    a == b || wildcard(a) || wildcard(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClientCertificate, ClientCertificateStatus, User};

    #[test]
    fn default_config_is_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn port_text_is_checked() {
        assert_eq!(validate_port("1883"), Ok(1883));
        assert_eq!(validate_port(" 0 "), Ok(0));
        assert!(validate_port("65536").is_err());
        assert!(validate_port("http").is_err());
    }

    #[test]
    fn bind_address_must_be_an_ip() {
        assert!(validate_bind_address("0.0.0.0").is_ok());
        assert!(validate_bind_address("::1").is_ok());
        assert!(validate_bind_address("localhost").is_ok());
        assert!(validate_bind_address("999.1.1.1").is_err());
        assert!(validate_bind_address("").is_err());
    }

    #[test]
    fn allowed_origins_are_scheme_host_and_port_only() {
        assert!(validate_origin("https://example.com").is_ok());
        assert!(validate_origin("http://localhost:8000").is_ok());
        assert!(validate_origin("example.com").is_err());
        assert!(validate_origin("ftp://example.com").is_err());
        assert!(validate_origin("https://example.com/").is_err());
        assert!(validate_origin("https://").is_err());
        let mut config = Config::default();
        config.broker.websockets.allowed_origins = vec!["https://ok.example".into(), "nope".into()];
        let error = config.validate().unwrap_err();
        assert_eq!(error.field, "broker.websockets.allowed_origins[1]");
    }

    #[test]
    fn ws_path_must_be_relative_url() {
        assert!(validate_ws_path("/mqtt").is_ok());
        assert!(validate_ws_path("mqtt").is_err());
        assert!(validate_ws_path("/mq tt").is_err());
        assert!(validate_ws_path("/mqtt?x").is_err());
    }

    #[test]
    fn refusal_names_the_field() {
        let mut config = Config::default();
        config.broker.tcp.bind = "nowhere".into();
        assert_eq!(config.validate().unwrap_err().field, "broker.tcp.bind");

        let mut config = Config::default();
        config.limits.max_inflight = 0;
        assert_eq!(config.validate().unwrap_err().field, "limits.max_inflight");

        let mut config = Config::default();
        config.limits.max_topic_levels = 0;
        assert_eq!(
            config.validate().unwrap_err().field,
            "limits.max_topic_levels"
        );

        let mut config = Config::default();
        config.broker.websockets.enabled = true;
        config.broker.websockets.port = config.broker.tcp.port;
        assert_eq!(
            config.validate().unwrap_err().field,
            "broker.websockets.port"
        );
    }

    #[test]
    fn plain_passwords_are_refused() {
        let mut config = Config::default();
        config.users.push(User {
            username: "sensor".into(),
            password_hash: "secret".into(),
        });
        assert_eq!(
            config.validate().unwrap_err().field,
            "users[0].password_hash"
        );
    }

    #[test]
    fn client_certificate_options_need_tls_and_host_names_must_be_names() {
        let mut config = Config::default();
        config.broker.tls.trust_any_matching_authorized = true;
        assert_eq!(
            config.validate().unwrap_err().field,
            "broker.tls.trust_any_matching_authorized"
        );
        config.broker.tls.enabled = true;
        assert_eq!(config.validate(), Ok(()));
        config.broker.tls.host_names.push("two words".into());
        assert_eq!(
            config.validate().unwrap_err().field,
            "broker.tls.host_names[3]"
        );
    }

    #[test]
    fn thumbprints_are_sha256_hex() {
        let mut config = Config::default();
        config.certificates.clients.push(ClientCertificate {
            name: String::new(),
            expires: String::new(),
            thumbprint: "abc".into(),
            subject: "CN=device".into(),
            status: ClientCertificateStatus::Authorized,
        });
        assert_eq!(
            config.validate().unwrap_err().field,
            "certificates.clients[0].thumbprint"
        );
        config.certificates.clients[0].thumbprint = "ab".repeat(32);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn numbers_are_range_checked() {
        assert_eq!(validate_number::<u16>("100", 1..=65535), Ok(100));
        assert!(validate_number::<u16>("0", 1..=65535).is_err());
        assert!(validate_number::<u32>("x", 1..=5).is_err());
    }
}
